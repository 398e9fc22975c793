"""Render a spec end to end: the one job behind the CLI, the notebooks and ``make demo``.

spec -> encoder (+ prior) -> trajectory -> decoder -> render directory -> video + contact sheet.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import ArgumentError, check_bool, check_int, is_bool, shown, user_path
from .spec import NEUTRAL_CAPTION, Spec, load_spec

__all__ = ["RenderResult", "render_spec", "pace_spec", "keyframe_noise", "resize_frames", "default_out_dir"]


@dataclass(eq=False)  # identity: == compared the frames arrays and raised numpy's ValueError
class RenderResult:
    """What :func:`render_spec` produced.

    Attributes:
        frames: uint8 ``(T, H, W, 3)``, at the decoder's native size.
        out_dir: the render directory (frames, ``embeddings.npy``, ``manifest.json``).
        video: the assembled video.
        contact_sheet: a grid PNG of evenly spaced frames.
        spec: the :class:`~latentlab.spec.Spec` rendered.
        trajectory: the :class:`~latentlab.Trajectory` rendered (the paced one with pacing).
        pacing: the :class:`~latentlab.pacing.Pacing` when the spec asks for ``pacing = "even"``
            or ``"fine"``, else ``None``.
    """

    frames: np.ndarray  # uint8 (T, H, W, 3), at the decoder's native size
    out_dir: Path  # the render directory (frames, embeddings.npy, manifest.json)
    video: Path  # the assembled video
    contact_sheet: Path  # a grid PNG of evenly spaced frames
    spec: Spec
    trajectory: Any
    pacing: Any = None  # the latentlab.pacing.Pacing when the spec asks for pacing = "even" or "fine"

    def __repr__(self) -> str:
        return f"RenderResult(frames={self.frames.shape}, video={str(self.video)!r}, out_dir={str(self.out_dir)!r})"


def _check_spec(spec: Any, call: str) -> Spec:
    """``spec`` if it is a :class:`~latentlab.spec.Spec`; else an :class:`ArgumentError` naming
    ``call`` and the fix (a dict or a file path raised a raw AttributeError deep inside)."""
    if not isinstance(spec, Spec):
        raise ArgumentError(f"{call} takes a Spec, got {type(spec).__name__}. Fix: pass ll.load_spec(path_or_dict) "
                            "(render_spec takes a path or dict itself).")  # fmt: skip
    return spec


def resize_frames(frames: np.ndarray, size: int | None) -> np.ndarray:
    """Resize uint8 frames ``(T, H, W, 3)`` to ``size`` x ``size`` (Lanczos); ``None`` keeps their
    size. ``frames`` and ``size`` are checked as :func:`latentlab.write_video` checks its own (``size``
    an integer in [1, 16384]; frames as a list of images, a tensor or floats in [0, 1] too, returned
    as uint8 ``(T, H, W, 3)`` whatever ``size``; a uint8 array already of that size is returned as it is)."""
    # (one (H, W, 3) image was resized as H frames of one row each; size=0 or "16" raised Pillow's raw
    # errors, size=True made 1 x 1 frames)
    if size is not None and (is_bool(size) or not isinstance(size, (int, np.integer)) or not 1 <= size <= 16384):
        raise ArgumentError(f"size must be None or an integer in [1, 16384] (pixels per side), got {shown(size)}.")
    from .video import _as_frames

    if not (isinstance(frames, np.ndarray) and frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[-1] == 3
            and 0 not in frames.shape):  # fmt: skip
        frames = _as_frames(frames)  # (with size=None too: floats of 5.0, or a string, came back unchecked)
    if size is None or (frames.shape[1] == size and frames.shape[2] == size):
        return frames
    return _resized(frames, int(size), int(size))


def _resized(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """Each of ``frames`` resized (Lanczos) to ``width`` x ``height``, straight into the array
    returned (a list of the resized frames, then stacked, held them twice)."""
    from .video import _lanczos

    out = np.empty((len(frames), height, width, frames.shape[-1]), np.uint8)
    for j, f in enumerate(frames):
        out[j] = _lanczos(f, width, height)
    return out


SHEET_TILE_MAX = 1024
"""The largest side of a contact sheet's tiles: a sheet of a render at ``size = 4096`` was a
200-megapixel PNG that Pillow (and so ``ll.load_image``) refuses to open."""


def contact_sheet_of(frames: np.ndarray, size: int | None, max_frames: int | None = None) -> np.ndarray:
    """The contact sheet of a render's frames ``(T, H, W, 3)``: at most ``max_frames`` of them,
    evenly spaced, at the video's ``size`` (``None``: as they are), no side over
    :data:`SHEET_TILE_MAX` (larger ones shrunk, keeping their shape); only the frames it shows
    are resized, each once, straight to its tile's size."""
    from .video import _pick_evenly, contact_sheet

    if max_frames is not None and len(frames) > max_frames:
        frames = frames[_pick_evenly(len(frames), max_frames)]
    h, w = (size, size) if size is not None else frames.shape[1:3]
    if max(h, w) > SHEET_TILE_MAX:  # straight to the tile's size: resized to size = 4096 first, 16 frames took 800 MB
        scale = SHEET_TILE_MAX / max(h, w)
        h, w = max(1, round(h * scale)), max(1, round(w * scale))
    if frames.shape[1:3] != (h, w):
        frames = _resized(frames, w, h)
    return contact_sheet(frames)


def default_out_dir(spec: Spec, root: str | os.PathLike = "renders") -> Path:
    """The ``spec``'s ``out_dir`` (resolved against its ``base_dir``), else ``<root>/<name>``
    (``root`` defaults to ``renders``, under the working directory); the name is the spec's
    ``name`` or one made from its keyframes."""
    _check_spec(spec, "default_out_dir(spec)")
    if spec.out_dir:
        return spec.resolve_path(spec.out_dir)
    return Path(root) / slug(spec.name or "-".join(spec.labels()))


def video_path(directory: str | os.PathLike, fmt: str) -> Path:
    """The default video file of a render folder: ``<folder>.<fmt>`` next to it.

    >>> video_path("renders/v1.2", "mp4").as_posix()
    'renders/v1.2.mp4'
    """
    d = Path(directory)
    if not d.name or d.name == "..":  # "." or "..": the folder's own name ("..": "...mp4" inside it was the video)
        d = d.resolve()
    if not d.name:
        raise ArgumentError(f"out_dir {str(directory)!r} has no name to call its video by; pass output= (CLI: -o).")
    return d.with_name(f"{d.name}.{fmt}")  # not with_suffix: "v1.2" must not become "v1.mp4"


#: spec fields that change only the video, never a frame: a folder rendered with other values
#: is the same render (a new fps or format re-encodes it; another batch size resumes it)
OUTPUT_ONLY_FIELDS = ("fps", "format", "size", "hold_first", "hold_last", "pingpong", "output", "out_dir", "name", "batch_size")


#: the finer pacing settings whose default is a constant, by pacing mode (the others depend on
#: the path): set to it, a field is the default (see :func:`latentlab.pacing.fine_pacing_settings`)
_PACING_DEFAULTS = {
    "even": {"pacing_scope": "segment", "pacing_passes": 1, "pacing_tol": 0.25, "pacing_relax": 0},
    "fine": {"pacing_scope": "segment", "pacing_passes": 3, "pacing_tol": 0.1, "pacing_relax": 6, "pacing_min_width": 0.001},
}


def _default_refine(decoder: Any) -> int:
    """The refining steps ``decoder.invert(refine=None)`` takes (see :meth:`Decoder.invert`)."""
    return decoder.default_inversion_refine if getattr(decoder, "supports_refine", False) else 0


def _frame_settings(spec: dict[str, Any], decoder: Any = None) -> dict[str, Any]:
    """``spec`` (a manifest's or ``Spec.to_dict()``) without its output-only fields, and each
    setting that draws no other frame left out or spelt one way: eta 0 and unset alike, pacing
    fields at their default and unset alike, ``invert_refine`` only with ``noise = "inverted"``,
    and with a decoder steps / guidance / ``invert_refine`` unset alike with its defaults (3 and
    3.0 alike)."""
    out = {k: v for k, v in spec.items() if k not in OUTPUT_ONLY_FIELDS}
    out.pop("upscale", None)  # the decoder's description, compared beside the spec, says it (and said it before the field)
    if not out.get("eta"):
        out.pop("eta", None)
    pacing = out.get("pacing")  # (a hand-edited manifest's list was a raw TypeError: unhashable)
    for k, v in (_PACING_DEFAULTS.get(pacing, {}) if isinstance(pacing, str) else {}).items():
        if k in out and out[k] == v:
            out.pop(k)
    if out.get("noise", "shared") != "inverted":
        out.pop("invert_refine", None)  # only inverted noise is refined
    if decoder is not None:
        from .render import sampling_settings

        out.update(sampling_settings(out.get("steps"), out.get("guidance_scale"), decoder))
        if out.get("noise") == "inverted" and out.get("invert_refine") is None:
            out["invert_refine"] = _default_refine(decoder)
    return out


def check_can_create(directory: str | os.PathLike, what: str) -> None:
    """Refuse, before any work, a folder that cannot be made: a file in its way, or no write
    permission where it would be made (nothing is created here)."""
    path = user_path(directory).absolute()
    probe = path
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    if probe.is_symlink() and not probe.exists():
        raise ArgumentError(f"{what} {str(directory)!r} cannot be made: {str(probe)!r} is a link to nothing. "
                            "Choose another path, or remove the link.")  # fmt: skip
    if not probe.is_dir():
        raise ArgumentError(f"{what} {str(directory)!r} cannot be made: {str(probe)!r} is a file, not a folder. "
                            "Choose another path.")  # fmt: skip
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ArgumentError(f"{what} {str(directory)!r} cannot be written: no write permission in {str(probe)!r}. "
                            "Choose a writable path.")  # fmt: skip


def slug(name: str) -> str:
    """A render's name as a folder name: lower-case letters (of any script, with their accents
    and vowel signs), digits and dashes, at most 60.

    >>> slug("Starry Night.png -> two dogs")
    'starry-night-png-two-dogs'
    >>> slug("café 🐱"), slug("猫"), slug("हिन्दी")
    ('café', '猫', 'हिन्दी')

    Letters this system's file names cannot hold (under ``LC_ALL=C`` without Python's UTF-8
    mode, any but ASCII) become dashes too, so the folder can be made.
    """
    import re
    import unicodedata

    # composed first (a decomposed "cafe\u0301" was "cafe"), and combining marks kept with their
    # letters ("हिन्दी में" was "ह-न-द-म", the name of other prompts too); names that were fine are unchanged
    name = unicodedata.normalize("NFC", name)
    out, after_letter = [], False
    for c in name:  # a mark only after a kept letter or digit (or mark); never a variation selector (emoji's U+FE0F)
        mark = unicodedata.category(c)[0] == "M" and not (0xFE00 <= ord(c) <= 0xFE0F or 0xE0100 <= ord(c) <= 0xE01EF)
        keep = c.isalnum() or (mark and after_letter)
        out.append(c if keep else " ")
        after_letter = keep
    text = re.sub(r"\s+", "-", "".join(out)).strip("-").lower()[:60]
    try:
        os.fsencode(text)
    except UnicodeEncodeError:  # (surrogate escapes, a name's bytes under such a locale, encode: kept)
        text = re.sub(r"-+", "-", "".join(c if _fs_encodable(c) else "-" for c in text)).strip("-")
    return text or "render"


def _fs_encodable(c: str) -> bool:
    try:
        os.fsencode(c)
        return True
    except UnicodeEncodeError:
        return False


def _inversion_marks(paths: Any) -> dict[str, str]:
    """Entries of the inverted noises' cache key for what changed how pictures are inverted:
    ``crop`` where a picture is not square (inverted over its centre square since 2026-12-06,
    squashed before; so a folder's noise of such a picture is not reused, and its render, whose
    record holds the noise's hash, is not continued with other noise). Square pictures add
    nothing: their caches stay valid."""
    from PIL import Image

    for p in paths:
        try:
            with Image.open(p) as im:
                w, h = im.size
        except Exception:  # (unreadable: load_image says so when it inverts)
            continue
        if w != h:
            return {"crop": "centre square"}
    return {}


def keyframe_noise(spec: Spec, trajectory: Any, decoder: Any, *, progress: bool = False,
                   directory: Path | None = None) -> Any:  # fmt: skip
    """The ``(K, *noise_shape)`` keyframe noises of ``noise = "inverted"``: image keyframes get
    their DDIM-inverted noise (``decoder.invert`` with the render's steps, guidance 1, refined
    for the render's guidance by ``invert_refine`` gradient steps); a ``text_diff`` keyframe
    without a ``seed`` of its own shares the noise of the keyframe it edits, so a text diff of
    a picture keeps the picture's inverted noise all the way, as the DALL-E 2 paper's text
    diffs do; other keyframes get noise seeded by :meth:`Spec.keyframe_seeds`. ``spec`` is a
    :class:`~latentlab.spec.Spec`, ``trajectory`` the path resolved from it
    (:meth:`Spec.resolve`), ``decoder`` one that can invert; ``progress``: a bar over the
    inversions.

    With a ``directory`` the noises are kept in ``keyframe_noise.pt`` there, keyed by
    everything they depend on and nothing else (the pictures' bytes and embeddings, the seeds
    of the keyframes whose noise is seeded, the sampling and inversion settings and the
    decoder), so a resumed render does not invert again, nor one whose edits change no noise
    (a label, a segment's frames or easing, a text keyframe's caption)."""
    import hashlib
    import json

    import torch

    from .render import make_noise, sampling_settings
    from .video import load_image

    _check_spec(spec, "keyframe_noise(spec, trajectory, decoder)")
    _check_inverts(decoder)
    from ._bars import progress_bar

    todo = [i for i, kf in enumerate(spec.keyframes) if "image" in kf]
    paths = {i: spec.resolve_path(spec.keyframes[i]["image"]) for i in todo}
    refine = spec.invert_refine  # the decoder's default spelt out is the default (unset), as in older caches
    if refine == _default_refine(decoder):
        refine = None
    # the decoder's inversion settings away from their defaults (Karlo's inversion_iterations, say: a cache
    # keyed without them was reused after they changed); none at their defaults, so older caches stay valid
    marks = getattr(decoder, "inversion_marks", None)
    marks = marks(_default_refine(decoder) if refine is None else refine) if callable(marks) else {}
    settings = {**sampling_settings(spec.steps, spec.guidance_scale, decoder), "invert_refine": refine,
                "decoder": decoder.describe(), **({"inversion": marks} if marks else {}), **_inversion_marks(paths.values())}
    embeddings = trajectory.keyframes.detach().cpu().float().contiguous()
    pictures = {i: Path(paths[i]).read_bytes() for i in todo}
    # what each keyframe's noise comes from: its picture (inverted), the keyframe before it (a text
    # diff without a seed), or its seed; labels, segments and captions change none of them
    sources = ["image" if i in paths else "previous" if i > 0 and "text_diff" in kf and "seed" not in kf else seed
               for i, (kf, seed) in enumerate(zip(spec.keyframes, spec.keyframe_seeds()))]  # fmt: skip
    h = hashlib.sha256(json.dumps({**settings, "noise_sources": sources}, sort_keys=True, default=str).encode())
    for i in todo:
        h.update(embeddings[i].numpy().tobytes())
        h.update(hashlib.sha256(pictures[i]).digest())
    key = h.hexdigest()

    def old_key() -> str:
        # the key before 2026-12-07, which held every keyframe field, caption and seed: a cache it wrote is
        # still this noise where it matches (it held more, not less), and is kept under the new key
        old = hashlib.sha256(json.dumps({**settings, "seeds": spec.keyframe_seeds(), "keyframes": spec.keyframes},
                                        sort_keys=True, default=str).encode())  # fmt: skip
        old.update(embeddings.numpy().tobytes())
        for i in todo:
            old.update(pictures[i])
        return old.hexdigest()

    cached = directory / "keyframe_noise.pt" if directory is not None else None
    if cached is not None and cached.is_file():
        try:
            data = torch.load(cached, map_location="cpu", weights_only=True)
            found, noise = data.get("key"), data["noise"]
        except Exception:  # unreadable (empty after a power cut, corrupt, another format): compute it again
            found = noise = None
        if found == key:
            return noise
        if found is not None and found == old_key():  # (hashed only for a cache the new key does not match)
            from .render import write_whole

            with contextlib.suppress(OSError):  # (kept under the new key where it can be: the noise is read either way)
                write_whole(cached, lambda tmp: torch.save({"key": key, "noise": noise}, tmp))
            return noise
    kn = make_noise(tuple(decoder.noise_shape()), spec.keyframe_seeds())
    with progress_bar(progress, total=len(todo), desc="invert keyframes", unit="image") as bar:
        for i in todo:
            kn[i] = decoder.invert(load_image(paths[i]), trajectory.keyframes[i : i + 1], steps=spec.steps,
                                   refine=spec.invert_refine, decode_guidance=spec.guidance_scale, progress=False)[0]  # fmt: skip
            bar.update(1)
    for i, kf in enumerate(spec.keyframes):
        if i > 0 and "text_diff" in kf and "seed" not in kf:
            kn[i] = kn[i - 1]
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        from .render import write_whole

        write_whole(cached, lambda tmp: torch.save({"key": key, "noise": kn}, tmp))
    return kn


def _no_inversion_reason(decoder_type: str, name: object) -> str:
    """Why ``noise = "inverted"`` is refused for a decoder of class ``decoder_type`` called ``name``."""
    return (f"noise = \"inverted\" needs a decoder that can invert images; {decoder_type} ({name!r}) cannot. "
            "Use noise = \"slerp\".")  # fmt: skip


def _check_inverts(decoder: Any) -> None:
    """Refuse ``noise = "inverted"`` for a ``decoder`` that cannot invert images."""
    if not getattr(decoder, "supports_inversion", False):
        raise ArgumentError(_no_inversion_reason(type(decoder).__name__, getattr(decoder, "name", "?")))


def _check_refines(spec: Spec, decoder: Any) -> None:
    """Refuse the refining of inverted noise (``invert_refine``, or the decoder's default) that
    ``decoder`` cannot do, as its :meth:`~latentlab.decoders.base.Decoder.invert` would, but before
    the keyframes are encoded and ``ready()`` runs (it was said at the first picture's inversion)."""
    if not any("image" in kf for kf in spec.keyframes):  # (refine only where a picture is inverted)
        return
    if not (_default_refine(decoder) if spec.invert_refine is None else spec.invert_refine):
        return
    check = getattr(decoder, "_check_refinable", None)  # (a decoder of latentlab's Decoder class)
    if callable(check):
        check()


def _refuse_what_the_preset_cannot(spec: Spec, preset: Any) -> None:
    """What ``spec`` asks of the decoder of ``preset`` that it cannot do (eta > 0, inverted noise,
    refining it), refused before any model loads where the preset tells
    (:func:`latentlab.presets.decoder_can`), with the words of the refusal the loaded decoder
    gives (which stays, for a preset whose decoder only tells once loaded: a builder of the user's)."""
    from .presets import _decoder_class, decoder_can

    asks = []
    if spec.eta:
        asks.append("eta")
    if spec.noise == "inverted":
        asks.append("invert")
        if spec.invert_refine and any("image" in kf for kf in spec.keyframes):  # (refine only where a picture is inverted)
            asks.append("refine")
    for feature in asks:
        if decoder_can(preset, feature) is False:
            from .decoders.base import no_refine_reason
            from .render import no_eta_reason

            made = _decoder_class(preset).__name__  # type: ignore[union-attr]
            raise ArgumentError(no_eta_reason(made) if feature == "eta" else _no_inversion_reason(made, preset.name)
                                if feature == "invert" else no_refine_reason(made, preset.name))  # fmt: skip


def _seeds_noise(kf: Any, noise: Any) -> bool:
    """Whether keyframe ``kf``'s ``seed`` seeds its starting noise under ``noise``: with ``"slerp"``,
    and with ``"inverted"`` where it is not an image (whose noise is inverted from the picture)."""
    return noise == "slerp" or (noise == "inverted" and not (isinstance(kf, dict) and "image" in kf))


def _pacing_key(spec: Spec, trajectory: Any, decoder: Any, kn: Any) -> str:
    import hashlib
    import json

    from .render import sampling_settings

    h = hashlib.sha256(trajectory.fingerprint().encode())
    defaults = _PACING_DEFAULTS.get(spec.pacing, {})  # a field at its fixed default is the default (unset), as
    # in older caches, so a spec spelling it out reads the same pacing.json (see _frame_settings)
    plain = {k: None if k in defaults and getattr(spec, k) == defaults[k] else getattr(spec, k)
             for k in ("pacing_scope", "pacing_coarse", "pacing_passes", "pacing_tol", "pacing_max_samples",
                       "pacing_min_width", "pacing_relax")}  # fmt: skip
    if plain["pacing_tol"] is not None:  # 1 and 1.0 alike, as _frame_settings reads them (a float: as before)
        plain["pacing_tol"] = float(plain["pacing_tol"])
    settings = {"seed": spec.seed, "noise": spec.noise, "pacing_metric": spec.pacing_metric,
                **{k: v for k, v in plain.items() if k != "pacing_relax"}}
    settings.update(sampling_settings(spec.steps, spec.guidance_scale, decoder))
    if spec.pacing == "fine":  # "even" stays out, so caches of older renders stay valid
        settings["pacing"] = spec.pacing
    if plain["pacing_relax"] is not None:  # only when set, so caches of older renders stay valid
        settings["pacing_relax"] = plain["pacing_relax"]
    if spec.eta:  # eta 0 spelt out is the default (unset), as in render()'s fingerprint and _frame_settings
        settings["eta"] = float(spec.eta)
        settings["eta_noise"] = "own stream"  # as render()'s fingerprint: eta decodes changed on 2026-12-05
    # a keyframe's seed draws its noise only with noise = "slerp", or "inverted" but for an image (a text
    # keyframe's prior sample is in the trajectory's fingerprint): otherwise each is spelt at its default
    # (seed + i), as in older caches, so a seed that changes no frame measures nothing again
    settings["keyframe_seeds"] = [s if _seeds_noise(kf, spec.noise) else spec.seed + i
                                  for i, (kf, s) in enumerate(zip(spec.keyframes, spec.keyframe_seeds()))]
    settings["decoder"] = decoder.describe()
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    if kn is not None:
        h.update(kn.contiguous().numpy().tobytes())
    return h.hexdigest()


#: the render folder's pictures even pacing measured so far, while it measures (removed once
#: ``pacing.json`` holds the result): a rerun after an interruption decodes only the rest
PACING_PARTIAL = "pacing_partial.pt"


class _PacingCheckpoint(dict):
    """The ``measured=`` dict of :func:`latentlab.even_pacing`, kept in ``path``: loaded where its
    key matches, saved as it fills (at most every :attr:`every` seconds, or ten times as long as
    a save takes) and by :meth:`save` when pacing stops early."""

    every = 20.0
    concat_bytes = 64 * 2**20  # save() writes more than this (pictures) a tensor a point, not copied into one

    def __init__(self, path: Path, key: str) -> None:
        super().__init__()
        self.path, self.key = path, key
        self._saved_at, self._cost, self._dirty = time.monotonic(), 0.0, False
        if path.is_file():
            try:
                import torch

                data = torch.load(path, map_location="cpu", weights_only=True)
                if data.get("key") == key:
                    values = data["values"]  # a tensor a point (a list), or all of them in one (written before)
                    for j, point in enumerate(data["points"]):
                        v = values[j] if isinstance(values, list) else values[j : j + 1]
                        self[(int(point[0]), float(point[1]))] = v.numpy() if data["kind"] == "numpy" else v
                else:
                    path.unlink()  # another measurement's (the folder's render was replaced): of no use now
            except Exception:  # unreadable: measure again
                super().clear()
                with contextlib.suppress(OSError):
                    path.unlink()
        self._dirty = False

    def __setitem__(self, point: Any, value: Any) -> None:
        super().__setitem__(point, value)
        self._dirty = True
        if time.monotonic() - self._saved_at >= max(self.every, 10 * self._cost):
            self.save()

    def save(self) -> None:
        """Write what was measured to :attr:`path` (atomically), if anything changed since."""
        if not self._dirty or not self:
            return
        import torch

        from .render import write_whole

        start = time.monotonic()
        points = list(self)
        first = self[points[0]]
        kind = "numpy" if isinstance(first, np.ndarray) else "torch"
        # each point's own tensor, sharing its memory: one torch.cat of every picture measured so far copied
        # them all on each save (a second copy while it wrote: 4 GB for 5,000 pictures of 512 px); a small
        # set still goes in one tensor, faster to save and load (5,000 tensors of their own: 6x and 13x)
        values: Any = [torch.as_tensor(self[p]).detach().cpu() for p in points]
        if sum(v.nbytes for v in values) <= self.concat_bytes:
            values = torch.cat(values)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        saved = {"key": self.key, "kind": kind, "points": [[i, t] for i, t in points], "values": values}
        write_whole(self.path, lambda tmp: torch.save(saved, tmp))
        self._dirty = False
        self._saved_at = time.monotonic()
        self._cost = self._saved_at - start


def _sampling_options(spec: Spec, keyframe_noise: Any) -> dict[str, Any]:
    """The spec's noise and decoder settings as :func:`~latentlab.render` and
    :func:`~latentlab.even_pacing` both take them (pacing measures the frames the render draws)."""
    return {"seed": spec.seed, "noise": spec.noise,
            "keyframe_seeds": spec.keyframe_seeds() if spec.noise == "slerp" else None, "keyframe_noise": keyframe_noise,
            "steps": spec.steps, "guidance_scale": spec.guidance_scale, "batch_size": spec.batch_size,
            "eta": spec.eta or 0.0}  # fmt: skip


def pace_spec(spec: Spec, trajectory: Any, encoder: Any, decoder: Any, *, keyframe_noise: Any = None,
              directory: Path | None = None, progress: bool = False) -> Any:  # fmt: skip
    """:func:`latentlab.even_pacing` with the spec's settings: ``trajectory`` (resolved from
    ``spec``), ``encoder``, ``decoder``, ``keyframe_noise`` (with ``noise = "inverted"``
    the keyframes' noises, as :func:`keyframe_noise` returns them, else ``None``) and
    ``progress`` go to it. With a ``directory`` the result
    is kept in ``pacing.json`` there, so resuming a render does not measure again, and the
    pictures measured so far in ``pacing_partial.pt`` while it measures, so a render
    interrupted while pacing measures only the rest when run again."""
    import json

    from .pacing import Pacing, even_pacing

    _check_spec(spec, "pace_spec(spec, trajectory, encoder, decoder)")
    key = _pacing_key(spec, trajectory, decoder, keyframe_noise)
    cached = directory / "pacing.json" if directory is not None else None
    if cached is not None and cached.is_file():
        try:
            data = json.loads(cached.read_text(encoding="utf-8"))
            if data.get("key") == key:
                return Pacing.from_dict(data)
        except Exception:  # unreadable or not a pacing record: measure again
            pass
    finer = {"coarse": spec.pacing_coarse, "passes": spec.pacing_passes, "tol": spec.pacing_tol,
             "max_samples": spec.pacing_max_samples, "min_width": spec.pacing_min_width, "relax": spec.pacing_relax}  # None: even_pacing's default
    if spec.pacing == "fine":  # the measured recipe, under the fields the spec sets
        from .pacing import fine_pacing_settings

        finer = {**fine_pacing_settings(trajectory), **{k: v for k, v in finer.items() if v is not None}}
    if spec.pacing_scope == "path":  # the chain's frames, re-split across its segments by measured change
        finer["frames"] = len(trajectory)
    measured = _PacingCheckpoint(directory / PACING_PARTIAL, key) if directory is not None else None
    try:
        result = even_pacing(
            trajectory,
            encoder,
            decoder,
            metric=spec.pacing_metric,
            **{k: v for k, v in finer.items() if v is not None},
            **_sampling_options(spec, keyframe_noise),
            progress=progress,
            measured=measured,
        )
    except BaseException:  # Ctrl-C, SIGTERM, out of memory...: keep what was measured for the rerun
        if measured is not None:
            with contextlib.suppress(Exception):  # (a full disk: the original error says more)
                measured.save()
        raise
    if cached is not None:
        from .render import _write_json

        cached.parent.mkdir(parents=True, exist_ok=True)
        _write_json(cached, {"key": key, **result.to_dict()})
        (directory / PACING_PARTIAL).unlink(missing_ok=True)
    return result


def _refuse_models_of_another_space(preset: Any, **models: Any) -> None:
    """Refuse a model given to :func:`render_spec` (to reuse loaded ones) that works in another
    CLIP space than the spec's preset: a loop over specs of several presets with one set of
    models rendered an ``sd21-unclip-l`` spec with mini, into a folder whose manifest said
    ``sd21-unclip-l``. Models that name no space (a user's own) are taken as they are."""
    from .errors import SpaceError
    from .presets import PRESETS

    for what, model in models.items():
        space = getattr(model, "space", None) if model is not None else None
        if not space or space == preset.space:
            continue
        theirs = [p.name for p in PRESETS.values() if p.space == space]
        fix = (f"set preset = {theirs[0]!r} in the spec (CLI: --preset {theirs[0]}), the preset of the {what} given"
               if theirs else f"register a preset of space {space!r} (latentlab.register_preset; docs/models.md, "
               "'Adding a preset') and set the spec's preset to it")  # fmt: skip
        raise SpaceError(
            f"the spec's preset {preset.name!r} works in CLIP space {preset.space!r}, but the {what} given works in "
            f"{space!r}. Pass the {what} of preset {preset.name!r} (or none, and it is loaded), or {fix}."
        )


def create_prior_offloaded(preset: Any, *, cpu_offload: bool = False, **kwargs: Any) -> Any:
    """``create_prior(preset, **kwargs)``, with ``cpu_offload=True`` where the prior takes it (the
    Karlo and Kandinsky diffusion priors); a prior that does not (mini's, the identity) loads
    without, as the offload then concerns the decoder alone."""
    from .presets import _OptionNotTaken, create_prior

    if cpu_offload:
        try:
            return create_prior(preset, cpu_offload=True, **kwargs)
        except _OptionNotTaken as exc:  # refused by name before anything loads
            if exc.option != "cpu_offload":
                raise
    return create_prior(preset, **kwargs)


#: the render folder's record of the videos its renders wrote (path -> size, mtime, sha256): a video
#: file is replaced only where this record says this folder's render wrote it (or with overwrite=True)
VIDEOS_FILE = "videos.json"


def _is_own_file(path: Path) -> bool:
    """Whether ``path`` (a file of one of the names a render writes) is one latentlab wrote: the
    caches an interrupted render leaves before its manifest are known by their contents."""
    if path.suffix == ".pt":  # keyframe_noise.pt: a torch file of {"key", "noise"}; an empty or damaged one is recomputed
        try:
            import torch

            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            return path.stat().st_size == 0  # (what a power cut can leave)
        keys = {"key", "kind", "points", "values"} if path.name == PACING_PARTIAL else {"key", "noise"}
        return isinstance(data, dict) and set(data) == keys
    from .render import _read_json

    data = _read_json(path)
    if not isinstance(data, dict):
        return False
    if path.name == KEYFRAMES_FILE:
        return set(data) == {"fingerprint"}
    if path.name == "pacing.json":
        return "key" in data
    return path.name == VIDEOS_FILE and set(data) == {"videos"}


def _refuse_foreign_files(directory: Path, overwrite: bool) -> None:
    """Refuse, before any model loads, a folder without a manifest that holds files this render
    would write over: frames (:func:`~latentlab.render.untracked_frames_error`), or a file of the
    names it writes that is not latentlab's (a user's ``embeddings.npy`` or ``keyframes.json``)."""
    from .render import MANIFEST, untracked_frames_error

    if overwrite or (directory / MANIFEST).is_file():
        return  # (a manifest: _refuse_other_render compares the render it records)
    if any(directory.glob("frame_*.png")):  # before keyframes.json or any cache is written there
        raise untracked_frames_error(directory)
    names = ["embeddings.npy", "contact_sheet.png"]  # (written only after the manifest: never left alone by a render)
    cached = [KEYFRAMES_FILE, "pacing.json", PACING_PARTIAL, "keyframe_noise.pt", VIDEOS_FILE]  # (an interrupted render's, or not)
    found = [n for n in names if (directory / n).exists()]
    found += [n for n in cached if (directory / n).exists() and not ((directory / n).is_file() and _is_own_file(directory / n))]
    if found:
        raise ArgumentError(
            f"out_dir {str(directory)!r} has no {MANIFEST} but holds {', '.join(found)}, which this render would "
            "write over (not files a latentlab render left there). Render into a new folder (CLI: --out-dir or --name), "
            "or pass overwrite=True (CLI: --overwrite) to replace them."
        )


def _video_key(video: Path, directory: Path) -> str:
    """How the render folder's record names ``video``: relative to the folder where it can be (so a
    project moved whole keeps its record), else absolute."""
    v, d = os.path.abspath(user_path(video)), os.path.abspath(user_path(directory))
    try:
        return Path(os.path.relpath(v, d)).as_posix()
    except ValueError:  # another drive (Windows)
        return str(v)


def _file_sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _video_state(video: Path) -> dict[str, int] | None:
    """The size and modification time of the file at ``video``, or ``None`` if there is none."""
    try:
        st = video.stat()
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _recorded_videos(directory: Path) -> dict[str, Any]:
    from .render import _read_json

    data = _read_json(directory / VIDEOS_FILE)
    videos = data.get("videos") if isinstance(data, dict) else None
    return videos if isinstance(videos, dict) else {}


def _refuse_unrecorded_video(video: Path, directory: Path, overwrite: bool, mark: str = "manifest.json") -> None:
    """Refuse, before any work, to replace a file at ``video`` that this render folder's renders
    did not write (the user's own video, another render's ``-o``), unless ``overwrite``. A video
    recorded in the folder's ``videos.json`` with its size and time (or contents) unchanged is
    this render's own, rewritten freely, as is one whose writing was cut short before its record
    (marked pending just before); so is the default ``<folder>.<format>`` of a folder that holds
    a render (a manifest, or the ``mark`` of the command that writes it) and no record of that
    video (a folder of an older latentlab, which kept none)."""
    if overwrite or not os.path.lexists(video) or video.is_dir():  # (a folder: refused as such by the caller)
        return
    key = _video_key(video, directory)
    entry = _recorded_videos(directory).get(key)
    is_default = os.path.abspath(video) == os.path.abspath(video_path(directory, video.suffix.lstrip(".")))
    if isinstance(entry, dict):
        if entry.get("pending"):  # its render was writing it when it stopped (a full disk, a kill)
            # its own only if the file is still the one that was there then: the record comes with the
            # folder, so {"pending": true} alone let a folder from elsewhere replace any video of yours
            before = entry.get("before")
            if isinstance(before, dict) and before == _video_state(video):
                return
            if is_default and (directory / mark).is_file():
                return  # the render's own default video, as where no record names it (below)
            why = ("was replaced after a render of this folder began writing it (a write cut short just after it "
                   "finished?), or the record of that is not this machine's")  # fmt: skip
            raise ArgumentError(
                f"the video {os.path.normpath(video)!r} already exists and {why}, so it is not "
                "replaced. Pass overwrite=True (CLI: --overwrite) to replace it, or choose another video file "
                "(output=, CLI: -o)."
            )
        try:
            st = video.stat()
            same = entry.get("size") == st.st_size and (
                entry.get("mtime_ns") == st.st_mtime_ns or entry.get("sha256") == _file_sha256(video))
        except OSError:
            same = False
        if same:
            return
        why = "was changed or replaced since this render wrote it"
    elif is_default and (directory / mark).is_file():
        return  # the render's own default video, from a latentlab that kept no record of it
    else:
        why = f"was not written by the render in {str(directory)!r}"
        if is_default:  # (no render in the folder, else the branch above): its folder deleted, the video kept?
            why += " (that folder holds no render: if the video is of one whose folder you deleted, delete it too)"
    raise ArgumentError(  # (normalised: '.../proj/../holiday.mp4' hid where it is)
        f"the video {os.path.normpath(video)!r} already exists and {why}, so it is not replaced. Choose another video file "
        "(output=, CLI: -o) or render folder (CLI: --out-dir or --name), or pass overwrite=True (CLI: --overwrite) to "
        "replace it."
    )


def _record_video(video: Path, directory: Path, *, pending: bool = False) -> None:
    """Note in the render folder that its render wrote ``video`` (see :func:`_refuse_unrecorded_video`);
    ``pending``: that it is about to write it (called just before), with the size and time of
    the file there then: a write cut short while encoding leaves that file, which stays this
    render's. One cut short between its rename and this record leaves a new file, which counts
    as this render's only at the render's default ``<folder>.<format>``; elsewhere (``-o``) it
    needs ``overwrite`` (a bare pending mark, which a folder from elsewhere can carry, let a
    render replace any video of the user's)."""
    from .render import _write_json

    videos = _recorded_videos(directory)
    if pending:  # with the state of what is there now: only that file is taken for this render's own later
        videos[_video_key(video, directory)] = {"pending": True, "before": _video_state(video)}
    else:
        st = video.stat()
        videos[_video_key(video, directory)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": _file_sha256(video)}
    directory.mkdir(parents=True, exist_ok=True)
    _write_json(directory / VIDEOS_FILE, {"videos": videos})


def _refuse_pictures_it_writes(spec: Spec, directory: Path, video: Path) -> None:
    """Refuse, before any work, a keyframe picture that this render writes over or removes: a frame
    (``frame_*.png``) or the contact sheet of its own folder, or its video. (A frame of an earlier render
    taken as a keyframe of the next one into the same folder with overwrite: the picture was replaced by
    a new frame, so the folder recorded a keyframe no longer there, and the same command was refused ever
    after as a render of other keyframe pictures.)"""
    import fnmatch

    def entry(path: Any) -> str:  # the name a write replaces: its folder's links seen through, not its own
        return os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(path))), os.path.basename(path))

    def names(path: Any) -> list[str]:  # the name given, each link on its way (a name the render may replace), the file
        found = [entry(path)]
        while os.path.islink(found[-1]) and len(found) < 40:  # (a link to a link in out_dir: only the last was checked)
            found.append(entry(os.path.join(os.path.dirname(found[-1]), os.readlink(found[-1]))))
        return [*found, os.path.realpath(path)]

    # (the video's own link was followed: a -o that is a link to a keyframe was refused, though only the
    # link is replaced; a keyframe named by a link in out_dir was not, though its name then held a new frame)
    own, target = os.path.realpath(directory), entry(video)
    for i, kf in enumerate(spec.keyframes):
        items = [(f"keyframes[{i}].image", kf["image"])] if "image" in kf else []
        for kind in ("mix", "sum"):
            items += [(f"keyframes[{i}].{kind}[{j}].image", item["image"]) for j, item in enumerate(kf.get(kind) or [])
                      if isinstance(item, dict) and "image" in item]  # fmt: skip
        for where, image in items:
            for p in dict.fromkeys(names(spec.resolve_path(image))):
                name = os.path.basename(p)
                if p == target:
                    what = f"the video this render writes ({str(video)!r})"
                    break
                if os.path.dirname(p) == own and (fnmatch.fnmatchcase(name, "frame_*.png") or name == "contact_sheet.png"):
                    what = f"{name} in out_dir {str(directory)!r}, which this render writes over or removes"
                    break
            else:
                continue
            raise ArgumentError(f"{where} {image!r} is {what}. Copy the picture out of the folder and name the copy, "
                                "or render into another folder (CLI: --out-dir or --name).")  # fmt: skip


def _refuse_other_render(directory: Path, spec: Spec, decoder: Any, overwrite: bool) -> None:
    """Refuse, before any work, a folder whose manifest records another spec or decoder.

    :func:`latentlab.render` makes the authoritative check (the fingerprint of the paced
    embeddings), but even pacing runs first and caches ``pacing.json`` in the folder: this
    early check keeps a refused folder untouched and saves the pacing pass. With ``decoder``
    None (before the models load) it compares what needs no decoder: all but the decoder
    itself and the steps, guidance and refining that one side leaves to the decoder's defaults.
    """
    import json

    from .render import MANIFEST, other_format_error, read_manifest, unreadable_manifest_error

    path = directory / MANIFEST
    if overwrite:
        return
    if not path.is_file():  # (a folder without one was checked before the models loaded: _refuse_foreign_files)
        return
    old = read_manifest(path)
    if old is None:  # as render() would refuse it, but before inverting, pacing or writing a cache
        raise unreadable_manifest_error(directory)
    newer = other_format_error(directory, old)
    if newer is not None:
        raise newer

    def plain(x: Any) -> Any:  # as the manifest stores it
        return json.loads(json.dumps(x, default=str))

    def pathless(d: dict[str, Any]) -> dict[str, Any]:
        # image paths are spelt relative to each spec's own folder (a spec saved elsewhere spells
        # the same file differently), so they are not compared here: the pictures themselves are,
        # by the keyframes' fingerprint (_refuse_other_keyframes) and by render()'s own check.
        # Labels draw nothing (nor the seed of a keyframe that is not a text one, but with slerp or inverted
        # noise), and a segment setting equal to the spec's default is the default.
        defaults = {"frames": d.get("frames"), "easing": d.get("easing"), "method": d.get("method"), "hold": 0}
        # a keyframe's seed picks a text keyframe's prior sample, and its starting noise under noise = "slerp"
        # or "inverted" (as render() fingerprints it), but an image's inverted one; else it draws nothing. One
        # at the value that each of its uses takes without it (the spec's seed; seed + i for keyframe i's noise)
        # is left out; a text_diff's under "inverted" never is (without one it shares the noise it edits)
        noise = d.get("noise", "shared")
        base = d.get("seed", 0)
        base = base if isinstance(base, (int, float)) else None  # (a damaged record's "x" or null: a raw TypeError)
        kfs = []
        for i, kf in enumerate(d.get("keyframes") or ()):
            if isinstance(kf, dict):
                seed = kf.get("seed")
                own_noise = base is not None and seed == base + i and not (noise == "inverted" and i > 0 and "text_diff" in kf)
                as_default = ("text" not in kf or seed == base) and (not _seeds_noise(kf, noise) or own_noise)
                drawless = {"label", "seed"} if as_default else {"label"}
                kf = {k: v for k, v in kf.items() if k not in drawless and not (k in defaults and v == defaults[k])}
                td = kf.get("text_diff")
                if isinstance(td, dict):  # a default spelt out is the default (from = "a photo" was another render)
                    kf["text_diff"] = {k: v for k, v in td.items() if (k, v) not in (("from", NEUTRAL_CAPTION), ("theta", 0.5))}
                parts = [x for k in ("mix", "sum") if isinstance(kf.get(k), list) for x in kf[k]]  # (else a raw TypeError)
                for item in [kf, *parts]:
                    if isinstance(item, dict) and "image" in item:
                        item["image"] = "<image>"
                    if isinstance(item, dict) and item is not kf and item.get("weight") == 1:
                        del item["weight"]  # (the default weight)
            kfs.append(kf)
        return {**d, "keyframes": kfs}

    def segments(d: dict[str, Any]) -> list[Any]:
        # each segment's frames, easing, method and hold, the top-level ones filled in: a top-level
        # setting that every segment sets for itself draws nothing (it was refused as a change)
        top = {k: d.get(k) for k in ("frames", "easing", "method") if d.get(k) is not None}
        return [{**top, "hold": 0, **kf} if j > 0 and isinstance(kf, dict) else kf for j, kf in enumerate(d["keyframes"])]

    was = pathless(_frame_settings(old.get("spec") or {}, decoder))
    now = pathless(_frame_settings(plain(spec.to_dict()), decoder))
    if decoder is None:  # unset and the decoder's default alike: told apart once it has loaded (two set values now)
        for k in ("steps", "guidance_scale", "invert_refine"):
            if was.get(k) is None or now.get(k) is None:
                was.pop(k, None)
                now.pop(k, None)
    seg_was, seg_now = segments(was), segments(now)

    def drawn(k: str) -> bool:  # the segments take other values of the top-level setting k
        return [s.get(k) if isinstance(s, dict) else s for s in seg_was[1:]] != \
            [s.get(k) if isinstance(s, dict) else s for s in seg_now[1:]]  # fmt: skip

    def as_said(k: str, v: Any) -> str:  # unset: the default ("eta None" meant eta 0)
        return repr(v) if v is not None else "0 (the default)" if k == "eta" else "the default"

    differ = [f"{k} {as_said(k, was.get(k))} -> {as_said(k, now.get(k))}" if k != "keyframes" else "the keyframes"
              for k in sorted(set(was) | set(now)) if was.get(k) != now.get(k)
              and not (k == "keyframes" and seg_was == seg_now)
              and not (k in ("frames", "easing", "method") and not drawn(k))]  # fmt: skip
    if decoder is not None:
        # what render() fingerprints beside the spec: the steps and guidance the decoder ran (an older latentlab's
        # default, where the spec left them out) and its sampling marks (a fix that changed some step counts'
        # frames, e.g. timesteps = "exact"): refused now, before inverting and pacing write over the folder's caches
        from .render import sampling_settings

        ran = plain(sampling_settings(spec.steps, spec.guidance_scale, decoder))
        said = {d.split(" ", 1)[0] for d in differ}
        for k in sorted((set(ran) | set(old) & {"timesteps"}) - said):
            if old.get(k) != ran.get(k):  # (3 and 3.0 alike: an integer guidance a latentlab before 2026-12-05 recorded)
                differ.append(f"{k} {repr(old[k]) if k in old else 'unset'} -> {repr(ran[k]) if k in ran else 'unset'}")
    note = ""
    if decoder is not None and old.get("decoder") != plain(decoder.describe()):
        differ.append(_decoder_change(old.get("decoder"), plain(decoder.describe())))
        was_d, now_d = old.get("decoder"), plain(decoder.describe())
        note = _decoder_note(was_d, now_d, decoder)
    if differ:
        raise ArgumentError(
            f"out_dir {str(directory)!r} holds a different render ({'; '.join(differ)}; video settings such as fps, "
            f"format or size may change freely).{note} Render into a new folder (CLI: --out-dir or --name), or pass "
            "overwrite=True (CLI: --overwrite) to replace its frames."
        )


def _decoder_note(was: Any, now: Any, decoder: Any) -> str:
    """What a refusal adds about a render folder's decoder (``was``, its description) that is
    not this one (``now``), where the weights hashes tell it: what the decoder's own
    ``resume_note`` says (mini: the upscale setting that continues it, or the upscaler file its
    weights folder lacks now), else that the weights are not these (e.g. the mini weights an
    older latentlab shipped), which no setting continues; nothing for another decoder class or
    name, or with no hashes to compare (the list of changed entries says what differs)."""
    if not isinstance(was, dict) or not isinstance(now, dict):
        return ""
    old_hash, new_hash = was.get("weights_sha256"), now.get("weights_sha256")
    if any(was.get(k) != now.get(k) for k in ("class", "name")) or not isinstance(old_hash, str) \
            or not isinstance(new_hash, str) or old_hash == new_hash:  # fmt: skip
        return ""
    own = getattr(decoder, "resume_note", None)
    note = own(was, now) if callable(own) else None
    if note is not None:
        return note
    return (" Its decoder's weights are not these (an upgrade of latentlab ships new mini weights, or the preset "
            "loads other files now), so no setting continues it.")


#: what a decoder's description (``describe()``) leaves out where it is the default (mini's: named off the default CPU float32)
_DESCRIBED_DEFAULTS = {"device": "cpu", "dtype": "float32"}


def _decoder_change(was: Any, now: Any) -> str:
    """How a render folder's decoder differs from this one's, for a refusal: each entry of their
    descriptions that changed (``the decoder (weights_sha256 '0429…' -> '6599…'; upscaler None ->
    'learned 2x')``), at most four."""
    if not isinstance(was, dict) or not isinstance(now, dict):
        return "the decoder"
    keys = [k for k in sorted(set(was) | set(now)) if was.get(k) != now.get(k)]

    def short(v: Any) -> str:
        text = repr(v)
        return text if len(text) <= 40 else text[:37] + "..."

    def entry(d: dict[str, Any], k: str) -> str:  # mini's description names its device and dtype only off the defaults
        # ("dtype None -> 'bfloat16'" meant float32); another decoder's names them always, or never (a subclass of
        # Decoder that records neither ran where it ran: not said to be the default)
        if k not in d and k in _DESCRIBED_DEFAULTS and d.get("class", "MiniDecoder") == "MiniDecoder":
            return f"{_DESCRIBED_DEFAULTS[k]!r} (the default)"
        return short(d.get(k))

    parts = [f"{k} {entry(was, k)} -> {entry(now, k)}" for k in keys[:4]]
    more = f", and {len(keys) - 4} more" if len(keys) > 4 else ""
    return f"the decoder ({'; '.join(parts)}{more})" if parts else "the decoder"


KEYFRAMES_FILE = "keyframes.json"


def _refuse_other_keyframes(directory: Path, trajectory: Any, overwrite: bool) -> str | None:
    """Refuse a folder whose render was of other keyframe embeddings (an image changed under the
    same path, say) before the inversion and pacing caches are recomputed and written over; then
    record this render's (``keyframes.json``, the unpaced trajectory's fingerprint). Where a folder
    with a manifest has no such record (an older latentlab's, or unreadable) :func:`latentlab.render`
    decides: the fingerprint is returned, to be recorded once it has (written here, a refused
    render's record made the folder's own render refused as of other pictures). With ``overwrite``
    the folder's record is removed and the fingerprint returned, to be recorded once
    :func:`latentlab.render` has replaced the folder's render."""
    from .render import MANIFEST, _read_json, _write_json

    path = directory / KEYFRAMES_FILE
    fp = trajectory.fingerprint()
    if overwrite:  # recorded once render() has replaced the folder's render: written here, a run stopped while
        # inverting or pacing left the old render's frames and manifest under this record, and a rerun of that
        # render was refused as of other pictures (the old record, kept, would refuse this one stopped later)
        path.unlink(missing_ok=True)
        return fp
    if (directory / MANIFEST).is_file():
        data = _read_json(path) if path.is_file() else None
        old = data.get("fingerprint") if isinstance(data, dict) else None  # unreadable: render()'s own check decides
        if old is None:
            return fp
        if old != fp:
            raise ArgumentError(
                f"out_dir {str(directory)!r} holds a render of other keyframe pictures or embeddings (another "
                "image file or order of images, a file changed under its path, another encoder, an encoder's embedding "
                "cache that holds embeddings encoded in a batch of other inputs, or a latentlab or torch version, torch "
                "thread count (torch.set_num_threads) or default dtype that rounds the embeddings differently: they are "
                "compared bit for bit). Render into a new "
                "folder (CLI: --out-dir or --name), or pass "
                "overwrite=True (CLI: --overwrite) to replace its frames."
            )
    directory.mkdir(parents=True, exist_ok=True)
    _write_json(path, {"fingerprint": fp})
    return None


def render_spec(
    spec: str | os.PathLike | dict[str, Any] | Spec,
    *,
    out_dir: str | os.PathLike | None = None,
    output: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
    callback: Callable[[dict[str, Any]], None] | None = None,
    encoder: Any = None,
    decoder: Any = None,
    prior: Any = None,
    device: str = "cpu",
    dtype: Any = None,
    cpu_offload: bool = False,
    sheet_frames: int | None = 12,
    ready: Callable[[], None] | None = None,
) -> RenderResult:
    """Render ``spec`` (a path, dict or :class:`Spec`) into ``out_dir`` (default: the spec's
    ``out_dir``, else ``renders/<name>``) and assemble the video.

    Interrupted renders resume when called again with the same spec and ``out_dir``.
    ``output``: the video file (default: the spec's ``output``, which starts at its ``base_dir``,
    else ``<out_dir>.<format>``; a relative ``output`` given here starts at the working
    directory). ``progress``: progress bars over the
    frames (and over the inversions and pacing's decodes); ``callback``: called with a dict for
    each frame when it is ready, as :func:`latentlab.render.render`'s (e.g. a :class:`~latentlab.LivePreview`).
    ``encoder``/``decoder``/``prior`` override the preset's (e.g. to reuse loaded models; one
    of another CLIP space than the spec's preset is refused);
    the preset's are loaded on ``device`` in ``dtype`` (None: the preset's default), and with
    ``cpu_offload=True`` the decoder, and a prior that takes it (Karlo's, Kandinsky's), use
    diffusers' model CPU offload (docs/models.md, "Loading options").

    An existing video file is replaced only where this render folder's render wrote it (its
    ``videos.json`` records it), or with ``overwrite=True``; so is a folder without a manifest
    that holds files of the names a render writes. ``ready`` is called once every check has
    passed, before the first inversion, pacing decode or frame (the CLI writes ``--save-spec``
    there, so a refused command saves nothing). ``sheet_frames``: at most this many frames,
    evenly spaced, on the contact sheet (an int >= 1; ``None``: all of them).

    >>> import latentlab as ll                                  # doctest: +SKIP
    >>> result = ll.render_spec("examples/morph.toml")          # doctest: +SKIP
    >>> result.video                                            # doctest: +SKIP
    PosixPath('renders/morph.mp4')
    """
    from .presets import create_decoder, create_encoder, get_preset
    from .render import render
    from .video import save_image, write_video

    if sheet_frames is not None:  # checked here: contact_sheet_of raised a raw error after the whole render
        sheet_frames = check_int(sheet_frames, "sheet_frames", minimum=1)
    for name, value in (("out_dir", out_dir), ("output", output)):  # 123 was a raw TypeError; out_dir="" rendered
        # into the current folder (a spec's out_dir = "", the CLI's empty --out-dir and render(out_dir="") are refused)
        if value is not None and (not isinstance(value, (str, os.PathLike)) or not str(os.fspath(value)).strip()):
            raise ArgumentError(f"{name} must be a non-empty path (str or pathlib.Path), or None for the spec's own; "
                                f"got {value!r}.")  # fmt: skip
    s = load_spec(spec)
    preset = get_preset(s.preset)
    directory = user_path(out_dir) if out_dir is not None else default_out_dir(s)
    video = user_path(output) if output is not None else (Path(s.resolve_path(s.output)) if s.output else video_path(directory, s.format))
    if video.suffix.lower().lstrip(".") not in ("mp4", "gif", "webp"):
        raise ArgumentError(f"output {str(video)!r} must end in .mp4, .gif or .webp.")
    progress = check_bool(progress, "progress")  # (else refused only at the first bar, after the models loaded)
    overwrite = check_bool(overwrite, "overwrite")  # (bool("no") is True: another render's files were replaced)
    from .render import check_callback

    check_callback(callback)  # (render() refused it only after the models loaded, the inversion and the pacing)
    if ready is not None and not callable(ready):  # (a raw TypeError once the models had loaded)
        raise ArgumentError(f"ready must be a function called with no arguments once every check has passed, or None; "
                            f"got {ready!r} ({type(ready).__name__}).")  # fmt: skip
    cpu_offload = check_bool(cpu_offload, "cpu_offload")
    if cpu_offload and decoder is None:  # the decoder's builder refused it, once the encoder (and prior) had loaded
        if preset.decoder.get("kind") == "mini":  # (as the CLI's --cpu-offload: refused by its builder, by name)
            raise ArgumentError(f"the decoder of preset {preset.name!r} takes no cpu_offload= (a loading option of other "
                                "parts or presets; docs/models.md, 'Loading options', says which takes what). Leave "
                                "cpu_offload out.")  # fmt: skip
        import torch

        try:
            on_cpu = torch.device(device).type == "cpu"
        except (RuntimeError, TypeError, ValueError):  # a device torch does not know: said where the models load
            on_cpu = False
        if on_cpu:
            raise ArgumentError("cpu_offload=True needs an accelerator device, e.g. device='cuda'; got device='cpu'.")
    from .video import check_gif_fps, check_video_writer, check_webp_length

    # before any decoding, not after the render
    check_gif_fps(s.fps, video.suffix.lower().lstrip("."), hold_first=s.hold_first, hold_last=s.hold_last)
    n_frames = 1 + sum(int(kf.get("hold", 0)) + int(kf.get("frames", s.frames)) for kf in s.keyframes[1:])  # as resolve's
    check_webp_length(n_frames, s.fps, video.suffix.lower().lstrip("."), hold_first=s.hold_first, hold_last=s.hold_last,
                      pingpong=s.pingpong)  # fmt: skip
    check_video_writer(video)  # an mp4 with no ffmpeg to write it
    from .video import _check_name_lengths

    _check_name_lengths(directory, "out_dir")  # (a name too long: a raw OSError from exists() below)
    _check_name_lengths(video, "output")
    if video.exists() and video.is_dir():
        raise ArgumentError(f"output {str(video)!r} is a directory; give a file name such as morph.mp4.")
    if prior is None and s.needs_prior() and preset.prior is None:
        raise s.no_prior_error()  # before any model loads
    from .edit import _check_parts

    given = {k: v for k, v in (("encoder", encoder), ("decoder", decoder), ("prior", prior)) if v is not None}
    # a model in the wrong role failed later with a raw error; a prior of a user's own need only be callable
    _check_parts("render_spec(spec, ..., encoder=, decoder=, prior=)", needs={"prior": ("__call__",)}, **given)
    _refuse_models_of_another_space(preset, encoder=encoder, decoder=decoder, prior=prior)
    options: dict[str, Any] = {}
    if s.upscale is not None:
        if preset.decoder.get("kind") != "mini":
            raise ArgumentError(f"'upscale' (CLI: --no-upscale) applies to the mini preset only (its learned upscaler); "
                                f"preset {preset.name!r} has none. Drop it.")  # fmt: skip
        # (at or below its native size a mini decoder's frames never pass through an upscaler, so upscale = true
        # draws as unset or false there, and a decoder without one was refused for it, with one for false)
        native = (isinstance(getattr(decoder, "resolution", None), int)
                  and decoder.resolution <= getattr(getattr(decoder, "config", None), "image_size", 0))  # fmt: skip
        if decoder is not None and not native and (getattr(decoder, "upscaler", None) is not None) != s.upscale:
            raise ArgumentError(f"the spec says upscale = {str(s.upscale).lower()}, but the decoder given "
                                f"{'has an' if s.upscale is False else 'has no'} upscaler. Pass a decoder built with "
                                f"upscale={s.upscale}, or no decoder.")  # fmt: skip
        options["upscale"] = s.upscale
    check_can_create(directory, "out_dir (CLI: --out-dir)")
    check_can_create(video.parent, f"the folder of the video {str(video)!r} (CLI: -o)")
    _refuse_pictures_it_writes(s, directory, video)
    from .render import folder_lock

    with folder_lock(directory, "out_dir (CLI: --out-dir)"):  # no second render writes here meanwhile
        _refuse_foreign_files(directory, overwrite)  # before any model loads
        _refuse_other_render(directory, s, None, overwrite)  # another seed, noise, keyframes...: refused before they load too
        _refuse_unrecorded_video(video, directory, overwrite)
        if decoder is None:  # what the preset's decoder cannot do, said before its models load
            _refuse_what_the_preset_cannot(s, preset)
        load = {"device": device, **({"dtype": dtype} if dtype is not None else {})}
        encoder = encoder if encoder is not None else create_encoder(preset, **load)
        if prior is None and s.needs_prior():
            prior = create_prior_offloaded(preset, cpu_offload=cpu_offload, **load)
        if decoder is None:
            decoder = create_decoder(preset, **load, **options, **({"cpu_offload": True} if cpu_offload else {}))
        if s.steps is not None and callable(getattr(decoder, "_check_steps", None)):
            try:  # a spec's steps (at most 1000) past what this decoder's sampler takes: said as the field,
                decoder._check_steps(s.steps)  # before anything is written (it was at the first decode)
            except ArgumentError as exc:
                raise ArgumentError(f"'steps' is too many for this decoder: {exc}") from None
        if s.steps is None:  # (the decoder's default_steps, which inverting and pacing take too)
            from .render import _check_default_steps

            _check_default_steps(decoder)
        _refuse_other_render(directory, s, decoder, overwrite)
        from .render import check_eta

        check_eta(s.eta or 0.0, decoder)  # before inverting or pacing
        if s.noise == "inverted":  # before encoding the keyframes and ready() (--save-spec was written first)
            _check_inverts(decoder)
            _check_refines(s, decoder)
        trajectory = s.resolve(encoder, prior)
        unrecorded = _refuse_other_keyframes(directory, trajectory, overwrite)  # before inverting or pacing overwrite its caches
        if ready is not None:
            ready()
        kn = keyframe_noise(s, trajectory, decoder, progress=progress, directory=directory) if s.noise == "inverted" else None
        pacing = None
        if s.pacing != "uniform":
            pacing = pace_spec(s, trajectory, encoder, decoder, keyframe_noise=kn, directory=directory, progress=progress)
            trajectory = pacing.trajectory
        frames = render(
            trajectory,
            decoder,
            **_sampling_options(s, kn),
            out_dir=directory,
            overwrite=overwrite,
            spec=s.to_dict(),
            callback=callback,
            progress=progress,
        )
        if unrecorded is not None:  # render() found the folder's render this one, or replaced it: now it is recorded
            from .render import _write_json

            _write_json(directory / KEYFRAMES_FILE, {"fingerprint": unrecorded})
        from .video import remove_stale_temps

        remove_stale_temps(video)  # partial videos of a render killed while encoding (its ffmpeg finishes them)
        _record_video(video, directory, pending=True)  # a write cut short before its record stays this render's
        write_video(  # resized frame by frame as written (all of them at once took gigabytes on long renders)
            frames,
            video,
            fps=s.fps,
            hold_first=s.hold_first,
            hold_last=s.hold_last,
            pingpong=s.pingpong,
            size=s.size,
            progress=progress,
        )
        _record_video(video, directory)
        sheet_path = directory / "contact_sheet.png"
        save_image(contact_sheet_of(frames, s.size, sheet_frames), sheet_path)
        return RenderResult(frames, directory, video, sheet_path, s, trajectory, pacing)
