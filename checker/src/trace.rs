//! Reading labkit's trace (format v1, `notebooks/labkit/TRACE.md`) in the
//! checker's own process, and telling genuine events from forged ones.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

/// One event of the trace.
#[derive(Deserialize, Debug, Clone, PartialEq)]
pub struct Event {
    /// Per-process sequence number, from 0.
    pub seq: u64,
    /// CLOCK_MONOTONIC in nanoseconds: comparable across processes.
    pub t_ns: u64,
    /// Process id.
    pub pid: u32,
    /// Kernel thread id.
    pub tid: u32,
    /// The thread's name (`main`, `worker-1`, `thread-TID`).
    pub thread: String,
    /// What happened: `span_enter`, `lock_acquired`, `worker_start`, …
    pub kind: String,
    /// The span's or lock's name.
    pub name: String,
    /// Which one of that name (a task id, a worker's pid).
    #[serde(default)]
    pub id: Option<u64>,
    /// The kind's own fields (`lock`, `held`, `mode`, …), as written.
    #[serde(flatten)]
    pub fields: serde_json::Map<String, Value>,
}

/// A lock as events name it: `{name, lock}`.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockRef {
    /// The name given to `Mutex::named`, or `mutex@0x…`.
    pub name: String,
    /// Its address (the futex a blocked thread waits on).
    pub lock: u64,
}

impl Event {
    /// The lock this event is about (`lock_wait`, `lock_acquired`, `lock_released`).
    pub fn lock(&self) -> Option<LockRef> {
        Some(LockRef {
            name: self.name.clone(),
            lock: self.fields.get("lock")?.as_u64()?,
        })
    }

    /// The locks the thread held (`lock_wait`, `lock_acquired`), oldest first.
    pub fn held(&self) -> Vec<LockRef> {
        self.fields
            .get("held")
            .and_then(|held| serde_json::from_value(held.clone()).ok())
            .unwrap_or_default()
    }

    /// Milliseconds since `origin_ns`, for messages.
    pub fn ms_since(&self, origin_ns: u64) -> f64 {
        self.t_ns.saturating_sub(origin_ns) as f64 / 1e6
    }
}

/// A trace read back: the genuine events in time order, and what was wrong
/// with the rest.
#[derive(Debug, Default, Clone)]
pub struct Trace {
    /// Events carrying this run's nonce, sorted by (t_ns, pid, seq).
    pub events: Vec<Event>,
    /// Lines that were not genuine events: wrong nonce, not JSON, an
    /// unknown version, a sequence number seen twice in a process. Forgery
    /// by the learner's code shows up here.
    pub rejected: Vec<String>,
}

impl Trace {
    /// Reads `path` (missing means no events), keeping only events with `nonce`.
    pub fn read(path: &Path, nonce: &str) -> std::io::Result<Trace> {
        let text = match std::fs::read(path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => return Err(error),
        };
        Ok(Trace::parse(&text, nonce))
    }

    /// Parses trace text; a last line without a newline is ignored (a write
    /// cut short), as the format says.
    pub fn parse(text: &str, nonce: &str) -> Trace {
        let mut trace = Trace::default();
        let complete = match text.rfind('\n') {
            Some(end) => &text[..=end],
            None => "",
        };
        let mut seen = std::collections::HashSet::new();
        for line in complete.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(value) = serde_json::from_str::<Value>(line) else {
                trace.rejected.push(format!("not JSON: {}", shorten(line)));
                continue;
            };
            if value.get("v").and_then(Value::as_u64) != Some(1) {
                trace
                    .rejected
                    .push(format!("not trace format v1: {}", shorten(line)));
                continue;
            }
            if value.get("nonce").and_then(Value::as_str) != Some(nonce) {
                trace
                    .rejected
                    .push(format!("wrong nonce: {}", shorten(line)));
                continue;
            }
            match serde_json::from_value::<Event>(value) {
                Ok(event) if seen.insert((event.pid, event.seq)) => trace.events.push(event),
                Ok(event) => trace.rejected.push(format!(
                    "sequence number {} of pid {} seen twice: {}",
                    event.seq,
                    event.pid,
                    shorten(line)
                )),
                Err(error) => trace.rejected.push(format!("{error}: {}", shorten(line))),
            }
        }
        trace.events.sort_by_key(|e| (e.t_ns, e.pid, e.seq));
        trace
    }

    /// The events between two instants (CLOCK_MONOTONIC ns), inclusive.
    pub fn window(&self, from_ns: u64, to_ns: u64) -> &[Event] {
        let start = self.events.partition_point(|e| e.t_ns < from_ns);
        let end = self.events.partition_point(|e| e.t_ns <= to_ns);
        &self.events[start..end.max(start)]
    }
}

fn shorten(line: &str) -> String {
    let mut short: String = line.chars().take(120).collect();
    if short.len() < line.len() {
        short.push('…');
    }
    short
}

/// CLOCK_MONOTONIC now, in nanoseconds: the trace's clock.
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(nonce: &str, seq: u64, t: u64, kind: &str) -> String {
        format!(
            r#"{{"v":1,"nonce":"{nonce}","seq":{seq},"t_ns":{t},"pid":7,"tid":7,"thread":"main","kind":"{kind}","name":"task","id":1}}"#
        )
    }

    #[test]
    fn genuine_events_are_kept_in_time_order() {
        let text = [
            line("n", 0, 20, "span_exit"),
            line("n", 1, 10, "span_enter"),
        ]
        .join("\n")
            + "\n";
        let trace = Trace::parse(&text, "n");
        assert_eq!(trace.events.len(), 2);
        assert_eq!(trace.events[0].kind, "span_enter");
        assert!(trace.rejected.is_empty());
    }

    #[test]
    fn forged_lines_are_rejected_with_a_reason() {
        let text = [
            line("n", 0, 10, "span_enter"),
            line("guess", 1, 11, "span_enter"),
            line("n", 0, 12, "span_exit"),
            "{not json".to_owned(),
        ]
        .join("\n")
            + "\n";
        let trace = Trace::parse(&text, "n");
        assert_eq!(trace.events.len(), 1);
        assert_eq!(trace.rejected.len(), 3, "{:?}", trace.rejected);
        assert!(trace.rejected[0].starts_with("wrong nonce"));
        assert!(trace.rejected[1].starts_with("sequence number 0 of pid 7 seen twice"));
    }

    #[test]
    fn a_cut_last_line_is_ignored() {
        let text = line("n", 0, 10, "span_enter") + "\n" + &line("n", 1, 11, "span_exit")[..30];
        let trace = Trace::parse(&text, "n");
        assert_eq!(trace.events.len(), 1);
        assert!(trace.rejected.is_empty());
    }

    #[test]
    fn a_window_is_inclusive() {
        let text = (0..5)
            .map(|i| line("n", i, i * 10, "mark"))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n";
        let trace = Trace::parse(&text, "n");
        assert_eq!(trace.window(10, 30).len(), 3);
        assert_eq!(trace.window(31, 39).len(), 0);
    }
}
