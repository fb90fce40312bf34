"""Where a general-m trial ended, against every equilibrium of its instance (issue 16).

A trial stops with an end state z (the rule's ``StepState``: A, B, the teacher, the optimizer).
Its end point is classified in four steps, all batched over trials and written for any rule (the
rule's own step map is the only thing used, never its name):

1. **numerical rank** r of A: the number of singular values ≥ ``origin_tol`` (the m = 1 study's
   "origin" test ‖a‖ < origin_tol; recorded for every trial, the collapse link of issue 20);
2. **the equilibrium it sits at**: Newton on the fixed-point equation Φ(z) = step(z) − z from the end
   state, with the Jacobian T = ∂step/∂z taken by central differences (the step differentiates F
   with a stop-gradient inside, which forward-mode autodiff of the step would wrongly treat as a
   constant teacher — MATH.md §3's pitfall) and the orbit_dim = nr − r(r+1)/2 smallest singular
   values of T − I dropped (the O(n) orbit of Cor 4.6 is a manifold of fixed points). The end point
   is *at* the equilibrium z* if ‖√S − √S*‖ ≤ rtol (1 + ‖√S*‖), S = AᵀA (at m = 1 the m = 1 study's
   |‖a‖ − r| ≤ rtol (1 + r));
3. **which component**: S* against the instance's enumerated components
   (:class:`~dualjax.linear.equilibria.batched.BatchEnumeration`): component k if
   ‖S* − S_k‖ ≤ 1e-6 (1 + ‖S_k‖), and whether k is the Loewner-maximal one;
4. **the Jacobian check** (Prop 4.10, :mod:`dualjax.linear.stability`'s classes): the eigenvalues μ
   of T at z*, without the orbit_dim ones at μ = 1, give ``stable`` (all |μ| < 1), ``saddle``
   (``n_unstable`` with |μ| > 1) or ``degenerate``: the discrete-time verdict of the map the trial
   actually ran, which for small η is the flow's (stability.analyze agrees; tested).

Outcomes (:data:`OUTCOMES`): ``diverged``; ``not_converged`` (budget, or stopped away from every
equilibrium); ``origin`` (r = 0); ``full_rank`` (r = m, at an equilibrium; ``component`` k, −1 if the
enumeration missed it) and ``partial`` (0 < r < m, at an equilibrium). At m = 1, ``full_rank`` with
``loewner_max`` is the m = 1 study's ``outer`` and ``full_rank`` without it its ``inner``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from dualjax import rules
from dualjax.linear import model
from dualjax.linear.stability import DEGENERATE, SADDLE, STABLE, orbit_dimension

OUTCOMES = ("full_rank", "partial", "origin", "not_converged", "diverged")
FULL_RANK, PARTIAL, ORIGIN, NOT_CONVERGED, DIVERGED = range(5)
JACOBIAN = (STABLE, SADDLE, DEGENERATE, "none")
# |μ| within JAC_TOL of 1 is neither stable nor unstable; S* is an enumerated S_k within MATCH_TOL.
JAC_TOL, MATCH_TOL = 1e-7, 1e-6
# States per XLA call (one compilation; the last call is padded).
CHUNK = 512
NEWTON_STEPS = 3


def flatten_state(state):
    """(z, zi): the float leaves of a state pytree raveled into one vector, and its integer leaves (the
    step counts). :func:`unflatten_state` inverts it given a state of the same structure."""
    leaves = jax.tree_util.tree_leaves(state)
    floats = [x for x in leaves if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    ints = [jnp.ravel(x) for x in leaves if not jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    return ravel_pytree(floats)[0], (jnp.concatenate(ints) if ints else jnp.zeros(0, jnp.int32))


def unflatten_state(template, z, zi):
    """The state with ``template``'s structure whose float leaves are ``z`` and integer leaves ``zi``."""
    leaves, treedef = jax.tree_util.tree_flatten(template)
    floats = [x for x in leaves if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    unravel = ravel_pytree(floats)[1]
    fl, k, out = iter(unravel(z)), 0, []
    for x in leaves:
        if jnp.issubdtype(jnp.result_type(x), jnp.inexact):
            out.append(next(fl))
        else:
            size = int(np.prod(jnp.shape(x)))
            out.append(zi[k:k + size].reshape(jnp.shape(x)).astype(jnp.result_type(x)))
            k += size
    return jax.tree_util.tree_unflatten(treedef, out)


def _step_map(rule, cfg, inst):
    """z ↦ z⁺ of ``rules.make_step(model.objective(λ).F, rule, optax.sgd(η))`` on flattened states."""
    obj = model.objective(inst["lam"])
    init, step = rules.make_step(obj.F, rule, optax.sgd(cfg.eta), features=obj.features)
    template = init(jnp.zeros((cfg.n, cfg.m)), jnp.zeros((cfg.n, cfg.n)))
    mom = model.Moments(inst["rho"], inst["tau"], inst["sigma"])

    def f(z, zi):
        return flatten_state(step(unflatten_state(template, z, zi), mom)[0])[0]

    return f


def _jacobian(f, z, zi):
    """T = ∂f/∂z by central differences (the step's stop-gradients make forward-mode autodiff wrong)."""
    h = 1e-6 * (1 + jnp.max(jnp.abs(z)))
    E = h * jnp.eye(z.size, dtype=z.dtype)
    cols = jax.vmap(lambda e: (f(z + e, zi) - f(z - e, zi)) / (2 * h))(E)
    return cols.T


@functools.lru_cache(maxsize=16)
def _polisher(rule, cfg):
    """Jitted, vmapped: (z, zi, data, drop) -> (z*, ‖Φ(z*)‖, T(z*)) by :data:`NEWTON_STEPS` Newton steps on
    Φ(z) = f(z) − z with the ``drop`` smallest singular values of T − I left out (the orbit directions)."""

    def one(z, zi, inst, drop):
        f = _step_map(rule, cfg, inst)
        P = z.size

        def newton(_, z):
            U, s, Vh = jnp.linalg.svd(_jacobian(f, z, zi) - jnp.eye(P, dtype=z.dtype))
            inv = jnp.where(jnp.arange(P) < P - drop, 1.0 / jnp.where(s > 0, s, 1.0), 0.0)
            dz = -Vh.T @ (inv * (U.T @ (f(z, zi) - z)))
            return jnp.where(jnp.all(jnp.isfinite(dz)), z + dz, z)

        z = jax.lax.fori_loop(0, NEWTON_STEPS, newton, z)
        return z, jnp.linalg.norm(f(z, zi) - z), _jacobian(f, z, zi)

    return jax.jit(jax.vmap(one))


def _sqrtm_psd(S):
    w, V = np.linalg.eigh((S + np.swapaxes(S, -1, -2)) / 2)
    return (V * np.sqrt(np.clip(w, 0, None))[..., None, :]) @ np.swapaxes(V, -1, -2)


def jacobian_class(T: np.ndarray, drop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(class code into :data:`JACOBIAN`, n_unstable) from step-map Jacobians T (K, P, P): the ``drop``
    eigenvalues nearest 1 are the orbit's, the rest decide (|μ| < 1 − tol stable, > 1 + tol unstable)."""
    eig = np.linalg.eigvals(T)
    mu = np.take_along_axis(np.abs(eig), np.argsort(np.abs(eig - 1), axis=1), axis=1)
    transversal = np.arange(mu.shape[1])[None, :] >= drop[:, None]
    n_unstable = np.sum(transversal & (mu > 1 + JAC_TOL), axis=1)
    stable = np.all(~transversal | (mu < 1 - JAC_TOL), axis=1)
    return np.where(n_unstable > 0, 1, np.where(stable, 0, 2)), n_unstable


def fixed_points(rule, cfg, z, zi, data: dict, drop):
    """For states z (K, P) (integer leaves zi) of ``rule`` on instances ``data`` (ρ, τ, λ, σ stacked):
    the nearby fixed points z* of the step map (Newton, the ``drop`` orbit directions left out), the
    residuals ‖step(z*) − z*‖, and the Jacobian check at z* (class codes into :data:`JACOBIAN`,
    n_unstable). Runs in chunks of :data:`CHUNK` states."""
    K = z.shape[0]
    out = (np.full_like(z, np.nan), np.full(K, np.inf), np.full(K, 3), np.zeros(K, int))
    polish = _polisher(rule, cfg)
    for lo in range(0, K, CHUNK):
        sel = np.arange(lo, min(K, lo + CHUNK))
        pad = np.resize(sel, CHUNK)
        with jax.enable_x64(True):
            zs, res, T = jax.device_get(polish(z[pad], zi[pad], {k: v[pad] for k, v in data.items()}, drop[pad]))
        out[0][sel], out[1][sel] = zs[: sel.size], res[: sel.size]
        out[2][sel], out[3][sel] = jacobian_class(T[: sel.size], drop[sel])
    return out


def classify_endpoints(rule, cfg, ends: dict, enum) -> dict[str, np.ndarray]:
    """The end of every trial of ``rule`` (``ends``: the raw columns of
    :func:`~dualjax.linear.montecarlo.general.run_rule`, in trial order) against ``enum``, the
    enumeration of the same instances; returns the study's per-trial columns (module doc)."""
    A, rho, tau, lam = (np.asarray(ends[k]) for k in ("A", "rho", "tau", "lam"))
    K, m, n = A.shape[0], cfg.m, cfg.n
    diverged = np.asarray(ends["diverged"], bool)
    converged = np.asarray(ends["converged"], bool) & ~diverged
    with np.errstate(invalid="ignore", over="ignore"):
        sv = np.where(diverged[:, None], np.nan, np.linalg.svd(np.nan_to_num(A), compute_uv=False))
        rank = np.where(diverged, -1, np.sum(sv >= cfg.origin_tol, axis=1))
        S = np.swapaxes(A, 1, 2) @ A
        M = S @ rho + lam[:, None, None] * np.eye(m)
        resid = M @ S @ M - S @ np.swapaxes(tau, 1, 2) @ S @ tau
        final_residual = np.linalg.norm(resid, axis=(1, 2)) / (1 + np.linalg.norm(S, axis=(1, 2)) ** 2)
    # 2. the equilibrium at the end point, and 4. its Jacobian (converged trials only)
    drop = np.asarray([orbit_dimension(n, int(r)) for r in np.maximum(rank, 0)])
    data = {"rho": rho, "tau": tau, "lam": lam, "sigma": np.asarray(ends["sigma"])}
    z_star = np.full_like(np.asarray(ends["z"]), np.nan)
    jac, n_unstable = np.full(K, 3), np.zeros(K, int)
    fixed_res = np.full(K, np.inf)
    idx = np.flatnonzero(converged)
    z_star[idx], fixed_res[idx], jac[idx], n_unstable[idx] = fixed_points(
        rule, cfg, np.asarray(ends["z"])[idx], np.asarray(ends["zi"])[idx], {k: v[idx] for k, v in data.items()},
        drop[idx])
    A_star = z_star[:, : n * m].reshape(K, n, m)  # θ = A leads the state (StepState.theta)
    S_star = np.swapaxes(A_star, 1, 2) @ A_star
    root, root_star = _sqrtm_psd(np.nan_to_num(S)), _sqrtm_psd(np.nan_to_num(S_star))
    near = (np.linalg.norm(root - root_star, axis=(1, 2))
            <= cfg.rtol * (1 + np.linalg.norm(root_star, axis=(1, 2))))
    with np.errstate(invalid="ignore"):
        at_eq = converged & near & (fixed_res <= 1e-9 * (1 + np.linalg.norm(z_star, axis=1)))
    # 3. which enumerated component
    with np.errstate(invalid="ignore"):
        dist = (np.linalg.norm(S_star[:, None] - enum.S, axis=(2, 3))
                / (1 + np.linalg.norm(enum.S, axis=(2, 3))))
    dist = np.where(np.isfinite(dist), dist, np.inf)
    best = np.argmin(dist, axis=1) if dist.shape[1] else np.zeros(K, int)
    matched = at_eq & (np.take_along_axis(dist, best[:, None], axis=1)[:, 0] <= MATCH_TOL)
    component = np.where(matched, best, -1)
    outcome = np.select([diverged, ~converged, rank == 0, ~at_eq, rank == m],
                        [DIVERGED, NOT_CONVERGED, ORIGIN, NOT_CONVERGED, FULL_RANK], PARTIAL)
    jac = np.where(converged, jac, 3)
    return {
        "index": np.asarray(ends["index"]), "rho": rho, "tau": tau, "lam": lam, "outcome": outcome,
        "rank": rank, "S": S, "singular_values": sv, "component": component,
        "loewner_max": (component >= 0) & (component == enum.loewner_max),
        "enumerated": matched | (outcome == ORIGIN), "steps": np.asarray(ends["steps"]),
        "final_residual": final_residual, "fixed_point_residual": fixed_res,
        "jacobian": jac, "n_unstable": n_unstable,
        "e_increased": np.asarray(ends["e_increased"], bool), "max_E_rise": np.asarray(ends["max_E_rise"]),
        "has_full_rank": np.any(enum.rank == m, axis=1), "instance_complete": np.asarray(enum.complete, bool),
    }


def component_classes(rule, cfg, enum, data: dict, instances) -> np.ndarray:
    """The Jacobian check (class codes into :data:`JACOBIAN`) of every enumerated component of the
    given ``instances`` under ``rule``: at the Cor 4.6 point A = [√S; 0], B = Aτ(Sρ + λI)⁻¹Aᵀ with
    the rule's initial teacher state; −1 where there is no component (padding). ``data``: ρ, τ, λ, σ
    of all instances."""
    k = np.asarray(instances, int)
    valid = enum.rank[k] >= 0
    kk, ii = np.nonzero(valid)
    out = np.full(valid.shape, -1)
    if kk.size == 0:
        return out
    inst = {name: np.asarray(v)[k][kk] for name, v in data.items()}
    S = enum.S[k][kk, ii]
    w, V = np.linalg.eigh(S)
    root = (V * np.sqrt(np.clip(w, 0, None))[:, None, :]) @ np.swapaxes(V, 1, 2)
    A = np.concatenate([root, np.zeros((S.shape[0], cfg.n - cfg.m, cfg.m))], axis=1)
    M = S @ inst["rho"] + inst["lam"][:, None, None] * np.eye(cfg.m)
    B = A @ inst["tau"] @ np.linalg.solve(M, np.swapaxes(A, 1, 2))
    obj = model.objective(0.0)
    init, _ = rules.make_step(obj.F, rule, optax.sgd(cfg.eta), features=obj.features)
    with jax.enable_x64(True):
        z, zi = jax.device_get(jax.vmap(lambda a, b: flatten_state(init(a, b)))(jnp.asarray(A), jnp.asarray(B)))
    drop = np.asarray([orbit_dimension(cfg.n, int(r)) for r in enum.rank[k][kk, ii]])
    out[kk, ii] = fixed_points(rule, cfg, z, zi, inst, drop)[2]
    return out
