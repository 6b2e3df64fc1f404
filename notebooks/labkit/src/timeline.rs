//! A timeline: the spans of a piece of work, per thread, as an SVG picture a
//! cell can show, so a learner sees how much really ran at once; and the
//! labkit locks each thread took, so a test can tell which tool did the work.

mod picture;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// One finished span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanRecord {
    /// The name of the thread it ran on (see [`crate::trace::thread_name`]).
    pub thread: String,
    /// The kernel's id of that thread: unlike names, never shared by two
    /// threads alive at once.
    pub tid: u64,
    /// The span's name.
    pub name: String,
    /// The span's id.
    pub id: u64,
    /// When it started (CLOCK_MONOTONIC ns).
    pub start_ns: u64,
    /// When it ended.
    pub end_ns: u64,
}

/// One acquisition of a [`crate::sync`] lock (a `lock`, `try_lock`, `read`,
/// `write`, or a condition variable taking its lock back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRecord {
    /// The name of the thread that took it.
    pub thread: String,
    /// The kernel's id of that thread.
    pub tid: u64,
    /// The lock's name, as the trace gives it ([`crate::sync::Mutex::name`]).
    pub lock: String,
    /// The lock's address: two locks that share a name are told apart.
    pub address: usize,
    /// When it was taken (CLOCK_MONOTONIC ns).
    pub at_ns: u64,
}

static RECORDING: AtomicBool = AtomicBool::new(false);
static SPANS: Mutex<Vec<SpanRecord>> = Mutex::new(Vec::new());
static LOCKS: Mutex<Vec<LockRecord>> = Mutex::new(Vec::new());
/// Only one recording at a time.
static RECORDER: Mutex<()> = Mutex::new(());

pub(crate) fn is_recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
}

pub(crate) fn note_span(name: &str, id: u64, start_ns: u64, end_ns: u64) {
    if RECORDING.load(Ordering::Relaxed) {
        let record = SpanRecord {
            thread: crate::trace::thread_name(),
            tid: crate::trace::thread_id(),
            name: name.to_owned(),
            id,
            start_ns,
            end_ns,
        };
        SPANS.lock().unwrap_or_else(|p| p.into_inner()).push(record);
    }
}

pub(crate) fn note_lock(lock: &str, address: usize) {
    if RECORDING.load(Ordering::Relaxed) {
        let record = LockRecord {
            thread: crate::trace::thread_name(),
            tid: crate::trace::thread_id(),
            lock: lock.to_owned(),
            address,
            at_ns: crate::trace::monotonic_ns(),
        };
        LOCKS.lock().unwrap_or_else(|p| p.into_inner()).push(record);
    }
}

/// The spans and lock acquisitions recorded while some work ran.
#[derive(Debug, Clone)]
pub struct Timeline {
    spans: Vec<SpanRecord>,
    locks: Vec<LockRecord>,
    start_ns: u64,
    end_ns: u64,
}

/// Runs `work`, recording every span any thread ends and every labkit lock
/// any thread takes meanwhile.
pub fn record<R>(work: impl FnOnce() -> R) -> (R, Timeline) {
    let _one_at_a_time = RECORDER.lock().unwrap_or_else(|p| p.into_inner());
    SPANS.lock().unwrap_or_else(|p| p.into_inner()).clear();
    LOCKS.lock().unwrap_or_else(|p| p.into_inner()).clear();
    let start_ns = crate::trace::monotonic_ns();
    RECORDING.store(true, Ordering::SeqCst);
    let result = work();
    RECORDING.store(false, Ordering::SeqCst);
    let end_ns = crate::trace::monotonic_ns();
    let mut spans = std::mem::take(&mut *SPANS.lock().unwrap_or_else(|p| p.into_inner()));
    spans.sort_by_key(|s| (s.start_ns, s.id));
    let mut locks = std::mem::take(&mut *LOCKS.lock().unwrap_or_else(|p| p.into_inner()));
    locks.sort_by_key(|l| l.at_ns);
    (
        result,
        Timeline {
            spans,
            locks,
            start_ns,
            end_ns,
        },
    )
}

impl Timeline {
    /// The recorded spans, by start time.
    pub fn spans(&self) -> &[SpanRecord] {
        &self.spans
    }

    /// The labkit locks taken, by time.
    pub fn locks(&self) -> &[LockRecord] {
        &self.locks
    }

    /// The most spans named `name` that were running at the same moment.
    pub fn max_overlap(&self, name: &str) -> usize {
        let mut edges: Vec<(u64, i32)> = self
            .spans
            .iter()
            .filter(|s| s.name == name)
            .flat_map(|s| [(s.start_ns, 1), (s.end_ns, -1)])
            .collect();
        // Ends before starts at the same instant: touching is not overlapping.
        edges.sort();
        let (mut now, mut most) = (0, 0);
        for (_, step) in edges {
            now += step;
            most = most.max(now);
        }
        most as usize
    }

    /// The timeline as an SVG picture: one lane per thread, time across.
    pub fn svg(&self) -> String {
        picture::svg(&self.spans, self.start_ns, self.end_ns)
    }

    /// Shows the timeline in the notebook (as SVG, and as PNG for an
    /// untrusted notebook: see [`crate::show::svg`]).
    pub fn show(&self) {
        crate::show::svg(&self.svg());
    }
}
