//! labkit's traced locks behave as std's.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use labkit::sync::{Condvar, Mutex, RwLock};

#[test]
fn a_mutex_excludes_and_counts_exactly() {
    let counter = Arc::new(Mutex::named("counter", 0u64));
    thread::scope(|s| {
        for _ in 0..4 {
            let counter = Arc::clone(&counter);
            s.spawn(move || {
                for _ in 0..1_000 {
                    *counter.lock().unwrap() += 1;
                }
            });
        }
    });
    assert_eq!(*counter.lock().unwrap(), 4_000);
    assert_eq!(counter.name(), "counter");
}

#[test]
fn try_lock_fails_while_held_and_an_unnamed_lock_is_named_by_address() {
    let lock = Mutex::new(1);
    let guard = lock.lock().unwrap();
    assert!(lock.try_lock().is_err());
    drop(guard);
    assert_eq!(*lock.try_lock().unwrap(), 1);
    assert!(lock.name().starts_with("mutex@0x"));
}

#[test]
fn a_panic_while_holding_poisons_as_std_does() {
    let lock = Arc::new(Mutex::new(vec![1]));
    let holder = Arc::clone(&lock);
    let _ = thread::spawn(move || {
        let _guard = holder.lock().unwrap();
        panic!("while holding");
    })
    .join();
    assert!(lock.is_poisoned());
    let recovered = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    assert_eq!(*recovered, vec![1]);
}

#[test]
fn a_condvar_hands_items_from_producer_to_consumer() {
    let queue = Arc::new((Mutex::new(Vec::<u32>::new()), Condvar::named("not_empty")));
    let consumer = {
        let queue = Arc::clone(&queue);
        thread::spawn(move || {
            let (items, not_empty) = &*queue;
            let mut got = Vec::new();
            while got.len() < 100 {
                let mut items = not_empty
                    .wait_while(items.lock().unwrap(), |items| items.is_empty())
                    .unwrap();
                got.append(&mut items);
            }
            got
        })
    };
    for i in 0..100 {
        let (items, not_empty) = &*queue;
        items.lock().unwrap().push(i);
        not_empty.notify_one();
    }
    assert_eq!(consumer.join().unwrap(), (0..100).collect::<Vec<_>>());
}

#[test]
fn wait_timeout_gives_up() {
    let lock = Mutex::new(());
    let never = Condvar::new();
    let (_guard, result) = never
        .wait_timeout(lock.lock().unwrap(), Duration::from_millis(20))
        .unwrap();
    assert!(result.timed_out());
}

#[test]
fn an_rwlock_shares_reads_and_excludes_writes() {
    let lock = RwLock::named("table", 5);
    {
        let a = lock.read().unwrap();
        let b = lock.read().unwrap();
        assert_eq!(*a + *b, 10);
    }
    *lock.write().unwrap() += 1;
    assert_eq!(*lock.read().unwrap(), 6);
}
