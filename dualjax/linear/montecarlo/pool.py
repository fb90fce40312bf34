"""The pool of trial slots and its driver: how a study of many trials runs in bounded memory.

Trials run in a pool of slots (``chunk`` per device) that is advanced ``block`` steps at a time;
finished slots are harvested and refilled with the next trial indices, so memory is bounded by
the pool and slow trials do not hold fast ones back. A pool is a ``(Trial, Slot)`` pytree with a
leading lane axis (:func:`fill_lanes`). Two implementations of its :class:`PoolOps` exist: the XLA
pool sharded over a 1-D mesh (:mod:`~dualjax.linear.montecarlo.xlapool`, any device) and the host
pool stepped by the compiled CPU kernel (:mod:`~dualjax.linear.montecarlo.hostpool`);
:func:`run_pool` drives either.
"""

from __future__ import annotations

import os
from typing import Any, Callable, NamedTuple

import jax
import numpy as np

from dualjax import checks
from dualjax.linear.montecarlo.config import Config
from dualjax.linear.montecarlo.engines import Engine
from dualjax.linear.montecarlo.slots import classify, init_slot, slot_active
from dualjax.linear.montecarlo.trials import sample_trial

# Steps per pool call before finished trials are harvested and refilled. The kernel's calls
# are cheap to start but each harvest costs a few JAX calls, so it takes longer blocks.
DEFAULT_BLOCK = {"kernel": 512, "fast": 256, "rules": 256}

# XLA's CPU backend at LLVM -O1 for the programs that run once per batch of trials, not per step
# (sampling, filling, harvesting, shrinking; the host pool's and the general-m study's): their
# compile is most of a cold study's (threefry's unrolled rounds), -O1 halves it, their speed hardly
# matters, and they give the same bits (tests compare the trials and verdicts with the XLA pool's,
# byte-identical trials.csv checked; the general-m sampler's draws are bitwise equal at -O1 and -O3).
# A level the user sets in XLA_FLAGS (the test suite runs at -O0) applies to these programs too:
# -O0 is not bitwise equal to -O1, and the study's per-step programs run at the user's level.
HOST_COMPILER_OPTIONS = ({} if "xla_backend_optimization_level" in os.environ.get("XLA_FLAGS", "")
                         else {"xla_backend_optimization_level": 1})


class PoolOps(NamedTuple):
    """The steps of a pool, as :func:`run_pool` calls them (``pool`` is the implementation's own
    representation of the lanes; ``index``, ``lanes``, ``take`` are int arrays, ``live`` and
    ``occupied`` bool arrays, all host NumPy).

    fill(key, index, live) -> pool: samples and initializes trial ``index[i]`` in lane i (``key``: what
        :func:`run_pool` was given, the base key; the general-m pool takes its instance table);
    advance(pool) -> pool: ``block`` steps of every lane (a stopped lane stays frozen);
    harvest(pool, occupied) -> (lanes, columns): the occupied lanes whose trial has stopped, and
    their :func:`~dualjax.linear.montecarlo.slots.classify` columns;
    refill(key, pool, lanes, index) -> pool: fresh trials ``index`` into ``lanes``;
    shrink(pool, take, live) -> pool: a smaller pool of lanes ``take``;
    drain(size, live, devices) -> int | None: once no trial is queued, the smaller pool size to
    move ``live`` lanes into (None: keep the pool);
    drain_blocks: ``advance`` calls between harvests once no trial is queued.
    """

    fill: Callable[[jax.Array, np.ndarray, np.ndarray], Any]
    advance: Callable[[Any], Any]
    harvest: Callable[[Any, np.ndarray], tuple[np.ndarray, dict[str, np.ndarray]]]
    refill: Callable[[jax.Array, Any, np.ndarray, np.ndarray], Any]
    shrink: Callable[[Any, np.ndarray, np.ndarray], Any]
    drain: Callable[[int, int, int], int | None]
    drain_blocks: int


def make_mesh(devices: int | None = None) -> jax.sharding.Mesh:
    """A 1-D mesh ``('trials',)`` over the first ``devices`` devices (all by default), AxisType.Auto."""
    avail = jax.devices()
    d = len(avail) if devices is None else checks.check_positive_int(devices, "devices")
    if d > len(avail):
        raise ValueError(f"devices={d} but only {len(avail)} are available")
    return jax.make_mesh((d,), ("trials",), axis_types=(jax.sharding.AxisType.Auto,), devices=avail[:d])


def fill_lanes(engine: Engine, cfg: Config, key: jax.Array, index: jax.Array, live: jax.Array):
    """Trials ``index`` (lanes,) sampled and initialized: the pool ``(Trial, Slot)`` with a lane axis."""
    trial = jax.vmap(lambda k, i: sample_trial(k, i, cfg), in_axes=(None, 0))(key, index)
    return trial, jax.vmap(lambda t, l: init_slot(engine, cfg, t, l))(trial, live)


def classify_lanes(engine: Engine, cfg: Config, pool) -> dict:
    """:func:`~dualjax.linear.montecarlo.slots.classify` of every lane, plus ``done`` (the lane has stopped)."""
    trial, slot = pool
    res = jax.vmap(lambda t, s: classify(engine, cfg, t, s))(trial, slot)
    res["done"] = ~jax.vmap(lambda s: slot_active(s, cfg))(slot)
    return res


def run_pool(ops: PoolOps, key: jax.Array, *, trials: int, start: int, size: int, devices: int,
             progress: Callable[[int], Any] | None = None) -> dict[str, np.ndarray]:
    """Run trials ``start .. start + trials − 1`` through a pool of ``size`` lanes on ``devices``
    devices and return their result columns (one row per trial, in trial order; a column may have
    trailing axes). ``progress(k)`` is called with the number of trials just finished."""
    out: dict[str, np.ndarray] = {}
    next_index = start
    end = start + trials
    slot_index = np.full(size, -1, np.int64)
    first = np.arange(next_index, min(end, next_index + size))
    slot_index[: len(first)] = first
    next_index += len(first)
    pool = ops.fill(key, np.maximum(slot_index, 0).astype(np.int32), slot_index >= 0)
    done_count = 0
    while done_count < trials:
        # Once the queue is empty nothing is refilled: check for finished slots less often
        # (the XLA pool; the host kernel's checks are cheap).
        for _ in range(1 if next_index < end else ops.drain_blocks):
            pool = ops.advance(pool)
        lanes, res = ops.harvest(pool, slot_index >= 0)
        if len(lanes):
            idx = slot_index[lanes] - start
            for name, col in res.items():
                if name not in out:
                    out[name] = np.zeros((trials,) + col.shape[1:], col.dtype)
                out[name][idx] = col
            done_count += len(lanes)
            if progress is not None:
                progress(len(lanes))
            slot_index[lanes] = -1
            new = np.arange(next_index, min(end, next_index + len(lanes)))
            if len(new):
                # Refill the first finished slots with the next trials.
                next_index += len(new)
                slot_index[lanes[: len(new)]] = new
                pool = ops.refill(key, pool, lanes[: len(new)], new.astype(np.int32))
        live = int((slot_index >= 0).sum())
        smaller = ops.drain(size, live, devices) if next_index >= end and live else None
        if smaller is not None:
            # Drain: move the live slots into a smaller pool, so the slow last trials do not
            # drag a pool of finished ones.
            size = smaller
            keep = np.flatnonzero(slot_index >= 0)
            take = np.zeros(size, np.int64)
            take[: len(keep)] = keep
            slot_index = np.where(np.arange(size) < len(keep), slot_index[take], -1)
            pool = ops.shrink(pool, take.astype(np.int32), slot_index >= 0)
    return out
