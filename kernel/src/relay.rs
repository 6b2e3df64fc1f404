//! Inside the code runner: carries the cell's stdout and stderr to the kernel
//! over one ordered pipe.
//!
//! File descriptors 1 and 2 are replaced by pipes that a pump thread reads.
//! Whatever it reads goes to the runner's original stdout (the pipe evcxr
//! reads) as [`Frame`]s. Reading and forwarding happen under one lock, so the
//! runner can drain both pipes and then write the end-of-cell marker knowing
//! that nothing the cell wrote is still behind it.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::time::Duration;

use crate::frame::Frame;

const EXECUTION_COMPLETE: &str = "EVCXR_EXECUTION_COMPLETE";
const PANIC_NOTIFICATION: &str = "EVCXR_PANIC_NOTIFICATION";
const CONTENT_BEGIN: &str = "EVCXR_BEGIN_CONTENT";
const CONTENT_END: &str = "EVCXR_END_CONTENT";
/// evcxr's control lines all start with this, and are only recognised at the
/// start of a line.
const EVCXR_MARKER: &str = "EVCXR_";
/// How long text without a newline waits for the rest of its line before it is
/// sent on its own (progress output from `print!` and a flush).
const PARTIAL_LINE_DELAY: Duration = Duration::from_millis(40);

/// The cell's stdout and stderr, redirected and forwarded.
pub struct Relay {
    state: Mutex<State>,
    /// The same descriptor as `State::out`, for the crash handler, which must
    /// not take a lock.
    out_fd: RawFd,
    poll_fds: [RawFd; 2],
}

struct State {
    out: File,
    streams: [Stream; 2],
    /// stdout is between evcxr's `EVCXR_BEGIN_CONTENT` and
    /// `EVCXR_END_CONTENT` lines, which evcxr reads as one value: nothing
    /// else may come between them.
    in_content: bool,
    /// stderr lines held back until the content block ends.
    deferred: String,
}

struct Stream {
    read_end: OwnedFd,
    pending: Vec<u8>,
    is_stderr: bool,
}

impl Relay {
    /// Points descriptors 1 and 2 at new pipes; keeps the original stdout for
    /// forwarding.
    pub fn install() -> io::Result<Relay> {
        let out = duplicate_cloexec(libc::STDOUT_FILENO)?;
        let stdout = redirect(libc::STDOUT_FILENO, false)?;
        let stderr = redirect(libc::STDERR_FILENO, true)?;
        let poll_fds = [stdout.read_end.as_raw_fd(), stderr.read_end.as_raw_fd()];
        Ok(Relay {
            out_fd: out.as_raw_fd(),
            state: Mutex::new(State::new(File::from(out), [stdout, stderr])),
            poll_fds,
        })
    }

    /// Starts the thread that forwards output while cells run.
    pub fn spawn_pump(&'static self) {
        std::thread::Builder::new()
            .name(conclab_wire::RELAY_THREAD.into())
            .spawn(move || self.pump())
            .expect("cannot start the output relay thread");
    }

    fn pump(&self) {
        loop {
            let partial = self.lock().streams.iter().any(|s| !s.pending.is_empty());
            let timeout = if partial {
                PARTIAL_LINE_DELAY.as_millis() as libc::c_int
            } else {
                -1
            };
            let mut fds = self.poll_fds.map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
            // SAFETY: `fds` is a valid array of two pollfd structs.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
            let mut state = self.lock();
            state.read_available();
            if ready == 0 {
                state.send_partial_lines(false);
            }
        }
    }

    /// Called when a cell returns: sends everything it wrote, then the
    /// end-of-cell marker evcxr waits for.
    pub fn end_cell(&self) {
        let mut state = self.lock();
        state.read_available();
        state.send_partial_lines(true);
        state.send(&format!("{EXECUTION_COMPLETE}\n"));
    }

    /// Sends everything written so far (used when the process exits).
    pub fn drain(&self) {
        let mut state = self.lock();
        state.read_available();
        state.send_partial_lines(true);
    }

    /// Writes one stderr line straight to the kernel, without locking: for a
    /// signal handler, where the process is about to die.
    pub fn write_raw_stderr_line(&self, text: &[u8]) {
        let prefix = Frame::Stderr("").encode();
        let prefix = prefix.trim_end_matches('\n').as_bytes();
        for part in [prefix, text, b"\n"] {
            // SAFETY: write(2) on a descriptor we own, with a valid buffer.
            unsafe { libc::write(self.out_fd, part.as_ptr().cast(), part.len()) };
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the buffers inconsistent
        // in a way that matters more than losing output, so keep going.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    fn new(out: File, streams: [Stream; 2]) -> State {
        State {
            out,
            streams,
            in_content: false,
            deferred: String::new(),
        }
    }

    /// Reads what each pipe holds right now and forwards its complete lines.
    fn read_available(&mut self) {
        let [stdout, stderr] = &mut self.streams;
        let mut encoded = String::new();
        stdout.read_available();
        stdout.take_lines(&mut encoded, &mut self.in_content);
        stderr.read_available();
        stderr.take_lines(&mut self.deferred, &mut false);
        if !self.in_content {
            encoded.push_str(&std::mem::take(&mut self.deferred));
        }
        self.send(&encoded);
    }

    /// Sends text that has waited for the rest of its line; `force` at the end
    /// of a cell, when nothing more can come.
    fn send_partial_lines(&mut self, force: bool) {
        if self.in_content && !force {
            return;
        }
        let [stdout, stderr] = &mut self.streams;
        let mut encoded = String::new();
        stdout.take_partial(&mut encoded);
        encoded.push_str(&std::mem::take(&mut self.deferred));
        stderr.take_partial(&mut encoded);
        self.in_content = false;
        self.send(&encoded);
    }

    fn send(&mut self, encoded: &str) {
        if !encoded.is_empty() {
            // If the kernel is gone there is nobody left to tell.
            let _ = self.out.write_all(encoded.as_bytes());
        }
    }
}

impl Stream {
    fn read_available(&mut self) {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            // SAFETY: reads into a valid buffer from a descriptor we own.
            let n = unsafe {
                libc::read(
                    self.read_end.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                )
            };
            if n <= 0 {
                // 0: no writer left; -1: EAGAIN (drained) or EINTR (retry
                // later); both end this round.
                return;
            }
            self.pending.extend_from_slice(&buffer[..n as usize]);
        }
    }

    fn take_lines(&mut self, encoded: &mut String, in_content: &mut bool) {
        let Some(last_newline) = self.pending.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        let rest = self.pending.split_off(last_newline + 1);
        let complete = std::mem::replace(&mut self.pending, rest);
        let text = String::from_utf8_lossy(&complete[..complete.len() - 1]);
        for line in text.split('\n') {
            self.encode_line(line, encoded);
            if !self.is_stderr {
                if line.ends_with(CONTENT_END) {
                    *in_content = false;
                } else if line.contains(CONTENT_BEGIN) {
                    *in_content = true;
                }
            }
        }
    }

    fn take_partial(&mut self, encoded: &mut String) {
        if self.pending.is_empty() {
            return;
        }
        // Keep an incomplete UTF-8 character for the next round.
        let cut = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(error) if error.error_len().is_none() => error.valid_up_to(),
            Err(_) => self.pending.len(),
        };
        if cut == 0 {
            return;
        }
        let rest = self.pending.split_off(cut);
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending = rest;
        let frame = if self.is_stderr {
            Frame::StderrPart(&text)
        } else {
            Frame::StdoutPart(&text)
        };
        encoded.push_str(&frame.encode());
    }

    fn encode_line(&self, line: &str, encoded: &mut String) {
        // Our own frames (labkit's displays, the panic hook) pass unchanged.
        if line.starts_with(crate::frame::PREFIX) && !line[1..].contains(crate::frame::PREFIX) {
            encoded.push_str(line);
            encoded.push('\n');
            return;
        }
        if self.is_stderr {
            encoded.push_str(&Frame::Stderr(line).encode());
            return;
        }
        // Text printed without a newline sits in front of the next line; if
        // that line is one of evcxr's markers or our frames, split it off so
        // the marker still starts a line.
        let marker_at = [EVCXR_MARKER, crate::frame::PREFIX]
            .iter()
            .filter_map(|marker| line.find(marker).filter(|&at| at > 0))
            .min();
        if let Some(at) = marker_at {
            encoded.push_str(&Frame::StdoutPart(&line[..at]).encode());
            return self.encode_line(&line[at..], encoded);
        }
        if line == PANIC_NOTIFICATION {
            encoded.push_str(&Frame::CellPanicked.encode());
        }
        encoded.push_str(line);
        encoded.push('\n');
    }
}

fn duplicate_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor we then own.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Replaces descriptor `target` with the write end of a new pipe and returns
/// its non-blocking read end.
fn redirect(target: RawFd, is_stderr: bool) -> io::Result<Stream> {
    let mut ends = [0; 2];
    // SAFETY: pipe2 fills `ends` with two new descriptors.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and ours.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
    // The cell's writes must block when the pipe is full, not fail.
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(write_end.as_raw_fd(), libc::F_SETFL, 0) };
    // SAFETY: dup2 onto a standard descriptor; it is not close-on-exec, so
    // processes the cell starts write into the same pipe.
    if unsafe { libc::dup2(write_end.as_raw_fd(), target) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Stream {
        read_end,
        pending: Vec::new(),
        is_stderr,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// A stream fed by a pipe the test writes to.
    fn stream(is_stderr: bool) -> (Stream, File) {
        let mut ends = [0; 2];
        // SAFETY: pipe2 fills `ends` with two new descriptors we own.
        assert_eq!(
            unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) },
            0
        );
        // SAFETY: fresh descriptors.
        let (read_end, write_end) =
            unsafe { (OwnedFd::from_raw_fd(ends[0]), File::from_raw_fd(ends[1])) };
        (
            Stream {
                read_end,
                pending: Vec::new(),
                is_stderr,
            },
            write_end,
        )
    }

    /// A relay state wired to pipes: the cell writes to `stdout` and
    /// `stderr`, the kernel reads what the relay sends from `kernel`.
    struct Harness {
        state: State,
        stdout: File,
        stderr: File,
        kernel: Stream,
    }

    impl Harness {
        fn new() -> Harness {
            let (stdout_stream, stdout) = stream(false);
            let (stderr_stream, stderr) = stream(true);
            let (kernel, out) = stream(false);
            Harness {
                state: State::new(out, [stdout_stream, stderr_stream]),
                stdout,
                stderr,
                kernel,
            }
        }

        /// What the kernel has received so far.
        fn received(self) -> String {
            let mut received = String::new();
            // The pipe is non-blocking: reading stops with WouldBlock once drained.
            let _ = File::from(self.kernel.read_end).read_to_string(&mut received);
            received
        }
    }

    #[test]
    fn stderr_never_lands_inside_a_value_evcxr_is_reading() {
        let mut relay = Harness::new();
        // A thread's panic reached stderr while the cell was printing its
        // value; the relay reads both pipes in one round, mid-value.
        relay
            .stdout
            .write_all(b"EVCXR_BEGIN_CONTENT text/plain\ntrue\n")
            .unwrap();
        relay.stderr.write_all(b"worker failed\n").unwrap();
        relay.state.read_available();
        relay.stdout.write_all(b"EVCXR_END_CONTENT\n").unwrap();
        relay.state.read_available();
        relay.state.send_partial_lines(true);
        let expected = format!(
            "EVCXR_BEGIN_CONTENT text/plain\ntrue\nEVCXR_END_CONTENT\n{}",
            Frame::Stderr("worker failed").encode()
        );
        assert_eq!(relay.received(), expected);
    }

    #[test]
    fn text_without_a_newline_is_split_off_a_marker() {
        let mut relay = Harness::new();
        relay
            .stdout
            .write_all(b"progress...EVCXR_PANIC_NOTIFICATION\n")
            .unwrap();
        relay.state.read_available();
        let expected = format!(
            "{}{}EVCXR_PANIC_NOTIFICATION\n",
            Frame::StdoutPart("progress...").encode(),
            Frame::CellPanicked.encode()
        );
        assert_eq!(relay.received(), expected);
    }
}
