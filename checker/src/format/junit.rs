//! `--format junit`: JUnit XML for CI systems (GitLab, Jenkins, GitHub
//! test reporters).
//!
//! One `<testsuite>` per notebook of a submission (`alice/07-semaphores.ipynb`)
//! and one `<testcase>` per check, with `classname` `alice.07-semaphores`
//! because GitLab groups by classname and keys cases by classname + name.
//! A learner's failure (a failed check, an unreadable file) is `<failure>`,
//! the checker's own fault is `<error>`, and a check that could not run
//! behind a hung cell is `<skipped>`. Points, which JUnit has no notion of,
//! are the testcase properties `score` and `max_score`.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite, XmlString};

use super::{notebook_stem, points, seed_line};
use crate::report::{Check, NotebookReport, Outcome, Report, SubmissionReport};

/// The report as a JUnit XML document, one `<testsuites>` for the run.
pub fn render(report: &Report) -> String {
    let mut junit =
        quick_junit::Report::new(xml_text(&format!("conclab-check {}", report.command)));
    let mut total_s = 0.0;
    for submission in &report.submissions {
        for notebook in &submission.notebooks {
            total_s += notebook.time_s;
            junit.add_test_suite(test_suite(submission, notebook));
        }
    }
    if let Some(time) = duration(total_s) {
        junit.set_time(time);
    }
    // Writing to memory fails only on a bug in quick-junit.
    junit
        .to_string()
        .expect("quick-junit writes any report it built")
}

fn test_suite(submission: &SubmissionReport, notebook: &NotebookReport) -> TestSuite {
    let mut suite = TestSuite::new(xml_text(&format!(
        "{}/{}",
        submission.submission, notebook.notebook
    )));
    if let Some(time) = duration(notebook.time_s) {
        suite.set_time(time);
    }
    let classname = format!(
        "{}.{}",
        submission.submission,
        notebook_stem(&notebook.notebook)
    );
    for check in &notebook.checks {
        suite.add_test_case(test_case(&classname, check));
    }
    // quick-junit counts skipped cases as `disabled`; Jenkins and the Ant
    // schema read `skipped`, so say it under that name too.
    let skipped = notebook
        .checks
        .iter()
        .filter(|c| c.outcome == Outcome::NotRun)
        .count();
    suite
        .extra
        .insert("skipped".into(), skipped.to_string().into());
    suite
}

fn test_case(classname: &str, check: &Check) -> TestCase {
    let mut status = match check.outcome {
        Outcome::Passed => TestCaseStatus::success(),
        Outcome::Failed | Outcome::BadInput => TestCaseStatus::non_success(NonSuccessKind::Failure),
        Outcome::Error => TestCaseStatus::non_success(NonSuccessKind::Error),
        Outcome::NotRun => TestCaseStatus::skipped(),
    };
    if check.outcome != Outcome::Passed {
        // An attribute value is one line: XML parsers turn newlines in it
        // into spaces anyway, so do it here where it is visible.
        let message = check.message.split_whitespace().collect::<Vec<_>>();
        status.set_message(xml_text(&message.join(" ")));
        // The type says what failed; a skip needs no type.
        if check.outcome != Outcome::NotRun {
            status.set_type(if check.outcome == Outcome::BadInput {
                "bad_input".to_owned()
            } else {
                snake_case(&check.kind)
            });
        }
        // The message leads the text as well, since some readers (GitLab
        // at times) show only the element's text.
        let mut text = check.message.trim_end().to_owned();
        if !check.details.trim().is_empty() {
            text.push_str("\n\n");
            text.push_str(check.details.trim_end());
        }
        if let Some(seed) = check.seed {
            text.push_str("\n\n");
            text.push_str(&seed_line(seed));
        }
        if !text.is_empty() {
            status.set_description(xml_text(&text));
        }
    }
    let mut case = TestCase::new(xml_text(&check.id), status);
    case.set_classname(xml_text(classname));
    if let Some(time) = duration(check.time_s) {
        case.set_time(time);
    }
    case.add_property(Property::new("score", points(check.score)));
    case.add_property(Property::new("max_score", points(check.max_score)));
    if let Some(seed) = check.seed {
        case.add_property(Property::new("seed", seed.to_string()));
    }
    case
}

/// A time in seconds as quick-junit wants it; none for a time that is not
/// one (negative, NaN), rather than a panic.
fn duration(seconds: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(seconds).ok()
}

/// An enum's serde name (`property`, `bad_input`), the same word the JSON
/// report uses.
fn snake_case(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

/// `text` with every character XML 1.0 forbids removed. quick-junit's
/// `XmlString` drops ANSI escapes and C0 controls, the learner's output can
/// also hold U+FFFE and U+FFFF (surrogates cannot be in a `str`).
fn xml_text(text: &str) -> XmlString {
    XmlString::new(text.replace(['\u{FFFE}', '\u{FFFF}'], ""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::sample_report;

    #[test]
    fn snapshot() {
        insta::assert_snapshot!(render(&sample_report()), @r###"
        <?xml version="1.0" encoding="UTF-8"?>
        <testsuites name="conclab-check grade" tests="5" failures="2" errors="1" time="33.750">
            <testsuite name="alice/07-semaphores.ipynb" tests="2" disabled="0" errors="0" failures="1" time="3.500" skipped="0">
                <testcase name="step07-semaphore-test" classname="alice.07-semaphores" time="0.412">
                    <properties>
                        <property name="score" value="4"/>
                        <property name="max_score" value="4"/>
                    </properties>
                </testcase>
                <testcase name="step07-semaphore-hidden/max_inside(inside)" classname="alice.07-semaphores" time="1.250">
                    <properties>
                        <property name="score" value="0"/>
                        <property name="max_score" value="6"/>
                        <property name="seed" value="1234"/>
                    </properties>
                    <failure message="never more than 3 inside at once: 4 were inside at 12.3 ms" type="property">never more than 3 inside at once: 4 were inside at 12.3 ms

        inside `inside` at 12.3 ms:
          worker-0  since 10.1 ms
          worker-1  since 11.0 ms
          worker-2  since 11.9 ms
          worker-3  since 12.3 ms  (acquired without a permit)

        seed 1234: replay it by running labkit::perturb::set_seed(Some(1234)); in a cell, then the test cell</failure>
                </testcase>
            </testsuite>
            <testsuite name="alice/08-hybrid.ipynb" tests="2" disabled="1" errors="1" failures="0" time="30.250" skipped="1">
                <testcase name="step08-hybrid-test" classname="alice.08-hybrid" time="0.000">
                    <properties>
                        <property name="score" value="0"/>
                        <property name="max_score" value="5"/>
                    </properties>
                    <skipped message="step08-hybrid hung">step08-hybrid hung</skipped>
                </testcase>
                <testcase name="step08-hybrid-hidden" classname="alice.08-hybrid" time="0.000">
                    <properties>
                        <property name="score" value="0"/>
                        <property name="max_score" value="5"/>
                    </properties>
                    <error message="the kernel would not start: evcxr exited with status 101" type="test">the kernel would not start: evcxr exited with status 101</error>
                </testcase>
            </testsuite>
            <testsuite name="mallory/07-semaphores.ipynb" tests="1" disabled="0" errors="0" failures="1" time="0.000" skipped="0">
                <testcase name="submission" classname="mallory.07-semaphores" time="0.000">
                    <properties>
                        <property name="score" value="0"/>
                        <property name="max_score" value="10"/>
                    </properties>
                    <failure message="mallory.ipynb is not JSON: expected value at line 1 column 1" type="bad_input">mallory.ipynb is not JSON: expected value at line 1 column 1</failure>
                </testcase>
            </testsuite>
        </testsuites>
        "###);
    }

    #[test]
    fn one_testcase_per_check_and_it_parses_back() {
        let report = sample_report();
        let xml = render(&report);
        let checks = report.submissions.iter().flat_map(|s| s.checks()).count();
        assert_eq!(xml.matches("<testcase ").count(), checks);

        let parsed = quick_junit::Report::deserialize_from_str(&xml).unwrap();
        assert_eq!(parsed.tests, checks);
        assert_eq!(parsed.failures, 2);
        assert_eq!(parsed.errors, 1);
        let cases: Vec<_> = parsed
            .test_suites
            .iter()
            .flat_map(|s| &s.test_cases)
            .collect();
        assert_eq!(cases.len(), checks);
        let skipped = cases
            .iter()
            .filter(|c| matches!(c.status, TestCaseStatus::Skipped { .. }))
            .count();
        assert_eq!(skipped, 1);
        assert_eq!(cases[1].classname.as_deref(), Some("alice.07-semaphores"));
        assert!(
            cases[1]
                .properties
                .contains(&Property::new("max_score", "6"))
        );
    }

    #[test]
    fn characters_xml_forbids_are_dropped() {
        let mut report = sample_report();
        let check = &mut report.submissions[0].notebooks[0].checks[1];
        check.id = "bad\u{0}id\u{FFFF}".to_owned();
        check.message = "printed \u{1b}[31mred\u{1b}[0m and \u{8}\u{FFFE}".to_owned();
        check.details = "-expected <a> & \"b\"\n+got ]]> \u{0}\u{1f}".to_owned();
        let xml = render(&report);
        let parsed = quick_junit::Report::deserialize_from_str(&xml).unwrap();
        let case = &parsed.test_suites[0].test_cases[1];
        assert_eq!(case.name.as_str(), "badid");
        let TestCaseStatus::NonSuccess {
            message,
            description,
            ..
        } = &case.status
        else {
            panic!("not a failure: {case:?}");
        };
        assert_eq!(message.as_deref(), Some("printed red and "));
        let description = description.as_deref().unwrap();
        assert!(
            description.contains("-expected <a> & \"b\"\n+got ]]> "),
            "{description}"
        );
    }
}
