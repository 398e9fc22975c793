"""mini's learned upscaler checked for NaN as its sampler is,
--name beside --out-dir refused as such first, build_index's killed-write leftovers swept."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_mini_decoder, twemoji_cache
from hypothesis import given, settings
from hypothesis import strategies as st

from latentlab.errors import ArgumentError

# -- 1. mini's learned upscaler: NaN out of it is refused, not drawn black ------------------------------


def _upscaler(nan: bool = False):
    from latentlab.mini.models import MiniUpscalerNet, UpscalerConfig

    torch.manual_seed(0)
    net = MiniUpscalerNet(UpscalerConfig(in_size=32, channels=(8, 8), norm_num_groups=4))
    with torch.no_grad():  # a trained net's last layer is not zero
        net.out[2].weight.normal_(0, 0.05)
        if nan:  # damaged weights (a diverged run exported), or an overflow inside it
            net.out[2].bias[0] = float("nan")
    return net


def _inputs(dec, n: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, dec.dim, generator=g), dim=-1), \
        torch.randn(n, *dec.noise_shape(), generator=g)  # fmt: skip


@pytest.mark.parametrize("how", ["decode", "decode_eta"])
def test_an_upscaler_that_draws_nan_is_refused_not_drawn_black(how):
    # the NaN check ran on the sampler's output only: NaN out of the upscaler survived its clamp,
    # and the cast to uint8 drew black frames without a word
    dec = tiny_mini_decoder(resolution=64, upscaler=_upscaler(nan=True))
    z, x = _inputs(dec)
    with pytest.raises(ArgumentError) as e:
        if how == "decode":
            dec.decode(z, x, steps=2)
        else:
            dec.decode_eta(z, x, eta=0.5, seeds=[1, 2], steps=2)
    msg = str(e.value)
    assert "learned upscaler" in msg and "NaN or infinite" in msg and "upscale=False" in msg
    assert "guidance_scale" not in msg  # not the sampler's fault: lowering the guidance would not help


def test_an_upscaler_that_draws_nan_is_not_asked_of_at_the_native_size():
    # at or below the native size the upscaler draws no frame: its weights are never run
    dec = tiny_mini_decoder(resolution=32, upscaler=_upscaler(nan=True))
    z, x = _inputs(dec)
    frames = dec.decode(z, x, steps=2)
    assert np.array_equal(frames, tiny_mini_decoder(resolution=32).decode(z, x, steps=2))


@settings(derandomize=True, max_examples=4, deadline=None)
@given(st.integers(0, 2**16), st.sampled_from([0.0, 1.0, 3.0, 50.0]))
def test_finite_upscaled_frames_are_the_upscalers_output_clamped_and_rounded(seed, guidance):
    # the check changes no finite frame: the frames are exactly the sampler's images -> upscaler -> clamp -> uint8
    from unittest import mock

    from latentlab.mini import runtime

    dec = tiny_mini_decoder(resolution=64, upscaler=_upscaler())
    z, x = _inputs(dec, seed=seed)
    drawn, sample = [], runtime.sample_decoder
    with mock.patch.object(runtime, "sample_decoder", lambda *a, **k: drawn.append(sample(*a, **k)) or drawn[-1]):
        frames = dec.decode(z, x, steps=2, guidance_scale=guidance)
    with torch.inference_mode():
        img = dec.upscaler(drawn[0]).clamp(-1, 1)
    want = ((img + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert frames.shape == (2, 64, 64, 3) and np.array_equal(frames, want)


# -- 2. --name beside --out-dir: that refusal first ---------------------------------------------------------


@pytest.mark.parametrize("name", ["a/b", "a\\b", "!!", "n"])
def test_name_beside_out_dir_is_refused_as_such_whatever_the_name(tmp_path, no_models, monkeypatch, capsys, name):
    # --name a/b --out-dir r said "For a folder elsewhere give --out-dir a/b instead", though
    # --out-dir was given (and --name beside it is refused whatever it holds)
    from latentlab.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["generate", "x", "-n", "1", f"--name={name}", "--out-dir", "r", "--preset", "tiny", "-q"]) == 2
    err = capsys.readouterr().err
    assert f"--name {name!r} and --out-dir 'r' both choose the render folder" in err and "Give one of them" in err
    assert "instead" not in err and "holds" not in err
    assert not (tmp_path / "r").exists() and not (tmp_path / "renders").exists()


# -- 3. build_index sweeps the pictures a killed build was writing -----------------------------------------


def test_build_index_removes_stale_picture_temporaries_and_keeps_fresh_ones(tmp_path, monkeypatch):
    # a SIGKILL mid-write left one hidden .<uid>.png.<hex>.tmp per picture being written, never removed
    from latentlab._atomic import temp_path
    from latentlab.mini import data

    twemoji_cache(tmp_path)
    folder = tmp_path / "images" / "twemoji"
    folder.mkdir(parents=True)
    stale, fresh = temp_path(folder / "1f4f1.png", ""), temp_path(folder / "1f600.png", "")
    other = folder / ".notes.tmp"  # not a temporary name of ours: left alone, however old
    for p in (stale, fresh, other):
        p.write_bytes(b"\x89PNG partial")
    for p in (stale, other):
        os.utime(p, (time.time() - 7200, time.time() - 7200))
    globs = []
    real_glob = Path.glob
    monkeypatch.setattr(Path, "glob", lambda self, pattern, *a, **k: globs.append(self) or real_glob(self, pattern, *a, **k))
    data.build_index(tmp_path, ["twemoji"], verbose=False)
    monkeypatch.undo()
    assert not stale.exists() and fresh.exists() and other.exists()
    assert globs.count(folder) == 1  # once per build, not once per picture
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["1f431.png", "1f4f1.png", "1f600.png"]
