"""The rules side by side on one linear instance: Prop 3.1 and Lemma 4.3 in one figure.

From one initial point (A₀, B₀) (:func:`dualjax.linear.model.init_params`), plain gradient
descent on E, SG and EMA run on the same moments (ρ, τ) and λ:

* plain collapses to A = 0, B = 0 (Lemma 4.3), while E decreases monotonically;
* SG and EMA converge to a non-zero equilibrium — for m = 1 the outer sphere ‖A‖ = r₂ of
  Prop 4.11 — and E(θ_t, ψ_t) rises along the way (Prop 3.1: they do not minimize E).

:func:`run_example` writes ``OUT/linear_summary.json`` (per rule: status, steps, final ‖A‖, whether
E increased, ‖BᵀB − AAᵀ‖, the residual of Prop 4.5's equation (ρS + λI)(Sρ + λI) = τᵀSτ at
S = AᵀA) and ``OUT/linear_dynamics.png`` (‖A_t‖ and E(θ_t, ψ_t) over steps, with the m = 1
spheres). It backs ``dualjax linear`` and the Prop 3.1 row of ``dualjax reproduce``.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dualjax import checks, dynamics, outputs, rules
from dualjax.linear import model, spheres
from dualjax.linear.simulation import simulate

SNAPSHOTS = 400  # points per curve of the figure
SUMMARY, FIGURE = "linear_summary.json", "linear_dynamics.png"
OWNED = (SUMMARY, FIGURE)  # what run_example writes (the summary first: see dualjax.outputs)


def default_rules(alpha: float = 0.99) -> tuple[rules.TeacherRule, ...]:
    """plain, SG and EMA (momentum α): the three rules of the paper."""
    return rules.plain(), rules.sg(), rules.ema(alpha)


def run_example(rho, tau, lam, *, rules_=None, n: int = 4, eta: float = 0.05, init_scale: float = 0.15,
                steps: int = 20_000, seed: int = 0, out: str | os.PathLike = "runs/linear",
                overwrite: bool = False) -> dict:
    """Run each rule (default :func:`default_rules`) from the same (A₀, B₀); write the figure and
    summary; return the summary (``summary["rules"]`` keyed by rule name).

    The curves are the driver's :func:`dualjax.dynamics.trajectory` over ``steps`` steps (rounded
    down to a multiple of the snapshot spacing); the final state of each rule is a separate run to
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
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        outputs.check(out, overwrite=overwrite)
        A0, B0 = model.init_params(jax.random.PRNGKey(seed), n, m, scale=init_scale)
        obj = model.objective(lam)
        every = max(1, steps // SNAPSHOTS)
        steps = every * (steps // every)
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
            _, snaps = jax.jit(lambda s: dynamics.trajectory(step, s, mom, num_steps=steps, every=every, E=obj.E))(
                init(A0, B0))
            curves[rule.name] = (np.arange(0, steps // every + 1) * every,
                                 np.r_[float(jnp.linalg.norm(A0)),
                                       np.linalg.norm(np.asarray(snaps["theta"]).reshape(len(snaps["E"]), -1), axis=1)],
                                 np.r_[summary["E0"], np.asarray(snaps["E"])])
            run = simulate(rule, A0, B0, mom, lam, eta=eta, max_steps=max(steps, 200_000), tol=1e-11)
            summary["rules"][rule.name] = _endpoint(run, mom, lam, obj)
    out = outputs.prepare(out, OWNED, overwrite=overwrite)
    summary["figure"] = str(out / FIGURE)
    with outputs.atomic_path(out / FIGURE) as tmp:
        plot_example(curves, summary, tmp)
    outputs.write_json(out / SUMMARY, summary)
    return summary


def _endpoint(run, mom: model.Moments, lam: float, obj) -> dict:
    """Where a run ended: norms, E, whether E rose, BᵀB − AAᵀ (Cor 4.6) and Prop 4.5's residual."""
    S = run.A.T @ run.A
    m = S.shape[0]
    rho, tau = np.asarray(mom.rho), np.asarray(mom.tau)
    eq = (rho @ S + lam * np.eye(m)) @ (S @ rho + lam * np.eye(m)) - tau.T @ S @ tau
    return {
        "status": run.status, "steps": run.steps, "final_norm_A": float(np.linalg.norm(run.A)),
        "final_norm_B": float(np.linalg.norm(run.B)),
        "E_final": float(obj.E(jnp.asarray(run.A), jnp.asarray(run.B), mom)),
        "E_increased": run.E_increased, "BtB_minus_AAt": float(np.linalg.norm(run.B.T @ run.B - run.A @ run.A.T)),
        "prop45_residual": float(np.linalg.norm(eq)), "rank_A": int(np.linalg.matrix_rank(run.A, tol=1e-6)),
    }


def plot_example(curves: dict, summary: dict, path: str | os.PathLike) -> None:
    """‖A_t‖ and E(θ_t, ψ_t) per rule; ``curves[rule] = (steps, ‖A_t‖, E_t)``; the spheres when m = 1."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib.pyplot as plt

    colors = {"plain": "tab:gray", "sg": "tab:blue", "ema": "tab:orange"}  # the paper's figure; others cycle
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, (t, normA, E) in curves.items():
        ax1.plot(t, normA, color=colors.get(name), label=name)
        ax2.plot(t, E, color=colors.get(name), label=name)
    if "r2" in summary and np.isfinite(summary["r2"]):
        ax1.axhline(summary["r2"], color="k", ls="--", lw=0.8, label="outer sphere r₂ (stable)")
        ax1.axhline(summary["r1"], color="k", ls=":", lw=0.8, label="inner sphere r₁ (saddle)")
    ax2.axhline(summary["E0"], color="k", lw=0.6, ls="--", label="E(θ₀, ψ₀)")
    for ax, ylabel, title in [(ax1, "‖A_t‖", "encoder norm: plain collapses (Lemma 4.3), SG/EMA do not"),
                              (ax2, "E(θ_t, ψ_t)", "E along the run: SG/EMA increase it (Prop 3.1)")]:
        ax.set_xscale("symlog", linthresh=10)  # linear near step 0, where E dips, log afterwards
        ax.set_xlim(left=0)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=8)
    alphas = [f"{d['name']} α={d['ema_alpha']}" for d in summary.get("rule_settings", {}).values()
              if d["carries_teacher"] and d["ema_alpha"] is not None]
    fig.suptitle(f"linear model n={summary['n']}, m={summary['m']}, λ={summary['lam']}, η={summary['eta']}"
                 + "".join(", " + a for a in alphas))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
