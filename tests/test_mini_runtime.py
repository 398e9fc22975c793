"""The mini runtime (latentlab/mini/runtime.py) with small random weights (no shipped weights
needed): sampler, eta noise, upscaler hand-over, frame conversion, inversion resizing,
refining and the prior."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tiny_mini_decoder


_tiny_decoder = tiny_mini_decoder


def _tiny_upscaler(in_size=32):
    from latentlab.mini.models import MiniUpscalerNet, UpscalerConfig

    torch.manual_seed(0)
    net = MiniUpscalerNet(UpscalerConfig(in_size=in_size, channels=(8, 8), norm_num_groups=4))
    with torch.no_grad():  # a trained net's last layer is not zero
        net.out[2].weight.normal_(0, 0.05)
    return net


def _tiny_prior(**kw):
    from latentlab.mini.models import MiniPriorNet, PriorConfig
    from latentlab.mini.runtime import MiniPrior

    torch.manual_seed(0)
    net = MiniPriorNet(PriorConfig(embed_dim=16, width=32, depth=2))
    with torch.no_grad():
        for blk in net.blocks:
            blk.fc2.weight.normal_(0, 0.1)
    return MiniPrior(net, **{"steps": 4, **kw})


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
