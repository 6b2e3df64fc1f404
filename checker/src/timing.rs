//! Where a graded notebook's time goes: one `tracing` event per phase
//! (kernel start, evcxr ready, each cell's compile and run, perturbed
//! reruns, property verdicts, hang diagnosis), under one target, so that
//! `CONCLAB_LOG=conclab_check::timing=info` shows them and `bench/checker.py`
//! sums them. Logging only: the report does not depend on timings.

use std::time::Duration;

/// The `tracing` target of every phase event.
pub const TARGET: &str = "conclab_check::timing";

/// Records that `phase` (of `cell`, empty for the notebook as a whole) took
/// `took`.
pub fn phase(phase: &str, cell: &str, took: Duration) {
    tracing::info!(target: TARGET, phase, cell, seconds = took.as_secs_f64());
}
