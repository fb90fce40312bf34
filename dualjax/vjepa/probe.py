"""Attentive probe: what a frozen encoder's tokens say about the label.

    q' = q + CrossAttn(q, LN(z)),  q'' = q' + MLP(LN(q')),  logits = W q'' + b

with one learned query q, the encoder tokens z (B, N, D) held fixed, and softmax cross-entropy.
Trained with AdamW and a warmup + cosine learning rate; reported as top-1 on held-out clips.
Features are extracted once (the encoder is frozen), so probing costs one encoder pass over the
clips plus a small model.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from dualjax import checks
from dualjax.vjepa.vit import LN_EPS, MLP, Attention, _linear, _trunc


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
