"""optimize() of a net made under inference_mode(), float32_default blocks entered while a loader in
another block set its own dtype, refining refused before the keyframes are encoded, chains of links."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import torch
from conftest import default_dtype, run_threads, tiny_mini_decoder, unit_rows
from hypothesis import given, settings
from hypothesis import strategies as st

import latentlab as ll
from latentlab.errors import ArgumentError


@pytest.mark.parametrize("inside", [True, False])
def test_optimize_of_a_net_made_under_inference_mode_still_decodes(inside):
    """A decoder on a net built by hand under ``torch.inference_mode()`` decodes (it only cannot
    refine). 68c0b9a ran optimize() outside inference mode, where converting its inference-tensor
    weights made every later decode raise a raw "Inference tensors do not track version counter"."""
    z, noise = unit_rows(1, 16, 0), torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        plain = tiny_mini_decoder()
        want = plain.decode(z, noise, steps=2)
        dec = tiny_mini_decoder().optimize(channels_last=True)
        got = dec.decode(z, noise, steps=2) if inside else None
    if not inside:
        got = dec.decode(z, noise, steps=2)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 2  # channels_last: a level or two
    assert dec.optimizations["channels_last"] and all(p.is_inference() for p in dec.net.parameters())


def test_float32_default_entered_while_a_loader_in_another_block_set_its_dtype():
    """transformers' and diffusers' ``from_pretrained(torch_dtype=float16)`` set the default dtype
    while a model is built inside create_*'s float32_default block. A block entered meanwhile in
    another thread (encode_image's preprocessing) took "another block runs" for "float32 already"
    and ran in float16 (before 68c0b9a it set float32). The caller's default is still restored."""
    from latentlab.encoders import float32_default

    a_in, b_done = threading.Event(), threading.Event()
    seen: list[torch.dtype] = []

    def loading() -> None:
        with float32_default():
            orig = torch.get_default_dtype()
            torch.set_default_dtype(torch.float16)  # as transformers' local_torch_dtype does
            a_in.set()
            b_done.wait(5)
            torch.set_default_dtype(orig)

    def encoding() -> None:
        a_in.wait(5)
        with float32_default():
            seen.append(torch.get_default_dtype())
        b_done.set()

    with default_dtype(torch.float64):
        run_threads(loading, encoding)
        after = torch.get_default_dtype()
    assert seen == [torch.float32] and after == torch.float64


@settings(derandomize=True, max_examples=25, deadline=None)
@given(st.sampled_from([torch.float32, torch.float64, torch.bfloat16]),
       st.lists(st.sampled_from([None, torch.float16, torch.float64]), min_size=1, max_size=4))  # fmt: skip
def test_float32_default_every_nested_block_starts_in_float32(default, sets):
    """Property: whatever a loader inside a block sets for a while (None: nothing; restored after,
    as transformers' local_torch_dtype does), a block nested in it runs in float32, and the
    caller's default is back after the outermost."""
    from latentlab.encoders import float32_default

    old = torch.get_default_dtype()
    torch.set_default_dtype(default)
    seen = []
    try:
        with float32_default():
            for dtype in sets:
                orig = torch.get_default_dtype()
                if dtype is not None:
                    torch.set_default_dtype(dtype)
                with float32_default():
                    seen.append(torch.get_default_dtype())
                torch.set_default_dtype(orig)
        got = torch.get_default_dtype()
    finally:
        torch.set_default_dtype(old)
    assert seen == [torch.float32] * len(sets) and got == default


def _inverting_decoder(refinable: bool | None):
    """A decoder of the tiny preset's space that inverts; ``refinable``: None, it cannot refine
    (no _refine); False, it refines but not now (as mini with inference-tensor weights); True, it can."""
    from latentlab.decoders.base import Decoder

    p = ll.get_preset("tiny")

    class _Dec(Decoder):
        name, space, dim, resolution = "inverting", p.space, p.dim, 8
        default_steps, default_guidance, default_batch_size = 1, 1.0, 4

        def noise_shape(self):
            return (1, 8, 8)

        def _decode(self, embeddings, noise, *, seeds, steps, guidance_scale):
            return np.full((embeddings.shape[0], 8, 8, 3), 128, np.uint8)

        def _invert(self, images, embeddings, *, steps, guidance_scale):
            return torch.zeros(len(images), 1, 8, 8)

    if refinable is not None:
        def _refine(self, images, embeddings, noise, *, iterations, steps, guidance_scale, on_step=None):
            return noise

        def _check_refinable(self):
            if not refinable:
                raise ArgumentError("refine needs gradients ... Fix: ..., or pass refine=0.")

        _Dec._refine, _Dec._check_refinable = _refine, _check_refinable
    return _Dec()


@pytest.mark.parametrize("refinable", [None, False])
def test_render_spec_refuses_refining_its_decoder_cannot_do_before_encoding_or_ready(tmp_path, images, refinable):
    """render_spec(decoder=...) with noise = "inverted" and invert_refine: a decoder that cannot
    refine (or not now: 68c0b9a's _check_refinable) was refused at the first picture's inversion,
    after the keyframes were encoded and ready() ran (the CLI's --save-spec written), where an
    eta or inversion it cannot do is refused before both."""
    spec = {"preset": "tiny", "steps": 1, "frames": 1, "noise": "inverted", "invert_refine": 2, "format": "gif",
            "keyframes": [{"image": str(images[0])}, {"image": str(images[1])}]}  # fmt: skip
    ready = []
    dec = _inverting_decoder(refinable)
    with pytest.raises(ArgumentError, match="refine=0"):
        ll.render_spec(spec, out_dir=tmp_path / "o", decoder=dec, ready=lambda: ready.append(1), progress=False)
    assert ready == [] and not (tmp_path / "o" / "manifest.json").exists()
    if refinable is False:  # invert_refine = 0: nothing to refine, rendered
        res = ll.render_spec({**spec, "invert_refine": 0}, out_dir=tmp_path / "p", decoder=dec, progress=False)
        assert len(res.frames) == 2


def test_a_link_in_out_dir_to_a_picture_outside_is_a_keyframe_when_not_a_name_it_writes(tmp_path, images):
    """4875ab6 checks a keyframe's own name in out_dir as well as the file it points to: a link
    there under a name the render does not write (not frame_*.png, contact_sheet.png or the video)
    is still a keyframe, and the picture it points to is left as it was."""
    out = tmp_path / "o"
    out.mkdir()
    os.symlink(images[0], out / "mine.png")
    before = images[0].read_bytes()
    spec = {"preset": "tiny", "steps": 2, "keyframes": [{"image": str(out / "mine.png")}, {"image": str(images[1]),
                                                                                           "frames": 1}]}  # fmt: skip
    result = ll.render_spec(spec, out_dir=out, output=tmp_path / "o.gif", progress=False)
    assert len(result.frames) == 2 and (out / "mine.png").is_symlink() and images[0].read_bytes() == before


def test_a_keyframe_link_to_a_link_named_like_a_frame_in_out_dir_is_refused(tmp_path, images):
    """k.png -> o/frame_00001.png -> a picture outside: the render replaces o/frame_00001.png with a
    new frame, so k.png then shows that frame (and the folder was refused ever after as a render of
    other keyframes). 4875ab6 checked the keyframe's own name and the file at the end of its links,
    not the links on the way."""
    out = tmp_path / "o"
    out.mkdir()
    os.symlink(images[0], out / "frame_00001.png")
    os.symlink(os.path.relpath(out / "frame_00001.png", tmp_path), tmp_path / "k.png")  # (a relative link)
    spec = {"preset": "tiny", "steps": 2, "keyframes": [{"image": str(tmp_path / "k.png")}, {"image": str(images[1]),
                                                                                              "frames": 1}]}  # fmt: skip
    with pytest.raises(ArgumentError, match="frame_00001.png in out_dir"):
        ll.render_spec(spec, out_dir=out, output=tmp_path / "o.gif", overwrite=True, progress=False)
    assert (out / "frame_00001.png").is_symlink() and not (out / "manifest.json").exists()
