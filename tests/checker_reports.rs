//! What `conclab-check grade` writes: each format, a batch split into shards
//! and merged back, a batch that resumes, and the exit codes for bad input.

mod support;

use std::ffi::OsStr;
use std::fs;
use std::path::Path;

use conclab_check::report::{CheckKind, Outcome, Report};
use predicates::prelude::*;
use serde_json::Value;
use support::{check, lab, submission, write};

const NOTEBOOK: &str = "07-semaphores.ipynb";

/// A semaphore that lets everyone in: fails the step's limits.
const UNLIMITED: &str = r#"
pub struct Semaphore { free: labkit::sync::Mutex<usize> }
pub struct Permit<'a> { semaphore: &'a Semaphore }
impl Semaphore {
    pub fn new(permits: usize) -> Semaphore { Semaphore { free: labkit::sync::Mutex::named("permits", permits) } }
    pub fn acquire(&self) -> Permit<'_> { Permit { semaphore: self } }
    pub fn available(&self) -> usize { *self.free.lock().unwrap() }
}
impl Drop for Permit<'_> { fn drop(&mut self) { let _ = self.semaphore; } }"#;

/// A class of three: two right, one wrong.
fn class(dir: &Path) -> Vec<std::path::PathBuf> {
    let right = support::read(&lab().join(NOTEBOOK));
    let wrong = submission(NOTEBOOK, &[("step07-semaphore", UNLIMITED)]);
    ["ada", "bob", "cy"]
        .iter()
        .zip([&right, &wrong, &right])
        .map(|(name, notebook)| write(dir, &format!("{name}.ipynb"), notebook))
        .collect()
}

/// (submission path, notebook, [(check id, outcome, score)]).
type Verdicts = (String, String, Vec<(String, Outcome, f64)>);

/// What must be the same however a batch is split: who, which checks, the
/// verdicts and the points (times and measured evidence vary run to run).
fn verdicts(report: &Report) -> Vec<Verdicts> {
    report
        .submissions
        .iter()
        .flat_map(|s| {
            s.notebooks.iter().map(move |n| {
                let checks = n
                    .checks
                    .iter()
                    .map(|c| (c.id.clone(), c.outcome, c.score))
                    .collect();
                (s.path.clone(), n.notebook.clone(), checks)
            })
        })
        .collect()
}

fn os(text: &str) -> &OsStr {
    OsStr::new(text)
}

fn run(args: &[&OsStr]) -> (i32, String) {
    let output = check().args(args).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
    )
}

#[test]
fn shards_merge_into_the_report_of_a_single_run_and_every_format_renders_it() {
    let dir = tempfile::tempdir().unwrap();
    let learners = class(dir.path());
    let source = lab().join(NOTEBOOK);
    let mut single = vec![os("grade"), os("--source"), source.as_os_str()];
    single.extend(learners.iter().map(|p| p.as_os_str()));
    let whole_json = dir.path().join("whole.json");
    let mut args = single.clone();
    args.extend([
        os("--format"),
        os("json"),
        os("--output"),
        whole_json.as_os_str(),
    ]);
    let (code, _) = run(&args);
    assert_eq!(code, 1, "bob's semaphore fails");

    // Three shards, as three separate processes (a Kubernetes Indexed Job).
    let mut shards = Vec::new();
    for index in 0..3 {
        let out = dir.path().join(format!("shard-{index}.json"));
        let shard = format!("{index}/3");
        let mut args = single.clone();
        args.extend([
            os("--shard"),
            os(&shard),
            os("--format"),
            os("json"),
            os("--output"),
            out.as_os_str(),
        ]);
        run(&args);
        let report = support::read_report(&out);
        assert_eq!(report.submissions.len(), 1, "one learner per shard");
        shards.push(out);
    }
    let mut merge = vec![os("merge")];
    merge.extend(shards.iter().map(|p| p.as_os_str()));
    let mut as_json = merge.clone();
    as_json.extend([os("--format"), os("json")]);
    let (code, merged) = run(&as_json);
    assert_eq!(code, 1, "merge gives the single run's exit code");
    let merged = support::report(merged.as_bytes());
    let whole = support::read_report(&whole_json);
    assert_eq!(verdicts(&merged), verdicts(&whole));
    assert_eq!(merged.command, whole.command);
    let checks: usize = whole
        .submissions
        .iter()
        .flat_map(|s| &s.notebooks)
        .map(|n| n.checks.len())
        .sum();
    // A solution that merely compiled is no pass: only its tests and
    // properties count, so no cell is listed for having run clean.
    let ran_clean: Vec<_> = whole
        .submissions
        .iter()
        .flat_map(|s| s.checks().map(|(_, check)| check))
        .filter(|c| c.kind == CheckKind::Run && c.outcome == Outcome::Passed)
        .collect();
    assert!(ran_clean.is_empty(), "{ran_clean:#?}");

    // JUnit: well-formed XML, one testcase per check, failures as <failure>.
    let mut junit = merge.clone();
    junit.extend([os("--format"), os("junit")]);
    let (_, xml) = run(&junit);
    let parsed = quick_junit::Report::deserialize_from_str(&xml)
        .unwrap_or_else(|e| panic!("not well-formed JUnit ({e}):\n{xml}"));
    let cases: usize = parsed.test_suites.iter().map(|s| s.test_cases.len()).sum();
    assert_eq!(cases, checks, "one testcase per check");
    assert!(xml.contains("<failure"), "{xml}");
    assert!(
        xml.contains(r#"classname="bob.ipynb.07-semaphores""#),
        "{xml}"
    );

    // Gradescope: results.json per learner with the fields its spec names.
    let mut gradescope = merge.clone();
    gradescope.extend([os("--format"), os("gradescope")]);
    let (_, results) = run(&gradescope);
    let results: Value = serde_json::from_str(&results).unwrap();
    let bob = results
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["submission"] == "bob.ipynb")
        .unwrap();
    let results = &bob["results"];
    for field in [
        "score",
        "execution_time",
        "output",
        "tests",
        "visibility",
        "stdout_visibility",
    ] {
        assert!(
            results.get(field).is_some(),
            "results.json has {field}: {results:#}"
        );
    }
    for test in results["tests"].as_array().unwrap() {
        for field in [
            "name",
            "score",
            "max_score",
            "status",
            "output",
            "visibility",
        ] {
            assert!(test.get(field).is_some(), "each test has {field}: {test:#}");
        }
        assert!(["passed", "failed"].contains(&test["status"].as_str().unwrap()));
    }
    assert!(
        results["score"].as_f64().unwrap() < 11.0,
        "bob loses points"
    );

    // CSV: one row per learner and exercise, then the learner's total;
    // the same from the shards as from the single run.
    let mut csv = merge.clone();
    csv.extend([os("--format"), os("csv")]);
    let (_, grades) = run(&csv);
    let (_, single_grades) = run(&[
        os("merge"),
        whole_json.as_os_str(),
        os("--format"),
        os("csv"),
    ]);
    assert_eq!(grades, single_grades);
    let mut reader = csv::Reader::from_reader(grades.as_bytes());
    assert_eq!(
        reader.headers().unwrap(),
        vec!["learner", "notebook", "exercise", "points", "max_points"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let number = |row: &csv::StringRecord, i: usize| row[i].parse::<f64>().unwrap();
    for learner in ["ada.ipynb", "bob.ipynb", "cy.ipynb"] {
        let mine: Vec<_> = rows.iter().filter(|r| &r[0] == learner).collect();
        let (total, exercises) = mine.split_last().unwrap();
        assert_eq!((&total[1], &total[2]), ("", "TOTAL"), "{grades}");
        let exercise_names: Vec<&str> = exercises.iter().map(|r| &r[2]).collect();
        assert_eq!(
            exercise_names,
            ["step07-semaphore", "step07-limited-downloads"],
            "{grades}"
        );
        for i in [3, 4] {
            let sum: f64 = exercises.iter().map(|r| number(r, i)).sum();
            assert_eq!(sum, number(total, i), "{learner}: {grades}");
        }
        let full = number(total, 3) == number(total, 4);
        assert_eq!(full, learner != "bob.ipynb", "{grades}");
    }

    // HTML to a folder: the class site, every section, the failure linked.
    let site = dir.path().join("site");
    let mut html = merge.clone();
    html.extend([os("--format"), os("html"), os("--output"), site.as_os_str()]);
    run(&html);
    let index = fs::read_to_string(site.join("index.html")).unwrap();
    for section in ["distribution", "exercises", "failures", "learners"] {
        assert!(
            index.contains(&format!("<section id=\"{section}\">")),
            "{index}"
        );
    }
    assert!(
        index.contains("A limit broken: too many at once"),
        "{index}"
    );
    let link = "learners/bob.html#check-07-semaphores--step07-semaphore-hidden_max_inside_inside_";
    assert!(index.contains(link), "{index}");
    let bob = fs::read_to_string(site.join("learners/bob.html")).unwrap();
    assert!(
        bob.contains("id=\"check-07-semaphores--step07-semaphore-hidden_max_inside_inside_\""),
        "{bob}"
    );

    // Text: the failure with its evidence, and a summary table.
    let mut text = merge;
    text.extend([os("--format"), os("text")]);
    let (_, text) = run(&text);
    assert!(
        text.contains("✗ step07-semaphore-hidden/max_inside(inside)"),
        "{text}"
    );
    assert!(text.contains("submission"), "a summary table: {text}");
}

#[test]
fn an_interrupted_batch_resumes_from_the_results_it_kept() {
    let dir = tempfile::tempdir().unwrap();
    let learners = class(dir.path());
    let results = dir.path().join("results");
    let source = lab().join(NOTEBOOK);
    let mut args = vec![os("grade"), os("--source"), source.as_os_str()];
    args.push(learners[0].as_os_str());
    args.extend([
        os("--results"),
        results.as_os_str(),
        os("--format"),
        os("json"),
    ]);
    let (code, _) = run(&args);
    assert_eq!(code, 0);
    let kept: Vec<_> = fs::read_dir(&results).unwrap().flatten().collect();
    assert_eq!(kept.len(), 1, "ada's result was written when it was done");
    let modified = kept[0].metadata().unwrap().modified().unwrap();

    // The rerun over the whole class grades only the two it lacks.
    let mut args = vec![os("grade"), os("--source"), source.as_os_str()];
    args.extend(learners.iter().map(|p| p.as_os_str()));
    args.extend([
        os("--results"),
        results.as_os_str(),
        os("--format"),
        os("json"),
    ]);
    let (code, report) = run(&args);
    assert_eq!(code, 1);
    let report = support::report(report.as_bytes());
    assert_eq!(report.submissions.len(), 3);
    assert_eq!(fs::read_dir(&results).unwrap().count(), 3);
    let ada = fs::read_dir(&results)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("ada"))
        .unwrap();
    assert_eq!(
        ada.metadata().unwrap().modified().unwrap(),
        modified,
        "ada was not graded again"
    );
}

#[test]
fn unreadable_inputs_exit_2_and_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "good.ipynb",
        &support::read(&lab().join(NOTEBOOK)),
    );
    let not_json = dir.path().join("not-json.ipynb");
    fs::write(&not_json, "{ this is not").unwrap();
    let mut v3 = support::read(&lab().join(NOTEBOOK));
    v3["nbformat"] = Value::from(3);
    let v3 = write(dir.path(), "v3.ipynb", &v3);
    let mut duplicated = support::read(&lab().join(NOTEBOOK));
    let copy = duplicated["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["metadata"]["nbgrader"]["grade_id"] == "step07-semaphore")
        .unwrap()
        .clone();
    duplicated["cells"].as_array_mut().unwrap().push(copy);
    let duplicated = write(dir.path(), "duplicated.ipynb", &duplicated);
    let mut bad_settings = support::read(&lab().join(NOTEBOOK));
    let first_code = bad_settings["cells"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c["cell_type"] == "code")
        .unwrap();
    bad_settings["cells"][first_code]["metadata"]["conclab"] =
        serde_json::json!({"compare": {"mode": "fuzzy"}});
    let bad_settings = write(dir.path(), "bad-settings.ipynb", &bad_settings);

    for (source, problem) in [
        (&not_json, "not a JSON notebook"),
        (&v3, "nbformat 3 is not supported"),
        (
            &duplicated,
            "grade_id \"step07-semaphore\" appears more than once",
        ),
        (
            &bad_settings,
            "does not follow notebooks/conclab.schema.json",
        ),
    ] {
        check()
            .args(["grade", "--source"])
            .arg(source)
            .arg(&good)
            .assert()
            .code(2)
            .stderr(
                predicate::str::contains(source.to_string_lossy())
                    .and(predicate::str::contains(problem)),
            );
        check()
            .arg("validate")
            .arg(source)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(problem));
    }

    // A submission without any of the source's exercises.
    let unrelated = write(
        dir.path(),
        "unrelated.ipynb",
        &serde_json::json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}),
    );
    let (code, report) = run(&[
        os("grade"),
        os("--source"),
        lab().join(NOTEBOOK).as_os_str(),
        unrelated.as_os_str(),
        os("--format"),
        os("json"),
    ]);
    assert_eq!(code, 2);
    let report = support::report(report.as_bytes());
    assert!(
        report
            .submissions
            .iter()
            .flat_map(|s| s.checks())
            .any(|(_, check)| check
                .message
                .contains("none of the source's exercises (grade_ids) are in this notebook")),
        "{report:#?}"
    );

    check()
        .args(["grade", "--source", "nowhere.ipynb", "x.ipynb"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nowhere.ipynb"));
    check()
        .args(["grade", "--source"])
        .arg(lab())
        .arg(&good)
        .args(["--shard", "3/3"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("less than N"));
    check()
        .args(["merge"])
        .arg(&good)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a conclab-check JSON report"));
}

#[test]
fn a_spare_checks_the_notebook_its_standard_input_names() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = write(
        dir.path(),
        "bob.ipynb",
        &submission(NOTEBOOK, &[("step07-semaphore", UNLIMITED)]),
    );
    // The kernel starts before the request comes: how `:check` finds one ready.
    let request = conclab_wire::CheckRequest {
        notebook: wrong.clone(),
        exercise: Some("step07-semaphore".into()),
    };
    let output = check()
        .args(["feedback", "--spare", "--format", "json"])
        .write_stdin(request.to_line())
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "the unlimited semaphore fails"
    );
    let report = support::report(&output.stdout);
    let notebook = &report.submissions[0].notebooks[0];
    assert_eq!(notebook.notebook, "bob.ipynb");
    let checks = &notebook.checks;
    assert!(
        checks.iter().all(|c| c.id.starts_with("step07-semaphore")),
        "only the exercise named in the request: {checks:#?}"
    );
    assert!(
        checks.iter().any(|c| c.outcome == Outcome::Failed),
        "{checks:#?}"
    );

    // A request that is not one is bad input; no request at all, nothing to do.
    check()
        .args(["feedback", "--spare"])
        .write_stdin("{\"notebook\": 3}\n")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not {\"notebook\": PATH"));
    check()
        .args(["feedback", "--spare"])
        .write_stdin("")
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "standard input closed before naming a notebook",
        ));
    // --spare takes its notebook from standard input only.
    check()
        .args(["feedback", "--spare"])
        .arg(&wrong)
        .assert()
        .code(2);
}
