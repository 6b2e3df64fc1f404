//! Running one notebook's steps in a kernel as fresh as a new one (a new one,
//! or one started over, see [`crate::lanes`]) and deciding its checks:
//! test cells, stored outputs, concurrency properties, perturbed runs, and
//! what a hang or a stopped cell means for the cells after it.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::compare;
use crate::hang;
use crate::kernel::{CellRun, Ending, Kernel, Limits, ThreadActivity};
use crate::plan::{Role, Step};
use crate::process_tree;
use crate::property::{self, Evidence, Lifetimes, Verdict};
use crate::report::{Check, CheckKind, NotebookReport, Outcome, Timeline};
use crate::settings::{Property, PropertyKind};
use crate::timeline;
use crate::timing;
use crate::trace::{Event, TraceFollower, What};
use conclab_wire::IdleWork;
use labkit::trace::UnnamedThreads;

/// What the run is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A learner's solutions: report tests, properties, failing cells.
    Grade,
    /// The source itself: every cell must run clean and match its stored
    /// output, every test pass on every perturbed run.
    Validate,
    /// A learner's own notebook, checked from inside it: tests and
    /// properties as in grading, but test outputs are not compared, since a
    /// released notebook stores none.
    Feedback,
}

impl Mode {
    /// Whether setup and solution cells that ran clean are left out of the
    /// report: only validation vouches for them.
    fn hides_clean_runs(self) -> bool {
        self != Mode::Validate
    }
}

/// How to run notebooks.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The conclab-kernel program.
    pub kernel: std::path::PathBuf,
    /// Limits per cell.
    pub limits: Limits,
    /// What the run is for.
    pub mode: Mode,
}

/// Runs `steps` of the notebook `name` in `kept` started over, or in a new
/// kernel (see [`crate::lanes`]); returns the kernel, for the next notebook
/// of the same submission.
pub async fn run_notebook(
    name: &str,
    steps: &[Step],
    settings: &Settings,
    kept: Option<Kernel>,
) -> (NotebookReport, Option<Kernel>) {
    let started = Instant::now();
    let mut checks = Vec::new();
    let mut left = None;
    match crate::lanes::kernel_for_next(kept, settings).await {
        Ok(kernel) => {
            let mut run = NotebookRun {
                follower: TraceFollower::new(&kernel.trace, &kernel.nonce),
                kernel,
                settings,
                checks: &mut checks,
                blocked: None,
                blocked_by: None,
                uses_rayon: false,
            };
            for step in steps {
                run.step(step).await;
            }
            left = Some(run.kernel);
        }
        Err(error) => checks.push(Check::about_the_run(
            "kernel",
            CheckKind::Run,
            Outcome::Error,
            steps.iter().map(Step::points).sum(),
            format!("the checker could not start the kernel: {error:#}"),
        )),
    }
    timing::phase("notebook", "", started.elapsed());
    let report = NotebookReport {
        notebook: name.to_owned(),
        checks,
        time_s: started.elapsed().as_secs_f64(),
    };
    (report, left)
}

/// A kernel started before its notebook was known (`feedback --spare`):
/// the next notebook run takes it instead of starting one.
static SPARE: std::sync::Mutex<Option<Kernel>> = std::sync::Mutex::new(None);

/// Keeps `kernel` for the next notebook run.
pub fn keep_spare(kernel: Kernel) {
    *SPARE.lock().unwrap_or_else(|p| p.into_inner()) = Some(kernel);
}

/// Starts a kernel that does `idle` work while it waits for cells, trying
/// once more if the first start fails: a start can fail for reasons that
/// pass (a machine short of memory for a moment), and a learner's notebook
/// must not be reported ungradable for one. A spare kept by [`keep_spare`]
/// is taken instead, if it lives.
pub async fn start_kernel(settings: &Settings, idle: IdleWork) -> anyhow::Result<Kernel> {
    let spare = SPARE.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(mut kernel) = spare {
        if kernel.is_alive() {
            return Ok(kernel);
        }
        tracing::warn!("the spare kernel died while it waited; starting another");
    }
    match Kernel::start(&settings.kernel, &settings.limits, idle).await {
        Ok(kernel) => Ok(kernel),
        Err(first) => {
            tracing::warn!("the kernel failed to start, trying once more: {first:#}");
            Kernel::start(&settings.kernel, &settings.limits, idle)
                .await
                .map_err(|again| {
                    anyhow::anyhow!("{again:#} (a second try; the first failed too: {first:#})")
                })
        }
    }
}

struct NotebookRun<'a> {
    kernel: Kernel,
    follower: TraceFollower,
    settings: &'a Settings,
    checks: &'a mut Vec<Check>,
    /// Why later cells cannot run: `step05-transfer-hidden hung`.
    blocked: Option<String>,
    /// The check that tells why: the cell that hung or was stopped.
    blocked_by: Option<String>,
    /// Whether code run so far may have started a rayon pool.
    uses_rayon: bool,
}

/// One run of a test cell, judged.
struct Judged {
    passed: bool,
    message: String,
    details: String,
    properties: Vec<(String, PropertyResult)>,
}

enum PropertyResult {
    Holds,
    Fails {
        message: String,
        evidence: String,
        timeline: Option<Timeline>,
    },
    Inconclusive(String),
    NotRun(String),
}

impl NotebookRun<'_> {
    async fn step(&mut self, step: &Step) {
        if let Some(blocker) = &self.blocked {
            let message = format!("not run: {blocker}");
            self.not_run(step, &message);
            return;
        }
        let Some(code) = &step.code else {
            self.push(step, CheckKind::Submission, Outcome::Failed, 0.0, format!(
                "the submission has no cell with grade_id {}: write your solution in that cell, and keep its metadata",
                step.label
            ), String::new(), None, 0.0);
            return;
        };
        let watches_leaks = step
            .settings
            .properties
            .iter()
            .any(|p| p.kind == PropertyKind::NoLeaks);
        let threads_before = if watches_leaks {
            self.runner_threads()
        } else {
            HashSet::new()
        };
        let rejected_before = self.follower.trace.rejected.len();
        self.uses_rayon |= code.contains("rayon") || code.contains("par_");
        let run = self
            .kernel
            .execute(
                code,
                step.timeout,
                &self.settings.limits,
                Some(&mut self.follower),
            )
            .await;
        run.log_phases(&step.label);
        if self.stopped(step, &run).await {
            return;
        }
        match step.role {
            Role::Setup | Role::Solution => self.judge_plain_cell(step, &run),
            Role::Test { points } => {
                let judging = Instant::now();
                let mut judged = self
                    .judge_test(step, &run, &threads_before, rejected_before)
                    .await;
                timing::phase("verdicts", &step.label, judging.elapsed());
                // Each run is judged on its own events: a hot lock's trace of
                // every run at once would not fit in a job's memory.
                self.follower.forget_before(run.ended_ns);
                let mut seed = None;
                let perturbed = judged.passed && step.settings.perturbed_runs > 0;
                if judged.passed {
                    for _ in 0..step.settings.perturbed_runs {
                        let trial_seed = fastrand::u64(1..u64::from(u32::MAX));
                        let rerun = Instant::now();
                        let (again, stopped) = self.perturbed_run(step, code, trial_seed).await;
                        timing::phase("perturbed run", &step.label, rerun.elapsed());
                        if stopped {
                            return;
                        }
                        if !again.passed {
                            judged = again;
                            seed = Some(trial_seed);
                            break;
                        }
                    }
                }
                if perturbed {
                    let reset = "labkit::perturb::set_seed(None);";
                    let limits = self.settings.limits;
                    self.kernel
                        .execute(reset, Duration::from_secs(60), &limits, None)
                        .await;
                }
                self.record_test(step, points, judged, seed, run.time_s());
            }
        }
        self.follower.forget_before(run.ended_ns);
    }

    /// Runs the test cell again under `seed`; true in the second place when
    /// the run stopped the notebook.
    async fn perturbed_run(&mut self, step: &Step, code: &str, seed: u64) -> (Judged, bool) {
        // In the same cell, so that nothing else runs between the seed and
        // the test.
        let seeded = format!("labkit::perturb::set_seed(Some({seed}));\n{code}");
        let threads_before = self.runner_threads();
        let rejected_before = self.follower.trace.rejected.len();
        let limits = self.settings.limits;
        let run = self
            .kernel
            .execute(&seeded, step.timeout, &limits, Some(&mut self.follower))
            .await;
        if self.stopped_with_seed(step, &run, Some(seed)).await {
            return (no_judgement(), true);
        }
        let judged = self
            .judge_test(step, &run, &threads_before, rejected_before)
            .await;
        self.follower.forget_before(run.ended_ns);
        (judged, false)
    }

    async fn stopped(&mut self, step: &Step, run: &CellRun) -> bool {
        self.stopped_with_seed(step, run, None).await
    }

    /// Handles the endings after which the notebook cannot go on: a hang
    /// (diagnosed, then killed), a stopped runner, a dead kernel.
    async fn stopped_with_seed(&mut self, step: &Step, run: &CellRun, seed: Option<u64>) -> bool {
        let mut hang_picture = None;
        let (why, blocker, details) = match &run.ending {
            Ending::TimedOut | Ending::Hung => {
                let _ = self.follower.update();
                let events = self
                    .follower
                    .trace
                    .window(run.started_ns, u64::MAX)
                    .to_vec();
                let panic = cell_panic(&events);
                let pids = self.kernel.learner_pids();
                let (origin_ns, runner_pid) =
                    (run.started_ns, self.kernel.runner_pid().unwrap_or(0));
                let diagnosing = Instant::now();
                let (diagnosis, picture) = tokio::task::spawn_blocking(move || {
                    let diagnosis = hang::diagnose(&pids, &events, Duration::from_millis(300));
                    let picture = hang::moment(&events, &diagnosis)
                        .map(|moment| timeline::draw(&events, origin_ns, runner_pid, &moment));
                    (diagnosis, picture)
                })
                .await
                .unwrap_or_else(|_| {
                    let diagnosis = hang::Diagnosis {
                        summary: "no thread made progress".into(),
                        details: String::new(),
                        culprit: None,
                    };
                    (diagnosis, None)
                });
                timing::phase("hang diagnosis", &step.label, diagnosing.elapsed());
                self.kernel.kill();
                let stuck = match run.ending {
                    Ending::Hung => "hung".to_owned(),
                    _ => format!("did not finish within {} s", step.timeout.as_secs_f64()),
                };
                let mut details = diagnosis.details;
                if let Some(stderr) = stderr_tail(&run.outputs) {
                    details.push_str("\nthe cell's stderr:\n");
                    details.push_str(&stderr);
                }
                // An assertion that failed on the cell's own thread comes
                // first: inside thread::scope it then waits for threads its
                // failure left blocked, and that hang is only the consequence.
                let why = match panic {
                    Some(panic) => format!(
                        "{} failed: {panic}; then the cell {stuck}, waiting for threads that could not end: {}",
                        step.label, diagnosis.summary
                    ),
                    None => format!("{} {stuck}: {}", step.label, diagnosis.summary),
                };
                hang_picture = picture;
                (why, format!("{} hung", step.label), details)
            }
            Ending::OutputFlood => (
                format!(
                    "{} printed more than {} KiB and was stopped: print less, or only a summary",
                    step.label,
                    self.settings.limits.output_bytes >> 10
                ),
                format!("{} was stopped for printing too much", step.label),
                String::new(),
            ),
            Ending::MemoryExceeded(mib) => (
                format!(
                    "{} used {mib} MiB of memory, more than the limit of {} MiB, and was stopped",
                    step.label, self.settings.limits.memory_mb
                ),
                format!("{} was stopped for using too much memory", step.label),
                String::new(),
            ),
            Ending::TooManyProcesses(count) => (
                format!(
                    "{} had {count} processes running, more than the limit of {}, and was stopped: start a fixed number of workers and wait for them",
                    step.label, self.settings.limits.processes
                ),
                format!("{} was stopped for starting too many processes", step.label),
                String::new(),
            ),
            Ending::KernelDied(reason) => (
                format!("the kernel died while {} ran: {reason}", step.label),
                format!("the kernel died in {}", step.label),
                String::new(),
            ),
            Ending::Ok | Ending::Error { .. } => return false,
        };
        let kind = match step.role {
            Role::Test { .. } => CheckKind::Test,
            _ => CheckKind::Run,
        };
        self.push(
            step,
            kind,
            Outcome::Failed,
            0.0,
            why.clone(),
            details,
            seed,
            run.time_s(),
        );
        if let Some(check) = self.checks.last_mut() {
            check.timeline = hang_picture;
        }
        let hung = matches!(run.ending, Ending::TimedOut | Ending::Hung);
        // The diagnosis is told once, under the cell's own check; its
        // properties point there.
        for property in &step.settings.properties {
            let (outcome, message) = if property.kind == PropertyKind::NoHang && hung {
                (Outcome::Failed, why.clone())
            } else {
                (Outcome::NotRun, format!("not run: {blocker}"))
            };
            self.push_property(
                step,
                property,
                outcome,
                message,
                String::new(),
                seed,
                run.time_s(),
            );
            if let Some(check) = self.checks.last_mut() {
                check.evidence_in = Some(step.label.clone());
            }
        }
        // The runner was stopped: everything defined so far is gone.
        self.blocked = Some(blocker);
        self.blocked_by = Some(step.label.clone());
        true
    }

    fn judge_plain_cell(&mut self, step: &Step, run: &CellRun) {
        let kind = CheckKind::Run;
        let failure = match &run.ending {
            Ending::Error {
                ename,
                evalue,
                traceback,
            } => Some((
                match step.role {
                    Role::Solution => format!(
                        "{} does not run: {ename}: {}",
                        step.label,
                        first_line(evalue)
                    ),
                    _ => format!("{} failed: {ename}: {}", step.label, first_line(evalue)),
                },
                traceback.join("\n"),
            )),
            _ if self.settings.mode == Mode::Validate => {
                compare::compare(&step.stored_outputs, &run.outputs, &step.settings.compare)
                    .err()
                    .map(|mismatch| {
                        (
                            format!("{}: {}", step.label, mismatch.message),
                            mismatch.diff,
                        )
                    })
            }
            _ => None,
        };
        match failure {
            Some((message, details)) => self.push(
                step,
                kind,
                Outcome::Failed,
                0.0,
                message,
                details,
                None,
                run.time_s(),
            ),
            // Outside validation, cells that ran clean are not news, and a
            // solution that merely compiled is no pass of its exercise:
            // its tests and properties say whether it is right.
            None if self.settings.mode.hides_clean_runs() => {}
            None => self.push(
                step,
                kind,
                Outcome::Passed,
                0.0,
                "ran clean".into(),
                String::new(),
                None,
                run.time_s(),
            ),
        }
    }

    async fn judge_test(
        &mut self,
        step: &Step,
        run: &CellRun,
        threads_before: &HashSet<u32>,
        rejected_before: usize,
    ) -> Judged {
        let _ = self.follower.update();
        let (mut passed, mut message, mut details) = match &run.ending {
            Ending::Error {
                evalue, traceback, ..
            } => {
                let mut details = traceback.join("\n");
                // A thread's panic goes to stderr, not into the error: often
                // it is why the assertion failed (a worker died mid-task).
                if let Some(stderr) = stderr_tail(&run.outputs) {
                    details.push_str("\n\nthe cell's stderr:\n");
                    details.push_str(&stderr);
                }
                (false, first_line(evalue).to_owned(), details)
            }
            _ if self.settings.mode == Mode::Feedback => (true, "passed".to_owned(), String::new()),
            _ => match compare::compare(&step.stored_outputs, &run.outputs, &step.settings.compare)
            {
                Ok(()) => (true, "passed".to_owned(), String::new()),
                Err(mismatch) => (false, mismatch.message, mismatch.diff),
            },
        };
        let forged = &self.follower.trace.rejected
            [rejected_before.min(self.follower.trace.rejected.len())..];
        if !forged.is_empty() {
            passed = false;
            message = "the trace file holds lines labkit did not write: the cell's code wrote to the checker's trace, which earns nothing".into();
            details = forged
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n");
        }
        let events = self.follower.trace.window(run.started_ns, run.ended_ns);
        let lifetimes: Lifetimes = run
            .activity
            .threads
            .iter()
            .map(|(&tid, thread)| (tid, thread.sampled))
            .collect();
        tracing::debug!(cell = %step.label, samples = run.activity.samples, threads = ?lifetimes.keys().collect::<Vec<_>>(), "threads the samples saw");
        let evidence = Evidence {
            events,
            origin_ns: run.started_ns,
            runner_pid: self.kernel.runner_pid().unwrap_or(0),
            lifetimes: &lifetimes,
        };
        let test_ok = matches!(run.ending, Ending::Ok);
        let mut properties = Vec::new();
        for property in &step.settings.properties {
            let result = match property::decide(property, &evidence) {
                Some(Verdict::Holds) => PropertyResult::Holds,
                Some(Verdict::Fails {
                    message,
                    evidence: text,
                    moment,
                }) => PropertyResult::Fails {
                    message,
                    evidence: text,
                    timeline: moment.map(|moment| {
                        timeline::draw(
                            evidence.events,
                            evidence.origin_ns,
                            evidence.runner_pid,
                            &moment,
                        )
                    }),
                },
                Some(Verdict::Inconclusive(why)) => PropertyResult::Inconclusive(why),
                None => match property.kind {
                    PropertyKind::NoHang => PropertyResult::Holds,
                    PropertyKind::NoLeaks => self.leaks(threads_before).await,
                    PropertyKind::SleepsNotSpins => spinning(
                        run,
                        evidence.runner_pid,
                        self.follower.trace.unnamed.clone(),
                    ),
                    // The test's own assertions decide the rest.
                    _ if test_ok => PropertyResult::Holds,
                    _ => PropertyResult::NotRun(format!("the test failed first: {message}")),
                },
            };
            properties.push((property::label(property), result));
        }
        let broken: Vec<String> = properties
            .iter()
            .filter(|(_, result)| matches!(result, PropertyResult::Fails { .. }))
            .map(|(label, _)| label.clone())
            .collect();
        if passed && !broken.is_empty() {
            passed = false;
            message = format!("{}: {}", Check::PROPERTIES_FAILED, broken.join(", "));
        }
        Judged {
            passed,
            message,
            details,
            properties,
        }
    }

    fn record_test(
        &mut self,
        step: &Step,
        points: f64,
        judged: Judged,
        seed: Option<u64>,
        time_s: f64,
    ) {
        let outcome = if judged.passed {
            Outcome::Passed
        } else {
            Outcome::Failed
        };
        let message = match seed {
            Some(seed) if !judged.passed => format!(
                "{} (under a perturbed schedule, seed {seed})",
                judged.message
            ),
            _ => judged.message,
        };
        let score = if judged.passed { points } else { 0.0 };
        let seed = seed.filter(|_| !judged.passed);
        self.checks.push(Check {
            id: step.label.clone(),
            cell: step.label.clone(),
            exercise: step.exercise.clone(),
            kind: CheckKind::Test,
            outcome,
            score,
            max_score: points,
            message,
            details: judged.details,
            seed,
            time_s,
            evidence_in: None,
            timeline: None,
        });
        for ((label, result), property) in
            judged.properties.into_iter().zip(&step.settings.properties)
        {
            let (outcome, message, evidence, timeline) = match result {
                PropertyResult::Holds => (
                    Outcome::Passed,
                    note_or(property, "holds"),
                    String::new(),
                    None,
                ),
                PropertyResult::Inconclusive(why) => (
                    Outcome::Passed,
                    format!("inconclusive, not held against you: {why}"),
                    String::new(),
                    None,
                ),
                PropertyResult::Fails {
                    message,
                    evidence,
                    timeline,
                } => (Outcome::Failed, message, evidence, timeline),
                PropertyResult::NotRun(why) => (Outcome::NotRun, why, String::new(), None),
            };
            self.checks.push(Check {
                id: format!("{}/{label}", step.label),
                cell: step.label.clone(),
                exercise: step.exercise.clone(),
                kind: CheckKind::Property,
                outcome,
                score: 0.0,
                max_score: 0.0,
                message,
                details: evidence,
                seed: seed.filter(|_| outcome == Outcome::Failed),
                time_s,
                evidence_in: None,
                timeline,
            });
        }
    }

    /// Threads and processes the cell left behind, after a short grace for
    /// threads that are already on their way out.
    async fn leaks(&self, threads_before: &HashSet<u32>) -> PropertyResult {
        let mut last = (Vec::new(), Vec::new());
        for _ in 0..LEAK_GRACE_LOOKS {
            tokio::time::sleep(LEAK_GRACE_EVERY).await;
            last = self.left_behind(threads_before);
            if last.0.is_empty() && last.1.is_empty() {
                return PropertyResult::Holds;
            }
        }
        let (threads, processes) = last;
        let mut parts = Vec::new();
        if !threads.is_empty() {
            parts.push(format!(
                "{} thread(s) still running after the cell ended: {} (join every thread you spawn, or let its channel close so it can end)",
                threads.len(),
                shown(&threads)
            ));
        }
        if !processes.is_empty() {
            parts.push(format!(
                "{} child process(es) left behind: {} (wait() for every child you start)",
                processes.len(),
                shown(&processes)
            ));
        }
        // Tids and pids are for the folded evidence, not the message.
        let evidence = threads
            .iter()
            .chain(&processes)
            .map(|left| format!("{}: {}", left.shown, left.ids))
            .collect::<Vec<_>>()
            .join("\n");
        PropertyResult::Fails {
            message: parts.join("; "),
            evidence,
            timeline: None,
        }
    }

    fn left_behind(&self, threads_before: &HashSet<u32>) -> (Vec<LeftBehind>, Vec<LeftBehind>) {
        let Some(runner) = self.kernel.runner_pid() else {
            return (Vec::new(), Vec::new());
        };
        let samples = process_tree::sample(&[runner]);
        let runner_name = samples
            .iter()
            .find(|t| t.tid == runner)
            .map(|t| t.name.clone());
        let mut new: Vec<_> = samples
            .into_iter()
            .filter(|t| !threads_before.contains(&t.tid))
            .collect();
        // evcxr links a copy of rayon into every cell, and each copy starts
        // its global pool (one unnamed thread per core) on first use and
        // keeps it. Those are not the learner's leaks, but they cannot be
        // told from an unnamed leaked thread: allow one pool's worth.
        if self.uses_rayon {
            let pool = std::thread::available_parallelism().map_or(1, usize::from);
            let mut allowed = pool;
            new.retain(|t| {
                let pool_like = Some(&t.name) == runner_name.as_ref() && t.state == 'S';
                if pool_like && allowed > 0 {
                    allowed -= 1;
                    return false;
                }
                true
            });
        }
        // Named as the trace named them: an unnamed thread the cell traced
        // keeps its number, one it never traced takes the next.
        let mut unnamed = self.follower.trace.unnamed.clone();
        let threads = new
            .into_iter()
            .map(|t| {
                let traced = if Some(&t.name) == runner_name.as_ref() {
                    labkit::trace::unnamed_thread_name(t.tid.into())
                } else {
                    t.name.clone()
                };
                LeftBehind {
                    shown: unnamed.show(runner.into(), t.tid.into(), &traced),
                    ids: format!("tid {}, state {}", t.tid, t.state),
                    still: None,
                }
            })
            .collect();
        // Descendants, and those in the runner's cgroup that left the tree.
        let processes = self
            .kernel
            .learner_pids()
            .into_iter()
            .filter(|&pid| pid != runner)
            .map(|pid| {
                let sample = process_tree::sample(&[pid]);
                let (name, state) = sample
                    .first()
                    .map_or(("?".to_owned(), '?'), |t| (t.process.clone(), t.state));
                let still = if state == 'Z' {
                    "exited but never waited for: a zombie"
                } else {
                    "still running"
                };
                LeftBehind {
                    shown: name,
                    ids: format!("pid {pid}, state {state}"),
                    still: Some(still),
                }
            })
            .collect();
        (threads, processes)
    }

    fn runner_threads(&self) -> HashSet<u32> {
        self.kernel
            .runner_pid()
            .map(|runner| {
                process_tree::sample(&[runner])
                    .into_iter()
                    .map(|t| t.tid)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn not_run(&mut self, step: &Step, message: &str) {
        let kind = match step.role {
            Role::Test { .. } => CheckKind::Test,
            _ => CheckKind::Run,
        };
        if step.role == Role::Setup && self.settings.mode.hides_clean_runs() {
            return;
        }
        let first = self.checks.len();
        self.push(
            step,
            kind,
            Outcome::NotRun,
            0.0,
            message.to_owned(),
            String::new(),
            None,
            0.0,
        );
        for property in &step.settings.properties {
            self.push_property(
                step,
                property,
                Outcome::NotRun,
                message.to_owned(),
                String::new(),
                None,
                0.0,
            );
        }
        for check in &mut self.checks[first..] {
            check.evidence_in.clone_from(&self.blocked_by);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        step: &Step,
        kind: CheckKind,
        outcome: Outcome,
        score: f64,
        message: String,
        details: String,
        seed: Option<u64>,
        time_s: f64,
    ) {
        self.checks.push(Check {
            id: step.label.clone(),
            cell: step.label.clone(),
            exercise: step.exercise.clone(),
            kind,
            outcome,
            score,
            max_score: step.points(),
            message,
            details,
            seed,
            time_s,
            evidence_in: None,
            timeline: None,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn push_property(
        &mut self,
        step: &Step,
        property: &Property,
        outcome: Outcome,
        message: String,
        details: String,
        seed: Option<u64>,
        time_s: f64,
    ) {
        self.checks.push(Check {
            id: format!("{}/{}", step.label, property::label(property)),
            cell: step.label.clone(),
            exercise: step.exercise.clone(),
            kind: CheckKind::Property,
            outcome,
            score: 0.0,
            max_score: 0.0,
            message,
            details,
            seed,
            time_s,
            evidence_in: None,
            timeline: None,
        });
    }
}

/// A thread or process a cell left behind.
struct LeftBehind {
    /// Its name in the message: a thread's name, a process's command.
    shown: String,
    /// Its tid or pid and state, for the evidence.
    ids: String,
    /// For a process: why it counts (a zombie, or still running).
    still: Option<&'static str>,
}

/// The message's list of what was left behind.
fn shown(left: &[LeftBehind]) -> String {
    left.iter()
        .map(|left| match left.still {
            Some(still) => format!("{} ({still})", left.shown),
            None => left.shown.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Blocked threads must sleep. Every 50 ms the runner's threads were
/// sampled: a thread that spins is runnable (R) in most samples *and* burns
/// CPU. Being runnable alone proves nothing on a busy machine, where a
/// thread that was just woken waits for a CPU in state R; a thread that
/// waits by sleeping uses next to no CPU, however long it is runnable.
///
/// Threads are named as the trace named them (`unnamed`, of the code runner
/// `runner`): tids go to the evidence.
fn spinning(run: &CellRun, runner: u32, mut unnamed: UnnamedThreads) -> PropertyResult {
    let spinners: Vec<(u32, String)> = run
        .activity
        .threads
        .iter()
        .filter(|(_, t)| spins(t))
        .map(|(&tid, t)| {
            let name = unnamed.show(runner.into(), tid.into(), &t.name);
            (tid, format!(
                "{name} was running in {} of the {} samples it was alive in, and used {:.2} s of CPU in {:.2} s",
                t.runnable,
                t.seen,
                t.cpu_s(),
                t.alive_s()
            ))
        })
        .collect();
    if spinners.is_empty() {
        return PropertyResult::Holds;
    }
    let mut evidence: Vec<String> = spinners
        .iter()
        .map(|(tid, spinner)| format!("tid {tid}: {spinner}"))
        .collect();
    evidence.push(format!(
        "the cell's code also used {:.2} s of CPU in {:.2} s of wall time",
        run.runner_cpu_s,
        run.time_s()
    ));
    PropertyResult::Fails {
        message: format!(
            "a blocked thread should sleep, not spin: {}; wait on a Condvar (in a while loop) instead of looping",
            spinners
                .iter()
                .map(|(_, spinner)| spinner.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        evidence: evidence.join("\n"),
        timeline: None,
    }
}

/// Samples a spinning thread must be seen runnable in, at least.
const SPIN_MIN_RUNNABLE: usize = 3;
/// CPU a spinning thread must have used, at least (two clock ticks): a
/// thread that takes a lock and pushes a few items uses microseconds.
const SPIN_MIN_CPU_S: f64 = 0.02;
/// Share of its sampled life a spinning thread must have used a CPU for:
/// on a machine with 12 runnable threads for 2 cores a spinner still gets
/// about a sixth of one, and a thread that sleeps while it waits next to
/// nothing.
const SPIN_MIN_CPU_SHARE: f64 = 0.05;

/// Share of the samples a spinning thread must be runnable in: at least
/// half.
const SPIN_MIN_RUNNABLE_SHARE: f64 = 0.5;

/// How often a cell's leftover threads and processes are looked for once it
/// ended, and how far apart: threads on their way out get half a second.
const LEAK_GRACE_LOOKS: usize = 5;
const LEAK_GRACE_EVERY: Duration = Duration::from_millis(100);

fn spins(thread: &ThreadActivity) -> bool {
    thread.runnable >= SPIN_MIN_RUNNABLE
        && thread.runnable as f64 >= SPIN_MIN_RUNNABLE_SHARE * thread.seen as f64
        && thread.cpu_s() >= SPIN_MIN_CPU_S
        && thread.cpu_s() >= SPIN_MIN_CPU_SHARE * thread.alive_s()
}

fn note_or(property: &Property, fallback: &str) -> String {
    property.note.clone().unwrap_or_else(|| fallback.to_owned())
}

/// The last lines a cell printed on stderr, each cut short; None if none.
fn stderr_tail(outputs: &[Value]) -> Option<String> {
    const LINES: usize = 10;
    const WIDTH: usize = 200;
    let text = stream_text(outputs, "stderr");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return None;
    }
    let mut tail: Vec<String> = lines[lines.len().saturating_sub(LINES)..]
        .iter()
        .map(|line| match line.char_indices().nth(WIDTH) {
            Some((cut, _)) => format!("{}…", &line[..cut]),
            None => (*line).to_owned(),
        })
        .collect();
    if lines.len() > LINES {
        tail.insert(0, format!("… ({} lines before)", lines.len() - LINES));
    }
    Some(tail.join("\n"))
}

/// The message of a panic on the cell's own thread, as the trace recorded
/// it: what a failed assertion in a test cell says. Panics of threads the
/// cell spawned are left out: a test may panic in one on purpose (a holder
/// that dies), so they prove nothing.
fn cell_panic(events: &[Event]) -> Option<String> {
    let message = events.iter().find_map(|e| match &e.what {
        What::Panic {
            main: true,
            message,
            ..
        } => Some(message),
        _ => None,
    })?;
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .take(PANIC_LINES)
        .collect();
    Some(lines.join("; "))
}

/// Lines of a panic's message kept in a one-line report (an assert_eq!
/// prints its message, then `left` and `right`).
const PANIC_LINES: usize = 3;

/// Everything the cell printed on stream `name`, in order.
fn stream_text(outputs: &[Value], name: &str) -> String {
    outputs
        .iter()
        .filter(|o| o["output_type"] == "stream" && o["name"] == name)
        .filter_map(|o| match &o["text"] {
            Value::String(text) => Some(text.clone()),
            Value::Array(parts) => Some(parts.iter().filter_map(Value::as_str).collect()),
            _ => None,
        })
        .collect()
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

fn no_judgement() -> Judged {
    Judged {
        passed: false,
        message: String::new(),
        details: String::new(),
        properties: Vec::new(),
    }
}

/// The kernel program: `--kernel`, `$CONCLAB_KERNEL`, the one built next to
/// this checker, or `conclab-kernel` on PATH.
pub fn find_kernel(explicit: Option<&Path>) -> std::path::PathBuf {
    if let Some(path) = explicit {
        return path.to_owned();
    }
    if let Some(path) = std::env::var_os(conclab_wire::EnvVars::CONCLAB_KERNEL) {
        return path.into();
    }
    if let Ok(me) = std::env::current_exe()
        && let Some(dir) = me.parent()
    {
        let sibling = dir.join("conclab-kernel");
        if sibling.is_file() {
            return sibling;
        }
    }
    "conclab-kernel".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A thread sampled `seen` times over one second.
    fn thread(seen: usize, runnable: usize, cpu_ticks: u64) -> ThreadActivity {
        let first = std::time::Instant::now();
        ThreadActivity {
            name: "producer".into(),
            seen,
            runnable,
            cpu_ticks: (100, 100 + cpu_ticks),
            sampled: (first, first + Duration::from_secs(1)),
        }
    }

    #[test]
    fn a_spinner_is_runnable_and_burns_cpu() {
        let hz = crate::process_tree::clock_ticks_per_second();
        // 1 s alive, runnable throughout, on a CPU a third of the time, or
        // a tenth on a machine with far more runnable threads than cores.
        assert!(spins(&thread(21, 21, hz / 3)));
        assert!(spins(&thread(21, 21, hz / 10)));
        // Runnable in most samples on a busy machine, but it slept: woken
        // and waiting for a CPU is not spinning.
        assert!(!spins(&thread(21, 15, 1)));
        // Burned CPU while mostly asleep: working, not spinning.
        assert!(!spins(&thread(21, 4, hz / 2)));
    }

    #[test]
    fn a_panic_on_the_cells_own_thread_is_found_and_others_are_not() {
        let panic = |thread: &str, main: bool, message: &str| Event {
            v: labkit::trace::FORMAT_VERSION,
            nonce: String::new(),
            seq: 0,
            t_ns: 1,
            pid: 7,
            tid: 7,
            thread: thread.into(),
            name: thread.into(),
            id: None,
            what: What::Panic {
                main,
                message: message.into(),
                location: "src/lib.rs:9:5".into(),
            },
        };
        let worker = panic("worker-1", false, "dropped on purpose");
        assert_eq!(cell_panic(std::slice::from_ref(&worker)), None);
        let assertion = panic(
            "main",
            true,
            "assertion `left == right` failed: the producer blocks after 3 items\n  left: 4\n right: 3",
        );
        assert_eq!(
            cell_panic(&[worker, assertion]).as_deref(),
            Some(
                "assertion `left == right` failed: the producer blocks after 3 items; left: 4; right: 3"
            )
        );
    }

    #[test]
    fn the_stderr_tail_keeps_the_last_lines_cut_short() {
        let stderr = |text: &str| json!({"output_type": "stream", "name": "stderr", "text": text});
        let stdout = json!({"output_type": "stream", "name": "stdout", "text": "not this\n"});
        assert_eq!(stderr_tail(std::slice::from_ref(&stdout)), None);
        let panic = "thread '<unnamed>' panicked at src/lib.rs:3:5:\ntask 3 failed\n";
        assert_eq!(
            stderr_tail(&[stdout, stderr(panic)]).as_deref(),
            Some("thread '<unnamed>' panicked at src/lib.rs:3:5:\ntask 3 failed")
        );
        let many: String = (0..12).map(|i| format!("line {i}\n")).collect();
        let long = "x".repeat(300);
        let tail = stderr_tail(&[stderr(&many), stderr(&long)]).unwrap();
        assert!(tail.starts_with("… (3 lines before)\nline 3\n"), "{tail}");
        assert!(tail.ends_with(&format!("{}…", "x".repeat(200))), "{tail}");
    }
}
