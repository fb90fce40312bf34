"""Checkpoints and exact resume: save -> SIGKILL (also in the middle of a save) -> resume gives
the metrics of an uninterrupted run, step for step.

The demo run (linear model, EMA rule with a momentum schedule, Adam with warmup + cosine
learning rate, one fresh sample batch per step) is this file's ``__main__``, so the killed runs
are real separate processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

NUM_STEPS = 40
SAVE_EVERY = 5
KEEP = 2


def build():
    """``(step_fn, init_state, batch_fn)`` of the demo run; deterministic."""
    import jax
    import jax.numpy as jnp
    import optax

    from dualjax import rules
    from dualjax.linear import model

    obj = model.sample_objective(0.01)
    # step-dependent schedules (EMA momentum, learning rate) must resume at the right step
    momentum = rules.linear_momentum(0.9, 1.0, NUM_STEPS)
    lr = optax.warmup_cosine_decay_schedule(0.0, 3e-2, 5, NUM_STEPS)
    init, step = rules.make_step(obj.F, rules.ema(momentum), optax.adam(lr))
    A, B = model.init_params(jax.random.PRNGKey(0), 4, 2, dtype=jnp.float32)
    state = {"train": init(A, B), "step": jnp.zeros((), jnp.int32)}

    @jax.jit
    def step_fn(state, batch):
        train, metrics = step(state["train"], batch)
        metrics = {**metrics, "lr": lr(state["step"]), "momentum": momentum(state["train"].teacher.count)}
        return {"train": train, "step": state["step"] + 1}, metrics

    @jax.jit
    def _batch(t):
        kx, kn = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(1), t))
        x = jax.random.normal(kx, (32, 2))
        return x, x + 0.3 * jax.random.normal(kn, (32, 2))

    return step_fn, state, lambda t: _batch(t)


def run(directory, **kw):
    from dualjax.checkpoint import resumable_loop

    step_fn, state, batch_fn = build()
    return resumable_loop(
        step_fn, state, batch_fn, num_steps=NUM_STEPS, directory=directory, save_every=SAVE_EVERY, keep=KEEP, **kw
    )


def _child_env():
    env = dict(os.environ)
    env.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    env.setdefault("NPROC", "16")
    env.pop("JAX_ENABLE_X64", None)
    return env


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """metrics.jsonl of an uninterrupted run."""
    directory = tmp_path_factory.mktemp("uninterrupted")
    result = run(directory)
    assert not result.restored and result.start_step == 0
    lines = _lines(directory / "metrics.jsonl")
    assert [json.loads(line)["step"] for line in lines] == list(range(1, NUM_STEPS + 1))
    return lines


@pytest.mark.float32
def test_sigkill_during_save_then_resume_matches_uninterrupted(tmp_path, reference):
    # The child SIGKILLs itself inside orbax's finalize of step 15: every file of that step is
    # written to the tmp directory but the atomic rename has not happened.
    proc = subprocess.run(
        [sys.executable, __file__, str(tmp_path), "kill-in-finalize", "15"],
        env=_child_env(), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    ckpt = tmp_path / "ckpt"
    leftovers = [p.name for p in ckpt.iterdir() if ".orbax-checkpoint-tmp" in p.name]
    assert leftovers and all(p.startswith("15.") for p in leftovers), sorted(os.listdir(ckpt))
    assert sorted(p.name for p in ckpt.iterdir() if p.name.isdigit()) == ["10", "5"]
    written = _lines(tmp_path / "metrics.jsonl")
    assert len(written) >= 15  # metrics beyond the last complete checkpoint were written

    from dualjax.checkpoint import Checkpointer

    with Checkpointer(ckpt) as c:  # a fresh manager removes the torn save
        assert c.latest_step() == 10
    assert not [p for p in ckpt.iterdir() if ".orbax-checkpoint-tmp" in p.name]

    result = run(tmp_path)
    assert result.restored and result.start_step == 10
    assert _lines(tmp_path / "metrics.jsonl") == reference


@pytest.mark.float32
def test_external_sigkill_at_an_arbitrary_moment_then_resume(tmp_path, reference):
    # Saves every step (async) and a slow-ish loop, killed from outside once 12 lines exist:
    # the kill lands wherever it lands, often during a save.
    proc = subprocess.Popen(
        [sys.executable, __file__, str(tmp_path), "slow"], env=_child_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    metrics = tmp_path / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists() and metrics.read_text().count("\n") >= 12:
            break
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    from dualjax.checkpoint import resumable_loop

    step_fn, state, batch_fn = build()
    result = resumable_loop(step_fn, state, batch_fn, num_steps=NUM_STEPS, directory=tmp_path, save_every=10, keep=KEEP)
    assert result.restored and 1 <= result.start_step < NUM_STEPS
    assert _lines(metrics) == reference


@pytest.mark.float32
def test_checkpointer_roundtrip_keep_last_and_extras(tmp_path):
    import jax
    import jax.numpy as jnp

    from dualjax.checkpoint import Checkpointer

    _, state, _ = build()
    state = jax.tree_util.tree_map(lambda x: x + 1 if x.dtype == jnp.int32 else x * 2.0, state)
    with Checkpointer(tmp_path, keep=2) as c:
        for s in (3, 6, 9):
            assert c.save(s, state, {"data": {"next_index": s}})
        c.wait()
        assert not c.save(9, state)  # an existing step is never overwritten
        assert c.all_steps() == [6, 9] and c.latest_step() == 9
        restored, extras = c.restore(build()[1])
        assert extras == {"data": {"next_index": 9}}
        same = jax.tree_util.tree_map(lambda a, b: bool(np.array_equal(a, b)), restored, state)
        assert all(jax.tree_util.tree_leaves(same))
        with pytest.raises(FileNotFoundError, match="step 3"):
            c.restore(state, step=3)
        with pytest.raises(ValueError, match="JSON"):
            c.save(12, state, {"bad": object()})
        with pytest.raises(ValueError, match="-1"):
            c.save(-1, state)


def test_restore_latest_falls_back_past_a_damaged_step(tmp_path):
    import shutil

    import jax.numpy as jnp

    from dualjax.checkpoint import Checkpointer

    state = {"w": jnp.arange(3.0)}
    with Checkpointer(tmp_path, keep=3) as c:
        c.save(1, state)
        c.save(2, {"w": jnp.arange(3.0) + 1})
    shutil.rmtree(tmp_path / "2" / "state")  # e.g. half-deleted; the commit marker survives
    with Checkpointer(tmp_path, keep=3) as c:
        assert c.latest_step() == 2
        step, restored, _ = c.restore_latest(state)
    assert step == 1 and np.array_equal(restored["w"], np.arange(3.0))
    with Checkpointer(tmp_path, keep=3) as c:  # a wrong target is an error, not a fresh start
        with pytest.raises(RuntimeError, match=r"none of the committed checkpoints \[1, 2\]"):
            c.restore_latest({"w": jnp.zeros(3), "extra": jnp.zeros(2)})
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        Checkpointer(tmp_path / "empty").restore(state)


def test_metrics_writer_drops_lines_beyond_step_and_torn_line(tmp_path):
    from dualjax.checkpoint import MetricsWriter

    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "F": s / 3}) + "\n" for s in range(1, 8)) + '{"step": 8, "F"')
    assert MetricsWriter(path).truncate(5) == 5
    assert [json.loads(l)["step"] for l in _lines(path)] == [1, 2, 3, 4, 5]
    path.write_text(path.read_text() + '{"step": 6, "F')
    assert MetricsWriter(path).truncate(9) == 5


def _main(argv):
    directory, mode = argv[0], argv[1]
    if mode == "kill-in-finalize":
        from orbax.checkpoint._src.path import atomicity

        kill_step = argv[2]
        original = atomicity.AtomicRenameTemporaryPath.finalize

        async def finalize(self, *args, **kwargs):
            if self._final_path.name == kill_step:
                os.kill(os.getpid(), signal.SIGKILL)
            return await original(self, *args, **kwargs)

        atomicity.AtomicRenameTemporaryPath.finalize = finalize
        run(directory)
    elif mode == "slow":
        from dualjax.checkpoint import resumable_loop

        step_fn, state, batch_fn = build()

        def slow_step(state, batch):
            time.sleep(0.02)
            return step_fn(state, batch)

        resumable_loop(slow_step, state, batch_fn, num_steps=NUM_STEPS, directory=directory, save_every=1, keep=KEEP)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    _main(sys.argv[1:])
