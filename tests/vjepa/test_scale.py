"""The V-JEPA trainer at scale: exact resume after a SIGKILL during a save and at an arbitrary
moment, 8-device data-parallel and FSDP steps equal to one device, bf16 compute, a NaN injected
into a run, video-list data with skips.

The kill tests run the trainer in child processes (this file run as a script, see the bottom).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import av
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dualjax import checkpoint, faults
from dualjax.vjepa import data, rundir, train, video, videolist
from dualjax.vjepa.config import Config
from dualjax.vjepa.parallel import make_mesh, make_parallel, state_shardings
from dualjax.vjepa.step import build, device_batch

# A tiny model (token grid 2×4×4) whose run compiles in seconds; EMA teacher and a warmup so that
# the momentum, lr and wd schedules all change from step to step (a resume at the wrong step shows).
CFG = Config(
    frames=4, size=16, tubelet=2, patch=4, num_train=64, num_heldout=32,
    model="tiny", width=32, depth=1, heads=2, pred_width=16, pred_depth=1, pred_heads=2,
    mask_blocks=(8,), mask_scales=(0.15,),
    teacher="ema", momentum_start=0.9, steps=8, batch_size=8, warmup_steps=3,
    lr=1e-3, start_lr=1e-4, final_lr=1e-5, log_every=1, ckpt_every=2, ckpt_keep=2, num_devices=1,
    compute_dtype="float32",
)
TIMING = ("clips_per_s",)  # wall-clock throughput: the only key that may differ between runs


def _child_env(cache_dir=None):
    env = dict(os.environ)
    if cache_dir is not None:  # the resumed child reuses the first child's compiled executables
        env.update(JAX_COMPILATION_CACHE_DIR=str(cache_dir), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    env.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    env.setdefault("NPROC", "16")
    env.pop("JAX_ENABLE_X64", None)
    return env


def _child(*args, cache_dir=None):
    return subprocess.Popen([sys.executable, __file__, *map(str, args)], env=_child_env(cache_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _lines(path: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """(run directory, XLA cache) of an uninterrupted run of CFG in a child process; the kill
    tests' children share its persistent XLA cache, so they compile the same program once."""
    root = tmp_path_factory.mktemp("reference")
    ref = _child(root / "ref", "reference", cache_dir=root / "xla-cache")
    out = ref.communicate(timeout=300)
    assert ref.returncode == 0, out[1][-3000:]
    want = _lines(root / "ref" / "metrics.jsonl")
    assert [r["step"] for r in want] == list(range(CFG.steps))
    # the schedules change every step, so a resume at the wrong step cannot go unnoticed
    assert len({r["momentum"] for r in want}) == CFG.steps and len({r["lr"] for r in want}) == CFG.steps
    return root / "ref", root / "xla-cache"


def _resume_and_compare(run_dir: Path, ref_dir: Path, cache: Path) -> None:
    resumed = _child(run_dir, "resume", cache_dir=cache)
    out = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out[1][-3000:]
    assert _lines(run_dir / "metrics.jsonl") == _lines(ref_dir / "metrics.jsonl")  # bit for bit, same CPU
    assert json.loads(out[0])["steps"] == CFG.steps  # the CLI summary covers the whole run
    ckdir = run_dir / rundir.CKPT_DIR
    assert not any(".orbax-checkpoint-tmp" in p.name for p in ckdir.iterdir())  # torn saves removed


@pytest.mark.slow
def test_sigkill_during_a_save_then_resume_equals_uninterrupted_run(tmp_path, reference):
    ref_dir, cache = reference
    run_dir = tmp_path / "run"
    # the child SIGKILLs itself inside orbax's finalize of checkpoint 6: its files are written,
    # the committing rename is pending
    killed = _child(run_dir, "kill-in-finalize", 6, cache_dir=cache)
    out_killed = killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL, out_killed[1][-3000:]
    ckdir = run_dir / rundir.CKPT_DIR
    assert checkpoint.committed_steps(ckdir) == [2, 4]  # 6 never committed
    assert any(".orbax-checkpoint-tmp" in p.name for p in ckdir.iterdir())  # the torn save
    before = _lines(run_dir / "metrics.jsonl")
    assert before[-1]["step"] >= 5  # records beyond checkpoint 4 exist and must be dropped on resume
    _resume_and_compare(run_dir, ref_dir, cache)
    assert checkpoint.committed_steps(ckdir) == [6, 8]  # keep-last-2 after the resumed run


@pytest.mark.slow
def test_sigkill_at_an_arbitrary_moment_then_resume_equals_uninterrupted_run(tmp_path, reference):
    ref_dir, cache = reference
    run_dir = tmp_path / "run"
    # a run saving after every step, slowed to ~0.1 s per batch, killed from outside once 4
    # records exist: the kill lands wherever it lands (a save, a metrics line, a step)
    proc = _child(run_dir, "slow", cache_dir=cache)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists() and metrics.read_text().count("\n") >= 4:
            break
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    saved = checkpoint.committed_steps(run_dir / rundir.CKPT_DIR)
    assert saved and saved[-1] < CFG.steps  # killed mid-run, after some checkpoints
    _resume_and_compare(run_dir, ref_dir, cache)


def test_resume_refuses_a_different_config(tmp_path, capsys):
    from dualjax.cli import main

    (tmp_path / "config.json").write_text(CFG.to_json())
    with pytest.raises(ValueError, match="steps: 9 != 8"):
        train.train(dataclasses.replace(CFG, steps=9), tmp_path, progress=False, probes=False, resume=True)
    assert main(["train", "--resume", str(tmp_path), "--set", "steps=9"]) == 2
    assert "do not combine it with --config, --set" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "nowhere")]) == 2
    assert "nowhere/config.json does not exist" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "x"), "--coordinator", "127.0.0.1:1", "--num-processes", "2"]) == 2
    assert "process_id=None" in capsys.readouterr().err


# ---------------------------------------------------------------------------- devices

def _close(a, b, rtol=1e-5, atol=1e-6):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


@pytest.fixture(scope="module")
def one_device():
    """One step of CFG on one device: (setup, batch, state_0, state_1, metrics)."""
    cfg = dataclasses.replace(CFG, num_devices=0)
    setup = build(cfg)
    batch = device_batch(next(data.train_batches(data.make_source(cfg, "train"), setup.masks,
                                                       cfg.batch_size, cfg.data_seed, cfg.steps)))
    state0 = setup.init()
    state1, metrics = jax.jit(setup.train_step)(state0, batch)
    return cfg, batch, state0, state1, metrics


@pytest.mark.parametrize("sharding", ["dp", "fsdp"])
def test_step_on_8_devices_equals_one_device(one_device, sharding):
    cfg, batch, state0, state1, metrics = one_device
    assert jax.device_count() == 8
    setup = build(dataclasses.replace(cfg, sharding=sharding, fsdp_min_size=256))
    par = make_parallel(setup)
    assert par.mesh.size == 8
    specs = [s.spec for s in jax.tree.leaves(par.state_sharding)]
    if sharding == "fsdp":  # the large kernels (and their Adam moments, EMA copy) are split
        assert sum(any(a is not None for a in spec) for spec in specs) >= 10
    else:
        assert all(all(a is None for a in spec) for spec in specs)
    state = par.init()
    _close(state, state0, rtol=0, atol=0)  # same initial values, laid out over the mesh
    dbatch = par.put_batch(batch)
    assert dbatch["clip"].sharding.spec[0] == "data"
    new, m = par.step(state, dbatch)
    for k in ("F", "grad_norm", "d_theta", "d_psi", "d_xi", "lr", "momentum", "rank_teacher", "rank_student",
              "std_target", "cos_student_teacher"):  # the collapse metrics too, on features split over devices
        # ranks come from a float32 Gram spectrum, whose sum order differs across the mesh (√ε-accurate)
        np.testing.assert_allclose(m[k], metrics[k], rtol=1e-3 if k.startswith("rank") else 1e-5, err_msg=k)
    _close(new, state1)
    assert jax.tree.leaves(new.theta)[0].sharding == jax.tree.leaves(par.state_sharding.theta)[0]


@pytest.mark.slow
def test_two_process_job_through_the_cli_matches_one_process(tmp_path):
    """``dualjax train --coordinator 127.0.0.1:PORT --num-processes 2 --process-id I``: two
    processes with 2 CPU devices each (gloo) train one 4-device data-parallel model."""
    cfg = dataclasses.replace(CFG, steps=3, warmup_steps=1, num_devices=0, ckpt_every=0)
    (tmp_path / "cfg.py").write_text(f"from dualjax.vjepa.config import Config\nCONFIG = {cfg!r}\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # 2 devices per process; conftest's other XLA flags (fast compiles) kept
    env = {**_child_env(), "XLA_FLAGS": re.sub(r"--xla_force_host_platform_device_count=\d+",
                                               "--xla_force_host_platform_device_count=2", os.environ["XLA_FLAGS"])}
    procs = [subprocess.Popen(
        [sys.executable, "-m", "dualjax.cli", "train", "--config", str(tmp_path / "cfg.py"), "--out",
         str(tmp_path / "run"), "--no-probe", "--no-progress", "--coordinator", f"127.0.0.1:{port}",
         "--num-processes", "2", "--process-id", str(i)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True) for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert "process 1/2" in outs[1][1] and "4 devices" in outs[1][1]
    assert "F_last" in outs[0][0] and "F_last" not in outs[1][0]  # only process 0 writes summary, metrics
    got = _lines(tmp_path / "run" / "metrics.jsonl")
    want = train.train(dataclasses.replace(cfg, num_devices=4), tmp_path / "one", progress=False, probes=False)
    assert [r["step"] for r in got] == [0, 1, 2]
    for g, w in zip(got, want):
        for k in ("F", "E", "d_theta", "d_psi", "grad_norm"):
            np.testing.assert_allclose(g[k], w[k], rtol=1e-5, err_msg=k)
    assert (tmp_path / "run" / rundir.CKPT_DIR / str(cfg.steps)).is_dir()


def test_fsdp_keeps_the_depth_axis_of_stacked_blocks_whole():
    """16 blocks 8 wide: the depth axis is the longest of a stacked LayerNorm scale (16, 8), and it
    is left whole; other axes of the stacks and the unstacked leaves split as usual."""
    cfg = dataclasses.replace(CFG, width=8, heads=2, depth=16, sharding="fsdp", fsdp_min_size=0, num_devices=0)
    shardings = state_shardings(build(cfg), make_mesh(cfg))
    leaves = jax.tree_util.tree_leaves_with_path(shardings.theta)
    stacked = {jax.tree_util.keystr(p): s.spec for p, s in leaves if "'blocks'" in jax.tree_util.keystr(p)}
    assert len(stacked) >= 10 and all(not spec or spec[0] is None for spec in stacked.values()), stacked
    assert any(spec and spec[1] == "data" for spec in stacked.values())  # (16, 8): split along the width
    assert any("data" in s.spec for p, s in leaves if "'blocks'" not in jax.tree_util.keystr(p))


def test_codegen_compiles_the_same_step_with_other_xla_options(one_device, monkeypatch):
    """``codegen="o1"``: the jitted step gets LLVM -O1 and the classic emitters on CPU, and computes
    the step of XLA's defaults (to rounding); a bad name is refused naming it."""
    from dualjax.vjepa.config import CODEGEN
    from dualjax.vjepa.parallel import compiler_options

    cfg, batch, state0, state1, metrics = one_device
    setup = build(dataclasses.replace(cfg, codegen="o1", num_devices=1))
    par = make_parallel(setup)
    assert compiler_options(setup.cfg, par.mesh.devices.flat) == CODEGEN["o1"] == {
        "xla_backend_optimization_level": 1, "xla_cpu_use_fusion_emitters": False}
    assert compiler_options(cfg, par.mesh.devices.flat) is None  # "xla": XLA's defaults (or XLA_FLAGS)
    new, m = par.step(par.init(), par.put_batch(batch))
    for k in ("F", "grad_norm", "d_theta", "d_psi", "d_xi"):
        np.testing.assert_allclose(m[k], metrics[k], rtol=1e-5, err_msg=k)
    _close(new, state1)
    with pytest.raises(ValueError, match="codegen='O2'; choose one of"):
        dataclasses.replace(cfg, codegen="O2").validate()
    # the options reach XLA: one it does not know fails the compile of each jitted function
    monkeypatch.setitem(CODEGEN, "o1", {"xla_no_such_option": 1})
    par = make_parallel(setup)
    for call in (par.init, lambda: par.step(new, par.put_batch(batch)), lambda: par.energy(new.theta, new.psi, batch)):
        with pytest.raises(Exception, match="xla_no_such_option"):
            call()


def test_bf16_compute_keeps_float32_parameters(one_device):
    cfg, batch, state0, _, metrics = one_device
    setup = build(dataclasses.replace(cfg, compute_dtype="bfloat16"))
    new, m = jax.jit(setup.train_step)(state0, batch)
    assert all(leaf.dtype == np.float32 for leaf in jax.tree.leaves((new.theta, new.psi, new.opt_state))
               if np.issubdtype(leaf.dtype, np.floating))
    # bf16 has 8 mantissa bits: the loss agrees to ~1e-2, and is not the float32 value
    np.testing.assert_allclose(m["F"], metrics["F"], rtol=3e-2)
    assert m["F"] != metrics["F"] and int(m["faults"]) == 0


# ---------------------------------------------------------------------------- faults

def test_injected_nan_stops_with_step_and_quantity_and_keeps_last_good_checkpoint(tmp_path):
    cfg = dataclasses.replace(CFG, steps=6, log_every=2)
    setup = build(cfg)

    def poisoned_step(state, batch):
        # from outside the step: θ is NaN when the update of step 3 starts, so its F, its
        # gradients and the parameters it produces are all non-finite
        theta = jax.tree.map(lambda p: p + jnp.where(state.step == 3, jnp.nan, 0.0), state.theta)
        return setup.train_step(state._replace(theta=theta), batch)

    with pytest.raises(faults.NonFiniteError, match=r"non-finite F \(loss\), gradients, parameters at step 3") as info:
        train.train(cfg, tmp_path, progress=False, probes=False, setup=setup._replace(train_step=poisoned_step))
    assert info.value.step == 3
    assert "last good checkpoint" in "\n".join(getattr(info.value, "__notes__", []))
    # step 3 is not a logged step: the per-step flag caught it, and nothing of step 3 was written
    assert [r["step"] for r in rundir.read_metrics(tmp_path)] == [0, 2]
    ckpt = rundir.latest_checkpoint(tmp_path)
    assert ckpt.name == "2"
    state = rundir.restore_checkpoint(ckpt, setup)
    assert int(state.step) == 2 and bool(faults.all_finite(state))


# ---------------------------------------------------------------------------- video lists

def _write_mp4(path, level: int, frames: int = 8, h: int = 24, w: int = 32) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for t in range(frames):
            img = np.full((h, w, 3), (level + 9 * t) % 256, np.uint8)
            for packet in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)


def test_video_lists_train_and_count_skipped_and_padded_videos(tmp_path):
    for i in range(3):  # v2 has 5 frames, fewer than a clip's span of 7: padded with its last frame
        _write_mp4(tmp_path / f"v{i}.mp4", 40 * i, frames=8 if i < 2 else 5)
    (tmp_path / "corrupt.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, np.uint8).tobytes())
    videolist.write_list(tmp_path / "train.txt", [("v0.mp4", 0), ("corrupt.mp4", 1), ("v1.mp4", 1),
                                              ("missing.mp4", 0), ("v2.mp4", 2)])
    videolist.write_list(tmp_path / "bad.txt", [("corrupt.mp4", 1), ("missing.mp4", 0), ("gone.mp4", 0), ("lost.mp4", 2)])
    cfg = dataclasses.replace(CFG, dataset="video", train_lists=(str(tmp_path / "train.txt"),), frame_step=2,
                              steps=2, batch_size=4, warmup_steps=0, ckpt_every=0)
    with pytest.warns(video.VideoSkipWarning):
        records = train.train(cfg, tmp_path / "run", progress=False, probes=False)
    # the expected count, element by element from the same dataset (batches are indexed by step)
    setup = build(cfg)
    ds = data.train_dataset(data.make_source(cfg, "train"), setup.masks, cfg.batch_size, cfg.data_seed, cfg.steps)
    want = np.cumsum([int(ds[t]["skipped"].sum()) for t in range(cfg.steps)])
    assert want[-1] >= 2  # both bad entries are met in the first epoch (5 entries, 8 clips)
    assert [r["videos_skipped"] for r in records] == list(want)
    padded = [int(ds[t]["padded"].sum()) for t in range(cfg.steps)]  # log_every=1: one batch per record
    assert sum(padded) >= 1 and [r["videos_padded"] for r in records] == padded
    assert all(np.isfinite(r["F"]) for r in records)

    bad = dataclasses.replace(cfg, train_lists=(str(tmp_path / "bad.txt"),))
    with pytest.raises(video.NoReadableVideoError, match="none of the 4 videos in list .*bad.txt"):
        train.train(bad, tmp_path / "bad", progress=False, probes=False)


# ---------------------------------------------------------------------------- child processes

def _main(out: str, mode: str, arg: str | None = None) -> None:
    if mode == "resume":
        from dualjax.cli import main

        sys.exit(main(["train", "--resume", out, "--no-probe", "--no-progress"]))
    cfg = CFG
    if mode == "kill-in-finalize":
        from orbax.checkpoint._src.path import atomicity

        original = atomicity.AtomicRenameTemporaryPath.finalize

        async def finalize(self, *args, **kwargs):
            if self._final_path.name == arg and Path(self._final_path).parent.parent == Path(out).absolute():
                os.kill(os.getpid(), signal.SIGKILL)
            return await original(self, *args, **kwargs)

        atomicity.AtomicRenameTemporaryPath.finalize = finalize
    elif mode == "slow":
        cfg = dataclasses.replace(CFG, ckpt_every=1)
        batches = data.train_batches

        def slow_batches(*args, **kwargs):
            for batch in batches(*args, **kwargs):
                time.sleep(0.1)
                yield batch

        data.train_batches = slow_batches  # the loop draws its batches through this module attribute
    elif mode != "reference":
        raise SystemExit(f"unknown mode {mode!r}")
    train.train(cfg, out, progress=False, probes=False)


if __name__ == "__main__":
    _main(*sys.argv[1:])
