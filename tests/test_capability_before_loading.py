"""What a preset's decoder cannot do (eta > 0, inverted noise, refining it) is
refused before any model loads where the preset tells, with the words of the refusal the
loaded decoder gives; a preset whose decoder only tells once loaded keeps that refusal."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import latentlab as ll
from latentlab import presets
from latentlab.cli import main
from latentlab.errors import ArgumentError

TEXTS = {"keyframes": [{"text": "a red circle"}, {"text": "a blue square"}], "frames": 2, "steps": 2}


def _preset(monkeypatch, name: str, **decoder) -> presets.Preset:
    """The tiny preset under another name with the decoder spec ``decoder``, registered for the test."""
    p = dataclasses.replace(presets.get_preset("tiny"), name=name, decoder=decoder)
    monkeypatch.setitem(presets.PRESETS, name, p)
    return p


def test_render_spec_refuses_eta_of_a_preset_without_it_before_any_model_loads(tmp_path, no_models):
    # eta > 0 on `tiny` (Stable unCLIP: no DDIM eta) was refused once the encoder and the decoder had loaded
    with pytest.raises(ArgumentError) as exc:
        ll.render_spec({**TEXTS, "preset": "tiny", "eta": 0.3}, out_dir=tmp_path / "r", progress=False)
    assert str(exc.value) == ("eta > 0 needs a decoder that samples with DDIM eta (mini); StableUnCLIPDecoder does not. "
                              "Use eta=0 (CLI: leave --eta out) and vary the seed instead.")  # fmt: skip
    assert not (tmp_path / "r" / "manifest.json").exists()


def test_the_early_refusals_say_what_the_loaded_decoder_says(tmp_path, tiny_encoder, tiny_decoder, monkeypatch, images):
    """The refusal before loading and the one of a loaded decoder (render_spec given it) are the same words."""
    spec = {**TEXTS, "preset": "tiny", "eta": 0.3}
    with pytest.raises(ArgumentError) as loaded:
        ll.render_spec(spec, encoder=tiny_encoder, decoder=tiny_decoder, out_dir=tmp_path / "a", progress=False)
    monkeypatch.setattr(presets, "create_encoder", lambda *a, **k: pytest.fail("a model was loaded"))
    with pytest.raises(ArgumentError) as early:
        ll.render_spec(spec, out_dir=tmp_path / "b", progress=False)
    assert str(early.value) == str(loaded.value) and "eta > 0 needs a decoder that samples with DDIM eta" in str(early.value)
    # refining inverted noise (only mini can): the words of Decoder.invert's refusal
    refine = {"preset": "tiny", "keyframes": [{"image": str(images[0])}, {"image": str(images[1])}], "frames": 2,
              "steps": 2, "noise": "inverted", "invert_refine": 3}  # fmt: skip
    with pytest.raises(ArgumentError) as early:
        ll.render_spec(refine, out_dir=tmp_path / "c", progress=False)
    with pytest.raises(ArgumentError) as loaded:
        tiny_decoder.invert(np.zeros((8, 8, 3), np.uint8), tiny_encoder.encode_text(["x"]), refine=3)
    assert str(early.value) == str(loaded.value) and "cannot refine inverted noise" in str(early.value)


def test_cli_renders_refuse_eta_and_refine_a_preset_cannot_before_any_model_loads(tmp_path, images, monkeypatch, capsys,
                                                                                   no_models):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    for argv in (["interpolate", "text:a", "text:b", "--preset", "tiny", "--eta", "0.3", "-q"],
                 ["morph", str(images[0]), "--to", "a cat", "--preset", "tiny", "--eta", "0.5", "-q"]):
        assert main(argv) == 2
        assert "eta > 0 needs a decoder that samples with DDIM eta (mini); StableUnCLIPDecoder does not" in capsys.readouterr().err
    spec = tmp_path / "s.toml"
    spec.write_text(f'preset = "tiny"\neta = 0.2\n[[keyframes]]\ntext = "a"\n[[keyframes]]\nimage = "{images[0].as_posix()}"\n')
    assert main(["render", str(spec), "-q", "--save-spec", str(tmp_path / "saved.toml")]) == 2
    assert "needs a decoder that samples with DDIM eta" in capsys.readouterr().err
    assert not (tmp_path / "saved.toml").exists()
    assert main(["morph", str(images[0]), "--to", "a cat", "--preset", "tiny", "--noise", "inverted",
                 "--invert-refine", "2", "-q"]) == 2  # fmt: skip
    assert "cannot refine inverted noise" in capsys.readouterr().err


def test_variations_eta_refuses_a_preset_that_cannot_before_any_model_loads(tmp_path, images, monkeypatch, capsys, no_models):
    # `variations --eta --preset tiny` loaded the encoder and the decoder, then ll.variations refused
    monkeypatch.chdir(tmp_path)
    assert main(["variations", str(images[0]), "--eta", "0.3", "-n", "2", "--preset", "tiny", "-q"]) == 2
    err = capsys.readouterr().err
    assert "needs a decoder that inverts images and samples with DDIM eta > 0; StableUnCLIPDecoder does not" in err


def test_inverted_noise_a_presets_sampler_cannot_have_is_refused_before_any_model_loads(tmp_path, images, monkeypatch):
    # a preset whose diffusers decoder samples with DPM-Solver++ (or Kandinsky's own sampler) cannot invert
    spec = {"keyframes": [{"image": str(images[0])}, {"image": str(images[1])}], "frames": 2, "steps": 2, "noise": "inverted"}
    for name, decoder in (("tiny-dpm", {"kind": "stable_unclip_tiny", "scheduler": "DPM++"}),
                          ("tiny-kandinsky-own", {"kind": "kandinsky_tiny", "scheduler": None})):
        p = _preset(monkeypatch, name, **decoder)
        loaded = ll.create_decoder(p)  # (the refusal of the loaded decoder, for its words)
        assert not loaded.supports_inversion
        with pytest.raises(ArgumentError) as after, monkeypatch.context() as m:
            m.setattr(presets, "create_decoder", lambda *a, **k: loaded)
            ll.render_spec({**spec, "preset": name}, out_dir=tmp_path / f"{name}-loaded", progress=False)
        with pytest.raises(ArgumentError) as before, monkeypatch.context() as m:
            for what in ("create_encoder", "create_decoder", "create_prior"):
                m.setattr(presets, what, lambda *a, **k: pytest.fail("a model was loaded"))
            ll.render_spec({**spec, "preset": name}, out_dir=tmp_path / name, progress=False)
        assert str(before.value) == str(after.value)
        assert f"noise = \"inverted\" needs a decoder that can invert images; {type(loaded).__name__} ({name!r}) cannot" \
            in str(before.value)  # fmt: skip


def test_a_decoder_only_its_loading_tells_about_is_still_refused_once_loaded(tmp_path, monkeypatch, tiny_decoder):
    """A builder of the user's (for a kind of theirs, or replacing a built-in one): nothing is
    known before it builds, so the decoder it builds is asked, as before."""
    loaded = []

    def own(preset, **kwargs):
        loaded.append(preset.name)
        return tiny_decoder

    presets._load_builders()
    monkeypatch.setitem(presets._DECODER_BUILDERS, "audit38_own", own)
    _preset(monkeypatch, "tiny-own", kind="audit38_own")
    with pytest.raises(ArgumentError, match="needs a decoder that samples with DDIM eta"):
        ll.render_spec({**TEXTS, "preset": "tiny-own", "eta": 0.3}, out_dir=tmp_path / "r", progress=False)
    assert loaded == ["tiny-own"]
    monkeypatch.setitem(presets._DECODER_BUILDERS, "stable_unclip_tiny", own)  # replacing the built-in builder
    with pytest.raises(ArgumentError, match="needs a decoder that samples with DDIM eta"):
        ll.render_spec({**TEXTS, "preset": "tiny", "eta": 0.3}, out_dir=tmp_path / "r2", progress=False)
    assert loaded == ["tiny-own", "tiny"]


def test_decoder_can_knows_nothing_of_a_users_builder(monkeypatch):
    presets._load_builders()
    monkeypatch.setitem(presets._DECODER_BUILDERS, "audit38_own", lambda preset, **kwargs: None)
    _preset(monkeypatch, "tiny-own", kind="audit38_own")
    assert [presets.decoder_can("tiny-own", f) for f in ("eta", "invert", "refine")] == [None, None, None]
    monkeypatch.setitem(presets._DECODER_BUILDERS, "stable_unclip_tiny", lambda preset, **kwargs: None)
    assert presets.decoder_can("tiny", "eta") is None and presets._decoder_class("tiny") is None


def test_a_decoder_given_that_cannot_invert_is_refused_before_encoding_and_ready(tmp_path, images, tiny_encoder,
                                                                                 tiny_decoder, monkeypatch):  # fmt: skip
    # the loaded decoder's inversion was checked after the keyframes were encoded and ready() was called
    # (the CLI writes --save-spec there: "once every check has passed")
    monkeypatch.setattr(type(tiny_decoder), "supports_inversion", property(lambda self: False))
    for method in ("encode_image", "encode_text"):
        monkeypatch.setattr(tiny_encoder, method, lambda *a, _m=method, **k: pytest.fail(f"{_m} before the refusal"))
    called = []
    spec = {"preset": "tiny", "keyframes": [{"image": str(images[0])}, {"text": "a"}], "frames": 2, "noise": "inverted"}
    with pytest.raises(ArgumentError, match="noise = \"inverted\" needs a decoder that can invert images"):
        ll.render_spec(spec, encoder=tiny_encoder, decoder=tiny_decoder, out_dir=tmp_path / "r", progress=False,
                       ready=lambda: called.append(1))  # fmt: skip
    assert called == []


@settings(derandomize=True, max_examples=5, deadline=None)
@given(kind=st.sampled_from(["stable_unclip_tiny", "kandinsky_tiny", "karlo_tiny"]),
       scheduler=st.sampled_from(["ddim", "DDIM", "dpm++", "unclip", None, "euler", 3]))
def test_what_a_preset_tells_before_loading_is_what_its_loaded_decoder_does(kind, scheduler):
    """decoder_can never contradicts the decoder the preset builds (None: not known before it loads)."""
    p = dataclasses.replace(presets.get_preset("tiny"), name="t", resolution=32 if kind == "karlo_tiny" else 64,
                            decoder={"kind": kind, "scheduler": scheduler})  # fmt: skip
    told = {f: presets.decoder_can(p, f) for f in ("eta", "invert", "refine")}
    try:
        dec = ll.create_decoder(p)
    except ArgumentError:
        assert told["invert"] is None  # a scheduler its class refuses: said as it loads
        return
    does = {"eta": hasattr(dec, "decode_eta"), "invert": dec.supports_inversion, "refine": dec.supports_refine}
    assert all(told[f] in (None, does[f]) for f in does), (told, does)
    assert told["eta"] is False and told["refine"] is False


def test_mini_and_the_shipped_presets_tell_before_loading():
    from latentlab.mini.runtime import MiniDecoder

    assert [presets.decoder_can("mini", f) for f in ("eta", "invert", "refine")] == [True, True, True]
    assert presets._decoder_class("mini") is MiniDecoder
    for name in ("tiny", "sd21-unclip-h", "sd21-unclip-l", "kandinsky-2.2", "karlo"):
        assert [presets.decoder_can(name, f) for f in ("eta", "invert", "refine")] == [False, True, False], name
