"""save_image's refusals of what a format cannot hold, ll.show of many image files reading only
those shown, mini export's --stages."""

from __future__ import annotations

import errno

import numpy as np
import pytest

import latentlab as ll
from latentlab.errors import ArgumentError


# ---------------------------------------------------------------------------------------------
# save_image: a size or mode the format cannot hold is an ArgumentError, a full disk stays as it was
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ext", [".tga", ".pcx", ".sgi", ".ico"])
def test_save_image_refuses_a_side_the_format_cannot_hold_naming_path_format_and_png(tmp_path, ext):
    """Pillow raised a raw OverflowError (.tga, .pcx), struct.error (.sgi) or ValueError (.ico)."""
    target = tmp_path / f"wide{ext}"
    with pytest.raises(ArgumentError, match=r"wide\..*Fix: save it as \.png") as e:
        ll.save_image(np.zeros((1, 70000, 3), np.uint8), target)
    assert ext.lstrip(".") in str(e.value).lower() or "ico" in str(e.value).lower()
    assert list(tmp_path.iterdir()) == []  # nothing left: no target, no temporary file


def test_save_image_refuses_an_avif_side_its_encoder_cannot_hold(tmp_path):
    """Pillow's avif writer raised a raw RuntimeError ('Failed to encode image: Invalid argument')."""
    from PIL import Image

    if Image.registered_extensions().get(".avif") not in Image.SAVE:
        pytest.skip("this Pillow writes no avif")
    with pytest.raises(ArgumentError, match=r"avif.*Fix: save it as \.png"):
        ll.save_image(np.zeros((1, 70000, 3), np.uint8), tmp_path / "a.avif")
    assert list(tmp_path.iterdir()) == []


def test_save_image_refuses_a_mode_the_format_cannot_hold(tmp_path):
    """.xbm holds 1-bit pictures only: Pillow's 'cannot write mode RGB as XBM' was a raw OSError."""
    with pytest.raises(ArgumentError, match=r"xbm.*Fix: save it as \.png"):
        ll.save_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "a.xbm")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES])
def test_save_image_a_file_system_error_while_writing_is_raised_as_it_was(tmp_path, monkeypatch, code):
    """An OSError with an errno (a full disk) is the file system's, not the format's: not said as 'save as .png'."""
    from PIL import Image

    def fail(self, fp, format=None, **kw):
        raise OSError(code, "simulated")

    monkeypatch.setattr(Image.Image, "save", fail)
    with pytest.raises(OSError) as e:
        ll.save_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "a.tga")
    assert not isinstance(e.value, ArgumentError) and e.value.errno == code
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# show: of many image files, only the shown ones are loaded
# ---------------------------------------------------------------------------------------------
def _files(tmp_path, n):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (n, 6, 6, 3), dtype=np.uint8)
    return frames, [ll.save_image(f, tmp_path / f"f{i:03d}.png") for i, f in enumerate(frames)]


@pytest.mark.parametrize("with_labels", [False, True])
def test_show_of_many_image_files_loads_only_the_shown_ones_same_view(tmp_path, monkeypatch, with_labels):
    from latentlab import notebook, video

    frames, paths = _files(tmp_path, 100)
    labels = [f"n{i}" for i in range(100)] if with_labels else None
    want = notebook.show(list(frames), labels=labels)
    loaded = []
    real = video.load_image
    monkeypatch.setattr(video, "load_image", lambda p, *a, **k: loaded.append(p) or real(p, *a, **k))
    got = notebook.show(paths, labels=labels)
    assert len(loaded) == notebook.SHOW_MAX_FRAMES  # (all 100 were read to show 64)
    assert got.caption == want.caption and "64 of 100 frames" in got.caption
    assert got._repr_png_() == want._repr_png_()


def test_show_of_many_image_files_still_refuses_a_broken_shown_one_as_before(tmp_path):
    _, paths = _files(tmp_path, 70)
    paths[0].write_bytes(b"not a picture")
    with pytest.raises(ArgumentError):
        ll.show(paths)


# ---------------------------------------------------------------------------------------------
# mini export: the CLI names its flag
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("given, said", [(",", "--stages: name at least one"), ("decoder,upsampler", "--stages: unknown")])
def test_export_cli_refusal_of_stages_names_the_flag(tmp_path, given, said):
    from latentlab.mini.export import export, main

    with pytest.raises(ArgumentError) as e:
        main(["--from", str(tmp_path / "run"), "--to", str(tmp_path / "w"), "--stages", given])
    assert str(e.value).startswith(said)
    with pytest.raises(ArgumentError) as e:  # the function names its argument
        export(tmp_path / "run", tmp_path / "w", stages=tuple(s for s in given.split(",") if s))
    assert str(e.value).startswith(said[2:])
    assert not (tmp_path / "w").exists()
