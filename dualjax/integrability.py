"""Prop 3.2 — the SG (and EMA) update field is not a gradient field: the Schwarz test.

Let V(θ, ψ) = −(∇_θ F, ∇_ψ F)(θ, ψ, ξ)|_{ξ=θ} be the expected SG field (partial gradients taken with
ξ a separate argument, then ξ = θ substituted — :func:`dualjax.rules.field` of ``rules.sg()``;
every test here takes any rule object with a field). On a simply connected
open set V is a gradient field iff its Jacobian J = DV is symmetric (Schwarz / Poincaré). With
u = g_ψ(f_θ(x)), v = f_ξ(y) and the half squared loss (MATH.md §3),

    J − Jᵀ = [[X − Xᵀ, −Yᵀ], [Y, 0]],   X = ∂_ξ∇_θF,  Y = ∂_ξ∇_ψF = −E[(∂_ψ u)ᵀ ∂_ξ v],

which is non-zero for generic data (in the linear case Y[H] = −Hτ Aᵀ, non-zero unless τ = 0).
The plain rule's field −∇E is a gradient field (J is the negated Hessian of E): the control.

Two tests:

* :func:`exact_asymmetry` — J by ``jax.jacfwd`` on the flattened parameters; ‖J − Jᵀ‖_F / ‖J‖_F.
* :func:`probe_asymmetry` — matrix-free, for models too large for J (ViTs). For w ~ N(0, I),
  (J − Jᵀ)w = jvp(V)(w) − vjp(V)(w), E‖(J − Jᵀ)w‖² = ‖J − Jᵀ‖²_F and E‖Jw‖² = ‖J‖²_F
  (Hutchinson), two passes per probe; the ratio's spread is reported by a delta-method standard
  error. The bilinear probe uᵀJv − vᵀJu = u·jvp(v) − v·jvp(u) is exact (no variance): non-zero ⇒
  not a gradient field.

Pitfall: differentiating ``grad(F)(θ, ψ, stop_gradient(θ))`` sees a frozen ξ and returns the
symmetric Hessian — a false "integrable" verdict. Use :func:`dualjax.rules.field`.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from dualjax import checks, rules
from dualjax.typing import PyTree


def flat_field(V: Callable[[PyTree], PyTree], z: PyTree):
    """(v, z_flat): V as a map ℝ^P → ℝ^P on the flattened pytree z (``jax.flatten_util``)."""
    z_flat, unravel = ravel_pytree(z)

    def v(x):
        return ravel_pytree(V(unravel(x)))[0]

    return v, z_flat


@jax.tree_util.register_pytree_node_class
class ExpectedField:
    """The expected field of ``rule`` for objective F on ``batch``, as a function of one pytree z.

    z = (θ, ψ) for a rule without a teacher copy, z = (θ, ψ, ξ) for one with a copy (rate k);
    V from :func:`dualjax.rules.field`. It is a pytree whose data is the batch (F, the rule and
    k are static), so the jitted tests below compile once per (F, rule, k, shapes) and are reused
    across points z and batches.
    """

    def __init__(self, F: Callable[..., jax.Array], batch, rule: rules.TeacherRule, k: float | None = None):
        self.V = rules.field(rules.check_rule(rule), F, k=k)
        self.F, self.batch, self.rule, self.k = F, batch, rule, k

    def __call__(self, z: PyTree) -> PyTree:
        return self.V(*z, self.batch)

    def tree_flatten(self):
        return (self.batch,), (self.F, self.rule, self.k)

    @classmethod
    def tree_unflatten(cls, aux, children):
        F, rule, k = aux
        return cls(F, children[0], rule, k)


@jax.tree_util.register_pytree_node_class
class _Static:
    """Any callable V as a leafless pytree: jit treats it as static (hashed by identity)."""

    def __init__(self, V):
        self.V = V

    def __call__(self, z):
        return self.V(z)

    def tree_flatten(self):
        return (), (self.V,)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(aux[0])


def _traceable(V):
    return V if isinstance(V, ExpectedField) else _Static(V)


# Module-level jits: a loop over points z (or batches) with the same field compiles once.
@jax.jit
def _jacobian(V, z):
    v, z_flat = flat_field(V, z)
    return jax.jacfwd(v)(z_flat)


@jax.jit
def _jvps(V, z, W):
    """J w for each row w of W (k × P)."""
    v, z_flat = flat_field(V, z)
    return jax.vmap(lambda w: jax.jvp(v, (z_flat,), (w,))[1])(W)


@jax.jit
def _vjps(V, z, W):
    """Jᵀ w for each row w of W (k × P)."""
    v, z_flat = flat_field(V, z)
    _, vjp_fn = jax.vjp(v, z_flat)
    return jax.vmap(lambda w: vjp_fn(w)[0])(W)


def jacobian(V: Callable[[PyTree], PyTree], z: PyTree) -> jax.Array:
    """J = DV(z) (P × P) by ``jax.jacfwd`` of the flattened field."""
    return _jacobian(_traceable(V), z)


def asymmetry_of(J) -> dict:
    """‖J − Jᵀ‖_F / ‖J‖_F and the two norms."""
    J = jnp.asarray(J)
    skew = jnp.linalg.norm(J - J.T)
    norm = jnp.linalg.norm(J)
    return {"asymmetry": float(skew / norm), "skew_norm": float(skew), "jac_norm": float(norm), "params": int(J.shape[0])}


def field_at(F: Callable[..., jax.Array], batch, rule: rules.TeacherRule, k: float | None = None) -> ExpectedField:
    """The expected field of ``rule`` as a function of one pytree z (an :class:`ExpectedField`):
    z = (θ, ψ), or (θ, ψ, ξ) with rate k for a rule that carries a teacher."""
    return ExpectedField(F, batch, rule, k)


def exact_asymmetry(F: Callable[..., jax.Array], z: PyTree, batch, *, rule: rules.TeacherRule,
                    k: float | None = None) -> dict:
    """Prop 3.2 exact test: ‖J − Jᵀ‖_F / ‖J‖_F of the expected ``rule`` field at z (jacfwd)."""
    return {"rule": rule.name, **asymmetry_of(jacobian(field_at(F, batch, rule, k), z))}


def probe_asymmetry(V: Callable[[PyTree], PyTree], z: PyTree, key, *, num_probes: int = 64) -> dict:
    """Randomized matrix-free Schwarz test on any pytree model (one jvp + one vjp per probe).

    Returns the Hutchinson estimate of ‖J − Jᵀ‖_F / ‖J‖_F with a delta-method standard error
    (``asymmetry_se``), the per-probe ratio spread, and ``num_probes`` exact bilinear values
    uᵀJv − vᵀJu (``bilinear``) with their relative size |uᵀJv − vᵀJu| / (|uᵀJv| + |vᵀJu|).
    """
    checks.check_positive_int(num_probes, "num_probes")
    V = _traceable(V)
    z_flat = ravel_pytree(z)[0]
    P = z_flat.size
    kw, ku, kv = jax.random.split(key, 3)
    W = jax.random.normal(kw, (num_probes, P), z_flat.dtype)
    JW = _jvps(V, z, W)
    JtW = _vjps(V, z, W)
    a = np.asarray(jnp.sum((JW - JtW) ** 2, axis=1))  # ‖(J − Jᵀ)w‖²
    b = np.asarray(jnp.sum(JW**2, axis=1))  # ‖Jw‖²
    ma, mb = a.mean(), b.mean()
    ratio = float(np.sqrt(ma / mb))
    # delta method for sqrt(mean a / mean b)
    cov = np.cov(np.stack([a, b])) / num_probes if num_probes > 1 else np.zeros((2, 2))
    grad = np.array([0.5 / np.sqrt(ma * mb), -0.5 * np.sqrt(ma) / mb**1.5])
    se = float(np.sqrt(max(grad @ cov @ grad, 0.0)))
    U = jax.random.normal(ku, (num_probes, P), z_flat.dtype)
    Vv = jax.random.normal(kv, (num_probes, P), z_flat.dtype)
    Ju, Jv = _jvps(V, z, jnp.concatenate([U, Vv])).reshape(2, num_probes, P)
    uJv = np.asarray(jnp.sum(U * Jv, axis=1))
    vJu = np.asarray(jnp.sum(Vv * Ju, axis=1))
    bil = uJv - vJu
    rel = np.abs(bil) / np.maximum(np.abs(uJv) + np.abs(vJu), 1e-300)
    return {
        "asymmetry": ratio,
        "asymmetry_se": se,
        "probe_ratio_quantiles": np.quantile(np.sqrt(a / np.maximum(b, 1e-300)), [0.1, 0.5, 0.9]).tolist(),
        "skew_norm": float(np.sqrt(ma)),
        "jac_norm": float(np.sqrt(mb)),
        "bilinear": bil.tolist(),
        "bilinear_relative_median": float(np.median(rel)),
        "num_probes": num_probes,
        "params": int(P),
    }


def bilinear(V: Callable[[PyTree], PyTree], z: PyTree, u: PyTree, w: PyTree) -> float:
    """uᵀJw − wᵀJu from two jvps (exact, zero for every u, w iff J is symmetric)."""
    uf, wf = ravel_pytree(u)[0], ravel_pytree(w)[0]
    Ju, Jw = _jvps(_traceable(V), z, jnp.stack([uf, wf]))
    return float(jnp.dot(uf, Jw) - jnp.dot(wf, Ju))


# --------------------------------------------------------------------------- models used by the claims and the CLI

def linear_sample_problem(key, n: int, m: int, *, samples: int = 400, lam: float = 0.05):
    """A linear Siamese problem on a sample: x ~ N(0, I), y = (I + 0.3G)x + 0.3ε; z = (A, B)."""
    from dualjax.linear import model

    k1, k2, k3, k4, k5 = jax.random.split(key, 5)
    x = jax.random.normal(k1, (samples, m))
    G = jax.random.normal(k2, (m, m))
    y = x @ (jnp.eye(m) + 0.3 * G).T + 0.3 * jax.random.normal(k3, (samples, m))
    A = jax.random.normal(k4, (n, m)) / np.sqrt(m)
    B = jax.random.normal(k5, (n, n)) / np.sqrt(n)
    return model.sample_objective(lam).F, (A, B), (x, y)


def mlp_problem(key, d_in: int = 6, hidden: int = 16, d_out: int = 4, *, samples: int = 300, lam: float = 0.05):
    """A non-linear Siamese problem: tanh-MLP encoder f_θ(x) = W₂ tanh(W₁x + b₁), linear predictor."""
    from dualjax.objectives import siamese

    ks = jax.random.split(key, 6)
    x = jax.random.normal(ks[0], (samples, d_in))
    G = jax.random.normal(ks[1], (d_in, d_in))
    y = x @ (jnp.eye(d_in) + 0.3 * G).T + 0.3 * jax.random.normal(ks[2], (samples, d_in))
    theta = {
        "W1": jax.random.normal(ks[3], (d_in, hidden)) / np.sqrt(d_in),
        "b1": jnp.zeros(hidden),
        "W2": jax.random.normal(ks[4], (hidden, d_out)) / np.sqrt(hidden),
    }
    psi = jax.random.normal(ks[5], (d_out, d_out)) / np.sqrt(d_out)

    def encode(th, inp):
        return jnp.tanh(inp @ th["W1"] + th["b1"]) @ th["W2"]

    def predict(p, zz):
        return zz @ p.T

    return siamese(encode, predict, lam=lam).F, (theta, psi), (x, y)
