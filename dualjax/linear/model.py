"""The linear Siamese model of §4: f_θ(x) = A x, g_ψ(z) = B z, teacher f_ξ(y) = C y.

Shapes: views x, y ∈ R^m; encoder A ∈ R^{n×m} (n > m); predictor B ∈ R^{n×n};
teacher C ∈ R^{n×m}. Only the moments of the data matter:

    ρ = E[x xᵀ] (m×m, symmetric PSD),  τ = E[y xᵀ] (m×m, any),  σ = E[y yᵀ] (m×m).

With these (MATH.md §0),

    F(A, B, C) = ½ tr(BAρAᵀBᵀ) − tr(BAτᵀCᵀ) + ½ tr(CσCᵀ) + λ(‖A‖² + ‖B‖²)/2,
    E(A, B)    = F(A, B, A),

and Lemma 4.1's residual is R(A, B, C) = B A ρ − C τ (n×m). σ only shifts the values of
F and E and enters the full gradient of E; the SG and EMA fields do not depend on it.

The closed-form fields here are the reference the autodiff rules are tested against.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dualjax import checks
from dualjax.objectives import Objective, regularizer, siamese


class Moments(NamedTuple):
    """Second moments of the two views: ρ = E[xxᵀ], τ = E[yxᵀ], σ = E[yyᵀ] (each m×m)."""

    rho: jax.Array
    tau: jax.Array
    sigma: jax.Array


def moments(rho, tau, sigma=None, *, strict: bool = False) -> Moments:
    """Validated :class:`Moments` from concrete values (:func:`make_moments` is the unchecked,
    vmappable constructor). Scalars are promoted to 1×1 (the m = 1 case).

    ρ must be symmetric PSD (positive definite with ``strict``); τ square of the same size;
    σ defaults to the smallest choice consistent with a joint PSD covariance of (x, y),
    σ = τ ρ⁺ τᵀ (it only shifts F and E).
    """
    rho_np = checks.check_psd(rho, "rho", strict=strict)
    m = rho_np.shape[0]
    tau_np = checks.check_square(tau, m, "tau")
    if sigma is None:
        sigma_np = tau_np @ np.linalg.pinv(rho_np) @ tau_np.T
        sigma_np = (sigma_np + sigma_np.T) / 2
    else:
        sigma_np = checks.check_psd(sigma, "sigma")
        if sigma_np.shape != (m, m):
            raise ValueError(f"sigma must have shape ({m}, {m}), got {sigma_np.shape}")
    return Moments(jnp.asarray(rho_np), jnp.asarray(tau_np), jnp.asarray(sigma_np))


def make_moments(rho, tau, sigma=None) -> Moments:
    """Unchecked :class:`Moments` for use under ``jit`` / ``vmap`` (validate concrete inputs with
    :func:`moments`). Scalars become 1×1; σ defaults to τ ρ⁺ τᵀ, as in :func:`moments`."""

    def square(x):
        x = jnp.asarray(x)
        return jnp.reshape(x, (1, 1)) if x.ndim == 0 else x

    rho, tau = square(rho), square(tau)
    if sigma is None:
        sigma = tau @ jnp.linalg.pinv(rho) @ tau.T
        sigma = (sigma + sigma.T) / 2
    return Moments(rho, tau, square(sigma))


def moments_from_samples(x, y) -> Moments:
    """Empirical moments of paired samples ``x, y`` of shape (N, m): ρ = XᵀX/N, τ = YᵀX/N, σ = YᵀY/N."""
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"x and y must both have shape (N, m); got {x.shape} and {y.shape}")
    n = x.shape[0]
    return Moments(x.T @ x / n, y.T @ x / n, y.T @ y / n)


def residual(A: jax.Array, B: jax.Array, C: jax.Array, rho: jax.Array, tau: jax.Array) -> jax.Array:
    """Lemma 4.1: R(A, B, C) = B A ρ − C τ, shape (n, m)."""
    return B @ A @ rho - C @ tau


def F(A: jax.Array, B: jax.Array, C: jax.Array, mom: Moments, lam) -> jax.Array:
    """F(A, B, C) = ½ tr(BAρAᵀBᵀ) − tr(BAτᵀCᵀ) + ½ tr(CσCᵀ) + λ(‖A‖² + ‖B‖²)/2."""
    BA = B @ A
    value = (
        0.5 * jnp.sum((BA @ mom.rho) * BA)
        - jnp.sum((BA @ mom.tau.T) * C)
        + 0.5 * jnp.sum((C @ mom.sigma) * C)
    )
    return value + regularizer(lam, A, B)


def objective(lam) -> Objective:
    """(F, E) of the linear model in moment form; ``batch`` is a :class:`Moments`.

    θ = A, ψ = B, ξ = C. Use with any rule of :mod:`dualjax.rules`. The feature moment is exact:
    E[f fᵀ] = E[A x xᵀ Aᵀ] = A ρ Aᵀ (n×n).
    """

    def F_(A, B, C, mom):
        return F(A, B, C, mom, lam)

    def E_(A, B, mom):
        return F(A, B, A, mom, lam)

    def features(A, mom):
        return A @ mom.rho @ A.T

    return Objective(F=F_, E=E_, features=features)


def sample_objective(lam, loss="half_squared") -> Objective:
    """(F, E) of the linear model on a sample: ``batch = (x, y)`` with x, y of shape (N, m).

    The same :func:`dualjax.objectives.siamese` objective the ViT uses, with
    f_θ(x) = A x and g_ψ(z) = B z applied row-wise.
    """
    return siamese(lambda A, x: x @ A.T, lambda B, z: z @ B.T, loss=loss, lam=lam)


# --------------------------------------------------------------------------- closed-form fields

def sg_field(A, B, mom: Moments, lam):
    """SG flow (Lemma 4.1): dA/dt = −(BᵀR + λA), dB/dt = −(RAᵀ + λB), R = BAρ − Aτ."""
    R = residual(A, B, A, mom.rho, mom.tau)
    return -(B.T @ R + lam * A), -(R @ A.T + lam * B)


def ema_field(A, B, C, mom: Moments, lam, k):
    """EMA flow: the SG field with R = BAρ − Cτ, and dC/dt = k(A − C), k = (1 − α)/η."""
    R = residual(A, B, C, mom.rho, mom.tau)
    return -(B.T @ R + lam * A), -(R @ A.T + lam * B), k * (A - C)


def plain_field(A, B, mom: Moments, lam):
    """Gradient flow on E: dA/dt = −(BᵀR + λA + Aσ − BAτᵀ), dB/dt = −(RAᵀ + λB), R = BAρ − Aτ."""
    R = residual(A, B, A, mom.rho, mom.tau)
    dA = B.T @ R + lam * A + A @ mom.sigma - B @ A @ mom.tau.T
    return -dA, -(R @ A.T + lam * B)


# --------------------------------------------------------------------------- data and inits

def random_moments(key: jax.Array, m: int, *, kind: str = "aug", noise: float = 0.3) -> Moments:
    """Generic random data of dimension m.

    kind="aug":   x ~ N(0, ρ) with ρ = LLᵀ/m + 0.1 I, y = (I + 0.3 G) x + noise·ε ("augmentation-like");
    kind="gauss": ρ as above, τ with i.i.d. N(0, 1) entries (σ the minimal consistent choice).
    """
    checks.check_positive_int(m, "m")
    k1, k2 = jax.random.split(key)
    L = jax.random.normal(k1, (m, m))
    rho = L @ L.T / m + 0.1 * jnp.eye(m)
    G = jax.random.normal(k2, (m, m))
    if kind == "aug":
        T = jnp.eye(m) + 0.3 * G
        tau = T @ rho
        sigma = T @ rho @ T.T + noise**2 * jnp.eye(m)
        return Moments(rho, tau, sigma)
    if kind == "gauss":
        return moments(np.asarray(rho), np.asarray(G))
    raise ValueError(f"unknown kind {kind!r}; choose 'aug' or 'gauss'")


def init_params(key: jax.Array, n: int, m: int, *, scale: float = 1.0, dtype=None):
    """PyTorch-``nn.Linear``-style init scaled by ``scale``: A ~ s·U[−1/√m, 1/√m], B ~ s·U[−1/√n, 1/√n]."""
    checks.check_positive_int(n, "n")
    checks.check_positive_int(m, "m")
    if n <= m:
        raise ValueError(f"the linear model needs n > m (embedding wider than input), got n={n}, m={m}")
    dtype = dtype or jnp.result_type(float)
    ka, kb = jax.random.split(key)
    A = scale * jax.random.uniform(ka, (n, m), dtype, -1.0, 1.0) / np.sqrt(m)
    B = scale * jax.random.uniform(kb, (n, n), dtype, -1.0, 1.0) / np.sqrt(n)
    return A, B
