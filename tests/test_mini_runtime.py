"""The mini runtime (latentlab/mini/runtime.py) and the nets and samplers behind it
(latentlab/mini/models.py), mostly with small random weights: sampler, eta noise, upscaler
hand-over, frame conversion, inversion resizing, refining, the prior, guidance, the layout
expert's hand-over and the loaders. The few tests that read the shipped prior or CLIP skip
without the shipped weights."""

from __future__ import annotations

import functools
import json
import math
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latentlab.errors import ArgumentError, ModelNotAvailableError
from latentlab.mini import weights_available

from conftest import tiny_caption_net, tiny_mini_decoder


_tiny_decoder = tiny_mini_decoder
_caption_net = tiny_caption_net


def _tiny_upscaler(in_size=32):
    from latentlab.mini.models import MiniUpscalerNet, UpscalerConfig

    torch.manual_seed(0)
    net = MiniUpscalerNet(UpscalerConfig(in_size=in_size, channels=(8, 8), norm_num_groups=4))
    with torch.no_grad():  # a trained net's last layer is not zero
        net.out[2].weight.normal_(0, 0.05)
    return net


def _prior_net(seed=0, d=16):
    """A small random prior net (its blocks' output weights random, not zero)."""
    from latentlab.mini.models import MiniPriorNet, PriorConfig

    torch.manual_seed(seed)
    net = MiniPriorNet(PriorConfig(embed_dim=d, width=32, depth=2)).eval()
    with torch.no_grad():
        for blk in net.blocks:
            blk.fc2.weight.normal_(0, 0.1)
    return net


def _tiny_prior(**kw):
    from latentlab.mini.runtime import MiniPrior

    return MiniPrior(_prior_net(), **{"steps": 4, **kw})


def _unit(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=-1)


def _noise(n, seed, side=32):
    return torch.randn(n, 3, side, side, generator=torch.Generator().manual_seed(seed))


def test_decode_eta_rows_do_not_depend_on_their_batch():
    """decode_eta draws row i's step noise from its own seed: a frame decoded in a batch is the
    frame decoded alone with the same seed."""
    dec = _tiny_decoder()
    z, x = _unit(3, 16, 1), _noise(3, 2)
    full = dec.decode_eta(z, x, eta=0.8, seeds=[7, 8, 9], steps=3)
    alone = dec.decode_eta(z[2:], x[2:], eta=0.8, seeds=[9], steps=3)
    assert np.abs(full[2].astype(int) - alone[0].astype(int)).max() <= 1
    assert not np.array_equal(full[2], dec.decode_eta(z[2:], x[2:], eta=0.8, seeds=[8], steps=3)[0])


def test_an_upscaler_is_not_used_for_frames_at_the_native_size():
    """With an upscaler, frames of the native size are the sampler's own pixels: the learned 2x
    is not applied to them."""
    from latentlab.mini.runtime import MiniDecoder

    dec = _tiny_decoder(resolution=32)
    up = MiniDecoder(dec.net, resolution=32, space=dec.space, upscaler=_tiny_upscaler())
    z, x = _unit(2, 16, 3), _noise(2, 4)
    assert np.array_equal(up.decode(z, x, steps=2), dec.decode(z, x, steps=2))


def test_frames_are_the_sampled_images_rounded_to_the_nearest_level():
    """decode maps the sampler's [-1, 1] images to uint8 by rounding (x + 1) * 127.5, not by
    truncating it."""
    from latentlab.mini.models import sample_decoder

    dec = _tiny_decoder(resolution=32)
    z, x = _unit(2, 16, 5), _noise(2, 6)
    with torch.inference_mode():
        img = sample_decoder(dec.net, z, x, steps=2, guidance_scale=3.0)
    want = ((img + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(dec.decode(z, x, steps=2, guidance_scale=3.0), want)


@pytest.mark.parametrize("with_upscaler", [False, True])
def test_invert_resizes_to_the_native_size_with_the_counterpart_of_the_upscaling(with_upscaler):
    """invert shrinks a picture larger than the native size by area averaging (the counterpart of
    the Lanczos upsampling) without an upscaler, and bicubically (what the learned 2x undoes) with one."""
    from PIL import Image

    dec = _tiny_decoder(resolution=64, upscaler=_tiny_upscaler() if with_upscaler else None)
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    z = _unit(1, 16, 7)
    got = dec.invert(image, z, steps=2, refine=0)
    f = Image.Resampling.BICUBIC if with_upscaler else Image.Resampling.BOX
    small = np.asarray(Image.fromarray(image).resize((32, 32), f))
    assert torch.equal(got, dec.invert(small, z, steps=2, refine=0))


@pytest.mark.parametrize("shape", [(0, 0, 3), (0, 5, 3), (1, 0, 0, 3)])
def test_invert_refuses_a_picture_of_no_pixels(shape):
    """A 0x0 (or 0xW) picture was accepted: resized into a frame of its own and inverted."""
    with pytest.raises(ArgumentError, match="at least 1x1 pixels"):
        _tiny_decoder().invert(np.zeros(shape, np.uint8), _unit(1, 16, 7), steps=2, refine=0)


def test_refining_leaves_the_decoders_weights_trainable():
    """invert(refine > 0) freezes the net's weights while it takes gradients of the noise, and
    gives them back as they were (a fine-tuning run after it still trains them)."""
    dec = _tiny_decoder()
    before = [p.requires_grad for p in dec.net.parameters()]
    assert all(before)
    image = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    dec.invert(image, _unit(1, 16, 8), steps=2, refine=1, progress=False)
    assert [p.requires_grad for p in dec.net.parameters()] == before


def test_the_mini_prior_samples_with_its_guidance_scale():
    """MiniPrior's guidance_scale reaches its sampler: another scale draws other embeddings."""
    t = _unit(2, 16, 9)
    a = _tiny_prior(guidance_scale=2.0)(t, seed=0)
    b = _tiny_prior(guidance_scale=1.0)(t, seed=0)
    assert not torch.allclose(a, b, atol=1e-4)
    assert torch.equal(a, _tiny_prior(guidance_scale=2.0)(t, seed=0))


def test_the_mini_prior_reads_the_direction_of_a_text_embedding_not_its_length():
    """Text embeddings are normalised before the prior samples: a scaled row draws the same samples."""
    prior = _tiny_prior()
    t = _unit(2, 16, 10)
    assert torch.allclose(prior(t * 7.0, seed=3, num_samples=2), prior(t, seed=3, num_samples=2), atol=1e-6)


def test_invert_runs_ddim_invert_with_the_decoders_fixed_point_iterations():
    """MiniDecoder.invert is ddim_invert of the picture in [-1, 1] with the decoder's
    inversion_iterations (0: plain DDIM inversion, another noise)."""
    from latentlab.mini.runtime import ddim_invert

    dec = _tiny_decoder()
    image = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    z = _unit(1, 16, 11)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
    got = dec.invert(image, z, steps=3, refine=0, guidance_scale=2.0)
    assert dec.inversion_iterations == 1
    assert torch.allclose(got, ddim_invert(dec.net, z, x, steps=3, guidance_scale=2.0, iterations=1), atol=1e-6)
    dec.inversion_iterations = 0
    assert not torch.allclose(got, dec.invert(image, z, steps=3, refine=0, guidance_scale=2.0), atol=1e-4)


def _caption_decoder(text_encoder=None):
    from latentlab.mini.models import DecoderConfig, MiniDecoderNet
    from latentlab.mini.runtime import MiniDecoder

    torch.manual_seed(0)
    cfg = DecoderConfig(block_out_channels=(8, 16, 16), embed_dim=16, norm_num_groups=4, cross_attention_dim=16,
                        attention_heads=2, text_dim=12)  # fmt: skip
    return MiniDecoder(MiniDecoderNet(cfg), resolution=32, text_encoder=text_encoder)


def test_a_caption_decoder_without_a_text_encoder_refuses_captions_with_the_fix():
    """A net that reads captions but no text_encoder to encode them: reads_captions is False and
    decode(captions=...) is an ArgumentError that names the fix, not a TypeError from None."""
    from latentlab.errors import ArgumentError

    dec = _caption_decoder()
    assert not dec.reads_captions
    with pytest.raises(ArgumentError, match="has no text_encoder"):
        dec.decode(_unit(1, 16, 0), _noise(1, 0), steps=2, captions=["a red circle"])
    assert _caption_decoder(text_encoder=lambda captions: None).reads_captions


def test_describe_says_a_decoder_reads_captions_only_when_its_net_does():
    """describe() names reads_captions for a caption net (its render fingerprint differs from a
    plain decoder's), and leaves it out otherwise (older render folders still resume)."""
    assert _caption_decoder().describe()["reads_captions"] is True
    assert "reads_captions" not in _tiny_decoder().describe()


class _TimeEps(torch.nn.Module):
    """A stand-in denoiser whose noise estimate depends on the timestep only (so each sampler
    step can be undone exactly), large enough that the sampler's clamp of x0 binds."""

    def __init__(self, eps):
        from latentlab.mini.models import DecoderConfig

        super().__init__()
        self.config, self.eps = DecoderConfig(), eps

    def forward(self, x, t, emb, *rest):
        return (self.eps * (t.float() / 250.0 - 2.0).view(-1, 1, 1, 1)).expand_as(x)


def test_ddim_invert_undoes_the_samplers_clamped_steps():
    """ddim_invert then sample_decoder (same steps) redraws the inset target, also where the
    sampler clamps its predicted clean image (the closed-form inverse of the clamped step)."""
    from latentlab.mini.models import sample_decoder
    from latentlab.mini.runtime import ddim_invert

    g = torch.Generator().manual_seed(0)
    net = _TimeEps(torch.randn(1, 3, 8, 8, generator=g))
    image, emb = torch.rand(1, 3, 8, 8, generator=g) * 2 - 1, torch.zeros(1, 16)
    noise = ddim_invert(net, emb, image, steps=4)
    back = sample_decoder(net, emb, noise, steps=4, guidance_scale=1.0)
    assert torch.allclose(back, image * 0.98, atol=2e-3), float((back - image * 0.98).abs().max())


@pytest.mark.parametrize("guidance", [0.0, 0.5, 3.0])
def test_decode_eta_at_eta_zero_is_decode_at_every_guidance(guidance):
    """sample_decoder_eta with eta 0 is exactly the decode sampler, guidance included:
    uncond + g * (cond - uncond) for every g != 1 (g = 0 the unconditional picture)."""
    dec = _tiny_decoder()
    z, x = _unit(2, 16, 13), _noise(2, 14)
    got = dec.decode_eta(z, x, eta=0.0, seeds=[0, 1], steps=3, guidance_scale=guidance)
    want = dec.decode(z, x, steps=3, guidance_scale=guidance)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_refining_keeps_each_images_best_noise_even_when_a_step_overshoots():
    """invert(refine=n) returns, per image, the noise of the lowest redraw error seen (the
    inversion's own included), never the last step's: with a learning rate that overshoots,
    the refined noise redraws no worse than the plain inversion."""
    from latentlab.mini.models import sample_decoder

    dec = _tiny_decoder()
    dec.refine_lr = 20.0  # every Adam step overshoots
    images = np.random.default_rng(3).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    z = _unit(2, 16, 15)
    target = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1

    def err(noise):
        with torch.inference_mode():
            img = sample_decoder(dec.net, z, noise, steps=2, guidance_scale=dec.default_guidance)
        return (img - target).square().flatten(1).mean(1)

    # each image inverted alone, as refining starts from (a batch of two differs by about 1e-5)
    plain = torch.cat([dec.invert(images[i : i + 1], z[i : i + 1], steps=2, refine=0) for i in range(2)])
    refined = dec.invert(images, z, steps=2, refine=3, progress=False)
    assert torch.all(err(refined) <= err(plain) + 1e-6), (err(refined), err(plain))


def test_invert_takes_a_read_only_picture_without_a_warning():
    """np.asarray(pil_image) is read-only: inverting it at the native size warned (torch.from_numpy)."""
    import warnings

    dec = _tiny_decoder()
    image = np.random.default_rng(4).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    image.flags.writeable = False
    z = _unit(1, 16, 16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = dec.invert(image, z, steps=2, refine=0)
    assert not [w for w in caught if "not writable" in str(w.message)]
    assert torch.equal(got, dec.invert(image.copy(), z, steps=2, refine=0))


# -- models.py: the prior's denoiser and sampler, the decoder sampler's guidance and expert hand-over,
# the CLIP and expert loaders

needs_weights = pytest.mark.skipif(not weights_available(), reason="the shipped mini weights are not in this checkout")


def _recorder(net, calls, who):
    # (who, timestep, drop, text_mask) of every forward call
    return net.register_forward_pre_hook(
        lambda m, args: calls.append((who, int(args[1][0]), args[3], args[5] if len(args) > 5 else None)))  # fmt: skip


# -- the prior ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped_prior_scenes():
    """The shipped mini CLIP's image and text embeddings of 8 scenes, and the shipped prior net."""
    if not weights_available():
        pytest.skip("the shipped mini weights are not in this checkout")
    import latentlab as ll
    from latentlab.mini import shapes
    from latentlab.mini.models import load_module, weights_path

    enc = ll.create_encoder("mini")
    scenes = shapes.sample_scenes(11, 8)
    zi = enc.encode_image(np.stack([shapes.render_scene(s, 64) for s in scenes])).float()
    zt = enc.encode_text([shapes.caption(s) for s in scenes]).float()
    return zi, zt, load_module("prior", weights_path("mini_prior.safetensors"))


@needs_weights
def test_shipped_prior_draws_the_embedding_of_each_captions_own_picture(shipped_prior_scenes):
    """The shipped prior's samples for 8 captions are each nearest the CLIP embedding of their own
    scene's picture (the prior reads the text embedding scaled by sqrt(d) and its clean-embedding
    predictions are not clamped to [-1, 1], as it was trained)."""
    from latentlab.mini.models import sample_prior

    zi, zt, net = shipped_prior_scenes
    noise = torch.randn(zt.shape, generator=torch.Generator().manual_seed(0))
    z = sample_prior(net, zt, noise, steps=10)
    sim = z @ zi.T
    assert sim.argmax(1).tolist() == list(range(8))
    assert float(sim.diag().mean()) > 0.75


@needs_weights
def test_shipped_prior_denoises_a_noisy_embedding(shipped_prior_scenes):
    """The shipped prior's clean-embedding prediction is nearer the clean embedding than its noisy
    input at a low noise level (t = 50, where it hardly needs t), and at t = 600 close to it
    (cosine 0.974 with the shipped prior; 0.935 for a prior that ignored its timestep): it reads
    its timestep features as it was trained."""
    from latentlab.mini.models import make_scheduler

    zi, zt, net = shipped_prior_scenes
    x0 = zi * math.sqrt(zi.shape[1])
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    cos = torch.nn.functional.cosine_similarity
    for step, floor in ((50, None), (600, 0.96)):
        t = torch.full((zi.shape[0],), step)
        xt = make_scheduler(net.config, "ddpm").add_noise(x0, noise, t)
        with torch.no_grad():
            pred = net(xt, t, zt)
        assert float(cos(pred, x0).mean()) > (floor or float(cos(xt, x0).mean()) + 1e-3), step


def test_prior_net_reads_its_learned_null_text_as_it_is():
    """A dropped row reads the learned null text as stored, not scaled by sqrt(d) as a real text
    embedding is (the shipped prior's unconditional half was trained so): it equals a kept row
    whose text embedding is null_text / sqrt(d)."""
    net = _prior_net()
    d = net.config.embed_dim
    with torch.no_grad():
        net.null_text.copy_(torch.randn(d, generator=torch.Generator().manual_seed(3)))
        x = torch.randn(2, d, generator=torch.Generator().manual_seed(4))
        t = torch.tensor([10, 700])
        dropped = net(x, t, _unit(2, d, 5), drop=torch.tensor([True, True]))
        kept = net(x, t, net.null_text.expand(2, d) / math.sqrt(d), drop=torch.tensor([False, False]))
        scaled = net(x, t, net.null_text.expand(2, d), drop=torch.tensor([False, False]))
    assert torch.allclose(dropped, kept, atol=1e-5)
    assert not torch.allclose(dropped, scaled, atol=1e-3)


def test_prior_block_with_zero_modulation_reads_its_normalised_input():
    """adaLN: a residual block whose condition gives scale = shift = 0 passes its layer-normed
    input on unchanged (``norm(h) * (1 + 0) + 0``), so what it adds depends on ``h``."""
    from latentlab.mini.models import _ResBlock

    torch.manual_seed(0)
    blk = _ResBlock(8)
    with torch.no_grad():
        blk.mod.weight.zero_()
        blk.mod.bias.zero_()
        blk.fc2.weight.normal_(0, 0.3)
        h = torch.randn(2, 8)
        cond = torch.randn(2, 8)
        added = blk(h, cond) - h
        want = blk.fc2(torch.nn.functional.silu(blk.fc1(blk.norm(h))))
    assert torch.allclose(added, want, atol=1e-6)
    assert not torch.allclose(added[0], added[1], atol=1e-4)


def test_sample_prior_returns_unit_norm_embeddings():
    """sample_prior (public) returns unit-norm embeddings, as its docstring says, not the
    sqrt(d)-scaled ones its denoiser works with."""
    from latentlab.mini.models import sample_prior

    net = _prior_net()
    z = sample_prior(net, _unit(3, 16, 1), torch.randn(3, 16, generator=torch.Generator().manual_seed(2)), steps=3)
    assert z.shape == (3, 16) and z.dtype == torch.float32
    assert torch.allclose(z.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_sample_prior_guidance_zero_ignores_the_text():
    """sample_prior guides as uncond + g * (cond - uncond): at g = 0 the draw is the
    unconditional one, the same for any text embedding; at g = 1 it is the conditional one."""
    from latentlab.mini.models import sample_prior

    net = _prior_net()
    noise = torch.randn(2, 16, generator=torch.Generator().manual_seed(3))
    a, b = _unit(2, 16, 4), _unit(2, 16, 5)
    assert torch.allclose(sample_prior(net, a, noise, steps=3, guidance_scale=0.0),
                          sample_prior(net, b, noise, steps=3, guidance_scale=0.0), atol=1e-5)  # fmt: skip
    assert not torch.allclose(sample_prior(net, a, noise, steps=3, guidance_scale=1.0),
                              sample_prior(net, b, noise, steps=3, guidance_scale=1.0), atol=1e-3)  # fmt: skip


# -- the decoder sampler -----------------------------------------------------------------


def test_unconditional_half_of_guidance_reads_no_caption():
    """With a caption, guidance's unconditional half reads neither the embedding nor the
    caption (DALL-E 2's guidance): at g = 0 a captioned draw is the caption-free, embedding-free
    one; and the net sees the caption's mask in the first half, all False in the second."""
    from latentlab.mini.models import sample_decoder

    net = _caption_net()
    z, x = _unit(2, 16, 0), torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    text, mask = torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(2)), torch.ones(2, 5, dtype=torch.bool)
    calls = []
    hook = _recorder(net, calls, "net")
    with torch.no_grad():
        sample_decoder(net, z, x, steps=2, text=text, text_mask=mask)
        hook.remove()
        assert calls and all(torch.equal(m, torch.tensor([[True] * 5] * 2 + [[False] * 5] * 2)) for _, _, _, m in calls)
        captioned = sample_decoder(net, z, x, steps=3, guidance_scale=0.0, text=text, text_mask=mask)
        plain = sample_decoder(net, _unit(2, 16, 9), x, steps=3, guidance_scale=0.0)
    assert torch.allclose(captioned, plain, atol=1e-2)  # (float rounding: about 1e-3 at a few pixels)


def test_the_expert_takes_the_step_at_exactly_t_min():
    """The expert denoises the steps t >= t_min: with t_min one of the sampler's timesteps,
    that step is the expert's too."""
    from latentlab.mini.models import ExpertConfig, ddim_scheduler, sample_decoder

    net, expert = _caption_net(), _caption_net(seed=1)
    steps = ddim_scheduler(net.config, 5).timesteps.tolist()
    z, x = _unit(1, 16, 0), torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    text = torch.randn(1, 5, 12, generator=torch.Generator().manual_seed(2))
    calls = []
    hooks = [_recorder(net, calls, "net"), _recorder(expert, calls, "expert")]
    with torch.no_grad():
        sample_decoder(net, z, x, steps=5, text=text, expert=expert, expert_config=ExpertConfig(t_min=steps[1]))
    for h in hooks:
        h.remove()
    assert [(w, t) for w, t, _, _ in calls] == [("expert", steps[0]), ("expert", steps[1])] + [("net", t) for t in steps[2:]]


def test_an_expert_without_guidance_still_reads_the_null_embedding():
    """Without guidance (g = 1) an expert trained on the caption alone is still given the null
    embedding (drop all True), the decoder's own steps the embedding (no drop)."""
    from latentlab.mini.models import ExpertConfig, sample_decoder

    net, expert = _caption_net(), _caption_net(seed=1)
    z, x = _unit(2, 16, 0), torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    text = torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(2))
    calls = []
    hooks = [_recorder(net, calls, "net"), _recorder(expert, calls, "expert")]
    with torch.no_grad():
        got = sample_decoder(net, z, x, steps=4, guidance_scale=1.0, text=text, expert=expert,
                             expert_config=ExpertConfig(t_min=500))  # fmt: skip
        for h in hooks:
            h.remove()
        other = sample_decoder(net, _unit(2, 16, 7), x, steps=4, guidance_scale=1.0, text=text, expert=expert,
                               expert_config=ExpertConfig(t_min=1))  # fmt: skip
    assert {w for w, *_ in calls} == {"net", "expert"}
    for who, _, drop, _ in calls:
        assert torch.equal(drop, torch.ones(2, dtype=torch.bool)) if who == "expert" else drop is None
    assert got.shape == x.shape
    # an expert that takes every step draws what it draws from the null embedding, whatever the embedding
    with torch.no_grad():
        null = expert.null_embedding.detach().expand(2, 16)
        assert torch.allclose(other, sample_decoder(expert, null, x, steps=4, guidance_scale=1.0, text=text), atol=1e-5)


# -- loading -------------------------------------------------------------------------------


@needs_weights
def test_create_clip_from_a_checkpoint_leaves_the_callers_torch_rng_alone():
    """create_clip with a checkpoint builds its random initialisation (replaced by the file) in a
    forked RNG: torch.manual_seed(0), create_clip(file), torch.rand gives what it would have."""
    from latentlab.mini.models import create_clip, weights_path

    torch.manual_seed(0)
    want = torch.rand(3)
    torch.manual_seed(0)
    create_clip(weights_path("mini_clip.safetensors"))
    assert torch.equal(torch.rand(3), want)


def _plain_decoder_net(seed=0, **kw):
    from latentlab.mini.models import DecoderConfig, MiniDecoderNet

    torch.manual_seed(seed)
    return MiniDecoderNet(DecoderConfig(block_out_channels=(8, 16, 16), embed_dim=16, norm_num_groups=4,
                                        cross_attention_dim=16, attention_heads=2, **kw))  # fmt: skip


def test_save_expert_writes_the_dtype_asked_for_and_load_expert_gives_float32_in_eval_mode(tmp_path):
    """save_expert(dtype=float16) stores half-precision weights (as export does where fp16 is
    close enough), into a folder it makes; load_expert gives them back as a float32 net ready to
    sample (eval mode; float32 follows from the net it builds, checked as a sanity check)."""
    from safetensors.torch import load_file

    from latentlab.mini.models import ExpertConfig, load_expert, save_expert

    net = _caption_net()
    path = tmp_path / "new" / "sub" / "mini_expert.safetensors"
    save_expert(net, path, ExpertConfig(t_min=600), dtype=torch.float16)
    assert {v.dtype for v in load_file(str(path)).values() if v.is_floating_point()} == {torch.float16}
    back, cfg = load_expert(path)
    assert cfg == ExpertConfig(t_min=600) and back.config == net.config
    assert not back.training and not any(m.training for m in back.modules())
    assert {p.dtype for p in back.parameters()} == {torch.float32}


def test_save_module_makes_its_folder(tmp_path):
    """save_module writes into a folder that is not there yet (parents made), config beside it."""
    from latentlab.mini.models import load_module, save_module

    net = _caption_net()
    path = tmp_path / "a" / "b" / "mini_decoder.safetensors"
    save_module(net, path, config=net.config)
    assert path.is_file() and path.with_suffix(".json").is_file()
    assert load_module("decoder", path).config == net.config


def test_load_expert_refuses_a_json_with_more_than_arch_and_expert(tmp_path):
    """An expert's .json must hold exactly 'arch' and 'expert': one with a further key (not
    written by save_expert) is refused as unreadable, naming the rule."""
    import json

    from latentlab.errors import ModelNotAvailableError
    from latentlab.mini.models import ExpertConfig, load_expert, save_expert

    path = tmp_path / "mini_expert.safetensors"
    save_expert(_caption_net(), path, ExpertConfig())
    d = json.loads(path.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps({**d, "decoder": {}}))
    with pytest.raises(ModelNotAvailableError, match=r"cannot be read: ArgumentError: .*exactly 'arch' and 'expert'"):
        load_expert(path)


def test_load_expert_leaves_the_callers_torch_rng_alone(tmp_path):
    """load_expert builds the net it fills from the file in a forked RNG."""
    from latentlab.mini.models import ExpertConfig, load_expert, save_expert

    path = tmp_path / "mini_expert.safetensors"
    save_expert(_caption_net(), path, ExpertConfig())
    torch.manual_seed(0)
    want = torch.rand(3)
    torch.manual_seed(0)
    load_expert(path)
    assert torch.equal(torch.rand(3), want)


def test_an_expert_needs_a_decoder_that_reads_captions_even_when_both_read_none():
    """check_expert refuses an expert beside a caption-free decoder, even one that matches it
    (both text_dim 0): the expert's steps are decided by the caption."""
    from latentlab.errors import ArgumentError
    from latentlab.mini.models import ExpertConfig, check_expert, expert_mismatch

    net, expert = _plain_decoder_net(), _plain_decoder_net(seed=1)
    assert expert_mismatch(net, expert) is not None
    with pytest.raises(ArgumentError, match="reads captions"):
        check_expert(net, expert, ExpertConfig())
    assert expert_mismatch(_caption_net(), _caption_net(seed=1)) is None


# -- properties: decoding and priors as a user calls them (and the bugs they found) -----------------

PROPS = settings(max_examples=10, deadline=None, derandomize=True)

D = 16  # the tiny mini nets' embedding size


@functools.lru_cache(maxsize=None)
def _decoder(resolution: int = 32):
    return tiny_mini_decoder(resolution=resolution, space=None)


@functools.lru_cache(maxsize=None)
def _mini_prior():
    return _tiny_prior(steps=2, space=None)


def _rows(n: int, seed: int, d: int = D) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _levels(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


# exact scales (powers of two keep every bit of a float32 row's direction) and arbitrary ones
scales = st.one_of(st.integers(-100, 100).map(lambda k: 2.0**k), st.floats(1e-30, 1e30))


@settings(PROPS, max_examples=5)
@given(n=st.integers(1, 4), seed=st.integers(0, 2**16), steps=st.integers(1, 2),
       guidance=st.sampled_from([None, 0.0, 1.0, 2.5]), data=st.data())  # fmt: skip
def test_mini_decode_draws_each_row_as_alone_in_any_order_and_at_any_length(n, seed, steps, guidance, data):
    """A frame depends on its own embedding's direction and noise only: the same row decoded
    alone, in a batch in another order, or with every row rescaled, gives the same frame up to
    the documented batched-kernel rounding (a few levels at very low step counts)."""
    dec = _decoder()
    z, x = _rows(n, seed), _noise(n, seed + 1)
    kw = {"steps": steps, "guidance_scale": guidance}
    full = dec.decode(z, x, **kw)
    assert full.shape == (n, 32, 32, 3) and full.dtype == np.uint8
    assert np.array_equal(full, dec.decode(z, x, **kw))  # deterministic
    perm = data.draw(st.permutations(range(n)))
    k = torch.tensor([data.draw(scales) for _ in range(n)], dtype=torch.float64)
    moved = dec.decode((z.double() * k[:, None])[perm].float(), x[perm], **kw)
    i = data.draw(st.integers(0, n - 1))
    alone = dec.decode(z[i : i + 1] * float(k[i]), x[i : i + 1], **kw)
    for j, p in enumerate(perm):
        assert _levels(moved[j], full[p]) <= 5
    assert _levels(alone[0], full[i]) <= 5


@PROPS
@given(n=st.integers(1, 3), resolution=st.integers(8, 70), seed=st.integers(0, 2**16))
def test_mini_decode_returns_uint8_frames_of_its_resolution_for_any_batch(n, resolution, seed):
    """decode -> uint8 (n, resolution, resolution, 3) at any resolution (below the native 32 px
    too), and the default guidance is the decoder's default_guidance."""
    dec = _decoder(resolution)
    z, x = _rows(n, seed), _noise(n, seed + 1)
    out = dec.decode(z, x, steps=1)
    assert out.shape == (n, resolution, resolution, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert np.array_equal(out, dec.decode(z, x, steps=1, guidance_scale=dec.default_guidance))


def _prior(kind: str):
    from latentlab.priors import IdentityPrior

    return _mini_prior() if kind == "mini" else IdentityPrior(name="id", space=None, dim=D)


@PROPS
@given(kind=st.sampled_from(["identity", "mini"]), n=st.integers(1, 3), k=st.integers(1, 3),
       seed=st.integers(-(2**63), 2**63 - 1), rows=st.integers(0, 2**16),
       dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16]), power=st.integers(-140, 140))  # fmt: skip
def test_a_prior_samples_unit_rows_from_each_texts_direction_alone(kind, n, k, seed, rows, dtype, power):
    """prior(t, seed, num_samples=k) -> (n*k, d) unit-norm float32 rows, the same for the same
    seed; block i is what text i alone draws; and a text is read as a direction: the same at
    any length (a power of two: the direction exact, in float64 also beyond float32's range)."""
    prior = _prior(kind)
    t = _rows(n, rows).to(dtype)
    out = prior(t, seed=seed, num_samples=k)
    assert out.shape == (n * k, D) and out.dtype == torch.float32
    assert torch.allclose(out.norm(dim=-1), torch.ones(n * k), atol=1e-5)
    assert torch.equal(out, prior(t, seed=seed, num_samples=k))
    assert torch.allclose(prior(t[n - 1 :], seed=seed, num_samples=k), out[(n - 1) * k :], atol=1e-4)
    if dtype != torch.float64:  # float32's range of exponents (bfloat16 shares it)
        power = max(-100, min(100, power))
    longer = prior(t * 2.0**power, seed=seed, num_samples=k)
    assert torch.allclose(longer.norm(dim=-1), torch.ones(n * k), atol=1e-5)
    assert torch.allclose(longer, out, atol=1e-4)


@PROPS
@given(seed=st.integers(-(2**63), 2**63 - 2), other=st.integers(-(2**63), 2**63 - 1), rows=st.integers(0, 2**16))
def test_the_mini_priors_seeds_and_samples_draw_different_embeddings(seed, other, rows):
    """Different seeds, and the samples of one seed, give different embeddings (the noise of
    sample j is seeded by (seed, j))."""
    prior = _mini_prior()
    t = _rows(1, rows)
    a = prior(t, seed=seed, num_samples=2)
    assert float((a[0] - a[1]).abs().max()) > 1e-3
    if other != seed:
        assert float((a[0] - prior(t, seed=other)[0]).abs().max()) > 1e-3


def _bad_decode_calls():
    """(argument named in the error, keyword arguments replacing good ones) for a 2-row batch."""
    z, x = _rows(2, 0), _noise(2, 1)
    nan, inf = float("nan"), float("inf")
    zero_row = z.clone()
    zero_row[1] = 0
    nan_row = z.clone()
    nan_row[0, 3] = nan
    huge_noise = x.double()
    huge_noise[1, 0, 0, 0] = 1e39
    return [
        ("embeddings", {"embeddings": zero_row}), ("embeddings", {"embeddings": nan_row}),
        ("embeddings", {"embeddings": z * inf}), ("embeddings", {"embeddings": z[:, :8]}),
        ("embeddings", {"embeddings": z[None]}), ("embeddings", {"embeddings": z.int()}),
        ("embeddings", {"embeddings": z[:0]}), ("embeddings", {"embeddings": z.numpy()}),
        ("embeddings", {"embeddings": "a cat"}), ("noise", {"noise": x[:1]}), ("noise", {"noise": x * nan}),
        ("noise", {"noise": huge_noise}), ("noise", {"noise": x.numpy()}), ("noise", {"noise": None}),
        ("seeds", {"seeds": 5}), ("seeds", {"seeds": np.int64(5)}), ("seeds", {"seeds": torch.tensor(5)}), ("seeds", {"seeds": [1]}), ("seeds", {"seeds": [1, 2.5]}),
        ("seeds", {"seeds": [1, None]}), ("seeds", {"seeds": [2**64, 0]}), ("seeds", {"seeds": "ab"}),
        ("steps", {"steps": 0}), ("steps", {"steps": -2}), ("steps", {"steps": 1.5}), ("steps", {"steps": True}),
        ("steps", {"steps": 1001}), ("steps", {"steps": "2"}),
        ("guidance_scale", {"guidance_scale": -0.5}), ("guidance_scale", {"guidance_scale": nan}),
        ("guidance_scale", {"guidance_scale": inf}), ("guidance_scale", {"guidance_scale": "3"}),
        ("captions", {"captions": ["a", "b"]}),
    ]  # fmt: skip


BAD_DECODE = _bad_decode_calls()


@pytest.mark.parametrize("name, bad", BAD_DECODE, ids=[f"{n}{i}" for i, (n, _) in enumerate(BAD_DECODE)])
def test_decode_refuses_odd_arguments_by_name(name, bad):
    """Each odd argument (zero, NaN or infinite rows, another size, wrong type, bad seeds, steps
    or guidance, noise infinite as float32) is an ArgumentError naming it near the start of the
    message, never a raw error."""
    kw = {"embeddings": _rows(2, 0), "noise": _noise(2, 1), "steps": 1, **bad}
    with pytest.raises(ArgumentError) as e:
        _decoder().decode(kw.pop("embeddings"), kw.pop("noise"), **kw)
    assert name in str(e.value)[:40], str(e.value)


BAD_PRIOR = [
    ("text_embeddings", {"text_embeddings": torch.zeros(2, D)}), ("text_embeddings", {"text_embeddings": _rows(2, 0) * float("nan")}),
    ("text_embeddings", {"text_embeddings": _rows(2, 0)[:, :4]}), ("text_embeddings", {"text_embeddings": ["a cat"]}),
    ("text_embeddings", {"text_embeddings": _rows(2, 0).int()}), ("num_samples", {"num_samples": 0}),
    ("num_samples", {"num_samples": 1.0}), ("num_samples", {"num_samples": True}), ("seed", {"seed": 2**63}),
    ("seed", {"seed": "1"}), ("seed", {"seed": 0.5}),
]  # fmt: skip


@pytest.mark.parametrize("kind", ["identity", "mini"])
@pytest.mark.parametrize("name, bad", BAD_PRIOR, ids=[f"{n}{i}" for i, (n, _) in enumerate(BAD_PRIOR)])
def test_a_prior_refuses_odd_arguments_by_name(kind, name, bad):
    """prior(...) refuses zero, NaN or other-size rows, non-tensors, and bad num_samples or
    seed with an ArgumentError naming the argument."""
    kw = {"text_embeddings": _rows(2, 0), **bad}
    with pytest.raises(ArgumentError, match=name):
        _prior(kind)(kw.pop("text_embeddings"), **kw)


@PROPS
@given(n=st.integers(2, 3), seed=st.integers(0, 2**16), steps=st.integers(1, 2), power=st.integers(-60, 60))
def test_invert_gives_each_picture_the_noise_it_gets_alone(n, seed, steps, power):
    """invert(images, z) -> float32 (n, *noise_shape()), deterministic, row i what picture i
    alone gives (its embedding read as a direction: any length)."""
    dec = _decoder()
    z = _rows(n, seed)
    images = np.random.default_rng(seed).integers(0, 256, (n, 24, 24, 3), dtype=np.uint8)
    noise = dec.invert(images, z, steps=steps, refine=0)
    assert noise.shape == (n, *dec.noise_shape()) and noise.dtype == torch.float32
    assert torch.equal(noise, dec.invert(images, z, steps=steps, refine=0))
    i = n - 1
    alone = dec.invert(images[i], z[i] * 2.0**power, steps=steps, refine=0)
    assert torch.allclose(alone[0], noise[i], atol=1e-3)


# -- regressions ---------------------------------------------------------------------------


def test_a_prior_returns_unit_rows_for_a_text_embedding_shorter_than_1e_12():
    """A text row of norm below 1e-12 was divided by the clamped norm: IdentityPrior returned
    rows of norm 1e-20 (not unit) and the mini prior read a near-zero text (another sample)."""
    t = _rows(2, 3)
    t = t / t.norm(dim=-1, keepdim=True)
    for kind in ("identity", "mini"):
        prior = _prior(kind)
        short = prior(t * 1e-13, seed=4)
        assert torch.allclose(short.norm(dim=-1), torch.ones(2), atol=1e-5)
        assert torch.allclose(short, prior(t, seed=4), atol=1e-4)


def test_a_prior_takes_num_samples_as_any_integer_type():
    """num_samples=np.int64(2) was refused as "must be an integer >= 1, got np.int64(2)" (seed
    took numpy integers)."""
    assert _prior("identity")(_rows(1, 0), num_samples=np.int64(2)).shape == (2, D)


def test_decode_refuses_a_bare_int_as_seeds_by_name():
    """seeds=5 was a raw TypeError ('int' object is not iterable)."""
    with pytest.raises(ArgumentError, match="seeds must be a list"):
        _decoder().decode(_rows(1, 0), _noise(1, 1), seeds=5, steps=1)


def test_float64_inputs_beyond_float32s_range_are_read_or_refused_not_drawn_black():
    """Checked before the float32 conversion: float64 noise of 1e39 (inf in float32) drew black
    frames; float64 embeddings of 1e300 (inf) drew black frames, of 1e-300 (zero) were refused
    as the zero vector, and the priors blamed their own output."""
    dec = _decoder()
    z, x = _rows(2, 0), _noise(2, 1)
    huge = x.double()
    huge[1, 0, 0, 0] = 1e39
    with pytest.raises(ArgumentError, match=r"noise holds NaN or infinite values \(rows \[1\]\) as the float32"):
        dec.decode(z, huge, steps=1)
    want = dec.decode(z, x, steps=1)
    for k in (1e300, 1e-300):
        assert _levels(dec.decode(z.double() * k, x, steps=1), want) <= 1
        assert torch.allclose(_prior("identity")(z.double() * k), _prior("identity")(z), atol=1e-6)


# -- found by the property audit of 2026-12-07: loading and saving the mini parts ----------------


def _tiny_prior_folder(folder, **config):
    from latentlab.mini.models import MiniPriorNet, PriorConfig, save_module

    cfg = PriorConfig(embed_dim=16, width=32, depth=1)
    torch.manual_seed(0)
    save_module(MiniPriorNet(cfg), folder / "mini_prior.safetensors", config=cfg)
    if config:
        path = folder / "mini_prior.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **config}))
    return folder


def _tiny_decoder_folder(folder):
    from latentlab.mini.models import DecoderConfig, MiniDecoderNet, save_module

    cfg = DecoderConfig(block_out_channels=(8, 16, 16), embed_dim=16, norm_num_groups=4, cross_attention_dim=16,
                        attention_heads=2)  # fmt: skip
    torch.manual_seed(0)
    save_module(MiniDecoderNet(cfg), folder / "mini_decoder.safetensors", config=cfg)
    return folder


# -- configs ------------------------------------------------------------------------------

_whole = st.integers(1, 2**70)
_decoder_fields = st.fixed_dictionaries(
    {},
    optional={
        "image_size": _whole,
        "embed_dim": _whole,
        "block_out_channels": st.lists(_whole, min_size=1, max_size=4),
        "text_dim": st.integers(0, 512),
        "text_layers": st.integers(0, 4),
        "coords": st.booleans(),
        "text_pooled": st.booleans(),
        "num_train_timesteps": st.integers(1, 100_000),
        "beta_schedule": st.sampled_from(["linear", "scaled_linear", "squaredcos_cap_v2"]),
        "prediction_type": st.sampled_from(["epsilon", "sample", "v_prediction"]),
    },
)


@settings(derandomize=True, max_examples=40, deadline=None)
@given(_decoder_fields)
def test_a_config_read_from_json_is_the_one_saved_and_missing_fields_take_their_defaults(d):
    """Property (old and new code): a config's dict, through JSON and back, is the same config;
    a field the file leaves out (one written before the field existed) takes its default."""
    from latentlab.mini.models import DecoderConfig

    cfg = DecoderConfig.from_dict(json.loads(json.dumps(d)))
    for name, default in DecoderConfig().to_dict().items():
        want = d.get(name, default)
        assert getattr(cfg, name) == (tuple(want) if isinstance(want, list) else want)
    assert DecoderConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize(
    "cls, field, value",
    [
        ("DecoderConfig", "num_train_timesteps", 0),
        ("DecoderConfig", "num_train_timesteps", "1000"),
        ("DecoderConfig", "num_train_timesteps", 1000.0),
        ("DecoderConfig", "num_train_timesteps", 10**9),  # loaded, then hung building a 10**9-step schedule
        ("DecoderConfig", "image_size", True),
        ("DecoderConfig", "image_size", -32),
        ("DecoderConfig", "beta_schedule", "nope"),
        ("DecoderConfig", "prediction_type", "noise"),
        ("DecoderConfig", "coords", "no"),
        ("DecoderConfig", "block_out_channels", []),
        ("DecoderConfig", "block_out_channels", [8, "16"]),
        ("DecoderConfig", "text_dim", -1),
        ("PriorConfig", "num_train_timesteps", None),
        ("PriorConfig", "width", 0.5),
        ("UpscalerConfig", "in_size", "32"),
        ("ExpertConfig", "t_min", "750"),
        ("ExpertConfig", "reads_embedding", 1),
    ],
)
def test_config_from_dict_refuses_a_value_not_of_the_fields_type_by_name(cls, field, value):
    """A config's .json with a field of the wrong type or range was taken as it was: a prior with
    num_train_timesteps 0 loaded and then said "steps must be <= 0", an image_size "32" gave a raw
    TypeError, an unknown beta_schedule or prediction_type loaded and failed in diffusers at the
    first decode."""
    from latentlab.mini import models

    with pytest.raises(ArgumentError, match=rf"{cls}\.{field} must be"):
        getattr(models, cls).from_dict({field: value})


@pytest.mark.parametrize("d", [None, [1, 2], "x"])
def test_config_from_dict_refuses_what_is_not_a_json_object(d):
    from latentlab.mini.models import PriorConfig

    with pytest.raises(ArgumentError, match="must be a JSON object"):
        PriorConfig.from_dict(d)


@pytest.mark.parametrize("field, value", [("beta_schedule", "nope"), ("num_train_timesteps", 0),
                                          ("num_train_timesteps", "1000"), ("prediction_type", "noise"),
                                          ("num_train_timesteps", 100_001)])  # fmt: skip
def test_a_weights_folder_whose_json_has_a_bad_value_is_refused_at_load_naming_the_file(tmp_path, field, value):
    """It loaded (and failed later, or with a raw TypeError); now one ModelNotAvailableError names
    the file, the field and the fix."""
    from latentlab.mini.runtime import MiniPrior

    _tiny_prior_folder(tmp_path, **{field: value})
    with pytest.raises(ModelNotAvailableError, match=rf"mini_prior\.safetensors.*PriorConfig\.{field} must be.*export") as e:
        MiniPrior.from_pretrained(tmp_path)
    assert "be.." not in str(e.value) and ".. " not in str(e.value)  # one full stop, not the error's and ours


# -- the weights folder argument -------------------------------------------------------------


@pytest.mark.parametrize("weights", [5, 1.5, b"/tmp", ["a"]])
def test_weights_folder_of_another_type_is_an_argument_error(weights):
    """weights=5 (or bytes, a list) raised a raw TypeError from os.fspath / pathlib."""
    from latentlab.mini.runtime import MiniDecoder, MiniPrior, build_mini_prior

    for load in (lambda: MiniPrior.from_pretrained(weights), lambda: MiniDecoder.from_pretrained(weights),
                 lambda: build_mini_prior(SimpleNamespace(), weights=weights, weights_dir="x")):  # fmt: skip
        with pytest.raises(ArgumentError, match=r"weights \(weights_dir\) must be a folder"):
            load()


def test_weights_and_weights_dir_naming_one_folder_with_a_tilde_are_the_same_folder(tmp_path, monkeypatch):
    """weights="~/w" and weights_dir="<home>/w" were refused as "two folders" (the comparison did
    not read ~ as the loading does); a NUL in either raised a raw ValueError."""
    from latentlab.mini.runtime import build_mini_prior

    monkeypatch.setenv("HOME", str(tmp_path))
    _tiny_prior_folder((tmp_path / "w").mkdir() or tmp_path / "w")
    prior = build_mini_prior(SimpleNamespace(), weights="~/w", weights_dir=str(tmp_path / "w"))
    assert prior.dim == 16
    with pytest.raises(ArgumentError, match="NUL"):
        build_mini_prior(SimpleNamespace(), weights="w\x00", weights_dir=str(tmp_path / "w"))


def test_load_module_refuses_an_unknown_kind_before_looking_for_files(tmp_path):
    """load_module("decodr", <missing file>) said the "mini decodr weights" were missing."""
    from latentlab.mini.models import load_module

    with pytest.raises(ArgumentError, match="kind must be 'decoder', 'prior' or 'upscaler', got 'decodr'"):
        load_module("decodr", tmp_path / "nothing.safetensors")


# -- schedulers ----------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [0, -3, 2.5, True, 1001])
def test_ddim_scheduler_refuses_a_step_count_it_cannot_take_by_name(steps):
    """0 raised a raw ZeroDivisionError, 1001 diffusers' raw ValueError, 2.5 ran 2 steps."""
    from latentlab.mini.models import PriorConfig, ddim_scheduler

    with pytest.raises(ArgumentError, match="steps must be"):
        ddim_scheduler(PriorConfig(), steps)
    assert ddim_scheduler(PriorConfig(), 1000).timesteps.numel() == 1000


# -- the layout expert and the caption reader ------------------------------------------------


def test_a_damaged_expert_found_beside_the_decoder_names_expert_false(tmp_path):
    """With expert=None (the default), an expert file in the folder is loaded; a half one (no
    .json) stopped the decoder loading with "train one", naming no way to load it without."""
    from latentlab.mini.runtime import MiniDecoder

    _tiny_decoder_folder(tmp_path)
    shutil.copy(tmp_path / "mini_decoder.safetensors", tmp_path / "mini_expert.safetensors")
    with pytest.raises(ModelNotAvailableError, match=r"mini_expert.*expert=False, or remove mini_expert.safetensors"):
        MiniDecoder.from_pretrained(tmp_path, resolution=32)
    assert MiniDecoder.from_pretrained(tmp_path, resolution=32, expert=False).expert is None
    with pytest.raises(ModelNotAvailableError) as e:  # asked for by name: the message as it was
        MiniDecoder.from_pretrained(tmp_path, resolution=32, expert=True)
    assert "expert=False" not in str(e.value)


@pytest.mark.parametrize("content", [None, b"not a safetensors file"])
def test_caption_states_with_a_missing_or_damaged_clip_names_the_file(tmp_path, content):
    """A weights folder without (or with a damaged) mini_clip.safetensors, beside a decoder that
    reads captions, raised open_clip's raw RuntimeError ("not a known tag") or a SafetensorError at
    the first captioned decode."""
    from latentlab.mini.runtime import CaptionStates

    clip = tmp_path / "mini_clip.safetensors"
    if content is not None:
        clip.write_bytes(content)
    with pytest.raises(ModelNotAvailableError, match=r"mini_clip\.safetensors.*export --to DIR"):
        CaptionStates(clip)(["a red circle"])


def test_caption_states_checks_its_device_when_built_not_as_a_damaged_clip():
    """CaptionStates(file, device="CPU") was taken and failed at the first captioned decode with
    torch's raw RuntimeError from inside open_clip; now refused by name when it is built."""
    from latentlab.mini.models import WEIGHTS_DIR
    from latentlab.mini.runtime import CaptionStates

    with pytest.raises(ArgumentError, match="device must be"):
        CaptionStates(WEIGHTS_DIR / "mini_clip.safetensors", device="CPU")
    assert CaptionStates(WEIGHTS_DIR / "mini_clip.safetensors", device=None).device == torch.device("cpu")


@pytest.mark.parametrize("arg, value", [("checkpoint", 5), ("checkpoint", b"/x.safetensors"), ("config", 5)])
def test_mini_encoder_file_of_another_type_is_an_argument_error(arg, value):
    """create_encoder("mini", checkpoint=5) raised a raw TypeError from os.fspath."""
    import latentlab as ll

    with pytest.raises(ArgumentError, match=rf"{arg} must be a file path"):
        ll.create_encoder("mini", **{arg: value})


def test_save_and_load_module_read_a_tilde_as_the_home_folder(tmp_path, monkeypatch):
    """from_pretrained("~/w") read ~ as the home folder, but save_module("~/w/...") made a folder
    named "~" in the current one, and load_module / load_expert did not find "~/w/..."."""
    from latentlab.mini.models import ExpertConfig, MiniPriorNet, PriorConfig, load_expert, load_module, save_expert, save_module

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    cfg = PriorConfig(embed_dim=16, width=32, depth=1)
    net = MiniPriorNet(cfg)
    save_module(net, "~/w/mini_prior.safetensors", config=cfg)
    assert (tmp_path / "home" / "w" / "mini_prior.json").is_file() and not (tmp_path / "~").exists()
    loaded = load_module("prior", "~/w/mini_prior.safetensors")
    assert loaded.config == cfg and all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), net.state_dict().values()))
    from conftest import tiny_caption_net

    expert = tiny_caption_net()
    save_expert(expert, "~/w/mini_expert.safetensors", ExpertConfig(t_min=500))
    assert load_expert("~/w/mini_expert.safetensors")[1] == ExpertConfig(t_min=500)


# -- found by the audit of 2026-12-07: where the clamp binds is decided from x_prev (at t = 999, from x_t,
# float rounding flipped the clamp and its sign; redraws were 70-170 levels off at 2-6 steps) ------------


class _GrowingEps(torch.nn.Module):
    """A stand-in denoiser whose noise estimate depends on the timestep only (each sampler
    step can be undone exactly), large enough that the sampler's clamp of x0 binds."""

    def __init__(self, eps, size=8):
        from latentlab.mini.models import DecoderConfig

        super().__init__()
        self.config, self.eps = DecoderConfig(image_size=size), eps

    def forward(self, x, t, emb, *rest):
        return (self.eps * (1 + t.float() / 1000).view(-1, 1, 1, 1)).expand_as(x)


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 6, 10, 25])
def test_ddim_invert_round_trips_an_eps_of_the_timestep_at_every_step_count(steps):
    """With an estimate that does not depend on x the fixed point is exact: decoding the
    inverted noise with the same steps redraws the (inset) target, for every step count,
    also where the clamp binds (before: 1.66 off at 4 steps, a clamp of the wrong sign at
    t = 999)."""
    from latentlab.mini.models import sample_decoder
    from latentlab.mini.runtime import ddim_invert

    torch.manual_seed(0)
    image = torch.rand(2, 3, 8, 8) * 1.6 - 0.8
    emb = torch.zeros(2, 128)
    net = _GrowingEps(torch.randn(2, 3, 8, 8) * 0.3)
    noise = ddim_invert(net, emb, image, steps=steps, inset=1.0)
    back = sample_decoder(net, emb, noise, steps=steps, guidance_scale=1.0)
    assert float((back - image).abs().max()) < 3e-3


def test_ddim_invert_decides_the_clamp_with_the_eps_it_steps_with(monkeypatch):
    """The fixed-point step inverts the sampler's step for the estimate it re-evaluated,
    whatever the plain estimate (evaluated at x_prev) was: here the plain estimate is off by
    0.2 everywhere, the re-evaluated one is what the sampler sees, so the redraw is exact
    (before: the clamp was decided from (x_t - eps) / sqrt(a_t) with the plain x_t, so by
    the 0.2 offset amplified 20000 times at t = 999; the redraw came back saturated)."""
    from latentlab.mini import runtime
    from latentlab.mini.models import sample_decoder

    calls = []

    def guided(net, x, t, emb, guidance_scale):  # ddim_invert calls it twice a step: plain, then refined
        calls.append(t)
        out = net(x, torch.full((x.shape[0],), int(t)), emb)
        return out + 0.2 if len(calls) % 2 == 1 else out

    monkeypatch.setattr(runtime, "_guided_eps", guided)
    g = torch.Generator().manual_seed(1)
    net = _GrowingEps(torch.randn(1, 3, 8, 8, generator=g) * 0.3)
    image, emb = torch.rand(1, 3, 8, 8, generator=g) * 1.6 - 0.8, torch.zeros(1, 128)
    for steps in (2, 4, 10):
        calls.clear()
        noise = runtime.ddim_invert(net, emb, image, steps=steps, inset=1.0)
        assert len(calls) == 2 * steps
        back = sample_decoder(net, emb, noise, steps=steps, guidance_scale=1.0)
        assert float((back - image).abs().max()) < 3e-3, steps


# -- found by the review of 2026-12-07: inversion reads every prediction type; CaptionStates reads ~ ---------


class _VEps(torch.nn.Module):
    """A stand-in denoiser of ``prediction_type`` whose noise estimate depends on the timestep
    only (so each sampler step can be undone exactly), given as that prediction type's output."""

    def __init__(self, eps, prediction_type, size=8):
        from latentlab.mini.models import DecoderConfig, make_scheduler

        super().__init__()
        self.config, self.eps = DecoderConfig(image_size=size, prediction_type=prediction_type), eps
        self.ac = make_scheduler(self.config, "ddim").alphas_cumprod

    def forward(self, x, t, emb, *rest):
        eps = (self.eps * (1 + t.float() / 1000).view(-1, 1, 1, 1)).expand_as(x)
        a = self.ac[t].view(-1, 1, 1, 1).to(x.dtype)
        if self.config.prediction_type == "epsilon":
            return eps
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        return a.sqrt() * eps - (1 - a).sqrt() * x0  # v_prediction


@pytest.mark.parametrize("steps", [2, 4, 10])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_ddim_invert_reads_the_model_output_as_the_sampler_does(prediction_type, steps):
    """ddim_invert undoes sample_decoder for a decoder trained with any prediction_type that
    training offers (decoder.arch.prediction_type=v_prediction): the sampler converts the
    model's output to a noise estimate, so inversion must too (before: a v-prediction output was
    taken for epsilon, and the redraw came back about 1.0 off, i.e. 127 levels)."""
    from latentlab.mini.models import sample_decoder
    from latentlab.mini.runtime import ddim_invert

    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 8, 8, generator=g) * 1.6 - 0.8
    emb = torch.zeros(2, 128)
    net = _VEps(torch.randn(2, 3, 8, 8, generator=g) * 0.3, prediction_type)
    noise = ddim_invert(net, emb, image, steps=steps, inset=1.0)
    back = sample_decoder(net, emb, noise, steps=steps, guidance_scale=1.0)
    assert float((back - image).abs().max()) < 3e-3


def test_mini_cause_is_the_first_line_without_its_full_stop():
    """The one helper behind 'cannot be read: <cause>.' of the mini weights and the mini CLIP
    (it was built twice, in models._unreadable and runtime.CaptionStates)."""
    from latentlab.mini.models import _cause

    assert _cause(ValueError("header too large.\nat byte 8")) == "ValueError: header too large"
    assert _cause(RuntimeError("")) == "RuntimeError: "
    assert len(_cause(OSError("x" * 1000))) == len("OSError: ") + 300


def test_caption_states_reads_its_file_as_load_module_does(tmp_path, monkeypatch):
    """CaptionStates(<mini CLIP file>), which the decoder's error tells users to pass, reads a
    leading ~ as the home folder, as load_module and from_pretrained's weights= do since 6df7c7f
    (before: '~/w/mini_clip.safetensors' was said not to be there), and a file of the wrong
    type is named (before: a raw TypeError from pathlib)."""
    from latentlab.errors import ArgumentError
    from latentlab.mini.runtime import CaptionStates

    monkeypatch.setenv("HOME", str(tmp_path))
    assert CaptionStates("~/w/mini_clip.safetensors").clip_file == tmp_path / "w" / "mini_clip.safetensors"
    for bad in (5, b"mini_clip.safetensors", None):
        with pytest.raises(ArgumentError, match="clip_file must be a file path"):
            CaptionStates(bad)


# -- sampling paths, second pass (2026-12-07): caption masks, settings set on a decoder or prior --


@pytest.fixture(scope="module")
def caption_states():
    from latentlab.mini.models import weights_path
    from latentlab.mini.runtime import CaptionStates

    if not weights_available():
        pytest.skip("the shipped mini weights are not in this checkout")
    return CaptionStates(weights_path("mini_clip.safetensors"))


# -- captions: the mask of a caption's tokens ------------------------------------------------------


@needs_weights
def test_caption_mask_keeps_a_bang_before_an_emoji(caption_states):
    """A "!" right before an emoji or a symbol is token id 0, the padding's: ``tokens != 0``
    masked it out of the caption, so a decoder reading the pooled caption (the layout expert's
    ``text_pooled``) took the token before the end of text instead of the end of text."""
    from open_clip.tokenizer import SimpleTokenizer

    captions = ["a red circle !\U0001f3a8", "wow!\u00b0 a blue square", "a red circle"]
    _, mask = caption_states(captions)
    tokens = SimpleTokenizer()(captions, context_length=mask.shape[1])
    assert (tokens[:2] == 0).any()  # (the case: a real token with the padding's id)
    eot = tokens.argmax(-1)
    assert mask.sum(1).tolist() == (eot + 1).tolist()  # start, words, end of text; no padding
    assert all(bool(mask[i, : int(eot[i]) + 1].all()) for i in range(len(captions)))


@needs_weights
@settings(derandomize=True, max_examples=8, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab !?\u00b0\u00e9\U0001f3a8\u65e5"), max_size=40))
def test_caption_mask_runs_up_to_the_end_of_text(caption_states, caption):
    """For any caption (empty, non-ASCII, punctuation), the mask is the tokens up to and
    including its end-of-text token, where CLIP's encode_text pools."""
    from open_clip.tokenizer import SimpleTokenizer

    _, mask = caption_states([caption])
    tokens = SimpleTokenizer()([caption], context_length=mask.shape[1])
    want = torch.arange(tokens.shape[1])[None] <= tokens.argmax(-1, keepdim=True)
    assert torch.equal(mask.cpu(), want)


# -- the decoder's resolution ----------------------------------------------------------------------


def test_decoder_resolution_takes_numpy_integers_and_refuses_huge_ones():
    """resolution=np.int64(48) was refused as "must be an int >= 8, got 48"; 10**400 (or 2**40)
    was taken, and the first decode raised a raw OverflowError from PIL."""
    dec = tiny_mini_decoder(resolution=np.int64(48))
    assert dec.resolution == 48 and type(dec.resolution) is int
    json.dumps(dec.describe())  # (a numpy integer in the manifest did not serialise)
    frames = dec.decode(_unit(1, dec.dim, 0), torch.randn(1, *dec.noise_shape()), steps=1)
    assert frames.shape == (1, 48, 48, 3)
    from latentlab.mini.runtime import MiniDecoder

    for bad in (10**400, 2**40, 16385, 7, 32.0, True, "64"):
        with pytest.raises(ArgumentError, match=r"resolution must be an integer in \[8, 16384\]"):
            MiniDecoder(dec.net, resolution=bad)


@needs_weights
def test_from_pretrained_leaves_the_upscaler_out_at_a_numpy_native_resolution():
    """At the native size the frames are never upscaled, so the upscaler is not loaded (nor
    described or hashed): for np.int64(32) as for 32."""
    from latentlab.mini.runtime import MiniDecoder

    dec = MiniDecoder.from_pretrained(resolution=np.int64(32), expert=False)
    assert dec.upscaler is None and dec.describe() == MiniDecoder.from_pretrained(resolution=32, expert=False).describe()


# -- the decoder's inversion settings --------------------------------------------------------------


def test_inversion_settings_set_on_the_decoder_are_checked():
    """inversion_iterations = 2.5 ran 2 iterations (and -1 none, under a cache key of its own);
    refine_lr = -0.1 (or NaN) was a raw ValueError from Adam after the inversion had run.
    1.0 is 1, as Karlo takes it."""
    dec = tiny_mini_decoder()
    image = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    z = _unit(1, dec.dim, 1)
    for bad in (2.5, -1, "2", float("nan"), None):
        dec.inversion_iterations = bad
        with pytest.raises(ArgumentError, match="inversion_iterations must be a whole number >= 0"):
            dec.invert(image, z, steps=2, refine=0)
        with pytest.raises(ArgumentError, match="inversion_iterations"):
            dec.inversion_marks(0)
    dec.inversion_iterations = 1.0
    assert dec.inversion_marks(0) == {}
    assert torch.equal(dec.invert(image, z, steps=2, refine=0), tiny_mini_decoder().invert(image, z, steps=2, refine=0))
    for bad in (-0.1, float("nan"), float("inf"), "0.05"):
        dec.refine_lr = bad
        with pytest.raises(ArgumentError, match="refine_lr must be a finite number >= 0"):
            dec.invert(image, z, steps=2, refine=1, progress=False)
        with pytest.raises(ArgumentError, match="refine_lr"):
            dec.inversion_marks(1)


# -- the prior's guidance --------------------------------------------------------------------------


def test_prior_guidance_set_after_building_is_checked():
    """prior.guidance_scale is checked when the prior is built; set later to "2" it was a raw
    TypeError from deep in the sampler, to NaN a "prior returned rows that are not finite"."""
    from latentlab.mini.models import MiniPriorNet, PriorConfig
    from latentlab.mini.runtime import MiniPrior

    torch.manual_seed(0)
    prior = MiniPrior(MiniPriorNet(PriorConfig(embed_dim=16, width=32, depth=1)), steps=2)
    text = _unit(1, 16, 2)
    for bad in ("2", float("nan"), -1.0, None):
        prior.guidance_scale = bad
        with pytest.raises(ArgumentError, match="guidance_scale must be a finite number >= 0"):
            prior(text)
    prior.guidance_scale = np.float32(2.0)  # numpy's numbers are numbers
    assert prior(text).shape == (1, 16)


# -- property tests of documented promises (pass before and after) --------------------------------


@settings(derandomize=True, max_examples=6, deadline=None)
@given(st.integers(1, 3), st.sampled_from([0.0, 1.0, 3.0]), st.integers(0, 2**63 - 1))
def test_decode_eta_zero_is_the_plain_sampler(steps, guidance, seed):
    """decode_eta(eta=0) draws exactly decode's frames (sample_decoder_eta's docstring)."""
    from latentlab.mini.models import sample_decoder
    from latentlab.mini.runtime import sample_decoder_eta

    dec = tiny_mini_decoder()
    z = _unit(2, dec.dim, seed % 1000)
    noise = torch.randn(2, *dec.noise_shape(), generator=torch.Generator().manual_seed(seed % 1000))
    with torch.inference_mode():
        a = sample_decoder(dec.net, z, noise, steps=steps, guidance_scale=guidance)
        b = sample_decoder_eta(dec.net, z, noise, seeds=[seed, seed], eta=0.0, steps=steps, guidance_scale=guidance)
    assert torch.equal(a, b)


@settings(derandomize=True, max_examples=5, deadline=None)
@given(st.integers(1, 3), st.integers(-(2**63), 2**63 - 1))
def test_prior_sample_does_not_depend_on_its_batch(num_samples, seed):
    """Sample j of text i is the same drawn with other texts or alone (up to float rounding)."""
    from latentlab.mini.models import MiniPriorNet, PriorConfig
    from latentlab.mini.runtime import MiniPrior

    torch.manual_seed(0)
    prior = MiniPrior(MiniPriorNet(PriorConfig(embed_dim=16, width=32, depth=1)), steps=3)
    text = _unit(3, 16, 3)
    together = prior(text, seed=seed, num_samples=num_samples)
    alone = torch.cat([prior(text[i : i + 1], seed=seed, num_samples=num_samples) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-5)
    assert torch.allclose(prior(text, seed=seed, num_samples=1), together[::num_samples], atol=1e-5)


# -- captions that are not text --------------------------------------------------------------------


def test_decode_refuses_a_caption_holding_a_lone_surrogate():
    """A caption holding a lone surrogate (a byte a terminal or file name gave under a non-UTF-8
    locale) is refused by encode_text; decode(captions=...) drew from whatever the tokenizer made
    of it instead, without a word."""
    from latentlab.mini.runtime import MiniDecoder

    calls = []

    def text_encoder(captions):
        calls.append(captions)
        return torch.zeros(len(captions), 3, 8), torch.ones(len(captions), 3, dtype=torch.bool)

    net = tiny_caption_net(8)
    dec = MiniDecoder(net, resolution=32, text_encoder=text_encoder)
    z, noise = _unit(2, dec.dim, 4), torch.randn(2, *dec.noise_shape())
    with pytest.raises(ArgumentError, match=r"captions\[1\] .* holds '\\udcff', which is not text"):
        dec.decode(z, noise, steps=1, captions=["a red circle", "a\udcffb"])
    assert calls == []
    assert dec.decode(z, noise, steps=1, captions=["a red circle", "\u65e5\u672c \U0001f3a8"]).shape == (2, 32, 32, 3)


# -- describe() names what changes the samples -----------------------------------------------------


def test_prior_describe_names_its_precision():
    """A bfloat16 prior draws other embeddings (by about 0.003) than the float32 one, so other
    pictures; its describe() (recorded in generate.json) was the same, as MiniDecoder's was before it
    named its dtype. The default CPU float32 is not named (older records still match)."""
    from latentlab.mini.models import MiniPriorNet, PriorConfig
    from latentlab.mini.runtime import MiniPrior

    torch.manual_seed(0)
    net = MiniPriorNet(PriorConfig(embed_dim=16, width=32, depth=1))
    plain, half = MiniPrior(net, steps=2), MiniPrior(MiniPriorNet(net.config), steps=2, dtype=torch.bfloat16)
    assert "dtype" not in plain.describe() and "device" not in plain.describe()
    assert half.describe()["dtype"] == "bfloat16" and half.describe() != plain.describe()


@settings(derandomize=True, max_examples=4, deadline=None)
@given(st.integers(1, 3), st.sampled_from([0.0, 1.0, 3.0]), st.integers(0, 2**32))
def test_decode_eta_frame_does_not_depend_on_its_batch(steps, guidance, seed):
    """With eta > 0 each row's step noise comes from its own seed: a batch of 3 draws the frames
    of 3 batches of 1 (up to float rounding: a level or two at very low step counts)."""
    dec = tiny_mini_decoder()
    g = torch.Generator().manual_seed(seed)
    z = torch.nn.functional.normalize(torch.randn(3, dec.dim, generator=g), dim=-1)
    noise = torch.randn(3, *dec.noise_shape(), generator=g)
    seeds = [seed, seed + 1, seed]  # (a repeated seed is fine: each row has its own generator)
    kw = {"eta": 0.7, "steps": steps, "guidance_scale": guidance}
    together = dec.decode_eta(z, noise, seeds=seeds, **kw).astype(int)
    alone = np.concatenate([dec.decode_eta(z[i : i + 1], noise[i : i + 1], seeds=[s], **kw) for i, s in enumerate(seeds)])
    assert np.abs(together - alone.astype(int)).max() <= 2
    assert not np.array_equal(together[0], dec.decode(z[:1], noise[:1], steps=steps, guidance_scale=guidance)[0]) or steps == 1
