//! `--format text`: for people, in a terminal or a CI log. Plain text, no
//! colours, so it reads the same when piped to a file.
//!
//! ```text
//! alice  4/20 points  1 failed  1 not run  1 error
//!   07-semaphores.ipynb  4/10 points
//!     ✓ step07-semaphore-test
//!     ✗ step07-semaphore-hidden/max_inside(inside)  never more than 3 inside at once: …
//!         inside `inside` at 12.3 ms: …
//!         seed 1234: replay it by running labkit::perturb::set_seed(Some(1234)); in a cell, then the test cell
//! ```

use std::fmt::Write as _;

use super::{Counts, points, seed_line};
use crate::report::{Check, Outcome, Report, SubmissionReport};

/// Indent of a notebook line under its submission.
const NOTEBOOK_INDENT: &str = "  ";
/// Indent of a check line under its notebook.
const CHECK_INDENT: &str = "    ";
/// Indent of a failure's details under its check line.
const DETAILS_INDENT: &str = "        ";

/// The report as text: per submission its checks, and a summary table when
/// there is more than one submission to compare.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    if report.submissions.is_empty() {
        out.push_str("no submissions\n");
        return out;
    }
    for (i, submission) in report.submissions.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        write_submission(&mut out, submission);
    }
    if report.submissions.len() >= 2 {
        out.push('\n');
        write_summary(&mut out, &report.submissions);
    }
    out
}

impl Counts {
    /// `3 failed  1 not run`, or `all 12 passed`: what went wrong first,
    /// since that is what the reader is looking for.
    fn summary(&self) -> String {
        let total = self.passed + self.failed + self.not_run + self.errors;
        if total == 0 {
            return "no checks".to_owned();
        }
        if self.passed == total {
            return if total == 1 {
                "1 passed".to_owned()
            } else {
                format!("all {total} passed")
            };
        }
        let errors = format!(
            "{} {}",
            self.errors,
            if self.errors == 1 { "error" } else { "errors" }
        );
        [
            (self.failed, format!("{} failed", self.failed)),
            (self.not_run, format!("{} not run", self.not_run)),
            (self.errors, errors),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join("  ")
    }
}

/// `14/34 points`, or nothing for a run without points (validate).
fn score_text((score, max): (f64, f64)) -> Option<String> {
    (max > 0.0).then(|| format!("{}/{} points", points(score), points(max)))
}

fn write_submission(out: &mut String, submission: &SubmissionReport) {
    let mut header = vec![printable(&submission.submission)];
    header.extend(score_text(submission.score()));
    header.push(Counts::of(submission.checks().map(|(_, c)| c)).summary());
    out.push_str(&header.join("  "));
    out.push('\n');
    // A submission that is one notebook needs no second line naming it.
    let is_one_notebook =
        matches!(&submission.notebooks[..], [only] if only.notebook == submission.submission);
    for notebook in &submission.notebooks {
        if !is_one_notebook {
            let mut line = vec![printable(&notebook.notebook)];
            line.extend(score_text(notebook.score()));
            let _ = writeln!(out, "{NOTEBOOK_INDENT}{}", line.join("  "));
        }
        for check in &notebook.checks {
            write_check(out, check);
        }
    }
}

/// One line per check; under a check that did not pass, its details and
/// the seed to replay it.
fn write_check(out: &mut String, check: &Check) {
    let mark = match check.outcome {
        Outcome::Passed => "✓",
        Outcome::Failed | Outcome::BadInput => "✗",
        Outcome::NotRun => "-",
        Outcome::Error => "!",
    };
    let _ = write!(out, "{CHECK_INDENT}{mark} {}", printable(&check.id));
    if check.outcome == Outcome::Passed {
        out.push('\n');
        return;
    }
    // A message is meant to be one line; should it hold more, the rest
    // goes with the details so the check lines stay one per check.
    let (first, rest) = check
        .message
        .split_once('\n')
        .unwrap_or((&check.message, ""));
    let message = labelled(check.outcome, &printable(first.trim_end()));
    if !message.is_empty() {
        let _ = write!(out, "  {message}");
    }
    out.push('\n');
    for text in [rest, check.details.as_str()] {
        for line in text.trim_end().lines().skip_while(|l| l.trim().is_empty()) {
            let line = printable(line.trim_end());
            if line.is_empty() {
                out.push('\n');
            } else {
                let _ = writeln!(out, "{DETAILS_INDENT}{line}");
            }
        }
    }
    // Told once: a check stopped by a hang points to the hang's evidence.
    if let Some(cell) = check
        .evidence_in
        .as_ref()
        .filter(|_| check.outcome == Outcome::Failed)
    {
        let _ = writeln!(
            out,
            "{DETAILS_INDENT}the evidence is under {}",
            printable(cell)
        );
    }
    if let Some(seed) = check.seed {
        let _ = writeln!(out, "{DETAILS_INDENT}{}", seed_line(seed));
    }
}

/// Says what a not-run or errored check is, since its mark alone is easy
/// to miss: `not run: step08-hybrid hung`.
fn labelled(outcome: Outcome, message: &str) -> String {
    let label = match outcome {
        Outcome::NotRun => "not run",
        Outcome::Error => "checker error",
        _ => return message.to_owned(),
    };
    if message.is_empty() {
        label.to_owned()
    } else if message.starts_with(label) {
        message.to_owned()
    } else {
        format!("{label}: {message}")
    }
}

/// `text` with control characters spelled out (`\u{1b}`): messages and
/// details quote the learner's output, which must not be able to recolour
/// or rewrite the reader's terminal.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A table with a row per submission, to compare a class at a glance.
fn write_summary(out: &mut String, submissions: &[SubmissionReport]) {
    let header = [
        "submission",
        "score",
        "max",
        "passed",
        "failed",
        "not run",
        "errors",
    ];
    let rows: Vec<[String; 7]> = submissions
        .iter()
        .map(|submission| {
            let (score, max) = submission.score();
            let counts = Counts::of(submission.checks().map(|(_, c)| c));
            [
                printable(&submission.submission),
                points(score),
                points(max),
                counts.passed.to_string(),
                counts.failed.to_string(),
                counts.not_run.to_string(),
                counts.errors.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header = header.map(str::to_owned);
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(column, (cell, width))| {
                // Names read left to right; numbers line up on their units.
                if column == 0 {
                    format!("{cell:<width$}")
                } else {
                    format!("{cell:>width$}")
                }
            })
            .collect();
        out.push_str(&cells.join("  "));
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::sample_report;

    #[test]
    fn snapshot() {
        insta::assert_snapshot!(render(&sample_report()), @r###"
        alice  4/20 points  1 failed  1 not run  1 error
          07-semaphores.ipynb  4/10 points
            ✓ step07-semaphore-test
            ✗ step07-semaphore-hidden/max_inside(inside)  never more than 3 inside at once: 4 were inside at 12.3 ms
                inside `inside` at 12.3 ms:
                  worker-0  since 10.1 ms
                  worker-1  since 11.0 ms
                  worker-2  since 11.9 ms
                  worker-3  since 12.3 ms  (acquired without a permit)
                seed 1234: replay it by running labkit::perturb::set_seed(Some(1234)); in a cell, then the test cell
          08-hybrid.ipynb  0/10 points
            - step08-hybrid-test  not run: step08-hybrid hung
            ! step08-hybrid-hidden  checker error: the kernel would not start: evcxr exited with status 101

        mallory  0/10 points  1 failed
          07-semaphores.ipynb  0/10 points
            ✗ submission  mallory.ipynb is not JSON: expected value at line 1 column 1

        submission  score  max  passed  failed  not run  errors
        alice           4   20       1       1        1       1
        mallory         0   10       0       1        0       0
        "###);
    }

    #[test]
    fn one_submission_has_no_summary_table() {
        let mut report = sample_report();
        report.submissions.truncate(1);
        let text = render(&report);
        assert!(!text.contains("not run  errors"), "{text}");
    }

    #[test]
    fn all_passed() {
        let mut report = sample_report();
        report.submissions.truncate(1);
        report.submissions[0].notebooks.truncate(1);
        report.submissions[0].notebooks[0].checks.truncate(1);
        insta::assert_snapshot!(render(&report), @r###"
        alice  4/4 points  1 passed
          07-semaphores.ipynb  4/4 points
            ✓ step07-semaphore-test
        "###);
    }

    #[test]
    fn a_submission_that_is_one_notebook_is_named_once() {
        let mut report = sample_report();
        report.submissions.truncate(1);
        report.submissions[0].notebooks.truncate(1);
        report.submissions[0].notebooks[0].checks.truncate(1);
        report.submissions[0].submission = "07-semaphores.ipynb".into();
        insta::assert_snapshot!(render(&report), @r###"
        07-semaphores.ipynb  4/4 points  1 passed
            ✓ step07-semaphore-test
        "###);
    }

    #[test]
    fn a_hang_is_told_once_and_the_checks_it_stopped_point_to_it() {
        let mut report = sample_report();
        report.submissions.truncate(1);
        report.submissions[0].notebooks.truncate(1);
        let checks = &mut report.submissions[0].notebooks[0].checks;
        checks[1].id = "step07-semaphore-hidden/no_hang".into();
        checks[1].message = "step07-semaphore-hidden hung: deadlock".into();
        checks[1].details.clear();
        checks[1].seed = None;
        checks[1].evidence_in = Some("step07-semaphore-hidden".into());
        insta::assert_snapshot!(render(&report), @r"
        alice  4/10 points  1 failed
          07-semaphores.ipynb  4/10 points
            ✓ step07-semaphore-test
            ✗ step07-semaphore-hidden/no_hang  step07-semaphore-hidden hung: deadlock
                the evidence is under step07-semaphore-hidden
        ");
    }

    #[test]
    fn control_characters_from_the_learner_are_spelled_out() {
        let mut report = sample_report();
        let check = &mut report.submissions[0].notebooks[0].checks[1];
        check.message = "printed \u{1b}[31mred\u{1b}[0m\rover".to_owned();
        check.details = "-expected\n+got \u{7}\u{9b}".to_owned();
        let text = render(&report);
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text}");
        assert!(
            text.contains(r"printed \u{1b}[31mred\u{1b}[0m\u{d}over"),
            "{text}"
        );
    }
}
