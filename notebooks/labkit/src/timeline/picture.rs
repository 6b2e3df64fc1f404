//! A timeline drawn as SVG: one lane per thread, time across, a bar per span,
//! an axis of round, distinct times, and a name on every bar.

use std::fmt::Write;

use super::SpanRecord;
use crate::trace::UnnamedThreads;

const WIDTH: f64 = 720.0;
/// Room for the thread names.
const LEFT: f64 = 120.0;
/// Room for the last tick's label.
const RIGHT: f64 = 30.0;
const LANE: f64 = 26.0;
const TOP: f64 = 30.0;
/// The gap between a bar and a label beside it, or a label and its bar's edges.
const PAD: f64 = 4.0;
/// The most ticks the axis gets.
const MOST_TICKS: f64 = 6.0;

/// Draws `spans`, recorded between `start_ns` and `end_ns`.
pub(super) fn svg(spans: &[SpanRecord], start_ns: u64, end_ns: u64) -> String {
    let mut threads: Vec<&str> = Vec::new();
    for span in spans {
        if !threads.contains(&span.thread.as_str()) {
            threads.push(&span.thread);
        }
    }
    let total_ns = end_ns.saturating_sub(start_ns).max(1) as f64;
    let scale = (WIDTH - LEFT - RIGHT) / total_ns;
    let x = |t: u64| LEFT + t.saturating_sub(start_ns) as f64 * scale;
    let height = TOP + LANE * threads.len().max(1) as f64 + 10.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let axis = Axis::for_span(total_ns);
    for (at_ns, label) in axis.ticks() {
        let _ = write!(
            svg,
            r##"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{height}" stroke="#ddd"/><text x="{0:.1}" y="{2}" text-anchor="middle" fill="#555">{label}</text>"##,
            LEFT + at_ns * scale,
            TOP - 6.0,
            TOP - 12.0,
        );
    }
    // A tid means nothing to a learner: unnamed threads are numbered.
    let mut unnamed = UnnamedThreads::default();
    for (lane, thread) in threads.iter().enumerate() {
        let y = TOP + LANE * lane as f64;
        let on_lane: Vec<&SpanRecord> = spans.iter().filter(|s| s.thread == *thread).collect();
        let label = unnamed.show(0, on_lane[0].tid, thread);
        let _ = write!(
            svg,
            r##"<text x="4" y="{:.1}" fill="#222">{}</text>"##,
            y + 16.0,
            escape(&label)
        );
        let bars: Vec<(f64, f64)> = on_lane
            .iter()
            .map(|s| {
                let x0 = x(s.start_ns);
                (x0, x(s.end_ns).max(x0 + 1.0))
            })
            .collect();
        let labels: Vec<Vec<String>> = on_lane
            .iter()
            .map(|s| vec![format!("{} #{}", s.name, s.id), format!("#{}", s.id)])
            .collect();
        let places = place_labels(&bars, &labels);
        for ((span, &(x0, x1)), place) in on_lane.iter().zip(&bars).zip(places) {
            let _ = write!(
                svg,
                r##"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="3" fill="{}"><title>{} #{}: {:.1}–{:.1} ms</title></rect>"##,
                y + 3.0,
                x1 - x0,
                LANE - 6.0,
                colour(&span.name),
                escape(&span.name),
                span.id,
                (span.start_ns - start_ns) as f64 / 1e6,
                (span.end_ns - start_ns) as f64 / 1e6,
            );
            let fill = if place.inside { "#fff" } else { "#222" };
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" fill="{fill}">{}</text>"##,
                place.x,
                y + 16.0,
                escape(&place.text)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// The time axis: ticks one round step apart (1, 2 or 5 times a power of
/// ten), so no two read the same, in the largest unit (s, ms, µs, ns) the
/// time covered reaches.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Axis {
    /// The time covered, in ns.
    total_ns: f64,
    /// Between two ticks, in ns.
    step_ns: f64,
    /// ns per unit of the labels.
    unit_ns: f64,
    /// The unit's name.
    unit: &'static str,
}

impl Axis {
    fn for_span(total_ns: f64) -> Axis {
        let (unit_ns, unit) = [(1e9, "s"), (1e6, "ms"), (1e3, "µs")]
            .into_iter()
            .find(|&(unit_ns, _)| total_ns >= unit_ns)
            .unwrap_or((1.0, "ns"));
        // The smallest round step that needs no more than MOST_TICKS ticks.
        let power = 10f64.powf((total_ns / MOST_TICKS).log10().floor());
        let step_ns = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0]
            .iter()
            .map(|m| m * power)
            .find(|&step| (total_ns / step + 1e-9).floor() + 1.0 <= MOST_TICKS)
            .unwrap_or(100.0 * power);
        Axis {
            total_ns,
            step_ns,
            unit_ns,
            unit,
        }
    }

    /// Each tick's time (ns from the start) and label.
    fn ticks(&self) -> Vec<(f64, String)> {
        // As many decimals as the step has, so labels differ (0.5 ms, 1.0 ms).
        let step = self.step_ns / self.unit_ns;
        let decimals = (-step.log10().floor()).max(0.0) as usize;
        // A hair over the end: float steps must not lose the last tick.
        let count = (self.total_ns / self.step_ns + 1e-9).floor() as u64;
        (0..=count)
            .map(|i| {
                let at_ns = i as f64 * self.step_ns;
                (
                    at_ns,
                    format!("{:.*} {}", decimals, at_ns / self.unit_ns, self.unit),
                )
            })
            .collect()
    }
}

/// Where a bar's label goes.
#[derive(Debug, Clone, PartialEq)]
struct Place {
    /// The label's left edge.
    x: f64,
    /// Which of the bar's labels fits.
    text: String,
    /// On the bar (white text), or beside it (dark text).
    inside: bool,
}

/// An estimate of a label's width at 11 px (DejaVu Sans averages ~0.6 em).
fn text_width(text: &str) -> f64 {
    6.6 * text.chars().count() as f64
}

/// Labels the bars of one lane (sorted by start, not overlapping): for each,
/// the first of its `labels` (longest first) that fits on the bar, or else
/// beside it, right or left, in the free room between its neighbours and
/// their labels. A bar with room for none still gets its shortest label on
/// its right: a name over a neighbour beats a bar nobody can name.
fn place_labels(bars: &[(f64, f64)], labels: &[Vec<String>]) -> Vec<Place> {
    let mut places = Vec::with_capacity(bars.len());
    // The right edge of what is drawn so far on the lane: a bar or a label.
    let mut taken = LEFT;
    for (i, (&(x0, x1), texts)) in bars.iter().zip(labels).enumerate() {
        let next = bars.get(i + 1).map_or(WIDTH, |&(start, _)| start);
        let place = texts
            .iter()
            .find_map(|text| {
                let width = text_width(text);
                let at = |x, inside| {
                    Some(Place {
                        x,
                        text: text.clone(),
                        inside,
                    })
                };
                if x1 - x0 >= width + 2.0 * PAD {
                    at(x0 + PAD, true)
                } else if x1 + PAD + width + PAD <= next {
                    at(x1 + PAD, false)
                } else if x0 - PAD - width - PAD >= taken {
                    at(x0 - PAD - width, false)
                } else {
                    None
                }
            })
            .unwrap_or_else(|| Place {
                x: x1 + PAD,
                text: texts.last().cloned().unwrap_or_default(),
                inside: false,
            });
        let label_end = if place.inside {
            x1
        } else {
            place.x + text_width(&place.text)
        };
        taken = x1.max(label_end);
        places.push(place);
    }
    places
}

fn colour(name: &str) -> &'static str {
    const PALETTE: [&str; 6] = [
        "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1",
    ];
    let index = name
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
    PALETTE[index % PALETTE.len()]
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(axis: Axis) -> Vec<String> {
        axis.ticks().into_iter().map(|(_, label)| label).collect()
    }

    #[test]
    fn ticks_are_round_and_distinct() {
        // The axis the issue saw: 2.4 ms in five ticks read "0, 0, 1, 1, 2 ms".
        assert_eq!(
            labels(Axis::for_span(2.4e6)),
            ["0.0 ms", "0.5 ms", "1.0 ms", "1.5 ms", "2.0 ms"]
        );
        assert_eq!(
            labels(Axis::for_span(183e6)),
            ["0 ms", "50 ms", "100 ms", "150 ms"]
        );
        assert_eq!(
            labels(Axis::for_span(270e6)),
            ["0 ms", "50 ms", "100 ms", "150 ms", "200 ms", "250 ms"]
        );
        assert_eq!(
            labels(Axis::for_span(100e6)),
            ["0 ms", "20 ms", "40 ms", "60 ms", "80 ms", "100 ms"]
        );
        assert_eq!(
            labels(Axis::for_span(450e3)),
            ["0 µs", "100 µs", "200 µs", "300 µs", "400 µs"]
        );
        // An empty recording lasts some ns.
        assert_eq!(
            labels(Axis::for_span(40.0)),
            ["0 ns", "10 ns", "20 ns", "30 ns", "40 ns"]
        );
        assert_eq!(
            labels(Axis::for_span(1.7e9)),
            ["0.0 s", "0.5 s", "1.0 s", "1.5 s"]
        );
        for total_ns in [1.0, 7.0, 999.0, 1e3, 3.3e5, 1e6, 1.7e6, 9.99e6, 2.5e7, 4e9] {
            let ticks = labels(Axis::for_span(total_ns));
            assert!((2..=6).contains(&ticks.len()), "{total_ns} ns: {ticks:?}");
            let mut distinct = ticks.clone();
            distinct.dedup();
            assert_eq!(
                distinct, ticks,
                "{total_ns} ns: every tick reads differently"
            );
        }
    }

    fn texts(places: &[Place]) -> Vec<&str> {
        places.iter().map(|p| p.text.as_str()).collect()
    }

    fn names(ids: &[u64]) -> Vec<Vec<String>> {
        ids.iter()
            .map(|id| vec![format!("primes #{id}"), format!("#{id}")])
            .collect()
    }

    #[test]
    fn a_wide_bar_has_its_label_on_it() {
        let places = place_labels(&[(130.0, 400.0)], &names(&[0]));
        assert_eq!(
            places,
            [Place {
                x: 134.0,
                text: "primes #0".into(),
                inside: true
            }]
        );
    }

    #[test]
    fn a_short_bar_is_labelled_beside_it() {
        // A long bar, then a short one with room on its right.
        let places = place_labels(&[(130.0, 400.0), (402.0, 410.0)], &names(&[0, 1]));
        assert_eq!(texts(&places), ["primes #0", "primes #1"]);
        assert!(!places[1].inside && places[1].x > 410.0);
        // A short bar squeezed before a long one: its label goes on its left.
        let places = place_labels(&[(300.0, 305.0), (307.0, 700.0)], &names(&[1, 0]));
        assert_eq!(texts(&places), ["primes #1", "primes #0"]);
        assert!(places[0].x + text_width("primes #1") < 300.0);
        // No room for the long name anywhere: the short one.
        let places = place_labels(
            &[(130.0, 200.0), (202.0, 206.0), (240.0, 700.0)],
            &names(&[0, 1, 2]),
        );
        assert_eq!(texts(&places), ["primes #0", "#1", "primes #2"]);
    }

    #[test]
    fn every_bar_of_a_drawn_timeline_is_labelled() {
        let span = |thread: &str, id, start_ns, end_ns| SpanRecord {
            thread: thread.into(),
            tid: 1,
            name: "primes".into(),
            id,
            start_ns,
            end_ns,
        };
        // Bars of 1 %, 2 % and 97 % of the time, side by side.
        let spans = [
            span("a", 0, 0, 1_000_000),
            span("a", 1, 1_000_000, 3_000_000),
            span("a", 2, 3_000_000, 100_000_000),
            span("b", 3, 0, 50_000_000),
        ];
        let svg = svg(&spans, 0, 100_000_000);
        for id in 0..4 {
            assert!(
                svg.contains(&format!(">#{id}<")) || svg.contains(&format!(">primes #{id}<")),
                "bar {id} has a label: {svg}"
            );
        }
    }

    #[test]
    fn unnamed_threads_are_numbered_not_named_by_tid() {
        let span = |thread: &str, tid, id| SpanRecord {
            thread: thread.into(),
            tid,
            name: "fetch".into(),
            id,
            start_ns: id * 1_000_000,
            end_ns: (id + 1) * 1_000_000,
        };
        let spans = [
            span("thread-4711", 4711, 0),
            span("main", 4700, 1),
            span("thread-4702", 4702, 2),
            span("thread-4711", 4711, 3),
        ];
        let svg = svg(&spans, 0, 4_000_000);
        assert!(svg.contains(">unnamed thread 1<"), "{svg}");
        assert!(svg.contains(">main<"), "{svg}");
        assert!(svg.contains(">unnamed thread 2<"), "{svg}");
        assert!(!svg.contains("4711") && !svg.contains("4702"), "{svg}");
    }
}
