"""experiments/task_design.py end to end on a few clips and steps: the row it reports per design."""

from __future__ import annotations

import dataclasses
import json

from dualjax.vjepa import config as config_lib


def test_task_design_measures_the_random_init_and_the_trained_probe(tmp_path, repo_script):
    exp = repo_script("experiments/task_design.py")
    cfg = dataclasses.replace(config_lib.load("tiny"), num_train=32, num_heldout=16, probe_train_clips=32,
                              steps=3, warmup_steps=1, batch_size=8, probe_steps=4, probe_batch=8, ckpt_every=0,
                              log_every=1, num_devices=1)
    row = exp.measure("tracking", cfg, tmp_path, probe_seeds=2, log=lambda m: None)
    assert row["design"] == "tracking" and row["num_classes"] == 8 and row["chance"] == 1 / 8
    assert len(row["random_init_top1"]) == len(row["trained_top1"]) == 2
    for v in (*row["random_init_top1"], *row["trained_top1"]):
        assert 0.0 <= v <= 1.0 and (16 * v).is_integer()  # a fraction of the 16 held-out clips
    assert abs(row["gain_points"] - 100 * (row["trained_mean"] - row["random_init_mean"])) < 1e-9
    assert json.loads((tmp_path / "tracking" / "config.json").read_text())["dataset"] == "tracking"
    assert (tmp_path / "tracking" / "checkpoints").is_dir()  # the trained state the second probe read
