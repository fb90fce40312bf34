"""The objectives of the paper: per-pair losses l, the regularizer Ω, F and E.

Notation (paper, §2): encoder f_θ, predictor g_ψ, teacher f_ξ (same architecture as the
encoder, parameters ξ). For a pair of views (x, y)

    F(θ, ψ, ξ) = E_{x,y} l[g_ψ ∘ f_θ(x), f_ξ(y)] + Ω(θ, ψ),   Ω(θ, ψ) = λ(‖θ‖² + ‖ψ‖²)/2,
    E(θ, ψ)    = F(θ, ψ, θ).

Everything here is a pure function of pytrees. Encoders and predictors are given as pure
``apply(params, inputs)`` functions acting on a *batch*; per-pair losses act on the last
axis and are averaged over every leading axis (examples, tokens, ...), so the same F serves
the 2×1 linear model and a ViT.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from dualjax.typing import PyTree

Loss = Callable[[jax.Array, jax.Array], jax.Array]


# --------------------------------------------------------------------------- losses l(u, v)

def half_squared(u: jax.Array, v: jax.Array) -> jax.Array:
    """l(u, v) = ½‖u − v‖² over the last axis (the paper's loss). Shapes (..., d) -> (...)."""
    return 0.5 * jnp.sum(jnp.square(u - v), axis=-1)


def l1(u: jax.Array, v: jax.Array) -> jax.Array:
    """l(u, v) = ‖u − v‖₁ / d over the last axis: V-JEPA's L1, the mean absolute error per token."""
    return jnp.mean(jnp.abs(u - v), axis=-1)


def _unit(w: jax.Array, eps: float) -> jax.Array:
    return w / jnp.sqrt(jnp.sum(jnp.square(w), axis=-1, keepdims=True) + eps**2)


def normalized_l2(u: jax.Array, v: jax.Array, eps: float = 1e-12) -> jax.Array:
    """BYOL's l(u, v) = ‖u/‖u‖ − v/‖v‖‖² = 2 − 2 cos(u, v)."""
    return jnp.sum(jnp.square(_unit(u, eps) - _unit(v, eps)), axis=-1)


def negative_cosine(u: jax.Array, v: jax.Array, eps: float = 1e-12) -> jax.Array:
    """SimSiam's l(u, v) = −cos(u, v) = −⟨u, v⟩ / (‖u‖ ‖v‖)."""
    return -jnp.sum(_unit(u, eps) * _unit(v, eps), axis=-1)


LOSSES: dict[str, Loss] = {
    "half_squared": half_squared,
    "l1": l1,
    "normalized_l2": normalized_l2,
    "negative_cosine": negative_cosine,
}


def get_loss(loss: str | Loss) -> Loss:
    """A loss by name (one of :data:`LOSSES`) or a callable passed through."""
    if callable(loss):
        return loss
    try:
        return LOSSES[loss]
    except KeyError:
        raise ValueError(f"unknown loss {loss!r}; choose one of {sorted(LOSSES)}") from None


# --------------------------------------------------------------------------- Ω

def sq_norm(tree: PyTree) -> jax.Array:
    """‖tree‖² = Σ over leaves of the squared entries."""
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        return jnp.zeros(())
    return sum(jnp.sum(jnp.square(leaf)) for leaf in leaves)


def regularizer(lam: float | jax.Array, theta: PyTree, psi: PyTree) -> jax.Array:
    """Ω(θ, ψ) = λ(‖θ‖² + ‖ψ‖²)/2 over pytrees."""
    return 0.5 * lam * (sq_norm(theta) + sq_norm(psi))


# --------------------------------------------------------------------------- F and E

class Objective(NamedTuple):
    """The pair (F, E) of a Siamese model, and its feature moment.

    ``F(theta, psi, xi, batch) -> scalar`` and ``E(theta, psi, batch) = F(theta, psi, theta, batch)``.
    ``features(theta, batch) -> (n, n)``: the online encoder's feature second moment
    M = E[f_θ(x) f_θ(x)ᵀ] on the batch, for rules that read it (DirectPred); ``None`` if unknown.
    The update rules of :mod:`dualjax.rules` see ``F`` (and ``features`` when they ask for it).
    """

    F: Callable[..., jax.Array]
    E: Callable[..., jax.Array]
    features: Callable[..., jax.Array] | None = None


def siamese(
    encode: Callable[[PyTree, Any], jax.Array],
    predict: Callable[[PyTree, jax.Array], jax.Array],
    *,
    loss: str | Loss = "half_squared",
    lam: float = 0.0,
) -> Objective:
    """F and E for encoder ``encode(θ, x)`` and predictor ``predict(ψ, z)`` on batches.

    ``batch = (x, y)``: the two views, stacked on a leading axis. The expectation E_{x,y} is
    the mean over all leading axes of the per-pair loss.

        F(θ, ψ, ξ) = mean l[g_ψ(f_θ(x)), f_ξ(y)] + λ(‖θ‖² + ‖ψ‖²)/2

    and ``features(θ, batch)`` = the mean of f fᵀ over every leading axis, f = f_θ(x).
    """
    loss_fn = get_loss(loss)

    def F(theta: PyTree, psi: PyTree, xi: PyTree, batch: tuple[Any, Any]) -> jax.Array:
        x, y = batch
        u = predict(psi, encode(theta, x))
        v = encode(xi, y)
        return jnp.mean(loss_fn(u, v)) + regularizer(lam, theta, psi)

    def E(theta: PyTree, psi: PyTree, batch: tuple[Any, Any]) -> jax.Array:
        return F(theta, psi, theta, batch)

    def features(theta: PyTree, batch: tuple[Any, Any]) -> jax.Array:
        f = encode(theta, batch[0])
        f = f.reshape(-1, f.shape[-1])
        return f.T @ f / f.shape[0]

    return Objective(F=F, E=E, features=features)


def energy(F: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
    """E(θ, ψ, batch) = F(θ, ψ, θ, batch) for any F."""

    def E(theta: PyTree, psi: PyTree, batch: Any) -> jax.Array:
        return F(theta, psi, theta, batch)

    return E
