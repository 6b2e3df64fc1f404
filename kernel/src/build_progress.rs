//! Tells a cell that is waiting for a crate to compile (after a `:dep` line)
//! what is being built, so a long build never looks like a hung cell.
//!
//! evcxr writes cargo's "Compiling foo v1.2.3" lines to the kernel's own
//! stderr. This sends the kernel's stderr through a pipe: every line still
//! reaches the original stderr (the Jupyter server's log), and the
//! "Compiling" lines also reach the output of the cell being built.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;

use crossbeam_channel::Receiver;

/// The stderr this process started with, kept for [`restore`].
static ORIGINAL_STDERR: OnceLock<OwnedFd> = OnceLock::new();

/// Points descriptor 2 back at the original stderr, for a last message
/// before the process exits: the forwarding thread might not write it in time.
pub fn restore() {
    if let Some(original) = ORIGINAL_STDERR.get() {
        // SAFETY: dup2 onto descriptor 2 from a descriptor we own.
        unsafe { libc::dup2(original.as_raw_fd(), libc::STDERR_FILENO) };
    }
}

/// Redirects this process's stderr; returns the "Compiling" lines seen.
/// Call before any other thread starts.
pub fn capture() -> io::Result<Receiver<String>> {
    let mut ends = [0; 2];
    // SAFETY: pipe2 fills `ends` with two new descriptors we own.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptors, owned from here on.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor we then own.
    let original = unsafe { libc::fcntl(libc::STDERR_FILENO, libc::F_DUPFD_CLOEXEC, 3) };
    if original < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `original` is fresh and ours.
    let mut original = unsafe { File::from_raw_fd(original) };
    let kept = original.try_clone()?;
    let _ = ORIGINAL_STDERR.set(kept.into());
    // SAFETY: makes descriptor 2 the pipe; children inherit it, as they did stderr.
    if unsafe { libc::dup2(write_end.as_raw_fd(), libc::STDERR_FILENO) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let (sender, receiver) = crossbeam_channel::unbounded();
    std::thread::Builder::new()
        .name("conclab-stderr".into())
        .spawn(move || {
            for line in BufReader::new(File::from(read_end))
                .split(b'\n')
                .map_while(Result::ok)
            {
                let _ = original
                    .write_all(&line)
                    .and_then(|_| original.write_all(b"\n"));
                let text = String::from_utf8_lossy(&line);
                if let Some(crate_line) = compiling_line(&text) {
                    let _ = sender.send(crate_line.to_owned());
                }
            }
        })?;
    Ok(receiver)
}

/// `Compiling regex v1.10.2` for a dependency; not for the cell's own crate.
fn compiling_line(line: &str) -> Option<&str> {
    let line = line.trim();
    let name = line.strip_prefix("Compiling ")?.split_whitespace().next()?;
    (name != "ctx").then_some(line)
}

#[cfg(test)]
mod tests {
    use super::compiling_line;

    #[test]
    fn picks_dependency_builds_only() {
        assert_eq!(
            compiling_line("   Compiling regex v1.10.2"),
            Some("Compiling regex v1.10.2")
        );
        assert_eq!(compiling_line("   Compiling ctx v1.0.0 (/tmp/x)"), None);
        assert_eq!(compiling_line("warning: unused variable"), None);
    }
}
