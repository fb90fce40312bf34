"""Figure 2 on the ``tracking`` task (issue 17): the tiny model, 600 steps, probes every 100 steps.

8 frames of 32×32 ``tracking`` clips (dualjax/vjepa/tasks.py: which of five look-alike disks
persists, 8 directions), the tiny preset's ViT 96/4 and 2-block predictor, 600 steps of batch 16
(about 2.5 min a run on a quiet core), the reference recipe otherwise; the probe on the teacher
with 4096 training and 1024 held-out clips, 500 steps at lr 3e-3 (the best lr for random-init and
trained features alike, docs/vjepa.md). Run it with three seeds:
``experiments/figure2.py --config tracking --seeds 0,1,2``."""

import dataclasses

from dualjax.vjepa.presets.tiny import CONFIG as TINY

CONFIG = dataclasses.replace(
    TINY,
    dataset="tracking",
    num_train=4096, num_heldout=1024,
    steps=600, warmup_steps=60,
    probe_every=100, probe_train_clips=4096,  # the tiny preset's probe: 500 steps at lr 3e-3
)
