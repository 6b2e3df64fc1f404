//! `conclab-check release`: learner versions of source notebooks.
//!
//! As nbgrader's generate_assignment does: every region between `### BEGIN
//! SOLUTION` and `### END SOLUTION` (matched anywhere in a line, so `// ###
//! BEGIN SOLUTION` works in Rust) becomes a stub; hidden test cells and
//! `### BEGIN HIDDEN TESTS` regions go; the outputs of exercise cells are
//! cleared. The worked examples keep their verified outputs.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Value, json};

use crate::exit::Failure;
use crate::notebook::{self, BadNotebook, Notebook};

const BEGIN_SOLUTION: &str = "### BEGIN SOLUTION";
const END_SOLUTION: &str = "### END SOLUTION";
const BEGIN_HIDDEN: &str = "### BEGIN HIDDEN TESTS";
const END_HIDDEN: &str = "### END HIDDEN TESTS";
/// What a learner finds where the solution was; it compiles, and fails
/// every test until replaced.
pub const STUB: &str = "todo!(\"your solution here\")";
/// The panic a cell reports when it reaches a [`STUB`] (`todo!`'s message).
pub const STUB_PANIC: &str = "not yet implemented: your solution here";

/// What releasing one notebook did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Released {
    /// Solution cells turned into stubs.
    pub solutions: usize,
    /// Hidden test cells and regions removed.
    pub hidden_removed: usize,
}

/// Turns a source notebook into its learner version, in place.
pub fn release(notebook: &mut Notebook) -> Result<Released, BadNotebook> {
    let path = notebook.path.clone();
    let mut released = Released::default();
    let mut kept = Vec::new();
    for (index, mut cell) in std::mem::take(notebook.cells_mut()).into_iter().enumerate() {
        let bad = |problem: String| BadNotebook {
            path: path.clone(),
            problem: format!("cell {index}: {problem}"),
        };
        if notebook::is_hidden(&cell) {
            released.hidden_removed += 1;
            continue;
        }
        let is_exercise = notebook::is_solution(&cell) || notebook::is_test(&cell);
        if notebook::is_solution(&cell) {
            let source = notebook::source(&cell);
            if !source.contains(BEGIN_SOLUTION) {
                return Err(bad(format!(
                    "solution cell {:?} has no `{BEGIN_SOLUTION}` region to replace",
                    notebook::grade_id(&cell).unwrap_or("?")
                )));
            }
            let stubbed =
                replace_regions(&source, BEGIN_SOLUTION, END_SOLUTION, Some(STUB)).map_err(bad)?;
            set_source(&mut cell, &stubbed);
            released.solutions += 1;
        } else if notebook::is_test(&cell) {
            let source = notebook::source(&cell);
            if source.contains(BEGIN_HIDDEN) {
                let public =
                    replace_regions(&source, BEGIN_HIDDEN, END_HIDDEN, None).map_err(bad)?;
                set_source(&mut cell, &public);
                released.hidden_removed += 1;
            }
        }
        if is_exercise && cell["cell_type"] == "code" {
            cell["outputs"] = json!([]);
            cell["execution_count"] = Value::Null;
        }
        kept.push(cell);
    }
    *notebook.cells_mut() = kept;
    Ok(released)
}

/// What releasing a source notebook or folder did: its `Display` is the
/// line `release` prints.
#[derive(Debug, PartialEq, Eq)]
pub struct ReleasedFolder {
    /// The notebooks released.
    pub notebooks: usize,
    /// The folder they were written to.
    pub output: PathBuf,
    /// What releasing them did, all together.
    pub released: Released,
}

impl std::fmt::Display for ReleasedFolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "released {} notebooks to {}: {} solutions replaced by stubs, {} hidden tests removed",
            self.notebooks,
            self.output.display(),
            self.released.solutions,
            self.released.hidden_removed
        )
    }
}

/// Writes the learner versions of the source notebooks at `source` (a
/// notebook or a folder) into the folder `output`, under the same file
/// names. Every notebook is released before any is written, so a bad one
/// leaves no half-written output; `output` must not be the source folder.
pub fn release_to(source: &Path, output: &Path) -> Result<ReleasedFolder, Failure> {
    let paths = notebook::find(source)?;
    let mut notebooks = Vec::new();
    for path in &paths {
        notebooks.push(Notebook::read(path)?);
    }
    let source_dir = if source.is_file() {
        source.parent().unwrap_or(Path::new("."))
    } else {
        source
    };
    if same_dir(source_dir, output) {
        return Err(Failure::Usage(format!(
            "{}: the output folder is the source folder; releasing there would overwrite the solutions",
            output.display()
        )));
    }
    std::fs::create_dir_all(output)
        .with_context(|| format!("creating {}", output.display()))
        .map_err(Failure::Infrastructure)?;
    // Release every notebook before writing any: a bad one leaves no half-written output.
    let mut all = Released::default();
    for notebook in &mut notebooks {
        let released = release(notebook)?;
        all.solutions += released.solutions;
        all.hidden_removed += released.hidden_removed;
    }
    for notebook in notebooks {
        let name = notebook
            .path
            .file_name()
            .expect("a notebook file has a name");
        let target = output.join(name);
        let text = serde_json::to_string_pretty(&notebook.json).expect("JSON values serialise");
        std::fs::write(&target, text + "\n")
            .with_context(|| format!("writing {}", target.display()))
            .map_err(Failure::Infrastructure)?;
    }
    Ok(ReleasedFolder {
        notebooks: paths.len(),
        output: output.to_owned(),
        released: all,
    })
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Replaces each `begin`..`end` region (the marker lines included) by `stub`
/// at the begin marker's indentation, or removes it when `stub` is None.
fn replace_regions(
    source: &str,
    begin: &str,
    end: &str,
    stub: Option<&str>,
) -> Result<String, String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in source.lines() {
        if line.contains(begin) {
            if inside {
                return Err(format!("`{begin}` inside another region"));
            }
            inside = true;
            if let Some(stub) = stub {
                let indent: String = line.chars().take_while(|c| c.is_whitespace()).collect();
                out.push(format!("{indent}{stub}"));
            }
        } else if line.contains(end) {
            if !inside {
                return Err(format!("`{end}` without `{begin}`"));
            }
            inside = false;
        } else if !inside {
            out.push(line.to_owned());
        }
    }
    if inside {
        return Err(format!("`{begin}` is never closed by `{end}`"));
    }
    Ok(out.join("\n"))
}

fn set_source(cell: &mut Value, text: &str) {
    cell["source"] = Value::String(text.to_owned());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_solution_region_becomes_a_stub_at_its_indentation() {
        let source =
            "fn f() -> u32 {\n    // ### BEGIN SOLUTION\n    42\n    // ### END SOLUTION\n}";
        let released = replace_regions(source, BEGIN_SOLUTION, END_SOLUTION, Some(STUB)).unwrap();
        assert_eq!(
            released,
            "fn f() -> u32 {\n    todo!(\"your solution here\")\n}"
        );
    }

    #[test]
    fn a_hidden_region_is_removed() {
        let source = "assert!(public());\n// ### BEGIN HIDDEN TESTS\nassert!(secret());\n// ### END HIDDEN TESTS";
        assert_eq!(
            replace_regions(source, BEGIN_HIDDEN, END_HIDDEN, None).unwrap(),
            "assert!(public());"
        );
    }

    #[test]
    fn unbalanced_markers_are_errors() {
        assert!(
            replace_regions(
                "// ### BEGIN SOLUTION\nx",
                BEGIN_SOLUTION,
                END_SOLUTION,
                Some(STUB)
            )
            .is_err()
        );
        assert!(
            replace_regions(
                "x\n// ### END SOLUTION",
                BEGIN_SOLUTION,
                END_SOLUTION,
                Some(STUB)
            )
            .is_err()
        );
        let nested = "// ### BEGIN SOLUTION\n// ### BEGIN SOLUTION\n// ### END SOLUTION";
        assert!(replace_regions(nested, BEGIN_SOLUTION, END_SOLUTION, Some(STUB)).is_err());
    }
}
