"""DirectPred (Tian, Chen & Ganguli 2021, *Understanding self-supervised learning dynamics without
contrastive pairs*, ICML, §5 "DirectPred"): the linear predictor is not learned but *set* from
the eigendecomposition of a running feature correlation.

With f = f_θ(x) the online encoder's features (n-dimensional) and M = E[f fᵀ] on the batch,

    F̂_t = β F̂_{t−1} + (1 − β) M_t          (F̂_1 = M_1: the first batch starts the average)
    F̂_t = U diag(s) Uᵀ,   p_j = √(s_j / max_i s_i) + ε   (clipped at 1e-4),   ψ = W_p = U diag(p) Uᵀ

every ``freq`` steps; the teacher is SG (``momentum=None``) or EMA (``momentum=α``). Defaults,
from the authors' code (``facebookresearch/luckmatters``, ``ssl/real-dataset/byol_trainer.py``,
as ported in solo-learn's ``solo/methods/direct_pred.py``): the correlation EMA weight
``dyn_lambda`` β = 0.3 on the old estimate, ``dyn_convert`` = 2 (the square root above), the
eigenvalue clamps at 0 and at 1e-4, ``predictor_update_freq`` = 1; ε = 0.1 as in the paper's
main DirectPred runs (solo-learn's port defaults to 0.01). ψ must be the n×n matrix of a linear
predictor g_ψ(z) = ψ z; the optimizer's move of ψ is overwritten at every update (with
``freq`` > 1 freeze ψ in the optimizer, e.g. ``optax.multi_transform``, as the paper does).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dualjax import checks
from dualjax.rules.base import Schedule, TeacherRule, TeacherState
from dualjax.rules.builtin import (
    copy_init,
    count_only_advance,
    count_only_init,
    ema_update,
    held_copy,
    memoized,
)
from dualjax.typing import PyTree

P_FLOOR = 1e-4  # the reference's lower clamp on p_j


def predictor_from_correlation(corr: jax.Array, eps: float) -> jax.Array:
    """W_p = U diag(p) Uᵀ with p_j = max(√(max(s_j, 0) / max_i s_i) + ε, 1e-4), F̂ = U diag(s) Uᵀ."""
    corr = 0.5 * (corr + corr.T)
    s, U = jnp.linalg.eigh(corr)
    top = jnp.maximum(jnp.max(s), jnp.finfo(s.dtype).tiny)
    p = jnp.maximum(jnp.sqrt(jnp.clip(s, 0.0) / top) + eps, P_FLOOR)
    return (U * p) @ U.T


def _check_psi(psi) -> None:
    shape = np.shape(psi)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"directpred sets a linear predictor: psi must be one n x n matrix, got shape {shape}")


@memoized
def directpred(eps: float = 0.1, freq: int = 1, beta: float = 0.3,
               momentum: float | Schedule | None = None) -> TeacherRule:
    """The DirectPred rule (module doc): ``eps`` ε, ``freq`` steps between predictor updates,
    ``beta`` β of the feature-correlation average, ``momentum`` None (SG teacher) or the EMA's
    α (a constant or a schedule α(t))."""
    eps = float(eps)
    if not np.isfinite(eps):
        raise ValueError(f"eps must be finite, got {eps}")
    checks.check_positive_int(freq, "freq")
    beta = checks.check_alpha(beta, "beta")
    ema = momentum is not None
    schedule = (momentum if callable(momentum) else optax.constant_schedule(checks.check_alpha(momentum, "momentum"))
                if ema else None)
    base_init, teacher, base_advance = ((copy_init, held_copy, ema_update(schedule)) if ema else
                                        (count_only_init, lambda theta, state: jax.lax.stop_gradient(theta),
                                         count_only_advance))

    def init(theta: PyTree, *, psi: PyTree, **_) -> TeacherState:
        _check_psi(psi)
        return base_init(theta)._replace(stats=jnp.zeros_like(psi))

    def advance(theta: PyTree, state: TeacherState, *, features: jax.Array, **_) -> TeacherState:
        moment = features.astype(state.stats.dtype)
        corr = jnp.where(state.count == 0, moment, beta * state.stats + (1 - beta) * moment)
        return base_advance(theta, state)._replace(stats=corr)

    def predictor(psi: PyTree, state: TeacherState) -> PyTree:
        due = (state.count - 1) % freq == 0  # count was advanced: the update of step count − 1
        return jax.lax.cond(due, lambda: predictor_from_correlation(state.stats, eps).astype(psi.dtype),
                            lambda: psi)

    return TeacherRule("directpred", init, teacher, advance, carries_teacher=ema,
                       momentum=schedule, needs_features=True,
                       predictor=predictor)
