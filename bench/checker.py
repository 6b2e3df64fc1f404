#!/usr/bin/env python3
"""conclab-check grading the lab, next to nbconvert running the same notebooks
through evcxr_jupyter, measured in one run.

- one submission: the 8 reference notebooks (steps 1-8), graded by
  `conclab-check grade` (every test, hidden test, property and perturbed run);
- a batch of COPIES such submissions, graded in one `conclab-check grade`;
- the baseline: `jupyter nbconvert --execute` with evcxr_jupyter on the same
  8 notebooks (a `:dep` cell added, since evcxr_jupyter has no prelude), one
  notebook per invocation as graders built on nbconvert run them; for the
  batch, BASELINE_COPIES submissions are run and the time per notebook is
  what compares.

Peak memory is the most resident memory of the whole process tree at once,
sampled every 100 ms.

Usage: .venv/bin/python bench/checker.py [--copies 20] [--baseline-copies 1]
       .venv/bin/python bench/checker.py --profile [NOTEBOOK]  (where one notebook's time goes)
(build first: cargo build --workspace; evcxr_jupyter from
`cargo install evcxr_jupyter --locked`).
"""

import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHECK = os.environ.get("CONCLAB_CHECK", str(ROOT / "target" / "debug" / "conclab-check"))
KERNEL = str(ROOT / "target" / "debug" / "conclab-kernel")
JUPYTER = str(ROOT / ".venv" / "bin" / "jupyter")
STEPS = sorted(p for p in (ROOT / "notebooks").glob("0[1-8]-*.ipynb"))
DEPS = (
    ':dep rayon = "1"\n:dep crossbeam = "0.8"\n:dep serde = { version = "1", features = ["derive"] }\n'
    ':dep serde_json = "1"\n'
    f':dep labkit = {{ path = "{ROOT / "notebooks" / "labkit"}" }}\n'
)


class PeakMemory:
    """Samples the summed resident memory of a process and its descendants."""

    def __init__(self, pid):
        self.pid, self.peak, self.running = pid, 0, True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while self.running:
            self.peak = max(self.peak, tree_rss_kib(self.pid))
            time.sleep(0.1)

    def stop(self):
        self.running = False
        self.thread.join()
        return self.peak


def tree_rss_kib(root):
    children = {}
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack += children.get(pid, [])
        try:
            status = pathlib.Path(f"/proc/{pid}/status").read_text()
            total += int(next(l for l in status.splitlines() if l.startswith("VmRSS")).split()[1])
        except (OSError, StopIteration):
            continue
    return total


def timed(command, env=None):
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    memory = PeakMemory(process.pid)
    stdout, stderr = process.communicate()
    peak = memory.stop()
    return time.perf_counter() - started, peak, process.returncode, stdout, stderr


def grade(source, submissions):
    seconds, peak, code, stdout, stderr = timed(
        [CHECK, "grade", "--source", str(source), *map(str, submissions), "--format", "json"])
    if code not in (0, 1):
        sys.exit(f"conclab-check failed ({code}): {stderr}")
    report = json.loads(stdout)
    checks = [c for s in report["submissions"] for n in s["notebooks"] for c in n["checks"]]
    failed = [f"{s['submission']}: {c['id']}: {c['message']}" for s in report["submissions"]
              for n in s["notebooks"] for c in n["checks"] if c["outcome"] != "passed"]
    for line in failed:
        print(f"  not passed: {line}", file=sys.stderr)
    return seconds, peak, len(checks), failed


def nbconvert(notebooks, work, env):
    """Runs each notebook in its own nbconvert, one after another."""
    total_peak, seconds, errors = 0, 0.0, 0
    for path in notebooks:
        notebook = json.loads(path.read_text())
        notebook["cells"].insert(0, {"cell_type": "code", "metadata": {}, "outputs": [],
                                     "execution_count": None, "source": DEPS})
        copy = work / f"evcxr-{path.parent.name}-{path.name}"
        copy.write_text(json.dumps(notebook))
        took, peak, code, _, stderr = timed(
            [JUPYTER, "nbconvert", "--execute", "--to", "notebook", "--allow-errors",
             "--ExecutePreprocessor.kernel_name=bench-evcxr", "--ExecutePreprocessor.timeout=600",
             "--output", str(copy.with_suffix(".out.ipynb")), str(copy)], env=env)
        if code != 0:
            sys.exit(f"nbconvert failed on {path.name}: {stderr[-2000:]}")
        ran = json.loads(copy.with_suffix(".out.ipynb").read_text())
        errors += sum(1 for c in ran["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error")
        seconds += took
        total_peak = max(total_peak, peak)
    return seconds, total_peak, errors


PHASE = re.compile(r'conclab_check::timing: phase="([^"]*)" cell="([^"]*)" seconds=([0-9.e-]+)')


def profile(notebook):
    """Grades one reference notebook as its own submission and prints where
    the time went, from the checker's timing log (conclab_check::timing)."""
    env = {**os.environ, "CONCLAB_LOG": "conclab_check::timing=info"}
    took, _, code, _, stderr = timed(
        [CHECK, "grade", "--source", str(notebook), str(notebook), "--format", "json"], env=env)
    if code not in (0, 1):
        sys.exit(f"conclab-check failed ({code}): {stderr[-2000:]}")
    phases = [(m[1], m[2], float(m[3])) for m in PHASE.finditer(stderr)]
    print(f"\nwhere the time of grading {notebook.name} goes ({took:.1f} s in all):")
    print(f"{'phase':16}{'cell':40}{'s':>8}")
    for phase, cell, seconds in phases:
        if phase != "notebook":
            print(f"{phase:16}{cell:40}{seconds:>8.2f}")
    totals = {}
    for phase, _, seconds in phases:
        totals[phase] = totals.get(phase, 0.0) + seconds
    print("\n" + "  ".join(f"{phase} {seconds:.2f} s" for phase, seconds in totals.items()))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--baseline-copies", type=int, default=1)
    parser.add_argument("--profile", nargs="?", const="07-semaphores.ipynb", metavar="NOTEBOOK",
                        help="only print where the time of grading one lab notebook goes")
    args = parser.parse_args()
    subprocess.run([KERNEL, "prepare"], check=True, stdout=subprocess.DEVNULL)
    if args.profile:
        profile(ROOT / "notebooks" / args.profile)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        source = tmp / "source"
        source.mkdir()
        for path in STEPS:
            shutil.copy(path, source)
        batch = []
        for n in range(args.copies):
            learner = tmp / "class" / f"learner-{n:02}"
            shutil.copytree(source, learner)
            batch.append(learner)
        rows = []
        one = grade(source, batch[:1])
        rows.append(("conclab-check grade, 1 submission", one[0], len(STEPS), one[1], f"{one[2]} checks, {len(one[3])} not passed"))
        many = grade(source, batch)
        notebooks = len(STEPS) * args.copies
        rows.append((f"conclab-check grade, {args.copies} submissions", many[0], notebooks, many[1],
                     f"{many[2]} checks, {len(many[3])} not passed"))
        evcxr = shutil.which("evcxr_jupyter")
        if evcxr:
            data = tmp / "jupyter"
            spec = data / "kernels" / "bench-evcxr"
            spec.mkdir(parents=True)
            (spec / "kernel.json").write_text(json.dumps({
                "argv": [evcxr, "--control_file", "{connection_file}"],
                "display_name": "Rust (evcxr)", "language": "rust"}))
            env = {**os.environ, "JUPYTER_DATA_DIR": str(data)}
            work = tmp / "evcxr"
            work.mkdir()
            seconds, peak, errors = nbconvert(STEPS, work, env)
            rows.append(("nbconvert + evcxr_jupyter, 1 submission", seconds, len(STEPS), peak,
                         f"{errors} cells failed; runs cells, checks nothing"))
            copies = [source] * args.baseline_copies
            seconds, peak, errors = nbconvert([p for c in copies for p in sorted(c.glob("*.ipynb"))], work, env)
            rows.append((f"nbconvert + evcxr_jupyter, {args.baseline_copies} submission(s)", seconds,
                         len(STEPS) * args.baseline_copies, peak, f"{errors} cells failed"))
        else:
            print("evcxr_jupyter is not on PATH: `cargo install evcxr_jupyter --locked` for the baseline")
    print(f"\n{'run':44}{'wall s':>9}{'notebooks':>11}{'s/notebook':>12}{'peak MiB':>10}  notes")
    for name, seconds, count, peak, notes in rows:
        print(f"{name:44}{seconds:>9.1f}{count:>11}{seconds / count:>12.2f}{peak / 1024:>10.0f}  {notes}")
    if len(rows) > 2:
        print(f"\nper notebook, conclab-check batch / nbconvert+evcxr: {rows[1][1] / rows[1][2] / (rows[3][1] / rows[3][2]):.2f}")
        print(f"per notebook, conclab-check one submission / nbconvert+evcxr: {rows[0][1] / rows[0][2] / (rows[2][1] / rows[2][2]):.2f}")


if __name__ == "__main__":
    main()
