//! Timelines and spans, recorded in memory.

use std::thread;
use std::time::Duration;

// One test: recordings are process-wide, and tests run in parallel.
#[test]
fn a_timeline_shows_spans_per_thread_and_their_overlap() {
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
}
