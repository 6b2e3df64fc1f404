#!/usr/bin/env python3
"""conclab-kernel against evcxr_jupyter, measured side by side in one run.

For each kernel: start to first kernel_info reply; the first cell that uses
rayon in a fresh kernel (sent as soon as the kernel answers kernel_info, and
again after it has been idle for a while); a trivial cell (median); a first
cell of top-level lets after a 10 s read (plain, and using the lab crates) and
trivial cells once variables exist; interrupt to reply for an endless loop;
peak memory of the kernel and its code runner.
evcxr_jupyter is measured when it is on PATH (cargo install evcxr_jupyter --locked).

Usage: .venv/bin/python bench/kernel.py [--runs N]
"""

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from jupyter_client.manager import KernelManager

ROOT = pathlib.Path(__file__).resolve().parents[1]
RAYON_CELL = "use rayon::prelude::*;\n(0..1_000u64).into_par_iter().map(|n| n * n).sum::<u64>()"
# A learner's usual first cell: top-level bindings, whose types evcxr infers
# with rust-analyzer before compiling. The lab cell uses every lab crate.
LET_CELL = 'let x = 1u64;\nprintln!("{x}");'
LET_LAB_CELL = """use rayon::prelude::*;
let squares: Vec<u64> = (0..1_000u64).into_par_iter().map(|n| n * n).collect();
let (sender, receiver) = crossbeam::channel::unbounded::<u64>();
let summary = serde_json::json!({"count": squares.len(), "version": labkit::VERSION});
println!("{summary}");"""
# What evcxr_jupyter needs to run the same cells: conclab-kernel has these
# crates in its prelude.
EVCXR_LAB_DEPS = f""":dep rayon = "1"
:dep crossbeam = "0.8"
:dep serde_json = "1"
:dep labkit = {{ path = "{ROOT / 'notebooks' / 'labkit'}" }}
"""
# How long a learner reads before writing a first cell.
READING_S = 10


def install_specs(data_dir: pathlib.Path) -> dict:
    kernels = {}
    conclab = os.environ.get("CONCLAB_KERNEL", str(ROOT / "target" / "debug" / "conclab-kernel"))
    subprocess.run([conclab, "install", "--no-prepare", "--name", "bench-conclab"], check=True,
                   stdout=subprocess.DEVNULL, env={**os.environ, "JUPYTER_DATA_DIR": str(data_dir)})
    subprocess.run([conclab, "prepare"], check=True, stdout=subprocess.DEVNULL)
    kernels["conclab-kernel"] = ("bench-conclab", {"rayon": "", "lab": ""})
    evcxr = shutil.which("evcxr_jupyter")
    if evcxr:
        spec_dir = data_dir / "kernels" / "bench-evcxr"
        spec_dir.mkdir(parents=True)
        (spec_dir / "kernel.json").write_text(json.dumps({
            "argv": [evcxr, "--control_file", "{connection_file}"],
            "display_name": "Rust (evcxr)", "language": "rust", "interrupt_mode": "message",
        }))
        kernels["evcxr_jupyter"] = ("bench-evcxr", {"rayon": ':dep rayon = "1"\n', "lab": EVCXR_LAB_DEPS})
    return kernels


def execute(kc, code, timeout=300):
    started = time.perf_counter()
    reply = kc.execute_interactive(code, timeout=timeout, output_hook=lambda msg: None)
    elapsed = time.perf_counter() - started
    if reply["content"]["status"] != "ok" and "loop" not in code:
        raise RuntimeError(f"cell failed: {code!r}: {reply['content']}")
    return elapsed


def tree_peak_kib(pid: int) -> int:
    """Sum of the peak resident set (VmHWM) of a process and its descendants."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = pathlib.Path(f"/proc/{current}/status").read_text()
            total += int(next(l for l in status.splitlines() if l.startswith("VmHWM")).split()[1])
            for task in pathlib.Path(f"/proc/{current}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, StopIteration, ProcessLookupError):
            continue
    return total


def start(name):
    km = KernelManager(kernel_name=name)
    started = time.perf_counter()
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=300)
    return km, kc, time.perf_counter() - started


def measure(name, deps, runs):
    """deps: the :dep lines a cell needs first, for the "rayon" and "lab" cells."""
    figures = {}
    # 1. start to kernel_info, and the rayon cell sent at once.
    starts, rayon_now = [], []
    for _ in range(runs):
        km, kc, elapsed = start(name)
        starts.append(elapsed)
        rayon_now.append(execute(kc, deps["rayon"] + RAYON_CELL))
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    figures["start to kernel_info (s)"] = statistics.median(starts)
    figures["first rayon cell, sent at once (s)"] = statistics.median(rayon_now)
    figures["start to first rayon result (s)"] = statistics.median(s + r for s, r in zip(starts, rayon_now))
    # The same with a cell using every lab crate (evcxr_jupyter adds them all).
    lab_now = []
    for _ in range(runs):
        km, kc, _ = start(name)
        lab_now.append(execute(kc, deps["lab"] + LET_LAB_CELL))
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    figures["first let cell with the lab crates, sent at once (s)"] = statistics.median(lab_now)

    # 2. The rayon cell after the kernel settled (a learner reading first),
    # then trivial cells, an interrupt, and memory.
    km, kc, _ = start(name)
    execute(kc, "1")  # the kernel is fully started once a cell has run
    time.sleep(5)
    km2, kc2, _ = start(name)
    time.sleep(8)
    figures["first rayon cell, after 8 s idle (s)"] = execute(kc2, deps["rayon"] + RAYON_CELL)
    kc2.stop_channels()
    km2.shutdown_kernel(now=True)

    trivial = [execute(kc, "1 + 1") for _ in range(max(5, runs * 3))]
    figures["trivial cell, median (s)"] = statistics.median(trivial)

    msg_id = kc.execute("let mut n = 0u64; loop { n = n.wrapping_add(1); }")
    time.sleep(1.5)
    started = time.perf_counter()
    km.interrupt_kernel()
    while True:
        reply = kc.get_shell_msg(timeout=60)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    figures["interrupt to reply (s)"] = time.perf_counter() - started
    execute(kc, "1 + 1")
    figures["peak memory, kernel + runner (MiB)"] = tree_peak_kib(km.provisioner.process.pid) / 1024
    kc.stop_channels()
    km.shutdown_kernel(now=True)

    # 3. A first cell with top-level lets after a read, then trivial cells
    # once variables exist.
    for label, cell in (("let cell", LET_CELL), ("let cell with the lab crates", deps["lab"] + LET_LAB_CELL)):
        km3, kc3, _ = start(name)
        time.sleep(READING_S)
        figures[f"first {label}, after {READING_S} s idle (s)"] = execute(kc3, cell)
        if cell.endswith(LET_LAB_CELL):
            trivial = [execute(kc3, "1 + 1") for _ in range(max(5, runs * 3))]
            figures["trivial cell with variables, median (s)"] = statistics.median(trivial)
        kc3.stop_channels()
        km3.shutdown_kernel(now=True)
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="conclab-bench-") as data_dir:
        os.environ["JUPYTER_DATA_DIR"] = data_dir
        kernels = install_specs(pathlib.Path(data_dir))
        results = {label: measure(name, deps, args.runs) for label, (name, deps) in kernels.items()}
    labels = list(results)
    print(f"{'':56}" + "".join(f"{label:>18}" for label in labels)
          + ("        ratio" if len(labels) == 2 else ""))
    for metric in results[labels[0]]:
        values = [results[label][metric] for label in labels]
        row = f"{metric:56}" + "".join(f"{v:18.2f}" for v in values)
        if len(values) == 2 and values[1]:
            row += f"{values[0] / values[1]:13.2f}"
        print(row)
    if len(labels) == 1:
        print("\nevcxr_jupyter is not on PATH: install it with `cargo install evcxr_jupyter --locked` "
              "to measure the baseline too.", file=sys.stderr)


if __name__ == "__main__":
    main()
