//! Running one submission's notebooks on at most `jobs` kernels at once,
//! each kernel taking the notebooks one after another.
//!
//! A kernel's first seconds (rust-analyzer loading the standard library and
//! the prelude crates, then its first type inference) are the same for
//! every notebook, and on the lab they are most of a graded notebook's
//! time. So a lane keeps its kernel from one notebook to the next and starts
//! it over between them (`Kernel::reset`) instead of starting a new one. A
//! lane holds one of the batch's `jobs` permits for as long as it has a
//! kernel, so no more kernels than that are ever alive.
//!
//! Lanes serve one submission only: what one learner's code leaves in a
//! kernel's build folder could reach the next notebook's code, which must
//! be the same learner's.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use conclab_wire::IdleWork;
use tokio::sync::Semaphore;

use crate::grading::{self, Settings};
use crate::kernel::Kernel;
use crate::plan::Step;
use crate::report::{Check, CheckKind, NotebookReport, Outcome};

/// The notebooks no lane has taken yet: each with its place in the
/// submission, its name and its steps.
type Queue = Mutex<VecDeque<(usize, String, Vec<Step>)>>;

/// Runs `notebooks` (each a name and its steps) on at most `jobs` lanes,
/// each holding a permit of `permits` while it runs, and returns their
/// reports in the order given.
pub async fn run_notebooks(
    notebooks: Vec<(String, Vec<Step>)>,
    settings: Arc<Settings>,
    permits: Arc<Semaphore>,
    jobs: usize,
) -> Vec<NotebookReport> {
    let count = notebooks.len();
    // What to report for a notebook whose lane stopped before reporting it.
    let lost: Vec<(String, f64)> = notebooks
        .iter()
        .map(|(name, steps)| (name.clone(), steps.iter().map(Step::points).sum()))
        .collect();
    let queue: Arc<Queue> = Arc::new(Mutex::new(
        notebooks
            .into_iter()
            .enumerate()
            .map(|(index, (name, steps))| (index, name, steps))
            .collect(),
    ));
    let mut lanes = tokio::task::JoinSet::new();
    for _ in 0..jobs.clamp(1, count.max(1)) {
        let (queue, settings, permits) = (queue.clone(), settings.clone(), permits.clone());
        lanes.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("never closed");
            lane(&queue, &settings).await
        });
    }
    let mut reports: Vec<Option<NotebookReport>> = (0..count).map(|_| None).collect();
    while let Some(done) = lanes.join_next().await {
        match done {
            Ok(ran) => {
                for (index, report) in ran {
                    reports[index] = Some(report);
                }
            }
            Err(error) => tracing::error!("a lane failed: {error}"),
        }
    }
    reports
        .into_iter()
        .zip(lost)
        .map(|(report, (name, points))| {
            report.unwrap_or_else(|| {
                checker_failed(name, points, "its lane stopped before reporting it".into())
            })
        })
        .collect()
}

/// Takes notebooks from `queue` until it is empty, on one kernel kept
/// between them.
async fn lane(queue: &Queue, settings: &Arc<Settings>) -> Vec<(usize, NotebookReport)> {
    let mut ran = Vec::new();
    let mut kept: Option<Kernel> = None;
    loop {
        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
        let Some((index, name, steps)) = next else {
            break;
        };
        // A task of its own, so that a panic in one notebook's run is
        // reported for that notebook and the lane goes on (with a new kernel).
        let settings = settings.clone();
        let notebook = name.clone();
        let points = steps.iter().map(Step::points).sum();
        let task =
            tokio::spawn(
                async move { grading::run_notebook(&notebook, &steps, &settings, kept).await },
            );
        let report = match task.await {
            Ok((report, kernel)) => {
                kept = kernel;
                report
            }
            Err(error) => {
                kept = None;
                checker_failed(name, points, error.to_string())
            }
        };
        ran.push((index, report));
    }
    if let Some(kernel) = kept {
        kernel.shutdown().await;
    }
    ran
}

/// A kernel for the next notebook: `kept` started over, or a new one if
/// there is none or it could not start over. An error is the checker's
/// problem, not the learner's.
pub async fn kernel_for_next(kept: Option<Kernel>, settings: &Settings) -> anyhow::Result<Kernel> {
    if let Some(mut kernel) = kept {
        if !kernel.is_alive() {
            tracing::warn!("the lane's kernel died; starting another");
            kernel.kill();
        } else {
            match kernel.reset().await {
                Ok(()) => return Ok(kernel),
                Err(error) => {
                    tracing::warn!(
                        "the lane's kernel could not start over, starting another: {error:#}"
                    );
                    kernel.shutdown().await;
                }
            }
        }
    }
    grading::start_kernel(settings, IdleWork::Nothing).await
}

/// The report of a notebook the checker failed on: none of its `points`
/// earned, and the reason, which is the checker's, not the learner's.
fn checker_failed(notebook: String, points: f64, why: String) -> NotebookReport {
    NotebookReport {
        notebook,
        checks: vec![Check::about_the_run(
            "checker",
            CheckKind::Run,
            Outcome::Error,
            points,
            format!("the checker failed on this notebook: {why}"),
        )],
        time_s: 0.0,
    }
}
