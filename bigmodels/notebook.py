"""What the notebooks share: their smoke mode, the repository's experiment configs and
scratch run directories. Notebooks train through the same `bigmodels.train.run` as the
command line; this module only finds the configs and sizes the runs.

    from bigmodels import notebook
    config = notebook.experiment("digits_cnn")        # experiments/digits_cnn.py
    config.total_steps = notebook.steps(full=600, few=20)
    result = train.run(config, notebook.workdir("digits_cnn"))

`BIGMODELS_NOTEBOOK_SMOKE=1` (set by CI's tests/test_notebook.py) asks each notebook for
its few-step mode: the same cells and figures, on runs too short to mean much.
"""

import importlib.util
import os
import pathlib
import tempfile

SMOKE_ENV = "BIGMODELS_NOTEBOOK_SMOKE"


def smoke() -> bool:
    """True when the notebook should run its few-step mode (CI)."""
    return os.environ.get(SMOKE_ENV, "") not in ("", "0")


def steps(full: int, few: int) -> int:
    """`few` in smoke mode, else `full`: step counts, example counts, seeds."""
    return few if smoke() else full


def repo_root() -> pathlib.Path:
    """The checkout that holds `experiments/` (bigmodels is installed editable from it)."""
    root = pathlib.Path(__file__).resolve().parent.parent
    if not (root / "experiments").is_dir():
        raise FileNotFoundError(f"no experiments/ next to {root / 'bigmodels'}: notebooks "
                                "need a checkout installed with pip install -e")
    return root


def experiment(name: str, variant: str = ""):
    """`experiments/<name>.py`'s `get_config(variant)`, as `--config=...:<variant>` gives."""
    path = repo_root() / "experiments" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"experiments_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(variant)


def workdir(name: str) -> str:
    """A fresh scratch run directory (under the system temp dir) for one run."""
    return tempfile.mkdtemp(prefix=f"bigmodels-{name}-")
