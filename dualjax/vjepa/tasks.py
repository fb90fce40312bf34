"""Procedural video tasks whose label lives in space-time structure (issue 17), and the designs tried.

On the moving shapes of :mod:`dualjax.vjepa.data` a *randomly initialised* encoder with the
attentive probe already scores ~70 % (16 classes), so the probe cannot show what training adds.
The designs here were measured for that: random-init probe and probe after V-JEPA training
(docs/vjepa.md, "Task designs"; ``experiments/task_design.py`` reruns the table).

Every design labels 8 directions of motion, sector k = angle k·45° (rows grow downwards:
k = 0 right, 2 down, 4 left, 6 up). Clip i of split s is drawn from
``np.random.default_rng([seed, s, i])`` with label ``i mod 8``: deterministic, random access,
exactly balanced over any 8 consecutive clips, nothing stored.

* ``tracking`` — *which disk persists?* One disk (the target) crosses the clip in a straight
  line at 1.5–2.2 px/frame in direction k; ``distractors`` look-alike disks, each moving in a
  random direction at the same speeds, live ``life`` frames (one tubelet) and then jump
  elsewhere. Within a tubelet every disk looks alike; only continuity across tubelets marks the
  target, so neither a frame nor a token gives the class. Background at the normalisation mean
  (:data:`dualjax.vjepa.data.MEAN`), every disk the mean ± ``contrast`` (random sign per disk
  life): the normalised clip has mean ≈ 0 (a constant offset in the pixels otherwise dominates
  the encoder's first gradients, docs/vjepa.md).
* ``tracking_dark`` — the same scenes as bright disks on a dark background (mean ≠ 0).
* ``flicker`` — one persistent disk (bright on dark) among disks redrawn at random every frame.
* ``kinetogram`` — random-dot kinetogram: every frame is fresh binary noise except a disk whose
  dots move with it; single frames are pure noise.
* ``dots`` — the whole field is a binary dot texture translating in direction k (full coherence).

The oracle :func:`direction_sector` recovers the label from a clip's generating parameters (the
target's centres).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from dualjax import checks

NUM_DIRECTIONS = 8
SPLITS = {"train": 0, "heldout": 1}
_MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # = data.MEAN (not imported: data imports this module)
SPEEDS = (1.5, 2.2)  # px per frame
RADII = (2.5, 3.5)


def unit(k: int) -> tuple[float, float]:
    """(dy, dx) of direction sector k (angle k·45°, rows down)."""
    a = k * 2 * np.pi / NUM_DIRECTIONS
    return float(np.sin(a)), float(np.cos(a))


def direction_sector(centres: np.ndarray) -> int:
    """The oracle: sector of the net displacement of ``centres`` (T, 2) rows/columns."""
    dy, dx = np.asarray(centres[-1], float) - np.asarray(centres[0], float)
    return int(np.round(np.arctan2(dy, dx) / (2 * np.pi / NUM_DIRECTIONS))) % NUM_DIRECTIONS


def _start(rng: np.random.Generator, d: float, travel: float, lo: float, hi: float) -> float:
    """A start coordinate such that start + d·travel stays in [lo, hi]."""
    span = d * travel
    a, b = lo - min(0.0, span), hi - max(0.0, span)
    if a > b:
        raise ValueError(f"a path of {abs(span):.1f} px does not fit in [{lo:.1f}, {hi:.1f}]: "
                         "clips are too long for their size (more frames need a larger size)")
    return rng.uniform(a, b)


def _path(rng, direction: tuple[float, float], speed: float, steps: int, size: int, r: float) -> np.ndarray:
    """(steps, 2) centres of a straight path of ``steps`` frames that stays inside the frame."""
    dy, dx = direction
    travel = speed * (steps - 1)
    lo, hi = r, size - 1 - r
    y0, x0 = _start(rng, dy, travel, lo, hi), _start(rng, dx, travel, lo, hi)
    t = np.arange(steps)[:, None]
    return np.array([y0, x0]) + t * speed * np.array([dy, dx])


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(size, dtype=np.float32)[:, None], np.arange(size, dtype=np.float32)[None, :]


def _disk(size: int, centre, r: float) -> np.ndarray:
    """(size, size) bool: the pixels within ``r`` of ``centre``."""
    yy, xx = _grid(size)
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= r * r


def tracking(rng: np.random.Generator, label: int, frames: int, size: int, *, distractors: int = 4,
             life: int = 2, contrast: float = 0.35, noise: float = 0.05, centred: bool = True
             ) -> tuple[np.ndarray, dict]:
    """The ``tracking`` clip (T, S, S, 3) in [0, 1] and its parameters (module doc); ``centred=False``:
    the same scene as bright disks (0.9) on a dark background (0.1), as ``flicker`` draws them."""
    r, speed = rng.uniform(*RADII), rng.uniform(*SPEEDS)
    target = _path(rng, unit(label), speed, frames, size, r)
    off = np.zeros((frames, size, size), np.float32)
    sign = rng.choice([-1.0, 1.0])
    for t in range(frames):
        off[t][_disk(size, target[t], r)] = sign
    for t0 in range(0, frames, life):
        n = min(life, frames - t0)
        for _ in range(distractors):
            a = rng.uniform(0, 2 * np.pi)
            rr, sp, s = rng.uniform(*RADII), rng.uniform(*SPEEDS), rng.choice([-1.0, 1.0])
            path = _path(rng, (np.sin(a), np.cos(a)), sp, n, size, rr)
            for j in range(n):
                off[t0 + j][_disk(size, path[j], rr)] = s
    pixel_noise = rng.normal(0, noise, (frames, size, size, 1))
    clip = (_MEAN + contrast * off[..., None]) if centred else np.repeat(0.1 + 0.8 * (off != 0)[..., None], 3, -1)
    return clip + pixel_noise, {"centres": target, "radius": r, "speed": speed}


def flicker(rng: np.random.Generator, label: int, frames: int, size: int, *, distractors: int = 5,
            noise: float = 0.05) -> tuple[np.ndarray, dict]:
    """One persistent bright disk among ``distractors`` redrawn at random every frame, dark background."""
    r, speed = rng.uniform(2.0, 3.0), rng.uniform(*SPEEDS)
    target = _path(rng, unit(label), speed, frames, size, r)
    on = np.zeros((frames, size, size), bool)
    for t in range(frames):
        on[t] = _disk(size, target[t], r)
        for _ in range(distractors):
            on[t] |= _disk(size, rng.uniform(r, size - 1 - r, 2), rng.uniform(2.0, 3.0))
    clip = on * 0.8 + 0.1 + rng.normal(0, noise, on.shape)
    return np.repeat(clip[..., None], 3, -1), {"centres": target, "radius": r, "speed": speed}


def kinetogram(rng: np.random.Generator, label: int, frames: int, size: int, *,
               density: float = 0.5) -> tuple[np.ndarray, dict]:
    """Fresh binary noise every frame, except a disk (radius 5–8) whose dots move with it at 0.8–1.3 px/frame."""
    r, speed = rng.uniform(5.0, 8.0), rng.uniform(0.8, 1.3)
    target = _path(rng, unit(label), speed, frames, size, r)
    tex = rng.random((3 * size, 3 * size)) < density  # the disk's own dots, carried along
    clip = np.empty((frames, size, size), np.float32)
    for t in range(frames):
        shift = np.round(target[t] - target[0]).astype(int)
        obj = tex[size - shift[0]:2 * size - shift[0], size - shift[1]:2 * size - shift[1]]
        clip[t] = np.where(_disk(size, target[t], r), obj, rng.random((size, size)) < density)
    return np.repeat((clip * 0.8 + 0.1)[..., None], 3, -1), {"centres": target, "radius": r, "speed": speed}


def dots(rng: np.random.Generator, label: int, frames: int, size: int, *,
         density: float = 0.5) -> tuple[np.ndarray, dict]:
    """The whole frame is a binary dot texture translating in direction ``label`` at 1–2 px/frame."""
    speed = rng.uniform(1.0, 2.0)
    dy, dx = unit(label)
    P = 2 * size + 4 * frames
    tex = rng.random((P, P)) < density
    c0 = P // 2 - size // 2
    centres = np.array([[c0 + dy * speed * t, c0 + dx * speed * t] for t in range(frames)])
    clip = np.empty((frames, size, size), np.float32)
    for t in range(frames):
        oy, ox = np.round(2 * c0 - centres[t]).astype(int)
        clip[t] = tex[oy:oy + size, ox:ox + size]
    return np.repeat((clip * 0.8 + 0.1)[..., None], 3, -1), {"centres": centres, "speed": speed}


DESIGNS: dict[str, Callable[..., tuple[np.ndarray, dict]]] = {
    "tracking": tracking,
    "tracking_dark": functools.partial(tracking, centred=False),
    "flicker": flicker,
    "kinetogram": kinetogram,
    "dots": dots,
}


class TaskSource:
    """Random-access source of the clips of design ``name`` (module doc):
    ``{"clip": uint8 (T, S, S, 3), "label": int32}``; :meth:`draw` also gives the parameters."""

    num_classes = NUM_DIRECTIONS

    def __init__(self, name: str, num: int, *, frames: int, size: int, seed: int = 0, split: str = "train",
                 **options: Any):
        if name not in DESIGNS:
            raise ValueError(f"unknown task design {name!r}; choose one of {sorted(DESIGNS)}")
        if split not in SPLITS:
            raise ValueError(f"split={split!r}; choose one of {list(SPLITS)}")
        self.name, self.options = name, options
        self.num = checks.check_positive_int(num, "num")
        self.frames = checks.check_positive_int(frames, "frames")
        self.size = checks.check_positive_int(size, "size")
        self.seed, self.split = int(seed), split

    def __len__(self) -> int:
        return self.num

    def draw(self, i: int) -> tuple[np.ndarray, int, dict]:
        """Clip i as uint8, its label and its generating parameters."""
        if not 0 <= i < self.num:
            raise IndexError(f"clip index {i} out of range [0, {self.num})")
        rng = np.random.default_rng([self.seed, SPLITS[self.split], int(i)])
        label = int(i) % NUM_DIRECTIONS
        clip, params = DESIGNS[self.name](rng, label, self.frames, self.size, **self.options)
        return (np.clip(clip, 0, 1) * 255).round().astype(np.uint8), label, params

    def __getitem__(self, i: int) -> dict[str, Any]:
        clip, label, _ = self.draw(i)
        return {"clip": clip, "label": np.int32(label)}

    def __repr__(self) -> str:
        return (f"TaskSource({self.name!r}, {self.num}, frames={self.frames}, size={self.size}, "
                f"seed={self.seed}, split={self.split!r})")
