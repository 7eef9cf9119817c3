"""Batched generation of ragged prompts equals one-at-a-time generation, token for token
(bigmodels.generate.generate_batch / generate_text_batch)."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bigmodels import generate, models
from bigmodels.data import tokenizers
from bigmodels.errors import BadInput
from bigmodels.models.gpt import gpt_config
from bigmodels.models.rnn import rnn_config

VOCAB, CTX = 40, 32
PROMPTS = [[1, 2, 3], [5, 6, 7, 8, 9, 10, 11], [4], [7, 30, 7, 12, 33]]
MODELS = {
    "learned": gpt_config(vocab_size=VOCAB, num_layers=2, num_heads=2, embed_dim=32,
                          context_length=CTX),
    "rotary_gqa": gpt_config(vocab_size=VOCAB, num_layers=2, num_heads=4, num_kv_heads=2,
                             embed_dim=32, context_length=CTX, positions="rotary",
                             norm="rmsnorm", use_bias=False, mlp_activation="swiglu",
                             scan_layers=True),
    "lstm": rnn_config(vocab_size=VOCAB, embed_dim=16, hidden_dim=32, num_layers=2,
                       context_length=CTX),
}


def _build(name):
    model = models.build(MODELS[name])
    params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))["params"]
    # Weights large enough that greedy decoding does not just repeat a token.
    return model, jax.tree.map(lambda x: x * 6, params)


@pytest.fixture(scope="module", params=list(MODELS))
def lm(request):
    return _build(request.param)


@pytest.fixture(scope="module")
def gpt():
    return _build("learned")


def _reference(model, params, prompt, new_tokens, seed, row, **sampling):
    """Row `row` of a batch, alone and without a cache: every token recomputes the whole
    sequence (right-padded to the context, which a causal model does not see), and is
    drawn with fold_in(fold_in(key(seed), row), step)."""
    forward = jax.jit(lambda t: model.apply({"params": params}, t))
    key = jax.random.fold_in(jax.random.key(seed), row)
    tokens = list(prompt)
    for step in range(new_tokens):
        window = np.zeros((1, CTX), np.int32)
        window[0, :len(tokens)] = tokens
        logits = forward(window)[:, len(tokens) - 1]
        tokens.append(int(generate.sample_logits(logits, jax.random.fold_in(key, step),
                                                 **sampling)[0]))
    return np.array(tokens[len(prompt):], np.int32)


@pytest.mark.parametrize("sampling", [dict(temperature=0.0),
                                      dict(temperature=1.0, top_k=8, top_p=0.9)])
def test_ragged_batch_equals_one_at_a_time(lm, sampling):
    model, params = lm
    batched = generate.generate_batch(model, params, PROMPTS, 12, seed=5, **sampling)
    for row, prompt in enumerate(PROMPTS):
        assert batched[row].dtype == np.int32
        np.testing.assert_array_equal(
            batched[row], _reference(model, params, prompt, 12, 5, row, **sampling))
    if not sampling["temperature"]:
        assert len(np.unique(np.concatenate(batched))) > 4     # not a degenerate output
        alone = generate.generate_batch(model, params, PROMPTS[1:2], 12)[0]
        np.testing.assert_array_equal(alone, batched[1])    # another bucket, the same tokens


def test_a_rows_sample_does_not_depend_on_the_other_rows(gpt):
    model, params = gpt
    kwargs = dict(seed=2, temperature=1.0)
    full = generate.generate_batch(model, params, PROMPTS, 10, **kwargs)
    other = generate.generate_batch(model, params, PROMPTS[:2] + [[9, 9, 9, 9, 9, 9]], 10,
                                    **kwargs)
    np.testing.assert_array_equal(full[0], other[0])
    np.testing.assert_array_equal(full[1], other[1])
    assert not np.array_equal(full[0], full[2][:len(full[0])])   # rows draw apart


def test_each_row_stops_at_eos(gpt):
    model, params = gpt
    free = generate.generate_batch(model, params, PROMPTS, 12)
    eos = int(free[0][3])
    stopped = generate.generate_batch(model, params, PROMPTS, 12, eos_id=eos)
    for f, s in zip(free, stopped):
        cut = list(f).index(eos) if eos in f else len(f)
        np.testing.assert_array_equal(s, f[:cut])
    assert len(stopped[0]) == list(free[0]).index(eos) <= 3


def test_the_loop_ends_when_every_row_is_done(gpt):
    model, params = gpt
    first = generate.generate_batch(model, params, PROMPTS[1:2], 12)[0][0]
    rows = [np.asarray(p, np.int32) for p in PROMPTS[1:2]]
    _, steps = generate._run(model, params, rows, 12, 0, (0.0, 0, 1.0), int(first))
    assert steps == 1


def test_stop_strings_end_each_row(gpt, monkeypatch):
    monkeypatch.setattr(generate, "STOP_CHECK_EVERY", 4)     # several host-side checks
    model, params = gpt
    tokenizer = tokenizers.CharTokenizer("".join(chr(ord("A") + i) for i in range(VOCAB)))
    prompts = [tokenizer.decode(p) for p in PROMPTS]
    free = generate.generate_text_batch(model, params, tokenizer, prompts, 20)
    assert [len(t) for t in free] == [20] * len(prompts)
    stop = free[1][9:11]
    stopped = generate.generate_text_batch(model, params, tokenizer, prompts, 20, stop=[stop])
    assert stopped == [t[:t.find(stop)] if stop in t else t for t in free]
    assert len(stopped[1]) <= 9


def test_tokenizers_end_of_text_ids():
    assert generate.end_of_text_id(tokenizers.ByteTokenizer()) is None
    with_eos = tokenizers.WithSpecials(tokenizers.ByteTokenizer(), ("<pad>", "<eos>"))
    assert generate.end_of_text_id(with_eos) == 257


def test_a_second_batch_in_the_same_bucket_compiles_nothing(gpt, caplog):
    model, params = gpt
    with jax.log_compiles(True), caplog.at_level(logging.WARNING):
        # 5 rows (bucket 8), prompts of up to 5 tokens (bucket 8), 9 tokens (bucket 16):
        # a bucket no other test uses.
        generate.generate_batch(model, params, [[1, 2, 3], [4, 5], [6, 7, 8, 9, 10], [1],
                                                [2, 3]], 9)
        first = [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]
        caplog.clear()
        out = generate.generate_batch(model, params, [[3], [2, 2, 2, 2, 2, 2, 2], [8, 1],
                                                      [5, 5, 5, 5], [1], [2], [3]], 14)
        second = [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]
    assert any("_prefill" in m for m in first) and any("_decode" in m for m in first)
    assert second == []
    assert [len(t) for t in out] == [14] * 7


@pytest.mark.parametrize("prompts, max_new_tokens, match", [
    ([[1, 2], []], 4, "prompt 1: needs a non-empty"),
    ([[1] * 30], 4, "prompt 0: 30 tokens \\+ max_new_tokens=4 exceed .*context_length=32"),
    ([[1, VOCAB]], 4, "prompt 0: token ids must lie in"),
    ([[1, 2]], -1, "max_new_tokens"),
])
def test_bad_input_is_refused_in_one_line(gpt, prompts, max_new_tokens, match):
    model, params = gpt
    with pytest.raises(BadInput, match=match) as e:
        generate.generate_batch(model, params, prompts, max_new_tokens)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("sampling, match", [(dict(temperature=1.0, top_k=-1), "top_k: "),
                                             (dict(temperature=1.0, top_p=0.0), "top_p: ")])
def test_bad_sampling_settings_are_refused(gpt, sampling, match):
    model, params = gpt
    with pytest.raises(BadInput, match=match):
        generate.generate_batch(model, params, [[1, 2]], 4, **sampling)


def test_bad_text_input_is_refused(gpt):
    model, params = gpt
    tokenizer = tokenizers.CharTokenizer("ABCD")
    with pytest.raises(BadInput, match="prompt 1: needs a non-empty"):
        generate.generate_text_batch(model, params, tokenizer, ["AB", ""], 4)
    with pytest.raises(BadInput, match="stop: "):
        generate.generate_text_batch(model, params, tokenizer, ["AB"], 4, stop=[""])


def test_sample_text_draws_what_the_sliding_window_draws(gpt):
    model, params = gpt
    tokenizer = tokenizers.CharTokenizer("".join(chr(ord("A") + i) for i in range(VOCAB)))
    ids = tokenizer.encode("ABC")
    fast = generate.sample_text(model, params, tokenizer, "ABC", 12, seed=4, temperature=0.8)
    slow = generate.generate(model, params, ids[None], 12, 4, temperature=0.8)[0]
    assert fast == tokenizer.decode(slow)
    # Beyond the context, the sliding window takes over.
    assert len(generate.sample_text(model, params, tokenizer, "A" * 31, 2)) == 33
