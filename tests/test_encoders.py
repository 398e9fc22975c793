"""Tests of latentlab.encoders: offline, seeded, on the tiny random open_clip model."""

from __future__ import annotations

import json
import socket
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

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
    with pytest.raises(ArgumentError, match="not a file"):
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
    ],
)
def test_bad_images(enc: Encoder, images: object, pattern: str) -> None:
    with pytest.raises(ArgumentError, match=pattern):
        enc.encode_image(images)


@pytest.mark.parametrize(
    ("texts", "pattern"),
    [([], "empty list"), (None, "string or a list"), (["ok", 3], r"texts\[1\] must be a string"), (b"x", "string")],
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
    assert loaded.space == "open_clip/roundtrip-tiny/weights.safetensors"
    assert loaded.fingerprint().startswith("sha256:") and len(loaded.fingerprint()) == 7 + 64
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


def test_missing_weights_message_says_which_cache():
    from latentlab.encoders import _not_available

    default = str(_not_available("ViT-L-14", "openai", "timm/x", ["open_clip_model.safetensors"], None, "offline"))
    assert "are not in the default Hugging Face cache and cannot be downloaded" in default
    given = str(_not_available("ViT-L-14", "openai", "timm/x", ["open_clip_model.safetensors"], "/data/hf", "offline"))
    assert "are not in the cache /data/hf and cannot be downloaded" in given
