"""`python -m bigmodels.plot` draws runs' curves from metrics.jsonl, and refuses bad
input with one line."""

import json
import subprocess
import sys

import pytest

from bigmodels import plot
from bigmodels.errors import BadInput
from conftest import ROOT

pytest.importorskip("matplotlib")


def _run(directory, losses, evals):
    directory.mkdir(parents=True)
    with open(directory / "metrics.jsonl", "w") as f:
        for step, loss in enumerate(losses, 1):
            f.write(json.dumps({"step": step, "train/loss": loss}) + "\n")
        for step, loss in evals:
            f.write(json.dumps({"step": step, "eval/loss": loss}) + "\n")
        f.write('{"step": 9, "train/lo')                 # a line cut off by a kill
    return str(directory)


def test_two_runs_are_drawn_one_line_each(tmp_path):
    a = _run(tmp_path / "a", [3.0, 2.5, 2.0], [(3, 2.2)])
    b = _run(tmp_path / "b", [3.1, 2.9, 2.8], [(3, 2.9)])
    fig = plot.plot_runs([a, b])
    loss, evals = fig.axes
    assert [ax.get_title() for ax in fig.axes] == ["train/loss", "eval/loss"]
    assert [line.get_label() for line in loss.get_lines()] == ["a", "b"]
    assert list(loss.get_lines()[0].get_ydata()) == [3.0, 2.5, 2.0]
    out = tmp_path / "curves.png"
    result = subprocess.run([sys.executable, "-m", "bigmodels.plot", f"--workdir={a}",
                             f"--workdir={b}", "--metrics=train/loss", f"--out={out}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    named = plot.plot_runs({"pretrained": a, "scratch": b}, metrics=["eval/loss"])
    assert [line.get_label() for line in named.axes[0].get_lines()] == ["pretrained", "scratch"]


def test_bad_plot_input_is_one_line(tmp_path):
    a = _run(tmp_path / "a", [1.0], [])
    with pytest.raises(BadInput, match="no metrics.jsonl"):
        plot.plot_runs([str(tmp_path / "missing")])
    with pytest.raises(BadInput, match="'eval/acc' is in no run"):
        plot.plot_runs([a], ["eval/acc"])
    result = subprocess.run([sys.executable, "-m", "bigmodels.plot", f"--workdir={a}",
                             "--metrics=nope", f"--out={tmp_path / 'x.png'}"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert not (tmp_path / "x.png").exists()
