"""Fine-tuning regimes over param names: freezing and per-param learning-rate scales.

`optim.freeze` (regexes over param paths such as `encoder/block_0/attn/qkv/kernel`)
routes matching params to `optax.set_to_zero()`: they never change and carry no
optimizer state. `optim.lr_multipliers` ("regex=factor,...", first match wins) scales
the update of matching params, e.g. a smaller rate for a pretrained encoder than for
its new head. Both act on each optimizer group's chain, and both refuse a regex that
matches no param: a typo would otherwise train everything at the full rate, silently.
"""

import re

import jax
import optax

from bigmodels.errors import BadInput
from bigmodels.names import path_name
from bigmodels.regimes.base import Regime


def regexes(key: str, text: str) -> list:
    """Comma-separated regexes; BadInput naming `optim.<key>` if one does not compile."""
    try:
        return [re.compile(r) for r in filter(None, (p.strip() for p in text.split(",")))]
    except re.error as e:
        raise BadInput(f"optim.{key}: bad regex: {e}") from None


def parse_multipliers(text: str) -> list[tuple]:
    """ "encoder/=0.1,head=2" -> [(regex, 0.1), (regex, 2.0)]."""
    rules = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        pattern, sep, factor = part.rpartition("=")
        try:
            if not sep:
                raise ValueError
            rules.append((regexes("lr_multipliers", pattern)[0], float(factor)))
        except (ValueError, IndexError):
            raise BadInput(f"optim.lr_multipliers: {part!r} is not regex=factor") from None
    return rules


def by_path(fn):
    """A function of params that maps each leaf's path name through `fn`."""
    return lambda params: jax.tree_util.tree_map_with_path(lambda p, _: fn(path_name(p)),
                                                           params)


def check_matches(key: str, patterns: list, abstract_params) -> None:
    names = [path_name(p) for p, _ in jax.tree_util.tree_leaves_with_path(abstract_params)]
    for regex in patterns:
        if not any(regex.search(n) for n in names):
            raise BadInput(f"optim.{key}: {regex.pattern!r} matches no param (names look "
                           f"like {names[0]!r})")


def scale_by_name(rules: list[tuple]) -> optax.GradientTransformation:
    """Multiplies each update by the factor of the first rule whose regex matches."""
    def factor(name):
        return next((f for r, f in rules if r.search(name)), 1.0)

    def update(updates, state, params=None):
        factors = by_path(factor)(updates)
        return jax.tree.map(lambda u, f: u * f, updates, factors), state
    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


class Freeze(Regime):
    """Matching params never change and carry no optimizer state."""

    def __init__(self, text: str):
        self.patterns = regexes("freeze", text)

    def labels(self, params):
        return by_path(lambda name: "frozen" if any(r.search(name) for r in self.patterns)
                       else "trained")(params)

    def check(self, abstract_params, abstract_model_state) -> None:
        check_matches("freeze", self.patterns, abstract_params)

    def transform_group(self, tx):
        return optax.multi_transform({"trained": tx, "frozen": optax.set_to_zero()},
                                     self.labels)


class LRMultipliers(Regime):
    """The update of matching params is scaled by their factor (first match wins)."""

    def __init__(self, text: str):
        self.rules = parse_multipliers(text)

    def check(self, abstract_params, abstract_model_state) -> None:
        check_matches("lr_multipliers", [r for r, _ in self.rules], abstract_params)

    def transform_group(self, tx):
        return optax.chain(tx, scale_by_name(self.rules))


def for_optim(optim_config) -> list[Regime]:
    """The regimes `optim.lr_multipliers` and `optim.freeze` ask for, in nesting order."""
    out = []
    if optim_config.lr_multipliers:
        out.append(LRMultipliers(optim_config.lr_multipliers))
    if optim_config.freeze:
        out.append(Freeze(optim_config.freeze))
    return out


def from_config(config, task, mesh) -> list[Regime]:
    return for_optim(config.optim)
