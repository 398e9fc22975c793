"""Render folders written by older (or newer) latentlab versions, read by this one: each old
folder is made here by hand, as the older code wrote it, so no old package or git is needed."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import latentlab as ll
from latentlab.errors import ArgumentError
from latentlab.trajectory import Segment, Trajectory

from conftest import FakeDecoder


def _path(n: int = 3) -> Trajectory:
    g = torch.Generator().manual_seed(1)
    kf = torch.nn.functional.normalize(torch.randn(n, 8, generator=g), dim=-1)
    return Trajectory(kf, [Segment(frames=3) for _ in range(n - 1)], space="fake-space")


def _files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != ".latentlab.lock"}


def _stop_after(n: int):
    count = [0]

    def cb(info):
        if not info["resumed"]:
            count[0] += 1
            if count[0] > n:
                raise KeyboardInterrupt

    return cb


def _as_before_2026_12_05(folder) -> None:
    """Rewrite the manifest as a latentlab before 2026-12-05 wrote it for ``guidance_scale=3``:
    the integer recorded, and fingerprinted, as given (now 3.0)."""
    m = json.loads((folder / "manifest.json").read_text())
    m["guidance_scale"] = 3
    settings_then = {k: m[k] for k in ("seed", "noise", "steps", "guidance_scale", "decoder")}
    z = np.load(folder / "embeddings.npy").astype(np.float32)
    h = hashlib.sha256(z.tobytes())
    h.update(json.dumps(settings_then, sort_keys=True, default=str).encode())
    m["fingerprint"] = h.hexdigest()
    (folder / "manifest.json").write_text(json.dumps(m, indent=2))


def test_a_render_recorded_with_an_integer_guidance_before_2026_12_05_resumes(tmp_path):
    # docs/spec.md: "a setting written another way (guidance_scale = 3 or 3.0 ...)" is the same render; a
    # folder an older latentlab rendered with guidance_scale = 3 recorded the integer, and was refused as
    # "guidance_scale 3 -> 3.0" (render_spec had inverted, paced and replaced its caches first)
    out = tmp_path / "r"
    fresh = ll.render(_path(), FakeDecoder(), guidance_scale=3, progress=False)
    with pytest.raises(KeyboardInterrupt):
        ll.render(_path(), FakeDecoder(), guidance_scale=3, out_dir=out, batch_size=1, progress=False,
                  callback=_stop_after(2))  # fmt: skip
    _as_before_2026_12_05(out)
    kept = len(list(out.glob("frame_*.png")))
    dec = FakeDecoder()
    frames = ll.render(_path(), dec, guidance_scale=3, out_dir=out, progress=False)
    assert 0 < kept and sum(dec.calls) == len(fresh) - kept  # the kept frames are not drawn again
    np.testing.assert_array_equal(frames, fresh)
    m = json.loads((out / "manifest.json").read_text())
    assert m["complete"] is True and m["guidance_scale"] == 3.0


def test_an_integer_guidance_record_of_another_value_is_still_another_render(tmp_path):
    out = tmp_path / "r"
    ll.render(_path(), FakeDecoder(), guidance_scale=3, out_dir=out, progress=False)
    _as_before_2026_12_05(out)
    before = _files(out)
    with pytest.raises(ArgumentError, match=r"guidance_scale 3 -> 4\.0"):
        ll.render(_path(), FakeDecoder(), guidance_scale=4, out_dir=out, progress=False)
    assert _files(out) == before


def test_a_manifest_of_a_newer_format_is_refused_not_written_over(tmp_path):
    # a newer latentlab's manifest (format 'latentlab.render/2', entries this one does not know) was
    # resumed as this one's own and written over as format /1, its entries dropped
    out = tmp_path / "r"
    ll.render(_path(), FakeDecoder(), out_dir=out, progress=False)
    m = json.loads((out / "manifest.json").read_text())
    m.update({"format": "latentlab.render/2", "frame_sha256": ["..."], "complete": False})
    (out / "manifest.json").write_text(json.dumps(m))
    (out / "frame_00002.png").unlink()
    before = _files(out)
    with pytest.raises(ArgumentError, match=r"another manifest\.json format \('latentlab\.render/2'.*overwrite=True") as e:
        ll.render(_path(), FakeDecoder(), out_dir=out, progress=False)
    assert str(out) in str(e.value)
    assert _files(out) == before
    dec = FakeDecoder()  # overwrite=True replaces it, as another render
    ll.render(_path(), dec, out_dir=out, overwrite=True, progress=False)
    assert sum(dec.calls) > 0 and json.loads((out / "manifest.json").read_text())["format"] == "latentlab.render/1"


def test_render_spec_refuses_a_newer_manifest_before_any_model_loads(tmp_path, images, tiny_encoder, tiny_decoder,
                                                                     monkeypatch):  # fmt: skip
    from latentlab import presets

    spec = {"preset": "tiny", "keyframes": [{"image": str(images[0])}, {"image": str(images[1])}], "frames": 3}
    out = tmp_path / "r"
    ll.render_spec(spec, encoder=tiny_encoder, decoder=tiny_decoder, out_dir=out, progress=False)
    m = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**m, "format": "latentlab.render/2"}))
    before = _files(out)
    for mod in (ll, presets):
        for name in ("create_encoder", "create_decoder", "create_prior"):
            monkeypatch.setattr(mod, name, lambda *a, _n=name, **k: pytest.fail(f"{_n} was called before the refusal"))
    with pytest.raises(ArgumentError, match="another manifest.json format"):
        ll.render_spec(spec, out_dir=out, progress=False)
    assert _files(out) == before


def test_render_spec_refuses_a_folder_of_other_sampling_marks_before_pacing_writes_over_it(
    tmp_path, images, tiny_encoder, tiny_decoder, monkeypatch
):
    # a folder rendered before a fix changed some step counts' frames (timesteps = "exact", 2026-12-06) has
    # no such mark: render() refuses it, but render_spec measured the pacing again first (minutes of decodes
    # on a real model) and wrote it over the folder's pacing.json
    spec = {"preset": "tiny", "keyframes": [{"image": str(images[0])}, {"image": str(images[1]), "frames": 3}],
            "steps": 3, "pacing": "even", "noise": "slerp", "format": "gif"}  # fmt: skip
    out = tmp_path / "r"
    ll.render_spec(spec, encoder=tiny_encoder, decoder=tiny_decoder, out_dir=out, progress=False)
    before = _files(out)
    monkeypatch.setattr(tiny_decoder, "sampling_marks", lambda steps: {"timesteps": "exact"}, raising=False)
    decodes = []
    real = tiny_decoder.decode
    monkeypatch.setattr(tiny_decoder, "decode", lambda *a, **k: decodes.append(1) or real(*a, **k))
    with pytest.raises(ArgumentError, match=r"holds a different render \(timesteps unset -> 'exact'") as e:
        ll.render_spec(spec, encoder=tiny_encoder, decoder=tiny_decoder, out_dir=out, progress=False)
    assert str(out) in str(e.value)
    assert not decodes  # (pacing was measured again)
    assert _files(out) == before


@settings(derandomize=True, max_examples=6, deadline=None)
@given(guidance=st.sampled_from([0, 1, 2, 7]), stop=st.integers(0, 6))
def test_property_a_folder_recorded_with_an_integer_guidance_resumes_to_the_fresh_render(tmp_path_factory, guidance, stop):
    out = tmp_path_factory.mktemp("r") / "r"
    fresh = ll.render(_path(), FakeDecoder(), guidance_scale=float(guidance), progress=False)
    try:
        ll.render(_path(), FakeDecoder(), guidance_scale=guidance, out_dir=out, batch_size=1, progress=False,
                  callback=_stop_after(stop))  # fmt: skip
    except KeyboardInterrupt:
        pass
    m = json.loads((out / "manifest.json").read_text())
    m["guidance_scale"] = guidance
    settings_then = {k: m[k] for k in ("seed", "noise", "steps", "guidance_scale", "decoder")}
    h = hashlib.sha256(np.load(out / "embeddings.npy").astype(np.float32).tobytes())
    h.update(json.dumps(settings_then, sort_keys=True, default=str).encode())
    m["fingerprint"] = h.hexdigest()
    (out / "manifest.json").write_text(json.dumps(m))
    np.testing.assert_array_equal(ll.render(_path(), FakeDecoder(), guidance_scale=guidance, out_dir=out, progress=False), fresh)


@pytest.mark.parametrize("recorded", [{"pacing": ["even"]}, {"keyframes": [{"image": "a.png", "mix": 3}]},
                                      {"keyframes": [{"image": "a.png", "sum": {"text": "x"}}]}])  # fmt: skip
def test_a_damaged_manifest_spec_is_refused_as_another_render_not_a_raw_type_error(tmp_path, images, monkeypatch, recorded):
    from latentlab import presets

    out = tmp_path / "r"
    out.mkdir()
    manifest = {"format": "latentlab.render/1", "fingerprint": "x", "spec": {"preset": "tiny", "keyframes": [], **recorded}}
    (out / "manifest.json").write_text(json.dumps(manifest))
    for mod in (ll, presets):
        for name in ("create_encoder", "create_decoder", "create_prior"):
            monkeypatch.setattr(mod, name, lambda *a, _n=name, **k: pytest.fail(f"{_n} was called before the refusal"))
    spec = {"preset": "tiny", "keyframes": [{"image": str(images[0])}, {"image": str(images[1])}], "frames": 3}
    with pytest.raises(ArgumentError, match="holds a different render"):
        ll.render_spec(spec, out_dir=out, progress=False)
