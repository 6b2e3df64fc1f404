//! Timelines and spans, recorded in memory.

use std::thread;
use std::time::Duration;

// One test: recordings are process-wide, and tests run in parallel.
#[test]
fn a_timeline_shows_spans_per_thread_their_overlap_and_the_locks_taken() {
    labkit::in_span("ignored", 1, || ());
    let ((), timeline) = labkit::timeline::record(|| {
        thread::scope(|s| {
            for i in 0..3 {
                thread::Builder::new()
                    .name(format!("fetcher-{i}"))
                    .spawn_scoped(s, move || {
                        labkit::in_span("fetch", i, || thread::sleep(Duration::from_millis(60)))
                    })
                    .unwrap();
            }
        });
        labkit::in_span("report", 0, || thread::sleep(Duration::from_millis(5)));
    });
    assert_eq!(timeline.spans().len(), 4);
    assert_eq!(
        timeline.max_overlap("fetch"),
        3,
        "three sleeping fetches overlap"
    );
    assert_eq!(timeline.max_overlap("report"), 1);
    let svg = timeline.svg();
    assert!(svg.starts_with("<svg"));
    assert!(svg.ends_with("</svg>"));
    for lane in ["fetcher-0", "fetcher-1", "fetcher-2"] {
        assert!(svg.contains(lane), "{lane} has a lane");
    }
    assert_eq!(svg.matches("<rect").count(), 4);
    assert!(
        !svg.contains("ignored"),
        "a span outside the recording is not kept"
    );

    let shared = labkit::sync::Mutex::named("shared", 0u32);
    let std_lock = std::sync::Mutex::new(0u32);
    *shared.lock().unwrap() += 1; // before the recording: not kept
    let ((), timeline) = labkit::timeline::record(|| {
        thread::scope(|s| {
            for i in 0..2 {
                let (shared, std_lock) = (&shared, &std_lock);
                thread::Builder::new()
                    .name(format!("adder-{i}"))
                    .spawn_scoped(s, move || {
                        *shared.lock().unwrap() += 1;
                        drop(shared.try_lock());
                        *std_lock.lock().unwrap() += 1;
                    })
                    .unwrap();
            }
        })
    });
    let locks = timeline.locks();
    assert!(
        locks.len() >= 2 && locks.len() <= 4,
        "each adder's lock, and its try_lock when it found the lock free; std's locks are not labkit's: {locks:?}"
    );
    assert!(
        locks
            .iter()
            .all(|l| l.lock == "shared" && l.thread.starts_with("adder-"))
    );
    let threads: std::collections::BTreeSet<u64> = locks.iter().map(|l| l.tid).collect();
    assert_eq!(threads.len(), 2, "two threads took the lock: {locks:?}");
    assert!(
        locks.windows(2).all(|w| w[0].at_ns <= w[1].at_ns),
        "by time"
    );
}
