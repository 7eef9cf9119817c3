"""The launchers in launch/: local.sh runs a real 2-process job; tpu_pod.sh and
slurm.sbatch run against stand-ins for gcloud and srun that record what they were
asked to do. Each stops every worker when one fails."""

import json
import os
import pathlib
import stat
import subprocess
import sys
import time

import pytest

from conftest import FAST_COMPILE_FLAGS
from helpers import read_metrics

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"


def _script(path: pathlib.Path, text: str) -> str:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def _fake_python(tmp_path, fail_when: str) -> str:
    """A stand-in interpreter: prints its arguments, fails (exit 3) when the shell
    condition `fail_when` holds, otherwise sleeps long enough to be seen stopped."""
    return _script(tmp_path / "fake_python", f"""#!/usr/bin/env bash
echo "args: $*"
if {fail_when}; then echo "failing"; exit 3; fi
sleep 60
echo "finished"
""")


@pytest.mark.slow
def test_local_sh_runs_two_processes(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "CPU_DEVICES_PER_PROCESS": "4",
           "XLA_FLAGS": FAST_COMPILE_FLAGS}      # local.sh adds the device count
    done = subprocess.run(
        ["bash", str(LAUNCH / "local.sh"), "2", "--config=experiments/quickstart.py:tiny",
         f"--workdir={tmp_path / 'run'}", "--config.mesh.data=2", "--config.mesh.fsdp=4"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "[worker 0] step 6:" in done.stdout and "[worker 1]" in done.stdout
    # Gloo's connection lines (over half the output, mid-line among ours) are silenced
    # in each process (bigmodels/distributed.py), so none reaches the launcher.
    assert "[Gloo]" not in done.stdout and "is connected to" not in done.stdout
    assert max(read_metrics(str(tmp_path / "run"))) == 6
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["distributed"]["num_processes"] == 2


def test_local_sh_stops_the_others_when_one_fails(tmp_path):
    python = _fake_python(tmp_path, '[[ "$*" == *process_id=1* ]]')
    start = time.monotonic()
    done = subprocess.run(["bash", str(LAUNCH / "local.sh"), "3", "--config=x", "--workdir=y"],
                          env={**os.environ, "PYTHON": python, "PORT": "12345"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert time.monotonic() - start < 20             # nobody waited for the 60 s sleeps
    assert "[worker 1] failing" in done.stdout and "finished" not in done.stdout
    assert "coordinator=localhost:12345" in done.stdout and "num_processes=3" in done.stdout


@pytest.fixture
def fake_gcloud(tmp_path):
    """A `gcloud` on PATH: `describe` shows two workers; `ssh --worker=N` runs the
    command here with TPU_WORKER_ID=N; every call is logged."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "gcloud.log"
    _script(bin_dir / "gcloud", f"""#!/usr/bin/env bash
echo "$*" >> {log}
worker=""; command=""
for a in "$@"; do
  case "$a" in --worker=*) worker="${{a#--worker=}}";; --command=*) command="${{a#--command=}}";; esac
done
case "$*" in
  *" describe "*) echo "10.0.0.1;10.0.0.2";;
  *" ssh "*) if [[ "$worker" == all ]]; then exit 0; fi
             cd {tmp_path} && TPU_WORKER_ID="$worker" bash -c "$command";;
esac
""")
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "REMOTE_DIR": str(tmp_path)}, log


def test_tpu_pod_run_prefixes_workers_and_stops_all_on_failure(tmp_path, fake_gcloud):
    env, log = fake_gcloud
    env["REMOTE_PYTHON"] = _fake_python(tmp_path, '[[ "$TPU_WORKER_ID" == 1 ]]')
    start = time.monotonic()
    done = subprocess.run(["bash", str(LAUNCH / "tpu_pod.sh"), "run", "--config=e.py",
                           "--workdir=/shared/run"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    assert time.monotonic() - start < 20
    assert "[worker 0] args: -m bigmodels.main --config=e.py --workdir=/shared/run " \
           "--config.distributed.coordinator=cluster" in done.stdout
    assert "[worker 1] failing" in done.stdout
    calls = log.read_text()
    assert "--worker=all --command=pkill -f bigmodels.main" in calls


def test_tpu_pod_run_succeeds_when_every_worker_does(tmp_path, fake_gcloud):
    env, _ = fake_gcloud
    env["REMOTE_PYTHON"] = _script(tmp_path / "ok_python", "#!/usr/bin/env bash\necho ok\n")
    done = subprocess.run(["bash", str(LAUNCH / "tpu_pod.sh"), "run", "--config=e.py",
                           "--workdir=w"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "[worker 0] ok" in done.stdout and "[worker 1] ok" in done.stdout


def test_slurm_sbatch_runs_one_srun_that_stops_on_failure(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _script(bin_dir / "srun", '#!/usr/bin/env bash\necho "srun $*"\n')
    done = subprocess.run(["bash", str(LAUNCH / "slurm.sbatch"), "--config=experiments/x.py",
                           "--workdir=/shared/run"],
                          env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                               "SLURM_SUBMIT_DIR": str(ROOT)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("srun --kill-on-bad-exit=1 --label .venv/bin/python -m "
                                   "bigmodels.main --config=experiments/x.py "
                                   "--workdir=/shared/run --config.distributed.coordinator=cluster")
