"""Multi-block masks against the reference collator's rules (src/masks/multiblock3d.py), recomputed
here independently: block sizes, the exact expected kept counts, trimming, padding, determinism."""

import itertools
import math

import numpy as np
import pytest

from dualjax.vjepa.masks import BlockSpec, MultiBlockMasks, block_size, keep_indices, spatial_unions

GRID = (4, 6, 6)
SPECS = [BlockSpec(8, 0.15), BlockSpec(2, 0.7)]


def test_block_size_follows_scale_and_aspect():
    # keep = ⌊14·14·0.15⌋ = 29; aspect 0.75 -> h = round(√21.75) = 5, w = round(√38.67) = 6
    assert block_size(BlockSpec(8, 0.15), (8, 14, 14), 0.0) == (5, 6)
    # aspect 1.5 -> h = round(√43.5) = 7, w = round(√19.33) = 4
    assert block_size(BlockSpec(8, 0.15), (8, 14, 14), 1.0) == (7, 4)


def test_union_of_blocks_is_painted_blocks():
    spec, hw, n = BlockSpec(3, 0.2), (2, 3), 5
    got = spatial_unions(spec, GRID, hw, n, np.random.default_rng(9))
    rng = np.random.default_rng(9)  # the same draws, painted one block at a time
    tops = rng.integers(0, GRID[1] - hw[0] + 1, size=(n, 3))
    lefts = rng.integers(0, GRID[2] - hw[1] + 1, size=(n, 3))
    want = np.zeros((n,) + GRID[1:], bool)
    for b, k in itertools.product(range(n), range(3)):
        want[b, tops[b, k]:tops[b, k] + hw[0], lefts[b, k]:lefts[b, k] + hw[1]] = True
    np.testing.assert_array_equal(got, want)


def test_masks_are_trimmed_group_minima_padded_and_disjoint():
    gen = MultiBlockMasks(GRID, SPECS, group=3)
    N = math.prod(GRID)
    sets, unions = gen.sample(np.random.default_rng(3), 7)  # groups of 3, 3 and 1 clips
    assert len(sets) == 2
    for m, union, ctx_widths, tgt_widths in zip(sets, unions, gen.ctx_widths, gen.tgt_widths):
        assert m.ctx.dtype == np.int32 and m.ctx.shape[1] in ctx_widths and m.tgt.shape[1] in tgt_widths
        u = union.reshape((7,) + GRID)
        assert (u == u[:, :1]).all()  # every block spans all time
        for start in (0, 3, 6):
            g = slice(start, start + 3)
            want_ctx = min(int((~union[g]).sum(axis=1).min()), m.ctx.shape[1])
            want_tgt = min(int(union[g].sum(axis=1).min()), m.tgt.shape[1])
            assert (m.n_ctx[g] == want_ctx).all() and (m.n_tgt[g] == want_tgt).all()
        for b in range(7):
            ctx, tgt = m.ctx[b, :m.n_ctx[b]], m.tgt[b, :m.n_tgt[b]]
            # trim="first": the first k indices of the complement / the union, in raster order
            np.testing.assert_array_equal(ctx, np.flatnonzero(~union[b])[:m.n_ctx[b]])
            np.testing.assert_array_equal(tgt, np.flatnonzero(union[b])[:m.n_tgt[b]])
            assert not set(ctx) & set(tgt) and max(ctx.max(), tgt.max()) < N
            assert (m.ctx[b, m.n_ctx[b]:] == 0).all() and (m.tgt[b, m.n_tgt[b]:] == 0).all()  # padding


def test_keep_indices_first_and_random():
    member = np.array([[0, 1, 1, 0, 1, 1], [1, 1, 0, 0, 0, 1]], bool)
    k = np.array([3, 2])
    first = keep_indices(member, k, 4, "first", np.random.default_rng(0))
    np.testing.assert_array_equal(first, [[1, 2, 4, 0], [0, 1, 0, 0]])
    counts = np.zeros(6)
    for seed in range(2000):
        got = keep_indices(member[:1], k[:1], 3, "random", np.random.default_rng(seed))[0]
        assert np.all(np.diff(got) > 0) and set(got) <= {1, 2, 4, 5}
        counts[got] += 1
    # a uniform 3-subset of 4 members holds each with probability 3/4 (σ of the count ≈ 19)
    np.testing.assert_allclose(counts[[1, 2, 4, 5]], 1500, atol=80)
    assert counts[[0, 3]].sum() == 0


def _exact_mean_kept(spec, grid, group):
    """E[group minimum] of the context and target sizes, from the collator's rules written out:
    the block size from u ~ U[0, 1) (its distribution on a fine grid of u), every placement of the
    blocks enumerated, placements covering the whole plane dropped (the collator redraws them),
    and E[min of g iid counts] = Σ_{x ≥ 1} P(X ≥ x)^g."""
    T, H, W = grid
    keep = int(H * W * spec.scale)
    us = (np.arange(20_000) + 0.5) / 20_000
    ar = spec.aspect[0] + us * (spec.aspect[1] - spec.aspect[0])
    sizes = np.stack([np.minimum(np.round(np.sqrt(keep * ar)), H), np.minimum(np.round(np.sqrt(keep / ar)), W)], 1)
    means = np.zeros(2)
    for (h, w), count in zip(*np.unique(sizes.astype(int), axis=0, return_counts=True)):
        cells = [np.zeros((H, W), bool) for _ in range((H - h + 1) * (W - w + 1))]
        for c, (top, left) in zip(cells, itertools.product(range(H - h + 1), range(W - w + 1))):
            c[top:top + h, left:left + w] = True
        unions = [np.logical_or.reduce(combo).sum() for combo in itertools.product(cells, repeat=spec.num_blocks)]
        unions = np.array([u for u in unions if u < H * W])
        for i, sizes_ in enumerate((T * (H * W - unions), T * unions)):  # context, target
            tail = [(sizes_ >= x).mean() ** group for x in range(1, sizes_.max() + 1)]
            means[i] += count / len(us) * sum(tail)
    return means


@pytest.mark.parametrize("trim", ["first", "random"])
def test_mean_kept_counts_equal_the_exact_expectation(trim):
    grid, group, batches = (2, 5, 5), 4, 1500
    specs = [BlockSpec(2, 0.3), BlockSpec(3, 0.2)]
    gen = MultiBlockMasks(grid, specs, group=group, trim=trim, buckets=2)
    rng = np.random.default_rng(11)
    raw, kept = [[], []], [[], []]
    for _ in range(batches):
        sets, unions = gen.sample(rng, 2 * group)
        for i, (m, union) in enumerate(zip(sets, unions)):
            for g in (0, group):
                raw[i].append(((~union[g:g + group]).sum(1).min(), union[g:g + group].sum(1).min()))
                kept[i].append((m.n_ctx[g], m.n_tgt[g]))
    for i, spec in enumerate(specs):
        r, k = np.array(raw[i], float), np.array(kept[i], float)
        exact = _exact_mean_kept(spec, grid, group)
        # the sampler's group minima have the collator's mean (4 standard errors) ...
        np.testing.assert_array_less(np.abs(r.mean(0) - exact), 4 * r.std(0) / np.sqrt(len(r)) + 1e-9)
        # ... and the kept counts are those minima except above the top width (rarely, by little)
        assert (k <= r).all() and np.mean(k != r) < 0.01 and np.abs(k.mean(0) / r.mean(0) - 1).max() < 0.01


def test_random_trim_spreads_the_context_over_frames():
    share = {}
    for trim in ("first", "random"):
        gen = MultiBlockMasks(GRID, SPECS[:1], group=8, trim=trim)
        frames = np.zeros(GRID[0])
        rng = np.random.default_rng(0)
        for _ in range(200):
            m = gen(rng, 8)[0]
            for b in range(8):
                frames += np.bincount(m.ctx[b, :m.n_ctx[b]] // (GRID[1] * GRID[2]), minlength=GRID[0])
        share[trim] = frames / frames.sum()
    np.testing.assert_allclose(share["random"], 1 / GRID[0], atol=0.02)
    assert share["first"][0] > share["first"][-1] + 0.05  # the reference's skew toward early frames


def test_bucket_ladder_bounds_the_shapes():
    gen = MultiBlockMasks((8, 14, 14), [BlockSpec(8, 0.15), BlockSpec(2, 0.7)], group=24, buckets=2)
    assert all(len(w) <= 2 for w in gen.ctx_widths + gen.tgt_widths)
    rng = np.random.default_rng(0)
    shapes = set()
    for _ in range(30):
        sets = gen(rng, 24)
        shapes.add(tuple(x for m in sets for x in (m.ctx.shape[1], m.tgt.shape[1])))
        for m, cw, tw in zip(sets, gen.ctx_widths, gen.tgt_widths):
            # the smallest width of the ladder that holds the batch's count
            assert m.ctx.shape[1] == next((w for w in cw if w >= m.n_ctx.max()), cw[-1])
            assert m.tgt.shape[1] == next((w for w in tw if w >= m.n_tgt.max()), tw[-1])
    assert 1 < len(shapes) <= 2 ** 4


def test_masks_deterministic_from_seed_and_bad_input():
    gen = MultiBlockMasks(GRID, SPECS, group=4)
    a, b, c = (gen(np.random.default_rng(s), 4) for s in (1, 1, 2))
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)
    assert any(not np.array_equal(x.tgt, z.tgt) for x, z in zip(a, c))
    with pytest.raises(ValueError, match="scale 1.5"):
        MultiBlockMasks(GRID, [BlockSpec(2, 1.5)], group=4)
    with pytest.raises(ValueError, match="no context"):
        MultiBlockMasks((2, 1, 1), [BlockSpec(1, 0.5)], group=4)
    with pytest.raises(ValueError, match="trim='last'"):
        MultiBlockMasks(GRID, SPECS, group=4, trim="last")
    with pytest.raises(ValueError, match="group"):
        MultiBlockMasks(GRID, SPECS, group=0)
