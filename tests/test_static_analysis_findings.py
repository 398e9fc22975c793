"""Found by static analysis: a preset licence that is not a string, a bool tensor taken as a frame count."""

from __future__ import annotations

import pytest
import torch

from latentlab import cli, presets
from latentlab.errors import ArgumentError
from latentlab.trajectory import Segment, split_frames

_GOOD = {"name": "checked", "space": "s", "dim": 32, "resolution": 64, "encoder": {"kind": "open_clip_tiny"},
         "decoder": {"kind": "mini"}}  # fmt: skip


@pytest.mark.parametrize("licence", [None, 3, ("MIT",)])
def test_register_preset_refuses_a_licence_that_is_not_text(licence, monkeypatch):
    """`latentlab presets` pads each licence in its table: a preset registered with licence=None
    (a plugin's "unknown") made the command fail with a raw TypeError, long after register_preset
    took it. Refused at registration, naming the preset and the field."""
    monkeypatch.setattr(presets, "PRESETS", dict(presets.PRESETS))
    with pytest.raises(ArgumentError, match="preset 'checked': licence must be a string"):
        presets.register_preset(presets.Preset(**_GOOD, licence=licence))
    assert "checked" not in presets.PRESETS


def test_presets_table_lists_a_registered_preset_without_a_licence(monkeypatch, capsys):
    monkeypatch.setattr(presets, "PRESETS", dict(presets.PRESETS))
    presets.register_preset(presets.Preset(**_GOOD))  # licence "" (the default): shown as nothing
    assert cli.main(["presets"]) == 0
    assert any(line.startswith("checked ") for line in capsys.readouterr().out.splitlines())


@pytest.mark.parametrize("field", ["frames", "hold"])
def test_segment_refuses_a_bool_tensor_as_it_refuses_a_bool(field):
    """Segment(frames=True) was refused, but a 0-d bool tensor (e.g. ``n > 0``) passed the integer
    check and became 1 frame (or a hold of 1): a bool is not a count, whichever type holds it."""
    kw = {"frames": 3, field: torch.tensor(True)}
    with pytest.raises(ArgumentError, match=f"Segment.{field} must be an integer"):
        Segment(**kw)
    with pytest.raises(ArgumentError, match="frames must be an int"):
        split_frames(torch.tensor(True), 1)
    assert getattr(Segment(**{**kw, field: torch.tensor(2)}), field) == 2  # integer tensors stay taken
