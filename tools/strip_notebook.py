#!/usr/bin/env python3
"""Removes outputs from notebooks, so they are stored clean in git.

    python tools/strip_notebook.py notebooks/tutorial.ipynb          # strip in place
    python tools/strip_notebook.py --check notebooks/tutorial.ipynb  # exit 1 if not clean

Clears every code cell's outputs and execution count, drops per-cell execution
metadata (timings, collapsed/scrolled state) and the notebook's widget state;
keeps sources, cell ids and tags (e.g. the "parameters" tag). Needs nbformat.
"""
import argparse
import sys

import nbformat

CELL_KEYS = ("execution", "collapsed", "scrolled", "ExecuteTime")
NOTEBOOK_KEYS = ("widgets",)


def strip(nb):
    """Strips nb in place; returns True if anything changed."""
    changed = False
    for cell in nb.cells:
        for key in CELL_KEYS:
            if key in cell.metadata:
                del cell.metadata[key]
                changed = True
        if cell.cell_type == "code":
            if cell.outputs:
                cell.outputs = []
                changed = True
            if cell.execution_count is not None:
                cell.execution_count = None
                changed = True
    for key in NOTEBOOK_KEYS:
        if key in nb.metadata:
            del nb.metadata[key]
            changed = True
    return changed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="+")
    ap.add_argument("--check", action="store_true", help="report, do not write; exit 1 if a notebook has outputs")
    args = ap.parse_args(argv)
    dirty = []
    for path in args.notebooks:
        nb = nbformat.read(path, as_version=4)
        if strip(nb):
            dirty.append(path)
            if not args.check:
                nbformat.write(nb, path)
    for path in dirty:
        print(("has outputs: " if args.check else "stripped: ") + path)
    return 1 if (args.check and dirty) else 0


if __name__ == "__main__":
    sys.exit(main())
