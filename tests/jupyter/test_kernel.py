"""conclab-kernel driven by jupyter_client as JupyterLab and nbclient drive it.

These tests cover what the conformance suite does not: interrupting a hung
cell, signatures, output order and ownership, execution counts, restarts.
"""

import os
import pathlib
import tempfile
import time
import uuid

import pytest
from jupyter_client.session import Session

from conftest import fresh_kernel, run

TIMEOUT = 60


@pytest.fixture(scope="module")
def kernel():
    with fresh_kernel(TIMEOUT) as km_kc:
        yield km_kc


def stdout_of(outputs):
    return "".join(c["text"] for t, c in outputs if t == "stream" and c["name"] == "stdout")


def test_first_cell_is_one_and_silent_cells_do_not_count():
    with fresh_kernel(TIMEOUT) as (_, kc):
        reply, _ = run(kc, "let counted = 1;")
        assert reply["execution_count"] == 1
        reply, outputs = run(kc, "counted + 1", silent=True)
        assert reply["status"] == "ok"
        assert outputs == [], "a silent cell publishes no result"
        reply, _ = run(kc, "counted + 2")
        assert reply["execution_count"] == 2


def test_output_of_joined_threads_arrives_whole_and_before_the_reply(kernel):
    _, kc = kernel
    code = """
let handles: Vec<_> = (0..4)
    .map(|t| std::thread::spawn(move || for i in 0..250 { println!("thread {t} line {i}"); }))
    .collect();
for h in handles { h.join().unwrap(); }
print!("done without newline");
"""
    reply, outputs = run(kc, code)
    assert reply["status"] == "ok"
    text = stdout_of(outputs)
    lines = text.split("\n")
    assert sum(1 for line in lines if line.startswith("thread ")) == 1000
    assert text.endswith("done without newline")
    # The next cell's output is its own.
    reply, outputs = run(kc, 'println!("next cell");')
    assert stdout_of(outputs) == "next cell\n"


def test_displays_keep_their_place_among_stdout_lines(kernel):
    _, kc = kernel
    code = """
println!("before");
eprintln!("warning");
labkit::show::html("<i>middle</i>");
print!("partial ");
println!("after");
"""
    reply, outputs = run(kc, code)
    assert reply["status"] == "ok"
    # stdout and displays share one ordered pipe; stderr is in order with
    # itself (its place among stdout lines is not guaranteed, as in ipykernel).
    in_order = [(t, c.get("text") or c["data"]["text/html"]) for t, c in outputs
                if t == "display_data" or c.get("name") == "stdout"]
    assert in_order == [
        ("stream", "before\n"),
        ("display_data", "<i>middle</i>"),
        ("stream", "partial after\n"),
    ], outputs
    stderr = [c["text"] for t, c in outputs if t == "stream" and c["name"] == "stderr"]
    assert stderr == ["warning\n"]


def test_a_panic_is_an_error_named_panic_and_threads_panics_are_stderr(kernel):
    _, kc = kernel
    reply, outputs = run(kc, 'let v: Vec<u32> = Vec::new(); v[3]')
    assert reply["status"] == "error"
    assert reply["ename"] == "Panic"
    assert "index out of bounds" in reply["evalue"]
    assert [t for t, _ in outputs] == ["error"]

    reply, outputs = run(kc, 'std::thread::spawn(|| panic!("worker failed")).join().is_err()')
    assert reply["status"] == "ok"
    stderr = "".join(c["text"] for t, c in outputs if t == "stream" and c["name"] == "stderr")
    assert "worker failed" in stderr


def test_a_compile_error_points_into_the_cell(kernel):
    _, kc = kernel
    reply, outputs = run(kc, 'let a = 1;\nlet b: String = a;')
    assert reply["status"] == "error"
    assert reply["ename"] == "CompileError"
    traceback = "\n".join(reply["traceback"])
    assert "--> cell:2:" in traceback
    assert "2 | let b: String = a;" in traceback


def interrupt_after(km, kc, code, seconds=1.5):
    msg_id = kc.execute(code)
    time.sleep(seconds)
    km.interrupt_kernel()
    started = time.monotonic()
    reply = kc.get_shell_msg(timeout=TIMEOUT)
    assert reply["parent_header"]["msg_id"] == msg_id
    return reply["content"], time.monotonic() - started


def test_interrupting_a_deadlock_says_what_was_lost_and_the_kernel_goes_on(kernel):
    km, kc = kernel
    run(kc, "let survivor = 41;")
    code = """
use std::sync::{Arc, Mutex};
let a = Arc::new(Mutex::new(0));
let b = Arc::new(Mutex::new(0));
let (a2, b2) = (a.clone(), b.clone());
let first = std::thread::spawn(move || { let _x = a2.lock().unwrap(); std::thread::sleep(std::time::Duration::from_millis(100)); let _y = b2.lock().unwrap(); });
let second = std::thread::spawn(move || { let _y = b.lock().unwrap(); std::thread::sleep(std::time::Duration::from_millis(100)); let _x = a.lock().unwrap(); });
first.join().unwrap();
second.join().unwrap();
"""
    reply, _ = interrupt_after(km, kc, code)
    assert reply["status"] == "error"
    assert reply["ename"] == "Interrupted"
    assert any("Variables lost: survivor" in line for line in reply["traceback"]), reply["traceback"]
    reply, outputs = run(kc, "1 + 1")
    assert reply["status"] == "ok"
    assert outputs[-1][1]["data"]["text/plain"] == "2"


def test_interrupting_an_endless_loop(kernel):
    km, kc = kernel
    reply, _ = interrupt_after(km, kc, "let mut n = 0u64; loop { n = n.wrapping_add(1); }")
    assert reply["ename"] == "Interrupted"
    reply, outputs = run(kc, 'println!("still here");')
    assert stdout_of(outputs) == "still here\n"


def test_interrupt_also_stops_processes_the_cell_started(kernel):
    km, kc = kernel
    reply, _ = interrupt_after(
        km, kc,
        'let child = std::process::Command::new("sleep").arg("600").spawn().unwrap(); '
        'println!("{}", child.id()); loop { std::thread::park(); }',
    )
    assert reply["ename"] == "Interrupted"
    # No `sleep 600` is left behind.
    time.sleep(0.5)
    leftovers = [p for p in pathlib.Path("/proc").glob("[0-9]*")
                 if (p / "cmdline").exists() and (p / "cmdline").read_bytes() == b"sleep\x00600\x00"]
    assert leftovers == []


def test_a_message_with_a_wrong_or_missing_signature_is_not_executed(kernel):
    km, kc = kernel
    marker = pathlib.Path(tempfile.gettempdir()) / f"conclab-forged-{uuid.uuid4().hex}"
    forged_code = f'std::fs::write("{marker}", "forged").unwrap();'
    for key in (b"not-the-key", b""):
        intruder = km.client()
        intruder.session = Session(key=key, signature_scheme="hmac-sha256")
        intruder.start_channels()
        try:
            intruder.execute(forged_code)
            with pytest.raises(Exception):
                intruder.get_shell_msg(timeout=3)
        finally:
            intruder.stop_channels()
    # The kernel still answers its real client, and the forged cell never ran.
    reply, outputs = run(kc, 'println!("trusted");')
    assert stdout_of(outputs) == "trusted\n"
    assert not marker.exists()


def test_comm_info_and_kernel_info_on_control(kernel):
    km, kc = kernel
    msg = kc.session.msg("comm_info_request", {})
    kc.shell_channel.send(msg)
    reply = kc.get_shell_msg(timeout=TIMEOUT)
    assert reply["content"] == {"status": "ok", "comms": {}}

    msg = kc.session.msg("kernel_info_request", {})
    kc.control_channel.send(msg)
    reply = kc.control_channel.get_msg(timeout=TIMEOUT)
    info = reply["content"]
    assert info["language_info"]["name"] == "rust"
    assert info["language_info"]["version"][0].isdigit()
    assert info["language_info"]["pygments_lexer"] == "rust"
    assert info["language_info"]["codemirror_mode"] == "rust"


def test_restart_gives_a_fresh_working_kernel():
    with fresh_kernel(TIMEOUT) as (km, kc):
        run(kc, "let before_restart = 1;")
        km.restart_kernel(now=False)
        kc.wait_for_ready(timeout=TIMEOUT)
        reply, _ = run(kc, "before_restart")
        assert reply["status"] == "error", "variables do not survive a restart"
        reply, outputs = run(kc, "6 * 7")
        assert outputs[-1][1]["data"]["text/plain"] == "42"
        assert reply["execution_count"] == 2


def test_clear_forgets_variables_and_keeps_the_lab_crates():
    with fresh_kernel(TIMEOUT) as (_, kc):
        run(kc, "let before_clear = 1;")
        reply, _ = run(kc, ":clear")
        assert reply["status"] == "ok"
        reply, _ = run(kc, "before_clear")
        assert reply["status"] == "error", "variables do not survive :clear"
        reply, outputs = run(kc, "use rayon::prelude::*;\n(1..=10u64).into_par_iter().sum::<u64>()")
        assert reply["status"] == "ok", outputs
        assert outputs[-1][1]["data"]["text/plain"] == "55"
        # The code runner was set up again: a panic still names its thread.
        reply, _ = run(kc, 'panic!("after clear")')
        assert reply["ename"] == "Panic" and "after clear" in reply["evalue"], reply


def test_run_all_stops_at_the_first_error_and_the_next_cell_runs(kernel):
    _, kc = kernel
    failing = kc.execute('panic!("stop here")')
    queued = [kc.execute(f'println!("queued {i}");') for i in range(3)]
    replies = {}
    while len(replies) < 4:
        reply = kc.get_shell_msg(timeout=TIMEOUT)
        replies[reply["parent_header"]["msg_id"]] = reply["content"]
    assert replies[failing]["status"] == "error"
    assert [replies[q]["status"] for q in queued] == ["aborted"] * 3
    reply, outputs = run(kc, 'println!("after the error");')
    assert reply["status"] == "ok"
    assert stdout_of(outputs) == "after the error\n"


def test_a_cell_waiting_for_a_crate_build_says_so_and_the_note_goes(kernel):
    _, kc = kernel
    reply, outputs = run(kc, ':dep hex = "0.4"\nhex::encode([1u8, 254])', timeout=300)
    assert reply["status"] == "ok", reply
    kinds = [t for t, _ in outputs]
    notes = [c for t, c in outputs if t in ("display_data", "update_display_data")]
    assert any("Compiling hex" in c["data"]["text/plain"] for c in notes), outputs
    # The note is cleared before the cell's own output, which stays.
    assert kinds.index("clear_output") < kinds.index("execute_result")
    assert outputs[-1][1]["data"]["text/plain"] == '"01fe"'


def test_a_cell_waiting_for_the_one_time_build_says_so(tmp_path):
    with fresh_kernel(TIMEOUT, env={**os.environ, "CONCLAB_CACHE_DIR": str(tmp_path)}) as (_, kc):
        reply, outputs = run(kc, "use rayon::prelude::*; (1..=10u32).into_par_iter().sum::<u32>()", timeout=600)
        assert reply["status"] == "ok", reply
        kinds = [t for t, _ in outputs]
        assert kinds[0] == "display_data"
        assert "one-time build" in outputs[0][1]["data"]["text/plain"]
        assert kinds[1] == "clear_output"
        assert outputs[-1][1]["data"]["text/plain"] == "55"


def test_a_cell_can_ask_the_user_for_input(kernel):
    _, kc = kernel
    prompts = []

    def answer(msg):
        prompts.append(msg["content"]["prompt"])
        kc.input("Ferris")

    reply = kc.execute_interactive(
        ':dep evcxr_input = "1"\nevcxr_input::get_string("Your name? ")',
        timeout=300, allow_stdin=True, stdin_hook=answer, output_hook=lambda msg: None,
    )
    assert reply["content"]["status"] == "ok"
    assert prompts == ["Your name? "]
    reply, outputs = run(kc, 'println!("still answering");')
    assert stdout_of(outputs) == "still answering\n"
