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
# # Linear dynamics of SG, EMA and plain gradient descent
#
# The linear Siamese model of §4: encoder $f_\theta(x) = Ax$ ($A\in\mathbb R^{n\times m}$), predictor
# $g_\psi(z) = Bz$, teacher $f_\xi(y) = Cy$. With $\rho=\mathbb E[xx^\top]$, $\tau=\mathbb E[yx^\top]$,
#
# $$F(A,B,C)=\tfrac12\mathbb E\|BAx-Cy\|^2+\tfrac\lambda2(\|A\|^2+\|B\|^2),\qquad E(A,B)=F(A,B,A).$$
#
# * **plain** descends $E$ (the teacher gradient included) and collapses (Lemma 4.3);
# * **SG** uses $\xi=\mathrm{sg}(\theta)$, **EMA** $\xi_t=\alpha\xi_{t-1}+(1-\alpha)\theta_t$; for $m=1$ they end on
#   the outer sphere $\|a\|=r_2$ when $\Delta=\tau^2-4\rho\lambda\ge0$ (Prop 4.11), and $E$ increases on the way (Prop 3.1).

# %%
import os

SMALL = bool(os.environ.get("DUALJAX_NOTEBOOK_SMALL"))  # the test suite runs notebooks small

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from dualjax import dynamics, rules
from dualjax.linear import model, spheres

jax.config.update("jax_enable_x64", True)

# %% [markdown]
# ## One instance, three rules, same initial point

# %%
rho, tau, lam, n = 1.0, 0.8, 0.05, 2
mom = model.moments(rho, tau)
r1, r2 = (float(r) for r in spheres.radii(rho, tau, lam))
print(f"Δ = {float(spheres.discriminant(rho, tau, lam)):.3f}, inner sphere r1 = {r1:.4f}, outer sphere r2 = {r2:.4f}")

obj = model.objective(lam)
steps = 2_000 if SMALL else 20_000
every = 10
starts = [model.init_params(jax.random.PRNGKey(s), n, 1, scale=0.3) for s in range(4 if SMALL else 12)]

paths = {}
RULES = (rules.plain(), rules.sg(), rules.ema(0.99))  # rule objects; rules.get(name) builds one by name
for rule in RULES:
    init, step = rules.make_step(obj.F, rule, optax.sgd(0.05))
    run = jax.jit(lambda s: dynamics.trajectory(step, s, mom, num_steps=steps, every=every, E=obj.E))
    paths[rule.name] = [run(init(A0, B0))[1] for A0, B0 in starts]

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
circle = np.linspace(0, 2 * np.pi, 200)
for ax, name in zip(axes, paths):
    for (A0, _), snaps in zip(starts, paths[name]):
        a = np.concatenate([np.asarray(A0)[None, :, 0], np.asarray(snaps["theta"])[:, :, 0]])
        ax.plot(a[:, 0], a[:, 1], lw=1)
        ax.plot(a[0, 0], a[0, 1], "k.", ms=4)
    for r, style, label in [(r1, ":", "S₁ (saddle)"), (r2, "--", "S₂ (stable)")]:
        ax.plot(r * np.cos(circle), r * np.sin(circle), "k" + style, lw=0.8, label=label)
    ax.set_aspect("equal")
    ax.set_title(f"{name}: a ∈ R², n = 2")
    ax.legend(fontsize=7, loc="lower right")
plt.tight_layout()
plt.show()

# %% [markdown]
# Plain gradient descent collapses every start to the origin; SG and EMA land on the outer circle.
# Along the way E goes *up* for SG and EMA:

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, color in zip(paths, ["gray", "tab:blue", "tab:orange"]):
    for snaps in paths[name][:3]:
        ax.plot(np.arange(1, len(snaps["E"]) + 1) * every, snaps["E"], color=color, lw=1)
    ax.plot([], [], color=color, label=name)
ax.set_xscale("log")
ax.set_xlabel("step")
ax.set_ylabel("E(θ_t, ψ_t)")
ax.legend()
plt.show()

increased = {name: [bool(np.any(np.diff(np.asarray(s["E"])) > 1e-12)) for s in paths[name]] for name in paths}
print({k: f"{sum(v)}/{len(v)} runs with E increasing" for k, v in increased.items()})
assert not any(increased["plain"])

# %% [markdown]
# ## Lemma 4.3: the exponential bound for plain gradient flow
# $\frac{d}{dt}\|A\|^2 = -4q - 2\lambda\|A\|^2$ gives $\|A(t)\| \le e^{-\lambda t}\|A(0)\|$.

# %%
V = rules.field(rules.plain(), obj.F)
z = model.init_params(jax.random.PRNGKey(7), 3, 1, scale=3.0)
dt, T = 0.01, (20.0 if SMALL else 100.0)
rk4 = jax.jit(lambda z: dynamics.rk4_step(lambda w: V(w[0], w[1], mom), z, dt))
ts, norms = [0.0], [float(jnp.linalg.norm(z[0]))]
for i in range(1, int(T / dt) + 1):
    z = rk4(z)
    if i % 50 == 0:
        ts.append(i * dt)
        norms.append(float(jnp.linalg.norm(z[0])))
ts, norms = np.array(ts), np.array(norms)
bound = norms[0] * np.exp(-lam * ts)
assert np.all(norms <= bound * (1 + 1e-9))
plt.semilogy(ts, norms, label="‖A(t)‖ (plain flow)")
plt.semilogy(ts, bound, "--", label="e^{−λt}‖A(0)‖")
plt.xlabel("t")
plt.legend()
plt.show()
