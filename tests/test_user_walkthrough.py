"""A demanding new user's walk through the README, the quick start and the CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import latentlab as ll
from latentlab.cli import main


def _job_spec(images, **kw):
    return {"preset": "tiny", "steps": 2, "frames": 3, "format": "gif",
            "keyframes": [{"image": str(images[0])}, {"image": str(images[1])}], **kw}  # fmt: skip


def _frame_times(out):
    return {p.name: p.stat().st_mtime_ns for p in out.glob("frame_*.png")}


# -- a default spelt out is the same render ---------------------------------------------------
@pytest.mark.parametrize("spelt", [{"from": "a photo"}, {"theta": 0.5}, {"from": "a photo", "theta": 0.5}])
def test_a_text_diffs_defaults_spelt_out_resume_the_same_render(tmp_path, images, spelt):
    """`morph IMAGE --to X` and the same with `--from "a photo"` (the default its help names) draw
    the same embeddings: the second resumes the first's folder (it was refused as "a different
    render (the keyframes)"), and no frame is drawn again."""
    out = tmp_path / "r"
    kfs = [{"image": str(images[0])}, {"text_diff": {"to": "a blue circle"}}]
    first = ll.render_spec(_job_spec(images, keyframes=kfs), out_dir=out, progress=False)
    times = _frame_times(out)
    kfs2 = [{"image": str(images[0])}, {"text_diff": {"to": "a blue circle", **spelt}}]
    again = ll.render_spec(_job_spec(images, keyframes=kfs2), out_dir=out, progress=False)
    assert np.array_equal(again.frames, first.frames) and _frame_times(out) == times


def test_a_mix_weight_of_1_spelt_out_resumes_the_same_render(tmp_path, images):
    out = tmp_path / "r"
    mix = [{"image": str(images[0])}, {"image": str(images[1]), "weight": 0.5}]
    first = ll.render_spec(_job_spec(images, keyframes=[{"image": str(images[2])}, {"mix": mix}]), out_dir=out,
                           progress=False)  # fmt: skip
    times = _frame_times(out)
    mix1 = [{"image": str(images[0]), "weight": 1.0}, {"image": str(images[1]), "weight": 0.5}]
    again = ll.render_spec(_job_spec(images, keyframes=[{"image": str(images[2])}, {"mix": mix1}]), out_dir=out,
                           progress=False)  # fmt: skip
    assert np.array_equal(again.frames, first.frames) and _frame_times(out) == times


def test_another_text_diff_is_still_another_render(tmp_path, images):
    out = tmp_path / "r"
    kfs = [{"image": str(images[0])}, {"text_diff": {"to": "a blue circle"}}]
    ll.render_spec(_job_spec(images, keyframes=kfs), out_dir=out, progress=False)
    for td in ({"to": "a blue circle", "from": "a red circle"}, {"to": "a blue circle", "theta": 0.4}):
        with pytest.raises(ll.LatentlabError, match="different render"):
            ll.render_spec(_job_spec(images, keyframes=[kfs[0], {"text_diff": td}]), out_dir=out, progress=False)


# -- --save-spec into a folder that cannot be written: refused before any work ---------------------
def test_save_spec_in_a_read_only_folder_is_refused_before_any_model_loads(tmp_path, images, monkeypatch, capsys,
                                                                           no_models):  # fmt: skip
    """The docs: "PATH is checked before any work". A read-only folder was found only at the
    write, after the models loaded and keyframes.json was written into the new render folder."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: False if os.path.abspath(p) == str(ro) else real(p, mode, **k))
    out = tmp_path / "r"
    code = main(["morph", str(images[0]), "--to", "a blue circle", "--frames", "2", "--preset", "tiny", "-q",
                 "--out-dir", str(out), "--save-spec", str(ro / "s.toml")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "--save-spec" in err and "no write permission" in err and "Traceback" not in err
    assert not out.exists() and not (ro / "s.toml").exists()


def test_spec_save_into_a_read_only_folder_says_so(tmp_path, images, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: False if os.path.abspath(p) == str(ro) else real(p, mode, **k))
    from latentlab.spec import load_spec

    with pytest.raises(ll.ArgumentError, match="no write permission"):
        load_spec(_job_spec(images)).save(ro / "new" / "s.json")


# -- a view in plain Python says what to do with it ------------------------------------------------
def test_views_in_plain_python_say_what_to_do(tmp_path, monkeypatch, capsys, tiny_encoder, tiny_decoder):
    """Without IPython, ``ll.display(ll.show(frames))`` (and a plain REPL, or print) showed only
    "ImageView(134x134 px, scale=2)": nothing said how to see or keep the picture there."""
    import sys

    from latentlab.notebook import display

    monkeypatch.setitem(sys.modules, "IPython", None)
    monkeypatch.setitem(sys.modules, "IPython.display", None)
    frames = np.zeros((4, 8, 8, 3), np.uint8)
    view = ll.show(frames)
    display(view)
    out = capsys.readouterr().out
    assert out.startswith("ImageView(") and ".save('view.png')" in out and "notebook" in out
    path = tmp_path / "view.png"
    assert view.save(path) == path and path.is_file()  # the call the hint names works as printed
    video = ll.show_video(frames, fps=4)
    assert ".save('video.gif')" in repr(video)
    assert video.save(tmp_path / "video.gif").is_file()
    ll.write_video(frames, tmp_path / "v.gif", fps=4)
    assert "VideoView(" in repr(ll.show(tmp_path / "v.gif"))
    z = tiny_encoder.encode_text(["a", "b"])
    s = ll.scrub(ll.Trajectory.interpolate(z[:1], z[1:], frames=2), tiny_decoder)
    assert "ipywidgets" in repr(s) and ".frames()" in repr(s) and repr(s).startswith("Scrubber(frames=2")
    s.close()
    assert "closed" in repr(s)


# -- a rerun says what it kept ---------------------------------------------------------------------
FAST = ["--preset", "tiny", "--steps", "2", "-q"]


def test_a_rerun_says_how_many_frames_it_kept(tmp_path, images, capsys):
    """Run again after an interruption (or unchanged), a render said nothing of the frames it kept:
    with -q (or TQDM_DISABLE=1) nothing told a resumed or reused render from a new one."""
    out = tmp_path / "r"
    argv = ["interpolate", str(images[0]), str(images[1]), "--frames", "3", "--format", "gif", "--out-dir", str(out), *FAST]
    assert main(argv) == 0
    assert "kept from an earlier run" not in capsys.readouterr().out  # a new render: nothing kept
    (out / "frame_00001.png").unlink()
    (out / "frame_00003.png").unlink()
    assert main(argv) == 0
    assert f"frames:        {out}/ (4 frames, 2 of them kept from an earlier run, manifest.json)" in capsys.readouterr().out
    assert main(argv) == 0
    assert "(4 frames, 4 of them kept from an earlier run, manifest.json)" in capsys.readouterr().out


def test_a_generate_rerun_says_how_many_pictures_it_kept(tmp_path, capsys):
    out = tmp_path / "g"
    argv = ["generate", "a red cat", "-n", "3", "--out-dir", str(out), *FAST]
    assert main(argv) == 0
    assert "kept from an earlier run" not in capsys.readouterr().out
    (out / "frame_00002.png").unlink()
    assert main(argv) == 0
    assert "(3, seeds 0-2, 2 of them kept from an earlier run;" in capsys.readouterr().out


def test_morph_help_names_its_captions_as_the_docs_do(capsys):
    """`morph --help` said `--to TO [--from SOURCE]` (SOURCE: the internal name); docs/cli.md says
    `--to CAPTION [--from CAPTION]`."""
    with pytest.raises(SystemExit):
        main(["morph", "--help"])
    out = capsys.readouterr().out
    assert "--to CAPTION [--from CAPTION]" in out and "SOURCE" not in out


def test_generate_refusing_a_folder_says_which_setting_differs(tmp_path, capsys, no_models):
    """`generate` into a folder of other pictures said "already holds other pictures" and no more:
    a rerun with one flag changed (--seed, --steps, the prompt) could not tell which one."""
    import json

    out = tmp_path / "g"
    out.mkdir()
    (out / "frame_00000.png").write_bytes(b"")
    (out / "generate.json").write_text(json.dumps({"prompt": "a red cat", "preset": "tiny", "seed": 0, "steps": 25,
                                                   "guidance_scale": None, "num": 1}))  # fmt: skip
    for flags, said in ((["--seed", "3"], "seed 0 -> 3"), (["--steps", "10"], "steps 25 -> 10")):
        assert main(["generate", "a red cat", "-n", "1", "--out-dir", str(out), "--preset", "tiny", "-q", *flags]) == 2
        err = capsys.readouterr().err
        assert "already holds other pictures" in err and f"of other settings: {said})" in err, err
    assert main(["generate", "a blue cat", "-n", "1", "--out-dir", str(out), "--preset", "tiny", "-q"]) == 2
    assert "prompt 'a red cat' -> 'a blue cat'" in capsys.readouterr().err


def test_generate_refusing_another_decoder_setting_says_so(tmp_path, capsys):
    out = tmp_path / "g"
    argv = ["generate", "a red cat", "-n", "1", "--out-dir", str(out), *FAST]
    assert main(argv) == 0
    capsys.readouterr()
    assert main([*argv, "--no-captions"]) == 2  # refused once the decoder says it reads captions
    assert "of other settings: decoder_reads_prompt True -> False" in capsys.readouterr().err


# -- a word list read from a file with a blank line ------------------------------------------------
@pytest.mark.parametrize("bad, said", [(["red", "", "blue"], "words[1] is '', an empty word"),
                                       (["red", "blue", "  "], "words[2] is '  ', an empty word"),
                                       (["red", 3], "words[1] is 3, not a string")])  # fmt: skip
def test_a_blank_or_non_string_word_is_refused_naming_it(tiny_encoder, bad, said):
    """`open("words.txt").read().split("\\n")` keeps a blank line (and the last newline) as "": it was
    encoded as the unconditional caption and listed as a nameless neighbour, ` (0.326)`; 3 became '3'."""
    z = tiny_encoder.encode_text(["a red circle"])
    path = ll.Trajectory.interpolate(z, tiny_encoder.encode_text(["a blue square"]), frames=2)
    for call in (lambda: ll.nearest_words(z, tiny_encoder, bad, k=1), lambda: ll.what_changed(path, tiny_encoder, bad)):
        with pytest.raises(ll.ArgumentError, match=said.replace("[", r"\[").replace("]", r"\]")):
            call()


# -- a rerun counts the frames it kept, once each ---------------------------------------------------
def test_a_rerun_counts_kept_frames_once_with_batches_and_a_damaged_frame(tmp_path, images, capsys):
    from latentlab.cli import main

    out = tmp_path / "r"
    argv = ["interpolate", str(images[0]), str(images[1]), "--frames", "5", "--format", "gif", "--out-dir", str(out),
            "--preset", "tiny", "--steps", "2", "-q", "--batch-size", "2"]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    (out / "frame_00001.png").write_bytes(b"\x89PNG cut short")  # damaged: drawn again, not kept
    (out / "frame_00004.png").unlink()
    assert main(argv) == 0
    assert "(6 frames, 4 of them kept from an earlier run, manifest.json)" in capsys.readouterr().out


# -- generate's refusal names only settings that differ ----------------------------------------------
def test_generates_refusal_does_not_name_steps_one_run_left_to_the_decoders_default(tmp_path, capsys):
    """3f016a3's "of other settings" listed `steps the preset's default -> 10` beside the prompt
    that differed, when 10 is the default (the tiny preset's): no change at all."""
    from latentlab.cli import main

    out = tmp_path / "g"  # as `generate "a red cat" -n 1 --preset tiny` leaves it (refused before any model loads)
    out.mkdir()
    ll.save_image(np.zeros((64, 64, 3), np.uint8), out / "frame_00000.png")
    (out / "generate.json").write_text(json.dumps({"prompt": "a red cat", "preset": "tiny", "seed": 0, "steps": None,
                                                   "guidance_scale": None, "num": 1}))  # fmt: skip
    assert main(["generate", "a blue cat", "-n", "1", "--out-dir", str(out), "--preset", "tiny", "-q", "--steps", "10"]) == 2
    err = capsys.readouterr().err
    assert "prompt 'a red cat' -> 'a blue cat'" in err and "steps" not in err


# -- a closed scrubber's text form names no call that refuses it --------------------------------------
def test_a_closed_scrubbers_repr_does_not_offer_frames(tiny_encoder, tiny_decoder):
    """3f016a3's text form said "here, .frames() renders its frames" of a closed scrubber too,
    whose .frames() refuses ("this scrubber is closed")."""
    from latentlab.errors import ArgumentError

    z = tiny_encoder.encode_text(["a", "b"])
    s = ll.scrub(ll.Trajectory.interpolate(z[:1], z[1:], frames=2), tiny_decoder)
    assert ".frames() renders" in repr(s)  # open: the call works
    s.close()
    with pytest.raises(ArgumentError, match="closed"):
        s.frames()
    assert "closed" in repr(s) and ".frames()" not in repr(s) and "ll.scrub(" in repr(s)
