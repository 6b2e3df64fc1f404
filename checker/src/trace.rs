//! Reading labkit's trace (the format of [`labkit::trace::FORMAT_VERSION`],
//! `notebooks/labkit/TRACE.md`) in the
//! checker's own process, and telling genuine events from forged ones.

use std::path::Path;

use labkit::trace::{FORMAT_VERSION, UnnamedThreads};
use serde_json::Value;

/// One event of the trace, and the lock events name, as labkit writes them.
/// A thread spawned without a name is read back as `unnamed thread N` (see
/// [`Trace::unnamed`]); its tid stays in [`Event::tid`].
pub use labkit::trace::{Event, LockMode, LockRef, What};

/// A trace read back: the genuine events in time order, and what was wrong
/// with the rest.
#[derive(Debug, Default, Clone)]
pub struct Trace {
    /// Events carrying this run's nonce, sorted by (t_ns, pid, seq).
    pub events: Vec<Event>,
    /// Lines that were not genuine events: wrong nonce, not JSON, an
    /// unknown version. Forgery by code that does not know the nonce shows
    /// up here.
    pub rejected: Vec<String>,
    /// The numbers given to threads spawned without a name, which labkit
    /// traces as `thread-TID`: a tid means nothing to a learner, so events
    /// name them `unnamed thread N` (the tid stays in [`Event::tid`]).
    pub unnamed: UnnamedThreads,
}

/// Follows a trace file as it grows, keeping only recent events, so a long
/// notebook's trace never has to fit in memory at once.
#[derive(Debug)]
pub struct TraceFollower {
    path: std::path::PathBuf,
    nonce: String,
    offset: u64,
    /// A last line still being written.
    partial: Vec<u8>,
    /// What has been read and kept.
    pub trace: Trace,
}

impl TraceFollower {
    /// Follows `path`, keeping events that carry `nonce`.
    pub fn new(path: &Path, nonce: &str) -> TraceFollower {
        TraceFollower {
            path: path.to_owned(),
            nonce: nonce.to_owned(),
            offset: 0,
            partial: Vec::new(),
            trace: Trace::default(),
        }
    }

    /// Reads what was appended since the last call.
    pub fn update(&mut self) -> std::io::Result<()> {
        use std::io::{Read, Seek};
        let mut file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        };
        file.seek(std::io::SeekFrom::Start(self.offset))?;
        let mut bytes = std::mem::take(&mut self.partial);
        let read = file.read_to_end(&mut bytes)?;
        self.offset += read as u64;
        let complete = bytes
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |end| end + 1);
        self.partial = bytes.split_off(complete);
        for line in String::from_utf8_lossy(&bytes).lines() {
            self.trace.push_line(line, &self.nonce);
        }
        self.trace.sort();
        Ok(())
    }

    /// Forgets events before `t_ns`: what a finished cell left behind.
    pub fn forget_before(&mut self, t_ns: u64) {
        let keep = self.trace.events.partition_point(|e| e.t_ns < t_ns);
        self.trace.events.drain(..keep);
        // The next cell numbers its unnamed threads from 1, after those
        // still in the trace.
        let kept: std::collections::HashSet<(u64, u64)> = self
            .trace
            .events
            .iter()
            .map(|e| (u64::from(e.pid), u64::from(e.tid)))
            .collect();
        self.trace
            .unnamed
            .retain(|pid, tid| kept.contains(&(pid, tid)));
    }
}

impl Trace {
    /// Reads `path` (missing means no events), keeping only events with `nonce`.
    #[cfg(test)]
    pub fn read(path: &Path, nonce: &str) -> std::io::Result<Trace> {
        let mut follower = TraceFollower::new(path, nonce);
        follower.update()?;
        Ok(follower.trace)
    }

    /// Parses trace text; a last line without a newline is ignored (a write
    /// cut short), as the format says.
    #[cfg(test)]
    pub fn parse(text: &str, nonce: &str) -> Trace {
        let mut trace = Trace::default();
        let complete = match text.rfind('\n') {
            Some(end) => &text[..=end],
            None => "",
        };
        for line in complete.lines() {
            trace.push_line(line, nonce);
        }
        trace.sort();
        trace
    }

    /// Takes one line: an event if it is genuine, else a rejection.
    fn push_line(&mut self, line: &str, nonce: &str) {
        if line.trim().is_empty() {
            return;
        }
        // A genuine line in one pass (a hot lock writes hundreds of
        // thousands); only a line that is not one is parsed again, to say why.
        if let Ok(event) = serde_json::from_str::<Event>(line)
            && event.v == FORMAT_VERSION
            && event.nonce == nonce
        {
            self.take(event);
            return;
        }
        self.reject_or_take(line, nonce);
    }

    /// Records why `line` is not a genuine event of this run, or takes it
    /// if only the one pass refused it.
    fn reject_or_take(&mut self, line: &str, nonce: &str) {
        let Ok(value) = serde_json::from_str::<Value>(line) else {
            self.rejected.push(format!("not JSON: {}", shorten(line)));
            return;
        };
        if value.get("v").and_then(Value::as_u64) != Some(FORMAT_VERSION) {
            self.rejected.push(format!(
                "not trace format v{FORMAT_VERSION}: {}",
                shorten(line)
            ));
            return;
        }
        if value.get("nonce").and_then(Value::as_str) != Some(nonce) {
            self.rejected
                .push(format!("wrong nonce: {}", shorten(line)));
            return;
        }
        // Sequence numbers cannot expose replayed lines: evcxr links a copy
        // of labkit into every cell, each counting from 0 in one process.
        match serde_json::from_value::<Event>(value) {
            // What the one pass refused but a JSON value takes (a repeated
            // key, the last one winning) is still an event.
            Ok(event) => self.take(event),
            Err(error) => self.rejected.push(format!("{error}: {}", shorten(line))),
        }
    }

    /// Keeps a genuine event, naming its thread for the reader.
    fn take(&mut self, mut event: Event) {
        // Checked already, and the same in every event: not worth keeping.
        event.nonce = String::new();
        let (pid, tid) = (u64::from(event.pid), u64::from(event.tid));
        // Checked first: most events are of named threads, kept as they are.
        if labkit::trace::is_unnamed(&event.thread, tid) {
            event.thread = self.unnamed.show(pid, tid, &event.thread);
        }
        self.events.push(event);
    }

    fn sort(&mut self) {
        self.events.sort_by_key(|e| (e.t_ns, e.pid, e.seq));
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

/// CLOCK_MONOTONIC now, in nanoseconds: the trace's clock, from labkit.
pub use labkit::trace::monotonic_ns;

#[cfg(test)]
mod tests {
    use super::*;

    fn line(nonce: &str, seq: u64, t: u64, kind: &str) -> String {
        format!(
            r#"{{"v":{FORMAT_VERSION},"nonce":"{nonce}","seq":{seq},"t_ns":{t},"pid":7,"tid":7,"thread":"main","kind":"{kind}","name":"task","id":1}}"#
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
        assert_eq!(trace.events[0].what, What::SpanEnter);
        assert!(trace.rejected.is_empty());
    }

    #[test]
    fn forged_lines_are_rejected_with_a_reason() {
        let text = [
            line("n", 0, 10, "span_enter"),
            line("guess", 1, 11, "span_enter"),
            line("", 0, 12, "span_exit"),
            "{not json".to_owned(),
        ]
        .join("\n")
            + "\n";
        let trace = Trace::parse(&text, "n");
        assert_eq!(trace.events.len(), 1);
        assert_eq!(trace.rejected.len(), 3, "{:?}", trace.rejected);
        assert!(trace.rejected[0].starts_with("wrong nonce"));
        assert!(trace.rejected[1].starts_with("wrong nonce"));
        assert!(trace.rejected[2].starts_with("not JSON"));
    }

    #[test]
    fn a_cut_last_line_is_ignored() {
        let text = line("n", 0, 10, "span_enter") + "\n" + &line("n", 1, 11, "span_exit")[..30];
        let trace = Trace::parse(&text, "n");
        assert_eq!(trace.events.len(), 1);
        assert!(trace.rejected.is_empty());
    }

    #[test]
    fn a_follower_reads_only_what_was_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.jsonl");
        let mut follower = TraceFollower::new(&path, "n");
        follower.update().unwrap();
        assert!(follower.trace.events.is_empty());
        let first = line("n", 0, 10, "span_enter") + "\n";
        let second = line("n", 1, 20, "span_exit") + "\n";
        std::fs::write(&path, format!("{first}{}", &second[..20])).unwrap();
        follower.update().unwrap();
        assert_eq!(follower.trace.events.len(), 1);
        std::fs::write(&path, format!("{first}{second}")).unwrap();
        follower.update().unwrap();
        assert_eq!(follower.trace.events.len(), 2);
        follower.forget_before(15);
        assert_eq!(follower.trace.events.len(), 1);
    }

    #[test]
    fn unnamed_threads_are_numbered_per_cell_and_keep_their_tid() {
        let event = |seq: u64, t: u64, tid: u32, thread: &str| {
            format!(
                r#"{{"v":{FORMAT_VERSION},"nonce":"n","seq":{seq},"t_ns":{t},"pid":7,"tid":{tid},"thread":"{thread}","kind":"mark","name":"m","id":null}}"#
            ) + "\n"
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.jsonl");
        let mut text = event(0, 10, 612, "thread-612") + &event(1, 11, 7, "main");
        text += &event(2, 12, 615, "thread-615");
        text += &event(3, 13, 616, "worker-1");
        std::fs::write(&path, &text).unwrap();
        let mut follower = TraceFollower::new(&path, "n");
        follower.update().unwrap();
        let shown: Vec<(u32, &str)> = follower
            .trace
            .events
            .iter()
            .map(|e| (e.tid, e.thread.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                (612, "unnamed thread 1"),
                (7, "main"),
                (615, "unnamed thread 2"),
                (616, "worker-1")
            ]
        );
        // The next cell: thread 615 lives on and keeps its name; a new one
        // takes the next number, and the first is forgotten.
        follower.forget_before(12);
        text += &event(4, 20, 620, "thread-620");
        std::fs::write(&path, &text).unwrap();
        follower.update().unwrap();
        let last = follower.trace.events.last().unwrap();
        assert_eq!((last.tid, last.thread.as_str()), (620, "unnamed thread 3"));
        // A cell after which no thread lives on: numbers start again.
        follower.forget_before(25);
        text += &event(5, 30, 630, "thread-630");
        std::fs::write(&path, &text).unwrap();
        follower.update().unwrap();
        let last = follower.trace.events.last().unwrap();
        assert_eq!((last.tid, last.thread.as_str()), (630, "unnamed thread 1"));
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
