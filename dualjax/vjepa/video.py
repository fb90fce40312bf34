"""Video files as a grain data source: clip sampling, crops, skip policy.

**Lists** of ``path label`` lines in the reference format (:mod:`dualjax.vjepa.videolist`);
several lists can be combined, optionally with sampling weights.

**Indexing** (random access, deterministic from ``seed``; element ``i`` is clip ``i mod C`` of
video ``j = i // C``, C = ``clips_per_video``):

* no weights: the lists are concatenated and video ``j`` is entry ``j`` (one epoch visits each
  entry once; shuffle with grain as usual);
* weights ``w``: video ``j`` comes from list ``l ~ w`` and is uniform within it, drawn from
  ``default_rng([seed, j])`` — the reference's weighted sampling with replacement.

**Clips** (reference ``VideoDataset`` semantics): a clip is ``frames`` frames ``frame_step``
apart (span ``frames · frame_step``). The video is cut into C equal segments; clip k starts at
a uniformly random offset inside segment k (``random_start=True``, training) or is centred in it
(evaluation); segments shorter than the span overlap evenly. Each clip then gets a random
resized crop (area fraction ``scale``, aspect ratio ``ratio``, resized to ``crop_size`` ×
``crop_size`` with bilinear swscale) and, with ``flip``, a horizontal flip with probability ½.
A video with n < span frames is padded (``pad_short``, the reference's ``filter_short_videos:
false``): ⌊n/frame_step⌋ frames spread evenly over [0, n], then its last frame repeated; elements
carry ``"padded"`` (1 for such a clip). With ``pad_short=False`` it is skipped as too short.

**Skip policy.** A missing, non-regular (a FIFO, a device, a folder: opening a FIFO would block
forever, so it is never opened), unreadable/corrupt, truncated (the clip's frames cannot all be
decoded: a decode error mid-stream, or the stream ends before them), too slow (opening and
decoding took longer than ``timeout`` seconds) or, with ``pad_short=False``, too short video is
never returned and never replaced by zeros: the source warns once per path
(:class:`VideoSkipWarning`), counts it, and deterministically tries another video of the same
list (its order is a fixed permutation from ``seed`` and ``j``). Every element carries
``"skipped"``: the number of unreadable videos passed over to produce it, so the count survives
grain worker processes and batching — sum it per batch into the metrics. ``source.stats``
additionally counts skips by reason in *this* process. If ``max_tries`` videos in a row fail,
or every video of a list fails, :class:`NoReadableVideoError` names the list.

**Elements.** :class:`VideoSource` yields ``{"clip": uint8 (T, S, S, 3), "label": int32,
"skipped": int32, "padded": int32}`` (the interface of :mod:`dualjax.vjepa.data`'s sources);
:class:`Normalize` maps it to ``{"video": float32 (T, S, S, 3), ...}`` with the ImageNet mean
and std; :func:`video_dataset` chains both as a ``grain.MapDataset``.

**Workers.** Everything here is a top-level, picklable callable. With grain worker processes
(``mp_prefetch``) launch from a script with an ``if __name__ == "__main__":`` guard and parse absl
flags first (:func:`ensure_absl_flags`).
"""

from __future__ import annotations

import collections
import os
import stat
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import av
import grain
import numpy as np

from dualjax import checks
from dualjax.vjepa.videolist import VideoEntry, read_list

# ImageNet statistics, as the reference normalises its clips
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)

REASONS = ("missing", "not_a_file", "corrupt", "truncated", "too_short", "timeout")


class VideoError(Exception):
    """A video cannot give the requested clip; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, path: str, reason: str, detail: str):
        self.path, self.reason, self.detail = path, reason, detail
        super().__init__(f"{reason} video {path}: {detail}")


class NoReadableVideoError(ValueError):
    """No readable video could be found in a list (bad input: ``dualjax train`` exits with 2)."""


class VideoSkipWarning(UserWarning):
    """An unreadable video was skipped."""


# --------------------------------------------------------------------------- decoding and crops

@dataclass(frozen=True)
class ClipSpec:
    """Clip sampling and augmentation (defaults: the reference V-JEPA pre-training)."""

    frames: int = 16
    frame_step: int = 4
    clips_per_video: int = 1
    crop_size: int = 224
    scale: tuple[float, float] = (0.3, 1.0)
    ratio: tuple[float, float] = (0.75, 1.35)
    flip: bool = True
    random_start: bool = True
    pad_short: bool = True

    def __post_init__(self):
        checks.check_positive_int(self.frames, "frames")
        checks.check_positive_int(self.frame_step, "frame_step")
        checks.check_positive_int(self.clips_per_video, "clips_per_video")
        checks.check_positive_int(self.crop_size, "crop_size")
        lo, hi = self.scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"scale must satisfy 0 < lo <= hi <= 1, got {self.scale}")
        lo, hi = self.ratio
        if not 0 < lo <= hi:
            raise ValueError(f"ratio must satisfy 0 < lo <= hi, got {self.ratio}")

    @property
    def span(self) -> int:
        """Frames of video covered by one clip."""
        return (self.frames - 1) * self.frame_step + 1


def clip_indices(num_frames: int, spec: ClipSpec, clip: int, rng: np.random.Generator) -> np.ndarray:
    """Frame indices of clip ``clip`` of a video with ``num_frames`` frames (see module doc)."""
    span = spec.span
    if num_frames < span:
        if not spec.pad_short:
            raise ValueError(f"{num_frames} frames < clip span {span}")
        spread = np.linspace(0, num_frames, num_frames // spec.frame_step)
        return np.minimum(np.concatenate([spread, np.full(spec.frames - len(spread), num_frames)]),
                          num_frames - 1).astype(np.int64)
    segment = num_frames // spec.clips_per_video
    if segment >= span:
        room = segment - span
        offset = int(rng.integers(room + 1)) if spec.random_start else room // 2
        start = clip * segment + offset
    else:  # segments shorter than a clip: spread the clips evenly, overlapping
        last = num_frames - span
        start = (clip * last) // max(spec.clips_per_video - 1, 1)
    return start + spec.frame_step * np.arange(spec.frames)


def _regular_file(path: str) -> None:
    """Raise :class:`VideoError` unless ``path`` is a regular file (checked without opening it:
    opening a FIFO blocks until a writer appears)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise VideoError(path, "missing", "no such file") from None
    except OSError as err:
        raise VideoError(path, "missing", f"cannot stat: {err.strerror}") from None
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a folder" if stat.S_ISDIR(mode) else "a device or socket"
        raise VideoError(path, "not_a_file", f"{kind}, not a regular file")


def _failed(path: str, reason: str, detail: str, t0: float, timeout: float | None) -> VideoError:
    if timeout is not None and time.monotonic() - t0 > timeout:
        return VideoError(path, "timeout", f"gave up after {timeout} s ({detail})")
    return VideoError(path, reason, detail)


def decode_frames(path: str, indices: np.ndarray, timeout: float | None = None) -> np.ndarray:
    """The frames ``indices`` (ascending) of ``path`` as uint8 (T, H, W, 3) RGB; raises
    :class:`VideoError` on a missing, non-regular, corrupt or truncated file, or when opening
    and decoding take longer than ``timeout`` seconds."""
    wanted = np.asarray(indices)
    wanted_set = frozenset(int(i) for i in wanted)
    _regular_file(path)
    t0 = time.monotonic()
    try:
        container = av.open(path, timeout=timeout)
    except Exception as err:  # noqa: BLE001 - av raises many FFmpegError / OSError kinds
        raise _failed(path, "corrupt", f"cannot open: {err}", t0, timeout) from None
    with container:
        if not container.streams.video:
            raise VideoError(path, "corrupt", "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames: dict[int, np.ndarray] = {}
        last = int(wanted.max())
        n = -1
        try:
            for n, frame in enumerate(container.decode(stream)):
                if timeout is not None and time.monotonic() - t0 > timeout:
                    raise VideoError(path, "timeout", f"decoding took longer than {timeout} s ({n} frames)")
                if n in wanted_set:
                    frames[n] = frame.to_ndarray(format="rgb24")
                if n >= last:
                    break
        except VideoError:
            raise
        except Exception as err:  # noqa: BLE001
            raise _failed(path, "truncated", f"decode error after {n + 1} frames: {err}", t0, timeout) from None
    if len(frames) != len(wanted_set):
        raise VideoError(path, "truncated", f"only {n + 1} frames decodable, clip needs frame {last}")
    return np.stack([frames[int(i)] for i in wanted])


def probe_frames(path: str, timeout: float | None = None) -> int:
    """Number of frames of ``path``: the container's count, else counted by demuxing (at most
    ``timeout`` seconds to open and read it)."""
    _regular_file(path)
    t0 = time.monotonic()
    try:
        with av.open(path, timeout=timeout) as container:
            if not container.streams.video:
                raise VideoError(path, "corrupt", "no video stream")
            stream = container.streams.video[0]
            if stream.frames and stream.frames > 0:
                return int(stream.frames)
            return sum(1 for packet in container.demux(stream) if packet.size)
    except VideoError:
        raise
    except Exception as err:  # noqa: BLE001
        raise _failed(path, "corrupt", f"cannot open: {err}", t0, timeout) from None


def random_resized_crop(clip: np.ndarray, rng: np.random.Generator, spec: ClipSpec) -> np.ndarray:
    """One crop box for all frames (area fraction ``spec.scale``, aspect ``spec.ratio``, log-uniform),
    resized to ``crop_size``², then a horizontal flip with probability ½ if ``spec.flip``."""
    _, h, w, _ = clip.shape
    area = h * w
    for _ in range(10):  # torchvision's RandomResizedCrop recipe
        target = area * rng.uniform(*spec.scale)
        aspect = np.exp(rng.uniform(np.log(spec.ratio[0]), np.log(spec.ratio[1])))
        cw = int(round(np.sqrt(target * aspect)))
        ch = int(round(np.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            y0 = int(rng.integers(h - ch + 1))
            x0 = int(rng.integers(w - cw + 1))
            break
    else:  # fall back to a centred crop with the aspect clamped into range
        aspect = min(max(w / h, spec.ratio[0]), spec.ratio[1])
        cw, ch = (w, int(round(w / aspect))) if w / h < aspect else (int(round(h * aspect)), h)
        cw, ch = min(cw, w), min(ch, h)
        y0, x0 = (h - ch) // 2, (w - cw) // 2
    size = spec.crop_size
    out = np.stack([
        av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[y0:y0 + ch, x0:x0 + cw]), format="rgb24")
        .reformat(width=size, height=size, interpolation="BILINEAR")
        .to_ndarray(format="rgb24")
        for frame in clip
    ])
    if spec.flip and rng.random() < 0.5:
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out)


def load_clip(path: str, spec: ClipSpec, clip: int, rng: np.random.Generator,
              timeout: float | None = None) -> tuple[np.ndarray, bool]:
    """Clip ``clip`` of the video at ``path``, cropped: uint8 (T, S, S, 3), and whether it was
    padded; raises :class:`VideoError` (``timeout``: seconds allowed to probe, and again to decode)."""
    num_frames = probe_frames(path, timeout)
    if num_frames < spec.span and not spec.pad_short:
        raise VideoError(path, "too_short", f"{num_frames} frames < clip span {spec.span}")
    frames = decode_frames(path, clip_indices(num_frames, spec, clip, rng), timeout)
    return random_resized_crop(frames, rng, spec), num_frames < spec.span


# --------------------------------------------------------------------------- the source

class VideoSource:
    """Random-access grain data source of video clips from one or more lists (module doc).

    ``lists``: one list file or several; ``weights``: sampling weights per list (``None``:
    concatenate); ``length``: number of elements (default: C × the total number of entries);
    ``max_tries``: videos tried per element before giving up; ``timeout``: seconds to open and
    decode a video before it is skipped (``None``: no limit); ``confine``: refuse list entries
    outside their list's folder (:func:`read_list`).
    """

    def __init__(
        self,
        lists: str | os.PathLike | Sequence[str | os.PathLike],
        spec: ClipSpec = ClipSpec(),
        *,
        weights: Sequence[float] | None = None,
        seed: int = 0,
        length: int | None = None,
        max_tries: int = 100,
        timeout: float | None = 60.0,
        confine: bool = False,
    ):
        if isinstance(lists, (str, os.PathLike)):
            lists = [lists]
        self.list_names = [str(p) for p in lists]
        if not self.list_names:
            raise ValueError("VideoSource needs at least one list file")
        self.lists = [read_list(p, confine=confine) for p in self.list_names]
        self.timeout = None if timeout is None else checks.check_positive(timeout, "timeout")
        self.spec = spec
        self.seed = int(seed)
        self.max_tries = checks.check_positive_int(max_tries, "max_tries")
        if weights is not None:
            w = np.asarray(weights, np.float64)
            if w.shape != (len(self.lists),) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
                raise ValueError(
                    f"weights must be {len(self.lists)} finite non-negative numbers with a positive sum, got {weights!r}"
                )
            self.weights = w / w.sum()
        else:
            self.weights = None
        self._offsets = np.cumsum([0] + [len(entries) for entries in self.lists])
        total = int(self._offsets[-1]) * spec.clips_per_video
        self.length = total if length is None else checks.check_positive_int(length, "length")
        self.stats: collections.Counter = collections.Counter()
        self._bad: dict[str, VideoError] = {}

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        return f"VideoSource({self.list_names}, weights={self.weights}, len={self.length}, seed={self.seed})"

    def __getstate__(self):
        state = dict(self.__dict__)
        state["stats"], state["_bad"] = collections.Counter(), {}  # per process
        return state

    def entry(self, i: int) -> tuple[int, VideoEntry]:
        """``(list index, entry)`` that element ``i`` reads first (before any skip)."""
        lst, k = self._video(int(i) // self.spec.clips_per_video)
        return lst, self.lists[lst][k]

    def _video(self, j: int) -> tuple[int, int]:
        """(list, entry) of video ``j``."""
        if self.weights is None:
            j = j % int(self._offsets[-1])
            lst = int(np.searchsorted(self._offsets, j, side="right") - 1)
            return lst, j - int(self._offsets[lst])
        rng = np.random.default_rng([self.seed, 1, j])
        lst = int(rng.choice(len(self.lists), p=self.weights))
        return lst, int(rng.integers(len(self.lists[lst])))

    def _candidates(self, j: int, lst: int, first: int):
        yield first
        n = len(self.lists[lst])
        for k in np.random.default_rng([self.seed, 2, j]).permutation(n)[: self.max_tries]:
            if int(k) != first:
                yield int(k)

    def __getitem__(self, i: int) -> dict[str, Any]:
        i = int(i)
        if i < 0:
            raise IndexError(f"clip index {i} is negative")
        j, clip = divmod(i, self.spec.clips_per_video)
        lst, first = self._video(j)
        entries = self.lists[lst]
        skipped = 0
        last_error = None
        for attempt, k in enumerate(self._candidates(j, lst, first)):
            if attempt >= self.max_tries:
                break
            entry = entries[k]
            error = self._bad.get(entry.path)
            if error is None:
                rng = np.random.default_rng([self.seed, 3, i, attempt])
                try:
                    frames, padded = load_clip(entry.path, self.spec, clip, rng, self.timeout)
                except VideoError as err:
                    error = err
                    self._bad[entry.path] = err
                    warnings.warn(f"skipping {err}", VideoSkipWarning, stacklevel=2)
                else:
                    self.stats["decoded"] += 1
                    return {"clip": frames, "label": np.int32(entry.label), "skipped": np.int32(skipped),
                            "padded": np.int32(padded)}
            skipped += 1
            self.stats["skipped"] += 1
            self.stats[error.reason] += 1
            last_error = error
        tried = attempt + 1 if attempt < self.max_tries else self.max_tries
        if tried >= len(entries):
            raise NoReadableVideoError(
                f"none of the {len(entries)} videos in list {self.list_names[lst]!r} is readable "
                f"(last: {last_error})"
            )
        raise NoReadableVideoError(
            f"{tried} videos in a row from list {self.list_names[lst]!r} are unreadable (last: {last_error}); "
            "check the list or raise max_tries"
        )

    def check(self) -> dict[str, list[str]]:
        """Probe every entry (open, count frames, decode the first clip span): paths by reason.

        Costs a decode per video: for small lists, tests and a pre-flight check of a new list.
        """
        report: dict[str, list[str]] = {reason: [] for reason in REASONS}
        spec = ClipSpec(frames=self.spec.frames, frame_step=self.spec.frame_step, clips_per_video=1,
                        crop_size=self.spec.crop_size, random_start=False, flip=False, pad_short=self.spec.pad_short)
        for entries in self.lists:
            for entry in entries:
                try:
                    n = probe_frames(entry.path, self.timeout)
                    if n < spec.span and not self.spec.pad_short:
                        raise VideoError(entry.path, "too_short", f"{n} frames < clip span {spec.span}")
                    decode_frames(entry.path, clip_indices(n, spec, 0, np.random.default_rng(0)), self.timeout)
                except VideoError as err:
                    report[err.reason].append(entry.path)
        return report


class Normalize(grain.transforms.Map):
    """``{"clip": uint8, ...}`` -> ``{"video": float32 (x/255 − mean)/std, "label", "skipped"}``."""

    def map(self, element: dict[str, Any]) -> dict[str, Any]:
        video = (element["clip"].astype(np.float32) / 255.0 - MEAN) / STD
        out = {k: v for k, v in element.items() if k != "clip"}
        out["video"] = video
        return out


def video_dataset(
    lists,
    spec: ClipSpec = ClipSpec(),
    *,
    weights: Sequence[float] | None = None,
    seed: int = 0,
    shuffle: bool = True,
    num_epochs: int | None = 1,
    max_tries: int = 100,
) -> grain.MapDataset:
    """``MapDataset`` of normalized clips ``{"video", "label", "skipped"}`` (shuffled per epoch
    from ``seed``; ``num_epochs=None`` repeats forever)."""
    source = VideoSource(lists, spec, weights=weights, seed=seed, max_tries=max_tries)
    ds = grain.MapDataset.source(source)
    if shuffle:
        ds = ds.shuffle(seed=seed)
    if num_epochs != 1:
        ds = ds.repeat(num_epochs)
    return ds.map(Normalize())


def ensure_absl_flags() -> None:
    """Parse absl flags (program name only) if nobody has: grain's worker processes read them."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS(sys.argv[:1])
