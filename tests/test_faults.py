"""Non-finite checks: named message with the step; a planted NaN stops the resumable loop and
leaves the last good checkpoint restorable."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dualjax import faults


def test_names_every_nonfinite_leaf_by_path():
    tree = {
        "F": jnp.asarray(1.0),
        "grad_norm": jnp.asarray(jnp.inf),
        "params": {"w": jnp.ones(3).at[1].set(jnp.nan), "b": np.zeros(2)},
        "count": 3,  # integers are never non-finite
    }
    assert faults.nonfinite_names(tree) == ["grad_norm", "params.w"]
    assert faults.nonfinite_names(tree, "metrics") == ["metrics.grad_norm", "metrics.params.w"]
    with pytest.raises(faults.NonFiniteError, match=r"^non-finite grad_norm, params\.w at step 17$") as info:
        faults.check_finite(tree, step=17)
    assert info.value.step == 17 and info.value.names == ["grad_norm", "params.w"]
    faults.check_finite({"F": 1.0, "x": np.ones(4)}, step=1)  # finite: no error


def test_all_finite_inside_jit():
    f = jax.jit(faults.all_finite)
    assert bool(f({"a": jnp.ones(2), "n": jnp.arange(3)}))
    assert not bool(f({"a": jnp.ones(2).at[0].set(-jnp.inf)}))


@pytest.mark.float32
def test_planted_nan_stops_loop_and_keeps_last_good_checkpoint(tmp_path):
    import optax

    from dualjax import rules
    from dualjax.checkpoint import Checkpointer, resumable_loop
    from dualjax.linear import model

    obj = model.sample_objective(0.01)
    init, step = rules.make_step(obj.F, rules.ema(0.9), optax.adam(1e-2))
    state = init(*model.init_params(jax.random.PRNGKey(0), 4, 2, dtype=jnp.float32))
    step_fn = jax.jit(step)

    def batch_fn(t):
        x = jax.random.normal(jax.random.PRNGKey(t), (16, 2))
        if t == 6:  # the update producing step 7 sees a NaN sample
            x = x.at[3, 0].set(jnp.nan)
        return x, 0.5 * x

    with pytest.raises(faults.NonFiniteError, match=r"non-finite F, .*grad_norm at step 7$"):
        resumable_loop(step_fn, state, batch_fn, num_steps=20, directory=tmp_path, save_every=3)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3, 4, 5, 6]  # the bad step is not logged
    with Checkpointer(tmp_path / "ckpt") as c:
        assert c.latest_step() == 6
        restored, extras = c.restore(state)
    assert extras["step"] == 6
    faults.check_finite(restored, step=6)
    assert int(restored.teacher.count) == 6
