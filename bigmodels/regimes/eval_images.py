"""Image grids at each eval, for tasks that declare `image_outputs` (AE, VAE, GAN).

After each eval the task's `eval_images(params, model_state, batch)` runs on the first
eval batch, jitted on the run's mesh, and the primary process writes
`images/<name>_<step>.png` for each grid it returns.
"""

import os

import jax
import numpy as np

from bigmodels import images as images_lib
from bigmodels.names import IMAGES_DIR
from bigmodels.regimes.base import Regime


def write_eval_images(workdir: str, step: int, images: dict) -> None:
    """`images/<name>_<step>.png` for each {name: N x H x W x C array in [0, 1]}."""
    directory = os.path.join(workdir, IMAGES_DIR)
    os.makedirs(directory, exist_ok=True)
    for name, batch in images.items():
        path = os.path.join(directory, f"{name}_{step:06d}.png")
        with open(path + ".tmp", "wb") as f:     # a kill mid-write leaves no broken PNG
            f.write(images_lib.png_bytes(images_lib.grid(np.asarray(batch))))
        os.replace(path + ".tmp", path)


class EvalImages(Regime):

    name = "eval_images"

    def __init__(self):
        self._grids = None          # jitted on first use, on the run's mesh

    def after_eval(self, run, step: int, state) -> None:
        if self._grids is None:
            task = run.task
            self._grids = run.jit(lambda s, batch: task.eval_images(
                s.params, s.model_state, batch))
        images = jax.device_get(self._grids(state, run.eval_batch()))
        if run.is_primary:
            write_eval_images(run.workdir, step, images)


def from_config(config, task, mesh) -> list[Regime]:
    return [EvalImages()] if task.image_outputs else []
