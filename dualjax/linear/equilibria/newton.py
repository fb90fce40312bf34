"""Prop 4.5 by Newton's method, and the rank-deficient equilibria of equation (ii).

* :func:`polish` — Newton on Prop 4.5's system from one S (real or complex), to rounding level;
  every solver ends with it, on the *given* float data. :func:`newton_batch` is its vmapped form.
* :func:`solve_newton` — many-start damped Newton on the real system, for m beyond the reach of
  the exact and homotopy solvers (real roots only; may miss some).
* :func:`rank_deficient_solutions` — equilibria with rank S = r < m: equation (ii)
  M S M = S τᵀ S τ in the factor W ∈ ℝ^{r×m}, S = WᵀW, by many-start Levenberg–Marquardt
  (indicative: it can miss solutions).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from dualjax import checks
from dualjax.linear.equilibria.system import (
    apriori_bound,
    dedup_matrices,
    equilibrium_residual,
    numerical_rank,
    residual_vec,
    sym_from_vec,
    vec_from_sym,
)


@checks.float64
def polish(S, rho, tau, lam, *, iters: int = 20, complex_: bool = False) -> np.ndarray:
    """Newton on Prop 4.5's system from S (real or complex), to rounding level."""
    m = rho.shape[0]
    dtype = jnp.complex128 if complex_ else jnp.float64
    x = jnp.asarray(vec_from_sym(np.asarray(S)), dtype)
    x = _newton(x, jnp.asarray(rho, dtype), jnp.asarray(tau, dtype), lam, m=m, iters=iters)
    return np.asarray(sym_from_vec(x, m))


@functools.partial(jax.jit, static_argnames=("m", "iters"))
def _newton(x, rho, tau, lam, *, m, iters):
    def f(z):
        return residual_vec(z, rho, tau, lam, m)

    def body(x, _):
        J = jax.jacfwd(f, holomorphic=jnp.iscomplexobj(x))(x)
        dx = jnp.linalg.lstsq(J, -f(x))[0]
        ok = jnp.all(jnp.isfinite(dx))
        return jnp.where(ok, x + dx, x), None

    return jax.lax.scan(body, x, None, length=iters)[0]


@functools.partial(jax.jit, static_argnames=("m", "iters"))
def newton_batch(xs, rho, tau, lam, *, m, iters):
    """``iters`` undamped Newton steps on Prop 4.5's system from each row of ``xs`` (K, N) (vmapped)."""
    return jax.vmap(lambda x: _newton(x, rho, tau, lam, m=m, iters=iters))(xs)


# --------------------------------------------------------------------------- many-start Newton (large m)

@checks.float64
def solve_newton(rho, tau, lam, *, seed: int = 0, starts: int = 512, iters: int = 60) -> list:
    """Real solutions of Prop 4.5's system by damped Newton from ``starts`` random PSD points.

    Starts S₀ = GᵀG scaled to the a-priori bound; converged points (residual < 1e-10 relative)
    are polished and de-duplicated. Finds real roots only, and may miss some: use for m ≥ 5.
    """
    rho = np.asarray(rho, float)
    tau = np.asarray(tau, float)
    m = rho.shape[0]
    bound = apriori_bound(rho, tau)
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((starts, m, m))
    S0 = np.einsum("kij,kil->kjl", G, G) / m
    S0 *= (bound * rng.uniform(0.01, 1.0, (starts, 1, 1))) / np.linalg.norm(S0, 2, axis=(1, 2))[:, None, None]
    x0 = jnp.asarray(np.stack([vec_from_sym(S) for S in S0]))
    xs = np.asarray(_damped_newton_batch(x0, jnp.asarray(rho), jnp.asarray(tau), lam, m=m, iters=iters))
    res = np.linalg.norm(np.stack([residual_vec(x, rho, tau, lam, m) for x in xs]), axis=1)
    good = xs[np.isfinite(res) & (res < 1e-10 * (1 + np.linalg.norm(xs, axis=1) ** 2))]
    return dedup_matrices([polish(sym_from_vec(x, m), rho, tau, lam) for x in good])


@functools.partial(jax.jit, static_argnames=("m", "iters"))
def _damped_newton_batch(xs, rho, tau, lam, *, m, iters):
    def f(z):
        return residual_vec(z, rho, tau, lam, m)

    return jax.vmap(lambda x: _damped_newton(f, x, iters))(xs)


def _damped_newton(f, x, iters):
    def body(x, _):
        r = f(x)
        J = jax.jacfwd(f)(x)
        dx = jnp.linalg.lstsq(J, -r)[0]
        # backtrack on ‖f‖ so far-away starts do not shoot off
        def try_step(a):
            return jnp.linalg.norm(f(x + a * dx))

        alphas = jnp.asarray([1.0, 0.5, 0.25, 0.1, 0.03])
        vals = jax.vmap(try_step)(alphas)
        a = alphas[jnp.argmin(vals)]
        xn = x + a * dx
        return jnp.where(jnp.all(jnp.isfinite(xn)), xn, x), None

    return jax.lax.scan(body, x, None, length=iters)[0]


# --------------------------------------------------------------------------- rank-deficient equilibria

def rank_residual(w, rho, tau, lam, rank: int):
    """Equation (ii) in the factor W = ``w.reshape(r, m)`` of S = WᵀW:
    Φ(W) = W M − W (ρS + λI)⁻¹ τᵀ S τ, M = Sρ + λI (r·m entries; zero iff (ii) holds, ker A = ker S)."""
    m = rho.shape[0]
    eye = jnp.eye(m)
    W = w.reshape(rank, m)
    S = W.T @ W
    rhs = jnp.linalg.solve(rho @ S + lam * eye, tau.T @ S @ tau)
    return (W @ (S @ rho + lam * eye) - W @ rhs).ravel()


@functools.partial(jax.jit, static_argnames=("rank", "iters", "solve", "residual"))
def levenberg_marquardt(w, rho, tau, lam, *, rank: int, iters: int, solve=jnp.linalg.solve, residual=rank_residual):
    """``iters`` Levenberg–Marquardt steps on :func:`rank_residual` from w, damping ‖Φ‖²
    (quadratically convergent onto the non-isolated O(r)-orbits of solutions); vmap it over starts.
    ``solve(A, b)`` solves the normal equations and ``residual`` evaluates Φ (defaults: LAPACK and
    :func:`rank_residual`; the batched solver passes forms written for tiny matrices)."""

    def phi(w):
        return residual(w, rho, tau, lam, rank)

    def body(w, _):
        r = phi(w)
        J = jax.jacfwd(phi)(w)
        mu = jnp.sum(r * r) + 1e-14
        dw = -solve(J.T @ J + mu * jnp.eye(w.size), J.T @ r)
        wn = w + dw
        return jnp.where(jnp.all(jnp.isfinite(wn)), wn, w), None

    return jax.lax.scan(body, w, None, length=iters)[0]


def lm_starts(rng: np.random.Generator, starts: int, rank: int, m: int, bound, *,
              spread: tuple[float, float] = (0.02, 1.5), log: bool = False) -> np.ndarray:
    """``starts`` random factors w ∈ ℝ^{r·m} with ‖WᵀW‖ spread over ``spread`` × the a-priori bound
    (uniformly, or log-uniformly with ``log``); ``bound`` of shape (K,) gives (K, starts, r·m)."""
    bound = np.asarray(bound, float)
    w0 = rng.standard_normal(bound.shape + (starts, rank * m))
    lo, hi = spread
    u = (np.exp(rng.uniform(np.log(lo), np.log(hi), bound.shape + (starts, 1))) if log
         else rng.uniform(lo, hi, bound.shape + (starts, 1)))
    scale = np.sqrt(bound[..., None, None] * u / rank) / np.linalg.norm(w0, axis=-1, keepdims=True)
    return w0 * (scale * np.sqrt(rank))


@checks.float64
def rank_deficient_solutions(rho, tau, lam, rank: int, *, seed: int = 0, starts: int = 256,
                             iters: int = 150) -> list:
    """Equilibria with rank S = r: equation (ii) in the factor W ∈ ℝ^{r×m}, S = WᵀW.

    Since ker A = ker S, (ii) is equivalent to Φ(W) = W M − W (ρS + λI)⁻¹ τᵀ S τ = 0
    (r·m equations, O(r)-invariant solution sets; :func:`rank_residual`). Solved by
    Levenberg–Marquardt with damping ‖Φ‖² (:func:`levenberg_marquardt`) from ``starts`` random W.
    Returns the distinct S of exact numerical rank r with residual of (ii) < 1e-10. Indicative:
    a many-start method can miss solutions.
    """
    rho = np.asarray(rho, float)
    tau = np.asarray(tau, float)
    m = rho.shape[0]
    if not 1 <= rank <= m:
        raise ValueError(f"rank must lie in [1, {m}], got {rank}")
    rho_j, tau_j = jnp.asarray(rho), jnp.asarray(tau)
    w0 = lm_starts(np.random.default_rng(seed), starts, rank, m, apriori_bound(rho, tau))
    ws = np.asarray(jax.vmap(lambda w: levenberg_marquardt(w, rho_j, tau_j, lam, rank=rank, iters=iters))(jnp.asarray(w0)))
    found = []
    for w in ws:
        W = w.reshape(rank, m)
        S = W.T @ W
        if not np.all(np.isfinite(S)):
            continue
        res = np.linalg.norm(equilibrium_residual(S, rho, tau, lam)) / (1 + np.linalg.norm(S) ** 2)
        if res > 1e-10 or numerical_rank(S) != rank:
            continue
        found.append(S)
    return dedup_matrices(found, 1e-6)
