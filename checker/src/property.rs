//! Deciding a cell's concurrency properties from its trace.
//!
//! Every check reads only what labkit recorded (`notebooks/labkit/TRACE.md`):
//! spans, traced locks, worker processes and the test's `delivered` marks.
//! labkit records a span's or lock's start after the fact and its end before
//! it, so each recorded interval lies inside the real one: an overlap the
//! trace shows really happened, and a violation found here is never an
//! artefact of logging. Messages say what was expected and what happened;
//! the evidence says which threads, when (ms after the cell started) and
//! holding what, so a learner can find the moment in their own code.

mod samples;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::time::Instant;

use labkit::trace::UnnamedThreads;

use crate::kernel::ThreadActivity;
use crate::settings::{Property, PropertyKind};
use crate::timeline::Moment;
use crate::trace::{Event, What};

pub use samples::{Leftover, Leftovers};

/// What one run of a test cell showed: what it left in the trace, what the
/// checker sampled of it, and how the test's own assertions ended.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    /// The genuine events between the cell's start and end, in time order.
    pub events: &'a [Event],
    /// The cell's start (CLOCK_MONOTONIC ns): times are reported as ms after
    /// it, the clock a learner can relate to their own cell.
    pub origin_ns: u64,
    /// The process the cell's code ran in: worker processes are the others,
    /// and the test's own `delivered` marks come from this one.
    pub runner_pid: u32,
    /// The runner's threads by tid, as the checker sampled them while the
    /// cell ran: when each was first and last seen alive, how often it was
    /// runnable and the CPU it used.
    pub threads: &'a BTreeMap<u32, ThreadActivity>,
    /// CPU seconds the runner used while the cell ran.
    pub runner_cpu_s: f64,
    /// The run's wall seconds.
    pub wall_s: f64,
    /// What was still there once the cell ended: looked for only when a
    /// `no_leaks` property asks.
    pub leftovers: Option<&'a Leftovers>,
    /// Why the test's own assertions failed, if they did: the properties
    /// they decide are then not run.
    pub test_failure: Option<&'a str>,
    /// The numbers the trace gave threads spawned without a name, so the
    /// checker's samples name them the same.
    pub unnamed: &'a UnnamedThreads,
}

impl<'a> Evidence<'a> {
    /// The evidence of a run of the runner `runner_pid` that recorded and
    /// left nothing, passed its test, and whose threads were sampled as
    /// `threads`.
    pub fn empty(
        runner_pid: u32,
        threads: &'a BTreeMap<u32, ThreadActivity>,
        unnamed: &'a UnnamedThreads,
    ) -> Evidence<'a> {
        Evidence {
            events: &[],
            origin_ns: 0,
            runner_pid,
            threads,
            runner_cpu_s: 0.0,
            wall_s: 0.0,
            leftovers: None,
            test_failure: None,
            unnamed,
        }
    }
}

/// What the trace says about one property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The trace shows the property held in this run.
    Holds,
    /// The trace shows it did not.
    Fails {
        /// What was expected and what happened, one sentence (led by the
        /// property's note, when it has one).
        message: String,
        /// The events behind it, one per line: which threads, when, holding what.
        evidence: String,
        /// The moment it broke, to draw: where a limit was exceeded, a lock
        /// cycle closed, a result came out of order.
        moment: Option<Moment>,
    },
    /// The trace cannot tell (nothing was recorded to judge by, or the
    /// property lacks a parameter); the reason says which.
    Inconclusive(String),
    /// Not judged: the test's own assertions decide it, and they failed
    /// first; the reason says how.
    NotRun(String),
}

/// How far apart two completion times must be (ns) before delivering them
/// in the other order counts as out of completion order: delivery happens
/// after the exit, and the threads delivering race.
const ORDER_TOLERANCE_NS: u64 = 25_000_000;

/// How many items a message lists before it says how many more there are.
const LIST_MAX: usize = 10;

/// How many steps the lock-cycle search may take: lab graphs have a handful
/// of lock classes, so this only stops a pathological trace.
const CYCLE_SEARCH_BUDGET: usize = 200_000;

/// Decides a property of one run of its test cell.
pub fn decide(property: &Property, evidence: &Evidence) -> Verdict {
    use PropertyKind as K;
    let from_trace = match &property.kind {
        K::MaxInside { span, limit } => with_spans(span, evidence, |spans| {
            max_inside(evidence, span, *limit, spans)
        }),
        K::MinInside { span, at_least } => with_spans(span, evidence, |spans| {
            min_inside(evidence, span, *at_least, spans)
        }),
        K::Parallel { span, at_least } => with_spans(span, evidence, |spans| {
            parallel(evidence, span, *at_least, spans)
        }),
        K::ExactlyOnce { span } => {
            with_spans(span, evidence, |spans| exactly_once(evidence, span, spans))
        }
        K::OwnerThreadOnly { span } => with_spans(span, evidence, |spans| {
            owner_thread_only(evidence, span, spans)
        }),
        K::CompletionOrder { span } => with_spans(span, evidence, |spans| {
            completion_order(evidence, span, spans)
        }),
        K::Streaming { span } => {
            with_spans(span, evidence, |spans| streaming(evidence, span, spans))
        }
        K::Processes {
            exactly,
            reused,
            span,
        } => processes(*exactly, *reused, span.as_deref(), evidence),
        K::NoLockCycle => no_lock_cycle(evidence),
        // From the checker's samples: their messages say what the property
        // means already, so no note leads them.
        K::NoLeaks => return samples::no_leaks(evidence),
        K::SleepsNotSpins => return samples::sleeps_not_spins(evidence),
        // A run that hung was stopped and never judged: one judged ended
        // within its time limit.
        K::NoHang => return Verdict::Holds,
        // The test's own assertions decide these.
        K::ResultsEqual
        | K::InputOrder { .. }
        | K::Fifo
        | K::Bounded
        | K::FasterThanSequential
        | K::ReleaseOnPanic => {
            return match evidence.test_failure {
                None => Verdict::Holds,
                Some(failure) => Verdict::NotRun(format!("the test failed first: {failure}")),
            };
        }
    };
    match (from_trace, &property.note) {
        (
            Verdict::Fails {
                message,
                evidence,
                moment,
            },
            Some(note),
        ) => Verdict::Fails {
            message: format!("{note}: {message}"),
            evidence,
            moment,
        },
        (verdict, _) => verdict,
    }
}

/// A short label for reports: `max_inside(fetch)`, `processes`,
/// `no_lock_cycle`; the span tells apart two properties of one kind.
pub fn label(property: &Property) -> String {
    let kind = property.kind.name();
    match property.kind.span() {
        Some(span) => format!("{kind}({span})"),
        None => kind.to_owned(),
    }
}

fn fails(message: String, evidence: String) -> Verdict {
    Verdict::Fails {
        message,
        evidence,
        moment: None,
    }
}

/// Fails, with the moment it broke to draw.
fn fails_at(message: String, evidence: String, moment: Moment) -> Verdict {
    Verdict::Fails {
        message,
        evidence,
        moment: Some(moment),
    }
}

impl Evidence<'_> {
    /// Milliseconds after the cell's start, as messages print them.
    fn ms(&self, t_ns: u64) -> String {
        format!("{:.1}", t_ns.saturating_sub(self.origin_ns) as f64 / 1e6)
    }

    /// A thread as messages name it: its name, and, when it is not the
    /// cell's own process, its process as the timeline's lanes name it
    /// (`main in labkit-worker 2`): pids belong in the evidence.
    fn thread(&self, event: &Event) -> String {
        if event.pid == self.runner_pid {
            event.thread.clone()
        } else {
            crate::timeline::lane_names(self.events, self.runner_pid)
                .remove(&(event.pid, event.tid))
                .unwrap_or_else(|| "a thread of another process".to_owned())
        }
    }

    /// A thread as a picture's mark names it: pids belong in the evidence,
    /// so a thread of another process (its lane says which) is named so.
    fn thread_named(&self, event: &Event) -> String {
        if event.pid == self.runner_pid {
            event.thread.clone()
        } else {
            "a thread of another process".to_owned()
        }
    }

    /// A thread as evidence names it: also its tid, so two threads of one
    /// name stay apart.
    fn thread_full(&self, event: &Event) -> String {
        let mut details = Vec::new();
        if event.pid != self.runner_pid {
            details.push(format!("pid {}", event.pid));
        }
        let says_tid = event.thread == "main" && event.tid == event.pid;
        if !says_tid {
            details.push(format!("tid {}", event.tid));
        }
        if details.is_empty() {
            event.thread.clone()
        } else {
            format!("{} ({})", event.thread, details.join(", "))
        }
    }
}

// ---------------------------------------------------------------------------
// Spans

/// One span of the property's name, from its enter to its exit.
struct Span<'e> {
    enter: &'e Event,
    /// None when it never left within the window (a hung or killed task).
    exit: Option<&'e Event>,
    /// Until when it was surely inside: its exit, or else the last event its
    /// process recorded (the process lived, with the span open, that long).
    until_ns: u64,
}

impl Span<'_> {
    fn key(&self) -> (u32, u32) {
        (self.enter.pid, self.enter.tid)
    }
}

fn id_text(id: Option<u64>) -> String {
    id.map_or_else(|| "(no id)".to_owned(), |id| id.to_string())
}

/// The spans named `name`, each exit matched to the latest open enter of the
/// same (pid, tid, name, id). An exit with no enter in the window belongs to
/// a span begun before the cell and is left out.
fn spans<'e>(events: &'e [Event], name: &str) -> Vec<Span<'e>> {
    let mut spans: Vec<Span<'e>> = Vec::new();
    let mut open: HashMap<(u32, u32, Option<u64>), Vec<usize>> = HashMap::new();
    let mut last_of_pid: HashMap<u32, u64> = HashMap::new();
    for event in events {
        let last = last_of_pid.entry(event.pid).or_default();
        *last = (*last).max(event.t_ns);
        if event.name != name {
            continue;
        }
        let key = (event.pid, event.tid, event.id);
        match event.what {
            What::SpanEnter => {
                open.entry(key).or_default().push(spans.len());
                spans.push(Span {
                    enter: event,
                    exit: None,
                    until_ns: event.t_ns,
                });
            }
            What::SpanExit => {
                if let Some(index) = open.get_mut(&key).and_then(Vec::pop) {
                    spans[index].exit = Some(event);
                    spans[index].until_ns = event.t_ns;
                }
            }
            _ => {}
        }
    }
    for span in spans.iter_mut().filter(|span| span.exit.is_none()) {
        span.until_ns = last_of_pid[&span.enter.pid].max(span.enter.t_ns);
    }
    spans
}

/// Runs `check` on the spans named `span`; fails when there are none,
/// since then the learner's code did not mark its tasks (or named them
/// otherwise).
fn with_spans(span: &str, evidence: &Evidence, check: impl FnOnce(&[Span]) -> Verdict) -> Verdict {
    let found = spans(evidence.events, span);
    if !found.is_empty() {
        return check(&found);
    }
    let mut others: BTreeMap<&str, usize> = BTreeMap::new();
    for event in evidence.events.iter().filter(|e| e.what == What::SpanEnter) {
        *others.entry(event.name.as_str()).or_default() += 1;
    }
    let seen = if others.is_empty() {
        "no spans at all were recorded in this run".to_owned()
    } else {
        let names: Vec<String> = others
            .iter()
            .map(|(name, count)| format!("{name} ({count})"))
            .collect();
        format!("spans recorded in this run: {}", names.join(", "))
    };
    fails(
        format!(
            "no {span} spans were recorded: run each task inside labkit::in_span(\"{span}\", id, ..)"
        ),
        seen,
    )
}

/// The first moment the most spans (or the most distinct threads) were
/// inside at once.
struct Busiest {
    at_ns: u64,
    /// Indices into the spans, in the order they entered.
    inside: Vec<usize>,
    value: usize,
}

/// Sweeps enters and ends in time order. At equal times, ends of spans that
/// left come before enters, so touching intervals do not count as overlap;
/// a span that never left ends after enters, since it was still inside.
fn busiest(spans: &[Span], by_thread: bool) -> Busiest {
    busiest_until(spans, by_thread, usize::MAX)
}

/// [`busiest`], stopping at the first moment more than `limit` are inside:
/// where a limit was first broken.
fn busiest_until(spans: &[Span], by_thread: bool, limit: usize) -> Busiest {
    let mut points: Vec<(u64, u8, usize)> = Vec::with_capacity(spans.len() * 2);
    for (index, span) in spans.iter().enumerate() {
        points.push((span.enter.t_ns, 1, index));
        let left_later = span.exit.is_some() && span.until_ns > span.enter.t_ns;
        points.push((span.until_ns, if left_later { 0 } else { 2 }, index));
    }
    points.sort_unstable();
    let mut inside: BTreeSet<usize> = BTreeSet::new();
    let mut threads: HashMap<(u32, u32), usize> = HashMap::new();
    let mut best = Busiest {
        at_ns: 0,
        inside: Vec::new(),
        value: 0,
    };
    for (t_ns, phase, index) in points {
        let thread = spans[index].key();
        if phase == 1 {
            inside.insert(index);
            *threads.entry(thread).or_default() += 1;
            let value = if by_thread {
                threads.len()
            } else {
                inside.len()
            };
            if value > best.value {
                let mut now: Vec<usize> = inside.iter().copied().collect();
                now.sort_by_key(|&i| (spans[i].enter.t_ns, i));
                best = Busiest {
                    at_ns: t_ns,
                    inside: now,
                    value,
                };
                if value > limit {
                    break;
                }
            }
        } else if inside.remove(&index)
            && let Some(count) = threads.get_mut(&thread)
        {
            *count -= 1;
            if *count == 0 {
                threads.remove(&thread);
            }
        }
    }
    best
}

/// One evidence line per span: which, on which thread, from when to when.
fn span_line(evidence: &Evidence, name: &str, span: &Span) -> String {
    let left = match span.exit {
        Some(exit) => format!("left at {} ms", evidence.ms(exit.t_ns)),
        None => "never left".to_owned(),
    };
    format!(
        "  {name} {} on {}, entered at {} ms, {left}",
        id_text(span.enter.id),
        evidence.thread_full(span.enter),
        evidence.ms(span.enter.t_ns)
    )
}

fn moment_evidence(evidence: &Evidence, name: &str, spans: &[Span], moment: &Busiest) -> String {
    let mut text = format!(
        "at {} ms, {} {name} spans were inside:",
        evidence.ms(moment.at_ns),
        moment.inside.len()
    );
    for &index in &moment.inside {
        text.push('\n');
        text.push_str(&span_line(evidence, name, &spans[index]));
    }
    text
}

fn max_inside(evidence: &Evidence, name: &str, limit: u32, spans: &[Span]) -> Verdict {
    let moment = busiest(spans, false);
    if moment.value <= limit as usize {
        return Verdict::Holds;
    }
    // The picture marks where the limit first broke, with the threads
    // inside then and at the busiest moment.
    let first = busiest_until(spans, false, limit as usize);
    let mut indices = first.inside.clone();
    indices.extend(moment.inside.iter().filter(|i| !first.inside.contains(i)));
    let inside: Vec<&Span> = indices.iter().map(|&i| &spans[i]).collect();
    let label = if first.value == moment.value {
        format!("{} in \"{name}\" at once (limit {limit})", moment.value)
    } else {
        format!(
            "limit {limit} broken: {} in \"{name}\" at once ({} at the most)",
            first.value, moment.value
        )
    };
    fails_at(
        format!(
            "at most {limit} may be inside {name} at once, but {} were at {} ms",
            moment.value,
            evidence.ms(moment.at_ns)
        ),
        moment_evidence(evidence, name, spans, &moment),
        drawn(&inside, first.at_ns, label),
    )
}

/// The moment to draw around `spans`: the threads they ran on, from the
/// first enter to the last end, widened to take in the moment itself.
fn drawn(spans: &[&Span], at_ns: u64, label: String) -> Moment {
    let mut threads: Vec<(u32, u32)> = Vec::new();
    for span in spans {
        if !threads.contains(&span.key()) {
            threads.push(span.key());
        }
    }
    Moment {
        at_ns,
        label,
        threads,
        from_ns: spans.iter().map(|s| s.enter.t_ns).fold(at_ns, u64::min),
        to_ns: spans.iter().map(|s| s.until_ns).fold(at_ns, u64::max),
    }
}

fn min_inside(evidence: &Evidence, name: &str, at_least: u32, spans: &[Span]) -> Verdict {
    let moment = busiest(spans, false);
    if moment.value >= at_least as usize {
        return Verdict::Holds;
    }
    let all: Vec<&Span> = spans.iter().collect();
    let mut picture = drawn(
        &all,
        moment.at_ns,
        format!(
            "the most in \"{name}\" at once: {} (needs {at_least})",
            moment.value
        ),
    );
    picture
        .threads
        .sort_by_key(|key| !moment.inside.iter().any(|&i| spans[i].key() == *key));
    fails_at(
        format!(
            "{name} should reach {at_least} at once, but at most {} were inside at once: the work never overlapped that much",
            moment.value
        ),
        format!(
            "the busiest moment: {}",
            moment_evidence(evidence, name, spans, &moment)
        ),
        picture,
    )
}

/// Spread over enough threads working at the same time. Spans overlapping
/// in wall time is the strongest proof, but short CPU-bound spans overlap
/// only when cores are free, which the learner does not control (a loaded
/// 2-core grader, half a vCPU on Gradescope). So threads count too when
/// their working periods (first span in to last span out) overlap, or when
/// they were alive at the same time: a pool whose threads take turns on a
/// busy machine, even one whose second thread only got a core once the
/// first was done, passes, while threads started and joined one after the
/// other (parallel-looking, sequential) do not: none lives beside another.
fn parallel(evidence: &Evidence, name: &str, at_least: u32, spans: &[Span]) -> Verdict {
    let moment = busiest(spans, true);
    let groups = by_thread(spans);
    let threads = groups.len();
    let enough = at_least as usize;
    if moment.value >= enough
        || working_together(&groups) >= enough
        || alive_together(evidence, &groups) >= enough
    {
        return Verdict::Holds;
    }
    let mut text = format!("{name} spans by thread:");
    for group in by_thread(spans) {
        let first = group[0];
        let last_ns = group.iter().map(|s| s.until_ns).max().unwrap_or_default();
        let _ = write!(
            text,
            "\n  {}: {} spans, from {} ms to {} ms",
            evidence.thread_full(first.enter),
            group.len(),
            evidence.ms(first.enter.t_ns),
            evidence.ms(last_ns)
        );
    }
    let _ = write!(
        text,
        "\nat most {} thread(s) were inside {name} at once (first at {} ms)",
        moment.value,
        evidence.ms(moment.at_ns)
    );
    let all: Vec<&Span> = spans.iter().collect();
    let picture = drawn(
        &all,
        moment.at_ns,
        format!("at most {} thread(s) in \"{name}\" at once", moment.value),
    );
    let message = if threads >= enough {
        format!(
            "the work in {name} should run on at least {at_least} threads at the same time, but its {threads} threads worked one after the other (each started after the last one finished): start them all, then wait for them"
        )
    } else {
        format!(
            "the work in {name} should be spread over at least {at_least} threads, but ran on {threads}"
        )
    };
    fails_at(message, text, picture)
}

/// The most of these threads of the runner that one sample saw alive
/// together: a thread is alive from its first sample to its last.
fn alive_together(evidence: &Evidence, groups: &[Vec<&Span>]) -> usize {
    let lifetimes: Vec<(Instant, Instant)> = groups
        .iter()
        .filter(|group| group[0].enter.pid == evidence.runner_pid)
        .filter_map(|group| evidence.threads.get(&group[0].enter.tid))
        .map(|thread| thread.sampled)
        .collect();
    // The most lifetimes that hold one of their starts: where a maximum
    // overlap of closed intervals begins.
    lifetimes
        .iter()
        .map(|&(start, _)| {
            lifetimes
                .iter()
                .filter(|&&(from, to)| from <= start && start <= to)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// The most threads whose working periods, from their first span's enter
/// to their last span's end, overlap at one moment.
fn working_together(groups: &[Vec<&Span>]) -> usize {
    let mut points: Vec<(u64, i32)> = Vec::new();
    for group in groups {
        let from = group.iter().map(|s| s.enter.t_ns).min().unwrap_or_default();
        let to = group.iter().map(|s| s.until_ns).max().unwrap_or_default();
        // Ends sort before starts at the same instant: touching is no overlap.
        points.push((from, 1));
        points.push((to, -1));
    }
    points.sort_unstable_by_key(|&(t, delta)| (t, delta));
    let (mut now, mut most) = (0i32, 0i32);
    for (_, delta) in points {
        now += delta;
        most = most.max(now);
    }
    most as usize
}

/// The spans grouped by thread, the busiest thread first (then the earliest).
fn by_thread<'s, 'e>(spans: &'s [Span<'e>]) -> Vec<Vec<&'s Span<'e>>> {
    let mut groups: BTreeMap<(u32, u32), Vec<&Span>> = BTreeMap::new();
    for span in spans {
        groups.entry(span.key()).or_default().push(span);
    }
    let mut groups: Vec<Vec<&Span>> = groups.into_values().collect();
    groups.sort_by_key(|group| (std::cmp::Reverse(group.len()), group[0].enter.t_ns));
    groups
}

/// `a, b, c` with at most [`LIST_MAX`] items, then how many more.
fn list_some(items: &[String]) -> String {
    let mut text = items
        .iter()
        .take(LIST_MAX)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > LIST_MAX {
        let _ = write!(text, " and {} more", items.len() - LIST_MAX);
    }
    text
}

fn exactly_once(evidence: &Evidence, name: &str, spans: &[Span]) -> Verdict {
    let mut by_id: BTreeMap<Option<u64>, Vec<&Span>> = BTreeMap::new();
    for span in spans {
        by_id.entry(span.enter.id).or_default().push(span);
    }
    let twice: Vec<(Option<u64>, usize)> = by_id
        .iter()
        .filter(|(_, group)| group.len() > 1)
        .map(|(&id, group)| (id, group.len()))
        .collect();
    let unfinished: Vec<Option<u64>> = by_id
        .iter()
        .filter(|(_, group)| group.iter().any(|span| span.exit.is_none()))
        .map(|(&id, _)| id)
        .collect();
    if twice.is_empty() && unfinished.is_empty() {
        return Verdict::Holds;
    }
    let mut parts = Vec::new();
    if !twice.is_empty() {
        let ids: Vec<String> = twice
            .iter()
            .map(|&(id, count)| format!("{} ({count} times)", id_text(id)))
            .collect();
        parts.push(format!("ids entered more than once: {}", list_some(&ids)));
    }
    if !unfinished.is_empty() {
        let ids: Vec<String> = unfinished.iter().map(|&id| id_text(id)).collect();
        parts.push(format!("ids entered but never left: {}", list_some(&ids)));
    }
    let mut text = format!("the {name} spans of those ids:");
    let problems = twice.iter().map(|(id, _)| *id).chain(unfinished.clone());
    let problems: BTreeSet<Option<u64>> = problems.collect();
    for id in problems.into_iter().take(LIST_MAX) {
        for span in &by_id[&id] {
            text.push('\n');
            text.push_str(&span_line(evidence, name, span));
        }
    }
    Verdict::Fails {
        message: format!(
            "every {name} id must be entered exactly once and left: {}",
            parts.join("; ")
        ),
        evidence: text,
        moment: first_repeat_or_unfinished(name, &by_id, spans),
    }
}

/// The moment to draw for [`exactly_once`]: the earliest second entry of an
/// id, with every thread that ran that id (the second entry's first); else
/// the first span that never left, from its entry.
fn first_repeat_or_unfinished(
    name: &str,
    by_id: &BTreeMap<Option<u64>, Vec<&Span>>,
    spans: &[Span],
) -> Option<Moment> {
    // Each group is in entry order, as `spans` found them.
    let repeated = by_id
        .values()
        .filter(|group| group.len() > 1)
        .min_by_key(|group| group[1].enter.t_ns);
    if let Some(group) = repeated {
        let second = group[1];
        let mut shown = vec![second, group[0]];
        shown.extend(&group[2..]);
        return Some(drawn(
            &shown,
            second.enter.t_ns,
            format!("{name} {} entered a second time", id_text(second.enter.id)),
        ));
    }
    let never_left = spans
        .iter()
        .filter(|span| span.exit.is_none())
        .min_by_key(|span| span.enter.t_ns)?;
    Some(drawn(
        &[never_left],
        never_left.enter.t_ns,
        format!(
            "{name} {} entered here, never left",
            id_text(never_left.enter.id)
        ),
    ))
}

fn owner_thread_only(evidence: &Evidence, name: &str, spans: &[Span]) -> Verdict {
    let groups = by_thread(spans);
    if groups.len() <= 1 {
        return Verdict::Holds;
    }
    let counts: Vec<String> = groups
        .iter()
        .map(|group| format!("{} on {}", group.len(), evidence.thread(group[0].enter)))
        .collect();
    let mut text = String::new();
    for group in &groups {
        if !text.is_empty() {
            text.push('\n');
        }
        let _ = write!(
            text,
            "{}: {} {name} spans, the first:\n{}",
            evidence.thread_full(group[0].enter),
            group.len(),
            span_line(evidence, name, group[0])
        );
    }
    Verdict::Fails {
        message: format!(
            "all {name} spans must run on one thread (the one that owns the state), but they ran on {} threads: {}",
            groups.len(),
            list_some(&counts)
        ),
        evidence: text,
        moment: first_intrusion(evidence, name, &groups),
    }
}

/// The moment to draw for [`owner_thread_only`]: the first span on a thread
/// other than the owner (the one that ran the most), beside the owner's
/// span entered last before it (or its first).
fn first_intrusion(evidence: &Evidence, name: &str, groups: &[Vec<&Span>]) -> Option<Moment> {
    let (owner, others) = groups.split_first()?;
    let intruder = others.iter().flatten().min_by_key(|span| span.enter.t_ns)?;
    let at_ns = intruder.enter.t_ns;
    let beside = owner
        .iter()
        .rev()
        .find(|span| span.enter.t_ns <= at_ns)
        .or(owner.first())?;
    Some(drawn(
        &[beside, intruder],
        at_ns,
        format!(
            "{name} {} runs on {}, not on {}",
            id_text(intruder.enter.id),
            evidence.thread_named(intruder.enter),
            evidence.thread_named(beside.enter)
        ),
    ))
}

// ---------------------------------------------------------------------------
// Deliveries (as_completed)

/// The test's `delivered` marks, from the cell's own process: (event, task).
fn deliveries<'e>(evidence: &Evidence<'e>) -> Vec<(&'e Event, u64)> {
    evidence
        .events
        .iter()
        .filter(|e| e.name == "delivered" && e.pid == evidence.runner_pid)
        .filter_map(|e| match &e.what {
            What::Mark { fields } => Some((e, fields.get("task")?.as_u64()?)),
            _ => None,
        })
        .collect()
}

fn no_deliveries(name: &str) -> Verdict {
    Verdict::Inconclusive(format!(
        "no delivered marks were recorded, so the order results were handed back in is unknown \
         (the test must call labkit::trace::mark(\"delivered\", json!({{\"task\": index}})) for each \
         result it receives from the {name} tasks)"
    ))
}

fn completion_order(evidence: &Evidence, name: &str, spans: &[Span]) -> Verdict {
    let delivered = deliveries(evidence);
    if delivered.is_empty() {
        return no_deliveries(name);
    }
    // A task's completion is the first time a span of its id left.
    let mut finished: HashMap<u64, u64> = HashMap::new();
    for span in spans {
        if let (Some(id), Some(exit)) = (span.enter.id, span.exit) {
            let t = finished.entry(id).or_insert(exit.t_ns);
            *t = (*t).min(exit.t_ns);
        }
    }
    // The worst inversion: a delivered before b, b finished long before a.
    let mut latest: Option<(u64, u64)> = None; // (finished, task) delivered so far
    // (gap, (earlier task, its finish), (later task, its finish))
    type Inversion = (u64, (u64, u64), (u64, u64));
    let mut worst: Option<Inversion> = None;
    for &(_, task) in &delivered {
        let Some(&done) = finished.get(&task) else {
            continue;
        };
        if let Some((earlier_done, earlier_task)) = latest {
            let gap = earlier_done.saturating_sub(done);
            if gap > ORDER_TOLERANCE_NS && worst.is_none_or(|(g, _, _)| gap > g) {
                worst = Some((gap, (earlier_task, earlier_done), (task, done)));
            }
        }
        if latest.is_none_or(|(d, _)| done > d) {
            latest = Some((done, task));
        }
    }
    let Some((_, (a, a_done), (b, b_done))) = worst else {
        return Verdict::Holds;
    };
    let handed = |task: u64| delivered.iter().find(|(_, t)| *t == task).map(|(e, _)| *e);
    let picture = handed(b).map(|late| {
        let tasks: Vec<&Span> = spans
            .iter()
            .filter(|s| s.enter.id == Some(a) || s.enter.id == Some(b))
            .collect();
        let mut moment = drawn(
            &tasks,
            late.t_ns,
            format!("task {b} handed back after task {a}, though it finished first"),
        );
        moment.threads.insert(0, (late.pid, late.tid));
        moment
    });
    let mut text = String::from("in the order delivered:");
    for &(event, task) in &delivered {
        let done = finished.get(&task).map_or_else(
            || "never finished".to_owned(),
            |&t| format!("finished at {} ms", evidence.ms(t)),
        );
        let _ = write!(
            text,
            "\n  task {task}: {done}, delivered at {} ms",
            evidence.ms(event.t_ns)
        );
    }
    Verdict::Fails {
        message: format!(
            "results must be handed back as tasks complete: task {a} (finished at {} ms) was delivered before task {b} (finished at {} ms)",
            evidence.ms(a_done),
            evidence.ms(b_done)
        ),
        evidence: text,
        moment: picture,
    }
}

fn streaming(evidence: &Evidence, name: &str, spans: &[Span]) -> Verdict {
    let delivered = deliveries(evidence);
    let Some(&(first, task)) = delivered.first() else {
        return no_deliveries(name);
    };
    let Some(slowest) = spans
        .iter()
        .filter_map(|span| Some((span, span.exit?)))
        .max_by_key(|(_, exit)| exit.t_ns)
    else {
        return Verdict::Inconclusive(format!(
            "no {name} span ended in this run, so there is no slowest task to compare with"
        ));
    };
    if first.t_ns < slowest.1.t_ns {
        return Verdict::Holds;
    }
    let all: Vec<&Span> = spans.iter().collect();
    let mut picture = drawn(
        &all,
        first.t_ns,
        format!("the first result, after every {name} ended"),
    );
    picture.threads.insert(0, (first.pid, first.tid));
    fails_at(
        format!(
            "the first result must arrive before the slowest task ends (collecting everything and then sorting is not as_completed): first delivery at {} ms, last task ended at {} ms",
            evidence.ms(first.t_ns),
            evidence.ms(slowest.1.t_ns)
        ),
        format!(
            "the slowest task:\n{}\nthe first delivery: task {task} at {} ms, on {}",
            span_line(evidence, name, slowest.0),
            evidence.ms(first.t_ns),
            evidence.thread_full(first)
        ),
        picture,
    )
}

// ---------------------------------------------------------------------------
// Worker processes

/// `exactly` worker processes (at least one, without it), each `reused` for
/// several tasks if asked; only tasks in `span` count, when given.
fn processes(
    exactly: Option<u32>,
    reused: bool,
    span: Option<&str>,
    evidence: &Evidence,
) -> Verdict {
    // Each labkit-worker records worker_start with its own pid; one in the
    // cell's process would be serve() called in-process, not a process.
    let mut workers: BTreeMap<u32, &Event> = BTreeMap::new();
    for event in evidence.events {
        if event.what == What::WorkerStart
            && event.name == "labkit-worker"
            && event.pid != evidence.runner_pid
        {
            workers.entry(event.pid).or_insert(event);
        }
    }
    // A worker runs each task in a span named after the task, in its pid.
    let mut tasks: BTreeMap<u32, Vec<&Event>> = BTreeMap::new();
    let mut exits: BTreeMap<u32, &Event> = BTreeMap::new();
    for event in evidence.events {
        if !workers.contains_key(&event.pid) {
            continue;
        }
        if event.what == What::SpanEnter && span.is_none_or(|s| s == event.name) {
            tasks.entry(event.pid).or_default().push(event);
        }
        if event.what == What::WorkerExit {
            exits.insert(event.pid, event);
        }
    }
    let ran = |pid: u32| tasks.get(&pid).map_or(0, Vec::len);
    let mut text = String::new();
    for (&pid, start) in &workers {
        if !text.is_empty() {
            text.push('\n');
        }
        let names: Vec<String> = tasks
            .get(&pid)
            .into_iter()
            .flatten()
            .map(|e| format!("{} {}", e.name, id_text(e.id)))
            .collect();
        let _ = write!(
            text,
            "worker pid {pid}: started at {} ms, ran {} task(s)",
            evidence.ms(start.t_ns),
            ran(pid)
        );
        if !names.is_empty() {
            let _ = write!(text, " ({})", list_some(&names));
        }
        if let Some(exit) = exits.get(&pid) {
            let _ = write!(text, ", exited at {} ms", evidence.ms(exit.t_ns));
        }
    }
    if text.is_empty() {
        text = "no labkit-worker process recorded worker_start in this run".to_owned();
    }
    let seen = workers.len();
    match exactly {
        Some(exactly) if seen != exactly as usize => {
            let hint = if seen > exactly as usize {
                format!(
                    " (a pool that starts its workers again, for each task or each call, starts too many: start {exactly} once and send each several tasks)"
                )
            } else if seen == 0 {
                " (the work must run in labkit-worker processes, started with labkit::worker::command())"
                    .to_owned()
            } else {
                String::new()
            };
            return Verdict::Fails {
                message: format!(
                    "expected exactly {exactly} worker processes, saw {seen} start{hint}"
                ),
                evidence: text,
                // Too many: drawn where the count went past the limit.
                moment: worker_starting(evidence, &workers, exactly as usize, |n| {
                    format!("labkit-worker {n} starts: exactly {exactly} expected")
                }),
            };
        }
        None if seen == 0 => {
            return fails(
                "the work must run in worker processes, but no labkit-worker process started"
                    .to_owned(),
                text,
            );
        }
        _ => {}
    }
    // A pool reuses its workers; a process per task never does. How a
    // shared queue spreads tasks over workers is the scheduler's choice (one
    // worker may run a single task, or none), so only "no worker ever ran a
    // second task" tells a process per task from a pool.
    let total: usize = workers.keys().map(|&pid| ran(pid)).sum();
    if reused && total >= 2 && workers.keys().all(|&pid| ran(pid) <= 1) {
        return Verdict::Fails {
            message: format!(
                "each worker should be reused for several tasks, but no worker ran a second one: {total} tasks in {seen} processes, a process per task (start the pool once and send each worker several tasks)"
            ),
            evidence: text,
            moment: worker_starting(evidence, &workers, 1, |_| {
                "labkit-worker 2 starts: labkit-worker 1 is not reused".to_owned()
            }),
        };
    }
    Verdict::Holds
}

/// The moment the worker started after the first `before` (in start order)
/// begins, to draw with every worker's main thread; `label` gets its
/// number. None when no more than `before` started.
fn worker_starting(
    evidence: &Evidence,
    workers: &BTreeMap<u32, &Event>,
    before: usize,
    label: impl FnOnce(usize) -> String,
) -> Option<Moment> {
    let mut starts: Vec<&Event> = workers.values().copied().collect();
    starts.sort_by_key(|start| (start.t_ns, start.pid));
    let start = *starts.get(before)?;
    // Until that worker last did something: its first task in the picture.
    let until = evidence
        .events
        .iter()
        .filter(|event| event.pid == start.pid)
        .map(|event| event.t_ns)
        .max()
        .unwrap_or(start.t_ns);
    Some(Moment {
        at_ns: start.t_ns,
        label: label(before + 1),
        threads: starts.iter().map(|s| (s.pid, s.tid)).collect(),
        from_ns: starts[0].t_ns,
        to_ns: until,
    })
}

// ---------------------------------------------------------------------------
// Lock order

/// An edge of the lock-order graph: some thread took (or waited for) `to`
/// while holding `from`.
struct Edge<'e> {
    /// The first event that made it, per thread (pid, tid).
    by_thread: BTreeMap<(u32, u32), &'e Event>,
    /// Other locks held every time it was made: a common gate lock
    /// serialises the edges it guards, so a cycle under one cannot deadlock.
    gate: BTreeSet<String>,
}

fn no_lock_cycle(evidence: &Evidence) -> Verdict {
    // Both waits and acquisitions count: a run that did deadlock shows its
    // last edges only as lock_wait.
    let mut edges: BTreeMap<(String, String), Edge> = BTreeMap::new();
    let mut locks_taken = false;
    for event in evidence.events {
        if !matches!(
            event.what,
            What::LockAcquired { .. } | What::LockWait { .. }
        ) {
            continue;
        }
        locks_taken = true;
        // A try_lock that succeeded never waited: holding `from` while
        // trying `to` and backing off on failure cannot deadlock.
        if !event.may_wait() {
            continue;
        }
        let held = event.held();
        for from in held {
            if from.name == event.name {
                continue;
            }
            let others: BTreeSet<String> = held
                .iter()
                .filter(|h| h.name != from.name && h.name != event.name)
                .map(|h| h.name.clone())
                .collect();
            let key = (from.name.clone(), event.name.clone());
            match edges.get_mut(&key) {
                Some(edge) => {
                    edge.gate.retain(|g| others.contains(g));
                    edge.by_thread
                        .entry((event.pid, event.tid))
                        .or_insert(event);
                }
                None => {
                    let by_thread = BTreeMap::from([((event.pid, event.tid), event)]);
                    edges.insert(
                        key,
                        Edge {
                            by_thread,
                            gate: others,
                        },
                    );
                }
            }
        }
    }
    if !locks_taken {
        return Verdict::Inconclusive(
            "no labkit lock was taken in this run, so there is no lock order to check".to_owned(),
        );
    }
    let names: Vec<&String> = edges
        .keys()
        .flat_map(|(from, to)| [from, to])
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let index: HashMap<&String, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut adjacent = vec![Vec::new(); names.len()];
    for (from, to) in edges.keys() {
        adjacent[index[from]].push(index[to]);
    }
    let edge = |a: usize, b: usize| &edges[&(names[a].clone(), names[b].clone())];
    let mut search = CycleSearch {
        adjacent: &adjacent,
        budget: CYCLE_SEARCH_BUDGET,
        path: Vec::new(),
        on_path: vec![false; names.len()],
        best: None,
        judge: &|cycle: &[usize]| {
            let cycle_edges: Vec<&Edge> = (0..cycle.len())
                .map(|i| edge(cycle[i], cycle[(i + 1) % cycle.len()]))
                .collect();
            let mut gate = cycle_edges[0].gate.clone();
            for e in &cycle_edges[1..] {
                gate.retain(|g| e.gate.contains(g));
            }
            if !gate.is_empty() {
                return None;
            }
            distinct_threads(&cycle_edges)
        },
    };
    for start in 0..names.len() {
        search.from(start, start);
        if search.budget == 0 {
            break;
        }
    }
    let Some((cycle, witnesses)) = search.best else {
        if search.budget == 0 {
            return Verdict::Inconclusive(
                "the lock-order graph has too many paths to search for a cycle".to_owned(),
            );
        }
        return Verdict::Holds;
    };
    // Start the story with the edge made first.
    let first = (0..cycle.len())
        .min_by_key(|&i| witnesses[i].t_ns)
        .unwrap_or(0);
    let order: Vec<usize> = (0..cycle.len())
        .map(|k| (first + k) % cycle.len())
        .collect();
    let mut steps = Vec::new();
    let mut text = String::new();
    for &i in &order {
        let (from, to) = (names[cycle[i]], names[cycle[(i + 1) % cycle.len()]]);
        let witness = witnesses[i];
        steps.push(format!(
            "{from} → {to} ({} at {} ms)",
            evidence.thread(witness),
            evidence.ms(witness.t_ns)
        ));
        let held: Vec<&str> = witness.held().iter().map(|h| h.name.as_str()).collect();
        let verb = if matches!(witness.what, What::LockWait { .. }) {
            "waited for"
        } else {
            "took"
        };
        let _ = writeln!(
            text,
            "{} {verb} {to} at {} ms while holding {}",
            evidence.thread_full(witness),
            evidence.ms(witness.t_ns),
            held.join(", ")
        );
    }
    text.push_str(
        "if these threads each take their first lock at the same moment, each waits forever for \
         the next: take the locks in one global order",
    );
    let shape = if cycle.len() == 2 {
        "in opposite orders"
    } else {
        "in a circular order"
    };
    let closing = order
        .iter()
        .map(|&i| witnesses[i])
        .max_by_key(|w| w.t_ns)
        .expect("a cycle has edges");
    let picture = Moment {
        at_ns: closing.t_ns,
        label: format!(
            "{} takes {}: the lock-order cycle closes",
            closing.thread, closing.name
        ),
        threads: order
            .iter()
            .map(|&i| (witnesses[i].pid, witnesses[i].tid))
            .collect(),
        from_ns: order
            .iter()
            .map(|&i| witnesses[i].t_ns)
            .min()
            .unwrap_or(closing.t_ns),
        to_ns: closing.t_ns,
    };
    fails_at(
        format!(
            "locks are taken {shape}, so this can deadlock: {}",
            steps.join(", ")
        ),
        text,
        picture,
    )
}

/// Gives each edge of a cycle a different thread that made it (a deadlock
/// needs one thread stuck on each edge), preferring early occurrences; None
/// when no such choice exists (for instance one thread made every edge).
fn distinct_threads<'e>(cycle: &[&Edge<'e>]) -> Option<Vec<&'e Event>> {
    let candidates: Vec<Vec<(u32, u32)>> = cycle
        .iter()
        .map(|edge| {
            let mut threads: Vec<(u32, u32)> = edge.by_thread.keys().copied().collect();
            threads.sort_by_key(|t| edge.by_thread[t].t_ns);
            threads
        })
        .collect();
    // Kuhn's augmenting paths: thread -> the edge it is given to.
    let mut owner: HashMap<(u32, u32), usize> = HashMap::new();
    fn augment(
        edge: usize,
        candidates: &[Vec<(u32, u32)>],
        owner: &mut HashMap<(u32, u32), usize>,
        seen: &mut BTreeSet<(u32, u32)>,
    ) -> bool {
        for &thread in &candidates[edge] {
            if !seen.insert(thread) {
                continue;
            }
            let free = match owner.get(&thread) {
                None => true,
                Some(&other) => augment(other, candidates, owner, seen),
            };
            if free {
                owner.insert(thread, edge);
                return true;
            }
        }
        false
    }
    for edge in 0..cycle.len() {
        if !augment(edge, &candidates, &mut owner, &mut BTreeSet::new()) {
            return None;
        }
    }
    let mut witnesses = vec![None; cycle.len()];
    for (thread, edge) in owner {
        witnesses[edge] = Some(cycle[edge].by_thread[&thread]);
    }
    witnesses.into_iter().collect()
}

/// Depth-first search for simple cycles, each found once from its smallest
/// node; keeps the shortest one `judge` accepts (then the earliest).
struct CycleSearch<'g, 'e, J: Fn(&[usize]) -> Option<Vec<&'e Event>>> {
    adjacent: &'g [Vec<usize>],
    budget: usize,
    path: Vec<usize>,
    on_path: Vec<bool>,
    best: Option<(Vec<usize>, Vec<&'e Event>)>,
    judge: &'g J,
}

impl<'e, J: Fn(&[usize]) -> Option<Vec<&'e Event>>> CycleSearch<'_, 'e, J> {
    fn from(&mut self, start: usize, node: usize) {
        self.path.push(node);
        self.on_path[node] = true;
        let adjacent = self.adjacent;
        for &next in &adjacent[node] {
            if self.budget == 0 {
                break;
            }
            self.budget -= 1;
            if next == start {
                self.consider();
            } else if next > start
                && !self.on_path[next]
                && self
                    .best
                    .as_ref()
                    .is_none_or(|(c, _)| self.path.len() < c.len())
            {
                self.from(start, next);
            }
        }
        self.on_path[node] = false;
        self.path.pop();
    }

    fn consider(&mut self) {
        let Some(witnesses) = (self.judge)(&self.path) else {
            return;
        };
        let when = |w: &[&Event]| w.iter().map(|e| e.t_ns).max().unwrap_or_default();
        let better = match &self.best {
            None => true,
            Some((cycle, best)) => (self.path.len(), when(&witnesses)) < (cycle.len(), when(best)),
        };
        if better {
            self.best = Some((self.path.clone(), witnesses));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const RUNNER: u32 = 100;

    /// Builds a synthetic trace: times in ms after the cell's start (origin 0),
    /// threads by name in the runner's process unless a pid is given.
    #[derive(Default)]
    struct Run {
        events: Vec<Event>,
        tids: HashMap<(u32, String), u32>,
        seq: HashMap<u32, u64>,
        threads: BTreeMap<u32, ThreadActivity>,
        unnamed: UnnamedThreads,
    }

    impl Run {
        /// The tid the trace gives `thread` of process `pid`.
        fn tid(&mut self, pid: u32, thread: &str) -> u32 {
            let next = self.tids.len() as u32 + 1;
            match thread {
                "main" => pid,
                _ => *self
                    .tids
                    .entry((pid, thread.to_owned()))
                    .or_insert(pid * 10 + next),
            }
        }

        /// The (pid, tid) of the runner's `thread`.
        fn key(&mut self, thread: &str) -> (u32, u32) {
            (RUNNER, self.tid(RUNNER, thread))
        }

        /// The checker's samples saw the runner's `thread` alive from
        /// `from` ms to `to` ms.
        fn alive(&mut self, thread: &str, from: f64, to: f64) -> &mut Run {
            static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
            let origin = *ORIGIN.get_or_init(Instant::now);
            let at = |ms: f64| origin + std::time::Duration::from_micros((ms * 1e3) as u64);
            let tid = self.tid(RUNNER, thread);
            let activity = ThreadActivity {
                name: thread.to_owned(),
                seen: 1,
                runnable: 0,
                cpu_ticks: (0, 0),
                sampled: (at(from), at(to)),
            };
            self.threads.insert(tid, activity);
            self
        }

        fn event(
            &mut self,
            ms: f64,
            (pid, thread): (u32, &str),
            kind: &str,
            name: &str,
            id: Option<u64>,
            fields: Value,
        ) -> &mut Run {
            let tid = self.tid(pid, thread);
            let seq = self.seq.entry(pid).or_default();
            let Value::Object(mut fields) = fields else {
                panic!("fields must be an object");
            };
            fields.insert("kind".into(), kind.into());
            let what = serde_json::from_value(Value::Object(fields)).expect("a kind's fields");
            self.events.push(Event {
                v: labkit::trace::FORMAT_VERSION,
                nonce: String::new(),
                seq: *seq,
                t_ns: (ms * 1e6).round() as u64,
                pid,
                tid,
                thread: thread.to_owned(),
                name: name.to_owned(),
                id,
                what,
            });
            *seq += 1;
            self
        }

        fn span(&mut self, thread: &str, name: &str, id: u64, from: f64, to: f64) -> &mut Run {
            self.span_in(RUNNER, thread, name, id, from, to)
        }

        fn span_in(
            &mut self,
            pid: u32,
            thread: &str,
            name: &str,
            id: u64,
            from: f64,
            to: f64,
        ) -> &mut Run {
            self.event(from, (pid, thread), "span_enter", name, Some(id), json!({}))
                .event(to, (pid, thread), "span_exit", name, Some(id), json!({}))
        }

        fn enter(&mut self, thread: &str, name: &str, id: u64, at: f64) -> &mut Run {
            self.event(
                at,
                (RUNNER, thread),
                "span_enter",
                name,
                Some(id),
                json!({}),
            )
        }

        fn worker(&mut self, pid: u32, at: f64) -> &mut Run {
            self.event(
                at,
                (pid, "main"),
                "worker_start",
                "labkit-worker",
                Some(pid as u64),
                json!({}),
            )
        }

        fn deliver(&mut self, task: u64, at: f64) -> &mut Run {
            self.event(
                at,
                (RUNNER, "main"),
                "mark",
                "delivered",
                None,
                json!({ "task": task }),
            )
        }

        /// `thread` takes `lock` while holding `held` (lock addresses are
        /// made up from the names).
        fn take(&mut self, thread: &str, lock: &str, held: &[&str], at: f64) -> &mut Run {
            self.lock_event("lock_acquired", thread, lock, held, at)
        }

        /// `thread` takes `lock` with `try_lock` (it could not have waited)
        /// while holding `held`.
        fn try_take(&mut self, thread: &str, lock: &str, held: &[&str], at: f64) -> &mut Run {
            self.lock_event("lock_acquired", thread, lock, held, at);
            let last = self.events.last_mut().expect("just recorded");
            if let What::LockAcquired { blocking, .. } = &mut last.what {
                *blocking = false;
            }
            self
        }

        /// `thread` starts waiting for `lock` while holding `held`.
        fn wait(&mut self, thread: &str, lock: &str, held: &[&str], at: f64) -> &mut Run {
            self.lock_event("lock_wait", thread, lock, held, at)
        }

        fn lock_event(
            &mut self,
            kind: &str,
            thread: &str,
            lock: &str,
            held: &[&str],
            at: f64,
        ) -> &mut Run {
            let address = |name: &str| name.bytes().map(u64::from).sum::<u64>() * 64;
            let held: Vec<Value> = held
                .iter()
                .map(|name| json!({ "name": name, "lock": address(name) }))
                .collect();
            let fields = json!({ "lock": address(lock), "mode": "exclusive", "held": held });
            self.event(at, (RUNNER, thread), kind, lock, None, fields)
        }

        fn decide(&mut self, property: &Property) -> Verdict {
            self.events.sort_by_key(|e| (e.t_ns, e.pid, e.seq));
            let evidence = Evidence {
                events: &self.events,
                ..Evidence::empty(RUNNER, &self.threads, &self.unnamed)
            };
            decide(property, &evidence)
        }

        fn message(&mut self, property: &Property) -> String {
            match self.decide(property) {
                Verdict::Fails { message, .. } => message,
                other => panic!("expected a failure, got {other:?}"),
            }
        }
    }

    fn property(kind: PropertyKind) -> Property {
        Property { kind, note: None }
    }

    fn max_inside(span: &str, limit: u32) -> Property {
        property(PropertyKind::MaxInside {
            span: span.into(),
            limit,
        })
    }

    fn min_inside(span: &str, at_least: u32) -> Property {
        property(PropertyKind::MinInside {
            span: span.into(),
            at_least,
        })
    }

    fn parallel(span: &str, at_least: u32) -> Property {
        property(PropertyKind::Parallel {
            span: span.into(),
            at_least,
        })
    }

    /// A property of `kind` (a unit variant's name, or one that takes only
    /// a span) about `span`.
    fn about(kind: &str, span: &str) -> Property {
        serde_json::from_value(json!({ "kind": kind, "span": span })).expect("a span property")
    }

    fn full(verdict: Verdict) -> String {
        match verdict {
            Verdict::Fails {
                message, evidence, ..
            } => format!("{message}\n---\n{evidence}"),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    /// Three fetches on three threads, overlapping from 20 to 30 ms.
    fn three_fetches() -> Run {
        let mut run = Run::default();
        run.span("worker-0", "fetch", 0, 0.0, 30.0)
            .span("worker-1", "fetch", 1, 10.0, 40.0)
            .span("worker-2", "fetch", 2, 20.0, 50.0)
            .span("worker-0", "fetch", 3, 30.0, 60.0);
        run
    }

    #[test]
    fn labels_name_the_kind_and_span() {
        assert_eq!(label(&max_inside("fetch", 4)), "max_inside(fetch)");
        assert_eq!(label(&processes(3, false)), "processes");
        assert_eq!(
            label(&property(PropertyKind::InputOrder {
                span: Some("primes".into())
            })),
            "input_order(primes)"
        );
        assert_eq!(label(&no_lock_cycle()), "no_lock_cycle");
    }

    #[test]
    fn kinds_the_tests_assertions_decide_hold_with_them_and_wait_for_them() {
        let (threads, unnamed) = (BTreeMap::new(), UnnamedThreads::default());
        let passed = Evidence::empty(RUNNER, &threads, &unnamed);
        let failed = Evidence {
            test_failure: Some("assertion `left == right` failed"),
            ..passed
        };
        for kind in [
            PropertyKind::ResultsEqual,
            PropertyKind::InputOrder { span: None },
            PropertyKind::Fifo,
            PropertyKind::FasterThanSequential,
            PropertyKind::ReleaseOnPanic,
            PropertyKind::Bounded,
        ] {
            let asserted = property(kind.clone());
            assert_eq!(decide(&asserted, &passed), Verdict::Holds, "{kind:?}");
            assert_eq!(
                decide(&asserted, &failed),
                Verdict::NotRun("the test failed first: assertion `left == right` failed".into()),
                "{kind:?}"
            );
        }
        // A judged run ended in time; a leak is judged from what was left.
        let no_hang = property(PropertyKind::NoHang);
        assert_eq!(decide(&no_hang, &failed), Verdict::Holds);
        let nothing_left = Leftovers::default();
        let clean = Evidence {
            leftovers: Some(&nothing_left),
            ..failed
        };
        let no_leaks = property(PropertyKind::NoLeaks);
        assert_eq!(decide(&no_leaks, &clean), Verdict::Holds);
        assert!(matches!(
            decide(&no_leaks, &failed),
            Verdict::Inconclusive(_)
        ));
    }

    #[test]
    fn max_inside_holds_at_the_limit() {
        assert_eq!(
            three_fetches().decide(&max_inside("fetch", 3)),
            Verdict::Holds
        );
    }

    #[test]
    fn max_inside_counts_touching_spans_as_one_after_the_other() {
        // Fetch 0 leaves at 30 ms as fetch 3 enters: never 4 at once.
        let mut run = three_fetches();
        run.span("worker-3", "fetch", 4, 25.0, 28.0);
        assert_eq!(run.decide(&max_inside("fetch", 4)), Verdict::Holds);
    }

    #[test]
    fn max_inside_fails_above_the_limit_with_who_was_inside() {
        insta::assert_snapshot!(full(three_fetches().decide(&max_inside("fetch", 2))), @r"
        at most 2 may be inside fetch at once, but 3 were at 20.0 ms
        ---
        at 20.0 ms, 3 fetch spans were inside:
          fetch 0 on worker-0 (tid 1001), entered at 0.0 ms, left at 30.0 ms
          fetch 1 on worker-1 (tid 1002), entered at 10.0 ms, left at 40.0 ms
          fetch 2 on worker-2 (tid 1003), entered at 20.0 ms, left at 50.0 ms
        ");
    }

    #[test]
    fn a_span_that_never_left_stays_inside_until_its_process_last_spoke() {
        let mut run = Run::default();
        run.enter("worker-0", "download", 0, 0.0)
            .span("worker-1", "download", 1, 5.0, 10.0)
            .span("worker-1", "download", 2, 12.0, 20.0);
        assert_eq!(
            run.message(&max_inside("download", 1)),
            "at most 1 may be inside download at once, but 2 were at 5.0 ms"
        );
    }

    #[test]
    fn the_note_leads_a_failure() {
        let property = Property {
            note: Some("requests are handled one at a time".to_owned()),
            ..max_inside("fetch", 1)
        };
        assert_eq!(
            three_fetches().message(&property),
            "requests are handled one at a time: at most 1 may be inside fetch at once, but 3 were at 20.0 ms"
        );
    }

    #[test]
    fn span_properties_fail_when_no_span_of_that_name_was_recorded() {
        let mut run = three_fetches();
        let verdict = run.decide(&max_inside("download", 3));
        assert_eq!(
            verdict,
            Verdict::Fails {
                message: "no download spans were recorded: run each task inside labkit::in_span(\"download\", id, ..)".to_owned(),
                evidence: "spans recorded in this run: fetch (4)".to_owned(),
                moment: None,
            }
        );
        for kind in [
            "exactly_once",
            "owner_thread_only",
            "completion_order",
            "streaming",
        ] {
            assert!(
                run.message(&about(kind, "task"))
                    .starts_with("no task spans were recorded"),
                "{kind}"
            );
        }
    }

    #[test]
    fn min_inside_holds_when_the_limit_is_reached() {
        let property = min_inside("fetch", 3);
        assert_eq!(three_fetches().decide(&property), Verdict::Holds);
    }

    #[test]
    fn min_inside_fails_when_the_work_was_serialised() {
        let mut run = Run::default();
        for i in 0..4 {
            let from = i as f64 * 30.0;
            run.span(&format!("worker-{i}"), "download", i, from, from + 30.0);
        }
        let property = min_inside("download", 3);
        assert_eq!(
            run.message(&property),
            "download should reach 3 at once, but at most 1 were inside at once: the work never overlapped that much"
        );
    }

    /// The moment a failure marks, if any.
    fn moment_of(verdict: Verdict) -> Moment {
        match verdict {
            Verdict::Fails {
                moment: Some(moment),
                ..
            } => moment,
            other => panic!("expected a failure with a moment, got {other:?}"),
        }
    }

    #[test]
    fn a_broken_limit_marks_the_moment_and_the_threads_inside() {
        let mut run = Run::default();
        run.span("worker-0", "inside", 0, 10.0, 20.0)
            .span("worker-1", "inside", 1, 11.0, 20.0)
            .span("worker-2", "inside", 2, 12.0, 20.0)
            .span("worker-3", "inside", 3, 30.0, 40.0);
        let property = max_inside("inside", 2);
        let moment = moment_of(run.decide(&property));
        assert_eq!(moment.at_ns, 12_000_000);
        assert_eq!(moment.label, "3 in \"inside\" at once (limit 2)");
        assert_eq!(moment.threads.len(), 3, "worker-3 was not inside then");
        assert_eq!((moment.from_ns, moment.to_ns), (10_000_000, 20_000_000));
        // A fourth comes in later: the mark stays where the limit first broke.
        run.span("worker-4", "inside", 4, 15.0, 18.0);
        let moment = moment_of(run.decide(&property));
        assert_eq!(moment.at_ns, 12_000_000);
        assert_eq!(
            moment.label,
            "limit 2 broken: 3 in \"inside\" at once (4 at the most)"
        );
        assert_eq!(moment.threads.len(), 4);
    }

    #[test]
    fn collecting_before_delivering_marks_the_first_delivery() {
        let mut run = as_completed_tasks();
        run.deliver(1, 301.0).deliver(0, 302.0);
        let property = about("streaming", "task");
        let moment = moment_of(run.decide(&property));
        assert_eq!(moment.at_ns, 301_000_000);
        assert_eq!(moment.label, "the first result, after every task ended");
    }

    #[test]
    fn parallel_holds_on_several_threads() {
        let property = parallel("fetch", 3);
        assert_eq!(three_fetches().decide(&property), Verdict::Holds);
    }

    #[test]
    fn parallel_holds_for_short_spans_on_several_threads_without_overlap() {
        // Two pool threads taking turns: on a busy machine short CPU spans
        // need not overlap in wall time.
        let mut run = Run::default();
        run.span("thread-1", "analyse", 0, 0.0, 2.0)
            .span("thread-2", "analyse", 1, 3.0, 5.0)
            .span("thread-1", "analyse", 2, 6.0, 8.0)
            .span("thread-2", "analyse", 3, 9.0, 11.0);
        let property = parallel("analyse", 2);
        assert_eq!(run.decide(&property), Verdict::Holds);
    }

    #[test]
    fn parallel_holds_for_pool_threads_alive_together_that_worked_in_turn() {
        // A rayon pool on a loaded machine: the second thread got a core
        // only once the first was done, but both lived all along.
        let mut run = Run::default();
        run.span("thread-1", "analyse", 0, 0.0, 2.0)
            .span("thread-1", "analyse", 1, 2.0, 4.0)
            .span("thread-2", "analyse", 2, 5.0, 7.0)
            .span("thread-2", "analyse", 3, 7.0, 9.0);
        let property = parallel("analyse", 2);
        assert!(matches!(run.decide(&property), Verdict::Fails { .. }));
        run.alive("thread-1", 0.0, 100.0)
            .alive("thread-2", 0.0, 100.0);
        assert_eq!(run.decide(&property), Verdict::Holds);
    }

    #[test]
    fn parallel_fails_for_threads_started_and_joined_one_after_another() {
        // spawn(..).join() in a loop: a new thread per task, never two at once.
        let mut run = Run::default();
        for task in 0..4u64 {
            let from = task as f64 * 10.0;
            let thread = format!("thread-{task}");
            run.span(&thread, "primes", task, from, from + 9.0)
                .alive(&thread, from, from + 9.0);
        }
        let property = parallel("primes", 2);
        assert_eq!(
            run.message(&property),
            "the work in primes should run on at least 2 threads at the same time, but its 4 threads worked one after the other (each started after the last one finished): start them all, then wait for them"
        );
    }

    #[test]
    fn parallel_counts_threads_not_spans() {
        // Four overlapping spans, all on one thread (nested or interleaved
        // bookkeeping): still one thread doing the work.
        let mut run = Run::default();
        run.span("main", "primes", 0, 0.0, 40.0)
            .span("main", "primes", 1, 5.0, 35.0)
            .span("main", "primes", 2, 50.0, 60.0);
        let property = parallel("primes", 2);
        insta::assert_snapshot!(full(run.decide(&property)), @r"
        the work in primes should be spread over at least 2 threads, but ran on 1
        ---
        primes spans by thread:
          main: 3 spans, from 0.0 ms to 60.0 ms
        at most 1 thread(s) were inside primes at once (first at 0.0 ms)
        ");
    }

    #[test]
    fn exactly_once_holds_when_each_id_ran_once() {
        let property = about("exactly_once", "fetch");
        assert_eq!(three_fetches().decide(&property), Verdict::Holds);
    }

    #[test]
    fn exactly_once_lists_ids_run_twice_and_never_finished() {
        let mut run = three_fetches();
        run.span("worker-1", "fetch", 1, 70.0, 80.0)
            .enter("worker-2", "fetch", 7, 90.0);
        let property = about("exactly_once", "fetch");
        assert_eq!(
            run.message(&property),
            "every fetch id must be entered exactly once and left: ids entered more than once: 1 (2 times); ids entered but never left: 7"
        );
    }

    #[test]
    fn a_repeated_id_marks_its_second_entry_on_the_threads_that_ran_it() {
        let property = about("exactly_once", "fetch");
        let mut run = three_fetches();
        run.enter("worker-1", "fetch", 7, 65.0);
        let moment = moment_of(run.decide(&property));
        assert_eq!(moment.at_ns, 65_000_000, "where fetch 7 entered");
        assert_eq!(moment.label, "fetch 7 entered here, never left");
        assert_eq!(moment.threads, [run.key("worker-1")]);
        // An id entered twice comes first, marked at its second entry.
        run.span("worker-2", "fetch", 1, 70.0, 80.0);
        let moment = moment_of(run.decide(&property));
        assert_eq!(moment.at_ns, 70_000_000);
        assert_eq!(moment.label, "fetch 1 entered a second time");
        assert_eq!(
            moment.threads,
            [run.key("worker-2"), run.key("worker-1")],
            "the second entry's thread first"
        );
        assert_eq!((moment.from_ns, moment.to_ns), (10_000_000, 80_000_000));
    }

    #[test]
    fn owner_thread_only_holds_on_one_thread() {
        let mut run = Run::default();
        for i in 0..5 {
            run.span("account", "request", i, i as f64, i as f64 + 0.5);
        }
        let property = about("owner_thread_only", "request");
        assert_eq!(run.decide(&property), Verdict::Holds);
    }

    #[test]
    fn owner_thread_only_names_the_threads_and_their_counts() {
        let mut run = Run::default();
        for i in 0..5 {
            run.span("account", "request", i, i as f64, i as f64 + 0.5);
        }
        run.span("client-3", "request", 9, 7.0, 7.5);
        let property = about("owner_thread_only", "request");
        assert_eq!(
            run.message(&property),
            "all request spans must run on one thread (the one that owns the state), but they ran on 2 threads: 5 on account, 1 on client-3"
        );
    }

    #[test]
    fn a_span_on_a_second_thread_marks_the_owner_and_the_intruder() {
        let mut run = Run::default();
        for i in 0..5 {
            run.span("account", "request", i, i as f64, i as f64 + 0.5);
        }
        run.span("client-3", "request", 9, 7.0, 7.5)
            .span("client-4", "request", 10, 8.0, 8.5);
        let property = about("owner_thread_only", "request");
        let moment = moment_of(run.decide(&property));
        assert_eq!(moment.at_ns, 7_000_000, "the first span off the owner");
        assert_eq!(moment.label, "request 9 runs on client-3, not on account");
        assert_eq!(moment.threads, [run.key("account"), run.key("client-3")]);
        assert_eq!(
            (moment.from_ns, moment.to_ns),
            (4_000_000, 7_500_000),
            "from the owner's span before it"
        );
    }

    /// Tasks 0..4 finishing at 300, 40, 80, 20 ms on three workers.
    fn as_completed_tasks() -> Run {
        let mut run = Run::default();
        run.span("worker-0", "task", 0, 0.0, 300.0)
            .span("worker-1", "task", 1, 0.0, 40.0)
            .span("worker-2", "task", 2, 0.0, 80.0)
            .span("worker-1", "task", 3, 40.0, 60.0);
        run
    }

    #[test]
    fn completion_order_holds_within_the_tolerance() {
        let mut run = as_completed_tasks();
        // Tasks 3 and 2 finish 20 ms apart and are delivered swapped: a race.
        run.deliver(1, 41.0)
            .deliver(2, 81.0)
            .deliver(3, 82.0)
            .deliver(0, 301.0);
        let property = about("completion_order", "task");
        assert_eq!(run.decide(&property), Verdict::Holds);
    }

    #[test]
    fn completion_order_fails_on_input_order_delivery() {
        let mut run = as_completed_tasks();
        for task in 0..4 {
            run.deliver(task, 301.0 + task as f64);
        }
        let property = about("completion_order", "task");
        insta::assert_snapshot!(full(run.decide(&property)), @r"
        results must be handed back as tasks complete: task 0 (finished at 300.0 ms) was delivered before task 1 (finished at 40.0 ms)
        ---
        in the order delivered:
          task 0: finished at 300.0 ms, delivered at 301.0 ms
          task 1: finished at 40.0 ms, delivered at 302.0 ms
          task 2: finished at 80.0 ms, delivered at 303.0 ms
          task 3: finished at 60.0 ms, delivered at 304.0 ms
        ");
    }

    #[test]
    fn completion_order_without_deliveries_is_inconclusive() {
        let property = about("completion_order", "task");
        let verdict = as_completed_tasks().decide(&property);
        assert!(matches!(verdict, Verdict::Inconclusive(_)), "{verdict:?}");
    }

    #[test]
    fn streaming_holds_when_the_first_result_comes_early() {
        let mut run = as_completed_tasks();
        run.deliver(1, 41.0).deliver(0, 301.0);
        let property = about("streaming", "task");
        assert_eq!(run.decide(&property), Verdict::Holds);
    }

    #[test]
    fn streaming_fails_when_everything_is_collected_first() {
        let mut run = as_completed_tasks();
        for task in [3, 1, 2, 0] {
            run.deliver(task, 301.0);
        }
        let property = Property {
            note: Some("the first result arrives before the slowest task ends".to_owned()),
            ..about("streaming", "task")
        };
        assert_eq!(
            run.message(&property),
            "the first result arrives before the slowest task ends: the first result must arrive before the slowest task ends (collecting everything and then sorting is not as_completed): first delivery at 301.0 ms, last task ended at 300.0 ms"
        );
        let without_deliveries = Property {
            note: None,
            ..property
        };
        let verdict = as_completed_tasks().decide(&without_deliveries);
        assert!(matches!(verdict, Verdict::Inconclusive(_)), "{verdict:?}");
    }

    fn processes(exactly: u32, reused: bool) -> Property {
        property(PropertyKind::Processes {
            exactly: Some(exactly),
            reused,
            span: None,
        })
    }

    /// Workers reused for several tasks, however many.
    fn reused_workers() -> Property {
        property(PropertyKind::Processes {
            exactly: None,
            reused: true,
            span: None,
        })
    }

    /// `workers` worker processes sharing `tasks` tasks round-robin.
    fn pool(workers: u32, tasks: u64) -> Run {
        let mut run = Run::default();
        for w in 0..workers {
            run.worker(200 + w, w as f64);
        }
        for task in 0..tasks {
            let pid = 200 + (task % u64::from(workers)) as u32;
            let from = 10.0 + task as f64 * 5.0;
            run.span_in(pid, "main", "count_primes", task, from, from + 4.0);
        }
        run
    }

    #[test]
    fn processes_holds_for_a_reused_pool() {
        assert_eq!(pool(3, 12).decide(&processes(3, true)), Verdict::Holds);
    }

    #[test]
    fn processes_fails_for_a_process_per_task() {
        assert_eq!(
            pool(12, 12).message(&processes(3, true)),
            "expected exactly 3 worker processes, saw 12 start (a pool that starts its workers again, for each task or each call, starts too many: start 3 once and send each several tasks)"
        );
        assert_eq!(
            Run::default().message(&processes(3, false)),
            "expected exactly 3 worker processes, saw 0 start (the work must run in labkit-worker processes, started with labkit::worker::command())"
        );
    }

    #[test]
    fn too_many_workers_mark_the_start_past_the_count_on_every_worker() {
        let mut run = pool(12, 12);
        let moment = moment_of(run.decide(&processes(3, true)));
        assert_eq!(moment.at_ns, 3_000_000, "the fourth worker's start");
        assert_eq!(moment.label, "labkit-worker 4 starts: exactly 3 expected");
        let workers: Vec<(u32, u32)> = (200..212).map(|pid| (pid, pid)).collect();
        assert_eq!(moment.threads, workers, "every worker's main thread");
        assert_eq!(
            (moment.from_ns, moment.to_ns),
            (0, 29_000_000),
            "until the fourth worker ran its task"
        );
    }

    #[test]
    fn a_worker_not_reused_marks_the_second_start() {
        let moment = moment_of(pool(4, 4).decide(&reused_workers()));
        assert_eq!(moment.at_ns, 1_000_000);
        assert_eq!(
            moment.label,
            "labkit-worker 2 starts: labkit-worker 1 is not reused"
        );
        assert_eq!(
            moment.threads,
            [(200, 200), (201, 201), (202, 202), (203, 203)]
        );
        assert_eq!((moment.from_ns, moment.to_ns), (0, 19_000_000));
    }

    #[test]
    fn processes_reused_holds_however_a_shared_queue_spread_the_tasks() {
        // Load balancing gave one worker a single task and another none.
        let mut run = pool(1, 11);
        run.worker(201, 1.0).worker(202, 2.0);
        run.span_in(201, "main", "count_primes", 11, 70.0, 74.0);
        assert_eq!(run.decide(&processes(3, true)), Verdict::Holds);
    }

    #[test]
    fn processes_reused_fails_when_no_worker_ran_a_second_task() {
        assert_eq!(
            pool(4, 4).message(&reused_workers()),
            "each worker should be reused for several tasks, but no worker ran a second one: 4 tasks in 4 processes, a process per task (start the pool once and send each worker several tasks)"
        );
        // Without `reused`, one task each is enough.
        assert_eq!(pool(3, 3).decide(&processes(3, false)), Verdict::Holds);
    }

    fn no_lock_cycle() -> Property {
        property(PropertyKind::NoLockCycle)
    }

    #[test]
    fn no_lock_cycle_holds_when_locks_are_taken_in_one_order() {
        let mut run = Run::default();
        run.take("worker-0", "account[0]", &[], 1.0)
            .take("worker-0", "account[1]", &["account[0]"], 1.1)
            .take("worker-1", "account[0]", &[], 2.0)
            .take("worker-1", "account[1]", &["account[0]"], 2.1);
        assert_eq!(run.decide(&no_lock_cycle()), Verdict::Holds);
    }

    #[test]
    fn no_lock_cycle_fails_on_opposite_orders_that_did_not_deadlock() {
        let mut run = Run::default();
        run.take("worker-0", "account[0]", &[], 3.0)
            .take("worker-0", "account[1]", &["account[0]"], 3.1)
            .take("worker-1", "account[1]", &[], 3.3)
            .take("worker-1", "account[0]", &["account[1]"], 3.4);
        insta::assert_snapshot!(full(run.decide(&no_lock_cycle())), @r"
        locks are taken in opposite orders, so this can deadlock: account[0] → account[1] (worker-0 at 3.1 ms), account[1] → account[0] (worker-1 at 3.4 ms)
        ---
        worker-0 (tid 1001) took account[1] at 3.1 ms while holding account[0]
        worker-1 (tid 1002) took account[0] at 3.4 ms while holding account[1]
        if these threads each take their first lock at the same moment, each waits forever for the next: take the locks in one global order
        ");
    }

    #[test]
    fn no_lock_cycle_reads_the_waits_of_a_run_that_deadlocked() {
        let mut run = Run::default();
        run.take("worker-0", "account[0]", &[], 1.0)
            .take("worker-1", "account[1]", &[], 1.1)
            .wait("worker-0", "account[1]", &["account[0]"], 1.2)
            .wait("worker-1", "account[0]", &["account[1]"], 1.3);
        assert_eq!(
            run.message(&no_lock_cycle()),
            "locks are taken in opposite orders, so this can deadlock: account[0] → account[1] (worker-0 at 1.2 ms), account[1] → account[0] (worker-1 at 1.3 ms)"
        );
    }

    #[test]
    fn no_lock_cycle_finds_longer_cycles() {
        let mut run = Run::default();
        run.take("worker-0", "a", &["c"], 1.0)
            .take("worker-1", "b", &["a"], 2.0)
            .take("worker-2", "c", &["b"], 3.0);
        assert_eq!(
            run.message(&no_lock_cycle()),
            "locks are taken in a circular order, so this can deadlock: c → a (worker-0 at 1.0 ms), a → b (worker-1 at 2.0 ms), b → c (worker-2 at 3.0 ms)"
        );
    }

    #[test]
    fn no_lock_cycle_ignores_cycles_no_two_threads_could_deadlock_on() {
        // One thread alone, and two threads under a common gate lock.
        let mut run = Run::default();
        run.take("worker-0", "a", &["b"], 1.0)
            .take("worker-0", "b", &["a"], 2.0)
            .take("worker-1", "y", &["gate", "x"], 3.0)
            .take("worker-2", "x", &["gate", "y"], 4.0)
            // Self edges: two accounts of one class.
            .take("worker-3", "account", &["account"], 5.0);
        assert_eq!(run.decide(&no_lock_cycle()), Verdict::Holds);
    }

    #[test]
    fn no_lock_cycle_holds_when_the_second_lock_is_only_tried() {
        // A transfer that takes its second account with try_lock and backs
        // off when it is busy cannot deadlock, in whatever order it goes.
        let mut run = Run::default();
        run.take("worker-0", "account[0]", &[], 1.0)
            .try_take("worker-0", "account[1]", &["account[0]"], 1.1)
            .take("worker-1", "account[1]", &[], 2.0)
            .try_take("worker-1", "account[0]", &["account[1]"], 2.1);
        assert_eq!(run.decide(&no_lock_cycle()), Verdict::Holds);
        // One blocking take in each direction is a cycle again.
        run.take("worker-2", "account[0]", &["account[1]"], 3.0)
            .take("worker-3", "account[1]", &["account[0]"], 4.0);
        assert!(matches!(
            run.decide(&no_lock_cycle()),
            Verdict::Fails { .. }
        ));
    }

    #[test]
    fn no_lock_cycle_without_locks_is_inconclusive() {
        let verdict = three_fetches().decide(&no_lock_cycle());
        assert!(matches!(verdict, Verdict::Inconclusive(_)), "{verdict:?}");
    }
}
