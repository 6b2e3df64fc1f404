//! conclab-check as a library: releases, validates and grades the lab's
//! notebooks. The `conclab-check` program only parses its arguments and
//! calls what is here.
//!
//! A graded notebook flows through it in this order: [`batch`] finds the
//! submissions and the source notebooks to run for each; [`plan`] turns a
//! source notebook and a learner's into steps; [`grading`] runs them in a
//! kernel and judges each, with [`trace`] and [`property`] for the
//! concurrency properties; the verdicts are a [`report::Report`], which
//! [`mod@format`] writes. [`validate`] runs notebooks against themselves
//! (`validate`, `feedback`; [`spare`] for `feedback --spare`), [`release`]
//! writes learner versions and [`merge`] joins the reports of shards. What
//! every command that runs notebooks is told (kernel, limits, jobs) is a
//! [`run_options::RunOptions`]; where its report goes, a
//! [`format::Output`].
//!
//! How a command ends is an [`exit::Exit`]: 0 all passed; 1 a check failed;
//! 2 bad usage or an input it cannot read (the message names the file); 3
//! the checker itself could not run the work.

#![warn(missing_docs)]

pub mod batch;
mod compare;
mod containment;
pub mod exit;
pub mod format;
pub mod grading;
mod hang;
mod harden;
mod kernel;
pub mod lanes;
pub mod merge;
pub mod notebook;
pub mod plan;
mod process_tree;
pub mod property;
pub mod release;
pub mod report;
pub mod run_options;
pub mod schema;
pub mod settings;
pub mod spare;
mod stall;
mod timeline;
mod timing;
pub mod trace;
pub mod validate;
