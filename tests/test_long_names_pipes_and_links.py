"""Names too long where a spec, a keyframe or a video is looked up, pipes in mini's raw cache, and
keyframes and videos that are links."""

from __future__ import annotations

import os

import pytest

import latentlab as ll
from latentlab.errors import ArgumentError, SpecError

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (os.mkfifo)")
LONG = "x" * 300


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_a_spec_or_trajectory_file_name_too_long_is_a_spec_error(tmp_path, suffix):
    """is_file() of a name over 255 bytes raised a raw OSError (ENAMETOOLONG)."""
    for load in (ll.load_spec, ll.Trajectory.load):
        with pytest.raises(SpecError, match="File name too long"):
            load(tmp_path / (LONG + suffix))


def test_a_keyframe_image_name_too_long_is_a_spec_error(tmp_path):
    """A keyframe or mix item whose picture name is over 255 bytes: a raw OSError from is_dir()."""
    with pytest.raises(SpecError, match=r"keyframes\[0\]\.image: .*File name too long"):
        ll.load_spec({"keyframes": [{"image": str(tmp_path / (LONG + ".png"))}, {"text": "a cat"}]})
    with pytest.raises(SpecError, match=r"keyframes\[1\]\.mix\[0\]\.image: .*File name too long"):
        ll.load_spec({"keyframes": [{"text": "a dog"}, {"mix": [{"image": str(tmp_path / (LONG + ".png"))},
                                                               {"text": "a cat"}]}]})  # fmt: skip
    os.symlink(tmp_path / "loop.png", tmp_path / "loop.png")
    with pytest.raises(SpecError, match="no such file"):  # a link loop is still said as before
        ll.load_spec({"keyframes": [{"image": str(tmp_path / "loop.png")}, {"text": "a cat"}]})


def test_show_video_name_too_long_is_an_argument_error(tmp_path):
    """show_video(path): Path.is_dir() of a name over 255 bytes raised a raw OSError before the file checks."""
    with pytest.raises(ArgumentError, match="File name too long"):
        ll.show_video(tmp_path / (LONG + ".gif"))


@needs_fifo
@pytest.mark.timeout(10)
def test_build_index_skips_a_pipe_named_like_a_raw_picture(tmp_path):
    """A named pipe among fluent3d's raw .webp pictures: Image.open waited for a writer forever."""
    from test_mini_data import _disc, _stamp

    from latentlab.mini import data

    cache = tmp_path / "data"
    fl = cache / "raw" / "fluent3d" / "package" / "assets"
    fl.mkdir(parents=True)
    _disc((220, 30, 30), 96).save(fl / "1f4f1.webp", lossless=True)
    os.mkfifo(fl / "1f600.webp")
    (fl / "260e-fe0f.webp").mkdir()  # a folder: skipped as broken, as before
    _stamp(cache / "raw" / "fluent3d")
    rows = data.build_index(cache, ["fluent3d"], verbose=False).read_text()
    assert rows.count("\n") == 1 and "1F4F1" in rows


@needs_fifo
@pytest.mark.timeout(10)
def test_openclipart_scan_skips_a_pipe_or_folder_named_like_a_drawing(tmp_path):
    """read_bytes() of a pipe named like an SVG waited forever; of a folder, a raw IsADirectoryError."""
    from latentlab.mini import data

    root = tmp_path / "raw" / "openclipart" / data._OPENCLIPART_DIR
    root.mkdir(parents=True)
    svg = '<svg xmlns="http://www.w3.org/2000/svg"><title>red apple</title><circle r="4"/></svg>'
    (root / "apple.svg").write_text(svg)
    os.mkfifo(root / "pipe.svg")
    (root / "folder.svg").mkdir()
    items = list(data._read_openclipart(tmp_path, data._load_names(tmp_path), False))
    assert [it.raw.rsplit("/", 1)[-1] for it in items] == ["apple.svg"]


def _spec(first, images):
    return {"preset": "tiny", "steps": 2, "keyframes": [{"image": str(first)}, {"image": str(images[1]), "frames": 1}]}


def test_a_video_name_that_is_a_link_to_a_keyframe_is_not_refused(tmp_path, images):
    """-o names a link to the keyframe picture: the render replaces the link, not the picture it
    points to, so the render is fine (it was refused as 'the video this render writes')."""
    from PIL import Image

    gif = tmp_path / "a.gif"
    Image.open(images[0]).save(gif)
    before = gif.read_bytes()
    os.symlink(gif, tmp_path / "o.gif")
    result = ll.render_spec(_spec(gif, images), out_dir=tmp_path / "o", output=tmp_path / "o.gif", overwrite=True,
                            progress=False)  # fmt: skip
    assert len(result.frames) == 2 and gif.read_bytes() == before
    assert not (tmp_path / "o.gif").is_symlink() and (tmp_path / "o.gif").read_bytes() != before


def test_a_keyframe_named_by_a_link_in_out_dir_is_refused(tmp_path, images):
    """out_dir/frame_00001.png is a link to a picture elsewhere and names a keyframe: the render
    replaced the link with a new frame, so the keyframe's path held another picture and the same
    command was refused ever after. The check followed the link and let it through."""
    out = tmp_path / "o"
    out.mkdir()
    os.symlink(images[0], out / "frame_00001.png")
    with pytest.raises(ArgumentError, match="frame_00001.png in out_dir"):
        ll.render_spec(_spec(out / "frame_00001.png", images), out_dir=out, output=tmp_path / "o.gif",
                       overwrite=True, progress=False)  # fmt: skip
    assert (out / "frame_00001.png").is_symlink() and not (out / "manifest.json").exists()


def test_relative_paths_of_a_linked_spec_start_at_the_folder_of_the_file_it_points_to(tmp_path, images):
    """docs/spec.md: a spec file reached through a symbolic link resolves its relative paths
    against the folder of the file the link points to."""
    real, other = tmp_path / "real", tmp_path / "other"
    real.mkdir()
    other.mkdir()
    (real / "a.png").write_bytes(images[0].read_bytes())
    (real / "s.json").write_text('{"keyframes": [{"image": "a.png"}, {"text": "a cat"}]}')
    os.symlink(real / "s.json", other / "s.json")
    spec = ll.load_spec(other / "s.json")
    assert spec.resolve_path("a.png") == real / "a.png"
