//! `metadata.conclab` checked against the published JSON Schema,
//! `notebooks/conclab.schema.json`, embedded here: what the checker accepts
//! is what the schema says, before `settings.rs` types it.

use std::sync::LazyLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, ValidatorMap};
use serde_json::Value;

/// Where the schema is published, as messages name it.
pub const PATH: &str = "notebooks/conclab.schema.json";

/// The schema itself, as published.
const SCHEMA: &str = include_str!("../../notebooks/conclab.schema.json");

/// Every subschema of the whole schema, compiled once, so `$ref`s to its
/// own `$defs` resolve as they do for any other validator of it.
static VALIDATORS: LazyLock<ValidatorMap> = LazyLock::new(|| {
    let schema: Value = serde_json::from_str(SCHEMA).expect("the embedded schema is JSON");
    jsonschema::draft202012::options()
        .build_map(&schema)
        .unwrap_or_else(|error| panic!("{PATH} is not a valid JSON Schema: {error}"))
});

/// Which `metadata.conclab`: the notebook's or a cell's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// The notebook's, against `#/$defs/notebook`.
    Notebook,
    /// A cell's, against `#/$defs/cell`.
    Cell,
}

impl Level {
    fn pointer(self) -> &'static str {
        match self {
            Level::Notebook => "#/$defs/notebook",
            Level::Cell => "#/$defs/cell",
        }
    }
}

/// Checks `metadata.conclab` against the schema. Err lists every place it
/// does not follow it, `; `-separated, each led by the JSON pointer of the
/// bad value (within `metadata.conclab`; none for the whole value).
pub fn check(level: Level, value: &Value) -> Result<(), String> {
    let validator = VALIDATORS
        .get(level.pointer())
        .unwrap_or_else(|| panic!("{PATH} has no {}", level.pointer()));
    let mut problems: Vec<(String, String)> = validator
        .iter_errors(value)
        .map(|error| describe(&error, value))
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    // By pointer, whatever order the validator found them in; a stable
    // sort, so one value's errors keep the schema's order.
    problems.sort_by(|(a, _), (b, _)| a.cmp(b));
    let problems: Vec<String> = problems.into_iter().map(|(_, problem)| problem).collect();
    Err(problems.join("; "))
}

/// One error: its pointer, and the pointer with what is wrong there.
fn describe(error: &ValidationError, value: &Value) -> (String, String) {
    let pointer = error.instance_path().as_str().to_owned();
    let what = match error.kind() {
        // The schema uses `false` for a parameter the property's kind does
        // not read: say which, instead of "False schema does not allow 3".
        ValidationErrorKind::FalseSchema => {
            let (parent, name) = pointer.rsplit_once('/').unwrap_or(("", pointer.as_str()));
            match value.pointer(parent).and_then(|p| p.get("kind")) {
                Some(kind) => format!("{kind} does not take {name:?}"),
                None => format!("{name:?} is not allowed here"),
            }
        }
        _ => error.to_string(),
    };
    let problem = if pointer.is_empty() {
        what
    } else {
        format!("{pointer}: {what}")
    };
    (pointer, problem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cell(value: Value) -> Result<(), String> {
        check(Level::Cell, &value)
    }

    #[test]
    fn a_valid_cell_passes() {
        cell(json!({
            "compare": {"mode": "sanitized", "redact": ["times"], "wildcard": "..."},
            "timeout_s": 30,
            "perturbed_runs": 2,
            "properties": [
                {"kind": "max_inside", "span": "fetch", "limit": 4, "note": "never more than 4"},
                {"kind": "min_inside", "span": "fetch", "at_least": 4},
                {"kind": "parallel", "span": "primes", "at_least": 2},
                {"kind": "processes", "exactly": 4, "reused": true},
                {"kind": "exactly_once", "span": "parse"},
                {"kind": "input_order", "span": "fetch"},
                {"kind": "no_leaks"},
            ],
        }))
        .unwrap();
        cell(json!({})).unwrap();
    }

    #[test]
    fn an_unknown_field_fails_at_its_object() {
        assert_eq!(
            cell(json!({"compare": {"mode": "exact", "mdoe": "exact"}})).unwrap_err(),
            "/compare: Additional properties are not allowed ('mdoe' was unexpected)"
        );
        assert_eq!(
            cell(json!({"timeout": 5})).unwrap_err(),
            "Additional properties are not allowed ('timeout' was unexpected)"
        );
    }

    #[test]
    fn a_wrong_mode_fails_at_the_mode() {
        let error = cell(json!({"compare": {"mode": "fuzzy"}})).unwrap_err();
        assert!(
            error.starts_with("/compare/mode: \"fuzzy\" is not one of "),
            "{error}"
        );
    }

    #[test]
    fn each_kind_needs_its_own_parameters() {
        let property = |p: Value| cell(json!({"properties": [{"kind": "no_hang"}, p]}));
        assert_eq!(
            property(json!({"kind": "max_inside", "span": "inside"})).unwrap_err(),
            "/properties/1: \"limit\" is a required property"
        );
        assert_eq!(
            property(json!({"kind": "min_inside", "limit": 3})).unwrap_err(),
            "/properties/1: \"span\" is a required property; \
             /properties/1: \"at_least\" is a required property; \
             /properties/1/limit: \"min_inside\" does not take \"limit\""
        );
        assert_eq!(
            property(json!({"kind": "parallel", "span": "s"})).unwrap_err(),
            "/properties/1: \"at_least\" is a required property"
        );
        property(json!({"kind": "processes", "reused": true})).unwrap();
        property(json!({"kind": "input_order", "span": "primes"})).unwrap();
        assert_eq!(
            property(json!({"kind": "streaming"})).unwrap_err(),
            "/properties/1: \"span\" is a required property"
        );
        assert_eq!(
            property(json!({"kind": "no_leaks", "reused": true})).unwrap_err(),
            "/properties/1/reused: \"no_leaks\" does not take \"reused\""
        );
        assert_eq!(
            property(json!({"kind": "no_hang", "span": "s"})).unwrap_err(),
            "/properties/1/span: \"no_hang\" does not take \"span\""
        );
    }

    #[test]
    fn the_notebook_needs_its_step_and_title() {
        check(
            Level::Notebook,
            &json!({"schema_version": 1, "step": 3, "title": "t", "timeout_s": 60}),
        )
        .unwrap();
        assert_eq!(
            check(
                Level::Notebook,
                &json!({"schema_version": 1, "step": 9, "title": "t"})
            )
            .unwrap_err(),
            "/step: 9 is greater than the maximum of 8"
        );
        assert_eq!(
            check(Level::Notebook, &json!({"schema_version": 1, "step": 1})).unwrap_err(),
            "\"title\" is a required property"
        );
    }

    #[test]
    fn every_lab_notebook_follows_the_schema() {
        let lab = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../notebooks");
        let mut seen = 0;
        for entry in std::fs::read_dir(&lab).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "ipynb") {
                continue;
            }
            let notebook: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let name = path.display();
            check(Level::Notebook, &notebook["metadata"]["conclab"])
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            for (index, c) in notebook["cells"].as_array().unwrap().iter().enumerate() {
                if let Some(settings) = c.pointer("/metadata/conclab") {
                    check(Level::Cell, settings)
                        .unwrap_or_else(|e| panic!("{name}, cell {index}: {e}"));
                }
            }
            seen += 1;
        }
        assert!(seen >= 9, "only {seen} notebooks in {}", lab.display());
    }
}
