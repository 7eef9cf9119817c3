"""Everything a run is built from, before any state exists: the mesh, the data, the
resolved config, the task, the regimes, the optimizer, and the state's shapes and
shardings. The train loop and the dry run (bigmodels/dry_run.py) share it, so the dry
run compiles exactly the step that training would run."""

import dataclasses

import jax

from bigmodels import data as data_lib, distributed, models, regimes as regimes_lib
from bigmodels import sharding, tasks
from bigmodels.errors import BadInput
from bigmodels.train import state as state_lib
from bigmodels.train.step import make_train_step
from bigmodels.train.validate import check_batch_split


@dataclasses.dataclass
class Setup:
    config: object            # resolved: vocab_size and num_classes filled in from the data
    mesh: object
    rules: tuple              # logical axis -> mesh axes (config.mesh.rules over the defaults)
    data: object
    task: object              # after every regime's wrap_task
    regimes: list
    tx: object
    schedule: object
    example: dict             # this process's rows of the first train batch
    abstract: state_lib.TrainState
    shardings: state_lib.TrainState

    @property
    def rng(self):
        return jax.random.key(self.config.seed)

    @property
    def batch_shardings(self):
        return jax.tree.map(lambda x: sharding.batch_sharding(self.mesh, x.ndim), self.example)

    def jit(self, fn, **kwargs):
        """`jax.jit` of a function of (state, batch) on this run's mesh, with its
        activation sharding rules in scope and the state and batch shardings in."""
        return jax.jit(sharding.with_activation_rules(fn, self.mesh, self.rules),
                       in_shardings=(self.shardings, self.batch_shardings), **kwargs)

    def jit_train_step(self):
        """The train step, jitted once with explicit shardings and a donated state."""
        step = make_train_step(self.task, self.tx, self.schedule, self.config.seed,
                               self.config.grad_accum_steps, self.regimes)
        return self.jit(step, out_shardings=(self.shardings, sharding.replicated(self.mesh)),
                        donate_argnums=0)


def resolve(config, data):
    """Fills what only the data knows (the vocabulary size) into a copy of the config."""
    config = config.copy_and_resolve_references()
    with config.unlocked():
        if "vocab_size" in config.model and config.model.vocab_size <= 0:
            config.model.vocab_size = data.tokenizer.vocab_size
        if "num_classes" in config.model and config.model.num_classes <= 0:
            config.model.num_classes = data.num_classes
    if "vocab_size" in config.model and config.model.vocab_size < data.tokenizer.vocab_size:
        # Ids past the embedding table would be looked up silently out of range.
        raise BadInput(f"model.vocab_size={config.model.vocab_size} is smaller than the "
                       f"tokenizer's {data.tokenizer.vocab_size} tokens (data.tokenizer="
                       f"{config.data.get('tokenizer')!r})")
    return config


def build(config, workdir: str, devices=None) -> Setup:
    """Builds a run's parts; raises BadInput for config or data at fault. Writes nothing
    into `workdir` (data builders only read a resumed run's saved statistics)."""
    mesh = sharding.make_mesh(config.mesh, devices)
    rules = sharding.rules_from_config(config.mesh)
    if devices is None:
        distributed.check_processes(mesh.size)
    check_batch_split(config, sharding.data_parallel_size(mesh))
    data = data_lib.build(config, workdir, jax.process_index(), jax.process_count())
    config = resolve(config, data)
    task = tasks.build(config, models.build(config.model), data)
    regimes = regimes_lib.build(config, task, mesh)
    task = regimes_lib.wrap_task(task, regimes)
    rng = jax.random.key(config.seed)
    example = data.train[0]
    params, model_state = state_lib.abstract_variables(task, rng, example)
    for regime in regimes:
        regime.check(params, model_state)
    tx, schedule = regimes_lib.build_optimizer(config.optim, config.total_steps, regimes,
                                               task.update_groups, params)
    abstract, shardings = state_lib.state_shardings(task, tx, mesh, rng, example, regimes,
                                                    rules)
    return Setup(config, mesh, rules, data, task, regimes, tx, schedule, example, abstract,
                 shardings)
