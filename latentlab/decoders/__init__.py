"""Decoders: CLIP image embeddings -> frames. See :class:`latentlab.decoders.base.Decoder`."""

from .base import Decoder

__all__ = ["Decoder"]
