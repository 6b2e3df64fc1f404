//! Kernels kept between the notebooks of one submission.
//!
//! A kernel's first seconds (rust-analyzer loading the standard library and
//! the prelude crates, then its first type inference) are the same for
//! every notebook, and on the lab they are most of a graded notebook's
//! time. A kernel that finished a notebook is kept here and started over
//! ([`Kernel::reset`]) for the submission's next one, instead of a new
//! kernel paying them again. A pool serves one submission only: what one
//! learner's code leaves in a kernel's build folder could reach the next
//! notebook's code, which must be the same learner's.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use conclab_wire::IdleWork;

use crate::grading::{self, Settings};
use crate::kernel::Kernel;

/// The idle kernels of one submission.
pub struct KernelPool {
    idle: Mutex<Vec<Kernel>>,
    /// Notebooks that have not taken a kernel yet.
    waiting: AtomicUsize,
}

impl KernelPool {
    /// A pool for a submission of `notebooks` notebook runs.
    pub fn new(notebooks: usize) -> KernelPool {
        KernelPool {
            idle: Mutex::default(),
            waiting: AtomicUsize::new(notebooks),
        }
    }

    /// A kernel for the next notebook: a kept one, started over, or else a
    /// new one. An error is the checker's problem, not the learner's.
    pub async fn take(&self, settings: &Settings) -> anyhow::Result<Kernel> {
        let _ = self
            .waiting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        loop {
            let kept = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let Some(mut kernel) = kept else { break };
            if !kernel.is_alive() {
                tracing::warn!("a kept kernel died; taking another");
                kernel.kill();
                continue;
            }
            match kernel.reset().await {
                Ok(()) => return Ok(kernel),
                Err(error) => {
                    tracing::warn!(
                        "a kept kernel could not start over, shutting it down: {error:#}"
                    );
                    kernel.shutdown().await;
                }
            }
        }
        grading::start_kernel(settings, IdleWork::Nothing).await
    }

    /// Keeps `kernel`, done with its notebook, for the next one, or shuts
    /// it down if no notebook is left to take it: an idle kernel holds
    /// hundreds of MiB that another submission's kernel may need.
    pub async fn give_back(&self, kernel: Kernel) {
        if self.waiting.load(Ordering::SeqCst) == 0 {
            kernel.shutdown().await;
        } else {
            self.idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(kernel);
        }
    }

    /// Shuts down every kept kernel: the submission is done.
    pub async fn shut_down(self) {
        let kernels = self.idle.into_inner().unwrap_or_else(|p| p.into_inner());
        for kernel in kernels {
            kernel.shutdown().await;
        }
    }
}
