"""Video ViT encoder f_θ (Flax NNX): tubelet embedding, fixed 3D sin-cos positions, pre-norm blocks.

Shapes: a clip batch is ``x_BxTxHxWxC``; a tubelet of t×p×p pixels becomes one token, so the
token grid is (T/t)×(H/p)×(W/p) = N tokens in (time, row, column) raster order. The encoder
may see only the tokens listed in ``keep_BxK`` (the V-JEPA context): the positions are added
*before* the selection, as in the reference, so every token keeps its place in the grid.

Variant table (width / depth / heads, MLP ratio 4, qkv bias, LayerNorm eps 1e-6, no CLS token,
final LayerNorm): tiny 192/12/3, small 384/12/6, base 768/12/12, large 1024/24/16,
huge 1280/32/16. Width, depth and heads can be overridden for CPU-sized models.

Blocks are stored **stacked** (:class:`Blocks`): one parameter per kind with a leading ``depth``
axis (``blocks/layers/attn/q/kernel`` is (depth, D, D)), and the forward is a ``jax.lax.scan`` over that
axis, so the compiled step, the optimizer, the EMA update and the clipping see one leaf per kind
rather than one per block and compile time no longer grows with depth. The per-block parameters
are drawn exactly as for a list of :class:`Block` (same RNG stream, same order) and stacked.

Init (the reference's effective one, ``app/vjepa/utils.py: init_video_model``): every Linear and
the tubelet Conv3d weight N(0, 0.02²) (the reference's ``trunc_normal_(std=0.02)`` cuts at ±2 in
absolute value, i.e. at 100 σ: untruncated in practice), zero biases, LayerNorm (1, 0). The models'
own depth rescaling (``_rescale_blocks``) is undone there by re-initialising every Linear, so
there is none here.

Precision (``dtype``): parameters stay float32; with ``dtype=bfloat16`` every Linear / Conv runs in
bf16 (its inputs and weights cast), while the residual stream, the positions, LayerNorm and the
attention softmax stay float32 (the reference's ``torch.autocast(bfloat16)``: LayerNorm and softmax
in float32, a bf16 matmul output added to a float32 residual is float32).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


class Variant(NamedTuple):
    width: int
    depth: int
    heads: int


VARIANTS: dict[str, Variant] = {
    "tiny": Variant(192, 12, 3),
    "small": Variant(384, 12, 6),
    "base": Variant(768, 12, 12),
    "large": Variant(1024, 24, 16),
    "huge": Variant(1280, 32, 16),
}

LN_EPS = 1e-6
INIT_STD = 0.02
weight_init = nnx.initializers.normal(stddev=INIT_STD)


def variant(name: str, width: int = 0, depth: int = 0, heads: int = 0) -> Variant:
    """The variant ``name`` with any non-zero override applied; checks heads divide the width."""
    if name not in VARIANTS:
        raise ValueError(f"unknown ViT variant {name!r}; choose one of {sorted(VARIANTS)}")
    base = VARIANTS[name]
    v = Variant(width or base.width, depth or base.depth, heads or base.heads)
    if v.width % v.heads:
        raise ValueError(f"width={v.width} is not divisible by heads={v.heads}")
    return v


# --------------------------------------------------------------------------- positions

def sincos_1d(dim: int, pos: np.ndarray) -> np.ndarray:
    """[sin(pos ω_k), cos(pos ω_k)], ω_k = 10000^(−k/(dim/2)), k < dim/2: shape (len(pos), dim)."""
    if dim % 2:
        raise ValueError(f"sin-cos embedding dimension must be even, got {dim}")
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2))
    angles = np.outer(pos.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def sincos_3d(grid: tuple[int, int, int], dim: int, uniform_power: bool = True) -> np.ndarray:
    """Fixed 3D sin-cos positions, (T·H·W, dim) in raster order, channels [time | row | column].

    ``uniform_power=True`` (every reference pretraining config): each axis gets d = 2⌈dim/6⌉
    channels and the concatenation is cut to ``dim``; ``False``: dim/2 for time, dim/4 each for
    the row and the column (``src/models/utils/pos_embs.py``)."""
    if uniform_power:
        d_t = d_h = d_w = 2 * math.ceil(dim / 6)
    else:
        if dim % 4:
            raise ValueError(f"3D sin-cos positions with uniform_power=False need a width divisible by 4, got {dim}")
        d_t, d_h = dim // 2, dim // 4
        d_w = dim - d_t - d_h
    gt, gh, gw = grid
    t, h, w = np.meshgrid(np.arange(gt), np.arange(gh), np.arange(gw), indexing="ij")
    emb = np.concatenate([sincos_1d(d_t, t), sincos_1d(d_h, h), sincos_1d(d_w, w)], axis=1)[:, :dim]
    return emb.astype(np.float32)


def gather_tokens(x_BxNxD: jax.Array, idx_BxK: jax.Array) -> jax.Array:
    """Tokens ``x[b, idx[b, k]]``: (B, K, D)."""
    return jnp.take_along_axis(x_BxNxD, idx_BxK[..., None].astype(jnp.int32), axis=1)


# --------------------------------------------------------------------------- layers

def _linear(din: int, dout: int, rngs: nnx.Rngs, bias: bool = True, dtype=jnp.float32) -> nnx.Linear:
    return nnx.Linear(din, dout, use_bias=bias, kernel_init=weight_init, bias_init=nnx.initializers.zeros,
                      dtype=dtype, param_dtype=jnp.float32, rngs=rngs)


def _layer_norm(width: int, rngs: nnx.Rngs) -> nnx.LayerNorm:
    """LayerNorm (eps 1e-6) computed and returned in float32 whatever the compute dtype."""
    return nnx.LayerNorm(width, epsilon=LN_EPS, dtype=jnp.float32, param_dtype=jnp.float32, rngs=rngs)


def layer_norm(x: jax.Array, eps: float = LN_EPS) -> jax.Array:
    """LayerNorm over the last axis without affine parameters (the target normalisation)."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps)


def prefix_mask(lengths_B: jax.Array, width: int) -> jax.Array:
    """(B, width) bool: entry k of row b is real iff k < lengths[b] (padded index lists)."""
    return jnp.arange(width)[None, :] < lengths_B[:, None]


class Attention(nnx.Module):
    """Multi-head attention; ``kv`` defaults to the queries' own tokens (self-attention).

    ``valid_BxM`` (bool, optional) leaves the padded keys out: their attention weight is 0."""

    def __init__(self, width: int, heads: int, *, rngs: nnx.Rngs, kv_width: int | None = None, dtype=jnp.float32):
        self.heads = heads
        self.q = _linear(width, width, rngs, dtype=dtype)
        self.kv = _linear(kv_width or width, 2 * width, rngs, dtype=dtype)
        self.proj = _linear(width, width, rngs, dtype=dtype)

    def __call__(self, x_BxNxD: jax.Array, kv_BxMxE: jax.Array | None = None,
                 valid_BxM: jax.Array | None = None) -> jax.Array:
        src = x_BxNxD if kv_BxMxE is None else kv_BxMxE
        B, N, D = x_BxNxD.shape
        M = src.shape[1]
        H = self.heads
        q = self.q(x_BxNxD).reshape(B, N, H, D // H)
        k, v = jnp.split(self.kv(src).reshape(B, M, 2, H, D // H), 2, axis=2)
        mask = None if valid_BxM is None else valid_BxM[:, None, None, :]
        # bf16 inputs: logits and softmax in float32 (jax's XLA attention promotes them)
        y = jax.nn.dot_product_attention(q, k[:, :, 0], v[:, :, 0], mask=mask)
        return self.proj(y.reshape(B, N, D))


class MLP(nnx.Module):
    def __init__(self, width: int, hidden: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.fc1 = _linear(width, hidden, rngs, dtype=dtype)
        self.fc2 = _linear(hidden, width, rngs, dtype=dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc2(jax.nn.gelu(self.fc1(x), approximate=False))


class Block(nnx.Module):
    """Pre-norm transformer block: x + Attn(LN x), then x + MLP(LN x); x stays float32."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.norm1 = _layer_norm(width, rngs)
        self.attn = Attention(width, heads, rngs=rngs, dtype=dtype)
        self.norm2 = _layer_norm(width, rngs)
        self.mlp = MLP(width, int(width * mlp_ratio), rngs=rngs, dtype=dtype)

    def __call__(self, x_BxNxD: jax.Array, valid_BxN: jax.Array | None = None) -> jax.Array:
        x_BxNxD = x_BxNxD + self.attn(self.norm1(x_BxNxD), valid_BxM=valid_BxN).astype(jnp.float32)
        return x_BxNxD + self.mlp(self.norm2(x_BxNxD)).astype(jnp.float32)


STACK_KEY = "blocks"  # the attribute / parameter-dict key of stacked blocks (leading depth axis)


def is_stacked(path: tuple) -> bool:
    """Whether the leaf at ``path`` (a ``jax.tree_util`` key path) lies under :data:`STACK_KEY`, so
    that its leading axis is the depth axis of stacked blocks."""
    return any(getattr(key, "key", None) == STACK_KEY for key in path)


def stack_modules(modules: list[nnx.Module]) -> nnx.Module:
    """One module of the modules' common structure whose every array is the stack of theirs along a
    new leading axis: parameter p of the result is (len(modules),) + p.shape."""
    if not modules:
        raise ValueError("cannot stack an empty list of modules (depth must be ≥ 1)")
    graphdef, first = nnx.split(modules[0])
    states = [first] + [nnx.split(m)[1] for m in modules[1:]]
    return nnx.merge(graphdef, jax.tree.map(lambda *xs: jnp.stack(xs), *states))


class Blocks(nnx.Module):
    """``depth`` pre-norm blocks x ← Block_l(x), l = 0 … depth − 1, with stacked parameters.

    ``self.layers`` is one :class:`Block` whose parameters carry a leading depth axis, built from
    ``depth`` blocks drawn in order from ``rngs`` (the init of an unrolled list of blocks); the
    forward scans over that axis, ``unroll`` blocks per iteration (≥ depth: no loop, the blocks
    unrolled: the same values, a longer compile). ``remat`` recomputes each block's activations in
    the backward pass instead of storing them (less memory, one more forward)."""

    def __init__(self, depth: int, width: int, heads: int, mlp_ratio: float, *, rngs: nnx.Rngs,
                 dtype=jnp.float32, unroll: int = 1, remat: bool = False):
        self.depth = depth
        self.unroll = unroll
        self.remat = remat
        self.layers = stack_modules([Block(width, heads, mlp_ratio, rngs=rngs, dtype=dtype) for _ in range(depth)])

    def __call__(self, x_BxNxD: jax.Array, valid_BxN: jax.Array | None = None) -> jax.Array:
        graphdef, params = nnx.split(self.layers)

        def body(x, p):
            return nnx.merge(graphdef, p)(x, valid_BxN), None

        if self.remat:
            body = jax.checkpoint(body)
        unroll = True if self.unroll >= self.depth else self.unroll
        return jax.lax.scan(body, x_BxNxD, params, unroll=unroll)[0]


class ViT(nnx.Module):
    """Encoder f_θ: clip ``x_BxTxHxWxC`` (float, normalised) -> tokens ``z_BxKxD`` (float32).

    With ``keep_BxK`` only those tokens (indices into the N-token grid) enter the blocks; with
    ``keep_len_B`` only the first ``keep_len[b]`` of row b are real (the rest is padding, left out
    of attention).
    """

    def __init__(self, name: str = "tiny", *, frames: int, size: int, tubelet: int = 2, patch: int = 16,
                 channels: int = 3, width: int = 0, depth: int = 0, heads: int = 0, mlp_ratio: float = 4.0,
                 uniform_power: bool = True, dtype=jnp.float32, unroll: int = 1, remat: bool = False,
                 rngs: nnx.Rngs):
        v = variant(name, width, depth, heads)
        if frames % tubelet or size % patch:
            raise ValueError(f"clip {frames}x{size}x{size} is not divisible by tubelet {tubelet}x{patch}x{patch}")
        self.width, self.depth, self.heads = v
        self.grid = (frames // tubelet, size // patch, size // patch)
        self.uniform_power = uniform_power
        self.embed = nnx.Conv(channels, v.width, kernel_size=(tubelet, patch, patch), strides=(tubelet, patch, patch),
                              padding="VALID", kernel_init=weight_init, bias_init=nnx.initializers.zeros,
                              dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
        self.blocks = Blocks(v.depth, v.width, v.heads, mlp_ratio, rngs=rngs, dtype=dtype, unroll=unroll,
                             remat=remat)
        self.norm = _layer_norm(v.width, rngs)

    @property
    def num_tokens(self) -> int:
        return math.prod(self.grid)

    def __call__(self, x_BxTxHxWxC: jax.Array, keep_BxK: jax.Array | None = None,
                 keep_len_B: jax.Array | None = None) -> jax.Array:
        tok = self.embed(x_BxTxHxWxC)
        B = tok.shape[0]
        x_BxNxD = tok.reshape(B, -1, self.width) + sincos_3d(self.grid, self.width, self.uniform_power)
        valid = None
        if keep_BxK is not None:
            x_BxNxD = gather_tokens(x_BxNxD, keep_BxK)
            if keep_len_B is not None:
                valid = prefix_mask(keep_len_B, keep_BxK.shape[1])
        return self.norm(self.blocks(x_BxNxD, valid))


def flops_per_token(width: int, depth: int, tokens: int, mlp_ratio: float = 4.0) -> float:
    """Forward multiply-adds × 2 per token of ``depth`` blocks over ``tokens`` tokens:
    4D² (q, kv, proj) + 2·r·D² (MLP) per block, plus 2·N·D for QKᵀ and AV."""
    per_block = 2 * (4 * width**2 + 2 * mlp_ratio * width**2 + 2 * tokens * width)
    return depth * per_block
