"""DirectPred (Tian, Chen & Ganguli 2021): the predictor set from the eigendecomposition of the running
feature correlation — against an independent NumPy re-computation on the linear model, and on a small
nonlinear siamese model where it avoids the collapse of plain gradient descent."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dualjax import dynamics, objectives, rules
from dualjax.linear import model


def _numpy_directpred(A, B, mom, lam, eta, steps, *, eps, freq, beta, alpha=None):
    """SG (or EMA with momentum alpha) steps of the linear model with B set by DirectPred: Lemma 4.1's
    gradients, F̂ ← β F̂ + (1 − β) A ρ Aᵀ (F̂₁ = A₀ρA₀ᵀ), B = U diag(√(s/max s) + ε) Uᵀ every freq steps."""
    rho, tau = np.asarray(mom.rho), np.asarray(mom.tau)
    A, B = np.array(A), np.array(B)
    C = A.copy()
    corr, out = None, []
    for t in range(steps):
        teacher = A if alpha is None else C
        R = B @ A @ rho - teacher @ tau
        moment = A @ rho @ A.T  # the features at the point the gradient is taken
        A, B = A - eta * (B.T @ R + lam * A), B - eta * (R @ A.T + lam * B)
        if alpha is not None:
            C = alpha * C + (1 - alpha) * A
        corr = moment if corr is None else beta * corr + (1 - beta) * moment
        if t % freq == 0:
            s, U = np.linalg.eigh(corr)
            p = np.maximum(np.sqrt(np.clip(s, 0, None) / s.max()) + eps, 1e-4)
            B = U @ np.diag(p) @ U.T
        out.append((A, B, C))
    return out


@pytest.mark.parametrize("freq, momentum", [(1, None), (3, None), (2, 0.9)])
def test_linear_predictor_is_the_eigen_construction_at_every_update(freq, momentum):
    with jax.enable_x64(True):
        mom = model.random_moments(jax.random.PRNGKey(0), 2)
        A0, B0 = model.init_params(jax.random.PRNGKey(1), 4, 2, scale=0.8)
        lam, eta, steps = 0.05, 0.05, 10
        rule = rules.directpred(eps=0.1, freq=freq, beta=0.3, momentum=momentum)
        obj = model.objective(lam)
        init, step = rules.make_step(obj.F, rule, optax.sgd(eta), features=obj.features)
        step = jax.jit(step)
        state = init(A0, B0)
        expected = _numpy_directpred(A0, B0, mom, lam, eta, steps, eps=0.1, freq=freq, beta=0.3, alpha=momentum)
        for t, (A, B, C) in enumerate(expected):
            state, _ = step(state, mom)
            np.testing.assert_allclose(state.theta, A, atol=1e-12, err_msg=f"A at step {t}")
            np.testing.assert_allclose(state.psi, B, atol=1e-12, err_msg=f"B at step {t}")
            if momentum is not None:
                np.testing.assert_allclose(state.teacher.xi, C, atol=1e-12)
            if t % freq == 0:  # an update step: B is symmetric with eigenvalues in [ε, 1 + ε]
                eig = np.linalg.eigvalsh(np.asarray(state.psi))
                assert abs(eig.max() - 1.1) < 1e-12 and eig.min() >= 0.1 - 1e-12
    assert rule.needs_features and rule.predictor is not None and rule.ema_alpha is None
    assert rule.carries_teacher == (momentum is not None)


def test_directpred_needs_features_and_a_linear_predictor():
    obj = model.objective(0.05)
    with pytest.raises(ValueError, match="needs the batch's feature moment"):
        rules.make_step(obj.F, rules.directpred(), optax.sgd(0.1))
    init, _ = rules.make_step(obj.F, rules.directpred(), optax.sgd(0.1), features=obj.features)
    with pytest.raises(ValueError, match="psi must be one n x n matrix"):
        init(jnp.ones((3, 2)), {"W": jnp.ones((3, 3))})
    with pytest.raises(ValueError, match="freq"):
        rules.directpred(freq=0)
    with pytest.raises(ValueError, match="beta"):
        rules.directpred(beta=1.5)


# A 1-hidden-layer tanh encoder with biases, a linear predictor, BYOL's normalized loss; the two views
# are noisy copies of one Gaussian sample. Plain gradient descent on E collapses: every input is mapped
# to one direction (E = 0). DirectPred (SG teacher, predictor set from the feature correlation) does not.
D_IN, HIDDEN, N_OUT, BATCH, NOISE = 8, 16, 4, 128, 0.5


def _encode(th, x):
    return jnp.tanh(x @ th["W1"] + th["b1"]) @ th["W2"] + th["b2"]


def _problem():
    k = jax.random.split(jax.random.PRNGKey(0), 4)
    theta = {"W1": jax.random.normal(k[0], (D_IN, HIDDEN)) / np.sqrt(D_IN), "b1": jnp.zeros(HIDDEN),
             "W2": jax.random.normal(k[1], (HIDDEN, N_OUT)) / np.sqrt(HIDDEN), "b2": 0.1 * jnp.ones(N_OUT)}
    psi = jnp.eye(N_OUT) + 0.1 * jax.random.normal(k[2], (N_OUT, N_OUT))
    mix = jax.random.normal(k[3], (D_IN, D_IN)) / np.sqrt(D_IN)

    def batch_fn(key, t):
        k1, k2, k3 = jax.random.split(jax.random.fold_in(key, t), 3)
        x = jax.random.normal(k1, (BATCH, D_IN)) @ mix.T
        return x + NOISE * jax.random.normal(k2, x.shape), x + NOISE * jax.random.normal(k3, x.shape)

    return theta, psi, batch_fn


def _spread(theta, batch):
    """Mean over dimensions of the std of f/‖f‖ over a batch: 0 when every input maps to one direction."""
    f = np.asarray(_encode(theta, batch[0]))
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    return float(f.std(0).mean())


def test_nonlinear_directpred_avoids_the_collapse_of_plain_gradient_descent():
    with jax.enable_x64(True):
        theta, psi, batch_fn = _problem()
        obj = objectives.siamese(_encode, lambda P, z: z @ P.T, loss="normalized_l2")
        held_out = batch_fn(jax.random.PRNGKey(9), 0)
        spread, E_end = {}, {}
        for rule in (rules.plain(), rules.directpred()):
            init, step = rules.make_step(obj.F, rule, optax.sgd(0.5), features=obj.features)
            final, snaps = jax.jit(lambda s: dynamics.trajectory(step, s, batch_fn, num_steps=800, every=400, E=obj.E,
                                                                 key=jax.random.PRNGKey(1)))(init(theta, psi))
            spread[rule.name], E_end[rule.name] = _spread(final.theta, held_out), float(snaps["E"][-1])
        assert spread["plain"] < 0.01 and E_end["plain"] < 1e-3  # collapsed: one direction, E = 0
        assert spread["directpred"] > 0.25 and E_end["directpred"] > 0.05  # spread out, E not minimized
        assert _spread(theta, held_out) > 0.25  # the start was spread out too
