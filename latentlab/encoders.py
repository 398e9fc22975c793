"""The encoder stage: images and texts -> unit-norm CLIP embeddings.

A thin adapter over `open_clip <https://github.com/mlfoundations/open_clip>`_. An
:class:`Encoder` wraps an open_clip model, its evaluation transform and its tokenizer, and
turns images (paths, PIL images, numpy arrays, torch tensors) and texts into float32
``(n, d)`` CPU tensors of unit L2 norm, tagged with the name of their CLIP space
(:func:`latentlab.space.tag`).

Encoders are built from presets (:func:`latentlab.presets.create_encoder`) through the
builders registered here:

* ``"open_clip"``: any open_clip architecture with a pretrained tag, a local checkpoint
  file and/or a model-config JSON (the embedded ``mini`` model ships its own);
* ``"open_clip_tiny"``: a tiny random open_clip model built in-process, for tests.

or directly with :meth:`Encoder.from_open_clip`. An optional on-disk
:class:`EmbeddingCache` makes re-encoding the same files and prompts free.

>>> from latentlab.presets import create_encoder
>>> enc = create_encoder("tiny")
>>> z = enc.encode_text(["a red apple", "a green pear"])
>>> z.shape, z.dtype
(torch.Size([2, 32]), torch.float32)
>>> from latentlab.space import space_of
>>> space_of(z)
'tiny-random'
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import types
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from ._atomic import remove_temps, write_whole
from .errors import ArgumentError, LatentlabError, ModelNotAvailableError, SpecError, as_path_text, check_seed, check_text, from_an_import, url_hint, user_path
from .presets import Preset, register_encoder_builder
from .space import normalize, tag

__all__ = ["Encoder", "EmbeddingCache", "ImageInput"]

#: What :meth:`Encoder.encode_image` accepts as one image (or a list of them).
ImageInput = Union[str, os.PathLike, "PIL.Image.Image", np.ndarray, torch.Tensor]  # noqa: F821

_PACKAGE_DIR = Path(__file__).resolve().parent
_TRUE = {"1", "on", "yes", "true", "y", "t"}


# ======================================================================================
# on-disk embedding cache
# ======================================================================================


_CACHE_KEY = re.compile(r"[0-9a-f]{64}")
"""What :meth:`EmbeddingCache.make_key` returns: a sha256 hex digest."""


class EmbeddingCache:
    """A directory of cached embeddings, one small ``.npy`` file (float32, ``(d,)``) per entry
    (``directory``: created on first write).

    Keys are hex sha256 digests made by :meth:`make_key` from the encoder's
    :meth:`Encoder.fingerprint`, the kind of input (``"image"`` / ``"text"``) and its
    content: the file bytes for image paths (so a renamed or copied file still hits), the
    RGB pixel bytes and size for in-memory images, the UTF-8 string for texts. Entries are
    written atomically (temporary file + :func:`os.replace`), so concurrent processes can
    share a directory (the temporary files of writers killed mid-write are removed, once an hour
    old, when a cache is opened or cleared). A corrupt or mismatched entry counts as a miss:
    unreadable, not a 1-D float vector of the expected size, holding NaN or infinity, or not of
    unit norm (the cache holds normalised embeddings; ``|norm - 1| > 1e-3`` is a miss).

    An entry is the embedding as the call that stored it computed it, in that call's batch:
    batched kernels round the last bits of a row with the batch's size (up to about 1e-7 on the
    ``mini`` and ``tiny`` encoders, one input against several), so an encoder with a cache
    returns what was stored, which can differ in those bits from what the same input encodes to
    in another batch without one. Render folders compare keyframe embeddings bit for bit: resume
    a render with an encoder whose cache was filled as before, or without a cache as before.

    >>> import tempfile, torch
    >>> cache = EmbeddingCache(tempfile.mkdtemp())
    >>> key = EmbeddingCache.make_key("my-model", "text", "a cat")
    >>> cache.put(key, torch.ones(4) / 2)
    >>> cache.get(key)
    tensor([0.5000, 0.5000, 0.5000, 0.5000])
    >>> len(cache), cache.hits, cache.misses
    (1, 1, 0)
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        if not isinstance(directory, (str, os.PathLike)):
            raise ArgumentError(
                f"EmbeddingCache directory must be a path (str or os.PathLike), got {type(directory).__name__}."
            )
        text = as_path_text(directory, "EmbeddingCache directory")
        if not text:  # (Path("") is the current folder: its ??/ subfolders filled with entries)
            raise ArgumentError("EmbeddingCache directory is empty (''); pass a folder path, or cache=None for no cache.")
        self.directory = user_path(text)
        try:
            exists = self.directory.exists()
        except OSError as exc:  # e.g. a name too long (ENAMETOOLONG: not False, from exists)
            raise ArgumentError(
                f"EmbeddingCache directory {_short(self.directory)} cannot be used as a folder ({exc.strerror or exc}); "
                "pass another path (a shorter one, for a name too long)."
            ) from None
        if exists and not self.directory.is_dir():
            raise ArgumentError(
                f"EmbeddingCache directory {str(self.directory)!r} exists and is not a directory; "
                "pass the path of a (new or existing) folder."
            )
        self.hits = 0
        self.misses = 0
        self._warned = False
        if exists:
            self._remove_stale_temps()

    def _remove_stale_temps(self) -> None:
        """Remove the temporary entries that writers killed mid-write (SIGKILL) left, untouched for an
        hour (:data:`latentlab.video.STALE_TEMP_S`; a newer one may be another process's, writing it
        now): nothing else removes them, as each write takes a fresh name. One listing of each
        ``??`` folder, when the cache is opened or cleared (not at every read or write)."""
        from .video import STALE_TEMP_S

        with contextlib.suppress(OSError):  # (a folder that cannot be listed: its entries are misses anyway)
            for sub in self.directory.glob("??"):
                if sub.is_dir():
                    remove_temps(sub, older_than=STALE_TEMP_S)

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.directory)!r})"

    # -- keys ---------------------------------------------------------------------------

    @staticmethod
    def make_key(fingerprint: str, kind: str, content: bytes | str | Iterable[bytes]) -> str:
        """sha256 hex digest of ``fingerprint``, ``kind`` and ``content`` (bytes, str or chunks)."""
        for name, text in (("fingerprint", fingerprint), ("kind", kind)):  # (an int was a raw AttributeError)
            if not isinstance(text, str):
                raise ArgumentError(f"{name} must be a string, got {type(text).__name__} {text!r:.60}.")
            check_text(text, name)
        h = hashlib.sha256()
        h.update(fingerprint.encode("utf-8") + b"\0" + kind.encode("utf-8") + b"\0")
        if isinstance(content, str):
            check_text(content, "content")
            h.update(content.encode("utf-8"))
        elif isinstance(content, (bytes, bytearray, memoryview)):
            h.update(content)
        else:
            try:
                chunks = iter(content)
            except TypeError:  # (a raw "'int' object is not iterable")
                raise ArgumentError(f"content must be bytes, a str or an iterable of bytes chunks, got "
                                    f"{type(content).__name__} {content!r:.60}.") from None  # fmt: skip
            for chunk in chunks:
                if not isinstance(chunk, (bytes, bytearray, memoryview)):
                    raise ArgumentError(f"content's chunks must be bytes, got {type(chunk).__name__} {chunk!r:.60}.")
                h.update(chunk)
        return h.hexdigest()

    def path(self, key: str) -> Path:
        """File that holds (or would hold) entry ``key``, a key :meth:`make_key` made (64 hex
        digits; another string is an :class:`ArgumentError`: ``"x"`` was stored where ``len``
        and :meth:`clear` do not look, ``"../../x"`` outside the directory)."""
        if not isinstance(key, str) or _CACHE_KEY.fullmatch(key) is None:
            raise ArgumentError(f"key must be a cache key, the 64 hex digits EmbeddingCache.make_key returns, got "
                                f"{type(key).__name__} {key!r:.80}.")  # fmt: skip
        return self.directory / key[:2] / f"{key}.npy"

    # -- access -------------------------------------------------------------------------

    def get(self, key: str, dim: int | None = None) -> torch.Tensor | None:
        """The cached float32 ``(d,)`` embedding for ``key``, or ``None`` (a miss).

        An entry that cannot be read, is not 1-D float, (if ``dim`` is given) has another
        size, holds NaN or infinity or is not of unit norm (``|norm - 1| > 1e-3``) counts as
        a miss.
        """
        p = self.path(key)
        vec = None
        if p.is_file():
            try:
                arr = np.load(p, allow_pickle=False)
                if arr.ndim == 1 and np.issubdtype(arr.dtype, np.floating) and (dim is None or arr.shape[0] == dim):
                    a32 = np.ascontiguousarray(arr, dtype=np.float32)
                    # embeddings are stored normalised: NaN, infinity or another norm means a damaged entry
                    if np.isfinite(a32).all() and abs(float(np.linalg.norm(a32.astype(np.float64))) - 1.0) <= 1e-3:
                        vec = torch.from_numpy(a32)
            except Exception:  # a damaged header: numpy raises TokenError, SyntaxError, MemoryError (a huge shape)...
                vec = None
        if vec is None:
            self.misses += 1
        else:
            self.hits += 1
        return vec

    def put(self, key: str, vec: torch.Tensor | np.ndarray, *, stacklevel: int = 2) -> None:
        """Store the 1-D embedding ``vec`` under ``key`` (atomically; errors become a warning, once a
        cache). ``stacklevel``: the frame that warning names, as :func:`warnings.warn` counts from this
        call (2: its caller; ``encode_*`` pass 4, naming their caller)."""
        arr = vec.detach().float().cpu().numpy() if isinstance(vec, torch.Tensor) else np.asarray(vec, np.float32)
        arr = np.ascontiguousarray(arr.reshape(-1), dtype=np.float32)
        final = self.path(key)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.save(f, arr, allow_pickle=False)

        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            write_whole(final, write)
        except OSError as exc:
            if not self._warned:
                warnings.warn(
                    f"could not write to the embedding cache {str(self.directory)!r} ({exc}); "
                    "embeddings are still returned but not cached.",
                    RuntimeWarning,
                    stacklevel=stacklevel,  # (a fixed 3 named encode_text's own line in latentlab)
                )
                self._warned = True

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and _CACHE_KEY.fullmatch(key) is not None and self.path(key).is_file()

    def __len__(self) -> int:
        if not self.directory.is_dir():
            return 0
        return sum(1 for _ in self.directory.glob("??/*.npy"))

    def clear(self) -> None:
        """Delete every entry, and the temporary files of killed writers (an hour old; the
        directory itself is kept)."""
        if self.directory.is_dir():
            for p in self.directory.glob("??/*.npy"):
                p.unlink(missing_ok=True)
            self._remove_stale_temps()


def _short(path: Path) -> str:
    """``path`` quoted for an error message, cut to 80 characters."""
    text = str(path)
    return repr(text) if len(text) <= 80 else repr(text[:77]) + "... (" + str(len(text)) + " characters)"


def _as_cache(cache: object, name: str = "cache") -> EmbeddingCache | None:
    if cache is None or isinstance(cache, EmbeddingCache):
        return cache
    if isinstance(cache, (str, os.PathLike)):
        return EmbeddingCache(cache)
    raise ArgumentError(
        f"{name} must be an EmbeddingCache, a directory path or None, got {type(cache).__name__}. "
        "Pass e.g. cache=EmbeddingCache('~/.cache/latentlab/embeddings')."
    )


# ======================================================================================
# image inputs
# ======================================================================================


class _Image:
    """One validated image: a file path (decoded lazily), an RGB PIL image, or the pixels of an
    array or tensor (``array``: ``(H, W[, C])`` numpy or ``(C, H, W)`` torch; ``layout``: the
    shape it came from, for messages), made a PIL image only when read, so that a batch of
    thousands of arrays is not held a second time, as PIL images, while it is encoded."""

    __slots__ = ("label", "path", "pil", "array", "layout")

    def __init__(self, label: str, path: Path | None = None, pil: Any = None, array: Any = None,
                 layout: str = "") -> None:  # fmt: skip
        self.label, self.path, self.pil, self.array, self.layout = label, path, pil, array, layout

    def _pixels(self) -> Any:
        """The RGB PIL image of an ``array`` image (checked when it was made)."""
        return _array_to_pil(_hwc(self.array), self.label, self.layout, checked=True)  # (checked when it was made)

    def content(self) -> Iterable[bytes]:
        """Bytes that identify the picture, for cache keys."""
        if self.path is not None:
            # the file's bytes; "v3": how files are decoded changed (an RGB PNG with a colour key
            # is composited on white since 2026-12-06, a 16-bit grey one since 2026-12-07), so
            # embeddings cached before are not reused
            yield b"file-v3\0"
            with open(self.path, "rb") as f:
                while chunk := f.read(1 << 20):
                    yield chunk
        else:
            pil = self.pil if self.pil is not None else self._pixels()
            yield f"pixels\0{pil.width}x{pil.height}\0".encode()
            yield pil.tobytes()

    def load(self) -> Any:
        """The picture as an RGB PIL image."""
        if self.pil is not None:
            return self.pil
        if self.array is not None:
            return self._pixels()
        from PIL import Image

        try:
            with Image.open(self.path) as im:
                im.load()
                return _to_rgb(im, repr(str(self.path)), warn_animated=False)  # (_one_image said it, cached or not)
        except Exception as exc:  # PIL raises many types for bad files
            raise ArgumentError(
                f"{self.label}: could not read image file {str(self.path)!r} ({type(exc).__name__}: {exc}). "
                + (_too_large(exc) or "The file is corrupt, truncated or not an image; re-export it as PNG or JPEG.")
            ) from exc


def _too_large(exc: BaseException) -> str | None:
    """For a picture Pillow refuses to open for its size (``DecompressionBombError``, a raw error
    that was taken for a corrupt file): what to do, as a sentence; else ``None``."""
    from PIL import Image

    if not isinstance(exc, Image.DecompressionBombError):
        return None
    return ("It has more pixels than Pillow opens by default (PIL.Image.MAX_IMAGE_PIXELS): downscale it (the CLIP "
            "encoders see a few hundred pixels of it), or, if you trust the file, set PIL.Image.MAX_IMAGE_PIXELS = None "
            "in Python before latentlab reads it.")


_ANIMATED_FORMATS = ("GIF", "WEBP", "PNG", "TIFF")  # (not a phone's MPO JPEG, photo then preview; not a PSD's layers)


def _animated_note(im: Any, name: str | None = None) -> str | None:
    """Of an animated picture (``im`` as opened): the warning that it is read as its current frame
    (naming the file ``name``, so that it is said once per file); else ``None``."""
    n_frames = getattr(im, "n_frames", 1)
    if not (isinstance(n_frames, int) and n_frames > 1 and getattr(im, "format", None) in _ANIMATED_FORMATS):
        return None
    k = im.tell()  # (it was read as one picture, silently)
    return (f"{name + ' is ' if name else ''}an animated picture ({n_frames} frames), read as one of them, frame {k}"
            + (" (the first)" if k == 0 else "") + "; for another, save that frame as a picture of its own (in "
            "Python: im.seek(k); im.copy()).")  # fmt: skip


def _to_rgb(im: Any, name: str | None = None, *, warn_animated: bool = True) -> Any:
    """``im`` (any PIL mode) as an RGB image: EXIF orientation applied, alpha composited on white;
    of an animated picture, its current frame (the first, as opened), with a warning saying so
    (naming the file ``name``, so that it is said once per file) unless ``warn_animated`` is False."""
    from PIL import Image, ImageOps

    note = _animated_note(im, name) if warn_animated else None
    if note:
        warnings.warn(note, UserWarning, stacklevel=2)

    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:
        orientation = 1
    if orientation not in (1, None):
        im = ImageOps.exif_transpose(im)
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:  # an RGB PNG with a colour key needs compositing too
        return im
    if mode.startswith("I") or mode == "F":  # 16/32-bit integer or float grey
        raw = np.asarray(im)
        if mode == "F" and not np.isfinite(raw).all():  # (NaN became black pixels without a word, as no array does)
            raise ArgumentError(f"{name or 'the picture'} (PIL mode 'F') holds NaN or infinite values; clean them first "
                                "(np.nan_to_num).")  # fmt: skip
        key = im.info.get("transparency")  # a 16-bit grey PNG's colour key (tRNS): its transparent value
        top = raw.max(initial=0)
        if mode == "I" and 0 < top <= 255:  # 8-bit values in a 32-bit image look the same
            warnings.warn(
                "a PIL image of mode 'I' holds values in 0..255; it is read as 16-bit data (0..65535, what a "
                "16-bit PNG holds), so it comes out nearly black. If it holds 8-bit values (L.convert('I'), "
                "Image.fromarray of an int32 array), pass im.convert('L') instead.",
                UserWarning, stacklevel=2,
            )  # fmt: skip
        grey = np.empty(raw.shape, np.uint8)
        for r in range(0, raw.shape[0], 256):  # by blocks of rows: the whole picture in float64 took gigabytes
            a = raw[r : r + 256].astype(np.float64)
            if mode.startswith("I"):
                # 16-bit data (what a 16-bit PNG holds, as "I;16" when opened or "I" after .convert("I")):
                # always 0..65535, never guessed from the picture's own maximum
                a = a / 257.0
            elif mode == "F" and top <= 1.0:
                a = a * 255.0
            grey[r : r + 256] = np.clip(np.round(a), 0, 255).astype(np.uint8)
        im = Image.fromarray(grey, mode="L")
        mode = "L"
        if isinstance(key, int) and not isinstance(key, bool):  # (the 8-bit picture above has lost the key)
            im.putalpha(Image.fromarray(np.where(raw == key, 0, 255).astype(np.uint8), mode="L"))
            mode = "LA"
    if mode == "P" or "transparency" in im.info:
        im = im.convert("RGBA")  # opaque pixels stay as they are once composited on white
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = (im.convert("LA") if mode == "La" else im).convert("RGBA")  # (Pillow has no La -> RGBA)
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    return im.convert("RGB")


def _hwc(x: Any) -> np.ndarray:
    """One image's pixels as numpy ``(H, W[, C])``: a ``(C, H, W)`` tensor's channels last (uint8
    kept, other floats as float32), an array as it is."""
    if isinstance(x, torch.Tensor):
        return (x if x.dtype == torch.uint8 else x.float()).permute(1, 2, 0).numpy()
    return x


def _lazy_images(rows: Sequence[Any], labels: Sequence[str], layout: str) -> list[_Image]:
    """``_Image`` s of array / tensor ``rows``, each checked now (every refusal before any work)
    and made a PIL image only when it is read."""
    for row, label in zip(rows, labels):
        _check_array(_hwc(row), label, layout)
    return [_Image(label, array=row, layout=layout) for row, label in zip(rows, labels)]


def _array_to_pil(a: np.ndarray, label: str, layout: str, checked: bool = False) -> Any:
    """Validated ``(H, W)`` / ``(H, W, C)`` array (uint8 or float in [0, 1]) -> RGB PIL image
    (``checked``: :func:`_check_array` has passed it already, as for every lazy ``_Image``)."""
    from PIL import Image

    if not checked:
        _check_array(a, label, layout)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.dtype == np.uint8:
        u8 = a
    else:
        u8 = np.clip(np.round(a.astype(np.float32, copy=False) * 255.0), 0, 255).astype(np.uint8)
    u8 = np.ascontiguousarray(u8)
    if u8.ndim == 2:
        return Image.fromarray(u8, mode="L").convert("RGB")
    if u8.shape[2] == 3:
        return Image.fromarray(u8, mode="RGB")
    return _to_rgb(Image.fromarray(u8, mode="RGBA"))  # 4 channels: alpha on white


def _check_array(a: np.ndarray, label: str, layout: str) -> None:
    """Refuse an ``(H, W)`` / ``(H, W, C)`` array that :func:`_array_to_pil` cannot read: empty,
    of another dtype than uint8 or float, or float outside [0, 1] (or not finite)."""
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ArgumentError(f"{label}: empty image of shape {layout}; pass a picture at least 1x1 pixels.")
    if a.dtype == np.uint8:
        return
    elif np.issubdtype(a.dtype, np.floating):
        af = a.astype(np.float32, copy=False)
        if not np.isfinite(af).all():
            raise ArgumentError(f"{label}: image contains NaN or infinite values; clean the array first.")
        lo, hi = float(af.min()), float(af.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            if lo >= -0.25 and hi <= 1.25:  # e.g. a [0, 1] picture resized with bicubic resampling
                fix = ("it looks like [0, 1] with a little overshoot (as resampling leaves): clip it to [0, 1] "
                       "(np.clip(x, 0, 1) or x.clamp(0, 1))" + ("; if it is a [-1, 1] picture, use (x + 1) / 2"
                                                                  if lo < 0 else ""))  # fmt: skip
            elif lo >= 0 and hi <= 255:
                fix = "it looks like 0..255: divide by 255 or convert to uint8"
            elif lo >= -1 - 1e-3 and hi <= 1 + 1e-3:
                fix = "it looks like [-1, 1]: use (x + 1) / 2"
            else:
                fix = "rescale it to [0, 1]"
            raise ArgumentError(
                f"{label}: float image values must lie in [0, 1], got min {lo:.4g}, max {hi:.4g}; {fix}."
            )
    else:
        raise ArgumentError(
            f"{label}: image arrays must be uint8 (0..255) or float (0..1), got dtype {a.dtype}. "
            "Convert with .astype(np.uint8) for 0..255 data, or divide by the maximum for other ranges."
        )


def _check_hwc(shape: tuple[int, ...], label: str, kind: str, batch: tuple[int, ...] | None = None) -> None:
    """``shape`` of one image; ``batch``: the whole ``(n, ...)`` shape it came from, if any."""
    if len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3, 4)):
        return
    hint = ""
    if len(shape) == 3 and shape[0] in (1, 3, 4):
        hint = f" It looks channels-first: use a.transpose({'0, 2, 3, 1' if batch else '1, 2, 0'})."
    got = f"{batch} (images of shape {shape})" if batch else f"{shape}"
    raise ArgumentError(
        f"{label}: a {kind} image must have shape (H, W), (H, W, 3) or (H, W, 4) (or (n, H, W, C) for a batch), "
        f"got {got}.{hint}"
    )


def _tensor_to_pils(t: torch.Tensor, label: str) -> list[_Image]:
    shape = tuple(t.shape)
    if t.ndim == 2:
        chw = t.unsqueeze(0).unsqueeze(0)
    elif t.ndim == 3 and shape[0] in (1, 3, 4):
        chw = t.unsqueeze(0)
    elif t.ndim == 4 and shape[1] in (1, 3, 4):
        chw = t
    else:
        hint = ""
        if t.ndim in (3, 4) and shape[-1] in (1, 3, 4):
            hint = " It looks channels-last: use t.permute(2, 0, 1) (or t.permute(0, 3, 1, 2) for a batch)."
        raise ArgumentError(
            f"{label}: an image tensor must have shape (3, H, W) or (n, 3, H, W) with values in [0, 1] "
            f"(1 or 4 channels also work), got {shape}.{hint}"
        )
    if chw.shape[0] == 0:
        raise ArgumentError(f"{label}: the image batch tensor is empty (shape {shape}); pass at least one image.")
    if t.layout != torch.strided or t.is_meta:  # (raw errors from .numpy() before)
        raise ArgumentError(
            f"{label}: a {'meta' if t.is_meta else str(t.layout).removeprefix('torch.')} tensor has no pixels to read; "
            + ("pass a tensor that holds data." if t.is_meta else "pass t.to_dense().")
        )
    if not (t.dtype == torch.uint8 or torch.is_floating_point(t)):
        raise ArgumentError(
            f"{label}: image tensors must be float (0..1) or uint8 (0..255), got dtype {t.dtype}. "
            "Convert with t.float() / 255 or t.to(torch.uint8)."
        )
    chw = chw.detach().cpu()
    batch = t.ndim == 4
    return _lazy_images(list(chw), [f"{label}[{i}]" if batch else label for i in range(chw.shape[0])], str(shape))


def _one_image(x: object, label: str, warn_animated: bool = True) -> list[_Image]:
    """Validate one input item (which may be a batch array/tensor) into ``_Image`` s; an animated
    picture file is warned of unless ``warn_animated`` is False."""
    from PIL import Image

    if isinstance(x, (str, os.PathLike)):
        p = user_path(as_path_text(x, label, "an image file path"))
        try:
            exists = p.exists()
        except OSError as exc:  # e.g. a name too long (ENAMETOOLONG: not False, from exists)
            raise ArgumentError(
                f"{label}: {_short(p)} cannot be opened as a file ({exc.strerror or exc}); pass the path of an image "
                "file (for a prompt, use encode_text)."
            ) from None
        if not exists:
            raise ArgumentError(f"{label}: image file not found: {str(p)!r}."
                                + (url_hint(x) or f" Check the path (relative to {os.getcwd()!r})."))
        if p.is_dir():  # (nearest_images takes a folder; encode_image its pictures)
            raise ArgumentError(f"{label}: {str(p)!r} is a folder; pass its pictures, e.g. "
                                f"enc.encode_image(latentlab.explore.list_images({str(p)!r})).")  # fmt: skip
        if not p.is_file():
            raise ArgumentError(f"{label}: {str(p)!r} is not a file; pass the path of an image file (PNG, JPEG, ...).")
        try:
            with Image.open(p) as im:  # header only: cheap, catches non-images up front
                im.size  # noqa: B018
                note = _animated_note(im, repr(str(p)))  # here, not when decoded: a cache hit is not decoded
        except Exception as exc:
            raise ArgumentError(
                f"{label}: could not read image file {str(p)!r} ({type(exc).__name__}: {exc}). "
                + (_too_large(exc) or "The file is corrupt or not an image; re-export it as PNG or JPEG.")
            ) from exc
        if note and warn_animated:
            warnings.warn(note, UserWarning, stacklevel=4)
        return [_Image(label, path=p)]
    if isinstance(x, Image.Image):
        if x.width == 0 or x.height == 0:
            raise ArgumentError(f"{label}: empty PIL image of size {x.size}; pass a picture at least 1x1 pixels.")
        try:  # its pixels now: a picture opened lazily whose file is closed failed in the model's transform
            x.load()
        except Exception as exc:
            raise ArgumentError(
                f"{label}: could not read PIL image (mode {x.mode!r}) ({type(exc).__name__}: {exc}). If it was opened "
                "in a `with Image.open(path) as im:` block, use it inside the block or call im.load() there; or pass "
                "the path."
            ) from exc
        try:
            return [_Image(label, pil=_to_rgb(x))]
        except Exception as exc:
            raise ArgumentError(f"{label}: could not convert PIL image (mode {x.mode!r}) to RGB: {exc}.") from exc
    if isinstance(x, np.ndarray):
        shape = tuple(x.shape)
        if x.ndim == 4:
            _check_hwc(shape[1:], label, "numpy", batch=shape)
            if shape[0] == 0:
                raise ArgumentError(f"{label}: the image batch array is empty (shape {shape}); pass at least one image.")
            return _lazy_images(list(x), [f"{label}[{i}]" for i in range(shape[0])], str(shape))
        _check_hwc(shape, label, "numpy")
        return _lazy_images([x], [label], str(shape))
    if isinstance(x, torch.Tensor):
        return _tensor_to_pils(x, label)
    raise ArgumentError(
        f"{label}: unsupported image type {type(x).__name__}. Pass a file path, a PIL.Image, a numpy array "
        "(H, W, 3) uint8 or float in [0, 1], a torch tensor (3, H, W) / (n, 3, H, W) in [0, 1], or a list of them."
    )


def _image_items(images: object, warn_animated: bool = True) -> list[_Image]:
    from PIL import Image

    if isinstance(images, (str, os.PathLike, Image.Image, np.ndarray, torch.Tensor)):
        return _one_image(images, "images", warn_animated)
    if isinstance(images, (bytes, bytearray, dict)) or not isinstance(images, Iterable):
        return _one_image(images, "images")  # raises the unsupported-type error
    seq = list(images)
    if not seq:
        raise ArgumentError("images is an empty list; pass at least one image (a path, PIL image, array or tensor).")
    items: list[_Image] = []
    for i, x in enumerate(seq):
        items.extend(_one_image(x, f"images[{i}]", warn_animated))
    return items


def _text_items(texts: object) -> list[str]:
    zero_d = isinstance(texts, (np.ndarray, torch.Tensor)) and texts.ndim == 0  # (iterating it: a raw TypeError)
    if zero_d and isinstance(texts.item(), str):  # np.array("a cat"), as np.str_("a cat") is taken
        texts, zero_d = texts.item(), False
    if isinstance(texts, str):
        texts = [texts]
    if zero_d or isinstance(texts, (bytes, bytearray, dict, set, frozenset)) or not isinstance(texts, Iterable):
        # (a dict would give its keys, a set an order that changes from run to run)
        raise ArgumentError(
            f"texts must be a string or a list of strings, got {type(texts).__name__}. "
            "Pass e.g. encode_text('a photo of a cat') or encode_text(['a cat', 'a dog'])."
        )
    seq = list(texts)
    if not seq:
        raise ArgumentError("texts is an empty list; pass at least one prompt (\"\" is the unconditional caption).")
    for i, t in enumerate(seq):
        if not isinstance(t, str):
            raise ArgumentError(f"texts[{i}] must be a string, got {type(t).__name__} ({t!r:.60}).")
        check_text(t, f"texts[{i}]")  # (it was embedded as it was, or a raw UnicodeEncodeError with an embedding cache)
    return [str(t) for t in seq]


def _token_counts(tokenizer: Any, texts: list[str]) -> tuple[int, list[tuple[int, int, str]]] | None:
    """``(context length, [(index, tokens, text kept), ...])`` of the prompts an open_clip tokenizer
    cuts to its context, start and end tokens counted; ``None`` for a tokenizer it cannot measure."""
    limit = getattr(tokenizer, "context_length", None)
    if not isinstance(limit, int) or limit < 2:
        return None
    cut: list[tuple[int, int, str]] = []
    if callable(getattr(tokenizer, "encode", None)) and hasattr(tokenizer, "sot_token_id") and hasattr(tokenizer, "decoder"):
        if getattr(tokenizer, "reduction_fn", None) is not None:  # a reduction strategy, not truncation
            return None
        for i, text in enumerate(texts):
            ids = tokenizer.encode(text)  # open_clip's SimpleTokenizer: its own cleaning, no start / end token
            if len(ids) + 2 > limit:
                cut.append((i, len(ids) + 2, tokenizer.decode(ids[: limit - 2]).strip()))
        return limit, cut
    hf = getattr(tokenizer, "tokenizer", None)  # open_clip's HFTokenizer
    if hf is not None and getattr(tokenizer, "tokenizer_mode", None) != "clips" and callable(getattr(tokenizer, "clean_fn", None)):
        for i, text in enumerate(texts):
            ids = hf(tokenizer.clean_fn(text), truncation=False)["input_ids"]
            if len(ids) > limit:
                cut.append((i, len(ids), hf.decode(ids[: limit - 1], skip_special_tokens=True).strip()))
        return limit, cut
    return None


def _hf_token_counts(tokenizer: Any, texts: list[str]) -> tuple[int, list[tuple[int, int, str]]] | None:
    """:func:`_token_counts` for a Hugging Face tokenizer (a diffusers prior's, which reads the
    prompt itself and cuts it to ``model_max_length``)."""
    limit = getattr(tokenizer, "model_max_length", None)
    if not isinstance(limit, int) or not 2 <= limit < 100_000 or not callable(tokenizer):  # (huge: "no limit")
        return None
    cut: list[tuple[int, int, str]] = []
    for i, text in enumerate(texts):
        ids = tokenizer(text, truncation=False, verbose=False)["input_ids"]  # (its own "longer than" log: ours says it)
        if len(ids) > limit:
            cut.append((i, len(ids), tokenizer.decode(ids[: limit - 1], skip_special_tokens=True).strip()))
    return limit, cut


# while ll.generate runs, the cuts _warn_truncated finds (encode_text's or from_texts's, then the
# decoder's, once a batch) go to the function held here, which says the first once, naming generate's
# caller, as it is found (so that under -W error it raises before more is sampled or drawn)
_HELD_CUTS: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar("_HELD_CUTS", default=None)


def _warn_truncated(tokenizer: Any, texts: list[str], stacklevel: int = 3) -> None:
    """One warning for the prompts the tokenizer (open_clip's, or a Hugging Face one) cuts to its
    context (the words past it change nothing: two prompts that differ only there draw the same
    pictures). ``stacklevel`` is :func:`warnings.warn`'s, counted from this function: 3 names the
    caller of encode_text, or of a prior's from_texts. Given to :data:`_HELD_CUTS`'s function
    instead, while it holds one."""
    try:
        measured = _token_counts(tokenizer, texts)
        if measured is None:  # (hf_clip's encoders tokenize through a wrapper that names its CLIPTokenizer)
            measured = _hf_token_counts(getattr(tokenizer, "hf_tokenizer", tokenizer), texts)
    except Exception:  # a tokenizer of another shape: it tokenizes (and says what is wrong) as before
        return
    if not measured or not measured[1]:
        return
    limit, cut = measured
    i, count, kept = cut[0]
    tail = kept if len(kept) <= 50 else "..." + kept[-47:].split(" ", 1)[-1]  # (from a word's start)
    shown = texts[i] if len(texts[i]) <= 80 else texts[i][:77] + "..."
    if len(texts) > 1:
        what, which = f"{len(cut)} of {len(texts)} prompts are", f"the first, {shown!r}, has"
    else:
        what, which = "a prompt is", f"{shown!r} has"
    message = (
        f"{what} longer than the text encoder's context of {limit} tokens, so cut to fit (the words past the limit "
        f"change nothing): {which} {count} tokens and is read only up to {tail!r}. Shorten the prompt."
    )
    held = _HELD_CUTS.get()
    if held is not None:
        held(message)
        return
    warnings.warn(message, UserWarning, stacklevel=stacklevel)


def _check_batch_size(batch_size: object) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ArgumentError(f"batch_size must be a positive integer, got {batch_size!r}.")
    return int(batch_size)


# ======================================================================================
# device / dtype
# ======================================================================================

_DTYPES = {
    "fp32": torch.float32, "float32": torch.float32, "float": torch.float32,
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
}  # fmt: skip
_PRECISION = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


def _resolve_dtype(dtype: object) -> torch.dtype:
    if isinstance(dtype, str):
        dtype = _DTYPES.get(dtype.lower().removeprefix("torch."), dtype)
    if not isinstance(dtype, torch.dtype) or dtype not in _PRECISION:
        raise ArgumentError(
            f"dtype must be torch.float32, torch.float16 or torch.bfloat16 (or 'fp32'/'fp16'/'bf16'), got {dtype!r}."
        )
    return dtype  # type: ignore[return-value]


def _resolve_device(device: object) -> torch.device:
    try:
        dev = torch.device(device)  # type: ignore[arg-type]
    except (TypeError, RuntimeError) as exc:
        raise ArgumentError(f"device must be a torch device such as 'cpu' or 'cuda:0', got {device!r}.") from exc
    if dev.type == "meta":
        raise ArgumentError(f"device={device!r} holds no weights, so nothing could be computed; use 'cpu' or 'cuda'.")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ArgumentError(f"device={device!r} but CUDA is not available on this machine; use device='cpu'.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        # (refused only by torch's raw "invalid device ordinal", once the weights had been read)
        n = torch.cuda.device_count()
        there = f"has {n} CUDA GPU(s) (cuda:0 to cuda:{n - 1}); pick one of those, or" if n else \
            "reports CUDA available with no GPU (check CUDA_VISIBLE_DEVICES);"
        raise ArgumentError(f"device={device!r} but this machine {there} use device='cpu'.")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ArgumentError(f"device={device!r} but MPS is not available on this machine; use device='cpu'.")
    return dev


# ======================================================================================
# the encoder
# ======================================================================================


class Encoder:
    """Images and texts -> unit-norm float32 ``(n, d)`` CLIP embeddings, tagged with ``space``.

    Wraps an open_clip model (anything with ``encode_image(x, normalize=...)`` and
    ``encode_text(tokens, normalize=...)``), its evaluation ``preprocess`` transform
    (PIL image -> ``(3, S, S)`` tensor) and its ``tokenizer`` (list of str -> ``(n, ctx)``
    token ids). Build one with :func:`latentlab.presets.create_encoder` or
    :meth:`from_open_clip` rather than by hand.

    Attributes: ``name`` (preset or model id), ``space`` (CLIP space name), ``dim`` (d),
    ``image_size`` (input resolution of the vision tower), ``device``, ``dtype`` (of the
    model; outputs are always float32 on CPU), ``cache`` (an :class:`EmbeddingCache` or
    ``None``; assign a directory path to enable one).

    ``fingerprint`` (constructor argument): a stable id of the weights and of what turns inputs
    into embeddings, from which the cache keys are derived (a string, or a function returning
    one, called on first use). Two encoders with the same fingerprint share cache entries, so
    it must change whenever the embeddings would. Left out (``None``), it is a digest of the
    model's content, ``"model:sha256:<hex>"``: its state dict (names, dtypes, shapes and bytes),
    its module structure (activations included) and the preprocess and tokenizer settings,
    hashed on first use of the cache (or :meth:`describe`) and kept: weights changed in place
    after that need a new Encoder (or a ``fingerprint`` of yours). ``info`` (constructor
    argument): extra JSON-serialisable entries for :meth:`describe` (the model, weights, ...).

    >>> from latentlab.presets import create_encoder
    >>> import numpy as np
    >>> enc = create_encoder("tiny")
    >>> z = enc.encode_image(np.full((40, 40, 3), 0.5, dtype=np.float32))
    >>> tuple(z.shape), round(float(z.norm()), 4)
    ((1, 32), 1.0)
    """

    def __init__(
        self,
        model: torch.nn.Module,
        preprocess: Callable[[Any], torch.Tensor],
        tokenizer: Callable[[list[str]], torch.Tensor],
        *,
        name: str,
        space: str,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        dim: int | None = None,
        image_size: int | None = None,
        fingerprint: str | Callable[[], str] | None = None,
        info: dict[str, Any] | None = None,
        cache: EmbeddingCache | str | os.PathLike[str] | None = None,
    ) -> None:
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.name = str(name)
        self.space = str(space)
        self.device = _resolve_device(device)
        self.dtype = _resolve_dtype(dtype)
        from .hf_clip import warn_half_on_cpu  # (hf_clip imports this module)

        warn_half_on_cpu(self.device, self.dtype, f"the encoder {self.name!r}")  # once per encoder, as decoders do
        self._info = dict(info or {})
        self._fingerprint = fingerprint
        self._fingerprint_value: str | None = None
        self.cache = cache  # type: ignore[assignment]  (property converts paths)
        self.image_size = int(image_size) if image_size is not None else _infer_image_size(model)
        self.dim = int(dim) if dim is not None else self._infer_dim()

    def __repr__(self) -> str:
        return (
            f"Encoder(name={self.name!r}, space={self.space!r}, dim={self.dim}, image_size={self.image_size}, "
            f"device={str(self.device)!r}, dtype={self.dtype})"
        )

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_open_clip(
        cls,
        model_name: str,
        pretrained: str | None = None,
        *,
        checkpoint: str | os.PathLike[str] | None = None,
        config: str | os.PathLike[str] | None = None,
        space: str | None = None,
        name: str | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        cache: EmbeddingCache | str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> Encoder:
        """An encoder for any open_clip model: a pretrained tag, a local checkpoint or an ``hf-hub:`` id.

        Args:
            model_name: open_clip architecture (``"ViT-B-32"``, ``"ViT-L-14"``, ...; see
                ``open_clip.list_models()``), ``"hf-hub:org/repo"`` (an open_clip repo on the
                Hugging Face Hub: its ``open_clip_config.json`` and weights, from the cache or
                downloaded) or ``"local-dir:/path/to/folder"`` (a folder holding the same
                files). These two bring their own weights: they take neither ``pretrained`` nor
                ``checkpoint``, and a repo or folder without weights raises
                :class:`ModelNotAvailableError` rather than giving random ones.
            pretrained: open_clip pretrained tag (``open_clip.list_pretrained()``); weights are
                downloaded once into the Hugging Face cache (``cache_dir``, ``HF_HUB_CACHE`` or
                ``HF_HOME``). Raises :class:`ModelNotAvailableError` when they are missing and
                cannot be fetched (offline, ``HF_HUB_OFFLINE=1``).
            checkpoint: local weights file (``.safetensors`` preferred; ``.pt``/``.bin`` are
                loaded with ``weights_only=True``), instead of ``pretrained``.
            config: open_clip model-config JSON describing ``model_name`` (custom models; plain
                or hub format, whose ``preprocess_cfg`` is applied). It is registered with
                open_clip under a private name, so open_clip's own config of the same name is
                left as it is.
            space: CLIP space tag; defaults to ``f"open_clip/{model_name}/{pretrained}"``, or
                for a checkpoint ``f"open_clip/{model_name}/{file name}@{sha}"`` with the first 12
                hex digits of the file's sha256 (two fine-tunes saved under the same file name
                are two spaces, so their embeddings do not mix silently).
            name: name reported in manifests; defaults to ``model_name`` (+ ``/pretrained``).
            device, dtype: where and in which precision the model runs (outputs are float32 CPU).
            cache: an :class:`EmbeddingCache` or directory for cached embeddings.
            cache_dir: the Hugging Face cache folder that ``pretrained`` and ``hf-hub:``
                weights are read from and downloaded into (default: ``HF_HUB_CACHE`` or
                ``HF_HOME``'s).

        >>> enc = Encoder.from_open_clip("ViT-B-32", "laion2b_s34b_b79k")  # doctest: +SKIP
        >>> enc.encode_text("a diagram").shape                              # doctest: +SKIP
        torch.Size([1, 512])
        """
        loaded = _load_open_clip(
            model_name, pretrained=pretrained, checkpoint=checkpoint, config=config,
            device=device, dtype=dtype, cache_dir=cache_dir,
        )  # fmt: skip
        if space is None:
            if pretrained:
                suffix = pretrained
            elif checkpoint:
                suffix = f"{Path(checkpoint).name}@{loaded['info']['checkpoint_sha256'][:12]}"
            else:
                suffix = "hub"
            space = f"open_clip/{model_name}/{suffix}"
        if name is None:
            name = f"{model_name}/{pretrained}" if pretrained else model_name
        return cls(
            loaded["model"], loaded["preprocess"], loaded["tokenizer"], name=name, space=space,
            device=device, dtype=dtype, fingerprint=loaded["fingerprint"], info=loaded["info"], cache=cache,
        )  # fmt: skip

    # -- properties ---------------------------------------------------------------------

    @property
    def cache(self) -> EmbeddingCache | None:
        """The on-disk :class:`EmbeddingCache` used by ``encode_*`` (``None``: no caching)."""
        return self._cache

    @cache.setter
    def cache(self, value: EmbeddingCache | str | os.PathLike[str] | None) -> None:
        self._cache = _as_cache(value)

    def fingerprint(self) -> str:
        """A stable id of the weights and of what turns inputs into embeddings; cache keys are
        derived from it. By kind of model:

        - an open_clip pretrained tag: ``"open_clip:<model>:<tag>"`` (the tag names fixed weights);
        - a checkpoint file: ``"sha256:<hex>:cfg-<hex>"``, the file's sha256 (taken when it is
          loaded) and a digest of the model config, activation and preprocessing it is read with;
        - ``local-dir:<folder>``: ``"sha256:<hex>"`` of the bytes of the folder's
          ``open_clip_config.json`` (preprocessing included) and of the weights file loaded;
        - ``hf-hub:<repo>``: ``"open_clip:hf-hub:<repo>:sha256:<hex>"``, the same digest of the
          config and weights files of the cached snapshot loaded, so a repo updated with new
          weights (a new snapshot) is another fingerprint;
        - the tiny random preset: ``"tiny-seed<k>"``;
        - an encoder built without ``fingerprint=``: ``"model:sha256:<hex>"``, a digest of the
          model's state dict and structure and of its preprocess and tokenizer settings, taken
          on first use. A tokenizer or preprocess that is a plain function is read by its code,
          constants, defaults and captured plain values; what it reads from a global or a
          captured object is not seen, so give such an encoder a ``fingerprint=`` of your own
          (change it when the function changes), or its cached embeddings may be reused.
        """
        if self._fingerprint_value is None:
            fp = self._fingerprint
            if callable(fp):
                fp = fp()
            self._fingerprint_value = str(fp) if fp else _content_fingerprint(self.model, self.preprocess, self.tokenizer)
        return self._fingerprint_value

    def _cache_id(self) -> str:
        """What cache keys are derived from: the weights, and the precision when it is not
        float32 (a bfloat16 encoder's embeddings differ by about 1e-3; float32 keys unchanged)."""
        fp = self.fingerprint()
        return fp if self.dtype == torch.float32 else f"{fp}|{str(self.dtype).removeprefix('torch.')}"

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description for manifests: class, name, space, dim, model, weights..."""
        d: dict[str, Any] = {
            "class": type(self).__name__,
            "name": self.name,
            "space": self.space,
            "dim": self.dim,
            "image_size": self.image_size,
        }
        d.update(self._info)
        d.update({"device": str(self.device), "dtype": str(self.dtype).removeprefix("torch."),
                  "fingerprint": self.fingerprint()})  # fmt: skip
        return json.loads(json.dumps(d, default=str))

    # -- encoding -----------------------------------------------------------------------

    def encode_image(self, images: Any, *, batch_size: int = 32, progress: bool = False) -> torch.Tensor:
        """Embed images: returns float32 ``(n, dim)`` on CPU, unit norm, tagged with ``self.space``.

        ``images`` is one item or a list of: file paths (str / PathLike), PIL images (any
        mode; alpha is composited on white, EXIF orientation applied: a PIL image keeps its
        orientation tag through ``rotate``, so turn a photo upright with
        ``PIL.ImageOps.exif_transpose``, which clears it, not by hand; an animated picture
        gives its current frame, the first as opened, with a warning), numpy arrays
        ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` (uint8 or float in [0, 1]; ``(n, H, W, C)``
        batches expand), torch tensors ``(3, H, W)`` or ``(n, 3, H, W)`` in [0, 1] (or uint8).
        Every image goes through the model's own open_clip transform (resize, centre crop,
        normalise), so the same picture gives the same embedding whatever its container.
        All are checked first; then they are read (a file decoded, an array or tensor made a
        picture) batch by batch, ``batch_size`` at a time, so thousands of them cost no more
        memory than the input itself and one batch. ``progress``: a tqdm bar over the images
        encoded (cached ones are not counted).

        >>> from latentlab.presets import create_encoder
        >>> import torch
        >>> enc = create_encoder("tiny")
        >>> enc.encode_image(torch.rand(5, 3, 48, 48), batch_size=2).shape
        torch.Size([5, 32])
        """
        bs = _check_batch_size(batch_size)
        items = _image_items(images)

        def key(it: _Image) -> str:
            return EmbeddingCache.make_key(self._cache_id(), "image", it.content())

        def run(batch: list[_Image]) -> torch.Tensor:
            with float32_default():  # (open_clip's preprocess, torchvision's ToTensor, converts to the default dtype)
                x = torch.stack([self.preprocess(it.load()) for it in batch])
            return self.model.encode_image(x.to(self.device, self.dtype), normalize=True)

        return self._encode(items, key, run, bs, progress, "images", "img")

    def encode_text(self, texts: str | Sequence[str], *, batch_size: int = 64, progress: bool = False) -> torch.Tensor:
        """Embed prompts: returns float32 ``(n, dim)`` on CPU, unit norm, tagged with ``self.space``.

        ``texts`` is a string or a list of strings, tokenized with the model's open_clip
        tokenizer (long prompts are truncated to its context length, 77 tokens for most CLIP
        models and 32 for ``mini``, with one warning per call naming how many were cut). ``""``
        is allowed (the unconditional caption); an empty list is an error. They are encoded
        ``batch_size`` at a time; ``progress``: a tqdm bar over the texts encoded (cached ones
        are not counted).

        >>> from latentlab.presets import create_encoder
        >>> enc = create_encoder("tiny")
        >>> z = enc.encode_text(["a cat", "a dog", "a cat"])
        >>> bool((z[0] == z[2]).all()), bool((z[0] == z[1]).all())
        (True, False)
        """
        bs = _check_batch_size(batch_size)
        items = _text_items(texts)
        _warn_truncated(self.tokenizer, items)  # (cached or not: the embedding is of the cut prompt either way)

        def key(t: str) -> str:
            return EmbeddingCache.make_key(self._cache_id(), "text", t)

        def run(batch: list[str]) -> torch.Tensor:
            tokens = self.tokenizer(batch)
            return self.model.encode_text(tokens.to(self.device), normalize=True)

        return self._encode(items, key, run, bs, progress, "texts", "text")

    def _encode(
        self,
        items: list[Any],
        key: Callable[[Any], str],
        run: Callable[[list[Any]], torch.Tensor],
        batch_size: int,
        progress: bool,
        what: str,
        unit: str,
    ) -> torch.Tensor:
        n = len(items)
        out = torch.empty(n, self.dim, dtype=torch.float32)
        cache = self.cache
        keys: list[str | None] = [None] * n
        todo = list(range(n))
        if cache is not None:
            todo = []
            for i, it in enumerate(items):
                keys[i] = key(it)
                hit = cache.get(keys[i], dim=self.dim)  # type: ignore[arg-type]
                if hit is None:
                    todo.append(i)
                else:
                    out[i] = hit
        if todo:
            from ._bars import progress_bar

            with progress_bar(progress, total=len(todo), desc=f"encode {what}", unit=unit) as bar:
                for start in range(0, len(todo), batch_size):
                    idx = todo[start : start + batch_size]
                    with torch.no_grad():
                        z = run([items[i] for i in idx])
                    z = normalize(z.detach().float().cpu())
                    if z.shape != (len(idx), self.dim):
                        raise LatentlabError(
                            f"the model returned embeddings of shape {tuple(z.shape)} for {len(idx)} {what}, "
                            f"expected ({len(idx)}, {self.dim}); the model does not match this encoder's dim."
                        )
                    out[idx] = z
                    if cache is not None:
                        for j, i in enumerate(idx):
                            cache.put(keys[i], z[j], stacklevel=4)  # type: ignore[arg-type]  (names encode_*'s caller)
                    bar.update(len(idx))
        return tag(out, self.space)

    def _infer_dim(self) -> int:
        visual = getattr(self.model, "visual", None)
        d = getattr(visual, "output_dim", None)
        if isinstance(d, int) and d > 0:
            return d
        proj = getattr(self.model, "text_projection", None)
        if isinstance(proj, torch.Tensor) and proj.ndim == 2:
            return int(proj.shape[1])
        with torch.no_grad():  # last resort: embed one empty prompt
            return int(self.model.encode_text(self.tokenizer([""]).to(self.device)).shape[-1])


def _infer_image_size(model: torch.nn.Module) -> int:
    visual = getattr(model, "visual", None)
    cfg = getattr(visual, "preprocess_cfg", None) or {}
    size = cfg.get("size", getattr(visual, "image_size", 224))
    if isinstance(size, (tuple, list)):
        size = max(size)
    return int(size)


# ======================================================================================
# loading open_clip models
# ======================================================================================


def _hub_offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        return True
    if os.environ.get("TRANSFORMERS_OFFLINE", "").strip().lower() in _TRUE:
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:
        return False


def hub_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> str:
    """The Hugging Face Hub cache folder, the one huggingface_hub itself would use, read from the
    environment at call time (so that ``HF_HOME`` set after import counts): ``cache_dir`` (``~``
    read; empty means left out), else ``$HF_HUB_CACHE``, else the older ``$HUGGINGFACE_HUB_CACHE``,
    else ``$HF_HOME/hub``, else ``$XDG_CACHE_HOME/huggingface/hub`` or ``~/.cache/huggingface/hub``
    (``~`` and ``$VARS`` expanded as huggingface_hub expands them). The one lookup of every loader
    (open_clip's, hf_clip's, the diffusers decoders') and of :func:`latentlab.weights_status`."""
    if cache_dir is not None and as_path_text(cache_dir, "cache_dir"):
        return str(user_path(cache_dir))

    def expand(value: str) -> str:
        return os.path.expandvars(os.path.expanduser(value))

    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return expand(os.environ[name])
    home = os.environ.get("HF_HOME")
    if not home:
        home = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return os.path.join(expand(home), "hub")


def _local_path(p: str | os.PathLike[str], what: str, arg: str | None = None) -> Path:
    """``p`` as an existing file: as given, else relative to the latentlab package (for presets;
    :func:`latentlab.presets.weights_status` looks in the same places)."""
    from .presets import _find_local_file

    if not isinstance(p, (str, os.PathLike)):  # (5 or b"x" raised a raw TypeError from os.fspath)
        raise ArgumentError(f"{arg or what} must be a file path (a str or pathlib.Path), got {p!r}.")
    found = _find_local_file(p)
    if found is not None:
        return found
    path = user_path(p)
    if path.is_dir():
        hint = (
            f" For an open_clip hub folder (open_clip_config.json + weights) pass model='local-dir:{path}' and no {arg}=."
            if (path / "open_clip_config.json").is_file() or arg == "checkpoint"
            else ""
        )
        raise ArgumentError(
            f"{arg or what}={str(path)!r} is a folder, not a file: pass the {what} file inside it"
            f"{' (e.g. open_clip_model.safetensors)' if arg == 'checkpoint' else ''}.{hint}"
        )
    raise ModelNotAvailableError(
        f"{what} file not found: {str(path)!r} (also looked in {str(_PACKAGE_DIR)!r}). "
        f"Check the path, or reinstall latentlab if it is one of its bundled files."
    )


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


#: Preprocessing keys of an open_clip config or pretrained tag that latentlab applies; "size"
#: and "mode" come from the model itself, as in open_clip.
_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode", "fill_color")


def _register_config(config: str | os.PathLike[str], model_name: str) -> tuple[str, dict[str, Any], Path]:
    """Register an open_clip model-config JSON; return the name it is registered under, its
    preprocess overrides and the file it was read from.

    Accepts open_clip's plain format (``embed_dim``, ``vision_cfg``, ``text_cfg``) or the
    hub format ``{"model_cfg": ..., "preprocess_cfg": ...}``. The name is private,
    ``latentlab-config-<model_name>-<hash of the config>``: open_clip's registry is global and
    re-reads its built-in configs whenever one is added, so registering under ``model_name``
    itself would replace a built-in of that name for the whole process (or be undone by the
    next registration).
    """
    path = _local_path(config, "open_clip model config", "config")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SpecError(f"config {str(path)!r} is not a readable JSON file ({exc}); fix or replace it.") from exc
    if not isinstance(data, dict):
        raise SpecError(f"config {str(path)!r} must hold a JSON object, got {type(data).__name__}.")
    model_cfg = data.get("model_cfg", data)
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if not isinstance(model_cfg, dict) or k not in model_cfg]
    if missing:
        raise SpecError(
            f"config {str(path)!r} is not an open_clip model config: it lacks {', '.join(missing)}. "
            "See open_clip/model_configs/*.json for the format."
        )
    digest = hashlib.sha256(json.dumps(model_cfg, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    # the user's name stays in it: open_clip picks some tokenizers by name (e.g. "siglip")
    registered = f"latentlab-config-{re.sub(r'[^A-Za-z0-9._-]+', '-', model_name)}-{digest}"
    _add_model_config(registered, model_cfg)
    pp = data.get("preprocess_cfg", {}) if "model_cfg" in data else {}
    if not isinstance(pp, dict):
        raise SpecError(f"config {str(path)!r}: preprocess_cfg must be a JSON object, got {type(pp).__name__}.")
    return registered, {k: pp[k] for k in _PREPROCESS_KEYS if pp.get(k) is not None}, path


def _add_model_config(model_name: str, model_cfg: dict[str, Any]) -> None:
    """Make ``model_name`` known to open_clip's config registry (a no-op if it already is, identically)."""
    import open_clip

    if open_clip.get_model_config(model_name) == model_cfg:
        return
    # open_clip registers configs from files named <model>.json; the registry keeps the
    # parsed dict, so the temporary file can go once it has been scanned.
    with tempfile.TemporaryDirectory(prefix="latentlab-open_clip-") as d:
        p = Path(d) / f"{model_name}.json"
        p.write_text(json.dumps(model_cfg), encoding="utf-8")
        open_clip.add_model_config(p)
    if open_clip.get_model_config(model_name) is None:  # pragma: no cover - defensive
        raise SpecError(f"open_clip refused the model config for {model_name!r}; check its fields.")


def _offline_vars() -> list[str]:
    """The environment variables that switch the Hub off now (``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``)."""
    return [k for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") if os.environ.get(k, "").strip().lower() in _TRUE]


def _offline_reason() -> str:
    return f"offline mode is on ({', '.join(f'{k}=1' for k in _offline_vars()) or 'HF_HUB_OFFLINE=1'})"


def _not_available(model_name: str, pretrained: str, repo: str | None, files: list[str], where: str,
                   reason: str) -> ModelNotAvailableError:  # fmt: skip
    """``files``: the candidate file names, preferred first (safetensors before a pickled .bin)."""
    loc = f"Hugging Face repo {repo!r}, file {' or '.join(files)}" if repo else f"file {' or '.join(files)}"
    offline = _offline_vars()
    online = "run once with internet access" + (f" (unset {' and '.join(offline)})" if offline else "")
    get = f"{online}, or `hf download {repo} {files[0]}`" if repo else online
    reason = reason.strip().rstrip(".")
    return ModelNotAvailableError(
        f"open_clip weights for model {model_name!r} (pretrained={pretrained!r}; {loc}) are not in "
        f"the cache {where} and cannot be downloaded: {reason}. "
        f"To get them, {get} (set HF_HOME or cache_dir= to use another cache), or pass checkpoint='/path/to/weights.safetensors'."
    )


def _resolve_pretrained(model_name: str, pretrained: str, cache_dir: str | os.PathLike[str] | None) -> tuple[str, dict[str, Any]]:
    """Local path of the weights for open_clip tag ``pretrained`` (downloading them if allowed), and the tag's config."""
    import open_clip
    from open_clip import pretrained as oc_pretrained

    clean = model_name.replace("/", "-")
    cfg = open_clip.get_pretrained_cfg(clean, pretrained) or {}
    if not cfg:
        if os.path.isfile(pretrained):
            return pretrained, {}
        tags = open_clip.list_pretrained_tags_by_model(clean)
        raise ArgumentError(
            f"pretrained={pretrained!r} is neither an open_clip pretrained tag of {model_name!r} nor a file. "
            f"Known tags for {model_name!r}: {', '.join(tags) if tags else 'none (random init only)'}; "
            "or pass checkpoint= with a local weights file."
        )
    if cfg.get("file"):
        return str(cfg["file"]), cfg
    hf = cfg.get("hf_hub", "")
    url = cfg.get("url", "")
    offline = _hub_offline()
    if hf and oc_pretrained.has_hf_hub():
        from huggingface_hub import hf_hub_download

        repo, filename = os.path.split(hf)  # "org/repo/" (default file) or "org/repo/file.bin"
        filename = filename or oc_pretrained.HF_WEIGHTS_NAME
        candidates = [*oc_pretrained._get_safe_alternatives(filename), filename]
        hub = hub_cache_dir(cache_dir)
        for fn in candidates:  # already cached: no network at all
            try:
                return hf_hub_download(repo, fn, cache_dir=hub, local_files_only=True), cfg
            except Exception:
                pass
        if offline:
            raise _not_available(model_name, pretrained, repo, candidates, hub, _offline_reason())
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

        last: Exception | None = None
        for fn in candidates:
            try:
                return hf_hub_download(repo, fn, cache_dir=hub), cfg
            except Exception as exc:
                last = exc
                # only "the repo has no such file" moves on to the next name: an unreachable hub
                # (after huggingface_hub's own retries, about 25 s) would fail the same way again
                if not isinstance(exc, EntryNotFoundError) or isinstance(exc, LocalEntryNotFoundError):
                    break
        raise _not_available(model_name, pretrained, repo, candidates, hub, f"{type(last).__name__}: {last}") from last
    if url:
        target_dir = str(user_path(cache_dir)) if cache_dir else os.path.expanduser("~/.cache/clip")
        target = os.path.join(target_dir, os.path.basename(url))
        if offline and not os.path.isfile(target):
            raise _not_available(model_name, pretrained, None, [target], target_dir, _offline_reason())
        try:
            return oc_pretrained.download_pretrained_from_url(url, cache_dir=target_dir), cfg
        except Exception as exc:
            raise _not_available(model_name, pretrained, None, [url], target_dir, f"{type(exc).__name__}: {exc}") from exc
    raise ModelNotAvailableError(
        f"open_clip has no download source for {model_name!r} / {pretrained!r}; pass checkpoint= with a local file."
    )


def _load_open_clip(
    model_name: str,
    *,
    pretrained: str | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str = torch.float32,
    cache_dir: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    preprocess_tag: str | None = None,
) -> dict[str, Any]:
    """Create an open_clip model, transform and tokenizer; errors become latentlab errors.

    ``model_name`` is an architecture open_clip knows (or ``config`` describes),
    ``"hf-hub:org/repo"`` (config and weights from the Hugging Face cache, downloaded unless
    offline) or ``"local-dir:/folder"`` (a folder holding ``open_clip_config.json`` and a
    weights file). The last two bring their own weights and must have them: latentlab refuses
    the random weights open_clip would otherwise fall back to. With ``seed`` and neither
    ``pretrained`` nor ``checkpoint``, the weights are random, drawn under
    ``torch.manual_seed(seed)`` without touching the global RNG. ``preprocess_tag``: with
    ``checkpoint``, the open_clip pretrained tag whose preprocessing and activation (QuickGELU
    or not) apply to the checkpoint (a preset's tag whose weights the user replaced).
    """
    import open_clip

    if not isinstance(model_name, str) or not model_name:
        raise ArgumentError(f"model must be an open_clip model name such as 'ViT-B-32', got {model_name!r}.")
    dev = _resolve_device(device)
    dt = _resolve_dtype(dtype)
    if pretrained is not None and checkpoint is not None:
        raise ArgumentError("pass either pretrained= (an open_clip tag) or checkpoint= (a local file), not both.")
    schema = next((s for s in ("hf-hub", "local-dir") if model_name.startswith(s + ":")), None)
    is_hub = schema is not None
    identifier = model_name[len(schema) + 1 :] if schema else model_name
    if is_hub:
        if not identifier.strip():
            what = "repo (org/name)" if schema == "hf-hub" else "folder"
            raise ArgumentError(f"model={model_name!r} names no {what} after {schema + ':'!r}.")
        if config is not None:
            raise ArgumentError(f"config= cannot be combined with model={model_name!r}, which brings its own config.")
        if pretrained is not None:
            raise ArgumentError(f"pretrained= is ignored by open_clip for {model_name!r}, which brings its own weights; drop it.")
        if checkpoint is not None:
            raise ArgumentError(
                f"checkpoint= cannot be combined with model={model_name!r}, which brings its own weights. "
                "Drop checkpoint=, or pass model= an architecture (e.g. 'ViT-B-32', or with config=) with checkpoint=."
            )
    # open_clip looks plain names up with "/" as "-" when it builds a model but not when it picks
    # the tokenizer; giving it the registry name makes both read the same config
    oc_name = model_name if is_hub else model_name.replace("/", "-")
    overrides: dict[str, Any] = {}
    config_path: Path | None = None
    if config is not None:
        oc_name, overrides, config_path = _register_config(config, model_name)
    elif not is_hub and open_clip.get_model_config(oc_name) is None:
        folder = user_path(model_name)
        if folder.is_dir():
            if (folder / "config.json").is_file() and not (folder / "open_clip_config.json").is_file():
                fix = (f"a transformers CLIP folder loads with latentlab.hf_clip.HFCLIPEncoder.from_pretrained({str(folder)!r}) "
                       f"(or model='local-dir:{folder}' if it holds open_clip's files)")  # fmt: skip
            else:
                fix = f"for an open_clip hub folder (open_clip_config.json + weights) pass model='local-dir:{folder}'"
            raise ArgumentError(f"model={model_name!r} is a folder, not an open_clip model name: {fix}.")
        raise ArgumentError(
            f"unknown open_clip model {model_name!r}. Pick one of open_clip.list_models() "
            f"(e.g. 'ViT-B-32', 'ViT-L-14', 'ViT-H-14'), or pass config= with a model-config JSON."
        )

    weights: str | None = None
    info: dict[str, Any] = {"model": model_name, "pretrained": pretrained, "checkpoint": None}
    if config_path is not None:
        info["config"] = str(config_path)
    fingerprint: str
    # files whose bytes the fingerprint hashes: hashed now, at load, and checked unchanged once the
    # model is built, so that the fingerprint describes the weights in memory, not a file written later
    hashed: list[Path] = []
    stats: list[Any] = []  # of the files hashed, taken before hashing them: stat, hash, load, stat again
    # with a weights file, the fingerprint ends with a digest of the config and preprocessing (below)
    add_config_digest = config is not None
    tag_cfg: dict[str, Any] = {}
    if checkpoint is not None:
        ckpt = _local_path(checkpoint, "checkpoint", "checkpoint")
        if ckpt.suffix not in (".safetensors", ".pt", ".pth", ".bin", ".ckpt"):
            raise ArgumentError(
                f"checkpoint {str(ckpt)!r} has an unknown extension; use a .safetensors file (or .pt/.pth/.bin)."
            )
        weights = str(ckpt)
        info["checkpoint"] = weights
        hashed = [ckpt]
        stats = _stat_all(hashed)
        fingerprint = _file_sha256(ckpt)
        info["checkpoint_sha256"] = fingerprint.removeprefix("sha256:")
        add_config_digest = True
        if preprocess_tag is not None:
            tag_cfg = open_clip.get_pretrained_cfg(model_name.replace("/", "-"), preprocess_tag) or {}
            if tag_cfg:
                info["preprocess"] = f"of pretrained tag {preprocess_tag!r}"
    elif pretrained is not None:
        weights, tag_cfg = _resolve_pretrained(model_name, pretrained, cache_dir)
        if tag_cfg:
            fingerprint = f"open_clip:{model_name}:{pretrained}"
        else:  # a file given as pretrained=
            hashed = [Path(weights)]
            stats = _stat_all(hashed)
            fingerprint = _file_sha256(Path(weights))
            add_config_digest = True
    elif schema == "hf-hub":
        # set once the model is built: a digest of the snapshot files open_clip loaded (below)
        fingerprint = f"open_clip:{model_name}"
        if _hub_offline():
            _check_hub_model_cached(identifier, cache_dir)
    elif schema == "local-dir":
        folder, files = _check_local_dir(model_name, identifier)
        oc_name = f"local-dir:{folder}"
        info["local_dir"] = str(folder)
        # the folder's content (its config, preprocessing included, and weights), not its path:
        # weights retrained in place must not hit old cache entries
        hashed = list(files)
        stats = _stat_all(hashed)
        fingerprint = _files_sha256(files)
    elif seed is not None:
        fingerprint = f"random:{model_name}:seed{seed}"
    else:
        raise ArgumentError(
            f"no weights for {model_name!r}: pass pretrained= (an open_clip tag, see "
            f"open_clip.list_pretrained_tags_by_model({model_name!r})) or checkpoint= (a local file). "
            "For a tiny random model use the 'tiny' preset."
        )
    for k in _PREPROCESS_KEYS:
        if tag_cfg.get(k) is not None:
            overrides.setdefault(k, tag_cfg[k])
    # create_model_and_transforms takes these four as image_* arguments; fill_color (padding of
    # resize_mode "longest") is applied to the transform after creation
    kwargs: dict[str, Any] = {f"image_{k}": v for k, v in overrides.items() if k != "fill_color"}
    if is_hub:
        # open_clip only logs a warning and returns random weights when a hub repo or folder has
        # a config but no weights; this makes it raise instead
        kwargs["require_pretrained"] = True
    if tag_cfg:
        model_qg = bool((open_clip.get_model_config(oc_name) or {}).get("quick_gelu", False))
        if bool(tag_cfg.get("quick_gelu", False)) != model_qg:
            if tag_cfg.get("quick_gelu") and not model_qg:
                # e.g. ViT-L-14 with the OpenAI weights, trained with QuickGELU: the weights are
                # resolved to a file here, so open_clip never sees the tag and would build GELU
                kwargs["force_quick_gelu"] = True
                info["quick_gelu"] = "forced (the weights' activation)"
                if not hashed:  # embeddings cached with GELU are not reused (a file's digest below covers it)
                    fingerprint = f"open_clip:{model_name}:{pretrained}:quickgelu"
            else:
                warnings.warn(
                    f"pretrained={pretrained or preprocess_tag!r} was trained with quick_gelu=False but {model_name!r} "
                    "uses QuickGELU; drop '-quickgelu' from the model name for exact embeddings.",
                    UserWarning,
                    stacklevel=3,
                )

    hub = hub_cache_dir(cache_dir)
    try:
        if seed is not None and weights is None and not is_hub:
            with torch.random.fork_rng(devices=[]), quiet_open_clip(random_init=True), float32_default():
                torch.manual_seed(seed)
                model, _, preprocess = open_clip.create_model_and_transforms(
                    oc_name, pretrained=None, precision=_PRECISION[dt], device="cpu", **kwargs
                )
            model = model.to(dev)
        else:  # the random initialisation the weights replace leaves the caller's torch RNG as it was
            with torch.random.fork_rng(devices=[]), quiet_open_clip(), float32_default():
                model, _, preprocess = open_clip.create_model_and_transforms(
                    oc_name, pretrained=weights, precision=_PRECISION[dt], device=dev,
                    cache_dir=hub, weights_only=True, **kwargs,
                )  # fmt: skip
    except LatentlabError:
        raise
    except Exception as exc:
        if from_an_import(exc):  # a package open_clip needs (safetensors, torchvision, ...) is missing or broken:
            raise  # its own error, not "the file does not match this architecture, or is corrupt"
        if is_hub and "Required pretrained weights" in str(exc):
            raise ModelNotAvailableError(
                f"open_clip found the config of {model_name!r} but no weights file to load (it would have built the "
                f"model with random weights): {str(exc).strip().rstrip('.')}. Fix: "
                + (f"download the weights, e.g. `hf download {identifier}`." if schema == "hf-hub"
                   else "put the weights file (open_clip_model.safetensors) in that folder.")
            ) from exc  # fmt: skip
        where = f"weights {weights!r}" if weights else f"model {model_name!r}"
        if weights and not is_hub:
            fix = "the file does not match this architecture, or is corrupt: check model= and checkpoint="
        elif schema == "local-dir" or (is_hub and "state_dict" in str(exc)):
            # the files are there (checked above): the weights do not fit the config beside them
            fix = (
                "the weights do not match the open_clip_config.json beside them (a config of another model, "
                "edited, or a corrupt weights file): put the config the weights were saved with next to them"
            )
        else:
            fix = "check the model name, and that its files are downloaded (run once online)"
        raise ModelNotAvailableError(f"open_clip could not create {where}: {type(exc).__name__}: {exc}. Fix: {fix}.") from exc
    # open_clip builds in torch's default dtype what its precision does not cast (all of "fp32"; the norms and
    # embeddings of "fp16"/"bf16"): float64 after set_default_dtype, whose images then failed with a raw
    # "expected scalar type Float but found Double" (fp32) or "mixed dtype (CPU)" (fp16/bf16): float32, as by default
    for t in (*model.parameters(), *model.buffers()):
        if t.is_floating_point() and t.dtype not in (dt, torch.float32):
            t.data = t.data.float()
    if "fill_color" in overrides:
        pp = {**open_clip.get_model_preprocess_cfg(model), "fill_color": overrides["fill_color"]}
        open_clip.set_model_preprocess_cfg(model, pp)
        preprocess = open_clip.image_transform(
            pp["size"], is_train=False, mean=pp["mean"], std=pp["std"], resize_mode=pp["resize_mode"],
            interpolation=pp["interpolation"], fill_color=pp["fill_color"],
        )  # fmt: skip
    if schema == "hf-hub":
        # the content of the files open_clip just loaded (the snapshot refs/main names now, which its
        # download moved to the newest when online), not the repo's name: the repo's weights change
        # with its revisions, and cached embeddings of the old weights must not be returned
        files = _hub_loaded_files(identifier, cache_dir)
        if files is None:  # pragma: no cover - open_clip found them a moment ago
            fingerprint = ""  # the Encoder hashes the model itself on first use
        else:
            hashed = files
            stats = _stat_all(hashed)
            fingerprint = f"open_clip:{model_name}:{_files_sha256(files, hub_blobs=True)}"
            commit = files[0].parent.name
            if re.fullmatch(r"[0-9a-f]{40}", commit):
                info["hub_commit"] = commit
    if _stat_all(hashed) != stats:
        raise ModelNotAvailableError(
            f"{', '.join(str(p) for p in hashed)} changed while it was being loaded (a training run still writing it?); "
            "the weights in memory may not be the ones hashed for the embedding cache. Load it again once it is written."
        )
    if add_config_digest:
        fingerprint = f"{fingerprint}:cfg-{_config_digest(open_clip, oc_name, model, kwargs.get('force_quick_gelu', False))}"
        if tag_cfg and preprocess_tag is not None:
            fingerprint += f":{preprocess_tag}"
    try:
        with quiet_open_clip():
            tokenizer = open_clip.get_tokenizer(oc_name, cache_dir=hub)
    except Exception as exc:
        if from_an_import(exc):  # (transformers or tokenizers missing or broken: not "run once with internet access")
            raise
        raise ModelNotAvailableError(
            f"the tokenizer of open_clip model {model_name!r} could not be loaded ({type(exc).__name__}: {exc}). "
            "Its files may need downloading: run once with internet access."
        ) from exc
    return {"model": model, "preprocess": preprocess, "tokenizer": tokenizer, "info": info, "fingerprint": fingerprint}


_F32_LOCK = threading.Lock()
_f32_blocks: list[torch.dtype] = []  # the default dtype to restore, while float32_default blocks run (any thread)


@contextlib.contextmanager
def float32_default() -> Iterator[None]:
    """Run the block with torch's default dtype float32, the caller's restored after it. open_clip
    and diffusers build their models in the default dtype: under ``torch.set_default_dtype(
    torch.bfloat16)`` a checkpoint was loaded into bfloat16 weights (rounded before latentlab's
    ``.float()``), and the tiny presets drew other random weights than their fingerprint
    (``tiny-seed0``) names. Nothing changes where the default is float32 already; where it is
    not, the setting is process-wide, so another thread sees float32 while the block runs. Blocks
    running at once in several threads restore the caller's default when the last one ends (the
    first to end restored it under the others, whose pictures were then preprocessed in it)."""
    with _F32_LOCK:
        found = torch.get_default_dtype()
        if _f32_blocks:  # another thread's block runs: the caller's default is restored by the last to end
            _f32_blocks.append(_f32_blocks[0])
        elif found != torch.float32:
            _f32_blocks.append(found)
        # (also under another block: a loader in it sets its own for a while, transformers' and diffusers'
        # torch_dtype=, or the user's thread did; this block then ran in that dtype)
        if found != torch.float32:
            torch.set_default_dtype(torch.float32)
        counted = bool(_f32_blocks)
    try:
        yield
    finally:
        if counted:
            with _F32_LOCK:
                old = _f32_blocks.pop()
                if not _f32_blocks:
                    torch.set_default_dtype(old)


class quiet_open_clip:
    """While building a model, drop open_clip's progress notes (its INFO records: "Loaded
    built-in ... config", "Instantiating model architecture", ...), which it logs on the root
    logger, so a user's ``logging.basicConfig(level=INFO)`` saw ten of them per model; with
    ``random_init=True`` also its "initialized randomly" warning (random weights are intended
    there). Only open_clip's records are dropped, and the root logger's level is left alone."""

    def __init__(self, *, random_init: bool = False) -> None:
        self.random_init = random_init

    def filter(self, record: logging.LogRecord) -> bool:
        import open_clip

        if not record.pathname.startswith(os.path.dirname(open_clip.__file__)):
            return True
        if self.random_init and "initialized randomly" in str(record.msg):
            return False
        return record.levelno >= logging.WARNING

    def __enter__(self) -> None:
        logging.getLogger().addFilter(self.filter)

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeFilter(self.filter)


def _file_stat(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime in ns) of a file, what tells it rewritten or replaced since (None: gone)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _stat_all(paths: Sequence[Path]) -> list[tuple[int, int, int] | None]:
    return [_file_stat(p) for p in paths]


def _config_digest(open_clip: Any, oc_name: str, model: torch.nn.Module, force_quick_gelu: bool) -> str:
    """16 hex digits of sha256 over what, beside the weights, sets a model's embeddings: its
    open_clip name and resolved config (architecture, activation, tokenizer), a forced QuickGELU and
    the preprocessing its transform applies (size, mean, std, interpolation, resize mode, fill)."""
    payload = {
        "name": oc_name,  # open_clip picks some tokenizers by name
        "model_cfg": open_clip.get_model_config(oc_name),
        "force_quick_gelu": bool(force_quick_gelu),
        "preprocess": dict(open_clip.get_model_preprocess_cfg(model)),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _check_hub_model_cached(repo: str, cache_dir: str | os.PathLike[str] | None) -> None:
    """Offline: ``hf-hub:repo``'s config and one of its weights files must be in the cache."""
    from huggingface_hub import hf_hub_download

    hub = hub_cache_dir(cache_dir)
    where = f"the cache {hub}"

    def cached(filename: str) -> bool:
        try:
            hf_hub_download(repo, filename, cache_dir=hub, local_files_only=True)
            return True
        except Exception:
            return False

    if not cached("open_clip_config.json"):
        raise ModelNotAvailableError(
            f"open_clip model 'hf-hub:{repo}' is not in {where} and offline mode is on (HF_HUB_OFFLINE=1). "
            f"Run once with internet access, or `hf download {repo}`."
        )
    weights = _hub_weights_names()
    if not any(cached(fn) for fn in weights):
        raise ModelNotAvailableError(
            f"open_clip model 'hf-hub:{repo}': {where} holds its open_clip_config.json but no weights file "
            f"({' or '.join(weights)}), and offline mode is on (HF_HUB_OFFLINE=1); open_clip would build the model "
            f"with random weights. Run once with internet access, or `hf download {repo} {weights[0]}`."
        )


def _hub_weights_names() -> list[str]:
    """The weights files open_clip's hub loader tries, in its order (safetensors first, where it can read them)."""
    from open_clip import pretrained as oc_pretrained

    safe = list(oc_pretrained._get_safe_alternatives(oc_pretrained.HF_WEIGHTS_NAME))
    return [*(safe if getattr(oc_pretrained, "_has_safetensors", True) else []), oc_pretrained.HF_WEIGHTS_NAME]


def _hub_loaded_files(repo: str, cache_dir: str | os.PathLike[str] | None) -> list[Path] | None:
    """The files of ``hf-hub:repo`` that open_clip loads, as the Hugging Face cache resolves them
    now (no network): ``open_clip_config.json`` and the first weights file it tries that is
    there, both in the snapshot ``refs/main`` names; ``None`` if either is missing."""
    from huggingface_hub import hf_hub_download

    hub = hub_cache_dir(cache_dir)

    def cached(filename: str) -> Path | None:
        try:
            return Path(hf_hub_download(repo, filename, cache_dir=hub, local_files_only=True))
        except Exception:
            return None

    config = cached("open_clip_config.json")
    weights = next((p for p in map(cached, _hub_weights_names()) if p is not None), None)
    return [config, weights] if config is not None and weights is not None else None


def _check_local_dir(model_name: str, folder_text: str) -> tuple[Path, list[Path]]:
    """The folder of ``local-dir:folder`` and the files it is loaded from (its config, then the
    weights file open_clip picks); a clear error if it lacks either."""
    folder = user_path(folder_text)
    if not folder.is_dir():
        raise ModelNotAvailableError(
            f"model={model_name!r}: folder {str(folder)!r} not found. Pass local-dir: a folder holding "
            "open_clip_config.json and the weights (e.g. one made by `hf download ORG/REPO --local-dir FOLDER`)."
        )
    cfg = folder / "open_clip_config.json"
    if not cfg.is_file():
        raise ModelNotAvailableError(
            f"model={model_name!r}: folder {str(folder)!r} has no open_clip_config.json; it needs the config and "
            "the weights of an open_clip hub repo (`hf download ORG/REPO --local-dir FOLDER`)."
        )
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SpecError(f"{str(cfg)!r} is not a readable JSON file ({exc}); fix or replace it.") from exc
    if not isinstance(data, dict) or not isinstance(data.get("model_cfg"), dict):
        raise SpecError(
            f"{str(cfg)!r} lacks \"model_cfg\": a local-dir: config has open_clip's hub format "
            '{"model_cfg": {...}, "preprocess_cfg": {...}}. For a plain model config pass config= and checkpoint= instead.'
        )
    # open_clip loads the first of these (safetensors preferred); any of them is weights
    weights = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".pth") and p.is_file())
    if not weights:
        raise ModelNotAvailableError(
            f"model={model_name!r}: folder {str(folder)!r} holds open_clip_config.json but no weights file "
            "(open_clip_model.safetensors, open_clip_pytorch_model.bin, ...); open_clip would build the model with "
            "random weights. Put the weights file there, or pass checkpoint= with an architecture name."
        )
    try:  # the file open_clip will load (a hub folder may hold the same weights in two formats, GBs each)
        from open_clip.factory import _find_checkpoint_in_dir

        chosen = _find_checkpoint_in_dir(folder)
        weights = [Path(chosen)] if chosen else weights
    except ImportError:  # another open_clip: hash every candidate
        pass
    return folder, [cfg, *weights]


def _files_sha256(paths: Sequence[Path], *, hub_blobs: bool = False) -> str:
    """A digest of the files' names and contents. ``hub_blobs``: a file of a Hugging Face cache
    snapshot that links to a blob named by 64 hex digits is a Git LFS file, whose blob name is
    the sha256 of its content, so that name is used instead of reading gigabytes again at
    every load (the digest is the same)."""
    h = hashlib.sha256()
    for p in paths:
        blob = Path(os.path.realpath(p)).name if hub_blobs else ""
        digest = f"sha256:{blob}" if re.fullmatch(r"[0-9a-f]{64}", blob) else _file_sha256(p)
        h.update(p.name.encode("utf-8") + b"\0" + digest.encode("ascii") + b"\0")
    return "sha256:" + h.hexdigest()


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _settings_text(obj: Any) -> str:
    """What a preprocess transform or tokenizer does, as text the same in every process: its
    class, its repr (a torchvision ``Compose`` lists its steps and their settings) with object
    addresses left out, and its plain scalar attributes (a tokenizer's context length, ...)."""
    parts = [f"{type(obj).__module__}.{type(obj).__qualname__}", _ADDRESS.sub("", repr(obj))]
    code = _function_text(obj)
    if code:  # (only then: the text, and so the fingerprint, of every other preprocess or tokenizer stays as it was)
        parts.append(code)
    attrs = getattr(obj, "__dict__", None)
    if isinstance(attrs, dict):
        parts += [f"{k}={v!r}" for k, v in sorted(attrs.items()) if v is None or isinstance(v, (bool, int, float, str))]
    return "\n".join(parts)


def _function_text(obj: Any) -> str:
    """A plain function's code, defaults and captured plain values, or a partial's function and
    arguments, as text: two tokenizer functions (or lambdas) that differ in what they do, or in
    a context length they were given, read differently (their reprs differed only by address)."""
    if isinstance(obj, functools.partial):
        return (f"partial {_function_text(obj.func)} args={_ADDRESS.sub('', repr(obj.args))} "
                f"keywords={_ADDRESS.sub('', repr(sorted(obj.keywords.items())))}")  # fmt: skip
    code = getattr(obj, "__code__", None)
    if not isinstance(code, types.CodeType):
        return ""
    cells = []
    for cell in getattr(obj, "__closure__", None) or ():
        try:
            v = cell.cell_contents
        except ValueError:  # a cell not yet filled
            continue
        cells.append(repr(v) if v is None or isinstance(v, (bool, int, float, str, tuple)) else type(v).__qualname__)
    return (f"code {code.co_code.hex()} consts {_ADDRESS.sub('', repr(code.co_consts))} names {code.co_names} "
            f"defaults {_ADDRESS.sub('', repr(getattr(obj, '__defaults__', None)))} "
            f"kwdefaults {_ADDRESS.sub('', repr(getattr(obj, '__kwdefaults__', None)))} closure {cells}")


def _content_fingerprint(model: torch.nn.Module, preprocess: Any, tokenizer: Any) -> str:
    """``"model:sha256:<hex>"`` of a model's state dict (names, dtypes, shapes and bytes), its
    module structure (what its repr lists: layers, activations, norms) and its preprocess and
    tokenizer settings: the fingerprint of an :class:`Encoder` built without one."""
    h = hashlib.sha256()
    for key, t in sorted(model.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{key}\0{t.dtype}\0{tuple(t.shape)}\0".encode("utf-8"))
        try:
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        except (RuntimeError, TypeError):  # a tensor with no plain byte view (quantized, ...)
            h.update(repr(t.tolist()).encode("utf-8"))
    h.update(b"model\0" + _ADDRESS.sub("", repr(model)).encode("utf-8"))
    h.update(b"\0preprocess\0" + _settings_text(preprocess).encode("utf-8"))
    h.update(b"\0tokenizer\0" + _settings_text(tokenizer).encode("utf-8"))
    return "model:sha256:" + h.hexdigest()


# ======================================================================================
# preset builders
# ======================================================================================


def _reject_unknown(kind: str, kw: dict[str, Any], accepted: str) -> None:
    if kw:
        raise ArgumentError(
            f"unexpected argument(s) for an {kind!r} encoder: {', '.join(sorted(kw))}. Accepted: {accepted}."
        )


def _check_dim(enc: Encoder, preset: Preset) -> Encoder:
    if enc.dim != preset.dim:
        raise SpecError(
            f"preset {preset.name!r} declares dim={preset.dim} but its encoder produces {enc.dim}-d embeddings; "
            "fix the preset's dim or its encoder model."
        )
    return enc


@register_encoder_builder("open_clip")
def _build_open_clip(
    preset: Preset,
    *,
    model: str,
    pretrained: str | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str = torch.float32,
    cache: EmbeddingCache | str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    **kw: Any,
) -> Encoder:
    """Encoder of a preset whose encoder spec is ``{"kind": "open_clip", "model": ..., ...}``.

    ``config``/``checkpoint`` may be relative to the latentlab package (bundled files). A
    ``checkpoint=`` given to :func:`~latentlab.presets.create_encoder` for a preset that names
    a ``pretrained`` tag replaces the tag's weights (a local copy, or a fine-tune) and keeps
    the tag's preprocessing and activation (QuickGELU or not).
    """
    _reject_unknown("open_clip", kw, "device, dtype, cache, cache_dir (and the preset's model/pretrained/checkpoint/config)")
    preprocess_tag = None
    spec = preset.encoder
    if checkpoint is not None and "checkpoint" not in spec and pretrained is not None and pretrained == spec.get("pretrained"):
        # create_encoder merges the preset's arguments with the user's, so the preset's tag
        # arrives here beside the user's checkpoint: the file gives the weights, the tag the rest
        preprocess_tag, pretrained = pretrained, None
    loaded = _load_open_clip(
        model, pretrained=pretrained, checkpoint=checkpoint, config=config, device=device, dtype=dtype,
        cache_dir=cache_dir, preprocess_tag=preprocess_tag,
    )  # fmt: skip
    enc = Encoder(
        loaded["model"], loaded["preprocess"], loaded["tokenizer"], name=preset.name, space=preset.space,
        device=device, dtype=dtype, fingerprint=loaded["fingerprint"], info=loaded["info"], cache=cache,
    )  # fmt: skip
    return _check_dim(enc, preset)


def _tiny_config(dim: int) -> dict[str, Any]:
    return {
        "embed_dim": int(dim),
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    }


@register_encoder_builder("open_clip_tiny")
def _build_tiny(
    preset: Preset,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str = torch.float32,
    cache: EmbeddingCache | str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,  # accepted for symmetry; nothing is downloaded
    **kw: Any,
) -> Encoder:
    """A tiny random open_clip ViT (image 32 px, patch 8, width 32, 2+2 layers, embed ``preset.dim``).

    Built in-process, no download; the same ``seed`` gives identical weights, and the global
    RNG is left untouched. Its embeddings carry no meaning: for tests and smoke runs.

    >>> from latentlab.presets import create_encoder
    >>> a, b = create_encoder("tiny"), create_encoder("tiny")
    >>> bool((a.encode_text("x") == b.encode_text("x")).all())
    True
    """
    _reject_unknown("open_clip_tiny", kw, "seed, device, dtype, cache")
    seed = check_seed(seed)  # (an integer past 2**64 raised torch's own error)
    dim = int(preset.dim)
    model_name = f"latentlab-tiny-{dim}"
    _add_model_config(model_name, _tiny_config(dim))
    loaded = _load_open_clip(model_name, device=device, dtype=dtype, seed=int(seed))
    fingerprint = f"tiny-seed{seed}" if dim == 32 else f"tiny{dim}-seed{seed}"
    info = {"model": model_name, "pretrained": None, "checkpoint": None, "seed": int(seed)}
    enc = Encoder(
        loaded["model"], loaded["preprocess"], loaded["tokenizer"], name=preset.name, space=preset.space,
        device=device, dtype=dtype, fingerprint=fingerprint, info=info, cache=cache,
    )  # fmt: skip
    return _check_dim(enc, preset)
