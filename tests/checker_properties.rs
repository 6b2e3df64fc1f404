//! Every property LAB.md asks the checker to prove, failed by a real
//! learner mistake, graded by `conclab-check grade` through the kernel. Each
//! test names the mistake and the message a learner gets for it.

mod support;

use conclab_check::report::{Check, Outcome};
use support::{grade_notebook, lab, reference_with, submission, with_timeout, write};

#[test]
fn the_reference_solutions_earn_every_point() {
    let graded = grade_notebook(
        &lab().join("07-semaphores.ipynb"),
        "07-semaphores.ipynb",
        &support::read(&lab().join("07-semaphores.ipynb")),
    );
    assert_eq!(graded.code, 0, "{:#?}", graded.report);
    let failed: Vec<_> = graded
        .checks()
        .filter(|c| c.outcome != Outcome::Passed)
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

/// Step 1: a "parallel" map that runs on one thread, and a process pool
/// that starts a process per task.
#[test]
fn step01_sequential_map_and_process_per_task() {
    let sequential = r#"
pub fn count_primes_par(limits: &[u64]) -> Vec<u64> {
    limits.iter().enumerate()
        .map(|(i, &limit)| labkit::in_span("primes", i as u64, || labkit::work::count_primes(limit)))
        .collect()
}"#;
    let process_per_task = r#"
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
pub struct ProcessPool { size: usize }
impl ProcessPool {
    pub fn new(size: usize) -> std::io::Result<ProcessPool> { Ok(ProcessPool { size }) }
    pub fn map(&mut self, tasks: &[serde_json::Value]) -> std::io::Result<Vec<serde_json::Value>> {
        tasks.iter().map(|task| {
            let mut child = labkit::worker::command()?.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
            writeln!(child.stdin.take().unwrap(), "{task}")?;
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap()).read_line(&mut line)?;
            child.wait()?;
            serde_json::from_str(&line).map_err(std::io::Error::other)
        }).collect()
    }
    pub fn pids(&self) -> Vec<u32> { vec![0; self.size] }
    pub fn shutdown(self) -> std::io::Result<()> { Ok(()) }
}"#;
    let graded = graded_lab(
        "01-cpu-bound-pool.ipynb",
        &[
            ("step01-par-map", sequential),
            ("step01-process-pool", process_per_task),
        ],
    );
    assert_eq!(graded.code, 1);
    graded.expect("step01-par-map-test", Outcome::Passed, "passed");
    graded.expect(
        "step01-par-map-hidden/parallel(primes)",
        Outcome::Failed,
        "the work in primes should be spread over at least 2 threads, but ran on 1",
    );
    graded.expect(
        "step01-par-map-hidden",
        Outcome::Failed,
        "not every property held: parallel(primes)",
    );
    graded.expect(
        "step01-process-pool-hidden/processes",
        Outcome::Failed,
        "expected exactly 3 worker processes, saw 12 start",
    );
    assert_eq!(graded.check("step01-process-pool-hidden").score, 0.0);
}

/// Step 2: as_completed that waits for every task, then hands results back
/// sorted by completion time.
#[test]
fn step02_collect_then_sort_is_not_streaming() {
    let collect_then_sort = r#"
pub fn as_completed<T: Send + 'static>(
    tasks: Vec<Box<dyn FnOnce() -> T + Send>>,
    workers: usize,
) -> crossbeam::channel::Receiver<(usize, Result<T, String>)> {
    let (tx, rx) = crossbeam::channel::unbounded();
    let jobs = std::sync::Mutex::new(tasks.into_iter().enumerate().collect::<Vec<_>>());
    let finished = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(|| loop {
                let job = jobs.lock().unwrap().pop();
                let Some((index, task)) = job else { break };
                let outcome = labkit::in_span("task", index as u64, || {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(task))
                })
                .map_err(|p| p.downcast_ref::<&str>().map(|s| s.to_string()).unwrap_or_default());
                finished.lock().unwrap().push((std::time::Instant::now(), index, outcome));
            });
        }
    });
    let mut finished = finished.into_inner().unwrap();
    finished.sort_by_key(|f| f.0);
    for (_, index, outcome) in finished {
        tx.send((index, outcome)).unwrap();
    }
    rx
}"#;
    let graded = graded_lab(
        "02-as-completed.ipynb",
        &[("step02-as-completed", collect_then_sort)],
    );
    graded.expect(
        "step02-as-completed-hidden/streaming(task)",
        Outcome::Failed,
        "the first result must arrive before the slowest task ends",
    );
    graded.expect(
        "step02-as-completed-hidden/exactly_once(task)",
        Outcome::Passed,
        "",
    );
}

/// Step 3: one thread per URL, ignoring the limit.
#[test]
fn step03_unlimited_threads_exceed_the_limit() {
    let unlimited = r#"
pub fn fetch_all(urls: &[String], threads: usize) -> Vec<String> {
    let _ = threads;
    std::thread::scope(|s| {
        let handles: Vec<_> = urls.iter().enumerate().map(|(i, url)| s.spawn(move || {
            labkit::in_span("fetch", i as u64, || labkit::work::fetch(url, std::time::Duration::from_millis(40)))
        })).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}"#;
    let graded = graded_lab(
        "03-threads-vs-processes.ipynb",
        &[("step03-io-threads", unlimited)],
    );
    graded.expect(
        "step03-io-threads-hidden/max_inside(fetch)",
        Outcome::Failed,
        "at most 4 may be inside fetch at once, but 12 were",
    );
    graded.expect("step03-cpu-compare-hidden", Outcome::Passed, "passed");
}

/// Step 4: an "actor" whose handle changes the balance itself.
#[test]
fn step04_a_handle_that_mutates_state_directly() {
    let shared_state = r#"
pub enum AccountRequest {
    Deposit(u64, crossbeam::channel::Sender<u64>),
    Withdraw(u64, crossbeam::channel::Sender<Result<u64, String>>),
    Balance(crossbeam::channel::Sender<u64>),
}

#[derive(Clone)]
pub struct Account {
    requests: crossbeam::channel::Sender<AccountRequest>,
}

static BALANCE: std::sync::Mutex<u64> = std::sync::Mutex::new(0);
static REQUESTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn spawn_account(initial: u64) -> (Account, std::thread::JoinHandle<u64>) {
    *BALANCE.lock().unwrap() = initial;
    let (requests, inbox) = crossbeam::channel::unbounded::<AccountRequest>();
    let actor = std::thread::Builder::new().name("account".into()).spawn(move || {
        for _ in inbox {}
        *BALANCE.lock().unwrap()
    }).unwrap();
    (Account { requests }, actor)
}

impl Account {
    fn handle<R>(&self, change: impl FnOnce(&mut u64) -> R) -> R {
        let n = REQUESTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        labkit::in_span("request", n, || change(&mut BALANCE.lock().unwrap()))
    }
    pub fn deposit(&self, amount: u64) -> u64 {
        self.handle(|b| { *b += amount; *b })
    }
    pub fn withdraw(&self, amount: u64) -> Result<u64, String> {
        self.handle(|b| if amount <= *b { *b -= amount; Ok(*b) } else { Err("insufficient funds".into()) })
    }
    pub fn balance(&self) -> u64 {
        self.handle(|b| *b)
    }
}"#;
    let graded = graded_lab("04-actors.ipynb", &[("step04-account-actor", shared_state)]);
    graded.expect(
        "step04-account-actor-hidden/owner_thread_only(request)",
        Outcome::Failed,
        "all request spans must run on one thread",
    );
}

/// Step 5: transfers that lock the two accounts in argument order. Behind a
/// global gate they never deadlock, but the lock order still has a cycle;
/// with a pause between the two locks they deadlock, and the hang is
/// diagnosed with its cycle.
#[test]
fn step05_argument_order_locking() {
    let gated = r#"
static GATE: std::sync::Mutex<()> = std::sync::Mutex::new(());
pub fn transfer(accounts: &[labkit::sync::Mutex<i64>], from: usize, to: usize, amount: i64) {
    if from == to { return; }
    let _gate = GATE.lock().unwrap();
    let mut source = accounts[from].lock().unwrap();
    let mut target = accounts[to].lock().unwrap();
    *source -= amount;
    *target += amount;
}"#;
    let graded = graded_lab("05-shared-state.ipynb", &[("step05-transfer", gated)]);
    graded.expect(
        "step05-transfer-hidden/no_lock_cycle",
        Outcome::Failed,
        "locks are taken in opposite orders, so this can deadlock",
    );
    graded.expect("step05-counter-hidden", Outcome::Passed, "passed");

    let deadlocking = r#"
pub fn transfer(accounts: &[labkit::sync::Mutex<i64>], from: usize, to: usize, amount: i64) {
    if from == to { return; }
    let mut source = accounts[from].lock().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut target = accounts[to].lock().unwrap();
    *source -= amount;
    *target += amount;
}"#;
    // With the notebook's own 30 s limit: the lock-wait cycle in the trace
    // proves the deadlock as soon as every thread is stuck.
    let graded = graded_lab("05-shared-state.ipynb", &[("step05-transfer", deadlocking)]);
    let hang = graded.check("step05-transfer-hidden");
    assert_eq!(hang.outcome, Outcome::Failed);
    let message = &hang.message;
    assert!(
        message.starts_with("step05-transfer-hidden hung: deadlock: worker-")
            && message.contains("waits for account[")
            && message.contains(", held by worker-"),
        "{message}"
    );
    graded.expect(
        "step05-transfer-hidden/no_hang",
        Outcome::Failed,
        "deadlock: worker-",
    );
}

/// Step 6: a bounded queue that waits under `if` (a spurious wakeup lets a
/// consumer pop from an empty queue), one that spins, and one whose close
/// wakes only one waiter.
#[test]
fn step06_queue_mistakes() {
    let queue = |push_wait: &str, pop_wait: &str, close: &str| {
        format!(
            r#"
use std::collections::VecDeque;
pub struct QueueState<T> {{ items: VecDeque<T>, closed: bool }}
pub struct BoundedQueue<T> {{
    capacity: usize,
    state: labkit::sync::Mutex<QueueState<T>>,
    not_empty: labkit::sync::Condvar,
    not_full: labkit::sync::Condvar,
}}
impl<T> BoundedQueue<T> {{
    pub fn new(capacity: usize) -> BoundedQueue<T> {{
        BoundedQueue {{
            capacity: capacity.max(1),
            state: labkit::sync::Mutex::named("queue", QueueState {{ items: VecDeque::new(), closed: false }}),
            not_empty: labkit::sync::Condvar::named("not_empty"),
            not_full: labkit::sync::Condvar::named("not_full"),
        }}
    }}
    pub fn push(&self, item: T) -> Result<(), T> {{
        let mut state = self.state.lock().unwrap();
        {push_wait}
        if state.closed {{ return Err(item); }}
        state.items.push_back(item);
        drop(state);
        self.not_empty.notify_one();
        Ok(())
    }}
    pub fn pop(&self) -> Option<T> {{
        let mut state = self.state.lock().unwrap();
        {pop_wait}
        let item = state.items.pop_front();
        drop(state);
        if item.is_some() {{ self.not_full.notify_one(); }}
        item
    }}
    pub fn close(&self) {{
        self.state.lock().unwrap().closed = true;
        {close}
    }}
    pub fn len(&self) -> usize {{ self.state.lock().unwrap().items.len() }}
}}"#
        )
    };
    let good_push = "while state.items.len() >= self.capacity && !state.closed { state = self.not_full.wait(state).unwrap(); }";
    let good_pop = "while state.items.is_empty() && !state.closed { state = self.not_empty.wait(state).unwrap(); }";
    let good_close = "self.not_empty.notify_all(); self.not_full.notify_all();";
    let dir = tempfile::tempdir().unwrap();
    let source = write(
        dir.path(),
        "06-pipelines.ipynb",
        &with_timeout(support::read(&lab().join("06-pipelines.ipynb")), 8.0),
    );

    let if_not_while = queue(
        &good_push.replacen("while", "if", 1),
        &good_pop.replacen("while", "if", 1),
        good_close,
    );
    let graded = grade_notebook(
        &source,
        "06-pipelines.ipynb",
        &submission(
            "06-pipelines.ipynb",
            &[("step06-bounded-queue", &if_not_while)],
        ),
    );
    let check = graded.check("step06-bounded-queue-hidden");
    assert_eq!(check.outcome, Outcome::Failed, "{check:#?}");
    assert!(
        check.seed.is_some(),
        "a perturbed run failed and says its seed: {check:#?}"
    );

    let spinning = queue(
        "while state.items.len() >= self.capacity && !state.closed { drop(state); std::hint::spin_loop(); state = self.state.lock().unwrap(); }",
        "while state.items.is_empty() && !state.closed { drop(state); std::hint::spin_loop(); state = self.state.lock().unwrap(); }",
        good_close,
    );
    let graded = grade_notebook(
        &source,
        "06-pipelines.ipynb",
        &submission("06-pipelines.ipynb", &[("step06-bounded-queue", &spinning)]),
    );
    graded.expect(
        "step06-bounded-queue-hidden/sleeps_not_spins",
        Outcome::Failed,
        "a blocked thread should sleep, not spin",
    );

    let notify_one = queue(
        good_push,
        good_pop,
        "self.not_empty.notify_one(); self.not_full.notify_one();",
    );
    let graded = grade_notebook(
        &source,
        "06-pipelines.ipynb",
        &submission(
            "06-pipelines.ipynb",
            &[("step06-bounded-queue", &notify_one)],
        ),
    );
    graded.expect(
        "step06-bounded-queue-hidden",
        Outcome::Failed,
        "waits on condition variable not_empty that nobody notifies",
    );
    graded.expect(
        "step06-pipeline-test",
        Outcome::NotRun,
        "not run: step06-bounded-queue-hidden hung",
    );
}

/// Step 7: a semaphore that lets one too many in, and one whose permit is
/// lost when its holder panics.
#[test]
fn step07_off_by_one_and_lost_permit() {
    let semaphore = |check: &str, drop_body: &str| {
        format!(
            r#"
pub struct Semaphore {{ free: labkit::sync::Mutex<usize>, released: labkit::sync::Condvar, limit: usize }}
pub struct Permit<'a> {{ semaphore: &'a Semaphore }}
impl Semaphore {{
    pub fn new(permits: usize) -> Semaphore {{
        Semaphore {{ free: labkit::sync::Mutex::named("permits", permits), released: labkit::sync::Condvar::named("released"), limit: permits }}
    }}
    pub fn acquire(&self) -> Permit<'_> {{
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while {check} {{ free = self.released.wait(free).unwrap_or_else(|p| p.into_inner()); }}
        *free = free.saturating_sub(1);
        let _ = self.limit;
        Permit {{ semaphore: self }}
    }}
    pub fn available(&self) -> usize {{ *self.free.lock().unwrap_or_else(|p| p.into_inner()) }}
}}
impl Drop for Permit<'_> {{
    fn drop(&mut self) {{ {drop_body} }}
}}"#
        )
    };
    let give_back = "*self.semaphore.free.lock().unwrap_or_else(|p| p.into_inner()) += 1; self.semaphore.released.notify_one();";
    let off_by_one = semaphore("*free == 0 && false", give_back);
    let graded = graded_lab("07-semaphores.ipynb", &[("step07-semaphore", &off_by_one)]);
    graded.expect(
        "step07-semaphore-hidden/max_inside(inside)",
        Outcome::Failed,
        "at most 3 may be inside inside at once, but",
    );

    let lost_on_panic = semaphore(
        "*free == 0",
        "if !std::thread::panicking() { *self.semaphore.free.lock().unwrap_or_else(|p| p.into_inner()) += 1; self.semaphore.released.notify_one(); }",
    );
    let graded = graded_lab(
        "07-semaphores.ipynb",
        &[("step07-semaphore", &lost_on_panic)],
    );
    graded.expect(
        "step07-semaphore-hidden",
        Outcome::Failed,
        "the panicking holder's permit came back",
    );
    graded.expect(
        "step07-semaphore-hidden/release_on_panic",
        Outcome::NotRun,
        "the test failed first",
    );
}

/// Step 8: fetching one page at a time never reaches the fetch limit, and
/// is no faster than the sequential version.
#[test]
fn step08_sequential_fetching() {
    let sequential = r#"
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report { pub pages: usize, pub words: u64, pub fingerprint: u64 }
pub fn analyse(urls: &[String], fetch_limit: usize) -> Report {
    let _ = fetch_limit;
    let mut report = Report { pages: 0, words: 0, fingerprint: 0 };
    for (i, url) in urls.iter().enumerate() {
        let page = labkit::in_span("fetch", i as u64, || labkit::work::fetch(url, std::time::Duration::from_millis(40)));
        let (words, hash) = labkit::in_span("analyse", i as u64, || (page.split_whitespace().count() as u64, labkit::work::hash_rounds(page.as_bytes(), 2_000)));
        report.pages += 1;
        report.words += words;
        report.fingerprint ^= hash;
    }
    report
}"#;
    let graded = graded_lab("08-capstone-hybrid.ipynb", &[("step08-hybrid", sequential)]);
    graded.expect(
        "step08-hybrid-hidden/min_inside(fetch)",
        Outcome::Failed,
        "fetch should reach 4 at once",
    );
    graded.expect(
        "step08-hybrid-hidden/parallel(analyse)",
        Outcome::Failed,
        "the work in analyse should be spread over at least 2 threads, but ran on 1",
    );
    // The fetch-limit assertion fails before the timing one is reached.
    graded.expect(
        "step08-hybrid-hidden/faster_than_sequential",
        Outcome::NotRun,
        "the test failed first: assertion `left == right` failed: the fetch limit is reached",
    );
}

/// The lab notebook `notebook` graded against itself with the solution
/// cells `grade_id → code` replaced: a learner's submission.
fn graded_lab(notebook: &str, solutions: &[(&str, &str)]) -> support::Graded {
    grade_notebook(
        &lab().join(notebook),
        notebook,
        &submission(notebook, solutions),
    )
}

/// Step 1: a pool whose shutdown closes the pipes but never waits for its
/// workers: they exit and stay zombies.
#[test]
fn step01_workers_never_reaped() {
    let never_reaped = reference_with(
        "01-cpu-bound-pool.ipynb",
        "step01-process-pool",
        "let status = worker.child.wait()?;\n            if !status.success() {\n                return Err(std::io::Error::other(format!(\"a worker failed: {status}\")));\n            }",
        "std::mem::forget(worker.child); // never waited for",
    );
    let graded = graded_lab(
        "01-cpu-bound-pool.ipynb",
        &[("step01-process-pool", &never_reaped)],
    );
    graded.expect(
        "step01-process-pool-hidden/no_leaks",
        Outcome::Failed,
        "(exited but never waited for: a zombie)",
    );
    graded.expect("step01-par-map-hidden", Outcome::Passed, "passed");
}

/// Step 2: results handed back in input order, not as tasks complete.
#[test]
fn step02_input_order_is_not_completion_order() {
    let in_input_order = reference_with(
        "02-as-completed.ipynb",
        "step02-as-completed",
        "    result_rx\n",
        "    // Waits for every result, then hands them back in input order.\n    drop(result_tx);\n    let mut all: Vec<_> = result_rx.iter().collect();\n    all.sort_by_key(|(index, _)| *index);\n    let (tx, rx) = crossbeam::channel::unbounded();\n    for item in all { tx.send(item).unwrap(); }\n    rx\n",
    );
    let graded = graded_lab(
        "02-as-completed.ipynb",
        &[("step02-as-completed", &in_input_order)],
    );
    graded.expect(
        "step02-as-completed-hidden/completion_order(task)",
        Outcome::Failed,
        "results must be handed back as tasks complete: task 0",
    );
    graded.expect(
        "step02-as-completed-hidden/max_inside(task)",
        Outcome::Passed,
        "",
    );
}

/// Step 1: a parallel map whose tasks push their results into a shared Vec
/// as each finishes, so the results come back in completion order.
#[test]
fn step01_results_in_completion_order() {
    let completion_order = r#"
use rayon::prelude::*;
pub fn count_primes_par(limits: &[u64]) -> Vec<u64> {
    let results = std::sync::Mutex::new(Vec::new());
    limits.par_iter().enumerate().for_each(|(i, &limit)| {
        let count = labkit::in_span("primes", i as u64, || labkit::work::count_primes(limit));
        results.lock().unwrap().push(count);
    });
    results.into_inner().unwrap()
}"#;
    let graded = graded_lab(
        "01-cpu-bound-pool.ipynb",
        &[("step01-par-map", completion_order)],
    );
    graded.expect(
        "step01-par-map-hidden",
        Outcome::Failed,
        "the results must be those of the sequential loop, in input order",
    );
    // Input order is the test's own assertion: it failed, and says so.
    graded.expect(
        "step01-par-map-hidden/input_order(primes)",
        Outcome::NotRun,
        "the test failed first: assertion `left == right` failed: the results must be those of the sequential loop, in input order",
    );
    // The work itself was parallel: only the order is wrong.
    graded.expect(
        "step01-par-map-hidden/parallel(primes)",
        Outcome::Passed,
        "",
    );
    graded.expect("step01-process-pool-hidden", Outcome::Passed, "passed");
}

/// Step 1: a pool whose map writes every task before it reads any result.
/// One large task at a time gets through (the worker reads all of it before
/// it answers); two for one worker deadlock: the worker blocks writing a
/// reply nobody reads yet, and the pool blocks writing the next task, which
/// that worker does not read. The hidden test echoes 6 large payloads in one
/// map, and the hang is named by its pipe.
#[test]
fn step01_write_all_then_read_deadlocks_on_large_payloads() {
    let write_all_then_read = reference_with(
        "01-cpu-bound-pool.ipynb",
        "step01-process-pool",
        "let n = self.workers.len();\n        let mut results",
        "let n = self.workers.len();\n        // Every task first, round robin; then every reply.\n        for (i, task) in tasks.iter().enumerate() {\n            writeln!(self.workers[i % n].input, \"{task}\")?;\n        }\n        let mut replies = Vec::new();\n        for i in 0..tasks.len() {\n            let mut line = String::new();\n            self.workers[i % n].output.read_line(&mut line)?;\n            replies.push(serde_json::from_str(&line).map_err(std::io::Error::other)?);\n        }\n        if !replies.is_empty() || tasks.is_empty() {\n            return Ok(replies);\n        }\n        let mut results",
    );
    let submitted = submission(
        "01-cpu-bound-pool.ipynb",
        &[("step01-process-pool", &write_all_then_read)],
    );

    // With the notebook's own 60 s limit: both processes blocked on pipes
    // only they hold is a hang as soon as it has lasted 2 s.
    let graded = grade_notebook(
        &lab().join("01-cpu-bound-pool.ipynb"),
        "01-cpu-bound-pool.ipynb",
        &submitted,
    );
    let hang = graded.check("step01-process-pool-hidden");
    assert_eq!(hang.outcome, Outcome::Failed, "{hang:#?}");
    let message = &hang.message;
    assert!(
        message.starts_with("step01-process-pool-hidden hung: ")
            && message.contains(" blocked writing a pipe to labkit-worker")
            && !message.contains("pid ")
            && message.ends_with(
                ", which is blocked writing a pipe to it: each waits for the other to read a full pipe (read replies while you still send, or keep one task in flight per worker)"
            ),
        "{message}"
    );
    // Drawn, though no thread waits in the trace: marked where the writer
    // last did something.
    let mark = hang.timeline.as_ref().and_then(|t| t.marks.first());
    assert!(
        mark.is_some_and(|mark| mark.label.ends_with(" block on pipes to each other here")),
        "{hang:#?}"
    );
    graded.expect(
        "step01-process-pool-hidden/no_hang",
        Outcome::Failed,
        "which is blocked writing a pipe to it",
    );
    for property in ["processes", "input_order", "no_leaks"] {
        graded.expect(
            &format!("step01-process-pool-hidden/{property}"),
            Outcome::NotRun,
            "not run: step01-process-pool-hidden hung",
        );
    }
    graded.expect("step01-process-pool-test", Outcome::Passed, "passed");
}

/// Step 3: a "process" variant that runs the work on threads in the cell's
/// own process and reports that process as its workers.
#[test]
fn step03_threads_posing_as_processes() {
    let threads_as_processes = reference_with(
        "03-threads-vs-processes.ipynb",
        "step03-cpu-compare",
        "    // ### BEGIN SOLUTION\n    use std::io::{BufRead, BufReader, Write};",
        "    // Threads are cheaper than processes: same work, same answers.\n    let counts = primes_on_threads(limits, workers);\n    if !counts.is_empty() || limits.is_empty() {\n        return Ok((counts, vec![std::process::id(); workers.max(1)]));\n    }\n    // ### BEGIN SOLUTION\n    use std::io::{BufRead, BufReader, Write};",
    );
    let graded = graded_lab(
        "03-threads-vs-processes.ipynb",
        &[("step03-cpu-compare", &threads_as_processes)],
    );
    graded.expect(
        "step03-cpu-compare-hidden/processes",
        Outcome::Failed,
        "the process variant really used other processes: expected exactly 3 worker processes, saw 0 start (the work must run in labkit-worker processes, started with labkit::worker::command())",
    );
    graded.expect(
        "step03-cpu-compare-hidden",
        Outcome::Failed,
        "the work must run in other processes, not in the notebook's own",
    );
    // The public test only counts the pids it is given: it cannot tell.
    graded.expect("step03-cpu-compare-test", Outcome::Passed, "passed");
    graded.expect("step03-io-threads-hidden", Outcome::Passed, "passed");
}

/// Step 6: the reader thread gets a clone of the lines' Sender and the
/// original stays alive in the calling thread, so the parse workers never
/// see their input close, never drop their result senders, and the loop
/// collecting results waits forever.
#[test]
fn step06_a_sender_kept_alive_in_the_main_thread() {
    let kept_alive = reference_with(
        "06-pipelines.ipynb",
        "step06-pipeline",
        "    std::thread::scope(|s| {\n        s.spawn(move || {\n            for item in lines.into_iter().enumerate() {\n                labkit::in_span(\"read\", item.0 as u64, || line_tx.send(item)).unwrap();",
        "    let reader_tx = line_tx.clone(); // line_tx itself lives on until the function returns\n    std::thread::scope(|s| {\n        s.spawn(move || {\n            for item in lines.into_iter().enumerate() {\n                labkit::in_span(\"read\", item.0 as u64, || reader_tx.send(item)).unwrap();",
    );
    // With the notebook's own limit: threads blocked on channels for 2 s,
    // with nothing left running to send, are hung.
    let graded = graded_lab("06-pipelines.ipynb", &[("step06-pipeline", &kept_alive)]);
    // The public test is the first to call pipeline: it hangs.
    let hang = graded.check("step06-pipeline-test");
    assert_eq!(hang.outcome, Outcome::Failed, "{hang:#?}");
    let message = &hang.message;
    assert!(
        message.starts_with(
            "step06-pipeline-test hung: all threads are blocked, none on a labkit lock or condition variable: most often a receiver waiting on a channel that never closes, because a Sender (or a clone of one) is still alive somewhere, or a sender blocked on a full bounded channel that nobody reads any more; blocked: unnamed thread "
        ),
        "{message}"
    );
    // The parse workers, named, each last seen in a parse span.
    let details = &hang.details;
    assert!(
        details.contains("last events: span_exit parse"),
        "{details}"
    );
    graded.expect(
        "step06-pipeline-hidden",
        Outcome::NotRun,
        "not run: step06-pipeline-test hung",
    );
    graded.expect(
        "step06-pipeline-hidden/no_hang",
        Outcome::NotRun,
        "not run: step06-pipeline-test hung",
    );
    graded.expect("step06-bounded-queue-hidden", Outcome::Passed, "passed");
}

/// Step 8: an aggregator actor that polls its inbox and takes every error,
/// a closed inbox too, for "nothing yet"; analyse asks it for the report
/// over a reply channel and returns without shutting it down or joining it.
#[test]
fn step08_an_actor_left_running() {
    let left_running = r#"
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report { pub pages: usize, pub words: u64, pub fingerprint: u64 }

enum Message { Fact(usize, u64, u64), Report(crossbeam::channel::Sender<Report>), Shutdown }

pub fn analyse(urls: &[String], fetch_limit: usize) -> Report {
    use rayon::prelude::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (facts, inbox) = crossbeam::channel::unbounded::<Message>();
    std::thread::Builder::new().name("aggregator".into()).spawn(move || {
        let mut report = Report { pages: 0, words: 0, fingerprint: 0 };
        loop {
            match inbox.recv_timeout(std::time::Duration::from_millis(20)) {
                Ok(Message::Fact(index, words, hash)) => labkit::in_span("aggregate", index as u64, || {
                    report.pages += 1;
                    report.words += words;
                    report.fingerprint ^= hash;
                }),
                Ok(Message::Report(reply)) => { let _ = reply.send(report.clone()); }
                Ok(Message::Shutdown) => break,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)), // nothing yet
            }
        }
    }).unwrap();
    let (pages_tx, pages_rx) = crossbeam::channel::bounded::<(usize, String)>(fetch_limit.max(1));
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..fetch_limit.max(1) {
            let pages_tx = pages_tx.clone();
            let next = &next;
            s.spawn(move || loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(url) = urls.get(index) else { break };
                let page = labkit::in_span("fetch", index as u64, || labkit::work::fetch(url, std::time::Duration::from_millis(40)));
                pages_tx.send((index, page)).unwrap();
            });
        }
        drop(pages_tx);
        pages_rx.into_iter().par_bridge().for_each_with(facts.clone(), |facts, (index, page)| {
            let (words, hash) = labkit::in_span("analyse", index as u64, || {
                (page.split_whitespace().count() as u64, labkit::work::hash_rounds(page.as_bytes(), 2_000))
            });
            facts.send(Message::Fact(index, words, hash)).unwrap();
        });
    });
    let (reply, answer) = crossbeam::channel::bounded(1);
    facts.send(Message::Report(reply)).unwrap();
    answer.recv().unwrap()
}"#;
    let graded = graded_lab(
        "08-capstone-hybrid.ipynb",
        &[("step08-hybrid", left_running)],
    );
    graded.expect(
        "step08-hybrid-hidden/no_leaks",
        Outcome::Failed,
        "1 thread(s) still running after the cell ended: aggregator (join every thread you spawn",
    );
    // Its tid is in the folded evidence, not the message.
    graded.expect(
        "step08-hybrid-hidden/no_leaks",
        Outcome::Failed,
        "aggregator: tid ",
    );
    let message = &graded.check("step08-hybrid-hidden/no_leaks").message;
    assert!(!message.contains("tid"), "{message}");
    graded.expect(
        "step08-hybrid-hidden/no_leaks",
        Outcome::Failed,
        "(join every thread you spawn, or let its channel close so it can end)",
    );
    graded.expect(
        "step08-hybrid-hidden",
        Outcome::Failed,
        "the test passed, but not every property held: no_leaks",
    );
    // Everything else about the run was right.
    graded.expect("step08-hybrid-hidden/results_equal", Outcome::Passed, "");
    graded.expect(
        "step08-hybrid-hidden/parallel(analyse)",
        Outcome::Passed,
        "",
    );
}

/// The left total of an `assert_eq!` failure's details (`  left: 5161`).
fn left_total(check: &Check) -> u64 {
    check
        .details
        .lines()
        .find_map(|line| line.trim().strip_prefix("left: "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no left total in {check:#?}"))
}

/// Step 5: counters that lose updates. The atomic one loads, yields, then
/// stores what it read plus one; the mutex one locks to read, then locks
/// again to write. Between the two another thread's increments land and
/// are overwritten. (The yield makes the loss certain on any machine, as a
/// busy one would by chance.)
#[test]
fn step05_counters_that_lose_updates() {
    let read_then_write = reference_with(
        "05-shared-state.ipynb",
        "step05-counter",
        "s.spawn(|| for _ in 0..per_thread { count.fetch_add(1, Ordering::Relaxed); });",
        "s.spawn(|| for _ in 0..per_thread {\n                let seen = count.load(Ordering::SeqCst);\n                std::thread::yield_now();\n                count.store(seen + 1, Ordering::SeqCst);\n            });",
    );
    let graded = graded_lab(
        "05-shared-state.ipynb",
        &[("step05-counter", &read_then_write)],
    );
    graded.expect(
        "step05-counter-hidden",
        Outcome::Failed,
        "assertion `left == right` failed: atomic counter with 8 threads",
    );
    // The totals: what the counter said, and the exact 8 × 5 000.
    graded.expect("step05-counter-hidden", Outcome::Failed, "right: 40000");
    let counted = left_total(graded.check("step05-counter-hidden"));
    assert!(counted < 40_000, "updates were lost: {counted}");
    // Exact totals are the test's own assertion: it failed, and says so.
    graded.expect(
        "step05-counter-hidden/results_equal",
        Outcome::NotRun,
        "the test failed first: assertion `left == right` failed: atomic counter with 8 threads",
    );
    graded.expect("step05-counter-test", Outcome::Failed, "right: 4000");
    graded.expect("step05-transfer-hidden", Outcome::Passed, "passed");

    let lock_twice = reference_with(
        "05-shared-state.ipynb",
        "step05-counter",
        "s.spawn(|| for _ in 0..per_thread { *count.lock().unwrap() += 1; });",
        "s.spawn(|| for _ in 0..per_thread {\n                let seen = *count.lock().unwrap();\n                std::thread::yield_now();\n                *count.lock().unwrap() = seen + 1;\n            });",
    );
    let graded = graded_lab("05-shared-state.ipynb", &[("step05-counter", &lock_twice)]);
    graded.expect(
        "step05-counter-hidden",
        Outcome::Failed,
        "assertion `left == right` failed: mutex counter with 8 threads",
    );
    graded.expect("step05-counter-hidden", Outcome::Failed, "right: 40000");
    let counted = left_total(graded.check("step05-counter-hidden"));
    assert!(counted < 40_000, "updates were lost: {counted}");
    graded.expect(
        "step05-counter-hidden/results_equal",
        Outcome::NotRun,
        "the test failed first: assertion `left == right` failed: mutex counter with 8 threads",
    );
}

/// Step 6: a queue that pops the newest item (LIFO), and one whose push
/// never waits, so it holds more than its capacity.
#[test]
fn step06_a_lifo_queue_and_an_unbounded_one() {
    let lifo = reference_with(
        "06-pipelines.ipynb",
        "step06-bounded-queue",
        "state.items.pop_front()",
        "state.items.pop_back()",
    );
    let graded = graded_lab("06-pipelines.ipynb", &[("step06-bounded-queue", &lifo)]);
    graded.expect(
        "step06-bounded-queue-hidden",
        Outcome::Failed,
        "assertion `left == right` failed: FIFO, nothing lost or duplicated",
    );
    // The first pop takes the newest of the three the blocked producer left.
    graded.expect("step06-bounded-queue-hidden", Outcome::Failed, "left: [2, ");
    graded.expect(
        "step06-bounded-queue-hidden",
        Outcome::Failed,
        "right: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]",
    );
    // FIFO is the test's own assertion: it failed, and says so.
    graded.expect(
        "step06-bounded-queue-hidden/fifo",
        Outcome::NotRun,
        "the test failed first: assertion `left == right` failed: FIFO, nothing lost or duplicated",
    );
    graded.expect(
        "step06-bounded-queue-test",
        Outcome::Failed,
        "first in, first out",
    );
    graded.expect("step06-pipeline-hidden", Outcome::Passed, "passed");

    let unbounded = reference_with(
        "06-pipelines.ipynb",
        "step06-bounded-queue",
        "|s| s.items.len() >= self.capacity && !s.closed",
        "|s| s.items.len() >= usize::MAX && !s.closed",
    );
    let graded = graded_lab(
        "06-pipelines.ipynb",
        &[("step06-bounded-queue", &unbounded)],
    );
    graded.expect(
        "step06-bounded-queue-hidden",
        Outcome::Failed,
        "assertion `left == right` failed: with nobody popping, the producer blocks after exactly `capacity` items",
    );
    // Everything went in at once: 10 items in a queue of 3.
    graded.expect("step06-bounded-queue-hidden", Outcome::Failed, "left: 10");
    graded.expect("step06-bounded-queue-hidden", Outcome::Failed, "right: 3");
    graded.expect(
        "step06-bounded-queue-hidden/bounded",
        Outcome::NotRun,
        "the test failed first: assertion `left == right` failed: with nobody popping, the producer blocks after exactly `capacity` items",
    );
    // The public test never fills the queue with nobody popping: it passes.
    graded.expect("step06-bounded-queue-test", Outcome::Passed, "passed");
}

/// Step 8: an aggregator actor that, instead of blocking on its inbox,
/// sleeps 40 ms before each look at it. Fetching and analysis are right,
/// but the actor takes one fact per 40 ms: 16 pages cost as much as the
/// sequential version, and the hybrid is no faster.
#[test]
fn step08_an_actor_that_sleeps_between_messages() {
    let sleepy_actor = reference_with(
        "08-capstone-hybrid.ipynb",
        "step08-hybrid",
        "        for (index, words, hash) in inbox {\n",
        "        loop {\n            // Looks at its inbox now and then instead of blocking on it.\n            std::thread::sleep(std::time::Duration::from_millis(40));\n            let (index, words, hash) = match inbox.try_recv() {\n                Ok(fact) => fact,\n                Err(crossbeam::channel::TryRecvError::Empty) => continue,\n                Err(crossbeam::channel::TryRecvError::Disconnected) => break,\n            };\n",
    );
    let graded = graded_lab(
        "08-capstone-hybrid.ipynb",
        &[("step08-hybrid", &sleepy_actor)],
    );
    graded.expect(
        "step08-hybrid-hidden",
        Outcome::Failed,
        "the hybrid must take less than half the sequential time: it took ",
    );
    // Being faster is the test's own assertion: it failed, and says so.
    graded.expect(
        "step08-hybrid-hidden/faster_than_sequential",
        Outcome::NotRun,
        "the test failed first: the hybrid must take less than half the sequential time: it took ",
    );
    // The concurrency itself was right.
    graded.expect(
        "step08-hybrid-hidden/min_inside(fetch)",
        Outcome::Passed,
        "",
    );
    graded.expect(
        "step08-hybrid-hidden/max_inside(fetch)",
        Outcome::Passed,
        "",
    );
    graded.expect(
        "step08-hybrid-hidden/parallel(analyse)",
        Outcome::Passed,
        "",
    );
    graded.expect("step08-hybrid-hidden/no_leaks", Outcome::Passed, "");
}

/// Step 2: workers that run each task without catch_unwind. Task 3's panic
/// kills its worker thread before it sends anything, so task 3 is never
/// reported; the other two workers take the remaining tasks.
#[test]
fn step02_a_panic_kills_its_worker() {
    let no_catch_unwind = reference_with(
        "02-as-completed.ipynb",
        "step02-as-completed",
        "                let outcome = labkit::in_span(\"task\", index as u64, || {\n                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(task))\n                });\n",
        "                let outcome: Result<T, Box<dyn std::any::Any + Send>> =\n                    Ok(labkit::in_span(\"task\", index as u64, task));\n",
    );
    let graded = graded_lab(
        "02-as-completed.ipynb",
        &[("step02-as-completed", &no_catch_unwind)],
    );
    graded.expect(
        "step02-as-completed-hidden",
        Outcome::Failed,
        "assertion `left == right` failed: every task is delivered exactly once",
    );
    // The delivered tasks, 3 missing.
    graded.expect(
        "step02-as-completed-hidden",
        Outcome::Failed,
        "left: [0, 1, 2, 4, 5, 6]",
    );
    // Why: the worker's panic, which went to stderr, is shown with it.
    let details = &graded.check("step02-as-completed-hidden").details;
    assert!(
        details.contains("the cell's stderr:\nthread '<unnamed>' panicked")
            && details.contains("task 3 failed on purpose"),
        "{details}"
    );
    // Each task that ran ran once, in its own span: only the delivery is lost.
    graded.expect(
        "step02-as-completed-hidden/exactly_once(task)",
        Outcome::Passed,
        "",
    );
    // The public test has no panicking task.
    graded.expect("step02-as-completed-test", Outcome::Passed, "passed");
}

/// Step 6: a pipeline with a single parse thread, whatever `workers` says.
/// Results are right and in order, but parsing never overlaps.
#[test]
fn step06_a_pipeline_with_one_parser() {
    let one_parser = reference_with(
        "06-pipelines.ipynb",
        "step06-pipeline",
        "        for _ in 0..workers.max(1) {",
        "        let _ = workers; // one parser keeps the results in order\n        for _ in 0..1 {",
    );
    let graded = graded_lab("06-pipelines.ipynb", &[("step06-pipeline", &one_parser)]);
    graded.expect(
        "step06-pipeline-hidden/min_inside(parse)",
        Outcome::Failed,
        "stages overlap in time: parse should reach 2 at once",
    );
    graded.expect(
        "step06-pipeline-hidden/min_inside(parse)",
        Outcome::Failed,
        "but at most 1 were inside at once",
    );
    graded.expect(
        "step06-pipeline-hidden",
        Outcome::Failed,
        "the parse workers overlap",
    );
    graded.expect(
        "step06-pipeline-hidden/exactly_once(parse)",
        Outcome::Passed,
        "",
    );
    graded.expect("step06-pipeline-hidden/no_leaks", Outcome::Passed, "");
    graded.expect("step06-pipeline-test", Outcome::Passed, "passed");
}

/// Fair: a transfer that takes the second account with `try_lock` and
/// backs off when it is busy cannot deadlock, in whatever order it takes
/// the two locks; it earns every point, and no_lock_cycle holds.
#[test]
fn step05_a_transfer_that_tries_the_second_lock_is_fair() {
    let backing_off = r#"
pub fn transfer(accounts: &[labkit::sync::Mutex<i64>], from: usize, to: usize, amount: i64) {
    if from == to { return; }
    loop {
        let mut source = accounts[from].lock().unwrap();
        if let Ok(mut target) = accounts[to].try_lock() {
            *source -= amount;
            *target += amount;
            return;
        }
        // The other account is busy: let go of this one and try again.
        drop(source);
        std::thread::yield_now();
    }
}"#;
    let graded = graded_lab("05-shared-state.ipynb", &[("step05-transfer", backing_off)]);
    graded.expect("step05-transfer-test/no_lock_cycle", Outcome::Passed, "");
    graded.expect("step05-transfer-hidden/no_lock_cycle", Outcome::Passed, "");
    graded.expect("step05-transfer-hidden", Outcome::Passed, "passed");
    assert_eq!(graded.code, 0, "{:#?}", graded.report);
}

/// Step 6: a queue that lets one item too many in. The hidden test's
/// assertion fails inside `thread::scope` while the producer is blocked:
/// the report names the assertion first, and the hang it causes second.
#[test]
fn step06_a_failed_assertion_is_named_before_the_hang_it_causes() {
    let one_too_many = reference_with(
        "06-pipelines.ipynb",
        "step06-bounded-queue",
        "s.items.len() >= self.capacity && !s.closed",
        "s.items.len() > self.capacity && !s.closed",
    );
    let graded = graded_lab(
        "06-pipelines.ipynb",
        &[("step06-bounded-queue", &one_too_many)],
    );
    let check = graded.check("step06-bounded-queue-hidden");
    let message = &check.message;
    assert!(
        message.starts_with("step06-bounded-queue-hidden failed: assertion `left == right` failed: with nobody popping, the producer blocks after exactly `capacity` items; left: 4; right: 3")
            && message.contains("; then the cell hung, waiting for threads that could not end: "),
        "{check:#?}"
    );
}

/// Step 1: a shutdown that waits for each worker before closing its stdin:
/// the worker reads until its input ends, which never happens. The hang is
/// named as the wait it is, with the pipe the child reads.
#[test]
fn step01_waiting_for_a_worker_whose_stdin_is_open() {
    let wait_first = reference_with(
        "01-cpu-bound-pool.ipynb",
        "step01-process-pool",
        "drop(worker.input); // end of input: the worker exits\n            let status = worker.child.wait()?;",
        "let status = worker.child.wait()?;\n            drop(worker.input);",
    );
    let graded = graded_lab(
        "01-cpu-bound-pool.ipynb",
        &[("step01-process-pool", &wait_first)],
    );
    let check = graded.check("step01-process-pool-test");
    let message = &check.message;
    assert!(
        message.starts_with("step01-process-pool-test hung: main waits in wait() for labkit-worker")
            && !message.contains("pid ")
            && message.ends_with(
                " is blocked reading its input, which stays open while the waiting process holds its write end: close the child's stdin (drop the ChildStdin) before wait()"
            ),
        "{check:#?}"
    );
    let mark = check.timeline.as_ref().and_then(|t| t.marks.first());
    assert!(
        mark.is_some_and(
            |mark| mark.label.starts_with("main waits for labkit-worker")
                && mark.label.ends_with(" to exit from here")
        ),
        "{check:#?}"
    );
}
