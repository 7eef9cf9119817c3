"""bigmodels.evaluate reproduces the eval metrics the trainer logged: for a model with
BatchNorm statistics, at the last and an earlier step, and for a LoRA run and its
export (adapters merged by the shared loading); the CLI prints one JSON object."""

import json
import os
import subprocess
import sys

import pytest

from bigmodels import train
from bigmodels.errors import BadInput
from bigmodels.evaluate import evaluate
from bigmodels.export import export
from conftest import ROOT
from helpers import experiment_config


def _logged_evals(workdir: str) -> dict:
    """{step: {"eval/...": value}} from the run's metrics.jsonl."""
    out = {}
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            evals = {k: v for k, v in row.items() if k.startswith("eval/")}
            if evals:
                out[row["step"]] = evals
    return out


def _assert_same(found: dict, logged: dict) -> None:
    assert set(found) - {"step"} == set(logged)
    for key, value in logged.items():
        assert found[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key


@pytest.fixture(scope="module")
def resnet(tmp_path_factory) -> str:
    workdir = str(tmp_path_factory.mktemp("resnet"))
    train.run(experiment_config("digits_resnet"), workdir)
    return workdir


def test_evaluate_reproduces_the_logged_eval_of_a_batchnorm_model(resnet):
    logged = _logged_evals(resnet)
    assert sorted(logged) == [3, 6]
    last = evaluate(resnet)
    assert last["step"] == 6
    _assert_same(last, logged[6])
    earlier = evaluate(resnet, step=3)
    assert earlier["step"] == 3
    _assert_same(earlier, logged[3])
    assert earlier["eval/loss"] != last["eval/loss"]


def test_evaluate_merges_lora_adapters_in_a_run_and_its_export(tmp_path):
    workdir = str(tmp_path / "lora")
    train.run(experiment_config("lora_email"), workdir)
    logged = _logged_evals(workdir)[6]
    _assert_same(evaluate(workdir), logged)
    merged = evaluate(export(workdir, str(tmp_path / "export")))
    assert merged["step"] is None
    _assert_same(merged, logged)


def test_bad_workdirs_and_batch_sizes_are_refused(resnet, tmp_path):
    with pytest.raises(BadInput, match="not a directory"):
        evaluate(str(tmp_path / "missing"))
    with pytest.raises(BadInput, match="no checkpoint"):
        evaluate(str(tmp_path))
    with pytest.raises(BadInput, match="--batch_size"):
        evaluate(resnet, batch_size=0)


def test_cli_prints_one_json_object_and_exits_2_on_bad_input(resnet, tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "bigmodels.evaluate", *args], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=300)

    done = cli(f"--workdir={resnet}")
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.strip().splitlines()
    _assert_same(json.loads(line), _logged_evals(resnet)[6])
    done = cli(f"--workdir={tmp_path}")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "no checkpoint" in done.stderr
