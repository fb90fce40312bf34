"""Per-pair losses, Ω, F and E against hand-computed values."""

import jax.numpy as jnp
import numpy as np

from dualjax import objectives


def test_losses_closed_forms():
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    np.testing.assert_allclose(objectives.half_squared(u, v), 0.5 * ((u - v) ** 2).sum(-1), rtol=1e-12)
    np.testing.assert_allclose(objectives.l1(u, v), np.abs(u - v).mean(-1), rtol=1e-12)
    cos = (u * v).sum(-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
    np.testing.assert_allclose(objectives.normalized_l2(u, v), 2 - 2 * cos, rtol=1e-10)
    np.testing.assert_allclose(objectives.negative_cosine(u, v), -cos, rtol=1e-10)
    # scale invariance of the normalized losses
    np.testing.assert_allclose(objectives.normalized_l2(3 * u, 0.5 * v), 2 - 2 * cos, rtol=1e-10)


def test_regularizer_over_pytrees():
    theta = {"a": jnp.ones((2, 3)), "b": [jnp.full((4,), 2.0)]}
    psi = (jnp.arange(3.0),)
    # ‖θ‖² = 6 + 16 = 22, ‖ψ‖² = 0 + 1 + 4 = 5
    np.testing.assert_allclose(objectives.regularizer(0.1, theta, psi), 0.05 * 27, rtol=1e-12)


def test_siamese_F_and_E():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(10, 3)), rng.normal(size=(10, 3))
    W, P, Xi = rng.normal(size=(3, 4)), rng.normal(size=(4, 4)), rng.normal(size=(3, 4))
    obj = objectives.siamese(lambda w, v: v @ w, lambda p, z: z @ p, loss="half_squared", lam=0.2)
    u = x @ W @ P
    expected_F = np.mean(0.5 * ((u - y @ Xi) ** 2).sum(-1)) + 0.1 * ((W**2).sum() + (P**2).sum())
    np.testing.assert_allclose(obj.F(W, P, Xi, (x, y)), expected_F, rtol=1e-12)
    expected_E = np.mean(0.5 * ((u - y @ W) ** 2).sum(-1)) + 0.1 * ((W**2).sum() + (P**2).sum())
    np.testing.assert_allclose(obj.E(W, P, (x, y)), expected_E, rtol=1e-12)
    np.testing.assert_allclose(objectives.energy(obj.F)(W, P, (x, y)), expected_E, rtol=1e-12)
