"""The reference eval's training augmentation on device (``evals/video_classification_frozen/eval.py:
make_dataloader`` -> ``utils.VideoTransform``), for the attentive probe's ``probe_augment`` option.

On normalised clips (B, T, H, W, C), each clip independently:

1. **random resized crop** (one box for all its frames): up to 10 draws of an area fraction
   a ~ U[0.08, 1] and an aspect r = exp(U[log ¾, log 4/3]), box w = round(√(a·H·W·r)),
   h = round(√(a·H·W/r)); the first box that fits is placed uniformly and resized back to H×W
   (bilinear, no antialiasing); if none fits, the whole frame;
2. no horizontal flip;
3. **random erasing** per frame (timm ``RandomErasing(0.25, mode="pixel")``): with probability
   0.25, up to 10 draws of an area fraction U[0.02, ⅓] and an aspect exp(U[log 0.3, log 1/0.3]);
   the first box strictly inside the frame is placed uniformly and filled with N(0, 1) noise.

The reference's RandAugment (``rand-m7-n4-mstd0.5-inc1``, before the crop) is not reproduced.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

CROP_SCALE = (0.08, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
ERASE_PROB = 0.25
ERASE_SCALE = (0.02, 1 / 3)
ERASE_RATIO = (0.3, 1 / 0.3)
ATTEMPTS = 10


def _box(key: jax.Array, H: int, W: int, scale, ratio, fits) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(found, h, w): the first of :data:`ATTEMPTS` boxes of area fraction U(scale), log-uniform
    aspect w/h in ``ratio``, for which ``fits(h, w)``."""
    k_area, k_ratio = jax.random.split(key)
    area = H * W * jax.random.uniform(k_area, (ATTEMPTS,), minval=scale[0], maxval=scale[1])
    aspect = jnp.exp(jax.random.uniform(k_ratio, (ATTEMPTS,), minval=math.log(ratio[0]), maxval=math.log(ratio[1])))
    w = jnp.round(jnp.sqrt(area * aspect))
    h = jnp.round(jnp.sqrt(area / aspect))
    ok = fits(h, w)
    first = jnp.argmax(ok)
    return ok.any(), h[first], w[first]


def random_resized_crop(key: jax.Array, clip_TxHxWxC: jax.Array) -> jax.Array:
    """Step 1 of the module doc for one clip."""
    _, H, W, _ = clip_TxHxWxC.shape
    k_box, k_top, k_left = jax.random.split(key, 3)
    found, h, w = _box(k_box, H, W, CROP_SCALE, CROP_RATIO, lambda h, w: (h > 0) & (h <= H) & (w > 0) & (w <= W))
    h, w = jnp.where(found, h, H), jnp.where(found, w, W)
    top = jnp.floor(jax.random.uniform(k_top) * (H - h + 1))
    left = jnp.floor(jax.random.uniform(k_left) * (W - w + 1))
    scale = jnp.stack([H / h, W / w])
    return jax.image.scale_and_translate(clip_TxHxWxC, clip_TxHxWxC.shape, (1, 2), scale,
                                         -jnp.stack([top, left]) * scale, method="linear", antialias=False)


def random_erase(key: jax.Array, frame_HxWxC: jax.Array) -> jax.Array:
    """Step 3 of the module doc for one frame."""
    H, W, C = frame_HxWxC.shape
    k_on, k_box, k_top, k_left, k_noise = jax.random.split(key, 5)
    found, h, w = _box(k_box, H, W, ERASE_SCALE, ERASE_RATIO, lambda h, w: (h < H) & (w < W))
    top = jnp.floor(jax.random.uniform(k_top) * (H - h + 1))
    left = jnp.floor(jax.random.uniform(k_left) * (W - w + 1))
    rows, cols = jnp.arange(H)[:, None], jnp.arange(W)[None, :]
    inside = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)
    erase = inside & found & (jax.random.uniform(k_on) < ERASE_PROB)
    return jnp.where(erase[..., None], jax.random.normal(k_noise, frame_HxWxC.shape, frame_HxWxC.dtype), frame_HxWxC)


def eval_train_augment(key: jax.Array, clips_BxTxHxWxC: jax.Array) -> jax.Array:
    """The whole augmentation of the module doc on a batch of normalised clips."""
    B, T = clips_BxTxHxWxC.shape[:2]
    k_crop, k_erase = jax.random.split(key)
    cropped = jax.vmap(random_resized_crop)(jax.random.split(k_crop, B), clips_BxTxHxWxC)
    keys = jax.random.split(k_erase, B * T).reshape(B, T, -1)
    return jax.vmap(jax.vmap(random_erase))(keys, cropped)
