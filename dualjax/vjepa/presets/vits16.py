"""Reference-scale V-JEPA with a ViT-S/16 encoder (the paper's smaller model): the reference recipe
of facebookresearch/jepa ``configs/pretrain/vitl16.yaml`` with a ViT-S encoder. For accelerators;
the data here is still the synthetic set (``dataset="video"`` with ``train_lists`` for K710 ∪ SSv2).

* Clips 16×224×224, tubelets 2×16×16: 8×14×14 = 1568 tokens (``data.num_frames``, ``crop_size``).
* Predictor: width 384, depth 12, the encoder's 6 heads (``model.pred_embed_dim: 384``,
  ``pred_depth: 12``; heads from ``app/vjepa/utils.py: init_video_model``). A summary of the
  paper names a ViT-T predictor (192 wide); the released configs, our source, use 384.
* Global batch 24 per GPU × 128 GPUs (``data.batch_size: 24``, ``nodes: 16`` × ``tasks_per_node: 8``)
  = 3072, for which lr 6.25e-4 (start 2e-4, final 1e-6) is set; ``lr_batch`` scales the three lrs
  linearly if ``--set batch_size=...`` runs a smaller global batch (our rule, not the reference's).
* Warmup 40 epochs × 300 iterations = 12k steps, run 300 epochs = 90k steps, schedules over
  ``ipe_scale`` 1.25 × the run (``optimization.ipe: 300``, ``warmup: 40``, ``epochs: 300``).
* Masks trimmed per group of 24 clips (one GPU's batch). One padded width per index list: with
  128 groups in a batch its width is nearly always the largest of a ladder anyway.
"""

from dualjax.vjepa.config import Config

PER_DEVICE_BATCH, DEVICES = 24, 128
ITERATIONS_PER_EPOCH = 300

CONFIG = Config(
    model="small", frames=16, size=224, tubelet=2, patch=16,
    pred_width=384, pred_depth=12, pred_heads=0, uniform_power=True,
    batch_size=PER_DEVICE_BATCH * DEVICES, lr_batch=PER_DEVICE_BATCH * DEVICES,
    lr=6.25e-4, start_lr=2e-4, final_lr=1e-6,
    steps=300 * ITERATIONS_PER_EPOCH, warmup_steps=40 * ITERATIONS_PER_EPOCH, ipe_scale=1.25,
    weight_decay=0.04, final_weight_decay=0.4, momentum_start=0.998, momentum_end=1.0, clip_grad=10.0,
    mask_group=PER_DEVICE_BATCH, mask_trim="first", mask_buckets=1,
    compute_dtype="bfloat16",
    log_every=100, probe_every=10_000, ckpt_every=5_000,
)
