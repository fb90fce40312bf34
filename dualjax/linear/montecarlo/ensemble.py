"""The instance ensemble of the general-m study: random data (ρ, τ, λ) and initial points (A₀, B₀).

Trial i of a study with base key ``key`` takes its randomness from k = ``fold_in(key, i)``, split
as ``k_rho, k_tau, k_lam, k_init = split(k, 4)`` exactly as the m = 1 study
(:func:`~dualjax.linear.montecarlo.trials.sample_trial`); the data come from a *sampler*
``sample(k_rho, k_tau, k_lam, m, cfg) -> (ρ (m, m), τ (m, m), λ ())``, the initial point from
``cfg.init`` with k_init. Samplers by name (:data:`SAMPLERS`):

* ``paper`` (default) — the paper's law, made m-dimensional: ρ = Q diag(d) Qᵀ with eigenvalues
  d_i ~ U(lo, hi] i.i.d. (default (0, 3]) and Q Haar-random; τ with i.i.d. entries U[lo, hi)
  (default [−1, 1)); λ ~ U[0.01, 0.1). At m = 1 this *is* the paper's law, drawn from the same
  random stream, so trial i at m = 1 has the same (ρ, τ, λ, a₀, B₀) as trial i of the m = 1 study;
* ``wishart`` — ρ = c (GGᵀ/m + 0.1 I) with G Gaussian and c = 1.5/1.1 (mean eigenvalue 1.5, the
  paper's mean ρ), τ Gaussian with the variance of U[−1, 1] (1/3), λ as above;
* ``aug`` — augmentation-like views y = (I + sG)x + noise: ρ as ``paper``, τ = (I + sG)ρ with
  s = ``cfg.aug_scale``, λ as above.

Any function with the sampler's signature can be passed instead (``sampler=`` of
:func:`~dualjax.linear.montecarlo.general.general_study`). Initial points: ``torch``, PyTorch's
``nn.Linear`` init scaled by s (A ~ s·U[−1/√m, 1/√m], B ~ s·U[−1/√n, 1/√n];
:func:`dualjax.linear.model.init_params`), or ``gauss`` (A ~ N(0, s²/n), B ~ N(0, s²/n²) entrywise);
the teacher starts as a copy of the student (the rule's ``init``). Every function acts on one
trial; vmap them.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dualjax.linear import model
from dualjax.linear.montecarlo.pool import HOST_COMPILER_OPTIONS

Sampler = Callable[..., tuple[jax.Array, jax.Array, jax.Array]]


class Instance(NamedTuple):
    """One trial's random data: its index, (ρ, τ, λ), σ = τρ⁻¹τᵀ (the smallest σ consistent with a joint
    covariance; it only shifts E and F, and enters the plain rule's gradient) and the initial point
    (A₀ (n, m), B₀ (n, n))."""

    index: jax.Array
    rho: jax.Array
    tau: jax.Array
    lam: jax.Array
    sigma: jax.Array
    A0: jax.Array
    B0: jax.Array


def _uniform_lo_open(key, shape, lo, hi, dtype):
    """U(lo, hi]: hi − (hi − lo)·u with u ~ U[0, 1) (ρ > 0 always; the m = 1 study's draw)."""
    return hi - (hi - lo) * jax.random.uniform(key, shape, dtype)


def haar_orthogonal(key, m: int, dtype=None) -> jax.Array:
    """A Haar-random Q ∈ O(m): QR of a Gaussian matrix with the signs of diag(R) moved into Q (Q = 1 at m = 1)."""
    dtype = dtype or jnp.result_type(float)
    Q, R = jnp.linalg.qr(jax.random.normal(key, (m, m), dtype))
    return Q * jnp.where(jnp.diagonal(R) < 0, -1.0, 1.0).astype(dtype)


def _rho_paper(k_rho, m, cfg, dtype):
    d = _uniform_lo_open(k_rho, (m,), *cfg.rho_range, dtype)
    if m == 1:
        return d.reshape(1, 1)
    Q = haar_orthogonal(jax.random.fold_in(k_rho, 1), m, dtype)
    return (Q * d) @ Q.T


def _lam(k_lam, cfg, dtype):
    return jax.random.uniform(k_lam, (), dtype, *cfg.lam_range)


def paper(k_rho, k_tau, k_lam, m: int, cfg):
    """ρ = Q diag(d) Qᵀ, d_i ~ U(lo, hi], Q Haar; τ_ij ~ U[lo, hi); λ ~ U[lo, hi) (the paper's law at m = 1)."""
    dtype = jnp.result_type(float)
    tau = jax.random.uniform(k_tau, (m, m), dtype, *cfg.tau_range)
    return _rho_paper(k_rho, m, cfg, dtype), tau, _lam(k_lam, cfg, dtype)


def wishart(k_rho, k_tau, k_lam, m: int, cfg):
    """ρ = (1.5/1.1)(GGᵀ/m + 0.1 I), τ_ij ~ N(0, 1/3), λ ~ U[lo, hi)."""
    dtype = jnp.result_type(float)
    G = jax.random.normal(k_rho, (m, m), dtype)
    rho = (1.5 / 1.1) * (G @ G.T / m + 0.1 * jnp.eye(m, dtype=dtype))
    tau = jax.random.normal(k_tau, (m, m), dtype) / np.sqrt(3.0)
    return rho, tau, _lam(k_lam, cfg, dtype)


def aug(k_rho, k_tau, k_lam, m: int, cfg):
    """ρ as :func:`paper`, τ = (I + sG)ρ with G Gaussian and s = ``cfg.aug_scale``, λ ~ U[lo, hi)."""
    dtype = jnp.result_type(float)
    rho = _rho_paper(k_rho, m, cfg, dtype)
    T = jnp.eye(m, dtype=dtype) + cfg.aug_scale * jax.random.normal(k_tau, (m, m), dtype)
    return rho, T @ rho, _lam(k_lam, cfg, dtype)


SAMPLERS: dict[str, Sampler] = {"paper": paper, "wishart": wishart, "aug": aug}


def get_sampler(sampler: str | Sampler) -> Sampler:
    """A sampler by name (:data:`SAMPLERS`) or the given function itself."""
    if callable(sampler):
        return sampler
    if sampler not in SAMPLERS:
        raise ValueError(f"ensemble must be one of {list(SAMPLERS)} or a sampler function, got {sampler!r}")
    return SAMPLERS[sampler]


def init_point(k_init, n: int, m: int, init: str, scale: float, dtype=None):
    """(A₀, B₀): ``torch`` (:func:`dualjax.linear.model.init_params`) or ``gauss``."""
    dtype = dtype or jnp.result_type(float)
    if init == "torch":
        return model.init_params(k_init, n, m, scale=scale, dtype=dtype)
    ka, kb = jax.random.split(k_init)
    return scale / np.sqrt(n) * jax.random.normal(ka, (n, m), dtype), scale / n * jax.random.normal(kb, (n, n), dtype)


def sample_instance(key, index, cfg, sampler: Sampler) -> Instance:
    """Trial ``index`` of the study with base ``key`` (module doc for the law)."""
    k_rho, k_tau, k_lam, k_init = jax.random.split(jax.random.fold_in(key, index), 4)
    rho, tau, lam = sampler(k_rho, k_tau, k_lam, cfg.m, cfg)
    A0, B0 = init_point(k_init, cfg.n, cfg.m, cfg.init, cfg.init_scale)
    dtype = jnp.result_type(float)
    rho, tau = jnp.asarray(rho, dtype), jnp.asarray(tau, dtype)
    sigma = tau @ jnp.linalg.solve(rho, tau.T)
    return Instance(jnp.asarray(index, jnp.int32), rho, tau, jnp.asarray(lam, dtype), (sigma + sigma.T) / 2, A0, B0)


def instance_moments(inst: Instance) -> model.Moments:
    """The moments (ρ, τ, σ) of an instance."""
    return model.Moments(inst.rho, inst.tau, inst.sigma)


def sample_instances(key, indices, cfg, sampler: Sampler) -> Instance:
    """Trials ``indices`` (a 1-D array) as one batched :class:`Instance` (vmapped :func:`sample_instance`, jitted)."""
    return _sample_batch(cfg, sampler)(key, jnp.asarray(indices, jnp.int32))


@functools.lru_cache(maxsize=32)
def _sample_batch(cfg, sampler):
    # LLVM -O1: half the compile of threefry's rounds, the same bits
    return jax.jit(jax.vmap(lambda key, i: sample_instance(key, i, cfg, sampler), in_axes=(None, 0)),
                   compiler_options=HOST_COMPILER_OPTIONS)
