//! Spans: where a task starts and ends, as an RAII guard.
//!
//! Create the span once the task really runs (after it got the permit, the
//! lock or the worker that limits it) and let it drop before it gives that
//! back: the recorded interval then lies inside the real one, so any overlap
//! the trace shows really happened.

use serde_json::json;

/// A running task; records `span_exit` when dropped.
#[must_use = "a span ends when this guard is dropped"]
pub struct Span {
    name: String,
    id: u64,
    start_ns: u64,
}

/// Starts a span named `name` (the kind of task) with `id` (which one).
pub fn span(name: impl Into<String>, id: u64) -> Span {
    let name = name.into();
    crate::perturb::point("span_enter");
    let start_ns = crate::trace::monotonic_ns();
    crate::trace::record("span_enter", &name, Some(id), json!({}));
    Span { name, id, start_ns }
}

/// Runs `work` inside a span and returns what it returns.
pub fn in_span<R>(name: impl Into<String>, id: u64, work: impl FnOnce() -> R) -> R {
    let _span = span(name, id);
    work()
}

impl Span {
    /// The span's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The span's id.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        let end_ns = crate::trace::monotonic_ns();
        crate::trace::record("span_exit", &self.name, Some(self.id), json!({}));
        crate::timeline::note_span(&self.name, self.id, self.start_ns, end_ns);
        crate::perturb::point("span_exit");
    }
}
