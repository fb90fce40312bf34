"""The V-JEPA predictor g_ψ (Flax NNX): a narrow ViT that fills in the masked tokens.

    u = g_ψ(f_θ(x_ctx); ctx, tgt, i) :
        h_ctx = W_in f_θ(x_ctx) + pos[ctx]        (context tokens, width D -> D_p)
        h_tgt = m_i + pos[tgt]                      (mask token of generator i at each target)
        [·, u'] = Blocks(h_ctx ‖ h_tgt),  u = W_out LN(u')   (back to width D)

The mask tokens m_i (one per mask generator) start at zero; the predictor has its own fixed
3D sin-cos positions at its width D_p (``uniform_power`` as the encoder's). Padded entries of the
index lists (beyond ``n_ctx[b]`` / ``n_tgt[b]``) are left out of attention. Init, precision and
the stacked blocks (one scan over a leading depth axis) as in :mod:`dualjax.vjepa.vit`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from dualjax.vjepa.vit import Blocks, _layer_norm, _linear, gather_tokens, prefix_mask, sincos_3d


class Predictor(nnx.Module):
    def __init__(self, *, grid: tuple[int, int, int], enc_width: int, width: int = 384, depth: int = 12,
                 heads: int = 12, mlp_ratio: float = 4.0, num_mask_tokens: int = 2, uniform_power: bool = True,
                 dtype=jnp.float32, unroll: int = 1, remat: bool = False, rngs: nnx.Rngs):
        if width % heads:
            raise ValueError(f"predictor width={width} is not divisible by heads={heads}")
        self.grid = tuple(grid)
        self.width = width
        self.uniform_power = uniform_power
        self.embed = _linear(enc_width, width, rngs, dtype=dtype)
        self.mask_tokens = nnx.Param(jnp.zeros((num_mask_tokens, 1, 1, width)))
        self.blocks = Blocks(depth, width, heads, mlp_ratio, rngs=rngs, dtype=dtype, unroll=unroll, remat=remat)
        self.norm = _layer_norm(width, rngs)
        self.proj = _linear(width, enc_width, rngs, dtype=dtype)

    def __call__(self, z_BxCxD: jax.Array, ctx_BxC: jax.Array, tgt_BxT: jax.Array, mask_index: int = 0,
                 n_ctx_B: jax.Array | None = None, n_tgt_B: jax.Array | None = None) -> jax.Array:
        """Predictions at the target positions: (B, T, D), float32."""
        pos_1xNxP = jnp.asarray(sincos_3d(self.grid, self.width, self.uniform_power))[None]
        B, C = ctx_BxC.shape
        pos_BxNxP = jnp.broadcast_to(pos_1xNxP, (B,) + pos_1xNxP.shape[1:])
        h_ctx = self.embed(z_BxCxD).astype(jnp.float32) + gather_tokens(pos_BxNxP, ctx_BxC)
        h_tgt = self.mask_tokens[mask_index] + gather_tokens(pos_BxNxP, tgt_BxT)
        x = jnp.concatenate([h_ctx, h_tgt], axis=1)
        valid = None
        if n_ctx_B is not None:
            valid = jnp.concatenate([prefix_mask(n_ctx_B, C), prefix_mask(n_tgt_B, tgt_BxT.shape[1])], axis=1)
        x = self.blocks(x, valid)
        return self.proj(self.norm(x[:, C:])).astype(jnp.float32)
