"""`init_from`: start a new run from another run's params (fine-tuning), not a resume.

Only params are read: the optimizer state is fresh, the step is 0 and the LR schedule
starts from its beginning. Every model param must come from the checkpoint and every
checkpoint param must be used, unless

- `init_from_rename` (comma-separated `old_regex=>new` rules, applied in order to each
  checkpoint name) maps it onto a model name; or
- `init_from_skip` (comma-separated regexes, matched against model names and renamed
  checkpoint names) names it: a skipped model param keeps its fresh initialisation (a
  new head), a skipped checkpoint param is ignored (an old head).

Otherwise the error lists the missing and unexpected names and any shape mismatches.
"""

import re

from bigmodels.checkpoint import load as load_lib
from bigmodels.checkpoint import tree
from bigmodels.errors import BadInput

PARAMS = "params/"


def _patterns(text: str, key: str) -> list:
    try:
        return [re.compile(p.strip()) for p in text.split(",") if p.strip()]
    except re.error as e:
        raise BadInput(f"{key}: bad regular expression ({e})") from e


def _renames(text: str) -> list:
    rules = []
    for rule in filter(None, (r.strip() for r in text.split(","))):
        if "=>" not in rule:
            raise BadInput(f"init_from_rename: rule {rule!r} is not of the form old=>new")
        old, new = rule.split("=>", 1)
        rules.append((_patterns(old, "init_from_rename")[0], new.strip()))
    return rules


def check_init_source(source: str) -> None:
    """Raises BadInput naming init_from unless `source` holds a readable checkpoint."""
    try:
        load_lib.metadata(source)
    except BadInput as e:
        raise BadInput(f"init_from: {e}") from e


def plan(source: str, params, skip: str = "", rename: str = "") -> dict:
    """{model param name: checkpoint array name} for every param to load.

    `params` may be abstract (shapes only), so a run checks its init_from before it
    writes anything. Raises BadInput listing every mismatch.
    """
    check_init_source(source)
    meta = load_lib.metadata(source)
    skips = _patterns(skip, "init_from_skip")
    rules = _renames(rename)

    def skipped(name):
        return any(p.search(name) for p in skips)

    def renamed(name):
        for pattern, new in rules:
            name = pattern.sub(new, name)
        return name

    source_names = {}                      # model name -> name in the checkpoint
    for name in meta:
        if not name.startswith(PARAMS):
            continue
        new = renamed(name[len(PARAMS):])
        if skipped(new):
            continue
        if new in source_names:
            raise BadInput(f"init_from_rename: {source_names[new][len(PARAMS):]} and "
                           f"{name[len(PARAMS):]} both map to {new}")
        source_names[new] = name
    target = tree.flatten(params)
    wanted = {n: target[n] for n in target if not skipped(n)}
    found = {n: meta[c] for n, c in source_names.items()}
    diff = tree.shape_diff(wanted, found, "model", "init_from checkpoint")
    if diff:
        raise BadInput(f"init_from {source}: {diff} (keep params freshly initialised with "
                       f"--config.init_from_skip=<regex>, or map names with "
                       f"--config.init_from_rename=<old regex>=><new>)")
    return {n: source_names[n] for n in wanted}


def init_params(source: str, params, param_shardings, skip: str = "", rename: str = ""):
    """(params with every matched leaf read from `source`, names left as initialised).

    `params` is the freshly initialised tree; `param_shardings` its shardings, which
    the loaded arrays are read straight into.
    """
    names = plan(source, params, skip, rename)
    target = tree.flatten(params)
    shardings = tree.flatten(param_shardings)
    loaded = load_lib.restore_flat(source, list(names.values()),
                                   shardings={c: shardings[n] for n, c in names.items()})
    merged = dict(target)
    for n, c in names.items():
        merged[n] = loaded[c].astype(target[n].dtype)
    return tree.unflatten(merged), sorted(set(target) - set(names))
