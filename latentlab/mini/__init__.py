"""The embedded ``mini`` unCLIP stack: a small CLIP, diffusion prior and pixel-space decoder
trained in this repository on a procedural shapes world and emoji, shipped in ``weights/``.

Submodules: :mod:`~latentlab.mini.shapes` (scenes, captions, pixel checker),
:mod:`~latentlab.mini.models` (networks), :mod:`~latentlab.mini.runtime` (``MiniDecoder``,
``MiniPrior`` and their preset builders), :mod:`~latentlab.mini.train`,
:mod:`~latentlab.mini.export`, :mod:`~latentlab.mini.evaluate`, :mod:`~latentlab.mini.data`
(the emoji / clip-art data: fetch, index, loader; see ``NOTICE``). Heavy modules load lazily.

>>> from latentlab.mini import shapes
>>> shapes.caption(shapes.sample_scene(0, n_objects=1)).startswith("a")
True
"""

from __future__ import annotations

from typing import Any

__all__ = ["MiniDecoder", "MiniPrior", "weights_available", "WEIGHTS_DIR"]

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def weights_available() -> bool:
    """Whether the trained CLIP, decoder and prior weights are shipped in ``WEIGHTS_DIR``."""
    names = ("mini_clip.safetensors", "mini_decoder.safetensors", "mini_prior.safetensors")
    return all((WEIGHTS_DIR / n).is_file() for n in names)


def __getattr__(name: str) -> Any:
    if name in ("MiniDecoder", "MiniPrior"):
        from . import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'latentlab.mini' has no attribute {name!r}")
