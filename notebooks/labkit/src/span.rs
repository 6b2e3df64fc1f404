//! Spans: where a task starts and ends, as an RAII guard.
//!
//! Create the span once the task really runs (after it got the permit, the
//! lock or the worker that limits it) and let it drop before it gives that
//! back: the recorded interval then lies inside the real one, so any overlap
//! the trace shows really happened.

use crate::trace::What;

/// A running task; records `span_exit` when dropped.
#[must_use = "a span ends when this guard is dropped"]
pub struct Span {
    /// Nothing when neither the trace nor a timeline is recording: a span
    /// then costs next to nothing.
    live: Option<LiveSpan>,
}

struct LiveSpan {
    name: String,
    id: u64,
    start_ns: u64,
}

/// Starts a span named `name` (the kind of task) with `id` (which one).
pub fn span(name: &str, id: u64) -> Span {
    crate::perturb::point("span_enter");
    if !crate::trace::enabled() && !crate::timeline::is_recording() {
        return Span { live: None };
    }
    let start_ns = crate::trace::monotonic_ns();
    crate::trace::record(name, Some(id), What::SpanEnter);
    Span {
        live: Some(LiveSpan {
            name: name.to_owned(),
            id,
            start_ns,
        }),
    }
}

/// Runs `work` inside a span and returns what it returns.
pub fn in_span<R>(name: &str, id: u64, work: impl FnOnce() -> R) -> R {
    let _span = span(name, id);
    work()
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some(span) = self.live.take() {
            let end_ns = crate::trace::monotonic_ns();
            crate::trace::record(&span.name, Some(span.id), What::SpanExit);
            crate::timeline::note_span(&span.name, span.id, span.start_ns, end_ns);
        }
        crate::perturb::point("span_exit");
    }
}
