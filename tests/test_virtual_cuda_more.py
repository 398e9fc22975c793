"""GPU-only paths, more: the benchmark's device calls, refined inversion and the mini sampler under the
virtual CUDA device (tests/virtual_cuda.py), a GPU index past the machine's, the scrubber out of memory."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_mini_decoder
from hypothesis import given, settings
from hypothesis import strategies as st
from virtual_cuda import CUDA, virtual_cuda

def _render_speed():
    import latentlab

    root = Path(latentlab.__file__).resolve().parents[1]  # (ROOT, or the checkout whose latentlab is imported)
    spec = importlib.util.spec_from_file_location("render_speed_e", root / "benchmarks" / "render_speed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# -- benchmarks/render_speed.py --device cuda:N ------------------------------------------------


@pytest.mark.parametrize("device", ["cuda:1", "cuda"])
def test_render_speed_times_and_measures_the_gpu_it_runs_on(monkeypatch, device):
    """--device cuda:1: the timing waited for, and the peak memory was reset and read on, the
    current device (cuda:0), not the benchmark's: kernels still running on cuda:1 were not timed,
    and its peak memory column was cuda:0's. Each call now names the benchmark's device."""
    bench = _render_speed()
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(("sync", device)))
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: calls.append(("reset", device)))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: calls.append(("peak", device)) or 2**30)
    out, best = bench.timed(lambda: "frames", device, 2)
    bench._reset_peak(device)
    assert out == "frames" and best >= 0 and bench._peak_gb(device) == 1.0
    assert calls == [("sync", device)] * 4 + [("reset", device), ("peak", device)]


def test_render_speed_on_the_cpu_touches_no_cuda_call(monkeypatch):
    bench = _render_speed()

    def no(*a, **k):
        raise AssertionError("a CUDA call on a CPU run")

    for name in ("synchronize", "empty_cache", "reset_peak_memory_stats", "max_memory_allocated"):
        monkeypatch.setattr(torch.cuda, name, no)
    bench.timed(lambda: None, "cpu", 1)
    bench._reset_peak("cpu")
    assert bench._peak_gb("cpu") is None


# -- kept: promises that hold on both (refined inversion on a GPU; sample_decoder's dtype) ------


def test_refined_inversion_on_a_gpu_gives_the_cpus_noise(monkeypatch):
    """MiniDecoder.invert(refine > 0) with its net on (virtual) CUDA: Adam, the best-noise
    bookkeeping and the length rescaling stay on the decoder's device, and the noise comes back
    on the CPU, equal to the all-CPU run's."""
    from latentlab.space import tag

    dec = tiny_mini_decoder()
    img = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    z = tag(torch.nn.functional.normalize(torch.randn(1, 16, generator=torch.Generator().manual_seed(1)), dim=-1), dec.space)
    want = dec.invert(img, z, steps=1, refine=1, progress=False)
    # (Adam asks the accelerator whether a CUDA graph is being captured: there is none to ask here)
    monkeypatch.setattr(torch.optim.Optimizer, "_accelerator_graph_capture_health_check", lambda self: None)
    with virtual_cuda():
        dec.net.to("cuda")
        dec.device = CUDA
        assert next(dec.net.parameters()).device == CUDA
        got = dec.invert(img, tag(z.to("cuda"), dec.space), steps=1, refine=1, progress=False)
    assert got.device.type == "cpu" and got.dtype == torch.float32
    assert torch.equal(got, want)


@settings(derandomize=True, max_examples=4, deadline=None)
@given(st.sampled_from([torch.float32, torch.float64]), st.integers(0, 2**16))
def test_sample_decoder_returns_noises_dtype_property(dtype, seed):
    """sample_decoder's documented promise: images in [-1, 1], in noise's dtype (its docstring
    said float32 whatever the noise)."""
    from latentlab.mini.models import sample_decoder

    net = tiny_mini_decoder().net.to(dtype)
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(1, 3, 32, 32, generator=g, dtype=dtype)
    emb = torch.nn.functional.normalize(torch.randn(1, 16, generator=g, dtype=dtype), dim=-1)
    with torch.inference_mode():
        out = sample_decoder(net, emb, noise, steps=2, guidance_scale=2.0)
    assert out.dtype == dtype and out.device == noise.device
    assert out.shape == noise.shape and float(out.abs().max()) <= 1.0


# -- a CUDA device index this machine does not have ------------------------------------------


def _one_gpu(monkeypatch):
    """A machine with one CUDA GPU, as torch sees it (nothing may reach it: its first use raises)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


@pytest.mark.parametrize("part", ["encoder tiny", "encoder mini", "decoder tiny", "decoder mini", "prior mini",
                                  "hf_clip"])  # fmt: skip
def test_a_gpu_index_past_the_machines_is_refused_by_name_before_loading(monkeypatch, part):
    """device='cuda:1' on a machine with one GPU: the weights were read (minutes for a real
    preset), then moving them raised torch's raw "invalid device ordinal" (here: "Found no NVIDIA
    driver"); now an ArgumentError naming the device and the GPUs there are, before any loading."""
    import latentlab as ll
    from latentlab.errors import ArgumentError
    from latentlab.hf_clip import as_device

    _one_gpu(monkeypatch)
    kind, _, preset = part.partition(" ")
    make = {"encoder": ll.create_encoder, "decoder": ll.create_decoder, "prior": getattr(ll, "create_prior", None),
            "hf_clip": as_device}[kind]  # fmt: skip
    with pytest.raises(ArgumentError, match=r"'cuda:1'.* 1 CUDA GPU\(s\) \(cuda:0 to cuda:0\)") as e:
        make(preset, device="cuda:1") if preset else make("cuda:1")
    assert "or use --device cpu." in ll.cli._flag_advice(str(e.value))  # (said as the flag on the command line)
    assert ll.encoders._resolve_device("cuda:0") == torch.device("cuda", 0)  # (the GPU there is, and "cuda", pass)
    assert as_device("cuda") == torch.device("cuda")


def test_a_gpu_index_with_cuda_available_but_no_gpu_is_said_in_words(monkeypatch):
    """torch can say CUDA is available and count no device (a CUDA_VISIBLE_DEVICES that names
    none); the refusal read 'this machine has 0 CUDA GPU(s) (cuda:0 to cuda:-1)'."""
    import latentlab as ll
    from latentlab.errors import ArgumentError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(ArgumentError, match=r"reports CUDA available with no GPU \(check CUDA_VISIBLE_DEVICES\); use "
                                            r"device='cpu'\.$") as e:  # fmt: skip
        ll.encoders._resolve_device("cuda:0")
    assert "cuda:-1" not in str(e.value)
    assert ll.cli._flag_advice(str(e.value)).endswith("use --device cpu.")  # (said as the flag on the command line)


# -- the scrubber on a GPU that a batch does not fit ------------------------------------------


def _oom_past(limit: int):
    """A FakeDecoder whose GPU holds ``limit`` frames a call: a larger batch raises torch's OOM."""
    from conftest import FakeDecoder

    dec = FakeDecoder()
    decode = dec._decode

    def _decode(embeddings, noise, **kw):
        if embeddings.shape[0] > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return decode(embeddings, noise, **kw)

    dec._decode = _decode
    return dec


def test_scrubber_frames_retry_a_batch_that_does_not_fit_halved(monkeypatch):
    """Scrubber.frames / static_view, whose batch is the decoder's default_batch_size (3 here,
    set by no argument of the scrubber), on a GPU that holds 1 frame a call: torch's raw
    OutOfMemoryError, where render of the same path retries halved; now the same frames as render."""
    import latentlab as ll
    from latentlab.space import tag

    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    z = tag(torch.nn.functional.normalize(torch.randn(5, 8, generator=torch.Generator().manual_seed(2)), dim=-1), "fake-space")
    want = ll.render(z, _oom_past(1), steps=1, progress=False)
    dec = _oom_past(1)
    s = ll.Scrubber(z, dec)
    assert np.array_equal(s.frames(progress=False), want)
    assert dec.calls == [1] * 5  # (the batches of 3, then of 1 after 1 frame of 3 did not fit)
    two = _oom_past(2)
    assert isinstance(ll.Scrubber(z, two).static_view(progress=False), ll.notebook.ImageView)
    assert sum(two.calls) == 5 and max(two.calls) <= 2


def test_scrubber_frame_that_does_not_fit_says_what_to_do(monkeypatch):
    """Scrubber.frame(k) on a GPU that holds no frame: a LatentlabError with the fixes (render's),
    not torch's raw OutOfMemoryError; other errors pass through as they were."""
    import latentlab as ll
    from latentlab.errors import LatentlabError
    from latentlab.space import tag

    z = tag(torch.nn.functional.normalize(torch.randn(2, 8, generator=torch.Generator().manual_seed(3)), dim=-1), "fake-space")
    s = ll.Scrubber(z, _oom_past(0))
    with pytest.raises(LatentlabError, match="out of memory rendering a single frame.*cpu_offload=True"):
        s.frame(1)
    assert s.misses == 1 and not s._cache
