"""The one render loop: trajectory + decoder -> frames, with batching, shared noise,
progress, per-frame callbacks and a resumable render directory.

A render directory holds ``frame_00000.png ...``, ``embeddings.npy`` (the exact ``(T, d)``
embeddings rendered) and ``manifest.json`` (spec, seeds, decoder, versions, and whether the
render is ``complete``, with the time it ``finished``; the frames on disk are the progress).
Frames are written one by one as they finish, atomically, so a render that is interrupted
(Ctrl-C, a crash, a closed notebook) loses nothing: running it again into the same directory
renders only the missing frames.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import json
import numbers
import os
import platform
import stat
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, ParamSpec, Sequence, TypeVar

import numpy as np
import torch

from . import _atomic
from ._atomic import write_whole  # (the one whole-file write; kept importable from here)
from .errors import (ArgumentError, LatentlabError, check_bool, check_int, check_number, check_seed, check_seeds_fit,
                     is_bool, shown, user_path)
from .ops import _ANTIPODAL_COS  # (the one threshold: slerp's for embeddings, slerp_noise's for noises)
from .space import check_embeddings, refuse_zero_rows

__all__ = [
    "render",
    "make_noise",
    "frame_seeds",
    "slerp_noise",
    "path_noise",
    "versions",
    "NOISE_MODES",
    "FRAME_PATTERN",
    "MANIFEST",
]

FRAME_PATTERN = "frame_{:05d}.png"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "latentlab.render/1"
LOCK_FILE = ".latentlab.lock"

_P = ParamSpec("_P")
_R = TypeVar("_R")

NOISE_MODES = ("shared", "per-frame", "slerp", "inverted")
"""How each frame's starting noise is chosen (see :func:`render`)."""


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape the output (for manifests)."""
    import importlib.metadata as md

    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    for dist in ("latentlab", "diffusers", "open_clip_torch", "transformers"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    if "latentlab" not in out:
        from . import __version__

        out["latentlab"] = __version__
    return out


def frame_seeds(num_frames: int, seed: int, noise: str) -> list[int]:
    """Seed of each of ``num_frames`` frames' extra randomness: the same for every frame with
    shared noise (and with ``"slerp"`` / ``"inverted"``, whose starting noise follows the path instead),
    ``seed + k`` for frame ``k`` with per-frame noise (``noise``: the render's noise mode)."""
    # checked as render() checks them (int(1.5) took it as 1, a negative count gave no seeds, "3" a raw TypeError)
    num_frames, seed = check_int(num_frames, "num_frames", minimum=0), check_seed(seed)
    if noise in ("shared", "slerp", "inverted"):
        return [int(seed)] * num_frames
    if noise == "per-frame":
        check_seeds_fit(seed, num_frames, "frame", " with noise='per-frame'")
        return [int(seed) + k for k in range(num_frames)]
    raise ArgumentError(f"noise must be one of {', '.join(map(repr, NOISE_MODES))}, got {noise!r}.")


def make_noise(shape: tuple[int, ...], seeds: list[int]) -> torch.Tensor:
    """Starting noise ``(len(seeds), *shape)`` from CPU generators, one per frame, so a seed
    gives the same noise on every device and in every batch."""
    # seeds checked as render() checks its seed (1.5 was taken as 1; a string, None, a bare int or
    # an empty list raised raw errors); a shape torch cannot make is named too
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__") or getattr(seeds, "ndim", 1) != 1:
        raise ArgumentError(f"seeds must be a list of seeds, one per noise, got {shown(seeds)}; e.g. seeds=[0].")
    if isinstance(seeds, torch.Tensor):
        seeds = seeds.tolist()  # a tensor of seeds, as before (its 0-d items are no Python ints)
    seeds = [check_seed(s, "seeds[...]") for s in seeds]
    if not seeds:
        raise ArgumentError("seeds is empty: make_noise draws one noise per seed; pass at least one, e.g. seeds=[0].")
    cache: dict[int, torch.Tensor] = {}
    out = []
    for s in seeds:
        if s not in cache:
            g = torch.Generator("cpu").manual_seed(int(s))
            try:
                cache[s] = torch.randn(shape, generator=g, dtype=torch.float32)
            except (TypeError, RuntimeError):
                raise ArgumentError(f"shape must be a tuple of sizes >= 0, e.g. decoder.noise_shape(), got {shown(shape)}.") from None
        out.append(cache[s])
    return torch.stack(out)


def slerp_noise(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Spherical interpolation between two noise tensors ``a``, ``b`` (same shape ``S``) at
    parameters ``t`` (a float, or ``(n,)``: a tensor, list or numpy array): returns ``(n, *S)``
    (or ``S`` for a float). Antipodal noises (``b = -a``) are refused, as :func:`latentlab.slerp`
    refuses antipodal embeddings: no unique great circle joins them.

    The direction moves along the great circle between ``a`` and ``b`` (flattened) and the
    norm is interpolated linearly, so two Gaussian noises of equal norm give noises of that
    same norm all the way: unlike ``lerp``, whose midpoint of two independent noises has
    only ``1/sqrt(2)`` of their norm (a washed-out, low-contrast decode). ``t = 0`` and
    ``t = 1`` return ``a`` and ``b`` exactly.

    >>> a, b = torch.randn(2, 3, 8, 8).unbind()
    >>> mid = slerp_noise(a, b, 0.5)
    >>> abs(float(mid.norm() - (a.norm() + b.norm()) / 2)) < 1e-3
    True
    """
    for name, x in (("a", a), ("b", b)):  # (a numpy array raised a raw AttributeError, an int tensor torch's own error)
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            got = f"a {x.dtype} tensor" if isinstance(x, torch.Tensor) else type(x).__name__
            raise ArgumentError(f"slerp_noise needs {name} as a float torch tensor (a noise, e.g. from make_noise), got {got}.")
    if a.shape != b.shape:
        raise ArgumentError(f"slerp_noise needs a and b of one shape, got {tuple(a.shape)} and {tuple(b.shape)}.")
    if a.device != b.device:  # (as latentlab.slerp refuses them; torch's own error came from deep inside)
        raise ArgumentError(f"slerp_noise needs a and b on one device, got {a.device} and {b.device}; "
                            "move them first, e.g. b.to(a.device).")  # fmt: skip
    # a list or numpy array of parameters is the (n,) it reads as (a list [0.0, 0.5] gave one noise, t[0]'s,
    # a string or None raised a raw error, NaN gave NaN noise, a (2, 2) tensor 4 noises)
    tt = t if isinstance(t, torch.Tensor) else None
    if tt is None and (isinstance(t, (numbers.Real, list, tuple, np.ndarray)) or is_bool(t)):
        try:
            # through numpy: a Python float stays float64 (torch.as_tensor made it float32, which moved
            # a quarter of each noise's values by a bit from the noise drawn before); one number as the float
            # it is (numpy's bool, a Fraction: numpy made an object array of these, refused)
            tt = torch.as_tensor(np.asarray(float(t) if isinstance(t, numbers.Real) or is_bool(t) else t))
        except (TypeError, ValueError, RuntimeError, OverflowError):
            tt = None
    if tt is None or tt.is_complex() or tt.ndim > 1 or not torch.isfinite(tt.double()).all():
        got = f"a {type(t).__name__} of shape {tuple(t.shape)}" if getattr(t, "ndim", 0) else shown(t)
        raise ArgumentError(
            f"t must be a finite number or a 1-D list / tensor of them (the path parameters, 0 at a, 1 at b), got {got}."
        )
    scalar = tt.ndim == 0
    tt = tt.to(a.device, torch.float64).reshape(-1, 1)  # (on a's device: CUDA noise met CPU parameters, a raw error)
    af, bf = a.reshape(1, -1).double(), b.reshape(1, -1).double()
    na, nb = af.norm(), bf.norm()
    ua, ub = af / na.clamp_min(1e-12), bf / nb.clamp_min(1e-12)
    cos = (ua * ub).sum()
    if na > 0 and nb > 0 and float(cos) < _ANTIPODAL_COS:  # as ops.slerp: every frame would be +a or -a, a hard cut halfway
        raise ArgumentError(
            f"slerp_noise: a and b are antipodal (cosine {float(cos):.6f}): there is no unique great circle between "
            "opposite noises. Give the keyframes other noises (e.g. other seeds), or put a keyframe between them."
        )
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if float(omega) < 1e-4:  # (nearly) parallel: the chord is the arc
        u = (1 - tt) * ua + tt * ub
    else:
        so = torch.sin(omega)
        u = torch.sin((1 - tt) * omega) / so * ua + torch.sin(tt * omega) / so * ub
    u = u / u.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    out = u * ((1 - tt) * na + tt * nb)
    # exact endpoints, whatever the rounding
    out = torch.where(tt == 0, af, torch.where(tt == 1, bf, out))
    out = out.to(a.dtype).reshape(-1, *a.shape)
    return out[0] if scalar else out


def path_noise(params: list[tuple[int, float]], keyframe_noise: torch.Tensor) -> torch.Tensor:
    """Starting noise of frames placed at ``params`` (``(segment, t)`` pairs, see
    :meth:`Trajectory.params`) along a path whose keyframe ``i`` has noise
    ``keyframe_noise[i]``: frame ``(i, t)`` gets ``slerp_noise(kn[i], kn[i + 1], t)``.
    Returns ``(len(params), *S)``.

    >>> kn = torch.randn(3, 2, 4, 4)
    >>> x = path_noise([(0, 0.0), (0, 0.5), (1, 0.0), (1, 1.0)], kn)
    >>> bool(torch.equal(x[0], kn[0])) and bool(torch.equal(x[2], kn[1])) and bool(torch.equal(x[3], kn[2]))
    True
    """
    K = keyframe_noise.shape[0]
    out = torch.empty(len(params), *keyframe_noise.shape[1:], dtype=keyframe_noise.dtype)
    for j, (i, t) in enumerate(params):
        if not 0 <= i < K - 1:
            raise ArgumentError(f"params[{j}] names segment {i}, but {K} keyframe noises make {K - 1} segments.")
        out[j] = slerp_noise(keyframe_noise[i], keyframe_noise[i + 1], float(t))
    return out


def keyframe_noise_for(
    num_keyframes: int,
    shape: tuple[int, ...],
    *,
    seed: int = 0,
    keyframe_seeds: Sequence[int] | None = None,
    keyframe_noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """The ``(K, *shape)`` keyframe noises of the ``"slerp"`` / ``"inverted"`` modes: the given
    ``keyframe_noise`` (e.g. from :meth:`Decoder.invert`), else noise seeded
    ``keyframe_seeds[i]`` (default ``seed + i``) for keyframe ``i``. Giving both is refused:
    the seeds would have nothing to seed."""
    if keyframe_noise is not None and keyframe_seeds is not None:
        raise ArgumentError(
            "keyframe_seeds and keyframe_noise were both given, but keyframe_noise sets every keyframe's noise "
            "itself, so keyframe_seeds would be ignored. Give keyframe_seeds to draw seeded keyframe noises, or "
            "keyframe_noise to use your own, not both."
        )
    if keyframe_seeds is not None:
        keyframe_seeds = _seed_list(keyframe_seeds)
    if keyframe_noise is not None:
        kn = keyframe_noise
        if isinstance(kn, torch.Tensor) and not kn.is_floating_point():  # (complex lost its imaginary part, a warning)
            raise ArgumentError(f"keyframe_noise must be a float tensor (as decoder.invert returns), got dtype {kn.dtype}.")
        if not isinstance(kn, torch.Tensor) or tuple(kn.shape) != (num_keyframes, *shape):
            got = tuple(kn.shape) if isinstance(kn, torch.Tensor) else type(kn).__name__
            raise ArgumentError(
                f"keyframe_noise must have shape {(num_keyframes, *shape)} (one noise per keyframe), got {got}."
            )
        finite = torch.isfinite(kn.detach()).flatten(1).all(dim=1)
        if not bool(finite.all()):  # every frame near that keyframe came out black, without a word
            raise ArgumentError(f"keyframe_noise holds NaN or infinite values (keyframes "
                                f"{(~finite).nonzero()[:, 0].tolist()}); check where it came from (decoder.invert).")  # fmt: skip
        kn = kn.detach().to("cpu", torch.float32)
        # refused here, as slerp_noise refuses them (it did so mid-render, after frames were drawn, naming its a and b)
        flat = kn.flatten(1).double()
        norms = flat.norm(dim=1)
        unit = flat / norms[:, None].clamp_min(1e-12)
        cos = (unit[:-1] * unit[1:]).sum(1)
        bad = ((cos < _ANTIPODAL_COS) & (norms[:-1] > 0) & (norms[1:] > 0)).nonzero()[:, 0].tolist()
        if bad:
            i = bad[0]
            raise ArgumentError(
                f"keyframe_noise[{i}] and keyframe_noise[{i + 1}] are antipodal (cosine {float(cos[i]):.6f}): there is no "
                "unique great circle between opposite noises, so the frames between those keyframes have no noise to "
                "follow (slerp_noise refuses them). Give one of them another noise, or put a keyframe between them."
            )
        return kn
    seeds = ([int(seed) + i for i in range(num_keyframes)] if keyframe_seeds is None
             else [check_seed(s, "keyframe_seeds[...]") for s in keyframe_seeds])  # fmt: skip
    if len(seeds) != num_keyframes:
        raise ArgumentError(f"keyframe_seeds has {len(seeds)} entries for {num_keyframes} keyframes; give one per keyframe.")
    return make_noise(tuple(shape), seeds)


def _seed_list(seeds: Any, name: str = "keyframe_seeds") -> list[Any]:
    """``seeds`` (one per keyframe) read once into a list: an iterator (a generator, ``map()``)
    read twice gave its seeds to the noise and none to the manifest and fingerprint. Anything
    that is not a sequence (a single seed) is refused, naming ``name``."""
    try:
        return list(seeds)  # type: ignore[arg-type]
    except TypeError:
        raise ArgumentError(f"{name} must be a list of seeds, one per keyframe, got {seeds!r}; e.g. {name}=[0, 1, 2].") from None


def check_eta(eta: Any, decoder: Any) -> None:
    """Refuse an ``eta`` outside [0, 1], or above 0 for a decoder without ``decode_eta``."""
    if not isinstance(eta, numbers.Real) or isinstance(eta, (bool, np.bool_)) or not 0 <= eta <= 1:  # numpy floats too
        raise ArgumentError(f"eta must be a number in [0, 1], got {eta!r}.")
    if eta > 0 and not hasattr(decoder, "decode_eta"):
        raise ArgumentError(no_eta_reason(type(decoder).__name__))


def no_eta_reason(decoder_type: str) -> str:
    """Why eta > 0 is refused for a decoder of class ``decoder_type`` without ``decode_eta``
    (said by :func:`check_eta`, and by render_spec before such a preset's models load)."""
    return (f"eta > 0 needs a decoder that samples with DDIM eta (mini); {decoder_type} does not. "
            "Use eta=0 (CLI: leave --eta out) and vary the seed instead.")  # fmt: skip


def check_callback(callback: Any) -> None:
    """Refuse a ``callback`` (render's, render_spec's) that is neither a function nor None."""
    if callback is not None and not callable(callback):
        raise ArgumentError(
            f"callback must be a function called with each frame's info dict, or None, got {callback!r} "
            f"({type(callback).__name__}). Fix: pass a function, e.g. callback=ll.LivePreview(), or leave it out."
        )


def decode_frames(decoder: Any, z: torch.Tensor, noise: torch.Tensor, *, seeds: list[int], steps: int | None,
                  guidance_scale: float | None, eta: float = 0.0) -> np.ndarray:  # fmt: skip
    """``decoder.decode``, or ``decoder.decode_eta`` when ``eta > 0``: one place, so that even
    pacing measures exactly the frames the render will draw."""
    if eta > 0:
        return decoder.decode_eta(z, noise, eta=float(eta), seeds=seeds, steps=steps, guidance_scale=guidance_scale)
    return decoder.decode(z, noise, seeds=seeds, steps=steps, guidance_scale=guidance_scale)


def _is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is an out-of-memory error: an accelerator's (CUDA, MPS or XPU), or torch's
    CPU allocator's ("DefaultCPUAllocator: can't allocate memory", a RuntimeError)."""
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _free_accelerator_memory() -> None:
    """Python's garbage, then the blocks cached by each accelerator torch has here (CUDA, Apple's
    MPS, Intel's XPU), so that a halved retry finds the memory the failed batch held."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available() and hasattr(getattr(torch, "mps", None), "empty_cache"):
        torch.mps.empty_cache()
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available() and hasattr(xpu, "empty_cache"):
        xpu.empty_cache()


def _halved_after_oom(exc: BaseException, size: int, single: str) -> int:
    """The batch size to retry with after ``exc`` decoding a batch of ``size``: half of it, once
    the accelerator's memory is freed; ``exc`` itself unless it is out of memory, and a
    :class:`LatentlabError` with the fixes when a batch of one (``single``, e.g. "rendering a
    single frame") did not fit."""
    if not _is_oom(exc):
        raise exc
    if size == 1:
        raise LatentlabError(
            f"out of memory {single}. Free memory (the GPU's, or the machine's on a CPU), use a smaller resolution, "
            "or on a GPU use dtype=torch.float16, or load the decoder with cpu_offload=True."
        ) from exc
    _free_accelerator_memory()
    return max(1, size // 2)


def _check_default_steps(decoder: Any) -> None:
    """A decoder's ``default_steps`` (what ``steps=None`` takes) within what its sampler takes
    (:meth:`~latentlab.decoders.Decoder.max_steps`: a decoder made with ``default_steps=1000`` of
    Stable unCLIP's 999), refused before a render writes anything, as an explicit ``steps`` is."""
    default = getattr(decoder, "default_steps", None)
    counts = not is_bool(default) and isinstance(default, numbers.Integral) and default >= 1
    if not (counts and callable(getattr(decoder, "_check_steps", None))):
        return  # (not a count at all: refused where it is read, by sampling_settings, as before)
    try:
        decoder._check_steps(default)
    except ArgumentError as exc:
        raise ArgumentError(f"steps=None takes the decoder's default_steps, which is too many for it: {exc} Fix: pass "
                            "steps=, or make the decoder with a smaller default_steps.") from None  # fmt: skip


def sampling_settings(steps: int | None, guidance_scale: float | None, decoder: Any) -> dict[str, Any]:
    """Steps and guidance as ``decoder`` will run them: unset means its defaults, and numbers of
    one type, so guidance 3 and 3.0 (or unset and the default) make the same render and cache key;
    plus the decoder's :meth:`~latentlab.decoders.Decoder.sampling_marks` for those steps (e.g.
    ``timesteps = "exact"`` where a fix changed some step counts' frames)."""
    # (+ 0.0: a guidance of -0.0, e.g. --guidance -0, is 0, not another render)
    out = {"steps": check_int(steps if steps is not None else decoder.default_steps, "steps", minimum=1),
           "guidance_scale": check_number(guidance_scale if guidance_scale is not None else decoder.default_guidance,
                                          "guidance_scale", minimum=0) + 0.0}  # fmt: skip
    marks = getattr(decoder, "sampling_marks", None)  # (only where a fix changed some counts' frames)
    return {**out, **(marks(out["steps"]) if callable(marks) else {})}


def _fingerprint(z: torch.Tensor, settings: dict[str, Any]) -> str:
    # the embeddings' own bytes, hashed where they lie (astype and tobytes made two copies of a long render's)
    h = hashlib.sha256(np.ascontiguousarray(z.detach().numpy(), np.float32).reshape(-1).view(np.uint8))
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()


def temp_path(path: Path, ext: str = "") -> Path:
    """A temporary name beside ``path``, unique to this write (two writers never share one):
    ``.<name>.<8 hex>.tmp`` (``.tmp.<ext>`` with an ``ext``), as every latentlab write names them
    (:func:`latentlab._atomic.temp_path`)."""
    return _atomic.temp_path(path, ext)


def _remove_stale_temps(directory: Path) -> None:
    """Remove the temporary files (:func:`temp_path`'s names) a killed render left in ``directory``."""
    _atomic.remove_temps(directory)


_locks = threading.local()  # this thread's held folder locks: resolved path -> [fd, depth]
_held_in_process: set[str] = set()  # the folders any thread of this process holds (a pid in the lock file does not
# tell: two containers' renders are both pid 1; and where files cannot be locked, threads are still told apart)
_held_guard = threading.Lock()  # where files cannot be locked, the lock instead: held while a thread checks and
# claims a folder in _held_in_process, and while one releases it (its lock file and the folders it made removed)


def _lock_fd(fd: int) -> bool:
    """Take an exclusive lock on the open file ``fd`` without waiting; False if another holds it."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def folder_lock(directory: str | os.PathLike, what: str = "out_dir") -> Iterator[None]:
    """Hold ``directory``'s render lock while writing there.

    A second render into the same folder, from another process or thread, is refused at once
    (it would delete or overwrite the frames the first is writing) instead of mixing two renders
    in one folder. The lock is the file ``.latentlab.lock`` in the folder, removed on release;
    the operating system releases the lock when its process ends, however it ends (a killed
    render leaves the file, which the next one takes over). Re-entrant in one thread
    (``render_spec`` holds it around ``render``). A folder this creates and that holds nothing
    else when released, or when the lock file cannot be made or written (a full disk), is removed
    again. On a file system that cannot lock files at all (an NFS
    mount without its lock service), a ``RuntimeWarning`` says so and the block runs
    guarded only against the other threads of this process.
    """
    # (None or 5 raised a bare TypeError; "" locked the working directory, which render(out_dir="") refuses)
    if isinstance(directory, bytes) or not isinstance(directory, (str, os.PathLike)) or str(directory) == "":
        raise ArgumentError(f"{what} must be a folder path (str or pathlib.Path), got {shown(directory)}. "
                            "Fix: e.g. folder_lock('renders/morph').")  # fmt: skip
    directory = Path(directory)
    from .video import _check_name_lengths

    _check_name_lengths(directory, what)  # (a name too long: a raw OSError from exists() below)
    try:
        key = str(directory.resolve())
    except (OSError, RuntimeError) as exc:  # a link loop: a raw RuntimeError (an OSError from Python 3.13)
        raise ArgumentError(f"{what} {str(directory)!r} cannot be used as a folder ({exc}). Choose another path, "
                            "or remove the link.") from None  # fmt: skip
    held: dict[str, list[int]] = getattr(_locks, "held", None) or {}
    _locks.held = held
    if key in held:
        held[key][1] += 1
        try:
            yield
        finally:
            held[key][1] -= 1
        return
    # the folders this makes (the render folder and any missing parents), removed again if left empty
    made = [p for p in (directory, *directory.parents) if not p.exists()]
    path = directory / LOCK_FILE
    unlocked = claimed = False  # True where the file system cannot lock files; once this thread claims the folder
    while True:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            from .jobs import check_can_create

            _remove_empty(made)  # (a full disk left the parents this call had made)
            check_can_create(directory, what)  # names a file in the way ("File exists" said it was there)
            raise ArgumentError(f"{what} {str(directory)!r} cannot be created: {exc.strerror}. Choose a writable folder.") from None
        if path.is_symlink():  # never latentlab's (a folder from elsewhere): the lock would empty its target
            with contextlib.suppress(FileNotFoundError):  # (another render starting here removed it first)
                path.unlink()
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except FileNotFoundError:  # another render removed the folder it had made, just now: make it again
            made = made or [directory]
            continue
        except OSError as exc:
            _remove_empty(made)  # (a full disk left the empty folder this call had made)
            if exc.errno in (errno.EACCES, errno.EPERM) and os.path.lexists(path) and os.access(directory, os.W_OK | os.X_OK):
                # (said "not writable" of a folder that is: another user's stale lock file is in the way)
                raise ArgumentError(
                    f"{what} {str(directory)!r} holds the lock file {str(path)!r}, which this process cannot open for "
                    f"writing ({exc.strerror}): another user's render made it. Fix: if no render of theirs is writing here "
                    f"now, remove it (rm {str(path)!r}) or ask its owner to; or render into another folder "
                    "(CLI: --out-dir or --name).") from None  # fmt: skip
            raise ArgumentError(f"{what} {str(directory)!r} is not writable ({exc.strerror}). Choose a writable folder.") from None
        try:
            try:
                locked = _lock_fd(fd)
            except OSError as exc:  # a file system without file locks (NFS without its lock service: ENOLCK) raised
                # a raw OSError and left the lock file and folder: the render goes on there, unguarded from other processes
                why = exc.strerror or exc  # (said once the folder is taken: a warning raised as an error left the files)
                unlocked, locked = True, None  # (checked below)
            # checked and claimed in one step, apart from a release (two threads checking at once both went on); in a
            # with statement, as a bare acquire() could leave the guard held (a Ctrl-C just after it: every release hung)
            with _held_guard if locked is None else contextlib.nullcontext():
                if locked is None:
                    locked = key not in _held_in_process  # (another thread's is still refused)
                if not locked:
                    try:
                        pid = os.read(fd, 32).decode("ascii", "replace").strip()
                    except OSError:
                        pid = ""
                    who = ("another thread of this process" if pid == str(os.getpid()) and key in _held_in_process
                           else f"another render (process {pid})" if pid.isdigit() else "another render")  # fmt: skip
                    # the lock file named, so that a reader who finds it knows what holds it; deleting it
                    # would not release the lock (the holder keeps the removed file's), only let two writers in
                    raise ArgumentError(
                        f"{what} {str(directory)!r} is being written by {who} right now (it holds the lock file "
                        f"{LOCK_FILE} there, released when that render ends: do not delete it). Wait for it to "
                        "finish, or render into another folder (CLI: --out-dir or --name)."
                    )
                try:  # the file may have been removed by its last holder between our open and our lock
                    st = os.fstat(fd)
                    same = os.path.samestat(st, os.lstat(path))
                except OSError:
                    same = False
                if same and (not stat.S_ISREG(st.st_mode) or st.st_nlink != 1):  # a hard link to another file: not emptied
                    try:
                        path.unlink()  # while still held, as the release does: no one locks a file about to vanish
                    except FileNotFoundError:
                        pass
                    except OSError as exc:  # (left there, it would be found again and again)
                        raise ArgumentError(f"{what} {str(directory)!r} holds {LOCK_FILE} as a link to another file, which "
                                            f"latentlab does not write over, and it cannot be removed ({exc.strerror}); "
                                            "remove it.") from None  # fmt: skip
                    same = False  # (closed below, and a new lock file made)
                if same:
                    try:
                        os.ftruncate(fd, 0)
                        os.write(fd, f"{os.getpid()}\n".encode())
                    except OSError as exc:  # a full disk (the file made, no block for its line): a raw OSError
                        with contextlib.suppress(OSError):  # left the lock file and the empty folder made for it
                            path.unlink()  # while still held, as the release does
                        _remove_empty(made)
                        raise ArgumentError(f"{what} {str(directory)!r} cannot be written ({exc.strerror}). "
                                            "Free some space, or choose another folder.") from None  # fmt: skip
                    if unlocked:  # another render may be writing here now: only the temporary files an hour old
                        from .video import STALE_TEMP_S

                        _atomic.remove_temps(directory, older_than=STALE_TEMP_S)
                    else:
                        _remove_stale_temps(directory)  # of a render killed while writing: no one writes here now
                    claimed = True  # (before the claim: no other thread holds the folder here, so undoing it is ours)
                    _held_in_process.add(key)
                    break
        except BaseException:
            if claimed:  # (a Ctrl-C once it was claimed left the folder refused to this process for good)
                _held_in_process.discard(key)
            os.close(fd)
            raise
        os.close(fd)  # a removed file's lock: take the new one
    held[key] = [fd, 1]
    try:
        if unlocked:
            warnings.warn(
                f"{what} {str(directory)!r} is on a file system that cannot lock files ({why}), so a second render "
                "into it at the same time from another process would not be refused: do not start one. To have it "
                "refused, render into a folder on a local disk.", RuntimeWarning, stacklevel=3)  # fmt: skip
        yield
    finally:
        del held[key]
        with _held_guard:  # (where files cannot be locked, a thread let in before the lock file and the folders it
            try:  # made were removed had them removed under it, and one refused left its own)
                _held_in_process.discard(key)
                with contextlib.suppress(OSError):
                    path.unlink()  # while still held, so no one locks a file about to vanish
            finally:  # (a second Ctrl-C landing here left the fd open: its lock refused the folder to this process for good)
                os.close(fd)  # closing releases the lock
            _remove_empty(made)


def _remove_empty(made: list[Path]) -> None:
    """Remove the folders ``folder_lock`` made (innermost first), those left empty: nothing was written there."""
    for folder in made:
        try:
            folder.rmdir()
        except FileNotFoundError:  # (a failed mkdir made the parents only)
            continue
        except OSError:
            break


def _read_json(path: Path) -> Any:
    """The JSON value in ``path``, or ``None`` where there is none to read: a missing or
    unreadable file, not JSON (empty, cut short), or JSON nested too deep to parse (a crafted
    file: RecursionError), or no regular file (a pipe named like it: reading it waited forever)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(data, indent=2, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())  # on disk before it replaces the old file: a power cut leaves one or the other

    write_whole(path, write)


def _save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save``, atomically (a kill while writing left an empty ``embeddings.npy``)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)

    write_whole(path, write, "npy")


def _save_png(frame: np.ndarray, path: Path) -> None:
    from PIL import Image

    write_whole(path, Image.fromarray(frame).save, "png")


def _load_png(path: Path, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
    """A finished frame, or ``None`` (to render it again) for a file that is not one of this
    render's frames: damaged, not RGB (render writes RGB only), or not of ``shape``."""
    from PIL import Image

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a pipe or device named like a frame: reading it hung
            return None
        with Image.open(path) as im:
            if im.mode != "RGB" or (shape is not None and (im.size[1], im.size[0], 3) != tuple(shape)):
                return None  # (known from the header: a huge picture is never decoded)
            image = np.asarray(im)
    except Exception:  # a damaged file is rendered again
        return None
    return image if shape is None or image.shape == tuple(shape) else None


def _frame_shape(recorded: Any, decoder: Any) -> tuple[int, ...] | None:
    """The ``(H, W, 3)`` of the frames ``decoder`` returns, before decoding any: as recorded in
    the manifest of this render, else from the decoder's ``resolution`` (square frames), else
    ``None`` (unknown until the first batch is decoded)."""
    if isinstance(recorded, list) and len(recorded) == 3 and all(type(x) is int and x > 0 for x in recorded):
        return tuple(recorded)
    r = getattr(decoder, "resolution", None)
    if isinstance(r, int) and not isinstance(r, bool) and r > 0:
        return (r, r, 3)
    return None


def _made_with_other_versions(old: dict[str, Any], manifest: dict[str, Any]) -> bool:
    """Whether some finished frames of ``old`` (the same render) came from other library
    versions: its versions differ, or it was already resumed across an upgrade."""
    kept = old.get("earlier_versions")
    mixed = isinstance(kept, list) and any(isinstance(v, dict) for v in kept)
    return old.get("versions") != manifest["versions"] or mixed


def _note_version_change(out_dir: Path, old: dict[str, Any], manifest: dict[str, Any]) -> None:
    """Resuming a render whose finished frames came from other library versions: the same
    seeds and settings may give slightly different pixels, so say which changed (a warning,
    not a refusal: an upgrade should not cost a half-done render) and keep the old versions
    in the manifest (``earlier_versions``) so a mixed render is on record."""
    before, now = old.get("versions"), manifest["versions"]
    kept = old.get("earlier_versions")
    earlier = [v for v in kept if isinstance(v, dict)] if isinstance(kept, list) else []
    if isinstance(before, dict) and before != now and any(out_dir.glob("frame_*.png")):
        if not earlier or earlier[-1] != before:
            earlier.append(before)
        changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        diff = ", ".join(f"{k} {before.get(k, 'absent')} -> {now.get(k, 'absent')}" for k in changed)
        warnings.warn(
            f"out_dir {str(out_dir)!r}: resuming a render whose finished frames were made with other "
            f"library versions ({diff}); new frames may differ slightly from those. To render every frame "
            "again with these versions, run it again with overwrite=True (CLI: --overwrite).",
            RuntimeWarning,
            stacklevel=4,
        )
    if earlier:
        manifest["earlier_versions"] = earlier


def untracked_frames_error(out_dir: Path) -> ArgumentError:
    """The refusal of a folder holding frames but no manifest (another tool's, or a
    ``variations --eta`` run's): nothing says what they are."""
    return ArgumentError(
        f"out_dir {str(out_dir)!r} has frames but no {MANIFEST}, so they cannot be trusted. "
        "Render into a new folder, or pass overwrite=True (CLI: --overwrite) to replace them."
    )


def _is_spec_record(spec: object) -> bool:
    """Whether ``spec`` can be a manifest's ``spec``: None, or a dict whose keyframes (if any) are a list."""
    return spec is None or (isinstance(spec, dict) and isinstance(spec.get("keyframes", []), list))


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest at ``path`` as a dict, or ``None`` when it cannot be one of latentlab's
    (empty, not JSON, or JSON of another shape: a hand edit, another tool's file)."""
    old = _read_json(path)
    if not isinstance(old, dict):
        return None
    return old if _is_spec_record(old.get("spec")) else None


def other_format_error(out_dir: Path, old: dict[str, Any]) -> ArgumentError | None:
    """The refusal of a manifest of another ``latentlab.render/`` format than the one this latentlab
    writes (a newer latentlab's, whose records this one cannot read: resumed, it was written over as
    this one's format, its own entries dropped), or ``None`` (this format, or none recorded)."""
    fmt = old.get("format")
    if not isinstance(fmt, str) or not fmt.startswith("latentlab.render/") or fmt == MANIFEST_FORMAT:
        return None
    return ArgumentError(
        f"out_dir {str(out_dir)!r} holds a render recorded in another {MANIFEST} format ({str(fmt)[:80]!r}; this "
        f"latentlab reads {MANIFEST_FORMAT!r}), e.g. by a newer latentlab. Resume it with that latentlab (upgrade), "
        "render into a new folder, or pass overwrite=True (CLI: --overwrite) to replace its frames."
    )


def unreadable_manifest_error(out_dir: Path) -> ArgumentError:
    return ArgumentError(
        f"out_dir {str(out_dir)!r} has an unreadable {MANIFEST} (empty, corrupt or not a latentlab manifest), so "
        "its frames cannot be trusted. Render into a new folder, or pass overwrite=True (CLI: --overwrite) to "
        "replace them."
    )


#: manifest entries that are records, not settings that draw the frames
_RECORD_KEYS = {"format", "fingerprint", "created", "finished", "complete", "frame_pattern", "spec", "trajectory", "embeddings_file",
                "versions", "earlier_versions", "frame_shape", "frame_seeds"}  # fmt: skip


def _what_differs(old: dict[str, Any], new: dict[str, Any], out_dir: Path, z: torch.Tensor | None) -> str:
    """What makes the render recorded in ``old`` (a manifest) another than ``new``'s, for the
    refusal: the settings that differ (``seed 0 -> 3``; the decoder's changed entries), else the
    embeddings ``z`` against the folder's ``embeddings.npy`` (``render()`` is given embeddings, not
    the keyframes they came from), else that another latentlab recorded it."""
    from .jobs import _decoder_change

    def text(v: Any) -> str:  # as the fingerprint reads a setting (3 and 3.0 differ there)
        return json.dumps(v, sort_keys=True, default=str)

    plain = json.loads(json.dumps(new, default=str))  # (as the manifest stores it)
    differ = []
    for k in sorted((set(old) | set(plain)) - _RECORD_KEYS):
        if text(old.get(k)) != text(plain.get(k)):
            if k == "decoder":
                differ.append(_decoder_change(old.get(k), plain.get(k)))
            elif k == "keyframe_noise_sha256" and old.get(k) is not None and plain.get(k) is not None:
                differ.append("the keyframes' inverted noise (a picture changed, or a latentlab before 2026-12-06 inverted "
                              "a picture that is not square, which is now inverted over its centre square, or one before "
                              "2026-12-07 inverted it with the mini or Karlo decoder, whose inversion was corrected then: "
                              "its cached keyframe_noise.pt was removed)")  # fmt: skip
            else:  # a setting recorded only when set (eta): unset, its default
                def as_said(d: dict[str, Any]) -> str:
                    if k == "eta_noise" and k not in d and d.get("eta"):  # an eta render before the record: not unset
                        return ("unrecorded (a latentlab before 2026-12-05, whose step noise's first draw repeated "
                                "the starting noise)")  # fmt: skip
                    return repr(d[k]) if k in d else "0 (the default)" if k == "eta" else "unset"

                differ.append(f"{k} {as_said(old)} -> {as_said(plain)}")
    if differ:
        return "; ".join(differ)
    try:  # compared as the fingerprint reads them (float32 bytes: -0.0 is not 0.0 there)
        if not stat.S_ISREG(os.stat(out_dir / "embeddings.npy").st_mode):  # a pipe: np.load waited forever
            raise OSError("not a regular file")
        recorded = np.load(out_dir / "embeddings.npy", allow_pickle=False)
        same = z is not None and recorded.shape == tuple(z.shape) and (
            recorded.astype(np.float32).tobytes() == z.contiguous().numpy().astype(np.float32).tobytes())
    except Exception:  # missing, empty (a kill while it was written), damaged: nothing to compare
        same = False
    if same:
        return "its record, of the same settings and embeddings, was written by another latentlab version"
    return ("other embeddings: the path's keyframes or frames changed, compared bit for bit, so a latentlab or "
            "torch version that rounds them differently counts too")


def _recorded_as_integer_guidance(old: dict[str, Any], manifest: dict[str, Any], z: torch.Tensor | None) -> bool:
    """Whether ``old`` (a folder's manifest) is the render of ``manifest`` as a latentlab before
    2026-12-05 recorded it: a guidance given as an integer (``guidance_scale = 3`` in a spec) was
    recorded and fingerprinted as that integer, where it is now ``3.0``: the same frames."""
    g = old.get("guidance_scale")
    if z is None or type(g) is not int or g != manifest.get("guidance_scale"):
        return False
    settings = {k: v for k, v in manifest.items() if k not in _RECORD_KEYS and k != "frames"}  # (as render() made them)
    return _fingerprint(z, {**settings, "guidance_scale": g}) == old.get("fingerprint")


def _prepare_dir(out_dir: Path, manifest: dict[str, Any], overwrite: bool, z: torch.Tensor | None = None) -> dict[str, Any]:
    # out_dir exists: render holds its folder_lock, which made it
    if not os.access(out_dir, os.W_OK):
        raise ArgumentError(f"out_dir {str(out_dir)!r} is not writable. Choose a writable folder.")
    path = out_dir / MANIFEST
    for p in (path, out_dir / "embeddings.npy", *out_dir.glob("frame_*.png")):  # (a raw IsADirectoryError, overwrite or not)
        if p.is_dir() and not p.is_symlink():  # (a link is replaced, its folder untouched)
            raise ArgumentError(f"out_dir {str(out_dir)!r} holds a folder named {p.name}, a file this render writes. "
                                "Move or rename that folder, or render into another folder.")  # fmt: skip
    if path.exists():
        old = read_manifest(path)
        if old is None and not overwrite:
            raise unreadable_manifest_error(out_dir)
        old = old if old is not None else {}
        newer = other_format_error(out_dir, old)
        if newer is not None and not overwrite:
            raise newer
        same = old.get("fingerprint") == manifest["fingerprint"] or _recorded_as_integer_guidance(old, manifest, z)
        if newer is not None or not same:
            if not overwrite:
                raise ArgumentError(
                    f"out_dir {str(out_dir)!r} holds a different render ({_what_differs(old, manifest, out_dir, z)}). Render "
                    "into a new folder, or pass overwrite=True (CLI: --overwrite) to replace its frames."
                )
            for f in out_dir.glob("frame_*.png"):
                f.unlink()
        else:
            shape = _frame_shape(old.get("frame_shape"), None)
            if shape is not None:
                manifest["frame_shape"] = list(shape)
            if overwrite and _made_with_other_versions(old, manifest):
                # the same render, but (some of) its frames came from other library versions:
                # overwrite renders them all again, as the version warning advises
                for f in out_dir.glob("frame_*.png"):
                    f.unlink()
            else:
                manifest["created"] = old.get("created", manifest["created"])
                if manifest.get("spec") is None and old.get("spec") is not None:
                    # the same render resumed from Python (render(), no spec): the spec a
                    # render_spec run recorded stays, or that run could not resume its own folder
                    manifest["spec"] = old["spec"]
                _note_version_change(out_dir, old, manifest)
    else:
        stale = list(out_dir.glob("frame_*.png"))
        if stale and not overwrite:
            raise untracked_frames_error(out_dir)
        if not overwrite and os.path.lexists(out_dir / "embeddings.npy"):  # (a render writes it after its manifest)
            raise ArgumentError(
                f"out_dir {str(out_dir)!r} has no {MANIFEST} but holds embeddings.npy, which this render would write "
                "over (not a file a latentlab render left there). Render into a new folder, or pass overwrite=True "
                "(CLI: --overwrite) to replace it."
            )
        for f in stale:
            f.unlink()
    _write_json(path, manifest)
    return manifest


def check_out_dir(out_dir: Any, name: str = "out_dir") -> Path | None:
    """``out_dir`` as a :class:`~pathlib.Path` (``None`` stays ``None``), a leading ``~`` read as
    a shell reads it (:func:`~latentlab.errors.user_path`, as ``render_spec`` and ``write_video``
    read theirs); anything but a path is refused."""
    if out_dir is None:
        return None
    if isinstance(out_dir, bytes) or not isinstance(out_dir, (str, os.PathLike)) or str(out_dir) == "":
        raise ArgumentError(
            f"{name} must be a folder path (str or pathlib.Path) or None (render in memory only), got {out_dir!r} "
            f"({type(out_dir).__name__}). Fix: e.g. {name}='renders/morph', or leave it out."
        )
    # (Path(): "~/r" rendered into a folder "./~/r", and a NUL raised a bare "ValueError: embedded null byte")
    return user_path(out_dir)


def _holding_out_dir(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``fn`` holding the lock of its ``out_dir`` (when given): see :func:`folder_lock`.
    The wrapper keeps ``fn``'s signature, for type checkers as well as ``inspect``."""
    import functools

    @functools.wraps(fn)
    def locked(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        out_dir = check_out_dir(kwargs.get("out_dir"))  # before the lock: Path(123) is a bare TypeError
        if out_dir is None:
            return fn(*args, **kwargs)
        with folder_lock(out_dir):
            return fn(*args, **kwargs)

    return locked


@_holding_out_dir
def render(
    trajectory: Any,
    decoder: Any,
    *,
    seed: int = 0,
    noise: str = "shared",
    keyframe_seeds: Sequence[int] | None = None,
    keyframe_noise: torch.Tensor | None = None,
    steps: int | None = None,
    guidance_scale: float | None = None,
    batch_size: int | None = None,
    eta: float = 0.0,
    out_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    spec: dict[str, Any] | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Render every frame of ``trajectory`` with ``decoder``.

    Args:
        trajectory: a :class:`~latentlab.Trajectory` or an ``(T, d)`` embedding tensor.
        decoder: a :class:`~latentlab.decoders.Decoder` of the same CLIP space.
        seed: base seed of the starting noise (CPU generator: same frames on any device).
        noise: ``"shared"``, one starting noise for every frame, so a morph does not
            flicker; ``"per-frame"``, noise seeded ``seed + k`` for frame ``k`` (flickers:
            for variations); ``"slerp"``, every keyframe has its own noise (seeded
            ``keyframe_seeds[i]``, default ``seed + i``) and frame ``(segment i, t)`` starts
            from ``slerp_noise(noise_i, noise_{i+1}, t)``, so each keyframe is rendered from
            its own noise and the noise moves smoothly in between; ``"inverted"``, the same
            with ``keyframe_noise`` given (e.g. from :meth:`Decoder.invert`, so both ends
            redraw their input images as closely as the inversion does: docs/quality.md
            measures it). The last two need a :class:`Trajectory`.
        keyframe_seeds: ``"slerp"`` mode: one seed per keyframe (not with ``keyframe_noise``,
            which sets the noises itself).
        keyframe_noise: ``"slerp"`` / ``"inverted"`` mode: ``(K, *decoder.noise_shape())``
            noise of each keyframe (required for ``"inverted"``).
        steps, guidance_scale: sampler settings (decoder defaults when ``None``).
        batch_size: frames per decoder call (decoder default when ``None``). Frame ``k`` gets
            the same noise and seeds in any batch, so it is the same picture up to float
            rounding: batched kernels may round some values differently with the frame's
            place in a batch, usually by at most one level (of 255) on a small fraction of
            the pixels, a few levels at very low step counts (measured on mini's CPU float32
            decode, a frame alone against in a batch of four: one level on 0.05% to 0.3% of
            the values at its default 25 steps, up to 5 levels at 3 steps). So a render
            resumed (with the same ``batch_size``) after it stopped with only part of a
            batch's frames written (a callback that raised, a killed process) may differ by
            such rounding from one drawn without a stop; stopped between batches, it gives
            the same frames. Frames that are one row, with the same embedding, starting
            noise and seed (a :class:`~latentlab.trajectory.Segment`'s ``hold`` or a repeated
            embedding, with any noise but ``"per-frame"``, which gives each frame its own
            seed), are decoded once and written as copies, so they are identical.
        eta: DDIM ``eta`` of the sampler (decoders with ``decode_eta``, i.e. mini): above 0
            the sampler adds fresh noise at every step, seeded by the frame's seed, which with
            ``"shared"``, ``"slerp"`` and ``"inverted"`` noise is ``seed`` for every frame, so
            the whole video strays from the ``eta = 0`` render in one coherent way; another
            ``seed`` gives another variation of the whole trajectory.
        out_dir: render directory; frames are written there as they finish and a rerun
            resumes (a leading ``~`` is the home folder, as in ``render_spec``). ``None``
            renders in memory only. While it renders, the folder is locked
            (``.latentlab.lock``): a second render into it meanwhile is refused.
        overwrite: replace a different render found in ``out_dir`` instead of refusing, and
            render every frame again when some of this render's finished frames were made
            with other library versions; the same render under the same versions resumes.
        spec: the render spec (as a dict) to record in the manifest.
        callback: called once for each frame, when it is ready, with ``{"frame": k, "frames":
            T, "image": (H, W, 3) uint8, "resumed": bool}`` (``resumed``: kept from an earlier
            run in ``out_dir``), e.g. for live previews in a notebook. ``image`` is read-only
            (it is the frame being written and returned): ``image.copy()`` to draw on it. It
            is a view of the array returned, not a copy: frames changed in place after the
            render returns change a kept ``image`` too (``.copy()`` it to keep it as drawn).
        progress: show a tqdm progress bar (it counts every frame once, copies included).

    Returns:
        uint8 frames ``(T, H, W, 3)``.

    >>> import latentlab as ll                                          # doctest: +SKIP
    >>> frames = ll.render(path, ll.create_decoder("tiny"), out_dir="renders/demo")  # doctest: +SKIP
    """
    from .trajectory import Trajectory

    if not isinstance(noise, str) or noise not in NOISE_MODES:  # (an array's `in` was numpy's raw ValueError)
        raise ArgumentError(f"noise must be one of {', '.join(map(repr, NOISE_MODES))}, got {noise!r}.")
    seed = check_seed(seed)
    check_callback(callback)  # checked now, not after the first batch is decoded
    if not all(hasattr(decoder, a) for a in ("decode", "dim", "space", "noise_shape")):
        raise ArgumentError(
            f"decoder must be a latentlab Decoder, got {type(decoder).__name__}; "
            "create one with ll.create_decoder(preset), e.g. ll.create_decoder('mini')."
        )
    if isinstance(trajectory, Trajectory):
        z = trajectory.embeddings()
        traj_dict: dict[str, Any] | None = trajectory.to_dict()
    else:
        if noise in ("slerp", "inverted"):
            raise ArgumentError(
                f"noise={noise!r} follows the keyframes of the path, so trajectory must be a Trajectory, "
                "not an embedding tensor. Build one with Trajectory.interpolate/chain, or use noise='shared'."
            )
        z = check_embeddings(trajectory, name="trajectory")
        traj_dict = None
    z = check_embeddings(z, name="trajectory embeddings", dim=decoder.dim, space=decoder.space, expected_by="the decoder")
    # (the decoder refuses them too, but only when their batch came, after earlier frames were written)
    refuse_zero_rows(z, "the trajectory's frame(s)", " to decode (a lerp through the origin, a padding row?). Fix: drop "
                     "them, or use slerp/nlerp for that segment.")  # fmt: skip
    if noise == "per-frame":  # frame k's seed + k overflowed after some frames were written
        check_seeds_fit(seed, z.shape[0], "frame", " with noise='per-frame'")
    z = z.detach().to("cpu", torch.float32)
    T = z.shape[0]
    batch_size = check_int(decoder.default_batch_size if batch_size is None else batch_size, "batch_size", minimum=1)
    check_eta(eta, decoder)
    progress = check_bool(progress, "progress")  # (else refused only at the bar, after the manifest was written)
    overwrite = check_bool(overwrite, "overwrite")  # (bool("no") is True: another render's frames were deleted)
    if not _is_spec_record(spec):
        # (recorded as given, it made the manifest one that read_manifest calls unreadable: no rerun resumed)
        raise ArgumentError(f"spec must be a render spec as a dict (its keyframes a list), or None, got {spec!r:.200}.")
    # more than the decoder's sampler takes: refused now, not at the first batch, once the manifest was
    # written (the folder then refused the rerun with fewer steps as another render)
    if steps is None:
        _check_default_steps(decoder)  # (a decoder made with a default_steps past its sampler)
    elif callable(getattr(decoder, "_check_steps", None)):
        decoder._check_steps(steps)
    seeds = frame_seeds(T, seed, noise)
    kn: torch.Tensor | None = None
    params: list[tuple[int, float]] = []
    extra: dict[str, Any] = {}
    if noise in ("slerp", "inverted"):
        if noise == "inverted" and keyframe_seeds is not None:
            raise ArgumentError(
                "keyframe_seeds does not apply to noise='inverted': its keyframe noises are keyframe_noise "
                "(from decoder.invert), so the seeds would be ignored. Leave keyframe_seeds out, or use "
                "noise='slerp' to draw each keyframe's noise from its seed."
            )
        if noise == "inverted" and keyframe_noise is None:
            raise ArgumentError(
                "noise='inverted' needs keyframe_noise: the (K, *noise_shape) noises of the keyframes from "
                "decoder.invert(images, embeddings) (render_spec computes them for image keyframes)."
            )
        if keyframe_seeds is not None:
            keyframe_seeds = _seed_list(keyframe_seeds)  # read once: the noise and the manifest both read it
        K = trajectory.keyframes.shape[0]
        if keyframe_seeds is None and keyframe_noise is None:  # (keyframe i's seed + i, recorded, then refused if given)
            check_seeds_fit(seed, K, "keyframe", " with noise='slerp'")
        kn = keyframe_noise_for(
            K, tuple(decoder.noise_shape()), seed=seed, keyframe_seeds=keyframe_seeds, keyframe_noise=keyframe_noise
        )
        params = trajectory.params()
        if keyframe_noise is None:
            extra["keyframe_seeds"] = [int(seed) + i for i in range(K)] if keyframe_seeds is None else [check_seed(x, "keyframe_seeds[...]") for x in keyframe_seeds]
        else:
            extra["keyframe_noise_sha256"] = hashlib.sha256(kn.contiguous().numpy().tobytes()).hexdigest()
    elif keyframe_seeds is not None or keyframe_noise is not None:
        raise ArgumentError(f"keyframe_seeds / keyframe_noise apply to noise='slerp' or 'inverted', not {noise!r}.")
    settings = {
        "seed": int(seed),
        "noise": noise,
        **extra,
        **sampling_settings(steps, guidance_scale, decoder),
        # only when set, so renders from before still resume; "eta_noise" marks the step noise's own
        # stream (before 2026-12-05 its first draw repeated the starting noise), so no older eta render resumes
        **({"eta": float(eta), "eta_noise": "own stream"} if eta > 0 else {}),
        "decoder": decoder.describe(),
    }
    frames: list[np.ndarray | None] = [None] * T
    # the frames returned, filled in place as they come (made at the first frame whose size is
    # known): a list of batches stacked at the end held every frame twice as render returned
    result: np.ndarray | None = None

    def place(k: int, image: np.ndarray) -> np.ndarray:
        """Frame ``k`` is ``image``: copied into ``result`` (made of its size at the first frame,
        the frames held so far moved into it), and ``frames[k]`` a view of it there."""
        nonlocal result
        if result is None:
            result = np.empty((T, *image.shape), np.uint8)
            for j, f in enumerate(frames):
                if f is not None and j != k:
                    result[j] = f
                    frames[j] = result[j]
        result[k] = image
        frames[k] = result[k]
        return frames[k]  # type: ignore[return-value]

    directory = check_out_dir(out_dir)
    manifest: dict[str, Any] = {}
    expected: tuple[int, ...] | None = None  # the size of the decoder's frames, where known before decoding
    if directory is not None:
        manifest = {
            "format": MANIFEST_FORMAT,
            "fingerprint": _fingerprint(z, settings),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "frames": T,
            "frame_pattern": FRAME_PATTERN,
            "complete": False,
            **settings,
            "frame_seeds": seeds,
            "spec": spec,
            "trajectory": None if traj_dict is None else {k: v for k, v in traj_dict.items() if k != "keyframes"},
            "embeddings_file": "embeddings.npy",
            "versions": versions(),
        }
        manifest = _prepare_dir(directory, manifest, overwrite, z)
        _save_npy(directory / "embeddings.npy", z.numpy())
        # a file of another size or mode (not this decoder's frame) is rendered again, as a damaged one is
        expected = _frame_shape(manifest.get("frame_shape"), decoder)
        for k in range(T):
            p = directory / FRAME_PATTERN.format(k)
            if p.exists():
                image = _load_png(p, expected)
                frames[k] = image
                if image is not None and expected is not None:
                    place(k, image)  # (of the size every kept frame has: held once, not as well as read)
    kept = [k for k in range(T) if frames[k] is not None]

    # Frames of one row (the same embedding, starting noise and seed: a hold, a repeated
    # embedding) are decoded once and copied: decoded apart, their places in the batches would
    # round them differently. The noise is a function of the seed (make_noise), or of the path
    # parameters (path_noise), so those and the embedding's bytes (hashed: a long render's keys
    # would otherwise hold a second copy of its embeddings) identify a row.
    row_of: dict[tuple[Any, ...], int] = {}
    members: list[list[int]] = []  # the frames of each distinct row, in frame order
    for k in range(T):
        key = (hashlib.sha256(z[k].numpy().tobytes()).digest(), seeds[k], params[k] if kn is not None else None)
        r = row_of.setdefault(key, len(members))
        if r == len(members):
            members.append([])
        members[r].append(k)

    def rows_to_draw() -> list[int]:
        """Rows none of whose frames is kept (a kept one is the source of its row's copies)."""
        return [r for r, ks in enumerate(members) if all(frames[k] is None for k in ks)]

    shape: tuple[int, ...] | None = None  # of the frames the decoder returns, from its first batch

    def decoded(todo: list[int]) -> Iterator[tuple[list[int], np.ndarray]]:
        """The rows of ``todo`` (which may grow meanwhile) decoded batch by batch: ``(rows,
        uint8 (len(rows), H, W, 3))``; a batch that does not fit in memory is retried halved."""
        nonlocal batch_size, shape
        pos = 0
        while pos < len(todo):
            rows = todo[pos : pos + batch_size]
            idx = [members[r][0] for r in rows]
            batch_seeds = [seeds[k] for k in idx]
            if kn is None:
                x = make_noise(tuple(decoder.noise_shape()), batch_seeds)
            else:
                x = path_noise([params[k] for k in idx], kn)
            try:
                out = decode_frames(decoder, z[idx], x, seeds=batch_seeds, steps=steps,
                                    guidance_scale=guidance_scale, eta=eta)  # fmt: skip
            except Exception as exc:
                batch_size = _halved_after_oom(exc, len(idx), "rendering a single frame")  # finished frames are kept
                continue
            if (not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.ndim != 4 or out.shape[0] != len(idx)
                    or out.shape[-1] != 3):  # fmt: skip
                raise LatentlabError(
                    f"decoder {type(decoder).__name__} returned {getattr(out, 'shape', type(out))} "
                    f"{getattr(out, 'dtype', '')}; expected uint8 ({len(idx)}, H, W, 3)."
                )
            if shape is None:
                shape = tuple(out.shape[1:])
                if kept and expected is not None and shape != expected:
                    # the kept frames, already counted as done, have the size the manifest recorded
                    # or the decoder's resolution gives; frames of another size cannot join them
                    raise LatentlabError(
                        f"decoder {type(decoder).__name__} returned frames of shape {shape}, but the frames kept "
                        f"in out_dir {str(directory)!r} are {expected}, as its {MANIFEST} or the decoder's "
                        "resolution says. Render into a new folder, or delete its frames and run it again."
                    )
                if directory is not None and manifest.get("frame_shape") != list(shape):
                    manifest["frame_shape"] = list(shape)  # so a resumed render checks its frames before decoding
                    _write_json(directory / MANIFEST, manifest)
            elif tuple(out.shape[1:]) != shape:
                raise LatentlabError(
                    f"decoder {type(decoder).__name__} returned frames of shape {tuple(out.shape[1:])} after "
                    f"frames of {shape}; the frames of one render must share one size."
                )
            yield rows, out
            pos += len(rows)

    from ._bars import progress_bar

    todo = rows_to_draw()
    batches = decoded(todo)
    first: list[tuple[list[int], np.ndarray]] = []
    bar = progress_bar(progress, total=T, initial=len(kept), desc="rendering", unit="frame")
    if kept and expected is None:
        # nothing said the frames' size beforehand (a manifest from before it was recorded, a
        # decoder without a resolution): learn it before counting the kept frames, so that one of
        # another size is drawn again and counted (and reported) once, not twice
        if todo:
            try:
                first.append(next(batches))  # under the bar, which shows the render has begun
            except BaseException:
                bar.close()
                raise
            stale = [k for k in kept if frames[k].shape != shape]  # type: ignore[union-attr]
            for k in stale:
                frames[k] = None
            kept = [k for k in kept if frames[k] is not None]
            queued = set(todo)
            todo.extend(r for r in rows_to_draw() if r not in queued)
            if stale:
                bar.n = len(kept)  # the frames of another size are drawn again, and counted then
                bar.refresh()
        else:
            try:
                _check_one_size(frames, directory)  # nothing to draw: only the kept frames can say, before any copy
            except BaseException:
                bar.close()
                raise
    if directory is not None and len(kept) == T:
        # nothing to draw: complete now, not only after the kept frames are reported (a callback
        # that stopped it there left a finished render's manifest saying it was not complete)
        manifest["complete"] = True
        manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        try:
            _write_json(directory / MANIFEST, manifest)
        except BaseException:
            bar.close()
            raise
    if callback is not None:
        try:
            for k in kept:
                callback({"frame": k, "frames": T, "image": _read_only(frames[k]), "resumed": True})
        except BaseException:  # a stop asked for while the kept frames are reported
            bar.close()
            raise
    from concurrent.futures import ThreadPoolExecutor

    # PNGs are written on a background thread while the next batch renders; every write is
    # atomic and the pool is drained before returning (or re-raising), so nothing is lost
    writer = ThreadPoolExecutor(max_workers=1) if directory is not None else None
    pending: list[Any] = []

    def finish(k: int, image: np.ndarray) -> None:
        """Frame ``k`` is ``image``: keep it, write it (in the background), report it."""
        image = place(k, image)
        if writer is not None and directory is not None:
            pending.append(writer.submit(_save_png, image, directory / FRAME_PATTERN.format(k)))
        if callback is not None:
            callback({"frame": k, "frames": T, "image": _read_only(image), "resumed": False})

    try:
        # missing copies of a row that has a kept frame: copied from it, not drawn again
        for ks in members:
            source = next((k for k in ks if frames[k] is not None), None)
            missing = [k for k in ks if frames[k] is None]
            if source is not None and missing:
                for k in missing:
                    finish(k, frames[source])  # type: ignore[arg-type]
                bar.update(len(missing))
        for rows, out in itertools.chain(first, batches):
            done = sorted((k, j) for j, r in enumerate(rows) for k in members[r])  # each row's copies with it
            for k, j in done:
                finish(k, out[j])
            for f in [f for f in pending if f.done()]:
                f.result()  # surface a failed write now, not at the end
            pending = [f for f in pending if not f.done()]
            bar.update(len(done))
    finally:
        bar.close()
        if writer is not None:
            writer.shutdown(wait=True)
    for f in pending:
        f.result()  # re-raise a failed write
    if directory is not None:
        manifest["complete"] = True
        manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        _write_json(directory / MANIFEST, manifest)
    if result is None:  # every frame kept, of a size nothing said beforehand
        for k in range(T):
            place(k, frames[k])  # type: ignore[arg-type]
    return result  # type: ignore[return-value]


def _read_only(image: np.ndarray) -> np.ndarray:
    """A read-only view of ``image`` (no copy): a callback that draws on it fails loudly instead
    of changing the frame being written, returned and copied to its held frames."""
    view = image.view()
    view.flags.writeable = False
    return view


def _check_one_size(frames: list[np.ndarray | None], directory: Path | None) -> None:
    """Refuse kept frames of different sizes where nothing says which size is right."""
    sizes = [f.shape for f in frames if f is not None]
    if len(set(sizes)) > 1:
        common = max(set(sizes), key=sizes.count)
        odd = [FRAME_PATTERN.format(k) for k, f in enumerate(frames) if f is not None and f.shape != common]
        raise LatentlabError(
            f"out_dir {str(directory)!r} holds frames of different sizes: {', '.join(odd[:5])}"
            f"{' ...' if len(odd) > 5 else ''} differ from the other frames' {common}. Delete the files that "
            "are not this render's and run it again: the missing frames are rendered."
        )
