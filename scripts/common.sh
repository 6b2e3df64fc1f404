# Shared set-up for scripts/lab and scripts/test: what a fresh machine lacks.
# Sourced, not run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
KERNEL="$ROOT/target/debug/conclab-kernel"
CHECK="$ROOT/target/debug/conclab-check"

step() { printf '\n==> %s\n' "$*" >&2; }

# rust-analyzer's ra_ap_stdx reads `CI` when it is compiled (option_env!), so
# a build with CI set and one without each recompile rust-analyzer and evcxr
# (~15 minutes). Every cargo command of scripts/lab and scripts/test runs with
# CI unset: the lab starts at once after the tests, whatever CI is.
cargo() { env -u CI cargo "$@"; }
# What CI meant for the tests, kept: snapshots are compared, never written.
if [ -n "${CI:-}" ]; then export INSTA_UPDATE="${INSTA_UPDATE:-no}"; fi

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

apt_install() {
    local sudo=()
    if [ "$(id -u)" != 0 ]; then sudo=(sudo); fi
    # A fresh machine may have no package lists yet: fetch them once and retry.
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$@" >/dev/null ||
        { "${sudo[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$@" >/dev/null; }
}

ensure_browser() {
    # The browser test drives Debian's Chromium with playwright-core; a browser
    # downloaded by a test tool does not run on these machines.
    # The emoji font: the notebooks' tips start with one, and screenshots should show it.
    if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ] ||
        [ ! -d /usr/share/fonts/truetype/noto ]; then
        step "Installing Debian's chromium, chromium-driver and an emoji font for the browser test"
        apt_install chromium chromium-driver fonts-noto-color-emoji
    fi
    if ! command -v npm >/dev/null; then
        step "Installing Node.js and npm for the browser test"
        apt_install nodejs npm
    fi
    local dir="$ROOT/tests/browser"
    if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.conclab-lock"; then
        step "Installing playwright-core into tests/browser/node_modules"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
        cp "$dir/package-lock.json" "$dir/node_modules/.conclab-lock"
    fi
}

ensure_slurm() {
    # tests/slurm/cluster runs these daemons itself, each with a private
    # config, key and socket: the packages' own services are never used.
    if [ ! -x /usr/sbin/slurmctld ] || [ ! -x /usr/sbin/slurmd ] ||
        [ ! -x /usr/bin/sbatch ] || [ ! -x /usr/sbin/munged ]; then
        step "Installing Debian's slurm-wlm (slurmctld, slurmd, the client commands) and munge for the Slurm test"
        apt_install --no-install-recommends slurm-wlm munge
    fi
}

build_workspace() {
    # One build for the lab and the tests: with --all-targets the features of
    # shared dependencies are the same as `cargo test`'s, so nothing (evcxr
    # above all) is compiled twice.
    step "Building the workspace (the first build compiles evcxr: several minutes)"
    cargo build --locked --manifest-path "$ROOT/Cargo.toml" --workspace --all-targets
}
