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

**Determinism.** Karlo's ``UnCLIPScheduler`` is stochastic: every step adds fresh noise
(there is no DDIM-style deterministic sampler for this pipeline, whose decoder predicts a
learned variance and whose scheduler takes ``prev_timestep``). The adapter makes that noise
reproducible per frame: each frame gets its own ``torch.Generator("cpu").manual_seed(seed)``
for every step of both stages, so frame k never depends on its batch. For smooth videos
render with one fixed seed for all frames (latentlab's default ``noise="fixed"``): then
the per-step noise is identical across frames too, and a frame depends on its embedding
only. Per-frame seeds flicker.

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
import os
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import ArgumentError, LatentlabError, SpaceError
from ..hf_clip import (
    as_device,
    as_dtype,
    diffusers_dtype_key,
    hub_source,
    load_component,
    load_kwargs,
    synthetic_images,
    tiny_hf_clip_towers,
    transformers_dtype_key,
)
from ..presets import register_decoder_builder
from .base import Decoder
from .kandinsky import (
    UnCLIPDiffusionPrior,
    _check_guidance,
    _check_scale,
    _mean_norm,
    _place,
    _to_uint8,
    register_unclip_prior_builders,
)

__all__ = [
    "KarloDecoder",
    "KarloPrior",
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
    digest = hashlib.sha256(f"karlo-super-res:{int(seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class KarloDecoder(Decoder):
    """Decode OpenAI CLIP ViT-L/14 image embeddings with Karlo (``UnCLIPImageVariationPipeline``).

    Two stages: the 64 px decoder (starting latents = the render loop's ``noise``, shape
    :meth:`noise_shape`), then two super-resolution UNets to 256 px (starting noise derived
    from the frame seed, see :func:`super_res_seed`). Both samplers are Karlo's stochastic
    ``UnCLIPScheduler``, fed one CPU generator per frame (see the module docstring on
    continuity).

    **Scale convention.** Karlo's decoder was trained on *unnormalised* ViT-L/14
    ``image_embeds``; the adapter passes ``embeddings * embed_scale``. ``"auto"``
    calibrates it at load as the mean norm the pipeline's own image encoder gives 8 fixed
    synthetic images; :meth:`calibrate_embed_scale` re-measures it on your images.

    Args:
        pipe: an ``UnCLIPImageVariationPipeline``.
        name, space, dim: preset name, CLIP space (``"openai/ViT-L-14"``), size (768).
        resolution: must equal the super-res UNets' ``sample_size`` (256); ``None`` reads it.
        embed_scale: a positive number or ``"auto"``.
        super_res_steps: steps of the super-resolution stage (Karlo's default 7).
        device, dtype, cpu_offload, default_steps (25), default_guidance (8.0),
        default_batch_size, source: as for the other decoders.

    >>> from latentlab.decoders.karlo import KarloDecoder, tiny_karlo_pipeline
    >>> dec = KarloDecoder(tiny_karlo_pipeline(dim=32), name="t", space="s", dim=32)
    >>> dec.noise_shape(), dec.resolution
    ((3, 16, 16), 32)
    """

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
        self.name, self.space, self.dim = str(name), space, int(dim)
        self.device, self.dtype = as_device(device), as_dtype(dtype)
        self.cpu_offload = bool(cpu_offload)
        self.source = source
        self.default_steps, self.default_guidance = int(default_steps), float(default_guidance)
        self.default_batch_size = int(default_batch_size)
        if isinstance(super_res_steps, bool) or not isinstance(super_res_steps, int) or super_res_steps < 1:
            raise ArgumentError(f"super_res_steps must be an integer >= 1, got {super_res_steps!r}.")
        self.super_res_steps = super_res_steps
        pipe_dim = int(pipe.text_proj.config.clip_embeddings_dim)
        if pipe_dim != self.dim:
            raise SpaceError(
                f"dim={self.dim} but this Karlo decoder takes {pipe_dim}-d image embeddings; "
                "pass the dim of OpenAI CLIP ViT-L/14 (768)."
            )
        native = int(pipe.super_res_first.config.sample_size)
        if resolution is not None and int(resolution) != native:
            raise ArgumentError(f"resolution must be {native} for this Karlo pipeline (its super-res size), got {resolution}.")
        self.resolution = native
        pipe.set_progress_bar_config(disable=True)

        if self.cpu_offload:
            if self.device.type == "cpu":
                raise ArgumentError("cpu_offload=True needs an accelerator device, e.g. device='cuda'; got device='cpu'.")
            _place(pipe, "cpu", self.dtype)
            pipe.enable_model_cpu_offload(device=self.device)
        else:
            _place(pipe, self.device, self.dtype)

        self.embed_scale_source = "given"
        if isinstance(embed_scale, str):
            if embed_scale != "auto":
                raise ArgumentError(f"embed_scale must be a positive number or 'auto', got {embed_scale!r}.")
            size = int(pipe.image_encoder.config.image_size)
            self.embed_scale = _check_scale(
                _mean_norm(pipe.image_encoder, pipe.feature_extractor, synthetic_images(8, size=max(size, 64)))
            )
            self.embed_scale_source = "auto (8 synthetic images)"
        else:
            self.embed_scale = _check_scale(embed_scale)

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
        return _to_uint8(out)

    def calibrate_embed_scale(self, images: Any, *, update: bool = True) -> float:
        """Mean norm of the pipeline's ViT-L/14 image-encoder embeddings of ``images``; sets
        ``embed_scale`` unless ``update=False``.

        >>> dec.calibrate_embed_scale(my_images)   # doctest: +SKIP
        """
        scale = _check_scale(_mean_norm(self.pipe.image_encoder, self.pipe.feature_extractor, images))
        if update:
            self.embed_scale, self.embed_scale_source = scale, "calibrated"
        return scale

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({
            "source": self.source, "embed_scale": self.embed_scale, "embed_scale_source": self.embed_scale_source,
            "super_res_steps": self.super_res_steps, "scheduler": "UnCLIPScheduler (stochastic, per-frame CPU generators)",
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
        **decoder_kwargs: Any,
    ) -> KarloDecoder:
        """Load Karlo's image-variation pipeline (safetensors only) from the Hub cache or a folder.

        Cache: ``cache_dir`` / ``$HF_HUB_CACHE`` / ``$HF_HOME/hub``; ``local_files_only``
        defaults to ``$HF_HUB_OFFLINE``. Missing files raise
        :class:`~latentlab.errors.ModelNotAvailableError` naming the repo and the fix.

        >>> dec = KarloDecoder.from_pretrained(device="cuda", dtype=torch.float16)  # doctest: +SKIP
        """
        dev, dt = as_device(device), as_dtype(dtype)
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
        comps = {k: load_component(c, src, subfolder=k, what=what, is_dir=is_dir, kwargs=kw) for k, (c, kw) in parts.items()}
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
    return KarloDecoder.from_pretrained(kwargs.pop("repo_or_dir", repo), name=preset.name, space=preset.space,
                                       dim=preset.dim, **kwargs)  # fmt: skip


@register_decoder_builder("karlo_tiny")
def _build_karlo_tiny(preset: Any, *, seed: int = 0, **kwargs: Any) -> KarloDecoder:
    """Tiny random pipeline over the ``hf_clip_tiny`` towers of the same seed (32 px frames)."""
    kwargs.setdefault("default_steps", 3)
    kwargs.setdefault("super_res_steps", 2)
    kwargs.setdefault("default_guidance", 1.0)
    kwargs.setdefault("resolution", preset.resolution)
    return KarloDecoder(tiny_karlo_pipeline(dim=preset.dim, seed=seed), name=preset.name, space=preset.space,
                        dim=preset.dim, source=f"tiny-random(seed={seed})", **kwargs)  # fmt: skip


register_unclip_prior_builders("karlo", KarloPrior)
