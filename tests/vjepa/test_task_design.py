"""experiments/task_design.py end to end on a few clips and steps: the row it reports per design."""

from __future__ import annotations

import dataclasses
import json

import pytest

from dualjax.vjepa import config as config_lib


def test_task_design_measures_the_random_init_and_the_trained_probe(tmp_path, repo_script):
    exp = repo_script("experiments/task_design.py")
    cfg = dataclasses.replace(config_lib.load("tiny"), num_train=32, num_heldout=16, probe_train_clips=32,
                              steps=3, warmup_steps=1, batch_size=8, probe_steps=4, probe_batch=8, ckpt_every=0,
                              log_every=1, num_devices=1)
    row = exp.measure("tracking", cfg, tmp_path, probe_seeds=2, log=lambda m: None, supervised_steps=2,
                      supervised_clips=16)
    assert row["design"] == "tracking" and row["num_classes"] == 8 and row["chance"] == 1 / 8
    assert len(row["random_init_top1"]) == len(row["trained_top1"]) == 2
    for v in (*row["random_init_top1"], *row["trained_top1"]):
        assert 0.0 <= v <= 1.0 and (16 * v).is_integer()  # a fraction of the 16 held-out clips
    assert abs(row["gain_points"] - 100 * (row["trained_mean"] - row["random_init_mean"])) < 1e-9
    assert json.loads((tmp_path / "tracking" / "config.json").read_text())["dataset"] == "tracking"
    assert (tmp_path / "tracking" / "checkpoints").is_dir()  # the trained state the second probe read
    # the supervised ceiling: the same probe on the encoder trained on the labels
    assert row["supervised_steps"] == 2 and len(row["supervised_top1"]) == 2
    assert [h[0] for h in row["supervised_history"]] == [0, 1]
    assert abs(row["supervised_gain_points"] - 100 * (row["supervised_mean"] - row["random_init_mean"])) < 1e-9


def test_task_design_without_vjepa_training_and_bad_flags(tmp_path, repo_script, capsys):
    exp = repo_script("experiments/task_design.py")
    cfg = dataclasses.replace(config_lib.load("tiny"), num_train=32, num_heldout=16, probe_train_clips=32,
                              probe_steps=2, probe_batch=8, num_devices=1)
    row = exp.measure("dots", cfg, tmp_path, probe_seeds=1, log=lambda m: None, vjepa=False)
    assert row["steps"] == 0 and "trained_top1" not in row and "supervised_top1" not in row
    assert not (tmp_path / "dots").exists()  # nothing trained
    png = exp.plot_rows([row, dict(row, design="tracking", supervised_history=[[0, 2.1, 0.1], [5, 2.0, 0.2]],
                                   supervised_mean=0.3)], tmp_path / "task_design.png")
    assert (tmp_path / "task_design.png").stat().st_size > 10_000 and png.endswith("task_design.png")
    lines = exp.table([row, dict(row, design="tracking", trained_mean=0.25, gain_points=-1.5)]).splitlines()
    assert lines[1].split()[0] == "dots" and lines[1].split()[-4:] == ["-", "-", "-", "-"]
    assert lines[2].split()[-4:] == ["25.0%", "-1.5", "-", "-"]
    with pytest.raises(SystemExit):
        exp.main(["--out", str(tmp_path / "x"), "--supervised-steps", "-1"])
    assert "--supervised-steps must be >= 0, got -1" in capsys.readouterr().err
