//! Why a check failed, as one of a few kinds an instructor can count across
//! a class: a deadlock, a lost wake-up, a limit broken, outputs that differ.
//! Read from the report alone (the check's kind, property and message), so
//! that a merged report groups the same as a fresh one.

use crate::report::{Check, CheckKind, Outcome};

/// The kind of a failure.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Threads waited for each other's locks in a cycle.
    Deadlock,
    /// A thread waited on a condition variable nobody notified.
    LostWakeUp,
    /// The cell hung some other way (a join, a channel, a child process).
    Hang,
    /// The cell ran into its time limit (a spin, an endless loop).
    TimeLimit,
    /// More tasks were inside a span at once than the exercise allows.
    LimitBroken,
    /// The run recorded none of the spans a property counts: the work was
    /// not done, or not inside `labkit::in_span`.
    NoSpans,
    /// Locks taken in orders that can deadlock, though this run did not.
    LockOrder,
    /// Another concurrency property failed (its name, as in
    /// `metadata.conclab.properties`).
    Property(String),
    /// A test's assertion failed (wrong results, lost updates).
    AssertionFailed,
    /// A solution still ends in the released `todo!()`.
    NotAttempted,
    /// A solution cell did not compile or did not run.
    DoesNotRun,
    /// A cell's output differs from the verified one.
    OutputDiffers,
    /// The cell was stopped for its memory, output or processes.
    ResourceLimit,
    /// The kernel died while the cell ran.
    KernelDied,
    /// The submission lacks a solution cell.
    MissingSolution,
    /// The submission could not be read.
    Unreadable,
    /// The checker could not do its own work (not the learner's fault).
    CheckerError,
}

impl Reason {
    /// Why `check` failed; None when it passed or did not run (a check
    /// not run is counted under the failure that stopped it), for a
    /// property that only repeats the hang of its cell, and for a test that
    /// passed but whose properties did not (counted under them).
    pub fn of(check: &Check) -> Option<Reason> {
        match check.outcome {
            Outcome::Passed | Outcome::NotRun => return None,
            Outcome::BadInput => return Some(Reason::Unreadable),
            Outcome::Error => return Some(Reason::CheckerError),
            Outcome::Failed => {}
        }
        Some(match check.kind {
            CheckKind::Submission => Reason::MissingSolution,
            CheckKind::Output => Reason::OutputDiffers,
            CheckKind::Property => {
                if check.evidence_in.is_some() {
                    return None;
                }
                let label = check.id.rsplit_once('/').map_or("", |(_, label)| label);
                match label.split_once('(').map_or(label, |(kind, _)| kind) {
                    // No span at all: the task is not done, or not traced.
                    _ if check.message.contains(" spans were recorded") => Reason::NoSpans,
                    "max_inside" => Reason::LimitBroken,
                    "no_lock_cycle" => Reason::LockOrder,
                    kind => Reason::Property(kind.to_owned()),
                }
            }
            CheckKind::Test | CheckKind::Run => {
                if check.message.starts_with(Check::PROPERTIES_FAILED) {
                    return None;
                }
                Reason::of_cell(check)
            }
        })
    }

    /// A cell that failed, from its message, which `grading` words.
    fn of_cell(check: &Check) -> Reason {
        let message = check.message.as_str();
        let hung = format!("{} hung", check.cell);
        if message.contains(&format!("{hung}: deadlock")) {
            Reason::Deadlock
        } else if message.contains(&hung) && message.contains("nobody notifies") {
            Reason::LostWakeUp
        } else if message.contains(&hung) {
            Reason::Hang
        } else if message.contains(" did not finish within ") {
            Reason::TimeLimit
        } else if message.starts_with("the kernel died") {
            Reason::KernelDied
        } else if message.contains(" and was stopped") {
            Reason::ResourceLimit
        } else if message.contains("not yet implemented") {
            Reason::NotAttempted
        } else if message.contains(" does not run: ") {
            Reason::DoesNotRun
        } else {
            Reason::AssertionFailed
        }
    }

    /// The kind in a few words, for a heading.
    pub fn words(&self) -> String {
        match self {
            Reason::Deadlock => "Deadlock: a lock-order cycle".to_owned(),
            Reason::LostWakeUp => "Lost wake-up: a wait nobody notified".to_owned(),
            Reason::Hang => "Hung: threads waiting for each other".to_owned(),
            Reason::TimeLimit => "Over the time limit: a spin or an endless loop".to_owned(),
            Reason::LimitBroken => "A limit broken: too many at once".to_owned(),
            Reason::LockOrder => "Locks taken in an order that can deadlock".to_owned(),
            Reason::Property(kind) => format!("Property {kind} does not hold"),
            Reason::AssertionFailed => {
                "A test's assertion failed: wrong results, lost updates".to_owned()
            }
            Reason::NoSpans => {
                "No spans recorded: the work not done, or not in labkit::in_span".to_owned()
            }
            Reason::NotAttempted => "Not attempted: the solution is still todo!()".to_owned(),
            Reason::DoesNotRun => "The solution does not compile or run".to_owned(),
            Reason::OutputDiffers => "Outputs differ from the verified ones".to_owned(),
            Reason::ResourceLimit => "Stopped for its memory, output or processes".to_owned(),
            Reason::KernelDied => "The kernel died".to_owned(),
            Reason::MissingSolution => "A solution cell is missing".to_owned(),
            Reason::Unreadable => "The submission could not be read".to_owned(),
            Reason::CheckerError => {
                "The checker could not run it (not the learner's fault)".to_owned()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(kind: CheckKind, id: &str, message: &str) -> Check {
        Check::about_the_run(id, kind, Outcome::Failed, 1.0, message.to_owned())
    }

    fn property(label: &str) -> Check {
        let mut check = failed(CheckKind::Property, &format!("ex-test/{label}"), "");
        check.cell = "ex-test".to_owned();
        check
    }

    #[test]
    fn a_cells_failure_is_read_from_its_message() {
        let cases = [
            (
                "ex-test hung: deadlock: worker-0 waits for a, held by worker-1",
                Reason::Deadlock,
            ),
            (
                "ex-test hung: main waits on condition variable c that nobody notifies",
                Reason::LostWakeUp,
            ),
            (
                "ex-test hung: main waits in wait() for labkit-worker 1 to exit",
                Reason::Hang,
            ),
            (
                "ex-test did not finish within 10 s: worker-0 spins",
                Reason::TimeLimit,
            ),
            (
                "ex-test used 3000 MiB of memory, more than the limit of 2048 MiB, and was stopped",
                Reason::ResourceLimit,
            ),
            (
                "the kernel died while ex-test ran: signal 9",
                Reason::KernelDied,
            ),
            (
                "ex-test does not run: Error: expected `;`",
                Reason::DoesNotRun,
            ),
            (
                "ex-test failed: Panic: lost updates: 3999 != 4000",
                Reason::AssertionFailed,
            ),
        ];
        for (message, reason) in cases {
            let check = failed(CheckKind::Test, "ex-test", message);
            assert_eq!(Reason::of(&check), Some(reason), "{message}");
        }
    }

    #[test]
    fn a_property_is_read_from_its_label() {
        assert_eq!(
            Reason::of(&property("max_inside(fetch)")),
            Some(Reason::LimitBroken)
        );
        assert_eq!(
            Reason::of(&property("no_lock_cycle")),
            Some(Reason::LockOrder)
        );
        assert_eq!(
            Reason::of(&property("sleeps_not_spins")),
            Some(Reason::Property("sleeps_not_spins".to_owned()))
        );
        let mut nothing_traced = property("max_inside(fetch)");
        nothing_traced.message =
            "no fetch spans were recorded: run each task inside labkit::in_span".into();
        assert_eq!(Reason::of(&nothing_traced), Some(Reason::NoSpans));
        let only_its_properties = failed(
            CheckKind::Test,
            "ex-test",
            "the test passed, but not every property held: max_inside(fetch)",
        );
        assert_eq!(Reason::of(&only_its_properties), None);
        let mut repeats_a_hang = property("no_hang");
        repeats_a_hang.evidence_in = Some("ex-test".to_owned());
        assert_eq!(Reason::of(&repeats_a_hang), None);
    }

    #[test]
    fn passes_and_checks_not_run_have_no_reason() {
        for outcome in [Outcome::Passed, Outcome::NotRun] {
            let check = Check {
                outcome,
                ..failed(CheckKind::Test, "ex-test", "x")
            };
            assert_eq!(Reason::of(&check), None);
        }
        let unreadable = Check {
            outcome: Outcome::BadInput,
            ..failed(CheckKind::Submission, "submission", "not JSON")
        };
        assert_eq!(Reason::of(&unreadable), Some(Reason::Unreadable));
    }
}
