"""``make demo`` (``python -m latentlab.demo``), the README's first command: it writes all it
prints, resumes, and on the embedded model shows what the README says it shows."""

from __future__ import annotations

import errno
import sys
from pathlib import Path

import numpy as np
import pytest

from latentlab import demo
from latentlab.jobs import RenderResult, video_path
from latentlab.errors import LatentlabError
from latentlab.presets import weights_status

from conftest import animated_frames, grey_frames


def test_demo_writes_what_it_prints_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert demo.main(["--preset", "tiny"]) == 0
    out = capsys.readouterr().out
    for path in ("renders/demo.mp4", "renders/demo.gif", "renders/demo/contact_sheet.png"):
        assert (tmp_path / path).stat().st_size > 0 and path in out
    assert (tmp_path / "renders" / "demo" / "manifest.json").is_file()
    frames = sorted((tmp_path / "renders" / "demo").glob("frame_*.png"))
    assert len(frames) == 48
    stamp = frames[10].stat().st_mtime_ns
    frames[-1].unlink()  # as if interrupted before the last frame
    assert demo.main(["--preset", "tiny"]) == 0
    assert "(48 frames, 47 kept from an earlier run, 1 rendered in" in capsys.readouterr().out  # not "48 rendered"
    assert (tmp_path / "renders" / "demo" / frames[-1].name).is_file() and frames[10].stat().st_mtime_ns == stamp


@pytest.mark.skipif(weights_status("mini") != "built in", reason="the mini weights are not in this checkout")
def test_demo_keyframes_on_mini_are_what_the_readme_shows(tmp_path):
    """Red circle -> blue triangle -> green square, read off the pixels: the demo's keyframes,
    rendered alone with the demo's seed and shared noise, as its own frames 0, 24 and 47 are."""
    from latentlab.jobs import render_spec
    from latentlab.mini.shapes import check_image

    spec = demo.demo_spec(demo.make_inputs(tmp_path / "inputs"), "mini")
    for kf in spec["keyframes"][1:]:
        kf["frames"] = 1  # one frame per segment: the keyframes themselves
    spec.update(hold_first=0, hold_last=0)
    frames = render_spec(spec, out_dir=tmp_path / "r", progress=False).frames
    assert len(frames) == 3
    found = [check_image(np.asarray(f)) for f in frames]
    read = [[(o["colour"], o["shape"]) for o in objs] for objs in found]
    assert read == [[("red", "circle")], [("blue", "triangle")], [("green", "square")]]
    # drawn in proportion, as the inputs are: the checker fits its templates to the bounding box,
    # so an oval still reads as a circle and a wide bar as a square (seed 0 on this decoder)
    aspects = [(x1 - x0) / (y1 - y0) for x0, y0, x1, y1 in (objs[0]["bbox"] for objs in found)]
    assert all(0.8 <= a <= 1.25 for a in aspects), aspects


def test_docs_quote_the_demo_spec_as_it_is():
    """docs/spec.md shows "the spec `make demo` renders": it must be the one latentlab/demo.py builds,
    each keyframe's labels and easing included."""
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")

    text = (Path(__file__).resolve().parents[1] / "docs" / "spec.md").read_text(encoding="utf-8")
    block = text.split('name = "demo"\npreset', 1)[1].split("```", 1)[0]
    quoted = tomllib.loads('name = "demo"\npreset' + block)
    spec = demo.demo_spec(["red_circle.png", "blue_triangle.png"], "mini")
    for key in ("name", "preset", "seed", "fps", "size", "hold_first", "hold_last"):
        assert quoted[key] == spec[key], key
    assert quoted["keyframes"] == spec["keyframes"]


def test_demo_into_the_current_folder_names_its_inputs_after_it(tmp_path, monkeypatch, capsys):
    # --out-dir . put the input pictures into a folder named "-inputs"
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    from latentlab import jobs
    from latentlab.errors import LatentlabError

    def stop(*a, **k):  # the inputs are made before the render: no need to render here
        raise LatentlabError("stop")

    monkeypatch.setattr(jobs, "render_spec", stop)
    assert demo.main(["--preset", "tiny", "--out-dir", "."]) == 2
    assert (tmp_path / "here-inputs").is_dir() and not (tmp_path / "here" / "-inputs").exists()


def test_demo_that_cannot_write_its_inputs_says_so(tmp_path, monkeypatch, capsys):
    # the inputs go beside --out-dir; where that cannot be written it was a traceback
    from latentlab import demo as demo_mod

    def refuse(folder):
        raise PermissionError(13, "Permission denied", str(folder))

    monkeypatch.setattr(demo_mod, "make_inputs", refuse)
    monkeypatch.chdir(tmp_path)
    assert demo.main(["--preset", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "cannot write the demo's input pictures beside --out-dir renders/demo: Permission denied" in err


# The spec, preset, input pictures and gif of make demo, with the render stubbed

@pytest.fixture
def fake_render(monkeypatch, tmp_path):
    """Replaces jobs.render_spec with one that returns 4 small frames at once, recording its calls."""
    from latentlab import jobs
    from latentlab.video import write_video

    calls = []

    def render_spec(spec, *, out_dir, overwrite=False, **kwargs):
        calls.append({"spec": spec, "out_dir": Path(out_dir), "overwrite": overwrite})
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        frames = grey_frames(4)
        video = write_video(frames, video_path(out, "mp4"), fps=spec["fps"])
        return RenderResult(frames=frames, out_dir=out, video=video, contact_sheet=out / "contact_sheet.png",
                            spec=spec, trajectory=None)

    monkeypatch.setattr(jobs, "render_spec", render_spec)
    monkeypatch.chdir(tmp_path)
    return calls


def test_demo_gif_is_128_px_at_the_spec_fps_with_the_holds(fake_render, capsys):
    assert demo.main(["--preset", "tiny"]) == 0
    gif = Path("renders/demo.gif")
    assert f"gif:           {gif}" in capsys.readouterr().out
    frames, durations = animated_frames(gif)
    assert [f.shape for f in frames] == [(128, 128, 3)] * 4  # the 8 px frames upscaled to 128
    # 4 distinct frames at 12 fps, the first and last held 6 more (a gif merges the repeats)
    assert sum(durations) == pytest.approx(1000 * (4 + 6 + 6) / 12, abs=40)
    assert durations[0] == pytest.approx(7000 / 12, abs=20) and durations[-1] == pytest.approx(7000 / 12, abs=20)
    assert durations[1] == pytest.approx(1000 / 12, abs=10)


def test_demo_with_overwrite_reports_every_frame_rendered(fake_render, capsys):
    out = Path("renders/demo")
    out.mkdir(parents=True)
    for k in range(2):  # frames of an earlier run, replaced with --overwrite
        (out / f"frame_{k:05d}.png").write_bytes(b"")
    assert demo.main(["--preset", "tiny", "--overwrite"]) == 0
    text = capsys.readouterr().out
    assert "(4 frames rendered in" in text and "kept" not in text
    assert fake_render[-1]["overwrite"] is True
    assert demo.main(["--preset", "tiny"]) == 0  # without it, they count as kept
    assert "(4 frames, 2 kept from an earlier run, 2 rendered in" in capsys.readouterr().out


@pytest.mark.parametrize("status, preset", [("built in", "mini"), ("missing", "tiny")])
def test_demo_uses_mini_when_its_weights_are_built_in_and_tiny_otherwise(fake_render, monkeypatch, capsys,
                                                                        status, preset):
    monkeypatch.setattr(demo, "weights_status", lambda name: status)
    assert demo.main([]) == 0
    assert fake_render[-1]["spec"]["preset"] == preset
    captured = capsys.readouterr()
    assert f"preset:        {preset}" in captured.out
    assert ("RANDOM weights" in captured.err) == (preset == "tiny")


def _ink(pic: np.ndarray, channel: int) -> np.ndarray:
    """Pixels where ``channel`` clearly dominates the other two."""
    pic = pic.astype(int)
    others = [c for c in range(3) if c != channel]
    return (pic[..., channel] > 120) & (pic[..., channel] > pic[..., others].max(axis=-1) + 60)


def _rows_of_ink(mask: np.ndarray) -> np.ndarray:
    return mask.sum(axis=1)[mask.any(axis=1)]


@pytest.mark.parametrize("shapes_world", [True, False])
def test_demo_inputs_are_named_for_what_they_show(tmp_path, monkeypatch, shapes_world):
    """red_circle.png shows a red circle (round: as wide at the top as at the bottom, narrower there
    than across the middle), and
    blue_triangle.png a blue triangle (apex up: widening downwards), with or without the shapes world."""
    from latentlab.video import load_image

    if not shapes_world:
        monkeypatch.setitem(sys.modules, "latentlab.mini.shapes", None)  # import -> ImportError: the fallback
    paths = demo.make_inputs(tmp_path / "in")
    assert [p.name for p in paths] == ["red_circle.png", "blue_triangle.png"]
    red, blue = (np.asarray(load_image(p)) for p in paths)
    assert _ink(red, 0).sum() > 100 and _ink(red, 2).sum() == 0
    assert _ink(blue, 2).sum() > 100 and _ink(blue, 0).sum() == 0
    circle, triangle = _rows_of_ink(_ink(red, 0)), _rows_of_ink(_ink(blue, 2))
    assert abs(int(circle[len(circle) // 5]) - int(circle[-1 - len(circle) // 5])) <= 2  # symmetric
    assert circle[len(circle) // 5] < 0.9 * circle[len(circle) // 2]  # not a square
    assert triangle[len(triangle) // 5] < triangle[-1 - len(triangle) // 5] / 2  # narrow top, wide base


# -- python -m latentlab.demo -------------------------------------------------------------------


@pytest.fixture
def stopped_render(monkeypatch, tmp_path):
    """render_spec stopped with a LatentlabError, recording the folder it was given."""
    from latentlab import jobs

    seen = []

    def stop(spec, *, out_dir, **kwargs):
        seen.append(Path(out_dir))
        raise LatentlabError("stopped")

    monkeypatch.setattr(jobs, "render_spec", stop)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return seen


def test_demo_out_dir_with_a_tilde_puts_inputs_and_frames_in_the_same_home_folder(stopped_render, tmp_path, monkeypatch):
    """`--out-dir=~/demo` (bash leaves that ~): render_spec rendered into ~/demo, the demo wrote its
    input pictures into a folder literally named "~" under the current one (and counted kept
    frames there)."""
    from latentlab import demo

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert demo.main(["--preset", "tiny", "--out-dir=~/demo"]) == 2
    assert stopped_render == [tmp_path / "home" / "demo"]
    assert (tmp_path / "home" / "demo-inputs" / "red_circle.png").is_file()
    assert not (tmp_path / "cwd" / "~").exists()


def test_demo_with_an_unknown_preset_writes_nothing(stopped_render, tmp_path, capsys):
    """The input pictures were written before the render refused the preset."""
    from latentlab import demo

    assert demo.main(["--preset", "minii", "--out-dir", "out"]) == 2
    assert "unknown preset 'minii'. Did you mean 'mini'?" in capsys.readouterr().err
    assert list((tmp_path / "cwd").iterdir()) == [] and stopped_render == []


@pytest.mark.parametrize("value", ["", "  "])
def test_demo_refuses_an_empty_out_dir(value, stopped_render, tmp_path, capsys):
    """--out-dir "" (an unset shell variable) rendered into the current folder, and its inputs
    went beside it; the latentlab command refuses an empty --out-dir."""
    from latentlab import demo

    with pytest.raises(SystemExit) as e:
        demo.main(["--preset", "tiny", "--out-dir", value])
    assert e.value.code == 2 and "--out-dir is empty" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [tmp_path / "cwd"] and list((tmp_path / "cwd").iterdir()) == []
    assert stopped_render == []


def test_demo_refuses_to_replace_a_gif_it_did_not_write(tmp_path, capsys, no_models):
    """`python -m latentlab.demo --out-dir X` writes X.gif beside X.mp4; render_spec guards the mp4
    (a file of the user's is replaced only with --overwrite), but the gif was written over whatever
    was there, after the whole render."""
    from latentlab import demo

    mine = tmp_path / "take.gif"
    mine.write_bytes(b"my own gif")
    assert demo.main(["--preset", "tiny", "--out-dir", str(tmp_path / "take")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("latentlab demo: error: the video") and "take.gif" in err and "--overwrite" in err
    assert mine.read_bytes() == b"my own gif"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.gif"]  # refused before its input pictures too


def test_demo_interrupted_says_what_it_kept_not_a_traceback(tmp_path, monkeypatch, capsys):
    """Ctrl-C during `make demo`'s render raised KeyboardInterrupt out of main (a traceback)."""
    from latentlab import demo, jobs

    def stopped(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(jobs, "render_spec", stopped)
    try:
        code = demo.main(["--preset", "tiny", "--out-dir", str(tmp_path / "d")])
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped demo.main (a traceback)")
    assert code == 130
    err = capsys.readouterr().err
    assert "interrupted: finished frames are kept in" in err and "run the demo again to resume" in err


def test_demo_on_a_full_disk_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    """A full disk during `make demo`'s render raised a raw OSError traceback."""
    import errno

    from latentlab import demo, jobs

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "d" / "frame_00003.png"))

    monkeypatch.setattr(jobs, "render_spec", full)
    assert demo.main(["--preset", "tiny", "--out-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("latentlab demo: error: No space left on device") and "free space and run the demo again" in err
    assert err.count("\n") == 1


def _fake_render(monkeypatch):
    from latentlab import jobs

    def render_spec(spec, *, out_dir, overwrite=False, **kwargs):
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        return RenderResult(frames=grey_frames(4), out_dir=out, video=out.with_suffix(".mp4"),
                            contact_sheet=out / "contact_sheet.png", spec=spec, trajectory=None)  # fmt: skip

    monkeypatch.setattr(jobs, "render_spec", render_spec)


@pytest.mark.parametrize("stop", ["full disk", "ctrl-c"])
def test_demo_stopped_while_writing_its_gif_says_so_in_one_line(stop, tmp_path, monkeypatch, capsys):
    """18faf6f made a full disk or Ctrl-C during the demo's render one line, but the gif is
    written after the render, outside that guard: there they still ended in a traceback."""
    from latentlab import demo, video

    def stopped(*a, **k):
        if stop == "ctrl-c":
            raise KeyboardInterrupt
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / ".d.gif.part"))

    _fake_render(monkeypatch)
    monkeypatch.setattr(video, "write_video", stopped)
    try:
        code = demo.main(["--preset", "tiny", "--out-dir", str(tmp_path / "d")])
    except (OSError, KeyboardInterrupt) as exc:
        pytest.fail(f"{type(exc).__name__} escaped demo.main (a traceback)")
    err = capsys.readouterr().err
    if stop == "ctrl-c":
        assert code == 130 and "interrupted: finished frames are kept in" in err
    else:
        assert code == 2 and err.startswith("latentlab demo: error: No space left on device") and err.count("\n") == 1
        assert "free space and run the demo again" in err


def test_demo_twice_still_writes_and_reuses_its_gif(tmp_path, monkeypatch, capsys):
    """The gif's guard refuses none of the demo's own gifs: a rerun (make demo twice) replaces it."""
    from latentlab import demo

    _fake_render(monkeypatch)
    out = tmp_path / "d"
    for _ in range(2):
        assert demo.main(["--preset", "tiny", "--out-dir", str(out)]) == 0, capsys.readouterr().err
        assert f"gif:           {out}.gif" in capsys.readouterr().out
    assert (tmp_path / "d.gif").is_file()


# Property kept: read_video's docstring promise (90ee90e) that a still picture reads as load_image reads it

def test_demo_refuses_a_folder_where_its_gif_goes_before_rendering(tmp_path, monkeypatch, capsys):
    """18faf6f checks the demo's gif before the render, but _refuse_unrecorded_video leaves a folder
    to its caller (render_spec refuses its own video's): a folder at <out-dir>.gif was refused by
    write_video after the whole render, with a traceback."""
    from latentlab import demo, jobs

    monkeypatch.setattr(jobs, "render_spec", lambda *a, **k: pytest.fail("the render ran"))
    (tmp_path / "d.gif").mkdir()
    assert demo.main(["--preset", "tiny", "--out-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("latentlab demo: error: ") and "d.gif" in err and "is a folder" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.gif"]
