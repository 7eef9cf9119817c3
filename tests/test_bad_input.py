"""Bad input ends with exit code 2, one line on stderr, no traceback, nothing destroyed.

A few cases go through the real CLI in a subprocess: refusals at flag parsing, from
deep inside training (a checkpoint that does not fit) and from a data library whose
logs could reach stderr. The CLI turns every BadInput into that one line the same way
(bigmodels.cli.run_main), so the other cases raise BadInput in-process from the
function the CLI calls, with the same checks: the message names the key and the
existing run's workdir is untouched.
"""

import hashlib
import os
import pathlib
import subprocess
import sys

import pytest
from absl import flags
from ml_collections import config_flags

from bigmodels import cli, distributed, train
from bigmodels.errors import BadInput
from conftest import ROOT
from helpers import experiment_config, set_dotted

EXPERIMENT = "experiments/quickstart.py:tiny"


def _cli(*args, module="bigmodels.main"):
    env = dict(os.environ, JAX_PLATFORMS="cpu")   # 8 fake devices, as in conftest
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def _snapshot(directory) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(pathlib.Path(directory).rglob("*"))}


def _config(corpus, **top):
    """The config the CLI builds from `--config={EXPERIMENT} --config.data.path=corpus`."""
    config = experiment_config("quickstart", "tiny", **top)
    config.data.path = corpus
    return config


@pytest.fixture(scope="module")
def trained_workdir(tmp_path_factory, corpus):
    workdir = tmp_path_factory.mktemp("existing")
    train.run(_config(corpus, sample_at_end=""), str(workdir))
    return workdir


def _empty_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("")
    return str(path)


CLI_CASES = {
    "unknown key": (["--config.no_such_key=1"], "no_such_key"),
    "wrong type": (["--config.total_steps=many"], "total_steps"),
    "a checkpoint from a different model": (["--config.model.embed_dim=64"],
                                            "shape mismatch"),
    "an unknown TFDS dataset": (["--config.data.kind=tfds_text_classes",
                                 "--config.data.name=no_such_dataset"],
                                "data.name='no_such_dataset'"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_bad_config_is_refused_by_the_cli(case, trained_workdir, corpus):
    extra, must_mention = CLI_CASES[case]
    before = _snapshot(trained_workdir)
    done = _cli(f"--config={EXPERIMENT}", f"--workdir={trained_workdir}",
                f"--config.data.path={corpus}", *extra)
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert must_mention in lines[0], lines[0]
    assert _snapshot(trained_workdir) == before


# Overrides the flag parser refuses: the CLI's own parsing (bigmodels.cli._parse_flags)
# of the same config flag as bigmodels.main's, in-process.
FLAG_CASES = {
    "unknown nested key": ("--config.model.num_layerz=1", "num_layerz"),
    "float for int": ("--config.batch_size=2.5", "batch_size"),
}


@pytest.mark.parametrize("case", list(FLAG_CASES))
@pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning")   # ml_collections
def test_bad_override_is_refused_at_parsing(case, monkeypatch, capsys):
    override, must_mention = FLAG_CASES[case]
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "", flag_values=flag_values,
                                    lock_config=True)
    monkeypatch.setattr(flags, "FLAGS", flag_values)
    argv = ["main", f"--config={ROOT / EXPERIMENT}", override]
    monkeypatch.setattr(sys, "argv", argv)     # where ml_collections looks for overrides
    with pytest.raises(SystemExit) as exit_:
        cli._parse_flags(argv)
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and must_mention in lines[0], lines


def _join_cluster(config, workdir):
    """What bigmodels.main does with config.distributed before training."""
    distributed.initialize(config.distributed)


# name: (overrides of the config (given the test's tmp_path), what the message names,
# the function the CLI calls that refuses it).
CASES = {
    "missing data file": (lambda t: {"data.path": "/nonexistent/corpus.txt"}, "data.path"),
    "empty data file": (lambda t: {"data.path": _empty_file(t)}, "data.path"),
    "heads do not divide width": (lambda t: {"model.num_heads": 3}, "num_heads"),
    "batch not divisible": (lambda t: {"batch_size": 3}, "batch_size"),
    "non-positive total_steps": (lambda t: {"total_steps": 0}, "total_steps"),
    "negative cpu_devices": (lambda t: {"cpu_devices": -1}, "cpu_devices"),
    "negative total_steps": (lambda t: {"total_steps": -5}, "total_steps"),
    "context longer than data": (lambda t: {"model.context_length": 100000,
                                            "data.max_bytes": 5000}, "data"),
    "unknown optimizer": (lambda t: {"optim.name": "adamax"}, "optim.name"),
    "a checkpoint with other layers": (lambda t: {"model.num_layers": 2},
                                       "missing from checkpoint: "),
    "a data glob with no matching files": (lambda t: {"data.path": f"{t}/*.nope"},
                                           "data.path"),
    "a sequence longer than the context": (lambda t: {"data.seq_len": 33}, "data.seq_len"),
    "an unknown nan_policy": (lambda t: {"nan_policy": "ignore"}, "nan_policy"),
    "a freeze regex that matches nothing": (lambda t: {"optim.freeze": "^encodr/"},
                                            "optim.freeze"),
    "a malformed lr multiplier": (lambda t: {"optim.lr_multipliers": "block_0"},
                                  "optim.lr_multipliers"),
    "an unknown special-token set": (lambda t: {"data.specials": "t5"}, "data.specials"),
    "a vocabulary smaller than the tokenizer's": (lambda t: {"model.vocab_size": 10},
                                                  "model.vocab_size=10"),
    "a coordinator without a port": (lambda t: {"distributed.coordinator": "localhost"},
                                     "distributed.coordinator", _join_cluster),
    "an explicit coordinator without ranks": (
        lambda t: {"distributed.coordinator": "localhost:1234"}, "num_processes",
        _join_cluster),
}


def _override(config, overrides: dict):
    for key, value in overrides.items():
        set_dotted(config, key, value)
    return config


@pytest.mark.parametrize("case", list(CASES))
def test_bad_config_is_refused(case, tmp_path, trained_workdir, corpus):
    overrides, must_mention, *entry = CASES[case]
    refuse = entry[0] if entry else train.run
    config = _override(_config(corpus), overrides(tmp_path))
    before = _snapshot(trained_workdir)
    with pytest.raises(BadInput) as refused:
        refuse(config, str(trained_workdir))
    message = str(refused.value)
    assert must_mention in message and "\n" not in message, message
    assert _snapshot(trained_workdir) == before


def test_workdir_that_is_a_file(tmp_path, corpus):
    target = tmp_path / "a_file"
    target.write_text("precious")
    with pytest.raises(BadInput, match="workdir"):
        train.run(_config(corpus), str(target))
    assert target.read_text() == "precious"


def test_missing_config_file(tmp_path):
    done = _cli("--config=experiments/nope.py", f"--workdir={tmp_path}")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "nope.py" in done.stderr


def test_sample_refuses_a_workdir_without_a_run(tmp_path):
    done = _cli(f"--workdir={tmp_path}", "--prompt=x", module="bigmodels.sample")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1


def test_sample_from_a_trained_run(trained_workdir):
    done = _cli(f"--workdir={trained_workdir}", "--prompt=def ", "--max_new_tokens=8",
                "--temperature=0", module="bigmodels.sample")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("def ")


def test_init_from_nothing(tmp_path, corpus):
    config = _config(corpus, init_from=str(tmp_path / "nothing"))
    with pytest.raises(BadInput, match="init_from: .*no checkpoint"):
        train.run(config, str(tmp_path / "new"))
    assert not (tmp_path / "new").exists()


def test_export_cli(trained_workdir, tmp_path):
    out = tmp_path / "params"
    done = _cli(f"--workdir={trained_workdir}", f"--out={out}", module="bigmodels.export")
    assert done.returncode == 0, done.stderr[-2000:]
    again = _cli(f"--workdir={trained_workdir}", f"--out={out}", module="bigmodels.export")
    assert again.returncode == 2 and "already exists" in again.stderr
    nothing = _cli(f"--workdir={tmp_path / 'none'}", f"--out={tmp_path / 'x'}",
                   module="bigmodels.export")
    assert nothing.returncode == 2 and len(nothing.stderr.strip().splitlines()) == 1
