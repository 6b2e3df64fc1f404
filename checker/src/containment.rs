//! Holds a learner's processes in a cgroup, where the machine lets the
//! checker make one.
//!
//! The 50 ms poll in [`crate::kernel`] enforces `--max-processes`, but
//! between two polls an exponential fork bomb run as root (RLIMIT_NPROC does
//! not bind root) can make thousands of processes, and a process that calls
//! setsid() and is handed to init escapes both the process-group kill and
//! the descendant walk. A cgroup's `pids.max` caps the first, and its member
//! list still names the second.
//!
//! One [`Containment`] per kernel. The kernel itself stays outside: its
//! compiles would count against the cap, and how many threads rustc and
//! cargo use is not ours to predict. Instead each code runner moves itself,
//! before it runs any cell, into a child cgroup `runner-PID` (see
//! `kernel/src/runner.rs`), so one runner's processes can be killed without
//! touching the fresh runner the kernel starts after it. `pids.max` on the
//! parent bounds all of them together.
//!
//! Where no cgroup can be made (no pids controller, no permission: the usual
//! case on an instructor's cgroup v2 desktop) [`Containment::create`] says
//! so at debug level and returns `None`; the poll and the process-group
//! kills then do the work alone.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use conclab_wire::EnvVars;

/// Tasks (threads count, as they do for `pids.max`) a code runner may have
/// beyond the learner's process limit. The lab's largest thread-per-item
/// cell spawns 300 threads, and every cell that uses rayon starts its own
/// pool of one thread per core; a fork bomb still stops far below pid_max.
const THREAD_HEADROOM: u64 = 1024;
/// Extra tasks per core, for those rayon pools on many-core machines.
const THREADS_PER_CORE: u64 = 16;

/// How long [`Containment`] keeps killing before it gives up on a cgroup.
const KILL_PATIENCE: Duration = Duration::from_secs(5);

/// Makes the names of cgroups unique within this checker (`--jobs`).
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The two layouts of the cgroup file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    /// cgroup v1: one hierarchy per controller; we use the `pids` one.
    V1,
    /// cgroup v2: one unified hierarchy.
    V2,
}

/// A cgroup made for one kernel's code runners, removed on drop.
#[derive(Debug)]
pub struct Containment {
    dir: PathBuf,
    version: Version,
}

impl Containment {
    /// The number of tasks to allow the runners of a kernel whose learner
    /// may have `processes` processes.
    pub fn tasks_for(processes: usize) -> u64 {
        let cores = std::thread::available_parallelism().map_or(1, usize::from) as u64;
        processes as u64 + THREAD_HEADROOM + THREADS_PER_CORE * cores
    }

    /// Makes a fresh cgroup whose tasks, all runners together, are capped
    /// at `tasks`; `None` when this machine or user cannot.
    pub fn create(tasks: u64) -> Option<Containment> {
        if std::env::var_os(EnvVars::CONCLAB_CGROUPS).is_some_and(|v| v == "0") {
            tracing::debug!("{}=0: not making cgroups", EnvVars::CONCLAB_CGROUPS);
            return None;
        }
        let mut why = Vec::new();
        for (version, parent) in [(Version::V2, v2_parent()), (Version::V1, v1_parent())] {
            let parent = match parent {
                Ok(parent) => parent,
                Err(error) => {
                    why.push(format!("{version:?}: {error}"));
                    continue;
                }
            };
            match make(&parent, version, tasks) {
                Ok(containment) => {
                    tracing::debug!(dir = %containment.dir.display(), tasks, "made a cgroup");
                    return Some(containment);
                }
                Err(error) => why.push(format!("{version:?}: {error}")),
            }
        }
        tracing::debug!("no cgroup for the learner's processes: {}", why.join("; "));
        None
    }

    /// The cgroup's directory: what [`EnvVars::CONCLAB_CGROUP`] tells the runner.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every process now in the cgroup of the runner `runner`, whatever its
    /// parent or session.
    pub fn runner_pids(&self, runner: u32) -> Vec<u32> {
        members(&self.runner_dir(runner))
    }

    /// Tasks (threads included) in the whole cgroup now, if it says.
    pub fn tasks(&self) -> Option<u64> {
        let current = fs::read_to_string(self.dir.join("pids.current")).ok()?;
        current.trim().parse().ok()
    }

    /// How often a fork by the runner `runner` or its processes was refused
    /// for `pids.max`, as the kernel counts it: at the forking task's cgroup
    /// or at the one whose limit was hit, by version. A fork bomb reaches the
    /// cap between two polls, and its shells may die of the refusals before
    /// a poll counts them: this keeps the evidence.
    pub fn refused_forks(&self, runner: u32) -> u64 {
        [self.dir.clone(), self.runner_dir(runner)]
            .iter()
            .filter_map(|dir| fs::read_to_string(dir.join("pids.events")).ok())
            .filter_map(|events| {
                events
                    .lines()
                    .find_map(|line| line.strip_prefix("max ")?.trim().parse::<u64>().ok())
            })
            .sum()
    }

    /// Kills every process in the runner `runner`'s cgroup, the runner too,
    /// and removes that cgroup.
    pub fn kill_runner(&self, runner: u32) {
        let dir = self.runner_dir(runner);
        if dir.is_dir() {
            kill(&dir, self.version);
            remove(&dir);
        }
    }

    /// Kills every process of every runner of this kernel.
    pub fn kill_all(&self) {
        kill(&self.dir, self.version);
    }

    /// Must match the name `kernel/src/runner.rs` gives its cgroup.
    fn runner_dir(&self, runner: u32) -> PathBuf {
        self.dir.join(format!("runner-{runner}"))
    }
}

impl Drop for Containment {
    fn drop(&mut self) {
        self.kill_all();
        remove(&self.dir);
    }
}

/// Makes `parent/conclab-PID-N` with its `pids.max` set.
fn make(parent: &Path, version: Version, tasks: u64) -> io::Result<Containment> {
    remove_stale(parent);
    let name = format!(
        "conclab-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let dir = parent.join(name);
    fs::create_dir(&dir).map_err(|e| context(e, "creating", &dir))?;
    let containment = Containment { dir, version };
    let max = containment.dir.join("pids.max");
    // Dropping `containment` on failure removes the folder again.
    fs::write(&max, tasks.to_string()).map_err(|e| context(e, "writing", &max))?;
    Ok(containment)
}

/// Where to make cgroups in the v2 hierarchy: our own cgroup, when it hands
/// the pids controller down to its children. It cannot do so while it holds
/// processes (the "no internal processes" rule) unless it is the root, so
/// this works where the checker runs in the root or a delegated parent.
fn v2_parent() -> io::Result<PathBuf> {
    let mount = mount_point(|fstype, _| fstype == "cgroup2")?;
    let own = own_cgroup(|controllers| controllers.is_empty())?;
    let dir = mount.join(own.trim_start_matches('/'));
    let enabled = dir.join("cgroup.subtree_control");
    let enabled = fs::read_to_string(&enabled).map_err(|e| context(e, "reading", &enabled))?;
    if !enabled.split_whitespace().any(|c| c == "pids") {
        return Err(io::Error::other(format!(
            "{} does not enable pids for its children",
            dir.display()
        )));
    }
    Ok(dir)
}

/// Where to make cgroups in the v1 `pids` hierarchy: our own cgroup there.
fn v1_parent() -> io::Result<PathBuf> {
    let pids = |list: &str| list.split(',').any(|c| c == "pids");
    let mount = mount_point(|fstype, options| fstype == "cgroup" && pids(options))?;
    let own = own_cgroup(pids)?;
    Ok(mount.join(own.trim_start_matches('/')))
}

/// The mount point of the first cgroup file system `wanted(fstype, super
/// options)` accepts, from /proc/self/mountinfo.
fn mount_point(wanted: impl Fn(&str, &str) -> bool) -> io::Result<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo")?;
    info.lines()
        .find_map(|line| {
            // ID PARENT MAJ:MIN ROOT MOUNT OPTIONS [OPTIONAL…] - TYPE SOURCE SUPER
            let (before, after) = line.split_once(" - ")?;
            let mount = before.split(' ').nth(4)?;
            let mut after = after.split(' ');
            let fstype = after.next()?;
            let options = after.nth(1).unwrap_or_default();
            wanted(fstype, options).then(|| PathBuf::from(mount))
        })
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such cgroup mount"))
}

/// Our own cgroup's path in the hierarchy whose controller list `wanted`
/// accepts, from /proc/self/cgroup (`ID:CONTROLLERS:PATH`).
fn own_cgroup(wanted: impl Fn(&str) -> bool) -> io::Result<String> {
    let text = fs::read_to_string("/proc/self/cgroup")?;
    text.lines()
        .find_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            wanted(controllers).then(|| path.to_owned())
        })
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not in such a cgroup"))
}

/// Removes the empty cgroups a checker that died left behind. Only empty
/// ones: a live process in one may belong to a checker in another pid
/// namespace.
fn remove_stale(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("conclab-"))
            .and_then(|n| n.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            for child in subgroups(&entry.path()) {
                let _ = fs::remove_dir(child);
            }
            let _ = fs::remove_dir(entry.path());
        }
    }
}

/// The cgroups directly below `dir`.
fn subgroups(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// The processes in `dir` and the cgroups below it. v1 may list a process
/// twice; nothing here minds.
fn members(dir: &Path) -> Vec<u32> {
    let mut pids: Vec<u32> = fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect();
    for child in subgroups(dir) {
        pids.extend(members(&child));
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// SIGKILLs everything in `dir` and below until none is left. Processes
/// may fork meanwhile, but a process with SIGKILL pending cannot, and
/// `pids.max` bounds how many there can be, so each round leaves fewer.
fn kill(dir: &Path, version: Version) {
    // v2 (Linux 5.14+) kills the whole subtree at once, forks included.
    if version == Version::V2 {
        let _ = fs::write(dir.join("cgroup.kill"), "1");
    }
    let me = std::process::id();
    let start = Instant::now();
    let mut round = 0;
    loop {
        let pids = members(dir);
        if pids.is_empty() {
            return;
        }
        if start.elapsed() > KILL_PATIENCE {
            tracing::warn!(dir = %dir.display(), left = pids.len(), "processes survived SIGKILL");
            return;
        }
        for pid in pids.into_iter().filter(|&pid| pid != me) {
            if let Ok(pid) = libc::pid_t::try_from(pid) {
                // SAFETY: kill only sends a signal; ESRCH (gone already) is fine.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        // Give the kernel time to tear them down before looking again.
        std::thread::sleep(Duration::from_millis(1 << round.min(6)));
        round += 1;
    }
}

/// Removes `dir` and the cgroups below it, waiting a little for processes
/// still on their way out (a cgroup with members cannot be removed).
fn remove(dir: &Path) {
    for child in subgroups(dir) {
        remove(&child);
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return,
            Err(error) if Instant::now() > deadline => {
                tracing::debug!(dir = %dir.display(), %error, "cannot remove a cgroup");
                return;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Names the file an I/O error is about.
fn context(error: io::Error, doing: &str, path: &Path) -> io::Error {
    io::Error::new(error.kind(), format!("{doing} {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_leave_room_for_threads() {
        assert!(Containment::tasks_for(64) > 64 + THREAD_HEADROOM);
    }

    /// Where the machine allows it: a cgroup caps forks and finds a
    /// process that left its session, and is gone after drop.
    #[test]
    fn a_cgroup_caps_and_kills_what_is_in_it() {
        let Some(containment) = Containment::create(8) else {
            eprintln!("skipped: this machine gives no cgroup with a pids controller");
            return;
        };
        let dir = containment.dir().to_owned();
        let runner = dir.join("runner-1");
        fs::create_dir(&runner).unwrap();
        let procs = runner.join("cgroup.procs");
        // The shell joins, then tries 20 background sleeps: at most 8 tasks fit.
        let script = format!(
            "echo $$ > {}; for i in $(seq 20); do setsid sleep 600 & done 2>/dev/null",
            procs.display()
        );
        // dash gives up at the first fork that fails: its status says nothing.
        let _ = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .status()
            .unwrap();
        let pids = containment.runner_pids(1);
        assert!(
            !pids.is_empty() && pids.len() < 8,
            "{} sleepers",
            pids.len()
        );
        containment.kill_runner(1);
        assert!(!runner.exists());
        for pid in pids {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            assert!(
                stat.is_empty() || stat.contains(") Z"),
                "{pid} survived: {stat}"
            );
        }
        drop(containment);
        assert!(!dir.exists());
    }
}
