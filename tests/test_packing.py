"""data.packing=segmented: documents packed into one row attend only within themselves,
so a packed row's logits equal each document's run alone."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bigmodels import models
from bigmodels.data import windows
from bigmodels.errors import BadInput
from bigmodels.models.gpt import gpt_config

EOS = 0


def test_segments_and_positions_restart_at_each_eos():
    tokens = np.array([[5, 6, EOS, 7, 8, 9, EOS, 4],
                       [EOS, 1, 2, 3, 4, 5, 6, 7]])
    out = windows.segments_of(tokens, EOS)
    np.testing.assert_array_equal(out["segments"], [[0, 0, 1, 1, 1, 1, 2, 2],
                                                    [1, 1, 1, 1, 1, 1, 1, 1]])
    np.testing.assert_array_equal(out["positions"], [[0, 1, 0, 1, 2, 3, 0, 1],
                                                     [0, 1, 2, 3, 4, 5, 6, 7]])


def _model(**overrides):
    config = gpt_config(vocab_size=50, num_layers=2, num_heads=2, embed_dim=16,
                        context_length=32, attention_impl="xla", **overrides)
    model = models.build(config)
    params = model.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))["params"]
    return model, params


@pytest.mark.parametrize("overrides", [dict(positions="learned"),
                                       dict(positions="rotary", norm="rmsnorm"),
                                       dict(positions="rotary", scan_layers=True, remat="full"),
                                       dict(positions="learned", remat="dots")])
def test_packed_row_logits_equal_each_document_alone(overrides):
    model, params = _model(**overrides)
    rng = np.random.default_rng(0)
    docs = [np.concatenate([[EOS], rng.integers(1, 50, n)]) for n in (6, 11, 3, 9)]
    row = np.concatenate(docs)[None]                                # 33 tokens
    row = row[:, :32]                                               # the last one cut
    packed = windows.segments_of(row, EOS)
    logits = model.apply({"params": params}, jnp.asarray(row),
                         positions_BxT=jnp.asarray(packed["positions"]),
                         segments_BxT=jnp.asarray(packed["segments"]))
    start = 0
    for doc in docs:
        doc = doc[:32 - start]
        alone = model.apply({"params": params}, jnp.asarray(doc)[None])
        np.testing.assert_allclose(logits[0, start:start + len(doc)], alone[0],
                                   rtol=2e-5, atol=2e-5)
        start += len(doc)
    # Without segments the later documents see the earlier ones: the test can fail.
    plain = model.apply({"params": params}, jnp.asarray(row),
                        positions_BxT=jnp.asarray(packed["positions"]))
    assert not np.allclose(plain[0, 7:], logits[0, 7:], atol=1e-3)


def test_changing_one_document_changes_no_other():
    model, params = _model()
    rows = np.array([[EOS, 3, 4, 5, EOS, 6, 7, 8],
                     [EOS, 9, 1, 2, EOS, 6, 7, 8]])     # the first documents differ
    packed = windows.segments_of(rows, EOS)
    logits = model.apply({"params": params}, jnp.asarray(rows),
                         positions_BxT=packed["positions"], segments_BxT=packed["segments"])
    np.testing.assert_array_equal(logits[0, 4:], logits[1, 4:])
    assert not np.allclose(logits[0, :4], logits[1, :4])


def test_segmented_packing_needs_an_eos():
    with pytest.raises(BadInput, match="data.packing=segmented"):
        windows.window_batches(np.arange(100) % 7, 9, 4, 0, packing="segmented")
    with pytest.raises(BadInput, match="data.packing"):
        windows.window_batches(np.arange(100) % 7, 9, 4, 0, packing="dense", eos_id=0)
