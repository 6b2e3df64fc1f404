//! Learners' mistakes in steps 5 to 8 (shared state, pipelines, semaphores,
//! the hybrid capstone), each graded by `conclab-check grade` through the
//! kernel, with the check that fails and the words its message says. All the
//! mistakes of one notebook are graded in one run, each as a submission of
//! its own. Every mistake here fails on every run: where a bug only shows
//! under some interleavings, the notebook's hidden test forces one that shows
//! it (a transfer caught waiting for a busy account, a consumer already
//! waiting when an item is pushed, producers blocked on a full queue when it
//! is closed, two threads waiting on a held permit).

mod support;

use conclab_check::report::{Check, Outcome};
use support::{Graded, grade_mistakes, reference_with, replaced};

/// `(left, right)` of an `assert_eq!` failure's details (`  left: 5161`).
fn left_right(check: &Check) -> (String, String) {
    let side = |name: &str| {
        check
            .details
            .lines()
            .find_map(|line| line.trim().strip_prefix(name))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no {name} in {check:#?}"))
    };
    (side("left: "), side("right: "))
}

/// Asserts the submission's check `id` failed and its message or details
/// say one of `words` (for a race whose loss shows in one of two ways).
fn expect_one_of(graded: &Graded, submission: &str, id: &str, words: &[&str]) {
    let check = graded.of(submission, id);
    assert_eq!(
        check.outcome,
        Outcome::Failed,
        "{submission}: {id}: {check:#?}"
    );
    let text = support::says(check);
    assert!(
        words.iter().any(|w| text.contains(w)),
        "{submission}: {id} should say one of {words:?}: {check:#?}"
    );
}

const STEP5: &str = "05-shared-state.ipynb";
const COUNTER: &str = "step05-counter";
const TRANSFER: &str = "step05-transfer";

/// The reference's mutex counter, for submissions that rewrite only the
/// atomic one.
fn mutex_counter() -> String {
    let reference = reference_with(STEP5, COUNTER, "", "");
    let at = reference.find("pub fn count_with_mutex").unwrap();
    reference[at..].to_owned()
}

/// Step 5, counters.
///
/// - `copy`: the mutex counter increments a copy of the value
///   (`let mut n = *count.lock().unwrap(); n += 1;`): it stays 0;
/// - `try_lock`: the mutex counter uses `try_lock` so that no thread ever
///   waits, and skips the increment when the lock is busy;
/// - `static_counter`: the atomic counter is a `static` (so that
///   `std::thread::spawn`'s threads can reach it) that is never reset: the
///   second call starts where the first ended;
/// - `never_joined`: the atomic counter's threads are spawned with
///   `std::thread::spawn` and never joined: the count is read before they
///   are done;
/// - `computes_the_total`: the atomic counter adds `threads * per_thread`
///   at once, without a thread: right totals, nothing counted;
/// - `counts_on_the_caller`: the mutex counter counts every increment on
///   the calling thread ("the lock makes them take turns anyway");
/// - `load_then_store`: the atomic counter loads, then stores the value
///   plus one: two steps, not one.
#[test]
fn step05_counter_mistakes() {
    let mutex_line = "s.spawn(|| for _ in 0..per_thread { *count.lock().unwrap() += 1; });";
    let copy = reference_with(
        STEP5,
        COUNTER,
        mutex_line,
        "s.spawn(|| for _ in 0..per_thread {\n                let mut n = *count.lock().unwrap();\n                n += 1;\n            });",
    );
    let try_lock = reference_with(
        STEP5,
        COUNTER,
        mutex_line,
        "s.spawn(|| for _ in 0..per_thread {\n                // Never wait for the lock: another thread has it, so skip.\n                if let Ok(mut n) = count.try_lock() {\n                    *n += 1;\n                }\n            });",
    );
    let static_counter = format!(
        r#"use std::sync::atomic::{{AtomicU64, Ordering}};

// A static lives long enough for std::thread::spawn.
static COUNT: AtomicU64 = AtomicU64::new(0);

pub fn count_with_atomic(threads: usize, per_thread: u64) -> u64 {{
    let handles: Vec<_> = (0..threads)
        .map(|_| std::thread::spawn(move || for _ in 0..per_thread {{ COUNT.fetch_add(1, Ordering::Relaxed); }}))
        .collect();
    for handle in handles {{
        handle.join().unwrap();
    }}
    COUNT.load(Ordering::Relaxed)
}}

{}"#,
        mutex_counter()
    );
    let never_joined = format!(
        r#"pub fn count_with_atomic(threads: usize, per_thread: u64) -> u64 {{
    use std::sync::Arc;
    use std::sync::atomic::{{AtomicU64, Ordering}};
    let count = Arc::new(AtomicU64::new(0));
    for _ in 0..threads {{
        let count = Arc::clone(&count);
        std::thread::spawn(move || for _ in 0..per_thread {{ count.fetch_add(1, Ordering::Relaxed); }});
    }}
    count.load(Ordering::SeqCst)
}}

{}"#,
        mutex_counter()
    );

    let computes_the_total = format!(
        r#"pub fn count_with_atomic(threads: usize, per_thread: u64) -> u64 {{
    use std::sync::atomic::{{AtomicU64, Ordering}};
    // Every thread would add per_thread: add it all at once.
    let count = AtomicU64::new(0);
    count.fetch_add(threads as u64 * per_thread, Ordering::Relaxed);
    count.load(Ordering::Relaxed)
}}

{}"#,
        mutex_counter()
    );
    let load_then_store = reference_with(
        STEP5,
        COUNTER,
        "count.fetch_add(1, Ordering::Relaxed);",
        "let seen = count.load(Ordering::Relaxed); count.store(seen + 1, Ordering::Relaxed);",
    );
    let counts_on_the_caller = reference_with(
        STEP5,
        COUNTER,
        "    std::thread::scope(|s| {\n        for _ in 0..threads {\n            s.spawn(|| for _ in 0..per_thread { *count.lock().unwrap() += 1; });\n        }\n    });",
        "    // The lock makes the threads take turns anyway: count here.\n    for _ in 0..threads as u64 * per_thread {\n        *count.lock().unwrap() += 1;\n    }",
    );

    let graded = grade_mistakes(
        STEP5,
        &[
            ("copy", vec![(COUNTER, copy)]),
            ("try_lock", vec![(COUNTER, try_lock)]),
            ("static_counter", vec![(COUNTER, static_counter)]),
            ("never_joined", vec![(COUNTER, never_joined)]),
            ("computes_the_total", vec![(COUNTER, computes_the_total)]),
            ("load_then_store", vec![(COUNTER, load_then_store)]),
            (
                "counts_on_the_caller",
                vec![(COUNTER, counts_on_the_caller)],
            ),
        ],
    );
    eprintln!("{}", graded.json());
    assert_eq!(graded.code, 1);
    let hidden = "step05-counter-hidden";

    // The copy is incremented, the counter stays 0, from the first call on.
    graded.expect_of(
        "copy",
        hidden,
        Outcome::Failed,
        "assertion `left == right` failed: mutex counter with 1 threads",
    );
    graded.expect_of("copy", hidden, Outcome::Failed, "left: 0");
    graded.expect_of("copy", "step05-counter-test", Outcome::Failed, "left: 0");

    // One thread never finds the lock busy; eight do, and lose increments.
    graded.expect_of(
        "try_lock",
        hidden,
        Outcome::Failed,
        "assertion `left == right` failed: mutex counter with 8 threads",
    );
    let (counted, _) = left_right(graded.of("try_lock", hidden));
    assert!(
        counted.parse::<u64>().unwrap() < 40_000,
        "increments were skipped: {counted}"
    );

    // The public test makes the first call and passes; the hidden test's
    // second call (8 threads) counts on from its first (1 thread, 10).
    graded.expect_of(
        "static_counter",
        "step05-counter-test",
        Outcome::Passed,
        "passed",
    );
    graded.expect_of(
        "static_counter",
        hidden,
        Outcome::Failed,
        "assertion `left == right` failed: atomic counter with 8 threads",
    );
    graded.expect_of("static_counter", hidden, Outcome::Failed, "left: 40010");

    // Read before the threads are done: less than the total.
    graded.expect_of(
        "never_joined",
        hidden,
        Outcome::Failed,
        "assertion `left == right` failed: atomic counter with ",
    );
    let (counted, total) = left_right(graded.of("never_joined", hidden));
    assert!(
        counted.parse::<u64>().unwrap() < total.parse::<u64>().unwrap(),
        "read before the threads were done: {counted} of {total}"
    );
    // Right totals, but not counted: the CPU clock says so.
    graded.expect_of(
        "computes_the_total",
        "step05-counter-test",
        Outcome::Passed,
        "passed",
    );
    graded.expect_of(
        "computes_the_total",
        hidden,
        Outcome::Failed,
        "of CPU for 4 000 000 increments: each thread must add 1, per_thread times, each time with fetch_add. Adding up the total at once does not count",
    );
    // A load then a store: lost updates where threads meet (in the small
    // runs or in the 4 × 1 000 000 one), or, with the loop merged by the
    // compiler into one addition per thread (at `:opt 2`), too little CPU.
    // Whichever assert catches it, the message names the load and the store.
    let check = graded.of("load_then_store", hidden);
    assert_eq!(check.outcome, Outcome::Failed, "{check:#?}");
    let message = &check.message;
    assert!(
        message.contains("not a load then a store")
            || message.contains("nor does a load then a store"),
        "{check:#?}"
    );
    // Right totals, counted, but by the calling thread alone.
    graded.expect_of(
        "counts_on_the_caller",
        "step05-counter-test",
        Outcome::Passed,
        "passed",
    );
    graded.expect_of(
        "counts_on_the_caller",
        hidden,
        Outcome::Failed,
        "count_with_mutex must count on its threads, but the calling thread did ",
    );
    for mistake in ["computes_the_total", "counts_on_the_caller"] {
        graded.expect_of(
            mistake,
            &format!("{hidden}/results_equal"),
            Outcome::NotRun,
            "the test failed first: count_with_",
        );
        graded.expect_of(mistake, "step05-transfer-hidden", Outcome::Passed, "passed");
    }
    for mistake in ["copy", "try_lock", "static_counter", "never_joined"] {
        graded.expect_of(
            mistake,
            &format!("{hidden}/results_equal"),
            Outcome::NotRun,
            "the test failed first: assertion `left == right` failed: ",
        );
        graded.expect_of(mistake, "step05-transfer-hidden", Outcome::Passed, "passed");
    }
}

/// The reference's atomic counter, for submissions that rewrite only the
/// mutex one.
fn atomic_counter() -> String {
    let reference = reference_with(STEP5, COUNTER, "", "");
    let at = reference.find("pub fn count_with_mutex").unwrap();
    reference[..at].to_owned()
}

/// Step 5, counters that count right with the other tool.
///
/// - `atomic_in_both`: the mutex counter calls the atomic one ("an atomic
///   is a lock for one number, only faster");
/// - `std_mutex`: the mutex counter uses `std::sync::Mutex`, which the
///   checker cannot see;
/// - `lock_in_the_atomic`: the atomic counter increments a
///   `labkit::sync::Mutex<u64>`.
#[test]
fn step05_counter_tool_mistakes() {
    let atomic_in_both = format!(
        "{}pub fn count_with_mutex(threads: usize, per_thread: u64) -> u64 {{\n    // An atomic is a lock for one number, only faster.\n    count_with_atomic(threads, per_thread)\n}}\n",
        atomic_counter()
    );
    let std_mutex = reference_with(
        STEP5,
        COUNTER,
        "labkit::sync::Mutex::named(\"counter\", 0u64)",
        "std::sync::Mutex::new(0u64)",
    );
    let lock_in_the_atomic = format!(
        r#"pub fn count_with_atomic(threads: usize, per_thread: u64) -> u64 {{
    // A lock makes any counter exact.
    let count = labkit::sync::Mutex::new(0u64);
    std::thread::scope(|s| {{
        for _ in 0..threads {{
            s.spawn(|| for _ in 0..per_thread {{ *count.lock().unwrap() += 1; }});
        }}
    }});
    count.into_inner().unwrap()
}}

{}"#,
        mutex_counter()
    );
    let graded = grade_mistakes(
        STEP5,
        &[
            ("atomic_in_both", vec![(COUNTER, atomic_in_both)]),
            ("std_mutex", vec![(COUNTER, std_mutex)]),
            ("lock_in_the_atomic", vec![(COUNTER, lock_in_the_atomic)]),
        ],
    );
    eprintln!("{}", graded.json());
    assert_eq!(graded.code, 1);
    let hidden = "step05-counter-hidden";
    for mistake in ["atomic_in_both", "std_mutex"] {
        graded.expect_of(
            mistake,
            hidden,
            Outcome::Failed,
            "count_with_mutex counts with one labkit::sync::Mutex<u64> that its threads share, but no labkit lock was taken by more than 0 of its threads",
        );
    }
    graded.expect_of(
        "lock_in_the_atomic",
        hidden,
        Outcome::Failed,
        "count_with_atomic counts with an AtomicU64 (fetch_add), not a lock, but it took 400 labkit locks",
    );
    for mistake in ["atomic_in_both", "std_mutex", "lock_in_the_atomic"] {
        // Exact totals: only the tool is wrong.
        graded.expect_of(mistake, "step05-counter-test", Outcome::Passed, "passed");
        graded.expect_of(mistake, "step05-transfer-hidden", Outcome::Passed, "passed");
    }
}

/// Step 5, transfers.
///
/// - `one_at_a_time`: one lock at a time (take from, unlock, add to): no
///   deadlock, an exact total, but the money is in neither account while
///   the second lock is awaited; the hidden test holds account[1] and reads
///   account[0] while a transfer waits for it;
/// - `same_account`: ordered locking without the `from == to` case: a
///   transfer to the same account locks its mutex twice and deadlocks with
///   itself;
/// - `give_up`: `try_lock` both and do nothing if either is busy: never a
///   deadlock, and money is conserved, but contended transfers are lost;
/// - `wrong_direction`: locks in index order, then moves the money from the
///   first locked to the second, the wrong way when `from > to`;
/// - `read_then_write`: reads both balances, then writes both, each under
///   its own acquisition: concurrent transfers' updates are overwritten.
#[test]
fn step05_transfer_mistakes() {
    let one_at_a_time = r#"pub fn transfer(accounts: &[labkit::sync::Mutex<i64>], from: usize, to: usize, amount: i64) {
    // One lock at a time: never two held at once, so no deadlock is possible.
    *accounts[from].lock().unwrap() -= amount;
    *accounts[to].lock().unwrap() += amount;
}"#;
    let same_account = reference_with(
        STEP5,
        TRANSFER,
        "    if from == to {\n        return;\n    }\n",
        "",
    );
    let give_up = r#"pub fn transfer(accounts: &[labkit::sync::Mutex<i64>], from: usize, to: usize, amount: i64) {
    if from == to {
        return;
    }
    // try_lock never waits, so two transfers can never wait for each other.
    if let (Ok(mut source), Ok(mut target)) = (accounts[from].try_lock(), accounts[to].try_lock()) {
        *source -= amount;
        *target += amount;
    }
}"#;
    let wrong_direction = reference_with(
        STEP5,
        TRANSFER,
        "let (source, target) = if from < to { (&mut *a, &mut *b) } else { (&mut *b, &mut *a) };",
        "let (source, target) = (&mut *a, &mut *b);",
    );
    let read_then_write = r#"pub fn transfer(accounts: &[labkit::sync::Mutex<i64>], from: usize, to: usize, amount: i64) {
    if from == to {
        return;
    }
    // Read both balances, then write both: each lock is held only for a moment.
    let source = *accounts[from].lock().unwrap();
    let target = *accounts[to].lock().unwrap();
    *accounts[from].lock().unwrap() = source - amount;
    *accounts[to].lock().unwrap() = target + amount;
}"#;

    let graded = grade_mistakes(
        STEP5,
        &[
            ("one_at_a_time", vec![(TRANSFER, one_at_a_time.to_owned())]),
            ("same_account", vec![(TRANSFER, same_account)]),
            ("give_up", vec![(TRANSFER, give_up.to_owned())]),
            ("wrong_direction", vec![(TRANSFER, wrong_direction)]),
            (
                "read_then_write",
                vec![(TRANSFER, read_then_write.to_owned())],
            ),
        ],
    );
    eprintln!("{}", graded.json());
    assert_eq!(graded.code, 1);
    let hidden = "step05-transfer-hidden";
    // Caught between its two locks: account[0] already 10 short.
    graded.expect_of(
        "one_at_a_time",
        hidden,
        Outcome::Failed,
        "while the transfer waited for account[1], account[0] could already be read without the 10 it sent: the money was in neither account (hold both locks while you move it)",
    );
    graded.expect_of("one_at_a_time", hidden, Outcome::Failed, "left: 90");
    // Its lock order has no cycle and the public test's totals are right.
    graded.expect_of(
        "one_at_a_time",
        "step05-transfer-test",
        Outcome::Passed,
        "passed",
    );
    graded.expect_of(
        "one_at_a_time",
        "step05-transfer-test/no_lock_cycle",
        Outcome::Passed,
        "",
    );

    // The public test's transfer from account 1 to itself deadlocks at once.
    graded.expect_of(
        "same_account",
        "step05-transfer-test",
        Outcome::Failed,
        "step05-transfer-test hung: deadlock: ",
    );
    graded.expect_of(
        "same_account",
        "step05-transfer-test",
        Outcome::Failed,
        " waits for account[1], which it already holds",
    );
    graded.expect_of(
        "same_account",
        hidden,
        Outcome::NotRun,
        "not run: step05-transfer-test hung",
    );

    // The transfer that met a busy account did nothing.
    graded.expect_of(
        "give_up",
        hidden,
        Outcome::Failed,
        "assertion `left == right` failed: a transfer waits for a busy account, then moves the money",
    );
    graded.expect_of("give_up", hidden, Outcome::Failed, "left: [100, 100]");
    graded.expect_of("give_up", "step05-transfer-test", Outcome::Passed, "passed");

    // The total is right, the accounts are not.
    graded.expect_of(
        "wrong_direction",
        hidden,
        Outcome::Failed,
        "assertion `left == right` failed: every transfer up is matched by one down, so each account ends where it started",
    );
    graded.expect_of(
        "wrong_direction",
        "step05-transfer-test",
        Outcome::Failed,
        "right: [75, 105, 120]",
    );

    // Overwritten updates create or destroy money, or at least leave the
    // accounts where no sequence of transfers could have.
    expect_one_of(
        &graded,
        "read_then_write",
        hidden,
        &[
            "assertion `left == right` failed: money is neither created nor lost",
            "assertion `left == right` failed: every transfer up is matched by one down",
        ],
    );
    for mistake in [
        "one_at_a_time",
        "give_up",
        "wrong_direction",
        "read_then_write",
    ] {
        graded.expect_of(
            mistake,
            &format!("{hidden}/results_equal"),
            Outcome::NotRun,
            "the test failed first: assertion `left == right` failed: ",
        );
        graded.expect_of(mistake, "step05-counter-hidden", Outcome::Passed, "passed");
    }
}

const STEP6: &str = "06-pipelines.ipynb";
const QUEUE: &str = "step06-bounded-queue";
const PIPELINE: &str = "step06-pipeline";

/// Step 6, bounded queues.
///
/// - `close_wakes_consumers_only`: close notifies `not_empty` but not
///   `not_full`: producers blocked on a full queue sleep on;
/// - `push_forgets_closed`: push waits while the queue is full, closed or
///   not: woken by close, a blocked producer goes back to sleep;
/// - `pop_forgets_closed`: pop waits while the queue is empty, closed or
///   not: once closed and empty, pop never returns None;
/// - `drops_oldest`: a full queue makes room by dropping its oldest item
///   instead of making the producer wait;
/// - `pop_forgets_not_full`: pop never notifies `not_full`: a producer
///   blocked on a full queue is never woken;
/// - `push_forgets_not_empty`: push never notifies `not_empty`: a consumer
///   already waiting on the empty queue is never woken;
/// - `pop_does_not_wait`: pop returns None at once on an empty queue;
/// - `notify_before_push`: push notifies `not_empty` before it takes the
///   lock and pushes: a waiting consumer can wake too early, find nothing
///   and wait again for a notify that never comes.
#[test]
fn step06_queue_mistakes() {
    let push_wait = "let mut state = self.not_full.wait_while(state, |s| s.items.len() >= self.capacity && !s.closed).unwrap();\n";
    let pop_wait = "let mut state = self.not_empty.wait_while(state, |s| s.items.is_empty() && !s.closed).unwrap();\n";
    let close_wakes_consumers_only = reference_with(
        STEP6,
        QUEUE,
        "        self.not_empty.notify_all();\n        self.not_full.notify_all();\n",
        "        self.not_empty.notify_all(); // wake the consumers: they return None\n",
    );
    let push_forgets_closed = reference_with(
        STEP6,
        QUEUE,
        "|s| s.items.len() >= self.capacity && !s.closed",
        "|s| s.items.len() >= self.capacity",
    );
    let pop_forgets_closed = reference_with(
        STEP6,
        QUEUE,
        "|s| s.items.is_empty() && !s.closed",
        "|s| s.items.is_empty()",
    );
    let drops_oldest = reference_with(
        STEP6,
        QUEUE,
        &format!("        let state = self.state.lock().unwrap();\n        {push_wait}"),
        "        let mut state = self.state.lock().unwrap();\n        if state.items.len() >= self.capacity {\n            state.items.pop_front(); // full: make room by dropping the oldest item\n        }\n",
    );
    let pop_forgets_not_full = reference_with(
        STEP6,
        QUEUE,
        "        if item.is_some() {\n            self.not_full.notify_one();\n        }\n",
        "",
    );
    let push_forgets_not_empty = reference_with(
        STEP6,
        QUEUE,
        "        drop(state);\n        self.not_empty.notify_one();\n        Ok(())",
        "        Ok(())",
    );
    let notify_before_push = replaced(
        reference_with(
            STEP6,
            QUEUE,
            &format!("        let state = self.state.lock().unwrap();\n        {push_wait}"),
            &format!(
                "        self.not_empty.notify_one(); // wake a consumer: an item is on its way\n        let state = self.state.lock().unwrap();\n        {push_wait}"
            ),
        ),
        "        drop(state);\n        self.not_empty.notify_one();\n        Ok(())",
        "        Ok(())",
    );
    let pop_does_not_wait = reference_with(
        STEP6,
        QUEUE,
        &format!("        let state = self.state.lock().unwrap();\n        {pop_wait}"),
        "        let mut state = self.state.lock().unwrap();\n",
    );

    let graded = grade_mistakes(
        STEP6,
        &[
            (
                "close_wakes_consumers_only",
                vec![(QUEUE, close_wakes_consumers_only)],
            ),
            ("push_forgets_closed", vec![(QUEUE, push_forgets_closed)]),
            ("pop_forgets_closed", vec![(QUEUE, pop_forgets_closed)]),
            ("drops_oldest", vec![(QUEUE, drops_oldest)]),
            ("pop_forgets_not_full", vec![(QUEUE, pop_forgets_not_full)]),
            (
                "push_forgets_not_empty",
                vec![(QUEUE, push_forgets_not_empty)],
            ),
            ("pop_does_not_wait", vec![(QUEUE, pop_does_not_wait)]),
            ("notify_before_push", vec![(QUEUE, notify_before_push)]),
        ],
    );
    eprintln!("{}", graded.json());
    assert_eq!(graded.code, 1);
    let hidden = "step06-bounded-queue-hidden";

    // Two producers wait on a full queue when it is closed: nobody wakes
    // them, or they go back to sleep.
    for mistake in ["close_wakes_consumers_only", "push_forgets_closed"] {
        for id in [hidden.to_owned(), format!("{hidden}/no_hang")] {
            graded.expect_of(
                mistake,
                &id,
                Outcome::Failed,
                "step06-bounded-queue-hidden hung: unnamed thread ",
            );
            graded.expect_of(
                mistake,
                &id,
                Outcome::Failed,
                " waits on condition variable not_full that nobody notifies",
            );
        }
        graded.expect_of(
            mistake,
            "step06-bounded-queue-test",
            Outcome::Passed,
            "passed",
        );
    }

    // The public test pops its closed, emptied queue once more.
    graded.expect_of(
        "pop_forgets_closed",
        "step06-bounded-queue-test",
        Outcome::Failed,
        "step06-bounded-queue-test hung: main waits on condition variable not_empty that nobody notifies",
    );
    graded.expect_of(
        "pop_forgets_closed",
        hidden,
        Outcome::NotRun,
        "not run: step06-bounded-queue-test hung",
    );

    // Nothing ever blocks the producer: all 10 went in.
    graded.expect_of(
        "drops_oldest",
        hidden,
        Outcome::Failed,
        "assertion `left == right` failed: with nobody popping, the producer blocks after exactly `capacity` items",
    );
    graded.expect_of("drops_oldest", hidden, Outcome::Failed, "left: 10");
    graded.expect_of(
        "drops_oldest",
        &format!("{hidden}/bounded"),
        Outcome::NotRun,
        "the test failed first: assertion `left == right` failed: with nobody popping, the producer blocks after exactly `capacity` items",
    );

    // The producer stays blocked after the queue's first 3 items, and the
    // consumer waits for a fourth: both are named, with what they wait on.
    graded.expect_of(
        "pop_forgets_not_full",
        hidden,
        Outcome::Failed,
        "step06-bounded-queue-hidden hung: main waits on condition variable not_empty that nobody notifies; unnamed thread ",
    );
    graded.expect_of(
        "pop_forgets_not_full",
        hidden,
        Outcome::Failed,
        " waits on not_full, unnotified too",
    );

    // A consumer already waiting when the item comes is never woken.
    graded.expect_of(
        "push_forgets_not_empty",
        hidden,
        Outcome::Failed,
        "step06-bounded-queue-hidden hung: unnamed thread ",
    );
    graded.expect_of(
        "push_forgets_not_empty",
        hidden,
        Outcome::Failed,
        " waits on condition variable not_empty that nobody notifies",
    );
    // Unnamed threads are numbered in the cell; their tids are only in the
    // folded details.
    let message = graded.of("push_forgets_not_empty", hidden).message.clone();
    let numbers: Vec<u64> = message
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert!(numbers.iter().all(|&n| n < 100), "a tid in {message:?}");

    // The notify comes before the item: the waiting consumer wakes, finds
    // the queue empty and waits again, and the item that follows wakes
    // nobody. A first run often shows it by itself (the 10 items make many
    // races); in perturbed runs the notifier pauses after a notify made
    // holding no lock, so the consumer always gets there first.
    graded.expect_of(
        "notify_before_push",
        hidden,
        Outcome::Failed,
        " waits on condition variable not_empty that nobody notifies",
    );

    // The consumer that should have waited got nothing.
    graded.expect_of(
        "pop_does_not_wait",
        hidden,
        Outcome::Failed,
        "assertion `left == right` failed: pop on an empty queue waits until an item is pushed, then returns it",
    );
    graded.expect_of("pop_does_not_wait", hidden, Outcome::Failed, "left: None");
    graded.expect_of(
        "pop_does_not_wait",
        "step06-bounded-queue-test",
        Outcome::Passed,
        "passed",
    );
    for mistake in [
        "close_wakes_consumers_only",
        "push_forgets_closed",
        "drops_oldest",
        "pop_forgets_not_full",
        "push_forgets_not_empty",
        "pop_does_not_wait",
    ] {
        assert_eq!(graded.of(mistake, hidden).score, 0.0, "{mistake}");
    }
}

/// Step 6, pipelines.
///
/// - `completion_order`: the results are collected as they arrive, in
///   completion order;
/// - `result_sender_kept`: the calling thread never drops its `result_tx`,
///   so the aggregating loop never ends;
/// - `aggregate_after_join`: the results are read only after the scope has
///   joined the workers, who block on the full bounded result channel;
/// - `recv_unwrap`: workers `recv().unwrap()` in a loop and panic when the
///   reader is done and the channel closes;
/// - `unbounded`: unbounded channels: the reader runs ahead of the parsers
///   with no backpressure;
/// - `no_read_spans`: the reader sends without `in_span("read", ..)`, so
///   nothing would show whether it was held back;
/// - `two_readers`: two reader threads send half of the lines each;
/// - `caller_reads`: the calling thread sends the lines and a thread of its
///   own collects the results.
#[test]
fn step06_pipeline_mistakes() {
    let collect = "        let mut results = vec![0u64; count];\n        for (index, value) in result_rx {\n            results[index] = value;\n        }\n        results\n";
    let drop_result_tx = "        drop(result_tx); // the workers hold the only senders: the loop below ends with them\n";
    let completion_order = reference_with(
        STEP6,
        PIPELINE,
        collect,
        "        let _ = count;\n        result_rx.into_iter().map(|(_, value)| value).collect()\n",
    );
    let result_sender_kept = reference_with(STEP6, PIPELINE, drop_result_tx, "");
    let aggregate_after_join = reference_with(
        STEP6,
        PIPELINE,
        &format!("{drop_result_tx}{collect}    }})\n"),
        "    });\n    // Every worker is done: collect what they sent.\n    drop(result_tx);\n    let mut results = vec![0u64; count];\n    for (index, value) in result_rx {\n        results[index] = value;\n    }\n    results\n",
    );
    let recv_unwrap = reference_with(
        STEP6,
        PIPELINE,
        "                for (index, line) in line_rx {\n",
        "                loop {\n                    let (index, line) = line_rx.recv().unwrap();\n",
    );
    let unbounded = reference_with(
        STEP6,
        PIPELINE,
        "let (line_tx, line_rx) = crossbeam::channel::bounded::<(usize, String)>(capacity.max(1));\n    let (result_tx, result_rx) = crossbeam::channel::bounded::<(usize, u64)>(capacity.max(1));",
        "// Unbounded: the reader never has to wait for the parsers.\n    let _ = capacity;\n    let (line_tx, line_rx) = crossbeam::channel::unbounded::<(usize, String)>();\n    let (result_tx, result_rx) = crossbeam::channel::unbounded::<(usize, u64)>();",
    );

    let read = "        s.spawn(move || {\n            for item in lines.into_iter().enumerate() {\n                labkit::in_span(\"read\", item.0 as u64, || line_tx.send(item)).unwrap();\n            }\n        });\n";
    let no_read_spans = reference_with(
        STEP6,
        PIPELINE,
        read,
        "        s.spawn(move || {\n            for item in lines.into_iter().enumerate() {\n                line_tx.send(item).unwrap();\n            }\n        });\n",
    );
    let two_readers = reference_with(
        STEP6,
        PIPELINE,
        read,
        "        // Two readers, half of the lines each: reading is twice as fast.\n        let mut lines = lines;\n        let second = lines.split_off(count / 2);\n        for (offset, part) in [(0, lines), (count / 2, second)] {\n            let line_tx = line_tx.clone();\n            s.spawn(move || {\n                for (i, line) in part.into_iter().enumerate() {\n                    let index = offset + i;\n                    labkit::in_span(\"read\", index as u64, || line_tx.send((index, line))).unwrap();\n                }\n            });\n        }\n        drop(line_tx);\n",
    );
    let caller_reads = reference_with(STEP6, PIPELINE, read, "").replace(
        "        drop(result_tx); // the workers hold the only senders: the loop below ends with them\n        let mut results = vec![0u64; count];\n        for (index, value) in result_rx {\n            results[index] = value;\n        }\n        results\n",
        "        drop(result_tx);\n        // A thread collects, so that the calling thread can read.\n        let aggregator = s.spawn(move || {\n            let mut results = vec![0u64; count];\n            for (index, value) in result_rx {\n                results[index] = value;\n            }\n            results\n        });\n        for item in lines.into_iter().enumerate() {\n            labkit::in_span(\"read\", item.0 as u64, || line_tx.send(item)).unwrap();\n        }\n        drop(line_tx);\n        aggregator.join().unwrap()\n",
    );
    assert!(caller_reads.contains("aggregator.join()"), "{caller_reads}");

    let graded = grade_mistakes(
        STEP6,
        &[
            ("completion_order", vec![(PIPELINE, completion_order)]),
            ("result_sender_kept", vec![(PIPELINE, result_sender_kept)]),
            (
                "aggregate_after_join",
                vec![(PIPELINE, aggregate_after_join)],
            ),
            ("recv_unwrap", vec![(PIPELINE, recv_unwrap)]),
            ("unbounded", vec![(PIPELINE, unbounded)]),
            ("no_read_spans", vec![(PIPELINE, no_read_spans)]),
            ("two_readers", vec![(PIPELINE, two_readers)]),
            ("caller_reads", vec![(PIPELINE, caller_reads)]),
        ],
    );
    eprintln!("{}", graded.json());
    assert_eq!(graded.code, 1);
    let hidden = "step06-pipeline-hidden";
    graded.expect_of(
        "completion_order",
        hidden,
        Outcome::Failed,
        "assertion `left == right` failed: nothing lost or duplicated, in input order",
    );
    graded.expect_of(
        "completion_order",
        &format!("{hidden}/input_order"),
        Outcome::NotRun,
        "the test failed first: assertion `left == right` failed: nothing lost or duplicated, in input order",
    );
    // Every line was parsed once: only the order is wrong.
    graded.expect_of(
        "completion_order",
        &format!("{hidden}/exactly_once(parse)"),
        Outcome::Passed,
        "",
    );

    // The public test is the first to call pipeline: it hangs.
    for mistake in ["result_sender_kept", "aggregate_after_join"] {
        graded.expect_of(
            mistake,
            "step06-pipeline-test",
            Outcome::Failed,
            "step06-pipeline-test hung: all threads are blocked, none on a labkit lock or condition variable: most often a receiver waiting on a channel that never closes, because a Sender (or a clone of one) is still alive somewhere",
        );
        graded.expect_of(
            mistake,
            hidden,
            Outcome::NotRun,
            "not run: step06-pipeline-test hung",
        );
    }

    // The workers' panics, on stderr, say why the scope panicked.
    for id in ["step06-pipeline-test", hidden] {
        graded.expect_of(
            "recv_unwrap",
            id,
            Outcome::Failed,
            "a scoped thread panicked",
        );
        graded.expect_of(
            "recv_unwrap",
            id,
            Outcome::Failed,
            "called `Result::unwrap()` on an `Err` value: RecvError",
        );
    }

    // The results are right, the reader was never held back.
    graded.expect_of(
        "unbounded",
        hidden,
        Outcome::Failed,
        " lines ahead of the parsers: join the stages with bounded(capacity) channels, so that a full channel makes the reader wait",
    );
    graded.expect_of(
        "unbounded",
        "step06-pipeline-test",
        Outcome::Passed,
        "passed",
    );
    // Without read spans the backpressure check would see nothing.
    graded.expect_of(
        "no_read_spans",
        hidden,
        Outcome::Failed,
        "every line sent once, inside labkit::in_span(",
    );
    graded.expect_of(
        "two_readers",
        hidden,
        Outcome::Failed,
        "one reader thread sends every line, but 2 threads sent some",
    );
    graded.expect_of(
        "caller_reads",
        hidden,
        Outcome::Failed,
        "the calling thread sent the lines itself: one reader thread of its own sends them, while the calling thread collects the results",
    );
    for mistake in ["no_read_spans", "two_readers", "caller_reads"] {
        graded.expect_of(mistake, "step06-pipeline-test", Outcome::Passed, "passed");
    }
    for mistake in [
        "completion_order",
        "result_sender_kept",
        "aggregate_after_join",
        "recv_unwrap",
        "unbounded",
        "no_read_spans",
        "two_readers",
        "caller_reads",
    ] {
        graded.expect_of(
            mistake,
            "step06-bounded-queue-hidden",
            Outcome::Passed,
            "passed",
        );
    }
}

const STEP7: &str = "07-semaphores.ipynb";
const SEMAPHORE: &str = "step07-semaphore";
const DOWNLOADS: &str = "step07-limited-downloads";

/// Step 7, semaphores and limited downloads.
///
/// Semaphores:
/// - `release_without_notify`: dropping a permit gives it back but wakes
///   nobody: threads waiting for one sleep on;
/// - `notify_before_release`: dropping a permit notifies, then gives the
///   permit back: the woken waiter can find none and wait again;
/// - `permit_holds_the_lock`: the permit is the mutex guard itself, so a
///   thread holding one permit cannot take a second: the public test
///   deadlocks with itself;
/// - `release_method`: as in Python, a `release(self)` method gives the
///   permit back, and nothing does when a `Permit` is dropped;
/// - `wait_under_if`: waits under `if` instead of `while`: after a spurious
///   wakeup (or another thread taking the permit first) it takes a permit
///   that is not there.
///
/// Downloads:
/// - `let_underscore`: `let _ = semaphore.acquire();` drops the permit at
///   once: no limit at all;
/// - `semaphore_per_thread`: each thread makes its own semaphore: no limit;
/// - `join_in_the_loop`: each download thread is joined right after it is
///   spawned: one download at a time;
/// - `while_let_pool`: a pool of `limit` threads taking work with
///   `while let Some(..) = work.lock().unwrap().next()`, whose guard lives
///   through the loop's body: one download at a time;
/// - `pool_of_limit_threads`: a pool of `limit` threads that take the next
///   URL from a shared iterator, no semaphore: the limit is kept and
///   reached, but not by one thread per URL held back by the `Semaphore`;
/// - `token_channel`: one thread per URL, held back by a bounded channel of
///   `limit` tokens instead of the `Semaphore`.
#[test]
fn step07_semaphore_and_download_mistakes() {
    let release_without_notify = reference_with(
        STEP7,
        SEMAPHORE,
        "        self.semaphore.released.notify_one();\n",
        "",
    );
    let notify_before_release = reference_with(
        STEP7,
        SEMAPHORE,
        "        *self.semaphore.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;\n        self.semaphore.released.notify_one();\n",
        "        self.semaphore.released.notify_one(); // a permit is coming back\n        *self.semaphore.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;\n",
    );
    let permit_holds_the_lock = r#"pub struct Semaphore {
    free: labkit::sync::Mutex<usize>,
    released: labkit::sync::Condvar,
}

// The permit keeps the lock: nobody can change the count while it is held.
pub struct Permit<'a> {
    free: labkit::sync::MutexGuard<'a, usize>,
}

impl Semaphore {
    pub fn new(permits: usize) -> Semaphore {
        Semaphore {
            free: labkit::sync::Mutex::named("permits", permits),
            released: labkit::sync::Condvar::named("released"),
        }
    }

    pub fn acquire(&self) -> Permit<'_> {
        let free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        let mut free = self.released.wait_while(free, |free| *free == 0).unwrap_or_else(|p| p.into_inner());
        *free -= 1;
        Permit { free }
    }

    pub fn available(&self) -> usize {
        *self.free.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.free += 1;
    }
}"#;
    // As in Python: acquire(), then release() when done.
    let release_method = reference_with(
        STEP7,
        SEMAPHORE,
        "impl Drop for Permit<'_> {\n    fn drop(&mut self) {\n",
        "impl Permit<'_> {\n    pub fn release(self) {\n",
    );
    let wait_under_if = reference_with(
        STEP7,
        SEMAPHORE,
        "        let free = self.free.lock().unwrap_or_else(|p| p.into_inner());\n        let mut free = self.released.wait_while(free, |free| *free == 0).unwrap_or_else(|p| p.into_inner());\n",
        "        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());\n        if *free == 0 {\n            free = self.released.wait(free).unwrap_or_else(|p| p.into_inner());\n        }\n",
    );

    let download = "labkit::in_span(\"download\", index as u64, || labkit::work::fetch(url, std::time::Duration::from_millis(40)))";
    let let_underscore = reference_with(
        STEP7,
        DOWNLOADS,
        "let _permit = semaphore.acquire();",
        "let _ = semaphore.acquire();",
    );
    let semaphore_per_thread = reference_with(
        STEP7,
        DOWNLOADS,
        "                let semaphore = &semaphore;\n                s.spawn(move || {\n",
        "                s.spawn(move || {\n                    let semaphore = Semaphore::new(limit.max(1));\n",
    )
    .replace("    let semaphore = Semaphore::new(limit.max(1));\n    std::thread::scope", "    std::thread::scope");
    let join_in_the_loop = format!(
        r#"pub fn download_all(urls: &[String], limit: usize) -> Vec<String> {{
    let semaphore = Semaphore::new(limit.max(1));
    std::thread::scope(|s| {{
        urls.iter()
            .enumerate()
            .map(|(index, url)| {{
                let semaphore = &semaphore;
                s.spawn(move || {{
                    let _permit = semaphore.acquire();
                    {download}
                }})
                .join()
                .unwrap()
            }})
            .collect()
    }})
}}"#
    );
    let while_let_pool = r#"pub fn download_all(urls: &[String], limit: usize) -> Vec<String> {
    // A pool of `limit` threads: at most `limit` downloads at once, no semaphore needed.
    let work = labkit::sync::Mutex::named("work", urls.iter().enumerate());
    let pages = labkit::sync::Mutex::named("pages", vec![String::new(); urls.len()]);
    std::thread::scope(|s| {
        for _ in 0..limit.max(1) {
            s.spawn(|| {
                while let Some((index, url)) = work.lock().unwrap().next() {
                    let page = labkit::in_span("download", index as u64, || labkit::work::fetch(url, std::time::Duration::from_millis(40)));
                    pages.lock().unwrap()[index] = page;
                }
            });
        }
    });
    pages.into_inner().unwrap()
}"#;

    let pool_of_limit_threads = r#"pub fn download_all(urls: &[String], limit: usize) -> Vec<String> {
    // A pool of `limit` threads: at most `limit` downloads at once, no semaphore needed.
    let work = labkit::sync::Mutex::named("work", urls.iter().enumerate());
    let pages = labkit::sync::Mutex::named("pages", vec![String::new(); urls.len()]);
    std::thread::scope(|s| {
        for _ in 0..limit.max(1) {
            s.spawn(|| loop {
                let Some((index, url)) = work.lock().unwrap().next() else { break };
                let page = labkit::in_span("download", index as u64, || labkit::work::fetch(url, std::time::Duration::from_millis(40)));
                pages.lock().unwrap()[index] = page;
            });
        }
    });
    pages.into_inner().unwrap()
}"#;

    let token_channel = format!(
        r#"pub fn download_all(urls: &[String], limit: usize) -> Vec<String> {{
    // A channel of `limit` tokens is a semaphore too: take one to download, put it back after.
    let (give_back, tokens) = crossbeam::channel::bounded(limit.max(1));
    for _ in 0..limit.max(1) {{
        give_back.send(()).unwrap();
    }}
    std::thread::scope(|s| {{
        let downloads: Vec<_> = urls
            .iter()
            .enumerate()
            .map(|(index, url)| {{
                let (give_back, tokens) = (give_back.clone(), tokens.clone());
                s.spawn(move || {{
                    tokens.recv().unwrap();
                    let page = {download};
                    give_back.send(()).unwrap();
                    page
                }})
            }})
            .collect();
        downloads.into_iter().map(|d| d.join().unwrap()).collect()
    }})
}}"#
    );

    let graded = grade_mistakes(
        STEP7,
        &[
            (
                "release_without_notify",
                vec![(SEMAPHORE, release_without_notify)],
            ),
            (
                "notify_before_release",
                vec![(SEMAPHORE, notify_before_release)],
            ),
            (
                "permit_holds_the_lock",
                vec![(SEMAPHORE, permit_holds_the_lock.to_owned())],
            ),
            ("release_method", vec![(SEMAPHORE, release_method)]),
            ("wait_under_if", vec![(SEMAPHORE, wait_under_if)]),
            ("let_underscore", vec![(DOWNLOADS, let_underscore)]),
            (
                "semaphore_per_thread",
                vec![(DOWNLOADS, semaphore_per_thread)],
            ),
            ("join_in_the_loop", vec![(DOWNLOADS, join_in_the_loop)]),
            (
                "while_let_pool",
                vec![(DOWNLOADS, while_let_pool.to_owned())],
            ),
            (
                "pool_of_limit_threads",
                vec![(DOWNLOADS, pool_of_limit_threads.to_owned())],
            ),
            ("token_channel", vec![(DOWNLOADS, token_channel)]),
        ],
    );
    eprintln!("{}", graded.json());
    assert_eq!(graded.code, 1);
    let hidden = "step07-semaphore-hidden";

    // The first 3 holders give their permits back; the other 6 sleep on.
    for id in [hidden.to_owned(), format!("{hidden}/no_hang")] {
        graded.expect_of(
            "release_without_notify",
            &id,
            Outcome::Failed,
            "step07-semaphore-hidden hung: unnamed thread ",
        );
        graded.expect_of(
            "release_without_notify",
            &id,
            Outcome::Failed,
            " waits on condition variable released that nobody notifies",
        );
    }
    graded.expect_of(
        "release_without_notify",
        "step07-semaphore-test",
        Outcome::Passed,
        "passed",
    );

    // The notify comes before the permit: the woken waiter finds none and
    // waits again, and the permit that follows wakes nobody (forced in
    // perturbed runs, as for the queue's push).
    graded.expect_of(
        "notify_before_release",
        hidden,
        Outcome::Failed,
        " waits on condition variable released that nobody notifies",
    );

    // The public test takes two permits on one thread.
    graded.expect_of(
        "permit_holds_the_lock",
        "step07-semaphore-test",
        Outcome::Failed,
        "step07-semaphore-test hung: deadlock: main waits for permits, which it already holds",
    );
    graded.expect_of(
        "permit_holds_the_lock",
        hidden,
        Outcome::NotRun,
        "not run: step07-semaphore-test hung",
    );

    // Nothing gives a dropped permit back: the public test says so, and in
    // the hidden test the first 3 holders keep theirs forever.
    graded.expect_of(
        "release_method",
        "step07-semaphore-test",
        Outcome::Failed,
        "assertion `left == right` failed: dropping a permit gives it back",
    );
    for id in [hidden.to_owned(), format!("{hidden}/no_hang")] {
        graded.expect_of(
            "release_method",
            &id,
            Outcome::Failed,
            "step07-semaphore-hidden hung: unnamed thread ",
        );
        graded.expect_of(
            "release_method",
            &id,
            Outcome::Failed,
            " waits on condition variable released that nobody notifies",
        );
    }

    // Under the checker's perturbed schedules a thread's first wait always
    // wakes spuriously: the `if` lets it take a permit that is not there.
    graded.expect_of(
        "wait_under_if",
        hidden,
        Outcome::Failed,
        "a scoped thread panicked",
    );
    graded.expect_of(
        "wait_under_if",
        hidden,
        Outcome::Failed,
        "attempt to subtract with overflow",
    );
    graded.expect_of(
        "wait_under_if",
        "step07-semaphore-test",
        Outcome::Passed,
        "passed",
    );

    let hidden = "step07-limited-downloads-hidden";
    // All 10 at once, however the permits are taken.
    for mistake in ["let_underscore", "semaphore_per_thread"] {
        graded.expect_of(
            mistake,
            &format!("{hidden}/max_inside(download)"),
            Outcome::Failed,
            "at most 3 may be inside download at once, but ",
        );
        graded.expect_of(
            mistake,
            hidden,
            Outcome::Failed,
            "at most 3 downloads at once",
        );
        graded.expect_of(
            mistake,
            "step07-limited-downloads-test/max_inside(download)",
            Outcome::Failed,
            "at most 2 downloads at once: at most 2 may be inside download at once, but ",
        );
    }
    // One at a time: the limit is respected, never reached.
    for mistake in ["join_in_the_loop", "while_let_pool"] {
        graded.expect_of(
            mistake,
            &format!("{hidden}/min_inside(download)"),
            Outcome::Failed,
            "download should reach 3 at once, but at most 1 were inside at once",
        );
        graded.expect_of(
            mistake,
            &format!("{hidden}/max_inside(download)"),
            Outcome::Passed,
            "",
        );
        graded.expect_of(
            mistake,
            "step07-limited-downloads-test",
            Outcome::Passed,
            "passed",
        );
    }
    graded.expect_of(
        "join_in_the_loop",
        hidden,
        Outcome::Failed,
        "assertion `left == right` failed: 3 at once is reached",
    );
    // A pool keeps the limit without the semaphore: its threads are counted.
    for mistake in ["while_let_pool", "pool_of_limit_threads"] {
        graded.expect_of(
            mistake,
            hidden,
            Outcome::Failed,
            "download_all starts one thread per URL and lets your Semaphore hold all but `limit` of them back, but the 10 downloads ran on ",
        );
    }
    graded.expect_of(
        "pool_of_limit_threads",
        &format!("{hidden}/max_inside(download)"),
        Outcome::Passed,
        "",
    );
    graded.expect_of(
        "pool_of_limit_threads",
        "step07-limited-downloads-test",
        Outcome::Passed,
        "passed",
    );
    // One thread per URL, the limit kept and reached, but not by the
    // Semaphore: no download thread took its lock.
    graded.expect_of(
        "token_channel",
        hidden,
        Outcome::Failed,
        "download_all holds the downloads back with your Semaphore (its acquire takes its labkit::sync::Mutex), but 10 of the 10 download threads took no labkit lock before downloading",
    );
    for property in ["max_inside(download)", "min_inside(download)", "no_leaks"] {
        graded.expect_of(
            "token_channel",
            &format!("{hidden}/{property}"),
            Outcome::Passed,
            "",
        );
    }
    graded.expect_of(
        "token_channel",
        "step07-limited-downloads-test",
        Outcome::Passed,
        "passed",
    );
    for mistake in [
        "let_underscore",
        "semaphore_per_thread",
        "join_in_the_loop",
        "while_let_pool",
        "pool_of_limit_threads",
        "token_channel",
    ] {
        graded.expect_of(
            mistake,
            "step07-semaphore-hidden",
            Outcome::Passed,
            "passed",
        );
    }
}

const STEP8: &str = "08-capstone-hybrid.ipynb";
const HYBRID: &str = "step08-hybrid";

/// Step 8, the hybrid.
///
/// - `sequential_analysis`: the pages are fetched on the limited pool, but
///   analysed one after another on the calling thread;
/// - `one_analysis_thread`: one analysis thread does all the CPU work while
///   the fetchers wait on the network;
/// - `fetcher_per_url`: one fetch thread per URL, whatever the fetch limit;
/// - `workers_keep_a_sender`: each fetch worker keeps a Sender of its own
///   work queue (to put back a failed URL), so the queue never closes and
///   the workers, never joined, outlive the call.
#[test]
fn step08_hybrid_mistakes() {
    let analyse_in_parallel = "        pages_rx.into_iter().par_bridge().for_each_with(facts.clone(), |facts, (index, page)| {\n";
    let sequential_analysis = reference_with(
        STEP8,
        HYBRID,
        analyse_in_parallel,
        "        // Analyse each page as it arrives.\n        pages_rx.into_iter().for_each(|(index, page)| {\n",
    );
    let one_analysis_thread = reference_with(
        STEP8,
        HYBRID,
        &format!("{analyse_in_parallel}            let fact = labkit::in_span(\"analyse\", index as u64, || {{\n                (index, page.split_whitespace().count() as u64, labkit::work::hash_rounds(page.as_bytes(), 2_000))\n            }});\n            facts.send(fact).unwrap();\n        }});\n"),
        "        // An analysis thread: it works while the fetchers wait on the network.\n        let facts = facts.clone();\n        s.spawn(move || {\n            for (index, page) in pages_rx {\n                let fact = labkit::in_span(\"analyse\", index as u64, || {\n                    (index, page.split_whitespace().count() as u64, labkit::work::hash_rounds(page.as_bytes(), 2_000))\n                });\n                facts.send(fact).unwrap();\n            }\n        });\n",
    )
    .replace("    use rayon::prelude::*;\n", "");
    let fetcher_per_url = reference_with(
        STEP8,
        HYBRID,
        "        for _ in 0..fetch_limit.max(1) {\n",
        "        // One fetcher per URL: the network is not the CPU, so more threads are free.\n        for _ in 0..urls.len() {\n",
    );
    let workers_keep_a_sender = r#"#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub pages: usize,
    pub words: u64,
    pub fingerprint: u64,
}

pub fn analyse(urls: &[String], fetch_limit: usize) -> Report {
    use rayon::prelude::*;
    // The fetch pool: `fetch_limit` threads take URLs from a work queue. Each keeps a
    // Sender of that queue, to put a URL back if its fetch fails.
    let (work_tx, work_rx) = crossbeam::channel::unbounded::<(usize, String)>();
    let (pages_tx, pages_rx) = crossbeam::channel::bounded::<(usize, String)>(fetch_limit.max(1));
    for _ in 0..fetch_limit.max(1) {
        let (retry, work_rx, pages_tx) = (work_tx.clone(), work_rx.clone(), pages_tx.clone());
        std::thread::spawn(move || {
            let _retry = retry;
            for (index, url) in work_rx {
                let page = labkit::in_span("fetch", index as u64, || labkit::work::fetch(&url, std::time::Duration::from_millis(40)));
                pages_tx.send((index, page)).unwrap();
            }
        });
    }
    for (index, url) in urls.iter().enumerate() {
        work_tx.send((index, url.clone())).unwrap();
    }
    // The aggregator actor owns the report.
    let (facts, inbox) = crossbeam::channel::unbounded::<(usize, u64, u64)>();
    let aggregator = std::thread::spawn(move || {
        let mut report = Report { pages: 0, words: 0, fingerprint: 0 };
        for (index, words, hash) in inbox {
            labkit::in_span("aggregate", index as u64, || {
                report.pages += 1;
                report.words += words;
                report.fingerprint ^= hash;
            });
        }
        report
    });
    // CPU: rayon analyses the pages, all `urls.len()` of them, as they arrive.
    pages_rx.into_iter().take(urls.len()).par_bridge().for_each_with(facts.clone(), |facts, (index, page)| {
        let fact = labkit::in_span("analyse", index as u64, || {
            (index, page.split_whitespace().count() as u64, labkit::work::hash_rounds(page.as_bytes(), 2_000))
        });
        facts.send(fact).unwrap();
    });
    drop(facts);
    aggregator.join().unwrap()
}"#;

    let graded = grade_mistakes(
        STEP8,
        &[
            ("sequential_analysis", vec![(HYBRID, sequential_analysis)]),
            ("one_analysis_thread", vec![(HYBRID, one_analysis_thread)]),
            ("fetcher_per_url", vec![(HYBRID, fetcher_per_url)]),
            (
                "workers_keep_a_sender",
                vec![(HYBRID, workers_keep_a_sender.to_owned())],
            ),
        ],
    );
    eprintln!("{}", graded.json());
    assert_eq!(graded.code, 1);
    let hidden = "step08-hybrid-hidden";

    // All the CPU work on one thread: the calling one, or a thread of its own.
    for mistake in ["sequential_analysis", "one_analysis_thread"] {
        graded.expect_of(
            mistake,
            &format!("{hidden}/parallel(analyse)"),
            Outcome::Failed,
            "the CPU stage ran in parallel: the work in analyse should be spread over at least 2 threads, but ran on 1",
        );
        graded.expect_of(
            mistake,
            &format!("{hidden}/max_inside(fetch)"),
            Outcome::Passed,
            "",
        );
        graded.expect_of(
            mistake,
            &format!("{hidden}/min_inside(fetch)"),
            Outcome::Passed,
            "",
        );
        graded.expect_of(mistake, &format!("{hidden}/no_leaks"), Outcome::Passed, "");
    }

    graded.expect_of(
        "fetcher_per_url",
        &format!("{hidden}/max_inside(fetch)"),
        Outcome::Failed,
        "at most 4 may be inside fetch at once, but ",
    );
    graded.expect_of(
        "fetcher_per_url",
        hidden,
        Outcome::Failed,
        "at most 4 fetches at once",
    );

    // The report is right and fast; the fetch workers are still waiting for
    // work when the cell ends.
    graded.expect_of(
        "workers_keep_a_sender",
        &format!("{hidden}/no_leaks"),
        Outcome::Failed,
        " thread(s) still running after the cell ended: ",
    );
    graded.expect_of(
        "workers_keep_a_sender",
        &format!("{hidden}/no_leaks"),
        Outcome::Failed,
        "(join every thread you spawn, or let its channel close so it can end)",
    );
    graded.expect_of(
        "workers_keep_a_sender",
        hidden,
        Outcome::Failed,
        "the test passed, but not every property held: no_leaks",
    );
    graded.expect_of(
        "workers_keep_a_sender",
        &format!("{hidden}/results_equal"),
        Outcome::Passed,
        "",
    );
    for mistake in [
        "sequential_analysis",
        "one_analysis_thread",
        "fetcher_per_url",
        "workers_keep_a_sender",
    ] {
        assert_eq!(graded.of(mistake, hidden).score, 0.0, "{mistake}");
        graded.expect_of(mistake, "step08-hybrid-test", Outcome::Passed, "passed");
    }
}

/// The reference's aggregator actor: the thread that owns the report.
const AGGREGATOR_ACTOR: &str = "    let aggregator = std::thread::spawn(move || {\n        let mut report = Report { pages: 0, words: 0, fingerprint: 0 };\n        for (index, words, hash) in inbox {\n            labkit::in_span(\"aggregate\", index as u64, || {\n                report.pages += 1;\n                report.words += words;\n                report.fingerprint ^= hash;\n            });\n        }\n        report\n    });\n";

/// Step 8, where the report is aggregated: right reports, fast, no actor.
/// (`std_channel_actor`, an actor on std's channel, is right and passes.)
///
/// - `mutex_report`: every analysis adds its page to a report behind a
///   `std::sync::Mutex`, on rayon's threads;
/// - `caller_aggregates`: the calling thread drains the facts channel once
///   the scope is done ("it has nothing else to do");
/// - `no_aggregate_spans`: an actor, but its additions are not inside
///   `labkit::in_span("aggregate", i, ..)`, so nobody can see them.
#[test]
fn step08_aggregation_mistakes() {
    let mutex_report = r#"#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub pages: usize,
    pub words: u64,
    pub fingerprint: u64,
}

pub fn analyse(urls: &[String], fetch_limit: usize) -> Report {
    use rayon::prelude::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // One shared report behind a lock: each analysis adds its page as soon as it is done.
    let report = std::sync::Mutex::new(Report { pages: 0, words: 0, fingerprint: 0 });
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
        pages_rx.into_iter().par_bridge().for_each(|(index, page)| {
            let (words, hash) = labkit::in_span("analyse", index as u64, || {
                (page.split_whitespace().count() as u64, labkit::work::hash_rounds(page.as_bytes(), 2_000))
            });
            labkit::in_span("aggregate", index as u64, || {
                let mut report = report.lock().unwrap();
                report.pages += 1;
                report.words += words;
                report.fingerprint ^= hash;
            });
        });
    });
    report.into_inner().unwrap()
}"#;
    let caller_aggregates = replaced(
        reference_with(
            STEP8,
            HYBRID,
            "    drop(facts);\n    aggregator.join().unwrap()\n",
            "    drop(facts);\n    // The calling thread has nothing else to do: it aggregates.\n    let mut report = Report { pages: 0, words: 0, fingerprint: 0 };\n    for (index, words, hash) in inbox {\n        labkit::in_span(\"aggregate\", index as u64, || {\n            report.pages += 1;\n            report.words += words;\n            report.fingerprint ^= hash;\n        });\n    }\n    report\n",
        ),
        AGGREGATOR_ACTOR,
        "",
    );
    let no_aggregate_spans = reference_with(
        STEP8,
        HYBRID,
        "            labkit::in_span(\"aggregate\", index as u64, || {\n                report.pages += 1;\n                report.words += words;\n                report.fingerprint ^= hash;\n            });\n",
        "            let _ = index;\n            report.pages += 1;\n            report.words += words;\n            report.fingerprint ^= hash;\n",
    );

    // Right, another way: std's channel, the actor a named thread.
    let std_channel_actor = replaced(
        reference_with(
            STEP8,
            HYBRID,
            "crossbeam::channel::unbounded::<(usize, u64, u64)>()",
            "std::sync::mpsc::channel::<(usize, u64, u64)>()",
        ),
        "    let aggregator = std::thread::spawn(move || {\n",
        "    let aggregator = std::thread::Builder::new().name(\"aggregator\".into()).spawn(move || {\n",
    )
    .replace(
        "        report\n    });\n",
        "        report\n    }).expect(\"a thread starts\");\n",
    );

    let graded = grade_mistakes(
        STEP8,
        &[
            ("std_channel_actor", vec![(HYBRID, std_channel_actor)]),
            ("mutex_report", vec![(HYBRID, mutex_report.to_owned())]),
            ("caller_aggregates", vec![(HYBRID, caller_aggregates)]),
            ("no_aggregate_spans", vec![(HYBRID, no_aggregate_spans)]),
        ],
    );
    eprintln!("{}", graded.json());
    assert_eq!(graded.code, 1);
    let hidden = "step08-hybrid-hidden";
    graded.expect_of("std_channel_actor", hidden, Outcome::Passed, "passed");
    for check in graded.checks_of("std_channel_actor") {
        assert_eq!(
            check.outcome,
            Outcome::Passed,
            "std_channel_actor: {check:#?}"
        );
    }

    // Rayon's threads aggregate: several of them, or one that analysed in
    // between.
    let check = graded.of("mutex_report", hidden);
    assert_eq!(check.outcome, Outcome::Failed, "{check:#?}");
    let message = &check.message;
    assert!(
        message.contains("one actor thread owns the report and aggregates every page, but ")
            || message.contains(" of them in between: an actor thread of its own owns the report and only aggregates"),
        "{check:#?}"
    );
    graded.expect_of(
        "caller_aggregates",
        hidden,
        Outcome::Failed,
        "the calling thread aggregated the pages itself: an actor thread of its own owns the report, while the calling thread waits for it",
    );
    graded.expect_of(
        "no_aggregate_spans",
        hidden,
        Outcome::Failed,
        "every page aggregated once, inside labkit::in_span(",
    );
    graded.expect_of("no_aggregate_spans", hidden, Outcome::Failed, "left: 0");
    for mistake in ["mutex_report", "caller_aggregates", "no_aggregate_spans"] {
        // Within the limit and tidy: only the aggregation is wrong. (The
        // properties the test's own assertions decide were not reached.)
        for property in ["max_inside(fetch)", "min_inside(fetch)", "no_leaks"] {
            graded.expect_of(
                mistake,
                &format!("{hidden}/{property}"),
                Outcome::Passed,
                "",
            );
        }
        graded.expect_of(
            mistake,
            &format!("{hidden}/results_equal"),
            Outcome::NotRun,
            "the test failed first: ",
        );
        graded.expect_of(mistake, "step08-hybrid-test", Outcome::Passed, "passed");
    }
}

/// Steps 6 and 8, promises that no other wrong solution here breaks alone.
///
/// - `push_ignores_closed`: `push` waits for room, then pushes, closed or
///   not: a closed queue takes new items;
/// - `len_counts_free_slots`: `len` answers how many more items fit;
/// - `analysed_in_two_spans`: the word count and the hash each in an
///   `analyse` span of their own: every page analysed twice, as the
///   timeline sees it;
/// - `summed_fingerprints`: the fingerprint adds the hashes instead of
///   XORing them (the public test checks pages and words only).
#[test]
fn step06_and_step08_promise_mistakes() {
    let push_ignores_closed = reference_with(
        STEP6,
        QUEUE,
        "        if state.closed {\n            return Err(item);\n        }\n        state.items.push_back(item);\n",
        "        state.items.push_back(item);\n",
    );
    let len_counts_free_slots = reference_with(
        STEP6,
        QUEUE,
        "        self.state.lock().unwrap().items.len()\n",
        "        self.capacity - self.state.lock().unwrap().items.len()\n",
    );
    let analysed_in_two_spans = reference_with(
        STEP8,
        HYBRID,
        "            let fact = labkit::in_span(\"analyse\", index as u64, || {\n                (index, page.split_whitespace().count() as u64, labkit::work::hash_rounds(page.as_bytes(), 2_000))\n            });\n",
        "            let words = labkit::in_span(\"analyse\", index as u64, || page.split_whitespace().count() as u64);\n            let hash = labkit::in_span(\"analyse\", index as u64, || labkit::work::hash_rounds(page.as_bytes(), 2_000));\n            let fact = (index, words, hash);\n",
    );
    let summed_fingerprints = reference_with(
        STEP8,
        HYBRID,
        "report.fingerprint ^= hash;",
        "report.fingerprint = report.fingerprint.wrapping_add(hash);",
    );
    let step6 = grade_mistakes(
        STEP6,
        &[
            ("push_ignores_closed", vec![(QUEUE, push_ignores_closed)]),
            (
                "len_counts_free_slots",
                vec![(QUEUE, len_counts_free_slots)],
            ),
        ],
    );
    let step8 = grade_mistakes(
        STEP8,
        &[
            (
                "analysed_in_two_spans",
                vec![(HYBRID, analysed_in_two_spans)],
            ),
            ("summed_fingerprints", vec![(HYBRID, summed_fingerprints)]),
        ],
    );
    eprintln!("{}\n{}", step6.json(), step8.json());
    assert_eq!((step6.code, step8.code), (1, 1));

    step6.expect_of(
        "push_ignores_closed",
        "step06-bounded-queue-test",
        Outcome::Failed,
        "assertion `left == right` failed: a closed queue refuses new items",
    );
    // `assert_eq!(queue.len(), 3)` after 3 pushes.
    for words in ["assertion `left == right` failed", "left: 0", "right: 3"] {
        step6.expect_of(
            "len_counts_free_slots",
            "step06-bounded-queue-test",
            Outcome::Failed,
            words,
        );
    }

    let hidden = "step08-hybrid-hidden";
    step8.expect_of(
        "analysed_in_two_spans",
        hidden,
        Outcome::Failed,
        "assertion `left == right` failed: every page analysed once",
    );
    step8.expect_of("analysed_in_two_spans", hidden, Outcome::Failed, "left: 32");
    step8.expect_of(
        "summed_fingerprints",
        hidden,
        Outcome::Failed,
        "assertion `left == right` failed: the report equals the sequential one",
    );
    for mistake in ["analysed_in_two_spans", "summed_fingerprints"] {
        step8.expect_of(mistake, "step08-hybrid-test", Outcome::Passed, "passed");
    }
}
