"""``dualjax equilibria``: every SG / EMA equilibrium of the linear model (Prop 4.5, Cor 4.6, Prop 4.7).

Prints one row per equilibrium component (its Gram matrix S = AᵀA, rank, positive definiteness,
residual and SG stability class) and the solution counts against Bézout's bound. ``--json`` prints
``{"equilibria": [{"S", "rank", "positive_definite", "residual", "stability", ...}], "counts": ...}``.
"""

from __future__ import annotations

import argparse

from dualjax import outputs
from dualjax.commands import _theory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _theory.add_data_arguments(parser)
    parser.add_argument("--method", default="auto", choices=("auto", "closed", "exact", "homotopy", "newton"),
                        help="full-rank solver (default: closed m=1, exact m≤2, homotopy m≤4, newton beyond)")
    parser.add_argument("--full-rank-only", action="store_true", help="skip rank-deficient equilibria")
    parser.add_argument("--k", type=float, default=1.0, help="EMA rate k = (1 − α)/η for the EMA verdict (default 1)")
    parser.add_argument("--no-stability", action="store_true", help="do not classify the equilibria")


def run(args) -> int:
    import jax

    from dualjax.linear import equilibria, stability

    mom, lam, n = _theory.load_data(args)
    with jax.enable_x64(True):
        enum = equilibria.enumerate_equilibria(mom, lam, n=n, method=args.method, seed=args.seed,
                                               rank_deficient=not args.full_rank_only)
        if not args.no_stability:
            stability.classify_all(enum, k=args.k)
    counts = enum.counts()
    if args.json:
        print(outputs.dumps_strict({
            "m": enum.m, "n": enum.n, "lam": lam, "method": enum.method,
            "rho": mom.rho.tolist(), "tau": mom.tau.tolist(),
            "counts": {k: (v if not isinstance(v, dict) else {str(a): b for a, b in v.items()}) for k, v in counts.items()},
            "existence": enum.existence, "notes": enum.notes,
            "equilibria": [e.to_json() for e in enum.equilibria],
        }, indent=2))
        return 0
    print(f"linear model m={enum.m}, n={enum.n}, λ={lam}, full-rank solver: {enum.method} ({enum.seconds:.2f} s)")
    rows = []
    for i, e in enumerate(enum.equilibria):
        st = e.stability or {}
        sg, ema = st.get("sg", {}), st.get("ema", {})
        rows.append([i, e.rank, "yes" if e.positive_definite else "no", _theory.matrix_str(e.S),
                     float(max(e.residual, e.field_residual)),
                     f"{sg.get('class', '-')}" + (f"({sg['n_unstable']})" if sg.get("n_unstable") else ""),
                     f"{ema.get('class', '-')}" + (f"({ema['n_unstable']})" if ema.get("n_unstable") else ""),
                     _theory.eta_cell(sg.get("eta_max"))])
    print(_theory.table(rows, ["#", "rank", "PD", "S = AᵀA", "residual", "SG", f"EMA k={args.k}", "SG η_max"]))
    n_complex = counts["complex_full_rank"] if counts["complex_full_rank"] is not None else "(not counted by Newton)"
    print(f"\nfull-rank equation (Prop 4.5): {n_complex} complex solutions "
          f"(Bézout bound {counts['bezout_bound']}), {counts['real_full_rank']} real, "
          f"{counts['positive_definite']} positive definite")
    ex = enum.existence
    print(f"Prop 4.7 check: ‖τ‖₂² = {ex['tau_norm_sq']:.4g} vs 4λλ_min(ρ) = {ex['threshold_4_lam_lmin']:.4g} "
          f"(necessary condition {'holds' if ex['necessary_condition_holds'] else 'FAILS'}); "
          f"‖S‖₂ ≤ {ex['S_norm_bound']:.4g}; positive definite equilibrium "
          f"{'exists' if ex['exists'] else 'does NOT exist for these data'}")
    for note in enum.notes:
        print("note:", note)
    return 0
