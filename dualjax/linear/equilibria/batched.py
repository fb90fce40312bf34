"""Prop 4.5 for a whole batch of instances: every equilibrium of K data sets (ρ_k, τ_k, λ_k) at once.

The Monte Carlo over general m (:mod:`dualjax.linear.montecarlo.general`) gives every trial its
own instance, so it needs the equilibria of 10⁴ instances, not of one. Everything here is vmapped
over instances (and over paths or starts within an instance) and runs as a few XLA calls:

* **full rank, m = 1**: Prop 4.11 in closed form, S = r₂², r₁² (exact);
* **full rank, 2 ≤ m ≤ 4**: a *parameter homotopy* (coefficient-parameter continuation). The finite
  complex solutions of Prop 4.5's system (ρS + λI)(Sρ + λI) = τᵀSτ for one generic complex
  instance p₀ = (ρ₀, τ₀, λ₀) are found once per m by total-degree homotopy
  (:func:`start_system`, 6 / 24 / 124 roots for m = 2 / 3 / 4); each is then tracked along
  p(t) = (1 − t) p₀ + t p_k to every instance p_k with the predictor–corrector of
  :func:`~dualjax.linear.equilibria.homotopy.track_path`. Because p₀ is generic and complex, the
  segment misses the discriminant locus with probability one, so no path meets a singularity or
  goes to infinity before t = 1: D paths per instance instead of 2^{m(m+1)/2}. An instance whose
  D ends are D distinct finite roots is ``complete`` (every real solution is then found);
* **full rank, m ≥ 5**: many-start Levenberg–Marquardt as for rank r < m (real roots only);
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
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dualjax import checks
from dualjax.linear.equilibria.homotopy import expected_complex_count, path_start, path_step, total_degree_roots
from dualjax.linear.equilibria.newton import levenberg_marquardt, lm_starts
from dualjax.linear.equilibria.system import apriori_bound
from dualjax.linear.spheres import discriminant, radii

# Tolerances: a root is real if |Im x| < REAL_TOL (1 + |x|); two solutions are one if
# ‖S − T‖ ≤ SAME_TOL (1 + ‖T‖); a solution is accepted if equation (ii) holds to RESIDUAL_TOL.
REAL_TOL, SAME_TOL, RESIDUAL_TOL = 1e-8, 1e-7, 1e-10
# Lanes (paths or starts) advanced per XLA call: the smallest size that holds the live lanes
# (the largest, repeatedly, while more are live); one compilation per size.
CHUNKS = (4096, 512, 64)


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


# --------------------------------------------------------------------------- tiny matrices, lane-wise
# Vmapped over 10⁴ lanes, XLA:CPU runs a batch of 2×2 or 3×3 matrix products or LAPACK solves as one
# small library call per lane (≈ 7× slower than plain arithmetic at m = 2). These forms are the same
# formulas written as broadcast multiply-adds, which XLA fuses into loops over the lanes.

def small_matmul(a, b):
    """a @ b for small matrices as a broadcast multiply-add (fuses under vmap)."""
    return jnp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)


def small_solve(A, b):
    """A⁻¹ b for one small N×N system (b of shape (N,) or (N, k)) by Gaussian elimination with
    partial pivoting, unrolled over the static N: elementwise arithmetic under vmap."""
    N = A.shape[-1]
    vector = b.ndim == 1
    M = jnp.concatenate([A, b[:, None] if vector else b], axis=1)
    rows = jnp.arange(N)
    for k in range(N):
        p = k + jnp.argmax(jnp.abs(M[k:, k]))
        M = M[jnp.where(rows == k, p, jnp.where(rows == p, k, rows))]  # swap rows k and p
        M = M.at[k + 1:].add(-(M[k + 1:, k] / M[k, k])[:, None] * M[k])
    x = [None] * N
    for k in reversed(range(N)):
        x[k] = (M[k, N:] - sum(M[k, j] * x[j] for j in range(k + 1, N))) / M[k, k]
    x = jnp.stack(x)
    return x[:, 0] if vector else x


def _sym(x, m: int):
    """:func:`~dualjax.linear.equilibria.system.sym_from_vec` by static indexing."""
    pos = {ij: k for k, ij in enumerate(zip(*np.triu_indices(m)))}
    return jnp.stack([jnp.stack([x[pos[min(i, j), max(i, j)]] for j in range(m)]) for i in range(m)])


def prop45_residual(x, rho, tau, lam, m: int):
    """:func:`~dualjax.linear.equilibria.system.residual_vec` (the upper triangle of
    (ρS + λI)(Sρ + λI) − τᵀSτ at S = sym(x)) in the lane-wise form."""
    S, eye = _sym(x, m), jnp.eye(m)
    R = small_matmul(small_matmul(rho, S) + lam * eye, small_matmul(S, rho) + lam * eye) \
        - small_matmul(small_matmul(tau.T, S), tau)
    return jnp.stack([R[i, j] for i, j in zip(*np.triu_indices(m))])


def rank_residual_small(w, rho, tau, lam, rank: int):
    """:func:`~dualjax.linear.equilibria.newton.rank_residual` (equation (ii) in W, S = WᵀW) in the
    lane-wise form: Φ(W) = W M − W (ρS + λI)⁻¹ τᵀ S τ."""
    m = rho.shape[0]
    W, eye = w.reshape(rank, m), jnp.eye(m)
    S = small_matmul(W.T, W)
    rhs = small_solve(small_matmul(rho, S) + lam * eye, small_matmul(small_matmul(tau.T, S), tau))
    return (small_matmul(W, small_matmul(S, rho) + lam * eye) - small_matmul(W, rhs)).ravel()


# --------------------------------------------------------------------------- lanes


def _lanes_sharding() -> jax.sharding.NamedSharding:
    devices = jax.devices()
    mesh = jax.make_mesh((len(devices),), ("lanes",), axis_types=(jax.sharding.AxisType.Auto,), devices=devices)
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("lanes"))


def iterate_lanes(block_fn, state, active: Callable, *, max_rounds: int):
    """Run independent per-lane iterations to completion, a few steps at a time on the live lanes only.

    ``state`` is a pytree of host arrays with a leading lane axis; ``block_fn`` (jitted, vmapped)
    advances a chunk of lanes (a size of :data:`CHUNKS`) by a fixed number of steps, leaving finished lanes unchanged; ``active(state) -> (L,) bool`` says which lanes
    still run. Each round gathers the live lanes into chunks (padded by repeating lanes) and scatters
    the results back, so a few slow paths do not hold the whole batch: the work is the sum of the
    lanes' step counts, not the batch size times the slowest one. Only two chunk shapes are compiled.
    """
    state = jax.tree_util.tree_map(np.array, state)
    for _ in range(max_rounds):
        live = np.flatnonzero(active(state))
        if live.size == 0:
            break
        size = next((c for c in CHUNKS[::-1] if c >= live.size), CHUNKS[0])
        for lo in range(0, live.size, size):
            sel = live[lo:lo + size]
            out = block_fn(jax.tree_util.tree_map(lambda a: a[np.resize(sel, size)], state))
            for a, o in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(jax.device_get(out))):
                a[sel] = o[: sel.size]
    return state


def _block_fn(lane_step, block: int):
    """``block`` steps of ``lane_step`` (which freezes finished lanes), vmapped, jitted, sharded over the lanes."""
    sharding = _lanes_sharding()
    run = jax.vmap(lambda c: jax.lax.fori_loop(0, block, lambda _, c: lane_step(c), c))
    return jax.jit(run, in_shardings=sharding, out_shardings=sharding)


def _freeze(active, new, old):
    return jax.tree_util.tree_map(lambda x, y: jnp.where(active, x, y), new, old)


@functools.lru_cache(maxsize=8)
def _homotopy_block(m: int, seed: int, max_steps: int, max_norm: float):
    """Parameter-homotopy steps for lanes ((x, t, h, steps, status), p₁): one root of
    f(·; p₀) tracked along p(t) = (1 − t) p₀ + t p₁ (:func:`~dualjax.linear.equilibria.homotopy.path_step`)."""
    start = start_system(m, seed)
    p0 = tuple(jnp.asarray(v, jnp.complex128) for v in (start.rho, start.tau, start.lam))

    def lane_step(lane):
        carry, p1 = lane
        dp = tuple(b - a for a, b in zip(p0, p1))

        def at(t):
            return tuple(a + t * d for a, d in zip(p0, dp))

        def H(x, t):
            return prop45_residual(x, *at(t), m)

        def H_t(x, t):
            return jax.jvp(lambda *p: prop45_residual(x, *p, m), at(t), dp)[1]

        running = (carry[4] == 0) & (carry[3] < max_steps)
        return _freeze(running, path_step(H, H_t, carry, max_norm=max_norm, solve=small_solve), carry), p1

    return _block_fn(lane_step, 8)


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
        return _freeze(~done, (new, steps + 1, finished), (w, steps, done)) + (data,)

    return _block_fn(lane_step, 10)


@functools.partial(jax.jit, static_argnames=("m", "iters"))
def _newton_lanes(x, rho, tau, lam, *, m: int, iters: int):
    """``iters`` Newton steps on Prop 4.5's system per lane (x (L, N) real or complex, data per lane),
    and the residual norm after them (lane-wise forms; a non-finite step is not taken)."""

    def one(x, r, t, l):
        f = functools.partial(prop45_residual, rho=r, tau=t, lam=l, m=m)
        for _ in range(iters):
            dx = small_solve(jax.jacfwd(f, holomorphic=jnp.iscomplexobj(x))(x), -f(x))
            x = jnp.where(jnp.all(jnp.isfinite(dx)), x + dx, x)
        return x, jnp.linalg.norm(f(x))

    return jax.vmap(one)(x, rho, tau, lam)


def _track_roots(rho, tau, lam, seed: int, max_steps: int, max_norm: float):
    """Start system ``seed``'s roots tracked to every instance and polished: x (K, D, N) complex and
    ok (K, D) (the path reached t = 1 and the root's residual is < 1e-8 (1 + ‖x‖²))."""
    K, m = rho.shape[0], rho.shape[-1]
    roots0 = start_system(m, seed).roots
    D = roots0.shape[0]
    data = tuple(np.repeat(np.asarray(a, np.complex128), D, axis=0) for a in (rho, tau, lam))
    lanes = (tuple(np.asarray(c) for c in jax.vmap(path_start)(jnp.asarray(np.tile(roots0, (K, 1))))), data)
    carry, _ = iterate_lanes(_homotopy_block(m, seed, max_steps, max_norm), lanes,
                             lambda s: (s[0][4] == 0) & (s[0][3] < max_steps), max_rounds=max_steps)
    x, res = (np.asarray(a) for a in _newton_lanes(carry[0], *data, m=m, iters=3))
    ok = (carry[4] == 1) & np.isfinite(res) & (res < 1e-8 * (1 + np.linalg.norm(x, axis=-1) ** 2))
    return x.reshape(K, D, -1), ok.reshape(K, D)


def full_rank_batch(rho, tau, lam, *, seed: int = 0, max_steps: int = 2000, max_norm: float = 1e8):
    """Real full-rank solutions of Prop 4.5 for every instance.

    Returns ``(S (K, C, m, m) with NaN where no real root, complex_found (K,), complete (K,))``.
    m = 1: Prop 4.11's closed form (C = 2). m ≥ 2: the parameter homotopy from start system ``seed``
    (:func:`start_system`); instances with fewer than the generic count D of distinct roots are
    tracked again from start system ``seed + 1`` and the roots merged (C = 2D).
    """
    K, m = rho.shape[0], rho.shape[-1]
    if m == 1:  # Prop 4.11: S = r₂², r₁² when Δ ≥ 0
        r1, r2 = (np.asarray(r) for r in radii(rho[:, 0, 0], tau[:, 0, 0], lam))
        ok = np.asarray(discriminant(rho[:, 0, 0], tau[:, 0, 0], lam)) >= 0
        S = np.where(ok[:, None], np.stack([r2**2, r1**2], axis=1), np.nan)[..., None, None]
        return S, np.full(K, 2), np.ones(K, bool)
    x, ok = _track_roots(rho, tau, lam, seed, max_steps, max_norm)
    D = x.shape[1]
    again = np.flatnonzero(_distinct(x, ok, SAME_TOL).sum(axis=1) < D)
    x, ok = np.concatenate([x, np.zeros_like(x)], axis=1), np.concatenate([ok, np.zeros_like(ok)], axis=1)
    if again.size:
        x[again, D:], ok[again, D:] = _track_roots(rho[again], tau[again], lam[again], seed + 1, max_steps, max_norm)
    distinct = _distinct(x, ok, SAME_TOL)
    found = distinct.sum(axis=1)
    real = distinct & np.all(np.abs(x.imag) < REAL_TOL * (1 + np.abs(x)), axis=-1)
    C = x.shape[1]
    xr, _ = _newton_lanes(np.where(real[..., None], x.real, 0.0).reshape(K * C, -1),
                          *(np.repeat(a, C, axis=0) for a in (rho, tau, lam)), m=m, iters=2)
    S = np.asarray(jax.vmap(lambda z: _sym(z, m))(xr)).reshape(K, C, m, m)
    return np.where(real[..., None, None], S, np.nan), found, found == D


def rank_deficient_batch(rho, tau, lam, rank: int, *, starts: int = 32, seed: int = 0, iters: int = 150):
    """Solutions of equation (ii) with rank S = r for every instance, from ``starts`` random factors each
    (:func:`~dualjax.linear.equilibria.newton.lm_starts`), at most ``iters`` LM steps: S (K, starts, m, m),
    NaN where a start failed (residual of (ii) ≥ 1e-10 or numerical rank ≠ r). Duplicates are left in."""
    K, m = rho.shape[0], rho.shape[-1]
    w0 = lm_starts(np.random.default_rng([seed, rank]), starts, rank, m, apriori_bound(rho, tau))
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
def enumerate_batch(rho, tau, lam, *, rank_deficient: bool = True, starts: int = 32, seed: int = 0) -> BatchEnumeration:
    """Every SG / EMA equilibrium component of K instances: full-rank (PD) solutions of Prop 4.5,
    rank-deficient solutions of (ii) if ``rank_deficient`` (``starts`` LM starts per rank), and the
    origin. ρ (K, m, m) positive definite, τ (K, m, m), λ (K,) > 0 (module doc for the methods)."""
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
    if m <= 4:
        full, found, complete = full_rank_batch(rho, tau, lam, seed=seed)
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


