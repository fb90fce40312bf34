"""The rules side by side on one linear instance: Prop 3.1 and Lemma 4.3 in one figure.

From one initial point (A₀, B₀) (:func:`dualjax.linear.model.init_params`), plain gradient
descent on E, SG and EMA run on the same moments (ρ, τ) and λ:

* plain collapses to A = 0, B = 0 (Lemma 4.3), while E decreases monotonically;
* SG and EMA converge to a non-zero equilibrium — for m = 1 the outer sphere ‖A‖ = r₂ of
  Prop 4.11 — and E(θ_t, ψ_t) rises along the way (Prop 3.1: they do not minimize E).

:func:`run_example` writes ``OUT/linear_summary.json`` (per rule: status, steps, final ‖A‖, whether
E increased, ‖BᵀB − AAᵀ‖, the rank of A and the residual of the equilibrium equation that applies
at that rank: Prop 4.5's (ρS + λI)(Sρ + λI) = τᵀSτ when S = AᵀA is full rank, equation (ii)
M S M = S τᵀ S τ (M = Sρ + λI) below full rank, the origin included, where Prop 4.5's would
read λ²·√m for an exact equilibrium) and ``OUT/linear_dynamics.png`` (or ``.svg`` / ``.pdf``): ‖A_t‖
and E(θ_t, ψ_t) over steps — F(θ_t, ψ_t, ξ_t) too for a rule with a teacher — with the m = 1 spheres
and Lemma 4.3's bound. It backs ``dualjax linear`` and the Prop 3.1 row of ``dualjax reproduce``.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dualjax import checks, dynamics, outputs, rules, style
from dualjax.linear import model, spheres
from dualjax.linear.equilibria import system
from dualjax.linear.simulation import simulate

SNAPSHOTS = 400  # points per curve of the figure, every step at the start, then geometrically spaced
SUMMARY, FIGURE = "linear_summary.json", "linear_dynamics.png"
OWNED = (SUMMARY, *(style.figure_name("linear_dynamics", f) for f in style.FORMATS))  # summary first (outputs)


def default_rules(alpha: float = 0.99) -> tuple[rules.TeacherRule, ...]:
    """plain, SG and EMA (momentum α): the three rules of the paper."""
    return rules.plain(), rules.sg(), rules.ema(alpha)


def run_example(rho, tau, lam, *, rules_=None, n: int = 4, eta: float = 0.05, init_scale: float = 0.15,
                steps: int = 20_000, seed: int = 0, out: str | os.PathLike = "runs/linear",
                overwrite: bool = False, fmt: str = "png") -> dict:
    """Run each rule (default :func:`default_rules`) from the same (A₀, B₀); write the figure and
    summary; return the summary (``summary["rules"]`` keyed by rule name).

    The curves are the driver's :func:`dualjax.dynamics.trajectory` over ``steps`` steps, read at
    :func:`snapshot_steps` (every step first, then log-spaced: the figure's axis is symlog); the final state of each rule is a separate run to
    convergence (budget max(steps, 200,000), step increment < 1e-11) by
    :func:`dualjax.linear.simulation.simulate`. Float64 throughout.

    Every input is checked, and the folder ``out`` (empty, or ``overwrite``; see
    :mod:`dualjax.outputs`), before the runs; the figure and then the summary are written
    atomically, so ``out`` without ``linear_summary.json`` is an interrupted run.
    """
    rules_ = default_rules() if rules_ is None else [rules.check_rule(r) for r in rules_]
    with jax.enable_x64(True):
        lam = checks.check_lambda(lam)
        mom = model.moments(rho, tau, strict=True)
        m = mom.rho.shape[0]
        checks.check_positive_int(n, "n")
        if n <= m:
            raise ValueError(f"n must exceed m (the linear model needs n > m), got n={n}, m={m}")
        eta, init_scale = checks.check_positive(eta, "eta"), checks.check_positive(init_scale, "init_scale")
        steps = checks.check_positive_int(steps, "steps")
        figure = style.figure_name("linear_dynamics", fmt)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        outputs.check(out, overwrite=overwrite)
        A0, B0 = model.init_params(jax.random.PRNGKey(seed), n, m, scale=init_scale)
        obj = model.objective(lam)
        at = snapshot_steps(steps)
        summary = {"rho": np.asarray(mom.rho).tolist(), "tau": np.asarray(mom.tau).tolist(), "lam": lam,
                   "n": n, "m": m, "eta": eta, "init_scale": init_scale, "seed": seed,
                   "rule_settings": {r.name: rules.describe(r) for r in rules_},
                   "E0": float(obj.E(A0, B0, mom)), "rules": {}}
        if m == 1:
            r1, r2 = (float(r) for r in spheres.radii(mom.rho[0, 0], mom.tau[0, 0], lam))
            summary["delta"] = float(spheres.discriminant(mom.rho[0, 0], mom.tau[0, 0], lam))
            summary["r1"], summary["r2"] = r1, r2
        curves = {}
        for rule in rules_:
            init, step = rules.make_step(obj.F, rule, optax.sgd(eta), features=obj.features)
            _, snaps = jax.jit(lambda s: dynamics.trajectory(step, s, mom, num_steps=steps, E=obj.E, F=obj.F,
                                                             rule=rule))(init(A0, B0))
            pick = at[1:] - 1  # snapshot i is the state after step i + 1
            norms = np.linalg.norm(np.asarray(snaps["theta"])[pick].reshape(len(pick), -1), axis=1)
            curves[rule.name] = (at, np.r_[float(jnp.linalg.norm(A0)), norms],
                                 np.r_[summary["E0"], np.asarray(snaps["E"])[pick]],
                                 np.r_[summary["E0"], np.asarray(snaps["F"])[pick]] if rule.carries_teacher else None)
            run = simulate(rule, A0, B0, mom, lam, eta=eta, max_steps=max(steps, 200_000), tol=1e-11)
            summary["rules"][rule.name] = _endpoint(run, mom, lam, obj)
    out = outputs.prepare(out, OWNED, overwrite=overwrite)
    summary["figure"] = plot_example(curves, summary, out / figure)
    outputs.write_json(out / SUMMARY, summary)
    return summary


def _endpoint(run, mom: model.Moments, lam: float, obj) -> dict:
    """Where a run ended: norms, E, whether E rose, BᵀB − AAᵀ (Cor 4.6), and the residual of the
    equilibrium equation for the end point's rank (module doc; ``equation`` names it)."""
    S = run.A.T @ run.A
    rank = int(np.linalg.matrix_rank(run.A, tol=1e-6))
    rho, tau = np.asarray(mom.rho), np.asarray(mom.tau)
    full = rank == S.shape[0]
    eq = (system.full_rank_residual if full else system.equilibrium_residual)(S, rho, tau, lam)
    return {
        "status": run.status, "steps": run.steps, "final_norm_A": float(np.linalg.norm(run.A)),
        "final_norm_B": float(np.linalg.norm(run.B)),
        "E_final": float(obj.E(jnp.asarray(run.A), jnp.asarray(run.B), mom)),
        "E_increased": run.E_increased, "BtB_minus_AAt": float(np.linalg.norm(run.B.T @ run.B - run.A @ run.A.T)),
        "rank_A": rank, "equation": "Prop 4.5 (full rank)" if full else "(ii) M S M = S τᵀ S τ (rank < m)",
        "equation_residual": float(np.linalg.norm(eq)),
    }


def snapshot_steps(steps: int, points: int = SNAPSHOTS) -> np.ndarray:
    """The steps 0 … ``steps`` a curve is read at: every one of the first points/8, then about
    ``points`` log-spaced ones, so the start (where E dips) is resolved on the symlog axis."""
    dense = np.arange(min(steps, points // 8) + 1)
    sparse = np.geomspace(max(dense[-1], 1), steps, points).round().astype(int) if steps > dense[-1] else []
    return np.unique(np.r_[dense, sparse, steps]).astype(int)


@style.styled
def plot_example(curves: dict, summary: dict, path: str | os.PathLike) -> str:
    """‖A_t‖ and E(θ_t, ψ_t) per rule, F(θ_t, ψ_t, ξ_t) dashed for a rule with a teacher;
    ``curves[rule] = (steps, ‖A_t‖, E_t, F_t or None)``; the spheres when m = 1; the plain flow's
    bound ‖A_0‖e^{−ληt} (Lemma 4.3, t = η·step). Written in the format of ``path``'s suffix."""
    fig, axes = style.panels(1, 2, panel=(4.6, 3.6))
    ax1, ax2 = axes[0]
    for name, (t, normA, E, F) in curves.items():
        color, label = style.rule_color(name), style.rule_name_label(name)
        ax1.plot(t, normA, color=color, label=label, gid=f"normA:{name}")
        ax2.plot(t, E, color=color, label=rf"{label}: $E(\theta_t, \psi_t)$", gid=f"E:{name}")
        if F is not None:
            ax2.plot(t, F, color=color, ls="--", label=rf"{label}: $F(\theta_t, \psi_t, \xi_t)$", gid=f"F:{name}")
    t = next(iter(curves.values()))[0]
    norm0 = next(iter(curves.values()))[1][0]
    ax1.plot(t, norm0 * np.exp(-summary["lam"] * summary["eta"] * t), color="0.5", ls="-.", lw=1,
             label=r"$\|A_0\|\,e^{-\lambda t}$, $t = \eta\cdot$step (Lemma 4.3)", gid="lemma4.3")
    if "r2" in summary and np.isfinite(summary["r2"]):
        ax1.axhline(summary["r2"], color="k", ls="-", lw=0.9, label=r"outer sphere $r_2$ (stable)", gid="r2")
        ax1.axhline(summary["r1"], color="k", ls=":", lw=0.9, label=r"inner sphere $r_1$ (saddle)", gid="r1")
    ax2.axhline(summary["E0"], color="0.4", lw=0.7, ls=":", label=r"$E(\theta_0, \psi_0)$", gid="E0")
    for ax, ylabel, title in [(ax1, r"$\|A_t\|_F$", "encoder norm: plain collapses\n(Lemma 4.3), SG/EMA do not"),
                              (ax2, "objective value", "E along the run: SG/EMA increase it\n(Prop 3.1)")]:
        ax.set_xscale("symlog", linthresh=10)  # linear near step 0, where E dips, log afterwards
        ax.set_xlim(left=0)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=7)
    alphas = [rf"{style.rule_name_label(d['name'])} $\alpha$={d['ema_alpha']}"
              for d in summary.get("rule_settings", {}).values() if d["carries_teacher"] and d["ema_alpha"] is not None]
    fig.suptitle(rf"linear model n={summary['n']}, m={summary['m']}, $\lambda$={summary['lam']}, $\eta$={summary['eta']}"
                 + "".join(", " + a for a in alphas))
    fig.tight_layout()
    return style.save(fig, path)
