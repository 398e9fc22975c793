"""What the public API's docstrings promise of its arguments, keys and records, kept: cache keys,
non-RGB PIL frames, a spec resolved without its prior, malformed pacing records, query indices.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

# -- EmbeddingCache: keys are what make_key makes ----------------------------------------


def test_cache_refuses_keys_make_key_does_not_make(tmp_path):
    """The docstring says keys are make_key's hex sha256 digests; any string was taken: "x" was
    stored in a folder ``len`` and ``clear`` do not look in (a cleared cache still returned it),
    "../../x" outside the cache directory, and an int key raised a raw TypeError."""
    from latentlab import ArgumentError, EmbeddingCache

    root = tmp_path / "a" / "b"
    cache = EmbeddingCache(root / "cache")
    v = torch.ones(4) / 2
    for bad in ("x", "../../escaped", "A" * 64, "a" * 63, 123, None):
        with pytest.raises(ArgumentError, match="key must be a cache key.*make_key"):
            cache.put(bad, v)
        with pytest.raises(ArgumentError, match="key must be a cache key"):
            cache.get(bad)
        assert bad not in cache  # `in` answers, as for any other key it does not hold
    assert not list(tmp_path.rglob("*.npy"))  # nothing written, inside the cache or beside it
    key = EmbeddingCache.make_key("fp", "text", "a cat")
    cache.put(key, v)
    assert len(cache) == 1 and key in cache and torch.equal(cache.get(key), v)
    cache.clear()
    assert len(cache) == 0 and cache.get(key) is None


def test_make_key_refuses_what_its_docstring_does_not_take():
    """fingerprint and kind are strings, content bytes, a str or bytes chunks: an int was a raw
    AttributeError / TypeError from hashlib, a chunk that is a str a raw TypeError."""
    from latentlab import ArgumentError, EmbeddingCache

    for args, name in [((1, "text", "a"), "fingerprint"), (("fp", None, "a"), "kind"), (("fp", "image", 123), "content"),
                       (("fp", "image", ["a"]), "chunks"), (("fp", "text", "\udc80"), "content")]:  # fmt: skip
        with pytest.raises(ArgumentError, match=name):
            EmbeddingCache.make_key(*args)
    chunks = EmbeddingCache.make_key("fp", "image", [b"ab", bytearray(b"c"), memoryview(b"d")])
    assert chunks == EmbeddingCache.make_key("fp", "image", b"abcd") == EmbeddingCache.make_key("fp", "image", "abcd")


@settings(derandomize=True, max_examples=25, deadline=None)
@given(st.binary(max_size=40), st.text(st.characters(blacklist_categories=("Cs",)), max_size=12), st.integers(1, 4))
def test_make_key_is_what_path_takes(content, kind, n_chunks):
    """Property (documented): every key make_key returns is one get/put/path take, whatever the
    content and however it is split into chunks."""
    from latentlab import EmbeddingCache

    step = max(1, len(content) // n_chunks)
    chunks = [content[i : i + step] for i in range(0, len(content), step)]
    key = EmbeddingCache.make_key("fp", kind, content)
    assert key == EmbeddingCache.make_key("fp", kind, chunks) == EmbeddingCache.make_key("fp", kind, iter(chunks))
    assert EmbeddingCache("unused-audit40-cache").path(key).name == f"{key}.npy"  # (path() creates nothing)


# -- consecutive_distances / plot_pacing read frames as write_video does -------------------


def _pil_frames():
    from PIL import Image

    a = np.zeros((8, 8, 3), np.uint8)
    b = a.copy()
    b[:4] = 200
    return [Image.fromarray(a).convert("RGBA"), Image.fromarray(b).convert("L"), Image.fromarray(a).convert("P")]


def test_consecutive_distances_reads_pil_frames_of_any_mode():
    """Its docstring takes frames "as write_video takes them" (PIL images of any mode, made RGB);
    frame_distances and pacing_stats did, but a list of RGBA, grey or palette PIL frames was
    refused here ((T, H, W, 4) / (T, H, W) arrays), and so by plot_pacing."""
    import matplotlib

    matplotlib.use("Agg")
    import latentlab as ll

    frames = _pil_frames()
    want = ll.frame_distances(frames, metric="pixel")
    assert want.shape == (2,) and want[0] > 0
    np.testing.assert_array_equal(ll.consecutive_distances(frames), want)
    assert ll.pacing_stats(frames)["mean"] == pytest.approx(float(want.mean()))
    ax = ll.plot_pacing({"frames": frames})
    np.testing.assert_allclose(ax.lines[0].get_ydata(), want)
    import matplotlib.pyplot as plt

    plt.close(ax.figure)


@settings(derandomize=True, max_examples=10, deadline=None)
@given(st.sampled_from(["RGB", "RGBA", "L", "P", "LA"]), st.integers(2, 4), st.integers(0, 2**32 - 1))
def test_consecutive_distances_of_pil_frames_equal_frame_distances(mode, n, seed):
    """Property: a list of PIL frames measures as frame_distances measures it, whatever the mode."""
    from PIL import Image

    import latentlab as ll

    rng = np.random.default_rng(seed)
    frames = [Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)).convert(mode) for _ in range(n)]
    np.testing.assert_array_equal(ll.consecutive_distances(frames), ll.frame_distances(frames, metric="pixel"))


# -- load_plugins: its docstring says when get_preset calls it -----------------------------


def test_load_plugins_docstring_says_when_get_preset_loads_plugins(monkeypatch):
    """load_plugins' docstring said get_preset calls it first; get_preset does only for a name not
    registered yet (models.md says so too), so a plugin is not loaded by get_preset("mini")."""
    from latentlab import ArgumentError, presets

    doc = " ".join(inspect.getdoc(presets.load_plugins).split())
    calls = []
    monkeypatch.setattr(presets, "load_plugins", lambda: calls.append(1) or [])
    presets.get_preset("mini")
    assert calls == []
    with pytest.raises(ArgumentError):
        presets.get_preset("no-such-preset-audit40")
    assert calls == [1]
    presets.list_presets()
    assert calls == [1, 1]
    assert "get_preset` and :func:`list_presets` call it first" not in doc
    assert ":func:`get_preset` does for a name not registered yet" in doc


# -- Spec.resolve without a prior --------------------------------------------------------


class _CountingEncoder:
    """Counts what it encodes; embeddings of a fixed 4-d space."""

    space = "audit40"
    dim = 4

    def __init__(self):
        self.calls = 0

    def _z(self, n):
        from latentlab.space import tag

        self.calls += 1
        return tag(torch.nn.functional.normalize(torch.arange(1.0, 5.0).repeat(n, 1), dim=-1), self.space)

    def encode_image(self, images):
        return self._z(len(images))

    def encode_text(self, texts):
        return self._z(len(texts))


def test_resolve_without_prior_says_to_pass_the_presets_prior(images):
    """Spec.resolve(encoder) on a spec with a text keyframe said "preset 'mini' has none" (a
    prior) and to use an image keyframe instead, though mini has a prior: the fix is to pass it.
    A preset without one keeps no_prior_error's message. Refused before any keyframe is encoded
    (the image keyframes before the text one were encoded first)."""
    from latentlab import SpecError, load_spec

    kfs = [{"image": str(images[0])}, {"image": str(images[1])}, {"text": "a cat"}]
    enc = _CountingEncoder()
    with pytest.raises(SpecError, match=r"keyframes\[2\] is a text keyframe, which needs a prior, and none was given: "
                                        r"pass the preset's, spec.resolve\(encoder, prior=ll.create_prior\('mini'\)\)"):  # fmt: skip
        load_spec({"keyframes": kfs, "preset": "mini"}).resolve(enc)
    assert enc.calls == 0
    for preset in ("sd21-unclip-h", "not-a-preset-audit40"):  # no prior, or nothing known of its prior
        spec = load_spec({"keyframes": kfs, "preset": preset})
        with pytest.raises(SpecError, match="needs a prior") as exc:
            spec.resolve(enc)
        assert str(exc.value) == str(spec.no_prior_error()) and f"preset {preset!r} has none" in str(exc.value)
    assert enc.calls == 0
    assert len(load_spec({"keyframes": kfs[:2], "frames": 3}).resolve(enc)) == 4  # no text keyframe: no prior needed


# -- Pacing.from_dict: SpecError on malformed records --------------------------------------


def test_pacing_from_dict_refuses_malformed_records():
    """Trajectory.from_dict raises SpecError on malformed input; Pacing.from_dict raised a raw
    KeyError ({}) or TypeError (samples=3)."""
    from latentlab import SpecError, Trajectory
    from latentlab.pacing import Pacing

    traj = Trajectory(torch.eye(3)[:2], frames=3)
    good = {"trajectory": traj.to_dict(), "samples": [[0.0, 1.0]], "distances": [[0.5]], "metric": "pixel"}
    p = Pacing.from_dict(good)
    assert p.metric == "pixel" and p.trajectory.fingerprint() == traj.fingerprint() and p.decodes == 0
    assert Pacing.from_dict(p.to_dict()).to_dict() == p.to_dict()
    for bad, match in [({}, "needs 'trajectory'"), ([], "needs 'trajectory'"), ({**good, "samples": None}, "malformed"),
                       ({k: v for k, v in good.items() if k != "distances"}, "needs 'trajectory'"),
                       ({**good, "samples": 3}, "malformed pacing record"), ({**good, "decodes": "many"}, "malformed"),
                       ({**good, "trajectory": {}}, "a trajectory file needs")]:  # fmt: skip
        with pytest.raises(SpecError, match=match):
            Pacing.from_dict(bad)


# -- Neighbours.top: the query index -------------------------------------------------------


def test_neighbours_top_refuses_a_query_it_does_not_have():
    """top(i) raised numpy's raw IndexError for a query index out of range or not an integer
    (Scrubber.frame(k) refuses such an index with an ArgumentError)."""
    import latentlab as ll

    bank = ll.tag(torch.eye(3), "audit40")
    nn = ll.nearest_neighbours(bank, bank, labels=["a", "b", "c"])
    assert [nn.top(i) for i in (0, 1, 2, -1, np.int64(1))] == ["a", "b", "c", "c", "b"] and nn.top() == "a"
    for bad in (3, -4, "0", 1.0, True, None):
        with pytest.raises(ll.ArgumentError, match=r"i must be the index of a query, an integer in \[0, 2\]"):
            nn.top(bad)


# -- resize_frames: frames are checked whatever size is -------------------------------------


def test_resize_frames_checks_frames_with_size_none():
    """The docstring says frames are checked as write_video checks its own; with size=None they
    came back unchecked and unconverted (floats of 5.0, a string, one (H, W, 3) image)."""
    from latentlab import ArgumentError
    from latentlab.jobs import resize_frames

    frames = np.zeros((2, 4, 4, 3), np.uint8)
    frames[1] = 255
    assert resize_frames(frames, None) is frames
    for same in (frames / 255.0, [frames[0], frames[1]], torch.from_numpy(frames)):
        out = resize_frames(same, None)
        assert out.dtype == np.uint8 and out.shape == (2, 4, 4, 3) and np.array_equal(out, frames)
    for bad in (np.full((1, 4, 4, 3), 5.0), "frames.png", frames[0]):
        with pytest.raises(ArgumentError, match="frames"):
            resize_frames(bad, None)
