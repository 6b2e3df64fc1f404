//! The prelude crates (rayon, crossbeam, serde, serde_json, labkit), compiled
//! once per machine and copied into each session's build directory.
//!
//! evcxr compiles every cell as a crate in its own directory. Cargo decides
//! what to rebuild from fingerprints stored in `target/`, which do not depend
//! on where that directory lives, so a copy of a directory in which the
//! prelude crates were built once makes a new session start with them built.
//!
//! Several processes share the cache: kernels starting, `prepare` runs, and
//! the clean-up of other builds' caches. The template is built in a
//! directory of its own and renamed into place once complete, under an
//! exclusive lock of the cache (a process that waited for it finds the
//! template ready and reuses it); it is copied under a shared lock, and a
//! cache is only removed under its exclusive lock, so nobody removes a
//! template that is being built or copied.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// Marks a template directory as complete; written last.
const READY: &str = "READY";

/// Where a `prepare` builds the template before renaming it into place:
/// this prefix and its process id.
const BUILDING: &str = "building-";

/// Where the prelude crates are compiled, and where sessions build their cells.
#[derive(Debug, Clone)]
pub struct PreparedCrates {
    root: PathBuf,
}

impl PreparedCrates {
    /// The cache directory of this kernel build: `$CONCLAB_CACHE_DIR`, or
    /// `$XDG_CACHE_HOME/conclab`, or `~/.cache/conclab`.
    pub fn locate() -> anyhow::Result<PreparedCrates> {
        let base = match std::env::var_os(conclab_wire::EnvVars::CONCLAB_CACHE_DIR) {
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

    /// Builds the template with `build`, given the directory to build in,
    /// unless it is ready; returns whether it built it. A process that
    /// finds another building it waits, then reuses its result.
    pub fn build_template(
        &self,
        build: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<bool> {
        let _lock = self.lock()?;
        if self.is_ready() {
            return Ok(false);
        }
        // What an interrupted build left: nobody else builds or copies it
        // while this process holds the lock.
        let template = self.template();
        if template.exists() {
            fs::remove_dir_all(&template)
                .with_context(|| format!("removing the incomplete {}", template.display()))?;
        }
        for entry in fs::read_dir(&self.root).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with(BUILDING) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        // Read by cargo in every build below the cache root: the template's
        // and each session's copy of it.
        let config = self.root.join(".cargo");
        fs::create_dir_all(&config).with_context(|| format!("creating {}", config.display()))?;
        let config = config.join("config.toml");
        fs::write(&config, crate::prelude::CARGO_CONFIG)
            .with_context(|| format!("writing {}", config.display()))?;
        let building = self.root.join(format!("{BUILDING}{}", std::process::id()));
        fs::create_dir_all(&building)
            .with_context(|| format!("creating {}", building.display()))?;
        let built = build(&building).and_then(|()| {
            fs::write(building.join(READY), "")
                .with_context(|| format!("marking {} complete", building.display()))
        });
        if let Err(error) = built {
            let _ = fs::remove_dir_all(&building);
            return Err(error);
        }
        fs::rename(&building, &template).with_context(|| {
            format!(
                "moving {} into place as {}",
                building.display(),
                template.display()
            )
        })?;
        Ok(true)
    }

    /// The build directory of a session run by process `pid`.
    pub fn session_dir(&self, pid: u32) -> PathBuf {
        self.root.join("sessions").join(pid.to_string())
    }

    /// Fills `dir` with a copy of the template, so that cells built there find
    /// the prelude crates compiled; false, copying nothing, if the template
    /// is not ready.
    pub fn copy_template_to(&self, dir: &Path) -> anyhow::Result<bool> {
        let _lock = self.lock_shared()?;
        if !self.is_ready() {
            return Ok(false);
        }
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
        Ok(true)
    }

    /// Removes the build directories of sessions whose kernel is gone.
    pub fn remove_abandoned_sessions(&self) {
        remove_abandoned_sessions(&self.root);
    }

    /// Removes this checkout's caches for earlier kernel builds or labkit
    /// versions that no running kernel uses any more: each holds a few dozen
    /// megabytes. Other checkouts' caches are theirs to manage, and a cache
    /// being built or copied is left alone.
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
            if !is_other_build {
                continue;
            }
            // Held until the cache is gone: whoever waits for it then finds
            // it gone, and starts a new one.
            let Ok(Some(_lock)) = lock(&path, Lock::TryExclusive) else {
                continue;
            };
            if !remove_abandoned_sessions(&path) {
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
/// A different labkit source, rustc, kernel version, prelude or build
/// profile gets a fresh template
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
        "{}\n{}\n{:016x}\n{:?}{}{}",
        env!("CARGO_PKG_VERSION"),
        rustc,
        source_hash(&labkit),
        crate::prelude::dependencies(&labkit),
        crate::prelude::CARGO_CONFIG,
        crate::prelude::CELL_OPT_LEVEL,
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
    match std::env::var_os(conclab_wire::EnvVars::CONCLAB_LABKIT_DIR) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../notebooks/labkit"),
    }
    .canonicalize()
    .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../notebooks/labkit"))
}

impl PreparedCrates {
    /// Holds an exclusive lock on this build's cache until dropped: to build
    /// its template.
    pub fn lock(&self) -> anyhow::Result<fs::File> {
        Ok(lock(&self.root, Lock::Exclusive)?.expect("a blocking lock is taken"))
    }

    /// Holds a shared lock on this build's cache until dropped: its
    /// template is neither built nor removed meanwhile.
    pub fn lock_shared(&self) -> anyhow::Result<fs::File> {
        Ok(lock(&self.root, Lock::Shared)?.expect("a blocking lock is taken"))
    }
}

/// How [`lock`] locks a cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lock {
    Exclusive,
    Shared,
    /// Exclusive, or none at once if anyone holds the lock.
    TryExclusive,
}

/// Locks the cache at `root` (creating it) with the `lock` file in it;
/// `None` if `how` is [`Lock::TryExclusive`] and the lock is held.
fn lock(root: &Path, how: Lock) -> anyhow::Result<Option<fs::File>> {
    let path = root.join("lock");
    loop {
        fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let locked = match how {
            Lock::Exclusive => file.lock(),
            Lock::Shared => file.lock_shared(),
            Lock::TryExclusive => match file.try_lock() {
                Ok(()) => Ok(()),
                Err(fs::TryLockError::WouldBlock) => return Ok(None),
                Err(fs::TryLockError::Error(error)) => Err(error),
            },
        };
        locked.with_context(|| format!("locking {}", path.display()))?;
        // The clean-up of another build removes a cache, lock file and all,
        // while holding its lock: a process that waited for it holds a lock
        // nobody else can see, so it locks the file that is there now.
        if is_same_file(&file, &path)? {
            return Ok(Some(file));
        }
    }
}

/// Whether `path` names the file `file` has open.
fn is_same_file(file: &fs::File, path: &Path) -> anyhow::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let open = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?;
    match fs::metadata(path) {
        Ok(named) => Ok(named.dev() == open.dev() && named.ino() == open.ino()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory for one test, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir()
                .join(format!("conclab-prepared-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn two_builds_at_once_build_the_template_once() {
        let scratch = Scratch::new("build");
        let prepared = PreparedCrates {
            root: scratch.0.join("cache"),
        };
        let builds = AtomicUsize::new(0);
        let build = |dir: &Path| {
            builds.fetch_add(1, Ordering::SeqCst);
            // Long enough for the other thread to be waiting for the lock.
            std::thread::sleep(std::time::Duration::from_millis(300));
            fs::write(dir.join("built"), "yes")?;
            Ok(())
        };
        let built: Vec<bool> = std::thread::scope(|scope| {
            let runs: Vec<_> = (0..2)
                .map(|_| scope.spawn(|| prepared.build_template(build).unwrap()))
                .collect();
            runs.into_iter().map(|run| run.join().unwrap()).collect()
        });
        assert_eq!(builds.load(Ordering::SeqCst), 1);
        assert_eq!(built.iter().filter(|&&b| b).count(), 1, "{built:?}");
        assert!(prepared.is_ready());
        assert_eq!(
            fs::read_to_string(prepared.template().join("built")).unwrap(),
            "yes"
        );
        let left: Vec<_> = fs::read_dir(&prepared.root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            left.iter()
                .all(|name| !name.to_string_lossy().starts_with(BUILDING)),
            "{left:?}"
        );
    }

    #[test]
    fn a_failed_build_leaves_no_template() {
        let scratch = Scratch::new("failed");
        let prepared = PreparedCrates {
            root: scratch.0.join("cache"),
        };
        let failed = prepared.build_template(|dir| {
            fs::write(dir.join("half"), "")?;
            anyhow::bail!("no compiler")
        });
        assert!(failed.is_err());
        assert!(!prepared.is_ready() && !prepared.template().exists());
        assert!(prepared.build_template(|_| Ok(())).unwrap());
        assert!(prepared.is_ready());
    }

    #[test]
    fn a_stale_cache_is_removed_only_once_nobody_uses_it() {
        let scratch = Scratch::new("stale");
        let prefix = checkout_prefix(&labkit_dir());
        let current = PreparedCrates {
            root: scratch.0.join(format!("{prefix}current")),
        };
        let stale = PreparedCrates {
            root: scratch.0.join(format!("{prefix}stale")),
        };
        stale.build_template(|_| Ok(())).unwrap();
        // A kernel copying it, or a prepare building it.
        let copying = stale.lock_shared().unwrap();
        current.remove_stale_builds();
        assert!(stale.is_ready());
        drop(copying);
        current.remove_stale_builds();
        assert!(!stale.root.exists());
        // Who then locks it starts it anew, and the lock it takes is real.
        let building = stale.lock().unwrap();
        assert!(matches!(lock(&stale.root, Lock::TryExclusive), Ok(None)));
        drop(building);
    }
}
