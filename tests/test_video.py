"""Video-file data: list format, clip sampling, crops, the skip policy for missing / corrupt /
truncated / too short videos, weighted lists, determinism, grain worker processes.

The tests write their own small mp4 files with ``av``.
"""

from __future__ import annotations

import dataclasses
import warnings

import av
import numpy as np
import pytest

from dualjax.vjepa import video as V
from dualjax.vjepa import videolist

H, W, FRAMES = 48, 64, 24
SPEC = V.ClipSpec(frames=4, frame_step=2, crop_size=32, scale=(0.5, 1.0), pad_short=False)  # the skip policy


def frame_pixels(t: int, label: int) -> np.ndarray:
    """Frame t of a test video: gray 6·t (time) + a left-to-right ramp 0…100 (flip) + 5·label.

    Gray, so that the YUV 4:2:0 round trip of the codec keeps it."""
    level = 6 * t + np.linspace(0, 100, W)[None, :] + 5 * label
    return np.repeat(np.broadcast_to(level, (H, W))[..., None], 3, axis=2).round().astype(np.uint8)


def write_mp4(path, label: int, frames: int = FRAMES, faststart: bool = False) -> None:
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as c:
        s = c.add_stream("mpeg4", rate=25, options={"qscale": "2"})
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        for t in range(frames):
            for packet in s.encode(av.VideoFrame.from_ndarray(frame_pixels(t, label), format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Four good videos (labels 0-3) and one of each failure: corrupt, truncated, too short, missing."""
    d = tmp_path_factory.mktemp("videos")
    good = []
    for label in range(4):
        write_mp4(d / f"good {label}.mp4", label)  # a space in the path: the label is the last field
        good.append((f"good {label}.mp4", label))
    (d / "corrupt.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    write_mp4(d / "full.mp4", 1, faststart=True)
    data = (d / "full.mp4").read_bytes()
    mdat = data.find(b"mdat")  # faststart: the index (moov) precedes the frames (mdat)
    (d / "truncated.mp4").write_bytes(data[: mdat + (len(data) - mdat) // 4])  # index intact, frames cut
    write_mp4(d / "short.mp4", 2, frames=3)
    bad = [("corrupt.mp4", 5), ("truncated.mp4", 5), ("short.mp4", 5), ("missing.mp4", 5)]
    videolist.write_list(d / "all.txt", [good[0], bad[0], good[1], bad[1], good[2], bad[2], good[3], bad[3]])
    videolist.write_list(d / "bad.txt", [bad[0], bad[1], bad[3]])
    videolist.write_list(d / "a.txt", good[:2])
    videolist.write_list(d / "b.txt", good[2:])
    return d


def test_list_format(tmp_path, videos):
    lst = tmp_path / "l.txt"
    lst.write_text(f"# comment\n\n{videos}/good 0.mp4 3\nrel/clip.mp4   7\n")
    entries = videolist.read_list(lst)
    assert entries == [videolist.VideoEntry(f"{videos}/good 0.mp4", 3),
                       videolist.VideoEntry(str(tmp_path / "rel/clip.mp4"), 7)]
    lst.write_text("a.mp4 1\nb.mp4 one\n")
    with pytest.raises(ValueError, match=r"l\.txt:2: label must be an integer, got 'one'"):
        videolist.read_list(lst)
    lst.write_text("lonely\n")
    with pytest.raises(ValueError, match=r"l\.txt:1: expected 'path label', got 'lonely'"):
        videolist.read_list(lst)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        videolist.read_list(tmp_path / "nope.txt")
    with pytest.raises(ValueError, match="weights must be 1"):
        V.VideoSource(videos / "a.txt", SPEC, weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="frame_step must be a positive integer, got 0"):
        V.ClipSpec(frame_step=0)


def test_clip_indices_follow_the_reference_segments():
    spec = V.ClipSpec(frames=4, frame_step=3, clips_per_video=2, random_start=False)  # span 10
    assert V.clip_indices(40, spec, 0, None).tolist() == [5, 8, 11, 14]  # centred in [0, 20)
    assert V.clip_indices(40, spec, 1, None).tolist() == [25, 28, 31, 34]  # centred in [20, 40)
    rng = np.random.default_rng(0)
    starts = {int(V.clip_indices(40, V.ClipSpec(frames=4, frame_step=3, clips_per_video=2), 1, rng)[0])
              for _ in range(200)}
    assert starts == set(range(20, 31))  # uniform over the segment's room
    assert V.clip_indices(12, spec, 1, None).tolist() == [2, 5, 8, 11]  # overlapping segments
    with pytest.raises(ValueError, match="9 frames < clip span 10"):
        V.clip_indices(9, dataclasses.replace(spec, pad_short=False), 0, None)


def test_short_videos_are_padded_with_their_last_frame(tmp_path):
    """A 20-frame video, clips of 16 frames 4 apart (span 61): the reference's VideoDataset takes
    linspace(0, 20, ⌊20/4⌋ = 5) = 0, 5, 10, 15, 20 (the last clipped to 19) and repeats frame 19."""
    write_mp4(tmp_path / "twenty.mp4", 1, frames=20)
    videolist.write_list(tmp_path / "l.txt", [("twenty.mp4", 1)])
    spec = V.ClipSpec(frames=16, frame_step=4, crop_size=32, scale=(1.0, 1.0), ratio=(W / H, W / H), flip=False)
    want = [0, 5, 10, 15] + [19] * 12
    assert V.clip_indices(20, spec, 0, np.random.default_rng(0)).tolist() == want
    element = V.VideoSource(tmp_path / "l.txt", spec)[0]
    assert element["padded"] == 1 and element["skipped"] == 0 and element["label"] == 1
    # the whole frame: mean level 6·t + 50 (ramp) + 5·label at the frames above
    np.testing.assert_allclose(element["clip"].astype(float).mean(axis=(1, 2, 3)), 6 * np.array(want) + 55, atol=3)
    skip = V.VideoSource(tmp_path / "l.txt", dataclasses.replace(spec, pad_short=False))
    assert skip.check()["too_short"] == [str(tmp_path / "twenty.mp4")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", V.VideoSkipWarning)
        with pytest.raises(V.NoReadableVideoError, match="none of the 1 videos"):
            skip[0]
    full = V.VideoSource(tmp_path / "l.txt", dataclasses.replace(spec, frames=4))[0]  # span 13 <= 20
    assert full["padded"] == 0


def test_bad_videos_are_skipped_with_a_warning_and_counted(videos):
    src = V.VideoSource(videos / "all.txt", SPEC, seed=3)
    assert len(src) == 8
    clips, skipped = [], []
    for i in range(8):
        bad = i % 2 == 1
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            element = src[i]
        messages = [str(w.message) for w in caught if issubclass(w.category, V.VideoSkipWarning)]
        assert bool(messages) == bad, messages
        _, entry = src.entry(i)
        if bad:
            assert entry.path in messages[0] and element["skipped"] >= 1
            assert element["label"] in range(4)  # a good video of the same list took its place
        else:
            assert element["skipped"] == 0 and element["label"] == entry.label
        clip = element["clip"]
        assert clip.dtype == np.uint8 and clip.shape == (4, 32, 32, 3)
        clips.append(clip)
        skipped.append(int(element["skipped"]))
    assert src.stats["skipped"] == sum(skipped) and src.stats["decoded"] == 8
    for reason in ("missing", "corrupt", "truncated", "too_short"):  # not_a_file, timeout: test_video_file_guards
        assert src.stats[reason] >= 1, (reason, src.stats)
    assert src.check() == {
        "missing": [str(videos / "missing.mp4")], "not_a_file": [],
        "corrupt": [str(videos / "corrupt.mp4")],
        "truncated": [str(videos / "truncated.mp4")],
        "too_short": [str(videos / "short.mp4")], "timeout": [],
    }
    # real frames, sampled frame_step = 2 apart: the gray level rises by 6·2 per clip frame
    orientations = set()
    for clip in clips:
        level = clip.astype(float).mean(axis=(1, 2, 3))
        np.testing.assert_allclose(np.diff(level), 12, atol=2)
        ramp = clip[0, :, :, 1].astype(float).mean(axis=0)
        orientations.add(bool(ramp[-1] > ramp[0]))
        assert abs(ramp[-1] - ramp[0]) > 25  # a crop of ≥ half the area keeps ≥ ~40 % of the ramp
    assert orientations == {True, False}  # random horizontal flips happen


def test_video_file_guards_fifo_timeout_and_confinement(tmp_path, videos):
    """A FIFO (whose open would block forever), a folder and a device are skipped without being
    opened; a decode slower than ``timeout`` is skipped as 'timeout'; ``confine`` refuses
    entries outside the list's folder and accepts those below it."""
    import os
    import signal

    os.mkfifo(tmp_path / "fifo.mp4")
    (tmp_path / "dir.mp4").mkdir()
    os.symlink(videos / "good 0.mp4", tmp_path / "good.mp4")
    videolist.write_list(tmp_path / "l.txt", [("fifo.mp4", 0), ("dir.mp4", 1), ("/dev/zero", 2), ("good.mp4", 3)])
    src = V.VideoSource(tmp_path / "l.txt", SPEC, seed=0)
    def hung(*_):
        raise TimeoutError("opening a FIFO blocked")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)  # a regression (opening the FIFO) would hang: fail instead
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", V.VideoSkipWarning)
            report = src.check()
            assert report["not_a_file"] == [str(tmp_path / n) for n in ("fifo.mp4", "dir.mp4")] + ["/dev/zero"]
            for i in range(4):
                element = src[i]  # each bad entry falls back to the one good video
                assert element["label"] == 3 and element["clip"].shape == (4, 32, 32, 3)
            assert src.stats["not_a_file"] >= 3
            with pytest.raises(V.VideoError, match="timeout video .*good 0.mp4: .*0.0001 s"):
                V.load_clip(str(videos / "good 0.mp4"), SPEC, 0, np.random.default_rng(0), timeout=1e-4)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    # confinement: off by default (the reference's absolute paths); on, only paths below the list's folder
    lst = tmp_path / "c.txt"
    for line in ("/abs/a.mp4 0", "../up.mp4 0", "sub/../../up.mp4 1"):
        lst.write_text(f"sub/x.mp4 3\n{line}\n")
        assert len(videolist.read_list(lst)) == 2
        with pytest.raises(ValueError, match=r"c\.txt:2: .* is outside the list's folder"):
            videolist.read_list(lst, confine=True)
    os.symlink("/etc", tmp_path / "escape")
    lst.write_text("escape/passwd 0\n")
    with pytest.raises(ValueError, match="outside the list's folder"):
        videolist.read_list(lst, confine=True)
    lst.write_text("sub/x.mp4 0\ngood.mp4 1\n")  # the symlink good.mp4 -> videos/ leads out too
    with pytest.raises(ValueError, match=r"c\.txt:2: 'good.mp4'"):
        videolist.read_list(lst, confine=True)
    lst.write_text("sub/x.mp4 0\n./y.mp4 1\n")
    assert [e.label for e in videolist.read_list(lst, confine=True)] == [0, 1]


def test_a_list_with_no_readable_video_fails_clearly(videos):
    src = V.VideoSource(videos / "bad.txt", SPEC)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", V.VideoSkipWarning)
        with pytest.raises(V.NoReadableVideoError, match=r"none of the 3 videos in list '.*bad\.txt' is readable"):
            src[0]
        src_limited = V.VideoSource([videos / "a.txt", videos / "bad.txt"], SPEC, weights=[0.0, 1.0], max_tries=2)
        with pytest.raises(V.NoReadableVideoError, match=r"2 videos in a row from list '.*bad\.txt'"):
            src_limited[0]


def test_weighted_lists_determinism_and_clips_per_video(videos):
    src = V.VideoSource([videos / "a.txt", videos / "b.txt"], SPEC, weights=[3, 1], length=4000, seed=1)
    picks = np.array([src.entry(i)[0] for i in range(4000)])
    assert abs((picks == 0).mean() - 0.75) < 0.03
    again = V.VideoSource([videos / "a.txt", videos / "b.txt"], SPEC, weights=[3, 1], length=4000, seed=1)
    other = V.VideoSource([videos / "a.txt", videos / "b.txt"], SPEC, weights=[3, 1], length=4000, seed=2)
    for i in (0, 7):
        a, b = src[i], again[i]
        assert np.array_equal(a["clip"], b["clip"]) and a["label"] == b["label"]
    assert any(not np.array_equal(src[i]["clip"], other[i]["clip"]) for i in (0, 7))
    # two clips per video: consecutive elements of one video, from its two halves
    two = V.VideoSource(videos / "a.txt", V.ClipSpec(frames=4, frame_step=2, clips_per_video=2, crop_size=16,
                                                       scale=(1.0, 1.0), ratio=(W / H, W / H),
                                                       random_start=False, flip=False))
    assert len(two) == 4 and two.entry(0) == two.entry(1) != two.entry(2)
    # the whole frame, no flip: mean level = 6·t + 50 (ramp) + 5·label
    level = [two[i]["clip"].astype(float).mean(axis=(1, 2, 3)) for i in (0, 1)]
    np.testing.assert_allclose(level[0], 6 * np.array([2, 4, 6, 8]) + 50, atol=3)  # segment [0, 12)
    np.testing.assert_allclose(level[1], 6 * np.array([14, 16, 18, 20]) + 50, atol=3)  # segment [12, 24)


def test_grain_pipeline_with_worker_processes(videos):
    import grain

    V.ensure_absl_flags()
    ds = V.video_dataset(videos / "all.txt", SPEC, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", V.VideoSkipWarning)
        local = list(ds.to_iter_dataset())
        it = ds.to_iter_dataset().mp_prefetch(grain.MultiprocessingOptions(num_workers=2))
        try:
            remote = list(it)
        finally:
            getattr(it, "close", lambda: None)()
    assert len(local) == len(remote) == 8
    for a, b in zip(local, remote):
        assert a["label"] == b["label"] and a["skipped"] == b["skipped"]
        np.testing.assert_array_equal(a["video"], b["video"])
        assert a["video"].dtype == np.float32 and a["video"].shape == (4, 32, 32, 3)
    # the skip count crosses the process boundary: the four bad entries were each passed over
    assert sum(int(e["skipped"]) for e in remote) >= 4
    x = local[0]["video"]
    assert -2.2 < x.min() and x.max() < 2.7 and abs(float(x.std()) - 1) < 0.8  # ImageNet-normalized
