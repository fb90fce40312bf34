"""Shapes of encoder / predictor / probe, positions and the variant table."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from dualjax.vjepa import vit
from dualjax.vjepa.predictor import Predictor


def test_variant_table():
    assert vit.VARIANTS["tiny"] == (192, 12, 3)
    assert vit.VARIANTS["small"] == (384, 12, 6)
    assert vit.VARIANTS["base"] == (768, 12, 12)
    assert vit.VARIANTS["large"] == (1024, 24, 16)
    assert vit.VARIANTS["huge"] == (1280, 32, 16)
    assert vit.variant("base", depth=2) == (768, 2, 12)
    with pytest.raises(ValueError, match="giant"):
        vit.variant("giant")
    with pytest.raises(ValueError, match="heads=5"):
        vit.variant("tiny", heads=5)


def _reference_positions(grid, dim, uniform_power):
    """The reference's 3D sin-cos table (src/models/utils/pos_embs.py), written out per token:
    [time | row | column] blocks of [sin(p ω_k) | cos(p ω_k)], ω_k = 10000^(−2k/d), cut to dim."""
    if uniform_power:
        sizes = (int(np.ceil(dim / 6) * 2),) * 3
    else:
        sizes = (dim // 2, dim // 4, dim // 4)

    def one(d, p):
        om = 1.0 / 10000 ** (np.arange(d // 2) / (d / 2))
        return np.concatenate([np.sin(p * om), np.cos(p * om)])

    rows = [np.concatenate([one(d, p) for d, p in zip(sizes, (t, h, w))])[:dim]
            for t in range(grid[0]) for h in range(grid[1]) for w in range(grid[2])]
    return np.array(rows)


@pytest.mark.parametrize("uniform_power", [True, False])
@pytest.mark.parametrize("dim", [16, 32, 96])
def test_sincos_3d_matches_the_reference_formula(uniform_power, dim):
    grid = (2, 3, 4)
    pe = vit.sincos_3d(grid, dim, uniform_power)
    assert pe.shape == (24, dim)
    np.testing.assert_allclose(pe, _reference_positions(grid, dim, uniform_power), atol=1e-6)
    assert len(np.unique(pe.round(5), axis=0)) == 24  # every token gets its own position
    # the two settings differ: uniform_power gives time 2⌈D/6⌉ channels instead of D/2
    assert not np.allclose(pe, vit.sincos_3d(grid, dim, not uniform_power))


def test_vit_and_predictor_shapes():
    rngs = nnx.Rngs(0)
    enc = nnx.eval_shape(lambda: vit.ViT("tiny", frames=8, size=32, tubelet=2, patch=8, width=32, depth=1,
                                         heads=2, rngs=nnx.Rngs(0)))
    assert enc.grid == (4, 4, 4) and enc.num_tokens == 64
    x = jnp.ones((3, 8, 32, 32, 3))
    # shapes only: eval_shape traces without compiling
    assert nnx.eval_shape(lambda m, x: m(x), enc, x).shape == (3, 64, 32)
    keep = jnp.tile(jnp.arange(0, 64, 3)[None], (3, 1))
    z = nnx.eval_shape(lambda m, x, k: m(x, k), enc, x, keep)
    assert z.shape == (3, keep.shape[1], 32)
    pred = Predictor(grid=enc.grid, enc_width=32, width=16, depth=1, heads=2, num_mask_tokens=2, rngs=rngs)
    np.testing.assert_array_equal(np.asarray(pred.mask_tokens[...]), 0)  # zero-initialised
    tgt = jnp.tile(jnp.arange(1, 64, 3)[None], (3, 1))
    out = nnx.eval_shape(lambda m, z, c, t: m(z, c, t, 1), pred, jnp.zeros(z.shape), keep, tgt)
    assert out.shape == (3, tgt.shape[1], 32)
    with pytest.raises(ValueError, match="divisible"):
        vit.ViT("tiny", frames=7, size=32, tubelet=2, patch=8, rngs=rngs)


def test_encoder_context_equals_masked_full_pass_without_attention_mixing():
    # with blocks whose residual branches are zero the encoder is embed + positions + LN, so the
    # context tokens must equal the full pass gathered at the same indices: positions are added
    # before the selection
    enc = vit.ViT("tiny", frames=4, size=16, tubelet=2, patch=4, width=32, depth=1, heads=2, rngs=nnx.Rngs(1))
    for layer in (enc.blocks.layers.attn.proj, enc.blocks.layers.mlp.fc2):
        layer.kernel[...] = jnp.zeros_like(layer.kernel[...])
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 16, 16, 3))
    keep = jnp.array([[0, 5, 31], [3, 4, 17]])
    ctx, full = nnx.jit(lambda m, x, k: (m(x, k), m(x)))(enc, x, keep)
    np.testing.assert_allclose(ctx, vit.gather_tokens(full, keep), atol=1e-5)


def _unrolled(blocks: vit.Blocks, x, valid=None):
    """The blocks applied one after the other, block l with the l-th slice of every stacked parameter."""
    graphdef, params = nnx.split(blocks.layers)
    for l in range(blocks.depth):
        x = nnx.merge(graphdef, jax.tree.map(lambda p: p[l], params))(x, valid)
    return x


def test_stacked_blocks_init_as_a_list_of_blocks_and_scan_equals_the_unrolled_forward():
    depth, width, heads = 3, 16, 2
    make = lambda: vit.ViT("tiny", frames=4, size=16, tubelet=2, patch=4, width=width, depth=depth,  # noqa: E731
                           heads=heads, rngs=nnx.Rngs(3))

    @jax.jit  # one compiled init rather than per-op dispatch
    def inits():
        # the unrolled model's init: embedding, then the blocks one by one, one RNG stream
        rngs = nnx.Rngs(3)
        nnx.Conv(3, width, kernel_size=(2, 4, 4), rngs=rngs)
        listed = [nnx.to_pure_dict(nnx.state(vit.Block(width, heads, 4.0, rngs=rngs), nnx.Param)) for _ in range(depth)]
        return nnx.to_pure_dict(nnx.state(make().blocks.layers, nnx.Param)), listed

    stacked, listed = inits()
    # the same draws, scaled in two fusions of one program: equal up to the rounding of the
    # scaling (a different draw would differ at O(1))
    for l, block in enumerate(listed):
        jax.tree.map(lambda s, b: np.testing.assert_allclose(s[l], b, rtol=1e-6, atol=0), stacked, block)
    assert stacked["attn"]["q"]["kernel"].shape == (depth, width, width)
    assert not np.allclose(stacked["attn"]["q"]["kernel"][0], stacked["attn"]["q"]["kernel"][1])

    blocks = nnx.eval_shape(make).blocks
    nnx.replace_by_pure_dict(state := nnx.state(blocks, nnx.Param), {"layers": stacked})
    nnx.update(blocks, state)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, width))
    valid = jnp.array([[True] * 5, [True, True, True, False, False]])  # padded keys in row 1
    blocks.remat = True  # recomputes the same blocks in the backward pass: same values and gradients

    @nnx.jit
    def both(blocks):
        loss = lambda b, f: jnp.sum(jnp.sin(f(b, x, valid)))  # noqa: E731
        grads = [nnx.grad(lambda b: loss(b, f))(blocks) for f in (lambda m, *a: m(*a), _unrolled)]
        return blocks(x), _unrolled(blocks, x), blocks(x, valid), _unrolled(blocks, x, valid), grads

    y, y_ref, y_pad, y_pad_ref, (g, g_ref) = both(blocks)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y_pad, y_pad_ref, rtol=1e-5, atol=1e-6)
    blocks.unroll = depth  # no loop: the same values
    np.testing.assert_allclose(nnx.jit(lambda b: b(x, valid))(blocks), y_pad, rtol=1e-5, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7),
                 nnx.to_pure_dict(nnx.state(g)), nnx.to_pure_dict(nnx.state(g_ref)))
