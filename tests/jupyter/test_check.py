"""`:check` in a notebook: the checker's feedback without leaving JupyterLab.

The kernel is started as Jupyter Server starts it (JPY_SESSION_NAME names the
notebook) and cells are sent as JupyterLab sends them (each execute request
carries the cell's id and metadata), so what the learner last ran, saved or
not, is what gets checked.
"""

import json
import os
import subprocess
import time

import nbformat
import pytest

from conftest import ROOT, fresh_kernel
from test_kernel import TIMEOUT, run, stdout_of

CHECK = ROOT / "target" / "debug" / "conclab-check"
NOTEBOOK = "07-semaphores.ipynb"

# Every permit handed out is lost: the public test's second assertion fails.
LEAKY_SEMAPHORE = """
pub struct Semaphore { free: labkit::sync::Mutex<usize>, released: labkit::sync::Condvar }
pub struct Permit<'a> { semaphore: &'a Semaphore }
impl Semaphore {
    pub fn new(permits: usize) -> Semaphore {
        Semaphore { free: labkit::sync::Mutex::new(permits), released: labkit::sync::Condvar::new() }
    }
    pub fn acquire(&self) -> Permit<'_> {
        let mut free = self.free.lock().unwrap();
        while *free == 0 { free = self.released.wait(free).unwrap(); }
        *free -= 1;
        Permit { semaphore: self }
    }
    pub fn available(&self) -> usize { *self.free.lock().unwrap() }
}
impl Drop for Permit<'_> {
    fn drop(&mut self) { let _ = self.semaphore; }
}
"""


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """The learner's copy of step 7, as `conclab-check release` writes it."""
    folder = tmp_path_factory.mktemp("learner")
    subprocess.run([str(CHECK), "release", str(ROOT / "notebooks" / NOTEBOOK), "--output", str(folder)],
                   check=True, stdout=subprocess.DEVNULL)
    return folder / NOTEBOOK


@pytest.fixture(scope="module")
def lab_kernel(released):
    """A kernel started for the released notebook, as Jupyter Server starts one."""
    env = {**os.environ, "JPY_SESSION_NAME": str(released)}
    with fresh_kernel(TIMEOUT, env=env, cwd=str(released.parent)) as km_kc:
        yield km_kc


def solution_cell(notebook, grade_id):
    return next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def run_in_cell(kc, cell, code):
    """Runs `code` as JupyterLab runs an edited, unsaved cell: with the cell's id and metadata."""
    metadata = {**cell.metadata, "cellId": cell.id, "deletedCells": [], "recordTiming": False}
    content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
               "allow_stdin": False, "stop_on_error": True}
    msg = kc.session.msg("execute_request", content, metadata=metadata)
    kc.shell_channel.send(msg)
    deadline = time.monotonic() + TIMEOUT
    while True:
        reply = kc.get_shell_msg(timeout=max(1, deadline - time.monotonic()))
        if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            return reply["content"]


def check(kc, line=":check"):
    reply, outputs = run(kc, line, timeout=180)
    return reply, stdout_of(outputs)


def test_check_grades_the_solution_as_last_run_not_as_saved(lab_kernel, released):
    _, kc = lab_kernel
    learner = nbformat.read(released, as_version=4)
    reply = run_in_cell(kc, solution_cell(learner, "step07-semaphore"), LEAKY_SEMAPHORE)
    assert reply["status"] == "ok"

    reply, text = check(kc)
    assert reply["status"] == "ok", reply
    assert f"Checking {NOTEBOOK}" in text
    assert "1 solution cell(s) as you last ran them, 1 as saved" in text
    assert "✗ step07-semaphore-test" in text, text
    assert "dropping a permit gives it back" in text, "the failing assertion's message reaches the learner"
    assert "step07-semaphore-hidden" not in text, "a learner's copy has no hidden tests"

    source = nbformat.read(ROOT / "notebooks" / NOTEBOOK, as_version=4)
    for grade_id in ("step07-semaphore", "step07-limited-downloads"):
        reference = solution_cell(source, grade_id).source
        assert run_in_cell(kc, solution_cell(learner, grade_id), reference)["status"] == "ok"
    reply, text = check(kc)
    assert reply["status"] == "ok", reply
    assert "2 solution cell(s) as you last ran them" in text
    assert "✓ step07-semaphore-test" in text and "✓ step07-limited-downloads-test" in text, text
    assert "✗" not in text, text

    saved = json.loads(released.read_text())
    assert "your solution here" in "".join(solution_cell(nbformat.reads(json.dumps(saved), 4),
                                                         "step07-semaphore").source), \
        "the learner's file is read, never written"


def test_check_one_exercise_runs_only_its_tests(lab_kernel):
    _, kc = lab_kernel
    reply, text = check(kc, ":check step07-limited-downloads")
    assert reply["status"] == "ok", reply
    assert "with the tests of step07-limited-downloads" in text
    assert "step07-limited-downloads-test" in text, text
    assert "step07-semaphore-test" not in text, text

    reply, _ = check(kc, ":check step07-no-such-exercise")
    assert reply["status"] == "error"
    assert 'no exercise "step07-no-such-exercise" here; its exercises are step07-semaphore, step07-limited-downloads' \
        in reply["evalue"], reply["evalue"]


def test_check_names_a_missing_notebook(lab_kernel):
    _, kc = lab_kernel
    reply, _ = check(kc, ":check no-such-notebook.ipynb")
    assert reply["status"] == "error"
    assert reply["ename"] == "CheckError"
    assert "no-such-notebook.ipynb: cannot read it" in reply["evalue"]


def test_check_without_a_notebook_says_how_to_name_one():
    env = {k: v for k, v in os.environ.items() if k != "JPY_SESSION_NAME"}
    with fresh_kernel(TIMEOUT, env=env) as (_, kc):
        reply, _ = check(kc)
        assert reply["status"] == "error"
        assert "`:check path/to/notebook.ipynb`" in reply["evalue"]


def test_interrupting_a_check_stops_it_and_keeps_the_variables(lab_kernel):
    km, kc = lab_kernel
    assert run(kc, "let kept = 41;")[0]["status"] == "ok"
    msg_id = kc.execute(":check")
    time.sleep(2)
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=30)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "Interrupted"
    left = subprocess.run(["pgrep", "-f", "conclab-check feedback"], capture_output=True, text=True).stdout
    assert not left.strip(), f"the checker was stopped: {left}"
    reply, outputs = run(kc, "kept + 1")
    assert reply["status"] == "ok"
    assert any("42" in c.get("data", {}).get("text/plain", "") for t, c in outputs if t == "execute_result")


# Locks in argument order: the public test runs one transfer at a time, so it
# passes when run in the notebook, but the lock order has a cycle.
ARGUMENT_ORDER_TRANSFER = """
pub fn transfer(accounts: &[labkit::sync::Mutex<i64>], from: usize, to: usize, amount: i64) {
    if from == to { return; }
    let mut source = accounts[from].lock().unwrap();
    let mut target = accounts[to].lock().unwrap();
    *source -= amount;
    *target += amount;
}
"""


def test_check_shows_a_lock_order_cycle_the_notebook_run_does_not(lab_kernel, tmp_path):
    _, kc = lab_kernel
    name = "05-shared-state.ipynb"
    subprocess.run([str(CHECK), "release", str(ROOT / "notebooks" / name), "--output", str(tmp_path)],
                   check=True, stdout=subprocess.DEVNULL)
    learner = nbformat.read(tmp_path / name, as_version=4)
    assert run_in_cell(kc, solution_cell(learner, "step05-transfer"), ARGUMENT_ORDER_TRANSFER)["status"] == "ok"
    test = solution_cell(learner, "step05-transfer-test")
    assert run_in_cell(kc, test, test.source)["status"] == "ok", "the public test's assertions pass"

    reply, text = check(kc, f":check {tmp_path / name}")
    assert reply["status"] == "ok", reply
    assert "✗ step05-transfer-test  the test passed, but not every property held: no_lock_cycle" in text, text
    assert "✗ step05-transfer-test/no_lock_cycle" in text, text
    assert "account[0] → account[2]" in text and "take the locks in one global order" in text, text
