"""The embedding cache's stale temporary entries, and a webp too long for
Pillow refused before any decoding."""

from __future__ import annotations

import os
import time
from unittest import mock

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import latentlab as ll
from latentlab import video
from latentlab.cli import main
from latentlab.encoders import EmbeddingCache
from latentlab.errors import ArgumentError

_WEBP_TOO_LONG = r"a webp runs at most 2147483647 ms \(24\.8 days\) in all, and these 21476 frames .* Fix: raise fps"


# -- EmbeddingCache: the temporary entries of killed writers -------------------------------------


def _left_temp(cache: EmbeddingCache, key: str, age_s: float):
    """A temporary entry as a writer killed mid-write leaves it (write_whole's name), ``age_s`` old."""
    from latentlab._atomic import temp_path

    final = cache.path(key)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(final, "")
    tmp.write_bytes(b"\x93NUMPY half")
    then = time.time() - age_s
    os.utime(tmp, (then, then))
    return tmp


def test_an_embedding_cache_removes_the_stale_temporaries_of_killed_writers_when_opened_or_cleared(tmp_path):
    """Entries are written under a fresh temporary name each: a writer killed mid-write (SIGKILL) left
    its temporary for good, as nothing swept them. Now those an hour old (video.STALE_TEMP_S) go when a
    cache is opened or cleared; a newer one (another process may be writing it now) stays."""
    first = EmbeddingCache(tmp_path / "c")
    key_a, key_b = EmbeddingCache.make_key("m", "text", "a"), EmbeddingCache.make_key("m", "text", "b")
    first.put(key_a, torch.ones(4) / 2)
    stale = _left_temp(first, key_a, video.STALE_TEMP_S + 60)
    live = _left_temp(first, key_b, 10)
    again = EmbeddingCache(tmp_path / "c")  # opened: the stale one goes, the live one and the entry stay
    assert not stale.exists() and live.exists()
    assert again.get(key_a) is not None and len(again) == 1
    stale = _left_temp(again, key_b, video.STALE_TEMP_S + 60)
    again.clear()
    assert not stale.exists() and live.exists() and len(again) == 0


def test_an_embedding_cache_does_not_list_its_folders_at_every_read_or_write(tmp_path, monkeypatch):
    cache = EmbeddingCache(tmp_path / "c")  # (not there yet: nothing to sweep)
    from latentlab import encoders

    calls = []
    monkeypatch.setattr(encoders, "remove_temps", lambda *a, **k: calls.append(a) or [], raising=False)
    for k in range(5):
        key = EmbeddingCache.make_key("m", "text", str(k))
        cache.put(key, torch.ones(4) / 2)
        assert cache.get(key) is not None
    assert calls == []


# -- a webp longer than Pillow can time: refused before any decoding ------------------------------


def test_render_spec_refuses_a_webp_too_long_for_pillow_before_any_model_loads(tmp_path, images, no_models):
    """write_video refuses a webp longer than 2**31 - 1 ms (Pillow's C int), but a render reached it
    only after decoding every frame; render_spec checks it first now, as it checks a gif's limits."""
    spec = {"preset": "tiny", "frames": 1, "fps": 0.01, "format": "webp", "hold_last": 21474,
            "keyframes": [{"image": str(images[0])}, {"image": str(images[1])}]}  # fmt: skip
    with pytest.raises(ArgumentError, match=_WEBP_TOO_LONG):
        ll.render_spec(spec, out_dir=tmp_path / "r", progress=False)
    # ping-pong and a keyframe's hold count too: 2 + 1 held + 21473 back = 21476 frames
    spec = {**spec, "hold_last": 0, "pingpong": True, "keyframes": [{"image": str(images[0])},
            {"image": str(images[1]), "frames": 21474, "hold": 1}]}  # fmt: skip
    with pytest.raises(ArgumentError, match=r"a webp runs at most 2147483647 ms .* these 42950 frames"):
        ll.render_spec(spec, out_dir=tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


def test_variations_eta_refuses_a_webp_too_long_for_pillow_before_any_model_loads(tmp_path, images, no_models, capsys):
    argv = ["variations", str(images[0]), "-n", "2", "--eta", "0.5", "--preset", "mini", "--format", "webp", "--fps", "0.01",
            "--hold-last", "21474", "-o", str(tmp_path / "v.webp"), "--out-dir", str(tmp_path / "v"), "-q"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "a webp runs at most 2147483647 ms (24.8 days) in all, and these 21476 frames" in err
    assert not (tmp_path / "v").exists() and not (tmp_path / "v.webp").exists()


@settings(derandomize=True, max_examples=40, deadline=None)
@given(n=st.integers(1, 6), hf=st.integers(0, 5), hl=st.integers(0, 5), pp=st.booleans(),
       fps=st.sampled_from([0.01, 0.0100001, 0.5, 24.0]))  # fmt: skip
def test_check_webp_length_refuses_exactly_what_write_video_refuses(n, hf, hl, pp, fps):
    """The early check and write_video's own agree on every count of frames, holds and ping-pong
    (the limit scaled down so that small sequences reach it)."""
    frames = len(video._sequence_indices(n, hf, hl, pp))
    limit = round(frames * 1000.0 / fps)  # at the limit: taken; one ms below: refused
    for lim, refused in ((limit, False), (limit - 1, True)):
        with mock.patch.object(video, "_WEBP_MAX_TOTAL_MS", lim):
            try:
                video.check_webp_length(n, fps, "webp", hold_first=hf, hold_last=hl, pingpong=pp)
                early = False
            except ArgumentError:
                early = True
        assert early == refused, (lim, frames)
        video.check_webp_length(n, fps, "gif", hold_first=hf, hold_last=hl, pingpong=pp)  # only webp is limited
