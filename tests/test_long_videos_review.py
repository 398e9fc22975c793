"""Frames stacked from a video or a list own exactly their bytes, as np.stack's did; fingerprints keep
the old digests; the virtual CUDA device leaves no mode behind."""

from __future__ import annotations

import hashlib
import json
import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import latentlab as ll

# -- read_video / _as_frames: the array returned owns exactly its frames, as np.stack's did ----------


@pytest.mark.parametrize("ext", ["gif", "mp4"])
def test_read_video_returns_an_array_that_owns_its_frames(tmp_path, ext):
    # it read a growing bytearray through np.frombuffer: not owning its data (arr.resize refused it)
    frames = np.zeros((3, 16, 16, 3), np.uint8)
    frames[:, ::2, :, 0] = np.array([0, 120, 240], np.uint8)[:, None, None]  # (distinct: a gif merges equal frames)
    out = ll.read_video(ll.write_video(frames, tmp_path / f"v.{ext}", fps=4))
    assert out.shape == frames.shape and out.flags.writeable and out.flags.c_contiguous
    assert out.base is None and out.flags.owndata
    out.resize((4, 16, 16, 3))  # as on np.stack's result
    assert out.shape == (4, 16, 16, 3) and not out[3].any()


def test_frames_stacked_hold_no_growth_slack_once_returned():
    # the bytearray's over-allocation (an eighth more at each growth) stayed with the array for its life:
    # 50 frames of 400,003 bytes held 1.125 times their bytes
    from latentlab.video import _stacked

    tracemalloc.start()
    try:
        out = _stacked(np.full(400_003, j, np.uint8) for j in range(50))
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert out.shape == (50, 400_003) and out.flags.owndata
    assert np.array_equal(out[:, 0], np.arange(50)) and np.array_equal(out[:, -1], np.arange(50))
    assert held < 1.01 * out.nbytes, (held, out.nbytes)


def test_as_frames_of_a_list_owns_its_frames():
    from latentlab.video import _as_frames

    out = _as_frames([np.zeros((4, 4, 3), np.uint8), np.ones((4, 4, 3), np.float32)])
    assert out.flags.owndata and out.base is None and out.flags.writeable
    assert np.array_equal(out[1], np.full((4, 4, 3), 255, np.uint8))


@pytest.mark.parametrize("size", [(0, 5), (0, 0), (4, 0)])
def test_a_list_of_frames_without_pixels_is_refused_by_name(tmp_path, size):
    # the growing buffer's reshape(-1, 0, 5, 3) of no bytes raised numpy's raw "cannot reshape" ValueError
    # (np.stack, before, gave (T, 0, 5, 3), which _as_frames refuses as having no pixels)
    frames = [np.zeros((*size, 3), np.uint8), np.zeros((*size, 3), np.float32)]
    with pytest.raises(ll.ArgumentError, match=rf"frames has shape \(2, {size[0]}, {size[1]}, 3\): no pixels"):
        ll.write_video(frames, tmp_path / "v.gif")
    assert not (tmp_path / "v.gif").exists()


@settings(derandomize=True, max_examples=25, deadline=None)
@given(st.integers(0, 12), st.tuples(st.integers(1, 5), st.integers(1, 5)), st.integers(0, 2**32 - 1))
def test_stacked_is_np_stack_property(T, hw, seed):
    # a promise of the scale commit: the same array as np.stack (shapes, bytes), empty results shaped too
    from latentlab.video import _stacked

    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for _ in range(T)]
    out = _stacked(iter(frames), (*hw, 3))
    want = np.stack(frames) if frames else np.zeros((0, *hw, 3), np.uint8)
    assert out.shape == want.shape and out.dtype == np.uint8 and np.array_equal(out, want)


# -- fingerprints: the digests of the old formula, so render folders still resume ------------------


def _old_render_fingerprint(z: torch.Tensor, settings: dict) -> str:
    h = hashlib.sha256(z.detach().contiguous().numpy().astype(np.float32).tobytes())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()


@settings(derandomize=True, max_examples=20, deadline=None)
@given(
    st.integers(0, 4),
    st.integers(1, 6),
    st.sampled_from([torch.float32, torch.float64, torch.float16]),
    st.sampled_from(["plain", "transposed", "expanded", "tagged", "grad"]),
    st.integers(0, 2**31 - 1),
)
def test_render_fingerprint_is_the_old_digest_property(n, d, dtype, layout, seed):
    from latentlab.render import _fingerprint
    from latentlab.space import tag

    g = torch.Generator().manual_seed(seed)
    z = torch.randn(d, n, generator=g).T if layout == "transposed" else torch.randn(n, d, generator=g)
    z = z[:1].expand(n, d) if layout == "expanded" and n else z
    z = z.to(dtype)
    z = tag(z, "s") if layout == "tagged" else z.requires_grad_() if layout == "grad" else z
    assert _fingerprint(z, {"steps": 3}) == _old_render_fingerprint(z, {"steps": 3})


def test_trajectory_fingerprint_is_the_old_digest():
    z = ll.Trajectory(torch.nn.functional.normalize(torch.randn(3, 8, generator=torch.Generator().manual_seed(1)), dim=-1),
                      frames=9)  # fmt: skip
    e = z.embeddings().contiguous()
    h = hashlib.sha256(str(z.space).encode())
    h.update(e.numpy().tobytes())
    assert z.fingerprint() == h.hexdigest()


# -- the virtual-CUDA harness leaves no mode behind when a check inside it fails -------------------


def test_virtual_cuda_exits_its_mode_when_an_assertion_fails_inside():
    from virtual_cuda import virtual_cuda

    before = torch._C._len_torch_function_stack()
    with pytest.raises(AssertionError), virtual_cuda():
        assert torch.ones(2).to("cuda").device.type == "cuda"
        raise AssertionError("a check failed")
    assert torch._C._len_torch_function_stack() == before
    assert torch.ones(2).device.type == "cpu"
