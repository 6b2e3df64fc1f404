//! `conclab-check release`: learner versions of source notebooks.
//!
//! As nbgrader's generate_assignment does: every region between `### BEGIN
//! SOLUTION` and `### END SOLUTION` (matched anywhere in a line, so `// ###
//! BEGIN SOLUTION` works in Rust) becomes a stub; hidden test cells and
//! `### BEGIN HIDDEN TESTS` regions go; the outputs of exercise cells are
//! cleared. The worked examples keep their verified outputs.

use serde_json::{Value, json};

use crate::notebook::{self, BadNotebook, Notebook};

const BEGIN_SOLUTION: &str = "### BEGIN SOLUTION";
const END_SOLUTION: &str = "### END SOLUTION";
const BEGIN_HIDDEN: &str = "### BEGIN HIDDEN TESTS";
const END_HIDDEN: &str = "### END HIDDEN TESTS";
/// What a learner finds where the solution was; it compiles, and fails
/// every test until replaced.
const STUB: &str = "todo!(\"your solution here\")";
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
