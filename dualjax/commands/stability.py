"""``dualjax stability``: Jacobian spectra and stability of every equilibrium (Prop 4.10).

For each equilibrium component (found as in ``dualjax equilibria``): the SG and EMA (rate k)
verdicts on the transversal spectrum, the count of zero eigenvalues against the orbit dimension
nr − r(r+1)/2, the top transversal eigenvalue, and the discrete-time step limits (SG η_max, and the
EMA map's η_max at momentum α with ``--alpha``).
"""

from __future__ import annotations

import argparse

from dualjax import outputs
from dualjax.commands import _theory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _theory.add_data_arguments(parser)
    parser.add_argument("--method", default="auto", choices=("auto", "closed", "exact", "homotopy", "newton"),
                        help="full-rank equilibrium solver (as in `dualjax equilibria`)")
    parser.add_argument("--k", type=float, default=1.0, help="EMA rate k = (1 − α)/η (default 1)")
    parser.add_argument("--alpha", type=float, default=None, help="also compute the discrete EMA map's η_max at this α")
    parser.add_argument("--jacobian", default="reduced", choices=("reduced", "dense"),
                        help="symmetry-reduced (fast) or dense jacfwd Jacobian (default reduced)")


def run(args) -> int:
    import jax

    from dualjax import checks, rules
    from dualjax.linear import equilibria, stability

    mom, lam, n = _theory.load_data(args)
    checks.check_positive(args.k, "k")
    if args.alpha is not None:
        checks.check_alpha(args.alpha)
    with jax.enable_x64(True):
        enum = equilibria.enumerate_equilibria(mom, lam, n=n, method=args.method, seed=args.seed)
        results = []
        for e in enum.equilibria:
            sg = stability.analyze(e.S, mom, lam, n, rule=rules.sg(), method=args.jacobian)
            ema = stability.analyze(e.S, mom, lam, n, rule=rules.ema(), k=args.k, method=args.jacobian)
            ema_eta = (stability.ema_eta_max(e.S, mom, lam, n, args.alpha, eta_hi=min(sg.eta_max, 1e3) * 4)
                       if args.alpha is not None and sg.kind == stability.STABLE else None)
            results.append((e, sg, ema, ema_eta))
    if args.json:
        out = []
        for e, sg, ema, ema_eta in results:
            d = e.to_json()
            d["stability"] = {"class": sg.kind, "sg": sg.summary(), "ema": {**ema.summary(), "k": args.k},
                              "ema_discrete_eta_max": ema_eta, "alpha": args.alpha}
            out.append(d)
        print(outputs.dumps_strict({"m": enum.m, "n": n, "lam": lam, "equilibria": out}, indent=2))
        return 0
    print(f"linear model m={enum.m}, n={n}, λ={lam}; Jacobian: {args.jacobian}; EMA rate k={args.k}")
    rows = []
    for i, (e, sg, ema, ema_eta) in enumerate(results):
        rows.append([i, e.rank, _theory.matrix_str(e.S), f"{sg.n_zero}/{sg.orbit_dim}",
                     sg.kind + (f"({sg.n_unstable})" if sg.n_unstable else ""), float(sg.max_real),
                     ema.kind + (f"({ema.n_unstable})" if ema.n_unstable else ""), float(ema.max_real),
                     _theory.eta_cell(sg.eta_max), ema_eta])
    print(_theory.table(rows, ["#", "rank", "S = AᵀA", "zeros/orbit", "SG", "SG max Re", "EMA", "EMA max Re",
                               "SG η_max", f"EMA η_max(α={args.alpha})" if args.alpha is not None else "EMA η_max (give --alpha)"]))
    n_stable = sum(sg.kind == stability.STABLE for _, sg, _, _ in results)
    print(f"\n{n_stable} of {len(results)} equilibria are (normally) asymptotically stable under SG; "
          f"zero eigenvalues match the orbit dimension: "
          f"{all(sg.zeros_match_orbit and ema.zeros_match_orbit for _, sg, ema, _ in results)}")
    return 0
