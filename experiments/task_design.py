"""Task designs for Figure 2 (issue 17): does V-JEPA training beat the randomly initialised encoder?

For each synthetic dataset (``dualjax.vjepa.data.SYNTHETIC``: ``shapes`` and the designs of
``dualjax/vjepa/tasks.py``) this measures, on the ``tiny`` preset (8×32×32 clips, ViT 96/4):

1. the attentive probe on the random-init encoder (``--probe-seeds`` probe seeds: mean and each);
2. the same probe on the teacher after ``--steps`` V-JEPA steps with ``--teacher`` (``--no-vjepa``:
   skipped, to screen a design by 1 and 3 first);
3. with ``--supervised-steps N``, the supervised ceiling (``dualjax.vjepa.supervised``): the same
   encoder trained N steps on the labels (batch 32, lr 1e-3, 8192 labelled clips), then the same probe.
   A design whose ceiling is below random-init + 20 points cannot meet the training target.

Targets of the issue: random-init ≤ 2.5 × chance; trained ≥ random-init + 20 points (≤ 15 min of
training) and ≥ + 10 points in a quick mode (≤ 3 min).

    .venv/bin/python experiments/task_design.py --out runs/task_design [--designs tracking,shapes]
        [--steps 600] [--teacher ema] [--supervised-steps 2400] [--no-vjepa] [--set lr=1e-3 ...]

Writes ``OUT/task_design.json`` (one row per design, rewritten after each), prints a table and
draws ``OUT/task_design.png``: per design the probe's random-init level, the training target
(+20 points), the V-JEPA-trained probe and, with ``--supervised-steps``, the supervised head's
held-out top-1 by step and the probe on the supervised encoder.
Runs live in ``OUT/<design>``; the probe's clips are rendered once per design.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from dualjax import style


def measure(design: str, cfg, out: Path, probe_seeds: int, log=print, *, vjepa: bool = True,
            supervised_steps: int = 0, supervised_clips: int = 8192) -> dict:
    """The random-init, V-JEPA-trained (unless not ``vjepa``) and, for ``supervised_steps`` > 0,
    supervised probes of one design (see the module doc)."""
    import numpy as np

    from dualjax.vjepa import data as data_lib
    from dualjax.vjepa import probe as probe_lib
    from dualjax.vjepa import rundir, supervised, train
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
    chance = 1.0 / data_lib.num_classes(cfg)
    mean = lambda v: float(np.mean(v))  # noqa: E731
    row = {"design": design, "teacher": cfg.teacher, "steps": cfg.steps if vjepa else 0,
           "num_classes": data_lib.num_classes(cfg), "chance": chance, "random_init_top1": init,
           "random_init_mean": mean(init), "random_init_over_chance": mean(init) / chance}
    if vjepa:
        t1 = time.perf_counter()
        records = train.train(cfg, out / design, progress=False, probes=False, setup=setup, overwrite=True)
        train_s = time.perf_counter() - t1
        _, state = rundir.restore_newest(out / design, setup)
        trained = probes(probe_lib.probe_params(setup, state))
        row.update({"trained_top1": trained, "trained_mean": mean(trained),
                    "gain_points": 100 * (mean(trained) - mean(init)),
                    "rank_teacher_first_last": [records[0]["rank_teacher"], records[-1]["rank_teacher"]],
                    "E_first_last": [records[0]["E"], records[-1]["E"]], "train_s": train_s})
        log(f"{design}: trained probe {row['trained_mean']:.3f} {np.round(trained, 3).tolist()} "
            f"({row['gain_points']:+.1f} points, {train_s:.0f} s of training)")
    if supervised_steps:
        res = supervised.train(cfg, setup.model, supervised_steps, clips=supervised_clips,
                               eval_clips=(pdata.clips_test[:, 0, 0], pdata.y_test), seed=cfg.seed,
                               log=lambda r: log(f"{design}: supervised step {r['step']}: loss {r['loss']:.3f}, "
                                                 f"head top-1 {r['head_top1']:.3f}"))
        sup = probes(res.theta)
        row.update({"supervised_steps": supervised_steps, "supervised_top1": sup, "supervised_mean": mean(sup),
                    "supervised_gain_points": 100 * (mean(sup) - mean(init)), "supervised_s": res.seconds,
                    "supervised_history": [list(h) for h in res.history]})
        log(f"{design}: supervised probe {row['supervised_mean']:.3f} {np.round(sup, 3).tolist()} "
            f"({row['supervised_gain_points']:+.1f} points, {res.seconds:.0f} s)")
    row["wall_s"] = time.perf_counter() - t0
    return row


def table(rows: list[dict]) -> str:
    """The rows as a text table: random init (and × chance), V-JEPA and supervised probes with their gains."""

    def cell(r, key, fmt, width):
        return format(r[key], fmt).rjust(width) if key in r else "-".rjust(width)

    lines = [f"{'design':<14} {'classes':>7} {'init':>6} {'x chance':>8} {'V-JEPA':>7} {'gain':>6} {'superv.':>7} {'gain':>6}"]
    for r in rows:
        lines.append(f"{r['design']:<14} {r['num_classes']:>7} {100 * r['random_init_mean']:>5.1f}% "
                     f"{r['random_init_over_chance']:>8.2f} {cell(r, 'trained_mean', '.1%', 7)} "
                     f"{cell(r, 'gain_points', '+.1f', 6)} {cell(r, 'supervised_mean', '.1%', 7)} "
                     f"{cell(r, 'supervised_gain_points', '+.1f', 6)}")
    return "\n".join(lines)


@style.styled
def plot_rows(rows: list[dict], path) -> str:
    """One panel per design (module doc): held-out top-1 (%) against the supervised training step."""
    fig, axes = style.panels(1, len(rows))
    for ax, r in zip(axes[0], rows):
        last = max([h[0] for h in r.get("supervised_history", [])] + [1])
        ax.axhline(100 * r["chance"], color="0.6", lw=1, ls=":", label="chance")
        ax.axhline(100 * r["random_init_mean"], color="black", lw=1.4, label="probe, random init")
        ax.axhline(100 * r["random_init_mean"] + 20, color="black", lw=1, ls="--", label="target: random init + 20")
        if "trained_mean" in r:
            ax.axhline(100 * r["trained_mean"], color=style.rule_color(r["teacher"]), lw=1.6,
                       label=f"probe after {r['steps']} {style.rule_name_label(r['teacher'])} steps")
        if "supervised_history" in r:
            steps, _, head = zip(*r["supervised_history"])
            ax.plot(steps, [100 * h for h in head], color="#009e73", marker=".", label="supervised head (held-out)")
            ax.plot([last], [100 * r["supervised_mean"]], color="#009e73", marker="*", ms=11, ls="none",
                    label="probe, supervised encoder")
        ax.set_title(f"{r['design']} ({r['num_classes']} classes)")
        if "supervised_history" in r:
            ax.set_xlabel("supervised training step")
            ax.set_xlim(0, last * 1.05)
        else:
            ax.set_xticks([])
        ax.set_ylabel("held-out top-1 (%)")
    handles = {h.get_label(): h for ax in axes[0] for h in ax.get_lines()}
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.12 if len(rows) > 1 else 0.22, 1, 1))
    return style.save(fig, path)


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
    p.add_argument("--no-vjepa", action="store_true", help="skip V-JEPA training (random init and supervised only)")
    p.add_argument("--supervised-steps", type=int, default=0,
                   help="also the supervised ceiling: the encoder trained this many steps on the labels (0: skip)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    designs = [d for d in args.designs.split(",") if d]
    unknown = [d for d in designs if d not in data_lib.SYNTHETIC]
    if unknown:
        p.error(f"unknown design(s) {unknown}; choose from {list(data_lib.SYNTHETIC)}")
    if args.supervised_steps < 0:
        p.error(f"--supervised-steps must be >= 0, got {args.supervised_steps}")
    cfg = override(config_lib.load(args.config),
                   {"num_train": 4096, "num_heldout": 1024, "steps": args.steps, "warmup_steps": max(1, args.steps // 10),
                    "teacher": args.teacher, "probe_steps": 500, "probe_lr": 3e-3, "probe_train_clips": 4096,
                    "ckpt_every": 0, "log_every": 25, "num_devices": 1})
    cfg = override(cfg, args.overrides)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for design in designs:
        rows.append(measure(design, cfg, out, args.probe_seeds, log=lambda m: print(m, flush=True),
                            vjepa=not args.no_vjepa, supervised_steps=args.supervised_steps))
        (out / "task_design.json").write_text(json.dumps({"config": dataclasses.asdict(cfg), "rows": rows}, indent=1))
    print("\n" + table(rows))
    print(f"wrote {out / 'task_design.json'} and {plot_rows(rows, out / 'task_design.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
