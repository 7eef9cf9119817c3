"""CPU runs split the host's cores into devices (bigmodels/host_devices.py)."""

import os
import subprocess
import sys

import pytest

from bigmodels import host_devices
from bigmodels.config import base_config
from bigmodels.errors import BadInput
from conftest import ROOT


def _config(batch_size=12, grad_accum_steps=1, **mesh):
    c = base_config(batch_size=batch_size, grad_accum_steps=grad_accum_steps)
    c.model = {}
    c.mesh.update(mesh)
    return c


@pytest.mark.parametrize("config, cores, expected", [
    (_config(12), 2, 2),
    (_config(12), 8, 6),                          # 7 and 8 do not divide the batch
    (_config(7), 2, 1),
    (_config(12, grad_accum_steps=3), 8, 4),      # microbatch 4
    (_config(12, tensor=2), 8, 8),                # data 4 x tensor 2
    (_config(12, tensor=2), 5, 4),
    (_config(12, fsdp=3, data=1), 4, 3),          # only a multiple of 3 fills the mesh
])
def test_usable_count(config, cores, expected):
    assert host_devices.usable_count(config, cores) == expected


def test_local_sgd_keeps_one_device():
    c = _config(12)
    c.local_sgd.inner_steps = 4       # replicas = the data axis: cores must not change it
    assert host_devices.usable_count(c, 8) == 1


def test_a_count_set_before_is_left_alone():
    # conftest set 8 devices through XLA_FLAGS.
    assert host_devices.count_already_set()
    assert host_devices.split_host_cpus(_config()) == 0


def test_negative_count_is_refused():
    c = _config()
    c.cpu_devices = -1
    with pytest.raises(BadInput, match="cpu_devices"):
        host_devices.split_host_cpus(c)


def _without_device_flags():
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
             if "xla_force_host_platform_device_count" not in f]
    return dict(os.environ, XLA_FLAGS=" ".join(flags), JAX_PLATFORMS="cpu")


def _python(code, **env):
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                          env=dict(_without_device_flags(), **env),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()


SPLIT = """
import jax
from bigmodels import host_devices
from bigmodels.config import base_config
c = base_config(batch_size=12)
c.model, c.cpu_devices = {}, 3
"""


def test_split_before_jax_starts():
    # Set once; a second call finds the count already set and leaves it.
    assert _python(SPLIT + "print(host_devices.split_host_cpus(c), jax.device_count(), "
                           "host_devices.split_host_cpus(c))") == ["3", "3", "0"]


def test_no_split_once_jax_has_started():
    assert _python(SPLIT + "jax.devices()\nprint(host_devices.split_host_cpus(c), "
                           "jax.device_count())") == ["0", "1"]


def test_no_split_off_cpu():
    # The split was tuned on the CPU: an accelerator platform keeps XLA's CPU default.
    # host_devices sits below the train package and must not import it.
    assert _python(SPLIT + "import sys\nprint(host_devices.split_host_cpus(c), "
                           "jax.config.jax_num_cpu_devices, 'bigmodels.train' in sys.modules)",
                   JAX_PLATFORMS="tpu") == ["0", "-1", "False"]


@pytest.mark.parametrize("platforms, installed, expected", [
    ("cpu", True, True), ("cuda,cpu", False, False), ("tpu", False, False),
    (" CPU ", True, True), ("", False, True), ("", True, False)])
def test_runs_on_cpu(monkeypatch, platforms, installed, expected):
    monkeypatch.setattr(host_devices, "_accelerator_installed", lambda: installed)
    assert host_devices.runs_on_cpu(platforms) is expected


def test_cli_trains_over_the_split(tmp_path, corpus):
    done = subprocess.run(
        [sys.executable, "-m", "bigmodels.main", "--config=experiments/quickstart.py:tiny",
         f"--workdir={tmp_path}", f"--config.data.path={corpus}", "--config.sample_at_end=",
         "--config.cpu_devices=2"],
        cwd=ROOT, env=_without_device_flags(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "mesh data=2 fsdp=1 tensor=1 over 2 cpu devices" in done.stdout
