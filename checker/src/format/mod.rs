//! Writes a [`Report`] in the formats `--format` offers: text for people,
//! HTML for a learner in JupyterLab (and a class's static site), conclab's
//! own JSON, JUnit XML for CI, Gradescope's results.json, and CSV grades for
//! a gradebook.
//!
//! Every format is written from the report alone, so a merged report
//! renders exactly like a fresh one.

pub mod csv;
pub mod gradescope;
pub mod html;
pub mod json;
pub mod junit;
mod output;
pub mod reason;
pub mod site;
pub mod text;

use crate::report::{Check, Outcome, Report};

pub use output::Output;

/// The output formats of `grade` and `validate` (`--format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people: per check one line, with the evidence under each failure.
    Text,
    /// For a learner in JupyterLab (what `:check` shows): a summary line,
    /// each failure in plain words with a timeline of the run, the
    /// evidence folded.
    Html,
    /// conclab's own stable schema (`conclab-check/report/1`).
    Json,
    /// JUnit XML, for CI systems that show test results.
    Junit,
    /// Gradescope's results.json.
    Gradescope,
    /// Grades for a gradebook: one row per learner and exercise
    /// (`learner,notebook,exercise,points,max_points`), then each learner's
    /// total.
    Csv,
}

/// Renders `report` in `format`, ending with a newline.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Text => text::render(report),
        Format::Html => html::render(report),
        Format::Json => json::render(report),
        Format::Junit => junit::render(report),
        Format::Gradescope => gradescope::render(report),
        Format::Csv => csv::render(report),
    }
}

/// Writes `report` in `format` to `path`. HTML to a folder (one that
/// exists, or a path without an extension) is the class's static site;
/// every other format, and HTML to a `.html` file, is one file.
pub fn write(report: &Report, format: Format, path: &std::path::Path) -> std::io::Result<()> {
    if format == Format::Html && is_folder(path) {
        site::write(report, path)
    } else {
        std::fs::write(path, render(report, format))
    }
}

fn is_folder(path: &std::path::Path) -> bool {
    path.is_dir() || path.as_os_str().to_string_lossy().ends_with('/') || path.extension().is_none()
}

/// Points as people write them: `14`, `2.5`, `0.33`.
fn points(value: f64) -> String {
    // Two decimals are enough for any split of a cell's points; trailing
    // zeros would only make the columns noisy.
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" { "0" } else { text }.to_owned()
}

/// `07-semaphores.ipynb` → `07-semaphores`: shorter names for classnames,
/// tags and test names, where the extension says nothing.
fn notebook_stem(notebook: &str) -> &str {
    notebook.strip_suffix(".ipynb").unwrap_or(notebook)
}

/// Whether the check comes from a hidden test cell, which the learner's
/// copy of the notebook does not contain.
fn is_hidden(check: &Check) -> bool {
    check.cell.ends_with("-hidden")
}

/// The line that tells how to replay a failing perturbed run.
fn seed_line(seed: u64) -> String {
    // The checker runs a perturbed test cell after set_seed, in one cell;
    // the learner's kernel replays it the same way.
    format!(
        "seed {seed}: replay it by running labkit::perturb::set_seed(Some({seed})); in a cell, then the test cell"
    )
}

/// The report every format's tests render: one learner with a pass, a
/// violated property, a check that could not run and a checker error, and
/// one learner whose file could not be read.
#[cfg(test)]
fn sample_report() -> Report {
    use crate::report::{CheckKind, NotebookReport, Outcome, SubmissionReport};

    let check = |id: &str, cell: &str, kind, outcome, score, max_score, message: &str| Check {
        id: id.to_owned(),
        cell: cell.to_owned(),
        // The lab's test cells are named after their exercise.
        exercise: cell
            .strip_suffix("-test")
            .or_else(|| cell.strip_suffix("-hidden"))
            .map(str::to_owned),
        kind,
        outcome,
        score,
        max_score,
        message: message.to_owned(),
        details: String::new(),
        seed: None,
        time_s: 0.0,
        evidence_in: None,
        timeline: None,
    };
    let passed = Check {
        time_s: 0.412,
        ..check(
            "step07-semaphore-test",
            "step07-semaphore-test",
            CheckKind::Test,
            Outcome::Passed,
            4.0,
            4.0,
            "ran without error",
        )
    };
    let violated = Check {
        details: "inside `inside` at 12.3 ms:\n  \
                  worker-0  since 10.1 ms\n  \
                  worker-1  since 11.0 ms\n  \
                  worker-2  since 11.9 ms\n  \
                  worker-3  since 12.3 ms  (acquired without a permit)"
            .to_owned(),
        seed: Some(1234),
        time_s: 1.25,
        evidence_in: None,
        timeline: None,
        ..check(
            "step07-semaphore-hidden/max_inside(inside)",
            "step07-semaphore-hidden",
            CheckKind::Property,
            Outcome::Failed,
            0.0,
            6.0,
            "never more than 3 inside at once: 4 were inside at 12.3 ms",
        )
    };
    let not_run = check(
        "step08-hybrid-test",
        "step08-hybrid-test",
        CheckKind::Test,
        Outcome::NotRun,
        0.0,
        5.0,
        "step08-hybrid hung",
    );
    let error = check(
        "step08-hybrid-hidden",
        "step08-hybrid-hidden",
        CheckKind::Test,
        Outcome::Error,
        0.0,
        5.0,
        "the kernel would not start: evcxr exited with status 101",
    );
    let bad_input = check(
        "submission",
        "submission",
        CheckKind::Submission,
        Outcome::BadInput,
        0.0,
        10.0,
        "mallory.ipynb is not JSON: expected value at line 1 column 1",
    );
    Report {
        submissions: vec![
            SubmissionReport {
                submission: "alice".to_owned(),
                path: "submissions/alice".to_owned(),
                notebooks: vec![
                    NotebookReport {
                        notebook: "07-semaphores.ipynb".to_owned(),
                        checks: vec![passed, violated],
                        time_s: 3.5,
                    },
                    NotebookReport {
                        notebook: "08-hybrid.ipynb".to_owned(),
                        checks: vec![not_run, error],
                        time_s: 30.25,
                    },
                ],
            },
            SubmissionReport {
                submission: "mallory".to_owned(),
                path: "submissions/mallory.ipynb".to_owned(),
                notebooks: vec![NotebookReport {
                    notebook: "07-semaphores.ipynb".to_owned(),
                    checks: vec![bad_input],
                    time_s: 0.0,
                }],
            },
        ],
        ..Report::new("grade")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn format_names_parse_as_the_cli_spells_them() {
        for (name, format) in [
            ("text", Format::Text),
            ("html", Format::Html),
            ("json", Format::Json),
            ("junit", Format::Junit),
            ("gradescope", Format::Gradescope),
            ("csv", Format::Csv),
        ] {
            assert_eq!(Format::from_str(name, false), Ok(format));
        }
    }

    #[test]
    fn points_drop_needless_decimals() {
        assert_eq!(points(14.0), "14");
        assert_eq!(points(2.5), "2.5");
        assert_eq!(points(1.0 / 3.0), "0.33");
        assert_eq!(points(-0.0), "0");
    }

    #[test]
    fn every_format_ends_with_a_newline() {
        let report = sample_report();
        for format in Format::value_variants() {
            assert!(render(&report, *format).ends_with('\n'), "{format:?}");
        }
    }
}

/// How many checks ended each way; `failed` includes unreadable input,
/// which is the learner's to fix too, while checker errors stay apart.
#[derive(Default)]
struct Counts {
    passed: usize,
    failed: usize,
    not_run: usize,
    errors: usize,
}

impl Counts {
    fn of<'c>(checks: impl Iterator<Item = &'c Check>) -> Counts {
        let mut counts = Counts::default();
        for check in checks {
            match check.outcome {
                Outcome::Passed => counts.passed += 1,
                Outcome::Failed | Outcome::BadInput => counts.failed += 1,
                Outcome::NotRun => counts.not_run += 1,
                Outcome::Error => counts.errors += 1,
            }
        }
        counts
    }

    fn total(&self) -> usize {
        self.passed + self.failed + self.not_run + self.errors
    }

    /// What did not pass, in words: `2 failed`, `1 not run`, `3 checker
    /// errors`; nothing for a count of 0.
    fn not_passed(&self) -> Vec<String> {
        let mut parts = Vec::new();
        for (n, what) in [
            (self.failed, "failed"),
            (self.not_run, "not run"),
            (self.errors, "checker error"),
        ] {
            if n > 0 {
                let plural = if n > 1 && what.ends_with("error") {
                    "s"
                } else {
                    ""
                };
                parts.push(format!("{n} {what}{plural}"));
            }
        }
        parts
    }
}
