"""The three rules of the paper — plain, SG, EMA — as :class:`~dualjax.rules.base.TeacherRule`\\ s.

| rule  | ξ used in F                         | gradient taken                         |
|-------|-------------------------------------|----------------------------------------|
| plain | ξ = θ (gradient flows through it)   | ∇_{θ,ψ} E(θ, ψ), E(θ, ψ) = F(θ, ψ, θ)   |
| sg    | ξ = stop_gradient(θ)                | ∇_{θ,ψ} F(θ, ψ, ξ) at ξ = θ, ξ held     |
| ema   | ξ = stop_gradient(ξ_t)              | ∇_{θ,ψ} F(θ, ψ, ξ_t), ξ_t held          |

Nothing here knows about models: θ, ψ and ξ are arbitrary pytrees, and any optax optimizer
moves (θ, ψ). The factories are memoized on their arguments (``sg() is sg()``,
``ema(0.99) is ema(0.99)``), so compiled programs keyed on a rule are reused.
"""

from __future__ import annotations

import functools
import inspect

import jax
import jax.numpy as jnp
import optax

from dualjax import checks
from dualjax.rules.base import Schedule, TeacherRule, TeacherState
from dualjax.rules.fields import ema_flow, plain_flow, sg_flow
from dualjax.typing import PyTree


def memoized(factory):
    """``factory`` returning the same rule object for equal (hashable) arguments."""
    cache: dict = {}
    signature = inspect.signature(factory)

    @functools.wraps(factory)
    def wrapped(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        key = tuple(bound.arguments.items())
        try:
            return cache[key]
        except KeyError:
            cache[key] = rule = factory(*args, **kwargs)
            return rule
        except TypeError:  # unhashable argument (an array): no caching
            return factory(*args, **kwargs)

    return wrapped


def count_only_init(theta: PyTree, **_) -> TeacherState:
    """The state of a rule whose teacher is θ itself: just the step count."""
    del theta
    return TeacherState(xi=None, count=jnp.zeros((), jnp.int32))


def count_only_advance(theta: PyTree, state: TeacherState, **_) -> TeacherState:
    del theta
    return state._replace(count=state.count + 1)


@memoized
def plain() -> TeacherRule:
    """Plain gradient descent on E(θ, ψ) = F(θ, ψ, θ): the teacher *is* θ, gradient included."""
    return TeacherRule("plain", count_only_init, lambda theta, state: theta, count_only_advance,
                       flow=plain_flow)


@memoized
def sg() -> TeacherRule:
    """Stop-gradient: ξ = ``jax.lax.stop_gradient(θ)`` — F is differentiated with ξ held at θ.
    The EMA map at α = 0 with no copy carried (``ema_alpha=0.0``)."""
    return TeacherRule("sg", count_only_init, lambda theta, state: jax.lax.stop_gradient(theta),
                       count_only_advance, ema_alpha=0.0, flow=sg_flow)


def copy_init(theta: PyTree, **_) -> TeacherState:
    """ξ₀ = a copy of θ₀ (the teacher starts as the student)."""
    xi = jax.tree_util.tree_map(lambda p: jnp.array(p, copy=True), theta)
    return TeacherState(xi=xi, count=jnp.zeros((), jnp.int32))


def held_copy(theta: PyTree, state: TeacherState) -> PyTree:
    """The rule's own copy ξ_t, without gradient."""
    del theta
    return jax.lax.stop_gradient(state.xi)


def ema_update(schedule: Schedule):
    """``advance`` of an EMA teacher: ξ_t = α ξ_{t−1} + (1 − α) θ_t with α = schedule(t − 1),
    as ``optax.incremental_update(new=θ_t, old=ξ_{t−1}, step_size=1 − α)``."""

    def advance(theta: PyTree, state: TeacherState, **_) -> TeacherState:
        alpha = schedule(state.count)
        xi = optax.incremental_update(theta, state.xi, 1 - alpha)
        xi = jax.tree_util.tree_map(lambda new, old: new.astype(old.dtype), xi, state.xi)
        return state._replace(xi=xi, count=state.count + 1)

    return advance


@memoized
def ema(momentum: float | Schedule = 0.99) -> TeacherRule:
    """Exponential moving-average teacher.

    Convention (stated once, here): after the optimizer has produced θ_t,

        ξ_t = α ξ_{t−1} + (1 − α) θ_t,   ξ_0 = θ_0 (a copy of the student at init),

    so α is the weight of the *old teacher*: α = 0 gives ξ_t = θ_t, i.e. the SG rule, and
    α = 1 freezes the teacher. The teacher uses the *new* θ_t. In optax's terms this is
    ``optax.incremental_update(new=θ_t, old=ξ_{t−1}, step_size=1 − α)``. ``momentum`` is a
    constant α ∈ [0, 1] or an optax schedule ``α(t)`` of the step count t (the value used for the
    update producing ξ_t is α(t − 1), the count before the advance; e.g.
    :func:`~dualjax.rules.base.linear_momentum`). In continuous time this is dξ/dt = k(θ − ξ)
    with k = (1 − α)/η. A constant α is the closed form the accelerated Monte Carlo engines run
    (``ema_alpha``); a schedule runs on the autodiff engine.
    """
    if callable(momentum):
        schedule, alpha = momentum, None
    else:
        alpha = checks.check_alpha(momentum)
        schedule = optax.constant_schedule(alpha)
    return TeacherRule("ema", copy_init, held_copy, ema_update(schedule), carries_teacher=True,
                       momentum=schedule, ema_alpha=alpha, flow=ema_flow)
