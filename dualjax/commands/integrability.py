"""``dualjax integrability``: the Schwarz test of Prop 3.2 on the linear model (or a tanh MLP).

Builds a sample problem (x ~ N(0, ρ) whitened by ρ^{1/2}, y with E[yxᵀ] = τ when --rho/--tau are
given, else the generic augmentation data), evaluates the exact Jacobian asymmetry
‖J − Jᵀ‖_F / ‖J‖_F of the SG, EMA and plain fields, and the randomized jvp/vjp probe.
"""

from __future__ import annotations

import argparse

from dualjax import outputs
from dualjax.commands import _theory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _theory.add_data_arguments(parser)
    parser.add_argument("--model", default="linear", choices=("linear", "mlp"),
                        help="linear model on moments (default) or a tanh-MLP encoder on samples")
    parser.add_argument("--probes", type=int, default=64, help="number of random probes (default 64)")
    parser.add_argument("--k", type=float, default=1.0, help="EMA rate k (default 1)")


def run(args) -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from dualjax import checks, integrability, rules
    from dualjax.linear import model

    checks.check_positive_int(args.probes, "probes")
    checks.check_positive(args.k, "k")
    with jax.enable_x64(True):
        key = jax.random.PRNGKey(args.seed)
        if args.model == "mlp":
            given = [f"--{k}" for k in ("rho", "tau", "m", "n", "kind") if getattr(args, k) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} apply to the linear model only; --model mlp takes "
                                 "--seed, --lam, --probes, --k and --json")
            lam = checks.check_lambda(args.lam)
            F, z, batch = integrability.mlp_problem(key, lam=lam)
            label = "tanh-MLP 6→16→4, linear predictor 4×4"
        else:
            if args.m is None and args.rho is None and args.tau is None:
                args.m = 2
            mom, lam, n = _theory.load_data(args)
            m = mom.rho.shape[0]
            mom = model.Moments(*(jnp.asarray(x) for x in mom))
            F = model.objective(lam).F
            k1, k2 = jax.random.split(key)
            z = (jax.random.normal(k1, (n, m)) / np.sqrt(m), jax.random.normal(k2, (n, n)) / np.sqrt(n))
            batch = mom
            label = f"linear n={n}, m={m} (moments)"
        rows, out = [], {}
        for rule in (rules.sg(), rules.ema(), rules.plain()):
            zz = (z[0], z[1], jax.tree_util.tree_map(lambda a: a + 0.1, z[0])) if rule.carries_teacher else z
            k = args.k if rule.carries_teacher else None
            ex = integrability.exact_asymmetry(F, zz, batch, rule=rule, k=k)
            pr = integrability.probe_asymmetry(integrability.field_at(F, batch, rule, k), zz,
                                               jax.random.fold_in(key, 7), num_probes=args.probes)
            out[rule.name] = {"exact": ex, "probe": {k: v for k, v in pr.items() if k != "bilinear"}}
            rows.append([rule.name, ex["params"], ex["asymmetry"], pr["asymmetry"], pr["asymmetry_se"],
                         pr["bilinear_relative_median"]])
    if args.json:
        print(outputs.dumps_strict({"model": label, "lam": lam, "results": out}, indent=2))
        return 0
    print(f"Schwarz test (Prop 3.2) on {label}, λ={lam}, {args.probes} probes")
    print(_theory.table(rows, ["field", "params", "exact ‖J−Jᵀ‖/‖J‖", "probe", "probe s.e.", "median rel. uᵀJv−vᵀJu"]))
    print("\nA gradient field has J = Jᵀ: the plain rule (−∇E) is the control; SG and EMA are not gradient fields.")
    return 0
