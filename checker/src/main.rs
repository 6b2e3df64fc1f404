//! conclab-check: releases, validates and grades the lab's notebooks.
//!
//! Exit codes: 0 all passed; 1 a check failed; 2 bad usage or an input it
//! cannot read (the message names the file); 3 the checker itself could not
//! run the work.

mod compare;
mod format;
mod hang;
mod notebook;
mod process_tree;
mod property;
mod release;
mod report;
mod settings;
mod trace;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::notebook::{BadNotebook, Notebook};

#[derive(Parser)]
#[command(
    name = "conclab-check",
    version,
    about = "Releases, validates and grades conclab notebooks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write learner versions of source notebooks: solutions replaced by a
    /// stub, hidden tests removed, exercise outputs cleared.
    Release {
        /// A source notebook, or a folder of them.
        source: PathBuf,
        /// The folder to write the learner versions to.
        #[arg(long, short)]
        output: PathBuf,
    },
}

/// The documented exit codes.
#[derive(Debug, Clone, Copy)]
enum Exit {
    Passed = 0,
    BadInput = 2,
    Infrastructure = 3,
}

fn main() -> ExitCode {
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
    };
    ExitCode::from(exit as u8)
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
