"""init_from is fine-tuning, not resume: params only, fresh optimizer, step 0, and
every key accounted for."""

import jax
import numpy as np
import pytest

from bigmodels import checkpoint, models, optim, sharding, tasks, train
from bigmodels.checkpoint import tree
from bigmodels.errors import BadInput
from bigmodels.train import state as state_lib
from helpers import read_metrics, tiny_lm_config


def _config(corpus, **top):
    config = tiny_lm_config(corpus, **{"total_steps": 4, "ckpt_every": 4, **top})
    config.optim.update(schedule="warmup_cosine", warmup_steps=3)
    return config


@pytest.fixture(scope="module")
def pretrained(corpus, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("pretrained"))
    return workdir, train.run(_config(corpus), workdir)


def _fresh_params(result, **model_overrides):
    """Freshly initialised params (and shardings) of the pretrained model, modified."""
    config = result.config.copy_and_resolve_references()
    config.model.update(model_overrides)
    task = tasks.build(config, models.build(config.model))
    tx, _ = optim.build(config.optim, config.total_steps)
    mesh = sharding.make_mesh(config.mesh, jax.devices())
    _, shardings = state_lib.state_shardings(task, tx, mesh, jax.random.key(7),
                                             result.data.train[0])
    state = state_lib.init_state(task, tx, jax.random.key(7), result.data.train[0], shardings)
    return state.params, shardings.params


def _equal(a, b):
    return np.array_equal(np.asarray(a), np.asarray(b))


def test_fine_tune_starts_fresh_from_the_pretrained_params(pretrained, corpus, tmp_path):
    source, result = pretrained
    params, shardings = _fresh_params(result)
    loaded, fresh = checkpoint.init_params(source, params, shardings)
    assert fresh == []
    for name, value in tree.flatten(result.state.params).items():
        assert _equal(tree.flatten(loaded)[name], value), name

    tuned = train.run(_config(corpus, total_steps=2, init_from=source), str(tmp_path))
    assert int(tuned.state.step) == 2                          # step 0, not 4
    assert read_metrics(str(tmp_path), "train/lr") == {        # the schedule from its start
        s: v for s, v in read_metrics(source, "train/lr").items() if s <= 2}
    first = read_metrics(str(tmp_path))[1]
    assert first < read_metrics(source)[1] - 0.1               # it did start pretrained


def test_resume_wins_over_init_from(pretrained, corpus, tmp_path, capsys):
    source, _ = pretrained
    config = _config(corpus, total_steps=2, init_from=source)
    train.run(config, str(tmp_path))
    config.total_steps = 3
    train.run(config, str(tmp_path))
    assert "resumed from step 2" in capsys.readouterr().out


def test_missing_and_unexpected_keys_are_listed(pretrained):
    source, result = pretrained
    deeper, shardings = _fresh_params(result, num_layers=3)
    with pytest.raises(BadInput, match=r"missing from init_from checkpoint: block_2/"):
        checkpoint.init_params(source, deeper, shardings)
    # A new layer (or head) named in init_from_skip keeps its fresh values.
    loaded, fresh = checkpoint.init_params(source, deeper, shardings, skip=r"^block_2/")
    assert fresh and all(n.startswith("block_2/") for n in fresh)
    flat, init = tree.flatten(loaded), tree.flatten(deeper)
    assert all(_equal(flat[n], init[n]) for n in fresh)
    assert _equal(flat["block_0/attn/qkv/kernel"],
                  result.state.params["block_0"]["attn"]["qkv"]["kernel"])

    shallower, shardings = _fresh_params(result, num_layers=1)
    with pytest.raises(BadInput, match=r"not in model: block_1/"):
        checkpoint.init_params(source, shallower, shardings)
    wider, shardings = _fresh_params(result, embed_dim=64)
    with pytest.raises(BadInput, match=r"shape mismatch: .*\(32,\) in init_from checkpoint "
                                       r"vs \(64,\) in model"):
        checkpoint.init_params(source, wider, shardings)


def test_renames_map_checkpoint_names_onto_the_model(pretrained):
    source, result = pretrained
    shallower, shardings = _fresh_params(result, num_layers=1)
    loaded, _ = checkpoint.init_params(source, shallower, shardings,
                                       skip=r"^unused/",
                                       rename=r"^block_0/=>unused/,^block_1/=>block_0/")
    assert _equal(loaded["block_0"]["mlp"]["wi"]["kernel"],
                  result.state.params["block_1"]["mlp"]["wi"]["kernel"])
    with pytest.raises(BadInput, match="both map to"):
        checkpoint.init_params(source, shallower, shardings, rename=r"^block_\d/=>block_0/")


def test_init_from_nothing_is_refused(pretrained, tmp_path):
    _, result = pretrained
    params, shardings = _fresh_params(result)
    with pytest.raises(BadInput, match="init_from: .*no checkpoint"):
        checkpoint.init_params(str(tmp_path / "nowhere"), params, shardings)
