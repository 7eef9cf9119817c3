"""Bad command lines end with exit code 2 and one line naming the key or value at fault.

Most cases run in-process: the flag parser every entry point shares
(bigmodels.cli._parse_flags), check_config and the leftover-argument check. Three go
through a real CLI in a subprocess, each with a workdir that must stay untouched.
"""

import hashlib
import os
import pathlib
import subprocess
import sys

import pytest
from absl import flags
from ml_collections import config_flags

from bigmodels import cli
from bigmodels.config import unknown_key
from bigmodels.errors import BadInput
from bigmodels.train.validate import check_config
from conftest import ROOT
from helpers import experiment_config

QUICKSTART = str(ROOT / "experiments" / "quickstart.py")


def _cli(*args, module="bigmodels.main"):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def _snapshot(directory) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(pathlib.Path(directory).rglob("*"))}


def _a_workdir(tmp_path):
    """A workdir holding files, as an earlier run leaves it."""
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.json").write_text('{"precious": true}')
    return workdir


@pytest.fixture
def parse(monkeypatch, capsys):
    """_parse_flags on `args` after a fresh --config flag, as bigmodels.main defines it;
    returns the exit code and stderr."""
    def run(*args):
        flag_values = flags.FlagValues()
        config_flags.DEFINE_config_file("config", None, "", flag_values=flag_values,
                                        lock_config=True)
        monkeypatch.setattr(flags, "FLAGS", flag_values)
        argv = ["main", *args]
        monkeypatch.setattr(sys, "argv", argv)     # ml_collections reads overrides there
        with pytest.raises(SystemExit) as exit_:
            cli._parse_flags(argv)
        return exit_.value.code, capsys.readouterr().err
    return run


PARSE_CASES = {
    "unknown leaf": (["--config.optim.lrr=1"],
                     "--config.optim.lrr: unknown config key; did you mean optim.lr?"),
    "unknown parent, space form": (["--config.optimm.lr", "1"],
                                   "--config.optimm.lr: unknown config key; did you mean "
                                   "optim.lr?"),
    "unknown, nothing close": (["--config.zzzz=1"], "--config.zzzz: unknown config key"),
    "below a leaf": (["--config.optim.lr.x=1"],
                     "--config.optim.lr.x: unknown config key; "
                     "optim.lr is a value of type float, not a group of keys"),
    "float for int": (["--config.total_steps=1.5"],
                      "--config.total_steps: expected an integer, got '1.5'"),
    "word for float": (["--config.optim.lr", "abc"],
                       "--config.optim.lr: expected a number, got 'abc'"),
    "word for bool": (["--config.optim.nesterov=maybe"],
                      "--config.optim.nesterov: expected true or false, got 'maybe'"),
}


@pytest.mark.parametrize("case", list(PARSE_CASES))
@pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning")   # ml_collections
def test_a_bad_override_is_one_line_naming_its_full_key(case, parse):
    overrides, message = PARSE_CASES[case]
    code, err = parse(f"--config={QUICKSTART}:tiny", *overrides)
    assert (code, err) == (2, f"error: {message}\n")


@pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning")
def test_an_unknown_variant_lists_the_known_ones(parse):
    code, err = parse(f"--config={QUICKSTART}:huge")
    assert (code, err) == (2, f"error: --config={QUICKSTART}:huge: unknown variant 'huge'; "
                              f"known: tiny\n")


@pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning")
def test_an_error_inside_get_config_names_the_file(parse, tmp_path):
    experiment = tmp_path / "broken.py"
    experiment.write_text("def get_config(arg=''):\n    return {}['model']\n")
    code, err = parse(f"--config={experiment}", "--config.total_steps=3")
    assert (code, err) == (2, f"error: --config={experiment}: KeyError: 'model'\n")


def test_unknown_key_suggests_the_nearest_full_path():
    config = experiment_config("quickstart", "tiny")
    assert unknown_key(config, "optim.lr") is None
    assert unknown_key(config, "model.num_layerz").endswith("did you mean model.num_layers?")
    assert unknown_key(config, "optimm.lrr").endswith("did you mean optim.lr?")
    assert unknown_key(config, "optim.qqqqq") == "unknown config key"


@pytest.mark.parametrize("dtype", ["fp16", "int8", "", "float8_e4m3fn"])
def test_check_config_refuses_an_unknown_dtype(dtype):
    config = experiment_config("quickstart", "tiny")
    config.model.dtype = dtype
    with pytest.raises(BadInput) as refused:
        check_config(config)
    assert str(refused.value) == (f"model.dtype={dtype!r}: unknown dtype; valid: float32, "
                                  f"bfloat16, float16, float64")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16", "half"])
def test_check_config_accepts_what_models_compute_in(dtype):
    config = experiment_config("quickstart", "tiny")
    config.model.dtype = dtype
    check_config(config)


def test_run_main_refuses_leftover_arguments(monkeypatch, capsys):
    # app.run stands in: it hands main the words flag parsing left over.
    monkeypatch.setattr(cli.app, "run", lambda main, flags_parser: main(["prog", "Foo:"]))
    with pytest.raises(SystemExit) as exit_:
        cli.run_main(lambda argv: pytest.fail("main ran despite a leftover argument"))
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "error: unexpected arguments: Foo:\n"


def test_sample_refuses_an_unquoted_prompt(tmp_path):
    workdir = _a_workdir(tmp_path)
    before = _snapshot(workdir)
    done = _cli(f"--workdir={workdir}", "--prompt=class", "Foo:", module="bigmodels.sample")
    assert (done.returncode, done.stderr) == (2, "error: unexpected arguments: Foo:\n")
    assert _snapshot(workdir) == before


@pytest.mark.parametrize("extra", [[], ["--dry_run", "--target_devices=2"]],
                         ids=["train", "dry_run"])
def test_main_refuses_an_unknown_dtype_before_the_workdir(extra, tmp_path):
    workdir = _a_workdir(tmp_path)
    before = _snapshot(workdir)
    done = _cli(f"--config={QUICKSTART}:tiny", f"--workdir={workdir}",
                "--config.model.dtype=fp16", *extra)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr == ("error: model.dtype='fp16': unknown dtype; valid: float32, "
                           "bfloat16, float16, float64\n")
    assert _snapshot(workdir) == before
