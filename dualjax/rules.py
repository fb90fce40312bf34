"""The three update rules of the paper — plain, SG, EMA — as teacher rules in the optax manner.

A rule decides which teacher parameters ξ enter F(θ, ψ, ξ) and how ξ evolves:

| rule  | ξ used in F                         | gradient taken                         |
|-------|-------------------------------------|----------------------------------------|
| plain | ξ = θ (gradient flows through it)   | ∇_{θ,ψ} E(θ, ψ), E(θ, ψ) = F(θ, ψ, θ)   |
| sg    | ξ = stop_gradient(θ)                | ∇_{θ,ψ} F(θ, ψ, ξ) at ξ = θ, ξ held     |
| ema   | ξ = stop_gradient(ξ_t)              | ∇_{θ,ψ} F(θ, ψ, ξ_t), ξ_t held          |

A rule is a :class:`TeacherRule`: three pure functions and a :class:`TeacherState`.

* ``init(θ₀) -> state``: ξ₀ is a copy of θ₀ (EMA); plain and SG keep no copy.
* ``teacher(θ, state) -> ξ``: the ξ to plug into F for this step (with the stop-gradient).
* ``advance(θ_new, state) -> state``: called after the optimizer has produced θ_t.

Nothing here knows about models: θ, ψ and ξ are arbitrary pytrees, and any optax
optimizer moves (θ, ψ). The linear studies and the ViT / V-JEPA trainer call these same
functions.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from dualjax import checks
from dualjax.typing import PyTree

Schedule = Callable[[jax.Array], jax.Array]


class TeacherState(NamedTuple):
    """State of a teacher rule.

    xi:    EMA teacher parameters ξ_t (same pytree as θ); ``None`` for plain and SG,
           whose teacher is θ itself.
    count: number of times ``advance`` was called, i.e. the optimizer step t.
    """

    xi: PyTree
    count: jax.Array


class TeacherRule(NamedTuple):
    """A named triple of pure functions ``init``, ``teacher``, ``advance`` (see module doc)."""

    name: str
    init: Callable[[PyTree], TeacherState]
    teacher: Callable[[PyTree, TeacherState], PyTree]
    advance: Callable[[PyTree, TeacherState], TeacherState]


def _count_only_init(theta: PyTree) -> TeacherState:
    del theta
    return TeacherState(xi=None, count=jnp.zeros((), jnp.int32))


def _count_only_advance(theta: PyTree, state: TeacherState) -> TeacherState:
    del theta
    return TeacherState(xi=None, count=state.count + 1)


def plain() -> TeacherRule:
    """Plain gradient descent on E(θ, ψ) = F(θ, ψ, θ): the teacher *is* θ, gradient included."""
    return TeacherRule("plain", _count_only_init, lambda theta, state: theta, _count_only_advance)


def sg() -> TeacherRule:
    """Stop-gradient: ξ = ``jax.lax.stop_gradient(θ)`` — F is differentiated with ξ held at θ."""
    return TeacherRule(
        "sg", _count_only_init, lambda theta, state: jax.lax.stop_gradient(theta), _count_only_advance
    )


def constant_momentum(alpha: float) -> Schedule:
    """α(t) = alpha for every step."""
    alpha = checks.check_alpha(alpha)
    return lambda count: jnp.asarray(alpha)


def linear_momentum(start: float = 0.998, end: float = 1.0, total_steps: int = 1) -> Schedule:
    """V-JEPA's schedule: α(t) = start + (end − start) · min(t / total_steps, 1)."""
    checks.check_alpha(start, "momentum start")
    checks.check_alpha(end, "momentum end")
    checks.check_positive_int(total_steps, "total_steps")

    def schedule(count: jax.Array) -> jax.Array:
        frac = jnp.minimum(jnp.asarray(count, jnp.float32) / total_steps, 1.0)
        return start + (end - start) * frac

    return schedule


def ema(momentum: float | Schedule = 0.99) -> TeacherRule:
    """Exponential moving-average teacher.

    Convention (stated once, here): after the optimizer has produced θ_t,

        ξ_t = α ξ_{t−1} + (1 − α) θ_t,   ξ_0 = θ_0 (a copy of the student at init),

    so α is the weight of the *old teacher*: α = 0 gives ξ_t = θ_t, i.e. the SG rule, and
    α = 1 freezes the teacher. The teacher uses the *new* θ_t. ``momentum`` is a constant
    α ∈ [0, 1] or a schedule ``α(t)`` of the step count t (the value used for the update
    producing ξ_t is α(t − 1), i.e. the count before the advance). In continuous time this is
    dξ/dt = k(θ − ξ) with k = (1 − α)/η.
    """
    schedule = constant_momentum(momentum) if not callable(momentum) else momentum

    def init(theta: PyTree) -> TeacherState:
        xi = jax.tree_util.tree_map(lambda p: jnp.array(p, copy=True), theta)
        return TeacherState(xi=xi, count=jnp.zeros((), jnp.int32))

    def teacher(theta: PyTree, state: TeacherState) -> PyTree:
        del theta
        return jax.lax.stop_gradient(state.xi)

    def advance(theta: PyTree, state: TeacherState) -> TeacherState:
        alpha = schedule(state.count)
        xi = jax.tree_util.tree_map(
            lambda c, p: (alpha * c + (1 - alpha) * p).astype(c.dtype), state.xi, theta
        )
        return TeacherState(xi=xi, count=state.count + 1)

    return TeacherRule("ema", init, teacher, advance)


RULES = ("plain", "sg", "ema")


def get_rule(name: str, momentum: float | Schedule = 0.99) -> TeacherRule:
    """A rule by name: ``plain``, ``sg`` or ``ema`` (with ``momentum``)."""
    if name == "plain":
        return plain()
    if name == "sg":
        return sg()
    if name == "ema":
        return ema(momentum)
    raise ValueError(f"unknown rule {name!r}; choose one of {list(RULES)}")


# --------------------------------------------------------------------------- gradients and steps

def loss_and_grads(rule: TeacherRule, F: Callable[..., jax.Array], *, has_aux: bool = False):
    """``(θ, ψ, state, batch) -> (F(θ, ψ, ξ), (∂F/∂θ, ∂F/∂ψ))`` with ξ = ``rule.teacher(θ, state)``.

    For ``plain`` the teacher is θ itself, so the θ-gradient includes the path through the
    teacher and equals ∇_θ E; for ``sg`` / ``ema`` it does not. ``has_aux``: F returns
    ``(value, aux)`` (e.g. the features of its forward pass) and the first output is ``(F, aux)``,
    as in ``jax.value_and_grad``.
    """

    def objective(theta, psi, state, batch):
        return F(theta, psi, rule.teacher(theta, state), batch)

    return jax.value_and_grad(objective, argnums=(0, 1), has_aux=has_aux)


class StepState(NamedTuple):
    """Everything one step of a rule needs: student (θ, ψ), optimizer state, teacher state."""

    theta: PyTree
    psi: PyTree
    opt_state: optax.OptState
    teacher: TeacherState


def apply_update(rule: TeacherRule, tx: optax.GradientTransformation, state: StepState, grads) -> tuple[StepState, dict]:
    """One move of a rule given the gradients of F at ``state``: ``tx`` moves (θ, ψ) to (θ_t, ψ_t),
    then the teacher advances with θ_t. Returns the new state and the increments
    ``d_theta = ‖θ_t − θ_{t−1}‖``, ``d_psi``, ``d_xi`` (ξ as the rule plugs it into F)."""
    updates, opt_state = tx.update(grads, state.opt_state, (state.theta, state.psi))
    theta, psi = optax.apply_updates((state.theta, state.psi), updates)
    teacher = rule.advance(theta, state.teacher)
    xi_old = rule.teacher(state.theta, state.teacher)
    xi_new = rule.teacher(theta, teacher)
    norm = optax.tree_utils.tree_norm
    increments = {
        "d_theta": norm(jax.tree_util.tree_map(jnp.subtract, theta, state.theta)),
        "d_psi": norm(jax.tree_util.tree_map(jnp.subtract, psi, state.psi)),
        "d_xi": norm(jax.tree_util.tree_map(jnp.subtract, xi_new, xi_old)),
    }
    return StepState(theta, psi, opt_state, teacher), increments


def make_step(F: Callable[..., jax.Array], rule: TeacherRule, tx: optax.GradientTransformation):
    """An ``(init, step)`` pair driving (θ, ψ) with ``tx`` and ξ with ``rule``.

    ``step(state, batch) -> (state, metrics)`` computes F(θ_{t−1}, ψ_{t−1}, ξ_{t−1}) and its
    gradient, applies ``tx``, then advances the teacher with θ_t (:func:`apply_update`).
    ``metrics`` holds ``F`` (before the step), the increments ``d_theta``, ``d_psi``, ``d_xi``
    and ``grad_norm``.
    """
    grad_fn = loss_and_grads(rule, F)

    def init(theta: PyTree, psi: PyTree) -> StepState:
        return StepState(theta, psi, tx.init((theta, psi)), rule.init(theta))

    def step(state: StepState, batch: Any) -> tuple[StepState, dict[str, jax.Array]]:
        value, grads = grad_fn(state.theta, state.psi, state.teacher, batch)
        new_state, increments = apply_update(rule, tx, state, grads)
        return new_state, {"F": value, **increments, "grad_norm": optax.tree_utils.tree_norm(grads)}

    return init, step


# --------------------------------------------------------------------------- expected fields

def field(rule_name: str, F: Callable[..., jax.Array]):
    """The (negated) expected update field V(θ, ψ) of ``plain`` or ``sg`` as a pure function.

        sg:    V(θ, ψ) = −(∇_θ F, ∇_ψ F)(θ, ψ, ξ)|_{ξ=θ}
        plain: V(θ, ψ) = −(∇_θ E, ∇_ψ E)(θ, ψ)

    The partial gradients are taken with ξ as a *separate* argument and ξ = θ is substituted
    afterwards (no stop_gradient), so that differentiating V again sees the ξ-dependence —
    the construction the Schwarz test (Prop 3.2) needs. Returns ``V(theta, psi, batch)``.
    """
    if rule_name == "sg":
        partial = jax.grad(F, argnums=(0, 1))

        def V(theta, psi, batch):
            g_theta, g_psi = partial(theta, psi, theta, batch)
            return jax.tree_util.tree_map(jnp.negative, (g_theta, g_psi))

    elif rule_name == "plain":
        full = jax.grad(lambda th, ps, b: F(th, ps, th, b), argnums=(0, 1))

        def V(theta, psi, batch):
            return jax.tree_util.tree_map(jnp.negative, full(theta, psi, batch))

    else:
        raise ValueError(f"field() takes 'sg' or 'plain', got {rule_name!r}; use ema_field for EMA")
    return V


def ema_field(F: Callable[..., jax.Array], k: float):
    """The continuous-time EMA system on (θ, ψ, ξ):

        dθ/dt = −∇_θ F(θ, ψ, ξ),  dψ/dt = −∇_ψ F(θ, ψ, ξ),  dξ/dt = k(θ − ξ),

    the η → 0 limit of ξ_t = α ξ_{t−1} + (1 − α) θ_t at fixed k = (1 − α)/η.
    Returns ``V(theta, psi, xi, batch) -> (dθ, dψ, dξ)``.
    """
    k = checks.check_positive(k, "k") if k != 0 else 0.0
    partial = jax.grad(F, argnums=(0, 1))

    def V(theta, psi, xi, batch):
        g_theta, g_psi = partial(theta, psi, xi, batch)
        d_xi = jax.tree_util.tree_map(lambda t, c: k * (t - c), theta, xi)
        neg = jax.tree_util.tree_map(jnp.negative, (g_theta, g_psi))
        return neg[0], neg[1], d_xi

    return V
