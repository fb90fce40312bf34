"""Small V-JEPA configs shared by the tests (they compile in seconds on a CPU).

Compilation dominates the cost of these tests, so the set-ups and their jitted functions are
built once per session and shared: a jitted function of the same set-up is compiled once.
"""

import dataclasses

import pytest

from dualjax.vjepa.config import Config

SMALL = Config(
    frames=4, size=16, tubelet=2, patch=4,  # token grid 2×4×4 = 32
    num_train=64, num_heldout=32,
    model="tiny", width=32, depth=1, heads=2,
    pred_width=16, pred_depth=1, pred_heads=2,
    steps=3, batch_size=4, warmup_steps=1,
    lr=1e-3, start_lr=1e-4, final_lr=1e-5,
    log_every=1, probe_steps=20, probe_batch=16,
    compute_dtype="float32", mask_group=0,  # the whole batch is one mask group
    num_devices=1,  # the tests' 8 simulated devices: only the sharding tests use them all
)


class Built:
    """A step.Setup with its jitted step (no donation) and a first batch."""

    def __init__(self, cfg):
        import jax

        from dualjax.vjepa import data
        from dualjax.vjepa.step import build, device_batch

        self.cfg = cfg.validate()
        self.setup = build(self.cfg)
        self.step = jax.jit(self.setup.train_step)
        src = data.make_source(self.cfg, "train")
        it = data.train_batches(src, self.setup.masks, self.cfg.batch_size, self.cfg.data_seed, self.cfg.steps)
        self.batch = device_batch(next(it))


@pytest.fixture(scope="session")
def small_cfg():
    return SMALL.validate()


@pytest.fixture(scope="session")
def sg_built():
    """SG rule, one mask generator (the cheapest objective to compile)."""
    return Built(dataclasses.replace(SMALL, teacher="sg", mask_blocks=(8,), mask_scales=(0.15,)))


@pytest.fixture(scope="session")
def ema_built():
    """EMA rule with a fast momentum schedule (0.5 -> 1) and both mask generators."""
    return Built(dataclasses.replace(SMALL, teacher="ema", momentum_start=0.5))
