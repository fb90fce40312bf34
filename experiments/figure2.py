"""Figure 2 of the paper at CPU scale: V-JEPA with the SG and the EMA rule side by side, several seeds.

    .venv/bin/python experiments/figure2.py --out runs/figure2 [--seeds 0,1,2] [--teachers sg,ema]
                                            [--config figure2] [--set steps=500 ...] [--overwrite]

Trains the ``figure2`` preset (``dualjax/vjepa/presets/figure2.py``) with each rule and seed into
``OUT/<rule>/seed<k>`` (seed k: the initial parameters, the clip order and the masks; the clips,
the probe's included, stay the config's: :mod:`dualjax.vjepa.figure2`), logs F, E(θ_t, ψ_t)
(separate forward pass, online encoder as target), the increments of θ, ψ, ξ and held-out
attentive-probe top-1 (its step-0 value is the random-init probe), then writes ``OUT/figure2.png``
and last ``OUT/figure2.json`` (per rule and seed the series, per rule the across-seed statistics).
The paper's observations to compare with (V-JEPA ViT-S/B, 300k steps): E bottoms out early;
the increments do not vanish; SG accuracy rises then falls, EMA rises then plateaus; EMA better.
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv=None) -> int:
    from dualjax.configs import override
    from dualjax.vjepa import config as config_lib
    from dualjax.vjepa import figure2

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/figure2")
    p.add_argument("--config", default="figure2", help="preset name or .py path (dualjax.vjepa.config.load)")
    p.add_argument("--teachers", default="sg,ema", help="comma-separated registered rules")
    p.add_argument("--seeds", default=None, help="comma-separated seeds, e.g. 0,1,2 (default: the config's seed)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--overwrite", action="store_true", help="replace the runs of an earlier call in --out")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    try:
        base = override(config_lib.load(args.config), args.overrides).validate()
        seeds = None if args.seeds is None else figure2.parse_seeds(args.seeds)
        teachers = args.teachers.split(",")
        for teacher in teachers:  # a bad rule name stops here, before any run
            figure2.seed_config(base, teacher, base.seed)
    except ValueError as err:
        p.error(str(err))
    seeds_text = f"{len(seeds)} seeds" if seeds and len(seeds) > 1 else f"seed {seeds[0] if seeds else base.seed}"
    res = figure2.run(base, args.out, teachers=teachers, seeds=seeds,
                      progress=not args.no_progress, overwrite=args.overwrite,
                      title=f"V-JEPA at CPU scale ({base.dataset}, {base.steps} steps, {seeds_text})")
    print(json.dumps(res["across_seeds"], indent=1))
    print(f"wrote {res['figure']} and {args.out}/{figure2.SUMMARY}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
