"""dualjax.vjepa.supervised: the head against NumPy, its gradient against the closed form, training
that fits a small labelled set, and bad input."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dualjax.vjepa import config as config_lib
from dualjax.vjepa import data as data_lib
from dualjax.vjepa import supervised
from dualjax.vjepa.step import build


@pytest.fixture(scope="module")
def setup():
    cfg = dataclasses.replace(config_lib.load("tiny"), dataset="tracking", num_devices=1).validate()
    return cfg, build(cfg).model


def _head(key, width, classes):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    return supervised.Head(1 + 0.1 * jax.random.normal(k1, (width,)), 0.1 * jax.random.normal(k2, (width,)),
                           jax.random.normal(k3, (width, classes)), jax.random.normal(k4, (classes,)))


def test_head_logits_are_a_linear_map_of_layernormed_mean_tokens():
    tokens = np.random.default_rng(0).normal(size=(3, 7, 5)) * 2 + 1
    head = _head(jax.random.PRNGKey(0), 5, 4)
    z = tokens.mean(axis=1)
    z = (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + supervised.LN_EPS)
    expected = (z * np.asarray(head.scale) + np.asarray(head.offset)) @ np.asarray(head.W) + np.asarray(head.b)
    np.testing.assert_allclose(supervised.head_logits(head, jnp.asarray(tokens, jnp.float32)), expected, rtol=1e-5,
                               atol=1e-5)


def test_gradient_of_the_head_matrix_is_the_cross_entropy_closed_form(setup):
    """∂L/∂W = zᵀ (softmax(logits) − onehot(y)) / B for z = LN(mean tokens): the encoder's features
    reach the loss, and the loss is the mean cross-entropy of the labels."""
    cfg, model = setup
    x, y = supervised.labelled_clips(cfg, 6)
    theta, _ = model.init()
    head = _head(jax.random.PRNGKey(1), model.width, data_lib.num_classes(cfg))
    grads = jax.grad(lambda p: supervised.loss_fn(model, p, x, y))((theta, head))
    tokens = np.asarray(model.encode(theta, data_lib.normalize(x)), np.float64)
    z = tokens.mean(axis=1)
    z = (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + supervised.LN_EPS)
    z = z * np.asarray(head.scale) + np.asarray(head.offset)
    logits = z @ np.asarray(head.W, np.float64) + np.asarray(head.b)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    residual = p - np.eye(logits.shape[1])[y]
    np.testing.assert_allclose(grads[1].W, z.T @ residual / len(y), rtol=2e-3, atol=1e-5)
    np.testing.assert_allclose(grads[1].b, residual.mean(0), rtol=2e-3, atol=1e-6)
    assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads[0])) > 0  # the encoder is trained too


def test_training_fits_a_small_labelled_set(setup):
    """32 labelled `tracking` clips, 30 steps of the whole batch: the loss on them falls and the
    head classifies them above chance (12.5 %; 34 % here), so θ and the head are both being fitted."""
    cfg, model = setup
    x, y = supervised.labelled_clips(cfg, 32)
    res = supervised.train(cfg, model, 30, batch=32, clips=32, lr=3e-3, eval_clips=(x, y), eval_every=29)
    (t0, loss0, _), (t1, loss1, top1) = res.history
    assert (t0, t1) == (0, 29)
    assert loss1 < loss0 - 0.2, res.history
    assert top1 >= 6 / 32, res.history
    init_theta, _ = model.init()
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), res.theta, init_theta)
    assert max(jax.tree.leaves(moved)) > 0


def test_bad_input_is_named(setup):
    cfg, model = setup
    with pytest.raises(ValueError, match="steps"):
        supervised.train(cfg, model, 0)
    with pytest.raises(ValueError, match="lr"):
        supervised.train(cfg, model, 5, lr=-1.0)
    with pytest.raises(ValueError, match="dataset='video'"):
        supervised.labelled_clips(dataclasses.replace(cfg, dataset="video"), 4)
