"""The host pool: the slots in one NumPy matrix on the host, stepped by the compiled CPU kernel.

Sampling, initialization and classification are the jitted JAX functions of the ``fast`` engine
(:func:`packed_functions`), so trials and verdicts come from the same code as the XLA pool; the
kernel (:mod:`~dualjax.linear.montecarlo.kernel`) only replaces the steps in between.

The host pool is one (k, lanes) float64 matrix: the (Trial, Slot) pytree packed side by side
(:func:`pack`), transposed, so that each scalar of a slot is a contiguous row the kernel
vectorizes over, and refilling or harvesting lanes is a column scatter or gather. Its results do
not depend on the mesh, the pool size or the number of threads.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dualjax.linear.montecarlo import kernel
from dualjax.linear.montecarlo.config import Config
from dualjax.linear.montecarlo.engines import ClosedForm, fast_engine
from dualjax.linear.montecarlo.pool import (
    DEFAULT_BLOCK,
    HOST_COMPILER_OPTIONS,
    PoolOps,
    classify_lanes,
    fill_lanes,
)
from dualjax.linear.montecarlo.slots import classify, init_slot
from dualjax.linear.montecarlo.trials import Trial, sample_trial

# Lanes per host <-> JAX call of the kernel pool: classifying finished trials (one compiled size;
# each call touches only the lanes that finished) and sampling fresh ones (ahead, in bigger batches).
KERNEL_BATCH = 256
KERNEL_SAMPLE_BATCH = 2048
KERNEL_ROW_PAD = 24


# --------------------------------------------------------------------------- packing a pytree

class Column(NamedTuple):
    """Where one leaf of a packed pytree lies: its name, per-lane shape and dtype, and its
    columns ``lo:hi`` of the packed (lanes, width) matrix."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    lo: int
    hi: int


class PackSpec(NamedTuple):
    """The layout of a packed pytree (:func:`pack_spec`): its treedef, one :class:`Column` per leaf, the width."""

    treedef: Any
    columns: list[Column]
    width: int


def pack_spec(tree) -> PackSpec:
    """The :class:`PackSpec` of a (Trial, Slot) pytree, or a dict of columns, with a leading lane
    axis, as laid out by :func:`pack`. A leaf is named by its field (``rho``, ``t``, ...), a
    scalar of the fast engine's state by its kernel name (``a0``, ``B01``, ``c1``:
    :func:`dualjax.linear.montecarlo.kernel.state_names`), a column of a dict by its key."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    columns, col = [], 0
    for path, x in leaves:
        keys = [getattr(k, "name", getattr(k, "idx", getattr(k, "key", None))) for k in path]
        if len(keys) == 1:  # a dict of columns
            name = keys[0]
        elif keys[1] == "dyn":  # (Trial, Slot), Slot.dyn = FastState(a, B, c): "a" + "0", "B" + "0" + "1"
            name = "".join(map(str, keys[2:]))
        else:  # (Trial, Slot) -> the field
            name = keys[1]
        width = int(np.prod(x.shape[1:]))
        columns.append(Column(name, tuple(x.shape[1:]), np.dtype(x.dtype), col, col + width))
        col += width
    return PackSpec(treedef, columns, col)


def pack(tree, xp=np):
    """All leaves of ``tree`` side by side as one (lanes, k) float64 array (ints and bools are exact)."""
    leaves = jax.tree_util.tree_leaves(tree)
    return xp.concatenate([xp.reshape(x, (x.shape[0], -1)).astype(xp.float64) for x in leaves], axis=1)


def unpack(packed, spec: PackSpec, xp=np):
    """The inverse of :func:`pack` for a tree with layout ``spec``."""
    leaves = [xp.reshape(packed[:, c.lo:c.hi], (packed.shape[0],) + c.shape).astype(c.dtype)
              for c in spec.columns]
    return jax.tree_util.tree_unflatten(spec.treedef, leaves)


class PackedOps(NamedTuple):
    """The fast engine's lane functions, jitted, crossing the host boundary as one packed float64
    array each way: ``fill(key, index, live) -> (lanes, pool_spec.width)`` and
    ``classify(packed pool) -> (lanes, result_spec.width)`` (the classify columns and ``done``)."""

    fill: Callable
    classify: Callable
    pool_spec: PackSpec
    result_spec: PackSpec


@functools.lru_cache(maxsize=32)
def sampler(cfg: Config) -> Callable:
    """``(key, index (lanes,)) -> Trial`` with a lane axis: :func:`pool.fill_lanes`'s sampling,
    jitted once per study settings, so the rules of a study share it (its threefry draws are
    most of the compile time of a cold study's JAX programs)."""
    return jax.jit(jax.vmap(lambda k, i: sample_trial(k, i, cfg), in_axes=(None, 0)),
                   compiler_options=HOST_COMPILER_OPTIONS)


@functools.lru_cache(maxsize=32)
def packed_functions(form: ClosedForm, cfg: Config) -> PackedOps:
    """:class:`PackedOps` for a rule's closed form, jitted and cached (a repeated study does not
    compile again). ``fill`` is :func:`pool.fill_lanes` as two programs: the shared
    :func:`sampler`, then the rule's initialization."""
    eng = fast_engine(form, cfg)
    sample = sampler(cfg)
    init = jax.jit(lambda trial, live: pack((trial, jax.vmap(lambda t, l: init_slot(eng, cfg, t, l))(trial, live)),
                                            jnp), compiler_options=HOST_COMPILER_OPTIONS)
    classify_ = functools.partial(classify_lanes, eng, cfg)
    example = (jax.random.PRNGKey(0), np.zeros(KERNEL_BATCH, np.int32), np.zeros(KERNEL_BATCH, bool))
    pool_spec = pack_spec(jax.eval_shape(functools.partial(fill_lanes, eng, cfg), *example))
    result_spec = pack_spec(jax.eval_shape(lambda pool: classify_(unpack(pool, pool_spec, jnp)),
                                           jax.ShapeDtypeStruct((KERNEL_BATCH, pool_spec.width), jnp.float64)))
    return PackedOps(
        fill=lambda key, index, live: init(sample(key, index), live),
        classify=jax.jit(lambda pool: pack(classify_(unpack(pool, pool_spec, jnp)), jnp),
                         compiler_options=HOST_COMPILER_OPTIONS),
        pool_spec=pool_spec,
        result_spec=result_spec,
    )


# --------------------------------------------------------------------------- the host matrix

def host_matrix(columns: np.ndarray) -> np.ndarray:
    """A copy of the (k, lanes) host pool whose rows are padded apart in memory: rows 2^j lanes
    apart would share L1 cache sets (the kernel reads ~20 rows at the same lane offset), which
    halves the kernel's speed at 2048 lanes."""
    k, lanes = columns.shape
    pool = np.zeros((k, lanes + KERNEL_ROW_PAD))[:, :lanes]
    pool[...] = columns
    return pool


def kernel_row_index(spec: PackSpec, cfg: Config, form: ClosedForm) -> dict[str, int]:
    """Row of each of the kernel's arrays (:func:`dualjax.linear.montecarlo.kernel.argument_names`)
    in the host pool of layout ``spec``."""
    row = {c.name: c.lo for c in spec.columns if c.hi == c.lo + 1}  # the scalar leaves
    return {name: row[name] for name in kernel.argument_names(cfg.n, form.copy)}


def _kernel_rows(pool: np.ndarray, index: dict[str, int]) -> dict[str, np.ndarray]:
    """The kernel's named arrays: views of the host pool's rows."""
    return {name: pool[i] for name, i in index.items()}


# --------------------------------------------------------------------------- the pool

def kernel_pool(form: ClosedForm, cfg: Config, block: int, threads: int) -> PoolOps:
    """The :class:`~dualjax.linear.montecarlo.pool.PoolOps` of the host pool: ``advance`` is
    ``block`` steps of the compiled kernel on ``threads`` threads; ``harvest`` classifies only
    the lanes that finished (:data:`KERNEL_BATCH` at a time); fresh trials are sampled ahead in
    batches of :data:`KERNEL_SAMPLE_BATCH`. Once no trial is queued, the pool shrinks to the
    live lanes (rounded up to the kernel's lane blocks) and is harvested after every ``advance``.
    """
    kernel.compile_kernel(cfg.n, form.copy)
    packed = packed_functions(form, cfg)
    index = kernel_row_index(packed.pool_spec, cfg, form)
    live_row = index["live"]
    ahead: dict[str, Any] = {"first": 0, "columns": np.zeros((packed.pool_spec.width, 0))}

    def rows(pool):
        return _kernel_rows(pool, index)

    def sample(key, index):
        """Packed fresh trials ``index`` (consecutive), (k, len(index)); sampled ahead in batches."""
        lo = int(index[0]) - ahead["first"]
        if lo < 0 or lo + len(index) > ahead["columns"].shape[1]:
            first = int(index[0])
            count = max(KERNEL_SAMPLE_BATCH, -(-len(index) // KERNEL_SAMPLE_BATCH) * KERNEL_SAMPLE_BATCH)
            parts = [np.asarray(packed.fill(key, np.arange(b, b + KERNEL_SAMPLE_BATCH, dtype=np.int32),
                                            np.ones(KERNEL_SAMPLE_BATCH, bool)))
                     for b in range(first, first + count, KERNEL_SAMPLE_BATCH)]
            ahead.update(first=first, columns=np.concatenate(parts).T.copy())
            lo = 0
        return ahead["columns"][:, lo:lo + len(index)]

    def with_live(columns, live):
        pool = host_matrix(columns)
        pool[live_row] = live
        return pool

    def fill(key, index, live):
        return with_live(sample(key, index), live)

    def advance(pool):
        kernel.advance(rows(pool), block, cfg, form, threads)
        return pool

    def harvest(pool, occupied):
        lanes = np.flatnonzero(~kernel.active(rows(pool), cfg) & occupied)
        parts = []
        for lo in range(0, len(lanes), KERNEL_BATCH):
            take = lanes[np.minimum(np.arange(lo, lo + KERNEL_BATCH), len(lanes) - 1)]  # padded batch
            res = unpack(np.asarray(packed.classify(pool[:, take].T)), packed.result_spec)
            parts.append({name: col[: len(lanes) - lo] for name, col in res.items() if name != "done"})
        if not parts:
            return lanes, {}
        return lanes, {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def refill(key, pool, lanes, index):
        pool[:, lanes] = sample(key, index)
        return pool

    def shrink(pool, take, live):
        return with_live(pool[:, take], live)

    def drain(size, live, devices):
        """Any size runs without compiling: keep just the blocks of lanes that are still live."""
        need = -(-live // kernel.LANES) * kernel.LANES
        return need if need < size else None

    return PoolOps(fill=fill, advance=advance, harvest=harvest, refill=refill, shrink=shrink, drain=drain,
                   drain_blocks=1)


def kernel_points(trials: Trial, form: ClosedForm, cfg: Config, threads: int) -> dict[str, np.ndarray]:
    """:func:`~dualjax.linear.montecarlo.run.run_points` with the compiled kernel: the given
    trials (float64, a leading batch axis) from their initial points to the end, then
    :func:`~dualjax.linear.montecarlo.slots.classify` (the fast engine's, in JAX)."""
    eng = fast_engine(form, cfg)
    start = jax.jit(jax.vmap(lambda t: (t, init_slot(eng, cfg, t))))(trials)
    spec = pack_spec(start)
    pool = host_matrix(pack(jax.device_get(start)).T)
    rows = _kernel_rows(pool, kernel_row_index(spec, cfg, form))
    while kernel.active(rows, cfg).any():
        kernel.advance(rows, DEFAULT_BLOCK["kernel"], cfg, form, threads)
    end = unpack(np.ascontiguousarray(pool.T), spec)
    return jax.device_get(jax.jit(jax.vmap(lambda t, s: classify(eng, cfg, t, s)))(*end))
