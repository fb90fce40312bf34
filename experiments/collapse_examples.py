"""The worked example of docs/collapse.md: the tiny V-JEPA under plain, SG at a too-high lr, SG
and EMA, each diagnosed by the collapse monitor.

    .venv/bin/python experiments/collapse_examples.py --out runs/collapse [--set steps=150 ...]

Every run is the ``tiny`` preset (``dualjax/vjepa/presets/tiny.py``) for 300 steps (warmup 30),
one device, same seed, data and masks; only the rule and the learning rate change. Writes per run
``OUT/NAME/{metrics.jsonl, collapse.png}`` (what ``dualjax diagnose OUT/NAME`` shows) and
``OUT/summary.json`` (verdicts, first flagged step, ranks, E, probe top-1, wall time). Then, as a
user of another framework would, it dumps the evaluated (teacher) encoder's clip features
(tokens averaged) of the held-out clips at initialisation and at the end of each run to
``OUT/features/{init,NAME}.npy`` with ``labels.npy``, and writes the ``dualjax diagnose
--features init.npy NAME.npy`` verdict of each run to ``OUT/features/report.json``. ``--reuse`` skips training runs whose
directory already holds a final checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

RUNS = {  # name: (teacher, lr)
    "plain": ("plain", 3e-4),
    "sg_lr1e-3": ("sg", 1e-3),
    "sg": ("sg", 3e-4),
    "ema": ("ema", 3e-4),
}


def main(argv=None) -> int:
    from dualjax import diagnosis
    from dualjax.configs import override
    from dualjax.vjepa import config as config_lib
    from dualjax.vjepa import rundir, train

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/collapse")
    p.add_argument("--runs", default=",".join(RUNS), help=f"subset of {','.join(RUNS)}")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--reuse", action="store_true", help="keep finished runs in OUT, only diagnose them")
    args = p.parse_args(argv)
    base = override(config_lib.load("tiny"), {"steps": 300, "warmup_steps": 30, "num_devices": 1})
    base = override(base, args.overrides)
    out = Path(args.out)
    summary = {}
    for name in args.runs.split(","):
        teacher, lr = RUNS[name]
        cfg = override(base, {"teacher": teacher, "lr": lr}).validate()
        t0 = time.perf_counter()
        done = args.reuse and (out / name / rundir.CKPT_DIR / str(cfg.steps)).is_dir()
        records = rundir.read_metrics(out / name) if done else train.train(cfg, out / name,
                                                                           progress=not args.no_progress)
        wall = None if done else time.perf_counter() - t0
        diag = diagnosis.diagnose_run(records, teacher)
        diagnosis.plot_run(records, out / name / "collapse.png", title=f"tiny V-JEPA, {teacher.upper()}, lr {lr:g}")
        probes = [(r["step"], r["probe_top1"]) for r in records if "probe_top1" in r]
        summary[name] = {k: v for k, v in diag.items() if k != "lines"} | {"lr": lr, "probe_top1": probes,
                                                                            "wall_s": wall}
        print(f"== {name}\n" + "\n".join(diag["lines"]), file=sys.stderr)
    summary["features"] = dump_features(out, base, args.runs.split(","))
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


def dump_features(out: Path, base, names: list[str]) -> dict:
    """Held-out clip features of the evaluated encoder at init and after each run, then their
    ``diagnose --features`` report (the path a user of another codebase takes)."""
    import numpy as np

    from dualjax import diagnosis
    from dualjax.configs import override
    from dualjax.vjepa import data, probe, rundir
    from dualjax.vjepa.step import build

    fdir = out / "features"
    fdir.mkdir(parents=True, exist_ok=True)
    batches = list(data.eval_batches(data.make_source(base, "heldout"), 256, limit=base.num_heldout))
    clips, labels = np.concatenate([b["clip"] for b in batches]), np.concatenate([b["label"] for b in batches])
    np.save(fdir / "labels.npy", labels)
    files = []
    for name in ["init"] + names:
        teacher, lr = RUNS.get(name, ("ema", 3e-4))
        setup = build(override(base, {"teacher": teacher, "lr": lr}).validate())
        state = setup.init() if name == "init" else rundir.restore_checkpoint(rundir.latest_checkpoint(out / name), setup)
        encode = probe.make_encode_fn(setup.model)
        params = probe.probe_params(setup, state)
        z = np.concatenate([np.asarray(encode(params, clips[i:i + 128])).mean(axis=1) for i in range(0, len(clips), 128)])
        np.save(fdir / f"{name}.npy", z.astype(np.float32))
        files.append(fdir / f"{name}.npy")
    reports = [diagnosis.features_report(np.load(f), labels, name=f.name) for f in files]
    diagnosis.plot_features(reports, fdir / "collapse_features.png")
    # each run's two checkpoints in order, as `dualjax diagnose --features init.npy NAME.npy --labels labels.npy`
    verdicts = {r["name"]: diagnosis.compare_features([reports[0], r]) for r in reports[1:]}
    (fdir / "report.json").write_text(json.dumps({"files": reports, "verdicts": verdicts}, indent=1))
    for name, v in verdicts.items():
        print(f"== --features init.npy {name}\n" + "\n".join(v["lines"]), file=sys.stderr)
    return {r["name"]: {k: r[k] for k in ("effective_rank", "numerical_rank", "varying", "ncm_accuracy")}
            | {"verdict": verdicts.get(r["name"], {}).get("verdict")} for r in reports}


if __name__ == "__main__":
    sys.exit(main())
