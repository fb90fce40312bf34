"""Prop 4.5 / Cor 4.6 / Prop 4.7 / Prop 4.11 — the SG and EMA equilibria of the linear model.

With S = AᵀA (m×m), M = Sρ + λI and λ > 0, (A, B) is an SG equilibrium (and (A, B, C = A) an EMA
one) **iff** (MATH.md §4)

    (i)  B = A τ M⁻¹ Aᵀ,        (ii)  M S M = S τᵀ S τ.

For full rank (rank A = m), (ii) is equivalent to the m(m+1)/2 quadratic equations of Prop 4.5,

    (ρS + λI)(Sρ + λI) = τᵀ S τ         (τᵀ on the *left*; the transposed form is wrong),

whose number of solutions is bounded by Bézout, 2^{m(m+1)/2}. The finite complex count for generic
data is 2, 6, 24 for m = 1, 2, 3 (Gröbner, exact) and 124 for m = 4 (homotopy, measured), so the
(m+1)! pattern of m ≤ 3 does not continue. Real solutions with S ≻ 0 give the equilibrium
components of Cor 4.6,

    𝓔_k = {(U S_k^{1/2}, U S_k^{1/2} τ M_k⁻¹ S_k^{1/2} Uᵀ) : UᵀU = I_m},   dim 𝓔_k = nm − m(m+1)/2,

single orbits of (A, B) ↦ (QA, QBQᵀ), Q ∈ O(n). Rank-deficient equilibria (rank S = r < m, not in
the summary) solve (ii) with rank S = r; their orbits have dimension nr − r(r+1)/2.

Solvers
-------
* :func:`solve_exact` — sympy: Gröbner basis over ℚ (grevlex, then FGLM to lex) on rationalised
  data, the univariate polynomial's real roots isolated exactly, the other coordinates read from the
  shape-lemma form, then each real root polished by Newton on the *original* float data. Exact
  counts; < 1 s for m = 2; for m = 3 8–15 s on small-integer data but minutes on float data
  rationalised to denominators ~100 (coefficient growth), so m = 3 defaults to homotopy.
* :func:`solve_homotopy` — total-degree homotopy continuation in JAX (γ-trick, vmapped adaptive
  predictor–corrector over the 2^{m(m+1)/2} start paths), complex roots de-duplicated and polished.
* :func:`solve_newton` — many-start damped Newton on the real system (large m).
* :func:`rank_deficient_solutions` — many-start Levenberg–Marquardt on S = WᵀW, W ∈ ℝ^{r×m}, for
  equation (ii) (indicative: it can miss solutions).

:func:`enumerate_equilibria` runs the right ones and returns every PSD equilibrium (with rank and
residual); :func:`existence` is Prop 4.7's a-priori check.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dualjax import checks
from dualjax.linear import model
from dualjax.linear.spheres import (  # noqa: F401  (re-exported: Prop 4.11, m = 1)
    discriminant,
    max_stable_step,
    predictor_on_sphere,
    radial_eigenvalue,
    radii,
)


_x64 = checks.float64


# --------------------------------------------------------------------------- data handling

def _data(mom: model.Moments | Any, lam) -> tuple[np.ndarray, np.ndarray, float]:
    """(ρ, τ, λ) as float64 numpy, validated: ρ ≻ 0, τ square, λ > 0 (needed for (i))."""
    rho = checks.check_psd(np.asarray(mom.rho), "rho", strict=True)
    tau = checks.check_square(np.asarray(mom.tau), rho.shape[0], "tau")
    lam = checks.check_lambda(lam)
    return (rho + rho.T) / 2, tau, lam


def num_unknowns(m: int) -> int:
    """N = m(m+1)/2, the number of entries of a symmetric m×m matrix."""
    return m * (m + 1) // 2


def bezout_bound(m: int) -> int:
    """Bézout's bound 2^{m(m+1)/2} on the number of isolated solutions of Prop 4.5's system."""
    return 2 ** num_unknowns(m)


def _triu(m: int):
    return np.triu_indices(m)


def sym_from_vec(x, m: int):
    """The symmetric m×m matrix whose upper triangle (row-major) is ``x`` (works on jnp/np arrays)."""
    iu = _triu(m)
    xp = jnp if isinstance(x, jax.Array) else np
    S = xp.zeros((m, m), dtype=x.dtype)
    if xp is jnp:
        S = S.at[iu].set(x)
        return S + jnp.triu(S, 1).T
    S[iu] = x
    return S + np.triu(S, 1).T


def vec_from_sym(S) -> Any:
    """Upper triangle (row-major) of a symmetric matrix."""
    return S[_triu(S.shape[-1])]


def full_rank_residual(S, rho, tau, lam):
    """Prop 4.5: (ρS + λI)(Sρ + λI) − τᵀSτ (symmetric m×m; zero at full-rank equilibria)."""
    xp = jnp if isinstance(S, jax.Array) else np
    eye = xp.eye(S.shape[-1])
    return (rho @ S + lam * eye) @ (S @ rho + lam * eye) - tau.T @ S @ tau


def equilibrium_residual(S, rho, tau, lam):
    """Equation (ii): M S M − S τᵀ S τ with M = Sρ + λI (zero at equilibria of any rank)."""
    xp = jnp if isinstance(S, jax.Array) else np
    M = S @ rho + lam * xp.eye(S.shape[-1])
    return M @ S @ M - S @ tau.T @ S @ tau


def apriori_bound(rho, tau) -> float:
    """Prop 4.7 (MATH.md §4): every full-rank solution S ⪰ 0 has ‖S‖₂ ≤ ‖τ‖₂² / λ_min(ρ)²."""
    rho = np.asarray(rho, float)
    return float(np.linalg.norm(np.asarray(tau, float), 2) ** 2 / np.linalg.eigvalsh(rho).min() ** 2)


def existence(mom, lam) -> dict:
    """Prop 4.7 — a-priori existence check for full-rank (positive definite) equilibria.

    With u a top unit eigenvector of S and s = ‖S‖₂, (s λ_min(ρ) + λ)² ≤ s ‖τ‖₂², so a full-rank
    equilibrium can exist only if ‖τ‖₂² ≥ 4 λ λ_min(ρ) (for m = 1 this is exactly Δ ≥ 0), and then
    ‖S‖₂ ≤ ‖τ‖₂²/λ_min(ρ)². The condition is necessary, not sufficient: whether a solution exists
    is settled by the enumeration (:func:`enumerate_equilibria` fills in ``exists``).
    """
    rho, tau, lam = _data(mom, lam)
    tau_norm2 = float(np.linalg.norm(tau, 2) ** 2)
    lmin = float(np.linalg.eigvalsh(rho).min())
    necessary = tau_norm2 >= 4 * lam * lmin
    return {
        "tau_norm_sq": tau_norm2,
        "threshold_4_lam_lmin": 4 * lam * lmin,
        "necessary_condition_holds": bool(necessary),
        "S_norm_bound": tau_norm2 / lmin**2,
    }


# --------------------------------------------------------------------------- Cor 4.6: points on the varieties

def gram_factor(S, rank: int | None = None, tol: float = 1e-10) -> np.ndarray:
    """W ∈ ℝ^{r×m} with WᵀW = S (r = numerical rank of S): W = Λ_r^{1/2} V_rᵀ."""
    S = np.asarray(S, float)
    w, V = np.linalg.eigh((S + S.T) / 2)
    order = np.argsort(w)[::-1]
    w, V = w[order], V[:, order]
    if rank is None:
        rank = int(np.sum(w > tol * max(1.0, float(abs(w).max()))))
    return np.sqrt(np.clip(w[:rank], 0, None))[:, None] * V[:, :rank].T


def predictor_at(A, mom, lam):
    """Equation (i): B = A τ (Sρ + λI)⁻¹ Aᵀ with S = AᵀA."""
    A = np.asarray(A, float)
    rho, tau = np.asarray(mom.rho, float), np.asarray(mom.tau, float)
    M = A.T @ A @ rho + lam * np.eye(rho.shape[0])
    return A @ tau @ np.linalg.solve(M, A.T)


def equilibrium_point(S, mom, lam, n: int, U=None, *, rank: int | None = None):
    """Cor 4.6: the point (A, B) = (U W, A τ M⁻¹ Aᵀ) of the component of S, with WᵀW = S.

    ``U`` (n×r, orthonormal columns) picks the point on the orbit; default the first r unit vectors.
    Full rank: W = S^{1/2} up to rotation, so A = U√S as in the paper.
    """
    checks.check_positive_int(n, "n")
    W = gram_factor(S, rank)
    r, m = W.shape
    if n < r:
        raise ValueError(f"n={n} is smaller than rank(S)={r}")
    U = np.eye(n, r) if U is None else np.asarray(U, float)
    checks.check_shape(U, (n, r), "U")
    A = U @ W
    return A, predictor_at(A, mom, lam)


def sample_variety(S, mom, lam, n: int, key, num: int = 8):
    """``num`` random points (A_i, B_i) of the component 𝓔_S: U Haar-random on the Stiefel manifold.

    Returns stacked arrays A (num, n, m) and B (num, n, n).
    """
    checks.check_positive_int(num, "num")
    r = gram_factor(S).shape[0]
    G = np.asarray(jax.random.normal(key, (num, n, max(r, 1)), dtype=jnp.float32), float)[..., :r]
    As, Bs = [], []
    for g in G:
        U, _ = np.linalg.qr(g) if r else (np.zeros((n, 0)), None)
        A, B = equilibrium_point(S, mom, lam, n, U)
        As.append(A)
        Bs.append(B)
    return np.stack(As), np.stack(Bs)


def field_residual(A, B, mom, lam) -> float:
    """‖SG field‖_F at (A, B) (Lemma 4.1), relative to 1 + ‖A‖² + ‖B‖²."""
    A = np.asarray(A, float)
    B = np.asarray(B, float)
    rho, tau = np.asarray(mom.rho, float), np.asarray(mom.tau, float)
    R = B @ A @ rho - A @ tau
    dA = B.T @ R + lam * A
    dB = R @ A.T + lam * B
    norm = math.sqrt(float(np.sum(dA**2) + np.sum(dB**2)))
    return norm / (1.0 + float(np.sum(A**2) + np.sum(B**2)))


# --------------------------------------------------------------------------- Newton polish (float64)

def _residual_vec(x, rho, tau, lam, m):
    return vec_from_sym(full_rank_residual(sym_from_vec(x, m), rho, tau, lam))


@_x64
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
        return _residual_vec(z, rho, tau, lam, m)

    def body(x, _):
        J = jax.jacfwd(f, holomorphic=jnp.iscomplexobj(x))(x)
        dx = jnp.linalg.lstsq(J, -f(x))[0]
        ok = jnp.all(jnp.isfinite(dx))
        return jnp.where(ok, x + dx, x), None

    return jax.lax.scan(body, x, None, length=iters)[0]


# --------------------------------------------------------------------------- exact solver (sympy)

@dataclass(frozen=True)
class ExactSolution:
    """Result of :func:`solve_exact`.

    complex_count: number of complex solutions with multiplicity (= degree of the lex univariate).
    real: the real symmetric solutions, polished on the original data (sorted by trace, descending).
    seconds: wall time of the Gröbner / FGLM step.
    rational_data: the (ρ, τ, λ) actually used by the exact computation.
    """

    complex_count: int
    real: list
    seconds: float
    rational_data: tuple


def _rationalize(a, max_den):
    return [[Fraction(float(v)).limit_denominator(max_den) for v in row] for row in np.atleast_2d(a)]


def _shape_form(G, gens, last):
    """(univariate in ``last``, {v: h_v(last)}, last) if the lex basis is in shape-lemma form, else None."""
    import sympy as sp

    lex = G.fglm("lex") if len(gens) > 1 else G
    polys = [sp.Poly(g, *gens) for g in lex.exprs]
    uni = [p for p in polys if p.free_symbols <= {last}]
    if len(uni) != 1 or len(polys) != len(gens):
        return None
    back = {}
    for p in polys:
        if p is uni[0]:
            continue
        lead = [v for v in gens if v != last and p.degree(v) == 1]
        expr = p.as_expr()
        if len(lead) != 1 or any(p.degree(v) for v in gens if v not in (lead[0], last)):
            return None
        v = lead[0]
        coeff = expr.coeff(v)
        if coeff.free_symbols:
            return None
        back[v] = -(expr - coeff * v) / coeff
    univariate = sp.Poly(uni[0].as_expr(), last)
    if sp.degree(sp.gcd(univariate, univariate.diff(last))) > 0:  # repeated roots: not radical
        return None
    return univariate, back, last


def solve_exact(rho, tau, lam, *, max_denominator: int = 100, digits: int = 40) -> ExactSolution:
    """All solutions of Prop 4.5's system by Gröbner basis over ℚ (sympy).

    The data are rationalised (``Fraction.limit_denominator(max_denominator)``; exact when the
    data are such rationals already). grevlex Gröbner basis, then FGLM to lex; for generic data
    the lex basis is in shape-lemma form (s_N univariate of degree D, s_i = h_i(s_N)), so D is the
    exact complex count and the real roots of the univariate are isolated exactly (Sturm /
    interval arithmetic). Each real root is evaluated to ``digits`` digits and then polished by
    Newton on the *given* float data, so that residuals refer to the data asked about.
    """
    import sympy as sp

    rho = np.asarray(rho, float)
    tau = np.asarray(tau, float)
    m = rho.shape[0]
    N = num_unknowns(m)
    R = sp.Matrix(_rationalize(rho, max_denominator))
    R = (R + R.T) / 2
    T = sp.Matrix(_rationalize(tau, max_denominator))
    L = sp.Rational(Fraction(float(lam)).limit_denominator(max_denominator * 100))
    s = sp.symbols(f"s0:{N}")
    S = sp.zeros(m)
    for k, (i, j) in enumerate(zip(*_triu(m))):
        S[i, j] = S[j, i] = s[k]
    E = (R * S + L * sp.eye(m)) * (S * R + L * sp.eye(m)) - T.T * S * T
    eqs = [sp.expand(E[i, j]) for i, j in zip(*_triu(m))]
    t0 = time.perf_counter()
    G = sp.groebner(eqs, *s, order="grevlex", domain="QQ")
    if not G.is_zero_dimensional:
        raise ValueError("the solution set of Prop 4.5's system is not finite for these data (non-generic)")
    shape = _shape_form(G, list(s), s[-1])
    rng = np.random.default_rng(0)
    for _ in range(3):  # not in shape position: separate the roots by a random linear form u
        if shape is not None:
            break
        u = sp.Symbol("u")
        c = [int(v) for v in rng.integers(1, 7, N)]
        Gu = sp.groebner(eqs + [u - sum(ci * si for ci, si in zip(c, s))], *s, u, order="grevlex", domain="QQ")
        shape = _shape_form(Gu, list(s) + [u], u)
    if shape is None:
        raise ValueError("could not bring the lex basis into shape position (non-radical or non-generic data); "
                         "use solve_homotopy")
    univariate, back, last = shape
    seconds = time.perf_counter() - t0
    real = []
    for root in univariate.real_roots(multiple=True):
        val = sp.N(root, digits)
        x = [float(sp.N(back[v].subs(last, val), digits)) if v != last else float(val) for v in s]
        Sx = sym_from_vec(np.asarray(x), m)
        real.append(polish(Sx, rho, tau, float(lam)))
    real.sort(key=lambda M: -np.trace(M))
    return ExactSolution(int(univariate.degree()), real, seconds, (R, T, L))


# --------------------------------------------------------------------------- homotopy continuation (JAX)

def _track_paths(rho, tau, lam, gamma, starts, *, max_steps, max_norm):
    """Track H(x, t) = (1 − t) γ g(x) + t f(x), g_i = x_i² − 1, from t = 0 to 1 (vmapped).

    Predictor: RK4 on dx/dt = −H_x⁻¹ H_t; corrector: 3 Newton steps; step doubled after
    successes and halved after failures. Paths whose norm passes ``max_norm`` go to infinity
    (the system has solutions at infinity, so most of the 2^N paths do).
    """
    m = rho.shape[0]

    def f(x):
        return _residual_vec(x, rho, tau, lam, m)

    def g(x):
        return x * x - 1.0

    def H(x, t):
        return (1 - t) * gamma * g(x) + t * f(x)

    def Hx(x, t):
        return jax.jacfwd(H, holomorphic=True)(x, t)

    def velocity(x, t):
        Ht = f(x) - gamma * g(x)
        return -jnp.linalg.solve(Hx(x, t), Ht)

    def corrector(x, t):
        def body(carry, _):
            x, _ = carry
            dx = -jnp.linalg.solve(Hx(x, t), H(x, t))
            return (x + dx, jnp.linalg.norm(dx)), jnp.linalg.norm(dx)

        (x, last), norms = jax.lax.scan(body, (x, jnp.zeros(())), None, length=3)
        return x, norms

    def one(x0):
        def cond(c):
            x, t, h, steps, status = c
            return (status == 0) & (steps < max_steps)

        def body(c):
            x, t, h, steps, status = c
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
                & (norms[2] < 1e-9 * scale)
                & (norms[2] <= norms[0])
            )
            x = jnp.where(ok, xc, x)
            t = jnp.where(ok, t + h, t)
            h = jnp.where(ok, jnp.minimum(h * 1.8, 0.1), h * 0.5)
            big = jnp.linalg.norm(x) > max_norm
            status = jnp.where(t >= 1.0, 1, jnp.where(big, 2, jnp.where(h < 1e-13, 3, 0))).astype(jnp.int32)
            return x, t, h, steps + 1, status

        init = (x0, jnp.zeros(()), jnp.asarray(0.01), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
        x, t, h, steps, status = jax.lax.while_loop(cond, body, init)
        return x, status, steps

    return jax.vmap(one)(starts)


_track_jit = jax.jit(_track_paths, static_argnames=("max_steps",))


@functools.partial(jax.jit, static_argnames=("m", "iters"))
def _newton_batch(xs, rho, tau, lam, *, m, iters):
    return jax.vmap(lambda x: _newton(x, rho, tau, lam, m=m, iters=iters))(xs)


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


@_x64
def solve_homotopy(rho, tau, lam, *, seed: int = 0, restarts: int = 4, max_steps: int = 4000,
                   max_norm: float = 1e7, target: int | None = None) -> HomotopySolution:
    """All finite complex solutions of Prop 4.5's system by total-degree homotopy continuation.

    2^{m(m+1)/2} paths from the roots of x_i² = 1, random complex γ ("γ-trick": with probability
    one no path meets a singularity for t < 1). Finite endpoints are polished by complex Newton on
    the float64 data and de-duplicated. Restarts with a fresh γ add any root that was missed, until
    ``target`` roots (default the observed generic count, :data:`OBSERVED_COMPLEX_COUNTS`) are found or ``restarts`` are used. Real roots
    (|Im| < 1e-8 (1 + |x|)) are polished as real matrices.
    """
    rho = np.asarray(rho, float)
    tau = np.asarray(tau, float)
    m = rho.shape[0]
    N = num_unknowns(m)
    if target is None:
        target = expected_complex_count(m) or bezout_bound(m)
    bound = apriori_bound(rho, tau)
    starts = np.array(list(itertools.product([1.0, -1.0], repeat=N)), dtype=complex)
    rng = np.random.default_rng(seed)
    roots = np.zeros((0, N), complex)
    t0 = time.perf_counter()
    diverged = failed = 0
    used = 0
    rho_c, tau_c = jnp.asarray(rho, jnp.complex128), jnp.asarray(tau, jnp.complex128)
    f = jax.vmap(lambda z: _residual_vec(z, rho_c, tau_c, lam, m))
    for used in range(1, restarts + 1):
        gamma = np.exp(2j * np.pi * rng.uniform())
        x, status, _ = _track_jit(jnp.asarray(rho, jnp.complex128), jnp.asarray(tau, jnp.complex128), lam,
                                  jnp.asarray(gamma), jnp.asarray(starts), max_steps=max_steps, max_norm=max_norm)
        x, status = np.asarray(x), np.asarray(status)
        diverged, failed = int(np.sum(status == 2)), int(np.sum((status == 0) | (status == 3)))
        ends = x[status == 1]
        if len(ends):
            ends = np.asarray(_newton_batch(jnp.asarray(ends), rho_c, tau_c, lam, m=m, iters=8))
            res = np.linalg.norm(np.asarray(f(jnp.asarray(ends))), axis=1)
            ends = ends[np.isfinite(res) & (res < 1e-8 * (1 + np.linalg.norm(ends, axis=1) ** 2))]
            # the data are real, so the roots are closed under conjugation: a root whose
            # conjugate path was lost is recovered for free
            ends = np.concatenate([ends, ends.conj()])
            roots = _dedup(np.concatenate([roots, ends]), 1e-7)
        if roots.shape[0] >= target:
            break
    if bound > 1e5:
        import warnings

        warnings.warn(f"a-priori bound ‖S‖ ≤ {bound:.3g} is large: real roots may lie near the path cut-off "
                      f"max_norm={max_norm:g}", RuntimeWarning, stacklevel=2)
    real = []
    for r in roots:
        if np.all(np.abs(r.imag) < 1e-8 * (1 + np.abs(r.real))):
            real.append(polish(sym_from_vec(r.real, m), rho, tau, lam))
    real = _dedup_mats(real)
    return HomotopySolution(roots, real, len(starts), diverged, failed, used, time.perf_counter() - t0)


def _dedup_mats(mats, tol=1e-7):
    out = []
    for S in mats:
        if not any(np.linalg.norm(S - T) <= tol * (1 + np.linalg.norm(T)) for T in out):
            out.append(S)
    out.sort(key=lambda M: -np.trace(M))
    return out


# --------------------------------------------------------------------------- many-start Newton (large m)

@_x64
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
    res = np.linalg.norm(np.stack([_residual_vec(x, rho, tau, lam, m) for x in xs]), axis=1)
    good = xs[np.isfinite(res) & (res < 1e-10 * (1 + np.linalg.norm(xs, axis=1) ** 2))]
    return _dedup_mats([polish(sym_from_vec(x, m), rho, tau, lam) for x in good])


@functools.partial(jax.jit, static_argnames=("m", "iters"))
def _damped_newton_batch(xs, rho, tau, lam, *, m, iters):
    def f(z):
        return _residual_vec(z, rho, tau, lam, m)

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

@_x64
def rank_deficient_solutions(rho, tau, lam, rank: int, *, seed: int = 0, starts: int = 256,
                             iters: int = 150) -> list:
    """Equilibria with rank S = r: equation (ii) in the factor W ∈ ℝ^{r×m}, S = WᵀW.

    Since ker A = ker S, (ii) is equivalent to Φ(W) = W M − W (ρS + λI)⁻¹ τᵀ S τ = 0
    (r·m equations, O(r)-invariant solution sets). Solved by Levenberg–Marquardt with damping
    ‖Φ‖² (quadratically convergent onto non-isolated solution sets) from ``starts`` random W.
    Returns the distinct S of exact numerical rank r with residual of (ii) < 1e-10. Indicative:
    a many-start method can miss solutions.
    """
    rho = np.asarray(rho, float)
    tau = np.asarray(tau, float)
    m = rho.shape[0]
    if not 1 <= rank <= m:
        raise ValueError(f"rank must lie in [1, {m}], got {rank}")
    rho_j, tau_j = jnp.asarray(rho), jnp.asarray(tau)
    eye = jnp.eye(m)

    def phi(w):
        W = w.reshape(rank, m)
        S = W.T @ W
        rhs = jnp.linalg.solve(rho_j @ S + lam * eye, tau_j.T @ S @ tau_j)
        return (W @ (S @ rho_j + lam * eye) - W @ rhs).ravel()

    def lm(w):
        def body(w, _):
            r = phi(w)
            J = jax.jacfwd(phi)(w)
            mu = jnp.sum(r * r) + 1e-14
            dw = -jnp.linalg.solve(J.T @ J + mu * jnp.eye(w.size), J.T @ r)
            wn = w + dw
            return jnp.where(jnp.all(jnp.isfinite(wn)), wn, w), None

        return jax.lax.scan(body, w, None, length=iters)[0]

    bound = apriori_bound(rho, tau)
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal((starts, rank * m))
    w0 *= np.sqrt(bound * rng.uniform(0.02, 1.5, (starts, 1)) / rank) / np.linalg.norm(w0, axis=1, keepdims=True) * np.sqrt(rank)
    ws = np.asarray(jax.jit(jax.vmap(lm))(jnp.asarray(w0)))
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
    return _dedup_mats(found, 1e-6)


def numerical_rank(S, tol: float = 1e-8) -> int:
    """Number of eigenvalues of the PSD matrix S above tol · max(1, ‖S‖)."""
    w = np.linalg.eigvalsh((np.asarray(S) + np.asarray(S).T) / 2)
    return int(np.sum(w > tol * max(1.0, float(np.abs(w).max()))))


# --------------------------------------------------------------------------- enumeration

@dataclass
class Equilibrium:
    """One equilibrium component, given by its Gram matrix S = AᵀA.

    residual: ‖M S M − S τᵀ S τ‖_F / (1 + ‖S‖²) (equation (ii));
    field_residual: ‖SG field‖ at the Cor 4.6 point with n = ``n`` (relative, see :func:`field_residual`);
    stability: filled by :func:`dualjax.linear.stability.classify_all` (None until then).
    """

    S: np.ndarray
    rank: int
    positive_definite: bool
    residual: float
    field_residual: float
    source: str
    stability: dict | None = None

    def to_json(self) -> dict:
        return {
            "S": np.asarray(self.S).tolist(),
            "rank": int(self.rank),
            "positive_definite": bool(self.positive_definite),
            "residual": float(max(self.residual, self.field_residual)),
            "equation_residual": float(self.residual),
            "field_residual": float(self.field_residual),
            "trace": float(np.trace(self.S)),
            "source": self.source,
            "stability": self.stability,
        }


@dataclass
class Enumeration:
    """Everything :func:`enumerate_equilibria` found for data (ρ, τ, λ) and width n."""

    m: int
    n: int
    lam: float
    method: str
    equilibria: list  # PSD equilibria: full-rank PD, rank-deficient, origin (sorted by rank, trace)
    real_full_rank: list  # every real symmetric solution of Prop 4.5's equation (PD or not)
    complex_count: int | None
    bezout: int
    existence: dict
    seconds: float
    notes: list = field(default_factory=list)
    moments: Any = None

    @property
    def positive_definite(self) -> list:
        return [e for e in self.equilibria if e.positive_definite]

    def counts(self) -> dict:
        by_rank: dict[int, int] = {}
        for e in self.equilibria:
            by_rank[e.rank] = by_rank.get(e.rank, 0) + 1
        return {
            "complex_full_rank": self.complex_count,
            "real_full_rank": len(self.real_full_rank),
            "positive_definite": len(self.positive_definite),
            "bezout_bound": self.bezout,
            "by_rank": by_rank,
            "total_psd": len(self.equilibria),
        }


def _make_eq(S, rho, tau, lam, n, source, mom):
    S = (np.asarray(S) + np.asarray(S).T) / 2
    rank = numerical_rank(S)
    m = S.shape[0]
    eigs = np.linalg.eigvalsh(S)
    pd = bool(eigs.min() > 1e-10 * max(1.0, float(abs(eigs).max())))
    res = float(np.linalg.norm(equilibrium_residual(S, rho, tau, lam)) / (1 + np.linalg.norm(S) ** 2))
    if eigs.min() < -1e-10 * max(1.0, float(abs(eigs).max())):  # not PSD: no point of the model
        return None
    A, B = equilibrium_point(S, mom, lam, max(n, rank))
    fres = field_residual(A, B, mom, lam)
    return Equilibrium(S, rank if rank < m else m, pd, res, fres, source)


def enumerate_equilibria(mom, lam, *, n: int | None = None, method: str = "auto", seed: int = 0,
                         rank_deficient: bool = True, starts: int = 256) -> Enumeration:
    """All SG / EMA equilibrium components of the linear model, as Gram matrices S (Prop 4.5).

    ``method`` for the full-rank equation: ``exact`` (sympy, m ≤ 3), ``homotopy`` (m ≤ 4 by
    default), ``newton`` (real roots only), ``closed`` (m = 1, Prop 4.11) or ``auto`` (closed for
    m = 1, exact for m ≤ 2, homotopy for m ≤ 4, newton beyond). ``rank_deficient`` adds the
    equilibria of rank 1..m−1 (many-start, indicative) and the origin. ``n`` (default m + 1) is
    the width used for the Cor 4.6 point at which the field residual is measured.
    """
    rho, tau, lam = _data(mom, lam)
    m = rho.shape[0]
    n = m + 1 if n is None else checks.check_positive_int(n, "n")
    if n <= m:
        raise ValueError(f"the linear model needs n > m, got n={n}, m={m}")
    mom = model.Moments(rho, tau, np.asarray(mom.sigma, float))
    if method == "auto":
        method = "closed" if m == 1 else "exact" if m <= 2 else "homotopy" if m <= 4 else "newton"
    if method not in ("closed", "exact", "homotopy", "newton"):
        raise ValueError(f"unknown method {method!r}; choose auto, closed, exact, homotopy or newton")
    t0 = time.perf_counter()
    notes = []
    complex_count = None
    if method == "closed":
        if m != 1:
            raise ValueError(f"method='closed' is the m = 1 formula of Prop 4.11, got m={m}")
        delta = float(discriminant(rho[0, 0], tau[0, 0], lam))
        complex_count = 2
        if delta >= 0:
            r1, r2 = (float(r) for r in radii(rho[0, 0], tau[0, 0], lam))
            real = [np.array([[r2**2]]), np.array([[r1**2]])]
        else:
            real = []
    elif method == "exact":
        sol = solve_exact(rho, tau, lam)
        real, complex_count = sol.real, sol.complex_count
    elif method == "homotopy":
        sol = solve_homotopy(rho, tau, lam, seed=seed)
        real, complex_count = sol.real, sol.complex_count
        expected = expected_complex_count(m)
        if expected is not None and complex_count < expected:
            notes.append(f"homotopy found {complex_count} of the {expected} complex roots seen for generic data "
                         f"at m={m} (the missing ones were complex in every surveyed case)")
    else:
        real = solve_newton(rho, tau, lam, seed=seed, starts=starts)
        notes.append("many-start Newton: real roots only, possibly incomplete")
    eqs = []
    for S in real:
        e = _make_eq(S, rho, tau, lam, n, method, mom)
        if e is not None:
            eqs.append(e)
    if rank_deficient:
        for r in range(1, m):
            for S in rank_deficient_solutions(rho, tau, lam, r, seed=seed + r, starts=starts):
                e = _make_eq(S, rho, tau, lam, n, "lm", mom)
                if e is not None:
                    eqs.append(e)
        eqs.append(_make_eq(np.zeros((m, m)), rho, tau, lam, n, "origin", mom))
    eqs.sort(key=lambda e: (-e.rank, -float(np.trace(e.S))))
    ex = existence(mom, lam)
    ex["exists"] = any(e.positive_definite for e in eqs)
    return Enumeration(m, n, lam, method, eqs, real, complex_count, bezout_bound(m), ex,
                       time.perf_counter() - t0, notes, mom)


# --------------------------------------------------------------------------- reproduce hook

def quick_check(seed: int = 0) -> dict:
    """Measured values for ``dualjax reproduce``: an m = 2 instance, exact vs homotopy, Cor 4.6.

    Draws "gauss" data until an instance with a positive definite equilibrium appears, enumerates
    every equilibrium, and samples 4 points of each full-rank component at n = 4.
    """
    with jax.enable_x64(True):
        for trial in range(50):
            mom = model.random_moments(jax.random.PRNGKey(seed * 1000 + trial), 2, kind="gauss")
            lam = 0.05
            enum = enumerate_equilibria(mom, lam, n=4, method="exact", seed=seed)
            if enum.positive_definite:
                break
        hom = solve_homotopy(np.asarray(mom.rho), np.asarray(mom.tau), lam, seed=seed)
        diff = max((min(np.linalg.norm(S - T) for T in hom.real) for S in enum.real_full_rank), default=0.0)
        field_err, bb_err = 0.0, 0.0
        for k, e in enumerate(enum.positive_definite):
            As, Bs = sample_variety(e.S, mom, lam, 4, jax.random.PRNGKey(k), 4)
            for A, B in zip(As, Bs):
                field_err = max(field_err, field_residual(A, B, mom, lam))
                bb_err = max(bb_err, float(np.linalg.norm(B.T @ B - A @ A.T)))
    c = enum.counts()
    return {
        "m": 2,
        "instance_trial": trial,
        "complex_solutions_exact": c["complex_full_rank"],
        "complex_solutions_homotopy": hom.complex_count,
        "bezout_bound": c["bezout_bound"],
        "real_full_rank": c["real_full_rank"],
        "positive_definite": c["positive_definite"],
        "by_rank": c["by_rank"],
        "exact_vs_homotopy_max_diff": float(diff),
        "max_equation_residual": max(e.residual for e in enum.equilibria),
        "max_field_residual_on_varieties": field_err,
        "max_BtB_minus_AAt": bb_err,
        "necessary_condition_holds": enum.existence["necessary_condition_holds"],
    }
