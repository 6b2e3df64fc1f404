"""Sharded grading on a real Slurm cluster.

tests/slurm/cluster starts a one-node cluster (slurmctld, slurmd and munged
of Debian's slurm-wlm, on the loopback interface, all state in a temp dir);
a class of four learners is graded as an array of four shards with
deploy/slurm/grade.sbatch, and the merged shard reports must be the report
one unsharded `conclab-check grade` gives. Needs root and
scripts/common.sh's ensure_slurm (scripts/test runs both).
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "tests" / "slurm" / "cluster"
JOB_SCRIPT = ROOT / "deploy" / "slurm" / "grade.sbatch"
CHECK = pathlib.Path(os.environ.get("CONCLAB_CHECK", ROOT / "target" / "debug" / "conclab-check"))
# The quickest lab notebook to grade (about 13 s) with one exercise.
NOTEBOOK = "02-as-completed.ipynb"
SOLUTION = "step02-as-completed"
# In path order, which is shard order: learner i is shard i's.
LEARNERS = ["alice", "bob", "carol", "dave"]
# Four shards one after another (each takes the 2 CPUs of a small machine).
JOB_TIMEOUT = 600

# As the checker's own tests plant mistakes (tests/support/mod.rs): a solution
# cell rewritten. This one runs the tasks one after another in input order,
# so the public test's order assertion and the hidden test's streaming
# property fail on every run.
IN_INPUT_ORDER = """\
pub fn as_completed<T: Send + 'static>(
    tasks: Vec<Box<dyn FnOnce() -> T + Send>>,
    _workers: usize,
) -> crossbeam::channel::Receiver<(usize, Result<T, String>)> {
    let (result_tx, result_rx) = crossbeam::channel::unbounded();
    for (index, task) in tasks.into_iter().enumerate() {
        let outcome = labkit::in_span("task", index as u64, || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(task))
        });
        let outcome = outcome.map_err(|_| "the task panicked".to_string());
        result_tx.send((index, outcome)).expect("the receiver is alive");
    }
    result_rx
}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The environment of a running one-node cluster; stopped afterwards."""
    if os.geteuid() != 0:
        pytest.fail("the Slurm test starts slurmd, which must run as root")
    if not shutil.which("slurmctld", path="/usr/sbin:/usr/bin"):
        pytest.fail("Slurm is not installed: `source scripts/common.sh && ensure_slurm` (scripts/test does)")
    state = tmp_path_factory.mktemp("slurm")
    started = subprocess.run([CLUSTER, "start", state], capture_output=True, text=True)
    if started.returncode != 0:
        pytest.fail(f"the cluster did not start:\n{started.stderr}")
    env = {
        **os.environ,
        "SLURM_CONF": started.stdout.strip(),
        "CONCLAB_CHECK": str(CHECK),
        # The jobs inherit it (sbatch exports the environment): conclab-check
        # from PATH, as an instructor's would be, and the kernel next to it.
        "PATH": f"{CHECK.parent}:{os.environ['PATH']}",
    }
    try:
        yield env, state
    finally:
        subprocess.run([CLUSTER, "stop", state], check=False)


def make_class(tmp_path):
    """class/<learner>/02-as-completed.ipynb for the four learners."""
    source = ROOT / "notebooks" / NOTEBOOK
    released = tmp_path / "released"
    subprocess.run([CHECK, "release", source, "--output", released], check=True, capture_output=True)
    wrong = json.loads(source.read_text())
    cells = [c for c in wrong["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == SOLUTION]
    assert len(cells) == 1, f"{NOTEBOOK} has no solution cell {SOLUTION}"
    cells[0]["source"] = IN_INPUT_ORDER
    notebooks = {
        "alice": source.read_text(),  # the reference solution: passes
        "bob": (released / NOTEBOOK).read_text(),  # todo!() stubs: fails
        "carol": json.dumps(wrong, indent=1),  # a wrong solution: fails
        "dave": "{ this is not a notebook",  # bad input
    }
    for learner in LEARNERS:
        (tmp_path / "class" / learner).mkdir(parents=True)
        (tmp_path / "class" / learner / NOTEBOOK).write_text(notebooks[learner])
    return tmp_path / "class"


def slurm(env, *args, cwd=None):
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, check=True).stdout


def tasks(env, job):
    """{array task id: {field: value}} from `scontrol show job` (no sacct without accounting)."""
    records = {}
    for line in slurm(env, "scontrol", "--oneliner", "show", "job", job).splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        records[fields["ArrayTaskId"]] = fields
    return records


def wait_for(env, job, count):
    # Polled here rather than by `sbatch --wait`, whose polls grow further
    # apart: it returned some 25 s after the last task had ended.
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        records = tasks(env, job)
        if len(records) == count and all(r["JobState"] not in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING") for r in records.values()):
            return records
        time.sleep(0.5)
    subprocess.run(["scancel", job], env=env, check=False)
    return tasks(env, job)


def normalised(report):
    """The report without what differs between two gradings of the same class.

    Run times; timelines, which are timings throughout; timings quoted in a
    message or details (a streaming property's failure says when the first
    result came); and seeds, fresh for every perturbed run. Everything else
    must match: learners and their order, paths, notebooks, checks, outcomes,
    points, messages, details."""
    if isinstance(report, dict):
        return {k: normalised(v) for k, v in report.items() if k not in ("time_s", "timeline", "seed")}
    if isinstance(report, list):
        return [normalised(v) for v in report]
    if isinstance(report, str):
        return re.sub(r"\d+(\.\d+)? ?ms\b", "<t> ms", report)
    return report


def test_an_array_of_shards_grades_the_class_as_one_run_does(cluster, tmp_path):
    env, state = cluster
    klass = make_class(tmp_path)
    reports = tmp_path / "reports"
    jobs = tmp_path / "jobs"
    jobs.mkdir()

    # The job script's defaults (2 CPUs, 3 GB each), shrunk only for a node too small for them.
    node = dict(re.findall(r"(\w+)=(\S*)", slurm(env, "scontrol", "--oneliner", "show", "node")))
    cpus = min(2, int(node["CPUTot"]))
    fit = [f"--cpus-per-task={cpus}", f"--mem-per-cpu={min(3072, int(node['RealMemory']) // cpus)}M"]
    # Submitted from jobs/, where the script's default --output puts the logs.
    job = slurm(
        env, "sbatch", "--parsable", "--array=0-3", *fit,
        JOB_SCRIPT, ROOT / "notebooks" / NOTEBOOK, klass, reports, cwd=jobs,
    ).strip()
    records = wait_for(env, job, 4)

    logs = {path.name: path.read_text() for path in sorted(jobs.glob("*.log"))}
    context = "".join(f"--- {name}\n{text}" for name, text in logs.items())
    context += "--- scontrol show job\n" + "".join(
        f"{i}: " + " ".join(f"{k}={r.get(k)}" for k in ("JobState", "Reason", "ExitCode", "NodeList", "StdOut")) + "\n"
        for i, r in sorted(records.items())
    )
    # The daemons' side, for a task that did not run at all.
    for daemon in ("slurmctld", "slurmd"):
        tail = (state / "log" / f"{daemon}.log").read_text().splitlines()[-15:]
        context += f"--- {daemon}.log (last lines)\n" + "\n".join(tail) + "\n"

    # Every shard ended well, though bob's and carol's checks failed (exit 1)
    # and dave's notebook is not JSON (exit 2 with a report): grades, not crashes.
    assert sorted(records) == ["0", "1", "2", "3"], context
    for index, record in records.items():
        assert (record["JobState"], record["ExitCode"]) == ("COMPLETED", "0:0"), f"task {index}\n{context}"
    # Slurm ran them, on its node: each task's log, named by the job script's
    # default --output, says where it ran.
    for index, record in records.items():
        log = logs.get(f"conclab-grade-{job}_{index}.log")
        assert log is not None, f"no log for task {index}\n{context}"
        assert f"shard {index}/4 of {klass} on {record['NodeList']} " in log, context
        assert record["NodeList"] == node["NodeName"], context

    # Each shard graded one learner: the class really was split.
    shards = [reports / f"shard-{index}.json" for index in range(4)]
    for index, shard in enumerate(shards):
        graded = [s["submission"] for s in json.loads(shard.read_text())["submissions"]]
        assert graded == [LEARNERS[index]], f"shard {index}\n{context}"

    merged = subprocess.run([CHECK, "merge", *shards, "--format", "json"], env=env, capture_output=True, text=True)
    whole = tmp_path / "unsharded.json"
    unsharded = subprocess.run(
        [CHECK, "grade", "--source", ROOT / "notebooks" / NOTEBOOK, klass, "--format", "json", "--output", whole],
        env=env, capture_output=True, text=True,
    )
    # Both say 2: dave's notebook is unreadable.
    assert (merged.returncode, unsharded.returncode) == (2, 2), f"{merged.stderr}\n{unsharded.stderr}"
    one_run = json.loads(whole.read_text())
    assert [s["submission"] for s in one_run["submissions"]] == LEARNERS
    assert normalised(json.loads(merged.stdout)) == normalised(one_run), context

    # What each learner's grade is, so that equal reports are also right ones.
    outcomes = {
        s["submission"]: {c["outcome"] for n in s["notebooks"] for c in n["checks"]}
        for s in one_run["submissions"]
    }
    assert outcomes == {
        "alice": {"passed"},
        "bob": {"passed", "failed"},
        "carol": {"passed", "failed"},
        "dave": {"bad_input"},
    }
