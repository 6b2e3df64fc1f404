//! `--format gradescope`: Gradescope's `results.json`, which the
//! autograder's `run_autograder` writes to `/autograder/results/`.
//!
//! One check is one Gradescope test, named `notebook: check id` and numbered
//! `notebook.check` (both from 1). Checks from hidden test cells become
//! visible `after_published`, so a learner learns what they test only with
//! the grades. Gradescope knows only passed and failed; the real outcome
//! (not run, checker error, unreadable input) is in each test's output and
//! `extra_data`.

use serde_json::{Value, json};

use super::{is_hidden, notebook_stem, points, seed_line};
use crate::report::{Check, Outcome, Report, SCHEMA, SubmissionReport};

/// The report as results.json: one submission's object when the run had
/// exactly one (the Gradescope case), otherwise an array of
/// `{ "submission": name, "results": {…} }` to split up.
pub fn render(report: &Report) -> String {
    let value = match report.submissions.as_slice() {
        [submission] => gradescope(submission),
        submissions => submissions
            .iter()
            .map(|s| json!({ "submission": s.submission, "results": gradescope(s) }))
            .collect(),
    };
    let mut json = serde_json::to_string_pretty(&value).expect("a Value always serializes");
    json.push('\n');
    json
}

/// One submission's results.json, per Gradescope's autograder spec.
pub fn gradescope(submission: &SubmissionReport) -> Value {
    let (score, _) = submission.score();
    let execution_time: f64 = submission.notebooks.iter().map(|n| n.time_s).sum();
    let tests: Vec<Value> = submission
        .notebooks
        .iter()
        .enumerate()
        .flat_map(|(n, notebook)| {
            let stem = notebook_stem(&notebook.notebook);
            notebook
                .checks
                .iter()
                .enumerate()
                .map(move |(c, check)| test(stem, format!("{}.{}", n + 1, c + 1), check))
        })
        .collect();
    json!({
        "score": score,
        // Milliseconds are plenty, and keep float noise out of the file.
        "execution_time": (execution_time * 1000.0).round() / 1000.0,
        "output": summary(submission),
        "output_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {
            "schema": SCHEMA,
            "submission": submission.submission,
            "outcome": submission.outcome(),
        },
    })
}

/// One check as a Gradescope test.
fn test(stem: &str, number: String, check: &Check) -> Value {
    let mut extra = json!({ "outcome": check.outcome, "cell": check.cell });
    if let Some(seed) = check.seed {
        extra["seed"] = json!(seed);
    }
    json!({
        "name": format!("{stem}: {}", check.id),
        "name_format": "text",
        "number": number,
        "score": check.score,
        "max_score": check.max_score,
        "status": if check.outcome == Outcome::Passed { "passed" } else { "failed" },
        "output": test_output(check),
        "output_format": "text",
        "tags": [check.kind, stem],
        "visibility": if is_hidden(check) { "after_published" } else { "visible" },
        "extra_data": extra,
    })
}

/// What the learner reads under a test: the message, then the details and
/// the seed to replay a failing schedule.
fn test_output(check: &Check) -> String {
    let message = check.message.trim_end();
    let mut out = match check.outcome {
        Outcome::NotRun => format!("Not run: {message}"),
        Outcome::Error => format!(
            "Grader error, not a problem with your code (please tell your instructor): \
             {message}"
        ),
        _ => message.to_owned(),
    };
    if check.outcome != Outcome::Passed {
        if !check.details.trim().is_empty() {
            out.push_str("\n\n");
            out.push_str(check.details.trim_end());
        }
        if let Some(seed) = check.seed {
            out.push_str("\n\n");
            out.push_str(&seed_line(seed));
        }
    }
    out.trim().to_owned()
}

/// The one paragraph at the top of the learner's results page.
fn summary(submission: &SubmissionReport) -> String {
    let mut sentences = Vec::new();
    let (score, max) = submission.score();
    if max > 0.0 {
        sentences.push(format!("{}/{} points.", points(score), points(max)));
    }
    let checks: Vec<&Check> = submission.checks().map(|(_, c)| c).collect();
    let unreadable: Vec<&str> = checks
        .iter()
        .filter(|c| c.outcome == Outcome::BadInput)
        .map(|c| c.message.trim().trim_end_matches('.'))
        .collect();
    if !unreadable.is_empty() {
        sentences.push(format!(
            "Your submission could not be read: {}.",
            unreadable.join("; ")
        ));
    }
    let count = |outcome| checks.iter().filter(|c| c.outcome == outcome).count();
    let graded = checks.len() - unreadable.len();
    if graded > 0 {
        let mut clauses = vec![format!(
            "{} of {graded} checks passed",
            count(Outcome::Passed)
        )];
        let failed = count(Outcome::Failed);
        if failed > 0 {
            clauses.push(format!("{failed} failed"));
        }
        let not_run = count(Outcome::NotRun);
        if not_run > 0 {
            clauses.push(format!(
                "{not_run} did not run because an earlier cell hung or crashed"
            ));
        }
        let errors = count(Outcome::Error);
        if errors > 0 {
            clauses.push(format!(
                "{errors} could not be checked because of a problem with the grader, \
                 not with your code (please tell your instructor)"
            ));
        }
        sentences.push(format!("{}.", and_list(&clauses)));
    }
    let hidden = checks.iter().filter(|c| is_hidden(c)).count();
    if hidden > 0 {
        sentences.push(format!(
            "{hidden} {} from hidden tests will be shown once grades are published.",
            if hidden == 1 { "check" } else { "checks" }
        ));
    }
    sentences.join(" ")
}

/// `a`, `a and b`, `a, b, and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [first, second] => format!("{first} and {second}"),
        // The serial comma keeps a long clause from swallowing the next.
        [init @ .., last] => format!("{}, and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::sample_report;

    #[test]
    fn snapshot() {
        let mut report = sample_report();
        report.submissions.truncate(1);
        insta::assert_snapshot!(render(&report), @r###"
        {
          "score": 4.0,
          "execution_time": 33.75,
          "output": "4/20 points. 1 of 4 checks passed, 1 failed, 1 did not run because an earlier cell hung or crashed, and 1 could not be checked because of a problem with the grader, not with your code (please tell your instructor). 2 checks from hidden tests will be shown once grades are published.",
          "output_format": "text",
          "visibility": "visible",
          "stdout_visibility": "hidden",
          "tests": [
            {
              "name": "07-semaphores: step07-semaphore-test",
              "name_format": "text",
              "number": "1.1",
              "score": 4.0,
              "max_score": 4.0,
              "status": "passed",
              "output": "ran without error",
              "output_format": "text",
              "tags": [
                "test",
                "07-semaphores"
              ],
              "visibility": "visible",
              "extra_data": {
                "outcome": "passed",
                "cell": "step07-semaphore-test"
              }
            },
            {
              "name": "07-semaphores: step07-semaphore-hidden/max_inside(inside)",
              "name_format": "text",
              "number": "1.2",
              "score": 0.0,
              "max_score": 6.0,
              "status": "failed",
              "output": "never more than 3 inside at once: 4 were inside at 12.3 ms\n\ninside `inside` at 12.3 ms:\n  worker-0  since 10.1 ms\n  worker-1  since 11.0 ms\n  worker-2  since 11.9 ms\n  worker-3  since 12.3 ms  (acquired without a permit)\n\nseed 1234: replay it by running labkit::perturb::set_seed(Some(1234)); in a cell, then the test cell",
              "output_format": "text",
              "tags": [
                "property",
                "07-semaphores"
              ],
              "visibility": "after_published",
              "extra_data": {
                "outcome": "failed",
                "cell": "step07-semaphore-hidden",
                "seed": 1234
              }
            },
            {
              "name": "08-hybrid: step08-hybrid-test",
              "name_format": "text",
              "number": "2.1",
              "score": 0.0,
              "max_score": 5.0,
              "status": "failed",
              "output": "Not run: step08-hybrid hung",
              "output_format": "text",
              "tags": [
                "test",
                "08-hybrid"
              ],
              "visibility": "visible",
              "extra_data": {
                "outcome": "not_run",
                "cell": "step08-hybrid-test"
              }
            },
            {
              "name": "08-hybrid: step08-hybrid-hidden",
              "name_format": "text",
              "number": "2.2",
              "score": 0.0,
              "max_score": 5.0,
              "status": "failed",
              "output": "Grader error, not a problem with your code (please tell your instructor): the kernel would not start: evcxr exited with status 101",
              "output_format": "text",
              "tags": [
                "test",
                "08-hybrid"
              ],
              "visibility": "after_published",
              "extra_data": {
                "outcome": "error",
                "cell": "step08-hybrid-hidden"
              }
            }
          ],
          "extra_data": {
            "schema": "conclab-check/report/1",
            "submission": "alice",
            "outcome": "error"
          }
        }
        "###);
    }

    #[test]
    fn unreadable_submission() {
        let report = sample_report();
        let value = gradescope(&report.submissions[1]);
        insta::assert_snapshot!(serde_json::to_string_pretty(&value).unwrap(), @r###"
        {
          "score": 0.0,
          "execution_time": 0.0,
          "output": "0/10 points. Your submission could not be read: mallory.ipynb is not JSON: expected value at line 1 column 1.",
          "output_format": "text",
          "visibility": "visible",
          "stdout_visibility": "hidden",
          "tests": [
            {
              "name": "07-semaphores: submission",
              "name_format": "text",
              "number": "1.1",
              "score": 0.0,
              "max_score": 10.0,
              "status": "failed",
              "output": "mallory.ipynb is not JSON: expected value at line 1 column 1",
              "output_format": "text",
              "tags": [
                "submission",
                "07-semaphores"
              ],
              "visibility": "visible",
              "extra_data": {
                "outcome": "bad_input",
                "cell": "submission"
              }
            }
          ],
          "extra_data": {
            "schema": "conclab-check/report/1",
            "submission": "mallory",
            "outcome": "bad_input"
          }
        }
        "###);
    }

    #[test]
    fn several_submissions_make_an_array() {
        let report = sample_report();
        let value: Value = serde_json::from_str(&render(&report)).unwrap();
        let array = value.as_array().unwrap();
        assert_eq!(array.len(), 2);
        assert_eq!(array[0]["submission"], "alice");
        assert_eq!(array[0]["results"], gradescope(&report.submissions[0]));
        assert_eq!(array[1]["submission"], "mallory");
    }

    #[test]
    fn has_every_field_the_spec_names() {
        let report = sample_report();
        for submission in &report.submissions {
            let value = gradescope(submission);
            assert!(value["score"].is_number());
            assert!(value["execution_time"].is_number());
            assert!(value["output"].is_string());
            assert_eq!(value["output_format"], "text");
            assert_eq!(value["visibility"], "visible");
            assert_eq!(value["stdout_visibility"], "hidden");
            let (score, _) = submission.score();
            assert_eq!(value["score"].as_f64(), Some(score));
            let tests = value["tests"].as_array().unwrap();
            assert_eq!(tests.len(), submission.checks().count());
            for test in tests {
                assert!(test["name"].is_string());
                assert_eq!(test["name_format"], "text");
                let number = test["number"].as_str().unwrap();
                let parts: Vec<&str> = number.split('.').collect();
                assert!(
                    parts.len() == 2 && parts.iter().all(|p| p.parse::<u32>().is_ok()),
                    "{number}"
                );
                assert!(test["score"].is_number());
                assert!(test["max_score"].is_number());
                assert!(["passed", "failed"].contains(&test["status"].as_str().unwrap()));
                assert!(test["output"].is_string());
                assert_eq!(test["output_format"], "text");
                assert!(
                    test["tags"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(Value::is_string)
                );
                assert!(
                    ["visible", "after_published"].contains(&test["visibility"].as_str().unwrap())
                );
            }
        }
    }

    #[test]
    fn hidden_checks_show_after_publishing() {
        let report = sample_report();
        let value = gradescope(&report.submissions[0]);
        let visibility: Vec<(&str, &str)> = value["tests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["name"].as_str().unwrap(),
                    t["visibility"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            visibility,
            [
                ("07-semaphores: step07-semaphore-test", "visible"),
                (
                    "07-semaphores: step07-semaphore-hidden/max_inside(inside)",
                    "after_published"
                ),
                ("08-hybrid: step08-hybrid-test", "visible"),
                ("08-hybrid: step08-hybrid-hidden", "after_published"),
            ]
        );
    }
}
