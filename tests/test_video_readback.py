"""The videos say what they contain (frame counts, per-frame timing, holds,
ping-pong) in every format, as read back; and the defects it found (a webp longer than Pillow
can time, a webp shown inline faster than a browser plays one, a hold fed to Pillow frame by frame)."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import latentlab as ll
from latentlab import video
from latentlab.errors import ArgumentError
from latentlab.video import sequence, write_video


def _has_ffmpeg() -> bool:
    try:
        video.check_video_writer("mp4")
    except ArgumentError:
        return False
    return True


def _pictures_and_delays(path) -> tuple[list[np.ndarray], list[int]]:
    with Image.open(path) as im:
        pictures, delays = [], []
        for k in range(getattr(im, "n_frames", 1)):
            im.seek(k)
            im.load()  # (webp fills in its frame's duration on load)
            pictures.append(np.asarray(im.convert("RGB")))
            delays.append(im.info.get("duration"))
    return pictures, delays


# -- defects -----------------------------------------------------------------------------------------


def test_a_webp_longer_than_pillow_can_time_is_refused_before_anything_is_written(tmp_path):
    """Pillow's webp writer passes each frame's start in ms as a C int: 21476 frames at 0.01 fps (holds
    within a spec's limits) raised a raw OverflowError after encoding them all. Now an ArgumentError
    naming the limit and the fix, before any file is made."""
    f = np.zeros((2, 1, 1, 3), np.uint8)
    f[1] = 255
    with pytest.raises(ArgumentError, match=r"a webp runs at most 2147483647 ms \(24\.8 days\) in all, and these 21476 frames .* Fix: raise fps"):
        write_video(f, tmp_path / "long.webp", fps=0.01, hold_last=21474)
    assert list(tmp_path.iterdir()) == []


def test_show_video_never_embeds_a_webp_that_a_browser_plays_slower(monkeypatch):
    """Browsers play an animated-image frame of 10 ms or less for 100 ms (Chromium, Firefox, WebKit), a
    webp's as a gif's: show_video's default for small frames above 50 fps was a lossless webp at any fps
    (120 fps: 8 and 9 ms frames, played at 10 fps). Above 1000 / 11 fps it is an mp4 now, and a webp
    asked for there is refused, as a gif asked for above 50 fps is."""
    f = np.zeros((3, 4, 4, 3), np.uint8)
    f[1], f[2] = 120, 255
    with pytest.raises(ArgumentError, match=r"fps=120 is too fast for a webp shown in a browser.*format='mp4'"):
        ll.show_video(f, fps=120, format="webp")
    v = ll.show_video(f, fps=90)  # 11 or 12 ms a frame: still a webp
    assert v.mimetype == "image/webp"
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "v.webp"
        p.write_bytes(v.data)
        assert min(_pictures_and_delays(p)[1]) >= 11
    if _has_ffmpeg():
        assert ll.show_video(f, fps=120).mimetype == "video/mp4"


@pytest.mark.parametrize("fmt", ["webp", "gif"])
def test_a_hold_is_one_picture_for_the_writer_and_the_bar_still_counts_its_frames(tmp_path, monkeypatch,
                                                                                  recording_bars, fmt):  # fmt: skip
    """Each repeat of a held frame was a picture of its own: Pillow's webp writer takes them all at once (a
    copy each: hold_last=100000, a spec's limit, of 512 px frames took 78 GB), and its gif writer made each
    one 256 colours again before merging it into the run (a 2 s hold of 256 px frames took seconds). A run
    of the same frame is one picture now, of the run's delay; the video bar still counts every frame fed,
    and the file is the one written before (its bytes)."""
    made = []
    fromarray = Image.fromarray

    def counting(*args, **kwargs):
        made.append(1)
        return fromarray(*args, **kwargs)

    f = np.zeros((3, 3, 3, 3), np.uint8)
    f[1], f[2] = 200, 200  # frames 1 and 2 equal: one run too
    kw = dict(fps=10, hold_first=3, hold_last=40, pingpong=True)
    before = write_video(f, tmp_path / f"a.{fmt}", **kw).read_bytes()
    monkeypatch.setattr(Image, "fromarray", counting)
    recording_bars.clear()
    out = write_video(f, tmp_path / f"b.{fmt}", progress=True, **kw)
    assert [(b.desc, b.n) for b in recording_bars] == [("video", 3 + 3 + 40 + 1)]
    assert out.read_bytes() == before
    # (shown: 0 0 0 0 1 2 ... 2 1) a gif's runs of equal frames: 0..., 1 2... 1; a webp's frames, each once: 0, 1, 2
    # (its ping-pong's way back shares the picture of the way there too)
    assert len(made) == (2 if fmt == "gif" else 3)
    pictures, delays = _pictures_and_delays(out)
    assert [int(p[0, 0, 0]) for p in pictures] == [0, 200] and delays == [400, 4300]


# -- properties kept (they pass on the old code too) ---------------------------------------------------

_PALETTE = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)


@settings(derandomize=True, max_examples=15, deadline=None)
@given(colours=st.lists(st.integers(0, 4), min_size=1, max_size=6), hold_first=st.integers(0, 3),
       hold_last=st.integers(0, 3), pingpong=st.booleans(), fmt=st.sampled_from(["gif", "webp"]),
       fps=st.sampled_from([12, 30, 50, 49.9, 7.3, 1 / 3, 23.976]) | st.floats(0.5, 50))  # fmt: skip
def test_every_picture_of_a_gif_or_webp_ends_when_its_frames_do(colours, hold_first, hold_last, pingpong, fmt, fps):
    """Each picture read back (a run of equal frames of sequence(), merged) ends within half a delay unit
    (10 ms gif, 1 ms webp) of the time its last frame ends at ``fps``: no drift at 12 fps (8.33 cs) or
    30 fps, holds and ping-pong included; and no gif delay is under the 2 cs browsers play as written."""
    f = _PALETTE[np.array(colours)][:, None, None, :].repeat(2, 1).repeat(3, 2)
    kw = {"quality": 100} if fmt == "webp" else {}
    with tempfile.TemporaryDirectory() as tmp:
        out = write_video(f, Path(tmp) / f"v.{fmt}", fps=fps, hold_first=hold_first, hold_last=hold_last,
                          pingpong=pingpong, **kw)  # fmt: skip
        pictures, delays = _pictures_and_delays(out)
    shown = sequence(f, hold_first=hold_first, hold_last=hold_last, pingpong=pingpong)
    starts = [0] + [i for i in range(1, len(shown)) if not np.array_equal(shown[i], shown[i - 1])]
    assert len(pictures) == len(starts)
    assert all(np.array_equal(p, shown[s]) for p, s in zip(pictures, starts))
    if len(pictures) == 1:  # (one picture of a webp is a still image: no delay to read)
        return
    ends = np.array(starts[1:] + [len(shown)]) * 1000 / fps
    assert np.abs(np.cumsum(delays) - ends).max() <= (5 if fmt == "gif" else 0.5) + 1e-9
    if fmt == "gif":
        assert min(delays) >= 20


@settings(derandomize=True, max_examples=4, deadline=None)
@given(fps=st.sampled_from([1 / 3, 12, 23.976, 240]) | st.floats(0.01, 1000), n=st.integers(1, 3),
       hold_last=st.integers(0, 2), pingpong=st.booleans())  # fmt: skip
def test_every_frame_of_an_mp4_starts_at_its_time(fps, n, hold_last, pingpong):
    """An mp4 holds every frame sequence() shows, frame k presented at k / fps (a fractional fps kept,
    not rounded to ffmpeg's two decimals), as ffmpeg's showinfo reads the timestamps back."""
    if not _has_ffmpeg():
        pytest.skip("no ffmpeg here")
    f = np.random.default_rng(0).integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        out = write_video(f, Path(tmp) / "v.mp4", fps=fps, hold_last=hold_last, pingpong=pingpong)
        log = subprocess.run([video._ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(out), "-vf", "showinfo",
                              "-f", "null", "-"], capture_output=True, text=True).stderr  # fmt: skip
    pts = np.array([float(x) for x in re.findall(r"pts_time:([0-9.e+-]+)", log)])
    count = len(sequence(f, hold_last=hold_last, pingpong=pingpong))
    assert len(pts) == count
    assert np.abs(pts - np.arange(count) / fps).max() <= 1e-3 / fps + 1e-6


@pytest.mark.parametrize("size, native", [(16384, 8), (None, 16384)])
def test_a_webp_wider_than_libwebp_takes_is_refused_before_any_frame_is_made(tmp_path, monkeypatch, size, native):
    """libwebp takes at most 16383 pixels a side: write_video(size=16384, format="webp") resized
    every frame to 800 MB and then failed in Pillow with a raw RuntimeError; now refused first,
    naming the limit and the fix, before a frame is resized or a file is made."""
    from latentlab import video as video_mod

    def no_resize(*a, **k):
        raise AssertionError("a frame was resized before the refusal")

    monkeypatch.setattr(video_mod, "_lanczos", no_resize)
    frames = np.zeros((1, native, 8, 3), np.uint8)  # (a tall thin frame: a side of 16384 without 800 MB)
    with pytest.raises(ll.ArgumentError, match="16383 pixels per side") as exc:
        ll.write_video(frames, tmp_path / "v.webp", fps=12, size=size)
    assert "mp4" in str(exc.value)
    assert list(tmp_path.iterdir()) == []
