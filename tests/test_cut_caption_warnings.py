"""A caption cut to a text context is warned of once, naming the caller's line (encode_text,
from_texts, the decoders, ll.generate); array and tensor pictures read batch by batch."""

from __future__ import annotations

import functools
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

CUT = "longer than the text encoder's context"


@functools.lru_cache(maxsize=None)
def _tokenizer(context: int):
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=context)


@pytest.fixture
def caption_decoder(monkeypatch):
    """A mini decoder that reads captions through a CaptionStates cut to 8 tokens (token states
    of zeros: no CLIP file needed)."""
    from latentlab.mini import models
    from latentlab.mini.models import DecoderConfig, MiniDecoderNet
    from latentlab.mini.runtime import CaptionStates, MiniDecoder

    monkeypatch.setattr(models, "text_token_states", lambda model, tokens: (
        torch.zeros(tokens.shape[0], tokens.shape[1], 12), torch.ones(tokens.shape, dtype=torch.bool)))  # fmt: skip
    cs = CaptionStates("unused_mini_clip.safetensors")
    cs._clip = (None, _tokenizer(8))
    torch.manual_seed(0)
    cfg = DecoderConfig(block_out_channels=(8, 16, 16), embed_dim=16, norm_num_groups=4, cross_attention_dim=16,
                        attention_heads=2, text_dim=12)  # fmt: skip
    return MiniDecoder(MiniDecoderNet(cfg), resolution=32, text_encoder=cs)


def _unit(n: int, space: str) -> torch.Tensor:
    from latentlab.space import tag

    return tag(torch.nn.functional.normalize(torch.ones(n, 16), dim=-1), space)


def _texts_prior(dec, context: int = 8):
    """A prior that reads the prompt itself (needs_texts, as Karlo's and Kandinsky's) and says a
    cut as theirs do (encoders._warn_truncated)."""
    from latentlab.encoders import _warn_truncated
    from latentlab.priors import IdentityPrior

    class TextsPrior(IdentityPrior):
        needs_texts = True

        def from_texts(self, texts, *, seed=0, num_samples=1):
            _warn_truncated(_tokenizer(context), list(texts))
            return _unit(len(texts), dec.space)

    return TextsPrior(name="texts", space=dec.space, dim=16)


def _cuts(seen):
    return [w for w in seen if CUT in str(w.message)]


@pytest.mark.parametrize("action", ["default", "always"])
def test_generate_says_a_prompt_cut_by_from_texts_once_naming_the_callers_line(caption_decoder, action):
    """ll.generate with a prior that reads the prompt (Karlo's, Kandinsky's) said the cut once per
    batch even under Python's default filter (its catch_warnings around each decode reset every
    module's once-only registry), once per seed under "always", and named a line inside edit.py.
    Now: once, naming the caller's line."""
    import latentlab as ll

    dec = caption_decoder
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter(action)
        ll.generate(SimpleNamespace(encode_text=None), _texts_prior(dec), dec, "a red circle " * 5, n=3, steps=1,
                    batch_size=1, progress=False)  # fmt: skip
    cut = _cuts(seen)
    assert len(cut) == 1, [f"{w.filename}:{w.lineno} {w.message}" for w in seen]
    assert cut[0].filename == __file__


def test_generate_says_a_prompt_cut_by_encode_text_once_naming_the_callers_line(caption_decoder):
    """The pooled path (encode_text, then the prior): one warning, naming the caller of
    ll.generate, not a line of edit.py."""
    import latentlab as ll
    from latentlab.encoders import _warn_truncated
    from latentlab.priors import IdentityPrior

    dec = caption_decoder

    def encode_text(texts):
        _warn_truncated(_tokenizer(8), list(texts))
        return _unit(len(texts), dec.space)

    prior = IdentityPrior(name="id", space=dec.space, dim=16)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ll.generate(SimpleNamespace(encode_text=encode_text), prior, dec, "a red circle " * 5, n=2, steps=1,
                    batch_size=1, progress=False)  # fmt: skip
    cut = _cuts(seen)
    assert len(cut) == 1 and cut[0].filename == __file__, [f"{w.filename}:{w.lineno} {w.message}" for w in seen]


def test_generate_says_a_cut_only_the_decoder_makes(caption_decoder):
    """A prompt that fits the prior's tokenizer (77 tokens) but not the decoder's (8): generate
    hid the decoder's warning, so the cut was said by no one. Now once, naming the caller."""
    import latentlab as ll

    dec = caption_decoder
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ll.generate(SimpleNamespace(encode_text=None), _texts_prior(dec, context=77), dec, "a red circle " * 5, n=2,
                    steps=1, batch_size=1, progress=False)  # fmt: skip
    cut = _cuts(seen)
    assert len(cut) == 1 and "context of 8 tokens" in str(cut[0].message), [str(w.message) for w in seen]
    assert cut[0].filename == __file__


def test_generate_of_a_prompt_that_fits_says_nothing_and_leaves_no_hold(caption_decoder):
    """A prompt that fits: no warning; and after generate (even one that is refused midway)
    encode_text's own warning is said again as before (property kept, passes on both)."""
    import latentlab as ll
    from latentlab.encoders import _warn_truncated

    dec = caption_decoder
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ll.generate(SimpleNamespace(encode_text=None), _texts_prior(dec), dec, "a red circle", n=2, steps=1,
                    progress=False)  # fmt: skip
        assert _cuts(seen) == []
        with pytest.raises(ll.errors.ArgumentError, match="steps"):
            ll.generate(SimpleNamespace(encode_text=None), _texts_prior(dec), dec, "a red circle " * 5, n=1, steps=0,
                        progress=False)  # fmt: skip
        said = len(_cuts(seen))
        _warn_truncated(_tokenizer(8), ["a red circle " * 5])
    assert said <= 1 and len(_cuts(seen)) == said + 1


_pixels = st.integers(1, 6).flatmap(lambda h: st.integers(1, 6).flatmap(
    lambda w: st.lists(st.integers(0, 255), min_size=h * w * 3, max_size=h * w * 3).map(
        lambda v: np.array(v, np.uint8).reshape(h, w, 3))))  # fmt: skip


@settings(derandomize=True, max_examples=25, deadline=None)
@given(_pixels)
def test_one_picture_has_one_cache_key_in_every_container(a):
    """The same picture as a uint8 / float16 / float32 / float64 array, a (non-contiguous) view, a
    uint8 / float CHW tensor (one needing grad too), a batch or a PIL image has one cache key and
    one decoded picture (property kept, passes on both)."""
    from PIL import Image

    from latentlab.encoders import EmbeddingCache, _image_items

    f = a / 255.0
    t = torch.from_numpy(a.copy()).permute(2, 0, 1)
    wide = np.zeros((a.shape[0], a.shape[1] * 2, 3), np.uint8)
    wide[:, ::2] = a
    forms = [a, f, f.astype(np.float32), f.astype(np.float16), wide[:, ::2], a[None], t, t[None],
             (t.double() / 255).requires_grad_(True), t.float() / 255, Image.fromarray(a)]  # fmt: skip
    want = None
    for x in forms:
        (item,) = _image_items(x)
        got = (EmbeddingCache.make_key("id", "image", item.content()), np.asarray(item.load()).tobytes())
        assert want is None or got == want, type(x)
        want = got


def test_encode_image_keeps_nothing_of_the_array(tiny_encoder):
    """The embeddings returned do not change when the caller then changes the array, and a second
    call sees the change (property kept, passes on both)."""
    a = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    z = tiny_encoder.encode_image(a, batch_size=2)
    before = z.clone()
    a[:] = 255 - a
    assert torch.equal(z, before)
    assert not torch.allclose(tiny_encoder.encode_image(a, batch_size=2), before)


def test_a_render_never_reads_captions(caption_decoder, monkeypatch):
    """decode without captions (every render, decode_eta) never calls the text encoder, so never
    warns of a cut (property kept, passes on both)."""
    dec = caption_decoder
    monkeypatch.setattr(dec, "text_encoder", lambda captions: pytest.fail("read captions"))
    z = torch.nn.functional.normalize(torch.randn(2, 16, generator=torch.Generator().manual_seed(0)), dim=-1)
    noise = torch.randn(2, *dec.noise_shape(), generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        dec.decode(z, noise, steps=1)
        dec.decode_eta(z, noise, eta=0.5, seeds=[0, 1], steps=1)
    assert _cuts(seen) == []


def test_caption_states_called_directly_names_the_callers_line(monkeypatch):
    """CaptionStates(file)(captions), as its docstring shows it, warned of a cut naming a frame two
    above the caller (at a script's top level, "sys:1"): its stacklevel was fixed for the mini
    decoder's call. Now the caller's line, and decode's caller through the decoder (as before)."""
    from latentlab.mini import models
    from latentlab.mini.runtime import CaptionStates

    monkeypatch.setattr(models, "text_token_states", lambda model, tokens: (
        torch.zeros(tokens.shape[0], tokens.shape[1], 4), torch.ones(tokens.shape, dtype=torch.bool)))  # fmt: skip
    cs = CaptionStates("unused_mini_clip.safetensors")
    cs._clip = (None, _tokenizer(6))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        states, _ = cs(["one two three four five six seven"])
    cut = _cuts(seen)
    assert len(cut) == 1 and cut[0].filename == __file__, [f"{w.filename}:{w.lineno}" for w in seen]
    assert states.shape[:2] == (1, 6)


def test_the_mini_decoder_names_decodes_caller(caption_decoder):
    """Through decoder.decode(captions=...) the warning still names the caller's line (property
    kept, passes on both)."""
    dec = caption_decoder
    z = torch.nn.functional.normalize(torch.randn(1, 16, generator=torch.Generator().manual_seed(0)), dim=-1)
    noise = torch.randn(1, *dec.noise_shape(), generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        dec.decode(z, noise, steps=1, captions=["a red circle " * 5])
    cut = _cuts(seen)
    assert len(cut) == 1 and cut[0].filename == __file__, [f"{w.filename}:{w.lineno}" for w in seen]
