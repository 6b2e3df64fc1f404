//! conclab-check: releases, validates and grades the lab's notebooks.
//!
//! This program parses its arguments and calls the `conclab_check` library,
//! which does the work.
//!
//! Exit codes ([`Exit`]): 0 all passed; 1 a check failed; 2 bad usage or an
//! input it cannot read (the message names the file); 3 the checker itself
//! could not run the work.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use conclab_wire::EnvVars;

use conclab_check::batch::{Batch, ResultStore, Shard};
use conclab_check::exit::{Exit, Failure};
use conclab_check::format::{Format, Output};
use conclab_check::report::Report;
use conclab_check::run_options::{Limits, RunOptions};
use conclab_check::validate::Purpose;
use conclab_check::{merge, release, spare};

#[derive(Parser)]
#[command(
    name = "conclab-check",
    version,
    about = "Releases, validates and grades conclab notebooks",
    after_help = "Exit codes: 0 all passed; 1 a check failed; 2 bad usage or an unreadable input; 3 the checker could not run the work."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Grade submissions against the instructor's source notebooks.
    Grade {
        /// The source notebook, or a folder of them: the only trusted input.
        #[arg(long, short)]
        source: PathBuf,
        /// Submissions: notebooks, learners' folders of notebooks, or a
        /// folder holding one of those per learner.
        #[arg(required = true)]
        submissions: Vec<PathBuf>,
        /// Grade only the I-th (from 0) of N fixed slices of the batch.
        #[arg(long, value_name = "I/N")]
        shard: Option<Shard>,
        /// Keep each submission's result here as soon as it is done; a
        /// rerun skips submissions already graded against the same source.
        /// Defaults to OUTPUT.parts when --output is given.
        #[arg(long, value_name = "DIR")]
        results: Option<PathBuf>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Check source notebooks: every cell runs clean, stored outputs match,
    /// every test passes on every perturbed run.
    Validate {
        /// Source notebooks, or folders of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Check instead that the released learner version fails every
        /// graded test.
        #[arg(long)]
        invert: bool,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Check a learner's notebook against its own tests and properties, as
    /// the kernel's `:check` does: no hidden tests, no points at stake, and
    /// test outputs are not compared (a released notebook stores none).
    Feedback {
        /// The learner's notebooks, or folders of them.
        #[arg(required_unless_present = "spare")]
        notebooks: Vec<PathBuf>,
        /// Run only this exercise's tests (its solution's grade_id); every
        /// other cell still runs.
        #[arg(long, value_name = "GRADE_ID")]
        exercise: Option<String>,
        /// Start the kernel at once, then wait for the notebook to check: one
        /// JSON line on standard input, `{"notebook": PATH, "exercise":
        /// GRADE_ID or null}`. How the kernel keeps a checker ready, so that
        /// `:check` does not wait for a kernel to start.
        #[arg(long, conflicts_with_all = ["notebooks", "exercise"])]
        spare: bool,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Write learner versions of source notebooks: solutions replaced by a
    /// stub, hidden tests removed, exercise outputs cleared.
    Release {
        /// A source notebook, or a folder of them.
        source: PathBuf,
        /// The folder to write the learner versions to.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Join the JSON reports of shards into the report one run would give.
    Merge {
        /// JSON reports written by `grade --format json`.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Args)]
struct OutputArgs {
    /// The report's format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Write the report here instead of to stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Also write the report in FORMAT to PATH (repeatable): one run, a
    /// report for each reader (`--also html=report.html`).
    #[arg(long, value_name = "FORMAT=PATH", value_parser = also_output)]
    also: Vec<(Format, PathBuf)>,
}

impl OutputArgs {
    fn output(&self) -> Output {
        Output {
            format: self.format,
            path: self.output.clone(),
            also: self.also.clone(),
        }
    }
}

/// Reads `--also FORMAT=PATH`.
fn also_output(text: &str) -> Result<(Format, PathBuf), String> {
    use clap::ValueEnum;
    let (format, path) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not FORMAT=PATH (for example html=report.html)"))?;
    let format = Format::from_str(format, false).map_err(|_| {
        let known: Vec<String> = Format::value_variants()
            .iter()
            .filter_map(|f| Some(f.to_possible_value()?.get_name().to_owned()))
            .collect();
        format!("unknown format {format:?} (one of {})", known.join(", "))
    })?;
    if path.is_empty() {
        return Err(format!("{text:?} names no file after the ="));
    }
    Ok((format, PathBuf::from(path)))
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    output: OutputArgs,
    /// Notebook runs at once (default: the number of cores).
    #[arg(long, short)]
    jobs: Option<usize>,
    /// The conclab-kernel program (default: $CONCLAB_KERNEL, the one next
    /// to conclab-check, or conclab-kernel on PATH).
    #[arg(long, value_name = "PROGRAM")]
    kernel: Option<PathBuf>,
    /// Memory the learner's processes may use together, in MiB.
    #[arg(long, default_value_t = Limits::default().memory_mb)]
    memory_mb: u64,
    /// Processes the learner's code may have at once.
    #[arg(long, default_value_t = Limits::default().processes)]
    max_processes: usize,
    /// Output one cell may print, in KiB.
    #[arg(long, default_value_t = Limits::default().output_bytes >> 10)]
    max_output_kib: usize,
}

impl RunArgs {
    fn options(&self) -> RunOptions {
        RunOptions {
            kernel: self.kernel.clone(),
            limits: Limits {
                memory_mb: self.memory_mb,
                processes: self.max_processes,
                output_bytes: self.max_output_kib << 10,
            },
            jobs: self.jobs,
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env(EnvVars::CONCLAB_LOG)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: CI logs keep this stream as text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() {
                Exit::BadInput as u8
            } else {
                0
            });
        }
    };
    let exit = match cli.command {
        Command::Release { source, output } => match release::release_to(&source, &output) {
            Ok(released) => {
                println!("{released}");
                Exit::Passed
            }
            Err(failure) => fail(failure),
        },
        Command::Grade {
            source,
            submissions,
            shard,
            results,
            run,
        } => {
            let batch = Batch {
                source,
                submissions,
                shard,
                results: results.or_else(|| run.output.output.as_deref().map(ResultStore::beside)),
            };
            finish(batch.grade(&run.options()), &run.output)
        }
        Command::Validate { paths, invert, run } => {
            let purpose = if invert {
                Purpose::Invert
            } else {
                Purpose::Validate
            };
            finish(purpose.run(&paths, &run.options()), &run.output)
        }
        Command::Feedback {
            spare: true, run, ..
        } => finish(
            spare::feedback(&run.options(), std::io::stdin().lock()),
            &run.output,
        ),
        Command::Feedback {
            notebooks,
            exercise,
            run,
            ..
        } => finish(
            Purpose::Feedback { exercise }.run(&notebooks, &run.options()),
            &run.output,
        ),
        Command::Merge { reports, output } => finish(merge::merge(&reports), &output),
    };
    exit.into()
}

/// Writes the report where `output` says, and turns it into the exit code.
fn finish(report: Result<Report, Failure>, output: &OutputArgs) -> Exit {
    let written = report.and_then(|report| {
        output.output().write(&report)?;
        Ok(report)
    });
    match written {
        Ok(report) => Exit::from(report.outcome()),
        Err(failure) => fail(failure),
    }
}

/// Says why the command stopped, and ends with its exit code.
fn fail(failure: Failure) -> Exit {
    eprintln!("conclab-check: {failure}");
    failure.exit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn also_names_a_format_and_a_file() {
        assert_eq!(
            also_output("html=out/report=1.html"),
            Ok((Format::Html, PathBuf::from("out/report=1.html")))
        );
        for bad in ["html", "html=", "pdf=report.pdf"] {
            assert!(also_output(bad).is_err(), "{bad}");
        }
        assert!(
            also_output("pdf=x")
                .unwrap_err()
                .contains("text, html, json"),
            "the formats are named"
        );
    }
}
