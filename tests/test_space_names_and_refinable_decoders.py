"""Space names read back from numpy, decoders optimized under inference_mode, refine refused before
any inversion, and float32_default blocks in several threads."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import pickle
import threading

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import default_dtype, red_square, run_threads, tiny_mini_decoder, unit_rows


# -- tag(): a space name read back from an .npz ------------------------------------------------------


def test_tag_takes_a_space_name_read_back_from_an_npz():
    """A space saved beside its embeddings with ``np.savez`` reads back as a 0-d string array:
    tag() took it as its str before 561942c, and then refused it ("got ndarray")."""
    import latentlab as ll

    z = ll.tag(unit_rows(2, 8, 0), "openai/ViT-L-14")
    buf = io.BytesIO()
    np.savez(buf, z=z.numpy(), space=ll.space_of(z))
    buf.seek(0)
    with np.load(buf) as f:
        back = ll.tag(torch.from_numpy(f["z"]), f["space"])
    assert ll.space_of(back) == "openai/ViT-L-14" and type(ll.space_of(back)) is str
    assert type(ll.space_of(ll.tag(unit_rows(1, 8, 1), np.str_("mini")))) is str
    buf.seek(0)
    with np.load(buf) as f:  # a Trajectory's space= too: its to_dict() was not JSON ("ndarray")
        path = ll.Trajectory(torch.from_numpy(f["z"]), space=f["space"], frames=3)
    assert path.space == "openai/ViT-L-14" and type(path.space) is str
    assert json.loads(json.dumps(path.to_dict()))["space"] == "openai/ViT-L-14"
    for bad in (np.array(["mini", "x"]), np.array(3), np.array(b"mini")):  # not one name: still refused
        with pytest.raises(ll.ArgumentError, match="space must be a CLIP space name"):
            ll.tag(unit_rows(1, 8, 1), bad)


# -- MiniDecoder.optimize() under the caller's inference_mode(), then refining -----------------------


def test_refine_after_optimize_under_inference_mode():
    """``optimize(channels_last=True)`` converts the weights: under the caller's
    ``torch.inference_mode()`` (a notebook cell wrapped in it) they became inference tensors,
    and refining was refused telling the user to build the decoder outside inference_mode(),
    which they had done. optimize() now runs outside it, as from_pretrained does."""
    want = tiny_mini_decoder().optimize(channels_last=True)
    want = want.invert(red_square(), unit_rows(1, 16, 6), steps=2, refine=1, progress=False)
    dec = tiny_mini_decoder()
    with torch.inference_mode():
        dec.optimize(channels_last=True)
        inside = dec.invert(red_square(), unit_rows(1, 16, 6), steps=2, refine=1, progress=False)
    outside = dec.invert(red_square(), unit_rows(1, 16, 6), steps=2, refine=1, progress=False)
    assert torch.equal(inside, want) and torch.equal(outside, want)
    assert not any(p.is_inference() for p in dec.net.parameters())


# -- float32_default() in two threads at once ------------------------------------------------------


def test_float32_default_blocks_in_two_threads_keep_float32_until_the_last_ends():
    """torch's default dtype is process-wide: a second thread entering while the first's block
    ran saw float32 already and did nothing; the first, ending, restored float64 under the
    second, whose pictures were then preprocessed in float64. Now the last block to end
    restores the caller's default."""
    from latentlab.encoders import float32_default

    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[torch.dtype] = []

    def first() -> None:
        with float32_default():
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def second() -> None:
        a_in.wait(5)
        with float32_default():
            b_in.set()
            a_out.wait(5)
            seen.append(torch.get_default_dtype())

    with default_dtype(torch.float64):
        run_threads(first, second)
        after = torch.get_default_dtype()
    assert seen == [torch.float32] and after == torch.float64


@settings(derandomize=True, max_examples=25, deadline=None)
@given(st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]),
       st.lists(st.booleans(), min_size=1, max_size=4))  # fmt: skip
def test_float32_default_nested_and_failing_blocks_restore_the_default(default, fails):
    """Property: nested blocks, any of which may raise, run in float32 and leave the caller's
    default as it was."""
    from latentlab.encoders import float32_default

    old = torch.get_default_dtype()
    torch.set_default_dtype(default)
    try:
        with contextlib.ExitStack() as stack:
            for fail in fails:
                try:
                    with float32_default():
                        assert torch.get_default_dtype() == torch.float32
                        stack.enter_context(float32_default())
                        assert torch.get_default_dtype() == torch.float32
                        if fail:
                            raise KeyError("boom")
                except KeyError:
                    pass
        got = torch.get_default_dtype()
    finally:
        torch.set_default_dtype(old)
    assert got == default


# -- read-only preset specs: every change refused, every read as before ------------------------------

_CHANGES = {
    "setitem": lambda d: d.__setitem__("seed", 5),
    "delitem": lambda d: d.__delitem__("kind"),
    "ior": lambda d: d.__ior__({"seed": 5}),
    "clear": lambda d: d.clear(),
    "pop": lambda d: d.pop("kind"),
    "pop default": lambda d: d.pop("absent", None),
    "popitem": lambda d: d.popitem(),
    "setdefault": lambda d: d.setdefault("new", 1),
    "update": lambda d: d.update(seed=5),
}


@settings(derandomize=True, max_examples=20, deadline=None)
@given(st.lists(st.sampled_from(sorted(_CHANGES)), min_size=1, max_size=4), st.sampled_from(["encoder", "decoder"]))
def test_a_presets_specs_refuse_every_change_and_read_as_plain_dicts(changes, part):
    """Property: every in-place change of a registered preset's spec is refused (naming
    dataclasses.replace) and leaves it as it was; what users do to read or copy one works."""
    import latentlab as ll

    p = ll.get_preset("tiny")
    spec = getattr(p, part)
    before = dict(spec)
    for change in changes:
        with pytest.raises(ll.ArgumentError, match=r"dataclasses\.replace"):
            _CHANGES[change](spec)
    assert dict(spec) == before and getattr(ll.get_preset("tiny"), part) == before
    assert json.loads(json.dumps(spec)) == before == json.loads(json.dumps(p.to_dict()))[part]
    for plain in ({**spec}, dict(spec), spec | {}, spec.copy()):
        assert type(plain) is dict and plain == before
    assert copy.deepcopy(p) == p == pickle.loads(pickle.dumps(p)) == dataclasses.replace(p)
    mine = dataclasses.replace(p, **{part: {**spec, "seed": 7}})
    assert getattr(mine, part) == {**before, "seed": 7} and getattr(p, part) == before


def test_refine_with_inference_tensor_weights_is_refused_before_any_inversion(monkeypatch):
    """The refusal of bad5c9b came after the first image's inversion (its sampler's steps, behind
    a progress bar): invert now asks before any work, as it does for decoders that cannot refine."""
    from latentlab.errors import ArgumentError

    with torch.inference_mode():
        dec = tiny_mini_decoder()
    calls = []
    monkeypatch.setattr(dec, "_invert", lambda im, *a, **k: calls.append(1) or torch.zeros(len(im), *dec.noise_shape()))
    for images in (red_square(), [red_square(32), red_square(16)]):
        with pytest.raises(ArgumentError, match=r"inference_mode\(\).*refine=0"):
            dec.invert(images, unit_rows(len(images) if isinstance(images, list) else 1, 16, 6), steps=2, refine=1)
    assert calls == [] and all(p.requires_grad for p in dec.net.parameters())
