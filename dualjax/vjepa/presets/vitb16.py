"""Reference-scale V-JEPA with a ViT-B/16 encoder (the paper's larger model): as ``vits16``
(the reference recipe, global batch 24 × 128), with the width 768 / 12 heads encoder; the
predictor stays 384 wide and 12 deep and takes the encoder's 12 heads."""

import dataclasses

from dualjax.vjepa.presets.vits16 import CONFIG as VITS16

CONFIG = dataclasses.replace(VITS16, model="base")
