"""Prop 3.2: the SG field is not a gradient field (exact Jacobian and randomized jvp/vjp probe)."""

import jax
import numpy as np

from dualjax import integrability as I
from dualjax import rules
from dualjax.linear import model


def test_linear_sg_asymmetric_plain_symmetric(key):
    F, z, batch = I.linear_sample_problem(key, 5, 3)
    sg = I.exact_asymmetry(F, z, batch, rule=rules.sg())
    plain = I.exact_asymmetry(F, z, batch, rule=rules.plain())
    assert sg["asymmetry"] > 0.1
    assert plain["asymmetry"] < 1e-13
    ema = I.exact_asymmetry(F, (z[0], z[1], z[0] + 0.1), batch, rule=rules.ema(), k=0.5)
    assert ema["asymmetry"] > 0.1


def test_skew_part_matches_the_block_formula(key):
    """J − Jᵀ = [[X − Xᵀ, −Yᵀ], [Y, 0]] with Y[H] = −HτAᵀ on the moment model (MATH.md §3)."""
    n, m = 3, 2
    mom = model.random_moments(key, m, kind="gauss")
    A, B = model.init_params(jax.random.PRNGKey(3), n, m)
    J = np.asarray(I.jacobian(I.field_at(model.objective(0.05).F, mom, rules.sg()), (A, B)))
    K = J - J.T
    na = n * m
    # Y maps H (A-direction) to the B-block of ∂_ξ∇_ψF; V = −∇F so J's (B, A) block picks up −Y
    Y = np.stack([(-(h.reshape(n, m) @ np.asarray(mom.tau) @ np.asarray(A).T)).ravel() for h in np.eye(na)], axis=1)
    np.testing.assert_allclose(K[na:, :na], -Y, atol=1e-12)
    np.testing.assert_allclose(K[na:, na:], 0, atol=1e-12)


def test_stop_gradient_pitfall_gives_a_false_symmetric_verdict(key):
    F, z, batch = I.linear_sample_problem(key, 4, 2)
    naive = jax.grad(lambda th, ps: F(th, ps, jax.lax.stop_gradient(th), batch), argnums=(0, 1))
    J_naive = I.jacobian(lambda zz: naive(*zz), z)
    assert I.asymmetry_of(J_naive)["asymmetry"] < 1e-13
    assert I.exact_asymmetry(F, z, batch, rule=rules.sg())["asymmetry"] > 0.1


def _agree(F, z, batch, key):
    V = I.field_at(F, batch, rules.sg())
    J = np.asarray(I.jacobian(V, z))
    exact = I.asymmetry_of(J)["asymmetry"]
    probe = I.probe_asymmetry(V, z, key, num_probes=96)
    assert abs(probe["asymmetry"] - exact) < 4 * probe["asymmetry_se"] + 0.03 * exact
    # bilinear probe = uᵀ(J − Jᵀ)w exactly
    u = jax.tree_util.tree_map(lambda a: jax.random.normal(jax.random.PRNGKey(1), a.shape), z)
    w = jax.tree_util.tree_map(lambda a: jax.random.normal(jax.random.PRNGKey(2), a.shape), z)
    uf, wf = (np.asarray(jax.flatten_util.ravel_pytree(t)[0]) for t in (u, w))
    np.testing.assert_allclose(I.bilinear(V, z, u, w), uf @ (J - J.T) @ wf, rtol=1e-10, atol=1e-12)
    return exact, probe


def test_probe_agrees_with_exact_linear(key):
    exact, probe = _agree(*I.linear_sample_problem(key, 6, 4), jax.random.PRNGKey(5))
    assert exact > 0.1 and probe["bilinear_relative_median"] > 1e-3


def test_probe_agrees_with_exact_tanh_mlp(key):
    F, z, batch = I.mlp_problem(key, 4, 8, 3, samples=100)
    exact, _ = _agree(F, z, batch, jax.random.PRNGKey(6))
    assert exact > 0.1
    plain = I.probe_asymmetry(I.field_at(F, batch, rules.plain()), z, jax.random.PRNGKey(7), num_probes=16)
    assert plain["asymmetry"] < 1e-12 and max(abs(b) for b in plain["bilinear"]) < 1e-10


def test_plain_jacobian_is_the_negated_hessian_of_E(key):
    F, z, batch = I.linear_sample_problem(key, 3, 2)
    V = rules.field(rules.plain(), F)
    J = np.asarray(I.jacobian(lambda zz: V(zz[0], zz[1], batch), z))
    v, zf = I.flat_field(lambda zz: F(zz[0], zz[1], zz[0], batch), z)
    H = np.asarray(jax.jit(jax.hessian(lambda x: v(x)[0]))(zf))
    np.testing.assert_allclose(J, -H, atol=1e-10)
    np.testing.assert_allclose(J, J.T, atol=1e-12)


def test_repeated_checks_reuse_one_compilation(key):
    """A scan over points and batches of one model compiles the Jacobian and the probes once:
    the field is a pytree whose data is the batch, F and the rule are static."""
    F, z, batch = I.linear_sample_problem(key, 4, 2)
    k2 = jax.random.PRNGKey(11)
    _, z2, batch2 = I.linear_sample_problem(k2, 4, 2)  # same shapes, new numbers
    first = I.exact_asymmetry(F, z, batch, rule=rules.sg())
    I.probe_asymmetry(I.field_at(F, batch, rules.sg()), z, key, num_probes=8)
    sizes = (I._jacobian._cache_size(), I._jvps._cache_size(), I._vjps._cache_size())
    second = I.exact_asymmetry(F, z2, batch2, rule=rules.sg())
    I.probe_asymmetry(I.field_at(F, batch2, rules.sg()), z2, k2, num_probes=8)
    assert (I._jacobian._cache_size(), I._jvps._cache_size(), I._vjps._cache_size()) == sizes
    assert first["asymmetry"] != second["asymmetry"]  # it did evaluate the new point and batch
    # and the cached result is the fresh one: a separately built field at the new point agrees
    fresh = I.asymmetry_of(jax.jacfwd(I.flat_field(lambda zz: I.field_at(F, batch2, rules.sg())(zz), z2)[0])(
        jax.flatten_util.ravel_pytree(z2)[0]))
    np.testing.assert_allclose(second["asymmetry"], fresh["asymmetry"], rtol=1e-12)
