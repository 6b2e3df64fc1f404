//! `conclab-check release` on the lab's notebooks and on broken ones.

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use conclab_check::report::{Outcome, Report};
use predicates::prelude::*;
use serde_json::Value;

fn check() -> Command {
    Command::cargo_bin("conclab-check")
        .expect("cargo builds conclab-check for the workspace's tests")
}

fn lab() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("notebooks")
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn source_of(cell: &Value) -> String {
    match &cell["source"] {
        Value::String(s) => s.clone(),
        Value::Array(lines) => lines.iter().map(|l| l.as_str().unwrap()).collect(),
        _ => String::new(),
    }
}

#[test]
fn the_lab_releases_with_stubs_no_hidden_tests_and_no_exercise_outputs() {
    let out = tempfile::tempdir().unwrap();
    check()
        .args(["release"])
        .arg(lab())
        .arg("--output")
        .arg(out.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("released 9 notebooks"))
        .stdout(predicate::str::contains(
            "13 solutions replaced by stubs, 13 hidden tests removed",
        ));
    for entry in fs::read_dir(lab()).unwrap().flatten() {
        if entry.path().extension().is_none_or(|e| e != "ipynb") {
            continue;
        }
        let source = read(&entry.path());
        let released = read(&out.path().join(entry.file_name()));
        let cells = released["cells"].as_array().unwrap();
        for cell in cells {
            let grading = &cell["metadata"]["nbgrader"];
            let text = source_of(cell);
            assert!(
                !text.contains("BEGIN SOLUTION"),
                "no solution survives in {:?}",
                entry.file_name()
            );
            assert_ne!(
                cell["metadata"]["conclab"]["hidden"], true,
                "no hidden test survives"
            );
            if grading["solution"] == true {
                assert!(
                    text.contains("todo!(\"your solution here\")"),
                    "a stub replaces the solution"
                );
            }
            if grading["solution"] == true || grading["grade"] == true {
                assert_eq!(
                    cell["outputs"],
                    Value::Array(vec![]),
                    "exercise outputs are cleared"
                );
            }
        }
        // Worked examples keep their verified outputs.
        let example_outputs = |nb: &Value| -> Vec<Value> {
            nb["cells"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["cell_type"] == "code" && c["metadata"]["nbgrader"].is_null())
                .map(|c| c["outputs"].clone())
                .collect()
        };
        assert_eq!(example_outputs(&released), example_outputs(&source));
    }
}

/// Writes notebooks (name, JSON text) to a new folder.
fn folder(notebooks: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in notebooks {
        fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn notebook(cells: &str) -> String {
    format!(r#"{{"nbformat": 4, "nbformat_minor": 5, "metadata": {{}}, "cells": [{cells}]}}"#)
}

fn solution_cell(grade_id: &str, source: &str) -> String {
    format!(
        r#"{{"cell_type": "code", "id": "{grade_id}", "metadata": {{"nbgrader": {{"grade_id": "{grade_id}", "solution": true, "grade": false, "locked": false, "schema_version": 3}}}}, "source": {}, "outputs": [], "execution_count": null}}"#,
        serde_json::to_string(source).unwrap()
    )
}

#[test]
fn broken_notebooks_are_named_with_their_problem_and_nothing_is_written() {
    let good = notebook(&solution_cell(
        "ok",
        "// ### BEGIN SOLUTION\n1\n// ### END SOLUTION",
    ));
    let cases = [
        (
            "not-json.ipynb",
            "{ this is not json".to_owned(),
            "not a JSON notebook",
        ),
        (
            "old.ipynb",
            r#"{"nbformat": 3, "worksheets": []}"#.to_owned(),
            "nbformat 3 is not supported",
        ),
        (
            "twice.ipynb",
            notebook(&format!(
                "{},{}",
                solution_cell("same", "// ### BEGIN SOLUTION\n// ### END SOLUTION"),
                solution_cell("same", "// ### BEGIN SOLUTION\n// ### END SOLUTION")
            )),
            "grade_id \"same\" appears more than once",
        ),
        (
            "no-markers.ipynb",
            notebook(&solution_cell("bare", "fn f() {}")),
            "has no `### BEGIN SOLUTION` region",
        ),
        (
            "unclosed.ipynb",
            notebook(&solution_cell("open", "// ### BEGIN SOLUTION\nfn f() {}")),
            "is never closed",
        ),
    ];
    for (name, text, problem) in cases {
        let source = folder(&[("a-good.ipynb", good.as_str()), (name, text.as_str())]);
        let out = tempfile::tempdir().unwrap();
        check()
            .arg("release")
            .arg(source.path())
            .arg("-o")
            .arg(out.path())
            .assert()
            .code(2)
            .stderr(predicate::str::contains(name))
            .stderr(predicate::str::contains(problem));
        assert_eq!(
            fs::read_dir(out.path()).unwrap().count(),
            0,
            "{name}: nothing is written when a notebook is bad"
        );
    }
}

#[test]
fn releasing_over_the_sources_is_refused() {
    let source = folder(&[("a.ipynb", &notebook(""))]);
    check()
        .arg("release")
        .arg(source.path())
        .arg("--output")
        .arg(source.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("would overwrite the solutions"));
}

#[test]
fn bad_usage_exits_2() {
    check()
        .assert()
        .code(2)
        .stderr(predicate::str::contains("Usage"));
    check()
        .args(["release", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--output"));
    check()
        .args(["release", "/no/such/folder", "-o", "/tmp/x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/no/such/folder"));
}

fn cell(metadata: &str, source: &str, stdout: &str) -> String {
    format!(
        r#"{{"cell_type": "code", "metadata": {metadata}, "source": {}, "outputs": [{{"output_type": "stream", "name": "stdout", "text": {}}}], "execution_count": null}}"#,
        serde_json::to_string(source).unwrap(),
        serde_json::to_string(stdout).unwrap()
    )
}

/// `validate --invert`: in the learner's version every graded test fails,
/// and a cell that shows what the learner's function does may fail only by
/// reaching its stub; a cell broken for another reason is still a failure.
#[test]
fn inverted_validation_lets_a_cell_reach_a_stub_but_not_fail_otherwise() {
    let exact = r#"{"conclab": {"compare": {"mode": "exact"}}}"#;
    let cells = [
        solution_cell(
            "double",
            "pub fn double(x: u64) -> u64 {\n    // ### BEGIN SOLUTION\n    x * 2\n    // ### END SOLUTION\n}",
        ),
        cell(
            r#"{"nbgrader": {"grade_id": "double-test", "grade": true, "points": 1, "solution": false, "locked": true, "schema_version": 3}, "conclab": {"compare": {"mode": "exact"}}}"#,
            "assert_eq!(double(2), 4);\nprintln!(\"ok\");",
            "ok\n",
        ),
        cell(exact, "println!(\"{}\", double(21));", "42\n"),
        cell(
            exact,
            "let empty: Vec<u64> = Vec::new();\nprintln!(\"{}\", empty[0]);",
            "0\n",
        ),
    ];
    let source = folder(&[("demo.ipynb", notebook(&cells.join(",")).as_str())]);
    let assert = check()
        .args(["validate", "--invert", "--format", "json"])
        .arg(source.path().join("demo.ipynb"))
        .assert()
        .code(1);
    let report: Report = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    let checks = &report.submissions[0].notebooks[0].checks;
    let of = |cell: &str| {
        checks
            .iter()
            .find(|c| c.cell == cell)
            .unwrap_or_else(|| panic!("no check of {cell}: {report:#?}"))
    };
    assert_eq!(of("double-test").outcome, Outcome::Passed, "{report:#?}");
    let demo = of("cell 2");
    assert_eq!(demo.outcome, Outcome::Passed, "{demo:#?}");
    assert!(
        demo.message
            .contains("uses a solution the learner has not written yet"),
        "{demo:#?}"
    );
    let broken = of("cell 3");
    assert_eq!(broken.outcome, Outcome::Failed, "{broken:#?}");
    assert!(
        broken.message.contains("index out of bounds"),
        "{broken:#?}"
    );
}
