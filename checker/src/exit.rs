//! How a command ends: the documented exit codes, and the failures that
//! stop a command before it has a report to give.

use crate::notebook::BadNotebook;
use crate::report::Outcome;

/// The documented exit codes of `conclab-check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: every check passed (or, for `release`, every notebook was
    /// released).
    Passed = 0,
    /// 1: a check failed, or could not run because of an earlier one.
    Failed = 1,
    /// 2: bad usage, or an input the checker cannot read (the message names
    /// the file).
    BadInput = 2,
    /// 3: the checker itself could not run the work (a kernel that would
    /// not start, a report it could not write); never the learner's doing.
    Infrastructure = 3,
}

impl From<Outcome> for Exit {
    /// The exit code of a report whose worst outcome is `outcome`.
    fn from(outcome: Outcome) -> Exit {
        match outcome {
            Outcome::Passed => Exit::Passed,
            Outcome::Failed | Outcome::NotRun => Exit::Failed,
            Outcome::BadInput => Exit::BadInput,
            Outcome::Error => Exit::Infrastructure,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> std::process::ExitCode {
        std::process::ExitCode::from(exit as u8)
    }
}

/// Why a command stopped short of a report. Its message (`Display`) is what
/// `conclab-check` prints after its name on stderr.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// A notebook the checker cannot use (exit 2).
    #[error("{0}")]
    BadNotebook(#[from] BadNotebook),
    /// Arguments or input that do not make sense (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The machine failed the checker (exit 3), with its causes:
    /// `writing report.json: Permission denied`.
    #[error("{0:#}")]
    Infrastructure(anyhow::Error),
}

impl Failure {
    /// The exit code it ends the command with.
    pub fn exit(&self) -> Exit {
        match self {
            Failure::BadNotebook(_) | Failure::Usage(_) => Exit::BadInput,
            Failure::Infrastructure(_) => Exit::Infrastructure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_outcome_decides_the_documented_code() {
        for (outcome, code) in [
            (Outcome::Passed, 0),
            (Outcome::Failed, 1),
            (Outcome::NotRun, 1),
            (Outcome::BadInput, 2),
            (Outcome::Error, 3),
        ] {
            assert_eq!(Exit::from(outcome) as u8, code, "{outcome:?}");
        }
    }

    #[test]
    fn a_failure_says_its_causes_and_exits_with_its_code() {
        let failure = Failure::Infrastructure(
            anyhow::anyhow!("Permission denied").context("writing report.json"),
        );
        assert_eq!(
            failure.to_string(),
            "writing report.json: Permission denied"
        );
        assert_eq!(failure.exit(), Exit::Infrastructure);
        let bad = Failure::from(BadNotebook {
            path: "a.ipynb".into(),
            problem: "not a JSON notebook".into(),
        });
        assert_eq!(bad.to_string(), "a.ipynb: not a JSON notebook");
        assert_eq!(bad.exit(), Exit::BadInput);
        assert_eq!(Failure::Usage("no".into()).exit(), Exit::BadInput);
    }
}
