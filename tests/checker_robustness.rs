//! Submissions that try to harm the machine or fool the checker: each is
//! graded as a failure, within its limits, and the checker carries on.

mod support;

use conclab_check::report::Outcome;
use support::{grade, lab, submission, with_timeout, write};

const NOTEBOOK: &str = "07-semaphores.ipynb";

/// The step 7 notebook with the semaphore cell replaced by `code`: the
/// downloads exercise after it still uses the semaphore.
fn graded_with(code: &str, extra: &[&str]) -> support::Graded {
    graded_with_env(code, extra, &[])
}

/// `graded_with`, with extra environment variables for conclab-check.
fn graded_with_env(code: &str, extra: &[&str], env: &[(&str, &str)]) -> support::Graded {
    let dir = tempfile::tempdir().unwrap();
    let source = write(
        dir.path(),
        NOTEBOOK,
        &with_timeout(support::read(&lab().join(NOTEBOOK)), 10.0),
    );
    let learner = write(
        dir.path(),
        "learner.ipynb",
        &submission(NOTEBOOK, &[("step07-semaphore", code)]),
    );
    let mut args = vec!["--source".as_ref(), source.as_os_str(), learner.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    support::grade_with_env(&args, env)
}

/// A semaphore cell whose `new` runs `body` first.
fn semaphore_doing(body: &str) -> String {
    format!(
        r#"
pub struct Semaphore {{ free: labkit::sync::Mutex<usize>, released: labkit::sync::Condvar }}
pub struct Permit<'a> {{ semaphore: &'a Semaphore }}
impl Semaphore {{
    pub fn new(permits: usize) -> Semaphore {{
        {body}
        Semaphore {{ free: labkit::sync::Mutex::named("permits", permits), released: labkit::sync::Condvar::named("released") }}
    }}
    pub fn acquire(&self) -> Permit<'_> {{
        let free = self.free.lock().unwrap();
        let mut free = self.released.wait_while(free, |f| *f == 0).unwrap();
        *free -= 1;
        Permit {{ semaphore: self }}
    }}
    pub fn available(&self) -> usize {{ *self.free.lock().unwrap() }}
}}
impl Drop for Permit<'_> {{
    fn drop(&mut self) {{
        *self.semaphore.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.semaphore.released.notify_one();
    }}
}}"#
    )
}

fn no_points(graded: &support::Graded) {
    let earned: f64 = graded
        .checks()
        .filter(|c| c.cell.starts_with("step07-semaphore"))
        .map(|c| c.score)
        .sum();
    assert_eq!(earned, 0.0, "{:#?}", graded.report);
    assert_eq!(
        graded.code, 1,
        "a learner's failure is exit 1: {}",
        graded.stderr
    );
}

#[test]
fn a_process_flood_is_stopped_at_the_process_limit() {
    let graded = graded_with(
        &semaphore_doing(
            r#"loop { let _ = std::process::Command::new("sh").arg("-c").arg("sleep 60 & sleep 60").spawn(); }"#,
        ),
        &["--max-processes", "32"],
    );
    graded.expect(
        "step07-semaphore-test",
        Outcome::Failed,
        "more than the limit of 32",
    );
    graded.expect(
        "step07-limited-downloads-test",
        Outcome::NotRun,
        "was stopped for starting too many processes",
    );
    no_points(&graded);
}

/// A string no other process on the machine has in its command line.
fn marker(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("conclab-{what}-{}-{nanos}", std::process::id())
}

/// Processes whose command line holds `marker`, after giving the ones just
/// killed a moment to go: a SIGKILLed process keeps its command line until
/// it has torn down its memory.
fn survivors(marker: &str) -> Vec<String> {
    let scan = || -> Vec<String> {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
            .filter_map(|e| {
                let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
                cmdline
                    .contains(marker)
                    .then(|| format!("{}: {stat}", e.file_name().to_string_lossy()))
            })
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let left = scan();
        if left.is_empty() || std::time::Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Whether the checker can make a cgroup with a pids controller here (see
/// checker/src/containment.rs): only then is a fork bomb bounded when it
/// runs as root, between two of the checker's polls.
fn cgroups_available() -> Result<(), String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    let mount = |v2: bool| {
        mountinfo.lines().find_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let mut after = after.split(' ');
            let (fstype, options) = (after.next()?, after.nth(1).unwrap_or_default());
            let wanted = if v2 {
                fstype == "cgroup2"
            } else {
                fstype == "cgroup" && options.split(',').any(|c| c == "pids")
            };
            wanted.then(|| before.split(' ').nth(4).unwrap().to_owned())
        })
    };
    let path = |v2: bool| {
        own.lines().find_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            let wanted = if v2 {
                controllers.is_empty()
            } else {
                controllers.split(',').any(|c| c == "pids")
            };
            wanted.then(|| path.trim_start_matches('/').to_owned())
        })
    };
    for v2 in [true, false] {
        let (Some(mount), Some(path)) = (mount(v2), path(v2)) else {
            continue;
        };
        let parent = std::path::Path::new(&mount).join(path);
        if v2
            && !std::fs::read_to_string(parent.join("cgroup.subtree_control"))
                .unwrap_or_default()
                .split_whitespace()
                .any(|c| c == "pids")
        {
            continue;
        }
        let probe = parent.join(marker("probe"));
        if std::fs::create_dir(&probe).is_ok() {
            let usable = probe.join("pids.max").exists();
            std::fs::remove_dir(&probe).unwrap();
            if usable {
                return Ok(());
            }
        }
    }
    Err("no cgroup with a pids controller can be made here".into())
}

#[test]
fn an_exponential_fork_bomb_is_stopped_and_leaves_nothing_behind() {
    // As root nothing but the cgroup's pids.max bounds the bomb between two
    // of the checker's 50 ms polls: without it this test could fill the
    // machine's process table.
    if let Err(why) = cgroups_available() {
        println!("skipped: {why}");
        return;
    }
    let marker = marker("bomb");
    // Every copy loops forever starting copies of itself, each in a new
    // session, so the kill cannot rely on process groups. "$0" is the marker.
    let bomb = r#"while :; do setsid sh -c "$BOMB" "$0" & done"#;
    let started = std::time::Instant::now();
    let graded = graded_with(
        &semaphore_doing(&format!(
            r##"let _ = std::process::Command::new("sh").arg("-c").arg(r#"{bomb}"#).arg("{marker}")
                .env("BOMB", r#"{bomb}"#)
                .stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null())
                .spawn();
            std::thread::sleep(std::time::Duration::from_secs(60));"##
        )),
        &["--max-processes", "32"],
    );
    println!("graded in {:.1} s", started.elapsed().as_secs_f64());
    graded.expect(
        "step07-semaphore-test",
        Outcome::Failed,
        "more than the limit of 32",
    );
    no_points(&graded);
    let left = survivors(&marker);
    assert!(left.is_empty(), "the bomb left {left:#?}");
}

#[test]
fn a_detached_double_forked_sleeper_is_killed_after_grading() {
    // The shell starts the sleeper in a new session and exits at once: the
    // sleeper is nobody's child and in nobody's process group.
    let marker = marker("sleeper");
    let code = semaphore_doing(&format!(
        r##"let _ = std::process::Command::new("sh").arg("-c")
            .arg(r#"setsid sh -c 'while :; do sleep 1; done' "$0" </dev/null >/dev/null 2>&1 &"#)
            .arg("{marker}").status();"##
    ));
    // With the cgroup where there is one, then with the child subreaper and
    // the process walk alone, as on a machine without cgroups.
    for env in [&[][..], &[("CONCLAB_CGROUPS", "0")][..]] {
        let graded = graded_with_env(&code, &[], env);
        assert!(
            matches!(graded.code, 0 | 1),
            "{env:?}: exit {}: {}",
            graded.code,
            graded.stderr
        );
        let left = survivors(&marker);
        assert!(left.is_empty(), "{env:?}: the sleeper survived: {left:#?}");
    }
}

#[test]
fn an_orphan_that_ended_is_no_leak_and_one_still_running_is() {
    // A shell's background job outlives the shell. Once it has ended it is
    // no leak (outside the checker init reaps it, and the learner's code
    // could not); the cgroup finds orphans without making the runner their
    // parent, where an ended one would look like an unreaped child.
    if let Err(why) = cgroups_available() {
        println!("skipped: {why}");
        return;
    }
    let ended = graded_with(
        &semaphore_doing(
            r#"let _ = std::process::Command::new("sh").arg("-c").arg("sleep 0.05 &").status();"#,
        ),
        &[],
    );
    ended.expect(
        "step07-limited-downloads-hidden/no_leaks",
        Outcome::Passed,
        "",
    );

    let marker = marker("orphan");
    let running = graded_with(
        &semaphore_doing(&format!(
            r##"let _ = std::process::Command::new("sh").arg("-c")
                .arg(r#"setsid sh -c 'sleep 30; true' "$0" </dev/null >/dev/null 2>&1 &"#)
                .arg("{marker}").status();"##
        )),
        &[],
    );
    running.expect(
        "step07-limited-downloads-hidden/no_leaks",
        Outcome::Failed,
        "(still running)",
    );
    let left = survivors(&marker);
    assert!(left.is_empty(), "the orphan survived: {left:#?}");
}

#[test]
fn a_memory_hog_is_stopped_at_the_memory_limit() {
    let graded = graded_with(
        &semaphore_doing("let mut hog = Vec::new(); loop { hog.push(vec![1u8; 32 << 20]); }"),
        &["--memory-mb", "400"],
    );
    let check = graded.check("step07-semaphore-test");
    assert_eq!(check.outcome, Outcome::Failed, "{check:#?}");
    let message = &check.message;
    assert!(
        message.contains("more than the limit of 400 MiB") || message.contains("memory"),
        "{message}"
    );
    no_points(&graded);
}

#[test]
fn an_output_flood_is_cut_off() {
    let graded = graded_with(
        &semaphore_doing(r#"loop { println!("{}", "spam ".repeat(200)); }"#),
        &["--max-output-kib", "256"],
    );
    graded.expect(
        "step07-semaphore-test",
        Outcome::Failed,
        "printed more than 256 KiB",
    );
    no_points(&graded);
}

#[test]
fn an_early_exit_with_status_zero_gains_nothing() {
    let graded = graded_with(&semaphore_doing("std::process::exit(0);"), &[]);
    graded.expect("step07-semaphore-test", Outcome::Failed, "");
    no_points(&graded);
}

#[test]
fn closing_stdout_gains_nothing() {
    // No libc in a cell: close fd 1 through std, by taking ownership of it.
    let graded = graded_with(
        &semaphore_doing(
            "{ use std::os::fd::FromRawFd; drop(unsafe { std::fs::File::from_raw_fd(1) }); }",
        ),
        &[],
    );
    graded.expect("step07-semaphore-test", Outcome::Failed, "");
    no_points(&graded);
}

#[test]
fn fake_results_shadowed_asserts_and_a_forged_trace_gain_nothing() {
    // Shadows the assertion macros, prints what a passing test prints, and
    // writes "proof" of concurrency into the trace without the nonce.
    let cheat = format!(
        r##"
macro_rules! assert {{ ($($t:tt)*) => {{}}; }}
macro_rules! assert_eq {{ ($($t:tt)*) => {{}}; }}
{}
pub fn forge() {{
    use std::io::Write;
    if let Some(path) = std::env::var_os("CONCLAB_TRACE") {{
        let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        for i in 0..3 {{
            writeln!(file, r#"{{{{"v":3,"nonce":"guess","seq":{{i}},"t_ns":1,"pid":1,"tid":1,"thread":"main","kind":"span_enter","name":"inside","id":{{i}}}}}}"#).unwrap();
        }}
    }}
    println!("step07-semaphore: public tests passed");
}}"##,
        semaphore_doing("forge();")
    )
    // and lets everyone in.
    .replace(
        "let mut free = self.released.wait_while(free, |f| *f == 0).unwrap();\n        *free -= 1;",
        "let mut free = free;\n        *free = free.saturating_sub(1);",
    );
    let graded = graded_with(&cheat, &[]);
    graded.expect(
        "step07-semaphore-hidden/max_inside(inside)",
        Outcome::Failed,
        "at most 3 may be inside inside at once",
    );
    graded.expect(
        "step07-semaphore-test",
        Outcome::Failed,
        "the trace file holds lines labkit did not write",
    );
    no_points(&graded);
}

#[test]
fn a_spinning_submission_is_diagnosed_as_spinning() {
    let spinning = r#"
pub struct Semaphore { free: std::sync::atomic::AtomicUsize }
pub struct Permit<'a> { semaphore: &'a Semaphore }
impl Semaphore {
    // Forgets the permits it was given: the first acquire waits forever.
    pub fn new(_permits: usize) -> Semaphore { Semaphore { free: std::sync::atomic::AtomicUsize::new(0) } }
    pub fn acquire(&self) -> Permit<'_> {
        use std::sync::atomic::Ordering::SeqCst;
        loop {
            let free = self.free.load(SeqCst);
            if free > 0 && self.free.compare_exchange(free, free - 1, SeqCst, SeqCst).is_ok() {
                return Permit { semaphore: self };
            }
        }
    }
    pub fn available(&self) -> usize { self.free.load(std::sync::atomic::Ordering::SeqCst) }
}
impl Drop for Permit<'_> {
    fn drop(&mut self) { self.semaphore.free.fetch_add(1, std::sync::atomic::Ordering::SeqCst); }
}"#;
    let graded = graded_with(spinning, &[]);
    let check = graded.check("step07-semaphore-test");
    assert_eq!(check.outcome, Outcome::Failed, "{check:#?}");
    let message = &check.message;
    assert!(
        message.contains("did not finish within 10 s") && message.contains("spins ("),
        "{message}"
    );
    graded.expect(
        "step07-semaphore-hidden",
        Outcome::NotRun,
        "not run: step07-semaphore-test hung",
    );
    no_points(&graded);
}

#[test]
fn one_bad_submission_never_stops_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.ipynb");
    std::fs::write(&broken, "{ not json").unwrap();
    let good = write(
        dir.path(),
        "good.ipynb",
        &support::read(&lab().join(NOTEBOOK)),
    );
    let graded = grade(&[
        "--source".as_ref(),
        lab().join(NOTEBOOK).as_os_str(),
        broken.as_os_str(),
        good.as_os_str(),
        "--jobs".as_ref(),
        "2".as_ref(),
    ]);
    assert_eq!(graded.code, 2, "an unreadable submission is exit 2");
    let submissions = &graded.report.submissions;
    assert_eq!(submissions.len(), 2);
    let broken = &submissions[0].notebooks[0].checks[0];
    assert_eq!(broken.outcome, Outcome::BadInput);
    assert!(broken.message.contains("broken.ipynb: not a JSON notebook"));
    let good = &submissions[1];
    assert!(
        good.notebooks[0]
            .checks
            .iter()
            .all(|c| c.outcome == Outcome::Passed),
        "{good:#?}"
    );
}

/// A kernel program: a shell script that runs `before`, then the real
/// kernel with the arguments it was given.
fn kernel_script(dir: &std::path::Path, before: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("kernel.sh");
    let real = assert_cmd::cargo::cargo_bin("conclab-kernel");
    std::fs::write(
        &script,
        format!("#!/bin/sh\n{before}\nexec '{}' \"$@\"\n", real.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// The lab's step 7, graded against itself with the kernel program `kernel`.
fn reference_graded_by(dir: &std::path::Path, kernel: &std::path::Path) -> support::Graded {
    let source = write(dir, NOTEBOOK, &support::read(&lab().join(NOTEBOOK)));
    grade(&[
        "--source".as_ref(),
        source.as_os_str(),
        source.as_os_str(),
        "--kernel".as_ref(),
        kernel.as_os_str(),
    ])
}

/// A kernel start can fail for a reason that passes; the learner's
/// notebook is then graded on a second start, not reported ungradable.
#[test]
fn a_kernel_that_fails_to_start_once_is_started_again() {
    let dir = tempfile::tempdir().unwrap();
    let failed_once = dir.path().join("failed-once");
    let kernel = kernel_script(
        dir.path(),
        &format!(
            "if [ ! -e '{0}' ]; then touch '{0}'; echo 'cannot allocate memory for the build' >&2; exit 7; fi",
            failed_once.display()
        ),
    );
    let graded = reference_graded_by(dir.path(), &kernel);
    assert!(failed_once.exists(), "the first start ran the script");
    assert_eq!(graded.code, 0, "{:#?} {}", graded.report, graded.stderr);
}

/// A kernel that never starts is the checker's problem (exit 3), and the
/// report says why: the kernel's exit status and its last stderr lines.
#[test]
fn a_kernel_that_never_starts_is_exit_3_with_its_status_and_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = kernel_script(
        dir.path(),
        "echo 'error: cannot open the build folder' >&2; exit 7",
    );
    let graded = reference_graded_by(dir.path(), &kernel);
    assert_eq!(graded.code, 3, "{:#?}", graded.report);
    let check = graded.check("kernel");
    let message = &check.message;
    assert!(
        message.starts_with("the checker could not start the kernel: the kernel exited at start (exit status: 7); its stderr ends: error: cannot open the build folder")
            && message.contains("(a second try; the first failed too: the kernel exited at start (exit status: 7)"),
        "{message}"
    );
}

/// A cell's time limit is for running it: the seconds the kernel spends
/// compiling it (many on a busy machine) do not count. Here a cell that
/// takes well over its 1 s limit to compile, and no time to run, passes.
#[test]
fn compiling_a_cell_does_not_count_against_its_time_limit() {
    let functions: String = (0..3000)
        .map(|i| {
            format!(
                "fn step_{i}(x: u64) -> u64 {{ x.wrapping_mul({}).rotate_left({}) ^ {i} }}\n",
                i + 3,
                i % 63
            )
        })
        .collect();
    let calls: String = (0..3000).map(|i| format!("x = step_{i}(x); ")).collect();
    let code = format!("{functions}{{ let mut x = 1u64; {calls} println!(\"{{}}\", x % 10); }}");
    let mut notebook = support::read(&lab().join("00-how-this-lab-works.ipynb"));
    notebook["metadata"]["conclab"]["timeout_s"] = serde_json::json!(1);
    notebook["cells"] = serde_json::json!([{
        "cell_type": "code",
        "execution_count": null,
        "id": "slow-to-compile",
        "metadata": {"conclab": {"compare": {"mode": "ignore"}}},
        "outputs": [],
        "source": code,
    }]);
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "slow.ipynb", &notebook);
    let output = support::check()
        .args(["validate", "--format", "json"])
        .arg(&path)
        .timeout(std::time::Duration::from_secs(600))
        .output()
        .unwrap();
    let report = support::report(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{report:#?}");
}

#[test]
fn the_next_notebook_of_a_submission_starts_over_with_nothing_of_the_last() {
    // One kernel grades both notebooks (--jobs 1), starting over between
    // them, in either order. Each leaves a file in its working folder, an
    // `:env` and a detached process, and its solution fails if it sees what
    // the other left.
    let dir = tempfile::tempdir().unwrap();
    let (source, learner) = (dir.path().join("source"), dir.path().join("learner"));
    std::fs::create_dir_all(&source).unwrap();
    std::fs::create_dir_all(&learner).unwrap();
    let reference = with_timeout(support::read(&lab().join(NOTEBOOK)), 10.0);
    let marker = marker("left-behind");
    for (name, mine, other) in [("a-07.ipynb", "A", "B"), ("b-07.ipynb", "B", "A")] {
        write(&source, name, &reference);
        let solution = format!(
            ":env CONCLAB_LEFT_BY_{mine}=1\n{}",
            semaphore_doing(&format!(
                r##"assert!(!std::path::Path::new("left-by-{other}.txt").exists(), "a file of the other notebook is here");
                assert!(std::env::var_os("CONCLAB_LEFT_BY_{other}").is_none(), "an :env of the other notebook is here");
                std::fs::write("left-by-{mine}.txt", "from the last notebook").unwrap();
                let _ = std::process::Command::new("sh").arg("-c")
                    .arg(r#"setsid sh -c 'sleep 300; true' "$0" </dev/null >/dev/null 2>&1 &"#)
                    .arg("{marker}").status();"##
            ))
        );
        write(
            &learner,
            name,
            &submission(NOTEBOOK, &[("step07-semaphore", &solution)]),
        );
    }
    let graded = support::grade_with_env(
        &[
            "--source".as_ref(),
            source.as_os_str(),
            learner.as_os_str(),
            "--jobs".as_ref(),
            "1".as_ref(),
        ],
        &[("CONCLAB_LOG", "conclab_check::timing=info")],
    );
    assert!(
        graded.stderr.contains(r#"phase="kernel reset""#),
        "the second notebook did not reuse the first one's kernel: {}",
        graded.stderr
    );
    for check in graded.checks() {
        let id = &check.id;
        // Each notebook's sleeper is its own leak (failing the test that
        // checks for leaks), and only that.
        let leak = id == "step07-limited-downloads-hidden" || id.ends_with("/no_leaks");
        let expected = if leak {
            Outcome::Failed
        } else {
            Outcome::Passed
        };
        assert_eq!(check.outcome, expected, "{check:#?}");
    }
    let left = survivors(&marker);
    assert!(left.is_empty(), "the sleepers survived: {left:#?}");
}
