"""Time the full stability analysis of one equilibrium at n = 64, m = 8 (4,608 SG parameters).

Steps timed: finding an equilibrium (many-start Newton on Prop 4.5's 36 equations), the dense
analysis (jacfwd Jacobian 4,608 × 4,608, its full spectrum with numpy, the orbit tangent space,
the classification), and the symmetry-reduced analysis (module doc of dualjax.linear.stability)
for SG and EMA; the two spectra are compared. Run:

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_stability.py [--n 64 --m 8] [--skip-dense]
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", True)

from dualjax import rules  # noqa: E402
from dualjax.linear import equilibria as eq  # noqa: E402
from dualjax.linear import model  # noqa: E402
from dualjax.linear import stability as st  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--m", type=int, default=8)
    p.add_argument("--lam", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--kind", default="gauss", choices=("gauss", "aug"))
    p.add_argument("--skip-dense", action="store_true")
    p.add_argument("--json", help="also write the timings to this file")
    args = p.parse_args()
    n, m, lam = args.n, args.m, args.lam
    rows = []

    def timed(label, fn):
        t0 = time.perf_counter()
        out = fn()
        rows.append((label, time.perf_counter() - t0))
        return out

    mom = model.random_moments(jax.random.PRNGKey(args.seed), m, kind=args.kind)
    mom = model.Moments(*(np.asarray(x) for x in mom))
    sols = timed(f"equilibria: many-start Newton (m={m}, {eq.num_unknowns(m)} unknowns, 128 starts)",
                 lambda: eq.solve_newton(mom.rho, mom.tau, lam, seed=args.seed, starts=128))
    pd = [S for S in sols if np.linalg.eigvalsh(S).min() > 0]
    if not pd:
        print("no positive definite equilibrium found for this seed; try another --seed")
        return 1
    S = pd[0]  # largest trace
    P = n * m + n * n
    red = timed("reduced SG analysis (total)", lambda: st.analyze(S, mom, lam, n, rule=rules.sg()))
    red_ema = timed("reduced EMA analysis (total, k=1)", lambda: st.analyze(S, mom, lam, n, rule=rules.ema(), k=1.0))
    summary = {"n": n, "m": m, "params_sg": P, "real_solutions_found": len(sols), "pd": len(pd),
               "sg_class": red.kind, "sg_unstable": red.n_unstable, "zeros": red.n_zero, "orbit_dim": red.orbit_dim,
               "ema_class": red_ema.kind, "max_real_transversal": red.max_real, "eta_max": red.eta_max}
    if not args.skip_dense:
        A, B = eq.equilibrium_point(S, mom, lam, n)
        J = timed(f"dense: jacfwd Jacobian ({P}×{P})", lambda: st.sg_jacobian(A, B, mom, lam))
        spec = timed("dense: numpy eigvals of J", lambda: np.linalg.eigvals(J))
        T = timed("dense: orbit tangent basis (SVD)", lambda: st.orbit_tangent(A, B))
        tan_res = float(np.linalg.norm(J @ T) / np.linalg.norm(J))
        zeros = int(np.sum(np.abs(spec) <= 1e-7 * max(1.0, np.abs(spec).max())))
        order = np.argsort(np.abs(spec))
        kind, n_unst = st.classify(spec[order[T.shape[1]:]], 1e-7 * max(1.0, np.abs(spec).max()))
        diff = float(np.max(np.abs(np.sort_complex(spec) - np.sort_complex(red.spectrum))))
        rows.append(("dense SG analysis (total of the three)", sum(t for lbl, t in rows[-3:])))
        summary.update({"dense_class": kind, "dense_unstable": n_unst, "dense_zeros": zeros,
                        "tangent_residual": tan_res, "max_spectrum_diff_dense_vs_reduced": diff})
    width = max(len(r[0]) for r in rows)
    print(f"stability analysis, n={n}, m={m}, {P} SG parameters, OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS')}, cores={os.cpu_count()}")
    print(f"{'step'.ljust(width)}  seconds")
    for label, t in rows:
        print(f"{label.ljust(width)}  {t:8.2f}")
    print(json.dumps(summary, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"timings": rows, **summary}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
