"""The XLA pool: the slots on the devices, sharded over a 1-D mesh, stepped by jitted XLA code.

The slot axis is sharded over a :class:`jax.sharding.Mesh` ``('trials',)`` (``AxisType.Auto``,
:func:`~dualjax.linear.montecarlo.pool.make_mesh`); each slot's arithmetic is elementwise, so the
results are bitwise identical on 1 or 8 devices. It runs the ``fast`` and ``rules`` engines on
any backend (the ``kernel`` engine uses :mod:`~dualjax.linear.montecarlo.hostpool`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from dualjax.linear.montecarlo.config import Config
from dualjax.linear.montecarlo.engines import ClosedForm, closed_form, fast_engine, rules_engine
from dualjax.linear.montecarlo.pool import HOST_COMPILER_OPTIONS, PoolOps, classify_lanes, fill_lanes
from dualjax.linear.montecarlo.slots import advance_slot
from dualjax.rules import TeacherRule

# XLA:CPU options for the pool's step loop (DebugOptions; they change scheduling and codegen,
# not the arithmetic, so the results are bitwise the same). Region-analysis copy insertion drops
# most of the per-step buffer copies of the loop carry; 512-bit vectors use all of AVX-512 on the
# elementwise fusions. Together ~1.3-1.5x on the SG step loop (docs/montecarlo.md, Performance).
CPU_ADVANCE_OPTIONS = {"xla_cpu_copy_insertion_use_region_analysis": True, "xla_cpu_prefer_vector_width": 512}


# Steps per iteration of the fast engine's pool loop: two let XLA drop the carry copies of the SG
# loop, no teacher copy (~1.15x); with a copy (EMA, more state) it does not pay.
ADVANCE_UNROLL = {False: 2, True: 1}


def all_cpu(sharding: jax.sharding.Sharding) -> bool:
    """Every device of the sharding's mesh is a CPU (the ``kernel`` engine may run)."""
    return {dev.platform for dev in sharding.mesh.devices.flat} == {"cpu"}


def _advance_options(sharding) -> dict | None:
    return dict(CPU_ADVANCE_OPTIONS) if all_cpu(sharding) else None


def _drain(size: int, live: int, devices: int) -> int | None:
    """About 8x smaller (a multiple of 8 lanes per device) once the live lanes fit (each pool size is
    compiled once). Rounding up keeps every size a multiple of 8 and the live lanes inside it: with
    1256 lanes per device, 1256 // 8 = 157 and then 19 · 8 = 152 < 157 lanes would not hold them."""
    per_dev = size // devices
    new = max(8, -(-(per_dev // 8) // 8) * 8) * devices
    return new if per_dev > 8 and new < size and live <= new else None


@functools.lru_cache(maxsize=32)
def xla_pool(engine: str, rule: TeacherRule | ClosedForm, cfg: Config, block: int,
             sharding: jax.sharding.NamedSharding) -> PoolOps:
    """The :class:`~dualjax.linear.montecarlo.pool.PoolOps` of the XLA pool for ``engine``
    (``fast`` with the rule's :class:`~dualjax.linear.montecarlo.engines.ClosedForm`, or ``rules``
    with the rule), jitted and cached (a repeated study does not compile again).

    The pool is ``(Trial, Slot)`` on the mesh; ``advance`` (donating the pool) takes ``block``
    steps per call, ``harvest`` classifies every lane in one call. Once no trial is queued, the
    pool shrinks 8x at a time and is harvested every 8 ``advance`` calls.
    """
    eng = rules_engine(rule, cfg) if engine == "rules" else fast_engine(rule, cfg)
    return make_pool_ops(eng, cfg, block, sharding,
                         fill=lambda key, index, live: fill_lanes(eng, cfg, key, index, live),
                         columns=lambda pool: classify_lanes(eng, cfg, pool),
                         unroll=ADVANCE_UNROLL[closed_form(rule).copy] if engine == "fast" else 1)


def make_pool_ops(eng, cfg, block: int, sharding: jax.sharding.NamedSharding, *, fill, columns,
                  unroll: int = 1) -> PoolOps:
    """The XLA pool of any per-lane study: ``fill(key, index, live) -> (trial, slot)`` samples and
    initializes lanes, ``columns(pool) -> dict`` gives each lane's result columns plus ``done``;
    the slots are advanced by :func:`~dualjax.linear.montecarlo.slots.advance_slot` with ``eng``.
    Everything is jitted, sharded over the mesh of ``sharding`` and donated where it can be."""
    on_mesh = lambda tree: jax.lax.with_sharding_constraint(tree, sharding)  # noqa: E731
    put = lambda x: jax.device_put(x, sharding)  # noqa: E731

    def fill_on_mesh(key, index, live):
        return on_mesh(fill(key, index, live))

    def advance(pool):
        trial, slot = pool
        return trial, jax.vmap(lambda t, s: advance_slot(eng, cfg, t, s, block, unroll))(trial, slot)

    def refill(key, pool, index, mask):
        pick = lambda x, y: jnp.where(mask.reshape(mask.shape + (1,) * (y.ndim - 1)), x, y)  # noqa: E731
        return jax.tree_util.tree_map(pick, fill_on_mesh(key, index, mask), pool)

    def shrink(pool, take, live):
        trial, slot = jax.tree_util.tree_map(lambda x: x[take], pool)
        return on_mesh(trial), on_mesh(slot._replace(live=live))

    # the programs that run once per block, not per step: LLVM -O1 on a CPU (half the compile, same bits)
    opts = HOST_COMPILER_OPTIONS if all_cpu(sharding) else None
    fill_jit, columns_jit = jax.jit(fill_on_mesh, compiler_options=opts), jax.jit(columns, compiler_options=opts)
    refill_jit = jax.jit(refill, donate_argnums=1, compiler_options=opts)
    shrink_jit = jax.jit(shrink, compiler_options=opts)
    advance_jit = jax.jit(advance, donate_argnums=0, compiler_options=_advance_options(sharding))

    def harvest(pool, occupied):
        res = jax.device_get(columns_jit(pool))
        lanes = np.flatnonzero(res.pop("done") & occupied)
        return lanes, {name: col[lanes] for name, col in res.items()}

    def refill_lanes(key, pool, lanes, index):
        full = np.zeros(pool[0].index.shape[0], np.int32)
        mask = np.zeros(len(full), bool)
        full[lanes], mask[lanes] = index, True
        return refill_jit(key, pool, put(full), put(mask))

    return PoolOps(
        fill=lambda key, index, live: fill_jit(key, put(index), put(live)),
        advance=advance_jit,
        harvest=harvest,
        refill=refill_lanes,
        shrink=lambda pool, take, live: shrink_jit(pool, put(take), put(live)),
        drain=_drain,
        drain_blocks=8,
    )
