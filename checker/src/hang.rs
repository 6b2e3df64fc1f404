//! Saying what a hung cell is doing, from its trace and from `/proc`.
//!
//! A timed-out cell is sampled twice (see [`diagnose`]) and its trace is
//! replayed, then the first of these that applies names the hang:
//!
//! 1. a cycle of threads each waiting for a lock another holds (from the
//!    trace: certain, and it names the locks);
//! 2. a thread spinning on the CPU;
//! 3. a thread blocked reading or writing a pipe (named by who is at the
//!    other end; a deadlock when that end is blocked on a pipe back);
//! 4. a thread waiting on a condition variable that nobody notified;
//! 5. a sleeping thread (slow rather than stuck), every thread blocked (on
//!    futexes labkit does not trace: most often a channel kept open), or
//!    nothing known.
//!
//! `/proc` cannot tell a lock from a condition variable or a channel (all
//! are futex waits): the trace's lock and condvar addresses can, which is
//! why labkit records them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use labkit::trace::{UnnamedThreads, unnamed_thread_name};

use crate::process_tree::{self, PipePeer, ThreadSample};
use crate::timeline::Moment;
use crate::trace::{Event, LockRef, What, monotonic_ns};

/// What a hang is, for the learner and for whoever looks closer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    /// One line for the learner, e.g. `deadlock: worker-1 waits for
    /// account[2], held by worker-2, which waits for account[1], held by
    /// worker-1`.
    pub summary: String,
    /// Every thread, a few lines each: process, thread, state, what it waits
    /// on, CPU used while sampled, its last trace events and the locks it
    /// holds. Pids, tids and futex addresses are here, never in `summary`.
    pub details: String,
    /// Who hangs the cell when the trace shows no thread waiting (a spin, a
    /// pipe, a wait for a child), to mark in the picture.
    pub culprit: Option<Culprit>,
}

/// The threads /proc caught hanging a cell that the trace shows no thread
/// waiting in: the picture marks their last traced event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Culprit {
    /// As (pid, tid): the thread that hangs the cell first, then the others
    /// it involves (the other end of its pipe, the child it waits for).
    pub threads: Vec<(u32, u32)>,
    /// The mark's words, e.g. `thread worker-3 spins from here, nothing
    /// else moves`.
    pub label: String,
    /// Whether the first thread's process stopped with it (blocked on a pipe
    /// or in wait()): then the process's last event stands in when the
    /// thread traced nothing; else (a spinning thread's process may go on)
    /// the trace's last event does.
    pub process_stopped: bool,
}

impl Culprit {
    /// Its moment in `events`, the run's trace: from the first event to the
    /// last, marked at the first thread's last event.
    fn moment(&self, events: &[Event]) -> Option<Moment> {
        let &first = self.threads.first()?;
        let last_ns = |of: &dyn Fn(&Event) -> bool| {
            events
                .iter()
                .filter(|event| of(event))
                .map(|event| event.t_ns)
                .max()
        };
        let trace_last_ns = last_ns(&|_| true)?;
        let at_ns = last_ns(&|event| (event.pid, event.tid) == first)
            .or_else(|| {
                self.process_stopped
                    .then(|| last_ns(&|event| event.pid == first.0))
                    .flatten()
            })
            .unwrap_or(trace_last_ns);
        Some(Moment {
            at_ns,
            label: self.label.clone(),
            threads: self.threads.clone(),
            from_ns: events.iter().map(|event| event.t_ns).min()?,
            to_ns: trace_last_ns,
        })
    }
}

/// System call numbers, which differ per architecture.
mod nr {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    mod arch {
        use libc::*;

        pub const READ: &[i64] = &[SYS_read, SYS_readv];
        pub const WRITE: &[i64] = &[SYS_write, SYS_writev];
        pub const FUTEX: &[i64] = &[SYS_futex];
        pub const SLEEP: &[i64] = &[SYS_nanosleep, SYS_clock_nanosleep];
        // wait4 first: a wait for one pid is told by it (`WAIT_CHILD[..1]`).
        pub const WAIT_CHILD: &[i64] = &[SYS_wait4, SYS_waitid];
        // aarch64 has only the newer calls of the family.
        #[cfg(target_arch = "x86_64")]
        pub const POLL: &[i64] = &[
            SYS_poll,
            SYS_select,
            SYS_epoll_wait,
            SYS_pselect6,
            SYS_ppoll,
            SYS_epoll_pwait,
            SYS_epoll_pwait2,
        ];
        #[cfg(target_arch = "aarch64")]
        pub const POLL: &[i64] = &[SYS_epoll_pwait, SYS_pselect6, SYS_ppoll, SYS_epoll_pwait2];
    }

    // Elsewhere only the trace and CPU time classify a hang.
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    mod arch {
        pub const READ: &[i64] = &[];
        pub const WRITE: &[i64] = &[];
        pub const FUTEX: &[i64] = &[];
        pub const SLEEP: &[i64] = &[];
        pub const WAIT_CHILD: &[i64] = &[];
        pub const POLL: &[i64] = &[];
    }

    pub use arch::*;
}

/// A thread uses at least this share of a CPU to count as spinning.
const SPINNING_PERCENT: f64 = 50.0;
/// Trace events kept per thread for the details.
const RECENT_EVENTS: usize = 3;
/// Threads named in a summary that lists blocked threads.
const LISTED_THREADS: usize = 3;

/// Says why the learner's processes `pids` (the code runner and what it
/// started; their descendants are looked up again here) make no progress.
/// Samples every thread twice, `interval` apart (about 300 ms), and replays
/// `events`, the trace of the run read just before.
pub fn diagnose(pids: &[u32], events: &[Event], interval: Duration) -> Diagnosis {
    let window_start_ns = monotonic_ns();
    let started = Instant::now();
    let before = process_tree::sample(&process_tree::descendants(pids));
    std::thread::sleep(interval);
    // Looked up again: children started meanwhile count too.
    let after = process_tree::sample(&process_tree::descendants(pids));
    let threads = observe(&before, after, started.elapsed());
    classify(
        &threads,
        events,
        pids.first().copied(),
        window_start_ns,
        interval,
    )
}

/// Whether the trace shows a cycle of the threads `threads` (one sample of
/// the learner's processes), each waiting for a lock the next one holds:
/// a deadlock, proven without waiting for the time limit.
pub fn lock_cycle(threads: &[ThreadSample], events: &[Event]) -> bool {
    let threads = observe(threads, threads.to_vec(), Duration::from_millis(1));
    let replay = Replay::new(events);
    let scene = Scene {
        names: Names::new(&threads, &replay, None),
        pipes: Vec::new(),
        threads: &threads,
        replay,
        window_start_ns: 0,
        now_ns: 0,
    };
    scene.deadlock().is_some()
}

/// The moment a hang set in, to draw: for a hang /proc found the
/// [`Culprit`] of (a spin, a pipe), its last traced event; for a deadlock,
/// when the last of its threads began to wait and the wait cycle closed;
/// otherwise the trace's last event, after which the waiting threads never
/// moved. None when there is nothing of the kind to mark.
pub fn moment(events: &[Event], diagnosis: &Diagnosis) -> Option<Moment> {
    if let Some(culprit) = &diagnosis.culprit {
        return culprit.moment(events);
    }
    let replay = Replay::new(events);
    let mut stuck: Vec<(u64, Key)> = replay
        .lock_waits
        .keys()
        .chain(replay.cond_waits.keys())
        .filter_map(|key| Some((replay.recent.get(key)?.last()?.t_ns, *key)))
        .collect();
    stuck.sort_unstable();
    stuck.dedup();
    let &(last_wait_ns, _) = stuck.last()?;
    let (at_ns, label) = if diagnosis.summary.starts_with("deadlock") {
        (
            last_wait_ns,
            "the wait cycle closes: no thread can go on".to_owned(),
        )
    } else {
        (
            replay.last_ns?,
            format!(
                "the last event: {} waiting, and nothing moves after this",
                plural(stuck.len(), "thread")
            ),
        )
    };
    Some(Moment {
        at_ns,
        label,
        // The latest to wait first: it completed the hang.
        threads: stuck.iter().rev().map(|&(_, key)| key).collect(),
        from_ns: events.iter().map(|e| e.t_ns).min()?,
        to_ns: replay.last_ns?.max(at_ns),
    })
}

/// A thread at the second sample, with the CPU it used since the first.
#[derive(Debug, Clone)]
struct Thread {
    now: ThreadSample,
    cpu_ms: f64,
    /// Of one CPU, over the time between the samples.
    cpu_percent: f64,
    /// Whether the first sample found it running too.
    running_before: bool,
}

impl Thread {
    fn key(&self) -> Key {
        (self.now.pid, self.now.tid)
    }

    fn syscall_in(&self, numbers: &[i64]) -> Option<[u64; 6]> {
        self.now
            .syscall
            .filter(|s| numbers.contains(&s.number))
            .map(|s| s.args)
    }

    fn blocked(&self) -> bool {
        matches!(self.now.state, 'S' | 'D' | 'T' | 't' | 'I')
            && self.cpu_percent < SPINNING_PERCENT / 10.0
    }

    fn spinning(&self) -> bool {
        self.cpu_percent >= SPINNING_PERCENT || (self.now.state == 'R' && self.running_before)
    }
}

fn observe(before: &[ThreadSample], after: Vec<ThreadSample>, elapsed: Duration) -> Vec<Thread> {
    let hz = process_tree::clock_ticks_per_second() as f64;
    let before: HashMap<Key, &ThreadSample> = before.iter().map(|t| ((t.pid, t.tid), t)).collect();
    let seconds = elapsed.as_secs_f64().max(1e-3);
    after
        .into_iter()
        .filter(|t| !matches!(t.state, 'Z' | 'X' | 'x'))
        .map(|now| {
            let earlier = before.get(&(now.pid, now.tid));
            // A thread born between the samples used all its CPU in between.
            let ticks = now
                .cpu_ticks
                .saturating_sub(earlier.map_or(0, |e| e.cpu_ticks));
            let cpu_s = ticks as f64 / hz;
            Thread {
                cpu_ms: cpu_s * 1e3,
                cpu_percent: 100.0 * cpu_s / seconds,
                running_before: earlier.is_some_and(|e| e.state == 'R'),
                now,
            }
        })
        .collect()
}

/// A thread: (pid, tid).
type Key = (u32, u32);

/// A condition-variable wait the trace shows no end of.
#[derive(Debug, Clone)]
struct CondWait {
    condvar: String,
    /// The lock the wait gave back, to take again when woken.
    lock: Option<LockRef>,
}

/// What the trace says about each thread at its end.
#[derive(Default)]
struct Replay<'a> {
    /// The trace's thread names (`main`, `worker-1`, `unnamed thread 1`).
    names: HashMap<Key, String>,
    /// Lock and condition-variable names by (pid, address).
    objects: HashMap<(u32, u64), String>,
    /// Who holds each lock, by (pid, address): tids (several for read locks).
    holders: HashMap<(u32, u64), Vec<u32>>,
    lock_waits: BTreeMap<Key, LockRef>,
    cond_waits: BTreeMap<Key, CondWait>,
    recent: HashMap<Key, Vec<&'a Event>>,
    last_ns: Option<u64>,
}

impl<'a> Replay<'a> {
    fn new(events: &'a [Event]) -> Replay<'a> {
        let mut sorted: Vec<&Event> = events.iter().collect();
        sorted.sort_by_key(|e| (e.t_ns, e.pid, e.seq));
        let mut replay = Replay::default();
        for event in sorted {
            replay.apply(event);
        }
        replay
    }

    fn apply(&mut self, event: &'a Event) {
        let key = (event.pid, event.tid);
        self.names.insert(key, event.thread.clone());
        self.last_ns = self.last_ns.max(Some(event.t_ns));
        // A blocked thread records nothing: any later event of its own means
        // the wait an earlier one announced is over.
        self.lock_waits.remove(&key);
        self.cond_waits.remove(&key);
        match &event.what {
            What::LockWait { .. } | What::LockAcquired { .. } => {
                // `held` is authoritative about this thread's locks.
                for held in event.held() {
                    self.hold(event.pid, event.tid, held);
                }
                if let Some(lock) = event.lock() {
                    if matches!(event.what, What::LockWait { .. }) {
                        self.objects
                            .insert((event.pid, lock.lock), lock.name.clone());
                        self.lock_waits.insert(key, lock);
                    } else {
                        self.hold(event.pid, event.tid, &lock);
                    }
                }
            }
            What::LockReleased { .. } => {
                if let Some(lock) = event.lock()
                    && let Some(tids) = self.holders.get_mut(&(event.pid, lock.lock))
                {
                    tids.retain(|&tid| tid != event.tid);
                }
            }
            What::CondWait { condvar, lock, .. } => {
                self.objects
                    .insert((event.pid, *condvar), event.name.clone());
                self.cond_waits.insert(
                    key,
                    CondWait {
                        condvar: event.name.clone(),
                        lock: lock.clone(),
                    },
                );
            }
            _ => {}
        }
        let recent = self.recent.entry(key).or_default();
        if recent.len() == RECENT_EVENTS {
            recent.remove(0);
        }
        recent.push(event);
    }

    fn hold(&mut self, pid: u32, tid: u32, lock: &LockRef) {
        self.objects.insert((pid, lock.lock), lock.name.clone());
        let tids = self.holders.entry((pid, lock.lock)).or_default();
        if !tids.contains(&tid) {
            tids.push(tid);
        }
    }

    fn holders_of(&self, pid: u32, lock: u64) -> Vec<Key> {
        self.holders
            .get(&(pid, lock))
            .map(|tids| tids.iter().map(|&tid| (pid, tid)).collect())
            .unwrap_or_default()
    }

    /// The names of the locks a thread holds, oldest known first.
    fn held_by(&self, key: Key) -> Vec<String> {
        let mut held: Vec<(u64, &String)> = self
            .holders
            .iter()
            .filter(|((pid, _), tids)| *pid == key.0 && tids.contains(&key.1))
            .filter_map(|((pid, lock), _)| Some((*lock, self.objects.get(&(*pid, *lock))?)))
            .collect();
        held.sort();
        held.into_iter().map(|(_, name)| name.clone()).collect()
    }
}

/// Display names, without pids or tids (those are for the details):
/// labkit's trace name of a thread, else a name like labkit's; another
/// process, and its first thread, after the process's command.
struct Names {
    threads: HashMap<Key, String>,
    /// The learner's processes other than the code runner, by pid.
    processes: HashMap<u32, String>,
    runner: Option<u32>,
}

impl Names {
    /// `runner` is the code runner's pid: its first thread runs the cell.
    fn new(threads: &[Thread], replay: &Replay, runner: Option<u32>) -> Names {
        let processes = process_names(threads, runner);
        // Threads the trace named `unnamed thread N` keep their numbers;
        // unnamed threads it never saw take the next ones.
        let mut unnamed = UnnamedThreads::default();
        for (&(pid, tid), name) in &replay.names {
            unnamed.note_shown(pid.into(), tid.into(), name);
        }
        let mut base: BTreeMap<Key, String> = BTreeMap::new();
        for thread in threads {
            let key = thread.key();
            let name = match replay.names.get(&key) {
                // labkit calls every process's first thread `main`; only
                // the cell's is the learner's `main`.
                Some(name) if name == "main" && runner.is_some_and(|r| r != key.0) => {
                    untraced_name(&thread.now, runner, &processes, &mut unnamed)
                }
                Some(name) => name.clone(),
                None => untraced_name(&thread.now, runner, &processes, &mut unnamed),
            };
            base.insert(key, name);
        }
        if threads.is_empty() {
            base.extend(replay.names.iter().map(|(k, n)| (*k, n.clone())));
        }
        let mut threads = apart(base, &processes);
        // Threads of the trace that were not sampled keep their plain name.
        for (key, name) in &replay.names {
            threads.entry(*key).or_insert_with(|| name.clone());
        }
        Names {
            threads,
            processes,
            runner,
        }
    }

    fn of(&self, key: Key) -> String {
        self.threads
            .get(&key)
            .cloned()
            // Every thread of a summary was sampled or traced, so named.
            .unwrap_or_else(|| "a thread".to_owned())
    }

    /// A process as summaries name it: `the cell's process` for the code
    /// runner, one of the learner's by its name here, any other by its
    /// `command`.
    fn process(&self, pid: u32, command: &str) -> String {
        if Some(pid) == self.runner {
            return "the cell's process".to_owned();
        }
        self.processes
            .get(&pid)
            .cloned()
            .unwrap_or_else(|| command.to_owned())
    }
}

/// The learner's processes other than the code runner, named after their
/// command (`sleep`), numbered in the order they started when several share
/// it (`labkit-worker 2`).
fn process_names(threads: &[Thread], runner: Option<u32>) -> HashMap<u32, String> {
    let mut by_command: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for thread in threads.iter().filter(|t| Some(t.now.pid) != runner) {
        let pids = by_command.entry(thread.now.process.as_str()).or_default();
        if !pids.contains(&thread.now.pid) {
            pids.push(thread.now.pid);
        }
    }
    let mut names = HashMap::new();
    for (command, mut pids) in by_command {
        if let [pid] = pids[..] {
            names.insert(pid, command.to_owned());
            continue;
        }
        // Start times, not pids: pids wrap around.
        pids.sort_by_cached_key(|&pid| {
            let started = process_tree::process_stat(pid).map(|stat| stat.start_time);
            (started.unwrap_or(u64::MAX), pid)
        });
        for (number, pid) in pids.into_iter().enumerate() {
            names.insert(pid, format!("{command} {}", number + 1));
        }
    }
    names
}

/// Tells threads of one name apart without ids: in several processes, those
/// outside the code runner by their process (`worker-1 in labkit-worker
/// 2`); within one process by number, in tid order (`worker-1 #2`), as the
/// timeline does.
fn apart(base: BTreeMap<Key, String>, processes: &HashMap<u32, String>) -> HashMap<Key, String> {
    let mut pids_of: HashMap<&str, HashSet<u32>> = HashMap::new();
    for (key, name) in &base {
        pids_of.entry(name).or_default().insert(key.0);
    }
    let by_process: BTreeMap<Key, String> = base
        .iter()
        .map(|(key, name)| {
            let shown = match processes.get(&key.0) {
                Some(process) if pids_of[name.as_str()].len() > 1 => {
                    format!("{name} in {process}")
                }
                _ => name.clone(),
            };
            (*key, shown)
        })
        .collect();
    let mut uses: HashMap<String, usize> = HashMap::new();
    by_process
        .into_iter()
        .map(|(key, name)| {
            let count = uses.entry(name.clone()).or_default();
            *count += 1;
            match *count {
                1 => (key, name),
                n => (key, format!("{name} #{n}")),
            }
        })
        .collect()
}

/// A name for a thread the trace never saw, as the trace would show it: the
/// cell's own thread is `main`, another process's first thread is that
/// process (`labkit-worker 2`, named in `processes`), an unnamed thread
/// (/proc shows it under its process's name) is `unnamed thread N`.
fn untraced_name(
    thread: &ThreadSample,
    runner: Option<u32>,
    processes: &HashMap<u32, String>,
    unnamed: &mut UnnamedThreads,
) -> String {
    if thread.tid == thread.pid {
        if Some(thread.pid) == runner {
            "main".to_owned()
        } else {
            processes
                .get(&thread.pid)
                .cloned()
                .unwrap_or_else(|| thread.process.clone())
        }
    } else if thread.name == thread.process {
        let (pid, tid) = (u64::from(thread.pid), u64::from(thread.tid));
        unnamed.show(pid, tid, &unnamed_thread_name(tid))
    } else {
        thread.name.clone()
    }
}

/// A thread blocked reading or writing a pipe.
struct PipeWait {
    key: Key,
    reading: bool,
    peer: Option<PipePeer>,
}

/// Everything [`classify`] and the details share.
struct Scene<'a> {
    threads: &'a [Thread],
    replay: Replay<'a>,
    names: Names,
    pipes: Vec<PipeWait>,
    window_start_ns: u64,
    now_ns: u64,
}

impl Scene<'_> {
    fn thread(&self, key: Key) -> Option<&Thread> {
        self.threads.iter().find(|t| t.key() == key)
    }

    /// Whether a thread the trace mentions still exists. With no sample at
    /// all the trace alone is trusted; a process outside the sampled ones
    /// (it left the tree) is looked up directly.
    fn live(&self, key: Key) -> bool {
        if self.threads.is_empty() {
            return true;
        }
        if self.threads.iter().any(|t| t.now.pid == key.0) {
            return self.thread(key).is_some();
        }
        std::fs::read_to_string(format!("/proc/{}/task/{}/stat", key.0, key.1))
            .ok()
            .and_then(|stat| process_tree::parse_stat(&stat))
            .is_some_and(|stat| !matches!(stat.state, 'Z' | 'X' | 'x'))
    }

    fn futex(&self, key: Key) -> Option<u64> {
        Some(self.thread(key)?.syscall_in(nr::FUTEX)?[0])
    }

    /// A cycle of threads each waiting for a lock the next one holds, with
    /// the lock each one waits for.
    fn deadlock(&self) -> Option<Vec<(Key, LockRef)>> {
        let mut waits: BTreeMap<Key, LockRef> = self
            .replay
            .lock_waits
            .iter()
            .filter(|(key, _)| self.live(**key))
            .map(|(key, lock)| (*key, lock.clone()))
            .collect();
        // A thread woken on a condition variable takes its lock back without
        // a `lock_wait`: /proc shows it on the lock's futex instead.
        for (key, wait) in &self.replay.cond_waits {
            if let Some(lock) = &wait.lock
                && self.futex(*key) == Some(lock.lock)
            {
                waits.insert(*key, lock.clone());
            }
        }
        let graph: BTreeMap<Key, Vec<Key>> = waits
            .iter()
            .map(|(key, lock)| (*key, self.replay.holders_of(key.0, lock.lock)))
            .collect();
        let cycle = find_cycle(&graph)?;
        Some(
            cycle
                .into_iter()
                .map(|key| (key, waits[&key].clone()))
                .collect(),
        )
    }

    fn deadlock_summary(&self, mut cycle: Vec<(Key, LockRef)>) -> String {
        let names: Vec<String> = cycle.iter().map(|(key, _)| self.names.of(*key)).collect();
        let first = (0..names.len()).min_by_key(|&i| &names[i]).unwrap_or(0);
        cycle.rotate_left(first);
        let name = |i: usize| self.names.of(cycle[i % cycle.len()].0);
        if cycle.len() == 1 {
            return format!(
                "deadlock: {} waits for {}, which it already holds",
                name(0),
                cycle[0].1.name
            );
        }
        let mut summary = format!(
            "deadlock: {} waits for {}, held by {}",
            name(0),
            cycle[0].1.name,
            name(1)
        );
        for (i, (_, lock)) in cycle.iter().enumerate().skip(1) {
            let _ = write!(
                summary,
                ", which waits for {}, held by {}",
                lock.name,
                name(i + 1)
            );
        }
        summary
    }

    fn spinning_summary(&self) -> Option<(String, Culprit)> {
        let mut spinning: Vec<&Thread> = self.threads.iter().filter(|t| t.spinning()).collect();
        spinning.sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent));
        let thread = spinning.first()?;
        let name = self.names.of(thread.key());
        let percent = thread.cpu_percent.min(100.0);
        let progress = self
            .replay
            .last_ns
            .is_some_and(|t| t >= self.window_start_ns);
        let (mut summary, label) = if progress {
            (
                format!(
                    "thread {name} spins ({percent:.0}% CPU) while the trace still grows: slow, or a livelock"
                ),
                format!("thread {name} spins from here while the trace still grows"),
            )
        } else {
            (
                format!("thread {name} spins ({percent:.0}% CPU, no progress)"),
                format!("thread {name} spins from here, nothing else moves"),
            )
        };
        match spinning.len() {
            1 => {}
            2 => summary.push_str("; 1 other thread spins too"),
            n => {
                let _ = write!(summary, "; {} other threads spin too", n - 1);
            }
        }
        let culprit = Culprit {
            threads: spinning.iter().map(|t| t.key()).collect(),
            label,
            process_stopped: false,
        };
        Some((summary, culprit))
    }

    fn pipe_summary(&self) -> Option<(String, Culprit)> {
        let learner: HashSet<u32> = self.threads.iter().map(|t| t.now.pid).collect();
        // A peer among the learner's processes first; a pipe held by the
        // kernel (the runner's stdin and stdout) is the least likely culprit.
        let wait = self.pipes.iter().min_by_key(|w| match &w.peer {
            Some(peer) if learner.contains(&peer.pid) => 0,
            None => 1,
            Some(_) => 2,
        })?;
        let name = self.names.of(wait.key);
        let peer_name = wait
            .peer
            .as_ref()
            .map(|peer| self.names.process(peer.pid, &peer.process));
        let culprit = |other: Option<Key>, label: String| Culprit {
            threads: [wait.key].into_iter().chain(other).collect(),
            label,
            process_stopped: true,
        };
        // The peer blocked on a pipe back to this process: neither side
        // will move, whatever the peer would do once unblocked.
        if let (Some(peer), Some(peer_name)) = (&wait.peer, &peer_name)
            && let Some(back) = self.pipes.iter().find(|back| {
                back.key.0 == peer.pid && back.peer.as_ref().is_some_and(|p| p.pid == wait.key.0)
            })
        {
            let (mine, theirs) = (direction(wait.reading), direction(back.reading));
            let hint = match (wait.reading, back.reading) {
                (false, false) => {
                    ": each waits for the other to read a full pipe (read replies while you still send, or keep one task in flight per worker)"
                }
                (true, true) => {
                    ": each waits for the other to write (a message never sent, or never flushed)"
                }
                _ => ": a pipe deadlock",
            };
            return Some((
                format!("{name} blocked {mine} {peer_name}, which is blocked {theirs} it{hint}"),
                culprit(
                    Some(back.key),
                    format!("{name} and {peer_name} block on pipes to each other here"),
                ),
            ));
        }
        // The other end's first thread, when it is the learner's.
        let peer_thread = wait
            .peer
            .as_ref()
            .filter(|peer| learner.contains(&peer.pid))
            .map(|peer| (peer.pid, peer.pid));
        Some(match (&peer_name, wait.reading) {
            (Some(peer), true) => (
                format!("{name} blocked reading a pipe from {peer}"),
                culprit(
                    peer_thread,
                    format!("{name} blocks reading a pipe from {peer} here"),
                ),
            ),
            (Some(peer), false) => (
                format!("{name} blocked writing a pipe to {peer} (nobody reads it)"),
                culprit(
                    peer_thread,
                    format!("{name} blocks writing a pipe to {peer} here"),
                ),
            ),
            (None, true) => (
                format!(
                    "{name} blocked reading a pipe whose only writer is its own process (close or drop the write end)"
                ),
                culprit(None, format!("{name} blocks reading a pipe here")),
            ),
            (None, false) => (
                format!("{name} blocked writing a full pipe that only its own process reads"),
                culprit(None, format!("{name} blocks writing a full pipe here")),
            ),
        })
    }

    /// A thread in `wait()` for a child that is itself blocked: named as
    /// waiting for that child, with what the child waits for. The classic
    /// case: the child reads its stdin until EOF, and the waiting process
    /// still holds the write end, so EOF never comes.
    fn child_wait_summary(&self) -> Option<(String, Culprit)> {
        self.threads.iter().find_map(|waiter| {
            waiter.syscall_in(nr::WAIT_CHILD)?;
            let parent = waiter.now.pid;
            let child = self.threads.iter().find(|t| {
                t.now.pid != parent
                    && wait_target(waiter, t.now.pid)
                    && process_tree::process_stat(t.now.pid).is_some_and(|s| s.ppid == parent)
                    && t.blocked()
            })?;
            let waiter_name = self.names.of(waiter.key());
            let process = self.names.process(child.now.pid, &child.now.process);
            let blocked_on = self.pipes.iter().find(|w| w.key == child.key());
            let summary = match blocked_on {
                Some(pipe) if pipe.reading && pipe.peer.as_ref().is_none_or(|p| p.pid == parent) => format!(
                    "{waiter_name} waits in wait() for {process} to exit, but {process} is blocked reading its input, which stays open while the waiting process holds its write end: close the child's stdin (drop the ChildStdin) before wait()"
                ),
                _ => format!(
                    "{waiter_name} waits in wait() for {process} to exit, which {}",
                    self.activity(child, false)
                ),
            };
            let culprit = Culprit {
                threads: vec![waiter.key(), child.key()],
                label: format!("{waiter_name} waits for {process} to exit from here"),
                process_stopped: true,
            };
            Some((summary, culprit))
        })
    }

    fn condvar_summary(&self) -> Option<String> {
        let mut waits: Vec<(String, &CondWait)> = self
            .replay
            .cond_waits
            .iter()
            .filter(|(key, _)| self.live(**key))
            .map(|(key, wait)| (self.names.of(*key), wait))
            .collect();
        waits.sort_by(|a, b| a.0.cmp(&b.0));
        let ((name, wait), others) = waits.split_first()?;
        let mut summary = format!(
            "{name} waits on condition variable {} that nobody notifies",
            wait.condvar
        );
        // Every waiter by name: when a consumer and a producer both wait,
        // the notify that is missing may be the producer's.
        let mut by_condvar: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (name, wait) in others {
            by_condvar
                .entry(wait.condvar.as_str())
                .or_default()
                .push(name);
        }
        let others: Vec<String> = by_condvar
            .into_iter()
            .map(|(condvar, names)| match names.as_slice() {
                [one] => format!("{one} waits on {condvar}"),
                few if few.len() <= 3 => format!("{} wait on {condvar}", few.join(", ")),
                many => format!("{} threads wait on {condvar}", many.len()),
            })
            .collect();
        if !others.is_empty() {
            let _ = write!(summary, "; {}, unnotified too", others.join("; "));
        }
        Some(summary)
    }

    fn fallback_summary(&self) -> String {
        if let Some(sleeper) = self
            .threads
            .iter()
            .find(|t| t.syscall_in(nr::SLEEP).is_some())
        {
            return format!(
                "{} is sleeping (thread::sleep): the cell is slow rather than stuck",
                self.names.of(sleeper.key())
            );
        }
        if !self.threads.is_empty() && self.threads.iter().all(Thread::blocked) {
            let mut listed: Vec<&Thread> = self.threads.iter().collect();
            // Futex waits first: those are the learner's locks and channels;
            // among them the threads this cell's trace saw, before a pool an
            // earlier cell left idle.
            listed.sort_by_key(|t| {
                (
                    t.syscall_in(nr::FUTEX).is_none(),
                    !self.replay.recent.contains_key(&t.key()),
                )
            });
            // labkit names every lock and condition variable it traces; a
            // futex it does not know is a channel, a std lock or a join.
            let futex_waits: Vec<(u32, u64)> = listed
                .iter()
                .filter_map(|t| Some((t.now.pid, t.syscall_in(nr::FUTEX)?[0])))
                .collect();
            let untraced = !futex_waits.is_empty()
                && futex_waits
                    .iter()
                    .all(|object| !self.replay.objects.contains_key(object));
            if untraced {
                let mut names: Vec<String> = listed
                    .iter()
                    .take(LISTED_THREADS)
                    .map(|t| self.names.of(t.key()))
                    .collect();
                if listed.len() > LISTED_THREADS {
                    names.push(format!("and {} more", listed.len() - LISTED_THREADS));
                }
                return format!(
                    "all threads are blocked, none on a labkit lock or condition variable: most often a receiver waiting on a channel that never closes, because a Sender (or a clone of one) is still alive somewhere, or a sender blocked on a full bounded channel that nobody reads any more; blocked: {}",
                    names.join(", ")
                );
            }
            let mut waits: Vec<String> = listed
                .iter()
                .take(LISTED_THREADS)
                .map(|t| format!("{} {}", self.names.of(t.key()), self.activity(t, false)))
                .collect();
            if listed.len() > LISTED_THREADS {
                waits.push(format!("and {} more", listed.len() - LISTED_THREADS));
            }
            return format!(
                "all threads are blocked (a lock, condition variable or channel that is never released): {}",
                waits.join(", ")
            );
        }
        "no thread made progress".to_owned()
    }

    /// What a thread is doing, as a verb phrase. With `ids` (for the
    /// details) it gives what an instructor looks up, the futex address,
    /// descriptor and pids: `waits in futex 0x… (account[1], held by
    /// worker-2)`; without (for a summary) names only: `waits for
    /// account[1], held by worker-2`.
    fn activity(&self, thread: &Thread, ids: bool) -> String {
        let pid = thread.now.pid;
        if let Some(args) = thread.syscall_in(nr::FUTEX) {
            let object = self.replay.objects.get(&(pid, args[0]));
            let holders: Vec<String> = self
                .replay
                .holders_of(pid, args[0])
                .into_iter()
                .map(|key| self.names.of(key))
                .collect();
            let held_by = holders.join(" and ");
            return match (object, ids) {
                (Some(object), true) if holders.is_empty() => {
                    format!("waits in futex {:#x} ({object})", args[0])
                }
                (Some(object), true) => {
                    format!(
                        "waits in futex {:#x} ({object}, held by {held_by})",
                        args[0]
                    )
                }
                (None, true) => format!("waits in futex {:#x}", args[0]),
                (Some(object), false) if holders.is_empty() => format!("waits on {object}"),
                (Some(object), false) => format!("waits for {object}, held by {held_by}"),
                (None, false) => "waits on a lock or channel labkit does not trace".to_owned(),
            };
        }
        if let Some(wait) = self.pipes.iter().find(|w| w.key == thread.key()) {
            let fd = thread.now.syscall.map_or(0, |s| s.args[0]);
            let (verb, role, way) = if wait.reading {
                ("reads", "written by", "from")
            } else {
                ("writes", "read by", "to")
            };
            return match (&wait.peer, ids) {
                (Some(peer), true) => format!(
                    "{verb} pipe fd {fd}, {role} {} (pid {})",
                    self.names.process(peer.pid, &peer.process),
                    peer.pid
                ),
                (Some(peer), false) => format!(
                    "{verb} a pipe {way} {}",
                    self.names.process(peer.pid, &peer.process)
                ),
                (None, true) => format!("{verb} pipe fd {fd}, held by no other process"),
                (None, false) => format!("{verb} a pipe held by no other process"),
            };
        }
        if let Some(args) = thread
            .syscall_in(nr::READ)
            .or_else(|| thread.syscall_in(nr::WRITE))
        {
            let verb = if thread.syscall_in(nr::READ).is_some() {
                "reads"
            } else {
                "writes"
            };
            let target = process_tree::fd_target(pid, args[0]).unwrap_or_default();
            if ids {
                return format!("{verb} fd {} ({target})", args[0]);
            }
            let what = match target.as_str() {
                socket if socket.starts_with("socket:") => "a socket",
                pipe if pipe.starts_with("pipe:") => "a pipe",
                path if path.starts_with('/') => path,
                _ => "a file",
            };
            return format!("{verb} {what}");
        }
        if thread.syscall_in(nr::SLEEP).is_some() {
            return "sleeps (thread::sleep)".to_owned();
        }
        if let Some(args) = thread.syscall_in(nr::WAIT_CHILD) {
            return match args[0] as i32 {
                pid if pid > 0 && thread.syscall_in(&nr::WAIT_CHILD[..1]).is_some() => {
                    if ids {
                        format!("waits in wait() for child pid {pid} to exit")
                    } else {
                        let child = self.names.process(pid as u32, "a child process");
                        format!("waits in wait() for {child} to exit")
                    }
                }
                _ => "waits in wait() for a child process to exit".to_owned(),
            };
        }
        if thread.syscall_in(nr::POLL).is_some() {
            return "waits in poll".to_owned();
        }
        let wchan = match thread.now.wchan.as_str() {
            "" | "0" => String::new(),
            wchan => format!(" ({wchan})"),
        };
        match thread.now.syscall {
            Some(syscall) if syscall.number >= 0 => {
                format!("is in system call {}{wchan}", syscall.number)
            }
            _ if thread.now.state == 'R' => "runs in user space".to_owned(),
            _ if wchan.is_empty() => "is blocked outside any system call".to_owned(),
            _ => format!("is blocked in the kernel{wchan}"),
        }
    }

    fn details(&self, interval: Duration) -> String {
        let mut details = String::new();
        let processes: HashSet<u32> = self.threads.iter().map(|t| t.now.pid).collect();
        let _ = write!(
            details,
            "{}, {}, sampled {} ms apart",
            plural(self.threads.len(), "thread"),
            plural(processes.len(), "process"),
            interval.as_millis()
        );
        match self.replay.last_ns {
            Some(last) => {
                let _ = writeln!(
                    details,
                    "; the last trace event was {} ago",
                    age(self.now_ns.saturating_sub(last))
                );
            }
            None => details.push_str("; no trace events\n"),
        }
        // The learner's threads (those the trace saw) first; the kernel's
        // and the runtime's own threads after them.
        let mut threads: Vec<&Thread> = self.threads.iter().collect();
        threads.sort_by_key(|t| !self.replay.recent.contains_key(&t.key()));
        for thread in threads {
            let key = thread.key();
            let _ = writeln!(
                details,
                "- {}: pid {} ({}), tid {}, {}, {}; CPU {:.0} ms ({:.0}%)",
                self.names.of(key),
                thread.now.pid,
                thread.now.process,
                thread.now.tid,
                state_word(thread.now.state),
                self.activity(thread, true),
                thread.cpu_ms,
                thread.cpu_percent.min(100.0)
            );
            self.trace_lines(&mut details, key);
        }
        if self.threads.is_empty() {
            details.push_str("no learner thread could be sampled; from the trace:\n");
            let mut keys: Vec<Key> = self.replay.recent.keys().copied().collect();
            keys.sort();
            for key in keys {
                let _ = writeln!(
                    details,
                    "- {}: pid {}, tid {}",
                    self.names.of(key),
                    key.0,
                    key.1
                );
                self.trace_lines(&mut details, key);
            }
        }
        details
    }

    /// The trace's view of one thread: what it waits for, holds, last did.
    fn trace_lines(&self, details: &mut String, key: Key) {
        if let Some(lock) = self.replay.lock_waits.get(&key) {
            let _ = writeln!(details, "    waits for lock {}", lock.name);
        }
        if let Some(wait) = self.replay.cond_waits.get(&key) {
            let _ = writeln!(details, "    waits on condition variable {}", wait.condvar);
        }
        let held = self.replay.held_by(key);
        if !held.is_empty() {
            let _ = writeln!(details, "    holds {}", held.join(", "));
        }
        if let Some(recent) = self.replay.recent.get(&key) {
            let events: Vec<String> = recent
                .iter()
                .map(|e| {
                    format!(
                        "{} {} ({} ago)",
                        e.what.kind(),
                        e.name,
                        age(self.now_ns.saturating_sub(e.t_ns))
                    )
                })
                .collect();
            let _ = writeln!(details, "    last events: {}", events.join("; "));
        }
    }
}

/// Whether `waiter`, blocked in wait4 or waitid, waits for the child `pid`
/// (or for any child).
fn wait_target(waiter: &Thread, pid: u32) -> bool {
    let Some(syscall) = waiter.now.syscall else {
        return false;
    };
    let target = match syscall.number {
        // waitid(idtype, id, …): P_PID names one child; P_ALL any.
        n if nr::WAIT_CHILD.get(1) == Some(&n) => match syscall.args[0] as u32 {
            libc::P_PID => syscall.args[1] as i32,
            _ => -1,
        },
        // wait4(pid, …): a positive pid names one child.
        _ => syscall.args[0] as i32,
    };
    target <= 0 || target as u32 == pid
}

/// How a pipe wait reads before its peer's name: `reading a pipe from`.
fn direction(reading: bool) -> &'static str {
    if reading {
        "reading a pipe from"
    } else {
        "writing a pipe to"
    }
}

/// The thread blocked on a pipe, if it is.
fn pipe_wait(thread: &Thread) -> Option<PipeWait> {
    if !matches!(thread.now.state, 'S' | 'D') {
        return None;
    }
    let (args, reading) = match thread.syscall_in(nr::READ) {
        Some(args) => (args, true),
        None => (thread.syscall_in(nr::WRITE)?, false),
    };
    let target = process_tree::fd_target(thread.now.pid, args[0])?;
    target.starts_with("pipe:").then(|| PipeWait {
        key: thread.key(),
        reading,
        peer: process_tree::pipe_peer(thread.now.pid, args[0]),
    })
}

/// A cycle in a wait-for graph (each thread to the threads it waits for).
fn find_cycle(graph: &BTreeMap<Key, Vec<Key>>) -> Option<Vec<Key>> {
    fn visit(
        node: Key,
        graph: &BTreeMap<Key, Vec<Key>>,
        path: &mut Vec<Key>,
        done: &mut HashSet<Key>,
    ) -> Option<Vec<Key>> {
        if let Some(at) = path.iter().position(|&k| k == node) {
            return Some(path[at..].to_vec());
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for &next in graph.get(&node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = HashSet::new();
    graph
        .keys()
        .find_map(|&start| visit(start, graph, &mut Vec::new(), &mut done))
}

fn state_word(state: char) -> String {
    let word = match state {
        'R' => "running",
        'S' => "sleeping",
        'D' => "in uninterruptible sleep",
        'T' | 't' => "stopped",
        'Z' => "a zombie",
        'I' => "idle",
        _ => "in state",
    };
    format!("{word} ({state})")
}

fn plural(count: usize, noun: &str) -> String {
    match (count, noun.ends_with('s')) {
        (1, _) => format!("1 {noun}"),
        (_, true) => format!("{count} {noun}es"),
        (_, false) => format!("{count} {noun}s"),
    }
}

fn age(ns: u64) -> String {
    if ns >= 1_000_000_000 {
        format!("{:.1} s", ns as f64 / 1e9)
    } else {
        format!("{:.0} ms", ns as f64 / 1e6)
    }
}

/// Names the hang from the observed threads and the trace; split from
/// [`diagnose`] so the rules can be tested on a given trace.
fn classify(
    threads: &[Thread],
    events: &[Event],
    runner: Option<u32>,
    window_start_ns: u64,
    interval: Duration,
) -> Diagnosis {
    let replay = Replay::new(events);
    let names = Names::new(threads, &replay, runner);
    let scene = Scene {
        threads,
        names,
        pipes: threads.iter().filter_map(pipe_wait).collect(),
        replay,
        window_start_ns,
        now_ns: monotonic_ns(),
    };
    // A deadlock and condition-variable waits show in the trace, which
    // dates them; the others name the threads /proc caught, to mark.
    let (summary, culprit) = match scene.deadlock() {
        Some(cycle) => (scene.deadlock_summary(cycle), None),
        None => scene
            .spinning_summary()
            .or_else(|| scene.child_wait_summary())
            .or_else(|| scene.pipe_summary())
            .map(|(summary, culprit)| (summary, Some(culprit)))
            .unwrap_or_else(|| {
                let summary = scene
                    .condvar_summary()
                    .unwrap_or_else(|| scene.fallback_summary());
                (summary, None)
            }),
    };
    Diagnosis {
        summary,
        details: scene.details(interval),
        culprit,
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read};
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, mpsc};
    use std::thread;

    use labkit::sync::{Condvar, Mutex};

    use super::*;
    use crate::trace::Trace;

    /// The numbers libc gives are those of x86_64's syscall table.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn syscall_numbers_are_x86_64s() {
        assert_eq!(nr::READ, [0, 19]);
        assert_eq!(nr::WRITE, [1, 20]);
        assert_eq!(nr::FUTEX, [202]);
        assert_eq!(nr::SLEEP, [35, 230]);
        assert_eq!(nr::WAIT_CHILD, [61, 247]);
        assert_eq!(nr::POLL, [7, 23, 232, 270, 271, 281, 441]);
    }

    /// Names the scenario a re-run of this test binary acts out.
    const SCENARIO: &str = "CONCLAB_HANG_SCENARIO";
    const NONCE: &str = "hang-nonce";
    const INTERVAL: Duration = Duration::from_millis(300);

    fn in_scenario(name: &str) -> bool {
        std::env::var(SCENARIO).as_deref() == Ok(name)
    }

    fn in_any_scenario() -> bool {
        std::env::var_os(SCENARIO).is_some()
    }

    /// A scenario running in a fresh process (this test binary, re-run with
    /// only that test selected): labkit reads its trace settings once per
    /// process. Killed with everything it started when dropped, so a failed
    /// assertion leaves nothing behind.
    struct Scenario {
        child: Child,
        /// The scenario's stdout, line by line (read by a thread, so that a
        /// scenario that never prints fails the test instead of hanging it).
        lines: mpsc::Receiver<String>,
        trace: PathBuf,
    }

    impl Scenario {
        fn start(name: &str) -> Scenario {
            let trace = std::env::temp_dir()
                .join(format!("conclab-hang-{}-{name}.jsonl", std::process::id()));
            let _ = std::fs::remove_file(&trace);
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args([
                    &format!("hang::tests::{name}"),
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(SCENARIO, name)
                .env(conclab_wire::EnvVars::CONCLAB_TRACE, &trace)
                .env(conclab_wire::EnvVars::CONCLAB_TRACE_NONCE, NONCE)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let stdout = BufReader::new(child.stdout.take().unwrap());
            let (sender, lines) = mpsc::channel();
            thread::spawn(move || {
                for line in stdout.lines().map_while(Result::ok) {
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
            Scenario {
                child,
                lines,
                trace,
            }
        }

        fn pid(&self) -> u32 {
            self.child.id()
        }

        /// What follows `marker` in the first line the scenario prints with
        /// it (libtest may print `test … ` before it on the same line).
        fn line(&self, marker: &str) -> String {
            loop {
                let line = self
                    .lines
                    .recv_timeout(Duration::from_secs(20))
                    .unwrap_or_else(|e| panic!("no {marker:?} from the scenario: {e}"));
                if let Some(at) = line.find(marker) {
                    return line[at + marker.len()..].trim().to_owned();
                }
            }
        }

        fn events(&self) -> Vec<Event> {
            Trace::read(&self.trace, NONCE).unwrap().events
        }

        fn diagnose(&self) -> Diagnosis {
            diagnose(&[self.pid()], &self.events(), INTERVAL)
        }
    }

    impl Drop for Scenario {
        fn drop(&mut self) {
            process_tree::kill_tree(&[], &[self.child.id()]);
            let _ = self.child.wait();
            let _ = std::fs::remove_file(&self.trace);
        }
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether every thread `tids` of `pid` is blocked in one of `numbers`.
    fn all_in_syscall(pid: u32, tids: &[u32], numbers: &[i64]) -> bool {
        let threads = process_tree::sample(&[pid]);
        tids.iter().all(|tid| {
            threads
                .iter()
                .any(|t| t.tid == *tid && t.syscall.is_some_and(|s| numbers.contains(&s.number)))
        })
    }

    /// Pids, tids and addresses belong in the details, never the summary.
    fn assert_no_ids(summary: &str, pids: &[u32]) {
        for secret in ["pid", "tid", "futex", "0x"] {
            assert!(!summary.contains(secret), "{secret:?} in {summary:?}");
        }
        for pid in pids {
            assert!(
                !summary.contains(&pid.to_string()),
                "pid {pid} in {summary:?}"
            );
        }
    }

    #[test]
    fn scenario_deadlock() {
        if !in_scenario("scenario_deadlock") {
            return;
        }
        let accounts = Arc::new([
            Mutex::named("account[1]", 100u64),
            Mutex::named("account[2]", 100u64),
        ]);
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let workers: Vec<_> = [(1, 0, 1), (2, 1, 0)]
            .into_iter()
            .map(|(n, first, second)| {
                let (accounts, barrier) = (Arc::clone(&accounts), Arc::clone(&barrier));
                thread::Builder::new()
                    .name(format!("worker-{n}"))
                    .spawn(move || {
                        let mut from = accounts[first].lock().unwrap();
                        barrier.wait();
                        let mut to = accounts[second].lock().unwrap();
                        *from -= 1;
                        *to += 1;
                    })
                    .unwrap()
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
    }

    #[test]
    fn a_lock_order_deadlock_is_named_with_its_locks() {
        if in_any_scenario() {
            return;
        }
        let scenario = Scenario::start("scenario_deadlock");
        let mut waiters = Vec::new();
        wait_until("both workers to wait for their second lock", || {
            waiters = scenario
                .events()
                .iter()
                .filter(|e| matches!(e.what, What::LockWait { .. }) && !e.held().is_empty())
                .map(|e| e.tid)
                .collect();
            waiters.len() == 2 && all_in_syscall(scenario.pid(), &waiters, nr::FUTEX)
        });
        let diagnosis = scenario.diagnose();
        let one = "deadlock: worker-1 waits for account[2], held by worker-2, \
                   which waits for account[1], held by worker-1";
        assert_eq!(diagnosis.summary, one, "{}", diagnosis.details);
        // /proc agrees: each worker sleeps on the futex of the lock it waits for.
        assert!(
            diagnosis.details.contains("(account[2], held by worker-2)")
                && diagnosis.details.contains("(account[1], held by worker-1)"),
            "{}",
            diagnosis.details
        );
        assert!(diagnosis.details.contains("holds account[1]"));
    }

    #[test]
    fn scenario_spin() {
        if !in_scenario("scenario_spin") {
            return;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let spinner = thread::Builder::new()
            .name("worker-3".into())
            .spawn(move || {
                labkit::in_span("start", 0, || ());
                while !flag.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
            .unwrap();
        println!("scenario-ready");
        spinner.join().unwrap();
    }

    #[test]
    fn a_spinning_thread_is_named() {
        if in_any_scenario() {
            return;
        }
        let scenario = Scenario::start("scenario_spin");
        scenario.line("scenario-ready");
        let diagnosis = scenario.diagnose();
        assert!(
            diagnosis.summary.starts_with("thread worker-3 spins (")
                && diagnosis.summary.ends_with("% CPU, no progress)"),
            "{diagnosis:?}"
        );
        // Marked where the spinner last did something it traced.
        let events = scenario.events();
        let start = events
            .iter()
            .find(|e| e.what == What::SpanExit && e.thread == "worker-3")
            .expect("worker-3 traced its start");
        let moment = moment(&events, &diagnosis).expect("a spin is drawn");
        assert_eq!(moment.at_ns, start.t_ns);
        assert_eq!(
            moment.label,
            "thread worker-3 spins from here, nothing else moves"
        );
        assert_eq!(moment.threads, [(start.pid, start.tid)]);
    }

    #[test]
    fn scenario_pipe() {
        if !in_scenario("scenario_pipe") {
            return;
        }
        let mut child = labkit::in_span("start", 0, || {
            Command::new("sleep")
                .arg("30")
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        });
        println!("scenario-sleep-pid {}", child.id());
        let mut output = String::new();
        let _ = child.stdout.take().unwrap().read_to_string(&mut output);
        let _ = child.wait();
    }

    #[test]
    fn a_reader_blocked_on_a_pipe_names_the_writer() {
        if in_any_scenario() {
            return;
        }
        let scenario = Scenario::start("scenario_pipe");
        let sleep: u32 = scenario.line("scenario-sleep-pid").parse().unwrap();
        wait_until("the scenario to read the pipe", || {
            process_tree::sample(&[scenario.pid()])
                .iter()
                .any(|t| t.syscall.is_some_and(|s| nr::READ.contains(&s.number)))
        });
        let diagnosis = scenario.diagnose();
        assert!(
            diagnosis
                .summary
                .ends_with(" blocked reading a pipe from sleep"),
            "{diagnosis:?}"
        );
        assert_no_ids(&diagnosis.summary, &[scenario.pid(), sleep]);
        assert!(
            diagnosis.details.contains(&format!("pid {sleep} (sleep)"))
                && diagnosis
                    .details
                    .contains(&format!("written by sleep (pid {sleep})")),
            "the child is listed too, with its pid: {}",
            diagnosis.details
        );
        // Marked where the reader last did something it traced, with the
        // writer's lane next.
        let events = scenario.events();
        let start = events
            .iter()
            .find(|e| e.what == What::SpanExit)
            .expect("the reader traced its start");
        let moment = moment(&events, &diagnosis).expect("a pipe hang is drawn");
        assert_eq!(moment.at_ns, start.t_ns);
        assert_eq!(
            moment.label,
            format!("{} blocks reading a pipe from sleep here", start.thread)
        );
        assert_eq!(moment.threads, [(start.pid, start.tid), (sleep, sleep)]);
    }

    #[test]
    fn scenario_wait_with_stdin_open() {
        if !in_scenario("scenario_wait_with_stdin_open") {
            return;
        }
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        println!("scenario-cat-pid {}", child.id());
        // Kept open: cat never sees the end of its input.
        let _input = child.stdin.take().unwrap();
        let _ = child.wait();
    }

    #[test]
    fn a_wait_for_a_child_reading_its_open_stdin_is_named_as_a_wait() {
        if in_any_scenario() {
            return;
        }
        let scenario = Scenario::start("scenario_wait_with_stdin_open");
        let cat: u32 = scenario.line("scenario-cat-pid").parse().unwrap();
        wait_until("the scenario to wait and cat to read", || {
            process_tree::sample(&[scenario.pid()]).iter().any(|t| {
                t.syscall
                    .is_some_and(|s| nr::WAIT_CHILD.contains(&s.number))
            }) && all_in_syscall(cat, &[cat], nr::READ)
        });
        let diagnosis = scenario.diagnose();
        assert!(
            diagnosis.summary.contains(
                " waits in wait() for cat to exit, but cat is blocked reading its input, which stays open while the waiting process holds its write end: close the child's stdin (drop the ChildStdin) before wait()"
            ),
            "{diagnosis:?}"
        );
        assert_no_ids(&diagnosis.summary, &[scenario.pid(), cat]);
        assert!(
            diagnosis
                .details
                .contains(&format!("waits in wait() for child pid {cat} to exit")),
            "{}",
            diagnosis.details
        );
    }

    #[test]
    fn scenario_pipe_both_ways() {
        if !in_scenario("scenario_pipe_both_ways") {
            return;
        }
        // Writes 1 MiB to cat before reading any of it back: cat blocks
        // writing its full stdout, then this blocks writing cat's stdin.
        let mut cat = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        println!("scenario-cat-pid {}", cat.id());
        let mut input = cat.stdin.take().unwrap();
        let _ = std::io::Write::write_all(&mut input, &vec![b'x'; 1 << 20]);
        drop(input);
        let _ = cat.wait();
    }

    #[test]
    fn a_pipe_blocked_both_ways_is_a_deadlock_not_a_missing_reader() {
        if in_any_scenario() {
            return;
        }
        let scenario = Scenario::start("scenario_pipe_both_ways");
        let cat: u32 = scenario.line("scenario-cat-pid").parse().unwrap();
        wait_until("both ends to block writing", || {
            let writing = |pid| {
                process_tree::sample(&[pid])
                    .iter()
                    .any(|t| t.syscall.is_some_and(|s| nr::WRITE.contains(&s.number)))
            };
            writing(scenario.pid()) && writing(cat)
        });
        let diagnosis = scenario.diagnose();
        assert!(
            diagnosis.summary.contains(
                "blocked writing a pipe to cat, which is blocked writing a pipe to it: \
                 each waits for the other to read a full pipe"
            ),
            "{diagnosis:?}"
        );
        assert_no_ids(&diagnosis.summary, &[scenario.pid(), cat]);
        assert!(
            !diagnosis.summary.contains("nobody reads it"),
            "{diagnosis:?}"
        );
    }

    #[test]
    fn scenario_channel_kept_open() {
        if !in_scenario("scenario_channel_kept_open") {
            return;
        }
        let (sender, receiver) = mpsc::channel::<u64>();
        let worker = thread::Builder::new()
            .name("worker-1".into())
            .spawn(move || {
                labkit::in_span("parse", 0, || ());
                for _ in receiver {}
            })
            .unwrap();
        // `sender` stays alive here, so the worker's loop never ends.
        worker.join().unwrap();
        drop(sender);
    }

    #[test]
    fn threads_blocked_on_untraced_futexes_point_at_a_channel_left_open() {
        if in_any_scenario() {
            return;
        }
        let scenario = Scenario::start("scenario_channel_kept_open");
        wait_until("the worker to wait for its channel", || {
            let tids: Vec<u32> = scenario
                .events()
                .iter()
                .filter(|e| e.what == What::SpanExit)
                .map(|e| e.tid)
                .collect();
            !tids.is_empty() && all_in_syscall(scenario.pid(), &tids, nr::FUTEX)
        });
        let diagnosis = scenario.diagnose();
        assert!(
            diagnosis.summary.starts_with(
                "all threads are blocked, none on a labkit lock or condition variable: \
                 most often a receiver waiting on a channel that never closes, because a \
                 Sender (or a clone of one) is still alive somewhere, or a sender blocked \
                 on a full bounded channel that nobody reads any more; blocked: worker-1"
            ),
            "{diagnosis:?}"
        );
    }

    #[test]
    fn scenario_condvar() {
        if !in_scenario("scenario_condvar") {
            return;
        }
        let queue = Arc::new((
            Mutex::named("queue", Vec::<u64>::new()),
            Condvar::named("not_empty"),
        ));
        let consumer = thread::Builder::new()
            .name("worker-2".into())
            .spawn(move || {
                let (items, not_empty) = &*queue;
                let mut items = items.lock().unwrap();
                while items.is_empty() {
                    items = not_empty.wait(items).unwrap();
                }
            })
            .unwrap();
        consumer.join().unwrap();
    }

    #[test]
    fn a_condition_variable_nobody_notifies_is_named() {
        if in_any_scenario() {
            return;
        }
        let scenario = Scenario::start("scenario_condvar");
        wait_until("the consumer to wait", || {
            let tids: Vec<u32> = scenario
                .events()
                .iter()
                .filter(|e| matches!(e.what, What::CondWait { .. }))
                .map(|e| e.tid)
                .collect();
            !tids.is_empty() && all_in_syscall(scenario.pid(), &tids, nr::FUTEX)
        });
        let diagnosis = scenario.diagnose();
        assert_eq!(
            diagnosis.summary,
            "worker-2 waits on condition variable not_empty that nobody notifies",
            "{}",
            diagnosis.details
        );
        assert!(
            diagnosis.details.contains("(not_empty)"),
            "the futex is the condvar's: {}",
            diagnosis.details
        );
    }

    #[test]
    fn scenario_condvar_unnamed() {
        if !in_scenario("scenario_condvar_unnamed") {
            return;
        }
        let queue = Arc::new((
            Mutex::named("queue", Vec::<u64>::new()),
            Condvar::named("not_empty"),
        ));
        // A thread spawned without a name shows its parent's name in /proc:
        // libtest's, here. Give this one the process's, as a cell's has.
        let comm =
            std::ffi::CString::new(std::fs::read_to_string("/proc/self/comm").unwrap().trim())
                .unwrap();
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes,
        // which /proc's comm is.
        unsafe { libc::prctl(libc::PR_SET_NAME, comm.as_ptr()) };
        // An unnamed thread the trace never sees, blocked on a channel.
        let (_keep, never) = mpsc::channel::<()>();
        let idle = thread::spawn(move || never.recv());
        let consumer = thread::spawn(move || {
            let (items, not_empty) = &*queue;
            let mut items = items.lock().unwrap();
            while items.is_empty() {
                items = not_empty.wait(items).unwrap();
            }
        });
        consumer.join().unwrap();
        let _ = idle.join();
    }

    #[test]
    fn unnamed_threads_are_numbered_in_the_summary_and_their_tids_kept_for_the_details() {
        if in_any_scenario() {
            return;
        }
        let scenario = Scenario::start("scenario_condvar_unnamed");
        let mut waiter = None;
        wait_until("the consumer to wait", || {
            waiter = scenario
                .events()
                .iter()
                .find(|e| matches!(e.what, What::CondWait { .. }))
                .map(|e| e.tid);
            waiter.is_some_and(|tid| all_in_syscall(scenario.pid(), &[tid], nr::FUTEX))
        });
        let waiter = waiter.unwrap();
        let diagnosis = scenario.diagnose();
        assert_eq!(
            diagnosis.summary,
            "unnamed thread 1 waits on condition variable not_empty that nobody notifies",
            "{}",
            diagnosis.details
        );
        let tids: Vec<u32> = process_tree::sample(&[scenario.pid()])
            .iter()
            .map(|t| t.tid)
            .collect();
        assert_no_ids(&diagnosis.summary, &tids);
        assert!(
            diagnosis
                .details
                .lines()
                .any(|line| line.starts_with("- unnamed thread 1:")
                    && line.contains(&format!("tid {waiter},"))),
            "the details keep the tid: {}",
            diagnosis.details
        );
        assert!(
            diagnosis.details.contains("unnamed thread 2"),
            "the untraced thread takes the next number: {}",
            diagnosis.details
        );
    }

    #[test]
    fn a_sleeping_process_is_slow_rather_than_stuck() {
        if in_any_scenario() {
            return;
        }
        let child = Command::new("sleep").arg("30").spawn().unwrap();
        struct Reaped(Child);
        impl Drop for Reaped {
            fn drop(&mut self) {
                process_tree::kill_tree(&[], &[self.0.id()]);
                let _ = self.0.wait();
            }
        }
        let child = Reaped(child);
        let pid = child.0.id();
        wait_until("sleep to sleep", || all_in_syscall(pid, &[pid], nr::SLEEP));
        // As the code runner: its first thread is the cell's, `main`.
        let diagnosis = diagnose(&[pid], &[], INTERVAL);
        assert_eq!(
            diagnosis.summary,
            "main is sleeping (thread::sleep): the cell is slow rather than stuck"
        );
    }

    /// A labkit-style trace line; a lock event not given its `mode` and
    /// `held` is of a mutex taken holding nothing.
    fn event(seq: u64, tid: u32, thread: &str, kind: &str, name: &str, fields: &str) -> String {
        let line = format!(
            r#"{{"v":{version},"nonce":"n","seq":{seq},"t_ns":{},"pid":7,"tid":{tid},"thread":"{thread}","kind":"{kind}","name":"{name}","id":null{fields}}}"#,
            1000 + seq,
            version = labkit::trace::FORMAT_VERSION
        );
        let mut line: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&line).unwrap();
        if ["lock_wait", "lock_acquired", "lock_released"].contains(&kind) {
            line.entry("mode").or_insert("exclusive".into());
            line.entry("held").or_insert(serde_json::json!([]));
        }
        serde_json::Value::Object(line).to_string()
    }

    fn from_trace(lines: &[String]) -> Diagnosis {
        let trace = Trace::parse(&(lines.join("\n") + "\n"), "n");
        assert!(trace.rejected.is_empty(), "{:?}", trace.rejected);
        classify(&[], &trace.events, None, u64::MAX, INTERVAL)
    }

    #[test]
    fn the_trace_alone_shows_a_deadlock_cycle() {
        let a = r#","lock":16"#;
        let b = r#","lock":32"#;
        let held_a = r#","lock":32,"held":[{"name":"account[1]","lock":16}]"#;
        let held_b = r#","lock":16,"held":[{"name":"account[2]","lock":32}]"#;
        let diagnosis = from_trace(&[
            event(0, 12, "worker-2", "lock_acquired", "account[2]", b),
            event(1, 11, "worker-1", "lock_acquired", "account[1]", a),
            event(2, 12, "worker-2", "lock_wait", "account[1]", held_b),
            event(3, 11, "worker-1", "lock_wait", "account[2]", held_a),
        ]);
        assert_eq!(
            diagnosis.summary,
            "deadlock: worker-1 waits for account[2], held by worker-2, \
             which waits for account[1], held by worker-1"
        );
        assert!(
            diagnosis.details.contains("holds account[1]"),
            "{}",
            diagnosis.details
        );
    }

    #[test]
    fn a_deadlock_is_drawn_from_the_moment_its_wait_cycle_closed() {
        let held_a = r#","lock":32,"held":[{"name":"account[1]","lock":16}]"#;
        let held_b = r#","lock":16,"held":[{"name":"account[2]","lock":32}]"#;
        let lines = [
            event(
                0,
                12,
                "worker-2",
                "lock_acquired",
                "account[2]",
                r#","lock":32"#,
            ),
            event(
                1,
                11,
                "worker-1",
                "lock_acquired",
                "account[1]",
                r#","lock":16"#,
            ),
            event(2, 12, "worker-2", "lock_wait", "account[1]", held_b),
            event(3, 11, "worker-1", "lock_wait", "account[2]", held_a),
            event(4, 13, "main", "span_exit", "setup", ""),
        ];
        let trace = Trace::parse(&(lines.join("\n") + "\n"), "n");
        let diagnosis = from_trace(&lines);
        let moment = moment(&trace.events, &diagnosis).expect("threads wait");
        assert_eq!(moment.at_ns, 1003, "when worker-1 began to wait");
        assert_eq!(moment.threads, [(7, 11), (7, 12)]);
        assert_eq!(moment.label, "the wait cycle closes: no thread can go on");
        assert_eq!((moment.from_ns, moment.to_ns), (1000, 1004));
    }

    #[test]
    fn a_culprit_is_marked_at_its_last_event_else_its_process_else_the_trace() {
        let lines = [
            event(0, 11, "worker-1", "span_exit", "parse", ""),
            event(1, 7, "main", "span_exit", "send", ""),
            // Another process's, after every event of process 7.
            event(2, 8, "main", "span_exit", "task", "").replace(r#""pid":7"#, r#""pid":8"#),
        ];
        let trace = Trace::parse(&(lines.join("\n") + "\n"), "n");
        let marked = |threads: Vec<Key>, process_stopped| {
            let diagnosis = Diagnosis {
                summary: String::new(),
                details: String::new(),
                culprit: Some(Culprit {
                    threads,
                    label: "main blocks writing a pipe to labkit-worker here".into(),
                    process_stopped,
                }),
            };
            moment(&trace.events, &diagnosis).expect("a culprit is drawn")
        };
        let moment = marked(vec![(7, 11), (8, 8)], true);
        assert_eq!(moment.at_ns, 1000, "worker-1's last event");
        assert_eq!(moment.threads, [(7, 11), (8, 8)]);
        assert_eq!(
            moment.label,
            "main blocks writing a pipe to labkit-worker here"
        );
        assert_eq!((moment.from_ns, moment.to_ns), (1000, 1002));
        // A thread that traced nothing: its process's last event, when the
        // process stopped with it; else the trace's.
        assert_eq!(marked(vec![(7, 12)], true).at_ns, 1001);
        assert_eq!(marked(vec![(7, 12)], false).at_ns, 1002);
    }

    fn sampled(pid: u32, tid: u32, process: &str, name: &str) -> Thread {
        Thread {
            now: ThreadSample {
                pid,
                tid,
                process: process.into(),
                name: name.into(),
                state: 'S',
                wchan: String::new(),
                syscall: None,
                cpu_ticks: 0,
            },
            cpu_ms: 0.0,
            cpu_percent: 0.0,
            running_before: false,
        }
    }

    #[test]
    fn processes_and_threads_are_named_without_pids() {
        // Above any pid_max: /proc knows none of them, so pids order them.
        let (runner, one, two, sleep) = (10_000_001, 10_000_002, 10_000_003, 10_000_004);
        let threads = [
            sampled(runner, runner, "conclab-kernel", "conclab-kernel"),
            sampled(runner, runner + 10, "conclab-kernel", "conclab-relay"),
            sampled(runner, runner + 11, "conclab-kernel", "conclab-relay"),
            sampled(runner, runner + 12, "conclab-kernel", "worker-1"),
            sampled(two, two, "labkit-worker", "labkit-worker"),
            sampled(two, two + 10, "labkit-worker", "worker-1"),
            sampled(one, one, "labkit-worker", "labkit-worker"),
            sampled(sleep, sleep, "sleep", "sleep"),
        ];
        let mut threads = threads.to_vec();
        // Two unnamed threads of the cell: one traced, one not.
        threads.push(sampled(
            runner,
            runner + 13,
            "conclab-kernel",
            "conclab-kernel",
        ));
        threads.push(sampled(
            runner,
            runner + 14,
            "conclab-kernel",
            "conclab-kernel",
        ));
        let mut replay = Replay::default();
        replay.names.insert((one, one), "main".into());
        replay
            .names
            .insert((runner, runner + 14), "unnamed thread 1".into());
        let names = Names::new(&threads, &replay, Some(runner));
        let name = |key| names.of(key);
        assert_eq!(name((runner, runner)), "main");
        assert_eq!(
            name((one, one)),
            "labkit-worker 1",
            "labkit's main of a worker"
        );
        assert_eq!(name((two, two)), "labkit-worker 2");
        assert_eq!(name((sleep, sleep)), "sleep");
        assert_eq!(name((runner, runner + 10)), "conclab-relay");
        assert_eq!(name((runner, runner + 11)), "conclab-relay #2");
        assert_eq!(name((runner, runner + 12)), "worker-1");
        assert_eq!(name((two, two + 10)), "worker-1 in labkit-worker 2");
        assert_eq!(name((runner, runner + 14)), "unnamed thread 1");
        assert_eq!(name((runner, runner + 13)), "unnamed thread 2");
        assert_eq!(
            names.process(runner, "conclab-kernel"),
            "the cell's process"
        );
        assert_eq!(names.process(one, "labkit-worker"), "labkit-worker 1");
        assert_eq!(names.process(42, "cat"), "cat", "not the learner's");
        for thread in &threads {
            assert!(!name(thread.key()).contains("1000000"), "{thread:?}");
        }
    }

    #[test]
    fn locking_a_lock_twice_is_a_deadlock_of_one_thread() {
        let diagnosis = from_trace(&[
            event(
                0,
                7,
                "main",
                "lock_acquired",
                "total",
                r#","lock":16,"held":[]"#,
            ),
            event(
                1,
                7,
                "main",
                "lock_wait",
                "total",
                r#","lock":16,"held":[]"#,
            ),
        ]);
        assert_eq!(
            diagnosis.summary,
            "deadlock: main waits for total, which it already holds"
        );
    }

    #[test]
    fn a_wait_that_ended_is_no_deadlock() {
        let diagnosis = from_trace(&[
            event(0, 11, "worker-1", "lock_acquired", "a", r#","lock":16"#),
            event(1, 12, "worker-2", "lock_wait", "a", r#","lock":16"#),
            event(2, 11, "worker-1", "lock_released", "a", r#","lock":16"#),
            event(3, 12, "worker-2", "lock_acquired", "a", r#","lock":16"#),
            event(4, 11, "worker-1", "lock_wait", "a", r#","lock":16"#),
            event(5, 12, "worker-2", "lock_released", "a", r#","lock":16"#),
            event(6, 11, "worker-1", "lock_acquired", "a", r#","lock":16"#),
        ]);
        assert_eq!(diagnosis.summary, "no thread made progress");
    }

    #[test]
    fn a_condition_wait_that_was_woken_is_not_reported() {
        let wait = r#","condvar":48,"lock":{"name":"queue","lock":16}"#;
        let woken = r#","condvar":48,"spurious":false"#;
        let lines = [
            event(0, 11, "worker-1", "cond_wait", "not_empty", wait),
            event(1, 12, "worker-2", "cond_wait", "not_full", wait),
            event(2, 11, "worker-1", "cond_woken", "not_empty", woken),
        ];
        assert_eq!(
            from_trace(&lines).summary,
            "worker-2 waits on condition variable not_full that nobody notifies"
        );
    }

    #[test]
    fn every_waiter_is_named_with_its_condition_variable() {
        let wait = r#","condvar":48,"lock":{"name":"queue","lock":16}"#;
        let lines = [
            event(0, 11, "consumer", "cond_wait", "not_empty", wait),
            event(1, 12, "producer-1", "cond_wait", "not_full", wait),
            event(2, 13, "producer-2", "cond_wait", "not_full", wait),
        ];
        assert_eq!(
            from_trace(&lines).summary,
            "consumer waits on condition variable not_empty that nobody notifies; producer-1, producer-2 wait on not_full, unnotified too"
        );
    }
}
