//! Perturbed schedules: when the checker sets a seed ([`SEED_ENV`]), every
//! instrumented point (locks, condition variables, spans) may yield or sleep
//! a little, to bring out races a quiet machine would hide.
//!
//! The choices are a function of the seed, the thread and how many points the
//! thread has passed, so a run can be replayed from its seed: exactly for
//! named threads, and for unnamed ones as long as they reach their first
//! point in the same order. Every choice is recorded in the trace.

use std::cell::RefCell;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use crate::trace::What;

/// The seed, as a decimal number; unset means no perturbation.
pub const SEED_ENV: &str = "CONCLAB_SEED";

/// Whether [`SEED`] holds a seed: not yet read from the environment, off, on.
static STATE: AtomicU8 = AtomicU8::new(UNREAD);
const UNREAD: u8 = 0;
const OFF: u8 = 1;
const ON: u8 = 2;
static SEED: AtomicU64 = AtomicU64::new(0);
/// Bumped by [`set_seed`]: threads restart their generators, so a seed
/// replays the same choices however often it is set.
static GENERATION: AtomicU64 = AtomicU64::new(0);
static UNNAMED_THREADS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The (seed, generation) for which this thread already had its first,
    /// always spurious, wakeup.
    static FIRST_WAIT_DONE: std::cell::Cell<Option<(u64, u64)>> = const { std::cell::Cell::new(None) };
    /// This thread's generator, with the seed and generation it belongs to,
    /// once it has passed a point.
    static RNG: RefCell<Option<((u64, u64), fastrand::Rng)>> = const { RefCell::new(None) };
    /// How many points this thread has passed under the seed and generation
    /// of its generator.
    static POINTS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many points a thread passes before its chance of sleeping starts to
/// fall: races show at the first meetings of threads, and a hot lock taken
/// a million times would otherwise sleep for minutes.
pub const FULL_SLEEP_POINTS: u64 = 512;

/// The seed in force, if any.
///
/// Under the checker (the trace on), the environment is read every time:
/// evcxr links a copy of labkit into every cell, and [`set_seed`] in one
/// cell must reach the copies in the cells that defined the learner's code.
pub fn seed() -> Option<u64> {
    if crate::trace::enabled() {
        return from_env();
    }
    match STATE.load(Ordering::Acquire) {
        ON => Some(SEED.load(Ordering::Relaxed)),
        OFF => None,
        _ => {
            let from_env = from_env();
            // A set_seed that raced with this first read wins.
            if STATE.load(Ordering::Acquire) == UNREAD {
                store(from_env);
            }
            seed()
        }
    }
}

fn from_env() -> Option<u64> {
    std::env::var(SEED_ENV).ok()?.trim().parse().ok()
}

/// Puts `seed` in force from now on (None: no perturbation), as if the
/// process had started with it in [`SEED_ENV`]. The checker calls this
/// before a perturbed run of a test cell; every thread's choices start
/// afresh, so the same seed replays the same schedule bias.
pub fn set_seed(seed: Option<u64>) {
    // SAFETY: std's environment lock orders this with every std::env read;
    // labkit's readers all go through std.
    unsafe {
        match seed {
            Some(seed) => std::env::set_var(SEED_ENV, seed.to_string()),
            None => std::env::remove_var(SEED_ENV),
        }
    }
    store(seed);
    GENERATION.fetch_add(1, Ordering::AcqRel);
    UNNAMED_THREADS.store(0, Ordering::Relaxed);
}

fn store(seed: Option<u64>) {
    SEED.store(seed.unwrap_or(0), Ordering::Relaxed);
    STATE.store(if seed.is_some() { ON } else { OFF }, Ordering::Release);
}

/// What a point did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Carried on.
    Continue,
    /// Gave up the processor.
    Yield,
    /// Slept this many microseconds.
    Sleep(u64),
}

/// An instrumented point: under a seed, maybe yields or sleeps. `site` names
/// the point in the trace.
pub fn point(site: &str) -> Choice {
    let Some(seed) = seed() else {
        return Choice::Continue;
    };
    let draw = next_draw(seed);
    let passed = POINTS.with(|points| points.replace(points.get() + 1));
    let choice = match draw % 8 {
        0 | 1 => Choice::Yield,
        // A chance of 1/8 for the first FULL_SLEEP_POINTS points, then
        // falling as 1/passed (the yields keep their rate), so a thread
        // sleeps O(log points) times in all.
        2 if passed < FULL_SLEEP_POINTS || (draw >> 32) % passed < FULL_SLEEP_POINTS => {
            Choice::Sleep((draw >> 8) % 2_000)
        }
        2 => Choice::Yield,
        _ => Choice::Continue,
    };
    match choice {
        Choice::Continue => {}
        Choice::Yield => std::thread::yield_now(),
        Choice::Sleep(micros) => std::thread::sleep(Duration::from_micros(micros)),
    }
    if choice != Choice::Continue {
        crate::trace::record(
            site,
            None,
            What::Perturb {
                choice: format!("{choice:?}"),
            },
        );
    }
    choice
}

/// A simulated I/O latency as a perturbed run sees it (what
/// [`crate::work::fetch`] waits): under a seed, from half to one and a half
/// times `latency`, drawn per call; without one, `latency`. With equal
/// latencies, threads finish in the order they started, so results gathered
/// as they finish come back in input order by luck; varied ones show it.
pub fn io_latency(latency: Duration) -> Duration {
    let Some(seed) = seed() else {
        return latency;
    };
    let per_mille = 500 + (next_draw(seed) % 1_000) as u32;
    latency * per_mille / 1_000
}

/// How long a thread pauses after notifying a condition variable while
/// holding no lock, under a seed.
pub const UNLOCKED_NOTIFY_PAUSE: Duration = Duration::from_millis(5);

/// After a notify made while the thread holds no lock, under a seed: pauses
/// [`UNLOCKED_NOTIFY_PAUSE`], every time. A notify made before the state
/// change it announces (notify, then lock and push) loses its wakeup only if
/// the woken thread takes the lock first, finds nothing and waits again; the
/// pause lets it, so every perturbed run shows the bug. Notifying after
/// unlocking, which is correct, only costs the pause.
pub(crate) fn after_unlocked_notify() {
    if seed().is_none() {
        return;
    }
    std::thread::sleep(UNLOCKED_NOTIFY_PAUSE);
    crate::trace::record(
        "notify_unlocked",
        None,
        What::Perturb {
            choice: format!(
                "{:?}",
                Choice::Sleep(UNLOCKED_NOTIFY_PAUSE.as_micros() as u64)
            ),
        },
    );
}

/// Whether a condition variable wait should wake up early (a spurious
/// wakeup, which correct code must tolerate). Only under a seed: then a
/// thread's first wait always does, so a wait under `if` instead of `while`
/// is caught in every perturbed run, and later waits do at random.
pub(crate) fn spurious_wakeup() -> bool {
    let Some(seed) = seed() else {
        return false;
    };
    let key = (seed, GENERATION.load(Ordering::Acquire));
    let first = FIRST_WAIT_DONE.with(|done| done.replace(Some(key)) != Some(key));
    first || next_draw(seed).is_multiple_of(4)
}

fn next_draw(seed: u64) -> u64 {
    let key = (seed, GENERATION.load(Ordering::Acquire));
    RNG.with(|rng| {
        let mut rng = rng.borrow_mut();
        match &mut *rng {
            Some((current, rng)) if *current == key => rng.u64(..),
            _ => {
                POINTS.with(|points| points.set(0));
                let mut fresh = fastrand::Rng::with_seed(seed ^ thread_identity());
                let draw = fresh.u64(..);
                *rng = Some((key, fresh));
                draw
            }
        }
    })
}

/// Stable across runs for named threads; spawn order for the others.
fn thread_identity() -> u64 {
    let mut hasher = DefaultHasher::new();
    match std::thread::current().name() {
        Some(name) => name.hash(&mut hasher),
        None => UNNAMED_THREADS
            .fetch_add(1, Ordering::Relaxed)
            .hash(&mut hasher),
    }
    hasher.finish()
}
