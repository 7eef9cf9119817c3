"""The notebooks execute from top to bottom in their smoke mode (a few steps, the same
code), are stored without outputs, and draw their figures."""

import glob
import os

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import ROOT

NOTEBOOKS = sorted(glob.glob(str(ROOT / "notebooks" / "*.ipynb")))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_executes(path, monkeypatch):
    monkeypatch.setenv("BIGMODELS_NOTEBOOK_SMOKE", "1")   # each notebook's few-step mode
    # The kernel runs as a reader's would: one CPU device and optimised code, not the
    # 8 devices and compile-fast flags of the tests (30 steps: 29 s, not 42 s).
    monkeypatch.delenv("XLA_FLAGS")
    nb = nbformat.read(path, as_version=4)
    assert not any(cell.get("outputs") for cell in nb.cells), "store notebooks without outputs"
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    figures = [o for cell in nb.cells for o in cell.get("outputs", [])
               if "image/png" in o.get("data", {})]
    assert figures, f"{os.path.basename(path)} drew no figure"
