//! conclab-kernel: a Jupyter kernel for Rust, built on evcxr.

mod build_progress;
mod cell_lines;
mod check;
mod completeness;
mod final_value;
mod frame;
mod handlers;
mod history;
mod install;
mod iopub;
mod output;
mod prelude;
mod prepare;
mod prepared;
mod relay;
mod report;
mod runner;
mod runner_control;
mod rustdoc;
mod server;
mod session;
mod stdin;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::prepared::PreparedCrates;

#[derive(Parser)]
#[command(
    name = "conclab-kernel",
    version,
    about = "A Jupyter kernel for Rust, built on evcxr"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install the kernelspec so Jupyter offers this kernel, and build the
    /// prelude crates (rayon, crossbeam, serde, serde_json, labkit) once.
    Install(InstallArgs),
    /// Serve a kernel on the ports a connection file names (what kernel.json runs).
    Run {
        /// The connection file Jupyter wrote.
        #[arg(long = "connection-file", short = 'f', value_name = "FILE")]
        connection_file: PathBuf,
    },
    /// Build the prelude crates for this machine now (install does it too).
    Prepare,
}

#[derive(Args)]
#[group(multiple = false)]
struct Where {
    /// Install for the current user (the default; honours JUPYTER_DATA_DIR).
    #[arg(long)]
    user: bool,
    /// Install into the active Python environment.
    #[arg(long)]
    sys_prefix: bool,
    /// Install into PREFIX/share/jupyter.
    #[arg(long, value_name = "DIR")]
    prefix: Option<PathBuf>,
}

#[derive(Args)]
struct InstallArgs {
    #[command(flatten)]
    location: Where,
    /// The kernelspec's name (ASCII letters, digits, '-', '.', '_').
    #[arg(long, default_value = "conclab", value_parser = install::parse_kernel_name)]
    name: String,
    /// Only write the kernelspec; build the prelude crates at first use.
    #[arg(long)]
    no_prepare: bool,
}

fn main() -> ExitCode {
    // evcxr re-runs this executable as its code runner and rustc wrapper.
    runner::hook();
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Run { .. } | Command::Prepare | Command::Install(_)
    ) {
        runner::export_std_dir();
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only for a person: Jupyter's log and the checker's error
        // reports quote this stream as text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env(conclab_wire::EnvVars::CONCLAB_LOG)
                .unwrap_or_else(|_| "warn,conclab_kernel=info".into()),
        )
        .init();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            build_progress::restore();
            eprintln!("conclab-kernel: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Install(args) => {
            let location = match (args.location.sys_prefix, args.location.prefix) {
                (true, _) => install::Location::SysPrefix,
                (false, Some(prefix)) => install::Location::Prefix(prefix),
                (false, None) => install::Location::User,
            };
            let dir = install::install(&location, &args.name)?;
            println!(
                "Installed the kernelspec {:?} in {}",
                args.name,
                dir.display()
            );
            if !args.no_prepare {
                prepare::run(&PreparedCrates::locate()?)?;
            }
            Ok(())
        }
        Command::Run { connection_file } => run(&connection_file),
        Command::Prepare => prepare::run(&PreparedCrates::locate()?),
    }
}

fn run(connection_file: &std::path::Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(connection_file).with_context(|| {
        format!(
            "cannot read the connection file {}",
            connection_file.display()
        )
    })?;
    let connection: jupyter_protocol::ConnectionInfo =
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a valid Jupyter connection file",
                connection_file.display()
            )
        })?;
    let prepared = PreparedCrates::locate()?;
    let session_dir = prepared.session_dir(std::process::id());
    // SAFETY: no other thread exists yet. evcxr reads its build directory
    // from the environment when the session starts.
    unsafe { std::env::set_var("EVCXR_TMPDIR", &session_dir) };
    let builds = build_progress::capture().context("redirecting stderr")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(server::serve(connection, prepared, session_dir, builds))?;
    // The session thread and the code runner end with the process.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(())
}
