"""One model object used by several threads at once: each thread gets what it gets alone, and the model is left as it was."""

from __future__ import annotations

import threading

import numpy as np
import torch

from conftest import run_threads, tiny_mini_decoder


def _unit(n, d, seed):
    return torch.nn.functional.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


def _noise(dec, seeds):
    from latentlab.render import make_noise

    return make_noise(tuple(dec.noise_shape()), list(seeds))


def test_mini_overlapping_refines_keep_the_shared_weights_frozen(monkeypatch):
    """Two threads refining inverted noise with one mini decoder: each one's refine froze the
    net's weights (requires_grad off) and the first to end unfroze them under the other, whose
    backward then computed the weights' gradients and left them on the shared net (``.grad``,
    a copy of every weight, kept). Now the freeze lasts until the last refine ends; each thread
    still gets the noise it gets alone, and the net ends as it was."""
    import latentlab.mini.runtime as rt

    dec = tiny_mini_decoder()
    z = _unit(2, 16, 3)
    images = dec.decode(z, _noise(dec, [0, 1]), seeds=[0, 1], steps=2)
    alone = [dec.invert(images[i : i + 1], z[i : i + 1], steps=2, refine=2, progress=False) for i in range(2)]
    real = rt.sample_decoder
    a_waits, b_in, a_done = threading.Event(), threading.Event(), threading.Event()

    def paused(*args, **kwargs):  # A pauses inside its refine until B is inside its own; B then waits for A's end
        name = threading.current_thread().name
        if torch.is_grad_enabled() and name == "A" and not a_waits.is_set():
            a_waits.set()
            b_in.wait(5)
        if torch.is_grad_enabled() and name == "B" and not b_in.is_set():
            b_in.set()
            a_done.wait(5)
        return real(*args, **kwargs)

    monkeypatch.setattr(rt, "sample_decoder", paused)
    got = {}

    def a():
        try:
            got["A"] = dec.invert(images[0:1], z[0:1], steps=2, refine=2, progress=False)
        finally:
            a_done.set()

    def b():
        a_waits.wait(5)
        got["B"] = dec.invert(images[1:2], z[1:2], steps=2, refine=2, progress=False)

    threads = [threading.Thread(target=a, name="A"), threading.Thread(target=b, name="B")]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert b_in.is_set() and a_done.is_set()  # the interleaving happened
    assert [p for p in dec.net.parameters() if p.grad is not None] == []
    assert all(p.requires_grad for p in dec.net.parameters())
    assert torch.equal(got["A"], alone[0]) and torch.equal(got["B"], alone[1])


def test_mini_caption_clip_loads_once_when_first_captioned_decodes_overlap(monkeypatch, tmp_path):
    """CaptionStates builds the mini CLIP at the first captioned decode: two threads' first
    calls at once each built it (twice the memory and time, two open_clip builds at once,
    which create_* never run: models load one at a time). Now the second waits for the first's."""
    import latentlab.encoders as enc
    import latentlab.mini.models as mm
    from latentlab.mini.runtime import CaptionStates

    clip_file = tmp_path / "mini_clip.safetensors"
    clip_file.write_bytes(b"x")
    builds, second = [], threading.Event()

    def fake_create_clip(path, device="cpu"):
        builds.append(threading.current_thread().name)
        if len(builds) == 2:
            second.set()
        else:
            second.wait(0.5)  # (a second build, if there is one, starts meanwhile)
        return object(), None, lambda captions: torch.zeros(len(captions), 3, dtype=torch.long)

    monkeypatch.setattr(mm, "create_clip", fake_create_clip)
    monkeypatch.setattr(mm, "text_token_states", lambda m, t: (torch.zeros(len(t), 3, 4), torch.ones(len(t), 3, dtype=torch.bool)))
    monkeypatch.setattr(enc, "_warn_truncated", lambda *a, **k: None)
    states = CaptionStates(clip_file)
    out = []
    run_threads(lambda: out.append(states(["a red circle"])), lambda: out.append(states(["a blue square"])))
    assert len(out) == 2
    assert len(builds) == 1, builds


def test_mini_threads_sharing_one_decoder_get_the_frames_they_get_alone():
    """docs/concepts.md ("Threads"): mini runs calls at once, and each thread gets the frames it
    would get alone (guards the promise; passes before and after this audit)."""
    dec = tiny_mini_decoder()
    z = _unit(3, 16, 5)
    alone = [dec.decode(z[i : i + 1], _noise(dec, [i]), seeds=[i], steps=2) for i in range(3)]
    got: dict[int, np.ndarray] = {}

    def job(i):
        return lambda: got.__setitem__(i, dec.decode(z[i : i + 1], _noise(dec, [i]), seeds=[i], steps=2))

    for _ in range(2):
        run_threads(*(job(i) for i in range(3)))
        assert all(np.array_equal(got[i], alone[i]) for i in range(3))
