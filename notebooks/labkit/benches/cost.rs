//! What labkit's instruments cost: a span and a traced lock, with the trace
//! off and on, next to `std::sync::Mutex`, all in one run.
//!
//! Run with `bench/labkit` (or `cargo bench -p labkit --bench cost`). The
//! trace is read from the environment once per process, so the "on" figures
//! come from this program run again with a trace file.

use std::hint::black_box;
use std::time::Instant;

const OPS: u32 = 200_000;
const ROUNDS: usize = 7;

/// Nanoseconds per operation: the best of several rounds.
fn per_op(mut op: impl FnMut()) -> f64 {
    (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..OPS {
                op();
            }
            start.elapsed().as_nanos() as f64 / f64::from(OPS)
        })
        .fold(f64::INFINITY, f64::min)
}

fn measure() -> Vec<(&'static str, f64)> {
    let std_mutex = std::sync::Mutex::new(0u64);
    let traced = labkit::sync::Mutex::named("bench", 0u64);
    vec![
        (
            "std::sync::Mutex lock+unlock",
            per_op(|| *black_box(&std_mutex).lock().unwrap() += 1),
        ),
        (
            "labkit Mutex lock+unlock",
            per_op(|| *black_box(&traced).lock().unwrap() += 1),
        ),
        (
            "labkit span enter+exit",
            per_op(|| drop(black_box(labkit::span("bench", 1)))),
        ),
    ]
}

fn main() {
    if std::env::var_os("LABKIT_BENCH_CHILD").is_some() {
        for (name, ns) in measure() {
            println!("{name}\t{ns}");
        }
        return;
    }
    let off = measure();
    let dir = std::env::temp_dir().join(format!("labkit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("trace.jsonl");
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .env("LABKIT_BENCH_CHILD", "1")
        .env(labkit::trace::TRACE_ENV, &trace)
        .output()
        .unwrap();
    let on: Vec<f64> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.rsplit('\t').next().unwrap().parse().unwrap())
        .collect();
    let events = std::fs::read_to_string(&trace)
        .map(|t| t.lines().count())
        .unwrap_or(0);
    std::fs::remove_dir_all(&dir).ok();
    let baseline = off[0].1;
    println!(
        "{:32}{:>14}{:>10}{:>14}{:>10}",
        "operation", "trace off ns", "x std", "trace on ns", "x std"
    );
    for ((name, off_ns), on_ns) in off.iter().zip(&on) {
        println!(
            "{name:32}{off_ns:>14.1}{:>10.2}{on_ns:>14.1}{:>10.2}",
            off_ns / baseline,
            on_ns / baseline
        );
    }
    println!(
        "({OPS} operations per round, best of {ROUNDS} rounds; {events} trace events written with the trace on)"
    );
}
