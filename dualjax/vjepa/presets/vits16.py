"""Reference-scale V-JEPA with a ViT-S/16 encoder (the paper's smaller model): 16×224×224 clips,
tubelets 2×16×16 (8×14×14 = 1568 tokens), predictor 384 wide and 12 deep, the reference
optimisation recipe (300k steps). For accelerators; the data here is still the synthetic set."""

from dualjax.vjepa.config import Config

CONFIG = Config(model="small", frames=16, size=224, tubelet=2, patch=16, pred_width=384, pred_depth=12,
                batch_size=24, steps=300_000, warmup_steps=40_000, log_every=100, probe_every=25_000,
                ckpt_every=5_000)
