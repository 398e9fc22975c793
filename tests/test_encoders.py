"""Tests of latentlab.encoders: offline, seeded, on the tiny random open_clip model."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image, ImageOps

from latentlab.encoders import EmbeddingCache, Encoder
from latentlab.errors import ArgumentError, LatentlabError, ModelNotAvailableError, SpecError
from latentlab.presets import Preset, create_encoder, get_preset
from latentlab.space import space_of

ATOL = 1e-5


@pytest.fixture(scope="module")
def enc() -> Encoder:
    return create_encoder("tiny")


def _tiny_seed(seed: int, **kwargs) -> Encoder:
    """The tiny encoder with another seed (create_encoder cannot override a preset's spec args)."""
    p = get_preset("tiny")
    return create_encoder(replace(p, encoder={**p.encoder, "seed": seed}), **kwargs)


def _picture(h: int = 40, w: int = 48, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _counting(monkeypatch: pytest.MonkeyPatch, model: torch.nn.Module, method: str) -> list[int]:
    """Patch ``model.<method>`` to record the batch size of every call."""
    calls: list[int] = []
    original = getattr(model, method)

    def wrapper(x, *args, **kwargs):
        calls.append(int(x.shape[0]))
        return original(x, *args, **kwargs)

    monkeypatch.setattr(model, method, wrapper)
    return calls


# -- basic contract ----------------------------------------------------------------------


def test_text_embeddings_shape_norm_dtype_tag(enc: Encoder) -> None:
    z = enc.encode_text(["a red apple", "a green pear", ""])
    assert z.shape == (3, 32) and z.dtype == torch.float32 and z.device.type == "cpu"
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(3), atol=1e-5, rtol=0)
    assert space_of(z) == "tiny-random"
    assert not z.requires_grad
    assert enc.dim == 32 and enc.image_size == 32 and enc.space == "tiny-random" and enc.name == "tiny"


def test_image_embeddings_shape_norm_dtype_tag(enc: Encoder) -> None:
    z = enc.encode_image([_picture(seed=1), _picture(seed=2)])
    assert z.shape == (2, 32) and z.dtype == torch.float32
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(2), atol=1e-5, rtol=0)
    assert space_of(z) == "tiny-random"
    assert not torch.allclose(z[0], z[1], atol=1e-3)  # different pictures, different embeddings


def test_same_seed_identical_weights_and_global_rng_untouched(enc: Encoder) -> None:
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    again = create_encoder("tiny")
    assert torch.equal(torch.random.get_rng_state(), before)
    texts = ["a cat", "a dog"]
    assert torch.equal(enc.encode_text(texts), again.encode_text(texts))
    pic = _picture()
    assert torch.equal(enc.encode_image(pic), again.encode_image(pic))
    other = _tiny_seed(1)
    assert not torch.allclose(enc.encode_text(texts), other.encode_text(texts), atol=1e-3)
    assert other.fingerprint() == "tiny-seed1" and enc.fingerprint() == "tiny-seed0"


def test_describe_is_json_serialisable(enc: Encoder) -> None:
    d = json.loads(json.dumps(enc.describe()))
    assert d["class"] == "Encoder" and d["name"] == "tiny" and d["space"] == "tiny-random"
    assert d["dim"] == 32 and d["fingerprint"] == "tiny-seed0" and d["pretrained"] is None
    assert "model" in d and d["dtype"] == "float32"


# -- every input type gives the same embedding -------------------------------------------


def test_every_input_type_agrees(enc: Encoder, tmp_path: Path) -> None:
    pic = _picture()
    path = tmp_path / "pic.png"
    Image.fromarray(pic).save(path)
    ref = enc.encode_image(str(path))
    chw = torch.from_numpy(pic).permute(2, 0, 1)
    variants = {
        "Path": path,
        "PIL": Image.fromarray(pic),
        "uint8 array": pic,
        "float array": pic.astype(np.float32) / 255,
        "float64 array": pic.astype(np.float64) / 255,
        "float tensor": chw.float() / 255,
        "batch tensor": (chw.float() / 255).unsqueeze(0),
        "uint8 tensor": chw,
        "RGBA opaque": Image.fromarray(np.dstack([pic, np.full(pic.shape[:2], 255, np.uint8)])),
        "list": [path],
    }
    for what, x in variants.items():
        z = enc.encode_image(x)
        assert z.shape == (1, 32), what
        torch.testing.assert_close(z, ref, atol=ATOL, rtol=0, msg=f"{what} differs from the path")


def test_grey_palette_and_alpha_conversions(enc: Encoder) -> None:
    grey = _picture()[:, :, 0]
    z_l = enc.encode_image(Image.fromarray(grey, mode="L"))
    torch.testing.assert_close(enc.encode_image(grey), z_l, atol=ATOL, rtol=0)
    torch.testing.assert_close(enc.encode_image(np.repeat(grey[:, :, None], 3, axis=2)), z_l, atol=ATOL, rtol=0)
    # a fully transparent image is white (alpha composited on white)
    clear = np.zeros((40, 48, 4), np.uint8)
    white = np.full((40, 48, 3), 255, np.uint8)
    torch.testing.assert_close(enc.encode_image(Image.fromarray(clear, mode="RGBA")), enc.encode_image(white), atol=ATOL, rtol=0)
    torch.testing.assert_close(enc.encode_image(clear), enc.encode_image(white), atol=ATOL, rtol=0)
    # palette image
    pic = Image.fromarray(_picture()).convert("P")
    torch.testing.assert_close(enc.encode_image(pic), enc.encode_image(pic.convert("RGB")), atol=ATOL, rtol=0)


def test_exif_orientation_is_applied(enc: Encoder, tmp_path: Path) -> None:
    pic = _picture(32, 48)
    img = Image.fromarray(pic)
    exif = img.getexif()
    exif[0x0112] = 3  # rotate 180
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif.tobytes(), quality=100)
    with Image.open(path) as im:
        upright = np.asarray(im.convert("RGB").rotate(180))
    torch.testing.assert_close(enc.encode_image(path), enc.encode_image(upright), atol=ATOL, rtol=0)


def test_batch_size_invariance(enc: Encoder) -> None:
    torch.manual_seed(0)
    images = torch.rand(5, 3, 40, 40)
    a = enc.encode_image(images, batch_size=2)
    b = enc.encode_image(images, batch_size=5)
    c = enc.encode_image([images[i] for i in range(5)], batch_size=1)
    torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    torch.testing.assert_close(a, c, atol=ATOL, rtol=0)
    texts = [f"prompt number {i}" for i in range(5)]
    torch.testing.assert_close(enc.encode_text(texts, batch_size=2), enc.encode_text(texts, batch_size=5), atol=ATOL, rtol=0)


def test_batches_go_through_the_model_in_chunks(enc: Encoder, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counting(monkeypatch, enc.model, "encode_image")
    enc.encode_image(torch.rand(5, 3, 33, 33), batch_size=2, progress=True)
    assert calls == [2, 2, 1]


def test_text_encoding(enc: Encoder) -> None:
    z = enc.encode_text(["a cat", "a dog", "a cat"])
    assert torch.equal(z[0], z[2])
    assert float(z[0] @ z[1]) < 1 - 1e-4
    # alone vs in a batch: equal up to float rounding (CPU kernels may differ with batch size)
    torch.testing.assert_close(enc.encode_text("a cat"), z[:1], atol=1e-6, rtol=0)
    assert enc.encode_text("").shape == (1, 32)  # the unconditional caption is allowed
    assert enc.encode_text(("a", "b")).shape == (2, 32)


def test_low_precision_model_returns_float32(enc: Encoder) -> None:
    bf = create_encoder("tiny", dtype=torch.bfloat16)
    z = bf.encode_text(["a cat", "a dog"])
    assert z.dtype == torch.float32
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(2), atol=1e-5, rtol=0)
    assert float((z * enc.encode_text(["a cat", "a dog"])).sum(-1).min()) > 0.95  # same model, lower precision


# -- errors ------------------------------------------------------------------------------


def test_missing_and_corrupt_files(enc: Encoder, tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(ArgumentError, match="not found") as e:
        enc.encode_image(missing)
    assert str(missing) in str(e.value)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not a picture at all")
    with pytest.raises(ArgumentError, match="could not read") as e:
        enc.encode_image([_picture(), bad])
    assert str(bad) in str(e.value) and "images[1]" in str(e.value)
    truncated = tmp_path / "trunc.png"
    Image.fromarray(_picture()).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:120])
    with pytest.raises(ArgumentError, match="could not read"):
        enc.encode_image(truncated)
    with pytest.raises(ArgumentError, match="is a folder; pass its pictures"):  # (said "not a file" before 2026-12-06)
        enc.encode_image(tmp_path)


@pytest.mark.parametrize(
    ("images", "pattern"),
    [
        ([], "empty list"),
        (42, "unsupported image type int"),
        ([_picture(), {"a": 1}], r"images\[1\]: unsupported image type dict"),
        (b"\x89PNG", "unsupported image type bytes"),
        (np.zeros((8, 8, 5), np.uint8), "must have shape"),
        (np.zeros((3, 8, 9), np.uint8), "channels-first"),
        (np.zeros((2, 3, 4, 5, 6), np.uint8), "must have shape"),
        (np.zeros((0, 8, 3), np.uint8), "empty image"),
        (np.full((8, 8, 3), 200.0, np.float32), "divide by 255"),
        (np.full((8, 8, 3), -0.5, np.float32), r"\(x \+ 1\) / 2"),
        (np.full((8, 8, 3), np.nan, np.float32), "NaN"),
        (np.zeros((8, 8, 3), np.int64), "astype"),
        (torch.zeros(8, 9, 3), "channels-last"),
        (torch.zeros(0, 3, 8, 8), "empty"),
        (torch.zeros(3, 8, 8, dtype=torch.int32), "dtype"),
        (torch.zeros(5), "must have shape"),
        # an audit (2026-12-06): a channels-first batch was told a.transpose(1, 2, 0), which fails on 4 axes,
        (np.zeros((2, 3, 8, 9), np.uint8), r"got \(2, 3, 8, 9\) \(images of shape \(3, 8, 9\)\)\. It looks channels-first: use a\.transpose\(0, 2, 3, 1\)"),
        # and a [0, 1] picture with resampling overshoot was told (x + 1) / 2, which moves every colour
        (np.linspace(-0.16, 0.86, 8 * 8 * 3, dtype=np.float32).reshape(8, 8, 3), r"overshoot.*clip it to \[0, 1\]"),
        (np.linspace(0.0, 1.05, 8 * 8 * 3, dtype=np.float32).reshape(8, 8, 3), r"overshoot.*clip it to \[0, 1\] \(np"),  # not "divide by 255"
    ],
)
def test_bad_images(enc: Encoder, images: object, pattern: str) -> None:
    with pytest.raises(ArgumentError, match=pattern):
        enc.encode_image(images)


@pytest.mark.parametrize(
    ("texts", "pattern"),
    [([], "empty list"), (None, "string or a list"), (["ok", 3], r"texts\[1\] must be a string"), (b"x", "string"),
     # a dict encoded its keys, a set in an order that changes from run to run
     ({"a cat": 1, "a dog": 2}, "got dict"), ({"a cat", "a dog"}, "got set")],
)
def test_bad_texts(enc: Encoder, texts: object, pattern: str) -> None:
    with pytest.raises(ArgumentError, match=pattern):
        enc.encode_text(texts)  # type: ignore[arg-type]


def test_bad_arguments(enc: Encoder) -> None:
    with pytest.raises(ArgumentError, match="batch_size"):
        enc.encode_text("a", batch_size=0)
    with pytest.raises(ArgumentError, match="batch_size"):
        enc.encode_image(_picture(), batch_size=2.5)  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="dtype"):
        create_encoder("tiny", dtype=torch.int8)
    with pytest.raises(ArgumentError, match="device='meta' holds no weights"):  # 100 torch warnings, then a raw error
        create_encoder("tiny", device="meta")
    with pytest.raises(ArgumentError, match="devcie"):
        create_encoder("tiny", devcie="cpu")
    with pytest.raises(ArgumentError, match="cache"):
        enc.cache = 3  # type: ignore[assignment]
    if not torch.cuda.is_available():
        with pytest.raises(ArgumentError, match="CUDA is not available"):
            create_encoder("tiny", device="cuda")


# -- cache -------------------------------------------------------------------------------


def test_cache_hits_skip_the_model(enc: Encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cached = create_encoder("tiny", cache=EmbeddingCache(tmp_path / "cache"))
    calls = _counting(monkeypatch, cached.model, "encode_image")
    pics = [tmp_path / f"p{i}.png" for i in range(3)]
    for i, p in enumerate(pics):
        Image.fromarray(_picture(seed=i)).save(p)
    arr = _picture(seed=9)

    first = cached.encode_image([*pics, arr])
    assert sum(calls) == 4
    torch.testing.assert_close(first, enc.encode_image([*pics, arr]), atol=ATOL, rtol=0)  # the cache changes nothing
    second = cached.encode_image([*pics, arr])
    assert sum(calls) == 4  # all hits: the model was not called
    assert torch.equal(first, second) and space_of(second) == "tiny-random"

    renamed = tmp_path / "renamed.png"
    pics[0].rename(renamed)
    assert torch.equal(cached.encode_image(renamed)[0], first[0]) and sum(calls) == 4

    # in-memory images are keyed by their pixels: the same picture as a tensor hits too
    same = torch.from_numpy(arr).permute(2, 0, 1).float() / 255
    assert torch.equal(cached.encode_image(same)[0], first[3]) and sum(calls) == 4

    # a partial hit sends only the new picture to the model
    mixed = cached.encode_image([pics[1], _picture(seed=10), pics[2]])
    assert calls[-1] == 1 and sum(calls) == 5
    assert torch.equal(mixed[0], first[1]) and torch.equal(mixed[2], first[2])

    assert len(cached.cache) == 5
    assert not list((tmp_path / "cache").rglob("*.tmp"))  # atomic writes leave nothing behind


def test_text_cache_and_path_assignment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    e = create_encoder("tiny")
    e.cache = tmp_path / "c"  # a path becomes an EmbeddingCache
    assert isinstance(e.cache, EmbeddingCache)
    calls = _counting(monkeypatch, e.model, "encode_text")
    a = e.encode_text(["a cat", "a dog"])
    b = e.encode_text(["a dog", "a cat"])
    assert calls == [2]
    assert torch.equal(a[0], b[1]) and torch.equal(a[1], b[0])
    assert e.cache.hits == 2 and e.cache.misses == 2


def test_cache_keys_depend_on_the_weights(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    a = create_encoder("tiny", cache=cache)
    b = _tiny_seed(1, cache=cache)
    za, zb = a.encode_text("a cat"), b.encode_text("a cat")
    assert cache.hits == 0 and len(cache) == 2
    assert not torch.allclose(za, zb, atol=1e-3)


def test_corrupt_cache_entry_is_a_miss(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    e = create_encoder("tiny", cache=cache)
    z = e.encode_text("a cat")
    key = EmbeddingCache.make_key(e.fingerprint(), "text", "a cat")
    assert key in cache
    cache.path(key).write_bytes(b"garbage")
    assert torch.equal(e.encode_text("a cat"), z)  # recomputed, and rewritten
    assert cache.get(key) is not None
    np.save(cache.path(key), np.ones(7, np.float32))  # wrong size: a miss too
    assert cache.get(key, dim=32) is None
    cache.clear()
    assert len(cache) == 0


def test_cache_directory_must_not_be_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ArgumentError, match="not a directory"):
        EmbeddingCache(f)


# -- loading open_clip weights -----------------------------------------------------------


def test_pretrained_tag_offline_raises_model_not_available(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    attempts: list[object] = []

    def no_network(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    with pytest.raises(ModelNotAvailableError) as e:
        Encoder.from_open_clip("ViT-B-32", "laion2b_s34b_b79k")
    msg = str(e.value)
    assert "ViT-B-32" in msg and "laion2b_s34b_b79k" in msg and "HF_HUB_OFFLINE" in msg
    assert "hf download" in msg and "checkpoint=" in msg
    assert str(tmp_path / "hf") in msg  # HF_HOME is respected
    assert attempts == []  # nothing went to the network
    with pytest.raises(ArgumentError, match="Known tags"):
        Encoder.from_open_clip("ViT-B-32", "no-such-tag")
    with pytest.raises(ArgumentError, match="unknown open_clip model"):
        Encoder.from_open_clip("ViT-Q-99", "openai")
    with pytest.raises(ArgumentError, match="pretrained= .* or checkpoint="):
        Encoder.from_open_clip("ViT-B-32")


def test_openai_weights_get_their_quickgelu_activation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The OpenAI ViT-L/14 weights were trained with QuickGELU. The tag is resolved to a local
    file here, so open_clip never sees it: the loader must ask for QuickGELU itself, or the
    embeddings differ from those the Karlo / SD unCLIP-L decoders were trained on."""
    import open_clip

    import latentlab.encoders as E
    from latentlab.presets import get_preset

    for name in ("karlo", "sd21-unclip-l"):
        cfg = get_preset(name).encoder
        assert open_clip.get_model_config(cfg["model"])["quick_gelu"] is True, name
    seen: list[dict] = []

    def stop(name, **kwargs):
        seen.append({"name": name, **kwargs})
        raise RuntimeError("stop before loading")

    fake = tmp_path / "w.safetensors"
    monkeypatch.setattr(E, "_resolve_pretrained", lambda m, p, c: (str(fake), open_clip.get_pretrained_cfg(m, p)))
    monkeypatch.setattr(open_clip, "create_model_and_transforms", stop)
    for model in ("ViT-L-14", "ViT-L-14-quickgelu"):
        with pytest.raises(ModelNotAvailableError):
            Encoder.from_open_clip(model, "openai")
    assert [s.get("force_quick_gelu", False) for s in seen] == [True, False]  # the -quickgelu config has it already
    with pytest.raises(ModelNotAvailableError):
        Encoder.from_open_clip("ViT-B-32", "laion2b_s34b_b79k")  # trained with GELU: nothing forced
    assert "force_quick_gelu" not in seen[-1]


def _save_tiny(enc: Encoder, tmp_path: Path, name: str) -> tuple[Path, Path]:
    from safetensors.torch import save_file

    from latentlab.encoders import _tiny_config

    config = tmp_path / f"{name}.json"
    config.write_text(json.dumps(_tiny_config(32)))
    ckpt = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in enc.model.state_dict().items()}, str(ckpt))
    return config, ckpt


def test_config_and_checkpoint_round_trip(enc: Encoder, tmp_path: Path) -> None:
    config, ckpt = _save_tiny(enc, tmp_path, "roundtrip-tiny")
    loaded = Encoder.from_open_clip("roundtrip-tiny", config=config, checkpoint=ckpt)
    sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert loaded.space == f"open_clip/roundtrip-tiny/weights.safetensors@{sha[:12]}"
    assert re.fullmatch(f"sha256:{sha}:cfg-[0-9a-f]{{16}}", loaded.fingerprint())
    pic = _picture()
    torch.testing.assert_close(loaded.encode_image(pic), enc.encode_image(pic), atol=ATOL, rtol=0)
    torch.testing.assert_close(loaded.encode_text("a cat"), enc.encode_text("a cat"), atol=ATOL, rtol=0)
    assert json.loads(json.dumps(loaded.describe()))["checkpoint"] == str(ckpt)

    # the same through a preset of kind "open_clip" (how the embedded mini model is built)
    preset = Preset(
        name="rt", space="rt-space", dim=32, resolution=64,
        encoder={"kind": "open_clip", "model": "roundtrip-tiny", "config": str(config), "checkpoint": str(ckpt)},
        decoder={"kind": "none"},
    )  # fmt: skip
    via_preset = create_encoder(preset)
    assert via_preset.name == "rt" and space_of(via_preset.encode_text("a cat")) == "rt-space"
    torch.testing.assert_close(via_preset.encode_text("a cat"), enc.encode_text("a cat"), atol=ATOL, rtol=0)

    wrong_dim = Preset(**{**preset.to_dict(), "name": "rt2", "dim": 64})
    with pytest.raises(SpecError, match="dim=64"):
        create_encoder(wrong_dim)


def test_bad_checkpoints(enc: Encoder, tmp_path: Path) -> None:
    config, ckpt = _save_tiny(enc, tmp_path, "bad-ckpt-tiny")
    with pytest.raises(ModelNotAvailableError, match="not found"):
        Encoder.from_open_clip("bad-ckpt-tiny", config=config, checkpoint=tmp_path / "missing.safetensors")
    other = tmp_path / "other-dim-tiny.json"
    cfg = json.loads(config.read_text())
    cfg["embed_dim"] = 16
    other.write_text(json.dumps(cfg))
    with pytest.raises(LatentlabError, match="does not match this architecture"):
        Encoder.from_open_clip("other-dim-tiny", config=other, checkpoint=ckpt)
    not_config = tmp_path / "nc.json"
    not_config.write_text(json.dumps({"hello": 1}))
    with pytest.raises(SpecError, match="lacks embed_dim"):
        Encoder.from_open_clip("nc", config=not_config, checkpoint=ckpt)
    with pytest.raises(ArgumentError, match="either pretrained"):
        Encoder.from_open_clip("bad-ckpt-tiny", "openai", checkpoint=ckpt)


def test_tiny_preset_is_registered() -> None:
    p = get_preset("tiny")
    assert p.encoder["kind"] == "open_clip_tiny" and p.dim == 32


def test_missing_weights_message_says_which_cache(tmp_path, monkeypatch):
    """The folder is named whether it was given or is the default (hub_cache_dir resolves it)."""
    from latentlab.encoders import _not_available, _resolve_pretrained

    given = str(_not_available("ViT-L-14", "openai", "timm/x", ["open_clip_model.safetensors"], "/data/hf", "offline"))
    assert "are not in the cache /data/hf and cannot be downloaded" in given
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelNotAvailableError, match=rf"are not in the cache {re.escape(str(tmp_path / 'hub'))} and"):
        _resolve_pretrained("ViT-B-32", "laion2b_s34b_b79k", None)


# -- open_clip hub repos, local folders, configs and fill colours --------------------------


def _hub_files(enc: Encoder, folder: Path, *, preprocess_cfg: dict | None = None, weights: bool = True) -> Path:
    """Write ``enc``'s model as an open_clip hub repo would hold it: ``open_clip_config.json``
    (hub format) and ``open_clip_model.safetensors``."""
    from safetensors.torch import save_file

    from latentlab.encoders import _tiny_config

    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"model_cfg": _tiny_config(32), "preprocess_cfg": preprocess_cfg or {}}
    (folder / "open_clip_config.json").write_text(json.dumps(cfg))
    if weights:
        save_file({k: v.contiguous() for k, v in enc.model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return folder


def _fake_hub_cache(hub: Path, repo: str, files_from: Path) -> None:
    """A Hugging Face cache entry for ``repo`` holding the files of ``files_from`` (as
    ``hf download`` leaves it: refs/main naming a snapshot folder)."""
    import shutil

    rev = "0123456789abcdef0123456789abcdef01234567"
    root = hub / ("models--" + repo.replace("/", "--"))
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(rev)
    shutil.copytree(files_from, root / "snapshots" / rev)


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache under a temporary HF_HOME, offline, with the network cut."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import time
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)

    def no_network(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    hub = tmp_path / "hf" / "hub"
    hub.mkdir(parents=True)
    return hub


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_local_dir_model_loads_its_weights(enc: Encoder, tmp_path: Path) -> None:
    folder = _hub_files(enc, tmp_path / "my model")
    loaded = Encoder.from_open_clip(f"local-dir:{folder}")
    assert _same_weights(loaded.model, enc.model)
    pic = _picture()
    torch.testing.assert_close(loaded.encode_image(pic), enc.encode_image(pic), atol=ATOL, rtol=0)
    torch.testing.assert_close(loaded.encode_text("a cat"), enc.encode_text("a cat"), atol=ATOL, rtol=0)
    assert loaded.fingerprint().startswith("sha256:")  # the folder's content, not its path
    with pytest.raises(ArgumentError, match="brings its own weights"):
        Encoder.from_open_clip(f"local-dir:{folder}", checkpoint=folder / "open_clip_model.safetensors")
    with pytest.raises(ModelNotAvailableError, match="not found"):
        Encoder.from_open_clip(f"local-dir:{tmp_path / 'nowhere'}")


def test_hf_hub_model_loads_from_the_cache_offline(enc: Encoder, offline_hub: Path, tmp_path: Path) -> None:
    _fake_hub_cache(offline_hub, "latentlab-test/tiny-clip", _hub_files(enc, tmp_path / "repo"))
    loaded = Encoder.from_open_clip("hf-hub:latentlab-test/tiny-clip")
    assert _same_weights(loaded.model, enc.model)
    torch.testing.assert_close(loaded.encode_text("a cat"), enc.encode_text("a cat"), atol=ATOL, rtol=0)
    assert loaded.space == "open_clip/hf-hub:latentlab-test/tiny-clip/hub"
    with pytest.raises(ModelNotAvailableError, match="hf download latentlab-test/other"):
        Encoder.from_open_clip("hf-hub:latentlab-test/other")  # not cached: no network attempt, a clear error


def test_hub_models_without_weights_raise_instead_of_random_weights(
    enc: Encoder, offline_hub: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import latentlab.encoders as E

    config_only = _hub_files(enc, tmp_path / "config-only", weights=False)
    _fake_hub_cache(offline_hub, "latentlab-test/no-weights", config_only)
    with pytest.raises(ModelNotAvailableError, match="no weights file") as e:
        Encoder.from_open_clip("hf-hub:latentlab-test/no-weights")
    assert "open_clip_model.safetensors" in str(e.value) and str(offline_hub) in str(e.value)
    with pytest.raises(ModelNotAvailableError, match="no weights file"):
        Encoder.from_open_clip(f"local-dir:{config_only}")
    # without latentlab's own checks, open_clip's require_pretrained still refuses random weights
    monkeypatch.setattr(E, "_check_hub_model_cached", lambda repo, cache_dir: None)
    monkeypatch.setattr(E, "_check_local_dir", lambda name, text: (Path(text), [Path(text) / "open_clip_config.json"]))
    for model in ("hf-hub:latentlab-test/no-weights", f"local-dir:{config_only}"):
        with pytest.raises(ModelNotAvailableError, match="random weights"):
            Encoder.from_open_clip(model)


def test_config_does_not_replace_open_clips_own_config(enc: Encoder, tmp_path: Path) -> None:
    import open_clip

    config, ckpt = _save_tiny(enc, tmp_path, "tiny-under-a-builtin-name")
    builtin = open_clip.get_model_config("ViT-B-32")
    loaded = Encoder.from_open_clip("ViT-B-32", config=config, checkpoint=ckpt)
    assert loaded.dim == 32 and _same_weights(loaded.model, enc.model)
    assert open_clip.get_model_config("ViT-B-32") == builtin
    open_clip.add_model_config(tmp_path / "nothing-here")  # open_clip re-reads its configs: ours survive
    again = Encoder.from_open_clip("ViT-B-32", config=config, checkpoint=ckpt)
    assert _same_weights(again.model, enc.model) and open_clip.get_model_config("ViT-B-32") == builtin
    # a name with "/" (an org/model id) is just a name
    slashed = Encoder.from_open_clip("me/tiny-model", config=config, checkpoint=ckpt)
    torch.testing.assert_close(slashed.encode_text("a cat"), enc.encode_text("a cat"), atol=ATOL, rtol=0)
    assert slashed.space.startswith("open_clip/me/tiny-model/weights.safetensors@")


def test_hub_format_config_keeps_its_fill_colour(enc: Encoder, tmp_path: Path) -> None:
    """A hub-format config= gives the transform open_clip gives the same files (local-dir:),
    padding included: resize_mode "longest" pads with fill_color."""
    import open_clip

    folder = _hub_files(enc, tmp_path / "padded", preprocess_cfg={"resize_mode": "longest", "fill_color": 255})
    _, _, reference = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    ours = Encoder.from_open_clip("padded-tiny", config=folder / "open_clip_config.json",
                                  checkpoint=folder / "open_clip_model.safetensors")  # fmt: skip
    pic = Image.fromarray(_picture(24, 48))  # wide: "longest" pads above and below
    x = reference(pic)
    black = open_clip.image_transform(32, is_train=False, resize_mode="longest", fill_color=0)(pic)
    assert not torch.allclose(x, black)  # the fill colour shows
    assert torch.equal(ours.preprocess(pic), x)
    assert ours.model.visual.preprocess_cfg["fill_color"] == 255
    assert torch.equal(Encoder.from_open_clip(f"local-dir:{folder}").preprocess(pic), x)


def test_preset_checkpoint_replaces_the_pretrained_tag(enc: Encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """create_encoder(preset, checkpoint=...) on a preset that names a pretrained tag: the file
    gives the weights, the tag its preprocessing and activation (here QuickGELU)."""
    from open_clip import pretrained as oc_pretrained

    config, ckpt = _save_tiny(enc, tmp_path, "tagged-tiny")
    tag = {"hf_hub": "latentlab-test/tagged-tiny/", "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25),
           "interpolation": "bilinear", "resize_mode": "squash", "quick_gelu": True}  # fmt: skip
    monkeypatch.setitem(oc_pretrained._PRETRAINED, "tagged-tiny", {"mytag": tag})
    preset = Preset(
        name="tagged", space="tagged-space", dim=32, resolution=64,
        encoder={"kind": "open_clip", "model": "tagged-tiny", "config": str(config), "pretrained": "mytag"},
        decoder={"kind": "none"},
    )  # fmt: skip
    e = create_encoder(preset, checkpoint=ckpt)
    assert _same_weights(e.model, enc.model)
    assert type(e.model.visual.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"
    pp = e.model.visual.preprocess_cfg
    assert (tuple(pp["mean"]), tuple(pp["std"]), pp["interpolation"], pp["resize_mode"]) == (
        (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "bilinear", "squash")  # fmt: skip
    white = Image.new("RGB", (40, 24), (255, 255, 255))
    torch.testing.assert_close(e.preprocess(white), torch.full((3, 32, 32), 2.0))  # (1 - 0.5) / 0.25, squashed
    assert e.fingerprint().endswith(":mytag") and e.describe()["checkpoint"] == str(ckpt)
    assert e.space == "tagged-space"
    with pytest.raises(ArgumentError, match="not both"):  # a tag of the user's own and a file: ambiguous
        create_encoder(preset, pretrained="othertag", checkpoint=ckpt)


def test_rgb_png_with_a_colour_key_is_composited_on_white(enc: Encoder, tmp_path: Path) -> None:
    from latentlab.encoders import _to_rgb

    pic = _picture(16, 16)
    pic[:8] = (10, 20, 30)  # the top half is the transparent colour
    path = tmp_path / "keyed.png"
    Image.fromarray(pic).save(path, transparency=(10, 20, 30))
    expected = pic.copy()
    expected[:8] = 255
    with Image.open(path) as im:
        assert im.mode == "RGB" and im.info["transparency"] == (10, 20, 30)
        assert np.array_equal(np.asarray(_to_rgb(im)), expected)
    # as the same picture with an alpha channel, and as greyscale with a colour key, already were
    torch.testing.assert_close(enc.encode_image(path), enc.encode_image(expected), atol=ATOL, rtol=0)


def test_cache_keys_tell_a_bfloat16_encoder_from_a_float32_one(tmp_path):
    from latentlab.presets import create_encoder

    full, half = create_encoder("tiny"), create_encoder("tiny", dtype="bf16")
    full.cache = half.cache = tmp_path / "cache"
    a = full.encode_text(["a cat"])
    b = half.encode_text(["a cat"])  # read the float32 entry back before: a hit from another precision
    assert half.cache.hits == 0 and not torch.equal(a, b)
    assert full._cache_id() == full.fingerprint()  # float32 keys unchanged: existing caches stay valid


# -- fingerprints, cache entries and messages (audit fixes) ---------------------------------


def _config_variant(tmp_path: Path, name: str, cfg: dict) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(cfg))
    return path


def test_checkpoint_fingerprint_covers_the_config_and_preprocessing(enc: Encoder, tmp_path: Path) -> None:
    """One weights file read with another activation or preprocessing gives other embeddings:
    it must not share cache entries with the first reading."""
    from latentlab.encoders import _tiny_config

    config, ckpt = _save_tiny(enc, tmp_path, "fp-tiny")
    quick = _config_variant(tmp_path, "fp-tiny-quick", {**_tiny_config(32), "quick_gelu": True})
    hub_plain = _config_variant(tmp_path, "fp-hub-plain", {"model_cfg": _tiny_config(32), "preprocess_cfg": {}})
    squash = {"resize_mode": "squash", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    hub_squash = _config_variant(tmp_path, "fp-hub-squash", {"model_cfg": _tiny_config(32), "preprocess_cfg": squash})
    plain, qg, same, sq = (Encoder.from_open_clip("fp-tiny", config=c, checkpoint=ckpt) for c in (config, quick, hub_plain, hub_squash))
    sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert all(e.fingerprint().startswith(f"sha256:{sha}:cfg-") for e in (plain, qg, same, sq))
    assert plain.fingerprint() == same.fingerprint()  # the same model and preprocessing: entries are shared
    assert len({plain.fingerprint(), qg.fingerprint(), sq.fingerprint()}) == 3
    assert plain.describe()["config"] == str(config) and sq.describe()["config"] == str(hub_squash)
    pic = _picture(40, 60)
    truth = {e: e.encode_image(pic) for e in (plain, qg, sq)}
    cache = EmbeddingCache(tmp_path / "cache")
    for e in (plain, qg, sq):
        e.cache = cache
        torch.testing.assert_close(e.encode_image(pic), truth[e], atol=ATOL, rtol=0)
    assert cache.hits == 0 and len(cache) == 3
    assert float((truth[plain] - truth[sq]).abs().max()) > 1e-3  # the readings do differ


def test_checkpoint_is_hashed_when_loaded(enc: Encoder, tmp_path: Path) -> None:
    """A checkpoint overwritten after the load (a training run saving to the same path) must
    not lend its hash to the embeddings of the weights loaded before."""
    from safetensors.torch import save_file

    config, ckpt = _save_tiny(enc, tmp_path, "hashed-tiny")
    first_sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    cache = EmbeddingCache(tmp_path / "cache")
    old = Encoder.from_open_clip("hashed-tiny", config=config, checkpoint=ckpt, cache=cache)
    other = _tiny_seed(1)
    save_file({k: v.contiguous() for k, v in other.model.state_dict().items()}, str(ckpt))
    assert old.fingerprint().startswith(f"sha256:{first_sha}:")
    assert old.describe()["checkpoint_sha256"] == first_sha
    torch.testing.assert_close(old.encode_text("a cat"), enc.encode_text("a cat"), atol=ATOL, rtol=0)
    new = Encoder.from_open_clip("hashed-tiny", config=config, checkpoint=ckpt, cache=cache)
    assert new.fingerprint() != old.fingerprint()
    torch.testing.assert_close(new.encode_text("a cat"), other.encode_text("a cat"), atol=ATOL, rtol=0)


def test_a_checkpoint_rewritten_during_the_load_is_refused(enc: Encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import open_clip

    config, ckpt = _save_tiny(enc, tmp_path, "racy-tiny")
    real = open_clip.create_model_and_transforms

    def rewrite_then_load(*args, **kwargs):
        st = ckpt.stat()
        os.utime(ckpt, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # written again meanwhile
        return real(*args, **kwargs)

    monkeypatch.setattr(open_clip, "create_model_and_transforms", rewrite_then_load)
    with pytest.raises(ModelNotAvailableError, match="changed while it was being loaded"):
        Encoder.from_open_clip("racy-tiny", config=config, checkpoint=ckpt)


def test_a_checkpoint_rewritten_while_it_is_hashed_is_refused(enc: Encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file's state is noted before it is hashed: a save landing between the hash and the
    note had loaded new bytes under the old bytes' fingerprint."""
    import os

    import latentlab.encoders as E

    config, ckpt = _save_tiny(enc, tmp_path, "racy-hash-tiny")
    real = E._file_sha256

    def hash_then_rewrite(path):
        digest = real(path)
        st = Path(path).stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # written again right after
        return digest

    monkeypatch.setattr(E, "_file_sha256", hash_then_rewrite)
    with pytest.raises(ModelNotAvailableError, match="changed while it was being loaded"):
        Encoder.from_open_clip("racy-hash-tiny", config=config, checkpoint=ckpt)


def test_an_hf_clip_folder_rewritten_while_it_is_hashed_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import latentlab.hf_clip as H

    folder = tmp_path / "my-clip"
    _save_hf_towers(folder, seed=0)
    real = H._hash_files

    def hash_then_rewrite(root, files, parts):
        digest = real(root, files, parts)
        st = files[0].stat()
        os.utime(files[0], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a save landing after the hash
        return digest

    monkeypatch.setattr(H, "_hash_files", hash_then_rewrite)
    with pytest.raises(ModelNotAvailableError, match="changed while they were being loaded"):
        H.HFCLIPEncoder.from_pretrained(folder)


def test_default_space_of_a_checkpoint_names_its_content(tmp_path: Path) -> None:
    """Two fine-tunes saved under the usual file name are two spaces: mixing them is refused."""
    from latentlab.errors import SpaceError
    from latentlab.space import common_space

    runs = [_hub_files(_tiny_seed(seed), tmp_path / f"run{seed}") for seed in (0, 7)]
    a, b = (Encoder.from_open_clip("ft", config=r / "open_clip_config.json", checkpoint=r / "open_clip_model.safetensors")
            for r in runs)  # fmt: skip
    sha = hashlib.sha256((runs[0] / "open_clip_model.safetensors").read_bytes()).hexdigest()
    assert a.space == f"open_clip/ft/open_clip_model.safetensors@{sha[:12]}" and a.space != b.space
    with pytest.raises(SpaceError):
        common_space(a.encode_text("a cat"), b.encode_text("a cat"))
    assert get_preset("mini").space == "latentlab-mini"  # a preset's space is the preset's, whatever its file


@pytest.mark.parametrize("bad", [np.full(32, np.nan, np.float32), np.full(32, 7.0, np.float32), np.full(32, np.inf, np.float32)])
def test_cache_entries_that_are_not_unit_vectors_are_misses(tmp_path: Path, bad: np.ndarray) -> None:
    e = create_encoder("tiny", cache=tmp_path / "c")
    z = e.encode_text("hello")
    key = EmbeddingCache.make_key(e._cache_id(), "text", "hello")
    torch.testing.assert_close(e.cache.get(key), z[0], atol=1e-6, rtol=0)  # the cache holds the unit vector
    np.save(e.cache.path(key), bad)
    assert e.cache.get(key) is None
    again = e.encode_text("hello")
    assert torch.isfinite(again).all() and torch.equal(again, z)  # recomputed, and rewritten
    assert e.cache.get(key) is not None


@pytest.mark.filterwarnings("ignore:a PIL image of mode 'I' holds values in 0..255")  # this dark picture's are (as asserted below)
def test_16_bit_grey_images_decode_the_same_in_every_container(enc: Encoder, tmp_path: Path) -> None:
    """16-bit data ("I;16" from a PNG, "I" after .convert("I")) is scaled by 1/257 always, not
    by a guess from the picture's own maximum."""
    from latentlab.encoders import _to_rgb

    dark = np.tile(np.linspace(0, 255, 48).round().astype(np.uint16), (40, 1))  # a dark 16-bit picture
    path = tmp_path / "dark16.png"
    Image.fromarray(dark).save(path)
    with Image.open(path) as im:
        im.load()
        assert im.mode in ("I;16", "I")
        as_i = im.convert("I")
        assert as_i.mode == "I"
        expected = np.clip(np.round(dark / 257.0), 0, 255).astype(np.uint8)
        assert np.array_equal(np.asarray(_to_rgb(as_i))[..., 0], expected)
        ref = enc.encode_image(path)
        for x in (im, as_i):
            torch.testing.assert_close(enc.encode_image(x), ref, atol=ATOL, rtol=0)
    # 8-bit values in a mode "I" image (L.convert("I")) read as 16-bit data come out nearly black: it warns
    eight = Image.fromarray(np.tile(np.arange(0, 256, 8, dtype=np.uint8), (8, 1))).convert("I")
    with pytest.warns(UserWarning, match=r"mode 'I' holds values in 0\.\.255.*pass im\.convert\('L'\)"):
        _to_rgb(eight)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a real 16-bit picture does not
        _to_rgb(Image.fromarray((dark.astype(np.int32) * 200)).convert("I"))
    one_more = dark.astype(np.int32)
    one_more[0, 0] = 256  # 1/65535 brighter at one pixel: the same picture
    torch.testing.assert_close(enc.encode_image(Image.fromarray(one_more)), ref, atol=1e-3, rtol=0)


def test_offline_hint_says_what_is_set_and_names_the_safetensors_file(monkeypatch: pytest.MonkeyPatch) -> None:
    from latentlab.encoders import _not_available

    files = ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    msg = str(_not_available("ViT-B-32", "laion2b_s34b_b79k", "laion/x", files, None, "ConnectError: no route to host."))
    assert "unset" not in msg and ".." not in msg
    assert "`hf download laion/x open_clip_model.safetensors`" in msg
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    msg = str(_not_available("ViT-B-32", "laion2b_s34b_b79k", "laion/x", files, None, "offline mode is on"))
    assert "(unset HF_HUB_OFFLINE)" in msg and ".." not in msg


def test_offline_tag_suggests_the_safetensors_file(offline_hub: Path) -> None:
    with pytest.raises(ModelNotAvailableError) as e:
        Encoder.from_open_clip("ViT-B-32", "laion2b_s34b_b79k")
    msg = str(e.value)
    assert "unset HF_HUB_OFFLINE" in msg and "open_clip_model.safetensors`" in msg and ".." not in msg


def test_local_dir_whose_config_does_not_match_its_weights(enc: Encoder, tmp_path: Path) -> None:
    from latentlab.encoders import _tiny_config

    folder = _hub_files(enc, tmp_path / "my-finetune")
    cfg = _tiny_config(32)
    cfg["vision_cfg"]["width"] = 64
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {}}))
    with pytest.raises(ModelNotAvailableError, match="do not match the open_clip_config.json") as e:
        Encoder.from_open_clip(f"local-dir:{folder}")
    assert "downloaded" not in str(e.value)


def test_a_folder_given_as_checkpoint_or_model_suggests_local_dir(enc: Encoder, tmp_path: Path) -> None:
    folder = _hub_files(enc, tmp_path / "hubdir")
    config, _ = _save_tiny(enc, tmp_path, "folder-tiny")
    with pytest.raises(ArgumentError, match="is a folder") as e:
        Encoder.from_open_clip("folder-tiny", config=config, checkpoint=folder)
    assert f"local-dir:{folder}" in str(e.value)
    with pytest.raises(ArgumentError, match="is a folder") as e:
        Encoder.from_open_clip(str(folder))
    assert f"model='local-dir:{folder}'" in str(e.value)


def test_float16_encoders_on_the_cpu_warn_once() -> None:
    from latentlab.hf_clip import HFCLIPEncoder, tiny_hf_clip_towers

    for build in (lambda: create_encoder("tiny", dtype=torch.float16),
                  lambda: HFCLIPEncoder(*tiny_hf_clip_towers(dim=32), name="t", space="s", dtype="float16")):  # fmt: skip
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            build()
        slow = [w for w in seen if "float16 on the CPU" in str(w.message)]
        assert len(slow) == 1 and issubclass(slow[0].category, UserWarning), [str(w.message) for w in seen]
        assert "encoder" in str(slow[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        create_encoder("tiny", dtype=torch.bfloat16)  # bfloat16 is the advice for the CPU: no warning


# -- transformers CLIP towers: fingerprints and layouts --------------------------------------


def _save_hf_towers(folder: Path, seed: int) -> None:
    from latentlab.hf_clip import tiny_hf_clip_towers

    towers, proc, tok = tiny_hf_clip_towers(dim=32, seed=seed)
    towers.vision.save_pretrained(folder / "image_encoder", safe_serialization=True)
    towers.text.save_pretrained(folder / "text_encoder", safe_serialization=True)
    proc.save_pretrained(folder / "image_processor")
    tok.save_pretrained(folder / "tokenizer")


def test_hf_clip_folder_is_fingerprinted_by_its_files(tmp_path: Path) -> None:
    from latentlab.hf_clip import HFCLIPEncoder

    folder = tmp_path / "my-clip"
    _save_hf_towers(folder, seed=0)
    pic = _picture()
    e0 = HFCLIPEncoder.from_pretrained(folder, cache=tmp_path / "cache")
    z0 = e0.encode_image(pic)
    image_only = HFCLIPEncoder.from_pretrained(folder, text_subfolder=None)
    assert image_only.fingerprint() != e0.fingerprint()  # the parts loaded are in the key
    assert HFCLIPEncoder.from_pretrained(folder).fingerprint() == e0.fingerprint()  # stable for the same files
    _save_hf_towers(folder, seed=1)  # retrained in place
    e1 = HFCLIPEncoder.from_pretrained(folder)
    truth = e1.encode_image(pic)
    assert e1.fingerprint() != e0.fingerprint() and float((truth - z0).abs().max()) > 1e-3
    e1.cache = tmp_path / "cache"
    torch.testing.assert_close(e1.encode_image(pic), truth, atol=ATOL, rtol=0)  # not the stale entry
    assert e1.cache.hits == 0


def test_hf_clip_default_fingerprint_is_the_towers_content() -> None:
    from latentlab.hf_clip import HFCLIPEncoder, tiny_hf_clip_towers

    a = HFCLIPEncoder(*tiny_hf_clip_towers(dim=32, seed=0), name="t", space="s")
    b = HFCLIPEncoder(*tiny_hf_clip_towers(dim=32, seed=5), name="t", space="s")
    again = HFCLIPEncoder(*tiny_hf_clip_towers(dim=32, seed=0), name="other", space="s")
    assert a.fingerprint() != b.fingerprint() and a.fingerprint() == again.fingerprint()


def test_hf_clip_repo_fingerprint_names_the_commit_and_the_parts(tmp_path: Path, offline_hub: Path) -> None:
    from latentlab.hf_clip import HFCLIPEncoder

    _save_hf_towers(tmp_path / "repo", seed=0)
    _fake_hub_cache(offline_hub, "latentlab-test/tiny-towers", tmp_path / "repo")
    full = HFCLIPEncoder.from_pretrained("latentlab-test/tiny-towers")
    image_only = HFCLIPEncoder.from_pretrained("latentlab-test/tiny-towers", text_subfolder=None)
    commit = "0123456789abcdef0123456789abcdef01234567"  # what _fake_hub_cache's refs/main names
    assert full.fingerprint().startswith(f"hf_clip:latentlab-test/tiny-towers@{commit}:")
    assert "image=image_encoder" in full.fingerprint() and "text=text_encoder" in full.fingerprint()
    assert image_only.fingerprint() != full.fingerprint()


def test_hf_hub_fingerprint_follows_the_snapshot_loaded(enc: Encoder, offline_hub: Path, tmp_path: Path) -> None:
    """An audit (2026-12, F1): an hf-hub: model was fingerprinted by its repo name alone, so after the
    repo got new weights (a new snapshot, refs/main moved) the cache returned the old model's embeddings."""
    import shutil

    root = offline_hub / "models--latentlab-test--tiny-clip"

    def snapshot(rev: str, weights_of: Encoder) -> None:  # what `hf download` leaves after an update
        shutil.copytree(_hub_files(weights_of, tmp_path / f"files-{rev[:4]}"), root / "snapshots" / rev)
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / "main").write_text(rev)

    cache = tmp_path / "cache"
    snapshot("a" * 40, enc)
    old = Encoder.from_open_clip("hf-hub:latentlab-test/tiny-clip", cache=cache)
    z_old = old.encode_text("a cat")
    assert old.fingerprint().startswith("open_clip:hf-hub:latentlab-test/tiny-clip:sha256:")
    assert old.describe()["hub_commit"] == "a" * 40
    assert old.space == "open_clip/hf-hub:latentlab-test/tiny-clip/hub"  # the space tag stays as it was
    snapshot("b" * 40, _tiny_seed(1))  # new weights
    new = Encoder.from_open_clip("hf-hub:latentlab-test/tiny-clip", cache=cache)
    assert new.fingerprint() != old.fingerprint() and new.space == old.space
    z_new = new.encode_text("a cat")
    assert new.cache.hits == 0 and not torch.allclose(z_new, z_old, atol=1e-3)
    new.cache = None
    torch.testing.assert_close(z_new, new.encode_text("a cat"), atol=ATOL, rtol=0)  # the new model's own
    snapshot("c" * 40, enc)  # a later commit with the first weights again (a README edit, a revert)
    again = Encoder.from_open_clip("hf-hub:latentlab-test/tiny-clip", cache=cache)
    assert again.fingerprint() == old.fingerprint()  # the content, not the commit: the old entries serve
    assert torch.equal(again.encode_text("a cat"), z_old) and again.cache.hits == 1


def test_hf_hub_fingerprint_takes_an_lfs_blobs_name_for_its_sha256(
    enc: Encoder, offline_hub: Path, tmp_path: Path, monkeypatch
) -> None:
    """A review (2026-12): the hf-hub fingerprint read the whole weights file at every load (seconds
    for a multi-GB model). In a real Hugging Face cache a snapshot's LFS file links to
    blobs/<its sha256>: that name is the digest, the same fingerprint without reading the file."""
    import hashlib
    import shutil

    import latentlab.encoders as encoders

    root = offline_hub / "models--latentlab-test--tiny-clip"
    files = _hub_files(enc, tmp_path / "files")
    plain = root / "snapshots" / ("a" * 40)
    shutil.copytree(files, plain)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text("a" * 40)
    copied = Encoder.from_open_clip("hf-hub:latentlab-test/tiny-clip").fingerprint()
    # the same files as `hf download` lays them out: the weights a link to blobs/<sha256>
    linked = root / "snapshots" / ("b" * 40)
    shutil.copytree(files, linked)
    weights = next(p for p in linked.iterdir() if p.name != "open_clip_config.json")
    blob = root / "blobs" / hashlib.sha256(weights.read_bytes()).hexdigest()
    blob.parent.mkdir(exist_ok=True)
    shutil.move(weights, blob)
    weights.symlink_to(blob)
    (root / "refs" / "main").write_text("b" * 40)
    read = []
    real = encoders._file_sha256
    monkeypatch.setattr(encoders, "_file_sha256", lambda p: read.append(Path(p).name) or real(p))
    assert Encoder.from_open_clip("hf-hub:latentlab-test/tiny-clip").fingerprint() == copied
    assert weights.name not in read and "open_clip_config.json" in read


def test_a_hand_built_encoder_is_fingerprinted_by_its_model(tmp_path: Path) -> None:
    """An audit (2026-12, F2): an Encoder built without fingerprint= got "unknown:<name>:<space>",
    so two models of the same name and space shared cache entries."""
    m1, m2 = _tiny_seed(3), _tiny_seed(4)
    h1 = Encoder(m1.model, m1.preprocess, m1.tokenizer, name="mine", space="mine", cache=tmp_path)
    h2 = Encoder(m2.model, m2.preprocess, m2.tokenizer, name="mine", space="mine", cache=tmp_path)
    assert h1.fingerprint().startswith("model:sha256:") and h1.fingerprint() != h2.fingerprint()
    z1, z2 = h1.encode_text("a dog"), h2.encode_text("a dog")
    assert h2.cache.hits == 0 and not torch.allclose(z1, z2, atol=1e-3)
    torch.testing.assert_close(z2, m2.encode_text("a dog"), atol=ATOL, rtol=0)
    # the same model again, under another name, is the same fingerprint: its entries are reused
    same = Encoder(_tiny_seed(3).model, m1.preprocess, m1.tokenizer, name="other", space="mine")
    assert same.fingerprint() == h1.fingerprint() and same.describe()["fingerprint"] == h1.fingerprint()
    # other preprocessing of the same weights is another fingerprint
    import open_clip

    other_pp = open_clip.image_transform(48, is_train=False)
    assert Encoder(m1.model, other_pp, m1.tokenizer, name="mine", space="mine").fingerprint() != h1.fingerprint()
    # an explicit fingerprint, as every preset passes, is kept as given
    assert create_encoder("tiny").fingerprint() == "tiny-seed0"
    assert Encoder(m1.model, m1.preprocess, m1.tokenizer, name="m", space="s", fingerprint="mine-v1").fingerprint() == "mine-v1"


def test_a_hand_built_encoder_with_a_function_tokenizer_is_fingerprinted_by_what_it_does(tmp_path: Path) -> None:
    """Two tokenizer functions (lambdas, closures, partials) differing in what they do had one
    fingerprint (their reprs differ only by address), so the cache gave one's embeddings for
    the other's texts."""
    import functools

    m = _tiny_seed(3)

    def prefixed(prefix: str):  # type: ignore[no-untyped-def]
        return lambda texts: m.tokenizer([prefix + t for t in ([texts] if isinstance(texts, str) else texts)])

    def fp(tok: object) -> str:
        return Encoder(m.model, m.preprocess, tok, name="mine", space="mine").fingerprint()

    def with_prefix(texts: object, prefix: str = "") -> torch.Tensor:
        return m.tokenizer([prefix + t for t in ([texts] if isinstance(texts, str) else texts)])  # type: ignore[union-attr]

    assert fp(prefixed("a photo of ")) != fp(prefixed("")) and fp(prefixed("x")) == fp(prefixed("x"))  # closure values
    assert fp(lambda t: m.tokenizer(t)[:, :5]) != fp(lambda t: m.tokenizer(t)[:, :6])  # constants
    assert fp(functools.partial(with_prefix, prefix="a")) != fp(functools.partial(with_prefix, prefix="b"))  # arguments
    a = Encoder(m.model, m.preprocess, prefixed("a drawing of "), name="mine", space="mine", cache=tmp_path)
    b = Encoder(m.model, m.preprocess, prefixed(""), name="mine", space="mine", cache=tmp_path)
    za, zb = a.encode_text("a red circle"), b.encode_text("a red circle")
    assert b.cache.hits == 0 and not torch.allclose(za, zb, atol=1e-3)  # zb was za, from the cache
    # a preprocess or tokenizer that is no function reads as before: its fingerprint is unchanged
    from latentlab.encoders import _ADDRESS, _settings_text

    assert _settings_text(m.preprocess) == f"torchvision.transforms.transforms.Compose\n{_ADDRESS.sub('', repr(m.preprocess))}"


def test_hf_clip_loads_a_plain_clipmodel_folder(tmp_path: Path) -> None:
    """The openai/clip-vit-* layout: one CLIPModel at the top level, no subfolders."""
    from transformers import CLIPConfig, CLIPModel

    from latentlab.hf_clip import HFCLIPEncoder, tiny_hf_clip_towers

    towers, proc, tok = tiny_hf_clip_towers(dim=32, seed=0)
    cfg = CLIPConfig(text_config=towers.text.config.to_dict(), vision_config=towers.vision.config.to_dict(), projection_dim=32)
    torch.manual_seed(0)
    model = CLIPModel(cfg).eval()
    folder = tmp_path / "clip-model"
    model.save_pretrained(folder, safe_serialization=True)
    proc.save_pretrained(folder)
    tok.save_pretrained(folder)
    enc = HFCLIPEncoder.from_pretrained(folder)
    assert enc.describe()["layout"] == "CLIPModel (top level)"
    pic = _picture()
    with torch.no_grad():
        fi = model.get_image_features(pixel_values=proc(images=pic, return_tensors="pt").pixel_values)
        ids = tok(["a cat"], padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids
        ft = model.get_text_features(input_ids=ids)
    fi, ft = (f if isinstance(f, torch.Tensor) else f.pooler_output for f in (fi, ft))
    torch.testing.assert_close(enc.encode_image(pic), torch.nn.functional.normalize(fi, dim=-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(enc.encode_text("a cat"), torch.nn.functional.normalize(ft, dim=-1), atol=1e-5, rtol=0)


def test_an_unreachable_hub_is_asked_for_one_file_not_each_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # an audit (2026-12-06): online without a network, each candidate file name (safetensors, then
    # .bin) went through huggingface_hub's five retries: 50 s where one failure says it all
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError, RemoteEntryNotFoundError

    import latentlab.encoders as E

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(E, "_hub_offline", lambda: False)
    asked: list[str] = []

    def unreachable(repo, filename, cache_dir=None, local_files_only=False, **kw):
        if not local_files_only:
            asked.append(filename)
        raise LocalEntryNotFoundError("cannot reach the hub and the file is not in the local cache")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", unreachable)
    with pytest.raises(ModelNotAvailableError, match="ViT-B-32"):
        E._resolve_pretrained("ViT-B-32", "laion2b_s34b_b79k", tmp_path)
    assert asked == ["open_clip_model.safetensors"]
    # a repo that lacks the first name is still asked for the next
    asked.clear()

    class Response:  # what RemoteEntryNotFoundError reads off an HTTP response
        status_code, headers, url, request = 404, {}, "https://huggingface.co/x", None

    def missing_first(repo, filename, cache_dir=None, local_files_only=False, **kw):
        if local_files_only:
            raise LocalEntryNotFoundError("not cached")
        asked.append(filename)
        if filename.endswith(".safetensors"):
            raise RemoteEntryNotFoundError("404: no such file in the repo", response=Response())
        return str(tmp_path / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", missing_first)
    path, _ = E._resolve_pretrained("ViT-B-32", "laion2b_s34b_b79k", tmp_path)
    assert asked == ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"] and path.endswith(".bin")


def test_prompts_cut_to_the_text_context_are_said_in_one_warning(tiny_encoder):
    # an audit (2026-12-07): prompts past the context (mini: 32 tokens) were cut silently, so two
    # prompts that differ only past it drew the same pictures
    long = "a red circle above a blue square and " * 12 + "a green triangle"
    with pytest.warns(UserWarning, match=r"a prompt is longer than the text encoder's context of 77 tokens") as seen:
        tiny_encoder.encode_text([long])
    assert len(seen) == 1 and "'a red circle above" in str(seen[0].message) and "has 101 tokens" in str(seen[0].message)
    assert seen[0].filename == __file__  # said where encode_text was called
    with pytest.warns(UserWarning, match=r"2 of 3 prompts are longer .*: the first, 'a red circle") as seen:
        tiny_encoder.encode_text(["a cat", long, long + " and more"])
    assert len(seen) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a prompt that fits, however long in characters, warns nothing
        tiny_encoder.encode_text(["a red circle above a blue square", "", "x" * 60, "a cat " * 37])


def test_a_text_holding_a_lone_surrogate_is_refused_with_the_fix(enc: Encoder, tmp_path: Path) -> None:
    # an audit of typed text: "caf\udce9" (a file name read under the C locale) was embedded as it was
    # without an embedding cache, and raised a raw UnicodeEncodeError with one
    for cache in (None, str(tmp_path / "cache")):
        enc.cache = cache
        try:
            with pytest.raises(ArgumentError, match=r"texts\[1\] \('caf\\udce9'\) holds '\\udce9', which is not text.*os\.fsencode"):
                enc.encode_text(["a cat", "caf\udce9"])
        finally:
            enc.cache = None
    assert enc.encode_text("café").shape[0] == 1


def test_a_folder_given_to_encode_image_names_list_images(enc: Encoder, tmp_path: Path) -> None:
    # an audit of analysis at scale: "is not a file; pass the path of an image file", though nearest_images
    # takes a folder and list_images gives its pictures
    with pytest.raises(ArgumentError, match=r"is a folder; pass its pictures, e\.g\. enc\.encode_image\(latentlab\.explore\.list_images\("):
        enc.encode_image(tmp_path)


# what the embedding cache keys on and what counts as a hit (gaps a mutation test found, 2026-12-07)
def test_a_cache_entry_slightly_off_unit_norm_is_a_miss(tmp_path):
    """Only entries within 1e-3 of unit norm are hits (a 1 % longer vector is damaged)."""
    cache = EmbeddingCache(tmp_path)
    key = EmbeddingCache.make_key("fp", "text", "x")
    v = np.full(4, 0.5, np.float32)
    cache.put(key, v * 1.01)
    assert cache.get(key) is None
    cache.put(key, v * 1.0005)
    assert cache.get(key) is not None


def test_cache_keys_depend_on_the_kind_of_input():
    """The same content as a text and as an image gives two keys."""
    assert EmbeddingCache.make_key("fp", "text", "abc") != EmbeddingCache.make_key("fp", "image", "abc")


def test_in_memory_pictures_with_the_same_bytes_but_another_size_are_cached_apart(tmp_path):
    """A 16 x 32 picture and the 32 x 16 one with the same pixel bytes do not share an entry."""
    e = create_encoder("tiny", cache=tmp_path / "c")
    a = _picture(16, 32, seed=1)
    b = a.reshape(32, 16, 3)
    e.encode_image(a)
    zb = e.encode_image(b)
    assert e.cache.hits == 0
    torch.testing.assert_close(zb, create_encoder("tiny").encode_image(b), atol=1e-5, rtol=0)


def test_a_cache_entry_of_another_size_is_recomputed(tmp_path):
    """An entry of another dimension under the key (an encoder of another size sharing a
    fingerprint) is a miss: the text is encoded again, not a crash."""
    e = create_encoder("tiny", cache=tmp_path / "c")
    key = EmbeddingCache.make_key(e._cache_id(), "text", "a cat")
    e.cache.put(key, np.ones(7, np.float32) / np.sqrt(7))
    z = e.encode_text("a cat")
    torch.testing.assert_close(z, create_encoder("tiny").encode_text("a cat"), atol=1e-5, rtol=0)


def test_a_float_picture_is_the_uint8_picture_it_rounds_to(tmp_path):
    """Float pixels are rounded to the nearest 0..255 level (not truncated): a float picture
    hits the cache entry of the uint8 picture it rounds to."""
    e = create_encoder("tiny", cache=tmp_path / "c")
    u8 = np.arange(1, 256, dtype=np.uint8)[:240].reshape(12, 20, 1).repeat(3, axis=-1)
    e.encode_image(u8)
    e.encode_image((u8.astype(np.float64) - 0.3) / 255)
    assert e.cache.hits == 1


# -- image conversions, batching defaults, truncation at the context, loading names --------------


def test_mirrored_exif_orientations_are_applied(enc: Encoder, tmp_path: Path) -> None:
    """EXIF orientations that mirror (2, 7), not only the rotations, are undone."""
    img = Image.fromarray(_picture(32, 48))
    for orientation, undo in ((2, Image.Transpose.FLIP_LEFT_RIGHT), (7, Image.Transpose.TRANSVERSE)):
        exif = img.getexif()
        exif[0x0112] = orientation
        path = tmp_path / f"o{orientation}.png"
        img.save(path, exif=exif.tobytes())
        upright = np.asarray(img.transpose(undo))
        torch.testing.assert_close(enc.encode_image(path), enc.encode_image(upright), atol=ATOL, rtol=0, msg=str(orientation))


def test_16_bit_grey_is_scaled_by_1_over_257() -> None:
    """A 16-bit value v becomes round(v / 257): 65535 is white, 51400 is 200 (not 201)."""
    from latentlab.encoders import _to_rgb

    raw = np.array([[0, 257, 51400, 65535]], dtype=np.int32)
    assert np.asarray(_to_rgb(Image.fromarray(raw, mode="I")))[0, :, 0].tolist() == [0, 1, 200, 255]


def test_a_float_grey_image_reaching_1_is_read_as_0_to_1(enc: Encoder) -> None:
    """A mode "F" picture whose maximum is exactly 1.0 is [0, 1] data, scaled by 255."""
    from latentlab.encoders import _to_rgb

    grey = np.tile(np.linspace(0, 1, 48, dtype=np.float32), (40, 1))
    expected = np.round(grey * 255).astype(np.uint8)
    assert np.array_equal(np.asarray(_to_rgb(Image.fromarray(grey, mode="F")))[..., 0], expected)
    torch.testing.assert_close(enc.encode_image(Image.fromarray(grey, mode="F")), enc.encode_image(expected), atol=ATOL, rtol=0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_float_grey_image_holding_nan_or_inf_is_refused_as_an_array_is(enc: Encoder, tmp_path, bad) -> None:
    """A mode "F" picture holding NaN (or inf) encoded silently, its NaN as black pixels, where a
    float array holding one is refused."""
    grey = np.full((8, 8), 0.5, np.float32)
    grey[3, 4] = bad
    with pytest.raises(ArgumentError, match="NaN or infinite"):
        enc.encode_image(Image.fromarray(grey, mode="F"))
    Image.fromarray(grey, mode="F").save(tmp_path / "grey.tiff")
    with pytest.raises(ArgumentError, match="grey.tiff.*NaN or infinite"):
        enc.encode_image(tmp_path / "grey.tiff")


def test_single_channel_arrays_and_tensors_are_grey(enc: Encoder) -> None:
    """(H, W, 1) arrays and (1, H, W) tensors read as the (H, W) grey picture."""
    grey = _picture()[:, :, 0]
    ref = enc.encode_image(grey)
    torch.testing.assert_close(enc.encode_image(grey[:, :, None]), ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(enc.encode_image(torch.from_numpy(grey)[None].float() / 255), ref, atol=ATOL, rtol=0)


def test_a_numpy_batch_gives_one_embedding_per_picture(enc: Encoder) -> None:
    """An (n, H, W, C) array is n pictures, each embedded as itself, in order."""
    pics = [_picture(seed=s) for s in (1, 2, 3)]
    z = enc.encode_image(np.stack(pics))
    assert z.shape == (3, 32)
    for i, p in enumerate(pics):
        torch.testing.assert_close(z[i : i + 1], enc.encode_image(p), atol=ATOL, rtol=0)


def test_default_batch_sizes(enc: Encoder, monkeypatch: pytest.MonkeyPatch) -> None:
    """encode_image sends 32 pictures per model call by default, encode_text 64 prompts."""
    images = _counting(monkeypatch, enc.model, "encode_image")
    enc.encode_image(torch.rand(33, 3, 8, 8))
    assert images == [32, 1]
    texts = _counting(monkeypatch, enc.model, "encode_text")
    enc.encode_text([f"p{i}" for i in range(65)])
    assert texts == [64, 1]


def test_batch_size_true_is_refused(enc: Encoder) -> None:
    """A bool is not a batch size (True would silently mean 1)."""
    from latentlab.errors import ArgumentError

    with pytest.raises(ArgumentError, match="batch_size must be a positive integer, got True"):
        enc.encode_text("a cat", batch_size=True)  # type: ignore[arg-type]


def test_a_prompt_one_token_past_the_context_warns(enc: Encoder) -> None:
    """76 words + start and end tokens (78) is cut to 77 and warns; 75 words (77) fit and do not."""
    with pytest.warns(UserWarning, match="has 78 tokens"):
        enc.encode_text(" ".join(["cat"] * 76))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        enc.encode_text(" ".join(["cat"] * 75))
    assert not [w for w in seen if "tokens" in str(w.message)]


def test_from_open_clip_names_a_pretrained_tag(enc: Encoder, monkeypatch: pytest.MonkeyPatch) -> None:
    """Encoder.from_open_clip(model, tag): name "model/tag", space "open_clip/model/tag"."""
    import latentlab.encoders as encoders

    def fake_load(model_name, **kw):
        return {"model": enc.model, "preprocess": enc.preprocess, "tokenizer": enc.tokenizer,
                "info": {"model": model_name, "pretrained": kw["pretrained"]}, "fingerprint": "fp"}

    monkeypatch.setattr(encoders, "_load_open_clip", fake_load)
    e = Encoder.from_open_clip("ViT-B-32", "laion2b_s34b_b79k")
    assert e.name == "ViT-B-32/laion2b_s34b_b79k" and e.space == "open_clip/ViT-B-32/laion2b_s34b_b79k"
    assert e.describe()["name"] == "ViT-B-32/laion2b_s34b_b79k"


def test_image_size_of_a_non_square_input_is_its_larger_side() -> None:
    """A vision tower whose preprocess size is (H, W) reports max(H, W) as image_size."""
    from latentlab.encoders import _infer_image_size

    model = torch.nn.Module()
    model.visual = torch.nn.Module()
    model.visual.preprocess_cfg = {"size": (224, 336)}
    assert _infer_image_size(model) == 336


def test_transformers_offline_switches_the_hub_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """TRANSFORMERS_OFFLINE=1 alone means offline, as HF_HUB_OFFLINE=1 does."""
    import huggingface_hub.constants

    from latentlab.encoders import _hub_offline

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    assert not _hub_offline()
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    assert _hub_offline()


def test_dtype_names_resolve_to_their_precision() -> None:
    """'bf16' / 'bfloat16' are bfloat16, 'fp16' / 'half' float16, 'fp32' float32."""
    from latentlab.encoders import _resolve_dtype

    assert _resolve_dtype("bf16") == _resolve_dtype("bfloat16") == _resolve_dtype("torch.bfloat16") == torch.bfloat16
    assert _resolve_dtype("fp16") == _resolve_dtype("half") == torch.float16
    assert _resolve_dtype("fp32") == _resolve_dtype("float") == torch.float32


def test_a_batch_inside_a_list_gives_all_its_pictures(enc: Encoder) -> None:
    """A list item that is a batch (array or tensor) expands to all its pictures, in order."""
    pics = [_picture(seed=s) for s in (4, 5)]
    batch = torch.from_numpy(np.stack(pics)).permute(0, 3, 1, 2).float() / 255
    z = enc.encode_image([_picture(seed=6), batch, np.stack(pics)])
    assert z.shape == (5, 32)
    singles = enc.encode_image([_picture(seed=6), *pics, *pics])
    torch.testing.assert_close(z, singles, atol=ATOL, rtol=0)


def test_a_premultiplied_grey_alpha_picture_reads_as_its_straight_alpha_twin() -> None:
    """A PIL picture of mode 'La' (grey with premultiplied alpha) is composited on white as its 'LA'
    twin is (Pillow has no La -> RGBA conversion: a raw ValueError in show, contact_sheet and
    the encoders); 'RGBa' likewise as 'RGBA'."""
    from PIL import Image

    from latentlab.encoders import _to_rgb

    la = Image.new("LA", (4, 4), (100, 128))
    assert np.array_equal(np.asarray(_to_rgb(la.convert("La"))), np.asarray(_to_rgb(la.convert("La").convert("LA"))))
    assert np.asarray(_to_rgb(la.convert("La")))[0, 0].tolist() == [177, 177, 177]  # 100 at half opacity on white
    rgba = Image.new("RGBA", (4, 4), (200, 40, 0, 128))
    assert np.array_equal(np.asarray(_to_rgb(rgba.convert("RGBa"))), np.asarray(_to_rgb(rgba.convert("RGBa").convert("RGBA"))))

# -- properties: one picture in every container, batches, the cache, texts, odd arrays and modes ----

PROPS = settings(max_examples=20, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip


def _pixels(draw, channels: int | None = None, max_side: int = 24) -> np.ndarray:
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    c = channels if channels is not None else draw(st.sampled_from([0, 1, 3, 4]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    shape = (h, w) if c == 0 else (h, w, c)
    a = rng.integers(0, 256, size=shape, dtype=np.uint8)
    if c == 4 and draw(st.booleans()):  # alpha only 0 or 255 as well as partial
        a[..., 3] = np.where(a[..., 3] > 127, 255, 0)
    return a


pixels = st.composite(_pixels)


def _containers(a: np.ndarray, folder: Path) -> dict[str, object]:
    """The same picture as every input kind encode_image takes."""
    path = folder / "pic.png"
    Image.fromarray(a if a.ndim == 2 or a.shape[2] != 1 else a[:, :, 0]).save(path)
    chw = torch.from_numpy(a if a.ndim == 3 else a[:, :, None]).permute(2, 0, 1)
    with Image.open(path) as im:
        pil = im.copy()
    return {
        "path": str(path), "Path": path, "PIL": pil,
        "uint8 array": a, "float32 array": a.astype(np.float32) / 255, "float64 array": a.astype(np.float64) / 255,
        "uint8 tensor": chw, "float tensor": chw.float() / 255, "batch tensor": (chw.float() / 255)[None],
        "batch array": a[None] if a.ndim == 3 else a[None, :, :, None], "list": [a],
    }  # fmt: skip


@PROPS
@given(a=pixels())
def test_the_same_picture_gives_the_same_row_in_every_container(enc: Encoder, a: np.ndarray) -> None:
    """A picture (grey, grey+1 channel, RGB, RGBA; 1x1 up to thin strips) as a path, a PIL image, a
    uint8 / float array, a tensor, a batch of one or in a list: one unit-norm row, the same in
    every container, tagged with the encoder's space."""
    with tempfile.TemporaryDirectory() as d:
        variants = _containers(a, Path(d))
        ref = enc.encode_image(variants["uint8 array"])
        assert ref.shape == (1, 32) and ref.dtype == torch.float32 and space_of(ref) == "tiny-random"
        torch.testing.assert_close(ref.norm(dim=-1), torch.ones(1), atol=1e-5, rtol=0)
        for what, x in variants.items():
            z = enc.encode_image(x)
            assert space_of(z) == "tiny-random", what
            torch.testing.assert_close(z, ref, atol=ATOL, rtol=0, msg=f"{what} differs from the uint8 array, shape {a.shape}")


@PROPS
@given(
    pics=st.lists(pixels(channels=3), min_size=1, max_size=6),
    batch_size=st.integers(1, 7),
    order=st.randoms(use_true_random=False),
)
def test_rows_follow_the_pictures_whatever_the_batch_size_and_order(enc, pics, batch_size, order) -> None:
    """n pictures give n rows, row i the picture i alone, whatever the batch size, and a
    shuffled list gives the same rows shuffled."""
    alone = torch.cat([enc.encode_image(p) for p in pics])
    z = enc.encode_image(pics, batch_size=batch_size)
    assert z.shape == (len(pics), 32) and space_of(z) == "tiny-random"
    torch.testing.assert_close(z, alone, atol=ATOL, rtol=0)
    perm = list(range(len(pics)))
    order.shuffle(perm)
    zp = enc.encode_image([pics[i] for i in perm], batch_size=batch_size)
    torch.testing.assert_close(zp, alone[perm], atol=ATOL, rtol=0)


_POOL_TEXTS = ["a cat", "a dog", "", "a red circle", "A CAT", "a  cat", "café", "猫"]


@PROPS
@given(calls=st.lists(st.tuples(st.lists(st.integers(0, 11), min_size=1, max_size=6), st.integers(1, 4)),
                      min_size=1, max_size=5))  # fmt: skip
def test_a_cache_hit_returns_exactly_what_the_miss_computed(enc: Encoder, calls) -> None:
    """Over any sequence of encode calls (texts and pictures, repeats within a call, any batch
    size) with a cache: every item not yet cached before a call is a miss, every other a hit;
    a hit is bit for bit the row the miss that stored it computed, and every row is what the
    encoder without a cache returns."""
    pics = [np.random.default_rng(s).integers(0, 256, (9, 11, 3), dtype=np.uint8) for s in range(4)]
    with tempfile.TemporaryDirectory() as d:
        e = create_encoder("tiny", cache=Path(d) / "cache")
        stored: dict[int, torch.Tensor] = {}
        for items, bs in calls:
            before_hits, before_misses = e.cache.hits, e.cache.misses
            new = sum(1 for i in items if i not in stored)
            computed: dict[int, torch.Tensor] = {}
            for inputs, encode, offset in (([i for i in items if i < 8], e.encode_text, 0),
                                           ([i for i in items if i >= 8], e.encode_image, 8)):  # fmt: skip
                if not inputs:
                    continue
                z = encode([_POOL_TEXTS[i] if i < 8 else pics[i - 8] for i in inputs], batch_size=bs)
                assert space_of(z) == "tiny-random" and z.shape == (len(inputs), 32)
                for row, i in enumerate(inputs):
                    ref = enc.encode_text(_POOL_TEXTS[i]) if i < 8 else enc.encode_image(pics[i - 8])
                    torch.testing.assert_close(z[row : row + 1], ref, atol=ATOL, rtol=0)
                    if i in stored:
                        assert torch.equal(z[row], stored[i]), (i, items)
                    else:
                        computed[i] = z[row].clone()  # (a repeat in the same call: the last one is stored)
            assert e.cache.misses - before_misses == new
            assert e.cache.hits - before_hits == len(items) - new
            stored.update(computed)


@PROPS
@given(texts=st.lists(st.text(max_size=40), min_size=1, max_size=5), batch_size=st.integers(1, 6))
def test_any_unicode_text_gives_one_unit_row(enc: Encoder, texts: list[str], batch_size: int) -> None:
    """Any prompts (any unicode but lone surrogates, "" included, repeats) give one unit-norm
    row each, tagged, each the prompt encoded alone; a lone surrogate is an ArgumentError
    naming the prompt."""
    clean = all(not any(0xD800 <= ord(c) <= 0xDFFF for c in t) for t in texts)
    if not clean:
        with pytest.raises(ArgumentError, match=r"texts\[\d+\].*not text"):
            enc.encode_text(texts, batch_size=batch_size)
        return
    z = enc.encode_text(texts, batch_size=batch_size)
    assert z.shape == (len(texts), 32) and z.dtype == torch.float32 and space_of(z) == "tiny-random"
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(len(texts)), atol=1e-5, rtol=0)
    for i, t in enumerate(texts):
        torch.testing.assert_close(z[i : i + 1], enc.encode_text(t), atol=ATOL, rtol=0)


_WORDS = ["cat", "a", "red", "circle", "über", "🙂", "x-ray", "naïve", "12", "!!"]


@PROPS
@given(words=st.lists(st.sampled_from(_WORDS), min_size=60, max_size=90))
def test_the_truncation_warning_fires_exactly_for_prompts_past_the_context(enc: Encoder, words: list[str]) -> None:
    """A prompt warns (once) exactly when its tokens and the start and end tokens pass the
    context of 77, and then words appended to it change nothing."""
    text = " ".join(words)
    cut = len(enc.tokenizer.encode(text)) + 2 > 77
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        z = enc.encode_text(text)
    said = [w for w in seen if "context of 77 tokens" in str(w.message)]
    assert len(said) == int(cut), (len(enc.tokenizer.encode(text)), [str(w.message) for w in seen])
    if cut:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert torch.equal(enc.encode_text(text + " and a green triangle"), z)


def _odd_array(draw) -> np.ndarray:
    ndim = draw(st.integers(0, 5))
    shape = tuple(draw(st.lists(st.sampled_from([0, 1, 2, 3, 4, 5]), min_size=ndim, max_size=ndim)))
    dtype = draw(st.sampled_from([np.uint8, np.float16, np.float32, np.float64, np.int32, np.uint16, np.bool_]))
    scale = draw(st.sampled_from([1.0, 255.0, -1.0, float("nan"), float("inf")]))
    a = np.random.default_rng(draw(st.integers(0, 99))).random(shape) * scale
    with np.errstate(invalid="ignore", over="ignore"):
        return np.nan_to_num(a).astype(dtype) if np.issubdtype(dtype, np.integer) or dtype == np.bool_ else a.astype(dtype)


@PROPS
@given(a=st.composite(_odd_array)(), as_tensor=st.booleans())
def test_any_array_or_tensor_gives_rows_or_an_argument_error(enc: Encoder, a: np.ndarray, as_tensor: bool) -> None:
    """An array or tensor of any shape (empty, 0-d, 5-d, 2 or 5 channels) and dtype (int,
    uint16, bool, float out of [0, 1], NaN) gives unit rows or an ArgumentError naming
    ``images``, never a raw error."""
    x = a
    if as_tensor:
        x = torch.from_numpy(a.astype(np.int32) if a.dtype == np.uint16 else a)
    try:
        z = enc.encode_image(x)
    except ArgumentError as e:
        assert str(e).startswith("images")
    else:
        assert z.ndim == 2 and z.shape[1] == 32 and space_of(z) == "tiny-random"
        torch.testing.assert_close(z.norm(dim=-1), torch.ones(len(z)), atol=1e-5, rtol=0)


@PROPS
@given(a=pixels(channels=0), key=st.integers(0, 255))
def test_a_grey_png_colour_key_is_white_at_8_and_at_16_bits(enc: Encoder, tmp_path_factory, a: np.ndarray, key: int) -> None:
    """A grey PNG with a colour key (tRNS) reads as the picture with its key pixels white, the
    same for the 8-bit file and for the 16-bit one of the same picture and key."""
    a[: max(1, a.shape[0] // 2)] = key  # (some pixels carry the key)
    d = tmp_path_factory.mktemp("key")
    Image.fromarray(a, "L").save(d / "g8.png", transparency=key)
    Image.fromarray(a.astype(np.int32) * 257, "I").convert("I;16").save(d / "g16.png", transparency=key * 257)
    white = np.where(a == key, 255, a).astype(np.uint8)
    ref = enc.encode_image(white)
    torch.testing.assert_close(enc.encode_image(d / "g8.png"), ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(enc.encode_image(d / "g16.png"), ref, atol=ATOL, rtol=0)


@PROPS
@given(a=pixels(channels=3), b=pixels(channels=3), orientation=st.sampled_from([2, 3, 4, 5, 6, 7, 8]))
def test_cache_keys_follow_a_files_content_not_its_name(enc: Encoder, tmp_path_factory, a, b, orientation) -> None:
    """With a cache: a file rewritten in place with another picture, or with the same pixels
    and an EXIF orientation, is encoded anew (its new embedding, not the old entry's); a copy
    under another name hits."""
    d = tmp_path_factory.mktemp("rewrite")
    e = create_encoder("tiny", cache=d / "cache")
    path = d / "p.png"
    Image.fromarray(a).save(path)
    za = e.encode_image(path)
    Image.fromarray(b).save(path)  # rewritten in place
    zb = e.encode_image(path)
    torch.testing.assert_close(zb, enc.encode_image(b), atol=ATOL, rtol=0)
    img = Image.fromarray(b)
    exif = img.getexif()
    exif[0x0112] = orientation
    img.save(path, exif=exif.tobytes())  # same pixels, turned by its EXIF tag
    with Image.open(path) as im:
        upright = ImageOps.exif_transpose(im)
    torch.testing.assert_close(e.encode_image(path), enc.encode_image(np.asarray(upright)), atol=ATOL, rtol=0)
    Image.fromarray(a).save(d / "copy.png")
    hits = e.cache.hits
    assert torch.equal(e.encode_image(d / "copy.png"), za) and e.cache.hits == hits + 1


_MODES = ["1", "L", "P", "RGB", "RGBA", "LA", "CMYK", "I", "I;16", "F"]


@PROPS
@given(a=pixels(channels=3), mode=st.sampled_from(_MODES))
def test_a_pil_image_of_any_mode_reads_as_its_png_file(enc: Encoder, tmp_path_factory, a: np.ndarray, mode: str) -> None:
    """A PIL image of any mode (1, L, P, RGBA, LA, CMYK, 16-bit, float...) encodes as the file it
    saves to (as PNG, or TIFF for CMYK, 32-bit and float), and as its RGB conversion where that is what
    it shows (no alpha, no 16-bit or float data)."""
    base = Image.fromarray(a)
    if mode in ("I", "I;16"):
        im = Image.fromarray(np.asarray(base.convert("L")).astype(np.int32) * 257, "I")
        im = im if mode == "I" else im.convert("I;16")
    elif mode == "F":
        im = Image.fromarray(np.asarray(base.convert("L")).astype(np.float32) / 255, "F")
    else:
        im = base.convert(mode)
    d = tmp_path_factory.mktemp("modes")
    path = d / ("p.tif" if mode in ("CMYK", "F", "I") else "p.png")
    im.save(path)
    z = enc.encode_image(im)
    assert z.shape == (1, 32) and space_of(z) == "tiny-random"
    torch.testing.assert_close(enc.encode_image(path), z, atol=ATOL, rtol=0, msg=mode)
    if mode in ("1", "L", "P", "RGB", "CMYK"):
        torch.testing.assert_close(enc.encode_image(im.convert("RGB")), z, atol=ATOL, rtol=0, msg=mode)
    if mode in ("I", "I;16", "F"):
        torch.testing.assert_close(enc.encode_image(base.convert("L")), z, atol=ATOL, rtol=0, msg=mode)


def test_a_pil_image_whose_file_is_closed_is_an_argument_error(enc: Encoder, tmp_path: Path) -> None:
    """A PIL image opened lazily and used after its ``with Image.open(...)`` block (its file
    closed, its pixels never read) is an ArgumentError naming it and the fix, for an RGB picture
    too (a raw AssertionError from Pillow inside the model's transform before)."""
    pic = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    for mode in ("RGB", "L"):
        path = tmp_path / f"{mode}.png"
        Image.fromarray(pic).convert(mode).save(path)
        with Image.open(path) as im:
            pass
        for cache in (None, tmp_path / "cache"):
            enc.cache = cache
            try:
                said = r"images\[1\]: could not read PIL image \(mode '" + mode + r"'\).*im\.load\(\)"
                with pytest.raises(ArgumentError, match=said):
                    enc.encode_image([pic, im])
            finally:
                enc.cache = None


def test_an_animated_file_is_said_on_a_cache_hit_too(tmp_path: Path) -> None:
    """An animated picture given by path warns that one frame is read each time it is encoded,
    a cache hit too (it was said only when the file was decoded, on a miss), once per call,
    where encode_image was called."""
    e = create_encoder("tiny", cache=tmp_path / "cache")
    path = tmp_path / "anim.gif"
    a, b = Image.new("RGB", (16, 16), (220, 30, 30)), Image.new("RGB", (16, 16), (30, 30, 220))
    a.save(path, save_all=True, append_images=[b], duration=100, loop=0)
    for hits in (0, 1):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            e.encode_image(path)
        said = [w for w in seen if "anim.gif' is an animated picture (2 frames), read as one of them, frame 0" in str(w.message)]
        assert e.cache.hits == hits and len(said) == 1 and said[0].filename == __file__


def test_la_images_and_tensors_without_pixels(enc: Encoder) -> None:
    """A premultiplied-alpha grey PIL image ("La") reads as its "LA" picture (any mode is taken;
    it was an ArgumentError); a sparse or meta tensor is an ArgumentError saying what to pass
    (raw TypeError / NotImplementedError before)."""
    la = Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 10, 2), dtype=np.uint8), "LA")
    premultiplied = la.convert("La")
    torch.testing.assert_close(enc.encode_image(premultiplied), enc.encode_image(premultiplied.convert("LA")), atol=ATOL, rtol=0)
    with pytest.raises(ArgumentError, match=r"images: a sparse_coo tensor has no pixels to read; pass t\.to_dense\(\)"):
        enc.encode_image(torch.rand(3, 8, 8).to_sparse())
    with pytest.raises(ArgumentError, match=r"images\[0\]: a meta tensor has no pixels"):
        enc.encode_image([torch.zeros(3, 8, 8, device="meta")])


@PROPS
@given(dim=st.integers(1, 64), seed=st.integers(0, 2**32 - 1), as_numpy=st.booleans())
def test_an_entry_put_is_got_back_bit_for_bit(dim: int, seed: int, as_numpy: bool) -> None:
    """A unit vector of any size, put as a tensor or an array (float64 included), is got back as
    the same float32 values, bit for bit, and counts as one hit; another key is a miss."""
    v = np.random.default_rng(seed).standard_normal(dim)
    v = v / np.linalg.norm(v)
    with tempfile.TemporaryDirectory() as d:
        cache = EmbeddingCache(d)
        key = EmbeddingCache.make_key("fp", "text", str(seed))
        cache.put(key, v if as_numpy else torch.from_numpy(v))
        got = cache.get(key, dim=dim)
        assert got is not None and got.dtype == torch.float32
        assert torch.equal(got, torch.from_numpy(v.astype(np.float32)))
        assert cache.get(EmbeddingCache.make_key("fp", "image", str(seed))) is None
        assert (cache.hits, cache.misses, len(cache)) == (1, 1, 1)


# -- second pass (2026-12-07): long names, bytes paths, damaged cache headers, 0-d text arrays --


class _BytesPath(os.PathLike):
    def __fspath__(self):
        return b"/tmp"


def test_encode_image_name_too_long_is_argument_error(tiny_encoder):
    # a caption passed to encode_image by mistake: a raw OSError (ENAMETOOLONG) from Path.exists before
    with pytest.raises(ArgumentError, match=r"images: .*\(5000 characters\) cannot be opened as a file \(File name too long\).*encode_text"):
        tiny_encoder.encode_image("a photo " * 625)
    with pytest.raises(ArgumentError, match=r"images\[1\]: .* cannot be opened as a file"):
        tiny_encoder.encode_image([np.zeros((4, 4, 3), np.uint8), "/tmp/" + "x" * 300 + ".png"])


def test_encode_image_bytes_pathlike_is_argument_error(tiny_encoder):
    # an os.PathLike giving bytes: a raw TypeError from pathlib before
    with pytest.raises(ArgumentError, match=r"images\[0\] must be an image file path"):
        tiny_encoder.encode_image([_BytesPath()])


def test_embedding_cache_bad_directory_is_argument_error(tmp_path):
    with pytest.raises(ArgumentError, match=r"EmbeddingCache directory .*\(3\d\d characters\) cannot be used as a folder"):
        EmbeddingCache(str(tmp_path / ("y" * 300)))
    with pytest.raises(ArgumentError, match=r"EmbeddingCache directory must be a folder path"):
        EmbeddingCache(_BytesPath())


def _good_entry() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.full(4, 0.5, np.float32), allow_pickle=False)
    return buf.getvalue()


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b.replace(b"}", b" ", 1),  # tokenize.TokenError from numpy's header parser (an unclosed dict)
        lambda b: b.replace(b"(4,)", b"(99999999999999,)"),  # MemoryError: 364 TiB
        lambda b: b[:60] + bytes([b[60] ^ 0xFF]) + b[61:],  # (one bit of the header flipped: TokenError too)
    ],
)
def test_cache_damaged_header_is_a_miss(tmp_path, damage):
    cache = EmbeddingCache(tmp_path)
    key = EmbeddingCache.make_key("fp", "text", "a cat")
    cache.path(key).parent.mkdir(parents=True)
    cache.path(key).write_bytes(damage(_good_entry()))
    assert cache.get(key, dim=4) is None  # documented: a corrupt entry counts as a miss
    assert (cache.hits, cache.misses) == (0, 1)


def test_encoder_recomputes_over_damaged_entry(tmp_path):
    from latentlab.presets import create_encoder

    enc = create_encoder("tiny", cache=tmp_path)
    z = enc.encode_text("a cat")
    (entry,) = tmp_path.glob("??/*.npy")
    entry.write_bytes(entry.read_bytes().replace(b"}", b" ", 1))  # a raw TokenError before
    again = enc.encode_text("a cat")
    assert torch.allclose(again, z, atol=1e-6) and space_of(again) == enc.space
    assert np.load(entry).shape == (32,)  # rewritten


@settings(derandomize=True, max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(1, 9), st.integers(1, 9), st.sampled_from([0, 3, 4]), st.data())
def test_same_picture_any_container_same_embedding(tiny_encoder, tmp_path_factory, h, w, c, data):
    # documented: "the same picture gives the same embedding whatever its container"
    from PIL import Image

    a = data.draw(arrays(np.uint8, (h, w) if c == 0 else (h, w, c)))
    if c == 4:
        a = a.copy()
        a[..., 3] = data.draw(st.sampled_from([0, 255]))
    ref = tiny_encoder.encode_image(a)
    chw = torch.from_numpy(a if a.ndim == 3 else a[..., None]).permute(2, 0, 1)
    pil = Image.fromarray(a, mode={0: "L", 3: "RGB", 4: "RGBA"}[c])
    path = tmp_path_factory.mktemp("pic") / "x.png"
    pil.save(path)
    for form in (a.astype(np.float32) / 255, chw, chw.float() / 255, [a], (x for x in [a]), pil, path, str(path)):
        z = tiny_encoder.encode_image(form)
        assert z.shape == (1, tiny_encoder.dim) and space_of(z) == tiny_encoder.space
        assert torch.allclose(z, ref, atol=1e-5)


@settings(derandomize=True, max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40), min_size=1, max_size=4),
       st.integers(1, 3))  # fmt: skip
def test_text_cache_round_trip(tmp_path_factory, texts, batch_size):
    from latentlab.presets import create_encoder

    enc = create_encoder("tiny", cache=tmp_path_factory.mktemp("cache"))
    first = enc.encode_text(texts, batch_size=batch_size)
    second = enc.encode_text(iter(texts), batch_size=batch_size)
    plain = create_encoder("tiny").encode_text(texts)
    assert torch.allclose(first, plain, atol=1e-6) and torch.equal(first, second)
    assert enc.cache.hits == len(texts) and space_of(second) == enc.space


def test_encode_text_zero_d_array(tiny_encoder):
    # iterating a 0-d array or tensor raised a raw TypeError ("iteration over a 0-d array")
    z = tiny_encoder.encode_text(np.array("a red apple"))
    assert torch.equal(z, tiny_encoder.encode_text("a red apple"))
    for bad in (np.array(3), torch.tensor(3)):
        with pytest.raises(ArgumentError, match=r"texts must be a string or a list of strings, got (ndarray|Tensor)"):
            tiny_encoder.encode_text(bad)


def test_empty_cache_directory_is_refused(tmp_path, monkeypatch):
    # "" was the current folder: entries written into ./ab/..., and clear() deleted them there
    from latentlab.presets import create_encoder

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ArgumentError, match=r"EmbeddingCache directory is empty"):
        create_encoder("tiny", cache="")
    assert list(tmp_path.iterdir()) == []


# -- EmbeddingCache.make_key --------------------------------------------------------------------


@settings(derandomize=True, max_examples=40, deadline=None)
@given(st.text(max_size=40), st.text(min_size=1, max_size=10))
def test_make_key_of_a_caption_is_unchanged(caption, kind):
    """A caption's key is the sha256 of fingerprint, kind and its UTF-8 bytes, as existing caches
    were written: a change to make_key must keep them hitting."""
    from latentlab.encoders import EmbeddingCache

    want = hashlib.sha256(b"fp\0" + kind.encode() + b"\0" + caption.encode("utf-8")).hexdigest()
    assert EmbeddingCache.make_key("fp", kind, caption) == want


def test_make_key_still_refuses_a_caption_that_is_not_text():
    from latentlab.encoders import EmbeddingCache
    from latentlab.errors import ArgumentError

    with pytest.raises(ArgumentError, match=r"content .*holds '\\udce9', which is not text"):
        EmbeddingCache.make_key("fp", "text", "caf\udce9")
