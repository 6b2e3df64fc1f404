//! Notebooks checked against themselves. `conclab-check validate` is the CI
//! gate for source notebooks: every cell runs clean, stored outputs match
//! and every test passes on every perturbed run; with `--invert`, the
//! released learner version fails every graded test (so no test passes for
//! a learner who did nothing). `conclab-check feedback` runs a learner's
//! notebook's own tests against the learner's solutions.

use std::path::PathBuf;
use std::sync::Arc;

use crate::compare;
use crate::exit::Failure;
use crate::grading::{Mode, Settings};
use crate::lanes;
use crate::notebook::{self, BadNotebook, Notebook};
use crate::plan::{self, Step};
use crate::release;
use crate::report::{Check, CheckKind, NotebookReport, Outcome, Report, SubmissionReport};
use crate::run_options::{self, RunOptions};

/// What a run of notebooks against themselves proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// Source notebooks run clean, match their stored outputs and pass.
    Validate,
    /// Their released learner versions fail every graded test.
    Invert,
    /// A learner's notebook passes its own tests and properties: all of
    /// them, or those of one exercise (a solution's grade_id).
    Feedback {
        /// The exercise whose tests run; None for all.
        exercise: Option<String>,
    },
}

impl Purpose {
    /// How the notebooks' runs are judged: a released version is graded
    /// like a learner's submission.
    pub fn mode(&self) -> Mode {
        match self {
            Purpose::Validate => Mode::Validate,
            Purpose::Invert => Mode::Grade,
            Purpose::Feedback { .. } => Mode::Feedback,
        }
    }

    /// Runs the notebooks at `paths` (notebooks, or folders of them) for
    /// this purpose: what `validate` and `feedback` do.
    pub fn run(&self, paths: &[PathBuf], options: &RunOptions) -> Result<Report, Failure> {
        let runtime = run_options::runtime()?;
        validate(
            &runtime,
            paths,
            self,
            &options.settings(self.mode()),
            options.jobs(),
        )
        .map_err(Failure::from)
    }
}

/// Runs the notebooks at `paths` for `purpose`, `jobs` at a time (the mode
/// in `settings` is the purpose's).
pub fn validate(
    runtime: &tokio::runtime::Runtime,
    paths: &[PathBuf],
    purpose: &Purpose,
    settings: &Settings,
    jobs: usize,
) -> Result<Report, BadNotebook> {
    let invert = *purpose == Purpose::Invert;
    // Everything is read and planned before anything runs: a bad notebook
    // is reported at once, by name.
    let mut groups = Vec::new();
    for path in paths {
        let mut planned = Vec::new();
        for file in notebook::find(path)? {
            let source = Notebook::read(&file)?;
            let steps = if invert {
                let mut released = source.clone();
                release::release(&mut released)?;
                plan::plan(&source, Some(&released))?
            } else {
                plan::plan(&source, None)?
            };
            check_patterns(&source, &steps)?;
            let steps = match purpose {
                Purpose::Feedback {
                    exercise: Some(exercise),
                } => plan::only_exercise(steps, exercise).map_err(|problem| BadNotebook {
                    path: file.clone(),
                    problem,
                })?,
                _ => steps,
            };
            let name = file
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            planned.push((name, steps));
        }
        groups.push((path.clone(), planned));
    }
    let settings = Arc::new(Settings {
        mode: purpose.mode(),
        ..settings.clone()
    });
    let semaphore = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
    let mut report = Report::new(match purpose {
        Purpose::Feedback { .. } => "feedback",
        Purpose::Validate | Purpose::Invert => "validate",
    });
    runtime.block_on(async {
        for (path, planned) in groups {
            let ran =
                lanes::run_notebooks(planned, settings.clone(), semaphore.clone(), jobs).await;
            let notebooks = ran
                .into_iter()
                .map(|report| if invert { inverted(report) } else { report })
                .collect();
            report.submissions.push(SubmissionReport {
                submission: path.file_name().map_or_else(
                    || path.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                ),
                path: path.display().to_string(),
                notebooks,
            });
        }
    });
    Ok(report)
}

fn check_patterns(source: &Notebook, steps: &[Step]) -> Result<(), BadNotebook> {
    for step in steps {
        compare::validate_patterns(&step.settings.compare).map_err(|problem| BadNotebook {
            path: source.path.clone(),
            problem: format!("{}: {problem}", step.label),
        })?;
    }
    Ok(())
}

/// Turns the grading of a released notebook into the inverted checks: each
/// graded test must have failed; the stubs must compile; any other cell
/// runs clean, or fails only because it reached a stub (a cell that shows
/// what the learner's functions do works once they are written).
fn inverted(mut report: NotebookReport) -> NotebookReport {
    report.checks = report
        .checks
        .into_iter()
        .filter(|check| check.kind != CheckKind::Property)
        .map(|check| {
            if check.kind == CheckKind::Run
                && check.outcome == Outcome::Failed
                && check.message.contains(release::STUB_PANIC)
            {
                return Check {
                    outcome: Outcome::Passed,
                    message: format!(
                        "uses a solution the learner has not written yet, and says so: {}",
                        check.message
                    ),
                    ..check
                };
            }
            if check.kind != CheckKind::Test {
                return check;
            }
            let (outcome, message) = match check.outcome {
                Outcome::Failed => (
                    Outcome::Passed,
                    format!("fails against the released stub, as it must: {}", check.message),
                ),
                Outcome::Passed => (
                    Outcome::Failed,
                    "passes against the released learner version: it cannot tell a learner who did nothing from one who solved the exercise".into(),
                ),
                Outcome::NotRun => (
                    Outcome::Failed,
                    format!("could not be shown to fail: {}", check.message),
                ),
                _ => return check,
            };
            Check {
                id: format!("{}/fails-unsolved", check.id),
                outcome,
                score: 0.0,
                max_score: 0.0,
                message,
                ..check
            }
        })
        .collect();
    report
}
