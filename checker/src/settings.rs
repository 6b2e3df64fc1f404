//! `metadata.conclab`, typed: how a cell is compared, timed and checked.
//! The JSON Schema in `notebooks/conclab.schema.json` is the contract:
//! `schema.rs` checks `metadata.conclab` against it first, then these types
//! read what it allows.

use serde::{Deserialize, Serialize};

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
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
pub struct Property {
    /// Which property, with the parameters that kind takes.
    #[serde(flatten)]
    pub kind: PropertyKind,
    /// What the property means for this exercise, in the learner's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The property kinds of the schema, each with its own parameters: a
/// parameter a kind needs is a field of its variant, so metadata without it
/// does not parse (and the schema says so first, naming the cell).
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PropertyKind {
    /// The test's assertions compare with the sequential answer.
    ResultsEqual,
    /// Results in input order (the test's assertions).
    InputOrder {
        /// The span whose results are meant, to tell properties apart in
        /// reports.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        span: Option<String>,
    },
    /// Results delivered in the order the tasks completed.
    CompletionOrder {
        /// The tasks' span.
        span: String,
    },
    /// The first result delivered before the slowest task ended.
    Streaming {
        /// The tasks' span.
        span: String,
    },
    /// Every span id entered exactly once.
    ExactlyOnce {
        /// The span.
        span: String,
    },
    /// At most `limit` inside the span at once.
    MaxInside {
        /// The span.
        span: String,
        /// The most allowed inside at once.
        limit: u32,
    },
    /// At least `at_least` inside the span at once, at some moment.
    MinInside {
        /// The span.
        span: String,
        /// The fewest that must be inside together, once.
        at_least: u32,
    },
    /// The span's work was spread over at least `at_least` threads.
    Parallel {
        /// The span.
        span: String,
        /// The fewest threads the work must run on.
        at_least: u32,
    },
    /// Work ran in worker processes: `exactly` of them, when given.
    Processes {
        /// How many worker processes must start; without it, at least one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exactly: Option<u32>,
        /// Each worker must be reused for several tasks.
        #[serde(default)]
        reused: bool,
        /// The workers' task span, when only those tasks count.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        span: Option<String>,
    },
    /// First in, first out (the test's assertions).
    Fifo,
    /// Every span ran on one thread.
    OwnerThreadOnly {
        /// The span.
        span: String,
    },
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

impl PropertyKind {
    /// The kind as the schema spells it (`max_inside`).
    pub fn name(&self) -> &'static str {
        match self {
            PropertyKind::ResultsEqual => "results_equal",
            PropertyKind::InputOrder { .. } => "input_order",
            PropertyKind::CompletionOrder { .. } => "completion_order",
            PropertyKind::Streaming { .. } => "streaming",
            PropertyKind::ExactlyOnce { .. } => "exactly_once",
            PropertyKind::MaxInside { .. } => "max_inside",
            PropertyKind::MinInside { .. } => "min_inside",
            PropertyKind::Parallel { .. } => "parallel",
            PropertyKind::Processes { .. } => "processes",
            PropertyKind::Fifo => "fifo",
            PropertyKind::OwnerThreadOnly { .. } => "owner_thread_only",
            PropertyKind::NoLeaks => "no_leaks",
            PropertyKind::NoLockCycle => "no_lock_cycle",
            PropertyKind::NoHang => "no_hang",
            PropertyKind::SleepsNotSpins => "sleeps_not_spins",
            PropertyKind::Bounded => "bounded",
            PropertyKind::FasterThanSequential => "faster_than_sequential",
            PropertyKind::ReleaseOnPanic => "release_on_panic",
        }
    }

    /// The span the property is about, if its kind takes one.
    pub fn span(&self) -> Option<&str> {
        match self {
            PropertyKind::CompletionOrder { span }
            | PropertyKind::Streaming { span }
            | PropertyKind::ExactlyOnce { span }
            | PropertyKind::MaxInside { span, .. }
            | PropertyKind::MinInside { span, .. }
            | PropertyKind::Parallel { span, .. }
            | PropertyKind::OwnerThreadOnly { span } => Some(span),
            PropertyKind::InputOrder { span } | PropertyKind::Processes { span, .. } => {
                span.as_deref()
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_property_reads_into_its_kind_with_its_parameters() {
        let property: Property = serde_json::from_value(
            json!({"kind": "max_inside", "span": "fetch", "limit": 3, "note": "three at most"}),
        )
        .unwrap();
        assert_eq!(
            property,
            Property {
                kind: PropertyKind::MaxInside {
                    span: "fetch".into(),
                    limit: 3
                },
                note: Some("three at most".into()),
            }
        );
        assert_eq!(property.kind.span(), Some("fetch"));
    }

    #[test]
    fn a_property_without_a_parameter_its_kind_needs_does_not_parse() {
        let error =
            serde_json::from_value::<Property>(json!({"kind": "max_inside", "span": "fetch"}))
                .unwrap_err();
        assert!(
            error.to_string().contains("missing field `limit`"),
            "{error}"
        );
        let error = serde_json::from_value::<Property>(json!({"kind": "parallel", "at_least": 2}))
            .unwrap_err();
        assert!(
            error.to_string().contains("missing field `span`"),
            "{error}"
        );
    }

    #[test]
    fn each_kind_is_named_as_the_schema_spells_it() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../notebooks/conclab.schema.json")).unwrap();
        let kinds = &schema["$defs"]["property"]["properties"]["kind"]["enum"];
        for kind in kinds.as_array().unwrap() {
            let kind = kind.as_str().unwrap();
            let parameters = match kind {
                "max_inside" => json!({"span": "s", "limit": 1}),
                "min_inside" | "parallel" => json!({"span": "s", "at_least": 1}),
                "completion_order" | "streaming" | "exactly_once" | "owner_thread_only" => {
                    json!({"span": "s"})
                }
                _ => json!({}),
            };
            let mut line = parameters.as_object().unwrap().clone();
            line.insert("kind".into(), kind.into());
            let property: Property = serde_json::from_value(line.into()).unwrap();
            assert_eq!(property.kind.name(), kind);
            assert_eq!(serde_json::to_value(&property).unwrap()["kind"], kind);
        }
    }
}
