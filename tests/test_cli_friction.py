"""Command-line friction a new user met: the video path checked before any model
loads, --name as one folder's name, refusals that said None for a default."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentlab.cli import main

FAST = ["--preset", "tiny", "--steps", "2", "-q"]


# -- 1. the video path, checked before any model loads -------------------------------------------------


def test_variations_eta_refuses_a_folder_at_its_default_video_before_any_model_loads(tmp_path, images, no_models,
                                                                                     monkeypatch, capsys):  # fmt: skip
    # renders/v1.gif a folder: variations --eta loaded the models, decoded every variation, swapped them in and
    # only then said "path 'renders/v1.gif' is a directory" (render_spec says it first, -o was checked first too)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "renders" / "v1.gif").mkdir(parents=True)
    assert main(["variations", str(images[0]), "--eta", "0.3", "-n", "2", "--name", "v1", *FAST]) == 2
    err = capsys.readouterr().err
    assert "'renders/v1.gif' would replace a folder of that name" in err and "-o variations.gif" in err
    assert not (tmp_path / "renders" / "v1").exists()  # nothing was drawn


def test_webp_without_pillow_webp_support_is_refused_before_any_model_loads(tmp_path, images, no_models, monkeypatch,
                                                                            capsys):  # fmt: skip
    # a Pillow built without libwebp: its writer raised a raw KeyError('WEBP') after the whole render
    from PIL import features

    real = features.check
    monkeypatch.setattr(features, "check", lambda feature: False if feature == "webp" else real(feature))
    from latentlab.errors import ArgumentError
    from latentlab.video import check_video_writer

    with pytest.raises(ArgumentError, match=r"cannot write webp: this Pillow was built without WebP support.*--format gif"):
        check_video_writer("clip.webp")
    assert check_video_writer("clip.gif") is None
    cmd = ["interpolate", str(images[0]), str(images[1]), "--frames", "2", "--out-dir", str(tmp_path / "r"), *FAST]
    for extra in (["--format", "webp"], ["-o", str(tmp_path / "v.webp")]):
        assert main([*cmd, *extra]) == 2
        assert "without WebP support" in capsys.readouterr().err
    assert main(["variations", str(images[0]), "--eta", "0.3", "-n", "2", "--format", "webp",
                 "--out-dir", str(tmp_path / "e"), *FAST]) == 2  # fmt: skip
    assert "without WebP support" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not (tmp_path / "e").exists()


@pytest.mark.parametrize("verb", ["interpolate", "variations-eta"])
@pytest.mark.parametrize("case", ["parent-is-a-file", "a-folder", "unwritable", "unknown-suffix"])
def test_an_unwritable_video_path_is_refused_before_any_model_loads(tmp_path, images, no_models, monkeypatch, capsys,
                                                                    verb, case):  # fmt: skip
    # (kept: passes before and after) docs/cli.md: -o is checked before any work
    import os

    (tmp_path / "file").write_text("x")
    (tmp_path / "dir.gif").mkdir()
    (tmp_path / "ro").mkdir()
    output = {"parent-is-a-file": tmp_path / "file" / "v.gif", "a-folder": tmp_path / "dir.gif",
              "unwritable": tmp_path / "ro" / "v.gif", "unknown-suffix": tmp_path / "v.avi"}[case]  # fmt: skip
    if case == "unwritable":  # (root ignores permission bits)
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **k: False if str(p) == str(tmp_path / "ro") else real(p, mode, **k))
    cmd = (["interpolate", str(images[0]), str(images[1]), "--frames", "2"] if verb == "interpolate"
           else ["variations", str(images[0]), "--eta", "0.3", "-n", "2"])  # fmt: skip
    assert main([*cmd, "--out-dir", str(tmp_path / "r"), "-o", str(output), *FAST]) == 2
    err = capsys.readouterr().err
    assert err.startswith("latentlab: error: ") and str(output.name) in err
    assert not (tmp_path / "r").exists()


# -- 2. --name names one folder under renders/ ----------------------------------------------------------


@pytest.mark.parametrize("name", ["a/b", "..", ".", "a\\b", "renders/take1", "/abs", "--", "!!"])
@pytest.mark.parametrize("verb", ["interpolate", "generate", "variations-eta"])
def test_a_name_that_is_no_plain_folder_name_is_refused_naming_the_flag(tmp_path, images, no_models, monkeypatch,
                                                                        capsys, name, verb):  # fmt: skip
    # --name a/b rendered into renders/a-b, and --name .. into renders/render, silently
    monkeypatch.chdir(tmp_path)
    cmd = {"interpolate": ["interpolate", str(images[0]), str(images[1]), "--frames", "2"],
           "generate": ["generate", "a red circle", "-n", "1"],
           "variations-eta": ["variations", str(images[0]), "--eta", "0.3", "-n", "2"]}[verb]  # fmt: skip
    assert main([*cmd, f"--name={name}", *FAST]) == 2
    err = capsys.readouterr().err
    assert f"--name {name!r}" in err and "e.g. --name take1" in err
    assert ("--out-dir" in err) == ("/" in name or "\\" in name)  # a path: the flag that takes one
    assert not (tmp_path / "renders").exists()


@settings(derandomize=True, max_examples=25, deadline=None)
@given(st.text(alphabet=st.sampled_from("aZ9é猫 ._-/\\!"), min_size=1, max_size=12))
def test_name_is_refused_exactly_when_it_is_a_path_or_has_no_letter_or_digit(name):
    # the refusal and the folder the name makes agree: an accepted name never becomes 'render' from nothing
    import argparse

    from latentlab.cli import _check_paths
    from latentlab.errors import ArgumentError
    from latentlab.jobs import slug

    args = argparse.Namespace(name=name)
    plain = "/" not in name and "\\" not in name and any(c.isalnum() for c in name)
    if not name.strip():
        return  # (an empty name is refused as such, elsewhere)
    if plain:
        _check_paths(args)
        assert slug(name) != "render" or "render" in name.lower()
    else:
        with pytest.raises(ArgumentError, match=r"^--name "):
            _check_paths(args)


# -- 3. refusals say "the default", not None -----------------------------------------------------------


def _manifest(d, images, **fields):
    """A render folder whose manifest records a tiny render of ``images[:2]`` with ``fields``."""
    from latentlab.render import MANIFEST

    d.mkdir()
    spec = {"keyframes": [{"image": str(images[0])}, {"image": str(images[1])}], "preset": "tiny", "frames": 2,
            "steps": 2, **fields}  # fmt: skip
    (d / MANIFEST).write_text(json.dumps({"format": 1, "spec": spec}))
    return ["interpolate", str(images[0]), str(images[1]), "--frames", "2", "--out-dir", str(d), *FAST]


def test_another_eta_is_refused_naming_the_default_not_none(tmp_path, images, no_models, capsys):
    # a folder rendered without --eta, rerun with --eta 0.3: "holds a different render (eta None -> 0.3 ...)"
    cmd = _manifest(tmp_path / "r", images)
    assert main([*cmd, "--eta", "0.3"]) == 2
    err = capsys.readouterr().err
    assert "eta 0 (the default) -> 0.3" in err and "None" not in err
    cmd = _manifest(tmp_path / "r2", images, eta=0.3)
    assert main(cmd) == 2
    err = capsys.readouterr().err
    assert "eta 0.3 -> 0 (the default)" in err and "None" not in err


def test_a_decoder_of_another_dtype_is_named_against_the_default_not_none(tmp_path):
    from latentlab.jobs import _decoder_change
    from latentlab.render import _what_differs

    # mini's description names dtype and device only off the default CPU float32
    assert _decoder_change({"name": "mini"}, {"name": "mini", "dtype": "bfloat16"}) == (
        "the decoder (dtype 'float32' (the default) -> 'bfloat16')")
    assert _decoder_change({"name": "mini", "device": "cuda:0"}, {"name": "mini"}) == (
        "the decoder (device 'cuda:0' -> 'cpu' (the default))")
    assert _decoder_change({"a": 1}, {"a": 2, "b": "x"}) == "the decoder (a 1 -> 2; b None -> 'x')"  # (as before)
    # render()'s own check: a manifest records eta only when set
    said = _what_differs({"seed": 0}, {"seed": 0, "eta": 0.3, "eta_noise": "own stream"}, tmp_path, None)
    assert "eta 0 (the default) -> 0.3" in said and "None" not in said
    said = _what_differs({"seed": 0, "eta": 0.3, "eta_noise": "own stream"}, {"seed": 0}, tmp_path, None)
    assert "eta 0.3 -> 0 (the default)" in said and "None" not in said


def test_a_pacing_setting_left_unset_is_named_the_default(tmp_path, images, no_models, capsys):
    # a folder rendered with --pacing-coarse 3, rerun without it: "pacing_coarse 3 -> None"
    cmd = _manifest(tmp_path / "r", images, pacing="even", pacing_coarse=3)
    assert main([*cmd, "--pacing", "even"]) == 2
    err = capsys.readouterr().err
    assert "pacing_coarse 3 -> the default" in err and "None" not in err


# -- the review of f338b30 (helper l) ---------------------------------------------------------------


def test_webp_without_an_animated_writer_is_refused_up_front(monkeypatch, tmp_path):
    # a Pillow before 11 built with libwebp but without its mux/demux: features.check('webp') True, but no
    # save_all writer registered, so write_video's writer raised a raw KeyError('WEBP') (after the render)
    import numpy as np
    from PIL import Image, WebPImagePlugin  # noqa: F401  (registers the writers this Pillow has)

    from latentlab.errors import ArgumentError
    from latentlab.video import check_video_writer, write_video

    monkeypatch.delitem(Image.SAVE_ALL, "WEBP")
    with pytest.raises(ArgumentError, match=r"cannot write webp: .*--format gif"):
        check_video_writer("clip.webp")
    with pytest.raises(ArgumentError, match=r"cannot write webp"):
        write_video(np.zeros((2, 8, 8, 3), np.uint8), tmp_path / "v.webp", fps=4)
    assert not list(tmp_path.iterdir())
    assert check_video_writer("clip.gif") is None  # gif and mp4 do not look at Pillow's webp


def test_webp_is_written_where_pillow_has_it(tmp_path):
    # (kept: passes before and after) on a Pillow with WebP, as its wheels are, nothing is refused
    import numpy as np
    from PIL import features

    from latentlab.video import check_video_writer, read_video, write_video

    if not features.check("webp"):
        pytest.skip("this Pillow has no WebP support")
    assert check_video_writer("clip.webp") is None
    frames = np.stack([np.full((8, 8, 3), v, np.uint8) for v in (0, 255)])
    out = write_video(frames, tmp_path / "v.webp", fps=4, quality=100)
    assert len(read_video(out)) == 2


def test_a_decoder_that_records_no_device_is_not_said_to_run_on_the_default():
    # a Decoder subclass whose describe() is Decoder's (no device, no dtype) ran wherever it ran: against a
    # Karlo on cuda it was said to be "device 'cpu' (the default)", a claim nothing recorded
    from latentlab.jobs import _decoder_change

    mine = {"class": "MyDecoder", "name": "mine"}
    karlo = {"class": "KarloDecoder", "name": "karlo", "device": "cuda", "dtype": "float16"}
    said = _decoder_change(mine, karlo)
    assert "the default" not in said and "device None -> 'cuda'" in said and "dtype None -> 'float16'" in said
    said = _decoder_change(karlo, mine)
    assert "the default" not in said and "device 'cuda' -> None" in said
    # mini's description leaves them out at CPU float32: named as the default still
    mini = {"class": "MiniDecoder", "name": "mini"}
    assert _decoder_change(mini, {**mini, "dtype": "bfloat16"}) == "the decoder (dtype 'float32' (the default) -> 'bfloat16')"
    assert "device 'cpu' (the default) -> 'cuda'" in _decoder_change(mini, karlo)


def test_an_eta_render_from_before_the_step_noise_record_is_not_said_unset(tmp_path):
    # an eta render of a latentlab before 2026-12-05 recorded no eta_noise: "eta_noise unset -> 'own stream'"
    # said the user left something unset, where its step noise was another (no setting continues it)
    from latentlab.render import _what_differs

    said = _what_differs({"seed": 0, "eta": 0.3}, {"seed": 0, "eta": 0.3, "eta_noise": "own stream"}, tmp_path, None)
    assert "unset" not in said and "eta_noise unrecorded (a latentlab before 2026-12-05" in said
    # (kept) eta given up: its record unset, as it is
    said = _what_differs({"seed": 0, "eta": 0.3, "eta_noise": "own stream"}, {"seed": 0}, tmp_path, None)
    assert "eta 0.3 -> 0 (the default)" in said and "eta_noise 'own stream' -> unset" in said


@settings(derandomize=True, max_examples=40, deadline=None)
@given(st.text(st.characters(codec="utf-8", exclude_characters="/\\\x00"), min_size=1, max_size=12))
def test_a_name_that_is_refused_is_one_slug_could_not_make_a_folder_of(name):
    # (kept: passes before and after) docs/cli.md: a --name without a letter or digit is refused; one with
    # them is made a folder name as a spec's name is, and names its own folder (never renders/render)
    import argparse

    from latentlab.cli import _check_paths
    from latentlab.errors import ArgumentError
    from latentlab.jobs import slug

    try:
        _check_paths(argparse.Namespace(name=name, out_dir=None))
    except ArgumentError as exc:
        assert "--name" in str(exc)
        assert not name.strip() or slug(name) == "render"
        return
    assert slug(name) and (slug(name) != "render" or "render" in name.lower())
