//! A conclab kernel driven as a Jupyter client would drive it: the same
//! kernel the learner used, so what they saw is what is graded.
//!
//! The kernel runs in its own process group, dies with the checker
//! (PR_SET_PDEATHSIG), speaks over IPC sockets in a private folder, and
//! records labkit's trace into that folder with a nonce made for this run.
//! The learner's code runs in the kernel's code runner, a child process that
//! leads a process group of its own, and, where the machine allows it, in a
//! cgroup that caps how many tasks it may have (see [`crate::containment`]).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use conclab_wire::{Channel, EnvVars, IdleWork, ResetReply, ResetRequest, Signer};
use jupyter_protocol::{
    ConnectionInfo, ExecuteRequest, JupyterMessage, JupyterMessageContent, KernelInfoRequest,
    ReplyStatus, ShutdownRequest, Transport,
};
use serde_json::{Value, json};
use zeromq::{DealerSocket, SubSocket};

use crate::containment::Containment;
use crate::hang;
use crate::process_tree;
use crate::stall::{self, StallWatch};
use crate::trace::TraceFollower;

/// How often a running cell's processes are polled: limits, activity.
const WATCH_EVERY: Duration = Duration::from_millis(50);
/// Every how many polls the cell is also checked for being stuck (reading
/// every thread's system call costs more than the other polls).
const STALL_CHECK_TICKS: u32 = 5;
/// How long a cell may wait for the kernel to compile it without that time
/// counting against its time limit.
const COMPILE_ALLOWANCE: Duration = Duration::from_secs(300);
/// How long a kernel may take to start over (see [`Kernel::reset`]).
const RESET_WITHIN: Duration = Duration::from_secs(120);
/// The learner's working folder, in the kernel's private folder.
const WORKDIR: &str = "work";

/// Whether the code runner's first thread, as sampled, is reading its
/// instructions from the kernel (its stdin): the cell is not running yet,
/// or has ended.
fn awaits_the_kernel(main: &process_tree::ThreadSample) -> bool {
    main.syscall
        .is_some_and(|call| call.number == libc::SYS_read && call.args[0] == 0)
}

/// The code runner's address-space limit, as a multiple of the learner's
/// memory limit: address space is not memory (rayon's and each thread's
/// stacks reserve far more than they touch), so `RLIMIT_AS` only stops a
/// runaway allocation, and the checker enforces the real limit from the
/// cgroup or `/proc`.
const ADDRESS_SPACE_PER_MEMORY: u64 = 4;

/// Limits on what one cell's code may use.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Resident memory of all the learner's processes together, in MiB.
    pub memory_mb: u64,
    /// How many processes the learner's code may have at once.
    pub processes: usize,
    /// Bytes of output one cell may produce.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            memory_mb: 2048,
            processes: 64,
            output_bytes: 1 << 20,
        }
    }
}

/// How a cell's run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// The cell ran to the end.
    Ok,
    /// The cell failed: a compile error, a panic, a stopped runner.
    Error {
        /// `CompileError`, `Panic`, `RunnerStopped`, …
        ename: String,
        /// The message.
        evalue: String,
        /// The lines a notebook shows.
        traceback: Vec<String>,
    },
    /// Still running at the time limit; nothing has been killed yet, so the
    /// caller can diagnose the hang first.
    TimedOut,
    /// Stuck before the time limit: every thread waited with nothing left
    /// to wake it (see [`crate::stall`]), or the trace showed a lock-wait
    /// cycle. Nothing has been killed yet, as for `TimedOut`.
    Hung,
    /// Stopped for printing more than the limit.
    OutputFlood,
    /// Stopped for using more memory than the limit.
    MemoryExceeded(u64),
    /// Stopped for starting more processes than the limit.
    TooManyProcesses(usize),
    /// The kernel itself went away: not the learner's doing (exit 3).
    KernelDied(String),
}

/// One cell's run.
#[derive(Debug, Clone)]
pub struct CellRun {
    /// nbformat 4 outputs, as a notebook would store them.
    pub outputs: Vec<Value>,
    /// How it ended.
    pub ending: Ending,
    /// CLOCK_MONOTONIC when the request was sent.
    pub started_ns: u64,
    /// CLOCK_MONOTONIC when the reply (or the limit) came.
    pub ended_ns: u64,
    /// CPU seconds the code runner used during the cell.
    pub runner_cpu_s: f64,
    /// How often each of the runner's threads was seen runnable (state R)
    /// in the samples taken every 50 ms while the cell ran.
    pub activity: Activity,
    /// Seconds the code runner waited for the kernel to send it the cell:
    /// evcxr analysing and compiling it.
    pub compile_s: f64,
}

/// Per-thread samples of the code runner while a cell ran.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    /// Samples taken.
    pub samples: usize,
    /// What each thread (by tid) was seen doing.
    pub threads: std::collections::BTreeMap<u32, ThreadActivity>,
}

/// One thread of the code runner over the samples it was alive in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadActivity {
    /// Its name, as labkit's trace names it (`main`, `worker-1`, and
    /// [`labkit::trace::unnamed_thread_name`] for a thread without one).
    pub name: String,
    /// Samples it was alive in.
    pub seen: usize,
    /// Samples it was runnable (state R) in: running, or ready to run and
    /// waiting for a CPU, which on a busy machine can be most of the time.
    pub runnable: usize,
    /// Its CPU time at its first and at its last sample, in clock ticks.
    pub cpu_ticks: (u64, u64),
    /// When it was first and last sampled.
    pub sampled: (Instant, Instant),
}

impl ThreadActivity {
    /// CPU seconds it used between its first and last sample.
    pub fn cpu_s(&self) -> f64 {
        self.cpu_ticks.1.saturating_sub(self.cpu_ticks.0) as f64
            / process_tree::clock_ticks_per_second() as f64
    }

    /// Wall seconds between its first and last sample.
    pub fn alive_s(&self) -> f64 {
        self.sampled.1.duration_since(self.sampled.0).as_secs_f64()
    }
}

impl Activity {
    /// Samples the runner's threads; true when its first thread awaits the
    /// kernel (see [`awaits_the_kernel`]).
    fn sample(&mut self, runner: u32) -> bool {
        self.samples += 1;
        let threads = process_tree::sample(&[runner]);
        let now = Instant::now();
        let main = threads.iter().find(|t| t.tid == runner);
        let idle = main.is_some_and(awaits_the_kernel);
        let main_name = main.map(|t| t.name.clone());
        for thread in threads {
            // Named as labkit's trace names them: unnamed threads inherit the
            // process's name in /proc.
            let name = if thread.tid == runner {
                "main".to_owned()
            } else if Some(&thread.name) == main_name.as_ref() {
                labkit::trace::unnamed_thread_name(thread.tid.into())
            } else {
                thread.name
            };
            let entry = self
                .threads
                .entry(thread.tid)
                .or_insert_with(|| ThreadActivity {
                    name,
                    seen: 0,
                    runnable: 0,
                    cpu_ticks: (thread.cpu_ticks, thread.cpu_ticks),
                    sampled: (now, now),
                });
            entry.seen += 1;
            entry.cpu_ticks.1 = thread.cpu_ticks;
            entry.sampled.1 = now;
            if thread.state == 'R' {
                entry.runnable += 1;
            }
        }
        idle
    }
}

impl CellRun {
    /// Logs the cell's compile and run times (see [`crate::timing`]).
    pub fn log_phases(&self, cell: &str) {
        let compile = Duration::from_secs_f64(self.compile_s);
        crate::timing::phase("compile", cell, compile);
        let total = Duration::from_secs_f64(self.time_s());
        crate::timing::phase("run", cell, total.saturating_sub(compile));
    }

    /// Wall time in seconds.
    pub fn time_s(&self) -> f64 {
        self.ended_ns.saturating_sub(self.started_ns) as f64 / 1e9
    }
}

/// A running kernel and the client's sockets to it.
pub struct Kernel {
    child: std::process::Child,
    shell: Channel<DealerSocket>,
    iopub: Channel<SubSocket>,
    control: Channel<DealerSocket>,
    session: String,
    /// The trace file labkit appends to, and its nonce.
    pub trace: PathBuf,
    /// The nonce every genuine trace event carries.
    pub nonce: String,
    /// The kernel's own stderr, for when it fails.
    log: PathBuf,
    /// The cgroup the code runners join, when one could be made.
    containment: Option<Containment>,
    /// The runner last polled, and how many of its forks the cgroup had
    /// refused by then.
    refused_forks: std::sync::Mutex<(u32, u64)>,
    /// How many times the kernel started over (see [`Kernel::reset`]).
    resets: u32,
    /// The private folder: sockets, connection file, trace, and the
    /// learner's working folder, `work`.
    dir: tempfile::TempDir,
}

impl Kernel {
    /// Starts `program run -f …` in a fresh working folder, doing `idle` work
    /// while it waits for cells, and waits until it answers kernel_info. An
    /// error here is the checker's problem, not the learner's.
    pub async fn start(program: &Path, limits: &Limits, idle: IdleWork) -> anyhow::Result<Kernel> {
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("conclab-check-")
            .tempdir()
            .context("creating a folder for the kernel's sockets")?;
        let key = uuid::Uuid::new_v4().to_string();
        let connection = ConnectionInfo {
            ip: dir.path().join("k").to_string_lossy().into_owned(),
            transport: Transport::IPC,
            shell_port: 1,
            iopub_port: 2,
            stdin_port: 3,
            control_port: 4,
            hb_port: 5,
            key: key.clone(),
            signature_scheme: "hmac-sha256".into(),
            kernel_name: Some("conclab".into()),
        };
        let file = dir.path().join("connection.json");
        std::fs::write(&file, serde_json::to_vec(&connection)?)
            .with_context(|| format!("writing {}", file.display()))?;
        let trace = dir.path().join("trace.jsonl");
        // Files the learner's code writes land here, and go with the folder.
        let workdir = dir.path().join(WORKDIR);
        std::fs::create_dir(&workdir).with_context(|| format!("creating {}", workdir.display()))?;
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let log_path = dir.path().join("kernel.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let mut command = std::process::Command::new(program);
        command
            .arg("run")
            .arg("--connection-file")
            .arg(&file)
            .current_dir(&workdir)
            .env(EnvVars::CONCLAB_TRACE, &trace)
            .env(EnvVars::CONCLAB_TRACE_NONCE, &nonce)
            .env(EnvVars::CONCLAB_IDLE_WORK, idle.value())
            .env_remove(EnvVars::CONCLAB_SEED)
            .env(
                EnvVars::CONCLAB_LIMIT_MEMORY_MB,
                (limits.memory_mb * ADDRESS_SPACE_PER_MEMORY).to_string(),
            )
            .env(
                EnvVars::CONCLAB_LIMIT_PROCESSES,
                limits.processes.to_string(),
            )
            .env_remove(EnvVars::CONCLAB_CGROUP)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0);
        let containment = Containment::create(Containment::tasks_for(limits.processes));
        if let Some(containment) = &containment {
            command.env(EnvVars::CONCLAB_CGROUP, containment.dir());
        }
        // SAFETY: prctl is async-signal-safe; it runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting the kernel {}", program.display()))?;
        let signer = Signer::new(&key, "hmac-sha256", uuid::Uuid::new_v4().to_string())?;
        let session = uuid::Uuid::new_v4().to_string();
        let connect = async {
            let shell = Channel::connect(&connection.shell_url(), signer.clone()).await?;
            let control = Channel::connect(&connection.control_url(), signer.clone()).await?;
            let mut iopub = Channel::<SubSocket>::connect(&connection.iopub_url(), signer).await?;
            iopub.socket.subscribe("").await?;
            anyhow::Ok((shell, control, iopub))
        };
        let (shell, control, iopub) =
            match connect_while_alive(&mut child, connect, &log_path).await {
                Ok(sockets) => sockets,
                Err(error) => {
                    process_tree::kill_tree(&[child.id()], &[child.id()]);
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(error);
                }
            };
        let mut kernel = Kernel {
            child,
            shell,
            iopub,
            control,
            session,
            trace,
            nonce,
            log: log_path,
            containment,
            refused_forks: Default::default(),
            resets: 0,
            dir,
        };
        kernel.handshake().await?;
        crate::timing::phase("kernel started", "", started.elapsed());
        let warming = Instant::now();
        kernel.warm_up(limits).await?;
        crate::timing::phase("evcxr ready", "", warming.elapsed());
        Ok(kernel)
    }

    /// Waits for kernel_info's reply and for IOPub to deliver: a cell's
    /// output is only complete once the subscription is live.
    async fn handshake(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        let request = self.message(KernelInfoRequest {});
        self.shell.send(request).await?;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                bail!(
                    "the kernel did not answer kernel_info within 120 s; its stderr ends: {}",
                    self.stderr_tail()
                );
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the kernel exited at start ({status}); its stderr ends: {}",
                    self.stderr_tail()
                );
            }
            match tokio::time::timeout(Duration::from_millis(200), self.shell.read()).await {
                Ok(Ok(reply)) if reply.header.msg_type == "kernel_info_reply" => break,
                Ok(Err(error)) => bail!("reading the kernel's reply: {error}"),
                _ => {}
            }
        }
        // Any IOPub message proves the subscription (iopub_welcome, or the
        // status of another kernel_info).
        loop {
            if Instant::now() > deadline {
                bail!("the kernel's IOPub channel never delivered");
            }
            if let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_millis(300), self.iopub.read()).await
            {
                return Ok(());
            }
            let request = self.message(KernelInfoRequest {});
            self.shell.send(request).await?;
            let _ = tokio::time::timeout(Duration::from_secs(5), self.shell.read()).await;
        }
    }

    /// Runs an empty cell: evcxr starts its context on the first cell, and
    /// those seconds must not count against the notebook's first time limit.
    async fn warm_up(&mut self, limits: &Limits) -> anyhow::Result<()> {
        let run = self
            .execute("()", Duration::from_secs(180), limits, None)
            .await;
        let why = match run.ending {
            Ending::Ok => return Ok(()),
            Ending::Error { ename, evalue, .. } => format!("{ename}: {evalue}"),
            // Its exit status and stderr are in `why` already.
            Ending::KernelDied(why) => bail!("the kernel could not run an empty cell: {why}"),
            Ending::TimedOut | Ending::Hung => "it did not answer within 180 s".to_owned(),
            other => format!("{other:?}"),
        };
        let status = match self.child.try_wait() {
            Ok(Some(status)) => format!("the kernel exited ({status})"),
            _ => "the kernel is still running".to_owned(),
        };
        bail!(
            "the kernel could not run an empty cell: {why}; {status}; its stderr ends: {}",
            self.stderr_tail()
        )
    }

    fn message(&self, content: impl Into<JupyterMessageContent>) -> JupyterMessage {
        let mut message = JupyterMessage::new(content, None);
        message.header.session = self.session.clone();
        message.header.username = "conclab-check".into();
        message
    }

    /// Runs `code` as one cell, within `timeout` and `limits`. Given the
    /// trace's `follower`, a cell whose threads are all stuck ends as
    /// [`Ending::Hung`] seconds after it stopped moving, not at `timeout`.
    pub async fn execute(
        &mut self,
        code: &str,
        timeout: Duration,
        limits: &Limits,
        follower: Option<&mut TraceFollower>,
    ) -> CellRun {
        let mut compiling = Duration::ZERO;
        let mut run = self
            .run_cell(code, timeout, limits, follower, &mut compiling)
            .await;
        run.compile_s = compiling.as_secs_f64();
        run
    }

    /// [`Kernel::execute`], adding to `compiling` the time the code runner
    /// waited for the kernel.
    async fn run_cell(
        &mut self,
        code: &str,
        timeout: Duration,
        limits: &Limits,
        mut follower: Option<&mut TraceFollower>,
        compiling: &mut Duration,
    ) -> CellRun {
        let mut request = ExecuteRequest::new(code.to_owned());
        request.stop_on_error = false;
        request.allow_stdin = false;
        let request = self.message(request);
        let msg_id = request.header.msg_id.clone();
        let runner_before = self.runner_pid();
        let cpu_before = runner_before.map_or(0, cpu_ticks);
        let started_ns = crate::trace::monotonic_ns();
        let start = Instant::now();
        let mut outputs = Vec::new();
        let mut output_bytes = 0;
        let mut ending = None;
        let mut idle = false;
        if let Err(error) = self.shell.send(request).await {
            return self.finish(
                outputs,
                Ending::KernelDied(format!("sending the cell: {error}")),
                started_ns,
                0,
                None,
                Activity::default(),
            );
        }
        let mut watch = tokio::time::interval(WATCH_EVERY);
        let mut ticks: u32 = 0;
        let mut stall = StallWatch::default();
        let mut activity = Activity::default();
        // The limit is for running the cell: while the code runner waits for
        // the kernel to send it (evcxr compiling, slow on a busy machine),
        // the clock does not count, up to COMPILE_ALLOWANCE.
        let mut deadline = start + timeout;
        let mut last_tick = Instant::now();
        while ending.is_none() || !idle {
            let remaining = deadline.saturating_duration_since(Instant::now());
            tokio::select! {
                message = self.iopub.read() => {
                    let Ok(message) = message else { continue };
                    if message.parent_header.as_ref().map(|h| h.msg_id.as_str()) != Some(msg_id.as_str()) {
                        continue;
                    }
                    match message.content {
                        JupyterMessageContent::Status(status) => {
                            idle = status.execution_state == jupyter_protocol::ExecutionState::Idle;
                        }
                        content => {
                            if let Some(output) = nbformat_output(&content, &mut outputs) {
                                output_bytes += output;
                            }
                        }
                    }
                    if output_bytes > limits.output_bytes && ending.is_none() {
                        self.stop_runner();
                        return self.finish(outputs, Ending::OutputFlood, started_ns, cpu_before, runner_before, activity);
                    }
                }
                reply = self.shell.read() => {
                    let Ok(reply) = reply else { continue };
                    if reply.parent_header.as_ref().map(|h| h.msg_id.as_str()) != Some(msg_id.as_str()) {
                        continue;
                    }
                    if let JupyterMessageContent::ExecuteReply(reply) = reply.content {
                        ending = Some(reply.status);
                    }
                }
                _ = tokio::time::sleep(remaining) => {
                    return self.finish(outputs, Ending::TimedOut, started_ns, cpu_before, runner_before, activity);
                }
                _ = watch.tick() => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        let why = format!("the kernel exited ({status}): {}", self.stderr_tail());
                        return self.finish(outputs, Ending::KernelDied(why), started_ns, cpu_before, runner_before, activity);
                    }
                    let since_last = last_tick.elapsed();
                    last_tick = Instant::now();
                    if let Some(runner) = runner_before {
                        let idle = activity.sample(runner);
                        if *compiling < COMPILE_ALLOWANCE && idle {
                            *compiling += since_last;
                            deadline += since_last;
                        }
                    }
                    if let Some(limit) = self.over_limits(limits) {
                        self.stop_runner();
                        return self.finish(outputs, limit, started_ns, cpu_before, runner_before, activity);
                    }
                    ticks += 1;
                    if ending.is_none()
                        && ticks.is_multiple_of(STALL_CHECK_TICKS)
                        && let Some(follower) = follower.as_deref_mut()
                        && self.stuck(&mut stall, follower, started_ns)
                    {
                        return self.finish(outputs, Ending::Hung, started_ns, cpu_before, runner_before, activity);
                    }
                }
            }
        }
        // Decided only now: the error output may come after the reply.
        let ending = match ending.expect("the loop ends with a reply") {
            ReplyStatus::Ok => Ending::Ok,
            _ => error_of(&outputs).unwrap_or(Ending::Error {
                ename: "Error".into(),
                evalue: "the cell failed without saying why".into(),
                traceback: Vec::new(),
            }),
        };
        // One last look: a cell shorter than a watch period, or one whose
        // ticks a busy machine delayed past its reply, still shows which
        // threads lived side by side (a pool's threads outlive its work).
        if let Some(runner) = runner_before {
            activity.sample(runner);
        }
        self.finish(
            outputs,
            ending,
            started_ns,
            cpu_before,
            runner_before,
            activity,
        )
    }

    /// Whether the cell is hung: stuck for [`stall::QUIET_FOR`], or stuck
    /// with a lock-wait cycle in its trace, which proves it at once.
    fn stuck(&self, watch: &mut StallWatch, follower: &mut TraceFollower, started_ns: u64) -> bool {
        let pids = self.learner_pids();
        if pids.is_empty() {
            return false;
        }
        let trace_len = std::fs::metadata(&self.trace).map_or(0, |m| m.len());
        let Some(stuck) = watch.observe(&pids, trace_len) else {
            return false;
        };
        if stuck.for_ >= stall::QUIET_FOR {
            return true;
        }
        let _ = follower.update();
        hang::lock_cycle(&stuck.threads, follower.trace.window(started_ns, u64::MAX))
    }

    fn finish(
        &self,
        outputs: Vec<Value>,
        ending: Ending,
        started_ns: u64,
        cpu_before: u64,
        runner_before: Option<u32>,
        activity: Activity,
    ) -> CellRun {
        let ended_ns = crate::trace::monotonic_ns();
        if let Some(containment) = &self.containment {
            // What the runners use, to keep the cgroup's headroom honest.
            tracing::debug!(tasks = ?containment.tasks(), "tasks in the runners' cgroup");
        }
        // CPU of the same runner process only: a restarted runner starts at zero.
        let cpu_after = runner_before
            .filter(|&pid| Some(pid) == self.runner_pid())
            .map_or(cpu_before, cpu_ticks);
        CellRun {
            outputs,
            ending,
            started_ns,
            ended_ns,
            runner_cpu_s: cpu_after.saturating_sub(cpu_before) as f64
                / process_tree::clock_ticks_per_second() as f64,
            activity,
            compile_s: 0.0,
        }
    }

    fn over_limits(&self, limits: &Limits) -> Option<Ending> {
        let runner = self.runner_pid()?;
        let pids = self.runner_tree(runner);
        if pids.len() > limits.processes {
            return Some(Ending::TooManyProcesses(pids.len()));
        }
        if let Some(containment) = &self.containment {
            let refused = containment.refused_forks(runner);
            let mut seen = self.refused_forks.lock().unwrap_or_else(|p| p.into_inner());
            // A new runner's count starts where it is first seen.
            let before = if seen.0 == runner { seen.1 } else { refused };
            *seen = (runner, refused);
            if refused > before {
                let tasks = containment.tasks().unwrap_or(0) as usize;
                return Some(Ending::TooManyProcesses(tasks.max(pids.len())));
            }
        }
        let rss: u64 = pids.iter().map(|&pid| process_tree::rss_bytes(pid)).sum();
        (rss > limits.memory_mb << 20).then_some(Ending::MemoryExceeded(rss >> 20))
    }

    /// Starts the kernel over for another notebook of the same submission,
    /// as a fresh kernel would be (see [`ResetRequest`]): the learner's
    /// processes are killed, their working folder emptied, and the new code
    /// runner traces to a new file with a new nonce. A kernel that could not
    /// start over must be shut down, not used again.
    ///
    /// Only for the same submission: what one learner's notebook left in
    /// the kernel's build folder could reach the next notebook's code.
    pub async fn reset(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        self.stop_runner();
        let workdir = self.dir.path().join(WORKDIR);
        empty_folder(&workdir).with_context(|| format!("emptying {}", workdir.display()))?;
        self.resets += 1;
        let request = ResetRequest {
            trace: self.dir.path().join(format!("trace-{}.jsonl", self.resets)),
            nonce: uuid::Uuid::new_v4().simple().to_string(),
        };
        let message = self.message(request.to_content());
        let msg_id = message.header.msg_id.clone();
        self.shell.send(message).await?;
        let deadline = Instant::now() + RESET_WITHIN;
        let reply = loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the kernel exited while starting over ({status}); its stderr ends: {}",
                    self.stderr_tail()
                );
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                bail!(
                    "the kernel did not start over within {} s",
                    RESET_WITHIN.as_secs()
                );
            }
            let wait = remaining.min(Duration::from_millis(200));
            let Ok(read) = tokio::time::timeout(wait, self.shell.read()).await else {
                continue;
            };
            let message = read.context("reading the kernel's reply")?;
            if message.parent_header.as_ref().map(|h| h.msg_id.as_str()) == Some(msg_id.as_str())
                && let Some(reply) = ResetReply::from_content(&message.content)
            {
                break reply.context("reading the kernel's reset reply")?;
            }
        };
        if let Some(error) = reply.error {
            bail!("the kernel could not start over: {error}");
        }
        let _ = std::fs::remove_file(&self.trace);
        self.trace = request.trace;
        self.nonce = request.nonce;
        crate::timing::phase("kernel reset", "", started.elapsed());
        Ok(())
    }

    /// Whether the kernel process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The code runner: the kernel's child running the same program.
    pub fn runner_pid(&self) -> Option<u32> {
        let kernel = self.child.id();
        let program = std::fs::read_link(format!("/proc/{kernel}/exe")).ok()?;
        process_tree::descendants(&[kernel])
            .into_iter()
            .filter(|&pid| {
                pid != kernel
                    && process_tree::process_stat(pid).is_some_and(|stat| stat.ppid == kernel)
            })
            .find(|pid| {
                std::fs::read_link(format!("/proc/{pid}/exe")).ok().as_ref() == Some(&program)
            })
    }

    /// The learner's processes: the code runner and everything it started.
    pub fn learner_pids(&self) -> Vec<u32> {
        self.runner_pid()
            .map(|runner| self.runner_tree(runner))
            .unwrap_or_default()
    }

    /// `runner` first, then its descendants, then whatever else is in its
    /// cgroup: a process that left the session and was handed to init is
    /// no longer a descendant, but it stays in the cgroup.
    fn runner_tree(&self, runner: u32) -> Vec<u32> {
        let mut pids = process_tree::descendants(&[runner]);
        if let Some(containment) = &self.containment {
            let known: std::collections::HashSet<u32> = pids.iter().copied().collect();
            let escaped: Vec<u32> = containment
                .runner_pids(runner)
                .into_iter()
                .filter(|pid| !known.contains(pid))
                .collect();
            pids.extend(escaped);
        }
        pids
    }

    /// Kills the code runner's process group: the kernel notices, reports
    /// the cell as stopped and starts a fresh runner.
    pub fn stop_runner(&self) {
        if let Some(runner) = self.runner_pid() {
            // The cgroup first: one read finds them all, however many a
            // fork bomb made; the walk then finds any that never joined.
            if let Some(containment) = &self.containment {
                containment.kill_runner(runner);
            }
            process_tree::kill_tree(&[runner], &[runner]);
        }
    }

    /// Kills the kernel, the runner and everything they started.
    pub fn kill(&mut self) {
        let kernel = self.child.id();
        let mut groups = vec![kernel];
        groups.extend(self.runner_pid());
        process_tree::kill_tree(&groups, &[kernel]);
        if let Some(containment) = &self.containment {
            containment.kill_all();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks the kernel to shut down, then makes sure nothing is left.
    pub async fn shutdown(mut self) {
        // The learner's processes go first, while they are still below the
        // runner: the kernel kills its runner on the way out, and the
        // runner's orphans would then pass to init, out of the walk's sight.
        self.stop_runner();
        let request = self.message(ShutdownRequest { restart: false });
        if self.control.send(request).await.is_ok() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        self.kill();
    }

    fn stderr_tail(&self) -> String {
        stderr_tail(&self.log)
    }
}

/// Removes everything in `dir`, keeping `dir`: it is the kernel's working
/// folder, which a deleted folder could not be again.
fn empty_folder(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Lines of the kernel's stderr an error quotes.
const STDERR_LINES: usize = 5;

/// The last lines of the kernel's stderr log, or a word saying it has none.
fn stderr_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    match &lines[lines.len().saturating_sub(STDERR_LINES)..] {
        [] => "(nothing)".to_owned(),
        tail => tail.join("\n"),
    }
}

/// Runs `connect` while watching the kernel: a kernel that exits before
/// its sockets answer is reported with its exit status and stderr at once,
/// not after the connection's own timeout.
async fn connect_while_alive<T>(
    child: &mut std::process::Child,
    connect: impl std::future::Future<Output = anyhow::Result<T>>,
    log: &Path,
) -> anyhow::Result<T> {
    tokio::pin!(connect);
    let mut poll = tokio::time::interval(WATCH_EVERY);
    loop {
        tokio::select! {
            result = &mut connect => return result.context("connecting to the kernel's sockets"),
            _ = poll.tick() => {
                if let Some(status) = child.try_wait()? {
                    bail!("the kernel exited at start ({status}); its stderr ends: {}", stderr_tail(log));
                }
            }
        }
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// Appends a Jupyter output message as an nbformat output; returns its size.
fn nbformat_output(content: &JupyterMessageContent, outputs: &mut Vec<Value>) -> Option<usize> {
    let output = match content {
        JupyterMessageContent::StreamContent(stream) => json!({
            "output_type": "stream",
            "name": serde_json::to_value(&stream.name).ok()?,
            "text": stream.text,
        }),
        JupyterMessageContent::DisplayData(display) => json!({
            "output_type": "display_data",
            "data": serde_json::to_value(&display.data).ok()?,
            "metadata": display.metadata,
        }),
        JupyterMessageContent::ExecuteResult(result) => json!({
            "output_type": "execute_result",
            "data": serde_json::to_value(&result.data).ok()?,
            "metadata": result.metadata,
            "execution_count": serde_json::to_value(result.execution_count).ok()?,
        }),
        JupyterMessageContent::ErrorOutput(error) => json!({
            "output_type": "error",
            "ename": error.ename,
            "evalue": error.evalue,
            "traceback": error.traceback,
        }),
        JupyterMessageContent::ClearOutput(_) => {
            outputs.clear();
            return Some(0);
        }
        _ => return None,
    };
    let size = output.to_string().len();
    outputs.push(output);
    Some(size)
}

fn error_of(outputs: &[Value]) -> Option<Ending> {
    let error = outputs.iter().rev().find(|o| o["output_type"] == "error")?;
    Some(Ending::Error {
        ename: error["ename"].as_str().unwrap_or_default().to_owned(),
        evalue: error["evalue"].as_str().unwrap_or_default().to_owned(),
        traceback: serde_json::from_value(error["traceback"].clone()).unwrap_or_default(),
    })
}

/// CPU ticks of a whole process so far, its finished threads included.
fn cpu_ticks(pid: u32) -> u64 {
    process_tree::process_stat(pid).map_or(0, |stat| stat.cpu_ticks)
}
