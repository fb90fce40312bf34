"""Data pipelines (grain): synthetic labelled video sets, training batches with masks, eval batches.

**Datasets by name** (``Config.dataset``): the synthetic sets of :data:`SYNTHETIC`, each a source
class and its class count (a new one is one more entry), or ``"video"``, the video lists of
:mod:`dualjax.vjepa.video`, whose class count is one more than the largest label of its lists.
:func:`num_classes` gives the count of a config's dataset and :func:`make_source` its source.

**Moving shapes** (``"shapes"``, no download). A clip shows one object moving in a straight line
over a noisy, randomly tinted background. Label = shape × direction:

    shape ∈ {square, disk, triangle, cross},  direction ∈ {right, left, down, up}   (16 classes)

with random size (radius S/8 … S/5), colour, start position, speed (0.75 … 1.75 px/frame) and
noise level, so a single frame does not give away the class: the direction needs time, the shape
needs space, and colour/position are nuisances. Clip i of split s is rendered from
``np.random.default_rng([seed, s, i])``: deterministic, random access, nothing stored.

**Training batches.** ``train_batches`` is a grain ``MapDataset`` indexed by the *step*: batch t
holds the clips of a per-epoch shuffle (seeded) and multi-block masks drawn from
``default_rng([seed, 1_000_003, t])``; the trainer's seed is ``Config.train_batch_seed``. Resuming at
step t is therefore exact: start the index at t.
Any source with ``__len__`` and ``__getitem__ -> {"clip": uint8 T×H×W×C, "label": int}`` works,
e.g. the video lists of :mod:`dualjax.vjepa.video` (``dataset="video"``), whose per-clip
``"skipped"`` and ``"padded"`` counts are carried into the batch (the trainer sums them into
``videos_skipped`` and ``videos_padded``). ``batch["masks"]`` holds one
:class:`~dualjax.vjepa.masks.MaskSet` ``(ctx, tgt, n_ctx, n_tgt)`` per mask generator.

Worker processes (``worker_count > 0``) need a ``__main__`` guard in the launching script and absl
flags parsed (``absl.flags.FLAGS(sys.argv[:1])``); every mapped function here is a top-level
callable so it pickles.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterator, NamedTuple

import grain
import numpy as np

from dualjax import checks
from dualjax.vjepa import tasks

SHAPES = ("square", "disk", "triangle", "cross")
DIRECTIONS = ((0, 1), (0, -1), (1, 0), (-1, 0))  # (dy, dx): right, left, down, up
SHAPES_CLASSES = len(SHAPES) * len(DIRECTIONS)
SPLITS = {"train": 0, "heldout": 1}

# ImageNet statistics, as the reference normalises its clips
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def normalize(clip_uint8):
    """uint8 clip (…, C) -> float32 (x/255 − mean)/std; works on numpy and jax arrays."""
    return (clip_uint8.astype(np.float32) / 255.0 - MEAN) / STD


def _shape_mask(shape: str, dy: np.ndarray, dx: np.ndarray, r: float) -> np.ndarray:
    if shape == "square":
        return (np.abs(dy) <= r * 0.85) & (np.abs(dx) <= r * 0.85)
    if shape == "disk":
        return dy**2 + dx**2 <= r**2
    if shape == "triangle":  # apex up
        return (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.55)
    if shape == "cross":
        thin = r / 3
        return ((np.abs(dx) <= thin) & (np.abs(dy) <= r)) | ((np.abs(dy) <= thin) & (np.abs(dx) <= r))
    raise ValueError(f"unknown shape {shape!r}")


def render_shapes_clip(rng: np.random.Generator, frames: int, size: int, label: int | None = None
                       ) -> tuple[np.ndarray, int]:
    """One moving-shape clip (T, S, S, 3) uint8 and its label (drawn from ``rng`` unless given)."""
    if label is None:
        label = int(rng.integers(SHAPES_CLASSES))
    shape = SHAPES[label // len(DIRECTIONS)]
    dy, dx = DIRECTIONS[label % len(DIRECTIONS)]
    r = rng.uniform(size / 8, size / 5)
    speed = rng.uniform(0.75, 1.75)
    travel = speed * (frames - 1)
    # start so that the whole path stays inside the frame (the centre moves `travel` pixels)
    lo, hi = r, size - 1 - r
    cy0 = rng.uniform(lo, hi) if dy == 0 else (rng.uniform(lo, max(lo, hi - travel)) if dy > 0
                                               else rng.uniform(min(hi, lo + travel), hi))
    cx0 = rng.uniform(lo, hi) if dx == 0 else (rng.uniform(lo, max(lo, hi - travel)) if dx > 0
                                               else rng.uniform(min(hi, lo + travel), hi))
    bg = rng.uniform(0, 0.5, size=3)
    fg = rng.uniform(0.3, 1.0, size=3)
    if np.abs(fg - bg).sum() < 0.6:  # keep the object visible
        fg = np.clip(bg + 0.6, 0, 1)
    noise = rng.uniform(0.02, 0.12)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    clip = np.empty((frames, size, size, 3), np.float32)
    for t in range(frames):
        cy, cx = cy0 + dy * speed * t, cx0 + dx * speed * t
        m = _shape_mask(shape, yy - cy, xx - cx, r)[..., None]
        clip[t] = np.where(m, fg, bg)
    clip += rng.normal(0, noise, size=clip.shape)
    return (np.clip(clip, 0, 1) * 255).round().astype(np.uint8), label


class ShapesSource:
    """Random-access source of moving-shape clips; see the module doc."""

    def __init__(self, num: int, *, frames: int, size: int, seed: int = 0, split: str = "train"):
        self.num = checks.check_positive_int(num, "num")
        self.frames = checks.check_positive_int(frames, "frames")
        self.size = checks.check_positive_int(size, "size")
        if split not in SPLITS:
            raise ValueError(f"split={split!r}; choose one of {list(SPLITS)}")
        self.seed, self.split = int(seed), split

    def __len__(self) -> int:
        return self.num

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not 0 <= i < self.num:
            raise IndexError(f"clip index {i} out of range [0, {self.num})")
        rng = np.random.default_rng([self.seed, SPLITS[self.split], int(i)])
        clip, label = render_shapes_clip(rng, self.frames, self.size)
        return {"clip": clip, "label": np.int32(label)}

    def __repr__(self) -> str:
        return f"ShapesSource({self.num}, frames={self.frames}, size={self.size}, seed={self.seed}, split={self.split!r})"


class Synthetic(NamedTuple):
    """A synthetic dataset: ``source(num, frames=, size=, seed=, split=)`` (``split``: train | heldout)
    returns a random-access source whose labels lie in ``[0, num_classes)``."""

    source: Callable[..., Any]
    num_classes: int


# The synthetic datasets by name (``Config.dataset``; "video" is reserved for video lists).
SYNTHETIC: dict[str, Synthetic] = {
    "shapes": Synthetic(ShapesSource, SHAPES_CLASSES),
    # the procedural designs of issue 17 (direction of motion, 8 classes): tasks.py
    **{name: Synthetic(functools.partial(tasks.TaskSource, name), tasks.NUM_DIRECTIONS) for name in tasks.DESIGNS},
}


def dataset_names() -> tuple[str, ...]:
    """The valid values of ``Config.dataset``: the synthetic sets, then ``"video"``."""
    return (*SYNTHETIC, "video")


def _synthetic(cfg) -> Synthetic:
    """The :data:`SYNTHETIC` entry of ``cfg.dataset`` (ValueError naming it if there is none)."""
    if cfg.dataset not in SYNTHETIC:
        raise ValueError(f"dataset={cfg.dataset!r} is not built in; choose one of {list(dataset_names())}")
    return SYNTHETIC[cfg.dataset]


def num_classes(cfg) -> int:
    """The class count of ``cfg.dataset``: its :data:`SYNTHETIC` entry's, or for ``"video"`` one
    more than the largest label of ``train_lists`` and ``heldout_lists`` (labels are 0, 1, …)."""
    if cfg.dataset == "video":
        from dualjax.vjepa import videolist

        lists = (*cfg.train_lists, *cfg.heldout_lists)
        if not lists:
            raise ValueError("dataset='video' has no lists to read the labels from: set train_lists")
        return 1 + max(e.label for p in lists for e in videolist.read_list(p, confine=cfg.confine_paths))
    return _synthetic(cfg).num_classes


def make_source(cfg, split: str):
    """The configured source for ``split`` (train | heldout).

    A synthetic ``dataset`` (:data:`SYNTHETIC`): its source over ``num_train`` / ``num_heldout``
    clips seeded by ``data_seed``. ``dataset="video"``: a
    :class:`dualjax.vjepa.video.VideoSource` over ``train_lists`` (weighted by ``list_weights``,
    then ``num_train`` elements long) or ``heldout_lists`` (centred clips, no flip), clips of
    ``frames`` frames ``frame_step`` apart cropped to ``size``²; its elements carry ``"skipped"``.
    """
    if cfg.dataset == "video":
        from dualjax.vjepa import video

        lists = cfg.train_lists if split == "train" else cfg.heldout_lists
        if not lists:
            raise ValueError(f"dataset='video' has no {split} lists: set "
                             f"{'train_lists' if split == 'train' else 'heldout_lists'}")
        train = split == "train"
        spec = video.ClipSpec(frames=cfg.frames, frame_step=cfg.frame_step, clips_per_video=cfg.clips_per_video,
                              crop_size=cfg.size, flip=train, random_start=train,
                              scale=(0.3, 1.0) if train else (1.0, 1.0), pad_short=cfg.short_videos == "pad")
        weights = cfg.list_weights if (train and cfg.list_weights) else None
        length = cfg.num_train if weights else None
        return video.VideoSource(list(lists), spec, weights=weights, seed=cfg.data_seed + (0 if train else 1),
                                 length=length, timeout=cfg.decode_timeout, confine=cfg.confine_paths)
    num = cfg.num_train if split == "train" else cfg.num_heldout
    return _synthetic(cfg).source(num, frames=cfg.frames, size=cfg.size, seed=cfg.data_seed, split=split)


class AddMasks:
    """grain map_with_index: attach the masks of step ``index`` to a batch (top level: picklable)."""

    def __init__(self, masks, seed: int):
        self.masks, self.seed = masks, int(seed)

    def __call__(self, index: int, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, 1_000_003, int(index)])
        pairs = self.masks(rng, batch["clip"].shape[0])
        out = {"clip": batch["clip"], "label": batch["label"], "masks": tuple(tuple(m) for m in pairs)}
        for key in ("skipped", "padded"):  # video sources: unreadable videos passed over, padded clips
            if key in batch:
                out[key] = batch[key]
        return out


def train_dataset(source, masks, batch_size: int, seed: int, num_steps: int) -> grain.MapDataset:
    """Random-access dataset of ``num_steps`` training batches; element t is the batch of step t."""
    checks.check_positive_int(batch_size, "batch_size")
    if batch_size > len(source):
        raise ValueError(f"batch_size={batch_size} exceeds the {len(source)} clips of {source!r}")
    per_epoch = len(source) // batch_size
    epochs = -(-num_steps // per_epoch) + 1
    ds = (grain.MapDataset.source(source).shuffle(seed=seed).repeat(epochs)
          .batch(batch_size, drop_remainder=True))
    return ds.slice(slice(0, num_steps)).map_with_index(AddMasks(masks, seed))


def train_batches(source, masks, batch_size: int, seed: int, num_steps: int, start_step: int = 0,
                  worker_count: int = 0, prefetch: int = 2) -> Iterator[dict[str, Any]]:
    """Iterator over the batches of steps ``start_step, …, num_steps − 1``."""
    ds = train_dataset(source, masks, batch_size, seed, num_steps).slice(slice(start_step, None))
    it = ds.to_iter_dataset(grain.ReadOptions(num_threads=max(1, prefetch), prefetch_buffer_size=prefetch))
    if worker_count > 0:
        it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
    return iter(it)


def eval_batches(source, batch_size: int, limit: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """The first ``limit`` (0: all) clips of ``source`` in order, in batches (last one may be short)."""
    ds = grain.MapDataset.source(source)
    if limit:
        ds = ds.slice(slice(0, limit))
    return iter(ds.batch(batch_size, drop_remainder=False).to_iter_dataset())
