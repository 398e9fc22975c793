"""Trajectories: keyframe embeddings plus how to travel between them.

A :class:`Trajectory` is data, not a render loop: ``K`` keyframes ``(K, d)`` and ``K - 1``
:class:`Segment` s, each saying how many frames it takes, along which path (``slerp``,
``nlerp``, ``lerp``) and with which easing. :meth:`Trajectory.embeddings` samples it to a
``(T, d)`` tensor, ``T = hold + sum(segment frames) + 1`` (the last keyframe closes the
path). It saves to and loads from JSON or TOML.

>>> import torch
>>> from latentlab.trajectory import Trajectory
>>> a, b = torch.eye(4)[:1], torch.eye(4)[1:2]
>>> path = Trajectory.interpolate(a, b, frames=5)
>>> path.embeddings().shape
torch.Size([5, 4])
>>> [round(float(x), 3) for x in path.embeddings()[2]]
[0.707, 0.707, 0.0, 0.0]
"""

from __future__ import annotations

import copy
import hashlib
import math
import numbers
import operator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .errors import ArgumentError, SpecError, is_bool, is_finite_real
from .space import check_embeddings, common_space, space_of, tag

__all__ = ["Segment", "Trajectory", "EASINGS", "ease", "split_frames"]


def _linear(t: torch.Tensor) -> torch.Tensor:
    return t


def _ease_in(t: torch.Tensor) -> torch.Tensor:
    # exactly 1 at t = 1 (cos(pi / 2) is 6e-17 in float64, not 0); elsewhere the formula as before
    return torch.where(t == 1, torch.ones_like(t), 1 - torch.cos(t * math.pi / 2))


def _ease_out(t: torch.Tensor) -> torch.Tensor:
    return torch.sin(t * math.pi / 2)


def _ease_in_out(t: torch.Tensor) -> torch.Tensor:
    return 0.5 - 0.5 * torch.cos(t * math.pi)


EASINGS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": _linear,
    "ease-in": _ease_in,
    "ease-out": _ease_out,
    "ease-in-out": _ease_in_out,
}
"""Easing curves: maps from uniform time in [0, 1] to path parameter in [0, 1]."""
_OWN_EASINGS = dict(EASINGS)  # one added to (or replaced in) EASINGS is saved by name, and loads only where it is added too


def warn_added_easings(easings: Any, what: str) -> None:
    """Warn that ``what`` (a file just saved) names easings added to :data:`EASINGS` (or
    replaced there) in this process: it loads only where the same easing is added again."""
    added = sorted({e for e in easings if isinstance(e, str) and EASINGS.get(e) is not _OWN_EASINGS.get(e)})
    if added:
        import warnings

        warnings.warn(f"{what} names easing(s) {added}, added to (or replaced in) latentlab.trajectory.EASINGS in this "
                      "process: it draws them so only where the same easing is set first (another process, or the "
                      f"latentlab command, refuses an added one). latentlab's own: {tuple(_OWN_EASINGS)}.", stacklevel=3)  # fmt: skip

METHODS = ("slerp", "nlerp", "lerp")


def ease(t: torch.Tensor, easing: str) -> torch.Tensor:
    """Apply the easing curve named ``easing`` (a key of :data:`EASINGS`) to ``t`` (values in
    [0, 1])."""
    if not isinstance(easing, str) or easing not in EASINGS:  # (a list was a raw "unhashable type")
        raise ArgumentError(f"unknown easing {easing!r}; choose one of {', '.join(EASINGS)}.")
    return EASINGS[easing](t)


def _is_int(x: object) -> bool:
    """True for Python, numpy and 0-d tensor integers (not bool, not float)."""
    if isinstance(x, bool) or (isinstance(x, torch.Tensor) and x.dtype == torch.bool):  # (a bool tensor was taken as 0 / 1)
        return False
    try:
        operator.index(x)
    except TypeError:
        return False
    return True


def _frame_count(x: object, name: str = "frames") -> int:
    """``x`` as a plain int, or an :class:`ArgumentError` naming ``name``."""
    if not _is_int(x):
        raise ArgumentError(
            f"{name} must be an int (the total, both ends included) or a list of per-segment ints, "
            f"got {x!r} ({type(x).__name__}). Pass e.g. frames=48."
        )
    return operator.index(x)


def _total_frames(x: object, segments: int) -> int:
    """``frames``, the total of a trajectory of ``segments`` segments (both ends included), as a
    plain int of at most a spec's limit per segment plus the closing frame (past it, Segment
    named its share of them, one less than the frames given)."""
    from .spec import MAX_FRAMES

    total = _frame_count(x)
    if total > MAX_FRAMES * segments + 1:
        raise ArgumentError(f"frames={total} is too many for {segments} segment(s): give at most "
                            f"{MAX_FRAMES * segments + 1} (the total, both ends included: at most {MAX_FRAMES} "
                            "per segment, and the closing frame).")  # fmt: skip
    return total


def split_frames(total: int, segments: int) -> list[int]:
    """Split ``total`` frames (including the final keyframe) over ``segments`` segments as
    evenly as possible; returns each segment's own frame count (which excludes its end point).

    >>> split_frames(48, 1)
    [47]
    >>> split_frames(10, 3)
    [3, 3, 3]
    """
    total = _frame_count(total)
    if not _is_int(segments):  # (a list was a raw TypeError from comparing it)
        raise ArgumentError(f"segments must be an int (the number of keyframes - 1), got {segments!r}.")
    segments = operator.index(segments)
    if segments < 1:
        raise ArgumentError("a trajectory needs at least two keyframes (one segment).")
    if total < segments + 1:
        raise ArgumentError(
            f"frames={total} is too few for {segments} segment(s): give at least {segments + 1} "
            "(one per keyframe)."
        )
    moving = total - 1
    base, extra = divmod(moving, segments)
    return [base + (1 if i < extra else 0) for i in range(segments)]


@dataclass(repr=False)
class Segment:
    """How to travel from one keyframe to the next.

    Attributes:
        frames: frames sampled from the start keyframe (included) towards the end keyframe
            (excluded; the next segment or the closing frame shows it). 1 to 100000.
        easing: name of the easing curve (see :data:`EASINGS`).
        method: ``"slerp"`` (great circle, the default), ``"nlerp"`` or ``"lerp"``. Decoders
            normalise every embedding, so a ``"lerp"`` segment renders the frames of
            ``"nlerp"`` (up to float rounding); the two differ only in :meth:`Trajectory.embeddings` (and a render's
            ``embeddings.npy``), where lerp's frames keep their shorter norms. Whatever the
            method, a segment between antipodal keyframes is refused (see
            :meth:`Trajectory.embeddings`).
        hold: extra copies of the start keyframe shown before the motion begins (at most 100000).
        ts: explicit path parameters in [0, 1) overriding ``frames`` and ``easing``
            (used by pacing, which places frames by how much the picture changes).
    """

    frames: int
    easing: str = "linear"
    method: str = "slerp"
    hold: int = 0
    ts: list[float] | None = None

    def __post_init__(self) -> None:
        if self.ts is not None:
            try:  # numbers only: a string's characters ("0") or true/false read as numbers, a 400-digit int overflowed
                if isinstance(self.ts, (str, bytes, dict)):
                    raise TypeError
                given = list(self.ts)
                if any(isinstance(x, (str, bytes)) or is_bool(x) or getattr(x, "dtype", None) is torch.bool for x in given):
                    raise TypeError
                self.ts = [float(x) for x in given]
            except (TypeError, ValueError, OverflowError):
                raise ArgumentError(f"Segment.ts must be a list of numbers in [0, 1), got {self.ts!r}.") from None
            if not self.ts or any(not (0.0 <= x < 1.0) for x in self.ts):
                raise ArgumentError("Segment.ts must be a non-empty list of parameters in [0, 1).")
            if self.ts[0] != 0.0 or any(b < a for a, b in zip(self.ts, self.ts[1:])):
                raise ArgumentError(
                    f"Segment.ts must start at 0 (the start keyframe) and never decrease, got {self.ts[:6]}"
                    f"{'...' if len(self.ts) > 6 else ''}. Sort them and put 0 first."
                )
            self.frames = len(self.ts)
        if _is_int(self.frames) and not isinstance(self.frames, int):
            self.frames = operator.index(self.frames)  # numpy / tensor integers
        from .spec import MAX_FRAMES  # the spec's limits: more is a typo (or a file's), not a video

        if not isinstance(self.frames, int) or isinstance(self.frames, bool) or not 1 <= self.frames <= MAX_FRAMES:
            raise ArgumentError(f"Segment.frames must be an integer in [1, {MAX_FRAMES}], got {self.frames!r}.")
        if not isinstance(self.easing, str) or self.easing not in EASINGS:
            raise ArgumentError(f"unknown easing {self.easing!r}; choose one of {', '.join(EASINGS)}.")
        if not isinstance(self.method, str) or self.method not in METHODS:
            raise ArgumentError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}.")
        if _is_int(self.hold) and not isinstance(self.hold, int):
            self.hold = operator.index(self.hold)  # numpy / tensor integers, as frames
        if not isinstance(self.hold, int) or isinstance(self.hold, bool) or not 0 <= self.hold <= MAX_FRAMES:
            raise ArgumentError(f"Segment.hold must be an integer in [0, {MAX_FRAMES}], got {self.hold!r}.")

    def __repr__(self) -> str:
        ts = self.ts  # in full up to 8 (a paced segment has one per frame: 100000 of them printed a megabyte)
        shown = repr(ts) if ts is None or len(ts) <= 8 else f"[{', '.join(map(repr, ts[:3]))}, ..., {ts[-1]!r}]"
        return (f"Segment(frames={self.frames!r}, easing={self.easing!r}, method={self.method!r}, hold={self.hold!r}, "
                f"ts={shown})")

    def params(self) -> torch.Tensor:
        """Path parameters of this segment's frames, ``(hold + frames,)`` in [0, 1)."""
        if self.ts is not None:
            t = torch.tensor(self.ts, dtype=torch.float64)
        else:
            t = ease(torch.arange(self.frames, dtype=torch.float64) / self.frames, self.easing)
        return torch.cat([torch.zeros(self.hold, dtype=torch.float64), t])


class Trajectory:
    """Keyframes ``(K, d)`` and the ``K - 1`` segments between them.

    Build one with :meth:`interpolate`, :meth:`text_diff` or :meth:`chain`, or directly::

        Trajectory(keyframes, [Segment(24), Segment(24, easing="ease-in-out")])

    ``keyframes``: ``(K, d)`` embeddings, ``K >= 2``. Without ``segments``, they are built
    from ``frames`` (the total, both ends included; ``None``: 48), ``easing`` and ``method``,
    split evenly as :meth:`chain` splits them (given beside ``segments``, other than their
    defaults, they are refused: set them on the Segments). ``labels``: one string per keyframe
    (for plots and manifests). ``space``: the keyframes' CLIP space (default: their tag;
    keyframes tagged with another space are refused). The keyframes and Segments are copied:
    changing a Segment after the call leaves the trajectory as it was (change
    ``trajectory.segments[i]``, its own, or build it again).
    """

    def __init__(
        self,
        keyframes: torch.Tensor,
        segments: Sequence[Segment] | None = None,
        *,
        frames: int | None = None,
        easing: str = "linear",
        method: str = "slerp",
        labels: Sequence[str] | None = None,
        space: str | None = None,
    ) -> None:
        kf = check_embeddings(keyframes, name="keyframes", space=space)
        if kf.shape[0] < 2:
            raise ArgumentError(
                f"a trajectory needs at least two keyframes, got {kf.shape[0]}. "
                "Stack them as (K, d) with K >= 2, e.g. torch.cat([a, b])."
            )
        self.space = space_of(kf)  # (tagged by the check: a plain str, also for a numpy string given as space=)
        # a copy: changing the caller's tensor later must not change the trajectory (or its fingerprint)
        self.keyframes = tag(kf.detach().to("cpu", torch.float32, copy=True), self.space)
        n_seg = kf.shape[0] - 1
        if segments is not None:
            given = [f"{k}={v!r}" for k, v, default in (("frames", frames, None), ("easing", easing, "linear"),
                                                          ("method", method, "slerp")) if v != default]  # fmt: skip
            if given:
                raise ArgumentError(
                    f"{', '.join(given)} would be ignored: the segments given set each segment's frames, easing "
                    "and method. Set them on the Segments, or drop segments to build them from these."
                )
        if segments is None:
            if isinstance(frames, (list, tuple)) or getattr(frames, "ndim", 0) == 1:  # (the error said a list is taken)
                per = frames.tolist() if hasattr(frames, "tolist") else list(frames)
                raise ArgumentError(
                    f"frames must be an int here (the total, both ends included), got {frames!r}; for one count per "
                    f"segment use Trajectory.chain(keyframes, frames={per!r}), or pass Segments."
                )
            counts = split_frames(48 if frames is None else _total_frames(frames, n_seg), n_seg)
            segments = [Segment(c, easing=easing, method=method) for c in counts]
        try:
            iterable = not isinstance(segments, Segment) and iter(segments) is not None
        except TypeError:
            iterable = False
        if not iterable:
            fix = (f"pass frames={segments} (a keyword) for that many frames" if isinstance(segments, numbers.Number)
                   else "pass [segment]" if isinstance(segments, Segment) and n_seg == 1 else
                   f"pass a list of {n_seg} Segments")  # fmt: skip
            raise ArgumentError(  # list() of them raised a raw TypeError
                f"segments must be a list of Segments, one per segment ({n_seg} here), got {type(segments).__name__}. "
                f"Fix: {fix}."
            )
        segments = list(segments)
        if len(segments) != n_seg:
            raise ArgumentError(f"{kf.shape[0]} keyframes need {n_seg} segments, got {len(segments)}.")
        for i, s in enumerate(segments):
            if not isinstance(s, Segment):
                raise ArgumentError(f"segments[{i}] must be a Segment, got {type(s).__name__}.")
        # copies, as of the keyframes: a Segment the caller changed later (or one listed twice, [Segment(24)] * 2)
        # changed this trajectory and its fingerprint
        self.segments = [copy.copy(s) for s in segments]
        for s in self.segments:
            s.ts = None if s.ts is None else list(s.ts)
        if labels is not None:
            if isinstance(labels, (str, bytes, dict)) or not hasattr(labels, "__len__") or getattr(labels, "ndim", 1) == 0:
                raise ArgumentError(f"labels must be a list of {kf.shape[0]} strings, one per keyframe, got {labels!r}.")
            if len(labels) != kf.shape[0]:
                raise ArgumentError(f"labels has {len(labels)} entries for {kf.shape[0]} keyframes.")
            for i, x in enumerate(labels):
                if not isinstance(x, str):
                    raise ArgumentError(f"labels[{i}] must be a string, got {x!r}; write it as the text to show.")
        self.labels = [str(x) for x in labels] if labels is not None else None

    # -- constructors ---------------------------------------------------------------
    @classmethod
    def interpolate(
        cls,
        a: torch.Tensor,
        b: torch.Tensor,
        *,
        frames: int = 48,
        easing: str = "linear",
        method: str = "slerp",
        labels: Sequence[str] | None = None,
    ) -> "Trajectory":
        """From ``a`` (1, d) to ``b`` (1, d) in ``frames`` frames, both ends included: one
        segment of ``easing`` (a name from :data:`EASINGS`) and ``method`` (``"slerp"``,
        ``"nlerp"`` or ``"lerp"``); ``labels``: one string per end, ``[a, b]``."""
        return cls.chain([a, b], frames=frames, easing=easing, method=method, labels=labels)

    @classmethod
    def chain(
        cls,
        keyframes: Sequence[torch.Tensor] | torch.Tensor,
        *,
        frames: int | Sequence[int] = 48,
        easing: str | Sequence[str] = "linear",
        method: str = "slerp",
        labels: Sequence[str] | None = None,
    ) -> "Trajectory":
        """Through every keyframe in order: ``keyframes`` is a list of ``(1, d)`` embeddings
        or a ``(K, d)`` tensor. ``frames`` is the total (an int, split evenly) or one count per
        segment (each excluding its end keyframe); ``easing`` a name from :data:`EASINGS` or
        one per segment; ``method`` (``"slerp"``, ``"nlerp"`` or ``"lerp"``) that of every
        segment; ``labels`` one string per keyframe."""
        if isinstance(keyframes, torch.Tensor):  # (K, d): its rows, each keeping the tensor's space
            keyframes = [tag(k.unsqueeze(0), space_of(keyframes)) for k in keyframes]
        items = [check_embeddings(k, name=f"keyframes[{i}]") for i, k in enumerate(keyframes)]
        for i, k in enumerate(items):
            if k.shape[0] != 1:
                raise ArgumentError(f"keyframes[{i}] must be one embedding (1, d), got {tuple(k.shape)}.")
        space = common_space(*items, names=tuple(f"keyframes[{i}]" for i in range(len(items))))
        dims = {k.shape[1] for k in items}
        if len(dims) > 1:
            from .errors import SpaceError

            raise SpaceError(f"keyframes have different sizes {sorted(dims)}; encode them all with one encoder.")
        if len(items) < 2:
            raise ArgumentError(f"a trajectory needs at least two keyframes, got {len(items)}.")
        n_seg = len(items) - 1
        if getattr(frames, "ndim", None) == 1 and hasattr(frames, "tolist"):  # a numpy array or tensor
            frames = frames.tolist()  # one count per segment, as a list gives them
        if isinstance(frames, (list, tuple)):
            counts = [_frame_count(f, f"frames[{i}]") for i, f in enumerate(frames)]
            from .spec import MAX_FRAMES

            for i, c in enumerate(counts):  # named here: Segment would only say "Segment.frames"
                if not 1 <= c <= MAX_FRAMES:
                    raise ArgumentError(
                        f"frames[{i}] must be an integer in [1, {MAX_FRAMES}] (segment {i}'s frames, its end "
                        f"keyframe excluded), got {c}. Give every segment a count in that range, e.g. "
                        f"frames=[24] * {n_seg}."
                    )
        else:
            counts = split_frames(_total_frames(frames, n_seg), n_seg)
        if len(counts) != n_seg:
            raise ArgumentError(f"frames has {len(counts)} entries for {n_seg} segments; give one per segment.")
        try:  # a name, or any sequence of names (a list, a tuple, a generator, a numpy array)
            # (numpy's names become plain str, as a trajectory file writes them)
            easings = [easing] * n_seg if isinstance(easing, str) else [str(e) if isinstance(e, str) else e for e in easing]
        except TypeError:  # not iterable: None, a number
            easings = None
        if easings is None or not all(isinstance(e, str) for e in easings):
            raise ArgumentError(f"easing must be a name from {tuple(EASINGS)} or a list of them, one per segment; got {easing!r}.")
        if len(easings) != n_seg:
            raise ArgumentError(f"easing has {len(easings)} entries for {n_seg} segments.")
        segs = [Segment(c, easing=e, method=method) for c, e in zip(counts, easings)]
        kf = tag(torch.cat([k.float() for k in items]), space)
        return cls(kf, segs, labels=labels, space=space)

    @classmethod
    def text_diff(
        cls,
        image: torch.Tensor,
        source: torch.Tensor | None,
        target: torch.Tensor,
        *,
        theta: float = 0.5,
        frames: int = 48,
        easing: str = "linear",
        labels: Sequence[str] | None = None,
    ) -> "Trajectory":
        """The DALL-E 2 text diff (Ramesh et al. 2022, sec. 3.3): from the image embedding
        towards the text-diff direction ``normalize(target - source)``, slerping by angle
        fraction ``theta`` (usually 0.25-0.5; beyond ~0.5 the image's identity is lost).

        ``source`` is the embedding of a caption of the image; when you have none, encode a
        neutral caption such as ``"a photo"``, which the paper reports works. The end
        keyframe is ``slerp(image, z_d, theta)``; frames along the great circle between the
        two are exactly ``slerp(image, z_d, t * theta)`` (``theta`` must lie in [0, 1], as
        in a spec file; past ``theta = 1`` the path would overshoot ``z_d``). ``frames``,
        ``easing`` and ``labels`` (two: the image and the edit) are those of :meth:`interpolate`.
        """
        from .ops import text_diff as _text_diff

        if source is None:
            raise ArgumentError(
                "text_diff needs the source caption's embedding; with no caption, encode a neutral one: "
                "source = encoder.encode_text('a photo')."
            )
        img = check_embeddings(image, name="image")
        source = check_embeddings(source, name="source")  # a (d,) row is one embedding, as for image
        target = check_embeddings(target, name="target")
        for name, z in (("image", img), ("source", source), ("target", target)):
            if isinstance(z, torch.Tensor) and (z.ndim != 2 or z.shape[0] != 1):
                raise ArgumentError(
                    f"{name} must be one embedding (1, d), got {tuple(z.shape)}; "
                    f"for a batch, make one trajectory per row ({name}[i : i + 1])."
                )
        if isinstance(theta, torch.Tensor) and theta.numel() == 1:
            theta = theta.item()
        elif type(theta).__module__ == "numpy" and getattr(theta, "size", None) == 1:
            theta = theta.item()  # a numpy array of one number, as a tensor (ops.text_diff and a spec take it)
        if not is_finite_real(theta) or not 0.0 <= float(theta) <= 1.0:  # (a 400-digit int: float() overflowed)
            raise ArgumentError(
                f"theta must be one number in [0, 1] (usually 0.25-0.5), got {theta!r}. "
                "For several edit strengths, make one trajectory each, or use ops.text_diff with a tensor of thetas."
            )
        end = _text_diff(img, source, target, float(theta))
        return cls.chain([img, end], frames=frames, easing=easing, labels=labels)

    # -- sampling -------------------------------------------------------------------
    def params(self) -> list[tuple[int, float]]:
        """(segment index, path parameter) of every frame; the closing frame is (K-2, 1.0)."""
        out: list[tuple[int, float]] = []
        for i, s in enumerate(self.segments):
            out.extend((i, float(t)) for t in s.params())
        out.append((len(self.segments) - 1, 1.0))
        return out

    def __len__(self) -> int:
        return sum(s.hold + s.frames for s in self.segments) + 1

    @property
    def num_frames(self) -> int:
        return len(self)

    @property
    def dim(self) -> int:
        return int(self.keyframes.shape[1])

    def keyframe_indices(self) -> list[int]:
        """Frame index at which each keyframe is shown exactly (after its hold)."""
        idx, pos = [], 0
        for s in self.segments:
            idx.append(pos + s.hold)
            pos += s.hold + s.frames
        idx.append(pos)
        return idx

    def _segment_error(self, i: int, exc: Exception) -> ArgumentError:
        """``exc`` (from drawing segment ``i``) said of that segment and its two keyframes."""
        names = self._keyframe_names(i)
        return ArgumentError(f"segment {i} ({names[0]} -> {names[1]}) cannot be {self.segments[i].method}ed: {exc}")

    def _keyframe_names(self, i: int) -> tuple[str, str]:
        """How an error names segment ``i``'s two keyframes (with their labels if any)."""
        out = []
        for k in (i, i + 1):
            label = f" {self.labels[k]!r}" if self.labels else ""
            out.append(f"keyframes[{k}]{label}")
        return out[0], out[1]

    def _refuse_antipodal_segment(self, i: int, a: torch.Tensor, b: torch.Tensor) -> None:
        """Refuse segment ``i`` between antipodal keyframes ``a``, ``b`` (1, d), for every
        method (as slerp refuses them): an nlerp path between opposite points is a hard cut
        halfway (unless a frame lands exactly there), a lerp path crosses the zero vector."""
        from .ops import _ANTIPODAL_COS, _cos_any_norm

        cos = float(_cos_any_norm(a, b)[0])  # (a zero keyframe is left to the method, as before)
        if cos < _ANTIPODAL_COS:
            names = self._keyframe_names(i)
            raise ArgumentError(
                f"its keyframes are antipodal (cosine {cos:.6f}, about -1): there is no unique path "
                "between opposite points (slerp is undefined, nlerp jumps from one to the other halfway, "
                f"lerp passes through the zero vector). Insert an intermediate keyframe c: chain "
                f"{names[0]} -> c -> {names[1]}."
            )

    def embeddings(self) -> torch.Tensor:
        """Sample every frame: ``(T, d)`` float32, tagged; unit norm for slerp and nlerp
        segments, shorter for lerp ones (which decoders normalise, so they render as nlerp).

        Raises:
            ArgumentError: a segment's two keyframes are antipodal (cosine < -1 + 1e-4),
                whatever its method and frame count: there is no unique path between
                opposite points (slerp is undefined, nlerp jumps from one to the other
                halfway, lerp passes through the zero vector). Insert a keyframe between them.
        """
        from . import ops

        # each segment's frames go into the tensor returned as they are drawn: a list of the segments'
        # frames, then their concatenation, held a long path's embeddings twice
        params = [s.params().to(torch.float32) for s in self.segments]
        out = torch.empty(sum(t.shape[0] for t in params) + 1, self.keyframes.shape[1], dtype=torch.float32)
        pos = 0
        for i, (s, t) in enumerate(zip(self.segments, params)):
            a, b = self.keyframes[i : i + 1], self.keyframes[i + 1 : i + 2]
            fn = {"slerp": ops.slerp, "nlerp": ops.nlerp, "lerp": ops.lerp}[s.method]
            norm = a.norm(dim=-1, keepdim=True)
            if not bool((t != 0).any()) and (s.method == "lerp" or bool(norm.isfinite().all() and (norm > 0).all())):
                # it shows only its start keyframe (a cut): no path, whatever the end (a zero or
                # non-finite start is left to the method, which refuses it as before)
                # (_unit: a start whose norm overflows or underflows in float32 still gives its direction)
                out[pos : pos + t.shape[0]] = (a if s.method == "lerp" else ops._unit(a, "a")).expand(t.shape[0], -1)
                pos += t.shape[0]
                continue
            try:
                self._refuse_antipodal_segment(i, a, b)
                out[pos : pos + t.shape[0]] = fn(a, b, t)
            except ArgumentError as exc:  # e.g. antipodal keyframes: say which segment, not "rows [0]"
                raise self._segment_error(i, exc) from None
            pos += t.shape[0]
        last = self.keyframes[-1:]
        if self.segments[-1].method != "lerp":
            # as the segments normalise their frames: a closing keyframe whose norm overflows (1e20) or
            # underflows (1e-25) keeps its direction, and a zero one is refused (last / norm made a
            # zero or NaN frame, e.g. after an nlerp segment or a cut, which never looks at the end)
            try:
                last = ops._unit(last[0], "its end keyframe").unsqueeze(0)
            except ArgumentError as exc:
                raise self._segment_error(len(self.segments) - 1, exc) from None
        out[pos:] = last
        return tag(out, self.space)

    # -- serialisation --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON/TOML-serialisable description (keyframes as lists of floats)."""
        d: dict[str, Any] = {
            "format": "latentlab.trajectory/1",
            "space": self.space,
            "dim": self.dim,
            "keyframes": [[float(x) for x in row] for row in self.keyframes],
            "segments": [{k: v for k, v in asdict(s).items() if v is not None} for s in self.segments],
        }
        if self.labels is not None:
            d["labels"] = list(self.labels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Trajectory":
        """Inverse of :meth:`to_dict`: the trajectory the dict ``d`` describes; raises
        :class:`SpecError` on malformed input."""
        if not isinstance(d, dict) or "keyframes" not in d or "segments" not in d:
            raise SpecError("a trajectory file needs 'keyframes' (list of vectors) and 'segments' (list of tables).")
        unknown = set(d) - {"format", "space", "dim", "keyframes", "segments", "labels"}
        if unknown:
            raise SpecError(f"trajectory has unknown field(s) {sorted(unknown)}; known: format, space, dim, keyframes, "
                            "segments, labels.")  # fmt: skip
        if d.get("format", "latentlab.trajectory/1") != "latentlab.trajectory/1":
            raise SpecError(f"trajectory 'format' is {d['format']!r}; this latentlab reads 'latentlab.trajectory/1'. "
                            "Upgrade latentlab to read it.")  # fmt: skip
        if isinstance(d["keyframes"], list) and any(
            isinstance(x, bool) for row in d["keyframes"] if isinstance(row, list) for x in row
        ):
            raise SpecError("trajectory 'keyframes' must hold numbers, not true/false.")
        try:
            kf = torch.tensor(d["keyframes"], dtype=torch.float32)
        except (TypeError, ValueError, OverflowError) as exc:  # (OverflowError: a 400-digit int)
            raise SpecError(f"trajectory 'keyframes' must be a list of equal-length number lists ({exc}).") from None
        if kf.ndim != 2 or kf.shape[0] == 0:
            raise SpecError(f"trajectory 'keyframes' must be a non-empty list of vectors, got shape {tuple(kf.shape)}.")
        if d.get("dim") is not None and d["dim"] != kf.shape[1]:
            raise SpecError(f"trajectory 'dim' is {d['dim']!r} but its keyframes have {kf.shape[1]} numbers each.")
        if not isinstance(d["segments"], list):
            raise SpecError(f"trajectory 'segments' must be a list of tables, got {type(d['segments']).__name__}.")
        segs = []
        for i, s in enumerate(d["segments"]):
            if not isinstance(s, dict):
                raise SpecError(f"segments[{i}] must be a table, got {type(s).__name__}.")
            unknown = set(s) - {"frames", "easing", "method", "hold", "ts"}
            if unknown:
                raise SpecError(f"segments[{i}] has unknown field(s) {sorted(unknown)}.")
            if "frames" not in s:
                raise SpecError(f"segments[{i}] needs 'frames' (its frame count, end keyframe excluded; with 'ts', len(ts)).")
            if isinstance(s.get("ts"), list) and "frames" in s and s["frames"] != len(s["ts"]):
                # to_dict writes frames = len(ts): another count is an edit that ts would silently undo
                raise SpecError(f"segments[{i}]: frames is {s['frames']!r} but ts has {len(s['ts'])} parameters; "
                                "with ts a segment has one frame per parameter. Make frames len(ts).")  # fmt: skip
            try:
                segs.append(Segment(**s))
            except (ArgumentError, TypeError) as exc:
                raise SpecError(f"segments[{i}]: {exc}") from None
        if d.get("space") is not None and not isinstance(d["space"], str):
            raise SpecError(f"trajectory 'space' must be a CLIP space name (a string), got {d['space']!r}.")
        try:
            return cls(kf, segs, labels=d.get("labels"), space=d.get("space"))
        except ArgumentError as exc:
            raise SpecError(f"trajectory: {exc}") from None

    def save(self, path: str | Path) -> Path:
        """Write to ``path`` as JSON (``.json``) or TOML (``.toml``); returns the path written."""
        from .spec import dump_file

        written = dump_file(self.to_dict(), path)
        warn_added_easings((seg.easing for seg in self.segments), f"trajectory file {str(path)!r}")
        return written

    @classmethod
    def load(cls, path: str | Path) -> "Trajectory":
        """Read the file at ``path`` written by :meth:`save`."""
        from .spec import load_file

        return cls.from_dict(load_file(path, what="trajectory file"))

    def fingerprint(self) -> str:
        """sha256 of the sampled embeddings and the space: equal paths, equal fingerprints."""
        z = self.embeddings().contiguous()
        h = hashlib.sha256(str(self.space).encode())
        h.update(z.reshape(-1).view(torch.uint8).numpy())  # (hashed where they lie: tobytes() copied them)
        return h.hexdigest()

    def __setstate__(self, state: dict[str, Any]) -> None:
        # the keyframes' tag again: sent to another process (multiprocessing pickles tensors its own
        # way), they arrived untagged, so operators on them no longer checked their space
        self.__dict__.update(state)
        tag(self.keyframes, self.space)

    def __repr__(self) -> str:
        return (
            f"Trajectory(keyframes={self.keyframes.shape[0]}, frames={len(self)}, dim={self.dim}, "
            f"space={self.space!r})"
        )
