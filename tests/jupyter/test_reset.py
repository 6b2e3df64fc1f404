"""The checker's `conclab_reset_request`: a kernel started over for the next
notebook of a submission is as a fresh kernel would be (no variables, no
history, a new code runner, the kernel's first environment), and its new
code runner traces to the file and nonce the request names."""

import json
import os

from conftest import TIMEOUT, fresh_kernel, request, run


def reset(kc, trace, nonce):
    """Sends a reset request as conclab-check does; returns the reply's content."""
    reply = request(kc, "conclab_reset_request", {"trace": str(trace), "nonce": nonce}, timeout=120)
    assert reply["msg_type"] == "conclab_reset_reply", reply
    return reply["content"]


def text(outputs):
    return "".join(
        c.get("text", "") + c.get("data", {}).get("text/plain", "") for _, c in outputs)


def test_a_kernel_started_over_keeps_nothing_of_the_last_notebook_and_traces_anew(tmp_path):
    env = {**os.environ, "CONCLAB_IDLE_WORK": "0",
           "CONCLAB_TRACE": str(tmp_path / "trace-0.jsonl"), "CONCLAB_TRACE_NONCE": "first"}
    with fresh_kernel(TIMEOUT, env=env) as (_, kc):
        reply, outputs = run(kc, ":env CONCLAB_LEFT_OVER=1\nlet kept = 41;\nstd::process::id()")
        assert reply["status"] == "ok", outputs
        runner_before = text(outputs).strip()
        run(kc, "fn helper() -> u32 { 7 }")

        trace = tmp_path / "trace-1.jsonl"
        assert reset(kc, trace, "second") == {"error": None}

        reply, outputs = run(kc, "kept")
        assert reply["status"] == "error" and reply["execution_count"] == 1, (reply, outputs)
        assert "kept" in reply["evalue"] + text(outputs) or any(
            "kept" in line for line in reply["traceback"]), reply
        reply, outputs = run(kc, "helper()")
        assert reply["status"] == "error", "an item of the last notebook survived"
        reply, outputs = run(kc, 'std::env::var("CONCLAB_LEFT_OVER").is_err()')
        assert text(outputs).strip() == "true", "a cell's :env reached the next notebook's runner"
        reply, outputs = run(kc, "std::process::id()")
        assert text(outputs).strip() not in ("", runner_before), "the code runner was not replaced"
        # The prelude crates still work, and the new runner traces to the new file.
        reply, outputs = run(kc, """
            use rayon::prelude::*;
            let total = labkit::sync::Mutex::named("total", 0u64);
            (1..=10u64).into_par_iter().for_each(|n| *total.lock().unwrap() += n);
            let sum = *total.lock().unwrap();
            sum
        """)
        assert reply["status"] == "ok" and text(outputs).strip() == "55", outputs
        events = [json.loads(line) for line in trace.read_text().splitlines()]
        assert events and all(e["nonce"] == "second" for e in events), events[:3]
        assert any(e["name"] == "total" for e in events)
        first = tmp_path / "trace-0.jsonl"
        assert not first.exists() or all(
            json.loads(line)["nonce"] == "first" for line in first.read_text().splitlines())


def test_a_bad_reset_request_is_answered_with_an_error_and_the_kernel_goes_on(tmp_path):
    with fresh_kernel(TIMEOUT, env={**os.environ, "CONCLAB_IDLE_WORK": "0"}) as (_, kc):
        run(kc, "let kept = 1;")
        reply = request(kc, "conclab_reset_request", {"trace": str(tmp_path / "t.jsonl")})
        assert "nonce" in reply["content"]["error"], reply
        reply, outputs = run(kc, "kept + 1")
        assert text(outputs).strip() == "2", "a refused reset must change nothing"
