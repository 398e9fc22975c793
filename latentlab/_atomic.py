"""Whole-file writes, in one place: a file is written under a fresh temporary name beside it and
renamed onto its own name once complete (:func:`write_whole`), so a reader finds the old file or
the new one whole, never a part, and two writers of one file never share a temporary name.

The temporary name is ``.<name>.<8 hex>.tmp`` (``.tmp.<ext>`` with an extension, for writers
that pick their format by it): hidden, beside the target (a rename never crosses file systems),
and recognised by :func:`is_temp_name`, so that the leftovers of a hard kill can be found and
removed (:func:`latentlab.render._remove_stale_temps`, :func:`latentlab.video.remove_stale_temps`,
:func:`latentlab.mini.data.build_index`'s picture folders, :class:`latentlab.encoders.EmbeddingCache`).

Only the standard library is imported, so every module (``mini/`` too) can use it.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from pathlib import Path
from typing import Callable

__all__ = ["temp_path", "temp_stem", "is_temp_name", "remove_temps", "write_whole"]

_TEMP_STEM_BYTES = 200  # + ".", "." + 8 hex + ".tmp." + a short extension: within 255 bytes


def temp_path(target: Path, ext: str | None = None) -> Path:
    """A fresh hidden name next to ``target``, unique to this write (two writers never share one):
    ``.<name>.<8 hex>.tmp.<ext>`` (``ext`` default ``target``'s extension; ``""``: none), the
    one temporary name every latentlab write uses."""
    target = Path(target)
    ext = ext if ext is not None else target.suffix.lstrip(".")
    suffix = f".{ext}" if ext else ""
    return target.with_name(f".{temp_stem(target)}.{secrets.token_hex(4)}.tmp{suffix}")


def temp_stem(target: Path) -> str:
    """``target``'s name cut to at most 200 bytes, so that a target name near the file system's
    255-byte limit still fits its temporary name (cut by bytes, not characters: 80 CJK characters
    are 240 bytes).

    The bytes are those of the file-system encoding (:func:`os.fsencode`), and the cut is decoded
    back with :func:`os.fsdecode`, so the stem always writes back to the very bytes of the name's
    start: under a non-UTF-8 encoding (``LC_ALL=C``, ascii) a name's other bytes arrive as
    surrogate escapes, which a UTF-8 round trip had turned into real characters that cannot be
    written (UnicodeEncodeError). A cut that would split a UTF-8 character (continuation bytes
    0x80-0xBF follow it) is moved back to the character's start, so the temporary name is valid
    UTF-8 whenever the name is."""
    name = Path(target).name
    try:
        raw = os.fsencode(name)
    except UnicodeEncodeError:  # the file system cannot hold this name: writing it fails on its own
        return name[: _TEMP_STEM_BYTES // 4]
    if len(raw) <= _TEMP_STEM_BYTES:
        return name
    cut = _TEMP_STEM_BYTES
    while cut > _TEMP_STEM_BYTES - 3 and 0x80 <= raw[cut] < 0xC0:  # a UTF-8 character has <= 3 continuation bytes
        cut -= 1
    return os.fsdecode(raw[:cut])


def is_temp_name(name: str, stem: str | None = None) -> bool:
    """Whether ``name`` is one :func:`temp_path` gives (for a target whose cut name is ``stem``,
    or any)."""
    return re.fullmatch(rf"\.{'.+' if stem is None else re.escape(stem)}\.[0-9a-f]{{8}}\.tmp(\.[A-Za-z0-9]+)?", name) is not None


def write_whole(path: Path, write: Callable[[Path], object], ext: str | None = "", *, tmp: Path | None = None) -> None:
    """``write(tmp)`` into a fresh temporary name beside ``path`` (:func:`temp_path`; ``ext`` as
    there, default none; or the ``tmp`` the caller has just created, e.g. to word its own error
    where it cannot be), then renamed onto ``path``: a reader finds the old file or the new one
    whole, never a part. Any failure, Ctrl-C included, removes the temporary file and is raised
    as it was (a temporary file that cannot be removed either does not hide it)."""
    if tmp is None:
        tmp = temp_path(Path(path), ext)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def remove_temps(folder: Path, stem: str | None = None, older_than: float = 0.0) -> list[Path]:
    """Remove the temporary files :func:`temp_path` names in ``folder`` (of a target whose cut
    name is ``stem``, or of any) untouched for ``older_than`` seconds: the leftovers of writers
    killed outright (SIGKILL), which nothing else removes, as each write takes a fresh name. One
    listing of ``folder``; returns the files removed."""
    gone = []
    now = time.time()
    for p in Path(folder).glob(".*.tmp*"):
        if is_temp_name(p.name, stem) and p.is_file():
            with contextlib.suppress(OSError):
                if older_than <= 0 or now - p.stat().st_mtime >= older_than:
                    p.unlink()
                    gone.append(p)
    return gone
