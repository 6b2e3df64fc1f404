//! Shared by the checker's end-to-end tests: the lab's notebooks, learner
//! submissions made from them with some solution cells rewritten, and
//! `conclab-check` runs read back from their JSON reports as typed
//! [`Report`]s.

#![allow(dead_code)] // each test binary uses its own part

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use conclab_check::report::{Check, Outcome, Report};
use serde_json::Value;

/// The conclab-check binary built for these tests.
pub fn check() -> Command {
    let mut command = Command::cargo_bin("conclab-check")
        .expect("cargo builds conclab-check for the workspace's tests");
    // The kernel built next to it, whatever PATH holds.
    command.env(
        "CONCLAB_KERNEL",
        assert_cmd::cargo::cargo_bin("conclab-kernel"),
    );
    command
}

/// The lab's source notebooks.
pub fn lab() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("notebooks")
}

/// A notebook read as JSON.
pub fn read(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

/// A JSON report (`--format json`), as conclab-check wrote it.
pub fn report(json: &[u8]) -> Report {
    serde_json::from_slice(json).unwrap_or_else(|e| {
        panic!(
            "not a conclab-check JSON report ({e}): {}",
            String::from_utf8_lossy(json)
        )
    })
}

/// The JSON report conclab-check wrote to `path`.
pub fn read_report(path: &Path) -> Report {
    report(&fs::read(path).unwrap())
}

/// Writes `notebook` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, notebook: &Value) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, serde_json::to_string_pretty(notebook).unwrap()).unwrap();
    path
}

/// The lab notebook `name` with the solution cells `grade_id → code`
/// replaced: a learner's submission.
pub fn submission(name: &str, solutions: &[(&str, &str)]) -> Value {
    let mut notebook = read(&lab().join(name));
    for (id, code) in solutions {
        let cell = notebook["cells"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|c| c["metadata"]["nbgrader"]["grade_id"] == *id)
            .unwrap_or_else(|| panic!("{name} has no cell {id}"));
        cell["source"] = Value::from(*code);
    }
    notebook
}

/// A source notebook with its per-cell time limits lowered to `seconds`,
/// so a test of a hang does not wait for the real limit.
pub fn with_timeout(mut notebook: Value, seconds: f64) -> Value {
    notebook["metadata"]["conclab"]["timeout_s"] = Value::from(seconds);
    for cell in notebook["cells"].as_array_mut().unwrap() {
        if let Some(settings) = cell["metadata"]["conclab"].as_object_mut()
            && settings.contains_key("timeout_s")
        {
            settings.insert("timeout_s".into(), Value::from(seconds));
        }
    }
    notebook
}

/// A finished run: its exit code, report and stderr.
pub struct Graded {
    pub code: i32,
    pub report: Report,
    pub stderr: String,
}

/// What a check says: its message, then its details.
pub fn says(check: &Check) -> String {
    format!("{} {}", check.message, check.details)
}

impl Graded {
    /// The check `id` of the first submission's notebooks.
    pub fn check(&self, id: &str) -> &Check {
        self.checks()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no check {id} in {:#?}", self.report))
    }

    /// The report as conclab-check wrote it, as pretty JSON: for whoever
    /// reads a failure.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(&self.report).unwrap()
    }

    /// Every check of every submission.
    pub fn checks(&self) -> impl Iterator<Item = &Check> {
        self.report
            .submissions
            .iter()
            .flat_map(|s| s.checks().map(|(_, check)| check))
    }

    /// Asserts check `id` has `outcome` and a message containing `words`.
    pub fn expect(&self, id: &str, outcome: Outcome, words: &str) {
        let check = self.check(id);
        assert_eq!(check.outcome, outcome, "{id}: {check:#?}");
        assert!(
            says(check).contains(words),
            "{id} should say {words:?}: {check:#?}"
        );
    }
}

/// `conclab-check grade --format json` with `args`.
pub fn grade(args: &[&std::ffi::OsStr]) -> Graded {
    grade_with_env(args, &[])
}

/// `grade` with extra environment variables for conclab-check.
pub fn grade_with_env(args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> Graded {
    const LIMIT: std::time::Duration = std::time::Duration::from_secs(600);
    let started = std::time::Instant::now();
    let output = check()
        .envs(env.iter().copied())
        .arg("grade")
        .args(args)
        .args(["--format", "json"])
        .timeout(LIMIT)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if output.status.code().is_none() && started.elapsed() >= LIMIT {
        panic!(
            "conclab-check grade did not finish within {LIMIT:?} (killed: {}); grade fewer submissions per test; stderr: {stderr}",
            output.status
        );
    }
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not a JSON report ({e}; conclab-check {}); stderr: {stderr}",
            output.status
        )
    });
    Graded {
        code: output.status.code().unwrap_or(-1),
        report,
        stderr,
    }
}

/// Grades `submission` (written into a temp dir as `name`) against the
/// source notebook `source`.
pub fn grade_notebook(source: &Path, name: &str, submission: &Value) -> Graded {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), name, submission);
    grade(&["--source".as_ref(), source.as_os_str(), path.as_os_str()])
}

/// A learner's mistake: a submission name (what the report calls it) and
/// the solution cells it rewrites, `grade_id → code`.
pub type Mistake<'a> = (&'a str, Vec<(&'a str, String)>);

/// Grades one submission per mistake of the lab notebook `name` against
/// the lab's source, all in one `conclab-check grade` run (one notebook
/// run per core at once), each submission in a folder of its own name.
pub fn grade_mistakes(name: &str, mistakes: &[Mistake]) -> Graded {
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<std::ffi::OsString> = vec!["--source".into(), lab().join(name).into()];
    for (submission_name, solutions) in mistakes {
        let folder = dir.path().join(submission_name);
        fs::create_dir(&folder).unwrap();
        let solutions: Vec<(&str, &str)> = solutions
            .iter()
            .map(|(id, code)| (*id, code.as_str()))
            .collect();
        write(&folder, name, &submission(name, &solutions));
        args.push(folder.into());
    }
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    grade(&args)
}

impl Graded {
    /// Every check of the submission named `submission`.
    pub fn checks_of(&self, submission: &str) -> impl Iterator<Item = &Check> {
        self.report
            .submissions
            .iter()
            .filter(move |s| s.submission == submission)
            .flat_map(|s| s.checks().map(|(_, check)| check))
    }

    /// The check `id` of the submission named `submission`.
    pub fn of(&self, submission: &str, id: &str) -> &Check {
        self.checks_of(submission)
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no check {id} of {submission} in {:#?}", self.report))
    }

    /// Asserts the submission's check `id` has `outcome` and a message (or
    /// details) containing `words`.
    pub fn expect_of(&self, submission: &str, id: &str, outcome: Outcome, words: &str) {
        let check = self.of(submission, id);
        assert_eq!(check.outcome, outcome, "{submission}: {id}: {check:#?}");
        assert!(
            says(check).contains(words),
            "{submission}: {id} should say {words:?}: {check:#?}"
        );
    }

    /// The points the submission earned for the cells whose id starts with
    /// `exercise`.
    pub fn points_of(&self, submission: &str, exercise: &str) -> f64 {
        self.checks_of(submission)
            .filter(|c| c.cell.starts_with(exercise))
            .map(|c| c.score)
            .sum()
    }
}

/// The source's own solution cell `grade_id` of `notebook`, with `from`
/// replaced by `to`: a mistake made in an otherwise right solution.
pub fn reference_with(notebook: &str, grade_id: &str, from: &str, to: &str) -> String {
    let source = read(&lab().join(notebook));
    let cell = source["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["metadata"]["nbgrader"]["grade_id"] == grade_id)
        .unwrap();
    let text: String = cell["source"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line.as_str().unwrap())
        .collect();
    assert!(text.contains(from), "{grade_id} has {from:?}");
    text.replace(from, to)
}

/// `text` with `from` replaced by `to`, which must be there: a second
/// change to a reference solution.
pub fn replaced(text: String, from: &str, to: &str) -> String {
    assert!(text.contains(from), "no {from:?} in {text}");
    text.replace(from, to)
}
