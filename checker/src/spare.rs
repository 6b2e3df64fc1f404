//! `conclab-check feedback --spare`: a checker started before it knows its
//! notebook, so that `:check` finds a kernel ready. It starts the kernel at
//! once, then checks the notebook a [`CheckRequest`] line names.

use std::io::BufRead;

use anyhow::Context;
use conclab_wire::{CheckRequest, IdleWork};

use crate::exit::Failure;
use crate::grading::{self, Mode};
use crate::report::Report;
use crate::run_options::{self, RunOptions};
use crate::validate::{self, Purpose};

/// Starts a kernel, then checks with it the notebook the first line of
/// `requests` names, as `feedback` does (one notebook run at a time).
pub fn feedback(options: &RunOptions, mut requests: impl BufRead) -> Result<Report, Failure> {
    let runtime = run_options::runtime()?;
    let settings = options.settings(Mode::Feedback);
    // A kernel that failed to start is started again once the notebook is
    // known, as for any notebook, and reported then if it fails again.
    // Idle until the request comes, its kernel warms up rust-analyzer as the
    // learner's did, so that a first `let` costs no more here.
    match runtime.block_on(grading::start_kernel(&settings, IdleWork::WarmUp)) {
        Ok(kernel) => grading::keep_spare(kernel),
        Err(error) => tracing::warn!("the spare kernel did not start: {error:#}"),
    }
    let mut line = String::new();
    requests
        .read_line(&mut line)
        .context("reading the notebook to check from standard input")
        .map_err(Failure::Infrastructure)?;
    if line.is_empty() {
        // Whoever started this spare no longer needs it.
        return Err(Failure::Infrastructure(anyhow::anyhow!(
            "standard input closed before naming a notebook to check"
        )));
    }
    let request = CheckRequest::from_line(&line).map_err(|error| {
        Failure::Usage(format!(
            "the request {:?} on standard input is not {{\"notebook\": PATH, \"exercise\": GRADE_ID or null}}: {error}",
            line.trim()
        ))
    })?;
    let purpose = Purpose::Feedback {
        exercise: request.exercise,
    };
    validate::validate(&runtime, &[request.notebook], &purpose, &settings, 1).map_err(Failure::from)
}
