//! `conclab-check merge`: the JSON reports of shards joined into the report
//! one run over the whole batch would give.

use std::path::{Path, PathBuf};

use crate::exit::Failure;
use crate::notebook::BadNotebook;
use crate::report::{self, Report};

/// Joins the JSON reports at `paths` (written by `grade --format json`):
/// their submissions in the order a single run gives (by path), each once.
/// Every report must be of the same command and of [`report::SCHEMA`].
pub fn merge(paths: &[PathBuf]) -> Result<Report, Failure> {
    let mut merged: Option<Report> = None;
    for path in paths {
        let report = read(path)?;
        match &mut merged {
            None => merged = Some(report),
            Some(all) => {
                if all.command != report.command {
                    return Err(Failure::Usage(format!(
                        "{}: a {} report cannot be merged with {} reports",
                        path.display(),
                        report.command,
                        all.command
                    )));
                }
                all.submissions.extend(report.submissions);
            }
        }
    }
    let mut report = merged.ok_or_else(|| Failure::Usage("no reports to merge".into()))?;
    // The order a single run gives: by path.
    report.submissions.sort_by(|a, b| a.path.cmp(&b.path));
    report.submissions.dedup_by(|a, b| a.path == b.path);
    Ok(report)
}

/// Reads one JSON report, of the schema this checker writes.
fn read(path: &Path) -> Result<Report, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| BadNotebook {
        path: path.to_owned(),
        problem: format!("cannot read it: {e}"),
    })?;
    let report: Report = serde_json::from_str(&text).map_err(|e| BadNotebook {
        path: path.to_owned(),
        problem: format!("not a conclab-check JSON report ({}): {e}", report::SCHEMA),
    })?;
    if report.schema != report::SCHEMA {
        return Err(Failure::Usage(format!(
            "{}: schema {:?}, expected {:?}",
            path.display(),
            report.schema,
            report::SCHEMA
        )));
    }
    Ok(report)
}
