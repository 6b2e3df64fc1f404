//! `metadata.conclab`, typed: how a cell is compared, timed and checked.
//! The JSON Schema in `notebooks/conclab.schema.json` is the contract; these
//! types read what it allows.

use serde::Deserialize;

/// Notebook-level settings (`metadata.conclab` of the notebook).
#[derive(Deserialize, Debug, Clone, Default)]
pub struct NotebookSettings {
    /// Default time limit per cell, in seconds.
    pub timeout_s: Option<f64>,
}

/// Cell-level settings (`metadata.conclab` of a cell).
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct CellSettings {
    /// How the cell's output is compared with the stored one.
    #[serde(default)]
    pub compare: Compare,
    /// This cell's time limit, in seconds.
    pub timeout_s: Option<f64>,
    /// How many more runs under perturbed schedules.
    #[serde(default)]
    pub perturbed_runs: u32,
    /// Added only at grading time; release reads it from the JSON itself.
    #[serde(default, rename = "hidden")]
    pub _hidden: bool,
    /// The concurrency properties to prove.
    #[serde(default)]
    pub properties: Vec<Property>,
}

/// How outputs are compared.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Compare {
    /// The comparison.
    pub mode: CompareMode,
    /// Named redactions, applied in sanitized and unordered modes.
    #[serde(default)]
    pub redact: Vec<Redaction>,
    /// Regex replacements, applied in sanitized and unordered modes.
    #[serde(default)]
    pub patterns: Vec<Pattern>,
    /// A stored line equal to this matches any one line.
    pub wildcard: Option<String>,
}

impl Default for Compare {
    fn default() -> Compare {
        Compare {
            mode: CompareMode::Exact,
            redact: Vec::new(),
            patterns: Vec::new(),
            wildcard: None,
        }
    }
}

/// The comparison modes of the schema.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CompareMode {
    /// Text equal.
    Exact,
    /// Equal after redactions and patterns.
    Sanitized,
    /// Sanitized, lines in any order.
    Unordered,
    /// Only the kinds of output (stream names, MIME types).
    Shape,
    /// Not compared.
    Ignore,
}

/// The named redactions.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Redaction {
    /// `12 ms`, `1.5s`.
    Times,
    /// `0x7f3a…`.
    Addresses,
    /// `ThreadId(3)`, `#12`.
    Ids,
    /// `pid 4242`.
    Pids,
}

/// A regex replacement.
#[derive(Deserialize, Debug, Clone, PartialEq)]
pub struct Pattern {
    /// The regex (Rust `regex` syntax).
    pub regex: String,
    /// Its replacement.
    pub replace: String,
}

/// One concurrency property to prove about a test cell's run.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Property {
    /// Which property.
    pub kind: PropertyKind,
    /// The labkit span it is about.
    pub span: Option<String>,
    /// An upper bound (max_inside).
    pub limit: Option<u32>,
    /// A lower bound (min_inside, parallel).
    pub at_least: Option<u32>,
    /// An exact count (processes).
    pub exactly: Option<u32>,
    /// Worker processes must each do several tasks (processes).
    #[serde(default)]
    pub reused: bool,
    /// What the property means for this exercise, in the learner's words.
    pub note: Option<String>,
}

/// The property kinds of the schema.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PropertyKind {
    /// The test's assertions compare with the sequential answer.
    ResultsEqual,
    /// Results in input order (the test's assertions).
    InputOrder,
    /// Results delivered in the order the tasks completed.
    CompletionOrder,
    /// The first result delivered before the slowest task ended.
    Streaming,
    /// Every span id entered exactly once.
    ExactlyOnce,
    /// At most `limit` inside the span at once.
    MaxInside,
    /// At least `at_least` inside the span at once, at some moment.
    MinInside,
    /// The span's work was spread over at least `at_least` threads.
    Parallel,
    /// Work ran in `exactly` worker processes.
    Processes,
    /// First in, first out (the test's assertions).
    Fifo,
    /// Every span ran on one thread.
    OwnerThreadOnly,
    /// No thread or child process outlives the cell.
    NoLeaks,
    /// No lock-order cycle, even one that did not deadlock this time.
    NoLockCycle,
    /// The cell ends within its time limit.
    NoHang,
    /// Blocked threads sleep rather than spin.
    SleepsNotSpins,
    /// A bounded buffer never holds more than its capacity, and producers
    /// block when it is full (the test's assertions).
    Bounded,
    /// Faster than the sequential version (the test's assertions).
    FasterThanSequential,
    /// A permit or lock comes back when its holder panics (the test's assertions).
    ReleaseOnPanic,
}
