//! Telling a stuck cell from a slow one while it runs, so that a hang is
//! judged seconds after it starts, not at the cell's time limit.
//!
//! A cell is stuck when every thread of every learner process waits in a
//! way only another of those threads could end, none uses CPU and the trace
//! does not grow, for [`QUIET_FOR`]: then nothing is left to wake anyone.
//! The waits that count are the ones with no timeout and no waker outside
//! the learner's processes: a futex wait without a timeout (std's and
//! labkit's locks, condition variables, channels, `join`), `wait()` for a
//! child, and a read or write on a pipe whose other end only learner
//! processes hold. Anything else (a sleep, a wait with a timeout, a thread
//! that runs or is runnable, a socket, a pipe to the kernel) is progress
//! that may still come, and is left to the time limit: a wrong "hung" is
//! worse than a late one.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::process_tree::{self, ThreadSample};

/// How long a cell must stay stuck to be judged hung.
pub const QUIET_FOR: Duration = Duration::from_secs(2);

/// System calls a thread can wait in forever, per architecture.
mod nr {
    pub const FUTEX: i64 = libc::SYS_futex;
    pub const FUTEX_WAITV: i64 = libc::SYS_futex_waitv;
    pub const WAIT4: i64 = libc::SYS_wait4;
    pub const WAITID: i64 = libc::SYS_waitid;
    pub const READ: i64 = libc::SYS_read;
    pub const READV: i64 = libc::SYS_readv;
    pub const WRITE: i64 = libc::SYS_write;
    pub const WRITEV: i64 = libc::SYS_writev;
    pub const PPOLL: i64 = libc::SYS_ppoll;
    #[cfg(target_arch = "x86_64")]
    pub const POLL: i64 = libc::SYS_poll;
    // aarch64 has no poll(2): glibc implements it with ppoll.
    #[cfg(not(target_arch = "x86_64"))]
    pub const POLL: i64 = -2;
}

/// `futex` operations that wait, and take a timeout in their fourth argument.
const FUTEX_WAITS: [u64; 5] = [
    libc::FUTEX_WAIT as u64,
    libc::FUTEX_WAIT_BITSET as u64,
    libc::FUTEX_LOCK_PI as u64,
    libc::FUTEX_LOCK_PI2 as u64,
    libc::FUTEX_WAIT_REQUEUE_PI as u64,
];
/// The bits of a futex operation that are flags, not the command.
const FUTEX_FLAGS: u64 = (libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME) as u64;

/// Whether `thread`, as sampled, waits for something only a thread of the
/// processes `learner` could give it, with no timeout.
pub fn waits_forever(thread: &ThreadSample, learner: &HashSet<u32>) -> bool {
    if thread.state != 'S' {
        return false;
    }
    let Some(syscall) = thread.syscall else {
        return false;
    };
    let args = syscall.args;
    match syscall.number {
        nr::FUTEX => FUTEX_WAITS.contains(&(args[1] & !FUTEX_FLAGS)) && args[3] == 0,
        nr::FUTEX_WAITV => args[3] == 0,
        nr::WAIT4 => args[2] & libc::WNOHANG as u64 == 0,
        nr::WAITID => args[3] & libc::WNOHANG as u64 == 0,
        nr::READ | nr::READV | nr::WRITE | nr::WRITEV => pipe_within(thread.pid, args[0], learner),
        // The kernel's output relay idles in poll with no timeout; it wakes
        // only for output of its own process, whose threads are counted.
        nr::POLL | nr::PPOLL => {
            thread.name == conclab_wire::RELAY_THREAD && poll_without_timeout(syscall)
        }
        _ => false,
    }
}

fn poll_without_timeout(syscall: process_tree::Syscall) -> bool {
    match syscall.number {
        // poll(fds, nfds, int timeout): negative is forever.
        nr::POLL => (syscall.args[2] as i32) < 0,
        // ppoll(fds, nfds, const struct timespec *): NULL is forever.
        _ => syscall.args[2] == 0,
    }
}

/// Whether `fd` of `pid` is a pipe whose other end only `learner`
/// processes hold (or only `pid` itself).
fn pipe_within(pid: u32, fd: u64, learner: &HashSet<u32>) -> bool {
    let is_pipe = process_tree::fd_target(pid, fd).is_some_and(|t| t.starts_with("pipe:"));
    is_pipe
        && process_tree::pipe_peers(pid, fd)
            .iter()
            .all(|peer| learner.contains(&peer.pid))
}

/// Watches one cell's processes for [`QUIET_FOR`] of nothing: call
/// [`StallWatch::observe`] every few hundred milliseconds.
#[derive(Debug, Default)]
pub struct StallWatch {
    quiet: Option<Quiet>,
}

/// Since when every thread has been stuck, and what must not change.
#[derive(Debug)]
struct Quiet {
    since: Instant,
    pids: Vec<u32>,
    cpu_ticks: u64,
    trace_len: u64,
}

/// One look at a cell that is stuck right now.
#[derive(Debug)]
pub struct Stuck {
    /// How long it has been stuck, since the first look that found it so.
    pub for_: Duration,
    /// Its threads, as this look found them.
    pub threads: Vec<ThreadSample>,
}

impl StallWatch {
    /// Looks at the learner's processes `pids` and the trace's length now.
    /// Some when every thread is stuck and nothing changed since an earlier
    /// look found the same; None on the first such look and whenever
    /// anything moves.
    pub fn observe(&mut self, pids: &[u32], trace_len: u64) -> Option<Stuck> {
        let learner: HashSet<u32> = pids.iter().copied().collect();
        let threads = process_tree::sample(pids);
        let live: Vec<&ThreadSample> = threads
            .iter()
            .filter(|t| !matches!(t.state, 'Z' | 'X' | 'x'))
            .collect();
        let stuck = !live.is_empty() && live.iter().all(|t| waits_forever(t, &learner));
        if !stuck {
            self.quiet = None;
            return None;
        }
        let mut sorted = pids.to_vec();
        sorted.sort_unstable();
        // Whole processes: threads that ended keep their CPU in the total.
        let cpu_ticks: u64 = sorted
            .iter()
            .filter_map(|&pid| process_tree::process_stat(pid))
            .map(|stat| stat.cpu_ticks)
            .sum();
        let now = Quiet {
            since: Instant::now(),
            pids: sorted,
            cpu_ticks,
            trace_len,
        };
        match &self.quiet {
            Some(quiet)
                if quiet.pids == now.pids
                    && quiet.trace_len == now.trace_len
                    // A tick of slack: the last one may have been counted
                    // just after the earlier look.
                    && now.cpu_ticks <= quiet.cpu_ticks + 1 =>
            {
                Some(Stuck {
                    for_: quiet.since.elapsed(),
                    threads,
                })
            }
            _ => {
                self.quiet = Some(now);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process_tree::Syscall;

    fn thread(state: char, number: i64, args: [u64; 6]) -> ThreadSample {
        ThreadSample {
            pid: std::process::id(),
            tid: 1,
            process: "runner".into(),
            name: "main".into(),
            state,
            wchan: String::new(),
            syscall: Some(Syscall { number, args }),
            cpu_ticks: 0,
        }
    }

    fn forever(sample: &ThreadSample) -> bool {
        waits_forever(sample, &HashSet::from([std::process::id()]))
    }

    const PRIVATE: u64 = libc::FUTEX_PRIVATE_FLAG as u64;

    #[test]
    fn futex_waits_without_a_timeout_are_forever() {
        let wait_bitset = libc::FUTEX_WAIT_BITSET as u64 | PRIVATE;
        assert!(forever(&thread(
            'S',
            nr::FUTEX,
            [0x10, wait_bitset, 2, 0, 0, !0]
        )));
        assert!(forever(&thread(
            'S',
            nr::FUTEX,
            [0x10, PRIVATE, 2, 0, 0, 0]
        )));
        // recv_timeout, Condvar::wait_timeout: a timeout will end it.
        assert!(!forever(&thread(
            'S',
            nr::FUTEX,
            [0x10, wait_bitset, 2, 0x7ff0, 0, !0]
        )));
        // A wake is no wait; a running thread is not waiting at all.
        let wake = libc::FUTEX_WAKE as u64 | PRIVATE;
        assert!(!forever(&thread('S', nr::FUTEX, [0x10, wake, 1, 0, 0, 0])));
        assert!(!forever(&thread(
            'R',
            nr::FUTEX,
            [0x10, PRIVATE, 2, 0, 0, 0]
        )));
    }

    #[test]
    fn sleeps_and_unknown_waits_are_not_forever() {
        assert!(!forever(&thread('S', libc::SYS_clock_nanosleep, [0; 6])));
        assert!(!forever(&thread('S', libc::SYS_nanosleep, [0; 6])));
        assert!(!forever(&thread(
            'S',
            libc::SYS_epoll_wait,
            [3, 0, 1, !0, 0, 0]
        )));
        // Not a pipe (descriptor 999 is not open here).
        assert!(!forever(&thread('S', nr::READ, [999, 0, 1, 0, 0, 0])));
        let mut blocked_outside = thread('S', -1, [0; 6]);
        blocked_outside.syscall = None;
        assert!(!forever(&blocked_outside));
    }

    #[test]
    fn waiting_for_a_child_is_forever_unless_it_only_looks() {
        assert!(forever(&thread('S', nr::WAIT4, [42, 0, 0, 0, 0, 0])));
        let no_hang = libc::WNOHANG as u64;
        assert!(!forever(&thread('S', nr::WAIT4, [42, 0, no_hang, 0, 0, 0])));
    }

    #[test]
    fn only_the_relay_may_poll_forever() {
        let mut relay = thread('S', nr::PPOLL, [0x10, 2, 0, 0, 8, 0]);
        relay.name = conclab_wire::RELAY_THREAD.into();
        assert!(forever(&relay));
        let mut learner = relay.clone();
        learner.name = "main".into();
        assert!(!forever(&learner));
        let mut with_timeout = relay;
        with_timeout.syscall = Some(Syscall {
            number: nr::PPOLL,
            args: [0x10, 2, 0x7ff0, 0, 8, 0],
        });
        assert!(!forever(&with_timeout));
    }

    /// A process that reads a pipe only it writes to: stuck for good.
    fn stuck_reader() -> std::process::Child {
        let mut fds = [0; 2];
        // Close-on-exec: children other tests start meanwhile must not
        // inherit it. SAFETY: pipe2 writes two descriptors into the array.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: each descriptor is ours and handed over exactly once.
        let (read, write) = unsafe {
            use std::os::fd::FromRawFd;
            (
                std::fs::File::from_raw_fd(fds[0]),
                std::fs::File::from_raw_fd(fds[1]),
            )
        };
        std::process::Command::new("cat")
            .stdin(read)
            .stdout(write)
            .spawn()
            .unwrap()
    }

    fn observe_until(watch: &mut StallWatch, pids: &[u32], trace_len: u64) -> Option<Stuck> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(stuck) = watch.observe(pids, trace_len) {
                return Some(stuck);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn a_process_stuck_on_its_own_pipe_is_stuck_until_something_moves() {
        let mut cat = stuck_reader();
        let pids = [cat.id()];
        let mut watch = StallWatch::default();
        let stuck = observe_until(&mut watch, &pids, 0).expect("cat is stuck");
        assert_eq!(stuck.threads.len(), 1);
        // The trace grew: the quiet starts again.
        assert!(watch.observe(&pids, 10).is_none());
        assert!(observe_until(&mut watch, &pids, 10).is_some());
        let _ = cat.kill();
        let _ = cat.wait();
    }

    #[test]
    fn a_sleeping_process_is_never_stuck() {
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let mut watch = StallWatch::default();
        for _ in 0..5 {
            assert!(watch.observe(&[sleeper.id()], 0).is_none());
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = sleeper.kill();
        let _ = sleeper.wait();
    }

    #[test]
    fn a_pipe_counts_only_when_learner_processes_hold_its_other_end() {
        let mut fds = [0; 2];
        // Close-on-exec: children other tests start meanwhile must not
        // inherit it. SAFETY: pipe2 writes two descriptors into the array.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        let read = thread('S', nr::READ, [fds[0] as u64, 0, 1, 0, 0, 0]);
        // Only this process holds the write end: only it could write.
        assert!(forever(&read));
        // A child outside the learner's processes holds it too.
        let holder = std::process::Command::new("sleep")
            .arg("30")
            .stdout(std::process::Stdio::from(
                std::fs::File::options()
                    .write(true)
                    .open(format!("/proc/self/fd/{}", fds[1]))
                    .unwrap(),
            ))
            .spawn();
        let mut holder = holder.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while process_tree::pipe_peers(std::process::id(), fds[0] as u64)
            .iter()
            .all(|p| p.pid != holder.id())
        {
            assert!(
                Instant::now() < deadline,
                "the holder never opened the pipe"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!forever(&read));
        assert!(waits_forever(
            &read,
            &HashSet::from([std::process::id(), holder.id()])
        ));
        let _ = holder.kill();
        let _ = holder.wait();
        // SAFETY: closing the descriptors pipe gave us.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
}
