"""Optimisation of a V-JEPA run (all optax): AdamW with warmup + cosine lr, cosine-increasing
weight decay, no decay on 1-D parameters, and the teacher rule with its momentum schedule."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from dualjax import rules
from dualjax.typing import PyTree
from dualjax.vjepa import config as config_lib


def lr_schedule(cfg: config_lib.Config) -> optax.Schedule:
    """Linear warmup start_lr -> lr over ``warmup_steps``, then cosine to ``final_lr`` at ``steps``."""
    if cfg.warmup_steps == 0:
        return optax.cosine_decay_schedule(cfg.lr, cfg.steps, alpha=cfg.final_lr / cfg.lr)
    return optax.warmup_cosine_decay_schedule(cfg.start_lr, cfg.lr, cfg.warmup_steps, cfg.steps, cfg.final_lr)


def wd_schedule(cfg: config_lib.Config) -> optax.Schedule:
    """Cosine-increasing weight decay: wd(t) = wd_T + (wd_0 − wd_T)(1 + cos(π t/T))/2 (0.04 -> 0.4)."""
    w0, w1, total = cfg.weight_decay, cfg.final_weight_decay, cfg.steps

    def schedule(count):
        frac = jnp.minimum(jnp.asarray(count, jnp.float32) / total, 1.0)
        return w1 + (w0 - w1) * 0.5 * (1 + jnp.cos(jnp.pi * frac))

    return schedule


def decay_mask(params: PyTree) -> PyTree:
    """Weight decay on matrices and tensors only: no decay on biases, LayerNorm or other 1-D params."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


def make_optimizer(cfg: config_lib.Config) -> optax.GradientTransformation:
    """AdamW on (θ, ψ) with the lr and weight-decay schedules and the decay mask."""
    return optax.adamw(lr_schedule(cfg), b1=cfg.b1, b2=cfg.b2, eps=1e-8,
                       weight_decay=wd_schedule(cfg), mask=decay_mask)


def momentum_schedule(cfg: config_lib.Config) -> rules.Schedule:
    """EMA momentum α_t linear from ``momentum_start`` to ``momentum_end`` over the run."""
    return rules.linear_momentum(cfg.momentum_start, cfg.momentum_end, cfg.steps)


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
