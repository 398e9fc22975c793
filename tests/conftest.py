"""Shared test fixtures: offline, seeded, tiny models built in-process."""

from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest

# never reach for a model hub from the test suite
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def pytest_configure(config):
    import torch

    # the models under test are tiny: one thread avoids oversubscription on small CI machines
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    import torch

    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU; none on this machine")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def tiny_encoder():
    import latentlab as ll

    return ll.create_encoder("tiny")


@pytest.fixture(scope="session")
def tiny_decoder():
    import latentlab as ll

    return ll.create_decoder("tiny")


@pytest.fixture
def images(tmp_path):
    """Three small distinct PNGs on disk: a red disc, a blue square, a green gradient."""
    from PIL import Image, ImageDraw

    paths = []
    for name, draw_fn in (
        ("red_disc.png", lambda d: d.ellipse((16, 16, 48, 48), fill=(220, 30, 30))),
        ("blue_square.png", lambda d: d.rectangle((12, 12, 52, 52), fill=(30, 40, 220))),
    ):
        im = Image.new("RGB", (64, 64), (255, 255, 255))
        draw_fn(ImageDraw.Draw(im))
        p = tmp_path / name
        im.save(p)
        paths.append(p)
    grad = np.zeros((64, 64, 3), np.uint8)
    grad[..., 1] = np.linspace(0, 255, 64, dtype=np.uint8)[None, :]
    p = tmp_path / "green_gradient.png"
    Image.fromarray(grad).save(p)
    paths.append(p)
    return paths


class FakeDecoder:
    """A deterministic stand-in decoder for render-loop tests: the frame's colour comes from
    the embedding, its texture from the starting noise. Counts the frames it decodes."""

    def __new__(cls, *args, **kwargs):
        from latentlab.decoders.base import Decoder

        class _Fake(Decoder):
            name = "fake"
            space = "fake-space"
            dim = 8
            resolution = 8
            default_steps = 1
            default_guidance = 1.0
            default_batch_size = 3

            def __init__(self):
                self.calls: list[int] = []

            def noise_shape(self):
                return (1, 8, 8)

            def _decode(self, embeddings, noise, *, seeds, steps, guidance_scale):
                import torch

                self.calls.append(embeddings.shape[0])
                base = (embeddings[:, :3] * 0.5 + 0.5)[:, :, None, None]  # (b, 3, 1, 1) in [0, 1]
                tex = torch.tanh(noise) * 0.1  # (b, 1, 8, 8)
                img = (base + tex).clamp(0, 1).permute(0, 2, 3, 1)
                return (img.numpy() * 255).round().astype("uint8")

        return _Fake()


@pytest.fixture
def fake_decoder():
    return FakeDecoder()


class RecordingBar:
    """Stands in for ``tqdm.auto.tqdm``: each bar made is kept in ``made`` with where it
    started (``initial``), how far it went (``n``), its ``desc`` and whether it was ``shown``."""

    made: list = []

    def __init__(self, iterable=None, *args, total=None, initial=0, desc=None, disable=False, **kwargs):
        self.iterable, self.total, self.initial, self.n = iterable, total, initial, initial
        self.desc, self.shown = desc, not disable
        RecordingBar.made.append(self)

    def __iter__(self):
        return iter(self.iterable)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n=1):
        self.n += n

    def refresh(self):
        pass

    def close(self):
        pass


@pytest.fixture
def recording_bars(monkeypatch):
    """The progress bars made while the test runs (see :class:`RecordingBar`)."""
    import tqdm.auto

    RecordingBar.made = []
    monkeypatch.setattr(tqdm.auto, "tqdm", RecordingBar)
    return RecordingBar.made


@contextlib.contextmanager
def folder_held_by_another_process(folder):
    """A second process holds ``folder``'s render lock (latentlab.render.folder_lock) until the
    block ends; yields that process's pid."""
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from latentlab.render import folder_lock\n"
         f"with folder_lock({str(folder)!r}):\n print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.communicate("")  # the holder ends; the system releases its lock


def animated_frames(source) -> tuple[list[np.ndarray], list[int]]:
    """The RGB frames and each frame's duration (ms) of an animated gif or webp (a path or its bytes)."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
        frames, durations = [], []
        for k in range(im.n_frames):
            im.seek(k)
            frames.append(np.asarray(im.convert("RGB")))
            durations.append(im.info["duration"])
    return frames, durations


def grey_frames(T: int = 5, size: int = 8) -> np.ndarray:
    """T frames, frame k filled with grey level 40 * k and a white top-left pixel."""
    f = np.zeros((T, size, size, 3), np.uint8)
    for k in range(T):
        f[k] = 40 * k
    f[:, 0, 0] = 255
    return f


def tiny_caption_net(text_dim: int = 12, seed: int = 0):
    """A small random mini decoder net that reads caption tokens of width ``text_dim`` (0: none),
    its output weights random (not zero), so what it reads shows in what it predicts."""
    import torch

    from latentlab.mini.models import DecoderConfig, MiniDecoderNet

    torch.manual_seed(seed)
    cfg = DecoderConfig(block_out_channels=(8, 16, 16), embed_dim=16, norm_num_groups=4, cross_attention_dim=16,
                        attention_heads=2, text_dim=text_dim)  # fmt: skip
    net = MiniDecoderNet(cfg).eval()
    with torch.no_grad():
        net.unet.conv_out.weight.normal_(0, 0.2)
    return net


def tiny_mini_decoder(resolution: int = 32, space: str | None = "latentlab-mini", upscaler=None):
    """A MiniDecoder on a small random net (random, not zero, output weights, so the embedding
    matters), for tests of mini's runtime that need no shipped weights."""
    import torch

    from latentlab.mini.models import DecoderConfig, MiniDecoderNet
    from latentlab.mini.runtime import MiniDecoder

    torch.manual_seed(0)
    cfg = DecoderConfig(block_out_channels=(8, 16, 16), embed_dim=16, norm_num_groups=4, cross_attention_dim=16,
                        attention_heads=2)  # fmt: skip
    net = MiniDecoderNet(cfg)
    with torch.no_grad():
        net.unet.conv_out.weight.normal_(0, 0.2)
    return MiniDecoder(net, resolution=resolution, space=space, upscaler=upscaler)


def write_fault(exc: str) -> BaseException:
    """What stops a write in the fault-injection tests: ``"ctrl-c"`` or a full disk (``"full disk"``)."""
    import errno

    return KeyboardInterrupt() if exc == "ctrl-c" else OSError(errno.ENOSPC, "No space left on device")


def cut_write_text(monkeypatch, exc: str, keep: int) -> None:
    """Patch ``Path.write_text`` (through ``monkeypatch``, or a ``monkeypatch.context()``) to
    write only the first ``keep`` characters and then stop as :func:`write_fault` ``(exc)`` does:
    a write cut short by a Ctrl-C or a full disk."""
    from pathlib import Path

    real = Path.write_text

    def cut(self, text, *a, **k):
        real(self, text[:keep], *a, **k)
        raise write_fault(exc)

    monkeypatch.setattr(Path, "write_text", cut)


@pytest.fixture
def ctrl_c_raises():
    """Ctrl-C raising KeyboardInterrupt, as in a terminal, even where this test run inherited it
    ignored (pytest started in the background, as by a script's ``&``)."""
    import signal

    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def ramp_frames(n: int = 3, h: int = 4, w: int = 4) -> np.ndarray:
    """``n`` uint8 frames ``(h, w, 3)`` of a repeating ramp (every pixel differs from its neighbours)."""
    return (np.arange(n * h * w * 3) % 251).astype(np.uint8).reshape(n, h, w, 3)


@pytest.fixture
def no_models(monkeypatch):
    """Loading any model fails the test (a refusal must come first)."""
    import latentlab as ll
    from latentlab import presets

    for mod in (ll, presets):
        for name in ("create_encoder", "create_decoder", "create_prior"):
            monkeypatch.setattr(mod, name, lambda *a, **k: pytest.fail("a model was loaded"))


def twemoji_cache(root: "os.PathLike[str]", n: int = 3) -> None:
    """A tiny fetched twemoji source under ``root`` for ``build_index`` (no network)."""
    import json
    from pathlib import Path

    from PIL import Image

    root = Path(root)
    pkg = root / "raw" / "twemoji" / "package"
    (pkg / "img" / "twitter" / "64").mkdir(parents=True)
    meta = []
    for k, u in enumerate(["1F4F1", "1F600", "1F431", "1F436"][:n]):
        Image.new("RGBA", (64, 48), (60 * k, 100, 200, 255)).save(pkg / "img" / "twitter" / "64" / f"{u.lower()}.png")
        meta.append({"unified": u, "name": f"thing {k}", "image": f"{u.lower()}.png", "category": "Objects"})
    (pkg / "emoji.json").write_text(json.dumps(meta))
    (root / "raw" / "twemoji" / ".fetched.json").write_text("{}")


@pytest.fixture
def no_file_locks(monkeypatch):
    """A file system whose flock answers ENOLCK (an NFS mount without its lock service)."""
    import errno

    fcntl = pytest.importorskip("fcntl")

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)


def ctrl_c_after_call(code, n: int):
    """A ``sys.settrace`` tracer that raises KeyboardInterrupt in the frame of ``code`` just after
    its ``n``-th call returns (where CPython runs a pending signal's handler), and the list whose
    one item counts the calls seen: ``tracer, count = ctrl_c_after_call(f.__code__, 3)``."""
    import dis

    calls = {i.offset for i in dis.get_instructions(code) if i.opname.startswith("CALL")}
    count = [0]

    def local(frame, event, arg):
        frame.f_trace_opcodes = True
        if event == "opcode":
            if local.after_call:
                count[0] += 1
                if count[0] == n:
                    raise KeyboardInterrupt
            local.after_call = frame.f_lasti in calls
        return local

    local.after_call = False

    def glob(frame, event, arg):
        if frame.f_code is code:
            frame.f_trace_opcodes = True
            return local
        return None

    return glob, count


@contextlib.contextmanager
def default_dtype(dtype):
    """torch's default dtype set to ``dtype`` for the block, as a notebook's
    ``torch.set_default_dtype(...)`` sets it; the caller's restored after."""
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def unit_rows(n: int, d: int, seed: int):
    """``n`` random float32 unit rows of size ``d``, the same for a seed whatever torch's default dtype."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=g, dtype=torch.float32), dim=-1)


def red_square(size: int = 32) -> np.ndarray:
    """A red square on a light grey ground, ``(size, size, 3)`` uint8."""
    im = np.full((size, size, 3), 235, np.uint8)
    im[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = (200, 30, 30)
    return im


def run_threads(*targets, timeout: float = 10) -> None:
    """Start a thread for each of ``targets`` and wait for them all (``timeout`` seconds each)."""
    import threading

    threads = [threading.Thread(target=f) for f in targets]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout)
