#!/usr/bin/env python3
"""`:check` as a learner runs it, against the same check started cold, in one run.

For each step notebook, the learner's copy (`conclab-check release`) with the
reference solutions typed into its solution cells: a kernel started as Jupyter
Server starts it (told its notebook in JPY_SESSION_NAME) runs every cell, as
JupyterLab sends them (with each cell's id and metadata), then reads (stays
idle) until its spare checker is ready; `:check` is timed from the
execute_request to the reply. Then the same on the source notebook, whose
check also runs the hidden tests and the perturbed runs. The baseline is the
learner's check from a terminal, `conclab-check feedback NOTEBOOK`, which
starts its own kernel: what `:check` would cost without the spare.

For step 7, also a hung solution in the source notebook (whose hidden tests
wait for permits): a semaphore whose permits never wake a waiter, stamped
with CLOCK_MONOTONIC where its first waiter starts to wait forever;
`:check` is timed from that stamp to the reply.

Goals (issue 12): the learner's report within 3 s of running the cell, quiet
machine; a hang reported within 5 s of its start.

Usage: .venv/bin/python bench/check.py [NOTEBOOK ...]   (build first: cargo build --workspace)
"""

import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "jupyter"))

import nbformat  # noqa: E402

from conftest import ROOT, fresh_kernel, kernel_binary, run, run_in_cell, spare_checkers  # noqa: E402

CHECK = str(ROOT / "target" / "debug" / "conclab-check")
STEPS = sorted((ROOT / "notebooks").glob("0[1-8]-*.ipynb"))
GOAL_S = 3.0
HANG_GOAL_S = 5.0
# A solution that hangs, per notebook: its cell, and the text replaced in
# the reference solution ({stamp} is the file the first endless wait stamps).
HANGS = {
    "07-semaphores.ipynb": ("step07-semaphore", [
        ("        self.semaphore.released.notify_one();\n", ""),
        ("        let mut free = self.released.wait_while(",
         "        if *free == 0 {\n"
         "            use std::io::Write;\n"
         "            if let Ok(mut stamp) = std::fs::OpenOptions::new().write(true).create_new(true).open(\"{stamp}\") {\n"
         "                let _ = write!(stamp, \"{}\", labkit::trace::monotonic_ns());\n"
         "            }\n"
         "        }\n"
         "        let mut free = self.released.wait_while("),
    ]),
}


def tree_cpu_ticks(root):
    """utime + stime of `root` and every descendant, in clock ticks."""
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        try:
            fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
            for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, IndexError, ValueError):
            continue
    return total


def wait_idle(kernel_pid, quiet_for=1.5, timeout=120):
    """Waits until the kernel has a spare checker and its tree used no CPU for `quiet_for` s."""
    deadline = time.monotonic() + timeout
    last, quiet_since = tree_cpu_ticks(kernel_pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = tree_cpu_ticks(kernel_pid)
        if now != last:
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_for and spare_checkers(kernel_pid):
            return
    raise SystemExit(f"the kernel {kernel_pid} never settled with a spare checker")


def grade_id(cell):
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def check_in_kernel(notebook, solutions):
    """:check on `notebook` after running its cells, solution cells as `solutions` (by grade_id) has them."""
    env = {**os.environ, "JPY_SESSION_NAME": str(notebook)}
    cells = nbformat.read(notebook, as_version=4).cells
    with fresh_kernel(120, env=env, cwd=str(notebook.parent)) as (km, kc):
        for cell in cells:
            if cell.cell_type == "code":
                reply = run_in_cell(kc, cell, solutions.get(grade_id(cell), cell.source), timeout=300)
                if reply["status"] != "ok":
                    raise SystemExit(f"{notebook.name}: a cell failed: {reply}")
        wait_idle(km.provisioner.process.pid)
        started = time.perf_counter()
        reply, outputs = run(kc, ":check", timeout=300)
        elapsed = time.perf_counter() - started
    text = "".join(c.get("text", "") + c.get("data", {}).get("text/plain", "") for _, c in outputs)
    if reply["status"] != "ok" or re.search(r"\b\d+ failed\b", text):
        raise SystemExit(f"{notebook.name}: the reference solutions did not pass :check: {text}")
    return elapsed


def check_hung(notebook, solutions, folder):
    """Seconds from the first endless wait of a hung solution to `:check`'s
    reply, or None when the notebook has no hung solution in HANGS."""
    if notebook.name not in HANGS:
        return None
    cell_id, edits = HANGS[notebook.name]
    stamp = pathlib.Path(folder) / "hang-started"
    code = solutions[cell_id]
    for old, new in edits:
        if old not in code:
            raise SystemExit(f"{notebook.name}: the reference {cell_id} has changed: {old!r} is not in it")
        code = code.replace(old, new.replace("{stamp}", str(stamp)))
    env = {**os.environ, "JPY_SESSION_NAME": str(notebook)}
    cells = nbformat.read(notebook, as_version=4).cells
    with fresh_kernel(120, env=env, cwd=str(notebook.parent)) as (km, kc):
        # Up to the hung solution only: its tests would hang here too.
        for cell in cells:
            if cell.cell_type == "code":
                reply = run_in_cell(kc, cell, code if grade_id(cell) == cell_id else solutions.get(grade_id(cell), cell.source), timeout=300)
                if reply["status"] != "ok":
                    raise SystemExit(f"{notebook.name}: a cell failed: {reply}")
                if grade_id(cell) == cell_id:
                    break
        wait_idle(km.provisioner.process.pid)
        reply, outputs = run(kc, f":check {cell_id}", timeout=300)
        replied = time.monotonic_ns()
    text = "".join(c.get("text", "") + c.get("data", {}).get("text/plain", "") for _, c in outputs)
    if "hang" not in text.lower() and "deadlock" not in text.lower():
        raise SystemExit(f"{notebook.name}: :check did not report the hang: {text}")
    if not stamp.exists():
        raise SystemExit(f"{notebook.name}: the hung solution never waited: {text}")
    return (replied - int(stamp.read_text())) / 1e9


def check_cold(notebook):
    started = time.perf_counter()
    done = subprocess.run([CHECK, "feedback", str(notebook)], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{notebook.name}: conclab-check feedback exited {done.returncode}: {done.stdout}{done.stderr}")
    return elapsed


def main():
    sources = [pathlib.Path(a).resolve() for a in sys.argv[1:]] or STEPS
    if not kernel_binary().exists():
        raise SystemExit("build first: cargo build --workspace")
    print(f"{'notebook':32}{'learner s':>10}{'source s':>10}{'cold s':>9}{'ratio':>7}{'goal':>6}{'hung s':>8}{'goal':>6}")
    totals = [0.0, 0.0, 0.0]
    with tempfile.TemporaryDirectory(prefix="conclab-bench-check-") as folder:
        for source in sources:
            subprocess.run([CHECK, "release", str(source), "--output", folder], check=True,
                           stdout=subprocess.DEVNULL)
            learner = pathlib.Path(folder) / source.name
            reference = {grade_id(c): c.source for c in nbformat.read(source, as_version=4).cells
                         if c.metadata.get("nbgrader", {}).get("solution")}
            # The same copy saved with the solutions, for the terminal's check.
            filled = nbformat.read(learner, as_version=4)
            for cell in filled.cells:
                cell.source = reference.get(grade_id(cell), cell.source)
            saved = pathlib.Path(folder) / "saved" / source.name
            saved.parent.mkdir(exist_ok=True)
            nbformat.write(filled, saved)
            figures = [check_in_kernel(learner, reference), check_in_kernel(source, {}), check_cold(saved)]
            totals = [t + f for t, f in zip(totals, figures)]
            met = "met" if figures[0] <= GOAL_S else "no"
            # The source notebook: its hidden tests are the ones that wait for a permit.
            hung = check_hung(source, reference, folder)
            hung_text = "" if hung is None else f"{hung:>8.2f}{'met' if hung <= HANG_GOAL_S else 'no':>6}"
            print(f"{source.name:32}{figures[0]:>10.2f}{figures[1]:>10.2f}{figures[2]:>9.2f}"
                  f"{figures[0] / figures[2]:>7.2f}{met:>6}{hung_text}", flush=True)
    print(f"{'all':32}{totals[0]:>10.2f}{totals[1]:>10.2f}{totals[2]:>9.2f}{totals[0] / totals[2]:>7.2f}")
    print("learner: :check on the learner's copy with the reference solutions, spare checker ready;")
    print("source: the same on the source notebook (hidden tests, perturbed runs); cold: the")
    print("learner's check by conclab-check feedback, starting its own kernel; ratio: learner / cold;")
    print("hung: from a hung solution's first endless wait to :check's reply (a spare checker ready)")


if __name__ == "__main__":
    main()
