"""Karlo (kakaobrain/karlo-v1-alpha) as a latentlab decoder and prior.

Karlo is Kakao Brain's reproduction of OpenAI's unCLIP in the space of **OpenAI CLIP
ViT-L/14** (768-d; open_clip ``ViT-L-14`` / ``openai`` reproduces that model).

* :class:`KarloDecoder` wraps diffusers' ``UnCLIPImageVariationPipeline``
  (``kakaobrain/karlo-v1-alpha-image-variations``: ``decoder`` 64 px + ``text_proj`` +
  ``super_res_first`` / ``super_res_last`` 256 px, plus the ViT-L/14 ``image_encoder``);
  it takes ``image_embeddings=`` directly.
* :class:`KarloPrior` is the prior of ``UnCLIPPipeline`` (``kakaobrain/karlo-v1-alpha``:
  ``prior`` + ``text_encoder`` + ``tokenizer`` + ``prior_scheduler``): texts -> ViT-L/14
  image embeddings. That is why it is the usual prior for Stable Diffusion 2.1 unCLIP-L
  (``stabilityai/stable-diffusion-2-1-unclip-small``), whose decoder is conditioned on
  the same OpenAI ViT-L/14 image embeddings. Like Kandinsky's, it needs the texts
  (:meth:`~latentlab.decoders.kandinsky.UnCLIPDiffusionPrior.from_texts`).

**Supported while diffusers ships it.** Recent diffusers keep these pipelines under
``diffusers.pipelines.deprecated.unclip``; they are imported lazily from wherever the
installed diffusers has them, and a :class:`~latentlab.errors.LatentlabError` says so when
it has dropped them.

**Determinism.** ``scheduler="ddim"`` (the default) samples both stages with latentlab's
own deterministic DDIM loop (:func:`ddim_step`, eta 0), reproducing the pipeline's
conditioning (``text_proj`` extra context tokens and additive time embedding, the
empty-prompt text states and their attention mask, classifier-free guidance against
``text_proj``'s learned unconditional embedding, the epsilon half of the decoder's
(epsilon, learned variance) output, the bicubic-upsampled 64 px image concatenated to the
super-res input, ``super_res_last`` for the final super-res step). A frame is then a
function of its embedding, its starting noise and its super-res noise only: a fixed noise
and a smoothly moving embedding give a smoothly moving video, frame k never depends on its
batch, and :meth:`KarloDecoder.invert` can run the 64 px stage backwards (DDIM
inversion). ``scheduler="unclip"`` keeps Karlo's own ``UnCLIPScheduler``, a DDPM-style
sampler that adds fresh noise at every step of both stages; the adapter makes that noise
reproducible per frame (each frame gets its own ``torch.Generator("cpu").manual_seed(seed)``),
so frame k never depends on its batch either, and with one fixed seed for all frames
(latentlab's default ``noise="fixed"``) the per-step noise is shared across frames too.
Per-frame seeds flicker with ``"unclip"``; with ``"ddim"`` the seed only picks the
super-res noise.

**Captions.** With ``"ddim"``, ``decode(..., captions=[...])`` gives the 64 px decoder each
row's caption in place of the empty prompt, as Karlo's text-to-image ``UnCLIPPipeline``
gives it the prompt (the unconditional half of guidance keeps the empty prompt):
:func:`latentlab.generate` does this with the prior's samples. Renders never pass captions.

**Timesteps (``"ddim"``).** The 64 px stage uses *trailing* spacing (Lin et al. 2023,
"Common Diffusion Noise Schedules and Sample Steps are Flawed"): ``steps`` evenly spaced
timesteps ending at the top, ``999, 959, ..., 39`` for 25 steps, the last one stepping to
the clean image. It starts, like Karlo's own sampler, from the noisiest timestep (the
render loop's noise is pure N(0, I)) and every model call moves the sample. The predicted
clean image is clipped to [-1, 1] at every step (the schedulers' ``clip_sample``: a
pixel-space model), with epsilon re-derived from the clipped image as in OpenAI's
``improved-diffusion`` DDIM, which Karlo's code base follows. The super-res stage keeps
Karlo's own timesteps (``round(linspace(999, 0, super_res_steps))``) because its last
step, at ``t = 0``, belongs to ``super_res_last``, which Karlo fine-tuned for that step
alone.

**Inversion (``"ddim"``).** :meth:`KarloDecoder.invert` downsamples the image to the
decoder's size (64 px; area filter), runs the 64 px DDIM stage backwards conditioned on
the given embedding (guidance 1 by default, as for the other decoders) and returns that
stage's starting noise. Decoding it with the same embedding and steps redraws the 64 px
image; the super-res stage is *not* inverted: it re-draws the 256 px detail from the
seed's super-res noise, so the 256 px frame matches the image in layout and colour, not
texture by texture.

**Two noise tensors.** :meth:`KarloDecoder.noise_shape` is the decoder's starting latents
``(3, 64, 64)``; the super-resolution stage's starting noise ``(3, 256, 256)`` is derived
from the frame seed: ``torch.Generator("cpu").manual_seed(super_res_seed(seed))`` where
:func:`super_res_seed` hashes the seed (SHA-256 of ``"karlo-super-res:<seed>"``), so it is
independent of the decoder noise yet fixed by the seed.

Builders: decoders ``"karlo"`` / ``"karlo_tiny"``, priors ``"karlo"`` / ``"karlo_tiny"``.

>>> import torch                                                              # doctest: +SKIP
>>> from latentlab.decoders.karlo import KarloDecoder, KarloPrior              # doctest: +SKIP
>>> prior = KarloPrior.from_pretrained(device="cuda", dtype=torch.float16)    # doctest: +SKIP
>>> dec = KarloDecoder.from_pretrained(device="cuda", dtype=torch.float16)    # doctest: +SKIP
>>> z = prior.from_texts("a watercolor lighthouse", seed=0)                  # doctest: +SKIP
>>> dec.decode(z, torch.randn(1, *dec.noise_shape()), seeds=[0]).shape        # doctest: +SKIP
(1, 256, 256, 3)
"""

from __future__ import annotations

import hashlib
import numbers
import os
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import ArgumentError, LatentlabError, check_bool, check_int, check_number, check_seed
from ..hf_clip import (
    as_device,
    as_dtype,
    diffusers_dtype_key,
    check_local_folder,
    check_tokenizer,
    hub_source,
    load_component,
    load_kwargs,
    synthetic_images,
    tiny_hf_clip_towers,
    transformers_dtype_key,
    warn_half_on_cpu,
)
from ..presets import _DECODER_CLASSES, register_decoder_builder
from .base import (
    Decoder,
    centre_square,
    one_call_at_a_time,
    refuse_nonfinite_pixels,
    trailing_timesteps,
    trailing_timesteps_marks,
)
from .kandinsky import (
    UnCLIPDiffusionPrior,
    _check_guidance,
    _check_scale,
    _mean_norm,
    _place,
    _scale_or_auto,
    _to_uint8,
    register_unclip_prior_builders,
)
from .unclip import checked_cpu_offload, dim_mismatch_error, free_model_hooks, scheduler_inverts

__all__ = [
    "SCHEDULERS",
    "KarloDecoder",
    "KarloPrior",
    "ddim_step",
    "ddim_invert_step",
    "decoder_timesteps",
    "super_res_timesteps",
    "super_res_seed",
    "tiny_karlo_pipeline",
    "unclip_pipeline_classes",
    "KARLO_SPACE",
    "KARLO_REPO",
    "KARLO_VARIATIONS_REPO",
]

KARLO_SPACE = "openai/ViT-L-14"
KARLO_REPO = "kakaobrain/karlo-v1-alpha"
KARLO_VARIATIONS_REPO = "kakaobrain/karlo-v1-alpha-image-variations"

#: the samplers :class:`KarloDecoder` can use (``scheduler=``); the first is the default
SCHEDULERS = ("ddim", "unclip")


def unclip_pipeline_classes() -> dict[str, Any]:
    """``{"UnCLIPPipeline", "UnCLIPImageVariationPipeline", "UnCLIPTextProjModel"}`` from
    wherever the installed diffusers keeps them; a LatentlabError if it dropped them."""
    import diffusers

    found: dict[str, Any] = {}
    for mod in ("diffusers.pipelines.deprecated.unclip", "diffusers.pipelines.unclip", "diffusers"):
        try:
            m = __import__(mod, fromlist=["UnCLIPImageVariationPipeline"])
            found = {
                "UnCLIPPipeline": m.UnCLIPPipeline,
                "UnCLIPImageVariationPipeline": m.UnCLIPImageVariationPipeline,
                "UnCLIPTextProjModel": getattr(m, "UnCLIPTextProjModel", None)
                or __import__(mod + ".text_proj", fromlist=["UnCLIPTextProjModel"]).UnCLIPTextProjModel,
            }
            break
        except (ImportError, AttributeError):
            continue
    if found and "dummy" in (found["UnCLIPImageVariationPipeline"].__module__ or ""):
        # diffusers puts placeholders there when a package they need cannot be found (transformers):
        # that package is missing, not the pipelines (it was said as a diffusers without Karlo)
        from diffusers.utils import import_utils

        backends = getattr(found["UnCLIPImageVariationPipeline"], "_backends", None) or ["transformers"]
        lost = [b for b in backends if not getattr(import_utils, f"is_{b}_available", lambda: True)()]
        if lost:
            raise LatentlabError(
                f"the Karlo (unCLIP) pipelines of diffusers {diffusers.__version__} need {' and '.join(lost)}, which "
                f"diffusers cannot find here. Fix: `pip install {' '.join(lost)}` (a dependency of latentlab), then check "
                f"that `python -c \"import {lost[0]}\"` works."
            )
    if not found or "dummy" in (found["UnCLIPImageVariationPipeline"].__module__ or ""):
        raise LatentlabError(
            f"the installed diffusers {diffusers.__version__} no longer ships the Karlo (unCLIP) pipelines "
            "(UnCLIPPipeline / UnCLIPImageVariationPipeline). Karlo is supported while diffusers ships it: "
            "install a diffusers version that has diffusers.pipelines.deprecated.unclip (e.g. 0.3x-0.4x), "
            "or use another preset."
        )
    return found


def super_res_seed(seed: int) -> int:
    """The seed of a frame's super-resolution starting noise, derived from its frame seed:
    the first 63 bits of SHA-256(``"karlo-super-res:<seed>"``).

    >>> super_res_seed(0) == super_res_seed(0) != super_res_seed(1)
    True
    """
    # checked, not converted: int(1.7) drew seed 1's noise, int("a") was a raw ValueError
    digest = hashlib.sha256(f"karlo-super-res:{check_seed(seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


# ======================================================================================
# deterministic DDIM, as pure functions
# ======================================================================================


def decoder_timesteps(steps: int, num_train_timesteps: int = 1000) -> list[int]:
    """The 64 px stage's DDIM timesteps, noisiest first, with *trailing* spacing (Lin et
    al. 2023, "Common Diffusion Noise Schedules and Sample Steps are Flawed", table 2), as
    diffusers' ``DDIMScheduler(timestep_spacing="trailing")`` sets them, but always exactly
    ``steps`` of them, all ``>= 0`` (:func:`~latentlab.decoders.base.trailing_timesteps`:
    diffusers appends a timestep ``-1`` for 61, 103, 121, ... steps).

    >>> decoder_timesteps(4)
    [999, 749, 499, 249]
    >>> len(decoder_timesteps(61)), decoder_timesteps(61)[-1]
    (61, 15)
    """
    return trailing_timesteps(steps, num_train_timesteps)


def super_res_timesteps(steps: int, num_train_timesteps: int = 1000) -> list[int]:
    """The super-res stage's timesteps, noisiest first: Karlo's own
    (``UnCLIPScheduler.set_timesteps``), ``round(linspace(T - 1, 0, steps))``. The last one is
    ``0``, the step of ``super_res_last``.

    >>> super_res_timesteps(7)
    [999, 832, 666, 500, 333, 166, 0]
    """
    steps = check_int(steps, "super_res_steps")  # (int(2.5) was 2, int("7") 7)
    if steps < 2:
        raise ArgumentError(f"super_res_steps must be >= 2 (super_res_first, then super_res_last), got {steps}.")
    ratio = (check_int(num_train_timesteps, "num_train_timesteps", minimum=1) - 1) / (steps - 1)
    return [int(t) for t in (np.arange(steps) * ratio).round()[::-1].astype(np.int64)]


def ddim_step(x: torch.Tensor, eps: torch.Tensor, alpha_t: float, alpha_prev: float, *,
              clip: float | None = 1.0) -> torch.Tensor:  # fmt: skip
    """One deterministic DDIM step (Song et al. 2021, "Denoising Diffusion Implicit Models",
    eq. 12 with eta = 0) from ``x`` at cumulative alpha ``alpha_t`` to ``alpha_prev``.

    ``eps`` is the model's noise estimate for ``x``. With ``clip`` the predicted clean image
    is clamped to ``[-clip, clip]`` and epsilon re-derived from it (OpenAI
    ``improved-diffusion``'s ``ddim_sample``), so ``alpha_prev = 1`` returns the clamped
    clean image. Shapes follow ``x``; any device or dtype.

    >>> x, eps = torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)
    >>> ddim_step(x, eps, 0.25, 1.0).unique().tolist()      # x0 = (0 - sqrt(.75)) / .5, clamped
    [-1.0]
    """
    x0 = (x - (1.0 - alpha_t) ** 0.5 * eps) / alpha_t**0.5
    if clip is not None:
        x0 = x0.clamp(-clip, clip)
        eps = (x - alpha_t**0.5 * x0) / (1.0 - alpha_t) ** 0.5
    return alpha_prev**0.5 * x0 + (1.0 - alpha_prev) ** 0.5 * eps


def ddim_invert_step(x_prev: torch.Tensor, eps: torch.Tensor, alpha_t: float, alpha_prev: float, *,
                     clip: float | None = 1.0, x_t: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Undo one :func:`ddim_step` (DDIM inversion, Song et al. 2021, sec. 4.3): the ``x_t``
    that ``ddim_step(x_t, eps, alpha_t, alpha_prev, clip=clip)`` maps to ``x_prev``, for a
    given noise estimate ``eps``.

    ``eps`` must be the model's estimate at ``x_t``, which inversion does not know yet:
    plain DDIM inversion evaluates it at ``x_prev``; a fixed-point refinement re-evaluates it
    at the previous estimate, passed as ``x_t``, which turns on the clamp's inverse. The clamp
    binds where the clean image of the step landing on ``x_prev`` with this ``eps``,
    ``x0 = (x_prev - sqrt(1 - a_prev) eps) / sqrt(a_prev)``, has ``|x0| > clip``; there the
    step is inverted in closed form for the clamped value ``c``:
    ``x_t = sqrt(a_t) c + sqrt((1 - a_t) / (1 - a_prev)) (x_prev - sqrt(a_prev) c)``.

    >>> g = torch.Generator().manual_seed(0)
    >>> x_t, eps = torch.randn(1, 3, 4, 4, generator=g), torch.randn(1, 3, 4, 4, generator=g)
    >>> x_prev = ddim_step(x_t, eps, 0.5, 0.9)
    >>> bool(torch.allclose(ddim_invert_step(x_prev, eps, 0.5, 0.9, x_t=x_t), x_t, atol=1e-5))
    True
    """
    # (decided from x_prev, not x_t: dividing by sqrt(a_t), ~5e-5 at t = 999, turned eps's change
    # between the estimates, or float rounding, into a wrong clamp and sign there)
    x0 = (x_prev - (1.0 - alpha_prev) ** 0.5 * eps) / alpha_prev**0.5
    free = alpha_t**0.5 * x0 + (1.0 - alpha_t) ** 0.5 * eps
    if clip is None or x_t is None or alpha_prev >= 1.0:
        return free
    c = x0.clamp(-clip, clip)
    clamped = alpha_t**0.5 * c + ((1.0 - alpha_t) / (1.0 - alpha_prev)) ** 0.5 * (x_prev - alpha_prev**0.5 * c)
    return torch.where(x0.abs() > clip, clamped, free)


def _frames(images: torch.Tensor) -> np.ndarray:
    """(b, 3, H, W) in [-1, 1] on any device -> uint8 (b, H, W, 3), as the pipeline's ``output_type="np"``."""
    return _to_uint8((images.float() * 0.5 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy())


class KarloDecoder(Decoder):
    """Decode OpenAI CLIP ViT-L/14 image embeddings with Karlo (``UnCLIPImageVariationPipeline``).

    Two stages: the 64 px decoder (starting latents = the render loop's ``noise``, shape
    :meth:`noise_shape`), then two super-resolution UNets to 256 px (starting noise derived
    from the frame seed, see :func:`super_res_seed`). Both stages sample with deterministic
    DDIM (``scheduler="ddim"``, the default; :meth:`invert` works) or with Karlo's
    stochastic ``UnCLIPScheduler`` fed one CPU generator per frame (``scheduler="unclip"``);
    see the module docstring on continuity.

    **Scale convention.** Karlo's decoder was trained on *unnormalised* ViT-L/14
    ``image_embeds``; the adapter passes ``embeddings * embed_scale``. ``"auto"``
    calibrates it at load as the mean norm the pipeline's own image encoder gives 8 fixed
    synthetic images; :meth:`calibrate_embed_scale` re-measures it on your images.

    Args:
        pipe: an ``UnCLIPImageVariationPipeline``.
        name, space, dim: preset name, CLIP space (``"openai/ViT-L-14"``), size (768).
        resolution: must equal the super-res UNets' ``sample_size`` (256); ``None`` reads it.
        embed_scale: a positive number or ``"auto"``.
        super_res_steps: steps of the super-resolution stage (Karlo's default 7; >= 2, the
            last one is ``super_res_last``'s).
        scheduler: ``"ddim"`` (default): latentlab's deterministic DDIM loop (eta 0) for both
            stages; frames depend on embedding, noise and super-res noise only, and images
            can be inverted. ``"unclip"``: the pipeline itself with Karlo's stochastic
            ``UnCLIPScheduler`` (fresh noise at every step, seeded per frame; ``steps >= 2``;
            float32 only on the CPU, where torch has no half-precision antialiased bicubic
            upsampling for the pipeline's super-res input).
        device, dtype, cpu_offload, default_steps (25), default_guidance (8.0),
        default_batch_size, source: as for the other decoders.

    >>> from latentlab.decoders.karlo import KarloDecoder, tiny_karlo_pipeline
    >>> dec = KarloDecoder(tiny_karlo_pipeline(dim=32), name="t", space="s", dim=32)
    >>> dec.noise_shape(), dec.resolution
    ((3, 16, 16), 32)
    """

    serial_calls = True  # the pipeline's one scheduler is set and stepped by every call

    def __init__(
        self,
        pipe: Any,
        *,
        name: str,
        space: str | None,
        dim: int,
        resolution: int | None = None,
        embed_scale: float | str = "auto",
        super_res_steps: int = 7,
        scheduler: str = "ddim",
        device: torch.device | str = "cpu",
        dtype: torch.dtype | str = torch.float32,
        cpu_offload: bool = False,
        default_steps: int = 25,
        default_guidance: float = 8.0,
        default_batch_size: int = 4,
        source: str | None = None,
    ) -> None:
        for attr in ("decoder", "text_proj", "super_res_first", "super_res_last", "image_encoder", "feature_extractor"):
            if not hasattr(pipe, attr):
                raise ArgumentError(
                    f"pipe must be a diffusers UnCLIPImageVariationPipeline, got {type(pipe).__name__} (no {attr!r}). "
                    "Load one with KarloDecoder.from_pretrained(...)."
                )
        self.pipe = pipe
        self.name, self.space, self.dim = str(name), space, check_int(dim, "dim", minimum=1)  # (int(32.9) was 32)
        self.device, self.dtype = as_device(device), as_dtype(dtype)
        self.cpu_offload = checked_cpu_offload(cpu_offload, self.device)
        self.source = source
        embed_scale = _scale_or_auto(embed_scale)  # refused before the pipeline is moved and cast (it was after)
        self.default_steps = check_int(default_steps, "default_steps", minimum=1)  # 2.7 became 2
        self.default_guidance = check_number(default_guidance, "default_guidance", minimum=0)
        self.default_batch_size = check_int(default_batch_size, "default_batch_size", minimum=1)
        if isinstance(super_res_steps, bool) or not isinstance(super_res_steps, numbers.Integral) or super_res_steps < 2:
            raise ArgumentError(
                f"super_res_steps must be an integer >= 2 (super_res_first's steps, then super_res_last's one), "
                f"got {super_res_steps!r}."
            )
        self.super_res_steps = int(super_res_steps)  # (a numpy integer was refused; describe() records a plain int)
        sr_scheduler = getattr(pipe, "super_res_scheduler", None)
        n_sr = len(getattr(sr_scheduler, "alphas_cumprod", ())) or None
        if n_sr is not None and self.super_res_steps > n_sr:  # (more only repeated timesteps, as for steps: see max_steps)
            raise ArgumentError(f"super_res_steps must be <= {n_sr} (the super-res scheduler's training timesteps), "
                                f"got {self.super_res_steps}.")  # fmt: skip
        if not isinstance(scheduler, str) or scheduler.lower() not in SCHEDULERS:
            raise ArgumentError(
                f"scheduler must be one of {', '.join(repr(k) for k in SCHEDULERS)}, got {scheduler!r}. "
                "'ddim' (default): deterministic, needed for invert(); 'unclip': Karlo's own stochastic UnCLIPScheduler."
            )
        self.scheduler = scheduler.lower()
        if self.scheduler == "unclip" and self.device.type == "cpu" and self.dtype != torch.float32:
            name = str(self.dtype).removeprefix("torch.")
            raise ArgumentError(
                f"scheduler='unclip' cannot run in dtype={name} on the CPU: diffusers' UnCLIPImageVariationPipeline "
                "upsamples the 64 px image with antialiased bicubic interpolation in the pipeline's dtype, which "
                f"torch implements on the CPU for float32 only. Use dtype=torch.float32 on the CPU, "
                "scheduler='ddim' (latentlab's loop upsamples in float32), or device='cuda'."
            )
        warn_half_on_cpu(self.device, self.dtype, f"the Karlo decoder {self.name!r}")
        self._prompt_cache: dict[tuple[str, torch.dtype], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        pipe_dim = int(pipe.text_proj.config.clip_embeddings_dim)
        if pipe_dim != self.dim:
            raise dim_mismatch_error(self, pipe_dim, "Karlo", ("karlo", "karlo_tiny"))
        native = int(pipe.super_res_first.config.sample_size)
        # checked, not converted: int(32.5) was accepted, int("x") a raw ValueError
        if resolution is not None and check_int(resolution, "resolution") != native:
            raise ArgumentError(f"resolution must be {native} for this Karlo pipeline (its super-res size), got {resolution}.")
        self.resolution = native
        pipe.set_progress_bar_config(disable=True)

        if self.cpu_offload:
            _place(pipe, "cpu", self.dtype)
            pipe.enable_model_cpu_offload(device=self.device)
        else:
            _place(pipe, self.device, self.dtype)

        self.embed_scale_source = "given"
        if isinstance(embed_scale, str):  # "auto" (checked above)
            size = int(pipe.image_encoder.config.image_size)
            try:
                self.embed_scale = _check_scale(
                    _mean_norm(pipe.image_encoder, pipe.feature_extractor, synthetic_images(8, size=max(size, 64)))
                )
            finally:
                free_model_hooks(pipe)  # with cpu_offload: the image encoder back to the CPU
            self.embed_scale_source = "auto (8 synthetic images)"
        else:
            self.embed_scale = embed_scale

    @property
    def reads_captions(self) -> bool:
        """With ``scheduler="ddim"`` (the default), :meth:`decode` also takes ``captions``: the
        64 px decoder then reads each row's caption as Karlo's text-to-image pipeline gives it
        the prompt (``"unclip"`` runs the image-variation pipeline, which has no prompt)."""
        return self.scheduler == "ddim"

    def _no_captions_reason(self) -> str:
        return (f"captions need scheduler='ddim' (this decoder runs {self.scheduler!r}: the image-variation pipeline, "
                "which reads no prompt); create it with scheduler='ddim' or leave captions out.")  # fmt: skip

    def _decode_captioned(self, embeddings: torch.Tensor, noise: torch.Tensor, captions: list[str], *,
                          seeds: list[int], steps: int, guidance_scale: float) -> np.ndarray:  # fmt: skip
        """Each row's caption in place of the empty prompt, as ``UnCLIPPipeline`` reads its
        prompt (see :meth:`_conditioning`); DDIM only. A caption past the tokenizer's length is cut
        to fit, as the pipeline cuts it, with one warning per call (as encode_text says it)."""
        from ..encoders import _warn_truncated

        _warn_truncated(self.pipe.tokenizer, list(captions), stacklevel=4)  # (cut silently; names decode's caller)
        return self._decode_ddim(embeddings, noise, seeds=seeds, steps=steps, guidance_scale=_check_guidance(guidance_scale),
                                 captions=captions)  # fmt: skip

    def noise_shape(self) -> tuple[int, ...]:
        """The 64 px decoder's starting latents ``(in_channels, sample_size, sample_size)``."""
        cfg = self.pipe.decoder.config
        return (int(cfg.in_channels), int(cfg.sample_size), int(cfg.sample_size))

    def super_res_noise(self, seeds: Sequence[int]) -> torch.Tensor:
        """The super-resolution stage's starting noise ``(b, C, R, R)`` float32 CPU for frame
        ``seeds`` (see :func:`super_res_seed`)."""
        cfg = self.pipe.super_res_first.config
        shape = (int(cfg.in_channels) // 2, int(cfg.sample_size), int(cfg.sample_size))
        return torch.stack([torch.randn(shape, generator=torch.Generator("cpu").manual_seed(super_res_seed(s))) for s in seeds])

    def _decode(self, embeddings: torch.Tensor, noise: torch.Tensor, *, seeds: Sequence[int], steps: int,
                guidance_scale: float) -> np.ndarray:  # fmt: skip
        guidance = _check_guidance(guidance_scale)
        if self.scheduler == "ddim":
            return self._decode_ddim(embeddings, noise, seeds=seeds, steps=steps, guidance_scale=guidance)
        if steps < 2:
            raise ArgumentError(
                f"steps must be >= 2 with scheduler='unclip', got {steps}: Karlo's UnCLIPScheduler spaces the "
                "timesteps from the noisiest to the last as (T - 1) / (steps - 1), so it needs two timesteps. "
                "Pass steps=2 or more, or use scheduler='ddim', which samples with any steps >= 1."
            )
        pipe = self.pipe
        dev = pipe._execution_device
        gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        with torch.no_grad():
            out = pipe(
                image_embeddings=(embeddings * self.embed_scale).to(dev, self.dtype),
                decoder_latents=noise.to(dev, self.dtype),
                super_res_latents=self.super_res_noise(seeds).to(dev, self.dtype),
                decoder_num_inference_steps=int(steps), super_res_num_inference_steps=self.super_res_steps,
                decoder_guidance_scale=guidance, generator=gens, output_type="np",
            ).images  # fmt: skip
        refuse_nonfinite_pixels(out, self, guidance)  # (cast to uint8, NaN drew black frames)
        return _to_uint8(out)

    # -- the deterministic DDIM path ---------------------------------------------------------
    def _empty_prompt(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The text tower's view of the empty prompt, as the pipeline conditions on it: pooled
        ``text_embeds`` (1, D), ``last_hidden_state`` (1, L, C) and the attention mask (1, L)
        bool; computed once per device and dtype."""
        key = (str(device), self.dtype)
        if key not in self._prompt_cache:
            tok = self.pipe.tokenizer
            ids = tok([""], padding="max_length", max_length=tok.model_max_length, return_tensors="pt")
            with torch.no_grad():
                out = self.pipe.text_encoder(ids.input_ids.to(device))
            self._prompt_cache[key] = (out.text_embeds, out.last_hidden_state, ids.attention_mask.bool().to(device))
        return self._prompt_cache[key]

    def _prompt_states(self, prompts: list[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``prompts``' pooled ``text_embeds`` (b, D), ``last_hidden_state`` (b, L, C) and attention
        mask (b, L) bool, tokenised as Karlo's text-to-image pipeline tokenises them (padded to the
        tokenizer's length, truncated beyond it)."""
        tok = self.pipe.tokenizer
        ids = tok(list(prompts), padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt")
        with torch.no_grad():
            out = self.pipe.text_encoder(ids.input_ids.to(device))
        return out.text_embeds, out.last_hidden_state, ids.attention_mask.bool().to(device)

    def _conditioning(self, embeddings: torch.Tensor, guided: bool, captions: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """The 64 px decoder's keyword inputs for ``embeddings`` (b, d) unit-norm: extra context
        tokens + projected text states (``encoder_hidden_states``), the additive time
        embedding (``class_labels``) and the attention mask (True for the extra tokens). With
        ``guided`` the batch is doubled, unconditional rows (``text_proj``'s learned
        embedding) first, as in the pipeline. The text states are the empty prompt's (as the
        image-variation pipeline conditions), or with ``captions`` each row's caption, the
        unconditional rows keeping the empty prompt (as the text-to-image ``UnCLIPPipeline``
        conditions its decoder)."""
        dev = self.pipe._execution_device
        b = embeddings.shape[0]
        pooled, states, mask = self._empty_prompt(dev)
        n = 2 * b if guided else b
        pooled, states, mask = pooled.expand(n, -1), states.expand(n, -1, -1), mask.expand(n, -1)
        if captions is not None:
            cp, cs, cm = self._prompt_states(list(captions), dev)
            if guided:  # unconditional rows first: the empty prompt
                cp, cs, cm = torch.cat([pooled[:b], cp]), torch.cat([states[:b], cs]), torch.cat([mask[:b], cm])
            pooled, states, mask = cp, cs, cm
        with torch.no_grad():
            hidden, additive = self.pipe.text_proj(
                image_embeddings=(embeddings * self.embed_scale).to(dev, self.dtype),
                prompt_embeds=pooled, text_encoder_hidden_states=states, do_classifier_free_guidance=guided,
            )  # fmt: skip
        extra = int(self.pipe.text_proj.clip_extra_context_tokens)
        mask = torch.nn.functional.pad(mask, (extra, 0), value=True)
        return {"encoder_hidden_states": hidden, "class_labels": additive, "attention_mask": mask}

    def _decoder_eps(self, x: torch.Tensor, t: int, cond: dict[str, torch.Tensor], guidance: float) -> torch.Tensor:
        """The 64 px decoder's noise estimate at ``x`` (b, C, s, s), timestep ``t``: the first
        ``C`` output channels (the rest are its learned variance), guided when ``cond`` is
        doubled: ``uncond + guidance * (cond - uncond)``."""
        guided = cond["class_labels"].shape[0] == 2 * x.shape[0]
        inp = torch.cat([x, x]) if guided else x
        out = self.pipe.decoder(sample=inp, timestep=t, **cond).sample[:, : x.shape[1]]
        if guided:
            uncond, text = out.chunk(2)
            out = uncond + guidance * (text - uncond)
        return out

    def max_steps(self) -> int:
        """The most 64 px steps :meth:`decode`, :meth:`decode_base` and :meth:`invert` take:
        the decoder scheduler's training timesteps (1000), with either sampler. Past them,
        Karlo's ``UnCLIPScheduler`` repeats timesteps and draws black frames, and the DDIM
        loop has no timesteps left to space."""
        return len(self.pipe.decoder_scheduler.alphas_cumprod)

    def _max_steps_reason(self) -> str:
        return f"the decoder's training timesteps, with scheduler={self.scheduler!r}"

    def _ddim_schedule(self, steps: int) -> list[tuple[int, float, float]]:
        """``(t, alpha_bar_t, alpha_bar_prev)`` of each 64 px DDIM step, noisiest first."""
        ac = self.pipe.decoder_scheduler.alphas_cumprod.double()
        if steps > len(ac):
            raise ArgumentError(f"steps must be <= {len(ac)} (the decoder's training timesteps), got {steps}.")
        ts = decoder_timesteps(steps, len(ac))
        prev = ts[1:] + [-1]
        return [(t, float(ac[t]), float(ac[p]) if p >= 0 else 1.0) for t, p in zip(ts, prev)]

    def _clip(self, scheduler: Any) -> float | None:
        cfg = scheduler.config
        return float(cfg.get("clip_sample_range", 1.0)) if cfg.get("clip_sample", True) else None

    def _decode_ddim(self, embeddings: torch.Tensor, noise: torch.Tensor, *, seeds: Sequence[int], steps: int,
                     guidance_scale: float, captions: Sequence[str] | None = None) -> np.ndarray:  # fmt: skip
        """Both stages with deterministic DDIM; uint8 (b, R, R, 3). With ``cpu_offload=True``
        the models it called go back to the CPU at the end, as after a pipeline call."""
        try:
            with torch.no_grad():
                base = self._sample_base(embeddings, noise, steps=steps, guidance_scale=guidance_scale, captions=captions)
                image = self._super_res(base, seeds)
        finally:
            free_model_hooks(self.pipe)
        refuse_nonfinite_pixels(image, self, guidance_scale)  # (cast to uint8, NaN drew black frames)
        return _frames(image)

    def _sample_base(self, embeddings: torch.Tensor, noise: torch.Tensor, *, steps: int,
                     guidance_scale: float, captions: Sequence[str] | None = None) -> torch.Tensor:  # fmt: skip
        """The 64 px stage with deterministic DDIM: (b, 3, s, s) in [-1, 1] on the pipeline's device."""
        pipe = self.pipe
        dev = pipe._execution_device
        clip = self._clip(pipe.decoder_scheduler)
        with torch.no_grad():
            cond = self._conditioning(embeddings, guidance_scale > 1.0, captions)
            x = noise.to(dev, self.dtype)
            for t, a_t, a_prev in self._ddim_schedule(steps):
                x = ddim_step(x, self._decoder_eps(x, t, cond, guidance_scale), a_t, a_prev, clip=clip)
        return x.clamp(-1, 1)

    def decode_base(self, embeddings: torch.Tensor, noise: torch.Tensor, *, steps: int | None = None,
                    guidance_scale: float | None = None) -> np.ndarray:  # fmt: skip
        """The 64 px decoder stage alone (no super-resolution), with DDIM: ``embeddings``
        (b, d) and ``noise`` (b, *noise_shape()) -> uint8 (b, s, s, 3), ``s`` the decoder's
        size (64). A quick preview, and the scale at which :meth:`invert` is a round trip:
        ``decode_base(z, invert(image, z))`` redraws ``image`` downsampled to ``s``.
        Needs ``scheduler="ddim"``.

        >>> small = dec.decode_base(z, dec.invert(image, z))        # doctest: +SKIP
        """
        if self.scheduler != "ddim":
            raise ArgumentError(
                f"decode_base needs scheduler='ddim', got {self.scheduler!r}: the 'unclip' path runs the whole "
                "diffusers pipeline. Build the decoder with scheduler='ddim' (the default)."
            )
        # checked as decode() checks them: float64 rows beyond float32's range, zero rows, NaN or infinite noise
        z = self._unit_rows(embeddings)
        x = self._checked_noise(noise, z.shape[0])
        # checked, not converted: int(2.7) would sample 2 steps where decode() refuses 2.7
        steps = self._check_steps(self.default_steps if steps is None else steps)
        guidance = _check_guidance(self.default_guidance if guidance_scale is None else guidance_scale)
        with one_call_at_a_time(self):  # (freeing the hooks offloads the models another thread's decode runs)
            try:
                x = self._sample_base(z, x, steps=steps, guidance_scale=guidance)
            finally:
                free_model_hooks(self.pipe)
        refuse_nonfinite_pixels(x, self, guidance)  # (cast to uint8, NaN drew black frames)
        return _frames(x)

    def _super_res(self, small: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """64 px images (b, 3, s, s) in [-1, 1] -> 256 px (b, 3, R, R): DDIM on Karlo's
        super-res timesteps from the seeds' super-res noise, each step conditioned on the
        bicubic upsampled image (concatenated channels), ``super_res_last`` for the last step.
        No guidance, as in the pipeline."""
        import inspect

        pipe = self.pipe
        x = self.super_res_noise(seeds).to(small.device, small.dtype)
        antialias = {"antialias": True} if "antialias" in inspect.signature(torch.nn.functional.interpolate).parameters else {}
        # in float32, cast back: torch has no antialiased bicubic for float16 / bfloat16 on the CPU
        up = torch.nn.functional.interpolate(small.float(), size=tuple(x.shape[-2:]), mode="bicubic", align_corners=False,
                                             **antialias).to(small.dtype)  # fmt: skip
        ac = pipe.super_res_scheduler.alphas_cumprod.double()
        clip = self._clip(pipe.super_res_scheduler)
        ts = super_res_timesteps(self.super_res_steps, len(ac))
        for i, t in enumerate(ts):
            last = i == len(ts) - 1
            unet = pipe.super_res_last if last else pipe.super_res_first
            eps = unet(sample=torch.cat([x, up], dim=1), timestep=t).sample[:, : x.shape[1]]
            x = ddim_step(x, eps, float(ac[t]), 1.0 if last else float(ac[ts[i + 1]]), clip=clip)
        return x

    # -- DDIM inversion of the 64 px stage ---------------------------------------------------
    inversion_iterations = 1
    """Fixed-point iterations per step of the inversion (0: plain DDIM inversion), as for
    ``mini`` (:func:`latentlab.mini.runtime.ddim_invert`): each re-evaluates the model at the
    current estimate of ``x_t`` and inverts the clamp in closed form (:func:`ddim_invert_step`)."""

    inversion_inset = 0.98
    """The target image is scaled by this into [-1, 1], so pure white and black stay inside
    the clamp (a 2% inset moves them by under 3 of 255 levels)."""

    def inversion_marks(self, refine: int) -> dict[str, Any]:
        # set on a decoder, they change its inverted noise (a cache keyed without them was reused)
        marks: dict[str, Any] = {}
        if int(self.inversion_iterations) != KarloDecoder.inversion_iterations:
            marks["inversion_iterations"] = int(self.inversion_iterations)
        if float(self.inversion_inset) != KarloDecoder.inversion_inset:
            marks["inversion_inset"] = float(self.inversion_inset)
        return marks

    @classmethod
    def can_before_loading(cls, feature: str, options: dict[str, Any]) -> bool | None:
        if feature != "invert":
            return super().can_before_loading(feature, options)
        return scheduler_inverts(options, SCHEDULERS)  # (None, like another value, is refused as it loads)

    @property
    def supports_inversion(self) -> bool:
        """True with ``scheduler="ddim"``: only a deterministic sampler can be run backwards."""
        return self.scheduler == "ddim"

    def decoder_size_images(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (b, H, W, 3) -> float32 (b, 3, s, s) in [-1, 1] at the 64 px decoder's size
        (a non-square image centre-cropped to a square first, as the CLIP encoders see it; area
        filter when shrinking, bicubic when enlarging), on the CPU: what :meth:`invert`
        inverts, and the scale at which to judge a round trip.

        >>> dec.decoder_size_images(np.zeros((1, 256, 256, 3), np.uint8)).shape   # doctest: +SKIP
        torch.Size([1, 3, 64, 64])
        """
        from PIL import Image

        s = int(self.pipe.decoder.config.sample_size)
        images = centre_square(images)
        if images.shape[1:3] != (s, s):
            f = Image.Resampling.BOX if min(images.shape[1:3]) >= s else Image.Resampling.BICUBIC
            images = np.stack([np.asarray(Image.fromarray(im).resize((s, s), f)) for im in images])
        return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0

    def _invert(self, images: np.ndarray, embeddings: torch.Tensor, *, steps: int, guidance_scale: float) -> torch.Tensor:
        """DDIM inversion of the 64 px stage: the starting noise (b, *noise_shape()) from
        which the DDIM loop with ``steps`` steps, conditioned on ``embeddings``, redraws
        ``images`` downsampled to the decoder's size. The super-res stage is not inverted."""
        if not self.supports_inversion:
            raise ArgumentError(
                f"inversion needs scheduler='ddim', but this decoder samples with scheduler={self.scheduler!r}: "
                "Karlo's UnCLIPScheduler adds fresh noise at every step, so no starting noise redraws an image. "
                "Build the decoder with scheduler='ddim' (the default) to invert images."
            )
        pipe = self.pipe
        dev = pipe._execution_device
        guided = guidance_scale > 1.0
        clip = self._clip(pipe.decoder_scheduler)
        x = (self.decoder_size_images(images).clamp(-1, 1) * self.inversion_inset).to(dev, self.dtype)
        try:
            with torch.no_grad():
                cond = self._conditioning(embeddings, guided)
                for t, a_t, a_prev in reversed(self._ddim_schedule(steps)):
                    eps = self._decoder_eps(x, t, cond, guidance_scale)
                    xt = ddim_invert_step(x, eps, a_t, a_prev, clip=clip)
                    for _ in range(int(self.inversion_iterations)):
                        eps = self._decoder_eps(xt, t, cond, guidance_scale)
                        xt = ddim_invert_step(x, eps, a_t, a_prev, clip=clip, x_t=xt)
                    x = xt
        finally:
            free_model_hooks(pipe)  # the loop calls the text tower, text_proj and decoder directly
        return x.detach().to("cpu", torch.float32)

    def calibrate_embed_scale(self, images: Any, *, update: bool = True) -> float:
        """Mean norm of the pipeline's ViT-L/14 image-encoder embeddings of ``images``; sets
        ``embed_scale`` unless ``update=False``.

        >>> dec.calibrate_embed_scale(my_images)   # doctest: +SKIP
        """
        update = check_bool(update, "update")
        with one_call_at_a_time(self):  # (freeing the hooks offloads the models another thread's decode runs)
            try:
                scale = _check_scale(_mean_norm(self.pipe.image_encoder, self.pipe.feature_extractor, images))
            finally:
                free_model_hooks(self.pipe)
        if update:
            self.embed_scale, self.embed_scale_source = scale, "calibrated"
        return scale

    def _sampler_text(self) -> str:
        if self.scheduler == "unclip":
            return "UnCLIPScheduler (stochastic, per-frame CPU generators) for both stages"
        return ("DDIM eta=0, trailing spacing, x0 clipped to [-1, 1]; super-res DDIM eta=0 on Karlo's "
                "timesteps, super_res_last at t=0")  # fmt: skip

    def sampling_marks(self, steps: int) -> dict[str, Any]:
        # the 64 px DDIM stage's timesteps changed for 61, 103, 121, ... steps (trailing_timesteps)
        if self.scheduler != "ddim":
            return {}
        return trailing_timesteps_marks(steps, len(self.pipe.decoder_scheduler.alphas_cumprod))

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({
            "source": self.source, "embed_scale": self.embed_scale, "embed_scale_source": self.embed_scale_source,
            "super_res_steps": self.super_res_steps, "sampler": self.scheduler, "sampler_detail": self._sampler_text(),
            "super_res_noise": "torch.Generator('cpu').manual_seed(super_res_seed(frame_seed))",
            "device": str(self.device), "dtype": str(self.dtype).removeprefix("torch."), "cpu_offload": self.cpu_offload,
        })  # fmt: skip
        return d

    @classmethod
    def from_pretrained(
        cls,
        repo_or_dir: str | os.PathLike[str] = KARLO_VARIATIONS_REPO,
        *,
        name: str = "karlo",
        space: str | None = KARLO_SPACE,
        dim: int = 768,
        resolution: int | None = None,
        embed_scale: float | str = "auto",
        device: torch.device | str = "cpu",
        dtype: torch.dtype | str = torch.float32,
        variant: str | None = None,
        cpu_offload: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool | None = None,
        revision: str | None = None,
        repo_hint: str | None = None,
        **decoder_kwargs: Any,
    ) -> KarloDecoder:
        """Load Karlo's image-variation pipeline (safetensors only) from the Hub cache or a folder.

        Cache: ``cache_dir`` / ``$HF_HUB_CACHE`` / ``$HF_HOME/hub``; ``local_files_only``
        defaults to ``$HF_HUB_OFFLINE``. Missing files raise
        :class:`~latentlab.errors.ModelNotAvailableError` naming the repo and the fix; a local
        folder missing component folders is refused before loading, naming them all, what the
        folder is instead (its model_index.json) and ``hf download <repo_hint>`` (default: the
        image-variations repo). A missing or placeholder tokenizer is refused at load.

        >>> dec = KarloDecoder.from_pretrained(device="cuda", dtype=torch.float16)  # doctest: +SKIP
        """
        dev, dt = as_device(device), as_dtype(dtype)
        checked_cpu_offload(cpu_offload, dev)  # before loading the weights, not after
        embed_scale = _scale_or_auto(embed_scale)  # before the weights are read
        what = "Karlo decoder"
        src, is_dir = hub_source(repo_or_dir, what, KARLO_VARIATIONS_REPO)
        classes = unclip_pipeline_classes()
        from diffusers import UNet2DConditionModel, UNet2DModel, UnCLIPScheduler
        from transformers import CLIPImageProcessor, CLIPTextModelWithProjection, CLIPTokenizer, CLIPVisionModelWithProjection

        common = dict(is_dir=is_dir, variant=variant, cache_dir=cache_dir, local_files_only=local_files_only, revision=revision)
        d_kw = load_kwargs(dtype=dt, dtype_key=diffusers_dtype_key(), **common)
        t_kw = load_kwargs(dtype=dt, dtype_key=transformers_dtype_key(), **common)
        plain = {k: v for k, v in t_kw.items() if k in ("cache_dir", "local_files_only", "revision")}
        # every component is loaded by its class: model_index.json names text_proj's library
        # ("unclip") in a way the deprecated-pipelines layout of recent diffusers cannot resolve
        parts = {
            "decoder": (UNet2DConditionModel, d_kw), "text_proj": (classes["UnCLIPTextProjModel"], d_kw),
            "super_res_first": (UNet2DModel, d_kw), "super_res_last": (UNet2DModel, d_kw),
            "text_encoder": (CLIPTextModelWithProjection, t_kw), "image_encoder": (CLIPVisionModelWithProjection, t_kw),
            "tokenizer": (CLIPTokenizer, plain), "feature_extractor": (CLIPImageProcessor, plain),
            "decoder_scheduler": (UnCLIPScheduler, plain), "super_res_scheduler": (UnCLIPScheduler, plain),
        }  # fmt: skip
        repo = repo_hint or (KARLO_VARIATIONS_REPO if is_dir else src)
        if is_dir:
            check_local_folder(src, what=what, needs=tuple(parts), pipelines=("UnCLIPImageVariationPipeline",), repo=repo)
        comps = {k: load_component(c, src, subfolder=k, what=what, is_dir=is_dir, kwargs=kw, repo=repo)
                 for k, (c, kw) in parts.items()}  # fmt: skip
        check_tokenizer(comps["tokenizer"], src, subfolder="tokenizer", what=what, is_dir=is_dir, repo=repo)
        pipe = classes["UnCLIPImageVariationPipeline"](**comps)
        return cls(pipe, name=name, space=space, dim=dim, resolution=resolution, embed_scale=embed_scale, device=dev,
                   dtype=dt, cpu_offload=cpu_offload, source=src, **decoder_kwargs)  # fmt: skip


class KarloPrior(UnCLIPDiffusionPrior):
    """Karlo's prior: texts -> OpenAI CLIP ViT-L/14 image embeddings (768-d).

    The usual prior for Stable Diffusion 2.1 unCLIP-L
    (``stabilityai/stable-diffusion-2-1-unclip-small``), whose decoder takes ViT-L/14 image
    embeddings. Loaded from ``kakaobrain/karlo-v1-alpha`` (``prior``, ``text_encoder``,
    ``tokenizer``, ``prior_scheduler``); defaults follow ``UnCLIPPipeline``: 25 steps,
    guidance 4. Needs texts: see :class:`~latentlab.decoders.kandinsky.UnCLIPDiffusionPrior`.

    >>> from latentlab.decoders.karlo import KarloPrior
    >>> from latentlab.decoders.kandinsky import tiny_unclip_prior_components
    >>> p = KarloPrior(*tiny_unclip_prior_components(dim=32), name="t", space="s", dim=32)
    >>> p.from_texts(["a", "b"], seed=0, steps=2).shape
    torch.Size([2, 32])
    """

    family = "Karlo"
    default_repo = KARLO_REPO
    default_name = "karlo"
    default_space = KARLO_SPACE
    default_dim = 768
    scheduler_subfolder = "prior_scheduler"
    prior_pipeline = "UnCLIPPipeline"


# ======================================================================================
# tiny random components
# ======================================================================================


def tiny_karlo_pipeline(*, dim: int = 32, seed: int = 0) -> Any:
    """An ``UnCLIPImageVariationPipeline`` of tiny random components built in-process.

    Decoder: 16 px, 3 channels (+3 learned-variance outputs), ``class_embed_type="identity"``;
    text projection to 4 extra context tokens; two super-res ``UNet2DModel`` s to 32 px;
    ``UnCLIPScheduler`` s as in Karlo. CLIP towers / processor / tokenizer: those of
    :func:`~latentlab.hf_clip.tiny_hf_clip_towers` (same ``dim`` and ``seed``), so the
    ``hf_clip_tiny`` encoder lives in its space. Seeded forked RNG, CPU float32.

    >>> pipe = tiny_karlo_pipeline(dim=32)
    >>> pipe.decoder.config.sample_size, pipe.super_res_first.config.sample_size
    (16, 32)
    """
    from diffusers import UNet2DConditionModel, UNet2DModel, UnCLIPScheduler

    classes = unclip_pipeline_classes()
    towers, processor, tokenizer = tiny_hf_clip_towers(dim=dim, seed=seed)
    width = 32
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed) + 2)
        text_proj = classes["UnCLIPTextProjModel"](
            clip_embeddings_dim=int(dim), time_embed_dim=4 * width, cross_attention_dim=width
        ).eval()
        decoder = UNet2DConditionModel(
            sample_size=16, in_channels=3, out_channels=6, layers_per_block=1, block_out_channels=(width, 2 * width),
            down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
            up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
            mid_block_type="UNetMidBlock2DSimpleCrossAttn", cross_attention_dim=width, attention_head_dim=4,
            norm_num_groups=8, resnet_time_scale_shift="scale_shift", class_embed_type="identity",
        ).eval()  # fmt: skip

        def super_res() -> Any:
            return UNet2DModel(
                sample_size=32, in_channels=6, out_channels=3, layers_per_block=1, block_out_channels=(width, 2 * width),
                down_block_types=("ResnetDownsampleBlock2D", "ResnetDownsampleBlock2D"),
                up_block_types=("ResnetUpsampleBlock2D", "ResnetUpsampleBlock2D"), norm_num_groups=8,
            ).eval()  # fmt: skip

        super_res_first, super_res_last = super_res(), super_res()
    pipe = classes["UnCLIPImageVariationPipeline"](
        decoder=decoder, text_encoder=towers.text, tokenizer=tokenizer, text_proj=text_proj,
        feature_extractor=processor, image_encoder=towers.vision, super_res_first=super_res_first,
        super_res_last=super_res_last,
        decoder_scheduler=UnCLIPScheduler(variance_type="learned_range", prediction_type="epsilon", num_train_timesteps=1000),
        super_res_scheduler=UnCLIPScheduler(variance_type="fixed_small_log", prediction_type="epsilon", num_train_timesteps=1000),
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ======================================================================================
# builders
# ======================================================================================


@register_decoder_builder("karlo")
def _build_karlo(preset: Any, *, repo: str = KARLO_VARIATIONS_REPO, **kwargs: Any) -> KarloDecoder:
    """Preset decoder spec ``{"kind": "karlo", "repo": ..., "embed_scale": ...}``; user keywords:
    ``repo_or_dir``, ``device``, ``dtype``, ``variant``, ``cpu_offload``, ``cache_dir``, ..."""
    kwargs.setdefault("resolution", preset.resolution)
    kwargs.setdefault("repo_hint", repo)  # a local repo_or_dir= is a copy of the preset's repo
    return KarloDecoder.from_pretrained(kwargs.pop("repo_or_dir", repo), name=preset.name, space=preset.space,
                                       dim=preset.dim, **kwargs)  # fmt: skip


@register_decoder_builder("karlo_tiny")
def _build_karlo_tiny(preset: Any, *, seed: int = 0, **kwargs: Any) -> KarloDecoder:
    """Tiny random pipeline over the ``hf_clip_tiny`` towers of the same seed (32 px frames)."""
    seed = check_seed(seed)
    kwargs.setdefault("default_steps", 3)
    kwargs.setdefault("super_res_steps", 2)
    kwargs.setdefault("default_guidance", 1.0)
    kwargs.setdefault("resolution", preset.resolution)
    return KarloDecoder(tiny_karlo_pipeline(dim=preset.dim, seed=seed), name=preset.name, space=preset.space,
                        dim=preset.dim, source=f"tiny-random(seed={seed})", **kwargs)  # fmt: skip


_DECODER_CLASSES.update({_build_karlo: KarloDecoder, _build_karlo_tiny: KarloDecoder})
register_unclip_prior_builders("karlo", KarloPrior)
