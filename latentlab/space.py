"""Embeddings and the CLIP space they live in.

An embedding batch is a plain ``torch.Tensor`` of shape ``(n, d)``, float32 and unit-norm.
The name of the CLIP space it lives in (``"mini"``, ``"openai/ViT-L-14"``, ...) travels
beside it as a tag set with :func:`tag` and read with :func:`space_of`: a plain Python
attribute of that one tensor object, not part of its data.

What keeps the tag:

* what encoders return (``encode_image``, ``encode_text``);
* latentlab's operators (``lerp``, ``nlerp``, ``slerp``, ``text_diff``,
  ``text_diff_direction``, ``arithmetic``, ``combine``, ``spherical_mean``,
  ``project_out``, ``amplify``): the result carries the space shared by the inputs, and
  two different spaces raise :class:`~latentlab.errors.SpaceError`;
* trajectories: ``Trajectory(...)`` and its constructors take the keyframes' space
  (``.space``), and ``.keyframes`` and ``.embeddings()`` are tagged with it.

What drops it: any other torch operation makes a new, untagged tensor: indexing and
slicing (``z[0]``, ``z[:1]``), ``z.split(1)``, ``torch.cat`` / ``torch.stack``,
``z.clone()``, ``z.detach()``, ``z.double()``, ``z * 2``, ... (``cosine`` and
``similarity_matrix`` return scores, not embeddings, and carry no tag); a conversion that
changes nothing (``z.float()`` of a float32 tensor, ``z.cpu()`` of one on the CPU) returns
``z`` itself, tag included, and one that does (``z.half()``, ``z.to("cuda")``) drops it.
Copies keep it: ``copy.deepcopy``, ``pickle`` and ``torch.save`` / ``torch.load``
(``weights_only=True`` too); a tensor sent to another process by ``multiprocessing`` (a
``Pool``, a ``Queue``) arrives untagged (torch moves its data to shared memory without its
attributes), but a ``Trajectory`` sent there keeps its space and tags its keyframes again.
An untagged tensor is accepted wherever its size fits, so nothing can check its space:
mixing two spaces of the same size then goes undetected. Re-tag a piece with
``ll.tag(part, ll.space_of(z))``, or keep whole batches and let the operators and
``Trajectory`` carry the tag. Decoders refuse an embedding tagged with another space.

>>> import torch
>>> z = tag(torch.nn.functional.normalize(torch.randn(2, 8), dim=-1), "mini")
>>> space_of(z)
'mini'
>>> space_of(z[:1]) is None, space_of(z * 2) is None   # plain torch ops drop the tag
(True, True)
>>> space_of(tag(z[:1], space_of(z)))                  # re-tag a piece
'mini'
"""

from __future__ import annotations

import torch

from .errors import ArgumentError, SpaceError, result_fix

__all__ = ["tag", "space_of", "common_space", "check_embeddings", "normalize"]

_ATTR = "_latentlab_space"
#: The dtypes an embedding may have (torch's float8 types are floating too, but most ops, even
#: ``isfinite``, raise a raw NotImplementedError on them).
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def dtype_problem(z: torch.Tensor) -> str | None:
    """Why ``z``'s dtype is not one an embedding may have (for "<name> must be a floating tensor,
    got dtype ..." errors), or ``None`` if it is one."""
    if z.dtype in FLOAT_DTYPES:
        return None
    if torch.is_floating_point(z):
        return f"got dtype {z.dtype} (float16, bfloat16, float32 and float64 are supported)"
    return f"got dtype {z.dtype}"


def tag(z: torch.Tensor, space: str | None) -> torch.Tensor:
    """Mark ``z`` as living in CLIP space ``space`` (in place) and return it. ``space`` is the
    space's name, a string (such as ``space_of(other)`` or a preset's ``.space``; numpy's
    string scalars and 0-d string arrays, as ``np.load`` gives back a saved name, are taken as
    their ``str``); ``None`` leaves ``z`` as it is."""
    if space is not None:
        if type(space).__module__ == "numpy" and getattr(space, "shape", None) == () and space.dtype.kind == "U":
            space = space.item()  # a name saved with np.savez reads back as a 0-d array (taken as its str before)
        if not isinstance(space, str):  # (str() of anything was taken: tag(z, preset) tagged a 700-character text)
            own = getattr(space, "space", None)
            fix = (f"pass its .space ({own!r})" if isinstance(own, str) else
                   "pass a space's name, e.g. ll.space_of(z) or ll.get_preset('mini').space")  # fmt: skip
            raise ArgumentError(f"space must be a CLIP space name (a str) or None, got {type(space).__name__}; {fix}.")
        if not isinstance(z, torch.Tensor):  # (a numpy array raised a raw AttributeError)
            fix = "pass torch.from_numpy(z)" if type(z).__module__ == "numpy" else "pass the embeddings' tensor"
            raise ArgumentError(f"tag marks a torch.Tensor with its CLIP space, got {type(z).__name__}; {fix}.")
        setattr(z, _ATTR, str(space))
    return z


def space_of(z: object) -> str | None:
    """The CLIP space ``z`` was tagged with, or ``None`` if it carries no tag."""
    return getattr(z, _ATTR, None)


def common_space(*zs: object, names: tuple[str, ...] | None = None) -> str | None:
    """The one space shared by the tagged tensors among ``*zs``; raise :class:`SpaceError` if two
    differ.

    ``names`` (argument names, same order as ``zs``) make the error message precise.
    """
    found: dict[str, str] = {}
    for i, z in enumerate(zs):
        s = space_of(z)
        if s is None:
            continue
        name = names[i] if names and i < len(names) else f"argument {i}"
        found.setdefault(s, name)
    if len(found) > 1:
        desc = ", ".join(f"{name} is in {space!r}" for space, name in found.items())
        raise SpaceError(
            f"embeddings from different CLIP spaces cannot be mixed: {desc}. "
            "Encode every input with the same encoder (one preset), or re-encode the odd one out."
        )
    return next(iter(found), None)


def normalize(z: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Scale each row of ``z`` (..., d) to unit L2 norm, computing in float32 at least. A row
    whose norm overflows (1e20 in float32) or is below ``eps`` but not zero (1e-14, or 1e-30
    whose norm underflows) is first divided by its largest magnitude (it came back as zeros, or
    that much shorter than unit); a zero row stays zero; other rows are divided by their norm
    alone, bit for bit as always."""
    work = z.float() if z.dtype in (torch.float16, torch.bfloat16) else z
    n = work.norm(dim=-1, keepdim=True)
    odd = torch.isinf(n) | ((n < eps) & (work.abs().amax(dim=-1, keepdim=True) > 0))
    work, n = rescale_rows(work, n, odd & torch.isfinite(work).all(dim=-1, keepdim=True))
    out = work / n.clamp_min(eps)
    return out.to(z.dtype)


def rescale_rows(x: torch.Tensor, norms: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, norms)`` with the ``rows`` (a ``(..., 1)`` mask) divided by their largest
    magnitude and their norms taken again: for rows whose norm overflows (1e20 in float32) or
    underflows, so dividing by the norm still gives the row's direction. The other rows are
    left as they are, so dividing them by their norm stays bit for bit what it was."""
    if not rows.any():
        return x, norms
    m = x.abs().amax(dim=-1, keepdim=True)
    x = x / torch.where(rows, m, torch.ones_like(m))
    return x, torch.where(rows, x.norm(dim=-1, keepdim=True), norms)


def float32_rows(z: torch.Tensor) -> torch.Tensor:
    """``z`` (n, d) as float32 with each row's direction kept: a float64 row beyond float32's
    range (entries of 1e39 came out infinite, of 1e-300 zero) is first scaled by a power of
    two (exact), so that its largest entry is in [0.5, 1); every other row converts as before."""
    if z.dtype == torch.float64:
        m = z.abs().amax(dim=-1, keepdim=True)
        far = (m > 2.0**100) | ((m < 2.0**-100) & (m > 0))
        if bool(far.any()):
            e = torch.where(far, torch.frexp(m)[1], torch.zeros_like(m, dtype=torch.int32)).to(torch.float64)
            h = torch.trunc(e / 2)  # in two factors: 2**1074 alone overflows float64
            z = z * torch.exp2(-h) * torch.exp2(h - e)
    return z.to(torch.float32)


def refuse_zero_rows(z: torch.Tensor, what: str, rest: str) -> None:
    """Raise an :class:`ArgumentError` naming the rows of ``z`` that are the zero vector:
    "<what> [rows] are the zero vector, which has no direction<rest>" (``what``: e.g.
    ``"embeddings row(s)"``; ``rest``: the end of the sentence and the fix)."""
    zero = (z == 0).all(dim=-1)
    if bool(zero.any()):
        rows = zero.nonzero()[:, 0].tolist()
        raise ArgumentError(f"{what} {rows[:8]}{' ...' if len(rows) > 8 else ''} are the zero vector, which has no "
                            f"direction{rest}")  # fmt: skip


def check_embeddings(
    z: object,
    *,
    name: str = "embeddings",
    dim: int | None = None,
    space: str | None = None,
    allow_1d: bool = True,
    expected_by: str | None = None,
) -> torch.Tensor:
    """Validate an embedding batch at an API boundary and return it as ``(n, d)``.

    Checks that ``z`` is a floating tensor of shape ``(n, d)`` (or ``(d,)`` if
    ``allow_1d``, which becomes ``(1, d)``), non-empty, finite, of size ``dim`` if given and
    not tagged with a space other than ``space``. Errors name ``name`` and the fix;
    ``expected_by`` says what expects ``space`` (e.g. ``"the decoder"``) in that error.
    The returned tensor keeps ``z``'s tag (or gets ``space``'s if it had none).
    """
    if not isinstance(z, torch.Tensor):
        if type(z).__module__ == "numpy":
            raise ArgumentError(
                f"{name} must be a torch.Tensor of shape (n, d), got a numpy {type(z).__name__} of shape "
                f"{getattr(z, 'shape', ())}. Fix: pass torch.from_numpy({name}) (float32, as encoders return)."
            )
        if isinstance(z, (list, tuple)) and z and all(isinstance(x, torch.Tensor) for x in z):
            # already embeddings, only not one tensor: say how to join them, not to encode them
            shapes = ", ".join(str(tuple(x.shape)) for x in z[:4]) + (", ..." if len(z) > 4 else "")
            raise ArgumentError(
                f"{name} must be one torch.Tensor of shape (n, d), got a {type(z).__name__} of {len(z)} tensors "
                f"(shapes {shapes}). Fix: pass torch.cat({name}) to join (1, d) rows, or torch.stack({name}) "
                "for (d,) vectors."
            )
        raise ArgumentError(
            f"{name} must be a torch.Tensor of shape (n, d), got {type(z).__name__}."
            + (result_fix(z, "embeddings") or " Encode inputs with an Encoder (encode_image / encode_text) first.")
        )
    own = space_of(z)
    if z.ndim == 1 and allow_1d:
        z = z.unsqueeze(0)
    if z.ndim != 2:
        raise ArgumentError(
            f"{name} must have shape (n, d), got {tuple(z.shape)}. "
            "Stack single embeddings with torch.cat, or flatten extra batch dimensions."
        )
    if z.shape[0] == 0 or z.shape[1] == 0:
        raise ArgumentError(f"{name} is empty (shape {tuple(z.shape)}); pass at least one embedding.")
    problem = dtype_problem(z)
    if problem:
        raise ArgumentError(f"{name} must be a floating tensor, {problem}.")
    if dim is not None and z.shape[1] != dim:
        raise SpaceError(
            f"{name} has size {z.shape[1]} but {dim} is expected here (shape {tuple(z.shape)}). "
            "It probably comes from another CLIP model: encode with the encoder of the same preset."
        )
    if space is not None and own is not None and own != space:
        by = f" by {expected_by}" if expected_by else ""
        raise SpaceError(
            f"{name} lives in CLIP space {own!r} but {space!r} is expected{by}. "
            f"Fix: encode {name} with the encoder of the {space!r} space, or, if {own!r} is the space "
            f"you meant, make what expects {space!r} match it (same preset; a space= argument)."
        )
    if not torch.isfinite(z).all():
        bad = (~torch.isfinite(z)).any(dim=-1).nonzero().flatten().tolist()
        raise ArgumentError(
            f"{name} contains NaN or infinite values (rows {bad[:10]}{'...' if len(bad) > 10 else ''}). "
            "Check the operator that produced them, e.g. a slerp between antipodal embeddings."
        )
    if own is None and space is not None:
        z = z.view_as(z)  # a new tensor object for the tag: the caller's own tensor stays untagged
    return tag(z, own or space)
