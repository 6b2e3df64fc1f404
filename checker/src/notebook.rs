//! A source notebook as the checker reads it: nbformat 4 JSON with nbgrader
//! and conclab metadata per cell.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// A notebook the checker cannot use, with the file and the reason.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct BadNotebook {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it, in the author's terms.
    pub problem: String,
}

/// A parsed notebook with its path.
#[derive(Debug, Clone)]
pub struct Notebook {
    /// Where it was read from.
    pub path: PathBuf,
    /// The whole document.
    pub json: Value,
}

impl Notebook {
    /// Reads and checks a notebook: JSON, nbformat 4, a list of cells, and
    /// nbgrader grade_ids that are unique.
    pub fn read(path: &Path) -> Result<Notebook, BadNotebook> {
        let bad = |problem: String| BadNotebook {
            path: path.to_owned(),
            problem,
        };
        let text = fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let json: Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("not a JSON notebook: {e}")))?;
        match json.get("nbformat").and_then(Value::as_u64) {
            Some(4) => {}
            Some(other) => {
                return Err(bad(format!(
                    "nbformat {other} is not supported; conclab reads nbformat 4"
                )));
            }
            None => return Err(bad("no nbformat version: not a Jupyter notebook".into())),
        }
        let Some(cells) = json.get("cells").and_then(Value::as_array) else {
            return Err(bad("no list of cells".into()));
        };
        let mut seen = HashSet::new();
        for (index, cell) in cells.iter().enumerate() {
            if let Some(id) = grade_id(cell)
                && !seen.insert(id.to_owned())
            {
                return Err(bad(format!(
                    "grade_id {id:?} appears more than once (again in cell {index})"
                )));
            }
        }
        Ok(Notebook {
            path: path.to_owned(),
            json,
        })
    }

    /// The notebook's cells, to change.
    pub fn cells_mut(&mut self) -> &mut Vec<Value> {
        self.json["cells"]
            .as_array_mut()
            .expect("checked when read")
    }
}

/// The notebooks in `path`: the file itself, or the `*.ipynb` files of a
/// folder, in name order.
pub fn find(path: &Path) -> Result<Vec<PathBuf>, BadNotebook> {
    if path.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let entries = fs::read_dir(path).map_err(|e| BadNotebook {
        path: path.to_owned(),
        problem: format!("cannot read it: {e}"),
    })?;
    let mut notebooks: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "ipynb"))
        .collect();
    notebooks.sort();
    if notebooks.is_empty() {
        return Err(BadNotebook {
            path: path.to_owned(),
            problem: "no notebooks (*.ipynb) in this folder".into(),
        });
    }
    Ok(notebooks)
}

/// The cell's nbgrader grade_id, if it has one.
pub fn grade_id(cell: &Value) -> Option<&str> {
    cell.pointer("/metadata/nbgrader/grade_id")
        .and_then(Value::as_str)
}

/// Whether the cell holds a solution.
pub fn is_solution(cell: &Value) -> bool {
    cell.pointer("/metadata/nbgrader/solution")
        .and_then(Value::as_bool)
        == Some(true)
}

/// Whether the cell is a graded test.
pub fn is_test(cell: &Value) -> bool {
    cell.pointer("/metadata/nbgrader/grade")
        .and_then(Value::as_bool)
        == Some(true)
}

/// Whether the cell is a hidden test (added only at grading time).
pub fn is_hidden(cell: &Value) -> bool {
    cell.pointer("/metadata/conclab/hidden")
        .and_then(Value::as_bool)
        == Some(true)
}

/// A cell's source as one string (nbformat allows a string or a list of lines).
pub fn source(cell: &Value) -> String {
    match &cell["source"] {
        Value::String(text) => text.clone(),
        Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    }
}
