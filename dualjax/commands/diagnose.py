"""``dualjax diagnose RUN_DIR`` (verdict and figure over a run's metrics.jsonl) and
``dualjax diagnose --features F.npy [F2.npz ...] [--labels L.npy]`` (spectrum and rank of features
dumped from any framework; several files = several checkpoints in order). See docs/collapse.md.
Bad input (a missing file, NaN, a wrong shape, fewer than 2 samples) exits with 2 and one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", nargs="?", default=None, help="run directory of dualjax train (metrics.jsonl)")
    parser.add_argument("--features", nargs="+", default=None, metavar="FILE",
                        help=".npy / .npz feature arrays (samples, dims) or (samples, tokens, dims), in checkpoint order")
    parser.add_argument("--labels", nargs="+", default=None, metavar="FILE",
                        help="integer labels .npy, one per sample: one file for all features files, or one each")
    parser.add_argument("--key", default=None, help="array name inside .npz files (default: the only one, or 'features')")
    parser.add_argument("--out", default=None,
                        help="figure path (default RUN_DIR/collapse.png, or collapse_features.png beside the first file)")
    parser.add_argument("--json", action="store_true", help="print the diagnosis as JSON instead of text")


def _features(args) -> tuple[dict, Path]:
    from dualjax import diagnosis

    if args.labels and len(args.labels) not in (1, len(args.features)):
        raise ValueError(f"--labels takes one file or one per features file ({len(args.features)}), "
                         f"got {len(args.labels)}")
    reports = []
    for i, path in enumerate(args.features):
        z, labels = diagnosis.load_features(path, args.key)
        if args.labels:
            labels = diagnosis.load_labels(args.labels[min(i, len(args.labels) - 1)], z.shape[0])
        reports.append(diagnosis.features_report(z, labels, name=str(path)))
    out = diagnosis.compare_features(reports)
    out["files"] = reports
    fig = Path(args.out) if args.out else Path(args.features[0]).parent / "collapse_features.png"
    return out, diagnosis.plot_features(reports, fig)


def _run(args) -> tuple[dict, Path]:
    from dualjax import diagnosis

    records, teacher = diagnosis.read_run(args.run_dir)
    out = diagnosis.diagnose_run(records, teacher)
    fig = Path(args.out) if args.out else Path(args.run_dir) / "collapse.png"
    return out, diagnosis.plot_run(records, fig, title=f"{args.run_dir} ({teacher or 'teacher unknown'})")


def run(args: argparse.Namespace) -> int:
    try:
        if (args.run_dir is None) == (args.features is None):
            raise ValueError("give either RUN_DIR or --features FILE [FILE ...]")
        if args.labels and not args.features:
            raise ValueError("--labels goes with --features")
        out, fig = _features(args) if args.features else _run(args)
    except ValueError as err:
        print(f"dualjax diagnose: {err}", file=sys.stderr)
        return 2
    out["figure"] = str(fig)
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print("\n".join(out["lines"] + [f"figure: {fig}"]))
    return 0
