//! The code runner: the child process evcxr starts to load and run each cell.
//!
//! evcxr re-runs the kernel's own executable for this, so [`hook`] must be the
//! first thing `main` does. We replace evcxr's loop with our own so that the
//! end of a cell is only announced after everything the cell printed (stdout
//! and stderr, with or without a final newline) has been sent, in order, ahead
//! of it. See [`crate::frame`] for the line format.

use std::ffi::c_void;
use std::io::BufRead;
use std::sync::OnceLock;

use anyhow::{Context, bail};
use conclab_wire::EnvVars;

use crate::relay::Relay;

/// Set by evcxr in the environment of the process it starts to run cells.
const IS_RUNTIME_VAR: &str = "EVCXR_IS_RUNTIME";

/// Name of the function every cell library exports (see [`crate::prelude`])
/// that flushes the cell's own copy of std's stdout and stderr buffers.
pub const FLUSH_SYMBOL: &str = "conclab_flush_stdio";

static RELAY: OnceLock<Relay> = OnceLock::new();

/// Becomes the code runner (never returns) when evcxr started this process
/// for that, or evcxr's rustc wrapper when it asked for that; otherwise
/// returns at once.
pub fn hook() {
    if std::env::var_os(IS_RUNTIME_VAR).is_some() {
        let code = match serve() {
            Ok(()) => 0,
            Err(error) => {
                eprintln!("conclab code runner: {error:#}");
                99
            }
        };
        if let Some(relay) = RELAY.get() {
            relay.drain();
        }
        std::process::exit(code);
    }
    evcxr::runtime_hook();
}

fn serve() -> anyhow::Result<()> {
    // SAFETY: plain system calls with constant arguments. The runner leads its
    // own process group so an interrupt can stop the processes a cell started
    // too, and dies with the kernel thread that started it.
    unsafe {
        libc::setpgid(0, 0);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    // SAFETY: no other thread exists yet. Learners read a panic's message, not
    // a backtrace of generated code; evcxr turns backtraces on for the runner.
    unsafe { std::env::set_var("RUST_BACKTRACE", "0") };

    apply_limits();
    contain();
    preload_std()?;
    let relay = RELAY.get_or_init(|| Relay::install().expect("cannot redirect stdout and stderr"));
    relay.spawn_pump();
    install_crash_handlers();
    // SAFETY: registers a plain `extern "C"` function.
    unsafe { libc::atexit(drain_at_exit) };

    let mut variables: *mut c_void = std::ptr::null_mut();
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading instructions from the kernel")?;
        let mut words = line.split(' ');
        let (Some("LOAD_AND_RUN"), Some(path), Some(function), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            bail!("unrecognised instruction {line:?}");
        };
        // SAFETY: the library is the cell evcxr just compiled, and `function`
        // has exactly this signature in it. The library is never unloaded:
        // thread-local destructors may still point into it.
        unsafe {
            let library = libloading::Library::new(path)
                .with_context(|| format!("loading the compiled cell {path}"))?;
            let run = library
                .get::<extern "C" fn(*mut c_void) -> *mut c_void>(function.as_bytes())
                .with_context(|| format!("finding {function} in {path}"))?;
            variables = run(variables);
            if let Ok(flush) = library.get::<extern "C" fn()>(FLUSH_SYMBOL.as_bytes()) {
                flush();
            }
            std::mem::forget(library);
        }
        relay.end_cell();
    }
    Ok(())
}

/// Applies the limits a grader asked for; a learner's own kernel sets none.
fn apply_limits() {
    let limit = |var: &str| std::env::var(var).ok()?.trim().parse::<u64>().ok();
    let set = |resource, value: u64| {
        let limit = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: setrlimit reads one rlimit we own.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            tracing::warn!("setrlimit: {}", std::io::Error::last_os_error());
        }
    };
    if let Some(mib) = limit(EnvVars::CONCLAB_LIMIT_MEMORY_MB) {
        set(libc::RLIMIT_AS, mib << 20);
    }
    if let Some(processes) = limit(EnvVars::CONCLAB_LIMIT_PROCESSES) {
        set(libc::RLIMIT_NPROC, processes);
    }
    // A crash of learner code must not write gigabytes of core dump.
    set(libc::RLIMIT_CORE, 0);
}

/// Keeps the processes a cell starts where a grader can find them. Runs
/// before any cell, so nothing the learner starts is outside.
fn contain() {
    let joined = std::env::var_os(EnvVars::CONCLAB_CGROUP).is_some_and(|dir| {
        let dir = std::path::Path::new(&dir).join(format!("runner-{}", std::process::id()));
        // "0" is the writer itself, with all its threads; children inherit.
        let joined =
            std::fs::create_dir(&dir).and_then(|()| std::fs::write(dir.join("cgroup.procs"), "0"));
        if let Err(error) = &joined {
            tracing::warn!("joining the cgroup {}: {error}", dir.display());
        }
        joined.is_ok()
    });
    // Under a grader without a cgroup: orphans of the learner's processes
    // (a double fork into a new session) then stay below the runner, where
    // the grader's walk finds them, instead of passing to init. The price:
    // an orphan that ends stays a zombie the learner could not have reaped,
    // which `no_leaks` cannot tell from one the learner forgot. A cgroup
    // finds orphans without that price, so it is preferred.
    if !joined && std::env::var_os(EnvVars::CONCLAB_LIMIT_PROCESSES).is_some() {
        // SAFETY: prctl with constant arguments.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            tracing::warn!(
                "PR_SET_CHILD_SUBREAPER: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Tells the code runners this process starts where the toolchain's shared
/// std is. Call before any thread starts.
pub fn export_std_dir() {
    let dir = std::process::Command::new("rustc")
        .args(["--print", "target-libdir"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned());
    if let Some(dir) = dir {
        // SAFETY: called from `main` before any other thread exists.
        unsafe { std::env::set_var(EnvVars::CONCLAB_STD_DIR, dir) };
    }
}

/// Loads the toolchain's shared std before any cell. Cells link to it by
/// name, and cargo records where to find it relative to the build directory,
/// which only works by luck when that directory sits outside the home
/// directory; once loaded, the dynamic loader reuses it by name.
fn preload_std() -> anyhow::Result<()> {
    let Some(dir) = std::env::var_os(EnvVars::CONCLAB_STD_DIR) else {
        return Ok(());
    };
    let dir = std::path::Path::new(&dir);
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("libstd-") && name.ends_with(".so") {
            // SAFETY: std's own shared library; it is never unloaded.
            let library = unsafe {
                libloading::os::unix::Library::open(
                    Some(entry.path()),
                    libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL,
                )
            }
            .with_context(|| format!("loading {}", entry.path().display()))?;
            std::mem::forget(library);
        }
    }
    Ok(())
}

extern "C" fn drain_at_exit() {
    if let Some(relay) = RELAY.get() {
        relay.drain();
    }
}

/// On a crash, say which signal it was through the relay's pipe, then die of
/// that signal so the kernel sees what happened.
fn install_crash_handlers() {
    extern "C" fn on_crash(signal: libc::c_int) {
        let message: &[u8] = match signal {
            libc::SIGSEGV => b"Segmentation fault: the cell read or wrote memory it does not own.",
            libc::SIGBUS => b"Bus error.",
            libc::SIGILL => b"Illegal instruction.",
            libc::SIGFPE => b"Arithmetic exception.",
            _ => b"Fatal signal.",
        };
        if let Some(relay) = RELAY.get() {
            relay.write_raw_stderr_line(message);
        }
        // SAFETY: async-signal-safe calls only.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
    }
    for signal in [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE] {
        // SAFETY: installs a handler that only makes async-signal-safe calls.
        unsafe { libc::signal(signal, on_crash as *const () as libc::sighandler_t) };
    }
}
