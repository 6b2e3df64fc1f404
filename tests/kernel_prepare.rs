//! `conclab-kernel prepare` run twice at once, as two kernels starting
//! together (or a user and `scripts/lab`) do: the prelude crates are built
//! once, the second run waits and reuses them, and the template is whole.

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn prepare(cache: &Path) -> std::process::Child {
    Command::new(assert_cmd::cargo::cargo_bin("conclab-kernel"))
        .arg("prepare")
        .env("CONCLAB_CACHE_DIR", cache)
        .env_remove("EVCXR_TMPDIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cargo builds conclab-kernel for the workspace's tests")
}

fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn two_prepares_at_once_build_the_prelude_crates_once() {
    // A cache of its own, so the crates really are built (some 20 s).
    let cache = tempfile::tempdir().unwrap();
    let runs = [prepare(cache.path()), prepare(cache.path())];
    let outputs: Vec<Output> = runs
        .into_iter()
        .map(|run| run.wait_with_output().unwrap())
        .collect();
    for output in &outputs {
        assert!(output.status.success(), "{}", text(output));
    }
    let built = outputs
        .iter()
        .filter(|o| String::from_utf8_lossy(&o.stdout).contains("Building rayon"))
        .count();
    let reused = outputs
        .iter()
        .filter(|o| String::from_utf8_lossy(&o.stdout).contains("are ready in"))
        .count();
    assert_eq!(
        (built, reused),
        (1, 1),
        "{}\n---\n{}",
        text(&outputs[0]),
        text(&outputs[1])
    );

    // One build's cache, holding the complete template and nothing half-built.
    let builds: Vec<_> = fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(builds.len(), 1, "{builds:?}");
    let entries: Vec<String> = fs::read_dir(&builds[0])
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        entries.iter().all(|name| !name.starts_with("building-")),
        "{entries:?}"
    );
    let template = builds[0].join("template");
    assert!(template.join("READY").is_file(), "{entries:?}");
    assert!(template.join("target").is_dir());

    // And a later run finds it ready at once.
    let again = prepare(cache.path()).wait_with_output().unwrap();
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("are ready in"),
        "{}",
        text(&again)
    );
}
