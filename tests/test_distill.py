"""Knowledge distillation (bigmodels/regimes/distill.py): the loss against a hand
computation, alpha=0 is the plain loss, tiny classifier and GPT students trained with a
teacher (which is sharded like them, re-read on resume and never saved), and teachers
that do not fit refused in one line."""

import json
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bigmodels import checkpoint, models, train
from bigmodels.checkpoint import tree
from bigmodels.errors import BadInput
from bigmodels.models.gpt import gpt_config
from bigmodels.models.mlp import mlp_config
from bigmodels.regimes.distill import DistillSpec, distill_loss_fn, distill_term
from bigmodels.tasks.causal_lm import CausalLM
from bigmodels.tasks.classify import Classify
from helpers import experiment_config, read_metrics, tiny_lm_config


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _hand_term(student, teacher, weights, t):
    """T^2 * the weighted mean of KL(p || q), in float64 numpy."""
    p = _softmax(np.asarray(teacher, np.float64) / t)
    q = _softmax(np.asarray(student, np.float64) / t)
    kl = (p * np.log(p / q)).sum(-1)
    return t * t * (kl * weights).sum() / weights.sum()


def test_the_distillation_term_is_the_hand_computed_one():
    rng = np.random.RandomState(0)
    student, teacher = (rng.randn(2, 6, 7).astype(np.float32) * 3 for _ in range(2))
    weights = np.array([1, 0.5, 0, 2, 1, 1], np.float32)
    got = distill_term(jnp.asarray(student[0]), jnp.asarray(teacher[0]),
                       jnp.asarray(weights), 2.5)
    np.testing.assert_allclose(got, _hand_term(student[0], teacher[0], weights, 2.5),
                               rtol=1e-5)
    # Token logits (B x T x V): every position weighs 1.
    got = distill_term(jnp.asarray(student), jnp.asarray(teacher), jnp.ones((2, 6)), 1.0)
    np.testing.assert_allclose(got, _hand_term(student, teacher, np.ones((2, 6)), 1.0),
                               rtol=1e-5)
    same = distill_term(jnp.asarray(teacher), jnp.asarray(teacher), jnp.ones((2, 6)), 4.0)
    assert abs(float(same)) < 1e-5


def _classify_case():
    """A student and a bigger teacher MLP, and a batch with a zero-weight row."""
    rng = np.random.RandomState(1)
    batch = {"features": jnp.asarray(rng.randn(6, 5), jnp.float32),
             "label": jnp.asarray(rng.randint(0, 4, 6), jnp.int32),
             "weight": jnp.asarray([1, 1, 0, 1, 0.5, 1], jnp.float32)}
    task = Classify(models.build(mlp_config(num_classes=4, hidden=(8,), dropout=0.1)))
    teacher = Classify(models.build(mlp_config(num_classes=4, hidden=(16,))))
    return task, teacher, batch, batch["weight"]


def _lm_case():
    rng = np.random.RandomState(2)
    batch = {"tokens": jnp.asarray(rng.randint(0, 11, (3, 9)), jnp.int32)}
    config = gpt_config(vocab_size=11, num_layers=1, num_heads=2, embed_dim=8,
                        context_length=8, dropout=0.1)
    task = CausalLM(models.build(config))
    config.update(num_layers=2, embed_dim=16)
    teacher = CausalLM(models.build(config))
    return task, teacher, batch, jnp.ones((3, 8))


@pytest.mark.parametrize("case", [_classify_case, _lm_case], ids=["classify", "causal_lm"])
def test_the_loss_mixes_label_loss_and_distillation_and_alpha_0_is_the_plain_loss(case):
    task, teacher_task, batch, weights = case()
    params = task.init(jax.random.key(0), batch)["params"]
    teacher = teacher_task.init(jax.random.key(1), batch)
    rng = jax.random.key(3)         # dropout: the same masks in every loss below

    plain = jax.jit(jax.value_and_grad(lambda p: task.loss(p, {}, batch, rng)[0]))
    loss, grads = plain(params)
    student_logits = task.logits(params, {}, batch, rng, train=True)[0]
    teacher_logits = teacher_task.logits(teacher["params"], {}, batch, None, False)[0]
    for alpha in (0.0, 0.3):
        fn = distill_loss_fn(task, teacher_task, teacher, DistillSpec("t", 2.0, alpha))
        (total, (metrics, _)), got_grads = jax.jit(jax.value_and_grad(fn, has_aux=True))(
            params, {}, batch, rng)
        term = _hand_term(student_logits, teacher_logits, np.asarray(weights), 2.0)
        assert float(metrics["label_loss"]) == float(loss)
        np.testing.assert_allclose(metrics["distill_loss"], term, rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(total, (1 - alpha) * loss + alpha * term, rtol=1e-5,
                                   atol=1e-7)
        if alpha == 0:
            assert float(total) == float(loss)
            for name, g in tree.flatten(grads).items():
                np.testing.assert_allclose(tree.flatten(got_grads)[name], g, rtol=1e-6,
                                           atol=1e-9, err_msg=name)
        else:
            assert any(not np.allclose(a, b) for a, b in
                       zip(jax.tree.leaves(got_grads), jax.tree.leaves(grads)))


# --- tiny runs through the trainer ------------------------------------------------------


def _digits(tmp_path_factory, name, **data):
    config = experiment_config("digits_mlp", total_steps=3)
    config.model.hidden = (32,)
    config.data.update(data)
    workdir = str(tmp_path_factory.mktemp(name))
    train.run(config, workdir)
    return workdir


@pytest.fixture(scope="module")
def digits_teacher(tmp_path_factory):
    return _digits(tmp_path_factory, "digits_teacher")


@pytest.fixture(scope="module")
def lm_teacher(tmp_path_factory, corpus):
    config = tiny_lm_config(corpus, total_steps=3)
    workdir = str(tmp_path_factory.mktemp("lm_teacher"))
    train.run(config, workdir)
    return workdir


def _assert_holds_the_teacher(state, teacher_dir):
    held = tree.flatten(jax.device_get(state.extra["distill"]))
    saved = tree.flatten(checkpoint.load(teacher_dir, prefix=""))
    assert set(held) == {n for n in saved if n.startswith("params/")}
    for name, x in held.items():
        np.testing.assert_array_equal(x, saved[name], err_msg=name)


def test_a_digits_student_trains_with_its_teacher_and_resumes(digits_teacher, tmp_path):
    config = experiment_config("digits_mlp", total_steps=4)
    config.model.hidden = (8,)
    config.distill.update(teacher=digits_teacher, alpha=0.7, temperature=3.0)
    workdir = str(tmp_path / "student")
    result = train.run(config, workdir)
    _assert_holds_the_teacher(result.state, digits_teacher)
    label, term = (read_metrics(workdir, f"train/{k}") for k in ("label_loss", "distill_loss"))
    loss = read_metrics(workdir)
    assert sorted(label) == sorted(term) == sorted(loss) == [2, 4]
    for step in loss:
        assert term[step] > 0
        np.testing.assert_allclose(loss[step], 0.3 * label[step] + 0.7 * term[step],
                                   rtol=1e-5)
    # The teacher is no part of a checkpoint: it is re-read on resume.
    assert not [n for n in checkpoint.metadata(workdir) if n.startswith("extra/")]
    config.total_steps = 6
    resumed = train.run(config, workdir)
    _assert_holds_the_teacher(resumed.state, digits_teacher)
    assert sorted(read_metrics(workdir, "train/distill_loss")) == [2, 4, 6]
    # The student's export is the student alone, read without the teacher's data.
    from bigmodels import export
    out = export.export(workdir, str(tmp_path / "export"))
    for name, x in tree.flatten(checkpoint.load(out)).items():
        np.testing.assert_array_equal(x, tree.flatten(jax.device_get(
            resumed.state.params))[name])


def test_a_cnn_student_learns_from_a_resnet_with_its_batchnorm_statistics(tmp_path):
    teacher_dir = str(tmp_path / "resnet")
    train.run(experiment_config("digits_resnet", total_steps=2), teacher_dir)
    config = experiment_config("digits_cnn", total_steps=2)
    config.distill.teacher = teacher_dir
    result = train.run(config, str(tmp_path / "cnn"))
    held = tree.flatten(jax.device_get(result.state.extra["distill"]))
    saved = tree.flatten(checkpoint.load(teacher_dir, prefix="model_state"))
    assert saved and {n for n in held if not n.startswith("params/")} == set(saved)
    for name, x in saved.items():
        np.testing.assert_array_equal(held[name], x, err_msg=name)
    assert read_metrics(str(tmp_path / "cnn"), "train/distill_loss")[2] > 0


def test_a_gpt_student_with_half_the_layers_trains_with_its_sharded_teacher(
        corpus, lm_teacher, tmp_path):
    config = tiny_lm_config(corpus, total_steps=2, batch_size=16, grad_accum_steps=2)
    config.model.num_layers = 1
    config.mesh.update(data=4, fsdp=2)
    config.distill.teacher = lm_teacher
    workdir = str(tmp_path / "student")
    result = train.run(config, workdir)
    _assert_holds_the_teacher(result.state, lm_teacher)
    assert read_metrics(workdir, "train/distill_loss")[2] > 0
    # Each teacher weight shards as the student's weight of the same name and shape.
    teacher = tree.flatten(result.state.extra["distill"]["params"])
    student = tree.flatten(result.state.params)
    shared = [n for n in teacher if n in student and teacher[n].shape == student[n].shape]
    assert len(shared) > 4
    for name in shared:
        assert teacher[name].sharding.is_equivalent_to(student[name].sharding,
                                                       teacher[name].ndim), name
    assert any(not x.sharding.is_fully_replicated for x in teacher.values())


# --- refusals -----------------------------------------------------------------------------


def _refused(config, workdir, message):
    with pytest.raises(BadInput, match=message) as e:
        train.run(config, str(workdir))
    assert "\n" not in str(e.value)
    assert not workdir.exists() or not os.listdir(workdir)


def test_a_teacher_with_another_vocabulary_is_refused(corpus, lm_teacher, tmp_path):
    config = tiny_lm_config(corpus, total_steps=2)
    config.data.tokenizer = "byte"
    config.distill.teacher = lm_teacher
    _refused(config, tmp_path / "size", r"another vocabulary \(model.vocab_size=\d+; the "
                                        r"student's is 256\)")
    # The same number of tokens, other characters behind the ids.
    other = tmp_path / "teacher"
    shutil.copytree(lm_teacher, other)
    with open(other / "tokenizer.json") as f:
        spec = json.load(f)
    spec["chars"] = spec["chars"][::-1]
    with open(other / "tokenizer.json", "w") as f:
        json.dump(spec, f)
    config = tiny_lm_config(corpus, total_steps=2)
    config.distill.teacher = str(other)
    _refused(config, tmp_path / "chars", r"another vocabulary \(its tokenizer.json is not the "
                                         r"student's tokenizer\)")


def test_a_teacher_with_another_label_set_is_refused(digits_teacher, tmp_path_factory,
                                                     tmp_path):
    config = experiment_config("digits_mlp", total_steps=2)
    config.data.classes = "0,1,2"
    config.distill.teacher = digits_teacher
    _refused(config, tmp_path / "count",
             r"another label set \(model.num_classes=10; the student's is 3\)")
    # As many classes, other ones.
    config.distill.teacher = _digits(tmp_path_factory, "three", classes="3,4,5")
    _refused(config, tmp_path / "ids", r"another label set \(data.classes='3,4,5'; the "
                                       r"student's is '0,1,2'\)")
    # Other names in the teacher's classes.json.
    other = tmp_path / "named"
    shutil.copytree(digits_teacher, other)
    (other / "classes.json").write_text(json.dumps([f"c{i}" for i in range(10)]))
    config = experiment_config("digits_mlp", total_steps=2)
    config.distill.teacher = str(other)
    _refused(config, tmp_path / "names", r"another label set \(its classes.json "
                                         r"\['c0', 'c1', 'c2', 'c3', \.\.\.\]")


@pytest.mark.parametrize("change,message", [
    (dict(teacher="{empty}"), r"distill.teacher: checkpoint: no checkpoint at"),
    (dict(temperature=0.0), r"distill.temperature must be > 0, got 0.0"),
    (dict(alpha=1.5), r"distill.alpha must be in \[0, 1\], got 1.5"),
    (dict(lora=True), r"distill: LoRA \(lora.rank > 0\) and distillation both replace the "
                      r"update rule"),
])
def test_bad_distill_config_is_refused_in_one_line(digits_teacher, tmp_path, change,
                                                   message):
    config = experiment_config("digits_mlp", total_steps=2)
    config.distill.teacher = digits_teacher
    if change.pop("lora", False):
        config.lora.rank = 2
    empty = tmp_path / "empty"
    empty.mkdir()
    config.distill.update({k: str(empty) if v == "{empty}" else v for k, v in change.items()})
    _refused(config, tmp_path / "run", message)


def test_a_teacher_whose_checkpoint_does_not_fit_its_config_is_refused(digits_teacher,
                                                                        tmp_path):
    other = tmp_path / "teacher"
    shutil.copytree(digits_teacher, other)
    saved = json.loads((other / "config.json").read_text())
    saved["model"]["hidden"] = [48]
    (other / "config.json").write_text(json.dumps(saved))
    config = experiment_config("digits_mlp", total_steps=2)
    config.distill.teacher = str(other)
    _refused(config, tmp_path / "run", r"distill.teacher .*; params/dense_0/kernel "
                                       r"\(64, 32\) in its checkpoint vs \(64, 48\) in "
                                       r"its config \(mlp\)")


def test_a_task_without_logits_is_refused(digits_teacher, tmp_path):
    config = experiment_config("tabular_regression")
    config.distill.teacher = digits_teacher
    _refused(config, tmp_path / "run", r"distill: task 'regress' has no logits to "
                                       r"distill; distill.teacher works with tasks "
                                       r"classify and causal_lm")


def test_a_teacher_that_is_no_run_exits_2_through_the_cli(tmp_path):
    from conftest import ROOT
    workdir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "bigmodels.main", "--config=experiments/digits_mlp.py:tiny",
         f"--config.distill.teacher={tmp_path / 'nowhere'}", f"--workdir={workdir}"],
        cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True,
        text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "distill.teacher: checkpoint: no checkpoint at" in proc.stderr
    assert not workdir.exists() or not os.listdir(workdir)
