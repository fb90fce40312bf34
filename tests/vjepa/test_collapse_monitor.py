"""The collapse monitor in the V-JEPA trainer: the logged metrics are those of the step's features,
the plain rule raises the flag (and ``--stop-on-collapse`` stops there), EMA of the same length
does not, and ``dualjax diagnose`` says so."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from dualjax import collapse
from dualjax.cli import main
from dualjax.vjepa import data, rundir, train
from dualjax.vjepa.step import is_logged
from dualjax.vjepa.vit import gather_tokens

METRICS = ("rank_student", "rank_teacher", "rank_pred", "std_target", "std_pred", "cos_student_teacher")


def _erank(Z):
    s = np.linalg.svd(Z.reshape(-1, Z.shape[-1]).astype(np.float64), compute_uv=False)
    p = s / s.sum()
    return float(np.exp(-np.sum(p[p > 0] * np.log(p[p > 0]))))


def _ln(h):
    h = h.astype(np.float64)
    return (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-6)


def test_step_metrics_are_those_of_its_features(ema_built):
    """Every collapse metric of a step, recomputed in numpy from the model's own forward functions."""
    s, batch, cfg = ema_built.setup, ema_built.batch, ema_built.cfg
    state = s.init()
    for _ in range(2):  # after one step ξ ≠ θ, so the teacher's features differ from the student's
        xi = s.rule.teacher(state.theta, state.teacher)
        new, m = ema_built.step(state, batch)
        x = data.normalize(np.asarray(batch["clip"]))
        enc, pred = jax.jit(s.model.encode), jax.jit(s.model.predict, static_argnums=4)
        t = np.asarray(enc(xi, x), np.float64)
        h = _ln(t)
        zs, us, ts, padded = [], [], [], []  # the real entries of the padded index lists only, clip by clip
        for i, (ctx, tgt, n_ctx, n_tgt) in enumerate(batch["masks"]):
            n_ctx, n_tgt = np.asarray(n_ctx), np.asarray(n_tgt)
            padded.append(bool((n_ctx < ctx.shape[1]).any() or (n_tgt < tgt.shape[1]).any()))
            z = enc(state.theta, x, ctx, n_ctx)
            u = np.asarray(pred(state.psi, z, ctx, tgt, i, n_ctx, n_tgt), np.float64)
            g = np.asarray(gather_tokens(t, ctx))
            zs.append(np.concatenate([np.asarray(z, np.float64)[b, :n_ctx[b]] for b in range(len(n_ctx))]))
            ts.append(np.concatenate([g[b, :n_ctx[b]] for b in range(len(n_ctx))]))
            us.append([u[b, :n_tgt[b]] for b in range(len(n_tgt))])
        assert any(padded)  # the batch has padded entries, which must enter no metric
        z, u = np.concatenate(zs), np.concatenate([np.concatenate(v) for v in us])
        want = {
            "rank_student": _erank(z), "rank_teacher": _erank(h), "rank_pred": _erank(u),
            "std_target": np.mean(np.sqrt(h.var(axis=1) + 1e-4)),  # the reference's pstd, over tokens
            "std_pred": np.mean([np.mean([np.sqrt(c.var(axis=0) + 1e-4) for c in v]) for v in us]),
            "cos_student_teacher": np.mean([np.mean(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1)
                                                                         * np.linalg.norm(b, axis=1)))
                                            for a, b in zip(zs, ts)]),
        }
        for k, v in want.items():  # ranks from the float32 Gram spectrum: < 1 % (test_collapse.py)
            np.testing.assert_allclose(float(m[k]), v, rtol=1e-2 if k.startswith("rank") else 2e-3, err_msg=k)
        cov = np.linalg.eigvalsh(np.cov(h.reshape(-1, h.shape[-1]).T, bias=True))[::-1][:collapse.TOP_K]
        np.testing.assert_allclose(np.asarray(m["cov_top_teacher"]), cov, rtol=2e-3)
        state = new
    assert cfg.log_every == 1


# ---------------------------------------------------------------------------- plain vs EMA

def _cfg(small_cfg, teacher, **kw):
    # lr 1e-2 makes plain collapse in ~20 steps at this size; EMA keeps the default momentum 0.998
    return dataclasses.replace(small_cfg, teacher=teacher, lr=1e-2, steps=40, warmup_steps=4, batch_size=8,
                               log_every=5, mask_blocks=(8,), mask_scales=(0.15,), **kw).validate()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, small_cfg):
    """Runs of 40 steps: plain, EMA, and plain with ``stop_on_collapse`` (sharing plain's set-up)."""
    from dualjax.vjepa.step import build

    root = tmp_path_factory.mktemp("collapse")
    plain = build(_cfg(small_cfg, "plain"))
    out = {"plain": train.train(plain.cfg, root / "plain", progress=False, probes=False, setup=plain),
           "ema": train.train(_cfg(small_cfg, "ema"), root / "ema", progress=False, probes=False),
           "stop": train.train(_cfg(small_cfg, "plain", stop_on_collapse=True), root / "stop", progress=False,
                               probes=False, setup=plain)}
    return root, out


def test_plain_raises_the_flag_and_ema_does_not(runs, small_cfg):
    root, out = runs
    cfg = _cfg(small_cfg, "plain")
    for name in ("plain", "ema"):
        recs = out[name]
        # the loop logs exactly the steps whose metrics the step computed (finite, no NaN placeholders)
        assert [r["step"] for r in recs] == [t for t in range(cfg.steps) if is_logged(cfg, t, False)]
        assert all(np.isfinite(r[k]) for r in recs for k in METRICS)
        assert [json.loads(line) for line in (root / name / "metrics.jsonl").read_text().splitlines()] == recs
    plain, ema = out["plain"], out["ema"]
    ref = plain[0]["rank_teacher"]
    assert plain[-1]["collapse"] and plain[-1]["step"] == cfg.steps - 1  # flagged, and the run went on
    for r in plain:
        assert r["collapse"] == bool(collapse.check(r, ref))
    assert not any(r["collapse"] for r in ema)
    assert ema[-1]["rank_teacher"] > 0.5 * ema[0]["rank_teacher"] > plain[-1]["rank_teacher"]


def test_stop_on_collapse_and_diagnose(runs, capsys):
    root, out = runs
    recs = out["stop"]
    first = next(r["step"] for r in out["plain"] if r["collapse"])
    # the same run as "plain" up to the first flagged step, where it stops with a checkpoint
    assert [{k: v for k, v in r.items() if k not in ("clips_per_s", "stopped_on_collapse")} for r in recs] == [
        {k: v for k, v in r.items() if k != "clips_per_s"} for r in out["plain"] if r["step"] <= first]
    assert recs[-1]["stopped_on_collapse"] and not any(r["collapse"] for r in recs[:-1])
    assert rundir.latest_checkpoint(root / "stop").name == str(first + 1)
    assert main(["diagnose", str(root / "plain")]) == 0
    assert capsys.readouterr().out.startswith(f"COLLAPSED: flagged from step {first}")
    assert main(["diagnose", str(root / "ema"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["verdict"] == "no collapse" and (root / "ema" / "collapse.png").exists()


def test_cli_stop_on_collapse_sets_the_config_field(tmp_path, capsys):
    import argparse

    from dualjax.commands import train as train_cmd

    parser = argparse.ArgumentParser()
    train_cmd.add_arguments(parser)
    cfg, _ = train_cmd._config(parser.parse_args(["--config", "tiny", "--out", str(tmp_path), "--stop-on-collapse"]))
    assert cfg.stop_on_collapse and not train_cmd._config(parser.parse_args(["--out", str(tmp_path)]))[0].stop_on_collapse
    assert main(["train", "--resume", str(tmp_path), "--stop-on-collapse"]) == 2  # a resumed run keeps its config
    assert "--stop-on-collapse" in capsys.readouterr().err
