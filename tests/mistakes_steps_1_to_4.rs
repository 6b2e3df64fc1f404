//! Wrong solutions to the exercises of steps 1 to 4, written as learners
//! write them, each graded by `conclab-check grade` through the kernel: the
//! check that fails it, and the words of its message. One grading run per
//! notebook; where a notebook has two exercises, a submission carries one
//! mistake in each (a mistake only touches its own exercise's checks).

mod support;

use conclab_check::report::Outcome;
use support::{Graded, Mistake, grade_mistakes, reference_with, replaced};

const STEP01: &str = "01-cpu-bound-pool.ipynb";
const STEP02: &str = "02-as-completed.ipynb";
const STEP03: &str = "03-threads-vs-processes.ipynb";
const STEP04: &str = "04-actors.ipynb";

/// Grades the mistakes and prints the report, for whoever reads a failure.
fn grade_all(notebook: &str, mistakes: &[Mistake]) -> Graded {
    let graded = grade_mistakes(notebook, mistakes);
    eprintln!("{}", graded.json());
    assert_eq!(graded.code, 1, "every submission fails a check");
    graded
}

/// Step 1, `step01-par-map`: a rayon pool of one thread; one chunk as big
/// as the input, so one task does all the work; results put back "in
/// order" by a map keyed by the limit, not the index; one span around the
/// whole map instead of one per task.
/// `step01-process-pool`: a pool that ignores its size; a "round robin"
/// that moves on once per map, so one worker does a whole map; results
/// concatenated worker by worker; workers started afresh in every map
/// (then closed and waited for, so nothing leaks, but `pids()` asked before
/// the first map names none of them); `pids()` that numbers the workers; a
/// shutdown that waits for each worker before closing its stdin; a thread
/// per task, each joined before the next one starts.
#[test]
fn step01_mistakes() {
    let spawn_then_join = r#"
pub fn count_primes_par(limits: &[u64]) -> Vec<u64> {
    let mut counts = Vec::new();
    for (i, &limit) in limits.iter().enumerate() {
        // A thread per task, so each count runs on its own thread.
        let worker = std::thread::spawn(move || labkit::in_span("primes", i as u64, || labkit::work::count_primes(limit)));
        counts.push(worker.join().unwrap());
    }
    counts
}"#;
    let pool_of_one = r#"
use rayon::prelude::*;

pub fn count_primes_par(limits: &[u64]) -> Vec<u64> {
    // A pool of my own, so this map does not compete with other cells' work.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    pool.install(|| {
        limits
            .par_iter()
            .enumerate()
            .map(|(i, &limit)| labkit::in_span("primes", i as u64, || labkit::work::count_primes(limit)))
            .collect()
    })
}"#;
    let one_big_chunk = r#"
use rayon::prelude::*;

pub fn count_primes_par(limits: &[u64]) -> Vec<u64> {
    // Big chunks: less scheduling overhead per task.
    let size = limits.len().max(1);
    limits
        .par_chunks(size)
        .enumerate()
        .flat_map_iter(|(c, chunk)| {
            chunk.iter().enumerate().map(move |(j, &limit)| {
                labkit::in_span("primes", (c * size + j) as u64, || labkit::work::count_primes(limit))
            })
        })
        .collect()
}"#;
    let sorted_by_limit = r#"
use rayon::prelude::*;

pub fn count_primes_par(limits: &[u64]) -> Vec<u64> {
    // Tasks finish in any order: a BTreeMap puts the results back in order.
    let counts: std::collections::BTreeMap<u64, u64> = limits
        .par_iter()
        .enumerate()
        .map(|(i, &limit)| (limit, labkit::in_span("primes", i as u64, || labkit::work::count_primes(limit))))
        .collect();
    counts.into_values().collect()
}"#;
    let one_span_for_all = r#"
use rayon::prelude::*;

pub fn count_primes_par(limits: &[u64]) -> Vec<u64> {
    labkit::in_span("primes", 0, || limits.par_iter().map(|&limit| labkit::work::count_primes(limit)).collect())
}"#;
    let pool = "step01-process-pool";
    let ignores_size = reference_with(
        STEP01,
        pool,
        "for _ in 0..size {",
        "let _ = size; // four workers, one per core of my laptop\n        for _ in 0..4 {",
    );
    let one_worker_per_map = r#"
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};

pub struct ProcessPool {
    workers: Vec<PoolWorker>,
    next: usize,
}

struct PoolWorker {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl ProcessPool {
    pub fn new(size: usize) -> std::io::Result<ProcessPool> {
        let mut workers = Vec::new();
        for _ in 0..size {
            let mut child = labkit::worker::command()?.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
            let input = child.stdin.take().expect("piped stdin");
            let output = BufReader::new(child.stdout.take().expect("piped stdout"));
            workers.push(PoolWorker { child, input, output });
        }
        Ok(ProcessPool { workers, next: 0 })
    }

    pub fn map(&mut self, tasks: &[serde_json::Value]) -> std::io::Result<Vec<serde_json::Value>> {
        // Round robin over the workers, one task in flight at a time.
        let n = self.workers.len();
        let worker = &mut self.workers[self.next % n];
        let mut results = Vec::new();
        for task in tasks {
            writeln!(worker.input, "{task}")?;
            let mut line = String::new();
            worker.output.read_line(&mut line)?;
            results.push(serde_json::from_str(&line).map_err(std::io::Error::other)?);
        }
        self.next += 1;
        Ok(results)
    }

    pub fn pids(&self) -> Vec<u32> {
        self.workers.iter().map(|w| w.child.id()).collect()
    }

    pub fn shutdown(self) -> std::io::Result<()> {
        for mut worker in self.workers {
            drop(worker.input);
            worker.child.wait()?;
        }
        Ok(())
    }
}"#;
    let results_by_worker = reference_with(
        STEP01,
        pool,
        "            for handle in handles {\n                for (i, result) in handle.join().expect(\"a pool thread panicked\")? {\n                    results[i] = result;\n                }\n            }",
        "            results.clear();\n            for handle in handles {\n                // each worker's results, in the order it ran them\n                for (_, result) in handle.join().expect(\"a pool thread panicked\")? {\n                    results.push(result);\n                }\n            }",
    );
    let started_in_map = r#"
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};

pub struct ProcessPool {
    size: usize,
    pids: Vec<u32>,
}

struct PoolWorker {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl ProcessPool {
    pub fn new(size: usize) -> std::io::Result<ProcessPool> {
        // The workers start when there is work, in map.
        Ok(ProcessPool { size, pids: Vec::new() })
    }

    pub fn map(&mut self, tasks: &[serde_json::Value]) -> std::io::Result<Vec<serde_json::Value>> {
        let mut workers = Vec::new();
        for _ in 0..self.size {
            let mut child = labkit::worker::command()?.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
            let input = child.stdin.take().expect("piped stdin");
            let output = BufReader::new(child.stdout.take().expect("piped stdout"));
            workers.push(PoolWorker { child, input, output });
        }
        self.pids = workers.iter().map(|w| w.child.id()).collect();
        let n = workers.len();
        let mut results = vec![serde_json::Value::Null; tasks.len()];
        std::thread::scope(|s| -> std::io::Result<()> {
            let handles: Vec<_> = workers
                .iter_mut()
                .enumerate()
                .map(|(w, worker)| {
                    s.spawn(move || -> std::io::Result<Vec<(usize, serde_json::Value)>> {
                        let mut done = Vec::new();
                        for (i, task) in tasks.iter().enumerate().skip(w).step_by(n) {
                            writeln!(worker.input, "{task}")?;
                            let mut line = String::new();
                            worker.output.read_line(&mut line)?;
                            done.push((i, serde_json::from_str(&line).map_err(std::io::Error::other)?));
                        }
                        Ok(done)
                    })
                })
                .collect();
            for handle in handles {
                for (i, result) in handle.join().expect("a pool thread panicked")? {
                    results[i] = result;
                }
            }
            Ok(())
        })?;
        // Done: close every worker and wait for it, so none is left running.
        for mut worker in workers {
            drop(worker.input);
            worker.child.wait()?;
        }
        Ok(results)
    }

    pub fn pids(&self) -> Vec<u32> {
        self.pids.clone()
    }

    pub fn shutdown(self) -> std::io::Result<()> {
        Ok(())
    }
}"#;
    let waits_before_closing = reference_with(
        STEP01,
        pool,
        "            drop(worker.input); // end of input: the worker exits\n            let status = worker.child.wait()?;",
        "            // wait() closes the child's stdin before waiting\n            let status = worker.child.wait()?;",
    );
    let pids_are_numbers = reference_with(
        STEP01,
        pool,
        "        self.workers.iter().map(|w| w.child.id()).collect()",
        "        (1..=self.workers.len() as u32).collect() // worker 1, 2, 3, ...",
    );
    let map = "step01-par-map";
    let graded = grade_all(
        STEP01,
        &[
            ("pids-are-numbers", vec![(pool, pids_are_numbers)]),
            (
                "pool-of-one-thread+pool-ignores-size",
                vec![(map, pool_of_one.to_owned()), (pool, ignores_size)],
            ),
            (
                "one-big-chunk+one-worker-per-map",
                vec![
                    (map, one_big_chunk.to_owned()),
                    (pool, one_worker_per_map.to_owned()),
                ],
            ),
            (
                "sorted-by-limit+results-by-worker",
                vec![(map, sorted_by_limit.to_owned()), (pool, results_by_worker)],
            ),
            (
                "one-span-for-all+workers-started-in-map",
                vec![
                    (map, one_span_for_all.to_owned()),
                    (pool, started_in_map.to_owned()),
                ],
            ),
            (
                "shutdown-waits-before-closing",
                vec![(pool, waits_before_closing)],
            ),
            ("spawn-then-join", vec![(map, spawn_then_join.to_owned())]),
        ],
    );

    // A thread per task, each joined before the next starts: threads, but
    // never two at once.
    let sub = "spawn-then-join";
    graded.expect_of(
        sub,
        "step01-par-map-hidden/parallel(primes)",
        Outcome::Failed,
        "the work in primes should run on at least 2 threads at the same time, but its 16 threads worked one after the other",
    );
    assert_eq!(graded.points_of(sub, "step01-par-map-hidden"), 0.0);

    // A pool of one thread: rayon, and in order, but on one thread.
    let sub = "pool-of-one-thread+pool-ignores-size";
    graded.expect_of(sub, "step01-par-map-test", Outcome::Passed, "passed");
    graded.expect_of(
        sub,
        "step01-par-map-hidden/parallel(primes)",
        Outcome::Failed,
        "the work in primes should be spread over at least 2 threads, but ran on 1",
    );
    graded.expect_of(
        sub,
        "step01-par-map-hidden",
        Outcome::Failed,
        "the test passed, but not every property held: parallel(primes)",
    );
    assert_eq!(graded.points_of(sub, "step01-par-map-hidden"), 0.0);
    // Four workers where 3 were asked for.
    graded.expect_of(
        sub,
        "step01-process-pool-hidden/processes",
        Outcome::Failed,
        "expected exactly 3 worker processes, saw 4 start",
    );
    graded.expect_of(
        sub,
        "step01-process-pool-hidden",
        Outcome::Failed,
        "exactly 3 worker processes did the work, each reused",
    );
    graded.expect_of(
        sub,
        "step01-process-pool-hidden",
        Outcome::Failed,
        "left: 4",
    );
    graded.expect_of(
        sub,
        "step01-process-pool-test/processes",
        Outcome::Failed,
        "expected exactly 2 worker processes, saw 4 start",
    );
    assert_eq!(graded.points_of(sub, "step01-process-pool"), 0.0);

    // One chunk: a single task runs every limit, on one thread.
    let sub = "one-big-chunk+one-worker-per-map";
    graded.expect_of(sub, "step01-par-map-test", Outcome::Passed, "passed");
    graded.expect_of(
        sub,
        "step01-par-map-hidden/parallel(primes)",
        Outcome::Failed,
        "the work in primes should be spread over at least 2 threads, but ran on 1",
    );
    graded.expect_of(
        sub,
        "step01-par-map-hidden/results_equal",
        Outcome::Passed,
        "",
    );
    // Three workers start, each is a process reused for many tasks, but
    // one of them does the whole map: only the hidden test counts them.
    graded.expect_of(sub, "step01-process-pool-test", Outcome::Passed, "passed");
    graded.expect_of(
        sub,
        "step01-process-pool-hidden/processes",
        Outcome::Passed,
        "",
    );
    graded.expect_of(
        sub,
        "step01-process-pool-hidden",
        Outcome::Failed,
        "exactly 3 worker processes did the work, each reused",
    );
    graded.expect_of(
        sub,
        "step01-process-pool-hidden",
        Outcome::Failed,
        "left: 1",
    );

    // Sorted by limit: the hidden limits go down, the counts come back up.
    let sub = "sorted-by-limit+results-by-worker";
    graded.expect_of(
        sub,
        "step01-par-map-hidden",
        Outcome::Failed,
        "the results must be those of the sequential loop, in input order",
    );
    graded.expect_of(
        sub,
        "step01-par-map-hidden",
        Outcome::Failed,
        "left: [950, 1117, ",
    );
    graded.expect_of(
        sub,
        "step01-par-map-hidden/input_order(primes)",
        Outcome::NotRun,
        "the test failed first: assertion `left == right` failed: the results must be those of the sequential loop",
    );
    graded.expect_of(
        sub,
        "step01-par-map-hidden/parallel(primes)",
        Outcome::Passed,
        "",
    );
    graded.expect_of(
        sub,
        "step01-par-map-test",
        Outcome::Failed,
        "left: [4, 25, 168, 669]",
    );
    // Worker 0's results (tasks 0, 3, 6, 9), then worker 1's, then 2's.
    graded.expect_of(
        sub,
        "step01-process-pool-hidden",
        Outcome::Failed,
        "results equal the sequential ones, in input order",
    );
    graded.expect_of(
        sub,
        "step01-process-pool-hidden",
        Outcome::Failed,
        "left: [669, 842, 1007, 1177, 725, ",
    );
    graded.expect_of(
        sub,
        "step01-process-pool-hidden/input_order",
        Outcome::NotRun,
        "the test failed first: assertion `left == right` failed: results equal the sequential ones, in input order",
    );
    graded.expect_of(
        sub,
        "step01-process-pool-test",
        Outcome::Failed,
        "results come back in input order",
    );

    // One span around the whole map: the checker sees one task.
    let sub = "one-span-for-all+workers-started-in-map";
    graded.expect_of(
        sub,
        "step01-par-map-hidden",
        Outcome::Failed,
        "every task must run once, inside labkit::in_span(",
    );
    graded.expect_of(sub, "step01-par-map-hidden", Outcome::Failed, "left: 1");
    graded.expect_of(
        sub,
        "step01-par-map-hidden/parallel(primes)",
        Outcome::Failed,
        "but ran on 1",
    );
    // Workers started in map: the results and the leaks are right, but
    // pids(), asked before the first map, names no worker that did it.
    graded.expect_of(sub, "step01-process-pool-test", Outcome::Passed, "passed");
    graded.expect_of(
        sub,
        "step01-process-pool-hidden",
        Outcome::Failed,
        "pids() returns the process ids of the workers, the pids their replies carry",
    );
    graded.expect_of(
        sub,
        "step01-process-pool-hidden",
        Outcome::Failed,
        "left: []",
    );
    assert_eq!(graded.points_of(sub, "step01-process-pool-hidden"), 0.0);

    // pids() numbers the workers instead of naming their processes.
    let sub = "pids-are-numbers";
    graded.expect_of(sub, "step01-process-pool-test", Outcome::Passed, "passed");
    graded.expect_of(
        sub,
        "step01-process-pool-hidden",
        Outcome::Failed,
        "pids() returns the process ids of the workers, the pids their replies carry",
    );
    graded.expect_of(
        sub,
        "step01-process-pool-hidden",
        Outcome::Failed,
        "left: [1, 2, 3]",
    );

    // wait() with the worker's stdin still open: the public test hangs,
    // diagnosed as waiting for a child that waits for its input.
    let sub = "shutdown-waits-before-closing";
    graded.expect_of(sub, "step01-par-map-hidden", Outcome::Passed, "passed");
    graded.expect_of(
        sub,
        "step01-process-pool-test",
        Outcome::Failed,
        "waits in wait() for labkit-worker",
    );
    graded.expect_of(
        sub,
        "step01-process-pool-test",
        Outcome::Failed,
        "close the child's stdin (drop the ChildStdin) before wait()",
    );
    graded.expect_of(
        sub,
        "step01-process-pool-hidden",
        Outcome::NotRun,
        "not run: step01-process-pool-test hung",
    );
}

/// Step 2, `step02-as-completed`: a thread per task (more than W at once);
/// a panic payload read only as a `String`, so a `panic!("literal")` loses
/// its message; one worker short (`1..workers`); scoped workers sending
/// into a channel bounded at W, so the function never returns once more
/// than W results wait; a reorder buffer that hands results back in
/// submission order.
#[test]
fn step02_mistakes() {
    let task = "step02-as-completed";
    let thread_per_task = r#"
pub fn as_completed<T: Send + 'static>(
    tasks: Vec<Box<dyn FnOnce() -> T + Send>>,
    workers: usize,
) -> crossbeam::channel::Receiver<(usize, Result<T, String>)> {
    let _ = workers; // threads are cheap: one per task, all at once
    let (result_tx, result_rx) = crossbeam::channel::unbounded();
    for (index, task) in tasks.into_iter().enumerate() {
        let result_tx = result_tx.clone();
        std::thread::spawn(move || {
            let outcome = labkit::in_span("task", index as u64, || {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(task))
            })
            .map_err(|panic| {
                panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "the task panicked".to_string())
            });
            let _ = result_tx.send((index, outcome));
        });
    }
    result_rx
}"#;
    let message_lost = reference_with(
        STEP02,
        task,
        "                    panic\n                        .downcast_ref::<&str>()\n                        .map(|s| s.to_string())\n                        .or_else(|| panic.downcast_ref::<String>().cloned())\n",
        "                    panic\n                        .downcast_ref::<String>()\n                        .cloned()\n",
    );
    let one_worker_short = reference_with(
        STEP02,
        task,
        "for _ in 0..workers.max(1) {",
        "for _ in 1..workers {",
    );
    let scoped_bounded = r#"
pub fn as_completed<T: Send + 'static>(
    tasks: Vec<Box<dyn FnOnce() -> T + Send>>,
    workers: usize,
) -> crossbeam::channel::Receiver<(usize, Result<T, String>)> {
    let workers = workers.max(1);
    // Bounded: the workers cannot run ahead of whoever reads the results.
    let (result_tx, result_rx) = crossbeam::channel::bounded(workers);
    let jobs = std::sync::Mutex::new(tasks.into_iter().enumerate());
    // Scoped threads are all joined before this returns: none is left behind.
    std::thread::scope(|s| {
        for _ in 0..workers {
            let result_tx = result_tx.clone();
            let jobs = &jobs;
            s.spawn(move || loop {
                let next = jobs.lock().unwrap().next();
                let Some((index, task)) = next else { break };
                let outcome = labkit::in_span("task", index as u64, || {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(task))
                })
                .map_err(|panic| {
                    panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "the task panicked".to_string())
                });
                result_tx.send((index, outcome)).unwrap();
            });
        }
    });
    result_rx
}"#;
    let submission_order = reference_with(
        STEP02,
        task,
        "    result_rx\n",
        "    drop(result_tx);\n    // Hand the results back in order: an early one waits for its turn.\n    let (ordered_tx, ordered_rx) = crossbeam::channel::unbounded();\n    std::thread::spawn(move || {\n        let mut early = std::collections::BTreeMap::new();\n        let mut next = 0;\n        for (index, outcome) in result_rx {\n            early.insert(index, outcome);\n            while let Some(outcome) = early.remove(&next) {\n                let _ = ordered_tx.send((next, outcome));\n                next += 1;\n            }\n        }\n    });\n    ordered_rx\n",
    );
    let graded = grade_all(
        STEP02,
        &[
            ("thread-per-task", vec![(task, thread_per_task.to_owned())]),
            ("panic-message-lost", vec![(task, message_lost)]),
            ("one-worker-short", vec![(task, one_worker_short)]),
            (
                "scoped-bounded-channel",
                vec![(task, scoped_bounded.to_owned())],
            ),
            ("in-submission-order", vec![(task, submission_order)]),
        ],
    );

    // Seven tasks, seven threads: the limit of 3 is not held.
    let sub = "thread-per-task";
    graded.expect_of(sub, "step02-as-completed-test", Outcome::Passed, "passed");
    graded.expect_of(
        sub,
        "step02-as-completed-hidden",
        Outcome::Failed,
        "at most 3 tasks may run at once",
    );
    graded.expect_of(
        sub,
        "step02-as-completed-hidden/max_inside(task)",
        Outcome::Failed,
        "at most 3 may be inside task at once, but ",
    );
    graded.expect_of(
        sub,
        "step02-as-completed-hidden/exactly_once(task)",
        Outcome::Passed,
        "",
    );

    // `panic!("task 3 failed on purpose")` carries a &str, not a String.
    let sub = "panic-message-lost";
    graded.expect_of(sub, "step02-as-completed-test", Outcome::Passed, "passed");
    graded.expect_of(
        sub,
        "step02-as-completed-hidden",
        Outcome::Failed,
        "the error carries the panic's message",
    );
    assert_eq!(graded.points_of(sub, "step02-as-completed-hidden"), 0.0);

    // Two workers for three: the public test's three tasks still come
    // back in completion order; the hidden test counts the workers.
    let sub = "one-worker-short";
    graded.expect_of(sub, "step02-as-completed-test", Outcome::Passed, "passed");
    graded.expect_of(
        sub,
        "step02-as-completed-hidden",
        Outcome::Failed,
        "assertion `left == right` failed: the 3 workers are used",
    );
    graded.expect_of(
        sub,
        "step02-as-completed-hidden",
        Outcome::Failed,
        "left: 2",
    );
    graded.expect_of(
        sub,
        "step02-as-completed-hidden/max_inside(task)",
        Outcome::Passed,
        "",
    );

    // Three results fit the channel, so the public test passes; the
    // hidden test's seven block the workers, and the scope waits for them.
    let sub = "scoped-bounded-channel";
    graded.expect_of(sub, "step02-as-completed-test", Outcome::Passed, "passed");
    graded.expect_of(
        sub,
        "step02-as-completed-hidden",
        Outcome::Failed,
        "step02-as-completed-hidden hung: all threads are blocked",
    );
    graded.expect_of(
        sub,
        "step02-as-completed-hidden/streaming(task)",
        Outcome::NotRun,
        "not run: step02-as-completed-hidden hung",
    );

    // In submission order: task 0, the slowest, holds back every other.
    let sub = "in-submission-order";
    graded.expect_of(
        sub,
        "step02-as-completed-hidden/completion_order(task)",
        Outcome::Failed,
        "results must be handed back as tasks complete: task 0 (finished at ",
    );
    graded.expect_of(
        sub,
        "step02-as-completed-hidden/streaming(task)",
        Outcome::Failed,
        "the first result must arrive before the slowest task ends",
    );
    graded.expect_of(
        sub,
        "step02-as-completed-hidden",
        Outcome::Failed,
        "the first result must arrive before the slowest task ends",
    );
    graded.expect_of(
        sub,
        "step02-as-completed-test",
        Outcome::Failed,
        "results come in completion order",
    );
}

/// Step 3, `step03-io-threads`: each thread joined as soon as it is
/// spawned (one fetch at a time); `chunks(threads)` taken for "split in
/// `threads` parts", so 12 URLs make 3 threads; pages concatenated thread
/// by thread; a lock held around each fetch as the "limit".
/// `step03-cpu-compare`: a process per limit; workers whose stdin is
/// closed but that are never waited for; counts concatenated worker by
/// worker, and threads' counts likewise; `wait()` before the worker's
/// stdin is closed; "threads" that are only the calling thread.
#[test]
fn step03_mistakes() {
    let io = "step03-io-threads";
    let cpu = "step03-cpu-compare";
    let spawn_join_each = r#"
pub fn fetch_all(urls: &[String], threads: usize) -> Vec<String> {
    let _ = threads; // one thread at a time, so never more than `threads`
    let mut pages = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let url = url.clone();
        let fetcher = std::thread::spawn(move || {
            labkit::in_span("fetch", i as u64, || labkit::work::fetch(&url, std::time::Duration::from_millis(40)))
        });
        pages.push(fetcher.join().unwrap());
    }
    pages
}"#;
    let chunks_of_threads = r#"
pub fn fetch_all(urls: &[String], threads: usize) -> Vec<String> {
    let per_chunk = threads.max(1);
    // One thread per chunk of `threads` URLs.
    std::thread::scope(|s| {
        let handles: Vec<_> = urls
            .chunks(per_chunk)
            .enumerate()
            .map(|(c, chunk)| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .enumerate()
                        .map(|(j, url)| {
                            labkit::in_span("fetch", (c * per_chunk + j) as u64, || {
                                labkit::work::fetch(url, std::time::Duration::from_millis(40))
                            })
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}"#;
    let pages_by_thread = r#"
pub fn fetch_all(urls: &[String], threads: usize) -> Vec<String> {
    let threads = threads.max(1);
    // Thread t fetches URLs t, t + threads, t + 2 * threads, ...
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    urls.iter()
                        .enumerate()
                        .skip(t)
                        .step_by(threads)
                        .map(|(i, url)| {
                            labkit::in_span("fetch", i as u64, || {
                                labkit::work::fetch(url, std::time::Duration::from_millis(40))
                            })
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}"#;
    let mutex_as_limit = r#"
pub fn fetch_all(urls: &[String], threads: usize) -> Vec<String> {
    let _ = threads;
    // A lock around each download keeps the threads from flooding the server.
    let limiter = std::sync::Mutex::new(());
    std::thread::scope(|s| {
        let handles: Vec<_> = urls
            .iter()
            .enumerate()
            .map(|(i, url)| {
                let limiter = &limiter;
                s.spawn(move || {
                    let _turn = limiter.lock().unwrap();
                    labkit::in_span("fetch", i as u64, || labkit::work::fetch(url, std::time::Duration::from_millis(40)))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}"#;
    // The reference's thread variant, then a process variant of one's own.
    let reference = reference_with(
        STEP03,
        cpu,
        "pub fn primes_on_processes",
        "pub fn primes_on_processes",
    );
    let threads_variant = &reference[..reference.find("pub fn primes_on_processes").unwrap()];
    let process_per_limit = format!(
        "{threads_variant}{}",
        r#"pub fn primes_on_processes(limits: &[u64], workers: usize) -> std::io::Result<(Vec<u64>, Vec<u32>)> {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    let _ = workers; // processes are cheap enough: one per limit, all at once
    let mut children = Vec::new();
    for (i, &limit) in limits.iter().enumerate() {
        let mut child = labkit::worker::command()?.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        let mut input = child.stdin.take().unwrap();
        writeln!(input, "{}", serde_json::json!({"id": i, "task": "count_primes", "args": {"limit": limit}}))?;
        children.push(child); // input dropped here: the worker exits after this task
    }
    let mut counts = Vec::new();
    let mut pids = Vec::new();
    for mut child in children {
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line)?;
        let reply: serde_json::Value = serde_json::from_str(&line).map_err(std::io::Error::other)?;
        counts.push(reply["result"].as_u64().unwrap_or_default());
        pids.push(child.id());
        child.wait()?;
    }
    Ok((counts, pids))
}"#
    );
    let never_waited = reference_with(
        STEP03,
        cpu,
        "                drop(input);\n                child.wait()?;",
        "                drop(input); // end of input: the worker exits by itself",
    );
    let counts_by_worker = reference_with(
        STEP03,
        cpu,
        "        for handle in handles {\n            for (i, count) in handle.join().unwrap()? {\n                counts[i] = count;\n            }\n        }",
        "        counts.clear();\n        for handle in handles {\n            // each worker's counts, in the order it computed them\n            for (_, count) in handle.join().unwrap()? {\n                counts.push(count);\n            }\n        }",
    );
    let threads_round_robin = reference_with(
        STEP03,
        cpu,
        "    let chunk = limits.len().div_ceil(threads.max(1)).max(1);\n    std::thread::scope(|s| {\n        let parts: Vec<_> = limits\n            .chunks(chunk)\n            .map(|part| s.spawn(move || part.iter().map(|&l| labkit::work::count_primes(l)).collect::<Vec<u64>>()))\n            .collect();",
        "    let threads = threads.max(1);\n    // Thread t counts limits t, t + threads, ...: big and small limits spread evenly.\n    std::thread::scope(|s| {\n        let parts: Vec<_> = (0..threads)\n            .map(|t| s.spawn(move || limits.iter().skip(t).step_by(threads).map(|&l| labkit::work::count_primes(l)).collect::<Vec<u64>>()))\n            .collect();",
    );
    let waits_before_closing = reference_with(
        STEP03,
        cpu,
        "                drop(input);\n                child.wait()?;",
        "                child.wait()?; // wait() closes the child's stdin first",
    );
    let on_the_caller = reference_with(
        STEP03,
        cpu,
        "    let chunk = limits.len().div_ceil(threads.max(1)).max(1);\n    std::thread::scope(|s| {\n        let parts: Vec<_> = limits\n            .chunks(chunk)\n            .map(|part| s.spawn(move || part.iter().map(|&l| labkit::work::count_primes(l)).collect::<Vec<u64>>()))\n            .collect();\n        parts.into_iter().flat_map(|p| p.join().unwrap()).collect()\n    })",
        "    let _ = threads; // counting is fast enough without threads\n    limits.iter().map(|&l| labkit::work::count_primes(l)).collect()",
    );
    let graded = grade_all(
        STEP03,
        &[
            ("threads-on-the-caller", vec![(cpu, on_the_caller)]),
            (
                "spawn-join-each+process-per-limit",
                vec![(io, spawn_join_each.to_owned()), (cpu, process_per_limit)],
            ),
            (
                "chunks-of-threads+never-waited",
                vec![(io, chunks_of_threads.to_owned()), (cpu, never_waited)],
            ),
            (
                "pages-by-thread+threads-round-robin",
                vec![(io, pages_by_thread.to_owned()), (cpu, threads_round_robin)],
            ),
            (
                "mutex-as-limit+counts-by-worker",
                vec![(io, mutex_as_limit.to_owned()), (cpu, counts_by_worker)],
            ),
            ("waits-before-closing", vec![(cpu, waits_before_closing)]),
        ],
    );

    // Spawned and joined at once: one fetch at a time.
    let sub = "spawn-join-each+process-per-limit";
    graded.expect_of(sub, "step03-io-threads-test", Outcome::Passed, "passed");
    graded.expect_of(
        sub,
        "step03-io-threads-hidden/min_inside(fetch)",
        Outcome::Failed,
        "fetch should reach 4 at once, but at most 1 were inside at once",
    );
    graded.expect_of(
        sub,
        "step03-io-threads-hidden",
        Outcome::Failed,
        "the fetches overlap up to the limit",
    );
    graded.expect_of(sub, "step03-io-threads-hidden", Outcome::Failed, "left: 1");
    graded.expect_of(
        sub,
        "step03-io-threads-hidden/max_inside(fetch)",
        Outcome::Passed,
        "",
    );
    // Nine processes for nine limits.
    graded.expect_of(
        sub,
        "step03-cpu-compare-hidden/processes",
        Outcome::Failed,
        "expected exactly 3 worker processes, saw 9 start",
    );
    graded.expect_of(
        sub,
        "step03-cpu-compare-hidden",
        Outcome::Failed,
        "assertion `left == right` failed: 3 worker processes",
    );
    graded.expect_of(sub, "step03-cpu-compare-hidden", Outcome::Failed, "left: 9");

    // 12 URLs in chunks of 4: 3 threads, never 4 fetches at once (and
    // with 100 URLs it would be 25 threads).
    let sub = "chunks-of-threads+never-waited";
    graded.expect_of(sub, "step03-io-threads-test", Outcome::Passed, "passed");
    graded.expect_of(
        sub,
        "step03-io-threads-hidden/min_inside(fetch)",
        Outcome::Failed,
        "fetch should reach 4 at once, but at most 3 were inside at once",
    );
    graded.expect_of(sub, "step03-io-threads-hidden", Outcome::Failed, "left: 3");
    // Closed but never waited for: the workers stay zombies.
    graded.expect_of(sub, "step03-cpu-compare-test", Outcome::Passed, "passed");
    graded.expect_of(
        sub,
        "step03-cpu-compare-hidden",
        Outcome::Failed,
        "every worker must be waited for: [",
    );
    graded.expect_of(
        sub,
        "step03-cpu-compare-hidden/no_leaks",
        Outcome::Failed,
        "(exited but never waited for: a zombie)",
    );

    // Thread by thread: pages 0, 4, 8, 1, 5, ...; counts 0, 3, 6, 1, ...
    let sub = "pages-by-thread+threads-round-robin";
    graded.expect_of(
        sub,
        "step03-io-threads-test",
        Outcome::Failed,
        "pages come back in input order",
    );
    graded.expect_of(
        sub,
        "step03-io-threads-hidden",
        Outcome::Failed,
        "assertion `left == right` failed: pages in input order",
    );
    graded.expect_of(
        sub,
        "step03-io-threads-hidden/input_order",
        Outcome::NotRun,
        "the test failed first: assertion `left == right` failed: pages in input order",
    );
    graded.expect_of(
        sub,
        "step03-cpu-compare-hidden",
        Outcome::Failed,
        "threads: the same answers, in input order",
    );
    graded.expect_of(
        sub,
        "step03-cpu-compare-hidden",
        Outcome::Failed,
        "left: [430, 1438, 2360, 783, ",
    );
    graded.expect_of(
        sub,
        "step03-cpu-compare-test",
        Outcome::Failed,
        "left: [168, 430, 303, 550]",
    );

    // A lock as the limit: every fetch waits for the one before.
    let sub = "mutex-as-limit+counts-by-worker";
    graded.expect_of(sub, "step03-io-threads-test", Outcome::Passed, "passed");
    graded.expect_of(
        sub,
        "step03-io-threads-hidden/min_inside(fetch)",
        Outcome::Failed,
        "fetch should reach 4 at once, but at most 1 were inside at once",
    );
    graded.expect_of(
        sub,
        "step03-io-threads-hidden/max_inside(fetch)",
        Outcome::Passed,
        "",
    );
    graded.expect_of(
        sub,
        "step03-cpu-compare-hidden",
        Outcome::Failed,
        "processes: the same answers, in input order",
    );
    graded.expect_of(
        sub,
        "step03-cpu-compare-hidden",
        Outcome::Failed,
        "left: [430, 1438, 2360, 783, ",
    );

    // "On threads" that are only the caller: right answers, no threads.
    let sub = "threads-on-the-caller";
    graded.expect_of(sub, "step03-cpu-compare-test", Outcome::Passed, "passed");
    graded.expect_of(
        sub,
        "step03-cpu-compare-hidden",
        Outcome::Failed,
        "primes_on_threads must count on other threads, but the calling thread did ",
    );

    // wait() while this thread still holds the worker's stdin.
    let sub = "waits-before-closing";
    graded.expect_of(sub, "step03-io-threads-hidden", Outcome::Passed, "passed");
    graded.expect_of(
        sub,
        "step03-cpu-compare-test",
        Outcome::Failed,
        "waits in wait() for labkit-worker",
    );
    graded.expect_of(
        sub,
        "step03-cpu-compare-test",
        Outcome::Failed,
        "close the child's stdin (drop the ChildStdin) before wait()",
    );
    graded.expect_of(
        sub,
        "step03-cpu-compare-hidden",
        Outcome::NotRun,
        "not run: step03-cpu-compare-test hung",
    );
}

/// Step 4, `step04-account-actor`: a withdrawal of exactly the balance
/// refused (`<` for `<=`); an actor that `recv().unwrap()`s, so it panics
/// when the last handle goes instead of returning the balance; an actor
/// that keeps a clone of its own Sender, so shutdown never comes; a thread
/// per request sharing the balance behind a mutex; a handle that answers
/// `balance()` from its own cache; a check-then-act withdraw (the handle
/// asks the balance, then sends an unconditional withdraw), which takes
/// the balance below 0 when clients race; a deposit that replies with the
/// balance before the deposit; one pair of reply channels shared by every
/// handle.
#[test]
fn step04_mistakes() {
    let actor = "step04-account-actor";
    let refuses_exact = reference_with(
        STEP04,
        actor,
        "if amount <= balance {",
        "if amount < balance {",
    );
    let unwraps_recv = replaced(
        reference_with(
            STEP04,
            actor,
            "            for (n, request) in inbox.into_iter().enumerate() {\n                labkit::in_span(\"request\", n as u64, || match request {",
            "            let mut n = 0;\n            loop {\n                let request = inbox.recv().unwrap();\n                n += 1;\n                labkit::in_span(\"request\", n, || match request {",
        ),
        "                });\n            }\n            balance\n        })",
        "                });\n            }\n        })",
    );
    let keeps_a_sender = replaced(
        reference_with(
            STEP04,
            actor,
            "    let (requests, inbox) = crossbeam::channel::unbounded::<AccountRequest>();\n",
            "    let (requests, inbox) = crossbeam::channel::unbounded::<AccountRequest>();\n    let backlog = requests.clone(); // to log how many requests wait\n",
        ),
        "                labkit::in_span(\"request\", n as u64, || match request {",
        "                if backlog.len() > 100 {\n                    eprintln!(\"account: {} requests waiting\", backlog.len());\n                }\n                labkit::in_span(\"request\", n as u64, || match request {",
    );
    let thread_per_request = r#"
pub enum AccountRequest {
    Deposit(u64, crossbeam::channel::Sender<u64>),
    Withdraw(u64, crossbeam::channel::Sender<Result<u64, String>>),
    Balance(crossbeam::channel::Sender<u64>),
}

#[derive(Clone)]
pub struct Account {
    requests: crossbeam::channel::Sender<AccountRequest>,
}

pub fn spawn_account(initial: u64) -> (Account, std::thread::JoinHandle<u64>) {
    let (requests, inbox) = crossbeam::channel::unbounded::<AccountRequest>();
    let actor = std::thread::Builder::new()
        .name("account".into())
        .spawn(move || {
            // Each request on a thread of its own, so a slow one holds up no other.
            let balance = std::sync::Arc::new(std::sync::Mutex::new(initial));
            let mut helpers = Vec::new();
            for (n, request) in inbox.into_iter().enumerate() {
                let balance = balance.clone();
                helpers.push(std::thread::spawn(move || {
                    labkit::in_span("request", n as u64, || {
                        let mut balance = balance.lock().unwrap();
                        match request {
                            AccountRequest::Deposit(amount, reply) => {
                                *balance += amount;
                                let _ = reply.send(*balance);
                            }
                            AccountRequest::Withdraw(amount, reply) => {
                                let outcome = if amount <= *balance {
                                    *balance -= amount;
                                    Ok(*balance)
                                } else {
                                    Err(format!("insufficient funds: balance {balance}, asked {amount}"))
                                };
                                let _ = reply.send(outcome);
                            }
                            AccountRequest::Balance(reply) => {
                                let _ = reply.send(*balance);
                            }
                        }
                    })
                }));
            }
            for helper in helpers {
                helper.join().unwrap();
            }
            let balance = *balance.lock().unwrap();
            balance
        })
        .expect("cannot start the account thread");
    (Account { requests }, actor)
}

impl Account {
    pub fn deposit(&self, amount: u64) -> u64 {
        let (reply, answer) = crossbeam::channel::bounded(1);
        self.requests.send(AccountRequest::Deposit(amount, reply)).expect("the account is running");
        answer.recv().expect("the account replies")
    }

    pub fn withdraw(&self, amount: u64) -> Result<u64, String> {
        let (reply, answer) = crossbeam::channel::bounded(1);
        self.requests.send(AccountRequest::Withdraw(amount, reply)).expect("the account is running");
        answer.recv().expect("the account replies")
    }

    pub fn balance(&self) -> u64 {
        let (reply, answer) = crossbeam::channel::bounded(1);
        self.requests.send(AccountRequest::Balance(reply)).expect("the account is running");
        answer.recv().expect("the account replies")
    }
}"#;
    let cached_balance = r#"
pub enum AccountRequest {
    Deposit(u64, crossbeam::channel::Sender<u64>),
    Withdraw(u64, crossbeam::channel::Sender<Result<u64, String>>),
    Balance(crossbeam::channel::Sender<u64>),
}

#[derive(Clone)]
pub struct Account {
    requests: crossbeam::channel::Sender<AccountRequest>,
    // The last balance this handle saw: balance() needs no round trip.
    last_seen: std::cell::Cell<u64>,
}

pub fn spawn_account(initial: u64) -> (Account, std::thread::JoinHandle<u64>) {
    let (requests, inbox) = crossbeam::channel::unbounded::<AccountRequest>();
    let actor = std::thread::Builder::new()
        .name("account".into())
        .spawn(move || {
            let mut balance = initial;
            for (n, request) in inbox.into_iter().enumerate() {
                labkit::in_span("request", n as u64, || match request {
                    AccountRequest::Deposit(amount, reply) => {
                        balance += amount;
                        let _ = reply.send(balance);
                    }
                    AccountRequest::Withdraw(amount, reply) => {
                        let outcome = if amount <= balance {
                            balance -= amount;
                            Ok(balance)
                        } else {
                            Err(format!("insufficient funds: balance {balance}, asked {amount}"))
                        };
                        let _ = reply.send(outcome);
                    }
                    AccountRequest::Balance(reply) => {
                        let _ = reply.send(balance);
                    }
                });
            }
            balance
        })
        .expect("cannot start the account thread");
    (Account { requests, last_seen: std::cell::Cell::new(initial) }, actor)
}

impl Account {
    pub fn deposit(&self, amount: u64) -> u64 {
        let (reply, answer) = crossbeam::channel::bounded(1);
        self.requests.send(AccountRequest::Deposit(amount, reply)).expect("the account is running");
        let balance = answer.recv().expect("the account replies");
        self.last_seen.set(balance);
        balance
    }

    pub fn withdraw(&self, amount: u64) -> Result<u64, String> {
        let (reply, answer) = crossbeam::channel::bounded(1);
        self.requests.send(AccountRequest::Withdraw(amount, reply)).expect("the account is running");
        let outcome = answer.recv().expect("the account replies");
        if let Ok(balance) = outcome {
            self.last_seen.set(balance);
        }
        outcome
    }

    pub fn balance(&self) -> u64 {
        self.last_seen.get()
    }
}"#;
    // One pair of reply channels, made in spawn_account and shared by every
    // handle, instead of a channel per request.
    let mut shared_replies = replaced(
        reference_with(
            STEP04,
            actor,
            "    requests: crossbeam::channel::Sender<AccountRequest>,\n}",
            "    requests: crossbeam::channel::Sender<AccountRequest>,\n    amounts: (crossbeam::channel::Sender<u64>, crossbeam::channel::Receiver<u64>),\n    outcomes: (crossbeam::channel::Sender<Result<u64, String>>, crossbeam::channel::Receiver<Result<u64, String>>),\n}",
        ),
        "    (Account { requests }, actor)",
        "    let (amounts, outcomes) = (crossbeam::channel::unbounded(), crossbeam::channel::unbounded());\n    (Account { requests, amounts, outcomes }, actor)",
    );
    for (request, channel) in [
        ("Deposit(amount, ", "amounts"),
        ("Withdraw(amount, ", "outcomes"),
        ("Balance(", "amounts"),
    ] {
        shared_replies = replaced(
            shared_replies,
            &format!(
                "        let (reply, answer) = crossbeam::channel::bounded(1);\n        self.requests.send(AccountRequest::{request}reply)).expect(\"the account is running\");\n        answer.recv()"
            ),
            &format!(
                "        self.requests.send(AccountRequest::{request}self.{channel}.0.clone())).expect(\"the account is running\");\n        self.{channel}.1.recv()"
            ),
        );
    }
    let check_then_withdraw = replaced(
        reference_with(
            STEP04,
            actor,
            "                        let outcome = if amount <= balance {\n                            balance -= amount;\n                            Ok(balance)\n                        } else {\n                            Err(format!(\"insufficient funds: balance {balance}, asked {amount}\"))\n                        };\n                        let _ = reply.send(outcome);",
            "                        // The handle checked the funds already.\n                        balance -= amount;\n                        let _ = reply.send(Ok(balance));",
        ),
        "    pub fn withdraw(&self, amount: u64) -> Result<u64, String> {\n        // ### BEGIN SOLUTION\n",
        "    pub fn withdraw(&self, amount: u64) -> Result<u64, String> {\n        // ### BEGIN SOLUTION\n        // Refuse early, without bothering the actor.\n        let balance = self.balance();\n        if amount > balance {\n            return Err(format!(\"insufficient funds: balance {balance}, asked {amount}\"));\n        }\n",
    );
    let replies_old_balance = reference_with(
        STEP04,
        actor,
        "                        balance += amount;\n                        let _ = reply.send(balance);",
        "                        let _ = reply.send(balance); // reply first: the client waits less\n                        balance += amount;",
    );
    let graded = grade_all(
        STEP04,
        &[
            ("refuses-exact-balance", vec![(actor, refuses_exact)]),
            ("actor-unwraps-recv", vec![(actor, unwraps_recv)]),
            ("actor-keeps-a-sender", vec![(actor, keeps_a_sender)]),
            (
                "thread-per-request",
                vec![(actor, thread_per_request.to_owned())],
            ),
            ("cached-balance", vec![(actor, cached_balance.to_owned())]),
            ("check-then-withdraw", vec![(actor, check_then_withdraw)]),
            ("replies-old-balance", vec![(actor, replies_old_balance)]),
            (
                "shared-reply-channel",
                vec![(actor, shared_replies.to_owned())],
            ),
        ],
    );
    let public = "step04-account-actor-test";
    let hidden = "step04-account-actor-hidden";

    // `<` for `<=`: the whole balance cannot be withdrawn.
    let sub = "refuses-exact-balance";
    graded.expect_of(sub, public, Outcome::Passed, "passed");
    graded.expect_of(
        sub,
        hidden,
        Outcome::Failed,
        "withdrawing exactly the balance is allowed, and leaves 0",
    );
    graded.expect_of(sub, hidden, Outcome::Failed, "left: Err(");
    graded.expect_of(sub, hidden, Outcome::Failed, "insufficient funds: balance ");

    // The closed channel panics the actor: join() gets the panic.
    let sub = "actor-unwraps-recv";
    graded.expect_of(
        sub,
        public,
        Outcome::Failed,
        "called `Result::unwrap()` on an `Err` value: Any { .. }",
    );
    graded.expect_of(
        sub,
        public,
        Outcome::Failed,
        // The actor is the solution cell's function, run from the test cell.
        "thread 'account' panicked at cell [",
    );
    graded.expect_of(
        sub,
        public,
        Outcome::Failed,
        "called `Result::unwrap()` on an `Err` value: RecvError",
    );
    assert_eq!(graded.points_of(sub, actor), 0.0);

    // The actor holds a Sender to its own inbox: dropping every handle
    // does not close it, and join() waits forever.
    let sub = "actor-keeps-a-sender";
    graded.expect_of(
        sub,
        public,
        Outcome::Failed,
        "all threads are blocked, none on a labkit lock or condition variable: most often a receiver waiting on a channel that never closes, because a Sender (or a clone of one) is still alive somewhere",
    );
    graded.expect_of(
        sub,
        hidden,
        Outcome::NotRun,
        "not run: step04-account-actor-test hung",
    );

    // A thread per request: the balance is touched from 800 threads.
    let sub = "thread-per-request";
    graded.expect_of(sub, public, Outcome::Passed, "passed");
    graded.expect_of(
        sub,
        &format!("{hidden}/owner_thread_only(request)"),
        Outcome::Failed,
        "all request spans must run on one thread (the one that owns the state), but they ran on ",
    );
    graded.expect_of(
        sub,
        hidden,
        Outcome::Failed,
        "only the actor's thread handles requests",
    );

    // A cached balance: the test's own handle never saw a change.
    let sub = "cached-balance";
    graded.expect_of(sub, public, Outcome::Passed, "passed");
    graded.expect_of(
        sub,
        hidden,
        Outcome::Failed,
        "every withdrawal takes exactly 7: the balance is exact",
    );
    graded.expect_of(
        sub,
        &format!("{hidden}/owner_thread_only(request)"),
        Outcome::Passed,
        "",
    );

    // Check, then act: racing clients all see 7, all withdraw 7; the
    // second takes the u64 balance below 0 and the actor panics. (Eight
    // clients released at once race in about 19 rounds of 20 even on one
    // core; the test runs 20 rounds.)
    let sub = "check-then-withdraw";
    graded.expect_of(sub, public, Outcome::Passed, "passed");
    graded.expect_of(
        sub,
        hidden,
        Outcome::Failed,
        "a client's withdraw panicked: did the account's thread die? (a u64 balance taken below 0 panics",
    );

    // One reply channel for every handle: with clients asking at once, a
    // client can take another's reply. (Every one of the 8 × 100 requests
    // of the test's last part can cross another; on one core too.)
    let sub = "shared-reply-channel";
    graded.expect_of(sub, public, Outcome::Passed, "passed");
    graded.expect_of(
        sub,
        hidden,
        Outcome::Failed,
        "clients got replies that were not theirs (a withdrawal of 1 from about 1 000 refused, or one of 1 000 000 granted): each request needs its own reply channel",
    );

    // The reply leaves before the change: the old balance.
    let sub = "replies-old-balance";
    graded.expect_of(sub, public, Outcome::Failed, "left: 100");
    graded.expect_of(
        sub,
        hidden,
        Outcome::Failed,
        "deposit returns the balance after the deposit",
    );
}

/// Steps 3 and 4, promises that no other wrong solution here breaks alone.
///
/// - `fetch_outside_spans`: `fetch_all` right in every way, but its fetches
///   are not inside `labkit::in_span("fetch", i, ..)`, so the limit it keeps
///   cannot be seen;
/// - `saturating_withdraw`: "the balance is a u64, so it cannot go below 0":
///   a withdrawal larger than the balance empties the account and succeeds;
/// - `partial_payout`: a withdrawal larger than the balance pays out what
///   there is and reports the shortfall as an error: refused, but not
///   without changing the balance.
#[test]
fn step03_and_step04_promise_mistakes() {
    let fetch_outside_spans = reference_with(
        STEP03,
        "step03-io-threads",
        "                let page = labkit::in_span(\"fetch\", index as u64, || {\n                    labkit::work::fetch(url, std::time::Duration::from_millis(40))\n                });\n",
        "                let page = labkit::work::fetch(url, std::time::Duration::from_millis(40));\n",
    );
    let withdraw = "                        let outcome = if amount <= balance {\n                            balance -= amount;\n                            Ok(balance)\n                        } else {\n                            Err(format!(\"insufficient funds: balance {balance}, asked {amount}\"))\n                        };\n";
    let saturating_withdraw = reference_with(
        STEP04,
        "step04-account-actor",
        withdraw,
        "                        // A u64 cannot go below 0: take what is asked, down to 0.\n                        balance = balance.saturating_sub(amount);\n                        let outcome: Result<u64, String> = Ok(balance);\n",
    );
    let partial_payout = reference_with(
        STEP04,
        "step04-account-actor",
        withdraw,
        "                        // Pay out what there is; say what could not be paid.\n                        let paid = amount.min(balance);\n                        balance -= paid;\n                        let outcome = if paid == amount {\n                            Ok(balance)\n                        } else {\n                            Err(format!(\"insufficient funds: paid {paid} of {amount}\"))\n                        };\n",
    );
    let step03 = grade_mistakes(
        STEP03,
        &[(
            "fetch_outside_spans",
            vec![("step03-io-threads", fetch_outside_spans)],
        )],
    );
    let step04 = grade_mistakes(
        STEP04,
        &[
            (
                "saturating_withdraw",
                vec![("step04-account-actor", saturating_withdraw)],
            ),
            (
                "partial_payout",
                vec![("step04-account-actor", partial_payout)],
            ),
        ],
    );
    eprintln!("{}\n{}", step03.json(), step04.json());
    assert_eq!((step03.code, step04.code), (1, 1));

    // The pages are right; nothing shows how many were fetched at once.
    step03.expect_of(
        "fetch_outside_spans",
        "step03-io-threads-hidden",
        Outcome::Failed,
        "each URL is fetched once, inside labkit::in_span(",
    );
    step03.expect_of(
        "fetch_outside_spans",
        "step03-io-threads-hidden",
        Outcome::Failed,
        "left: 0",
    );
    step03.expect_of(
        "fetch_outside_spans",
        "step03-io-threads-test",
        Outcome::Passed,
        "passed",
    );

    step04.expect_of(
        "saturating_withdraw",
        "step04-account-actor-test",
        Outcome::Failed,
        "a withdrawal larger than the balance is refused",
    );
    step04.expect_of(
        "partial_payout",
        "step04-account-actor-test",
        Outcome::Failed,
        "assertion `left == right` failed: a refused withdrawal changes nothing",
    );
    step04.expect_of(
        "partial_payout",
        "step04-account-actor-test",
        Outcome::Failed,
        "left: 0",
    );
}
