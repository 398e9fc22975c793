"""Notebook views of big inputs do not balloon a saved notebook."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import latentlab as ll
from latentlab import notebook
from latentlab.errors import ArgumentError


def _decode_png(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _frames(T: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (T, h, w, 3), dtype=np.uint8)


def test_show_of_many_frames_shows_an_evenly_spaced_subset_and_says_so():
    # 1,000 frames of 64 px embedded about 23 MB: more than SHOW_MAX_FRAMES are shown as that many
    f = _frames(100, 4, 4)
    view = ll.show(f, caption="morph")
    n = 64  # notebook.SHOW_MAX_FRAMES
    np.testing.assert_array_equal(view.array, ll.contact_sheet(f, max_frames=n))
    assert view.caption == f"morph ({n} of 100 frames, evenly spaced; max_frames= shows more)"
    assert f"{n} of 100 frames" in view._repr_html_()
    # labels for every input frame are picked with the frames; max_frames given is honoured as before
    labels = [f"#{i}" for i in range(100)]
    np.testing.assert_array_equal(ll.show(f, labels=labels).array, ll.contact_sheet(f, max_frames=n, labels=labels))
    np.testing.assert_array_equal(ll.show(f, max_frames=100).array, ll.contact_sheet(f, max_frames=100))
    assert ll.show(f, max_frames=100).caption is None
    assert ll.show(f[:n]).caption is None  # up to SHOW_MAX_FRAMES: all of them, as before


def test_a_large_picture_is_shown_downscaled_and_saved_at_full_size(tmp_path):
    # a 4000 x 3000 photo was embedded at full size, twice (about 84 MB)
    img = _frames(1, 8, 2100)[0]
    view = ll.show(img)
    shown = _decode_png(view._repr_png_())
    assert shown.shape == (8, 2048, 3) and view.array.shape == (8, 2100, 3)
    html = view._repr_html_()
    assert 'width="2048"' in html and "shown at 2048 x 8 of 2100 x 8 px" in html
    path = ll.show(img).save(tmp_path / "full.png")
    np.testing.assert_array_equal(ll.load_image(path), img)  # the picture itself is untouched
    file_view = ll.show(path)
    assert _decode_png(file_view._repr_png_()).shape == (8, 2048, 3)


def test_a_sheet_of_large_frames_shrinks_its_tiles_to_fit():
    f = _frames(2, 6, 1100)
    view = ll.show(f, labels=["a", "b"])
    png = _decode_png(view._repr_png_())
    assert max(png.shape[:2]) <= 2048 and png.shape[1] > 2000
    np.testing.assert_array_equal(png, view.array)  # tiles shrunk before the sheet is drawn: labels stay sharp


def test_show_takes_max_embed_mb_as_show_video_does(tmp_path):
    f = _frames(16, 16, 16)
    with pytest.raises(ArgumentError, match=r"over max_embed_mb=0\.001.*Fix: show fewer or smaller frames"):
        ll.show(f, max_embed_mb=0.001)
    with pytest.raises(ArgumentError, match=r"over max_embed_mb=0\.001"):
        ll.show(_frames(1, 32, 32)[0], max_embed_mb=0.001)
    assert ll.show(f, max_embed_mb=float("inf")).array.shape == ll.contact_sheet(f).shape
    for bad in (True, -1, float("nan"), "20", None):
        with pytest.raises(ArgumentError, match="max_embed_mb must be a number of MB >= 0"):
            ll.show(f, max_embed_mb=bad)
    gif = ll.write_video(f, tmp_path / "v.gif", fps=4)
    assert ll.show(gif, max_embed_mb=0).data is None  # a file over the limit: by reference, as show_video
    assert ll.show(gif).data == gif.read_bytes()


def test_a_view_encodes_its_png_once(monkeypatch):
    calls = []
    real = notebook.png_bytes
    monkeypatch.setattr(notebook, "png_bytes", lambda image: calls.append(1) or real(image))
    view = ll.show(_frames(4, 8, 8))
    html, png = view._repr_html_(), view._repr_png_()
    view._repr_html_()
    assert len(calls) == 1 and png in [view._repr_png_()]
    import base64

    assert base64.b64encode(png).decode("ascii") in html


@settings(derandomize=True, max_examples=15, deadline=None)
@given(T=st.integers(1, 70), h=st.integers(1, 12), w=st.integers(1, 12), seed=st.integers(0, 3))
def test_small_views_embed_the_sheet_itself(T, h, w, seed):
    # the documented promise: a sheet of up to SHOW_MAX_FRAMES small frames is shown whole, pixel for pixel
    f = _frames(T, h, w, seed)
    view = ll.show(f)
    want = ll.contact_sheet(f, max_frames=min(T, 64))
    np.testing.assert_array_equal(_decode_png(view._repr_png_()), want)
    assert f'width="{want.shape[1] * view.scale}"' in view._repr_html_()
