"""Prop 4.5 for a whole batch of instances: every equilibrium of K data sets (ρ_k, τ_k, λ_k) at once.

The Monte Carlo over general m (:mod:`dualjax.linear.montecarlo.general`) gives every trial its
own instance, so it needs the equilibria of 10⁴ instances, not of one. Everything here is vmapped
over instances (and over paths or starts within an instance) and runs as a few XLA calls:

* **full rank, m = 1**: Prop 4.11 in closed form, S = r₂², r₁² (exact);
* **full rank, 2 ≤ m ≤ 3** (:data:`HOMOTOPY_MAX_M`): a *parameter homotopy* (coefficient-parameter
  continuation). The finite complex solutions of Prop 4.5's system (ρS + λI)(Sρ + λI) = τᵀSτ for
  one generic complex instance p₀ = (ρ₀, τ₀, λ₀) are found once per m by total-degree homotopy
  (:func:`start_system`, 6 / 24 roots for m = 2 / 3); each is then tracked along
  p(t) = (1 − t) p₀ + t p_k to every instance p_k with the predictor–corrector of
  :func:`~dualjax.linear.equilibria.homotopy.path_step` (lane-wise, :mod:`~dualjax.linear.equilibria.lanes`).
  Because p₀ is generic and complex, the segment misses the discriminant locus with probability
  one, so no path meets a singularity or goes to infinity before t = 1: D paths per instance
  instead of 2^{m(m+1)/2}. An instance whose D ends are D distinct finite roots is ``complete``
  (every real solution is then found); the others are tracked again along a bent path through a
  random complex p_mid, and the roots merged;
* **full rank, m ≥ 4**: many-start Levenberg–Marquardt as for rank r < m (real roots only; at m = 4
  the total-degree homotopy of the start system took minutes and found 123 of the 124 roots, so
  the parameter homotopy is not used there);
* **rank r < m**: equation (ii) M S M = S τᵀ S τ in the factor W ∈ ℝ^{r×m}, S = WᵀW, by many-start
  Levenberg–Marquardt (:func:`~dualjax.linear.equilibria.newton.levenberg_marquardt`), vmapped
  over instances and starts: *indicative*, it can miss solutions;
* **the origin** S = 0, always an equilibrium.

:func:`enumerate_batch` returns a :class:`BatchEnumeration` of padded arrays, each instance's
components sorted by rank then trace (descending), with the Loewner-maximal full-rank component
marked (S_max ⪰ S_k for every other full-rank S_k; MATH.md §4 observes it is the stable one).
"""

from __future__ import annotations

import functools
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dualjax import checks
from dualjax.linear.equilibria.homotopy import expected_complex_count, path_start, path_step, total_degree_roots
from dualjax.linear.equilibria.lanes import (
    block_fn,
    chunked,
    freeze,
    iterate_lanes,
    prop45_residual,
    rank_residual_small,
    small_solve,
    sym,
)
from dualjax.linear.equilibria.newton import levenberg_marquardt, lm_starts
from dualjax.linear.equilibria.system import apriori_bound
from dualjax.linear.spheres import discriminant, radii

# Tolerances: a root is real if |Im x| < REAL_TOL (1 + |x|); two solutions are one if
# ‖S − T‖ ≤ SAME_TOL (1 + ‖T‖); a solution is accepted if equation (ii) holds to RESIDUAL_TOL.
REAL_TOL, SAME_TOL, RESIDUAL_TOL = 1e-8, 1e-7, 1e-10
# The largest m whose full-rank solutions come from the parameter homotopy (module doc).
HOMOTOPY_MAX_M = 3
# The parameter homotopy's first step in t, and its corrector tolerance along the path (looser than
# the total-degree tracker's 1e-9: 30 % fewer steps and fewer failed paths at m = 3; every end is
# polished by Newton to 1e-8 or dropped).
H0, PATH_TOL = 0.05, 1e-7


class StartSystem(NamedTuple):
    """A generic complex instance p₀ = (ρ₀, τ₀, λ₀) of Prop 4.5's system and all its finite roots (D, N)."""

    rho: np.ndarray
    tau: np.ndarray
    lam: complex
    roots: np.ndarray


@functools.lru_cache(maxsize=8)
@checks.float64
def start_system(m: int, seed: int = 0, restarts: int = 20) -> StartSystem:
    """The start of the parameter homotopy for size m: random complex ρ₀ (complex symmetric), τ₀, λ₀
    and their finite roots by total-degree homotopy, restarted until the generic count
    (:func:`~dualjax.linear.equilibria.homotopy.expected_complex_count`) is reached. Cached per (m, seed)."""
    target = expected_complex_count(m)
    if target is None:
        raise ValueError(f"the parameter homotopy needs the generic root count, known for m <= 4; got m={m}")
    rng = np.random.default_rng(10_007 * m + seed)
    G = rng.standard_normal((m, m)) + 1j * rng.standard_normal((m, m))
    rho0 = (G + G.T) / 2
    tau0 = rng.standard_normal((m, m)) + 1j * rng.standard_normal((m, m))
    lam0 = complex(rng.standard_normal(), rng.standard_normal())
    roots, *_ = total_degree_roots(rho0, tau0, lam0, seed=seed, restarts=restarts, target=target, real_data=False)
    if roots.shape[0] != target:
        raise RuntimeError(f"start system for m={m}: found {roots.shape[0]} of {target} roots")
    return StartSystem(rho0, tau0, lam0, roots)


@functools.lru_cache(maxsize=8)
def _homotopy_block(m: int, max_steps: int, max_norm: float):
    """Parameter-homotopy steps for lanes ((x, t, h, steps, status), p₀, p₁): a root x of f(·; p₀)
    tracked along p(t) = (1 − t) p₀ + t p₁ (:func:`~dualjax.linear.equilibria.homotopy.path_step`)."""

    def lane_step(lane):
        carry, p0, p1 = lane
        dp = tuple(b - a for a, b in zip(p0, p1))

        def at(t):
            return tuple(a + t * d for a, d in zip(p0, dp))

        def H(x, t):
            return prop45_residual(x, *at(t), m)

        def H_t(x, t):
            return jax.jvp(lambda *p: prop45_residual(x, *p, m), at(t), dp)[1]

        running = (carry[4] == 0) & (carry[3] < max_steps)
        new = path_step(H, H_t, carry, max_norm=max_norm, solve=small_solve, tol=PATH_TOL)
        return freeze(running, new, carry), p0, p1

    return block_fn(lane_step, 8)


@functools.lru_cache(maxsize=8)
def _lm_block(m: int, rank: int):
    """Levenberg–Marquardt steps for lanes (w, steps, done, (ρ, τ, λ)) on equation (ii) in W (r×m)
    (:func:`~dualjax.linear.equilibria.newton.levenberg_marquardt`, one step at a time); a lane is
    done once ‖Φ(W)‖ ≤ 1e-14 (1 + ‖W‖²)."""

    def lane_step(lane):
        w, steps, done, data = lane
        new = levenberg_marquardt(w, *data, rank=rank, iters=1, solve=small_solve, residual=rank_residual_small)
        res = jnp.linalg.norm(rank_residual_small(new, *data, rank))
        finished = res <= 1e-14 * (1 + jnp.sum(new * new))
        return freeze(~done, (new, steps + 1, finished), (w, steps, done)) + (data,)

    return block_fn(lane_step, 10)


@functools.lru_cache(maxsize=8)
def _newton_fn(m: int, iters: int, complex_: bool):
    """Jitted, vmapped: ``iters`` Newton steps on Prop 4.5's system per lane ((x, ρ, τ, λ) per lane,
    real or complex) and the residual norm after them (a non-finite step is not taken)."""

    def one(lane):
        x, r, t, l = lane
        f = functools.partial(prop45_residual, rho=r, tau=t, lam=l, m=m)
        for _ in range(iters):
            dx = small_solve(jax.jacfwd(f, holomorphic=complex_)(x), -f(x))
            x = jnp.where(jnp.all(jnp.isfinite(dx)), x + dx, x)
        return x, jnp.linalg.norm(f(x))

    return jax.jit(jax.vmap(one))


def _track(x0, p0, p1, m: int, max_steps: int, max_norm: float):
    """Roots x0 (L, N) of f(·; p₀) tracked to f(·; p₁) (p₀, p₁: per-lane (ρ, τ, λ), complex) and
    polished: x (L, N) and ok (L,) (the path reached t = 1 and the residual is < 1e-8 (1 + ‖x‖²))."""
    p0, p1 = (tuple(np.asarray(a, np.complex128) for a in p) for p in (p0, p1))
    start = tuple(np.asarray(c) for c in jax.vmap(lambda x: path_start(x, H0))(jnp.asarray(x0, jnp.complex128)))
    carry, *_ = iterate_lanes(_homotopy_block(m, max_steps, max_norm), (start, p0, p1),
                              lambda s: (s[0][4] == 0) & (s[0][3] < max_steps), max_rounds=max_steps)
    x, res = chunked(_newton_fn(m, 3, True), (carry[0],) + p1)
    return x, (carry[4] == 1) & np.isfinite(res) & (res < 1e-8 * (1 + np.linalg.norm(x, axis=-1) ** 2))


def full_rank_batch(rho, tau, lam, *, seed: int = 0, max_steps: int = 2000, max_norm: float = 1e8):
    """Real full-rank solutions of Prop 4.5 for every instance.

    Returns ``(S (K, C, m, m) with NaN where no real root, complex_found (K,), complete (K,))``.
    m = 1: Prop 4.11's closed form (C = 2). m ≥ 2: the parameter homotopy from start system ``seed``
    (:func:`start_system`, D roots). Instances with fewer than D distinct roots are tracked again
    along a bent path, p₀ → p_mid → p_k through a random complex p_mid, and the roots merged (C = 2D).
    """
    K, m = rho.shape[0], rho.shape[-1]
    if m == 1:  # Prop 4.11: S = r₂², r₁² when Δ ≥ 0
        r1, r2 = (np.asarray(r) for r in radii(rho[:, 0, 0], tau[:, 0, 0], lam))
        ok = np.asarray(discriminant(rho[:, 0, 0], tau[:, 0, 0], lam)) >= 0
        S = np.where(ok[:, None], np.stack([r2**2, r1**2], axis=1), np.nan)[..., None, None]
        return S, np.full(K, 2), np.ones(K, bool)
    start = start_system(m, seed)
    D = start.roots.shape[0]
    p0 = (start.rho, start.tau, start.lam)
    targets = tuple(np.repeat(np.asarray(a, np.complex128), D, axis=0) for a in (rho, tau, lam))
    x, ok = _track(np.tile(start.roots, (K, 1)), tuple(np.broadcast_to(a, (K * D,) + np.shape(a)) for a in p0),
                   targets, m, max_steps, max_norm)
    x, ok = x.reshape(K, D, -1), ok.reshape(K, D)
    again = np.flatnonzero(_distinct(x, ok, SAME_TOL).sum(axis=1) < D)
    x, ok = np.concatenate([x, np.zeros_like(x)], axis=1), np.concatenate([ok, np.zeros_like(ok)], axis=1)
    if again.size:
        rng = np.random.default_rng([seed, m, 1])
        mid = tuple(a + 0.5 * (rng.standard_normal(np.shape(a)) + 1j * rng.standard_normal(np.shape(a))) for a in p0)
        mid = (mid[0] + mid[0].T) / 2, mid[1], mid[2]
        x_mid, ok_mid = _track(start.roots, tuple(np.broadcast_to(a, (D,) + np.shape(a)) for a in p0),
                               tuple(np.broadcast_to(a, (D,) + np.shape(a)) for a in mid), m, max_steps, max_norm)
        if ok_mid.all():
            x2, ok2 = _track(np.tile(x_mid, (again.size, 1)),
                             tuple(np.broadcast_to(a, (again.size * D,) + np.shape(a)) for a in mid),
                             tuple(np.repeat(np.asarray(a)[again], D, axis=0).astype(np.complex128) for a in (rho, tau, lam)),
                             m, max_steps, max_norm)
            x[again, D:], ok[again, D:] = x2.reshape(again.size, D, -1), ok2.reshape(again.size, D)
    distinct = _distinct(x, ok, SAME_TOL)
    found = distinct.sum(axis=1)
    real = distinct & np.all(np.abs(x.imag) < REAL_TOL * (1 + np.abs(x)), axis=-1)
    C = x.shape[1]
    xr, _ = chunked(_newton_fn(m, 2, False), (np.where(real[..., None], x.real, 0.0).reshape(K * C, -1),)
                    + tuple(np.repeat(np.asarray(a, float), C, axis=0) for a in (rho, tau, lam)))
    S = np.asarray(jax.vmap(lambda z: sym(z, m))(jnp.asarray(xr))).reshape(K, C, m, m)
    return np.where(real[..., None, None], S, np.nan), found, found == D


def rank_deficient_batch(rho, tau, lam, rank: int, *, starts: int = 32, seed: int = 0, iters: int = 150):
    """Solutions of equation (ii) with rank S = r for every instance, from ``starts`` random factors each
    (:func:`~dualjax.linear.equilibria.newton.lm_starts`, ‖S‖ log-uniform over 10⁻⁴ … 1.5 × the a-priori
    bound, so small partial-collapse equilibria are reached too), at most ``iters`` LM steps: S (K, starts, m, m),
    NaN where a start failed (residual of (ii) ≥ 1e-10 or numerical rank ≠ r). Duplicates are left in."""
    K, m = rho.shape[0], rho.shape[-1]
    w0 = lm_starts(np.random.default_rng([seed, rank]), starts, rank, m, apriori_bound(rho, tau), spread=(1e-4, 1.5),
                   log=True)
    data = tuple(np.repeat(np.asarray(a, float), starts, axis=0) for a in (rho, tau, lam))
    L = K * starts
    lanes = (w0.reshape(L, -1), np.zeros(L, np.int32), np.zeros(L, bool), data)
    w, *_ = iterate_lanes(_lm_block(m, rank), lanes, lambda s: ~s[2] & (s[1] < iters), max_rounds=iters)
    W = w.reshape(K, starts, rank, m)
    S = np.swapaxes(W, -1, -2) @ W
    with np.errstate(invalid="ignore", over="ignore"):
        ok = np.all(np.isfinite(S), axis=(-2, -1))
        S = np.where(ok[..., None, None], S, 0.0)
        ok &= ii_residual(S, rho[:, None], tau[:, None], lam[:, None]) < RESIDUAL_TOL
        ok &= numerical_ranks(S) == rank
    return np.where(ok[..., None, None], S, np.nan)


def _distinct(x: np.ndarray, valid: np.ndarray, tol: float) -> np.ndarray:
    """keep[k, i]: x[k, i] is valid and no valid x[k, j], j < i, lies within tol (1 + ‖x[k, j]‖) of it
    (x: (K, C, d); the clusters of a solver are tight, so this is the greedy de-duplication)."""
    x = np.where(valid[..., None], x, 0)
    sq = np.sum(np.abs(x) ** 2, axis=-1)
    gram = np.real(np.einsum("kid,kjd->kij", x, np.conj(x)))
    dist = np.sqrt(np.maximum(sq[:, :, None] + sq[:, None, :] - 2 * gram, 0))
    close = dist <= tol * (1 + np.sqrt(sq)[:, None, :])
    earlier = np.tril(np.ones(close.shape[1:], bool), -1)  # [i, j] with j < i
    dup = np.any(close & earlier & valid[:, None, :], axis=2)
    return valid & ~dup


def _vec(S: np.ndarray) -> np.ndarray:
    return S.reshape(S.shape[:-2] + (-1,))


def ii_residual(S, rho, tau, lam) -> np.ndarray:
    """Equation (ii) relative: ‖M S M − S τᵀ S τ‖_F / (1 + ‖S‖²), M = Sρ + λI, for stacked S (..., m, m)
    with data broadcast over the leading axes (the residual :class:`~dualjax.linear.equilibria.Equilibrium` reports)."""
    eye = np.eye(S.shape[-1])
    M = S @ rho + lam[..., None, None] * eye
    R = M @ S @ M - S @ np.swapaxes(tau, -1, -2) @ S @ tau
    return np.linalg.norm(R, axis=(-2, -1)) / (1 + np.linalg.norm(S, axis=(-2, -1)) ** 2)


def numerical_ranks(S) -> np.ndarray:
    """Number of eigenvalues of each PSD S (..., m, m) above 1e-8 · max(1, ‖S‖)
    (:func:`~dualjax.linear.equilibria.system.numerical_rank`, stacked)."""
    w = np.linalg.eigvalsh((S + np.swapaxes(S, -1, -2)) / 2)
    return np.sum(w > 1e-8 * np.maximum(1.0, np.abs(w).max(axis=-1, keepdims=True)), axis=-1)


class BatchEnumeration(NamedTuple):
    """Every equilibrium component found for K instances (padded to E per instance).

    S: (K, E, m, m) Gram matrices S = AᵀA, NaN padding; rank: (K, E), −1 padding; count: (K,);
    residual: (K, E) equation (ii), relative; loewner_max: (K,) index of the full-rank component with
    S_max ⪰ every other full-rank one (−1: none, or no full-rank component); complex_found,
    complete: (K,) the full-rank roots tracked (all found if complete); seconds: time per part.
    """

    S: np.ndarray
    rank: np.ndarray
    count: np.ndarray
    residual: np.ndarray
    loewner_max: np.ndarray
    complex_found: np.ndarray
    complete: np.ndarray
    seconds: dict


def loewner_maximal(S: np.ndarray, valid: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Index i with λ_min(S_i − S_j) ≥ −tol (1 + ‖S_j‖) for every valid j (the first such), else −1;
    S (K, C, m, m), valid (K, C)."""
    Sz = np.where(valid[..., None, None], S, 0.0)
    gap = np.linalg.eigvalsh(Sz[:, :, None] - Sz[:, None, :])[..., 0]  # [k, i, j]
    ok = (gap >= -tol * (1 + np.linalg.norm(Sz, axis=(-2, -1)))[:, None, :]) | ~valid[:, None, :]
    is_max = valid & np.all(ok, axis=2)
    return np.where(is_max.any(axis=1), np.argmax(is_max, axis=1), -1)


@checks.float64
def enumerate_batch(rho, tau, lam, *, rank_deficient: bool = True, starts: int = 32, seed: int = 0,
                    start: int = 0) -> BatchEnumeration:
    """Every SG / EMA equilibrium component of K instances: full-rank (PD) solutions of Prop 4.5,
    rank-deficient solutions of (ii) if ``rank_deficient`` (``starts`` LM starts per rank, drawn with
    ``seed``), and the origin. ρ (K, m, m) positive definite, τ (K, m, m), λ (K,) > 0; ``start``
    picks the homotopy's start system (:func:`start_system`, cached; module doc for the methods)."""
    rho, tau, lam = (np.asarray(a, float) for a in (rho, tau, lam))
    if rho.ndim != 3 or rho.shape[1] != rho.shape[2] or tau.shape != rho.shape or lam.shape != rho.shape[:1]:
        raise ValueError(f"need rho, tau of shape (K, m, m) and lam of shape (K,); got {rho.shape}, {tau.shape}, "
                         f"{lam.shape}")
    if np.any(lam <= 0) or not np.all(np.isfinite(lam)):
        raise ValueError(f"lam must be > 0 (equation (i) needs λ > 0), got min {lam.min()}")
    if np.any(np.linalg.eigvalsh(rho)[:, 0] <= 0):
        raise ValueError("rho must be positive definite in every instance")
    K, m = rho.shape[0], rho.shape[-1]
    seconds = {}
    t0 = time.perf_counter()
    if m <= HOMOTOPY_MAX_M:
        full, found, complete = full_rank_batch(rho, tau, lam, seed=start)
    else:  # no generic root count known: real roots only, many-start
        full = rank_deficient_batch(rho, tau, lam, m, starts=starts, seed=seed)
        found, complete = np.full(K, -1), np.zeros(K, bool)
    seconds["full_rank"] = time.perf_counter() - t0
    with np.errstate(invalid="ignore"):
        eig = np.linalg.eigvalsh(np.nan_to_num(full))
        pd = np.isfinite(full).all(axis=(-2, -1)) & (eig[..., 0] > 1e-10 * np.maximum(1, np.abs(eig).max(axis=-1)))
    groups = [(full, pd & _distinct(_vec(np.nan_to_num(full)), pd, SAME_TOL), np.full(pd.shape, m))]
    t0 = time.perf_counter()
    for r in range(1, m) if rank_deficient else ():
        S_r = rank_deficient_batch(rho, tau, lam, r, starts=starts, seed=seed)
        ok = np.isfinite(S_r).all(axis=(-2, -1))
        groups.append((S_r, _distinct(_vec(np.nan_to_num(S_r)), ok, 1e-6), np.full(ok.shape, r)))
    seconds["rank_deficient"] = time.perf_counter() - t0
    groups.append((np.zeros((K, 1, m, m)), np.ones((K, 1), bool), np.zeros((K, 1), int)))
    S = np.nan_to_num(np.concatenate([g[0] for g in groups], axis=1))
    valid = np.concatenate([g[1] for g in groups], axis=1)
    rank = np.concatenate([g[2] for g in groups], axis=1)
    trace = np.trace(S, axis1=-2, axis2=-1)
    order = np.lexsort((-trace, -rank, ~valid), axis=1)  # valid first, then rank, then trace (descending)
    S, valid, rank = (np.take_along_axis(a, order[..., None, None] if a.ndim == 4 else order, axis=1)
                      for a in (S, valid, rank))
    E = int(valid.sum(axis=1).max())
    S, valid, rank = S[:, :E], valid[:, :E], rank[:, :E]
    residual = np.where(valid, ii_residual(S, rho[:, None], tau[:, None], lam[:, None]), np.nan)
    loewner = loewner_maximal(S, valid & (rank == m))
    return BatchEnumeration(np.where(valid[..., None, None], S, np.nan), np.where(valid, rank, -1),
                            valid.sum(axis=1), residual, loewner, found, complete, seconds)


