"""A released notebook (conclab-check release) runs, and every graded test in it
fails until the learner writes the solution."""

import subprocess

import nbclient
import nbformat
import pytest

from conftest import ROOT, install_test_kernel

CHECK = ROOT / "target" / "debug" / "conclab-check"


@pytest.mark.parametrize("name", ["01-cpu-bound-pool.ipynb", "07-semaphores.ipynb"])
def test_a_released_notebook_fails_every_graded_test(tmp_path, name):
    subprocess.run([str(CHECK), "release", str(ROOT / "notebooks" / name), "--output", str(tmp_path)], check=True)
    released = nbformat.read(tmp_path / name, as_version=4)
    client = nbclient.NotebookClient(released, kernel_name=install_test_kernel(), timeout=120,
                                     startup_timeout=120, allow_errors=True)
    client.execute()
    graded = [c for c in released.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert graded, "the notebook has graded tests"
    for cell in graded:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert errors, f"{cell.metadata['nbgrader']['grade_id']} passed against a stub"
        assert "not yet implemented" in errors[0].evalue
    for cell in released.cells:
        if cell.cell_type == "code" and "nbgrader" not in cell.metadata:
            assert not [o for o in cell.outputs if o.output_type == "error"], "worked examples still run"
        if cell.metadata.get("nbgrader", {}).get("solution"):
            assert not [o for o in cell.outputs if o.output_type == "error"], "the stubs compile"
