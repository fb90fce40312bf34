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
used by that update; ``clips_per_s``; ``probe_top1`` (held-out) where a probe ran.
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

from dualjax import objectives, rules
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


def make_objective(model: VJEPA, loss: str = "l1") -> objectives.Objective:
    """F(θ, ψ, ξ, batch) and E = F(θ, ψ, θ) of the module doc; ``batch = {"clip", "masks"}``
    with uint8 clips and ``masks`` a tuple of (ctx (B, n_ctx), tgt (B, n_tgt)) per generator."""
    loss_fn = objectives.get_loss(loss)

    def F(theta: PyTree, psi: PyTree, xi: PyTree, batch: dict) -> jax.Array:
        x = data_lib.normalize(batch["clip"])
        h_BxNxD = layer_norm(model.encode(xi, x))
        terms = []
        for i, (ctx_BxC, tgt_BxT) in enumerate(batch["masks"]):
            z_BxCxD = model.encode(theta, x, ctx_BxC)
            u_BxTxD = model.predict(psi, z_BxCxD, ctx_BxC, tgt_BxT, i)
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
    objective = make_objective(model, cfg.loss)
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
        updates, opt_state = tx.update((g_theta, g_psi), state.opt_state, (state.theta, state.psi))
        theta, psi = optax.apply_updates((state.theta, state.psi), updates)
        teacher = rule.advance(theta, state.teacher)
        xi_old = rule.teacher(state.theta, state.teacher)
        xi_new = rule.teacher(theta, teacher)
        metrics = {
            "F": value,
            "d_theta": _norm(jax.tree.map(jnp.subtract, theta, state.theta)),
            "d_psi": _norm(jax.tree.map(jnp.subtract, psi, state.psi)),
            "d_xi": _norm(jax.tree.map(jnp.subtract, xi_new, xi_old)),
            "grad_norm": _norm((g_theta, g_psi)),
            "grad_norm_theta": _norm(g_theta),
            "grad_norm_psi": _norm(g_psi),
            "theta_norm": _norm(theta),
            "psi_norm": _norm(psi),
            "lr": lr(state.step),
            "wd": wd(state.step),
            "momentum": momentum(state.teacher.count) if rule.name == "ema" else jnp.zeros(()),
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


# --------------------------------------------------------------------------- checkpoints

def state_to_tree(state: TrainState) -> dict:
    return {"theta": state.theta, "psi": state.psi, "opt_state": state.opt_state,
            "teacher": {"xi": state.teacher.xi, "count": state.teacher.count},
            "step": state.step, "rng": state.rng}


def tree_to_state(tree: dict) -> TrainState:
    return TrainState(tree["theta"], tree["psi"], tree["opt_state"],
                      rules.TeacherState(tree["teacher"]["xi"], tree["teacher"]["count"]),
                      tree["step"], tree["rng"])


def save_checkpoint(run_dir: Path, state: TrainState) -> Path:
    """Save the whole train state with orbax to ``run_dir/checkpoints/<step>`` (blocking)."""
    import orbax.checkpoint as ocp

    path = (Path(run_dir) / "checkpoints" / str(int(state.step))).resolve()
    ckpt = ocp.StandardCheckpointer()
    ckpt.save(path, state_to_tree(state), force=True)
    ckpt.wait_until_finished()
    return path


def latest_checkpoint(run_dir: Path) -> Path:
    ckdir = Path(run_dir) / "checkpoints"
    steps = sorted(int(p.name) for p in ckdir.glob("*") if p.name.isdigit()) if ckdir.is_dir() else []
    if not steps:
        raise ValueError(f"no checkpoints under {ckdir}")
    return ckdir / str(steps[-1])


def restore_checkpoint(path: Path, setup: Setup) -> TrainState:
    """Restore a state saved by :func:`save_checkpoint` (structure from ``setup.init``)."""
    import orbax.checkpoint as ocp

    abstract = jax.eval_shape(lambda: state_to_tree(setup.init()))
    tree = ocp.StandardCheckpointer().restore(Path(path).resolve(), abstract)
    return tree_to_state(tree)


# --------------------------------------------------------------------------- the loop

def _floats(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items()}


def train(cfg: config_lib.Config, out_dir: str | Path, *, progress: bool = True, probes: bool = True,
          log: Callable[[dict], None] | None = None, setup: Setup | None = None) -> list[dict]:
    """Train for ``cfg.steps`` steps; write ``out_dir/{config.json, metrics.jsonl, checkpoints/}``.

    Returns the list of logged records (also in metrics.jsonl). ``setup`` (from :func:`build` of
    the same config) lets callers share compiled functions between runs.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(cfg.to_json())
    if setup is None:
        setup = build(cfg)
    elif setup.cfg != cfg:
        raise ValueError("setup was built from a different config")
    step_fn = jax.jit(setup.train_step, donate_argnums=0)
    energy_fn = jax.jit(setup.energy)
    encode_fn = make_encode_fn(setup.model)
    pdata = probe_data(cfg) if probes else None
    probe_at = set(probe_schedule(cfg)) if probes else set()
    ckpt_at = {cfg.steps}
    if cfg.ckpt_every:
        ckpt_at |= set(range(cfg.ckpt_every, cfg.steps, cfg.ckpt_every))

    state = setup.init()
    batches = data_lib.train_batches(data_lib.make_source(cfg, "train"), setup.masks, cfg.batch_size,
                                     cfg.data_seed, cfg.steps, worker_count=cfg.worker_count)
    records: list[dict] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, desc=f"train {cfg.teacher}", unit="step", file=sys.stderr, dynamic_ncols=True)
    metrics_file = open(out / "metrics.jsonl", "w")
    t_last, clips_since = time.perf_counter(), 0
    try:
        for t in range(cfg.steps):
            batch = device_batch(next(batches))
            logged = t % cfg.log_every == 0 or t == cfg.steps - 1 or t in probe_at
            record: dict[str, Any] = {"step": t}
            if logged:
                record["E"] = float(energy_fn(state.theta, state.psi, batch))
            if t in probe_at:
                res = probe(cfg, encode_fn, probe_params(setup, state), pdata)
                record.update(probe_top1=res.top1, probe_train_top1=res.train_top1)
                t_last = time.perf_counter()  # do not charge the probe to throughput
                clips_since = 0
            state, metrics = step_fn(state, batch)
            clips_since += cfg.batch_size
            if logged:
                record.update(_floats(metrics))
                now = time.perf_counter()
                record["clips_per_s"] = clips_since / max(now - t_last, 1e-9)
                t_last, clips_since = now, 0
                if not math.isfinite(record["F"]):
                    raise FloatingPointError(f"non-finite F={record['F']} at step {t}")
                records.append(record)
                metrics_file.write(json.dumps(record) + "\n")
                metrics_file.flush()
                if log:
                    log(record)
                if bar is not None:
                    bar.set_postfix(F=f"{record['F']:.4f}", E=f"{record['E']:.4f}",
                                    clips_s=f"{record['clips_per_s']:.1f}", refresh=False)
            if bar is not None:
                bar.update(1)
            if t + 1 in ckpt_at:
                save_checkpoint(out, state)
    finally:
        metrics_file.close()
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
