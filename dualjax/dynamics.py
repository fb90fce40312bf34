"""Running a rule: discrete dynamics (any optax optimizer) and continuous-time flows (RK4).

Both drivers are ``lax.while_loop`` programs, pure and vmappable, that stop when the
increment falls below ``tol`` (converged), at the step budget (budget), or as soon as the
parameters turn non-finite or exceed ``max_norm`` (diverged). They also record whether
E(θ_t, ψ_t) (and F(θ_t, ψ_t, ξ_t)) ever increased along the way — Prop 3.1's
"SG / EMA do not minimize E".

Status codes: ``CONVERGED = 0``, ``BUDGET = 1``, ``DIVERGED = 2`` (names in :data:`STATUS`).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from dualjax.rules import StepState
from dualjax.typing import PyTree

CONVERGED, BUDGET, DIVERGED = 0, 1, 2
STATUS = ("converged", "budget", "diverged")

# The tolerances of :func:`rose`, the one "E rose" test of the package (the Monte Carlo engines
# and the compiled kernel use these same two numbers).
E_RTOL = 1e-10
E_ATOL = 1e-14


class RunResult(NamedTuple):
    """End of a run. ``status`` is one of :data:`STATUS` (as an int code)."""

    state: Any
    steps: jax.Array
    status: jax.Array
    increment: jax.Array
    E_increased: jax.Array
    F_increased: jax.Array
    max_E_rise: jax.Array


def rose(new, old):
    """Whether a tracked value (E or F) increased beyond rounding: new − old > E_RTOL·|old| + E_ATOL.

    Written as ``new > old (1 + E_RTOL sign(old)) + E_ATOL`` so that it is one fused comparison;
    Prop 3.1's "SG / EMA do not minimize E" is read off this flag, so noise on a flat stretch
    (a converged run) must not register. Elementwise: works on scalars, arrays and tracers.
    """
    return new > old * (1 + E_RTOL * jnp.sign(old)) + E_ATOL


def _bad(tree, max_norm):
    norm = optax.tree_utils.tree_norm(tree)
    return ~jnp.isfinite(norm) | (norm > max_norm)


def run_discrete(
    step: Callable[[StepState, Any], tuple[StepState, dict]],
    state: StepState,
    batch: Any,
    *,
    E: Callable[..., jax.Array],
    F: Callable[..., jax.Array] | None = None,
    teacher: Callable[[PyTree, Any], PyTree] | None = None,
    max_steps: int,
    tol: float,
    max_norm: float = 1e6,
) -> RunResult:
    """Iterate ``step`` (from :func:`dualjax.rules.make_step`) until ‖increment‖ < tol.

    The increment is ‖(θ_t − θ_{t−1}, ψ_t − ψ_{t−1}, ξ_t − ξ_{t−1})‖. ``E(θ, ψ, batch)`` is
    tracked every step; ``F`` too if given with the rule's ``teacher`` function.
    """
    track_F = F is not None and teacher is not None

    def F_of(s):
        if not track_F:
            return jnp.zeros((), jnp.result_type(float))
        return F(s.theta, s.psi, teacher(s.theta, s.teacher), batch)

    def cond(carry):
        _, t, inc, *_rest, bad = carry
        return (t < max_steps) & (inc >= tol) & ~bad

    def body(carry):
        s, t, _, E_prev, F_prev, e_up, f_up, rise, _ = carry
        s_new, m = step(s, batch)
        inc = jnp.sqrt(m["d_theta"] ** 2 + m["d_psi"] ** 2 + m["d_xi"] ** 2)
        E_new = E(s_new.theta, s_new.psi, batch)
        F_new = F_of(s_new)
        bad = _bad((s_new.theta, s_new.psi), max_norm)
        e_up = e_up | (rose(E_new, E_prev) & ~bad)
        f_up = f_up | (rose(F_new, F_prev) & ~bad & track_F)
        rise = jnp.maximum(rise, jnp.where(bad, 0.0, E_new - E_prev))
        return s_new, t + 1, inc, E_new, F_new, e_up, f_up, rise, bad

    E0 = E(state.theta, state.psi, batch)
    inf = jnp.asarray(jnp.inf, E0.dtype)
    false = jnp.zeros((), bool)
    init = (state, jnp.zeros((), jnp.int32), inf, E0, F_of(state), false, false, jnp.zeros_like(E0),
            _bad((state.theta, state.psi), max_norm))
    s, t, inc, _, _, e_up, f_up, rise, bad = jax.lax.while_loop(cond, body, init)
    status = jnp.where(bad, DIVERGED, jnp.where(inc < tol, CONVERGED, BUDGET))
    return RunResult(s, t, status, inc, e_up, f_up, rise)


def rk4_step(V: Callable[[PyTree], PyTree], z: PyTree, dt: float) -> PyTree:
    """One classical Runge–Kutta step of dz/dt = V(z) on a pytree."""
    add = lambda a, b, c: jax.tree_util.tree_map(lambda x, y: x + c * y, a, b)  # noqa: E731
    k1 = V(z)
    k2 = V(add(z, k1, dt / 2))
    k3 = V(add(z, k2, dt / 2))
    k4 = V(add(z, k3, dt))
    return jax.tree_util.tree_map(
        lambda x, a, b, c, d: x + dt / 6 * (a + 2 * b + 2 * c + d), z, k1, k2, k3, k4
    )


def run_flow(
    V: Callable[[PyTree], PyTree],
    z0: PyTree,
    *,
    dt: float,
    max_time: float,
    tol: float,
    E: Callable[[PyTree], jax.Array] | None = None,
    max_norm: float = 1e6,
) -> RunResult:
    """Integrate dz/dt = V(z) with RK4 until ‖V(z)‖ < tol, t ≥ max_time, or divergence.

    ``E(z)`` (optional) is tracked for increases. ``steps`` counts RK4 steps of size ``dt``.
    """
    max_steps = int(round(max_time / dt))
    E_fn = E if E is not None else (lambda z: jnp.zeros(()))

    def cond(carry):
        _, t, speed, _, _, _, bad = carry
        return (t < max_steps) & (speed >= tol) & ~bad

    def body(carry):
        z, t, _, E_prev, e_up, rise, _ = carry
        z_new = rk4_step(V, z, dt)
        speed = optax.tree_utils.tree_norm(V(z_new))
        E_new = E_fn(z_new)
        bad = _bad(z_new, max_norm)
        e_up = e_up | (rose(E_new, E_prev) & ~bad)
        rise = jnp.maximum(rise, jnp.where(bad, 0.0, E_new - E_prev))
        return z_new, t + 1, speed, E_new, e_up, rise, bad

    E0 = E_fn(z0)
    init = (z0, jnp.zeros((), jnp.int32), optax.tree_utils.tree_norm(V(z0)), E0,
            jnp.zeros((), bool), jnp.zeros_like(E0), _bad(z0, max_norm))
    z, t, speed, _, e_up, rise, bad = jax.lax.while_loop(cond, body, init)
    status = jnp.where(bad, DIVERGED, jnp.where(speed < tol, CONVERGED, BUDGET))
    return RunResult(z, t, status, speed, e_up, jnp.zeros((), bool), rise)


def trajectory(
    step: Callable[[StepState, Any], tuple[StepState, dict]],
    state: StepState,
    batch: Any,
    *,
    num_steps: int,
    every: int = 1,
    E: Callable[..., jax.Array] | None = None,
):
    """Snapshots of (θ, ψ, ξ-state) and metrics every ``every`` steps, by ``lax.scan``.

    Returns ``(final_state, snapshots)`` where ``snapshots`` is a dict with leading axis
    ``num_steps // every``: ``theta``, ``psi``, ``F`` (value at the start of the chunk's last
    step) and ``E`` (after it, if ``E`` is given).
    """
    if num_steps % every:
        raise ValueError(f"num_steps={num_steps} must be a multiple of every={every}")

    def chunk(s, _):
        def inner(s2, _):
            return step(s2, batch)

        s, metrics = jax.lax.scan(inner, s, None, length=every)
        out = {"theta": s.theta, "psi": s.psi, "F": metrics["F"][-1],
               "d_theta": metrics["d_theta"][-1], "d_psi": metrics["d_psi"][-1],
               "d_xi": metrics["d_xi"][-1]}
        if E is not None:
            out["E"] = E(s.theta, s.psi, batch)
        return s, out

    return jax.lax.scan(chunk, state, None, length=num_steps // every)
