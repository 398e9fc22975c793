"""One exception family for everything latentlab raises on purpose.

Every error names the argument at fault, what was wrong with it (shape, value, path) and
the fix. Catch :class:`LatentlabError` to catch them all.
"""

from __future__ import annotations

__all__ = [
    "LatentlabError",
    "ArgumentError",
    "SpaceError",
    "SpecError",
    "ModelNotAvailableError",
]


class LatentlabError(Exception):
    """Base class of every error latentlab raises on purpose."""


class ArgumentError(LatentlabError, ValueError):
    """An argument has the wrong type, shape or value. The message names it and the fix."""


class SpaceError(ArgumentError):
    """Embeddings from different CLIP spaces (or of different sizes) were mixed."""


class SpecError(ArgumentError):
    """A render spec (JSON/TOML) is malformed; the message names the field and the fix."""


class ModelNotAvailableError(LatentlabError):
    """A model's weights are not on this machine and cannot be fetched."""
