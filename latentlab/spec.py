"""The render spec: one scripting format shared by the CLI, notebooks and the Python API.

A spec names a preset, keyframes (images, texts, text diffs, mixes), how many frames each
segment takes, and the render and video settings. It is a JSON or TOML file, or a dict::

    preset = "mini"
    seed = 0
    fps = 24
    frames = 48                 # default frames per segment

    [[keyframes]]
    image = "phone.png"         # paths are relative to the spec file

    [[keyframes]]
    text_diff = { from = "a mobile phone", to = "an old telephone", theta = 0.5 }
    easing = "ease-in-out"      # segment settings go on the keyframe the segment ends at

Keyframe kinds (exactly one per keyframe):

- ``image = "path.png"``: the CLIP image embedding of a picture.
- ``text = "a cat"``: a caption, turned into an image embedding by the preset's prior.
- ``text_diff = {from, to, theta}``: applies the DALL-E 2 text diff to the previous keyframe;
  ``from`` defaults to the neutral caption ``"a photo"``, ``theta`` to 0.5.
- ``mix = [{image|text, weight}, ...]``: weighted spherical mean of images and (raw) texts.
- ``sum = [{image|text, weight}, ...]``: embedding arithmetic, e.g. weights 1, -1, 1 for
  "a - b + c", renormalised.

Segment settings on a keyframe (for the segment that ends there): ``frames``, ``easing``,
``method``, ``hold``. A keyframe's ``seed`` picks its prior sample (text keyframes; default the
spec's ``seed``) and, with ``noise = "slerp"`` or ``"inverted"``, its own starting noise (default
``seed + i`` for keyframe ``i``).

Quality settings: ``noise = "slerp"`` gives each keyframe its own noise and slerps between
them; ``noise = "inverted"`` uses each image keyframe's DDIM-inverted noise, so the morph
starts and ends on redraws of its input images, close for mini's shapes and rough for emoji
(docs/quality.md measures both ends; a text diff of a picture keeps the picture's noise); ``pacing = "even"`` re-places the
frames so the picture changes by equal steps (:func:`latentlab.even_pacing`), and ``pacing =
"fine"`` does it with finer, costlier settings (docs/quality.md measures both).
"""

from __future__ import annotations

import copy
import errno
import json
import math
import ntpath
import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ArgumentError, LatentlabError, SpecError, is_finite_real, url_hint, user_path
from .video import MIN_FPS, check_gif_fps  # the slowest video a spec may ask for: write_video's own limit

if TYPE_CHECKING:
    from .trajectory import Trajectory

__all__ = ["Spec", "load_spec", "load_file", "dump_file", "NEUTRAL_CAPTION"]

NEUTRAL_CAPTION = "a photo"
"""Caption used as the text diff's source when none is given (DALL-E 2 paper, footnote)."""

KEYFRAME_KINDS = ("image", "text", "text_diff", "mix", "sum")
SEGMENT_KEYS = ("frames", "easing", "method", "hold")
NOISE_MODES = ("shared", "per-frame", "slerp", "inverted")
PACING_MODES = ("uniform", "even", "fine")
PACING_METRICS = ("clip", "pixel")
PACING_SCOPES = ("segment", "path")
FORMATS = ("mp4", "gif", "webp")
MAX_FRAMES = 100_000
"""The most frames a spec's ``frames`` (or a segment's) may ask for: more is a typo, not a video."""
MAX_STEPS = 1000
"""The most ``steps`` a spec (or ``generate --steps``) may ask for, checked before any model loads:
every sampler latentlab loads is trained on 1000 timesteps (the decoder checks its own limit again)."""


def _plain(v: Any, depth: int = 4) -> Any:
    """A numpy scalar as the Python number it holds, a ``Path`` as its string, in lists and
    dicts too down to ``depth`` levels (keyframes, a keyframe's table, its mix / sum list, their
    tables: a spec nested deeper is refused by its checks, not by the recursion limit) in new
    ones only where something changes (the caller's stay as given); else ``v``."""
    if isinstance(v, (list, dict)):
        if depth <= 0:
            return v
        items = list(v.items()) if isinstance(v, dict) else list(enumerate(v))
        plain = [(k, _plain(x, depth - 1)) for k, x in items]
        if all(p is x for (_, p), (_, x) in zip(plain, items)):
            return v
        return dict(plain) if isinstance(v, dict) else [p for _, p in plain]
    if isinstance(v, os.PathLike):
        text = os.fspath(v)
        return text if isinstance(text, str) else v
    if type(v).__module__ == "numpy" and getattr(v, "ndim", None) == 0:
        return v.item()
    return v


def _one_of(v: Any, choices: tuple[str, ...]) -> bool:
    """``v`` is one of the names ``choices`` (an array there was numpy's raw "truth value of an
    array" error, from ``in``)."""
    return isinstance(v, str) and v in choices


def _single(w: float) -> float:
    """A mix / sum weight as :meth:`Spec.resolve` hands it to ops (a float32 tensor): ``1e39`` is
    inf there, ``1e-50`` is 0."""
    import array

    return array.array("f", [w])[0]


def _refuse_special_file(p: Path, where: str) -> None:
    """A path that is there but is no regular file (a pipe, a device such as /dev/zero): said
    as such (it read "no such file"); one that cannot even be looked up (a name over 255 bytes:
    a raw OSError from is_dir) too."""
    try:
        os.stat(p)
    except (FileNotFoundError, NotADirectoryError):  # said as no such file by the caller
        return
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a link loop: said as no such file by the caller, as before
            return
        raise SpecError(f"{where}: {str(p)!r} cannot be opened ({exc.strerror or exc}); check the path.") from None
    if not p.is_file() and not p.is_dir():
        raise SpecError(f"{where}: {str(p)!r} is not a regular file (a pipe or device?); name a picture file.")


def _is_seed(v: Any) -> bool:
    """An integer seed that a torch generator takes, with room for ``seed + k`` per frame."""
    return isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63 - MAX_FRAMES


# -- path fields -----------------------------------------------------------------------


def _fs_is_utf8() -> bool:
    import codecs

    return codecs.lookup(sys.getfilesystemencoding()).name == "utf-8"


def _utf8_read_as_bytes(s: str) -> str | None:
    """The text that ``s`` spells when it is UTF-8 read under a file-name encoding that is not
    (``LC_ALL=C``: ``'cr\\udcc3\\udca8me.png'`` is ``'crème.png'``), else None."""
    if _fs_is_utf8():
        return None
    try:
        return os.fsencode(s).decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return None


_USE_UTF8 = "Run latentlab under a UTF-8 locale (e.g. LANG=C.UTF-8) or with PYTHONUTF8=1"


def _check_caption_text(where: str, value: str) -> None:
    """Refuse a caption holding a lone surrogate (bytes a file name or terminal gave under a
    non-UTF-8 locale), naming its field, before any model loads (the encoder named it
    ``texts[0]``, with a fix in Python)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SpecError(f"{where} is {value!r:.60}, whose {value[exc.start : exc.end]!r} is not a character (a byte "
                        "a non-UTF-8 locale gave); save the spec as UTF-8 text with the caption retyped.") from None


def _check_path_text(where: str, value: str) -> None:
    """Refuse a path field that no file can have here: a character this system's file-name
    encoding cannot represent (a UTF-8 spec's ``out_dir = "out 🎨"`` under an ASCII or Latin-1
    locale, which failed later with a UnicodeEncodeError), or one that is no character at all."""
    if "\x00" in value:  # (no file name holds one; open() raised a ValueError naming no field)
        raise SpecError(f"{where} is {value!r}, which holds a NUL character (\\x00); no file name can. Remove it.")
    try:
        os.fsencode(value)
        return
    except UnicodeEncodeError as exc:
        char = value[exc.start : exc.end]
    try:
        char.encode("utf-8")
    except UnicodeEncodeError:
        raise SpecError(f"{where} is {value!r}, whose {char!r} is not a character (half of a surrogate pair), "
                        "so no file can have that name. Fix the path.") from None  # fmt: skip
    raise SpecError(
        f"{where} is {value!r}, and this system's file-name encoding ({sys.getfilesystemencoding()!r}, from the locale) "
        f"cannot represent its {char!r}, so no file here can have that name. {_USE_UTF8}."
    )


def _utf8_hint(path: Path) -> str:
    """For a file not found: a hint when it is there with its name spelled in UTF-8, which this
    locale's file-name encoding (Latin-1, EUC-JP) spells with other bytes, else ""."""
    if _fs_is_utf8() or str(path).isascii():
        return ""
    try:
        there = os.path.isfile(str(path).encode("utf-8", "surrogateescape"))
    except (UnicodeEncodeError, OSError, ValueError):
        return ""
    enc = sys.getfilesystemencoding()
    return (f" A file of that name written in UTF-8 is there, which this system's file-name encoding ({enc!r}, "
            f"from the locale) reads as another name. {_USE_UTF8}." if there else "")  # fmt: skip


def _backslash_error(where: str, value: str) -> SpecError | None:
    """A path field written on Windows (``"..\\renders\\take1"``), read where a backslash is part
    of a file name: refused with the fix rather than taken as one name (a folder called
    ``..\\renders\\take1``) or turned into ``/`` (a backslash is a legal name character here, so a
    guess could name another file). None on Windows, for absolute paths, or without a backslash."""
    if os.sep != "/" or "\\" not in value or os.path.isabs(os.path.expanduser(value)):
        return None
    if ntpath.splitdrive(value)[0] or value.startswith("\\"):  # 'C:\renders', '\\server\share': no path on this system
        return SpecError(f"{where} is {value!r}, a Windows path, which names nothing on this system. "
                         "Give a path on this system, or a relative one written with '/' (e.g. 'renders/take1').")  # fmt: skip
    return SpecError(
        f"{where} is {value!r}: here a backslash is part of a file name, not a folder separator, so write paths "
        f"in a spec with '/' (a spec saved on Windows): e.g. {value.replace(chr(92), '/')!r}. (A name that really "
        "holds a backslash: give it as an absolute path.)"
    )


def _check_base_dir(value: str) -> None:
    _check_path_text("'base_dir'", value)
    bad = _backslash_error("'base_dir'", value)
    if bad is not None:
        raise bad


def _posix_path(p: str, windows: bool = os.sep == "\\") -> str:
    """A path as a saved spec holds it: a relative one with '/' (which Windows reads too), so a
    spec saved on Windows replays elsewhere; an absolute one, the system's own, unchanged."""
    if not windows or "\\" not in p or ntpath.isabs(p) or ntpath.splitdrive(p)[0]:
        return p
    return p.replace("\\", "/")


# -- files -----------------------------------------------------------------------------


def load_file(path: str | os.PathLike, what: str = "spec file") -> dict[str, Any]:
    """Read the JSON or TOML file at ``path`` into a dict; :class:`SpecError` names the file
    (as ``what``) and the problem."""
    try:
        p = user_path(path)  # "~/specs/a.toml" as a shell reads it (a quoted or --flag=~ one is left as typed)
    except ArgumentError as exc:  # a NUL character: a SpecError, as every error of a spec file is
        raise SpecError(f"{what}: {exc}") from None
    try:
        is_file = p.is_file()
    except OSError as exc:  # a name over 255 bytes: a raw OSError (ENAMETOOLONG) from is_file
        raise SpecError(f"{what} {str(p)!r} cannot be opened ({exc.strerror or exc}). Check the path.") from None
    if not is_file:
        raise SpecError(f"{what} {str(p)!r} does not exist (or is not a file). Check the path.")
    suffix = p.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise SpecError(f"{what} {str(p)!r} must end in .json or .toml, not {suffix or '(no suffix)'!r}.")
    try:
        text = p.read_text(encoding="utf-8-sig")  # a byte-order mark (PowerShell, older Notepad) is no part of the spec
    except UnicodeDecodeError as exc:
        raise SpecError(f"{what} {str(p)!r} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8.") from None
    except OSError as exc:  # no read permission (is_file said it is there): a raw PermissionError naming no fix
        raise SpecError(f"{what} {str(p)!r} cannot be read ({exc.strerror or exc}); check its permissions.") from None
    if suffix == ".toml":  # imported before the parse: a missing tomli was said as "is not valid TOML"
        try:
            import tomllib  # type: ignore[import-not-found]
        except ModuleNotFoundError:  # Python 3.10
            try:
                import tomli as tomllib  # type: ignore[no-redef]
            except ModuleNotFoundError:
                raise LatentlabError(f"{what} {str(p)!r} is TOML, and reading TOML on Python 3.10 needs tomli, which "
                                     "is not installed (latentlab depends on it there). Fix: `pip install tomli`, or write "
                                     "the file as JSON.") from None
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        else:
            data = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except SpecError as exc:  # a JSON key given twice: named with the file, as every error here (it named none)
        raise SpecError(f"{what} {str(p)!r}: {exc}") from None
    except Exception as exc:  # json.JSONDecodeError, tomllib.TOMLDecodeError
        raise SpecError(f"{what} {str(p)!r} is not valid {suffix[1:].upper()}: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{what} {str(p)!r} must hold a table/object at the top level.")
    return data


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice (TOML refuses it too; JSON would keep the last)."""
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise SpecError(f"the key {k!r} is given twice in one object; keep one.")
        out[k] = v
    return out


def _toml_str(v: str) -> str:
    """A TOML basic string: JSON's escapes, but characters outside the BMP (emoji) written as
    they are, since TOML refuses the surrogate pairs ``json.dumps`` would give them; DEL escaped."""
    return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_str(k)} = {_toml_value(x)}" for k, x in v.items() if x is not None) + " }"
    raise SpecError(f"cannot write {type(v).__name__} to TOML.")


def _toml(data: dict[str, Any]) -> str:
    lines, tables = [], []
    for k, v in data.items():
        if v is None:
            continue
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            tables.append((k, v))
        else:
            lines.append(f"{_toml_str(k)} = {_toml_value(v)}")
    for k, items in tables:
        for item in items:
            lines.append(f"\n[[{_toml_str(k)}]]")
            lines.extend(f"{_toml_str(ik)} = {_toml_value(iv)}" for ik, iv in item.items() if iv is not None)
    return "\n".join(lines) + "\n"


def dump_file(data: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write the dict ``data`` to ``path`` as JSON or TOML (by its suffix), atomically; returns the
    path. Anything but a dict is an :class:`ArgumentError`: :func:`load_file` reads back only a
    table/object."""
    return _file_writer(data, path)()


def _unwritable_string(data: Any, where: str = "") -> tuple[str, str, str] | None:
    """The first string in ``data`` that is not text (``(field, string, bad character)``), e.g. a
    file name read as bytes that are not UTF-8 (``'caf\\udce9.png'``), named as a spec field:
    ``keyframes[0].image``."""
    if isinstance(data, str):
        try:
            data.encode("utf-8")
        except UnicodeEncodeError as exc:
            return where or "a value", data, data[exc.start : exc.end]
        return None
    items: Any = ()
    if isinstance(data, dict):
        items = ((f"{where}.{k}" if where else str(k), v) for k, v in data.items())
    elif isinstance(data, (list, tuple)):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(data))
    for w, v in items:
        found = _unwritable_string(v, w)
        if found:
            return found
    return None


def _file_writer(data: dict[str, Any], path: str | os.PathLike) -> Any:
    """Check that ``data`` can be written to ``path`` as JSON or TOML (by suffix), without writing
    anything: a function that then writes it (atomically) and returns the path. (The CLI checks
    its ``--save-spec`` before any work, and writes it once the render's own checks pass.)"""
    p = user_path(path)  # "~/specs/a.toml" as a shell reads it, as Spec.save resolves it
    if not isinstance(data, dict):  # (a list was written as JSON that load_file refuses, and TOML's writer raised raw)
        raise ArgumentError(f"data must be a dict (a spec file holds a table/object at the top level), got "
                            f"{type(data).__name__} {data!r:.60}. Fix: pass a dict, e.g. spec.to_dict().")  # fmt: skip
    suffix = p.suffix.lower()
    if suffix == ".json":
        try:
            text = json.dumps(data, indent=2) + "\n"
        except (TypeError, ValueError) as e:  # a numpy scalar, a tensor, a circular reference: as the TOML writer says
            raise SpecError(f"cannot write {str(p)!r} as JSON: {e}. Give plain numbers, strings, lists and tables.") from e
    elif suffix == ".toml":
        bad = _unwritable_string(data)
        if bad is not None:  # (JSON writes it as an escape and reads it back: the same file name)
            where, value, char = bad
            path_field = where.endswith((".image", "output", "out_dir")) or where in ("output", "out_dir")
            utf8 = _utf8_read_as_bytes(value)
            if utf8 is not None:  # its bytes are UTF-8: the locale is not. (Written as that text, the spec would
                # name a file this locale cannot open: refused, as loading it here would be.)
                raise ArgumentError(
                    f"cannot write {str(p)!r}: {where} is {value!r}, UTF-8 text ({utf8!r}) that this system's "
                    f"file-name encoding ({sys.getfilesystemencoding()!r}, from the locale) cannot represent, so it "
                    f"is held as bytes, and TOML holds only text. {_USE_UTF8}, or save the spec as .json (which keeps it)."
                )
            what = ("a file name that is not UTF-8 text" if path_field else
                    "not a character (half of a surrogate pair, or a byte that is not UTF-8)")  # fmt: skip
            fix = "rename the file" if path_field else "fix the string"
            raise ArgumentError(
                f"cannot write {str(p)!r}: {where} is {value!r}, whose {char!r} is {what}, and TOML holds only text. "
                f"Save the spec as .json (which keeps it), or {fix}."
            )
        text = _toml(data)
    else:
        raise ArgumentError(f"path {str(p)!r} must end in .json or .toml.")
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError as exc:  # (not reached: ensure_ascii JSON, and TOML checked above)
        raise ArgumentError(
            f"cannot write {str(p)!r}: a string holds {text[exc.start:exc.end]!r}, which is not a character "
            "(half of a surrogate pair). Fix the string."
        ) from None
    try:  # (is_dir / exists raise on a folder the user may not search: said as any write error)
        if p.is_dir():
            raise ArgumentError(f"cannot write {str(p)!r}: it is a folder. Give a file name, e.g. {str(p / ('spec' + suffix))!r}.")
        blocked = next((q for q in p.parents if q.exists() and not q.is_dir()), None)
        if blocked is not None:
            raise ArgumentError(f"cannot write {str(p)!r}: {str(blocked)!r} is a file, not a folder. Choose another path.")
        probe = p.absolute().parent  # the folder it goes in, or the nearest one there is (a read-only one was
        while not os.path.lexists(probe) and probe != probe.parent:  # found only at the write, after the work)
            probe = probe.parent
        if probe.is_dir() and not os.access(probe, os.W_OK | os.X_OK):
            raise ArgumentError(f"cannot write {str(p)!r}: no write permission in {str(probe)!r}. Choose a writable path.")
    except OSError as exc:
        raise ArgumentError(f"cannot write {str(p)!r}: {exc.strerror}. Choose a writable path.") from None

    def write() -> Path:
        from .render import write_whole
        from .video import remove_stale_temps

        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            # (a save killed mid-write, --save-spec's included, left its temporary beside the spec for good:
            # swept as the video's are, those an hour old)
            remove_stale_temps(p)
            write_whole(p, lambda tmp: tmp.write_bytes(encoded))
        except OSError as exc:
            raise ArgumentError(f"cannot write {str(p)!r}: {exc.strerror}. Choose a writable path.") from None
        return p

    return write


# -- the spec --------------------------------------------------------------------------


@dataclass
class Spec:
    """A validated render spec. Build with :func:`load_spec` (file or dict) or directly.

    Attributes (defaults in brackets):
        keyframes: list of keyframe tables (see the module docstring); at least two.
        preset: preset name ["mini"].
        seed: base seed of the starting noise [0].
        noise: "shared" (one starting noise for every frame: no flicker), "per-frame", "slerp"
            (each keyframe its own noise, slerped between) or "inverted" (image keyframes'
            DDIM-inverted noise, slerped between) ["shared"].
        pacing: "uniform" (frames at the segments' eased parameters), "even" (re-placed so
            the picture changes evenly, :func:`latentlab.even_pacing`, one coarse pass) or
            "fine" (the same with :func:`latentlab.pacing.fine_pacing_settings`: about ten
            decodes per frame, measured in docs/quality.md; a ``pacing_*`` field set here overrides
            its value) ["uniform"].
        pacing_metric: the distance "even" pacing equalises, "clip" or "pixel" ["clip"].
        pacing_scope: "segment" (each segment keeps its frames and is paced evenly within) or
            "path" (a chain's frames are pooled and re-split across its segments in proportion
            to how much each one changes, so the whole video is evenly paced) [None: "segment"].
        pacing_coarse, pacing_passes, pacing_tol, pacing_max_samples, pacing_min_width: the
            finer settings of "even" pacing, passed to :func:`latentlab.even_pacing` as
            ``coarse``, ``passes``, ``tol``, ``max_samples`` and ``min_width``
            [None each: even_pacing's defaults; unset fields stay out of ``to_dict()``, so
            manifests of older renders still match].
        pacing_relax: rounds of :func:`latentlab.even_pacing`'s ``relax`` (measure the paced
            frames themselves and move them until consecutive frames differ evenly; each
            round decodes up to one frame budget) [None: 0].
        invert_refine: gradient steps that refine each image keyframe's inverted noise
            (``noise = "inverted"``; ``refine`` of :meth:`Decoder.invert`) [None: the
            decoder's default, 20 for mini].
        frames: default frame count of each segment, its end keyframe excluded [48].
        easing / method: defaults for segments ["linear" / "slerp"].
        steps / guidance_scale: sampler settings [the decoder's defaults].
        eta: DDIM eta of the sampler, in [0, 1] (mini only): above 0 every frame gets fresh
            noise at each step, seeded by ``seed`` and the same for every frame, so the whole
            video is one coherent variation of the ``eta = 0`` render; change ``seed`` for
            another (with ``noise = "inverted"`` the end frames stay near their pictures)
            [None: 0].
        batch_size: frames per decoder call [the decoder's default].
        upscale: ``mini`` only: false brings its 32 px decodes to the frame size with a
            Lanczos resize instead of the learned 2x upscaler (CLI: ``--no-upscale``) [None:
            the upscaler].
        fps, format, size, hold_first, hold_last, pingpong: video settings [24, "mp4", native, 0, 0, false].
            ``format`` unset (None) is ``output``'s suffix, or "mp4"; another format than
            ``output``'s suffix is refused, except "mp4", which specs saved before
            2026-12-06 always wrote (the output's suffix decides, as it did then).
        output: video path [<out_dir>.<format>]; relative paths resolve against ``base_dir``.
        out_dir: the render folder (frames, manifest, contact sheet) [``renders/<name>`` under
            the working directory]; relative paths resolve against ``base_dir``. The CLI's
            ``--out-dir`` and ``render_spec(out_dir=...)`` override it.
        name: names the render folder ``renders/<name>`` where ``out_dir`` is unset [made
            from the keyframes' labels].
        base_dir: directory that relative paths (images, ``output``, ``out_dir``) are resolved against [the
            spec file's directory]; a relative ``base_dir`` in a file starts at the file's folder.
    """

    keyframes: list[dict[str, Any]]
    preset: str = "mini"
    seed: int = 0
    noise: str = "shared"
    pacing: str = "uniform"
    pacing_metric: str = "clip"
    pacing_scope: str | None = None
    pacing_coarse: int | None = None
    pacing_passes: int | None = None
    pacing_tol: float | None = None
    pacing_max_samples: int | None = None
    pacing_min_width: float | None = None
    pacing_relax: int | None = None
    invert_refine: int | None = None
    frames: int = 48
    easing: str = "linear"
    method: str = "slerp"
    steps: int | None = None
    guidance_scale: float | None = None
    eta: float | None = None
    batch_size: int | None = None
    upscale: bool | None = None
    fps: float = 24
    format: str | None = None
    size: int | None = None
    hold_first: int = 0
    hold_last: int = 0
    pingpong: bool = False
    output: str | None = None
    out_dir: str | None = None
    name: str | None = None
    base_dir: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for f in fields(self):  # numpy numbers and Path objects, as the rest of the API takes them
            if f.name not in ("keyframes", "base_dir"):
                setattr(self, f.name, _plain(getattr(self, f.name)))
        if isinstance(self.keyframes, list):  # new tables where a value changes (mix / sum items, text_diff too)
            self.keyframes = _plain(self.keyframes)
        suffix = _video_suffix(self.output)
        if self.format is None:  # the output's suffix says it, else mp4
            self.format = suffix or "mp4"
        elif isinstance(self.format, str) and self.format == "mp4" and suffix and suffix != "mp4":
            self.format = suffix  # older saved specs wrote format = "mp4" always; the output decided, as then
        self.validate()

    # -- validation ------------------------------------------------------------------
    def validate(self) -> None:
        """Check every field; raise :class:`SpecError` naming the field and the fix."""
        from .trajectory import EASINGS, METHODS

        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise SpecError(msg)

        need(self.base_dir is None or isinstance(self.base_dir, (str, os.PathLike)) and not isinstance(self.base_dir, bytes),
             f"'base_dir' must be a folder path (a string), got {self.base_dir!r}.")  # fmt: skip

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        need(isinstance(self.preset, str) and bool(self.preset), "'preset' must be a preset name, e.g. \"mini\".")
        need(_is_seed(self.seed), f"'seed' must be an integer in [-2**63, 2**63 - {MAX_FRAMES}), got {self.seed!r}.")
        need(_one_of(self.noise, NOISE_MODES), f"'noise' must be one of {NOISE_MODES}, got {self.noise!r}.")
        need(_one_of(self.pacing, PACING_MODES), f"'pacing' must be one of {PACING_MODES}, got {self.pacing!r}.")
        need(
            _one_of(self.pacing_metric, PACING_METRICS),
            f"'pacing_metric' must be one of {PACING_METRICS}, got {self.pacing_metric!r}.",
        )
        need(
            not (self.pacing != "uniform" and self.noise == "per-frame"),
            f"'pacing' = {self.pacing!r} needs noise that follows the path (\"shared\", \"slerp\" or \"inverted\"); "
            "with \"per-frame\" noise every frame changes anyway.",
        )
        need(self.pacing_scope is None or _one_of(self.pacing_scope, PACING_SCOPES),
             f"'pacing_scope' must be one of {PACING_SCOPES}, got {self.pacing_scope!r}.")  # fmt: skip
        need(self.pacing_coarse is None or (is_int(self.pacing_coarse) and 1 <= self.pacing_coarse <= MAX_FRAMES),
             f"'pacing_coarse' must be an integer in [1, {MAX_FRAMES}] (sample intervals per segment, each one "
             f"decode), got {self.pacing_coarse!r}.")  # fmt: skip
        need(self.pacing_passes is None or (is_int(self.pacing_passes) and self.pacing_passes >= 1),
             f"'pacing_passes' must be an integer >= 1, got {self.pacing_passes!r}.")  # fmt: skip
        need(self.pacing_tol is None or (is_finite_real(self.pacing_tol) and self.pacing_tol >= 0),
             f"'pacing_tol' must be a finite number >= 0, got {self.pacing_tol!r}.")  # fmt: skip
        need(self.pacing_max_samples is None or (is_int(self.pacing_max_samples) and self.pacing_max_samples >= 0),
             f"'pacing_max_samples' must be an integer >= 0 (extra decodes), got {self.pacing_max_samples!r}.")  # fmt: skip
        need(self.pacing_min_width is None or (isinstance(self.pacing_min_width, (int, float))
                                               and not isinstance(self.pacing_min_width, bool) and 0 < self.pacing_min_width < 1),
             f"'pacing_min_width' must be a number in (0, 1) (a fraction of a segment), got {self.pacing_min_width!r}.")  # fmt: skip
        need(self.pacing_relax is None or (is_int(self.pacing_relax) and self.pacing_relax >= 0),
             f"'pacing_relax' must be an integer >= 0 (rounds), got {self.pacing_relax!r}.")  # fmt: skip
        if self.pacing == "uniform":
            given = [f for f in ("pacing_scope", "pacing_coarse", "pacing_passes", "pacing_tol", "pacing_max_samples",
                                 "pacing_min_width", "pacing_relax") if getattr(self, f) is not None]  # fmt: skip
            if self.pacing_metric != "clip":  # "clip" is the default, so only another metric shows it was set
                given.append("pacing_metric")
            need(not given, f"'{given[0] if given else ''}' applies to pacing = 'even' or 'fine' only, and pacing is "
                 "'uniform' (the default), so it would be ignored. Set 'pacing' to 'even' or 'fine', or drop it.")  # fmt: skip
        need(self.invert_refine is None or (is_int(self.invert_refine) and self.invert_refine >= 0),
             f"'invert_refine' must be an integer >= 0 (gradient steps), got {self.invert_refine!r}.")  # fmt: skip
        need(is_int(self.frames) and 1 <= self.frames <= MAX_FRAMES, f"'frames' must be an integer in [1, {MAX_FRAMES}], got {self.frames!r}.")
        need(isinstance(self.easing, str) and self.easing in EASINGS, f"'easing' must be one of {tuple(EASINGS)}, got {self.easing!r}.")
        need(isinstance(self.method, str) and self.method in METHODS, f"'method' must be one of {METHODS}, got {self.method!r}.")
        need(self.eta is None or (isinstance(self.eta, (int, float)) and not isinstance(self.eta, bool) and 0 <= self.eta <= 1),
             f"'eta' must be a number in [0, 1], got {self.eta!r}.")  # fmt: skip
        need(self.steps is None or (is_int(self.steps) and 1 <= self.steps <= MAX_STEPS),
             f"'steps' must be an integer in [1, {MAX_STEPS}] (the training timesteps of the samplers latentlab "
             f"loads), got {self.steps!r}.")  # fmt: skip
        need(
            self.guidance_scale is None or (is_finite_real(self.guidance_scale) and self.guidance_scale >= 0),
            f"'guidance_scale' must be a finite number >= 0, got {self.guidance_scale!r}.",
        )
        need(self.batch_size is None or (is_int(self.batch_size) and self.batch_size >= 1), f"'batch_size' must be an integer >= 1, got {self.batch_size!r}.")
        need(isinstance(self.fps, (int, float)) and not isinstance(self.fps, bool) and MIN_FPS <= self.fps <= 240,
             f"'fps' must be a number in [{MIN_FPS:g}, 240], got {self.fps!r}.")  # fmt: skip
        need(_one_of(self.format, FORMATS), f"'format' must be one of {FORMATS}, got {self.format!r}.")
        need(self.upscale is None or isinstance(self.upscale, bool),
             f"'upscale' must be true or false (mini's learned upscaler, or a Lanczos resize), got {self.upscale!r}.")  # fmt: skip
        need(self.size is None or (is_int(self.size) and 8 <= self.size <= 4096), f"'size' must be an integer in [8, 4096], got {self.size!r}.")
        for k in ("hold_first", "hold_last"):
            v = getattr(self, k)
            need(is_int(v) and 0 <= v <= MAX_FRAMES, f"'{k}' must be an integer in [0, {MAX_FRAMES}] (frames), got {v!r}.")
        need(isinstance(self.pingpong, bool), f"'pingpong' must be true or false, got {self.pingpong!r}.")
        if self.format == "gif":  # a gif's own limits (fps, the longest hold), as write_video refuses them
            try:
                check_gif_fps(self.fps, "gif", hold_first=self.hold_first, hold_last=self.hold_last)
            except ArgumentError as exc:
                raise SpecError(str(exc)) from None
        # (an empty one meant the default video, where an empty out_dir is refused)
        need(self.output is None or (isinstance(self.output, str) and bool(self.output.strip())),
             f"'output' must be a non-empty path string (the video file; leave it out for <out_dir>.<format>), "
             f"got {self.output!r}.")  # fmt: skip
        suffix = _video_suffix(self.output)
        need(not suffix or suffix == self.format,
             f"'format' is {self.format!r} but 'output' {self.output!r} ends in .{suffix}: the video's format follows "
             f"its name. Drop 'format', or give 'output' a .{self.format} name.")  # fmt: skip
        need(self.out_dir is None or (isinstance(self.out_dir, str) and bool(self.out_dir.strip())),
             f"'out_dir' must be a non-empty path string (the render folder), got {self.out_dir!r}.")  # fmt: skip
        for key in ("output", "out_dir"):
            value = getattr(self, key)
            if value is not None:
                _check_path_text(f"'{key}'", value)
                bad = _backslash_error(f"'{key}'", value)
                if bad is not None and not os.path.lexists(self.resolve_path(value)):  # (one that is there is meant)
                    raise bad
        if self.base_dir is not None:
            _check_base_dir(os.fspath(self.base_dir))
        need(self.name is None or (isinstance(self.name, str) and bool(self.name.strip())),
             f"'name' must be a non-empty string (the render folder's name), got {self.name!r}.")  # fmt: skip
        need(isinstance(self.keyframes, list), "'keyframes' must be a list of tables ([[keyframes]] in TOML).")
        need(len(self.keyframes) >= 2, f"'keyframes' needs at least two entries, got {len(self.keyframes)}.")
        for i, kf in enumerate(self.keyframes):
            self._validate_keyframe(i, kf, EASINGS, METHODS)
        if self.pacing != "uniform" and self.pacing_scope == "path":  # as even_pacing refuses it, once the models load
            moving = sum(kf.get("frames", self.frames) for kf in self.keyframes[1:])
            need(moving <= MAX_FRAMES,
                 f"'pacing_scope' = 'path' re-splits the segments' {moving} moving frames by measured change, and "
                 f"one segment may get them all, which takes at most {MAX_FRAMES}: give the segments at most "
                 f"{MAX_FRAMES} frames in all, or use pacing_scope = 'segment'.")  # fmt: skip

    def _validate_keyframe(self, i: int, kf: Any, easings: Any, methods: Any) -> None:
        where = f"keyframes[{i}]"
        if not isinstance(kf, dict):
            raise SpecError(f"{where} must be a table like {{image = \"a.png\"}} or {{text = \"a cat\"}}.")
        kinds = [k for k in KEYFRAME_KINDS if k in kf]
        unknown = set(kf) - set(KEYFRAME_KINDS) - set(SEGMENT_KEYS) - {"label", "seed"}
        if unknown:
            raise SpecError(
                f"{where} has unknown field(s) {sorted(unknown, key=str)}; keyframe kinds are {KEYFRAME_KINDS}, "
                f"segment settings are {SEGMENT_KEYS}."
            )
        if len(kinds) != 1:
            raise SpecError(f"{where} must have exactly one of {KEYFRAME_KINDS}, found {kinds or 'none'}.")
        if i == 0 and set(kf) & set(SEGMENT_KEYS):
            raise SpecError(
                f"{where} has segment setting(s) {sorted(set(kf) & set(SEGMENT_KEYS))}, but no segment ends at the "
                "first keyframe: put them on keyframes[1] (a segment's settings sit on the keyframe it ends at), "
                "or use the top-level 'frames', 'easing', 'method' and 'hold_first'."
            )
        kind = kinds[0]
        v = kf[kind]
        if kind in ("image", "text"):
            if not isinstance(v, str) or not v.strip():
                raise SpecError(
                    f"{where}.{kind} must be a non-empty {'path' if kind == 'image' else 'caption'} string, got {v!r}"
                    + ("." if kind == "image" else " (CLI: text:CAPTION, e.g. 'text:a red circle').")
                )
            if kind == "text":
                _check_caption_text(f"{where}.text", v)
            if kind == "image":
                _check_path_text(f"{where}.image", v)
                p = self.resolve_path(v)
                _refuse_special_file(p, f"{where}.image")
                if p.is_dir():
                    raise SpecError(f"{where}.image: {str(p)!r} is a folder, not an image file. Name a picture in it.")
                if not p.is_file():
                    windows = _backslash_error(f"{where}.image", v)  # (a file here whose name holds one is read)
                    if windows is not None:
                        raise windows
                    hint = ""
                    if not Path(os.path.expanduser(v)).is_absolute():
                        start = f"at {self.base_dir!r} (the spec file's folder, or base_dir)" if self.base_dir else "in the current folder"
                        hint = f" (relative paths start {start})"
                    if url_hint(v):
                        raise SpecError(f"{where}.image: {v!r} is a URL.{url_hint(v)}")
                    raise SpecError(f"{where}.image: no such file {str(p)!r}. Check the path{hint}.{_utf8_hint(p)}")
                _check_picture(p, f"{where}.image")
        elif kind == "text_diff":
            if i == 0:
                raise SpecError(f"{where}: a text_diff edits the previous keyframe, so it cannot come first.")
            if not isinstance(v, dict) or not isinstance(v.get("to"), str) or not v["to"].strip():
                raise SpecError(f"{where}.text_diff must be a table with a non-empty 'to' caption (CLI: --to), e.g. {{to = \"an old telephone\", theta = 0.5}}.")
            extra = set(v) - {"from", "to", "theta"}
            if extra:
                raise SpecError(f"{where}.text_diff has unknown field(s) {sorted(extra, key=str)}; use from, to, theta.")
            if "from" in v and (not isinstance(v["from"], str) or not v["from"].strip()):
                raise SpecError(f"{where}.text_diff.from must be a non-empty caption string (CLI: --from); leave it out for the neutral {NEUTRAL_CAPTION!r}.")
            for side in ("from", "to"):
                if side in v:
                    _check_caption_text(f"{where}.text_diff.{side}", v[side])
            if v["to"] == v.get("from", NEUTRAL_CAPTION):  # (refused by resolve, once every model had loaded)
                default = f" (the default, {NEUTRAL_CAPTION!r})" if "from" not in v else ""
                raise SpecError(f"{where}.text_diff: 'to' is the same caption as 'from'{default}, so there is no edit "
                                "direction; give captions that differ (CLI: --from, --to).")  # fmt: skip
            th = v.get("theta", 0.5)
            if not isinstance(th, (int, float)) or isinstance(th, bool) or not (0 <= th <= 1):
                raise SpecError(f"{where}.text_diff.theta must be a number in [0, 1] (usually 0.25-0.5), got {th!r}.")
        else:  # mix / sum
            if not isinstance(v, list) or not v:
                raise SpecError(f"{where}.{kind} must be a non-empty list of {{image|text, weight}} tables.")
            for j, item in enumerate(v):
                w = f"{where}.{kind}[{j}]"
                if not isinstance(item, dict):
                    raise SpecError(f"{w} must be a table {{image = ..., weight = ...}} or {{text = ..., weight = ...}}.")
                ik = [k for k in ("image", "text") if k in item]
                if len(ik) != 1 or set(item) - {"image", "text", "weight"}:
                    raise SpecError(f"{w} must have exactly one of image/text and optionally weight.")
                if not isinstance(item[ik[0]], str) or not item[ik[0]].strip():
                    raise SpecError(f"{w}.{ik[0]} must be a non-empty string.")
                if ik[0] == "text":
                    _check_caption_text(f"{w}.text", item["text"])
                if ik[0] == "image":
                    _check_path_text(f"{w}.image", item["image"])
                if ik[0] == "image":  # (first: is_dir() of a name too long raised a raw OSError)
                    _refuse_special_file(self.resolve_path(item["image"]), f"{w}.image")
                if ik[0] == "image" and self.resolve_path(item["image"]).is_dir():
                    raise SpecError(f"{w}.image: {str(self.resolve_path(item['image']))!r} is a folder, not an image file.")
                if ik[0] == "image" and not self.resolve_path(item["image"]).is_file():
                    windows = _backslash_error(f"{w}.image", item["image"])
                    if windows is not None:
                        raise windows
                    raise SpecError(f"{w}.image: no such file {str(self.resolve_path(item['image']))!r}."
                                    + (url_hint(item["image"]) or _utf8_hint(self.resolve_path(item["image"]))))
                if ik[0] == "image":
                    _check_picture(self.resolve_path(item["image"]), f"{w}.image")
                wt = item.get("weight", 1.0)
                if not is_finite_real(wt) or not math.isfinite(_single(wt)):  # (the render reads weights as float32)
                    raise SpecError(f"{w}.weight must be a finite number (at most 3.4e38 in size: the render reads "
                                    f"weights in single precision), got {wt!r}.")  # fmt: skip
                if kind == "mix" and wt < 0:
                    raise SpecError(f"{w}.weight must be >= 0 in a mix (use 'sum' for negative weights).")
            weights = [float(it.get("weight", 1.0)) for it in v]
            tiny = " (in single precision, as the render reads them: 1e-50 is 0)" if any(weights) else ""
            if kind == "mix" and not sum(_single(x) for x in weights) > 0:
                raise SpecError(f"{where}.mix has weights that are all 0{tiny}: give at least one a positive weight.")
            if kind == "sum" and not any(_single(x) != 0 for x in weights):
                raise SpecError(f"{where}.sum has weights that are all 0{tiny}: give at least one a non-zero weight.")
        if "frames" in kf and (not isinstance(kf["frames"], int) or isinstance(kf["frames"], bool) or not 1 <= kf["frames"] <= MAX_FRAMES):
            raise SpecError(f"{where}.frames must be an integer in [1, {MAX_FRAMES}], got {kf['frames']!r}.")
        if "easing" in kf and not (isinstance(kf["easing"], str) and kf["easing"] in easings):
            raise SpecError(f"{where}.easing must be one of {tuple(easings)}, got {kf['easing']!r}.")
        if "method" in kf and not (isinstance(kf["method"], str) and kf["method"] in methods):
            raise SpecError(f"{where}.method must be one of {methods}, got {kf['method']!r}.")
        if "seed" in kf and not _is_seed(kf["seed"]):
            raise SpecError(f"{where}.seed must be an integer in [-2**63, 2**63 - {MAX_FRAMES}), got {kf['seed']!r}.")
        if "label" in kf and not isinstance(kf["label"], str):
            raise SpecError(f"{where}.label must be a string, got {kf['label']!r}.")
        if "hold" in kf and (not isinstance(kf["hold"], int) or isinstance(kf["hold"], bool) or not 0 <= kf["hold"] <= MAX_FRAMES):
            raise SpecError(f"{where}.hold must be an integer in [0, {MAX_FRAMES}], got {kf['hold']!r}.")

    # -- helpers ---------------------------------------------------------------------
    def resolve_path(self, p: str) -> Path:
        """The spec's path ``p`` (``~`` expanded), resolved against ``base_dir`` when relative."""
        path = Path(os.path.expanduser(p))
        if not path.is_absolute() and self.base_dir:
            path = Path(self.base_dir) / path
        return path

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data (what manifests record and :func:`load_spec` reads back)."""
        out = {}
        for f in fields(self):
            if f.name == "base_dir":
                continue
            v = getattr(self, f.name)
            if v is not None:
                out[f.name] = copy.deepcopy(v)  # a copy: editing it must not edit the spec
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write the spec to ``path`` as JSON or TOML (by its suffix); returns the path written.

        Relative paths (``image`` keyframes, also inside ``mix`` / ``sum``, ``output`` and ``out_dir``)
        are rewritten relative to the file's folder when that is not ``base_dir``, so the
        saved spec loads from where it was written and points at the same files."""
        from .trajectory import warn_added_easings

        written = self._writer(path)()
        warn_added_easings([self.easing, *(kf.get("easing") for kf in self.keyframes)], f"spec file {str(path)!r}")
        return written

    def _writer(self, path: str | os.PathLike) -> Any:
        """:meth:`save`'s checks now, its writing later: a function that writes the spec (see
        :func:`_file_writer`)."""
        data = self.to_dict()
        here = Path(self.base_dir or os.getcwd()).resolve()
        there = user_path(path).resolve().parent

        def moved(p: str) -> str:  # relative ones with '/' (a spec saved on Windows replays elsewhere)
            if here == there or Path(os.path.expanduser(p)).is_absolute():  # ("~x.png", no user's home: relative)
                return _posix_path(p)
            return Path(os.path.relpath(here / p, there)).as_posix()

        for kf in data["keyframes"]:  # validated: tables, their image paths strings
            items = [kf, *kf.get("mix", ()), *kf.get("sum", ())]
            for item in items:
                if "image" in item:
                    item["image"] = moved(item["image"])
        for key in ("output", "out_dir"):
            if data.get(key):
                data[key] = moved(data[key])
        return _file_writer(data, path)

    def labels(self) -> list[str]:
        """A short human label for each keyframe (for plots, contact sheets, manifests)."""
        out = []
        for kf in self.keyframes:
            if "label" in kf:
                out.append(str(kf["label"]))
            elif "image" in kf:
                out.append(Path(kf["image"]).name)
            elif "text" in kf:
                out.append(kf["text"])
            elif "text_diff" in kf:
                td = kf["text_diff"]
                out.append(f"{td.get('from', NEUTRAL_CAPTION)} -> {td['to']}")
            else:
                kind = "mix" if "mix" in kf else "sum"
                out.append(f"{kind}({len(kf[kind])})")
        return out

    def keyframe_seeds(self) -> list[int]:
        """Seed of each keyframe's own noise (``noise = "slerp"`` / ``"inverted"``): its
        ``seed`` field, else ``seed + i``."""
        return [int(kf.get("seed", self.seed + i)) for i, kf in enumerate(self.keyframes)]

    def needs_prior(self) -> bool:
        """Whether some keyframe is a plain text that only a prior can turn into an image embedding."""
        return any("text" in kf for kf in self.keyframes)

    def no_prior_error(self) -> SpecError:
        """The error for a spec whose text keyframes meet a preset without a prior."""
        i = next(i for i, kf in enumerate(self.keyframes) if "text" in kf)
        return SpecError(
            f"keyframes[{i}] is a text keyframe, which needs a prior, and preset {self.preset!r} "
            "has none. Use an image keyframe, or a text_diff from the previous keyframe."
        )

    def _prior_not_given_error(self) -> SpecError:
        """The error for :meth:`resolve` called without a ``prior`` on a spec with a text keyframe:
        :meth:`no_prior_error` where the preset has no prior; where it has one, the fix is to pass
        it (the message said that preset, ``mini`` say, had none)."""
        from .presets import get_preset

        try:
            has_prior = get_preset(self.preset).prior is not None
        except ArgumentError:  # a preset not registered here: nothing to say of its prior
            has_prior = False
        if not has_prior:
            return self.no_prior_error()
        i = next(i for i, kf in enumerate(self.keyframes) if "text" in kf)
        return SpecError(
            f"keyframes[{i}] is a text keyframe, which needs a prior, and none was given: pass the preset's, "
            f"spec.resolve(encoder, prior=ll.create_prior({self.preset!r}))."
        )

    def resolve(self, encoder: Any, prior: Any = None) -> "Trajectory":
        """Encode the keyframes with ``encoder`` and build the :class:`~latentlab.Trajectory`
        they describe; ``prior`` turns ``text`` keyframes into image embeddings (a spec with
        one and no ``prior`` is a :class:`SpecError` naming the keyframe: :meth:`no_prior_error`
        where the preset has no prior, else one that says to pass it)."""
        import torch

        from . import ops
        from .trajectory import Segment, Trajectory

        def embed_item(item: dict[str, Any]) -> torch.Tensor:
            if "image" in item:
                return encoder.encode_image([str(self.resolve_path(item["image"]))])
            return encoder.encode_text([item["text"]])

        if prior is None and self.needs_prior():  # before any keyframe is encoded
            raise self._prior_not_given_error()
        kfs: list[torch.Tensor] = []
        for i, kf in enumerate(self.keyframes):
            if "image" in kf:
                z = embed_item(kf)
            elif "text" in kf:
                seed = int(kf.get("seed", self.seed))
                if getattr(prior, "needs_texts", False):  # e.g. Karlo/Kandinsky priors read token states
                    z = prior.from_texts([kf["text"]], seed=seed)
                else:
                    z = prior(encoder.encode_text([kf["text"]]), seed=seed)
            elif "text_diff" in kf:
                td = kf["text_diff"]
                src, dst = encoder.encode_text([td.get("from", NEUTRAL_CAPTION), td["to"]]).split(1)
                if torch.equal(src, dst):  # (ops said "target - source is the zero vector", naming no keyframe)
                    def short(text: str) -> str:  # (a repr cut at 60 characters lost its closing quote)
                        return repr(text if len(text) <= 60 else text[:57] + "...")

                    raise SpecError(
                        f"keyframes[{i}].text_diff: 'from' {short(td.get('from', NEUTRAL_CAPTION))}"
                        + ("" if "from" in td else " (the default)") + f" and 'to' {short(td['to'])} encode the same "
                        "(the CLIP tokenizer reads text in lower case and ignores extra spaces, and reads no word past "
                        "its context), so there is no edit direction; give captions that differ in words, early on "
                        "(CLI: --from, --to)."
                    )
                z = ops.text_diff(kfs[-1], src, dst, float(td.get("theta", 0.5)))
            else:
                kind = "mix" if "mix" in kf else "sum"
                pts = torch.cat([embed_item(it) for it in kf[kind]])
                w = torch.tensor([float(it.get("weight", 1.0)) for it in kf[kind]])
                try:  # (terms that cancel out: ops said "rows [0]", naming no keyframe)
                    if kind == "mix":
                        z = ops.spherical_mean(pts, w).reshape(1, -1)
                    else:
                        z = ops.arithmetic([(float(wi), pts[j : j + 1]) for j, wi in enumerate(w)])
                except ArgumentError as exc:
                    raise SpecError(f"keyframes[{i}].{kind}: {exc}") from None
            kfs.append(z)
        segs = []
        for kf in self.keyframes[1:]:
            segs.append(
                Segment(
                    int(kf.get("frames", self.frames)),
                    easing=kf.get("easing", self.easing),
                    method=kf.get("method", self.method),
                    hold=int(kf.get("hold", 0)),
                )
            )
        space = getattr(encoder, "space", None)
        return Trajectory(torch.cat(kfs), segs, labels=self.labels(), space=space)


_PICTURES_READ: dict[tuple[str, int, int], None] = {}  # (path, mtime, size) of the files that read as pictures


def _check_picture(path: Path, where: str) -> None:
    """Refuse a keyframe file that is not a picture (a text file, a truncated download) while the
    spec is checked, not once the models have loaded: it is decoded as the encoders read it
    (``PIL.Image.open`` and ``load``, as :func:`latentlab.video.load_image`), so what this accepts
    they read, and what it refuses they would (a checksum-only check refused PNGs with a bad
    text chunk that load fine, and passed truncated JPEGs). Once per file (path, time, size)."""
    try:
        st = path.stat()
    except OSError:  # (is_file said it is there: gone meanwhile, or unreadable; the encoder says so)
        return
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key in _PICTURES_READ:
        return
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
    except Exception as exc:  # UnidentifiedImageError, OSError, SyntaxError (a damaged PNG), DecompressionBombError ...
        from .encoders import _too_large

        reason = "not a picture format it knows" if isinstance(exc, UnidentifiedImageError) else str(exc) or type(exc).__name__
        raise SpecError(
            f"{where}: {str(path)!r} cannot be read as a picture ({reason}). "
            + (_too_large(exc) or "Check the file, or name another picture.")
        ) from None
    if len(_PICTURES_READ) > 4096:
        _PICTURES_READ.clear()
    _PICTURES_READ[key] = None


def _video_suffix(output: Any) -> str:
    """``output``'s suffix when it names a video format ("gif"), else ""."""
    if not isinstance(output, str):
        return ""
    suffix = Path(output).suffix.lower().lstrip(".")
    return suffix if suffix in FORMATS else ""


def load_spec(source: str | os.PathLike | dict[str, Any] | Spec, **overrides: Any) -> Spec:
    """A :class:`Spec` from ``source``: a file path (JSON/TOML), a dict, or a Spec (copied);
    keyword arguments (``**overrides``) replace fields.

    >>> s = load_spec({"keyframes": [{"text": "a red circle"}, {"text": "a blue square"}], "preset": "tiny"})
    >>> s.frames, s.noise
    (48, 'shared')
    """
    if isinstance(source, Spec):
        data = source.to_dict()  # a deep copy
        base = source.base_dir
    elif isinstance(source, dict):  # a deep copy: the caller may edit and reuse its dict
        data, base = copy.deepcopy(dict(source)), None
    elif isinstance(source, (str, os.PathLike)):
        data = load_file(source)
        base = str(user_path(source).resolve().parent)
    else:
        raise ArgumentError(f"spec must be a path, a dict or a Spec, got {type(source).__name__}.")
    if isinstance(overrides.get("output"), (str, os.PathLike)) and overrides.get("format") is None and "format" in data:
        data.pop("format")  # a new output's suffix says the format, not the one the spec had
    if overrides.get("format") is not None and overrides.get("output") is None and "output" in data:
        # a format asked for over a spec whose output names another is a contradiction, said as such
        # (not taken for an older spec's always-written "mp4")
        suffix = _video_suffix(data["output"])
        if suffix and suffix != overrides["format"]:
            raise SpecError(
                f"'format' is {overrides['format']!r} but the spec's 'output' {data['output']!r} ends in .{suffix}: "
                f"the video's format follows its name. Drop 'format', or give 'output' a .{overrides['format']} name."
            )
    data.update({k: v for k, v in overrides.items() if v is not None})
    if "base_dir" in data:
        given = data.pop("base_dir")
        if given is not None:  # null / None: unset, relative paths start where they would without it
            if not isinstance(given, (str, os.PathLike)) or isinstance(given, bytes):
                raise SpecError(f"'base_dir' must be a folder path (a string), got {given!r}.")
            _check_base_dir(os.fspath(given))  # (before a file's folder makes it absolute)
            given = os.path.expanduser(os.fspath(given))  # "~/pictures" as a shell reads it
            if base is not None and not Path(given).is_absolute():
                given = str(Path(base) / given)  # in a file: from the file's folder
            base = given
    allowed = {f.name for f in fields(Spec)} - {"base_dir"}
    unknown = set(data) - allowed
    if unknown:
        import difflib

        def hint(u: str) -> str:
            # only a close match: a typo ('gudiance_scale', 'fsp'), or the start of a field ('guidance', as the
            # flag --guidance), not any field at all ('version' was "did you mean 'easing'?")
            close = difflib.get_close_matches(u, allowed, 1, cutoff=0.8)
            close = close or sorted(a for a in allowed if sorted(a) == sorted(u) or (len(u) >= 4 and a.startswith(u)))
            return f"{u!r} (did you mean {close[0]!r}?)" if close else repr(u)

        hints = [hint(u) if isinstance(u, str) else repr(u) for u in sorted(unknown, key=str)]  # (a dict's 1: 2 too)
        raise SpecError(f"unknown spec field(s): {', '.join(hints)}. Allowed: {', '.join(sorted(allowed))}.")
    if "keyframes" not in data:
        raise SpecError("the spec needs 'keyframes': at least two [[keyframes]] tables.")
    return Spec(**data, base_dir=base)
