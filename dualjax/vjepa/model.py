"""The V-JEPA model as pure functions of parameter dicts, and its objective F / E.

Objective (per batch of clips x with, for each mask generator i, context indices c_i and target
indices t_i of every clip b):

    F(θ, ψ, ξ) = 1/G Σ_i  mean_b  mean_{k ∈ t_i(b)}  l[ g_ψ(f_θ(x_{c_i}); c_i, t_i, i)_k ,  LN(f_ξ(x))_k ],
    E(θ, ψ)    = F(θ, ψ, θ),

with l the per-token L1 (mean absolute error, the reference) or ½‖·‖² from
:mod:`dualjax.objectives` and LN a LayerNorm without affine parameters. There is no Ω term inside
F: as in the reference, AdamW's decoupled weight decay plays its role. Where all clips keep the
same number of targets (the reference's trimmed batch) the two means are the reference's single
mean; with padded index lists (:mod:`~dualjax.vjepa.masks`) the mean per clip runs over its real
entries only, which is the reference's average over per-GPU batches.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from dualjax import objectives
from dualjax.typing import PyTree
from dualjax.vjepa import config as config_lib
from dualjax.vjepa import data as data_lib
from dualjax.vjepa.predictor import Predictor
from dualjax.vjepa.vit import ViT, gather_tokens, layer_norm, prefix_mask


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

    ``encode(θ, x, keep=None, keep_len=None)`` : normalised clips (B, T, H, W, C) -> tokens (B, K, D);
    ``predict(ψ, z, ctx, tgt, i, n_ctx=None, n_tgt=None)`` : context tokens -> predictions at
    ``tgt`` (B, W_tgt, D). Both compute in ``cfg.compute_dtype`` with float32 parameters.
    """

    def __init__(self, cfg: config_lib.Config, seed: int | None = None):
        seed = cfg.seed if seed is None else seed
        dtype = jnp.dtype(cfg.compute_dtype)
        enc_fn = lambda rngs: ViT(cfg.model, frames=cfg.frames, size=cfg.size, tubelet=cfg.tubelet,  # noqa: E731
                                  patch=cfg.patch, width=cfg.width, depth=cfg.depth, heads=cfg.heads,
                                  mlp_ratio=cfg.mlp_ratio, uniform_power=cfg.uniform_power, dtype=dtype,
                                  unroll=cfg.block_unroll, remat=cfg.remat, rngs=rngs)
        self.encode = _Pure(enc_fn, seed)
        enc = self.encode.module
        self.width, self.heads, self.grid = enc.width, enc.heads, enc.grid
        pred_fn = lambda rngs: Predictor(grid=enc.grid, enc_width=enc.width, width=cfg.pred_width,  # noqa: E731
                                         depth=cfg.pred_depth, heads=cfg.pred_heads or enc.heads,
                                         mlp_ratio=cfg.mlp_ratio, num_mask_tokens=len(cfg.mask_blocks),
                                         uniform_power=cfg.uniform_power, dtype=dtype,
                                         unroll=cfg.block_unroll, remat=cfg.remat, rngs=rngs)
        self.predict = _Pure(pred_fn, seed + 1)

    def init(self) -> tuple[PyTree, PyTree]:
        """(θ₀, ψ₀), freshly initialised."""
        return self.encode.init_params(), self.predict.init_params()


class Features(NamedTuple):
    """The features of one evaluation of F, per mask generator i where a tuple (the collapse
    metrics of :func:`dualjax.collapse.feature_metrics` are computed on them). With padded index
    lists the ``*_real`` masks mark the real entries; ``None`` where every entry is real."""

    student: tuple  # f_θ(x_{c_i}), (B, C_i, D)
    targets: jax.Array  # LN(f_ξ(x)), (B, N, D), float32
    predictions: tuple  # g_ψ(f_θ(x_{c_i}); c_i, t_i, i), (B, T_i, D), float32
    teacher_at_student: tuple  # f_ξ(x) at c_i (before LN), (B, C_i, D)
    student_real: tuple = ()  # (B, C_i) bool or None per generator; () : all real
    predictions_real: tuple = ()  # (B, T_i) bool or None per generator; () : all real


def make_forward(model: VJEPA, loss: str = "l1"):
    """``forward(θ, ψ, ξ, batch) -> (F(θ, ψ, ξ), Features)`` with F of the module doc;
    ``batch = {"clip", "masks"}`` with uint8 clips and ``masks`` a tuple per generator of
    (ctx (B, W_ctx), tgt (B, W_tgt), n_ctx (B,), n_tgt (B,)) (:class:`~dualjax.vjepa.masks.MaskSet`)
    or of (ctx, tgt) alone (every entry real). A padded target entry adds nothing to F: the loss of
    clip b is the mean over its n_tgt[b] real targets. The target LayerNorm and the loss are
    float32 whatever the compute dtype.
    """
    loss_fn = objectives.get_loss(loss)

    def forward(theta: PyTree, psi: PyTree, xi: PyTree, batch: dict) -> tuple[jax.Array, Features]:
        x = data_lib.normalize(batch["clip"])
        t_BxNxD = model.encode(xi, x)
        h_BxNxD = layer_norm(t_BxNxD.astype(jnp.float32))
        terms, zs, us, ts, z_real, u_real = [], [], [], [], [], []
        for i, (ctx_BxC, tgt_BxT, *lengths) in enumerate(batch["masks"]):
            n_ctx, n_tgt = lengths or (None, None)
            z_BxCxD = model.encode(theta, x, ctx_BxC, n_ctx)
            u_BxTxD = model.predict(psi, z_BxCxD, ctx_BxC, tgt_BxT, i, n_ctx, n_tgt).astype(jnp.float32)
            l_BxT = loss_fn(u_BxTxD, gather_tokens(h_BxNxD, tgt_BxT))
            if n_tgt is None:
                terms.append(jnp.mean(l_BxT))
                z_real.append(None)
                u_real.append(None)
            else:
                real = prefix_mask(n_tgt, tgt_BxT.shape[1])
                terms.append(jnp.mean(jnp.sum(jnp.where(real, l_BxT, 0.0), axis=1) / n_tgt))
                z_real.append(prefix_mask(n_ctx, ctx_BxC.shape[1]))
                u_real.append(real)
            zs.append(z_BxCxD)
            us.append(u_BxTxD)
            ts.append(gather_tokens(t_BxNxD, ctx_BxC))
        feats = Features(tuple(zs), h_BxNxD, tuple(us), tuple(ts), tuple(z_real), tuple(u_real))
        return sum(terms) / len(terms), feats

    return forward


def make_objective(model: VJEPA, loss: str = "l1") -> objectives.Objective:
    """F(θ, ψ, ξ, batch) of :func:`make_forward` (its value only) and E = F(θ, ψ, θ)."""
    forward = make_forward(model, loss)

    def F(theta: PyTree, psi: PyTree, xi: PyTree, batch: dict) -> jax.Array:
        return forward(theta, psi, xi, batch)[0]

    return objectives.Objective(F=F, E=objectives.energy(F))
