//! The trace, read back from real child processes.
//!
//! The trace is configured from the environment when a process first
//! records, so each scenario runs in a fresh process: this test binary runs
//! itself again with `LABKIT_SCENARIO` set, and only the named scenario acts.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use serde_json::Value;

const SCENARIO: &str = "LABKIT_SCENARIO";

/// Runs `scenario` (a test of this file) in a new process with a trace.
fn run_scenario(scenario: &str, trace: &Path, extra_env: &[(&str, &str)]) -> std::process::Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([scenario, "--exact", "--nocapture", "--test-threads=1"])
        .env(SCENARIO, scenario)
        .env(labkit::trace::TRACE_ENV, trace)
        .env(labkit::trace::NONCE_ENV, "nonce-123")
        .stdout(Stdio::piped());
    for (key, value) in extra_env {
        command.env(key, value);
    }
    command.spawn().unwrap()
}

fn events(trace: &Path) -> Vec<Value> {
    std::fs::read_to_string(trace)
        .unwrap()
        .lines()
        .map(|line| {
            // Every line is the type the checker reads back.
            if let Err(e) = serde_json::from_str::<labkit::trace::Event>(line) {
                panic!("trace line {line:?} is not a labkit::trace::Event: {e}");
            }
            serde_json::from_str(line).unwrap_or_else(|e| panic!("bad trace line {line:?}: {e}"))
        })
        .collect()
}

fn in_scenario(name: &str) -> bool {
    std::env::var(SCENARIO).as_deref() == Ok(name)
}

#[test]
fn scenario_threads_and_locks() {
    if !in_scenario("scenario_threads_and_locks") {
        return;
    }
    let accounts = Arc::new([
        labkit::sync::Mutex::named("account[0]", 100),
        labkit::sync::Mutex::named("account[1]", 100),
    ]);
    thread::scope(|s| {
        for worker in 0..4u64 {
            let accounts = Arc::clone(&accounts);
            thread::Builder::new()
                .name(format!("worker-{worker}"))
                .spawn_scoped(s, move || {
                    for i in 0..25 {
                        let _span = labkit::span("transfer", worker * 100 + i);
                        let mut from = accounts[0].lock().unwrap();
                        let mut to = accounts[1].lock().unwrap();
                        *from -= 1;
                        *to += 1;
                    }
                })
                .unwrap();
        }
    });
}

#[test]
fn a_multithreaded_trace_reads_back_whole() {
    if std::env::var(SCENARIO).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    let status = run_scenario("scenario_threads_and_locks", &trace, &[])
        .wait()
        .unwrap();
    assert!(status.success());
    let events = events(&trace);
    let count = |kind: &str| events.iter().filter(|e| e["kind"] == kind).count();
    assert_eq!(count("span_enter"), 100);
    assert_eq!(count("span_exit"), 100);
    assert_eq!(count("lock_acquired"), 200);
    assert_eq!(count("lock_released"), 200);
    // Exactly one edge, reported once: account[0] -> account[1].
    let edges: Vec<&Value> = events.iter().filter(|e| e["kind"] == "lock_edge").collect();
    assert_eq!(edges.len(), 1);
    assert_eq!(edges[0]["from"]["name"], "account[0]");
    assert_eq!(edges[0]["to"]["name"], "account[1]");
    // Every event is complete and sequence numbers are 0..n without gaps.
    let mut seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    seqs.sort();
    assert_eq!(seqs, (0..events.len() as u64).collect::<Vec<_>>());
    for event in &events {
        assert_eq!(event["v"], labkit::trace::FORMAT_VERSION);
        assert_eq!(event["nonce"], "nonce-123");
        for field in ["t_ns", "pid", "tid", "thread", "kind", "name"] {
            assert!(!event[field].is_null(), "{field} missing in {event}");
        }
    }
    let threads: std::collections::BTreeSet<&str> = events
        .iter()
        .filter(|e| e["kind"] == "span_enter")
        .map(|e| e["thread"].as_str().unwrap())
        .collect();
    assert_eq!(
        threads.into_iter().collect::<Vec<_>>(),
        ["worker-0", "worker-1", "worker-2", "worker-3"]
    );
    // A lock's holding intervals never overlap.
    let mut holder: Option<u64> = None;
    let mut ordered = events.clone();
    ordered.sort_by_key(|e| e["seq"].as_u64());
    for event in ordered.iter().filter(|e| e["name"] == "account[0]") {
        match event["kind"].as_str().unwrap() {
            "lock_acquired" => assert!(holder.replace(event["tid"].as_u64().unwrap()).is_none()),
            "lock_released" => assert!(holder.take().is_some()),
            _ => {}
        }
    }
}

#[test]
fn scenario_perturbed() {
    if !in_scenario("scenario_perturbed") {
        return;
    }
    let lock = Arc::new(labkit::sync::Mutex::named("shared", 0));
    thread::scope(|s| {
        for worker in 0..3 {
            let lock = Arc::clone(&lock);
            thread::Builder::new()
                .name(format!("w{worker}"))
                .spawn_scoped(s, move || {
                    for i in 0..20 {
                        let _span = labkit::span("step", i);
                        *lock.lock().unwrap() += 1;
                    }
                })
                .unwrap();
        }
    });
}

/// The perturbation choices each thread made, in order.
fn choices(trace: &Path) -> BTreeMap<String, Vec<String>> {
    let mut by_thread: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for event in events(trace).iter().filter(|e| e["kind"] == "perturb") {
        by_thread
            .entry(event["thread"].as_str().unwrap().to_owned())
            .or_default()
            .push((
                event["seq"].as_u64().unwrap(),
                format!("{}:{}", event["name"], event["choice"]),
            ));
    }
    by_thread
        .into_iter()
        .map(|(thread, mut choices)| {
            choices.sort();
            (thread, choices.into_iter().map(|(_, c)| c).collect())
        })
        .collect()
}

#[test]
fn a_perturbed_run_is_reproduced_from_its_seed() {
    if std::env::var(SCENARIO).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, seed: &str| {
        let trace = dir.path().join(name);
        assert!(
            run_scenario("scenario_perturbed", &trace, &[("CONCLAB_SEED", seed)])
                .wait()
                .unwrap()
                .success()
        );
        choices(&trace)
    };
    let first = run("a.jsonl", "42");
    let again = run("b.jsonl", "42");
    let other = run("c.jsonl", "7");
    assert_eq!(first.keys().collect::<Vec<_>>(), ["w0", "w1", "w2"]);
    assert!(
        first.values().all(|c| !c.is_empty()),
        "a seed perturbs every thread"
    );
    assert_eq!(first, again, "the same seed makes the same choices");
    assert_ne!(first, other, "another seed makes other choices");
}

#[test]
fn scenario_killed() {
    if !in_scenario("scenario_killed") {
        return;
    }
    for i in 0..500 {
        labkit::trace::mark("progress", serde_json::json!({ "i": i }));
    }
    println!("ready");
    loop {
        labkit::trace::mark("progress", serde_json::json!({ "more": true }));
        thread::sleep(Duration::from_micros(50));
    }
}

#[test]
fn a_killed_process_leaves_a_readable_trace() {
    if std::env::var(SCENARIO).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("killed.jsonl");
    let mut child = run_scenario("scenario_killed", &trace, &[]);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("ready") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the scenario ended early"
        );
    }
    thread::sleep(Duration::from_millis(50));
    child.kill().unwrap();
    child.wait().unwrap();
    let text = std::fs::read_to_string(&trace).unwrap();
    assert!(text.ends_with('\n'), "every line was written whole");
    let events = events(&trace);
    assert!(events.len() > 500);
    let marks: HashMap<u64, &Value> = events
        .iter()
        .map(|e| (e["seq"].as_u64().unwrap(), e))
        .collect();
    assert_eq!(marks.len(), events.len(), "no line appears twice");
}

#[test]
fn scenario_try_lock() {
    if !in_scenario("scenario_try_lock") {
        return;
    }
    let first = labkit::sync::Mutex::named("account[0]", 100);
    let second = labkit::sync::Mutex::named("account[1]", 100);
    let held = first.lock().unwrap();
    let tried = second.try_lock().unwrap();
    drop((tried, held));
    let held = second.lock().unwrap();
    let blocking = first.lock().unwrap();
    drop((blocking, held));
}

#[test]
fn a_try_lock_says_it_could_not_wait_and_makes_no_lock_order_edge() {
    if std::env::var(SCENARIO).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("try.jsonl");
    let status = run_scenario("scenario_try_lock", &trace, &[])
        .wait()
        .unwrap();
    assert!(status.success());
    let events = events(&trace);
    let acquired: Vec<(&str, bool)> = events
        .iter()
        .filter(|e| e["kind"] == "lock_acquired")
        .map(|e| {
            (
                e["name"].as_str().unwrap(),
                e["blocking"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        acquired,
        [
            ("account[0]", true),
            ("account[1]", false),
            ("account[1]", true),
            ("account[0]", true)
        ]
    );
    // Only the blocking take made an edge; the tried one is held all the same.
    let edges: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["kind"] == "lock_edge")
        .map(|e| {
            (
                e["from"]["name"].as_str().unwrap(),
                e["to"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(edges, [("account[1]", "account[0]")]);
    let tried = events
        .iter()
        .find(|e| e["kind"] == "lock_acquired" && e["blocking"] == false)
        .unwrap();
    assert_eq!(tried["held"][0]["name"], "account[0]");
}

#[test]
fn scenario_notify_unlocked() {
    if !in_scenario("scenario_notify_unlocked") {
        return;
    }
    let state = labkit::sync::Mutex::named("queue", 0u32);
    let changed = labkit::sync::Condvar::named("changed");
    let held = state.lock().unwrap();
    changed.notify_one();
    drop(held);
    let started = std::time::Instant::now();
    changed.notify_all();
    println!("unlocked notify took {} us", started.elapsed().as_micros());
}

#[test]
fn under_a_seed_a_notify_made_holding_no_lock_pauses_for_the_woken_thread() {
    if std::env::var(SCENARIO).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("notify.jsonl");
    let output = run_scenario("scenario_notify_unlocked", &trace, &[("CONCLAB_SEED", "3")])
        .wait_with_output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let took: u128 = stdout
        .lines()
        .find_map(|line| {
            line.split_once("unlocked notify took ")
                .map(|(_, rest)| rest)
        })
        .and_then(|rest| rest.strip_suffix(" us"))
        .and_then(|micros| micros.parse().ok())
        .unwrap_or_else(|| panic!("no timing in {stdout:?}"));
    assert!(took >= labkit::perturb::UNLOCKED_NOTIFY_PAUSE.as_micros());
    let events = events(&trace);
    let sites: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] == "perturb")
        .filter_map(|e| e["name"].as_str())
        .filter(|site| site.starts_with("notify"))
        .collect();
    // The notify under the lock makes at most a random choice ("notify");
    // the one after the unlock always pauses, once.
    assert_eq!(sites.last(), Some(&"notify_unlocked"), "{sites:?}");
    assert_eq!(
        sites.iter().filter(|s| **s == "notify_unlocked").count(),
        1,
        "{sites:?}"
    );
}
