"""The networks of the embedded ``mini`` unCLIP stack and how to build, save and load them.

- CLIP: a plain open_clip model described by ``configs/mini_clip.json`` (loaded through
  open_clip's own ``create_model_and_transforms``, exactly like a downloaded model).
- Decoder: a pixel-space ``diffusers.UNet2DConditionModel`` conditioned on the CLIP image
  embedding the unCLIP way: projected into the timestep embedding
  (``class_embed_type="projection"``) and as a few extra context tokens for cross-attention.
  A learned null embedding stands in for "no embedding" (classifier-free guidance).
- Prior: a small diffusion model over the embedding (a residual MLP denoiser that predicts
  the clean image embedding from a noisy one, the timestep and the text embedding).

>>> import torch
>>> from latentlab.mini.models import DecoderConfig, MiniDecoderNet
>>> net = MiniDecoderNet(DecoderConfig(block_out_channels=(8, 16, 16), embed_dim=16, norm_num_groups=4))
>>> net(torch.zeros(1, 3, 32, 32), torch.tensor([10]), torch.zeros(1, 16)).shape
torch.Size([1, 3, 32, 32])
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ArgumentError, ModelNotAvailableError, check_int, user_path

__all__ = [
    "MINI_DIR",
    "WEIGHTS_DIR",
    "CLIP_CONFIG",
    "CLIP_MODEL_NAME",
    "SPACE",
    "DecoderConfig",
    "ExpertConfig",
    "PriorConfig",
    "UpscalerConfig",
    "MiniDecoderNet",
    "MiniPriorNet",
    "MiniUpscalerNet",
    "make_scheduler",
    "ddim_scheduler",
    "sample_decoder",
    "sample_prior",
    "register_clip_config",
    "create_clip",
    "text_token_states",
    "save_module",
    "load_module",
    "save_expert",
    "load_expert",
    "check_expert",
    "expert_mismatch",
    "weights_path",
]

MINI_DIR = Path(__file__).resolve().parent
WEIGHTS_DIR = MINI_DIR / "weights"
CLIP_CONFIG = MINI_DIR / "configs" / "mini_clip.json"
CLIP_MODEL_NAME = "mini_clip"  # open_clip names a config by its file stem
SPACE = "latentlab-mini"

TRAIN_HINT = (
    "Train and export them with `python -m latentlab.mini.train --stage all --config cpu --out .cache/mini/run` "
    "then `python -m latentlab.mini.export --from .cache/mini/run --to latentlab/mini/weights` (see docs/mini.md)."
)


# -- configs ------------------------------------------------------------------------------


class _Config:
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        """The config a dict (a .json file's) describes: fields it leaves out take their defaults;
        an unknown field, or a value not of the field's type (a whole number >= 1, or >= 0 where 0
        turns it off; a known noise schedule), is an :class:`ArgumentError` naming it."""
        if not isinstance(d, dict):
            raise ArgumentError(f"a {cls.__name__} must be a JSON object of its fields, got {type(d).__name__}.")
        defaults = {f.name: f.default for f in fields(cls)}  # type: ignore[arg-type]
        unknown = set(d) - set(defaults)
        if unknown:
            raise ArgumentError(f"unknown {cls.__name__} fields {sorted(map(str, unknown))}; known: {sorted(defaults)}.")
        return cls(**{k: _field_value(cls.__name__, k, defaults[k], v) for k, v in d.items()})


#: whole-number config fields that may be 0 (every other one must be >= 1), here and in training's --set
MAY_BE_ZERO = frozenset({"text_dim", "text_layers", "t_min"})
#: whole-number config fields with an upper bound (a schedule of 10**9 timesteps would hang building its tables)
MAXIMUM = {"num_train_timesteps": 100_000}
#: the noise schedule's string fields and the values the diffusers schedulers take
SCHEDULE_NAMES = {"beta_schedule": ("linear", "scaled_linear", "squaredcos_cap_v2"),
                   "prediction_type": ("epsilon", "sample", "v_prediction")}  # fmt: skip


def _field_value(config: str, name: str, default: Any, v: Any) -> Any:
    """``v`` checked against the type of the field's ``default`` (a list read from JSON as a tuple)."""

    def whole(x: Any, minimum: int) -> bool:
        return isinstance(x, int) and not isinstance(x, bool) and x >= minimum

    if isinstance(default, bool):
        ok = isinstance(v, bool)
        want = "true or false"
    elif isinstance(default, int):
        ok = whole(v, 0 if name in MAY_BE_ZERO else 1) and v <= MAXIMUM.get(name, v)
        want = f"a whole number >= {0 if name in MAY_BE_ZERO else 1}"
        want += f" and <= {MAXIMUM[name]}" if name in MAXIMUM else ""
    elif isinstance(default, tuple):
        ok = isinstance(v, (list, tuple)) and len(v) > 0 and all(whole(x, 1) for x in v)
        want = "a list of whole numbers >= 1"
        v = tuple(v) if ok else v
    elif isinstance(default, str):
        known = SCHEDULE_NAMES.get(name)
        ok = isinstance(v, str) and (known is None or v in known)
        want = f"one of {', '.join(map(repr, known))}" if known else "a string"
    else:  # (a field of another type: none yet)
        return v
    if not ok:
        raise ArgumentError(f"{config}.{name} must be {want}, got {v!r}.")
    return v


@dataclass(frozen=True)
class DecoderConfig(_Config):
    """Architecture and noise schedule of the pixel-space unCLIP decoder."""

    image_size: int = 32  # native side in pixels (frames are resized to the preset resolution)
    embed_dim: int = 128  # CLIP embedding size d
    block_out_channels: tuple[int, ...] = (32, 64, 128)
    layers_per_block: int = 1
    attention_heads: int = 4  # attention only at the lowest resolution (and in the mid block)
    cross_attention_dim: int = 64
    context_tokens: int = 4  # the embedding becomes this many cross-attention tokens
    # > 0: the decoder also reads the caption, as DALL-E 2's decoder does: the mini CLIP text
    # tower's token states (this wide) are projected into further cross-attention tokens. A
    # caption is optional at sampling time (without one, only the embedding's tokens are
    # attended to); 0: the embedding alone (every decoder before the fifteenth session)
    text_dim: int = 0
    # True: two more input channels hold each pixel's x and y (CoordConv, Liu et al. 2018), so the
    # UNet, whose convolutions and attention otherwise learn where a pixel is only from the zero
    # padding, can place "a red circle above a blue square" in the top half; False: the image alone
    # (every decoder before the eighteenth session). Warm-started, neither this nor text_layers has
    # made a decoder place objects (16,000 CPU steps with both did not); the shipped layout expert
    # (mini_expert, trained from scratch on the noisiest steps) has both, and places them (docs/mini.md)
    coords: bool = False
    # > 0 (with text_dim > 0): this many bidirectional transformer layers of the decoder's own
    # run over the projected caption tokens before cross-attention, as GLIDE's (and so DALL-E 2's)
    # decoder encodes its caption with a transformer trained with it; the frozen CLIP text tower is
    # causal, so the state of "red" in "a red circle below a blue square" cannot know it is the
    # lower object. Residual branches start at zero (a warm start computes what it did)
    text_layers: int = 0
    # True (with text_dim > 0): the caption's last token state (its end-of-text token, which has
    # read the whole caption, "below" included) is projected and added to the embedding the UNet
    # adds to its timestep embedding, so the caption also scales and shifts every residual
    # block, as GLIDE adds its caption's last token to the timestep embedding; with coords, a
    # block can then switch a feature on in one half of the picture for one relation. The
    # projection starts at zero (a warm start computes what it did)
    text_pooled: bool = False
    norm_num_groups: int = 8
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "epsilon"


@dataclass(frozen=True)
class PriorConfig(_Config):
    """Architecture and noise schedule of the diffusion prior (text embedding -> image embedding)."""

    embed_dim: int = 128
    width: int = 512
    depth: int = 4
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "sample"  # predicts the clean embedding, as DALL-E 2's prior does


@dataclass(frozen=True)
class UpscalerConfig(_Config):
    """Architecture of the 2x upscaler: a small residual UNet that adds detail to the
    bicubic-upsampled decoder output (deterministic: no noise, no embedding)."""

    in_size: int = 32  # side of the images it upsamples (the decoder's image_size)
    channels: tuple[int, ...] = (48, 64, 96)  # widths at 1, 1/2, 1/4 of the input side
    blocks: int = 1  # residual blocks per level on the way down and on the way up
    norm_num_groups: int = 8


# -- networks -----------------------------------------------------------------------------


class MiniDecoderNet(nn.Module):
    """UNet2DConditionModel + the embedding-to-context projection + a learned null embedding.

    ``forward(x (b,3,H,W), t (b,), emb (b,d) unit-norm, drop (b,) bool or None)`` -> model
    output (b,3,H,W). Rows with ``drop`` True use the null embedding instead of ``emb``.

    With ``config.text_dim > 0`` it also takes ``text`` (b, L, text_dim), the caption's token
    states (:func:`text_token_states`), and ``text_mask`` (b, L) bool, the tokens to attend to;
    a row whose mask is all False reads no caption, exactly as if ``text`` were not given
    (masked tokens get no attention weight), which is how the caption is dropped in training
    and in the unconditional half of classifier-free guidance.
    """

    def __init__(self, config: DecoderConfig):
        super().__init__()
        from diffusers import UNet2DConditionModel

        self.config = config
        n = len(config.block_out_channels)
        down = ["DownBlock2D"] * (n - 1) + ["CrossAttnDownBlock2D"]
        up = ["CrossAttnUpBlock2D"] + ["UpBlock2D"] * (n - 1)
        self.unet = UNet2DConditionModel(
            sample_size=config.image_size,
            in_channels=5 if config.coords else 3,
            out_channels=3,
            down_block_types=tuple(down),
            up_block_types=tuple(up),
            block_out_channels=tuple(config.block_out_channels),
            layers_per_block=config.layers_per_block,
            norm_num_groups=config.norm_num_groups,
            cross_attention_dim=config.cross_attention_dim,
            attention_head_dim=config.attention_heads,  # diffusers' (legacy) name for the number of heads
            class_embed_type="projection",
            projection_class_embeddings_input_dim=config.embed_dim,
        )
        self.to_context = nn.Linear(config.embed_dim, config.context_tokens * config.cross_attention_dim)
        self.null_embedding = nn.Parameter(torch.zeros(config.embed_dim))
        if config.text_dim > 0:
            self.text_proj = nn.Sequential(nn.LayerNorm(config.text_dim), nn.Linear(config.text_dim, config.cross_attention_dim))
        if config.text_layers > 0:
            if config.text_dim <= 0:
                raise ArgumentError("text_layers > 0 needs a decoder that reads captions (text_dim > 0).")
            w = config.cross_attention_dim
            if w % config.attention_heads:
                raise ArgumentError(f"text_layers > 0 needs cross_attention_dim ({w}) divisible by attention_heads "
                                    f"({config.attention_heads}): its layers split that width among the heads.")  # fmt: skip
            layer = nn.TransformerEncoderLayer(w, config.attention_heads, 4 * w, dropout=0.0, activation="gelu",
                                               batch_first=True, norm_first=True)  # fmt: skip
            self.text_encoder = nn.TransformerEncoder(layer, config.text_layers, enable_nested_tensor=False)
            for blk in self.text_encoder.layers:
                for lin in (blk.self_attn.out_proj, blk.linear2):
                    nn.init.zeros_(lin.weight)
                    nn.init.zeros_(lin.bias)

        if config.text_pooled:
            if config.text_dim <= 0:
                raise ArgumentError("text_pooled needs a decoder that reads captions (text_dim > 0).")
            self.text_pool_proj = nn.Sequential(nn.LayerNorm(config.text_dim), nn.Linear(config.text_dim, config.embed_dim))
            nn.init.zeros_(self.text_pool_proj[1].weight)
            nn.init.zeros_(self.text_pool_proj[1].bias)

    def condition(self, emb: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        if drop is not None:
            emb = torch.where(drop[:, None], self.null_embedding.to(emb.dtype).expand_as(emb), emb)
        return emb

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        emb: torch.Tensor,
        drop: torch.Tensor | None = None,
        text: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        emb = self.condition(emb, drop)
        c = self.config
        ctx = self.to_context(emb).view(emb.shape[0], c.context_tokens, c.cross_attention_dim)
        mask = None
        cls = emb
        if text is not None:
            if c.text_dim <= 0:
                raise ArgumentError("this decoder reads no caption (config.text_dim is 0); leave text out.")
            if text.ndim != 3 or text.shape[0] != emb.shape[0] or text.shape[2] != c.text_dim:
                raise ArgumentError(f"text must be (b, L, {c.text_dim}) token states with b={emb.shape[0]}, "
                                    f"got {tuple(text.shape)}.")  # fmt: skip
            if text_mask is None:
                text_mask = torch.ones(text.shape[:2], dtype=torch.bool, device=text.device)
            tokens = self.text_proj(text.to(ctx.dtype))
            if c.text_layers > 0:
                # a row that reads no caption attends over all its (masked-out) tokens, not none,
                # which would give NaN; cross-attention gives those tokens no weight either way
                pad = ~text_mask.to(tokens.device, torch.bool)
                pad = pad & pad.logical_not().any(1, keepdim=True)
                tokens = self.text_encoder(tokens, src_key_padding_mask=pad)
            ctx = torch.cat([ctx, tokens], dim=1)
            if c.text_pooled:
                # the last real token of each row (end of text); a row that reads no caption adds nothing
                m = text_mask.to(text.device, torch.bool)
                last = text[torch.arange(text.shape[0], device=text.device), (m.sum(1) - 1).clamp(min=0)]
                pooled = self.text_pool_proj(last.to(emb.dtype)) * m.any(1, keepdim=True).to(emb.dtype)
                cls = emb + pooled
            keep = torch.ones(emb.shape[0], c.context_tokens, dtype=torch.bool, device=ctx.device)
            mask = torch.cat([keep, text_mask.to(ctx.device, torch.bool)], dim=1)
        if c.coords:
            x = torch.cat([x, _coord_grid(x)], dim=1)
        return self.unet(x, t, encoder_hidden_states=ctx, class_labels=cls, encoder_attention_mask=mask).sample


def _coord_grid(x: torch.Tensor) -> torch.Tensor:
    """(b, 2, H, W): each pixel's x and y in [-1, 1] (left/top -1), in ``x``'s dtype and device."""
    b, _, h, w = x.shape
    ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype)
    xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype)
    grid = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)])
    return grid[None].expand(b, 2, h, w)


def _timestep_features(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    ang = t.float()[:, None] * freqs[None]
    return torch.cat([ang.sin(), ang.cos()], dim=-1)


class _ResBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.mod = nn.Linear(width, 2 * width)  # scale/shift from the condition (adaLN)
        self.fc1 = nn.Linear(width, 2 * width)
        self.fc2 = nn.Linear(2 * width, width)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.mod(cond).chunk(2, dim=-1)
        y = self.norm(h) * (1 + scale) + shift
        return h + self.fc2(torch.nn.functional.silu(self.fc1(y)))


class MiniPriorNet(nn.Module):
    """Residual MLP denoiser over embeddings.

    ``forward(x_t (b,d), t (b,), text (b,d), drop (b,) bool or None)`` -> prediction (b,d)
    (the clean image embedding times sqrt(d) for ``prediction_type="sample"``). Embeddings
    are handled scaled by ``sqrt(d)`` so each coordinate has roughly unit variance.
    """

    def __init__(self, config: PriorConfig):
        super().__init__()
        self.config = config
        d, w = config.embed_dim, config.width
        self.null_text = nn.Parameter(torch.zeros(d))
        self.in_proj = nn.Linear(2 * d, w)
        self.cond = nn.Sequential(nn.Linear(d + w, w), nn.SiLU(), nn.Linear(w, w))
        self.blocks = nn.ModuleList([_ResBlock(w) for _ in range(config.depth)])
        self.out_norm = nn.LayerNorm(w)
        self.out = nn.Linear(w, d)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, drop: torch.Tensor | None = None
    ) -> torch.Tensor:
        d = self.config.embed_dim
        text = text * math.sqrt(d)
        if drop is not None:
            text = torch.where(drop[:, None], self.null_text.expand_as(text), text)
        cond = self.cond(torch.cat([text, _timestep_features(t, self.config.width).to(text.dtype)], dim=-1))
        h = self.in_proj(torch.cat([x, text], dim=-1))
        for blk in self.blocks:
            h = blk(h, cond)
        return self.out(self.out_norm(h))


class _ConvBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with a residual (1x1 conv where the width changes)."""

    def __init__(self, c_in: int, c_out: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(groups, c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1),
            nn.GroupNorm(groups, c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1),
        )  # fmt: skip
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.skip(h) + self.body(h)


class MiniUpscalerNet(nn.Module):
    """Deterministic 2x super-resolution: ``forward(x (b,3,s,s) in [-1,1])`` -> ``(b,3,2s,2s)``.

    The output is the bicubic upsampling of ``x`` plus a residual that a small UNet computes
    at the input's size (levels at 1, 1/2, 1/4 of it, skip connections) and a pixel shuffle
    lays out at twice the size (ESPCN, Shi et al. 2016), so the costly convolutions never run
    at the output size. The residual's last layer starts at zero: an untrained net upsamples
    bicubically. Not clamped (callers clamp). Trained with an L1 loss on the cache's renders
    shrunk as the decoder's training images are (``latentlab.mini.train``, stage ``upscaler``).

    >>> import torch
    >>> from latentlab.mini.models import MiniUpscalerNet, UpscalerConfig
    >>> net = MiniUpscalerNet(UpscalerConfig(in_size=8, channels=(8, 8), norm_num_groups=4))
    >>> net(torch.zeros(1, 3, 8, 8)).shape
    torch.Size([1, 3, 16, 16])
    """

    def __init__(self, config: UpscalerConfig):
        super().__init__()
        self.config = config
        ch, g, k = tuple(config.channels), config.norm_num_groups, config.blocks
        self.conv_in = nn.Conv2d(3, ch[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.pool = nn.ModuleList()
        for i, c in enumerate(ch):
            prev = ch[max(i - 1, 0)]
            self.down.append(nn.Sequential(*[_ConvBlock(prev if j == 0 else c, c, g) for j in range(k)]))
            self.pool.append(nn.Conv2d(c, c, 3, stride=2, padding=1) if i < len(ch) - 1 else nn.Identity())
        self.mid = _ConvBlock(ch[-1], ch[-1], g)
        self.up = nn.ModuleList()
        for i in reversed(range(len(ch))):
            c_below = ch[min(i + 1, len(ch) - 1)]  # what comes up from the level below (or the middle)
            self.up.append(nn.Sequential(*[_ConvBlock((c_below + ch[i]) if j == 0 else ch[i], ch[i], g) for j in range(k)]))
        self.out = nn.Sequential(nn.GroupNorm(g, ch[0]), nn.SiLU(), nn.Conv2d(ch[0], 3 * 4, 3, padding=1), nn.PixelShuffle(2))
        nn.init.zeros_(self.out[2].weight)
        nn.init.zeros_(self.out[2].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
        h = self.conv_in(x)
        skips = []
        for blocks, pool in zip(self.down, self.pool):
            h = blocks(h)
            skips.append(h)
            h = pool(h)
        h = self.mid(h)
        for blocks in self.up:
            skip = skips.pop()
            if h.shape[-1] != skip.shape[-1]:
                h = torch.nn.functional.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = blocks(torch.cat([h, skip], dim=1))
        return base + self.out(h)


# -- schedulers and samplers --------------------------------------------------------------


def make_scheduler(config: DecoderConfig | PriorConfig, kind: str = "ddim"):
    """A diffusers DDPMScheduler (training) or DDIMScheduler (sampling) for ``config``."""
    from diffusers import DDIMScheduler, DDPMScheduler

    kw = dict(
        num_train_timesteps=config.num_train_timesteps,
        beta_schedule=config.beta_schedule,
        prediction_type=config.prediction_type,
        # pixel-space decoder: clamp the predicted clean image to [-1, 1] at every step (static
        # thresholding, as unCLIP decoders do); it also keeps the epsilon -> x0 conversion at
        # the noisiest steps (alpha_bar ~ 0) from amplifying rounding errors
        clip_sample=isinstance(config, DecoderConfig),
        clip_sample_range=1.0,
    )
    if kind == "ddpm":
        return DDPMScheduler(**kw)
    if kind == "ddim":
        return DDIMScheduler(**kw, set_alpha_to_one=True, timestep_spacing="trailing")
    raise ArgumentError(f"kind must be 'ddpm' or 'ddim', got {kind!r}.")


def ddim_scheduler(config: DecoderConfig | PriorConfig, steps: int):
    """The sampling DDIMScheduler of ``config`` (:func:`make_scheduler`) set to ``steps``
    steps: exactly ``steps`` trailing timesteps, all ``>= 0``
    (:func:`~latentlab.decoders.base.trailing_timesteps`). diffusers' own ``set_timesteps``
    appends a timestep ``-1`` for 61, 103, 121, ... steps, an extra step from the last
    cumulative alpha (pure noise) that saturates the frame; every other count keeps
    diffusers' timesteps exactly. Every mini sampler and :func:`~latentlab.mini.runtime.ddim_invert`
    takes its timesteps from here.

    >>> ddim_scheduler(PriorConfig(), 61).timesteps[-2:].tolist()
    [32, 15]
    """
    from ..decoders.base import trailing_timesteps

    steps = check_int(steps, "steps", minimum=1)  # (0 divided by zero in diffusers; 2.5 was taken as 2)
    if steps > config.num_train_timesteps:
        raise ArgumentError(f"steps must be <= {config.num_train_timesteps} (the training timesteps), got {steps}.")
    sched = make_scheduler(config, "ddim")
    sched.set_timesteps(int(steps))  # num_inference_steps, and diffusers' own checks
    sched.timesteps = torch.tensor(trailing_timesteps(int(steps), sched.config.num_train_timesteps), dtype=torch.int64)
    return sched


def sample_decoder(
    net: MiniDecoderNet,
    emb: torch.Tensor,
    noise: torch.Tensor,
    *,
    steps: int = 25,
    guidance_scale: float = 3.0,
    text: torch.Tensor | None = None,
    text_mask: torch.Tensor | None = None,
    expert: MiniDecoderNet | None = None,
    expert_config: ExpertConfig | None = None,
) -> torch.Tensor:
    """Deterministic DDIM (eta=0) from ``noise`` (b,3,H,W) conditioned on ``emb`` (b,d), and
    on a caption's token states ``text`` / ``text_mask`` where the decoder reads captions
    (``config.text_dim > 0``; the unconditional half of guidance then reads neither the
    embedding nor the caption, as DALL-E 2's decoder is guided).

    ``expert``: a layout expert (eDiff-I's ensemble of denoisers, Balaji et al. 2022) that
    denoises the steps ``t >= expert_config.t_min`` in place of ``net``, where a picture's
    layout is decided; it reads the same caption, and the embedding only where
    ``expert_config.reads_embedding`` (else the null embedding in both halves of guidance).

    The predicted clean image is clamped to [-1, 1] at every step and the noise estimate
    re-derived from it (``use_clipped_model_output``), the convention that
    :func:`~latentlab.mini.runtime.ddim_invert` inverts exactly.

    Returns images (b,3,H,W) in [-1, 1], in ``noise``'s dtype (float16 noise for a float16
    ``net`` gives float16 images) and on its device. Differentiable
    (``MiniDecoder`` refines inverted noise through it); callers that only sample wrap it in
    ``torch.inference_mode()``.
    """
    sched = ddim_scheduler(net.config, steps)
    x = noise.clone()
    b = x.shape[0]
    use_cfg = guidance_scale != 1.0
    drop = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(x.device)
    text2 = mask2 = None
    if text is not None:
        if text_mask is None:
            text_mask = torch.ones(text.shape[:2], dtype=torch.bool, device=text.device)
        text2 = torch.cat([text, text])
        mask2 = torch.cat([text_mask.bool(), torch.zeros_like(text_mask, dtype=torch.bool)])
    if expert is not None:
        check_expert(net, expert, expert_config)
        # an expert trained on the caption alone reads the null embedding in both halves
        expert_drop = drop if expert_config.reads_embedding else torch.ones(2 * b, dtype=torch.bool, device=x.device)
    for t in sched.timesteps:
        tt = torch.full((b,), int(t), device=x.device, dtype=torch.long)
        by, drop_t = net, drop
        if expert is not None and int(t) >= expert_config.t_min:
            by, drop_t = expert, expert_drop
        if use_cfg:
            out = by(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([emb, emb]), drop_t, text2, mask2)
            cond, uncond = out.chunk(2)
            out = uncond + guidance_scale * (cond - uncond)
        else:
            out = by(x, tt, emb, None if drop_t is drop else drop_t[:b], text, text_mask)
        # epsilon re-derived from the clamped clean image (OpenAI improved-diffusion's DDIM):
        # a step is then a function of (x_t, clamped x0) that ddim_invert undoes exactly
        x = sched.step(out, t, x, eta=0.0, use_clipped_model_output=True).prev_sample
    return x.clamp(-1, 1)


@torch.no_grad()
def sample_prior(
    net: MiniPriorNet,
    text: torch.Tensor,
    noise: torch.Tensor,
    *,
    steps: int = 25,
    guidance_scale: float = 2.0,
) -> torch.Tensor:
    """Deterministic DDIM from ``noise`` (b,d) conditioned on text embeddings ``text`` (b,d).

    Returns unit-norm image embeddings (b,d) float32 (NaN where the sampler overflowed to NaN).
    """
    sched = ddim_scheduler(net.config, steps)
    x = noise.clone()
    b = x.shape[0]
    drop = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(x.device)
    for t in sched.timesteps:
        tt = torch.full((b,), int(t), device=x.device, dtype=torch.long)
        out = net(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([text, text]), drop)
        cond, uncond = out.chunk(2)
        out = uncond + guidance_scale * (cond - uncond)
        x = sched.step(out, t, x, eta=0.0).prev_sample
    from ..space import normalize  # (torch's made a finite row whose norm overflows, a huge guidance_scale's, zero)

    return normalize(x.float())


# -- CLIP through open_clip ---------------------------------------------------------------

_CLIP_REGISTERED = False


def text_token_states(model, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The token states of an open_clip text tower: what ``model.encode_text`` computes
    before it pools the end-of-text token and projects it, ``(b, L, width)`` (after
    ``ln_final``), and the mask of real tokens ``(b, L)``: those up to the end-of-text token,
    the highest id, where ``encode_text`` pools (the padding after it is False). Id 0, the
    padding's, is also a real token: a "!" directly before a symbol or an emoji (``tokens !=
    0`` masked it out, and a pooled decoder then read the token before the end of text).
    Causal attention makes each state read only the tokens before it, so the last ones hold
    the whole caption. A decoder with ``text_dim > 0`` reads these."""
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast) + model.positional_embedding.to(cast)
    x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask))
    positions = torch.arange(tokens.shape[-1], device=tokens.device)
    return x, positions[None, :] <= tokens.argmax(-1, keepdim=True)


def register_clip_config() -> str:
    """Make open_clip know the model ``mini_clip`` (idempotent); return its name."""
    global _CLIP_REGISTERED
    if not _CLIP_REGISTERED:
        import open_clip

        open_clip.add_model_config(CLIP_CONFIG)
        _CLIP_REGISTERED = True
    return CLIP_MODEL_NAME


def create_clip(checkpoint: str | Path | None = None, *, device: str | torch.device = "cpu"):
    """``(model, preprocess, tokenizer)`` of the mini CLIP through open_clip.

    ``checkpoint`` a safetensors file (``None``: random initialisation from the current torch
    seed, for training and tests). The model comes in eval mode, ready to encode: in train
    mode its batch norms would use each batch's statistics, so an image's embedding would
    depend on the images encoded beside it. Training calls ``model.train()`` itself.
    """
    import open_clip

    from ..encoders import float32_default, quiet_open_clip

    name = register_clip_config()
    # with a checkpoint, the random initialisation it replaces leaves the caller's torch RNG as it was
    rng = torch.random.fork_rng(devices=[]) if checkpoint else contextlib.nullcontext()
    # (not the user's root logger level: only open_clip's notes); built in float32 whatever torch's default
    # dtype: open_clip loads the checkpoint into weights of that dtype (bfloat16 ones rounded it)
    with rng, quiet_open_clip(random_init=checkpoint is None), float32_default():
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=str(checkpoint) if checkpoint else None, device=device
        )
        tokenizer = open_clip.get_tokenizer(name)
    # float32 whatever torch's default dtype (open_clip builds in it: float64 after torch.set_default_dtype)
    return model.float().eval(), preprocess, tokenizer


# -- saving and loading -------------------------------------------------------------------


def weights_path(name: str, weights_dir: str | Path | None = None) -> Path:
    """Path of a shipped file, e.g. ``weights_path("mini_decoder.safetensors")``; ``weights_dir``
    (a folder, str or Path; ``None``: the shipped one) is the folder it is looked for in."""
    if weights_dir is None:
        return WEIGHTS_DIR / name
    if not isinstance(weights_dir, (str, os.PathLike)):  # (5 or b"dir" raised a raw TypeError)
        raise ArgumentError(f"weights (weights_dir) must be a folder, a str or pathlib.Path, or None; got {weights_dir!r}.")
    return user_path(weights_dir) / name  # "~/mini", as a shell reads it


def _missing_weights(kind: str, path: Path, cfg_path: Path, hint: str) -> ModelNotAvailableError:
    """Why the mini ``kind`` files ``path`` and ``cfg_path`` cannot be loaded, with the fix: the
    shipped folder says how to train them; a folder of the user's (``weights=``) what is wrong
    with it."""
    folder = path.parent
    if folder.resolve() == WEIGHTS_DIR.resolve():
        return ModelNotAvailableError(f"the mini {kind} weights are not on this machine (looked for {path} and {cfg_path}). " + hint)
    given = f"the mini {kind} weights folder (weights=) {str(folder)!r}"
    if folder.is_file():
        why = f"is a file; pass the folder that holds it (weights={str(folder.parent)!r})"
    elif not folder.is_dir():
        why = "does not exist; pass the folder written by `python -m latentlab.mini.export --to DIR`"
    else:
        try:
            has = sorted(p.name for p in folder.iterdir() if p.suffix in (".safetensors", ".json"))
        except OSError:
            has = []
        why = (f"holds no {path.name} and {cfg_path.name} pair (it has: {', '.join(has[:8]) or 'no weights'}); pass "
               "the folder written by `python -m latentlab.mini.export --to DIR`")  # fmt: skip
        if kind == "upscaler" and has:  # a folder exported without one: how to get one, or go without
            return ModelNotAvailableError(f"{given} {why}. " + hint)
    return ModelNotAvailableError(f"{given} {why}.")


def _damaged(exc: BaseException) -> bool:
    """Whether ``exc``, raised while reading a mini weight file, says the file is not what it
    should be; not so a failed import, no memory (torch's allocator says it in a RuntimeError)
    or a file that cannot be opened (permissions): those keep their own messages. (A package that
    fails to import lazily, as diffusers' UNet does when scipy or accelerate is broken, raises a
    RuntimeError "Failed to import ...": it was said as damaged weights, "export them again".)"""
    from ..errors import from_an_import
    from ..render import _is_oom

    return not isinstance(exc, (MemoryError, ImportError, OSError)) and not _is_oom(exc) and not from_an_import(exc)


def _cause(exc: BaseException) -> str:
    """``"TypeName: first line of the message"`` (300 characters at most, its own full stop
    dropped: a sentence of ours follows), for a message saying why a file cannot be read."""
    first = (str(exc).strip().splitlines() or [""])[0][:300].rstrip(".")
    return f"{type(exc).__name__}: {first}"


def _unreadable(kind: str, path: Path, exc: Exception) -> ModelNotAvailableError:
    """A mini weight file (or its .json) that is there but cannot be read as a mini ``kind``."""
    return ModelNotAvailableError(
        f"the mini {kind} weights {str(path)!r} (with {path.with_suffix('.json').name}) cannot be read: "
        f"{_cause(exc)}. The files are incomplete, damaged or not a mini {kind} (its .json must "
        "describe the .safetensors beside it): export them again (`python -m latentlab.mini.export`), or "
        "reinstall latentlab for the shipped ones."
    )


def save_module(module: nn.Module, path: str | Path, *, config: _Config | None = None, dtype=None) -> None:
    """Write ``module``'s state dict to ``path`` (safetensors) and its config to ``path`` with ``.json``,
    each whole (:func:`latentlab._atomic.write_whole`: a Ctrl-C or a full disk leaves the old file)."""
    from safetensors.torch import save_file

    from .._atomic import write_whole

    path = user_path(path)  # "~/run/..." as a shell reads it (from_pretrained's weights= is read so)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous().cpu()
          for k, v in module.state_dict().items()}  # fmt: skip
    # (written in place, a cut write left a damaged file where the good weights had been)
    write_whole(path, lambda tmp: save_file(sd, str(tmp)))
    if config is not None:
        text = json.dumps(config.to_dict(), indent=2) + "\n"
        write_whole(path.with_suffix(".json"), lambda tmp: tmp.write_text(text))


@dataclass(frozen=True)
class ExpertConfig(_Config):
    """How a layout expert shares the sampling with its decoder (``sample_decoder(expert=...)``)."""

    t_min: int = 750  # the expert denoises the steps t >= t_min (of num_train_timesteps)
    reads_embedding: bool = False  # False: trained on the caption alone (the null embedding always)


def expert_mismatch(net: MiniDecoderNet, expert: MiniDecoderNet) -> str | None:
    """Why the layout ``expert`` cannot take over ``net``'s noisiest steps, or None if it can."""
    a, b = expert.config, net.config
    if (a.image_size, a.text_dim, a.num_train_timesteps, a.beta_schedule, a.prediction_type) != \
            (b.image_size, b.text_dim, b.num_train_timesteps, b.beta_schedule, b.prediction_type) or b.text_dim <= 0:
        return (f"it draws {a.image_size} px from {a.text_dim}-wide captions on a {a.beta_schedule} {a.prediction_type} "
                f"schedule, the decoder {b.image_size} px from {b.text_dim}-wide ones on {b.beta_schedule} "
                f"{b.prediction_type} (an expert needs a decoder that reads captions)")  # fmt: skip
    return None


def check_expert(net: MiniDecoderNet, expert: Any, expert_config: Any) -> None:
    """Refuse (ArgumentError) a layout expert that cannot take over ``net``'s noisiest steps."""
    if not isinstance(expert, MiniDecoderNet):
        raise ArgumentError(f"expert must be a MiniDecoderNet or None, got {type(expert).__name__}.")
    if not isinstance(expert_config, ExpertConfig):
        raise ArgumentError("expert_config: pass the ExpertConfig the expert was trained with (load_expert returns both).")
    why = expert_mismatch(net, expert)
    if why is not None:
        raise ArgumentError(f"expert: {why}; pass the expert trained for this decoder, or expert=None.")


def save_expert(net: MiniDecoderNet, path: str | Path, expert: ExpertConfig, *, dtype=None) -> None:
    """Write a layout expert: its weights to ``path`` and ``{"arch": ..., "expert": ...}`` beside it (.json)."""
    from .._atomic import write_whole

    save_module(net, path, dtype=dtype)
    text = json.dumps({"arch": net.config.to_dict(), "expert": expert.to_dict()}, indent=2) + "\n"
    write_whole(user_path(path).with_suffix(".json"), lambda tmp: tmp.write_text(text))  # (whole, as save_module's)


def load_expert(path: str | Path, *, device: str | torch.device = "cpu") -> tuple[MiniDecoderNet, ExpertConfig]:
    """The layout expert at ``path`` (written by :func:`save_expert`), float32, and its :class:`ExpertConfig`."""
    from safetensors.torch import load_file

    path = user_path(path)  # "~/run/..." as a shell reads it (from_pretrained's weights= is read so)
    cfg_path = path.with_suffix(".json")
    if not path.is_file() or not cfg_path.is_file():
        raise ModelNotAvailableError(f"no layout expert at {path} (with {cfg_path}); train one with `python -m "
                                     "latentlab.mini.train --stage expert` and export it (docs/mini.md).")  # fmt: skip
    try:
        d = json.loads(cfg_path.read_text())
        if not isinstance(d, dict) or set(d) != {"arch", "expert"}:
            raise ArgumentError(f"{cfg_path} must hold exactly 'arch' and 'expert', got {sorted(d) if isinstance(d, dict) else type(d).__name__}.")
        with torch.random.fork_rng(devices=[]):  # its random initialisation, replaced: the caller's RNG stays as it was
            net = MiniDecoderNet(DecoderConfig.from_dict(d["arch"])).float()  # (see load_module)
        net.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})
        expert = ExpertConfig.from_dict(d["expert"])
    except Exception as exc:  # a raw SafetensorError / JSONDecodeError / size mismatch, naming no file
        if not _damaged(exc):
            raise
        raise _unreadable("layout expert", path, exc) from None
    return net.to(device).eval(), expert


def load_module(kind: str, path: str | Path, *, device: str | torch.device = "cpu") -> nn.Module:
    """Build a ``"decoder"``, ``"prior"`` or ``"upscaler"`` net from ``path`` (.safetensors beside its .json), float32."""
    from safetensors.torch import load_file

    configs = {"decoder": (MiniDecoderNet, DecoderConfig), "prior": (MiniPriorNet, PriorConfig),
               "upscaler": (MiniUpscalerNet, UpscalerConfig)}  # fmt: skip
    if kind not in configs:  # (checked first: a missing file named a "mini decodr" that cannot exist)
        raise ArgumentError(f"kind must be 'decoder', 'prior' or 'upscaler', got {kind!r}.")
    path = user_path(path)  # "~/run/..." as a shell reads it (from_pretrained's weights= is read so)
    cfg_path = path.with_suffix(".json")
    if not path.is_file() or not cfg_path.is_file():
        hint = TRAIN_HINT
        if kind == "upscaler":
            hint = ("Train and export it with `python -m latentlab.mini.train --stage upscaler --config cpu-emoji --out RUN "
                    "--init-from latentlab/mini/weights` then `python -m latentlab.mini.export --from RUN --stages upscaler --to latentlab/mini/weights` "
                    "(see docs/mini.md), or pass upscale=False.")  # fmt: skip
        raise _missing_weights(kind, path, cfg_path, hint)
    net_cls, config_cls = configs[kind]
    try:
        config = config_cls.from_dict(json.loads(cfg_path.read_text()))
        with torch.random.fork_rng(devices=[]):  # its random initialisation, replaced: the caller's RNG stays as it was
            # float32 whatever torch's default dtype: built in a bfloat16 default, the weights were rounded to it
            net: nn.Module = net_cls(config).float()
        net.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})
    except Exception as exc:  # a raw SafetensorError / JSONDecodeError / size mismatch, naming no file
        if not _damaged(exc):
            raise
        raise _unreadable(kind, path, exc) from None
    return net.to(device).eval()
