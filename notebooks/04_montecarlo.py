# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The $m=1$ Monte Carlo study (§4 "synthetic data", Prop 4.11)
#
# With $m=1$ the encoder is a vector $a\in\mathbb R^n$, the predictor $B\in\mathbb R^{n\times n}$, and $\rho,\tau$ are scalars.
# Prop 4.11: with $\Delta=\tau^2-4\rho\lambda$, the non-zero SG/EMA equilibria are the spheres $\|a\|=r_{1,2}$,
#
# $$r_{1,2}=\frac{|\tau|\mp\sqrt\Delta}{2\rho}\qquad(\text{only when }\Delta\ge0),$$
#
# where $S_1$ ($r_1$) is a saddle and $S_2$ ($r_2$) is stable. When $\Delta<0$ the origin is the only equilibrium.
#
# The paper draws $\rho\sim U[0,3]$, $\tau\sim U[-1,1]$, $\lambda\sim U[0.01,0.1]$ and runs 10,000 trials. It reports that
# **EMA** ends on the outer sphere in 92.8 % of trials and at the origin in 7.2 %, and **SG** in 82.0 % / 18.0 %.
# It also says the inner sphere is never reached.
#
# Code: the package `dualjax.linear.montecarlo` (one trial is a pure function of `(key, index)`, run in a sharded pool;
# `mc.study`, `mc.summary`, ...) and its `figures` module. See `docs/montecarlo.md` and MATH.md §7.

# %%
import os
import tempfile
import time

SMALL = bool(os.environ.get("DUALJAX_NOTEBOOK_SMALL"))  # the test suite runs notebooks small

import jax
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, Markdown, display

from dualjax import rules
from dualjax.linear import montecarlo as mc
from dualjax.linear.montecarlo import figures  # every figure is written to a PNG and displayed
from dualjax.linear import spheres

jax.config.update("jax_enable_x64", True)

OUT = os.environ.get("DUALJAX_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="dualjax_mc_")
os.makedirs(OUT, exist_ok=True)
TRIALS = 1_000 if SMALL else 10_000
PAPER = {"ema": {"outer": 0.928, "origin": 0.072}, "sg": {"outer": 0.820, "origin": 0.180}}
print(f"{TRIALS} trials per rule on {jax.device_count()} device(s); figures in {OUT}")

# %% [markdown]
# ## How many trials can have a non-zero end at all? $P(\Delta\ge0)$
# A non-zero equilibrium needs $\Delta=\tau^2-4\rho\lambda\ge0$, i.e. $|\tau|\ge2\sqrt{\rho\lambda}$. Since $|\tau|\sim U[0,1]$,
#
# $$P(\Delta\ge0)=\mathbb E_{\rho,\lambda}\big[(1-2\sqrt{\rho\lambda})_+\big]
# =\tfrac{98}{243}+\tfrac{4\sqrt3}{405}+\tfrac{25}{81}\ln\tfrac65\approx0.47667\quad(\text{MATH.md §7}).$$
#
# To check the closed form, we integrate over $\rho$ exactly, up to $u=\min(3,1/(4\lambda))$, which gives $u-\tfrac43\sqrt\lambda\,u^{3/2}$.
# The integral over $\lambda$ is done numerically. So **at most ~48 % of trials can end on a sphere**, whatever the rule.

# %%
lam_grid = np.linspace(0.01, 0.1, 400_001)
u = np.minimum(3.0, 1 / (4 * lam_grid))
inner_rho = (u - 4 / 3 * np.sqrt(lam_grid) * u**1.5) / 3  # E_ρ[(1 − 2√(ρλ))₊] at fixed λ
p_quad = np.trapezoid(inner_rho, lam_grid) / 0.09
print(f"P(Δ ≥ 0): closed form {mc.P_DELTA_NONNEG:.6f}, quadrature {p_quad:.6f}")
assert abs(p_quad - mc.P_DELTA_NONNEG) < 1e-8
assert abs(mc.P_DELTA_NONNEG - 0.47667) < 5e-6

# %% [markdown]
# ## The study: SG and EMA on the same trials
# The defaults of `mc.Config()` are $n=2$, $\eta=0.05$, $\alpha=0.99$, and PyTorch `nn.Linear` init scaled by $s=1$
# ($a_0\sim U[-1,1]^n$, $B_0\sim U[-1/\sqrt n,1/\sqrt n]^{n\times n}$). The teacher starts as a copy of the student.
# A trial stops when the increment $\|(\Delta\theta,\Delta\psi,\Delta\xi)\|<10^{-8}$, after 60,000 steps ($T=3000$), or on divergence.
# Trial $i$ draws its randomness from `fold_in(key, i)`, so SG and EMA see the same $(\rho,\tau,\lambda,a_0,B_0)$.

# %%
cfg = mc.Config()
ALPHA = 0.99  # the EMA momentum; the rules are objects (rules.get("ema", momentum=ALPHA) builds the same)
RULES = (rules.sg(), rules.ema(ALPHA))
t0 = time.perf_counter()
results = mc.study(TRIALS, RULES, cfg, seed=0)
study_seconds = time.perf_counter() - t0
summ = mc.summary(results, cfg, seed=0)
print(f"{TRIALS} trials × 2 rules in {study_seconds:.1f} s (including compilation)")
assert summ["paper"] == PAPER

# %% [markdown]
# ### The table: outcome fractions with Wilson 95 % intervals, beside the paper

# %%
def pct(d):
    lo, hi = d["ci95"]
    return f"{100 * d['fraction']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


rows = ["| rule | trials | N | outer | origin | inner | not conv. | diverged | paper outer / origin |",
        "|---|---|---|---|---|---|---|---|---|"]
for rule in ("sg", "ema"):
    s = summ["rules"][rule]
    for key, label in (("fractions", "all"), ("fractions_given_delta_nonneg", "Δ ≥ 0"),
                       ("fractions_given_delta_neg", "Δ < 0")):
        fr = s[key]
        N = sum(v["count"] for v in fr.values())
        paper = f"{100 * PAPER[rule]['outer']:.1f} / {100 * PAPER[rule]['origin']:.1f}" if label != "Δ < 0" else ""
        rows.append(f"| {rule.upper()} | {label} | {N} | " + " | ".join(pct(fr[o]) for o in mc.OUTCOMES)
                    + f" | {paper} |")
display(Markdown("\n".join(rows)))

d = summ["rules"]["sg"]["delta_nonneg"]
print(f"empirical P(Δ ≥ 0) = {d['count']}/{TRIALS} = {d['fraction']:.4f}  (Wilson 95% "
      f"[{d['ci95'][0]:.4f}, {d['ci95'][1]:.4f}]);  exact {mc.P_DELTA_NONNEG:.5f}")

# %% [markdown]
# What the table must show, checked below:
# * **$S_1$ is never reached.** It is a saddle, so it attracts only a measure-zero set.
# * **No trial with $\Delta<0$ ends on a sphere.** There is no sphere then. Every trial with $\Delta<0$ that stops
#   before the budget runs out is at the origin. The classifier labels only $\Delta\ge0$ trials "outer", so we also check
#   that no $\Delta<0$ trial converged to some other non-zero point (that would hide under "not converged").
# * **The Δ ≥ 0 share matches the exact $P(\Delta\ge0)$.** We test this with a 99.9 % Wilson interval.
#   Every "outer" trial has $\Delta\ge0$, so the unconditional outer fraction is at most that share.
#   The paper's 92.8 / 82.0 therefore cannot be unconditional fractions.

# %%
delta_neg_outer = {}
for rule in ("sg", "ema"):
    cols, s = results[rule], summ["rules"][rule]
    neg = cols["delta"] < 0
    assert s["fractions"]["inner"]["count"] == 0, f"{rule}: a trial ended on the saddle sphere S₁"
    delta_neg_outer[rule] = s["fractions_given_delta_neg"]["outer"]["fraction"]
    assert delta_neg_outer[rule] == 0.0
    assert np.all(cols["final_norm"][neg & (cols["outcome"] == mc.ORIGIN)] < cfg.origin_tol)
    stuck = neg & (cols["outcome"] == mc.NOT_CONVERGED)
    assert np.all(cols["steps"][stuck] >= cfg.max_steps), "a Δ < 0 trial converged away from the origin"
    assert np.all(cols["delta"][cols["outcome"] == mc.OUTER] >= 0)
    assert s["fractions"]["outer"]["fraction"] <= s["delta_nonneg"]["fraction"]
    assert s["fractions"]["outer"]["ci95"][1] < PAPER[rule]["outer"]  # the paper's value is out of reach unconditionally
    # almost everything converges; the rest are the tiny-ρ trials with η > 2/(|τ| r₂)
    assert s["fractions"]["not_converged"]["fraction"] + s["fractions"]["diverged"]["fraction"] < 0.02
print("fraction of Δ < 0 trials on the outer sphere:", delta_neg_outer)

k, n_ = summ["rules"]["sg"]["delta_nonneg"]["count"], TRIALS
lo999, hi999 = mc.wilson(k, n_, z=3.2905)
assert lo999 <= mc.P_DELTA_NONNEG <= hi999
assert summ["rules"]["ema"]["delta_nonneg"]["count"] == k  # the same trials for both rules
# EMA ends on S₂ at least as often as SG, given Δ ≥ 0 (the paper's ordering)
cond = {r: summ["rules"][r]["fractions_given_delta_nonneg"]["outer"]["fraction"] for r in ("sg", "ema")}
assert cond["ema"] >= cond["sg"], cond

# %% [markdown]
# ### Fractions (black ticks: the paper's values)

# %%
display(Image(figures.plot_fractions(os.path.join(OUT, "fractions.png"), summ)))

# %% [markdown]
# ## Trajectories of $a\in\mathbb R^2$, with $S_1$ (dashed) and $S_2$ (solid)
# This is `figures.EXAMPLE`: $\rho=0.5$, $\tau=0.6$, $\lambda=0.1$, so $\Delta=0.16$, $r_1=0.2$ and $r_2=1$. The paths come from the same
# `rules.make_step` that the study uses. Every path ends on $S_2$ or at the origin.

# %%
ex = figures.EXAMPLE
r1, r2 = (float(r) for r in spheres.radii(ex["rho"], ex["tau"], ex["lam"]))
assert abs(r1 - 0.2) < 1e-12 and abs(r2 - 1.0) < 1e-12
display(Image(figures.plot_trajectories(os.path.join(OUT, "trajectories.png"), RULES, eta=cfg.eta,
                                        num_starts=8 if SMALL else 12)))

# %% [markdown]
# ## Basins of attraction over $a_0$ ($B_0$ fixed)
# Each pixel is one initial $a_0$, run to the end and classified exactly as in the study. The disk inside $S_1$ drains
# to the origin. This is why a *small* init sends more $\Delta\ge0$ trials to collapse (see the sensitivity section).

# %%
grid = 21 if SMALL else 61
basins = {}
for rule in RULES:
    xs, codes, B0 = figures.basin_map(rule, eta=cfg.eta, grid=grid)
    basins[rule.name] = codes
    share = {o: float(np.mean(codes == i)) for i, o in enumerate(mc.OUTCOMES)}
    print(rule.name, {o: f"{100 * v:.1f}%" for o, v in share.items() if v})
    assert not np.any(codes == mc.INNER)
    X, Y = np.meshgrid(xs, xs)
    near_zero = np.hypot(X, Y) < 0.5 * r1
    assert np.all(codes[near_zero] == mc.ORIGIN)  # deep inside S₁: collapse
    assert share["outer"] + share["origin"] > 0.97
display(Image(figures.plot_basins(os.path.join(OUT, "basins.png"), RULES, eta=cfg.eta, grid=grid)))

# %% [markdown]
# ## $E$ and $F$ along trajectories (Prop 3.1)
# SG and EMA are not gradient descent on $E(\theta,\psi)=F(\theta,\psi,\theta)$. Along a run that reaches $S_2$, $E$ typically
# goes **up**. The study records, for each trial, whether $E(\theta_t,\psi_t)$ (and for EMA $F(\theta_t,\psi_t,\xi_t)$) ever rose,
# by a relative $10^{-10}$. Below, three sample trials from the study are shown.

# %%
cases = figures.energy_cases(results, cfg, 0, RULES)
display(Image(figures.plot_energy(os.path.join(OUT, "energy.png"), cases, eta=cfg.eta,
                                  num_steps=10_000 if SMALL else 20_000)))
for rule in ("sg", "ema"):
    s = summ["rules"][rule]
    bo = {o: f"{100 * v['e_increased']:.1f}%" for o, v in s["by_outcome"].items()}
    print(f"{rule.upper()}: E rose in {100 * s['e_increased']['fraction']:.1f}% of all trials, "
          f"{100 * s['e_increased_given_delta_nonneg']['fraction']:.1f}% given Δ ≥ 0; by outcome {bo}"
          + (f"; F rose in {100 * s['f_increased']['fraction']:.1f}%" if rule == "ema" else ""))
    assert s["by_outcome"]["outer"]["e_increased"] > 0.1  # Prop 3.1: E is not a Lyapunov function of SG / EMA
sg = results["sg"]
assert not np.any(sg["e_increased"][sg["delta"] < 0])  # SG: E only rose on the way to a sphere
assert {c["rule"].name for c in cases} == {"sg", "ema"}

# %% [markdown]
# ## Same numbers on 1 device or all of them
# The main run used the compiled CPU kernel (`engine="auto"` picks it on a CPU; `montecarlo/kernel.py`). The XLA
# engine (`fast`, the one that runs on a GPU or TPU) shards the slot axis of the pool over a 1-D mesh `('trials',)`. Every
# slot's arithmetic is elementwise, and trial $i$ depends only on `fold_in(key, i)`. So a trial's outcome, step count and
# $E$/$F$ flags cannot depend on the number of devices or on the pool size (`chunk`). We rerun the first trials with the XLA
# engine on one device and on all devices (same pool of 32 slots per device) and require identical columns.
# The test suite has 8 simulated CPU devices; a plain notebook usually has 1.

# %%
check_n, ndev = 256, jax.device_count()
one_dev = mc.study(check_n, RULES, cfg, seed=0, devices=1, chunk=32, engine="fast")
all_dev = mc.study(check_n, RULES, cfg, seed=0, devices=ndev, chunk=32, engine="fast") if ndev > 1 else one_dev
frac = lambda cols: {o: float(np.mean(cols["outcome"] == i)) for i, o in enumerate(mc.OUTCOMES)}  # noqa: E731
for rule in ("sg", "ema"):
    for name, col in one_dev[rule].items():
        assert np.array_equal(col, all_dev[rule][name], equal_nan=True), (rule, name)
    assert frac(one_dev[rule]) == frac(all_dev[rule])
    print(f"{rule.upper()}: 1 device {frac(one_dev[rule])['outer']:.4f} outer, {ndev} device(s) {frac(all_dev[rule])['outer']:.4f}")
print("1 device vs all: every column identical" if ndev > 1 else
      "only 1 device here (set XLA_FLAGS=--xla_force_host_platform_device_count=8 before starting the kernel to compare)")

# %% [markdown]
# The kernel does the XLA engine's arithmetic in the same order, so the two agree trial for trial, up to XLA rounding
# an expression differently now and then (it can contract a multiply-add): on the full 10,000-trial study all SG runs
# are bitwise identical and 0.15 % of the EMA runs differ in their step count.

# %%
for rule in ("sg", "ema"):
    ker = {name: col[:check_n] for name, col in results[rule].items()}
    same_steps = np.mean(one_dev[rule]["steps"] == ker["steps"])
    same_outcome = np.mean(one_dev[rule]["outcome"] == ker["outcome"])
    print(f"{rule.upper()}: kernel vs XLA, identical step counts {100 * same_steps:.1f}%, identical verdicts "
          f"{100 * same_outcome:.1f}% of {check_n} trials")
    assert same_steps >= 0.98 and same_outcome >= 0.99

# %% [markdown]
# ## Sensitivity: init scale $s$ and teacher momentum $\alpha$
# The paper does not report $n$, the init law, $\eta$, the number of steps or the convergence test. We rerun the same trials
# with a smaller init ($s=0.3$) and a slower teacher ($\alpha=0.999$). Trial $i$ is the same draw in every run; a smaller $s$
# only rescales $(a_0,B_0)$. So the $s=1$, $\alpha=0.99$ cells are just the first trials of the main run.

# %%
sens_trials = 500 if SMALL else 2_000
scales = [0.3, 1.0] if SMALL else [0.3, 0.5, 1.0]
settings = [("sg", 0.99), ("ema", 0.999)] if SMALL else [("sg", 0.99), ("ema", 0.99), ("ema", 0.999)]
sens = {}
t0 = time.perf_counter()
for s_ in scales:
    for rule, alpha in settings:
        if s_ == cfg.init_scale and alpha == ALPHA:
            cols = {k: v[:sens_trials] for k, v in results[rule].items()}
        else:
            c = mc.Config(init_scale=s_)
            cols = mc.study(sens_trials, [rules.resolve(rule, momentum=alpha)], c, seed=0)[rule]
        sens[s_, rule, alpha] = mc.summarize(cols)
print(f"sensitivity runs: {time.perf_counter() - t0:.1f} s")

rows = ["| s | rule | outer, all | outer given Δ ≥ 0 | origin given Δ ≥ 0 | inner | paper (given Δ ≥ 0?) |",
        "|---|---|---|---|---|---|---|"]
for (s_, rule, alpha), sm in sens.items():
    name = "SG" if rule == "sg" else f"EMA α={alpha}"
    rows.append(f"| {s_} | {name} | {pct(sm['fractions']['outer'])} | {pct(sm['fractions_given_delta_nonneg']['outer'])} | "
                f"{pct(sm['fractions_given_delta_nonneg']['origin'])} | {sm['fractions']['inner']['count']} | "
                f"{100 * PAPER[rule]['outer']:.1f} |")
display(Markdown("\n".join(rows)))

fig, ax = plt.subplots(figsize=(6.4, 3.8))
for rule, alpha in settings:
    fr = [sens[s_, rule, alpha]["fractions_given_delta_nonneg"]["outer"] for s_ in scales]
    y = np.array([100 * f["fraction"] for f in fr])
    err = np.abs(100 * np.array([f["ci95"] for f in fr]).T - y)
    ax.errorbar(scales, y, yerr=err, marker="o", capsize=3, label="SG" if rule == "sg" else f"EMA α={alpha}")
ax.axhline(82.0, color="C0", ls=":", lw=1, label="paper SG 82.0")
ax.axhline(92.8, color="C1", ls=":", lw=1, label="paper EMA 92.8")
ax.set(xlabel="init scale s", ylabel="% outer given Δ ≥ 0", title=f"{sens_trials} trials per point, n = 2, η = 0.05")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
plt.tight_layout()
fig.savefig(os.path.join(OUT, "sensitivity.png"), dpi=100)
plt.close(fig)
display(Image(os.path.join(OUT, "sensitivity.png")))

for s_ in scales:
    for rule, alpha in settings:
        sm = sens[s_, rule, alpha]
        assert sm["fractions"]["inner"]["count"] == 0
        assert sm["fractions_given_delta_neg"]["outer"]["count"] == 0
        assert sm["fractions"]["outer"]["fraction"] <= sm["delta_nonneg"]["fraction"]
        # unconditionally every setting stays below P(Δ ≥ 0) ≈ 47.7 %, far from 82 or 92.8
        assert sm["fractions"]["outer"]["ci95"][1] < 0.6
outer_c = {key: sm["fractions_given_delta_nonneg"]["outer"]["fraction"] for key, sm in sens.items()}
lo_s, hi_s = min(scales), max(scales)
for rule, alpha in settings:  # a smaller init puts more of the Δ ≥ 0 trials inside the origin's basin
    assert outer_c[lo_s, rule, alpha] < outer_c[hi_s, rule, alpha]
for s_ in scales:  # a slower teacher helps EMA
    assert outer_c[s_, "ema", 0.999] >= outer_c[s_, "sg", 0.99]
dist = {(s_, alpha): abs(100 * outer_c[s_, "sg", 0.99] - 82.0) + abs(100 * outer_c[s_, "ema", alpha] - 92.8)
        for s_ in scales for rule, alpha in settings if rule == "ema"}
best = min(dist, key=dist.get)
print(f"closest to the paper (|SG − 82.0| + |EMA − 92.8|, given Δ ≥ 0): s = {best[0]}, α = {best[1]}: "
      f"SG {100 * outer_c[best[0], 'sg', 0.99]:.1f}, EMA {100 * outer_c[best[0], 'ema', best[1]]:.1f} "
      f"(distance {dist[best]:.1f} points)")
assert dist[best] > 3  # neither our defaults nor these variations give both of the paper's numbers

# %% [markdown]
# ## What reproduces and what does not
# **Reproduced.**
# * The outer sphere $S_2$ is the only non-trivial end. The saddle sphere $S_1$ is never reached, in any setting.
# * Every $\Delta<0$ trial that converges collapses to the origin, so the fraction of $\Delta<0$ trials on $S_2$ is 0.
# * Given $\Delta\ge0$, EMA ends on $S_2$ at least as often as SG. The gap grows as $\alpha\to1$.
# * At the plain PyTorch init ($s=1$, $n=2$, $\alpha=0.99$), EMA's conditional fraction (≈ 93 % on 10,000 trials) matches
#   the paper's 92.8 %.
# * $E$ rises along many of the runs that reach $S_2$ (Prop 3.1).
#
# **Why the paper's numbers can only be conditional on $\Delta\ge0$.** Only $P(\Delta\ge0)=47.7\%$ of the draws have a
# sphere at all. Every other draw must collapse, so unconditional "outer" fractions are capped near 48 %; we measure about 43 %.
# Our Δ ≥ 0 share agrees with the closed form.
#
# **Not reproduced.** No setting gives **both** 82.0 (SG) and 92.8 (EMA).
# * The conditional fraction is set mainly by the init scale: a small $\|a_0\|$ starts more trials inside the origin's
#   basin (the disk inside $S_1$ and around it).
# * The slower teacher adds only a few points for EMA.
# * MATH.md §7 and `docs/montecarlo.md` sweep $n$, $s$, $\eta$ and $\alpha$ at 2,000–10,000 trials. The SG–EMA gap stays
#   ≲ 6 points there, against the paper's 10.8.
# * The exact pair therefore depends on details that the paper does not report.
#
# "All trials converged" also fails with a fixed step. A few tiny-$\rho$ trials have $r_2$ so large that
# $\eta>2/(|\tau|r_2)$, and they end as not converged or diverged (< 1 %).
