"""The attentive probe on a toy task, and strict configs, presets and command lines."""

import dataclasses

import numpy as np
import pytest

from dualjax.configs import override
from dualjax.vjepa import config as config_lib
from dualjax.vjepa.probe import train_probe


def _toy(n, rng):
    """3 classes, linearly separable: every token carries 2·onehot(y) in its first channels plus noise."""
    y = rng.integers(0, 3, n)
    z = rng.normal(0, 1.0, (n, 4, 8)).astype(np.float32)
    z[:, :, :3] += 2.0 * np.eye(3)[y][:, None]
    return z, y.astype(np.int32)


def test_probe_learns_separable_toy_task_and_not_noise():
    rng = np.random.default_rng(0)
    z_tr, y_tr = _toy(512, rng)
    z_te, y_te = _toy(256, rng)
    res = train_probe(z_tr, y_tr, z_te, y_te, num_classes=3, steps=300, batch_size=64, lr=1e-2, heads=2)
    assert res.top1 > 0.9, res
    # the same probe on labels independent of the features stays near chance on held-out data
    noise = train_probe(z_tr, rng.integers(0, 3, 512).astype(np.int32), z_te, y_te, num_classes=3,
                        steps=300, batch_size=64, lr=1e-2, heads=2)
    assert noise.top1 < 0.5, noise


def test_probe_rejects_bad_labels():
    z = np.zeros((8, 2, 4), np.float32)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        train_probe(z, np.full(8, 5, np.int32), z, np.zeros(8, np.int32), num_classes=3, steps=1, heads=2)


def test_config_typos_rejected():
    cfg = config_lib.Config()
    with pytest.raises(ValueError, match="lerning_rate") as err:
        override(cfg, ["lerning_rate=0.1"])
    assert "'lr'" in str(err.value)  # the valid keys are listed
    with pytest.raises(ValueError, match="stpes"):
        override(cfg, {"stpes": 3})
    with pytest.raises(ValueError, match="key=value"):
        override(cfg, ["steps"])
    with pytest.raises(ValueError, match="steps='many'"):
        override(cfg, ["steps=many"])
    with pytest.raises(ValueError, match="nope"):
        config_lib.load("nope")
    with pytest.raises(ValueError, match="teacher='byol'"):
        override(cfg, ["teacher=byol"]).validate()
    with pytest.raises(ValueError, match="patch=9"):
        override(cfg, ["patch=9"]).validate()
    with pytest.raises(ValueError, match="unknown config keys"):
        config_lib.Config.from_json('{"stepz": 1}')


def test_overrides_parse_types_and_round_trip():
    cfg = override(config_lib.load("tiny"), ["steps=7", "lr=1", "mask_scales=0.2,0.6", "teacher=sg",
                                             "train_lists=a.txt,b b.txt", "check_finite=false"])
    assert cfg.steps == 7 and cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.mask_scales == (0.2, 0.6) and cfg.teacher == "sg" and cfg.check_finite is False
    assert cfg.train_lists == ("a.txt", "b b.txt")
    assert config_lib.Config.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="mask_aspect=.* must have 2 entries"):
        override(cfg, ["mask_aspect=0.5,1,2"])
    with pytest.raises(ValueError, match="check_finite='maybe' is not a boolean"):
        override(cfg, ["check_finite=maybe"])
    with pytest.raises(ValueError, match="steps=7.5 must be INT"):
        override(cfg, {"steps": 7.5})


def test_presets_load_from_the_package_and_user_files(tmp_path):
    names = config_lib.available()
    assert {"tiny", "figure2", "vits16", "vitb16"} <= set(names)
    for name in names:
        assert isinstance(config_lib.load(name), config_lib.Config)
    # figure2 is the tiny preset trained longer, on more clips, with probes along the way
    tiny, fig2 = config_lib.load("tiny"), config_lib.load("figure2")
    assert dataclasses.replace(fig2, num_train=tiny.num_train, steps=tiny.steps, warmup_steps=tiny.warmup_steps,
                               probe_every=0, probe_steps=tiny.probe_steps,
                               probe_train_clips=tiny.probe_train_clips) == tiny
    assert config_lib.load("default") == config_lib.Config()
    mine = tmp_path / "mine.py"
    mine.write_text("from dualjax.vjepa.presets.tiny import CONFIG as T\nimport dataclasses\n"
                    "CONFIG = dataclasses.replace(T, steps=31)\n")
    assert config_lib.load(str(mine)) == dataclasses.replace(tiny, steps=31)
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(ValueError, match="must define CONFIG"):
        config_lib.load(str(tmp_path / "empty.py"))
    with pytest.raises(ValueError, match="does not exist"):
        config_lib.load(str(tmp_path / "nowhere.py"))


def test_cli_rejects_unknown_key(tmp_path, capsys):
    from dualjax.cli import main

    assert main(["train", "--config", "tiny", "--out", str(tmp_path), "--set", "stepz=3"]) == 2
    err = capsys.readouterr().err
    assert "stepz" in err and "steps" in err
    assert not (tmp_path / "metrics.jsonl").exists()
