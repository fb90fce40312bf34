"""The three rules on the linear model against the closed forms of MATH.md §1 (Lemma 4.1)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dualjax import objectives, rules
from dualjax.linear import model


def _instance(seed, n=None, m=None):
    rng = np.random.default_rng(seed)
    m = m or int(rng.integers(1, 4))
    n = n or int(m + rng.integers(1, 4))
    L = rng.normal(size=(m, 2 * m))
    rho = L @ L.T / (2 * m) + 0.1 * np.eye(m)
    tau = rng.normal(size=(m, m))
    G = rng.normal(size=(m, m))
    sigma = G @ G.T + tau @ np.linalg.pinv(rho) @ tau.T
    lam = float(rng.uniform(0.01, 0.5))
    mom = model.moments(rho, tau, sigma)
    A = jnp.asarray(rng.normal(size=(n, m)))
    B = jnp.asarray(rng.normal(size=(n, n)))
    C = jnp.asarray(rng.normal(size=(n, m)))
    return mom, lam, A, B, C


@pytest.mark.parametrize("seed", range(6))
def test_autodiff_rules_equal_closed_form_fields(seed):
    mom, lam, A, B, C = _instance(seed)
    F = model.objective(lam).F
    # SG: the rule's gradient is minus the closed-form SG field.
    _, (gA, gB) = rules.loss_and_grads(rules.sg(), F)(A, B, rules.sg().init(A), mom)
    fA, fB = model.sg_field(A, B, mom, lam)
    np.testing.assert_allclose(-gA, fA, atol=1e-10, rtol=0)
    np.testing.assert_allclose(-gB, fB, atol=1e-10, rtol=0)
    # plain: full gradient of E, including the teacher path (A σ − B A τᵀ).
    _, (gA, gB) = rules.loss_and_grads(rules.plain(), F)(A, B, rules.plain().init(A), mom)
    fA, fB = model.plain_field(A, B, mom, lam)
    np.testing.assert_allclose(-gA, fA, atol=1e-10, rtol=0)
    np.testing.assert_allclose(-gB, fB, atol=1e-10, rtol=0)
    # EMA: R = BAρ − Cτ with the teacher C held.
    rule = rules.ema(0.9)
    state = rules.TeacherState(xi=C, count=jnp.zeros((), jnp.int32))
    _, (gA, gB) = rules.loss_and_grads(rule, F)(A, B, state, mom)
    fA, fB, _ = model.ema_field(A, B, C, mom, lam, k=1.0)
    np.testing.assert_allclose(-gA, fA, atol=1e-10, rtol=0)
    np.testing.assert_allclose(-gB, fB, atol=1e-10, rtol=0)


@pytest.mark.parametrize("seed", range(3))
def test_sample_objective_matches_moment_form(seed):
    """The generic Siamese F on samples equals the moment form at the sample moments, and so do the SG gradients."""
    rng = np.random.default_rng(seed)
    m, n, N = 2, 4, 500
    x = rng.normal(size=(N, m))
    y = x @ (np.eye(m) + 0.3 * rng.normal(size=(m, m))).T + 0.3 * rng.normal(size=(N, m))
    lam = 0.05
    mom = model.moments_from_samples(x, y)
    A, B, C = (jnp.asarray(rng.normal(size=s)) for s in [(n, m), (n, n), (n, m)])
    Fs = model.sample_objective(lam).F
    Fm = model.objective(lam).F
    np.testing.assert_allclose(Fs(A, B, C, (x, y)), Fm(A, B, C, mom), rtol=1e-12)
    gs = rules.loss_and_grads(rules.sg(), Fs)(A, B, rules.sg().init(A), (x, y))[1]
    fA, fB = model.sg_field(A, B, mom, lam)
    np.testing.assert_allclose(-gs[0], fA, atol=1e-10)
    np.testing.assert_allclose(-gs[1], fB, atol=1e-10)


def test_sg_and_plain_differ_exactly_by_teacher_gradient():
    mom, lam, A, B, _ = _instance(11)
    F = model.objective(lam).F
    _, g_sg = rules.loss_and_grads(rules.sg(), F)(A, B, rules.sg().init(A), mom)
    _, g_plain = rules.loss_and_grads(rules.plain(), F)(A, B, rules.plain().init(A), mom)
    teacher_grad = jax.grad(F, argnums=2)(A, B, A, mom)  # ∂F/∂ξ at ξ = θ
    np.testing.assert_allclose(g_plain[0] - g_sg[0], teacher_grad, atol=1e-12)
    np.testing.assert_allclose(g_plain[1], g_sg[1], atol=1e-12)
    # and the teacher gradient is not zero, so the rules really differ
    assert float(jnp.linalg.norm(teacher_grad)) > 1e-3


def test_ema_with_alpha_zero_is_sg():
    mom, lam, A, B, _ = _instance(3)
    F = model.objective(lam).F
    tx = optax.sgd(0.05)
    init_s, step_s = rules.make_step(F, rules.sg(), tx)
    init_e, step_e = rules.make_step(F, rules.ema(0.0), tx)
    s, e = init_s(A, B), init_e(A, B)
    for _ in range(25):
        s, ms = step_s(s, mom)
        e, me = step_e(e, mom)
        np.testing.assert_allclose(ms["F"], me["F"], rtol=1e-12)
    np.testing.assert_allclose(s.theta, e.theta, atol=1e-12)
    np.testing.assert_allclose(s.psi, e.psi, atol=1e-12)
    np.testing.assert_allclose(e.teacher.xi, e.theta, atol=1e-12)


def test_ema_teacher_is_closed_form_weighted_average():
    """ξ_k = α^k θ_0 + Σ_{j=1..k} (1 − α) α^{k−j} θ_j (MATH.md §1 convention: the new θ)."""
    mom, lam, A, B, _ = _instance(5)
    alpha = 0.7
    init, step = rules.make_step(model.objective(lam).F, rules.ema(alpha), optax.sgd(0.05))
    st = init(A, B)
    thetas = [A]
    for _ in range(8):
        st, _ = step(st, mom)
        thetas.append(st.theta)
    k = len(thetas) - 1
    expected = alpha**k * thetas[0] + sum((1 - alpha) * alpha ** (k - j) * thetas[j] for j in range(1, k + 1))
    np.testing.assert_allclose(st.teacher.xi, expected, atol=1e-12)
    assert int(st.teacher.count) == k


def test_ema_schedule_and_frozen_teacher():
    sched = rules.linear_momentum(0.998, 1.0, total_steps=10)
    np.testing.assert_allclose([float(sched(t)) for t in (0, 5, 10, 20)], [0.998, 0.999, 1.0, 1.0], rtol=1e-6)
    mom, lam, A, B, _ = _instance(2)
    init, step = rules.make_step(model.objective(lam).F, rules.ema(1.0), optax.sgd(0.05))
    st = init(A, B)
    for _ in range(5):
        st, m = step(st, mom)
    np.testing.assert_allclose(st.teacher.xi, A)  # α = 1 freezes the teacher
    assert float(m["d_xi"]) == 0.0


def test_rules_work_on_nested_pytrees_with_any_optimizer():
    """A two-layer encoder as a dict pytree, Adam, all three rules: F decreases for plain."""
    key = jax.random.PRNGKey(0)
    k1, k2, k3, k4 = jax.random.split(key, 4)
    theta = {"w1": jax.random.normal(k1, (3, 8)) * 0.3, "w2": jax.random.normal(k2, (8, 4)) * 0.3}
    psi = {"p": jax.random.normal(k3, (4, 4)) * 0.3}
    x = jax.random.normal(k4, (64, 3))
    y = x + 0.1 * jax.random.normal(jax.random.PRNGKey(9), (64, 3))
    enc = lambda th, v: jnp.tanh(v @ th["w1"]) @ th["w2"]  # noqa: E731
    pred = lambda ps, z: z @ ps["p"]  # noqa: E731
    obj = objectives.siamese(enc, pred, loss="normalized_l2", lam=1e-3)
    for rule in (rules.plain(), rules.sg(), rules.ema(0.9)):
        init, step = rules.make_step(obj.F, rule, optax.adam(1e-2))
        st = init(theta, psi)
        step = jax.jit(step)
        first = None
        for _ in range(30):
            st, m = step(st, (x, y))
            first = first if first is not None else float(m["F"])
        assert np.isfinite(float(m["F"]))
        assert jax.tree_util.tree_structure(st.theta) == jax.tree_util.tree_structure(theta)
        if rule is rules.plain():
            assert float(m["F"]) < first


def test_bad_rule_inputs():
    with pytest.raises(ValueError, match="alpha.*1.5"):
        rules.ema(1.5)
    with pytest.raises(ValueError, match="alpha.*-0.1"):
        rules.ema(-0.1)
    with pytest.raises(ValueError, match="unknown rule 'byol'; registered rules: plain, sg, ema, directpred"):
        rules.get("byol")
    with pytest.raises(ValueError, match=r"rule 'sg' takes no option \['momentum'\]"):
        rules.get("sg", momentum=0.9)
    with pytest.raises(ValueError, match="total_steps"):
        rules.linear_momentum(0.99, 1.0, total_steps=0)
    with pytest.raises(ValueError, match="unknown loss 'l3'"):
        objectives.get_loss("l3")
