"""T5 encoder-decoder: trains on a mixed mesh, cached greedy and beam decoding equal
recomputation, padding is invisible, BLEU and the data are what they claim."""

import collections
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from bigmodels import decoding, train
from bigmodels.data import seq2seq as s2s_data
from bigmodels.metrics import bleu
from bigmodels.models.t5 import T5
from bigmodels.tasks.seq2seq import special_ids
from helpers import assert_runs_without_tensorflow, experiment_config, read_metrics


_experiment = experiment_config


def _random_params(model, seed=0, scale=3.0, eos_boost=2.0):
    """Large random kernels, so that decoding is not trivial (an untrained tied
    embedding mostly repeats its input token), and a likelier <eos>."""
    params = nn.meta.unbox(model.init(
        jax.random.key(seed), jnp.zeros((1, 4), jnp.int32), jnp.ones((1,), jnp.int32),
        jnp.zeros((1, 4), jnp.int32))["params"])
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    params = jax.tree.unflatten(tree, [
        scale * jax.random.normal(k, x.shape) / np.sqrt(x.shape[0]) if x.ndim >= 2 else x
        for k, x in zip(keys, leaves)])
    embedding = params["token_embed"]["embedding"]
    params["token_embed"]["embedding"] = embedding.at[special_ids(model.vocab_size)[2]].mul(
        eos_boost)
    return params


def _setup(positions="learned", vocab=13, seed=0):
    model = T5(vocab_size=vocab, num_layers=2, num_heads=2, embed_dim=16, mlp_ratio=2,
               context_length=12, positions=positions)
    params = _random_params(model, seed)
    rng = np.random.default_rng(seed)
    lengths = np.array([9, 5, 1, 7])
    inputs = rng.integers(0, vocab - 3, size=(4, 9)).astype(np.int32)
    for row, n in enumerate(lengths):
        inputs[row, n:] = vocab - 3                          # <pad>
    return model, params, jnp.asarray(inputs), jnp.asarray(lengths, jnp.int32)


def _jitted(model):
    """Jitted forward, greedy decoding and sequence scores for a fixed model: the eager
    versions compile every primitive for every shape, which costs these tests minutes."""
    forward = jax.jit(lambda p, x, n, t: model.apply({"params": p}, x, n, t))
    greedy = jax.jit(decoding.greedy, static_argnums=(0, 4, 5, 6, 7))
    scores = jax.jit(decoding.sequence_log_probs, static_argnums=(0, 5, 6))
    return forward, greedy, scores


def test_t5_trains_on_a_mixed_mesh(tmp_path):
    config = _experiment("t5_seq2seq")
    config.update(total_steps=20, log_every=1, eval_every=20, batch_size=16)
    config.optim.update(lr=3e-3, schedule="constant", warmup_steps=0)
    config.mesh.update(data=2, fsdp=2, tensor=2)
    result = train.run(config, str(tmp_path))
    losses = read_metrics(str(tmp_path))
    assert np.mean([losses[s] for s in range(16, 21)]) < losses[1] - 0.5
    assert {"eval/loss", "eval/accuracy", "eval/exact_match", "eval/bleu"} <= set(
        result.eval_metrics)
    assert read_metrics(str(tmp_path), "eval/bleu")[20] == result.eval_metrics["eval/bleu"]
    params = result.state.params
    assert {"encoder", "decoder", "token_embed"} <= set(params)
    kernels = [x for x in jax.tree.leaves(params) if x.ndim >= 2]
    assert any(not x.sharding.is_fully_replicated for x in kernels)


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_cached_decoder_steps_equal_teacher_forcing(positions):
    model, params, inputs, lengths = _setup(positions)
    targets = jax.random.randint(jax.random.key(3), (4, 8), 0, 10)
    forward, _, _ = _jitted(model)
    full = forward(params, inputs, lengths, targets)
    encoded, mask = jax.jit(lambda p: model.apply({"params": p}, inputs, lengths,
                                                  method="encode"))(params)
    cache = decoding.empty_cache(model, 4, inputs.shape[1], 8)

    @jax.jit
    def step(cache, tokens, t, encoded=None, mask=None):
        return model.apply({"params": params, "cache": cache}, tokens, encoded, mask,
                           jnp.full((4, 1), t), decode=True, method="decode",
                           mutable=["cache"])

    pieces = []
    for t in range(8):
        context = (encoded, mask) if t == 0 else ()        # the context is projected once
        logits, variables = step(cache, targets[:, t:t + 1], t, *context)
        cache = variables["cache"]
        pieces.append(logits)
    assert "context_key" in str(jax.tree_util.tree_structure(cache))
    np.testing.assert_allclose(jnp.concatenate(pieces, 1), full, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_cached_greedy_equals_recomputation(positions):
    model, params, inputs, lengths = _setup(positions)
    pad, bos, eos = special_ids(13)
    cached = jax.jit(lambda p: decoding.greedy(model, p, inputs, lengths, 10, bos, eos, pad))(
        params)
    slow = decoding.greedy_uncached(model, params, inputs, lengths, 10, bos, eos, pad)
    np.testing.assert_array_equal(cached, slow)
    cached = np.asarray(cached)
    assert len(np.unique(cached)) >= 3                     # not a degenerate output
    assert (cached == eos).any(axis=1).sum() in (1, 2, 3)  # some rows stop early, some not


def test_beam_size_one_is_greedy():
    model, params, inputs, lengths = _setup(seed=2)
    pad, bos, eos = special_ids(13)
    _, greedy_fn, scores_fn = _jitted(model)
    greedy = greedy_fn(model, params, inputs, lengths, 10, bos, eos, pad)
    beams, scores = jax.jit(lambda p: decoding.beam_search(
        model, p, inputs, lengths, 10, 1, bos, eos, pad))(params)
    np.testing.assert_array_equal(beams[:, 0], greedy)
    np.testing.assert_allclose(scores[:, 0], scores_fn(
        model, params, inputs, lengths, greedy, bos, eos), atol=1e-4)


def test_beam_scores_are_sorted_sequence_log_probs_and_beat_greedy():
    model, params, inputs, lengths = _setup(seed=1)
    pad, bos, eos = special_ids(13)
    beams, scores = jax.jit(lambda p: decoding.beam_search(
        model, p, inputs, lengths, 10, 4, bos, eos, pad))(params)
    assert np.all(np.diff(np.asarray(scores), axis=1) <= 0)          # best first
    _, greedy_fn, scores_fn = _jitted(model)
    for k in range(4):
        np.testing.assert_allclose(scores[:, k], scores_fn(
            model, params, inputs, lengths, beams[:, k], bos, eos), atol=1e-4)
    greedy = greedy_fn(model, params, inputs, lengths, 10, bos, eos, pad)
    greedy_score = scores_fn(model, params, inputs, lengths, greedy, bos, eos)
    assert np.all(scores[:, 0] >= greedy_score - 1e-5)
    assert np.any(scores[:, 0] > greedy_score + 1e-3)      # here beam search finds better


def test_beam_search_finds_the_best_sequence_by_brute_force():
    """With a beam wider than every step's candidates, beam search is exact: its best
    hypothesis is the best of all sequences of at most 3 tokens."""
    vocab, max_len = 4, 3                       # one real token + <pad>, <bos>, <eos>
    model, params, inputs, lengths = _setup(vocab=vocab, seed=4)
    pad, bos, eos = special_ids(vocab)
    beams, scores = jax.jit(lambda p: decoding.beam_search(
        model, p, inputs, lengths, max_len, 36, bos, eos, pad))(params)
    _, _, scores_fn = _jitted(model)
    # Every possible output: up to and including the first <eos>, or max_len tokens.
    outputs = set()
    for tokens in itertools.product(range(vocab), repeat=max_len):
        end = tokens.index(eos) + 1 if eos in tokens else max_len
        outputs.add(tokens[:end] + (pad,) * (max_len - end))
    outputs = np.array(sorted(outputs), np.int32)                       # 40 sequences
    for row in range(inputs.shape[0]):
        n = len(outputs)
        all_scores = scores_fn(
            model, params, jnp.repeat(inputs[row:row + 1], n, 0),
            jnp.repeat(lengths[row:row + 1], n, 0), jnp.asarray(outputs), bos, eos)
        best = int(jnp.argmax(all_scores))
        np.testing.assert_array_equal(beams[row, 0], outputs[best])
        np.testing.assert_allclose(scores[row, 0], all_scores[best], atol=1e-4)
        top = np.sort(np.asarray(all_scores))[::-1][:5]
        np.testing.assert_allclose(scores[row, :5], top, atol=1e-4)


def test_padding_does_not_change_outputs():
    model, params, inputs, lengths = _setup()
    pad, bos, eos = special_ids(13)
    noisy = np.asarray(inputs).copy()
    rng = np.random.default_rng(7)
    for row, n in enumerate(np.asarray(lengths)):
        noisy[row, n:] = rng.integers(0, 13, size=noisy.shape[1] - n)    # junk padding
    targets = jnp.asarray(rng.integers(0, 10, size=(4, 6)), jnp.int32)
    forward, greedy, _ = _jitted(model)
    padded = forward(params, inputs, lengths, targets)
    junk = forward(params, jnp.asarray(noisy), lengths, targets)
    decoded = greedy(model, params, jnp.asarray(noisy), lengths, 8, bos, eos, pad)
    for row, n in enumerate(np.asarray(lengths)):
        alone = forward(params, inputs[row:row + 1, :n], lengths[row:row + 1],
                        targets[row:row + 1])
        np.testing.assert_allclose(padded[row], alone[0], atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(junk[row], alone[0], atol=1e-5, rtol=1e-5)
        alone_decoded = greedy(model, params, inputs[row:row + 1, :n],
                               lengths[row:row + 1], 8, bos, eos, pad)
        np.testing.assert_array_equal(decoded[row], alone_decoded[0])


def _bleu_reference(pairs):
    """Corpus BLEU-4 from Python Counters, written independently of bleu.ngram_stats."""
    matches, totals, hyp_len, ref_len = [0] * 4, [0] * 4, 0, 0
    for hyp, ref in pairs:
        hyp_len, ref_len = hyp_len + len(hyp), ref_len + len(ref)
        for n in range(1, 5):
            h = collections.Counter(tuple(hyp[i:i + n]) for i in range(len(hyp) - n + 1))
            r = collections.Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
            matches[n - 1] += sum(min(c, r[g]) for g, c in h.items())
            totals[n - 1] += max(len(hyp) - n + 1, 0)
    if min(matches) == 0:
        return 0.0
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return 100 * bp * math.exp(sum(math.log(m / t) for m, t in zip(matches, totals)) / 4)


def _stats(pairs, width=12):
    hyp = np.zeros((len(pairs), width), np.int32) - 1
    ref = np.zeros((len(pairs), width), np.int32) - 2
    for i, (h, r) in enumerate(pairs):
        hyp[i, :len(h)], ref[i, :len(r)] = h, r
    return bleu.ngram_stats(jnp.asarray(hyp), jnp.array([len(h) for h, _ in pairs]),
                            jnp.asarray(ref), jnp.array([len(r) for _, r in pairs]))


def test_bleu_against_a_hand_computed_value():
    # hyp 1 2 3 4 5 6 vs ref 1 2 3 4 5 7 8: 5/6 unigrams, 4/5 bigrams, 3/4 trigrams and
    # 2/3 4-grams match; hyp is shorter (6 < 7): brevity penalty exp(1 - 7/6).
    stats = np.asarray(_stats([([1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 7, 8])]))
    np.testing.assert_array_equal(stats, [5, 4, 3, 2, 6, 5, 4, 3, 6, 7])
    expected = 100 * math.exp(1 - 7 / 6) * (5 / 6 * 4 / 5 * 3 / 4 * 2 / 3) ** 0.25
    assert abs(bleu.bleu(stats) - expected) < 1e-9
    # Clipping: "7 7 7 7" against one 7 matches one unigram and no bigram -> BLEU 0.
    clipped = np.asarray(_stats([([7, 7, 7, 7], [7, 1, 2, 3])]))
    assert clipped[0] == 1 and clipped[1] == 0 and bleu.bleu(clipped) == 0.0


def test_bleu_is_corpus_level_and_matches_a_counter_reference():
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(6):
        ref = list(rng.integers(0, 3, size=rng.integers(4, 12)))
        hyp = [t if rng.random() < 0.8 else 3 for t in ref][:rng.integers(3, len(ref) + 1)]
        pairs.append((hyp, ref))
    summed = sum(np.asarray(_stats([p]), np.float64) for p in pairs)  # as eval adds batches
    np.testing.assert_array_equal(summed, np.asarray(_stats(pairs)))
    assert abs(bleu.bleu(summed) - _bleu_reference(pairs)) < 1e-9
    assert bleu.bleu(summed) != np.mean([_bleu_reference([p]) for p in pairs])


def test_number_words_and_heldout_split():
    assert s2s_data.number_words(912307) == \
        "nine hundred and twelve thousand three hundred and seven"
    assert s2s_data.number_words(12005) == "twelve thousand and five"
    for digits in (2, 3, 4, 5):
        longest = max(len(s2s_data.number_words(n)) for n in range(10**digits))
        assert s2s_data._longest_number_words(digits) == longest
    config = _experiment("t5_seq2seq")
    config.batch_size = 8
    data = s2s_data.build(config, "/nonexistent")
    tok = data.tokenizer
    pad, bos, eos = special_ids(tok.vocab_size)
    assert (tok.id("<pad>"), tok.id("<bos>"), tok.id("<eos>")) == (pad, bos, eos)

    def sources(batch):
        return [tok.decode(row[:n - 1]) for row, n in zip(batch["inputs"],
                                                          batch["input_lengths"])]

    train_sources = [s for i in range(50) for s in sources(data.train[i])]
    eval_sources = [s for b in data.eval for s in sources(b)]
    fraction = config.data.val_fraction
    assert not any(s2s_data.is_heldout(s, fraction) for s in train_sources)
    assert all(s2s_data.is_heldout(s, fraction) for s in eval_sources)
    assert not set(train_sources) & set(eval_sources)
    batch = data.train[3]
    for row, (source, n) in enumerate(zip(sources(batch), batch["target_lengths"])):
        assert s2s_data.number_words(int(tok.decode(batch["targets"][row, :n - 1]))) == source
        assert batch["targets"][row, n - 1] == eos and (batch["targets"][row, n:] == pad).all()
    # A pure function of the index: a second, independent build gives the same batch 3,
    # and batch 4 is another.
    again = s2s_data.build(config, "/nonexistent")
    np.testing.assert_array_equal(again.train[3]["inputs"], batch["inputs"])
    np.testing.assert_array_equal(again.train[3]["targets"], batch["targets"])
    assert not np.array_equal(again.train[4]["inputs"], batch["inputs"])
    half = s2s_data.build(config, "/nonexistent", process_index=1, process_count=2)
    np.testing.assert_array_equal(half.train[3]["inputs"], batch["inputs"][4:])


def test_translation_on_tfds_mock_data_without_tensorflow(tmp_path):
    import tensorflow_datasets as tfds
    # The point of this test: reading the TFDS dataset never imports TensorFlow.
    assert_runs_without_tensorflow(f"""
import tensorflow_datasets as tfds
from bigmodels import data, train
from helpers import experiment_config
config = experiment_config("t5_translate")
config.data.mock_examples = 0
with tfds.testing.mock_data(num_examples=24):
    built = data.build(config, {str(tmp_path / "no_tf")!r})
    built.train[0], built.eval[0]
""")
    config = _experiment("t5_translate")
    config.data.mock_examples = 0                    # the real tfds.data_source path, mocked
    config.update(total_steps=4, eval_every=4, ckpt_every=4)
    with tfds.testing.mock_data(num_examples=24):
        result = train.run(config, str(tmp_path))
    assert {"eval/loss", "eval/exact_match", "eval/bleu"} <= set(result.eval_metrics)
    batch = result.data.train[0]
    assert batch["inputs"].shape == (8, 24) and batch["targets"].shape == (8, 24)
    text = result.data.tokenizer.decode(batch["targets"][0])
    assert text and set(text) <= set("abcdefghij ")          # mock text, decoded from bytes


def test_reverse_transduction_and_too_short_lengths_are_refused():
    from bigmodels.errors import BadInput
    config = _experiment("t5_seq2seq")
    config.data.update(transduction="reverse", size=6, source_len=7, target_len=7)
    data = s2s_data.build(config, "/nonexistent")
    batch, tok = data.train[0], data.tokenizer
    for row in range(config.batch_size):
        n, m = batch["input_lengths"][row], batch["target_lengths"][row]
        assert tok.decode(batch["inputs"][row, :n - 1])[::-1] == \
            tok.decode(batch["targets"][row, :m - 1])
    config.data.source_len = 6                    # 6 letters + <eos> do not fit
    with pytest.raises(BadInput, match="data.source_len=6 is too short"):
        s2s_data.build(config, "/nonexistent")
