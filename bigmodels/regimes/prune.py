"""Magnitude pruning (jaxpruner's design, our own code): masks in the optimizer state.

    --config.prune.target=0.5 [--config.prune.begin_step=0 --config.prune.end_step=-1
     --config.prune.every=10 --config.prune.include='kernel$'
     --config.prune.structure=unstructured|2:4]

`transform_group` appends `magnitude_prune` to each optimizer group's chain. Its state
(`PruneState`, checkpointed and sharded with the rest of `opt_state`) holds a step count
and one bool mask per param matched by `include` (an `optax.MaskedNode` for the others,
as `optim.freeze` does, so each mask gets its param's sharding by default). At mask
steps (begin_step <= step <= end_step, every `every` steps, and at end_step) it takes a
new mask within the old one, so masks only shrink:

- `unstructured`: per tensor, the round(s * size) smallest |w| are pruned, at the
  scheduled sparsity s = target * (1 - (1 - progress)^3),
  progress = clip((step - begin) / (end - begin), 0, 1);
- `n:m` (e.g. 2:4): in each group of m consecutive weights along axis 0 of the param
  (a Dense kernel's first input axis) the n largest |w| are kept, from begin_step on;
  `target` is not used. Masks only shrink, so the first n:m mask is the final one.

The mask is taken on the weights this step would produce (w = p + update), and the
updates it returns make the new params exactly `mask * w`: pruned weights are exactly
zero after every step and stay zero. `train/sparsity` is the fraction of exact zeros
among the matched params; an export writes the params as they are (zeros in place).
"""

import re
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from bigmodels.errors import BadInput
from bigmodels.names import path_name
from bigmodels.nn import sparsity
from bigmodels.regimes.base import Regime
from bigmodels.regimes.finetune import check_matches


class PruneSpec(NamedTuple):
    target: float
    begin: int
    end: int
    every: int
    structure: tuple | None         # None: unstructured; (n, m)
    include: Any                    # a compiled regex over param path names


class PruneState(NamedTuple):
    count: jax.Array                # updates so far (int32)
    masks: Any                      # bool per matched param, MaskedNode elsewhere


def _masked(x) -> bool:
    return isinstance(x, optax.MaskedNode)


def is_mask_step(spec: PruneSpec, step):
    on_schedule = ((step - spec.begin) % spec.every == 0) | (step == spec.end)
    return (step >= spec.begin) & (step <= spec.end) & on_schedule


def new_masks(spec: PruneSpec, masks, weights, step):
    """The masks of step `step`, each within its old mask, from |weights|."""
    if spec.structure is None:
        s = sparsity.scheduled_sparsity(step, spec.target, spec.begin, spec.end)
        one = lambda m, w: sparsity.unstructured_mask(w, m, s)          # noqa: E731
    else:
        n, m_ = spec.structure
        one = lambda m, w: sparsity.n_m_mask(w, m, n, m_)               # noqa: E731
    return jax.tree.map(lambda m, w: m if _masked(m) else one(m, w), masks, weights,
                        is_leaf=_masked)


def magnitude_prune(spec: PruneSpec) -> optax.GradientTransformation:
    """Goes last in a chain: turns its updates u into u' such that p + u' = mask * (p + u),
    with the mask recomputed at mask steps (see the module docstring)."""
    def init(params):
        def mask(path, p):
            if spec.include.search(path_name(path)):
                return jnp.ones(p.shape, bool)
            return optax.MaskedNode()
        return PruneState(jnp.zeros([], jnp.int32),
                          jax.tree_util.tree_map_with_path(mask, params))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("magnitude_prune needs the params")
        step = state.count
        proposed = jax.tree.map(lambda m, p, u: m if _masked(m) else p + u,
                                state.masks, params, updates, is_leaf=_masked)
        masks = jax.lax.cond(is_mask_step(spec, step),
                             lambda ms: new_masks(spec, ms, proposed, step),
                             lambda ms: ms, state.masks)

        def masked_update(m, p, u):
            if _masked(m):
                return u
            return jnp.where(m, u, -p).astype(u.dtype)
        updates = jax.tree.map(masked_update, masks, params, updates, is_leaf=_masked)
        return updates, PruneState(optax.safe_int32_increment(step), masks)

    return optax.GradientTransformation(init, update)


def spec_from_config(cfg, total_steps: int) -> PruneSpec:
    """The PruneSpec of `config.prune`; BadInput naming the key at fault."""
    if not 0 <= cfg.target < 1:
        raise BadInput(f"prune.target must be in [0, 1) (0 = off), got {cfg.target}")
    try:
        structure = sparsity.parse_structure(cfg.structure)
    except ValueError:
        raise BadInput(f"prune.structure must be 'unstructured' or 'n:m' with 0 < n < m "
                       f"(e.g. '2:4'), got {cfg.structure!r}") from None
    begin = int(cfg.begin_step)
    end = int(total_steps if cfg.end_step == -1 else cfg.end_step)
    if begin < 0:
        raise BadInput(f"prune.begin_step must be >= 0, got {begin}")
    if end < begin:
        raise BadInput(f"prune.end_step ({end}) must be >= prune.begin_step ({begin}) "
                       f"(-1 = total_steps)")
    if cfg.every < 1:
        raise BadInput(f"prune.every must be >= 1, got {cfg.every}")
    try:
        include = re.compile(cfg.include)
    except re.error as e:
        raise BadInput(f"prune.include: bad regex: {e}") from None
    return PruneSpec(float(cfg.target), begin, end, int(cfg.every), structure, include)


class Prune(Regime):

    name = "prune"

    def __init__(self, spec: PruneSpec):
        self.spec = spec

    def _matched(self, params):
        return {path_name(p): x for p, x in jax.tree_util.tree_leaves_with_path(params)
                if self.spec.include.search(path_name(p))}

    def check(self, abstract_params, abstract_model_state) -> None:
        try:
            check_matches("include", [self.spec.include], abstract_params)
        except BadInput as e:
            raise BadInput(str(e).replace("optim.include", "prune.include")) from None
        if self.spec.structure is not None:
            n, m = self.spec.structure
            for name, x in self._matched(abstract_params).items():
                if x.ndim < 1 or x.shape[0] % m:
                    raise BadInput(f"prune.structure={n}:{m}: {name} has shape "
                                   f"{tuple(x.shape)}, whose axis 0 is not a multiple of "
                                   f"{m} (narrow prune.include)")

    def transform_group(self, tx):
        return optax.chain(tx, magnitude_prune(self.spec))

    def step_metrics(self, old_state, new_state) -> dict:
        matched = list(self._matched(new_state.params).values())
        zeros = sum(jnp.sum(x == 0) for x in matched)
        return {"sparsity": zeros / sum(x.size for x in matched)}


def from_config(config, task, mesh) -> list[Regime]:
    cfg = config.get("prune")
    if cfg is None:
        return []
    spec = spec_from_config(cfg, config.total_steps)
    if spec.target == 0 and spec.structure is None:
        return []
    if config.get("lora") is not None and config.lora.rank > 0:
        raise BadInput("prune: a LoRA run (lora.rank > 0) cannot be pruned; prune the "
                       "merged export in a run of its own")
    if config.get("local_sgd") is not None and config.local_sgd.inner_steps > 0:
        raise BadInput("prune: local_sgd's outer step would refill pruned weights; set "
                       "local_sgd.inner_steps=0")
    return [Prune(spec)]
