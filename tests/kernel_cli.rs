//! The `conclab-kernel` command line, as a user (or Jupyter) runs it.

use std::fs;

use assert_cmd::Command;
use predicates::prelude::*;

fn kernel() -> Command {
    Command::cargo_bin("conclab-kernel")
        .expect("cargo builds conclab-kernel for the workspace's tests")
}

#[test]
fn install_writes_a_kernelspec_where_jupyter_data_dir_points() {
    let data = tempfile::tempdir().unwrap();
    kernel()
        .args(["install", "--user", "--no-prepare", "--name", "rust-lab"])
        .env("JUPYTER_DATA_DIR", data.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("rust-lab"));
    let dir = data.path().join("kernels/rust-lab");
    let spec: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("kernel.json")).unwrap()).unwrap();
    let argv: Vec<&str> = spec["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(argv[0].ends_with("conclab-kernel"), "{argv:?}");
    assert!(std::path::Path::new(argv[0]).is_absolute());
    assert_eq!(
        &argv[1..],
        ["run", "--connection-file", "{connection_file}"]
    );
    assert_eq!(spec["language"], "rust");
    assert_eq!(spec["interrupt_mode"], "message");
    for logo in ["logo-32x32.png", "logo-64x64.png", "logo-svg.svg"] {
        assert!(dir.join(logo).is_file(), "{logo} missing");
    }
}

#[test]
fn install_with_a_prefix_uses_its_share_directory() {
    let prefix = tempfile::tempdir().unwrap();
    kernel()
        .args(["install", "--no-prepare", "--prefix"])
        .arg(prefix.path())
        .assert()
        .success();
    assert!(
        prefix
            .path()
            .join("share/jupyter/kernels/conclab/kernel.json")
            .is_file()
    );
}

#[test]
fn install_rejects_a_name_jupyter_would_not_accept() {
    kernel()
        .args(["install", "--no-prepare", "--name", "my kernel!"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("kernel name"));
}

#[test]
fn install_rejects_two_locations() {
    let prefix = tempfile::tempdir().unwrap();
    kernel()
        .args(["install", "--no-prepare", "--user", "--prefix"])
        .arg(prefix.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot be used with"));
}

#[test]
fn an_unknown_command_is_a_usage_error() {
    kernel()
        .arg("serve")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("Usage"));
    kernel()
        .arg("run")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--connection-file"));
}

#[test]
fn a_missing_connection_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("kernel-missing.json");
    kernel()
        .args(["run", "--connection-file"])
        .arg(&missing)
        .assert()
        .failure()
        .stderr(predicate::str::contains("cannot read the connection file"))
        .stderr(predicate::str::contains("kernel-missing.json"));
}

#[test]
fn a_malformed_connection_file_is_named_with_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("not-json.json", "this is not json"),
        (
            "no-ports.json",
            r#"{"ip": "127.0.0.1", "transport": "tcp", "key": "k"}"#,
        ),
    ] {
        let path = dir.path().join(name);
        fs::write(&path, text).unwrap();
        kernel()
            .args(["run", "-f"])
            .arg(&path)
            .assert()
            .failure()
            .stderr(predicate::str::contains(name))
            .stderr(predicate::str::contains(
                "not a valid Jupyter connection file",
            ));
    }
}

#[test]
fn an_unsupported_signature_scheme_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("md5.json");
    fs::write(
        &path,
        r#"{"ip": "127.0.0.1", "transport": "tcp", "shell_port": 0, "iopub_port": 0, "stdin_port": 0,
            "control_port": 0, "hb_port": 0, "key": "k", "signature_scheme": "hmac-md5"}"#,
    )
    .unwrap();
    kernel()
        .args(["run", "-f"])
        .arg(&path)
        .env("CONCLAB_CACHE_DIR", dir.path().join("cache"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("hmac-md5"));
}
