"""A V-JEPA set-up laid out on devices: a 1-D ``'data'`` mesh, the state replicated (data
parallel) or split (FSDP), batches sharded on their leading axis (docs/scale.md).

Under these shardings XLA adds the gradient all-reduce (dp) or the all-gather / reduce-scatter
pairs (fsdp); the mathematics is the single-device step of :mod:`dualjax.vjepa.step`.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import numpy as np

from dualjax import distributed as dist
from dualjax.typing import PyTree
from dualjax.vjepa import config as config_lib
from dualjax.vjepa import vit
from dualjax.vjepa.step import Setup, TrainState, device_batch


class Parallel(NamedTuple):
    """A set-up laid out on a mesh: state shardings and the jitted, sharded functions.

    ``init()`` -> the initial state, already sharded; ``step(state, batch)`` the donated, jitted
    ``train_step`` (state keeps its shardings, metrics replicated); ``energy(θ, ψ, batch)``;
    ``put_batch(host_batch)`` -> the device batch with its leading axis sharded on ``'data'``
    (each process passes the full global batch and keeps its own rows).
    """

    mesh: jax.sharding.Mesh
    state_sharding: TrainState
    init: Callable[[], TrainState]
    step: Callable[[TrainState, dict], tuple[TrainState, dict]]
    energy: Callable[[PyTree, PyTree, dict], jax.Array]
    put_batch: Callable[[dict], dict]


def make_mesh(cfg: config_lib.Config) -> jax.sharding.Mesh:
    """The 1-D ``'data'`` mesh over all devices (of all processes), or the first ``num_devices``.

    Raises ValueError if the batch does not split evenly over the mesh."""
    devices = jax.devices()
    if cfg.num_devices:
        if jax.process_count() > 1:
            raise ValueError(f"num_devices={cfg.num_devices} is for one process; multi-host jobs use every device")
        if cfg.num_devices > len(devices):
            raise ValueError(f"num_devices={cfg.num_devices} but only {len(devices)} devices are visible")
        devices = devices[:cfg.num_devices]
    if cfg.batch_size % len(devices):
        raise ValueError(f"batch_size={cfg.batch_size} is not divisible by the {len(devices)} devices of the mesh "
                         "(set batch_size or num_devices)")
    return dist.data_mesh(devices)


def state_shardings(setup: Setup, mesh: jax.sharding.Mesh) -> TrainState:
    """Data parallel (``sharding="dp"``): every leaf replicated. FSDP (``"fsdp"``): leaves with at
    least ``fsdp_min_size`` elements split along their largest axis divisible by the mesh size —
    parameters, EMA teacher and Adam moments alike (:func:`dualjax.distributed.fsdp_shardings`) —
    except the depth axis of the stacked blocks (under :data:`~dualjax.vjepa.vit.STACK_KEY`): the
    blocks' scan takes one layer per iteration, which a split depth axis would make an all-gather
    of that layer from every device in every iteration."""
    abstract = jax.eval_shape(setup.init)
    if setup.cfg.sharding == "fsdp":
        return dist.fsdp_shardings(abstract, mesh, min_size=setup.cfg.fsdp_min_size,
                                   whole_leading=lambda path: int(vit.is_stacked(path)))
    return dist.replicated_shardings(abstract, mesh)


def compiler_options(cfg: config_lib.Config, devices) -> dict | None:
    """XLA compiler options of ``cfg.codegen`` (:data:`~dualjax.vjepa.config.CODEGEN`) for
    ``devices`` (an iterable of devices, e.g. ``mesh.devices.flat``) that are all CPUs; ``None``
    (XLA's defaults) on any other platform."""
    if all(d.platform == "cpu" for d in devices):
        return config_lib.CODEGEN[cfg.codegen]
    return None



def make_parallel(setup: Setup, mesh: jax.sharding.Mesh | None = None) -> Parallel:
    """:class:`Parallel` of ``setup`` on ``mesh`` (default: :func:`make_mesh`)."""
    mesh = make_mesh(setup.cfg) if mesh is None else mesh
    sharding = state_shardings(setup, mesh)
    repl = dist.replicated(mesh)
    opts = compiler_options(setup.cfg, mesh.devices.flat)
    init = jax.jit(setup.init, out_shardings=sharding, compiler_options=opts)
    step = jax.jit(setup.train_step, out_shardings=(sharding, repl), donate_argnums=0, compiler_options=opts)
    energy = jax.jit(setup.energy, out_shardings=repl, compiler_options=opts)
    nproc, pid = jax.process_count(), jax.process_index()

    def put_batch(batch: dict) -> dict:
        batch = device_batch(batch)
        if nproc > 1:  # this process's rows of the global batch
            rows = setup.cfg.batch_size // nproc
            batch = jax.tree.map(lambda a: np.asarray(a)[pid * rows:(pid + 1) * rows], batch)
        return dist.shard_batch(batch, mesh)

    return Parallel(mesh, sharding, init, step, energy, put_batch)
