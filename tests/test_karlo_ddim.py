"""Karlo with deterministic DDIM (``scheduler="ddim"``) and DDIM inversion of its 64 px
stage, on the tiny random pipeline (offline, seeded, seconds on one CPU thread)."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latentlab.errors import ArgumentError, LatentlabError

from latentlab.decoders import karlo  # noqa: E402
from latentlab import hf_clip  # noqa: E402

DIM = 32


def _decoder(scheduler: str = "ddim", pipe=None, **kw):
    kw.setdefault("default_steps", 3)
    kw.setdefault("default_guidance", 1.0)
    pipe = karlo.tiny_karlo_pipeline(dim=DIM) if pipe is None else pipe
    return karlo.KarloDecoder(pipe, name="t", space="tiny", dim=DIM, super_res_steps=2, scheduler=scheduler, **kw)


@pytest.fixture(scope="module")
def dec():
    return _decoder()


def _unit(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator("cpu").manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, DIM, generator=g), dim=-1)


def _noise(dec, n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, *dec.noise_shape(), generator=torch.Generator("cpu").manual_seed(seed))


def _diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


# -- the pure pieces ---------------------------------------------------------------------------


def test_timesteps_and_step_match_diffusers():
    """Trailing DDIM timesteps and steps equal diffusers' DDIMScheduler (clip_sample, epsilon
    re-derived from the clipped x0) where its steps are consistent (``steps`` dividing 1000;
    otherwise diffusers steps to ``t - 1000 // steps`` instead of the next timestep); the
    super-res timesteps equal Karlo's UnCLIPScheduler's."""
    from diffusers import DDIMScheduler, UnCLIPScheduler

    ref = DDIMScheduler(beta_schedule="squaredcos_cap_v2", clip_sample=True, set_alpha_to_one=True,
                        timestep_spacing="trailing")  # fmt: skip
    ref.set_timesteps(5)
    assert karlo.decoder_timesteps(5) == ref.timesteps.tolist()
    unclip = UnCLIPScheduler()
    assert torch.allclose(ref.alphas_cumprod, unclip.alphas_cumprod)
    unclip.set_timesteps(7)
    assert karlo.super_res_timesteps(7) == unclip.timesteps.tolist()

    g = torch.Generator("cpu").manual_seed(0)
    x = ours = torch.randn(2, 3, 8, 8, generator=g)
    ts = karlo.decoder_timesteps(5)
    for i, t in enumerate(ts):
        eps = torch.tanh(x * 1.5 + t / 500)  # any smooth "model"
        x = ref.step(eps, t, x, eta=0.0, use_clipped_model_output=True).prev_sample
        a_prev = float(unclip.alphas_cumprod[ts[i + 1]]) if i + 1 < len(ts) else 1.0
        ours = karlo.ddim_step(ours, torch.tanh(ours * 1.5 + t / 500), float(unclip.alphas_cumprod[t]), a_prev)
    assert torch.allclose(ours, x, atol=1e-5) and ours.abs().max() <= 1.0


def test_ddim_invert_step_undoes_the_clamped_step():
    g = torch.Generator("cpu").manual_seed(1)
    x_t, eps = torch.randn(1, 3, 8, 8, generator=g), torch.randn(1, 3, 8, 8, generator=g)
    prev = karlo.ddim_step(x_t, eps, 0.3, 0.6)
    x0 = (x_t - 0.7**0.5 * eps) / 0.3**0.5
    assert (x0.abs() > 1).any() and (x0.abs() < 1).any()  # both branches are exercised
    back = karlo.ddim_invert_step(prev, eps, 0.3, 0.6, x_t=x_t)
    assert torch.allclose(back, x_t, atol=1e-5)
    plain = karlo.ddim_invert_step(prev, eps, 0.3, 0.6)  # without x_t the clamp is ignored
    assert not torch.allclose(plain, x_t, atol=1e-3)


# -- sampling ----------------------------------------------------------------------------------


def test_ddim_is_the_default_and_deterministic(dec):
    assert dec.scheduler == "ddim" and dec.supports_inversion
    d = dec.describe()
    assert d["sampler"] == "ddim" and "DDIM" in d["sampler_detail"] and "trailing" in d["sampler_detail"]
    z, x = _unit(2, 0), _noise(dec, 2, 0)
    a, b = dec.decode(z, x, seeds=[3, 4]), dec.decode(z, x, seeds=[3, 4])
    assert a.shape == (2, 32, 32, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert a.std() > 5  # not a blank frame
    # other starting noise: other frame; other seed: only the super-res noise changes
    assert np.abs(dec.decode(z, _noise(dec, 2, 1), seeds=[3, 4]).astype(int) - a).mean() > 1
    assert np.abs(dec.decode(z, x, seeds=[5, 6]).astype(int) - a).mean() > 1
    assert np.array_equal(dec.decode_base(z, x), dec.decode_base(z, x))
    assert dec.decode_base(z, x).shape == (2, 16, 16, 3)


@pytest.mark.parametrize("guidance", [1.0, 4.0])
def test_frame_alone_equals_frame_in_batch(dec, guidance):
    z, x, seeds = _unit(3, 2), _noise(dec, 3, 2), [7, 8, 9]
    batch = dec.decode(z, x, seeds=seeds, guidance_scale=guidance)
    alone = dec.decode(z[1:2], x[1:2], seeds=seeds[1:2], guidance_scale=guidance)
    assert _diff(batch[1:2], alone) <= 1
    assert _diff(batch[0], batch[1]) > 10  # the rows do differ


def test_constant_embedding_and_shared_noise_give_identical_frames(dec):
    z, x = _unit(1, 3).repeat(4, 1), _noise(dec, 1, 3).repeat(4, 1, 1, 1)
    frames = dec.decode(z, x, seeds=[11] * 4, guidance_scale=3.0)
    assert max(_diff(frames[0], f) for f in frames[1:]) <= 1


def test_ddim_reproduces_the_pipeline_conditioning():
    """The first decoder call of latentlab's loop equals the pipeline's (same inputs, same
    output), with and without guidance; the super-res UNets run at Karlo's timesteps, in the
    pipeline's order."""
    dec = _decoder()
    calls: list = []
    hooks = [dec.pipe.decoder.register_forward_hook(lambda m, a, kw, out: calls.append(("dec", kw, out.sample)),
                                                    with_kwargs=True)]  # fmt: skip
    for name in ("super_res_first", "super_res_last"):
        hooks.append(getattr(dec.pipe, name).register_forward_hook(
            lambda m, a, kw, out, name=name: calls.append((name, int(kw["timestep"]), None)), with_kwargs=True))
    z, x = _unit(2, 4), _noise(dec, 2, 4)
    try:
        for guidance in (1.0, 4.0):
            runs = {}
            for scheduler in ("unclip", "ddim"):
                dec.scheduler = scheduler
                calls.clear()
                dec.decode(z, x, seeds=[0, 1], steps=3, guidance_scale=guidance)
                runs[scheduler] = list(calls)
            (_, ref_kw, ref_out), (_, kw, out) = runs["unclip"][0], runs["ddim"][0]
            assert int(ref_kw["timestep"]) == int(kw["timestep"]) == 999
            for key in ("sample", "encoder_hidden_states", "class_labels", "attention_mask"):
                assert ref_kw[key].shape == kw[key].shape, key
                assert torch.allclose(ref_kw[key].float(), kw[key].float(), atol=1e-5), key
            assert torch.allclose(ref_out, out, atol=1e-4)
            sr = [c[:2] for c in runs["ddim"] if c[0] != "dec"]
            assert sr == [c[:2] for c in runs["unclip"] if c[0] != "dec"] == [("super_res_first", 999), ("super_res_last", 0)]
    finally:
        dec.scheduler = "ddim"
        for h in hooks:
            h.remove()


def test_captions_condition_the_decoder_as_the_text_to_image_pipeline_does():
    """decode(captions=...): the 64 px decoder gets what UnCLIPPipeline's decoder stage gives it
    for those prompts (its _encode_prompt's states, the empty prompt for the unconditional half,
    through text_proj), with and without guidance; a frame alone equals it in a batch."""
    dec = _decoder()
    assert dec.reads_captions and not _decoder("unclip").reads_captions
    ref_pipe = karlo.unclip_pipeline_classes()["UnCLIPPipeline"]
    z, x = _unit(2, 6), _noise(dec, 2, 6)
    prompts = ["a red cat", "a blue dog sitting on a very long and winding road by the sea"]
    extra = int(dec.pipe.text_proj.clip_extra_context_tokens)
    for guided in (False, True):
        got = dec._conditioning(z, guided, captions=prompts)
        with torch.no_grad():
            pe, hid, mask = ref_pipe._encode_prompt(dec.pipe, prompts, torch.device("cpu"), 1, guided)
            ref_hidden, ref_add = dec.pipe.text_proj(image_embeddings=z * dec.embed_scale, prompt_embeds=pe,
                                                     text_encoder_hidden_states=hid, do_classifier_free_guidance=guided)  # fmt: skip
        assert torch.allclose(got["encoder_hidden_states"], ref_hidden, atol=1e-6)
        assert torch.allclose(got["class_labels"], ref_add, atol=1e-6)
        assert torch.equal(got["attention_mask"], torch.nn.functional.pad(mask, (extra, 0), value=True))
    plain = dec.decode(z, x, seeds=[0, 1], steps=3, guidance_scale=3.0)
    read = dec.decode(z, x, seeds=[0, 1], steps=3, guidance_scale=3.0, captions=prompts)
    assert np.abs(read.astype(int) - plain.astype(int)).mean() > 0.5  # the caption changes the picture
    alone = dec.decode(z[1:], x[1:], seeds=[1], steps=3, guidance_scale=3.0, captions=prompts[1:])
    assert _diff(alone[0], read[1]) <= 1
    assert np.array_equal(dec.decode(z, x, seeds=[0, 1], steps=3, guidance_scale=3.0, captions=None), plain)
    with pytest.raises(ArgumentError, match="one per row"):
        dec.decode(z, x, captions=["a red cat"])
    with pytest.raises(ArgumentError, match="list of strings"):
        dec.decode(z, x, captions="a red cat")
    with pytest.raises(ArgumentError, match="scheduler='ddim'"):
        _decoder("unclip").decode(z, x, captions=prompts)


def test_generate_gives_karlo_the_prompt():
    """ll.generate on Karlo: the prior's samples drawn with the prompt (Karlo reads captions)."""
    import latentlab as ll
    from latentlab.priors import IdentityPrior
    from latentlab.render import make_noise
    from latentlab.space import tag

    dec = _decoder()
    prior = IdentityPrior(name="id", space="tiny", dim=DIM)
    enc = SimpleNamespace(encode_text=lambda texts: tag(_unit(len(texts), 9), "tiny"))
    got = ll.generate(enc, prior, dec, "a red cat", n=2, seed=3, steps=3, guidance_scale=3.0)
    z = tag(_unit(1, 9).expand(2, -1).contiguous(), "tiny")
    noise = make_noise(dec.noise_shape(), [3, 4])
    expected = dec.decode(z, noise, seeds=[3, 4], steps=3, guidance_scale=3.0, captions=["a red cat"] * 2)
    assert _diff(got, expected) <= 1
    assert np.abs(got.astype(int) - dec.decode(z, noise, seeds=[3, 4], steps=3, guidance_scale=3.0).astype(int)).mean() > 0.5


def test_unclip_scheduler_keeps_the_pipeline_path():
    dec = _decoder("unclip")
    assert dec.scheduler == "unclip" and not dec.supports_inversion
    assert dec.describe()["sampler"] == "unclip" and "UnCLIPScheduler" in dec.describe()["sampler_detail"]
    z, x = _unit(1, 5), _noise(dec, 1, 5)
    got = dec.decode(z, x, seeds=[2], steps=3)
    with torch.no_grad():
        ref = dec.pipe(
            image_embeddings=z * dec.embed_scale, decoder_latents=x, super_res_latents=dec.super_res_noise([2]),
            decoder_num_inference_steps=3, super_res_num_inference_steps=2, decoder_guidance_scale=1.0,
            generator=[torch.Generator("cpu").manual_seed(2)], output_type="np",
        ).images  # fmt: skip
    assert _diff(got, np.clip(np.rint(ref * 255), 0, 255).astype(np.uint8)) == 0
    # stochastic: same embedding and noise, other seed -> other frame, unlike the decoder stage of DDIM
    assert np.abs(dec.decode(z, x, seeds=[3], steps=3).astype(int) - got).mean() > 0.5
    with pytest.raises(ArgumentError, match="scheduler='ddim'"):
        dec.invert(np.zeros((16, 16, 3), np.uint8), z)
    with pytest.raises(ArgumentError, match="scheduler='ddim'"):
        dec.decode_base(z, x)


# -- inversion ---------------------------------------------------------------------------------


def _images_and_embeddings():
    enc = hf_clip.HFCLIPEncoder(*hf_clip.tiny_hf_clip_towers(dim=DIM, seed=0), name="e", space="tiny")
    images = np.stack([np.asarray(im) for im in hf_clip.synthetic_images(2, size=32)])
    return images, enc.encode_image(images)


def _error(dec, frames: np.ndarray, images: np.ndarray) -> float:
    """Mean absolute error in [-1, 1] units at the decoder's size."""
    return (dec.decoder_size_images(frames) - dec.decoder_size_images(images)).abs().mean().item()


def _gaussian_oracle(dec, s: float = 0.5) -> None:
    """Give the tiny decoder UNet the exact noise estimate of a known data distribution: each
    pixel ~ N(mu, s^2), ``mu`` (per image and channel) read from the conditioning. A random
    UNet cannot tell whether inversion works (it decodes even an all-zero noise closer to
    any image than a random noise); with this one the sampler is a discretised probability
    flow ODE that inversion must be able to follow."""
    ac = dec.pipe.decoder_scheduler.alphas_cumprod.double()

    def forward(sample, timestep, encoder_hidden_states=None, class_labels=None, attention_mask=None, **kw):
        a = ac[int(timestep)].to(sample.dtype)
        mu = 0.6 * torch.tanh(3 * class_labels[:, :3, None, None])
        eps = (1 - a).sqrt() * (sample - a.sqrt() * mu) / (a * s**2 + 1 - a)
        return SimpleNamespace(sample=torch.cat([eps, torch.randn_like(eps)], 1))  # + a "learned variance"

    dec.pipe.decoder.forward = forward


def test_inversion_on_the_random_pipeline(dec):
    images, z = _images_and_embeddings()
    noise = dec.invert(images, z, steps=4)
    assert noise.shape == (2, *dec.noise_shape()) and noise.dtype == torch.float32 and noise.device.type == "cpu"
    assert torch.equal(noise, dec.invert(list(images), z, steps=4))  # deterministic; lists work
    assert torch.isfinite(noise).all() and noise.std() > 0.05
    # the full decode runs from it too (its super-res stage redraws the detail)
    assert dec.decode(z, noise, seeds=[0, 1], steps=4).shape == (2, 32, 32, 3)
    # guided inversion (classifier-free guidance as in sampling)
    assert torch.isfinite(dec.invert(images[:1], z[:1], steps=2, guidance_scale=3.0)).all()


def test_inversion_round_trip_beats_random_noise():
    dec = _decoder()
    _gaussian_oracle(dec)
    images, z = _images_and_embeddings()
    random = _error(dec, dec.decode_base(z, _noise(dec, 2, 0), steps=10), images)
    errors = {steps: _error(dec, dec.decode_base(z, dec.invert(images, z, steps=steps), steps=steps), images)
              for steps in (4, 10)}  # fmt: skip
    assert errors[10] < 0.15 and errors[10] < 0.25 * random, (errors, random)
    assert errors[10] < errors[4]  # more steps, closer
    dec.inversion_iterations = 0  # plain DDIM inversion: worse than one fixed-point iteration per step
    plain = _error(dec, dec.decode_base(z, dec.invert(images, z, steps=10), steps=10), images)
    assert errors[10] < plain < random


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["ddpm", "DPM++", 3, None])
def test_bad_scheduler_names_the_argument_and_choices(bad):
    with pytest.raises(ArgumentError, match=r"scheduler must be one of 'ddim', 'unclip', got"):
        _decoder(bad)


def test_other_errors(dec):
    assert issubclass(ArgumentError, LatentlabError)
    with pytest.raises(ArgumentError, match="super_res_steps must be an integer >= 2"):
        karlo.KarloDecoder(dec.pipe, name="t", space="tiny", dim=DIM, super_res_steps=1, embed_scale=1.0)
    with pytest.raises(ArgumentError, match="steps must be <= 1000"):
        dec.decode(_unit(1, 0), _noise(dec, 1, 0), steps=1001)
    with pytest.raises(ArgumentError, match="noise must have shape"):
        dec.decode_base(_unit(1, 0), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ArgumentError, match="guidance_scale"):
        dec.decode_base(_unit(1, 0), _noise(dec, 1, 0), guidance_scale=-1.0)


def test_unclip_scheduler_needs_two_steps():
    """Karlo's UnCLIPScheduler spaces timesteps as (T - 1) / (steps - 1): steps=1 is refused with
    the reason and the fix, not a ZeroDivisionError from diffusers; DDIM takes steps=1."""
    dec = _decoder("unclip")
    with pytest.raises(ArgumentError, match=r"steps must be >= 2 with scheduler='unclip'.*two timesteps.*scheduler='ddim'"):
        dec.decode(_unit(1, 0), _noise(dec, 1, 0), seeds=[0], steps=1)


def test_decode_base_checks_steps_as_decode_does(dec):
    with pytest.raises(ArgumentError, match=r"steps must be an integer >= 1, got 2.7"):
        dec.decode_base(_unit(1, 0), _noise(dec, 1, 0), steps=2.7)
    with pytest.raises(ArgumentError, match=r"steps must be an integer >= 1, got 0"):
        dec.decode_base(_unit(1, 0), _noise(dec, 1, 0), steps=0)


def test_ddim_loops_give_offloaded_models_back(monkeypatch):
    """With cpu_offload=True, latentlab's DDIM loops call the pipeline's models directly, so each
    must end with pipe.maybe_free_model_hooks(), as a pipeline call does (spied on, without offload)."""
    dec = _decoder()
    calls = []
    monkeypatch.setattr(dec.pipe, "maybe_free_model_hooks", lambda: calls.append(1), raising=False)
    z, x = _unit(1, 7), _noise(dec, 1, 7)
    dec.decode(z, x, seeds=[0], steps=2)
    assert len(calls) == 1
    dec.decode(z, x, seeds=[0], steps=2, captions=["a red cat"])
    assert len(calls) == 2
    dec.decode_base(z, x, steps=2)
    assert len(calls) == 3
    dec.invert(np.zeros((16, 16, 3), np.uint8), z, steps=2)
    assert len(calls) == 4


# -- fixes from an audit of the decoders (each test failed on the code before its fix) -------------


def test_trailing_timesteps_are_exactly_steps_and_as_before_where_they_were_fine():
    """The float arange(T, 0, -T / steps) of trailing spacing (diffusers' too) ran one step too
    far for 62 counts (61, 103, 121, ...) and appended t = -1, whose alpha is the last one (pure
    noise). decoder_timesteps now always gives `steps` timesteps >= 0, and every count that
    was fine gives exactly the timesteps it gave before (defaults and docs figures unchanged)."""
    bad = []
    for steps in range(1, 1001):
        old = [int(t) for t in np.round(np.arange(1000, 0, -1000 / steps)).astype(np.int64) - 1]  # the code before
        new = karlo.decoder_timesteps(steps)
        assert len(new) == len(set(new)) == steps and new[0] == 999 and min(new) >= 0, steps
        assert new == sorted(new, reverse=True)
        if min(old) >= 0:
            assert new == old, steps
        else:
            bad.append(steps)
            assert new == old[:-1], steps  # the same timesteps, without the -1
    assert bad[:4] == [61, 103, 121, 122] and len(bad) == 62


def test_61_steps_end_at_the_clean_image(dec):
    sched = dec._ddim_schedule(61)
    assert len(sched) == 61 and sched[-1][0] == 15 and sched[-1][2] == 1.0
    assert all(t >= 0 for t, _, _ in sched)
    z, x = _unit(1, 11), _noise(dec, 1, 11)
    f60, f61, f62 = (dec.decode_base(z, x, steps=s) for s in (60, 61, 62))
    # 61 steps draw what 60 and 62 draw (its extra step from pure noise moved it ~7x further)
    assert np.abs(f61.astype(int) - f60.astype(int)).mean() <= 2 * np.abs(f62.astype(int) - f60.astype(int)).mean() + 0.1


def test_step_counts_whose_timesteps_changed_are_marked_in_render_settings(dec):
    # as mini's: a Karlo render made at 61 steps before the fix is not resumed with new frames
    from latentlab.render import sampling_settings

    assert sampling_settings(61, 2.0, dec)["timesteps"] == "exact"
    assert "timesteps" not in sampling_settings(60, 2.0, dec) and "timesteps" not in sampling_settings(25, 2.0, dec)


@pytest.mark.parametrize("scheduler", ["ddim", "unclip"])
def test_steps_past_the_training_timesteps_are_refused_with_either_sampler(scheduler):
    """With scheduler="unclip", steps > 1000 made Karlo's UnCLIPScheduler repeat timesteps and
    draw black frames without a word (max_steps() was None); both samplers now refuse them
    before any model call, naming the limit and the sampler."""
    dec = _decoder(scheduler)
    assert dec.max_steps() == len(dec.pipe.decoder_scheduler.alphas_cumprod) == 1000
    for steps in (1001, 1500):
        with pytest.raises(ArgumentError, match=rf"steps must be <= 1000 \(the decoder's training timesteps, "
                                                rf"with scheduler='{scheduler}'\), got {steps}"):  # fmt: skip
            dec.decode(_unit(1, 0), _noise(dec, 1, 0), seeds=[0], steps=steps)
    if scheduler == "ddim":
        with pytest.raises(ArgumentError, match=r"steps must be <= 1000"):
            dec.decode_base(_unit(1, 0), _noise(dec, 1, 0), steps=1001)


def test_decoder_size_images_and_invert_take_a_non_square_picture_s_centre_square(dec):
    # both squashed the whole picture into the decoder's square
    wide = np.random.default_rng(3).integers(0, 256, (1, 40, 100, 3), dtype=np.uint8)
    centre = wide[:, :, 30:70]
    assert torch.equal(dec.decoder_size_images(wide), dec.decoder_size_images(centre))
    z = _unit(1, 5)
    assert torch.equal(dec.invert(wide, z, steps=2), dec.invert(centre, z, steps=2))


# -- super-res, sizes, inversion start and the prior folder ------------------------------------


def test_super_res_seed_is_the_documented_sha256_prefix():
    """super_res_seed(s): the first 63 bits (little-endian first 8 bytes, shifted right once) of
    SHA-256('karlo-super-res:<s>'), so super-res noise reproduces across versions and machines."""
    for s in (0, 1, 12345, -7):
        digest = hashlib.sha256(f"karlo-super-res:{s}".encode()).digest()
        assert karlo.super_res_seed(s) == int.from_bytes(digest[:8], "little") >> 1


def test_super_res_input_is_noise_then_the_bicubic_upsampled_base(dec):
    """Each super-res step reads [its sample ; the 64 px image upsampled bicubically (antialiased)]
    in that channel order, as diffusers' UnCLIPImageVariationPipeline builds it."""
    z, x = _unit(1, 1), _noise(dec, 1, 2)
    seen = []
    hook = dec.pipe.super_res_first.register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw["sample"].clone()), with_kwargs=True)
    try:
        with torch.no_grad():
            base = dec._sample_base(z, x, steps=2, guidance_scale=1.0)
            dec._super_res(base, [5])
    finally:
        hook.remove()
    first = seen[0]
    torch.testing.assert_close(first[:, :3], dec.super_res_noise([5]))
    up = torch.nn.functional.interpolate(base, size=(32, 32), mode="bicubic", align_corners=False, antialias=True)
    torch.testing.assert_close(first[:, 3:], up, atol=1e-6, rtol=1e-6)


def test_decoder_size_images_shrinks_with_an_area_filter(dec):
    """Shrinking to the decoder's size uses PIL's box (area) filter, as documented."""
    from PIL import Image

    img = np.random.default_rng(0).integers(0, 256, (1, 48, 48, 3), dtype=np.uint8)
    want = np.asarray(Image.fromarray(img[0]).resize((16, 16), Image.Resampling.BOX)).astype(np.float32) / 127.5 - 1.0
    got = dec.decoder_size_images(img)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_inversion_starts_from_the_image_inset_into_the_clamp(dec, monkeypatch):
    """invert() starts from the decoder-size image scaled by inversion_inset (0.98), so pure white
    and black stay inside the clamp of [-1, 1]."""
    assert dec.inversion_inset == 0.98
    images = np.stack([np.zeros((16, 16, 3), np.uint8), np.full((16, 16, 3), 255, np.uint8)])
    seen = []
    real = type(dec)._decoder_eps  # (patched on the class: dec is shared by the module's tests)
    monkeypatch.setattr(type(dec), "_decoder_eps", lambda self, x, *a, **k: (seen.append(x.clone()), real(self, x, *a, **k))[1])
    dec.invert(images, _unit(2, 3), steps=1)
    torch.testing.assert_close(seen[0], dec.decoder_size_images(images) * 0.98)


def test_decode_base_normalises_the_embeddings(dec):
    """decode_base, like decode, renders the direction of an embedding, whatever its norm."""
    z, x = _unit(1, 4), _noise(dec, 1, 5)
    assert np.array_equal(dec.decode_base(z * 3.0, x), dec.decode_base(z, x))


def test_karlo_prior_loads_a_folder_with_a_prior_scheduler(tmp_path):
    """KarloPrior.from_pretrained reads UnCLIPPipeline's layout: the scheduler is in prior_scheduler/."""
    from latentlab.decoders.kandinsky import tiny_unclip_prior_components

    prior, sched, text, tok = tiny_unclip_prior_components(dim=DIM, seed=0)
    folder = tmp_path / "karlo-prior"
    prior.save_pretrained(folder / "prior")
    text.save_pretrained(folder / "text_encoder")
    tok.save_pretrained(folder / "tokenizer")
    sched.save_pretrained(folder / "prior_scheduler")
    loaded = karlo.KarloPrior.from_pretrained(folder, space="s", dim=DIM, default_steps=2)
    ref = karlo.KarloPrior(*tiny_unclip_prior_components(dim=DIM, seed=0), name="r", space="s", dim=DIM, default_steps=2)
    torch.testing.assert_close(loaded.from_texts("a fox", seed=0), ref.from_texts("a fox", seed=0), atol=1e-5, rtol=1e-5)


def test_decode_base_checks_its_inputs_as_decode_does(dec):
    """decode_base (the 64 px stage alone) reads embeddings and noise as decode() does: a float64
    row of 1e300 is a direction, a zero row and noise that is infinite as float32 (float64 1e39)
    are refused by name; it normalised in float32 and drew black or NaN frames without a word."""
    z, x = _unit(2, 0), _noise(dec, 2, 0)
    want = dec.decode_base(z, x)
    assert np.array_equal(dec.decode_base(z.double() * 1e300, x), want)
    with pytest.raises(ArgumentError, match=r"embeddings row\(s\) \[1\] are the zero vector"):
        dec.decode_base(torch.cat([z[:1], torch.zeros_like(z[:1])]), x)
    big = x.double()
    big[1, 0, 0, 0] = 1e39
    with pytest.raises(ArgumentError, match=r"noise holds NaN or infinite values \(rows \[1\]\)"):
        dec.decode_base(z, big)


# -- found by the audit of 2026-12-07: where the clamp binds is decided from x_prev (at t = 999, from x_t,
# float rounding flipped the clamp and its sign; redraws were 70-170 levels off at 2-6 steps) ------------


@settings(derandomize=True, max_examples=40, deadline=None)
@given(
    a_t=st.floats(1e-4, 0.95), ratio=st.floats(1.05, 50.0), seed=st.integers(0, 2**16), far=st.floats(0.0, 2.0)
)
def test_karlo_ddim_invert_step_inverts_ddim_step_for_its_eps(a_t, ratio, seed, far):
    """karlo.ddim_invert_step(x_prev, eps, ..., x_t=estimate) is the x_t that
    ddim_step(x_t, eps) maps to x_prev for the eps given, however far the previous estimate
    was (before: the clamp was decided from the estimate, so a wrong branch where it lay on
    the other side)."""
    from latentlab.decoders import karlo

    a_p = min(a_t * ratio, 0.999)
    g = torch.Generator().manual_seed(seed)
    x_t, eps = torch.randn(1, 3, 8, 8, generator=g) * 1.5, torch.randn(1, 3, 8, 8, generator=g)
    x_prev = karlo.ddim_step(x_t, eps, a_t, a_p)
    estimate = x_t + far * torch.randn(1, 3, 8, 8, generator=g)
    back = karlo.ddim_invert_step(x_prev, eps, a_t, a_p, x_t=estimate)
    assert torch.allclose(karlo.ddim_step(back, eps, a_t, a_p), x_prev, atol=1e-4)


def test_karlo_ddim_invert_step_at_the_first_trailing_timestep():
    """At alpha_bar_t ~ 2.4e-9 (squaredcos_cap_v2, t = 999) the step is still undone for the
    eps given, with the estimate one plain inversion gives."""
    from latentlab.decoders import karlo

    a_t, a_p = 2.4287e-09, 0.14427
    g = torch.Generator().manual_seed(3)
    x_prev, eps = torch.randn(1, 3, 16, 16, generator=g), torch.randn(1, 3, 16, 16, generator=g)
    plain = karlo.ddim_invert_step(x_prev, eps + 0.1, a_t, a_p)  # a plain estimate, from another eps
    back = karlo.ddim_invert_step(x_prev, eps, a_t, a_p, x_t=plain)
    assert float((karlo.ddim_step(back, eps, a_t, a_p) - x_prev).abs().max()) < 5e-3
