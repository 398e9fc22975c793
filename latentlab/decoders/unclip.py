"""Stable unCLIP as a latentlab decoder: CLIP image embeddings in, frames out.

:class:`StableUnCLIPDecoder` is a thin adapter over diffusers'
``StableUnCLIPImg2ImgPipeline``. The pipeline accepts ``image_embeds=`` directly, so no
image is needed: the decoder hands it the (rescaled) latentlab embedding, the starting
latents the render loop chose and one CPU generator per frame, and returns uint8 frames.
The UNet reads the empty prompt, as in image variations, or with ``decode(...,
captions=[...])`` each row's caption, as the text-to-image ``StableUnCLIPPipeline`` gives
it the prompt.

:func:`tiny_stable_unclip_pipeline` builds the same pipeline from tiny random components
in-process (no download); the ``"tiny"`` preset uses it for tests and smoke runs.

Builders registered here (see :mod:`latentlab.presets`):

* ``"stable_unclip"``: :meth:`StableUnCLIPDecoder.from_pretrained` with the preset's
  ``repo`` and ``embed_scale`` plus user keywords (``device``, ``dtype``, ``variant``,
  ``cpu_offload``, ``cache_dir``, ``local_files_only``, ...).
* ``"stable_unclip_tiny"``: the tiny random pipeline.

>>> import torch, latentlab.presets as P                    # doctest: +SKIP
>>> dec = P.create_decoder("tiny")                           # doctest: +SKIP
>>> z = torch.nn.functional.normalize(torch.randn(2, dec.dim), dim=-1)  # doctest: +SKIP
>>> noise = torch.randn(2, *dec.noise_shape())               # doctest: +SKIP
>>> dec.decode(z, noise, seeds=[0, 1], steps=4).shape        # doctest: +SKIP
(2, 64, 64, 3)
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import (
    ArgumentError,
    ModelNotAvailableError,
    SpaceError,
    as_path_text,
    check_bool,
    check_int,
    check_number,
    check_seed,
    is_bool,
    user_path,
)
from ..hf_clip import (
    as_device,
    check_local_folder,
    check_tokenizer,
    diffusers_dtype_key,
    hub_cache_dir,
    is_hub_id,
    is_unavailable,
    not_a_folder_error,
    warn_half_on_cpu,
)
from ..presets import _DECODER_CLASSES, register_decoder_builder
from .base import Decoder, one_call_at_a_time, refuse_nonfinite_pixels

__all__ = [
    "SCHEDULERS",
    "StableUnCLIPDecoder",
    "free_model_hooks",
    "max_sampler_steps",
    "max_steps_reason",
    "optimize_decoder",
    "optimize_pipeline",
    "scheduler_from_config",
    "set_scheduler",
    "tiny_stable_unclip_pipeline",
    "tiny_clip_tokenizer",
    "warn_late_first_timestep",
]

#: the samplers a diffusers decoder can be given (``scheduler=``), besides ``None`` (keep the pipeline's own)
SCHEDULERS = ("ddim", "dpm++")

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def _as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ArgumentError(f"dtype must be float32, float16 or bfloat16, got {dtype}.")
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise ArgumentError(
            f"dtype {dtype!r} is not understood; use torch.float32 (default), torch.float16 or torch.bfloat16."
        )
    return _DTYPES[key]


# -- samplers and speed levers shared by the diffusers decoders ---------------------------------


def set_scheduler(pipe: Any, scheduler: str | None) -> str | None:
    """Give ``pipe`` the sampler ``scheduler`` names, built from its scheduler's config (same
    betas, prediction type, timestep offset); return the canonical name (``None``: kept as is).

    * ``"ddim"``: ``DDIMScheduler`` (deterministic with ``eta = 0``); the only sampler whose
      DDIM-inverted starting noise redraws the inverted image.
    * ``"dpm++"``: ``DPMSolverMultistepScheduler`` with ``algorithm_type="dpmsolver++"``
      (Lu et al. 2022, "DPM-Solver++"; second order, deterministic, no per-step noise):
      about the quality of DDIM in fewer steps.
    * ``None``: keep the pipeline's own scheduler.

    ``variance_type`` is dropped from the config: neither sampler has a learned variance, and
    without it the Kandinsky pipeline splits the UNet's (mean, variance) output itself.
    Config keys the new class does not take are dropped too (no diffusers warning).

    >>> from latentlab.decoders.unclip import set_scheduler, tiny_stable_unclip_pipeline
    >>> pipe = tiny_stable_unclip_pipeline()
    >>> set_scheduler(pipe, "dpm++"), pipe.scheduler.config.algorithm_type
    ('dpm++', 'dpmsolver++')
    """
    if scheduler is None:
        return None
    name = str(scheduler).lower() if isinstance(scheduler, str) else None
    if name not in SCHEDULERS:
        raise ArgumentError(
            f"scheduler must be one of {', '.join(repr(s) for s in SCHEDULERS)} or None (keep the pipeline's own), "
            f"got {scheduler!r}. 'ddim' (default) is needed for inversion; 'dpm++' gives similar frames in fewer steps."
        )
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    cls = DDIMScheduler if name == "ddim" else DPMSolverMultistepScheduler
    current = pipe.scheduler
    if isinstance(current, cls) and (name == "ddim" or current.config.algorithm_type == "dpmsolver++"):
        if "variance_type" not in current.config or current.config.variance_type is None:
            return name
    dpm = {"algorithm_type": "dpmsolver++", "solver_order": 2} if name == "dpm++" else {}
    pipe.scheduler = scheduler_from_config(cls, current.config, **dpm)
    return name


def scheduler_from_config(cls: type, config: Any, **updates: Any) -> Any:
    """``cls.from_config`` of the keys of ``config`` (another scheduler's) that ``cls`` takes,
    then ``updates``: the same betas, prediction type and timestep spacing, without diffusers'
    warning about the others ("... were passed to DDIMInverseScheduler, but are not expected
    ... verify your scheduler_config.json"), which would blame the user's files.
    ``variance_type`` is dropped too (see :func:`set_scheduler`).

    >>> from diffusers import DDIMInverseScheduler, DDIMScheduler
    >>> inv = scheduler_from_config(DDIMInverseScheduler, DDIMScheduler(steps_offset=1).config)
    >>> type(inv).__name__, inv.config.steps_offset
    ('DDIMInverseScheduler', 1)
    """
    import inspect

    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "variance_type"}
    cfg = {k: v for k, v in dict(config).items() if k in accepted}
    cfg.update(updates)
    return cls.from_config(cfg)


#: the first timestep a sampler should start from, as a fraction of the training timesteps
FIRST_TIMESTEP_FRACTION = 0.9


def _config_key(scheduler: Any) -> str:
    """``scheduler``'s config as JSON, the cache key of its probes (arrays such as
    ``trained_betas`` as lists, so that a probe's config is the scheduler's)."""
    import json

    return json.dumps(dict(scheduler.config), sort_keys=True, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v))


def _first_timestep(scheduler: Any, steps: int) -> int:
    """The first (noisiest) timestep ``scheduler`` samples with ``steps`` steps, computed on a
    copy (the pipeline's own scheduler is left as it is) once per scheduler type, config and steps."""
    try:
        return _first_timestep_of(type(scheduler), _config_key(scheduler), int(steps))
    except (TypeError, ValueError):  # a config that does not survive JSON: probed uncached
        probe = type(scheduler).from_config(scheduler.config)
        probe.set_timesteps(int(steps))
        return int(probe.timesteps[0])


@functools.lru_cache(maxsize=256)
def _first_timestep_of(cls: type, config_json: str, steps: int) -> int:
    import json

    probe = cls.from_config(json.loads(config_json))
    probe.set_timesteps(steps)
    return int(probe.timesteps[0])


def max_sampler_steps(scheduler: Any) -> int:
    """The most steps ``scheduler`` samples with: its training timesteps ``T``, or fewer where
    a count's first timestep would be ``T`` or more (an index past the end of its alphas):
    one less than the fewest such counts. The released Stable unCLIP and Kandinsky 2.2
    configs (``timestep_spacing="leading"``, ``steps_offset=1``) start ``steps=1000`` at
    ``t = 1000`` under DDIM, so 999 is their most; DPM-Solver++ starts ``steps=999`` at
    ``t = 1000``, so 998. Probed on a copy, once per scheduler type and config.

    >>> from diffusers import DDIMScheduler
    >>> max_sampler_steps(DDIMScheduler(steps_offset=1)), max_sampler_steps(DDIMScheduler())
    (999, 1000)
    """
    try:
        return _max_steps_of(type(scheduler), _config_key(scheduler))
    except (TypeError, ValueError):  # a config that does not survive JSON: probed uncached
        return _max_steps_scan(type(scheduler).from_config(scheduler.config))


@functools.lru_cache(maxsize=64)
def _max_steps_of(cls: type, config_json: str) -> int:
    import json

    return _max_steps_scan(cls.from_config(json.loads(config_json)))


def _max_steps_scan(probe: Any) -> int:
    """:func:`max_sampler_steps` of ``probe`` (a scheduler it may change): counts from 1 up to
    the first that starts at or past the training timesteps; a count ``set_timesteps``
    refuses after one it took ends the range too. Counts refused before any is taken (PNDM
    refuses 1 step) are skipped; a scheduler refusing every count: its training timesteps."""
    n_train = int(probe.config.num_train_timesteps)
    # no warnings.catch_warnings here: its filters are the whole process's, so a thread's block
    # overlapping the scan could keep its "ignore" for good. The thousand warnings it hid (numpy 2
    # asking torch's __array__ for copy=, in DPM-Solver++'s and Euler's set_timesteps) are not raised
    if isinstance(getattr(probe, "alphas_cumprod", None), torch.Tensor):
        probe.alphas_cumprod = probe.alphas_cumprod.as_subclass(_CopyKeywordTensor)
    ok = 0  # the largest count that worked so far
    for n in range(1, n_train + 1):
        try:
            probe.set_timesteps(n)
            first = int(probe.timesteps[0])
        except Exception:  # noqa: BLE001  (the decode would fail there with diffusers' own error)
            if ok:
                return ok
            continue  # a sampler that refuses the fewest counts (PNDM: 1 step) may take the next
        ok = n
        if first >= n_train:
            return n - 1
    return n_train


class _CopyKeywordTensor(torch.Tensor):
    """A tensor whose ``__array__`` takes numpy 2's ``copy`` keyword (torch's does not, so numpy
    warns at each conversion); the same values and torch ops otherwise."""

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = super().__array__(dtype)
        return out.copy() if copy else out


def scheduler_inverts(options: dict[str, Any], names: tuple[str, ...], unset: bool | None = None) -> bool | None:
    """Whether a decoder built with the builder keywords ``options`` samples with DDIM, the one
    sampler an inverted noise redraws its image under, told before it loads: ``names`` are the
    ``scheduler`` values its class takes (default ``"ddim"``); ``unset`` is the answer for
    ``scheduler=None`` (the pipeline's own sampler); ``None`` for a value the class refuses as it
    loads. (:meth:`Decoder.can_before_loading`'s ``"invert"`` of the diffusers families.)"""
    scheduler = options.get("scheduler", "ddim")
    if scheduler is None:
        return unset
    name = scheduler.lower() if isinstance(scheduler, str) else None
    return name == "ddim" if name in names else None


def max_steps_reason(scheduler: Any) -> str:
    """Why :func:`max_sampler_steps` is the most steps ``scheduler`` takes, for the error that
    refuses more: its training timesteps, or the first timestep one more step would start at."""
    limit, n_train = max_sampler_steps(scheduler), int(scheduler.config.num_train_timesteps)
    if limit >= n_train:
        return "the sampler's training timesteps"
    try:
        first = f"timestep {_first_timestep(scheduler, limit + 1)}"
    except Exception:  # noqa: BLE001
        first = "a timestep"
    cfg = scheduler.config
    return (f"the most the {type(scheduler).__name__} sampler takes: with timestep_spacing="
            f"{cfg.get('timestep_spacing', 'leading')!r} and steps_offset={cfg.get('steps_offset', 0)}, "
            f"steps={limit + 1} would start at {first}, past its {n_train} training timesteps 0..{n_train - 1}")  # fmt: skip


def _steps_to_reach(scheduler: Any, target: float, start: int = 1) -> int | None:
    """The fewest steps from ``start`` on whose first timestep reaches ``target`` (None if none does)."""
    n_train = int(scheduler.config.num_train_timesteps)
    for n in range(int(start), n_train + 1):
        if _first_timestep(scheduler, n) >= target:
            return n
    return None


def warn_late_first_timestep(pipe: Any, steps: int, sampler: str | None) -> None:
    """Warn (``UserWarning``) when ``pipe.scheduler`` with ``steps`` steps starts below 90% of
    its training timesteps.

    The released Stable unCLIP and Kandinsky 2.2 configs space timesteps as
    ``timestep_spacing="leading"`` with ``steps_offset=1``, kept so that frames match
    diffusers' own pipelines: with few steps the first timestep is far from the noisiest
    (``steps=1`` samples only ``t = 1``, ``steps=4`` starts at ``t = 751`` of 1000), the
    sampler takes the pure starting noise for a partly denoised image and the frames keep
    noise. The warning names the first timestep and the fewest steps that start at or above
    90% with this config (and with ``scheduler="dpm++"``)."""
    sched = pipe.scheduler
    if not hasattr(sched, "set_timesteps") or not hasattr(sched, "config"):
        return
    n_train = int(sched.config.num_train_timesteps)
    target = FIRST_TIMESTEP_FRACTION * n_train
    try:
        first = _first_timestep(sched, steps)
    except Exception:  # noqa: BLE001  (a scheduler we cannot probe: say nothing, the pipeline will)
        return
    if first >= target:
        return
    import warnings

    spacing = sched.config.get("timestep_spacing", "leading")
    need = _steps_to_reach(sched, target, start=steps + 1)
    fix = f"use steps >= {need} (the fewest that start at or above timestep {math.ceil(target)} here)" if need else "use more steps"
    if sampler != "dpm++":
        probe = type("_Pipe", (), {})()
        probe.scheduler = sched
        try:
            set_scheduler(probe, "dpm++")
            dpm_need = _steps_to_reach(probe.scheduler, target)  # the fewest, which may be <= steps
        except Exception:  # noqa: BLE001
            dpm_need = None
        fix += (", or scheduler='dpm++'" + (f" with steps >= {dpm_need}" if dpm_need else "")
                + " (about DDIM's quality in fewer steps)")  # fmt: skip
    warnings.warn(
        f"steps={steps}: the {type(sched).__name__} sampler (timestep_spacing={spacing!r}, steps_offset="
        f"{sched.config.get('steps_offset', 0)}) starts at timestep {first} of {n_train}, below "
        f"{FIRST_TIMESTEP_FRACTION:.0%} of them, so the starting noise is not fully removed and the frames "
        f"keep noise; {fix}.",
        UserWarning,
        stacklevel=2,
    )


def dim_mismatch_error(decoder: Any, pipe_dim: int, family: str, kinds: Sequence[str]) -> SpaceError:
    """The :class:`SpaceError` for a pipeline whose image embeddings have ``pipe_dim`` entries
    where ``decoder`` (its ``name``, ``space``, ``dim`` and ``source`` set) expects ``dim``:
    names the folder or repo, both sizes and spaces, and the presets of decoder ``kinds``
    whose space has ``pipe_dim``-d embeddings (a preset's ``dim`` cannot be overridden: the
    decoder renders only embeddings of the CLIP model it was trained with)."""
    from ..presets import PRESETS

    match = [p.name for p in PRESETS.values() if p.decoder.get("kind") in kinds and p.dim == pipe_dim]
    where = f"{decoder.source!r}" if getattr(decoder, "source", None) else f"this {family} pipeline"
    if match:
        fix = f"use the preset {' or '.join(repr(m) for m in match)}, whose CLIP space has {pipe_dim}-d embeddings"
    else:
        fix = (f"use a preset whose CLIP space has {pipe_dim}-d embeddings (a Preset of your own with dim={pipe_dim} "
               "and the encoder of the CLIP model this pipeline was trained with)")  # fmt: skip
    return SpaceError(
        f"{where} holds a {family} decoder whose image embeddings have size {pipe_dim}, but {decoder.name!r} expects "
        f"{decoder.dim}-d embeddings of the space {decoder.space!r}: the decoder renders only embeddings of the CLIP "
        f"model it was trained with. Fix: {fix}; or load a {decoder.dim}-d {family} pipeline (repo_or_dir=). "
        f"(Building the decoder class yourself, pass dim={pipe_dim} and that model's space.)"
    )


def checked_cpu_offload(cpu_offload: object, device: torch.device) -> bool:
    """``cpu_offload`` checked as a bool that ``device`` can take (an accelerator): refused before
    a loader reads gigabytes of weights or a constructor runs its image encoder, not after."""
    offload = check_bool(cpu_offload, "cpu_offload")  # "no" was True
    if offload and torch.device(device).type == "cpu":
        raise ArgumentError("cpu_offload=True needs an accelerator device, e.g. device='cuda'; got device='cpu'.")
    return offload


def checked_inversion_inputs(decoder: Any, latents: Any, embeddings: Any,
                             guidance_scale: object) -> tuple[torch.Tensor, torch.Tensor, float]:  # fmt: skip
    """The public ``invert_latents`` arguments checked as :meth:`Decoder.decode` checks its own:
    ``embeddings`` of the decoder's size and space as unit-norm CPU float32 rows (decode
    normalises them, so the inversion conditions on the same embedding), ``latents`` a finite
    ``(b, *noise_shape())`` tensor (CPU float32) and ``guidance_scale`` a finite number >= 0
    (NaN and negative scales inverted unguided without a word; a string was a raw TypeError)."""
    z = decoder._unit_rows(embeddings)
    shape = (z.shape[0], *decoder.noise_shape())
    if not isinstance(latents, torch.Tensor) or tuple(latents.shape) != shape:
        got = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
        raise ArgumentError(f"latents must have shape {shape} (one row per embedding, the decoder's noise_shape()), "
                            f"got {got}.")  # fmt: skip
    if not latents.is_floating_point():
        raise ArgumentError(f"latents must be a floating tensor (the autoencoder's latents), got dtype {latents.dtype}.")
    x = latents.detach().to("cpu", torch.float32)
    if not bool(torch.isfinite(x).all()):
        raise ArgumentError("latents hold NaN or infinite values as the float32 the decoder reads.")
    return x, z, check_number(guidance_scale, "guidance_scale", minimum=0)


def free_model_hooks(pipe: Any) -> None:
    """``pipe.maybe_free_model_hooks()`` when the pipeline has it: with model CPU offload
    (``cpu_offload=True``) it moves the models a loop called directly back to the CPU, as a
    pipeline call does at its end; without offload it does nothing."""
    free = getattr(pipe, "maybe_free_model_hooks", None)
    if callable(free):
        free()


def signed_pixels(images: np.ndarray, side: int) -> torch.Tensor:
    """uint8 ``(b, H, W, 3)`` -> float32 ``(b, 3, side, side)`` in [-1, 1], the input of a
    diffusers VAE / MoVQ encoder; images of another size are resized (bicubic). (Square images:
    :meth:`Decoder.invert` crops a picture's centre square first.)"""
    from PIL import Image

    x = np.stack([np.asarray(Image.fromarray(im).resize((side, side), Image.BICUBIC)) if im.shape[:2] != (side, side)
                  else im for im in images])  # fmt: skip
    return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def require_ddim(decoder: Any) -> None:
    """Raise unless ``decoder`` (with a ``sampler`` name) can invert: only DDIM redraws an
    image from its DDIM-inverted noise."""
    if not decoder.supports_inversion:
        pipe = getattr(decoder, "pipe", None)
        used = f"scheduler={decoder.sampler!r}" + (f" ({type(pipe.scheduler).__name__})" if pipe is not None else "")
        raise ArgumentError(
            f"inversion needs scheduler='ddim', but this decoder samples with {used}: "
            "a DDIM-inverted noise redraws its image only under DDIM. Build the decoder with "
            "scheduler='ddim' (the default) to invert images."
        )


def optimize_pipeline(
    pipe: Any,
    *,
    unet: str = "unet",
    vae: str = "vae",
    channels_last: bool = True,
    compile: bool = False,
    compile_mode: str | None = None,
) -> dict[str, Any]:
    """Speed levers that keep the frames (up to float rounding), applied to ``pipe`` in place.

    ``channels_last``: the UNet (``pipe.<unet>``) and the autoencoder (``pipe.<vae>``) in the
    ``torch.channels_last`` memory format, which tensor-core convolutions prefer (GPU, fp16).
    ``compile``: ``torch.compile`` of the UNet (``mode=compile_mode``); the first calls of each
    batch shape compile (minutes on a GPU), so warm it up before timing. ``False`` leaves a
    module as it is (it does not undo an earlier call). Returns what was asked, for
    :meth:`Decoder.describe`. Modules shared with other pipelines change for them too.

    >>> from latentlab.decoders.unclip import optimize_pipeline, tiny_stable_unclip_pipeline
    >>> optimize_pipeline(tiny_stable_unclip_pipeline(), channels_last=True)
    {'channels_last': True, 'compile': False}
    """
    for arg, value in (("channels_last", channels_last), ("compile", compile)):
        if not isinstance(value, bool):
            raise ArgumentError(f"{arg} must be True or False, got {value!r}.")
    if compile_mode is not None and not isinstance(compile_mode, str):
        raise ArgumentError(f"compile_mode must be a torch.compile mode name or None, got {compile_mode!r}.")
    if channels_last:
        for attr in (unet, vae):
            module = getattr(pipe, attr)
            getattr(module, "_orig_mod", module).to(memory_format=torch.channels_last)
    if compile and not hasattr(getattr(pipe, unet), "_orig_mod"):  # compile once
        setattr(pipe, unet, torch.compile(getattr(pipe, unet), mode=compile_mode))
    done: dict[str, Any] = {"channels_last": channels_last, "compile": compile}
    if compile:
        done["compile_mode"] = compile_mode or "default"
    return done


def optimize_decoder(decoder: Any, *, vae: str, channels_last: bool, compile: bool, compile_mode: str | None) -> Any:
    """The ``optimize()`` of a decoder wrapping a diffusers pipeline (``decoder.pipe``, with
    its autoencoder at ``pipe.<vae>``): :func:`optimize_pipeline`, refused with CPU offload
    when compiling, recorded in ``decoder.optimizations`` (for :meth:`Decoder.describe`). Returns
    ``decoder``."""
    if compile and decoder.cpu_offload:
        raise ArgumentError("compile=True does not combine with cpu_offload=True; use one or the other.")
    done = optimize_pipeline(decoder.pipe, unet="unet", vae=vae, channels_last=channels_last, compile=compile,
                             compile_mode=compile_mode)  # fmt: skip
    decoder.optimizations["channels_last"] = decoder.optimizations["channels_last"] or done["channels_last"]
    if done["compile"]:
        decoder.optimizations.update(compile=True, compile_mode=done["compile_mode"])
    return decoder


# -- the decoder ---------------------------------------------------------------------------


class StableUnCLIPDecoder(Decoder):
    """Decode CLIP image embeddings with a diffusers ``StableUnCLIPImg2ImgPipeline``.

    **Scale convention.** latentlab embeddings are unit-norm. The pipeline's own image
    path (``_encode_image``) feeds the UNet ``CLIPVisionModelWithProjection(...).image_embeds``
    *unnormalised*: it passes them through ``noise_image_embeddings`` (standardise with the
    ``image_normalizer`` mean/std, add ``noise_level`` noise, unstandardise, append a
    sinusoidal embedding of ``noise_level``) and on to the UNet as ``class_labels``; an
    ``image_embeds=`` argument takes exactly the same route. So this adapter passes
    ``embeddings * embed_scale``, where ``embed_scale`` is the typical norm of the
    pipeline's image-encoder output (a preset property; :meth:`calibrate_embed_scale`
    measures it on your images). A unit embedding ``e / |e|`` of an image embedded by the
    pipeline's encoder, decoded with ``embed_scale = |e|``, reproduces what the pipeline
    does with ``image=`` for that image.

    **Determinism.** The sampler is DDIM with ``eta = 0`` (or DPM-Solver++ with
    ``scheduler="dpm++"``, deterministic too) unless ``scheduler=None`` keeps the
    pipeline's own, so the only randomness beyond the starting latents is the
    ``noise_level`` noise added to the embeddings, drawn per frame from
    ``torch.Generator("cpu").manual_seed(seed)``: a frame depends on its embedding, noise
    and seed only, never on the other frames of its batch, and reproduces on any device.
    The empty-prompt text embedding is computed once and reused.

    **Captions.** Without captions (every render) the UNet reads the empty prompt, as the
    image-variation pipeline (``StableUnCLIPImg2ImgPipeline``) conditions it.
    ``decode(..., captions=[...])`` gives it each row's caption instead, encoded by the
    pipeline's own ``encode_prompt`` (its tokenizer, padded to ``model_max_length`` and
    truncated beyond it, and its text encoder), with the empty prompt as the unconditional
    half of classifier-free guidance: what the text-to-image ``StableUnCLIPPipeline`` gives
    the UNet for its prompt and the prior's image embedding. :func:`latentlab.generate`
    does this with the prior's samples.

    Args:
        pipe: a loaded ``StableUnCLIPImg2ImgPipeline``.
        name: preset or model id recorded in manifests.
        space: CLIP space of the embeddings it accepts (e.g. ``"laion2b/ViT-H-14"``).
        dim: embedding size ``d``; must match the pipeline's image normaliser.
        resolution: side of the square output frames, pixels (a multiple of 8 and of the
            VAE scale factor).
        embed_scale: norm given to the unit embeddings before they reach the pipeline (> 0).
        noise_level: image-embedding noise level, ``0 <= noise_level < 1000`` (0: faithful).
        device, dtype: where and in which precision the pipeline runs (moved there here,
            CPU/float32 by default, never moved to CUDA unless asked).
        cpu_offload: enable diffusers' model CPU offload onto ``device`` instead of moving
            the whole pipeline there (saves GPU memory).
        scheduler: ``"ddim"`` (default) replaces the pipeline's sampler with a DDIM scheduler
            of the same config; ``"dpm++"`` with DPM-Solver++ (2nd order multistep, similar
            frames in fewer steps, e.g. 12 instead of 20); ``None`` keeps the pipeline's own.
            Inversion (:meth:`invert`) needs ``"ddim"``: an inverted starting noise redraws
            its image only under the DDIM sampler it was inverted with (see
            :func:`set_scheduler`).
        default_steps, default_guidance, default_batch_size: defaults of :meth:`decode`.
        source: where the weights came from (repo id or folder), for :meth:`describe`.

    Example:
        >>> from latentlab.decoders.unclip import StableUnCLIPDecoder, tiny_stable_unclip_pipeline
        >>> pipe = tiny_stable_unclip_pipeline(embed_dim=32)
        >>> dec = StableUnCLIPDecoder(pipe, name="tiny", space="tiny-random", dim=32,
        ...                           resolution=64, embed_scale=1.0)
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
        embed_scale: float = 1.0,
        noise_level: int = 0,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | str = torch.float32,
        cpu_offload: bool = False,
        scheduler: str | None = "ddim",
        default_steps: int | None = None,
        default_guidance: float | None = None,
        default_batch_size: int | None = None,
        source: str | None = None,
    ) -> None:
        for attr in ("unet", "vae", "image_normalizer", "image_noising_scheduler", "image_encoder", "scheduler"):
            if not hasattr(pipe, attr):
                raise ArgumentError(
                    f"pipe must be a diffusers StableUnCLIPImg2ImgPipeline, got {type(pipe).__name__} "
                    f"(it has no {attr!r}). Load one with StableUnCLIPDecoder.from_pretrained(...)."
                )
        self.pipe = pipe
        self.name = str(name)
        self.space = space
        # checked, not converted: int(64.5) drew 64 px frames, int("x") was a raw ValueError
        self.dim = check_int(dim, "dim", minimum=1)
        self.resolution = check_int(resolution, "resolution")
        self.device = as_device(device)
        self.dtype = _as_dtype(dtype)
        # refused here, before set_scheduler gives the pipeline another scheduler (it was replaced first)
        self.cpu_offload = checked_cpu_offload(cpu_offload, self.device)
        self.source = source
        warn_half_on_cpu(self.device, self.dtype, f"the Stable unCLIP decoder {self.name!r}")

        pipe_dim = int(pipe.image_normalizer.mean.shape[-1])
        if self.dim != pipe_dim:
            raise dim_mismatch_error(self, pipe_dim, "Stable unCLIP", ("stable_unclip", "stable_unclip_tiny"))
        scale = int(pipe.vae_scale_factor)
        if self.resolution <= 0 or self.resolution % 8 or self.resolution % scale:
            raise ArgumentError(
                f"resolution must be a positive multiple of 8 and of the VAE scale factor {scale}, "
                f"got {resolution}. Use e.g. {max(8, scale) * max(1, round(self.resolution / max(8, scale)))}."
            )
        self.embed_scale = self._check_scale(embed_scale)
        n_train = int(pipe.image_noising_scheduler.config.num_train_timesteps)
        ok = isinstance(noise_level, (int, np.integer)) and not isinstance(noise_level, bool)  # (True was level 1)
        if not (ok and 0 <= int(noise_level) < n_train):
            raise ArgumentError(f"noise_level must be an integer in [0, {n_train - 1}], got {noise_level!r}.")
        self.noise_level = int(noise_level)
        # refused before set_scheduler, the cast and the move change the caller's pipeline (they were after)
        if default_steps is not None:  # checked here: 2.7 became 2, 0 failed at the first decode naming steps
            self.default_steps = check_int(default_steps, "default_steps", minimum=1)
        if default_guidance is not None:
            self.default_guidance = check_number(default_guidance, "default_guidance", minimum=0)
        if default_batch_size is not None:
            self.default_batch_size = check_int(default_batch_size, "default_batch_size", minimum=1)
        if self.cpu_offload:
            import importlib.util

            if importlib.util.find_spec("accelerate") is None:
                raise ArgumentError("cpu_offload=True needs the `accelerate` package: pip install accelerate.")

        self.sampler = set_scheduler(pipe, scheduler)
        self.optimizations: dict[str, Any] = {"channels_last": False, "compile": False}

        if pipe.dtype != self.dtype:  # (a no-op cast would only trigger a diffusers warning)
            pipe.to(dtype=self.dtype)
        if self.cpu_offload:
            pipe.enable_model_cpu_offload(device=self.device)
        elif pipe.device != self.device:
            pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        self._prompt_cache: dict[tuple[str, torch.dtype], torch.Tensor] = {}

    @staticmethod
    def _check_scale(embed_scale: float) -> float:
        if is_bool(embed_scale):  # (True was a scale of 1.0)
            raise ArgumentError(f"embed_scale must be a positive number, got {embed_scale!r}.")
        try:
            s = float(embed_scale)
        except (TypeError, ValueError, OverflowError):  # (a 400-digit integer overflows)
            raise ArgumentError(f"embed_scale must be a positive number, got {embed_scale!r}.") from None
        if not math.isfinite(s) or s <= 0:
            raise ArgumentError(
                f"embed_scale must be a finite number > 0, got {embed_scale!r}. "
                "Measure it with decoder.calibrate_embed_scale(images)."
            )
        return s

    # -- Decoder contract ------------------------------------------------------------
    def noise_shape(self) -> tuple[int, ...]:
        """``(unet.in_channels, resolution / vae_scale, resolution / vae_scale)``."""
        side = self.resolution // int(self.pipe.vae_scale_factor)
        return (int(self.pipe.unet.config.in_channels), side, side)

    def _empty_prompt_embeds(self, device: torch.device) -> torch.Tensor:
        """The text embedding of ``""`` (1, L, C), computed once per device and dtype."""
        key = (str(device), self.dtype)
        if key not in self._prompt_cache:
            with torch.no_grad():
                emb, _ = self.pipe.encode_prompt(
                    prompt="", device=device, num_images_per_prompt=1, do_classifier_free_guidance=False
                )
            self._prompt_cache[key] = emb.detach()
        return self._prompt_cache[key]

    def _caption_embeds(self, captions: Sequence[str], device: torch.device) -> torch.Tensor:
        """The text embeddings (b, L, C) of ``captions``, one per row, as the text-to-image
        ``StableUnCLIPPipeline`` encodes its prompt: the pipeline's own ``encode_prompt``
        (padded to the tokenizer's ``model_max_length``, truncated beyond it, with the
        pipeline's warning)."""
        with torch.no_grad():
            emb, _ = self.pipe.encode_prompt(
                prompt=list(captions), device=device, num_images_per_prompt=1, do_classifier_free_guidance=False
            )
        return emb.detach()

    @property
    def reads_captions(self) -> bool:
        """True: :meth:`decode` also takes ``captions``, which the UNet then reads in place of
        the empty prompt, as the text-to-image ``StableUnCLIPPipeline`` gives it the prompt
        (the unconditional half of guidance keeps the empty prompt)."""
        return True

    def _decode_captioned(self, embeddings: torch.Tensor, noise: torch.Tensor, captions: list[str], *,
                          seeds: list[int], steps: int, guidance_scale: float) -> np.ndarray:  # fmt: skip
        """:meth:`_decode` with each row's caption in place of the empty prompt."""
        frames = self._render(embeddings, noise, seeds=seeds, steps=steps, guidance_scale=guidance_scale,
                              captions=captions)  # fmt: skip
        return np.clip(np.rint(frames * 255.0), 0, 255).astype(np.uint8)

    def _render(
        self,
        embeddings: torch.Tensor,
        noise: torch.Tensor,
        *,
        seeds: Sequence[int],
        steps: int,
        guidance_scale: float,
        captions: Sequence[str] | None = None,
    ) -> np.ndarray:
        """Run the pipeline once for the batch; float32 frames (b, H, W, 3) in [0, 1]. The UNet
        reads the empty prompt, or with ``captions`` (one per row) each row's caption, the
        unconditional half of guidance keeping the empty prompt."""
        if not math.isfinite(guidance_scale) or guidance_scale < 0:
            raise ArgumentError(f"guidance_scale must be a finite number >= 0, got {guidance_scale}.")
        pipe = self.pipe
        warn_late_first_timestep(pipe, steps, self.sampler)
        exec_device = pipe._execution_device
        b = embeddings.shape[0]
        empty = self._empty_prompt_embeds(exec_device).repeat(b, 1, 1)
        prompt = empty if captions is None else self._caption_embeds(captions, exec_device)
        extra: dict[str, Any] = {"prompt_embeds": prompt}
        if guidance_scale > 1.0:  # the unconditional half: the empty prompt, as StableUnCLIPPipeline's negative ""
            extra["negative_prompt_embeds"] = empty
        generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        # the pipeline scales its own latents by init_noise_sigma but takes given ones as they
        # are; the render's noise is N(0, I), so scale it as the pipeline would (1 for DDIM and
        # DPM-Solver++, not for e.g. Euler with scheduler=None, whose sigma depends on the
        # steps: read it after set_timesteps, which the pipeline repeats); invert_latents divides by it
        pipe.scheduler.set_timesteps(int(steps), device=exec_device)
        latents = noise.to(exec_device, torch.float32) * float(pipe.scheduler.init_noise_sigma)
        with torch.no_grad():
            out = pipe(
                image_embeds=(embeddings * self.embed_scale).to(exec_device, self.dtype),
                latents=latents.to(self.dtype),
                height=self.resolution,
                width=self.resolution,
                num_inference_steps=int(steps),
                guidance_scale=float(guidance_scale),
                noise_level=self.noise_level,
                eta=0.0,
                generator=generators,
                output_type="np",
                **extra,
            ).images
        out = np.asarray(out, dtype=np.float32)
        refuse_nonfinite_pixels(out, self, guidance_scale)  # (cast to uint8, NaN drew black frames)
        return out

    def _decode(
        self,
        embeddings: torch.Tensor,
        noise: torch.Tensor,
        *,
        seeds: Sequence[int],
        steps: int,
        guidance_scale: float,
    ) -> np.ndarray:
        frames = self._render(embeddings, noise, seeds=seeds, steps=steps, guidance_scale=guidance_scale)
        return np.clip(np.rint(frames * 255.0), 0, 255).astype(np.uint8)

    # -- DDIM inversion ----------------------------------------------------------------------
    def _invert(self, images: np.ndarray, embeddings: torch.Tensor, *, steps: int, guidance_scale: float) -> torch.Tensor:
        """VAE-encode ``images`` (resized to the native resolution) and run DDIM backwards
        (:meth:`invert_latents`) to the starting latents that redraw them."""
        require_ddim(self)
        pixels = signed_pixels(images, self.resolution)
        vae = self.pipe.vae
        try:
            with torch.no_grad():
                latents = vae.encode(pixels.to(self.pipe._execution_device, self.dtype)).latent_dist.mean
            return self._invert_latents(latents * vae.config.scaling_factor, embeddings, steps=steps,
                                        guidance_scale=guidance_scale)  # fmt: skip
        finally:
            free_model_hooks(self.pipe)  # the loop calls the VAE and UNet directly: offload them again

    def invert_latents(
        self, latents: torch.Tensor, embeddings: torch.Tensor, *, steps: int, guidance_scale: float = 1.0
    ) -> torch.Tensor:
        """DDIM inversion in latent space: the starting latents ``(b, *noise_shape())`` from
        which DDIM with ``steps`` steps (eta 0, this decoder's conditioning on ``embeddings``)
        arrives at ``latents``. Uses diffusers' ``DDIMInverseScheduler`` with the sampler's
        own configuration; the embedding is conditioned at noise level ``noise_level``
        without the pipeline's random embedding noise. With ``cpu_offload=True`` the models
        it called go back to the CPU at the end, as after a pipeline call."""
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
        emb = (embeddings.to(torch.float32) * self.embed_scale).to(dev, self.dtype)
        cond = pipe.noise_image_embeddings(emb, self.noise_level, noise=torch.zeros_like(emb))
        prompt = self._empty_prompt_embeds(dev).repeat(emb.shape[0], 1, 1)
        cfg = guidance_scale > 1.0
        if cfg:
            cond = torch.cat([torch.zeros_like(cond), cond])
            prompt = torch.cat([prompt, prompt])
        inverse = scheduler_from_config(DDIMInverseScheduler, pipe.scheduler.config)
        inverse.set_timesteps(int(steps), device=dev)
        x = latents.to(dev, self.dtype)
        with torch.no_grad():
            for t in inverse.timesteps:
                inp = torch.cat([x, x]) if cfg else x
                out = pipe.unet(inverse.scale_model_input(inp, t), t, encoder_hidden_states=prompt, class_labels=cond).sample
                if cfg:
                    uncond, text = out.chunk(2)
                    out = uncond + guidance_scale * (text - uncond)
                x = inverse.step(out, t, x).prev_sample
        return (x / pipe.scheduler.init_noise_sigma).detach().to("cpu", torch.float32)

    def max_steps(self) -> int:
        """The most steps :meth:`decode` and :meth:`invert` take (:func:`max_sampler_steps`):
        999 with the released configs under DDIM (``steps=1000`` would start at ``t = 1000``
        of 0..999), 998 under DPM-Solver++."""
        return max_sampler_steps(self.pipe.scheduler)

    def _max_steps_reason(self) -> str:
        return max_steps_reason(self.pipe.scheduler)

    @classmethod
    def can_before_loading(cls, feature: str, options: dict[str, Any]) -> bool | None:
        # inversion follows the sampler: unknown with scheduler=None (the pipeline's own) until it loads
        if feature != "invert":
            return super().can_before_loading(feature, options)
        return scheduler_inverts(options, SCHEDULERS)

    @property
    def supports_inversion(self) -> bool:
        """True when the pipeline samples with DDIM (an inverted noise redraws its image only
        with DDIM): ``scheduler="ddim"``, or ``scheduler=None`` on a pipeline whose own
        scheduler is DDIM."""
        from diffusers import DDIMScheduler

        return isinstance(self.pipe.scheduler, DDIMScheduler)

    def optimize(self, *, channels_last: bool = True, compile: bool = False,
                 compile_mode: str | None = None) -> "StableUnCLIPDecoder":  # fmt: skip
        """Apply speed levers to the pipeline in place and return ``self``: the UNet and VAE in
        ``torch.channels_last`` memory format, and optionally ``torch.compile`` of the UNet (its
        first call per batch shape compiles; warm up before timing). Frames stay the same up to
        float rounding. See :func:`optimize_pipeline`.

        >>> dec = create_decoder("tiny").optimize(channels_last=True)    # doctest: +SKIP
        """
        return optimize_decoder(self, vae="vae", channels_last=channels_last, compile=compile, compile_mode=compile_mode)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(
            {
                "source": self.source,
                "embed_scale": self.embed_scale,
                "noise_level": self.noise_level,
                "sampler": self.sampler or "pipeline's own",
                "scheduler": type(self.pipe.scheduler).__name__,
                "optimizations": dict(self.optimizations),
                "device": str(self.device),
                "dtype": str(self.dtype).removeprefix("torch."),
                "cpu_offload": self.cpu_offload,
            }
        )
        return d

    # -- the pipeline's own image encoder -----------------------------------------------
    def image_encoder_embeds(self, images: Any) -> torch.Tensor:
        """Embed ``images`` with the pipeline's own image encoder, *unnormalised*.

        ``images``: a PIL image, a list of them, or uint8 RGB arrays/tensors ``(H, W, 3)`` or
        ``(n, H, W, 3)``. Returns float32 ``(n, d)`` on the CPU: exactly the
        ``image_embeds`` the pipeline computes for ``image=`` (before noising).

        >>> e = dec.image_encoder_embeds(np.zeros((1, 64, 64, 3), np.uint8))  # doctest: +SKIP
        """
        batch = _as_image_list(images)
        pixels = self.pipe.feature_extractor(images=batch, return_tensors="pt").pixel_values
        enc = self.pipe.image_encoder
        dtype = next(enc.parameters()).dtype
        with one_call_at_a_time(self):  # (freeing the hooks offloads the models another thread's decode runs)
            try:
                with torch.no_grad():
                    emb = enc(pixels.to(self.pipe._execution_device, dtype)).image_embeds
            finally:
                free_model_hooks(self.pipe)  # with cpu_offload: the image encoder back to the CPU
        return emb.detach().to("cpu", torch.float32)

    def calibrate_embed_scale(self, images: Any, *, update: bool = True) -> float:
        """Mean norm of the pipeline's image-encoder embeddings of ``images`` (see
        :meth:`image_encoder_embeds` for accepted inputs); sets ``embed_scale`` to it unless
        ``update=False``. Calibrate on a few dozen natural images of the kind you render.

        >>> dec.calibrate_embed_scale(my_pil_images)   # doctest: +SKIP
        17.3
        """
        update = check_bool(update, "update")
        scale = float(self.image_encoder_embeds(images).norm(dim=-1).mean())
        scale = self._check_scale(scale)
        if update:
            self.embed_scale = scale
        return scale

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        repo_or_dir: str | os.PathLike[str],
        *,
        name: str,
        space: str | None,
        dim: int,
        resolution: int,
        embed_scale: float,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | str = torch.float32,
        variant: str | None = None,
        cpu_offload: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool | None = None,
        revision: str | None = None,
        repo_hint: str | None = None,
        **decoder_kwargs: Any,
    ) -> "StableUnCLIPDecoder":
        """Load a Stable unCLIP pipeline (safetensors only) from the Hub cache or a folder.

        ``repo_or_dir``: a Hugging Face repo id (``"stabilityai/stable-diffusion-2-1-unclip"``)
        or a local folder holding ``model_index.json`` and the component folders.
        ``variant``: e.g. ``"fp16"`` to load half-precision weight files. The Hub cache is
        ``cache_dir``, else ``$HF_HUB_CACHE``, else ``$HF_HOME/hub`` (read at call time);
        ``local_files_only`` defaults to ``$HF_HUB_OFFLINE``. When the weights are missing and
        cannot be fetched, raises :class:`~latentlab.errors.ModelNotAvailableError` naming
        the repo, what is missing and how to get it. A local folder that lacks
        model_index.json or component folders is refused before loading, naming them all, what
        the folder is instead (its model_index.json ``_class_name``) and the
        ``hf download <repo>`` command, with ``repo_hint`` as the repo (the ``stable_unclip``
        preset builder passes the preset's; default: the SD 2.1 unCLIP repo of ``dim``, 1024
        or 768); a single checkpoint file is refused (a diffusers folder is needed), and so is
        a missing or placeholder tokenizer. Other keywords (``noise_level``,
        ``scheduler``, ``default_steps``, ``default_guidance``, ...) go to the constructor.

        >>> dec = StableUnCLIPDecoder.from_pretrained(                  # doctest: +SKIP
        ...     "stabilityai/stable-diffusion-2-1-unclip", name="sd21-unclip",
        ...     space="laion2b/ViT-H-14", dim=1024, resolution=768, embed_scale=20.0,
        ...     device="cuda", dtype=torch.float16)
        """
        dev = as_device(device)
        dt = _as_dtype(dtype)
        checked_cpu_offload(cpu_offload, dev)  # before loading the weights, not after
        src = as_path_text(repo_or_dir, "repo_or_dir", "a folder path or a Hugging Face repo id")
        offline_env = _env_flag("HF_HUB_OFFLINE")
        if local_files_only is None:
            local_files_only = offline_env
        local_files_only = check_bool(local_files_only, "local_files_only")  # bool("no") was True
        cache = hub_cache_dir(cache_dir)  # (os.fspath: a raw TypeError on a number, and "~/hf" read as "./~/hf")

        path = user_path(src)
        is_dir = path.is_dir()
        repo = repo_hint or (_SD21_UNCLIP_REPOS.get(dim) if is_dir else src)
        if not is_dir and (path.exists() or src.startswith((".", "/", "~", "\\")) or not _is_repo_id(src)):
            raise not_a_folder_error(src, "Stable unCLIP pipeline", repo or "stabilityai/stable-diffusion-2-1-unclip")
        if is_dir:
            check_local_folder(str(path), what="Stable unCLIP pipeline", needs=_PIPELINE_COMPONENTS,
                               pipelines=("StableUnCLIPImg2ImgPipeline",), repo=repo, model_index=True)  # fmt: skip

        from diffusers import StableUnCLIPImg2ImgPipeline

        load_kwargs: dict[str, Any] = {"variant": variant, "use_safetensors": True}
        load_kwargs[diffusers_dtype_key()] = dt
        if not is_dir:
            load_kwargs.update(cache_dir=cache, local_files_only=bool(local_files_only), revision=revision)
        try:
            pipe = StableUnCLIPImg2ImgPipeline.from_pretrained(str(path) if is_dir else src, **load_kwargs)
        except Exception as exc:  # turn "not there / not reachable" into one clear error
            if type(exc).__name__ == "HFValidationError":
                raise ArgumentError(
                    f"repo_or_dir {src!r} is neither an existing folder nor a valid Hugging Face repo id "
                    "('owner/name', e.g. 'stabilityai/stable-diffusion-2-1-unclip')."
                ) from None
            if not is_unavailable(exc):
                raise
            raise ModelNotAvailableError(
                _unavailable_message(src, is_dir, cache, bool(local_files_only), offline_env, variant, exc, repo=repo)
            ) from None
        check_tokenizer(pipe.tokenizer, src, subfolder="tokenizer", what="Stable unCLIP pipeline", is_dir=is_dir, repo=repo)
        return cls(
            pipe,
            name=name,
            space=space,
            dim=dim,
            resolution=resolution,
            embed_scale=embed_scale,
            device=dev,
            dtype=dt,
            cpu_offload=cpu_offload,
            source=src,
            **decoder_kwargs,
        )


# -- loading helpers --------------------------------------------------------------------------


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _is_repo_id(s: str) -> bool:
    """``owner/name`` (a bare name is a mistyped local folder: every unCLIP repo has an owner)."""
    return is_hub_id(s)


#: the folders of a StableUnCLIPImg2ImgPipeline (model_index.json lists them)
_PIPELINE_COMPONENTS = ("feature_extractor", "image_encoder", "image_normalizer", "image_noising_scheduler",
                        "tokenizer", "text_encoder", "unet", "scheduler", "vae")  # fmt: skip

#: the released SD 2.1 unCLIP repo of each embedding size, for the download hint of a local folder
_SD21_UNCLIP_REPOS = {
    1024: "stabilityai/stable-diffusion-2-1-unclip",
    768: "stabilityai/stable-diffusion-2-1-unclip-small",
}


def _unavailable_message(
    src: str, is_dir: bool, cache: str, local_only: bool, offline_env: bool, variant: str | None, exc: BaseException,
    repo: str | None = None,
) -> str:  # fmt: skip
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    cause = f"{type(exc).__name__}: {first}"
    want = "safetensors weights" + (f" (variant {variant!r})" if variant else "")
    if is_dir:
        weights = f'"*.{variant}.safetensors"' if variant else '"*.safetensors" --exclude "*.fp16.*"'
        get = f'`hf download {repo or "<repo>"} --include "*.json" --include "*.txt" --include {weights} --local-dir {src}`'
        return (
            f"the folder {src!r} does not hold a complete Stable unCLIP pipeline with {want} ({cause}). "
            "It needs model_index.json and the folders feature_extractor, image_encoder, image_normalizer, "
            "image_noising_scheduler, tokenizer, text_encoder, unet, scheduler and vae, each with its config and "
            f"weight files. Download the repo's files into it with {get}, or save a pipeline there with "
            "pipe.save_pretrained(folder, safe_serialization=True)."
        )
    try:
        from huggingface_hub import try_to_load_from_cache

        cached_index = isinstance(try_to_load_from_cache(src, "model_index.json", cache_dir=cache), str)
    except Exception:  # noqa: BLE001  (an invalid repo id, an unreadable cache: say nothing is cached)
        cached_index = False
    if cached_index:
        missing = f"the cache holds only part of it; some component files ({want}) are missing"
    else:
        missing = f"nothing of it is in the Hugging Face cache ({cache})"
    if local_only:
        why = "HF_HUB_OFFLINE is set" if offline_env else "local_files_only=True"
        how = f"downloads are off ({why})"
    else:
        how = "the Hugging Face Hub could not be reached or refused the download"
    gated = " If the repo is gated, accept its licence on huggingface.co and log in (`hf auth login`)." if (
        "401" in first or "403" in first or "gated" in first.lower()
    ) else ""
    return (
        f"Stable unCLIP weights {src!r} are not available on this machine: {missing}, and {how}. "
        f"Fix: on a connected machine run `hf download {src} --include \"*.json\" --include \"*.txt\" --include "
        + (f"\"*.{variant}.safetensors\"`" if variant else "\"*.safetensors\" --exclude \"*.fp16.*\"`")
        + " (the configs, tokenizer files and the weights this load reads, not the repo's other formats and precisions) "
        "and copy the cache folder (HF_HOME, e.g. ~/.cache/huggingface) here, or point HF_HOME/HF_HUB_CACHE "
        f"(or cache_dir=) at a cache that has it, or pass a local pipeline folder instead of the repo id.{gated} "
        f"[{cause}]"
    )


# -- images for the pipeline's own encoder ----------------------------------------------------


def _as_image_list(images: Any) -> list[Any]:
    """PIL image(s) or uint8 RGB (H, W, 3) / (n, H, W, 3) arrays or tensors -> a list for the processor."""
    import PIL.Image

    if isinstance(images, PIL.Image.Image):
        return [images.convert("RGB")]
    if isinstance(images, (list, tuple)):
        if not images:
            raise ArgumentError("images is empty; pass at least one image.")
        out: list[Any] = []
        for item in images:
            out.extend(_as_image_list(item))
        return out
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise ArgumentError(
                f"images must be uint8 RGB in [0, 255], got dtype {images.dtype}; "
                "convert with (x * 255).round().clip(0, 255).astype(np.uint8)."
            )
        if images.ndim in (3, 4) and 0 in images.shape[-3:-1]:  # (a raw ZeroDivisionError in the processor)
            raise ArgumentError(f"images must be at least 1x1 pixels, got shape {images.shape}.")
        if images.ndim == 3 and images.shape[-1] == 3:
            return [images]
        if images.ndim == 4 and images.shape[-1] == 3 and images.shape[0] > 0:
            return list(images)
        raise ArgumentError(f"images must have shape (H, W, 3) or (n, H, W, 3), got {images.shape}.")
    raise ArgumentError(
        f"images must be PIL images or uint8 RGB arrays (H, W, 3) / (n, H, W, 3), got {type(images).__name__}."
    )


# -- tiny random components --------------------------------------------------------------------


def tiny_clip_tokenizer(model_max_length: int = 16) -> Any:
    """A working ``CLIPTokenizer`` built offline: the 256 byte-level symbols (alone and as
    word ends) plus the two special tokens, no merges (514 tokens; text becomes one token per
    byte). Enough for a random text encoder; not the real CLIP vocabulary."""
    import json
    import tempfile

    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    symbols = sorted(ByteLevel.alphabet())
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for s in symbols:
        vocab[s] = len(vocab)
    for s in symbols:
        vocab[s + "</w>"] = len(vocab)
    # from files, as a real one loads: CLIPTokenizer(vocab=..., merges=...) exists only in transformers 5
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        Path(folder, "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
        # names its class, or transformers 4 warns that the folder's tokenizer may be another
        Path(folder, "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "CLIPTokenizer"}), encoding="utf-8")
        return CLIPTokenizer.from_pretrained(folder, model_max_length=model_max_length)


def tiny_stable_unclip_pipeline(*, embed_dim: int = 32, resolution: int = 64, seed: int = 0) -> Any:
    """A ``StableUnCLIPImg2ImgPipeline`` of tiny random components, built in-process (no download).

    Image embeddings have size ``embed_dim``; frames are ``resolution`` pixels square
    (a multiple of 8; the VAE downsamples by 4, so the latents are ``(4, r/4, r/4)``). The
    weights come from a forked RNG seeded with ``seed``: the same seed gives the same
    pipeline and the caller's global RNG is untouched. CPU, float32. The sampler is DDIM
    (v-prediction, like Stable Diffusion 2.1), the embedding noiser a cosine DDPM schedule.

    >>> pipe = tiny_stable_unclip_pipeline(embed_dim=32, resolution=64, seed=0)
    >>> pipe.unet.config.projection_class_embeddings_input_dim
    64
    """
    embed_dim, resolution = int(embed_dim), int(resolution)
    if embed_dim < 2 or embed_dim % 2:
        raise ArgumentError(f"embed_dim must be an even integer >= 2, got {embed_dim}.")
    if resolution < 32 or resolution % 32:
        raise ArgumentError(f"resolution must be a multiple of 32 (>= 32) for the tiny pipeline, got {resolution}.")

    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        DDPMScheduler,
        StableUnCLIPImg2ImgPipeline,
        UNet2DConditionModel,
    )
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    text_len = 16
    tokenizer = tiny_clip_tokenizer(text_len)
    vae_blocks = (32, 32, 64)  # three blocks: latents are resolution / 4
    latent = resolution // 2 ** (len(vae_blocks) - 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=32,
                intermediate_size=37,
                projection_dim=32,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=text_len,
                bos_token_id=0,
                eos_token_id=1,
                pad_token_id=1,
            )
        ).eval()
        image_encoder = CLIPVisionModelWithProjection(
            CLIPVisionConfig(
                hidden_size=32,
                intermediate_size=37,
                projection_dim=embed_dim,
                num_hidden_layers=2,
                num_attention_heads=4,
                image_size=32,
                patch_size=4,
            )
        ).eval()
        unet = UNet2DConditionModel(
            sample_size=latent,
            in_channels=4,
            out_channels=4,
            block_out_channels=(32, 64),
            layers_per_block=1,
            norm_num_groups=8,
            attention_head_dim=(2, 4),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32,
            class_embed_type="projection",
            projection_class_embeddings_input_dim=2 * embed_dim,  # embedding + noise-level embedding
            upcast_attention=True,
            use_linear_projection=True,
        ).eval()
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            block_out_channels=vae_blocks,
            down_block_types=("DownEncoderBlock2D",) * len(vae_blocks),
            up_block_types=("UpDecoderBlock2D",) * len(vae_blocks),
            latent_channels=4,
            norm_num_groups=8,
            sample_size=resolution,
        ).eval()
        image_normalizer = StableUnCLIPImageNormalizer(embedding_dim=embed_dim)

    pipe = StableUnCLIPImg2ImgPipeline(
        feature_extractor=CLIPImageProcessor(crop_size={"height": 32, "width": 32}, size={"shortest_edge": 32}),
        image_encoder=image_encoder,
        image_normalizer=image_normalizer,
        image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        unet=unet,
        scheduler=DDIMScheduler(
            beta_schedule="scaled_linear",
            beta_start=0.00085,
            beta_end=0.012,
            prediction_type="v_prediction",
            set_alpha_to_one=False,
            steps_offset=1,
            clip_sample=False,
        ),
        vae=vae,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


# -- builders ------------------------------------------------------------------------------------


@register_decoder_builder("stable_unclip")
def _build_stable_unclip(preset: Any, *, repo: str | None = None, embed_scale: float | str = "auto",
                         **kwargs: Any) -> StableUnCLIPDecoder:  # fmt: skip
    """Preset decoder spec ``{"kind": "stable_unclip", "repo": ..., "embed_scale": ...}``.

    ``repo`` may be left out of a spec whose users always pass ``repo_or_dir=``.
    ``embed_scale="auto"`` (the default) measures it once at load: the mean norm of the
    pipeline's own image-encoder embeddings of 8 fixed synthetic images
    (:func:`latentlab.hf_clip.synthetic_images`); a number skips the measurement.
    """
    source = kwargs.pop("repo_or_dir", repo)
    if source is None:
        raise ArgumentError(
            f"preset {preset.name!r}: its decoder spec {preset.decoder!r} has no \"repo\" key, and no repo_or_dir= "
            "was passed. Add \"repo\": the Hugging Face repo id of the Stable unCLIP pipeline (e.g. "
            "'stabilityai/stable-diffusion-2-1-unclip'), or pass repo_or_dir= (a local pipeline folder or a repo id) "
            "to create_decoder()."
        )
    # a local repo_or_dir= is a copy of the preset's repo; a preset whose "repo" is a folder names no repo
    # to download (its fix said `hf download /models/x --local-dir /models/x`)
    kwargs.setdefault("repo_hint", repo if isinstance(repo, str) and is_hub_id(repo) else None)
    auto = isinstance(embed_scale, str)
    if auto and embed_scale != "auto":
        raise ArgumentError(f"embed_scale must be a positive number or 'auto', got {embed_scale!r}.")
    kwargs.setdefault("default_guidance", 10.0)  # StableUnCLIPImg2ImgPipeline's own default; 1.0 is no guidance
    dec = StableUnCLIPDecoder.from_pretrained(
        source,
        name=preset.name,
        space=preset.space,
        dim=preset.dim,
        resolution=kwargs.pop("resolution", preset.resolution),
        embed_scale=1.0 if auto else embed_scale,
        **kwargs,
    )
    if auto:
        from ..hf_clip import synthetic_images

        dec.calibrate_embed_scale(synthetic_images(8, size=224))
    return dec


@register_decoder_builder("stable_unclip_tiny")
def _build_stable_unclip_tiny(
    preset: Any,
    *,
    seed: int = 0,
    embed_scale: float | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | str = torch.float32,
    **kwargs: Any,
) -> StableUnCLIPDecoder:
    """Tiny random pipeline. ``embed_scale`` defaults to the mean norm its own image encoder
    gives 4 seeded random images, so the convention matches the real decoders'."""
    seed = check_seed(seed)  # ("0" was accepted; 10**30 raised torch's own error)
    kwargs.setdefault("default_steps", 10)
    kwargs.setdefault("default_guidance", 1.0)
    pipe = tiny_stable_unclip_pipeline(embed_dim=preset.dim, resolution=preset.resolution, seed=seed)
    dec = StableUnCLIPDecoder(
        pipe,
        name=preset.name,
        space=preset.space,
        dim=preset.dim,
        resolution=preset.resolution,
        embed_scale=1.0 if embed_scale is None else embed_scale,
        device=device,
        dtype=dtype,
        source=f"tiny-random(seed={seed})",
        **kwargs,
    )
    if embed_scale is None:
        gen = torch.Generator("cpu").manual_seed(int(seed))
        images = torch.randint(0, 256, (4, 48, 48, 3), generator=gen, dtype=torch.uint8)
        dec.calibrate_embed_scale(images)
    return dec


_DECODER_CLASSES.update({_build_stable_unclip: StableUnCLIPDecoder, _build_stable_unclip_tiny: StableUnCLIPDecoder})
