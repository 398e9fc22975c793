"""Notebook views: frames, contact sheets and videos inline, a frame scrubber, live previews.

Everything here returns plain objects with ``_repr_html_`` / ``_repr_png_`` (the protocol
Jupyter, VS Code and nbconvert all understand), so this module imports and works without
IPython; IPython and ipywidgets are imported only when a view is displayed.

* :func:`show` - one image, a contact sheet of frames, a video file or a render result.
* :func:`show_video` - frames (or a file) as an inline, looping video.
* :class:`Scrubber` / :func:`scrub` - a slider over a trajectory that renders the frame
  under it on demand, with an in-memory cache; without ipywidgets it shows a static
  contact sheet and says how to get the slider.
* :class:`LivePreview` - a render callback that shows the latest frame while
  :func:`latentlab.render` runs (beside its tqdm progress bar).

Tiny frames (the ``mini`` model renders 64 px) are scaled up by an integer factor with
nearest-neighbour sampling (``image-rendering: pixelated``), so pixels stay sharp. Big inputs
do not balloon a saved notebook: :func:`show` lays out at most :data:`SHOW_MAX_FRAMES` frames
unless told ``max_frames``, shows pictures larger than :data:`SHOW_MAX_SIDE` px downscaled, and
takes ``max_embed_mb`` as :func:`show_video` does.

>>> import numpy as np
>>> view = show(np.zeros((4, 16, 16, 3), np.uint8), columns=4)
>>> view.array.shape, view._repr_png_()[:4]
((20, 74, 3), b'\\x89PNG')
"""

from __future__ import annotations

import base64
import html
import io
import numbers
import os
import tempfile
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .errors import ArgumentError, check_int, check_number, check_seeds_fit, is_finite_real, user_path

__all__ = [
    "ImageView",
    "VideoView",
    "show",
    "show_video",
    "Scrubber",
    "scrub",
    "LivePreview",
    "display",
    "png_bytes",
    "WIDGETS_HINT",
]

WIDGETS_HINT = "pip install ipywidgets (or latentlab[notebook])"
"""How to get the interactive scrubber, quoted by the static fallback."""

#: what the text form of a view (plain Python, a terminal, a log) adds before saying what to do there
_SHOWN_INLINE = ": shown inline by a notebook (put it last in a cell, or display() it)"

_VIDEO_SUFFIXES = {".mp4": "video/mp4", ".webm": "video/webm", ".gif": "image/gif", ".webp": "image/webp"}
_PIXELATED = "image-rendering: crisp-edges; image-rendering: pixelated"

SHOW_MAX_FRAMES = 64
"""Frames :func:`show` lays out when not told ``max_frames``: more are shown as this many,
evenly spaced, and the caption says so (1,000 frames of 64 px embedded about 23 MB)."""

SHOW_MAX_SIDE = 2048
"""The longest side, in pixels, of the picture a view embeds: a larger picture is shown
downscaled to it (its ``array`` and the file are untouched; a 4000 x 3000 photo embedded
about 84 MB), and the tiles of a contact sheet are shrunk so that the sheet fits it."""


# ----------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------
def display(*objs: Any) -> None:
    """``IPython.display.display(*objs)`` when IPython is there; otherwise print each object."""
    try:
        from IPython.display import display as _display
    except ImportError:  # plain Python: the text form is all we can show
        for o in objs:
            print(o)
        return
    _display(*objs)


def png_bytes(image: Any) -> bytes:
    """Encode ``image``, one uint8 ``(H, W, 3)`` image (or float in [0, 1]), as PNG bytes."""
    from PIL import Image

    from .video import _as_image

    buf = io.BytesIO()
    Image.fromarray(_as_image(image, "image")).save(buf, format="PNG")
    return buf.getvalue()


def _is_real(value: Any) -> bool:
    """A finite real number, numpy scalars included (not a bool)."""
    return is_finite_real(value)


def _is_integer(value: Any, minimum: int) -> bool:
    """An integer (numpy integers included, not a bool) of at least ``minimum``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)) and value >= minimum


def _check_scale(scale: Any) -> int | None:
    if scale is None:
        return None
    if not _is_integer(scale, 1):
        raise ArgumentError(f"scale must be an integer >= 1 (display zoom) or None for automatic, got {scale!r}.")
    return int(scale)


def _auto_scale(tile: int, width: int, *, target: int = 128, max_width: int = 1024) -> int:
    """Integer zoom so a tile of side ``tile`` px shows at about ``target`` px, without the
    whole picture (``width`` px wide) passing ``max_width``."""
    s = max(1, target // max(tile, 1))
    return max(1, min(s, max_width // max(width, 1)))


def _video_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of the frames of a video or animated image file, read from its header."""
    try:
        if path.suffix.lower() in (".gif", ".webp"):
            from PIL import Image

            with Image.open(path) as im:
                return int(im.size[1]), int(im.size[0])
        import warnings

        import imageio_ffmpeg

        from .video import _ffmpeg_path

        with warnings.catch_warnings():  # the pipes of a generator closed early are left to the collector
            warnings.simplefilter("ignore", ResourceWarning)
            gen = imageio_ffmpeg.read_frames(_ffmpeg_path(path))
            try:
                w, h = next(gen)["size"]
            finally:
                gen.close()
        return int(h), int(w)
    except Exception as e:  # unreadable or corrupt file
        raise ArgumentError(f"cannot read {str(path)!r} as a video to size it: {e}. Fix: check the file, or pass scale=.") from None


def _check_max_embed_mb(max_embed_mb: Any) -> float:
    if isinstance(max_embed_mb, (bool, np.bool_)) or not isinstance(max_embed_mb, numbers.Real) \
            or not max_embed_mb >= 0:  # (not >= 0: NaN too)
        raise ArgumentError(
            f"max_embed_mb must be a number of MB >= 0 (float('inf'): no limit), got {max_embed_mb!r}. "
            "Fix: e.g. max_embed_mb=20."
        )
    return max_embed_mb


def _fit_side(frame: np.ndarray, side: int) -> np.ndarray:
    """``frame`` downscaled (Lanczos, keeping its shape) so its longest side is at most ``side``."""
    from .video import _lanczos

    h, w = frame.shape[:2]
    if max(h, w) <= side:
        return frame
    s = side / max(h, w)
    return _lanczos(frame, max(1, min(side, round(w * s))), max(1, min(side, round(h * s))))


def _check_caption(caption: Any) -> str | None:
    """A view's caption: a str or None (a number raised a raw AttributeError only when shown)."""
    if caption is not None and not isinstance(caption, str):
        raise ArgumentError(f"caption must be a str or None, got {caption!r}. Fix: e.g. caption=str(value).")
    return caption


def _img_tag(src: str, width: int, alt: str = "") -> str:
    return f'<img src="{src}" width="{width}" alt="{html.escape(alt)}" style="{_PIXELATED}"/>'


def _caption(text: str | None) -> str:
    return f'<div style="font-size: smaller; color: #555">{html.escape(text)}</div>' if text else ""


# ----------------------------------------------------------------------------------
# views
# ----------------------------------------------------------------------------------
class ImageView:
    """One image for inline display (``_repr_html_``, scaled; ``_repr_png_``, native size up to
    :data:`SHOW_MAX_SIDE`).

    A picture whose longest side is over :data:`SHOW_MAX_SIDE` is shown downscaled to it
    (and its caption says so); ``array`` and :meth:`save` keep the native size. The PNG is
    encoded once, when first displayed, and kept (a notebook stores it twice, base64: in the
    HTML form, which carries the zoom and caption, and as the PNG form other front ends use).

    Attributes: ``array`` (uint8 ``(H, W, 3)``, the view's own copy, read-only: ``.copy()`` it to
    draw on it, and show that), ``shown`` (the picture embedded: ``array``,
    or its downscaled copy), ``scale`` (display zoom), ``caption``.
    ``image``: the picture (as :func:`show` takes one); ``tile``: the side, in pixels, that
    the automatic ``scale`` is chosen for (a contact sheet's tile; default the image's larger
    side).
    """

    def __init__(self, image: Any, *, scale: int | None = None, caption: str | None = None, tile: int | None = None):
        from .video import _as_image, _to_numpy

        a = _to_numpy(image)
        if a.ndim == 3 and a.shape[2] == 4:  # alpha on white, as the encoders and load_image read it
            from .encoders import _array_to_pil

            image = _array_to_pil(a, "image", str(a.shape))
        self.array = _as_image(image, "image")
        if np.may_share_memory(self.array, a):  # the caller's own pixels: edited later, the view showed its stale PNG
            self.array = self.array.copy()
        self.array.flags.writeable = False  # (the PNG is encoded once; the view's array matches it)
        tile = None if tile is None else check_int(tile, "tile", minimum=1)  # 'a' raised a raw TypeError
        scale = _check_scale(scale)
        self.caption = _check_caption(caption)
        # (a 4000 x 3000 photo was embedded at full size, twice: about 84 MB in the notebook)
        self.shown = _fit_side(self.array, SHOW_MAX_SIDE)
        self.shown.flags.writeable = False  # (its downscaled copy too)
        h, w = self.shown.shape[:2]
        if self.shown is not self.array and tile is not None:
            tile = max(1, round(tile * w / self.array.shape[1]))
        self.scale = scale or _auto_scale(tile or max(h, w), w)
        self._png: bytes | None = None

    def _repr_png_(self) -> bytes:
        if self._png is None:  # encoded once: displaying a view encoded it for each of its two forms
            self._png = png_bytes(self.shown)
        return self._png

    def _note(self) -> str | None:
        """The caption, and a word when the picture is shown downscaled."""
        if self.shown is self.array:
            return self.caption
        (h, w), (H, W) = self.shown.shape[:2], self.array.shape[:2]
        note = f"shown at {w} x {h} of {W} x {H} px; .save(path) writes it at full size"
        return f"{self.caption} ({note})" if self.caption else note

    def _repr_html_(self) -> str:
        src = "data:image/png;base64," + base64.b64encode(self._repr_png_()).decode("ascii")
        w = self.shown.shape[1] * self.scale
        note = self._note()
        return f"<div>{_img_tag(src, w, note or '')}{_caption(note)}</div>"

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the image (native size) to ``path`` (format from the suffix)."""
        from .video import save_image

        return save_image(self.array, path)

    def __repr__(self) -> str:
        h, w = self.array.shape[:2]
        return (f"ImageView({h}x{w} px, scale={self.scale}{f', caption={self.caption!r}' if self.caption else ''})"
                f"{_SHOWN_INLINE}; here, .save('view.png') writes it")  # (a script showed no more than its size)


class VideoView:
    """A video for inline display: an animated GIF/WebP in an ``<img>``, or an mp4 in a
    looping ``<video>``; the file's bytes are embedded in the notebook (base64).

    Build it with :func:`show_video`. Attributes: ``data`` (bytes, or ``None`` for a large
    file shown by reference), ``mimetype``, ``width`` (display width in px), ``path``,
    ``caption`` (text under the video, or ``None``).
    """

    def __init__(self, data: bytes | None, mimetype: str, *, width: int | None = None,
                 path: Path | None = None, caption: str | None = None):
        self.data = data
        self.mimetype = mimetype
        self.width = width
        self.path = path
        self.caption = _check_caption(caption)

    def _src(self) -> str:
        if self.data is None:  # a URL: '#', '?', '%' and spaces in a file's name are escaped (it did not play)
            from urllib.parse import quote

            return html.escape(quote(Path(self.path).as_posix()) if self.path is not None else "")
        return f"data:{self.mimetype};base64," + base64.b64encode(self.data).decode("ascii")

    def _repr_html_(self) -> str:
        width = f' width="{self.width}"' if self.width else ""
        if self.mimetype.startswith("image/"):
            body = _img_tag(self._src(), self.width or 0, self.caption or "") if self.width else \
                f'<img src="{self._src()}" style="{_PIXELATED}"/>'
        else:
            body = (
                f'<video{width} controls autoplay loop muted playsinline style="{_PIXELATED}">'
                f'<source src="{self._src()}" type="{self.mimetype}"/>your browser cannot play {self.mimetype}</video>'
            )
        return f"<div>{body}{_caption(self.caption)}</div>"

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the embedded video to ``path``, whose suffix must name the view's format
        (``.gif``, ``.webp``, ``.mp4`` or ``.webm``): the bytes are written as they are, atomically,
        and missing folders are created, as :func:`latentlab.write_video` does."""
        from .video import _atomic_write, _prepare_target

        if self.data is None:
            raise ArgumentError(f"this view shows {str(self.path)!r} by reference; copy that file instead.")
        if not isinstance(path, (str, os.PathLike)) or str(path) == "":
            raise ArgumentError(f"path={path!r}; expected a file path (str or pathlib.Path).")
        p = Path(path)
        fmt = self.mimetype.split("/")[-1]
        if _VIDEO_SUFFIXES.get(p.suffix.lower()) != self.mimetype:
            raise ArgumentError(
                f"path {str(p)!r} has the suffix {p.suffix or '(none)'!r} but this view holds a {fmt} video. "
                f"Fix: save it as {str(p.with_suffix('.' + fmt))!r}, or write the frames in that format with "
                f"ll.write_video(frames, {str(p)!r}) (or show_video(frames, format=...))."
            )
        data = self.data
        return _atomic_write(_prepare_target(p), lambda tmp: tmp.write_bytes(data))

    def __repr__(self) -> str:
        size = f"{len(self.data)} bytes" if self.data is not None else f"file {str(self.path)!r}"
        fmt = self.mimetype.split("/")[-1]
        here = f".save('video.{fmt}') writes it" if self.data is not None else "open that file"
        return f"VideoView({self.mimetype}, {size}){_SHOWN_INLINE}; here, {here}"


def show_video(
    frames: Any,
    *,
    fps: float | None = None,
    format: str | None = None,
    scale: int | None = None,
    pingpong: bool = False,
    hold_first: int = 0,
    hold_last: int = 0,
    caption: str | None = None,
    max_embed_mb: float = 20.0,
) -> VideoView:
    """Frames (or a video file) as an inline, looping video.

    Args:
        frames: uint8 ``(T, H, W, 3)`` frames (or a list of images or image file paths, all of
            one size), or the path of an mp4 / webm / gif / webp file
            (shown as it is: ``fps``, ``format``, ``pingpong`` and the holds apply to frames
            only and are refused with a path; read it with :func:`latentlab.read_video` to
            change them), or a :class:`~latentlab.RenderResult`: its video file, or, with
            ``fps``, ``format``, ``pingpong`` or a hold, its frames (at its spec's fps unless
            ``fps`` is given).
        fps: frames per second (frames only; default 12).
        format: ``"gif"``, ``"webp"`` or ``"mp4"`` (a leading dot is dropped, as in
            :func:`latentlab.write_video`); by default gif for frames up to 256 px (sharp
            when scaled up), or lossless webp (as sharp) where ``fps`` is above the 50 a gif can
            play, up to the 90.9 (1000 / 11) a webp plays in a browser, and mp4 above 256 px or
            90.9 fps. A gif asked for explicitly is refused above 50 fps, a webp above 90.9 fps
            (browsers play a frame of 10 ms or less for 100 ms).
        scale: integer display zoom (default: automatic, small frames are enlarged, a file's
            as well as frames').
        pingpong, hold_first, hold_last: frame order, see :func:`latentlab.video.sequence`.
        caption: text under the video.
        max_embed_mb: a number >= 0 (``float("inf")``: no limit). Files larger than this
            are shown by reference (their path), not embedded in the notebook; frames have no
            file to show by reference, so frames whose video is larger are refused: write them
            with :func:`latentlab.write_video` and show that file.

    >>> import numpy as np
    >>> v = show_video(np.zeros((3, 8, 8, 3), np.uint8), fps=4)
    >>> v.mimetype, v.data[:3]
    ('image/gif', b'GIF')
    """
    from .video import _GIF_MAX_FPS, _WEBP_BROWSER_MAX_FPS, _as_frames, _check_fps, write_video

    _check_max_embed_mb(max_embed_mb)
    _check_caption(caption)  # before the frames are encoded, not after
    from .jobs import RenderResult

    if isinstance(frames, RenderResult):  # (refused as "shape ()": what render_spec returns, shown as show() shows it)
        if fps is None and format is None and not (pingpong or hold_first or hold_last):
            frames = frames.video  # its video file, as it is
        else:  # its frames, made into a video with these settings (at the spec's fps unless fps is given)
            fps = frames.spec.fps if fps is None and getattr(frames.spec, "fps", None) is not None else fps
            frames = frames.frames
    if isinstance(frames, (str, os.PathLike)):
        from .video import _existing_file

        p = user_path(frames)
        if os.path.isdir(p):  # (not Path.is_dir: a raw OSError on a name over 255 bytes, said by _existing_file now)
            raise ArgumentError(
                f"video {str(p)!r} is a directory, not a video file. Fix: pass a file in it; a render folder's "
                "video is the <folder>.gif (or .mp4) next to it, or pass the RenderResult to show()."
            )
        p = _existing_file(p, "video")
        mime = _VIDEO_SUFFIXES.get(p.suffix.lower())
        if mime is None:
            raise ArgumentError(
                f"cannot show {str(p)!r} as a video: only .mp4, .webm, .gif and .webp files play inline. "
                "Fix: convert it, or show its frames: show_video(ll.read_video(path))."
            )
        # a file is shown as it is: the options that make a video from frames cannot apply
        given = [name for name, value in (("fps", fps), ("format", format)) if value is not None]
        given += [name for name, value in (("pingpong", pingpong), ("hold_first", hold_first), ("hold_last", hold_last)) if value]
        if given:
            raise ArgumentError(
                f"{', '.join(given)} apply to frames, not to a file, which is shown as it is ({str(p)!r}). "
                "Fix: leave them out, or pass the frames: show_video(ll.read_video(path), ...)."
            )
        zoom = _check_scale(scale)
        try:
            h, w = _video_size(p)
        except ArgumentError:  # a file ffmpeg cannot size may still play in the browser: shown at its own size
            width = None
        else:
            width = w * (zoom or _auto_scale(max(h, w), w, target=256, max_width=768))
        data = p.read_bytes() if p.stat().st_size <= max_embed_mb * 2**20 else None
        return VideoView(data, mime, width=width, path=p, caption=caption)
    fps = 12 if fps is None else fps
    arr = _as_frames(frames)
    h, w = arr.shape[1:3]
    quality = None
    if format is None or format == "":  # (not `not format`: format=0 or False was taken for the default)
        fmt = "gif" if max(h, w) <= 256 else "mp4"
        if fmt == "gif" and _check_fps(fps) > _GIF_MAX_FPS:  # too fast for a gif: webp, lossless as sharp
            # (and too fast for a browser's webp too: its frames of 10 ms or less played for 100 ms each)
            fmt, quality = ("webp", 100) if _check_fps(fps) <= _WEBP_BROWSER_MAX_FPS else ("mp4", None)
    elif isinstance(format, str):
        fmt = format.lower().lstrip(".")
    else:
        fmt = ""
    if fmt not in ("gif", "webp", "mp4"):
        raise ArgumentError(f"format must be 'gif', 'webp' or 'mp4', got {format!r}.")
    if fmt == "webp" and _check_fps(fps) > _WEBP_BROWSER_MAX_FPS:
        raise ArgumentError(
            f"fps={_check_fps(fps):g} is too fast for a webp shown in a browser: a webp stores whole milliseconds, so at "
            "this fps some of its frames are 10 ms or less, and browsers play such a frame for 100 ms (10 fps). Fix: use "
            "fps <= 90.9 (1000 / 11), "
            "or format='mp4' (or leave format out: mp4 is picked above it)."
        )
    zoom = _check_scale(scale) or _auto_scale(max(h, w), w, target=256, max_width=768)
    with tempfile.TemporaryDirectory() as tmp:
        out = write_video(
            arr, Path(tmp) / f"view.{fmt}", fps=fps, pingpong=pingpong, hold_first=hold_first, hold_last=hold_last,
            quality=quality,
        )
        data = out.read_bytes()
    if len(data) > max_embed_mb * 2**20:  # a file over the limit is shown by reference; frames have no file
        raise ArgumentError(
            f"the {fmt} of these frames is {len(data) / 2**20:.1f} MB, over max_embed_mb={max_embed_mb!r}, and frames "
            "have no file to show by reference. Fix: write_video(frames, path) and show_video(path) (shown by "
            "reference when over the limit), raise max_embed_mb, or show fewer or smaller frames."
        )
    mime = {"gif": "image/gif", "webp": "image/webp", "mp4": "video/mp4"}[fmt]
    return VideoView(data, mime, width=w * zoom, caption=caption)


def show(
    x: Any,
    *,
    labels: Sequence[Any] | None = None,
    columns: int | None = None,
    max_frames: int | None = None,
    scale: int | None = None,
    caption: str | None = None,
    max_embed_mb: float = 20.0,
) -> ImageView | VideoView:
    """An inline view of ``x``: put it last in a cell, or pass it to ``display``.

    ``x`` is one of:

    * one image, uint8 ``(H, W, 3)`` (or float in [0, 1]) -> :class:`ImageView`;
    * frames ``(T, H, W, 3)`` or a list of images (arrays, PIL images of any mode, or image
      file paths, all of one size) -> a contact sheet (:func:`latentlab.contact_sheet`;
      ``labels``, ``columns``, ``max_frames`` go to it). A label too long for its tile is
      drawn smaller (down to 8 px), then on two lines, then cut with an ellipsis (``…``),
      never silently clipped at the tile's edge;
    * a path: an image file -> :class:`ImageView`; an mp4/webm/gif/webp -> :class:`VideoView`
      (other videos, such as .mov, are refused: show their frames, ``show_video(ll.read_video(path))``);
    * a :class:`~latentlab.RenderResult` -> its video;
    * a result holding frames (``iterative_text_diff``'s, ``pca_probe``'s) -> its frames, each
      under its label (the cosine to the destination caption; the component count) unless
      ``labels`` are given.

    ``labels``, ``columns`` and ``max_frames`` lay out a contact sheet: with one image, a file
    or a render result they are refused, not ignored.

    Small pictures are scaled up by an integer ``scale`` (default: automatic). ``caption``:
    a line of text under the view.

    Big inputs do not balloon a saved notebook: without ``max_frames``, more than
    :data:`SHOW_MAX_FRAMES` frames are shown as that many, evenly spaced (first and last
    included; of a list of image files, only those are read), and the caption says so; a
    picture whose longest side is over :data:`SHOW_MAX_SIDE` px is shown downscaled to it (its file, and the view's ``array``,
    are untouched), and the tiles of a sheet that would be are shrunk to fit before its labels
    are drawn (or, where label strips would leave them tiny, the whole sheet is downscaled).
    ``max_embed_mb`` (a number >= 0, ``float("inf")``: no limit) has show_video's meaning: a
    video file larger than this is shown by reference, and a picture whose PNG is larger is
    refused (it has no file to show by reference; the notebook stores it about 2.7 times,
    base64 in the HTML and PNG forms).

    >>> import numpy as np
    >>> show(np.full((8, 8, 3), 200, np.uint8)).scale
    16
    """
    from .jobs import RenderResult
    from .video import contact_sheet, load_image

    _check_max_embed_mb(max_embed_mb)

    def sheet_options_only_for_frames(what: str, frames: str = "") -> None:
        # (they were dropped without a word for a file or a render result)
        given = [name for name, v in (("labels", labels), ("columns", columns), ("max_frames", max_frames)) if v is not None]
        if given:
            sheet = f", or show its frames as a contact sheet: ll.show({frames}, ...)" if frames else ""
            raise ArgumentError(
                f"{', '.join(given)} apply to frames (T, H, W, 3), not to {what}. "
                f"Fix: leave {'it' if len(given) == 1 else 'them'} out{sheet}."
            )

    if isinstance(x, RenderResult):
        sheet_options_only_for_frames("a render result, shown as its video", "result.frames")
        return show_video(x.video, scale=scale, caption=caption, max_embed_mb=max_embed_mb)
    from .trajectory import Trajectory

    if isinstance(x, Trajectory):  # numpy made it a 0-d object array: "shape ()" said nothing
        raise ArgumentError(
            f"x is a Trajectory ({len(x)} frames of embeddings), not pictures. Fix: render it first and show "
            "the frames, ll.show(dec.render(path)), or scrub through it with ll.scrub(path, dec)."
        )
    if not hasattr(x, "ndim") and isinstance(getattr(x, "frames", None), np.ndarray):
        # a result holding frames (iterative_text_diff's IterativeEdit, pca_probe's Probe): its frames,
        # under its own labels where it has them
        if labels is None and isinstance(getattr(x, "labels", None), list):
            labels = x.labels
        x = x.frames
    if isinstance(x, (str, os.PathLike)):
        from .video import _OTHER_VIDEO_SUFFIXES

        p = Path(x)
        # a video show_video cannot play (.mov, ...) is refused there, saying which play: not read as an image
        if p.suffix.lower() in (*_VIDEO_SUFFIXES, *_OTHER_VIDEO_SUFFIXES, ".mov", ".m4v"):
            sheet_options_only_for_frames(f"a video file ({str(p)!r})", "ll.read_video(path)")
            return show_video(p, scale=scale, caption=caption, max_embed_mb=max_embed_mb)
        sheet_options_only_for_frames(f"one image ({str(p)!r})")
        return _embeddable(ImageView(load_image(p), scale=scale, caption=caption), max_embed_mb)
    # (a generator was read as one image of 'shape ()'; _as_frames says to pass list(frames))
    if isinstance(x, (list, tuple, Iterator)) or (hasattr(x, "ndim") and x.ndim == 4):
        from .video import _as_frames

        arr, given = None, None  # given: the count of a list of which only the shown frames were loaded
        if isinstance(x, (list, tuple)) and max_frames is None and len(x) > SHOW_MAX_FRAMES \
                and any(isinstance(item, (str, os.PathLike)) for item in x):
            # only the files shown are loaded (1,000 were all read to show 64), picked as contact_sheet picks
            if labels is not None and not isinstance(labels, str):
                try:
                    labels = list(labels)
                except TypeError:
                    pass  # (refused by contact_sheet)
            if labels is None or (isinstance(labels, list) and len(labels) in (len(x), SHOW_MAX_FRAMES)):
                from .video import _pick_evenly

                sel = _pick_evenly(len(x), SHOW_MAX_FRAMES)
                try:
                    arr = _as_frames([load_image(x[i]) if isinstance(x[i], (str, os.PathLike)) else x[i] for i in sel])
                except ArgumentError:
                    arr = None  # refused below as the whole list is (the same message, naming the same item)
                if arr is not None:
                    given = len(x)
                    if labels is not None and len(labels) == given:
                        labels = [labels[i] for i in sel]
        if arr is None:
            if isinstance(x, (list, tuple)):  # image files are loaded as the encoders read them
                x = [load_image(item) if isinstance(item, (str, os.PathLike)) else item for item in x]
            arr = _as_frames(x)
        _check_caption(caption)  # before the sheet is drawn
        T, H, W = arr.shape[:3]
        if max_frames is None and (given or T) > SHOW_MAX_FRAMES:  # (1,000 frames of 64 px embedded about 23 MB)
            max_frames = SHOW_MAX_FRAMES
            note = f"{SHOW_MAX_FRAMES} of {given or T} frames, evenly spaced; max_frames= shows more"
            caption = f"{caption} ({note})" if caption else note
        # the sheet's layout, as contact_sheet makes it (which checks these arguments)
        n = min(int(max_frames), T) if _is_integer(max_frames, 1) else T
        cols = min(int(columns), n) if _is_integer(columns, 1) else int(np.ceil(np.sqrt(n)))
        rows = -(-n // cols)
        if labels is not None and not isinstance(labels, str):
            try:  # (a generator of T labels was refused as too many once the tiles were shrunk)
                labels = list(labels)
            except TypeError:
                pass  # (refused by contact_sheet)
        strip = 0 if labels is None else 24  # about a label strip's height (the view downscales what is left over)
        fit = min((SHOW_MAX_SIDE - 2 * (cols + 1)) / (cols * W),
                  (SHOW_MAX_SIDE - (2 + strip) * (rows + 1)) / (rows * H))
        # the view's own downscale of the whole sheet: tiles shrunk to less than half of that (label strips
        # taking the height, rows * 26 near SHOW_MAX_SIDE) were 1 px
        plain = SHOW_MAX_SIDE / max(cols * W + 2 * (cols + 1), rows * (H + strip) + 2 * (rows + 1))
        # labels of another count are refused by contact_sheet, naming the T frames given (not the n shrunk)
        labels_fit = labels is None or (isinstance(labels, list) and len(labels) in (n, T))
        if plain / 2 <= fit < 1 and labels_fit and (max_frames is None or _is_integer(max_frames, 1)) \
                and (columns is None or _is_integer(columns, 1)):
            # tiles shrunk before the labels are drawn, so they stay readable; only the shown frames
            from .video import _lanczos, _pick_evenly

            sel = _pick_evenly(T, n)
            if labels is not None and len(labels) == T and n < T:
                labels = [labels[i] for i in sel]
            w, h = max(1, int(W * fit)), max(1, int(H * fit))
            arr = np.stack([_lanczos(f, w, h) for f in arr[sel]])
            max_frames = None
        sheet = contact_sheet(arr, columns=columns, max_frames=max_frames, labels=labels)
        return _embeddable(ImageView(sheet, scale=scale, caption=caption, tile=max(arr.shape[1:3])), max_embed_mb, frames=True)
    if labels is not None or columns is not None or max_frames is not None:
        raise ArgumentError("labels, columns and max_frames apply to frames (T, H, W, 3), not to one image.")
    return _embeddable(ImageView(x, scale=scale, caption=caption), max_embed_mb)


def _embeddable(view: ImageView, max_embed_mb: float, frames: bool = False) -> ImageView:
    """``view``, refused when its PNG is over ``max_embed_mb`` (encoded only when it may be);
    ``frames``: a contact sheet (whose ``max_frames`` the advice may name)."""
    h, w = view.shown.shape[:2]
    if h * (3 * w + 1) * 1.01 + 4096 <= max_embed_mb * 2**20:  # a PNG is never larger than this
        return view
    size = len(view._repr_png_())  # kept: displaying the view does not encode it again
    if size > max_embed_mb * 2**20:
        raise ArgumentError(
            f"the PNG of this view ({w} x {h} px) is {size / 2**20:.1f} MB, over max_embed_mb={max_embed_mb!r}, and a "
            "picture is embedded, never shown by reference. Fix: "
            # (one picture, or an image file, was told to pass max_frames=, which it refuses)
            + ("show fewer or smaller frames (max_frames=), raise max_embed_mb" if frames else "raise max_embed_mb")
            + ", or write it with ll.save_image and open that file."
        )
    return view


# ----------------------------------------------------------------------------------
# the scrubber
# ----------------------------------------------------------------------------------
class Scrubber:
    """A slider over a trajectory; the frame under it is rendered on demand and cached.

    Frame ``k`` is frame ``k`` of ``latentlab.render(path, decoder, seed=seed,
    noise=noise, ...)`` (same embedding, same starting noise; it is decoded alone, so some
    pixel values may round a level differently from the batched render, as ``render`` documents),
    so scrubbing previews the video you would render. Rendered frames stay in an in-memory cache (least recently
    used out first when ``cache_size`` is set). Displaying the scrubber shows a play
    button, the slider, the frame and its label (``ipywidgets``); without ipywidgets it shows
    a static contact sheet of ``static_frames`` frames and a hint how to get the slider. A
    terminal IPython, which can show neither, prints what the scrubber is and renders nothing.

    ipywidgets keeps displayed widgets for the whole session, so the slider holds the scrubber
    only weakly: the cell that shows it (or builds its :attr:`widget`) holds it until that cell
    runs again, and then the scrubber, with its decoder and cached frames, is freed unless
    something else still holds it (the old slider, if still on screen, says so). A variable
    holds it, and so does IPython's ``Out[n]`` when the scrubber is a cell's last expression
    (``ll.scrub(path, dec)`` alone on the last line); ``display(ll.scrub(path, dec))`` is not
    kept there. :meth:`close` frees them at once.

    Args:
        path: a :class:`~latentlab.Trajectory` or ``(T, d)`` embeddings.
        decoder: a :class:`~latentlab.decoders.Decoder` of the path's space.
        seed, noise, steps, guidance_scale: as in :func:`latentlab.render`
            (``noise`` is ``"shared"`` or ``"per-frame"``).
        labels: ``T`` frame labels; by default a Trajectory's keyframe labels at its
            keyframe frames.
        fps: speed of the play button.
        scale: integer display zoom (default automatic).
        cache_size: most frames kept (default: all).
        static_frames: frames in the fallback contact sheet (an integer >= 1).

    >>> import latentlab as ll                                              # doctest: +SKIP
    >>> ll.scrub(path, ll.create_decoder("mini"), steps=10)                 # doctest: +SKIP
    """

    def __init__(
        self,
        path: Any,
        decoder: Any,
        *,
        seed: int = 0,
        noise: str = "shared",
        steps: int | None = None,
        guidance_scale: float | None = None,
        labels: Sequence[str] | None = None,
        fps: float = 8,
        scale: int | None = None,
        cache_size: int | None = None,
        static_frames: int = 12,
    ) -> None:
        from .edit import _check_parts
        from .errors import check_seed
        from .explore import path_embeddings
        from .render import frame_seeds
        from .space import check_embeddings, space_of, tag
        from .trajectory import Trajectory

        _check_parts("scrub(path, decoder, ...)", decoder=decoder)  # before the path: names swapped arguments
        if not isinstance(noise, str) or noise not in ("shared", "per-frame"):
            raise ArgumentError(f"the scrubber supports noise='shared' or 'per-frame', got {noise!r}.")
        z = path_embeddings(path)
        z = check_embeddings(z, name="path", dim=decoder.dim, space=decoder.space, expected_by="the decoder")
        if not isinstance(path, Trajectory):  # a copy, as Trajectory keeps its keyframes: the caller's tensor changed
            z = tag(z.detach().clone(), space_of(z))  # in place changed the frames not rendered yet, not the cached ones
        self.embeddings = z
        self.decoder = decoder
        # checked now, not when the view first decodes
        steps = None if steps is None else check_int(steps, "steps", minimum=1)
        guidance_scale = None if guidance_scale is None else check_number(guidance_scale, "guidance_scale", minimum=0)
        self.seed, self.noise, self.steps, self.guidance_scale = check_seed(seed), noise, steps, guidance_scale
        T = self.num_frames
        if noise == "per-frame":  # frame k's seed + k: refused now, naming seed, as render refuses it
            check_seeds_fit(self.seed, T, "frame", " with noise='per-frame'")
        self.seeds = frame_seeds(T, self.seed, noise)
        if labels is None:
            labels = [""] * T
            if isinstance(path, Trajectory) and path.labels is not None:
                for i, k in enumerate(path.keyframe_indices()):
                    labels[k] = path.labels[i]
        from .explore import _labels

        self.labels = _labels(labels, "labels", T, "frame")  # a bare string was split into letters
        if not _is_real(fps) or fps <= 0:
            raise ArgumentError(f"fps must be a positive number, got {fps!r}.")
        self.fps = float(fps)
        self.scale = _check_scale(scale)
        if cache_size is not None and not _is_integer(cache_size, 1):
            raise ArgumentError(f"cache_size must be an integer >= 1 or None (no limit), got {cache_size!r}.")
        self.cache_size = None if cache_size is None else int(cache_size)
        self.static_frames = check_int(static_frames, "static_frames", minimum=1)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self._widget: Any = None
        self._widgets: list[Any] = []
        self.slider: Any = None
        self.view: Any = None

    @property
    def num_frames(self) -> int:
        return int(self.embeddings.shape[0])

    def __len__(self) -> int:
        return self.num_frames

    def _index(self, k: Any) -> int:
        T = self.num_frames
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not -T <= k < T:
            raise ArgumentError(f"frame index must be an integer in [0, {T - 1}] (or negative from the end), got {k!r}.")
        return int(k) % T

    def _check_open(self) -> None:
        if self.decoder is None:
            raise ArgumentError(
                "this scrubber is closed (close() freed its decoder and frames). "
                "Fix: make a new one: ll.scrub(path, decoder)."
            )

    def _decode(self, idx: list[int]) -> np.ndarray:
        import torch

        from .render import make_noise

        seeds = [self.seeds[k] for k in idx]
        x = make_noise(tuple(self.decoder.noise_shape()), seeds)
        with torch.no_grad():
            return self.decoder.decode(
                self.embeddings[idx], x, seeds=seeds, steps=self.steps, guidance_scale=self.guidance_scale
            )

    def _store(self, k: int, image: np.ndarray) -> None:
        # read-only: frame(k) hands out the cached array itself, and a change made to it (img[:] = 0)
        # was shown, and returned by frames(), as frame k ever after
        image.flags.writeable = False
        self._cache[k] = image
        self._cache.move_to_end(k)
        while self.cache_size is not None and len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def frame(self, k: int) -> np.ndarray:
        """Frame ``k`` as uint8 ``(H, W, 3)``: from the cache, or rendered now. The cache's own
        array, read-only (``.copy()`` it to change it)."""
        self._check_open()
        k = self._index(k)
        if k in self._cache:
            self.hits += 1
            self._cache.move_to_end(k)
            return self._cache[k]
        self.misses += 1
        try:
            image = self._decode([k])[0]
        except Exception as exc:  # out of memory: a LatentlabError with the fixes, as render's (not torch's raw one)
            from .render import _halved_after_oom

            _halved_after_oom(exc, 1, "rendering a single frame")
            raise
        self._store(k, image)
        return image

    def frames(self, indices: Sequence[int] | None = None, *, progress: bool | None = None) -> np.ndarray:
        """Frames ``indices`` (default: all) as uint8 ``(n, H, W, 3)``; missing ones are
        rendered in batches of the decoder's batch size (a batch that does not fit in memory
        is retried halved, as :func:`~latentlab.render` does). All are returned whatever the
        ``cache_size``; the cache keeps the most recently used of them. ``progress``: a tqdm
        bar over the frames rendered; ``None`` (default): one when they take more than one batch."""
        from ._bars import progress_bar

        self._check_open()
        if indices is not None and (isinstance(indices, (str, bytes)) or not hasattr(indices, "__iter__")
                                    or getattr(indices, "ndim", 1) == 0):  # a 0-d array: numpy's raw TypeError
            raise ArgumentError(f"indices must be a list of frame indices or None (all frames), got {indices!r}.")
        idx = list(range(self.num_frames)) if indices is None else [self._index(k) for k in indices]
        if not idx:
            raise ArgumentError(
                f"indices is empty: no frame to return. Fix: pass at least one index in [0, {self.num_frames - 1}], "
                "or None for all frames."
            )
        # each frame goes into the array returned as it comes (the cached ones now: rendering the others may
        # evict them, cache_size < len(idx)); a dict of them all, then their stack, held them twice
        where: dict[int, list[int]] = {}
        for j, k in enumerate(idx):
            where.setdefault(k, []).append(j)
        out: np.ndarray | None = None

        def put(k: int, image: np.ndarray) -> None:
            nonlocal out
            if out is None:
                out = np.empty((len(idx), *image.shape), image.dtype)
            out[where[k]] = image

        todo = []
        for k in where:
            if k in self._cache:
                put(k, self._cache[k])
                self._cache.move_to_end(k)  # used now
            else:
                todo.append(k)
        self.hits += len(idx) - len(todo)
        self.misses += len(todo)
        bs = max(1, int(getattr(self.decoder, "default_batch_size", 8)))
        if progress is None:
            progress = len(todo) > bs
        from .render import _halved_after_oom

        with progress_bar(progress, total=len(todo), desc="rendering", unit="frame") as bar:
            start = 0
            while start < len(todo):
                batch = todo[start : start + bs]
                try:
                    images = self._decode(batch)
                except Exception as exc:  # a batch that does not fit in memory is retried halved, as render does
                    bs = _halved_after_oom(exc, len(batch), "rendering a single frame")  # (a raw torch OOM before)
                    continue
                for k, image in zip(batch, images):
                    put(k, image)
                    self._store(k, image)
                bar.update(len(batch))
                start += len(batch)
        return out  # type: ignore[return-value]

    def cache_info(self) -> dict[str, int]:
        """``{"hits", "misses", "cached", "frames"}``."""
        return {"hits": self.hits, "misses": self.misses, "cached": len(self._cache), "frames": self.num_frames}

    def _label(self, k: int) -> str:
        lab = f" - {self.labels[k]}" if self.labels[k] else ""
        return f"frame {k} / {self.num_frames - 1}{lab}"

    def _frame_html(self, k: int) -> str:
        image = self.frame(k)
        h, w = image.shape[:2]
        scale = self.scale or _auto_scale(max(h, w), w, target=256, max_width=768)
        src = "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")
        return f"{_img_tag(src, w * scale, self._label(k))}<div>{html.escape(self._label(k))}</div>"

    @property
    def widget(self) -> Any:
        """The ipywidgets box (play button, slider, frame); ``None`` without ipywidgets."""
        if self._widget is not None:
            return self._widget
        self._check_open()
        try:
            import ipywidgets as w
        except ImportError:
            return None
        T = self.num_frames
        self.slider = w.IntSlider(value=0, min=0, max=T - 1, description="frame", continuous_update=True,
                                  layout=w.Layout(width="60%"))  # fmt: skip
        play = w.Play(value=0, min=0, max=T - 1, interval=max(1, int(1000 / self.fps)), description="play")
        link = w.jslink((play, "value"), (self.slider, "value"))
        self.view = w.HTML(value=self._frame_html(0))
        view = self.view
        # ipywidgets keeps displayed widgets alive for the session: the handler holds the scrubber
        # weakly, so a dropped scrubber (its cell re-run) frees its decoder and frame cache
        ref = weakref.ref(self)

        def on_change(change: dict[str, Any]) -> None:
            scrubber = ref()
            if scrubber is None or scrubber.decoder is None:
                view.value = html.escape(
                    "this scrubber was closed or dropped (nothing holds it any more, so its decoder was freed). "
                    "Fix: keep it in a variable and show that: s = ll.scrub(path, decoder); s"
                )
                return
            view.value = scrubber._frame_html(int(change["new"]))

        self.slider.observe(on_change, names="value")
        self._widgets = [link, play, self.slider, self.view]
        self._widget = w.VBox([w.HBox([play, self.slider]), self.view])
        self._widgets += [self._widget, self._widget.children[0]]
        # the cell that builds the box holds the scrubber (as one that shows it does), so a box put in
        # the user's own layout, ll.scrub(path, dec).widget, keeps a working slider
        _hold_while_shown(self)
        return self._widget

    def close(self) -> None:
        """Close the scrubber's widgets and free its frame cache and its hold on the decoder.

        A displayed slider stays in the kernel (ipywidgets keeps displayed widgets for the
        session); it holds the scrubber only weakly, so dropping the scrubber frees the decoder
        too. ``close()`` does it at once. A closed scrubber renders no more frames."""
        for key, (run, held) in list(_SHOWN.items()):
            _SHOWN[key] = (run, [x for x in held if x is not self])
        for wdg in self._widgets:
            wdg.close()
        self._widgets = []
        self._widget = self.slider = self.view = None
        self._cache.clear()
        self.decoder = None

    def static_view(self, *, progress: bool | None = None) -> ImageView:
        """A contact sheet of ``static_frames`` evenly spaced frames (the fallback view).
        ``progress``: a tqdm bar while they render; ``None`` (default): one when they take
        more than one decoder batch."""
        from .video import _pick_evenly

        idx = [int(i) for i in _pick_evenly(self.num_frames, self.static_frames)]
        labels = [f"{k}" + (f" {self.labels[k]}" if self.labels[k] else "") for k in idx]
        return show(self.frames(idx, progress=progress), labels=labels, scale=self.scale, max_frames=len(idx),
                    caption=f"static view: {len(idx)} of {self.num_frames} frames; for the slider, {WIDGETS_HINT}")  # fmt: skip

    def _ipython_display_(self) -> None:
        shell, in_kernel = _ipython_shell()
        if shell is not None and not in_kernel:
            # a terminal IPython: no front end draws a slider or a picture there; it printed a widget's
            # repr, or rendered static_frames frames for a text line that said to install ipywidgets
            print(repr(self))
            return
        wdg = self.widget
        if wdg is not None:
            _hold_while_shown(self)
            display(wdg)
        else:
            display(self.static_view())

    def _repr_html_(self) -> str:
        return self.static_view()._repr_html_()

    def __repr__(self) -> str:
        c = self.cache_info()
        closed = ", closed" if self.decoder is None else ""
        # (a closed one was said to render its frames with .frames(), which refuses it)
        here = ("it renders no more frames; ll.scrub(path, decoder) makes a new one" if closed else
                "a slider in a notebook with ipywidgets (put it last in a cell); here, .frames() renders its frames")
        return f"Scrubber(frames={c['frames']}, cached={c['cached']}, seed={self.seed}, noise={self.noise!r}{closed}): {here}"


# The scrubbers whose sliders a notebook cell shows, by cell: the slider holds its scrubber only
# weakly (ipywidgets keeps displayed widgets for the whole session), so display(ll.scrub(...)),
# which nothing else holds, would be collected at once. A cell run again releases the scrubbers
# of its previous run (cells are told apart by the front end's cell id, else by their code).
_SHOWN: dict[str, tuple[str, list[Scrubber]]] = {}


def _ipython_shell() -> tuple[Any, bool]:
    """The running IPython shell (``None`` in plain Python, or without IPython) and whether it is a
    kernel's, whose front end draws pictures and widgets: a terminal IPython's shell has no
    ``kernel`` attribute (xeus-python's, which draws widgets, holds ``kernel = None``)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None, False
    shell = get_ipython()
    return shell, shell is not None and hasattr(shell, "kernel")


def _hold_while_shown(scrubber: Scrubber) -> None:
    shell, in_kernel = _ipython_shell()
    if not in_kernel:  # plain Python or a terminal IPython: no front end shows the slider
        return
    kernel = shell.kernel  # (xeus-python's, which draws widgets, is None: no cell to tell apart, held for the session)
    get_parent = getattr(kernel, "get_parent", None)
    try:
        parent = (get_parent() or {}) if get_parent is not None else {}
    except Exception:  # an older kernel
        parent = {}
    meta = parent.get("metadata") or {}
    cell = meta.get("cellId") or meta.get("cell_id")
    if not cell:
        code = (parent.get("content") or {}).get("code")
        if not isinstance(code, str):  # no cell to tell apart: held for the session, as before (a working slider)
            forever = _SHOWN.setdefault("", ("", []))[1]
            if not any(x is scrubber for x in forever):
                forever.append(scrubber)
            return
        import hashlib

        cell = "code:" + hashlib.sha256(code.encode()).hexdigest()
    run = str((parent.get("header") or {}).get("msg_id", ""))
    held_run, held = _SHOWN.get(cell, ("", []))
    if held_run != run:  # the cell runs again: its previous run's scrubbers are let go
        held = []
        _SHOWN[cell] = (run, held)
    if not any(x is scrubber for x in held):
        held.append(scrubber)


def scrub(path: Any, decoder: Any, **kwargs: Any) -> Scrubber:
    """A :class:`Scrubber` over ``path``, rendered by ``decoder``; ``**kwargs`` are the
    Scrubber's (``seed``, ``noise``, ``steps``, ...). Put it last in a cell to display it.

    >>> import latentlab as ll                                              # doctest: +SKIP
    >>> ll.scrub(ll.Trajectory.interpolate(a, b, frames=24), ll.create_decoder("mini"))  # doctest: +SKIP
    """
    return Scrubber(path, decoder, **kwargs)


# ----------------------------------------------------------------------------------
# live preview during a render
# ----------------------------------------------------------------------------------
class LivePreview:
    """A render callback that shows the latest frame while a render runs.

    Pass it as ``callback=`` to :func:`latentlab.render`, :meth:`Decoder.render` or
    :func:`latentlab.render_spec` (whose ``progress=True`` already draws a tqdm.auto bar).
    In a notebook it keeps one output updated in place; in plain Python or a terminal IPython it only records.

    Args:
        every: update the picture every ``every`` frames (and always on the last one). A preview
            passed to several renders counts each afresh and shows each in a new output: a
            render is new when a frame already shown comes again (a rerun, or a render resumed
            after an interrupted one, which first reports the frames it kept), when a kept
            frame follows a drawn one, or when the number of frames changes.
        scale: integer display zoom (default automatic).
        on_frame: another callback to call with every frame's info dict as well.

    Attributes: ``count`` (frames seen), ``resumed`` (of which loaded from a previous run),
    ``last`` (the latest frame, uint8 ``(H, W, 3)``).

    The caption counts frames from 0, as contact sheets, the scrubber and the render folder's
    ``frame_00000.png`` do: the last of 8 frames is ``"frame 7 (8 of 8)"``.

    >>> import numpy as np
    >>> preview = LivePreview()
    >>> preview({"frame": 0, "frames": 2, "image": np.zeros((4, 4, 3), np.uint8), "resumed": False})
    >>> preview.count
    1
    """

    def __init__(self, *, every: int = 1, scale: int | None = None,
                 on_frame: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.every = check_int(every, "every", minimum=1)
        self.scale = _check_scale(scale)
        if on_frame is not None and not callable(on_frame):  # it failed at the first frame, a raw TypeError mid-render
            raise ArgumentError(
                f"on_frame must be a function called with each frame's info dict, or None, got {on_frame!r}."
            )
        self.on_frame = on_frame
        self.count = 0
        self.resumed = 0
        self.last: np.ndarray | None = None
        self._handle: Any = None
        self._seen: set[int] = set()  # frames of the current render (count spans every render it watched)
        self._drawn = False  # whether the current render has reported a frame it drew (not kept)
        self._T: int | None = None

    def __call__(self, info: dict[str, Any]) -> None:
        """Take one frame's ``info`` dict from the render (``"frame"``, ``"frames"``,
        ``"image"``, ``"resumed"``) and show or record it."""
        self.count += 1
        self.resumed += bool(info.get("resumed", False))
        self.last = info["image"]
        if self.on_frame is not None:
            self.on_frame(info)
        k, T = int(info["frame"]), int(info["frames"])
        resumed = bool(info.get("resumed", False))
        # render reports each frame once, the kept (resumed) ones first: a frame seen again, or a
        # kept one after a drawn one, is a new render (count afresh, show it in a new output)
        if T != self._T or k in self._seen or (resumed and self._drawn):
            self._seen, self._drawn, self._T, self._handle = set(), False, T, None
        self._seen.add(k)
        self._drawn = self._drawn or not resumed
        n = len(self._seen)
        if n % self.every and n != T:
            return
        if not _ipython_shell()[1]:
            # plain Python or a terminal IPython: tqdm is the progress display (a terminal
            # shell printed each frame's repr between the bar's lines); a kernel shows images
            return
        from IPython.display import display as _display
        view = ImageView(self.last, scale=self.scale,
                         caption=f"frame {k} ({k + 1} of {T}){' (resumed)' if info.get('resumed') else ''}")  # fmt: skip
        if self._handle is None:
            self._handle = _display(view, display_id=True)
        else:
            self._handle.update(view)
