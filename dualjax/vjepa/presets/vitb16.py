"""Reference-scale V-JEPA with a ViT-B/16 encoder (the paper's larger model): as vits16, width 768."""

from dualjax.vjepa.config import Config

CONFIG = Config(model="base", frames=16, size=224, tubelet=2, patch=16, pred_width=384, pred_depth=12,
                batch_size=24, steps=300_000, warmup_steps=40_000, log_every=100, probe_every=25_000,
                ckpt_every=5_000)
