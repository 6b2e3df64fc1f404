//! `conclab-kernel install`: writes the kernelspec Jupyter finds the kernel by.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::json;

/// Where to install, as `jupyter kernelspec install` names the choices.
#[derive(Debug, Clone)]
pub enum Location {
    /// The user's Jupyter data directory (`$JUPYTER_DATA_DIR` if set).
    User,
    /// The active Python environment's `share/jupyter`.
    SysPrefix,
    /// `PREFIX/share/jupyter`.
    Prefix(PathBuf),
}

const LOGO_32: &[u8] = include_bytes!("../assets/logo-32x32.png");
const LOGO_64: &[u8] = include_bytes!("../assets/logo-64x64.png");
const LOGO_SVG: &str = include_str!("../assets/logo-svg.svg");

/// Writes `kernels/NAME/` (kernel.json and logos) and returns its path.
pub fn install(location: &Location, name: &str) -> anyhow::Result<PathBuf> {
    parse_kernel_name(name).map_err(anyhow::Error::msg)?;
    let kernels = kernels_dir(location)?;
    let dir = kernels.join(name);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let exe = std::env::current_exe().context("finding the kernel executable")?;
    let spec = json!({
        "argv": [exe, "run", "--connection-file", "{connection_file}"],
        "display_name": "Rust (conclab)",
        "language": "rust",
        "interrupt_mode": "message",
        "kernel_protocol_version": "5.3",
        "metadata": { "debugger": false },
    });
    let write = |file: &str, bytes: &[u8]| {
        let path = dir.join(file);
        fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
    };
    write(
        "kernel.json",
        serde_json::to_string_pretty(&spec)?.as_bytes(),
    )?;
    write("logo-32x32.png", LOGO_32)?;
    write("logo-64x64.png", LOGO_64)?;
    write("logo-svg.svg", LOGO_SVG.as_bytes())?;
    Ok(dir)
}

/// Jupyter accepts ASCII letters, digits, `-`, `.` and `_` in kernel names.
pub fn parse_kernel_name(name: &str) -> Result<String, String> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if valid {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "invalid kernel name {name:?}: use ASCII letters, digits, '-', '.' and '_'"
        ))
    }
}

fn kernels_dir(location: &Location) -> anyhow::Result<PathBuf> {
    let data = match location {
        Location::User => user_data_dir()?,
        Location::SysPrefix => sys_prefix()?.join("share/jupyter"),
        Location::Prefix(prefix) => prefix.join("share/jupyter"),
    };
    Ok(data.join("kernels"))
}

/// jupyter_core's rule on Linux: `$JUPYTER_DATA_DIR`, else
/// `$XDG_DATA_HOME/jupyter`, else `~/.local/share/jupyter`.
fn user_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("JUPYTER_DATA_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(Path::new(&dir).join("jupyter"));
    }
    let home = dirs::home_dir().context("no home directory: set JUPYTER_DATA_DIR")?;
    Ok(home.join(".local/share/jupyter"))
}

/// The prefix of the Python environment Jupyter runs in: `$VIRTUAL_ENV`,
/// else what `python3` says.
fn sys_prefix() -> anyhow::Result<PathBuf> {
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(venv));
    }
    let output = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.prefix)"])
        .output()
        .context("--sys-prefix needs python3 to find the environment's prefix")?;
    if !output.status.success() {
        bail!("python3 could not tell its sys.prefix");
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}
