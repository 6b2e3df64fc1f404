//! Interrupting the code runner from the control channel while the session
//! thread is busy running a cell.

use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Shared between the session thread (which runs cells) and the control
/// channel (which may be asked to stop one).
#[derive(Default)]
pub struct RunnerControl {
    process: Mutex<Option<Arc<Mutex<Child>>>>,
    running: AtomicBool,
    interrupted: AtomicBool,
    /// The process group of a running `:check`: an interrupt stops it, not
    /// the code runner, whose variables it does not touch.
    check: Mutex<Option<libc::pid_t>>,
}

impl RunnerControl {
    /// Remembers evcxr's handle to the code runner; it stays valid across restarts.
    pub fn set_process(&self, process: Arc<Mutex<Child>>) {
        *self.process.lock().unwrap_or_else(|p| p.into_inner()) = Some(process);
    }

    /// Marks whether a cell is running now.
    pub fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::SeqCst);
    }

    /// Marks a `:check` as running in the process group `group` (None: ended).
    pub fn set_check(&self, group: Option<u32>) {
        *self.check.lock().unwrap_or_else(|p| p.into_inner()) = group.map(|g| g as libc::pid_t);
    }

    /// Whether an interrupt stopped the current cell; clears the mark.
    pub fn take_interrupted(&self) -> bool {
        self.interrupted.swap(false, Ordering::SeqCst)
    }

    /// Whether an interrupt arrived while the current cell runs.
    pub fn is_interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// Stops the running cell: Rust cannot stop a thread from outside, so the
    /// code runner and every process it started are killed; evcxr starts a
    /// new runner. Returns whether there was a cell to stop.
    pub fn interrupt(&self) -> bool {
        if let Some(group) = *self.check.lock().unwrap_or_else(|p| p.into_inner()) {
            self.interrupted.store(true, Ordering::SeqCst);
            // SAFETY: kill(2) on the process group of a checker we started.
            unsafe { libc::kill(-group, libc::SIGKILL) };
            return true;
        }
        if !self.running.load(Ordering::SeqCst) {
            return false;
        }
        let process = self
            .process
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(process) = process else {
            return false;
        };
        self.interrupted.store(true, Ordering::SeqCst);
        let pid = process.lock().unwrap_or_else(|p| p.into_inner()).id() as libc::pid_t;
        // SAFETY: kill(2) with a pid we started. The runner leads its own
        // process group (see `runner::serve`), so -pid reaches its children.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
            libc::kill(pid, libc::SIGKILL);
        }
        true
    }

    /// Kills the code runner and its processes (the kernel is shutting down).
    pub fn shut_down(&self) {
        self.running.store(true, Ordering::SeqCst);
        self.interrupt();
    }
}
