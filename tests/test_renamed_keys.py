"""Renamed config keys and data kinds are refused with one line naming the new name: in
a config (train.validate.check_config), in an experiment file and as a --config override."""

import hashlib
import os
import subprocess
import sys

import pytest

from bigmodels.config import RENAMED, RENAMED_KINDS, base_config, check_renamed
from bigmodels.data import seq2seq
from bigmodels.errors import BadInput
from conftest import ROOT
from helpers import set_dotted

EXPERIMENT = "experiments/quickstart.py:tiny"


def _cli(*args):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "bigmodels.main", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("old", sorted(RENAMED))
def test_an_old_key_in_a_config_names_the_new_one(old):
    config = set_dotted(base_config(), old, 0.2)
    with pytest.raises(BadInput) as e:
        check_renamed(config)
    assert str(e.value).startswith(f"{old} was renamed to data.val_fraction")
    assert "\n" not in str(e.value)


def test_the_exact_message():
    with pytest.raises(BadInput) as e:
        check_renamed(set_dotted(base_config(), "data.test_fraction", 0.2))
    assert str(e.value) == "data.test_fraction was renamed to data.val_fraction"


@pytest.mark.parametrize("old", sorted(RENAMED_KINDS))
def test_an_old_kind_names_the_new_one(old):
    config = base_config()
    config.data.kind = old
    with pytest.raises(BadInput, match=f"^data.kind={old} was renamed to "
                                       f"data.kind={RENAMED_KINDS[old]}$"):
        check_renamed(config)


def test_current_names_pass():
    check_renamed(base_config())


def test_check_config_refuses_an_old_key():
    from bigmodels.train.validate import check_config
    from helpers import experiment_config
    config = set_dotted(experiment_config("tabular_mlp"), "data.test_fraction", 0.2)
    with pytest.raises(BadInput, match="data.test_fraction was renamed to data.val_fraction"):
        check_config(config)


@pytest.mark.parametrize("override, message", [
    (["--config.data.test_fraction=0.3"], "data.test_fraction was renamed to data.val_fraction"),
    (["--config.data.eval_text_fraction", "0.3"],
     "data.eval_text_fraction was renamed to data.val_fraction"),
    (["--config.data.heldout_percent=10"],
     "data.heldout_percent was renamed to data.val_fraction (a fraction now: percent / 100)"),
    (["--config.data.kind=sklearn"], "data.kind=sklearn was renamed to data.kind=toy_datasets"),
])
def test_an_old_key_as_an_override_names_the_new_one(override, message, tmp_path):
    done = _cli(f"--config={EXPERIMENT}", f"--workdir={tmp_path / 'run'}", *override)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr == f"error: {message}\n"
    assert not (tmp_path / "run").exists()


def test_an_old_key_in_an_experiment_file_names_the_new_one(tmp_path):
    experiment = tmp_path / "old.py"
    experiment.write_text(
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('quickstart', "
        f"{str(ROOT / 'experiments' / 'quickstart.py')!r})\n"
        "quickstart = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(quickstart)\n\n"
        "def get_config(arg=''):\n"
        "    c = quickstart.get_config('tiny')\n"
        "    c.data.test_fraction = 0.2\n"
        "    return c\n")
    done = _cli(f"--config={experiment}", f"--workdir={tmp_path / 'run'}")
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr == "error: data.test_fraction was renamed to data.val_fraction\n"
    assert not (tmp_path / "run").exists()


def _old_is_heldout(source: str, percent: float) -> bool:
    """seq2seq's rule when the key was data.heldout_percent."""
    digest = hashlib.blake2b(source.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % 10_000 < percent * 100


@pytest.mark.parametrize("percent", [0.01, 0.29, 1.0, 5.5, 10.0, 12.34, 33.33, 57.0, 99.99])
def test_seq2seq_split_is_unchanged(percent):
    sources = [seq2seq.number_words(n) for n in range(0, 10**6, 37)]
    fraction = float(f"{percent / 100:.6g}")     # as typed: 0.1, 0.1234, ...
    assert [seq2seq.is_heldout(s, fraction) for s in sources] == \
        [_old_is_heldout(s, percent) for s in sources]
