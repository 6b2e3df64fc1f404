//! The session: one thread that owns the evcxr context and runs every request
//! that needs it, in the order the shell channel received them.

use std::collections::HashMap;
use std::ffi::OsString;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, mpsc};

use anyhow::{Context, bail};
use conclab_wire::{IdleWork, ResetReply, ResetRequest};
use evcxr::{CommandContext, EvalCallbacks};
use jupyter_protocol::{
    ClearOutput, CompleteReply, CompleteRequest, ErrorOutput, ExecuteInput, ExecuteReply,
    ExecuteRequest, ExecuteResult, ExecutionCount, HistoryReply, InspectReply, InspectRequest,
    JupyterMessage, JupyterMessageContent, Media, MediaType, Payload, ReplyError, ReplyStatus,
    StreamContent, Transient,
};
use tokio::sync::oneshot;

use crate::check::{self, Attempts, CheckCommand};
use crate::final_value;
use crate::handlers::SessionRequest;
use crate::history::History;
use crate::iopub::Iopub;
use crate::output::Forwarder;
use crate::prelude;
use crate::prepared::{PreparedCrates, labkit_dir};
use crate::report::{self, CellError};
use crate::runner_control::RunnerControl;
use crate::stdin::StdinBridge;

/// How far the session has come in starting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// evcxr is starting.
    Starting,
    /// The prelude crates are being compiled for the first time on this machine.
    BuildingPrelude,
    /// Cells run.
    Ready,
    /// The session could not start; every cell gets this message.
    Failed(String),
}

/// A shell request for the session, with where to send the reply content.
pub struct Job {
    /// The message as received: what the request publishes is its child.
    pub message: JupyterMessage,
    /// The request, as the handler table read it from `message`.
    pub request: SessionRequest,
    /// Whether the kernel showed a "please wait" note for this cell, to clear.
    pub notice_shown: bool,
    /// Receives the reply content.
    pub reply: oneshot::Sender<JupyterMessageContent>,
}

/// The kernel's side of the session thread.
#[derive(Clone)]
pub struct SessionHandle {
    jobs: mpsc::Sender<Job>,
    stage: Arc<Mutex<Stage>>,
}

impl SessionHandle {
    /// Queues a request for the session thread.
    pub fn submit(&self, job: Job) {
        // The thread only ends with the process.
        let _ = self.jobs.send(job);
    }

    /// How far the session has come in starting.
    pub fn stage(&self) -> Stage {
        self.stage.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Everything the session thread needs from the kernel.
pub struct SessionConfig {
    /// Where to publish output.
    pub iopub: Iopub,
    /// How to ask the user for input.
    pub stdin: StdinBridge,
    /// Shared with the control channel, to interrupt cells.
    pub runner: Arc<RunnerControl>,
    /// The prebuilt prelude crates.
    pub prepared: PreparedCrates,
    /// This session's build directory (evcxr's `EVCXR_TMPDIR`).
    pub session_dir: PathBuf,
    /// Crates being compiled for a cell (see [`crate::build_progress`]).
    pub builds: crossbeam_channel::Receiver<String>,
}

/// Starts the session thread; it starts evcxr at once, in the background.
pub fn spawn(config: SessionConfig) -> SessionHandle {
    let (jobs, queue) = mpsc::channel();
    // Decided now, so a cell that arrives at once already knows it must wait.
    let first_stage = if config.prepared.is_ready() {
        Stage::Starting
    } else {
        Stage::BuildingPrelude
    };
    let stage = Arc::new(Mutex::new(first_stage));
    let handle = SessionHandle {
        jobs,
        stage: Arc::clone(&stage),
    };
    std::thread::Builder::new()
        .name("conclab-session".into())
        .spawn(move || run(config, stage, queue))
        .expect("cannot start the session thread");
    handle
}

fn run(config: SessionConfig, stage: Arc<Mutex<Stage>>, queue: mpsc::Receiver<Job>) {
    let set_stage = |new: Stage| *stage.lock().unwrap_or_else(|p| p.into_inner()) = new;
    let mut session = match Session::start(config, &set_stage) {
        Ok(session) => {
            set_stage(Stage::Ready);
            Some(session)
        }
        Err(error) => {
            tracing::error!("the session could not start: {error:#}");
            set_stage(Stage::Failed(format!("{error:#}")));
            None
        }
    };
    loop {
        let waiting = match &session {
            Some(session) if session.has_idle_work() => queue.recv_timeout(IDLE_BEFORE_WORK),
            _ => queue
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        let job = match waiting {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(session) = &mut session {
                    session.idle();
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let content = match &mut session {
            Some(session) => session.handle(&job),
            None => {
                let Stage::Failed(reason) = stage.lock().unwrap_or_else(|p| p.into_inner()).clone()
                else {
                    unreachable!("a session that did not start has failed");
                };
                job.request.failed_reply(&reason)
            }
        };
        let _ = job.reply.send(content);
        // Repairs after a restart of the code runner wait until the reply is
        // out, so an interrupt is answered at once.
        if let Some(session) = &mut session {
            session.restore_runner_if_needed();
        }
    }
}

/// How long the kernel must have had nothing to do before it works on its
/// own (warming up rust-analyzer, see [`prelude::WARM_VARIABLES`]; starting
/// a spare checker): long enough that a client sending cells one after
/// another (Run All) is not made to wait for it, short enough to be done
/// while a learner reads.
const IDLE_BEFORE_WORK: std::time::Duration = std::time::Duration::from_secs(1);

struct Session {
    context: CommandContext,
    /// Whether rust-analyzer has inferred types through the prelude crates.
    analysis_warm: bool,
    /// What this kernel does while idle.
    idle_work: IdleWork,
    /// A checker whose kernel is started, ready for the next `:check`.
    spare_checker: Option<check::SpareChecker>,
    /// A spare checker could not be started: `:check` starts its own.
    spare_failed: bool,
    forwarder: Forwarder,
    iopub: Iopub,
    stdin: StdinBridge,
    runner: Arc<RunnerControl>,
    history: History,
    execution_count: usize,
    /// How values are formatted (`:fmt`), for [`prelude::runner_setup`].
    output_format: String,
    /// The code runner restarted (or `:fmt` changed): set it up again.
    runner_needs_setup: bool,
    /// The code last run in each cell, for `:check`.
    attempts: Attempts,
    /// This session's build directory; `:check` writes its copies here.
    session_dir: PathBuf,
    /// evcxr's state once the prelude was loaded, for a [`ResetRequest`].
    fresh: evcxr::ContextState,
    /// The kernel's environment then: a cell's `:env` changes it, and a
    /// new code runner would inherit the change.
    fresh_env: Vec<(OsString, OsString)>,
}

impl Session {
    fn start(config: SessionConfig, set_stage: &dyn Fn(Stage)) -> anyhow::Result<Session> {
        let SessionConfig {
            iopub,
            stdin,
            runner,
            prepared,
            session_dir,
            builds,
        } = config;
        prepared.remove_abandoned_sessions();
        if !prepared.copy_template_to(&session_dir)? {
            set_stage(Stage::BuildingPrelude);
            build_prelude_crates()?;
            if !prepared.copy_template_to(&session_dir)? {
                bail!(
                    "the prelude crates were built, but {} is not ready",
                    prepared.template().display()
                );
            }
        }
        set_stage(Stage::Starting);
        let started = std::time::Instant::now();
        let (mut context, outputs) =
            prelude::start_evcxr(&labkit_dir(), prelude::Sources::Offline)?;
        tracing::info!("evcxr started in {:?}", started.elapsed());
        let forwarder = Forwarder::spawn(
            outputs.stdout,
            outputs.stderr,
            builds,
            iopub.clone(),
            session_dir.clone(),
        );
        context
            .execute(&prelude::first_cell())
            .map_err(|e| anyhow::anyhow!("loading the prelude crates: {e}"))?;
        forwarder.finish();
        tracing::info!("prelude loaded after {:?}", started.elapsed());
        // A learner's own `:dep` lines may need to download crates.
        context
            .execute(":offline 0")
            .map_err(|e| anyhow::anyhow!("leaving offline mode: {e}"))?;
        runner.set_process(context.process_handle());
        let fresh = context.state();
        Ok(Session {
            context,
            analysis_warm: false,
            idle_work: IdleWork::from_env(),
            spare_checker: None,
            spare_failed: false,
            forwarder,
            iopub,
            stdin,
            runner,
            history: History::default(),
            execution_count: 0,
            output_format: prelude::DEFAULT_FORMAT.to_owned(),
            runner_needs_setup: false,
            attempts: Attempts::default(),
            session_dir,
            fresh,
            fresh_env: std::env::vars_os().collect(),
        })
    }

    /// Whether there is something to do once idle.
    fn has_idle_work(&self) -> bool {
        match self.idle_work {
            IdleWork::All => !self.analysis_warm || self.wants_spare_checker(),
            IdleWork::WarmUp => !self.analysis_warm,
            IdleWork::Nothing => false,
        }
    }

    /// A notebook that Jupyter Server named can be checked: keep a checker
    /// ready for it (or for another one a `:check` names), unless the last
    /// one could not start.
    fn wants_spare_checker(&self) -> bool {
        self.idle_work == IdleWork::All
            && self.spare_checker.is_none()
            && !self.spare_failed
            && std::env::var_os(check::SESSION_NAME).is_some()
    }

    /// One piece of idle work: the first that is not done.
    fn idle(&mut self) {
        if !self.analysis_warm {
            self.warm_analysis();
        } else if self.wants_spare_checker() {
            match check::SpareChecker::start(&self.session_dir.join("check")) {
                Ok(spare) => self.spare_checker = Some(spare),
                Err(error) => {
                    tracing::warn!("no spare checker: {error}");
                    self.spare_failed = true;
                }
            }
        }
    }

    /// Has rust-analyzer infer types through the prelude crates, as the
    /// first top-level `let` would otherwise do while the learner waits.
    fn warm_analysis(&mut self) {
        let started = std::time::Instant::now();
        self.forwarder.detach();
        for code in prelude::WARM_VARIABLES {
            if let Err(error) = self.context.execute(code) {
                tracing::warn!("warming up rust-analyzer: {error}");
                break;
            }
        }
        self.forwarder.finish();
        self.analysis_warm = true;
        tracing::info!("rust-analyzer warmed up in {:?}", started.elapsed());
    }

    /// Answers `job`'s request, one of those [`crate::handlers`] gives the session.
    fn handle(&mut self, job: &Job) -> JupyterMessageContent {
        match &job.request {
            SessionRequest::Execute(execute) => JupyterMessageContent::ExecuteReply(self.execute(
                &job.message,
                execute,
                job.notice_shown,
            )),
            SessionRequest::Complete(complete) => {
                JupyterMessageContent::CompleteReply(self.complete(complete))
            }
            SessionRequest::Inspect(inspect) => {
                JupyterMessageContent::InspectReply(self.inspect(inspect))
            }
            SessionRequest::History(history) => {
                JupyterMessageContent::HistoryReply(HistoryReply::new(self.history.query(history)))
            }
            SessionRequest::Reset(reset) => {
                let error = match reset {
                    Ok(reset) => self.reset(reset).err().map(|e| format!("{e:#}")),
                    Err(bad) => Some(format!("{}: {bad}", conclab_wire::RESET_REQUEST)),
                };
                if let Some(error) = &error {
                    tracing::error!("could not start over: {error}");
                }
                ResetReply { error }.to_content()
            }
        }
    }

    fn execute(
        &mut self,
        request: &JupyterMessage,
        execute: &ExecuteRequest,
        notice_shown: bool,
    ) -> ExecuteReply {
        let silent = execute.silent;
        if execute.store_history && !silent {
            self.execution_count += 1;
        }
        let count = ExecutionCount::new(self.execution_count);
        if notice_shown {
            self.iopub.send(
                JupyterMessageContent::ClearOutput(ClearOutput { wait: false }),
                request,
            );
        }
        if !silent {
            self.iopub.send(
                JupyterMessageContent::ExecuteInput(ExecuteInput {
                    code: execute.code.clone(),
                    execution_count: count,
                }),
                request,
            );
        }
        if let Some(topic) = help_topic(&execute.code) {
            return self.show_help(request, execute, topic, count);
        }
        let outcome = match CheckCommand::parse(&execute.code) {
            Some(command) => self.run_check(request, &command),
            None => {
                self.attempts.record(&request.metadata, &execute.code);
                self.run_cell(request, execute)
            }
        };
        let (result, error) = match outcome {
            Ok(outputs) => (outputs, None),
            Err(error) => (HashMap::new(), Some(error)),
        };
        if !silent && !result.is_empty() {
            let media = media_from(&result);
            self.iopub.send(
                JupyterMessageContent::ExecuteResult(ExecuteResult {
                    execution_count: count,
                    data: media,
                    metadata: serde_json::Map::new(),
                    transient: Some(Transient::default()),
                }),
                request,
            );
        }
        if execute.store_history && !silent {
            self.history.record(
                self.execution_count,
                &execute.code,
                result.get("text/plain").cloned(),
            );
        }
        let mut reply = ExecuteReply {
            status: ReplyStatus::Ok,
            execution_count: count,
            payload: Vec::new(),
            user_expressions: Some(HashMap::new()),
            error: None,
        };
        if let Some(error) = error {
            if !silent {
                self.iopub.send(
                    JupyterMessageContent::ErrorOutput(ErrorOutput {
                        ename: error.ename.clone(),
                        evalue: error.evalue.clone(),
                        traceback: error.traceback.clone(),
                    }),
                    request,
                );
            }
            reply.status = ReplyStatus::Error;
            reply.error = Some(Box::new(ReplyError {
                ename: error.ename,
                evalue: error.evalue,
                traceback: error.traceback,
            }));
        }
        reply
    }

    /// `Vec::new?` opens the documentation in the pager, as IPython's `obj?` does.
    fn show_help(
        &mut self,
        request: &JupyterMessage,
        execute: &ExecuteRequest,
        topic: &str,
        count: ExecutionCount,
    ) -> ExecuteReply {
        let docs = self.inspect(&InspectRequest {
            code: topic.to_owned(),
            cursor_pos: topic.chars().count(),
            detail_level: Some(0),
        });
        if execute.store_history && !execute.silent {
            self.history
                .record(self.execution_count, &execute.code, None);
        }
        let mut payload = Vec::new();
        if docs.found {
            payload.push(Payload::Page {
                data: docs.data,
                start: 0,
            });
        } else {
            self.iopub.send(
                JupyterMessageContent::StreamContent(StreamContent::stdout(&format!(
                    "No documentation found for `{topic}`.\n"
                ))),
                request,
            );
        }
        ExecuteReply {
            status: ReplyStatus::Ok,
            execution_count: count,
            payload,
            user_expressions: Some(HashMap::new()),
            error: None,
        }
    }

    /// Runs one cell; returns its value by MIME type, or why it failed.
    fn run_cell(
        &mut self,
        request: &JupyterMessage,
        execute: &ExecuteRequest,
    ) -> Result<HashMap<String, String>, CellError> {
        let variables: Vec<String> = self
            .context
            .variables_and_types()
            .map(|(name, _)| name.to_owned())
            .collect();
        self.forwarder.begin(request, self.execution_count);
        self.runner.set_running(true);
        let stdin = self.stdin.clone();
        let runner = Arc::clone(&self.runner);
        let allow_stdin = execute.allow_stdin;
        let context = &mut self.context;
        let mut evaluate = |code: &str| {
            std::panic::catch_unwind(AssertUnwindSafe(|| {
                context.execute_with_callbacks(
                    code,
                    &mut EvalCallbacks {
                        input_reader: &|input| {
                            if !allow_stdin {
                                return String::new();
                            }
                            stdin.ask(request, &input.prompt, input.is_password, &|| {
                                runner.is_interrupted()
                            })
                        },
                    },
                )
            }))
        };
        let place = final_value::FinalPlace::find(&execute.code);
        let (mut result, mut inserted) = match place.as_ref().map(|place| place.shown()) {
            Some((code, inserted)) => (evaluate(&code), Some(inserted)),
            None => (evaluate(&execute.code), None),
        };
        // The final variable's `evcxr_display` takes it by value: nothing
        // ran, so run the cell again moving it into that method.
        if let Ok(Err(evcxr::Error::CompilationErrors(errors))) = &result
            && let Some(at) = inserted
            && errors.iter().any(|error| moved_in_probe(error, &at))
            && let Some((code, moved)) = place.as_ref().and_then(|place| place.moved())
        {
            result = evaluate(&code);
            inserted = Some(moved);
        }
        self.runner.set_running(false);
        let end = self.forwarder.finish();
        let interrupted = self.runner.take_interrupted();
        let result = match result {
            Ok(result) => result,
            Err(_) => {
                return Err(CellError::new(
                    "InternalError",
                    "evcxr failed on this cell; the session goes on",
                    vec!["evcxr panicked while handling this cell. Variables are kept.".into()],
                ));
            }
        };
        for line in execute.code.lines().map(str::trim) {
            if line.starts_with(":restart") || line.starts_with(":clear") {
                self.runner_needs_setup = true;
            }
            if let Some(format) = line
                .strip_prefix(":fmt")
                .map(str::trim)
                .filter(|f| !f.is_empty())
            {
                format.clone_into(&mut self.output_format);
                self.runner_needs_setup = true;
            }
        }
        match result {
            Ok(_) if end.panicked => Err(CellError::panic(end.panic.as_ref())),
            Ok(outputs) => {
                for phase in &outputs.phases {
                    tracing::debug!("phase {}: {:?}", phase.name, phase.duration);
                }
                if let Some(took) = outputs.timing {
                    // `:timing` is on: say how long the cell took, as evcxr does.
                    let text = format!("Took {}ms", took.as_millis());
                    self.iopub.send(
                        JupyterMessageContent::StreamContent(StreamContent::stdout(&format!(
                            "{text}\n"
                        ))),
                        request,
                    );
                }
                let mut result = outputs.content_by_mime_type;
                // A cell ending in `print!(..)` or a block "returns" (); that is not a value to show.
                if result.len() == 1 && result.get("text/plain").is_some_and(|text| text == "()") {
                    result.clear();
                }
                Ok(result)
            }
            Err(evcxr::Error::CompilationErrors(errors)) => {
                Err(CellError::compile(&errors, &execute.code, inserted))
            }
            Err(evcxr::Error::SubprocessTerminated(message)) => {
                self.runner_needs_setup = true;
                Err(runner_stopped(interrupted, &message, &variables))
            }
            Err(evcxr::Error::TypeRedefinedVariablesLost(lost)) => Err(CellError::new(
                "VariablesLost",
                format!(
                    "variables lost because their type was redefined: {}",
                    lost.join(", ")
                ),
                vec![format!(
                    "A type these variables use was redefined, so their old values could not be kept: {}",
                    lost.join(", ")
                )],
            )),
            Err(other) => {
                let text = other.to_string();
                Err(CellError::new(
                    "Error",
                    text.lines().next().unwrap_or("").to_owned(),
                    text.lines().map(str::to_owned).collect(),
                ))
            }
        }
    }

    /// `:check`: runs the checker on this notebook, with the solutions as
    /// last run here, and shows its report.
    fn run_check(
        &mut self,
        request: &JupyterMessage,
        command: &CheckCommand,
    ) -> Result<HashMap<String, String>, CellError> {
        let failed = |message: String| CellError::new("CheckError", message.clone(), vec![message]);
        let notebook = command.notebook_path().map_err(failed)?;
        let (copy, overlay) =
            check::checked_copy(&notebook, &self.attempts, &self.session_dir.join("check"))
                .map_err(failed)?;
        let name = notebook.file_name().unwrap_or_default().to_string_lossy();
        let saved = match overlay.saved {
            0 => String::new(),
            n => format!(", {n} as saved (not run since the kernel started)"),
        };
        self.say(
            request,
            &format!(
                "Checking {name} with {}, in a fresh kernel: {} solution cell(s) as you last ran them{saved}…\n",
                command
                    .exercise
                    .as_ref()
                    .map_or("its tests".to_owned(), |e| format!("the tests of {e}")),
                overlay.ran
            ),
        );
        let runner = Arc::clone(&self.runner);
        let spare = self.spare_checker.take();
        let feedback = check::run_checker(&copy, command.exercise.as_deref(), spare, |group| {
            runner.set_check(Some(group))
        });
        self.runner.set_check(None);
        let _ = std::fs::remove_file(&copy);
        if self.runner.take_interrupted() {
            return Err(CellError::new(
                "Interrupted",
                "the check was interrupted",
                vec!["Interrupted: the check was stopped. Your variables are untouched.".into()],
            ));
        }
        let feedback = feedback.map_err(failed)?;
        match feedback.exit {
            // The checker ran the notebook: passed (0) or a check failed (1).
            Some(0 | 1) => {
                // HTML for JupyterLab, with the text report for consoles.
                self.iopub.send(
                    JupyterMessageContent::DisplayData(check::display(&feedback)),
                    request,
                );
                Ok(HashMap::new())
            }
            _ => {
                let errors = feedback.errors.trim();
                Err(failed(if errors.is_empty() {
                    format!("the checker stopped ({:?}) without a report", feedback.exit)
                } else {
                    errors.to_owned()
                }))
            }
        }
    }

    /// Prints `text` in the cell's output.
    fn say(&self, request: &JupyterMessage, text: &str) {
        self.iopub.send(
            JupyterMessageContent::StreamContent(StreamContent::stdout(text)),
            request,
        );
    }

    /// Starts over for the next notebook, as a fresh kernel would be: a new
    /// code runner tracing as `reset` says, evcxr's state as it was once the
    /// prelude was loaded, no history. rust-analyzer keeps what it analysed.
    fn reset(&mut self, reset: &ResetRequest) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        self.context
            .restart_from(self.fresh.clone(), |runner| {
                // What evcxr set on the runner's command stays; what the
                // kernel's environment gained since the start goes.
                let set: Vec<(OsString, Option<OsString>)> = runner
                    .get_envs()
                    .map(|(key, value)| (key.to_owned(), value.map(ToOwned::to_owned)))
                    .collect();
                runner.env_clear().envs(self.fresh_env.iter().cloned());
                for (key, value) in set {
                    match value {
                        Some(value) => runner.env(key, value),
                        None => runner.env_remove(key),
                    };
                }
                runner
                    .env(conclab_wire::EnvVars::CONCLAB_TRACE, &reset.trace)
                    .env(conclab_wire::EnvVars::CONCLAB_TRACE_NONCE, &reset.nonce);
            })
            .map_err(|e| anyhow::anyhow!("starting a new code runner: {e}"))?;
        self.history = History::default();
        self.execution_count = 0;
        self.attempts = Attempts::default();
        prelude::DEFAULT_FORMAT.clone_into(&mut self.output_format);
        self.runner_needs_setup = false;
        self.forwarder.detach();
        let result = self.context.execute(&prelude::first_cell());
        self.forwarder.finish();
        result.map_err(|e| anyhow::anyhow!("setting up the new code runner: {e}"))?;
        tracing::info!("started over in {:?}", started.elapsed());
        Ok(())
    }

    /// A new code runner lacks the panic hook; a new `:fmt` needs a new way
    /// to show values. Put them back.
    fn restore_runner_if_needed(&mut self) {
        if !std::mem::take(&mut self.runner_needs_setup) {
            return;
        }
        self.forwarder.detach();
        if let Err(error) = self
            .context
            .execute(&prelude::runner_setup(&self.output_format))
        {
            tracing::warn!("could not set up the restarted code runner: {error}");
        }
        self.forwarder.finish();
    }

    fn complete(&mut self, request: &CompleteRequest) -> CompleteReply {
        let code = &request.code;
        let position = byte_offset(code, request.cursor_pos);
        let completions = std::panic::catch_unwind(AssertUnwindSafe(|| {
            self.context.completions(code, position)
        }));
        let mut reply = CompleteReply {
            matches: Vec::new(),
            cursor_start: request.cursor_pos,
            cursor_end: request.cursor_pos,
            metadata: serde_json::Map::new(),
            status: ReplyStatus::Ok,
            error: None,
        };
        let Ok(Ok(completions)) = completions else {
            return reply;
        };
        let cursor_start = char_offset(code, completions.start_offset);
        let cursor_end = char_offset(code, completions.end_offset);
        let mut seen = std::collections::HashSet::new();
        let mut types = Vec::new();
        for completion in completions.completions {
            let text = insertion_text(&completion.code).to_owned();
            if seen.insert(text.clone()) {
                types.push(serde_json::json!({
                    "text": text,
                    "type": completion.kind,
                    "signature": completion.label,
                    "start": cursor_start,
                    "end": cursor_end,
                }));
                reply.matches.push(text);
            }
        }
        reply.cursor_start = cursor_start;
        reply.cursor_end = cursor_end;
        reply.metadata.insert(
            "_jupyter_types_experimental".into(),
            serde_json::Value::Array(types),
        );
        reply
    }

    fn inspect(&mut self, request: &InspectRequest) -> InspectReply {
        let code = &request.code;
        let position = byte_offset(code, request.cursor_pos);
        let hover =
            std::panic::catch_unwind(AssertUnwindSafe(|| self.context.hover_at(code, position)));
        let mut reply = InspectReply {
            found: false,
            data: Media::default(),
            metadata: serde_json::Map::new(),
            status: ReplyStatus::Ok,
            error: None,
        };
        if let Ok(Ok((plain, html))) = hover
            && !plain.trim().is_empty()
            && plain != "No documentation found"
        {
            reply.found = true;
            let (plain, html) = crate::rustdoc::hide_doc_lines(&plain, &html);
            reply.data = Media {
                content: vec![MediaType::Plain(plain), MediaType::Html(html)],
            };
        }
        reply
    }
}

/// What to say when the code runner stopped in the middle of a cell.
fn runner_stopped(interrupted: bool, message: &str, variables: &[String]) -> CellError {
    let lost = if variables.is_empty() {
        "No variables were defined, so none were lost.".to_owned()
    } else {
        format!(
            "Variables lost: {}. None survived; define them again to use them.",
            variables.join(", ")
        )
    };
    let kept = "Functions, types, `use` lines and dependencies are kept.";
    if interrupted {
        return CellError::new(
            "Interrupted",
            "the cell was interrupted",
            vec![
                "Interrupted: Rust cannot stop a running thread from outside, so the process running \
                 your code was stopped, with every thread and process it had started, and a new one \
                 was started."
                    .to_owned(),
                lost,
                kept.to_owned(),
            ],
        );
    }
    let mut traceback: Vec<String> = message.lines().map(str::to_owned).collect();
    traceback.push(
        "The process running your code stopped (it exited, crashed or was killed); a new one was started."
            .to_owned(),
    );
    traceback.push(lost);
    traceback.push(kept.to_owned());
    CellError::new(
        "RunnerStopped",
        message
            .lines()
            .last()
            .unwrap_or("the code runner stopped")
            .to_owned(),
        traceback,
    )
}

/// Whether `error` is the probe of [`final_value`] saying that the final
/// variable's `evcxr_display` takes it by value.
fn moved_in_probe(error: &evcxr::CompilationError, at: &final_value::Inserted) -> bool {
    error.code() == Some("E0507") && report::in_probe(error, at)
}

/// Runs `conclab-kernel prepare` and waits for it: the one-time build of the
/// prelude crates, in a process of its own so its settings stay its own.
fn build_prelude_crates() -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the kernel executable")?;
    tracing::info!("building the prelude crates once for this machine");
    let status = Command::new(exe)
        .arg("prepare")
        .env_remove("EVCXR_TMPDIR")
        .status()
        .context("running conclab-kernel prepare")?;
    if !status.success() {
        bail!(
            "building the prelude crates failed ({status}); run `conclab-kernel prepare` to see why"
        );
    }
    Ok(())
}

fn media_from(outputs: &HashMap<String, String>) -> Media {
    let mut data = serde_json::Map::new();
    for (mime, value) in outputs {
        let value = if mime.contains("json") {
            serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.clone()))
        } else {
            serde_json::Value::String(value.clone())
        };
        data.insert(mime.clone(), value);
    }
    if !data.contains_key("text/plain") {
        // Every result should carry text/plain for consoles and logs.
        data.insert(
            "text/plain".into(),
            serde_json::Value::String(String::new()),
        );
    }
    serde_json::from_value(serde_json::Value::Object(data)).unwrap_or_default()
}

/// The path in a help request such as `Vec::new?`, `std::sync::Mutex ?` or,
/// as IPython also accepts, `?Vec::new`.
fn help_topic(code: &str) -> Option<&str> {
    let code = code.trim();
    let topic = match code.strip_suffix('?') {
        Some(topic) => topic.trim_end(),
        None => code.strip_prefix('?')?.trim_start(),
    };
    let is_path = !topic.is_empty()
        && topic
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == ':' || c == '!');
    is_path.then_some(topic)
}

/// rust-analyzer completes a function with its arguments as placeholders
/// (`swap(x, y)`); Jupyter has no placeholders, so insert the name and let
/// the learner type the arguments.
fn insertion_text(code: &str) -> &str {
    match code.find('(') {
        Some(paren) if paren > 0 && code.ends_with(')') => &code[..paren],
        _ => code,
    }
}

/// Jupyter counts cursor positions in Unicode code points; Rust indexes bytes.
fn byte_offset(code: &str, chars: usize) -> usize {
    code.char_indices()
        .nth(chars)
        .map_or(code.len(), |(at, _)| at)
}

fn char_offset(code: &str, bytes: usize) -> usize {
    code.get(..bytes)
        .map_or_else(|| code.chars().count(), |prefix| prefix.chars().count())
}
