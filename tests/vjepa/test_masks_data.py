"""Multi-block masks and the synthetic video pipeline."""

import numpy as np
import pytest

from dualjax.vjepa import data
from dualjax.vjepa.masks import BlockSpec, MultiBlockMasks, block_size, target_mask

GRID = (4, 6, 6)
SPECS = [BlockSpec(8, 0.15), BlockSpec(2, 0.7)]


def test_masks_disjoint_cover_and_rectangular():
    gen = MultiBlockMasks(GRID, SPECS)
    N = int(np.prod(GRID))
    pairs, unions = gen.sample(np.random.default_rng(3), 5)
    assert len(pairs) == 2
    for (ctx, tgt), union, n_ctx, n_tgt in zip(pairs, unions, gen.n_ctx, gen.n_tgt):
        assert ctx.shape == (5, n_ctx) and tgt.shape == (5, n_tgt)  # same count for every clip
        assert ctx.dtype == np.int32
        for b in range(5):
            assert len(set(ctx[b])) == n_ctx and len(set(tgt[b])) == n_tgt
            assert not set(ctx[b]) & set(tgt[b])  # disjoint
            full_t = set(np.flatnonzero(union[b]))
            full_c = set(range(N)) - full_t  # context = complement of the union
            assert set(tgt[b]) <= full_t and set(ctx[b]) <= full_c
            # every block spans all time: the union is the same spatial set in every frame
            u = union[b].reshape(GRID)
            assert (u == u[:1]).all()
            assert np.all(np.diff(ctx[b]) > 0) and np.all(np.diff(tgt[b]) > 0)  # raster order


def test_union_of_blocks_is_painted_blocks():
    spec = BlockSpec(3, 0.2)
    hw = block_size(spec, GRID, 0.5)
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    m = target_mask(spec, GRID, hw, rng_a)
    expect = np.zeros(GRID[1:], bool)
    for _ in range(3):  # independent repaint from the same draws
        top, left = rng_b.integers(0, GRID[1] - hw[0] + 1), rng_b.integers(0, GRID[2] - hw[1] + 1)
        expect[top:top + hw[0], left:left + hw[1]] = True
    np.testing.assert_array_equal(m, np.broadcast_to(expect, GRID))


def test_block_size_follows_scale_and_aspect():
    # keep = ⌊14·14·0.15⌋ = 29; aspect 0.75 -> h = round(√21.75) = 5, w = round(√38.67) = 6
    assert block_size(BlockSpec(8, 0.15), (8, 14, 14), 0.0) == (5, 6)
    # aspect 1.5 -> h = round(√43.5) = 7, w = round(√19.33) = 4
    assert block_size(BlockSpec(8, 0.15), (8, 14, 14), 1.0) == (7, 4)


def test_masks_deterministic_from_seed_and_bad_input():
    gen = MultiBlockMasks(GRID, SPECS)
    a = gen(np.random.default_rng(1), 4)
    b = gen(np.random.default_rng(1), 4)
    c = gen(np.random.default_rng(2), 4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.ctx, y.ctx)
        np.testing.assert_array_equal(x.tgt, y.tgt)
    assert any(not np.array_equal(x.tgt, z.tgt) for x, z in zip(a, c))
    with pytest.raises(ValueError, match="scale 1.5"):
        MultiBlockMasks(GRID, [BlockSpec(2, 1.5)])
    with pytest.raises(ValueError, match="no context"):
        MultiBlockMasks((2, 1, 1), [BlockSpec(1, 0.5)])


def test_shapes_source_deterministic_split_and_labels():
    tr = data.ShapesSource(20, frames=4, size=16, seed=5, split="train")
    ho = data.ShapesSource(20, frames=4, size=16, seed=5, split="heldout")
    x = tr[3]
    assert x["clip"].shape == (4, 16, 16, 3) and x["clip"].dtype == np.uint8
    np.testing.assert_array_equal(tr[3]["clip"], data.ShapesSource(20, frames=4, size=16, seed=5)[3]["clip"])
    assert not np.array_equal(tr[3]["clip"], ho[3]["clip"])
    labels = [int(tr[i]["label"]) for i in range(20)]
    assert all(0 <= y < data.NUM_CLASSES for y in labels) and len(set(labels)) > 5
    with pytest.raises(ValueError, match="validation"):
        data.ShapesSource(4, frames=4, size=16, split="validation")


def test_moving_shape_moves_in_its_direction():
    rng = np.random.default_rng(0)
    label = 0 * 4 + 0  # square moving right
    clip, y = data.render_shapes_clip(rng, 8, 32, label=label)
    assert y == label
    lum = clip.astype(float).mean(-1)
    fg = np.abs(lum - np.median(lum, axis=(1, 2), keepdims=True)) > 40
    xs = [np.mean(np.nonzero(f)[1]) for f in fg]
    assert xs[-1] > xs[0] + 3  # the centre of mass moved right


def test_train_batches_resume_exactly(small_cfg):
    from dualjax.vjepa import masks

    src = data.make_source(small_cfg, "train")
    gen = masks.from_config(small_cfg)
    full = list(data.train_batches(src, gen, 4, seed=0, num_steps=5))
    resumed = list(data.train_batches(src, gen, 4, seed=0, num_steps=5, start_step=3))
    assert len(full) == 5 and len(resumed) == 2
    for a, b in zip(full[3:], resumed):
        np.testing.assert_array_equal(a["clip"], b["clip"])
        for (c1, t1), (c2, t2) in zip(a["masks"], b["masks"]):
            np.testing.assert_array_equal(c1, c2)
            np.testing.assert_array_equal(t1, t2)
    assert full[0]["clip"].shape == (4, 4, 16, 16, 3)
    assert not np.array_equal(full[0]["masks"][0][1], full[1]["masks"][0][1])  # fresh masks per step
