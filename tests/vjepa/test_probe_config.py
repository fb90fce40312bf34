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


def test_probe_compiles_with_the_configs_codegen():
    """``codegen`` reaches the probe's jitted functions (CPU): o1 trains the same probe as XLA's
    defaults (to rounding), and an option XLA does not know fails its compile."""
    from dualjax.vjepa.probe import codegen_options

    assert codegen_options(dataclasses.replace(config_lib.load("tiny"), codegen="o1")) == config_lib.CODEGEN["o1"]
    assert codegen_options(config_lib.load("tiny")) is None
    rng = np.random.default_rng(1)
    (z_tr, y_tr), (z_te, y_te) = _toy(64, rng), _toy(32, rng)
    kw = dict(num_classes=3, steps=5, batch_size=16, lr=1e-2, heads=2)
    ref = train_probe(z_tr, y_tr, z_te, y_te, **kw)
    o1 = train_probe(z_tr, y_tr, z_te, y_te, compiler_options=config_lib.CODEGEN["o1"], **kw)
    assert o1.top1 == ref.top1 and abs(o1.final_loss - ref.final_loss) < 1e-5 * max(1.0, abs(ref.final_loss))
    with pytest.raises(Exception, match="xla_no_such_option"):
        train_probe(z_tr, y_tr, z_te, y_te, compiler_options={"xla_no_such_option": 1}, **kw)


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
    # tracking: the tiny preset on the tracking task of issue 17, probed every 100 steps
    track = config_lib.load("tracking")
    assert track.dataset == "tracking" and track.probe_every == 100
    assert dataclasses.replace(track, dataset=tiny.dataset, num_train=tiny.num_train, num_heldout=tiny.num_heldout,
                               steps=tiny.steps, warmup_steps=tiny.warmup_steps, probe_every=0,
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


# ---------------------------------------------------------------------------- the reference eval's probe


def test_probe_init_is_the_reference_one():
    import math

    from flax import nnx

    from dualjax.vjepa.probe import AttentiveProbe

    p = AttentiveProbe(384, 10, heads=6, rngs=nnx.Rngs(0))
    for layer, scale in ((p.xattn.q, 1.0), (p.mlp.fc1, 1.0), (p.xattn.proj, 2 ** -0.5), (p.mlp.fc2, 2 ** -0.5)):
        assert abs(np.asarray(layer.kernel[...]).std() / (0.02 * scale) - 1) < 0.02  # N(0, 0.02²), /√2 on outputs
    assert abs(np.asarray(p.query[...]).std() / 0.02 - 1) < 0.15  # 384 draws
    for x in (p.head.kernel[...], p.head.bias[...]):  # torch's nn.Linear default: U(±1/√D)
        x = np.asarray(x)
        assert np.abs(x).max() <= 1 / math.sqrt(384) and abs(x.std() * math.sqrt(3 * 384) - 1) < 0.2


def test_probe_uses_encoder_heads_and_concatenates_segments(monkeypatch, small_cfg):
    from dualjax.vjepa import probe as probe_lib

    seen = {}
    monkeypatch.setattr(probe_lib, "train_probe", lambda *a, **kw: seen.update(args=a, **kw))
    cfg = dataclasses.replace(small_cfg, probe_segments=2, probe_views=3)
    pdata = probe_lib.probe_data(dataclasses.replace(cfg, probe_train_clips=5, num_heldout=4))
    assert pdata.clips_train.shape == (5, 2, 4, 16, 16, 3) and pdata.clips_test.shape == (4, 3, 2, 4, 16, 16, 3)

    def encode(params, clips, key=None):  # a token per clip carrying the clip's mean level
        return np.repeat(clips.reshape(len(clips), -1).mean(1)[:, None, None], 3, axis=1) * np.ones((1, 1, 32))

    probe_lib.probe(cfg, encode, None, pdata)
    z_tr, _, z_te, _ = seen["args"]
    assert seen["heads"] == small_cfg.heads == 2  # the encoder's heads (not gcd(D, 4) = 4)
    assert z_tr.shape == (5, 2 * 3, 32) and z_te.shape == (4, 3, 2 * 3, 32)  # segments side by side
    np.testing.assert_allclose(z_tr[:, 3, 0], pdata.clips_train[:, 1].reshape(5, -1).mean(1))  # segment 2's tokens
    # a synthetic video of 2 segments is one rendering of 2·T frames, cut in two
    from dualjax.vjepa import data

    whole = data.ShapesSource(5, frames=8, size=16, seed=cfg.data_seed)[3]["clip"]
    np.testing.assert_array_equal(pdata.clips_train[3].reshape(8, 16, 16, 3), whole)


def test_spatial_views_are_evenly_spaced_crops():
    from dualjax.vjepa.probe import spatial_views

    clips = np.arange(2 * 8 * 12).reshape(2, 8, 12, 1) * np.ones((1, 1, 1, 3))  # T=2, H=8, W=12
    views = spatial_views(clips, 3, 8)
    assert views.shape == (3, 2, 8, 8, 3)
    for i, left in enumerate((0, 2, 4)):
        np.testing.assert_array_equal(views[i], clips[:, :, left:left + 8])
    np.testing.assert_array_equal(spatial_views(clips[:, :, :8], 3, 8)[2], clips[:, :, :8])  # square: equal views


def test_view_averaged_prediction():
    rng = np.random.default_rng(0)
    z_tr, y_tr = _toy(256, rng)
    z_te, y_te = _toy(128, rng)
    one = train_probe(z_tr, y_tr, z_te, y_te, num_classes=3, steps=100, lr=1e-2, heads=2)
    # a second view of pure noise halves the evidence but the averaged softmax still decides well
    noisy = np.stack([z_te, rng.normal(0, 1.0, z_te.shape).astype(np.float32)], axis=1)
    two = train_probe(z_tr, y_tr, noisy, y_te, num_classes=3, steps=100, lr=1e-2, heads=2)
    same = train_probe(z_tr, y_tr, np.stack([z_te, z_te], axis=1), y_te, num_classes=3, steps=100, lr=1e-2, heads=2)
    assert same.top1 == one.top1 and two.top1 > 0.6


def test_eval_augmentation_crops_and_erases(monkeypatch):
    import jax
    import jax.numpy as jnp

    from dualjax.vjepa import augment

    ramp = jnp.broadcast_to(jnp.arange(16.0)[None, None, :, None], (2, 16, 16, 3))  # value = column
    monkeypatch.setattr(augment, "CROP_SCALE", (0.25, 0.25))
    monkeypatch.setattr(augment, "CROP_RATIO", (1.0, 1.0))
    for seed in range(5):  # an 8×8 box resized ×2: the interior keeps a slope of 1/2 per column
        out = np.asarray(augment.random_resized_crop(jax.random.PRNGKey(seed), ramp))
        np.testing.assert_allclose(np.diff(out[0, 5, 1:15, 0]), 0.5, atol=1e-4)
        assert 0 <= out.min() and out.max() <= 15
    monkeypatch.setattr(augment, "CROP_SCALE", (1.0, 1.0))
    np.testing.assert_allclose(augment.random_resized_crop(jax.random.PRNGKey(0), ramp), ramp, atol=1e-4)
    frames = jnp.zeros((400, 16, 16, 3)) + 9.0
    keys = jax.random.split(jax.random.PRNGKey(1), 400)
    erased = np.asarray(jax.vmap(augment.random_erase)(keys, frames)) != 9.0
    hit = erased.any(axis=(1, 2, 3))
    assert 0.18 < hit.mean() < 0.32  # probability 0.25 per frame
    area = erased[hit, :, :, 0].mean(axis=(1, 2))
    assert area.min() >= 0.01 and area.max() <= 0.4  # 2 %–⅓ of the frame, up to rounding
    rows, cols = np.nonzero(erased[np.argmax(hit), :, :, 0])  # one rectangle
    assert erased[np.argmax(hit), rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
    out = augment.eval_train_augment(jax.random.PRNGKey(2), jnp.zeros((3, 2, 16, 16, 3)))
    assert out.shape == (3, 2, 16, 16, 3)
