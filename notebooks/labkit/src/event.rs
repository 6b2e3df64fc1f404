//! One line of the trace, typed: what [`crate::trace`] writes and the
//! checker reads back. `TRACE.md` beside this crate describes the same
//! format in words; this type is what both sides compile against.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One event: who did it, when, and [`What`] happened.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Event {
    /// The format's version, [`crate::trace::FORMAT_VERSION`].
    pub v: u64,
    /// The run's nonce, from [`crate::trace::NONCE_ENV`]: events written by
    /// code that does not know it are forged.
    pub nonce: String,
    /// Per-process sequence number, from 0.
    pub seq: u64,
    /// CLOCK_MONOTONIC in nanoseconds: comparable across processes.
    pub t_ns: u64,
    /// Process id.
    pub pid: u32,
    /// Kernel thread id.
    pub tid: u32,
    /// The thread's name: its std name, `main`, or
    /// [`crate::trace::unnamed_thread_name`].
    pub thread: String,
    /// What it happened to: a span's or lock's name.
    pub name: String,
    /// Which one of that name (a task id, a worker's pid).
    #[serde(default)]
    pub id: Option<u64>,
    /// What happened, with the fields of its kind.
    #[serde(flatten)]
    pub what: What,
}

/// What happened: the event's `kind` and the fields that kind has.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum What {
    /// A span started (recorded after the task began running).
    SpanEnter,
    /// A span ended (recorded before the task gives back what limited it).
    SpanExit,
    /// About to block on a lock.
    LockWait {
        /// The lock's address.
        lock: u64,
        /// How it is being taken.
        mode: LockMode,
        /// The locks the thread holds, oldest first.
        held: Vec<LockRef>,
    },
    /// A lock was taken.
    LockAcquired {
        /// The lock's address.
        lock: u64,
        /// How it was taken.
        mode: LockMode,
        /// The locks the thread held before it, oldest first.
        held: Vec<LockRef>,
        /// False for `try_lock`, which never waits and so is no edge of a
        /// wait-for cycle.
        #[serde(default = "blocking_by_default")]
        blocking: bool,
    },
    /// A lock is about to be given back.
    LockReleased {
        /// The lock's address.
        lock: u64,
        /// How it was held.
        mode: LockMode,
    },
    /// The first time in this process a thread took `to`, in a way that
    /// could have waited, while holding `from`.
    LockEdge {
        /// The lock held.
        from: LockRef,
        /// The lock taken.
        to: LockRef,
    },
    /// A condition variable wait is about to release its lock.
    CondWait {
        /// The condition variable's address.
        condvar: u64,
        /// The lock it releases, if traced.
        lock: Option<LockRef>,
        /// The wait's time limit, for `wait_timeout`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ns: Option<u64>,
    },
    /// A condition variable wait took its lock back.
    CondWoken {
        /// The condition variable's address.
        condvar: u64,
        /// Whether the perturbed schedule woke it without a notify.
        spurious: bool,
    },
    /// About to notify a condition variable.
    CondNotify {
        /// The condition variable's address.
        condvar: u64,
        /// `notify_all` rather than `notify_one`.
        all: bool,
    },
    /// A seeded point yielded or slept; the event's name is the point.
    Perturb {
        /// `Yield` or `Sleep(µs)`.
        choice: String,
    },
    /// A `labkit-worker` process started; the event's id is its pid.
    WorkerStart,
    /// A `labkit-worker` process is ending; the event's id is its pid.
    WorkerExit,
    /// A thread panicked (recorded by conclab-kernel's panic hook in the
    /// code runner).
    Panic {
        /// Whether it is the thread that runs the cell.
        main: bool,
        /// The panic's message.
        message: String,
        /// `file:line:column`, or empty.
        location: String,
    },
    /// A point of the learner's own choosing ([`crate::trace::mark`]).
    Mark {
        /// Whatever the learner recorded with it.
        #[serde(flatten)]
        fields: Map<String, Value>,
    },
}

fn blocking_by_default() -> bool {
    true
}

/// How a lock is held.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum LockMode {
    /// A `Mutex`.
    Exclusive,
    /// An `RwLock`'s read side.
    Read,
    /// An `RwLock`'s write side.
    Write,
}

/// A lock as events name it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockRef {
    /// The name given to `Mutex::named`, or `mutex@0x…`.
    pub name: String,
    /// Its address (the futex a blocked thread waits on).
    pub lock: u64,
}

impl What {
    /// The `kind` a line names this with.
    pub fn kind(&self) -> &'static str {
        match self {
            What::SpanEnter => "span_enter",
            What::SpanExit => "span_exit",
            What::LockWait { .. } => "lock_wait",
            What::LockAcquired { .. } => "lock_acquired",
            What::LockReleased { .. } => "lock_released",
            What::LockEdge { .. } => "lock_edge",
            What::CondWait { .. } => "cond_wait",
            What::CondWoken { .. } => "cond_woken",
            What::CondNotify { .. } => "cond_notify",
            What::Perturb { .. } => "perturb",
            What::WorkerStart => "worker_start",
            What::WorkerExit => "worker_exit",
            What::Panic { .. } => "panic",
            What::Mark { .. } => "mark",
        }
    }
}

impl Event {
    /// The lock this event is about: for `lock_wait`, `lock_acquired` and
    /// `lock_released`.
    pub fn lock(&self) -> Option<LockRef> {
        let lock = match self.what {
            What::LockWait { lock, .. }
            | What::LockAcquired { lock, .. }
            | What::LockReleased { lock, .. } => lock,
            _ => return None,
        };
        Some(LockRef {
            name: self.name.clone(),
            lock,
        })
    }

    /// The locks the thread held (`lock_wait`, `lock_acquired`), oldest
    /// first; none for other kinds.
    pub fn held(&self) -> &[LockRef] {
        match &self.what {
            What::LockWait { held, .. } | What::LockAcquired { held, .. } => held,
            _ => &[],
        }
    }

    /// Whether the thread could have waited for the lock this event is
    /// about: false only for a `lock_acquired` by `try_lock`.
    pub fn may_wait(&self) -> bool {
        !matches!(
            self.what,
            What::LockAcquired {
                blocking: false,
                ..
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_reads_into_its_kind_with_typed_fields() {
        let line = r#"{"v":3,"nonce":"n","seq":4,"t_ns":10,"pid":7,"tid":8,"thread":"worker-1","name":"account[0]","id":null,"kind":"lock_acquired","lock":64,"mode":"exclusive","held":[{"name":"account[1]","lock":72}],"blocking":false,"unknown":1}"#;
        let event: Event = serde_json::from_str(line).unwrap();
        assert_eq!(
            event.what,
            What::LockAcquired {
                lock: 64,
                mode: LockMode::Exclusive,
                held: vec![LockRef {
                    name: "account[1]".into(),
                    lock: 72
                }],
                blocking: false,
            }
        );
        assert!(!event.may_wait());
        assert_eq!(event.lock().unwrap().lock, 64);
    }

    #[test]
    fn each_kind_is_named_as_a_line_names_it() {
        let lock = || LockRef {
            name: "l".into(),
            lock: 1,
        };
        let mode = LockMode::Read;
        let every = [
            What::SpanEnter,
            What::SpanExit,
            What::LockWait {
                lock: 1,
                mode,
                held: vec![],
            },
            What::LockAcquired {
                lock: 1,
                mode,
                held: vec![],
                blocking: true,
            },
            What::LockReleased { lock: 1, mode },
            What::LockEdge {
                from: lock(),
                to: lock(),
            },
            What::CondWait {
                condvar: 2,
                lock: Some(lock()),
                timeout_ns: None,
            },
            What::CondWoken {
                condvar: 2,
                spurious: false,
            },
            What::CondNotify {
                condvar: 2,
                all: true,
            },
            What::Perturb {
                choice: "Yield".into(),
            },
            What::WorkerStart,
            What::WorkerExit,
            What::Panic {
                main: true,
                message: "m".into(),
                location: String::new(),
            },
            What::Mark { fields: Map::new() },
        ];
        for what in every {
            let line = serde_json::to_value(&what).unwrap();
            assert_eq!(line["kind"], what.kind());
            assert_eq!(serde_json::from_value::<What>(line).unwrap(), what);
        }
    }

    #[test]
    fn a_kind_missing_a_field_is_refused() {
        let line = r#"{"v":3,"nonce":"n","seq":4,"t_ns":10,"pid":7,"tid":8,"thread":"main","name":"m","id":null,"kind":"lock_wait","mode":"read","held":[]}"#;
        let error = serde_json::from_str::<Event>(line).unwrap_err();
        assert!(
            error.to_string().contains("missing field `lock`"),
            "{error}"
        );
    }

    #[test]
    fn marks_keep_the_learners_fields() {
        let line = r#"{"v":3,"nonce":"n","seq":0,"t_ns":1,"pid":7,"tid":7,"thread":"main","name":"delivered","id":null,"kind":"mark","task":3}"#;
        let event: Event = serde_json::from_str(line).unwrap();
        let What::Mark { fields } = &event.what else {
            panic!("{event:?}");
        };
        assert_eq!(fields["task"], 3);
    }
}
