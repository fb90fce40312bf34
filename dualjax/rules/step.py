"""One step of a rule: the gradients of F with the rule's teacher, the optimizer, then the rule.

The order (the same in the linear studies, the Monte Carlo's autodiff engine and the V-JEPA
trainer): F(θ_{t−1}, ψ_{t−1}, ξ_{t−1}) and its gradients; ``tx`` moves (θ, ψ) to (θ_t, ψ_t);
``rule.advance(θ_t, state, psi=ψ_t[, features=M])``, M = E[f_θ_{t−1}(x) f_θ_{t−1}(x)ᵀ] on the
batch for a rule with ``needs_features``; then ``rule.predictor(ψ_t, state)`` if the rule has one.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from dualjax.rules.base import TeacherRule, TeacherState, call_with_extras, check_rule
from dualjax.typing import PyTree

Features = Callable[[PyTree, Any], jax.Array]


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


def init_state(rule: TeacherRule, tx: optax.GradientTransformation, theta: PyTree, psi: PyTree) -> StepState:
    """(θ₀, ψ₀), ``tx.init`` and ``rule.init(θ₀, psi=ψ₀)``."""
    return StepState(theta, psi, tx.init((theta, psi)), call_with_extras(rule.init, theta, psi=psi))


def check_features(rule: TeacherRule, features: Features | None) -> None:
    """A rule with ``needs_features`` needs a ``features(θ, batch)`` function (ValueError naming it)."""
    if rule.needs_features and features is None:
        raise ValueError(f"rule {rule.name!r} needs the batch's feature moment: pass features= "
                         "(e.g. Objective.features of objectives.siamese or linear.model.objective)")


def apply_update(rule: TeacherRule, tx: optax.GradientTransformation, state: StepState, grads,
                 features: jax.Array | None = None) -> tuple[StepState, dict]:
    """One move of a rule given the gradients of F at ``state``: ``tx`` moves (θ, ψ) to (θ_t, ψ_t),
    the rule advances with θ_t (and sees ψ_t, and ``features`` if it asks for them), then sets
    ψ_t if it has a ``predictor``. Returns the new state and the increments
    ``d_theta = ‖θ_t − θ_{t−1}‖``, ``d_psi``, ``d_xi`` (ξ as the rule plugs it into F)."""
    updates, opt_state = tx.update(grads, state.opt_state, (state.theta, state.psi))
    theta, psi = optax.apply_updates((state.theta, state.psi), updates)
    extra = {"psi": psi} | ({"features": features} if rule.needs_features else {})
    teacher = call_with_extras(rule.advance, theta, state.teacher, **extra)
    if rule.predictor is not None:
        psi = rule.predictor(psi, teacher)
    xi_old = rule.teacher(state.theta, state.teacher)
    xi_new = rule.teacher(theta, teacher)
    norm = optax.tree_utils.tree_norm
    increments = {
        "d_theta": norm(jax.tree_util.tree_map(jnp.subtract, theta, state.theta)),
        "d_psi": norm(jax.tree_util.tree_map(jnp.subtract, psi, state.psi)),
        "d_xi": norm(jax.tree_util.tree_map(jnp.subtract, xi_new, xi_old)),
    }
    return StepState(theta, psi, opt_state, teacher), increments


def make_step(F: Callable[..., jax.Array], rule: TeacherRule, tx: optax.GradientTransformation, *,
              features: Features | None = None):
    """An ``(init, step)`` pair driving (θ, ψ) with ``tx`` and ξ with ``rule``.

    ``init(θ₀, ψ₀) -> StepState``. ``step(state, batch) -> (state, metrics)`` computes
    F(θ_{t−1}, ψ_{t−1}, ξ_{t−1}) and its gradient, applies ``tx``, then advances the rule
    (:func:`apply_update`). ``features(θ, batch)`` gives the feature moment E[f fᵀ] for rules
    with ``needs_features`` (``Objective.features``). ``metrics`` holds ``F`` (before the step),
    the increments ``d_theta``, ``d_psi``, ``d_xi`` and ``grad_norm``.
    """
    check_rule(rule)
    check_features(rule, features)
    grad_fn = loss_and_grads(rule, F)

    def init(theta: PyTree, psi: PyTree) -> StepState:
        return init_state(rule, tx, theta, psi)

    def step(state: StepState, batch: Any) -> tuple[StepState, dict[str, jax.Array]]:
        value, grads = grad_fn(state.theta, state.psi, state.teacher, batch)
        moment = jax.lax.stop_gradient(features(state.theta, batch)) if rule.needs_features else None
        new_state, increments = apply_update(rule, tx, state, grads, moment)
        return new_state, {"F": value, **increments, "grad_norm": optax.tree_utils.tree_norm(grads)}

    return init, step
