"""ll.show of big inputs: the tiles shrunk before the labels are drawn, the labels picked with
the frames, and the advice of a view over max_embed_mb."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import latentlab as ll
from latentlab.errors import ArgumentError
from latentlab.video import _pick_evenly


def _frames(T: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (T, h, w, 3), dtype=np.uint8)


def test_show_takes_a_generator_of_labels_for_frames_whose_tiles_are_shrunk():
    # 100 frames 300 px wide: the 64 shown ones' tiles are shrunk; labels one per input frame, as a generator,
    # were refused there ("labels has 100 entries but 64 frames are shown (of 64)"), taken for small frames
    f = _frames(100, 4, 300)
    labels = [f"#{i}" for i in range(100)]
    view = ll.show(f, labels=(t for t in labels))
    np.testing.assert_array_equal(view.array, ll.show(f, labels=labels).array)


def test_show_refusal_of_labels_of_another_count_names_the_frames_given_when_tiles_are_shrunk():
    f = _frames(100, 4, 300)
    with pytest.raises(ArgumentError) as e:
        ll.show(f, labels=[str(i) for i in range(10)])
    # (it said "(of 64) ... or 64 (one per input frame)": the shrunk subset, not the 100 frames given)
    assert "(of 100)" in str(e.value) and "or 100 (one per input frame)" in str(e.value)


def test_show_of_many_labelled_rows_does_not_shrink_tiles_to_a_pixel():
    # 80 rows of label strips (about 26 px each) took all of SHOW_MAX_SIDE: the tiles were shrunk to 1 px;
    # now the sheet is laid out as contact_sheet makes it and the view downscales it
    f = _frames(80, 8, 8)
    labels = [str(i) for i in range(80)]
    view = ll.show(f, labels=labels, columns=1, max_frames=80)
    np.testing.assert_array_equal(view.array, ll.contact_sheet(f, labels=labels, columns=1))
    assert max(view.shown.shape[:2]) <= ll.notebook.SHOW_MAX_SIDE


@settings(derandomize=True, max_examples=8, deadline=None)
@given(T=st.integers(65, 160), columns=st.one_of(st.none(), st.integers(1, 90)))
def test_show_with_shrunk_tiles_labels_each_shown_frame_with_its_own_label(T, columns):
    # the labels of every input frame go with the frames shown (first and last included), as when
    # the shown frames and their labels are given alone
    f = _frames(T, 4, 300, seed=T)
    labels = [f"#{i}" for i in range(T)]
    sel = _pick_evenly(T, 64)
    assert sel[0] == 0 and sel[-1] == T - 1
    view = ll.show(f, labels=labels, columns=columns)
    alone = ll.show(f[sel], labels=[labels[i] for i in sel], columns=columns)
    np.testing.assert_array_equal(view.array, alone.array)


def test_show_refusal_of_one_picture_over_max_embed_mb_does_not_advise_max_frames(tmp_path):
    # max_frames= is refused for one picture ("labels, columns and max_frames apply to frames"); it was the
    # first advice for one, and for an image file "a picture has no file to show by reference"
    img = _frames(1, 64, 64)[0]
    path = ll.save_image(img, tmp_path / "a.png")
    for x in (img, path):
        with pytest.raises(ArgumentError, match="over max_embed_mb=0") as e:
            ll.show(x, max_embed_mb=0)
        assert "max_frames" not in str(e.value) and "has no file" not in str(e.value)
    with pytest.raises(ArgumentError, match=r"\(max_frames=\)"):  # a sheet: fewer frames is advice
        ll.show(_frames(4, 8, 8), max_embed_mb=0)
