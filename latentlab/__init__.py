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

Heavy libraries (open_clip, diffusers, imageio) load on first use; importing latentlab
itself imports torch (seconds on a slow CPU, most of ``import latentlab``'s time).

``latentlab.render`` is the render function (``ll.render(path, decoder)``); the helpers of
its module are imported by name: ``from latentlab.render import make_noise``.
"""

from __future__ import annotations

# imported under private names: tab completion on ll. lists only the public API (see __dir__)
import typing as _typing
from importlib import import_module as _import_module
from importlib.util import find_spec as _find_spec

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

if _typing.TYPE_CHECKING:
    # what __getattr__ imports on first use, for type checkers and IDEs (py.typed is shipped):
    # "X as X" re-exports each name; tests/test_packaging.py checks this block against _LAZY
    from .ops import (
        lerp as lerp, nlerp as nlerp, slerp as slerp, text_diff as text_diff,
        text_diff_direction as text_diff_direction, arithmetic as arithmetic, combine as combine,
        spherical_mean as spherical_mean, project_out as project_out, amplify as amplify, cosine as cosine,
        similarity_matrix as similarity_matrix,
    )
    from .trajectory import Trajectory as Trajectory, Segment as Segment
    from .spec import Spec as Spec, load_spec as load_spec
    from .jobs import render_spec as render_spec, RenderResult as RenderResult
    from .render import slerp_noise as slerp_noise
    from .pacing import (
        even_pacing as even_pacing, pacing_stats as pacing_stats, frame_distances as frame_distances,
        Pacing as Pacing,
    )
    from .edit import (
        iterative_text_diff as iterative_text_diff, IterativeEdit as IterativeEdit, variations as variations,
        generate as generate,
    )
    from .video import (
        write_video as write_video, contact_sheet as contact_sheet, read_video as read_video,
        save_image as save_image, load_image as load_image,
    )
    from .notebook import (
        show as show, show_video as show_video, scrub as scrub, Scrubber as Scrubber, LivePreview as LivePreview,
    )
    from .explore import (
        nearest_neighbours as nearest_neighbours, nearest_words as nearest_words, nearest_images as nearest_images,
        fit_pca as fit_pca, pca_probe as pca_probe, what_changed as what_changed,
        consecutive_distances as consecutive_distances,
    )
    from .plots import (
        plot_similarity as plot_similarity, plot_similarity_matrix as plot_similarity_matrix,
        plot_pca_map as plot_pca_map, plot_pacing as plot_pacing, plot_word_changes as plot_word_changes,
    )
    from .encoders import Encoder as Encoder, EmbeddingCache as EmbeddingCache
    from .decoders.base import Decoder as Decoder
    from .priors import Prior as Prior
    from .presets import Preset as Preset, register_preset as register_preset, weights_status as weights_status

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


def __getattr__(name: str) -> _typing.Any:
    if name in _LAZY:
        value = getattr(_import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    # a submodule: ll.pacing.RELAX_STEP (only plain names: find_spec imports the parents of "x.y")
    if name.isidentifier() and not name.startswith("_") and _find_spec(f"{__name__}.{name}") is not None:
        return _import_module(f".{name}", __name__)
    raise AttributeError(f"module 'latentlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names, the submodules (``ll.pacing``, ...) and the module's dunders: not the
    globals that are only imports (``annotations`` of ``from __future__``, ...)."""
    import pkgutil

    subs = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}
    dunders = {n for n in globals() if n.startswith("__") and n.endswith("__")}
    return sorted(set(__all__) | subs | dunders)
