"""The lab's notebooks, and running them through the kernel with nbclient.

Used by test_notebooks.py and by scripts/regenerate-notebooks. Comparing fresh
outputs with the stored ones is `conclab-check validate`'s job.
"""

import copy
import json
import pathlib

import nbclient
import nbformat

from conftest import ROOT, install_test_kernel

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SCHEMA = json.loads((ROOT / "notebooks" / "conclab.schema.json").read_text())


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
