"""``dualjax probe --ckpt DIR``: attentive-probe top-1 of a trained run's encoder on held-out clips."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True,
                        help="run directory (latest checkpoint) or one checkpoint directory DIR/checkpoints/STEP")
    parser.add_argument("--encoder", choices=("teacher", "student"), default=None,
                        help="which encoder to probe (default: the run config's probe_encoder)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override probe settings of the run config (e.g. probe_steps=500)")


def run(args: argparse.Namespace) -> int:
    from dualjax import configs
    from dualjax.vjepa import probe, rundir
    from dualjax.vjepa.step import build

    path = Path(args.ckpt)
    run_dir = path if (path / rundir.CONFIG).is_file() else path.parent.parent
    try:
        if not (run_dir / rundir.CONFIG).is_file():
            raise ValueError(f"{args.ckpt} is neither a run directory nor a checkpoint inside one")
        overrides = list(args.overrides) + ([f"probe_encoder={args.encoder}"] if args.encoder else [])
        cfg = configs.override(rundir.read_config(run_dir), overrides).validate()
        ckpt = path if path.name.isdigit() else rundir.latest_checkpoint(run_dir)
    except ValueError as err:
        print(f"dualjax probe: {err}", file=sys.stderr)
        return 2
    setup = build(cfg)
    state = rundir.restore_checkpoint(ckpt, setup)
    res = probe.probe(cfg, probe.make_encode_fn(setup.model), probe.probe_params(setup, state), probe.probe_data(cfg))
    out = {"checkpoint": str(ckpt), "step": int(state.step), "encoder": cfg.probe_encoder,
           "probe_top1": res.top1, "probe_train_top1": res.train_top1}
    (run_dir / "probe.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    return 0
