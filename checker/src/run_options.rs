//! How the commands that run notebooks (`grade`, `validate`, `feedback`)
//! run them: which kernel program, within which limits, how many at once,
//! and on which async runtime.

use std::path::PathBuf;

use anyhow::Context;

use crate::exit::Failure;
use crate::grading::{self, Mode, Settings};
pub use crate::kernel::Limits;

/// What `--kernel`, the limits and `--jobs` say.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The conclab-kernel program; None to find it as
    /// [`grading::find_kernel`] does.
    pub kernel: Option<PathBuf>,
    /// What the learner's code may use.
    pub limits: Limits,
    /// Notebook runs at once; None for the number of cores.
    pub jobs: Option<usize>,
}

impl RunOptions {
    /// The settings of runs for `mode`.
    pub fn settings(&self, mode: Mode) -> Settings {
        Settings {
            kernel: grading::find_kernel(self.kernel.as_deref()),
            limits: self.limits,
            mode,
        }
    }

    /// Notebook runs at once: as asked, or one per core; at least one.
    pub fn jobs(&self) -> usize {
        self.jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
            .max(1)
    }
}

/// The async runtime the kernels are driven on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .map_err(Failure::Infrastructure)
}
