"""Figure 2 of the paper at CPU scale: V-JEPA with the SG and the EMA rule side by side.

    .venv/bin/python experiments/figure2.py --out runs/figure2 [--set steps=500 ...]

Trains the ``figure2`` preset (``dualjax/vjepa/presets/figure2.py``) once with each rule (same seed, data and masks), logs
F, E(θ_t, ψ_t) (separate forward pass, online encoder as target), the increments of θ, ψ, ξ and
held-out attentive-probe top-1, then writes ``OUT/figure2.png`` and ``OUT/summary.json``.
The paper's observations to compare with (V-JEPA ViT-S/B, 300k steps): E bottoms out early;
the increments do not vanish; SG accuracy rises then falls, EMA rises then plateaus; EMA better.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    from dualjax.configs import override
    from dualjax.vjepa import config as config_lib
    from dualjax.vjepa import plots, rundir, train

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/figure2")
    p.add_argument("--config", default="figure2", help="preset name or .py path (dualjax.vjepa.config.load)")
    p.add_argument("--teachers", default="sg,ema")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--overwrite", action="store_true", help="replace the runs of an earlier call in --out")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    base = override(config_lib.load(args.config), args.overrides)
    out = Path(args.out)
    runs, summary = {}, {}
    for teacher in args.teachers.split(","):
        cfg = override(base, {"teacher": teacher}).validate()
        t0 = time.perf_counter()
        records = train.train(cfg, out / teacher, progress=not args.no_progress, overwrite=args.overwrite)
        runs[teacher.upper()] = records
        summary[teacher] = {**rundir.summarize(records), "wall_s": time.perf_counter() - t0}
        print(json.dumps({teacher: summary[teacher]}), flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    png = plots.plot_runs(runs, out / "figure2.png",
                          title=f"V-JEPA at CPU scale ({base.steps} steps): SG vs EMA")
    print(f"wrote {png} and {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
