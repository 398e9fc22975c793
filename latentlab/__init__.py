"""latentlab: explore CLIP latent space the DALL-E 2 way.

Encode images and texts into a CLIP space, compose trajectories with slerp, text diffs and
embedding arithmetic, render every point with an unCLIP decoder and assemble videos::

    import latentlab as ll
    enc = ll.create_encoder("mini")
    dec = ll.create_decoder("mini")
    z_img = enc.encode_image(["phone.png"])
    z_src = enc.encode_text("a mobile phone")   # each tagged with its CLIP space
    z_dst = enc.encode_text("an old telephone")  # (z.split(1) would drop the tag)
    path = ll.Trajectory.text_diff(z_img, z_src, z_dst, frames=48)
    frames = dec.render(path, seed=0)
    ll.write_video(frames, "morph.mp4", fps=24)

Heavy libraries (open_clip, diffusers, imageio) load on first use, so importing is fast.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

__version__ = "0.1.0"

from .errors import ArgumentError, LatentlabError, ModelNotAvailableError, SpaceError, SpecError
from .presets import create_decoder, create_encoder, create_prior, get_preset, list_presets
from .space import space_of, tag

# eager, not lazy: importing the submodule latentlab.render (e.g. via Decoder.render) would
# otherwise bind the *module* to ``latentlab.render`` and shadow the function
from .render import render

# name -> module that defines it; imported on first attribute access (PEP 562)
_LAZY = {
    # operators
    "lerp": "ops",
    "nlerp": "ops",
    "slerp": "ops",
    "text_diff": "ops",
    "text_diff_direction": "ops",
    "arithmetic": "ops",
    "combine": "ops",
    "spherical_mean": "ops",
    "project_out": "ops",
    "amplify": "ops",
    "cosine": "ops",
    "similarity_matrix": "ops",
    # trajectories and specs
    "Trajectory": "trajectory",
    "Segment": "trajectory",
    "Spec": "spec",
    "load_spec": "spec",
    # rendering
    "render_spec": "jobs",
    "slerp_noise": "render",
    # quality: pacing, inversion, iterative edits
    "even_pacing": "pacing",
    "pacing_stats": "pacing",
    "frame_distances": "pacing",
    "Pacing": "pacing",
    "iterative_text_diff": "edit",
    "IterativeEdit": "edit",
    "variations": "edit",
    "generate": "edit",
    "RenderResult": "jobs",
    # assembler
    "write_video": "video",
    "contact_sheet": "video",
    "read_video": "video",
    "save_image": "video",
    "load_image": "video",
    # notebooks: inline views, scrubber, live preview
    "show": "notebook",
    "show_video": "notebook",
    "scrub": "notebook",
    "Scrubber": "notebook",
    "LivePreview": "notebook",
    # exploration
    "nearest_neighbours": "explore",
    "nearest_words": "explore",
    "nearest_images": "explore",
    "fit_pca": "explore",
    "pca_probe": "explore",
    "what_changed": "explore",
    "consecutive_distances": "explore",
    # plots (matplotlib)
    "plot_similarity": "plots",
    "plot_similarity_matrix": "plots",
    "plot_pca_map": "plots",
    "plot_pacing": "plots",
    "plot_word_changes": "plots",
    # stages
    "Encoder": "encoders",
    "EmbeddingCache": "encoders",
    "Decoder": "decoders.base",
    "Prior": "priors",
    # presets beyond the create_* functions (docs/models.md, notebook 05)
    "Preset": "presets",
    "register_preset": "presets",
    "weights_status": "presets",
}

__all__ = [
    "__version__",
    "LatentlabError",
    "ArgumentError",
    "SpaceError",
    "SpecError",
    "ModelNotAvailableError",
    "create_encoder",
    "create_decoder",
    "create_prior",
    "get_preset",
    "list_presets",
    "space_of",
    "tag",
    "render",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    # a submodule: ll.pacing.RELAX_STEP (only plain names: find_spec imports the parents of "x.y")
    if name.isidentifier() and not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'latentlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names, the module's globals and its submodules (``ll.pacing``, ...)."""
    import pkgutil

    subs = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}
    return sorted(set(__all__) | set(globals()) | subs)
