"""Operators on CLIP embeddings: interpolation, text diffs, arithmetic, means, directions.

Every operator is pure, batched and device-agnostic:

* embeddings are ``(..., d)`` float tensors; leading dimensions broadcast against each
  other (and against ``t`` / ``theta`` / ``amount`` where there is one), so a single
  call computes a whole path or a whole batch;
* the result carries the CLIP space tag shared by the inputs
  (:func:`latentlab.space.common_space`); mixing two spaces, or two sizes ``d``, raises
  :class:`~latentlab.errors.SpaceError`;
* float16 / bfloat16 inputs are computed in float32 and returned in their own dtype;
  float64 stays float64; the result lives on the inputs' device.

The DALL-E 2 paper (Ramesh et al. 2022, "Hierarchical Text-Conditional Image Generation
with CLIP Latents", sec. 3) explores CLIP image space with exactly these moves: spherical
interpolation between two image embeddings and *text diffs*, a slerp of an image
embedding towards the normalised difference of two caption embeddings.

>>> import torch
>>> from latentlab.space import tag, space_of
>>> a = tag(torch.tensor([[1.0, 0.0]]), "mini")
>>> b = tag(torch.tensor([[0.0, 1.0]]), "mini")
>>> path = slerp(a, b, torch.linspace(0, 1, 3))
>>> path
tensor([[1.0000, 0.0000],
        [0.7071, 0.7071],
        [0.0000, 1.0000]])
>>> space_of(path)
'mini'
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Iterable, Sequence, Union

import numpy as np
import torch

from .errors import ArgumentError, SpaceError, is_finite_real
from .space import common_space, dtype_problem, rescale_rows, tag

__all__ = [
    "lerp",
    "nlerp",
    "slerp",
    "text_diff",
    "text_diff_direction",
    "arithmetic",
    "combine",
    "spherical_mean",
    "project_out",
    "amplify",
    "cosine",
    "similarity_matrix",
]

#: A blend factor: a Python number, or a tensor (or a sequence of numbers or a numpy array,
#: made a tensor) broadcasting against the leading dims.
Scalar = Union[float, int, torch.Tensor, Sequence[float], np.ndarray]

_LOW_PRECISION = (torch.float16, torch.bfloat16)
#: Below this cosine two unit vectors count as antipodal (no unique great circle).
_ANTIPODAL_COS = -1.0 + 1e-4
#: A result whose norm is below this fraction of its inputs' scale counts as zero.
_ZERO_REL = 1e-6
#: A row whose norm is within this of 1 counts as unit-norm already (see :func:`_as_unit`).
_UNIT_TOL = 1e-6


# ----------------------------------------------------------------------------------
# input checking helpers
# ----------------------------------------------------------------------------------
def _fmt_rows(mask: torch.Tensor, limit: int = 10) -> str:
    """`` (rows [i, ...])`` for the ``True`` entries of ``mask`` (leading dims), or ``""``
    for a 0-d mask; for error messages."""
    if mask.ndim == 0:
        return ""
    idx = mask.nonzero().tolist()
    rows = [i[0] if len(i) == 1 else tuple(i) for i in idx]
    more = "..." if len(rows) > limit else ""
    return f" (rows {rows[:limit]}{more})"


def _check_inputs(
    xs: Sequence[object], names: Sequence[str], *, broadcast: bool = True
) -> tuple[list[torch.Tensor], str | None, torch.dtype, torch.dtype, tuple[int, ...]]:
    """Validate embedding arguments of one operator.

    Returns ``(tensors in the working dtype, common space, output dtype, working dtype,
    broadcast leading shape)``.
    """
    for x, name in zip(xs, names):
        if not isinstance(x, torch.Tensor):
            if type(x).__module__ == "numpy":
                fix = f"pass torch.from_numpy({name})"
            elif isinstance(x, (list, tuple)) and x and all(isinstance(e, torch.Tensor) for e in x):
                fix = f"pass torch.stack({name}) to make one tensor of them"  # torch.as_tensor fails on a list of tensors
            else:
                fix = "encode it with an Encoder, or wrap raw numbers with torch.as_tensor(...)"
            raise ArgumentError(f"{name} must be a torch.Tensor of shape (..., d), got {type(x).__name__}. Fix: {fix}.")
        problem = dtype_problem(x)
        if problem:  # (a float8 tensor raised a raw NotImplementedError from isfinite)
            raise ArgumentError(f"{name} must be a floating tensor, {problem}; convert it with {name}.float().")
        if x.ndim == 0 or x.shape[-1] == 0:
            raise ArgumentError(
                f"{name} must have shape (..., d) with d >= 1, got {tuple(x.shape)}."
            )
    space = common_space(*xs, names=tuple(names))
    tensors: list[torch.Tensor] = list(xs)  # type: ignore[arg-type]
    first, first_name = tensors[0], names[0]
    for x, name in zip(tensors[1:], names[1:]):
        if x.shape[-1] != first.shape[-1]:
            raise SpaceError(
                f"{first_name} has shape {tuple(first.shape)} and {name} has shape {tuple(x.shape)}: "
                f"embedding sizes {first.shape[-1]} and {x.shape[-1]} differ. They come from different "
                "CLIP models; encode every input with the encoder of the same preset."
            )
        if x.device != first.device:
            raise ArgumentError(
                f"{first_name} is on {first.device} but {name} is on {x.device}; "
                f"move them to one device first, e.g. {name}.to({first_name}.device)."
            )
    try:
        lead = tuple(torch.broadcast_shapes(*(x.shape[:-1] for x in tensors))) if broadcast else ()
    except RuntimeError:
        shapes = ", ".join(f"{n} {tuple(x.shape)}" for x, n in zip(tensors, names))
        raise ArgumentError(
            f"leading (batch) dimensions do not broadcast: {shapes}. Use equal batch sizes, "
            "or a batch of 1 on one side to pair it with every row of the other."
        ) from None
    out_dtype = tensors[0].dtype
    for x in tensors[1:]:
        out_dtype = torch.promote_types(out_dtype, x.dtype)
    work = torch.float32 if out_dtype in _LOW_PRECISION else out_dtype
    converted = []
    for x, name in zip(tensors, names):
        xw = x.to(work)
        bad = ~torch.isfinite(xw).all(dim=-1)
        if bad.any():
            raise ArgumentError(
                f"{name} contains NaN or infinite values{_fmt_rows(bad)}. "
                "Check the operator or encoder that produced it."
            )
        converted.append(xw)
    return converted, space, out_dtype, work, lead


def _check_scalar(
    t: object, name: str, work: torch.dtype, device: torch.device, lead: tuple[int, ...],
    lead_desc: str,
) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Turn a blend factor into a tensor and broadcast its shape against ``lead``."""
    if isinstance(t, torch.Tensor):
        if t.is_complex():
            raise ArgumentError(f"{name} must be real, got dtype {t.dtype}.")
        tt = t.to(device=device, dtype=work)
    elif isinstance(t, (bool, int, float)):
        try:
            tt = torch.tensor(float(t), dtype=work, device=device)
        except OverflowError:  # a 400-digit integer (float() raised a raw OverflowError)
            raise ArgumentError(
                f"{name} must be a finite number, got an integer too large for a float ({t.bit_length()} bits)."
            ) from None
    else:
        _refuse_complex_numpy(t, name)
        try:
            tt = torch.as_tensor(t, dtype=work, device=device)
        except OverflowError:  # ([10**400]: a raw OverflowError)
            raise ArgumentError(f"{name} holds a number too large for a float; pass finite numbers.") from None
        except (TypeError, ValueError, RuntimeError):
            raise ArgumentError(
                f"{name} must be a float or a tensor, got {type(t).__name__}."
            ) from None
    if not torch.isfinite(tt).all():
        raise ArgumentError(f"{name} contains NaN or infinite values: {t!r}.")
    try:
        shape = tuple(torch.broadcast_shapes(lead, tt.shape))
    except RuntimeError:
        raise ArgumentError(
            f"{name} of shape {tuple(tt.shape)} does not broadcast against the leading dims "
            f"{lead} of {lead_desc}. For a path of T points between single embeddings pass "
            f"{name}=torch.linspace(0, 1, T) with inputs of shape (1, d); for T points between "
            f"each of n pairs pass {name} of shape (T, 1) to get (T, n, d)."
        ) from None
    return tt, shape


def _refuse_complex_numpy(x: object, name: str) -> None:
    """Refuse a complex numpy array or scalar, as a complex tensor is refused (``torch.as_tensor``
    with a real dtype dropped the imaginary part with only a warning)."""
    if isinstance(x, (np.ndarray, np.generic)) and np.iscomplexobj(x):
        raise ArgumentError(f"{name} must be real, got numpy dtype {x.dtype}.")


def _refuse_zero_rows(x: torch.Tensor, name: str) -> None:
    """Raise naming ``name`` where a row of ``x`` is the zero vector (as :func:`_unit` does)."""
    zero = (x == 0).all(dim=-1)
    if zero.any():
        raise ArgumentError(
            f"{name} is the zero vector{_fmt_rows(zero)}: a zero vector has no direction on the sphere. "
            "Pass embeddings as returned by an encoder."
        )


def _unit(x: torch.Tensor, name: str) -> torch.Tensor:
    """Normalise the rows of ``x``; refuse rows of (near) zero norm. A row whose norm
    overflows (1e20) or underflows (1e-25) in its dtype is first divided by its largest
    magnitude, so it still gives its direction; other rows are divided by their norm alone
    (bit for bit as before, so render fingerprints do not move)."""
    n = x.norm(dim=-1, keepdim=True)
    finfo = torch.finfo(x.dtype)
    odd = ~torch.isfinite(n) | (n < finfo.eps)  # (eps: well above where the sum of squares underflows)
    if odd.any():
        m = x.abs().amax(dim=-1, keepdim=True)
        zero = m.squeeze(-1) <= finfo.tiny
        if zero.any():
            raise ArgumentError(
                f"{name} is the zero vector{_fmt_rows(zero)}: a zero vector has no direction on the sphere. "
                "Pass embeddings as returned by an encoder."
            )
        x, n = rescale_rows(x, n, odd)
    return x / n


def _as_unit(x: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` with unit-norm rows: rows already unit-norm up to float rounding (an encoder's
    output) keep their bits, so results, and the render fingerprints built on them, do not
    move by an ulp; the others are normalised by :func:`_unit` (which refuses zero rows)."""
    off = (x.norm(dim=-1, keepdim=True) - 1.0).abs() > _UNIT_TOL  # an overflowing norm (inf) is off too
    if not off.any():
        return x
    return torch.where(off, _unit(x, name), x)


def _refuse_zero(
    result: torch.Tensor, scale: torch.Tensor, what: str, fix: str
) -> torch.Tensor:
    """Normalise ``result`` rows; raise if a row is ~0 relative to ``scale`` (same lead shape)."""
    n = result.norm(dim=-1, keepdim=True)
    scale = torch.broadcast_to(scale, n.shape)
    big = torch.isinf(n)  # a norm that overflows (rows of 1e20): not zero; rescaled below
    zero = (~big & (n <= _ZERO_REL * scale)).squeeze(-1) | (n.squeeze(-1) == 0)
    if zero.any():
        raise ArgumentError(f"{what} is the zero vector{_fmt_rows(zero)}: {fix}")
    result, n = rescale_rows(result, n, big)
    return result / n


def _finish(z: torch.Tensor, dtype: torch.dtype, space: str | None) -> torch.Tensor:
    return tag(z.to(dtype), space)


def _angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle between unit rows, ``acos(a.b)`` computed as ``2 atan2(|a-b|, |a+b|)``.

    Same value as the arccosine of the row-wise dot product, but accurate for nearly
    parallel and nearly antipodal rows, where ``acos`` loses half the digits.
    """
    return 2.0 * torch.atan2((a - b).norm(dim=-1), (a + b).norm(dim=-1))


def _cos_any_norm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine of ``a`` and ``b`` of any norm (rows of 1e20 or 1e-25 included,
    each first divided by its largest magnitude); 0 where a row is the zero vector.
    For checks only: the operators' results are computed as before."""

    def direction(x: torch.Tensor) -> torch.Tensor:
        m = x.abs().amax(dim=-1, keepdim=True)
        x = x / torch.where(m > 0, m, torch.ones_like(m))
        n = x.norm(dim=-1, keepdim=True)
        return x / torch.where(n > 0, n, torch.ones_like(n))

    return (direction(a) * direction(b)).sum(dim=-1).clamp(-1.0, 1.0)


def _refuse_antipodal(cos: torch.Tensor, names: tuple[str, str], why: str) -> None:
    """Raise where the row-wise cosine ``cos`` of two inputs says they are antipodal
    (below ``-1 + 1e-4``); ``why`` says what goes wrong there, for the message."""
    antipodal = cos < _ANTIPODAL_COS
    if antipodal.any():
        raise ArgumentError(
            f"{names[0]} and {names[1]} are antipodal{_fmt_rows(antipodal)} (cosine "
            f"{cos[antipodal].min().item():.6f}, about -1): {why}. Pass via a third keyframe c: "
            f"interpolate {names[0]} -> c, then c -> {names[1]}."
        )


# ----------------------------------------------------------------------------------
# interpolation
# ----------------------------------------------------------------------------------
def lerp(a: torch.Tensor, b: torch.Tensor, t: Scalar) -> torch.Tensor:
    """Linear interpolation ``(1 - t) a + t b``, without renormalisation.

    Args:
        a, b: embeddings ``(..., d)``; leading dims broadcast.
        t: float or tensor broadcasting against the leading dims (any real value;
            outside [0, 1] extrapolates).

    Returns:
        ``(*broadcast(a.shape[:-1], b.shape[:-1], t.shape), d)``, dtype of the inputs.
        Rows are *not* unit-norm in general (see :func:`nlerp`, :func:`slerp`): the plain
        formula, with no checks on the result, so antipodal ``a``, ``b`` (``b = -a``) give
        the zero vector at ``t = 0.5``, which has no direction for a decoder.

    >>> import torch
    >>> lerp(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), 0.5)
    tensor([0.5000, 0.5000])
    """
    (a_, b_), space, dtype, work, lead = _check_inputs([a, b], ["a", "b"])
    tt, _ = _check_scalar(t, "t", work, a_.device, lead, "a and b")
    tt = tt.unsqueeze(-1)
    return _finish((1.0 - tt) * a_ + tt * b_, dtype, space)


def nlerp(a: torch.Tensor, b: torch.Tensor, t: Scalar) -> torch.Tensor:
    """Normalised linear interpolation ``normalize((1 - t) a + t b)``.

    Cheaper than :func:`slerp` and on the sphere, but the angular speed is not constant: it
    moves fastest in the middle, so for distant endpoints the points bunch up near the ends.

    Args:
        a, b: embeddings ``(..., d)``; leading dims broadcast.
        t: float or tensor broadcasting against the leading dims.

    Returns:
        unit-norm ``(*broadcast(a.shape[:-1], b.shape[:-1], t.shape), d)``.

    Raises:
        ArgumentError: rows of ``a`` and ``b`` are antipodal (cosine < -1 + 1e-4, as
            :func:`slerp` refuses them), whatever ``t``: the blend passes through the zero
            vector halfway, so a path of nlerps jumps from one end to the other there (a hard
            cut, not a morph); go through a third keyframe. Also where the blend is the zero
            vector for another reason (``t`` outside [0, 1] with parallel ``a``, ``b``, or ``t = 0``
            with a zero row of ``a``: the message names it).

    >>> import torch
    >>> nlerp(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), 0.5)
    tensor([0.7071, 0.7071])
    """
    (a_, b_), space, dtype, work, lead = _check_inputs([a, b], ["a", "b"])
    tt, _ = _check_scalar(t, "t", work, a_.device, lead, "a and b")
    _refuse_antipodal(
        _cos_any_norm(a_, b_), ("a", "b"),
        "nlerp passes through the zero vector halfway between opposite points and jumps from one "
        "to the other there, whatever frames t samples",
    )
    # rows where a norm overflows (1e20) or is tiny (1e-21, whose squares underflow), as _unit finds them:
    # both ends divided by their largest magnitude first (the blend's direction is the same), or the scale
    # below is inf (every blend that does not overflow read as zero) or the blend's norm loses its digits
    fi = torch.finfo(a_.dtype)
    na, nb = a_.norm(dim=-1, keepdim=True), b_.norm(dim=-1, keepdim=True)
    odd = ~torch.isfinite(na) | ~torch.isfinite(nb) | (na < fi.eps) | (nb < fi.eps)
    if odd.any():
        m = torch.maximum(a_.abs().amax(dim=-1, keepdim=True), b_.abs().amax(dim=-1, keepdim=True))
        odd = odd & (m > fi.tiny)  # (two zero rows: left to the zero check below)
        m = torch.where(odd, m, torch.ones_like(m))
        a_, b_ = (torch.where(odd, x / m, x) for x in (a_, b_))
    tt = tt.unsqueeze(-1)
    mixed = (1.0 - tt) * a_ + tt * b_
    zero_blend = (mixed == 0).all(dim=-1)
    for x, name in ((a_, "a"), (b_, "b")):
        # a zero blend where an end is zero (a at t = 0): it was blamed on t extrapolating past [0, 1]
        at_zero = zero_blend & (x == 0).all(dim=-1)
        if at_zero.any():
            raise ArgumentError(
                f"{name} is the zero vector{_fmt_rows(at_zero)}: a zero vector has no direction, and the blend "
                "(1 - t) a + t b is zero there. Pass embeddings as returned by an encoder."
            )
    scale = (1.0 - tt).abs() * a_.norm(dim=-1, keepdim=True) + tt.abs() * b_.norm(dim=-1, keepdim=True)
    out = _refuse_zero(
        mixed, scale, "the blend (1 - t) a + t b",
        "a and b cancel out there (t outside [0, 1] extrapolates past the zero vector). "
        "Keep t in [0, 1], or interpolate through a third keyframe.",
    )
    return _finish(out, dtype, space)


def _slerp_unit(
    a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, eps: float, names: tuple[str, str]
) -> torch.Tensor:
    """Slerp between unit rows ``a``, ``b`` (working dtype); ``t`` already a tensor."""
    cos = (a * b).sum(dim=-1).clamp(-1.0, 1.0)
    _refuse_antipodal(
        cos, names, "there is no unique great circle between opposite points, so slerp is undefined"
    )
    omega = _angle(a, b)  # (lead_ab,), equal to acos(cos) but accurate near 0
    sin_omega = torch.sin(omega)
    # only nearly *parallel* rows fall back: a large eps must not catch nearly antipodal rows
    # (refused above only below cosine -1 + 1e-4), whose nlerp would jump across the sphere
    small = sin_omega < max(eps, torch.finfo(sin_omega.dtype).tiny)  # eps=0 must not divide by zero
    parallel = small & (omega < math.pi / 2)
    safe_sin = torch.where(parallel, torch.ones_like(sin_omega), sin_omega)
    ca = torch.sin((1.0 - t) * omega) / safe_sin
    cb = torch.sin(t * omega) / safe_sin
    out = ca.unsqueeze(-1) * a + cb.unsqueeze(-1) * b
    if parallel.any():
        tt = t.unsqueeze(-1)
        lin = (1.0 - tt) * a + tt * b
        lin = lin / lin.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(lin.dtype).tiny)
        out = torch.where(parallel.unsqueeze(-1), lin, out)
    return out


def slerp(a: torch.Tensor, b: torch.Tensor, t: Scalar, *, eps: float = 1e-6) -> torch.Tensor:
    """Spherical linear interpolation between the normalised ``a`` and ``b``.

    Walks the great circle from ``normalize(a)`` (t=0) to ``normalize(b)`` (t=1) at
    constant angular speed::

        omega = acos(clamp(sum(a * b, -1), -1, 1))          # row-wise angle
        slerp = sin((1 - t) omega) / sin(omega) * a + sin(t omega) / sin(omega) * b

    The angle is the arccosine of the *row-wise* dot product (an element-wise ``acos``,
    as in some community unCLIP interpolation scripts, leaves the sphere). It is
    evaluated as ``2 atan2(|a - b|, |a + b|)``, the same angle without ``acos``'s
    rounding near 0. Endpoints are exact, every row is unit-norm, and ``t`` outside
    [0, 1] extrapolates along the great circle. Nearly parallel rows (``sin(omega) < eps``
    with ``omega`` under 90 degrees) fall back to :func:`nlerp`; nearly antipodal rows always
    take the slerp formula (down to cosine -1 + 1e-4, below which they are refused).

    Args:
        a, b: embeddings ``(..., d)``, any norm (they are normalised); leading dims broadcast.
        t: float or tensor broadcasting against the leading dims.
        eps: finite number >= 0, the threshold on ``sin(omega)`` below which nearly
            parallel rows use nlerp.

    Returns:
        unit-norm ``(*broadcast(a.shape[:-1], b.shape[:-1], t.shape), d)``, dtype of the inputs.

    Raises:
        ArgumentError: rows of ``a`` and ``b`` are antipodal (cosine < -1 + 1e-4): no unique
            geodesic exists; go through a third keyframe.

    A path of T frames: ``slerp(a (1, d), b (1, d), torch.linspace(0, 1, T))`` -> ``(T, d)``.

    >>> import torch
    >>> a, b = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 0.0, 2.0]])
    >>> slerp(a, b, torch.tensor([0.0, 1/3, 1.0]))
    tensor([[1.0000, 0.0000, 0.0000],
            [0.8660, 0.0000, 0.5000],
            [0.0000, 0.0000, 1.0000]])
    """
    if isinstance(eps, torch.Tensor) and eps.ndim == 0 and not eps.is_complex() and eps.dtype != torch.bool:
        eps = eps.item()  # a 0-d tensor, as before (spherical_mean's tol takes one too)
    if not is_finite_real(eps) or not eps >= 0:
        raise ArgumentError(
            f"eps must be a finite number >= 0 (the sin(omega) below which nearly parallel rows "
            f"use nlerp), got {eps!r}. Leave it out for the default 1e-6."
        )
    (a_, b_), space, dtype, work, lead = _check_inputs([a, b], ["a", "b"])
    tt, _ = _check_scalar(t, "t", work, a_.device, lead, "a and b")
    out = _slerp_unit(_unit(a_, "a"), _unit(b_, "b"), tt, float(eps), ("a", "b"))
    return _finish(out, dtype, space)


# ----------------------------------------------------------------------------------
# text diffs
# ----------------------------------------------------------------------------------
def text_diff_direction(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The DALL-E 2 text-diff vector ``z_d = normalize(normalize(target) - normalize(source))``.

    The paper's text diff takes the difference of unit CLIP text embeddings, so ``source`` and
    ``target`` are normalised first (as everywhere else in this module, any norm is
    accepted; rows already unit-norm, as encoders return them, are used as given): raw
    features of norms 9 and 10 give the same direction as the encoder's unit-norm ones, not
    one pulled towards the longer caption.

    Args:
        source: text embedding(s) of the current caption ``(..., d)``, e.g. "a photo of a cat".
        target: text embedding(s) of the wanted caption ``(..., d)``, e.g. "an anime drawing of a cat".

    Returns:
        unit-norm ``(*broadcast(source.shape[:-1], target.shape[:-1]), d)``.

    Raises:
        ArgumentError: ``target`` and ``source`` have the same direction (the difference is
            the zero vector), or one of them is the zero vector.

    >>> import torch
    >>> text_diff_direction(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
    tensor([-0.7071,  0.7071])
    """
    if source is None:
        _no_source()
    (s_, g_), space, dtype, _, _ = _check_inputs([source, target], ["source", "target"])
    s_, g_ = _as_unit(s_, "source"), _as_unit(g_, "target")  # the paper's diff is of unit embeddings
    diff = g_ - s_
    scale = torch.maximum(s_.norm(dim=-1, keepdim=True), g_.norm(dim=-1, keepdim=True))
    out = _refuse_zero(
        diff, scale, "target - source",
        "target and source encode the same caption, so there is no edit direction. "
        "Use two different captions.",
    )
    return _finish(out, dtype, space)


def _no_source() -> None:
    raise ArgumentError(
        "source is None: a text diff needs the embedding of a caption describing the image "
        "as it is. Encode one with the text encoder (a neutral caption such as 'a photo' "
        "works, per the DALL-E 2 paper) and pass it as source."
    )


def text_diff(
    image: torch.Tensor,
    source: torch.Tensor | None,
    target: torch.Tensor,
    theta: Scalar,
) -> torch.Tensor:
    """Edit image embeddings with a DALL-E 2 *text diff* (Ramesh et al. 2022, sec. 3.3).

    ``z_d = normalize(normalize(target) - normalize(source))`` is the direction from one
    caption to another (the captions are normalised first, as the paper's unit CLIP
    embeddings are: see :func:`text_diff_direction`); the edit is
    ``slerp(image, z_d, theta)``. ``theta = 0`` returns the (normalised) image; about
    0.25-0.5 gives noticeable edits; above about 0.5 the image's identity is lost (at
    ``theta = 1`` the result is ``z_d`` itself). Typical range ``[0, 0.5]``.

    Args:
        image: CLIP image embeddings ``(..., d)``.
        source: text embedding of a caption describing the image ``(..., d)``, any norm; there
            is no default here (this operator is pure): encode e.g. "a photo" yourself.
        target: text embedding of the wanted caption ``(..., d)``, any norm.
        theta: float or tensor broadcasting against the leading dims; a tensor of T values
            with inputs of batch 1 gives a T-frame edit path.

    Returns:
        unit-norm ``(*broadcast(image, source, target leading dims, theta.shape), d)``.

    Raises:
        ArgumentError: ``source`` is None, ``target`` has the direction of ``source``, or an
            image row is antipodal to ``z_d``.

    >>> import torch
    >>> image = torch.tensor([[1.0, 0.0, 0.0]])
    >>> src, tgt = torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([[0.0, 0.0, 1.0]])
    >>> text_diff(image, src, tgt, 0.0)
    tensor([[1., 0., 0.]])
    >>> cosine(text_diff(image, src, tgt, 0.5), text_diff_direction(src, tgt))
    tensor([0.7071])
    """
    if source is None:
        _no_source()
    (i_, s_, g_), space, dtype, work, lead = _check_inputs(
        [image, source, target], ["image", "source", "target"]
    )
    tt, _ = _check_scalar(theta, "theta", work, i_.device, lead, "image, source and target")
    s_, g_ = _as_unit(s_, "source"), _as_unit(g_, "target")  # the paper's diff is of unit embeddings
    diff = g_ - s_
    scale = torch.maximum(s_.norm(dim=-1, keepdim=True), g_.norm(dim=-1, keepdim=True))
    z_d = _refuse_zero(
        diff, scale, "target - source",
        "target and source encode the same caption, so there is no edit direction. "
        "Use two different captions.",
    )
    out = _slerp_unit(_unit(i_, "image"), z_d, tt, 1e-6, ("image", "the text diff (target - source)"))
    return _finish(out, dtype, space)


# ----------------------------------------------------------------------------------
# arithmetic and means
# ----------------------------------------------------------------------------------
def arithmetic(terms: Iterable[tuple[Scalar, torch.Tensor]]) -> torch.Tensor:
    """Embedding arithmetic ``normalize(sum_i w_i x_i)``, e.g. "king - man + woman".

    Args:
        terms: ``(weight, embedding)`` pairs; embeddings ``(..., d)`` broadcast against each
            other, weights are floats or tensors broadcasting against their leading dims.
            Embeddings are used as given (encoders return unit-norm ones).

    Returns:
        unit-norm ``(*broadcast(leading dims), d)``.

    Raises:
        ArgumentError: no terms, a malformed pair, or terms that cancel out (zero sum).

    >>> import torch
    >>> a, b, c = torch.eye(3)
    >>> arithmetic([(1.0, a), (-1.0, b), (1.0, c)])
    tensor([ 0.5774, -0.5774,  0.5774])
    """
    weights: list[Scalar] = []
    xs: list[torch.Tensor] = []
    try:
        items = iter(terms)
    except TypeError:  # (None or a number: a raw "object is not iterable")
        raise ArgumentError(
            f"terms must be a list of (weight, embedding) pairs, got {type(terms).__name__}; "
            "write e.g. arithmetic([(1.0, a), (-1.0, b), (1.0, c)])."
        ) from None
    for i, item in enumerate(items):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ArgumentError(
                f"terms[{i}] must be a (weight, embedding) pair, got {type(item).__name__}"
                f"{'' if not isinstance(item, (tuple, list)) else f' of length {len(item)}'}; "
                "write e.g. arithmetic([(1.0, a), (-1.0, b), (1.0, c)])."
            )
        w, x = item
        if isinstance(w, torch.Tensor) and w.ndim >= 1 and (not isinstance(x, torch.Tensor) or x.ndim == 0):
            raise ArgumentError(
                f"terms[{i}] looks like (embedding, weight); pairs are (weight, embedding): "
                "write e.g. (1.0, a)."
            )
        weights.append(w)
        xs.append(x)  # type: ignore[arg-type]
    if not xs:
        raise ArgumentError("terms is empty; pass at least one (weight, embedding) pair.")
    names = [f"terms[{i}]" for i in range(len(xs))]
    conv, space, dtype, work, lead = _check_inputs(xs, names)
    ws = [
        _check_scalar(w, f"the weight of {name}", work, x.device, lead, "the embeddings")[0].unsqueeze(-1)
        for w, x, name in zip(weights, conv, names)
    ]
    try:  # each weight broadcasts against the embeddings; they must against each other too
        torch.broadcast_shapes(*(ww.shape for ww in ws))
    except RuntimeError:  # (it was a raw RuntimeError from adding the terms)
        shapes = ", ".join(f"the weight of {n} {tuple(ww.shape[:-1])}" for ww, n in zip(ws, names))
        raise ArgumentError(
            f"the weights' shapes do not broadcast against each other: {shapes}. Give every weight the "
            "same shape (e.g. T values each for a path of T points), or a float."
        ) from None

    def weighted_sum(ws: list[torch.Tensor], xs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        total = scale = None
        for ww, x in zip(ws, xs):
            term = ww * x
            mag = ww.abs() * x.norm(dim=-1, keepdim=True)
            total = term if total is None else total + term
            scale = mag if scale is None else scale + mag
        assert total is not None and scale is not None
        return total, scale

    total, scale = weighted_sum(ws, conv)
    # rows whose terms are tiny (1e-30: their squares underflow, and the sum was refused as cancelling
    # out) or whose norms overflow (1e20 with a term that cancels): the same sum in units of the row's
    # largest |w x| entry (each x divided by its largest entry, each weight scaled to match: the sum's
    # direction is the same); other rows keep their bits
    odd = ~torch.isfinite(scale) | (scale < torch.finfo(work).eps)
    if odd.any():
        amax = [x.abs().amax(dim=-1, keepdim=True) for x in conv]
        sizes = [ww.abs() * a for ww, a in zip(ws, amax)]  # the largest |w x| entry of each term
        m = torch.zeros_like(scale)
        for size in sizes:
            m = torch.maximum(m, size)
        odd = odd & (m > 0) & torch.isfinite(m)
        m = torch.where(odd, m, torch.ones_like(m))
        xs = [x / torch.where(a > 0, a, torch.ones_like(a)) for x, a in zip(conv, amax)]
        total2, scale2 = weighted_sum([torch.sign(ww) * size / m for ww, size in zip(ws, sizes)], xs)
        total, scale = torch.where(odd, total2, total), torch.where(odd, scale2, scale)
    out = _refuse_zero(
        total, scale, "the weighted sum of terms",
        "the terms cancel out. Change a weight or drop the opposing terms.",
    )
    return _finish(out, dtype, space)


def combine(*pairs: tuple[Scalar, torch.Tensor]) -> torch.Tensor:
    """Same as :func:`arithmetic`, with the ``(weight, embedding)`` pairs as arguments (``*pairs``).

    >>> import torch
    >>> a, b = torch.eye(2)
    >>> combine((1.0, a), (1.0, b))
    tensor([0.7071, 0.7071])
    """
    if len(pairs) == 1 and isinstance(pairs[0], list) and all(isinstance(p, (tuple, list)) and len(p) == 2 for p in pairs[0]):
        raise ArgumentError(  # it was read as one pair (weight=the first pair, ...), with a wrong hint
            "combine takes the (weight, embedding) pairs as separate arguments, got one list of pairs. "
            "Fix: combine(*pairs), or arithmetic(pairs)."
        )
    return arithmetic(pairs)


def _outside_open_hemisphere(p: torch.Tensor, w: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``(...)`` bool: True where the points ``p`` ``(..., K, d)`` of positive weight ``w``
    ``(..., K)`` do not lie in one open hemisphere, i.e. no direction ``v`` has ``v . p_i > 0``
    for all of them (equivalently, the origin is in their convex hull).

    ``q`` ``(..., d)`` is tried as ``v`` first, which settles the usual case; the other rows
    solve the linear programme ``max s`` subject to ``p_i . v >= s``, ``|v_j| <= 1``.
    """
    pos = w > 0
    ok = (((p * q.unsqueeze(-2)).sum(dim=-1) > 0) | ~pos).all(dim=-1)
    outside = torch.zeros_like(ok)
    if bool(ok.all()):
        return outside
    from scipy.optimize import linprog

    k, d = p.shape[-2:]
    flat_p = p.reshape(-1, k, d).double().cpu().numpy()
    flat_pos = pos.reshape(-1, k).cpu().numpy()
    flat_out = outside.reshape(-1).clone()
    for row in (~ok).reshape(-1).nonzero().flatten().tolist():
        pts = flat_p[row][flat_pos[row]]
        # variables (v_1..v_d, s): minimise -s subject to s - p_i . v <= 0
        a_ub = np.concatenate([-pts, np.ones((len(pts), 1))], axis=1)
        res = linprog(
            np.r_[np.zeros(d), -1.0],
            A_ub=a_ub,
            b_ub=np.zeros(len(pts)),
            bounds=[(-1.0, 1.0)] * d + [(None, 1.0)],
            method="highs",
        )
        flat_out[row] = not (res.status == 0 and -res.fun > 1e-6)
    return flat_out.reshape(outside.shape)


def spherical_mean(
    points: torch.Tensor,
    weights: torch.Tensor | Sequence[float] | np.ndarray | None = None,
    *,
    iters: int = 100,
    tol: float | None = None,
) -> torch.Tensor:
    """Weighted spherical (Karcher / Frechet) mean of K embeddings.

    The point ``q`` of the unit sphere minimising ``sum_i w_i angle(q, p_i)^2``, found with
    the fixed-point iteration of Buss & Fillmore (2001, "Spherical averages and
    applications to spherical splines and interpolation"): map every point to the tangent
    space at ``q`` (log map), average there with the weights, map back (exp map), repeat.
    Starts from the normalised weighted Euclidean mean. For two points with weights
    ``(1 - s, s)`` it equals ``slerp(p_0, p_1, s)``.

    Args:
        points: ``(K, d)`` or batched ``(..., K, d)``; rows are normalised first.
        weights: ``(K,)`` or ``(..., K)`` non-negative, any positive total (they are divided
            by their sum); ``None`` gives equal weights.
        iters: maximum number of iterations, an int >= 1 (numpy integers too).
        tol: a number >= 0 or ``None``; stop when the tangent-space step (radians) is below
            this for every batch row; ``None`` means 1e-7 when computing in float32 (also
            for fp16/bf16 inputs) and 1e-12 in float64.

    Returns:
        unit-norm ``(*broadcast(points.shape[:-2], weights.shape[:-1]), d)``.

    Raises:
        ArgumentError: negative or all-zero weights, a weights size other than K, or points
            of positive weight that do not lie in one open hemisphere (two opposite points, or
            points ringing the sphere), where the mean may not be unique and the iteration is
            not guaranteed to find it.

    >>> import torch
    >>> spherical_mean(torch.eye(2), torch.tensor([1.0, 1.0]))
    tensor([0.7071, 0.7071])
    """
    if not isinstance(points, torch.Tensor) or points.ndim < 2:
        shape = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise ArgumentError(
            f"points must be a tensor of shape (K, d) or (..., K, d), got {shape}; "
            "stack the embeddings with torch.stack or torch.cat."
        )
    if points.shape[-2] == 0:
        raise ArgumentError(f"points is empty (shape {tuple(points.shape)}); pass at least one point.")
    try:  # Python, numpy and 0-d tensor integers (not bool, not float), as Segment takes them
        iters_ok = (
            not isinstance(iters, bool)
            and not (isinstance(iters, torch.Tensor) and (iters.ndim != 0 or iters.dtype == torch.bool))  # (were taken)
            and operator.index(iters) >= 1
        )
    except TypeError:
        iters_ok = False
    if not iters_ok:
        raise ArgumentError(
            f"iters must be a positive int (the most iterations), got {iters!r}; pass e.g. iters=100."
        )
    iters = operator.index(iters)
    if isinstance(tol, torch.Tensor) and tol.ndim == 0 and not tol.is_complex():
        tol = tol.item()  # a 0-d tensor, as before
    if tol is not None and (isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not tol >= 0):
        raise ArgumentError(
            f"tol must be a number >= 0 (radians) or None, got {tol!r}; pass e.g. tol=1e-7, "
            "or leave it out for the dtype's default."
        )
    (p_,), space, dtype, work, _ = _check_inputs([points], ["points"])
    if tol is None:
        tol = 1e-12 if work == torch.float64 else 1e-7
    k = p_.shape[-2]
    if weights is None:
        w = torch.ones(k, dtype=work, device=p_.device)
    else:
        if isinstance(weights, torch.Tensor):
            if weights.is_complex():
                raise ArgumentError(f"weights must be real, got dtype {weights.dtype}.")
            w = weights.to(device=p_.device, dtype=work)
        else:
            _refuse_complex_numpy(weights, "weights")
            try:
                w = torch.as_tensor(weights, dtype=work, device=p_.device)
            except OverflowError:  # ([10**400, 1]: a raw OverflowError)
                raise ArgumentError("weights holds a number too large for a float; pass finite numbers.") from None
            except (TypeError, ValueError, RuntimeError):
                raise ArgumentError(
                    f"weights must be a tensor or a sequence of floats, got {type(weights).__name__}."
                ) from None
        if w.ndim == 0 or w.shape[-1] != k:
            raise ArgumentError(
                f"weights must have shape (K,) or (..., K) with K={k} (the number of points, "
                f"points has shape {tuple(points.shape)}), got {tuple(w.shape)}."
            )
        if not torch.isfinite(w).all():
            raise ArgumentError("weights contains NaN or infinite values.")
        if (w < 0).any():
            raise ArgumentError(
                f"weights must be non-negative, got negative values {w[w < 0].tolist()[:10]}. "
                "For 'a minus b' use arithmetic([(1.0, a), (-1.0, b)])."
            )
    total_w = w.sum(dim=-1, keepdim=True)
    big = ~torch.isfinite(total_w)  # weights each finite whose sum overflows (2e38 twice in float32)
    if big.any():  # divided by their largest first: the same proportions (other rows keep their bits)
        w = torch.where(big, w / w.amax(dim=-1, keepdim=True), w)
        total_w = w.sum(dim=-1, keepdim=True)
    if (total_w <= 0).any():
        raise ArgumentError(
            "weights are all zero (in some batch row); give at least one point a positive weight."
        )
    w = w / total_w
    try:
        lead = tuple(torch.broadcast_shapes(p_.shape[:-2], w.shape[:-1]))
    except RuntimeError:
        raise ArgumentError(
            f"the batch dims of points {tuple(points.shape)} and weights {tuple(w.shape)} "
            "do not broadcast."
        ) from None
    p = _unit(p_, "points").expand(*lead, k, p_.shape[-1])
    w = w.expand(*lead, k).unsqueeze(-1)  # (..., K, 1)

    q = (w * p).sum(dim=-2)  # (..., d)
    qn = q.norm(dim=-1, keepdim=True)
    cancel = qn.squeeze(-1) < 1e-4
    if cancel.any():
        raise ArgumentError(
            f"the weighted points cancel out{_fmt_rows(cancel)}: their weighted sum is about "
            "zero, so they do not lie in one open hemisphere and their spherical mean is not "
            "unique. Drop or reweight opposing points."
        )
    q = q / qn
    outside = _outside_open_hemisphere(p, w.squeeze(-1), q)
    if outside.any():
        raise ArgumentError(
            f"the points with positive weight do not lie in one open hemisphere{_fmt_rows(outside)} "
            "(some of them are opposite, or they ring the sphere): their spherical mean may not be "
            "unique and the iteration can stop short of it. Drop or reweight opposing points, or "
            "use arithmetic() for a plain weighted sum."
        )
    for _ in range(iters):
        qe = q.unsqueeze(-2)  # (..., 1, d)
        cos = (p * qe).sum(dim=-1, keepdim=True)  # (..., K, 1)
        tangent = p - cos * qe  # component of p orthogonal to q, norm sin(angle)
        ang = _angle(p, qe.expand_as(p)).unsqueeze(-1)
        sin = torch.sin(ang)
        small = sin < 1e-12
        factor = torch.where(small, torch.ones_like(ang), ang / torch.where(small, torch.ones_like(sin), sin))
        u = (w * tangent * factor).sum(dim=-2)  # (..., d) tangent mean (log maps)
        step = u.norm(dim=-1, keepdim=True)
        safe = torch.where(step > 0, step, torch.ones_like(step))
        q = torch.cos(step) * q + torch.sin(step) * (u / safe)
        q = q / q.norm(dim=-1, keepdim=True)
        if step.numel() == 0 or step.max().item() <= tol:  # (an empty batch: max() raised a raw RuntimeError)
            break
    return _finish(q, dtype, space)


# ----------------------------------------------------------------------------------
# directions
# ----------------------------------------------------------------------------------
def project_out(z: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """Remove a direction: ``normalize(z - (z . u) u)`` with ``u = normalize(direction)``.

    The result is orthogonal to ``direction`` (cosine 0), e.g. to strip a concept found
    with :func:`text_diff_direction`. Same as ``amplify(z, direction, -1)``.

    Args:
        z: embeddings ``(..., d)``.
        direction: direction(s) ``(..., d)``, any norm; leading dims broadcast with z's.

    Returns:
        unit-norm ``(*broadcast(leading dims), d)``.

    Raises:
        ArgumentError: ``direction`` or ``z`` is zero, or ``z`` is parallel to it (nothing is left).

    >>> import torch
    >>> project_out(torch.tensor([1.0, 1.0, 0.0]), torch.tensor([0.0, 2.0, 0.0]))
    tensor([1., 0., 0.])
    """
    return _scale_component(z, direction, -1.0, "project_out")


def amplify(z: torch.Tensor, direction: torch.Tensor, amount: Scalar) -> torch.Tensor:
    """Strengthen or weaken the part of ``z`` along a direction.

    Definition: with ``u = normalize(direction)``, the component of ``z`` along ``u`` is
    scaled by ``1 + amount`` and the result renormalised::

        amplify(z, u, amount) = normalize(z + amount * (z . u) u)

    ``amount = 0`` is the identity (on unit-norm z), ``amount > 0`` strengthens what ``z``
    already has of ``u``, ``-1 < amount < 0`` weakens it, ``amount = -1`` removes it
    (:func:`project_out`) and ``amount < -1`` flips it. It only rescales what is present:
    if ``z`` is orthogonal to ``u`` nothing changes; to *add* a concept use
    :func:`text_diff` / :func:`slerp` instead.

    Args:
        z: embeddings ``(..., d)``.
        direction: ``(..., d)``, any norm; leading dims broadcast with z's.
        amount: float or tensor broadcasting against the leading dims.

    Returns:
        unit-norm ``(*broadcast(leading dims, amount.shape), d)``.

    >>> import torch
    >>> z = torch.tensor([0.6, 0.8])
    >>> amplify(z, torch.tensor([1.0, 0.0]), 0.0)
    tensor([0.6000, 0.8000])
    >>> amplify(z, torch.tensor([1.0, 0.0]), 1.0)   # x component doubled: (1.2, 0.8) normalised
    tensor([0.8321, 0.5547])
    """
    return _scale_component(z, direction, amount, "amplify")


def _scale_component(
    z: torch.Tensor, direction: torch.Tensor, amount: Scalar, op: str
) -> torch.Tensor:
    (z_, d_), space, dtype, work, lead = _check_inputs([z, direction], ["z", "direction"])
    u = _unit(d_, "direction")
    # the result's direction does not depend on z's norm: a row whose norm overflows (1e30) or is tiny
    # (1e-30, whose squares underflow) is divided by its largest magnitude first, as _unit does (such rows
    # were refused as "z is parallel to direction", or came back off unit norm); other rows keep their bits
    nz = z_.norm(dim=-1, keepdim=True)
    odd = ~torch.isfinite(nz) | (nz < torch.finfo(z_.dtype).eps)
    if odd.any():
        _refuse_zero_rows(z_, "z")  # (it was blamed on z being parallel to direction, or on amount = -1)
        z_, _ = rescale_rows(z_, nz, odd)
    amt, _ = _check_scalar(amount, "amount", work, z_.device, lead, "z and direction")
    along = (z_ * u).sum(dim=-1, keepdim=True)
    perp = z_ - along * u
    # a second Gram-Schmidt pass: z nearly parallel to u loses most digits in the first
    perp = perp - (perp * u).sum(dim=-1, keepdim=True) * u
    out = perp + (1.0 + amt.unsqueeze(-1)) * along * u  # = z + amount (z . u) u
    fix = (
        "z is parallel to direction, so nothing is left once it is removed."
        if op == "project_out"
        else "amount = -1 removes the direction and z is parallel to it; pick another amount."
    )
    out = _refuse_zero(out, z_.norm(dim=-1, keepdim=True), f"the result of {op}", fix)
    return _finish(out, dtype, space)


# ----------------------------------------------------------------------------------
# similarity
# ----------------------------------------------------------------------------------
def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity, in [-1, 1].

    The spaces of ``a`` and ``b`` must agree (SpaceError otherwise); the result is a
    similarity, not an embedding, so it carries no space tag.

    Args:
        a, b: embeddings ``(..., d)``, any norm; leading dims broadcast.

    Returns:
        ``broadcast(a.shape[:-1], b.shape[:-1])``, dtype of the inputs.

    >>> import torch
    >>> cosine(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.tensor([[2.0, 0.0]]))
    tensor([1.0000, 0.7071])
    """
    (a_, b_), _, dtype, _, _ = _check_inputs([a, b], ["a", "b"])
    c = (_unit(a_, "a") * _unit(b_, "b")).sum(dim=-1).clamp(-1.0, 1.0)
    return c.to(dtype)


def similarity_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All-pairs cosine similarities: ``out[i, j] = cosine(a[i], b[j])``.

    Args:
        a: ``(n, d)`` (or ``(d,)``, treated as ``(1, d)``; extra leading dims batch).
        b: ``(m, d)`` (same conventions).

    Returns:
        ``(n, m)`` in [-1, 1] (``(..., n, m)`` when batched), no space tag.

    >>> import torch
    >>> similarity_matrix(torch.eye(2), torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, -3.0]]))
    tensor([[ 1.0000,  0.7071,  0.0000],
            [ 0.0000,  0.7071, -1.0000]])
    """
    (a_, b_), _, dtype, _, _ = _check_inputs([a, b], ["a", "b"], broadcast=False)
    a_ = _unit(a_, "a")
    b_ = _unit(b_, "b")
    if a_.ndim == 1:
        a_ = a_.unsqueeze(0)
    if b_.ndim == 1:
        b_ = b_.unsqueeze(0)
    try:
        s = a_ @ b_.transpose(-1, -2)
    except RuntimeError:
        raise ArgumentError(
            f"the batch dims of a {tuple(a.shape)} and b {tuple(b.shape)} do not broadcast; "
            "pass a of shape (n, d) and b of shape (m, d)."
        ) from None
    return s.clamp(-1.0, 1.0).to(dtype)
