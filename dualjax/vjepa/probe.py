"""Attentive probe: what a frozen encoder's tokens say about the label.

    q' = q + CrossAttn(q, LN(z)),  q'' = q' + MLP(LN(q')),  logits = W q'' + b

with one learned query q, the encoder tokens z (B, N, D) held fixed, and softmax cross-entropy.
Trained with AdamW and a warmup + cosine learning rate; reported as top-1 on held-out clips.
Features are extracted once (the encoder is frozen), so probing costs one encoder pass over the
clips plus a small model.

The second half probes a V-JEPA run: :func:`probe_data` renders the probe's clips once,
:func:`probe_params` picks the encoder evaluated (teacher ξ or student θ), :func:`probe` returns
its held-out top-1, and :func:`probe_schedule` lists the steps at which the trainer probes.
"""

from __future__ import annotations

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
from dualjax.vjepa import config as config_lib
from dualjax.vjepa import data as data_lib
from dualjax.vjepa.vit import LN_EPS, MLP, Attention, _linear, _trunc

if TYPE_CHECKING:  # annotations only: the step module does not need the probe
    from dualjax.vjepa.model import VJEPA
    from dualjax.vjepa.step import Setup, TrainState



class AttentiveProbe(nnx.Module):
    def __init__(self, width: int, num_classes: int, *, heads: int = 4, mlp_ratio: float = 4.0, rngs: nnx.Rngs):
        if width % heads:
            raise ValueError(f"probe width={width} is not divisible by heads={heads}")
        self.query = nnx.Param(_trunc(rngs.params(), (1, 1, width)))
        self.norm1 = nnx.LayerNorm(width, epsilon=LN_EPS, rngs=rngs)
        self.xattn = Attention(width, heads, rngs=rngs)
        self.norm2 = nnx.LayerNorm(width, epsilon=LN_EPS, rngs=rngs)
        self.mlp = MLP(width, int(width * mlp_ratio), rngs=rngs)
        self.head = _linear(width, num_classes, rngs)

    def __call__(self, z_BxNxD: jax.Array) -> jax.Array:
        B = z_BxNxD.shape[0]
        q = jnp.broadcast_to(self.query[...], (B, 1, z_BxNxD.shape[-1]))
        q = q + self.xattn(q, self.norm1(z_BxNxD))
        q = q + self.mlp(self.norm2(q))
        return self.head(q[:, 0])


@functools.lru_cache(maxsize=16)
def _probe_fns(width: int, num_classes: int, heads: int, steps: int, lr: float, weight_decay: float):
    """Jitted (init, step, predict) of a probe; cached so probing many checkpoints compiles once."""
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: AttentiveProbe(width, num_classes, heads=heads,
                                                                       rngs=nnx.Rngs(0))), nnx.Param)
    warmup = max(1, steps // 10)
    sched = optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(steps, warmup + 1), lr * 1e-2)
    tx = optax.adamw(sched, weight_decay=weight_decay, mask=lambda p: jax.tree.map(lambda a: a.ndim > 1, p))

    def apply(p, z):
        s = jax.tree.map(lambda a: a, abstract)
        nnx.replace_by_pure_dict(s, p)
        return nnx.merge(graphdef, s)(z)

    @jax.jit
    def init(key):
        model = AttentiveProbe(width, num_classes, heads=heads, rngs=nnx.Rngs(params=key))
        params = nnx.to_pure_dict(nnx.split(model, nnx.Param)[1])
        return params, tx.init(params)

    def loss_fn(p, z, y):
        return optax.softmax_cross_entropy_with_integer_labels(apply(p, z), y).mean()

    @jax.jit
    def step(p, o, z, y):
        loss, g = jax.value_and_grad(loss_fn)(p, z, y)
        u, o = tx.update(g, o, p)
        return optax.apply_updates(p, u), o, loss

    @jax.jit
    def predict(p, z):
        return jnp.argmax(apply(p, z), axis=-1)

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
                weight_decay: float = 0.01, heads: int = 4, seed: int = 0) -> ProbeResult:
    """Train an :class:`AttentiveProbe` on frozen features (N, T, D) and return held-out top-1."""
    checks.check_positive_int(steps, "probe steps")
    checks.check_positive_int(batch_size, "probe batch_size")
    checks.check_positive(lr, "probe lr")
    if z_train.ndim != 3 or z_test.ndim != 3 or z_train.shape[2] != z_test.shape[2]:
        raise ValueError(f"features must be (N, tokens, D) with equal D, got {z_train.shape} and {z_test.shape}")
    if len(z_train) != len(y_train) or len(z_test) != len(y_test):
        raise ValueError("features and labels differ in length")
    for y in (y_train, y_test):
        if y.min() < 0 or y.max() >= num_classes:
            raise ValueError(f"labels must lie in [0, {num_classes}), got range [{y.min()}, {y.max()}]")
    init, step, predict = _probe_fns(z_train.shape[-1], num_classes, heads, steps, float(lr), float(weight_decay))
    params, opt_state = init(jax.random.PRNGKey(seed))

    rng = np.random.default_rng([seed, 31337])
    n = len(z_train)
    bs = min(batch_size, n)
    order = rng.permutation(n)
    pos, loss = 0, jnp.nan
    for _ in range(steps):
        if pos + bs > n:
            order, pos = rng.permutation(n), 0
        idx = order[pos:pos + bs]
        pos += bs
        params, opt_state, loss = step(params, opt_state, jnp.asarray(z_train[idx]), jnp.asarray(y_train[idx]))

    def accuracy(z, y):
        hits = 0
        for i in range(0, len(z), 256):
            hits += int((np.asarray(predict(params, jnp.asarray(z[i:i + 256]))) == y[i:i + 256]).sum())
        return hits / len(z)

    return ProbeResult(accuracy(z_test, y_test), accuracy(z_train, y_train), float(loss))


# --------------------------------------------------------------------------- probing a V-JEPA run

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
