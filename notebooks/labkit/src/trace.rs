//! The trace: what a cell's threads and processes did, for the checker.
//!
//! Off unless the checker sets [`TRACE_ENV`] to a file path (and
//! [`NONCE_ENV`] to this run's nonce); then every instrumented point appends
//! one JSON line to that file with a single `write(2)` on an `O_APPEND`
//! descriptor, so lines from many threads and processes never interleave and
//! a killed process leaves a readable trace up to its last event. Each line
//! is an [`Event`], the type the checker reads back; `TRACE.md` beside this
//! crate describes it in words, and [`FORMAT_VERSION`] changes when it does.
//!
//! Off, an instrumented point costs one check of a value initialised once.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};

pub use crate::event::{Event, LockMode, LockRef, What};

/// The trace format's version, in every event's `"v"`.
pub const FORMAT_VERSION: u64 = 3;
/// Names the file events are appended to.
pub const TRACE_ENV: &str = "CONCLAB_TRACE";
/// A value the checker chose for this run, copied into every event, so
/// events written by anything else can be told apart.
pub const NONCE_ENV: &str = "CONCLAB_TRACE_NONCE";

struct Sink {
    file: File,
    /// This run's nonce.
    nonce: String,
}

static SINK: OnceLock<Option<Sink>> = OnceLock::new();
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

fn sink() -> Option<&'static Sink> {
    SINK.get_or_init(|| {
        let path = std::env::var_os(TRACE_ENV)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(|error| {
                eprintln!(
                    "labkit: cannot open the trace {}: {error}",
                    path.to_string_lossy()
                )
            })
            .ok()?;
        let nonce = std::env::var(NONCE_ENV).unwrap_or_default();
        Some(Sink { file, nonce })
    })
    .as_ref()
}

/// Whether events are being recorded.
pub fn enabled() -> bool {
    sink().is_some()
}

/// Records that [`What`] happened to the object `name` (`id` tells apart
/// objects or tasks of the same name). Does nothing when the trace is off.
pub fn record(name: &str, id: Option<u64>, what: What) {
    let Some(sink) = sink() else {
        return;
    };
    let event = Event {
        v: FORMAT_VERSION,
        nonce: sink.nonce.clone(),
        seq: SEQUENCE.fetch_add(1, Ordering::Relaxed),
        t_ns: monotonic_ns(),
        pid: std::process::id(),
        tid: thread_id() as u32,
        thread: thread_name(),
        name: name.to_owned(),
        id,
        what,
    };
    let mut line = Vec::with_capacity(200);
    if serde_json::to_writer(&mut line, &event).is_err() {
        return;
    }
    line.push(b'\n');
    // One write(2) per line: O_APPEND makes it land whole, after every other.
    let _ = (&sink.file).write(&line);
}

/// Nanoseconds of CLOCK_MONOTONIC: one clock for every process on the machine.
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// The kernel's id of the calling thread (what /proc/PID/task lists).
pub fn thread_id() -> u64 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u64 }
}

/// The calling thread's name: its std name, "main" for a process's first
/// thread, else [`unnamed_thread_name`].
pub fn thread_name() -> String {
    if let Some(name) = std::thread::current().name() {
        return name.to_owned();
    }
    let tid = thread_id();
    if tid == u64::from(std::process::id()) {
        "main".to_owned()
    } else {
        unnamed_thread_name(tid)
    }
}

/// The name the trace gives a thread spawned without one: `thread-TID`.
/// It keeps such threads apart, but a tid means nothing to a learner, so
/// pictures and reports show them as [`UnnamedThreads`] number them.
pub fn unnamed_thread_name(tid: u64) -> String {
    format!("thread-{tid}")
}

/// Whether `name`, of the thread `tid`, is the [`unnamed_thread_name`].
pub fn is_unnamed(name: &str, tid: u64) -> bool {
    name.strip_prefix("thread-")
        .is_some_and(|rest| rest.parse() == Ok(tid))
}

/// Names for threads spawned without a name, as pictures and reports show
/// them: `unnamed thread 1`, `unnamed thread 2`, … in order of first
/// appearance, counted apart in each process.
#[derive(Debug, Default, Clone)]
pub struct UnnamedThreads {
    /// The number given to each (pid, tid).
    numbers: std::collections::HashMap<(u64, u64), usize>,
    /// The last number given in each process.
    last: std::collections::HashMap<u64, usize>,
}

impl UnnamedThreads {
    /// The name to show for thread `tid` of process `pid`, traced as `name`:
    /// `name` itself unless it is the [`unnamed_thread_name`].
    pub fn show(&mut self, pid: u64, tid: u64, name: &str) -> String {
        if !is_unnamed(name, tid) {
            return name.to_owned();
        }
        let number = self.number(pid, tid);
        format!("unnamed thread {number}")
    }

    /// The number of thread `tid` of process `pid`, given at its first call.
    pub fn number(&mut self, pid: u64, tid: u64) -> usize {
        let last = self.last.entry(pid).or_default();
        *self.numbers.entry((pid, tid)).or_insert_with(|| {
            *last += 1;
            *last
        })
    }

    /// Takes note of a name this type gave before (`shown`, for thread `tid`
    /// of process `pid`), so that no other thread is given it again.
    pub fn note_shown(&mut self, pid: u64, tid: u64, shown: &str) {
        let Some(number) = shown
            .strip_prefix("unnamed thread ")
            .and_then(|n| n.parse().ok())
        else {
            return;
        };
        self.numbers.insert((pid, tid), number);
        let last = self.last.entry(pid).or_default();
        *last = (*last).max(number);
    }

    /// Forgets every thread but those `keep` says to keep; later threads are
    /// numbered after the kept ones, so no two share a name.
    pub fn retain(&mut self, mut keep: impl FnMut(u64, u64) -> bool) {
        self.numbers.retain(|&(pid, tid), _| keep(pid, tid));
        self.last.clear();
        for (&(pid, _), &number) in &self.numbers {
            let last = self.last.entry(pid).or_default();
            *last = (*last).max(number);
        }
    }
}

/// Marks a point of the learner's own choosing in the trace.
/// `fields` should be a JSON object; anything else is recorded under
/// `"value"`.
pub fn mark(name: &str, fields: Value) {
    let fields = match fields {
        Value::Object(fields) => fields,
        other => Map::from_iter([("value".to_owned(), other)]),
    };
    record(name, None, What::Mark { fields });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unnamed_threads_are_numbered_by_first_appearance_in_each_process() {
        let mut names = UnnamedThreads::default();
        assert_eq!(names.show(10, 12, "thread-12"), "unnamed thread 1");
        assert_eq!(names.show(10, 10, "main"), "main");
        assert_eq!(names.show(10, 15, "worker-1"), "worker-1");
        assert_eq!(names.show(10, 11, "thread-11"), "unnamed thread 2");
        assert_eq!(names.show(10, 12, "thread-12"), "unnamed thread 1");
        assert_eq!(names.show(20, 21, "thread-21"), "unnamed thread 1");
        // A learner's thread named like an unnamed one, but not its own tid.
        assert_eq!(names.show(10, 13, "thread-12"), "thread-12");
    }

    #[test]
    fn threads_after_a_retain_never_take_a_kept_number() {
        let mut names = UnnamedThreads::default();
        for tid in 1..=3 {
            names.number(10, tid);
        }
        names.retain(|_, tid| tid == 3);
        assert_eq!(names.number(10, 3), 3);
        assert_eq!(names.number(10, 4), 4);
        names.retain(|_, _| false);
        assert_eq!(names.number(10, 5), 1);
    }

    #[test]
    fn a_name_shown_before_is_not_given_again() {
        let mut names = UnnamedThreads::default();
        names.note_shown(10, 12, "unnamed thread 2");
        names.note_shown(10, 13, "worker-1");
        assert_eq!(names.show(10, 12, "thread-12"), "unnamed thread 2");
        assert_eq!(names.show(10, 14, "thread-14"), "unnamed thread 3");
    }
}
