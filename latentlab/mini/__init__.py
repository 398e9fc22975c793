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
    """Whether the trained CLIP, decoder and prior weights are shipped in ``WEIGHTS_DIR``, with
    the configs the decoder and prior load beside them (``mini_decoder.json``, ``mini_prior.json``)."""
    names = ("mini_clip.safetensors", "mini_decoder.safetensors", "mini_decoder.json", "mini_prior.safetensors",
             "mini_prior.json")  # fmt: skip
    return all((WEIGHTS_DIR / n).is_file() for n in names)


def __getattr__(name: str) -> Any:
    if name in ("MiniDecoder", "MiniPrior"):
        from . import runtime

        return getattr(runtime, name)
    # a submodule, as ``latentlab`` reaches its own: the docs cite ll.mini.shapes.check_relation,
    # latentlab.mini.runtime.ddim_invert, ... (only plain names: find_spec imports the parents of "x.y";
    # not the weights/ and configs/ folders, which find_spec takes for namespace packages, origin None)
    from importlib import import_module
    from importlib.util import find_spec

    spec = find_spec(f"{__name__}.{name}") if name.isidentifier() and not name.startswith("_") else None
    if spec is not None and spec.origin is not None:
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module 'latentlab.mini' has no attribute {name!r}")
