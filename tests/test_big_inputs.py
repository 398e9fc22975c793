"""Big inputs as a demanding user meets them (long captions, many inputs,
large pictures, notebook views of many frames)."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
import torch


@functools.lru_cache(maxsize=None)
def _tokenizer(context: int):
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=context)  # (reading its vocabulary takes a second: once per size)


def _caption_states(context: int = 8):
    """A CaptionStates whose CLIP is a stand-in: open_clip's real tokenizer cut to ``context``
    tokens, and token states of zeros (text_token_states is patched by the caller)."""
    from latentlab.mini.runtime import CaptionStates

    cs = CaptionStates("unused_mini_clip.safetensors")
    cs._clip = (None, _tokenizer(context))
    return cs


@pytest.fixture
def zero_token_states(monkeypatch):
    from latentlab.mini import models

    def states(model, tokens):
        return torch.zeros(tokens.shape[0], tokens.shape[1], 12), torch.ones(tokens.shape, dtype=torch.bool)

    monkeypatch.setattr(models, "text_token_states", states)


def _caption_decoder(text_encoder):
    from latentlab.mini.models import DecoderConfig, MiniDecoderNet
    from latentlab.mini.runtime import MiniDecoder

    torch.manual_seed(0)
    cfg = DecoderConfig(block_out_channels=(8, 16, 16), embed_dim=16, norm_num_groups=4, cross_attention_dim=16,
                        attention_heads=2, text_dim=12)  # fmt: skip
    return MiniDecoder(MiniDecoderNet(cfg), resolution=32, text_encoder=text_encoder)


def test_a_caption_cut_to_the_mini_decoders_context_is_warned_of_naming_the_callers_line(zero_token_states):
    """decoder.decode(z, noise, captions=[...]) of the mini decoder cut a caption longer than its
    CLIP text tower's context (32 tokens) without a word, where encode_text warns of the same cut:
    two captions that differ only past the limit drew the same picture. Now one warning per call,
    naming how many were cut, pointing at the caller's line; a caption that fits says nothing."""
    dec = _caption_decoder(_caption_states(context=8))
    z = torch.nn.functional.normalize(torch.randn(2, 16, generator=torch.Generator().manual_seed(0)), dim=-1)
    noise = torch.randn(2, *dec.noise_shape(), generator=torch.Generator().manual_seed(1))
    long = "a red circle above a blue square and a green triangle"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        dec.decode(z, noise, steps=1, captions=[long, "a cat"])
    cut = [w for w in seen if "longer than the text encoder's context of 8 tokens" in str(w.message)]
    assert len(cut) == 1 and "1 of 2 prompts" in str(cut[0].message), [str(w.message) for w in seen]
    assert cut[0].filename == __file__
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        dec.decode(z, noise, steps=1, captions=["a cat", "a dog"])
    assert not [w for w in seen if "context" in str(w.message)]


def test_caption_states_warns_when_called_directly(zero_token_states):
    """CaptionStates itself (what the decoder calls) says a caption was cut, and still returns
    the states of every caption."""
    cs = _caption_states(context=6)
    with pytest.warns(UserWarning, match="a prompt is longer than the text encoder's context of 6 tokens"):
        states, mask = cs(["one two three four five six seven eight"])
    assert states.shape[:2] == (1, 6) and mask.shape == (1, 6)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 7])
def test_encode_text_of_many_prompts_runs_in_batches_of_batch_size(tiny_encoder, monkeypatch, batch_size):
    """encode_text of many prompts is chunked: the model never sees more than batch_size
    prompts at once, and the result equals one row at a time (property kept, passes on both)."""
    seen = []
    run = tiny_encoder.model.encode_text

    def spy(tokens, **kw):
        seen.append(tokens.shape[0])
        return run(tokens, **kw)

    monkeypatch.setattr(tiny_encoder.model, "encode_text", spy)
    texts = [f"prompt {i}" for i in range(10)]
    z = tiny_encoder.encode_text(texts, batch_size=batch_size)
    assert max(seen) <= batch_size and sum(seen) == 10
    one = torch.cat([tiny_encoder.encode_text(t) for t in texts[:3]])
    assert torch.allclose(z[:3], one, atol=1e-5)


def test_a_caption_cut_to_karlos_tokenizer_length_is_warned_of_naming_the_callers_line():
    """Karlo's decoder (scheduler='ddim') read captions through its tokenizer with truncation=True
    and said nothing: words past the limit changed nothing. Now one warning per call, pointing at
    the caller's line; captions that fit say nothing."""
    from latentlab.decoders import karlo

    dec = karlo.KarloDecoder(karlo.tiny_karlo_pipeline(dim=32), name="t", space="tiny", dim=32, super_res_steps=2,
                             scheduler="ddim", default_steps=2, default_guidance=1.0)  # fmt: skip
    limit = dec.pipe.tokenizer.model_max_length
    z = torch.nn.functional.normalize(torch.randn(1, 32, generator=torch.Generator().manual_seed(0)), dim=-1)
    x = torch.randn(1, *dec.noise_shape(), generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        dec.decode(z, x, seeds=[0], steps=2, captions=["cat " * (limit + 5)])
    cut = [w for w in seen if f"context of {limit} tokens" in str(w.message)]
    assert len(cut) == 1 and cut[0].filename == __file__, [str(w.message) for w in seen]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        dec.decode(z, x, seeds=[0], steps=2, captions=["a red cat"])
    assert not [w for w in seen if "context" in str(w.message)]


@pytest.mark.parametrize("kind", ["array", "tensor", "list"])
def test_encode_image_of_many_arrays_converts_them_batch_by_batch(tiny_encoder, monkeypatch, kind):
    """encode_image of a big (n, H, W, 3) array, (n, 3, H, W) tensor or list of arrays made every
    picture a PIL image before the first batch was encoded: 2,000 pictures of 224 px held 400 MB
    more than the array itself (RGB PIL images take 4 bytes a pixel). Now each is converted when
    its batch is encoded: never more than batch_size pictures ahead of the model."""
    from latentlab import encoders

    made = []
    convert = encoders._array_to_pil
    monkeypatch.setattr(encoders, "_array_to_pil", lambda *a, **k: made.append(1) or convert(*a, **k))
    ahead = []
    run = tiny_encoder.model.encode_image

    def spy(x, **kw):
        ahead.append(len(made))
        return run(x, **kw)

    monkeypatch.setattr(tiny_encoder.model, "encode_image", spy)
    rng = np.random.default_rng(0)
    pictures = rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    images = {"array": pictures, "tensor": torch.from_numpy(pictures).permute(0, 3, 1, 2).contiguous(),
              "list": list(pictures)}[kind]  # fmt: skip
    z = tiny_encoder.encode_image(images, batch_size=2)
    assert ahead == [2, 4, 6, 8, 10], ahead
    one = torch.cat([tiny_encoder.encode_image(p) for p in pictures[:3]])
    assert torch.allclose(z[:3], one, atol=1e-5)


def test_encode_image_refuses_a_bad_picture_of_a_batch_before_encoding_any(tiny_encoder, monkeypatch):
    """Pictures are converted batch by batch, but checked all at once first: a NaN in the last
    picture is refused (naming it) before the model sees the first (property kept, passes on both)."""
    from latentlab.errors import ArgumentError

    calls = []
    monkeypatch.setattr(tiny_encoder.model, "encode_image", lambda *a, **k: calls.append(1))
    a = np.random.default_rng(0).random((6, 8, 8, 3))
    a[5, 0, 0, 0] = np.nan
    with pytest.raises(ArgumentError, match=r"images\[5\]: image contains NaN"):
        tiny_encoder.encode_image(a, batch_size=2)
    t = torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    t[4] = 2.0
    with pytest.raises(ArgumentError, match=r"images\[4\]: float image values must lie in \[0, 1\]"):
        tiny_encoder.encode_image(t, batch_size=2)
    assert calls == []


def test_generate_warns_once_of_a_prompt_cut_to_the_context(zero_token_states):
    """ll.generate hands the mini decoder the prompt it encoded: the cut is said once (by the
    encoder), not again for every decoder batch (guards the fix above)."""
    from types import SimpleNamespace

    import latentlab as ll
    from latentlab.encoders import _warn_truncated
    from latentlab.priors import IdentityPrior
    from latentlab.space import tag

    dec = _caption_decoder(_caption_states(context=8))
    tok = _tokenizer(8)

    def encode_text(texts):
        _warn_truncated(tok, list(texts))
        return tag(torch.nn.functional.normalize(torch.ones(len(texts), 16), dim=-1), dec.space)

    prior = IdentityPrior(name="id", space=dec.space, dim=16)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        frames = ll.generate(SimpleNamespace(encode_text=encode_text), prior, dec, "a red circle " * 5, n=3, steps=1,
                             batch_size=1, progress=False)  # fmt: skip
    assert frames.shape[0] == 3
    assert len([w for w in seen if "context of 8 tokens" in str(w.message)]) == 1, [str(w.message) for w in seen]
