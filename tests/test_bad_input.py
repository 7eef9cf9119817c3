"""Bad input ends with exit code 2, one line on stderr, no traceback, nothing destroyed."""

import hashlib
import os
import pathlib
import subprocess
import sys

import pytest

from conftest import ROOT

EXPERIMENT = "experiments/quickstart.py:tiny"


def _cli(*args, module="bigmodels.main"):
    env = dict(os.environ, JAX_PLATFORMS="cpu")   # 8 fake devices, as in conftest
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def _snapshot(directory) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(pathlib.Path(directory).rglob("*"))}


@pytest.fixture(scope="module")
def trained_workdir(tmp_path_factory, corpus):
    workdir = tmp_path_factory.mktemp("existing")
    done = _cli(f"--config={EXPERIMENT}", f"--workdir={workdir}",
                f"--config.data.path={corpus}", "--config.sample_at_end=")
    assert done.returncode == 0, done.stderr[-2000:]
    return workdir


def _empty_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("")
    return str(path)


CASES = {
    "unknown key": (lambda t, c: ["--config.no_such_key=1"], "no_such_key"),
    "unknown nested key": (lambda t, c: ["--config.model.num_layerz=1"], "num_layerz"),
    "wrong type": (lambda t, c: ["--config.total_steps=many"], "total_steps"),
    "float for int": (lambda t, c: ["--config.batch_size=2.5"], "batch_size"),
    "missing data file": (lambda t, c: ["--config.data.path=/nonexistent/corpus.txt"],
                          "data.path"),
    "empty data file": (lambda t, c: [f"--config.data.path={_empty_file(t)}"], "data.path"),
    "heads do not divide width": (lambda t, c: ["--config.model.num_heads=3"],
                                  "num_heads"),
    "batch not divisible": (lambda t, c: ["--config.batch_size=3"], "batch_size"),
    "non-positive total_steps": (lambda t, c: ["--config.total_steps=0"], "total_steps"),
    "negative cpu_devices": (lambda t, c: ["--config.cpu_devices=-1"], "cpu_devices"),
    "negative total_steps": (lambda t, c: ["--config.total_steps=-5"], "total_steps"),
    "context longer than data": (lambda t, c: ["--config.model.context_length=100000",
                                               "--config.data.max_bytes=5000"], "data"),
    "unknown optimizer": (lambda t, c: ["--config.optim.name=adamax"], "optim.name"),
    "a checkpoint from a different model": (lambda t, c: ["--config.model.embed_dim=64"],
                                            "shape mismatch"),
    "a checkpoint with other layers": (lambda t, c: ["--config.model.num_layers=2"],
                                       "missing from checkpoint: "),
    "a data glob with no matching files": (lambda t, c: [f"--config.data.path={t}/*.nope"],
                                           "data.path"),
    "a sequence longer than the context": (lambda t, c: ["--config.data.seq_len=33"],
                                           "data.seq_len"),
    "an unknown nan_policy": (lambda t, c: ["--config.nan_policy=ignore"], "nan_policy"),
    "a freeze regex that matches nothing": (lambda t, c: ["--config.optim.freeze=^encodr/"],
                                            "optim.freeze"),
    "a malformed lr multiplier": (lambda t, c: ["--config.optim.lr_multipliers=block_0"],
                                  "optim.lr_multipliers"),
    "an unknown special-token set": (lambda t, c: ["--config.data.specials=t5"],
                                     "data.specials"),
    "a coordinator without a port": (lambda t, c: ["--config.distributed.coordinator=localhost"],
                                     "distributed.coordinator"),
    "an explicit coordinator without ranks": (
        lambda t, c: ["--config.distributed.coordinator=localhost:1234"], "num_processes"),
    "an unknown TFDS dataset": (lambda t, c: ["--config.data.kind=tfds_text_classes",
                                              "--config.data.name=no_such_dataset"],
                                "data.name='no_such_dataset'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_config_is_refused(case, tmp_path, trained_workdir, corpus):
    extra, must_mention = CASES[case]
    before = _snapshot(trained_workdir)
    args = [f"--config={EXPERIMENT}", f"--workdir={trained_workdir}",
            f"--config.data.path={corpus}"] + extra(tmp_path, corpus)
    done = _cli(*args)
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert must_mention in lines[0], lines[0]
    assert _snapshot(trained_workdir) == before


def test_workdir_that_is_a_file(tmp_path, corpus):
    target = tmp_path / "a_file"
    target.write_text("precious")
    done = _cli(f"--config={EXPERIMENT}", f"--workdir={target}",
                f"--config.data.path={corpus}")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "workdir" in done.stderr
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
    done = _cli(f"--config={EXPERIMENT}", f"--workdir={tmp_path / 'new'}",
                f"--config.data.path={corpus}", f"--config.init_from={tmp_path / 'nothing'}")
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "init_from" in lines[0] and "no checkpoint" in lines[0], lines
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


def test_gan_without_its_feature_classifier(tmp_path):
    pytest.importorskip("sklearn")
    done = _cli("--config=experiments/digits_gan.py:tiny", f"--workdir={tmp_path / 'gan'}",
                f"--config.fid_classifier={tmp_path / 'no_cnn'}")
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "fid_classifier" in lines[0] and "digits_cnn" in lines[0], lines
    assert not (tmp_path / "gan").exists()
