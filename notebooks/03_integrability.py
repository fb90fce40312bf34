# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Integrability: SG is not a gradient field (Prop 3.2)
#
# Siamese objective $F(\theta,\psi,\xi)=\mathbb E\,\tfrac12\|g_\psi(f_\theta(x))-f_\xi(y)\|^2+\tfrac\lambda2(\|\theta\|^2+\|\psi\|^2)$,
# $E(\theta,\psi)=F(\theta,\psi,\theta)$. The expected SG update field is
#
# $$V(\theta,\psi)=-\big(\nabla_\theta F,\ \nabla_\psi F\big)(\theta,\psi,\xi)\big|_{\xi=\theta}$$
#
# (partial gradients first, then $\xi=\theta$). On a simply connected open set $V$ is a gradient field iff its
# Jacobian $J=DV$ is symmetric (Schwarz). With $u=g_\psi(f_\theta(x))$, $v=f_\xi(y)$ (MATH.md §3),
#
# $$J-J^\top=\begin{pmatrix}X-X^\top&-Y^\top\\ Y&0\end{pmatrix},\qquad X=\partial_\xi\nabla_\theta F,\quad Y=\partial_\xi\nabla_\psi F=-\mathbb E[(\partial_\psi u)^\top\partial_\xi v],$$
#
# and in the linear model $X[H]=-B^\top H\tau$, $Y[H]=-H\tau A^\top$: non-zero unless $\tau=\mathbb E[yx^\top]=0$.
# The plain rule's field $-\nabla E$ is a gradient field (its $J$ is minus a Hessian): the control.
#
# Code: `dualjax.integrability` (exact and randomized tests, any pytree model), `dualjax.linear.symbolic` (sympy).

# %%
import os

SMALL = bool(os.environ.get("DUALJAX_NOTEBOOK_SMALL"))  # the test suite runs notebooks small

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import sympy as sp
from jax.flatten_util import ravel_pytree

from dualjax import integrability as I
from dualjax import rules
from dualjax.linear import model, symbolic

jax.config.update("jax_enable_x64", True)

# %% [markdown]
# ## Exact test: $\|J-J^\top\|_F/\|J\|_F$ by `jax.jacfwd`
# Two problems on a sample of views $y=(I+0.3G)x+0.3\varepsilon$:
# * the linear model $f_\theta(x)=Ax$, $g_\psi(z)=Bz$;
# * a tanh-MLP encoder $f_\theta(x)=W_2\tanh(W_1x+b_1)$ with a linear predictor.
#
# `exact_asymmetry(F, z, batch, rule=...)` builds the field with `rules.field` (no stop-gradient) and differentiates it.

# %%
key = jax.random.PRNGKey(0)
n, m = (6, 4) if SMALL else (10, 5)
problems = {
    f"linear n={n}, m={m}": I.linear_sample_problem(key, n, m, samples=400),
    "tanh-MLP 6→16→4": I.mlp_problem(key, 6, 16, 4, samples=300),
}
exact = {}
for name, (F, z, batch) in problems.items():
    sg = I.exact_asymmetry(F, z, batch, rule=rules.sg())
    plain = I.exact_asymmetry(F, z, batch, rule=rules.plain())
    exact[name] = sg["asymmetry"]
    print(f"{name:22s} P = {sg['params']:4d}   SG: ‖J−Jᵀ‖/‖J‖ = {sg['asymmetry']:.4f}   plain: {plain['asymmetry']:.1e}")
    assert sg["asymmetry"] > 0.1  # Prop 3.2: far from symmetric
    assert plain["asymmetry"] < 1e-13  # a Hessian: symmetric to rounding

# %% [markdown]
# ### Where the asymmetry sits
# The skew part has the block pattern above: the $\psi\psi$ block of $J-J^\top$ is zero, the $\theta\psi$ blocks are $\mp Y$.

# %%
jacobians = {}
fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
for ax, (name, (F, z, batch)) in zip(axes, problems.items()):
    J = jacobians[name] = np.asarray(I.jacobian(I.field_at(F, batch, rules.sg()), z))
    K = J - J.T
    p_theta = ravel_pytree(z[0])[0].size
    blocks = {"θθ": K[:p_theta, :p_theta], "ψθ (Y)": K[p_theta:, :p_theta], "ψψ": K[p_theta:, p_theta:]}
    print(name, {k: f"{np.linalg.norm(v):.2e}" for k, v in blocks.items()})
    assert np.linalg.norm(blocks["ψψ"]) < 1e-13 * np.linalg.norm(J)
    assert np.linalg.norm(blocks["ψθ (Y)"]) > 1e-2 * np.linalg.norm(J)
    im = ax.imshow(np.abs(K), cmap="magma_r")
    ax.axhline(p_theta - 0.5, color="tab:blue", lw=1)
    ax.axvline(p_theta - 0.5, color="tab:blue", lw=1)
    ax.set_title(f"|J − Jᵀ|, {name}\n(θ first, then ψ)", fontsize=9)
    plt.colorbar(im, ax=ax, shrink=0.8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ### The closed forms of $X$ and $Y$ (linear model, moment form), and $\tau=0$
# With the moment objective ($\rho$, $\tau$), $X[H]=\partial_C\nabla_AF\,[H]=-B^\top H\tau$ and $Y[H]=\partial_C\nabla_BF\,[H]=-H\tau A^\top$,
# checked with a `jvp` in the teacher argument. Setting $\tau=0$ kills both, and the SG field becomes symmetric.

# %%
lam = 0.05
mom = model.random_moments(jax.random.PRNGKey(1), m, kind="aug")
Fm = model.objective(lam).F
kA, kB, kH = jax.random.split(jax.random.PRNGKey(2), 3)
A = jax.random.normal(kA, (n, m))
B = jax.random.normal(kB, (n, n)) / np.sqrt(n)
H = jax.random.normal(kH, (n, m))
grad_AB = jax.grad(Fm, argnums=(0, 1))
_, (X_H, Y_H) = jax.jvp(lambda C: grad_AB(A, B, C, mom), (A,), (H,))
err_X = float(jnp.linalg.norm(X_H - (-B.T @ H @ mom.tau)))
err_Y = float(jnp.linalg.norm(Y_H - (-H @ mom.tau @ A.T)))
print(f"‖X[H] + BᵀHτ‖ = {err_X:.1e},  ‖Y[H] + HτAᵀ‖ = {err_Y:.1e}")
assert err_X < 1e-12 and err_Y < 1e-12

zero_tau = model.Moments(mom.rho, jnp.zeros_like(mom.tau), mom.sigma)
with_tau = I.exact_asymmetry(Fm, (A, B), mom, rule=rules.sg())["asymmetry"]
without_tau = I.exact_asymmetry(Fm, (A, B), zero_tau, rule=rules.sg())["asymmetry"]
print(f"SG asymmetry with the data's τ: {with_tau:.4f};  with τ = 0: {without_tau:.1e}")
assert with_tau > 0.1 and without_tau < 1e-13

# %% [markdown]
# ## Randomized, matrix-free test
# For models too large for $J$: with $w\sim N(0,I)$, $(J-J^\top)w=\texttt{jvp}(w)-\texttt{vjp}(w)$ and
# $\mathbb E\|(J-J^\top)w\|^2=\|J-J^\top\|_F^2$, $\mathbb E\|Jw\|^2=\|J\|_F^2$ (Hutchinson), so
# $\sqrt{\sum_i\|(J-J^\top)w_i\|^2/\sum_i\|Jw_i\|^2}$ estimates the ratio at the cost of one jvp and one vjp per probe.
# `probe_asymmetry` returns it with a delta-method standard error; `bilinear` gives $u^\top Jw-w^\top Ju$ exactly (two jvps).

# %%
probe_counts = [2, 4, 8, 16, 32, 64, 128] + ([] if SMALL else [256])
repeats = 12 if SMALL else 48
api = {}
for name, (F, z, batch) in problems.items():
    V = I.field_at(F, batch, rules.sg())
    r = I.probe_asymmetry(V, z, jax.random.PRNGKey(3), num_probes=64)
    api[name] = r
    print(f"{name:22s} exact {exact[name]:.4f}   probe(64) {r['asymmetry']:.4f} ± {r['asymmetry_se']:.4f}   "
          f"median |uᵀJw − wᵀJu| / (|uᵀJw| + |wᵀJu|) = {r['bilinear_relative_median']:.2f}")
    assert abs(r["asymmetry"] - exact[name]) < 4 * r["asymmetry_se"] + 0.03 * exact[name]
    # the bilinear probe is exact: compare with uᵀ(J − Jᵀ)w from the full Jacobian
    J = jacobians[name]
    u = jax.tree_util.tree_map(lambda a: jax.random.normal(jax.random.PRNGKey(4), a.shape), z)
    w = jax.tree_util.tree_map(lambda a: jax.random.normal(jax.random.PRNGKey(5), a.shape), z)
    uf, wf = (np.asarray(ravel_pytree(t)[0]) for t in (u, w))
    b_probe, b_exact = I.bilinear(V, z, u, w), float(uf @ (J - J.T) @ wf)
    print(f"{'':22s} bilinear probe {b_probe:.10f} vs uᵀ(J − Jᵀ)w {b_exact:.10f}")
    assert abs(b_probe - b_exact) < 1e-10 * (1 + abs(b_exact))

# %% [markdown]
# ### Spread of the probe estimate against the number of probes
# Re-using the same per-probe quantities $a_i=\|(J-J^\top)w_i\|^2$, $b_i=\|Jw_i\|^2$ on a pool of probes (one vmapped jvp and
# vjp), the estimate from $K$ probes is formed on `repeats` disjoint subsets. First a check that this re-implementation
# is the API's estimator (same key ⇒ same number), then the plot: mean ± one standard deviation over repeats, the
# API's 64-probe estimate with its delta-method s.e., and the exact value.

# %%
def per_probe(V, z, W):
    v, z_flat = I.flat_field(V, z)

    @jax.jit
    def ab(W):
        JW = jax.vmap(lambda w: jax.jvp(v, (z_flat,), (w,))[1])(W)
        _, vjp = jax.vjp(v, z_flat)
        JtW = jax.vmap(lambda w: vjp(w)[0])(W)
        return jnp.sum((JW - JtW) ** 2, axis=1), jnp.sum(JW**2, axis=1)

    return tuple(np.asarray(x) for x in ab(W))


fig, axes = plt.subplots(1, len(problems), figsize=(12, 4))
for ax, (name, (F, z, batch)) in zip(axes, problems.items()):
    V = I.field_at(F, batch, rules.sg())
    P = ravel_pytree(z)[0].size
    kw = jax.random.split(jax.random.PRNGKey(3), 3)[0]  # probe_asymmetry's own split
    W = jnp.concatenate([jax.random.normal(kw, (64, P)),
                         jax.random.normal(jax.random.PRNGKey(7), (repeats * max(probe_counts), P))])
    a, b = per_probe(V, z, W)
    assert abs(np.sqrt(a[:64].mean() / b[:64].mean()) - api[name]["asymmetry"]) < 1e-12
    pool_a, pool_b = a[64:], b[64:]
    means, stds = [], []
    for K in probe_counts:
        est = [np.sqrt(pool_a[i * K:(i + 1) * K].mean() / pool_b[i * K:(i + 1) * K].mean()) for i in range(repeats)]
        means.append(np.mean(est))
        stds.append(np.std(est))
    means, stds = np.asarray(means), np.asarray(stds)
    ax.fill_between(probe_counts, means - stds, means + stds, alpha=0.3, label=f"mean ± sd over {repeats} repeats")
    ax.plot(probe_counts, means, "o-", ms=4)
    ax.errorbar([64 * 1.1], [api[name]["asymmetry"]], yerr=[api[name]["asymmetry_se"]], fmt="ks", ms=4, capsize=3,
                label="probe_asymmetry(64) ± delta-method s.e.")
    ax.axhline(exact[name], color="tab:red", ls="--", label=f"exact {exact[name]:.3f}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("number of probes K")
    ax.set_ylabel("‖J − Jᵀ‖_F / ‖J‖_F estimate")
    ax.set_title(name)
    ax.legend(fontsize=7)
    print(f"{name:22s} sd over repeats: " + ", ".join(f"K={K}: {s:.3f}" for K, s in zip(probe_counts, stds)))
    assert stds[-1] < stds[0]  # the spread shrinks with K
    assert abs(means[-1] - exact[name]) < 3 * stds[-1] + 0.02 * exact[name]
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The stop-gradient pitfall (MATH.md §3)
# An oracle written as `grad(F)(θ, ψ, stop_gradient(θ))` gives the **same field values** as $V$ — it is exactly how the
# SG update is computed — but differentiating it again sees a frozen $\xi$: its Jacobian is the Hessian of
# $F(\cdot,\cdot,\xi)$ at fixed $\xi$, symmetric, and the Schwarz test wrongly says "integrable". `rules.field` takes the
# partial gradients with $\xi$ as a separate argument and substitutes $\xi=\theta$ afterwards.

# %%
for name, (F, z, batch) in problems.items():
    naive_grad = jax.grad(lambda th, ps: F(th, ps, jax.lax.stop_gradient(th), batch), argnums=(0, 1))
    V_naive = lambda zz: jax.tree_util.tree_map(jnp.negative, naive_grad(*zz))  # noqa: E731
    V_right = I.field_at(F, batch, rules.sg())
    same_values = float(jnp.linalg.norm(ravel_pytree(V_naive(z))[0] - ravel_pytree(V_right(z))[0]))
    naive = I.asymmetry_of(I.jacobian(V_naive, z))["asymmetry"]
    print(f"{name:22s} ‖V_naive(z) − V(z)‖ = {same_values:.1e}   asymmetry: naive {naive:.1e} (false verdict) "
          f"vs correct {exact[name]:.4f}")
    assert same_values < 1e-12  # identical update ...
    assert naive < 1e-13 and exact[name] > 0.1  # ... but a symmetric (wrong) Jacobian

# %% [markdown]
# ## Symbolic mixed partials (sympy)
# $n=2$, $m=1$, with $\rho$, $\tau$, $\lambda$ as symbols: $z=(a_{00},a_{10},b_{00},b_{01},b_{10},b_{11})$, 15 mixed pairs
# $\partial V_i/\partial z_j$ vs $\partial V_j/\partial z_i$. For SG they differ on the $\theta\theta$ pair (the $X-X^\top$ block) and on
# $\theta\psi$ pairs (the $Y$ block), never on a $\psi\psi$ pair; every entry of $J-J^\top$ is a multiple of $\tau$. For plain,
# all pairs agree.

# %%
sym = symbolic.mixed_partials(2, 1)
zs = sym["z"]
print(f"SG: {len(sym['sg_differ'])} of {len(zs) * (len(zs) - 1) // 2} mixed pairs differ:")
for i, j in sym["sg_differ"]:
    print(f"  ∂V/∂({zs[i]}, {zs[j]}):  (J − Jᵀ)_ij = {sp.factor(sym['sg_skew'][i, j])}")
ex = sym["example"]
print(f"e.g. ∂V_{ex['z_i']}/∂{ex['z_j']} = {ex['dVi_dzj']}\n     ∂V_{ex['z_j']}/∂{ex['z_i']} = {ex['dVj_dzi']}")
print("plain: every mixed pair agrees:", sym["plain_symmetric"])
assert sym["plain_symmetric"] and sym["plain_skew"].is_zero_matrix
assert len(sym["sg_differ"]) > 0
n_A = 2  # a00, a10 come first in z
assert all(i < n_A for i, _ in sym["sg_differ"])  # no ψψ pair differs
tau_syms = set(sym["data"]["tau"])
assert sym["sg_skew"].subs({t: 0 for t in tau_syms}).is_zero_matrix  # τ = 0 ⇒ symmetric

bf = symbolic.block_formulas(2, 2)
print("X[H] = −BᵀHτ and Y[H] = −HτAᵀ symbolically (n = m = 2):",
      bf["X_minus_formula"].is_zero_matrix and bf["Y_minus_formula"].is_zero_matrix)
assert bf["X_minus_formula"].is_zero_matrix and bf["Y_minus_formula"].is_zero_matrix

if not SMALL:
    sym22 = symbolic.mixed_partials(2, 2)
    N = len(sym22["z"])
    print(f"n = m = 2: {len(sym22['sg_differ'])} of {N * (N - 1) // 2} SG pairs differ; plain symmetric: {sym22['plain_symmetric']}")
    assert sym22["plain_symmetric"] and sym22["sg_differ"]
