# Shared set-up for scripts/lab and scripts/test: what a fresh machine lacks.
# Sourced, not run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
KERNEL="$ROOT/target/debug/conclab-kernel"
CHECK="$ROOT/target/debug/conclab-check"

step() { printf '\n==> %s\n' "$*" >&2; }

ensure_rust_src() {
    # evcxr's rust-analyzer needs std's sources for types and completions.
    if [ ! -d "$(rustc --print sysroot)/lib/rustlib/src/rust/library" ]; then
        step "Installing the rust-src component"
        rustup component add rust-src
    fi
}

ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        step "Creating the project's Python environment in .venv"
        python3 -m venv "$VENV"
    fi
    if ! cmp -s "$ROOT/requirements.txt" "$VENV/.requirements.txt"; then
        step "Installing JupyterLab, jupyter_client, nbclient and the test tools"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/requirements.txt"
        cp "$ROOT/requirements.txt" "$VENV/.requirements.txt"
    fi
}

build_workspace() {
    # One build for the lab and the tests: with --all-targets the features of
    # shared dependencies are the same as `cargo test`'s, so nothing (evcxr
    # above all) is compiled twice.
    step "Building the workspace (the first build compiles evcxr: several minutes)"
    cargo build --locked --manifest-path "$ROOT/Cargo.toml" --workspace --all-targets
}
