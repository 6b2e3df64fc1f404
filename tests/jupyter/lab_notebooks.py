"""The lab's notebooks: running them through the kernel and comparing their outputs.

Used by test_notebooks.py and by scripts/regenerate-notebooks. Comparison follows
each cell's `metadata.conclab.compare` (see notebooks/conclab.schema.json).
"""

import copy
import difflib
import json
import pathlib
import re

import nbclient
import nbformat

from conftest import ROOT, install_test_kernel

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SCHEMA = json.loads((ROOT / "notebooks" / "conclab.schema.json").read_text())

REDACTIONS = {
    "times": (re.compile(r"\b\d+(\.\d+)?\s?(ns|µs|us|ms|s)\b"), "<time>"),
    "addresses": (re.compile(r"0x[0-9a-fA-F]+"), "<address>"),
    "ids": (re.compile(r"(ThreadId\(\d+\)|#\d+)"), "<id>"),
    "pids": (re.compile(r"\bpid \d+\b"), "pid <pid>"),
}


def execute(path: pathlib.Path, timeout: int = 120) -> nbformat.NotebookNode:
    """Runs a copy of the notebook top to bottom in a fresh kernel and returns it."""
    notebook = nbformat.read(path, as_version=4)
    fresh = copy.deepcopy(notebook)
    client = nbclient.NotebookClient(
        fresh,
        kernel_name=install_test_kernel(),
        timeout=timeout,
        startup_timeout=120,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    return fresh


def output_text(cell) -> list:
    """A cell's outputs as comparable items: (kind, text)."""
    items = []
    for output in cell.get("outputs", []):
        kind = output["output_type"]
        if kind == "stream":
            key = f"stream:{output['name']}"
            # How text is split into messages depends on timing; frontends
            # show consecutive stream output as one block.
            if items and items[-1][0] == key:
                items[-1] = (key, items[-1][1] + output["text"])
            else:
                items.append((key, output["text"]))
        elif kind in ("execute_result", "display_data"):
            data = output.get("data", {})
            text = data.get("text/plain", "")
            items.append((f"{kind}:{','.join(sorted(data))}", text))
        elif kind == "error":
            items.append(("error", output["ename"] + ": " + output["evalue"]))
    return items


def sanitize(text: str, compare: dict) -> str:
    for name in compare.get("redact", []):
        pattern, replacement = REDACTIONS[name]
        text = pattern.sub(replacement, text)
    for rule in compare.get("patterns", []):
        text = re.sub(rule["regex"], rule["replace"], text)
    return text


def lines_match(stored: list, fresh: list, wildcard) -> bool:
    return len(stored) == len(fresh) and all(s == f or (wildcard and s == wildcard) for s, f in zip(stored, fresh))


def mismatch(stored_cell, fresh_cell) -> str | None:
    """None when the fresh outputs match the stored ones; otherwise a readable diff."""
    compare = fresh_cell.metadata.get("conclab", {}).get("compare", {"mode": "exact"})
    mode = compare["mode"]
    if mode == "ignore":
        return None
    stored, fresh = output_text(stored_cell), output_text(fresh_cell)
    if mode == "shape":
        same = [k for k, _ in stored] == [k for k, _ in fresh]
        return None if same else f"output kinds differ: stored {[k for k, _ in stored]}, now {[k for k, _ in fresh]}"
    if [k for k, _ in stored] != [k for k, _ in fresh]:
        return f"output kinds differ: stored {[k for k, _ in stored]}, now {[k for k, _ in fresh]}"
    for (kind, old), (_, new) in zip(stored, fresh):
        if mode in ("sanitized", "unordered"):
            old, new = sanitize(old, compare), sanitize(new, compare)
        old_lines, new_lines = old.splitlines(), new.splitlines()
        if mode == "unordered":
            old_lines, new_lines = sorted(old_lines), sorted(new_lines)
        if not lines_match(old_lines, new_lines, compare.get("wildcard")):
            diff = difflib.unified_diff(old_lines, new_lines, "stored", "now", lineterm="")
            return f"{kind} differs:\n" + "\n".join(diff)
    return None
