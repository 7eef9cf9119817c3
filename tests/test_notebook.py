"""The notebooks execute from top to bottom in their smoke mode (a few steps, the same
code), are stored without outputs, and draw their figures. With
BIGMODELS_EXECUTED_NOTEBOOKS=<dir> (CI) the executed copies are written there for the
docs site to show (docs/conf.py)."""

import glob
import os

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import FAST_COMPILE_FLAGS, ROOT

NOTEBOOKS = sorted(glob.glob(str(ROOT / "notebooks" / "*.ipynb")))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_executes(path, monkeypatch, tmp_path):
    monkeypatch.setenv("BIGMODELS_NOTEBOOK_SMOKE", "1")   # each notebook's few-step mode
    # A notebook's runs repeat programs (fine-tuned and from-scratch runs share their
    # train step): JAX's persistent cache, one per notebook, compiles each once.
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "jax_cache"))
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.25")
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    # The kernel runs as a reader's would, on one CPU device, not the tests' 8 (a
    # notebook that shows a mesh asks for its own). The smoke runs are a few steps each,
    # so compiling dominates: the tests' compile-fast flags apply.
    monkeypatch.setenv("XLA_FLAGS", FAST_COMPILE_FLAGS)
    nb = nbformat.read(path, as_version=4)
    assert not any(cell.get("outputs") for cell in nb.cells), "store notebooks without outputs"
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    figures = [o for cell in nb.cells for o in cell.get("outputs", [])
               if "image/png" in o.get("data", {})]
    assert figures, f"{os.path.basename(path)} drew no figure"
    if os.environ.get("BIGMODELS_EXECUTED_NOTEBOOKS"):
        os.makedirs(os.environ["BIGMODELS_EXECUTED_NOTEBOOKS"], exist_ok=True)
        nbformat.write(nb, os.path.join(os.environ["BIGMODELS_EXECUTED_NOTEBOOKS"],
                                        os.path.basename(path)))
