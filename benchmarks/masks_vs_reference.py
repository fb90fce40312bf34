"""Our multi-block masks side by side with the reference collator (facebookresearch/jepa
``src/masks/multiblock3d.py``), at the reference geometry and on the tiny preset's grid.

    python benchmarks/masks_vs_reference.py [--reference PATH/TO/jepa] [--batches 2000] [--seed 0]

Needs numpy only for our side (``dualjax.vjepa.masks`` has no JAX import). With ``--reference`` a
checkout of the reference is put on ``sys.path`` and its ``MaskCollator`` drawn as many batches
(this needs torch in the running Python, e.g. ``/work/torchvenv/bin/python``; torch is never a
dependency of dualjax); without it, or if that import fails, only our side is printed.

Per grid and mask generator (8 blocks of scale 0.15, 2 blocks of scale 0.7, aspect 0.75–1.5) the
table gives, over the batches: the kept context and target counts (mean ± sd; one count per
batch, as the reference trims the batch to its minimum), the target union of a clip before
trimming, the tokens in neither kept list, and the share of the kept context in each frame
(``first``: the reference's trimming, ``random``: our option).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dualjax.vjepa.masks import BlockSpec, MultiBlockMasks  # noqa: E402

MASKS = [dict(num_blocks=8, spatial_scale=(0.15, 0.15)), dict(num_blocks=2, spatial_scale=(0.7, 0.7))]
ASPECT = (0.75, 1.5)
GRIDS = {  # name: (frames, crop, patch, tubelet, batch)
    "reference 8x14x14, batch 24": (16, 224, 16, 2, 24),
    "tiny 4x4x4, batch 16": (8, 32, 8, 2, 16),
}


def _stats(ctx, tgt, union, frames_ctx, num_tokens):
    ctx, tgt, union = (np.asarray(x, float) for x in (ctx, tgt, union))
    share = frames_ctx / frames_ctx.sum()
    return {"kept context": (ctx.mean(), ctx.std()), "kept target": (tgt.mean(), tgt.std()),
            "target union": (union.mean(), union.std()), "in neither": ((num_tokens - ctx - tgt).mean(), None),
            "context share per frame": share}


def ours(grid, batch, batches, trim, seed):
    specs = [BlockSpec(m["num_blocks"], m["spatial_scale"][0], ASPECT) for m in MASKS]
    gen = MultiBlockMasks(grid, specs, group=batch, trim=trim, calibration_seed=seed)
    rng = np.random.default_rng([seed, 1])
    acc = [([], [], [], np.zeros(grid[0])) for _ in specs]
    for _ in range(batches):
        sets, unions = gen.sample(rng, batch)
        for (ctx, tgt, union, frames), m, u in zip(acc, sets, unions):
            ctx.append(m.n_ctx[0])
            tgt.append(m.n_tgt[0])
            union.extend(u.sum(axis=1))
            for b in range(batch):
                frames += np.bincount(m.ctx[b, :m.n_ctx[b]] // (grid[1] * grid[2]), minlength=grid[0])
    return [_stats(*a, math.prod(grid)) for a in acc]


def reference(path, frames, crop, patch, tubelet, batch, batches, seed):
    sys.path.insert(0, str(path))
    import torch
    from src.masks.multiblock3d import MaskCollator

    torch.manual_seed(seed)
    cfgs = [dict(m, aspect_ratio=ASPECT, temporal_scale=(1.0, 1.0), max_temporal_keep=1.0, max_keep=None)
            for m in MASKS]
    collator = MaskCollator(cfgs, crop_size=crop, num_frames=frames, patch_size=patch, tubelet_size=tubelet)
    grid = (frames // tubelet, crop // patch, crop // patch)
    acc = [([], [], [], np.zeros(grid[0])) for _ in MASKS]
    for _ in range(batches):
        _, enc, pred = collator([0] * batch)
        for (ctx, tgt, _, frames_ctx), e, p in zip(acc, enc, pred):
            ctx.append(e.shape[1])
            tgt.append(p.shape[1])
            frames_ctx += np.bincount(e.numpy().reshape(-1) // (grid[1] * grid[2]), minlength=grid[0])
    # the untrimmed unions, from the generator's own block-size and block-placement functions
    for (_, _, union, _), gen in zip(acc, collator.mask_generators):
        for _ in range(batches):
            g = torch.Generator()
            g.manual_seed(gen.step())
            size = gen._sample_block_size(g, gen.temporal_pred_mask_scale, gen.spatial_pred_mask_scale,
                                          gen.aspect_ratio)
            for _ in range(batch):
                keep = torch.zeros(grid, dtype=torch.int32)
                while not keep.any():  # as the collator: a clip without context is drawn again
                    keep = torch.ones(grid, dtype=torch.int32)
                    for _ in range(gen.npred):
                        keep *= gen._sample_block_mask(size)
                union.append(int((keep == 0).sum()))
    return [_stats(*a, math.prod(grid)) for a in acc]


def _fmt(value):
    mean, sd = value
    return f"{mean:.1f}" + (f" ± {sd:.1f}" if sd is not None else "")


def table(name, ref, first, rand):
    print(f"\n### {name}\n")
    print("| generator | quantity | reference | ours (first) | ours / ref − 1 | ours (random) |")
    print("|---|---|---|---|---|---|")
    for i, m in enumerate(MASKS):
        gen = f"{m['num_blocks']} × {m['spatial_scale'][0]}"
        for key in ("kept context", "kept target", "target union", "in neither"):
            r = _fmt(ref[i][key]) if ref else "—"
            rel = f"{first[i][key][0] / ref[i][key][0] - 1:+.1%}" if ref else "—"
            print(f"| {gen} | {key} | {r} | {_fmt(first[i][key])} | {rel} | {_fmt(rand[i][key])} |")
        key = "context share per frame"
        shares = [" ".join(f"{s:.2f}" for s in d[i][key]) if d else "—" for d in (ref, first, rand)]
        print(f"| {gen} | {key} | {shares[0]} | {shares[1]} | | {shares[2]} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=None, help="checkout of facebookresearch/jepa")
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name, (frames, crop, patch, tubelet, batch) in GRIDS.items():
        grid = (frames // tubelet, crop // patch, crop // patch)
        ref = None
        if args.reference is not None:
            try:
                ref = reference(args.reference, frames, crop, patch, tubelet, batch, args.batches, args.seed)
            except ImportError as err:
                print(f"reference not importable from {args.reference} ({err}); our side only", file=sys.stderr)
        first = ours(grid, batch, args.batches, "first", args.seed)
        rand = ours(grid, batch, args.batches, "random", args.seed)
        table(name, ref, first, rand)
    return 0


if __name__ == "__main__":
    sys.exit(main())
