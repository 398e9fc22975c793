"""The decoder contract: CLIP image embeddings in, uint8 RGB frames out.

A decoder renders one batch at a time from embeddings and the starting noise the render
loop gives it; the loop (:mod:`latentlab.render`) owns batching, seeds, resume and
progress, so every decoder gets them for free. Subclasses implement :meth:`_decode`.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..space import check_embeddings

__all__ = ["Decoder"]


class Decoder:
    """Base class of every decoder.

    Attributes:
        name: the preset or model id, recorded in render manifests.
        space: name of the CLIP space whose image embeddings it understands.
        dim: embedding size ``d``.
        resolution: side of the square frames it returns, in pixels.
        default_steps: sampler steps used when ``steps`` is not given.
        default_guidance: classifier-free guidance scale used when not given.
        default_batch_size: frames per :meth:`decode` call when the caller does not say.
    """

    name: str = "decoder"
    space: str | None = None
    dim: int = 0
    resolution: int = 0
    default_steps: int = 20
    default_guidance: float = 1.0
    default_batch_size: int = 8

    # -- what subclasses implement ---------------------------------------------------
    def noise_shape(self) -> tuple[int, ...]:
        """Shape of one frame's starting noise, e.g. ``(4, 96, 96)`` for a latent decoder."""
        raise NotImplementedError

    def _decode(
        self,
        embeddings: torch.Tensor,
        noise: torch.Tensor,
        *,
        seeds: Sequence[int],
        steps: int,
        guidance_scale: float,
    ) -> np.ndarray:
        """Render a validated batch. ``embeddings`` (b, d) float32 unit-norm on the CPU;
        ``noise`` (b, *noise_shape) float32 on the CPU; ``seeds`` one int per frame for any
        randomness beyond the starting noise (so frame k never depends on its batch).
        Returns uint8 (b, H, W, 3)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What a render manifest records about this decoder (JSON-serialisable)."""
        return {
            "class": type(self).__name__,
            "name": self.name,
            "space": self.space,
            "dim": self.dim,
            "resolution": self.resolution,
        }

    # -- the public surface ----------------------------------------------------------
    def decode(
        self,
        embeddings: torch.Tensor,
        noise: torch.Tensor,
        *,
        seeds: Sequence[int] | None = None,
        steps: int | None = None,
        guidance_scale: float | None = None,
    ) -> np.ndarray:
        """Render one batch: ``embeddings`` (b, d) and ``noise`` (b, *noise_shape()) -> uint8 (b, H, W, 3)."""
        from ..errors import ArgumentError

        z = check_embeddings(embeddings, name="embeddings", dim=self.dim, space=self.space)
        z = z.detach().to("cpu", torch.float32)
        z = z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        shape = (z.shape[0], *self.noise_shape())
        if not isinstance(noise, torch.Tensor) or tuple(noise.shape) != shape:
            got = tuple(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__
            raise ArgumentError(f"noise must have shape {shape} for this batch, got {got}.")
        seeds = list(range(z.shape[0])) if seeds is None else [int(s) for s in seeds]
        if len(seeds) != z.shape[0]:
            raise ArgumentError(f"seeds has {len(seeds)} entries for {z.shape[0]} embeddings; give one per frame.")
        steps = self.default_steps if steps is None else int(steps)
        if steps < 1:
            raise ArgumentError(f"steps must be >= 1, got {steps}.")
        guidance = self.default_guidance if guidance_scale is None else float(guidance_scale)
        frames = self._decode(
            z, noise.detach().to("cpu", torch.float32), seeds=seeds, steps=steps, guidance_scale=guidance
        )
        return frames

    def render(
        self,
        trajectory: Any,
        *,
        seed: int = 0,
        out_dir: str | None = None,
        callback: Callable[[dict[str, Any]], None] | None = None,
        progress: bool = True,
        **kwargs: Any,
    ) -> np.ndarray:
        """Render every point of ``trajectory`` (a :class:`~latentlab.Trajectory` or an
        ``(T, d)`` tensor) to uint8 frames ``(T, H, W, 3)``. See :func:`latentlab.render.render`.

        >>> import latentlab as ll                                   # doctest: +SKIP
        >>> frames = ll.create_decoder("tiny").render(path, seed=0)  # doctest: +SKIP
        """
        from ..render import render

        return render(
            trajectory, self, seed=seed, out_dir=out_dir, callback=callback, progress=progress, **kwargs
        )
