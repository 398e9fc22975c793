"""Even pacing: place a trajectory's frames so that the *picture* changes by the same amount
from each frame to the next.

Uniform steps in CLIP space do not give uniform change on screen: a decoder holds one
picture for a while and then snaps to the next, so a morph with evenly spaced embeddings
crawls and then jumps. :func:`even_pacing` measures the change instead of assuming it:

1. **Coarse pass.** Decode each segment at evenly spaced path parameters (half as many
   as its frames, or ``coarse=``), with the same starting noise the render will use.
2. **Distance.** Measure the change between neighbouring samples with an offline
   perceptual distance, ``metric=``:

   - ``"clip"`` (default): the angle, in radians, between the CLIP image embeddings of the
     two decoded pictures (``arccos`` of their cosine similarity), computed with the given
     encoder. The angle rather than ``1 - cos``: angles add up along a path (``1 - cos``
     grows with the square of the step, so halving a step would quarter it), and pacing
     relies on distances adding up.
   - ``"pixel"``: root-mean-square difference of the two pictures, pixel values in [0, 1].
     Needs no encoder; follows colour and layout, blind to meaning.

3. **Refine by bisection.** Wherever one sample interval changes more than ``1 + tol``
   times the mean interval of its segment's coarse pass (a sudden transition hides there), decode
   its midpoint and split it; repeat until no interval is that large, a split would make
   halves narrower than a quarter of a uniform frame step, or ``max_samples`` extra decodes
   are spent.
4. **Reparametrise.** The cumulative distance along each segment is piecewise linear
   between the samples; its inverse places the segment's frames at equal distance
   increments. The frame budget is kept (per segment, or re-split across segments in
   proportion to their measured length when ``frames=`` is given).
5. **Optional passes** (``passes=2, 3, ...``): decode the paced frames, add them to the
   samples measured so far (coarse pass, bisection, earlier passes) and solve again from all
   of them.

The result is an ordinary :class:`~latentlab.Trajectory` whose segments carry explicit
path parameters (:attr:`Segment.ts`): render it like any other. Everything is
deterministic (fixed noise, no sampling), so the same inputs give the same pacing.

>>> import latentlab as ll                                                  # doctest: +SKIP
>>> enc, dec = ll.create_encoder("mini"), ll.create_decoder("mini")          # doctest: +SKIP
>>> paced = ll.even_pacing(path, enc, dec, seed=0)                          # doctest: +SKIP
>>> frames = dec.render(paced.trajectory, seed=0)                           # doctest: +SKIP
>>> ll.pacing_stats(frames, encoder=enc)["cv"]                              # doctest: +SKIP
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from .errors import ArgumentError, SpaceError, check_int, check_number, check_seed, is_finite_real, result_fix

__all__ = ["even_pacing", "fine_pacing_settings", "pacing_stats", "frame_distances", "Pacing", "PACING_METRICS",
           "PACING_MODES"]

PACING_METRICS = ("clip", "pixel")
"""Perceptual distances :func:`even_pacing` can equalise (see the module docstring)."""

PACING_MODES = ("uniform", "even", "fine")
"""``"uniform"``: frames at the segments' own (eased) parameters; ``"even"``: :func:`even_pacing`
with its defaults (one coarse pass); ``"fine"``: :func:`even_pacing` with
:func:`fine_pacing_settings` (about ten decodes per frame; how often it meets the smoothness
goals is measured in docs/quality.md)."""


def fine_pacing_settings(trajectory: Any) -> dict[str, Any]:
    """The finer :func:`even_pacing` settings that docs/quality.md measured (on mini's
    shipped weights 4 of 10 benchmark morphs at CV <= 0.15 paced by the CLIP angle and 10 of
    10 by pixels, every largest step within 2x the median; on the third session's weights 10 of
    10 by either; there with 12 moving frames:
    ``coarse=12``, ``max_samples=39``), scaled to ``trajectory``: one coarse sample per frame of its longest
    segment (at least 12), three bisection decodes per frame of the path (at least 39), three
    passes, ``tol=0.1``, ``min_width=0.001`` and six relaxation rounds.

    >>> from latentlab.trajectory import Segment, Trajectory
    >>> fine_pacing_settings(Trajectory(torch.eye(2), [Segment(24)]))["coarse"]
    24
    """
    from .trajectory import Trajectory

    if not isinstance(trajectory, Trajectory):  # (None or a tensor raised a raw AttributeError on .segments)
        raise ArgumentError(f"trajectory must be a latentlab Trajectory, got {type(trajectory).__name__}."
                            + result_fix(trajectory, "trajectory"))
    frames = [s.frames for s in trajectory.segments]
    return {"coarse": max(12, *frames), "passes": 3, "tol": 0.1, "max_samples": 3 * max(13, sum(frames) + 1),
            "min_width": 0.001, "relax": 6}


# -- distances and statistics ------------------------------------------------------------


def _stack_frames(x: Any) -> Any:
    """A list of ``(H, W, 3)`` frames, numpy arrays, tensors or PIL images as collected in a loop, as
    one array keeping their dtype (uint8 stays uint8; a PIL image made RGB as
    :func:`latentlab.load_image` makes one); anything else unchanged. (PIL images went through
    ``np.asarray(x, float64)``: dark frames were taken for floats in [0, 1], 255 times too far apart.)"""
    from .video import _to_numpy

    if not isinstance(x, (list, tuple)) or not x:
        return x
    arrays = [
        f.detach().cpu().numpy() if isinstance(f, torch.Tensor)
        else _to_numpy(f) if type(f).__module__.split(".")[0] == "PIL" else f
        for f in x
    ]  # fmt: skip
    if all(isinstance(f, np.ndarray) and f.ndim == 3 for f in arrays):
        for i, f in enumerate(arrays):  # (np.stack raised a raw ValueError)
            if f.shape != arrays[0].shape:
                raise ArgumentError(
                    f"frame {i} has shape {tuple(f.shape)} but frame 0 has {tuple(arrays[0].shape)}; all frames must "
                    "share one size. Fix: resize them to a common size first."
                )
        return np.stack(arrays)
    return x


def _check_frames(frames: Any, name: str = "frames") -> np.ndarray:
    """``frames`` as uint8 ``(T, H, W, 3)``: uint8 as decoders return them, or float in [0, 1]
    (or another integer dtype in [0, 255]) converted as :func:`latentlab.write_video` does."""
    from .video import _to_uint8

    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    frames = _stack_frames(frames)
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3:
        got = getattr(frames, "shape", type(frames).__name__)
        raise ArgumentError(f"{name} must be frames (T, H, W, 3), uint8 or float in [0, 1], got {got}.")
    return _to_uint8(frames, name)


def _check_distances(d: np.ndarray, name: str) -> np.ndarray:
    """``d`` as non-empty, finite, non-negative float64 distances ``(T - 1,)``."""
    d = np.asarray(d, dtype=np.float64)
    if d.size == 0:
        raise ArgumentError(f"{name} holds no distances; give at least two frames or embeddings, or one distance.")
    if not np.isfinite(d).all():
        raise ArgumentError(f"{name}: distances must be finite and >= 0, got NaN or infinite values.")
    if (d < 0).any():
        raise ArgumentError(
            f"{name}: distances must be finite and >= 0, got {float(d.min()):.4g}. Is this a single (d,) embedding? "
            "Pass at least two embeddings as (T, d) to measure the steps between them."
        )
    return d


def _clip_angles(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    cos = (torch.nn.functional.normalize(a.double(), dim=-1) * torch.nn.functional.normalize(b.double(), dim=-1)).sum(-1)
    return torch.arccos(cos.clamp(-1.0, 1.0)).numpy()


_PIXEL_BLOCK = 1 << 22
"""Pixel values (of all the pairs in one block) that :func:`_pixel_rms` turns into float64 at a
time: 4 M values, 32 MB a temporary array."""


def _pixel_rms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """RMS difference, pixel values in [0, 1], of each pair of frames ``a[k]``, ``b[k]`` (uint8
    ``(n, H, W, 3)``) -> ``(n,)`` float64; a block of pairs at a time (:data:`_PIXEL_BLOCK`
    values), so its float64 temporaries stay a few blocks' size: the whole video at once took
    about 16 times its frames' memory (a thousand 512 px frames, 12 GB)."""
    per = max(1, _PIXEL_BLOCK // max(1, int(np.prod(a.shape[1:]))))
    out = np.empty(a.shape[0], np.float64)
    for s in range(0, a.shape[0], per):
        diff = a[s : s + per].astype(np.float64) / 255.0 - b[s : s + per].astype(np.float64) / 255.0
        out[s : s + per] = np.sqrt((diff**2).reshape(diff.shape[0], -1).mean(axis=1))
    return out


def frame_distances(frames: Any, *, metric: str = "clip", encoder: Any = None) -> np.ndarray:
    """Distances between consecutive ``frames`` ``(T, H, W, 3)`` -> ``(T - 1,)`` float64.

    Frames are uint8, or float in [0, 1] (converted to uint8 as :func:`latentlab.write_video`
    does; other ranges and NaN are refused).

    ``metric="clip"``: angle in radians between the frames' CLIP image embeddings
    (``encoder`` required); ``"pixel"``: RMS difference with pixel values in [0, 1].

    >>> f = np.zeros((3, 4, 4, 3), np.uint8); f[1] = 255; f[2] = 255
    >>> frame_distances(f, metric="pixel").tolist()
    [1.0, 0.0]
    """
    f = _check_frames(frames)
    if f.shape[0] < 2:
        raise ArgumentError(f"frames needs at least two frames to measure a change, got {f.shape[0]}.")
    if metric == "pixel":
        return _pixel_rms(f[1:], f[:-1])
    if metric == "clip":
        if encoder is None:
            raise ArgumentError("metric='clip' needs encoder= (a latentlab Encoder); or use metric='pixel'.")
        z = encoder.encode_image(f)
        return _clip_angles(z[1:], z[:-1])
    raise ArgumentError(f"metric must be one of {PACING_METRICS}, got {metric!r}.")


def pacing_stats(frames_or_distances: Any, *, metric: str | None = None, encoder: Any = None) -> dict[str, float]:
    """How even a sequence of frames is: statistics of its consecutive-frame distances.

    ``frames_or_distances``: frames ``(T, H, W, 3)``, uint8 or float in [0, 1] (measured with
    ``metric``, which defaults to ``"clip"`` when an ``encoder`` is given and ``"pixel"``
    otherwise) or the distances themselves ``(T - 1,)`` (a numpy array, a list or a 1-D
    tensor). Empty input is refused.

    Returns ``cv`` (coefficient of variation: standard deviation / mean; 0 is perfectly
    even), ``max_jump_over_median`` (the largest step over the median step), and ``mean``,
    ``median``, ``max``, ``n``. A sequence with no change at all has ``cv = 0`` and
    ``max_jump_over_median = 1``.

    >>> s = pacing_stats(np.array([1.0, 1.0, 1.0, 3.0]))
    >>> round(s["cv"], 3), s["max_jump_over_median"]
    (0.577, 3.0)
    """
    x = frames_or_distances
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = _stack_frames(x)  # frames keep their dtype (uint8); distances become float64
    if isinstance(x, (list, tuple)):
        try:
            x = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):  # ("a", a ragged list, 10**400: raw numpy errors)
            raise ArgumentError(
                "frames_or_distances is a list that is neither distances (numbers, each within a float's range) nor "
                "frames of one size. Fix: pass distances (T - 1,) or frames (T, H, W, 3)."
            ) from None
    if isinstance(x, np.ndarray) and x.ndim == 4:
        d = frame_distances(x, metric=metric or ("clip" if encoder is not None else "pixel"), encoder=encoder)
    elif isinstance(x, np.ndarray) and x.ndim == 1:
        d = x.astype(np.float64)
    else:
        got = getattr(x, "shape", type(x).__name__)
        raise ArgumentError(f"frames_or_distances must be frames (T, H, W, 3) or distances (T - 1,), got {got}."
                            + result_fix(x, "frames"))
    d = _check_distances(d, "frames_or_distances")
    mean, med, mx = float(d.mean()), float(np.median(d)), float(d.max())
    if mx == 0.0:
        return {"cv": 0.0, "max_jump_over_median": 1.0, "mean": 0.0, "median": 0.0, "max": 0.0, "n": int(d.size)}
    return {
        "cv": float(d.std() / mean),
        "max_jump_over_median": float(mx / med) if med > 0 else math.inf,
        "mean": mean,
        "median": med,
        "max": mx,
        "n": int(d.size),
    }


# -- even pacing -------------------------------------------------------------------------


@dataclass(repr=False, eq=False)  # identity: == compared arrays and raised a raw ValueError
class Pacing:
    """What :func:`even_pacing` measured and built.

    Attributes:
        trajectory: the re-paced :class:`~latentlab.Trajectory` (same keyframes; segments with
            explicit ``ts``); render it like any other.
        samples: per segment, the sorted path parameters that were decoded, ``0`` to ``1``.
        distances: per segment, the measured distance between consecutive samples
            (``len(samples[i]) - 1`` values, in the metric's unit).
        metric: ``"clip"`` (radians) or ``"pixel"`` (RMS in [0, 1]).
        lengths: per segment, the total measured change (sum of its distances).
        decodes: how many pictures were decoded to measure (coarse pass, bisection, further
            passes and relaxation rounds together), counting those taken from ``measured=``.
        coarse_stats: :func:`pacing_stats` of the coarse pass, i.e. of uniformly spaced
            parameters: how uneven the uniform path is at that resolution.
        frame_distances: with ``relax``, per segment, the measured distances between the
            paced frames themselves (what the render will show); empty without.
        frame_stats: :func:`pacing_stats` of all of ``frame_distances`` (empty without ``relax``).
    """

    trajectory: Any
    samples: list[np.ndarray]
    distances: list[np.ndarray]
    metric: str
    lengths: list[float] = field(default_factory=list)
    decodes: int = 0
    coarse_stats: dict[str, float] = field(default_factory=dict)
    frame_distances: list[np.ndarray] = field(default_factory=list)
    frame_stats: dict[str, float] = field(default_factory=dict)

    def __repr__(self) -> str:
        frames = self.trajectory.num_frames if hasattr(self.trajectory, "num_frames") else "?"
        cvs = [f"{what} {stats['cv']:.3f}" for what, stats in (("uniform", self.coarse_stats), ("paced frames", self.frame_stats)) if "cv" in stats]
        return (
            f"Pacing({len(self.samples)} segment(s), {frames} frames, metric={self.metric!r}, decodes={self.decodes}"
            + (f", step CV: {', '.join(cvs)}" if cvs else "")
            + ")"
        )

    def __iter__(self):  # ``paced, distances = even_pacing(...)``
        return iter((self.trajectory, self.distances))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable record (what ``render_spec`` stores as ``pacing.json``)."""
        return {
            "format": "latentlab.pacing/1",
            "metric": self.metric,
            "trajectory": self.trajectory.to_dict(),
            "samples": [s.tolist() for s in self.samples],
            "distances": [d.tolist() for d in self.distances],
            "lengths": list(self.lengths),
            "decodes": self.decodes,
            "coarse_stats": dict(self.coarse_stats),
            "frame_distances": [d.tolist() for d in self.frame_distances],
            "frame_stats": dict(self.frame_stats),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Pacing":
        """Inverse of :meth:`to_dict`: the :class:`Pacing` the record ``d`` describes; raises
        :class:`SpecError` on malformed input (as :meth:`Trajectory.from_dict` does; it was a raw
        KeyError or TypeError)."""
        from .errors import SpecError
        from .trajectory import Trajectory

        needed = ("trajectory", "samples", "distances", "metric")
        if not isinstance(d, dict) or any(k not in d for k in needed):
            raise SpecError("a pacing record needs 'trajectory', 'samples', 'distances' and 'metric', as "
                            "Pacing.to_dict() writes them (a render folder's pacing.json).")  # fmt: skip
        try:
            return cls(
                trajectory=Trajectory.from_dict(d["trajectory"]),
                samples=[np.asarray(s, dtype=np.float64) for s in d["samples"]],
                distances=[np.asarray(x, dtype=np.float64) for x in d["distances"]],
                metric=d["metric"],
                lengths=[float(x) for x in d.get("lengths", [])],
                decodes=int(d.get("decodes", 0)),
                coarse_stats=dict(d.get("coarse_stats", {})),
                frame_distances=[np.asarray(x, dtype=np.float64) for x in d.get("frame_distances", [])],
                frame_stats=dict(d.get("frame_stats", {})),
            )
        except SpecError:  # the trajectory's own, naming its field
            raise
        except (TypeError, ValueError, OverflowError) as exc:  # a number that is not one, a list that is not
            raise SpecError(f"a malformed pacing record ({exc}); pass what Pacing.to_dict() returned.") from None


def _split_budget(moving: int, lengths: Sequence[float]) -> list[int]:
    """``moving`` frames over segments in proportion to ``lengths``, each at least 1
    (largest remainders)."""
    n = len(lengths)
    if moving < n:
        raise ArgumentError(f"frames leaves {moving} moving frames for {n} segments; give at least one per segment.")
    L = np.asarray(lengths, dtype=np.float64)
    L = np.full(n, 1.0) if L.sum() <= 0 else np.maximum(L, 1e-9)
    share = 1 + L / L.sum() * (moving - n)
    counts = np.floor(share).astype(int)
    rest = moving - counts.sum()
    for j in np.argsort(-(share - counts), kind="stable")[:rest]:
        counts[j] += 1
    return [int(c) for c in counts]


def _inverse_cumulative(samples: np.ndarray, dist: np.ndarray, n: int) -> list[float]:
    """``n`` parameters in [0, 1) at equal increments of the piecewise-linear cumulative
    distance through ``(samples, cumsum(dist))``; the first is 0."""
    total = float(dist.sum())
    if total <= 0:
        return [k / n for k in range(n)]
    d = np.maximum(dist, total * 1e-6)  # strictly increasing, so the inverse is a function
    cum = np.concatenate([[0.0], np.cumsum(d)])
    targets = cum[-1] * np.arange(n) / n
    ts = np.interp(targets, cum, samples)
    ts[0] = 0.0
    ts = np.minimum(ts, np.nextafter(1.0, 0.0))
    return [float(t) for t in ts]


#: how far a relaxation round moves each frame towards its new place (1 = all the way);
#: all the way overshoots and oscillates on mini's morphs, 0.6 settled best of the two tried
#: (docs/quality.md)
RELAX_STEP = 0.6


def _relax(frame_ts: Sequence[float], frame_dist: np.ndarray, samples: np.ndarray, dist: np.ndarray) -> list[float]:
    """New parameters for a segment's frames (``frame_ts``: its frames' parameters and the
    closing ``1.0``; ``frame_dist``: the measured distance between consecutive frames).

    The change inside each frame interval is spread in the shape the samples measured there,
    but scaled to add up to the distance measured between the two frames themselves, so the
    re-solve equalises what the video shows (a distance between frames is not the sum of the
    distances between the samples inside: the metric is not additive). Returns the moving
    frames' parameters, the first 0.
    """
    frame_ts = np.asarray(frame_ts, dtype=np.float64)
    pts = np.union1d(samples, frame_ts)
    width = np.diff(samples)
    density = np.where(width > 0, dist / np.maximum(width, 1e-12), 0.0)
    mid = (pts[:-1] + pts[1:]) / 2
    sub = density[np.clip(np.searchsorted(samples, mid) - 1, 0, len(dist) - 1)] * np.diff(pts)
    owner = np.clip(np.searchsorted(frame_ts, mid, side="right") - 1, 0, len(frame_dist) - 1)
    for k, dk in enumerate(frame_dist):
        inside = owner == k
        total = sub[inside].sum()
        sub[inside] = dk * (sub[inside] / total if total > 0 else 1.0 / max(int(inside.sum()), 1))
    return _inverse_cumulative(pts, sub, len(frame_dist))


def even_pacing(
    trajectory: Any,
    encoder: Any,
    decoder: Any,
    *,
    frames: int | None = None,
    coarse: int | None = None,
    metric: str = "clip",
    tol: float = 0.25,
    max_samples: int | None = None,
    min_width: float | None = None,
    passes: int = 1,
    relax: int = 0,
    seed: int = 0,
    noise: str = "shared",
    keyframe_seeds: list[int] | None = None,
    keyframe_noise: torch.Tensor | None = None,
    steps: int | None = None,
    guidance_scale: float | None = None,
    batch_size: int | None = None,
    eta: float = 0.0,
    progress: bool = False,
    measured: dict | None = None,
) -> Pacing:
    """Re-pace ``trajectory`` so consecutive frames differ by equal perceptual distances.

    Args:
        trajectory: a :class:`~latentlab.Trajectory` (keyframes, segments, methods and holds
            are kept; easings are replaced by measured parameters).
        encoder: the :class:`~latentlab.Encoder` of the decoder's CLIP space (used by
            ``metric="clip"``; may be ``None`` with ``metric="pixel"``).
        decoder: the :class:`~latentlab.decoders.Decoder` that will render the frames.
        frames: total frame budget; ``None`` keeps every segment's frame count, an int
            re-splits the moving frames across segments in proportion to their measured change.
        coarse: sample intervals per segment in the coarse pass; default half the
            segment's frames (at least 2). More samples measure the change more finely
            (the CLIP angle between nearby frames is noisy) at the cost of more decodes.
        metric: ``"clip"`` (CLIP image-embedding angle, radians) or ``"pixel"`` (RMS).
        tol: bisect sample intervals larger than ``(1 + tol)`` x the mean coarse interval of their
            segment.
        max_samples: cap on extra (bisection) decodes, in all; default the frame budget.
        min_width: the narrowest interval bisection makes, as a fraction of a segment's
            parameter range; default a quarter of a frame step (``0.25 / frames``).
            Smaller values let bisection find a sudden change ("snap") narrower than that,
            so pacing can put frames inside it, at the cost of more decodes.
        passes: ``1`` stops after the coarse pass and bisection; each further pass decodes
            the paced frames themselves, adds them to every sample measured so far and
            solves again from all of them (at most one frame budget of decodes per pass).
        relax: rounds that judge the frames themselves, after the passes: decode the paced
            frames, measure the distance between each pair of consecutive frames (what the
            video shows) and move every frame part of the way (:data:`RELAX_STEP`) towards
            where those distances come out equal; the most even placement measured (lowest
            coefficient of variation, per segment) is kept, so a round never makes it worse.
            Each round decodes up to one frame budget; ``.frame_stats`` reports the kept frames.
        seed, noise, keyframe_seeds, keyframe_noise: the starting noise, exactly as the
            render will use it (``"shared"``, ``"slerp"`` or ``"inverted"``; ``"per-frame"``
            noise changes every frame regardless of the path and cannot be paced).
        steps, guidance_scale, batch_size, eta: decoder settings (use the render's).
        progress: show a progress bar over the decodes.
        measured: a dict of the pictures measured so far, read before decoding and filled as
            it decodes (keys ``(segment, t)``; values what the metric compares). Give a later
            call the same dict to skip the decodes it holds: after an interruption, or to try
            other ``coarse``, ``tol``, ``passes``, ``relax`` or ``frames``. Only with the same
            trajectory, encoder, decoder, noise and sampling settings and ``metric``: the dict
            does not know what it was measured with (another metric is refused). (``render_spec`` keeps it in the render
            folder while pacing measures, so a rerun picks up where it stopped.) Reused
            samples come from other batches than a fresh call's, so the placement can differ
            from an uninterrupted call's by float rounding.

    Returns:
        a :class:`Pacing`: ``.trajectory`` (the re-paced path, same frame budget) and the
        measured ``.samples`` / ``.distances``; ``paced, distances = even_pacing(...)`` also
        works.
    """
    from . import ops
    from .render import NOISE_MODES, check_eta, decode_frames, keyframe_noise_for, make_noise, path_noise
    from .trajectory import Segment, Trajectory

    if not isinstance(trajectory, Trajectory):
        raise ArgumentError(f"trajectory must be a latentlab Trajectory, got {type(trajectory).__name__}."
                            + result_fix(trajectory, "trajectory"))
    if not isinstance(metric, str) or metric not in PACING_METRICS:
        raise ArgumentError(f"metric must be one of {PACING_METRICS}, got {metric!r}.")
    if metric == "clip" and encoder is None:
        raise ArgumentError("metric='clip' needs the encoder of the decoder's CLIP space; or use metric='pixel'.")
    from .edit import _check_parts

    call = "even_pacing(trajectory, encoder, decoder, ...)"  # swapped models failed deep inside, on an attribute
    # (the encoder measures pictures: encode_image is what it needs)
    _check_parts(call, needs={"encoder": ("encode_image",)}, **({"encoder": encoder} if metric == "clip" else {}), decoder=decoder)
    seed = check_seed(seed)  # int(seed) took 1.7 as 1, a seed render() refuses
    if not isinstance(noise, str) or noise not in NOISE_MODES:  # (an array's `in` was numpy's raw ValueError)
        raise ArgumentError(f"noise must be one of {NOISE_MODES}, got {noise!r}.")
    if noise == "per-frame":
        raise ArgumentError(
            "noise='per-frame' changes every frame whatever the path, so there is no change along the path to "
            "even out; pace with noise='shared' (or 'slerp' / 'inverted')."
        )
    if noise == "inverted" and keyframe_noise is None:
        raise ArgumentError("noise='inverted' needs keyframe_noise (from decoder.invert).")
    tol = check_number(tol, "tol", minimum=0)  # NaN turned bisection off silently
    if trajectory.dim != decoder.dim:
        raise ArgumentError(f"trajectory has dim {trajectory.dim} but the decoder expects {decoder.dim}.")
    dec_space = getattr(decoder, "space", None)
    if trajectory.space and dec_space and trajectory.space != dec_space:  # before any decode, as render() refuses it
        raise SpaceError(
            f"trajectory lives in CLIP space {trajectory.space!r} but the decoder renders {dec_space!r}. "
            "Encode the keyframes with the decoder's preset's encoder."
        )
    segs = trajectory.segments
    n_seg = len(segs)
    for i in range(n_seg):  # before any decode, as Trajectory.embeddings() refuses them at render time
        try:
            trajectory._refuse_antipodal_segment(i, trajectory.keyframes[i : i + 1], trajectory.keyframes[i + 1 : i + 2])
        except ArgumentError as exc:
            a_name, b_name = trajectory._keyframe_names(i)
            raise ArgumentError(f"segment {i} ({a_name} -> {b_name}) cannot be paced: {exc}") from None
    holds = sum(s.hold for s in segs)
    from .spec import MAX_FRAMES

    if frames is not None:
        if isinstance(frames, np.integer):
            frames = int(frames)  # as Trajectory takes them
        if not isinstance(frames, int) or isinstance(frames, bool) or frames < n_seg + 1 + holds:
            raise ArgumentError(
                f"frames must be an integer >= {n_seg + 1 + holds} (one per segment, the closing frame and "
                f"{holds} hold frames), got {frames!r}."
            )
        if frames - 1 - holds > MAX_FRAMES:  # re-split by measured change, one segment may get them all
            raise ArgumentError(f"frames={frames} re-split across the segments could give one segment more than "
                                f"{MAX_FRAMES} moving frames (the most a segment takes); use at most "
                                f"{MAX_FRAMES + 1 + holds} in all.")  # fmt: skip
    passes = check_int(passes, "passes", minimum=1)
    check_eta(eta, decoder)
    relax = check_int(relax, "relax", minimum=0)  # rounds
    # (numpy's floats too, as tol= and a spec's pacing_min_width take them: np.float32(0.1) was refused)
    if min_width is not None and (not is_finite_real(min_width) or not 0 < min_width < 1):
        raise ArgumentError(f"min_width must be a number in (0, 1) (a fraction of a segment), got {min_width!r}.")
    min_width = None if min_width is None else float(min_width)
    if coarse is not None and (isinstance(coarse, bool) or not isinstance(coarse, numbers.Integral)
                               or not 1 <= coarse <= MAX_FRAMES):  # fmt: skip
        raise ArgumentError(f"coarse must be an integer in [1, {MAX_FRAMES}] (sample intervals per segment, each one "
                            f"decode), got {coarse!r}.")  # (a typo of 10**9 filled the memory before any decode)
    coarse = None if coarse is None else int(coarse)
    budget = len(trajectory) if frames is None else frames
    max_samples = budget if max_samples is None else check_int(max_samples, "max_samples", minimum=0)
    bs = decoder.default_batch_size if batch_size is None else check_int(batch_size, "batch_size", minimum=1)

    shape = tuple(decoder.noise_shape())
    kn = None
    if noise in ("slerp", "inverted"):
        kn = keyframe_noise_for(
            trajectory.keyframes.shape[0], shape, seed=seed, keyframe_seeds=keyframe_seeds, keyframe_noise=keyframe_noise
        )
    base_noise = make_noise(shape, [int(seed)])[0]
    kf = trajectory.keyframes
    fns = {"slerp": ops.slerp, "nlerp": ops.nlerp, "lerp": ops.lerp}

    def key(i: int, t: float) -> tuple[int, float]:
        return (i + 1, 0.0) if t >= 1.0 and i + 1 < n_seg else (i, float(t))

    if measured is not None and not isinstance(measured, dict):
        raise ArgumentError(f"measured must be a dict (of earlier measurements, or empty), got {type(measured).__name__}.")
    cache: dict[tuple[int, float], Any] = {} if measured is None else measured
    for v in cache.values():  # pictures (pixel) or their CLIP embeddings (clip): a dict serves one metric
        held = ("pixel" if isinstance(v, np.ndarray) and v.ndim == 4 else
                "clip" if isinstance(v, torch.Tensor) and v.ndim == 2 else None)  # fmt: skip
        if held != metric:
            raise ArgumentError(
                f"measured= holds what metric={held!r} compares, but this call's metric is {metric!r}; give each "
                "metric a dict of its own." if held is not None else
                f"measured= holds a {type(v).__name__} of shape {tuple(getattr(v, 'shape', ()))}, not what even_pacing "
                "stores (pixel: uint8 pictures (1, H, W, 3) as numpy arrays; clip: embeddings (1, d) as torch tensors); "
                "pass a dict that even_pacing filled, or an empty one."
            )
    used: set[tuple[int, float]] = set()  # the points this call measures, decoded now or found in `measured`

    from ._bars import progress_bar

    bar = progress_bar(progress, desc="pacing", unit="frame")

    def measure(points: list[tuple[int, float]]) -> None:
        wanted = {key(i, t) for i, t in points}
        reused = len((wanted - used) & cache.keys())
        used.update(wanted)
        bar.update(reused)  # (counted as measured, not decoded again)
        todo = sorted(wanted - cache.keys())
        for start in range(0, len(todo), bs):
            chunk = todo[start : start + bs]
            z = torch.cat([fns[segs[i].method](kf[i : i + 1], kf[i + 1 : i + 2], float(t)) for i, t in chunk])
            x = base_noise.expand(len(chunk), *shape).clone() if kn is None else path_noise(chunk, kn)
            out = decode_frames(decoder, z, x, seeds=[int(seed)] * len(chunk), steps=steps, guidance_scale=guidance_scale,
                                eta=eta)  # fmt: skip
            desc: Any = encoder.encode_image(out) if metric == "clip" else out
            for j, p in enumerate(chunk):
                cache[p] = desc[j : j + 1]
            bar.update(len(chunk))

    def dist(p: tuple[int, float], q: tuple[int, float]) -> float:
        a, b = cache[key(*p)], cache[key(*q)]
        return float((_clip_angles(a, b) if metric == "clip" else _pixel_rms(a, b))[0])

    # 1. coarse pass: uniform parameters
    samples: list[list[float]] = []
    for s in segs:
        c = coarse if coarse is not None else max(2, math.ceil(s.frames / 2))
        samples.append([j / c for j in range(c + 1)])
    # the bar's total: the most this call can measure (the coarse samples, the bisection's budget, and
    # each later pass and relaxation round at most every frame anew), set to what it did at the end;
    # it had no total, so a long pacing showed a count with no end or time left
    from ._bars import set_total

    moving = sum(s.frames for s in segs) if frames is None else frames - 1 - holds
    rounds = (passes - 1) + (relax + 1 if relax > 0 else 0)
    # bisection halves intervals wider than `narrowest` (below), so it adds at most 2 / narrowest points a segment
    split = sum(4 * max(s.frames, 1) if min_width is None else math.ceil(1 / float(min_width)) for s in segs)
    set_total(bar, sum(len(ts) for ts in samples) + min(max_samples, split) + rounds * (moving + n_seg))
    try:
        measure([(i, t) for i, ts in enumerate(samples) for t in ts])
        dists = [[dist((i, ts[j]), (i, ts[j + 1])) for j in range(len(ts) - 1)] for i, ts in enumerate(samples)]
        coarse_all = np.concatenate([np.asarray(d) for d in dists])
        coarse_stats = pacing_stats(coarse_all)
        thresholds = [(1 + tol) * (sum(d) / len(d)) for d in dists]
        frame_counts = [s.frames for s in segs]

        # 2. refine by bisection where an interval changes much more than the mean
        spent = 0
        while spent < max_samples:
            cand = []
            for i, (ts, d) in enumerate(zip(samples, dists)):
                # halves no narrower than min_width (default 1/4 frame step)
                narrowest = 0.5 / max(frame_counts[i], 1) if min_width is None else 2 * float(min_width)
                for j, dj in enumerate(d):
                    if dj > thresholds[i] and ts[j + 1] - ts[j] > narrowest:
                        cand.append((dj, i, j))
            if not cand:
                break
            cand.sort(key=lambda c: -c[0])
            cand = cand[: max_samples - spent]
            mids = [(i, (samples[i][j] + samples[i][j + 1]) / 2) for _, i, j in cand]
            measure(mids)
            spent += len(mids)
            for i, m in mids:
                ts = samples[i]
                j = int(np.searchsorted(ts, m))
                ts.insert(j, m)
                d = dists[i]
                d[j - 1 : j] = [dist((i, ts[j - 1]), (i, m)), dist((i, m), (i, ts[j + 1]))]

        # 3. reparametrise each segment by the inverse of its cumulative distance
        lengths = [float(sum(d)) for d in dists]
        if frames is not None:
            frame_counts = _split_budget(frames - 1 - holds, lengths)
        params = [_inverse_cumulative(np.asarray(samples[i]), np.asarray(dists[i]), frame_counts[i]) for i in range(n_seg)]
        # 4. optional further passes: measure at the frames themselves, re-solve
        # (every parameter measured so far stays a sample: the paced frames add to the coarse
        # and bisection samples, they do not replace them)
        for _ in range(passes - 1):
            samples = [sorted(set(old) | set(ts) | {1.0}) for ts, old in zip(params, samples)]
            measure([(i, t) for i, ts in enumerate(samples) for t in ts])
            dists = [[dist((i, ts[j]), (i, ts[j + 1])) for j in range(len(ts) - 1)] for i, ts in enumerate(samples)]
            lengths = [float(sum(d)) for d in dists]
            params = [_inverse_cumulative(np.asarray(samples[i]), np.asarray(dists[i]), frame_counts[i]) for i in range(n_seg)]
        # 5. optional relaxation: measure the frames themselves and move them, keeping the best
        frame_dists: list[np.ndarray] = []
        if relax > 0:
            best: list[tuple[float, list[float], np.ndarray]] = [(math.inf, ts, np.zeros(0)) for ts in params]
            for r in range(relax + 1):
                measure([(i, t) for i, ts in enumerate(params) for t in ts + [1.0]])
                for i, ts in enumerate(params):
                    full = ts + [1.0]
                    d = np.asarray([dist((i, full[j]), (i, full[j + 1])) for j in range(len(ts))])
                    cv = pacing_stats(d)["cv"]
                    if cv < best[i][0]:
                        best[i] = (cv, ts, d)
                    if r < relax:
                        target = _relax(full, d, np.asarray(samples[i]), np.asarray(dists[i]))
                        params[i] = [a + RELAX_STEP * (b - a) for a, b in zip(ts, target)]
            params = [b[1] for b in best]
            frame_dists = [b[2] for b in best]
        set_total(bar, bar.n)  # (it measured less than the most it could: done)
    finally:
        bar.close()
    new_segs = [Segment(len(ts), method=s.method, hold=s.hold, ts=ts) for ts, s in zip(params, segs)]
    paced = Trajectory(kf, new_segs, labels=trajectory.labels, space=trajectory.space)
    return Pacing(
        trajectory=paced,
        samples=[np.asarray(ts, dtype=np.float64) for ts in samples],
        distances=[np.asarray(d, dtype=np.float64) for d in dists],
        metric=metric,
        lengths=lengths,
        decodes=len(used),
        coarse_stats=coarse_stats,
        frame_distances=frame_dists,
        frame_stats=pacing_stats(np.concatenate(frame_dists)) if frame_dists else {},
    )
