//! The prelude crates (rayon, crossbeam, serde, serde_json, labkit), compiled
//! once per machine and copied into each session's build directory.
//!
//! evcxr compiles every cell as a crate in its own directory. Cargo decides
//! what to rebuild from fingerprints stored in `target/`, which do not depend
//! on where that directory lives, so a copy of a directory in which the
//! prelude crates were built once makes a new session start with them built.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// Marks a template directory as complete; written last.
const READY: &str = "READY";

/// Where the prelude crates are compiled, and where sessions build their cells.
#[derive(Debug, Clone)]
pub struct PreparedCrates {
    root: PathBuf,
}

impl PreparedCrates {
    /// The cache directory of this kernel build: `$CONCLAB_CACHE_DIR`, or
    /// `$XDG_CACHE_HOME/conclab`, or `~/.cache/conclab`.
    pub fn locate() -> anyhow::Result<PreparedCrates> {
        let base = match std::env::var_os("CONCLAB_CACHE_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => dirs::cache_dir()
                .context("no cache directory: set CONCLAB_CACHE_DIR")?
                .join("conclab"),
        };
        Ok(PreparedCrates {
            root: base.join(cache_name()),
        })
    }

    /// The directory in which the prelude crates are built once.
    pub fn template(&self) -> PathBuf {
        self.root.join("template")
    }

    /// Whether the one-time build has completed.
    pub fn is_ready(&self) -> bool {
        self.template().join(READY).exists()
    }

    /// Records that the template is complete.
    pub fn mark_ready(&self) -> io::Result<()> {
        fs::write(self.template().join(READY), "")
    }

    /// The build directory of a session run by process `pid`.
    pub fn session_dir(&self, pid: u32) -> PathBuf {
        self.root.join("sessions").join(pid.to_string())
    }

    /// Fills `dir` with a copy of the template, so that cells built there find
    /// the prelude crates compiled.
    pub fn copy_template_to(&self, dir: &Path) -> anyhow::Result<()> {
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        fs::create_dir_all(dir.parent().unwrap_or(dir))
            .with_context(|| format!("creating {}", dir.display()))?;
        // `cp -a` keeps the modification times cargo's fingerprints compare,
        // and shares blocks where the file system can.
        let status = Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(self.template())
            .arg(dir)
            .status()
            .context("running cp")?;
        if !status.success() {
            bail!(
                "copying {} to {} failed: {status}",
                self.template().display(),
                dir.display()
            );
        }
        Ok(())
    }

    /// Removes the build directories of sessions whose kernel is gone.
    pub fn remove_abandoned_sessions(&self) {
        remove_abandoned_sessions(&self.root);
    }

    /// Removes this checkout's caches for earlier kernel builds or labkit
    /// versions that no running kernel uses any more: each holds a few dozen
    /// megabytes. Other checkouts' caches are theirs to manage.
    pub fn remove_stale_builds(&self) {
        let Some(base) = self.root.parent() else {
            return;
        };
        let prefix = checkout_prefix(&labkit_dir());
        for entry in fs::read_dir(base).into_iter().flatten().flatten() {
            let path = entry.path();
            let is_other_build = path != self.root
                && entry
                    .file_name()
                    .to_str()
                    .is_some_and(|name| name.starts_with(&prefix));
            if is_other_build && !remove_abandoned_sessions(&path) {
                let _ = fs::remove_dir_all(&path);
            }
        }
    }
}

/// Removes the session directories under `root` whose kernel is gone;
/// returns whether any kernel still uses one.
fn remove_abandoned_sessions(root: &Path) -> bool {
    let mut in_use = false;
    for entry in fs::read_dir(root.join("sessions"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let alive = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
            .is_some_and(|pid| Path::new("/proc").join(pid.to_string()).exists());
        if alive {
            in_use = true;
        } else {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    in_use
}

/// Names this checkout's cache: `kernel-<where labkit is>-<what it is>`.
/// A different labkit source, rustc or kernel version gets a fresh template
/// instead of a stale one; the first part tells which caches belong to the
/// same checkout.
fn cache_name() -> String {
    let labkit = labkit_dir();
    let rustc = Command::new("rustc")
        .arg("-vV")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default();
    let identity = format!(
        "{}\n{}\n{:016x}",
        env!("CARGO_PKG_VERSION"),
        rustc,
        source_hash(&labkit)
    );
    format!(
        "{}{:016x}",
        checkout_prefix(&labkit),
        fnv1a(identity.as_bytes())
    )
}

fn checkout_prefix(labkit: &Path) -> String {
    format!(
        "kernel-{:08x}-",
        fnv1a(labkit.to_string_lossy().as_bytes()) as u32
    )
}

/// A hash of labkit's manifest and sources: editing labkit gives a new template.
fn source_hash(dir: &Path) -> u64 {
    let mut files = vec![dir.join("Cargo.toml")];
    let mut pending = vec![dir.join("src")];
    while let Some(next) = pending.pop() {
        for entry in fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut bytes = Vec::new();
    for file in files {
        bytes.extend(file.to_string_lossy().as_bytes());
        bytes.extend(fs::read(&file).unwrap_or_default());
    }
    fnv1a(&bytes)
}

/// A stable hash (std's `DefaultHasher` may change between releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The labkit crate's source: `$CONCLAB_LABKIT_DIR`, or the copy in the
/// repository this kernel was built from.
pub fn labkit_dir() -> PathBuf {
    match std::env::var_os("CONCLAB_LABKIT_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../notebooks/labkit"),
    }
    .canonicalize()
    .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../notebooks/labkit"))
}

impl PreparedCrates {
    /// Holds an exclusive lock on this build's cache until dropped, so two
    /// kernels starting at once build the template only once.
    pub fn lock(&self) -> anyhow::Result<fs::File> {
        fs::create_dir_all(&self.root)
            .with_context(|| format!("creating {}", self.root.display()))?;
        let path = self.root.join("lock");
        let file =
            fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        // SAFETY: flock(2) on a descriptor we own; released when it closes.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) } != 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("locking {}", path.display()));
        }
        Ok(file)
    }
}
