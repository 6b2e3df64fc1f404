//! The picture under a failed property or a hang: the learner's threads
//! over time, built from the trace (spans, locks held, waits), with the
//! moment it went wrong marked. Kept small: the threads the failure is
//! about first, and the intervals nearest the moment.

use std::collections::HashMap;

use crate::report::{Interval, IntervalKind, Lane, Mark, Timeline};
use crate::trace::{Event, LockRef, What};

/// Where a run went wrong, as a property or a hang diagnosis saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moment {
    /// When (CLOCK_MONOTONIC ns).
    pub at_ns: u64,
    /// What happened then, in a few words: `9 inside (at most 3)`.
    pub label: String,
    /// The threads it is about, as (pid, tid): drawn first.
    pub threads: Vec<(u32, u32)>,
    /// The stretch of time worth seeing (ns); drawn with some room around it.
    pub from_ns: u64,
    /// Its end (ns).
    pub to_ns: u64,
}

/// A thread: (pid, tid).
type Key = (u32, u32);

/// An interval before it is placed in the window, times in ns.
struct Raw {
    key: Key,
    kind: IntervalKind,
    name: String,
    from_ns: u64,
    /// None while still going when the trace ends.
    to_ns: Option<u64>,
}

/// Draws the run in `events` around `moment`; times are reported as ms
/// after `origin_ns` (the cell's start), and threads of processes other
/// than `runner_pid` are named after their process.
pub fn draw(events: &[Event], origin_ns: u64, runner_pid: u32, moment: &Moment) -> Timeline {
    let (from_ns, to_ns) = window(moment);
    let raw = intervals(events);
    let ms = |t: u64| round_ms(t.saturating_sub(origin_ns) as f64 / 1e6);
    let visible = |r: &Raw| r.from_ns <= to_ns && r.to_ns.is_none_or(|end| end >= from_ns);
    let names = lane_names(events, runner_pid);

    // Lanes: the threads the moment is about, then the others by when they
    // first did something in the window.
    let mut first_seen: HashMap<Key, u64> = HashMap::new();
    for r in raw.iter().filter(|r| visible(r)) {
        let seen = first_seen.entry(r.key).or_insert(r.from_ns);
        *seen = (*seen).min(r.from_ns);
    }
    let mut keys: Vec<Key> = first_seen.keys().copied().collect();
    keys.sort_by_key(|key| {
        let involved = moment.threads.iter().position(|k| k == key);
        (involved.is_none(), involved, first_seen[key], *key)
    });
    let lanes_left_out = keys.len().saturating_sub(Timeline::MAX_LANES);
    keys.truncate(Timeline::MAX_LANES);

    // Intervals: the nearest to the moment when there are too many.
    let mut kept: Vec<&Raw> = raw
        .iter()
        .filter(|r| visible(r) && keys.contains(&r.key))
        .collect();
    let distance = |r: &Raw| {
        let end = r.to_ns.unwrap_or(u64::MAX);
        if r.from_ns > moment.at_ns {
            r.from_ns - moment.at_ns
        } else {
            moment.at_ns.saturating_sub(end)
        }
    };
    kept.sort_by_key(|r| distance(r));
    let intervals_left_out = kept.len().saturating_sub(Timeline::MAX_INTERVALS);
    kept.truncate(Timeline::MAX_INTERVALS);

    let lanes = keys
        .iter()
        .map(|key| {
            let mut intervals: Vec<Interval> = kept
                .iter()
                .filter(|r| r.key == *key)
                .map(|r| Interval {
                    kind: r.kind,
                    name: r.name.clone(),
                    from_ms: ms(r.from_ns.max(from_ns)),
                    to_ms: ms(r.to_ns.unwrap_or(to_ns).min(to_ns)),
                    open: r.to_ns.is_none(),
                })
                .collect();
            intervals.sort_by(|a, b| a.from_ms.total_cmp(&b.from_ms));
            Lane {
                thread: names
                    .get(key)
                    .cloned()
                    // Every key comes from an event, which names its thread.
                    .unwrap_or_else(|| "a thread".to_owned()),
                involved: moment.threads.contains(key),
                intervals,
            }
        })
        .collect();
    Timeline {
        from_ms: ms(from_ns),
        to_ms: ms(to_ns),
        lanes,
        marks: vec![Mark {
            at_ms: ms(moment.at_ns),
            label: moment.label.clone(),
        }],
        lanes_left_out,
        intervals_left_out,
    }
}

/// The moment's stretch with a quarter of its length (at least 2 ms) on
/// either side, so what led to it and what followed are in the picture.
fn window(moment: &Moment) -> (u64, u64) {
    let from = moment.from_ns.min(moment.at_ns);
    let to = moment.to_ns.max(moment.at_ns);
    let room = ((to - from) / 4).max(2_000_000);
    (from.saturating_sub(room), to.saturating_add(room))
}

/// Milliseconds to the microsecond: enough for a picture, short in JSON.
fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// Every span, lock hold and wait in the trace, per thread.
fn intervals(events: &[Event]) -> Vec<Raw> {
    let mut done: Vec<Raw> = Vec::new();
    let mut spans: HashMap<(Key, &str, Option<u64>), Vec<u64>> = HashMap::new();
    let mut holds: HashMap<(Key, u64), (u64, String)> = HashMap::new();
    let mut waits: HashMap<Key, (u64, String)> = HashMap::new();
    // The lock a condition variable wait gave back, taken again on waking.
    let mut to_retake: HashMap<Key, LockRef> = HashMap::new();
    for event in events {
        let key = (event.pid, event.tid);
        // A blocked thread records nothing: any event of its own ends its wait.
        if let Some((from, name)) = waits.remove(&key) {
            done.push(Raw {
                key,
                kind: IntervalKind::Wait,
                name,
                from_ns: from,
                to_ns: Some(event.t_ns),
            });
        }
        match &event.what {
            What::SpanEnter => spans
                .entry((key, event.name.as_str(), event.id))
                .or_default()
                .push(event.t_ns),
            What::SpanExit => {
                if let Some(from) = spans
                    .get_mut(&(key, event.name.as_str(), event.id))
                    .and_then(Vec::pop)
                {
                    done.push(Raw {
                        key,
                        kind: IntervalKind::Span,
                        name: span_name(&event.name, event.id),
                        from_ns: from,
                        to_ns: Some(event.t_ns),
                    });
                }
            }
            What::LockAcquired { .. } => {
                if let Some(lock) = event.lock() {
                    holds
                        .entry((key, lock.lock))
                        .or_insert((event.t_ns, lock_name(&lock.name)));
                }
            }
            What::LockReleased { .. } => {
                if let Some(lock) = event.lock()
                    && let Some((from, name)) = holds.remove(&(key, lock.lock))
                {
                    done.push(Raw {
                        key,
                        kind: IntervalKind::Lock,
                        name,
                        from_ns: from,
                        to_ns: Some(event.t_ns),
                    });
                }
            }
            What::LockWait { .. } => {
                waits.insert(key, (event.t_ns, lock_name(&event.name)));
            }
            What::CondWait { lock, .. } => {
                if let Some(lock) = lock {
                    if let Some((from, name)) = holds.remove(&(key, lock.lock)) {
                        done.push(Raw {
                            key,
                            kind: IntervalKind::Lock,
                            name,
                            from_ns: from,
                            to_ns: Some(event.t_ns),
                        });
                    }
                    to_retake.insert(key, lock.clone());
                }
                waits.insert(key, (event.t_ns, lock_name(&event.name)));
            }
            What::CondWoken { .. } => {
                if let Some(lock) = to_retake.remove(&key) {
                    holds.insert((key, lock.lock), (event.t_ns, lock_name(&lock.name)));
                }
            }
            _ => {}
        }
    }
    let still = |key, kind, name, from_ns| Raw {
        key,
        kind,
        name,
        from_ns,
        to_ns: None,
    };
    for ((key, name, id), starts) in spans {
        for from in starts {
            done.push(still(key, IntervalKind::Span, span_name(name, id), from));
        }
    }
    for ((key, _), (from, name)) in holds {
        done.push(still(key, IntervalKind::Lock, name, from));
    }
    for (key, (from, name)) in waits {
        done.push(still(key, IntervalKind::Wait, name, from));
    }
    done
}

/// `inside 3`: a span with its id.
fn span_name(name: &str, id: Option<u64>) -> String {
    match id {
        Some(id) => format!("{name} {id}"),
        None => name.to_owned(),
    }
}

/// A lock as a learner reads it: its name, or `unnamed mutex` for one
/// labkit named by address (addresses belong in the folded evidence).
fn lock_name(name: &str) -> String {
    match name.split_once("@0x") {
        Some((kind, _)) => format!("unnamed {kind}"),
        None => name.to_owned(),
    }
}

/// Lane names: labkit's thread names in the cell's process; a thread of
/// another process (only labkit-workers trace) is named after that process,
/// numbered in order of appearance (`labkit-worker 1`) as hang summaries
/// number them by start, since pids belong in the folded evidence.
pub fn lane_names(events: &[Event], runner_pid: u32) -> HashMap<Key, String> {
    let mut processes: Vec<u32> = Vec::new();
    let mut names: HashMap<Key, String> = HashMap::new();
    for event in events {
        let key = (event.pid, event.tid);
        if names.contains_key(&key) {
            continue;
        }
        let name = if event.pid == runner_pid {
            event.thread.clone()
        } else {
            let number = match processes.iter().position(|&p| p == event.pid) {
                Some(at) => at + 1,
                None => {
                    processes.push(event.pid);
                    processes.len()
                }
            };
            let process = format!("labkit-worker {number}");
            if event.tid == event.pid {
                process
            } else {
                format!("{} in {process}", event.thread)
            }
        };
        names.insert(key, name);
    }
    // Two threads of one name stay apart.
    let mut uses: HashMap<String, usize> = HashMap::new();
    let mut keys: Vec<Key> = names.keys().copied().collect();
    keys.sort();
    for key in keys {
        let name = names[&key].clone();
        let count = uses.entry(name.clone()).or_default();
        *count += 1;
        if *count > 1 {
            names.insert(key, format!("{name} #{count}"));
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn event(t_ms: f64, tid: u32, kind: &str, name: &str, extra: Value) -> Event {
        let mut value = json!({
            "v": labkit::trace::FORMAT_VERSION, "nonce": "",
            "seq": 0, "t_ns": (t_ms * 1e6) as u64, "pid": 100, "tid": tid,
            "thread": if tid == 100 { "main".to_owned() } else { format!("worker-{tid}") },
            "kind": kind, "name": name, "id": null,
        });
        value
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(value).unwrap()
    }

    fn permits(tid: u32, t: f64, kind: &str) -> Event {
        event(
            t,
            tid,
            kind,
            "permits",
            json!({"lock": 4096, "mode": "exclusive", "held": []}),
        )
    }

    #[test]
    fn spans_locks_and_waits_become_lanes_with_the_moment_marked() {
        let events = vec![
            permits(101, 1.0, "lock_acquired"),
            permits(101, 1.5, "lock_released"),
            event(2.0, 101, "span_enter", "inside", json!({"id": 0})),
            permits(102, 2.5, "lock_acquired"),
            event(
                3.0,
                102,
                "cond_wait",
                "released",
                json!({"condvar": 8192, "lock": {"name": "permits", "lock": 4096}}),
            ),
            event(6.0, 101, "span_exit", "inside", json!({"id": 0})),
        ];
        let moment = Moment {
            at_ns: 3_000_000,
            label: "waits from here".into(),
            threads: vec![(100, 102)],
            from_ns: 1_000_000,
            to_ns: 6_000_000,
        };
        let timeline = draw(&events, 0, 100, &moment);
        let lanes: Vec<&str> = timeline.lanes.iter().map(|l| l.thread.as_str()).collect();
        assert_eq!(
            lanes,
            ["worker-102", "worker-101"],
            "the involved thread first"
        );
        assert!(timeline.lanes[0].involved && !timeline.lanes[1].involved);
        let waiter = &timeline.lanes[0].intervals;
        assert_eq!(waiter.len(), 2, "{waiter:?}");
        assert_eq!(
            (waiter[0].kind, waiter[0].name.as_str(), waiter[0].to_ms),
            (IntervalKind::Lock, "permits", 3.0),
            "the wait gives the lock back"
        );
        assert_eq!(
            (waiter[1].kind, waiter[1].name.as_str(), waiter[1].open),
            (IntervalKind::Wait, "released", true)
        );
        let worker = &timeline.lanes[1].intervals;
        assert_eq!(worker[1].name, "inside 0");
        assert_eq!(timeline.marks[0].at_ms, 3.0);
        assert_eq!((timeline.from_ms, timeline.to_ms), (0.0, 8.0));
    }

    #[test]
    fn a_big_run_is_cut_to_the_lanes_and_intervals_nearest_the_moment() {
        let mut events = Vec::new();
        for tid in 0..40u32 {
            for i in 0..40u64 {
                let t = i as f64 * 1.0;
                let id = json!({"id": i});
                events.push(event(t, 200 + tid, "span_enter", "task", id.clone()));
                events.push(event(t + 0.5, 200 + tid, "span_exit", "task", id));
            }
        }
        events.sort_by_key(|e| e.t_ns);
        let moment = Moment {
            at_ns: 20_000_000,
            label: "here".into(),
            threads: vec![(100, 239)],
            from_ns: 0,
            to_ns: 40_000_000,
        };
        let timeline = draw(&events, 0, 100, &moment);
        assert_eq!(timeline.lanes.len(), Timeline::MAX_LANES);
        assert_eq!(timeline.lanes[0].thread, "worker-239");
        assert_eq!(timeline.lanes_left_out, 40 - Timeline::MAX_LANES);
        let drawn: usize = timeline.lanes.iter().map(|l| l.intervals.len()).sum();
        assert_eq!(drawn, Timeline::MAX_INTERVALS);
        assert_eq!(
            timeline.intervals_left_out,
            16 * 40 - Timeline::MAX_INTERVALS
        );
        assert!(
            timeline.lanes[0]
                .intervals
                .iter()
                .any(|i| i.from_ms <= 20.0 && 20.0 <= i.to_ms + 1.0),
            "the intervals kept are those around the moment"
        );
    }

    #[test]
    fn addresses_and_pids_stay_out_of_the_names() {
        assert_eq!(lock_name("mutex@0x55ac1ec446f8"), "unnamed mutex");
        assert_eq!(lock_name("account[1]"), "account[1]");
        let mut worker = event(1.0, 300, "worker_start", "labkit-worker", json!({}));
        worker.pid = 300;
        let names = lane_names(&[worker], 100);
        assert_eq!(names[&(300, 300)], "labkit-worker 1");
    }
}
