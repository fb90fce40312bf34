"""Configuration of a V-JEPA run: one frozen dataclass, reference defaults, named presets.

The defaults are the reference V-JEPA pretraining recipe (``configs/pretrain/vitl16.yaml`` of
facebookresearch/jepa, with a ViT-S encoder; docs/vjepa.md has the item-by-item table): ViT with
tubelets 2×16×16 on 16×224×224 clips, predictor 384 wide and 12 deep, two multi-block mask
generators trimmed per group of 24 clips, L1 loss on layer-normed teacher features, a global
batch of 24 × 128 = 3072 clips, AdamW with lr 6.25e-4 (warmup 12k steps from 2e-4, cosine to
1e-6), weight decay 0.04 -> 0.4, EMA momentum 0.998 -> 1.0, all three schedules laid out over
1.25 × the 90k steps of the run, gradient clipping at 10 after warmup, bf16 compute.

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
import math
import pkgutil
from pathlib import Path

from dualjax import configs
from dualjax.vjepa import masks


@dataclasses.dataclass(frozen=True)
class Config:
    # ---- data: clips of `frames` × `size` × `size` × 3
    dataset: str = "shapes"  # a synthetic set of data.SYNTHETIC (shapes: moving shapes) | video: video lists (video.py)
    train_lists: tuple[str, ...] = ()  # dataset=video: list files of `path label` lines
    list_weights: tuple[float, ...] = ()  # () : concatenate the lists; else sampling weight per list
    heldout_lists: tuple[str, ...] = ()  # dataset=video: lists of the probe's held-out clips
    frame_step: int = 4  # dataset=video: frames between sampled frames
    clips_per_video: int = 1  # dataset=video
    decode_timeout: float = 60.0  # dataset=video: seconds to open and decode one clip before it is skipped
    confine_paths: bool = False  # dataset=video: refuse list entries outside the list's folder (docs/reliability.md)
    frames: int = 16
    size: int = 224
    num_train: int = 8192
    num_heldout: int = 1024
    data_seed: int = 0  # the clips (synthetic sets) and the mask calibration
    batch_seed: int | None = None  # the clip order and the masks of the training batches (None: data_seed)
    worker_count: int = 0  # grain worker processes (0: in-process)
    # ---- encoder (ViT) and predictor
    model: str = "small"  # tiny | small | base | large | huge
    width: int = 0  # 0: take from the variant table
    depth: int = 0  # 0: from the variant table
    heads: int = 0  # 0: from the variant table
    mlp_ratio: float = 4.0  # MLP hidden width / width
    tubelet: int = 2  # frames per token
    patch: int = 16  # pixels per token side
    pred_width: int = 384  # predictor width (the reference: 384)
    pred_depth: int = 12
    pred_heads: int = 0  # 0: the encoder's head count (as the reference)
    # ---- masks: one generator per entry of the tuples
    mask_blocks: tuple[int, ...] = (8, 2)
    mask_scales: tuple[float, ...] = (0.15, 0.7)
    mask_aspect: tuple[float, float] = (0.75, 1.5)
    # ---- objective and rule
    teacher: str = "ema"  # a registered rule (dualjax.rules.names()), resolved by optim.make_rule
    loss: str = "l1"  # l1 | half_squared (dualjax.objectives)
    momentum_start: float = 0.998
    momentum_end: float = 1.0
    # ---- optimisation
    steps: int = 90_000  # 300 epochs × 300 iterations
    batch_size: int = 3072  # global: 24 per GPU × 128 GPUs
    lr: float = 6.25e-4  # peak lr, reached at the end of warmup
    start_lr: float = 2e-4  # lr of the first update (linear warmup from it)
    final_lr: float = 1e-6  # cosine end value, at ipe_scale × steps
    warmup_steps: int = 12_000  # 40 epochs × 300 iterations
    weight_decay: float = 0.04  # AdamW decay at step 0 (cosine to final_weight_decay)
    final_weight_decay: float = 0.4
    b1: float = 0.9  # Adam β₁
    b2: float = 0.999  # Adam β₂
    seed: int = 0  # parameter init (data_seed: the data)
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
    stop_on_collapse: bool = False  # end the run at the first record flagged by dualjax.collapse.check
    # ---- scale and faults
    num_devices: int = 0  # devices of the 'data' mesh (0: all of every process)
    sharding: str = "dp"  # dp: params replicated, batch sharded | fsdp: large params sharded too
    fsdp_min_size: int = 2**14  # fsdp: leaves with fewer elements stay replicated
    compute_dtype: str = "bfloat16"  # float32 | bfloat16 matmuls (parameters, optimizer, norms, softmax, loss: float32)
    block_unroll: int = 1  # transformer blocks per iteration of the scan over blocks (≥ depth: fully unrolled)
    remat: bool = False  # recompute each block's activations in the backward pass (less memory, one more forward)
    codegen: str = "xla"  # CPU code generation of step and probe (CODEGEN): xla (defaults) | o1 | o0 (faster compiles)
    check_finite: bool = True  # stop at the first non-finite loss / gradient / parameter
    # ---- reference-recipe options (docs/vjepa.md: reference value | ours | source)
    ipe_scale: float = 1.25  # lr / wd / momentum schedules laid out over ipe_scale × steps; training stops at steps
    lr_batch: int = 0  # global batch start_lr / lr / final_lr are for, scaled by batch_size / lr_batch (0: as given)
    clip_grad: float = 10.0  # clip θ's and ψ's gradient norms separately from warmup_steps on (0: off)
    uniform_power: bool = True  # sin-cos positions: t, h, w get 2⌈D/6⌉ channels each (False: D/2, D/4, D/4)
    mask_trim: str = "first"  # first: the first k indices (reference) | random: a uniform k-subset
    mask_group: int = 24  # clips sharing one trimmed count (the reference's per-GPU batch; 0: the whole batch)
    mask_buckets: int = 1  # padded widths per mask list: jit compiles once per combination of widths
    short_videos: str = "pad"  # dataset=video, fewer frames than a clip: pad with the last frame (reference) | skip
    probe_segments: int = 1  # clips per video whose tokens the probe attends across (reference K400: 8, SSv2: 2)
    probe_views: int = 1  # spatial views per clip at evaluation, softmax-averaged (reference: 3)
    probe_augment: bool = False  # the reference eval's training augmentation (the encoder runs every probe step)

    # ---------------------------------------------------------------- derived
    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (T/t, H/p, W/p)."""
        return (self.frames // self.tubelet, self.size // self.patch, self.size // self.patch)

    @property
    def train_batch_seed(self) -> int:
        """The seed of the training batches' clip order and masks: ``batch_seed``, else ``data_seed``."""
        return self.data_seed if self.batch_seed is None else self.batch_seed

    def validate(self) -> "Config":
        """Raise ValueError naming the first bad value: each field against its range
        (:data:`FIELD_CHECKS`, one entry per field), then the relations between fields."""
        for f in dataclasses.fields(self):
            FIELD_CHECKS[f.name](getattr(self, f.name), f.name)
        from dualjax.vjepa.optim import make_rule  # local: optim imports this module

        make_rule(self)  # the teacher is a registered rule the trainer can run (ValueError naming it)
        if self.dataset == "video" and not self.train_lists:
            raise ValueError("dataset='video' needs train_lists=(LIST, ...)")
        if self.dataset != "video" and (self.train_lists or self.heldout_lists or self.list_weights):
            raise ValueError(f"train_lists, heldout_lists and list_weights are for dataset='video'; "
                             f"dataset={self.dataset!r} would ignore them")
        if self.list_weights and len(self.list_weights) != len(self.train_lists):
            raise ValueError(f"list_weights={self.list_weights} needs one weight per train list {self.train_lists}")
        if self.list_weights and sum(self.list_weights) <= 0:
            raise ValueError(f"list_weights={self.list_weights} must have a positive sum")
        if self.frames % self.tubelet:
            raise ValueError(f"frames={self.frames} is not divisible by tubelet={self.tubelet}")
        if self.size % self.patch:
            raise ValueError(f"size={self.size} is not divisible by patch={self.patch}")
        if len(self.mask_blocks) != len(self.mask_scales) or not self.mask_blocks:
            raise ValueError(
                f"mask_blocks={self.mask_blocks} and mask_scales={self.mask_scales} need the same, non-zero length"
            )
        if self.warmup_steps >= self.steps and self.steps > 1:
            raise ValueError(f"warmup_steps={self.warmup_steps} must be < steps={self.steps}")
        width = self.width or _variants()[self.model].width
        if self.probe_heads and width % self.probe_heads:
            raise ValueError(f"probe_heads={self.probe_heads} does not divide the encoder width {width}")
        return self

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Config":
        """The config of a ``config.json`` (strict: unknown keys and mistyped values are errors)."""
        return configs.from_dict(cls, json.loads(text))


# XLA compiler options of the jitted init / step / energy and of the probe on CPU devices (``codegen``; measured on
# the ViT-tiny benchmark step on two cores, docs/vjepa.md): "o1" is LLVM -O1 with XLA's classic
# elemental emitters, ~70 % of the compile time of XLA's defaults for a step ~5-8 % slower; "o0"
# is LLVM -O0 with them, about a third of the compile time (5.8 s against 16-18 s) for a step about
# half as fast (smoke runs, debugging). The HLO program is the same, so results agree to rounding.
# Only CPU devices get these options (vjepa.parallel.compiler_options).
CODEGEN: dict[str, dict | None] = {
    "xla": None,
    "o1": {"xla_backend_optimization_level": 1, "xla_cpu_use_fusion_emitters": False},
    "o0": {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False},
}


def _variants():
    from dualjax.vjepa.vit import VARIANTS  # local: vit imports flax

    return VARIANTS


def _one_of(*options):
    def check(value, name):
        choices = options or tuple(sorted(_variants()))  # no options: a ViT variant
        if value not in choices:
            raise ValueError(f"{name}={value!r}; choose one of {list(choices)}")
    return check


def _dataset(value, name):
    from dualjax.vjepa.data import dataset_names  # local: looked up at check time, so sets added later count

    _one_of(*dataset_names())(value, name)


def _or_none(check_one):
    def check(value, name):
        if value is not None:
            check_one(value, name)
    return check


def _rule_name(value, name):
    from dualjax import rules  # local: looked up at check time, so rules registered later count

    if value not in rules.names():
        raise ValueError(f"{name}={value!r}: unknown rule {value!r}; registered rules: {', '.join(rules.names())}")


def _int(lo: int):
    def check(value, name):
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return check


def _real(lo: float, hi: float = math.inf, *, open_lo: bool = False, open_hi: bool = False):
    text = (f"{'>' if open_lo else '>='} {lo}" if hi == math.inf else
            f"in {'(' if open_lo else '['}{lo}, {hi}{')' if open_hi else ']'}")

    def check(value, name):
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
              and (value > lo if open_lo else value >= lo) and (value < hi if open_hi else value <= hi))
        if not ok:
            raise ValueError(f"{name} must be a finite number {text}, got {value!r}")
    return check


def _each(check_one):
    def check(value, name):
        if not isinstance(value, (tuple, list)):
            raise ValueError(f"{name} must be a tuple, got {value!r}")
        for i, v in enumerate(value):
            check_one(v, f"{name}[{i}]")
    return check


def _path(value, name):
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty path, got {value!r}")


def _bool(value, name):
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")


def _aspect(value, name):
    _each(_real(0, open_lo=True))(value, name)
    if len(value) != 2 or value[0] > value[1]:
        raise ValueError(f"{name}={value} must be (min, max) with 0 < min <= max")


_POS, _NONNEG, _RATE = _int(1), _int(0), _real(0, open_lo=True)
_UNIT, _UNIT_OPEN = _real(0, 1), _real(0, 1, open_hi=True)

# The range of every field, one entry each (a new field adds its check here; the test suite
# fails on a field without one). Relations between fields are checked in Config.validate.
FIELD_CHECKS = {
    "dataset": _dataset, "train_lists": _each(_path), "list_weights": _each(_real(0)),
    "heldout_lists": _each(_path), "frame_step": _POS, "clips_per_video": _POS,
    "decode_timeout": _RATE, "confine_paths": _bool,
    "frames": _POS, "size": _POS, "num_train": _POS, "num_heldout": _POS, "data_seed": _NONNEG,
    "batch_seed": _or_none(_NONNEG), "worker_count": _NONNEG,
    "model": _one_of(), "width": _NONNEG, "depth": _NONNEG, "heads": _NONNEG, "mlp_ratio": _RATE,
    "tubelet": _POS, "patch": _POS, "pred_width": _POS, "pred_depth": _POS, "pred_heads": _NONNEG,
    "mask_blocks": _each(_POS), "mask_scales": _each(_real(0, 1, open_lo=True, open_hi=True)),
    "mask_aspect": _aspect,
    "teacher": _rule_name, "loss": _one_of("l1", "half_squared"),
    "momentum_start": _UNIT, "momentum_end": _UNIT,
    "steps": _POS, "batch_size": _POS, "lr": _RATE, "start_lr": _real(0), "final_lr": _real(0),
    "warmup_steps": _NONNEG, "weight_decay": _real(0), "final_weight_decay": _real(0),
    "b1": _UNIT_OPEN, "b2": _UNIT_OPEN, "seed": _NONNEG,
    "log_every": _POS, "probe_every": _NONNEG, "probe_encoder": _one_of("teacher", "student"),
    "probe_steps": _POS, "probe_batch": _POS, "probe_lr": _RATE, "probe_weight_decay": _real(0),
    "probe_heads": _NONNEG, "probe_train_clips": _NONNEG, "ckpt_every": _NONNEG, "ckpt_keep": _POS,
    "num_devices": _NONNEG, "sharding": _one_of("dp", "fsdp"), "fsdp_min_size": _NONNEG,
    "compute_dtype": _one_of("float32", "bfloat16"), "check_finite": _bool, "stop_on_collapse": _bool,
    "block_unroll": _POS, "remat": _bool, "codegen": _one_of(*CODEGEN),
    "ipe_scale": _real(1), "lr_batch": _NONNEG, "clip_grad": _real(0), "uniform_power": _bool,
    "mask_trim": _one_of(*masks.TRIMS), "mask_group": _NONNEG, "mask_buckets": _POS,
    "short_videos": _one_of("pad", "skip"), "probe_segments": _POS, "probe_views": _POS, "probe_augment": _bool,
}


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
