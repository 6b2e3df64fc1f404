//! `set_seed`: the checker's perturbed runs in one process replay exactly.

use std::time::Duration;

use labkit::perturb::{Choice, FULL_SLEEP_POINTS, io_latency, point, seed, set_seed};

/// The seed is the process's: tests that set it take turns.
static SEED_IN_USE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn choices_of_a_named_thread() -> Vec<Choice> {
    std::thread::Builder::new()
        .name("worker-1".into())
        .spawn(|| (0..64).map(|_| point("test")).collect())
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn a_seed_set_in_process_replays_and_can_be_turned_off() {
    let _turn = SEED_IN_USE.lock().unwrap_or_else(|e| e.into_inner());
    set_seed(Some(7));
    assert_eq!(seed(), Some(7));
    let first = choices_of_a_named_thread();
    assert!(
        first.iter().any(|c| *c != Choice::Continue),
        "a seed perturbs"
    );
    set_seed(Some(8));
    let other = choices_of_a_named_thread();
    set_seed(Some(7));
    let again = choices_of_a_named_thread();
    assert_eq!(first, again, "the same seed makes the same choices again");
    assert_ne!(first, other, "another seed makes other choices");
    // A long-lived thread restarts its choices too.
    set_seed(Some(7));
    let here: Vec<Choice> = (0..64).map(|_| point("test")).collect();
    set_seed(Some(7));
    let here_again: Vec<Choice> = (0..64).map(|_| point("test")).collect();
    assert_eq!(here, here_again);
    set_seed(None);
    assert_eq!(seed(), None);
    assert!((0..64).all(|_| point("test") == Choice::Continue));
}

#[test]
fn a_thread_that_passes_many_points_sleeps_ever_less_often() {
    let _turn = SEED_IN_USE.lock().unwrap_or_else(|e| e.into_inner());
    set_seed(Some(11));
    let points = 40 * FULL_SLEEP_POINTS;
    let choices: Vec<Choice> =
        std::thread::spawn(move || (0..points).map(|_| point("hot")).collect())
            .join()
            .unwrap();
    set_seed(None);
    let sleeps = |range: &[Choice]| {
        range
            .iter()
            .filter(|c| matches!(c, Choice::Sleep(_)))
            .count()
    };
    let (first, rest) = choices.split_at(FULL_SLEEP_POINTS as usize);
    // One point in 8 sleeps at first...
    let early = sleeps(first);
    assert!(
        (32..=100).contains(&early),
        "{early} sleeps in the first {FULL_SLEEP_POINTS} points"
    );
    // ...then the chance falls as 1/points: about 1/8 × 512 × ln 40 ≈ 236
    // more, not the 2 496 a fixed 1/8 would make (a hot lock sleeping for
    // seconds), while the yields keep coming.
    let late = sleeps(rest);
    assert!(
        (100..=400).contains(&late),
        "{late} sleeps in the {} later points",
        rest.len()
    );
    let yields = rest.iter().filter(|c| **c == Choice::Yield).count();
    assert!(
        yields > rest.len() / 4,
        "only {yields} yields in {} points",
        rest.len()
    );
}

#[test]
fn a_seed_varies_simulated_latencies_around_the_asked_one() {
    let _turn = SEED_IN_USE.lock().unwrap_or_else(|e| e.into_inner());
    let asked = Duration::from_millis(40);
    let latencies = || -> Vec<Duration> {
        std::thread::Builder::new()
            .name("fetcher-1".into())
            .spawn(move || (0..100).map(|_| io_latency(asked)).collect())
            .unwrap()
            .join()
            .unwrap()
    };
    set_seed(Some(5));
    let varied = latencies();
    set_seed(Some(5));
    let again = latencies();
    set_seed(None);
    let plain = latencies();
    assert!(plain.iter().all(|l| *l == asked), "no seed, no change");
    assert_eq!(varied, again, "the same seed, the same latencies");
    assert!(
        varied.iter().all(|l| *l >= asked / 2 && *l < asked * 3 / 2),
        "from half to one and a half times: {varied:?}"
    );
    // Shorter and longer both: downloads started in order finish out of it.
    assert!(varied.iter().any(|l| *l < asked * 9 / 10));
    assert!(varied.iter().any(|l| *l > asked * 11 / 10));
}
