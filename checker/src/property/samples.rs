//! Properties judged from what the checker sampled of a run rather than
//! from the trace: `no_leaks` (threads and processes left once the cell
//! ended) and `sleeps_not_spins` (the runner's threads, sampled while it
//! ran). Gathering the samples is the caller's (it needs the running
//! kernel); judging them is here.

use crate::kernel::ThreadActivity;

use super::{Evidence, Verdict};

/// A thread or process a cell left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// Its name in the message: a thread's name, a process's command.
    pub shown: String,
    /// Its tid or pid and state, for the evidence.
    pub ids: String,
    /// For a process: why it counts (a zombie, or still running).
    pub still: Option<&'static str>,
}

/// What was still there once a cell ended and threads on their way out had
/// a grace to go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// The code runner's threads that were not there before the cell.
    pub threads: Vec<Leftover>,
    /// Processes the cell started.
    pub processes: Vec<Leftover>,
}

impl Leftovers {
    /// Whether nothing was left behind.
    pub fn is_empty(&self) -> bool {
        self.threads.is_empty() && self.processes.is_empty()
    }
}

/// `no_leaks`: no thread or child process outlives the cell.
pub(super) fn no_leaks(evidence: &Evidence) -> Verdict {
    let Some(left) = evidence.leftovers else {
        return Verdict::Inconclusive(
            "what the cell left behind was not looked for once it ended".into(),
        );
    };
    if left.is_empty() {
        return Verdict::Holds;
    }
    let mut parts = Vec::new();
    if !left.threads.is_empty() {
        parts.push(format!(
            "{} thread(s) still running after the cell ended: {} (join every thread you spawn, or let its channel close so it can end)",
            left.threads.len(),
            shown(&left.threads)
        ));
    }
    if !left.processes.is_empty() {
        parts.push(format!(
            "{} child process(es) left behind: {} (wait() for every child you start)",
            left.processes.len(),
            shown(&left.processes)
        ));
    }
    // Tids and pids are for the folded evidence, not the message.
    let text = left
        .threads
        .iter()
        .chain(&left.processes)
        .map(|left| format!("{}: {}", left.shown, left.ids))
        .collect::<Vec<_>>()
        .join("\n");
    Verdict::Fails {
        message: parts.join("; "),
        evidence: text,
        moment: None,
    }
}

/// The message's list of what was left behind.
fn shown(left: &[Leftover]) -> String {
    left.iter()
        .map(|left| match left.still {
            Some(still) => format!("{} ({still})", left.shown),
            None => left.shown.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `sleeps_not_spins`: blocked threads sleep. Every 50 ms the runner's
/// threads were sampled: a thread that spins is runnable (R) in most
/// samples *and* burns CPU. Being runnable alone proves nothing on a busy
/// machine, where a thread that was just woken waits for a CPU in state R;
/// a thread that waits by sleeping uses next to no CPU, however long it is
/// runnable.
///
/// Threads are named as the trace named them: tids go to the evidence.
pub(super) fn sleeps_not_spins(evidence: &Evidence) -> Verdict {
    let mut unnamed = evidence.unnamed.clone();
    let spinners: Vec<(u32, String)> = evidence
        .threads
        .iter()
        .filter(|(_, t)| spins(t))
        .map(|(&tid, t)| {
            let name = unnamed.show(evidence.runner_pid.into(), tid.into(), &t.name);
            (tid, format!(
                "{name} was running in {} of the {} samples it was alive in, and used {:.2} s of CPU in {:.2} s",
                t.runnable,
                t.seen,
                t.cpu_s(),
                t.alive_s()
            ))
        })
        .collect();
    if spinners.is_empty() {
        return Verdict::Holds;
    }
    let mut text: Vec<String> = spinners
        .iter()
        .map(|(tid, spinner)| format!("tid {tid}: {spinner}"))
        .collect();
    text.push(format!(
        "the cell's code also used {:.2} s of CPU in {:.2} s of wall time",
        evidence.runner_cpu_s, evidence.wall_s
    ));
    Verdict::Fails {
        message: format!(
            "a blocked thread should sleep, not spin: {}; wait on a Condvar (in a while loop) instead of looping",
            spinners
                .iter()
                .map(|(_, spinner)| spinner.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        evidence: text.join("\n"),
        moment: None,
    }
}

/// Samples a spinning thread must be seen runnable in, at least.
const SPIN_MIN_RUNNABLE: usize = 3;
/// CPU a spinning thread must have used, at least (two clock ticks): a
/// thread that takes a lock and pushes a few items uses microseconds.
const SPIN_MIN_CPU_S: f64 = 0.02;
/// Share of its sampled life a spinning thread must have used a CPU for:
/// on a machine with 12 runnable threads for 2 cores a spinner still gets
/// about a sixth of one, and a thread that sleeps while it waits next to
/// nothing.
const SPIN_MIN_CPU_SHARE: f64 = 0.05;
/// Share of the samples a spinning thread must be runnable in: at least
/// half.
const SPIN_MIN_RUNNABLE_SHARE: f64 = 0.5;

fn spins(thread: &ThreadActivity) -> bool {
    thread.runnable >= SPIN_MIN_RUNNABLE
        && thread.runnable as f64 >= SPIN_MIN_RUNNABLE_SHARE * thread.seen as f64
        && thread.cpu_s() >= SPIN_MIN_CPU_S
        && thread.cpu_s() >= SPIN_MIN_CPU_SHARE * thread.alive_s()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::process_tree;

    fn thread(seen: usize, runnable: usize, cpu_ticks: u64) -> ThreadActivity {
        let start = Instant::now();
        ThreadActivity {
            name: "worker-1".into(),
            seen,
            runnable,
            cpu_ticks: (100, 100 + cpu_ticks),
            sampled: (start, start + Duration::from_secs(1)),
        }
    }

    #[test]
    fn a_spinner_is_runnable_and_burns_cpu() {
        let hz = process_tree::clock_ticks_per_second();
        assert!(spins(&thread(21, 21, hz / 3)));
        assert!(spins(&thread(21, 21, hz / 10)));
        // Runnable in every sample on a busy machine, but asleep in fact.
        assert!(!spins(&thread(21, 15, 1)));
        // Burned CPU while mostly asleep: working, not spinning.
        assert!(!spins(&thread(21, 4, hz / 2)));
    }

    #[test]
    fn leftovers_are_named_in_the_message_and_their_ids_in_the_evidence() {
        let left = Leftovers {
            threads: vec![Leftover {
                shown: "actor".into(),
                ids: "tid 12, state S".into(),
                still: None,
            }],
            processes: vec![Leftover {
                shown: "labkit-worker".into(),
                ids: "pid 40, state Z".into(),
                still: Some("exited but never waited for: a zombie"),
            }],
        };
        let threads = Default::default();
        let unnamed = Default::default();
        let evidence = Evidence {
            leftovers: Some(&left),
            ..Evidence::empty(7, &threads, &unnamed)
        };
        let Verdict::Fails {
            message, evidence, ..
        } = no_leaks(&evidence)
        else {
            panic!("leftovers are a leak");
        };
        assert_eq!(
            message,
            "1 thread(s) still running after the cell ended: actor (join every thread you spawn, \
             or let its channel close so it can end); 1 child process(es) left behind: \
             labkit-worker (exited but never waited for: a zombie) (wait() for every child you start)"
        );
        assert_eq!(
            evidence,
            "actor: tid 12, state S\nlabkit-worker: pid 40, state Z"
        );
    }
}
