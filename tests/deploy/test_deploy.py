"""What can be checked of deploy/ without Docker or a cluster.

- deploy/Dockerfile parses with buildkit's own parser, meets what repo2docker,
  Binder and JupyterHub ask of an image, and runs nothing that this project's
  scripts and tests do not run too: each project step is a mode of scripts/lab,
  the rest is a short list of image plumbing, each entry justified below.
- deploy/kubernetes/*.yaml validate against Kubernetes' own schemas (bundled
  with kubernetes-validate: no network), their flags are the checker's, and
  their shell commands turn conclab-check's exit codes into what Kubernetes
  should see, run here with a stand-in conclab-check.
"""

import os
import pathlib
import platform
import shlex
import socket
import stat
import subprocess
import tomllib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
CHECK = pathlib.Path(os.environ.get("CONCLAB_CHECK", ROOT / "target" / "debug" / "conclab-check"))
# The oldest Kubernetes with podFailurePolicy and backoffLimitPerIndex stable.
OLDEST_KUBERNETES = "1.33.0"

# Commands a RUN may use besides the project's scripts: what a container
# needs that the README's "fresh Linux machine" already has. Each with why
# it is not a script's, and, where a script runs the very same command, that
# script: then the command must appear in it verbatim.
PLUMBING = {
    # Debian's python3 lacks venv until python3-venv is installed; as root,
    # which scripts/lab is not in the image. common.sh's apt_install runs
    # apt-get the same way for the test suite's packages.
    "apt-get": "scripts/common.sh",
    # The rust image's toolchain belongs to root: the same command as
    # common.sh's ensure_rust_src, run as its owner.
    "rustup": "scripts/common.sh",
    # Binder's and JupyterHub's user (NB_USER, NB_UID); a machine has one.
    "useradd": None,
    # Only to keep layers small, of what nothing reads at run time (below).
    "rm": None,
}
REMOVABLE = {"/var/lib/apt/lists/*", "target/debug/incremental"}


# --- deploy/Dockerfile -------------------------------------------------------


@pytest.fixture(scope="module")
def instructions():
    if platform.machine() != "x86_64":
        pytest.skip("the `dockerfile` package (buildkit's parser) ships a wheel for x86_64 only")
    import dockerfile

    return dockerfile.parse_file(str(DOCKERFILE))


def of(instructions, cmd):
    return [i for i in instructions if i.cmd == cmd]


def expand(values, text):
    """`${NAME}` replaced as Docker does, from `values`."""
    for name, value in sorted(values.items(), key=lambda kv: -len(kv[0])):
        text = text.replace("${" + name + "}", value)
    return text


def env(instructions):
    """The ARG defaults and ENV values the image ends with (the base's PATH is rust's)."""
    values = {"PATH": "/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    for i in instructions:
        if i.cmd == "ARG":
            name, _, default = i.value[0].partition("=")
            values[name] = default
        elif i.cmd == "ENV":
            pairs = dict(zip(i.value[::2], i.value[1::2]))
            values.update({name: expand(values, value) for name, value in pairs.items()})
    return values


def simple_commands(script):
    """The simple commands of a RUN's shell script: words split at && || ; |."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    command = []
    for word in lexer:
        if word in {"&&", "||", ";", "|", "&"}:
            if command:
                yield command
            command = []
        else:
            command.append(word)
    if command:
        yield command


def test_dockerfile_is_rust_bookworm_at_the_workspace_rust_version(instructions):
    rust_version = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["rust-version"]
    assert not list(ROOT.glob("rust-toolchain*")), "a toolchain file would pick another toolchain than the image's"
    (base,) = of(instructions, "FROM")
    assert base.value[0] == f"rust:{rust_version}-bookworm"


def test_dockerfile_meets_binder_and_jupyterhub(instructions):
    values = env(instructions)
    args = [i.value[0] for i in of(instructions, "ARG")]
    assert "NB_USER=jovyan" in args and "NB_UID=1000" in args
    assert values["HOME"] == "/home/jovyan"
    assert of(instructions, "USER")[-1].value == ("${NB_USER}",), "the image must run as NB_USER"
    # The checkout is the user's: the kernel writes in target/ at run time.
    (copy,) = of(instructions, "COPY")
    assert copy.value == (".", "${REPO_DIR}") and copy.flags == ("--chown=${NB_UID}",)
    repo = values["REPO_DIR"]
    # jupyter, jupyter-notebook (repo2docker, Binder) and jupyterhub-singleuser
    # (JupyterHub) on PATH: .venv's, from requirements.txt.
    path = values["PATH"].split(":")
    assert path[0] == f"{repo}/.venv/bin"
    pins = (ROOT / "requirements.txt").read_text().split()
    for package in ("jupyterlab==", "notebook==", "jupyterhub=="):
        assert any(pin.startswith(package) for pin in pins), package
    for program in ("jupyter", "jupyter-notebook", "jupyterhub-singleuser"):
        assert (ROOT / ".venv" / "bin" / program).is_file(), f"scripts' .venv lacks {program}"
    # The grading Job calls conclab-check by name.
    assert f"{repo}/target/debug" in path
    # A hub mounts the learner's volume on $HOME: nothing the image built may be there.
    for name in ("REPO_DIR", "CARGO_HOME", "CONCLAB_CACHE_DIR"):
        assert not values[name].startswith(values["HOME"]), name
        assert values[name].startswith(repo), f"{name} must be in the learner-owned checkout"
    # Binder and JupyterHub serve the working folder: the lab's notebooks.
    assert expand(values, of(instructions, "WORKDIR")[-1].value[0]) == f"{repo}/notebooks"


def test_dockerfile_sets_no_ci(instructions):
    # rust-analyzer inside evcxr records CI when compiled: scripts' cargo runs
    # with it unset, and the image must not bring it back in for anything else.
    for i in of(instructions, "ENV") + of(instructions, "ARG"):
        names = i.value[::2] if i.cmd == "ENV" else [i.value[0].partition("=")[0]]
        assert "CI" not in names


def test_every_run_is_the_projects_own(instructions):
    values = env(instructions)
    scripts_run = []
    for run in of(instructions, "RUN"):
        assert not run.json and not run.heredocs and not run.flags, run.original
        for words in simple_commands(run.value[0]):
            while "=" in words[0] and not words[0].startswith("="):
                words = words[1:]  # a variable set for the command
            program = words[0]
            if program.startswith("scripts/"):
                script = ROOT / program
                assert script.is_file() and script.stat().st_mode & stat.S_IXUSR, program
                mode = words[1]
                assert f"{mode})" in script.read_text(), f"{program} has no {mode} mode"
                scripts_run.append((program, mode))
                continue
            assert program in PLUMBING, f"{program}: neither a project script nor allowed plumbing"
            if PLUMBING[program]:
                line = " ".join(words[:4] if program == "rustup" else words[:2])
                assert line in (ROOT / PLUMBING[program]).read_text(), f"{line!r} not in {PLUMBING[program]}"
            if program == "rm":
                assert set(words[2:]) <= REMOVABLE, words
    # The project's whole set-up is scripts/lab's, run from the checkout.
    assert scripts_run == [("scripts/lab", "--setup-only")]
    assert expand(values, of(instructions, "WORKDIR")[0].value[0]) == values["REPO_DIR"]


def test_cmd_is_scripts_lab_starting_only(instructions):
    values = env(instructions)
    (cmd,) = of(instructions, "CMD")
    assert cmd.json, "exec form: no shell between the container and JupyterLab"
    assert cmd.value[:2] == (f"{values['REPO_DIR']}/scripts/lab", "--no-setup")
    # The very code path the CMD takes, here: it starts, and exits at --version.
    done = subprocess.run(
        [ROOT / "scripts" / "lab", "--no-setup", *cmd.value[2:], "--version"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    pin = next(p for p in (ROOT / "requirements.txt").read_text().split() if p.startswith("jupyterlab=="))
    assert done.stdout.strip() == pin.partition("==")[2]


def test_dockerignore_keeps_machine_local_files_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".git", "target", ".venv", "tests/browser/node_modules"):
        assert path in ignored, path


# --- deploy/kubernetes -------------------------------------------------------


def documents():
    return [(path, doc) for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text())]


def job(name):
    return next(doc for _, doc in documents() if doc["metadata"]["name"] == name)


def container(doc):
    (c,) = doc["spec"]["template"]["spec"]["containers"]
    return c


def shell(doc):
    c = container(doc)
    assert c["command"] == ["sh", "-c"]
    (script,) = c["args"]
    return script


def run_shell(doc, tmp_path, status, extra_env=()):
    """The container's script with a stand-in conclab-check that exits with `status`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "conclab-check"
    # It writes $FAKE_REPORT, if set, where --output says, as grading would.
    fake.write_text(
        '#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGS_FILE"\n'
        'if [ -n "$FAKE_REPORT" ]; then\n'
        '  while [ "$#" -gt 0 ]; do [ "$1" = --output ] && printf "%s" "$FAKE_REPORT" > "$2"; shift; done\n'
        'fi\nexit "$FAKE_STATUS"\n'
    )
    fake.chmod(0o755)
    variables = {e["name"]: e["value"] for e in container(doc).get("env", [])}
    script = shell(doc).replace("/class", str(tmp_path / "class"))
    done = subprocess.run(
        ["sh", "-c", script],
        env={
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "ARGS_FILE": str(tmp_path / "args"),
            "FAKE_STATUS": str(status),
            "FAKE_REPORT": "",
            **variables,
            **dict(extra_env),
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    args = (tmp_path / "args").read_text().splitlines() if (tmp_path / "args").exists() else None
    return done.returncode, args


def test_manifests_validate_against_kubernetes_schemas_offline(monkeypatch):
    import kubernetes_validate
    from kubernetes_validate import utils

    versions = [OLDEST_KUBERNETES, kubernetes_validate.latest_version()]
    assert set(versions) <= set(utils.all_versions())
    assert MANIFESTS, "no manifests in deploy/kubernetes"

    def no_network(*_):
        raise AssertionError("kubernetes-validate reached for the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    for path, doc in documents():
        for version in versions:
            kubernetes_validate.validate(doc, version, strict=True)


def test_grade_job_shards_match_the_checker():
    doc = job("grade-lab")
    spec = doc["spec"]
    shards = next(e["value"] for e in container(doc)["env"] if e["name"] == "SHARDS")
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == int(shards) >= spec["parallelism"]
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    # Every flag the shard passes is one `conclab-check grade` takes.
    command = shlex.split(shell(doc).replace("\\\n", " ").splitlines()[0])
    assert command[:2] == ["conclab-check", "grade"]
    help_text = subprocess.run([CHECK, "grade", "--help"], capture_output=True, text=True, check=True).stdout
    flags = [word for word in command if word.startswith("--")]
    assert {"--shard", "--jobs", "--format", "--output", "--source"} <= set(flags)
    for flag in flags:
        assert f"  {flag} " in help_text or f", {flag} " in help_text, flag


def test_merge_job_flags_match_the_checker():
    script = shell(job("grade-lab-merge")).replace("\\\n", " ")
    line = next(line for line in script.splitlines() if line.strip().startswith("conclab-check merge"))
    help_text = subprocess.run([CHECK, "merge", "--help"], capture_output=True, text=True, check=True).stdout
    for flag in (w for w in shlex.split(line) if w.startswith("--")):
        assert f"  {flag} " in help_text or f", {flag} " in help_text, flag


def test_grade_job_uses_the_images_notebooks_and_user(instructions):
    values = env(instructions)
    doc = job("grade-lab")
    command = shlex.split(shell(doc).replace("\\\n", " ").splitlines()[0])
    assert command[command.index("--source") + 1] == f"{values['REPO_DIR']}/notebooks"
    for name in ("grade-lab", "grade-lab-merge"):
        security = job(name)["spec"]["template"]["spec"]["securityContext"]
        assert security["runAsUser"] == int(values["NB_UID"])


@pytest.mark.parametrize(("status", "pod"), [(0, 0), (1, 0), (2, 2), (3, 3)])
def test_a_learners_failure_is_a_graded_shard(tmp_path, status, pod):
    doc = job("grade-lab")
    exit_code, args = run_shell(doc, tmp_path, status, {"JOB_COMPLETION_INDEX": "3"})
    assert exit_code == pod
    assert args[args.index("--shard") + 1] == "3/8"
    assert args[args.index("--output") + 1].endswith("/class/reports/shard-3.json")
    # What Kubernetes does with the pod's exit code: 2 fails its index at once,
    # anything else but 0 is retried up to backoffLimitPerIndex.
    rules = doc["spec"]["podFailurePolicy"]["rules"]
    fail_index = [r["onExitCodes"]["values"] for r in rules if r["action"] == "FailIndex"]
    assert fail_index == [[2]]
    assert doc["spec"]["backoffLimitPerIndex"] >= 1


def test_a_learners_unreadable_file_is_a_graded_shard(tmp_path):
    doc = job("grade-lab")
    (tmp_path / "class" / "reports").mkdir(parents=True)
    report = '{"submissions": [{"notebooks": [{"checks": [{"outcome": "bad_input"}]}]}]}'
    env = {"JOB_COMPLETION_INDEX": "3", "FAKE_REPORT": report}
    exit_code, _ = run_shell(doc, tmp_path, 2, env)
    assert exit_code == 0, "a learner's unreadable file is that learner's grade"
    env["FAKE_REPORT"] = '{"submissions": []}'
    exit_code, _ = run_shell(doc, tmp_path, 2, env)
    assert exit_code == 2, "exit 2 without a learner to blame fails the index"


@pytest.mark.parametrize(("status", "pod"), [(0, 0), (1, 0), (2, 2), (3, 3)])
def test_merge_job_joins_every_shard(tmp_path, status, pod):
    doc = job("grade-lab-merge")
    reports = tmp_path / "class" / "reports"
    reports.mkdir(parents=True)
    for index in range(7):
        (reports / f"shard-{index}.json").write_text("{}")
    exit_code, args = run_shell(doc, tmp_path, status)
    assert (exit_code, args) == (2, None), "a missing shard must stop the merge"
    (reports / "shard-7.json").write_text("{}")
    exit_code, args = run_shell(doc, tmp_path, status)
    assert exit_code == pod
    assert [a for a in args if a.endswith(".json") and "shard-" in a] == [
        str(reports / f"shard-{i}.json") for i in range(8)
    ]
