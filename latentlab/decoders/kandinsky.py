"""Kandinsky 2.2 as a latentlab decoder and prior (diffusers ``KandinskyV22Pipeline`` /
``KandinskyV22PriorPipeline`` components).

Kandinsky 2.2 is an unCLIP model in the CLIP space of its own image encoder, a ViT-bigG/14
(1280-d) shipped in ``kandinsky-community/kandinsky-2-2-prior`` (subfolder ``image_encoder``;
see :mod:`latentlab.hf_clip` for the encoder and for how sure we are that it equals
open_clip's ``ViT-bigG-14`` / ``laion2b_s39b_b160k``).

* :class:`KandinskyDecoder`: image embeddings -> frames with the decoder
  (``kandinsky-community/kandinsky-2-2-decoder``: ``unet`` + ``scheduler`` + ``movq``).
  The UNet is conditioned on ``image_embeds`` only (no text); classifier-free guidance
  contrasts them with ``negative_image_embeds``, which the Kandinsky prior pipeline sets to
  the image encoder's embedding of an all-zero (normalised) pixel tensor: this adapter
  computes that "zero embedding" once, at load.
* :class:`KandinskyPrior`: texts -> image embeddings with the prior
  (``kandinsky-community/kandinsky-2-2-prior``: ``prior`` + ``text_encoder`` + ``tokenizer`` +
  ``scheduler``). The prior attends to the text encoder's per-token hidden states, not only
  to the pooled text embedding, so it needs the texts: use :meth:`KandinskyPrior.from_texts`
  (or call it with strings). Calling it with embeddings raises a clear ArgumentError.

:func:`sample_unclip_prior` runs the DALL-E 2 style prior loop (``PriorTransformer`` +
``UnCLIPScheduler`` + CLIP text tower) shared by the Kandinsky and Karlo priors; it needs
only the four components, so the prior does not load the 7 GB bigG image tower.

Builders: decoders ``"kandinsky"`` / ``"kandinsky_tiny"``, priors ``"kandinsky"`` /
``"kandinsky_tiny"`` (tiny random components built in-process, for tests).

>>> import torch                                                           # doctest: +SKIP
>>> from latentlab.decoders.kandinsky import KandinskyDecoder, KandinskyPrior  # doctest: +SKIP
>>> prior = KandinskyPrior.from_pretrained(device="cuda", dtype=torch.float16)  # doctest: +SKIP
>>> dec = KandinskyDecoder.from_pretrained(device="cuda", dtype=torch.float16)  # doctest: +SKIP
>>> z = prior.from_texts(["a red fox in the snow"], seed=0)                # doctest: +SKIP
>>> frames = dec.decode(z, torch.randn(1, *dec.noise_shape()), seeds=[0])  # doctest: +SKIP
>>> frames.shape                                                           # doctest: +SKIP
(1, 768, 768, 3)
"""

from __future__ import annotations

import hashlib
import math
import os
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import ArgumentError, SpaceError, check_bool, check_int, check_number, check_seed, is_bool
from ..hf_clip import (
    as_device,
    as_dtype,
    diffusers_dtype_key,
    check_local_folder,
    hub_source,
    load_component,
    load_tokenizer,
    load_kwargs,
    synthetic_images,
    tiny_hf_clip_towers,
    transformers_dtype_key,
    warn_half_on_cpu,
)
from ..presets import _DECODER_CLASSES, register_decoder_builder, register_prior_builder
from ..priors import Prior
from ..space import check_embeddings, normalize, tag
from .base import PRIOR_OVERFLOW, Decoder, one_call_at_a_time, refuse_nonfinite_pixels
from .unclip import (
    SCHEDULERS,
    checked_cpu_offload,
    checked_inversion_inputs,
    dim_mismatch_error,
    free_model_hooks,
    max_sampler_steps,
    max_steps_reason,
    optimize_decoder,
    require_ddim,
    scheduler_from_config,
    scheduler_inverts,
    set_scheduler,
    signed_pixels,
    warn_late_first_timestep,
)

__all__ = [
    "KandinskyDecoder",
    "KandinskyPrior",
    "UnCLIPDiffusionPrior",
    "sample_unclip_prior",
    "tiny_kandinsky_pipeline",
    "tiny_unclip_prior_components",
    "KANDINSKY_SPACE",
    "KANDINSKY_DECODER_REPO",
    "KANDINSKY_PRIOR_REPO",
]

KANDINSKY_SPACE = "kandinsky-2.2/ViT-bigG-14"
KANDINSKY_DECODER_REPO = "kandinsky-community/kandinsky-2-2-decoder"
KANDINSKY_PRIOR_REPO = "kandinsky-community/kandinsky-2-2-prior"


# ======================================================================================
# shared helpers
# ======================================================================================


def _to_uint8(frames: Any) -> np.ndarray:
    return np.clip(np.rint(np.asarray(frames, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def _check_guidance(guidance_scale: float) -> float:
    return check_number(guidance_scale, "guidance_scale", minimum=0)


def _place(module: Any, device: torch.device | str, dtype: torch.dtype) -> Any:
    """Move a module (or pipeline) to ``device``, casting only when its dtype differs (diffusers
    warns on every dtype cast)."""
    params = module.components.values() if hasattr(module, "components") else [module]
    current = {p.dtype for m in params if isinstance(m, torch.nn.Module) for p in m.parameters()}
    if current and current != {dtype}:
        return module.to(device, dtype)
    return module.to(device)


def _zero_embed(vision: torch.nn.Module) -> torch.Tensor:
    """The vision tower's embedding of an all-zero normalised pixel tensor, ``(d,)`` float32
    CPU: what diffusers' Kandinsky prior pipeline passes as ``negative_image_embeds``."""
    size = int(vision.config.image_size)
    p = next(vision.parameters())
    with torch.no_grad():
        z = vision(pixel_values=torch.zeros(1, 3, size, size, device=p.device, dtype=p.dtype)).image_embeds
    return z[0].detach().to("cpu", torch.float32)


def _mean_norm(vision: torch.nn.Module, processor: Any, images: Any) -> float:
    """Mean norm of the vision tower's *unnormalised* embeddings of ``images``."""
    from ..encoders import _image_items

    pils = [it.load() for it in _image_items(images)]
    p = next(vision.parameters())
    pixels = processor(images=pils, return_tensors="pt").pixel_values.to(p.device, p.dtype)
    with torch.no_grad():
        emb = vision(pixel_values=pixels).image_embeds.float()
    return float(emb.norm(dim=-1).mean())


def _check_scale(scale: float) -> float:
    if is_bool(scale):  # (True was a scale of 1.0)
        raise ArgumentError(f"embed_scale must be a positive number or 'auto', got {scale!r}.")
    try:
        s = float(scale)
    except (TypeError, ValueError, OverflowError):  # (a 400-digit integer overflows)
        raise ArgumentError(f"embed_scale must be a positive number or 'auto', got {scale!r}.") from None
    if not math.isfinite(s) or s <= 0:
        raise ArgumentError(f"embed_scale must be a positive finite number or 'auto', got {scale!r}.")
    return s


def _scale_or_auto(embed_scale: Any) -> float | str:
    """``embed_scale`` checked: a positive finite number (as a float), or ``"auto"``; refused before
    a loader reads its weights or a constructor changes the caller's pipeline."""
    if isinstance(embed_scale, str):
        if embed_scale != "auto":
            raise ArgumentError(f"embed_scale must be a positive number or 'auto', got {embed_scale!r}.")
        return embed_scale
    return _check_scale(embed_scale)


def _refuse_no_image_encoder(name: str, negative_embeds: Any, embed_scale: Any) -> None:
    """Refuse a decoder without an image encoder where it needs one: for the negative (zero-image)
    embedding (no ``negative_embeds``) or for ``embed_scale="auto"`` (the constructor, and
    from_pretrained with ``image_encoder_repo=None`` before it reads the weights)."""
    needs = [n for n, missing in (("the negative (zero-image) embedding", negative_embeds is None),
                                  ("embed_scale='auto'", isinstance(embed_scale, str))) if missing]  # fmt: skip
    if needs:
        raise ArgumentError(
            f"the Kandinsky 2.2 decoder {name!r} has no image encoder, which it needs for "
            f"{' and '.join(needs)}. Either give it one: image_encoder_repo= (a folder or Hub repo with "
            f"image_encoder/ and image_processor/, e.g. {KANDINSKY_PRIOR_REPO!r}) to from_pretrained or "
            "create_decoder(), or image_encoder=(vision_model, processor) to the KandinskyDecoder constructor; "
            "or do without it: pass negative_embeds=<a (d,) tensor> (e.g. the image encoder's embedding of an "
            "all-zero image, saved from an earlier load: dec.negative_embeds) and a number as embed_scale= "
            "(e.g. dec.embed_scale of an earlier load)."
        )


def _checked_negative(negative_embeds: Any, dim: int) -> torch.Tensor:
    """``negative_embeds``, one finite row of size ``dim`` ((d,) or (1, d)), as a (d,) CPU float32 tensor."""
    try:
        neg = torch.as_tensor(negative_embeds).detach().to("cpu", torch.float32)
    except (TypeError, ValueError, RuntimeError):  # (a string, a ragged list: a raw torch error)
        raise ArgumentError(f"negative_embeds must be a finite ({dim},) tensor, got "
                            f"{type(negative_embeds).__name__}.") from None  # fmt: skip
    # one row, (d,) or (1, d) (a (2, d / 2) tensor was flattened into a (d,) one)
    if tuple(neg.shape) not in ((dim,), (1, dim)):
        raise ArgumentError(f"negative_embeds must be a finite ({dim},) tensor, got shape {tuple(neg.shape)}.")
    neg = neg.reshape(-1)
    if not torch.isfinite(neg).all():
        raise ArgumentError(f"negative_embeds holds NaN or infinite values (as float32); give a finite ({dim},) "
                            "tensor, e.g. dec.negative_embeds of an earlier load.")  # fmt: skip
    return neg


def _texts(texts: Any) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, (list, tuple)) and texts and all(isinstance(t, str) for t in texts):
        return list(texts)
    raise ArgumentError(
        f"texts must be a string or a non-empty list of strings, got {type(texts).__name__}. "
        "Pass e.g. prior.from_texts(['a red fox', 'a lighthouse at dusk'])."
    )


# ======================================================================================
# the prior loop shared by Kandinsky 2.2 and Karlo
# ======================================================================================


def sample_unclip_prior(
    prior: torch.nn.Module,
    scheduler: Any,
    text_encoder: torch.nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    seed: int = 0,
    num_samples: int = 1,
    steps: int = 25,
    guidance_scale: float = 4.0,
) -> torch.Tensor:
    """Sample image embeddings for ``texts`` with a DALL-E 2 style diffusion prior.

    The same loop as the prior stage of diffusers' ``UnCLIPPipeline`` (Karlo) and
    ``KandinskyV22PriorPipeline``: the CLIP text tower gives the pooled ``text_embeds`` and
    the per-token hidden states (+ padding mask), the ``PriorTransformer`` denoises an
    embedding with an ``UnCLIPScheduler``, classifier-free guidance contrasts with the empty
    prompt, and ``prior.post_process_latents`` undoes the prior's standardisation.

    Randomness is per output row: row ``i * num_samples + j`` (sample ``j`` of text ``i``)
    draws its starting latents and every scheduler step's noise from
    ``torch.Generator("cpu").manual_seed(seed + j)``, so a text's samples do not depend on
    the other texts of the batch and reproduce on any device. ``seed`` is an integer in
    ``[-2**63, 2**63)``, as every latentlab seed (:func:`~latentlab.errors.check_seed`).

    Returns float32 ``(len(texts) * num_samples, d)`` on the CPU, *unnormalised* (the scale
    of the family's image encoder).

    >>> from latentlab.decoders.kandinsky import sample_unclip_prior, tiny_unclip_prior_components
    >>> parts = tiny_unclip_prior_components(dim=32, seed=0)
    >>> sample_unclip_prior(*parts, ["a cat", "a dog"], num_samples=2, steps=2).shape
    torch.Size([4, 32])
    """
    texts = _texts(list(texts) if isinstance(texts, tuple) else texts)
    num_samples = check_int(num_samples, "num_samples", minimum=1)  # (numpy integers too, as seed)
    seed = check_seed(seed)  # sample j seeds a generator with seed + j, which torch takes below 2**64
    steps = check_int(steps, "steps", minimum=1)
    if steps < 2:
        raise ArgumentError(
            f"steps must be >= 2 for a diffusion prior, got {steps}: its UnCLIPScheduler spaces the timesteps "
            "from the noisiest to the last as (T - 1) / (steps - 1), so it needs two timesteps. "
            "Pass steps=2 or more (the released priors default to 25)."
        )
    guidance = _check_guidance(guidance_scale)
    cfg = guidance > 1.0
    p = next(prior.parameters())
    device, dtype = p.device, p.dtype
    t_dev = next(text_encoder.parameters()).device

    def encode(batch: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tok = tokenizer(batch, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt")  # fmt: skip
        out = text_encoder(tok.input_ids.to(t_dev))
        return (out.text_embeds.to(device, dtype), out.last_hidden_state.to(device, dtype),
                tok.attention_mask.bool().to(device))  # fmt: skip

    n, k = len(texts), num_samples
    b = n * k
    with torch.no_grad():
        emb, hid, mask = (x.repeat_interleave(k, dim=0) for x in encode(texts))
        if cfg:
            u_emb, u_hid, u_mask = (x.expand(b, *x.shape[1:]) for x in encode([""]))
            emb, hid, mask = torch.cat([u_emb, emb]), torch.cat([u_hid, hid]), torch.cat([u_mask, mask])
        gens = [torch.Generator("cpu").manual_seed(seed + j) for _ in range(n) for j in range(k)]
        d = int(prior.config.embedding_dim)
        latents = torch.stack([torch.randn(d, generator=g) for g in gens]).to(device, dtype)
        scheduler.set_timesteps(steps, device=device)
        latents = latents * scheduler.init_noise_sigma
        timesteps = scheduler.timesteps
        for i, t in enumerate(timesteps):
            x = torch.cat([latents, latents]) if cfg else latents
            pred = prior(x, timestep=t, proj_embedding=emb, encoder_hidden_states=hid, attention_mask=mask).predicted_image_embedding
            if cfg:
                uncond, cond = pred.chunk(2)
                pred = uncond + guidance * (cond - uncond)
            prev = None if i + 1 == len(timesteps) else timesteps[i + 1]
            latents = _scheduler_step(scheduler, pred, t, latents, prev, gens)
        out = prior.post_process_latents(latents)
    return out.detach().to("cpu", torch.float32)


def _scheduler_step(scheduler: Any, pred: torch.Tensor, t: Any, latents: torch.Tensor, prev: Any,
                    gens: list[torch.Generator]) -> torch.Tensor:
    """One ``UnCLIPScheduler`` step with its variance noise drawn row by row from CPU generators."""
    # UnCLIPScheduler draws randn_tensor(shape, generator=list) itself, one row per
    # generator, on the generators' (CPU) device: frame-independent and device-independent.
    return scheduler.step(pred, timestep=t, sample=latents, generator=gens, prev_timestep=prev).prev_sample


class UnCLIPDiffusionPrior(Prior):
    """A DALL-E 2 style diffusion prior (``PriorTransformer`` + ``UnCLIPScheduler`` + the
    family's CLIP text tower and tokenizer) as a latentlab :class:`~latentlab.priors.Prior`.

    **It needs texts.** The prior attends to the text tower's per-token hidden states; a
    pooled text embedding (what encoders return) does not carry them. So:

    * ``prior.from_texts(texts, seed=0, num_samples=1)`` -> ``(n * num_samples, d)``;
    * ``prior(texts, ...)`` with a string / list of strings does the same;
    * ``prior(text_embeddings)`` raises :class:`~latentlab.errors.ArgumentError` saying so.

    ``needs_texts = True`` lets callers (``Spec.resolve``) pick :meth:`from_texts`.
    Outputs are unit-norm float32 CPU tensors tagged with :attr:`space`. See
    :func:`sample_unclip_prior` for the seeding (sample ``j`` of every text uses ``seed + j``).
    """

    serial_calls = True  # the pipeline's one scheduler is set and stepped by every call

    needs_texts = True
    family = "unCLIP"

    def __init__(
        self,
        prior: torch.nn.Module,
        scheduler: Any,
        text_encoder: torch.nn.Module,
        tokenizer: Any,
        *,
        name: str,
        space: str | None,
        dim: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | str = torch.float32,
        cpu_offload: bool = False,
        default_steps: int = 25,
        default_guidance: float = 4.0,
        source: str | None = None,
    ) -> None:
        super().__init__(name=name, space=space, dim=check_int(dim, "dim", minimum=1))  # (int(32.5) was 32)
        got = int(prior.config.embedding_dim)
        if got != self.dim:
            raise SpaceError(f"dim={self.dim} but this prior produces {got}-d image embeddings; check the preset's dim.")
        self.device, self.dtype = as_device(device), as_dtype(dtype)
        self.cpu_offload = checked_cpu_offload(cpu_offload, self.device)
        warn_half_on_cpu(self.device, self.dtype, f"the {self.family} prior {self.name!r}")
        # >= 2, as sample_unclip_prior's steps (1 was taken here and refused by every call, naming steps);
        # checked before the caller's modules are moved and cast (they were after)
        self.default_steps = check_int(default_steps, "default_steps", minimum=2)  # 2.7 became 2
        self.default_guidance = check_number(default_guidance, "default_guidance", minimum=0)
        # without offload, everything lives on `device`; with it, the prior runs on `device`
        # and the text tower stays on the CPU (it runs once per call)
        self.prior = _place(prior, self.device, self.dtype).eval()
        self.text_encoder = _place(text_encoder, "cpu" if self.cpu_offload else self.device, self.dtype).eval()
        self.scheduler = scheduler
        self.tokenizer = tokenizer
        self.source = source

    def from_texts(
        self,
        texts: str | Sequence[str],
        *,
        seed: int = 0,
        num_samples: int = 1,
        steps: int | None = None,
        guidance_scale: float | None = None,
    ) -> torch.Tensor:
        """Image embeddings for ``texts``: unit-norm float32 ``(len(texts) * num_samples, d)``
        on the CPU tagged with :attr:`space`; rows ``i * num_samples ...`` are text ``i``'s.

        >>> z = prior.from_texts(["a red fox", "a lighthouse"], seed=0, num_samples=2)  # doctest: +SKIP
        >>> z.shape                                                                     # doctest: +SKIP
        torch.Size([4, 1280])
        """
        from ..encoders import _warn_truncated

        texts = _texts(texts)
        _warn_truncated(self.tokenizer, texts)  # (it cut them silently; the warning names the caller of from_texts)
        guidance = self.default_guidance if guidance_scale is None else guidance_scale
        with one_call_at_a_time(self):  # threads sharing this prior take turns with its one scheduler
            out = sample_unclip_prior(
                self.prior, self.scheduler, self.text_encoder, self.tokenizer, texts, seed=seed,
                num_samples=num_samples, steps=self.default_steps if steps is None else steps,
                guidance_scale=guidance,
            )  # fmt: skip
        # (said "the prior produced NaN/inf embeddings; try dtype=torch.float32 or fewer steps", naming neither
        # the prior nor its guidance_scale, and float32 or fewer steps to a float32 prior overflowed by its guidance)
        refuse_nonfinite_pixels(out, self, guidance, **PRIOR_OVERFLOW)
        return tag(normalize(out), self.space)

    def __call__(self, text_embeddings: Any, *, seed: int = 0, num_samples: int = 1) -> torch.Tensor:  # type: ignore[override]
        """``prior(texts)`` == ``prior.from_texts(texts)``; embeddings are refused (see class doc)."""
        if isinstance(text_embeddings, str) or (
            isinstance(text_embeddings, (list, tuple)) and text_embeddings and all(isinstance(t, str) for t in text_embeddings)
        ):
            return self.from_texts(text_embeddings, seed=seed, num_samples=num_samples)
        if isinstance(text_embeddings, (list, tuple)):  # prompts, but an empty list or one not all strings
            if not text_embeddings:
                raise ArgumentError("texts is an empty list; pass at least one prompt, e.g. prior(['a red fox']).")
            i = next(i for i, t in enumerate(text_embeddings) if not isinstance(t, str))
            raise ArgumentError(f"texts[{i}] must be a prompt string, got {type(text_embeddings[i]).__name__}.")
        if isinstance(text_embeddings, torch.Tensor):
            check_embeddings(text_embeddings, name="text_embeddings", dim=self.dim, space=self.space, expected_by="the prior")
        raise ArgumentError(
            f"the {self.family} prior conditions on the CLIP text encoder's per-token hidden states, which "
            f"pooled text embeddings (shape {tuple(getattr(text_embeddings, 'shape', ()))}) do not carry. "
            "Pass the prompts instead: prior.from_texts(['a red fox'], seed=0) (or prior(['a red fox']))."
        )

    def _sample(self, text_embeddings: torch.Tensor, *, seed: int, num_samples: int) -> torch.Tensor:
        raise ArgumentError(f"the {self.family} prior needs texts; use from_texts(texts).")

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({
            "source": self.source, "needs_texts": True, "steps": self.default_steps,
            "guidance_scale": self.default_guidance, "scheduler": type(self.scheduler).__name__,
            "seeding": "sample j of each text: torch.Generator('cpu').manual_seed(seed + j)",
            "device": str(self.device), "dtype": str(self.dtype).removeprefix("torch."),
        })  # fmt: skip
        return d

    #: what subclasses set: the default repo, preset name, space and size, and the scheduler's folder
    default_repo: str = ""
    default_name: str = "unclip-prior"
    default_space: str | None = None
    default_dim: int = 0
    scheduler_subfolder: str = "scheduler"
    #: the diffusers pipeline whose folder holds the prior (its model_index.json ``_class_name``)
    prior_pipeline: str = "KandinskyV22PriorPipeline"

    @classmethod
    def from_pretrained(
        cls,
        repo_or_dir: str | os.PathLike[str] | None = None,
        *,
        name: str | None = None,
        space: str | None = None,
        dim: int | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | str = torch.float32,
        variant: str | None = None,
        cpu_offload: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool | None = None,
        revision: str | None = None,
        repo_hint: str | None = None,
        **prior_kwargs: Any,
    ) -> "UnCLIPDiffusionPrior":
        """Load the prior (safetensors only) from the Hub cache or a folder (default: the
        family's repo); :class:`~latentlab.errors.ModelNotAvailableError` when its files are
        missing offline (``HF_HUB_OFFLINE``, ``HF_HOME`` / ``HF_HUB_CACHE`` read at call time),
        or when a local folder lacks one of ``prior``, ``text_encoder``, ``tokenizer`` and the
        scheduler's folder (all named at once), with the ``hf download`` command for
        ``repo_hint`` (the Hub repo the folder copies; default: the family's repo).

        >>> prior = KandinskyPrior.from_pretrained(device="cuda", dtype=torch.float16)  # doctest: +SKIP
        """
        repo = cls.default_repo if repo_or_dir is None else repo_or_dir
        dev, dt = as_device(device), as_dtype(dtype)
        checked_cpu_offload(cpu_offload, dev)  # before loading the weights, not after
        src, parts = cls._load_parts(
            repo, scheduler_subfolder=cls.scheduler_subfolder, what=f"{cls.family} prior", example=cls.default_repo,
            dtype=dt, variant=variant, cache_dir=cache_dir, local_files_only=local_files_only, revision=revision,
            repo_hint=repo_hint or cls.default_repo,
        )  # fmt: skip
        return cls(
            *parts, name=cls.default_name if name is None else name, space=cls.default_space if space is None else space,
            dim=cls.default_dim if dim is None else dim, device=dev, dtype=dt, cpu_offload=cpu_offload, source=src,
            **prior_kwargs,
        )  # fmt: skip

    @classmethod
    def _load_parts(
        cls,
        repo_or_dir: str | os.PathLike[str],
        *,
        scheduler_subfolder: str,
        what: str,
        example: str,
        dtype: torch.dtype,
        variant: str | None,
        cache_dir: str | os.PathLike[str] | None,
        local_files_only: bool | None,
        revision: str | None,
        repo_hint: str | None = None,
    ) -> tuple[str, tuple[Any, Any, Any, Any]]:
        from diffusers import PriorTransformer, UnCLIPScheduler
        from transformers import CLIPTextModelWithProjection, CLIPTokenizer

        src, is_dir = hub_source(repo_or_dir, what, example)
        common = dict(is_dir=is_dir, variant=variant, cache_dir=cache_dir, local_files_only=local_files_only, revision=revision)
        d_kw = load_kwargs(dtype=dtype, dtype_key=diffusers_dtype_key(), **common)
        t_kw = load_kwargs(dtype=dtype, dtype_key=transformers_dtype_key(), **common)
        plain = {k: v for k, v in t_kw.items() if k in ("cache_dir", "local_files_only", "revision")}
        repo = repo_hint or (None if is_dir else src)
        if is_dir:
            check_local_folder(src, what=what, needs=("prior", "text_encoder", "tokenizer", scheduler_subfolder),
                               pipelines=(cls.prior_pipeline,), repo=repo)  # fmt: skip
        one = dict(what=what, is_dir=is_dir, repo=repo)
        prior = load_component(PriorTransformer, src, subfolder="prior", kwargs=d_kw, **one)
        text = load_component(CLIPTextModelWithProjection, src, subfolder="text_encoder", kwargs=t_kw, **one)
        tok = load_tokenizer(CLIPTokenizer, src, subfolder="tokenizer", kwargs=plain, **one)
        sched = load_component(UnCLIPScheduler, src, subfolder=scheduler_subfolder, kwargs=plain, **one)
        return src, (prior, sched, text, tok)


class KandinskyPrior(UnCLIPDiffusionPrior):
    """The Kandinsky 2.2 prior: texts -> ViT-bigG/14 image embeddings (1280-d).

    Loaded from ``kandinsky-community/kandinsky-2-2-prior`` (``prior``, ``text_encoder``,
    ``tokenizer``, ``scheduler``; the 7 GB ``image_encoder`` is not needed here). Defaults
    follow diffusers' ``KandinskyV22PriorPipeline``: 25 steps, guidance 4. Needs texts:
    see :class:`UnCLIPDiffusionPrior`.

    >>> from latentlab.decoders.kandinsky import KandinskyPrior, tiny_unclip_prior_components
    >>> p = KandinskyPrior(*tiny_unclip_prior_components(dim=32), name="t", space="s", dim=32)
    >>> p.from_texts("a red fox", seed=0, steps=2).shape
    torch.Size([1, 32])
    """

    family = "Kandinsky 2.2"
    default_repo = KANDINSKY_PRIOR_REPO
    default_name = "kandinsky-2.2"
    default_space = KANDINSKY_SPACE
    default_dim = 1280
    scheduler_subfolder = "scheduler"


# ======================================================================================
# the decoder
# ======================================================================================


class KandinskyDecoder(Decoder):
    """Decode CLIP image embeddings with a diffusers ``KandinskyV22Pipeline``.

    **Scale convention.** The decoder was trained on the *unnormalised* ``image_embeds`` of
    its image encoder; latentlab embeddings are unit norm, so the adapter passes
    ``embeddings * embed_scale``. ``embed_scale="auto"`` calibrates it once, at load, as
    the mean norm the family's own image encoder gives 8 fixed synthetic images
    (:func:`latentlab.hf_clip.synthetic_images`); :meth:`calibrate_embed_scale` re-measures
    it on your images. ``negative_image_embeds`` (used when ``guidance_scale > 1``) are the
    image encoder's embedding of an all-zero pixel tensor, as in diffusers' prior pipeline,
    used as is (unnormalised), computed once.

    **Determinism.** The sampler is DDIM (``eta = 0``) built from the pipeline's scheduler
    config, or DPM-Solver++ with ``scheduler="dpm++"`` (deterministic too, similar frames in
    fewer steps); ``scheduler=None`` keeps the pipeline's own DDPM, which draws fresh noise
    each step from the per-frame generators. Starting latents are the render loop's ``noise``;
    each frame gets ``torch.Generator("cpu").manual_seed(seed)``, so frame k rendered alone
    equals frame k in a batch (up to float rounding) on any device.

    **Inversion** (``scheduler="ddim"`` only): :meth:`invert` encodes the image with the MoVQ
    encoder (``movq.encode(...).latents``: the continuous latents after ``quant_conv``, never
    quantised) and runs DDIM backwards (:meth:`invert_latents`) on the image's embedding, the
    UNet's learned-variance half dropped as the pipeline drops it. Decoding quantises
    nothing either: the pipeline decodes its latents with
    ``movq.decode(latents, force_not_quantize=True)``, which for Kandinsky's MoVQ
    (``lookup_from_codebook`` False, the default) skips the vector quantiser and decodes the
    latents as they are: the UNet samples, and inversion starts from, the same continuous
    latent space.

    Args:
        pipe: a ``KandinskyV22Pipeline`` (``unet``, ``scheduler``, ``movq``).
        name, space, dim: preset name, CLIP space, embedding size (must equal the UNet's
            ``encoder_hid_dim``).
        resolution: output side in pixels, a multiple of ``movq_scale_factor ** 2`` (64 for
            the real model; the native size is 768).
        embed_scale: a positive number, or ``"auto"`` (needs ``image_encoder``).
        image_encoder: ``(CLIPVisionModelWithProjection, CLIPImageProcessor)`` of the family
            (e.g. ``(towers.vision, processor)`` from :mod:`latentlab.hf_clip`); used at load for the
            scale and the zero embedding, then dropped unless ``keep_image_encoder``.
        negative_embeds: ``(d,)`` negative image embedding, instead of the zero embedding.
        device, dtype, cpu_offload: where / in which precision it runs (CPU float32 default).
        scheduler: ``"ddim"`` (default), ``"dpm++"`` or ``None`` (see
            :func:`latentlab.decoders.unclip.set_scheduler`).
        default_steps, default_guidance, default_batch_size: defaults of :meth:`decode`.

    >>> from latentlab.decoders.kandinsky import KandinskyDecoder, tiny_kandinsky_pipeline
    >>> from latentlab.hf_clip import tiny_hf_clip_towers
    >>> towers, processor, _ = tiny_hf_clip_towers(dim=32)
    >>> dec = KandinskyDecoder(tiny_kandinsky_pipeline(dim=32), name="t", space="s", dim=32,
    ...                        resolution=32, image_encoder=(towers.vision, processor))
    >>> dec.noise_shape()
    (4, 16, 16)
    """

    serial_calls = True  # the pipeline's one scheduler is set and stepped by every call

    def __init__(
        self,
        pipe: Any,
        *,
        name: str,
        space: str | None,
        dim: int,
        resolution: int,
        embed_scale: float | str = "auto",
        image_encoder: tuple[Any, Any] | None = None,
        negative_embeds: torch.Tensor | None = None,
        keep_image_encoder: bool = False,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | str = torch.float32,
        cpu_offload: bool = False,
        scheduler: str | None = "ddim",
        default_steps: int = 50,
        default_guidance: float = 4.0,
        default_batch_size: int = 4,
        source: str | None = None,
    ) -> None:
        for attr in ("unet", "movq", "scheduler", "movq_scale_factor"):
            if not hasattr(pipe, attr):
                raise ArgumentError(
                    f"pipe must be a diffusers KandinskyV22Pipeline, got {type(pipe).__name__} (no {attr!r}). "
                    "Load one with KandinskyDecoder.from_pretrained(...)."
                )
        self.pipe = pipe
        # checked, not converted: int(32.7) drew 32 px frames, int("x") was a raw ValueError
        self.name, self.space, self.dim = str(name), space, check_int(dim, "dim", minimum=1)
        self.resolution = check_int(resolution, "resolution")
        self.device, self.dtype = as_device(device), as_dtype(dtype)
        # refused here, not after the image encoder ran (the zero embedding, embed_scale="auto")
        self.cpu_offload = checked_cpu_offload(cpu_offload, self.device)
        self.source = source
        keep_image_encoder = check_bool(keep_image_encoder, "keep_image_encoder")  # "no" kept it
        embed_scale = _scale_or_auto(embed_scale)  # refused before the image encoder runs
        warn_half_on_cpu(self.device, self.dtype, f"the Kandinsky 2.2 decoder {self.name!r}")
        self.default_steps = check_int(default_steps, "default_steps", minimum=1)  # 2.7 became 2
        self.default_guidance = check_number(default_guidance, "default_guidance", minimum=0)
        self.default_batch_size = check_int(default_batch_size, "default_batch_size", minimum=1)
        pipe_dim = int(pipe.unet.config.encoder_hid_dim or 0)
        if pipe_dim != self.dim:
            raise dim_mismatch_error(self, pipe_dim, "Kandinsky 2.2", ("kandinsky", "kandinsky_tiny"))
        sf = int(pipe.movq_scale_factor)
        if self.resolution <= 0 or self.resolution % (sf * sf):
            raise ArgumentError(
                f"resolution must be a positive multiple of {sf * sf} (the MoVQ scale factor {sf}, squared), "
                f"got {resolution}. Use e.g. {sf * sf * max(1, round(self.resolution / (sf * sf)))}."
            )
        # refused before set_scheduler gives the caller's pipeline another scheduler (a refused
        # constructor left it one): no image encoder for what needs it, a given negative_embeds
        if image_encoder is None:
            _refuse_no_image_encoder(self.name, negative_embeds, embed_scale)
        neg = None if negative_embeds is None else _checked_negative(negative_embeds, self.dim)
        # (set_scheduler drops variance_type: neither sampler has a learned variance, so the
        # pipeline splits the UNet's (mean, variance) output before stepping)
        self.sampler = set_scheduler(pipe, scheduler)
        self.optimizations: dict[str, Any] = {"channels_last": False, "compile": False}
        pipe.set_progress_bar_config(disable=True)

        # the image encoder: scale calibration and the zero embedding, before moving the pipe
        self._vision = self._processor = None
        if image_encoder is not None:
            vision, processor = image_encoder
            self._vision = _place(vision, self.device if not self.cpu_offload else "cpu", self.dtype).eval()
            self._processor = processor
        self.negative_source = "given (negative_embeds=)"
        if neg is None:
            self.negative_source = "image encoder's zero-image embedding"
            neg = _checked_negative(_zero_embed(self._vision), self.dim)
        self.negative_embeds = neg
        self.embed_scale_source = "given"
        if isinstance(embed_scale, str):  # "auto" (checked above)
            size = int(self._vision.config.image_size)
            self.embed_scale = _check_scale(_mean_norm(self._vision, self._processor, synthetic_images(8, size=max(size, 64))))
            self.embed_scale_source = "auto (8 synthetic images)"
        else:
            self.embed_scale = embed_scale
        if not keep_image_encoder:
            self._vision = None

        if self.cpu_offload:  # (an accelerator: checked_cpu_offload above)
            _place(pipe, "cpu", self.dtype)
            pipe.enable_model_cpu_offload(device=self.device)
        else:
            _place(pipe, self.device, self.dtype)

    # -- the decoder contract ------------------------------------------------------------
    def noise_shape(self) -> tuple[int, ...]:
        """``(unet.in_channels, r / sf, r / sf)`` for resolution ``r`` and MoVQ scale factor ``sf``."""
        sf = int(self.pipe.movq_scale_factor)
        side = self.resolution // sf
        return (int(self.pipe.unet.config.in_channels), side, side)

    def _decode(self, embeddings: torch.Tensor, noise: torch.Tensor, *, seeds: Sequence[int], steps: int,
                guidance_scale: float) -> np.ndarray:  # fmt: skip
        guidance = _check_guidance(guidance_scale)
        pipe = self.pipe
        warn_late_first_timestep(pipe, steps, self.sampler)
        dev = pipe._execution_device
        b = embeddings.shape[0]
        pos = (embeddings * self.embed_scale).to(dev, self.dtype)
        neg = self.negative_embeds.to(dev, self.dtype).expand(b, -1).contiguous()
        gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        with torch.no_grad():
            out = pipe(
                image_embeds=pos, negative_image_embeds=neg, height=self.resolution, width=self.resolution,
                num_inference_steps=int(steps), guidance_scale=guidance, generator=gens,
                latents=noise.to(dev, self.dtype), output_type="np",
            ).images  # fmt: skip
        refuse_nonfinite_pixels(out, self, guidance)  # (cast to uint8, NaN drew black frames)
        return _to_uint8(out)

    def max_steps(self) -> int:
        """The most steps :meth:`decode` and :meth:`invert` take
        (:func:`~latentlab.decoders.unclip.max_sampler_steps`): 999 with the released config
        under DDIM (``steps=1000`` would start at ``t = 1000`` of 0..999), 998 under DPM-Solver++."""
        return max_sampler_steps(self.pipe.scheduler)

    def _max_steps_reason(self) -> str:
        return max_steps_reason(self.pipe.scheduler)

    # -- inversion -----------------------------------------------------------------------
    @classmethod
    def can_before_loading(cls, feature: str, options: dict[str, Any]) -> bool | None:
        if feature != "invert":
            return super().can_before_loading(feature, options)
        # (scheduler=None, the pipeline's own sampler, is never "ddim": see supports_inversion)
        return scheduler_inverts(options, SCHEDULERS, unset=False)

    @property
    def supports_inversion(self) -> bool:
        """True with ``scheduler="ddim"``: an inverted noise redraws its image only under DDIM
        (not under DPM-Solver++ nor the pipeline's own stochastic DDPM)."""
        return self.sampler == "ddim"

    def _invert(self, images: np.ndarray, embeddings: torch.Tensor, *, steps: int, guidance_scale: float) -> torch.Tensor:
        """MoVQ-encode ``images`` (resized to the resolution) and run DDIM backwards
        (:meth:`invert_latents`) to the starting latents that redraw them."""
        require_ddim(self)
        pixels = signed_pixels(images, self.resolution)
        try:
            with torch.no_grad():
                latents = self.pipe.movq.encode(pixels.to(self.pipe._execution_device, self.dtype)).latents
            return self._invert_latents(latents, embeddings, steps=steps, guidance_scale=guidance_scale)
        finally:
            free_model_hooks(self.pipe)  # the loop calls the MoVQ and UNet directly: offload them again

    def invert_latents(
        self, latents: torch.Tensor, embeddings: torch.Tensor, *, steps: int, guidance_scale: float = 1.0
    ) -> torch.Tensor:
        """DDIM inversion in latent space: the starting latents ``(b, *noise_shape())`` from
        which DDIM with ``steps`` steps (eta 0, conditioned as :meth:`decode` conditions on
        ``embeddings``) arrives at ``latents``. Uses diffusers' ``DDIMInverseScheduler`` with
        the sampler's own configuration; with ``guidance_scale > 1`` the negative embedding
        is the decoder's, as in a render. With ``cpu_offload=True`` the models it called go
        back to the CPU at the end, as after a pipeline call."""
        steps = self._check_steps(steps)
        latents, embeddings, guidance_scale = checked_inversion_inputs(self, latents, embeddings, guidance_scale)
        # the lock decode and invert hold: with cpu_offload, freeing the hooks moved every model
        # back to the CPU in the middle of another thread's decode
        with one_call_at_a_time(self):
            try:
                return self._invert_latents(latents, embeddings, steps=steps, guidance_scale=guidance_scale)
            finally:
                free_model_hooks(self.pipe)

    def _invert_latents(self, latents: torch.Tensor, embeddings: torch.Tensor, *, steps: int,
                        guidance_scale: float) -> torch.Tensor:  # fmt: skip
        """:meth:`invert_latents` without giving offloaded models back."""
        from diffusers import DDIMInverseScheduler

        require_ddim(self)
        pipe = self.pipe
        dev = pipe._execution_device
        b = embeddings.shape[0]
        cond = (embeddings.to(torch.float32) * self.embed_scale).to(dev, self.dtype)
        cfg = guidance_scale > 1.0
        if cfg:
            cond = torch.cat([self.negative_embeds.to(dev, self.dtype).expand(b, -1), cond])
        inverse = scheduler_from_config(DDIMInverseScheduler, pipe.scheduler.config)
        inverse.set_timesteps(int(steps), device=dev)
        x = latents.to(dev, self.dtype)
        channels = x.shape[1]
        with torch.no_grad():
            for t in inverse.timesteps:
                inp = torch.cat([x, x]) if cfg else x
                out = pipe.unet(sample=inp, timestep=t, encoder_hidden_states=None,
                                added_cond_kwargs={"image_embeds": cond}, return_dict=False)[0][:, :channels]  # fmt: skip
                if cfg:
                    uncond, pos = out.chunk(2)
                    out = uncond + guidance_scale * (pos - uncond)
                x = inverse.step(out, t, x).prev_sample
        return (x / pipe.scheduler.init_noise_sigma).detach().to("cpu", torch.float32)

    # -- scale ---------------------------------------------------------------------------
    def calibrate_embed_scale(self, images: Any, *, update: bool = True) -> float:
        """Mean norm of the family image encoder's embeddings of ``images`` (paths, PIL,
        arrays, tensors); sets ``embed_scale`` unless ``update=False``. Needs the decoder
        loaded with ``keep_image_encoder=True``.

        >>> dec.calibrate_embed_scale(my_images)   # doctest: +SKIP
        """
        update = check_bool(update, "update")
        if self._vision is None:
            raise ArgumentError("no image encoder is kept; load the decoder with keep_image_encoder=True.")
        scale = _check_scale(_mean_norm(self._vision, self._processor, images))
        if update:
            self.embed_scale, self.embed_scale_source = scale, "calibrated"
        return scale

    def optimize(self, *, channels_last: bool = True, compile: bool = False,
                 compile_mode: str | None = None) -> KandinskyDecoder:  # fmt: skip
        """Apply speed levers to the pipeline in place and return ``self``: the UNet and the
        MoVQ in ``torch.channels_last`` memory format, and optionally ``torch.compile`` of the
        UNet (its first call per batch shape compiles; warm up before timing). Frames stay the
        same up to float rounding. See :func:`latentlab.decoders.unclip.optimize_pipeline`.

        >>> dec = KandinskyDecoder.from_pretrained(device="cuda").optimize()  # doctest: +SKIP
        """
        return optimize_decoder(self, vae="movq", channels_last=channels_last, compile=compile, compile_mode=compile_mode)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({
            "source": self.source, "embed_scale": self.embed_scale, "embed_scale_source": self.embed_scale_source,
            "negative": self.negative_source, "sampler": self.sampler or "pipeline's own",
            "scheduler": type(self.pipe.scheduler).__name__, "optimizations": dict(self.optimizations),
            "device": str(self.device), "dtype": str(self.dtype).removeprefix("torch."), "cpu_offload": self.cpu_offload,
        })  # fmt: skip
        if self.negative_source.startswith("given"):
            # which negative: two given ones drew other guided frames under one description, so a
            # render resumed with another mixed them (only when given: zero-embedding renders still resume)
            d["negative_sha256"] = hashlib.sha256(self.negative_embeds.numpy().tobytes()).hexdigest()
        return d

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        repo_or_dir: str | os.PathLike[str] = KANDINSKY_DECODER_REPO,
        *,
        image_encoder_repo: str | os.PathLike[str] | None = KANDINSKY_PRIOR_REPO,
        name: str = "kandinsky-2.2",
        space: str | None = KANDINSKY_SPACE,
        dim: int = 1280,
        resolution: int = 768,
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
    ) -> KandinskyDecoder:
        """Load the Kandinsky 2.2 decoder (safetensors only) from the Hub cache or a folder.

        ``repo_or_dir``: the decoder (``unet``, ``scheduler``, ``movq``). ``image_encoder_repo``:
        where the family's image encoder lives (subfolders ``image_encoder`` and
        ``image_processor``), used at load for ``embed_scale="auto"`` and the negative
        embedding, then freed (``None`` to skip: then pass ``negative_embeds`` and a number).
        Cache: ``cache_dir`` / ``$HF_HUB_CACHE`` / ``$HF_HOME/hub``; ``local_files_only``
        defaults to ``$HF_HUB_OFFLINE``. Missing files raise
        :class:`~latentlab.errors.ModelNotAvailableError` naming the repo and the fix; a local
        folder missing ``unet``, ``scheduler``, ``movq`` or model_index.json is refused before
        loading, naming them all, what the folder is instead (its model_index.json) and
        ``hf download <repo_hint>`` (default: the decoder repo).

        >>> dec = KandinskyDecoder.from_pretrained(device="cuda", dtype=torch.float16)  # doctest: +SKIP
        """
        from diffusers import KandinskyV22Pipeline
        from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

        dev, dt = as_device(device), as_dtype(dtype)
        checked_cpu_offload(cpu_offload, dev)  # before loading the weights, not after
        embed_scale = _scale_or_auto(embed_scale)
        if decoder_kwargs.get("negative_embeds") is not None:
            _checked_negative(decoder_kwargs["negative_embeds"], check_int(dim, "dim", minimum=1))
        if image_encoder_repo is None:  # (the constructor refused it only once the decoder's weights were read)
            _refuse_no_image_encoder(str(name), decoder_kwargs.get("negative_embeds"), embed_scale)
        what = "Kandinsky 2.2 decoder"
        src, is_dir = hub_source(repo_or_dir, what, KANDINSKY_DECODER_REPO)
        repo = repo_hint or (KANDINSKY_DECODER_REPO if is_dir else src)
        if is_dir:
            check_local_folder(src, what=what, needs=("unet", "scheduler", "movq"), pipelines=("KandinskyV22Pipeline",),
                               repo=repo, model_index=True)  # fmt: skip
        common = dict(variant=variant, cache_dir=cache_dir, local_files_only=local_files_only, revision=revision)
        iwhat = "Kandinsky 2.2 image encoder"
        if image_encoder_repo is not None:  # its folder checked before the decoder's gigabytes are read, not after
            isrc, idir = hub_source(image_encoder_repo, iwhat, KANDINSKY_PRIOR_REPO, arg="image_encoder_repo")
            irepo = KANDINSKY_PRIOR_REPO if idir else isrc
            if idir:
                check_local_folder(isrc, what=iwhat, needs=("image_encoder", "image_processor"),
                                   pipelines=("KandinskyV22PriorPipeline",), repo=irepo)  # fmt: skip
        pipe = load_component(KandinskyV22Pipeline, src, subfolder=None, what=what, is_dir=is_dir, repo=repo,
                              kwargs=load_kwargs(is_dir=is_dir, dtype=dt, dtype_key=diffusers_dtype_key(), **common))  # fmt: skip
        image_encoder = None
        if image_encoder_repo is not None:
            t_kw = load_kwargs(is_dir=idir, dtype=dt, dtype_key=transformers_dtype_key(), **common)
            plain = {k: v for k, v in t_kw.items() if k in ("cache_dir", "local_files_only", "revision")}
            vision = load_component(CLIPVisionModelWithProjection, isrc, subfolder="image_encoder",
                                    what=iwhat, is_dir=idir, kwargs=t_kw, repo=irepo)  # fmt: skip
            processor = load_component(CLIPImageProcessor, isrc, subfolder="image_processor",
                                       what=iwhat, is_dir=idir, kwargs=plain, repo=irepo)  # fmt: skip
            image_encoder = (vision, processor)
        return cls(pipe, name=name, space=space, dim=dim, resolution=resolution, embed_scale=embed_scale,
                   image_encoder=image_encoder, device=dev, dtype=dt, cpu_offload=cpu_offload, source=src,
                   **decoder_kwargs)  # fmt: skip


# ======================================================================================
# tiny random components
# ======================================================================================


def tiny_kandinsky_pipeline(*, dim: int = 32, seed: int = 0) -> Any:
    """A ``KandinskyV22Pipeline`` of tiny random components built in-process (no download).

    UNet: image-conditioned (``encoder_hid_dim_type="image_proj"``,
    ``addition_embed_type="image"``, ``encoder_hid_dim=dim``), 4 latent channels, 8 output
    channels (mean + learned variance, like the real one); MoVQ (``VQModel``) with two blocks,
    scale factor 2, so a 32 px frame has (4, 16, 16) latents; scheduler DDPM with learned
    variance (the decoder converts it to DDIM). Seeded forked RNG, CPU float32.

    >>> pipe = tiny_kandinsky_pipeline(dim=32)
    >>> pipe.movq_scale_factor, pipe.unet.config.encoder_hid_dim
    (2, 32)
    """
    from diffusers import DDPMScheduler, KandinskyV22Pipeline, UNet2DConditionModel, VQModel

    dim = int(dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        unet = UNet2DConditionModel(
            in_channels=4, out_channels=8, addition_embed_type="image", encoder_hid_dim=dim,
            encoder_hid_dim_type="image_proj", cross_attention_dim=32, attention_head_dim=4,
            down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
            up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
            mid_block_type="UNetMidBlock2DSimpleCrossAttn", block_out_channels=(32, 64), layers_per_block=1,
            norm_num_groups=8, resnet_time_scale_shift="scale_shift", class_embed_type=None,
        ).eval()  # fmt: skip
        movq = VQModel(
            block_out_channels=[32, 64], down_block_types=["DownEncoderBlock2D", "AttnDownEncoderBlock2D"],
            up_block_types=["AttnUpDecoderBlock2D", "UpDecoderBlock2D"], in_channels=3, out_channels=3,
            latent_channels=4, layers_per_block=1, norm_num_groups=8, norm_type="spatial",
            num_vq_embeddings=12, vq_embed_dim=4,
        ).eval()  # fmt: skip
    scheduler = DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
        prediction_type="epsilon", variance_type="learned_range", steps_offset=1,
    )  # fmt: skip
    pipe = KandinskyV22Pipeline(unet=unet, scheduler=scheduler, movq=movq)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_unclip_prior_components(*, dim: int = 32, seed: int = 0) -> tuple[Any, Any, Any, Any]:
    """``(prior, scheduler, text_encoder, tokenizer)``: a tiny random ``PriorTransformer``
    (1 layer) with an ``UnCLIPScheduler`` and the text tower / tokenizer of
    :func:`~latentlab.hf_clip.tiny_hf_clip_towers` (same ``dim`` and ``seed``: the
    ``hf_clip_tiny`` encoder's own). ``clip_std`` is set to ones, as real priors have it.

    >>> prior, scheduler, text_encoder, tokenizer = tiny_unclip_prior_components(dim=32)
    >>> prior.config.embedding_dim, prior.config.num_embeddings
    (32, 16)
    """
    from diffusers import PriorTransformer, UnCLIPScheduler

    towers, _, tokenizer = tiny_hf_clip_towers(dim=dim, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed) + 1)
        prior = PriorTransformer(
            num_attention_heads=2, attention_head_dim=12, embedding_dim=int(dim), num_layers=1,
            num_embeddings=int(tokenizer.model_max_length),
        ).eval()  # fmt: skip
        with torch.no_grad():
            prior.clip_std.fill_(1.0)
            prior.clip_mean.normal_(0.0, 0.1)
    scheduler = UnCLIPScheduler(variance_type="fixed_small_log", prediction_type="sample", num_train_timesteps=1000,
                                clip_sample=True, clip_sample_range=10.0)  # fmt: skip
    return prior, scheduler, towers.text, tokenizer


# ======================================================================================
# builders
# ======================================================================================


@register_decoder_builder("kandinsky")
def _build_kandinsky(preset: Any, *, repo: str = KANDINSKY_DECODER_REPO,
                     image_encoder_repo: str | None = KANDINSKY_PRIOR_REPO, **kwargs: Any) -> KandinskyDecoder:  # fmt: skip
    """Preset decoder spec ``{"kind": "kandinsky", "repo": ..., "image_encoder_repo": ..., "embed_scale": ...}``;
    user keywords: ``repo_or_dir``, ``device``, ``dtype``, ``variant``, ``cpu_offload``, ``cache_dir``, ..."""
    kwargs.setdefault("resolution", preset.resolution)
    kwargs.setdefault("repo_hint", repo)  # a local repo_or_dir= is a copy of the preset's repo
    return KandinskyDecoder.from_pretrained(
        kwargs.pop("repo_or_dir", repo), image_encoder_repo=image_encoder_repo, name=preset.name,
        space=preset.space, dim=preset.dim, **kwargs,
    )  # fmt: skip


@register_decoder_builder("kandinsky_tiny")
def _build_kandinsky_tiny(preset: Any, *, seed: int = 0, **kwargs: Any) -> KandinskyDecoder:
    """Tiny random pipeline; its image encoder is the ``hf_clip_tiny`` towers of the same seed."""
    seed = check_seed(seed)
    towers, processor, _ = tiny_hf_clip_towers(dim=preset.dim, seed=seed)
    kwargs.setdefault("default_steps", 4)
    kwargs.setdefault("default_guidance", 1.0)
    kwargs.setdefault("resolution", preset.resolution)
    return KandinskyDecoder(tiny_kandinsky_pipeline(dim=preset.dim, seed=seed), name=preset.name,
                            space=preset.space, dim=preset.dim, image_encoder=(towers.vision, processor),
                            source=f"tiny-random(seed={seed})", **kwargs)  # fmt: skip


_DECODER_CLASSES.update({_build_kandinsky: KandinskyDecoder, _build_kandinsky_tiny: KandinskyDecoder})


def register_unclip_prior_builders(kind: str, cls: type[UnCLIPDiffusionPrior]) -> None:
    """Register the prior builders ``kind`` (released weights, ``{"kind": kind, "repo": ...}``;
    user keywords as for the decoder) and ``kind + "_tiny"`` (tiny random prior over the
    ``hf_clip_tiny`` text tower of the same seed, 4 steps) for a DALL-E 2 style prior family."""

    @register_prior_builder(kind)
    def _build(preset: Any, *, repo: str = cls.default_repo, **kwargs: Any) -> UnCLIPDiffusionPrior:
        kwargs.setdefault("repo_hint", repo)  # a local repo_or_dir= is a copy of the preset's repo
        return cls.from_pretrained(kwargs.pop("repo_or_dir", repo), name=preset.name, space=preset.space,
                                   dim=preset.dim, **kwargs)  # fmt: skip

    @register_prior_builder(f"{kind}_tiny")
    def _build_tiny(preset: Any, *, seed: int = 0, **kwargs: Any) -> UnCLIPDiffusionPrior:
        seed = check_seed(seed)
        kwargs.setdefault("default_steps", 4)
        return cls(*tiny_unclip_prior_components(dim=preset.dim, seed=seed), name=preset.name, space=preset.space,
                   dim=preset.dim, source=f"tiny-random(seed={seed})", **kwargs)  # fmt: skip


register_unclip_prior_builders("kandinsky", KandinskyPrior)
