//! The trace: what a cell's threads and processes did, for the checker.
//!
//! Off unless the checker sets [`TRACE_ENV`] to a file path (and
//! [`NONCE_ENV`] to this run's nonce); then every instrumented point appends
//! one JSON line to that file with a single `write(2)` on an `O_APPEND`
//! descriptor, so lines from many threads and processes never interleave and
//! a killed process leaves a readable trace up to its last event. The format
//! is described in `TRACE.md` beside this crate; [`FORMAT_VERSION`] changes
//! when it does.
//!
//! Off, an instrumented point costs one check of a value initialised once.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

/// The trace format's version, in every event's `"v"`.
pub const FORMAT_VERSION: u64 = 2;
/// Names the file events are appended to.
pub const TRACE_ENV: &str = "CONCLAB_TRACE";
/// A value the checker chose for this run, copied into every event, so
/// events written by anything else can be told apart.
pub const NONCE_ENV: &str = "CONCLAB_TRACE_NONCE";

struct Sink {
    file: File,
    /// The nonce, already encoded as a JSON string.
    nonce_json: String,
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
        Some(Sink {
            file,
            nonce_json: Value::from(nonce).to_string(),
        })
    })
    .as_ref()
}

/// Whether events are being recorded.
pub fn enabled() -> bool {
    sink().is_some()
}

/// Records one event of `kind` about the object `name` (`id` tells apart
/// objects or tasks of the same name), with `fields` added to the line.
/// Does nothing when the trace is off.
pub fn record(kind: &str, name: &str, id: Option<u64>, fields: Value) {
    let Some(sink) = sink() else {
        return;
    };
    // Written field by field: no intermediate JSON tree for the common part.
    let mut line = String::with_capacity(200);
    let _ = write!(
        line,
        r#"{{"v":{FORMAT_VERSION},"nonce":{},"seq":{},"t_ns":{},"pid":{},"tid":{},"thread":{},"kind":{},"name":{},"id":{}"#,
        sink.nonce_json,
        SEQUENCE.fetch_add(1, Ordering::Relaxed),
        monotonic_ns(),
        std::process::id(),
        thread_id(),
        Value::from(thread_name()),
        Value::from(kind),
        Value::from(name),
        id.map_or(Value::Null, Value::from),
    );
    if let Value::Object(fields) = fields {
        for (key, value) in fields {
            let _ = write!(line, ",{}:{value}", Value::from(key));
        }
    }
    line.push_str("}\n");
    // One write(2) per line: O_APPEND makes it land whole, after every other.
    let _ = (&sink.file).write(line.as_bytes());
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
/// thread, else "thread-TID".
pub fn thread_name() -> String {
    if let Some(name) = std::thread::current().name() {
        return name.to_owned();
    }
    let tid = thread_id();
    if tid == u64::from(std::process::id()) {
        "main".to_owned()
    } else {
        format!("thread-{tid}")
    }
}

/// Marks a point of the learner's own choosing in the trace.
pub fn mark(name: &str, fields: Value) {
    record("mark", name, None, fields);
}
