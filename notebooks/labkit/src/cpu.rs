//! CPU time: how much of some work the calling thread did itself.
//!
//! Wall-clock time cannot tell work spread over threads from work done on
//! the caller (a busy machine slows both), but CPU time can: a function that
//! promises to compute "on `n` threads" leaves its caller's own CPU clock
//! almost still, whatever the load.

use std::time::Duration;

/// The CPU time some work used, on the calling thread and in the whole
/// process (every thread, including those that ended during the work).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuUse {
    /// CPU time of the thread that called [`measure`].
    pub caller: Duration,
    /// CPU time of every thread of this process.
    pub process: Duration,
}

impl CpuUse {
    /// The caller's part of the process's CPU time, from 0 to 1 (0 when no
    /// CPU time was used at all).
    pub fn caller_share(&self) -> f64 {
        if self.process.is_zero() {
            return 0.0;
        }
        (self.caller.as_secs_f64() / self.process.as_secs_f64()).min(1.0)
    }
}

/// Runs `work` and returns its result with the CPU time it used.
pub fn measure<R>(work: impl FnOnce() -> R) -> (R, CpuUse) {
    let (caller, process) = (thread_clock(), process_clock());
    let result = work();
    let used = CpuUse {
        caller: thread_clock().saturating_sub(caller),
        process: process_clock().saturating_sub(process),
    };
    (result, used)
}

fn thread_clock() -> Duration {
    clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn process_clock() -> Duration {
    clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn clock(id: libc::clockid_t) -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to write into; these clocks exist
    // on every Linux this lab runs on, and a failure leaves it zero.
    unsafe { libc::clock_gettime(id, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The process clock counts every thread: these two tests must not
    /// overlap (the others in this crate use little CPU).
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn spin(cpu: Duration) {
        let start = thread_clock();
        while thread_clock() - start < cpu {
            std::hint::black_box(0u64);
        }
    }

    #[test]
    fn work_on_the_caller_is_the_callers() {
        let _alone = ONE_AT_A_TIME.lock();
        let ((), used) = measure(|| spin(Duration::from_millis(30)));
        assert!(used.caller >= Duration::from_millis(30), "{used:?}");
        assert!(used.process >= used.caller, "{used:?}");
    }

    #[test]
    fn the_share_is_the_callers_part_of_the_process() {
        let used = |caller, process| CpuUse {
            caller: Duration::from_millis(caller),
            process: Duration::from_millis(process),
        };
        assert_eq!(used(30, 120).caller_share(), 0.25);
        assert_eq!(used(0, 0).caller_share(), 0.0);
        // Clocks read a moment apart can disagree by a tick.
        assert_eq!(used(31, 30).caller_share(), 1.0);
    }

    #[test]
    fn work_on_other_threads_leaves_the_callers_clock_almost_still() {
        let _alone = ONE_AT_A_TIME.lock();
        let ((), used) = measure(|| {
            std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| spin(Duration::from_millis(30)));
                }
            })
        });
        assert!(used.process >= Duration::from_millis(60), "{used:?}");
        assert!(used.caller_share() < 0.2, "{used:?}");
    }
}
