"""`:check` in a notebook: the checker's feedback without leaving JupyterLab.

The kernel is started as Jupyter Server starts it (JPY_SESSION_NAME names the
notebook) and cells are sent as JupyterLab sends them (each execute request
carries the cell's id and metadata), so what the learner last ran, saved or
not, is what gets checked.
"""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import nbformat
import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from conftest import ROOT, fresh_kernel, install_test_kernel, run_in_cell, spare_checkers
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


def check(kc, line=":check"):
    """Runs a `:check` line: (reply, what it printed and its text/plain report)."""
    reply, text, _ = check_rich(kc, line)
    return reply, text


def check_rich(kc, line=":check"):
    """Runs a `:check` line: (reply, its text, the text/html of its report or None)."""
    reply, outputs = run(kc, line, timeout=180)
    reports = [c["data"] for t, c in outputs if t == "display_data"]
    assert len(reports) <= 1, reports
    text = stdout_of(outputs) + "".join(r.get("text/plain", "") for r in reports)
    html = reports[0].get("text/html") if reports else None
    if reports:
        assert reports[0].get("text/plain"), "consoles get the text report"
    return reply, text, html


def outside_details(html):
    """The HTML with every <details>…</details> cut out: what a learner sees unfolded."""
    shown, rest = "", html
    while "<details" in rest:
        before, _, rest = rest.partition("<details")
        shown += before
        rest = rest.partition("</details>")[2]
    return shown + rest


def assert_no_pids_outside_details(html):
    shown = outside_details(html)
    for secret in ("pid ", "tid ", "futex", "0x"):
        assert secret not in shown, f"{secret!r} outside the folded evidence: {shown}"


def test_check_grades_the_solution_as_last_run_not_as_saved(lab_kernel, released):
    _, kc = lab_kernel
    learner = nbformat.read(released, as_version=4)
    reply = run_in_cell(kc, solution_cell(learner, "step07-semaphore"), LEAKY_SEMAPHORE)
    assert reply["status"] == "ok"

    reply, text, html = check_rich(kc)
    assert reply["status"] == "ok", reply
    assert f"Checking {NOTEBOOK}" in text
    assert "1 solution cell(s) as you last ran them, 1 as saved" in text
    assert "✗ step07-semaphore-test" in text, text
    assert html and 'class="conclab-summary"' in html, html
    assert html.index("conclab-summary\"") < html.index('class="conclab-failure"'), "the summary comes first"
    assert "Test step07-semaphore-test failed" in html and "dropping a permit gives it back" in html, html
    assert "✓ step07-semaphore\n" not in text and "<code>step07-semaphore</code>" not in html, \
        "a solution cell that merely ran is no pass"
    assert "dropping a permit gives it back" in text, "the failing assertion's message reaches the learner"
    assert "step07-semaphore-hidden" not in text, "a learner's copy has no hidden tests"

    source = nbformat.read(ROOT / "notebooks" / NOTEBOOK, as_version=4)
    for grade_id in ("step07-semaphore", "step07-limited-downloads"):
        reference = solution_cell(source, grade_id).source
        assert run_in_cell(kc, solution_cell(learner, grade_id), reference)["status"] == "ok"
    reply, text, html = check_rich(kc)
    assert reply["status"] == "ok", reply
    assert "2 solution cell(s) as you last ran them" in text
    assert 'class="conclab-summary"' in html and "checks passed" in html, html
    assert 'class="conclab-failure"' not in html and "<svg" not in html, html
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


def test_check_says_when_a_notebook_has_nothing_to_check(lab_kernel, tmp_path):
    _, kc = lab_kernel
    plain = tmp_path / "scratch.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("let x = 1;")]), plain)
    reply, _ = check(kc, f":check {plain}")
    assert reply["status"] == "error"
    assert "scratch.ipynb has no tests to check" in reply["evalue"], reply["evalue"]


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

    reply, text, html = check_rich(kc, f":check {tmp_path / name}")
    assert reply["status"] == "ok", reply
    assert "✗ step05-transfer-test  the test passed, but not every property held: no_lock_cycle" in text, text
    assert "✗ step05-transfer-test/no_lock_cycle" in text, text
    assert "account[0] → account[2]" in text and "take the locks in one global order" in text, text
    # The picture: the threads that made the cycle, the moment it closed.
    assert html.count('<svg class="conclab-timeline"') == 1, html
    assert "the lock-order cycle closes" in html, html
    assert_no_pids_outside_details(html)


# The lab's names for the semaphore's lock and condition variable.
NAMED = LEAKY_SEMAPHORE.replace(
    "labkit::sync::Mutex::new(permits), released: labkit::sync::Condvar::new()",
    'labkit::sync::Mutex::named("permits", permits), released: labkit::sync::Condvar::named("released")')

# A release that never notifies: the first holders give their permits back,
# and the threads waiting for one sleep forever.
SILENT_RELEASE = NAMED.replace(
    "fn drop(&mut self) { let _ = self.semaphore; }",
    "fn drop(&mut self) { *self.semaphore.free.lock().unwrap() += 1; }")

# An acquire that does not wait: every thread gets in at once.
NO_WAIT = NAMED.replace(
    "while *free == 0 { free = self.released.wait(free).unwrap(); }\n        *free -= 1;",
    "*free = free.saturating_sub(1);").replace(
    "fn drop(&mut self) { let _ = self.semaphore; }",
    "fn drop(&mut self) { *self.semaphore.free.lock().unwrap() += 1; self.semaphore.released.notify_all(); }")


def with_solution(kc, released, code):
    learner = nbformat.read(released, as_version=4)
    assert run_in_cell(kc, solution_cell(learner, "step07-semaphore"), code)["status"] == "ok"
    source = nbformat.read(ROOT / "notebooks" / NOTEBOOK, as_version=4)
    reference = solution_cell(source, "step07-limited-downloads").source
    assert run_in_cell(kc, solution_cell(learner, "step07-limited-downloads"), reference)["status"] == "ok"


def test_a_hang_is_shown_once_folded_with_a_timeline_of_the_threads(lab_kernel, released, tmp_path):
    _, kc = lab_kernel
    assert SILENT_RELEASE != NAMED != LEAKY_SEMAPHORE and "saturating_sub" in NO_WAIT
    with_solution(kc, released, SILENT_RELEASE)
    reply, text, html = check_rich(kc)
    (tmp_path / "check-failing.html").write_text(html or "")
    assert reply["status"] == "ok", reply
    assert "step07-limited-downloads-test hung" in text, text
    assert "waits on condition variable released that nobody notifies" in html, html
    assert "Test step07-limited-downloads-test hung" in html, html
    # The diagnosis (every thread, pids, futexes) once, folded, under the hang.
    assert html.count('<details class="conclab-evidence"') == 1, html
    assert html.count("- conclab-relay: pid ") == 1, "the thread dump is not repeated"
    assert "Not run, because step07-limited-downloads-test hung" in html, html
    assert html.count('<svg class="conclab-timeline"') == 1, html
    assert "nothing moves after this" in html, html
    assert_no_pids_outside_details(html)
    evidence = html[html.index('<details class="conclab-evidence"'):]
    assert "waits for <b>released</b>" in evidence, "the learner's threads by name, first"
    assert evidence.index("waits for <b>released</b>") < evidence.index("pid "), evidence
    assert text.count("- conclab-relay: pid ") == 1, "the text report tells the hang once too"


def test_a_broken_limit_is_drawn_with_the_moment_marked(lab_kernel, released):
    _, kc = lab_kernel
    with_solution(kc, released, NO_WAIT)
    reply, text, html = check_rich(kc, ":check step07-limited-downloads")
    assert reply["status"] == "ok", reply
    assert "✗ step07-limited-downloads-test/max_inside(download)" in text, text
    assert "Too many at once in <code>download</code>" in html, html
    assert html.count('<svg class="conclab-timeline"') == 1, html
    # 4 downloads, one lane each, the moment the limit of 2 broke marked.
    svg = html[html.index('<svg class="conclab-timeline"'):html.index("</svg>")]
    assert "limit 2" in svg and "in &quot;download&quot; at once" in svg, svg
    assert svg.count('class="conclab-tl-span"') >= 4 + 1, "4 downloads and the legend"
    assert 'class="conclab-tl-mark"' in svg, svg
    assert_no_pids_outside_details(html)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyter_server(tmp_path):
    """A real Jupyter Server on the learner's folder, as `jupyter lab` runs one."""
    port, token = free_port(), uuid.uuid4().hex
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}"],
        stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError((tmp_path / "server.log").read_text())
                time.sleep(0.2)
        yield base, token, tmp_path
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def api(base, token, method, path, body=None):
    request = urllib.request.Request(f"{base}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"token {token}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read() or b"null")


async def run_over_websocket(ws, code, metadata=None, timeout=180):
    """Sends an execute request as JupyterLab does; returns (reply content, stdout)."""
    msg_id = uuid.uuid4().hex
    ws.write_message(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "learner",
                   "session": "lab", "date": "", "version": "5.3"},
        "parent_header": {}, "metadata": metadata or {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True}}))
    reply, stdout, idle = None, "", False
    deadline = time.monotonic() + timeout
    while reply is None or not idle:
        raw = await asyncio.wait_for(ws.read_message(), max(1, deadline - time.monotonic()))
        assert raw is not None, "the server closed the channel"
        msg = json.loads(raw)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "execute_reply":
            reply = msg["content"]
        elif msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            stdout += msg["content"]["text"]
        elif msg["msg_type"] == "display_data":
            assert "text/html" in msg["content"]["data"], msg
            stdout += msg["content"]["data"]["text/plain"]
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            idle = True
    return reply, stdout


def wait_for(what, done, timeout=120):
    deadline = time.monotonic() + timeout
    while not (result := done()):
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.2)
    return result


def test_a_checker_is_kept_ready_while_the_learner_reads_and_dies_with_the_kernel(released):
    env = {**os.environ, "JPY_SESSION_NAME": str(released)}
    with fresh_kernel(TIMEOUT, env=env, cwd=str(released.parent)) as (km, kc):
        kernel = km.provisioner.process.pid
        run(kc, "1")
        first = wait_for("a spare checker", lambda: spare_checkers(kernel))
        assert len(first) == 1, first
        reply, text = check(kc, ":check step07-semaphore")
        assert reply["status"] == "ok", text
        assert "step07-semaphore-test" in text, text
        assert first[0] not in spare_checkers(kernel), "the spare did the check"
        # Ready again for the next :check.
        second = wait_for("another spare checker", lambda: spare_checkers(kernel))
    # The kernel is gone: so are its spare checker and the kernel it ran.
    wait_for("the spare checker to exit", lambda: not os.path.exists(f"/proc/{second[0]}"), timeout=10)


def test_a_spare_checkers_kernel_warms_up_and_starts_no_checker_of_its_own(released, tmp_path):
    # As the spare checker starts its kernel: told to warm up only, in the
    # environment of the learner's kernel, which names a notebook.
    env = {**os.environ, "JPY_SESSION_NAME": str(released), "CONCLAB_IDLE_WORK": "warm-up",
           "CONCLAB_LOG": "warn,conclab_kernel=info"}
    log = tmp_path / "kernel.log"
    with open(log, "w") as stderr, fresh_kernel(TIMEOUT, env=env, stderr=stderr) as (km, kc):
        kernel = km.provisioner.process.pid
        run(kc, "1")
        wait_for("the warm-up", lambda: "rust-analyzer warmed up" in log.read_text())
        # Time enough to have started a spare, had it been allowed to.
        time.sleep(3)
        assert spare_checkers(kernel) == [], "a checker's kernel started a checker"
        reply, outputs = run(kc, ":vars")
        assert reply["status"] == "ok"
        assert "conclab_warm_up" not in stdout_of(outputs), "the warm-up left its variable"


def test_check_in_a_notebook_that_jupyter_server_opened(jupyter_server):
    base, token, root = jupyter_server
    folder = root / "week 7"
    subprocess.run([str(CHECK), "release", str(ROOT / "notebooks" / NOTEBOOK), "--output", str(folder)],
                   check=True, stdout=subprocess.DEVNULL)
    learner = nbformat.read(folder / NOTEBOOK, as_version=4)
    cell = solution_cell(learner, "step07-semaphore")
    # What JupyterLab asks for when a notebook is opened.
    session = api(base, token, "POST", "/api/sessions", {
        "path": f"week 7/{NOTEBOOK}", "name": NOTEBOOK, "type": "notebook",
        "kernel": {"name": install_test_kernel()}})

    async def drive():
        url = f"{base.replace('http', 'ws')}/api/kernels/{session['kernel']['id']}/channels?session_id=lab"
        ws = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {token}"}))
        try:
            metadata = {**cell.metadata, "cellId": cell.id, "deletedCells": [], "recordTiming": False}
            reply, _ = await run_over_websocket(ws, LEAKY_SEMAPHORE, metadata)
            assert reply["status"] == "ok", reply
            return await run_over_websocket(ws, ":check")
        finally:
            ws.close()

    try:
        reply, text = asyncio.run(drive())
    finally:
        api(base, token, "DELETE", f"/api/sessions/{session['id']}")
    assert reply["status"] == "ok", reply
    assert f"Checking {NOTEBOOK}" in text and "1 solution cell(s) as you last ran them" in text, text
    assert "dropping a permit gives it back" in text, text
