//! What to run for one notebook: the source's cells, with the learner's
//! solution cells put in by grade_id. Only solutions come from a
//! submission; every other cell, setting, stored output and point comes
//! from the source.

use std::time::Duration;

use serde_json::Value;

use crate::notebook::{self, BadNotebook, Notebook};
use crate::schema::{self, Level};
use crate::settings::{CellSettings, NotebookSettings};

/// What a cell is for.
#[derive(Debug, Clone, PartialEq)]
pub enum Role {
    /// A cell of the source that is neither a solution nor a test: set-up,
    /// worked examples.
    Setup,
    /// A solution; `code` is None when the submission has no cell with
    /// this grade_id.
    Solution,
    /// A graded test cell.
    Test {
        /// Points for passing it.
        points: f64,
    },
}

/// One cell to run.
#[derive(Debug, Clone)]
pub struct Step {
    /// The grade_id, or `cell N` (the index among the source's cells).
    pub label: String,
    /// What the cell is for.
    pub role: Role,
    /// The exercise the cell belongs to: a solution's own grade_id, and for
    /// a test the solution before it. None before the first solution.
    pub exercise: Option<String>,
    /// The code to run; None for a solution the submission lacks.
    pub code: Option<String>,
    /// The source cell's conclab settings.
    pub settings: CellSettings,
    /// The source's stored, verified outputs.
    pub stored_outputs: Vec<Value>,
    /// The cell's time limit.
    pub timeout: Duration,
}

impl Step {
    /// Points for passing it: a test's, else none.
    pub fn points(&self) -> f64 {
        match self.role {
            Role::Test { points } => points,
            _ => 0.0,
        }
    }
}

/// The default time limit when neither cell nor notebook sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The steps for `source`, with solution cells from `submission` (None:
/// the source's own solutions, as validate runs them).
pub fn plan(source: &Notebook, submission: Option<&Notebook>) -> Result<Vec<Step>, BadNotebook> {
    let notebook_settings: NotebookSettings = settings_at(
        source,
        Level::Notebook,
        source.json.pointer("/metadata/conclab"),
        "the notebook",
    )?;
    let default_timeout = notebook_settings
        .timeout_s
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs_f64);
    let learner_solutions = submission.map(solutions_of);
    let mut steps = Vec::new();
    let mut exercise = None;
    for (index, cell) in cells(source).iter().enumerate() {
        if cell["cell_type"] != "code" {
            continue;
        }
        let grade_id = notebook::grade_id(cell);
        let label = grade_id.map_or_else(|| format!("cell {index}"), str::to_owned);
        let what = match grade_id {
            Some(id) => format!("cell {index} (grade_id {id})"),
            None => format!("cell {index}"),
        };
        let settings: CellSettings = settings_at(
            source,
            Level::Cell,
            cell.pointer("/metadata/conclab"),
            &what,
        )?;
        let role = if notebook::is_solution(cell) {
            Role::Solution
        } else if notebook::is_test(cell) {
            Role::Test {
                points: cell
                    .pointer("/metadata/nbgrader/points")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0),
            }
        } else {
            Role::Setup
        };
        if role == Role::Solution {
            exercise = Some(label.clone());
        }
        let code = match (&role, &learner_solutions) {
            (Role::Solution, Some(solutions)) => solutions
                .iter()
                .find(|(id, _)| *id == label)
                .map(|(_, code)| code.clone()),
            // Test cells run hardened: a learner's macro cannot shadow them.
            (Role::Test { .. }, _) => Some(crate::harden::harden(&notebook::source(cell))),
            _ => Some(notebook::source(cell)),
        };
        steps.push(Step {
            timeout: settings
                .timeout_s
                .map_or(default_timeout, Duration::from_secs_f64),
            exercise: match role {
                Role::Setup => None,
                _ => exercise.clone(),
            },
            label,
            role,
            code,
            stored_outputs: cell["outputs"].as_array().cloned().unwrap_or_default(),
            settings,
        });
    }
    Ok(steps)
}

/// Keeps only the tests of `exercise` (a solution's grade_id): the test
/// cells after its solution cell, up to the next solution. Every other cell
/// still runs, since later cells use what earlier ones define. Err says
/// which exercises there are.
pub fn only_exercise(steps: Vec<Step>, exercise: &str) -> Result<Vec<Step>, String> {
    let solutions: Vec<&str> = steps
        .iter()
        .filter(|step| step.role == Role::Solution)
        .map(|step| step.label.as_str())
        .collect();
    if !solutions.contains(&exercise) {
        return Err(format!(
            "no exercise {exercise:?} here; its exercises are {}",
            solutions.join(", ")
        ));
    }
    Ok(steps
        .into_iter()
        .filter(|step| match step.role {
            Role::Test { .. } => step.exercise.as_deref() == Some(exercise),
            Role::Solution | Role::Setup => true,
        })
        .collect())
}

/// The grade_ids of the source's solution cells.
pub fn solution_ids(source: &Notebook) -> Vec<String> {
    cells(source)
        .iter()
        .filter(|cell| notebook::is_solution(cell))
        .filter_map(|cell| notebook::grade_id(cell).map(str::to_owned))
        .collect()
}

/// The learner's solution cells by grade_id. A cell counts by its grade_id
/// alone: a learner may have unset `solution`, or moved the cell.
fn solutions_of(submission: &Notebook) -> Vec<(String, String)> {
    cells(submission)
        .iter()
        .filter(|cell| cell["cell_type"] == "code")
        .filter_map(|cell| Some((notebook::grade_id(cell)?.to_owned(), notebook::source(cell))))
        .collect()
}

fn cells(notebook: &Notebook) -> &[Value] {
    notebook.json["cells"].as_array().map_or(&[], Vec::as_slice)
}

/// `metadata.conclab` of `what`, checked against the schema first, so an
/// error names the JSON pointer of the bad value and says what the schema
/// wants there; only then typed.
fn settings_at<T: serde::de::DeserializeOwned + Default>(
    notebook: &Notebook,
    level: Level,
    value: Option<&Value>,
    what: &str,
) -> Result<T, BadNotebook> {
    let Some(value) = value else {
        return Ok(T::default());
    };
    let bad = |problem: String| BadNotebook {
        path: notebook.path.clone(),
        problem,
    };
    schema::check(level, value).map_err(|problems| {
        bad(format!(
            "metadata.conclab of {what} does not follow {}: {problems}",
            schema::PATH
        ))
    })?;
    serde_json::from_value(value.clone()).map_err(|error| {
        bad(format!(
            "metadata.conclab of {what} follows {} but checker/src/settings.rs cannot read it (a bug in the checker): {error}",
            schema::PATH
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn notebook(cells: Value) -> Notebook {
        Notebook {
            path: "source.ipynb".into(),
            json: json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {"conclab": {"schema_version": 1, "step": 1, "title": "t", "timeout_s": 5}}, "cells": cells}),
        }
    }

    fn solution(id: &str, code: &str) -> Value {
        json!({"cell_type": "code", "source": code, "outputs": [], "metadata": {"nbgrader": {"grade_id": id, "solution": true, "grade": false}}})
    }

    #[test]
    fn only_solutions_come_from_the_submission() {
        let source = notebook(json!([
            {"cell_type": "markdown", "source": "# hi", "metadata": {}},
            {"cell_type": "code", "source": "let setup = 1;", "outputs": [], "metadata": {}},
            solution("ex", "fn f() -> u32 { 1 }"),
            {"cell_type": "code", "source": "assert_eq!(f(), 1);", "outputs": [], "metadata": {"nbgrader": {"grade_id": "ex-test", "grade": true, "points": 2}, "conclab": {"timeout_s": 9}}},
        ]));
        let submission = notebook(json!([
            {"cell_type": "code", "source": "let setup = 666;", "outputs": [], "metadata": {}},
            solution("ex", "fn f() -> u32 { 2 }"),
            {"cell_type": "code", "source": "// test deleted", "outputs": [], "metadata": {"nbgrader": {"grade_id": "ex-test", "grade": true, "points": 99}}},
        ]));
        let steps = plan(&source, Some(&submission)).unwrap();
        let codes: Vec<_> = steps.iter().map(|s| s.code.clone().unwrap()).collect();
        assert_eq!(
            codes,
            [
                "let setup = 1;",
                "fn f() -> u32 { 2 }",
                "();\n::std::assert_eq!(f(), 1);"
            ]
        );
        assert_eq!(steps[2].role, Role::Test { points: 2.0 });
        assert_eq!(steps[0].label, "cell 1");
        assert_eq!(steps[0].timeout, Duration::from_secs(5));
        assert_eq!(steps[2].timeout, Duration::from_secs(9));
    }

    #[test]
    fn one_exercise_keeps_its_own_tests_and_every_other_cell() {
        let test = |id: &str| json!({"cell_type": "code", "source": "assert!(true);", "outputs": [], "metadata": {"nbgrader": {"grade_id": id, "grade": true, "points": 1}}});
        let source = notebook(json!([
            {"cell_type": "code", "source": "let setup = 1;", "outputs": [], "metadata": {}},
            solution("a", "fn a() {}"),
            test("a-test"),
            test("a-hidden"),
            solution("b", "fn b() {}"),
            test("b-test"),
        ]));
        let labels = |exercise: &str| -> Vec<String> {
            only_exercise(plan(&source, None).unwrap(), exercise)
                .unwrap()
                .into_iter()
                .map(|step| step.label)
                .collect()
        };
        assert_eq!(labels("a"), ["cell 0", "a", "a-test", "a-hidden", "b"]);
        assert_eq!(labels("b"), ["cell 0", "a", "b", "b-test"]);
        let exercises: Vec<_> = plan(&source, None)
            .unwrap()
            .into_iter()
            .map(|step| step.exercise)
            .collect();
        let a = Some("a".to_owned());
        let b = Some("b".to_owned());
        assert_eq!(exercises, [None, a.clone(), a.clone(), a, b.clone(), b]);
        let unknown = only_exercise(plan(&source, None).unwrap(), "c").unwrap_err();
        assert_eq!(unknown, "no exercise \"c\" here; its exercises are a, b");
    }

    #[test]
    fn a_missing_solution_has_no_code() {
        let source = notebook(json!([solution("ex", "fn f() {}")]));
        let submission = notebook(json!([]));
        let steps = plan(&source, Some(&submission)).unwrap();
        assert_eq!(steps[0].code, None);
    }

    #[test]
    fn bad_settings_name_the_cell() {
        let source = notebook(
            json!([{"cell_type": "code", "source": "", "outputs": [], "metadata": {"conclab": {"compare": {"mode": "fuzzy"}}}}]),
        );
        let error = plan(&source, None).unwrap_err();
        assert!(
            error.to_string().starts_with(
                "source.ipynb: metadata.conclab of cell 0 does not follow notebooks/conclab.schema.json: /compare/mode: \"fuzzy\" is not one of "
            ),
            "{error}"
        );
    }

    #[test]
    fn a_property_without_its_parameter_names_the_cell_and_the_pointer() {
        let mut test = json!({"cell_type": "code", "source": "", "outputs": [], "metadata": {"nbgrader": {"grade_id": "step2-test", "grade": true, "points": 1}}});
        test["metadata"]["conclab"] =
            json!({"properties": [{"kind": "no_leaks"}, {"kind": "max_inside", "span": "inside"}]});
        let source = notebook(json!([
            {"cell_type": "markdown", "source": "# hi", "metadata": {}},
            solution("step2", "fn f() {}"),
            {"cell_type": "code", "source": "", "outputs": [], "metadata": {}},
            {"cell_type": "markdown", "source": "test:", "metadata": {}},
            test,
        ]));
        assert_eq!(
            plan(&source, None).unwrap_err().to_string(),
            "source.ipynb: metadata.conclab of cell 4 (grade_id step2-test) does not follow notebooks/conclab.schema.json: /properties/1: \"limit\" is a required property"
        );
    }

    #[test]
    fn bad_notebook_settings_are_reported() {
        let mut source = notebook(json!([]));
        source.json["metadata"]["conclab"]["timeout_s"] = json!(0);
        source.json["metadata"]["conclab"]["author"] = json!("me");
        assert_eq!(
            plan(&source, None).unwrap_err().to_string(),
            "source.ipynb: metadata.conclab of the notebook does not follow notebooks/conclab.schema.json: Additional properties are not allowed ('author' was unexpected); /timeout_s: 0 is less than or equal to the minimum of 0"
        );
    }
}
