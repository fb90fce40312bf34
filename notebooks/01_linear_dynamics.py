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
    ax.set(xlabel="$a_1$", ylabel="$a_2$", title=f"{name}: paths of $a_t$, n = 2")
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
ax.set_ylabel(r"$E(\theta_t, \psi_t)$")
ax.legend()
plt.show()

increased = {name: [bool(np.any(np.diff(np.asarray(s["E"])) > 1e-12)) for s in paths[name]] for name in paths}
print({k: f"{sum(v)}/{len(v)} runs with E increasing" for k, v in increased.items()})
assert not any(increased["plain"])

# %% [markdown]
# ## Why SG escapes collapse
#
# Take the smallest instance, $n = m = 1$: encoder $a$, predictor $b$, teacher $c$, and
# $F(a,b,c)=\tfrac12\rho b^2a^2-\tau bac+\tfrac12\sigma c^2+\tfrac\lambda2(a^2+b^2)$ with
# $\sigma=\tau^2/\rho$. **Plain** gradient descent moves $a$ along $-\partial_a E$, $E(a,b)=F(a,b,a)$, which also
# differentiates through the target:
# $\dot a=-a\big[(\sqrt\rho\,b-\tau/\sqrt\rho)^2+\lambda\big]\le-\lambda a$: whatever the predictor does, the
# encoder shrinks, and the origin is the only place to go (Lemma 4.3). **SG** drops the target's share of that
# derivative: $\dot a=-\partial_aF|_{c=a}=a\,(\tau b-\rho b^2-\lambda)$. The pull $\tau b\,a$ towards the target is
# no longer cancelled, so $a$ *grows* whenever the predictor gain $b$ sits in the window
# $\tau b-\rho b^2>\lambda$, which exists exactly when $\Delta=\tau^2-4\rho\lambda>0$. Meanwhile
# $\dot b=a^2(\tau-\rho b)-\lambda b$ pushes $b$ into that window when $a$ is not too small. Starts with a large
# enough $|a|$ or $b$ cross into it and end at $(\pm r_2, r_2)$ (the outer sphere; $b = |a|$ there, as
# $B^\top B = AA^\top$ says); the rest still collapse, across the saddles at $(\pm r_1, r_1)$. The phase plots
# below are the library's fields (`rules.field`) of the two rules on this instance, with the window shaded.

# %%
def scalar_field(rule):
    V = rules.field(rule, obj.F)
    return jax.jit(jax.vmap(lambda a, b: jnp.stack([x[0, 0] for x in V(a[None, None], b[None, None], mom)])))


A_, B_ = np.meshgrid(np.linspace(-1.2, 1.2, 41), np.linspace(-0.3, 1.2, 41))
fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), sharey=True)
window = ((tau - np.sqrt(tau**2 - 4 * rho * lam)) / (2 * rho), (tau + np.sqrt(tau**2 - 4 * rho * lam)) / (2 * rho))
for ax, rule in zip(axes, (rules.plain(), rules.sg())):
    d = np.asarray(scalar_field(rule)(jnp.asarray(A_.ravel()), jnp.asarray(B_.ravel()))).reshape(A_.shape + (2,))
    ax.streamplot(A_, B_, d[..., 0], d[..., 1], color="0.35", density=1.1, linewidth=0.7, arrowsize=0.9)
    if rule.name == "sg":
        ax.axhspan(*window, color="tab:blue", alpha=0.12, label=r"growth window $\tau b-\rho b^2>\lambda$")
        ax.plot([-r2, r2], [r2, r2], "o", color="tab:blue", ms=8, label=r"$(\pm r_2, r_2)$: stable")
        ax.plot([-r1, r1], [r1, r1], "s", color="tab:red", ms=6, label=r"$(\pm r_1, r_1)$: saddles")
    ax.plot(0, 0, "k*", ms=10, label="origin (collapse)")
    ax.set(xlabel="encoder $a$", title=f"{rule.name}: field on $(a, b)$, n = m = 1")
    ax.legend(fontsize=8, loc="lower right")
axes[0].set_ylabel("predictor $b$")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## How EMA differs
#
# EMA keeps the teacher as its own variable that follows the encoder, $\dot c=k(a-c)$ with
# $k=(1-\alpha)/\eta$, and the encoder is pulled towards the target built from $c$:
# $\dot a=\tau bc-\rho b^2a-\lambda a$. At $c=a$ this is SG, so the equilibria are the same (with $c=a$) and the
# outer sphere is stable for every $k>0$ (Prop 4.11); what changes is the way there. A fast teacher (large $k$)
# hugs the diagonal $c=a$ and moves like SG; a slow one lags: the encoder chases an old target, overshoots
# $c$ and the path bends away from the diagonal before both settle at $r_2$. As $k\to0$ the teacher freezes and
# the target stops moving. The picture follows one start in the (encoder, teacher) plane for three rates.

# %%
def ema_path(k, z0, T=400.0, dt=0.05):
    """(a_t, c_t) of the EMA flow by RK4, every 10 steps (one jitted scan)."""
    V = rules.field(rules.ema(), obj.F, k=k)

    def ten_steps(z, _):
        z = jax.lax.fori_loop(0, 10, lambda i, w: dynamics.rk4_step(lambda u: V(u[0], u[1], u[2], mom), w, dt), z)
        return z, jnp.stack([z[0][0, 0], z[2][0, 0]])

    _, path = jax.jit(lambda z: jax.lax.scan(ten_steps, z, None, length=int(T / dt) // 10))(z0)
    return np.r_[[[float(z0[0][0, 0]), float(z0[2][0, 0])]], np.asarray(path)]


z0 = (jnp.array([[0.15]]), jnp.array([[0.5]]), jnp.array([[0.02]]))  # a, b, c: the teacher starts behind
fig, ax = plt.subplots(figsize=(5.4, 4.6))
for k, color in zip((0.05, 1.0, 20.0), ("tab:red", "tab:orange", "tab:green")):
    path = ema_path(k, z0)
    ax.plot(path[:, 0], path[:, 1], color=color, label=f"EMA, k = {k:g}")
ax.plot([0, 0.9], [0, 0.9], "k:", lw=0.8, label="teacher = encoder ($c = a$, SG)")
ax.plot(r2, r2, "o", color="tab:blue", ms=8, label=r"$(r_2, r_2)$")
ax.plot(0.15, 0.02, "kx", ms=8, label="start")
ax.set(xlabel="encoder $a$", ylabel="teacher $c$", title="EMA in the (encoder, teacher) plane, n = m = 1")
ax.legend(fontsize=8)
plt.show()

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
plt.semilogy(ts, norms, label=r"$\|A(t)\|$ (plain flow)")
plt.semilogy(ts, bound, "--", label=r"$e^{-\lambda t}\|A(0)\|$")
plt.xlabel("time $t$")
plt.ylabel(r"$\|A(t)\|$")
plt.legend()
plt.show()
