"""Steps past a decoder's sampler at each door (its default_steps too), the CLI's --steps rewrite,
guidance -0.0, and the largest side each image and video format holds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import latentlab as ll
from latentlab.errors import ArgumentError

from conftest import FakeDecoder


def _few_steps_decoder(space=None, dim=None, limit=10):
    dec = FakeDecoder()
    type(dec).max_steps = lambda self: limit
    if space is not None:
        dec.space, dec.dim = space, dim
    return dec


def _spec_file(tmp_path, **fields):
    spec = {"keyframes": [{"text": "a"}, {"text": "b"}], "preset": "tiny", "frames": 2, "format": "gif", **fields}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def test_cli_render_spec_steps_past_the_decoder_names_no_flag_never_typed(tmp_path, monkeypatch, capsys, tiny_encoder):
    """`latentlab render spec.json` whose spec says steps = 20, with a decoder that takes 10: the
    refusal is the spec's field, not a --steps the user never typed (as _with_flags leaves the
    file's fields unflagged for render)."""
    from latentlab import presets
    from latentlab.cli import main

    monkeypatch.setattr(presets, "create_decoder", lambda *a, **k: _few_steps_decoder(tiny_encoder.space, tiny_encoder.dim))
    monkeypatch.chdir(tmp_path)
    path = _spec_file(tmp_path, steps=20)
    assert main(["render", str(path), "-q"]) == 2
    err = capsys.readouterr().err
    assert "'steps' is too many for this decoder: steps must be <= 10" in err, err
    assert "--steps" not in err, err
    assert not any(tmp_path.rglob("manifest.json"))
    # the flag given: said as the flag
    assert main(["render", str(path), "--steps", "30", "-q"]) == 2
    err = capsys.readouterr().err
    assert "'steps' (--steps) is too many for this decoder: --steps must be <= 10" in err, err


def test_cli_render_spec_invert_refine_names_the_field_not_a_flag_never_typed(tmp_path, images, monkeypatch, capsys,
                                                                               no_models):
    """`latentlab render spec.json` whose spec asks invert_refine = 2 of a decoder that cannot refine said
    "--invert-refine: decoder ...", a flag never typed (35e1d49's rewrite of Decoder.invert's "refine:");
    the file's field is named, and with the flag given, the flag."""
    from latentlab.cli import main

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"keyframes": [{"image": str(images[0])}, {"image": str(images[1])}], "preset": "tiny",
                                "frames": 2, "format": "gif", "noise": "inverted", "invert_refine": 2}))
    assert main(["render", str(path), "-q"]) == 2
    err = capsys.readouterr().err
    assert "error: 'invert_refine': decoder StableUnCLIPDecoder ('tiny') cannot refine inverted noise" in err, err
    assert main(["render", str(path), "--invert-refine", "3", "-q"]) == 2
    err = capsys.readouterr().err
    assert "error: --invert-refine: decoder StableUnCLIPDecoder ('tiny') cannot refine inverted noise" in err, err


def _traj(seed=0, frames=3):
    from latentlab.space import tag

    z = tag(torch.nn.functional.normalize(torch.randn(2, 8, generator=torch.Generator().manual_seed(seed)), dim=-1),
            "fake-space")
    return ll.Trajectory.chain(z, frames=frames)


def test_render_refuses_a_default_steps_past_the_decoder_before_writing(tmp_path):
    """A decoder made with default_steps past its sampler (e.g. Stable unCLIP's DDIM, which takes 999, with
    default_steps=1000) and render(steps=None): the manifest was written (steps 20) before the first batch
    failed, so the corrected rerun (default 10) was refused as "a different render (steps 20 -> 10)", as
    35e1d49 fixed for an explicit steps=."""
    dec = _few_steps_decoder()
    type(dec).default_steps = 20
    with pytest.raises(ArgumentError, match=r"steps must be <= 10"):
        ll.render(_traj(), dec, out_dir=tmp_path / "r", progress=False)
    assert not (tmp_path / "r" / "manifest.json").exists() and dec.calls == []
    type(dec).default_steps = 10  # the corrected decoder
    assert ll.render(_traj(), dec, out_dir=tmp_path / "r", progress=False).shape[0] == 3


def test_render_spec_refuses_a_default_steps_past_the_decoder_before_ready(tmp_path, tiny_encoder):
    """A spec without steps and a decoder whose default_steps is past its sampler: refused, naming
    default_steps, before ready() (the CLI's --save-spec) and before anything is written in the folder."""
    dec = _few_steps_decoder(tiny_encoder.space, tiny_encoder.dim)
    type(dec).default_steps = 20
    spec = {"keyframes": [{"text": "a"}, {"text": "b"}], "preset": "tiny", "frames": 2, "format": "gif"}
    told = []
    with pytest.raises(ArgumentError, match=r"^steps=None takes the decoder's default_steps.*steps must be <= 10"):
        ll.render_spec(spec, out_dir=tmp_path / "r", decoder=dec, encoder=tiny_encoder, progress=False,
                       ready=lambda: told.append(1))  # fmt: skip
    assert told == [] and dec.calls == [] and not any((tmp_path / "r").rglob("*.json"))


def test_a_gif_wider_than_it_holds_is_refused_as_such_not_as_a_long_hold(tmp_path):
    """Frames 65536 pixels wide (a gif's sides are 16-bit): Pillow's OverflowError was said as "a gif shows
    one picture for at most 655.35 s ... shorten hold_first", a hold never asked for; now the side is named,
    before anything is written."""
    frames = np.zeros((2, 1, 65536, 3), np.uint8)
    frames[1] = 255
    with pytest.raises(ArgumentError, match=r"^a gif is at most 65535 pixels per side, and these frames would be 65536"):
        ll.write_video(frames, tmp_path / "v.gif", fps=10)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix, side", [("webp", 16384), ("jpg", 65501), ("gif", 65536)])
def test_save_image_past_its_formats_side_is_refused_before_writing(tmp_path, suffix, side):
    """save_image of a picture wider than its format holds (libwebp 16383, libjpeg 65500, a gif 65535)
    raised Pillow's raw ValueError / OSError / OverflowError; now an ArgumentError naming the limit
    and the fix, with nothing written."""
    with pytest.raises(ArgumentError, match=r"pixels per side.*Fix: save it as \.png"):
        ll.save_image(np.zeros((1, side, 3), np.uint8), tmp_path / f"x.{suffix}")
    assert list(tmp_path.iterdir()) == []
    ll.save_image(np.zeros((1, side - 1, 3), np.uint8), tmp_path / f"x.{suffix}")  # the largest it holds


# -- kept: properties of documented promises (pass before and after) --------------------------------

_guidance = st.one_of(
    st.floats(min_value=0.0, max_value=1e300, allow_nan=False, allow_infinity=False).filter(lambda g: str(g) != "-0.0"),
    st.integers(0, 10**6),
    st.floats(0.0, 50.0, width=32).map(np.float32),
)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(_guidance)
def test_sampling_settings_record_an_ordinary_guidance_as_it_was(g):
    """35e1d49's ``+ 0.0`` turns only -0.0 into 0.0: every other guidance is recorded (and fingerprinted)
    byte for byte as float(g), so no existing folder's key changes."""
    from latentlab.render import sampling_settings

    out = sampling_settings(3, g, FakeDecoder())
    assert type(out["guidance_scale"]) is float
    assert json.dumps(out["guidance_scale"]) == json.dumps(float(g))


_PREFIXES = st.sampled_from(["", "x: ", "(", "inversion ", "'", "super_res_", "max_", "--", "-", "prior_", "time",
                             "'steps' is too many for this decoder: "])


@settings(derandomize=True, max_examples=40, deadline=None)
@given(_PREFIXES, st.sampled_from(["interpolate", "render", "generate", "variations", "morph"]), st.booleans())
def test_cli_says_steps_as_the_flag_only_for_the_decoders_bare_steps_and_a_flag_that_can_be_typed(prefix, command, flag):
    """The CLI's rewrite of a decoder's "steps must be <= N" into "--steps must be <= N" touches no other
    name's limit (super_res_steps, max_steps, ...), no "--steps" already said, and, for `render`, only a
    --steps given (a spec file's steps is its field)."""
    import argparse

    from latentlab.cli import _with_flags, build_parser

    tail = "steps must be <= 10 (the sampler's training timesteps), got 20."
    args = argparse.Namespace(steps=20 if flag else None)
    out = _with_flags(prefix + tail, build_parser(), command, args)
    flagged = prefix[-1:] in ("", " ", "(") and (command != "render" or flag)
    assert out.endswith(tail), out
    # (the spec field's "'steps'" may gain its flag, "'steps' (--steps)", where that flag can be typed)
    assert out[: -len(tail)].replace(" (--steps)", "") == prefix + ("--" if flagged else ""), out
