"""The directory of a V-JEPA run, and its one checkpoint convention.

Layout of a run directory ``DIR``::

    DIR/config.json                 the run's Config (strict: ``Config.from_json``), written first
    DIR/metrics.jsonl               one JSON record per logged step t; ``"step": t`` = updates
                                    already applied when batch t was drawn (docs/vjepa.md)
    DIR/checkpoints/<s>/state       the whole TrainState after s updates (orbax, atomic commit)
    DIR/checkpoints/<s>/extras      {"step": s, "data": {"next_step": s}, "videos_skipped": n}
    DIR/checkpoints/<s>.corrupt-<n> a checkpoint that could not be read, set aside by a resume
    DIR/probe.json                  written by ``dualjax probe`` (atomically)

Checkpoint ``s`` holds the state that the update of step ``s`` starts from, and batches are
indexed by step, so the data position of checkpoint ``s`` is ``s``: a resumed run keeps the
records with ``step < s`` and continues with batch ``s``. A run is complete when
``checkpoints/<steps>`` exists.

**Block layout.** The blocks' parameters (θ, ψ, ξ and the Adam moments alike) are stored stacked,
``…/blocks/layers/<param>`` with a leading depth axis (:class:`dualjax.vjepa.vit.Blocks`).
Checkpoints written before that change hold one entry per block, ``…/blocks/<l>/<param>``
(:data:`PER_BLOCK`); :func:`resume` and :func:`restore_checkpoint` read them into the stacked
layout (:func:`checkpoint_layout`, :func:`unstack_blocks`, :func:`stack_blocks`).

A fresh run refuses a non-empty ``DIR`` unless ``overwrite`` (:func:`check`, before any work);
with it, only :data:`OWNED` is removed (:func:`prepare`, once the set-up is validated).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dualjax import checkpoint as ckpt_lib
from dualjax import configs, outputs, rules
from dualjax.vjepa import config as config_lib
from dualjax.vjepa.step import Setup, TrainState
from dualjax.vjepa.vit import STACK_KEY

CONFIG, METRICS, CKPT_DIR, PROBE = "config.json", "metrics.jsonl", "checkpoints", "probe.json"
OWNED = (CONFIG, METRICS, CKPT_DIR, PROBE)  # what a run writes; config.json goes first

log = logging.getLogger(__name__)
PER_BLOCK, STACKED = "per-block", "stacked"  # checkpoint layouts of the blocks (module doc)


def read_config(run_dir: str | Path) -> config_lib.Config:
    """``run_dir/config.json``, validated; ValueError naming the file (and the key) otherwise."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise ValueError(f"{path} does not exist")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        where = f" (line {err.lineno}, column {err.colno})" if isinstance(err, json.JSONDecodeError) else ""
        raise ValueError(f"{path} is not valid JSON{where}: {getattr(err, 'msg', err)}") from None
    try:
        return configs.from_dict(config_lib.Config, raw).validate()
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def check(run_dir: str | Path, cfg: config_lib.Config, *, resume: bool, overwrite: bool = False) -> None:
    """Before any work, changing nothing: a resumed run requires ``cfg`` to equal its
    config.json; a fresh one requires ``run_dir`` to be empty (or ``overwrite``) and writable."""
    out = Path(run_dir)
    if resume:
        try:
            stored = read_config(out)
        except ValueError as err:
            raise ValueError(f"cannot resume: {err}") from None
        if stored != cfg:
            a, b = dataclasses.asdict(cfg), dataclasses.asdict(stored)
            diff = [f"{k}: {a[k]!r} != {b[k]!r}" for k in a if a[k] != b[k]]
            raise ValueError(f"cannot resume {out} with a different config: {'; '.join(diff)}")
        return
    hint = f"continue that run with --resume {out}" if (out / CONFIG).is_file() else ""
    outputs.check(out, overwrite=overwrite, hint=hint)


def prepare(run_dir: str | Path, cfg: config_lib.Config, *, resume: bool, overwrite: bool = False) -> None:
    """Once the set-up is validated and every process has passed :func:`check`: a fresh run
    clears what an earlier run owned there (with ``overwrite``) and writes config.json
    atomically (process 0)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("dualjax.rundir.prepare")
    if resume or jax.process_index() != 0:
        return
    out = outputs.prepare(run_dir, OWNED, overwrite=overwrite)
    outputs.write_text(out / CONFIG, cfg.to_json())


# --------------------------------------------------------------------------- checkpoints

def state_to_tree(state: TrainState) -> dict:
    return {"theta": state.theta, "psi": state.psi, "opt_state": state.opt_state,
            "teacher": {"xi": state.teacher.xi, "count": state.teacher.count},
            "step": state.step, "rng": state.rng}


def tree_to_state(tree: dict) -> TrainState:
    return TrainState(tree["theta"], tree["psi"], tree["opt_state"],
                      rules.TeacherState(tree["teacher"]["xi"], tree["teacher"]["count"]),
                      tree["step"], tree["rng"])


def checkpoint_layout(step_dir: str | Path) -> str:
    """:data:`PER_BLOCK` if checkpoint ``step_dir`` (``…/checkpoints/<s>``) holds one entry per
    block (``blocks/<l>/…``, written before the blocks were stacked), else :data:`STACKED`; read
    from orbax's tree metadata, without loading arrays."""
    meta = Path(step_dir) / "state" / "_METADATA"
    try:
        paths = json.loads(meta.read_text())["tree_metadata"]
    except (OSError, ValueError, KeyError):
        return STACKED  # unreadable metadata: orbax's restore says why
    for path in paths:
        keys = path.strip("()").replace("'", "").split(", ")
        if any(k == STACK_KEY and nxt.isdigit() for k, nxt in zip(keys, keys[1:])):
            return PER_BLOCK
    return STACKED


def _map_blocks(tree, fn):
    """``tree`` with every ``{STACK_KEY: value}`` entry of its dicts replaced by ``fn(value)``."""
    if isinstance(tree, dict):
        return {k: fn(v) if k == STACK_KEY else _map_blocks(v, fn) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):  # NamedTuples (optax states) take their fields positionally
        parts = [_map_blocks(v, fn) for v in tree]
        return type(tree)(*parts) if hasattr(tree, "_fields") else type(tree)(parts)
    return tree


def unstack_blocks(tree):
    """The per-block layout of a stacked tree: ``blocks/layers/p`` (depth, …) -> ``blocks/<l>/p``;
    arrays are sliced, ``jax.ShapeDtypeStruct`` leaves lose the depth axis (on one device)."""

    def split(stacked):
        depth = jax.tree.leaves(stacked)[0].shape[0]

        def part(a, l):
            if isinstance(a, jax.ShapeDtypeStruct):
                return jax.ShapeDtypeStruct(a.shape[1:], a.dtype)
            return a[l]

        return {str(l): jax.tree.map(lambda a: part(a, l), stacked["layers"]) for l in range(depth)}

    return _map_blocks(tree, split)


def stack_blocks(tree):
    """Inverse of :func:`unstack_blocks` on arrays: ``blocks/<l>/p`` -> ``blocks/layers/p``."""

    def stack(per_block):
        layers = [per_block[k] for k in sorted(per_block, key=int)]
        return {"layers": jax.tree.map(lambda *xs: jnp.stack(xs), *layers)}

    return _map_blocks(tree, stack)


def from_per_block(tree: dict, target: dict) -> dict:
    """A restored per-block state ``tree`` in the stacked layout of ``target`` (on its shardings)."""
    log.warning("checkpoint in the per-block layout (written before the blocks were stacked): "
                "converted to the stacked layout")
    shardings = jax.tree.map(lambda a: getattr(a, "sharding", None), target)
    return jax.tree.map(lambda a, sh: a if sh is None else jax.device_put(a, sh), stack_blocks(tree), shardings)


def checkpointer(run_dir: str | Path, keep: int = 3) -> ckpt_lib.Checkpointer:
    """The run's asynchronous :class:`dualjax.checkpoint.Checkpointer` on ``run_dir/checkpoints``."""
    return ckpt_lib.Checkpointer(Path(run_dir) / CKPT_DIR, keep=keep)


def save(ckpt: ckpt_lib.Checkpointer, step: int, state: TrainState, videos_skipped: int) -> None:
    """Start saving ``state`` (after ``step`` updates) as checkpoint ``step``."""
    ckpt.save(step, state_to_tree(state), {"step": step, "data": {"next_step": step}, "videos_skipped": videos_skipped})


def resume(ckpt: ckpt_lib.Checkpointer, state: TrainState) -> tuple[int, TrainState, int]:
    """``(s, state_s, videos_skipped)`` of the newest readable checkpoint, restored with the
    structure and shardings of ``state`` (arrays or ``jax.ShapeDtypeStruct``; newer unreadable
    checkpoints are set aside, see :meth:`~dualjax.checkpoint.Checkpointer.restore_latest`);
    ``(0, state, 0)``, said in the log, if there is none."""
    target = state_to_tree(state)
    latest = ckpt.latest_step()
    per_block = latest is not None and checkpoint_layout(ckpt.directory / str(latest)) == PER_BLOCK
    found = ckpt.restore_latest(unstack_blocks(target) if per_block else target)
    if found is not None and per_block:
        found = (found[0], from_per_block(found[1], target), found[2])
    if found is None:
        log.warning("no complete checkpoint in %s: starting from step 0", ckpt.directory)
        return 0, state, 0
    step, tree, extras = found
    if int(extras.get("data", {}).get("next_step", step)) != step:
        raise ValueError(f"checkpoint {step} has data position {extras['data']} != its step")
    return step, tree_to_state(tree), int(extras.get("videos_skipped", 0))


def latest_checkpoint(run_dir: str | Path) -> Path:
    """``run_dir/checkpoints/<s>`` of the newest complete (committed) checkpoint; ValueError if none.

    Read-only: unlike :class:`dualjax.checkpoint.Checkpointer` it never removes the temporary
    directory of a save in flight, so it is safe next to a running trainer (``dualjax probe``)."""
    ckdir = Path(run_dir) / CKPT_DIR
    steps = ckpt_lib.committed_steps(ckdir)
    if not steps:
        raise ValueError(f"no complete checkpoints under {ckdir}")
    return ckdir / str(steps[-1])


def restore_checkpoint(path: str | Path, setup: Setup, sharding: TrainState | None = None) -> TrainState:
    """The state of checkpoint ``run_dir/checkpoints/<s>`` (structure from ``setup.init``; laid out
    as ``sharding``, default the first device)."""
    import orbax.checkpoint as ocp

    path = Path(path).absolute()
    if not (path.name.isdigit() and ckpt_lib.is_committed(path)):
        raise ValueError(f"{path} is not a complete checkpoint run_dir/{CKPT_DIR}/<step>")
    abstract = jax.eval_shape(setup.init)
    if sharding is None:
        sharding = jax.tree.map(lambda _: jax.sharding.SingleDeviceSharding(jax.devices()[0]), abstract)
    target = jax.tree.map(lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh), abstract, sharding)
    try:
        with ocp.StandardCheckpointer() as reader:  # read-only (see latest_checkpoint)
            tree = state_to_tree(target)
            if checkpoint_layout(path) == PER_BLOCK:
                tree = from_per_block(reader.restore(path / "state", unstack_blocks(tree)), tree)
            else:
                tree = reader.restore(path / "state", tree)
    except Exception as err:  # noqa: BLE001 - orbax / tensorstore raise bare Exceptions for damaged files
        raise ckpt_lib.unreadable(path.parent, [(int(path.name), err)]) from err
    return tree_to_state(tree)


def checkpoint_path(path: str | Path) -> tuple[Path, Path | None]:
    """``(run_dir, checkpoint)`` of a run directory (checkpoint ``None``: the newest readable) or
    of one checkpoint ``run_dir/checkpoints/<s>``; ValueError naming the path otherwise."""
    path = Path(path)
    if (path / CONFIG).is_file():
        return path, None
    run_dir = path.parent.parent
    if path.parent.name == CKPT_DIR and (run_dir / CONFIG).is_file():
        steps = ckpt_lib.committed_steps(run_dir / CKPT_DIR)
        if not (path.name.isdigit() and int(path.name) in steps):
            raise ValueError(f"{path} is not a complete checkpoint; the complete ones in {run_dir / CKPT_DIR} "
                             f"are steps {steps}")
        return run_dir, path
    raise ValueError(f"{path} is neither a run directory (with {CONFIG}) nor a checkpoint DIR/{CKPT_DIR}/<step>")


def restore_newest(run_dir: str | Path, setup: Setup) -> tuple[Path, TrainState]:
    """``(path, state)`` of the newest complete checkpoint of ``run_dir`` that can be read: like
    a resume, but read-only (safe next to a running trainer), so an unreadable newer one is
    named in the log and passed over, not set aside. ValueError if none can be read."""
    ckdir = Path(run_dir) / CKPT_DIR
    steps = ckpt_lib.committed_steps(ckdir)
    if not steps:
        raise ValueError(f"no complete checkpoints under {ckdir}")
    failed = []
    for step in reversed(steps):
        try:
            state = restore_checkpoint(ckdir / str(step), setup)
        except ckpt_lib.CheckpointError as err:  # unreadable: fall back, unless the config does not fit
            failed.append((step, err.__cause__ or err))
            if ckpt_lib.mismatch(failed[-1][1]):
                raise ckpt_lib.unreadable(ckdir, failed) from err
            continue
        for bad, err in failed:
            log.warning("checkpoint %s is unreadable (%s); using checkpoint %d", ckdir / str(bad),
                        ckpt_lib.short_error(err), step)
        return ckdir / str(step), state
    raise ckpt_lib.unreadable(ckdir, failed)


# --------------------------------------------------------------------------- metrics

def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of ``run_dir/metrics.jsonl``."""
    with open(Path(run_dir) / METRICS) as f:
        return [json.loads(line) for line in f if line.strip()]


def summarize(records: list[dict]) -> dict:
    """Figure-2 summary of a run: where E bottoms out, late increments, probe accuracies."""
    steps = [r["step"] for r in records]
    E = np.array([r["E"] for r in records])
    F = np.array([r["F"] for r in records])
    tail = records[len(records) * 3 // 4:] or records
    probes = [(r["step"], r["probe_top1"]) for r in records if "probe_top1" in r]
    return {
        "steps": steps[-1] + 1 if steps else 0,
        "F_first": float(F[0]), "F_last": float(F[-1]),
        "E_first": float(E[0]), "E_min": float(E.min()), "E_argmin_step": int(steps[int(E.argmin())]),
        "E_last": float(E[-1]),
        "d_theta_last_quarter": float(np.mean([r["d_theta"] for r in tail])),
        "d_psi_last_quarter": float(np.mean([r["d_psi"] for r in tail])),
        "d_xi_last_quarter": float(np.mean([r["d_xi"] for r in tail])),
        "probe_top1": probes,
    }


SERIES = ("E", "F", "d_theta", "d_psi", "d_xi", "lr")  # the per-record quantities of Figure 2


def series(records: list[dict]) -> dict:
    """Figure-2 series of a run: ``steps`` (the logged steps), one list per :data:`SERIES` key
    aligned with them, ``probe_top1`` / ``probe_train_top1`` as ``[[step, top1], ...]`` at the
    probed steps, and ``random_init_top1``: the probe of step 0 (the initial encoder), None if
    step 0 was not probed."""
    out: dict = {"steps": [int(r["step"]) for r in records]}
    out.update({key: [float(r[key]) for r in records] for key in SERIES})
    for key in ("probe_top1", "probe_train_top1"):
        out[key] = [[int(r["step"]), float(r[key])] for r in records if key in r]
    out["random_init_top1"] = next((top1 for step, top1 in out["probe_top1"] if step == 0), None)
    return out
