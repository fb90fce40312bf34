"""Configuration of a V-JEPA run: one frozen dataclass, reference defaults, named presets.

The defaults are the reference V-JEPA pretraining recipe (DESIGN.md): ViT with tubelets
2×16×16 on 16×224×224 clips, predictor 384 wide and 12 deep, two multi-block mask
generators, L1 loss on layer-normed teacher features, AdamW with warmup + cosine lr,
cosine-increasing weight decay 0.04 -> 0.4, EMA momentum 0.998 -> 1.0.

Presets are modules of the package, ``dualjax/vjepa/presets/NAME.py``, each with a module-level
``CONFIG``: ``load("tiny")`` imports ``dualjax.vjepa.presets.tiny`` (so presets come with any
install), ``load("my_run.py")`` reads a user's file of the same form, ``load("default")`` is the
reference recipe. Overrides are :func:`dualjax.configs.override` (``key=value`` strings or a dict,
typed from the fields); an unknown key raises a ValueError naming it and listing the valid ones,
so a typo never silently trains the default.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import pkgutil
from pathlib import Path

from dualjax import checks, configs


@dataclasses.dataclass(frozen=True)
class Config:
    # ---- data: clips of `frames` × `size` × `size` × 3
    dataset: str = "shapes"  # shapes: built-in synthetic moving shapes (data.py) | video: video lists (video.py)
    train_lists: tuple[str, ...] = ()  # dataset=video: list files of `path label` lines
    list_weights: tuple[float, ...] = ()  # () : concatenate the lists; else sampling weight per list
    heldout_lists: tuple[str, ...] = ()  # dataset=video: lists of the probe's held-out clips
    frame_step: int = 4  # dataset=video: frames between sampled frames
    clips_per_video: int = 1  # dataset=video
    frames: int = 16
    size: int = 224
    num_train: int = 8192
    num_heldout: int = 1024
    data_seed: int = 0
    worker_count: int = 0  # grain worker processes (0: in-process)
    # ---- encoder (ViT) and predictor
    model: str = "small"  # tiny | small | base | large | huge
    width: int = 0  # 0: take from the variant table
    depth: int = 0
    heads: int = 0
    mlp_ratio: float = 4.0
    tubelet: int = 2
    patch: int = 16
    pred_width: int = 384
    pred_depth: int = 12
    pred_heads: int = 0  # 0: the encoder's head count (as the reference)
    # ---- masks: one generator per entry of the tuples
    mask_blocks: tuple[int, ...] = (8, 2)
    mask_scales: tuple[float, ...] = (0.15, 0.7)
    mask_aspect: tuple[float, float] = (0.75, 1.5)
    mask_keep_quantile: float = 0.1  # fixed token budgets, see masks.MultiBlockMasks
    # ---- objective and rule
    teacher: str = "ema"  # a registered rule (dualjax.rules.names()), resolved by optim.make_rule
    loss: str = "l1"  # l1 | half_squared (dualjax.objectives)
    momentum_start: float = 0.998
    momentum_end: float = 1.0
    # ---- optimisation
    steps: int = 300_000
    batch_size: int = 24
    lr: float = 6.25e-4
    start_lr: float = 2e-4
    final_lr: float = 1e-6
    warmup_steps: int = 40_000
    weight_decay: float = 0.04
    final_weight_decay: float = 0.4
    b1: float = 0.9
    b2: float = 0.999
    seed: int = 0
    # ---- logging, probes, checkpoints
    log_every: int = 100
    probe_every: int = 0  # 0: only at the first and last step
    probe_encoder: str = "teacher"  # teacher (what the reference evaluates) | student
    probe_steps: int = 300
    probe_batch: int = 64
    probe_lr: float = 1e-3
    probe_weight_decay: float = 0.01
    probe_heads: int = 0  # 0: the encoder's head count
    probe_train_clips: int = 0  # 0: all of num_train
    ckpt_every: int = 0  # 0: only at the end
    ckpt_keep: int = 3  # keep the newest k checkpoints
    # ---- scale and faults
    num_devices: int = 0  # devices of the 'data' mesh (0: all of every process)
    sharding: str = "dp"  # dp: params replicated, batch sharded | fsdp: large params sharded too
    fsdp_min_size: int = 2**14  # fsdp: leaves with fewer elements stay replicated
    compute_dtype: str = "float32"  # float32 | bfloat16 (parameters and optimizer stay float32)
    check_finite: bool = True  # stop at the first non-finite loss / gradient / parameter

    # ---------------------------------------------------------------- derived
    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (T/t, H/p, W/p)."""
        return (self.frames // self.tubelet, self.size // self.patch, self.size // self.patch)

    def validate(self) -> "Config":
        """Raise ValueError naming the first inconsistent value."""
        from dualjax.vjepa.vit import VARIANTS  # local: vit imports flax

        if self.model not in VARIANTS:
            raise ValueError(f"model={self.model!r} is not a ViT variant; choose one of {sorted(VARIANTS)}")
        from dualjax.vjepa.optim import make_rule  # local: optim imports this module

        make_rule(self)  # the teacher is a registered rule the trainer can run (ValueError naming it)
        if self.loss not in ("l1", "half_squared"):
            raise ValueError(f"loss={self.loss!r}; choose 'l1' or 'half_squared'")
        if self.dataset not in ("shapes", "video"):
            raise ValueError(f"dataset={self.dataset!r}; choose 'shapes' or 'video'")
        if self.dataset == "video" and not self.train_lists:
            raise ValueError("dataset='video' needs train_lists=(LIST, ...)")
        if self.list_weights and len(self.list_weights) != len(self.train_lists):
            raise ValueError(f"list_weights={self.list_weights} needs one weight per train list {self.train_lists}")
        if any(not (isinstance(w, (int, float)) and w >= 0) for w in self.list_weights) or (
                self.list_weights and sum(self.list_weights) <= 0):
            raise ValueError(f"list_weights={self.list_weights} must be non-negative with a positive sum")
        if self.sharding not in ("dp", "fsdp"):
            raise ValueError(f"sharding={self.sharding!r}; choose 'dp' or 'fsdp'")
        if self.compute_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"compute_dtype={self.compute_dtype!r}; choose 'float32' or 'bfloat16'")
        if self.probe_encoder not in ("teacher", "student"):
            raise ValueError(f"probe_encoder={self.probe_encoder!r}; choose 'teacher' or 'student'")
        for name in ("frames", "size", "tubelet", "patch", "pred_width", "pred_depth", "steps",
                     "batch_size", "num_train", "num_heldout", "log_every", "probe_steps", "probe_batch",
                     "frame_step", "clips_per_video", "ckpt_keep"):
            checks.check_positive_int(getattr(self, name), name)
        for name in ("width", "depth", "heads", "pred_heads", "probe_heads", "warmup_steps", "probe_every",
                     "ckpt_every", "worker_count", "probe_train_clips", "fsdp_min_size", "num_devices"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if self.frames % self.tubelet:
            raise ValueError(f"frames={self.frames} is not divisible by tubelet={self.tubelet}")
        if self.size % self.patch:
            raise ValueError(f"size={self.size} is not divisible by patch={self.patch}")
        if len(self.mask_blocks) != len(self.mask_scales) or not self.mask_blocks:
            raise ValueError(
                f"mask_blocks={self.mask_blocks} and mask_scales={self.mask_scales} need the same, non-zero length"
            )
        for s in self.mask_scales:
            if not 0 < s < 1:
                raise ValueError(f"mask scale {s} must lie in (0, 1)")
        lo, hi = self.mask_aspect
        if not 0 < lo <= hi:
            raise ValueError(f"mask_aspect={self.mask_aspect} must satisfy 0 < min <= max")
        if not 0 <= self.mask_keep_quantile < 1:
            raise ValueError(f"mask_keep_quantile={self.mask_keep_quantile} must lie in [0, 1)")
        checks.check_alpha(self.momentum_start, "momentum_start")
        checks.check_alpha(self.momentum_end, "momentum_end")
        for name in ("lr", "b1", "b2"):
            checks.check_positive(getattr(self, name), name)
        for name in ("start_lr", "final_lr", "weight_decay", "final_weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.warmup_steps >= self.steps and self.steps > 1:
            raise ValueError(f"warmup_steps={self.warmup_steps} must be < steps={self.steps}")
        return self

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Config":
        """The config of a ``config.json`` (strict: unknown keys and mistyped values are errors)."""
        return configs.from_dict(cls, json.loads(text))


PRESETS = "dualjax.vjepa.presets"


def available() -> list[str]:
    """Names of the presets in ``dualjax/vjepa/presets``."""
    from dualjax.vjepa import presets

    return sorted(m.name for m in pkgutil.iter_modules(presets.__path__) if not m.name.startswith("_"))


def load(name: str) -> Config:
    """A config by preset name (``dualjax/vjepa/presets/NAME.py``), by path to a ``.py`` file of
    the same form, or ``default`` (the reference recipe). The module must define ``CONFIG: Config``."""
    if name == "default":
        return Config().validate()
    if name.endswith(".py"):
        path = Path(name)
        if not path.is_file():
            raise ValueError(f"config file {path} does not exist")
        spec = importlib.util.spec_from_file_location(f"_vjepa_config_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        where = str(path)
    elif name in available():
        module = importlib.import_module(f"{PRESETS}.{name}")
        where = module.__name__
    else:
        raise ValueError(f"unknown config {name!r}; choose one of {['default'] + available()} or a .py path")
    cfg = getattr(module, "CONFIG", None)
    if not isinstance(cfg, Config):
        raise ValueError(f"{where} must define CONFIG = dualjax.vjepa.config.Config(...)")
    return cfg.validate()
