"""Runs the lab's notebooks through conclab-kernel and stores their outputs in place.

Usage (through scripts/regenerate-notebooks): regenerate.py [NOTEBOOK ...]
"""

import pathlib
import sys

import nbformat

from lab_notebooks import NOTEBOOKS, execute


def main(args):
    paths = [pathlib.Path(a).resolve() for a in args] or NOTEBOOKS
    missing = [p for p in paths if not p.is_file()]
    if missing:
        sys.exit("regenerate-notebooks: no such notebook: " + ", ".join(map(str, missing)))
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        fresh = execute(path)
        for cell in fresh.cells:
            if cell.cell_type == "code":
                # Keep notebooks diff-friendly: execution metadata changes every run.
                cell.metadata.pop("execution", None)
        nbformat.write(fresh, path)
        print(f"stored the outputs of {path.name}")


if __name__ == "__main__":
    main(sys.argv[1:])
