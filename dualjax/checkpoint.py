"""Resumable checkpoints: one train-state pytree plus JSON extras, saved asynchronously with orbax.

A :class:`Checkpointer` on a directory ``D`` keeps ``D/<step>/state/...`` (the pytree, orbax
StandardSave) and ``D/<step>/extras/...`` (JSON: data position, counters) for the newest ``keep``
steps; :class:`MetricsWriter` is the append-only ``metrics.jsonl`` beside it. The V-JEPA trainer
uses both with the layout and step convention of :mod:`dualjax.vjepa.rundir`
(``RUN/checkpoints/<s>`` = the state after ``s`` updates).

**Atomicity.** orbax 0.12.8 writes step ``s`` into ``D/s.orbax-checkpoint-tmp-<n>/``, writes a
``commit_success.txt`` marker into it once every item is on disk, then renames the directory to
``D/s`` (``AtomicRenameTemporaryPath.finalize``). A rename within one directory is atomic on
POSIX file systems, so a process killed at any moment (SIGKILL included, also in the middle of a
save) leaves either a complete ``D/s`` or a ``*.orbax-checkpoint-tmp-*`` directory, which
orbax never lists as a step and :class:`Checkpointer` deletes on start (process 0). Old steps are
deleted only after the new one is committed (keep-last-k). :meth:`Checkpointer.latest_step`
(and the read-only :func:`committed_steps`) additionally require the commit marker, and
:meth:`Checkpointer.restore_latest` falls back to an older step if the newest one cannot be read
(e.g. a step directory half-deleted by a kill during garbage collection, or a damaged file), so
a resume always starts from the last *readable* checkpoint; the unreadable newer steps are then
**set aside** as ``D/<step>.corrupt-<n>`` (renamed, never deleted; named in the log), so the
resumed run writes that step anew. If no step can be read, :class:`CheckpointError` (a
ValueError) says whether the shapes do not match the target (an edited config) or the files
are damaged, and nothing is moved.

**Asynchronous saving.** :meth:`Checkpointer.save` returns once the arrays are copied to host;
serialization runs in a background thread. Call :meth:`Checkpointer.wait` (or ``close``) before
exiting.

**Exact resume** is the caller's part: restore the newest complete step ``s``, drop the
``metrics.jsonl`` lines beyond it with :meth:`MetricsWriter.truncate` (a torn last line too) and
continue with batch ``s``; with a deterministic step and data the resumed ``metrics.jsonl``
equals, line for line, that of an uninterrupted run (tests/vjepa/test_scale.py kills the trainer
with SIGKILL inside a save and at an arbitrary moment).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from dualjax import checks, outputs
from dualjax.typing import PyTree

log = logging.getLogger(__name__)

_COMMIT_FILE = "commit_success.txt"
_SET_ASIDE = ".corrupt-"
# orbax's words for a target whose shapes / structure differ from what was saved
_MISMATCH = ("is not compatible with the stored shape", "tree structures do not match")


class CheckpointError(ValueError):
    """No checkpoint of a directory can be read into the given target."""


def is_committed(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a step directory whose save was committed (its marker exists)."""
    path = Path(path)
    return path.is_dir() and (path / _COMMIT_FILE).exists()


def committed_steps(directory: str | os.PathLike) -> list[int]:
    """The committed steps under ``directory``, ascending. Read-only: it neither removes torn
    saves nor starts orbax, so it is safe next to a process that is saving."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit() and is_committed(p))


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
        return is_committed(self.directory / str(step))

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
        by hand) is passed over for the next older one; once one restores, the newer unreadable
        steps are named in the log and set aside as ``<step>.corrupt-<n>`` (process 0), so a
        later save of that step is written. If none restores, or the target does not fit
        (:func:`mismatch`), :class:`CheckpointError` (see :func:`unreadable`) rather than
        silently starting over, and nothing is moved.
        """
        steps = self.all_steps()
        failed = []
        for step in reversed(steps):
            try:
                state, extras = self.restore(target_like, step)
            except Exception as err:  # noqa: BLE001 - any unreadable step: fall back
                failed.append((step, err))
                if mismatch(err):  # the target is wrong, not the files: no older step fits either
                    raise unreadable(self.directory, failed) from err
                continue
            for bad, err in failed:
                log.warning("checkpoint %s is unreadable (%s)", self.directory / str(bad), short_error(err))
            if failed and jax.process_index() == 0:
                for bad, _ in failed:
                    moved = set_aside(self.directory / str(bad))
                    log.warning("checkpoint %s set aside as %s; resuming from step %d (%d set aside in %s)",
                                bad, moved.name, step, len(set_aside_steps(self.directory)), self.directory)
                self._manager.reload()
            return step, state, extras
        if failed:
            raise unreadable(self.directory, failed)
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


def short_error(err: BaseException) -> str:
    """The first line of an exception, at most 200 characters (orbax's can run to pages)."""
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return text if len(text) <= 200 else text[:197] + "..."


def mismatch(err: BaseException) -> bool:
    """Whether a restore failed because the target's shapes or structure differ from the saved ones."""
    return isinstance(err, ValueError) and any(m in str(err) for m in _MISMATCH)


def unreadable(directory: Path, failed: list[tuple[int, BaseException]]) -> CheckpointError:
    """The error for a directory whose ``failed`` ``(step, error)``, newest first, could not be
    read: a shape / structure mismatch (the last error) or damaged files."""
    steps = sorted(step for step, _ in failed)
    step, err = failed[-1]
    if mismatch(err):
        return CheckpointError(f"checkpoint {step} in {directory} does not match the run's config "
                               f"(was config.json edited?): {short_error(err)}")
    return CheckpointError(f"none of the committed checkpoints {steps} in {directory} can be read (damaged files?): "
                           f"step {step}: {short_error(err)}; move the folder aside, or start afresh with --overwrite")


def set_aside(path: Path) -> Path:
    """Rename step directory ``path`` to ``<step>.corrupt-<n>`` (the first free n ≥ 1); return the new path."""
    n = 1
    while (target := path.with_name(f"{path.name}{_SET_ASIDE}{n}")).exists():
        n += 1
    os.replace(path, target)
    return target


def set_aside_steps(directory: str | os.PathLike) -> list[str]:
    """Names of the step directories set aside under ``directory`` (``<step>.corrupt-<n>``)."""
    directory = Path(directory)
    return sorted(p.name for p in directory.iterdir() if _SET_ASIDE in p.name) if directory.is_dir() else []


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
    atomically (:func:`dualjax.outputs.write_text`: a temporary file, then ``os.replace``).
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        outputs.write_text(self.path, "".join(kept))
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
