"""Optimisation of a V-JEPA run (all optax), the reference recipe (``app/vjepa/utils.py: init_opt``,
``src/utils/schedulers.py``, ``app/vjepa/train.py``).

Update t = 0, 1, …, steps − 1 uses, with T = ⌊ipe_scale · steps⌋ the length the schedules are
stretched over (the reference stops training at 1/ipe_scale of its schedules) and s = t + 1 (the
reference steps its schedulers before each update):

* lr: s/W of the way from ``start_lr`` to ``lr`` while s < W = ``warmup_steps``, then
  max(lr_end, lr_end + (lr − lr_end)·½(1 + cos(π (s − W)/(T − W)))) with lr_end = ``final_lr``;
* weight decay: wd_T + (wd_0 − wd_T)·½(1 + cos(π s/T)), clamped at wd_T (0.04 -> 0.4);
* EMA momentum: α_t = α_0 + t (α_1 − α_0)/(ipe_scale · steps) (0.998 -> 1, never reached);
* gradients: from update ``warmup_steps`` on, θ's and ψ's gradients are each scaled by
  min(1, c/(‖g‖ + 10⁻⁶)) with c = ``clip_grad`` (torch's ``clip_grad_norm_``, encoder and
  predictor separately);
* AdamW (β₁, β₂, ε = 10⁻⁸), decoupled decay lr·wd·p on n-D parameters only.

With ``lr_batch`` set, ``start_lr``, ``lr`` and ``final_lr`` are the values for a global batch of
``lr_batch`` clips and are scaled by ``batch_size / lr_batch`` (the linear scaling rule: our
choice for smaller batches, not the reference's).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from dualjax import rules
from dualjax.typing import PyTree
from dualjax.vjepa import config as config_lib
from dualjax.vjepa import vit

CLIP_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_


def schedule_length(cfg: config_lib.Config) -> int:
    """T = ⌊ipe_scale · steps⌋: the number of updates the lr and wd schedules are laid out over."""
    return int(cfg.ipe_scale * cfg.steps)


def lr_scale(cfg: config_lib.Config) -> float:
    """batch_size / lr_batch (1 without ``lr_batch``): the factor on start_lr, lr and final_lr."""
    return cfg.batch_size / cfg.lr_batch if cfg.lr_batch else 1.0


def warmup_cosine(start: float, peak: float, final: float, warmup: int, total: int) -> optax.Schedule:
    """The reference's ``WarmupCosineSchedule`` as a function of the update index t (s = t + 1):
    start + (s/W)(peak − start) while s < W, then
    max(final, final + (peak − final)·½(1 + cos(π (s − W)/(T − W))))."""

    def schedule(count):
        s = jnp.asarray(count, jnp.float32) + 1
        warm = start + s / max(1, warmup) * (peak - start)
        cosine = final + (peak - final) * 0.5 * (1 + jnp.cos(jnp.pi * (s - warmup) / max(1, total - warmup)))
        return jnp.where(s < warmup, warm, jnp.maximum(final, cosine))

    return schedule


def cosine_weight_decay(w0: float, w1: float, total: int) -> optax.Schedule:
    """The reference's ``CosineWDSchedule`` of update t (s = t + 1): w₁ + (w₀ − w₁)·½(1 + cos(π s/T)),
    clamped at w₁ from the side it is approached."""
    bound = jnp.maximum if w1 <= w0 else jnp.minimum

    def schedule(count):
        s = jnp.asarray(count, jnp.float32) + 1
        return bound(w1, w1 + (w0 - w1) * 0.5 * (1 + jnp.cos(jnp.pi * s / total)))

    return schedule


def lr_schedule(cfg: config_lib.Config) -> optax.Schedule:
    """lr of update t: linear warmup start_lr -> lr, then cosine towards final_lr (module doc)."""
    k = lr_scale(cfg)
    return warmup_cosine(k * cfg.start_lr, k * cfg.lr, k * cfg.final_lr, cfg.warmup_steps, schedule_length(cfg))


def wd_schedule(cfg: config_lib.Config) -> optax.Schedule:
    """Weight decay of update t: cosine from weight_decay to final_weight_decay over T (module doc)."""
    return cosine_weight_decay(cfg.weight_decay, cfg.final_weight_decay, schedule_length(cfg))


def momentum_schedule(cfg: config_lib.Config) -> rules.Schedule:
    """EMA momentum α_t of update t, linear from ``momentum_start`` towards ``momentum_end`` over
    ipe_scale · steps updates (the reference's generator; the run stops before its end)."""
    m0, m1, total = cfg.momentum_start, cfg.momentum_end, cfg.ipe_scale * cfg.steps

    def schedule(count):
        return m0 + jnp.asarray(count, jnp.float32) * ((m1 - m0) / total)

    return schedule


class ClipState(NamedTuple):
    count: jax.Array


def clip_parts(max_norm: float, start: int) -> optax.GradientTransformation:
    """Clip each part of an update tuple (θ's, ψ's gradients) to norm ``max_norm`` separately, from
    update ``start`` on: g ← g · min(1, max_norm/(‖g‖ + 10⁻⁶)). Any other pytree is one part."""

    def init(params):
        del params
        return ClipState(jnp.zeros((), jnp.int32))

    def update(updates, state, params=None):
        del params
        on = state.count >= start

        def clip(g):
            factor = jnp.minimum(1.0, max_norm / (optax.tree_utils.tree_norm(g) + CLIP_EPS))
            factor = jnp.where(on, factor, 1.0)
            return jax.tree.map(lambda x: (x * factor).astype(x.dtype), g)

        clipped = tuple(clip(g) for g in updates) if isinstance(updates, tuple) else clip(updates)
        return clipped, ClipState(state.count + 1)

    return optax.GradientTransformation(init, update)


def decay_mask(params: PyTree) -> PyTree:
    """Weight decay on matrices and tensors only: no decay on biases, LayerNorm or other 1-D params.

    A parameter under a ``blocks`` key (:data:`~dualjax.vjepa.vit.STACK_KEY`) is a stack of
    per-block parameters along a leading depth axis, so it counts as one dimension less: a stacked
    LayerNorm scale (depth, D) is 1-D per block and not decayed, a stacked kernel (depth, D, D') is."""

    return jax.tree_util.tree_map_with_path(lambda path, p: p.ndim - vit.is_stacked(path) > 1, params)


def make_optimizer(cfg: config_lib.Config) -> optax.GradientTransformation:
    """Gradient clipping (if ``clip_grad``), then AdamW on (θ, ψ) with the schedules and decay mask."""
    adamw = optax.adamw(lr_schedule(cfg), b1=cfg.b1, b2=cfg.b2, eps=1e-8, weight_decay=wd_schedule(cfg),
                        mask=decay_mask)
    if not cfg.clip_grad:
        return adamw
    return optax.chain(clip_parts(cfg.clip_grad, cfg.warmup_steps), adamw)


def make_rule(cfg: config_lib.Config) -> rules.TeacherRule:
    """The config's teacher rule, resolved once through the registry (:func:`dualjax.rules.resolve`:
    a rule with a ``momentum`` option, e.g. EMA, gets :func:`momentum_schedule`).

    A rule that sets the predictor from the batch's features (``predictor`` / ``needs_features``,
    e.g. DirectPred) is refused: it needs a *linear* predictor ψ (an n×n map of an embedding), but
    the V-JEPA predictor is a transformer fed mask tokens at the target positions — a linear map of
    the context tokens' features cannot produce predictions at masked positions.
    """
    try:
        rule = rules.resolve(cfg.teacher, momentum=momentum_schedule(cfg))
    except ValueError as err:
        raise ValueError(f"teacher={cfg.teacher!r}: {err}") from None
    if rule.predictor is not None or rule.needs_features:
        raise ValueError(
            f"teacher={cfg.teacher!r} sets the predictor from the feature correlation (a linear predictor); "
            "the V-JEPA predictor is a transformer fed mask tokens at the target positions, which a linear map "
            "of context features cannot replace (docs/vjepa.md); use it on a siamese model (docs/recipes.md)")
    return rule
