//! labkit: the small crate every cell of the conclab lab can use.
//!
//! It gives learners realistic work to coordinate ([`work`], and worker
//! processes in [`worker`]), lets them see their concurrency ([`span()`],
//! [`timeline`], [`show`]), and gives the checker a view of what their code
//! did ([`trace`], the traced locks in [`sync`], perturbed schedules in
//! [`perturb`], the CPU time of the caller and its threads in [`cpu`]).

#![warn(missing_docs)]

pub mod cpu;
pub mod event;
pub mod perturb;
mod programs;
#[cfg(feature = "png")]
#[doc(hidden)] // labkit-draw's; cells ask it through show::svg.
pub mod raster;
pub mod show;
pub mod span;
pub mod sync;
pub mod timeline;
pub mod trace;
pub mod work;
pub mod worker;

pub use span::{in_span, span};

/// labkit's version, as cells see it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
