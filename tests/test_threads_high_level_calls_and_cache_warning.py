"""One encoder, prior and decoder shared by threads in the high-level calls (generate, a shared
embedding cache), and the cache's write warning naming the caller's line."""

import threading
import warnings

import numpy as np
import pytest
import torch

import latentlab as ll
from latentlab.encoders import EmbeddingCache

from conftest import run_threads


@pytest.fixture(scope="module")
def tiny_prior():
    return ll.create_prior("tiny")


def test_cache_write_warning_names_the_caller_of_encode_text(tiny_encoder, tmp_path, monkeypatch):
    # a cache that cannot be written warns once, naming the line that called encode_text
    # (stacklevel=3 in put named encode_text's own line inside latentlab/encoders.py)
    monkeypatch.setattr(tiny_encoder, "cache", EmbeddingCache(tmp_path))
    key = EmbeddingCache.make_key(tiny_encoder._cache_id(), "text", "audit41 g cat")
    (tmp_path / key[:2]).write_text("a file where the entry's folder goes")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        z = tiny_encoder.encode_text(["audit41 g cat"]); line = __import__("sys")._getframe().f_lineno  # fmt: skip
    said = [w for w in caught if "could not write to the embedding cache" in str(w.message)]
    assert len(said) == 1 and z.shape == (1, tiny_encoder.dim)
    assert (said[0].filename, said[0].lineno) == (__file__, line)


def test_cache_put_warning_names_its_caller(tmp_path):
    cache = EmbeddingCache(tmp_path)
    key = EmbeddingCache.make_key("fp", "text", "x")
    (tmp_path / key[:2]).write_text("not a folder")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cache.put(key, torch.ones(4) / 2); line = __import__("sys")._getframe().f_lineno  # fmt: skip
    assert [(w.filename, w.lineno) for w in caught] == [(__file__, line)]


# -- kept: threads sharing one model get what they get alone -----------------------------------


def test_generate_in_two_threads_matches_alone_and_says_only_its_own_cut(tiny_encoder, tiny_prior, tiny_decoder):
    long = " ".join(["word"] * 90)  # past the tiny text encoder's context

    def gen(prompt, seed):
        return ll.generate(tiny_encoder, tiny_prior, tiny_decoder, prompt, n=2, seed=seed, steps=2, batch_size=1,
                           progress=False)  # fmt: skip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone = [gen(long, 1), gen("a cat", 5)]
    got = {}
    start = threading.Barrier(2)

    def run(name, prompt, seed):
        start.wait()
        got[name] = gen(prompt, seed)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_threads(lambda: run("long", long, 1), lambda: run("short", "a cat", 5), timeout=60)
    cut = [w for w in caught if "longer than the text encoder's context" in str(w.message)]
    assert np.array_equal(got["long"], alone[0]) and np.array_equal(got["short"], alone[1])
    assert len(cut) == 1 and "'word word" in str(cut[0].message) and cut[0].filename == __file__


def test_cache_shared_by_two_encoders_threads_matches_alone(tmp_path):
    texts = [f"prompt {i}" for i in range(12)]
    alone = ll.create_encoder("tiny", cache=tmp_path / "alone").encode_text(texts, batch_size=5)
    a, b = ll.create_encoder("tiny", cache=tmp_path / "c"), ll.create_encoder("tiny", cache=tmp_path / "c")
    got = {}
    run_threads(lambda: got.__setitem__("a", a.encode_text(texts, batch_size=5)),
                lambda: got.__setitem__("b", b.encode_text(texts, batch_size=5)), timeout=60)  # fmt: skip
    assert torch.equal(got["a"], alone) and torch.equal(got["b"], alone)
    assert len(a.cache) == len(texts) and not list((tmp_path / "c").rglob(".*.tmp*"))
    again = a.encode_text(texts, batch_size=5)
    assert torch.equal(again, alone) and a.cache.hits >= len(texts)


def test_cache_write_warning_names_the_caller_of_encode_image(tiny_encoder, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("a file, so the cache's folders cannot be made")
    monkeypatch.setattr(tiny_encoder, "cache", EmbeddingCache(tmp_path / "file" / "cache"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tiny_encoder.encode_image(torch.zeros(1, 3, 8, 8)); line = __import__("sys")._getframe().f_lineno  # fmt: skip
    said = [(w.filename, w.lineno) for w in caught if "could not write to the embedding cache" in str(w.message)]
    assert said == [(__file__, line)]
