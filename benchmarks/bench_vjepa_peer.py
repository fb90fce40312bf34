"""Our V-JEPA step beside the PyTorch reference's, run alternately on the same machine (issue 14).

    .venv/bin/python benchmarks/bench_vjepa_peer.py [--models tiny,small] [--rounds 3] [--steps 5]
        [--peer-python /work/torchvenv/bin/python] [--jepa-root /work/ref/jepa]
        [--peer-script ../shared/bench/peer_vjepa_step_torch.py] [--out runs/bench_vjepa_peer.json]

Per model and round, three processes one after the other: ours with an empty persistent
compilation cache (compile cold), ours again on that cache (compile warm: the executable is
loaded, as by a second ``dualjax train``), and the peer (``peer_vjepa_step_torch.py``: the
reference repository's own modules, float32, the same clip, batch, tubelets, predictor and mask
generators). Both sides are float32 and time full steps after warm-up, median over the timed steps;
the table gives the median over rounds (and the range) of each side, their ratio, the compile
seconds and the memory of our step (XLA buffer assignment, process max RSS), with the load average
of each round. The peer runs only where its Python (with torch), the reference checkout and the
script are found; otherwise our side alone.

Run it on a quiet machine: torch's OpenMP threads spin at their barriers and lose most of their
time when the cores are oversubscribed by other jobs (measured here: 0.12 clips/s for the peer at
load 11–14, against 3.3–4.4 on a quiet machine), so a ratio taken under load flatters us.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER_MODELS = {"tiny": "vit_tiny", "small": "vit_small", "base": "vit_base", "large": "vit_large"}


def ours(model: str, args, cache: str) -> dict:
    """One process of bench_vjepa.py on ``model`` with the persistent cache at ``cache``: its row."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "row.json"
        cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_vjepa.py"), "--models", model, "--frames",
               str(args.frames), "--size", str(args.size), "--batch", str(args.batch), "--steps", str(args.steps),
               "--cache", cache, "--out", str(out)]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        return json.loads(out.read_text())[0]


def peer(model: str, args) -> float | None:
    """clips/s of one run of the peer script, or None where it cannot run here."""
    script = Path(args.peer_script)
    if not (Path(args.peer_python).exists() and Path(args.jepa_root).is_dir() and script.exists()):
        return None
    cmd = [args.peer_python, str(script), args.jepa_root, PEER_MODELS[model], str(args.frames), str(args.size),
           "16", str(args.batch), str(args.steps), "384", "12"]
    text = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(re.search(r"([\d.]+) clips/s", text).group(1))


def _load() -> float:
    return os.getloadavg()[0]


def _median_range(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} ({min(xs):.2f}–{max(xs):.2f})" if xs else "–"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="tiny,small")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--peer-python", default=os.environ.get("DUALJAX_PEER_PYTHON", "/work/torchvenv/bin/python"))
    p.add_argument("--jepa-root", default=os.environ.get("DUALJAX_JEPA_ROOT", "/work/ref/jepa"))
    p.add_argument("--peer-script", default=str(ROOT.parent / "shared" / "bench" / "peer_vjepa_step_torch.py"))
    p.add_argument("--out", default="runs/bench_vjepa_peer.json")
    args = p.parse_args(argv)
    rows = []
    for model in args.models.split(","):
        runs = []
        for r in range(args.rounds):
            with tempfile.TemporaryDirectory() as cache:
                load = _load()
                cold = ours(model, args, cache)
                warm = ours(model, args, cache)
            theirs = peer(model, args)
            runs.append({"round": r, "load": load, "cold": cold, "warm": warm, "peer_clips_per_s": theirs})
            print(json.dumps({"model": model, "round": r, "load": round(load, 2), "ours": cold["clips_per_s"],
                              "ours_warm": warm["clips_per_s"], "peer": theirs, "compile_cold_s": cold["compile_s"],
                              "compile_warm_s": warm["compile_s"]}), flush=True)
        mine = [x for run in runs for x in (run["cold"]["clips_per_s"], run["warm"]["clips_per_s"])]
        theirs = [run["peer_clips_per_s"] for run in runs if run["peer_clips_per_s"] is not None]
        rows.append({
            "model": model, "clip": runs[0]["cold"]["clip"], "batch": args.batch, "runs": runs,
            "ours": mine, "peer": theirs,
            "ratio": statistics.median(mine) / statistics.median(theirs) if theirs else None,
            "compile_cold_s": [run["cold"]["compile_s"] for run in runs],
            "compile_warm_s": [run["warm"]["compile_s"] for run in runs],
            "xla_peak_MiB": runs[0]["cold"]["xla_peak_MiB"],
            "max_rss_MiB": max(run["cold"]["max_rss_MiB"] for run in runs),
            "load": [run["load"] for run in runs],
        })
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))
    print("\n| model | clip, batch | ours clips/s | peer clips/s | ours / peer | compile cold s | compile warm s "
          "| XLA peak MiB | max RSS MiB | load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if r["ratio"] else "– (no peer)"
        print(f"| {r['model']} | {r['clip']}, {r['batch']} | {_median_range(r['ours'])} | {_median_range(r['peer'])} "
              f"| {ratio} | {_median_range(r['compile_cold_s'])} | {_median_range(r['compile_warm_s'])} "
              f"| {r['xla_peak_MiB']:.0f} | {r['max_rss_MiB']:.0f} | {min(r['load']):.1f}–{max(r['load']):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
