"""The decoders' guards: an overflowing sampler refused instead of drawn as black
frames; the public calls that run a shared pipeline's models hold the decoder's lock; mini's
upscaler named and hashed only where it draws the frames."""

from __future__ import annotations

import hashlib
import threading
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import latentlab as ll
from latentlab.errors import ArgumentError, LatentlabError
from latentlab.mini import weights_available
from latentlab.presets import Preset
from latentlab.space import tag

from conftest import tiny_mini_decoder

needs_weights = pytest.mark.skipif(not weights_available(), reason="the shipped mini weights are not in this checkout")

_FAMILY: dict[str, object] = {}


def _family(name: str):
    """The tiny Kandinsky or Karlo decoder (32 px, dim 32), built once per session."""
    if name not in _FAMILY:
        _FAMILY[name] = ll.create_decoder(Preset(
            name=f"{name}-tiny", space=f"tiny-{name}", dim=32, resolution=32, encoder={"kind": "hf_clip_tiny", "seed": 0},
            decoder={"kind": f"{name}_tiny", "seed": 0}, prior={"kind": f"{name}_tiny", "seed": 0},
        ))  # fmt: skip
    return _FAMILY[name]


def _decoder(which: str, tiny_decoder):
    return tiny_decoder if which == "tiny" else _family(which)


def _inputs(dec, n: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    z = tag(torch.nn.functional.normalize(torch.randn(n, dec.dim, generator=g), dim=-1), dec.space)
    return z, torch.randn(n, *dec.noise_shape(), generator=g)


# -- 1. an overflowing sampler is an error, not black frames ------------------------------------


@pytest.mark.parametrize("which", ["tiny", "kandinsky"])
def test_a_guidance_scale_that_overflows_the_sampler_is_refused_not_drawn_black(which, tiny_decoder):
    """guidance_scale=1e30 (finite, so accepted) overflowed the diffusers decoders' samplers: the
    NaN pixels were cast to uint8 as all-black frames without a word."""
    dec = _decoder(which, tiny_decoder)
    z, x = _inputs(dec)
    with pytest.raises(ArgumentError, match=r"NaN or infinite pixels .*guidance_scale=1e\+30.*Fix: lower guidance_scale"):
        dec.decode(z, x, steps=2, guidance_scale=1e30)


@pytest.mark.parametrize("which", ["tiny", "kandinsky", "karlo"])
def test_an_embed_scale_that_overflows_the_sampler_is_refused_not_drawn_black(which, tiny_decoder, monkeypatch):
    """embed_scale=1e30 (set on the decoder, or given: any finite positive number is taken) drew
    black frames with every diffusers family, Karlo's own DDIM loop and decode_base too."""
    dec = _decoder(which, tiny_decoder)
    monkeypatch.setattr(dec, "embed_scale", 1e30)
    z, x = _inputs(dec)
    with pytest.raises(ArgumentError, match=r"NaN or infinite pixels \(rows \[0, 1\]\).*embed_scale=1e\+30.*or embed_scale"):
        dec.decode(z, x, steps=2)
    if which == "karlo":
        with pytest.raises(ArgumentError, match=r"embed_scale=1e\+30"):
            dec.decode_base(z, x, steps=2)


def test_mini_in_bfloat16_with_an_overflowing_guidance_is_refused_not_drawn_black():
    """mini in bfloat16 with guidance_scale=1e39 (past bfloat16's range... and float32's) drew
    black frames; the error names the dtype as a fix too. decode_eta likewise."""
    dec = tiny_mini_decoder()
    dec = type(dec)(dec.net, resolution=32, space=dec.space, dtype=torch.bfloat16)
    z, x = _inputs(dec)
    with pytest.raises(ArgumentError, match=r"guidance_scale=1e\+39, dtype=bfloat16.*use dtype=torch.float32"):
        dec.decode(z, x, steps=2, guidance_scale=1e39)
    with pytest.raises(ArgumentError, match=r"guidance_scale=1e\+39, dtype=bfloat16"):
        dec.decode_eta(z, x, eta=0.5, steps=2, guidance_scale=1e39)


@pytest.mark.parametrize("which", ["tiny", "karlo"])
def test_an_inversion_that_overflows_is_refused_not_returned_as_nan_noise(which, tiny_decoder, monkeypatch):
    """invert with an embed_scale (or guidance) that overflows its sampler returned NaN noise
    without a word; a render cached it (keyframe_noise.pt) and then refused "keyframe_noise holds
    NaN", naming neither setting."""
    dec = _decoder(which, tiny_decoder)
    monkeypatch.setattr(dec, "embed_scale", 1e30)
    z, _ = _inputs(dec, n=1)
    image = np.random.default_rng(2).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    with pytest.raises(ArgumentError, match=r"inverted images to NaN or infinite noise \(rows \[0\]\).*embed_scale=1e\+30"):
        dec.invert(image, z, steps=2)


@settings(derandomize=True, max_examples=3, deadline=None)
@given(g=st.sampled_from([0.0, 1e6, 1.79e308]))
def test_mini_draws_a_saturating_guidance_in_float32_and_the_frames_are_the_sampler_s(g):
    """A huge guidance that stays finite is drawn (saturated), never refused, and the frames are
    the sampler's images rounded, bit for bit (the check changes no frame)."""
    from latentlab.mini.models import sample_decoder

    dec = tiny_mini_decoder()
    z, x = _inputs(dec, seed=3)
    with torch.inference_mode():
        img = sample_decoder(dec.net, z, x, steps=2, guidance_scale=g)
    want = ((img + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(dec.decode(z, x, steps=2, guidance_scale=g), want)


@settings(derandomize=True, max_examples=3, deadline=None)
@given(g=st.sampled_from([8.0, 1e6, 1e10]))
def test_the_tiny_diffusers_decoder_draws_large_finite_guidance_as_its_pipeline_does(g, tiny_decoder):
    """Guidance that leaves the sampler finite is drawn, the frames exactly the pipeline's float
    frames rounded (nothing refused, nothing changed)."""
    z, x = _inputs(tiny_decoder, seed=4)
    frames = tiny_decoder._render(z, x, seeds=[0, 1], steps=2, guidance_scale=g)
    want = np.clip(np.rint(frames * 255.0), 0, 255).astype(np.uint8)
    assert np.array_equal(tiny_decoder.decode(z, x, seeds=[0, 1], steps=2, guidance_scale=g), want)


def test_a_render_with_an_overflowing_guidance_stops_with_the_error_and_writes_no_frame(tiny_decoder, tmp_path):
    z, _ = _inputs(tiny_decoder, n=3)
    with pytest.raises(LatentlabError, match=r"guidance_scale=1e\+30"):
        ll.render(z, tiny_decoder, steps=2, guidance_scale=1e30, out_dir=tmp_path / "r", progress=False)
    assert not list((tmp_path / "r").glob("*.png"))


# -- 2. the pipeline's lock ----------------------------------------------------------------------


class _WatchedLock:
    """An RLock that says when a thread had to wait for it."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.waited = threading.Event()

    def __enter__(self):
        if not self._lock.acquire(blocking=False):
            self.waited.set()
            self._lock.acquire()
        return self

    def __exit__(self, *exc):
        self._lock.release()


def _second_call_waits_for_a_decode(monkeypatch, dec, owner, attr, second):
    """Run ``dec.decode`` in a thread held inside ``owner.attr`` (a sampling step), then ``second()``
    in another thread: whether ``second`` waited for the decode's lock (True) or ran beside it
    (False). Deterministic: no timing decides it."""
    from latentlab.decoders import base

    lock = _WatchedLock()
    monkeypatch.setitem(base._SERIAL_LOCKS, dec, lock)
    inside, release = threading.Event(), threading.Event()
    original = getattr(owner, attr)
    decoding = []

    def held(*args, **kwargs):
        if threading.current_thread() in decoding and not release.is_set():
            inside.set()
            release.wait(30)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, attr, held)
    z, x = _inputs(dec, n=1)
    errors: list[BaseException] = []

    def run(fn):
        try:
            fn()
        except BaseException as exc:  # reported below
            errors.append(exc)

    a = threading.Thread(target=run, args=(lambda: dec.decode(z, x, steps=2),))
    decoding.append(a)
    a.start()
    assert inside.wait(30)
    b = threading.Thread(target=run, args=(second,))
    b.start()
    deadline = time.monotonic() + 30
    while b.is_alive() and not lock.waited.is_set() and time.monotonic() < deadline:
        time.sleep(0.002)
    waited = lock.waited.is_set()
    release.set()
    a.join(30)
    b.join(30)
    assert not errors, errors
    return waited


@pytest.mark.parametrize("which", ["tiny", "kandinsky"])
def test_invert_latents_waits_for_another_thread_s_decode(which, tiny_decoder, monkeypatch):
    """invert_latents (public) took no lock: it ran the shared pipeline's UNet, and freed its model
    hooks (with cpu_offload: every model back to the CPU), in the middle of another thread's
    decode, as decode and invert never do."""
    dec = _decoder(which, tiny_decoder)
    z, _ = _inputs(dec, n=1, seed=5)
    lat = torch.randn(1, *dec.noise_shape())
    assert _second_call_waits_for_a_decode(monkeypatch, dec, dec.pipe.scheduler, "step",
                                           lambda: dec.invert_latents(lat, z, steps=2))  # fmt: skip


def test_karlo_decode_base_waits_for_another_thread_s_decode(monkeypatch):
    dec = _family("karlo")
    z, x = _inputs(dec, n=1, seed=6)
    assert _second_call_waits_for_a_decode(monkeypatch, dec, dec, "_decoder_eps", lambda: dec.decode_base(z, x, steps=2))


@pytest.mark.parametrize("which", ["tiny", "karlo"])
def test_the_image_encoder_calls_wait_for_another_thread_s_decode(which, tiny_decoder, monkeypatch):
    """image_encoder_embeds (Stable unCLIP) and calibrate_embed_scale (Karlo) free the shared
    pipeline's model hooks at their end, as invert_latents does: they wait for a decode too."""
    dec = _decoder(which, tiny_decoder)
    image = np.zeros((1, 32, 32, 3), np.uint8)
    if which == "tiny":
        owner, attr, second = dec.pipe.scheduler, "step", lambda: dec.image_encoder_embeds(image)
    else:
        owner, attr, second = dec, "_decoder_eps", lambda: dec.calibrate_embed_scale(image, update=False)
    assert _second_call_waits_for_a_decode(monkeypatch, dec, owner, attr, second)


def test_invert_latents_under_the_lock_still_inverts_as_before(tiny_decoder):
    """The lock is re-entrant: invert (which holds it) and invert_latents agree, and a decode in the
    same thread while it is held does not deadlock."""
    from latentlab.decoders.base import one_call_at_a_time

    z, _ = _inputs(tiny_decoder, n=1, seed=7)
    lat = torch.randn(1, *tiny_decoder.noise_shape(), generator=torch.Generator().manual_seed(1))
    alone = tiny_decoder.invert_latents(lat, z, steps=2)
    with one_call_at_a_time(tiny_decoder):
        assert torch.equal(tiny_decoder.invert_latents(lat, z, steps=2), alone)


# -- 3. mini's upscaler where it draws no frame --------------------------------------------------


def _tiny_upscaler():
    from latentlab.mini.models import MiniUpscalerNet, UpscalerConfig

    torch.manual_seed(0)
    net = MiniUpscalerNet(UpscalerConfig(in_size=32, channels=(8, 8), norm_num_groups=4))
    with torch.no_grad():
        net.out[2].weight.normal_(0, 0.05)
    return net


@pytest.mark.parametrize("resolution", [16, 32])
def test_an_upscaler_that_draws_no_frame_changes_neither_description_nor_inversion(resolution):
    """At or below the native size the upscaler draws no frame: a decoder given one describes
    itself, decodes and inverts as one without (its inversion shrank a picture bicubically, its
    description named a learned 2x, so a render folder was not resumed across the two)."""
    plain = tiny_mini_decoder(resolution=resolution)
    up = tiny_mini_decoder(resolution=resolution, upscaler=_tiny_upscaler())
    assert up.describe() == plain.describe()
    z, x = _inputs(plain, n=1, seed=8)
    assert np.array_equal(up.decode(z, x, steps=2), plain.decode(z, x, steps=2))
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert torch.equal(up.invert(image, z, steps=2, refine=0), plain.invert(image, z, steps=2, refine=0))


def test_an_upscaler_that_draws_the_frames_is_still_described_and_inverted_for():
    plain, up = tiny_mini_decoder(resolution=64), tiny_mini_decoder(resolution=64, upscaler=_tiny_upscaler())
    assert up.describe()["upscaler"] == "learned 2x (mini_upscaler)" and plain.describe()["upscaler"] == "none (Lanczos resize)"
    z, _ = _inputs(plain, n=1, seed=9)
    image = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert not torch.equal(up.invert(image, z, steps=2, refine=0), plain.invert(image, z, steps=2, refine=0))


@needs_weights
def test_upscale_true_at_the_native_size_is_described_and_hashed_as_unset():
    """from_pretrained(upscale=True, resolution=32) hashed the upscaler file into weights_sha256 and
    named it, so a 32 px render folder drawn with it was not resumed with upscale unset or False
    (nor the other way round), though no frame differs."""
    from latentlab.mini.runtime import MiniDecoder

    want = MiniDecoder.from_pretrained(resolution=32, expert=False).describe()
    assert MiniDecoder.from_pretrained(resolution=32, upscale=True, expert=False).describe() == want
    assert MiniDecoder.from_pretrained(resolution=32, upscale=False, expert=False).describe() == want


@needs_weights
def test_the_usual_mini_descriptions_keep_their_keys():
    """The default 64 px decoder (with the upscaler) and the 32 px one (without) describe and hash
    as before, so their render folders and caches are still resumed."""
    from latentlab.mini.runtime import DECODER_FILE, UPSCALER_FILE, MiniDecoder, weights_path

    dec, up = weights_path(DECODER_FILE, None).read_bytes(), weights_path(UPSCALER_FILE, None).read_bytes()
    d64 = MiniDecoder.from_pretrained(expert=False)
    assert d64.describe()["weights_sha256"] == hashlib.sha256(dec + up).hexdigest()[:16]
    assert d64.describe()["upscaler"] == "learned 2x (mini_upscaler)"
    assert d64.other_upscale_sha256 == hashlib.sha256(dec).hexdigest()[:16]
    no_up = MiniDecoder.from_pretrained(upscale=False, expert=False)
    assert no_up.describe()["weights_sha256"] == hashlib.sha256(dec).hexdigest()[:16]
    assert no_up.other_upscale_sha256 == d64.describe()["weights_sha256"]
    d32 = MiniDecoder.from_pretrained(resolution=32, expert=False).describe()
    assert (d32["weights_sha256"], d32["upscaler"]) == (hashlib.sha256(dec).hexdigest()[:16], "none (Lanczos resize)")
