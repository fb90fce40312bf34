"""Multi-block 3D masks (the reference's ``multiblock3d``), with static shapes for ``jit``.

A generator with ``num_blocks`` blocks of spatial scale s and aspect range [a₀, a₁] works on the
token grid T×H×W like the reference:

* once per batch it draws one block size: u ~ U[0, 1), keep = ⌊H·W·s⌋, aspect a = a₀ + u(a₁ − a₀),
  h = min(round(√(keep·a)), H), w = min(round(√(keep/a)), W); every block spans all T time steps;
* per clip, ``num_blocks`` blocks of that size are placed uniformly at random; the **target** is
  the union of the blocks, the **context** its complement (disjoint by construction, and
  together they cover the grid).

The reference makes batches rectangular by trimming every clip's index lists to the batch
minimum, so the shapes change from batch to batch. Under ``jit`` that would recompile each
step, so here the trimming budget is fixed once per generator: ``n_ctx`` and ``n_tgt`` are the
``keep_quantile`` quantiles of the context and target sizes over 512 calibration draws (from a
fixed seed). A clip whose context or target is smaller than its budget is redrawn; a larger one is
trimmed to a uniformly random subset of the budget (kept in raster order), so that trimming does
not favour early frames the way the reference's "first k indices" does.

Everything is numpy with an explicit ``np.random.Generator``: deterministic from a seed and
run in the data pipeline, off the accelerator.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from dualjax import checks


class BlockSpec(NamedTuple):
    num_blocks: int
    scale: float
    aspect: tuple[float, float] = (0.75, 1.5)


class MaskPair(NamedTuple):
    """Index lists of one generator for a batch: context (B, n_ctx) and target (B, n_tgt), int32."""

    ctx: np.ndarray
    tgt: np.ndarray


def block_size(spec: BlockSpec, grid: tuple[int, int, int], u: float) -> tuple[int, int]:
    """(h, w) of a block for the uniform draw ``u``."""
    _, H, W = grid
    keep = int(H * W * spec.scale)
    a0, a1 = spec.aspect
    aspect = a0 + u * (a1 - a0)
    h = max(1, min(int(round(math.sqrt(keep * aspect))), H))
    w = max(1, min(int(round(math.sqrt(keep / aspect))), W))
    return h, w


def target_mask(spec: BlockSpec, grid: tuple[int, int, int], hw: tuple[int, int],
                rng: np.random.Generator) -> np.ndarray:
    """Boolean (T, H, W) union of ``num_blocks`` blocks of size ``hw`` spanning all of time."""
    T, H, W = grid
    h, w = hw
    spatial = np.zeros((H, W), bool)
    for _ in range(spec.num_blocks):
        top = rng.integers(0, H - h + 1)
        left = rng.integers(0, W - w + 1)
        spatial[top:top + h, left:left + w] = True
    return np.broadcast_to(spatial, (T, H, W))


class MultiBlockMasks:
    """Samples one :class:`MaskPair` per generator for a batch; see the module doc."""

    CALIBRATION_DRAWS = 512

    def __init__(self, grid: tuple[int, int, int], specs: list[BlockSpec], keep_quantile: float = 0.1,
                 calibration_seed: int = 0, max_redraws: int = 1000):
        self.grid = tuple(int(g) for g in grid)
        for g in self.grid:
            checks.check_positive_int(g, "token grid size")
        self.specs = [BlockSpec(int(s.num_blocks), float(s.scale), tuple(s.aspect)) for s in specs]
        for s in self.specs:
            checks.check_positive_int(s.num_blocks, "num_blocks")
            if not 0 < s.scale < 1:
                raise ValueError(f"block scale {s.scale} must lie in (0, 1)")
        self.num_tokens = math.prod(self.grid)
        self.max_redraws = max_redraws
        rng = np.random.default_rng([calibration_seed, 7919])
        self.n_ctx, self.n_tgt = [], []
        for spec in self.specs:
            sizes = np.array([
                target_mask(spec, self.grid, block_size(spec, self.grid, rng.random()), rng).sum()
                for _ in range(self.CALIBRATION_DRAWS)
            ])
            ctx_sizes = self.num_tokens - sizes
            n_ctx = int(np.quantile(ctx_sizes[ctx_sizes > 0], keep_quantile)) if (ctx_sizes > 0).any() else 0
            if n_ctx < 1:
                raise ValueError(
                    f"mask generator {spec} leaves no context on the token grid {self.grid}; "
                    "use fewer or smaller blocks or a finer grid"
                )
            self.n_ctx.append(n_ctx)
            self.n_tgt.append(max(1, int(np.quantile(sizes, keep_quantile))))

    def _one(self, spec: BlockSpec, hw: tuple[int, int], n_ctx: int, n_tgt: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        for _ in range(self.max_redraws):
            tgt_mask = target_mask(spec, self.grid, hw, rng).reshape(-1)
            tgt = np.flatnonzero(tgt_mask)
            ctx = np.flatnonzero(~tgt_mask)
            if len(tgt) >= n_tgt and len(ctx) >= n_ctx:
                return (np.sort(rng.choice(ctx, n_ctx, replace=False)),
                        np.sort(rng.choice(tgt, n_tgt, replace=False)), tgt_mask)
        raise ValueError(
            f"could not place blocks of size {hw} with >= {n_ctx} context and >= {n_tgt} target tokens "
            f"on grid {self.grid} in {self.max_redraws} draws"
        )

    def __call__(self, rng: np.random.Generator, batch_size: int) -> tuple[MaskPair, ...]:
        return self.sample(rng, batch_size)[0]

    def sample(self, rng: np.random.Generator, batch_size: int) -> tuple[tuple[MaskPair, ...], tuple[np.ndarray, ...]]:
        """The trimmed pairs and, per generator, the untrimmed target unions (B, N) bool."""
        checks.check_positive_int(batch_size, "batch_size")
        pairs, unions = [], []
        for spec, n_ctx, n_tgt in zip(self.specs, self.n_ctx, self.n_tgt):
            hw = block_size(spec, self.grid, rng.random())
            # redraw the batch's block size if it cannot fit the budgets (tiny grids only)
            for _ in range(self.max_redraws):
                area = hw[0] * hw[1] * self.grid[0]
                if self.num_tokens - area >= n_ctx and min(self.num_tokens, spec.num_blocks * area) >= n_tgt:
                    break
                hw = block_size(spec, self.grid, rng.random())
            ctx, tgt, union = zip(*(self._one(spec, hw, n_ctx, n_tgt, rng) for _ in range(batch_size)))
            pairs.append(MaskPair(np.stack(ctx).astype(np.int32), np.stack(tgt).astype(np.int32)))
            unions.append(np.stack(union))
        return tuple(pairs), tuple(unions)


def from_config(cfg) -> MultiBlockMasks:
    """The generators of a :class:`dualjax.vjepa.config.Config`."""
    specs = [BlockSpec(n, s, tuple(cfg.mask_aspect)) for n, s in zip(cfg.mask_blocks, cfg.mask_scales)]
    return MultiBlockMasks(cfg.grid, specs, keep_quantile=cfg.mask_keep_quantile, calibration_seed=cfg.data_seed)
