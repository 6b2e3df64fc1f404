//! Traced locks with std's API: [`Mutex`], [`RwLock`] and [`Condvar`].
//!
//! They behave exactly as `std::sync`'s (they wrap them) and, when the trace
//! is on, record every wait, acquisition and release with the lock's name
//! and address, and the first time a thread takes one lock while holding
//! another (a lock-order edge: two edges in opposite directions are a
//! deadlock waiting to happen, even in a run that got lucky).

use std::cell::RefCell;
use std::collections::HashSet;
use std::ops::{Deref, DerefMut};
use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult, WaitTimeoutResult};
use std::time::Duration;

use crate::trace::{LockMode, LockRef, What};
use crate::{perturb, timeline, trace};

/// A lock as the trace names it.
#[derive(Clone, PartialEq, Eq, Hash)]
struct LockId {
    address: usize,
    name: String,
}

impl LockId {
    fn new(address: usize, name: Option<&str>, kind: &str) -> LockId {
        let name = name.map_or_else(|| format!("{kind}@{address:#x}"), str::to_owned);
        LockId { address, name }
    }

    /// The lock's identity if the trace or a timeline is on; nothing (and no
    /// allocation) otherwise: all bookkeeping exists for them.
    fn traced(address: usize, name: Option<&str>, kind: &str) -> Option<LockId> {
        (trace::enabled() || timeline::is_recording()).then(|| LockId::new(address, name, kind))
    }

    fn lock_ref(&self) -> LockRef {
        LockRef {
            name: self.name.clone(),
            lock: self.address as u64,
        }
    }
}

thread_local! {
    /// The locks this thread holds, in the order it took them.
    static HELD: RefCell<Vec<LockId>> = const { RefCell::new(Vec::new()) };
}

/// Lock-order edges already reported by this process.
static EDGES: std::sync::Mutex<Option<HashSet<(String, String)>>> = std::sync::Mutex::new(None);

fn held() -> Vec<LockRef> {
    HELD.with(|held| held.borrow().iter().map(LockId::lock_ref).collect())
}

fn before_acquire(lock: Option<&LockId>, mode: LockMode) {
    perturb::point("lock");
    if let Some(lock) = lock {
        trace::record(
            &lock.name,
            None,
            What::LockWait {
                lock: lock.address as u64,
                mode,
                held: held(),
            },
        );
    }
}

/// How a lock was taken: whether the thread could have waited for it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Acquisition {
    /// `lock`, `read`, `write`, a condition variable taking its lock back:
    /// the thread waited if the lock was held.
    Blocking,
    /// `try_lock`: taken only because it was free, so it never waited and
    /// cannot be part of a deadlock's wait-for cycle.
    Try,
}

fn after_acquire(lock: Option<&LockId>, mode: LockMode, how: Acquisition) {
    let Some(lock) = lock else {
        return;
    };
    let blocking = how == Acquisition::Blocking;
    timeline::note_lock(&lock.name, lock.address);
    trace::record(
        &lock.name,
        None,
        What::LockAcquired {
            lock: lock.address as u64,
            mode,
            held: held(),
            blocking,
        },
    );
    // An edge says "held `from` while it may wait for `to`": a try_lock
    // never waits, so it makes none (back off and retry cannot deadlock).
    if blocking {
        report_new_edges(lock);
    }
    HELD.with(|held| held.borrow_mut().push(lock.clone()));
}

fn before_release(lock: Option<&LockId>, mode: LockMode) {
    let Some(lock) = lock else {
        return;
    };
    HELD.with(|held| {
        let mut held = held.borrow_mut();
        if let Some(position) = held.iter().rposition(|h| h == lock) {
            held.remove(position);
        }
    });
    trace::record(
        &lock.name,
        None,
        What::LockReleased {
            lock: lock.address as u64,
            mode,
        },
    );
}

fn report_new_edges(lock: &LockId) {
    let held: Vec<LockId> = HELD.with(|held| held.borrow().clone());
    if held.is_empty() {
        return;
    }
    let mut edges = EDGES.lock().unwrap_or_else(PoisonError::into_inner);
    let edges = edges.get_or_insert_with(HashSet::new);
    for from in held.iter().filter(|from| *from != lock) {
        if edges.insert((from.name.clone(), lock.name.clone())) {
            trace::record(
                &lock.name,
                None,
                What::LockEdge {
                    from: from.lock_ref(),
                    to: lock.lock_ref(),
                },
            );
        }
    }
}

fn map_lock<G, H>(result: LockResult<G>, wrap: impl FnOnce(G) -> H) -> LockResult<H> {
    match result {
        Ok(guard) => Ok(wrap(guard)),
        Err(poisoned) => Err(PoisonError::new(wrap(poisoned.into_inner()))),
    }
}

/// A std guard together with what the trace needs to record its release.
struct Tracked<G> {
    id: Option<LockId>,
    mode: LockMode,
    // None only inside `Condvar::wait`, which hands the guard to std's Condvar.
    guard: Option<G>,
}

impl<G> Tracked<G> {
    fn new(id: Option<LockId>, mode: LockMode, guard: G) -> Tracked<G> {
        Tracked {
            id,
            mode,
            guard: Some(guard),
        }
    }

    fn get(&self) -> &G {
        self.guard
            .as_ref()
            .expect("a guard holds its lock outside Condvar::wait")
    }

    fn get_mut(&mut self) -> &mut G {
        self.guard
            .as_mut()
            .expect("a guard holds its lock outside Condvar::wait")
    }

    /// Takes the std guard out, recording the release (for `Condvar::wait`).
    fn release(mut self) -> (Option<LockId>, G) {
        let guard = self.guard.take().expect("a guard holds its lock");
        before_release(self.id.as_ref(), self.mode);
        (self.id.take(), guard)
    }
}

impl<G> Drop for Tracked<G> {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            // Recorded before the release, so the recorded holding interval
            // lies inside the real one.
            before_release(self.id.as_ref(), self.mode);
            drop(guard);
            perturb::point("unlock");
        }
    }
}

/// A mutual exclusion lock, as `std::sync::Mutex`, that the trace can see.
#[derive(Default)]
pub struct Mutex<T: ?Sized> {
    name: Option<String>,
    inner: std::sync::Mutex<T>,
}

impl<T> Mutex<T> {
    /// A new unlocked mutex; the trace names it by its address.
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            name: None,
            inner: std::sync::Mutex::new(value),
        }
    }

    /// A new unlocked mutex named `name` in the trace (e.g. `account[2]`).
    pub fn named(name: impl Into<String>, value: T) -> Mutex<T> {
        Mutex {
            name: Some(name.into()),
            inner: std::sync::Mutex::new(value),
        }
    }

    /// Consumes the mutex, returning its value.
    pub fn into_inner(self) -> LockResult<T> {
        self.inner.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    fn id(&self) -> Option<LockId> {
        LockId::traced(
            std::ptr::from_ref(&self.inner).cast::<()>() as usize,
            self.name.as_deref(),
            "mutex",
        )
    }

    /// The name the trace uses for this lock.
    pub fn name(&self) -> String {
        let address = std::ptr::from_ref(&self.inner).cast::<()>() as usize;
        LockId::new(address, self.name.as_deref(), "mutex").name
    }

    /// Blocks until the lock is free, then holds it until the guard drops.
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        let id = self.id();
        before_acquire(id.as_ref(), LockMode::Exclusive);
        let result = self.inner.lock();
        after_acquire(id.as_ref(), LockMode::Exclusive, Acquisition::Blocking);
        map_lock(result, |guard| {
            MutexGuard(Tracked::new(id, LockMode::Exclusive, guard))
        })
    }

    /// Takes the lock if it is free right now.
    pub fn try_lock(&self) -> TryLockResult<MutexGuard<'_, T>> {
        let id = self.id();
        let wrap = |guard| {
            after_acquire(id.as_ref(), LockMode::Exclusive, Acquisition::Try);
            MutexGuard(Tracked::new(id.clone(), LockMode::Exclusive, guard))
        };
        match self.inner.try_lock() {
            Ok(guard) => Ok(wrap(guard)),
            Err(TryLockError::Poisoned(poisoned)) => Err(TryLockError::Poisoned(PoisonError::new(
                wrap(poisoned.into_inner()),
            ))),
            Err(TryLockError::WouldBlock) => Err(TryLockError::WouldBlock),
        }
    }

    /// Whether a thread panicked while holding the lock.
    pub fn is_poisoned(&self) -> bool {
        self.inner.is_poisoned()
    }

    /// Clears the poisoned state.
    pub fn clear_poison(&self) {
        self.inner.clear_poison();
    }

    /// A mutable reference to the value; no locking is needed.
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        self.inner.get_mut()
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mutex")
            .field("name", &self.name())
            .field("inner", &self.inner)
            .finish()
    }
}

/// Holds a [`Mutex`] until dropped.
#[must_use = "the lock is released when the guard is dropped"]
pub struct MutexGuard<'a, T: ?Sized>(Tracked<std::sync::MutexGuard<'a, T>>);

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.get()
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.get_mut()
    }
}

impl<T: ?Sized + std::fmt::Display> std::fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&**self, f)
    }
}

impl<T: ?Sized + std::fmt::Debug> std::fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

/// A condition variable for [`Mutex`], as `std::sync::Condvar`.
///
/// Under a perturbation seed, `wait` sometimes returns without a
/// notification, as the OS is allowed to: code that waits in `if` rather
/// than `while` (or `wait_while`) shows its bug.
#[derive(Default)]
pub struct Condvar {
    name: Option<String>,
    inner: std::sync::Condvar,
}

impl Condvar {
    /// A new condition variable.
    pub const fn new() -> Condvar {
        Condvar {
            name: None,
            inner: std::sync::Condvar::new(),
        }
    }

    /// A new condition variable named `name` in the trace (e.g. `not_full`).
    pub fn named(name: impl Into<String>) -> Condvar {
        Condvar {
            name: Some(name.into()),
            inner: std::sync::Condvar::new(),
        }
    }

    fn id(&self) -> Option<LockId> {
        LockId::traced(
            std::ptr::from_ref(&self.inner) as usize,
            self.name.as_deref(),
            "condvar",
        )
    }

    /// Records a condition-variable event when the trace is on.
    fn record(&self, what: impl FnOnce(u64) -> What) {
        if let Some(me) = self.id() {
            trace::record(&me.name, None, what(me.address as u64));
        }
    }

    /// Releases the lock, sleeps until notified (or woken spuriously), and
    /// takes the lock again.
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> LockResult<MutexGuard<'a, T>> {
        let (lock, inner) = guard.0.release();
        self.record(|condvar| What::CondWait {
            condvar,
            lock: lock.as_ref().map(LockId::lock_ref),
            timeout_ns: None,
        });
        let spurious = perturb::spurious_wakeup();
        let result = if spurious {
            self.inner
                .wait_timeout(inner, Duration::from_micros(200))
                .map(|(g, _)| g)
                .map_err(|p| PoisonError::new(p.into_inner().0))
        } else {
            self.inner.wait(inner)
        };
        after_acquire(lock.as_ref(), LockMode::Exclusive, Acquisition::Blocking);
        self.record(|condvar| What::CondWoken { condvar, spurious });
        map_lock(result, |inner| {
            MutexGuard(Tracked::new(lock, LockMode::Exclusive, inner))
        })
    }

    /// Waits until `condition` is false, re-checking after every wakeup.
    pub fn wait_while<'a, T, F: FnMut(&mut T) -> bool>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: F,
    ) -> LockResult<MutexGuard<'a, T>> {
        while condition(&mut *guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// As [`Condvar::wait`], giving up after `timeout`.
    pub fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let (lock, inner) = guard.0.release();
        self.record(|condvar| What::CondWait {
            condvar,
            lock: lock.as_ref().map(LockId::lock_ref),
            timeout_ns: Some(timeout.as_nanos() as u64),
        });
        let result = self.inner.wait_timeout(inner, timeout);
        after_acquire(lock.as_ref(), LockMode::Exclusive, Acquisition::Blocking);
        self.record(|condvar| What::CondWoken {
            condvar,
            spurious: false,
        });
        map_lock(result, |(inner, timed_out)| {
            (
                MutexGuard(Tracked::new(lock, LockMode::Exclusive, inner)),
                timed_out,
            )
        })
    }

    /// Wakes one waiting thread.
    pub fn notify_one(&self) {
        self.record(|condvar| What::CondNotify {
            condvar,
            all: false,
        });
        self.inner.notify_one();
        after_notify();
    }

    /// Wakes every waiting thread.
    pub fn notify_all(&self) {
        self.record(|condvar| What::CondNotify { condvar, all: true });
        self.inner.notify_all();
        after_notify();
    }
}

/// A notify made holding no lock may come before the state change it
/// announces: give the woken thread time to find out (see
/// [`perturb::after_unlocked_notify`]). Only the trace knows which locks a
/// thread holds.
fn after_notify() {
    let unlocked = trace::enabled() && HELD.with(|held| held.borrow().is_empty());
    if unlocked {
        perturb::after_unlocked_notify();
    } else {
        perturb::point("notify");
    }
}

impl std::fmt::Debug for Condvar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Condvar").field("name", &self.name).finish()
    }
}

/// A reader-writer lock, as `std::sync::RwLock`, that the trace can see.
#[derive(Default)]
pub struct RwLock<T: ?Sized> {
    name: Option<String>,
    inner: std::sync::RwLock<T>,
}

impl<T> RwLock<T> {
    /// A new unlocked lock.
    pub const fn new(value: T) -> RwLock<T> {
        RwLock {
            name: None,
            inner: std::sync::RwLock::new(value),
        }
    }

    /// A new unlocked lock named `name` in the trace.
    pub fn named(name: impl Into<String>, value: T) -> RwLock<T> {
        RwLock {
            name: Some(name.into()),
            inner: std::sync::RwLock::new(value),
        }
    }

    /// Consumes the lock, returning its value.
    pub fn into_inner(self) -> LockResult<T> {
        self.inner.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    fn id(&self) -> Option<LockId> {
        LockId::traced(
            std::ptr::from_ref(&self.inner).cast::<()>() as usize,
            self.name.as_deref(),
            "rwlock",
        )
    }

    /// Shared access, until the guard drops.
    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        let id = self.id();
        before_acquire(id.as_ref(), LockMode::Read);
        let result = self.inner.read();
        after_acquire(id.as_ref(), LockMode::Read, Acquisition::Blocking);
        map_lock(result, |guard| {
            RwLockReadGuard(Tracked::new(id, LockMode::Read, guard))
        })
    }

    /// Exclusive access, until the guard drops.
    pub fn write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        let id = self.id();
        before_acquire(id.as_ref(), LockMode::Write);
        let result = self.inner.write();
        after_acquire(id.as_ref(), LockMode::Write, Acquisition::Blocking);
        map_lock(result, |guard| {
            RwLockWriteGuard(Tracked::new(id, LockMode::Write, guard))
        })
    }

    /// A mutable reference to the value; no locking is needed.
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        self.inner.get_mut()
    }
}

/// Shared access to a [`RwLock`] until dropped.
#[must_use = "the lock is released when the guard is dropped"]
pub struct RwLockReadGuard<'a, T: ?Sized>(Tracked<std::sync::RwLockReadGuard<'a, T>>);

/// Exclusive access to a [`RwLock`] until dropped.
#[must_use = "the lock is released when the guard is dropped"]
pub struct RwLockWriteGuard<'a, T: ?Sized>(Tracked<std::sync::RwLockWriteGuard<'a, T>>);

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.get()
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.get()
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.get_mut()
    }
}
