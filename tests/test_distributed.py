"""Sharded training equals single-device training: data parallel and FSDP on 8 simulated CPU
devices, and a two-process ``jax.distributed`` job over loopback.

The per-process program of the two-process job is this file's ``__main__``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

STEPS = 3
BATCH = 64


def problem():
    """A small Siamese MLP (EMA rule, Adam): ``(init_state, step, batch_fn)``; host numpy init."""
    import jax
    import jax.numpy as jnp
    import optax

    from dualjax import rules
    from dualjax.objectives import siamese

    def encode(theta, x):
        return jnp.tanh(x @ theta["w1"] + theta["b1"]) @ theta["w2"]

    def predict(psi, z):
        return z @ psi["wp"]

    obj = siamese(encode, predict, loss="half_squared", lam=1e-3)
    init, step = rules.make_step(obj.F, rules.ema(0.9), optax.adam(1e-2))
    rng = np.random.default_rng(0)
    theta = {
        "w1": rng.normal(size=(8, 32)) / np.sqrt(8),
        "b1": np.zeros(32),
        "w2": rng.normal(size=(32, 16)) / np.sqrt(32),
    }
    psi = {"wp": np.eye(16) + 0.1 * rng.normal(size=(16, 16))}
    state = jax.device_get(init(*jax.tree_util.tree_map(jnp.asarray, (theta, psi))))

    def batch_fn(t):
        r = np.random.default_rng(100 + t)
        x = r.normal(size=(BATCH, 8))
        return x, x + 0.3 * r.normal(size=(BATCH, 8))

    return state, step, batch_fn


def reference_run():
    """Parameters and F after STEPS steps on one device."""
    import jax

    state, step, batch_fn = problem()
    step = jax.jit(step)
    losses = []
    for t in range(STEPS):
        state, metrics = step(state, batch_fn(t))
        losses.append(float(metrics["F"]))
    return jax.device_get(state), losses


def sharded_run(state_shardings_fn):
    import jax

    from dualjax import distributed as dist

    state, step, batch_fn = problem()
    mesh = dist.data_mesh()
    shardings = state_shardings_fn(state, mesh)
    state = dist.place(state, shardings)
    step = jax.jit(step, out_shardings=(shardings, None))
    losses = []
    for t in range(STEPS):
        x, y = batch_fn(t)
        lo, hi = _local_rows(BATCH)
        state, metrics = step(state, dist.shard_batch((x[lo:hi], y[lo:hi]), mesh))
        losses.append(float(metrics["F"]))
    return state, losses


def _local_rows(n):
    import jax

    per = n // jax.process_count()
    return jax.process_index() * per, (jax.process_index() + 1) * per


def _assert_close(got, want):
    import jax

    leaves_got, tree_got = jax.tree_util.tree_flatten(got)
    leaves_want, tree_want = jax.tree_util.tree_flatten(want)
    assert tree_got == tree_want
    for g, w in zip(leaves_got, leaves_want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-10, atol=1e-12)


def test_data_parallel_and_fsdp_match_single_device():
    import jax
    from jax.sharding import PartitionSpec as P

    from dualjax import distributed as dist

    assert jax.device_count() == 8
    want_state, want_losses = reference_run()

    got, losses = sharded_run(lambda s, mesh: dist.replicated_shardings(s, mesh))
    np.testing.assert_allclose(losses, want_losses, rtol=1e-12)
    _assert_close(jax.device_get(got), want_state)
    assert got.theta["w1"].sharding.spec == P()

    got, losses = sharded_run(lambda s, mesh: dist.fsdp_shardings(s, mesh, min_size=64))
    np.testing.assert_allclose(losses, want_losses, rtol=1e-12)
    _assert_close(jax.device_get(got), want_state)
    # the parameters, the EMA teacher and Adam's moments really are split over the 8 devices
    assert got.theta["w1"].sharding.spec == P(None, "data")
    assert got.theta["w2"].sharding.spec == P("data", None)
    assert got.teacher.xi["w2"].sharding.spec == P("data", None)
    assert got.theta["b1"].sharding.spec == P()
    mu = got.opt_state[0].mu
    assert mu[1]["wp"].sharding.spec == P("data", None)
    assert len(got.theta["w2"].addressable_shards) == 8
    assert got.theta["w2"].addressable_shards[0].data.shape == (4, 16)


def test_fsdp_spec_rule_and_errors():
    import jax

    from dualjax import distributed as dist

    P = jax.sharding.PartitionSpec
    assert dist.fsdp_spec((768, 3072), 8) == P(None, "data")
    assert dist.fsdp_spec((3072, 768), 8) == P("data", None)
    assert dist.fsdp_spec((768,), 8) == P()  # small: replicated
    assert dist.fsdp_spec((2, 16, 16, 3, 769), 8, min_size=0) == P(None, "data", None, None, None)
    assert dist.fsdp_spec((7, 9), 8, min_size=0) == P()  # nothing divisible
    assert dist.fsdp_spec((), 8, min_size=0) == P()
    # a stack of 16 layers of (8, 8): the layer axis is the longest but kept whole when asked
    assert dist.fsdp_spec((16, 8, 8), 8, min_size=0) == P("data", None, None)
    assert dist.fsdp_spec((16, 8, 8), 8, min_size=0, whole_leading=1) == P(None, "data", None)
    assert dist.fsdp_spec((16, 4, 4), 8, min_size=0, whole_leading=1) == P()  # nothing else divisible
    mesh = dist.data_mesh()
    tree = {"blocks": {"w": jax.ShapeDtypeStruct((16, 8, 8), np.float32)}, "w": jax.ShapeDtypeStruct((16, 8, 8), np.float32)}
    got = dist.fsdp_shardings(tree, mesh, min_size=0,
                              whole_leading=lambda path: int(any(getattr(k, "key", None) == "blocks" for k in path)))
    assert got["blocks"]["w"].spec == P(None, "data", None) and got["w"].spec == P("data", None, None)
    with pytest.raises(ValueError, match="'model'"):
        dist.fsdp_shardings({"w": np.zeros(4)}, mesh, axis="model")
    with pytest.raises(ValueError, match=r"\(3, 2\)"):
        dist.shard_batch(np.zeros((3, 2)), mesh)


def test_initialize_single_process_and_bad_flags(monkeypatch):
    from dualjax import distributed as dist

    for var in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "TPU_WORKER_HOSTNAMES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    info = dist.initialize()
    assert (info.process_id, info.num_processes, info.launcher) == (0, 1, "single")
    assert info.global_devices == 8
    with pytest.raises(ValueError, match="num_processes=None"):
        dist.initialize(coordinator="127.0.0.1:1234")
    with pytest.raises(ValueError, match="'localhost'"):
        dist.initialize(coordinator="localhost", num_processes=2, process_id=0)
    with pytest.raises(ValueError, match="process_id must be an integer in \\[0, 2\\), got 2"):
        dist.initialize(coordinator="127.0.0.1:1234", num_processes=2, process_id=2)


def test_detect_launcher():
    from dualjax.distributed import detect_launcher

    slurm = {"SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "n[1-2]", "SLURM_NTASKS": "2", "SLURM_PROCID": "1",
             "SLURM_LOCALID": "0"}
    assert detect_launcher(slurm) == "slurm"
    assert detect_launcher({**slurm, "SLURM_NTASKS": "1"}) is None  # one task: nothing to coordinate
    assert detect_launcher({"SLURM_JOB_ID": "7"}) is None  # sbatch shell without srun
    assert detect_launcher({"TPU_WORKER_HOSTNAMES": "10.0.0.1,10.0.0.2"}) == "tpu"
    assert detect_launcher({"TPU_WORKER_HOSTNAMES": "localhost"}) is None
    assert detect_launcher({}) is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_job_over_loopback_agrees_with_one_process():
    import jax

    want_state, want_losses = reference_run()
    port = _free_port()
    env = dict(os.environ)
    flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "--xla_force_host_platform_device_count=2",
                   env.get("XLA_FLAGS", "--xla_force_host_platform_device_count=2"))  # conftest's other flags kept
    env.update(XLA_FLAGS=flags, NPROC="4", JAX_PLATFORMS="cpu")
    for var in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        env.pop(var, None)
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, f"127.0.0.1:{port}", "2", str(pid)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for pid in range(2)
    ]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=90)
            assert p.returncode == 0, err[-4000:]
            outs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for pid, out in enumerate(outs):
        assert (out["process_id"], out["num_processes"], out["global_devices"]) == (pid, 2, 4)
        np.testing.assert_allclose(out["losses"], want_losses, rtol=1e-12)
        want = jax.tree_util.tree_map(np.asarray, (want_state.theta, want_state.psi, want_state.teacher.xi))
        got = jax.tree_util.tree_map(np.asarray, tuple(out["params"]), is_leaf=lambda x: isinstance(x, list))
        _assert_close(got, want)
    assert outs[0]["params"] == outs[1]["params"]  # both processes hold identical parameters


def _child(coordinator: str, num_processes: int, process_id: int) -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    from dualjax import distributed as dist

    info = dist.initialize(coordinator, num_processes, process_id)
    state, losses = sharded_run(lambda s, mesh: dist.replicated_shardings(s, mesh))
    # replicated: this process's first shard is the whole array
    local = jax.tree_util.tree_map(
        lambda a: np.asarray(a.addressable_data(0)).tolist(), (state.theta, state.psi, state.teacher.xi)
    )
    print(json.dumps({"process_id": info.process_id, "num_processes": info.num_processes,
                      "global_devices": info.global_devices, "losses": losses, "params": local}))
    jax.distributed.shutdown()


if __name__ == "__main__":
    _child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
