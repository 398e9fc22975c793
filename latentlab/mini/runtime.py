"""Runtime classes of the embedded ``mini`` unCLIP stack and their preset builders.

- :class:`MiniDecoder`: CLIP image embeddings (b, d) -> uint8 frames, by deterministic DDIM
  in pixel space from the starting noise the render loop gives it.
- :class:`MiniPrior`: text embeddings -> image embeddings, sampled from a small diffusion
  prior (so repeated samples differ).

Both load the weights shipped in ``latentlab/mini/weights/`` (no network); when those are
missing, :class:`~latentlab.errors.ModelNotAvailableError` says how to train and export them.

>>> import latentlab as ll                                 # doctest: +SKIP
>>> dec = ll.create_decoder("mini")                         # doctest: +SKIP
>>> frames = dec.decode(z, torch.randn(len(z), *dec.noise_shape()))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import numbers
import os
import threading
import weakref
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..decoders.base import PRIOR_OVERFLOW, Decoder, nonfinite_rows, refuse_nonfinite_pixels
from ..errors import ArgumentError, ModelNotAvailableError, check_int, check_number, is_bool, is_finite_real, shown, user_path
from ..presets import _BUILDING, _DECODER_CLASSES, register_decoder_builder, register_prior_builder
from .models import (
    SPACE,
    MiniDecoderNet,
    MiniPriorNet,
    MiniUpscalerNet,
    ExpertConfig,
    check_expert,
    expert_mismatch,
    load_expert,
    load_module,
    sample_decoder,
    sample_prior,
    weights_path,
)

from ..priors import Prior
from .export import CLIP_FILE

__all__ = [
    "MiniDecoder",
    "MiniPrior",
    "CaptionStates",
    "build_mini_decoder",
    "build_mini_prior",
    "ddim_invert",
    "sample_decoder_eta",
    "DECODER_FILE",
    "PRIOR_FILE",
    "UPSCALER_FILE",
    "EXPERT_FILE",
]

DECODER_FILE = "mini_decoder.safetensors"
PRIOR_FILE = "mini_prior.safetensors"
UPSCALER_FILE = "mini_upscaler.safetensors"
EXPERT_FILE = "mini_expert.safetensors"  # optional layout expert (train --stage expert)
MAX_RESOLUTION = 16384  # the largest frame side a MiniDecoder takes (as video.py's size= allows)

_FROZEN_GUARD = threading.Lock()
_FROZEN: weakref.WeakKeyDictionary[torch.nn.Module, list[Any]] = weakref.WeakKeyDictionary()  # net -> [blocks, params]


@contextlib.contextmanager
def _weights_frozen(net: torch.nn.Module) -> Any:
    """Run the block with ``net``'s trainable weights set ``requires_grad=False`` (gradients
    through the net to its input only), restored after it. Blocks overlapping in several threads
    (refines sharing one decoder) share one freeze, undone when the last ends: each thread's own
    undid it under the others, whose refines then computed and kept (``.grad``) the weights' gradients."""
    with _FROZEN_GUARD:
        entry = _FROZEN.get(net)
        if entry is None:
            params = [p for p in net.parameters() if p.requires_grad]
            for p in params:
                p.requires_grad_(False)
            entry = _FROZEN[net] = [0, params]
        entry[0] += 1
    try:
        yield
    finally:
        with _FROZEN_GUARD:
            entry[0] -= 1
            if entry[0] == 0:
                del _FROZEN[net]
                for p in entry[1]:
                    p.requires_grad_(True)



def _check_dtype_device(device: Any, dtype: Any) -> tuple[torch.device, torch.dtype]:
    """As the encoders check them (the same aliases, 'cuda' without CUDA refused by name)."""
    from ..encoders import _resolve_device, _resolve_dtype

    dev = _resolve_device("cpu" if device is None else device)  # (it refuses 'meta')
    dtype = torch.float32 if dtype is None else _resolve_dtype(dtype)
    if dev.type == "cpu" and dtype == torch.float16:
        raise ArgumentError("dtype=torch.float16 is not supported on the CPU; use torch.float32 (the default).")
    return dev, dtype


def _guided_eps(net: MiniDecoderNet, x: torch.Tensor, t: int, emb: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """The model output the sampler (``sample_decoder``) uses at step ``t``, guidance included."""
    b = x.shape[0]
    tt = torch.full((b,), int(t), device=x.device, dtype=torch.long)
    if guidance_scale == 1.0:
        return net(x, tt, emb)
    drop = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(x.device)
    out = net(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([emb, emb]), drop)
    cond, uncond = out.chunk(2)
    return uncond + guidance_scale * (cond - uncond)


def _eps(net: MiniDecoderNet, x: torch.Tensor, t: int, emb: torch.Tensor, guidance_scale: float, a_t: torch.Tensor) -> torch.Tensor:
    """The noise estimate of :func:`_guided_eps`'s model output at ``x`` (``a_t``: the cumulative
    alpha of ``t``), whatever the decoder's ``prediction_type``, as the sampler's step reads it."""
    out = _guided_eps(net, x, t, emb, guidance_scale)
    kind = net.config.prediction_type
    if kind == "v_prediction":  # v = sqrt(a) eps - sqrt(1 - a) x0
        return a_t.sqrt() * out + (1 - a_t).sqrt() * x
    if kind == "sample":  # the clean image itself
        return (x - a_t.sqrt() * out) / (1 - a_t).sqrt()
    return out


@torch.no_grad()
def ddim_invert(
    net: MiniDecoderNet,
    emb: torch.Tensor,
    image: torch.Tensor,
    *,
    steps: int = 25,
    guidance_scale: float = 1.0,
    iterations: int = 1,
    inset: float = 0.98,
) -> torch.Tensor:
    """DDIM inversion (Song et al. 2021, "Denoising Diffusion Implicit Models", sec. 4.3):
    the starting noise ``(b, 3, s, s)`` from which the deterministic sampler
    (:func:`~latentlab.mini.models.sample_decoder`, same ``steps`` and ``guidance_scale``)
    redraws ``image`` ``(b, 3, s, s)`` in [-1, 1], conditioned on ``emb`` ``(b, d)``.

    The sampler's steps are undone one at a time, last first. Each step of the sampler maps
    ``x_t`` to ``x_prev`` through the model's noise estimate at ``x_t``, which inversion does
    not know yet, so each step is refined by fixed-point iteration (``iterations`` extra
    model calls per step, re-evaluating the model at the current estimate of ``x_t``; 0
    gives plain DDIM inversion, which evaluates it at ``x_prev`` instead). The sampler clamps its predicted clean image to [-1, 1]; where that
    clamp binds, the step is inverted in closed form for the clamped value, so the fixed
    point reproduces the sampler's step exactly, clamp included. The target is inset to
    ``inset`` x [-1, 1] so that pure white or black pixels stay inside the clamp (a 1% inset
    shifts them by under 3 of 255 levels). The model's output is read as a noise estimate as
    the sampler reads it, for every ``prediction_type`` training offers.
    """
    from .models import ddim_scheduler

    sched = ddim_scheduler(net.config, steps)
    ac = sched.alphas_cumprod.to(image.device, image.dtype)
    ratio = sched.config.num_train_timesteps // sched.num_inference_steps
    one = torch.tensor(1.0, device=image.device, dtype=image.dtype)
    x = image.clamp(-1, 1) * inset
    for t in [int(v) for v in sched.timesteps][::-1]:
        prev = t - ratio
        a_t, a_p = ac[t], (ac[prev] if prev >= 0 else one)
        eps = _eps(net, x, t, emb, guidance_scale, a_t)
        xt = a_t.sqrt() * (x - (1 - a_p).sqrt() * eps) / a_p.sqrt() + (1 - a_t).sqrt() * eps  # plain DDIM inversion
        for _ in range(int(iterations)):
            eps = _eps(net, xt, t, emb, guidance_scale, a_t)
            # the clean image of the step that lands on x with this eps; the sampler clamps it where
            # |x0| > 1 (decided here, not from x_t: at t = 999 dividing by sqrt(a_t) ~ 5e-5 turned
            # eps's change between the estimates, or float rounding, into a wrong clamp and sign)
            x0 = (x - (1 - a_p).sqrt() * eps) / a_p.sqrt()
            free = a_t.sqrt() * x0 + (1 - a_t).sqrt() * eps
            if prev >= 0:  # where the sampler clamps x0 to c = +-1: x_prev = sqrt(a_p) c + sqrt((1-a_p)/(1-a_t)) (x_t - sqrt(a_t) c)
                c = x0.clamp(-1, 1).sign()
                clamped = a_t.sqrt() * c + ((1 - a_t) / (1 - a_p)).sqrt() * (x - a_p.sqrt() * c)
                xt = torch.where(x0.abs() > 1, clamped, free)
            else:  # the last sampler step returns the clamped x0 itself: stay inside the clamp
                xt = free
        x = xt
    return x


def _eta_stream(seed: int) -> int:
    """The generator seed of the step noise for frame seed ``seed`` (independent of the
    starting noise that :func:`latentlab.render.make_noise` draws from ``seed``)."""
    return int(np.random.SeedSequence([int(seed) % 2**64, 0xE7A]).generate_state(1, np.uint64)[0]) % 2**63


def _ddim_step_float64(sched: Any, eps: torch.Tensor, t: Any, x: torch.Tensor, eta: float, var: torch.Tensor) -> torch.Tensor:
    """``sched.step`` (DDIM with ``eta``) computed in float64, for a step whose float32 rounding
    made the direction's coefficient ``sqrt(1 - a_prev - sigma^2)`` NaN; returned in ``x``'s dtype.
    Only such steps take it, so every other step stays bit for bit as it was."""
    saved = sched.alphas_cumprod, sched.final_alpha_cumprod
    sched.alphas_cumprod, sched.final_alpha_cumprod = saved[0].double(), torch.as_tensor(saved[1]).double()
    try:
        out = sched.step(eps.double(), t, x.double(), eta=eta, variance_noise=var.double(),
                         use_clipped_model_output=True).prev_sample  # fmt: skip
    finally:
        sched.alphas_cumprod, sched.final_alpha_cumprod = saved
    return out.to(x.dtype)


@torch.no_grad()
def sample_decoder_eta(
    net: MiniDecoderNet,
    emb: torch.Tensor,
    noise: torch.Tensor,
    *,
    seeds: Sequence[int],
    eta: float,
    steps: int = 25,
    guidance_scale: float = 3.0,
) -> torch.Tensor:
    """DDIM with ``eta`` > 0 (Song et al. 2021, eq. 16: ``eta = 1`` is DDPM-like): the sampler
    of :func:`~latentlab.mini.models.sample_decoder` plus fresh noise at every step, drawn for
    row ``i`` from a CPU generator seeded ``seeds[i]`` (so a row never depends on its batch).
    ``eta = 0`` is exactly ``sample_decoder``. Returns images (b, 3, H, W) in [-1, 1]."""
    from .models import ddim_scheduler

    sched = ddim_scheduler(net.config, steps)
    # a stream of its own: seeded by the seed itself, the first draw would repeat a starting noise
    # made from the same seed (shared noise), and the first step's noise would not be fresh
    gens = [torch.Generator("cpu").manual_seed(_eta_stream(s)) for s in seeds]
    x = noise.clone()
    for t in sched.timesteps:
        out = _guided_eps(net, x, int(t), emb, guidance_scale)
        if eta > 0:
            var = torch.stack([torch.randn(x.shape[1:], generator=g, dtype=torch.float32) for g in gens]).to(x.device, x.dtype)
            step = sched.step(out, t, x, eta=float(eta), variance_noise=var, use_clipped_model_output=True).prev_sample
            if not torch.isfinite(step).all() and torch.isfinite(x).all() and torch.isfinite(out).all():
                # 1 - a_prev - sigma^2, >= 0 exactly, rounded below 0 in float32 (not a NaN of the inputs)
                step = _ddim_step_float64(sched, out, t, x, float(eta), var)  # (eta 1 at 5 steps: black frames)
            x = step
        else:
            x = sched.step(out, t, x, eta=0.0, use_clipped_model_output=True).prev_sample
    return x.clamp(-1, 1)


class MiniDecoder(Decoder):
    """The mini unCLIP decoder: a small pixel-space UNet conditioned on CLIP image embeddings.

    Args:
        net: a :class:`~latentlab.mini.models.MiniDecoderNet` (trained, or random for tests).
        resolution: side of the returned frames, 8 to 16384 (64 by default; native is 32). Where it is
            larger than the native ``net.config.image_size``, the ``upscaler`` (if any) doubles
            the native output first; what remains is resized with a Lanczos filter.
        upscaler: a :class:`~latentlab.mini.models.MiniUpscalerNet` whose ``in_size`` is the
            native size, or ``None`` (Lanczos only). Deterministic, so a frame still depends on
            its embedding and noise only.
        space: CLIP space name the embeddings must come from.
        device, dtype: where and in what precision the UNet runs (CPU/float32 by default).
        text_encoder: for a decoder that reads captions too (``net.config.text_dim > 0``): a
            callable ``list[str] -> (token states (b, L, text_dim), mask (b, L))``, such as
            :class:`CaptionStates` (``from_pretrained`` sets it to the mini CLIP's text tower).
        expert, expert_config: an optional layout expert (a ``MiniDecoderNet`` trained on the
            noisiest steps only, ``train --stage expert``) and its
            :class:`~latentlab.mini.models.ExpertConfig`: ``decode(..., captions=...)`` hands it
            the steps ``t >= expert_config.t_min``, where a picture's layout is decided (eDiff-I's
            ensemble of expert denoisers). Draws without captions (renders, variations,
            inversion) never use it, so their frames do not depend on it.

    ``decode(z (b, d), noise (b, 3, s, s))`` -> uint8 ``(b, resolution, resolution, 3)``;
    ``guidance_scale`` ``g`` gives ``uncond + g * (cond - uncond)`` for every ``g != 1``, so
    ``g = 0`` is the unconditional picture (the diffusers decoders treat any ``g <= 1`` as 1);
    deterministic (DDIM, eta=0) given the noise, and each frame independent of its batch up
    to float rounding (batched CPU kernels may move a few values by a level, a few levels at
    very low step counts; see :func:`latentlab.render.render`'s ``batch_size``).
    ``invert(images, z)`` runs the sampler backwards (:func:`ddim_invert`): the noise from
    which ``decode`` redraws the images. ``optimize(channels_last=True)`` puts the nets in the
    channels-last memory format (faster on the CPU, frames within a level or two); see
    :meth:`optimize`. A decoder that reads captions
    (``config.text_dim > 0``) also takes ``decode(z, noise, captions=[...])``, the captions
    the embeddings came from (through the prior), as DALL-E 2's decoder does; without
    captions it draws from the embeddings alone (renders, variations, inversion).

    >>> import torch
    >>> from latentlab.mini.models import DecoderConfig, MiniDecoderNet
    >>> cfg = DecoderConfig(block_out_channels=(8, 16, 16), embed_dim=16, norm_num_groups=4)
    >>> dec = MiniDecoder(MiniDecoderNet(cfg), resolution=32)
    >>> z = torch.nn.functional.normalize(torch.randn(2, 16), dim=-1)
    >>> dec.decode(z, torch.randn(2, *dec.noise_shape()), steps=2).shape
    (2, 32, 32, 3)
    """

    name = "mini"
    default_steps = 25
    default_guidance = 3.0
    default_batch_size = 16

    def max_steps(self) -> int:
        return int(self.net.config.num_train_timesteps)  # more had raised a raw diffusers ValueError

    def sampling_marks(self, steps: int) -> dict[str, Any]:
        # DDIM's timesteps changed for 61, 103, 121, ... steps (models.ddim_scheduler)
        from ..decoders.base import trailing_timesteps_marks

        return trailing_timesteps_marks(steps, self.net.config.num_train_timesteps)

    def __init__(
        self,
        net: MiniDecoderNet,
        *,
        resolution: int = 64,
        space: str | None = SPACE,
        name: str = "mini",
        upscaler: MiniUpscalerNet | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        text_encoder: Any = None,
        expert: MiniDecoderNet | None = None,
        expert_config: ExpertConfig | None = None,
    ):
        if not isinstance(net, MiniDecoderNet):
            raise ArgumentError(f"net must be a MiniDecoderNet, got {type(net).__name__}.")
        if expert is not None:
            check_expert(net, expert, expert_config)
        # any integer type (numpy's too, refused before); at most MAX_RESOLUTION (10**400 was taken,
        # then a raw OverflowError from PIL at the first decode)
        if isinstance(resolution, bool) or not isinstance(resolution, numbers.Integral) \
                or not 8 <= resolution <= MAX_RESOLUTION:  # fmt: skip
            raise ArgumentError(f"resolution must be an integer in [8, {MAX_RESOLUTION}] (pixels per side), "
                                f"got {shown(resolution)}.")  # fmt: skip
        resolution = int(resolution)
        if upscaler is not None:
            if not isinstance(upscaler, MiniUpscalerNet):
                raise ArgumentError(f"upscaler must be a MiniUpscalerNet or None, got {type(upscaler).__name__}.")
            if upscaler.config.in_size != net.config.image_size:
                raise ArgumentError(
                    f"upscaler.config.in_size is {upscaler.config.in_size} but the decoder draws "
                    f"{net.config.image_size} px images; pass the upscaler trained for this decoder, or upscaler=None."
                )
        self.device, self.dtype = _check_dtype_device(device, dtype)
        self.net = net.to(self.device, self.dtype).eval()
        self.upscaler = upscaler.to(self.device, self.dtype).eval() if upscaler is not None else None
        self.config = net.config
        self.dim = net.config.embed_dim
        self.resolution = resolution
        self.space = space
        self.name = name
        self.weights_sha256: str | None = None  # set by from_pretrained; recorded in render manifests
        self.other_upscale_sha256: str | None = None  # (from_pretrained: weights_sha256 with the other upscale setting)
        self.text_encoder = text_encoder
        self.expert = expert.to(self.device, self.dtype).eval() if expert is not None else None
        self.expert_config = expert_config if expert is not None else None
        self.expert_sha256: str | None = None  # set by from_pretrained when it loads an expert
        self.optimizations: dict[str, Any] = {"channels_last": False, "compile": False}  # set by optimize()

    @classmethod
    @torch.inference_mode(False)  # weights made under a caller's inference_mode() could not take part in refining
    def from_pretrained(
        cls,
        weights_dir: str | Path | None = None,
        *,
        upscale: bool | None = None,
        expert: bool | None = None,
        device: str | torch.device = "cpu",
        dtype=torch.float32,
        **kw,
    ) -> MiniDecoder:
        """Load the shipped decoder (``latentlab/mini/weights/`` unless ``weights_dir``).

        ``upscale``: ``None`` (default) uses the 2x upscaler ``mini_upscaler.safetensors`` when
        the folder has one and the frames are larger than the native size, ``True`` requires
        it, ``False`` resizes with Lanczos only.
        ``expert``: likewise for the layout expert ``mini_expert.safetensors`` (used by
        ``decode(..., captions=...)`` only); ``False`` leaves it out."""
        import hashlib

        if not (upscale is None or is_bool(upscale)):  # 1 == True: taken as one before
            raise ArgumentError(f"upscale must be None, True or False, got {upscale!r}.")
        if not (expert is None or is_bool(expert)):
            raise ArgumentError(f"expert must be None, True or False, got {expert!r}.")
        # numpy's bools as Python's (a spec's upscale takes them; np.False_ was refused as not False)
        upscale, expert = (None if v is None else bool(v) for v in (upscale, expert))
        ex_path = weights_path(EXPERT_FILE, weights_dir)
        if expert is True or (expert is None and ex_path.is_file()):
            try:
                kw["expert"], kw["expert_config"] = load_expert(ex_path)
            except ModelNotAvailableError as exc:
                if expert is True:
                    raise
                # (loaded because the folder has one, it stopped the decoder loading, naming no way around it)
                raise ModelNotAvailableError(f"{exc} Or load the decoder without its layout expert (only captioned "
                                             f"decodes use it): pass expert=False, or remove {ex_path.name} from that "
                                             "folder.") from None  # fmt: skip
        path = weights_path(DECODER_FILE, weights_dir)
        up_path = weights_path(UPSCALER_FILE, weights_dir)
        use_up = upscale is True or (upscale is None and up_path.is_file())
        net = load_module("decoder", path)
        res = kw.get("resolution", 64)
        if upscale is None and use_up and isinstance(res, numbers.Integral) and res <= net.config.image_size:
            use_up = False  # frames at or below the native size are never upscaled: not loaded, described or hashed
        upscaler = load_module("upscaler", up_path) if use_up else None
        why = expert_mismatch(net, kw["expert"]) if kw.get("expert") is not None else None
        if why is not None:  # a folder whose expert no longer fits its decoder: say how to go on
            raise ArgumentError(
                f"{ex_path} holds a layout expert that cannot work with the decoder {path} ({why}). Pass expert=False "
                f"to load the decoder without it, or remove {ex_path.name} and {ex_path.with_suffix('.json').name} "
                "from that folder (`python -m latentlab.mini.export ... --drop-expert` does when it exports such a decoder)."
            )
        if net.config.text_dim > 0 and "text_encoder" not in kw:
            kw["text_encoder"] = CaptionStates(weights_path(CLIP_FILE, weights_dir), device=device)
        dec = cls(net, upscaler=upscaler, device=device, dtype=dtype, **kw)
        # renders record which weights drew them, so a resumed render never mixes in frames
        # drawn by other (e.g. retrained) weights, or drawn with and without the upscaler
        # (only where frames are larger than the native size: at or below it the upscaler changes no
        # frame, and upscale=True was hashed and described unlike unset or False, which draw the same)
        h = hashlib.sha256(path.read_bytes())
        other = h.copy()  # the hash the other upscale setting records (a refusal tells the two apart by it)
        if dec._upscales():
            h.update(up_path.read_bytes())
        elif up_path.is_file() and dec.resolution > net.config.image_size:
            other.update(up_path.read_bytes())
        dec.weights_sha256 = h.hexdigest()[:16]
        dec.other_upscale_sha256 = other.hexdigest()[:16] if up_path.is_file() else None
        if dec.expert is not None:  # not in weights_sha256: renders (which record that) never use it
            dec.expert_sha256 = hashlib.sha256(ex_path.read_bytes()).hexdigest()[:16]
        return dec

    def resume_note(self, was: dict[str, Any], now: dict[str, Any]) -> str | None:
        """For a refusal to continue a render folder that these weights did not draw (``was``, the
        folder's record of its decoder; ``now``, :meth:`describe`; the same class and name, another
        ``weights_sha256``): the upscale setting that continues it, or the upscaler file the
        weights folder lacks now; ``""`` where the list of changed entries says enough (a record of
        an older format, another size as well); ``None`` where the weights themselves differ."""
        other = self.other_upscale_sha256
        drawn = "upscaler" in was and not str(was["upscaler"] or "none").startswith("none")  # ('none (Lanczos resize)')
        if other is None:  # (no upscaler file in the weights folder now)
            if not drawn:
                return None
            return (" It was drawn with the learned upscaler, whose file (mini_upscaler.safetensors) the weights folder "
                    "lacks now: with it back (and the same decoder weights) the render continues.")  # fmt: skip
        if was.get("weights_sha256") != other:
            return None
        # these weights, drawn with the other upscale setting
        changed = {k for k in set(was) | set(now) if was.get(k) != now.get(k)}
        if "upscaler" not in was or not changed <= {"upscaler", "weights_sha256"}:
            return ""
        if not drawn:
            return " It was drawn without the learned upscaler: upscale = false in the spec (CLI: --no-upscale) continues it."
        unset_loads_it = isinstance(self.resolution, int) and self.resolution > self.config.image_size
        cli = " (CLI: leave out --no-upscale)" if unset_loads_it else ""
        return f" It was drawn with the learned upscaler: upscale = true in the spec{cli} continues it."

    def noise_shape(self) -> tuple[int, ...]:
        s = self.config.image_size
        return (3, s, s)

    def _upscales(self) -> bool:
        """Whether the learned upscaler draws this decoder's frames: it has one, and the frames are
        larger than the native size (at or below it, frames never pass through it)."""
        return self.upscaler is not None and self.resolution > self.config.image_size

    @property
    def reads_captions(self) -> bool:
        """Whether :meth:`decode` takes ``captions``: a net that reads them
        (``config.text_dim > 0``) and a ``text_encoder`` to encode them."""
        return self.config.text_dim > 0 and self.text_encoder is not None

    def _no_captions_reason(self) -> str:
        if self.config.text_dim <= 0:
            return "captions: this decoder reads no captions (its config.text_dim is 0); leave captions out."
        return ("captions: this decoder has no text_encoder; pass text_encoder=CaptionStates(<mini CLIP file>) when "
                "building it, or load it with MiniDecoder.from_pretrained.")  # fmt: skip

    def _decode_captioned(self, embeddings: torch.Tensor, noise: torch.Tensor, captions: list[str], *,
                          seeds: list[int], steps: int, guidance_scale: float) -> np.ndarray:  # fmt: skip
        """Each row read with its caption (the caption tokens of a decoder with
        ``config.text_dim > 0``; the layout expert, when loaded, takes the noisiest steps)."""
        ours = isinstance(self.text_encoder, CaptionStates)  # (its cut warning names decode's caller)
        text = self.text_encoder(captions, stacklevel=4) if ours else self.text_encoder(captions)
        return self._decode(embeddings, noise, seeds=seeds, steps=steps, guidance_scale=guidance_scale, text=text)

    def _decode(
        self,
        embeddings: torch.Tensor,
        noise: torch.Tensor,
        *,
        seeds: Sequence[int],
        steps: int,
        guidance_scale: float,
        text: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> np.ndarray:
        z = embeddings.to(self.device, self.dtype)
        x = noise.to(self.device, self.dtype)
        states = mask = None
        if text is not None:  # (token states, mask) of one caption per row
            states, mask = text[0].to(self.device, self.dtype), text[1].to(self.device)
        with torch.inference_mode():
            img = sample_decoder(self.net, z, x, steps=steps, guidance_scale=guidance_scale, text=states, text_mask=mask,
                                 **({"expert": self.expert, "expert_config": self.expert_config} if text is not None else {}))
        refuse_nonfinite_pixels(img, self, guidance_scale)  # (cast to uint8, NaN drew black frames)
        return self._to_frames(img)

    def decode_eta(
        self,
        embeddings: torch.Tensor,
        noise: torch.Tensor,
        *,
        eta: float,
        seeds: Sequence[int] | None = None,
        steps: int | None = None,
        guidance_scale: float | None = None,
    ) -> np.ndarray:
        """Like :meth:`decode`, with DDIM ``eta`` > 0: fresh noise at every step (row ``i``
        seeded ``seeds[i]``), so one starting noise gives different pictures for different
        seeds, all near the ``eta = 0`` decode for small ``eta``. Used for variations
        around an inverted image (:func:`latentlab.variations`)."""
        from ..render import check_eta

        check_eta(eta, self)  # numpy floats too
        z, noise, seeds, steps, guidance = self._checked_batch(embeddings, noise, seeds, steps, guidance_scale)
        with torch.inference_mode():
            img = sample_decoder_eta(
                self.net, z.to(self.device, self.dtype), noise.to(self.device, self.dtype), seeds=seeds, eta=float(eta),
                steps=steps, guidance_scale=guidance,
            )  # fmt: skip
        refuse_nonfinite_pixels(img, self, guidance)  # (cast to uint8, NaN drew black frames)
        return self._to_frames(img)

    def _to_frames(self, img: torch.Tensor) -> np.ndarray:
        """Images (b,3,s,s) in [-1, 1] at the native size -> uint8 frames at ``resolution``."""
        if self.upscaler is not None and self.resolution > img.shape[-1]:
            with torch.inference_mode():
                img = self.upscaler(img.to(self.device, self.dtype))
            self._refuse_nonfinite_upscale(img)  # (the clamp keeps NaN, and the cast drew it black)
            img = img.clamp(-1, 1)
        u8 = ((img.float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        if u8.shape[1] == self.resolution:
            return np.ascontiguousarray(u8)
        from PIL import Image

        r = self.resolution
        return np.stack([np.asarray(Image.fromarray(f).resize((r, r), Image.Resampling.LANCZOS)) for f in u8])

    def _refuse_nonfinite_upscale(self, img: torch.Tensor) -> None:
        """Refuse the learned upscaler's output ``(b, 3, 2s, 2s)`` where it holds NaN or infinite
        values (one check per batch): from the sampler's finite pixels, only an overflow (a half
        precision) or damaged weights draw them, and NaN came out as black frames."""
        bad = nonfinite_rows(img)
        if not bad:
            return
        half = "use dtype=torch.float32, or " if self.dtype in (torch.float16, torch.bfloat16) else ""
        raise ArgumentError(
            f"decoder {type(self).__name__} ({self.name!r}): its learned upscaler ({UPSCALER_FILE}) drew NaN or "
            f"infinite pixels (rows {bad[:8]}) from finite images with dtype={str(self.dtype).removeprefix('torch.')}: "
            "it overflowed or its weights are damaged, and the frames would have come out black. "
            f"Fix: {half}pass upscale=False (CLI: --no-upscale), or re-export the upscaler's weights."
        )

    inversion_iterations = 1
    """Fixed-point iterations per step of :func:`ddim_invert` (0: plain DDIM inversion). One
    is the measured best on the shipped weights: more iterations oscillate rather than
    converge where the clamp switches on and off (docs/quality.md)."""

    def _native(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (b, H, W, 3) -> (b, 3, s, s) in [-1, 1] at the native size, the counterpart of
        what ``decode`` applies: with the upscaler (frames larger than the native size) a bicubic
        shrink (what it learned to undo), without it area resampling (the counterpart of the
        Lanczos upsampling). (Square images: :meth:`Decoder.invert` crops a picture's centre
        square first.)"""
        from PIL import Image

        s = self.config.image_size
        if images.shape[1:3] != (s, s):
            f = Image.Resampling.BICUBIC if self._upscales() else Image.Resampling.BOX
            images = np.stack([np.asarray(Image.fromarray(im).resize((s, s), f)) for im in images])
        # a copy (small): torch.from_numpy warned of a read-only array, e.g. np.asarray(pil_image)
        return torch.tensor(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1

    def _inversion_settings(self) -> tuple[int, float]:
        """``inversion_iterations`` (a whole number >= 0; 1.0 is 1, as Karlo takes it) and
        ``refine_lr`` as set on this decoder, checked where they are read: 2.5 iterations ran 2
        (and -1 none, under another cache key), and a negative or NaN ``refine_lr`` was a raw
        ValueError from Adam after the inversion had run."""
        it = self.inversion_iterations
        if not is_finite_real(it) or it < 0 or int(it) != it:
            raise ArgumentError(f"inversion_iterations must be a whole number >= 0 (fixed-point iterations per step "
                                f"of the inversion; 0: plain DDIM inversion), got {shown(it)}.")  # fmt: skip
        return int(it), check_number(self.refine_lr, "refine_lr", minimum=0)

    def _invert(self, images: np.ndarray, embeddings: torch.Tensor, *, steps: int, guidance_scale: float) -> torch.Tensor:
        iterations, _ = self._inversion_settings()
        x = self._native(images).to(self.device, self.dtype)
        z = embeddings.to(self.device, self.dtype)
        with torch.inference_mode():
            noise = ddim_invert(self.net, z, x, steps=steps, guidance_scale=guidance_scale, iterations=iterations)
        return noise.float().cpu().clone()

    def inversion_marks(self, refine: int) -> dict[str, Any]:
        # set on a decoder, they change its inverted noise (a cache keyed without them was reused)
        marks: dict[str, Any] = {}
        iterations, lr = self._inversion_settings()
        if iterations != MiniDecoder.inversion_iterations:
            marks["inversion_iterations"] = iterations
        if refine and lr != MiniDecoder.refine_lr:  # (unrefined noise does not use it)
            marks["refine_lr"] = lr
        return marks

    default_inversion_refine = 20
    refine_lr = 0.05
    """Adam's learning rate in :meth:`_refine`, in units of the noise (whose entries have
    standard deviation near 1). On the third session's weights 0.05 with 20 steps took the
    quality benchmark's inputs from a mean redraw cosine of 0.960 to 0.983 (30 steps: 0.986;
    0.15 overshot), on the seventh session's (shipped) from 0.941 to 0.981 (docs/quality.md)."""

    def _check_refinable(self) -> None:
        super()._check_refinable()
        if any(p.is_inference() for p in self.net.parameters()):  # (a raw "Inference tensors cannot be saved for backward")
            raise ArgumentError(
                "refine needs gradients through the decoder's net, whose weights were made under torch.inference_mode() "
                "(inference tensors). Fix: build the decoder outside inference_mode() (create_decoder, "
                "MiniDecoder.from_pretrained and optimize() do, wherever they are called), or pass refine=0."
            )

    @torch.inference_mode(False)  # refining needs gradients, also where the caller runs under inference_mode()
    def _refine(
        self,
        images: np.ndarray,
        embeddings: torch.Tensor,
        noise: torch.Tensor,
        *,
        iterations: int,
        steps: int,
        guidance_scale: float,
        on_step: Any = None,
    ) -> torch.Tensor:
        target = self._native(images).to(self.device, torch.float32)
        z = embeddings.to(self.device, self.dtype)
        x = noise.to(self.device, torch.float32).clone().requires_grad_(True)
        shape = (-1, *[1] * (x.dim() - 1))
        radius = x.detach().flatten(1).norm(dim=1).view(shape)  # each noise keeps its length
        opt = torch.optim.Adam([x], lr=self._inversion_settings()[1])
        best = noise.to(self.device, torch.float32).clone()
        # float32 whatever torch's default dtype (float64 failed the bookkeeping with a raw "Index put requires ...")
        best_err = torch.full((len(x),), float("inf"), device=self.device, dtype=torch.float32)
        self._check_refinable()  # (invert checked it before the first image's inversion)
        with _weights_frozen(self.net):  # (shared with the refines of other threads using this net)
            for i in range(iterations + 1):
                with torch.enable_grad():
                    img = sample_decoder(self.net, z, x.to(self.dtype), steps=steps, guidance_scale=guidance_scale)
                    err = (img.float() - target).square().flatten(1).mean(1)  # per image: rows stay independent
                    loss = err.sum()  # (summed under a caller's no_grad(), it had no gradient: a raw RuntimeError)
                with torch.no_grad():
                    better = err < best_err
                    best[better], best_err[better] = x.detach()[better], err.detach()[better]
                if i == iterations:
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    x.mul_(radius / x.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape))
                if on_step is not None:
                    on_step()
        return best.cpu()

    @torch.inference_mode(False)  # (weights converted under a caller's inference_mode() could no longer refine)
    def optimize(self, *, channels_last: bool = True, compile: bool = False,
                 compile_mode: str | None = None) -> MiniDecoder:  # fmt: skip
        """Apply speed levers in place and return ``self``, as the diffusers decoders'
        ``optimize()`` does (:func:`latentlab.decoders.unclip.optimize_pipeline`).

        ``channels_last``: the UNet, the layout expert and the upscaler (all convolutional) in
        the ``torch.channels_last`` memory format, in which the CPU convolutions run faster
        (docs/performance.md); the frames stay within a level or two of the default layout's
        (not bit for bit: the convolutions add in another order). ``compile``:
        ``torch.compile`` of the UNet's and the expert's forward (``mode=compile_mode``), in
        place (the nets keep their class and weights); the first calls of each batch shape
        compile (a minute on a CPU even for a tiny net), so warm it up before timing.
        ``False`` leaves a lever as it is (it does not undo an earlier call), and the nets are
        compiled once. What was applied is recorded in ``optimizations`` and named by
        :meth:`describe`, so a render folder drawn with other levers is not resumed. Nets
        shared with other decoders change for them too.

        >>> dec = create_decoder("mini").optimize(channels_last=True)    # doctest: +SKIP
        """
        for arg, value in (("channels_last", channels_last), ("compile", compile)):
            if not isinstance(value, bool):
                raise ArgumentError(f"{arg} must be True or False, got {value!r}.")
        if compile_mode is not None and not isinstance(compile_mode, str):
            raise ArgumentError(f"compile_mode must be a torch.compile mode name or None, got {compile_mode!r}.")
        unets = [m for m in (self.net, self.expert) if m is not None]
        if channels_last:
            for module in [*unets, *([self.upscaler] if self.upscaler is not None else [])]:
                # weights made under inference_mode() (a net built by hand there) are converted in it, as before:
                # outside it every later decode raised a raw "Inference tensors do not track version counter"
                with torch.inference_mode(any(p.is_inference() for p in module.parameters())):
                    module.to(memory_format=torch.channels_last)
            self.optimizations["channels_last"] = True
        if compile and not self.optimizations["compile"]:  # compile once
            for module in unets:
                module.compile(mode=compile_mode)
            self.optimizations.update(compile=True, compile_mode=compile_mode or "default")
        return self

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(native_resolution=self.config.image_size, sampler="DDIM eta=0, epsilon re-derived from the clamped x0",
                 default_steps=self.default_steps, default_guidance=self.default_guidance,
                 upscaler="learned 2x (mini_upscaler)" if self._upscales() else "none (Lanczos resize)",
                 weights_sha256=self.weights_sha256)  # fmt: skip
        if self.config.text_dim > 0:  # renders draw from embeddings alone; decode(captions=...) reads captions too
            d["reads_captions"] = True
        # where it runs changes the frames (bf16 by many levels): named when not the default CPU
        # float32, so a render folder of another precision is never resumed (and older ones still are)
        if self.device.type != "cpu":
            d["device"] = str(self.device)
        if self.dtype != torch.float32:
            d["dtype"] = str(self.dtype).removeprefix("torch.")
        # likewise the speed levers (frames a level or two off): named only once optimize() applied one
        if self.optimizations["channels_last"] or self.optimizations["compile"]:
            d["optimizations"] = dict(self.optimizations)
        return d


class CaptionStates:
    """Captions -> the mini CLIP text tower's token states, what a decoder with
    ``config.text_dim > 0`` reads (:func:`~latentlab.mini.models.text_token_states`).
    The CLIP is loaded from ``clip_file`` on first use.

    ``CaptionStates(file)(["a red circle"])`` -> ``(states (1, L, width) float32, mask (1, L) bool)``.
    A caption longer than the text tower's context (32 tokens) is cut to fit, with one warning per
    call naming how many were cut, as :meth:`~latentlab.Encoder.encode_text` says it.
    """

    def __init__(self, clip_file: str | Path, *, device: str | torch.device = "cpu"):
        if isinstance(clip_file, bytes) or not isinstance(clip_file, (str, os.PathLike)):  # (5: a raw TypeError)
            raise ArgumentError(f"clip_file must be a file path (a str or pathlib.Path), got {clip_file!r}.")
        self.clip_file = user_path(clip_file)  # "~/mini/mini_clip.safetensors" as a shell reads it, as load_module reads its path
        # checked here: a device torch cannot parse ("CPU") failed at the first captioned decode, inside open_clip
        self.device = _check_dtype_device(device, None)[0]
        self._clip: tuple[Any, Any] | None = None

    def _load_clip(self) -> tuple[Any, Any]:
        from .models import _cause, _damaged, create_clip

        fix = ("pass the folder written by `python -m latentlab.mini.export --to DIR` (it holds the CLIP "
               "the decoder was trained with), or reinstall latentlab for the shipped one")  # fmt: skip
        if not self.clip_file.is_file():  # (open_clip raised a raw RuntimeError "not a known tag")
            raise ModelNotAvailableError(f"the mini CLIP {str(self.clip_file)!r}, whose text tower reads the "
                                         f"captions, is not there; {fix}.")  # fmt: skip
        try:
            with torch.random.fork_rng(devices=[]):  # built at the first captioned decode: leave the user's torch RNG
                model, _, tokenizer = create_clip(self.clip_file, device=self.device)  # (its weights replace the init)
        except Exception as exc:  # a raw SafetensorError / state dict mismatch, naming no file
            if not _damaged(exc):
                raise
            raise ModelNotAvailableError(f"the mini CLIP {str(self.clip_file)!r} cannot be read: {_cause(exc)}. "
                                         f"It is incomplete, damaged or not the mini CLIP; {fix}.") from None  # fmt: skip
        return model, tokenizer

    def __call__(self, captions: list[str], *, stacklevel: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        """The token states and mask of ``captions``. ``stacklevel``: the frame the warning of a cut
        caption names, as :func:`warnings.warn` counts from this call (2: its caller; the mini
        decoder passes 4, naming the caller of ``decode``)."""
        from .models import text_token_states

        if self._clip is None:
            # loaded once, as create_* load (one model at a time): two threads' first captioned decodes each
            # built the CLIP, at once through open_clip's registry
            with _BUILDING:
                if self._clip is None:
                    self._clip = self._load_clip()
        model, tokenizer = self._clip
        from ..encoders import _warn_truncated

        # (a caption past the text tower's context was cut silently, as encode_text says it; a fixed
        # stacklevel=5 named decode's caller, and for a direct call a frame above the caller, or "sys:1")
        _warn_truncated(tokenizer, list(captions), stacklevel=stacklevel + 1)
        with torch.inference_mode():
            states, mask = text_token_states(model, tokenizer(captions).to(self.device))
        return states.float(), mask


class MiniPrior(Prior):
    """The mini diffusion prior: CLIP text embeddings -> CLIP image embeddings.

    ``prior(text (n, d), seed=0, num_samples=k)`` -> ``(n*k, d)`` unit-norm, tagged with the
    space; rows ``i*k .. i*k+k-1`` are the samples for text ``i``. Sample ``j`` of every text
    starts from noise seeded by ``(seed, j)`` (a CPU generator seeded from
    ``np.random.SeedSequence([seed % 2**64, j])``), so results do not depend on the batch, up
    to float rounding, and different ``seed`` / ``j`` give different embeddings.

    >>> import torch
    >>> from latentlab.mini.models import PriorConfig, MiniPriorNet
    >>> prior = MiniPrior(MiniPriorNet(PriorConfig(embed_dim=16, width=32, depth=1)), steps=2)
    >>> prior(torch.nn.functional.normalize(torch.randn(2, 16), dim=-1), num_samples=3).shape
    torch.Size([6, 16])
    """

    def __init__(
        self,
        net: MiniPriorNet,
        *,
        space: str | None = SPACE,
        name: str = "mini",
        steps: int = 25,
        guidance_scale: float = 2.0,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        if not isinstance(net, MiniPriorNet):
            raise ArgumentError(f"net must be a MiniPriorNet, got {type(net).__name__}.")
        super().__init__(name=name, space=space, dim=net.config.embed_dim)
        self.device, self.dtype = _check_dtype_device(device, dtype)
        self.net = net.to(self.device, self.dtype).eval()
        # checked here, not at the first call: steps=0 divided by zero there, -3 drew nothing
        self.steps = check_int(steps, "steps", minimum=1)
        if self.steps > net.config.num_train_timesteps:
            raise ArgumentError(f"steps must be <= {net.config.num_train_timesteps} (the prior's training timesteps), "
                                f"got {self.steps}.")  # fmt: skip
        self.guidance_scale = check_number(guidance_scale, "guidance_scale", minimum=0)
        self.weights_sha256: str | None = None  # set by from_pretrained; recorded in generate.json

    @classmethod
    def from_pretrained(
        cls, weights_dir: str | Path | None = None, *, device: str | torch.device = "cpu", dtype=torch.float32, **kw
    ) -> MiniPrior:
        """Load the shipped prior (``latentlab/mini/weights/`` unless ``weights_dir``)."""
        import hashlib

        path = weights_path(PRIOR_FILE, weights_dir)
        net = load_module("prior", path)
        prior = cls(net, device=device, dtype=dtype, **kw)
        # generate.json records which weights drew its pictures: a retrained prior is another generate
        prior.weights_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        return prior

    def _sample(self, text_embeddings: torch.Tensor, *, seed: int, num_samples: int) -> torch.Tensor:
        t = text_embeddings
        n, k = t.shape[0], num_samples
        # as set on the prior (checked when built): "2" was a raw TypeError, NaN "returned rows not finite"
        guidance = check_number(self.guidance_scale, "guidance_scale", minimum=0)
        noise = torch.empty(k, self.dim, dtype=torch.float32)  # float32 whatever torch's default dtype: the same samples
        for j in range(k):
            # seed mod 2**64, not 2**32: seeds 0 and 2**32 must not draw the same samples (0 <= seed < 2**32 unchanged)
            state = int(np.random.SeedSequence([int(seed) % 2**64, j]).generate_state(1, np.uint64)[0])
            g = torch.Generator().manual_seed(state % (2**63))
            noise[j] = torch.randn(self.dim, generator=g, dtype=torch.float32)
        text_rep = t.repeat_interleave(k, dim=0)
        noise_rep = noise.repeat(n, 1)
        with torch.inference_mode():
            z = sample_prior(
                self.net,
                text_rep.to(self.device, self.dtype),
                noise_rep.to(self.device, self.dtype),
                steps=self.steps,
                guidance_scale=guidance,
            )
        # (refused here, by name and guidance_scale: the base class refused NaN rows as ones the prior "returned")
        refuse_nonfinite_pixels(z, self, guidance, **PRIOR_OVERFLOW)
        return torch.nn.functional.normalize(z.float().cpu(), dim=-1).clone()

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(kind="diffusion prior (residual MLP denoiser, DDIM eta=0)", steps=self.steps,
                 guidance_scale=self.guidance_scale)  # fmt: skip
        if self.weights_sha256 is not None:  # (a prior built from a net in memory has none)
            d["weights_sha256"] = self.weights_sha256
        # where it runs changes the samples (bf16 by about 0.003), as for MiniDecoder.describe: named when
        # not the default CPU float32, so a generate folder of another precision is not resumed (older ones are)
        if self.device.type != "cpu":
            d["device"] = str(self.device)
        if self.dtype != torch.float32:
            d["dtype"] = str(self.dtype).removeprefix("torch.")
        return d


def _check_preset(obj: Any, preset: Any, what: str) -> None:
    dim = getattr(preset, "dim", None)
    if dim is not None and dim != obj.dim:
        raise ArgumentError(
            f"preset {getattr(preset, 'name', preset)!r} says dim={dim} but the mini {what} weights have {obj.dim}; "
            "re-export the weights or fix the preset."
        )


def _weights_folder(weights: str | Path | None, weights_dir: str | Path | None) -> str | Path | None:
    """The builders' ``weights=`` folder; ``weights_dir=`` (``from_pretrained``'s name for it)
    is taken as the same option, and both at once only when they agree."""
    if weights_dir is None:
        return weights
    if weights is not None and weights_path(".", weights).resolve() != weights_path(".", weights_dir).resolve():
        raise ArgumentError(f"weights={str(weights)!r} and weights_dir={str(weights_dir)!r} name two folders; give "
                            "the weights folder once, as weights=DIR.")  # fmt: skip
    return weights_dir


@register_decoder_builder("mini")
def build_mini_decoder(
    preset: Any,
    *,
    weights: str | Path | None = None,
    weights_dir: str | Path | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    **kwargs: Any,
) -> MiniDecoder:
    """Preset builder: the shipped :class:`MiniDecoder` (``weights`` overrides the folder, e.g.
    an ``export --to`` folder; ``weights_dir`` is taken as the same option)."""
    weights = _weights_folder(weights, weights_dir)
    res = getattr(preset, "resolution", 64)
    kw = {"resolution": int(res), "space": getattr(preset, "space", SPACE), "name": getattr(preset, "name", "mini")}
    kw.update(kwargs)
    dec = MiniDecoder.from_pretrained(weights, device=device, dtype=dtype, **kw)
    _check_preset(dec, preset, "decoder")
    return dec


_DECODER_CLASSES[build_mini_decoder] = MiniDecoder


@register_prior_builder("mini")
def build_mini_prior(
    preset: Any,
    *,
    weights: str | Path | None = None,
    weights_dir: str | Path | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    **kwargs: Any,
) -> MiniPrior:
    """Preset builder: the shipped :class:`MiniPrior` (``weights`` overrides the folder;
    ``weights_dir`` is taken as the same option)."""
    weights = _weights_folder(weights, weights_dir)
    kw = {"space": getattr(preset, "space", SPACE), "name": getattr(preset, "name", "mini")}
    kw.update(kwargs)
    prior = MiniPrior.from_pretrained(weights, device=device, dtype=dtype, **kw)
    _check_preset(prior, preset, "prior")
    return prior
