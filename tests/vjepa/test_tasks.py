"""The procedural tasks of issue 17 (dualjax/vjepa/tasks.py): deterministic, balanced, labels
recoverable from the generating parameters, and hard for a random encoder where they should be."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dualjax.vjepa import config as config_lib
from dualjax.vjepa import data as data_lib
from dualjax.vjepa import tasks

DESIGNS = sorted(tasks.DESIGNS)


@pytest.mark.parametrize("name", DESIGNS)
def test_clips_are_deterministic_balanced_and_their_labels_follow_from_the_parameters(name):
    src = tasks.TaskSource(name, 48, frames=8, size=32, seed=3)
    again = tasks.TaskSource(name, 48, frames=8, size=32, seed=3)
    other = tasks.TaskSource(name, 48, frames=8, size=32, seed=3, split="heldout")
    labels = []
    for i in range(len(src)):
        clip, label, params = src.draw(i)
        assert clip.dtype == np.uint8 and clip.shape == (8, 32, 32, 3)
        np.testing.assert_array_equal(clip, again[i]["clip"])
        assert int(src[i]["label"]) == label
        # the oracle: the label is the sector of the target's net displacement
        assert tasks.direction_sector(params["centres"]) == label
        centres = np.asarray(params["centres"])
        assert np.allclose(np.diff(centres, axis=0), centres[1] - centres[0])  # a straight path at constant speed
        labels.append(label)
    assert np.bincount(labels, minlength=tasks.NUM_DIRECTIONS).tolist() == [6] * tasks.NUM_DIRECTIONS
    assert not np.array_equal(src[0]["clip"], other[0]["clip"])


def test_tracking_draws_the_target_on_a_mean_background_and_keeps_it_inside():
    src = tasks.TaskSource("tracking", 16, frames=8, size=32)
    mean = np.asarray(data_lib.MEAN) * 255
    offsets = []
    for i in range(len(src)):
        clip, _, p = src.draw(i)
        c = np.asarray(p["centres"])
        assert np.all(c >= p["radius"] - 1e-9) and np.all(c <= 31 - p["radius"] + 1e-9)
        # every frame shows a disk (the target, or a distractor over it) at the target's centre
        at = clip[np.arange(8), np.round(c[:, 0]).astype(int), np.round(c[:, 1]).astype(int)].astype(float)
        assert np.all(np.abs(at - mean).mean(-1) > 0.35 * 255 / 2)
        offsets.append((clip.astype(float) - mean).mean())
    # the normalised clips are centred: disks of either sign average out
    assert abs(np.mean(offsets)) < 0.02 * 255, offsets


def test_task_sources_refuse_bad_input():
    with pytest.raises(ValueError, match="unknown task design 'trackin'"):
        tasks.TaskSource("trackin", 4, frames=8, size=32)
    with pytest.raises(ValueError, match="split='test'"):
        tasks.TaskSource("tracking", 4, frames=8, size=32, split="test")
    with pytest.raises(ValueError, match="more frames need a larger size"):
        tasks.TaskSource("tracking", 4, frames=64, size=16)[0]
    with pytest.raises(IndexError, match="clip index 4"):
        tasks.TaskSource("tracking", 4, frames=8, size=32)[4]


def test_the_designs_are_datasets_of_the_config():
    cfg = dataclasses.replace(config_lib.load("tiny"), dataset="tracking").validate()
    assert data_lib.num_classes(cfg) == tasks.NUM_DIRECTIONS
    src = data_lib.make_source(cfg, "heldout")
    assert isinstance(src, tasks.TaskSource) and len(src) == cfg.num_heldout and src.split == "heldout"
    with pytest.raises(ValueError, match="dataset"):
        dataclasses.replace(cfg, dataset="tracker").validate()


def test_a_random_encoder_reads_tracking_poorly_and_global_motion_well():
    """A cheap version of issue 17's first target: the attentive probe on a randomly initialised
    tiny encoder stays at most 2.5 × chance on ``tracking``, while the same probe reads the
    direction of whole-field motion (``dots``) well, so a low score is the task, not the probe."""
    from dualjax.vjepa import probe as probe_lib
    from dualjax.vjepa.model import VJEPA

    scores = {}
    for name in ("tracking", "dots"):
        cfg = dataclasses.replace(config_lib.load("tiny"), dataset=name).validate()
        model = VJEPA(cfg)
        theta, _ = model.init()
        encode = probe_lib.make_encode_fn(model)

        def features(split, n):
            src = tasks.TaskSource(name, n, frames=cfg.frames, size=cfg.size, split=split)
            clips = np.stack([src[i]["clip"] for i in range(n)])
            return np.asarray(encode(theta, clips)), np.arange(n) % tasks.NUM_DIRECTIONS

        (ztr, ytr), (zte, yte) = features("train", 256), features("heldout", 128)
        scores[name] = probe_lib.train_probe(ztr, ytr, zte, yte, num_classes=tasks.NUM_DIRECTIONS, steps=150,
                                             batch_size=64, lr=3e-3, weight_decay=0.01, heads=4, seed=0).top1
    chance = 1 / tasks.NUM_DIRECTIONS
    assert scores["tracking"] <= 2.5 * chance, scores
    assert scores["dots"] >= 3 * chance, scores  # 0.58 here; tracking 0.16
