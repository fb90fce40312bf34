"""The per-trial loop and its verdict (Prop 4.11, MATH.md §7): a :class:`Slot` is one trial's
loop state, advanced by an :class:`~dualjax.linear.montecarlo.engines.Engine` until it stops.

A trial runs a discrete rule (SG, EMA with ξ_t = α ξ_{t−1} + (1 − α) θ_t, ξ₀ = θ₀, or any other;
step η, ``optax.sgd``) with the driver of :mod:`dualjax.dynamics` until the increment ‖(θ_t − θ_{t−1}, ψ_t − ψ_{t−1}, ξ_t − ξ_{t−1})‖ < tol, the step
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

import jax
import jax.numpy as jnp

from dualjax import dynamics
from dualjax.linear import spheres
from dualjax.linear.montecarlo.config import Config
from dualjax.linear.montecarlo.engines import Engine, get_engine
from dualjax.linear.montecarlo.trials import Trial, sample_trial
from dualjax.rules import TeacherRule

OUTCOMES = ("outer", "origin", "inner", "not_converged", "diverged")
OUTER, ORIGIN, INNER, NOT_CONVERGED, DIVERGED = range(5)


# A slot is the driver's loop state (:class:`dualjax.dynamics.Loop`): the engine's dynamic state,
# the step count, the last squared increment, E / F at the last recorded point, the flags, live.
Slot = dynamics.Loop


def init_slot(engine: Engine, cfg: Config, trial: Trial, live=True) -> Slot:
    """θ₀ with E₀, F₀ and the divergence test at t = 0 (:func:`dualjax.dynamics.init_loop`)."""
    return dynamics.init_loop(engine, cfg, trial, engine.init(trial), live)


def slot_active(slot: Slot, cfg: Config) -> jax.Array:
    """Still running: live, under budget, last increment ≥ tol, not diverged."""
    return dynamics.loop_active(slot, cfg)


def advance_slot(engine: Engine, cfg: Config, trial: Trial, slot: Slot, num_steps: int, unroll: int = 1) -> Slot:
    """``num_steps`` masked steps of one slot: the driver's :func:`dualjax.dynamics.advance_loop`
    with the trial as the (fixed) batch; a slot that has stopped stays frozen."""
    return dynamics.advance_loop(engine, cfg, slot, lambda t: trial, num_steps, unroll)


def finish_slot(engine: Engine, cfg: Config, trial: Trial, slot: Slot) -> Slot:
    """Check the final point of a stopped slot (it was produced by the last step but not yet checked)."""
    return dynamics.finish_loop(engine, cfg, slot, lambda t: trial)


def run_to_end(engine: Engine, cfg: Config, trial: Trial) -> dict:
    """``trial`` from its initial point until it stops, one step per loop iteration; returns
    :func:`classify`'s dict (a pure function: jit/vmap it)."""
    return classify(engine, cfg, trial, dynamics.run_loop(engine, cfg, init_slot(engine, cfg, trial), lambda t: trial))


def run_trial(key, index, rule: TeacherRule, cfg: Config, engine: str = "auto") -> dict:
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


