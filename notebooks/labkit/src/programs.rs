//! labkit's helper programs (`labkit-worker`, `labkit-draw`): where they are,
//! and building them, in release, the first time a process needs one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Where the program `name` is: `$env` if set, else the release build in
/// this crate's workspace, which the first call in a process brings up to
/// date for every helper at once (a no-op when it is; a one-time build
/// otherwise, that `conclab-kernel prepare` does ahead of time).
pub(crate) fn locate(name: &str, env: &str) -> std::io::Result<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Ok(PathBuf::from(path));
    }
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT
        .get_or_init(|| build().map_err(|e| format!("cannot build labkit's programs: {e}")))
        .clone()
        .map_err(std::io::Error::other)?;
    Ok(dir.join(name))
}

/// Builds both programs in release (the draw program with the `png`
/// feature, which only it needs: cells link labkit without resvg).
fn build() -> std::io::Result<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = manifest.join("../../target");
    let status = Command::new("cargo")
        .args(["build", "--quiet", "--release", "--bins"])
        .args(["--features", "png", "--manifest-path"])
        .arg(manifest.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .status()?;
    let dir = target.join("release");
    let built = ["labkit-worker", "labkit-draw"]
        .iter()
        .all(|name| dir.join(name).is_file());
    if !status.success() || !built {
        return Err(std::io::Error::other(format!(
            "cargo build exited with {status}"
        )));
    }
    Ok(dir)
}
