"""Long renders: a contact sheet too large to reopen warns, the pacing checkpoint does not copy its
pictures on each save, and the --format help says what a gif or webp holds in memory."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import latentlab as ll


def test_contact_sheet_too_large_for_pillow_to_reopen_warns_naming_max_frames(monkeypatch):
    from PIL import Image

    frames = np.zeros((100, 8, 8, 3), np.uint8)  # 10 x 10 tiles: 102 x 102 px with pad=2
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    with pytest.warns(UserWarning, match=r"102 x 102 pixels.*MAX_IMAGE_PIXELS.*max_frames=") as rec:
        sheet = ll.contact_sheet(frames)
    assert sheet.shape == (102, 102, 3)  # made all the same: the default is documented
    assert rec[0].filename == __file__  # stacklevel: the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ll.contact_sheet(frames, max_frames=64).shape == (82, 82, 3)  # within: no warning
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # the user lifted Pillow's check
        ll.contact_sheet(frames)


def test_pacing_checkpoint_save_does_not_copy_the_pictures(tmp_path, monkeypatch):
    import torch

    from latentlab.jobs import _PacingCheckpoint

    monkeypatch.setattr(_PacingCheckpoint, "concat_bytes", 100, raising=False)  # (64 MB: these 8 x 48 bytes go in one tensor)
    ck = _PacingCheckpoint(tmp_path / "p.pt", "k")
    pictures = {(0, i / 8): np.full((1, 4, 4, 3), i, np.uint8) for i in range(8)}
    for point, pic in pictures.items():
        dict.__setitem__(ck, point, pic)
    ck._dirty = True
    saved = {}
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f: (saved.update(obj), real_save(obj, f))[1])
    ck.save()
    # each picture written where it lies (a torch.cat of them all held a second copy while saving)
    assert all(np.shares_memory(v.numpy(), pictures[p]) for v, p in zip(saved["values"], pictures))
    again = _PacingCheckpoint(tmp_path / "p.pt", "k")
    assert list(again) == list(pictures)
    assert all(again[p].shape == (1, 4, 4, 3) and np.array_equal(again[p], pic) for p, pic in pictures.items())


def test_pacing_checkpoint_of_a_few_values_is_one_tensor_as_before(tmp_path):
    from latentlab.jobs import _PacingCheckpoint

    ck = _PacingCheckpoint(tmp_path / "p.pt", "k")
    for i in range(5):
        dict.__setitem__(ck, (0, i / 5), np.full((1, 3), i, np.float32))
    ck._dirty = True
    ck.save()
    import torch

    saved = torch.load(tmp_path / "p.pt", weights_only=True)
    assert saved["values"].shape == (5, 3) and saved["kind"] == "numpy"
    again = _PacingCheckpoint(tmp_path / "p.pt", "k")
    assert [again[p].tolist() for p in again] == [[[float(i)] * 3] for i in range(5)]


def test_pacing_checkpoint_written_before_still_loads(tmp_path):
    import torch

    from latentlab.jobs import _PacingCheckpoint

    values = torch.arange(6, dtype=torch.float32).reshape(3, 2)  # the format before: one tensor of all points
    torch.save({"key": "k", "kind": "torch", "points": [[0, 0.0], [0, 0.5], [1, 0.25]], "values": values},
               tmp_path / "p.pt")
    ck = _PacingCheckpoint(tmp_path / "p.pt", "k")
    assert list(ck) == [(0, 0.0), (0, 0.5), (1, 0.25)]
    assert [ck[p].tolist() for p in ck] == [[[0.0, 1.0]], [[2.0, 3.0]], [[4.0, 5.0]]]


def test_format_help_says_what_a_gif_or_webp_holds_in_memory(capsys):
    from latentlab.cli import main

    with pytest.raises(SystemExit):
        main(["render", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "a webp at about twice theirs: for a long render, write mp4" in text
