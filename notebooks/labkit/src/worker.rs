//! The worker program for the process-pool exercises, and how to find it.
//!
//! `labkit-worker` reads one JSON task per line on stdin and writes one JSON
//! result per line on stdout. A task names a function the worker knows
//! (functions are sent by name, never as closures, and data is serialised):
//!
//! ```text
//! {"id": 7, "task": "count_primes", "args": {"limit": 10000}}
//! {"id": 7, "ok": true, "result": 1229, "pid": 4242}
//! ```
//!
//! A line that is not a task gets `{"id": null, "ok": false, "error": ...}`
//! and the worker carries on. Each task runs inside a span (see
//! [`crate::span()`]), and the worker records its pid in the trace.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

/// The tasks a worker knows, with their arguments.
pub const TASKS: &[(&str, &str)] = &[
    (
        "count_primes",
        "{\"limit\": u64} -> number of primes below limit",
    ),
    ("hash", "{\"data\": string, \"rounds\": u32} -> u64"),
    ("sleep", "{\"ms\": u64} -> ms (simulated I/O)"),
    (
        "fetch",
        "{\"url\": string, \"ms\": u64} -> page (simulated download)",
    ),
    ("square", "{\"n\": i64} -> n * n"),
    ("echo", "{\"payload\": any} -> payload (to move large data)"),
    ("fail", "{\"message\": string} -> an error result"),
];

/// Serves tasks from `input` until it ends; results go to `output`.
pub fn serve(input: impl BufRead, mut output: impl Write) -> std::io::Result<()> {
    crate::trace::record(
        "labkit-worker",
        Some(u64::from(std::process::id())),
        crate::trace::What::WorkerStart,
    );
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let reply = answer(&line);
        // One write per result line, so a reader never sees half of one.
        let mut text = reply.to_string();
        text.push('\n');
        output.write_all(text.as_bytes())?;
        output.flush()?;
    }
    crate::trace::record(
        "labkit-worker",
        Some(u64::from(std::process::id())),
        crate::trace::What::WorkerExit,
    );
    Ok(())
}

/// The result line for one task line.
pub fn answer(line: &str) -> Value {
    let request: Value = match serde_json::from_str(line) {
        Ok(request) => request,
        Err(error) => return failure(Value::Null, format!("not a JSON task: {error}")),
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let Some(task) = request.get("task").and_then(Value::as_str) else {
        return failure(id, "a task needs a \"task\" name");
    };
    let args = request.get("args").cloned().unwrap_or_else(|| json!({}));
    let span_id = id.as_u64().unwrap_or(0);
    let result = crate::span::in_span(task, span_id, || run(task, &args));
    match result {
        Ok(result) => json!({ "id": id, "ok": true, "result": result, "pid": std::process::id() }),
        Err(error) => failure(id, error),
    }
}

fn failure(id: Value, error: impl Into<String>) -> Value {
    json!({ "id": id, "ok": false, "error": error.into(), "pid": std::process::id() })
}

fn run(task: &str, args: &Value) -> Result<Value, String> {
    let number = |name: &str| {
        args.get(name)
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("{task} needs a non-negative integer \"{name}\""))
    };
    let text = |name: &str| {
        args.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{task} needs a string \"{name}\""))
    };
    match task {
        "count_primes" => Ok(json!(crate::work::count_primes(number("limit")?))),
        "hash" => {
            let rounds =
                u32::try_from(number("rounds")?).map_err(|_| "rounds is too large".to_owned())?;
            Ok(json!(crate::work::hash_rounds(
                text("data")?.as_bytes(),
                rounds
            )))
        }
        "sleep" => {
            let ms = number("ms")?;
            crate::work::io(Duration::from_millis(ms));
            Ok(json!(ms))
        }
        "fetch" => Ok(json!(crate::work::fetch(
            text("url")?,
            Duration::from_millis(number("ms")?)
        ))),
        "square" => {
            let n = args
                .get("n")
                .and_then(Value::as_i64)
                .ok_or("square needs an integer \"n\"")?;
            n.checked_mul(n)
                .map(|v| json!(v))
                .ok_or_else(|| format!("{n} squared overflows"))
        }
        "echo" => Ok(args.get("payload").cloned().unwrap_or(Value::Null)),
        "fail" => Err(text("message").unwrap_or("asked to fail").to_owned()),
        other => {
            let known: Vec<&str> = TASKS.iter().map(|(name, _)| *name).collect();
            Err(format!(
                "no task named {other:?}; the worker knows {}",
                known.join(", ")
            ))
        }
    }
}

/// Where `labkit-worker` is: `$LABKIT_WORKER`, else the release build in
/// this crate's workspace, which the first call in a process brings up to
/// date (a no-op when it is; a one-time build otherwise).
pub fn program() -> std::io::Result<PathBuf> {
    crate::programs::locate("labkit-worker", "LABKIT_WORKER")
}

/// A `Command` that starts a worker, ready for `.stdin(piped)` and friends.
pub fn command() -> std::io::Result<Command> {
    Ok(Command::new(program()?))
}
