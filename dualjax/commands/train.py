"""``dualjax train --config tiny --teacher sg|ema|plain|NAME --out DIR [--set key=value ...]``,
``dualjax train --resume DIR`` (continue a run from its last complete checkpoint, same config).
``--stop-on-collapse`` (config field ``stop_on_collapse``) ends the run at the first step the
collapse monitor flags (docs/collapse.md); without it the flag is only logged.

Multi-host jobs: ``--coordinator HOST:PORT --num-processes N --process-id I`` (or the
``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID`` variables, or SLURM /
Cloud TPU pods, detected) start ``jax.distributed`` before anything touches a device; see
docs/scale.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dualjax.vjepa.config import available

    parser.add_argument("--config", default=None,
                        help=f"preset in dualjax/vjepa/presets ({', '.join(available())}; default tiny), "
                             "'default' (the reference recipe), or a path to a .py file defining CONFIG")
    from dualjax import rules

    parser.add_argument("--teacher", choices=rules.names(), default=None,
                        help="teacher rule, any registered one (default: the config's)")
    parser.add_argument("--out", default=None,
                        help="run directory (config.json, metrics.jsonl, checkpoints/); empty, or --overwrite")
    parser.add_argument("--resume", default=None, metavar="DIR",
                        help="continue the run in DIR from its last readable checkpoint with DIR/config.json")
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh in a non-empty --out: removes its config.json, metrics.jsonl, "
                             "checkpoints/ and probe.json (once the new set-up is validated)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field; repeatable (unknown keys are errors)")
    parser.add_argument("--no-probe", action="store_true", help="skip the attentive probes")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--stop-on-collapse", action="store_true",
                        help="end the run (with a checkpoint) at the first logged step flagged as collapsed")
    dist = parser.add_argument_group("multi-host (default: JAX_* environment, SLURM / TPU pod auto-detection)")
    dist.add_argument("--coordinator", default=None, metavar="HOST:PORT", help="address of process 0")
    dist.add_argument("--num-processes", type=int, default=None)
    dist.add_argument("--process-id", type=int, default=None)


def _config(args: argparse.Namespace):
    from dualjax import configs
    from dualjax.vjepa import config as config_lib
    from dualjax.vjepa import rundir

    if args.resume:
        if (args.config or args.overrides or args.teacher or args.overwrite or args.stop_on_collapse
                or (args.out and Path(args.out) != Path(args.resume))):
            raise ValueError("--resume DIR continues with DIR/config.json; do not combine it with "
                             "--config, --set, --teacher, --overwrite, --stop-on-collapse or another --out")
        return rundir.read_config(args.resume), Path(args.resume)
    if not args.out:
        raise ValueError("either --out DIR (a new run) or --resume DIR is required")
    cfg = config_lib.load(args.config or "tiny")
    overrides = list(args.overrides) + ([f"teacher={args.teacher}"] if args.teacher else []) + (
        ["stop_on_collapse=true"] if args.stop_on_collapse else [])
    return configs.override(cfg, overrides).validate(), Path(args.out)


def run(args: argparse.Namespace) -> int:
    from dualjax import distributed

    cfg, out = _config(args)
    info = distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    from dualjax import outputs
    from dualjax.vjepa import rundir, train

    if info.num_processes > 1:
        print(f"dualjax train: process {info.process_id}/{info.num_processes} ({info.launcher}), "
              f"{info.global_devices} devices", file=sys.stderr)
    train.train(cfg, out, progress=not args.no_progress and info.process_id == 0, probes=not args.no_probe,
                resume=bool(args.resume), overwrite=args.overwrite)
    if info.process_id == 0:
        records = rundir.read_metrics(out)  # the whole run, also when resumed
        summary = rundir.summarize(records)
        if records and records[-1].get("stopped_on_collapse"):
            last = records[-1]
            summary["stopped_on_collapse"] = {"step": last["step"], "why": last["stopped_on_collapse"]}
            print(f"dualjax train: stopped at step {last['step']} on collapse: {last['stopped_on_collapse']} "
                  f"(checkpoint {out / rundir.CKPT_DIR / str(last['step'] + 1)}; see dualjax diagnose {out})",
                  file=sys.stderr)
        print(outputs.dumps_strict(summary, indent=1))
    return 0
