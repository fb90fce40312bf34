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
# # Equilibria and stability of the linear model (Prop 4.5 – 4.11)
#
# Linear Siamese model of §4: $f_\theta(x)=Ax$ ($A\in\mathbb R^{n\times m}$, $n>m$), $g_\psi(z)=Bz$,
# $\rho=\mathbb E[xx^\top]$, $\tau=\mathbb E[yx^\top]$, weight decay $\lambda>0$. The SG field (Lemma 4.1) is
#
# $$\dot A=-(B^\top R+\lambda A),\qquad \dot B=-(RA^\top+\lambda B),\qquad R=BA\rho-A\tau .$$
#
# With $S=A^\top A$ and $M=S\rho+\lambda I$, $(A,B)$ is an SG (and, with $C=A$, EMA) equilibrium iff
#
# $$\text{(i)}\ B=A\tau M^{-1}A^\top,\qquad \text{(ii)}\ MSM=S\tau^\top S\tau .$$
#
# * **Prop 4.5** — for full rank, (ii) becomes the $m(m+1)/2$ quadratics $(\rho S+\lambda I)(S\rho+\lambda I)=\tau^\top S\tau$
#   ($\tau^\top$ on the *left*), with at most $2^{m(m+1)/2}$ isolated solutions (Bézout).
# * **Cor 4.6** — each real $S_k\succ0$ gives a variety $\mathcal E_k=\{(U\sqrt{S_k},\,U\sqrt{S_k}\,\tau M_k^{-1}\sqrt{S_k}U^\top): U^\top U=I_m\}$
#   of dimension $nm-m(m+1)/2$, one $O(n)$-orbit of $(A,B)\mapsto(QA,QBQ^\top)$.
# * **Prop 4.10** — stability from the Jacobian spectrum; **Prop 4.11** — the $m=1$ spheres in closed form.
#
# Code: the package `dualjax.linear.equilibria` (`system.py`: Prop 4.5's equation and Prop 4.7; `varieties.py`: Cor 4.6;
# the solvers `exact.py`, `homotopy.py`, `newton.py`; `enumeration.py`), `dualjax.linear.orbits` (the $O(n)$ orbits)
# and `dualjax.linear.stability` (Prop 4.10); see `docs/theory.md`.

# %%
import os

SMALL = bool(os.environ.get("DUALJAX_NOTEBOOK_SMALL"))  # the test suite runs notebooks small

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from dualjax import rules
from dualjax.linear import equilibria as eqm
from dualjax.linear import model
from dualjax.linear import stability as st

jax.config.update("jax_enable_x64", True)

# %% [markdown]
# ## One $m=2$ instance
# Augmentation-like data (`random_moments(kind="aug")`: $x\sim N(0,\rho)$, $\rho=LL^\top/m+0.1I$, $y=(I+0.3G)x+0.3\varepsilon$),
# $\lambda=0.05$, width $n=4$. Seed 8 is an instance with four positive definite solutions, so there is something to classify.
# First Prop 4.7's a-priori check: a full-rank equilibrium needs $\|\tau\|_2^2\ge4\lambda\lambda_{\min}(\rho)$, and then $\|S\|_2\le\|\tau\|_2^2/\lambda_{\min}(\rho)^2$.

# %%
m, n, lam, seed = 2, 4, 0.05, 8
mom = model.random_moments(jax.random.PRNGKey(seed), m, kind="aug")
rho, tau = np.asarray(mom.rho), np.asarray(mom.tau)
print("ρ =", np.round(rho, 4).tolist())
print("τ =", np.round(tau, 4).tolist())
ex = eqm.existence(mom, lam)
print(f"‖τ‖₂² = {ex['tau_norm_sq']:.4f} ≥ 4λλ_min(ρ) = {ex['threshold_4_lam_lmin']:.4f}: {ex['necessary_condition_holds']};"
      f"  a-priori bound ‖S‖₂ ≤ {ex['S_norm_bound']:.3f}")
assert ex["necessary_condition_holds"]

# %% [markdown]
# ## Prop 4.5: every real symmetric solution, against Bézout
# `enumerate_equilibria(method="exact")` computes a Gröbner basis over $\mathbb Q$, isolates the real roots of the
# univariate polynomial exactly and polishes them by Newton on the float data. It returns the complex count, every
# real symmetric solution (PD or not), and the PSD equilibria of every rank (rank-deficient ones by many-start
# Levenberg–Marquardt, which is indicative only).

# %%
enum = eqm.enumerate_equilibria(mom, lam, n=n, method="exact", seed=0, starts=64 if SMALL else 256)
c = enum.counts()
print(f"complex solutions: {c['complex_full_rank']}  (Bézout bound 2^(m(m+1)/2) = {c['bezout_bound']});"
      f"  real: {c['real_full_rank']};  positive definite: {c['positive_definite']};  PSD equilibria by rank: {c['by_rank']}")
assert c["complex_full_rank"] <= c["bezout_bound"] == 2 ** (m * (m + 1) // 2)
assert c["complex_full_rank"] == eqm.expected_complex_count(m) == 6  # generic count for m = 2 (Gröbner, exact)
assert c["positive_definite"] >= 2

rows = []
for k, S in enumerate(enum.real_full_rank):
    res = np.linalg.norm(eqm.full_rank_residual(S, rho, tau, lam)) / (1 + np.linalg.norm(S) ** 2)
    lhs = (rho @ S + lam * np.eye(m)) @ (S @ rho + lam * np.eye(m))
    wrong = np.linalg.norm(lhs - tau @ S @ tau.T) / np.linalg.norm(lhs)  # relative
    eig = np.linalg.eigvalsh(S)
    rows.append((k, eig, res, wrong))
    print(f"S_{k} = {np.round(S, 4).tolist()}  eig(S) = {np.round(eig, 4)}  Prop 4.5 residual {res:.1e}  "
          f"(transposed τSτᵀ form, relative: {wrong:.2f})")
    assert res < 1e-10  # (ρS + λI)(Sρ + λI) = τᵀSτ
    assert wrong > 1e-3  # the transposed equation is a different one
print("every real solution is positive definite:", all(r[1].min() > 0 for r in rows))

# %% [markdown]
# The homotopy solver (total-degree continuation in JAX over the $2^{m(m+1)/2}=8$ start paths) must find the same roots.

# %%
hom = eqm.solve_homotopy(rho, tau, lam, seed=0)
print(f"homotopy: {hom.complex_count} finite complex roots from {hom.paths} paths ({hom.diverged} went to infinity), "
      f"{len(hom.real)} real")
gap = max(min(np.linalg.norm(S - T) for T in hom.real) for S in enum.real_full_rank)
print(f"max distance exact ↔ homotopy real roots: {gap:.1e}")
assert hom.complex_count == c["complex_full_rank"] and len(hom.real) == c["real_full_rank"] and gap < 1e-8

# %% [markdown]
# ## Rank-deficient equilibria
# Equation (ii) also has solutions with $\operatorname{rank}S=r<m$ (partial collapse; the origin is $r=0$). They are not
# roots of Prop 4.5's full-rank equation, and their orbits have dimension $nr-r(r+1)/2$.

# %%
for e in enum.equilibria:
    if e.positive_definite:
        continue
    fr = np.linalg.norm(eqm.full_rank_residual(e.S, rho, tau, lam))
    print(f"rank {e.rank}: S = {np.round(e.S, 4).tolist()}  (ii) residual {e.residual:.1e}, field residual "
          f"{e.field_residual:.1e}, Prop 4.5 residual {fr:.3f}, orbit dim {st.orbit_dimension(n, e.rank)}")
    assert e.residual < 1e-10 and e.field_residual < 1e-10
    assert fr > 1e-3  # not a solution of the full-rank system
assert any(e.rank == 0 for e in enum.equilibria) and any(0 < e.rank < m for e in enum.equilibria)

# %% [markdown]
# ## Cor 4.6: points of the varieties
# Sample $A=U\sqrt S$ with $U$ Haar-random on the Stiefel manifold ($U^\top U=I$), $B=A\tau M^{-1}A^\top$. Each point
# must zero the SG field — here checked with the autodiff field `rules.field("sg", F)` of the moment objective,
# independent of the closed form — and satisfy $A^\top A=S$ and $B^\top B=AA^\top$.

# %%
V_sg = jax.jit(rules.field(rules.sg(), model.objective(lam).F))
num = 4 if SMALL else 16
worst = {"field": 0.0, "gram": 0.0, "BtB": 0.0}
for k, e in enumerate(enum.positive_definite):
    As, Bs = eqm.sample_variety(e.S, mom, lam, n, jax.random.PRNGKey(k), num)
    for A, B in zip(As, Bs):
        dA, dB = V_sg(jnp.asarray(A), jnp.asarray(B), mom)
        worst["field"] = max(worst["field"], float(jnp.sqrt(jnp.sum(dA**2) + jnp.sum(dB**2))))
        worst["gram"] = max(worst["gram"], float(np.linalg.norm(A.T @ A - e.S)))
        worst["BtB"] = max(worst["BtB"], float(np.linalg.norm(B.T @ B - A @ A.T)))
print({k: f"{v:.1e}" for k, v in worst.items()}, f"over {num} points of each of {len(enum.positive_definite)} varieties")
assert worst["field"] < 1e-10 and worst["gram"] < 1e-10 and worst["BtB"] < 1e-10

# %% [markdown]
# ## Prop 4.10: Jacobian spectra
# At an equilibrium of rank $r$ the $O(n)$ symmetry puts the orbit tangent $T=\{(\Omega A,\Omega B-B\Omega):\Omega^\top=-\Omega\}$ in
# $\ker J$, so $J$ has (at least) $\dim T=nr-r(r+1)/2$ zero eigenvalues. Stability of the *component* is read off the
# transversal spectrum $\operatorname{spec}(N^\top JN)$, $N\perp T$: `stable` if every Re $<0$, `saddle` with the number of
# Re $>0$. `analyze` uses a symmetry-reduced block computation; `method="dense"` is the plain `jacfwd` + `eigvals`
# ($P=nm+n^2=24$ here), and the two must agree.

# %%
reports = []
for e in enum.equilibria:
    sg = st.analyze(e.S, mom, lam, n, rule=rules.sg())
    dense = st.analyze(e.S, mom, lam, n, rule=rules.sg(), method="dense")
    ema = st.analyze(e.S, mom, lam, n, rule=rules.ema(), k=1.0)
    gap = max(np.min(np.abs(dense.spectrum - mu)) for mu in sg.spectrum)
    assert gap < 1e-8 and dense.kind == sg.kind and dense.n_unstable == sg.n_unstable
    reports.append((e, sg, ema))
    print(f"rank {e.rank} {'PD ' if e.positive_definite else '   '} tr S = {np.trace(e.S):7.4f}  zeros {sg.n_zero:2d} / orbit dim "
          f"{sg.orbit_dim:2d}  SG: {sg.kind:6s} ({sg.n_unstable} unstable, max Re {sg.max_real:+.4f})  "
          f"EMA k=1: {ema.kind} ({ema.n_unstable})" + (f"  η_max = {sg.eta_max:.4f}" if sg.kind == st.STABLE else ""))
    assert sg.zeros_match_orbit and ema.zeros_match_orbit and sg.tangent_residual < 1e-12

# %% [markdown]
# The zero count above comes from the symmetry-reduced spectrum. A direct check at a *random* point of each variety
# (not the canonical $U=[I;0]$): count $|\mu|\le10^{-8}$ in `eigvals` of the full `jacfwd` Jacobian.

# %%
for e, sg, _ in reports:
    A, B = (x[0] for x in eqm.sample_variety(e.S, mom, lam, n, jax.random.PRNGKey(99), 1))
    mu = np.linalg.eigvals(st.sg_jacobian(A, B, mom, lam))
    n_zero = int(np.sum(np.abs(mu) <= 1e-8 * max(1.0, np.abs(mu).max())))
    assert n_zero == st.orbit_dimension(n, e.rank) == n * e.rank - e.rank * (e.rank + 1) // 2, (n_zero, e.rank)
print("zero eigenvalues = nr − r(r+1)/2 at a random point of every component")

# %%
ncol = 4
nrow = -(-len(reports) // ncol)
fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol, 3.0 * nrow), squeeze=False)
for ax, (e, sg, _) in zip(axes.flat, reports):
    mu = sg.spectrum
    zero = np.abs(mu) <= 1e-7 * max(1.0, np.abs(mu).max())
    ax.axvline(0, color="k", lw=0.6)
    ax.axhline(0, color="k", lw=0.3)
    ax.scatter(mu.real[~zero], mu.imag[~zero], s=16, c=np.where(mu.real[~zero] > 0, "tab:red", "tab:blue"))
    ax.scatter(mu.real[zero], mu.imag[zero], s=40, marker="x", c="k", label=f"0 ×{int(zero.sum())}")
    ax.set_title(f"rank {e.rank}, tr S={np.trace(e.S):.2f}: {sg.kind}"
                 + (f" ({sg.n_unstable})" if sg.n_unstable else ""), fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
for ax in axes.flat[len(reports):]:
    ax.axis("off")
fig.suptitle(f"SG Jacobian spectra at every equilibrium (m={m}, n={n}, λ={lam}); red: Re μ > 0")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Classification, and the summary's claim about saddles
# The paper's summary says saddle equilibria "only appear when $m=1$ and never when $m>1$". The computation disagrees:
# exactly one PD component is stable — the one with the largest trace, which is also the Loewner-maximal one — and every
# other PD component is a saddle, for SG and for EMA.

# %%
pd = [(e, sg, ema) for e, sg, ema in reports if e.positive_definite]
stable_pd = [(e, sg) for e, sg, _ in pd if sg.kind == st.STABLE]
saddles_pd = [(e, sg) for e, sg, _ in pd if sg.kind == st.SADDLE]
print(f"{len(pd)} PD components: {len(stable_pd)} stable, {len(saddles_pd)} saddles with "
      f"{sorted(sg.n_unstable for _, sg in saddles_pd)} unstable directions")
assert len(stable_pd) == 1
S_max = stable_pd[0][0].S
assert np.isclose(np.trace(S_max), max(np.trace(e.S) for e, _, _ in pd))
assert all(np.linalg.eigvalsh(S_max - e.S).min() >= -1e-10 for e, _, _ in pd)  # Loewner maximal
assert all(sg.kind == ema.kind and sg.n_unstable == ema.n_unstable for _, sg, ema in pd)
if saddles_pd:
    print("→ the summary's 'saddles never for m > 1' is contradicted: m = 2 has PD saddle components")
assert saddles_pd, "expected PD saddles at m = 2 for this instance"
print("origin:", [sg.kind for e, sg, _ in reports if e.rank == 0], "(J = −λI)")

# %% [markdown]
# ## Prop 4.11: $m=1$, the two spheres
# $\Delta=\tau^2-4\rho\lambda\ge0$; equilibria fill the spheres $\|a\|=r_{1,2}=(|\tau|\mp\sqrt\Delta)/(2\rho)$ with
# $B=\operatorname{sign}(\tau)aa^\top/r$. With $p=\rho r^2$ the SG spectrum is (MATH.md §6)
#
# $$0^{\times(n-1)},\ (-\lambda)^{\times(n-1)^2},\ (-2\lambda)^{\times n},\ (-(p+\lambda))^{\times(n-1)},\ \lambda-p=\mp r\sqrt\Delta ,$$
#
# so the outer sphere $S_2$ is stable and the inner $S_1$ a saddle with one (radial) unstable direction. EMA adds
# $(-k)^{\times(n-1)}$ and replaces the radial eigenvalue by the roots of $\mu^2+(2p+k)\mu+k(p-\lambda)$.

# %%
r_, t_, l_, n1 = 1.0, 0.8, 0.05, 3
mom1 = model.moments(r_, t_)
delta = float(eqm.discriminant(r_, t_, l_))
r1, r2 = (float(r) for r in eqm.radii(r_, t_, l_))
print(f"Δ = {delta:.3f}, r₁ = {r1:.4f}, r₂ = {r2:.4f}, r₁r₂ = {r1 * r2:.4f} = λ/ρ")
enum1 = eqm.enumerate_equilibria(mom1, l_, n=n1, method="closed")
assert np.allclose(sorted(float(e.S[0, 0]) for e in enum1.positive_definite), [r1**2, r2**2])


def closed_form_sg(r, n):
    p = r_ * r**2
    return np.sort_complex(np.concatenate([np.zeros(n - 1), np.full((n - 1) ** 2, -l_), np.full(n, -2 * l_),
                                           np.full(n - 1, -(p + l_)), [l_ - p]]).astype(complex))


def closed_form_ema(r, n, k):
    p = r_ * r**2
    quad = np.roots([1.0, 2 * p + k, k * (p - l_)])
    return np.sort_complex(np.concatenate([np.zeros(n - 1), np.full((n - 1) ** 2, -l_), np.full(n, -2 * l_),
                                           np.full(n - 1, -(p + l_)), np.full(n - 1, -k), quad]).astype(complex))


for name, r, expect in [("S₂ (outer)", r2, st.STABLE), ("S₁ (inner)", r1, st.SADDLE)]:
    S = np.array([[r**2]])
    sg = st.analyze(S, mom1, l_, n1, rule=rules.sg(), method="dense")
    err = np.max(np.abs(np.sort_complex(sg.spectrum) - closed_form_sg(r, n1)))
    print(f"{name}: SG {sg.kind} ({sg.n_unstable} unstable), |spectrum − closed form| = {err:.1e}, radial λ − p = "
          f"{l_ - r_ * r**2:+.4f} vs ∓r√Δ = {(-1 if r == r2 else 1) * r * np.sqrt(delta):+.4f}")
    assert sg.kind == expect and err < 1e-10 and sg.n_unstable == (r == r1)
    for k in (0.05, 1.0, 20.0):
        ema = st.analyze(S, mom1, l_, n1, rule=rules.ema(), k=k, method="dense")
        err = np.max(np.abs(np.sort_complex(ema.spectrum) - closed_form_ema(r, n1, k)))
        assert ema.kind == expect and err < 1e-9, (k, ema.kind, err)
print("EMA spectra match the closed form and the verdicts for k ∈ {0.05, 1, 20}")

# %% [markdown]
# ## Discrete time: the largest stable step
# SG with step $\eta$, $z^+=z+\eta v(z)$, has Jacobian $I+\eta J$; the component is (transversally) stable iff
# $|1+\eta\mu|<1$ for every transversal $\mu$, i.e. $\eta<\eta_{\max}=\min_\mu 2|\operatorname{Re}\mu|/|\mu|^2$. For $m=1$ at $S_2$:
# $\eta_{\max}=2/(|\tau|r_2)$.

# %%
eta1 = st.analyze(np.array([[r2**2]]), mom1, l_, n1).eta_max
eta1_closed = float(eqm.max_stable_step(r_, t_, l_))
print(f"m = 1: η_max from the spectrum {eta1:.6f}, closed form 2/(|τ|r₂) = {eta1_closed:.6f}")
assert abs(eta1 - eta1_closed) < 1e-9

sg_max = st.analyze(S_max, mom, lam, n)
eta_max = sg_max.eta_max
for f in (0.99, 1.01):
    print(f"m = 2, S_max: transversal spectral radius of I + ηJ at η = {f}·η_max ({eta_max:.4f}): "
          f"{st.sg_step_radius(sg_max.transversal, f * eta_max):.5f}")
assert st.sg_step_radius(sg_max.transversal, 0.99 * eta_max) < 1 < st.sg_step_radius(sg_max.transversal, 1.01 * eta_max)

# %% [markdown]
# Simulation: start at a random point of $\mathcal E_{\max}$ perturbed by $10^{-4}$ and iterate discrete SG with
# $\eta=0.9\,\eta_{\max}$ and $1.1\,\eta_{\max}$. The size of the field $\|v(z_t)\|$ measures the distance to the equilibrium set.

# %%
A0, B0 = (jnp.asarray(x[0]) for x in eqm.sample_variety(S_max, mom, lam, n, jax.random.PRNGKey(5), 1))
kA, kB = jax.random.split(jax.random.PRNGKey(6))
A0 = A0 + 1e-4 * jax.random.normal(kA, A0.shape)
B0 = B0 + 1e-4 * jax.random.normal(kB, B0.shape)
steps = 1_500 if SMALL else 6_000


@jax.jit
def run_sg(eta):
    def body(z, _):
        dA, dB = V_sg(z[0], z[1], mom)
        return (z[0] + eta * dA, z[1] + eta * dB), jnp.sqrt(jnp.sum(dA**2) + jnp.sum(dB**2))

    return jax.lax.scan(body, (A0, B0), None, length=steps)[1]


curves = {f: np.asarray(run_sg(f * eta_max)) for f in (0.9, 1.1)}
for f, v in curves.items():
    plt.semilogy(np.where(np.isfinite(v), v, np.nan), label=f"η = {f} η_max")
plt.xlabel("step")
plt.ylabel("‖v(z_t)‖")
plt.title(f"discrete SG near the stable component, η_max = {eta_max:.4f}")
plt.legend()
plt.show()
print({f: f"{v[0]:.1e} → {v[-1]:.1e}" for f, v in curves.items()})
assert curves[0.9][-1] < 1e-3 * curves[0.9][0]
assert not np.isfinite(curves[1.1][-1]) or curves[1.1][-1] > 1e2 * curves[1.1][0]

# %% [markdown]
# For EMA, the discrete map $(A,B,C)\mapsto(A^+,B^+,\alpha C+(1-\alpha)A^+)$ has its own Jacobian; `ema_eta_max` finds
# the largest stable $\eta$ at fixed $\alpha$ by bisection on the transversal spectral radius.
# In this instance EMA's limit is about half of SG's (a direct simulation at $\alpha=0.99$ agrees: $\eta=1.1$ converges,
# $\eta=1.4$ does not), whereas in MATH.md §5's example it was slightly larger: neither ordering holds in general.

# %%
alphas = (0.9, 0.99) if SMALL else (0.9, 0.99, 0.996)
for a in alphas:
    eta_ema = st.ema_eta_max(S_max, mom, lam, n, a, eta_hi=4 * eta_max, iters=20 if SMALL else 40)
    print(f"α = {a}: EMA η_max = {eta_ema:.4f}  (SG η_max = {eta_max:.4f})")
    assert eta_ema > 0
