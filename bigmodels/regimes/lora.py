"""LoRA and QLoRA: train low-rank adapters on a frozen base (bigmodels/nn/lora.py).

    --config.lora.rank=8 --config.lora.base=runs/quickstart
        [--config.lora.alpha=16 --config.lora.targets='(attn|mlp)/'
         --config.lora.dropout=0.05 --config.lora.base_dtype=nf4]

`state.params` holds the base and the adapters (`lora_a`, `lora_b` beside each adapted
kernel), in the model's own nesting and logical axes, so both shard with the mesh.
Only the adapters train:

- the update rule differentiates the adapters alone, so no weight gradient of the base
  is ever computed, and applies the update to them alone: the base is bit-unchanged;
- each optimizer group's chain is masked (`optax.set_to_zero`, as `optim.freeze`), so
  the base has no optimizer state;
- with `base_dtype` int8 or nf4 (QLoRA) the base is held quantized, even in the state.

`lora.base` is the reference to the base: a run, step directory or export of the same
model, read after init straight into the state's shardings and quantized there (the
`after_init` hook); "" keeps the model's own fresh init. A fresh run's `init_from`
(another LoRA run's adapters and base) is loaded first. An export
(`bigmodels.export`) merges: W + (alpha / rank) A . B, in float32, under the plain
model's names, which the plain model, `--to_hf` and `sample` read;
`bigmodels.convert --to_peft` writes the adapters alone for the peft library.
"""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

from bigmodels import checkpoint
from bigmodels.checkpoint import tree
from bigmodels.checkpoint.load import restore_flat
from bigmodels.errors import BadInput
from bigmodels.nn import lora, quantize
from bigmodels.regimes.base import Regime, StepContext, Update, loss_and_grads
from bigmodels.regimes.finetune import by_path

PARAMS = "params/"


def spec_from_config(cfg) -> lora.LoraSpec:
    """The LoraSpec of `config.lora`; BadInput naming the key at fault."""
    if cfg.rank < 1:
        raise BadInput(f"lora.rank must be >= 1 (0 = no LoRA), got {cfg.rank}")
    if cfg.alpha <= 0:
        raise BadInput(f"lora.alpha must be > 0, got {cfg.alpha}")
    if not 0 <= cfg.dropout < 1:
        raise BadInput(f"lora.dropout must be in [0, 1), got {cfg.dropout}")
    if cfg.base_dtype not in quantize.KINDS:
        raise BadInput(f"lora.base_dtype must be one of {', '.join(quantize.KINDS)}, "
                       f"got {cfg.base_dtype!r}")
    try:
        re.compile(cfg.targets)
    except re.error as e:
        raise BadInput(f"lora.targets: bad regex: {e}") from None
    return lora.LoraSpec(int(cfg.rank), float(cfg.alpha), cfg.targets, float(cfg.dropout),
                         cfg.base_dtype)


def is_adapter(name: str) -> bool:
    return name.rsplit("/", 1)[-1] in lora.ADAPTERS


def _metadata(key: str, source: str) -> dict:
    try:
        return checkpoint.metadata(source)
    except BadInput as e:
        raise BadInput(f"{key}: {e}") from None


class LoRA(Regime):

    name = "lora"

    def __init__(self, cfg, init_from: str = ""):
        self.spec = spec_from_config(cfg)
        self.base = cfg.base
        self.init_from = init_from
        # Checkpoints of the adapters alone, the base re-read from lora.base on resume.
        self.adapters_only = not cfg.get("checkpoint_base", True)
        if self.adapters_only and not self.base:
            raise BadInput("lora.checkpoint_base=False needs lora.base: a base that is "
                           "not saved must be re-read from a run or export")
        if self.adapters_only and self.spec.base_dtype != "float32":
            # Re-read and re-rounded, it would be; but an export merges what trained,
            # and a held base is small (int8 0.26x, nf4 0.15x of float32): it is saved.
            raise BadInput(f"lora.checkpoint_base=False needs lora.base_dtype=float32 (a "
                           f"{self.spec.base_dtype} base is saved with the run)")
        self.abstract_base = None

    def wrap_task(self, task):
        if not dataclasses.is_dataclass(task) or not isinstance(getattr(task, "model", None),
                                                                nn.Module):
            raise BadInput(f"lora: task {type(task).__name__} has no model to adapt")
        return dataclasses.replace(task, model=lora.LoraModel(task.model, self.spec))

    def check(self, abstract_params, abstract_model_state) -> None:
        self.abstract_base = lora.split(abstract_params)[1]      # for after_restore
        names = list(tree.flatten(abstract_params))
        if not any(is_adapter(n) for n in names):
            layers = [n.split("/kernel")[0] for n in names if "/kernel" in n]
            seen = f"their paths look like {layers[0]!r}" if layers else "the model has none"
            raise BadInput(f"lora.targets: {self.spec.targets!r} matches no Dense layer "
                           f"({seen})")
        if self.base:
            expected = tree.flatten(lora.float_shapes(abstract_params))
            found = {n[len(PARAMS):]: m for n, m in _metadata("lora.base", self.base).items()
                     if n.startswith(PARAMS)}
            diff = tree.shape_diff(expected, found, "model", "lora.base checkpoint")
            if diff:
                raise BadInput(f"lora.base {self.base}: {diff}")
        if self.init_from:
            saved = _metadata("init_from", self.init_from)
            if not any(is_adapter(n) for n in saved):
                raise BadInput(f"init_from {self.init_from} holds no LoRA adapters; a LoRA "
                               f"run reads its base from --config.lora.base=<run or export>")

    def transform_group(self, tx):
        labels = by_path(lambda name: "adapter" if is_adapter(name) else "base")
        return optax.multi_transform({"adapter": tx, "base": optax.set_to_zero()}, labels)

    def update(self, ctx: StepContext, state, batch, rng) -> Update:
        adapters, base = lora.split(state.params)

        def adapter_loss(a, model_state, b, r):
            return ctx.task.loss(lora.join(a, base), model_state, b, r, train=True)

        metrics, model_state, grads = loss_and_grads(
            jax.value_and_grad(adapter_loss, has_aux=True), adapters, state.model_state,
            batch, rng, ctx.grad_accum_steps)
        # The base's zero gradients reach only its set_to_zero branch, whose output is
        # dropped below, so XLA removes that work.
        full_grads = lora.join(grads, jax.tree.map(jnp.zeros_like, base))
        updates, opt_state = ctx.tx.update(full_grads, state.opt_state, state.params,
                                           value=metrics["loss"])
        trained = optax.apply_updates(adapters, lora.split(updates)[0])
        return Update(lora.join(trained, base), opt_state, model_state, metrics, grads)

    def after_init(self, state, shardings):
        """Reads `lora.base` into the base, each weight straight into its sharding (a
        quantized one into its codes' sharding), and holds it as the state does."""
        if not self.base:
            return state
        adapters, _ = lora.split(state.params)
        return state.replace(params=lora.join(adapters, self._read_base(shardings)))

    def checkpoint_state(self, state):
        if not self.adapters_only:
            return state
        return state.replace(params=lora.split(state.params)[0])

    def after_restore(self, state, shardings):
        if not self.adapters_only:
            return state
        return state.replace(params=lora.join(state.params, self._read_base(shardings)))

    def _read_base(self, shardings):
        """The base of `lora.base`, as the state holds it (quantized for QLoRA), each
        weight read straight into its sharding (a quantized one, its codes')."""
        held = lora.weights(self.abstract_base)
        placed = lora.weights(lora.split(shardings.params)[1])
        sharding = {n: s.get("int8", s.get("nf4")) if isinstance(s, dict) else s
                    for n, s in placed.items()}
        loaded = restore_flat(self.base, [PARAMS + n for n in held],
                              shardings={PARAMS + n: s for n, s in sharding.items()})
        shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), held)
        hold = jax.jit(lambda flat: {n: quantize.quantize_like(w, shapes[n])
                                     for n, w in flat.items()}, out_shardings=placed)
        return tree.unflatten(hold({n: loaded[PARAMS + n] for n in held}))

    def export_params(self, params, extra):
        if not lora.split(params)[1]:            # an adapters-only checkpoint
            params = lora.join(params, checkpoint.load(self.base))
        return jax.tree.map(np.asarray, lora.merge(params, self.spec.scale))


def from_config(config, task, mesh) -> list[Regime]:
    cfg = config.get("lora")
    if cfg is None or cfg.rank == 0:
        return []
    return [LoRA(cfg, config.get("init_from", ""))]
