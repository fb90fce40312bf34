"""The synthetic video pipeline and its batches with masks (the masks themselves: test_masks.py)."""

import numpy as np
import pytest

from dualjax.vjepa import data


def test_shapes_source_deterministic_split_and_labels():
    tr = data.ShapesSource(20, frames=4, size=16, seed=5, split="train")
    ho = data.ShapesSource(20, frames=4, size=16, seed=5, split="heldout")
    x = tr[3]
    assert x["clip"].shape == (4, 16, 16, 3) and x["clip"].dtype == np.uint8
    np.testing.assert_array_equal(tr[3]["clip"], data.ShapesSource(20, frames=4, size=16, seed=5)[3]["clip"])
    assert not np.array_equal(tr[3]["clip"], ho[3]["clip"])
    labels = [int(tr[i]["label"]) for i in range(20)]
    assert all(0 <= y < data.SHAPES_CLASSES for y in labels) and len(set(labels)) > 5
    with pytest.raises(ValueError, match="validation"):
        data.ShapesSource(4, frames=4, size=16, split="validation")


def test_num_classes_per_dataset(small_cfg, tmp_path):
    """A synthetic set's count is its registry entry's (shapes: 4 shapes × 4 directions); a video
    dataset's is one more than the largest label of its train and held-out lists."""
    import dataclasses

    from dualjax.vjepa import videolist

    assert data.num_classes(small_cfg) == data.SYNTHETIC["shapes"].num_classes == 16
    assert data.dataset_names() == (*data.SYNTHETIC, "video")
    videolist.write_list(tmp_path / "train.txt", [("a.mp4", 0), ("b.mp4", 3)])
    videolist.write_list(tmp_path / "held.txt", [("c.mp4", 6)])
    video = dataclasses.replace(small_cfg, dataset="video", train_lists=(str(tmp_path / "train.txt"),))
    assert data.num_classes(video) == 4
    assert data.num_classes(dataclasses.replace(video, heldout_lists=(str(tmp_path / "held.txt"),))) == 7
    with pytest.raises(ValueError, match=r"dataset='cubes'; choose one of \['shapes', .*'video'\]"):
        dataclasses.replace(small_cfg, dataset="cubes").validate()
    with pytest.raises(ValueError, match="dataset='cubes' is not built in"):
        data.num_classes(dataclasses.replace(small_cfg, dataset="cubes"))


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
        for m1, m2 in zip(a["masks"], b["masks"]):
            assert len(m1) == 4  # ctx, tgt, n_ctx, n_tgt
            for x1, x2 in zip(m1, m2):
                np.testing.assert_array_equal(x1, x2)
    assert full[0]["clip"].shape == (4, 4, 16, 16, 3)
    assert not np.array_equal(full[0]["masks"][0][1], full[1]["masks"][0][1])  # fresh masks per step
