"""The supervised ceiling of a labelled synthetic task (issue 17): the V-JEPA encoder trained on the labels.

A task can show V-JEPA training beat a randomly initialised encoder only if the encoder can learn
the label at all within the budget. This measures that ceiling with the same encoder f_θ (the
config's ViT and its random init θ₀), the same clips and the same attentive probe as Figure 2 and
``experiments/task_design.py``, but with the labels:

    logits(x) = W · LN(1/N Σ_n f_θ(x)_n) + b,        LN: LayerNorm with scale and offset,

trained on (θ, head) by softmax cross-entropy, batches of ``batch`` clips drawn uniformly from
``clips`` labelled clips of the config's training split (clip i of :func:`dualjax.vjepa.data.make_source`,
the clips the probe trains on first), with AdamW (lr warmup over the first 10 % of the steps, then
cosine to lr/100; weight decay 0.05 on matrices; gradients clipped to norm 1). Afterwards the
attentive probe (:func:`dualjax.vjepa.probe.probe`) reads the trained θ exactly as it reads a
V-JEPA teacher, so the three numbers of a design (random init, V-JEPA, supervised) are comparable.

Not a training recipe of the paper: a diagnostic. A design whose supervised ceiling within the
budget is below random-init + 20 points cannot meet issue 17's training target with any
self-supervised recipe of the same encoder and budget.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dualjax import checks
from dualjax.typing import PyTree
from dualjax.vjepa import config as config_lib
from dualjax.vjepa import data as data_lib
from dualjax.vjepa import optim, vit

LN_EPS = vit.LN_EPS  # the head's LayerNorm: the encoder's (vit.layer_norm)


class Head(NamedTuple):
    """The linear head on LayerNorm-ed mean-pooled tokens: LN scale (D,), LN offset (D,), W (D, K), b (K,)."""

    scale: jax.Array
    offset: jax.Array
    W: jax.Array
    b: jax.Array


class Supervised(NamedTuple):
    """The trained encoder ``theta`` and head, ``history`` as (step, batch loss, held-out head top-1)
    rows, and the training seconds (compile included)."""

    theta: PyTree
    head: Head
    history: list[tuple[int, float, float]]
    seconds: float


def init_head(key: jax.Array, width: int, classes: int) -> Head:
    """LN scale 1, offset 0; W ~ N(0, 0.02²); b = 0."""
    return Head(jnp.ones(width), jnp.zeros(width), 0.02 * jax.random.normal(key, (width, classes)), jnp.zeros(classes))


def head_logits(head: Head, tokens: jax.Array) -> jax.Array:
    """(B, N, D) tokens -> (B, K) logits: W · LN(mean_n tokens_n) + b."""
    return (vit.layer_norm(tokens.mean(axis=1), LN_EPS) * head.scale + head.offset) @ head.W + head.b


def logits(model, params: tuple[PyTree, Head], clips: jax.Array) -> jax.Array:
    """(B, K) logits of uint8 ``clips`` (B, T, H, W, C) under (θ, head)."""
    theta, head = params
    return head_logits(head, model.encode(theta, data_lib.normalize(clips)))


def loss_fn(model, params: tuple[PyTree, Head], clips: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of ``labels`` (B,) under the logits of uint8 ``clips`` (B, T, H, W, C)."""
    return optax.softmax_cross_entropy_with_integer_labels(logits(model, params, clips), labels).mean()


def make_optimizer(steps: int, lr: float) -> optax.GradientTransformation:
    """Clip to norm 1, then AdamW: lr warmup over the first 10 % of ``steps``, cosine to lr/100,
    weight decay 0.05 on matrices only (the V-JEPA decay mask)."""
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, max(steps // 10, 1), steps, lr / 100)
    return optax.chain(optax.clip_by_global_norm(1.0),
                       optax.adamw(schedule, weight_decay=0.05, mask=optim.decay_mask))


def labelled_clips(cfg: config_lib.Config, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` clips of the config's training split, uint8 (count, T, H, W, C), and labels."""
    if cfg.dataset not in data_lib.SYNTHETIC:
        raise ValueError(f"the supervised ceiling needs a synthetic dataset ({list(data_lib.SYNTHETIC)}), "
                         f"got dataset={cfg.dataset!r}")
    source = data_lib.make_source(dataclasses.replace(cfg, num_train=count), "train")
    batches = list(data_lib.eval_batches(source, 256, limit=count))
    return np.concatenate([b["clip"] for b in batches]), np.concatenate([b["label"] for b in batches])


def train(cfg: config_lib.Config, model, steps: int, *, batch: int = 32, lr: float = 1e-3, clips: int = 8192,
          eval_clips: tuple[np.ndarray, np.ndarray] | None = None, eval_every: int = 200, seed: int = 0,
          log: Callable[[dict], None] | None = None) -> Supervised:
    """Train θ (from the model's init with ``cfg.seed``) and the head for ``steps`` steps (module doc).

    ``model``: the run's :class:`~dualjax.vjepa.model.VJEPA` (``step.build(cfg).model``).
    ``eval_clips``: held-out (clips, labels) whose head top-1 is recorded every ``eval_every``
    steps and at the end (none: the history has NaN there). ``log`` gets each history row as a dict.
    """
    checks.check_positive_int(steps, "steps")
    checks.check_positive_int(batch, "batch")
    checks.check_positive_int(clips, "clips")
    checks.check_positive_int(eval_every, "eval_every")
    checks.check_positive(lr, "lr")
    t0 = time.perf_counter()
    x, y = labelled_clips(cfg, clips)
    classes = data_lib.num_classes(cfg)
    theta, _ = model.init()
    params = (theta, init_head(jax.random.PRNGKey(seed + 1), model.width, classes))
    tx = make_optimizer(steps, lr)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, clip, label):
        loss, grads = jax.value_and_grad(lambda p: loss_fn(model, p, clip, label))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    predict = jax.jit(lambda params, clip: logits(model, params, clip).argmax(-1))

    def accuracy(params) -> float:
        if eval_clips is None:
            return float("nan")
        cx, cy = eval_clips
        pred = np.concatenate([np.asarray(predict(params, cx[i:i + 128])) for i in range(0, len(cx), 128)])
        return float(np.mean(pred == cy))

    rng = np.random.default_rng(seed)
    history = []
    for t in range(steps):
        idx = rng.integers(0, len(x), batch)
        params, opt_state, loss = step(params, opt_state, x[idx], y[idx])
        if t % eval_every == 0 or t == steps - 1:
            loss = float(loss)
            if not np.isfinite(loss):
                raise FloatingPointError(f"supervised training diverged: loss {loss} at step {t} (lr {lr})")
            history.append((t, loss, accuracy(params)))
            if log is not None:
                log({"step": t, "loss": loss, "head_top1": history[-1][2]})
    return Supervised(params[0], params[1], history, time.perf_counter() - t0)
