//! `set_seed`: the checker's perturbed runs in one process replay exactly.

use labkit::perturb::{Choice, point, seed, set_seed};

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
