"""``dualjax probe --ckpt DIR``: attentive-probe top-1 of a trained run's encoder on held-out clips.

``DIR`` is a run directory (its newest checkpoint that can be read: an unreadable newer one is
named and passed over, as ``--resume`` does, but left in place) or one checkpoint
``DIR/checkpoints/STEP``. ``--set`` changes probe settings only (:data:`PROBE_KEYS`), never the
trained model or its data. The result is written atomically to ``DIR/probe.json``.
"""

from __future__ import annotations

import argparse
import dataclasses


def _probe_keys() -> tuple[str, ...]:
    from dualjax.vjepa.config import Config

    return tuple(f.name for f in dataclasses.fields(Config) if f.name.startswith("probe_")) + (
        "num_heldout", "heldout_lists")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True,
                        help="run directory (newest readable checkpoint) or one checkpoint DIR/checkpoints/STEP")
    parser.add_argument("--encoder", choices=("teacher", "student"), default=None,
                        help="which encoder to probe (default: the run config's probe_encoder)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a probe setting of the run config (probe_*, num_heldout, heldout_lists; "
                             "e.g. probe_steps=500)")


def run(args: argparse.Namespace) -> int:
    from dualjax import configs, outputs
    from dualjax.vjepa import probe, rundir
    from dualjax.vjepa.step import build

    run_dir, ckpt = rundir.checkpoint_path(args.ckpt)
    allowed = _probe_keys()
    for item in args.overrides:
        key = item.split("=", 1)[0].strip()
        if key not in allowed:
            raise ValueError(f"--set {item!r}: {key} is not a probe setting (it would change the trained model "
                             f"or its data); probe accepts {list(allowed)}")
    overrides = list(args.overrides) + ([f"probe_encoder={args.encoder}"] if args.encoder else [])
    cfg = configs.override(rundir.read_config(run_dir), overrides).validate()
    setup = build(cfg)
    if ckpt is None:
        ckpt, state = rundir.restore_newest(run_dir, setup)
    else:
        state = rundir.restore_checkpoint(ckpt, setup)
    res = probe.probe(cfg, probe.make_encode_fn(setup.model, probe.codegen_options(cfg)), probe.probe_params(setup, state), probe.probe_data(cfg))
    out = {"checkpoint": str(ckpt), "step": int(state.step), "encoder": cfg.probe_encoder,
           "probe_top1": res.top1, "probe_train_top1": res.train_top1}
    outputs.write_json(run_dir / rundir.PROBE, out, indent=1)
    print(outputs.dumps_strict(out, indent=1))
    return 0
