"""The command line and the spec job, end to end on the tiny random preset."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentlab.cli import main

from conftest import folder_held_by_another_process
from latentlab.render import MANIFEST

FAST = ["--preset", "tiny", "--steps", "2", "-q"]


def test_help_mentions_every_verb(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for verb in ("presets", "morph", "interpolate", "variations", "generate", "render", "resumes"):
        assert verb in out


def test_presets_lists_tiny(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "tiny" in out and "tiny-random" in out and "built in" in out
    assert main(["presets", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"name": "tiny", "dim": 32}.items() <= next(r for r in rows if r["name"] == "tiny").items()


def test_morph_writes_video_sheet_frames_and_spec(tmp_path, images, capsys):
    out_dir, video, spec = tmp_path / "r", tmp_path / "m.gif", tmp_path / "s.toml"
    rc = main(
        ["morph", str(images[0]), "--to", "a blue square", "--theta", "0.3", "--frames", "4",
         "--out-dir", str(out_dir), "-o", str(video), "--save-spec", str(spec), *FAST]
    )  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert str(video) in printed and "contact_sheet.png" in printed
    from latentlab.video import read_video

    assert read_video(video).shape[0] == 5
    assert len(list(out_dir.glob("frame_*.png"))) == 5
    assert (out_dir / "contact_sheet.png").exists()
    manifest = json.loads((out_dir / MANIFEST).read_text())
    assert manifest["complete"] and manifest["spec"]["keyframes"][1]["text_diff"]["theta"] == 0.3
    # the saved spec replays the same render: nothing is re-rendered
    mtimes = sorted(p.stat().st_mtime_ns for p in out_dir.glob("frame_*.png"))
    assert main(["render", str(spec), "--out-dir", str(out_dir), "-o", str(video), "-q"]) == 0
    assert sorted(p.stat().st_mtime_ns for p in out_dir.glob("frame_*.png")) == mtimes


def test_a_spec_saved_in_another_folder_replays_into_the_same_render(tmp_path, images, monkeypatch, capsys):
    # the saved spec spells the images relative to its own folder ("../red_disc.png"): the
    # same pictures, so the render resumes instead of being refused as a different one
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(
        'preset = "tiny"\nsteps = 2\nframes = 2\n[[keyframes]]\nimage = "red_disc.png"\n[[keyframes]]\nimage = "blue_square.png"\n'
    )
    assert main(["render", "s.toml", "--out-dir", "r", "--save-spec", "saved/s2.toml", "-q"]) == 0
    assert '"../red_disc.png"' in (tmp_path / "saved" / "s2.toml").read_text()
    mtimes = sorted(p.stat().st_mtime_ns for p in (tmp_path / "r").glob("frame_*.png"))
    assert main(["render", "saved/s2.toml", "--out-dir", "r", "-q"]) == 0
    assert sorted(p.stat().st_mtime_ns for p in (tmp_path / "r").glob("frame_*.png")) == mtimes
    # other pictures under the same spelling are still another render
    (tmp_path / "saved" / "s3.toml").write_text(
        (tmp_path / "saved" / "s2.toml").read_text().replace("../red_disc.png", "../blue_square.png", 1)
    )
    capsys.readouterr()
    assert main(["render", "saved/s3.toml", "--out-dir", "r", "-q"]) == 2
    assert "holds a render of other keyframe pictures" in capsys.readouterr().err


def test_interpolate_and_variations(tmp_path, images):
    assert main(["interpolate", str(images[0]), str(images[1]), "--frames", "3",
                 "--out-dir", str(tmp_path / "i"), "-o", str(tmp_path / "i.mp4"), *FAST]) == 0  # fmt: skip
    assert len(list((tmp_path / "i").glob("frame_*.png"))) == 4
    assert main(["variations", str(images[0]), "-n", "3",
                 "--out-dir", str(tmp_path / "v"), "-o", str(tmp_path / "v.gif"), *FAST]) == 0  # fmt: skip
    frames = np.stack([np.asarray(__import__("PIL.Image").Image.open(p)) for p in sorted((tmp_path / "v").glob("frame_*.png"))])
    assert frames.shape[0] == 3
    assert np.abs(frames[0].astype(int) - frames[1].astype(int)).mean() > 1  # new noise, new picture


def test_interpolate_reports_what_even_pacing_measured(tmp_path, images, capsys):
    argv = ["interpolate", str(images[0]), str(images[1]), "--frames", "4", "--pacing", "even",
            "--out-dir", str(tmp_path / "p"), "-o", str(tmp_path / "p.gif"), *FAST]  # fmt: skip
    assert main([*argv, "--pacing-relax", "1"]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("pacing:")]
    assert len(line) == 1 and "even by CLIP angle" in line[0] and "uniform steps CV" in line[0]
    assert "paced frames CV" in line[0] and "x the median" in line[0]
    # no relaxation: the frames were not measured (a video of its own: p.gif is the first render's)
    assert main([*argv, "--out-dir", str(tmp_path / "q"), "-o", str(tmp_path / "q.gif")]) == 0
    out = capsys.readouterr().out
    assert "pacing:" in out and "paced frames" not in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["morph", "/no/such.png", "--to", "x"], "no such file"),
        (["interpolate", "IMG", "IMG", "--preset", "nope"], "unknown preset 'nope'"),
        (["interpolate", "IMG", "IMG", "--preset", "tyni"], "Did you mean 'tiny'"),
        (["morph", "IMG", "--to", "x", "--theta", "2"], "theta"),
        (["render", "/no/spec.toml"], "does not exist"),
        (["interpolate", "IMG", "IMG", "--preset", "tiny", "-o", "/proc/x/y.mp4", "--frames", "1", "--steps", "1"], "y.mp4"),
        (["interpolate", "IMG", "IMG", "--preset", "tiny", "-o", "out.avi"], "must end in .mp4, .gif or .webp"),
    ],
)
def test_bad_input_gives_one_clear_line(argv, message, images, tmp_path, capsys):
    argv = [str(images[0]) if a == "IMG" else a for a in argv]
    assert main([*argv, "--out-dir", str(tmp_path / "r"), "-q"]) == 2
    # (a render that ran first may warn, e.g. of its few steps, each warning one line of its own)
    err = "".join(line for line in capsys.readouterr().err.splitlines(True) if not line.startswith("latentlab: warning:"))
    assert err.startswith("latentlab: error:") and message in err
    assert "Traceback" not in err


def test_malformed_spec_file(tmp_path, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text('preset = "tiny"\n[[keyframes]]\ntext = "a"\n')
    assert main(["render", str(spec)]) == 2
    assert "at least two" in capsys.readouterr().err


def test_killed_render_resumes_without_losing_frames(tmp_path, images):
    """SIGKILL a CLI render mid-way, run the same command again: finished frames are kept
    untouched and only the rest are rendered."""
    out_dir = tmp_path / "r"
    cmd = [sys.executable, "-m", "latentlab", "interpolate", str(images[0]), str(images[1]), "--frames", "23",
           "--batch-size", "1", "--steps", "6", "--preset", "tiny", "--out-dir", str(out_dir),
           "-o", str(tmp_path / "r.mp4"), "-q"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while len(list(out_dir.glob("frame_*.png"))) < 3:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline, "the render did not start in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = {p.name: p.stat().st_mtime_ns for p in out_dir.glob("frame_*.png")}
    assert 3 <= len(done) < 24, "kill came too late to test resuming"
    assert not json.loads((out_dir / MANIFEST).read_text())["complete"]
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    after = {p.name: p.stat().st_mtime_ns for p in out_dir.glob("frame_*.png")}
    assert len(after) == 24
    assert {k: after[k] for k in done} == done  # finished frames were not redone
    assert json.loads((out_dir / MANIFEST).read_text())["complete"]
    assert (tmp_path / "r.mp4").stat().st_size > 0


def test_variations_around_the_inverted_noise(tmp_path, images, monkeypatch):
    """--eta: variations of the image from its DDIM-inverted noise (mini can invert)."""
    import latentlab as ll

    out = tmp_path / "v"
    real, seen = ll.variations, []
    monkeypatch.setattr(ll, "variations", lambda *a, **k: seen.append(k) or real(*a, **k))
    assert main(["variations", str(images[0]), "-n", "2", "--eta", "0.5", "--preset", "mini", "--steps", "4",
                 "--invert-refine", "2", "--out-dir", str(out), "-o", str(tmp_path / "v.gif"), "-q"]) == 0  # fmt: skip
    assert seen[0]["refine"] == 2 and seen[0]["mode"] == "inverted"
    assert seen[0]["progress"] is False  # -q: no bar (it was silent for most of a minute, -q or not)
    frames = [np.asarray(__import__("PIL.Image").Image.open(p)) for p in sorted(out.glob("frame_*.png"))]
    assert len(frames) == 2 and frames[0].shape == (64, 64, 3)
    assert np.abs(frames[0].astype(int) - frames[1].astype(int)).mean() > 0.5  # eta > 0: they differ
    assert (tmp_path / "v.gif").stat().st_size > 0 and (out / "contact_sheet.png").is_file()
    assert main(["variations", str(images[0]), "--eta", "0", "--preset", "mini", "-q"]) == 2


def test_variations_name_their_folder_after_the_image(tmp_path, images, monkeypatch, capsys):
    """renders/<image>-variations (with --eta: -variations-eta<eta>), or --name's; the --eta
    form refuses a folder that holds another render's frames unless --overwrite."""
    monkeypatch.chdir(tmp_path)
    stem = "red-disc"  # red_disc.png
    assert main(["variations", str(images[0]), "-n", "2", *FAST]) == 0
    assert sorted(p.name for p in (tmp_path / "renders").iterdir()) == [f"{stem}-variations", f"{stem}-variations.gif"]
    eta = ["variations", str(images[0]), "-n", "2", "--eta", "0.5", "--preset", "mini", "--steps", "2", "--invert-refine", "0", "-q"]
    assert main([*eta, "-n", "3"]) == 0
    assert main(eta) == 0  # its own earlier output is replaced, with no frame of it left over
    own = tmp_path / "renders" / f"{stem}-variations-eta0-5"
    assert len(list(own.glob("frame_*.png"))) == 2 and json.loads((own / "variations.json").read_text())["num"] == 2
    assert main([*eta, "--name", "Mine"]) == 0 and (tmp_path / "renders" / "mine.gif").is_file()
    capsys.readouterr()
    folder = tmp_path / "renders" / f"{stem}-variations"  # the per-frame render's folder
    taken = ["--out-dir", str(folder)]
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    with monkeypatch.context() as m:  # refused before any decoding
        m.setattr(__import__("latentlab"), "variations", lambda *a, **k: pytest.fail("decoded before refusing"))
        assert main([*eta, *taken]) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "2 frames" in err and "manifest.json" in err
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before  # the render it refused is untouched
    assert main([*eta, "-n", "3", *taken, "--overwrite"]) == 0
    assert len(list(folder.glob("frame_*.png"))) == 3
    assert not (folder / MANIFEST).exists() and not (folder / "embeddings.npy").exists()


def _generate_calls(monkeypatch) -> list[tuple[int, int]]:
    """The (seed, n) of each ll.generate call a command makes (each call still draws)."""
    import latentlab as ll

    real, calls = ll.generate, []
    monkeypatch.setattr(ll, "generate", lambda *a, **k: calls.append((k["seed"], k["n"])) or real(*a, **k))
    return calls


def test_generate_writes_pictures_and_resumes_only_the_missing_ones(tmp_path, monkeypatch, capsys):
    """``generate``: pictures, generate.json and a contact sheet; a rerun of the same settings
    draws only the missing pictures; other settings are refused unless --overwrite; an
    interruption keeps the pictures already drawn."""
    import latentlab as ll

    monkeypatch.chdir(tmp_path)
    real, calls = ll.generate, _generate_calls(monkeypatch)
    argv = ["generate", "a red cat", "-n", "5", "--batch-size", "2", *FAST]
    assert main(argv) == 0
    out = tmp_path / "renders" / "a-red-cat"
    assert sorted(p.name for p in out.iterdir()) == sorted([*(f"frame_{k:05d}.png" for k in range(5)), "contact_sheet.png", "generate.json"])
    assert calls == [(0, 2), (2, 2), (4, 1)]
    meta = json.loads((out / "generate.json").read_text())
    assert meta["prompt"] == "a red cat" and meta["num"] == 5 and meta["decoder_reads_prompt"] is True
    assert "the decoder read the prompt too" in capsys.readouterr().out  # tiny's Stable unCLIP decoder reads it
    before = {k: (out / f"frame_{k:05d}.png").read_bytes() for k in range(5)}
    for k in (1, 2, 4):
        (out / f"frame_{k:05d}.png").unlink()
    calls.clear()
    assert main(argv) == 0
    assert calls == [(1, 2), (4, 1)]  # runs of consecutive missing pictures, seed + k each
    from latentlab.video import load_image

    for k in range(5):
        assert np.abs(load_image(out / f"frame_{k:05d}.png").astype(int) - load_image(_png(before[k], tmp_path)).astype(int)).max() <= 2
    calls.clear()
    assert main([*argv[:3], "6", *argv[4:]]) == 0 and calls == [(5, 1)]  # more of the same: only the new one
    # tiny's default guidance spelled out is the same pictures: resumed, not refused as other pictures
    calls.clear()
    default_guidance = ll.create_decoder("tiny").default_guidance
    assert main([*argv[:3], "6", *argv[4:], "--guidance", str(default_guidance)]) == 0 and calls == []
    assert main([*argv[:3], "6", *argv[4:]]) == 0 and calls == []  # and left out again
    capsys.readouterr()
    # fewer than before: the pictures beyond -n stay, and the output says they are there
    assert main([*argv[:3], "3", *argv[4:]]) == 0 and calls == []
    assert "also there: 3 more from an earlier run with a larger -n, frame_00003.png to frame_00005.png" in capsys.readouterr().out
    with monkeypatch.context() as m:  # another seed: refused before any model loads
        m.setattr(ll, "create_encoder", lambda *a, **k: pytest.fail("loaded a model before refusing"))
        assert main([*argv, "--seed", "3"]) == 2 and "already holds other pictures" in capsys.readouterr().err
        (out / "generate.json").write_text(json.dumps({**json.loads((out / "generate.json").read_text()), "steps": 3}))
        assert main([*argv[:-3], "--steps", "4", "-q"]) == 2  # both written out and different: before loading too
        assert "already holds other pictures" in capsys.readouterr().err
        (out / "generate.json").write_text(json.dumps({**json.loads((out / "generate.json").read_text()), "steps": 2}))
    # the same prompt and seed drawn by another model (its description differs): refused once the models load
    (out / "generate.json").write_text(json.dumps({**json.loads((out / "generate.json").read_text()), "prior": {}}))
    assert main(argv) == 2 and "already holds other pictures" in capsys.readouterr().err
    assert main([*argv, "--seed", "3", "--overwrite"]) == 0
    assert len(list(out.glob("frame_*.png"))) == 5 and json.loads((out / "generate.json").read_text())["seed"] == 3
    # interrupted after the first call: its pictures stay, the rerun draws the rest
    def stop(*a, **k):
        if k["seed"] > 0:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(ll, "generate", stop)
    assert main(["generate", "a blue dog", "-n", "4", "--batch-size", "2", *FAST]) == 130
    assert "finished pictures are kept" in capsys.readouterr().err
    assert len(list((tmp_path / "renders" / "a-blue-dog").glob("frame_*.png"))) == 2
    # interrupted before any picture: said so, not "finished pictures are kept"
    assert main(["generate", "a blue dog", "-n", "4", "--batch-size", "2", "--seed", "1", "--out-dir", "nothing", *FAST]) == 130
    assert "interrupted before any picture was finished" in capsys.readouterr().err


def _png(data: bytes, tmp: Path) -> Path:
    p = tmp / "_was.png"
    p.write_bytes(data)
    return p


@pytest.mark.parametrize(
    "argv, message",
    [
        (["generate", "a cat", "--preset", "sd21-unclip-h"], "has no prior"),
        (["generate", " ", "--preset", "tiny"], "prompt is empty"),
        (["generate", "a cat", "-n", "0", "--preset", "tiny"], "--num must be"),
        (["generate", "a cat", "--batch-size", "0", "--preset", "tiny"], "--batch-size must"),
        (["generate", "a cat", "--steps", "0", "--preset", "tiny"], "--steps must be in [1, 1000]"),
        (["generate", "a cat", "--steps", "1000000000", "--preset", "tiny"], "--steps must be in [1, 1000]"),  # (after loading)
        (["generate", "a cat", "--guidance", "-1", "--preset", "tiny"], "--guidance must be a finite number >= 0"),
        (["generate", "a cat", "--seed", str(2**64), "--preset", "tiny"], "--seed must be in"),
        (["generate", "a cat", "--size", "5000", "--preset", "tiny"], "--size must be in [8, 4096]"),
    ],
)
def test_generate_refuses_bad_input_in_one_line(argv, message, tmp_path, monkeypatch, capsys):
    """Refused before any model loads and before anything is written (a generate.json left by
    a refused run had blocked the next run of other settings)."""
    import latentlab as ll

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ll, "create_encoder", lambda *a, **k: pytest.fail("a model was loaded"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "renders").exists()


def test_a_folder_holding_only_the_settings_of_a_run_that_drew_nothing_is_reused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "g"
    out.mkdir()
    (out / "generate.json").write_text(json.dumps({"prompt": "another prompt", "num": 2}))
    assert main(["generate", "a cat", "-n", "1", "--out-dir", "g", *FAST]) == 0
    assert json.loads((out / "generate.json").read_text())["prompt"] == "a cat"
    assert (out / "frame_00000.png").is_file()


def test_ctrl_c_while_models_load_is_a_clean_exit(tmp_path, images, monkeypatch, capsys):
    import latentlab as ll

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ll, "create_encoder", interrupted)
    assert main(["generate", "a cat", "-n", "1", *FAST]) == 130
    assert capsys.readouterr().err.strip() == "interrupted."


def test_text_keyframes_on_a_preset_without_prior_are_refused_before_loading(tmp_path, images, monkeypatch, capsys):
    from latentlab import presets

    monkeypatch.setattr(presets, "create_encoder", lambda *a, **k: pytest.fail("a model was loaded"))
    argv = ["interpolate", str(images[0]), "text:a cat", "--preset", "sd21-unclip-h", "--out-dir", str(tmp_path / "r"), "-q"]
    assert main(argv) == 2
    assert "keyframes[1] is a text keyframe, which needs a prior, and preset 'sd21-unclip-h' has none" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["morph", "IMG", "--to", ""], "non-empty 'to' caption (CLI: --to)"),
        (["morph", "IMG", "--to", "x", "--from", " "], "text_diff.from must be a non-empty caption string (CLI: --from)"),
        (["interpolate", "IMG", "text:"], "keyframes[1].text must be a non-empty caption string"),
        (["interpolate", "IMG", "IMG", "--pacing-relax", "3"], "'pacing_relax' (--pacing-relax) applies to pacing = 'even' or 'fine' only"),
        (["interpolate", "IMG"], "interpolate needs at least two keyframes"),
        (["variations", "IMG", "-n", "1"], "--num must be at least 2 for variations"),
        (["variations", "text:a cat", "--eta", "0.3"], "variations --eta start from an image's inverted noise"),
        (["render", "IMG"], "must end in .json or .toml, not '.png'"),
    ],
)
def test_usage_mistakes_are_one_line_errors_naming_the_flag(argv, message, tmp_path, images, monkeypatch, capsys):
    from latentlab import presets

    monkeypatch.setattr(presets, "create_encoder", lambda *a, **k: pytest.fail("a model was loaded"))
    argv = [str(images[0]) if a == "IMG" else a for a in argv]
    assert main([*argv, "--out-dir", str(tmp_path / "r"), "--preset", "tiny", "-q"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("latentlab: error:")
    assert not (tmp_path / "r").exists()


def test_variations_help_says_its_own_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["variations", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default gif)" in out and "(default 2)" in out and "--noise {" not in out


def test_a_render_into_a_folder_of_untracked_frames_is_refused_before_writing_there(tmp_path, images, capsys):
    out = tmp_path / "v"
    out.mkdir()
    (out / "frame_00000.png").write_bytes((images[0]).read_bytes())  # e.g. left by variations --eta
    before = sorted(p.name for p in out.iterdir())
    assert main(["variations", str(images[0]), "-n", "2", "--out-dir", str(out), *FAST]) == 2
    assert "has frames but no manifest.json" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before  # no keyframes.json written into it


def test_no_upscale_renders_mini_with_lanczos_and_is_refused_elsewhere(tmp_path, images, capsys):
    """--no-upscale: mini's frames come from a Lanczos resize (the render's manifest records
    the decoder without its upscaler, and the frames differ); other presets refuse the flag."""
    frames = {}
    for flag in ([], ["--no-upscale"]):
        out = tmp_path / ("lanczos" if flag else "learned")
        assert main(["interpolate", str(images[0]), str(images[1]), "--preset", "mini", "--frames", "1", "--steps", "2",
                     "--out-dir", str(out), "-o", str(out) + ".gif", "-q", *flag]) == 0  # fmt: skip
        described = json.loads((out / MANIFEST).read_text())["decoder"]
        assert described["upscaler"] == ("none (Lanczos resize)" if flag else "learned 2x (mini_upscaler)")
        frames[bool(flag)] = np.asarray(__import__("PIL.Image").Image.open(out / "frame_00000.png")).astype(int)
    assert frames[True].shape == frames[False].shape == (64, 64, 3)
    assert np.abs(frames[True] - frames[False]).mean() > 0.5
    capsys.readouterr()
    # the Lanczos render's folder refuses to resume with the upscaler: frames of the two never mix
    assert main(["interpolate", str(images[0]), str(images[1]), "--preset", "mini", "--frames", "1", "--steps", "2",
                 "--out-dir", str(tmp_path / "lanczos"), "-q"]) == 2  # fmt: skip
    assert "holds a different render" in capsys.readouterr().err
    assert main(["interpolate", str(images[0]), str(images[1]), *FAST, "--no-upscale", "--out-dir", str(tmp_path / "t")]) == 2
    assert "--no-upscale applies to the mini preset only" in capsys.readouterr().err
    # --save-spec keeps --no-upscale (the spec's upscale = false): its replay resumes the Lanczos render
    assert main(["interpolate", str(images[0]), str(images[1]), "--preset", "mini", "--frames", "1", "--steps", "2",
                 "--out-dir", str(tmp_path / "lanczos"), "-q", "--no-upscale", "--save-spec", str(tmp_path / "nu.toml")]) == 0  # fmt: skip
    assert "upscale = false" in (tmp_path / "nu.toml").read_text().replace('"', "")
    assert main(["render", str(tmp_path / "nu.toml"), "--out-dir", str(tmp_path / "lanczos"), "-q"]) == 0
    assert main(["render", str(tmp_path / "nu.toml"), "--preset", "tiny", "--out-dir", str(tmp_path / "u"), "-q"]) == 2
    assert "'upscale' (CLI: --no-upscale) applies to the mini preset only" in capsys.readouterr().err


def test_save_spec_keeps_the_output_path_and_its_format(tmp_path, images, monkeypatch):
    # -o was left out of the saved spec: its replay wrote renders/<name>.mp4, not the gif asked for
    monkeypatch.chdir(tmp_path)
    assert main(["interpolate", str(images[0]), str(images[1]), "--frames", "1", "-o", "clips/my.gif", "--fps", "4",
                 "--out-dir", "r", "--save-spec", "saved/s.toml", *FAST]) == 0  # fmt: skip
    first = (tmp_path / "clips" / "my.gif").read_bytes()
    (tmp_path / "clips" / "my.gif").unlink()
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    assert main(["render", "../saved/s.toml", "--out-dir", "../r", "-q"]) == 0
    assert (tmp_path / "clips" / "my.gif").read_bytes()[:6] == first[:6] == b"GIF89a"


def test_settings_that_draw_the_same_frames_resume_and_a_different_render_names_what_differs(tmp_path, images, capsys):
    # an audit (2026-12-06): a setting spelt as its default, or one that acts on nothing, made the
    # same render "a different render"; and the refusal did not say what differed
    out = ["--out-dir", str(tmp_path / "r")]
    base = ["interpolate", str(images[0]), str(images[1]), "--frames", "2", *FAST, *out]
    assert main([*base, "--noise", "inverted", "--invert-refine", "0"]) == 0  # tiny refines nothing: 0 is its default
    mtimes = sorted(p.stat().st_mtime_ns for p in (tmp_path / "r").glob("frame_*.png"))
    cached = (tmp_path / "r" / "keyframe_noise.pt").stat().st_mtime_ns
    assert main([*base, "--noise", "inverted"]) == 0
    assert (tmp_path / "r" / "keyframe_noise.pt").stat().st_mtime_ns == cached  # not inverted again (a review)
    paced = ["--pacing", "even", "--out-dir", str(tmp_path / "p")]
    assert main(["interpolate", str(images[0]), str(images[1]), "--frames", "2", *FAST, *paced, "--pacing-tol", "0.25"]) == 0
    cached = (tmp_path / "p" / "pacing.json").stat().st_mtime_ns
    assert main(["interpolate", str(images[0]), str(images[1]), "--frames", "2", *FAST, *paced]) == 0  # 0.25: the default
    assert (tmp_path / "p" / "pacing.json").stat().st_mtime_ns == cached  # not measured again
    assert sorted(p.stat().st_mtime_ns for p in (tmp_path / "r").glob("frame_*.png")) == mtimes
    capsys.readouterr()
    assert main([*base, "--noise", "inverted", "--seed", "3"]) == 2
    assert "holds a different render (seed 0 -> 3;" in capsys.readouterr().err
    # --invert-refine without inverted noise changes nothing: said, not ignored
    assert main([*base, "--invert-refine", "4"]) == 2
    assert "--invert-refine refines inverted noise, and this render's noise is 'shared'" in capsys.readouterr().err
    assert main(["variations", str(images[0]), "-n", "2", *FAST, "--invert-refine", "4", *out]) == 2
    assert "Add --eta (variations around the image's inverted noise), or drop" in capsys.readouterr().err
    # even pacing refuses, before measuring, a total that could give one segment more than a segment takes
    import latentlab as ll

    enc, dec = ll.create_encoder("tiny"), ll.create_decoder("tiny")
    path = ll.Trajectory.interpolate(enc.encode_image(images[0]), enc.encode_image(images[1]), frames=3)
    dec.decode = lambda *a, **k: pytest.fail("measured before refusing")
    with pytest.raises(ll.ArgumentError, match=r"frames=200000 re-split .* use at most 100001 in all"):
        ll.even_pacing(path, enc, dec, frames=200_000)


def test_dtype_and_cpu_offload_flags_and_advice_said_as_flags(tmp_path, images, capsys, monkeypatch):
    # an audit (2026-12-06): the command line loaded every model in float32, with no offload, while
    # its out-of-memory advice said dtype=torch.float16 and cpu_offload=True, Python options
    import torch

    from latentlab.decoders import unclip

    two = ["interpolate", str(images[0]), str(images[1]), "--frames", "1"]
    assert main([*two, *FAST, "--dtype", "bfloat16", "--out-dir", str(tmp_path / "bf")]) == 0
    assert json.loads((tmp_path / "bf" / MANIFEST).read_text())["decoder"]["dtype"] == "bfloat16"
    capsys.readouterr()
    for flags, said in (
        (["--cpu-offload"], "--cpu-offload needs an accelerator device, e.g. --device cuda; got --device cpu."),
        (["--cpu-offload", "--preset", "mini"], "takes no cpu_offload= (--cpu-offload) (a loading option"),
        (["--dtype", "float16", "--preset", "mini"], "--dtype float16 is not supported on the CPU; use float32"),
        (["--noise", "inverted", "--invert-refine", "5"], "cannot refine inverted noise (implemented for the mini "
                                                          "decoder); pass --invert-refine 0."),
    ):
        assert main([*two, *FAST, *flags, "--out-dir", str(tmp_path / "x")]) == 2
        assert said in capsys.readouterr().err
    assert main([*two, "--preset", "tiny", "--steps", "4", "-q", "--out-dir", str(tmp_path / "s4")]) == 0
    assert "scheduler='dpm++' (in Python: ll.create_decoder(preset, scheduler='dpm++'); the command line has no flag)" \
        in capsys.readouterr().err

    def out_of_memory(self, *a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(unclip.StableUnCLIPDecoder, "_decode", out_of_memory)
    assert main([*two, *FAST, "--out-dir", str(tmp_path / "oom")]) == 2
    err = capsys.readouterr().err
    assert "use --dtype float16" in err and "load the decoder with --cpu-offload" in err and "dtype=torch" not in err


def test_latentlabs_runtime_warnings_are_one_line(tmp_path, images, capsys):
    # resuming after an upgrade warned as Python does: a source line and the wrong caller's code
    out = tmp_path / "r"
    cmd = ["interpolate", str(images[0]), str(images[1]), "--frames", "1", *FAST, "--out-dir", str(out)]
    assert main(cmd) == 0
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["versions"]["torch"] = "1.0.0"
    (out / MANIFEST).write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(cmd) == 0
    err = capsys.readouterr().err
    assert "latentlab: warning: out_dir" in err and "torch 1.0.0 -> " in err and "RuntimeWarning" not in err


def test_a_rerun_removes_the_partial_videos_of_a_killed_render(tmp_path, images):
    # an audit (2026-12-06): killed while encoding, a render left a hidden partial video beside its
    # video (ffmpeg finishes the frames it was sent), and no rerun ever removed it
    out = tmp_path / "r"
    stale = [tmp_path / ".r.mp4.0123abcd.tmp.mp4", tmp_path / ".r.mp4.deadbeef.tmp.mp4"]
    others = [tmp_path / ".other.mp4.0123abcd.tmp.mp4", tmp_path / ".r.mp4.notmine.tmp.mp4", tmp_path / "r.mp4.0123abcd.tmp.mp4"]
    fresh = tmp_path / ".r.mp4.feedf00d.tmp.mp4"  # written a minute ago: maybe another render's, writing the same -o
    hour_ago = time.time() - 3601
    for p in stale + others + [fresh]:
        p.write_bytes(b"partial")
        os.utime(p, (hour_ago, hour_ago) if p != fresh else (time.time() - 60, time.time() - 60))
    assert main(["interpolate", str(images[0]), str(images[1]), "--frames", "1", *FAST, "--out-dir", str(out)]) == 0
    assert (tmp_path / "r.mp4").is_file()
    assert not any(p.exists() for p in stale) and all(p.exists() for p in [*others, fresh])


def test_save_spec_keeps_the_out_dir(tmp_path, images, monkeypatch, capsys):
    # --out-dir was left out of the saved spec: its replay rendered renders/<name> afresh
    # instead of resuming (or re-encoding) the folder the first run wrote
    monkeypatch.chdir(tmp_path)
    assert main(["interpolate", str(images[0]), str(images[1]), "--frames", "2", "--out-dir", "runs/r",
                 "--save-spec", "saved/s.toml", *FAST]) == 0  # fmt: skip
    from latentlab.spec import load_spec

    assert load_spec(tmp_path / "saved" / "s.toml").out_dir == "../runs/r"  # relative to the spec's folder
    mtimes = sorted(p.stat().st_mtime_ns for p in (tmp_path / "runs" / "r").glob("frame_*.png"))
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    capsys.readouterr()
    assert main(["render", "../saved/s.toml", "-q"]) == 0
    assert not (other / "renders").exists()  # (until --name, below)
    assert sorted(p.stat().st_mtime_ns for p in (tmp_path / "runs" / "r").glob("frame_*.png")) == mtimes
    assert (tmp_path / "runs" / "r.mp4").is_file()
    # --out-dir still overrides the spec's, and so does --name (renders/<name>, as it says)
    assert main(["render", "../saved/s.toml", "--out-dir", "mine", "-q"]) == 0
    assert len(list((other / "mine").glob("frame_*.png"))) == len(mtimes) == 3
    assert main(["render", "../saved/s.toml", "--name", "take2", "-q"]) == 0
    assert len(list((other / "renders" / "take2").glob("frame_*.png"))) == 3 and (other / "renders" / "take2.mp4").is_file()


def test_format_that_contradicts_the_specs_output_is_refused(tmp_path, images, capsys):
    import latentlab as ll

    spec = tmp_path / "s.toml"
    spec.write_text(f'preset = "tiny"\noutput = "out/v.gif"\n[[keyframes]]\nimage = "{images[0].name}"\n'
                    f'[[keyframes]]\nimage = "{images[1].name}"\n')  # fmt: skip
    assert main(["render", str(spec), "--format", "mp4", "-q"]) == 2  # (the spec's own render: another --out-dir drops output)
    assert "'format' (--format) is 'mp4' but the spec's 'output' 'out/v.gif' ends in .gif" in capsys.readouterr().err
    from latentlab.spec import Spec, load_spec

    assert load_spec(spec).format == "gif"  # no format given: the output's suffix says it
    with pytest.raises(ll.SpecError, match="'format' is 'webp' but the spec's 'output'"):
        load_spec(spec.parent / "s.toml", format="webp")
    # -o replaces the spec's output: its format and --format agree, so nothing contradicts
    assert main(["render", str(spec), "--format", "mp4", "-o", str(tmp_path / "x.mp4"), "--frames", "1",
                 "--out-dir", str(tmp_path / "r"), *FAST]) == 0  # fmt: skip
    assert (tmp_path / "x.mp4").is_file() and not (tmp_path / "out").exists()
    # specs saved before 2026-12-06 wrote format = "mp4" always: their output's suffix still decides
    old = tmp_path / "old.toml"
    old.write_text('format = "mp4"\n' + spec.read_text())
    assert load_spec(old).format == "gif"
    kfs = load_spec(spec).keyframes
    assert Spec(keyframes=kfs, output="a.gif", base_dir=str(tmp_path)).format == "gif"  # not refused: format unset
    with pytest.raises(ll.SpecError, match="'format' is 'webp' but 'output'"):
        Spec(keyframes=kfs, output="a.gif", format="webp", base_dir=str(tmp_path))


def test_a_folder_that_cannot_be_made_is_refused_before_any_model_loads(tmp_path, images, monkeypatch, capsys):
    import latentlab as ll
    from latentlab import presets

    monkeypatch.setattr(presets, "create_encoder", lambda *a, **k: pytest.fail("a model was loaded"))
    blocked = str(images[0]) + "/sub"  # a file in the way: was a NotADirectoryError traceback, exit 1
    assert main(["interpolate", str(images[0]), str(images[1]), "--out-dir", blocked, *FAST]) == 2
    assert f"'{blocked}' cannot be made: '{images[0]}' is a file, not a folder" in capsys.readouterr().err
    assert main(["interpolate", str(images[0]), str(images[1]), "--out-dir", str(tmp_path / "r"), "-o", blocked + "/v.mp4", *FAST]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    monkeypatch.setattr(ll, "create_encoder", lambda *a, **k: pytest.fail("a model was loaded"))
    assert main(["generate", "a cat", "-n", "1", "--out-dir", blocked, *FAST]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_file_system_errors_and_a_closed_pipe_are_one_line_not_a_traceback(monkeypatch, capsys):
    import latentlab.cli as cli

    def refused(args):
        raise PermissionError(13, "Permission denied", "/some/where")

    monkeypatch.setattr(cli, "_presets", refused)
    assert main(["presets"]) == 2
    assert capsys.readouterr().err == "latentlab: error: Permission denied '/some/where'. Check the path and its permissions.\n"

    class Closed:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

    def unreachable(args):
        raise ConnectionError("the hub did not answer")

    monkeypatch.setattr(cli, "_presets", unreachable)
    assert main(["presets"]) == 2
    assert capsys.readouterr().err == "latentlab: error: the hub did not answer.\n"  # no path hint: not a path error
    monkeypatch.undo()
    closed = Closed()
    monkeypatch.setattr(sys, "stdout", closed)
    assert main(["presets", "--json"]) == 0  # `latentlab presets --json | head`: a traceback before
    assert sys.stdout is closed  # called from Python, main() leaves the caller's stdout alone


def test_warnings_are_one_line_on_the_command_line(tmp_path, images, capsys):
    import warnings

    assert main(["interpolate", str(images[0]), str(images[1]), "--frames", "1", "--out-dir", str(tmp_path / "r"), *FAST]) == 0
    err = capsys.readouterr().err
    assert "latentlab: warning: steps=2: the DDIMScheduler sampler" in err and "UserWarning" not in err
    before = warnings.showwarning
    main(["presets"])
    assert warnings.showwarning is before  # main() put the caller's back


def test_other_libraries_warnings_are_not_labelled_latentlabs(monkeypatch, capsys):
    import warnings

    import latentlab.cli as cli

    def warns(args):
        warnings.warn_explicit("TypedStorage is deprecated", UserWarning, "/site-packages/torch/storage.py", 1)
        return 0

    monkeypatch.setattr(cli, "_presets", warns)
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, *rest, **kw: seen.append(str(message))  # the caller's handler
        assert main(["presets"]) == 0
    assert seen == ["TypedStorage is deprecated"] and "latentlab: warning" not in capsys.readouterr().err


def test_pacing_uniform_and_o_keep_a_spec_files_base_dir(tmp_path, images):
    # --pacing uniform (and -o) loaded the file again and wrote its folder over its own base_dir
    (tmp_path / "sp").mkdir()
    spec = tmp_path / "sp" / "s.toml"
    spec.write_text(f'base_dir = ".."\npacing = "even"\n[[keyframes]]\nimage = "{images[0].name}"\n'
                    f'[[keyframes]]\nimage = "{images[1].name}"\n')  # fmt: skip
    assert main(["render", str(spec), "--pacing", "uniform", "--frames", "1", "--out-dir", str(tmp_path / "r"), *FAST]) == 0
    assert main(["render", str(spec), "--pacing", "uniform", "--frames", "1", "--out-dir", str(tmp_path / "r"),
                 "-o", str(tmp_path / "v.gif"), *FAST]) == 0  # fmt: skip
    assert (tmp_path / "v.gif").is_file()


def test_save_spec_with_an_o_it_cannot_write_saves_nothing(tmp_path, images, capsys):
    assert main(["interpolate", str(images[0]), str(images[1]), "-o", str(tmp_path / "v.mov"),
                 "--save-spec", str(tmp_path / "s.toml"), *FAST]) == 2  # fmt: skip
    assert "must end in .mp4, .gif or .webp" in capsys.readouterr().err and not (tmp_path / "s.toml").exists()


def test_a_link_to_nothing_as_out_dir_is_refused_before_any_model_loads(tmp_path, images, monkeypatch, capsys):
    from latentlab import presets

    monkeypatch.setattr(presets, "create_encoder", lambda *a, **k: pytest.fail("a model was loaded"))
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    assert main(["interpolate", str(images[0]), str(images[1]), "--out-dir", str(tmp_path / "dangling"), *FAST]) == 2
    assert "is a link to nothing" in capsys.readouterr().err


def test_cli_choices_are_the_specs_own():
    """The CLI spells its choices out (it imports nothing heavy to parse): they must stay the
    spec's, and the spec's pacing constants those of latentlab.pacing (which needs torch)."""
    from latentlab import pacing, spec
    from latentlab.cli import build_parser

    render = next(a for a in build_parser()._actions if a.dest == "command").choices["render"]
    choices = {a.dest: tuple(a.choices) for a in render._actions if a.choices}
    assert choices["noise"] == spec.NOISE_MODES and choices["pacing"] == spec.PACING_MODES
    assert choices["pacing_metric"] == spec.PACING_METRICS and choices["pacing_scope"] == spec.PACING_SCOPES
    assert choices["format"] == spec.FORMATS
    assert pacing.PACING_MODES == spec.PACING_MODES and pacing.PACING_METRICS == spec.PACING_METRICS


def test_video_settings_alone_keep_a_folder_the_same_render(tmp_path, images, capsys, monkeypatch):
    """Another fps, format, size, hold or batch size re-encodes (or resumes) the render in its
    folder without decoding again; another sampling setting is still a different render."""
    out = tmp_path / "take.1"  # a dot in the folder name: the video is take.1.mp4, not take.mp4
    base = ["interpolate", str(images[0]), str(images[1]), "--frames", "3", "--out-dir", str(out), *FAST]
    assert main(base) == 0 and (tmp_path / "take.1.mp4").is_file() and not (tmp_path / "take.mp4").exists()
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("frame_*.png")}
    for extra in (["--fps", "12", "--format", "gif"], ["--size", "32", "--hold-last", "2", "--batch-size", "1"]):
        assert main([*base, *extra]) == 0
        assert {p.name: p.stat().st_mtime_ns for p in out.glob("frame_*.png")} == mtimes  # nothing decoded again
    assert (tmp_path / "take.1.gif").is_file()
    capsys.readouterr()
    assert main([*base, "--seed", "3"]) == 2 and "different render" in capsys.readouterr().err


def test_output_options_are_checked_before_any_decoding(tmp_path, images, capsys, monkeypatch):
    import importlib

    import latentlab as ll

    render_module = importlib.import_module("latentlab.render")  # (ll.render is the function)
    monkeypatch.setattr(render_module, "render", lambda *a, **k: pytest.fail("rendered before refusing"))
    monkeypatch.setattr(ll, "variations", lambda *a, **k: pytest.fail("decoded before refusing"))
    base = ["interpolate", str(images[0]), str(images[1]), "--frames", "3", "--out-dir", str(tmp_path / "r"), *FAST]
    assert main([*base, "--format", "gif", "--fps", "60"]) == 2
    assert "too fast for gif" in capsys.readouterr().err
    # a hold longer than a gif delay says: 7 x 100 s at 0.01 fps (was refused only after the render)
    assert main([*base, "--format", "gif", "--fps", "0.01", "--hold-last", "6"]) == 2
    assert "at most 655.35 s" in capsys.readouterr().err
    assert main([*base, "--format", "gif", "-o", str(tmp_path / "x.mp4")]) == 2
    assert "disagree" in capsys.readouterr().err
    eta = ["variations", str(images[0]), "-n", "2", "--eta", "0.5", "--out-dir", str(tmp_path / "v"), *FAST]
    for extra, message in ((["--fps", "0"], "'fps'"), (["--size", "7"], "'size'"), (["-o", "v.avi"], "-o v.avi"),
                           (["--save-spec", "v.toml"], "takes no --save-spec"), (["--batch-size", "2"], "takes no --batch-size")):  # fmt: skip
        assert main([*eta, *extra]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "v").exists() and not (tmp_path / "v.toml").exists()


def test_variations_eta_writes_holds_and_pingpong(tmp_path, images):
    from latentlab.video import read_video, sequence

    out = tmp_path / "v"
    assert main(["variations", str(images[0]), "-n", "3", "--eta", "0.5", "--preset", "mini", "--steps", "2",
                 "--invert-refine", "0", "--out-dir", str(out), "--format", "mp4", "--fps", "4", "--hold-last", "2",
                 "--pingpong", "-q"]) == 0  # fmt: skip
    expected = sequence(np.zeros((3, 2, 2, 3), np.uint8), hold_last=2, pingpong=True)  # 3 variations, held, back
    assert read_video(tmp_path / "v.mp4").shape[0] == len(expected) > 3


def test_spec_errors_name_the_flag_too(tmp_path, images, capsys):
    base = ["interpolate", str(images[0]), str(images[1]), "--out-dir", str(tmp_path / "r"), *FAST]
    assert main([*base, "--hold-first", "-1"]) == 2
    assert "'hold_first' (--hold-first) must be an integer in [0, 100000]" in capsys.readouterr().err
    assert main([*base, "--guidance", "-2"]) == 2
    assert "'guidance_scale' (--guidance) must be a finite number >= 0" in capsys.readouterr().err


def test_a_label_or_an_explicit_default_does_not_make_another_render(tmp_path, images, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = 'preset = "tiny"\nsteps = 2\nframes = 2\n[[keyframes]]\nimage = "red_disc.png"\n[[keyframes]]\nimage = "blue_square.png"\n'
    (tmp_path / "s.toml").write_text(spec)
    assert main(["render", "s.toml", "--out-dir", "r", "-q"]) == 0
    mtimes = sorted(p.stat().st_mtime_ns for p in (tmp_path / "r").glob("frame_*.png"))
    edited = spec.replace('image = "red_disc.png"', 'image = "red_disc.png"\nlabel = "the red one"').replace(
        'image = "blue_square.png"', 'image = "blue_square.png"\nframes = 2\nhold = 0\neasing = "linear"'
    )
    (tmp_path / "s.toml").write_text(edited)
    assert main(["render", "s.toml", "--out-dir", "r", "-q"]) == 0
    assert sorted(p.stat().st_mtime_ns for p in (tmp_path / "r").glob("frame_*.png")) == mtimes
    (tmp_path / "s.toml").write_text(edited.replace("frames = 2\nhold", "frames = 3\nhold"))
    assert main(["render", "s.toml", "--out-dir", "r", "-q"]) == 2  # a real change is still another render


def test_pacing_uniform_turns_off_a_paced_spec(tmp_path, images, capsys):
    # a spec with finer pacing settings, rendered with --pacing uniform: the settings go with the pacing
    spec = tmp_path / "paced.toml"
    spec.write_text(f'pacing = "even"\npacing_metric = "pixel"\npacing_coarse = 3\npacing_relax = 1\n[[keyframes]]\nimage = "{images[0].name}"\n'
                    f'[[keyframes]]\nimage = "{images[1].name}"\n')  # fmt: skip
    assert main(["render", str(spec), "--pacing", "uniform", "--frames", "2", "--out-dir", str(tmp_path / "u"), *FAST]) == 0
    assert json.loads((tmp_path / "u" / MANIFEST).read_text())["spec"]["pacing"] == "uniform"
    # a finer setting asked for on the command line with uniform pacing is still refused
    assert main(["render", str(spec), "--pacing", "uniform", "--pacing-relax", "2", "--out-dir", str(tmp_path / "v"), *FAST]) == 2
    assert "Set 'pacing' (--pacing) to 'even' or 'fine'" in capsys.readouterr().err
    assert main(["render", str(spec), "--pacing", "uniform", "--pacing-metric", "pixel", "--out-dir", str(tmp_path / "w"), *FAST]) == 2
    assert "'pacing_metric' (--pacing-metric) applies to pacing" in capsys.readouterr().err


def test_seeds_are_checked_wherever_they_are_taken(tiny_encoder, tiny_decoder):
    import latentlab as ll

    from latentlab.errors import ArgumentError

    z = tiny_encoder.encode_text(["a", "b"])
    path = ll.Trajectory(z, frames=2)
    with pytest.raises(ArgumentError, match=r"keyframe_seeds\[...\] must be an integer"):
        ll.render(path, tiny_decoder, noise="slerp", keyframe_seeds=[1.5, 2], steps=1, progress=False)
    with pytest.raises(ArgumentError, match="seed must be an integer"):
        ll.variations(tiny_decoder, z[:1], n=2, seed=1.5, steps=1)
    with pytest.raises(ArgumentError, match="seed must be an integer"):
        ll.scrub(path, tiny_decoder, seed=1.5)
    prior = ll.create_prior("tiny")
    with pytest.raises(ArgumentError, match="seed must be an integer"):
        ll.generate(tiny_encoder, prior, tiny_decoder, "a cat", n=1, seed=2**64, steps=1)
    assert ll.generate(tiny_encoder, prior, tiny_decoder, "a cat", n=1, seed=np.int64(3), steps=1).shape[0] == 1


def test_a_folder_another_render_is_writing_is_refused_by_every_verb(tmp_path, images, capsys):
    """generate and variations --eta wrote into a folder another render was writing, as render did."""
    out = tmp_path / "busy"
    with folder_held_by_another_process(out) as pid:
        for argv in (["generate", "a red circle", "-n", "2", *FAST],
                     ["variations", str(images[0]), "-n", "2", "--eta", "0.5", "--preset", "mini", "-q"],
                     ["morph", str(images[0]), "--to", "a blue circle", "--frames", "2", *FAST]):  # fmt: skip
            assert main([*argv, "--out-dir", str(out), "--overwrite"]) == 2, argv
            err = capsys.readouterr().err
            assert f"is being written by another render (process {pid}) right now" in err
            assert "the lock file .latentlab.lock there" in err  # what holds it, found there
        assert sorted(p.name for p in out.iterdir()) == [".latentlab.lock"]  # nothing else was written
    assert not out.exists()  # the holder made the folder for its lock alone, and removed it


def test_path_mistakes_found_by_an_audit_are_refused_before_any_work(tmp_path, images, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afolder").mkdir()
    # a folder given as the image said "no such file"
    assert main(["morph", str(tmp_path / "afolder"), "--to", "a cat", *FAST]) == 2
    assert "is a folder, not an image file" in capsys.readouterr().err
    # --save-spec at a folder, or under a file: named as the flag, no temporary file left
    (tmp_path / "afile").write_text("x")
    (tmp_path / "afolder" / "s.toml").mkdir()
    for where, said in ((tmp_path / "afolder" / "s.toml", "it is a folder"), (tmp_path / "afile" / "s.toml", "is a file, not a folder")):
        assert main(["morph", str(images[0]), "--to", "a cat", "--save-spec", str(where), *FAST]) == 2
        err = capsys.readouterr().err
        assert "--save-spec: cannot write" in err and said in err
    assert not list(tmp_path.rglob("*.tmp*")) and (tmp_path / "afile").read_text() == "x"
    assert [p.name for p in (tmp_path / "afolder").iterdir()] == ["s.toml"]
    # a hold no video could hold was accepted, then failed in the assembler (a 7 GiB index array)
    assert main(["morph", str(images[0]), "--to", "a cat", "--hold-last", "1000000000", *FAST]) == 2
    assert "'hold_last' (--hold-last) must be an integer in [0, 100000]" in capsys.readouterr().err
    # variations --eta -o <a folder>: refused before decoding (it decoded everything, then failed)
    with monkeypatch.context() as m:
        m.setattr(__import__("latentlab"), "variations", lambda *a, **k: pytest.fail("decoded before refusing"))
        (tmp_path / "clip.gif").mkdir()  # (a folder without a video suffix was refused by its suffix already)
        assert main(["variations", str(images[0]), "--eta", "0.5", "-o", str(tmp_path / "clip.gif"), *FAST]) == 2
    assert "clip.gif is a folder" in capsys.readouterr().err
    # library errors name the flags (they said keyframes[1].text_diff.theta, device='cpu')
    assert main(["morph", str(images[0]), "--to", "a cat", "--theta", "2", *FAST]) == 2
    assert "text_diff.theta (--theta) must be a number in [0, 1]" in capsys.readouterr().err
    import torch

    if not torch.cuda.is_available():
        assert main(["morph", str(images[0]), "--to", "a cat", "--device", "cuda", *FAST]) == 2
        assert "use --device cpu" in capsys.readouterr().err
    assert main(["morph", str(images[0]), "--to", "a cat", "--device", "gpu", *FAST]) == 2  # it said "device must be"
    assert "--device must be a torch device such as cpu or cuda:0, got 'gpu'" in capsys.readouterr().err
    # advice to pass checkpoint= (no such flag) says where it applies
    import latentlab as ll

    def offline(*a, **k):
        raise ll.ArgumentError("weights not found. Download them, or pass checkpoint= with a local weights file.")

    with monkeypatch.context() as m:
        m.setattr(__import__("latentlab.presets").presets, "create_encoder", offline)
        assert main(["morph", str(images[0]), "--to", "a cat", *FAST]) == 2
    assert "the command line has none" in capsys.readouterr().err
    # no command: the help is a usage error, on stderr
    assert main([]) == 2
    out = capsys.readouterr()
    assert out.out == "" and "usage:" in out.err


def test_variations_of_a_caption_are_named_after_the_whole_caption(tmp_path, monkeypatch):
    # "text:a red circle. small/blue" was named "blue-variations" (Path(...).stem)
    monkeypatch.chdir(tmp_path)
    assert main(["variations", "text:a red circle. small/blue", "-n", "2", "--preset", "mini", "--steps", "2", "-q"]) == 0
    assert (tmp_path / "renders" / "text-a-red-circle-small-blue-variations").is_dir()


def test_generate_at_a_step_count_the_timestep_fix_changed_does_not_keep_older_pictures(tmp_path, monkeypatch, capsys):
    # mini at 61 steps drew saturated pictures before the trailing-timesteps fix: a folder drawn then
    # (its generate.json without the mark) is other pictures, not resumed; 60 steps is unmarked
    monkeypatch.chdir(tmp_path)
    argv = ["generate", "a red circle", "-n", "1", "--preset", "mini", "--steps", "61", "-q"]
    assert main(argv) == 0
    meta_path = tmp_path / "renders" / "a-red-circle" / "generate.json"
    meta = json.loads(meta_path.read_text())
    assert meta["timesteps"] == "exact"
    meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "timesteps"}))  # as written before
    assert main([*argv[:3], "2", *argv[4:]]) == 2 and "already holds other pictures" in capsys.readouterr().err
    assert main(["generate", "a red circle", "-n", "1", "--preset", "mini", "--steps", "60", "-q", "--name", "b"]) == 0
    assert "timesteps" not in json.loads((tmp_path / "renders" / "b" / "generate.json").read_text())


# -- interruptions (an audit of interrupted renders, 2026-12-06) ----------------------------------

ETA = ["--eta", "0.5", "--preset", "mini", "--steps", "2", "--invert-refine", "0", "-q"]


def _contents(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder`` (hidden ones too), by name."""
    return {p.name: p.read_bytes() if p.is_file() else b"<folder>" for p in folder.iterdir()}


def test_an_interrupted_variations_eta_keeps_the_earlier_set_until_the_new_one_is_complete(tmp_path, images, monkeypatch, capsys):
    """variations --eta deleted the earlier run's frames and variations.json before writing the
    new ones: Ctrl-C while writing left part of the new set, which the rerun refused as another
    render's. Now the new set is written aside and swapped in whole."""
    import latentlab.video as video

    out = tmp_path / "v"
    argv = ["variations", str(images[0]), "--out-dir", str(out), "-o", str(tmp_path / "v.gif"), *ETA]
    assert main([*argv, "-n", "3"]) == 0
    earlier = _contents(out)
    assert sum(n.startswith("frame_") for n in earlier) == 3 and "variations.json" in earlier
    real, saved = video.save_image, []

    def stop_after_one(*a, **k):
        if saved:
            raise KeyboardInterrupt
        saved.append(a[1])
        return real(*a, **k)

    with monkeypatch.context() as m:
        m.setattr(video, "save_image", stop_after_one)
        assert main([*argv, "-n", "2", "--seed", "5"]) == 130
    assert saved  # it was stopped while writing the new frames
    assert "nothing was replaced" in capsys.readouterr().err
    assert _contents(out) == earlier  # the earlier set, whole, and nothing of the new one (no hidden folder either)
    stale = out / ".variations.0123abcd.tmp"  # the new set of a run killed (SIGKILL) before the swap
    stale.mkdir()
    (stale / "frame_00000.png").write_bytes(b"partial")
    assert main([*argv, "-n", "2", "--seed", "5"]) == 0  # the rerun is not refused, and removes that
    assert sorted(p.name for p in out.glob("frame_*.png")) == ["frame_00000.png", "frame_00001.png"]
    assert json.loads((out / "variations.json").read_text())["seed"] == 5
    # a full disk once the new set is in (the video): said as such, not "the earlier variations stay"
    import errno

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as m:
        m.setattr(video, "write_video", full)
        capsys.readouterr()
        assert main([*argv, "-n", "2", "--seed", "6"]) == 2
    assert "the new variations are in place; the video or contact sheet was not written" in capsys.readouterr().err
    assert json.loads((out / "variations.json").read_text())["seed"] == 6
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_a_sigterm_while_variations_eta_swaps_its_set_in_waits_for_the_swap(tmp_path, images, monkeypatch, capsys):
    """The swap of the new set for the earlier one is a few renames: a Ctrl-C or kill meanwhile
    waits for them, so the folder holds one set or the other, never a mix."""
    out = tmp_path / "v"
    argv = ["variations", str(images[0]), "--out-dir", str(out), "-o", str(tmp_path / "v.gif"), *ETA]
    assert main([*argv, "-n", "3"]) == 0
    earlier = {p.name: p.read_bytes() for p in out.glob("frame_*.png")}
    real, sent = os.replace, []

    def replace(src, dst):
        if Path(dst).parent == out and Path(dst).name.startswith("frame_") and not sent:  # the swap's first rename
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                raise AssertionError("no SIGTERM handler: the signal would end the test run")
            sent.append(dst)
            os.kill(os.getpid(), signal.SIGTERM)
        return real(src, dst)

    with monkeypatch.context() as m:
        m.setattr(os, "replace", replace)
        assert main([*argv, "-n", "2", "--seed", "5"]) == 143
    assert sent
    assert "the new variations are in" in capsys.readouterr().err
    frames = {p.name: p.read_bytes() for p in out.glob("frame_*.png")}
    assert sorted(frames) == ["frame_00000.png", "frame_00001.png"]  # the new set, whole
    assert all(frames[n] != earlier[n] for n in frames)
    assert json.loads((out / "variations.json").read_text())["seed"] == 5
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no lock or staging folder left


def test_generate_draws_damaged_pictures_again(tmp_path, monkeypatch, capsys):
    """A truncated picture stopped the rerun ("cannot read"), one of another size raised a
    traceback from the contact sheet: such pictures are drawn again, as a render's frames are."""
    import latentlab as ll
    from PIL import Image

    from latentlab.video import load_image

    out = tmp_path / "g"
    argv = ["generate", "a red cat", "-n", "5", "--batch-size", "2", "--out-dir", str(out), *FAST]
    assert main(argv) == 0
    before = {k: load_image(out / f"frame_{k:05d}.png") for k in range(5)}
    data = (out / "frame_00001.png").read_bytes()
    (out / "frame_00001.png").write_bytes(data[: len(data) // 2])  # truncated
    Image.new("RGB", (32, 32)).save(out / "frame_00002.png")  # another size
    Image.fromarray(before[4]).convert("L").save(out / "frame_00004.png")  # another mode
    real, calls = ll.generate, []
    monkeypatch.setattr(ll, "generate", lambda *a, **k: calls.append((k["seed"], k["n"])) or real(*a, **k))
    assert main(argv) == 0, capsys.readouterr().err
    assert calls == [(1, 2), (4, 1)]  # the damaged ones only, in runs of consecutive pictures
    for k in range(5):
        assert np.abs(load_image(out / f"frame_{k:05d}.png").astype(int) - before[k].astype(int)).max() <= 2
    assert (out / "contact_sheet.png").is_file()


def test_an_unreadable_generate_json_is_said_as_such(tmp_path, monkeypatch, capsys):
    """generate.json is written atomically (a kill mid-write left half a file), and an unreadable
    one is named, not reported as "other pictures"."""
    import latentlab as ll

    out = tmp_path / "g"
    argv = ["generate", "a red cat", "-n", "2", "--out-dir", str(out), *FAST]
    real, replaced = os.replace, []
    with monkeypatch.context() as m:
        m.setattr(os, "replace", lambda src, dst: replaced.append((Path(src).name, Path(dst).name)) or real(src, dst))
        assert main(argv) == 0
    assert [s for s, d in replaced if d == "generate.json"][0].startswith(".generate.json.")  # replaced whole
    for damage in ('{"prompt": "a red c', ""):
        (out / "generate.json").write_text(damage)
        with monkeypatch.context() as m:
            m.setattr(ll, "create_encoder", lambda *a, **k: pytest.fail("a model was loaded"))
            assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"{out / 'generate.json'} is unreadable" in err and "2 pictures" in err and "--overwrite" in err
        assert "other pictures" not in err
    assert main([*argv, "--overwrite"]) == 0 and json.loads((out / "generate.json").read_text())["num"] == 2


def test_ctrl_c_while_pacing_keeps_what_it_measured(tmp_path, images, monkeypatch, capsys):
    """Ctrl-C while even pacing measured lost every decode so far (the measurement was kept only
    once finished): they are kept in pacing_partial.pt, saved as they come too (for a kill), and
    the rerun decodes only the rest and paces exactly as an uninterrupted run (batch size 1, so
    the same batches), leaving no partial file."""
    import importlib

    import torch

    import latentlab.jobs as jobs

    render = importlib.import_module("latentlab.render")  # (latentlab.render is also the function)
    real, calls, stop = render.decode_frames, [], [0]

    def counting(decoder, z, noise, **k):
        calls.append(len(z))
        if len(calls) == stop[0]:
            saved = torch.load(tmp_path / "cut" / jobs.PACING_PARTIAL, weights_only=True)  # before any exception
            assert 1 <= len(saved["points"]) <= stop[0] - 1
            raise KeyboardInterrupt
        return real(decoder, z, noise, **k)

    monkeypatch.setattr(render, "decode_frames", counting)
    common = ["interpolate", str(images[0]), str(images[1]), "--frames", "6", "--pacing", "even", "--batch-size", "1",
              *FAST]  # fmt: skip
    assert main([*common, "--out-dir", str(tmp_path / "whole")]) == 0
    whole, whole_calls = json.loads((tmp_path / "whole" / "pacing.json").read_text()), len(calls)
    assert not (tmp_path / "whole" / jobs.PACING_PARTIAL).exists()
    calls.clear()
    stop[0] = 4
    monkeypatch.setattr(jobs._PacingCheckpoint, "every", 0.0)  # saved after every decode, as on a slow decoder
    assert main([*common, "--out-dir", str(tmp_path / "cut")]) == 130
    err = capsys.readouterr().err
    assert "interrupted while measuring the pacing" in err and jobs.PACING_PARTIAL in err and "measure the rest" in err
    assert len(torch.load(tmp_path / "cut" / jobs.PACING_PARTIAL, weights_only=True)["points"]) == 3
    calls.clear()
    stop[0] = 0
    assert main([*common, "--out-dir", str(tmp_path / "cut")]) == 0
    assert len(calls) == whole_calls - 3  # the 3 measured pictures are not decoded again
    assert json.loads((tmp_path / "cut" / "pacing.json").read_text()) == whole
    assert not (tmp_path / "cut" / jobs.PACING_PARTIAL).exists()
    assert main([*common, "--out-dir", str(tmp_path / "cut")]) == 0  # (finished: kept frames, nothing measured)

    def stopped(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(jobs, "pace_spec", stopped)
    argv = ["interpolate", str(images[0]), str(images[1]), "--frames", "4", "--out-dir", str(tmp_path / "r"), *FAST]
    assert main([*argv, "--pacing", "even"]) == 130
    err = capsys.readouterr().err
    assert "interrupted before the pacing measured anything" in err
    monkeypatch.setattr(jobs, "render_spec", stopped)
    assert main(argv) == 130  # uniform pacing: nothing is measured, nothing said of it
    err = capsys.readouterr().err
    assert "interrupted before any frame was finished" in err and "pacing" not in err


def test_ctrl_c_before_drawing_does_not_promise_a_resume_of_another_render(tmp_path, images, monkeypatch, capsys):
    """Ctrl-C while the models loaded, for the decoder's default steps into a folder of a 2-step render: it said
    "finished frames are kept ...; run the same command again to resume", which is refused.
    (--seed 3 or --steps 3 into a seed-0, 2-step render's folder is refused now before the models load.)"""
    from latentlab import presets

    argv = ["interpolate", str(images[0]), str(images[1]), "--frames", "3", "--out-dir", str(tmp_path / "r"), *FAST]
    assert main(argv) == 0
    capsys.readouterr()

    def loading(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(presets, "create_encoder", loading)
    # (--steps 3 is refused before they load too; unset, the steps are the decoder's default, 10: told apart once it loads)
    assert main([*argv[:-len(FAST)], "--preset", "tiny", "-q"]) == 130
    err = capsys.readouterr().err
    assert "4 frames it holds (not known to be this render's) were left as they were" in err and "resume" not in err
    assert main([*argv, "--fps", "12"]) == 130  # the same render (another fps draws the same frames)
    assert "finished frames are kept" in capsys.readouterr().err


def test_sigterm_stops_like_ctrl_c_keeping_finished_pictures_and_releasing_the_lock(tmp_path, monkeypatch, capsys):
    """SIGTERM (kill) ended the command silently (status -15), its lock left behind: now it is
    an interruption, said as Ctrl-C's is, with status 143; main() restores the handler it found."""
    import latentlab as ll

    out = tmp_path / "g"
    real = ll.generate

    def killed_on_the_second_batch(*a, **k):
        if k["seed"] > 0:
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                raise AssertionError("no SIGTERM handler: the signal would end the test run")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)  # the handler interrupts the sleep
            raise AssertionError("SIGTERM did not interrupt")
        return real(*a, **k)

    monkeypatch.setattr(ll, "generate", killed_on_the_second_batch)
    found = signal.getsignal(signal.SIGTERM)
    assert main(["generate", "a red cat", "-n", "4", "--batch-size", "2", "--out-dir", str(out), *FAST]) == 143
    assert "finished pictures are kept" in capsys.readouterr().err
    assert sorted(p.name for p in out.glob("frame_*.png")) == ["frame_00000.png", "frame_00001.png"]
    assert not (out / ".latentlab.lock").exists()
    assert signal.getsignal(signal.SIGTERM) is found
    # a SIGTERM ignored by whoever started us stays ignored (a review: main() made it an interrupt)
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        seen = []
        monkeypatch.setattr("latentlab.cli._main", lambda *a, **k: seen.append(signal.getsignal(signal.SIGTERM)) or 0)
        assert main(["presets"]) == 0 and seen == [signal.SIG_IGN]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_full_disk_names_the_folder_and_says_the_finished_pictures_are_kept(tmp_path, monkeypatch, capsys):
    import errno

    import latentlab.video as video

    out = tmp_path / "g"
    real, saved = video.save_image, []

    def full(*a, **k):
        if len(saved) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        saved.append(a[1])
        return real(*a, **k)

    monkeypatch.setattr(video, "save_image", full)
    assert main(["generate", "a red cat", "-n", "4", "--batch-size", "2", "--out-dir", str(out), *FAST]) == 2
    err = capsys.readouterr().err
    assert f"no space left on the device (writing {out}/); finished pictures are kept: free space and run the same command again" in err
    assert len(list(out.glob("frame_*.png"))) == 2


@pytest.mark.parametrize("arg, said", [
    ("https://example.com/cat.png", "'https://example.com/cat.png' is a URL. latentlab reads local files only"),
    ("Text:a cat", "no such file 'Text:a cat'; for a caption write text: in lower case: 'text:a cat'."),
    ("a red cat", "no such file 'a red cat' (check the path); for a caption write text:CAPTION, e.g. 'text:a red cat'."),
])
def test_a_keyframe_that_is_no_file_says_what_it_looks_like(arg, said, images, monkeypatch, capsys, tmp_path):
    # a review and an audit of typed text: the CLI made these absolute paths first ('/cwd/https:/...'),
    # so they were missing files to check, never a URL or a caption missing its text:
    _no_models(monkeypatch)
    monkeypatch.chdir(tmp_path)
    assert main(["interpolate", str(images[0]), arg, "--out-dir", str(tmp_path / "r"), *FAST]) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1


def test_generate_says_when_its_prompt_looks_like_a_keyframe(tmp_path, images, monkeypatch, capsys):
    # an audit of typed text: "text:a cat" was drawn with the prefix embedded (cosine 0.90 to "a cat"), and
    # an existing picture's path was drawn as words, both without a word
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "text:a red cat", "-n", "1", "--out-dir", str(tmp_path / "g"), *FAST]) == 0
    err = capsys.readouterr().err
    assert "latentlab: warning: generate's prompt is a caption already: drawing 'a red cat', without 'text:'." in err
    assert json.loads((tmp_path / "g" / "generate.json").read_text())["prompt"] == "a red cat"
    assert main(["generate", str(images[0]), "-n", "1", "--out-dir", str(tmp_path / "h"), *FAST]) == 0
    err = capsys.readouterr().err
    assert f"is a picture file, but generate draws pictures of the prompt's words; for pictures like that picture, run `latentlab variations {images[0]}`" in err
    long = "a cat " * 60 + "photo.png"  # (a second review: is_file raised ENAMETOOLONG, and generate failed)
    assert main(["generate", long, "-n", "1", "--out-dir", str(tmp_path / "l"), *FAST]) == 0


def test_a_caption_starting_with_a_dash_gets_a_hint(capsys):
    # an audit of typed text: `generate -cat` said only that the prompt was missing, `--to -blue` that
    # --to expected one argument; a mistyped flag, or a missing prompt, gets argparse's message alone
    for argv, said in ((["generate", "-cat"], "the following arguments are required: prompt (If '-cat' is a caption"),
                       (["morph", "x.png", "--to", "-blue"], "expected one argument (If '-blue' is a caption")):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and said in err and "--to='" in err and "`latentlab generate -- '" in err
    for argv in (["interpolate", "a.png", "b.png", "--bogus"], ["generate"]):
        with pytest.raises(SystemExit):
            main(argv)
        assert "If '" not in capsys.readouterr().err


def test_running_out_of_memory_while_writing_the_video_says_so_and_keeps_the_frames(tmp_path, images, monkeypatch, capsys):
    # an audit of long renders: the video of thousands of frames at a large size ran out of memory
    # after every frame was drawn, with a raw MemoryError traceback and status 1
    from latentlab import video

    def oom(*a, **k):
        raise MemoryError

    monkeypatch.setattr(video, "write_video", oom)
    out = tmp_path / "r"
    assert main(["interpolate", str(images[0]), str(images[1]), "--frames", "3", "--out-dir", str(out), *FAST]) == 2
    err = capsys.readouterr().err
    assert f"latentlab: error: out of memory; finished frames are kept in {out}/. Run the same command again" in err
    assert len(list(out.glob("frame_*.png"))) == 4  # (3 frames between, and the closing one)


def test_out_of_memory_is_said_for_what_each_verb_kept_and_for_torch_s_cpu_allocator(tmp_path, images, monkeypatch, capsys):
    # a review: the message said frames were kept in a folder `variations --eta` had not made, spoke of
    # frames and --size to `generate`, and torch's CPU allocator (a RuntimeError) still gave a traceback
    from latentlab import video
    from latentlab.decoders import unclip

    def oom(*a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] . DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 68719476736 bytes.")

    def oom_now(*a, **k):
        raise MemoryError

    for method in ("_decode", "_decode_captioned"):  # (the tiny preset's decoder; it reads the prompt too)
        monkeypatch.setattr(unclip.StableUnCLIPDecoder, method, oom_now)
    out = tmp_path / "g"
    assert main(["generate", "a red cat", "-n", "2", "--out-dir", str(out), *FAST]) == 2
    err = capsys.readouterr().err
    assert "out of memory; no picture was finished. Run the same command again with a smaller --batch-size, or -n" in err
    for method in ("_decode", "_decode_captioned"):  # torch's CPU allocator: retried halved (3483dce), then the fixes
        monkeypatch.setattr(unclip.StableUnCLIPDecoder, method, oom)
    assert main(["generate", "a red cat", "-n", "2", "--out-dir", str(out), *FAST]) == 2
    assert "error: out of memory generating a single picture. Free memory" in capsys.readouterr().err
    monkeypatch.undo()

    monkeypatch.setattr(video, "write_video", oom_now)
    out = tmp_path / "v"
    assert main(["variations", str(images[0]), "--eta", "0.5", "-n", "2", "--out-dir", str(out), "--preset", "mini",
                 "--steps", "2", "--invert-refine", "0", "-q"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "out of memory; the new variations are in place; the video or contact sheet was not written." in err


# -- an audit of the spec files and CLI verbs (2026-12-07) ------------------------------------


def _no_models(monkeypatch):
    """Fail the test if any model loads (the refusals below come first)."""
    import latentlab as ll
    from latentlab import presets

    for mod in (ll, presets):
        monkeypatch.setattr(mod, "create_encoder", lambda *a, **k: pytest.fail("a model was loaded"))


def test_out_dir_or_name_over_a_spec_with_an_output_does_not_replace_its_video(tmp_path, images, monkeypatch):
    # docs/cli.md's "quick draft" (render my_spec.toml --steps 10 --out-dir renders/draft) wrote its frames
    # into the draft folder, and its video over the finished one the spec names
    monkeypatch.chdir(tmp_path)
    two = ["interpolate", str(images[0]), str(images[1]), "--frames", "1"]
    assert main([*two, *FAST, "-o", "final.gif", "--out-dir", "final", "--save-spec", "s.toml"]) == 0
    final = (tmp_path / "final.gif").read_bytes()
    assert main(["render", "s.toml", "--steps", "1", "--out-dir", "renders/draft", "-q"]) == 0
    assert main(["render", "s.toml", "--steps", "1", "--name", "draft2", "-q"]) == 0
    assert (tmp_path / "final.gif").read_bytes() == final
    assert (tmp_path / "renders" / "draft.gif").is_file() and (tmp_path / "renders" / "draft2.gif").is_file()  # its format kept
    # the spec's own folder, named again, is the spec's render: its video stays the spec's
    (tmp_path / "final.gif").unlink()
    assert main(["render", "s.toml", "--out-dir", "final", "-q"]) == 0 and (tmp_path / "final.gif").is_file()
    # a spec with an output but no out_dir (its folder renders/<name>): --name draws a draft beside renders/draft3,
    # not over its output (its own folder was reckoned after --name had renamed it, so the draft was refused)
    assert main([*two, *FAST, "-o", "named.gif", "--name", "named", "--save-spec", "n.toml"]) == 0
    assert "out_dir" not in (tmp_path / "n.toml").read_text()
    named = (tmp_path / "named.gif").read_bytes()
    assert main(["render", "n.toml", "--steps", "1", "--name", "draft3", "-q"]) == 0
    assert (tmp_path / "named.gif").read_bytes() == named and (tmp_path / "renders" / "draft3.gif").is_file()


def test_files_of_a_fresh_folder_that_a_render_would_write_are_not_replaced(tmp_path, images, monkeypatch, capsys):
    # a folder without frames or manifest: the user's embeddings.npy and keyframes.json were replaced
    monkeypatch.chdir(tmp_path)
    two = ["interpolate", str(images[0]), str(images[1]), "--frames", "1", *FAST, "--format", "gif"]
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "keyframes.json").write_text("my notes")
    np.save(tmp_path / "proj" / "embeddings.npy", np.arange(5))
    with monkeypatch.context() as m:
        _no_models(m)  # refused before any model loads
        assert main([*two, "--out-dir", "proj"]) == 2
        err = capsys.readouterr().err
        assert "has no manifest.json but holds embeddings.npy, keyframes.json" in err and "pass --overwrite" in err
    assert (tmp_path / "proj" / "keyframes.json").read_text() == "my notes" and np.load(tmp_path / "proj" / "embeddings.npy").shape == (5,)
    assert main([*two, "--out-dir", "proj", "--overwrite"]) == 0
    # what an interrupted render leaves before its manifest (keyframes.json, pacing.json) is its own: resumed
    (tmp_path / "r2").mkdir()
    (tmp_path / "r2" / "keyframes.json").write_text(json.dumps({"fingerprint": "x"}))
    assert main([*two, "--out-dir", "r2"]) == 0
    (tmp_path / "r3").mkdir()  # a file of the name pacing keeps its partial measurement in, not latentlab's
    (tmp_path / "r3" / "pacing_partial.pt").write_text("my notes")
    assert main([*two, "--out-dir", "r3"]) == 2 and "holds pacing_partial.pt" in capsys.readouterr().err


def test_a_video_this_render_did_not_write_is_not_replaced(tmp_path, images, monkeypatch, capsys):
    # the default <out-dir>.<format> and -o replaced an unrelated file without a word
    monkeypatch.chdir(tmp_path)
    two = ["interpolate", str(images[0]), str(images[1]), "--frames", "1", *FAST, "--format", "gif"]
    (tmp_path / "holiday.gif").write_text("my holiday video")
    with monkeypatch.context() as m:
        _no_models(m)  # refused before any model loads
        assert main([*two, "--out-dir", "holiday"]) == 2
        err = capsys.readouterr().err
        assert "the video 'holiday.gif' already exists and was not written by the render in 'holiday'" in err
        assert "pass --overwrite" in err and "overwrite=True" not in err
        assert main([*two, "--out-dir", "mine", "-o", "holiday.gif"]) == 2
        assert "'holiday.gif' already exists" in capsys.readouterr().err
    assert (tmp_path / "holiday.gif").read_text() == "my holiday video"
    assert not (tmp_path / "mine").exists()
    # its own video is rewritten by a rerun (another fps here), another render's -o is not
    assert main([*two, "--out-dir", "r"]) == 0
    assert main([*two, "--out-dir", "r", "--fps", "5"]) == 0
    (tmp_path / "r" / "videos.json").unlink()  # a folder rendered before the record: its default video is its own
    assert main([*two, "--out-dir", "r", "--fps", "6"]) == 0 and (tmp_path / "r" / "videos.json").is_file()
    assert main([*two, "--out-dir", "other", "-o", "r.gif"]) == 2 and "'r.gif' already exists" in capsys.readouterr().err
    (tmp_path / "r.gif").write_bytes(b"edited since")  # a file put there since: not the render's any more
    assert main([*two, "--out-dir", "r"]) == 2 and "was changed or replaced since" in capsys.readouterr().err
    # a video whose writing was cut short before its record (marked pending just before, with the state of
    # the file then) is its render's while that file is unchanged
    st = (tmp_path / "r.gif").stat()
    before = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    (tmp_path / "r" / "videos.json").write_text(json.dumps({"videos": {"../r.gif": {"pending": True, "before": before}}}))
    assert main([*two, "--out-dir", "r"]) == 0
    # but a pending mark alone, as a folder from elsewhere can carry, does not make a file of yours its own
    # (it replaced any .mp4/.gif/.webp the spec's output named); the render's default video stays its own
    (tmp_path / "r" / "videos.json").write_text(json.dumps({"videos": {"../r.gif": {"pending": True}}}))
    assert main([*two, "--out-dir", "r"]) == 0
    (tmp_path / "yours.gif").write_text("your video")
    for entry in ({"pending": True}, {"pending": True, "before": None}):
        (tmp_path / "r" / "videos.json").write_text(json.dumps({"videos": {"../yours.gif": entry}}))
        assert main([*two, "--out-dir", "r", "-o", "yours.gif"]) == 2
        assert "the video 'yours.gif' already exists and was replaced after a render of this folder" in capsys.readouterr().err
    assert (tmp_path / "yours.gif").read_text() == "your video"
    assert main([*two, "--out-dir", "r", "-o", "yours.gif", "--overwrite"]) == 0
    # a folder of an older latentlab: each default video is its own, also once another format is recorded
    (tmp_path / "r" / "videos.json").unlink()
    mp4 = ["interpolate", str(images[0]), str(images[1]), "--frames", "1", *FAST, "--format", "mp4"]
    assert main([*mp4, "--out-dir", "r"]) == 0 and main([*two, "--out-dir", "r", "--fps", "7"]) == 0
    # the folder deleted, its video kept: refused, and said why
    import shutil

    shutil.rmtree(tmp_path / "r")
    assert main([*two, "--out-dir", "r"]) == 2 and "that folder holds no render" in capsys.readouterr().err
    # --overwrite replaces it
    assert main([*two, "--out-dir", "holiday", "--overwrite"]) == 0 and (tmp_path / "holiday.gif").read_bytes()[:3] == b"GIF"
    # variations --eta keeps to the same rule, before any model loads
    with monkeypatch.context() as m:
        _no_models(m)
        assert main(["variations", str(images[0]), "-n", "2", "--eta", "0.3", "--preset", "mini", "--out-dir", "holiday2",
                     "-o", "holiday.gif", "-q"]) == 2  # fmt: skip
        assert "'holiday.gif' already exists" in capsys.readouterr().err


def test_a_tilde_in_a_path_flag_is_the_home_folder_everywhere(tmp_path, images, monkeypatch):
    # bash leaves --out-dir=~/x (and a quoted '~/x') as typed: generate kept ./~/x for generate.json and
    # its checks but wrote the pictures into $HOME/x, over another render's frames
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    assert main(["generate", "a red circle", "-n", "1", "--out-dir", "~/gen", *FAST]) == 0
    assert (home / "gen" / "generate.json").is_file() and (home / "gen" / "frame_00000.png").is_file()
    assert main(["interpolate", str(images[0]), str(images[1]), "--frames", "1", "--out-dir", "~/r", "-o", "~/r.gif",
                 "--save-spec", "~/s.toml", *FAST]) == 0  # fmt: skip
    assert (home / "r" / MANIFEST).is_file() and (home / "r.gif").is_file() and (home / "s.toml").is_file()
    assert main(["render", "~/s.toml", "-q"]) == 0  # the same render: resumed
    assert main(["generate", "a blue square", "-n", "1", "--out-dir", "~/r", *FAST]) == 2  # another render's folder
    assert not (work / "~").exists()


@pytest.mark.parametrize(
    "verb, flag",
    [(v, f) for v in ("morph", "render") for f in ("--out-dir", "-o", "--save-spec", "--name")]
    + [("generate", "--out-dir"), ("generate", "--name")],
)
def test_an_empty_path_flag_is_refused(flag, verb, tmp_path, images, monkeypatch, capsys):
    # an unset variable (--out-dir "$OUT") rendered into the current folder and wrote the video one level up;
    # --save-spec "" saved nothing, silently
    monkeypatch.chdir(tmp_path)
    _no_models(monkeypatch)
    (tmp_path / "s.toml").write_text(f'[[keyframes]]\nimage = "{images[0].name}"\n[[keyframes]]\nimage = "{images[1].name}"\n')
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = {"morph": ["morph", str(images[0]), "--to", "x"], "generate": ["generate", "a cat"], "render": ["render", "s.toml"]}[verb]
    assert main([*argv, "--preset", "tiny", "-q", flag, ""]) == 2
    err = capsys.readouterr().err
    assert f"latentlab: error: {flag} is empty" in err and "leave the flag out" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_save_spec_is_written_only_once_the_commands_checks_pass(tmp_path, images, monkeypatch, capsys):
    # --save-spec replaced the file before the command's own checks: a refused command still overwrote a spec
    from latentlab.spec import load_spec

    monkeypatch.chdir(tmp_path)
    keep = tmp_path / "keep.toml"
    keep.write_text("# my hand-written spec\n")
    two = ["interpolate", str(images[0]), str(images[1]), "--frames", "1", "--save-spec", "keep.toml", "-q", "--steps", "2"]
    assert main([*two, "--preset", "nope", "--out-dir", "a"]) == 2
    assert main(["interpolate", str(images[0]), "text:a cat", "--preset", "sd21-unclip-h", "--save-spec", "keep.toml",
                 "--out-dir", "b", "-q"]) == 2  # fmt: skip
    assert main([*two[:5], "--preset", "tiny", "--out-dir", "r", "-q", "--steps", "2"]) == 0  # (no --save-spec)
    capsys.readouterr()
    assert main([*two, "--preset", "tiny", "--out-dir", "r", "--seed", "5"]) == 2  # a folder holding another render
    assert "holds a different render" in capsys.readouterr().err
    assert keep.read_text() == "# my hand-written spec\n"
    assert main([*two, "--preset", "tiny", "--out-dir", "r"]) == 0
    assert load_spec(keep).preset == "tiny" and "# my hand-written spec" not in keep.read_text()


def test_generate_and_variations_eta_check_no_upscale_before_loading_models(tmp_path, images, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _no_models(monkeypatch)
    assert main(["generate", "x", "-n", "1", "--preset", "tiny", "--no-upscale", "-q"]) == 2
    assert "--no-upscale applies to the mini preset only" in capsys.readouterr().err
    assert main(["variations", str(images[0]), "--eta", "0.3", "-n", "2", "--preset", "tiny", "--no-upscale", "-q"]) == 2
    assert "--no-upscale applies to the mini preset only" in capsys.readouterr().err


def test_name_beside_out_dir_is_refused(tmp_path, images, monkeypatch, capsys):
    # --name was ignored, silently, where --out-dir was given
    monkeypatch.chdir(tmp_path)
    _no_models(monkeypatch)
    assert main(["morph", str(images[0]), "--to", "x", "--out-dir", "r", "--name", "n", *FAST]) == 2
    assert "--name 'n' and --out-dir 'r' both choose the render folder" in capsys.readouterr().err
    assert main(["generate", "x", "--out-dir", "r", "--name", "n", *FAST]) == 2
    assert "both choose the render folder" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_dtype_float16_with_mini_on_the_cpu_is_refused_before_any_warning(tmp_path, images, monkeypatch, capsys):
    # its encoder warned that float16 is slow on the CPU, then its decoder refused float16 there
    monkeypatch.chdir(tmp_path)
    _no_models(monkeypatch)
    for argv in (["morph", str(images[0]), "--to", "x"], ["generate", "x"]):
        assert main([*argv, "--preset", "mini", "--dtype", "float16", "-q"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("latentlab: error: --dtype float16 is not supported on the CPU") and "warning" not in err


def test_a_keyframe_that_is_not_a_picture_is_refused_before_the_models_load(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _no_models(monkeypatch)
    (tmp_path / "notes.png").write_text("hello")
    assert main(["interpolate", "notes.png", "text:a cat", "--preset", "tiny", "-q"]) == 2
    assert "keyframes[0].image: " in capsys.readouterr().err


def test_an_unknown_flag_is_said_with_the_verbs_usage(images, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["morph", str(images[0]), "--to", "x", "--bogus"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "usage: latentlab morph" in err and "unrecognized arguments: --bogus" in err


def test_the_overwrite_advice_is_said_as_the_flag(tmp_path, images, capsys):
    two = ["interpolate", str(images[0]), str(images[1]), "--frames", "1", "--out-dir", str(tmp_path / "r"), *FAST]
    assert main(two) == 0
    capsys.readouterr()
    assert main([*two, "--seed", "3"]) == 2
    err = capsys.readouterr().err
    assert "holds a different render" in err and "pass --overwrite" in err and "overwrite=True" not in err


def test_save_spec_spells_the_images_of_a_project_relative_to_the_spec(tmp_path, images, monkeypatch):
    # the command line's image paths went into the saved spec absolute (output and out_dir relative): a project
    # moved or copied elsewhere replayed the old folder's pictures, or none
    from latentlab.spec import load_spec

    project = tmp_path / "project"
    (project / "pics").mkdir(parents=True)
    for p in images[:2]:
        (project / "pics" / p.name).write_bytes(p.read_bytes())
    outside = tmp_path / "elsewhere" / images[0].name
    outside.parent.mkdir()
    outside.write_bytes(images[0].read_bytes())
    monkeypatch.chdir(project)
    assert main(["interpolate", "pics/red_disc.png", str(project / "pics" / "blue_square.png"), str(outside), "--frames", "1",
                 "--out-dir", "r", "--save-spec", "specs/s.toml", *FAST]) == 0  # fmt: skip
    saved = load_spec(project / "specs" / "s.toml")
    assert [kf["image"] for kf in saved.keyframes] == ["../pics/red_disc.png", "../pics/blue_square.png", str(outside)]
    import shutil

    moved = tmp_path / "moved"
    shutil.copytree(project, moved)
    shutil.rmtree(project)
    monkeypatch.chdir(moved / "specs")
    assert main(["render", "s.toml", "-q"]) == 0  # the moved project's own pictures, into its own folder
    assert (moved / "r.mp4").is_file()


def test_threads_flag_sets_torchs_threads_before_any_model_loads(tmp_path, images, monkeypatch, capsys):
    """--threads N (a profiling audit: on a busy 2-core CPU, 1 thread rendered 3x faster than 2)
    reaches torch.set_num_threads before any model loads, for every verb that runs torch, given after
    the verb or before it, and the threads are restored on return (main() may be called from Python)."""
    import torch

    import latentlab as ll
    from latentlab import presets

    events: list[tuple] = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: events.append(("threads", n)))

    def loading(*a, **k):
        events.append(("load",))
        raise KeyboardInterrupt  # stop there: the order is what is checked

    for mod in (ll, presets):
        for name in ("create_encoder", "create_decoder", "create_prior"):
            monkeypatch.setattr(mod, name, loading)
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "s.toml"
    spec.write_text(f'preset = "tiny"\n[[keyframes]]\nimage = "{images[0].as_posix()}"\n[[keyframes]]\ntext = "a cat"\n')
    a, b = str(images[0]), str(images[1])
    before = torch.get_num_threads()
    for argv in (
        ["morph", a, "--to", "a cat", "--threads", "1"],
        ["interpolate", a, b, "--threads", "1"],
        ["variations", a, "--threads", "1"],
        ["variations", a, "--eta", "0.3", "--threads", "1"],
        ["render", str(spec), "--threads", "1"],
        ["generate", "a cat", "-n", "1", "--threads", "1"],
        ["--threads", "1", "interpolate", a, b],  # before the verb
        ["--threads", "3", "interpolate", a, b, "--threads", "1"],  # the verb's own wins
    ):
        events.clear()
        preset = "mini" if "--eta" in argv else "tiny"  # (tiny has no DDIM eta: variations --eta refuses it before loading)
        assert main([*argv, "--preset", preset, "-q"]) == 130, argv
        assert events[:2] == [("threads", 1), ("load",)], (argv, events)
        assert events[-1] == ("threads", before), (argv, events)  # restored
    events.clear()
    assert main(["interpolate", a, b, "--preset", "tiny", "-q"]) == 130
    assert events == [("load",)]  # without the flag, torch's threads are left alone
    capsys.readouterr()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["morph", "x.png", "--to", "a cat", "--threads", "0"], "argument --threads: must be an integer >= 1, got 0"),
        (["generate", "a cat", "--threads", "two"], "argument --threads: must be an integer >= 1, got 'two'"),
        (["--threads", "-1", "render", "s.toml"], "argument --threads: must be an integer >= 1, got -1"),
    ],
)
def test_threads_flag_refuses_a_bad_count(argv, message, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch, "set_num_threads", lambda n: pytest.fail("threads set"))
    _no_models(monkeypatch)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_generate_and_variations_eta_keep_a_users_contact_sheet_in_a_fresh_folder(tmp_path, images, monkeypatch, capsys):
    # they refused frames, a manifest and embeddings.npy, but wrote over the user's own contact_sheet.png
    monkeypatch.chdir(tmp_path)
    _no_models(monkeypatch)
    for argv in (["generate", "x", "-n", "1", "--preset", "tiny", "--out-dir", "g", "-q"],
                 ["variations", str(images[0]), "--eta", "0.3", "-n", "2", "--preset", "tiny", "--out-dir", "g", "-q"]):
        (tmp_path / "g").mkdir(exist_ok=True)
        (tmp_path / "g" / "contact_sheet.png").write_bytes(b"mine")
        assert main(argv) == 2
        assert "contact_sheet.png" in capsys.readouterr().err
        assert (tmp_path / "g" / "contact_sheet.png").read_bytes() == b"mine"


def test_the_console_scripts_streams_cannot_stop_or_fail_a_finished_render(tmp_path, images):
    """A reader of stderr that went away (`2>&1 | head`) ended the render after its first frame
    with status 0 (the progress bar's BrokenPipeError was taken for `presets | head`); stdout on a
    full disk was said to be the render folder's; a path stdout's encoding cannot hold (cp1252)
    failed a finished render with a traceback."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "latentlab", "interpolate", str(images[0]), str(images[1]), "--frames", "6",
            "--batch-size", "1", "--steps", "1", "--preset", "tiny", "--format", "gif"]  # fmt: skip
    proc = subprocess.Popen([*base, "--out-dir", str(tmp_path / "piped")], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    proc.stderr.read(1)  # the first bar's first byte: the reader then goes away
    proc.stderr.close()
    assert proc.wait(timeout=300) == 0
    assert len(list((tmp_path / "piped").glob("frame_*.png"))) == 7 and (tmp_path / "piped.gif").is_file()
    with open("/dev/full", "w") as full:
        run = subprocess.run([*base, "--out-dir", str(tmp_path / "full"), "-q"], env=env, stdout=full,
                             stderr=subprocess.PIPE, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 2 and "could not write to standard output (No space left on device)" in run.stderr
    assert "finished frames are kept" not in run.stderr and (tmp_path / "full.gif").is_file()
    named = tmp_path / "r 日本 🎨"
    run = subprocess.run([*base, "--out-dir", str(named), "-q"], env={**env, "PYTHONIOENCODING": "cp1252"},
                         capture_output=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr.decode("cp1252", "replace")
    assert b"\\u65e5\\u672c" in run.stdout and (tmp_path / "r 日本 🎨.gif").is_file()


def test_a_caption_typed_under_a_non_utf8_locale_is_read_as_utf8(tmp_path, images, monkeypatch, capsys):
    """Under LC_ALL=C (no UTF-8 mode) Python hands over "crème" as surrogate escapes, which the
    text encoder embedded as they were; and a path the file-name encoding cannot hold ended in a
    traceback instead of one line naming the fix."""
    import latentlab.cli as cli
    from latentlab.errors import ArgumentError

    escaped = "a cr\udcc3\udca8me circle"  # what an ascii file-system encoding hands over
    assert cli._argv_text(escaped, "the caption") == "a cr\u00e8me circle" == cli._argv_text("a cr\u00e8me circle", "x")
    with pytest.raises(ArgumentError, match="is not UTF-8 text"):
        cli._argv_text("a cr\udce8me circle", "the caption")  # (latin-1 bytes)
    out = tmp_path / "r"
    assert main(["interpolate", f"text:{escaped}", "text:a blue square", "--frames", "1", "--out-dir", str(out),
                 "--format", "gif", *FAST]) == 0  # fmt: skip
    texts = [k.get("text") for k in json.loads((out / MANIFEST).read_text())["spec"]["keyframes"]]
    assert texts == ["a cr\u00e8me circle", "a blue square"]

    def refuse(args):
        raise UnicodeEncodeError("ascii", "out \u00e9", 4, 5, "ordinal not in range(128)")

    monkeypatch.setattr(cli, "_check_paths", refuse)
    monkeypatch.setattr(sys, "getfilesystemencoding", lambda: "ascii")
    assert main(["interpolate", str(images[0]), str(images[1]), *FAST]) == 2
    err = capsys.readouterr().err
    assert "'\u00e9' cannot be used here: this system's encoding for file names and text is ascii" in err
    assert "LANG=C.UTF-8" in err and "Traceback" not in err


def test_an_mp4_without_ffmpeg_is_refused_before_any_model_loads(tmp_path, images, monkeypatch, capsys):
    """A machine without ffmpeg found out after every frame was drawn, from a traceback."""
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(tmp_path / "no-ffmpeg"))
    with monkeypatch.context() as m:
        _no_models(m)
        argv = ["interpolate", str(images[0]), str(images[1]), "--frames", "2", "--out-dir", str(tmp_path / "r"), *FAST]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "cannot write mp4: it is encoded by ffmpeg" in err and "IMAGEIO_FFMPEG_EXE" in err and "--format gif" in err
        assert main(["variations", str(images[0]), "--eta", "0.5", "--format", "mp4", "-n", "2",
                     "--out-dir", str(tmp_path / "v"), *FAST]) == 2  # fmt: skip
        assert "cannot write mp4" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not (tmp_path / "v" / "frame_00000.png").exists()
    assert main([*argv[:-len(FAST)], *FAST, "--format", "gif"]) == 0  # gif needs no ffmpeg


def test_a_caption_under_a_non_utf8_locale_names_a_folder_it_can_make(tmp_path, images):
    """Once captions typed under LC_ALL=C were read as UTF-8 ("crème"), the default render folder
    named after them could not be made (UnicodeEncodeError: ascii): its letters the file names
    cannot hold become dashes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
    env.update(LC_ALL="C", PYTHONUTF8="0", PYTHONPATH=str(Path(__file__).resolve().parents[1]), OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-m", "latentlab", "morph", str(images[0]), "--to", "cr\u00e8me br\u00fbl\u00e9e",
                          "--frames", "1", "--format", "gif", "-q", *FAST], cwd=tmp_path, env=env, capture_output=True,
                         timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr.decode("ascii", "backslashreplace")
    (folder,) = [p for p in (tmp_path / "renders").iterdir() if p.is_dir()]
    assert folder.name.isascii() and "cr-me-br-l-e" in folder.name
    texts = json.loads((folder / MANIFEST).read_text())["spec"]["keyframes"][1]["text_diff"]
    assert texts["to"] == "cr\u00e8me br\u00fbl\u00e9e"  # read as the UTF-8 it was typed in


def test_a_folder_whose_name_holds_a_backslash_is_saved_and_read_back(tmp_path, images, monkeypatch):
    """--save-spec made --out-dir 'out\\1' (a legal name here) relative, which the spec's check of
    paths written on Windows then refused, failing the whole command."""
    monkeypatch.chdir(tmp_path)
    argv = ["interpolate", str(images[0]), str(images[1]), "--frames", "1", "--format", "gif", *FAST]
    assert main([*argv, "--out-dir", "out\\1", "--save-spec", "saved.toml"]) == 0
    assert (tmp_path / "out\\1").is_dir()
    assert main(["render", "saved.toml", "-q"]) == 0  # (the same render: resumed, nothing to draw)
    from latentlab.spec import load_spec

    kfs = [{"image": str(images[0])}, {"image": str(images[1])}]
    assert load_spec({"keyframes": kfs, "out_dir": "out\\1", "base_dir": str(tmp_path)})  # (it is there: meant)
    with pytest.raises(Exception, match="write paths in a spec with '/'"):
        load_spec({"keyframes": kfs, "out_dir": "new\\2", "base_dir": str(tmp_path)})


def test_refusals_of_an_older_latentlabs_folders_say_what_changed(tmp_path, images, monkeypatch, capsys):
    """A mini render from before new weights shipped was refused for 'the decoder' alone (and
    --no-upscale, the docs' old-drawing flag, got the same words); an --eta folder from before
    variations.json was 'another render' though the user made it with the same command."""
    import latentlab.jobs as jobs

    from latentlab.mini import weights_available

    argv = ["interpolate", str(images[0]), str(images[1]), "--frames", "2", "--format", "gif", "-q",
            "--out-dir", str(tmp_path / "r"), *(["--steps", "2"] if weights_available() else FAST)]  # fmt: skip
    assert main(argv) == 0
    manifest = json.loads((tmp_path / "r" / MANIFEST).read_text())
    if weights_available():  # a mini render of weights an older latentlab shipped, drawn without the upscaler
        manifest["decoder"] = {**manifest["decoder"], "weights_sha256": "0429881ac1b125d7", "upscaler": None}
        (tmp_path / "r" / MANIFEST).write_text(json.dumps(manifest))
        for extra in ([], ["--no-upscale"]):
            assert main([*argv, *extra]) == 2
            err = capsys.readouterr().err
            assert "the decoder (" in err and "weights_sha256 '0429881ac1b125d7' -> " in err
            assert "Its decoder's weights are not these (an upgrade of latentlab ships new mini weights" in err
            assert "upscale = " not in err  # (no flag continues it)
        tiny = ["interpolate", str(images[0]), str(images[1]), "--frames", "2", "--format", "gif", *FAST]
        assert main([*tiny, "--out-dir", str(tmp_path / "r")]) == 2  # another preset:
        assert "weights are not these" not in capsys.readouterr().err  # its list says so, no weights note
    old = tmp_path / "ve"
    old.mkdir()
    (old / "contact_sheet.png").write_bytes((tmp_path / "r" / "frame_00000.png").read_bytes())
    with monkeypatch.context() as m:
        _no_models(m)
        eta = ["variations", str(images[0]), "--eta", "0.5", "-n", "2", "--out-dir", str(old), *FAST]
        assert main(eta) == 2 and "already holds other pictures (0 frames, contact_sheet.png)" in capsys.readouterr().err
        for k in range(2):
            (old / f"frame_{k:05d}.png").write_bytes((tmp_path / "r" / f"frame_{k:05d}.png").read_bytes())
        assert main(eta) == 2
    err = capsys.readouterr().err
    assert "holds frames with no variations.json, the record of an --eta run (an --eta run of a latentlab before " \
           "2026-12-05 kept none" in err and "--overwrite" in err
    assert jobs._decoder_change({"a": 1}, {"a": 2, "b": "x" * 80}) == (
        "the decoder (a 1 -> 2; b None -> '" + "x" * 36 + "...)")


@pytest.mark.skipif(not __import__("latentlab.mini", fromlist=["weights_available"]).weights_available(),
                    reason="needs the shipped mini weights")
def test_a_mini_render_of_the_other_upscale_setting_is_told_the_flag(tmp_path, images, capsys):
    argv = ["interpolate", str(images[0]), str(images[1]), "--frames", "1", "--format", "gif", "--steps", "2", "-q",
            "--out-dir", str(tmp_path / "r"), "--size", "128"]  # fmt: skip
    assert main([*argv, "--no-upscale"]) == 0
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "the decoder (upscaler 'none (Lanczos resize)' -> " in err and "It was drawn without the learned upscaler" in err
    assert "(CLI: --no-upscale) continues it" in err


def test_the_decoder_notes_of_a_refusal_say_only_what_the_hashes_show():
    """A second and third review: the upscale note named a flag that continued nothing (new
    weights with the other setting, a record of the older format, frames at the native size)
    and the weights note blamed the weights where the upscaler's file had gone."""
    from types import SimpleNamespace

    from latentlab.jobs import _decoder_note
    from latentlab.mini.runtime import MiniDecoder

    learned, lanczos = "learned 2x (mini_upscaler)", "none (Lanczos resize)"
    was = {"class": "MiniDecoder", "name": "mini", "weights_sha256": "a", "upscaler": learned}
    now = {"class": "MiniDecoder", "name": "mini", "weights_sha256": "b", "upscaler": lanczos}

    def dec(other, res=64):  # (the three attributes MiniDecoder.resume_note reads)
        d = MiniDecoder.__new__(MiniDecoder)
        d.other_upscale_sha256, d.resolution, d.config = other, res, SimpleNamespace(image_size=32)
        return d

    assert "whose file (mini_upscaler.safetensors) the weights folder lacks now" in _decoder_note(was, now, dec(None))
    assert _decoder_note(was, now, dec("a")).endswith("upscale = true in the spec (CLI: leave out --no-upscale) continues it.")
    assert _decoder_note(was, now, dec("a", res=32)).endswith("upscale = true in the spec continues it.")  # (unset: none)
    assert "weights are not these" in _decoder_note(was, now, dec("c"))  # new weights, the other setting as well
    old_format = {k: v for k, v in was.items() if k != "upscaler"}
    assert _decoder_note(old_format, now, dec("a")) == ""  # (the list of changes says what)
    assert _decoder_note({**was, "resolution": 64}, {**now, "resolution": 32}, dec("a")) == ""
    assert _decoder_note({**was, "class": "Other"}, now, dec("c")) == ""  # another preset: no weights note
    back = {**was, "upscaler": lanczos}
    assert _decoder_note(back, {**now, "upscaler": learned}, dec("a")).endswith("(CLI: --no-upscale) continues it.")
    assert "weights are not these" in _decoder_note(was, now, SimpleNamespace())  # a decoder with no resume_note


def test_a_bad_field_of_a_spec_file_is_not_blamed_on_a_flag_never_typed(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text('easing = "smoothstep"\n[[keyframes]]\ntext = "a red circle"\n[[keyframes]]\ntext = "a blue square"\n')
    assert main(["render", str(spec), "--out-dir", str(tmp_path / "r"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "'easing' must be one of" in err and "--easing" not in err  # "'easing' (--easing) must be one of"
    spec.write_text(spec.read_text().replace("smoothstep", "ease-in"))
    assert main(["render", str(spec), "--fps", "1000", "--out-dir", str(tmp_path / "r"), "-q"]) == 2
    assert "'fps' (--fps) must be a number in" in capsys.readouterr().err  # a flag given is still named


def test_generate_refuses_a_folder_drawn_by_other_prior_weights(tmp_path, monkeypatch, capsys):
    """generate.json recorded no hash of the mini prior (nor of the layout expert, which draws
    with the captions): pictures of a retrained prior were kept beside new ones as one generate."""
    from safetensors.torch import load_file, save_file

    from latentlab import presets
    from latentlab.mini.models import WEIGHTS_DIR

    weights = tmp_path / "weights"
    weights.mkdir()
    for f in WEIGHTS_DIR.iterdir():
        if f.suffix in (".safetensors", ".json") and f.name != "mini_prior.safetensors":
            (weights / f.name).symlink_to(f)
    save_file(load_file(WEIGHTS_DIR / "mini_prior.safetensors"), weights / "mini_prior.safetensors")
    mini = presets.get_preset("mini")
    monkeypatch.setattr(presets, "PRESETS", dict(presets.PRESETS))
    presets.register_preset(presets.Preset(name="mini-copy", space=mini.space, dim=mini.dim, resolution=mini.resolution,
                                           encoder=mini.encoder, decoder={"kind": "mini", "weights": str(weights)},
                                           prior={"kind": "mini", "weights": str(weights)}))  # fmt: skip
    monkeypatch.chdir(tmp_path)
    argv = ["generate", "a red circle", "--preset", "mini-copy", "--steps", "2", "-q", "-n"]
    assert main([*argv, "1"]) == 0
    out = tmp_path / "renders" / "a-red-circle"
    meta = json.loads((out / "generate.json").read_text())
    assert len(meta["prior"]["weights_sha256"]) == 16 and len(meta["expert_sha256"]) == 16
    retrained = {k: v * 1.05 if v.is_floating_point() else v for k, v in load_file(weights / "mini_prior.safetensors").items()}
    save_file(retrained, weights / "mini_prior.safetensors")
    capsys.readouterr()
    assert main([*argv, "2"]) == 2 and "already holds other pictures" in capsys.readouterr().err  # kept, mixed in, before
    # a folder from before the hashes were recorded resumes as it did then
    old = {**meta, "prior": {k: v for k, v in meta["prior"].items() if k != "weights_sha256"}}
    del old["expert_sha256"]
    (out / "generate.json").write_text(json.dumps(old))
    assert main([*argv, "2"]) == 0 and (out / "frame_00001.png").is_file()


# Defaults, overrides and resume rules checked on the spec each verb hands to render_spec, or on
# generate's calls of ll.generate


@pytest.fixture
def rendered(monkeypatch, tmp_path):
    """The (spec, keywords) of each render_spec call a command makes; nothing is drawn, and the
    command's --save-spec is written as render_spec's ready= callback does."""
    from latentlab import jobs

    seen = []

    def fake(spec, **kw):
        seen.append((spec, kw))
        if kw.get("ready") is not None:
            kw["ready"]()
        return SimpleNamespace(video=tmp_path / "v.mp4", contact_sheet=tmp_path / "c.png", out_dir=tmp_path / "r",
                               frames=[None] * 3, pacing=None)  # fmt: skip

    monkeypatch.setattr(jobs, "render_spec", fake)
    return seen


def _spec_file(folder: Path, text: str, images: list[Path]) -> Path:
    """A tiny spec file in ``folder``, its two keyframe pictures beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in zip(("a.png", "b.png"), images):
        (folder / name).write_bytes(image.read_bytes())
    p = folder / "s.toml"
    p.write_text('preset = "tiny"\nsteps = 2\nframes = 2\n' + text + '[[keyframes]]\nimage = "a.png"\n[[keyframes]]\nimage = "b.png"\n')
    return p


def test_a_flag_given_as_zero_or_false_replaces_the_specs_value(tmp_path, images, rendered):
    """--seed 0 and --hold-first 0 over a spec's seed = 5 and hold_first = 3: the flag wins,
    though 0 is falsy."""
    spec = _spec_file(tmp_path / "p", "seed = 5\nhold_first = 3\n", images)
    assert main(["render", str(spec), "--seed", "0", "--hold-first", "0", "-q"]) == 0
    (s, _), = rendered
    assert s.seed == 0 and s.hold_first == 0
    rendered.clear()
    assert main(["render", str(spec), "-q"]) == 0  # (without the flags: the spec's own)
    assert rendered[0][0].seed == 5 and rendered[0][0].hold_first == 3


def test_morph_goes_half_way_by_default(tmp_path, images, rendered):
    """morph's --theta defaults to 0.5, as its help says; --from is the text diff's source."""
    assert main(["morph", str(images[0]), "--to", "a cat", "-q"]) == 0
    td = rendered[0][0].to_dict()["keyframes"][1]["text_diff"]
    assert td["theta"] == 0.5 and td["to"] == "a cat" and "from" not in td
    assert main(["morph", str(images[0]), "--to", "a cat", "--from", "a disc", "-q"]) == 0
    assert rendered[1][0].to_dict()["keyframes"][1]["text_diff"]["from"] == "a disc"


def test_variations_default_to_a_two_fps_gif_of_n_frames_from_per_frame_noise(tmp_path, images, rendered):
    """variations -n N: N frames (N - 1 steps between two copies of the image), each its own
    noise, in a gif at 2 frames per second unless told otherwise."""
    assert main(["variations", str(images[0]), "-n", "3", "-q"]) == 0
    s = rendered[0][0]
    assert (s.format, s.fps, s.frames, s.noise) == ("gif", 2, 2, "per-frame")
    assert s.name == "red_disc-variations"
    assert main(["variations", str(images[0]), "-n", "3", "--fps", "5", "--format", "webp", "-q"]) == 0
    assert (rendered[1][0].format, rendered[1][0].fps) == ("webp", 5)


def test_the_pacing_line_names_the_metric_it_evened():
    """The `pacing:` line says what even pacing equalised: the CLIP angle, or the pixel change."""
    from latentlab.cli import _pacing_line

    stats = dict(decodes=7, coarse_stats={"cv": 0.5}, frame_stats={"cv": 0.1, "max_jump_over_median": 1.5})
    assert _pacing_line(SimpleNamespace(metric="pixel", **stats)) == (
        "even by pixel change, 7 decodes; uniform steps CV 0.50; paced frames CV 0.10, largest step 1.50x the median")
    assert _pacing_line(SimpleNamespace(metric="clip", **stats)).startswith("even by CLIP angle, 7 decodes;")


def test_a_finished_render_says_how_many_frames_it_holds(tmp_path, images, rendered, capsys):
    """The `frames:` line counts the frames the render holds (the 3 render_spec returned here)."""
    assert main(["interpolate", str(images[0]), str(images[1]), "--frames", "2", "-q"]) == 0
    assert f"frames:        {tmp_path / 'r'}/ (3 frames, manifest.json)" in capsys.readouterr().out.splitlines()


def test_variations_eta_of_zero_is_refused_before_any_model_loads(tmp_path, images, monkeypatch, capsys):
    """--eta 0 is no variation at all: refused by its range (0, 1] before anything loads or is made."""
    monkeypatch.chdir(tmp_path)
    _no_models(monkeypatch)
    assert main(["variations", str(images[0]), "--eta", "0", "--preset", "mini", "-q"]) == 2
    assert "--eta must be in (0, 1], got 0.0" in capsys.readouterr().err
    assert not (tmp_path / "renders").exists()


def test_o_sets_the_format_of_the_render_it_replaces_the_output_of(tmp_path, images, rendered):
    """-o's suffix is the render's format, over a verb's default (variations' gif) and over a
    spec file's format and output."""
    assert main(["variations", str(images[0]), "-n", "2", "-o", str(tmp_path / "v.mp4"), "-q"]) == 0
    s, kw = rendered[0]
    assert s.format == "mp4" and kw["output"] == str(tmp_path / "v.mp4")
    spec = _spec_file(tmp_path / "p", 'format = "webp"\noutput = "clip.webp"\n', images)
    assert main(["render", str(spec), "-o", str(tmp_path / "x.gif"), "-q"]) == 0
    s, kw = rendered[1]
    assert s.format == "gif" and s.output is None and kw["output"] == str(tmp_path / "x.gif")


def test_save_spec_of_a_spec_file_keeps_out_dir_and_o_where_they_were_typed(tmp_path, images, monkeypatch, rendered):
    """render specs/s.toml --out-dir r -o v.gif --save-spec saved.toml, typed in the project folder:
    the saved spec's out_dir and output are that folder's r and v.gif, though the spec file
    (whose folder its paths start from) is in specs/."""
    from latentlab.spec import load_spec

    monkeypatch.chdir(tmp_path)
    _spec_file(tmp_path / "specs", "", images)
    assert main(["render", "specs/s.toml", "--out-dir", "r", "-o", "v.gif", "--save-spec", "saved.toml", "-q"]) == 0
    saved = load_spec(tmp_path / "saved.toml")
    assert Path(saved.resolve_path(saved.out_dir)).resolve() == tmp_path / "r"
    assert Path(saved.resolve_path(saved.output)).resolve() == tmp_path / "v.gif"


def test_the_presets_table_shows_each_presets_own_download_and_gpu_memory(capsys):
    """`latentlab presets`: the download and GPU memory columns are each preset's own figures,
    as `presets --json` gives them."""
    assert main(["presets", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    head = re.split(r"\s{2,}", lines[0])
    download, gpu = head.index("download"), head.index("GPU mem")
    checked = 0
    for line in lines[1:]:
        cells = re.split(r"\s{2,}", line)
        row = rows[cells[0]]
        if row["download_gb"] and row["gpu_memory_gb"]:
            assert (cells[download], cells[gpu]) == (f"{row['download_gb']:.1f} GB", f"{row['gpu_memory_gb']:.0f} GB"), line
            checked += 1
    assert checked >= 1  # (a diffusers preset: mini and tiny download nothing)


def test_save_spec_outside_the_project_keeps_the_images_absolute(tmp_path, images, monkeypatch, rendered):
    """An image under the current folder, a spec saved outside it: the image stays an absolute
    path (a relative one would tie the spec to where it was typed); saved inside, it is relative."""
    from latentlab.spec import load_spec

    project = images[0].parent
    monkeypatch.chdir(project)
    outside = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    argv = ["interpolate", images[0].name, images[1].name, "-q"]
    assert main([*argv, "--save-spec", str(outside / "s.toml")]) == 0
    text = (outside / "s.toml").read_text()
    assert f'"image" = "{images[0].as_posix()}"' in text and f'"image" = "{images[1].as_posix()}"' in text
    assert main([*argv, "--save-spec", "specs/s.toml"]) == 0
    assert '"image" = "../red_disc.png"' in (project / "specs" / "s.toml").read_text()
    saved = load_spec(project / "specs" / "s.toml")
    assert Path(saved.resolve_path(saved.keyframes[0]["image"])).resolve() == images[0].resolve()


def test_signals_held_during_a_swap_are_delivered_sigterm_first():
    """A Ctrl-C and a kill both held back by variations --eta's swap: SIGTERM is raised first,
    so that the exit status says the command was terminated (143)."""
    from latentlab.cli import _deliver

    order = []
    previous = {s: signal.signal(s, lambda signum, frame: order.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        _deliver([signal.SIGINT, signal.SIGTERM, signal.SIGINT])
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    assert order == [signal.SIGTERM, signal.SIGINT]


def test_variations_eta_records_its_settings_in_variations_json(tmp_path, images, monkeypatch):
    """variations.json records what drew the set: image, preset, n, eta, seed, steps, guidance
    and --invert-refine."""
    import numpy as np

    import latentlab as ll

    monkeypatch.setattr(ll, "variations", lambda *a, **k: np.zeros((k["n"], 64, 64, 3), np.uint8))
    out = tmp_path / "v"
    assert main(["variations", str(images[0]), "-n", "2", "--eta", "0.5", "--preset", "mini", "--steps", "2",
                 "--invert-refine", "3", "--seed", "4", "--out-dir", str(out), "-q"]) == 0  # fmt: skip
    meta = json.loads((out / "variations.json").read_text())
    assert meta == {"image": str(images[0].resolve()), "preset": "mini", "num": 2, "eta": 0.5, "seed": 4, "steps": 2,
                    "guidance_scale": None, "invert_refine": 3}  # fmt: skip


def test_a_keyframe_typed_as_a_relative_path_reaches_the_spec_absolute(tmp_path, images, monkeypatch, rendered):
    """interpolate red_disc.png ...: the spec names the picture by its absolute path, so the
    manifest and a saved spec say which file it was wherever they are read."""
    monkeypatch.chdir(images[0].parent)
    assert main(["interpolate", images[0].name, images[1].name, "-q"]) == 0
    kfs = rendered[0][0].keyframes
    assert [kf["image"] for kf in kfs] == [str(images[0].resolve()), str(images[1].resolve())]


def test_generate_draws_eight_pictures_per_call_by_default(tmp_path, monkeypatch):
    """generate without --batch-size: at most 8 pictures per decoder call, as its help says."""
    monkeypatch.chdir(tmp_path)
    calls = _generate_calls(monkeypatch)
    assert main(["generate", "a red cat", "-n", "9", *FAST]) == 0
    assert calls == [(0, 8), (8, 1)]


def test_generate_draws_missing_pictures_that_are_not_consecutive_in_calls_of_their_own(tmp_path, monkeypatch):
    """Pictures 0 and 2 missing: two calls (seed 0, seed 2), not one call of two pictures from
    seed 0, which would draw seed 1 again as picture 2."""
    monkeypatch.chdir(tmp_path)
    calls = _generate_calls(monkeypatch)
    argv = ["generate", "a red cat", "-n", "3", *FAST]
    assert main(argv) == 0
    out = tmp_path / "renders" / "a-red-cat"
    for k in (0, 2):
        (out / f"frame_{k:05d}.png").unlink()
    calls.clear()
    assert main(argv) == 0
    assert calls == [(0, 1), (2, 1)]


def test_generate_says_the_seeds_of_its_pictures(tmp_path, monkeypatch, capsys):
    """-n 3 --seed 5: pictures of seeds 5-7 (picture k: seed + k)."""
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "a red cat", "-n", "3", "--seed", "5", *FAST]) == 0
    assert "(3, seeds 5-7; the decoder read the prompt too)" in capsys.readouterr().out


def test_generate_with_a_decoder_that_reads_no_captions_draws_from_the_embeddings_alone(tmp_path, monkeypatch, capsys,
                                                                                         tiny_decoder):  # fmt: skip
    """A decoder that reads no captions is not handed the prompt: generate draws from the
    prior's embeddings, records decoder_reads_prompt false and says why."""
    import latentlab as ll

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(type(tiny_decoder), "reads_captions", property(lambda self: False))
    seen = []
    real = ll.generate
    monkeypatch.setattr(ll, "generate", lambda *a, **k: seen.append(k["captions"]) or real(*a, **k))
    assert main(["generate", "a red cat", "-n", "1", *FAST]) == 0
    assert seen == [False]
    meta = json.loads((tmp_path / "renders" / "a-red-cat" / "generate.json").read_text())
    assert meta["decoder_reads_prompt"] is False
    assert "drawn from the prior's embeddings alone: this decoder reads no captions" in capsys.readouterr().out


def test_a_mini_generate_resumes_with_the_same_layout_expert(tmp_path, monkeypatch):
    """generate with mini records the layout expert's hash; a rerun with the same weights and a
    larger -n resumes (draws only the new picture), and other expert weights are refused."""
    monkeypatch.chdir(tmp_path)
    calls = _generate_calls(monkeypatch)
    argv = ["generate", "a red circle", "--preset", "mini", "--steps", "2", "-q", "-n"]
    assert main([*argv, "1"]) == 0
    calls.clear()
    assert main([*argv, "2"]) == 0 and calls == [(1, 1)]
    mark = tmp_path / "renders" / "a-red-circle" / "generate.json"
    mark.write_text(json.dumps({**json.loads(mark.read_text()), "expert_sha256": "0" * 16}))
    assert main([*argv, "2"]) == 2


# -- second audit of the command line (2026-12-07) ----------------------------------------------


def _one_error_line(err: str) -> str:
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("latentlab: error: "), err
    return lines[0]


@pytest.mark.parametrize("num", [100002, 10**26])
def test_variations_num_past_a_renders_frames_names_num(num, tmp_path, images, monkeypatch, capsys, no_models):
    """-n is a render's frames + 1: past the limit, the error named 'frames' (a flag variations has
    not) and num - 1, a value never typed."""
    monkeypatch.chdir(tmp_path)
    assert main(["variations", str(images[0]), "-n", str(num), "--preset", "tiny", "-q"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "--num" in line and "'frames'" not in line and str(num) in line and "100001" in line
    assert not (tmp_path / "renders").exists()


def test_variations_num_at_the_limit_is_not_refused_for_its_size(tmp_path, images, monkeypatch, capsys, no_models):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(pytest.fail.Exception, match="a model was loaded"):
        main(["variations", str(images[0]), "-n", "100001", "--preset", "tiny", "-q"])


def test_generate_num_past_the_seed_range_names_n_not_seed_zero(tmp_path, monkeypatch, capsys, no_models):
    """`generate -n 10**29` said "--seed must be in [-2**63, 2**63 - N) ..., got 0": the seed never typed."""
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "a cat", "-n", str(10**29), "--preset", "tiny", "-q"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"-n {10**29}" in line and "got 0" not in line
    assert main(["generate", "a cat", "-n", "8", "--seed", str(2**63 - 1), "--preset", "tiny", "-q"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "-n at most 1" in line and f"--seed below {2**63 - 8 + 1}" in line
    assert not (tmp_path / "renders").exists()


@settings(derandomize=True, max_examples=40, deadline=None)
@given(st.one_of(st.integers(-(2**64), 2**64), st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 0])),
       st.one_of(st.integers(1, 2**65), st.sampled_from([1, 2, 8])))  # fmt: skip
def test_generate_refuses_seed_and_num_exactly_outside_the_range_naming_a_flag(seed, num):
    """Picture k uses seed + k, and every seed is in [-2**63, 2**63): refused exactly when one is
    not, before any model loads, naming the flag that is out of range (or both)."""
    import contextlib
    import io
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as m:
        import latentlab as ll

        class Loaded(BaseException):
            pass

        def load(*a, **k):
            raise Loaded

        m.setattr(ll, "create_encoder", load)
        m.chdir(tmp)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(["generate", "a cat", "-n", str(num), "--seed", str(seed), "--preset", "tiny", "-q"])
            except Loaded:
                code = None
    fits = -(2**63) <= seed and seed + num - 1 < 2**63
    assert (code is None) == fits, (code, err.getvalue())
    if not fits:
        line = _one_error_line(err.getvalue())
        if -(2**63) <= seed < 2**63:  # the seed alone is fine: -n takes it past the range
            assert f"-n {num}" in line, line
        else:
            assert "--seed" in line and str(seed) in line, line


def test_generate_empty_preset_is_refused_as_by_the_other_verbs(tmp_path, monkeypatch, capsys, no_models):
    """`--preset "$P"` with P unset: morph, interpolate, variations and render refuse it; generate
    rendered with mini."""
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "a cat", "-n", "1", "--preset", "", "-q"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "unknown preset ''" in line
    assert not (tmp_path / "renders").exists()


@pytest.mark.parametrize(
    "argv, named",
    [
        (["morph", "", "--to", "a cat"], "the image is empty"),
        (["variations", " "], "the image is empty"),
        (["variations", "", "--eta", "0.3"], "the image is empty"),
        (["interpolate", "IMG", ""], "a keyframe is empty"),
        (["render", ""], "the spec file is empty"),
    ],
)
def test_an_empty_path_argument_is_refused_as_empty(argv, named, tmp_path, images, monkeypatch, capsys, no_models):
    """docs/cli.md: an empty path (an unset shell variable) is refused. It was, but said as the
    current folder ("'/home/me' is a folder, not an image file. Name a picture in it", "spec file '.'
    does not exist")."""
    monkeypatch.chdir(tmp_path)
    argv = [str(images[0]) if a == "IMG" else a for a in argv]
    assert main([*argv, "--preset", "tiny", "-q", "--out-dir", "r"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert named in line and str(tmp_path) not in line and "'.'" not in line
    assert not (tmp_path / "r").exists()


def test_long_captions_that_encode_the_same_are_quoted_whole_in_the_error(images, tiny_encoder):
    """`morph --from LONG --to LONG` whose captions encode the same: each caption's repr was cut at 60
    characters, losing its closing quote ("'from' 'a red circle a red ... a red c and 'to' ...")."""
    from latentlab.errors import SpecError
    from latentlab.spec import load_spec

    long_from, long_to = "a red circle " * 8, "A RED CIRCLE " * 8
    spec = load_spec({"keyframes": [{"image": str(images[0])}, {"text_diff": {"from": long_from, "to": long_to}}]})
    with pytest.raises(SpecError) as exc:
        spec.resolve(tiny_encoder)
    message = str(exc.value)
    assert f"'from' {long_from[:57] + '...'!r} and 'to' {long_to[:57] + '...'!r} encode the same" in message, message


def test_a_drafts_format_is_not_refused_for_the_spec_output_it_does_not_write(tmp_path, images, monkeypatch, capsys,
                                                                               no_models):  # fmt: skip
    """docs/cli.md: --out-dir or --name naming another folder writes the video beside that folder, not to
    the spec's output. A --format for that draft was refused as contradicting the spec's output."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(f'preset = "tiny"\noutput = "final.gif"\nout_dir = "final"\n'
                                     f'keyframes = [{{image = {str(images[0])!r}}}, {{image = {str(images[1])!r}}}]\n')  # fmt: skip
    for where in (["--out-dir", "draft"], ["--name", "draft"]):
        with pytest.raises(pytest.fail.Exception, match="a model was loaded"):  # past every check
            main(["render", "s.toml", *where, "--format", "mp4", "-q"])
    # the spec's own render writes its output: a --format against it is still a contradiction
    for where in ([], ["--out-dir", "final"]):
        assert main(["render", "s.toml", *where, "--format", "mp4", "-q"]) == 2
        assert "'format' (--format) is 'mp4' but the spec's 'output' 'final.gif'" in _one_error_line(capsys.readouterr().err)
    assert not any((tmp_path / name).exists() for name in ("draft", "final", "renders", "final.gif"))


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["render", "--help"]])
def test_help_and_version_to_a_full_disk_say_so_with_status_2(argv, monkeypatch, capsys):
    """docs/cli.md: standard output that cannot be written (a full disk) is said as such, status 2.
    --help and --version leave through argparse's SystemExit(0), which skipped that check: `latentlab
    --help > /dev/full` ended with status 0 and no word."""
    import errno
    import sys

    class Full:
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stdout", Full())
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "could not write to standard output (No space left on device)" in _one_error_line(capsys.readouterr().err)


def test_help_still_exits_0_where_it_was_written(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and "latentlab" in capsys.readouterr().out


def test_generate_seed_out_of_range_states_the_range_it_takes(tmp_path, monkeypatch, capsys, no_models):
    """The refusal of --seed 2**63 said "--seed must be in [-2**63, 2**63 - N)", which refuses
    seed 2**63 - N; that seed is taken (its last picture's seed is 2**63 - 1)."""
    from latentlab.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["generate", "a cat", "-n", "8", "--seed", str(2**63), "--preset", "tiny", "-q"]) == 2
    err = capsys.readouterr().err
    assert "--seed must be in [-2**63, 2**63 - 1]" in err and "[-2**63, 2**63 - N)" not in err
    with pytest.raises(pytest.fail.Exception, match="a model was loaded"):  # the bound it states is taken
        main(["generate", "a cat", "-n", "8", "--seed", str(2**63 - 8), "--preset", "tiny", "-q"])


# -- the contact sheet's advice on the command line ---------------------------------------------


def test_contact_sheet_warning_on_the_command_line_names_what_it_can_change(monkeypatch):
    """The warning named max_frames, which generate and variations on the command line cannot
    pass (their sheets show every picture): the CLI says -n and --size; Python keeps max_frames."""
    from PIL import Image

    import latentlab as ll
    from latentlab.cli import _flag_advice

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    with pytest.warns(UserWarning, match="max_frames=64") as record:
        ll.contact_sheet(np.zeros((9, 16, 16, 3), np.uint8))
    said = _flag_advice(str(record[0].message))
    assert "max_frames" not in said and "(-n)" in said and "--size" in said


# -- render --help ------------------------------------------------------------------------------


def test_render_help_says_a_specs_format_and_fps_come_first(capsys):
    """`latentlab render --help` said "(default mp4)" and "(default 24)", where a spec's format (or
    its output file's suffix) and fps win; the verbs without a spec keep their plain defaults."""
    from latentlab.cli import main

    def helptext(verb):
        with pytest.raises(SystemExit):
            main([verb, "--help"])
        return " ".join(capsys.readouterr().out.split())

    text = helptext("render")
    assert "(default mp4, unless the spec gives a format, or an output file's suffix)" in text
    assert "(default 24, unless the spec gives one)" in text
    edit = helptext("variations")
    assert "video format (default gif);" in edit and "(default 2)" in edit
