"""``dualjax linear``: SG, EMA and plain dynamics of the linear model from one initial point.

Writes ``OUT/linear_summary.json`` (per rule: status, steps, final ‖A‖, whether E increased,
Bᵀ B − A Aᵀ, the equilibrium equation's residual) and ``OUT/linear_dynamics.png`` (‖A_t‖ and
E(θ_t, ψ_t) over steps, with the m = 1 spheres when m = 1).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rho", default="1.0", help="ρ = E[xxᵀ] as a JSON number or matrix (default 1.0)")
    parser.add_argument("--tau", default="0.8", help="τ = E[yxᵀ] as a JSON number or matrix (default 0.8)")
    parser.add_argument("--lam", type=float, default=0.05, help="weight decay λ > 0 (default 0.05)")
    parser.add_argument("--n", type=int, default=4, help="embedding dimension n > m (default 4)")
    parser.add_argument("--eta", type=float, default=0.05, help="step size η (default 0.05)")
    parser.add_argument("--alpha", type=float, default=0.99, help="EMA momentum α ∈ [0, 1] (default 0.99)")
    parser.add_argument("--init-scale", type=float, default=0.15, help="init scale s (default 0.15)")
    parser.add_argument("--steps", type=int, default=20_000, help="step budget (default 20000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/linear", help="output folder")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def _matrix(text: str, name: str) -> np.ndarray:
    from dualjax.commands._theory import _matrix as parse

    try:
        return parse(text, name)
    except ValueError as err:
        raise SystemExit(str(err)) from None


def run_linear(rho, tau, lam, *, n=4, eta=0.05, alpha=0.99, init_scale=0.15, steps=20_000, seed=0, out="runs/linear"):
    """Run the three rules from the same (A₀, B₀); write the figure and summary; return the summary."""
    import jax
    import jax.numpy as jnp
    import optax

    from dualjax import checks, dynamics, rules
    from dualjax.linear import model, spheres
    from dualjax.linear.dynamics import simulate

    with jax.enable_x64(True):
        lam = checks.check_lambda(lam)
        mom = model.moments(rho, tau, strict=True)
        m = mom.rho.shape[0]
        A0, B0 = model.init_params(jax.random.PRNGKey(seed), n, m, scale=init_scale)
        obj = model.objective(lam)
        every = max(1, steps // 400)
        steps = every * (steps // every)
        summary = {"rho": np.asarray(mom.rho).tolist(), "tau": np.asarray(mom.tau).tolist(), "lam": lam,
                   "n": n, "m": m, "eta": eta, "alpha": alpha, "init_scale": init_scale, "seed": seed,
                   "E0": float(obj.E(A0, B0, mom)), "rules": {}}
        if m == 1:
            r1, r2 = (float(r) for r in spheres.radii(mom.rho[0, 0], mom.tau[0, 0], lam))
            summary["delta"] = float(spheres.discriminant(mom.rho[0, 0], mom.tau[0, 0], lam))
            summary["r1"], summary["r2"] = r1, r2
        curves = {}
        for name in rules.RULES:
            rule = rules.get_rule(name, alpha)
            init, step = rules.make_step(obj.F, rule, optax.sgd(eta))
            _, snaps = jax.jit(lambda s: dynamics.trajectory(step, s, mom, num_steps=steps, every=every, E=obj.E))(
                init(A0, B0))
            curves[name] = (np.arange(0, steps // every + 1) * every,
                            np.r_[float(jnp.linalg.norm(A0)),
                                  np.linalg.norm(np.asarray(snaps["theta"]).reshape(len(snaps["E"]), -1), axis=1)],
                            np.r_[summary["E0"], np.asarray(snaps["E"])])
            run = simulate(name, A0, B0, mom, lam, eta=eta, alpha=alpha, max_steps=max(steps, 200_000), tol=1e-11)
            S = run.A.T @ run.A
            rho_np, tau_np = np.asarray(mom.rho), np.asarray(mom.tau)
            eq = (rho_np @ S + lam * np.eye(m)) @ (S @ rho_np + lam * np.eye(m)) - tau_np.T @ S @ tau_np
            summary["rules"][name] = {
                "status": run.status, "steps": run.steps, "final_norm_A": float(np.linalg.norm(run.A)),
                "final_norm_B": float(np.linalg.norm(run.B)), "E_final": float(obj.E(jnp.asarray(run.A), jnp.asarray(run.B), mom)),
                "E_increased": run.E_increased, "BtB_minus_AAt": float(np.linalg.norm(run.B.T @ run.B - run.A @ run.A.T)),
                "prop45_residual": float(np.linalg.norm(eq)), "rank_A": int(np.linalg.matrix_rank(run.A, tol=1e-6)),
            }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "linear_summary.json").write_text(json.dumps(summary, indent=2))
    _figure(curves, summary, out / "linear_dynamics.png")
    summary["figure"] = str(out / "linear_dynamics.png")
    return summary


def _figure(curves, summary, path):
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib.pyplot as plt

    colors = {"plain": "tab:gray", "sg": "tab:blue", "ema": "tab:orange"}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, (t, normA, E) in curves.items():
        ax1.plot(t, normA, color=colors[name], label=name)
        ax2.plot(t, E, color=colors[name], label=name)
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
    fig.suptitle(f"linear model n={summary['n']}, m={summary['m']}, λ={summary['lam']}, η={summary['eta']}, α={summary['alpha']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    try:
        summary = run_linear(_matrix(args.rho, "rho"), _matrix(args.tau, "tau"), args.lam, n=args.n, eta=args.eta,
                             alpha=args.alpha, init_scale=args.init_scale, steps=args.steps, seed=args.seed, out=args.out)
    except ValueError as err:
        raise SystemExit(f"dualjax linear: {err}") from None
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{'rule':6} {'status':10} {'steps':>7} {'‖A‖':>10} {'E final':>10} {'E rose':>6} {'‖BᵀB−AAᵀ‖':>11}")
        for name, r in summary["rules"].items():
            print(f"{name:6} {r['status']:10} {r['steps']:7d} {r['final_norm_A']:10.4g} {r['E_final']:10.4g} "
                  f"{str(r['E_increased']):>6} {r['BtB_minus_AAt']:11.2e}")
        if "r2" in summary:
            print(f"m = 1 spheres: r1 = {summary['r1']:.4g}, r2 = {summary['r2']:.4g} (Δ = {summary['delta']:.4g})")
        print(f"wrote {summary['figure']} and {Path(args.out) / 'linear_summary.json'}")
    return 0
