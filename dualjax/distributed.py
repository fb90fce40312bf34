"""Multi-device and multi-host helpers: ``jax.distributed`` start-up, meshes, shardings, batches.

One code path for 1 CPU, 8 simulated CPU devices, a GPU, and many hosts (JAX SPMD):

* :func:`initialize` starts ``jax.distributed`` when the job has several processes: explicit
  ``coordinator`` / ``num_processes`` / ``process_id`` (or the ``JAX_COORDINATOR_ADDRESS``,
  ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID`` environment variables), else SLURM (``srun``) or a
  Cloud TPU pod detected from the environment, else nothing (one process). Call it first,
  before anything touches a JAX device.
* :func:`data_mesh` is a 1-D mesh ``('data',)`` over all devices of all processes (axis type
  ``Auto``, so ``jit`` propagates shardings).
* Data parallelism: parameters :func:`replicated`, batch sharded on its leading axis
  (:func:`shard_batch`; each process passes its own slice of the global batch).
* FSDP-style parameter sharding: :func:`fsdp_shardings` shards the largest axis divisible by
  the number of devices of every parameter with at least ``min_size`` elements, and replicates
  the rest (biases, norms, scalars). Optimizer moments have the shapes of the parameters and
  get the same rule when it is applied to the whole train state.
* :func:`place` puts a host pytree (the same values on every process) onto given shardings.

Under ``jit`` with these input shardings XLA inserts the all-reduce (data parallel) or the
all-gather / reduce-scatter pairs (FSDP); the maths is that of the single-device step.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from dualjax import checks
from dualjax.typing import PyTree

DATA = "data"


@dataclass(frozen=True)
class ProcessInfo:
    """Where this process stands in the job."""

    process_id: int
    num_processes: int
    local_devices: int
    global_devices: int
    launcher: str  # "single", "explicit", "slurm", "tpu", "env"


def detect_launcher(environ: dict | None = None) -> str | None:
    """``"slurm"`` / ``"tpu"`` if the environment is a multi-process SLURM step or Cloud TPU pod.

    SLURM: ``SLURM_JOB_ID``, ``SLURM_STEP_NODELIST``, ``SLURM_NTASKS`` (> 1), ``SLURM_PROCID``
    and ``SLURM_LOCALID`` are set, i.e. the program was started by ``srun`` with several tasks.
    TPU pod: ``TPU_WORKER_HOSTNAMES`` lists more than one worker (set on multi-host TPU VMs).
    Otherwise ``None``.
    """
    env = os.environ if environ is None else environ
    slurm = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")
    if all(k in env for k in slurm) and int(env["SLURM_NTASKS"]) > 1:
        return "slurm"
    hosts = [h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h.strip()]
    if len(hosts) > 1:
        return "tpu"
    return None


_ADDRESS = re.compile(r"^\[?[A-Za-z0-9_.:-]+\]?:\d{1,5}$")


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids: Sequence[int] | None = None,
    timeout_s: int = 300,
) -> ProcessInfo:
    """Start ``jax.distributed`` for a multi-process job (no-op for a single process).

    Precedence: explicit arguments; then ``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` /
    ``JAX_PROCESS_ID``; then SLURM / TPU-pod auto-detection (:func:`detect_launcher`, JAX reads
    the coordinator and ranks from the environment); else one process. ``coordinator`` is
    ``host:port`` of process 0, reachable from every process. Idempotent. On CPU, cross-process
    collectives use gloo. Must run before the first JAX computation.
    """
    if jax.distributed.is_initialized():
        return process_info("explicit")
    env = os.environ
    coordinator = coordinator or env.get("JAX_COORDINATOR_ADDRESS")
    if num_processes is None and env.get("JAX_NUM_PROCESSES"):
        num_processes = int(env["JAX_NUM_PROCESSES"])
    if process_id is None and env.get("JAX_PROCESS_ID"):
        process_id = int(env["JAX_PROCESS_ID"])
    launcher = detect_launcher()
    explicit = coordinator is not None or num_processes is not None or process_id is not None

    if explicit:
        if coordinator is None or num_processes is None or process_id is None:
            raise ValueError(
                "a multi-process job needs coordinator, num_processes and process_id together; got "
                f"coordinator={coordinator!r}, num_processes={num_processes!r}, process_id={process_id!r}"
            )
        if not _ADDRESS.match(coordinator):
            raise ValueError(f"coordinator must be 'host:port', got {coordinator!r}")
        checks.check_positive_int(num_processes, "num_processes")
        if isinstance(process_id, bool) or not isinstance(process_id, (int, np.integer)) or not (
            0 <= process_id < num_processes
        ):
            raise ValueError(f"process_id must be an integer in [0, {num_processes}), got {process_id!r}")
        if num_processes == 1:
            return process_info("single")
        _use_gloo()
        jax.distributed.initialize(
            coordinator_address=coordinator,
            num_processes=int(num_processes),
            process_id=int(process_id),
            local_device_ids=local_device_ids,
            initialization_timeout=timeout_s,
        )
        return process_info("env" if coordinator == env.get("JAX_COORDINATOR_ADDRESS") else "explicit")
    if launcher is not None:
        _use_gloo()
        jax.distributed.initialize(local_device_ids=local_device_ids, initialization_timeout=timeout_s)
        return process_info(launcher)
    return process_info("single")


def _use_gloo() -> None:
    # CPU devices of different processes talk through gloo (JAX's default today, set
    # explicitly so a changed default cannot turn collectives into errors).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")


def process_info(launcher: str = "single") -> ProcessInfo:
    return ProcessInfo(
        process_id=jax.process_index(),
        num_processes=jax.process_count(),
        local_devices=jax.local_device_count(),
        global_devices=jax.device_count(),
        launcher=launcher,
    )


# --------------------------------------------------------------------------- meshes and shardings

def data_mesh(devices: Sequence[jax.Device] | None = None, axis: str = DATA) -> Mesh:
    """A 1-D mesh named ``axis`` over ``devices`` (default: every device of every process)."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("data_mesh needs at least one device")
    return Mesh(np.asarray(devices), (axis,), axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array."""
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, axis: str = DATA) -> NamedSharding:
    """Leading (batch) axis split over ``axis``; the other axes whole."""
    return NamedSharding(mesh, P(axis))


def fsdp_spec(shape: Sequence[int], num_shards: int, *, axis: str = DATA, min_size: int = 2**14,
              whole_leading: int = 0) -> P:
    """Partition spec of one parameter: shard its largest axis divisible by ``num_shards``.

    Arrays with fewer than ``min_size`` elements, or with no divisible axis, are replicated
    (``P()``). Ties between equally long axes go to the leading one. The first ``whole_leading``
    axes are never split (a stack of per-layer parameters keeps its layer axis whole, so a scan
    over the layers does not gather every slice from every device).
    """
    shape = tuple(int(d) for d in shape)
    if num_shards <= 1 or int(np.prod(shape, dtype=np.int64)) < min_size:
        return P()
    candidates = [(d, -i) for i, d in enumerate(shape)
                  if i >= whole_leading and d % num_shards == 0 and d >= num_shards]
    if not candidates:
        return P()
    _, neg = max(candidates)
    spec = [None] * len(shape)
    spec[-neg] = axis
    return P(*spec)


def fsdp_shardings(tree: PyTree, mesh: Mesh, *, axis: str = DATA, min_size: int = 2**14,
                   whole_leading: Callable[[tuple], int] | None = None) -> PyTree:
    """A :class:`NamedSharding` for every leaf of ``tree`` by :func:`fsdp_spec` (arrays or
    ``ShapeDtypeStruct``; scalars and small leaves replicated). ``whole_leading(path)`` (a
    ``jax.tree_util`` key path) gives the leaf's leading axes never to split (default none)."""
    if axis not in mesh.axis_names:
        raise ValueError(f"mesh has no axis {axis!r}; its axes are {mesh.axis_names}")
    if isinstance(min_size, bool) or not isinstance(min_size, (int, np.integer)) or min_size < 0:
        raise ValueError(f"min_size must be a non-negative integer, got {min_size!r}")
    n = mesh.shape[axis]
    return jax.tree_util.tree_map_with_path(
        lambda path, leaf: NamedSharding(mesh, fsdp_spec(
            np.shape(leaf), n, axis=axis, min_size=min_size,
            whole_leading=whole_leading(path) if whole_leading else 0)), tree
    )


def replicated_shardings(tree: PyTree, mesh: Mesh) -> PyTree:
    """:func:`replicated` for every leaf of ``tree`` (data parallelism)."""
    return jax.tree_util.tree_map(lambda _: replicated(mesh), tree)


def place(tree: PyTree, shardings: PyTree) -> PyTree:
    """Global arrays from a host pytree that every process holds in full (e.g. the initial
    parameters, made from the same seed everywhere), laid out as ``shardings``."""

    def put(leaf, sharding):
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree_util.tree_map(put, tree, shardings)


def shard_batch(batch: PyTree, mesh: Mesh, axis: str = DATA) -> PyTree:
    """Global arrays, leading axis sharded over ``axis``, from this process's slice of the batch.

    Each process passes its own ``local`` rows (global batch = concatenation over processes in
    process order); in a single process the local batch is the global batch. The local leading
    size must be divisible by the number of this process's devices on ``axis``.
    """
    sharding = batch_sharding(mesh, axis)
    local_shards = len({d for d in mesh.devices.flat if d.process_index == jax.process_index()})

    def put(leaf):
        host = np.asarray(leaf)
        if host.ndim == 0 or host.shape[0] % local_shards:
            raise ValueError(
                f"local batch leading size must be divisible by the {local_shards} local devices on axis "
                f"{axis!r}, got shape {host.shape}"
            )
        return jax.make_array_from_process_local_data(sharding, host)

    return jax.tree_util.tree_map(put, batch)
