"""Attentive probe: what a frozen encoder's tokens say about the label (the reference's
``evals/video_classification_frozen``).

    q' = q + CrossAttn(q, LN(z)),  q'' = q' + MLP(LN(q')),  logits = W q'' + b

with one learned query q, the encoder tokens z (B, N, D) held fixed, and softmax cross-entropy.
As the reference: as many heads as the encoder; init N(0, 0.02²) for q and the Linear weights,
the cross-attention output and MLP output weights divided by √2 (``AttentivePooler._rescale_blocks``),
the class layer torch's default U(±1/√D); AdamW with the gradient norm clipped at 1, lr cosine from
``probe_lr`` to 0 without warmup and weight decay cosine from ``probe_weight_decay`` to 10⁻⁶
(``eval.py: init_opt``). Reported as top-1 on held-out clips.

**Views** (the reference's multi-view evaluation, options). A video gives ``probe_segments``
clips whose tokens are concatenated, so the probe attends across them (``attend_across_segments``);
at evaluation each clip comes in ``probe_views`` spatial views (crops spaced evenly along the
longer side, ``EvalVideoTransform``) and the softmax outputs are averaged over views. Both built-in
sources give square clips, whose views coincide, as they would in the reference.

**Modes.** Quick (default): the features are extracted once (the encoder is frozen), so probing
costs one encoder pass over the clips plus a small model. ``probe_augment``: the reference eval's
training augmentation (one random resized crop per clip, scale 0.08–1, aspect 3/4–4/3, no flip,
then per frame random erasing with probability 0.25 filled with N(0, 1) noise; its RandAugment is
not reproduced), so the encoder runs on freshly augmented clips at every probe step.

The second half probes a V-JEPA run: :func:`probe_data` renders the probe's clips once,
:func:`probe_params` picks the encoder evaluated (teacher ξ or student θ), :func:`probe` returns
its held-out top-1, and :func:`probe_schedule` lists the steps at which the trainer probes.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import TYPE_CHECKING, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from dualjax import checks
from dualjax.typing import PyTree
from dualjax.vjepa import augment
from dualjax.vjepa import config as config_lib
from dualjax.vjepa import data as data_lib
from dualjax.vjepa import optim
from dualjax.vjepa.vit import MLP, Attention, _layer_norm, variant, weight_init

if TYPE_CHECKING:  # annotations only: the step module does not need the probe
    from dualjax.vjepa.model import VJEPA
    from dualjax.vjepa.step import Setup, TrainState

CLIP_NORM = 1.0  # eval.py: clip_grad_norm_(classifier.parameters(), 1.0)
FINAL_WEIGHT_DECAY = 1e-6  # eval.py: init_opt's default final_wd


class AttentiveProbe(nnx.Module):
    def __init__(self, width: int, num_classes: int, *, heads: int = 4, mlp_ratio: float = 4.0, rngs: nnx.Rngs):
        if width % heads:
            raise ValueError(f"probe width={width} is not divisible by heads={heads}")
        self.query = nnx.Param(weight_init(rngs.params(), (1, 1, width)))
        self.norm1 = _layer_norm(width, rngs)
        self.xattn = Attention(width, heads, rngs=rngs)
        self.norm2 = _layer_norm(width, rngs)
        self.mlp = MLP(width, int(width * mlp_ratio), rngs=rngs)
        for layer in (self.xattn.proj, self.mlp.fc2):
            layer.kernel[...] = layer.kernel[...] / math.sqrt(2.0)
        bound = 1.0 / math.sqrt(width)

        def uniform(key, shape, dtype=jnp.float32):  # torch's nn.Linear default
            return jax.random.uniform(key, shape, dtype, -bound, bound)

        self.head = nnx.Linear(width, num_classes, kernel_init=uniform, bias_init=uniform, rngs=rngs)

    def __call__(self, z_BxNxD: jax.Array) -> jax.Array:
        B = z_BxNxD.shape[0]
        q = jnp.broadcast_to(self.query[...], (B, 1, z_BxNxD.shape[-1]))
        q = q + self.xattn(q, self.norm1(z_BxNxD))
        q = q + self.mlp(self.norm2(q))
        return self.head(q[:, 0])


def probe_optimizer(steps: int, lr: float, weight_decay: float) -> optax.GradientTransformation:
    """The reference eval's optimizer: clip at :data:`CLIP_NORM`, AdamW, cosine lr to 0, cosine wd."""
    return optax.chain(optax.clip_by_global_norm(CLIP_NORM),
                       optax.adamw(optim.warmup_cosine(lr, lr, 0.0, 0, steps), eps=1e-8,
                                   weight_decay=optim.cosine_weight_decay(weight_decay, FINAL_WEIGHT_DECAY, steps),
                                   mask=lambda p: jax.tree.map(lambda a: a.ndim > 1, p)))


@functools.lru_cache(maxsize=16)
def _probe_fns(width: int, num_classes: int, heads: int, steps: int, lr: float, weight_decay: float,
               options: tuple = ()):
    """Jitted (init, step, predict) of a probe; cached so probing many checkpoints compiles once.
    ``options``: XLA compiler options as sorted (name, value) pairs (() : XLA's defaults)."""
    jit = functools.partial(jax.jit, compiler_options=dict(options) or None)
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: AttentiveProbe(width, num_classes, heads=heads,
                                                                       rngs=nnx.Rngs(0))), nnx.Param)
    tx = probe_optimizer(steps, lr, weight_decay)

    def apply(p, z):
        s = jax.tree.map(lambda a: a, abstract)
        nnx.replace_by_pure_dict(s, p)
        return nnx.merge(graphdef, s)(z)

    @jit
    def init(key):
        model = AttentiveProbe(width, num_classes, heads=heads, rngs=nnx.Rngs(params=key))
        params = nnx.to_pure_dict(nnx.split(model, nnx.Param)[1])
        return params, tx.init(params)

    def loss_fn(p, z, y):
        return optax.softmax_cross_entropy_with_integer_labels(apply(p, z), y).mean()

    @jit
    def step(p, o, z, y):
        loss, g = jax.value_and_grad(loss_fn)(p, z, y)
        u, o = tx.update(g, o, p)
        return optax.apply_updates(p, u), o, loss

    @jit
    def predict(p, z_BxVxNxD):
        """Class with the largest softmax output averaged over the V views."""
        B, V = z_BxVxNxD.shape[:2]
        probs = jax.nn.softmax(apply(p, z_BxVxNxD.reshape((B * V,) + z_BxVxNxD.shape[2:])), axis=-1)
        return jnp.argmax(probs.reshape(B, V, -1).mean(axis=1), axis=-1)

    return init, step, predict


class ProbeResult(NamedTuple):
    top1: float  # held-out top-1 accuracy
    train_top1: float
    final_loss: float


def extract_features(encode: Callable[[np.ndarray], jax.Array], batches) -> tuple[np.ndarray, np.ndarray]:
    """Run the frozen ``encode(clip_uint8) -> (B, N, D)`` over ``batches``; returns (features, labels)."""
    feats, labels = [], []
    for batch in batches:
        feats.append(np.asarray(encode(batch["clip"])))
        labels.append(np.asarray(batch["label"]))
    if not feats:
        raise ValueError("no clips to extract features from")
    return np.concatenate(feats), np.concatenate(labels)


def train_probe(z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray, y_test: np.ndarray, *,
                num_classes: int, steps: int = 300, batch_size: int = 64, lr: float = 1e-3,
                weight_decay: float = 0.01, heads: int = 4, seed: int = 0,
                train_features: Callable[[np.ndarray, int], jax.Array] | None = None,
                compiler_options: dict | None = None) -> ProbeResult:
    """Train an :class:`AttentiveProbe` on frozen features (N, T, D) and return held-out top-1.

    ``z_test`` may have a view axis, (N, V, T, D): the softmax outputs are averaged over it.
    ``train_features(indices, step)``, if given, supplies the features of each training batch
    (e.g. the encoder on freshly augmented clips) in place of ``z_train[indices]``.
    ``compiler_options``: XLA options of the probe's jitted functions (None: XLA's defaults)."""
    checks.check_positive_int(steps, "probe steps")
    checks.check_positive_int(batch_size, "probe batch_size")
    checks.check_positive(lr, "probe lr")
    z_test = z_test if z_test.ndim == 4 else z_test[:, None]
    if z_train.ndim != 3 or z_test.ndim != 4 or z_train.shape[2] != z_test.shape[3]:
        raise ValueError(f"features must be (N, tokens, D) with equal D, got {z_train.shape} and {z_test.shape}")
    if len(z_train) != len(y_train) or len(z_test) != len(y_test):
        raise ValueError("features and labels differ in length")
    for y in (y_train, y_test):
        if y.min() < 0 or y.max() >= num_classes:
            raise ValueError(f"labels must lie in [0, {num_classes}), got range [{y.min()}, {y.max()}]")
    init, step, predict = _probe_fns(z_train.shape[-1], num_classes, heads, steps, float(lr), float(weight_decay),
                                     tuple(sorted((compiler_options or {}).items())))
    params, opt_state = init(jax.random.PRNGKey(seed))
    features = train_features or (lambda idx, _: jnp.asarray(z_train[idx]))

    rng = np.random.default_rng([seed, 31337])
    n = len(z_train)
    bs = min(batch_size, n)
    order = rng.permutation(n)
    pos, loss = 0, jnp.nan
    for t in range(steps):
        if pos + bs > n:
            order, pos = rng.permutation(n), 0
        idx = order[pos:pos + bs]
        pos += bs
        params, opt_state, loss = step(params, opt_state, features(idx, t), jnp.asarray(y_train[idx]))

    def accuracy(z, y):
        hits = 0
        for i in range(0, len(z), 256):
            hits += int((np.asarray(predict(params, jnp.asarray(z[i:i + 256]))) == y[i:i + 256]).sum())
        return hits / len(z)

    return ProbeResult(accuracy(z_test, y_test), accuracy(z_train[:, None], y_train), float(loss))


# --------------------------------------------------------------------------- probing a V-JEPA run

class ProbeData(NamedTuple):
    """uint8 clips: train (N, S, T, H, W, C) and held-out (M, V, S, T, H, W, C) for S segments and
    V spatial views, with their labels."""

    clips_train: np.ndarray
    y_train: np.ndarray
    clips_test: np.ndarray
    y_test: np.ndarray


def spatial_views(clips: np.ndarray, views: int, size: int) -> np.ndarray:
    """(…, T, H, W, C) clips with short side ``size`` -> (…, V, T, size, size, C): V crops spaced
    evenly along the longer side (the reference's ``EvalVideoTransform``; equal for square clips)."""
    H, W = clips.shape[-3:-1]
    if min(H, W) != size:
        raise ValueError(f"spatial views need clips with short side {size}, got {H}x{W}")
    stride = (max(H, W) - size) // max(views - 1, 1)
    crops = [clips[..., i * stride:i * stride + size, :, :] if H > W else clips[..., i * stride:i * stride + size, :]
             for i in range(views)]
    return np.stack(crops, axis=-5)


def _videos(cfg: config_lib.Config, split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first n videos of ``split`` as (n, S, T, H, W, C) clips for S = ``probe_segments``: a
    synthetic video is rendered S·T frames long and cut into S clips; a video file gives its S
    segment clips (``clips_per_video`` = S)."""
    S = cfg.probe_segments
    if cfg.dataset in data_lib.SYNTHETIC:
        source = data_lib.make_source(dataclasses.replace(cfg, frames=cfg.frames * S), split)
        count, per = min(n, len(source)), 1
    else:
        source = data_lib.make_source(dataclasses.replace(cfg, clips_per_video=S), split)
        count, per = min(n, len(source) // S), S
    batches = list(data_lib.eval_batches(source, 256, limit=count * per))
    clips = np.concatenate([b["clip"] for b in batches])
    labels = np.concatenate([b["label"] for b in batches])[::per]
    return clips.reshape((count, S, cfg.frames) + clips.shape[-3:]), labels


def probe_data(cfg: config_lib.Config) -> ProbeData:
    """Train / held-out clips for the probe, rendered once."""
    clips_tr, y_tr = _videos(cfg, "train", cfg.probe_train_clips or cfg.num_train)
    clips_te, y_te = _videos(cfg, "heldout", cfg.num_heldout)
    views = spatial_views(clips_te, cfg.probe_views, cfg.size)  # (M, S, V, T, H, W, C)
    return ProbeData(clips_tr, y_tr, np.moveaxis(views, 2, 1), y_te)


def make_encode_fn(model: VJEPA, compiler_options: dict | None = None):
    """Frozen encoder on uint8 clips: ``(params, clips, key=None) -> tokens (B, N, D)``, jitted (with
    ``compiler_options``, None: XLA's defaults); with ``key`` on clips augmented as the reference
    eval trains (:func:`dualjax.vjepa.augment.eval_train_augment`)."""
    plain = jax.jit(lambda params, clip: model.encode(params, data_lib.normalize(clip)),
                    compiler_options=compiler_options)
    augmented = jax.jit(lambda params, clip, key: model.encode(
        params, augment.eval_train_augment(key, data_lib.normalize(clip))), compiler_options=compiler_options)

    def encode(params, clip, key=None):
        return plain(params, clip) if key is None else augmented(params, clip, key)

    return encode


def probe(cfg: config_lib.Config, encode_fn, params: PyTree, pdata: ProbeData, batch: int = 64):
    """Attentive-probe top-1 (held-out) of the encoder with ``params``."""

    def features(clips):  # (B, …, S, T, H, W, C) -> (B, …, S·N, D): the segments' tokens side by side
        flat = clips.reshape((-1,) + clips.shape[-4:])
        z = np.concatenate([np.asarray(encode_fn(params, flat[i:i + batch])) for i in range(0, len(flat), batch)])
        S = clips.shape[-5]
        return z.reshape(clips.shape[:-5] + (S * z.shape[1], z.shape[2]))

    train_features = None
    if cfg.probe_augment:
        def train_features(idx, t):
            clips = pdata.clips_train[idx]
            key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed + 1), t)
            z = encode_fn(params, clips.reshape((-1,) + clips.shape[2:]), key)
            return z.reshape((len(idx), -1, z.shape[-1]))

    heads = cfg.probe_heads or variant(cfg.model, cfg.width, cfg.depth, cfg.heads).heads
    return train_probe(features(pdata.clips_train), pdata.y_train, features(pdata.clips_test), pdata.y_test,
                       num_classes=data_lib.num_classes(cfg), steps=cfg.probe_steps, batch_size=cfg.probe_batch,
                       lr=cfg.probe_lr, weight_decay=cfg.probe_weight_decay, heads=heads, seed=cfg.seed,
                       train_features=train_features, compiler_options=codegen_options(cfg))


def codegen_options(cfg: config_lib.Config) -> dict | None:
    """The probe's XLA options: ``cfg.codegen`` on a CPU host, as the trainer's step
    (:func:`dualjax.vjepa.parallel.compiler_options` over the local devices)."""
    from dualjax.vjepa.parallel import compiler_options  # local: parallel pulls in the whole step

    return compiler_options(cfg, jax.local_devices())


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
