"""Knowledge distillation: a student learns from a trained teacher's softened outputs.

    --config.distill.teacher=runs/teacher [--config.distill.temperature=2.0
     --config.distill.alpha=0.5]

The update rule minimises

    (1 - alpha) * label loss + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))

with the KL averaged over the same rows (examples, or next-token positions) and weights
as the task's label loss, so alpha=0 is the plain loss. It works for every task that
declares `distillable` (classify, causal_lm): their loss is a function of logits.

The teacher is a run, one of its step directories or an export of the same task, with
the same vocabulary (tokenizer) and label set as the student. Its model is built from
its own config.json; its variables (params, and BatchNorm statistics of a run) are held
in `state.extra["distill"]`, sharded by their own logical axes under the student's mesh
rules, read after init and after every restore, never saved in the student's
checkpoints and never updated. Its forward pass (eval mode: no dropout) runs inside the
student's jitted step. train/label_loss and train/distill_loss (the T^2 KL term) are
logged beside train/loss. Its logical axes come from initialising it abstractly on the
inputs the student's init saw (`InputProbe`), so no data is read for them. LoRA and
local SGD, which replace the update rule too, are refused with it.
"""

import dataclasses
import json
import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn

from bigmodels import checkpoint, models, sharding
from bigmodels.checkpoint import tree
from bigmodels.checkpoint.load import restore_flat
from bigmodels.errors import BadInput
from bigmodels.names import CLASSES_FILE, TOKENIZER_FILE
from bigmodels.regimes.base import Regime, StepContext, Update, loss_and_grads
from bigmodels.tasks.base import vocabulary_digest
from bigmodels.tasks.causal_lm import check_packing

PARAMS = "params"
MODEL_STATE = "model_state/"        # where a run's checkpoint keeps BatchNorm statistics


class DistillSpec(NamedTuple):
    teacher: str
    temperature: float
    alpha: float


def distill_term(student_logits, teacher_logits, weights, temperature: float):
    """T^2 * the `weights`-weighted mean over rows (all axes but the last) of
    KL(softmax(teacher / T) || softmax(student / T))."""
    t = temperature
    log_p_teacher = jax.nn.log_softmax(teacher_logits.astype(jnp.float32) / t, axis=-1)
    log_p_student = jax.nn.log_softmax(student_logits.astype(jnp.float32) / t, axis=-1)
    kl = jnp.sum(jnp.exp(log_p_teacher) * (log_p_teacher - log_p_student), axis=-1)
    # Normalised as the label losses are (tasks/classify.py), so both average alike.
    mean_kl = (kl * weights).sum() / jnp.maximum(weights.sum(), 1e-12)
    # Hinton et al. (2015): the soft targets' gradients shrink as 1/T^2, so T^2 keeps
    # their scale comparable with the label loss's whatever T is.
    return t * t * mean_kl


def distill_loss_fn(task, teacher_task, teacher, spec: DistillSpec):
    """loss(params, model_state, batch, rng) -> (loss, (metrics, model_state)) of the
    student `task` against `teacher_task` applied with the variables `teacher`."""
    teacher_state = {k: v for k, v in teacher.items() if k != PARAMS}

    def loss(params, model_state, batch, rng):
        teacher_logits, _ = teacher_task.logits(teacher[PARAMS], teacher_state, batch, None,
                                                train=False)
        teacher_logits = jax.lax.stop_gradient(teacher_logits)
        logits, model_state = task.logits(params, model_state, batch, rng, train=True)
        label_loss, metrics, weights = task.logits_loss(logits, batch)
        term = distill_term(logits, teacher_logits, weights, spec.temperature)
        total = (1 - spec.alpha) * label_loss + spec.alpha * term
        return total, ({**metrics, "loss": total, "label_loss": label_loss,
                        "distill_loss": term}, model_state)
    return loss


@dataclasses.dataclass(frozen=True)
class InputProbe:
    """The student's model, unchanged, except that `init` records the shapes of the
    inputs it is given: the teacher is initialised abstractly on the same inputs to
    learn its params' logical axes (hence their shardings) without reading any data."""
    model: Any
    seen: list = dataclasses.field(compare=False, hash=False, repr=False)

    def init(self, rngs, *args, **kwargs):
        def spec(x):
            return jax.ShapeDtypeStruct(x.shape, x.dtype) if isinstance(x, jax.Array) else x
        self.seen[:] = [jax.tree.map(spec, (args, kwargs))]
        return self.model.init(rngs, *args, **kwargs)

    def __getattr__(self, name):
        # Everything else (apply, context_length, FLOP counts) is the model's.
        if name.startswith("__") or name in ("model", "seen"):
            raise AttributeError(name)
        return getattr(self.model, name)


def abstract_init(model, inputs):
    """`model.init`'s variables, abstract and with their logical axes, on `inputs`
    ((args, kwargs) as InputProbe saw them: arrays as shapes, flags as values)."""
    leaves, treedef = jax.tree.flatten(inputs)
    shaped = [i for i, x in enumerate(leaves) if isinstance(x, jax.ShapeDtypeStruct)]

    def init(rng, arrays):
        filled = list(leaves)
        for i, x in zip(shaped, arrays):
            filled[i] = x
        args, kwargs = jax.tree.unflatten(treedef, filled)
        return model.init({"params": rng}, *args, **kwargs)
    return jax.eval_shape(init, jax.random.key(0), [leaves[i] for i in shaped])


def _teacher_dir(path: str) -> str:
    """The directory holding the teacher's run files; BadInput unless it is a run."""
    try:
        source = checkpoint.run_dir(path)
        checkpoint.read_config(source)
    except BadInput as e:
        raise BadInput(f"distill.teacher: {e}") from None
    return source


def _saved_names(path: str) -> dict:
    try:
        return checkpoint.metadata(path)
    except BadInput as e:
        raise BadInput(f"distill.teacher: {e}") from None


def _checkpoint_name(name: str) -> str:
    """A teacher variable's name ("params/...", "batch_stats/...") in its checkpoint."""
    return name if name.startswith(PARAMS + "/") else MODEL_STATE + name


def _short(names) -> str:
    names = list(names)
    return str(names[:4])[:-1] + (", ...]" if len(names) > 4 else "]")


def _read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise BadInput(f"distill.teacher: {path}: unreadable ({e})") from None


class Distill(Regime):

    name = "distill"

    def __init__(self, spec: DistillSpec, config, task, mesh):
        self.spec = spec
        self.config = config            # the student's, resolved (vocab_size, num_classes)
        self.task = task                # the student's, before any wrap_task
        self.rules = sharding.rules_from_config(config.mesh)
        self.seen = []                  # the student model's init inputs (InputProbe)
        self.teacher_task = None        # set by `check`
        self.boxed = None               # the teacher's abstract variables, logical axes on

    def wrap_task(self, task):
        return dataclasses.replace(task, model=InputProbe(task.model, self.seen))

    # --- the teacher, checked before anything is written ------------------------------

    def check(self, abstract_params, abstract_model_state) -> None:
        path = self.spec.teacher
        source = _teacher_dir(path)
        teacher = checkpoint.read_config(source)
        self._check_same_outputs(teacher, source)
        teacher_model = models.build(teacher.model)
        check_packing(self.config, teacher_model, f"distill.teacher {path} "
                      f"({teacher.model.name})")
        self.teacher_task = dataclasses.replace(self.task, model=teacher_model)
        if not self.seen:
            raise RuntimeError("distill: the student's init was not traced before check")
        try:
            self.boxed = abstract_init(self.teacher_task.model, self.seen[0])
        except (TypeError, ValueError) as e:
            raise BadInput(f"distill.teacher {path}: its model "
                           f"({teacher.model.name}) cannot read the student's inputs "
                           f"({type(e).__name__}: {str(e).splitlines()[0]})") from None
        expected = {_checkpoint_name(n): x for n, x in
                    tree.flatten(nn.meta.unbox(self.boxed)).items()}
        found = {n: m for n, m in _saved_names(path).items()
                 if n.startswith((PARAMS + "/", MODEL_STATE))}
        diff = tree.shape_diff(expected, found, f"its config ({teacher.model.name})",
                               "its checkpoint")
        if diff:
            lora = any("/lora_" in n for n in found)
            raise BadInput(f"distill.teacher {path}: {diff}" + (
                " (a LoRA run: use its merged export, bigmodels.export)" if lora else ""))

    def _check_same_outputs(self, teacher, source: str) -> None:
        """BadInput unless the teacher's task, vocabulary and label set are the student's."""
        path, student = self.spec.teacher, self.config
        if teacher.get("task") != student.task:
            raise BadInput(f"distill.teacher {path}: a {teacher.get('task')!r} run, but the "
                           f"student's task is {student.task!r}")
        for key, what in (("vocab_size", "vocabulary"), ("num_classes", "label set")):
            mine, theirs = student.model.get(key), teacher.model.get(key)
            if mine != theirs:
                raise BadInput(f"distill.teacher {path}: another {what} "
                               f"(model.{key}={theirs}; the student's is {mine})")
        tokenizer = os.path.join(source, TOKENIZER_FILE)
        theirs = vocabulary_digest(_read_json(tokenizer)) if os.path.isfile(tokenizer) else ""
        if theirs != self.task.vocabulary:
            why = ("its tokenizer.json is not the student's tokenizer" if theirs and
                   self.task.vocabulary else "it has a tokenizer.json and the student "
                   "none" if theirs else "it has no tokenizer.json, the student reads tokens")
            raise BadInput(f"distill.teacher {path}: another vocabulary ({why})")
        classes = os.path.join(source, CLASSES_FILE)
        if self.task.class_names and os.path.isfile(classes):
            names = tuple(_read_json(classes))
            if names != self.task.class_names:
                raise BadInput(f"distill.teacher {path}: another label set (its "
                               f"{CLASSES_FILE} {_short(names)} vs the student's "
                               f"{_short(self.task.class_names)})")
        # A toy or image dataset's class subset (data.classes), whose names no file keeps.
        if teacher.data.get("classes", "") != student.data.get("classes", ""):
            raise BadInput(f"distill.teacher {path}: another label set (data.classes="
                           f"{teacher.data.get('classes')!r}; the student's is "
                           f"{student.data.get('classes')!r})")

    # --- its part of the state ---------------------------------------------------------

    def init_state(self, params):
        """Zeros of the teacher's shapes: `after_init` reads the teacher into them."""
        return jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), nn.meta.unbox(self.boxed))

    def extra_state_shardings(self, abstract_extra, param_shardings, mesh):
        return sharding.logical_shardings(self.boxed, mesh, self.rules)

    def after_init(self, state, shardings):
        return self._with_teacher(state, shardings)

    def checkpoint_state(self, state):
        # The teacher is re-read from distill.teacher: a checkpoint holds the student.
        return state.replace(extra={k: v for k, v in state.extra.items() if k != self.name})

    def after_restore(self, state, shardings):
        return self._with_teacher(state, shardings)

    def _with_teacher(self, state, shardings):
        """`state` with the teacher's variables read straight into their shardings."""
        placed = {_checkpoint_name(n): s
                  for n, s in tree.flatten(shardings.extra[self.name]).items()}
        loaded = restore_flat(self.spec.teacher, list(placed), shardings=placed)
        teacher = tree.unflatten({n[len(MODEL_STATE):] if n.startswith(MODEL_STATE) else n: x
                                  for n, x in loaded.items()})
        return state.replace(extra={**state.extra, self.name: teacher})

    # --- the update --------------------------------------------------------------------

    def update(self, ctx: StepContext, state, batch, rng) -> Update:
        loss = distill_loss_fn(ctx.task, self.teacher_task, state.extra[self.name], self.spec)
        metrics, model_state, grads = loss_and_grads(
            jax.value_and_grad(loss, has_aux=True), state.params, state.model_state, batch,
            rng, ctx.grad_accum_steps)
        updates, opt_state = ctx.tx.update(grads, state.opt_state, state.params,
                                           value=metrics["loss"])
        return Update(optax.apply_updates(state.params, updates), opt_state, model_state,
                      metrics, grads)


def spec_from_config(cfg) -> DistillSpec:
    """The DistillSpec of `config.distill`; BadInput naming the key at fault."""
    if not cfg.temperature > 0:
        raise BadInput(f"distill.temperature must be > 0, got {cfg.temperature}")
    if not 0 <= cfg.alpha <= 1:
        raise BadInput(f"distill.alpha must be in [0, 1], got {cfg.alpha}")
    return DistillSpec(str(cfg.teacher), float(cfg.temperature), float(cfg.alpha))


def from_config(config, task, mesh) -> list[Regime]:
    cfg = config.get("distill")
    if cfg is None or not cfg.teacher:
        return []
    spec = spec_from_config(cfg)
    if not task.distillable:
        raise BadInput(f"distill: task {config.task!r} has no logits to distill; "
                       f"distill.teacher works with tasks classify and causal_lm")
    for key, on, name in (("lora", "rank", "LoRA"), ("local_sgd", "inner_steps", "local SGD")):
        if config.get(key) is not None and config[key][on] > 0:
            raise BadInput(f"distill: {name} ({key}.{on} > 0) and distillation both "
                           f"replace the update rule; a run can use only one of them")
    return [Distill(spec, config, task, mesh)]
