"""Shared set-up for the tests that drive conclab-kernel through real Jupyter clients.

The kernel under test is the one `cargo build` left in target/debug (or the one
CONCLAB_KERNEL names), installed into a throw-away JUPYTER_DATA_DIR so the
machine's own kernelspecs are neither used nor touched.
"""

import contextlib
import os
import pathlib
import subprocess
import tempfile
import time

from jupyter_client.manager import start_new_kernel

ROOT = pathlib.Path(__file__).resolve().parents[2]
KERNEL_NAME = "conclab-test"
# How long one ordinary cell may take.
TIMEOUT = 60


def kernel_binary() -> pathlib.Path:
    return pathlib.Path(os.environ.get("CONCLAB_KERNEL", ROOT / "target" / "debug" / "conclab-kernel"))


def install_test_kernel() -> str:
    """Installs the kernelspec once per test process and returns its name."""
    if not os.environ.get("CONCLAB_TEST_DATA_DIR"):
        data_dir = tempfile.mkdtemp(prefix="conclab-jupyter-")
        os.environ["CONCLAB_TEST_DATA_DIR"] = data_dir
        os.environ["JUPYTER_DATA_DIR"] = data_dir
        subprocess.run(
            [str(kernel_binary()), "install", "--user", "--no-prepare", "--name", KERNEL_NAME],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return KERNEL_NAME


@contextlib.contextmanager
def fresh_kernel(timeout=60, **kwargs):
    """A new kernel process and a client for it, shut down afterwards."""
    km, kc = start_new_kernel(kernel_name=install_test_kernel(), startup_timeout=timeout, **kwargs)
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run(kc, code, timeout=TIMEOUT, **kwargs):
    """Executes `code` and returns (reply content, [(msg_type, content)] of its IOPub output)."""
    outputs = []

    def keep(msg):
        if msg["msg_type"] not in ("status", "execute_input"):
            outputs.append((msg["msg_type"], msg["content"]))

    reply = kc.execute_interactive(code, timeout=timeout, output_hook=keep, **kwargs)
    return reply["content"], outputs


install_test_kernel()


def run_in_cell(kc, cell, code, timeout=TIMEOUT):
    """Runs `code` as JupyterLab runs a cell (edited and unsaved, maybe): with
    the cell's id and metadata. Returns the execute_reply's content."""
    metadata = {**cell.metadata, "cellId": cell.id, "deletedCells": [], "recordTiming": False}
    content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
               "allow_stdin": False, "stop_on_error": True}
    return request(kc, "execute_request", content, metadata=metadata, timeout=timeout)["content"]


def request(kc, msg_type, content, metadata=None, timeout=TIMEOUT):
    """Sends a shell request of any type and returns its reply (the whole message)."""
    msg = kc.session.msg(msg_type, content, metadata=metadata)
    kc.shell_channel.send(msg)
    deadline = time.monotonic() + timeout
    while True:
        reply = kc.get_shell_msg(timeout=max(1, deadline - time.monotonic()))
        if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            return reply


def spare_checkers(kernel_pid):
    """The pids of the `conclab-check feedback --spare` the kernel keeps ready."""
    spares = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if parent == kernel_pid and b"--spare" in args:
            spares.append(int(entry))
    return spares
