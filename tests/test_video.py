"""Tests for latentlab.video: frame ordering, encoders' round trips, contact sheets, atomic writes."""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from latentlab import video
from latentlab.errors import ArgumentError, LatentlabError
from latentlab.video import (
    contact_sheet,
    load_image,
    read_video,
    save_frames,
    save_image,
    sequence,
    write_video,
)

import latentlab as ll
from latentlab import notebook

from conftest import animated_frames, ramp_frames


# ------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------
def numbered(n: int, h: int = 2, w: int = 3) -> np.ndarray:
    """n frames whose every pixel holds the frame's index (so order is readable)."""
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, h, w, 3)).copy()


def smooth(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth moving colour gradient, easy on lossy codecs."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    t = np.arange(n)[:, None, None, None]
    y = np.arange(h)[None, :, None, None] / h
    x = np.arange(w)[None, None, :, None] / w
    c = np.arange(3)[None, None, None, :]
    v = 0.5 + 0.4 * np.sin(2 * np.pi * (x + 0.5 * y) + 0.4 * t + phase[c] + c)
    return np.rint(v * 255).astype(np.uint8)


def flat_colours(n: int, h: int, w: int) -> np.ndarray:
    """n frames, each one flat distinct colour (lossless through a GIF palette)."""
    cols = np.array([[(37 * k) % 256, (91 * k + 40) % 256, (150 - 13 * k) % 256] for k in range(n)],
                    np.uint8)
    return np.broadcast_to(cols[:, None, None, :], (n, h, w, 3)).copy()


def leftovers(d) -> list[str]:
    return sorted(p.name for p in d.iterdir() if ".tmp" in p.name)


# ------------------------------------------------------------------------------------
# sequence: holds and pingpong
# ------------------------------------------------------------------------------------
def order(frames: np.ndarray) -> list[int]:
    return frames[:, 0, 0, 0].tolist()


@pytest.mark.parametrize(
    "n, kw, expected",
    [
        (5, {}, [0, 1, 2, 3, 4]),
        (5, {"pingpong": True}, [0, 1, 2, 3, 4, 3, 2, 1]),
        (5, {"hold_first": 2}, [0, 0, 0, 1, 2, 3, 4]),
        (5, {"hold_last": 3}, [0, 1, 2, 3, 4, 4, 4, 4]),
        (4, {"hold_first": 1, "hold_last": 2, "pingpong": True}, [0, 0, 1, 2, 3, 3, 3, 2, 1]),
        (2, {"pingpong": True}, [0, 1]),
        (2, {"pingpong": True, "hold_last": 1}, [0, 1, 1]),
        (1, {"pingpong": True, "hold_first": 1, "hold_last": 2}, [0, 0, 0, 0]),
        (3, {"pingpong": True}, [0, 1, 2, 1]),
    ],
)
def test_sequence_order(n, kw, expected):
    assert order(sequence(numbered(n), **kw)) == expected


@pytest.mark.parametrize("n", [1, 2, 3, 7])
@pytest.mark.parametrize("hf, hl", [(0, 0), (1, 0), (0, 4), (3, 2)])
@pytest.mark.parametrize("pingpong", [False, True])
def test_sequence_length_formula(n, hf, hl, pingpong):
    out = sequence(numbered(n), hold_first=hf, hold_last=hl, pingpong=pingpong)
    assert len(out) == n + hf + hl + (max(n - 2, 0) if pingpong else 0)
    assert out.dtype == np.uint8 and out.shape[1:] == (2, 3, 3)


def test_sequence_pixels_are_the_frames():
    f = smooth(4, 5, 6)
    out = sequence(f, pingpong=True)
    np.testing.assert_array_equal(out, f[[0, 1, 2, 3, 2, 1]])


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_sequence_rejects_bad_holds(bad):
    with pytest.raises(ArgumentError, match="hold_first"):
        sequence(numbered(3), hold_first=bad)


# ------------------------------------------------------------------------------------
# input conversion and validation
# ------------------------------------------------------------------------------------
def test_float_frames_are_converted():
    f = np.array([0.0, 0.5, 1.0, 0.2], np.float32)[None, None, :, None].repeat(3, -1)
    out = sequence(f)
    assert out.dtype == np.uint8
    assert out[0, 0, :, 0].tolist() == [0, 128, 255, 51]


def test_float64_and_int_and_list_inputs_agree():
    u8 = smooth(3, 4, 5)
    np.testing.assert_array_equal(sequence(u8.astype(np.float64) / 255), u8)
    np.testing.assert_array_equal(sequence(u8.astype(np.int64)), u8)
    np.testing.assert_array_equal(sequence(list(u8)), u8)


def test_torch_tensor_input():
    torch = pytest.importorskip("torch")
    u8 = smooth(2, 4, 4)
    np.testing.assert_array_equal(sequence(torch.from_numpy(u8)), u8)
    np.testing.assert_array_equal(sequence(torch.from_numpy(u8).float() / 255), u8)


@pytest.mark.parametrize(
    "frames, match",
    [
        (np.zeros((4, 4, 3), np.uint8), r"\(4, 4, 3\).*frames\[None\]"),  # one image, no T axis
        (np.zeros((2, 4, 4), np.uint8), r"\(2, 4, 4\)"),
        (np.zeros((1, 2, 4, 4, 3), np.uint8), r"\(1, 2, 4, 4, 3\)"),
        (np.zeros((2, 4, 4, 4), np.uint8), r"composite the alpha channel on a background"),
        (np.zeros((2, 4, 4, 1), np.uint8), r"\(2, 4, 4, 1\)"),
        (np.zeros((2, 3, 8, 8), np.uint8), r"channels-first"),
        (np.zeros((0, 4, 4, 3), np.uint8), r"no pixels"),
        (np.zeros((2, 4, 4, 3), np.float32) - 1, r"\[0, 1\]"),
        (np.full((2, 4, 4, 3), 200.0), r"astype\(np.uint8\)"),
        (np.linspace(-1, 1, 96).reshape(2, 4, 4, 3), r"\(frames \+ 1\) / 2"),
        (np.full((1, 2, 2, 3), np.nan), r"NaN"),
        (np.full((1, 2, 2, 3), 300, np.int32), r"\[300, 300\]"),
        (np.zeros((1, 2, 2, 3), bool), r"dtype bool"),
        ([], r"empty"),
        ([np.zeros((4, 4, 3)), np.zeros((4, 5, 3))], r"frames\[1\].*\(4, 5, 3\)"),
        ([np.zeros((4, 4, 3)), np.zeros((4, 4))], r"frames\[1\]"),
        ("clip.mp4", r"path"),
    ],
)
def test_bad_frames_raise_argument_error(frames, match):
    with pytest.raises(ArgumentError, match=match):
        sequence(frames)


def test_bad_frames_rejected_by_write_video_before_touching_disk(tmp_path):
    with pytest.raises(ArgumentError, match="dtype"):
        write_video(np.zeros((2, 4, 4, 3), np.complex64), tmp_path / "sub" / "a.gif")
    assert not (tmp_path / "sub").exists()


# ------------------------------------------------------------------------------------
# write_video: argument errors
# ------------------------------------------------------------------------------------
def test_unknown_format_names_it_and_lists_supported(tmp_path):
    with pytest.raises(ArgumentError, match=r"'avi'.*mp4, gif, webp"):
        write_video(numbered(2), tmp_path / "a.mp4", format="avi")
    with pytest.raises(ArgumentError, match=r"'\.avi'.*mp4, gif, webp"):
        write_video(numbered(2), tmp_path / "a.avi")
    with pytest.raises(ArgumentError, match=r"no suffix"):
        write_video(numbered(2), tmp_path / "noext")
    assert list(tmp_path.iterdir()) == []


def test_path_under_a_regular_file_is_rejected(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    target = blocker / "out" / "clip.gif"
    with pytest.raises(ArgumentError, match=r"file\.txt.*Fix"):
        write_video(numbered(2), target)
    with pytest.raises(ArgumentError, match=r"file\.txt"):
        save_image(numbered(1)[0], blocker / "a.png")
    assert blocker.read_text() == "x"


def test_path_that_is_a_directory_is_rejected(tmp_path):
    d = tmp_path / "clip.mp4"
    d.mkdir()
    with pytest.raises(ArgumentError, match=r"is a directory"):
        write_video(numbered(2), d)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root ignores directory permissions")
def test_read_only_directory_is_rejected(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    try:
        with pytest.raises(ArgumentError, match=r"cannot write.*permissions"):
            write_video(numbered(2), d / "a.gif")
    finally:
        d.chmod(0o700)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"fps": 0}, "fps"),
        ({"fps": -3}, "fps"),
        ({"fps": float("nan")}, "fps"),
        ({"fps": "24"}, None),  # a numeric string is fine
        ({"quality": 101}, "quality"),
        ({"quality": -1}, "quality"),
        ({"loop": -1}, "loop"),
        ({"hold_last": -2}, "hold_last"),
        ({"fps": 60}, "too fast for gif"),
        ({"fps": "60"}, "fps=60 is too fast for gif"),  # a numeric string, as fps="24" is taken
        ({"fps": "fast"}, "expected a positive number"),
        # below 0.01 fps ffmpeg left a broken mp4 and Pillow raised a bare error for webp
        ({"fps": 0.001}, r"below 0.01 .* Fix: use fps >= 0.01"),
        ({"fps": 2000, "path": "a.webp"}, "too fast for webp"),  # played at 1000 fps, slower than asked
        ({"fps": 2000, "path": "a.mp4"}, None),
        ({"loop": -1}, r"whole number of plays \(0: forever\)"),
        ({"pingpong": "no"}, "pingpong='no'; expected True or False"),  # was taken as True
        ({"format": "mp4"}, r"ends in \.gif.* Fix: drop format=, or end the path with \.mp4"),  # mp4 bytes in a .gif
    ],
)
def test_write_video_checks_options(tmp_path, kw, match):
    path = tmp_path / kw.pop("path", "a.gif")
    if match is None:
        assert write_video(numbered(2, 4, 4), path, **kw).exists()
        return
    with pytest.raises(ArgumentError, match=match):
        write_video(numbered(2, 4, 4), path, **kw)
    assert list(tmp_path.iterdir()) == []


def test_mp4_that_ffmpeg_fails_to_write_raises_and_keeps_the_old_file(tmp_path):
    # imageio-ffmpeg ignores ffmpeg's exit status: a failed write (a full disk, a size libx264
    # refuses) was renamed over the old video as a broken file, and write_video returned
    target = tmp_path / "v.mp4"
    write_video(smooth(2, 8, 8), target, fps=4)
    old = target.read_bytes()
    with pytest.raises(LatentlabError, match=r"ffmpeg failed \(exit status .*16386x2.*ffmpeg said: .+"):
        write_video(np.zeros((1, 2, 16386, 3), np.uint8), target, fps=4)  # wider than libx264 takes
    assert target.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]


def test_a_directory_path_is_named_as_one_before_its_missing_suffix(tmp_path):
    with pytest.raises(ArgumentError, match="is a directory"):
        write_video(numbered(2, 4, 4), tmp_path)


@pytest.mark.parametrize("holds, refused", [({"hold_last": 6}, True), ({"hold_first": 6}, True), ({"hold_first": 5}, False)])
def test_check_gif_fps_counts_the_holds(holds, refused):
    # at 0.01 fps a picture shown 7 times lasts 700 s, more than a gif delay holds: refused before a render
    if refused:
        with pytest.raises(ArgumentError, match="at most 655.35 s"):
            video.check_gif_fps(0.01, "gif", **holds)
    else:
        video.check_gif_fps(0.01, "gif", **holds)
    video.check_gif_fps(0.01, "mp4", **holds)  # only gif is limited


@pytest.mark.parametrize("fps, match", [("60", "fps=60 is too fast"), ("fast", "fps='fast'"), (None, "fps=None")])
def test_check_gif_fps_refuses_cleanly(fps, match):
    with pytest.raises(ArgumentError, match=match):
        video.check_gif_fps(fps, "gif")
    video.check_gif_fps(60, "mp4")  # only gif is limited


def test_argument_error_is_a_value_error():
    assert issubclass(ArgumentError, ValueError) and issubclass(ArgumentError, LatentlabError)


# ------------------------------------------------------------------------------------
# round trips
# ------------------------------------------------------------------------------------
def test_mp4_round_trip(tmp_path):
    f = smooth(6, 32, 48)
    kw = dict(hold_first=1, hold_last=2, pingpong=True)
    out = write_video(f, tmp_path / "nested" / "clip.mp4", fps=12, **kw)
    assert out == tmp_path / "nested" / "clip.mp4" and out.is_file()
    with open(out, "rb") as fh:
        assert fh.read(12)[4:8] == b"ftyp"  # an MP4 container
    back = read_video(out)
    expect = sequence(f, **kw)
    assert back.shape == expect.shape == (6 + 1 + 2 + 4, 32, 48, 3)
    diff = np.abs(back.astype(np.int16) - expect.astype(np.int16))
    assert diff.mean() < 10
    # the order survived: each decoded frame is nearest to the frame it should be
    d = np.abs(back[:, None].astype(np.int16) - f[None].astype(np.int16)).mean(axis=(2, 3, 4))
    assert d.argmin(axis=1).tolist() == [0, 0, 1, 2, 3, 4, 5, 5, 5, 4, 3, 2, 1]
    assert leftovers(out.parent) == []


def test_an_mp4_name_with_a_colon_is_a_file_not_an_ffmpeg_protocol(tmp_path, monkeypatch):
    # "render-12:30.mp4" in the current folder: ffmpeg took "render-12" for a protocol, wrote
    # nothing, and the empty temp file replaced the video already there
    f = smooth(3, 16, 16)
    monkeypatch.chdir(tmp_path)
    name = "render-2024-06-01T12:30.mp4"
    write_video(f, tmp_path / name, fps=10)
    good = (tmp_path / name).read_bytes()
    write_video(f, name, fps=10)
    assert (tmp_path / name).read_bytes() == good
    assert read_video(name).shape == (3, 16, 16, 3)
    assert leftovers(tmp_path) == []


def test_mp4_says_its_colour_matrix_and_reads_back_true(tmp_path):
    import subprocess

    import imageio_ffmpeg

    f = flat_colours(3, 32, 48)
    out = write_video(f, tmp_path / "c.mp4", fps=4, quality=100)
    info = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(out)], capture_output=True, text=True).stderr
    assert "bt709" in next(line for line in info.splitlines() if "Video:" in line)
    assert np.abs(read_video(out).astype(int) - f.astype(int)).max() <= 3


def test_an_mpeg_file_is_read_with_ffmpeg(tmp_path):
    import shutil

    f = flat_colours(4, 16, 16)
    mp4 = write_video(f, tmp_path / "a.mp4", fps=8)
    for suffix in (".mpg", ".mpeg"):  # Pillow registers these but cannot decode them
        shutil.copy(mp4, tmp_path / f"a{suffix}")
        assert np.array_equal(read_video(tmp_path / f"a{suffix}"), read_video(mp4))


def test_mp4_quality_changes_fidelity(tmp_path):
    f = smooth(4, 32, 32, seed=1)
    rng = np.random.default_rng(0)
    f = np.clip(f.astype(np.int16) + rng.integers(-20, 21, f.shape), 0, 255).astype(np.uint8)
    err = {}
    for q in (20, 95):
        back = read_video(write_video(f, tmp_path / f"q{q}.mp4", fps=8, quality=q))
        err[q] = np.abs(back.astype(np.int16) - f.astype(np.int16)).mean()
    assert err[95] < err[20]


@pytest.mark.parametrize("h, w", [(31, 33), (17, 20), (1, 1)])
def test_mp4_odd_sizes_are_edge_padded(tmp_path, h, w, recwarn):
    f = smooth(3, h, w)
    back = read_video(write_video(f, tmp_path / "odd.mp4", fps=8))
    H, W = h + h % 2, w + w % 2
    assert back.shape == (3, H, W, 3)
    if h > 2 and w > 2:
        assert np.abs(back[:, :h, :w].astype(np.int16) - f.astype(np.int16)).mean() < 10
        # the added row/column copies the edge (up to codec error)
        if h % 2:
            assert np.abs(back[:, h].astype(np.int16) - back[:, h - 1].astype(np.int16)).mean() < 8
        if w % 2:
            assert np.abs(back[:, :, w].astype(np.int16) - back[:, :, w - 1].astype(np.int16)).mean() < 8
    assert not [w_ for w_ in recwarn if "macro_block_size" in str(w_.message)]


def test_gif_round_trip(tmp_path):
    from PIL import Image

    f = flat_colours(5, 12, 10)
    out = write_video(f, tmp_path / "a.gif", fps=24, pingpong=True)
    back = read_video(out)
    expect = sequence(f, pingpong=True)
    assert back.shape == expect.shape == (8, 12, 10, 3)
    np.testing.assert_array_equal(back, expect)  # flat colours survive the palette exactly
    with Image.open(out) as im:
        assert im.format == "GIF" and im.n_frames == 8
        assert im.info["loop"] == 0  # loops forever by default
        durations = []
        for k in range(im.n_frames):
            im.seek(k)
            durations.append(im.info["duration"])
    assert set(durations) <= {40, 50} and abs(sum(durations) - 8 * 1000 / 24) <= 10


@pytest.mark.parametrize(
    "n, kw",
    [
        (3, {"fps": 24, "hold_last": 16000}),  # 16000 copies of the last frame at 24 fps: 666.7 s
        (3, {"fps": 0.01, "hold_last": 6}),  # 700 s for the last picture
    ],
)
def test_a_gif_picture_longer_than_a_gif_delay_is_refused(tmp_path, n, kw):
    # a gif delay is a 16-bit count of 1/100 s: Pillow raised a bare OverflowError
    with pytest.raises(ArgumentError, match=r"at most 655.35 s, .* Fix: shorten hold_first"):
        write_video(flat_colours(n, 6, 5), tmp_path / "long.gif", **kw)
    assert leftovers(tmp_path) == []
    # within the limit it is written
    out = write_video(flat_colours(2, 6, 5), tmp_path / "ok.gif", fps=0.01, loop=3, pingpong=True, hold_first=1)
    assert read_video(out).shape[0] == 2


@pytest.mark.parametrize("fmt", ["gif", "webp", "mp4"])
def test_a_single_frame_writes_in_every_format(tmp_path, fmt):
    f = flat_colours(1, 16, 16)
    back = read_video(write_video(f, tmp_path / f"one.{fmt}"))
    assert back.shape == (1, 16, 16, 3)


def test_gif_loop_count_and_smooth_content(tmp_path):
    from PIL import Image

    f = smooth(3, 16, 16)
    out = write_video(f, tmp_path / "b.gif", fps=10, loop=3)
    back = read_video(out)
    assert back.shape == (3, 16, 16, 3)
    assert np.abs(back.astype(np.int16) - f.astype(np.int16)).mean() < 10
    with Image.open(out) as im:  # the gif's count is the repeats after the first play: 3 plays in all
        assert im.info["loop"] == 2 and im.info["duration"] == 100
    with Image.open(write_video(f, tmp_path / "once.gif", fps=10, loop=1)) as im:
        assert "loop" not in im.info  # no loop block: it plays once
    with Image.open(write_video(f, tmp_path / "forever.gif", fps=10)) as im:
        assert im.info["loop"] == 0


def test_webp_round_trip(tmp_path):
    from PIL import Image

    f = smooth(4, 16, 24)
    out = write_video(f, tmp_path / "a.webp", fps=20, hold_first=0, pingpong=True)
    back = read_video(out)
    expect = sequence(f, pingpong=True)
    assert back.shape == expect.shape == (6, 16, 24, 3)
    assert np.abs(back.astype(np.int16) - expect.astype(np.int16)).mean() < 10
    with Image.open(out) as im:
        assert im.format == "WEBP" and im.is_animated and im.n_frames == 6
        im.load()
        assert im.info.get("loop") == 0 and im.info.get("duration") == 50


def test_webp_quality_100_is_lossless(tmp_path):
    f = smooth(3, 8, 8, seed=3)
    back = read_video(write_video(f, tmp_path / "l.webp", fps=5, quality=100))
    np.testing.assert_array_equal(back, f)


def test_pil_images_of_any_mode_and_bfloat16_tensors_are_frames(tmp_path):
    from PIL import Image

    torch = pytest.importorskip("torch")
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    images = [palette, Image.new("RGBA", (4, 4), (255, 0, 0, 0)), Image.new("L", (4, 4), 128)]
    got = video._as_frames(images)
    # the palette's colour, transparent red composited on white, grey repeated: not indices or errors
    assert got[:, 0, 0].tolist() == [[200, 30, 30], [255, 255, 255], [128, 128, 128]]
    one = video._as_image(Image.new("LA", (3, 3), (10, 255)))
    assert one.shape == (3, 3, 3) and one[0, 0].tolist() == [10, 10, 10]
    half = torch.full((2, 4, 4, 3), 0.5, dtype=torch.bfloat16)  # a GPU decoder's dtype numpy lacks
    assert video._as_frames(half)[0, 0, 0].tolist() == [128, 128, 128]


def test_a_long_file_name_still_fits_its_temporary_name(tmp_path):
    name = "y" * 240 + ".png"  # 244 bytes: fits the usual 255-byte limit, its temporary name had not
    assert save_image(smooth(1, 4, 4)[0], tmp_path / name).name == name
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_format_argument_overrides_suffix(tmp_path):
    out = write_video(flat_colours(3, 8, 8), tmp_path / "clip.bin", format="GIF", fps=10)
    assert out.read_bytes()[:6] in (b"GIF89a", b"GIF87a")
    out = write_video(smooth(2, 8, 8), tmp_path / "clip.video", format=".mp4", fps=10)
    assert out.read_bytes()[4:8] == b"ftyp"
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------
# atomic writes
# ------------------------------------------------------------------------------------
def test_successful_writes_leave_only_targets(tmp_path):
    write_video(flat_colours(2, 4, 4), tmp_path / "a.gif")
    write_video(smooth(2, 4, 4), tmp_path / "a.webp")
    save_image(smooth(1, 4, 4)[0], tmp_path / "a.png")
    save_frames(smooth(2, 4, 4), tmp_path / "frames")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif", "a.png", "a.webp", "frames"]
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [
        "frame_00000.png", "frame_00001.png"]


@pytest.mark.parametrize("exc", [RuntimeError("encoder died"), KeyboardInterrupt()])
def test_interrupted_write_keeps_old_file_and_no_temp(tmp_path, monkeypatch, exc):
    target = tmp_path / "clip.gif"
    target.write_bytes(b"old")
    seen = {}

    def half_write(frames, idx, tmp, fps, loop):
        seen["tmp"] = tmp
        assert tmp.parent == tmp_path and tmp != target  # written beside, not onto, the target
        tmp.write_bytes(b"partial")
        raise exc

    monkeypatch.setattr(video, "_write_gif", half_write)
    with pytest.raises(type(exc)):
        write_video(numbered(3), target)
    assert target.read_bytes() == b"old"
    assert not seen["tmp"].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.gif"]


def test_overwrite_replaces_existing_file(tmp_path):
    target = tmp_path / "x.gif"
    write_video(flat_colours(2, 4, 4), target)
    write_video(flat_colours(3, 4, 4), target)
    assert len(read_video(target)) == 3
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------
# still images
# ------------------------------------------------------------------------------------
def test_save_and_load_image_round_trip(tmp_path):
    img = smooth(1, 7, 9)[0]
    p = save_image(img, tmp_path / "deep" / "er" / "img.png")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(load_image(p), img)
    # float input and read back through read_video as a 1-frame "video"
    save_image(img.astype(np.float32) / 255, p)
    np.testing.assert_array_equal(load_image(p), img)
    np.testing.assert_array_equal(read_video(p), img[None])


def test_load_image_reads_a_file_as_the_encoders_do(tmp_path):
    from PIL import Image

    rgba = np.zeros((3, 3, 4), np.uint8)
    rgba[..., 0] = 10
    rgba[..., 3] = 255
    Image.fromarray(rgba).save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert out.shape == (3, 3, 3) and out[..., 0].max() == 10
    # transparent pixels come out white, as the encoders see them (not black), and 16-bit
    # grey is scaled, not clipped: the picture inverted is the picture encoded
    rgba[0, 0, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "t.png")
    assert load_image(tmp_path / "t.png")[0, 0].tolist() == [255, 255, 255]
    Image.fromarray(np.full((2, 2), 32896, np.uint16)).save(tmp_path / "g16.png")
    assert load_image(tmp_path / "g16.png")[0, 0].tolist() == [128, 128, 128]
    import latentlab as ll

    enc = ll.create_encoder("tiny")
    for name in ("t.png", "g16.png"):
        assert torch.equal(enc.encode_image(tmp_path / name), enc.encode_image(load_image(tmp_path / name)))


def test_image_errors(tmp_path):
    with pytest.raises(ArgumentError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ArgumentError, match="does not exist"):
        read_video(tmp_path / "missing.mp4")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(ArgumentError, match="cannot read"):
        load_image(tmp_path / "junk.png")
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(ArgumentError, match="cannot read"):
        read_video(tmp_path / "junk.mp4")
    with pytest.raises(ArgumentError, match=r"array\[0\]"):
        save_image(np.zeros((2, 4, 4, 3), np.uint8), tmp_path / "a.png")
    with pytest.raises(ArgumentError, match=r"\(4, 4\)"):
        save_image(np.zeros((4, 4), np.uint8), tmp_path / "a.png")
    with pytest.raises(ArgumentError, match=r"suffix"):
        save_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "a.unknownext")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.mp4", "junk.png"]


def test_save_frames(tmp_path):
    f = smooth(3, 5, 6)
    paths = save_frames(f, tmp_path / "out", start=10)
    assert [p.name for p in paths] == ["frame_00010.png", "frame_00011.png", "frame_00012.png"]
    for p, frame in zip(paths, f):
        np.testing.assert_array_equal(load_image(p), frame)
    paths = save_frames(list(f[:2]), tmp_path / "out2", pattern="{}.png")
    assert [p.name for p in paths] == ["0.png", "1.png"]


@pytest.mark.parametrize("pattern, match", [
    ("frame.png", "same name"),
    ("frame_{name}.png", "cannot be formatted"),
    ("sub/{:03d}.png", "separator"),
    ("{:03d}.nope", "suffix"),
])
def test_save_frames_bad_pattern(tmp_path, pattern, match):
    with pytest.raises(ArgumentError, match=match):
        save_frames(numbered(2), tmp_path / "o", pattern=pattern)
    assert not (tmp_path / "o").exists()


def test_save_frames_directory_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ArgumentError, match="existing file"):
        save_frames(numbered(2), tmp_path / "f")


# ------------------------------------------------------------------------------------
# contact sheet
# ------------------------------------------------------------------------------------
def test_contact_sheet_layout_and_tiles():
    T, H, W, pad = 7, 5, 4, 2
    f = smooth(T, H, W)
    sheet = contact_sheet(f, columns=3, pad=pad, background=(1, 2, 3))
    rows, cols = 3, 3
    assert sheet.shape == (rows * H + (rows + 1) * pad, cols * W + (cols + 1) * pad, 3)
    assert sheet.dtype == np.uint8
    for k in range(T):
        r, c = divmod(k, cols)
        y, x = pad + r * (H + pad), pad + c * (W + pad)
        np.testing.assert_array_equal(sheet[y:y + H, x:x + W], f[k])
    # gaps and the two empty cells are background
    np.testing.assert_array_equal(sheet[:pad], np.broadcast_to([1, 2, 3], (pad, sheet.shape[1], 3)))
    y, x = pad + 2 * (H + pad), pad + 1 * (W + pad)
    assert (sheet[y:y + H, x:] == [1, 2, 3]).all()


def test_contact_sheet_default_columns_and_no_pad():
    f = numbered(10, 3, 3)
    sheet = contact_sheet(f, pad=0)  # ceil(sqrt(10)) = 4 columns, 3 rows
    assert sheet.shape == (9, 12, 3)
    assert sheet[3, 0, 0] == 4 and sheet[3, 3, 0] == 5  # second row: frames 4, 5, ...
    assert contact_sheet(numbered(2, 3, 3), columns=10, pad=0).shape == (3, 6, 3)  # capped at n


@pytest.mark.parametrize("T, k, expected", [
    (10, 4, [0, 3, 6, 9]),
    (9, 3, [0, 4, 8]),
    (100, 2, [0, 99]),
    (5, 1, [0]),
    (3, 8, [0, 1, 2]),
    (7, 7, [0, 1, 2, 3, 4, 5, 6]),
    (7, 6, [0, 1, 2, 4, 5, 6]),
])
def test_contact_sheet_max_frames_picks_evenly(T, k, expected):
    sheet = contact_sheet(numbered(T, 1, 1), columns=1000, max_frames=k, pad=0)
    assert sheet[0, :, 0].tolist() == expected


@pytest.mark.parametrize("T", range(2, 40, 3))
def test_max_frames_distinct_and_includes_ends(T):
    for k in range(2, T + 1):
        idx = video._pick_evenly(T, k)
        assert len(set(idx.tolist())) == k and idx[0] == 0 and idx[-1] == T - 1
        assert (np.diff(idx) > 0).all()


def test_contact_sheet_labels_go_below_tiles():
    f = smooth(4, 20, 30)
    plain = contact_sheet(f, columns=2, pad=3)
    sheet = contact_sheet(f, columns=2, pad=3, labels=["a", "bb", "ccc", "dddd"])
    L = (sheet.shape[0] - plain.shape[0]) // 2  # two rows of label strips
    assert L > 5 and sheet.shape == (plain.shape[0] + 2 * L, plain.shape[1], 3)
    for k in range(4):
        r, c = divmod(k, 2)
        y, x = 3 + r * (20 + L + 3), 3 + c * (30 + 3)
        np.testing.assert_array_equal(sheet[y:y + 20, x:x + 30], f[k])
        strip = sheet[y + 20:y + 20 + L, x:x + 30]
        assert (strip < 128).any()  # dark text drawn on the white background
    # labels for every input frame are subsampled along with max_frames
    s2 = contact_sheet(f, max_frames=2, columns=2, pad=3, labels=["a", "bb", "ccc", "dddd"])
    s3 = contact_sheet(f[[0, 3]], columns=2, pad=3, labels=["a", "dddd"])
    np.testing.assert_array_equal(s2, s3)


def test_contact_sheet_errors():
    f = numbered(4)
    with pytest.raises(ArgumentError, match="labels has 3"):
        contact_sheet(f, labels=["a", "b", "c"])
    with pytest.raises(ArgumentError, match="single str"):
        contact_sheet(f, labels="abcd")
    with pytest.raises(ArgumentError, match="columns"):
        contact_sheet(f, columns=0)
    with pytest.raises(ArgumentError, match="max_frames"):
        contact_sheet(f, max_frames=0)
    with pytest.raises(ArgumentError, match="pad"):
        contact_sheet(f, pad=-1)
    with pytest.raises(ArgumentError, match="background"):
        contact_sheet(f, background=(0, 0, 300))
    with pytest.raises(ArgumentError, match="background"):
        contact_sheet(f, background="white")


def test_the_alpha_hint_gives_frames_write_video_takes(tmp_path):
    # the hint's formula gave float64 in 0..255, which write_video then refused
    import re

    frames = np.zeros((2, 8, 8, 4), np.uint8)
    frames[..., 0], frames[..., 3] = 200, 128
    with pytest.raises(ArgumentError) as e:
        write_video(frames, tmp_path / "a.gif", fps=4)
    expr = re.search(r"(np\.rint\(.*?\.astype\(np\.uint8\))", str(e.value)).group(1)
    rgb = eval(expr, {"np": np, "frames": frames})  # noqa: S307 (the hint, as a user would paste it)
    assert rgb.dtype == np.uint8 and rgb[0, 0, 0].tolist() == [227, 127, 127]
    assert write_video(rgb, tmp_path / "a.gif", fps=4).is_file()


# ------------------------------------------------------------------------------------
# audit fixes: labels with newlines, hints, format vs suffix, generators, long names
# ------------------------------------------------------------------------------------
def test_a_label_with_newlines_is_fitted_as_words_not_clipped():
    # "line1\nline2\nline3" was measured as one line and drawn as three in a one-line strip
    lines, _ = video._fit_label("line1\nline2\nline3", 62)
    assert not any("\n" in line for line in lines)
    assert " ".join(lines).split() == ["line1", "line2", "line3"]
    f = smooth(2, 64, 64)
    np.testing.assert_array_equal(contact_sheet(f, labels=["line1\nline2\nline3", "a\t b"]),
                                  contact_sheet(f, labels=["line1 line2 line3", "a b"]))


@pytest.mark.parametrize("torch_input", [False, True])
def test_the_channels_first_hint_fits_one_image_and_list_items(tmp_path, torch_input):
    # the hint said frames.permute(0, 2, 3, 1) for one (3, H, W) image and for list items too
    import re

    chw = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    chw = torch.from_numpy(chw) if torch_input else chw
    pick = 2 if torch_input else 1  # "pass <numpy> (numpy) or <torch> (torch)"

    def hint(call) -> str:
        with pytest.raises(ArgumentError, match="channels-first") as e:
            call()
        return re.search(r"pass (.*?) \(numpy\) or (.*?) \(torch\)", str(e.value)).group(pick)

    image = eval(hint(lambda: save_image(chw, tmp_path / "a.png")), {"array": chw})  # noqa: S307
    assert save_image(image, tmp_path / "a.png").is_file()
    np.testing.assert_array_equal(load_image(tmp_path / "a.png")[..., 1], np.asarray(chw)[1])
    frames = [chw, chw]
    fixed = eval(hint(lambda: write_video(frames, tmp_path / "a.gif", fps=4)), {"frames": frames})  # noqa: S307
    assert write_video(fixed, tmp_path / "a.gif", fps=4).is_file()


def test_a_generator_of_frames_says_to_make_it_a_list(tmp_path):
    with pytest.raises(ArgumentError, match=r"generator/iterator.*Fix: pass list\(frames\) or np\.stack"):
        write_video((f for f in numbered(2)), tmp_path / "a.gif", fps=4)
    with pytest.raises(ArgumentError, match=r"generator/iterator"):
        sequence(iter(list(numbered(2))))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tiff", ".webm", ".mkv"])
def test_a_format_that_disagrees_with_a_media_suffix_is_refused(tmp_path, suffix):
    # mp4 bytes were written under clip.png (unreadable) or clip.webm (shown as video/webm)
    with pytest.raises(ArgumentError, match=rf"ends in \{suffix}.*Fix: end the path with \.mp4\."):
        write_video(smooth(2, 8, 8), tmp_path / f"clip{suffix}", format="mp4", fps=4)
    assert list(tmp_path.iterdir()) == []
    # a suffix that names no image or video format still takes format=
    assert write_video(smooth(2, 8, 8), tmp_path / "clip.v2", format="mp4", fps=4).read_bytes()[4:8] == b"ftyp"
    # nor is an MPEG-4 name refused an mp4 (a review: .m4v wrote and read back before the check)
    for ok in ("clip.m4v", "clip.mov"):
        assert read_video(write_video(smooth(2, 8, 8), tmp_path / ok, format="mp4", fps=4)).shape[0] == 2


def test_a_name_too_long_for_the_file_system_is_refused_before_encoding(tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("encoded before the name was checked")

    monkeypatch.setattr(video, "_write_gif", never)
    long = "x" * 300
    with pytest.raises(ArgumentError, match=r"the file name is 304 bytes, longer than the \d+ .*shorter name"):
        write_video(numbered(2), tmp_path / "out" / f"{long}.gif", fps=4)
    with pytest.raises(ArgumentError, match=r"the file name is 304 bytes"):
        save_image(numbered(1)[0], tmp_path / "out" / f"{long}.png")
    with pytest.raises(ArgumentError, match=r"the folder name 'x{24}\.\.\.' is 300 bytes"):
        save_image(numbered(1)[0], tmp_path / long / "a.png")
    assert list(tmp_path.iterdir()) == []  # no folder made for a file that cannot be written


def test_a_list_of_image_paths_is_read_as_the_images(tmp_path):
    # show_video([paths]) / write_video([paths]) said "frames[0] has shape () ... repeat the grey channel"
    import latentlab as ll

    frames = numbered(2, 4, 6) * 100
    paths = [save_image(f, tmp_path / f"f{k}.png") for k, f in enumerate(frames)]
    out = write_video([str(paths[0]), paths[1]], tmp_path / "v.gif", fps=4)
    np.testing.assert_array_equal(read_video(out), frames)
    np.testing.assert_array_equal(contact_sheet(paths), contact_sheet(frames))
    assert ll.show_video(paths).data == ll.show_video(frames).data
    with pytest.raises(ArgumentError, match=r"frames\[1\]: .*missing\.png"):
        write_video([paths[0], tmp_path / "missing.png"], tmp_path / "w.gif")


def test_a_trajectory_is_told_to_be_rendered_before_it_is_shown():
    import latentlab as ll
    from latentlab.trajectory import Trajectory

    a, b = torch.nn.functional.normalize(torch.randn(2, 8, generator=torch.Generator().manual_seed(0)), dim=-1).split(1)
    path = Trajectory.interpolate(a, b, frames=3)
    for show in (ll.show, ll.show_video):
        with pytest.raises(ArgumentError, match=r"is a Trajectory \(3 frames of embeddings\), not pictures\. "
                                                r"Fix: render it first.*dec\.render\(path\).*ll\.scrub\(path, dec\)"):
            show(path)
    with pytest.raises(ArgumentError, match="frames is a Trajectory"):
        contact_sheet(path)


# ------------------------------------------------------------------------------------
# a missing or broken ffmpeg: said before any frame is drawn, never an empty mp4
# ------------------------------------------------------------------------------------
def _no_ffmpeg_said(message: str, env: bool = True) -> None:
    """The message names ffmpeg, the fix (IMAGEIO_FFMPEG_EXE too, unless ``env`` is False: no
    help without imageio-ffmpeg), and the formats that need none."""
    assert "ffmpeg" in message and ("IMAGEIO_FFMPEG_EXE" in message or not env)
    assert "pip install imageio-ffmpeg" in message
    assert "format='gif'" in message and "--format gif" in message


def _executable(path, text: str):
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("case", ["missing", "not executable", "directory", "no imageio-ffmpeg", "none found"])
def test_check_video_writer_says_ffmpeg_is_missing_and_the_fix(tmp_path, monkeypatch, case):
    import sys

    import imageio_ffmpeg

    if case == "missing":
        monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(tmp_path / "nowhere" / "ffmpeg"))
        said = r"IMAGEIO_FFMPEG_EXE='.*nowhere.*' does not exist"
    elif case == "not executable":
        if os.name != "posix":
            pytest.skip("execute bits are POSIX")
        exe = tmp_path / "ffmpeg"
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o644)
        monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(exe))
        said = "is not executable"
    elif case == "directory":
        monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(tmp_path))
        said = "is a directory"
    elif case == "no imageio-ffmpeg":
        monkeypatch.delenv("IMAGEIO_FFMPEG_EXE", raising=False)
        monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import imageio_ffmpeg -> ImportError
        said = "imageio-ffmpeg, which runs it, is not installed"
    else:
        monkeypatch.delenv("IMAGEIO_FFMPEG_EXE", raising=False)

        def none_found():
            raise RuntimeError("No ffmpeg exe could be found. Install ffmpeg on your system, "
                               "or set the IMAGEIO_FFMPEG_EXE environment variable.")

        monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", none_found)
        said = "imageio-ffmpeg found no ffmpeg executable"
    for what in ("mp4", ".MP4", tmp_path / "out.mp4", str(tmp_path / "out.mp4")):
        with pytest.raises(ArgumentError, match=said) as info:
            video.check_video_writer(what)
        _no_ffmpeg_said(str(info.value), env=case != "no imageio-ffmpeg")
    # gif and webp are Pillow's: no ffmpeg needed
    assert video.check_video_writer("gif") is None and video.check_video_writer(tmp_path / "a.webp") is None
    # write_video says so before converting a frame or touching the disk; the old video stays
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"old")
    monkeypatch.setattr(video, "_as_frames", lambda *a, **k: pytest.fail("frames converted before the ffmpeg check"))
    with pytest.raises(ArgumentError, match=said):
        write_video(numbered(2, 4, 4), target)
    assert target.read_bytes() == b"old" and leftovers(tmp_path) == []


def test_check_video_writer_finds_the_working_ffmpeg_and_refuses_unknown_formats(tmp_path):
    import shutil

    exe = video.check_video_writer("mp4")
    assert exe and shutil.which(exe)
    with pytest.raises(ArgumentError, match="unknown video format"):
        video.check_video_writer(tmp_path / "clip.avi")
    with pytest.raises(ArgumentError, match="expected a format"):
        video.check_video_writer(None)


@pytest.mark.parametrize("case", ["missing", "not executable"])
def test_the_mp4_writer_itself_maps_a_missing_ffmpeg_to_the_same_message(tmp_path, monkeypatch, case):
    # the exe checked (check_video_writer) and the one run may differ: an ffmpeg removed between
    # the two gave a raw FileNotFoundError / PermissionError traceback
    monkeypatch.setattr(video, "check_video_writer", lambda *a, **k: None, raising=False)
    exe = tmp_path / "ffmpeg"
    if case == "not executable":
        if os.name != "posix":
            pytest.skip("execute bits are POSIX")
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o644)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(exe))
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"old")
    with pytest.raises(ArgumentError, match="IMAGEIO_FFMPEG_EXE=") as info:
        write_video(numbered(2, 4, 4), target)
    _no_ffmpeg_said(str(info.value))
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == (["clip.mp4", "ffmpeg"] if exe.exists() else ["clip.mp4"])


def _fake_ffmpeg(tmp_path, monkeypatch, script: str):
    """A shell script ``bin/ffmpeg`` running ``script``, set as IMAGEIO_FFMPEG_EXE, and an old
    ``clip.mp4`` beside it: ``(the script, the video)``."""
    (tmp_path / "bin").mkdir()
    fake = _executable(tmp_path / "bin" / "ffmpeg", f"#!/bin/sh\n{script}\n")
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(fake))
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"old")
    return fake, target


@pytest.mark.skipif(os.name != "posix", reason="a shell script for an ffmpeg")
def test_an_ffmpeg_that_exits_0_having_written_nothing_leaves_the_old_video(tmp_path, monkeypatch):
    # IMAGEIO_FFMPEG_EXE=/bin/true: an empty .mp4 was renamed over the video, and the write "succeeded"
    fake, target = _fake_ffmpeg(tmp_path, monkeypatch, "exit 0")
    with pytest.raises(ArgumentError, match=r"exited with status 0 but wrote nothing") as info:
        write_video(smooth(3, 8, 8), target, fps=4)
    _no_ffmpeg_said(str(info.value))
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "clip.mp4"]
    with pytest.raises(ArgumentError, match="wrote nothing"):  # and no empty file where there was none
        write_video(smooth(3, 8, 8), tmp_path / "new.mp4", fps=4)
    assert not (tmp_path / "new.mp4").exists() and leftovers(tmp_path) == []
    assert video.check_video_writer("mp4") == str(fake)  # it exists and runs: only writing shows it is no ffmpeg


@pytest.mark.skipif(os.name != "posix", reason="a shell script for an ffmpeg")
def test_an_ffmpeg_that_stops_reading_early_is_reported_with_its_status_and_words(tmp_path, monkeypatch):
    # ffmpeg exits before it has read the frames: the next write to its pipe raises BrokenPipeError,
    # which must end as ffmpeg's own failure (status, what it said), the old video kept, not as a
    # raw BrokenPipeError (which the CLI no longer takes for a closed `| head`)
    _, target = _fake_ffmpeg(tmp_path, monkeypatch, "echo 'Unknown encoder libx264' >&2\nexit 3")
    frames = smooth(40, 64, 64)  # 480 KB, far more than a pipe's buffer: a write meets the closed pipe
    with pytest.raises(LatentlabError, match=r"ffmpeg failed \(exit status 3\).*ffmpeg said: Unknown encoder libx264$"):
        write_video(frames, target, fps=4)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "clip.mp4"]


# ------------------------------------------------------------------------------------
# temporary names under any file-system encoding
# ------------------------------------------------------------------------------------
def test_a_temporary_name_cut_inside_a_character_keeps_whole_characters(tmp_path):
    name = "y" * 199 + "日" * 17 + ".png"  # 254 bytes; byte 200 falls inside the first 日
    stem = video._temp_stem(tmp_path / name)
    assert stem == "y" * 199 and name.startswith(stem)
    tmp = video._temp_path(tmp_path / name)
    assert len(os.fsencode(tmp.name)) <= 255 and video._is_temp_name(tmp.name, stem)
    assert save_image(smooth(1, 4, 4)[0], tmp_path / name).name == name
    assert [p.name for p in tmp_path.iterdir()] == [name]


@pytest.mark.skipif(os.name != "posix", reason="the file-system encoding follows the locale on POSIX only")
def test_temporary_names_under_an_ascii_file_system_encoding(tmp_path):
    # LC_ALL=C PYTHONUTF8=0: Python's file-system encoding is ascii and a name's other bytes arrive
    # surrogate-escaped; _temp_stem turned them into real characters, which cannot be written
    # (UnicodeEncodeError writing "café 日.png", "café.gif" ...)
    import subprocess
    import sys

    script = r"""
import os, sys, time
import numpy as np
from latentlab import video
assert sys.getfilesystemencoding() == "ascii", sys.getfilesystemencoding()
d = sys.argv[1]
name = os.fsdecode(b"caf\xc3\xa9 \xe6\x97\xa5")
img = np.zeros((4, 4, 3), np.uint8)
video.save_image(img, os.path.join(d, name + ".png"))
video.write_video(np.zeros((2, 4, 4, 3), np.uint8), os.path.join(d, name + ".gif"), fps=4)
long = os.fsdecode(b"y" * 199 + b"\xe6\x97\xa5" * 17 + b".png")  # cut at 200 bytes falls inside a character
video.save_image(img, os.path.join(d, long))
for target in (os.path.join(d, name + ".gif"), os.path.join(d, long)):
    tmp = video._temp_path(video.Path(target))
    assert len(os.fsencode(tmp.name)) <= 255
    tmp.write_bytes(b"partial")
    os.utime(tmp, (time.time() - 7200, time.time() - 7200))
    assert video.remove_stale_temps(target) == [tmp], target
print(sorted(os.listdir(os.fsencode(d))))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHONUTF8", "PYTHONIOENCODING"))}
    env.update(LC_ALL="C", PYTHONUTF8="0", OMP_NUM_THREADS="1")
    probe = subprocess.run([sys.executable, "-c", "import sys; print(sys.getfilesystemencoding())"], env=env,
                           capture_output=True, text=True, timeout=60)
    if probe.stdout.strip() != "ascii":
        pytest.skip(f"this Python takes a {probe.stdout.strip()!r} file-system encoding under LC_ALL=C, not ascii")
    r = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode("utf-8", "replace")[-2000:]
    names = sorted(os.listdir(tmp_path))
    assert names == sorted(["café 日.png", "café 日.gif", "y" * 199 + "日" * 17 + ".png"])


def test_reading_an_mp4_without_ffmpeg_says_so(tmp_path, monkeypatch):
    """read_video of an mp4 with a missing ffmpeg reported a bad video (or imageio-ffmpeg's own error)."""
    video = write_video(np.zeros((2, 8, 8, 3), np.uint8), tmp_path / "a.mp4", fps=4)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(tmp_path / "no-ffmpeg"))
    with pytest.raises(ArgumentError, match=r"cannot read .*a\.mp4': a video of that kind is decoded by ffmpeg, and "
                                            r"IMAGEIO_FFMPEG_EXE=.* does not exist\. Fix: point IMAGEIO_FFMPEG_EXE"):
        read_video(video)
    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE")
    assert read_video(video).shape == (2, 8, 8, 3)


def test_a_picture_too_large_for_pillow_is_refused_with_the_fix_everywhere_it_is_read(tmp_path, monkeypatch, tiny_encoder):
    # an audit of pictures from elsewhere: a 14000 x 14000 PNG raised Pillow's raw DecompressionBombError
    # from load_image, and encode_image called it corrupt ("re-export it as PNG or JPEG")
    from PIL import Image

    from latentlab.errors import SpecError
    from latentlab.spec import load_spec

    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1600 pixels: over twice the limit, Pillow refuses
    fix = "more pixels than Pillow opens by default"
    with pytest.raises(ArgumentError, match=fix):
        video.load_image(path)
    with pytest.raises(ArgumentError, match=fix) as info:
        tiny_encoder.encode_image([path])
    assert "corrupt" not in str(info.value)
    with pytest.raises(SpecError, match=fix):
        load_spec({"keyframes": [{"image": str(path)}, {"text": "a cat"}]})


def test_a_url_given_for_a_picture_is_called_one(tmp_path, monkeypatch, tiny_encoder):
    # an audit: "https://example.com/cat.png" was reported as the missing file 'https:/example.com/cat.png'
    # (Path folds the slashes), with "check the path" as the fix
    from latentlab.errors import SpecError
    from latentlab.spec import load_spec

    monkeypatch.chdir(tmp_path)
    url = "https://example.com/cat.png"
    said = "reads local files only, not URLs: download the picture first"
    with pytest.raises(ArgumentError, match=said):
        video.load_image(url)
    with pytest.raises(ArgumentError, match=said):
        tiny_encoder.encode_image([url])
    with pytest.raises(SpecError, match=f"keyframes\\[0\\].image: '{url}' is a URL. latentlab {said}"):
        load_spec({"keyframes": [{"image": url}, {"text": "a cat"}]})
    with pytest.raises(SpecError, match=said):
        load_spec({"keyframes": [{"image": url}, {"text_diff": {"to": "a dog"}}]})
    with pytest.raises(ArgumentError, match="Fix: check the path") as info:  # a plain missing file: as before
        video.load_image("cat.png")
    assert "URL" not in str(info.value)
    from latentlab.errors import url_hint

    assert url_hint("C:/pics/cat.png") == "" and url_hint("file:///tmp/x.png") and url_hint(Path("s3://b/k.png"))


def test_an_animated_picture_is_read_as_its_first_frame_with_a_warning(tmp_path, tiny_encoder):
    # an audit: an animated gif or webp given as a picture was read as its first frame, silently
    from PIL import Image

    for ext in ("gif", "webp"):
        path = tmp_path / f"anim.{ext}"
        a, b = Image.new("RGB", (16, 16), (220, 30, 30)), Image.new("RGB", (16, 16), (30, 30, 220))
        a.save(path, save_all=True, append_images=[b], duration=100, loop=0)
        said = rf"anim\.{ext}' is an animated picture \(2 frames\), read as one of them, frame 0 \(the first\)"
        with pytest.warns(UserWarning, match=said):  # (naming the file: which of several keyframes)
            pixels = video.load_image(path)
        assert pixels[..., 0].mean() > 150 > pixels[..., 2].mean()  # the red first frame
        with pytest.warns(UserWarning, match=said):
            tiny_encoder.encode_image([path])
    # a phone's photo as an MPO JPEG (the photo, then a preview): two frames, not an animation
    mpo = tmp_path / "phone.jpg"
    Image.new("RGB", (16, 16), (220, 30, 30)).save(mpo, "MPO", save_all=True, append_images=[Image.new("RGB", (8, 8))])
    with Image.open(mpo) as im:
        assert im.format == "MPO" and im.n_frames == 2
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert video.load_image(mpo).shape == (16, 16, 3)


# ------------------------------------------------------------------------------------
# long and large videos (an audit of scale, 2026-12-06)
# ------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["gif", "webp", "mp4"])
def test_write_video_size_resizes_as_it_writes_and_gives_the_same_file(tmp_path, fmt):
    from latentlab.jobs import resize_frames

    frames = smooth(6, 16, 16)
    a = write_video(resize_frames(frames, 40), tmp_path / f"a.{fmt}", fps=10, hold_last=2)
    b = write_video(frames, tmp_path / f"b.{fmt}", fps=10, hold_last=2, size=40)
    if fmt == "mp4":
        np.testing.assert_array_equal(read_video(a), read_video(b))
    else:
        assert a.read_bytes() == b.read_bytes()
    with pytest.raises(ArgumentError, match=r"size must be None or an integer in \[1, 16384\]"):
        write_video(frames, tmp_path / "c.gif", size=0)
    # frames of another shape (a user's own decoder) are resized to size x size, as a render's size always did
    assert read_video(write_video(smooth(2, 16, 12), tmp_path / "c.gif", size=8)).shape == (2, 8, 8, 3)


def test_write_video_never_holds_all_the_resized_frames(tmp_path):
    # a 1601-frame render at 512 px held every resized frame (twice): 3.5 GB for an mp4, 5.5 GB for a gif
    import tracemalloc

    frames = smooth(120, 8, 8)  # 120 frames of 256 x 256 x 3 resized: 23.6 MB in all
    tracemalloc.start()
    try:
        write_video(frames, tmp_path / "v.mp4", fps=24, size=256)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000, peak
    assert read_video(tmp_path / "v.mp4").shape == (120, 256, 256, 3)


def test_a_gif_write_interrupted_is_not_encoded_again_afterwards(tmp_path, monkeypatch):
    # imageio's writer kept the frames of an interrupted save and encoded them all again from its
    # finalizer: a Ctrl-C at the start of a 4-minute gif took effect 4 minutes later
    import gc

    from PIL import GifImagePlugin

    calls = []
    real = GifImagePlugin._write_multiple_frames

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(GifImagePlugin, "_write_multiple_frames", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_video(smooth(4, 16, 16), tmp_path / "v.gif", fps=10)
    gc.collect()
    assert calls == [1] and leftovers(tmp_path) == [] and not (tmp_path / "v.gif").exists()


def test_write_video_shows_a_bar_over_the_frames_it_writes(tmp_path, capsys):
    write_video(smooth(5, 8, 8), tmp_path / "v.gif", fps=10, hold_last=3, progress=True)
    err = capsys.readouterr().err
    assert "video: 100%" in err and "8/8" in err  # five frames, the last shown three more times
    write_video(smooth(5, 8, 8), tmp_path / "w.gif", fps=10)
    assert "video" not in capsys.readouterr().err


def test_a_layered_photoshop_file_is_not_called_animated(tmp_path):
    # a review: Pillow counts a PSD's layers as frames (and opens it at "frame 1"), while the pixels it
    # reads are the flattened picture, which is right: the animated-picture warning called it frame 1
    import struct
    import warnings

    side = 4

    def layer(name: bytes) -> bytes:
        rec = struct.pack(">iiiiH", 0, 0, side, side, 3) + b"".join(struct.pack(">hI", c, 2 + side * side) for c in (0, 1, 2))
        nm = bytes([len(name)]) + name
        extra = struct.pack(">II", 0, 0) + nm + b"\0" * ((-len(nm)) % 4)
        return rec + b"8BIMnorm" + bytes([255, 0, 0, 0]) + struct.pack(">I", len(extra)) + extra

    def planes(rgb) -> bytes:
        return b"".join(struct.pack(">H", 0) + bytes([c]) * side * side for c in rgb)

    layers = struct.pack(">h", 2) + layer(b"bg") + layer(b"fg") + planes((0, 0, 255)) + planes((0, 255, 0))
    layers += b"\0" * (len(layers) % 2)
    info = struct.pack(">I", len(layers)) + layers
    header = b"8BPS" + struct.pack(">H", 1) + b"\0" * 6 + struct.pack(">HIIHH", 3, side, side, 8, 3)
    composite = struct.pack(">H", 0) + bytes([200]) * side * side + bytes([10]) * side * side * 2
    path = tmp_path / "layers.psd"
    path.write_bytes(header + struct.pack(">II", 0, 0) + struct.pack(">I", len(info)) + info + composite)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert video.load_image(path)[0, 0].tolist() == [200, 10, 10]  # the flattened picture


def test_contact_sheet_labels_draw_other_scripts_and_say_what_they_cannot(recwarn):
    # an audit of typed text: Pillow's default font drew Cyrillic, Greek, Hebrew and decomposed accents
    # as boxes (so "кот" and "ккк" looked the same), with no word
    frames = np.full((1, 64, 64, 3), 200, np.uint8)

    def strip(label):
        return contact_sheet(frames, labels=[label])[66:]

    for a, b in (("кот", "ккк"), ("Ωμέγα", "ΩΩΩΩΩ"), ("cafe\u0301", "cafe\u0300")):
        assert not np.array_equal(strip(a), strip(b)), (a, b)
    np.testing.assert_array_equal(strip("cafe\u0301"), strip("caf\u00e9"))  # composed first
    assert not recwarn.list
    with pytest.warns(UserWarning, match=r"no letters for '猫' \(drawn as boxes\)"):
        contact_sheet(frames, labels=["猫 (cat)"])

# ------------------------------------------------------------------------------------
# frame values, timing, defaults and temporary files (gaps a mutation test found, 2026-12-07)
# ------------------------------------------------------------------------------------
def _durations(path) -> list[int]:
    from PIL import Image

    with Image.open(path) as im:
        out = []
        for k in range(im.n_frames):
            im.seek(k)
            im.load()  # (webp fills in its frame's duration on load)
            out.append(im.info["duration"])
    return out


def test_integer_frames_above_255_are_refused_not_wrapped():
    """An integer frame holding 256 is refused (astype(uint8) would wrap it to black)."""
    f = np.zeros((2, 2, 2, 3), np.int64)
    f[1, 0, 0, 0] = 256
    with pytest.raises(ArgumentError, match=r"values in \[0, 256\]; expected \[0, 255\]"):
        sequence(f)


def test_gif_delays_keep_the_running_time_within_half_a_unit(tmp_path):
    """24 fps in 1/100 s units: each frame's end time is k/24 s rounded to the nearest 10 ms
    (rounded, not floored: floored delays fall up to 10 ms behind)."""
    out = write_video(flat_colours(12, 4, 4), tmp_path / "a.gif", fps=24)
    elapsed = np.cumsum(_durations(out))
    ideal = np.arange(1, 13) * 1000 / 24
    assert np.abs(elapsed - ideal).max() <= 5, elapsed.tolist()


def test_mp4_default_quality_is_crf_18(tmp_path):
    """quality=None writes x264 CRF 18 (quality 65, as documented); quality=99 CRF 1 (read off the
    encoder settings x264 stores in the file)."""
    import re

    for quality, crf in ((None, b"crf=18.0"), (99, b"crf=1.0")):
        out = write_video(smooth(2, 8, 8), tmp_path / f"{quality}.mp4", fps=8, quality=quality)
        assert re.findall(rb"crf=[0-9.]+", out.read_bytes()) == [crf]


def test_webp_default_quality_is_90(tmp_path):
    """quality=None writes the same webp as quality=90 (and not what quality=80 writes)."""
    f = smooth(3, 32, 32)
    default = write_video(f, tmp_path / "d.webp", fps=5).read_bytes()
    q80 = write_video(f, tmp_path / "q80.webp", fps=5, quality=80).read_bytes()
    assert default == write_video(f, tmp_path / "q90.webp", fps=5, quality=90).read_bytes()
    assert default != q80


def test_mp4_keeps_a_fractional_frame_rate(tmp_path):
    """fps=12.5 is written as 25/2 fps, not cut to a whole number."""
    import imageio_ffmpeg

    out = write_video(smooth(3, 16, 16), tmp_path / "a.mp4", fps=12.5)
    gen = imageio_ffmpeg.read_frames(str(out))
    try:
        meta = next(gen)
    finally:
        gen.close()
    assert meta["fps"] == pytest.approx(12.5, abs=0.01)


def test_a_webp_at_exactly_1000_fps_is_written_with_1_ms_delays(tmp_path):
    """1000 fps, the fastest a webp stores, is taken (the limit is inclusive), with the browser warning."""
    with pytest.warns(UserWarning, match="browsers play"):
        out = write_video(flat_colours(3, 4, 4), tmp_path / "a.webp", fps=1000, quality=100)
    assert _durations(out) == [1, 1, 1]


def test_remove_stale_temps_removes_only_this_targets_temporary_files(tmp_path):
    """Another video's temporary file, or a hidden .tmp file of the user's, is left alone."""
    import time

    target = tmp_path / "a.mp4"
    mine = video._temp_path(target)
    other = video._temp_path(tmp_path / "b.mp4")
    unrelated = tmp_path / ".notes.tmp"
    old = time.time() - 2 * video.STALE_TEMP_S
    for p in (mine, other, unrelated):
        p.write_bytes(b"partial")
        os.utime(p, (old, old))
    assert video.remove_stale_temps(target) == [mine]
    assert not mine.exists() and other.exists() and unrelated.exists()


def test_contact_sheet_labels_are_light_on_a_dark_background():
    """On a dark background the labels are drawn in white, not black on black."""
    f = np.full((1, 20, 30, 3), 128, np.uint8)
    sheet = contact_sheet(f, pad=0, background=0, labels=["abc"])
    strip = sheet[20:]
    assert strip.shape[0] > 5 and (strip > 200).any()  # (antialiased: near white)


def test_write_video_size_resizes_frames_with_one_side_already_that_size(tmp_path):
    """size=8 makes 8 x 12 frames 8 x 8 (only frames already 8 x 8 are left as they are)."""
    out = write_video(smooth(2, 8, 12), tmp_path / "a.gif", fps=4, size=8)
    assert read_video(out).shape == (2, 8, 8, 3)


# -- properties: a video holds the frames it was given -------------------------------------------

PALETTE = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], np.uint8)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(colours=st.lists(st.integers(0, 5), min_size=1, max_size=10), h=st.integers(1, 10), w=st.integers(1, 10),
       hold_first=st.integers(0, 3), hold_last=st.integers(0, 3), pingpong=st.booleans(),
       fmt=st.sampled_from(["gif", "webp"]), fps=st.sampled_from([1, 7.5, 24, 50]), size=st.sampled_from([None, 5]))  # fmt: skip
def test_a_gif_or_webp_holds_the_frames_given_in_order_for_their_time(colours, h, w, hold_first, hold_last, pingpong,
                                                                       fmt, fps, size):  # fmt: skip
    """Flat frames of a few colours (each exact in a gif's palette and lossless webp) read back
    as sequence()'s frames in order, with runs of equal ones merged into one (as the docs say),
    lasting (hold and ping-pong included) the time their count at ``fps`` takes; with ``size``,
    every frame read back is ``size`` x ``size``."""
    f = np.empty((len(colours), h, w, 3), np.uint8)
    for i, c in enumerate(colours):
        f[i] = PALETTE[c]
        f[i, 0, 0] = PALETTE[(c + 1) % len(PALETTE)]
    kw = {"quality": 100} if fmt == "webp" else {}
    with tempfile.TemporaryDirectory() as tmp:
        path = write_video(f, Path(tmp) / f"v.{fmt}", fps=fps, hold_first=hold_first, hold_last=hold_last,
                           pingpong=pingpong, size=size, **kw)  # fmt: skip
        got, durations = animated_frames(path)
    shown = sequence(f, hold_first=hold_first, hold_last=hold_last, pingpong=pingpong)
    assert len(shown) == len(f) + hold_first + hold_last + (max(len(f) - 2, 0) if pingpong else 0)
    if size is not None:
        assert {g.shape for g in got} == {(size, size, 3)}
        return
    runs = [x for i, x in enumerate(shown) if i == 0 or not np.array_equal(x, shown[i - 1])]
    assert len(got) == len(runs) and all(np.array_equal(a, b) for a, b in zip(got, runs))
    if len(runs) > 1:  # (one picture is a still webp: no duration to read)
        assert abs(sum(durations) - len(shown) * 1000 / fps) <= (5 if fmt == "gif" else 0.5)


@settings(max_examples=6, deadline=None, derandomize=True)
@given(n=st.integers(1, 6), h=st.integers(2, 9), w=st.integers(2, 9), hold_last=st.integers(0, 2), pingpong=st.booleans())
def test_an_mp4_holds_every_frame_shown_at_its_padded_size(n, h, w, hold_last, pingpong):
    """An mp4 keeps every frame sequence() shows (holds and repeats included: it merges none),
    in order, padded to even sides."""
    from latentlab.video import check_video_writer, read_video

    try:
        check_video_writer("mp4")
    except ArgumentError:
        pytest.skip("no ffmpeg here")
    f = np.zeros((n, h, w, 3), np.uint8)
    f[:] = (np.arange(n, dtype=np.uint8) * (255 // max(n - 1, 1)))[:, None, None, None]
    with tempfile.TemporaryDirectory() as tmp:
        back = read_video(write_video(f, Path(tmp) / "v.mp4", fps=12, hold_last=hold_last, pingpong=pingpong, quality=99))
    shown = sequence(f, hold_last=hold_last, pingpong=pingpong)
    assert back.shape == (len(shown), h + h % 2, w + w % 2, 3)
    assert np.abs(back[:, :h, :w].astype(int).mean(axis=(1, 2, 3)) - shown.mean(axis=(1, 2, 3))).max() < 3


# -- properties: contact sheets, saved frames, loop counts and odd frames (and the bugs they found) --

SHEET_PROPS = settings(max_examples=25, deadline=None, derandomize=True)


def _frames(seed: int, T: int, H: int, W: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (T, H, W, 3), dtype=np.uint8)


def _as_kind(f: np.ndarray, kind: str):
    """``f`` in one of the forms the video functions take, each standing for the same uint8 pixels."""
    return {"uint8": f, "float32": f.astype(np.float32) / 255, "float64": f / 255.0, "int64": f.astype(np.int64),
            "list": list(f), "torch": torch.from_numpy(f.copy())}[kind]  # fmt: skip


KINDS = st.sampled_from(["uint8", "float32", "float64", "int64", "list", "torch"])


# -- contact sheets -------------------------------------------------------------------------------


@SHEET_PROPS
@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 10), H=st.integers(1, 12), W=st.integers(1, 12), kind=KINDS,
       columns=st.none() | st.integers(1, 12), max_frames=st.none() | st.integers(1, 12), pad=st.integers(0, 3),
       background=st.integers(0, 255) | st.tuples(*[st.integers(0, 255)] * 3),
       labelled=st.sampled_from(["none", "shown", "input"]), texts=st.lists(st.text(max_size=30), min_size=10, max_size=10))  # fmt: skip
def test_contact_sheet_lays_out_the_evenly_picked_frames_row_by_row(seed, T, H, W, kind, columns, max_frames, pad,
                                                                     background, labelled, texts):  # fmt: skip
    """n = min(T, max_frames) frames, the first and last among them, in order; c = columns capped at n (default
    ceil(sqrt(n))), r = ceil(n / c) rows; the sheet is (r * (H + L) + (r + 1) * pad, c * W + (c + 1) * pad, 3) with
    L > 0 exactly when there are labels (per shown or per input frame); each tile is its frame's pixels at
    (pad + i * (H + L + pad), pad + j * (W + pad)) and everything outside the tiles and label strips is background."""
    f = _frames(seed, T, H, W)
    n = T if max_frames is None else min(T, max_frames)
    labels = None if labelled == "none" else texts[: n if labelled == "shown" else T]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (a label in a script the font lacks)
        sheet = contact_sheet(_as_kind(f, kind), columns=columns, max_frames=max_frames, pad=pad, background=background,
                              labels=labels)  # fmt: skip
    c = math.ceil(math.sqrt(n)) if columns is None else min(columns, n)
    r = math.ceil(n / c)
    L = (sheet.shape[0] - (r + 1) * pad) // r - H
    assert (L > 0) == (labels is not None)
    assert sheet.dtype == np.uint8 and sheet.shape == (r * (H + L) + (r + 1) * pad, c * W + (c + 1) * pad, 3)
    shown = video._pick_evenly(T, n)
    assert len(shown) == n and shown[0] == 0 and shown[-1] == T - 1 and (np.diff(shown) > 0).all()
    outside = np.ones(sheet.shape[:2], bool)
    for k, i in enumerate(shown):
        y, x = pad + (k // c) * (H + L + pad), pad + (k % c) * (W + pad)
        np.testing.assert_array_equal(sheet[y : y + H, x : x + W], f[i])
        outside[y : y + H + L, x : x + W] = False
    assert (sheet[outside] == ((background,) * 3 if isinstance(background, int) else background)).all()


@SHEET_PROPS
@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 6), H=st.integers(1, 9), W=st.integers(1, 9),
       columns=st.none() | st.integers(1, 6), max_frames=st.none() | st.integers(1, 6), labelled=st.booleans())  # fmt: skip
def test_show_of_frames_is_their_contact_sheet_and_of_one_image_the_image(seed, T, H, W, columns, max_frames, labelled):
    """show(frames, ...) holds contact_sheet(frames, ...) for frames as an array, a list or PIL images; show of one
    image, array or PIL, holds that image."""
    from PIL import Image

    f = _frames(seed, T, H, W)
    n = T if max_frames is None else min(T, max_frames)
    labels = [f"f{k}" for k in range(n)] if labelled else None
    expected = contact_sheet(f, columns=columns, max_frames=max_frames, labels=labels)
    for x in (f, list(f), [Image.fromarray(a) for a in f]):
        view = ll.show(x, columns=columns, max_frames=max_frames, labels=labels)
        np.testing.assert_array_equal(view.array, expected)
    for x in (f[0], Image.fromarray(f[0]), f[0] / 255.0):
        np.testing.assert_array_equal(ll.show(x).array, f[0])


# -- frames and images on disk --------------------------------------------------------------------


@SHEET_PROPS
@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 5), H=st.integers(1, 9), W=st.integers(1, 9), kind=KINDS,
       start=st.integers(0, 10**6), width=st.integers(0, 7), suffix=st.sampled_from([".png", ".bmp", ".tif", ".PNG"]))  # fmt: skip
def test_saved_frames_load_back_exactly_under_their_numbered_names(seed, T, H, W, kind, start, width, suffix):
    """save_frames writes frame k as pattern.format(start + k) (lossless formats: the very pixels back), returns
    those paths in order, and leaves nothing else in the folder."""
    f = _frames(seed, T, H, W)
    pattern = "f_{:0%dd}%s" % (width, suffix) if width else "f_{}" + suffix
    with tempfile.TemporaryDirectory() as tmp:
        paths = save_frames(_as_kind(f, kind), Path(tmp) / "out", start=start, pattern=pattern)
        assert [p.name for p in paths] == [pattern.format(start + k) for k in range(T)]
        assert sorted(p.name for p in (Path(tmp) / "out").iterdir()) == sorted(p.name for p in paths)
        for p, frame in zip(paths, f):
            np.testing.assert_array_equal(load_image(p), frame)
            np.testing.assert_array_equal(video.read_video(p), frame[None])


@SHEET_PROPS
@given(seed=st.integers(0, 2**32 - 1), T=st.integers(2, 30), start=st.integers(0, 9) | st.integers(95, 99),
       pattern=st.sampled_from(["{!s:.1}.png", "{:.0e}.png", "{:.1e}.png", "{!s:.2}.png", "{:03d}.png", "{}.png"]))
def test_save_frames_never_gives_two_frames_one_name(seed, T, start, pattern):
    """A pattern that names two of the frames alike (not only the first two) is refused before anything is
    written; otherwise every frame gets a file of its own."""
    f = _frames(seed, T, 1, 1)
    names = [pattern.format(start + k) for k in range(T)]
    with tempfile.TemporaryDirectory() as tmp:
        if len(set(names)) < T:
            with pytest.raises(ArgumentError, match="pattern"):
                save_frames(f, Path(tmp) / "o", start=start, pattern=pattern)
            assert not (Path(tmp) / "o").exists() or not list((Path(tmp) / "o").iterdir())
        else:
            paths = save_frames(f, Path(tmp) / "o", start=start, pattern=pattern)
            assert len({p.name for p in paths}) == T == len(list((Path(tmp) / "o").iterdir()))


def test_save_frames_refuses_a_pattern_whose_later_names_repeat(tmp_path):
    """'{!s:.1}.png' names frames 0-9 apart but frame 10 '1.png' again: refused, nothing overwritten."""
    with pytest.raises(ArgumentError, match=r"pattern='\{!s:\.1\}\.png' gives frame 10 the name '1\.png', as frame 1"):
        save_frames(np.zeros((12, 2, 2, 3), np.uint8), tmp_path / "o", pattern="{!s:.1}.png")
    assert not (tmp_path / "o").exists()


@SHEET_PROPS
@given(H=st.integers(1, 8), W=st.integers(1, 8), x=hnp.arrays(np.float64, 8, elements=st.floats(0, 1)),
       dtype=st.sampled_from([np.float32, np.float64]))  # fmt: skip
def test_a_float_image_is_saved_as_its_levels_rounded(H, W, x, dtype):
    """save_image of a float image in [0, 1] writes round(x * 255): the nearest level (to float32's precision)."""
    a = np.resize(x.astype(dtype), (H, W, 3))
    with tempfile.TemporaryDirectory() as tmp:
        back = load_image(save_image(a, Path(tmp) / "i.png"))
    assert np.abs(back - a.astype(np.float64) * 255).max() <= 0.5 + 1e-4


# -- write_video's options, read back --------------------------------------------------------------


@settings(max_examples=12, deadline=None, derandomize=True)
@given(loop=st.integers(0, 3) | st.integers(65530, 65540) | st.integers(10**5, 2**40), fmt=st.sampled_from(["gif", "webp"]))
def test_a_loop_count_is_written_as_plays_or_refused_naming_loop(loop, fmt):
    """loop is the number of plays in all (0: forever): a webp stores it as it is, a gif the repeats after the
    first (none for one play); a count the format cannot store (over 65535 webp plays, 65536 gif plays) is an
    ArgumentError naming loop, not Pillow's raw error or a message about holds."""
    from PIL import Image

    f = np.zeros((2, 3, 3, 3), np.uint8)
    f[1] = 255
    most = 65536 if fmt == "gif" else 65535
    with tempfile.TemporaryDirectory() as tmp:
        if loop > most:
            with pytest.raises(ArgumentError, match=rf"loop={loop}; a {fmt} plays at most {most} times"):
                write_video(f, Path(tmp) / f"v.{fmt}", fps=10, loop=loop)
            assert list(Path(tmp).iterdir()) == []
            return
        with Image.open(write_video(f, Path(tmp) / f"v.{fmt}", fps=10, loop=loop)) as im:
            stored = im.info.get("loop")
    assert stored == (loop if fmt == "webp" else None if loop == 1 else 0 if loop == 0 else loop - 1)


def test_a_loop_count_past_what_the_format_stores_is_refused_naming_loop(tmp_path):
    """loop=65536 for a webp (Pillow: raw RuntimeError 'ERROR assembling WebP') and loop=65537 for a gif (said
    as a hold longer than 655.35 s) are ArgumentErrors naming loop; nothing is left behind."""
    f = np.zeros((2, 3, 3, 3), np.uint8)
    with pytest.raises(ArgumentError, match="loop=65536; a webp plays at most 65535"):
        write_video(f, tmp_path / "v.webp", fps=10, loop=65536)
    with pytest.raises(ArgumentError, match="loop=65537; a gif plays at most 65536"):
        write_video(f, tmp_path / "v.gif", fps=10, loop=65537)
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=5, deadline=None, derandomize=True)
@given(fps=st.sampled_from([0.01, 0.5, 7.5, 23.976, 29.97, 1000 / 7]) | st.floats(0.01, 240), n=st.integers(1, 4),
       hold_first=st.integers(0, 2), pingpong=st.booleans())  # fmt: skip
def test_an_mp4_plays_at_the_fps_asked_for(fps, n, hold_first, pingpong):
    """An mp4's stream rate is the fps given, a float as well (to ffmpeg's two decimals), whatever the holds."""
    import imageio_ffmpeg

    try:
        video.check_video_writer("mp4")
    except ArgumentError:
        pytest.skip("no ffmpeg here")
    f = _frames(0, n, 4, 6)
    with tempfile.TemporaryDirectory() as tmp:
        out = write_video(f, Path(tmp) / "v.mp4", fps=fps, hold_first=hold_first, pingpong=pingpong)
        gen = imageio_ffmpeg.read_frames(str(out))
        try:
            meta = next(gen)
        finally:
            gen.close()
    assert abs(meta["fps"] - fps) <= 0.006 + 1e-4 * fps


# -- odd inputs ------------------------------------------------------------------------------------

_DTYPES = [np.uint8, np.int16, np.int64, np.uint16, np.float16, np.float32, np.float64, np.bool_, np.complex64]


@st.composite
def _odd_frames(draw):
    frames_shape = st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.just(3))
    shape = draw(frames_shape | st.lists(st.integers(0, 4), min_size=2, max_size=5).map(tuple))
    dtype = draw(st.sampled_from(_DTYPES))
    if np.issubdtype(dtype, np.floating):
        values = st.floats(-1, 2) | st.sampled_from([0.0, 1.0, 1.0005, -0.0005, 255.0, np.nan, np.inf])
        a = draw(hnp.arrays(np.float64, shape, elements=values)).astype(dtype)
    elif dtype == np.complex64:
        a = np.zeros(shape, dtype)
    else:
        values = None if dtype in (np.uint8, np.bool_) else st.integers(-3 if np.issubdtype(dtype, np.signedinteger) else 0, 300)
        a = draw(hnp.arrays(dtype, shape, elements=values))
    return a if draw(st.booleans()) else list(a)


def _valid(a) -> bool:
    """Whether ``a`` is what the module takes: (T, H, W, 3) with no empty side, uint8, integers in [0, 255]
    or floats in [0, 1] (1e-3 either side tolerated), NaN and inf never."""
    arr = np.asarray(a)
    if arr.ndim != 4 or arr.shape[-1] != 3 or 0 in arr.shape:
        return False
    if arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.complexfloating):
        return False
    if np.issubdtype(arr.dtype, np.integer):
        return bool(arr.min() >= 0 and arr.max() <= 255)
    x = arr.astype(np.float32)
    return bool(np.isfinite(x).all() and x.min() >= -1e-3 and x.max() <= 1 + 1e-3)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(frames=_odd_frames(), call=st.sampled_from(["contact_sheet", "sequence", "show", "save_frames", "gif"]))
def test_frames_are_taken_exactly_when_valid_else_an_argument_error_names_them(frames, call):
    """Every shape, dtype and value range is either taken (a (T, H, W, 3) uint8 result of the same T, H, W) or
    refused with an ArgumentError naming ``frames``: never a raw numpy/Pillow error, never a silently wrapped
    value."""
    with tempfile.TemporaryDirectory() as tmp:
        run = {
            "contact_sheet": lambda: contact_sheet(frames, pad=0, columns=1000),
            "sequence": lambda: video.sequence(frames),
            "show": lambda: ll.show(frames, columns=1000).array,
            "save_frames": lambda: np.stack([load_image(p) for p in save_frames(frames, Path(tmp) / "o")]),
            "gif": lambda: video.read_video(write_video(frames, Path(tmp) / "v.gif", fps=10)),
        }[call]
        if not _valid(frames):  # (show takes an array of other than 4 axes for one image)
            named = "image|frames" if call == "show" and not isinstance(frames, list) else "frames"
            with pytest.raises(ArgumentError, match=named):
                run()
            return
        out = run()
    T, H, W = np.asarray(frames).shape[:3]
    assert out.dtype == np.uint8
    if call == "contact_sheet":
        assert out.shape == (H, T * W, 3)
    elif call == "show":  # (its sheet has contact_sheet's default pad, 2)
        assert out.shape == (H + 4, T * W + (T + 1) * 2, 3)
    elif call == "gif":
        assert out.shape[1:] == (H, W, 3) and 1 <= len(out) <= T  # (equal neighbours merge)
    else:
        assert out.shape == (T, H, W, 3)
        np.testing.assert_array_equal(out, video._as_frames(frames))


def test_odd_arguments_of_the_sheet_and_the_views_are_argument_errors():
    """labels that are not a sequence, an infinite background level and a caption that is not a str name
    themselves (they were a raw TypeError, OverflowError, and an AttributeError only when shown)."""
    f = np.zeros((2, 4, 4, 3), np.uint8)
    with pytest.raises(ArgumentError, match="labels=5"):
        contact_sheet(f, labels=5)
    with pytest.raises(ArgumentError, match="labels=5"):
        ll.show(f, labels=5)
    with pytest.raises(ArgumentError, match="background"):
        contact_sheet(f, background=(float("inf"), 0, 0))
    for x in (f, f[0]):
        with pytest.raises(ArgumentError, match="caption"):
            ll.show(x, caption=5)
    with pytest.raises(ArgumentError, match="caption"):
        notebook.show_video(f, caption=np.zeros(3))


# -- the scrubber's frame cache --------------------------------------------------------------------


def test_save_frames_refuses_a_pattern_that_cannot_name_a_later_frame(tmp_path):
    """A pattern whose later frame numbers cannot be formatted ('{:c}' past U+10FFFF) is refused
    by name before anything is written; only the first two names were tried, so a raw
    ValueError came from the middle of the writing."""
    with pytest.raises(ArgumentError, match=r"pattern='\{:c\}.png' cannot be formatted with a frame number"):
        save_frames(np.zeros((3, 2, 2, 3), np.uint8), tmp_path / "f", pattern="{:c}.png", start=0x10FFFE)
    assert not (tmp_path / "f").exists()


# -- second audit (2026-12-07): fps, quality, holds, backgrounds, huge sheets, read_video as load_image --


@pytest.mark.parametrize("fmt", ["gif", "mp4"])
def test_write_video_refuses_numpy_bool_fps(tmp_path, fmt):
    # np.True_ was taken as fps=1 (a Python bool was refused)
    with pytest.raises(ArgumentError, match=r"fps=.*True.*positive number"):
        write_video(ramp_frames(), tmp_path / f"a.{fmt}", fps=np.bool_(True))
    assert not list(tmp_path.iterdir())


def test_show_video_refuses_numpy_bool_fps():
    with pytest.raises(ArgumentError, match="fps="):
        notebook.show_video(ramp_frames(), fps=np.bool_(True))


@pytest.mark.parametrize("quality", [10**400, -(10**400), 10**5000], ids=["1e400", "-1e400", "1e5000"])
def test_write_video_refuses_huge_quality_by_name(tmp_path, quality):
    # float(10**400) raised a raw OverflowError
    with pytest.raises(ArgumentError, match=r"quality=.*expected a number in \[0, 100\]"):
        write_video(ramp_frames(), tmp_path / "a.webp", quality=quality)


def test_write_video_loop_of_5000_digits_is_said_by_size(tmp_path):
    # the message's repr(loop) raised a raw ValueError (over 4300 digits)
    with pytest.raises(ArgumentError, match=r"loop=<an integer of \d+ bits>"):
        write_video(ramp_frames(), tmp_path / "a.gif", loop=10**5000)


@pytest.mark.parametrize("hold", [10**12, 10**400], ids=["1e12", "1e400"])
@pytest.mark.parametrize("which", ["hold_first", "hold_last"])
def test_holds_too_long_to_index_are_refused_by_name(tmp_path, hold, which):
    # numpy raised a raw ValueError ("Maximum allowed dimension exceeded") or MemoryError
    with pytest.raises(ArgumentError, match=r"hold_first=.* and hold_last=.*Fix: shorten the holds"):
        sequence(ramp_frames(), **{which: hold})
    with pytest.raises(ArgumentError, match=r"hold_first=.* and hold_last=.*Fix: shorten the holds"):
        write_video(ramp_frames(), tmp_path / "a.webp", **{which: hold})
    assert not (tmp_path / "a.webp").exists()


@pytest.mark.parametrize("background", ["255", "000", b"\xff\xff\xff", (True, 0, 0), (0, np.bool_(True), 0)])
def test_contact_sheet_refuses_background_as_text_or_bools(background):
    # "255" was read digit by digit as (2, 5, 5), a near-black background
    with pytest.raises(ArgumentError, match=r"background=.*grey level 0-255 or an \(r, g, b\)"):
        contact_sheet(ramp_frames(), background=background)


def test_contact_sheet_background_still_takes_numbers():
    assert contact_sheet(ramp_frames(1), background=np.uint8(7), pad=1)[0, 0].tolist() == [7, 7, 7]
    assert contact_sheet(ramp_frames(1), background=(1.0, 2, np.int64(3)), pad=1)[0, 0].tolist() == [1, 2, 3]


@pytest.mark.parametrize("pad", [10**9, 10**400], ids=["1e9", "1e400"])
def test_contact_sheet_too_large_is_refused_by_name(pad):
    # numpy raised a raw ValueError ("array is too big" / "Maximum allowed dimension exceeded")
    with pytest.raises(ArgumentError, match=r"contact sheet would be .* pixels \(pad=.*too large"):
        contact_sheet(ramp_frames(), pad=pad)


def test_float_frames_too_large_for_float32_are_said_as_out_of_range(tmp_path):
    # 1e300 became inf in the float32 cast and was called "NaN or inf" (fix: nan_to_num, which does nothing)
    frames = np.full((1, 2, 2, 3), 1e300)
    with pytest.raises(ArgumentError, match=r"values in \[1e\+300, 1e\+300\]; float frames must be in \[0, 1\]"):
        write_video(frames, tmp_path / "a.gif")


@pytest.mark.parametrize("fmt", [0, False])
def test_show_video_refuses_a_format_that_is_not_a_name(fmt):
    # `not format` took format=0 or False for the default
    with pytest.raises(ArgumentError, match="format must be 'gif', 'webp' or 'mp4'"):
        notebook.show_video(ramp_frames(), format=fmt)


def test_show_video_default_format_unchanged():
    assert notebook.show_video(ramp_frames()).mimetype == "image/gif"
    assert notebook.show_video(ramp_frames(), format="").mimetype == "image/gif"


def _rgba(top_opaque: bool = True) -> np.ndarray:
    a = np.zeros((4, 4, 4), np.uint8)
    a[..., 0] = 200  # a hidden colour under the transparent rows
    a[:2 if top_opaque else 4, :, 3] = 255
    return a


def test_read_video_composites_alpha_on_white_as_load_image_does(tmp_path):
    # imageio's mode="RGB" kept the hidden colour of transparent pixels: (200, 0, 0) in a png, black in a webp
    Image.fromarray(_rgba(), "RGBA").save(tmp_path / "x.png")
    frames = [Image.fromarray(_rgba(), "RGBA"), Image.fromarray(_rgba()[::-1].copy(), "RGBA")]
    frames[0].save(tmp_path / "x.webp", save_all=True, append_images=frames[1:], lossless=True, duration=100)
    for name in ("x.png", "x.webp"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (load_image warns that it reads an animation's first frame)
            first = ll.load_image(tmp_path / name)
        back = read_video(tmp_path / name)
        np.testing.assert_array_equal(back[0], first)
        assert back[0, 3, 0].tolist() == [255, 255, 255] and back[0, 0, 0].tolist() == [200, 0, 0]
    assert read_video(tmp_path / "x.webp")[1, 0, 0].tolist() == [255, 255, 255]


def test_read_video_scales_a_16_bit_png_as_load_image_does(tmp_path):
    # imageio's mode="RGB" clipped 16-bit values: every pixel above 255 came out white
    Image.fromarray((np.arange(16).reshape(4, 4) * 4000).astype(np.uint16)).save(tmp_path / "g.png")
    back = read_video(tmp_path / "g.png")
    assert back.shape == (1, 4, 4, 3)
    np.testing.assert_array_equal(back[0], ll.load_image(tmp_path / "g.png"))
    assert back[0, 3, 3].tolist() == [233] * 3  # 60000 / 257


def test_write_video_refuses_progress_before_making_folders(tmp_path):
    # progress was checked by the bar, after the path's missing folders were made
    with pytest.raises(ArgumentError, match="progress"):
        write_video(ramp_frames(), tmp_path / "new" / "sub" / "x.gif", progress="yes")
    assert list(tmp_path.iterdir()) == []


# property tests kept: round trips as write_video's docstring promises them
def _dedupe(seq: np.ndarray) -> np.ndarray:
    keep = [0] + [i for i in range(1, len(seq)) if not np.array_equal(seq[i], seq[i - 1])]
    return seq[keep]


def _total_ms(path) -> int:
    with Image.open(path) as im:
        total = 0
        for k in range(im.n_frames):
            im.seek(k)
            im.load()
            total += im.info.get("duration", 0)
    return total


@settings(derandomize=True, max_examples=12, deadline=None)
@given(T=st.integers(1, 4), h=st.integers(1, 6), w=st.integers(1, 6), hf=st.integers(0, 2), hl=st.integers(0, 2),
       pp=st.booleans(), fps=st.sampled_from([1, 8, 23.976, 29.97, np.float32(12.5), np.int64(10)]), seed=st.integers(0, 9))
def test_lossless_webp_round_trip_keeps_frames_and_duration(tmp_path_factory, T, h, w, hf, hl, pp, fps, seed):
    """quality=100 webp gives back every frame that differs from the one before, exactly, and the
    durations add up to the sequence's length at ``fps`` (whole ms per frame, no drift)."""
    frames = np.random.default_rng(seed).integers(0, 256, (T, h, w, 3), dtype=np.uint8)
    out = write_video(frames, tmp_path_factory.mktemp("w") / "x.webp", fps=fps, quality=100,
                      hold_first=hf, hold_last=hl, pingpong=pp)
    seq = sequence(frames, hold_first=hf, hold_last=hl, pingpong=pp)
    assert len(seq) == T + hf + hl + (max(T - 2, 0) if pp else 0)
    expected = _dedupe(seq)
    np.testing.assert_array_equal(read_video(out), expected)
    if len(expected) > 1:  # (one picture is written as a still webp, with no duration)
        assert abs(_total_ms(out) - len(seq) * 1000 / float(fps)) <= 1


@settings(derandomize=True, max_examples=12, deadline=None)
@given(T=st.integers(1, 4), h=st.integers(1, 6), w=st.integers(1, 6), hf=st.integers(0, 2), hl=st.integers(0, 2),
       pp=st.booleans(), fps=st.sampled_from([1, 8, 23.976, 24, 50, 0.5]), seed=st.integers(0, 9), colours=st.integers(1, 64))
def test_gif_of_few_colours_round_trips_exactly(tmp_path_factory, T, h, w, hf, hl, pp, fps, seed, colours):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (colours, 3), dtype=np.uint8)[rng.integers(0, colours, (T, h, w))]
    out = write_video(frames, tmp_path_factory.mktemp("g") / "x.gif", fps=fps, hold_first=hf, hold_last=hl, pingpong=pp)
    seq = sequence(frames, hold_first=hf, hold_last=hl, pingpong=pp)
    np.testing.assert_array_equal(read_video(out), _dedupe(seq))
    assert abs(_total_ms(out) - len(seq) * 1000 / float(fps)) <= 10  # 1/100 s delays, no drift


@settings(derandomize=True, max_examples=4, deadline=None)
@given(h=st.integers(1, 7), w=st.integers(1, 7), hl=st.integers(0, 2), fps=st.sampled_from([23.976, 0.01, 1000]))
def test_mp4_pads_odd_sides_and_keeps_every_frame(tmp_path_factory, h, w, hl, fps):
    frames = np.full((2, h, w, 3), 128, np.uint8)
    frames[1] = 40
    back = read_video(write_video(frames, tmp_path_factory.mktemp("m") / "x.mp4", fps=fps, hold_last=hl))
    assert back.shape == (2 + hl, h + h % 2, w + w % 2, 3)
    assert np.abs(back[:, :h, :w].astype(int) - sequence(frames, hold_last=hl)).max() <= 8


@settings(derandomize=True, max_examples=15, deadline=None)
@given(mode=st.sampled_from(["L", "LA", "RGB", "RGBA", "P", "I;16", "CMYK"]), suffix=st.sampled_from([".png", ".webp", ".gif", ".tiff"]),
       h=st.integers(1, 9), w=st.integers(1, 9), seed=st.integers(0, 2**16))  # fmt: skip
def test_read_video_of_a_still_picture_is_load_image(tmp_path_factory, mode, suffix, h, w, seed):
    import numpy as np
    from PIL import Image

    from latentlab.video import load_image, read_video

    rng = np.random.default_rng(seed)
    if mode == "I;16":
        im = Image.fromarray(rng.integers(0, 65536, (h, w)).astype(np.uint16))
    else:
        im = Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA").convert(mode)
    path = tmp_path_factory.mktemp("still") / f"p{suffix}"
    try:
        im.save(path)
    except (OSError, ValueError, KeyError):  # a mode this format cannot hold
        return
    assert np.array_equal(read_video(path)[0], np.asarray(load_image(path)))
