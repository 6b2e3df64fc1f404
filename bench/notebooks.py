#!/usr/bin/env python3
"""How long each lab notebook takes to run top to bottom through conclab-kernel,
in a fresh kernel and then again in a warm one (goal: under 60 s each, warm).

Usage: .venv/bin/python bench/notebooks.py
"""

import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "jupyter"))

import nbclient  # noqa: E402
import nbformat  # noqa: E402

from lab_notebooks import NOTEBOOKS  # noqa: E402
from conftest import install_test_kernel  # noqa: E402


def main():
    print(f"{'notebook':34}{'cells':>7}{'fresh kernel s':>16}{'warm kernel s':>15}")
    total = 0.0
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        client = nbclient.NotebookClient(notebook, kernel_name=install_test_kernel(), timeout=300, startup_timeout=120)
        with client.setup_kernel():
            started = time.perf_counter()
            for index, cell in enumerate(notebook.cells):
                client.execute_cell(cell, index)
            fresh = time.perf_counter() - started
            started = time.perf_counter()
            for index, cell in enumerate(notebook.cells):
                client.execute_cell(cell, index)
            warm = time.perf_counter() - started
        cells = sum(1 for c in notebook.cells if c.cell_type == "code")
        total += warm
        print(f"{path.name:34}{cells:>7}{fresh:>16.1f}{warm:>15.1f}")
    print(f"{'all notebooks, warm':34}{'':>7}{'':>16}{total:>15.1f}")


if __name__ == "__main__":
    main()
