//! `:check`: the checker's feedback on the learner's notebook, without
//! leaving it.
//!
//! Jupyter never sends the notebook to its kernel, so the checker reads the
//! notebook as last saved (Jupyter Server names it in `JPY_SESSION_NAME`),
//! with each solution cell replaced by the code the learner last ran in it:
//! JupyterLab sends a cell's id and metadata (its nbgrader `grade_id` among
//! them) with every execute request. What the learner ran is what is checked,
//! saved or not.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use conclab_wire::CheckRequest;

use jupyter_protocol::DisplayData;
use serde_json::Value;

/// The environment variable Jupyter Server sets to the notebook's path.
pub const SESSION_NAME: &str = "JPY_SESSION_NAME";

/// A `:check` line: `:check`, `:check EXERCISE` or `:check NOTEBOOK.ipynb`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CheckCommand {
    /// The notebook named after `:check`, if any.
    pub notebook: Option<PathBuf>,
    /// The exercise (a solution's grade_id) whose tests alone should run.
    pub exercise: Option<String>,
}

impl CheckCommand {
    /// Reads a cell that is only `:check [NOTEBOOK]`; None for any other cell.
    pub fn parse(code: &str) -> Option<CheckCommand> {
        let mut lines = code.lines().map(str::trim).filter(|l| !l.is_empty());
        let line = lines.next()?;
        if lines.next().is_some() {
            return None;
        }
        let rest = line.strip_prefix(":check")?;
        if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
            return None;
        }
        let rest = rest.trim();
        // A notebook's name may hold spaces; an exercise's grade_id does not.
        Some(if rest.is_empty() {
            CheckCommand::default()
        } else if rest.ends_with(".ipynb") {
            CheckCommand {
                notebook: Some(PathBuf::from(rest)),
                exercise: None,
            }
        } else {
            CheckCommand {
                notebook: None,
                exercise: Some(rest.to_owned()),
            }
        })
    }

    /// The notebook to check: the one named, else the one Jupyter Server
    /// started this kernel for.
    pub fn notebook_path(&self) -> Result<PathBuf, String> {
        if let Some(path) = &self.notebook {
            return Ok(path.clone());
        }
        match std::env::var_os(SESSION_NAME) {
            Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
            _ => Err(
                "this kernel does not know which notebook it runs (Jupyter Server did not say); \
                 name it: `:check path/to/notebook.ipynb`"
                    .into(),
            ),
        }
    }
}

/// The code the learner last ran in each cell, by grade_id and by cell id.
#[derive(Debug, Default)]
pub struct Attempts {
    by_grade_id: HashMap<String, String>,
    by_cell_id: HashMap<String, String>,
}

/// How the checked copy of a notebook was put together.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Overlay {
    /// Solution cells taken as the learner last ran them.
    pub ran: usize,
    /// Solution cells taken as saved: not run in this session.
    pub saved: usize,
    /// Graded test cells, which the checker will run.
    pub tests: usize,
}

impl Attempts {
    /// Remembers `code` as run in the cell an execute request's metadata names.
    pub fn record(&mut self, metadata: &Value, code: &str) {
        if let Some(id) = metadata
            .pointer("/nbgrader/grade_id")
            .and_then(Value::as_str)
        {
            self.by_grade_id.insert(id.to_owned(), code.to_owned());
        }
        if let Some(id) = metadata.get("cellId").and_then(Value::as_str) {
            self.by_cell_id.insert(id.to_owned(), code.to_owned());
        }
    }

    /// Replaces the source of each of `notebook`'s solution cells with the
    /// code last run in it, matched by grade_id, else by cell id.
    pub fn overlay(&self, notebook: &mut Value) -> Overlay {
        let mut overlay = Overlay::default();
        let Some(cells) = notebook.get_mut("cells").and_then(Value::as_array_mut) else {
            return overlay;
        };
        for cell in cells {
            if cell.get("cell_type").and_then(Value::as_str) != Some("code") {
                continue;
            }
            let flag = |name: &str| {
                cell.pointer(&format!("/metadata/nbgrader/{name}")) == Some(&Value::Bool(true))
            };
            if !flag("solution") {
                overlay.tests += usize::from(flag("grade"));
                continue;
            }
            let by_grade_id = cell
                .pointer("/metadata/nbgrader/grade_id")
                .and_then(Value::as_str)
                .and_then(|id| self.by_grade_id.get(id));
            let by_cell_id = || {
                cell.get("id")
                    .and_then(Value::as_str)
                    .and_then(|id| self.by_cell_id.get(id))
            };
            match by_grade_id.or_else(by_cell_id).cloned() {
                Some(code) => {
                    cell["source"] = Value::String(code);
                    overlay.ran += 1;
                }
                None => overlay.saved += 1,
            }
        }
        overlay
    }
}

/// What the checker said.
#[derive(Debug)]
pub struct Feedback {
    /// The report, as text for people: consoles and logs.
    pub report: String,
    /// The report as HTML for JupyterLab (`conclab-check --format html`);
    /// empty when the checker gave no report.
    pub html: String,
    /// The checker's exit code: 0 all passed, 1 a check failed, 2 bad
    /// input, 3 the checker could not run the work; None if killed.
    pub exit: Option<i32>,
    /// What the checker wrote to stderr (why it could not check).
    pub errors: String,
}

/// Writes the checked copy of `notebook` (solutions as last run) into
/// `dir`, under the notebook's own name so the report names it.
pub fn checked_copy(
    notebook: &Path,
    attempts: &Attempts,
    dir: &Path,
) -> Result<(PathBuf, Overlay), String> {
    let text = std::fs::read_to_string(notebook)
        .map_err(|e| format!("{}: cannot read it: {e}", notebook.display()))?;
    let mut json: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a notebook (not JSON: {e})", notebook.display()))?;
    let overlay = attempts.overlay(&mut json);
    if overlay.tests == 0 {
        return Err(format!(
            "{} has no tests to check: the lab's exercises are cells with nbgrader metadata \
             (a grade_id), and this notebook has none",
            notebook.display()
        ));
    }
    let name = notebook
        .file_name()
        .ok_or_else(|| format!("{}: not a notebook file", notebook.display()))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let copy = dir.join(name);
    std::fs::write(&copy, json.to_string()).map_err(|e| format!("{}: {e}", copy.display()))?;
    Ok((copy, overlay))
}

/// The conclab-check program: the one built or installed next to this
/// kernel, else the one on PATH.
pub fn checker_program() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|me| Some(me.parent()?.join("conclab-check")))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from("conclab-check"))
}

/// A `conclab-check feedback --spare` started ahead of time: its kernel
/// starts while the learner works, so `:check` does not wait for it.
pub struct SpareChecker {
    /// None once handed over.
    child: Option<Child>,
}

impl SpareChecker {
    /// Starts one, for copies of notebooks written into `dir`.
    pub fn start(dir: &Path) -> Result<SpareChecker, String> {
        let mut command = checker_command(dir)?;
        command.arg("--spare").stdin(Stdio::piped());
        let child = spawn(command)?;
        tracing::info!("started a spare checker, pid {}", child.id());
        Ok(SpareChecker { child: Some(child) })
    }

    /// Hands it `request`; None if it died meanwhile (or cannot be told).
    fn hand(mut self, request: &CheckRequest) -> Option<Child> {
        let child = self.child.as_mut()?;
        if !matches!(child.try_wait(), Ok(None)) {
            return None;
        }
        // Its stdin closes when `stdin` drops: it reads one line.
        let mut stdin = child.stdin.take()?;
        match stdin.write_all(request.to_line().as_bytes()) {
            Ok(()) => self.child.take(),
            Err(error) => {
                tracing::warn!("the spare checker cannot be told what to check: {error}");
                None
            }
        }
    }
}

impl Drop for SpareChecker {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            stop(child);
        }
    }
}

/// Stops a checker and the kernel it runs (its process group).
fn stop(child: &mut Child) {
    if matches!(child.try_wait(), Ok(None)) {
        // SAFETY: a plain system call; the group is the checker's own.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        let _ = child.wait();
    }
}

/// Where the checker writes its HTML report on a copy in `dir`.
fn html_report(dir: &Path) -> PathBuf {
    dir.join("report.html")
}

/// `conclab-check feedback` with what every `:check` passes, for a copy of
/// a notebook in `dir`: the report as text on stdout and as HTML in a file.
fn checker_command(dir: &Path) -> Result<Command, String> {
    let kernel = std::env::current_exe().map_err(|e| format!("finding this kernel: {e}"))?;
    let mut also = std::ffi::OsString::from("html=");
    also.push(html_report(dir));
    let mut command = Command::new(checker_program());
    command
        .arg("feedback")
        .arg("--jobs=1")
        .arg("--format=text")
        .arg("--also")
        .arg(also)
        .arg("--kernel")
        .arg(&kernel)
        // The checker's kernels make build folders of their own.
        .env_remove("EVCXR_TMPDIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Ok(command)
}

/// Starts `command` in a process group of its own, so that an interrupt
/// stops the checker and the kernel it runs, and dying with this kernel.
fn spawn(mut command: Command) -> Result<Child, String> {
    use std::os::unix::process::CommandExt;
    command.process_group(0);
    // SAFETY: prctl is async-signal-safe; it runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    command.spawn().map_err(|e| {
        format!(
            "cannot start {} ({e}); it is installed with the kernel: cargo install --path checker",
            checker_program().display()
        )
    })
}

/// Runs `conclab-check feedback` on `copy` (only `exercise`'s tests, if
/// given) with this kernel, through `spare` if it is still there;
/// `started` receives the checker's pid (its process group), so an
/// interrupt can stop it. One run of the checker prints its report as text
/// and writes it as HTML next to `copy` (`--also html=PATH`): one renderer,
/// the checker's, for the terminal and the notebook alike.
pub fn run_checker(
    copy: &Path,
    exercise: Option<&str>,
    spare: Option<SpareChecker>,
    started: impl FnOnce(u32),
) -> Result<Feedback, String> {
    let dir = copy.parent().unwrap_or(Path::new("."));
    let html_file = html_report(dir);
    let _ = std::fs::remove_file(&html_file);
    let request = CheckRequest {
        notebook: copy.to_owned(),
        exercise: exercise.map(str::to_owned),
    };
    let mut child = match spare.and_then(|spare| spare.hand(&request)) {
        Some(child) => child,
        None => {
            let mut command = checker_command(dir)?;
            if let Some(exercise) = exercise {
                command.arg("--exercise").arg(exercise);
            }
            command.arg(copy).stdin(Stdio::null());
            spawn(command)?
        }
    };
    started(child.id());
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut report = String::new();
    let _ = child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut report);
    let status = child
        .wait()
        .map_err(|e| format!("waiting for the checker: {e}"))?;
    let errors = errors.join().unwrap_or_default();
    // No file when the checker gave no report (bad input, or stopped).
    let html = std::fs::read_to_string(&html_file).unwrap_or_default();
    let _ = std::fs::remove_file(&html_file);
    Ok(Feedback {
        report,
        html,
        exit: status.code(),
        errors,
    })
}

/// The report as Jupyter display data: HTML for JupyterLab, the text
/// report for consoles and logs (every client shows one of them).
pub fn display(feedback: &Feedback) -> DisplayData {
    let mut data = serde_json::Map::new();
    if !feedback.html.is_empty() {
        data.insert("text/html".into(), Value::String(feedback.html.clone()));
    }
    data.insert("text/plain".into(), Value::String(feedback.report.clone()));
    DisplayData {
        data: serde_json::from_value(Value::Object(data)).unwrap_or_default(),
        metadata: serde_json::Map::new(),
        transient: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_report_is_shown_as_html_with_its_text_for_consoles() {
        let feedback = Feedback {
            report: "07-semaphores.ipynb  2/4 points\n".into(),
            html: "<p class=\"conclab-summary\">2/4 points</p>".into(),
            exit: Some(1),
            errors: String::new(),
        };
        let data = serde_json::to_value(display(&feedback).data).unwrap();
        assert_eq!(data["text/html"], json!(feedback.html));
        assert_eq!(data["text/plain"], json!(feedback.report));
        let text_only = Feedback {
            html: String::new(),
            ..feedback
        };
        let data = serde_json::to_value(display(&text_only).data).unwrap();
        assert!(data.get("text/html").is_none(), "{data}");
        assert_eq!(data["text/plain"], json!(text_only.report));
    }

    #[test]
    fn only_a_cell_that_is_a_check_line_is_a_check() {
        assert_eq!(CheckCommand::parse(":check"), Some(CheckCommand::default()));
        assert_eq!(
            CheckCommand::parse("  :check  my step07.ipynb \n"),
            Some(CheckCommand {
                notebook: Some("my step07.ipynb".into()),
                exercise: None,
            })
        );
        assert_eq!(
            CheckCommand::parse(":check step07-semaphore"),
            Some(CheckCommand {
                notebook: None,
                exercise: Some("step07-semaphore".into()),
            })
        );
        assert_eq!(CheckCommand::parse(":checked"), None);
        assert_eq!(CheckCommand::parse(":check\nlet x = 1;"), None);
        assert_eq!(CheckCommand::parse("let x = 1;"), None);
    }

    fn notebook() -> Value {
        json!({"cells": [
            {"cell_type": "code", "id": "a", "source": "saved a",
             "metadata": {"nbgrader": {"grade_id": "ex-a", "solution": true}}},
            {"cell_type": "code", "id": "b", "source": "saved b",
             "metadata": {"nbgrader": {"grade_id": "ex-b", "solution": true}}},
            {"cell_type": "code", "id": "t", "source": "saved test",
             "metadata": {"nbgrader": {"grade_id": "ex-a-test", "solution": false, "grade": true}}},
            {"cell_type": "code", "id": "c", "source": "saved c",
             "metadata": {"nbgrader": {"grade_id": "ex-c", "solution": true}}},
        ]})
    }

    #[test]
    fn solutions_are_taken_as_last_run_and_the_rest_as_saved() {
        let mut attempts = Attempts::default();
        attempts.record(
            &json!({"cellId": "a", "nbgrader": {"grade_id": "ex-a", "solution": true}}),
            "first a",
        );
        attempts.record(
            &json!({"cellId": "a", "nbgrader": {"grade_id": "ex-a", "solution": true}}),
            "run a",
        );
        // A client that sends the cell id only.
        attempts.record(&json!({"cellId": "c"}), "run c");
        // A learner who edits a test cell does not change the test.
        attempts.record(
            &json!({"cellId": "t", "nbgrader": {"grade_id": "ex-a-test"}}),
            "assert!(true);",
        );
        let mut json = notebook();
        let overlay = attempts.overlay(&mut json);
        assert_eq!(
            overlay,
            Overlay {
                ran: 2,
                saved: 1,
                tests: 1
            }
        );
        let sources: Vec<&str> = json["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["source"].as_str().unwrap())
            .collect();
        assert_eq!(sources, ["run a", "saved b", "saved test", "run c"]);
    }
}
