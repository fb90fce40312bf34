"""Figure 2 at CPU scale: the tiny model trained long enough to see the trends (SG vs EMA).

8 frames of 32×32 moving shapes (16 classes), 4-block ViT 96 wide, 2-block predictor, 1500 steps
of batch 16 (≈ 6 passes over 4096 clips), lr 3e-4 (1e-3 made SG collapse within 400 steps,
see docs/vjepa.md), the reference recipe otherwise (schedules over 1.25 × the run, clipping at
10, masks trimmed to the batch minimum), attentive probes on the evaluated encoder every 250 steps."""

import dataclasses

from dualjax.vjepa.presets.tiny import CONFIG as TINY

# the tiny preset, trained 10x longer on 4x the clips, with probes along the way
CONFIG = dataclasses.replace(
    TINY,
    num_train=4096,
    steps=1500, warmup_steps=150,
    probe_every=250, probe_steps=1000, probe_train_clips=2048,
)
