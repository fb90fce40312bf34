"""Task designs for Figure 2 (issue 17): does V-JEPA training beat the randomly initialised encoder?

For each synthetic dataset (``dualjax.vjepa.data.SYNTHETIC``: ``shapes`` and the designs of
``dualjax/vjepa/tasks.py``) this measures, on the ``tiny`` preset (8×32×32 clips, ViT 96/4):

1. the attentive probe on the random-init encoder (``--probe-seeds`` probe seeds: mean and each);
2. the same probe on the teacher after ``--steps`` V-JEPA steps with ``--teacher``.

Targets of the issue: random-init ≤ 2.5 × chance; trained ≥ random-init + 20 points (≤ 15 min of
training) and ≥ + 10 points in a quick mode (≤ 3 min).

    .venv/bin/python experiments/task_design.py --out runs/task_design [--designs tracking,shapes]
        [--steps 600] [--teacher ema] [--set lr=1e-3 ...]

Writes ``OUT/task_design.json`` (one row per design, rewritten after each) and prints a table.
Runs live in ``OUT/<design>``; the probe's clips are rendered once per design.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path


def measure(design: str, cfg, out: Path, probe_seeds: int, log=print) -> dict:
    """The random-init and trained probes of one design (see the module doc)."""
    import numpy as np

    from dualjax.vjepa import data as data_lib
    from dualjax.vjepa import probe as probe_lib
    from dualjax.vjepa import rundir, train
    from dualjax.vjepa.step import build

    cfg = dataclasses.replace(cfg, dataset=design).validate()
    t0 = time.perf_counter()
    pdata = probe_lib.probe_data(cfg)
    setup = build(cfg)
    encode = probe_lib.make_encode_fn(setup.model)

    def probes(params) -> list[float]:
        return [probe_lib.probe(dataclasses.replace(cfg, seed=cfg.seed + 100 * s), encode, params, pdata).top1
                for s in range(probe_seeds)]

    init = probes(probe_lib.probe_params(setup, setup.init()))
    log(f"{design}: random-init probe {np.mean(init):.3f} {np.round(init, 3).tolist()}")
    t1 = time.perf_counter()
    records = train.train(cfg, out / design, progress=False, probes=False, setup=setup, overwrite=True)
    train_s = time.perf_counter() - t1
    _, state = rundir.restore_newest(out / design, setup)
    trained = probes(probe_lib.probe_params(setup, state))
    chance = 1.0 / data_lib.num_classes(cfg)
    row = {"design": design, "teacher": cfg.teacher, "steps": cfg.steps, "num_classes": data_lib.num_classes(cfg),
           "chance": chance, "random_init_top1": init, "trained_top1": trained,
           "random_init_mean": float(np.mean(init)), "trained_mean": float(np.mean(trained)),
           "gain_points": 100 * float(np.mean(trained) - np.mean(init)),
           "random_init_over_chance": float(np.mean(init) / chance),
           "rank_teacher_first_last": [records[0]["rank_teacher"], records[-1]["rank_teacher"]],
           "E_first_last": [records[0]["E"], records[-1]["E"]],
           "train_s": train_s, "wall_s": time.perf_counter() - t0}
    log(f"{design}: trained probe {row['trained_mean']:.3f} {np.round(trained, 3).tolist()} "
        f"({row['gain_points']:+.1f} points, {train_s:.0f} s of training)")
    return row


def main(argv=None) -> int:
    from dualjax.configs import override
    from dualjax.vjepa import config as config_lib
    from dualjax.vjepa import data as data_lib

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/task_design")
    p.add_argument("--designs", default=",".join(data_lib.SYNTHETIC), help="comma-separated synthetic datasets")
    p.add_argument("--config", default="tiny", help="preset name or .py path")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--teacher", default="ema")
    p.add_argument("--probe-seeds", type=int, default=2)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    designs = [d for d in args.designs.split(",") if d]
    unknown = [d for d in designs if d not in data_lib.SYNTHETIC]
    if unknown:
        p.error(f"unknown design(s) {unknown}; choose from {list(data_lib.SYNTHETIC)}")
    cfg = override(config_lib.load(args.config),
                   {"num_train": 4096, "num_heldout": 1024, "steps": args.steps, "warmup_steps": max(1, args.steps // 10),
                    "teacher": args.teacher, "probe_steps": 500, "probe_lr": 3e-3, "probe_train_clips": 4096,
                    "ckpt_every": 0, "log_every": 25, "num_devices": 1})
    cfg = override(cfg, args.overrides)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for design in designs:
        rows.append(measure(design, cfg, out, args.probe_seeds, log=lambda m: print(m, flush=True)))
        (out / "task_design.json").write_text(json.dumps({"config": dataclasses.asdict(cfg), "rows": rows}, indent=1))
    print(f"\n{'design':<14} {'classes':>7} {'init':>6} {'x chance':>8} {'trained':>7} {'gain':>6}")
    for r in rows:
        print(f"{r['design']:<14} {r['num_classes']:>7} {100 * r['random_init_mean']:>5.1f}% "
              f"{r['random_init_over_chance']:>8.2f} {100 * r['trained_mean']:>6.1f}% {r['gain_points']:>+6.1f}")
    print(f"wrote {out / 'task_design.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
