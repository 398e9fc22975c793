"""What one call returns, given to the next: a RenderResult (ll.render_spec), an IterativeEdit
(ll.iterative_text_diff) and a Pacing (ll.even_pacing) given where frames or a path are taken
were refused as "frames has shape () (dtype object)" or "Encode inputs with an Encoder first",
which named neither the attribute that holds them nor the fix.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import FakeDecoder, grey_frames
from hypothesis import given, settings
from hypothesis import strategies as st

import latentlab as ll
from latentlab.errors import ArgumentError


def _path(n: int = 3) -> ll.Trajectory:
    z = torch.nn.functional.normalize(torch.randn(2, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    return ll.Trajectory(ll.tag(z, "fake-space"), frames=n)


def _render_result(path=None) -> ll.RenderResult:
    return ll.RenderResult(frames=grey_frames(4), out_dir=Path("."), video=Path("x.mp4"),
                           contact_sheet=Path("c.png"), spec=None, trajectory=path)  # fmt: skip


def _iterative_edit() -> ll.IterativeEdit:
    z = _path().embeddings()
    return ll.IterativeEdit(frames=grey_frames(3), embeddings=z, similarity=[0.1, 0.2, 0.3], reached=False)


def _pacing() -> ll.Pacing:
    return ll.Pacing(trajectory=_path(), samples=[], distances=[], metric="pixel")


@pytest.mark.parametrize("make, call", [(_render_result, "write_video"), (_render_result, "contact_sheet"),
                                        (_iterative_edit, "write_video"), (_iterative_edit, "contact_sheet"),
                                        (_iterative_edit, "show_video")])  # (show_video takes a RenderResult itself)
def test_frame_writers_name_the_frames_of_a_result(tmp_path, make, call):
    # was "frames has shape () (dtype object) ... pass a uint8 array"
    fn = {"write_video": lambda r: ll.write_video(r, tmp_path / "x.gif", fps=4, pingpong=True),
          "contact_sheet": ll.contact_sheet, "show_video": lambda r: ll.show_video(r, fps=4)}[call]  # fmt: skip
    with pytest.raises(ArgumentError, match=r"frames is a latentlab \w+, not frames .*Fix: pass its frames, "
                                            r"e\.g\. result\.frames"):
        fn(make())
    assert not (tmp_path / "x.gif").exists()


def test_save_image_names_the_frames_of_a_result(tmp_path):
    with pytest.raises(ArgumentError, match=r"array is a latentlab IterativeEdit, not an image .*result\.frames.*"
                                            r"take one frame"):
        ll.save_image(_iterative_edit(), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_a_pacing_given_as_frames_says_to_render_its_trajectory(tmp_path):
    with pytest.raises(ArgumentError, match=r"frames is a latentlab Pacing, .*render it first, "
                                            r"frames = dec\.render\(result\.trajectory\)"):
        ll.write_video(_pacing(), tmp_path / "x.mp4")
    with pytest.raises(ArgumentError, match=r"got Pacing\. Fix: .*dec\.render\(result\.trajectory\)"):
        ll.pacing_stats(_pacing())


@pytest.mark.parametrize("make", [_pacing, lambda: _render_result(_path())])
def test_render_of_a_pacing_or_render_result_names_its_trajectory(make):
    # ll.even_pacing returns a Pacing; rendering it said "Encode inputs with an Encoder first"
    dec = FakeDecoder()
    for call in (lambda r: ll.render(r, dec, progress=False), lambda r: dec.render(r, progress=False)):
        with pytest.raises(ArgumentError, match=r"got (Pacing|RenderResult)\. Fix: pass its path, result\.trajectory"):
            call(make())
    assert dec.calls == []
    frames = ll.render(make().trajectory, dec, progress=False)  # the fix the message gives works
    assert frames.shape == (3, 8, 8, 3)


def test_render_of_an_iterative_edit_names_its_embeddings():
    dec = FakeDecoder()
    with pytest.raises(ArgumentError, match=r"got IterativeEdit\. Fix: pass its embeddings, e\.g\. result\.embeddings"):
        ll.render(_iterative_edit(), dec, progress=False)
    assert ll.render(_iterative_edit().embeddings, dec, progress=False).shape == (3, 8, 8, 3)


def test_plots_and_pacing_name_the_part_of_a_result():
    refs = _path().keyframes
    with pytest.raises(ArgumentError, match=r"path must be .*got Pacing\. Fix: pass its path, result\.trajectory"):
        ll.plot_similarity(_pacing(), refs, ["a", "b"])
    with pytest.raises(ArgumentError, match=r"got Pacing\. Fix: pass its path, result\.trajectory\.$"):
        ll.plot_pacing(_pacing())  # was "convert it to a numpy array or a tensor"
    # an IterativeEdit has no .trajectory: the hint offered one
    with pytest.raises(ArgumentError, match=r"got IterativeEdit\. Fix: pass its frames, e\.g\. result\.frames "
                                            r"\(an IterativeEdit is not itself the frames\)\.$"):
        ll.consecutive_distances(_iterative_edit())
    with pytest.raises(ArgumentError, match=r"got Pacing\. Fix: pass its path, result\.trajectory"):
        ll.even_pacing(_pacing(), None, FakeDecoder(), metric="pixel")  # re-pacing a Pacing


def test_other_objects_keep_their_messages():
    from latentlab.space import check_embeddings

    with pytest.raises(ArgumentError, match="Encode inputs with an Encoder"):
        check_embeddings("a red circle", name="z")
    with pytest.raises(ArgumentError, match=r"frames has shape \(\) \(dtype object\)"):
        ll.contact_sheet(object())


@settings(derandomize=True, max_examples=15, deadline=None)
@given(hold_first=st.integers(0, 3), hold_last=st.integers(0, 3), pingpong=st.booleans(), n=st.integers(1, 5))
def test_sequence_holds_and_pingpong_as_documented(hold_first, hold_last, pingpong, n):
    # sequence's docstring: T' = T + hold_first + hold_last + (max(T - 2, 0) if pingpong else 0); holds of the
    # first frame before the forward pass, of the last at the turn; the way back leaves out both turning frames
    from latentlab.video import sequence

    frames = grey_frames(n)
    out = sequence(frames, hold_first=hold_first, hold_last=hold_last, pingpong=pingpong)
    order = [int(f[1, 1, 0]) // 40 for f in out]  # frame k is grey 40 * k
    if n == 1:
        assert order == [0] * (1 + hold_first + hold_last)
        return
    want = [0] * hold_first + list(range(n)) + [n - 1] * hold_last
    if pingpong:
        want += list(range(n - 2, 0, -1))
    assert order == want
    assert len(out) == n + hold_first + hold_last + (max(n - 2, 0) if pingpong else 0)


@pytest.mark.parametrize("start, named", [("nope.png", r"image_or_embedding: image file not found"),
                                          (["nope.png"], r"image_or_embedding\[0\]: image file not found"),
                                          (5, r"image_or_embedding: unsupported image type int")])
def test_iterative_text_diff_names_its_own_argument(tiny_encoder, tiny_decoder, tmp_path, monkeypatch, start, named):
    # encode_image's errors named its argument, "images", which iterative_text_diff has not
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ArgumentError, match=named):
        ll.iterative_text_diff(tiny_encoder, tiny_decoder, start, "a photo", "a drawing", max_steps=1, steps=1)


def test_chaining_trajectories_names_their_keyframes():
    # Trajectory.chain([t1, t2]) said "Encode inputs with an Encoder first" of a path built from encodings
    t1, t2 = _path(), _path()
    with pytest.raises(ArgumentError, match=r"keyframes\[0\] must be .*got Trajectory\. Fix: pass its keyframes, "
                                            r"path\.keyframes .*path\.embeddings\(\)"):
        ll.Trajectory.chain([t1, t2])
    with pytest.raises(ArgumentError, match=r"image must be .*got Trajectory\. Fix: pass its keyframes"):
        ll.Trajectory.text_diff(t1, t1.keyframes[:1], t1.keyframes[1:])
    joined = ll.Trajectory.chain(torch.cat([t1.keyframes, t2.keyframes[-1:]]), frames=[2, 2])  # the fix works
    assert joined.keyframes.shape == (3, 8)
