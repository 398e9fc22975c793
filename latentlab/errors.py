"""One exception family for everything latentlab raises on purpose.

Every error names the argument at fault, what was wrong with it (shape, value, path) and
the fix. Catch :class:`LatentlabError` to catch them all.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "LatentlabError",
    "ArgumentError",
    "SpaceError",
    "SpecError",
    "ModelNotAvailableError",
]


class LatentlabError(Exception):
    """Base class of every error latentlab raises on purpose."""


class ArgumentError(LatentlabError, ValueError):
    """An argument has the wrong type, shape or value. The message names it and the fix."""


class SpaceError(ArgumentError):
    """Embeddings from different CLIP spaces (or of different sizes) were mixed."""


class SpecError(ArgumentError):
    """A render spec (JSON/TOML) is malformed; the message names the field and the fix."""


class ModelNotAvailableError(LatentlabError):
    """A model's weights are not on this machine and cannot be fetched."""


def is_path_error(exc: OSError) -> bool:
    """Whether the system refused ``exc``'s path itself (missing, not permitted, read-only, a file
    where a folder should be, ...): only then is "check the path and its permissions" the fix."""
    import errno

    return exc.errno in (errno.ENOENT, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR, errno.EEXIST,
                         errno.EROFS, errno.ENAMETOOLONG)  # fmt: skip


def is_disk_full(exc: OSError) -> bool:
    """Whether ``exc`` says the disk is full or the user's quota used up: the fix is to free space and
    run the same command again (what was finished is kept)."""
    import errno

    return exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def os_error_text(exc: OSError, again: str) -> str:
    """``exc`` said in one line, with its file and the fix: on a full disk, free space and ``again``
    (e.g. "run the same command again"); for a path the system refused, check it; else none."""
    where = f" ({exc.filename})" if exc.filename else ""
    if is_disk_full(exc):
        fix = f"; free space and {again}"
    else:  # as the latentlab command says it: a broken pipe or an I/O error is no path's fault
        fix = "; check the path and its permissions" if is_path_error(exc) else ""
    return f"{exc.strerror or exc}{where}{fix}."


def from_an_import(exc: BaseException) -> bool:
    """Whether ``exc`` comes from a package that failed to import, not from the file or model being
    loaded: an ImportError, or any error raised while a module's top level ran (a torchvision built
    for another torch raises a RuntimeError or an OSError as it loads), itself or in the errors it was
    raised from (diffusers and transformers wrap a lazy import's failure in a RuntimeError "Failed to
    import ..."). Such an error keeps its own message: said as a damaged or missing file, its fix was
    wrong (download again, export again). Only the frames below the one that asks count, and an error
    the caller was handling when ``exc`` was raised (a load inside a script's ``except ImportError:``)
    is not one ``exc`` was raised from."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, ImportError):
            return True
        frames = []
        tb = e.__traceback__
        if e is exc and tb is not None:  # (from the frame that asks down: not a script's top level catching it)
            tb = tb.tb_next
        while tb is not None:
            if tb.tb_frame.f_code.co_name == "<module>":
                return True
            frames.append(tb.tb_frame)
            tb = tb.tb_next
        if e.__cause__ is not None:
            e = e.__cause__
        else:  # an error being handled as ``e`` was raised: one of ``e``'s own frames handled it (below the frame
            # that asks), or the caller's code did (a script's, a notebook cell's ``except ImportError:`` around the
            # load, whose handled error was taken for this one's cause: a damaged file passed on raw)
            ctx = None if e.__suppress_context__ else e.__context__
            tb = ctx.__traceback__ if ctx is not None else None
            e = ctx if tb is not None and any(tb.tb_frame is f for f in frames) else None
    return False


def run_reporting_errors(main: Callable[[], object]) -> None:
    """Run a ``python -m`` entry point: a :class:`LatentlabError`, or an ``OSError`` the system
    raised (a full disk, a folder that went away), is printed as one line ``error: ...`` with
    exit status 2, not a traceback (as the ``latentlab`` command reports them)."""
    import sys

    try:
        main()
    except LatentlabError as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)
        raise SystemExit(2) from None
    except OSError as e:
        print("error: " + os_error_text(e, "run the same command again (training: with --resume)"), file=sys.stderr)
        raise SystemExit(2) from None


def positive_int(text: str) -> int:
    """An ``argparse`` type for a count: an integer >= 1, else a usage error saying so."""
    import argparse

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {n}")
    return n


def thread_count(text: str) -> int:
    """An ``argparse`` type for ``--threads``: :func:`positive_int`, at most what
    ``torch.set_num_threads`` takes (a C int: a larger count raised a raw ValueError from torch)."""
    import argparse

    n = positive_int(text)
    if n > 2**31 - 1:
        raise argparse.ArgumentTypeError(f"must be an integer in [1, 2**31 - 1], got {n}")
    return n


def output_file(text: str) -> Path:
    """An ``argparse`` type for a file written at the end of a long run (a benchmark's ``--json``):
    ``~`` read as a shell reads it; a folder, or a file in a folder that is not there, is a usage
    error before the run, not a traceback after it."""
    import argparse

    try:
        path = user_path(text)
    except ArgumentError as exc:  # a NUL character
        raise argparse.ArgumentTypeError(str(exc)) from None
    if path.is_dir() or not path.absolute().parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: give a file in an existing folder")
    return path


def shown(value: object) -> str:
    """``repr(value)`` for an error message; an integer too long for Python to print (over 4300
    digits: ``repr`` raises a ValueError) is said by its size."""
    try:
        return repr(value)
    except ValueError:
        if isinstance(value, numbers.Integral):
            return f"<an integer of {int(value).bit_length()} bits>"
        raise


def result_fix(value: object, want: str) -> str:
    """`` Fix: ...`` naming the part of a latentlab result (``RenderResult``, ``IterativeEdit``,
    ``Pacing``; or a ``Trajectory`` given as embeddings) that holds what a call takes (``want``:
    ``"frames"``, ``"embeddings"`` or ``"trajectory"``), for an error about ``value``; ``""`` for anything else.
    (numpy read such a result as a 0-d object array, "shape ()", and check_embeddings said to
    encode inputs first: neither named the attribute.)"""
    if not type(value).__module__.startswith("latentlab."):
        return ""
    kind = type(value).__name__
    kind = f"{'an' if kind[:1] in 'AEIOU' else 'a'} {kind}"
    frames, embeddings = getattr(value, "frames", None), getattr(value, "embeddings", None)
    has_path = callable(getattr(getattr(value, "trajectory", None), "embeddings", None))
    if want == "frames":
        if hasattr(frames, "shape"):
            return f" Fix: pass its frames, e.g. result.frames ({kind} is not itself the frames)."
        if has_path:
            return (f" Fix: {kind} holds a path, not pictures: render it first, "
                    "frames = dec.render(result.trajectory), and pass the frames.")
        return ""
    if want == "trajectory":  # (a call that takes only a Trajectory: its embeddings would be refused too)
        return " Fix: pass its path, result.trajectory." if has_path else ""
    if callable(embeddings) and hasattr(getattr(value, "keyframes", None), "shape"):  # a Trajectory: a path, not points
        return (" Fix: pass its keyframes, path.keyframes ((K, d); path.keyframes[-1:] for its end, to chain from "
                "it), or its (T, d) frames' embeddings, path.embeddings().")
    if has_path:
        return (" Fix: pass its path, result.trajectory (a Trajectory, where one is taken), or its (T, d) "
                "embeddings, result.trajectory.embeddings().")
    if hasattr(embeddings, "shape"):
        return f" Fix: pass its embeddings, e.g. result.embeddings ({kind} is not itself the embeddings)."
    return ""


def check_int(value: object, name: str, *, minimum: int | None = None) -> int:
    """``value`` as an ``int`` if it is an integer (not a bool, not a float such as 1.7) of at
    least ``minimum``; else an :class:`ArgumentError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum}"
        raise ArgumentError(f"{name} must be an integer{bound}, got {shown(value)}.")
    return int(value)


def check_seed(value: object, name: str = "seed") -> int:
    """A random seed: an integer in [-2**63, 2**63) (what a torch generator takes, with room
    for the per-frame ``seed + k``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not -(2**63) <= value < 2**63:
        raise ArgumentError(f"{name} must be an integer in [-2**63, 2**63), got {shown(value)}.")
    return int(value)


def check_seeds_fit(seed: int, n: int, what: str, detail: str = "") -> None:
    """``seed + n - 1``, the seed of the last of ``n`` pictures drawn with ``seed + k``, must be a
    seed too (below 2**63, what a torch generator takes): else an :class:`ArgumentError` naming
    ``seed``, before any work (the decoder refused ``seeds[...]``, a value the caller never gave,
    after the first pictures were drawn). ``what``: the pictures (``"frame"``); ``detail``: what
    makes them take a seed each (``" with noise='per-frame'"``)."""
    if seed + n - 1 >= 2**63:
        raise ArgumentError(
            f"seed={seed}{detail} gives {what} {n - 1} the seed {seed + n - 1}, past 2**63 - 1; use a seed below "
            f"{2**63 - n + 1}."
        )


def is_bool(value: object) -> bool:
    """Whether ``value`` is a bool: Python's or numpy's (``np.bool_``, whose type numpy 2 names
    ``bool``: checks of the name ``bool_`` alone let it through); a tensor is not."""
    return isinstance(value, bool) or (type(value).__module__ == "numpy" and type(value).__name__ in ("bool_", "bool"))


def is_finite_real(value: object) -> bool:
    """``value`` is a real number (numpy's too, not a bool) and finite; an integer too large for a
    float (a JSON file's 400-digit number) is not (``math.isfinite`` raised an OverflowError)."""
    if not isinstance(value, numbers.Real) or is_bool(value):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_number(value: object, name: str, *, minimum: float | None = None) -> float:
    """``value`` as a ``float`` if it is a finite real number of at least ``minimum``; else an
    :class:`ArgumentError` naming ``name``."""
    ok = is_finite_real(value)
    if not ok or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum}"
        raise ArgumentError(f"{name} must be a finite number{bound}, got {shown(value)}.")
    return float(value)


def check_bool(value: object, name: str) -> bool:
    """``value`` as a ``bool`` if it is one (numpy's too); else an :class:`ArgumentError`
    naming ``name`` (``bool("no")`` is True)."""
    if not is_bool(value):
        raise ArgumentError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


def url_hint(path: object) -> str:
    """For a missing file whose name is a URL ("https://.../cat.png", which ``Path`` spells
    "https:/..."): a sentence saying latentlab reads local files only; else ``""``."""
    import re

    # (one slash: Path() has folded the two; a scheme of two letters or more: "C:/x.png" is a Windows path)
    if not re.match(r"[A-Za-z][A-Za-z0-9+.-]+:/", str(path)):
        return ""
    return " latentlab reads local files only, not URLs: download the picture first (e.g. `curl -O URL`) and name the file."


def check_text(text: str, name: str) -> None:
    """Refuse a string that is not text: a lone surrogate, which a byte of a file name or terminal
    becomes under a locale that is not UTF-8 (tokenizers drew another prompt from it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ArgumentError(
            f"{name} ({text!r:.60}) holds {text[exc.start : exc.end]!r}, which is not text (a byte a file name or "
            "terminal gave under a non-UTF-8 locale); decode it first, e.g. os.fsencode(text).decode('utf-8')."
        ) from None


def as_path_text(value: object, name: str, what: str = "a folder path") -> str:
    """``value`` (a ``str`` or a ``str`` ``os.PathLike``) as a string; else an :class:`ArgumentError`
    naming ``name`` (``os.fspath`` raised a raw TypeError on a number, and bytes failed later)."""
    import os

    text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else None
    if not isinstance(text, str):
        raise ArgumentError(f"{name} must be {what} (a str or pathlib.Path), got {value!r}.")
    return text


def user_path(path: object) -> Path:
    """``path`` as a shell reads it: a leading ``~`` or ``~user`` is that home folder. A
    ``~user`` of no user on this system stays as written, a relative name like any other
    (``pathlib.Path.expanduser`` raised a raw ``RuntimeError`` "Could not determine home
    directory" on it, also for ``./~user``, which pathlib spells ``~user``). A name holding a NUL
    character, which no file can have, is an :class:`ArgumentError` (``open()`` raised a bare
    ``ValueError: embedded null byte``)."""
    import os
    from pathlib import Path

    text = os.fspath(path)  # type: ignore[arg-type]
    if ("\x00" if isinstance(text, str) else b"\x00") in text:
        raise ArgumentError(f"the path {text!r} holds a NUL character (\\x00), which no file name can; remove it.")
    return Path(os.path.expanduser(text))
