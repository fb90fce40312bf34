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

from typing import Callable

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
                                  mlp_ratio=cfg.mlp_ratio, uniform_power=cfg.uniform_power, dtype=dtype, rngs=rngs)
        self.encode = _Pure(enc_fn, seed)
        enc = self.encode.module
        self.width, self.heads, self.grid = enc.width, enc.heads, enc.grid
        pred_fn = lambda rngs: Predictor(grid=enc.grid, enc_width=enc.width, width=cfg.pred_width,  # noqa: E731
                                         depth=cfg.pred_depth, heads=cfg.pred_heads or enc.heads,
                                         mlp_ratio=cfg.mlp_ratio, num_mask_tokens=len(cfg.mask_blocks),
                                         uniform_power=cfg.uniform_power, dtype=dtype, rngs=rngs)
        self.predict = _Pure(pred_fn, seed + 1)

    def init(self) -> tuple[PyTree, PyTree]:
        """(θ₀, ψ₀), freshly initialised."""
        return self.encode.init_params(), self.predict.init_params()


def make_objective(model: VJEPA, loss: str = "l1") -> objectives.Objective:
    """F(θ, ψ, ξ, batch) and E = F(θ, ψ, θ) of the module doc; ``batch = {"clip", "masks"}``
    with uint8 clips and ``masks`` a tuple per generator of (ctx (B, W_ctx), tgt (B, W_tgt),
    n_ctx (B,), n_tgt (B,)) (:class:`~dualjax.vjepa.masks.MaskSet`) or of (ctx, tgt) alone (every
    entry real). The target LayerNorm and the loss are float32 whatever the compute dtype.
    """
    loss_fn = objectives.get_loss(loss)

    def F(theta: PyTree, psi: PyTree, xi: PyTree, batch: dict) -> jax.Array:
        x = data_lib.normalize(batch["clip"])
        h_BxNxD = layer_norm(model.encode(xi, x).astype(jnp.float32))
        terms = []
        for i, (ctx_BxC, tgt_BxT, *lengths) in enumerate(batch["masks"]):
            n_ctx, n_tgt = lengths or (None, None)
            z_BxCxD = model.encode(theta, x, ctx_BxC, n_ctx)
            u_BxTxD = model.predict(psi, z_BxCxD, ctx_BxC, tgt_BxT, i, n_ctx, n_tgt)
            l_BxT = loss_fn(u_BxTxD, gather_tokens(h_BxNxD, tgt_BxT))
            if n_tgt is None:
                terms.append(jnp.mean(l_BxT))
            else:
                real = prefix_mask(n_tgt, tgt_BxT.shape[1])
                terms.append(jnp.mean(jnp.sum(jnp.where(real, l_BxT, 0.0), axis=1) / n_tgt))
        return sum(terms) / len(terms)

    return objectives.Objective(F=F, E=objectives.energy(F))
