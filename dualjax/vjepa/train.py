"""V-JEPA training with the paper's rules: the same ``rules.py`` / ``objectives.py`` code path as the
2×1 linear model, here driving a video ViT.

Objective (per batch of clips x with, for each mask generator i, context indices c_i and target
indices t_i):

    F(θ, ψ, ξ) = 1/G Σ_i  mean_{b, k ∈ t_i}  l[ g_ψ(f_θ(x_{c_i}); c_i, t_i, i)_k ,  LN(f_ξ(x))_k ],
    E(θ, ψ)    = F(θ, ψ, θ),

with l the per-token L1 (mean absolute error, the reference) or ½‖·‖² from
:mod:`dualjax.objectives` and LN a LayerNorm without affine parameters. The teacher ξ is
``rule.teacher(θ, teacher_state)`` — θ with its gradient (plain), stop_gradient(θ) (SG) or the
EMA copy ξ_t (EMA) — and evolves by ``rule.advance``. There is no Ω term inside F: as in the
reference, AdamW's decoupled weight decay plays its role.

The train state is one pytree (:class:`TrainState`: θ, ψ, optimizer state, teacher state, step,
rng) so it can be checkpointed and restored whole; ``train_step(state, batch) -> (state, metrics)``
is pure and jitted once with the state donated. E(θ_t, ψ_t) is a *separate* forward pass with
the online encoder as target (``energy_fn``), evaluated on the batch of the logged step before
the update, so that F and E in a log record share parameters and batch.

metrics.jsonl (one JSON object per logged step t, see docs/vjepa.md): ``step`` = number of updates
already applied; ``F``, ``E`` at (θ_t, ψ_t, ξ_t) on batch t; ``d_theta`` = ‖θ_{t+1} − θ_t‖,
``d_psi``, ``d_xi`` the increments of the update made at step t; ``grad_norm``,
``grad_norm_theta``, ``grad_norm_psi``, ``theta_norm``, ``psi_norm``; ``lr``, ``wd``, ``momentum``
used by that update; ``clips_per_s``; ``probe_top1`` (held-out) where a probe ran;
``all_finite``; ``videos_skipped`` (running total of unreadable videos passed over).

Scale (issue 6, docs/scale.md): :func:`make_parallel` lays the state out on a ``'data'`` mesh
(replicated or FSDP) and shards batches; :func:`train` checkpoints asynchronously with
:mod:`dualjax.checkpoint`, resumes exactly (``resume=True``) and stops at the first non-finite
loss / gradient / parameter (:mod:`dualjax.faults`), read from a flag computed in every step.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from dualjax import checkpoint as ckpt_lib
from dualjax import distributed as dist
from dualjax import faults, objectives, rules
from dualjax.vjepa import config as config_lib
from dualjax.vjepa import data as data_lib
from dualjax.vjepa import masks as masks_lib
from dualjax.vjepa.predictor import Predictor
from dualjax.vjepa.probe import extract_features, train_probe
from dualjax.vjepa.vit import ViT, gather_tokens, layer_norm

PyTree = Any


# --------------------------------------------------------------------------- pure model functions

class _Pure:
    """An NNX module as a pure function ``apply(params, *args)`` of a plain dict of arrays.

    ``make(rngs)`` builds the module; its structure comes from ``nnx.eval_shape`` (no arrays) and
    its initial parameters from one jitted call, so large variants initialise without eager
    per-op dispatch.
    """

    def __init__(self, make: Callable[[nnx.Rngs], nnx.Module], seed: int):
        module = nnx.eval_shape(lambda: make(nnx.Rngs(seed)))
        self.graphdef, self.abstract = nnx.split(module, nnx.Param)
        self.module = module  # abstract: static attributes (grid, width, heads) only
        self._init = jax.jit(lambda: nnx.to_pure_dict(nnx.split(make(nnx.Rngs(seed)), nnx.Param)[1]))

    def init_params(self) -> PyTree:
        return self._init()

    def __call__(self, params: PyTree, *args, **kwargs):
        state = jax.tree.map(lambda a: a, self.abstract)
        nnx.replace_by_pure_dict(state, params)
        return nnx.merge(self.graphdef, state)(*args, **kwargs)


class VJEPA:
    """Encoder f_θ and predictor g_ψ of a config as pure functions of parameter dicts.

    ``encode(θ, x, keep=None)`` : normalised clips (B, T, H, W, C) -> tokens (B, K, D);
    ``predict(ψ, z, ctx, tgt, i)`` : context tokens -> predictions at ``tgt`` (B, n_tgt, D).
    """

    def __init__(self, cfg: config_lib.Config, seed: int | None = None):
        seed = cfg.seed if seed is None else seed
        enc_fn = lambda rngs: ViT(cfg.model, frames=cfg.frames, size=cfg.size, tubelet=cfg.tubelet,  # noqa: E731
                                  patch=cfg.patch, width=cfg.width, depth=cfg.depth, heads=cfg.heads,
                                  mlp_ratio=cfg.mlp_ratio, rngs=rngs)
        self.encode = _Pure(enc_fn, seed)
        enc = self.encode.module
        self.width, self.heads, self.grid = enc.width, enc.heads, enc.grid
        pred_fn = lambda rngs: Predictor(grid=enc.grid, enc_width=enc.width, width=cfg.pred_width,  # noqa: E731
                                         depth=cfg.pred_depth, heads=cfg.pred_heads or enc.heads,
                                         mlp_ratio=cfg.mlp_ratio, num_mask_tokens=len(cfg.mask_blocks), rngs=rngs)
        self.predict = _Pure(pred_fn, seed + 1)

    def init(self) -> tuple[PyTree, PyTree]:
        """(θ₀, ψ₀), freshly initialised."""
        return self.encode.init_params(), self.predict.init_params()


def make_objective(model: VJEPA, loss: str = "l1", compute_dtype: str = "float32") -> objectives.Objective:
    """F(θ, ψ, ξ, batch) and E = F(θ, ψ, θ) of the module doc; ``batch = {"clip", "masks"}``
    with uint8 clips and ``masks`` a tuple of (ctx (B, n_ctx), tgt (B, n_tgt)) per generator.

    ``compute_dtype="bfloat16"``: the forward passes run on bf16 copies of θ, ψ, ξ and the clip
    (mixed precision; the parameters, their gradients and the optimizer stay float32), while the
    target LayerNorm and the loss are computed in float32.
    """
    loss_fn = objectives.get_loss(loss)
    dtype = jnp.dtype(compute_dtype)

    def cast(tree):
        if dtype == jnp.float32:
            return tree
        return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)

    def F(theta: PyTree, psi: PyTree, xi: PyTree, batch: dict) -> jax.Array:
        theta, psi, xi = cast(theta), cast(psi), cast(xi)
        x = data_lib.normalize(batch["clip"]).astype(dtype)
        h_BxNxD = layer_norm(model.encode(xi, x).astype(jnp.float32))
        terms = []
        for i, (ctx_BxC, tgt_BxT) in enumerate(batch["masks"]):
            z_BxCxD = model.encode(theta, x, ctx_BxC)
            u_BxTxD = model.predict(psi, z_BxCxD, ctx_BxC, tgt_BxT, i).astype(jnp.float32)
            v_BxTxD = gather_tokens(h_BxNxD, tgt_BxT)
            terms.append(jnp.mean(loss_fn(u_BxTxD, v_BxTxD)))
        return sum(terms) / len(terms)

    return objectives.Objective(F=F, E=objectives.energy(F))


# --------------------------------------------------------------------------- optimisation

def lr_schedule(cfg: config_lib.Config) -> optax.Schedule:
    """Linear warmup start_lr -> lr over ``warmup_steps``, then cosine to ``final_lr`` at ``steps``."""
    if cfg.warmup_steps == 0:
        return optax.cosine_decay_schedule(cfg.lr, cfg.steps, alpha=cfg.final_lr / cfg.lr)
    return optax.warmup_cosine_decay_schedule(cfg.start_lr, cfg.lr, cfg.warmup_steps, cfg.steps, cfg.final_lr)


def wd_schedule(cfg: config_lib.Config) -> optax.Schedule:
    """Cosine-increasing weight decay: wd(t) = wd_T + (wd_0 − wd_T)(1 + cos(π t/T))/2 (0.04 -> 0.4)."""
    w0, w1, total = cfg.weight_decay, cfg.final_weight_decay, cfg.steps

    def schedule(count):
        frac = jnp.minimum(jnp.asarray(count, jnp.float32) / total, 1.0)
        return w1 + (w0 - w1) * 0.5 * (1 + jnp.cos(jnp.pi * frac))

    return schedule


def decay_mask(params: PyTree) -> PyTree:
    """Weight decay on matrices and tensors only: no decay on biases, LayerNorm or other 1-D params."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


def make_optimizer(cfg: config_lib.Config) -> optax.GradientTransformation:
    """AdamW on (θ, ψ) with the lr and weight-decay schedules and the decay mask."""
    return optax.adamw(lr_schedule(cfg), b1=cfg.b1, b2=cfg.b2, eps=1e-8,
                       weight_decay=wd_schedule(cfg), mask=decay_mask)


def make_rule(cfg: config_lib.Config) -> rules.TeacherRule:
    momentum = rules.linear_momentum(cfg.momentum_start, cfg.momentum_end, cfg.steps)
    return rules.get_rule(cfg.teacher, momentum)


# --------------------------------------------------------------------------- state and step

class TrainState(NamedTuple):
    """Everything a run carries from step to step, as one pytree."""

    theta: PyTree
    psi: PyTree
    opt_state: optax.OptState
    teacher: rules.TeacherState
    step: jax.Array
    rng: jax.Array


class Setup(NamedTuple):
    cfg: config_lib.Config
    model: VJEPA
    objective: objectives.Objective
    rule: rules.TeacherRule
    tx: optax.GradientTransformation
    init: Callable[[], TrainState]
    train_step: Callable[[TrainState, dict], tuple[TrainState, dict]]  # pure, not jitted
    energy: Callable[[PyTree, PyTree, dict], jax.Array]  # pure E(θ, ψ, batch)
    masks: masks_lib.MultiBlockMasks


def _norm(tree: PyTree) -> jax.Array:
    return optax.tree_utils.tree_norm(tree)


def build(cfg: config_lib.Config) -> Setup:
    """Models, objective, rule, optimizer and the pure ``train_step`` of a config."""
    cfg.validate()
    model = VJEPA(cfg)
    objective = make_objective(model, cfg.loss, cfg.compute_dtype)
    rule = make_rule(cfg)
    tx = make_optimizer(cfg)
    lr, wd = lr_schedule(cfg), wd_schedule(cfg)
    momentum = rules.linear_momentum(cfg.momentum_start, cfg.momentum_end, cfg.steps)
    grad_fn = rules.loss_and_grads(rule, objective.F)

    def init() -> TrainState:
        theta, psi = model.init()
        return TrainState(theta, psi, tx.init((theta, psi)), rule.init(theta), jnp.zeros((), jnp.int32),
                          jax.random.PRNGKey(cfg.seed))

    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        # the order of rules.make_step: F and ∇ at step t, optimizer, then the teacher sees θ_{t+1}
        value, (g_theta, g_psi) = grad_fn(state.theta, state.psi, state.teacher, batch)
        if cfg.debug_nan_step >= 0:  # test hook: a NaN loss (and gradient) at one step
            poison = jnp.where(state.step == cfg.debug_nan_step, jnp.nan, 0.0).astype(value.dtype)
            value = value + poison
            g_theta, g_psi = jax.tree.map(lambda g: g + poison.astype(g.dtype), (g_theta, g_psi))
        moved, increments = rules.apply_update(
            rule, tx, rules.StepState(state.theta, state.psi, state.opt_state, state.teacher), (g_theta, g_psi))
        theta, psi, opt_state, teacher = moved
        metrics = {
            "F": value,
            **increments,
            "grad_norm": _norm((g_theta, g_psi)),
            "grad_norm_theta": _norm(g_theta),
            "grad_norm_psi": _norm(g_psi),
            "theta_norm": _norm(theta),
            "psi_norm": _norm(psi),
            "lr": lr(state.step),
            "wd": wd(state.step),
            "momentum": momentum(state.teacher.count) if rule.name == "ema" else jnp.zeros(()),
            # every step, on device: bit 0 loss, bit 1 gradients, bit 2 parameters (θ, ψ, ξ) non-finite
            "faults": (jnp.where(jnp.isfinite(value), 0, 1)
                       + jnp.where(faults.all_finite((g_theta, g_psi)), 0, 2)
                       + jnp.where(faults.all_finite((theta, psi, teacher.xi)), 0, 4)).astype(jnp.int32),
        }
        rng, _ = jax.random.split(state.rng)
        return TrainState(theta, psi, opt_state, teacher, state.step + 1, rng), metrics

    return Setup(cfg, model, objective, rule, tx, init, train_step, objective.E, masks_lib.from_config(cfg))


def device_batch(batch: dict) -> dict:
    """The part of a pipeline batch that the step needs (labels stay on the host)."""
    return {"clip": batch["clip"], "masks": tuple(tuple(m) for m in batch["masks"])}


# --------------------------------------------------------------------------- probes

class ProbeData(NamedTuple):
    clips_train: np.ndarray
    y_train: np.ndarray
    clips_test: np.ndarray
    y_test: np.ndarray


def probe_data(cfg: config_lib.Config) -> ProbeData:
    """Train / held-out clips for the probe, rendered once."""
    limit = cfg.probe_train_clips or cfg.num_train

    def take(split, n):
        batches = list(data_lib.eval_batches(data_lib.make_source(cfg, split), 256, limit=n))
        return (np.concatenate([b["clip"] for b in batches]), np.concatenate([b["label"] for b in batches]))

    return ProbeData(*take("train", limit), *take("heldout", cfg.num_heldout))


def make_encode_fn(model: VJEPA):
    """Jitted frozen encoder on uint8 clips: (params, clips) -> tokens (B, N, D)."""
    return jax.jit(lambda params, clip: model.encode(params, data_lib.normalize(clip)))


def probe(cfg: config_lib.Config, encode_fn, params: PyTree, pdata: ProbeData, batch: int = 64):
    """Attentive-probe top-1 (held-out) of the encoder with ``params``."""
    fn = lambda clips: encode_fn(params, clips)  # noqa: E731
    chunks = lambda clips, ys: ({"clip": clips[i:i + batch], "label": ys[i:i + batch]}  # noqa: E731
                                for i in range(0, len(clips), batch))
    z_tr, y_tr = extract_features(fn, chunks(pdata.clips_train, pdata.y_train))
    z_te, y_te = extract_features(fn, chunks(pdata.clips_test, pdata.y_test))
    heads = cfg.probe_heads or max(1, math.gcd(z_tr.shape[-1], 4))
    return train_probe(z_tr, y_tr, z_te, y_te, num_classes=data_lib.NUM_CLASSES, steps=cfg.probe_steps,
                       batch_size=cfg.probe_batch, lr=cfg.probe_lr, weight_decay=cfg.probe_weight_decay,
                       heads=heads, seed=cfg.seed)


def probe_params(setup: Setup, state: TrainState) -> PyTree:
    """The encoder a probe evaluates: the teacher ξ (the reference evaluates its target encoder;
    for SG and plain this is θ) or the student θ."""
    if setup.cfg.probe_encoder == "student":
        return state.theta
    return setup.rule.teacher(state.theta, state.teacher)


def probe_schedule(cfg: config_lib.Config) -> list[int]:
    """Steps at which a probe runs: every ``probe_every`` steps, plus the first and the last."""
    pts = {0, cfg.steps - 1}
    if cfg.probe_every:
        pts |= set(range(0, cfg.steps, cfg.probe_every))
    return sorted(pts)


# --------------------------------------------------------------------------- devices

FAULT_NAMES = ("F (loss)", "gradients", "parameters")  # bits 0, 1, 2 of metrics["faults"]


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
    parameters, EMA teacher and Adam moments alike (:func:`dualjax.distributed.fsdp_shardings`)."""
    abstract = jax.eval_shape(setup.init)
    if setup.cfg.sharding == "fsdp":
        return dist.fsdp_shardings(abstract, mesh, min_size=setup.cfg.fsdp_min_size)
    return dist.replicated_shardings(abstract, mesh)


def make_parallel(setup: Setup, mesh: jax.sharding.Mesh | None = None) -> Parallel:
    """:class:`Parallel` of ``setup`` on ``mesh`` (default: :func:`make_mesh`). Under these
    shardings XLA adds the gradient all-reduce (dp) or the all-gather / reduce-scatter pairs
    (fsdp); the mathematics is the single-device step."""
    mesh = make_mesh(setup.cfg) if mesh is None else mesh
    sharding = state_shardings(setup, mesh)
    repl = dist.replicated(mesh)
    init = jax.jit(setup.init, out_shardings=sharding)
    step = jax.jit(setup.train_step, out_shardings=(sharding, repl), donate_argnums=0)
    energy = jax.jit(setup.energy, out_shardings=repl)
    nproc, pid = jax.process_count(), jax.process_index()

    def put_batch(batch: dict) -> dict:
        batch = device_batch(batch)
        if nproc > 1:  # this process's rows of the global batch
            rows = setup.cfg.batch_size // nproc
            batch = jax.tree.map(lambda a: np.asarray(a)[pid * rows:(pid + 1) * rows], batch)
        return dist.shard_batch(batch, mesh)

    return Parallel(mesh, sharding, init, step, energy, put_batch)


def raise_on_faults(step: int, flags) -> None:
    """Raise :class:`dualjax.faults.NonFiniteError` naming ``step`` and the non-finite quantities
    if the ``faults`` bitmask of a step's metrics is not 0 (this synchronizes on it)."""
    bits = int(flags)
    if bits:
        raise faults.NonFiniteError(step, [name for i, name in enumerate(FAULT_NAMES) if bits >> i & 1])


# --------------------------------------------------------------------------- checkpoints

CKPT_DIR = "checkpoints"


def state_to_tree(state: TrainState) -> dict:
    return {"theta": state.theta, "psi": state.psi, "opt_state": state.opt_state,
            "teacher": {"xi": state.teacher.xi, "count": state.teacher.count},
            "step": state.step, "rng": state.rng}


def tree_to_state(tree: dict) -> TrainState:
    return TrainState(tree["theta"], tree["psi"], tree["opt_state"],
                      rules.TeacherState(tree["teacher"]["xi"], tree["teacher"]["count"]),
                      tree["step"], tree["rng"])


def checkpointer(run_dir: str | Path, keep: int = 3, async_save: bool = True) -> ckpt_lib.Checkpointer:
    """The run's :class:`dualjax.checkpoint.Checkpointer` on ``run_dir/checkpoints`` (step ``s`` =
    the state after ``s`` updates, in ``checkpoints/<s>/{state,extras}``)."""
    return ckpt_lib.Checkpointer(Path(run_dir) / CKPT_DIR, keep=keep, async_save=async_save)


def save_checkpoint(run_dir: Path, state: TrainState, extras: dict | None = None) -> Path:
    """Save the whole train state to ``run_dir/checkpoints/<step>`` and wait until it is committed."""
    with checkpointer(run_dir, keep=1_000_000, async_save=False) as ck:
        ck.save(int(state.step), state_to_tree(state), extras or {"step": int(state.step)})
    return Path(run_dir) / CKPT_DIR / str(int(state.step))


def latest_checkpoint(run_dir: Path) -> Path:
    """``run_dir/checkpoints/<s>`` of the newest complete (committed) checkpoint; ValueError if none.

    Read-only: unlike :class:`dualjax.checkpoint.Checkpointer` it never removes the temporary
    directory of a save in flight, so it is safe next to a running trainer (``dualjax probe``)."""
    ckdir = Path(run_dir) / CKPT_DIR
    steps = sorted(int(p.name) for p in ckdir.iterdir()
                   if p.name.isdigit() and (p / ckpt_lib._COMMIT_FILE).exists()) if ckdir.is_dir() else []
    if not steps:
        raise ValueError(f"no complete checkpoints under {ckdir}")
    return ckdir / str(steps[-1])


def _target(setup: Setup, sharding: TrainState | None) -> dict:
    abstract = jax.eval_shape(setup.init)
    if sharding is None:
        sharding = jax.tree.map(lambda _: jax.sharding.SingleDeviceSharding(jax.devices()[0]), abstract)
    return state_to_tree(jax.tree.map(lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh),
                                      abstract, sharding))


def restore_checkpoint(path: Path, setup: Setup, sharding: TrainState | None = None) -> TrainState:
    """The state of checkpoint ``run_dir/checkpoints/<s>`` (structure from ``setup.init``; laid out
    as ``sharding``, default the first device)."""
    import orbax.checkpoint as ocp

    path = Path(path).absolute()
    if not (path.name.isdigit() and (path / ckpt_lib._COMMIT_FILE).exists()):
        raise ValueError(f"{path} is not a complete checkpoint run_dir/{CKPT_DIR}/<step>")
    with ocp.StandardCheckpointer() as reader:  # read-only (see latest_checkpoint)
        tree = reader.restore(path / "state", _target(setup, sharding))
    return tree_to_state(tree)


# --------------------------------------------------------------------------- the loop

def _floats(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items()}


def _config_diff(a: config_lib.Config, b: config_lib.Config) -> list[str]:
    da, db = dataclasses.asdict(a), dataclasses.asdict(b)
    return [f"{k}: {da[k]!r} != {db[k]!r}" for k in da if da[k] != db[k]]


def train(cfg: config_lib.Config, out_dir: str | Path, *, progress: bool = True, probes: bool = True,
          log: Callable[[dict], None] | None = None, setup: Setup | None = None, resume: bool = False,
          mesh: jax.sharding.Mesh | None = None) -> list[dict]:
    """Train for ``cfg.steps`` steps; write ``out_dir/{config.json, metrics.jsonl, checkpoints/}``.

    Returns the list of records logged by this call (also appended to metrics.jsonl).
    ``setup`` (from :func:`build` of the same config) lets callers share compiled functions.

    **Devices.** The state lives on :func:`make_mesh` (all devices; ``sharding`` dp or fsdp) and
    each batch is sharded over it (:func:`make_parallel`).

    **Checkpoints and resume.** Every ``ckpt_every`` steps and at the end the whole
    :class:`TrainState` (θ, ψ, AdamW state with its schedule count, teacher state with the EMA
    count, step, rng) is saved asynchronously as ``checkpoints/<s>`` (keep the newest
    ``ckpt_keep``), with extras ``{"step": s, "data": {"next_step": s}, "videos_skipped": n}``
    — batches are indexed by step, so the data-iterator position is the step. A fresh run
    removes old checkpoints of ``out_dir``. ``resume=True`` requires ``cfg`` to equal
    ``out_dir/config.json``, restores the newest complete checkpoint ``s`` (or starts at 0 if
    there is none), keeps the metrics.jsonl lines with ``step < s`` and continues with batch
    ``s``; the lr / wd schedules (AdamW count) and the momentum schedule (teacher count) come
    back with the state, so every later record equals that of an uninterrupted run.

    **Faults.** With ``check_finite`` the ``faults`` flags computed inside every jitted step are
    read one step late (so the host never waits for the step it just dispatched) and at every
    logged step and save; a non-finite loss, gradient or parameter raises
    :class:`dualjax.faults.NonFiniteError` naming the step and the quantities, nothing from that
    step is logged or saved, and in-flight saves of earlier steps are committed first.
    """
    out = Path(out_dir)
    lead = jax.process_index() == 0
    if resume:
        stored_path = out / "config.json"
        if not stored_path.is_file():
            raise ValueError(f"cannot resume: {stored_path} does not exist")
        stored = config_lib.Config.from_json(stored_path.read_text())
        if stored != cfg:
            raise ValueError(f"cannot resume {out} with a different config: {'; '.join(_config_diff(cfg, stored))}")
    elif lead:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(cfg.to_json())
        if (out / CKPT_DIR).exists():  # a fresh run overwrites the directory, as it does metrics.jsonl
            import shutil

            shutil.rmtree(out / CKPT_DIR)
    if setup is None:
        setup = build(cfg)
    elif setup.cfg != cfg:
        raise ValueError("setup was built from a different config")
    par = make_parallel(setup, mesh)
    encode_fn = make_encode_fn(setup.model)
    pdata = probe_data(cfg) if probes else None
    probe_at = set(probe_schedule(cfg)) if probes else set()
    ckpt_at = {cfg.steps}
    if cfg.ckpt_every:
        ckpt_at |= set(range(cfg.ckpt_every, cfg.steps, cfg.ckpt_every))

    ckpt = checkpointer(out, cfg.ckpt_keep)
    writer = ckpt_lib.MetricsWriter(out / "metrics.jsonl")
    bar = None
    try:
        state = par.init()
        start, skipped = 0, 0
        if resume:
            found = ckpt.restore_latest(state_to_tree(state))
            if found is not None:
                start, tree, extras = found
                state = tree_to_state(tree)
                skipped = int(extras.get("videos_skipped", 0))
                if int(extras.get("data", {}).get("next_step", start)) != start:
                    raise ValueError(f"checkpoint {start} has data position {extras['data']} != its step")
        if lead:
            writer.truncate(start - 1)  # the records of steps < start: those of the restored state
        batches = data_lib.train_batches(data_lib.make_source(cfg, "train"), setup.masks, cfg.batch_size,
                                         cfg.data_seed, cfg.steps, start_step=start, worker_count=cfg.worker_count)
        records: list[dict] = []
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.steps, initial=start, desc=f"train {cfg.teacher}", unit="step", file=sys.stderr,
                       dynamic_ncols=True)
        t_last, clips_since = time.perf_counter(), 0
        pending = None  # (step, faults flag) not yet read
        for t in range(start, cfg.steps):
            host = next(batches)
            if "skipped" in host:
                skipped += int(np.sum(host["skipped"]))
            batch = par.put_batch(host)
            logged = t % cfg.log_every == 0 or t == cfg.steps - 1 or t in probe_at
            record: dict[str, Any] = {"step": t}
            if logged:
                record["E"] = par.energy(state.theta, state.psi, batch)
            if t in probe_at:
                res = probe(cfg, encode_fn, probe_params(setup, state), pdata)
                record.update(probe_top1=res.top1, probe_train_top1=res.train_top1)
                t_last = time.perf_counter()  # do not charge the probe to throughput
                clips_since = 0
            state, metrics = par.step(state, batch)
            clips_since += cfg.batch_size
            if cfg.check_finite:
                if pending is not None:
                    raise_on_faults(*pending)
                pending = (t, metrics["faults"])
            if logged or t + 1 in ckpt_at:
                if pending is not None:
                    raise_on_faults(*pending)
                    pending = None
            if logged:
                flags = metrics.pop("faults")
                record.update(_floats(metrics))
                record["E"] = float(record["E"])
                record["all_finite"] = int(flags) == 0
                record["videos_skipped"] = skipped
                now = time.perf_counter()
                record["clips_per_s"] = clips_since / max(now - t_last, 1e-9)
                t_last, clips_since = now, 0
                records.append(record)
                if lead:
                    writer.write(record)
                if log:
                    log(record)
                if bar is not None:
                    bar.set_postfix(F=f"{record['F']:.4f}", E=f"{record['E']:.4f}",
                                    clips_s=f"{record['clips_per_s']:.1f}", refresh=False)
            if bar is not None:
                bar.update(1)
            if t + 1 in ckpt_at:
                ckpt.save(t + 1, state_to_tree(state),
                          {"step": t + 1, "data": {"next_step": t + 1}, "videos_skipped": skipped})
        if pending is not None:
            raise_on_faults(*pending)
    except faults.NonFiniteError as err:
        ckpt.wait()
        last = ckpt.latest_step()
        err.add_note(f"run {out}: last good checkpoint "
                     + (f"{out / CKPT_DIR / str(last)} (resume with --resume)" if last is not None else "none"))
        raise
    finally:
        writer.close()
        ckpt.close()
        if bar is not None:
            bar.close()
    return records


def read_metrics(run_dir: str | Path) -> list[dict]:
    with open(Path(run_dir) / "metrics.jsonl") as f:
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


def quick_run(out_dir: str | Path, *, steps: int = 60, teacher: str = "sg", config: str = "tiny",
              progress: bool = False, probes: bool = True, **overrides) -> dict:
    """A small run for ``dualjax reproduce``: trains ``config`` with ``teacher`` for ``steps``
    steps into ``out_dir`` and returns ``{"records": [...], "summary": {...}}``."""
    cfg = config_lib.override(config_lib.load(config), {"steps": steps, "teacher": teacher, **overrides})
    if cfg.warmup_steps >= cfg.steps:
        cfg = dataclasses.replace(cfg, warmup_steps=max(0, cfg.steps // 10))
    records = train(cfg.validate(), out_dir, progress=progress, probes=probes)
    return {"records": records, "summary": summarize(records)}
