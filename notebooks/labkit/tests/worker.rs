//! labkit-worker as a real child process.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

fn worker() -> Command {
    Command::new(env!("CARGO_BIN_EXE_labkit-worker"))
}

/// Sends `lines` (then closes stdin) and returns the result lines.
fn exchange(lines: &[String]) -> Vec<Value> {
    let mut child = worker()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = lines.join("\n") + "\n";
    // Write from another thread: a large payload fills both pipes at once.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let results = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|line| serde_json::from_str(&line.unwrap()).unwrap())
        .collect();
    writer.join().unwrap();
    assert!(
        child.wait().unwrap().success(),
        "the worker exits when its input ends"
    );
    results
}

#[test]
fn named_tasks_run_and_answer_in_order() {
    let results = exchange(&[
        json!({"id": 1, "task": "count_primes", "args": {"limit": 100}}).to_string(),
        json!({"id": 2, "task": "square", "args": {"n": -12}}).to_string(),
        json!({"id": 3, "task": "sleep", "args": {"ms": 5}}).to_string(),
        json!({"id": 4, "task": "hash", "args": {"data": "abc", "rounds": 3}}).to_string(),
    ]);
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["result"], 25);
    assert_eq!(results[1]["result"], 144);
    assert_eq!(results[2]["result"], 5);
    assert_eq!(results[3]["result"], labkit::work::hash_rounds(b"abc", 3));
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result["id"], i as u64 + 1);
        assert_eq!(result["ok"], true);
        assert!(result["pid"].as_u64().unwrap() > 0);
    }
}

#[test]
fn bad_lines_get_error_results_and_the_worker_goes_on() {
    let results = exchange(&[
        "this is not json".to_owned(),
        json!({"id": 2, "args": {}}).to_string(),
        json!({"id": 3, "task": "no_such_task"}).to_string(),
        json!({"id": 4, "task": "count_primes", "args": {"limit": "many"}}).to_string(),
        json!({"id": 5, "task": "fail", "args": {"message": "as asked"}}).to_string(),
        json!({"id": 6, "task": "square", "args": {"n": 3}}).to_string(),
    ]);
    assert_eq!(results.len(), 6);
    assert_eq!(results[0]["id"], Value::Null);
    assert!(
        results[0]["error"]
            .as_str()
            .unwrap()
            .contains("not a JSON task")
    );
    assert!(results[1]["error"].as_str().unwrap().contains("\"task\""));
    assert!(
        results[2]["error"]
            .as_str()
            .unwrap()
            .contains("no task named \"no_such_task\"")
    );
    assert!(results[3]["error"].as_str().unwrap().contains("\"limit\""));
    assert_eq!(results[4]["error"], "as asked");
    assert!(results[..5].iter().all(|r| r["ok"] == false));
    assert_eq!(results[5]["result"], 9);
}

#[test]
fn a_payload_larger_than_a_pipe_buffer_round_trips() {
    let payload = "x".repeat(1 << 20);
    let results =
        exchange(&[json!({"id": 1, "task": "echo", "args": {"payload": payload}}).to_string()]);
    assert_eq!(results[0]["result"].as_str().unwrap().len(), 1 << 20);
}

#[test]
fn the_worker_records_its_pid_and_spans_in_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    let mut child = worker()
        .env(labkit::trace::TRACE_ENV, &trace)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    writeln!(
        child.stdin.take().unwrap(),
        "{}",
        json!({"id": 9, "task": "square", "args": {"n": 2}})
    )
    .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    let events: Vec<Value> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["worker_start", "span_enter", "span_exit", "worker_exit"]
    );
    assert!(events.iter().all(|e| e["pid"] == pid));
    assert_eq!(events[0]["id"], pid);
    assert_eq!(events[1]["name"], "square");
    assert_eq!(events[1]["id"], 9);
}
