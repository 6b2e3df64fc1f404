//! The learner's processes seen from outside, through `/proc`: which
//! processes descend from the code runner, what each of their threads is
//! doing, killing them all, and who is at the other end of a pipe.
//!
//! Everything here reads one-line text files that may vanish between two
//! reads (the learner's processes keep running and exiting), so a process or
//! thread that disappears is skipped, never an error.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::time::Duration;

/// One thread of a learner's process, as `/proc` showed it at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadSample {
    /// The process (thread group) id.
    pub pid: u32,
    /// The kernel thread id (`/proc/PID/task/TID`).
    pub tid: u32,
    /// The process's command name (`comm`, at most 15 bytes).
    pub process: String,
    /// The thread's name (its `comm`: what `thread::Builder::name` set).
    pub name: String,
    /// `R` running, `S` sleeping, `D` uninterruptible, `T` stopped, `Z` zombie, …
    pub state: char,
    /// The kernel function the thread sleeps in; `0` or empty when hidden.
    pub wchan: String,
    /// The system call the thread is blocked in; `None` while it runs in
    /// user space or when the file cannot be read.
    pub syscall: Option<Syscall>,
    /// User plus system CPU time, in clock ticks
    /// ([`clock_ticks_per_second`]): two samples give the CPU used between.
    pub cpu_ticks: u64,
}

/// A system call a thread is blocked in, from `/proc/PID/task/TID/syscall`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syscall {
    /// The architecture's system call number (`-1`: blocked outside any).
    pub number: i64,
    /// Its six arguments (all 0 when `number` is `-1`): for `futex` the
    /// first is the address waited on, for `read`/`write` the descriptor.
    pub args: [u64; 6],
}

/// A process holding the other end of a pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipePeer {
    /// Its process id.
    pub pid: u32,
    /// Its command name (`comm`).
    pub process: String,
}

/// The fields of a `stat` file this module uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stat {
    /// Field 2, without its parentheses.
    pub comm: String,
    /// Field 3.
    pub state: char,
    /// Field 4: the parent process.
    pub ppid: u32,
    /// Field 5: the process group.
    pub pgrp: u32,
    /// Fields 14 + 15: utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// Field 22: ticks after boot; tells a process from a later one that
    /// reused its pid.
    pub start_time: u64,
}

/// Parses a `/proc/PID/stat` line. `comm` may hold spaces and parentheses
/// (a learner can name a thread `a) (b`), so it ends at the LAST `)`.
pub(crate) fn parse_stat(line: &str) -> Option<Stat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let comm = line.get(open + 1..close)?.to_owned();
    // Field 3 onwards; index 0 is field 3.
    let fields: Vec<&str> = line.get(close + 1..)?.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).copied();
    let number = |n: usize| field(n)?.parse::<u64>().ok();
    Some(Stat {
        comm,
        state: field(3)?.chars().next()?,
        ppid: field(4)?.parse().ok()?,
        pgrp: field(5)?.parse().ok()?,
        cpu_ticks: number(14)? + number(15)?,
        start_time: number(22)?,
    })
}

/// Parses `/proc/PID/task/TID/syscall`: `NR ARG1 … ARG6 SP PC`, `-1 SP PC`
/// when blocked outside a system call, or `running`.
pub(crate) fn parse_syscall(text: &str) -> Option<Syscall> {
    let mut words = text.split_whitespace();
    let number: i64 = words.next()?.parse().ok()?;
    let mut args = [0; 6];
    if number >= 0 {
        for arg in &mut args {
            let word = words.next()?;
            *arg = u64::from_str_radix(word.trim_start_matches("0x"), 16).ok()?;
        }
    }
    Some(Syscall { number, args })
}

fn read_stat(path: &str) -> Option<Stat> {
    parse_stat(&fs::read_to_string(path).ok()?)
}

/// A process's `stat`: its parent, and utime + stime of the whole process,
/// its finished threads included.
pub(crate) fn process_stat(pid: u32) -> Option<Stat> {
    read_stat(&format!("/proc/{pid}/stat"))
}

/// A process's resident memory, in bytes (0 once it is gone).
pub fn rss_bytes(pid: u32) -> u64 {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|statm| statm.split(' ').nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page)
}

/// Every process now, with its stat: one pass over `/proc`.
fn processes() -> Vec<(u32, Stat)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, read_stat(&format!("/proc/{pid}/stat"))?)))
        .collect()
}

/// `roots` first, then every process of `table` whose parent chain leads to
/// one of them, in breadth-first order (parents before children).
fn tree(table: &[(u32, Stat)], roots: &[u32]) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, stat) in table {
        children.entry(stat.ppid).or_default().push(*pid);
    }
    let mut seen = HashSet::new();
    let mut found: Vec<u32> = roots.iter().copied().filter(|&r| seen.insert(r)).collect();
    let mut next = 0;
    while next < found.len() {
        let mut kids = children.get(&found[next]).cloned().unwrap_or_default();
        kids.sort_unstable();
        found.extend(kids.into_iter().filter(|&kid| seen.insert(kid)));
        next += 1;
    }
    found
}

/// The roots (as given, even if gone: sampling skips those) and every live
/// process whose parent chain leads to one of them, parents before children.
pub fn descendants(roots: &[u32]) -> Vec<u32> {
    tree(&processes(), roots)
}

/// Every thread of these processes, in the order given and by thread id;
/// processes and threads that vanished meanwhile are skipped.
pub fn sample(pids: &[u32]) -> Vec<ThreadSample> {
    let mut samples = Vec::new();
    let mut seen = HashSet::new();
    for &pid in pids.iter().filter(|&&pid| seen.insert(pid)) {
        let Some(process) = read_stat(&format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        let mut tids: Vec<u32> = tasks
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
            .collect();
        tids.sort_unstable();
        for tid in tids {
            let dir = format!("/proc/{pid}/task/{tid}");
            let Some(stat) = read_stat(&format!("{dir}/stat")) else {
                continue;
            };
            let wchan = fs::read_to_string(format!("{dir}/wchan"))
                .map(|wchan| wchan.trim().to_owned())
                .unwrap_or_default();
            let syscall = fs::read_to_string(format!("{dir}/syscall"))
                .ok()
                .and_then(|text| parse_syscall(&text));
            samples.push(ThreadSample {
                pid,
                tid,
                process: process.comm.clone(),
                name: stat.comm,
                state: stat.state,
                wchan,
                syscall,
                cpu_ticks: stat.cpu_ticks,
            });
        }
    }
    samples
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of
/// [`ThreadSample::cpu_ticks`]; 100 if sysconf fails.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// How many times [`kill_tree`] looks again for survivors before giving up.
const KILL_ROUNDS: u32 = 10;
/// How many times one round rescans for processes forked while it stops them.
const STOP_SCANS: u32 = 20;

/// Whether a process can still run (zombies and dead ones cannot, and
/// killing them again is pointless).
fn alive(stat: &Stat) -> bool {
    !matches!(stat.state, 'Z' | 'X' | 'x')
}

/// SIGKILLs the process groups `pgids` and every descendant of `roots`,
/// looking again until none is left, for processes may fork meanwhile.
/// Harmless when they are gone already. Does not reap: the caller owns its
/// children (those stay zombies until it waits for them). Never signals the
/// calling process, nor its own process group as a whole.
///
/// Each round first SIGSTOPs the whole tree, rescanning until no new
/// process appears: a stopped process cannot fork, and its children keep
/// it as their parent, so the tree stays whole until the SIGKILLs (killing
/// a parent first would hand its children to init, out of sight).
pub fn kill_tree(pgids: &[u32], roots: &[u32]) {
    let me = std::process::id();
    // SAFETY: getpgrp has no preconditions.
    let my_group = unsafe { libc::getpgrp() } as u32;
    // killpg(0) and killpg(1) would mean "our group" and "everyone".
    let groups: Vec<u32> = pgids
        .iter()
        .copied()
        .filter(|&g| g > 1 && g != my_group)
        .collect();
    // Processes already signalled, with their start time (a pid may be reused).
    let mut known: HashMap<u32, u64> = HashMap::new();
    let targets_now = |known: &HashMap<u32, u64>| -> Vec<(u32, u64)> {
        let table = processes();
        let mut from: Vec<u32> = roots.to_vec();
        from.extend(
            table
                .iter()
                .filter(|(pid, stat)| known.get(pid) == Some(&stat.start_time))
                .map(|(pid, _)| *pid),
        );
        let in_tree: HashSet<u32> = tree(&table, &from).into_iter().collect();
        table
            .iter()
            .filter(|(pid, stat)| {
                *pid != me && alive(stat) && (in_tree.contains(pid) || groups.contains(&stat.pgrp))
            })
            .map(|(pid, stat)| (*pid, stat.start_time))
            .collect()
    };
    for round in 0..KILL_ROUNDS {
        let mut targets: HashMap<u32, u64> = HashMap::new();
        for _ in 0..STOP_SCANS {
            for &group in &groups {
                signal_group(group, libc::SIGSTOP);
            }
            let new: Vec<(u32, u64)> = targets_now(&known)
                .into_iter()
                .filter(|(pid, _)| !targets.contains_key(pid))
                .collect();
            if new.is_empty() {
                break;
            }
            for (pid, start) in new {
                signal(pid, libc::SIGSTOP);
                targets.insert(pid, start);
                known.insert(pid, start);
            }
        }
        if targets.is_empty() {
            return;
        }
        for &group in &groups {
            signal_group(group, libc::SIGKILL);
        }
        for &pid in targets.keys() {
            signal(pid, libc::SIGKILL);
        }
        // Give the kernel time to tear them down before counting survivors.
        std::thread::sleep(Duration::from_millis(5 << round.min(4)));
    }
    tracing::warn!(?pgids, ?roots, "processes survived SIGKILL");
}

fn signal(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill only sends a signal; ESRCH (gone already) is fine.
    unsafe { libc::kill(pid, signal) };
}

fn signal_group(pgid: u32, signal: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    // SAFETY: killpg only sends a signal; ESRCH (gone already) is fine.
    unsafe { libc::killpg(pgid, signal) };
}

/// What descriptor `fd` of `pid` refers to, as `/proc/PID/fd/FD` says:
/// `pipe:[INODE]`, `socket:[INODE]`, a path, …
pub(crate) fn fd_target(pid: u32, fd: u64) -> Option<String> {
    let link = fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
    Some(link.to_string_lossy().into_owned())
}

/// `O_RDONLY`, `O_WRONLY` or `O_RDWR` for descriptor `fd` of `pid`, from
/// the octal `flags:` line of its fdinfo: it tells a pipe's two ends apart.
fn access_mode(pid: u32, fd: &str) -> Option<i32> {
    let info = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
    let flags = info.lines().find_map(|line| line.strip_prefix("flags:"))?;
    Some(i32::from_str_radix(flags.trim(), 8).ok()? & libc::O_ACCMODE)
}

/// When descriptor `fd` of `pid` is a pipe, another process that has the
/// same pipe open at its other end (any end, when the modes cannot be read):
/// the process `pid` waits for. `None` if it is not a pipe or nobody else
/// holds it (the usual cause: `pid` itself still holds the other end).
pub fn pipe_peer(pid: u32, fd: u64) -> Option<PipePeer> {
    pipe_peers(pid, fd).into_iter().next()
}

/// Every other process that has the pipe `fd` of `pid` open at its other
/// end, by pid; empty if it is not a pipe or nobody else holds it.
pub fn pipe_peers(pid: u32, fd: u64) -> Vec<PipePeer> {
    let Some(link) = fd_target(pid, fd).filter(|link| link.starts_with("pipe:")) else {
        return Vec::new();
    };
    let mine = access_mode(pid, &fd.to_string());
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut others: Vec<u32> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&other| other != pid)
        .collect();
    others.sort_unstable();
    let mut peers = Vec::new();
    for other in others {
        let Ok(fds) = fs::read_dir(format!("/proc/{other}/fd")) else {
            continue;
        };
        let holds_other_end = fds.flatten().any(|entry| {
            if fs::read_link(entry.path()).ok().as_deref() != Some(link.as_ref()) {
                return false;
            }
            let theirs = access_mode(other, &entry.file_name().to_string_lossy());
            match (mine, theirs) {
                (Some(mine), Some(theirs)) => {
                    mine != theirs || mine == libc::O_RDWR || theirs == libc::O_RDWR
                }
                _ => true,
            }
        });
        if holds_other_end {
            let process = read_stat(&format!("/proc/{other}/stat"))
                .map(|stat| stat.comm)
                .unwrap_or_default();
            peers.push(PipePeer {
                pid: other,
                process,
            });
        }
    }
    peers
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command, Stdio};
    use std::time::Instant;

    use super::*;

    /// Kills what a test started even when an assertion fails first.
    struct Started(Child);

    impl Drop for Started {
        fn drop(&mut self) {
            kill_tree(&[], &[self.0.id()]);
            let _ = self.0.wait();
        }
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn is_alive(pid: u32) -> bool {
        read_stat(&format!("/proc/{pid}/stat")).is_some_and(|stat| alive(&stat))
    }

    fn in_syscall(pid: u32, numbers: &[i64]) -> bool {
        sample(&[pid])
            .iter()
            .any(|t| t.syscall.is_some_and(|s| numbers.contains(&s.number)))
    }

    #[cfg(target_arch = "x86_64")]
    const SLEEPS: &[i64] = &[35, 230];
    #[cfg(target_arch = "aarch64")]
    const SLEEPS: &[i64] = &[101, 115];
    #[cfg(target_arch = "x86_64")]
    const READ: i64 = 0;
    #[cfg(target_arch = "aarch64")]
    const READ: i64 = 63;

    #[test]
    fn a_stat_line_is_split_at_the_last_parenthesis() {
        let line = "4242 (evil) (name) x) S 17 4242 4242 0 -1 4194560 100 0 0 0 \
                    7 3 0 0 20 0 2 0 123456 1000 200 18446744073709551615\n";
        let stat = parse_stat(line).unwrap();
        assert_eq!(stat.comm, "evil) (name) x");
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.ppid, 17);
        assert_eq!(stat.pgrp, 4242);
        assert_eq!(stat.cpu_ticks, 10);
        assert_eq!(stat.start_time, 123456);
        assert_eq!(parse_stat("4242 (cut short"), None);
    }

    #[test]
    fn a_syscall_line_gives_number_and_arguments() {
        let line = "202 0x55d0c0a0 0x89 0x2 0x0 0x0 0xffffffff 0x7ffd0 0x7f00\n";
        let syscall = parse_syscall(line).unwrap();
        assert_eq!(syscall.number, 202);
        assert_eq!(syscall.args, [0x55d0c0a0, 0x89, 2, 0, 0, 0xffffffff]);
        assert_eq!(parse_syscall("running\n"), None);
        assert_eq!(parse_syscall("-1 0x7ffd0 0x7f00\n").unwrap().number, -1);
    }

    #[test]
    fn clock_ticks_are_positive() {
        assert!(clock_ticks_per_second() > 0);
    }

    #[test]
    fn a_sleeping_child_is_sampled_in_its_sleep() {
        let child = Started(Command::new("sleep").arg("30").spawn().unwrap());
        let pid = child.0.id();
        wait_until("sleep to sleep", || in_syscall(pid, SLEEPS));
        let threads = sample(&[pid, 999_999_999]);
        assert_eq!(threads.len(), 1, "{threads:?}");
        let thread = &threads[0];
        assert_eq!((thread.pid, thread.tid), (pid, pid));
        assert_eq!(
            (thread.process.as_str(), thread.name.as_str()),
            ("sleep", "sleep")
        );
        assert_eq!(thread.state, 'S');
        assert!(thread.cpu_ticks < clock_ticks_per_second(), "{thread:?}");
    }

    #[test]
    fn the_sampling_thread_is_seen_running() {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() } as u32;
        let threads = sample(&[std::process::id()]);
        let me = threads.iter().find(|t| t.tid == tid).unwrap();
        assert_eq!(me.state, 'R');
        // It was reading its own syscall file at that moment.
        assert_eq!(me.syscall.map(|s| s.number), Some(READ));
    }

    #[test]
    fn descendants_reach_grandchildren_that_left_the_session() {
        let shell = Started(
            Command::new("sh")
                .args(["-c", "sleep 30 & setsid sleep 30 & wait"])
                .spawn()
                .unwrap(),
        );
        let root = shell.0.id();
        wait_until("two sleeping grandchildren", || {
            let all = descendants(&[root]);
            all.len() == 3 && all[1..].iter().all(|&pid| in_syscall(pid, SLEEPS))
        });
        let all = descendants(&[root]);
        assert_eq!(all[0], root, "the root comes first");
        assert_eq!(descendants(&[999_999_999]), [999_999_999]);

        kill_tree(&[], &[root]);
        for pid in &all {
            assert!(!is_alive(*pid), "pid {pid} survived");
        }
        kill_tree(&[], &[root]); // harmless when they are gone already
    }

    #[test]
    fn a_process_group_is_killed_whole() {
        let leader = Started(
            Command::new("sh")
                .args(["-c", "sleep 30 & sleep 30 & wait"])
                .process_group(0)
                .spawn()
                .unwrap(),
        );
        let group = leader.0.id();
        let members = || {
            processes()
                .into_iter()
                .filter(|(_, stat)| stat.pgrp == group && alive(stat))
                .count()
        };
        wait_until("three processes in the group", || members() == 3);
        kill_tree(&[group], &[]);
        assert_eq!(members(), 0);
    }

    #[test]
    fn a_process_that_keeps_forking_is_killed_with_all_it_forked() {
        let shell = Started(
            Command::new("sh")
                .args(["-c", "while :; do sleep 30 & sleep 0.005; done"])
                .process_group(0)
                .spawn()
                .unwrap(),
        );
        let root = shell.0.id();
        wait_until("a few forks", || descendants(&[root]).len() > 10);
        // Only the root is named: its children must not escape to init
        // when it dies before them.
        kill_tree(&[], &[root]);
        let left: Vec<u32> = processes()
            .into_iter()
            .filter(|(_, stat)| stat.pgrp == root && alive(stat))
            .map(|(pid, _)| pid)
            .collect();
        assert!(left.is_empty(), "survivors: {left:?}");
    }

    #[test]
    fn a_reader_blocked_on_a_pipe_finds_its_writer() {
        let mut cat = Started(
            Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let pid = cat.0.id();
        let mut stdin = cat.0.stdin.take().unwrap();
        stdin.write_all(b"hello\n").unwrap();
        wait_until("cat to read its stdin", || {
            sample(&[pid]).iter().any(|t| {
                t.syscall
                    .is_some_and(|s| s.number == READ && s.args[0] == 0)
            })
        });
        let peer = pipe_peer(pid, 0).expect("we hold the write end");
        assert_eq!(peer.pid, std::process::id());
        assert_eq!(
            peer.process,
            read_stat("/proc/self/stat").unwrap().comm,
            "named by its comm"
        );
        assert!(fd_target(pid, 0).unwrap().starts_with("pipe:["));
        assert_eq!(pipe_peer(pid, 1), None, "stdout is /dev/null");
        assert_eq!(pipe_peer(pid, 77), None, "no such descriptor");
        drop(stdin);
    }
}
