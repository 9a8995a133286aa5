"""A pytest plugin for what `make test` keeps of the notebooks nbval runs (`PYTHONPATH=tests
pytest -p nbval_keep`): with MEDTL_NBVAL_KEEP set to a folder, each notebook is
written there with the outputs its cells produced under nbval, as `make course` writes its
executed copies, so that the site's browser test is built from this run instead of a second run
of the course (tools/run_tests.sh). Without the variable it does nothing.

The kernels that run the notebooks start without MPLBACKEND (the tests export Agg, which would draw
every figure into nothing), as the course runner's do (`runner.kernel_environment`).
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

KEEP = "MEDTL_NBVAL_KEEP"


def _is_notebook_cell(item: pytest.Item) -> bool:
    return hasattr(item, "cell") and hasattr(item, "test_outputs") and hasattr(item.parent, "nb")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    """The first cell's setup starts the notebook's kernel: without MPLBACKEND when keeping."""
    if not (os.environ.get(KEEP) and _is_notebook_cell(item)):
        yield
        return
    backend = os.environ.pop("MPLBACKEND", None)
    try:
        yield
    finally:
        if backend is not None:
            os.environ["MPLBACKEND"] = backend


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Each cell keeps the outputs nbval collected from it, with an execution count."""
    yield
    if call.when == "call" and os.environ.get(KEEP) and _is_notebook_cell(item):
        if item.test_outputs is not None:
            item.cell.outputs = [nbformat.from_dict(dict(o)) for o in item.test_outputs]
            item.cell.execution_count = item.cell_num + 1


def pytest_runtest_teardown(item, nextitem):
    """After a notebook's last cell, write the notebook with its outputs into the folder."""
    folder = os.environ.get(KEEP)
    if not (folder and _is_notebook_cell(item)):
        return
    if nextitem is None or nextitem.parent is not item.parent:
        from medtl_helpers.atomic import write_text  # whole, or not there: job 4 counts files

        Path(folder).mkdir(parents=True, exist_ok=True)
        path = Path(folder) / Path(str(item.parent.fspath)).name
        write_text(path, nbformat.writes(item.parent.nb))
