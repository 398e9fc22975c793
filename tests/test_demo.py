"""``make demo`` (``python -m latentlab.demo``), the README's first command: it writes all it
prints, resumes, and on the embedded model shows what the README says it shows."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from latentlab import demo
from latentlab.presets import weights_status


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
    """docs/spec.md shows "the spec `make demo` renders": it must be the one latentlab/demo.py builds."""
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")

    text = (Path(__file__).resolve().parents[1] / "docs" / "spec.md").read_text(encoding="utf-8")
    block = text.split('name = "demo"\npreset', 1)[1].split("```", 1)[0]
    quoted = tomllib.loads('name = "demo"\npreset' + block)
    spec = demo.demo_spec(["red_circle.png", "blue_triangle.png"], "mini")
    for key in ("name", "preset", "seed", "fps", "size", "hold_first", "hold_last"):
        assert quoted[key] == spec[key], key
    assert quoted["keyframes"][2]["text_diff"] == spec["keyframes"][2]["text_diff"]
    assert [k.get("frames") for k in quoted["keyframes"]] == [k.get("frames") for k in spec["keyframes"]]


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
