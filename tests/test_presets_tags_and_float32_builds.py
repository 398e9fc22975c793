"""Read-only preset specs, tag's space names, the scrubber's own embeddings, and models and
preprocessing in float32 under another default dtype."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import latentlab as ll
from latentlab import presets
from latentlab.errors import ArgumentError

from conftest import FakeDecoder, default_dtype


def _picture(size: int = 40) -> np.ndarray:
    im = np.full((size, size, 3), 235, np.uint8)
    im[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = (200, 30, 30)
    im[:, : size // 5] = np.linspace(0, 255, size, dtype=np.uint8)[:, None, None]
    return im


# -- 1. the registered presets cannot be changed in place ------------------------------------------


@pytest.mark.parametrize("part", ["encoder", "decoder"])
def test_a_registered_presets_part_specs_cannot_be_changed_in_place(part, monkeypatch):
    """get_preset returned the registered Preset, whose encoder / decoder dicts could be changed
    in place: ``ll.get_preset("tiny").decoder["seed"] = 5`` silently changed the "tiny" preset
    for every later create_decoder in the process. Now they are read-only (a clear error naming
    the fix); a changed copy is made with dataclasses.replace."""
    monkeypatch.setattr(presets, "PRESETS", dict(presets.PRESETS))  # (pristine: keep the registry as it was)
    p = ll.get_preset("tiny")
    before = dict(getattr(p, part))
    spec = getattr(p, part)
    for change in (lambda: spec.__setitem__("seed", 5), lambda: spec.update(seed=5), lambda: spec.pop("kind"),
                   lambda: spec.setdefault("x", 1), spec.clear, spec.popitem, lambda: spec.__delitem__("kind")):  # fmt: skip
        with pytest.raises(ArgumentError, match=r"read-only.*dataclasses\.replace"):
            change()
    assert dict(getattr(ll.get_preset("tiny"), part)) == before
    # a changed copy: the registered preset is untouched
    changed = dataclasses.replace(p, **{part: {**spec, "seed": 5}})
    assert changed.__dict__[part]["seed"] == 5 and getattr(ll.get_preset("tiny"), part) == before
    mine = spec.copy()
    mine["seed"] = 5  # .copy() is a plain dict to change
    assert type(mine) is dict and getattr(ll.get_preset("tiny"), part) == before


def test_a_presets_specs_are_copies_of_the_dicts_given(monkeypatch):
    """register_preset kept the caller's dicts: changing the dict after registering changed the preset."""
    monkeypatch.setattr(presets, "PRESETS", dict(presets.PRESETS))
    enc, dec = {"kind": "open_clip_tiny", "seed": 0}, {"kind": "stable_unclip_tiny", "seed": 0}
    p = presets.register_preset(dataclasses.replace(presets.get_preset("tiny"), name="audit39-i", encoder=enc, decoder=dec))
    enc["seed"], dec["seed"] = 7, 7
    assert presets.get_preset("audit39-i") is p
    assert p.encoder == {"kind": "open_clip_tiny", "seed": 0} and p.decoder["seed"] == 0


def test_read_only_specs_still_read_copy_pickle_and_serialise_as_dicts():
    """What code reading presets does keeps working: equality with a dict, ** unpacking, |,
    to_dict (plain dicts, JSON), pickle and deepcopy (equal presets), and a prior of None."""
    p = ll.get_preset("tiny")
    assert isinstance(p.encoder, dict) and p.encoder == {**p.encoder} and (p.encoder | {"x": 1})["x"] == 1
    d = p.to_dict()
    assert type(d["encoder"]) is dict and type(d["decoder"]) is dict
    assert json.loads(json.dumps(d)) == json.loads(json.dumps(dataclasses.asdict(p)))
    for q in (pickle.loads(pickle.dumps(p)), copy.deepcopy(p)):
        assert q == p and q.decoder == p.decoder
        with pytest.raises(ArgumentError, match="read-only"):
            q.decoder["seed"] = 1
    assert ll.get_preset("mini").prior is not None and dataclasses.replace(p, prior=None).prior is None


# -- 2. tag takes a space's name ------------------------------------------------------------------------


def test_tag_refuses_a_space_that_is_not_a_string():
    """``ll.tag(z, preset)`` tagged z with str(preset), a 700-character text no decoder matched;
    ``ll.tag(z, 0)`` with "0". Now a clear error naming space and what to pass (a preset's or
    encoder's .space where the object has one); z is left untagged."""
    z = torch.nn.functional.normalize(torch.randn(2, 32, generator=torch.Generator().manual_seed(0)), dim=-1)
    p = ll.get_preset("tiny")
    with pytest.raises(ArgumentError, match=r"space must be a CLIP space name \(a str\).*got Preset; pass its \.space \('tiny-random'\)"):
        ll.tag(z, p)
    for bad in (0, 1.5, b"mini", ["mini"]):
        with pytest.raises(ArgumentError, match=r"space must be a CLIP space name.*space_of"):
            ll.tag(z, bad)
    assert ll.space_of(z) is None
    assert ll.space_of(ll.tag(z, p.space)) == "tiny-random" and ll.tag(z, None) is z


@settings(derandomize=True, max_examples=20, deadline=None)
@given(space=st.text(min_size=1, max_size=30))
def test_tag_records_any_string_space_as_it_is(space):
    z = ll.tag(torch.zeros(1, 4), space)
    assert ll.space_of(z) == space and type(ll.space_of(z)) is str


# -- 3. the scrubber keeps its own copy of the embeddings -----------------------------------------------


def test_scrubber_keeps_a_copy_of_a_tensor_path():
    """A Scrubber built from a (T, d) tensor kept the caller's tensor: changing it in place changed
    the frames not rendered yet while the cached ones kept the old ones. Now it keeps a copy (as
    Trajectory copies its keyframes): its frames stay those of the path as it was given."""
    dec = FakeDecoder()
    g = torch.Generator().manual_seed(0)
    for tagged in (True, False):
        z = torch.nn.functional.normalize(torch.randn(4, 8, generator=g), dim=-1)
        z = ll.tag(z, dec.space) if tagged else z
        want = ll.scrub(z.clone(), dec, seed=1).frames()
        s = ll.scrub(z, dec, seed=1)
        first = s.frame(0)
        z.mul_(-1)  # the caller reuses its tensor
        np.testing.assert_array_equal(s.frame(0), first)
        np.testing.assert_array_equal(s.frames(), want)
        assert ll.space_of(s.embeddings) == dec.space


# -- 4. models are built in float32 whatever torch's default dtype ----------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_tiny_encoder_weights_do_not_follow_the_default_dtype(dtype):
    """The tiny encoder drew its random weights in torch's default dtype: under float64 it had
    other weights (embeddings 0.6 apart) while its cache fingerprint stayed tiny-seed0. Now the
    same seed gives the same weights, bit for bit."""
    want = ll.create_encoder("tiny")
    with default_dtype(dtype):
        got = ll.create_encoder("tiny")
    assert torch.get_default_dtype() == torch.float32
    for (k, a), b in zip(want.model.state_dict().items(), got.model.state_dict().values()):
        assert a.dtype == b.dtype and torch.equal(a, b), k
    assert got.fingerprint() == want.fingerprint()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_tiny_decoder_weights_do_not_follow_the_default_dtype(dtype):
    """The tiny unCLIP decoder drew its random weights in torch's default dtype (frames 255 levels apart)."""
    want = ll.create_decoder("tiny")
    with default_dtype(dtype):
        got = ll.create_decoder("tiny")
    assert torch.get_default_dtype() == torch.float32
    a, b = want.pipe.unet.state_dict(), got.pipe.unet.state_dict()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


def test_mini_clip_checkpoint_loads_whole_under_a_bfloat16_default_dtype():
    """open_clip loaded the mini CLIP's checkpoint into bfloat16 weights (the default dtype)
    before latentlab's .float(), so the mini encoder's embeddings were rounded (8e-4 off)."""
    from latentlab.mini.models import create_clip, weights_path

    path = weights_path("mini_clip.safetensors")
    want = create_clip(path)[0].state_dict()
    with default_dtype(torch.bfloat16):
        got = create_clip(path)[0].state_dict()
    assert torch.get_default_dtype() == torch.float32
    for k in want:
        assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]), k


def test_the_callers_default_dtype_is_restored_when_a_build_fails(monkeypatch):
    """The float32 default is the build's only: a builder that fails leaves the caller's default."""
    from latentlab import encoders

    with default_dtype(torch.float64):
        with pytest.raises(ArgumentError, match="pretrained="):
            encoders._load_open_clip("ViT-B-32")  # no weights named: refused
        assert torch.get_default_dtype() == torch.float64
        with encoders.float32_default():
            assert torch.get_default_dtype() == torch.float32
        assert torch.get_default_dtype() == torch.float64


# -- 5. encode_image's preprocessing ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_image_embeddings_do_not_follow_the_default_dtype(dtype):
    """torchvision's ToTensor in open_clip's preprocess converts to the default dtype: under
    float16 the image embeddings moved by 3.5e-3. Now the picture is preprocessed in float32."""
    enc = ll.create_encoder("tiny")
    im = _picture()
    want = enc.encode_image(im)
    with default_dtype(dtype):
        got = enc.encode_image(im)
    assert torch.get_default_dtype() == torch.float32
    assert got.dtype == torch.float32 and torch.equal(got, want)
