"""The per-trial loop and its verdict (Prop 4.11, MATH.md §7): a :class:`Slot` is one trial's
loop state, advanced by an :class:`~dualjax.linear.montecarlo.engines.Engine` until it stops.

A trial runs discrete SG or EMA (step η, ``optax.sgd``; EMA teacher ξ_t = α ξ_{t−1} + (1 − α) θ_t,
ξ₀ = θ₀) until the increment ‖(θ_t − θ_{t−1}, ψ_t − ψ_{t−1}, ξ_t − ξ_{t−1})‖ < tol, the step
budget, or divergence — exactly :func:`dualjax.dynamics.run_discrete`'s stopping rule — and
:func:`classify` names its end with Prop 4.11 (Δ = τ² − 4ρλ, r₁,₂ = (|τ| ∓ √Δ)/(2ρ)):

* ``outer``:  converged and |‖a‖ − r₂| ≤ rtol (1 + r₂)   (stable sphere S₂),
* ``inner``:  converged and |‖a‖ − r₁| ≤ rtol (1 + r₁)   (saddle sphere S₁),
* ``origin``: converged and ‖a‖ < origin_tol             (collapse),
* ``not_converged``: the budget ran out, or the run stopped away from every equilibrium,
* ``diverged``: non-finite parameters or ‖(a, B)‖ > max_norm;

and records whether E(θ_t, ψ_t) (and F(θ_t, ψ_t, ξ_t)) ever increased along the way (Prop 3.1).
Every function here acts on one trial; the pools vmap them over lanes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from dualjax import dynamics
from dualjax.linear import spheres
from dualjax.linear.montecarlo.config import Config
from dualjax.linear.montecarlo.engines import Engine, get_engine
from dualjax.linear.montecarlo.trials import Trial, sample_trial

OUTCOMES = ("outer", "origin", "inner", "not_converged", "diverged")
OUTER, ORIGIN, INNER, NOT_CONVERGED, DIVERGED = range(5)


class Slot(NamedTuple):
    """Per-trial loop state (the carry of :func:`dualjax.dynamics.run_discrete`, plus ``live``)."""

    dyn: Any
    t: jax.Array
    inc2: jax.Array
    E: jax.Array
    F: jax.Array | None  # None for SG: F(θ, ψ, θ) = E
    e_up: jax.Array
    f_up: jax.Array | None
    max_rise: jax.Array
    bad: jax.Array
    live: jax.Array


def init_slot(engine: Engine, cfg: Config, trial: Trial, live=True) -> Slot:
    """θ₀ with E₀, F₀ and the divergence test at t = 0, as in ``run_discrete``'s initial carry."""
    dyn = engine.init(trial)
    E0, F0, sq = engine.measure(trial, dyn)
    false = jnp.zeros((), bool)
    return Slot(dyn, jnp.zeros((), jnp.int32), jnp.asarray(jnp.inf, E0.dtype), E0, F0, false,
                None if F0 is None else false, jnp.zeros_like(E0), _diverged(sq, cfg.max_norm), jnp.asarray(live))


def _diverged(sq, max_norm):
    return ~jnp.isfinite(sq) | (sq > max_norm**2)


def slot_active(slot: Slot, cfg: Config) -> jax.Array:
    """Still running: live, under budget, last increment ≥ tol, not diverged."""
    return slot.live & (slot.t < cfg.max_steps) & (slot.inc2 >= cfg.tol**2) & ~slot.bad


def _check(engine: Engine, cfg: Config, trial: Trial, slot: Slot, due) -> Slot:
    """Record E, F and divergence of the current point θ_t where ``due`` (exactly what
    :func:`dualjax.dynamics.run_discrete` does right after producing θ_t)."""
    E, F, sq = engine.measure(trial, slot.dyn)
    bad = _diverged(sq, cfg.max_norm)
    ok = due & ~bad
    if F is not None:
        slot = slot._replace(F=jnp.where(due, F, slot.F), f_up=slot.f_up | (ok & dynamics.rose(F, slot.F)))
    return slot._replace(
        E=jnp.where(due, E, slot.E), e_up=slot.e_up | (ok & dynamics.rose(E, slot.E)),
        max_rise=jnp.where(ok, jnp.maximum(slot.max_rise, E - slot.E), slot.max_rise),
        bad=slot.bad | (due & bad))


def advance_slot(engine: Engine, cfg: Config, trial: Trial, slot: Slot, num_steps: int, unroll: int = 1) -> Slot:
    """``num_steps`` masked steps of one slot; a slot that has stopped stays frozen (``unroll``
    steps per loop iteration; it changes the code XLA emits, not the arithmetic).

    E, F and the divergence test of θ_t are evaluated at the start of the next iteration, from
    the state in hand (not from the freshly computed θ_{t+1}): XLA then does not recompute the
    step inside every consumer, which makes the loop ~2.5× faster. The last point of a run is
    checked by :func:`finish_slot`. Steps, flags and verdicts equal ``run_discrete``'s.
    """

    def body(_, s):
        active = slot_active(s, cfg)
        s = _check(engine, cfg, trial, s, active & (s.t > 0))
        go = active & ~s.bad
        dyn, inc2 = engine.step(trial, s.dyn)
        new = s._replace(dyn=dyn, t=s.t + 1, inc2=inc2)
        return jax.tree_util.tree_map(lambda x, y: jnp.where(go, x, y), new, s)

    return jax.lax.fori_loop(0, num_steps, body, slot, unroll=unroll)


def finish_slot(engine: Engine, cfg: Config, trial: Trial, slot: Slot) -> Slot:
    """Check the final point of a stopped slot (it was produced by the last step but not yet checked)."""
    return _check(engine, cfg, trial, slot, (slot.t > 0) & ~slot.bad & ~slot_active(slot, cfg))


def run_to_end(engine: Engine, cfg: Config, trial: Trial) -> dict:
    """``trial`` from its initial point until it stops, one step per loop iteration; returns
    :func:`classify`'s dict (a pure function: jit/vmap it)."""
    slot = init_slot(engine, cfg, trial)
    slot = jax.lax.while_loop(lambda s: slot_active(s, cfg),
                              lambda s: advance_slot(engine, cfg, trial, s, 1), slot)
    return classify(engine, cfg, trial, slot)


def run_trial(key, index, rule: str, cfg: Config, engine: str = "auto") -> dict:
    """Trial ``index`` of the study with base ``key``, sampled and run end to end, as a pure
    function (jit/vmap it); returns :func:`classify`'s dict."""
    return run_to_end(get_engine(engine, rule, cfg), cfg, sample_trial(key, index, cfg))


def classify(engine: Engine, cfg: Config, trial: Trial, slot: Slot) -> dict:
    """Outcome code (index into :data:`OUTCOMES`) from the final state and Prop 4.11's radii."""
    slot = finish_slot(engine, cfg, trial, slot)
    a, _, _ = engine.final(slot.dyn)
    norm = jnp.sqrt(jnp.sum(a**2))
    delta = spheres.discriminant(trial.rho, trial.tau, trial.lam)
    r1, r2 = spheres.radii(trial.rho, trial.tau, trial.lam)
    converged = slot.inc2 < cfg.tol**2
    near = lambda r: (delta >= 0) & (jnp.abs(norm - r) <= cfg.rtol * (1 + r))  # noqa: E731
    outcome = jnp.where(
        slot.bad, DIVERGED,
        jnp.where(~converged, NOT_CONVERGED,
                  jnp.where(near(r2), OUTER,
                            jnp.where(near(r1), INNER,
                                      jnp.where(norm < cfg.origin_tol, ORIGIN, NOT_CONVERGED)))))
    return {"index": trial.index, "rho": trial.rho, "tau": trial.tau, "lam": trial.lam, "delta": delta,
            "r1": r1, "r2": r2, "outcome": outcome.astype(jnp.int32), "steps": slot.t,
            "final_norm": norm, "e_increased": slot.e_up,
            "f_increased": slot.e_up if slot.f_up is None else slot.f_up,
            "max_E_rise": slot.max_rise}


