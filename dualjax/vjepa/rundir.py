"""The directory of a V-JEPA run, and its one checkpoint convention.

Layout of a run directory ``DIR``::

    DIR/config.json                 the run's Config (strict: ``Config.from_json``)
    DIR/metrics.jsonl               one JSON record per logged step t; ``"step": t`` = updates
                                    already applied when batch t was drawn (docs/vjepa.md)
    DIR/checkpoints/<s>/state       the whole TrainState after s updates (orbax, atomic commit)
    DIR/checkpoints/<s>/extras      {"step": s, "data": {"next_step": s}, "videos_skipped": n}
    DIR/probe.json                  written by ``dualjax probe``

Checkpoint ``s`` holds the state that the update of step ``s`` starts from, and batches are
indexed by step, so the data position of checkpoint ``s`` is ``s``: a resumed run keeps the
records with ``step < s`` and continues with batch ``s``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import jax
import numpy as np

from dualjax import checkpoint as ckpt_lib
from dualjax import rules
from dualjax.vjepa import config as config_lib
from dualjax.vjepa.step import Setup, TrainState

CONFIG, METRICS, CKPT_DIR = "config.json", "metrics.jsonl", "checkpoints"


def read_config(run_dir: str | Path) -> config_lib.Config:
    """``run_dir/config.json``, validated; ValueError if it does not exist."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise ValueError(f"{path} does not exist")
    return config_lib.Config.from_json(path.read_text()).validate()


def prepare(run_dir: str | Path, cfg: config_lib.Config, *, resume: bool) -> None:
    """Prepare ``run_dir`` for a run of ``cfg``: a resumed run requires ``cfg`` to equal its
    config.json; a fresh one writes config.json and removes old checkpoints (process 0 only)."""
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
    elif jax.process_index() == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG).write_text(cfg.to_json())
        if (out / CKPT_DIR).exists():  # a fresh run overwrites the directory, as it does metrics.jsonl
            shutil.rmtree(out / CKPT_DIR)


# --------------------------------------------------------------------------- checkpoints

def state_to_tree(state: TrainState) -> dict:
    return {"theta": state.theta, "psi": state.psi, "opt_state": state.opt_state,
            "teacher": {"xi": state.teacher.xi, "count": state.teacher.count},
            "step": state.step, "rng": state.rng}


def tree_to_state(tree: dict) -> TrainState:
    return TrainState(tree["theta"], tree["psi"], tree["opt_state"],
                      rules.TeacherState(tree["teacher"]["xi"], tree["teacher"]["count"]),
                      tree["step"], tree["rng"])


def checkpointer(run_dir: str | Path, keep: int = 3) -> ckpt_lib.Checkpointer:
    """The run's asynchronous :class:`dualjax.checkpoint.Checkpointer` on ``run_dir/checkpoints``."""
    return ckpt_lib.Checkpointer(Path(run_dir) / CKPT_DIR, keep=keep)


def save(ckpt: ckpt_lib.Checkpointer, step: int, state: TrainState, videos_skipped: int) -> None:
    """Start saving ``state`` (after ``step`` updates) as checkpoint ``step``."""
    ckpt.save(step, state_to_tree(state), {"step": step, "data": {"next_step": step}, "videos_skipped": videos_skipped})


def resume(ckpt: ckpt_lib.Checkpointer, state: TrainState) -> tuple[int, TrainState, int]:
    """``(s, state_s, videos_skipped)`` of the newest readable checkpoint, restored with the
    structure and shardings of ``state``; ``(0, state, 0)`` if there is none."""
    found = ckpt.restore_latest(state_to_tree(state))
    if found is None:
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
    with ocp.StandardCheckpointer() as reader:  # read-only (see latest_checkpoint)
        tree = reader.restore(path / "state", state_to_tree(target))
    return tree_to_state(tree)


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
