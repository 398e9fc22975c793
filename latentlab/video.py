"""The assembler: frames in, files out (mp4, gif, webp, png) and back.

Frames are uint8 RGB arrays of shape ``(T, H, W, 3)``. Every function here also accepts a
list of ``(H, W, 3)`` arrays (or PIL images, or CPU torch tensors) and float frames with
values in ``[0, 1]``, which are converted with ``round(x * 255)``. Anything else raises
:class:`~latentlab.errors.ArgumentError` naming the shape/dtype found and the fix.

Every file is written to a temporary name next to its target and renamed with
:func:`os.replace` once complete, so an interrupted write never leaves a broken file under
the final name (a hidden ``.<name>.<random>.tmp.<ext>`` may remain after a hard kill).

imageio, imageio-ffmpeg and Pillow are imported lazily, inside the functions that use them.

>>> import numpy as np, tempfile, pathlib
>>> frames = np.zeros((4, 32, 32, 3), np.uint8); frames[:, :, :16] = 255
>>> out = pathlib.Path(tempfile.mkdtemp()) / "clip.gif"
>>> write_video(frames, out, fps=8, pingpong=True).name
'clip.gif'
"""

from __future__ import annotations

import errno
import functools
import math
import os
import stat
import struct
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import _atomic
from .errors import ArgumentError, LatentlabError, check_bool, is_finite_real, result_fix, shown, url_hint, user_path

__all__ = [
    "SUPPORTED_FORMATS",
    "MIN_FPS",
    "write_video",
    "read_video",
    "sequence",
    "contact_sheet",
    "save_image",
    "load_image",
    "save_frames",
    "check_video_writer",
    "FFMPEG_FORMATS",
]

#: Container formats :func:`write_video` can write.
SUPPORTED_FORMATS: tuple[str, ...] = ("mp4", "gif", "webp")

# GIF stores frame delays in hundredths of a second and browsers stretch delays under
# 2/100 s to 1/10 s, so a GIF cannot play faster than this.
_GIF_MAX_FPS = 50.0
# ... and as a 16-bit count, so one picture shows at most 655.35 s
_GIF_MAX_DELAY_CS = 65535
#: The slowest frame rate :func:`write_video` takes: ffmpeg's mp4 muxer and Pillow's webp
#: writer fail not far below it (one frame every 100 s).
MIN_FPS = 0.01
# webp stores whole milliseconds, at least 1 per frame: faster would play slower than asked
_WEBP_MAX_FPS = 1000.0
# browsers (Chromium, Firefox, WebKit) play any animated-image frame of 10 ms or less for 100 ms,
# a webp's as a gif's: a webp shown inline plays as written only up to 1000 / 11 fps
_WEBP_BROWSER_MAX_FPS = 1000 / 11
# Pillow's webp writer passes each frame's start time in ms as a C int: a longer webp overflowed it
_WEBP_MAX_TOTAL_MS = 2**31 - 1
# libwebp's largest picture side
_WEBP_MAX_SIDE = 16383
# the largest picture side of each format Pillow writes with a limit below a render's (a gif's is a 16-bit
# count, libjpeg's 65500): past it Pillow raised a raw error (a gif's OverflowError was said as a too-long hold)
_MAX_SIDE = {"webp": _WEBP_MAX_SIDE, "gif": 65535, "jpeg": 65500}
_DEFAULT_MP4_QUALITY = 65  # -> x264 CRF 18, "visually lossless" for most content
_DEFAULT_WEBP_QUALITY = 90
# Suffixes of image and video formats other than write_video's own: a file written under one of
# them is taken for that format by players, read_video and show_video, so write_video refuses a
# format= that disagrees with them (a suffix outside these and SUPPORTED_FORMATS is left alone).
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_OTHER_VIDEO_SUFFIXES = (".webm", ".avi", ".mkv", ".mpg", ".mpeg")  # (.m4v and .mov may hold H.264 as an mp4 does)


# ------------------------------------------------------------------------------------
# input validation
# ------------------------------------------------------------------------------------
def _to_numpy(x: Any) -> np.ndarray:
    """ndarray view of an array-like, torch tensor or PIL image (no dtype change, except a
    tensor dtype numpy lacks, such as bfloat16, which becomes float32; a PIL image of any mode
    becomes RGB as :func:`load_image` reads one: alpha composited on white, palettes applied)."""
    if type(x).__module__.split(".")[0] == "torch":
        x = x.detach().cpu()
        try:
            return x.numpy()
        except TypeError:  # bfloat16 and the like: numpy has no such dtype
            return x.float().numpy()
    if type(x).__module__.split(".")[0] == "PIL" and hasattr(x, "mode") and hasattr(x, "getexif"):
        from .encoders import _to_rgb

        return np.asarray(_to_rgb(x))
    return np.asarray(x)


_CONVERT_BLOCK = 1 << 22
"""Values of float frames :func:`_to_uint8` converts at a time (4 M: 16 MB a float32 temporary)."""


def _to_uint8(a: np.ndarray, what: str) -> np.ndarray:
    """Convert one array of any supported dtype to uint8 (values checked, never wrapped)."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_ or not (
        np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)
    ):
        raise ArgumentError(
            f"{what} has dtype {a.dtype}; expected uint8 in [0, 255] or float in [0, 1]. "
            "Fix: convert it, e.g. frames.astype(np.uint8) or frames.astype(np.float32)."
        )
    if a.size == 0:
        return a.astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 255:
            raise ArgumentError(
                f"{what} has integer dtype {a.dtype} with values in [{lo}, {hi}]; "
                "expected [0, 255]. Fix: rescale/clip to [0, 255] before passing it."
            )
        return a.astype(np.uint8)
    # floating point: [0, 1] expected (checked before the float32 cast, which makes 1e300 an inf)
    if not np.isfinite(a).all():
        raise ArgumentError(
            f"{what} is a float array containing NaN or inf. "
            "Fix: check the decoder output, e.g. np.nan_to_num(frames)."
        )
    lo, hi = float(a.min()), float(a.max())
    tol = 1e-3
    if lo < -tol or hi > 1 + tol:
        hint = (
            "it looks like [-1, 1]: pass (frames + 1) / 2"
            if lo >= -1 - tol and hi <= 1 + tol
            else "it looks like [0, 255]: pass frames.astype(np.uint8)"
            if lo >= -tol and hi <= 255 + tol
            else "rescale it to [0, 1]"
        )
        raise ArgumentError(
            f"{what} is a float array with values in [{lo:.4g}, {hi:.4g}]; float frames "
            f"must be in [0, 1]. Fix: {hint}."
        )
    if a.ndim == 0:
        return np.rint(np.clip(a.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
    # a block of frames (rows, for one picture) at a time, straight into the uint8 array returned: the whole
    # video at once made three float32 copies of it (twice a float32 video's own memory, 8 times the result's)
    out = np.empty(a.shape, np.uint8)
    per = max(1, _CONVERT_BLOCK // max(1, int(np.prod(a.shape[1:]))))
    for s in range(0, a.shape[0], per):
        out[s : s + per] = np.rint(np.clip(a[s : s + per].astype(np.float32, copy=False), 0.0, 1.0) * 255.0)
    return out


def _shape_fix(shape: tuple[int, ...], *, image: str | None = None, items: str | None = None) -> str:
    """A hint for a frame-batch shape that is not (T, H, W, 3). For one image named ``image``, or
    an item of the list named ``items``, ``shape`` is ``(1, *its shape)``: the channels-first fix
    then names that image, or converts each item (a list has no ``.permute``)."""
    if len(shape) == 4 and shape[1] in (1, 3, 4) and shape[-1] not in (1, 3, 4):
        if image is not None:
            return (f"it looks channels-first: pass {image}.transpose(1, 2, 0) (numpy) "
                    f"or {image}.permute(1, 2, 0) (torch)")
        if items is not None:
            return (f"it looks channels-first: pass [f.transpose(1, 2, 0) for f in {items}] (numpy) "
                    f"or [f.permute(1, 2, 0) for f in {items}] (torch)")
        return "it looks channels-first: pass frames.transpose(0, 2, 3, 1) (numpy) or frames.permute(0, 2, 3, 1) (torch)"
    if len(shape) >= 1 and shape[-1] == 4:
        return ("composite the alpha channel on a background first, e.g. on white for uint8 frames: "
                "np.rint(frames[..., :3] * (frames[..., 3:] / 255) + (255 - frames[..., 3:])).astype(np.uint8) "
                "(frames[..., :3] alone shows transparent pixels in whatever colour they hold, often black)")
    if len(shape) >= 1 and shape[-1] == 1:
        return "repeat the grey channel: np.repeat(frames, 3, axis=-1)"
    if len(shape) == 3 and shape[-1] == 3:
        return "this is a single (H, W, 3) image: pass frames[None] (or [frame]) for a 1-frame video"
    if len(shape) == 3:
        return "grey frames need a channel axis: np.repeat(frames[..., None], 3, axis=-1)"
    return "pass a uint8 array of shape (T, H, W, 3) or a list of (H, W, 3) arrays"


def _as_frames(frames: Any, name: str = "frames") -> np.ndarray:
    """Validate and convert ``frames`` to a C-contiguous uint8 array (T, H, W, 3)."""
    if isinstance(frames, (str, bytes, os.PathLike)):
        raise ArgumentError(
            f"{name} is a path ({frames!r}), not pixel data. "
            "Fix: load it first with read_video(path) or load_image(path)."
        )
    from .trajectory import Trajectory

    if isinstance(frames, Trajectory):  # numpy would make it a 0-d object array: "shape ()" says nothing
        raise ArgumentError(
            f"{name} is a Trajectory ({len(frames)} frames of embeddings), not pictures. Fix: render it first, "
            f"frames = dec.render(path) (or ll.render(path, dec)), and pass the frames; in a notebook, "
            "ll.scrub(path, dec) scrubs through it."
        )
    fix = result_fix(frames, "frames")  # a RenderResult, IterativeEdit or Pacing: "shape ()" too
    if fix:
        raise ArgumentError(f"{name} is a latentlab {type(frames).__name__}, not frames (T, H, W, 3).{fix}")
    if isinstance(frames, Iterator):  # numpy would make it a 0-d object array: "shape ()" says nothing
        raise ArgumentError(
            f"{name} is a generator/iterator ({type(frames).__name__}), which can be read only once and has "
            f"no shape. Fix: pass list({name}) or np.stack(list({name}))."
        )
    if isinstance(frames, (list, tuple)):
        if len(frames) == 0:
            raise ArgumentError(f"{name} is an empty list. Fix: pass at least one frame.")
        def converted() -> Iterator[np.ndarray]:
            first: tuple[int, ...] | None = None
            for i, f in enumerate(frames):
                if isinstance(f, (str, os.PathLike)):  # an image file, read as show() and the encoders read it
                    try:
                        a = load_image(f)
                    except ArgumentError as e:
                        raise ArgumentError(f"{name}[{i}]: {e}") from None
                else:
                    a = _to_numpy(f)
                if a.ndim != 3 or a.shape[-1] != 3:
                    raise ArgumentError(
                        f"{name}[{i}] has shape {tuple(a.shape)} (dtype {a.dtype}); each frame "
                        f"must be (H, W, 3) RGB. Fix: {_shape_fix((1, *a.shape), items=name)}."
                    )
                if first is not None and a.shape != first:
                    raise ArgumentError(
                        f"{name}[{i}] has shape {tuple(a.shape)} but {name}[0] has "
                        f"{first}; all frames must share one size. "
                        "Fix: resize them to a common size first."
                    )
                first = tuple(a.shape)
                yield _to_uint8(a, f"{name}[{i}]")

        # each frame (a file read, a float frame converted) goes into the stack as it comes: a list of them,
        # then their stack, held thousands of frames read from files twice
        out = _stacked(converted())
    else:
        a = _to_numpy(frames)
        if a.ndim != 4 or a.shape[-1] != 3:
            raise ArgumentError(
                f"{name} has shape {tuple(a.shape)} (dtype {a.dtype}); expected "
                f"(T, H, W, 3) RGB frames. Fix: {_shape_fix(tuple(a.shape))}."
            )
        out = _to_uint8(a, name)
    if 0 in out.shape:
        raise ArgumentError(
            f"{name} has shape {tuple(out.shape)}: no pixels. "
            "Fix: pass at least one frame of at least 1x1 pixels."
        )
    return np.ascontiguousarray(out)


def _as_image(array: Any, name: str = "array") -> np.ndarray:
    """Validate and convert one image to uint8 (H, W, 3)."""
    fix = result_fix(array, "frames")  # a RenderResult, IterativeEdit or Pacing: numpy said "shape ()"
    if fix:
        raise ArgumentError(f"{name} is a latentlab {type(array).__name__}, not an image (H, W, 3).{fix} Then take one "
                            "frame, e.g. frames[0], or lay them out with ll.contact_sheet(frames).")
    a = _to_numpy(array)
    if a.ndim != 3 or a.shape[-1] != 3:
        if a.ndim == 4 and a.shape[-1] == 3:
            fix = f"take one frame: {name}[0]"
        elif a.ndim == 3:
            fix = _shape_fix((1, *a.shape), image=name)
        elif a.ndim == 2:
            fix = f"grey images need a channel axis: np.repeat({name}[..., None], 3, axis=-1)"
            if type(array).__module__.split(".")[0] == "torch" and np.issubdtype(a.dtype, np.floating):
                fix += " (if these are (n, d) embeddings, they are not pictures: decode them first, decoder.decode(z))"
        else:
            fix = "pass a (H, W, 3) uint8 array"
        raise ArgumentError(
            f"{name} has shape {tuple(a.shape)} (dtype {a.dtype}); expected one (H, W, 3) "
            f"RGB image. Fix: {fix}."
        )
    if 0 in a.shape:
        raise ArgumentError(f"{name} has shape {tuple(a.shape)}: no pixels.")
    return np.ascontiguousarray(_to_uint8(a, name))


def _check_count(value: Any, name: str, unit: str = "frames", example: int = 12) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ArgumentError(
            f"{name}={shown(value)}; expected a whole number of {unit} >= 0. Fix: e.g. {name}={example}."
        )
    return int(value)


def _check_fps(fps: Any) -> float:
    try:
        f = float(fps)
    except (TypeError, ValueError, OverflowError):  # (OverflowError: an integer too large for a float)
        f = float("nan")
    if isinstance(fps, (bool, np.bool_)) or not math.isfinite(f) or f <= 0:
        raise ArgumentError(f"fps={shown(fps)}; expected a positive number. Fix: e.g. fps=24.")
    if f < MIN_FPS:
        raise ArgumentError(
            f"fps={fps!r} is below {MIN_FPS:g} (one frame every {1 / MIN_FPS:g} s), the slowest latentlab writes in "
            f"any format (ffmpeg's mp4 and Pillow's webp writers fail not far below it). Fix: use fps >= {MIN_FPS:g}, "
            "or hold a frame longer with hold_first / hold_last."
        )
    return f


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentError(f"{name}={value!r}; expected True or False.")
    return bool(value)


# ------------------------------------------------------------------------------------
# atomic writes
# ------------------------------------------------------------------------------------
def _check_name_lengths(target: Path, name: str = "path") -> None:
    """Refuse a file or folder name longer than the file system takes (usually 255 bytes), before
    anything is encoded: the rename into place, or even ``is_dir()``, failed with a raw OSError."""
    existing = target.parent
    while not os.path.exists(existing) and existing != existing.parent:
        existing = existing.parent
    try:
        limit = os.pathconf(existing, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # no pathconf (Windows), or no answer
        limit = 255
    if limit <= 0:  # -1: the file system sets no limit
        return
    for part in target.parts:
        size = len(part.encode("utf-16-le")) // 2 if os.name == "nt" else len(os.fsencode(part))  # NTFS: UTF-16 units
        if size > limit:
            what = "file name" if part == target.name else f"folder name {part[:24] + '...'!r}"
            raise ArgumentError(
                f"{name} {str(target)[:80] + '...'!r}: the {what} is {size} bytes, longer than the {limit} "
                f"the file system takes for one name. Fix: choose a shorter name."
            )


def _prepare_target(path: Any, name: str = "path") -> Path:
    """Check ``path`` can be written: create parent dirs; refuse directories and names too long."""
    if not isinstance(path, (str, os.PathLike)) or str(path) == "":
        raise ArgumentError(f"{name}={path!r}; expected a file path (str or pathlib.Path).")
    target = user_path(path)
    _check_name_lengths(target, name)
    if target.is_dir():
        raise ArgumentError(
            f"{name} {str(target)!r} is a directory. Fix: give a file name inside it, "
            f"e.g. {str(target / ('out' + (target.suffix or '.mp4')))!r}."
        )
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as e:
        raise ArgumentError(
            f"cannot create the directory for {name} {str(target)!r}: a path component "
            f"is an existing file ({e.filename or parent}). Fix: choose another location."
        ) from None
    except OSError as e:
        raise ArgumentError(
            f"cannot create the directory {str(parent)!r} for {name} {str(target)!r}: "
            f"{e.strerror or e}. Fix: choose a writable location or fix its permissions."
        ) from None
    return target


# the one temporary name of every latentlab write (hidden, beside its target) and its test
_temp_path, _temp_stem, _is_temp_name = _atomic.temp_path, _atomic.temp_stem, _atomic.is_temp_name


#: a temporary file of a write that has not touched it for this long is taken for one a killed
#: writer left (a render's lock covers its folder, not a video path another render may share)
STALE_TEMP_S = 3600.0


def remove_stale_temps(target: str | os.PathLike, *, older_than: float = STALE_TEMP_S) -> list[Path]:
    """Remove the temporary files (:func:`_temp_path`'s names) that writers of ``target`` killed
    mid-write left beside it (a hidden partial video each), untouched for ``older_than``
    seconds (an hour: one written now may be another render's, writing the same video); returns
    them."""
    target = Path(target)
    return _atomic.remove_temps(target.parent, _temp_stem(target), older_than)


def _atomic_write(target: Path, write: Callable[[Path], None], *, ext: str | None = None,
                  name: str = "path") -> Path:
    """Run ``write(tmp)`` on a temp file next to ``target`` then rename it into place
    (:func:`latentlab._atomic.write_whole`).

    Any failure (or KeyboardInterrupt) removes the temp file and leaves ``target``
    untouched."""
    tmp = _temp_path(target, ext)
    try:
        # Creating the file ourselves turns permission problems into a clear error here,
        # instead of a message from deep inside ffmpeg or Pillow.
        with open(tmp, "xb"):
            pass
    except OSError as e:
        raise ArgumentError(
            f"cannot write {name} {str(target)!r}: {e.strerror or e}. "
            "Fix: choose a writable location or fix its permissions."
        ) from None
    _atomic.write_whole(target, write, tmp=tmp)
    return target


# ------------------------------------------------------------------------------------
# frame ordering
# ------------------------------------------------------------------------------------
def _sequence_indices(n: int, hold_first: int, hold_last: int, pingpong: bool) -> np.ndarray:
    """Indices into n frames implementing :func:`sequence` (int64 array); holds too long for this
    machine to index (``hold_last=10**12``, or a 400-digit count) are an :class:`ArgumentError`
    (numpy raised a raw ValueError or MemoryError)."""
    try:
        return _sequence_order(n, hold_first, hold_last, pingpong)
    except (ValueError, MemoryError, OverflowError):
        total = n + hold_first + hold_last + (max(n - 2, 0) if pingpong else 0)
        raise ArgumentError(
            f"hold_first={shown(hold_first)} and hold_last={shown(hold_last)} make {shown(total)} frames, too many for "
            "this machine to put in order. Fix: shorten the holds (at 24 fps, hold_last=24 holds the last frame one second)."
        ) from None


def _sequence_order(n: int, hold_first: int, hold_last: int, pingpong: bool) -> np.ndarray:
    if n == 1:
        return np.zeros(1 + hold_first + hold_last, dtype=np.int64)
    forward = np.concatenate([
        np.zeros(hold_first + 1, np.int64),
        np.arange(1, n - 1, dtype=np.int64),
        np.full(hold_last + 1, n - 1, np.int64),
    ])
    if not pingpong:
        return forward
    back = np.arange(n - 2, 0, -1, dtype=np.int64)
    return np.concatenate([forward, back])


def sequence(frames: Any, *, hold_first: int = 0, hold_last: int = 0,
             pingpong: bool = False) -> np.ndarray:
    """The frame order :func:`write_video` writes: holds and ping-pong applied.

    Args:
        frames: uint8 ``(T, H, W, 3)`` (or a list of ``(H, W, 3)`` images or image file paths, or
            float in [0, 1]).
        hold_first: extra copies of the first frame (counted in frames, so at 24 fps
            ``hold_first=24`` shows it one second longer).
        hold_last: extra copies of the last frame (the turning frame when ``pingpong``).
        pingpong: after the forward pass, play the frames backwards, leaving out both
            turning frames so that a looping player shows every frame once per pass:
            ``0 1 2 3 4`` becomes ``0 1 2 3 4 3 2 1`` (and then loops back to 0). The held
            copies stay where they are: the first frame's before the forward pass, the last
            frame's at the turn.

    Returns:
        uint8 array ``(T', H, W, 3)`` with
        ``T' = T + hold_first + hold_last + (max(T - 2, 0) if pingpong else 0)``.

    >>> import numpy as np
    >>> f = np.arange(4, dtype=np.uint8)[:, None, None, None].repeat(3, -1)  # (4, 1, 1, 3)
    >>> sequence(f, hold_first=1, hold_last=2, pingpong=True)[:, 0, 0, 0].tolist()
    [0, 0, 1, 2, 3, 3, 3, 2, 1]
    """
    arr = _as_frames(frames)
    idx = _sequence_indices(len(arr), _check_count(hold_first, "hold_first"),
                            _check_count(hold_last, "hold_last"), _check_bool(pingpong, "pingpong"))
    return arr[idx]


# ------------------------------------------------------------------------------------
# writers
# ------------------------------------------------------------------------------------
def _resolve_format(format: str | None, target: Path) -> str:
    if format is not None:
        if not isinstance(format, str):
            raise ArgumentError(
                f"format={format!r}; expected one of {', '.join(map(repr, SUPPORTED_FORMATS))}."
            )
        fmt = format.lower().lstrip(".")
        if fmt not in SUPPORTED_FORMATS:
            raise ArgumentError(
                f"unknown video format {format!r}; supported formats: "
                f"{', '.join(SUPPORTED_FORMATS)}. Fix: pass format='mp4' (or 'gif', 'webp')."
            )
        return fmt
    fmt = target.suffix.lower().lstrip(".")
    if fmt not in SUPPORTED_FORMATS:
        found = repr(target.suffix) if target.suffix else "no suffix"
        raise ArgumentError(
            f"unknown video format for path {str(target)!r} ({found}); supported formats: "
            f"{', '.join(SUPPORTED_FORMATS)}. Fix: end the path with .mp4, .gif or .webp, "
            "or pass format=..."
        )
    return fmt


def _check_quality(quality: Any) -> int | None:
    if quality is None:
        return None
    if not is_finite_real(quality) or not 0 <= float(quality) <= 100:  # (10**400: float() overflowed)
        raise ArgumentError(
            f"quality={shown(quality)}; expected a number in [0, 100] (higher is better) or None "
            "for the format's default. Fix: e.g. quality=80."
        )
    return int(round(float(quality)))


def _frame_durations_ms(count: int, fps: float, unit_ms: int) -> list[int]:
    """Per-frame durations in ms, multiples of ``unit_ms``, whose running sum tracks
    ``k / fps`` (so 24 fps in 10 ms units plays 40, 40, 40, 50, ... and never drifts)."""
    ticks = np.rint(np.arange(count + 1) * (1000.0 / fps) / unit_ms).astype(np.int64)
    d = np.diff(ticks)
    d = np.maximum(d, 1)  # never a zero delay
    return [int(x) * unit_ms for x in d]


#: The formats :func:`write_video` writes through ffmpeg (imageio-ffmpeg's, or the one that
#: ``IMAGEIO_FFMPEG_EXE`` names); gif and webp are written by Pillow and need none.
FFMPEG_FORMATS: tuple[str, ...] = ("mp4",)


def _no_ffmpeg(fmt: str, problem: str, fix: str | None = None, reading: Path | None = None) -> ArgumentError:
    """The error for an ffmpeg that cannot write ``fmt`` (or read the video ``reading``):
    ``problem`` says what is wrong with it (``fix``: how to mend it, by default set by whether
    ``IMAGEIO_FFMPEG_EXE`` is set)."""
    env = os.environ.get("IMAGEIO_FFMPEG_EXE")
    if fix is None and env:
        now = "" if repr(env) in problem else f" (now {env!r})"
        fix = (f"point IMAGEIO_FFMPEG_EXE{now} at a working ffmpeg executable, or unset it to use imageio-ffmpeg's "
               "own (`pip install imageio-ffmpeg` bundles one) or an ffmpeg installed on the PATH")
    elif fix is None:
        fix = ("`pip install imageio-ffmpeg` (it bundles an ffmpeg), or install ffmpeg on the PATH, or set "
               "IMAGEIO_FFMPEG_EXE to an ffmpeg executable")
    if reading is not None:
        return ArgumentError(f"cannot read {str(reading)!r}: a video of that kind is decoded by ffmpeg, and {problem}. "
                             f"Fix: {fix}.")  # fmt: skip
    others = [f for f in SUPPORTED_FORMATS if f not in FFMPEG_FORMATS]
    return ArgumentError(
        f"cannot write {fmt}: it is encoded by ffmpeg, and {problem}. Fix: {fix}; or write "
        f"{' or '.join(others)}, which need no ffmpeg (format={others[0]!r}; CLI: --format {others[0]})."
    )


def _ffmpeg_exe(fmt: str = "mp4", reading: Path | None = None) -> str:
    """The ffmpeg executable imageio-ffmpeg runs (``IMAGEIO_FFMPEG_EXE`` if set, else its bundled
    binary, else one on the PATH), not checked; a missing imageio-ffmpeg, or one that found no
    ffmpeg, raises :func:`_no_ffmpeg`'s error (of reading the video ``reading``, where given)."""
    try:
        import imageio_ffmpeg
    except ImportError as e:
        env = os.environ.get("IMAGEIO_FFMPEG_EXE")
        if not (isinstance(e, ModuleNotFoundError) and e.name == "imageio_ffmpeg"):  # installed, failing as it imports
            # (0.4.9 imports pkg_resources, gone from setuptools 82: it was said as "not installed", whose fix does nothing)
            raise _no_ffmpeg(fmt, f"imageio-ffmpeg, which runs it, is installed but cannot be imported ({e})",
                             "`pip install --upgrade --force-reinstall imageio-ffmpeg` (0.5 or newer)",
                             reading=reading) from None  # fmt: skip
        raise _no_ffmpeg(fmt, f"imageio-ffmpeg, which runs it, is not installed ({e})",
                         "`pip install imageio-ffmpeg` (it bundles an ffmpeg"
                         + (f"; it runs IMAGEIO_FFMPEG_EXE={env!r} instead when that is set)" if env else ")"),
                         reading=reading) from None  # fmt: skip
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as e:  # "No ffmpeg exe could be found": no bundled binary, none on the PATH
        raise _no_ffmpeg(fmt, f"imageio-ffmpeg found no ffmpeg executable ({str(e).split('. ')[0]})",
                         reading=reading) from None  # fmt: skip


def _exe_name(exe: str) -> str:
    """``exe`` as a message names it: by ``IMAGEIO_FFMPEG_EXE`` when that is where it came from."""
    return f"IMAGEIO_FFMPEG_EXE={exe!r}" if os.environ.get("IMAGEIO_FFMPEG_EXE") == exe else f"the ffmpeg {exe!r}"


def _exe_problem(exe: str) -> str | None:
    """What keeps ``exe`` (a path, or a name looked up on the PATH as subprocess does) from
    being run, or None if it is an executable file."""
    import shutil

    what = _exe_name(exe)
    if os.path.dirname(exe):
        if not os.path.exists(exe):
            return f"{what} does not exist"
        if os.path.isdir(exe):
            return f"{what} is a directory, not an executable"
        if not os.access(exe, os.X_OK):
            return f"{what} is not executable (its permissions lack the execute bit)"
        return None
    if shutil.which(exe) is None:
        return f"{what} is not on the PATH (or not executable)"
    return None


def _check_side(size: int, fmt: str) -> None:
    """Refuse frames ``size`` pixels a side for a format that holds fewer (:data:`_MAX_SIDE`: a webp
    at most 16383, libwebp's limit, where Pillow's writer raised a raw RuntimeError after encoding;
    a gif 65535). (A spec's size is at most 4096.)"""
    most = _MAX_SIDE.get(fmt)
    if most is not None and size > most:
        raise ArgumentError(
            f"a {fmt} is at most {most} pixels per side, and these frames would be {size}. "
            f"Fix: pass size <= {min(most, 16384)}, or write mp4."
        )


def check_video_writer(path_or_format: str | os.PathLike[str]) -> str | None:
    """Check, cheaply and before any rendering, that :func:`write_video` can write this format.

    ``path_or_format`` is a format name (``"mp4"``, ``".gif"``, ...: one of
    :data:`SUPPORTED_FORMATS`) or an output path, whose suffix gives the format. For a format
    written through ffmpeg (:data:`FFMPEG_FORMATS`: mp4) it resolves the ffmpeg executable as
    imageio-ffmpeg does (``IMAGEIO_FFMPEG_EXE`` if set, else its bundled binary, else ``ffmpeg``
    on the PATH) and checks that it exists and is executable; nothing is encoded (an executable
    that is not a working ffmpeg shows only when writing, which then refuses its empty output).

    Returns:
        The ffmpeg executable for an ffmpeg format, ``None`` for gif and webp (Pillow writes
        them; they need no ffmpeg, but webp needs a Pillow built with WebP support, and before Pillow 11
        with its animation support, as its wheels are).

    Raises:
        ArgumentError: an unknown format or suffix (as :func:`write_video` says it); or, for mp4,
            imageio-ffmpeg is not installed, finds no ffmpeg, or the executable
            (``IMAGEIO_FFMPEG_EXE``'s when set) is missing, a directory or not executable. The
            message names ffmpeg (and ``IMAGEIO_FFMPEG_EXE`` when set), the fix (``pip install
            imageio-ffmpeg``, install ffmpeg, or set ``IMAGEIO_FFMPEG_EXE``) and the formats
            that need no ffmpeg (``format='gif'``; CLI: ``--format gif``); for webp, a Pillow
            without WebP support (or, before Pillow 11, without its animated writer).

    >>> check_video_writer("clip.gif") is None
    True
    """
    if isinstance(path_or_format, str) and path_or_format.lower().lstrip(".") in SUPPORTED_FORMATS:
        fmt = path_or_format.lower().lstrip(".")
    elif isinstance(path_or_format, (str, os.PathLike)) and str(path_or_format) != "":
        fmt = _resolve_format(None, Path(path_or_format))
    else:
        raise ArgumentError(
            f"path_or_format={path_or_format!r}; expected a format ({', '.join(SUPPORTED_FORMATS)}) or an output path."
        )
    if fmt == "webp":  # Pillow writes it through libwebp, which a Pillow built from source may lack
        from PIL import Image, features

        try:  # the plugin registers the writer it has
            from PIL import WebPImagePlugin  # noqa: F401
        except ImportError:  # (a Pillow without it: refused below by features.check)
            pass
        # an animated one needs its save_all writer too, which a Pillow before 11 registers only with
        # libwebp's mux and demux (HAVE_WEBPANIM): without them features.check('webp') is True, and the writer
        # raised the same raw KeyError
        if not features.check("webp") or "WEBP" not in Image.SAVE_ALL:  # (a raw KeyError, after the whole render)
            raise ArgumentError(
                "cannot write webp: this Pillow was built without WebP support (PIL.features.check('webp') is "
                "False), or, before Pillow 11, without libwebp's animation support (mux and demux). Fix: install a "
                "Pillow with it (the wheels of `pip install --force-reinstall pillow` include it); or write gif or "
                "mp4 (format='gif'; CLI: --format gif)."
            )
    if fmt not in FFMPEG_FORMATS:
        return None
    exe = _ffmpeg_exe(fmt)
    problem = _exe_problem(exe)
    if problem is not None:
        raise _no_ffmpeg(fmt, problem)
    return exe


def _lanczos(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """One uint8 ``(H, W, 3)`` frame resized to ``width`` x ``height`` (Lanczos), as every
    resize of a render's frames for its video and contact sheet is made."""
    from PIL import Image

    return np.asarray(Image.fromarray(frame).resize((width, height), Image.LANCZOS))


class _Shown:
    """The frames a video shows, for its writers: ``shown[i]`` is frame ``i`` resized (Lanczos)
    to ``size`` x ``size`` when it is asked for (the last one kept, for the repeats of a hold), so
    an mp4 or gif writer never holds all the resized frames as such (resized first, a long render's
    frames at 512 px took gigabytes); ``native`` holds the frames as given. Each frame fed to a writer ticks ``bar``."""

    def __init__(self, native: np.ndarray, size: int | None = None, bar: Any = None) -> None:
        t, h, w, c = native.shape
        self.native, self.bar = native, bar
        self.size = None if size is None or (h == size and w == size) else int(size)
        self.shape = (t, h, w, c) if self.size is None else (t, self.size, self.size, c)
        self._last: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, i: Any) -> np.ndarray:
        i = int(i)
        if self._last is None or self._last[0] != i:
            f = self.native[i]
            if self.size is not None:
                f = _lanczos(f, self.size, self.size)
            self._last = (i, f)
        if self.bar is not None:
            self.bar.update(1)
        return self._last[1]


def _write_mp4(frames: _Shown, idx: np.ndarray, tmp: Path, fps: float,
               quality: int | None) -> None:
    import subprocess
    import tempfile
    from fractions import Fraction

    exe = _ffmpeg_exe("mp4")
    h, w = frames.shape[1:3]
    ph, pw = h % 2, w % 2  # yuv420p needs even sides: edge-replicate one row/column
    q = _DEFAULT_MP4_QUALITY if quality is None else quality
    crf = int(round(51 * (100 - q) / 100))
    cmd = [
        exe, "-y", "-v", "error", "-nostdin",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w + pw}x{h + ph}",
        "-r", str(Fraction(fps).limit_denominator()), "-i", "pipe:0", "-an",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(crf),
        # the BT.709 matrix, and the stream says so: untagged, players guess (BT.709 for HD, BT.601
        # for SD), and an HD video's colours shifted in those that guessed otherwise
        "-vf", "scale=out_color_matrix=bt709:out_range=tv", "-colorspace", "bt709",
        "-movflags", "+faststart", "-f", "mp4", _ffmpeg_path(tmp),
    ]  # fmt: skip
    # our own process rather than imageio-ffmpeg's writer, which ignores ffmpeg's exit status: a
    # full disk or a size libx264 refuses left a broken file that was renamed over the target.
    # ffmpeg gets its own session, so a Ctrl-C reaches only us and we stop it.
    with tempfile.TemporaryFile() as log:
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log,
                                    start_new_session=os.name == "posix")  # fmt: skip
        except OSError as e:  # missing, not executable, not a program (ENOEXEC): what check_video_writer says
            raise _no_ffmpeg("mp4", _exe_problem(exe) or f"{_exe_name(exe)} could not be started ({e.strerror or e})") from None
        try:
            try:
                for i in idx:
                    f = frames[i]
                    if ph or pw:
                        f = np.pad(f, ((0, ph), (0, pw), (0, 0)), mode="edge")
                    proc.stdin.write(np.ascontiguousarray(f).data)  # type: ignore[union-attr]
                proc.stdin.close()  # type: ignore[union-attr]
            except (BrokenPipeError, OSError) as exc:  # ffmpeg stopped early: its status and log say why
                if not isinstance(exc, BrokenPipeError) and exc.errno != errno.EINVAL:  # EINVAL: Windows' broken pipe
                    raise
                try:
                    proc.stdin.close()  # type: ignore[union-attr]
                except OSError:
                    pass
            code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if code != 0:
            log.seek(0)
            said = log.read().decode("utf-8", "replace").strip().splitlines()
            raise LatentlabError(
                f"ffmpeg failed (exit status {code}) writing the mp4 of {len(idx)} frames of {w}x{h} at "
                f"fps={fps:g}; nothing was written under the video's name. ffmpeg said: "
                + (" | ".join(said[-4:]) or "nothing")
            )
    if os.path.getsize(tmp) == 0:  # exited 0 having written nothing (IMAGEIO_FFMPEG_EXE=/bin/true): no video
        raise _no_ffmpeg("mp4", f"{_exe_name(exe)} exited with status 0 but wrote nothing (it is not a working "
                         "ffmpeg); nothing was written under the video's name")


def _ffmpeg_path(path: Path) -> str:
    """``path`` as ffmpeg reads it: absolute, with ffmpeg's ``file:`` protocol, so that a name
    with a colon ("take:2.mp4") is not taken for a protocol ("take:")."""
    return "file:" + str(Path(path).resolve())


def check_gif_fps(fps: float, fmt: str, *, hold_first: int = 0, hold_last: int = 0) -> None:
    """Refuse a gif faster than 50 fps, or whose held first or last frame would show longer
    than a gif can say (what :func:`write_video` refuses), so that a render can check it
    before any decoding."""
    if fmt != "gif":
        return
    f = _check_fps(fps)  # a number, or a numeric string, as write_video takes
    if f > _GIF_MAX_FPS:
        raise ArgumentError(
            f"fps={f:g} is too fast for gif (delays are stored in 1/100 s and browsers slow "
            f"anything above {_GIF_MAX_FPS:g} fps down to 10 fps). Fix: use fps <= 50 (CLI: --fps 50), "
            "or write mp4/webp."
        )
    held = 1 + max(_check_count(hold_first, "hold_first"), _check_count(hold_last, "hold_last"))
    if held * 100 / f > _GIF_MAX_DELAY_CS + 1:  # in 1/100 s; the writer checks exactly (rounding, other repeats)
        raise _gif_too_long(f)


def check_webp_length(n_frames: int, fps: float, fmt: str, *, hold_first: int = 0, hold_last: int = 0,
                      pingpong: bool = False) -> None:
    """Refuse a webp of ``n_frames`` frames (holds and ping-pong added as :func:`write_video`
    adds them) that would run longer than a webp can time (what :func:`write_video` refuses),
    so that a render can check it before any decoding."""
    if fmt != "webp":
        return
    f = _check_fps(fps)
    n = _check_count(n_frames, "n_frames")
    hf, hl = _check_count(hold_first, "hold_first"), _check_count(hold_last, "hold_last")
    total = n + hf + hl + (max(n - 2, 0) if _check_bool(pingpong, "pingpong") else 0)  # len(_sequence_indices(...))
    # (a count past 2**53 is no float: write_video refuses it as too many frames to put in order)
    if n and total < 2**53 and np.rint(total * (1000.0 / f)) > _WEBP_MAX_TOTAL_MS:
        raise _webp_too_long(total, f)


def _webp_too_long(frames: int, fps: float) -> ArgumentError:
    return ArgumentError(
        f"a webp runs at most {_WEBP_MAX_TOTAL_MS} ms (24.8 days) in all, and these "
        f"{frames} frames (holds and ping-pong included) at fps={fps:g} last {frames / fps / 86_400:.1f} days. "
        "Fix: raise fps, shorten hold_first / hold_last, or write mp4."
    )


def _gif_too_long(fps: float) -> ArgumentError:
    return ArgumentError(
        f"a gif shows one picture for at most {_GIF_MAX_DELAY_CS / 100:g} s, and a hold or a frame at fps={fps:g} "
        "lasts longer (identical frames in a row count as one). Fix: shorten hold_first / hold_last "
        "(CLI: --hold-first / --hold-last), raise fps, or write mp4/webp."
    )


def _write_gif(frames: _Shown, idx: np.ndarray, tmp: Path, fps: float, loop: int) -> None:
    from PIL import Image

    native = frames.native
    durations = _frame_durations_ms(len(idx), fps, 10)
    # a gif's loop count is the repeats after the first play (0: forever; none: plays once),
    # where ``loop`` counts the plays, as webp's does
    repeat = {"loop": 0} if loop == 0 else ({} if loop == 1 else {"loop": loop - 1})
    # Pillow merges identical consecutive frames (a hold) into one, whose delay a gif stores in a
    # 16-bit count of 1/100 s: refused here, before the writer opens (its own overflow, below,
    # catches frames that only its palette makes identical)
    # (frames equal as given are equal resized: compared as given, without resizing them twice)
    longest = run = 0
    starts = []  # where each run of equal frames starts: Pillow is fed one picture a run, of the run's delay
    for k, d in enumerate(durations):
        same = k and (idx[k] == idx[k - 1] or np.array_equal(native[idx[k]], native[idx[k - 1]]))
        run = run + d if same else d
        longest = max(longest, run)
        if not same:
            starts.append(k)
    ends = starts[1:] + [len(idx)]
    try:
        if longest > _GIF_MAX_DELAY_CS * 10:
            raise OverflowError
        # Pillow's own writer, fed one frame at a time (it keeps each as 256 colours). imageio's
        # writer, used before, kept the frames of an interrupted write and encoded them all again
        # from its finalizer: a Ctrl-C took effect only after a whole second encode. Pillow's writer
        # takes a list of durations only for several frames; one frame gets a number.
        # It would merge a run into its first picture too, but only after making each repeat 256
        # colours again (a 2 s hold of 256 px frames took seconds): the same file, made once a run.
        def picture(r: int) -> Any:
            for k in range(starts[r], ends[r]):  # (every frame asked for: the bar counts them)
                f = frames[idx[k]]
            return Image.fromarray(f)

        first = picture(0)
        if len(idx) == 1:
            first.save(tmp, format="GIF", duration=durations[0], **repeat)
        else:
            rest = (picture(r) for r in range(1, len(starts)))
            delays = [sum(durations[a:b]) for a, b in zip(starts, ends)]
            first.save(tmp, format="GIF", save_all=True, append_images=rest, duration=delays, **repeat)
    except (OverflowError, struct.error):
        raise _gif_too_long(fps) from None


def _write_webp(frames: _Shown, idx: np.ndarray, tmp: Path, fps: float, loop: int,
                quality: int | None) -> None:
    from PIL import Image

    q = _DEFAULT_WEBP_QUALITY if quality is None else quality
    # Pillow's writer takes the pictures at once: every showing of a frame shares one picture, a held
    # frame's repeats and a ping-pong's way back alike (a copy each: a hold_last=100000 of 512 px frames
    # took 78 GB, and a ping-pong nearly twice its frames); each repeat still ticks the bar
    images: list[Any] = []
    made: dict[int, Any] = {}
    for i in idx.tolist():
        if i in made:
            if frames.bar is not None:
                frames.bar.update(1)
        else:
            made[i] = Image.fromarray(frames[i])
        images.append(made[i])
    durations = _frame_durations_ms(len(images), fps, 1)
    # libwebp's animation encoder (under Pillow's writer) merges a frame into the one before when
    # it finds no change worth coding: identical frames always, and at a lossy quality nearly
    # equal ones too (a slow fade loses frames; their durations add up, so the timing holds).
    # write_video's docstring says so; quality=100 (lossless) keeps every frame that differs.
    images[0].save(tmp, format="WEBP", save_all=True, append_images=images[1:],
                   duration=durations, loop=loop, quality=q, lossless=(q >= 100), method=4)


def write_video(
    frames: Any,
    path: str | os.PathLike[str],
    *,
    fps: float = 24,
    format: str | None = None,
    hold_first: int = 0,
    hold_last: int = 0,
    pingpong: bool = False,
    quality: float | None = None,
    loop: int = 0,
    size: int | None = None,
    progress: bool = False,
) -> Path:
    """Write frames to an mp4, gif or animated webp file, atomically.

    Args:
        frames: uint8 ``(T, H, W, 3)`` RGB, a list of ``(H, W, 3)`` images (or of image file
            paths, read as :func:`load_image` reads them), or float in [0, 1].
        path: output file; missing parent directories are created.
        fps: frames per second, at least 0.01 (:data:`MIN_FPS`); at most 50 for gif, whose
            delays are in 1/100 s (rounded to 10 ms with no drift, e.g. 24 fps -> 40/50 ms),
            and 1000 for webp, whose delays are whole milliseconds (and whose frames, holds included,
            last at most 2**31 - 1 ms in all, 24.8 days: Pillow times them in a C int). A webp
            above 90.9 fps (1000 / 11) is written with a ``UserWarning``: browsers play its
            frames of 10 ms or less for 100 ms each (a gif's delays never are that short).
        format: ``"mp4"``, ``"gif"`` or ``"webp"``; by default the path's suffix.
        hold_first, hold_last, pingpong: frame ordering, see :func:`sequence`.
        quality: 0-100, higher is better; ``None`` for the format's default.
            mp4: H.264 CRF ``round(51 * (100 - quality) / 100)``, default 65 (CRF 18); above
            99 (rounded: 100) it is CRF 0, lossless, in a profile (High 4:4:4 Predictive)
            that browsers and QuickTime may not play: use at most 99 for a video to share.
            webp: Pillow's lossy quality, default 90; 100 writes lossless (and keeps every
            frame that differs from the one before, see below).
            gif: ignored (GIF is always 256-colour palettised).
        loop: times an animated gif/webp plays in all; 0 (default) loops forever; at most 65535
            for a webp and 65536 for a gif (16-bit counts). Ignored for mp4.
        size: resize the frames to ``size`` x ``size`` (Lanczos) as they are written,
            one at a time, as a render's ``size`` does: an mp4 holds one resized frame at a
            time, a gif keeps them as 256-colour frames (Pillow's writer: one byte a pixel, not
            three), a webp all of them (Pillow's writer takes them at once). ``None``: as they are.
            At most 16384. A webp's side, resized or not, is at most 16383 (libwebp's limit); a
            gif's at most 65535 (frames written as they are).
        progress: a tqdm bar over the frames fed to the writer (``desc="video"``).

    A ``format`` that contradicts the path's suffix (``"mp4"`` for ``x.gif``) is refused.
    An existing file at ``path`` is replaced, not rewritten: the new file has the default
    permissions, and a symbolic link there is replaced by the file. A failed ffmpeg run
    raises :class:`~latentlab.errors.LatentlabError` with ffmpeg's last messages; an mp4 with no
    ffmpeg to write it (see :func:`check_video_writer`, called first), or whose ffmpeg exits
    having written nothing, raises :class:`~latentlab.errors.ArgumentError` naming ffmpeg and
    the fix, and leaves ``path`` as it was.

    mp4 is H.264 with ``yuv420p`` pixels, which needs even sides: an odd height or width
    is padded by one edge-replicated row/column at the bottom/right (never resized), so
    :func:`read_video` gives back ``(H + H % 2, W + W % 2)``. GIF and WebP encoders merge
    identical consecutive frames into one longer frame (playback timing is unchanged), so
    reading those back may give fewer frames than were written when holds are used. Lossy
    webp (``quality`` below 100, the default 90 included) also merges consecutive frames that
    are not identical but that the encoder cannot tell apart at that quality, such as the
    nearly equal steps of a slow fade (fewer at higher quality; the total duration is kept),
    and a gif those that its 256-colour palette makes identical. ``quality=100`` (lossless
    webp) keeps every frame that differs from the one before.

    Returns:
        ``pathlib.Path`` of the written file.

    >>> import numpy as np, tempfile, pathlib
    >>> t = np.linspace(0, 1, 8, dtype=np.float32)[:, None, None, None]
    >>> frames = np.broadcast_to(t, (8, 16, 16, 3))            # a fade from black to white
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "fade.mp4"
    >>> write_video(frames, out, fps=8, hold_last=4).exists()
    True
    """
    fps_f = _check_fps(fps)
    hf = _check_count(hold_first, "hold_first")
    hl = _check_count(hold_last, "hold_last")
    loop_n = _check_count(loop, "loop", unit="plays (0: forever)", example=0)
    pp = _check_bool(pingpong, "pingpong")
    check_bool(progress, "progress")  # (checked by the bar, once the path's folders were made)
    q = _check_quality(quality)
    if not isinstance(path, (str, os.PathLike)) or str(path) == "":
        raise ArgumentError(f"path={path!r}; expected a file path (str or pathlib.Path).")
    asked = user_path(path)
    _check_name_lengths(asked)  # before is_dir(), which raises a raw OSError on one
    if asked.is_dir():
        _prepare_target(path)  # says so, and how to fix it
    fmt = _resolve_format(format, Path(path))
    suffix = Path(path).suffix.lower().lstrip(".")
    media = {*SUPPORTED_FORMATS, *(s.lstrip(".") for s in _IMAGE_SUFFIXES + _OTHER_VIDEO_SUFFIXES)}
    if suffix in media and suffix != fmt:
        fix = f"drop format=, or end the path with .{fmt}" if suffix in SUPPORTED_FORMATS else \
            f"end the path with .{fmt}"
        raise ArgumentError(
            f"format={format!r} but path {str(path)!r} ends in .{suffix}: the file would hold {fmt} under a "
            f".{suffix} name, which players and read_video take for {suffix}. Fix: {fix}."
        )
    check_gif_fps(fps, fmt, hold_first=hf, hold_last=hl)
    if fmt == "webp" and fps_f > _WEBP_MAX_FPS:
        raise ArgumentError(
            f"fps={fps!r} is too fast for webp, which stores whole milliseconds per frame (at most "
            f"{_WEBP_MAX_FPS:g} fps). Fix: use fps <= {_WEBP_MAX_FPS:g}, or write mp4."
        )
    # a gif stores the repeats after the first play, a webp the plays, each in 16 bits (Pillow's gif writer
    # raised struct.error, said as a too-long hold; its webp writer a raw RuntimeError or OverflowError)
    most_plays = {"gif": 65536, "webp": 65535}.get(fmt)
    if most_plays is not None and loop_n > most_plays:
        raise ArgumentError(
            f"loop={shown(loop)}; a {fmt} plays at most {most_plays} times before it stops (its count is 16 bits). "
            "Fix: use loop=0 to play forever, or a count within that."
        )
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 1 <= size <= 16384):
        raise ArgumentError(f"size must be None or an integer in [1, 16384] (pixels per side), got {size!r}.")
    check_video_writer(fmt)  # a missing ffmpeg, said before the frames are converted or anything is written
    arr = _as_frames(frames)
    idx = _sequence_indices(len(arr), hf, hl, pp)
    _check_side(int(size) if size is not None else max(arr.shape[1:3]), fmt)
    if fmt == "webp" and np.rint(len(idx) * (1000.0 / fps_f)) > _WEBP_MAX_TOTAL_MS:  # (Pillow: a raw OverflowError)
        raise _webp_too_long(len(idx), fps_f)
    if fmt == "webp" and fps_f > _WEBP_BROWSER_MAX_FPS:  # written (offline players play it), but said: it was silent
        # (after the refusals above: one of them warned first of a video never written; and before any folder is made)
        warnings.warn(
            f"fps={fps_f:g} webp {str(path)!r}: browsers play a frame of 10 ms or less for 100 ms, so shown in a "
            f"browser (a notebook, a web page) it plays at 10 fps; offline players play it as written. For a "
            f"browser, use fps <= 90.9 (1000 / 11), or write mp4.", UserWarning, stacklevel=2)  # fmt: skip
    target = _prepare_target(path)
    from ._bars import progress_bar

    def write(tmp: Path) -> None:
        with progress_bar(progress, total=len(idx), desc="video", unit="frame") as bar:
            shown = _Shown(arr, None if size is None else int(size), bar)
            if fmt == "mp4":
                _write_mp4(shown, idx, tmp, fps_f, q)
            elif fmt == "gif":
                _write_gif(shown, idx, tmp, fps_f, loop_n)
            else:
                _write_webp(shown, idx, tmp, fps_f, loop_n, q)

    return _atomic_write(target, write, ext=fmt)


# ------------------------------------------------------------------------------------
# readers
# ------------------------------------------------------------------------------------
def _existing_file(path: Any, name: str = "path") -> Path:
    if not isinstance(path, (str, os.PathLike)) or str(path) == "":
        raise ArgumentError(f"{name}={path!r}; expected a file path (str or pathlib.Path).")
    p = user_path(path)
    try:
        st = p.stat()  # (exists() raised a raw OSError on a name too long, and said a link loop was missing)
    except FileNotFoundError:
        raise ArgumentError(f"{name} {str(p)!r} does not exist." + (url_hint(path) or " Fix: check the path.")) from None
    except OSError as e:
        raise ArgumentError(f"{name} {str(p)!r} cannot be opened: {e.strerror or e}. Fix: check the path.") from None
    if stat.S_ISDIR(st.st_mode):
        raise ArgumentError(f"{name} {str(p)!r} is a directory, not a file.")
    if not stat.S_ISREG(st.st_mode):  # a pipe (reading it waited for a writer forever), socket or device
        raise ArgumentError(f"{name} {str(p)!r} is not a regular file (a pipe, socket or device?). Fix: name a file.")
    return p


def _stacked(frames: Iterable[np.ndarray], shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``np.stack`` of the uint8 ``frames``, all of one shape (``shape`` where given, which also
    shapes the empty result of no frames), each copied as it comes into one growing array (an eighth
    more each time it is full, then cut to its size: the array returned owns exactly its frames'
    bytes, as np.stack's did): a list of the frames, then their stack, held a long video twice.
    (A bytearray's buffer kept its growth slack, up to an eighth of the video, for the array's life,
    and the array did not own its data: ``arr.resize`` refused it.)"""
    buf = np.empty(0, np.uint8)
    n = count = 0
    for f in frames:
        if shape is None:
            shape = f.shape
        elif f.shape != shape:  # (np.stack's own refusal, as before)
            raise ValueError("all input arrays must have the same shape")
        size = int(np.prod(shape))
        if n + size > buf.size:  # (realloc: large blocks grow in place, without a second copy)
            buf.resize(max(n + size, buf.size + buf.size // 8), refcheck=False)
        buf[n : n + size].reshape(shape)[...] = f
        n, count = n + size, count + 1
    if shape is None:
        raise ValueError("need at least one array to stack")
    buf.resize((count, *shape), refcheck=False)  # (the growth slack given back)
    return buf


def read_video(path: str | os.PathLike[str]) -> np.ndarray:
    """Read every frame of the video or animated image at ``path`` as uint8 ``(T, H, W, 3)``
    RGB.

    gif/webp/png (and other still-image formats) are read with Pillow, each frame made RGB as
    :func:`load_image` makes a picture (alpha composited on white, 16-bit and float images scaled,
    EXIF rotation applied), so ``read_video(x)[0]`` of a still image is ``load_image(x)``; mp4 and
    other containers with ffmpeg (imageio-ffmpeg).

    >>> import numpy as np, tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "a.gif"
    >>> _ = write_video(np.zeros((3, 8, 8, 3), np.uint8) + np.arange(3, dtype=np.uint8)[:, None, None, None] * 100, out, fps=10)
    >>> read_video(out).shape
    (3, 8, 8, 3)
    """
    p = _existing_file(path)
    from PIL import Image

    # Pillow's MPEG plugin only identifies a file, it decodes nothing: .mpg / .mpeg go to ffmpeg
    pillow_reads = {e.lstrip(".") for e, fmt in Image.registered_extensions().items() if fmt != "MPEG"}
    if p.suffix.lower().lstrip(".") in pillow_reads:
        from PIL import ImageSequence

        from .encoders import _to_rgb

        # each frame made RGB as load_image makes one (alpha composited on white, 16-bit scaled, EXIF
        # rotation applied): imageio's mode="RGB" kept a transparent pixel's hidden colour (black, in a
        # webp) and clipped a 16-bit png to white, so read_video(x)[0] was not load_image(x)
        try:
            with Image.open(p) as im:
                return _stacked(np.asarray(_to_rgb(f, repr(str(p)), warn_animated=False), dtype=np.uint8)
                                for f in ImageSequence.Iterator(im))  # fmt: skip
        except ArgumentError:
            raise
        except Exception as e:  # unreadable / corrupt file (or a tiff's pages of several sizes)
            raise ArgumentError(f"cannot read {str(p)!r} as an image: {e}") from None
    kind = p.suffix.lower().lstrip(".") or "video"
    problem = _exe_problem(_ffmpeg_exe(kind, reading=p))  # (a missing ffmpeg said as such, not as a bad file)
    if problem is not None:
        raise _no_ffmpeg(kind, problem, reading=p)
    import imageio_ffmpeg

    # imageio-ffmpeg leaves the pipes of an ffmpeg that already exited to the garbage
    # collector (a harmless ResourceWarning); drop the generator while that is muted.
    error = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gen = imageio_ffmpeg.read_frames(_ffmpeg_path(p), pix_fmt="rgb24")
        try:
            meta = next(gen)
            w, h = meta["size"]
            frames = _stacked((np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in gen), (h, w, 3))
        except (OSError, RuntimeError, StopIteration) as e:
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            error = " | ".join(lines[-3:]) or type(e).__name__  # skip ffmpeg's banner
        finally:
            gen.close()
            del gen
    if error is not None:
        raise ArgumentError(f"cannot read {str(p)!r} as a video: {error}")
    return frames


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Load the image file at ``path`` as uint8 ``(H, W, 3)`` RGB: EXIF rotation applied,
    alpha composited on white, 16-bit and float images scaled, of an animated gif/webp its first frame (with a
    warning), exactly as the encoders read a file, so a picture inverted or shown is the one that
    was encoded (:func:`read_video` reads every frame).

    >>> import numpy as np, tempfile, pathlib
    >>> p = save_image(np.full((4, 6, 3), 7, np.uint8), pathlib.Path(tempfile.mkdtemp()) / "x.png")
    >>> load_image(p).shape, int(load_image(p)[0, 0, 0])
    ((4, 6, 3), 7)
    """
    p = _existing_file(path)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(p) as im:
            im.load()
            from .encoders import _to_rgb

            return np.asarray(_to_rgb(im, repr(str(p))), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:  # (the last was raw)
        from .encoders import _too_large

        raise ArgumentError(f"cannot read {str(p)!r} as an image: {e}" + (f". {_too_large(e)}" if _too_large(e) else "")) from None


# ------------------------------------------------------------------------------------
# still images
# ------------------------------------------------------------------------------------
def _pil_format(target: Path, name: str) -> str:
    from PIL import Image

    ext = target.suffix.lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise ArgumentError(
            f"{name} {str(target)!r}: cannot tell an image format from suffix "
            f"{target.suffix or '(none)'!r}. Fix: end the file name with .png (or .jpg, .webp)."
        )
    return fmt


def save_image(array: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``array``, one uint8 ``(H, W, 3)`` (or float [0, 1]) image, to ``path`` atomically;
    returns the path.

    The format comes from the suffix (PNG for ``.png``; anything Pillow writes works). A size or
    mode the format cannot hold (a webp over 16383 px a side, a .tga over 65535, a .xbm of any
    RGB picture) is an :class:`ArgumentError`; a file system's error (a full disk) is raised as it is.

    >>> import numpy as np, tempfile, pathlib
    >>> save_image(np.zeros((4, 4, 3), np.uint8), pathlib.Path(tempfile.mkdtemp()) / "a.png").suffix
    '.png'
    """
    img = _as_image(array)
    if not isinstance(path, (str, os.PathLike)) or str(path) == "":
        raise ArgumentError(f"path={path!r}; expected a file path (str or pathlib.Path).")
    fmt = _pil_format(Path(path), "path")
    most = _MAX_SIDE.get(fmt.lower())
    if most is not None and max(img.shape[:2]) > most:  # (Pillow: a raw ValueError, OSError or OverflowError)
        raise ArgumentError(f"a {fmt.lower()} image is at most {most} pixels per side, and this one is "
                            f"{img.shape[1]}x{img.shape[0]}. Fix: save it as .png.")  # fmt: skip
    target = _prepare_target(path)
    from PIL import Image

    def write(tmp: Path) -> None:
        try:
            Image.fromarray(img).save(tmp, format=fmt)
        except (ValueError, OverflowError, struct.error, RuntimeError, OSError) as e:
            if isinstance(e, OSError) and e.errno is not None:  # the file system's (a full disk): raised as it is
                raise
            # Pillow's own refusal of a size or mode the format cannot hold (.tga/.pcx: OverflowError,
            # .sgi: struct.error, .ico: ValueError, .avif: RuntimeError, .xbm/.msp: an OSError with no errno)
            raise ArgumentError(
                f"path {str(target)!r}: Pillow cannot write this {img.shape[1]}x{img.shape[0]} RGB image as "
                f"{fmt.lower()} ({e}). Fix: save it as .png."
            ) from None

    return _atomic_write(target, write)


def save_frames(
    frames: Any,
    directory: str | os.PathLike[str],
    *,
    start: int = 0,
    pattern: str = "frame_{:05d}.png",
) -> list[Path]:
    """Write each of ``frames`` (as :func:`write_video` takes them) as its own image file
    (atomically) in ``directory``, named ``pattern.format(k)`` for ``k = start, start + 1,
    ...``; creates ``directory``. Returns the paths in order.

    >>> import numpy as np, tempfile
    >>> [p.name for p in save_frames(np.zeros((2, 4, 4, 3), np.uint8), tempfile.mkdtemp(), start=7)]
    ['frame_00007.png', 'frame_00008.png']
    """
    arr = _as_frames(frames)
    start = _check_count(start, "start")
    if not isinstance(pattern, str):
        raise ArgumentError(f"pattern={pattern!r}; expected a str such as 'frame_{{:05d}}.png'.")
    try:  # every name, at least two (the first two may differ, later ones not)
        names = [pattern.format(start + k) for k in range(max(len(arr), 2))]
    except (IndexError, KeyError, ValueError, OverflowError) as e:  # (OverflowError: '{:c}' past U+10FFFF)
        raise ArgumentError(
            f"pattern={pattern!r} cannot be formatted with a frame number ({e}). "
            "Fix: use one positional field, e.g. 'frame_{:05d}.png'."
        ) from None
    if names[0] == names[1]:
        raise ArgumentError(
            f"pattern={pattern!r} gives the same name to every frame. "
            "Fix: include a field for the frame number, e.g. 'frame_{:05d}.png'."
        )
    names = names[: len(arr)]
    first: dict[str, int] = {}
    for k, name in enumerate(names):
        if first.setdefault(name, k) != k:
            raise ArgumentError(
                f"pattern={pattern!r} gives frame {start + k} the name {name!r}, as frame {start + first[name]} "
                "(it would be overwritten). Fix: include a field for the whole frame number, e.g. 'frame_{:05d}.png'."
            )
    if any(sep in name for name in names for sep in (os.sep, "/")):
        raise ArgumentError(
            f"pattern={pattern!r} contains a path separator. Fix: put folders in directory=."
        )
    if not isinstance(directory, (str, os.PathLike)) or str(directory) == "":
        raise ArgumentError(f"directory={directory!r}; expected a folder path.")
    d = user_path(directory)
    _check_name_lengths(d / names[0], "directory")  # (a folder name too long: a raw OSError from exists())
    if d.exists() and not d.is_dir():
        raise ArgumentError(
            f"directory {str(d)!r} is an existing file. Fix: choose a folder path."
        )
    _pil_format(d / names[0], "pattern")
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ArgumentError(
            f"cannot create directory {str(d)!r}: {e.strerror or e}. "
            "Fix: choose a writable location."
        ) from None
    return [save_image(f, d / name) for name, f in zip(names, arr)]


# ------------------------------------------------------------------------------------
# contact sheet
# ------------------------------------------------------------------------------------
def _pick_evenly(n: int, k: int) -> np.ndarray:
    """``k`` distinct, evenly spaced indices into ``range(n)``, first and last included."""
    if k >= n:
        return np.arange(n)
    if k == 1:
        return np.zeros(1, np.int64)
    # step (n-1)/(k-1) > 1, so floor(x + 0.5) keeps them distinct and ends on n - 1
    return np.floor(np.linspace(0, n - 1, k) + 0.5).astype(np.int64)


def _rgb(value: Any, name: str) -> tuple[int, int, int]:
    v = value
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        v = (v, v, v)
    try:
        if isinstance(v, (str, bytes)):  # ("255" was read digit by digit: (2, 5, 5), near black)
            raise TypeError
        t = tuple(int(c) for c in v)
        ok = len(t) == 3 and all(0 <= c <= 255 for c in t) and all(
            float(c) == int(c) and not isinstance(c, (bool, np.bool_)) for c in v)
    except (TypeError, ValueError, OverflowError):  # (OverflowError: an infinite float)
        ok = False
    if not ok:
        raise ArgumentError(
            f"{name}={value!r}; expected a grey level 0-255 or an (r, g, b) tuple of 0-255. "
            f"Fix: e.g. {name}=255 (white) or {name}=(0, 0, 0)."
        )
    return t  # type: ignore[return-value]


_LABEL_SIZE = 10  # contact_sheet's label font: PIL's default font at its default size
_LABEL_MIN_SIZE = 8  # the smallest size a label is shrunk to before it is wrapped or cut


@functools.lru_cache(maxsize=16)
def _label_font(size: int, wide: bool = False) -> Any:
    """The labels' font: Pillow's default (ASCII); ``wide``, for a label with letters beyond it
    (accents, Greek, Cyrillic, Hebrew, Arabic, ...), matplotlib's DejaVu Sans, which draws them
    (Pillow's default drew them as boxes)."""
    from PIL import ImageFont

    if wide:
        try:
            return ImageFont.truetype(_wide_font_path(), size)
        except (OSError, ImportError):  # (no matplotlib font file: the default, as before)
            pass
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap font, one size
        return ImageFont.load_default()


def _wide_font_path() -> str:
    import matplotlib

    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf")


def _is_wide(text: str) -> bool:
    """Whether ``text`` has letters past ASCII (Pillow's default font draws even "é" as a box)."""
    return any(ord(c) > 127 and c != "\u2026" for c in text)


def _undrawable(text: str) -> str:
    """The characters of ``text`` that DejaVu Sans has no glyph for (CJK, emoji, ...)."""
    try:
        from matplotlib.ft2font import FT2Font

        font = FT2Font(_wide_font_path())
    except Exception:
        return ""
    return "".join(dict.fromkeys(c for c in text if not c.isspace() and font.get_char_index(ord(c)) == 0))


def _fit_label(text: str, width: int) -> tuple[list[str], int]:
    """The lines and font size that show ``text`` within ``width`` px: one line at the
    default size if it fits, else at a smaller size (down to ``_LABEL_MIN_SIZE``), else
    wrapped at a space onto two lines (the largest size at which both fit), else two lines
    (or one, for a single long word) at the smallest size, cut with an ellipsis, so that a
    cut label is always visibly cut. Newlines, tabs and runs of spaces become one space
    first, so that every line drawn is one measured here (a newline kept drew its lines past
    the strip, which has room for the lines returned).

    >>> _fit_label("red", 62)  # 62 px: the room under a 64 px tile
    (['red'], 10)
    >>> _fit_label("green triangle", 62)
    (['green triangle'], 9)
    >>> _fit_label("(embedding only)", 62)
    (['(embedding only)'], 8)
    >>> _fit_label("a red circle above a blue square", 62)
    (['a red circle', 'above a blue s…'], 8)
    """
    import unicodedata

    from PIL import ImageFont

    text = unicodedata.normalize("NFC", " ".join(text.split()))  # (a decomposed accent drew as a box)
    wide = _is_wide(text)
    fonts = [(size, _label_font(size, wide)) for size in range(_LABEL_SIZE, _LABEL_MIN_SIZE - 1, -1)]

    def fits(line: str, font: Any) -> bool:
        return font.getlength(line) <= width

    for size, font in fonts:
        if fits(text, font):
            return [text], size
    words = text.split()

    def first_line(font: Any) -> int:
        """How many words fit on the first line (0: not even the first, or only one word)."""
        return next((i for i in range(len(words) - 1, 0, -1) if fits(" ".join(words[:i]), font)), 0)

    for size, font in fonts:
        i = first_line(font)
        if i and fits(" ".join(words[i:]), font):
            return [" ".join(words[:i]), " ".join(words[i:])], size
    size, font = fonts[-1]
    ellipsis = "…" if isinstance(font, ImageFont.FreeTypeFont) else "..."  # the bitmap font is latin-1

    def cut(line: str) -> str:
        prefix = next((j for j in range(len(line), 0, -1) if fits(line[:j].rstrip() + ellipsis, font)), 0)
        return line[:prefix].rstrip() + ellipsis

    i = first_line(font)
    if i:
        return [" ".join(words[:i]), cut(" ".join(words[i:]))], size
    return [cut(text)], size


def contact_sheet(
    frames: Any,
    *,
    columns: int | None = None,
    max_frames: int | None = None,
    labels: Sequence[Any] | None = None,
    pad: int = 2,
    background: int | tuple[int, int, int] = 255,
) -> np.ndarray:
    """Lay frames out on a grid, row by row, for a quick look at a trajectory.

    Args:
        frames: uint8 ``(T, H, W, 3)`` (or list / float [0, 1]).
        columns: tiles per row; default ``ceil(sqrt(n))``; capped at ``n``.
        max_frames: show at most this many frames, evenly spaced, always including the
            first and last (``max_frames=1`` shows the first).
        labels: one caption per shown frame, or one per input frame (``T`` of them; the
            shown frames' labels are picked). Drawn with PIL's default font in a strip
            under each tile, so the tiles' pixels are never covered. A label too long for
            its tile is drawn smaller (down to 8 px), then on two lines, then cut with an
            ellipsis, never silently clipped at the tile's edge (newlines in a label are
            spaces: the label is wrapped to fit as any other).
        pad: gap in pixels between tiles and around the border.
        background: grey level or ``(r, g, b)`` of the gaps (and of label strips).

    With ``n`` shown frames, ``c`` columns, ``r = ceil(n / c)`` rows and ``L`` the label
    strip height (0 without labels) the sheet is uint8
    ``(r * (H + L) + (r + 1) * pad, c * W + (c + 1) * pad, 3)``; tile ``(i, j)`` starts
    at ``(pad + i * (H + L + pad), pad + j * (W + pad))``. A sheet of more pixels than
    Pillow opens without a warning (``PIL.Image.MAX_IMAGE_PIXELS``, about 89 million: e.g. all
    of 400 frames of 512 px) is made with a ``UserWarning`` that says so: pass ``max_frames``.

    >>> import numpy as np
    >>> contact_sheet(np.zeros((10, 8, 8, 3), np.uint8), columns=3, max_frames=6, pad=1).shape
    (19, 28, 3)
    """
    arr = _as_frames(frames)
    T, H, W, _ = arr.shape
    if max_frames is not None:
        if isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer)) \
                or max_frames < 1:
            raise ArgumentError(
                f"max_frames={max_frames!r}; expected an int >= 1 or None. Fix: e.g. max_frames=16."
            )
        sel = _pick_evenly(T, int(max_frames))
    else:
        sel = np.arange(T)
    n = len(sel)
    if columns is None:
        cols = math.ceil(math.sqrt(n))
    elif isinstance(columns, bool) or not isinstance(columns, (int, np.integer)) or columns < 1:
        raise ArgumentError(f"columns={columns!r}; expected an int >= 1 or None. Fix: e.g. columns=4.")
    else:
        cols = min(int(columns), n)
    rows = math.ceil(n / cols)
    if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 0:
        raise ArgumentError(f"pad={pad!r}; expected an int >= 0 (pixels). Fix: e.g. pad=2.")
    pad = int(pad)
    bg = _rgb(background, "background")

    texts: list[str] | None = None
    if labels is not None:
        if isinstance(labels, str):
            raise ArgumentError(
                "labels is a single str; expected one label per frame. Fix: pass a list of str."
            )
        try:
            labels = list(labels)
        except TypeError:  # (a number: "'int' object is not iterable")
            raise ArgumentError(
                f"labels={labels!r}; expected one label per frame. Fix: pass a list of str."
            ) from None
        if len(labels) == n:
            texts = [str(x) for x in labels]
        elif len(labels) == T:
            texts = [str(labels[i]) for i in sel]
        else:
            raise ArgumentError(
                f"labels has {len(labels)} entries but {n} frames are shown (of {T}). "
                f"Fix: pass {n} labels (one per shown frame) or {T} (one per input frame)."
            )

    fitted: list[tuple[list[str], int]] = []
    L = 0
    if texts is not None:
        from PIL import ImageDraw  # (Image: imported below, for the size check too)

        def extent(size: int, wide: bool = False) -> tuple[int, int]:
            top, bottom = _label_font(size, wide).getbbox("Ag")[1::2]
            return max(int(top), 0), int(bottom)

        fitted = [_fit_label(t, W - 2) for t in texts]  # drawn from x = 2
        wides = [_is_wide(" ".join(lines)) for lines, _ in fitted]
        L = max(2 + len(lines) * extent(size, w)[1] + extent(size, w)[0] + 2 for (lines, size), w in zip(fitted, wides))
        L = max(L, 2 + sum(extent(_LABEL_SIZE)) + 2)  # one line at the default size, at least
        missing = _undrawable("".join(" ".join(lines) for (lines, _), w in zip(fitted, wides) if w))
        if missing:
            warnings.warn(f"the labels' font here has no letters for {missing[:12]!r} (drawn as boxes); write those "
                          "labels in another script, or draw the sheet's labels yourself.", UserWarning, stacklevel=2)  # fmt: skip

    shape = (rows * (H + L) + (rows + 1) * pad, cols * W + (cols + 1) * pad, 3)
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS  # (None: the user lifted Pillow's check)
    if limit is not None and shape[0] * shape[1] > limit:  # 5,000 frames of 512 px: 36k px square, not reopened
        warnings.warn(
            f"the contact sheet of {n} frames is {shape[1]} x {shape[0]} pixels, more than Pillow opens without a "
            f"DecompressionBombWarning (PIL.Image.MAX_IMAGE_PIXELS = {limit}; twice that, it and ll.load_image refuse "
            "to open it) and more than a viewer shows. Fix: show fewer frames, e.g. max_frames=64.",
            UserWarning, stacklevel=2,
        )
    try:
        sheet = np.empty(shape, np.uint8)
    except (ValueError, MemoryError, OverflowError):  # (pad=10**9: numpy's raw "array is too big")
        raise ArgumentError(
            f"the contact sheet would be {shown(shape[0])} x {shown(shape[1])} pixels (pad={shown(pad)}, {rows} x {cols} "
            "tiles), too large to hold. Fix: use a smaller pad, or fewer frames (max_frames=)."
        ) from None
    sheet[...] = bg
    fg = (0, 0, 0) if sum(bg) / 3 >= 128 else (255, 255, 255)
    for k, i in enumerate(sel):
        r, c = divmod(k, cols)
        y, x = pad + r * (H + L + pad), pad + c * (W + pad)
        sheet[y:y + H, x:x + W] = arr[i]
        if texts is not None:
            lines, size = fitted[k]
            strip = Image.new("RGB", (W, L), bg)
            draw = ImageDraw.Draw(strip)
            for j, line in enumerate(lines):
                draw.text((2, 2 + j * extent(size, wides[k])[1]), line, fill=fg, font=_label_font(size, wides[k]))
            sheet[y + H:y + H + L, x:x + W] = np.asarray(strip)
    return sheet
