"""What a teacher rule is: :class:`TeacherRule`, its :class:`TeacherState`, momentum schedules.

A rule decides which teacher parameters ξ enter F(θ, ψ, ξ) and how ξ (and whatever else the
rule keeps) evolves. It is a named set of pure functions in the optax manner:

* ``init(θ₀, *, psi=ψ₀) -> state``: the rule's state before the first step;
* ``teacher(θ, state) -> ξ``: the ξ plugged into F for this step (with its stop-gradient);
* ``advance(θ_t, state, *, psi=ψ_t, features=M) -> state``: called after the optimizer has
  produced (θ_t, ψ_t); ``features`` (the batch's feature second moment M = E[f fᵀ], n×n) only
  for rules with ``needs_features``. Like optax's ``GradientTransformationExtraArgs``, a rule
  takes the extra keywords it wants and swallows the rest (``**_``); a function without
  ``**`` is called with the keywords it names only (:func:`call_with_extras`);
* ``predictor(ψ_t, state) -> ψ_t`` (optional): applied after ``advance``, so a rule can set
  the predictor (DirectPred).

What differs between rules is recorded on the rule as data, never read off its name:
``carries_teacher`` (ξ is the rule's own copy in ``state.xi``; otherwise ξ equals θ in value,
so F(θ, ψ, ξ) = E(θ, ψ)), ``momentum`` (the EMA schedule α(t) that is logged; ``None`` for
plain / SG), ``ema_alpha`` (the constant α with which the rule *is* ξ_t = α ξ_{t−1} + (1 − α) θ_t
on θ with ψ moved by the optimizer only — SG is α = 0 with no copy — the closed form the
accelerated Monte Carlo engines read; ``None`` otherwise), ``needs_features``, ``predictor`` and
``flow`` (its expected continuous-time field, :mod:`dualjax.rules.fields`).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from dualjax import checks
from dualjax.typing import PyTree

Schedule = Callable[[jax.Array], jax.Array]


class TeacherState(NamedTuple):
    """State of a teacher rule.

    xi:    the rule's own teacher ξ_t (same pytree as θ); ``None`` when the teacher is θ itself.
    count: number of times ``advance`` was called, i.e. the optimizer step t.
    stats: anything else the rule keeps (DirectPred: the running feature correlation F̂); ``None``.
    """

    xi: PyTree
    count: jax.Array
    stats: PyTree = None


class TeacherRule(NamedTuple):
    """A teacher rule: ``init``, ``teacher``, ``advance`` and the properties that set it apart
    (see the module docstring). ``TeacherRule(name, init, teacher, advance)`` is a complete rule
    whose teacher is θ in value; set ``carries_teacher=True`` when ``state.xi`` holds a copy."""

    name: str
    init: Callable[..., TeacherState]
    teacher: Callable[[PyTree, TeacherState], PyTree]
    advance: Callable[..., TeacherState]
    carries_teacher: bool = False
    momentum: Schedule | None = None
    ema_alpha: float | None = None
    needs_features: bool = False
    predictor: Callable[[PyTree, TeacherState], PyTree] | None = None
    flow: Callable[..., Callable] | None = None


def call_with_extras(fn: Callable, *args, **extra):
    """``fn(*args, **extra)`` where ``fn`` takes ``**kwargs``; else only the keywords it names.

    So ``advance(θ, state)`` written without extras still works when the driver passes ``psi=``.
    """
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return fn(*args, **extra)
    names = {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    return fn(*args, **{k: v for k, v in extra.items() if k in names})


def passes_gradient(rule: TeacherRule) -> bool:
    """Whether ξ = ``rule.teacher(θ, state)`` carries θ's gradient. True for plain: the θ-gradient
    of F(θ, ψ, ξ) then includes the path through the teacher, so the rule descends E(θ, ψ)
    itself; False for a stop-gradient or held teacher (SG, EMA), whose field is not ∇E (Prop 3.1).
    Read off the rule's functions at a small θ, never off its name."""
    rule = check_rule(rule)
    theta, psi = jnp.ones((2, 2)), jnp.eye(2)
    state = call_with_extras(rule.init, theta, psi=psi)
    grad = jax.grad(lambda t: jnp.sum(rule.teacher(t, state)))(theta)
    return bool(jnp.any(grad != 0))


def check_rule(rule: Any) -> TeacherRule:
    """``rule`` is a :class:`TeacherRule`, else a ValueError naming it (a name goes through
    :func:`dualjax.rules.get`)."""
    if not isinstance(rule, TeacherRule):
        hint = f"; get one by name with dualjax.rules.get({rule!r})" if isinstance(rule, str) else ""
        raise ValueError(f"rule must be a dualjax.rules.TeacherRule, got {rule!r}{hint}")
    return rule


def describe(rule: TeacherRule) -> dict:
    """The rule's properties as JSON-ready data (for summaries and run logs)."""
    check_rule(rule)
    return {"name": rule.name, "carries_teacher": bool(rule.carries_teacher),
            "ema_alpha": None if rule.ema_alpha is None else float(rule.ema_alpha),
            "momentum_at_0": None if rule.momentum is None else float(rule.momentum(0)),
            "needs_features": bool(rule.needs_features), "sets_predictor": rule.predictor is not None}


# --------------------------------------------------------------------------- momentum schedules

def constant_momentum(alpha: float) -> Schedule:
    """α(t) = alpha for every step (``optax.constant_schedule``)."""
    return optax.constant_schedule(checks.check_alpha(alpha))


def linear_momentum(start: float = 0.998, end: float = 1.0, total_steps: int = 1) -> Schedule:
    """V-JEPA's schedule: α(t) = start + (end − start) · min(t / total_steps, 1)
    (``optax.linear_schedule``)."""
    checks.check_alpha(start, "momentum start")
    checks.check_alpha(end, "momentum end")
    checks.check_positive_int(total_steps, "total_steps")
    return optax.linear_schedule(start, end, total_steps)
