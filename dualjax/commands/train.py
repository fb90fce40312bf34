"""``dualjax train --config tiny --teacher sg|ema|plain --out DIR [--set key=value ...]``."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="tiny",
                        help="preset in experiments/vjepa (e.g. tiny), a path to such a .py file, or 'default'")
    parser.add_argument("--teacher", choices=("sg", "ema", "plain"), default=None,
                        help="teacher rule (default: the config's)")
    parser.add_argument("--out", required=True, help="run directory (config.json, metrics.jsonl, checkpoints/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field; repeatable (unknown keys are errors)")
    parser.add_argument("--no-probe", action="store_true", help="skip the attentive probes")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from dualjax.vjepa import config as config_lib
    from dualjax.vjepa import train

    try:
        cfg = config_lib.load(args.config)
        overrides = list(args.overrides) + ([f"teacher={args.teacher}"] if args.teacher else [])
        cfg = config_lib.override(cfg, overrides).validate()
    except ValueError as err:
        print(f"dualjax train: {err}", file=sys.stderr)
        return 2
    records = train.train(cfg, args.out, progress=not args.no_progress, probes=not args.no_probe)
    print(json.dumps(train.summarize(records), indent=1))
    return 0
