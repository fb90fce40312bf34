"""Resumable checkpoints: one train-state pytree plus JSON extras, saved asynchronously with orbax.

Layout of a run directory ``DIR``::

    DIR/ckpt/<step>/state/...     the train-state pytree (orbax StandardSave)
    DIR/ckpt/<step>/extras/...    JSON: data-iterator state, user extras
    DIR/metrics.jsonl             one JSON object per logged step (written by resumable_loop)

**Atomicity.** orbax 0.12.8 writes step ``s`` into ``ckpt/s.orbax-checkpoint-tmp-<n>/``, writes a
``commit_success.txt`` marker into it once every item is on disk, then renames the directory to
``ckpt/s`` (``AtomicRenameTemporaryPath.finalize``). A rename within one directory is atomic on
POSIX file systems, so a process killed at any moment (SIGKILL included, also in the middle of a
save) leaves either a complete ``ckpt/s`` or a ``*.orbax-checkpoint-tmp-*`` directory, which
orbax never lists as a step and :class:`Checkpointer` deletes on start (process 0). Old steps are deleted only
after the new one is committed (keep-last-k). :meth:`Checkpointer.latest_step` additionally
requires the commit marker, and :meth:`Checkpointer.restore_latest` falls back to an older step if
the newest one cannot be read (e.g. a step directory half-deleted by a kill during garbage
collection), so a resume always starts from the last *complete* checkpoint.

**Asynchronous saving.** :meth:`Checkpointer.save` returns once the arrays are copied to host;
serialization runs in a background thread. Call :meth:`Checkpointer.wait` (or ``close``) before
exiting, as :func:`resumable_loop` does.

**Exact resume.** :func:`resumable_loop` runs ``state_{t+1}, metrics = step_fn(state_t, batch_fn(t))``
for ``t = start .. num_steps − 1``; the metrics line of that update has ``"step": t + 1`` and the
checkpoint of ``state_s`` is step ``s``. On resume it restores the latest complete checkpoint
``s``, drops every line of ``metrics.jsonl`` with ``step > s`` (and a torn last line), and
continues with ``batch_fn(s)``. With a deterministic ``step_fn`` and ``batch_fn`` the resumed
``metrics.jsonl`` equals, line for line, that of an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import jax
import numpy as np
import orbax.checkpoint as ocp

from dualjax import checks, faults

PyTree = Any
log = logging.getLogger(__name__)

_COMMIT_FILE = "commit_success.txt"


class Checkpointer:
    """Keep-last-``keep`` asynchronous checkpoints of one train-state pytree plus JSON extras.

    ``state`` is any pytree of arrays (parameters, teacher, optimizer state, rule state, step,
    PRNG key as a uint32 array); ``extras`` a JSON-able dict (data-iterator state, cursors).
    Every process of a multi-host job must call :meth:`save` and :meth:`restore` alike.
    """

    def __init__(self, directory: str | os.PathLike, *, keep: int = 3, async_save: bool = True):
        checks.check_positive_int(keep, "keep")
        self.directory = Path(directory).absolute()
        if jax.process_index() == 0:
            _remove_torn_saves(self.directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "extras"))

    # ---------------------------------------------------------------- queries
    def all_steps(self) -> list[int]:
        """Committed steps on disk, ascending (a step with no commit marker is not listed)."""
        self._manager.reload()
        return sorted(s for s in self._manager.all_steps() if self._committed(s))

    def latest_step(self) -> int | None:
        """The newest committed step, or ``None`` if there is none."""
        steps = self.all_steps()
        return steps[-1] if steps else None

    def _committed(self, step: int) -> bool:
        path = self.directory / str(step)
        return path.is_dir() and (path / _COMMIT_FILE).exists()

    # ---------------------------------------------------------------- save / restore
    def save(self, step: int, state: PyTree, extras: dict | None = None) -> bool:
        """Start saving ``state`` (and ``extras``) as step ``step``; returns whether a save began.

        Returns once the arrays are on the host; the write finishes in the background.
        Saving a step that already exists is a no-op returning False.
        """
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"step must be a non-negative integer, got {step!r}")
        extras = {} if extras is None else extras
        try:
            json.dumps(extras)
        except TypeError as err:
            raise ValueError(f"extras must be JSON-serialisable, got {extras!r}") from err
        if int(step) in self._manager.all_steps():
            return False
        return self._manager.save(
            int(step),
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), extras=ocp.args.JsonSave(extras)),
            force=True,
        )

    def restore(self, target_like: PyTree, step: int | None = None) -> tuple[PyTree, dict]:
        """``(state, extras)`` of ``step`` (default: the latest committed one).

        ``target_like`` fixes the pytree structure, dtypes, shapes and shardings (concrete arrays
        or ``jax.ShapeDtypeStruct`` with ``sharding``), e.g. the freshly initialised state.
        """
        if step is None:
            step = self.latest_step()
            if step is None:
                raise FileNotFoundError(f"no complete checkpoint in {self.directory}")
        elif not self._committed(step):
            raise FileNotFoundError(
                f"no complete checkpoint for step {step} in {self.directory}; committed steps: {self.all_steps()}"
            )
        abstract = jax.tree_util.tree_map(_abstract, target_like)
        restored = self._manager.restore(
            int(step),
            args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), extras=ocp.args.JsonRestore()),
        )
        return restored["state"], dict(restored["extras"] or {})

    def restore_latest(self, target_like: PyTree) -> tuple[int, PyTree, dict] | None:
        """``(step, state, extras)`` of the newest readable committed step; ``None`` if no step
        is committed.

        A committed step that fails to restore (damaged by a kill during garbage collection or
        by hand) is skipped with a warning and the next older one is tried. If none restores
        (e.g. ``target_like`` does not match what was saved) the last error is raised, rather
        than silently starting over.
        """
        steps = self.all_steps()
        error = None
        for step in reversed(steps):
            try:
                state, extras = self.restore(target_like, step)
            except Exception as err:  # noqa: BLE001 - any unreadable step: fall back
                log.warning("checkpoint step %d in %s is unreadable (%s); trying an older one", step, self.directory, err)
                error = err
                continue
            return step, state, extras
        if error is not None:
            raise RuntimeError(
                f"none of the committed checkpoints {steps} in {self.directory} could be restored "
                f"into the given target; last error: {error}"
            ) from error
        return None

    def wait(self) -> None:
        """Block until every in-flight asynchronous save is committed."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Wait for in-flight saves, then release orbax's threads."""
        self._manager.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _remove_torn_saves(directory: Path) -> None:
    # Leftovers of a save killed before its rename are never a valid step. Removed here,
    # synchronously, rather than by orbax's ``cleanup_tmp_directories``, which runs in a
    # background thread nobody waits for.
    if not directory.is_dir():
        return
    for path in directory.iterdir():
        if ".orbax-checkpoint-tmp" in path.name and path.is_dir() and not path.is_symlink():
            log.warning("removing torn checkpoint %s (a save was interrupted)", path)
            shutil.rmtree(path, ignore_errors=True)


def _abstract(leaf):
    if isinstance(leaf, jax.ShapeDtypeStruct):
        return leaf
    if isinstance(leaf, jax.Array):
        return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=leaf.sharding)
    if isinstance(leaf, (np.ndarray, np.generic)):
        return jax.ShapeDtypeStruct(np.shape(leaf), np.asarray(leaf).dtype)
    return leaf


# --------------------------------------------------------------------------- metrics.jsonl

class MetricsWriter:
    """Append-only ``metrics.jsonl`` (one JSON object per logged step, each with a ``"step"``).

    Lines are flushed as written, so a killed process loses at most a torn last line.
    :meth:`truncate` keeps only complete lines with ``step <= last_step``, rewriting the file
    atomically (write a temporary file, then ``os.replace``).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._file = None

    def truncate(self, last_step: int) -> int:
        """Drop lines beyond ``last_step`` and any torn line; returns the number of lines kept."""
        kept = []
        if self.path.exists():
            for line in self.path.read_text().splitlines(keepends=True):
                if not line.endswith("\n"):
                    break  # torn by a kill mid-write
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    break
                if int(record.get("step", -1)) <= last_step:
                    kept.append(line)
        tmp = self.path.with_name(self.path.name + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text("".join(kept))
        os.replace(tmp, self.path)
        return len(kept)

    def write(self, record: dict) -> None:
        if self._file is None:
            self._file = open(self.path, "a")
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def to_jsonable(metrics: dict) -> dict:
    """Host copies of scalar metrics as Python floats / ints (exact: ``repr`` round-trips)."""
    out = {}
    for key, value in jax.device_get(metrics).items():
        arr = np.asarray(value)
        if arr.shape != ():
            raise ValueError(f"metric {key!r} must be a scalar to be logged, got shape {arr.shape}")
        out[key] = arr.item()
    return out


# --------------------------------------------------------------------------- the loop

class Stateful(Protocol):
    """Anything with JSON-able ``get_state()`` / ``set_state(state)``, e.g. a grain iterator."""

    def get_state(self) -> Any: ...

    def set_state(self, state: Any) -> None: ...


@dataclass
class LoopResult:
    """What :func:`resumable_loop` did: the final state, the step it started from, whether it restored."""

    state: PyTree
    start_step: int
    restored: bool


def resumable_loop(
    step_fn: Callable[[PyTree, Any], tuple[PyTree, dict]],
    init_state: PyTree,
    batch_fn: Callable[[int], Any],
    *,
    num_steps: int,
    directory: str | os.PathLike,
    save_every: int,
    keep: int = 3,
    log_every: int = 1,
    async_save: bool = True,
    data: Stateful | None = None,
    check_finite: bool = True,
    on_step: Callable[[int, dict], None] | None = None,
) -> LoopResult:
    """Run ``step_fn`` for ``num_steps`` updates with exact resume from ``directory``.

    ``batch_fn(t)`` must be a deterministic function of the update index ``t`` (0-based).
    ``data`` (optional) is a stateful data source whose ``get_state()`` is saved in each
    checkpoint's extras and restored on resume — then ``batch_fn`` may ignore ``t`` and draw
    from it. Metrics of update ``t`` are written to ``directory/metrics.jsonl`` as
    ``{"step": t + 1, ...}`` every ``log_every`` updates; ``state_s`` is saved every
    ``save_every`` updates and after the last one. With ``check_finite`` the logged metrics
    (and the state, before each save) are checked; a non-finite value raises
    :class:`dualjax.faults.NonFiniteError` naming the step, after the in-flight saves of
    earlier (good) states have been committed and without saving the bad one.
    ``on_step(step, metrics)`` is called with each logged record (progress bars).
    """
    checks.check_positive_int(num_steps, "num_steps")
    checks.check_positive_int(save_every, "save_every")
    checks.check_positive_int(log_every, "log_every")
    directory = Path(directory)
    ckpt = Checkpointer(directory / "ckpt", keep=keep, async_save=async_save)
    writer = MetricsWriter(directory / "metrics.jsonl")
    try:
        found = ckpt.restore_latest(init_state)
        if found is None:
            start, state, restored = 0, init_state, False
        else:
            start, state, extras = found
            restored = True
            if data is not None and extras.get("data") is not None:
                data.set_state(extras["data"])
        writer.truncate(start)
        for t in range(start, num_steps):
            state, metrics = step_fn(state, batch_fn(t))
            step = t + 1
            if step % log_every == 0:
                record = to_jsonable(metrics)
                if check_finite:
                    faults.check_finite(record, step)
                record = {"step": step, **record}
                writer.write(record)
                if on_step is not None:
                    on_step(step, record)
            if step % save_every == 0 or step == num_steps:
                if check_finite:
                    faults.check_finite(state, step, name="state")
                extras = {"step": step}
                if data is not None:
                    extras["data"] = data.get_state()
                ckpt.save(step, state, extras)
        return LoopResult(state, start, restored)
    finally:
        writer.close()
        ckpt.close()
