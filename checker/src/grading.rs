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
use crate::kernel::{CellRun, Ending, Kernel, Limits};
use crate::plan::{Role, Step};
use crate::process_tree;
use crate::property::{self, Evidence, Leftover, Leftovers, Verdict};
use crate::report::{Check, CheckKind, NotebookReport, Outcome, Timeline};
use crate::settings::{Property, PropertyKind};
use crate::timeline;
use crate::timing;
use crate::trace::{Event, TraceFollower, What};
use conclab_wire::IdleWork;

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
            self.checks.push(Check::of_cell(step, CheckKind::Submission, Outcome::Failed, format!(
                "the submission has no cell with grade_id {}: write your solution in that cell, and keep its metadata",
                step.label
            )));
            return;
        };
        let threads_before = if watches_leaks(step) {
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
        let mut check = Check::of_cell(step, kind, Outcome::Failed, why.clone())
            .with_details(details)
            .with_seed(seed)
            .timed(run.time_s());
        check.timeline = hang_picture;
        self.checks.push(check);
        let hung = matches!(run.ending, Ending::TimedOut | Ending::Hung);
        // The diagnosis is told once, under the cell's own check; its
        // properties point there.
        for property in &step.settings.properties {
            let (outcome, message) = if property.kind == PropertyKind::NoHang && hung {
                (Outcome::Failed, why.clone())
            } else {
                (Outcome::NotRun, format!("not run: {blocker}"))
            };
            let mut check = Check::of_property(step, property, outcome, message)
                .with_seed(seed)
                .timed(run.time_s());
            check.evidence_in = Some(step.label.clone());
            self.checks.push(check);
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
        let check = match failure {
            Some((message, details)) => {
                Check::of_cell(step, kind, Outcome::Failed, message).with_details(details)
            }
            // Outside validation, cells that ran clean are not news, and a
            // solution that merely compiled is no pass of its exercise:
            // its tests and properties say whether it is right.
            None if self.settings.mode.hides_clean_runs() => return,
            None => Check::of_cell(step, kind, Outcome::Passed, "ran clean".into()),
        };
        self.checks.push(check.timed(run.time_s()));
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
        let leftovers = if watches_leaks(step) {
            Some(self.leftovers(threads_before).await)
        } else {
            None
        };
        tracing::debug!(cell = %step.label, samples = run.activity.samples, threads = ?run.activity.threads.keys().collect::<Vec<_>>(), "threads the samples saw");
        let test_failure = (!matches!(run.ending, Ending::Ok)).then_some(message.as_str());
        let evidence = Evidence {
            events: self.follower.trace.window(run.started_ns, run.ended_ns),
            origin_ns: run.started_ns,
            runner_pid: self.kernel.runner_pid().unwrap_or(0),
            threads: &run.activity.threads,
            runner_cpu_s: run.runner_cpu_s,
            wall_s: run.time_s(),
            leftovers: leftovers.as_ref(),
            test_failure,
            unnamed: &self.follower.trace.unnamed,
        };
        let mut properties = Vec::new();
        for property in &step.settings.properties {
            let result = match property::decide(property, &evidence) {
                Verdict::Holds => PropertyResult::Holds,
                Verdict::Fails {
                    message,
                    evidence: text,
                    moment,
                } => PropertyResult::Fails {
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
                Verdict::Inconclusive(why) => PropertyResult::Inconclusive(why),
                Verdict::NotRun(why) => PropertyResult::NotRun(why),
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
        let mut test = Check::of_cell(step, CheckKind::Test, outcome, message)
            .with_details(judged.details)
            .with_seed(seed)
            .timed(time_s);
        test.score = score;
        test.max_score = points;
        self.checks.push(test);
        for ((_, result), property) in judged.properties.into_iter().zip(&step.settings.properties)
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
            let mut check = Check::of_property(step, property, outcome, message)
                .with_details(evidence)
                .with_seed(seed.filter(|_| outcome == Outcome::Failed))
                .timed(time_s);
            check.timeline = timeline;
            self.checks.push(check);
        }
    }

    /// Threads and processes the cell left behind, after a short grace for
    /// threads that are already on their way out.
    async fn leftovers(&self, threads_before: &HashSet<u32>) -> Leftovers {
        let mut last = Leftovers::default();
        for _ in 0..LEAK_GRACE_LOOKS {
            tokio::time::sleep(LEAK_GRACE_EVERY).await;
            last = self.left_behind(threads_before);
            if last.is_empty() {
                break;
            }
        }
        last
    }

    fn left_behind(&self, threads_before: &HashSet<u32>) -> Leftovers {
        let Some(runner) = self.kernel.runner_pid() else {
            return Leftovers::default();
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
                Leftover {
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
                Leftover {
                    shown: name,
                    ids: format!("pid {pid}, state {state}"),
                    still: Some(still),
                }
            })
            .collect();
        Leftovers { threads, processes }
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
        let cell = Check::of_cell(step, kind, Outcome::NotRun, message.to_owned());
        let properties = step.settings.properties.iter().map(|property| {
            Check::of_property(step, property, Outcome::NotRun, message.to_owned())
        });
        for mut check in std::iter::once(cell).chain(properties) {
            check.evidence_in.clone_from(&self.blocked_by);
            self.checks.push(check);
        }
    }
}

/// How often a cell's leftover threads and processes are looked for once it
/// ended, and how far apart: threads on their way out get half a second.
const LEAK_GRACE_LOOKS: usize = 5;
const LEAK_GRACE_EVERY: Duration = Duration::from_millis(100);

/// Whether a property of `step` asks what its cell left behind: then the
/// runner's threads are listed before it runs, and looked for after.
fn watches_leaks(step: &Step) -> bool {
    step.settings
        .properties
        .iter()
        .any(|p| p.kind == PropertyKind::NoLeaks)
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
