"""Figure 2 at CPU scale: the tiny model trained long enough to see the trends (SG vs EMA).

8 frames of 32×32 moving shapes (16 classes), 4-block ViT 96 wide, 2-block predictor, 1500 steps
of batch 16 (≈ 6 passes over 4096 clips), lr 3e-4 (1e-3 made SG collapse within 400 steps,
see docs/vjepa.md), attentive probes on the evaluated encoder every 250 steps."""

from dualjax.vjepa.config import Config

CONFIG = Config(
    frames=8, size=32, tubelet=2, patch=8,
    num_train=4096, num_heldout=512,
    model="tiny", width=96, depth=4, heads=4,
    pred_width=64, pred_depth=2, pred_heads=4,
    steps=1500, batch_size=16,
    lr=3e-4, start_lr=1e-4, final_lr=1e-6, warmup_steps=150,
    log_every=10, probe_every=250,
    probe_steps=1000, probe_batch=64, probe_lr=3e-3, probe_train_clips=2048,
)
