"""The lab's notebooks: their metadata is valid against the JSON Schema, and
every exercise of the lab is there exactly once. That each runs clean and
still prints its stored outputs is `conclab-check validate`'s job (run by
scripts/test)."""

import collections

import jsonschema
import nbformat
import pytest

from lab_notebooks import NOTEBOOKS, SCHEMA

# The exercises of LAB.md, by grade_id: a public contract with learners.
GRADE_IDS = [
    "step01-par-map", "step01-process-pool", "step02-as-completed", "step03-io-threads",
    "step03-cpu-compare", "step04-account-actor", "step05-counter", "step05-transfer",
    "step06-bounded-queue", "step06-pipeline", "step07-semaphore", "step07-limited-downloads",
    "step08-hybrid",
]


def validator(definition):
    return jsonschema.Draft202012Validator({"$ref": f"#/$defs/{definition}", "$defs": SCHEMA["$defs"]})


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_metadata_is_valid(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    validator("notebook").validate(notebook.metadata["conclab"])
    cells = validator("cell")
    for index, cell in enumerate(notebook.cells):
        if "conclab" in cell.metadata:
            cells.validate(cell.metadata["conclab"])
        grading = cell.metadata.get("nbgrader")
        if grading:
            assert grading["schema_version"] == 3, f"cell {index}"
            assert grading["solution"] or grading["grade"], f"cell {index} is neither solution nor test"


def test_every_exercise_is_there_exactly_once():
    ids = collections.Counter()
    all_ids = collections.Counter()
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            grading = cell.metadata.get("nbgrader")
            if grading:
                all_ids[grading["grade_id"]] += 1
                if grading["solution"]:
                    ids[grading["grade_id"]] += 1
    assert sorted(ids) == sorted(GRADE_IDS)
    assert all(count == 1 for count in all_ids.values()), [i for i, c in all_ids.items() if c > 1]
    for grade_id in GRADE_IDS:
        assert all_ids[grade_id + "-test"] == 1, f"{grade_id} has no public test"
        assert all_ids[grade_id + "-hidden"] == 1, f"{grade_id} has no hidden tests"


def test_notebooks_sort_in_lab_order():
    steps = [nbformat.read(p, as_version=4).metadata["conclab"]["step"] for p in NOTEBOOKS]
    assert steps == list(range(len(NOTEBOOKS)))
