"""CPU-sized V-JEPA: 8 frames of 32×32, tubelets 2×8×8 (4×4×4 = 64 tokens), a 4-block ViT 96 wide
and a 2-block predictor 64 wide. Trains in about a minute on two CPU cores.

The recipe is the reference one at this size (schedules over 1.25 × the run, clipping at 10,
uniform-power positions, masks trimmed to the batch minimum), in float32 with the whole batch of
16 as one mask group (one simulated GPU) and the lr set for this batch."""

from dualjax.vjepa.config import Config

CONFIG = Config(
    frames=8, size=32, tubelet=2, patch=8,
    num_train=1024, num_heldout=512,
    model="tiny", width=96, depth=4, heads=4,
    pred_width=64, pred_depth=2, pred_heads=4,
    steps=150, batch_size=16, mask_group=0, compute_dtype="float32",
    lr=3e-4, start_lr=1e-4, final_lr=1e-6, warmup_steps=15,
    log_every=10, probe_every=0,
    probe_steps=500, probe_batch=64, probe_lr=3e-3, probe_train_clips=1024,
)
