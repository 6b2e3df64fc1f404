//! What grading found, as data: the one model every output format is
//! written from, and the stable JSON schema (`conclab-check/report/1`) that
//! `--format json` writes and `merge` reads back.

use serde::{Deserialize, Serialize};

use crate::plan::Step;
use crate::settings::Property;

/// The schema name written into every JSON report.
pub const SCHEMA: &str = "conclab-check/report/1";

/// The verdict of one check.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The check held.
    Passed,
    /// The learner's code failed it (exit 1).
    Failed,
    /// It could not run because an earlier cell hung or crashed the kernel;
    /// it earns nothing, and its message names the cell to blame.
    NotRun,
    /// The submission could not be read: not JSON, wrong nbformat, a
    /// duplicated grade_id (exit 2). Other submissions are still graded.
    BadInput,
    /// The checker could not do its own work, e.g. the kernel would not start
    /// (exit 3). Never caused by the learner's code.
    Error,
}

/// What a check is about.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// A test cell (public or hidden) from the source ran without error.
    Test,
    /// A cell's output matched the stored, verified output.
    Output,
    /// A concurrency property from the cell's `metadata.conclab.properties`.
    Property,
    /// A cell that is not a test ran clean (validate), or a solution compiled.
    Run,
    /// The submission as a whole: missing solutions, unreadable notebooks.
    Submission,
}

/// One check: one line in the text report, one JUnit testcase, one
/// Gradescope test.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Check {
    /// Stable within a notebook: `step01-par-map-hidden`,
    /// `step01-par-map-hidden/max_inside(fetch)`, `cell 4/output`.
    pub id: String,
    /// The cell the check is about: its grade_id, or `cell N` (0-based).
    pub cell: String,
    /// The exercise it counts for: the grade_id of the solution cell its
    /// test belongs to. None for a check of no exercise (set-up cells, a
    /// kernel that would not start, an unreadable submission), whose points
    /// count for the notebook as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exercise: Option<String>,
    /// What the check is about.
    pub kind: CheckKind,
    /// The verdict.
    pub outcome: Outcome,
    /// Points earned.
    pub score: f64,
    /// Points available (0 for a status-only check).
    pub max_score: f64,
    /// One line a learner can act on.
    pub message: String,
    /// The diff, the evidence (threads, times, locks held) or the hang's
    /// diagnosis; empty when there is nothing more to say.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
    /// The `CONCLAB_SEED` of the perturbed run that failed, to replay it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Wall time of the cell run behind the check, in seconds.
    pub time_s: f64,
    /// The id of the check whose details hold this one's evidence: a
    /// property that failed or was not run because its cell hung points to
    /// the hang's check instead of repeating its diagnosis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_in: Option<String>,
    /// The run behind a failed property or a hang, drawn as the learner's
    /// threads over time, with the moment it went wrong marked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Timeline>,
}

impl Check {
    /// How the message of a test that passed, while one of its properties
    /// did not, begins: its failure is counted under the property.
    pub const PROPERTIES_FAILED: &str = "the test passed, but not every property held";

    /// The check of the cell `step` itself, of `kind`: its verdict and
    /// `message`, none of its points earned yet, no details, no time.
    pub fn of_cell(step: &Step, kind: CheckKind, outcome: Outcome, message: String) -> Check {
        Check {
            id: step.label.clone(),
            cell: step.label.clone(),
            exercise: step.exercise.clone(),
            max_score: step.points(),
            ..Check::unnamed(kind, outcome, message)
        }
    }

    /// The check of `property` of the test cell `step`, with its verdict and
    /// `message`: status only, worth no points.
    pub fn of_property(
        step: &Step,
        property: &Property,
        outcome: Outcome,
        message: String,
    ) -> Check {
        Check {
            id: format!("{}/{}", step.label, crate::property::label(property)),
            max_score: 0.0,
            ..Check::of_cell(step, CheckKind::Property, outcome, message)
        }
    }

    /// This check with `details`: the diff, the evidence or a diagnosis.
    pub fn with_details(self, details: String) -> Check {
        Check { details, ..self }
    }

    /// This check with the seed of the perturbed run behind it, if any.
    pub fn with_seed(self, seed: Option<u64>) -> Check {
        Check { seed, ..self }
    }

    /// This check with the wall time of the run behind it, in seconds.
    pub fn timed(self, time_s: f64) -> Check {
        Check { time_s, ..self }
    }

    /// A check about a whole notebook or submission rather than a cell (the
    /// kernel, the checker, the submission's files), named `what`: it earns
    /// nothing of the `max_score` at stake, and says why in `message`.
    pub fn about_the_run(
        what: &str,
        kind: CheckKind,
        outcome: Outcome,
        max_score: f64,
        message: String,
    ) -> Check {
        Check {
            id: what.to_owned(),
            cell: what.to_owned(),
            max_score,
            ..Check::unnamed(kind, outcome, message)
        }
    }

    /// A check of nothing yet, worth nothing, with only its verdict: what
    /// the constructors above start from.
    fn unnamed(kind: CheckKind, outcome: Outcome, message: String) -> Check {
        Check {
            id: String::new(),
            cell: String::new(),
            exercise: None,
            kind,
            outcome,
            score: 0.0,
            max_score: 0.0,
            message,
            details: String::new(),
            seed: None,
            time_s: 0.0,
            evidence_in: None,
            timeline: None,
        }
    }
}

/// A failed run as lanes of threads over time: the picture under a failed
/// property. Times are ms after the cell started, as messages give them.
/// Kept small (see [`Timeline::MAX_LANES`] and [`Timeline::MAX_INTERVALS`]);
/// what was left out is counted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Timeline {
    /// Where the drawn window starts.
    pub from_ms: f64,
    /// Where it ends.
    pub to_ms: f64,
    /// One per thread, the threads the failure is about first.
    pub lanes: Vec<Lane>,
    /// The moments that matter: where a limit was broken, a wait cycle formed.
    pub marks: Vec<Mark>,
    /// Threads left out of the picture.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lanes_left_out: usize,
    /// Intervals left out of the picture (the farthest from the marks).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub intervals_left_out: usize,
}

impl Timeline {
    /// The most lanes a timeline draws.
    pub const MAX_LANES: usize = 16;
    /// The most intervals a timeline draws.
    pub const MAX_INTERVALS: usize = 400;
}

/// One thread's row of a timeline.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Lane {
    /// The thread as labkit names it (`main`, `worker-1`, `thread-TID`);
    /// a thread of another process is named after that process
    /// (`labkit-worker 2`).
    pub thread: String,
    /// Whether the failure is about this thread (drawn first, emphasised).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub involved: bool,
    /// In time order.
    pub intervals: Vec<Interval>,
}

/// What a thread did from one moment to another.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Interval {
    /// A span, a lock held, or a wait.
    pub kind: IntervalKind,
    /// The span with its id (`inside 3`), or the lock or condition
    /// variable (`permits`, `released`).
    pub name: String,
    /// Start, ms after the cell started.
    pub from_ms: f64,
    /// End, ms after the cell started; the window's end when `open`.
    pub to_ms: f64,
    /// Still going when the trace ends: a task that never left, a lock
    /// never released, a wait that never ended (a hang).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub open: bool,
}

/// What an interval of a timeline is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum IntervalKind {
    /// Inside a labkit span (a task).
    Span,
    /// Holding a labkit lock.
    Lock,
    /// Waiting for a lock or on a condition variable.
    Wait,
}

/// A moment marked on a timeline.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Mark {
    /// When, ms after the cell started.
    pub at_ms: f64,
    /// What happened then, in a few words: `9 inside (at most 3)`.
    pub label: String,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The checks of one notebook of a submission.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NotebookReport {
    /// The source notebook's file name, e.g. `07-semaphores.ipynb`.
    pub notebook: String,
    /// In the order the cells ran.
    pub checks: Vec<Check>,
    /// Wall time to run the notebook, in seconds.
    pub time_s: f64,
}

/// Everything about one submission (one notebook, or one learner's folder).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SubmissionReport {
    /// The submission's name: its file or folder name.
    pub submission: String,
    /// The path it was read from.
    pub path: String,
    /// One per source notebook graded.
    pub notebooks: Vec<NotebookReport>,
}

/// A whole run: what `grade` or `validate` writes, and `merge` joins.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// `grade` or `validate`.
    pub command: String,
    /// In the order the submissions were named (sorted by path for folders).
    pub submissions: Vec<SubmissionReport>,
}

impl NotebookReport {
    /// Points earned and available.
    pub fn score(&self) -> (f64, f64) {
        self.checks
            .iter()
            .fold((0.0, 0.0), |(s, m), c| (s + c.score, m + c.max_score))
    }
}

impl SubmissionReport {
    /// Points earned and available across its notebooks.
    pub fn score(&self) -> (f64, f64) {
        self.notebooks
            .iter()
            .map(NotebookReport::score)
            .fold((0.0, 0.0), |(s, m), (a, b)| (s + a, m + b))
    }

    /// All its checks, with the notebook each belongs to.
    pub fn checks(&self) -> impl Iterator<Item = (&NotebookReport, &Check)> {
        self.notebooks
            .iter()
            .flat_map(|n| n.checks.iter().map(move |c| (n, c)))
    }

    /// The worst outcome among its checks (Passed when it has none).
    pub fn outcome(&self) -> Outcome {
        self.checks()
            .map(|(_, c)| c.outcome)
            .max()
            .unwrap_or(Outcome::Passed)
    }
}

impl Report {
    /// An empty report for `command`.
    pub fn new(command: &str) -> Report {
        Report {
            schema: SCHEMA.to_owned(),
            command: command.to_owned(),
            submissions: Vec::new(),
        }
    }

    /// The worst outcome in the report: decides the exit code.
    pub fn outcome(&self) -> Outcome {
        self.submissions
            .iter()
            .map(SubmissionReport::outcome)
            .max()
            .unwrap_or(Outcome::Passed)
    }
}

/// A learner's name as part of a file name: letters, digits, `-`, `_` and
/// `.` kept, anything else (a `/` above all) made `_`.
pub fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
