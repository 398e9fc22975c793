"""Odd file-system objects: pipes, devices, link loops, names too long, and the render folder
that is also the input folder."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from conftest import FakeDecoder
from hypothesis import given, settings
from hypothesis import strategies as st

import latentlab as ll
from latentlab.cli import main
from latentlab.errors import ArgumentError

FAST = ["--preset", "tiny", "--steps", "2", "-q"]

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (os.mkfifo)")


def _z(n: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, 8, generator=g), dim=-1)


@needs_fifo
@pytest.mark.timeout(10)
@pytest.mark.parametrize("name", ["p.png", "p.gif"])
def test_load_image_and_read_video_refuse_a_pipe_without_waiting(tmp_path, name):
    """A named pipe named like a picture: opening it waited for a writer forever."""
    os.mkfifo(tmp_path / name)
    for read in (ll.load_image, ll.read_video):
        with pytest.raises(ArgumentError, match="not a regular file"):
            read(tmp_path / name)


def test_load_image_says_what_a_device_or_link_loop_is(tmp_path):
    os.symlink(tmp_path / "loop.png", tmp_path / "loop.png")
    with pytest.raises(ArgumentError, match="loop.png"):
        ll.load_image(tmp_path / "loop.png")
    with pytest.raises(ArgumentError, match="File name too long"):  # (a raw OSError from exists())
        ll.load_image(tmp_path / ("x" * 300 + ".png"))
    if os.path.exists("/dev/zero"):
        with pytest.raises(ArgumentError, match="not a regular file"):
            ll.load_image("/dev/zero")


@needs_fifo
@pytest.mark.timeout(10)
def test_render_refuses_a_pipe_named_manifest_json_and_overwrite_replaces_it(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "manifest.json")
    with pytest.raises(ArgumentError, match="unreadable manifest.json"):
        ll.render(_z(), FakeDecoder(), out_dir=out)
    frames = ll.render(_z(), FakeDecoder(), out_dir=out, overwrite=True)
    assert len(frames) == 3 and (out / "manifest.json").is_file() and len(list(out.glob("frame_*.png"))) == 3


@needs_fifo
@pytest.mark.timeout(10)
def test_render_of_other_embeddings_beside_a_piped_embeddings_npy_is_refused_not_hung(tmp_path):
    out = tmp_path / "out"
    ll.render(_z(seed=0), FakeDecoder(), out_dir=out)
    (out / "embeddings.npy").unlink()
    os.mkfifo(out / "embeddings.npy")
    with pytest.raises(ArgumentError, match="holds a different render"):
        ll.render(_z(seed=1), FakeDecoder(), out_dir=out)


def test_render_out_dir_link_loop_is_an_argument_error(tmp_path):
    os.symlink(tmp_path / "out", tmp_path / "out")
    with pytest.raises(ArgumentError, match="out_dir"):
        ll.render(_z(), FakeDecoder(), out_dir=tmp_path / "out")
    from latentlab.render import folder_lock

    with pytest.raises(ArgumentError, match="out_dir"), folder_lock(tmp_path / "out"):
        pass


def test_render_out_dir_name_too_long_is_an_argument_error(tmp_path):
    with pytest.raises(ArgumentError, match="longer than"):
        ll.render(_z(), FakeDecoder(), out_dir=tmp_path / ("x" * 300) / "out")
    with pytest.raises(ArgumentError, match="longer than"):
        ll.render(_z(), FakeDecoder(), out_dir=tmp_path / ("x" * 300))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("verb", [["interpolate", "{loop}", "{pic}", "--frames", "2"], ["variations", "{loop}", "-n", "2"]])
def test_cli_keyframe_link_loop_is_one_line_error(tmp_path, images, capsys, monkeypatch, verb):
    """`latentlab interpolate loop.png b.png` with loop.png a link to itself: a traceback (RuntimeError)."""
    monkeypatch.chdir(tmp_path)
    os.symlink(tmp_path / "loop.png", tmp_path / "loop.png")
    argv = [a.format(loop="loop.png", pic=str(images[1])) for a in verb]
    assert main([*argv, "--out-dir", "o", *FAST]) == 2
    err = capsys.readouterr().err
    assert "loop.png" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def _first_render(tmp_path, images):
    assert main(["interpolate", str(images[0]), str(images[1]), "--frames", "2", "--out-dir", str(tmp_path / "o"),
                 "-o", str(tmp_path / "o.gif"), *FAST]) == 0  # fmt: skip
    return tmp_path / "o"


@pytest.mark.parametrize("name", ["frame_00001.png", "contact_sheet.png"])
def test_a_keyframe_picture_the_render_writes_over_is_refused(tmp_path, images, capsys, name):
    """A frame of one render taken as a keyframe of the next into the same folder (--overwrite):
    the picture was replaced by the new frame, and the same command was refused ever after."""
    out = _first_render(tmp_path, images)
    before = (out / name).read_bytes()
    argv = ["interpolate", str(out / name), str(images[1]), "--frames", "2", "--out-dir", str(out),
            "-o", str(tmp_path / "o.gif"), "--overwrite", *FAST]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert name in err and "Copy the picture out of the folder" in err
    assert (out / name).read_bytes() == before


def test_a_keyframe_picture_the_render_writes_over_through_a_linked_folder_is_refused(tmp_path, images):
    out = _first_render(tmp_path, images)
    os.symlink(out, tmp_path / "alias")
    spec = {"preset": "tiny", "steps": 2, "keyframes": [{"image": str(tmp_path / "alias" / "frame_00000.png")},
                                                        {"image": str(images[1]), "frames": 2}]}  # fmt: skip
    before = (out / "frame_00000.png").read_bytes()
    with pytest.raises(ArgumentError, match="frame_00000.png"):
        ll.render_spec(spec, out_dir=out, output=tmp_path / "o.gif", overwrite=True, progress=False)
    spec["keyframes"][0] = {"image": str(images[0])}
    spec["keyframes"][1] = {"mix": [{"image": str(out / "frame_00002.png")}, {"text": "a cat"}], "frames": 2}
    with pytest.raises(ArgumentError, match=r"keyframes\[1\]\.mix\[0\]\.image"):
        ll.render_spec(spec, out_dir=tmp_path / "alias", output=tmp_path / "o.gif", overwrite=True, progress=False)
    assert (out / "frame_00000.png").read_bytes() == before


def test_a_keyframe_picture_that_is_the_video_is_refused(tmp_path, images):
    from PIL import Image

    gif = tmp_path / "a.gif"
    Image.open(images[0]).save(gif)
    before = gif.read_bytes()
    spec = {"preset": "tiny", "steps": 2, "keyframes": [{"image": str(gif)}, {"image": str(images[1]), "frames": 2}]}
    with pytest.raises(ArgumentError, match="the video this render writes"):
        ll.render_spec(spec, out_dir=tmp_path / "o", output=gif, overwrite=True, progress=False)
    assert gif.read_bytes() == before


def test_a_picture_beside_the_frames_is_still_a_keyframe(tmp_path, images):
    """Only what the render writes is refused: a picture of another name in out_dir is read as before."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "source.png").write_bytes(images[0].read_bytes())
    spec = {"preset": "tiny", "steps": 2, "keyframes": [{"image": str(out / "source.png")}, {"image": str(images[1]), "frames": 1}]}
    result = ll.render_spec(spec, out_dir=out, output=tmp_path / "o.gif", progress=False)
    assert len(result.frames) == 2 and (out / "source.png").read_bytes() == images[0].read_bytes()


@settings(derandomize=True, max_examples=8, deadline=None)
@given(st.sampled_from(["frame_00000.png", "manifest.json", "embeddings.npy", "contact_sheet.png"]))
def test_render_never_writes_through_a_planted_link(tmp_path_factory, name):
    """Every file a render writes in its folder is replaced whole (the link itself), never written
    through a link to a file elsewhere."""
    tmp = tmp_path_factory.mktemp("planted")
    out = tmp / "out"
    ll.render(_z(), FakeDecoder(), out_dir=out)
    victim = tmp / "victim"
    victim.write_text("precious")
    (out / name).unlink(missing_ok=True)
    os.symlink(victim, out / name)
    ll.render(_z(), FakeDecoder(), out_dir=out, overwrite=True)
    ll.save_image(np.zeros((4, 4, 3), np.uint8), out / "contact_sheet.png")
    assert victim.read_text() == "precious"


def test_variations_eta_refuse_one_of_their_own_frames_as_the_picture(tmp_path, images, capsys):
    """`variations --eta` of a frame of its own folder: the swap replaced the picture with a variation."""
    out = tmp_path / "v"
    eta = ["-n", "2", "--eta", "0.5", "--preset", "mini", "--steps", "2", "--invert-refine", "0", "--out-dir", str(out),
           "-o", str(tmp_path / "v.gif"), "-q"]  # fmt: skip
    assert main(["variations", str(images[0]), *eta]) == 0
    before = (out / "frame_00000.png").read_bytes()
    capsys.readouterr()
    assert main(["variations", str(out / "frame_00000.png"), *eta]) == 2
    assert "frame_00000.png" in capsys.readouterr().err
    assert (out / "frame_00000.png").read_bytes() == before


@pytest.mark.parametrize("where", ["out_dir", "output"])
def test_render_spec_name_too_long_is_an_argument_error(tmp_path, where):
    """A 300-byte folder or video name: a raw OSError (ENAMETOOLONG) from exists(), not a refusal."""
    spec = {"preset": "tiny", "steps": 2, "keyframes": [{"text": "a"}, {"text": "b", "frames": 1}]}
    paths = {"out_dir": tmp_path / "o", "output": tmp_path / "o.gif"}
    paths[where] = tmp_path / ("x" * 300 + (".gif" if where == "output" else ""))
    with pytest.raises(ArgumentError, match=f"{where} .*longer than"):
        ll.render_spec(spec, **paths, progress=False)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_a_spec_file_that_cannot_be_read_is_a_spec_error(tmp_path, monkeypatch, suffix):
    """A spec or trajectory file without read permission (simulated: tests may run as root): a raw
    PermissionError from load_spec, not a SpecError naming the file."""
    from pathlib import Path

    from latentlab.errors import SpecError

    p = tmp_path / f"s{suffix}"
    p.write_text("{}" if suffix == ".json" else "")

    def refused(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", refused)
    with pytest.raises(SpecError, match="cannot be read .*Permission denied.*permissions"):
        ll.load_spec(p)
    with pytest.raises(SpecError, match="trajectory file"):
        ll.Trajectory.load(p)


@pytest.mark.parametrize("name", ["frame_00001.png", "manifest.json", "embeddings.npy"])
def test_render_refuses_a_folder_named_like_a_file_it_writes(tmp_path, name):
    """A folder named frame_00001.png (or manifest.json, embeddings.npy) in out_dir: with overwrite a
    raw IsADirectoryError from the unlink or the rename, after the frames were drawn."""
    out = tmp_path / "out"
    (out / name).mkdir(parents=True)
    with pytest.raises(ArgumentError, match=f"holds a folder named {name}"):
        ll.render(_z(), FakeDecoder(), out_dir=out, overwrite=True)
    assert os.listdir(out) == [name]


def test_render_replaces_a_link_to_a_folder_named_like_a_frame(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("kept")
    os.symlink(elsewhere, out / "frame_00001.png")
    ll.render(_z(), FakeDecoder(), out_dir=out, overwrite=True)
    assert (out / "frame_00001.png").is_file() and (elsewhere / "keep.txt").read_text() == "kept"


def test_save_frames_folder_name_too_long_is_an_argument_error(tmp_path):
    from latentlab.video import save_frames

    with pytest.raises(ArgumentError, match="longer than"):
        save_frames(np.zeros((2, 4, 4, 3), np.uint8), tmp_path / ("x" * 300))
