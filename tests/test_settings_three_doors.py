"""One setting, three doors. A setting that the CLI (a flag), a spec (a field) and
Python (a keyword) all take accepts the same values at each door, and each refusal names the
argument as the user wrote it there."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import latentlab as ll
from latentlab.errors import ArgumentError, LatentlabError
from latentlab.space import tag
from latentlab.spec import load_spec

from conftest import FakeDecoder
from test_mini_runtime import _tiny_decoder_folder  # (the tiny mini weights its tests build)

KF = [{"text": "a cat"}, {"text": "a dog"}]


def _spec_takes(**fields) -> bool:
    try:
        load_spec({"keyframes": KF, "preset": "tiny", **fields})
        return True
    except LatentlabError:
        return False


# -- pacing_min_width (spec) / --pacing-min-width (CLI) / min_width= (even_pacing) --------------


@pytest.mark.parametrize("width", [np.float32(0.1), np.float16(0.25), np.float64(0.1), 0.1])
def test_even_pacing_takes_numpy_min_width_as_the_spec_does(width):
    """even_pacing(min_width=np.float32(0.1)) was refused ("must be a number in (0, 1), got
    np.float32(0.1)") while its tol= and a spec's pacing_min_width take numpy numbers."""
    assert _spec_takes(pacing="even", pacing_min_width=width)
    dec = FakeDecoder()
    z = tag(torch.nn.functional.normalize(torch.randn(2, 8, generator=torch.Generator().manual_seed(0)), dim=-1), "fake-space")
    traj = ll.Trajectory.chain(z, frames=4)
    paced = ll.even_pacing(traj, None, dec, metric="pixel", min_width=width, coarse=2, max_samples=2)
    same = ll.even_pacing(traj, None, FakeDecoder(), metric="pixel", min_width=float(width), coarse=2, max_samples=2)
    assert len(paced.trajectory) == len(traj)
    assert [list(x) for x in paced.samples] == [list(x) for x in same.samples]  # the placement the float gives


_near = st.floats(-0.5, 1.5, width=32)
_widths = st.one_of(
    _near.map(np.float32),
    _near.map(np.float64),
    _near,
    st.sampled_from([float("nan"), float("inf"), np.float32("nan"), 10**400, 0, 1, True, np.True_, "0.5"]),
)


@settings(derandomize=True, max_examples=40, deadline=None)
@given(_widths)
def test_min_width_same_refusals_at_the_spec_and_even_pacing(width):
    """A min_width that one door refuses the other refuses too (checked before any decode), and
    even_pacing's refusal names min_width, the spec's pacing_min_width."""
    spec_ok = _spec_takes(pacing="even", pacing_min_width=width)
    dec = FakeDecoder()
    z = tag(torch.nn.functional.normalize(torch.randn(2, 8, generator=torch.Generator().manual_seed(1)), dim=-1), "fake-space")
    traj = ll.Trajectory.chain(z, frames=3)
    try:
        ll.even_pacing(traj, None, dec, metric="pixel", min_width=width, coarse=1, max_samples=0)
        py_ok = True
    except ArgumentError as exc:
        assert str(exc).startswith("min_width must be")
        assert dec.calls == []  # refused before any decode
        py_ok = False
    assert py_ok == spec_ok


# -- upscale (spec) / --no-upscale (CLI) / upscale= (create_decoder('mini', ...)) -------------


def test_mini_from_pretrained_takes_numpy_bools_as_a_spec_does(tmp_path):
    """upscale=np.False_ (a spec's upscale takes it) and expert=np.False_ were refused by the mini
    loader as "must be None, True or False, got np.False_"; now they are False."""
    from latentlab.mini.runtime import MiniDecoder

    assert _spec_takes(preset="mini", upscale=np.False_)
    weights = _tiny_decoder_folder(tmp_path)
    dec = MiniDecoder.from_pretrained(weights, upscale=np.False_, expert=np.False_, resolution=64)
    plain = MiniDecoder.from_pretrained(weights, upscale=False, expert=False, resolution=64)
    assert dec.upscaler is None and dec.expert is None
    assert dec.describe() == plain.describe()
    for bad in ("yes", 1, 0):
        with pytest.raises(ArgumentError, match="upscale must be None, True or False"):
            MiniDecoder.from_pretrained(weights, upscale=bad)


# -- steps (spec: at most 1000) / --steps / steps= : past the decoder's own limit ---------------


def _few_steps_decoder(space=None, dim=None, limit=10):
    """FakeDecoder whose sampler takes at most ``limit`` steps (as Stable unCLIP's DDIM takes
    999 of a spec's 1000)."""
    dec = FakeDecoder()
    type(dec).max_steps = lambda self: limit
    if space is not None:
        dec.space, dec.dim = space, dim
    return dec


def test_render_refuses_steps_past_the_decoder_before_writing(tmp_path):
    """render(steps=20) with a decoder that takes 10 wrote its manifest and then failed at the
    first batch; the rerun with steps=10 was refused as "a different render (steps 20 -> 10)"."""
    dec = _few_steps_decoder()
    z = tag(torch.nn.functional.normalize(torch.randn(2, 8, generator=torch.Generator().manual_seed(0)), dim=-1), "fake-space")
    traj = ll.Trajectory.chain(z, frames=3)
    with pytest.raises(ArgumentError, match=r"steps must be <= 10"):
        ll.render(traj, dec, steps=20, out_dir=tmp_path / "r", progress=False)
    assert not (tmp_path / "r" / "manifest.json").exists() and dec.calls == []
    frames = ll.render(traj, dec, steps=10, out_dir=tmp_path / "r", progress=False)  # the corrected rerun
    assert frames.shape[0] == 3


def test_render_spec_says_steps_past_the_decoder_as_the_field_before_writing(tmp_path, tiny_encoder):
    dec = _few_steps_decoder(tiny_encoder.space, tiny_encoder.dim)
    spec = {"keyframes": [{"text": "a"}, {"text": "b"}], "preset": "tiny", "frames": 2, "format": "gif"}
    out = tmp_path / "r"
    with pytest.raises(ArgumentError, match=r"^'steps' is too many for this decoder: steps must be <= 10"):
        ll.render_spec({**spec, "steps": 20}, out_dir=out, decoder=dec, progress=False)
    assert not (out / "manifest.json").exists() and dec.calls == []
    result = ll.render_spec({**spec, "steps": 10}, out_dir=out, decoder=dec, progress=False)
    assert len(result.frames) == 3


def test_cli_names_steps_past_the_decoder_as_its_flag(tmp_path, monkeypatch, capsys, tiny_encoder):
    from latentlab import presets
    from latentlab.cli import main

    monkeypatch.setattr(presets, "create_decoder", lambda *a, **k: _few_steps_decoder(tiny_encoder.space, tiny_encoder.dim))
    monkeypatch.chdir(tmp_path)
    code = main(["interpolate", "text:a", "text:b", "--preset", "tiny", "--frames", "2", "--format", "gif", "--steps", "20", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "'steps' (--steps) is too many for this decoder" in err, err
    assert not any(tmp_path.rglob("manifest.json"))


# -- the command line says the flags, not ll.variations' and Decoder.invert's keywords ------------


def test_cli_says_variations_eta_and_invert_refine_as_flags(tmp_path, images, monkeypatch, capsys, no_models):
    """`variations --eta --preset tiny` said "mode='inverted' needs a decoder ... Use mode='reroll'",
    and `--invert-refine 2` on tiny "refine: decoder ...": keywords of ll.variations and
    Decoder.invert that the command line has no flag for."""
    from latentlab.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["variations", str(images[0]), "--eta", "0.3", "-n", "2", "--preset", "tiny", "-q"]) == 2
    err = capsys.readouterr().err
    assert "error: variations --eta needs a decoder that inverts images and samples with DDIM eta > 0; " \
           "StableUnCLIPDecoder does not. Drop --eta" in err and "mode=" not in err, err  # fmt: skip
    assert main(["interpolate", str(images[0]), str(images[1]), "--preset", "tiny", "--noise", "inverted",
                 "--invert-refine", "2", "-q"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "error: --invert-refine: decoder StableUnCLIPDecoder ('tiny') cannot refine inverted noise" in err, err
    assert "pass --invert-refine 0." in err and "refine=" not in err


def test_cli_generate_says_steps_past_the_decoder_as_its_flag(tmp_path, monkeypatch, capsys, tiny_encoder):
    """`generate --steps 20` with a decoder that takes 10 said "steps must be <= 10", a keyword
    the command line has no such name for."""
    from latentlab.cli import main

    monkeypatch.setattr(ll, "create_decoder", lambda *a, **k: _few_steps_decoder(tiny_encoder.space, tiny_encoder.dim))
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "a cat", "--preset", "tiny", "-n", "1", "--steps", "20", "-q"]) == 2
    err = capsys.readouterr().err
    assert "error: --steps must be <= 10 (the sampler's training timesteps), got 20." in err, err
    assert main(["generate", "a cat", "--preset", "tiny", "-n", "1", "--steps", "10", "-q"]) == 0  # the corrected rerun


# -- kept: a property of the documented promise (the refusal names the flag the user typed) --------

_BAD_FLAG_VALUES = st.one_of(
    st.tuples(st.just("--steps"), st.sampled_from(["0", "-3", "1001"])),
    st.tuples(st.just("--guidance"), st.sampled_from(["-1", "nan", "inf", "1e400"])),
    st.tuples(st.just("--eta"), st.sampled_from(["-0.1", "1.5", "nan"])),
    st.tuples(st.just("--fps"), st.sampled_from(["0", "241", "nan", "-5", "0.001"])),
    st.tuples(st.just("--size"), st.sampled_from(["7", "4097", "-8"])),
    st.tuples(st.just("--frames"), st.sampled_from(["0", "100001"])),
    st.tuples(st.just("--hold-last"), st.sampled_from(["-1", "100001"])),
    st.tuples(st.just("--batch-size"), st.sampled_from(["0", "-2"])),
    st.tuples(st.just("--seed"), st.sampled_from([str(2**63), str(-(2**63) - 1)])),
)


@settings(derandomize=True, max_examples=15, deadline=None)
@given(_BAD_FLAG_VALUES)
def test_cli_refusals_of_spec_settings_name_the_flag(flag_value):
    """Every rendering flag backed by a spec field is refused, before any model loads, with its
    field and its flag named ('fps' (--fps)); the same value in a spec names the field."""
    import contextlib
    import io

    from latentlab import presets
    from latentlab.cli import main

    flag, value = flag_value
    err = io.StringIO()
    with pytest.MonkeyPatch.context() as m, contextlib.redirect_stderr(err):
        for name in ("create_encoder", "create_decoder", "create_prior"):
            m.setattr(presets, name, lambda *a, **k: pytest.fail("a model was loaded"))
        assert main(["interpolate", "text:a", "text:b", "--preset", "tiny", f"{flag}={value}", "-q"]) == 2
    field = {"--guidance": "guidance_scale"}.get(flag, flag[2:].replace("-", "_"))
    assert f"'{field}' ({flag})" in err.getvalue(), err.getvalue()
    with pytest.raises(ArgumentError, match=f"^'{field}' must be"):
        load_spec({"keyframes": KF, "preset": "tiny", field: float(value) if flag in ("--guidance", "--eta", "--fps") else int(value)})


# -- guidance_scale = -0.0 (--guidance -0) is guidance 0 -----------------------------------------


def test_guidance_minus_zero_is_the_same_render_as_zero(tmp_path):
    """-0.0 passes every door's ">= 0" check (--guidance -0, a spec's -0.0, guidance_scale=-0.0)
    and draws as 0, but the fingerprint wrote "-0.0": the folder rendered with 0 refused it as
    "a different render (guidance_scale 0.0 -> -0.0)"."""
    assert _spec_takes(guidance_scale=-0.0)
    z = tag(torch.nn.functional.normalize(torch.randn(2, 8, generator=torch.Generator().manual_seed(0)), dim=-1), "fake-space")
    traj = ll.Trajectory.chain(z, frames=3)
    first = ll.render(traj, FakeDecoder(), guidance_scale=0, out_dir=tmp_path / "r", progress=False)
    dec = FakeDecoder()
    again = ll.render(traj, dec, guidance_scale=-0.0, out_dir=tmp_path / "r", progress=False)
    assert dec.calls == [] and np.array_equal(first, again)  # resumed: nothing drawn again
