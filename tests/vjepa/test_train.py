"""The V-JEPA step through dualjax.rules / dualjax.objectives: SG, EMA and plain on a tiny ViT."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dualjax import checkpoint as ckpt_lib
from dualjax import rules
from dualjax.configs import override
from dualjax.vjepa import data, optim, rundir, train
from dualjax.vjepa.step import device_batch


def _close(a, b, rtol=2e-4, atol=1e-6):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def _norm(t):
    return float(optax.tree_utils.tree_norm(t))


def test_sg_loss_is_F_at_xi_theta_and_gradient_has_no_teacher_term(sg_built):
    s, batch = sg_built.setup, sg_built.batch
    F = s.objective.F
    theta, psi = s.model.init()
    value, (g_theta, g_psi) = jax.jit(rules.loss_and_grads(s.rule, F))(theta, psi, s.rule.init(theta), batch)
    # partial gradients with ξ a separate argument, evaluated at ξ = θ
    F_val, (d_student, d_pred, d_teacher) = jax.jit(jax.value_and_grad(F, argnums=(0, 1, 2)))(
        theta, psi, theta, batch)
    np.testing.assert_allclose(value, F_val, rtol=1e-6)
    _close(g_theta, d_student)
    _close(g_psi, d_pred)
    # the teacher path is real, so the SG gradient differs from ∇E = ∂_θF + ∂_ξF by exactly it
    assert _norm(d_teacher) > 1e-2 * _norm(d_student)


def test_train_step_is_rules_make_step(ema_built):
    s, batch = ema_built.setup, ema_built.batch
    init, step = rules.make_step(s.objective.F, s.rule, s.tx)
    state = s.init()
    ref = init(state.theta, state.psi)
    ref_step = jax.jit(step)
    for _ in range(2):
        state, m = ema_built.step(state, batch)
        ref, mr = ref_step(ref, batch)
        for k in ("F", "d_theta", "d_psi", "d_xi", "grad_norm"):
            np.testing.assert_allclose(m[k], mr[k], rtol=1e-5)
    _close(state.theta, ref.theta, rtol=1e-5)
    _close(state.teacher.xi, ref.teacher.xi, rtol=1e-5)


def test_ema_teacher_is_closed_form_average(ema_built):
    s, batch, cfg = ema_built.setup, ema_built.batch, ema_built.cfg
    state = s.init()
    thetas = [state.theta]
    k = 3
    for _ in range(k):
        state, _ = ema_built.step(state, batch)
        thetas.append(state.theta)
    # ξ_k = Π_{j<k} α_j θ_0 + Σ_{t=1}^{k} (1 − α_{t−1}) Π_{j=t}^{k−1} α_j θ_t, α_j = ½ + ½ j/(1.25 T)
    alpha = [cfg.momentum_start + (cfg.momentum_end - cfg.momentum_start) * j / (cfg.ipe_scale * cfg.steps)
             for j in range(k)]
    w = [np.prod(alpha)] + [(1 - alpha[t - 1]) * np.prod(alpha[t:]) for t in range(1, k + 1)]
    assert abs(sum(w) - 1) < 1e-12
    expect = jax.tree.map(lambda *ps: sum(wi * np.asarray(p, np.float64) for wi, p in zip(w, ps)), *thetas)
    _close(state.teacher.xi, expect, rtol=1e-5, atol=1e-7)
    assert int(state.teacher.count) == k and int(state.step) == k
    assert _norm(jax.tree.map(jnp.subtract, state.teacher.xi, state.theta)) > 0  # ξ lags θ


def test_optimizer_schedules_and_decay_mask(small_cfg):
    cfg = override(small_cfg, {"steps": 100, "warmup_steps": 10, "ipe_scale": 1.0})
    wd, lr = optim.wd_schedule(cfg), optim.lr_schedule(cfg)
    # update t uses the schedules after t + 1 steps (the reference steps them before each update)
    np.testing.assert_allclose([wd(49), wd(99)], [0.22, 0.4], rtol=1e-5)
    np.testing.assert_allclose([lr(0), lr(9), lr(99)], [cfg.start_lr + (cfg.lr - cfg.start_lr) / 10, cfg.lr,
                                                         cfg.final_lr], rtol=1e-4)
    # stacked blocks (leading depth axis 2): a LayerNorm scale (2, 3) is 1-D per block, a kernel (2, 3, 4) 2-D
    params = {"kernel": jnp.ones((2, 3)), "bias": jnp.ones(3), "scale": jnp.ones(3), "tok": jnp.ones((2, 1, 1, 3)),
              "blocks": {"layers": {"kernel": jnp.ones((2, 3, 4)), "bias": jnp.ones((2, 4)), "scale": jnp.ones((2, 3))}}}
    tx = optim.make_optimizer(cfg)
    zero = jax.tree.map(jnp.zeros_like, params)
    upd, _ = tx.update(zero, tx.init(params), params)
    # zero gradient: Adam's part vanishes, only decoupled decay −lr·wd·p remains, and only on n-D params
    np.testing.assert_allclose(upd["kernel"], -float(lr(0)) * float(wd(0)), rtol=1e-4)
    np.testing.assert_allclose(upd["tok"], -float(lr(0)) * float(wd(0)), rtol=1e-4)
    np.testing.assert_allclose(upd["blocks"]["layers"]["kernel"], -float(lr(0)) * float(wd(0)), rtol=1e-4)
    for flat in (upd, upd["blocks"]["layers"]):
        assert float(jnp.abs(flat["bias"]).max()) == 0 and float(jnp.abs(flat["scale"]).max()) == 0


# ---------------------------------------------------------------------------- logged run

@pytest.fixture(scope="module")
def ema_run(tmp_path_factory, ema_built):
    out = tmp_path_factory.mktemp("run")
    records = train.train(ema_built.cfg, out, progress=False, probes=False, setup=ema_built.setup)
    return ema_built, out, records


def _ln(h):
    h = h.astype(np.float64)
    return (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-6)


_JIT = {}


def _direct_loss(model, theta, psi, xi, batch):
    """L1 between predictions and layer-normed teacher tokens, averaged per generator (numpy), on the
    index lists trimmed to their real entries (one mask group: the same count for every clip)."""
    if model not in _JIT:  # the model's own pure forward functions, jitted; the rest is numpy
        _JIT[model] = (jax.jit(model.encode), jax.jit(model.predict, static_argnums=4))
    encode, predict = _JIT[model]
    x = data.normalize(np.asarray(batch["clip"]))
    h = _ln(np.asarray(encode(xi, x)))
    terms = []
    for i, (ctx, tgt, n_ctx, n_tgt) in enumerate(batch["masks"]):
        assert len(set(np.asarray(n_ctx))) == 1 and len(set(np.asarray(n_tgt))) == 1
        ctx, tgt = ctx[:, :int(n_ctx[0])], tgt[:, :int(n_tgt[0])]
        u = np.asarray(predict(psi, encode(theta, x, ctx), ctx, tgt, i), np.float64)
        v = h[np.arange(len(tgt))[:, None], tgt]
        terms.append(np.abs(u - v).mean())
    return float(np.mean(terms))


def test_logged_F_E_and_increments_match_direct_computation(ema_run):
    built, out, records = ema_run
    cfg, s, step = built.cfg, built.setup, built.step
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines == records and [r["step"] for r in records] == [0, 1, 2]
    for key in ("step", "F", "E", "d_theta", "d_psi", "d_xi", "lr", "momentum", "grad_norm"):
        assert all(key in r for r in records)
    state = s.init()
    batches = data.train_batches(data.make_source(cfg, "train"), s.masks, cfg.batch_size, cfg.data_seed, cfg.steps)
    for rec in records:
        batch = device_batch(next(batches))
        xi = s.rule.teacher(state.theta, state.teacher)
        np.testing.assert_allclose(rec["F"], _direct_loss(s.model, state.theta, state.psi, xi, batch), rtol=1e-4)
        np.testing.assert_allclose(rec["E"], _direct_loss(s.model, state.theta, state.psi, state.theta, batch),
                                   rtol=1e-4)
        new, _ = step(state, batch)
        diff = lambda a, b: np.sqrt(sum(float(np.sum((np.asarray(x, np.float64) - np.asarray(y)) ** 2))  # noqa
                                        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))))
        np.testing.assert_allclose(rec["d_theta"], diff(new.theta, state.theta), rtol=1e-3)
        np.testing.assert_allclose(rec["d_psi"], diff(new.psi, state.psi), rtol=1e-3)
        np.testing.assert_allclose(rec["d_xi"], diff(new.teacher.xi, state.teacher.xi), rtol=1e-3)
        np.testing.assert_allclose(rec["momentum"], 0.5 + 0.5 * rec["step"] / (cfg.ipe_scale * cfg.steps), rtol=1e-6)
        state = new
    # E uses the online encoder as target, F the EMA teacher: they must differ once ξ lags θ
    assert abs(records[-1]["F"] - records[-1]["E"]) > 1e-3 * abs(records[-1]["E"])
    np.testing.assert_allclose(records[0]["F"], records[0]["E"], rtol=1e-5)  # ξ_0 = θ_0


def test_checkpoint_round_trip_and_probe_cli(ema_run, capsys):
    built, out, _ = ema_run
    cfg, s = built.cfg, built.setup
    ckpt = rundir.latest_checkpoint(out)
    assert ckpt.name == str(cfg.steps)
    state = rundir.restore_checkpoint(ckpt, s)
    assert int(state.step) == cfg.steps and int(state.teacher.count) == cfg.steps
    # the restored state continues exactly like the one that was saved would: one more step is finite
    replay = s.init()
    batches = data.train_batches(data.make_source(cfg, "train"), s.masks, cfg.batch_size, cfg.data_seed, cfg.steps)
    for b in batches:
        replay, _ = built.step(replay, device_batch(b))
    _close(rundir.state_to_tree(state), rundir.state_to_tree(replay), rtol=1e-5, atol=1e-7)
    tree = rundir.state_to_tree(s.init())
    restored = rundir.state_to_tree(state)
    assert jax.tree.structure(tree) == jax.tree.structure(restored)

    from dualjax.cli import main

    assert main(["probe", "--ckpt", str(out)]) == 0
    res = json.loads((out / "probe.json").read_text())
    assert 0.0 <= res["probe_top1"] <= 1.0 and res["step"] == cfg.steps


def test_stack_and_unstack_blocks_are_inverse_in_block_order():
    w = jnp.arange(24.0).reshape(12, 2)  # 12 blocks: '10' must come after '9'
    tree = ({"blocks": {"layers": {"w": w}}, "embed": jnp.ones(3)}, [{"blocks": {"layers": {"w": 2 * w}}}])
    per_block = rundir.unstack_blocks(tree)
    assert sorted(per_block[0]["blocks"], key=int) == [str(l) for l in range(12)]
    np.testing.assert_array_equal(per_block[0]["blocks"]["10"]["w"], [20.0, 21.0])
    np.testing.assert_array_equal(per_block[1][0]["blocks"]["3"]["w"], [12.0, 14.0])
    _close(rundir.stack_blocks(per_block), tree, rtol=0, atol=0)


def test_a_per_block_checkpoint_resumes_into_the_stacked_layout(ema_run, tmp_path):
    """A checkpoint written before the blocks were stacked (``blocks/<l>/<param>``, one entry per
    block) is read into today's stacked state, by a resume and by ``restore_checkpoint``."""
    built, out, _ = ema_run
    saved = rundir.latest_checkpoint(out)
    state = rundir.restore_checkpoint(saved, built.setup)
    old = rundir.unstack_blocks(rundir.state_to_tree(state))
    assert set(old["theta"]["blocks"]) == {str(l) for l in range(built.cfg.depth)}
    with ckpt_lib.Checkpointer(tmp_path, async_save=False) as ckpt:
        ckpt.save(3, old, {"step": 3, "data": {"next_step": 3}, "videos_skipped": 0})
        assert rundir.checkpoint_layout(tmp_path / "3") == rundir.PER_BLOCK
        assert rundir.checkpoint_layout(saved) == rundir.STACKED
        step, resumed, _ = rundir.resume(ckpt, jax.eval_shape(built.setup.init))
    assert step == 3
    _close(rundir.state_to_tree(resumed), rundir.state_to_tree(state), rtol=0, atol=0)
    read = rundir.restore_checkpoint(tmp_path / "3", built.setup)
    assert jax.tree.structure(read) == jax.tree.structure(state)
    _close(rundir.state_to_tree(read), rundir.state_to_tree(state), rtol=0, atol=0)
