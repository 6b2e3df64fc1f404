//! conclab-check: releases, validates and grades the lab's notebooks.
//!
//! Exit codes: 0 all passed; 1 a check failed; 2 bad usage or an input it
//! cannot read (the message names the file); 3 the checker itself could not
//! run the work.

mod batch;
mod compare;
mod containment;
mod format;
mod grading;
mod hang;
mod harden;
mod kernel;
mod lanes;
mod notebook;
mod plan;
mod process_tree;
mod property;
mod release;
mod report;
mod settings;
mod stall;
mod timeline;
mod timing;
mod trace;
mod validate;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use conclab_wire::{CheckRequest, EnvVars, IdleWork};

use crate::batch::{ResultStore, Shard, Source};
use crate::format::Format;
use crate::grading::{Mode, Settings};
use crate::kernel::Limits;
use crate::notebook::{BadNotebook, Notebook};
use crate::report::{Outcome, Report};
use crate::validate::Purpose;

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
    fn settings(&self, mode: Mode) -> Settings {
        Settings {
            kernel: grading::find_kernel(self.kernel.as_deref()),
            limits: Limits {
                memory_mb: self.memory_mb,
                processes: self.max_processes,
                output_bytes: self.max_output_kib << 10,
            },
            mode,
        }
    }

    fn jobs(&self) -> usize {
        self.jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
            .max(1)
    }
}

/// The documented exit codes.
#[derive(Debug, Clone, Copy)]
enum Exit {
    Passed = 0,
    Failed = 1,
    BadInput = 2,
    Infrastructure = 3,
}

impl From<Outcome> for Exit {
    fn from(outcome: Outcome) -> Exit {
        match outcome {
            Outcome::Passed => Exit::Passed,
            Outcome::Failed | Outcome::NotRun => Exit::Failed,
            Outcome::BadInput => Exit::BadInput,
            Outcome::Error => Exit::Infrastructure,
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
        Command::Release { source, output } => release(&source, &output),
        Command::Grade {
            source,
            submissions,
            shard,
            results,
            run,
        } => finish(
            grade(&source, &submissions, shard, results, &run),
            &run.output,
        ),
        Command::Validate { paths, invert, run } => {
            let purpose = if invert {
                Purpose::Invert
            } else {
                Purpose::Validate
            };
            finish(against_themselves(&paths, purpose, &run), &run.output)
        }
        Command::Feedback {
            spare: true, run, ..
        } => finish(spare_feedback(&run), &run.output),
        Command::Feedback {
            notebooks,
            exercise,
            run,
            ..
        } => finish(
            against_themselves(&notebooks, Purpose::Feedback { exercise }, &run),
            &run.output,
        ),
        Command::Merge { reports, output } => finish(merge(&reports), &output),
    };
    ExitCode::from(exit as u8)
}

/// Runs notebooks against themselves: `validate` and `feedback`.
fn against_themselves(
    paths: &[PathBuf],
    purpose: Purpose,
    run: &RunArgs,
) -> Result<Report, Failure> {
    let runtime = runtime()?;
    validate::validate(
        &runtime,
        paths,
        &purpose,
        &run.settings(purpose.mode()),
        run.jobs(),
    )
    .map_err(Failure::from)
}

/// `feedback --spare`: starts a kernel, then checks the notebook the
/// request on standard input names with it.
fn spare_feedback(run: &RunArgs) -> Result<Report, Failure> {
    let runtime = runtime()?;
    let settings = run.settings(Mode::Feedback);
    // A kernel that failed to start is started again once the notebook is
    // known, as for any notebook, and reported then if it fails again.
    // Idle until the request comes, its kernel warms up rust-analyzer as the
    // learner's did, so that a first `let` costs no more here.
    match runtime.block_on(grading::start_kernel(&settings, IdleWork::WarmUp)) {
        Ok(kernel) => grading::keep_spare(kernel),
        Err(error) => tracing::warn!("the spare kernel did not start: {error:#}"),
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the notebook to check from standard input")
        .map_err(Failure::Infrastructure)?;
    if line.is_empty() {
        // Whoever started this spare no longer needs it.
        return Err(Failure::Infrastructure(anyhow::anyhow!(
            "standard input closed before naming a notebook to check"
        )));
    }
    let request = CheckRequest::from_line(&line)
        .map_err(|error| {
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

/// Writes the report and turns it into the exit code.
fn finish(report: Result<Report, Failure>, output: &OutputArgs) -> Exit {
    let report = match report {
        Ok(report) => report,
        Err(failure) => return failure.report(),
    };
    for (format, path) in &output.also {
        if let Err(error) = format::write(&report, *format, path) {
            eprintln!("conclab-check: writing {}: {error}", path.display());
            return Exit::Infrastructure;
        }
    }
    match &output.output {
        Some(path) => {
            if let Err(error) = format::write(&report, output.format, path) {
                eprintln!("conclab-check: writing {}: {error}", path.display());
                return Exit::Infrastructure;
            }
            // The people at the terminal still get the summary.
            if output.format != Format::Text && std::io::stderr().is_terminal() {
                eprint!("{}", format::render(&report, Format::Text));
            }
        }
        None => print!("{}", format::render(&report, output.format)),
    }
    Exit::from(report.outcome())
}

fn grade(
    source: &Path,
    submissions: &[PathBuf],
    shard: Option<Shard>,
    results: Option<PathBuf>,
    run: &RunArgs,
) -> Result<Report, Failure> {
    let source = Arc::new(Source::read(source)?);
    let mut submissions = batch::submissions(submissions)?;
    if let Some(shard) = shard {
        submissions = shard.select(submissions);
    }
    let results = results.or_else(|| {
        run.output.output.as_ref().map(|o| {
            // `site/` (a class site) keeps its parts in `site.parts`, beside it.
            let mut name = o.components().as_path().as_os_str().to_owned();
            name.push(".parts");
            PathBuf::from(name)
        })
    });
    let store = results
        .map(|dir| ResultStore::open(&dir))
        .transpose()
        .map_err(Failure::Infrastructure)?;
    let settings = Arc::new(run.settings(Mode::Grade));
    let progress = progress_bar(submissions.len());
    let runtime = runtime()?;
    let reports = runtime.block_on(batch::grade(
        source,
        submissions,
        settings,
        run.jobs(),
        store,
        progress,
    ));
    let mut report = Report::new("grade");
    report.submissions = reports;
    Ok(report)
}

/// A progress bar on a terminal; nothing otherwise (CI logs stay clean).
fn progress_bar(total: usize) -> batch::Progress {
    if !std::io::stderr().is_terminal() || total < 2 {
        return Box::new(|_, _, _| {});
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} graded, {eta} left  {msg}")
            .expect("a valid template"),
    );
    Box::new(move |done, _, report| {
        let (score, max) = report.score();
        bar.set_message(format!("{}: {score}/{max}", report.submission));
        bar.set_position(done as u64);
        if done as u64 == bar.length().unwrap_or(0) {
            bar.finish_and_clear();
        }
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .map_err(Failure::Infrastructure)
}

fn merge(paths: &[PathBuf]) -> Result<Report, Failure> {
    let mut merged: Option<Report> = None;
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|e| BadNotebook {
            path: path.clone(),
            problem: format!("cannot read it: {e}"),
        })?;
        let report: Report = serde_json::from_str(&text).map_err(|e| BadNotebook {
            path: path.clone(),
            problem: format!("not a conclab-check JSON report ({}): {e}", report::SCHEMA),
        })?;
        if report.schema != report::SCHEMA {
            return Err(Failure::Usage(format!(
                "{}: schema {:?}, expected {:?}",
                path.display(),
                report.schema,
                report::SCHEMA
            )));
        }
        match &mut merged {
            None => merged = Some(report),
            Some(all) => {
                if all.command != report.command {
                    return Err(Failure::Usage(format!(
                        "{}: a {} report cannot be merged with {} reports",
                        path.display(),
                        report.command,
                        all.command
                    )));
                }
                all.submissions.extend(report.submissions);
            }
        }
    }
    let mut report = merged.expect("clap requires at least one report");
    // The order a single run gives: by path.
    report.submissions.sort_by(|a, b| a.path.cmp(&b.path));
    report.submissions.dedup_by(|a, b| a.path == b.path);
    Ok(report)
}

fn release(source: &Path, output: &Path) -> Exit {
    let run = || -> Result<String, Failure> {
        let paths = notebook::find(source)?;
        let mut notebooks = Vec::new();
        for path in &paths {
            notebooks.push(Notebook::read(path)?);
        }
        let source_dir = if source.is_file() {
            source.parent().unwrap_or(Path::new("."))
        } else {
            source
        };
        if same_dir(source_dir, output) {
            return Err(Failure::Usage(format!(
                "{}: the output folder is the source folder; releasing there would overwrite the solutions",
                output.display()
            )));
        }
        std::fs::create_dir_all(output)
            .with_context(|| format!("creating {}", output.display()))
            .map_err(Failure::Infrastructure)?;
        // Release every notebook before writing any: a bad one leaves no half-written output.
        let (mut solutions, mut hidden) = (0, 0);
        for notebook in &mut notebooks {
            let released = release::release(notebook)?;
            solutions += released.solutions;
            hidden += released.hidden_removed;
        }
        for notebook in notebooks {
            let name = notebook
                .path
                .file_name()
                .expect("a notebook file has a name");
            let target = output.join(name);
            let text = serde_json::to_string_pretty(&notebook.json).expect("JSON values serialise");
            std::fs::write(&target, text + "\n")
                .with_context(|| format!("writing {}", target.display()))
                .map_err(Failure::Infrastructure)?;
        }
        Ok(format!(
            "released {} notebooks to {}: {solutions} solutions replaced by stubs, {hidden} hidden tests removed",
            paths.len(),
            output.display()
        ))
    };
    match run() {
        Ok(summary) => {
            println!("{summary}");
            Exit::Passed
        }
        Err(failure) => failure.report(),
    }
}

/// Why a command stopped short.
enum Failure {
    /// A notebook the checker cannot use (exit 2).
    BadNotebook(BadNotebook),
    /// Arguments that do not make sense together (exit 2).
    Usage(String),
    /// The machine failed the checker (exit 3).
    Infrastructure(anyhow::Error),
}

impl From<BadNotebook> for Failure {
    fn from(error: BadNotebook) -> Failure {
        Failure::BadNotebook(error)
    }
}

impl Failure {
    fn report(self) -> Exit {
        match self {
            Failure::BadNotebook(error) => {
                eprintln!("conclab-check: {error}");
                Exit::BadInput
            }
            Failure::Usage(message) => {
                eprintln!("conclab-check: {message}");
                Exit::BadInput
            }
            Failure::Infrastructure(error) => {
                eprintln!("conclab-check: {error:#}");
                Exit::Infrastructure
            }
        }
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
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
