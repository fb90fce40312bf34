"""One trial's random data (paper §4, MATH.md §7): (ρ, τ, λ) and the initial point (a₀, B₀).

Trial i of a study with base key ``key`` takes its randomness from ``jax.random.fold_in(key, i)``,
so its numbers do not depend on the chunk size, the pool it ran in, or the number of devices;
SG and EMA see the same trials.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dualjax.linear import model
from dualjax.linear.montecarlo.config import Config


class Trial(NamedTuple):
    """The random data of one trial: its index, (ρ, τ, λ) and the initial point (a₀, B₀)."""

    index: jax.Array
    rho: jax.Array
    tau: jax.Array
    lam: jax.Array
    a0: jax.Array  # (n,)
    B0: jax.Array  # (n, n)


def sample_trial(key: jax.Array, index, cfg: Config) -> Trial:
    """Trial ``index`` of the study with base ``key``: ρ ~ U(lo, hi] (ρ > 0, the law of
    U[lo, hi]; see :mod:`~dualjax.linear.montecarlo.config`), τ ~ U[lo, hi), λ ~ U[lo, hi), and
    (a₀, B₀) from PyTorch's ``nn.Linear`` init scaled by s (:func:`dualjax.linear.model.init_params`)
    or, for ``init='gauss'``, a₀ ~ N(0, s²/n I), B₀ ~ N(0, s²/n²)."""
    k = jax.random.fold_in(key, index)
    k_rho, k_tau, k_lam, k_init = jax.random.split(k, 4)
    dtype = jnp.result_type(float)
    u = jax.random.uniform(k_rho, (), dtype)
    rho = cfg.rho_range[1] - (cfg.rho_range[1] - cfg.rho_range[0]) * u  # (lo, hi]: ρ > 0
    tau = jax.random.uniform(k_tau, (), dtype, *cfg.tau_range)
    lam = jax.random.uniform(k_lam, (), dtype, *cfg.lam_range)
    n, s = cfg.n, cfg.init_scale
    if cfg.init == "torch":
        A, B = model.init_params(k_init, n, 1, scale=s, dtype=dtype)
        a = A[:, 0]
    else:
        ka, kb = jax.random.split(k_init)
        a = s / np.sqrt(n) * jax.random.normal(ka, (n,), dtype)
        B = s / n * jax.random.normal(kb, (n, n), dtype)
    return Trial(jnp.asarray(index, jnp.int32), rho, tau, lam, a, B)


def trial_moments(trial: Trial) -> model.Moments:
    """(ρ, τ, σ) as 1×1 moments; σ = τ²/ρ, the smallest consistent choice (it only shifts E, F)."""
    one = lambda v: jnp.reshape(v, (1, 1))  # noqa: E731
    return model.Moments(one(trial.rho), one(trial.tau), one(trial.tau**2 / trial.rho))
