"""The checkpointer: round trip, keep-last-k, extras, fallback past a damaged step, the read-only
listing of committed steps, and the metrics writer's truncation. Save -> SIGKILL (in the middle
of a save, and at an arbitrary moment) -> resume is tested through the trainer's own path in
tests/vjepa/test_scale.py."""

from __future__ import annotations

import json

import numpy as np
import pytest


def _state():
    """A small train-state-like pytree: float leaves of two shapes and an int32 counter."""
    import jax.numpy as jnp

    return {"params": {"w": jnp.arange(6.0, dtype=jnp.float32).reshape(2, 3), "b": jnp.ones(3, jnp.float32)},
            "step": jnp.zeros((), jnp.int32)}


def _lines(path) -> list[str]:
    return path.read_text().splitlines()


@pytest.mark.float32
def test_checkpointer_roundtrip_keep_last_and_extras(tmp_path):
    import jax
    import jax.numpy as jnp

    from dualjax.checkpoint import Checkpointer

    state = jax.tree_util.tree_map(lambda x: x + 1 if x.dtype == jnp.int32 else x * 2.0, _state())
    with Checkpointer(tmp_path, keep=2) as c:
        for s in (3, 6, 9):
            assert c.save(s, state, {"data": {"next_index": s}})
        c.wait()
        assert not c.save(9, state)  # an existing step is never overwritten
        assert c.all_steps() == [6, 9] and c.latest_step() == 9
        restored, extras = c.restore(_state())
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

    from dualjax.checkpoint import CheckpointError, Checkpointer, set_aside_steps

    state = {"w": jnp.arange(3.0)}
    with Checkpointer(tmp_path, keep=3) as c:
        c.save(1, state)
        c.save(2, {"w": jnp.arange(3.0) + 1})
    shutil.rmtree(tmp_path / "2" / "state")  # e.g. half-deleted; the commit marker survives
    with Checkpointer(tmp_path, keep=3) as c:
        assert c.latest_step() == 2
        step, restored, _ = c.restore_latest(state)
        # the unreadable step is set aside (renamed, not deleted), so step 2 can be written again
        assert c.all_steps() == [1] and set_aside_steps(tmp_path) == ["2.corrupt-1"]
        assert c.save(2, {"w": jnp.arange(3.0) + 2})
    assert step == 1 and np.array_equal(restored["w"], np.arange(3.0))
    with Checkpointer(tmp_path, keep=3) as c:
        assert c.all_steps() == [1, 2] and np.array_equal(c.restore(state, 2)[0]["w"], np.arange(3.0) + 2)
    with Checkpointer(tmp_path, keep=3) as c:  # a wrong target is an error naming the mismatch, not a fresh start
        with pytest.raises(CheckpointError, match=r"checkpoint 2 in .* does not match the run.s config"):
            c.restore_latest({"w": jnp.zeros(3), "extra": jnp.zeros(2)})
        assert c.all_steps() == [1, 2]  # nothing set aside when no step restores
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


def test_committed_steps_lists_only_committed_saves(tmp_path):
    import jax.numpy as jnp

    from dualjax.checkpoint import Checkpointer, committed_steps, is_committed

    assert committed_steps(tmp_path / "none") == []
    with Checkpointer(tmp_path, keep=5) as c:
        for s in (2, 4):
            c.save(s, {"w": jnp.full(3, float(s))})
    # what a kill leaves behind: a save without its commit marker, and a torn tmp directory
    (tmp_path / "6").mkdir()
    (tmp_path / "8.orbax-checkpoint-tmp-1").mkdir()
    assert committed_steps(tmp_path) == [2, 4]
    assert is_committed(tmp_path / "4") and not is_committed(tmp_path / "6")
    assert (tmp_path / "8.orbax-checkpoint-tmp-1").is_dir()  # the read-only listing removes nothing
    with Checkpointer(tmp_path, keep=5) as c:  # a checkpointer removes the torn save on start
        assert c.latest_step() == 4
    assert not (tmp_path / "8.orbax-checkpoint-tmp-1").exists()
