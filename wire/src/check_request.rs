//! What the kernel tells a checker it started ahead of time
//! (`conclab-check feedback --spare`): which notebook to check, once the
//! learner types `:check`. One JSON line on the checker's standard input.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A `:check`, handed to a waiting checker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRequest {
    /// The notebook to check (the kernel's copy, solutions as last run).
    pub notebook: PathBuf,
    /// Only this exercise's tests (a solution's grade_id), if given.
    pub exercise: Option<String>,
}

impl CheckRequest {
    /// The request as the one line the checker reads.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("a CheckRequest is always JSON");
        line.push('\n');
        line
    }

    /// Reads a request from its line.
    pub fn from_line(line: &str) -> serde_json::Result<CheckRequest> {
        serde_json::from_str(line.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_reads_back_from_its_line() {
        let request = CheckRequest {
            notebook: "/tmp/check/07 semaphores.ipynb".into(),
            exercise: Some("step07-semaphore".into()),
        };
        let line = request.to_line();
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        assert_eq!(CheckRequest::from_line(&line).unwrap(), request);
    }
}
