"""The V-JEPA model as pure functions of parameter dicts, and its objective F / E.

Objective (per batch of clips x with, for each mask generator i, context indices c_i and target
indices t_i):

    F(θ, ψ, ξ) = 1/G Σ_i  mean_{b, k ∈ t_i}  l[ g_ψ(f_θ(x_{c_i}); c_i, t_i, i)_k ,  LN(f_ξ(x))_k ],
    E(θ, ψ)    = F(θ, ψ, θ),

with l the per-token L1 (mean absolute error, the reference) or ½‖·‖² from
:mod:`dualjax.objectives` and LN a LayerNorm without affine parameters. There is no Ω term inside
F: as in the reference, AdamW's decoupled weight decay plays its role.
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
from dualjax.vjepa.vit import ViT, gather_tokens, layer_norm


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
