"""The reference recipe (facebookresearch/jepa), item by item, against formulas written out here:
schedules stretched by ipe_scale, gradient clipping, lr scaling, init, precision, padded masks,
presets, config checks."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from dualjax.vjepa import config as config_lib
from dualjax.vjepa import optim
from dualjax.vjepa import probe as probe_lib
from dualjax.vjepa.masks import BlockSpec, MultiBlockMasks
from dualjax.vjepa.predictor import Predictor
from dualjax.vjepa.vit import ViT

# ---------------------------------------------------------------------------- schedules


def reference_schedules(ipe, epochs, warmup_epochs, ipe_scale, start_lr, lr, final_lr, wd, final_wd, ema):
    """lr, wd and momentum of each update as the reference produces them: WarmupCosineSchedule and
    CosineWDSchedule stepped once before every update (src/utils/schedulers.py), T_max =
    int(ipe_scale·epochs·ipe) (app/vjepa/utils.py: init_opt), and the momentum generator of
    app/vjepa/train.py, for the epochs·ipe updates of the run."""
    warmup, t_max = int(warmup_epochs * ipe), int(ipe_scale * epochs * ipe)
    lrs, wds, moms = [], [], []
    step = 0
    total = ipe * epochs * ipe_scale
    momentum = (ema[0] + i * (ema[1] - ema[0]) / total for i in range(int(total) + 1))
    for _ in range(epochs * ipe):
        step += 1
        if step < warmup:
            lrs.append(start_lr + step / max(1, warmup) * (lr - start_lr))
        else:
            progress = (step - warmup) / max(1, t_max - warmup)
            lrs.append(max(final_lr, final_lr + (lr - final_lr) * 0.5 * (1 + math.cos(math.pi * progress))))
        w = final_wd + (wd - final_wd) * 0.5 * (1 + math.cos(math.pi * step / t_max))
        wds.append(max(final_wd, w) if final_wd <= wd else min(final_wd, w))
        moms.append(next(momentum))
    return np.array(lrs), np.array(wds), np.array(moms)


@pytest.mark.parametrize("ipe_scale", [1.25, 1.0])
def test_schedules_match_the_reference_at_start_end_of_warmup_and_last_update(ipe_scale):
    ipe, epochs, warmup_epochs = 10, 20, 2
    cfg = dataclasses.replace(config_lib.Config(), steps=epochs * ipe, warmup_steps=warmup_epochs * ipe,
                              ipe_scale=ipe_scale, start_lr=2e-4, lr=6.25e-4, final_lr=1e-6,
                              weight_decay=0.04, final_weight_decay=0.4, momentum_start=0.998, momentum_end=1.0,
                              lr_batch=0).validate()
    want_lr, want_wd, want_m = reference_schedules(ipe, epochs, warmup_epochs, ipe_scale, 2e-4, 6.25e-4, 1e-6,
                                                   0.04, 0.4, (0.998, 1.0))
    t = np.arange(cfg.steps)
    got_lr, got_wd = np.asarray(optim.lr_schedule(cfg)(t)), np.asarray(optim.wd_schedule(cfg)(t))
    got_m = np.asarray(optim.momentum_schedule(cfg)(t))
    W, last = cfg.warmup_steps, cfg.steps - 1
    for i in (0, W - 1, last):  # first update, end of warmup (lr at its peak), last update
        np.testing.assert_allclose(got_lr[i], want_lr[i], rtol=1e-5, err_msg=f"lr at update {i}")
        np.testing.assert_allclose(got_wd[i], want_wd[i], rtol=1e-5, err_msg=f"wd at update {i}")
        np.testing.assert_allclose(got_m[i], want_m[i], rtol=1e-7, err_msg=f"momentum at update {i}")
    np.testing.assert_allclose(got_lr, want_lr, rtol=1e-5)
    np.testing.assert_allclose(got_wd, want_wd, rtol=1e-5)
    np.testing.assert_allclose(got_m, want_m, rtol=1e-7)
    assert got_lr[W - 1] == pytest.approx(6.25e-4)
    if ipe_scale == 1.0:  # schedules end with the run: lr at final_lr, wd at its end value
        assert got_lr[last] == pytest.approx(1e-6) and got_wd[last] == pytest.approx(0.4)
    else:  # the run stops before the schedules do
        assert got_lr[last] > 50 * 1e-6 and got_wd[last] < 0.39 and got_m[last] < 1 - 1e-4


def test_reference_scale_last_update():
    """At the paper's scale (90k updates of a 112.5k-update schedule) the last update keeps a
    sizeable lr and a momentum below 1: training does not anneal to a standstill."""
    cfg = config_lib.load("vits16")
    lr, wd, m = reference_schedules(300, 300, 40, 1.25, cfg.start_lr, cfg.lr, cfg.final_lr, cfg.weight_decay,
                                    cfg.final_weight_decay, (cfg.momentum_start, cfg.momentum_end))
    last = cfg.steps - 1
    np.testing.assert_allclose(optim.lr_schedule(cfg)(last), lr[last], rtol=1e-4)
    np.testing.assert_allclose(optim.wd_schedule(cfg)(last), wd[last], rtol=1e-4)
    np.testing.assert_allclose(optim.momentum_schedule(cfg)(last), m[last], rtol=1e-7)
    assert lr[last] > 70 * cfg.final_lr and wd[last] < cfg.final_weight_decay - 0.02 and m[last] < 0.9997


def test_lr_batch_scales_the_three_lrs_linearly():
    base = config_lib.load("vits16")
    half = dataclasses.replace(base, batch_size=base.batch_size // 8)
    t = np.array([0, base.warmup_steps - 1, base.steps - 1])
    np.testing.assert_allclose(optim.lr_schedule(half)(t), optim.lr_schedule(base)(t) / 8, rtol=1e-6)
    np.testing.assert_allclose(optim.lr_schedule(dataclasses.replace(half, lr_batch=0))(t),
                               optim.lr_schedule(base)(t), rtol=1e-6)  # without lr_batch: lr as given


def test_gradients_clipped_per_part_after_warmup():
    tx = optim.clip_parts(10.0, start=2)
    grads = ({"w": jnp.full((4,), 10.0)}, {"v": jnp.full((1,), 5.0)})  # norms 20 and 5
    state = tx.init(None)
    for t in range(4):
        out, state = tx.update(grads, state)
        factor = 10.0 / (20.0 + 1e-6) if t >= 2 else 1.0  # torch clip_grad_norm_, from update 2 on
        np.testing.assert_allclose(out[0]["w"], 10.0 * factor, rtol=1e-6)
        np.testing.assert_allclose(out[1]["v"], 5.0, rtol=1e-6)  # under the bound: untouched


# ---------------------------------------------------------------------------- init, precision


def _leaves(module, kind):
    return [np.asarray(x) for path, x in nnx.to_flat_state(nnx.state(module, nnx.Param))
            if path[-1] == kind and np.ndim(x) > 1]


def test_init_is_the_reference_effective_normal():
    enc = ViT("small", frames=2, size=32, tubelet=2, patch=16, depth=2, rngs=nnx.Rngs(0))
    pred = Predictor(grid=enc.grid, enc_width=384, width=384, depth=1, heads=6, rngs=nnx.Rngs(1))
    for module in (enc, pred):
        kernels = _leaves(module, "kernel")
        assert len(kernels) >= 6
        for k in kernels:  # Linear and Conv3d: N(0, 0.02²), no depth rescaling of proj / fc2
            assert abs(k.std() / 0.02 - 1) < 0.02 and abs(k.mean()) < 0.002
            # untruncated: 4.55 % of a normal lies beyond 2σ (a 2σ-truncated normal: none)
            assert 0.035 < np.mean(np.abs(k) > 0.04) < 0.057
        for path, x in nnx.to_flat_state(nnx.state(module, nnx.Param)):
            if path[-1] == "bias":
                assert not np.asarray(x).any()
            if path[-1] == "scale":
                np.testing.assert_array_equal(x, 1.0)
    np.testing.assert_array_equal(pred.mask_tokens[...], 0.0)


def _eqns(jaxpr):
    for eqn in jaxpr.eqns:
        yield eqn
        for p in eqn.params.values():
            for sub in p if isinstance(p, (list, tuple)) else [p]:
                if isinstance(sub, jax.extend.core.ClosedJaxpr):
                    yield from _eqns(sub.jaxpr)
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    yield from _eqns(sub)


def test_bf16_matmuls_float32_norms_softmax_and_loss(small_cfg):
    from dualjax.vjepa.model import VJEPA, make_objective

    cfg = dataclasses.replace(small_cfg, compute_dtype="bfloat16")
    model = VJEPA(cfg)
    theta, psi = model.init()
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves((theta, psi)))  # master weights
    ctx = jnp.tile(jnp.arange(0, 32, 2)[None], (2, 1))
    batch = {"clip": jnp.zeros((2, 4, 16, 16, 3), jnp.uint8),
             "masks": ((ctx, ctx + 1, jnp.array([16, 12]), jnp.array([16, 16])),) * 2}
    F = make_objective(model).F
    closed = jax.make_jaxpr(F)(theta, psi, theta, batch)
    eqns = list(_eqns(closed.jaxpr))
    dots = [e for e in eqns if e.primitive.name in ("dot_general", "conv_general_dilated")]
    assert dots and all(v.aval.dtype == jnp.bfloat16 for e in dots for v in e.invars)
    for name in ("exp", "rsqrt"):  # softmax and LayerNorm
        found = [e for e in eqns if e.primitive.name == name]
        assert found and all(e.invars[0].aval.dtype == jnp.float32 for e in found), name
    assert closed.out_avals[0].dtype == jnp.float32


# ---------------------------------------------------------------------------- padded masks


def test_padding_changes_nothing_and_groups_average(sg_built):
    """F on padded index lists equals F on the trimmed lists the reference would use; with two mask
    groups of different sizes it is the mean of the two groups' F (the reference's average over GPUs)."""
    cfg = sg_built.cfg
    F = jax.jit(sg_built.setup.objective.F)  # eager, the four evaluations took a minute
    theta, psi = sg_built.setup.model.init()
    clip = sg_built.batch["clip"]
    gen = MultiBlockMasks(cfg.grid, [BlockSpec(8, 0.15)], group=2, buckets=1)
    m = gen(np.random.default_rng(5), 4)[0]
    assert m.n_ctx[0] != m.n_ctx[2] or m.n_tgt[0] != m.n_tgt[2]  # the two groups keep different counts
    rng = np.random.default_rng(0)
    junk = lambda a: np.concatenate([a, rng.integers(0, 32, (4, 5), dtype=np.int32)], axis=1)  # noqa: E731
    padded = F(theta, psi, theta, {"clip": clip, "masks": ((m.ctx, m.tgt, m.n_ctx, m.n_tgt),)})
    more = F(theta, psi, theta, {"clip": clip, "masks": ((junk(m.ctx), junk(m.tgt), m.n_ctx, m.n_tgt),)})
    groups = [F(theta, psi, theta, {"clip": clip[g], "masks": ((m.ctx[g, :m.n_ctx[g][0]], m.tgt[g, :m.n_tgt[g][0]]),)})
              for g in (slice(0, 2), slice(2, 4))]
    np.testing.assert_allclose(padded, more, rtol=1e-5)
    np.testing.assert_allclose(padded, np.mean(groups), rtol=1e-5)


# ---------------------------------------------------------------------------- presets and checks


def test_presets_state_the_reference_batch_schedule_and_predictor():
    for name, model in (("vits16", "small"), ("vitb16", "base")):
        cfg = config_lib.load(name)
        assert cfg.model == model and cfg.batch_size == 24 * 128 and cfg.lr_batch == cfg.batch_size
        assert (cfg.lr, cfg.start_lr, cfg.final_lr) == (6.25e-4, 2e-4, 1e-6)
        assert (cfg.warmup_steps, cfg.steps, cfg.ipe_scale) == (40 * 300, 300 * 300, 1.25)
        assert (cfg.pred_width, cfg.pred_depth, cfg.pred_heads) == (384, 12, 0)  # heads: the encoder's
        assert cfg.mask_group == 24 and cfg.clip_grad == 10.0 and cfg.uniform_power
        assert cfg.compute_dtype == "bfloat16" and cfg.mask_trim == "first"
    default = config_lib.load("default")
    assert (default.batch_size, default.steps, default.warmup_steps, default.ipe_scale) == (3072, 90_000, 12_000, 1.25)


@pytest.mark.parametrize("key,value", [("ipe_scale", 0.8), ("clip_grad", -1.0), ("lr_batch", -24),
                                       ("mask_group", -1), ("mask_buckets", 0), ("mask_trim", "last"),
                                       ("short_videos", "drop"), ("probe_segments", 0), ("probe_views", 0)])
def test_recipe_options_reject_bad_values(key, value):
    with pytest.raises(ValueError, match=key):
        dataclasses.replace(config_lib.Config(), **{key: value}).validate()


def test_probe_optimizer_clips_then_follows_the_reference_schedule():
    steps, lr, wd = 10, 1e-3, 0.01
    tx = probe_lib.probe_optimizer(steps, lr, wd)
    p = {"w": jnp.ones((2, 2))}
    grads = [{"w": jnp.full((2, 2), 50.0)}, {"w": jnp.full((2, 2), 0.25)}]  # norms 100 and 0.5
    state = tx.init(p)
    m = v = np.zeros((2, 2))
    w = np.ones((2, 2))
    for t, g in enumerate(grads):
        upd, state = tx.update(g, state, p)
        p = optax.apply_updates(p, upd)
        gc = np.asarray(g["w"]) * min(1.0, 1.0 / np.linalg.norm(g["w"]))  # clip at norm 1
        m, v = 0.9 * m + 0.1 * gc, 0.999 * v + 0.001 * gc**2
        lr_t = lr * 0.5 * (1 + math.cos(math.pi * (t + 1) / steps))  # eval.py: warmup 0, final_lr 0
        wd_t = 1e-6 + (wd - 1e-6) * 0.5 * (1 + math.cos(math.pi * (t + 1) / steps))
        mh, vh = m / (1 - 0.9 ** (t + 1)), v / (1 - 0.999 ** (t + 1))
        w = w - lr_t * (mh / (np.sqrt(vh) + 1e-8) + wd_t * w)
        np.testing.assert_allclose(p["w"], w, rtol=1e-5)
