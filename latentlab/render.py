"""The one render loop: trajectory + decoder -> frames, with batching, shared noise,
progress, per-frame callbacks and a resumable render directory.

A render directory holds ``frame_00000.png ...``, ``embeddings.npy`` (the exact ``(T, d)``
embeddings rendered) and ``manifest.json`` (spec, seeds, decoder, versions, progress). Frames
are written one by one as they finish, atomically, so a render that is interrupted (Ctrl-C, a
crash, a closed notebook) loses nothing: running it again into the same directory renders
only the missing frames.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .errors import ArgumentError, LatentlabError
from .space import check_embeddings

__all__ = ["render", "make_noise", "frame_seeds", "versions", "FRAME_PATTERN", "MANIFEST"]

FRAME_PATTERN = "frame_{:05d}.png"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "latentlab.render/1"


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
    """Seed of each frame's extra randomness: the same for every frame with shared noise,
    ``seed + k`` for frame ``k`` with per-frame noise."""
    if noise == "shared":
        return [int(seed)] * num_frames
    if noise == "per-frame":
        return [int(seed) + k for k in range(num_frames)]
    raise ArgumentError(f"noise must be 'shared' or 'per-frame', got {noise!r}.")


def make_noise(shape: tuple[int, ...], seeds: list[int]) -> torch.Tensor:
    """Starting noise ``(len(seeds), *shape)`` from CPU generators, one per frame, so a seed
    gives the same noise on every device and in every batch."""
    cache: dict[int, torch.Tensor] = {}
    out = []
    for s in seeds:
        if s not in cache:
            g = torch.Generator("cpu").manual_seed(int(s))
            cache[s] = torch.randn(shape, generator=g, dtype=torch.float32)
        out.append(cache[s])
    return torch.stack(out)


def _fingerprint(z: torch.Tensor, settings: dict[str, Any]) -> str:
    h = hashlib.sha256(z.contiguous().numpy().astype(np.float32).tobytes())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _save_png(frame: np.ndarray, path: Path) -> None:
    from PIL import Image

    tmp = path.with_name(f".{path.name}.tmp.png")
    Image.fromarray(frame).save(tmp)
    os.replace(tmp, path)


def _load_png(path: Path) -> np.ndarray | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except Exception:  # a damaged file is rendered again
        return None


def _prepare_dir(out_dir: Path, manifest: dict[str, Any], overwrite: bool) -> dict[str, Any]:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArgumentError(f"out_dir {str(out_dir)!r} cannot be created: {exc.strerror}. Choose a writable folder.") from None
    if not os.access(out_dir, os.W_OK):
        raise ArgumentError(f"out_dir {str(out_dir)!r} is not writable. Choose a writable folder.")
    path = out_dir / MANIFEST
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        if old.get("fingerprint") != manifest["fingerprint"]:
            if not overwrite:
                raise ArgumentError(
                    f"out_dir {str(out_dir)!r} holds a different render (other embeddings, decoder or "
                    "settings). Render into a new folder, or pass overwrite=True (CLI: --overwrite) "
                    "to replace its frames."
                )
            for f in out_dir.glob("frame_*.png"):
                f.unlink()
        else:
            manifest["created"] = old.get("created", manifest["created"])
    else:
        stale = list(out_dir.glob("frame_*.png"))
        if stale and not overwrite:
            raise ArgumentError(
                f"out_dir {str(out_dir)!r} has frames but no {MANIFEST}, so they cannot be trusted. "
                "Render into a new folder, or pass overwrite=True to replace them."
            )
        for f in stale:
            f.unlink()
    _write_json(path, manifest)
    return manifest


def render(
    trajectory: Any,
    decoder: Any,
    *,
    seed: int = 0,
    noise: str = "shared",
    steps: int | None = None,
    guidance_scale: float | None = None,
    batch_size: int | None = None,
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
            flicker; or ``"per-frame"``, noise seeded ``seed + k`` for frame ``k``.
        steps, guidance_scale: sampler settings (decoder defaults when ``None``).
        batch_size: frames per decoder call (decoder default when ``None``). Frame ``k`` does
            not depend on the batch it is rendered in.
        out_dir: render directory; frames are written there as they finish and a rerun
            resumes. ``None`` renders in memory only.
        overwrite: replace a different render found in ``out_dir`` instead of refusing.
        spec: the render spec (as a dict) to record in the manifest.
        callback: called after each frame with ``{"frame": k, "frames": T, "image": (H, W, 3)
            uint8, "resumed": bool}``, e.g. for live previews in a notebook.
        progress: show a tqdm progress bar.

    Returns:
        uint8 frames ``(T, H, W, 3)``.

    >>> import latentlab as ll                                          # doctest: +SKIP
    >>> frames = ll.render(path, ll.create_decoder("tiny"), out_dir="renders/demo")  # doctest: +SKIP
    """
    from .trajectory import Trajectory

    if isinstance(trajectory, Trajectory):
        z = trajectory.embeddings()
        traj_dict: dict[str, Any] | None = trajectory.to_dict()
    else:
        z = check_embeddings(trajectory, name="trajectory")
        traj_dict = None
    z = check_embeddings(z, name="trajectory embeddings", dim=decoder.dim, space=decoder.space)
    z = z.detach().to("cpu", torch.float32)
    T = z.shape[0]
    batch_size = decoder.default_batch_size if batch_size is None else batch_size
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ArgumentError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
    seeds = frame_seeds(T, seed, noise)
    settings = {
        "seed": int(seed),
        "noise": noise,
        "steps": steps if steps is not None else decoder.default_steps,
        "guidance_scale": guidance_scale if guidance_scale is not None else decoder.default_guidance,
        "decoder": decoder.describe(),
    }
    frames: list[np.ndarray | None] = [None] * T
    directory = Path(out_dir) if out_dir is not None else None
    manifest: dict[str, Any] = {}
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
        manifest = _prepare_dir(directory, manifest, overwrite)
        np.save(directory / "embeddings.npy", z.numpy())
        for k in range(T):
            p = directory / FRAME_PATTERN.format(k)
            if p.exists():
                frames[k] = _load_png(p)
    todo = [k for k in range(T) if frames[k] is None]

    from tqdm.auto import tqdm

    bar = tqdm(total=T, initial=T - len(todo), desc="rendering", unit="frame", disable=not progress)
    if callback is not None:
        for k in range(T):
            if frames[k] is not None:
                callback({"frame": k, "frames": T, "image": frames[k], "resumed": True})
    try:
        for start in range(0, len(todo), batch_size):
            idx = todo[start : start + batch_size]
            batch_seeds = [seeds[k] for k in idx]
            x = make_noise(tuple(decoder.noise_shape()), batch_seeds)
            out = decoder.decode(z[idx], x, seeds=batch_seeds, steps=steps, guidance_scale=guidance_scale)
            if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.ndim != 4 or out.shape[0] != len(idx):
                raise LatentlabError(
                    f"decoder {type(decoder).__name__} returned {getattr(out, 'shape', type(out))} "
                    f"{getattr(out, 'dtype', '')}; expected uint8 ({len(idx)}, H, W, 3)."
                )
            for j, k in enumerate(idx):
                frames[k] = out[j]
                if directory is not None:
                    _save_png(out[j], directory / FRAME_PATTERN.format(k))
                if callback is not None:
                    callback({"frame": k, "frames": T, "image": out[j], "resumed": False})
            bar.update(len(idx))
    finally:
        bar.close()
    if directory is not None:
        manifest["complete"] = True
        manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        _write_json(directory / MANIFEST, manifest)
    return np.stack(frames)  # type: ignore[arg-type]
