"""Running a rule: the one discrete driver (any rule, any optimizer, any data) and RK4 flows.

**The driver.** A run is a :class:`Loop` (the loop state: the dynamic state, the step count t,
the last squared increment, E and F at the last recorded point, the flags) moved by a
:class:`Stepper` (``step(batch, dyn) -> (dyn⁺, ‖Δ‖²)``, ``measure(batch, dyn) -> (E, F or None,
‖(θ, ψ)‖²)``) until the increment ‖(θ_t − θ_{t−1}, ψ_t − ψ_{t−1}, ξ_t − ξ_{t−1})‖ falls below
``tol`` (converged), the step budget ``max_steps`` (budget), or the parameters turn non-finite or
exceed ``max_norm`` (diverged). On the way it records whether E(θ_t, ψ_t) and F(θ_t, ψ_t, ξ_t) —
both at the same point θ_t, on the same batch — ever increased (:func:`rose`): Prop 3.1's "SG /
EMA do not minimize E". Everything is pure and vmappable (``lax.while_loop`` / ``fori_loop``):

* :func:`run_discrete` — ``make_step``'s step from one state to the end: :class:`RunResult`;
* :func:`trajectory` — snapshots every ``every`` steps (E and F of the snapshot's state);
* :func:`init_loop`, :func:`advance_loop`, :func:`finish_loop`, :func:`run_loop` — the masked
  pieces the Monte Carlo pools vmap over trials (a stopped loop stays frozen).

A step at count t uses ``batch_at(t)``: a fixed batch, or a data stream ``batch_fn(key, t)``.
The point θ_t is recorded at the start of the next iteration, from the state in hand (XLA then
does not recompute the step inside every consumer: ~2.5x faster), and the last point by
:func:`finish_loop`. The limits are any object with ``max_steps``, ``tol`` and ``max_norm``
(:class:`Limits`, or a Monte Carlo ``Config``).

Status codes: ``CONVERGED = 0``, ``BUDGET = 1``, ``DIVERGED = 2`` (names in :data:`STATUS`).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from dualjax.objectives import sq_norm
from dualjax.rules import StepState, TeacherRule
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


# --------------------------------------------------------------------------- the loop

class Limits(NamedTuple):
    """When a run stops: ``max_steps`` steps, increment < ``tol``, or ‖(θ, ψ)‖ > ``max_norm``."""

    max_steps: int
    tol: float
    max_norm: float = 1e6


class Stepper(NamedTuple):
    """How a run moves (a Monte Carlo ``Engine`` is one, with the trial as its batch):
    ``step(batch, dyn) -> (dyn⁺, ‖increment‖²)`` and ``measure(batch, dyn) -> (E, F, ‖(θ, ψ)‖²)``
    at the current point, F = ``None`` when it is not tracked."""

    step: Callable
    measure: Callable


class Loop(NamedTuple):
    """The driver's loop state (one run). ``inc2`` is the last squared increment (∞ before the
    first step); ``E``, ``F`` the values at the last recorded point; ``F``/``f_up`` are ``None``
    when F is not tracked; ``live`` False freezes the loop (an empty pool slot)."""

    dyn: Any
    t: jax.Array
    inc2: jax.Array
    E: jax.Array
    F: jax.Array | None
    e_up: jax.Array
    f_up: jax.Array | None
    max_rise: jax.Array
    bad: jax.Array
    live: jax.Array


def _diverged(sq, max_norm):
    return ~jnp.isfinite(sq) | (sq > max_norm**2)


def init_loop(stepper: Stepper, limits, batch, dyn, live=True) -> Loop:
    """The loop at t = 0: E₀, F₀ and the divergence test of the initial point."""
    E0, F0, sq = stepper.measure(batch, dyn)
    false = jnp.zeros((), bool)
    return Loop(dyn, jnp.zeros((), jnp.int32), jnp.asarray(jnp.inf, E0.dtype), E0, F0, false,
                None if F0 is None else false, jnp.zeros_like(E0), _diverged(sq, limits.max_norm), jnp.asarray(live))


def loop_active(loop: Loop, limits) -> jax.Array:
    """Still running: live, under budget, last increment ≥ tol, not diverged."""
    return loop.live & (loop.t < limits.max_steps) & (loop.inc2 >= limits.tol**2) & ~loop.bad


def _record(stepper: Stepper, limits, batch, loop: Loop, due) -> Loop:
    """Record E, F and divergence of the current point θ_t where ``due``."""
    E, F, sq = stepper.measure(batch, loop.dyn)
    bad = _diverged(sq, limits.max_norm)
    ok = due & ~bad
    if F is not None:
        loop = loop._replace(F=jnp.where(due, F, loop.F), f_up=loop.f_up | (ok & rose(F, loop.F)))
    return loop._replace(
        E=jnp.where(due, E, loop.E), e_up=loop.e_up | (ok & rose(E, loop.E)),
        max_rise=jnp.where(ok, jnp.maximum(loop.max_rise, E - loop.E), loop.max_rise),
        bad=loop.bad | (due & bad))


def advance_loop(stepper: Stepper, limits, loop: Loop, batch_at: Callable[[jax.Array], Any], num_steps: int,
                 unroll: int = 1) -> Loop:
    """``num_steps`` masked steps (a stopped loop stays frozen; ``unroll`` steps per iteration
    change the code XLA emits, not the arithmetic). Iteration t records θ_t, then steps with
    ``batch_at(t)``."""

    def body(_, s):
        active = loop_active(s, limits)
        batch = batch_at(s.t)
        s = _record(stepper, limits, batch, s, active & (s.t > 0))
        go = active & ~s.bad
        dyn, inc2 = stepper.step(batch, s.dyn)
        new = s._replace(dyn=dyn, t=s.t + 1, inc2=inc2)
        return jax.tree_util.tree_map(lambda x, y: jnp.where(go, x, y), new, s)

    return jax.lax.fori_loop(0, num_steps, body, loop, unroll=unroll)


def finish_loop(stepper: Stepper, limits, loop: Loop, batch_at: Callable[[jax.Array], Any]) -> Loop:
    """Record the final point of a stopped loop (produced by the last step, not yet recorded)."""
    return _record(stepper, limits, batch_at(loop.t), loop, (loop.t > 0) & ~loop.bad & ~loop_active(loop, limits))


def run_loop(stepper: Stepper, limits, loop: Loop, batch_at: Callable[[jax.Array], Any]) -> Loop:
    """Step ``loop`` until it stops (one step per ``while_loop`` iteration); then call :func:`finish_loop`."""
    return jax.lax.while_loop(lambda s: loop_active(s, limits),
                              lambda s: advance_loop(stepper, limits, s, batch_at, 1), loop)


# --------------------------------------------------------------------------- make_step runs

def _check_F(F, rule) -> None:
    if F is not None and rule is None:
        raise ValueError("tracking F(θ, ψ, ξ) needs the rule that gives ξ: pass rule= along with F=")


def _batches(data, key) -> Callable[[jax.Array], Any]:
    """``batch_at(t)``: ``data(key, t)`` for a data stream, else the fixed batch ``data``."""
    if callable(data):
        if key is None:
            raise ValueError("a data stream batch_fn(key, t) needs key=")
        return lambda t: data(key, t)
    return lambda t: data


def stepper(step: Callable[[StepState, Any], tuple[StepState, dict]], *, E: Callable[..., jax.Array],
            F: Callable[..., jax.Array] | None = None, rule: TeacherRule | None = None) -> Stepper:
    """The :class:`Stepper` of :func:`dualjax.rules.make_step`'s ``step``: the increment of its
    metrics; E(θ, ψ, batch), and F(θ, ψ, rule.teacher(θ, state), batch) if ``F`` is given."""
    _check_F(F, rule)

    def step_(batch, s):
        s2, m = step(s, batch)
        return s2, m["d_theta"] ** 2 + m["d_psi"] ** 2 + m["d_xi"] ** 2

    def measure(batch, s):
        value_F = None if F is None else F(s.theta, s.psi, rule.teacher(s.theta, s.teacher), batch)
        return E(s.theta, s.psi, batch), value_F, sq_norm((s.theta, s.psi))

    return Stepper(step_, measure)


def run_discrete(
    step: Callable[[StepState, Any], tuple[StepState, dict]],
    state: StepState,
    data: Any,
    *,
    E: Callable[..., jax.Array],
    F: Callable[..., jax.Array] | None = None,
    rule: TeacherRule | None = None,
    max_steps: int,
    tol: float,
    max_norm: float = 1e6,
    key: jax.Array | None = None,
) -> RunResult:
    """Iterate ``step`` (from :func:`dualjax.rules.make_step`) from ``state`` until it stops.

    ``data``: a fixed batch, or ``batch_fn(key, t)`` giving the batch of step t (with ``key``).
    E(θ, ψ, batch) is tracked every step; F too if given, with the ``rule`` whose teacher ξ it
    plugs in (``F`` without ``rule`` is a ValueError). Pure: jit and vmap it.
    """
    limits = Limits(max_steps, tol, max_norm)
    stp = stepper(step, E=E, F=F, rule=rule)
    batch_at = _batches(data, key)
    loop = run_loop(stp, limits, init_loop(stp, limits, batch_at(0), state), batch_at)
    loop = finish_loop(stp, limits, loop, batch_at)
    converged = loop.inc2 < limits.tol**2
    status = jnp.where(loop.bad, DIVERGED, jnp.where(converged, CONVERGED, BUDGET))
    f_up = jnp.zeros((), bool) if loop.f_up is None else loop.f_up
    return RunResult(loop.dyn, loop.t, status, jnp.sqrt(loop.inc2), loop.e_up, f_up, loop.max_rise)


def trajectory(
    step: Callable[[StepState, Any], tuple[StepState, dict]],
    state: StepState,
    data: Any,
    *,
    num_steps: int,
    every: int = 1,
    E: Callable[..., jax.Array] | None = None,
    F: Callable[..., jax.Array] | None = None,
    rule: TeacherRule | None = None,
    key: jax.Array | None = None,
):
    """Snapshots of a run every ``every`` steps (``lax.scan``, no stopping rule).

    Returns ``(final_state, snapshots)``; ``snapshots`` is a dict with leading axis
    ``num_steps // every``: ``theta``, ``psi``, the last step's ``d_theta``, ``d_psi``, ``d_xi``,
    and ``E`` (if given) and ``F`` (if given, with ``rule``) *of the snapshot's state*, on the
    batch of the step that would follow.
    """
    if num_steps % every:
        raise ValueError(f"num_steps={num_steps} must be a multiple of every={every}")
    _check_F(F, rule)
    batch_at = _batches(data, key)

    def chunk(s, c):
        s, metrics = jax.lax.scan(lambda s2, t: step(s2, batch_at(t)), s, c * every + jnp.arange(every))
        out = {"theta": s.theta, "psi": s.psi,
               **{name: metrics[name][-1] for name in ("d_theta", "d_psi", "d_xi")}}
        batch = batch_at((c + 1) * every)
        if E is not None:
            out["E"] = E(s.theta, s.psi, batch)
        if F is not None:
            out["F"] = F(s.theta, s.psi, rule.teacher(s.theta, s.teacher), batch)
        return s, out

    return jax.lax.scan(chunk, state, jnp.arange(num_steps // every))


# --------------------------------------------------------------------------- continuous time

def _bad(tree, max_norm):
    norm = optax.tree_utils.tree_norm(tree)
    return ~jnp.isfinite(norm) | (norm > max_norm)


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
