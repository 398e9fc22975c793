"""Priors: CLIP text embeddings (or texts) -> CLIP image embeddings of the same space.

unCLIP decoders are conditioned on *image* embeddings. A prior turns the embedding of a
caption into a plausible image embedding, so that text keyframes can be decoded. A prior is
called as ``prior(text_embeddings, seed=..., num_samples=...)`` (the diffusion priors of
Karlo and Kandinsky take the texts themselves, see below) and returns
``(n * num_samples, d)`` unit-norm float32 embeddings tagged with its space, the samples of
input row ``i`` at rows ``i * num_samples ... (i + 1) * num_samples - 1``.
:func:`latentlab.create_prior` builds a preset's prior from its ``kind``:

* :class:`IdentityPrior` (kind ``"identity"``, here) returns the normalised text
  embeddings themselves, every sample alike (no randomness). CLIP's contrastive training
  puts a caption and its images near each other, but text and image embeddings occupy
  distinct regions of the sphere (the "modality gap": their cosine similarity is typically
  only ~0.3), so this is a crude approximation. Decoders render it, but expect weaker,
  vaguer pictures than from a real prior. The ``"tiny"`` preset uses it.
* :class:`~latentlab.mini.runtime.MiniPrior` (kind ``"mini"``): the embedded model's small
  diffusion prior over text embeddings. Sample ``j`` of every text starts from
  ``torch.randn`` of a CPU generator seeded with the first 64-bit word of
  ``np.random.SeedSequence([seed % 2**64, j])`` (mod ``2**63``).
* :class:`~latentlab.decoders.karlo.KarloPrior` (kind ``"karlo"``;
  ``kakaobrain/karlo-v1-alpha``, OpenAI ViT-L/14 space: the prior of the ``karlo`` and
  ``sd21-unclip-l`` presets) and :class:`~latentlab.decoders.kandinsky.KandinskyPrior`
  (kind ``"kandinsky"``; ``kandinsky-community/kandinsky-2-2-prior``, ViT-bigG/14: the
  ``kandinsky-2.2`` preset's), in ``latentlab.decoders``: DALL-E 2 style diffusion
  priors (:class:`~latentlab.decoders.kandinsky.UnCLIPDiffusionPrior`; ``"karlo_tiny"`` /
  ``"kandinsky_tiny"`` build tiny random ones for tests). They attend to the text tower's
  per-token states, so they take texts, ``prior.from_texts(texts)`` or ``prior(texts)``,
  and refuse pooled text embeddings. Sample ``j`` of every text draws its starting latents
  and every scheduler step's noise from ``torch.Generator("cpu").manual_seed(seed + j)``.

Each prior's seeding is fixed: renders and specs already made depend on it.

>>> import torch
>>> from latentlab.priors import IdentityPrior
>>> prior = IdentityPrior(name="tiny", space="tiny-random", dim=4)
>>> prior(torch.tensor([[3.0, 0.0, 0.0, 4.0]])).tolist()
[[0.6000000238418579, 0.0, 0.0, 0.800000011920929]]
"""

from __future__ import annotations

import numbers
from typing import Any

import torch

from .errors import ArgumentError, check_int, check_seed
from .presets import register_prior_builder
from .space import check_embeddings, float32_rows, normalize, refuse_zero_rows, tag

__all__ = ["Prior", "IdentityPrior"]


class Prior:
    """Base class of priors: text embeddings ``(n, d)`` -> image embeddings ``(n * num_samples, d)``.

    Subclasses implement :meth:`_sample`; :meth:`__call__` validates the input (size,
    space, finiteness), normalises, and tags the output with :attr:`space`.

    Attributes:
        name: preset or model id, recorded in manifests.
        space: CLIP space of both its inputs and its outputs.
        dim: embedding size ``d``.
    """

    name: str = "prior"
    space: str | None = None
    dim: int = 0

    def __init__(self, *, name: str, space: str | None, dim: int) -> None:
        # any integer type (numpy's too: np.int64(4) was refused as "not a positive integer"), not a bool
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim < 1:
            raise ArgumentError(f"dim must be a positive integer, got {dim!r}.")
        self.name = str(name)
        self.space = None if space is None else str(space)  # as tag() records it: its own outputs were refused
        self.dim = int(dim)

    def _sample(self, text_embeddings: torch.Tensor, *, seed: int, num_samples: int) -> torch.Tensor:
        """``text_embeddings`` (n, d) float32 unit-norm on the CPU -> (n * num_samples, d)."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement _sample(text_embeddings, *, seed, num_samples) -> torch.Tensor "
            "(n * num_samples, d) (see latentlab.priors.Prior)."
        )

    def __call__(self, text_embeddings: torch.Tensor, *, seed: int = 0, num_samples: int = 1) -> torch.Tensor:
        """Map text embeddings ``(n, d)`` (or ``(d,)``) to unit-norm image embeddings
        ``(n * num_samples, d)`` float32, tagged with this prior's space. ``text_embeddings``
        must come from this prior's CLIP space; ``seed`` picks the samples.

        >>> z_img = prior(encoder.encode_text(["a red cube"]), seed=0)   # doctest: +SKIP
        """
        # any integer type (numpy's too, as seed): np.int64(2) was refused as "not an integer >= 1, got 2"
        num_samples = check_int(num_samples, "num_samples", minimum=1)
        # any integer type (numpy's too), in the range every latentlab seed takes
        seed = check_seed(seed)
        z = check_embeddings(text_embeddings, name="text_embeddings", dim=self.dim, space=self.space, expected_by="the prior")
        # (it was blamed on the prior's output, which passed it on)
        refuse_zero_rows(z, "text_embeddings row(s)", "; give each row a text embedding.")
        if z.shape[0] * num_samples * self.dim > 2**63 - 1:  # (10**400 raised a raw ValueError from torch)
            shown = num_samples if num_samples < 10**30 else f"<an integer of {num_samples.bit_length()} bits>"
            raise ArgumentError(  # (not the whole number: str() of one over 4300 digits raises a ValueError)
                f"num_samples={shown} asks for more than the 2**63 - 1 numbers a tensor can hold "
                f"({z.shape[0]} text embeddings of size {self.dim}); pass a smaller num_samples."
            )
        z = normalize(float32_rows(z.detach().to("cpu")))  # (a float64 row of 1e-300 came out zero)
        out = self._sample(z, seed=seed, num_samples=num_samples)
        want = (z.shape[0] * num_samples, self.dim)
        if not isinstance(out, torch.Tensor) or not out.is_floating_point() or tuple(out.shape) != want:
            from .errors import LatentlabError

            got = f"{type(out).__name__} {getattr(out, 'dtype', '')} {tuple(getattr(out, 'shape', ()))}"
            raise LatentlabError(  # it was tagged with this prior's space whatever its size, or failed on .to()
                f"prior {type(self).__name__} returned {got} from its _sample; a prior returns a floating torch.Tensor "
                f"{want}: num_samples={num_samples} image embeddings of size {self.dim} per text embedding."
            )
        out = out.to(torch.float32)  # (on its device, as before)
        bad = ~torch.isfinite(out).all(dim=-1) | (out.abs().amax(dim=-1) == 0)
        if bool(bad.any()):
            from .errors import LatentlabError

            raise LatentlabError(f"prior {type(self).__name__} returned rows {bad.nonzero()[:, 0].tolist()[:8]} that are "
                                 "zero or not finite; an image embedding needs a direction.")  # fmt: skip
        return tag(normalize(out), self.space)

    def describe(self) -> dict[str, Any]:
        """What a render manifest records about this prior (JSON-serialisable)."""
        return {"class": type(self).__name__, "name": self.name, "space": self.space, "dim": self.dim}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, space={self.space!r}, dim={self.dim})"


class IdentityPrior(Prior):
    """Use the normalised text embedding as the image embedding (deterministic; every
    sample is the same). A crude approximation: see the module docstring on the modality gap.

    >>> import torch
    >>> p = IdentityPrior(name="tiny", space="tiny-random", dim=2)
    >>> p(torch.tensor([[0.0, 2.0]]), num_samples=2).tolist()
    [[0.0, 1.0], [0.0, 1.0]]
    """

    def _sample(self, text_embeddings: torch.Tensor, *, seed: int, num_samples: int) -> torch.Tensor:
        return text_embeddings.repeat_interleave(num_samples, dim=0).clone()

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["note"] = "identity: text embeddings used as image embeddings (crude; modality gap)"
        return d


@register_prior_builder("identity")
def _build_identity(
    preset: Any, *, device: torch.device | str | None = None, dtype: torch.dtype | str | None = None
) -> IdentityPrior:
    """``{"kind": "identity"}``. ``device`` / ``dtype`` are accepted for a uniform builder
    signature and ignored: the identity has no weights and returns CPU float32."""
    return IdentityPrior(name=preset.name, space=preset.space, dim=preset.dim)
