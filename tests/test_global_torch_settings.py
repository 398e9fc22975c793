"""A user's global torch/numpy/random settings: torch.set_default_dtype,
no_grad / inference_mode, the global RNGs. Every test restores each global it changes."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import FakeDecoder, default_dtype, red_square, tiny_mini_decoder, unit_rows


# -- torch.set_default_dtype(torch.float64) ------------------------------------------------------


def test_eta_render_frames_do_not_follow_the_default_dtype():
    """Renders with eta > 0 drew each step's fresh noise in torch's default dtype: after
    ``torch.set_default_dtype(torch.float64)`` the same seed gave other frames (whole levels
    apart, up to 255) though the docs promise a seed's frames on any machine."""
    dec = tiny_mini_decoder()
    z = unit_rows(2, 16, 1)
    want = dec.render(z, seed=3, steps=2, eta=1.0, noise="per-frame", progress=False)
    with default_dtype(torch.float64):
        got = dec.render(z, seed=3, steps=2, eta=1.0, noise="per-frame", progress=False)
    np.testing.assert_array_equal(got, want)


def test_mini_prior_samples_do_not_follow_the_default_dtype():
    """The mini prior drew its starting noise in torch's default dtype: under float64 the
    same seed gave other image embeddings (cosine far from 1), so generate() drew other pictures."""
    from latentlab.mini.models import MiniPriorNet, PriorConfig
    from latentlab.mini.runtime import MiniPrior

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        prior = MiniPrior(MiniPriorNet(PriorConfig(embed_dim=16, width=32, depth=1)), steps=2)
    text = unit_rows(1, 16, 2)
    want = prior(text, seed=5, num_samples=2)
    with default_dtype(torch.float64):
        got = prior(text, seed=5, num_samples=2)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_refined_inversion_runs_under_a_float64_default_dtype():
    """invert(refine > 0) kept its best errors in a tensor of torch's default dtype: under
    float64 a refining step that bettered an earlier one failed with a raw "Index put requires the source and
    destination dtypes match"; now it refines as under float32."""
    dec = tiny_mini_decoder()
    im, z = red_square(), unit_rows(1, 16, 0)  # (it failed where a later step improved on an earlier one, as here)
    want = dec.invert(im, z, steps=2, refine=3, progress=False)
    with default_dtype(torch.float64):
        got = dec.invert(im, z, steps=2, refine=3, progress=False)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_encoder_built_under_a_float64_default_dtype_encodes_images():
    """open_clip's "fp32" precision leaves a model in torch's default dtype: an encoder created
    after ``torch.set_default_dtype(torch.float64)`` held float64 weights and refused every
    picture with a raw "Input type (torch.FloatTensor) and weight type (torch.DoubleTensor)"."""
    import latentlab as ll

    with default_dtype(torch.float64):
        enc = ll.create_encoder("tiny")
        z = enc.encode_image(red_square(40))
    assert {p.dtype for p in enc.model.parameters()} == {torch.float32}
    assert z.dtype == torch.float32 and z.shape == (1, 32)
    assert abs(float(z.norm()) - 1.0) < 1e-5


def test_mini_clip_built_under_a_float64_default_dtype_is_float32():
    """The mini CLIP (create_clip), whose text tower reads a captioned decode's captions, was
    built in torch's default dtype: under float64 its token states rounded otherwise and
    ``generate(..., captions=True)`` drew frames a level apart from float32's."""
    from latentlab.mini.models import create_clip

    with torch.random.fork_rng(devices=[]), default_dtype(torch.float64):
        model, _, tokenizer = create_clip()
        states = model.encode_text(tokenizer(["a red circle"]))
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert states.dtype == torch.float32


@pytest.mark.parametrize("kind", ["decoder", "prior", "expert"])
def test_mini_weights_load_whole_under_a_bfloat16_default_dtype(kind):
    """load_module built the net in torch's default dtype and copied the float32 weights into
    it: under ``torch.set_default_dtype(torch.bfloat16)`` they were rounded to bfloat16 (then
    cast back), and create_decoder("mini") drew frames up to 223 levels off."""
    from latentlab.mini.models import load_expert, load_module, weights_path

    path = weights_path(f"mini_{kind}.safetensors")
    load = (lambda: load_expert(path)[0]) if kind == "expert" else (lambda: load_module(kind, path))
    want = load().state_dict()
    with default_dtype(torch.bfloat16):
        got = load().state_dict()
    assert got.keys() == want.keys()
    for k in want:
        assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]), k


# -- no_grad / inference_mode around a refined inversion --------------------------------------------


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "set_grad_enabled(False)"])
def test_refined_inversion_runs_under_a_callers_no_grad(mode):
    """Refining the inverted noise needs gradients; called inside the caller's
    ``torch.no_grad()``, ``torch.inference_mode()`` or after ``torch.set_grad_enabled(False)``
    (a notebook habit before sampling), it failed with a raw "element 0 of tensors does not
    require grad and does not have a grad_fn". Now it refines to the same noise as outside."""
    dec = tiny_mini_decoder()
    im, z = red_square(), unit_rows(1, 16, 6)
    want = dec.invert(im, z, steps=2, refine=1, progress=False)
    ctx = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode, "set_grad_enabled(False)": lambda: torch.set_grad_enabled(False)}[mode]  # (a restoring context manager too)
    with ctx():
        got = dec.invert(im, z, steps=2, refine=1, progress=False)
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert not got.requires_grad


# -- a render folder refused after another thread count ------------------------------------------------


def test_other_keyframes_refusal_names_the_thread_count(tmp_path):
    """Picture keyframes' embeddings round with the torch thread count, so a render started
    in a notebook (torch.set_num_threads(1)) and resumed with another count is refused as of
    "other keyframe pictures or embeddings"; the message named versions, caches and files but
    not the thread count (or the default dtype), the cause in that case."""
    import latentlab as ll
    from latentlab.jobs import _refuse_other_keyframes

    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / "keyframes.json").write_text('{"fingerprint": "another render"}')
    path = ll.Trajectory.interpolate(unit_rows(1, 8, 0), unit_rows(1, 8, 1), frames=3)
    with pytest.raises(ll.ArgumentError, match=r"thread count \(torch.set_num_threads\) or default dtype"):
        _refuse_other_keyframes(tmp_path, path, overwrite=False)


# -- property tests of documented promises (pass before and after) ------------------------------------


def _global_rng_states():
    return torch.get_rng_state(), np.random.get_state(), random.getstate()


def _assert_same_states(a, b):
    assert torch.equal(a[0], b[0])
    assert all(np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y for x, y in zip(a[1], b[1]))
    assert a[2] == b[2]


@settings(derandomize=True, max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), global_seed=st.integers(0, 2**31 - 1),
       noise=st.sampled_from(["shared", "per-frame", "slerp"]))  # fmt: skip
def test_seeded_render_leaves_and_ignores_the_global_rngs(seed, global_seed, noise):
    """A seeded render draws its noise from its own CPU generators: it neither moves torch's,
    numpy's or Python's global RNG nor depends on where they stand."""
    import latentlab as ll

    dec = FakeDecoder()
    e = unit_rows(3, 8, 7)
    z = ll.Trajectory.chain([e[:1], e[1:2], e[2:]], frames=4)
    want = dec.render(z, seed=seed, noise=noise, progress=False)
    with torch.random.fork_rng(devices=[]):
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            torch.manual_seed(global_seed)
            np.random.seed(global_seed % 2**32)
            random.seed(global_seed)
            before = _global_rng_states()
            got = dec.render(z, seed=seed, noise=noise, progress=False)
            _assert_same_states(before, _global_rng_states())
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
    np.testing.assert_array_equal(got, want)


def test_mini_sampling_leaves_the_global_rngs():
    """mini's eta render, prior samples and refined inversion leave the global RNGs where they
    were, and draw the same whatever state those RNGs are in."""
    from latentlab.mini.models import MiniPriorNet, PriorConfig
    from latentlab.mini.runtime import MiniPrior
    from latentlab.render import make_noise

    dec = tiny_mini_decoder()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        prior = MiniPrior(MiniPriorNet(PriorConfig(embed_dim=16, width=32, depth=1)), steps=2)
        drawn = []
        for global_seed in (2, 3):
            torch.manual_seed(global_seed)
            before = _global_rng_states()
            drawn.append((make_noise((3, 4, 4), [0, 1]),
                          torch.from_numpy(dec.render(unit_rows(2, 16, 3), seed=0, steps=2, eta=0.5, progress=False)),
                          prior(unit_rows(1, 16, 2), seed=1, num_samples=2),
                          dec.invert(red_square(), unit_rows(1, 16, 4), steps=2, refine=1, progress=False)))  # fmt: skip
            _assert_same_states(before, _global_rng_states())
    for a, b in zip(*drawn):
        assert torch.equal(a, b)
