"""The README's commands work on a fresh clone.

A block under `<!-- readme-test: run -->` is run, line by line, in a directory laid out
like a fresh clone (the tracked `experiments/`, nothing else: no `../shared`, no `runs/`),
with `:tiny` appended to an experiment that has it. A block under
`<!-- readme-test: experiment <path> -->` is written to <path> there and trained (`:tiny`).
Every other `python -m bigmodels.main` command, in blocks and in the table, is checked
without training: its experiment file is in the repository, its variant is declared,
every `--config.<key>` exists, and `init_from` names a workdir an earlier command made
(or a Hugging Face hub id, `hf:<id>`).
"""

import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT
from helpers import load_experiment

README = (ROOT / "README.md").read_text()
MARKER = re.compile(r"<!-- readme-test: (\w+)(?: (\S+))? -->\n```\w*\n(.*?)```", re.S)
COMMAND = re.compile(r"python -m bigmodels\.main [^`\n]*")


def _marked(kind: str) -> list[tuple[str | None, str]]:
    return [(arg, body) for k, arg, body in MARKER.findall(README) if k == kind]


def _commands() -> list[str]:
    """Every concrete `bigmodels.main` command, in README order (templates skipped)."""
    return [c.strip() for c in COMMAND.findall(README) if "<" not in c]


def _config_arg(args: list[str]) -> tuple[str, str]:
    (value,) = [a.split("=", 1)[1] for a in args if a.startswith("--config=")]
    path, _, variant = value.partition(":")
    return path, variant


def _overrides(args: list[str]) -> dict[str, str]:
    return dict(a[len("--config."):].split("=", 1) for a in args if a.startswith("--config."))


def test_the_readme_marks_blocks_and_names_only_repository_paths():
    assert len(_marked("run")) >= 2 and _marked("experiment") and _marked("check")
    assert len(_commands()) >= 20          # the table and the walkthroughs
    assert "../shared" not in README and "shared/data" not in README


def test_every_training_command_names_real_files_variants_and_keys():
    made = set()        # workdirs made by earlier commands, for init_from
    own = {path for path, _ in _marked("experiment")}
    for command in _commands():
        args = shlex.split(command)
        path, variant = _config_arg(args)
        if path in own:
            continue        # written by the walkthrough; trained in the test below
        assert not path.startswith(".."), command
        assert (ROOT / path).is_file(), f"{path}: not in the repository ({command})"
        module = load_experiment(ROOT / path)
        assert variant in ("", *module.VARIANTS), f"{command}: unknown variant {variant!r}"
        config = module.get_config(variant)
        for key, value in _overrides(args).items():
            node = config
            for part in key.split("."):
                assert part in node, f"{command}: no config key {key}"
                node = node[part]
            if key == "init_from" and not value.startswith("hf:"):   # hf: is a hub id
                assert value in made, f"{command}: {value} is made by no earlier command"
        (workdir,) = [a.split("=", 1)[1] for a in args if a.startswith("--workdir=")]
        made.add(workdir)


def _tiny(args: list[str], clone) -> list[str]:
    """The command with `:tiny` on its experiment, when the experiment has one."""
    out = []
    for a in args:
        if a.startswith("--config=") and ":" not in a:
            module = load_experiment(clone / a.split("=", 1)[1])
            a += ":tiny" if "tiny" in module.VARIANTS else ""
        out.append(a)
    return out


def _run(line: str, clone) -> str:
    args = shlex.split(line)
    assert args[:2] == ["python", "-m"], line
    args = _tiny(args, clone) if args[2] == "bigmodels.main" else args
    done = subprocess.run([sys.executable, *args[1:]], cwd=clone, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"{line}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture
def fresh_clone(tmp_path):
    """The tracked experiment files, in a directory with nothing beside it."""
    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "experiments", clone / "experiments",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return clone


@pytest.mark.slow
def test_the_runnable_blocks_and_the_own_experiment_run_on_a_fresh_clone(fresh_clone):
    for _, body in _marked("run"):
        for line in body.strip().splitlines():
            stdout = _run(line, fresh_clone)
            if "bigmodels.sample" in line:
                assert stdout.strip(), line            # some text came out
    assert (fresh_clone / "exports" / "quickstart" / "config.json").is_file()

    (path, code), = _marked("experiment")
    (fresh_clone / path).write_text(code)
    texts = fresh_clone / "my_texts"
    texts.mkdir()
    (texts / "notes.txt").write_text((ROOT / "docs" / "architecture.md").read_text())
    stdout = _run(f"python -m bigmodels.main --config={path} --workdir=runs/my_gpt",
                  fresh_clone)
    assert "eval/loss" in stdout
    assert os.path.isdir(fresh_clone / "runs" / "my_gpt" / "checkpoints")
