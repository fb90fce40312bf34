"""dualjax.spectrum: the Jacobian spectrum of any rule's expected field at any point of any model —
equal to the linear stability analysis at an m = 2 equilibrium, and at a trained nonlinear model
with its O(n) orbit zeros counted."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from dualjax import dynamics, objectives, rules, spectrum
from dualjax.linear import equilibria, model, orbits, stability

MOM = model.Moments(np.array([[1.0, 0.3], [0.3, 0.8]]), np.array([[0.9, 0.2], [-0.1, 0.7]]), np.eye(2))
LAM = 0.05


@pytest.fixture(scope="module")
def enum():
    with jax.enable_x64(True):
        return equilibria.enumerate_equilibria(MOM, LAM, n=3, starts=16)


@pytest.mark.parametrize("rule, k", [(rules.sg(), None), (rules.ema(), 0.4)])
def test_spectrum_at_an_m2_equilibrium_is_the_stability_analysis(enum, rule, k):
    with jax.enable_x64(True):
        for e in enum.equilibria:
            A, B = equilibria.equilibrium_point(e.S, MOM, LAM, 3)
            tangent = orbits.orbit_tangent(A, B, A if rule.carries_teacher else None)
            mom = model.Moments(*(jnp.asarray(x) for x in MOM))
            sp = spectrum.spectrum(rule, model.objective(LAM), jnp.asarray(A), jnp.asarray(B), mom, k=k,
                                   tangent=tangent)
            ref = stability.analyze(e.S, MOM, LAM, 3, rule=rule, k=1.0 if k is None else k, method="dense")
            assert (sp.kind, sp.n_unstable, sp.n_zero, sp.orbit_dim) == (ref.kind, ref.n_unstable, ref.n_zero,
                                                                         ref.orbit_dim)
            np.testing.assert_allclose(np.sort_complex(sp.spectrum), np.sort_complex(ref.spectrum), atol=1e-10)
            # knowing only the orbit's dimension gives the same verdict
            assert spectrum.spectrum(rule, model.objective(LAM), jnp.asarray(A), jnp.asarray(B), mom, k=k,
                                     orbit_dim=ref.orbit_dim).kind == ref.kind


def _encode(th, x):
    return jnp.tanh(x @ th["W1"] + th["b1"]) @ th["W2"] + th["b2"]


def _orbit_tangent(theta, psi):
    """(f, ψ) ↦ (f Qᵀ, Q ψ Qᵀ) leaves the half squared loss and Ω invariant: the directions
    (δW₂, δb₂, δψ) = (−W₂Ω, −b₂Ω, Ωψ − ψΩ) for skew Ω, in ravel_pytree order."""
    n = psi.shape[0]
    cols = []
    for i in range(n):
        for j in range(i + 1, n):
            om = np.zeros((n, n))
            om[i, j], om[j, i] = 1.0, -1.0
            d_theta = {"W1": 0 * theta["W1"], "b1": 0 * theta["b1"], "W2": -theta["W2"] @ om, "b2": -theta["b2"] @ om}
            cols.append(np.asarray(ravel_pytree((d_theta, om @ psi - psi @ om))[0]))
    U, _, _ = np.linalg.svd(np.stack(cols, 1), full_matrices=False)
    return U


def test_spectrum_at_a_trained_nonlinear_model_counts_the_orbit_zeros():
    """SG trained to a fixed point of a tanh-MLP siamese model: stable, with exactly n(n − 1)/2 zero
    eigenvalues, the directions of its O(n) orbit (J T = 0)."""
    with jax.enable_x64(True):
        d, h, n = 4, 6, 3
        k = jax.random.split(jax.random.PRNGKey(0), 4)
        x = jax.random.normal(k[0], (200, d))
        batch = (x, x + 0.3 * jax.random.normal(k[1], x.shape))
        theta = {"W1": jax.random.normal(k[2], (d, h)) / 2, "b1": jnp.zeros(h),
                 "W2": jax.random.normal(k[3], (h, n)) / 2, "b2": jnp.zeros(n)}
        obj = objectives.siamese(_encode, lambda P, z: z @ P.T, lam=0.02)
        init, step = rules.make_step(obj.F, rules.sg(), optax.sgd(1.0))
        run = jax.jit(lambda s: dynamics.run_discrete(step, s, batch, E=obj.E, max_steps=60_000, tol=1e-10))(
            init(theta, jnp.eye(n)))
        assert dynamics.STATUS[int(run.status)] == "converged"
        th, ps = run.state.theta, run.state.psi
        sp = spectrum.spectrum(rules.sg(), obj, th, ps, batch, tangent=_orbit_tangent(th, ps))
    assert sp.kind == spectrum.STABLE and sp.n_zero == sp.orbit_dim == n * (n - 1) // 2
    assert sp.tangent_residual < 1e-8 and sp.max_real < 0
    assert sp.jacobian.shape == (d * h + h + h * n + n + n * n,) * 2


def test_spectrum_input_errors():
    A, B = jnp.ones((3, 2)), jnp.eye(3)
    F = model.objective(LAM).F
    with pytest.raises(ValueError, match="no expected continuous-time field"):
        spectrum.spectrum(rules.directpred(), F, A, B, MOM)
    with pytest.raises(ValueError, match="needs the rate k"):
        spectrum.spectrum(rules.ema(), F, A, B, MOM)
    with pytest.raises(ValueError, match="carries no teacher copy"):
        spectrum.spectrum(rules.sg(), F, A, B, MOM, xi=A)
    with pytest.raises(ValueError, match="orbit_dim"):
        spectrum.analyze_jacobian(np.eye(4), orbit_dim=5)
    kind, n_unstable = spectrum.classify([-1.0, 0.5, 2.0])
    assert (kind, n_unstable) == (spectrum.SADDLE, 2) and spectrum.classify([-1.0, 0.0])[0] == spectrum.DEGENERATE
