"""The V-JEPA train state and its pure step, built from a config.

The train state is one pytree (:class:`TrainState`: θ, ψ, optimizer state, teacher state, step,
rng) so it can be checkpointed and restored whole. ``train_step(state, batch) -> (state,
metrics)`` follows :func:`dualjax.rules.make_step`: F and its gradient at step t with the teacher
ξ = ``rule.teacher(θ, teacher_state)`` (θ with its gradient for plain, stop_gradient(θ) for SG,
the EMA copy ξ_t for EMA, or any registered rule's), then the optimizer, then ``rule.advance`` on
θ_{t+1}; ``momentum`` is the rule's own schedule (0 for a rule without one). E(θ_t, ψ_t) is a
separate pure function (``Setup.energy``), evaluated by the loop on the batch of a logged step.

Metrics of the step made at t (see docs/vjepa.md): ``F``; ``d_theta`` = ‖θ_{t+1} − θ_t‖,
``d_psi``, ``d_xi``; ``grad_norm``, ``grad_norm_theta``, ``grad_norm_psi``, ``theta_norm``,
``psi_norm``; ``lr``, ``wd``, ``momentum`` used by that update; ``faults``, the
:func:`dualjax.faults.fault_flags` mask of the step (loss, gradients, θ/ψ/ξ); and the collapse
metrics of :func:`dualjax.collapse.feature_metrics` (``rank_student``, ``rank_teacher``,
``rank_pred``, ``cov_top_student``, ``cov_top_teacher``, ``std_target``, ``std_pred``,
``cos_student_teacher``), computed on the features of the step's own forward pass at (θ_t, ψ_t, ξ_t)
on the steps the loop logs (:func:`is_logged`; NaN on the others, docs/collapse.md).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from dualjax import collapse, faults, objectives, rules
from dualjax.typing import PyTree
from dualjax.vjepa import config as config_lib
from dualjax.vjepa import masks as masks_lib
from dualjax.vjepa import optim
from dualjax.vjepa.model import VJEPA, Features, make_forward, make_objective


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


def is_logged(cfg: config_lib.Config, t, probes: bool = True):
    """Whether the loop logs step t: every ``log_every`` steps, the last step and, with probes,
    every ``probe_every`` steps. ``t`` may be an int or a traced step counter."""
    due = (t % cfg.log_every == 0) | (t == cfg.steps - 1)
    if probes and cfg.probe_every:
        due = due | (t % cfg.probe_every == 0)
    return due


def _collapse_metrics(feats: Features) -> dict:
    return collapse.feature_metrics(feats.student, feats.targets, feats.predictions, feats.teacher_at_student,
                                    feats.student_real, feats.predictions_real)


def _skipped(feats: Features) -> dict:
    return jax.tree.map(lambda a: jnp.full(a.shape, jnp.nan, a.dtype), jax.eval_shape(_collapse_metrics, feats))


def build(cfg: config_lib.Config) -> Setup:
    """Models, objective, rule, optimizer and the pure ``train_step`` of a config."""
    cfg.validate()
    model = VJEPA(cfg)
    objective = make_objective(model, cfg.loss)
    rule = optim.make_rule(cfg)
    tx = optim.make_optimizer(cfg)
    lr, wd = optim.lr_schedule(cfg), optim.wd_schedule(cfg)
    # F with the features of its forward pass, so the collapse metrics cost no extra pass
    grad_fn = rules.loss_and_grads(rule, make_forward(model, cfg.loss), has_aux=True)

    def init() -> TrainState:
        s = rules.init_state(rule, tx, *model.init())
        return TrainState(s.theta, s.psi, s.opt_state, s.teacher, jnp.zeros((), jnp.int32),
                          jax.random.PRNGKey(cfg.seed))

    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        # the order of rules.make_step: F and ∇ at step t, optimizer, then the teacher sees θ_{t+1}
        (value, feats), (g_theta, g_psi) = grad_fn(state.theta, state.psi, state.teacher, batch)
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
            "momentum": jnp.zeros(()) if rule.momentum is None else rule.momentum(state.teacher.count),
            # every step, on device, read by the loop one step late
            "faults": faults.fault_flags(value, (g_theta, g_psi), (theta, psi, teacher.xi)),
        }
        # a few small eigenproblems, but only worth paying on the steps that are logged
        metrics.update(jax.lax.cond(is_logged(cfg, state.step), _collapse_metrics, _skipped, feats))
        rng, _ = jax.random.split(state.rng)
        return TrainState(theta, psi, opt_state, teacher, state.step + 1, rng), metrics

    return Setup(cfg, model, objective, rule, tx, init, train_step, objective.E, masks_lib.from_config(cfg))


def xla_flops(cfg: config_lib.Config, state: TrainState, batch: dict) -> float:
    """XLA's FLOP count of one ``train_step`` of ``cfg`` on ``batch`` (shapes of ``state``).

    XLA's cost analysis counts the body of a loop once, so the step is lowered (not compiled) with
    its blocks unrolled (``block_unroll`` ≥ depth): the same arithmetic as the scanned step."""
    unrolled = build(dataclasses.replace(cfg, block_unroll=max(cfg.depth, cfg.pred_depth, 32)))
    cost = jax.jit(unrolled.train_step).lower(state, batch).cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", 0.0)) if cost else 0.0


def device_batch(batch: dict) -> dict:
    """The part of a pipeline batch that the step needs (labels stay on the host)."""
    return {"clip": batch["clip"], "masks": tuple(tuple(m) for m in batch["masks"])}
