"""Prop 4.5 numerically — all finite complex solutions by total-degree homotopy continuation (JAX).

H(x, t) = (1 − t) γ g(x) + t f(x) with f Prop 4.5's system in the N = m(m+1)/2 entries of S and
g_i = x_i² − 1, tracked from the 2^N roots of g at t = 0 to t = 1 with a random complex γ (the
"γ-trick"), by a vmapped adaptive RK4 predictor and Newton corrector. Finite endpoints are polished,
closed under conjugation and de-duplicated. The finite complex count for generic data is 2, 6, 24
for m = 1, 2, 3 (as the exact solver) and 124 for m = 4 (:data:`OBSERVED_COMPLEX_COUNTS`).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from dualjax import checks
from dualjax.linear.equilibria.newton import newton_batch, polish
from dualjax.linear.equilibria.system import (
    apriori_bound,
    bezout_bound,
    dedup_matrices,
    num_unknowns,
    residual_vec,
    sym_from_vec,
)


def path_start(x0, h0: float = 0.01):
    """The tracker's carry at t = 0: (x, t, h, steps, status) with the first step h = ``h0``."""
    return (x0, jnp.zeros(()), jnp.asarray(h0), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def path_step(H, H_t, carry, *, max_norm, solve=jnp.linalg.solve, tol: float = 1e-9):
    """One predictor–corrector step of a homotopy H(x, t) = 0 (H holomorphic in x, H_t its t-derivative).

    Predictor: RK4 on dx/dt = −H_x⁻¹ H_t; corrector: 3 Newton steps; the step is accepted if the
    corrector contracts (its third correction below ``tol`` relative), then doubled (×1.8, at most
    0.1), else halved. ``carry`` is
    (x, t, h, steps, status); status becomes 1 at t = 1, 2 past ``max_norm`` (the path goes to
    infinity), 3 once the step is below 1e-13, and stays 0 while the path runs. ``solve(A, b)``
    solves the N×N linear systems (LAPACK by default; the batched solver passes an unrolled one).
    """

    def Hx(x, t):
        return jax.jacfwd(H, holomorphic=True)(x, t)

    def velocity(x, t):
        return -solve(Hx(x, t), H_t(x, t))

    def corrector(x, t):
        def body(carry, _):
            x, _ = carry
            dx = -solve(Hx(x, t), H(x, t))
            return (x + dx, jnp.linalg.norm(dx)), jnp.linalg.norm(dx)

        (x, last), norms = jax.lax.scan(body, (x, jnp.zeros(())), None, length=3)
        return x, norms

    x, t, h, steps, status = carry
    h = jnp.minimum(h, 1.0 - t)
    k1 = velocity(x, t)
    k2 = velocity(x + 0.5 * h * k1, t + 0.5 * h)
    k3 = velocity(x + 0.5 * h * k2, t + 0.5 * h)
    k4 = velocity(x + h * k3, t + h)
    xp = x + h * (k1 + 2 * k2 + 2 * k3 + k4) / 6
    xc, norms = corrector(xp, t + h)
    scale = 1.0 + jnp.linalg.norm(xc)
    ok = (
        jnp.all(jnp.isfinite(xc))
        & (norms[0] < 0.1 * scale)
        & (norms[2] < tol * scale)
        & (norms[2] <= norms[0])
    )
    x = jnp.where(ok, xc, x)
    t = jnp.where(ok, t + h, t)
    h = jnp.where(ok, jnp.minimum(h * 1.8, 0.1), h * 0.5)
    big = jnp.linalg.norm(x) > max_norm
    status = jnp.where(t >= 1.0, 1, jnp.where(big, 2, jnp.where(h < 1e-13, 3, 0))).astype(jnp.int32)
    return x, t, h, steps + 1, status


def track_path(H, H_t, x0, *, max_steps, max_norm):
    """One path of a homotopy H(x, t) = 0 from x(0) = x0 to t = 1 by :func:`path_step` (pure; vmap it
    over paths). Returns ``(x, status, steps)``; status 0 means the step budget ran out."""

    def cond(c):
        return (c[4] == 0) & (c[3] < max_steps)

    x, _, _, steps, status = jax.lax.while_loop(cond, lambda c: path_step(H, H_t, c, max_norm=max_norm),
                                                path_start(x0))
    return x, status, steps


def _track_paths(rho, tau, lam, gamma, starts, *, max_steps, max_norm):
    """Track H(x, t) = (1 − t) γ g(x) + t f(x), g_i = x_i² − 1, from t = 0 to 1 (vmapped :func:`track_path`).

    Paths whose norm passes ``max_norm`` go to infinity (the system has solutions at infinity,
    so most of the 2^N paths do).
    """
    m = rho.shape[0]

    def f(x):
        return residual_vec(x, rho, tau, lam, m)

    def g(x):
        return x * x - 1.0

    def H(x, t):
        return (1 - t) * gamma * g(x) + t * f(x)

    def H_t(x, t):
        return f(x) - gamma * g(x)

    return jax.vmap(lambda x0: track_path(H, H_t, x0, max_steps=max_steps, max_norm=max_norm))(starts)


_track_jit = jax.jit(_track_paths, static_argnames=("max_steps",))


def _dedup(points: np.ndarray, tol: float) -> np.ndarray:
    kept: list[np.ndarray] = []
    for p in points:
        if not any(np.linalg.norm(p - q) <= tol * (1 + np.linalg.norm(q)) for q in kept):
            kept.append(p)
    return np.asarray(kept).reshape(-1, points.shape[-1] if points.ndim > 1 else 0)


# Finite complex solution counts of Prop 4.5's system for generic data, as measured: m ≤ 3 by
# Gröbner bases over ℚ (exact), m = 4 by homotopy (5 random γ, 2 instances: 124 each time).
# m = 1, 2, 3 fit (m+1)!, but m = 4 gives 124, not 5! = 120: the factorial pattern is not a law.
OBSERVED_COMPLEX_COUNTS = {1: 2, 2: 6, 3: 24, 4: 124}


def expected_complex_count(m: int) -> int | None:
    """The generic finite complex solution count, where measured (:data:`OBSERVED_COMPLEX_COUNTS`)."""
    return OBSERVED_COMPLEX_COUNTS.get(m)


@dataclass(frozen=True)
class HomotopySolution:
    """Result of :func:`solve_homotopy`: finite complex roots, the real ones, and path statistics."""

    complex_roots: np.ndarray  # (K, N) complex
    real: list
    paths: int
    diverged: int
    failed: int
    restarts: int
    seconds: float

    @property
    def complex_count(self) -> int:
        return int(self.complex_roots.shape[0])


@checks.float64
def total_degree_roots(rho, tau, lam, *, seed: int = 0, restarts: int = 4, max_steps: int = 4000,
                       max_norm: float = 1e7, target: int | None = None, real_data: bool = True):
    """The finite complex roots of Prop 4.5's system for data (ρ, τ, λ), real or complex, by
    total-degree homotopy (:func:`_track_paths`, random γ per restart).

    Ends are polished by complex Newton and kept if their residual is < 1e-8 (1 + ‖x‖²); for
    ``real_data`` the roots are closed under conjugation, so a root whose conjugate path was lost
    is recovered for free. Restarts stop once ``target`` roots are found (default the observed
    generic count). Returns ``(roots (K, N) complex, diverged, failed, restarts used)``.
    """
    rho_c, tau_c = jnp.asarray(rho, jnp.complex128), jnp.asarray(tau, jnp.complex128)
    m = rho_c.shape[0]
    N = num_unknowns(m)
    if target is None:
        target = expected_complex_count(m) or bezout_bound(m)
    starts = np.array(list(itertools.product([1.0, -1.0], repeat=N)), dtype=complex)
    rng = np.random.default_rng(seed)
    roots = np.zeros((0, N), complex)
    diverged = failed = used = 0
    f = jax.vmap(lambda z: residual_vec(z, rho_c, tau_c, lam, m))
    for used in range(1, restarts + 1):
        gamma = np.exp(2j * np.pi * rng.uniform())
        x, status, _ = _track_jit(rho_c, tau_c, lam, jnp.asarray(gamma), jnp.asarray(starts),
                                  max_steps=max_steps, max_norm=max_norm)
        x, status = np.asarray(x), np.asarray(status)
        diverged, failed = int(np.sum(status == 2)), int(np.sum((status == 0) | (status == 3)))
        ends = x[status == 1]
        if len(ends):
            ends = np.asarray(newton_batch(jnp.asarray(ends), rho_c, tau_c, lam, m=m, iters=8))
            res = np.linalg.norm(np.asarray(f(jnp.asarray(ends))), axis=1)
            ends = ends[np.isfinite(res) & (res < 1e-8 * (1 + np.linalg.norm(ends, axis=1) ** 2))]
            if real_data:
                ends = np.concatenate([ends, ends.conj()])
            roots = _dedup(np.concatenate([roots, ends]), 1e-7)
        if roots.shape[0] >= target:
            break
    return roots, diverged, failed, used


@checks.float64
def solve_homotopy(rho, tau, lam, *, seed: int = 0, restarts: int = 4, max_steps: int = 4000,
                   max_norm: float = 1e7, target: int | None = None) -> HomotopySolution:
    """All finite complex solutions of Prop 4.5's system by total-degree homotopy continuation.

    2^{m(m+1)/2} paths from the roots of x_i² = 1, random complex γ ("γ-trick": with probability
    one no path meets a singularity for t < 1). Finite endpoints are polished by complex Newton on
    the float64 data and de-duplicated. Restarts with a fresh γ add any root that was missed, until
    ``target`` roots (default the observed generic count, :data:`OBSERVED_COMPLEX_COUNTS`) are found
    or ``restarts`` are used. Real roots (|Im| < 1e-8 (1 + |x|)) are polished as real matrices.
    """
    rho = np.asarray(rho, float)
    tau = np.asarray(tau, float)
    m = rho.shape[0]
    bound = apriori_bound(rho, tau)
    t0 = time.perf_counter()
    roots, diverged, failed, used = total_degree_roots(rho, tau, lam, seed=seed, restarts=restarts,
                                                       max_steps=max_steps, max_norm=max_norm, target=target)
    if bound > 1e5:
        import warnings

        warnings.warn(f"a-priori bound ‖S‖ ≤ {bound:.3g} is large: real roots may lie near the path cut-off "
                      f"max_norm={max_norm:g}", RuntimeWarning, stacklevel=2)
    real = []
    for r in roots:
        if np.all(np.abs(r.imag) < 1e-8 * (1 + np.abs(r.real))):
            real.append(polish(sym_from_vec(r.real, m), rho, tau, lam))
    real = dedup_matrices(real)
    return HomotopySolution(roots, real, bezout_bound(m), diverged, failed, used, time.perf_counter() - t0)
