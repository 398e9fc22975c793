"""Long videos and paths are held once: reading, converting, comparing, fingerprinting and scrubbing them
take about their own memory, not twice or sixteen times it.

Each growth is tested at a small size: memory traced with ``tracemalloc`` (numpy's allocations are
traced; torch's are not, so the embeddings' tests count what is built instead).
"""

from __future__ import annotations

import tracemalloc
import types

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import latentlab as ll


def _peak(fn, *args, **kwargs):
    """``(fn(*args, **kwargs), peak bytes traced while it ran)``."""
    tracemalloc.start()
    try:
        out = fn(*args, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return out, peak


def _ramp(T: int = 48, size: int = 64) -> np.ndarray:
    f = np.zeros((T, size, size, 3), np.uint8)
    f[..., 0] = (np.arange(T) * 5 % 256)[:, None, None]
    f[:, ::3, :, 1] = 200
    f[:, :, ::4, 2] = np.arange(size, dtype=np.uint8)[::4] * 3
    return f


# -- read_video / write_video of image files: the frames held once ---------------------------------


@pytest.mark.parametrize("ext", ["webp", "gif", "mp4"])
def test_read_video_holds_the_frames_once(tmp_path, ext):
    # a list of the frames, then their stack, peaked at twice the video (10,000 frames of 512 px: 15.7 GB
    # for a 7.9 GB result)
    frames = _ramp()
    path = ll.write_video(
        frames,
        tmp_path / f"v.{ext}",
        fps=12,
        **({"quality": 100} if ext == "webp" else {}),
    )
    ll.read_video(
        ll.write_video(frames[:2], tmp_path / f"warm.{ext}")
    )  # (the readers' first imports, not traced below)
    out, peak = _peak(ll.read_video, path)
    assert out.shape == frames.shape and out.dtype == np.uint8 and out.flags.writeable
    if ext == "webp":  # lossless: the very frames
        assert np.array_equal(out, frames)
    assert peak < 1.4 * out.nbytes, (peak, out.nbytes)


def test_write_video_of_image_files_reads_them_into_one_array(tmp_path):
    # a list of frames given as files was read into a list, then stacked: every frame held twice
    from latentlab.video import _as_frames, save_frames

    frames = _ramp(T=40)
    paths = save_frames(frames, tmp_path / "f")
    _as_frames(paths[:2])  # (the reader's first imports, not traced below)
    out, peak = _peak(_as_frames, paths)
    assert np.array_equal(out, frames)
    assert peak < 1.4 * out.nbytes, (peak, out.nbytes)


def test_frames_of_several_sizes_are_still_refused_by_name(tmp_path):
    from latentlab.video import _as_frames

    frames = [
        np.zeros((4, 4, 3), np.uint8),
        np.zeros((4, 4, 3), np.uint8),
        np.zeros((5, 4, 3), np.uint8),
    ]
    with pytest.raises(
        ll.ArgumentError,
        match=r"frames\[2\] has shape \(5, 4, 3\) but frames\[0\] has \(4, 4, 3\)",
    ):
        _as_frames(frames)


# -- frame_distances(metric="pixel"): float64 temporaries bounded by a block -----------------------


def test_pixel_distances_of_a_long_video_take_a_block_of_memory_not_16_times_the_video(
    monkeypatch,
):
    # the whole video went to float64 at once, in four temporaries: about 16 times its frames
    # (1,000 frames of 512 px: 12 GB); now a block of pairs at a time
    from latentlab import pacing

    monkeypatch.setattr(pacing, "_PIXEL_BLOCK", 1 << 14, raising=False)
    frames = _ramp(T=60, size=48)
    whole = np.sqrt(((frames[1:].astype(np.float64) / 255.0 - frames[:-1].astype(np.float64) / 255.0) ** 2)
                    .reshape(59, -1).mean(axis=1))  # fmt: skip
    d, peak = _peak(ll.frame_distances, frames, metric="pixel")
    assert np.array_equal(d, whole)  # the same distances, bit for bit
    assert peak < 2 * frames.nbytes, (peak, frames.nbytes)


@settings(derandomize=True, max_examples=25, deadline=None)
@given(
    T=st.integers(2, 9),
    h=st.integers(1, 7),
    w=st.integers(1, 7),
    block=st.integers(1, 400),
    seed=st.integers(0, 99),
)
def test_pixel_distances_do_not_depend_on_the_block(T, h, w, block, seed):
    from latentlab import pacing

    frames = np.random.default_rng(seed).integers(0, 256, (T, h, w, 3), dtype=np.uint8)
    whole = ll.frame_distances(frames, metric="pixel")
    old = getattr(pacing, "_PIXEL_BLOCK", None)
    pacing._PIXEL_BLOCK = block
    try:
        blocked = ll.frame_distances(frames, metric="pixel")
    finally:
        if old is None:
            del pacing._PIXEL_BLOCK
        else:
            pacing._PIXEL_BLOCK = old
    assert np.array_equal(whole, blocked)
    assert whole.shape == (T - 1,) and (whole >= 0).all() and (whole <= 1).all()


# -- Trajectory.embeddings and fingerprints: the embeddings held once ------------------------------


def test_trajectory_embeddings_are_not_built_twice(monkeypatch):
    # each segment's frames were kept in a list, then concatenated: a long path's embeddings held twice
    # (500 keyframes x 400 frames x 768-d: 1.3 GB peak for 585 MB); counted as what torch.cat builds in
    # the module (torch's CPU memory is not traced)
    from latentlab import trajectory

    built: list[int] = []

    def cat(tensors, *args, **kwargs):
        out = torch.cat(tensors, *args, **kwargs)
        built.append(out.numel())
        return out

    class Torch(types.SimpleNamespace):  # torch, whose cat counts what it builds
        def __getattr__(self, name):
            return getattr(torch, name)

    proxy = Torch(cat=cat)
    kf = torch.nn.functional.normalize(
        torch.randn(6, 16, generator=torch.Generator().manual_seed(0)), dim=1
    )
    path = ll.Trajectory.chain(list(kf), frames=[30, 20, 10, 40, 25], method="slerp")
    expected = torch.cat([ll.slerp(kf[i : i + 1], kf[i + 1 : i + 2], path.segments[i].params().float())
                          for i in range(5)] + [kf[5:]])  # fmt: skip
    monkeypatch.setattr(trajectory, "torch", proxy)
    z = path.embeddings()
    assert torch.equal(z, expected)
    assert max(built, default=0) < z.numel() // 2, built


def test_render_fingerprint_hashes_the_embeddings_where_they_lie():
    # astype(float32) and tobytes() made two copies of a long render's embeddings, each render and resume
    import hashlib
    import importlib
    import json

    R = importlib.import_module("latentlab.render")  # (ll.render is the function)
    z = torch.nn.functional.normalize(
        torch.randn(4000, 64, generator=torch.Generator().manual_seed(1)), dim=1
    )
    fp, peak = _peak(R._fingerprint, z, {"seed": 0})
    h = hashlib.sha256(z.numpy().tobytes())
    h.update(json.dumps({"seed": 0}, sort_keys=True, default=str).encode())
    assert (
        fp == h.hexdigest()
    )  # the same fingerprint as before: renders recorded before still resume
    assert fp == R._fingerprint(z[::1].clone(), {"seed": 0})
    assert peak < 0.25 * z.numel() * 4, peak


def test_trajectory_fingerprint_hashes_the_embeddings_where_they_lie():
    import hashlib

    kf = torch.nn.functional.normalize(
        torch.randn(3, 64, generator=torch.Generator().manual_seed(2)), dim=1
    )
    path = ll.Trajectory.chain(list(kf), frames=[2000, 2000])
    z = path.embeddings()
    fp, peak = _peak(path.fingerprint)
    h = hashlib.sha256(str(path.space).encode())
    h.update(z.numpy().tobytes())
    assert fp == h.hexdigest()
    assert peak < 0.25 * z.numel() * 4, peak


# -- Scrubber.frames: the frames held once where the cache is bounded ------------------------------


def test_scrubber_frames_with_a_small_cache_hold_the_frames_once(fake_decoder):
    # a dict of every frame (views keeping each batch alive), then their stack: twice the frames,
    # even with cache_size=1 set to bound the memory
    fake_decoder.resolution = 32

    def decode(
        embeddings, noise, *, seeds, steps, guidance_scale
    ):  # frames of 32 px, fast
        base = (embeddings[:, :3].numpy() * 100 + 128).astype(np.uint8)
        return np.ascontiguousarray(
            np.broadcast_to(base[:, None, None, :], (len(seeds), 32, 32, 3))
        )

    fake_decoder._decode = decode
    z = torch.nn.functional.normalize(
        torch.randn(90, 8, generator=torch.Generator().manual_seed(3)), dim=1
    )
    s = ll.Scrubber(z, fake_decoder, cache_size=1)
    first = s.frame(5).copy()
    s.frames([5, 6], progress=False)  # (its first imports, not traced below)
    idx = [5, 7, 5, *range(90)]
    out, peak = _peak(s.frames, idx, progress=False)
    assert out.shape == (93, 32, 32, 3) and out.flags.writeable
    assert (
        np.array_equal(out[0], first)
        and np.array_equal(out[2], first)
        and np.array_equal(out[3 + 7], out[1])
    )
    assert s.cache_info()["cached"] == 1
    assert peak < 1.4 * out.nbytes, (peak, out.nbytes)


# -- float frames to uint8: a block at a time -------------------------------------------------------


def test_float_frames_are_converted_a_block_at_a_time(monkeypatch):
    # write_video / contact_sheet / show of float frames made three float32 copies of the whole video
    # (twice a float32 video's memory: 6 GB for 1,000 frames of 512 px) to convert it to uint8
    from latentlab import video

    monkeypatch.setattr(video, "_CONVERT_BLOCK", 1 << 13, raising=False)
    f = np.random.default_rng(4).random((40, 48, 48, 3)).astype(np.float32)
    expected = np.rint(np.clip(f, 0.0, 1.0) * 255.0).astype(np.uint8)
    video._as_frames(f[:2])
    out, peak = _peak(video._as_frames, f)
    assert np.array_equal(out, expected)
    assert peak < 3 * out.nbytes, (peak, out.nbytes)


@settings(derandomize=True, max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=2, max_size=4), block=st.integers(1, 300),
       dtype=st.sampled_from(["float16", "float32", "float64"]), seed=st.integers(0, 99))  # fmt: skip
def test_float_to_uint8_does_not_depend_on_the_block(shape, block, dtype, seed):
    from latentlab import video

    a = (np.random.default_rng(seed).random(shape) * 1.001 - 0.0005).astype(
        dtype
    )  # a little past [0, 1] too
    a.flat[0] = 0.5 / 255  # a half-way value: rint's rounding
    expected = np.rint(np.clip(a.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
    old = getattr(video, "_CONVERT_BLOCK", None)
    video._CONVERT_BLOCK = block
    try:
        out = video._to_uint8(a, "frames")
    finally:
        if old is None:
            del video._CONVERT_BLOCK
        else:
            video._CONVERT_BLOCK = old
    assert (
        out.dtype == np.uint8 and out.shape == a.shape and np.array_equal(out, expected)
    )
