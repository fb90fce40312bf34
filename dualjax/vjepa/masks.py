"""Multi-block 3D masks drawn as the reference collator draws them, with a few static shapes for ``jit``.

A generator with ``num_blocks`` blocks of spatial scale s and aspect range [a₀, a₁] on the token
grid T×H×W (the reference ``multiblock3d``):

* **per batch** one block size: u ~ U[0, 1), keep = ⌊H·W·s⌋, a = a₀ + u(a₁ − a₀),
  h = min(round(√(keep·a)), H), w = min(round(√(keep/a)), W); every block spans all T steps;
* **per clip** ``num_blocks`` blocks of that size at uniform positions; the **target** is their
  union, the **context** its complement; a clip whose blocks cover the whole grid (no context) is
  drawn again;
* **per group** of ``group`` clips (the reference trims each per-GPU batch, 24 clips): every clip
  keeps k_ctx = the smallest context and k_tgt = the smallest target of its group.
  ``trim="first"`` keeps the first k indices in raster order, as the reference does, which favours
  early frames in the context; ``trim="random"`` keeps a uniformly random k-subset (in raster
  order), which does not.

**Static shapes.** Each index list is padded to a width from a short ladder (``buckets`` widths per
list: quantiles of the group minima over calibration draws, the largest being the largest drawn);
``n_ctx`` / ``n_tgt`` (B,) count the leading entries that are real. The model leaves the padding
out of attention and of the loss, so a step computes exactly what the reference computes on its k
tokens, and ``jit`` compiles once per combination of widths: once with ``buckets=1``, at most
``buckets^(2G)`` times for G generators. A group minimum above the top width (rarer than one
calibration draw in ``CALIBRATION_GROUPS``) is trimmed to it.

Everything is numpy with an explicit ``np.random.Generator``: deterministic from a seed and run in
the data pipeline, off the accelerator.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from dualjax import checks

TRIMS = ("first", "random")


class BlockSpec(NamedTuple):
    num_blocks: int
    scale: float
    aspect: tuple[float, float] = (0.75, 1.5)


class MaskSet(NamedTuple):
    """One generator's masks for a batch: context (B, W_ctx) and target (B, W_tgt) token indices
    (int32, raster order); the first ``n_ctx[b]`` / ``n_tgt[b]`` entries of row b are real, the
    rest is padding (index 0)."""

    ctx: np.ndarray
    tgt: np.ndarray
    n_ctx: np.ndarray
    n_tgt: np.ndarray


def block_size(spec: BlockSpec, grid: tuple[int, int, int], u: float) -> tuple[int, int]:
    """(h, w) of a block for the uniform draw ``u``."""
    _, H, W = grid
    keep = int(H * W * spec.scale)
    a0, a1 = spec.aspect
    aspect = a0 + u * (a1 - a0)
    h = max(1, min(int(round(math.sqrt(keep * aspect))), H))
    w = max(1, min(int(round(math.sqrt(keep / aspect))), W))
    return h, w


def spatial_unions(spec: BlockSpec, grid: tuple[int, int, int], hw: tuple[int, int], n: int,
                   rng: np.random.Generator, max_redraws: int = 1000) -> np.ndarray:
    """(n, H, W) bool: per clip the union of ``num_blocks`` blocks of size ``hw`` at uniform
    positions, redrawn while it covers the whole H×W plane (the reference's empty-context retry)."""
    _, H, W = grid
    h, w = hw
    out = np.empty((n, H, W), bool)
    todo = np.arange(n)
    for _ in range(max_redraws):
        tops = rng.integers(0, H - h + 1, size=(len(todo), spec.num_blocks))
        lefts = rng.integers(0, W - w + 1, size=(len(todo), spec.num_blocks))
        rows = (np.arange(H) >= tops[..., None]) & (np.arange(H) < tops[..., None] + h)  # (n, blocks, H)
        cols = (np.arange(W) >= lefts[..., None]) & (np.arange(W) < lefts[..., None] + w)
        union = (rows[..., :, None] & cols[..., None, :]).any(axis=1)
        out[todo] = union
        todo = todo[union.all(axis=(1, 2))]
        if not len(todo):
            return out
    raise ValueError(f"blocks of size {hw} ({spec}) leave no context on the token grid {grid} "
                     f"in {max_redraws} draws; use fewer or smaller blocks or a finer grid")


def group_minima(counts: np.ndarray, group: int) -> np.ndarray:
    """Per clip, the smallest of ``counts`` over its group (consecutive runs of ``group`` clips)."""
    out = np.empty_like(counts)
    for start in range(0, len(counts), group):
        out[start:start + group] = counts[start:start + group].min()
    return out


def keep_indices(member: np.ndarray, k: np.ndarray, width: int, trim: str,
                 rng: np.random.Generator) -> np.ndarray:
    """(B, width) int32: per row b the indices of ``k[b]`` (at most its count) of its True entries
    of ``member`` (B, N), ascending, then zeros. ``trim="first"``: the first k; ``"random"``: a
    uniform k-subset (the k smallest of uniform keys)."""
    if trim == "random":
        keys = np.where(member, rng.random(member.shape), 2.0)
        kept = np.zeros_like(member)
        for kk in np.unique(k):
            rows = np.flatnonzero(k == kk)
            if kk > 0:
                kth = np.partition(keys[rows], kk - 1, axis=1)[:, kk - 1:kk]
                kept[rows] = keys[rows] <= kth
    else:
        kept = member & (np.cumsum(member, axis=1, dtype=np.int32) <= k[:, None])
    rows, cols = np.nonzero(kept)  # row-major: row b's k[b] entries, ascending
    starts = np.concatenate([[0], np.cumsum(kept.sum(axis=1))[:-1]])
    out = np.zeros((len(member), width), np.int32)
    out[rows, np.arange(len(rows)) - starts[rows]] = cols
    return out


class MultiBlockMasks:
    """Samples one :class:`MaskSet` per generator for a batch; see the module doc."""

    CALIBRATION_GROUPS = 512

    def __init__(self, grid: tuple[int, int, int], specs: list[BlockSpec], *, group: int, trim: str = "first",
                 buckets: int = 1, calibration_seed: int = 0, max_redraws: int = 1000):
        self.grid = tuple(int(g) for g in grid)
        for g in self.grid:
            checks.check_positive_int(g, "token grid size")
        self.specs = [BlockSpec(int(s.num_blocks), float(s.scale), tuple(s.aspect)) for s in specs]
        for s in self.specs:
            checks.check_positive_int(s.num_blocks, "num_blocks")
            if not 0 < s.scale < 1:
                raise ValueError(f"block scale {s.scale} must lie in (0, 1)")
        if trim not in TRIMS:
            raise ValueError(f"trim={trim!r}; choose one of {list(TRIMS)}")
        self.group = checks.check_positive_int(group, "group")
        self.trim = trim
        self.buckets = checks.check_positive_int(buckets, "buckets")
        self.num_tokens = math.prod(self.grid)
        self.max_redraws = max_redraws
        rng = np.random.default_rng([calibration_seed, 7919])
        self.ctx_widths, self.tgt_widths = [], []
        for spec in self.specs:
            mins = np.array([self._counts(spec, self.group, rng).min(axis=1)
                             for _ in range(self.CALIBRATION_GROUPS)])  # (draws, 2): ctx, tgt
            qs = np.arange(1, self.buckets + 1) / self.buckets
            self.ctx_widths.append(tuple(sorted({int(v) for v in np.quantile(mins[:, 0], qs, method="higher")})))
            self.tgt_widths.append(tuple(sorted({int(v) for v in np.quantile(mins[:, 1], qs, method="higher")})))

    def _draw(self, spec: BlockSpec, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, H, W) spatial target unions of one batch (one block size for all n clips)."""
        hw = block_size(spec, self.grid, rng.random())
        return spatial_unions(spec, self.grid, hw, n, rng, self.max_redraws)

    def _counts(self, spec: BlockSpec, n: int, rng: np.random.Generator) -> np.ndarray:
        """(2, n): context and target sizes of n clips of one batch."""
        tgt = self.grid[0] * self._draw(spec, n, rng).sum(axis=(1, 2))
        return np.stack([self.num_tokens - tgt, tgt])

    @staticmethod
    def _width(widths: tuple[int, ...], need: int) -> int:
        """The smallest ladder width holding ``need`` tokens, else the top one."""
        return next((w for w in widths if w >= need), widths[-1])

    def __call__(self, rng: np.random.Generator, batch_size: int) -> tuple[MaskSet, ...]:
        return self.sample(rng, batch_size)[0]

    def sample(self, rng: np.random.Generator, batch_size: int) -> tuple[tuple[MaskSet, ...], tuple[np.ndarray, ...]]:
        """The masks and, per generator, the untrimmed target unions (B, N) bool."""
        checks.check_positive_int(batch_size, "batch_size")
        sets, unions = [], []
        for spec, ctx_widths, tgt_widths in zip(self.specs, self.ctx_widths, self.tgt_widths):
            union = np.broadcast_to(self._draw(spec, batch_size, rng)[:, None], (batch_size,) + self.grid)
            union = union.reshape(batch_size, -1)
            lists = []
            for member, widths in ((~union, ctx_widths), (union, tgt_widths)):
                k = group_minima(member.sum(axis=1), self.group)
                width = self._width(widths, int(k.max()))
                k = np.minimum(k, width).astype(np.int32)
                lists.append((keep_indices(member, k, width, self.trim, rng), k))
            (ctx, n_ctx), (tgt, n_tgt) = lists
            sets.append(MaskSet(ctx, tgt, n_ctx, n_tgt))
            unions.append(union)
        return tuple(sets), tuple(unions)


def from_config(cfg) -> MultiBlockMasks:
    """The generators of a :class:`dualjax.vjepa.config.Config` (``mask_group`` 0: the whole batch)."""
    specs = [BlockSpec(n, s, tuple(cfg.mask_aspect)) for n, s in zip(cfg.mask_blocks, cfg.mask_scales)]
    return MultiBlockMasks(cfg.grid, specs, group=cfg.mask_group or cfg.batch_size, trim=cfg.mask_trim,
                           buckets=cfg.mask_buckets, calibration_seed=cfg.data_seed)
