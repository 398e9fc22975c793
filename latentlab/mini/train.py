"""Train the embedded ``mini`` unCLIP stack: CLIP, then the decoder and the prior.

One reproducible entry point::

    python -m latentlab.mini.train --stage {clip,cache,decoder,prior,upscaler,expert,all} \\
        --config {smoke,cpu,gpu,cpu-emoji,gpu-emoji | path.json} --out DIR [--resume] [--set decoder.steps=2000 ...]

Stages and what they write under ``DIR`` (make it a git-ignored folder such as ``.cache/``):

- ``clip``: an open_clip model (``configs/mini_clip.json``) trained contrastively on
  shapes-world scenes rendered on the fly -> ``clip/model.safetensors``.
- ``cache``: renders ``cache.n_images`` scenes once and encodes them (image and caption
  embeddings) with the trained mini CLIP -> ``cache/cache.safetensors`` (the decoder and prior
  stages build it if it is missing).
- ``prior``: diffusion prior text embedding -> image embedding -> ``prior/``.
- ``decoder``: pixel-space unCLIP decoder -> ``decoder/``.
- ``upscaler``: deterministic 2x super-resolution of the decoder's output (the cache's renders
  shrunk to the decoder's size -> the renders themselves) -> ``upscaler/``. Not part of
  ``all``: it needs no CLIP embedding, only the cache's images.
- ``expert``: a layout expert, a decoder trained from scratch on the noisiest steps only
  (``expert.t_min``), from the caption alone; ``MiniDecoder.decode(..., captions=...)`` hands
  it those steps -> ``expert/``. Not part of ``all``; it needs the decoder's cache and CLIP.

Every stage writes ``model.safetensors`` (and, but for ``clip``, ``ema.safetensors``), ``state.pt`` (optimizer
state and step; loaded with ``weights_only=True``) every ``ckpt_every`` steps and at the end,
and logs to ``log.jsonl``. ``--resume`` continues from ``state.pt`` with the step count
going on; batches and noise are drawn from generators seeded by ``(seed, step)`` so a resumed
run sees the data an uninterrupted one would. A stage also stops (after checkpointing) once
``max_minutes`` have passed (and says so); Ctrl-C saves a checkpoint at the current step and
exits with status 130 (SIGTERM likewise, with status 143). The files of one checkpoint are
written under temporary names first and carry its step, so a resume never loads a mix of two
checkpoints; ``state.pt`` also records the data the stage trained on (the CLIP and the cache's
settings), and a resume that would train it on other data is refused. A stage that has a
checkpoint is only continued (``--resume``), never started over; each stage's
``run_config.json`` keeps the history of its invocations. Then
``python -m latentlab.mini.export --from DIR --to WEIGHTS_DIR``.

``--init-from WEIGHTS_DIR`` warm-starts every stage that has no checkpoint yet from exported
weights (``latentlab/mini/weights`` or an ``export --to`` folder; run folders are not
committed, the exported files are), and records the source in ``<stage>/init.json``.
``*.precision=bf16`` trains under ``torch.autocast(bfloat16)``; ``decoder.min_snr_gamma``
turns on Min-SNR loss weighting, ``decoder.low_snr_weight`` a floor on it at the noisiest
steps, where a decoder decides where objects go.

>>> from latentlab.mini.train import main
>>> main(["--stage", "clip", "--config", "smoke", "--out", "/tmp/mini-smoke"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shlex
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from .._atomic import write_whole
from ..errors import ArgumentError, from_an_import, is_finite_real
from . import shapes
from .models import (
    DecoderConfig,
    ExpertConfig,
    MiniDecoderNet,
    MiniPriorNet,
    MiniUpscalerNet,
    PriorConfig,
    UpscalerConfig,
    create_clip,
    make_scheduler,
    text_token_states,
)

__all__ = ["TrainConfig", "DataStage", "CONFIGS", "get_config", "main", "train_clip", "build_cache", "train_decoder",
           "train_expert", "train_prior", "train_upscaler", "word_vector_rows", "StageInterrupted"]  # fmt: skip


# -- configuration ------------------------------------------------------------------------


@dataclass
class ClipStage:
    steps: int = 900  # optimizer steps
    batch_size: int = 128  # scenes per step (contrastive batch)
    lr: float = 1e-3  # peak AdamW learning rate (linear warmup, cosine decay to 10%)
    weight_decay: float = 0.05
    warmup: int = 50
    max_minutes: float | None = 20.0  # stop (and checkpoint) after this much wall time; None: no limit
    log_every: int = 10
    ckpt_every: int = 100
    eval_every: int = 100  # zero-shot colour+shape accuracy on held-out scenes
    eval_scenes: int = 240
    group: int = 4  # scenes per hard-negative group (see _clip_batch); 1 = plain random batches
    precision: str = "fp32"  # "bf16": the towers run under torch.autocast(bfloat16); the loss stays float32
    # freeze the image tower (weights and batch-norm statistics) and train the text tower alone
    # ("locked-image tuning", Zhai et al. 2022, LiT): the image embeddings, hence the decoder's
    # conditioning and the cached image embeddings, stay exactly as they were
    lock_image: bool = False
    # replace the token embedding of every whole-word token that has a GloVe vector (`data fetch
    # --sources glove`) by a fixed projection of that vector and keep those rows frozen: words that
    # no training caption contains ("parrot") then sit near the words they resemble ("bird"), which
    # the text tower did learn to read. Tried once for held-out retrieval, without gain (docs/mini.md)
    word_vectors: bool = False
    # share of hard-negative groups built around a two-object scene whose negatives swap the two
    # objects' places (so the caption's relation word is wrong) and their colours (so colour binds
    # to the wrong shape): the shipped CLIP reads "above" / "left of" at chance (docs/mini.md)
    relation_negatives: float = 0.0


@dataclass
class CacheStage:
    n_images: int = 8000  # scenes rendered and encoded once for the decoder and prior
    batch_size: int = 256
    p_two: float = 0.4  # share of two-object scenes among the cache's shapes scenes (shapes.sample_scene)


@dataclass
class DecoderStage:
    steps: int = 2000
    batch_size: int = 48
    lr: float = 5e-4
    weight_decay: float = 0.0
    warmup: int = 100
    ema_decay: float = 0.999  # EMA of the weights (its decay warms up as (1+step)/(10+step)); exported
    cond_drop: float = 0.1  # probability of the null embedding (classifier-free guidance)
    max_minutes: float | None = 50.0
    log_every: int = 10
    ckpt_every: int = 100
    arch: dict = field(default_factory=lambda: {"block_out_channels": (32, 64, 64)})  # DecoderConfig fields
    # "bf16": forward and backward under torch.autocast(bfloat16), weights and optimizer in float32
    # (about 1.5x faster per step on CPUs with AMX/AVX512-BF16, and on GPUs); "fp32": no autocast
    precision: str = "fp32"
    # with --init-from a decoder of half this image_size whose channels this one's extend by one
    # leading level: copy its weights into this one's lower levels, the new top level starts
    # fresh (_upcycle_decoder); False: the architectures must match
    upcycle: bool = False
    # Min-SNR-gamma loss weighting (Hang et al. 2023): weight each sample by min(SNR, gamma) / SNR
    # (epsilon prediction), so the nearly noise-free steps stop dominating; 0 = plain MSE
    min_snr_gamma: float = 0.0
    # > 0: a floor on each sample's weight counted on the clean image's error (epsilon prediction
    # weighs that error by SNR, so the noisiest steps, where a decoder decides where objects go,
    # got almost none: see docs/mini.md, "Nineteenth session"); the epsilon loss of a sample is
    # weighted by max(its Min-SNR weight, min(low_snr_weight / SNR, low_snr_max)); 0 = off
    low_snr_weight: float = 0.0
    low_snr_max: float = 100.0  # cap on the epsilon weight the floor asks for (it grows as 1 / SNR)
    # with arch.text_dim > 0 (a decoder that reads the caption's token states too): probability
    # that a training row reads no caption, independently of cond_drop (DALL-E 2 drops the
    # caption 50% of the time), so the decoder also works from an embedding alone
    text_drop: float = 0.5


def _expert_arch() -> dict:
    return {"block_out_channels": (32, 64, 64), "text_dim": 128, "coords": True, "text_layers": 2, "text_pooled": True}


@dataclass
class ExpertStage(DecoderStage):
    """A layout expert (eDiff-I's ensemble of expert denoisers): a decoder trained only on the
    noisiest steps ``t >= t_min``, where a picture's layout is decided (docs/mini.md,
    "Nineteenth session"), from the caption alone by default (``cond_drop=1``: the null
    embedding always), from scratch. ``MiniDecoder.decode(..., captions=...)`` hands it those
    steps. The defaults are the twentieth session's run (docs/mini.md)."""

    steps: int = 9000
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 200
    cond_drop: float = 1.0  # 1: trained on the caption alone (ExpertConfig.reads_embedding=False)
    max_minutes: float | None = 60.0
    ckpt_every: int = 250
    arch: dict = field(default_factory=_expert_arch)  # DecoderConfig fields
    precision: str = "bf16"
    min_snr_gamma: float = 5.0
    low_snr_weight: float = 1.0  # the clean image's error counts at least once at every step it sees
    text_drop: float = 0.1  # rows with no caption, for guidance against none
    t_min: int = 750  # sampled steps t in [t_min, num_train_timesteps)
    # the first this many steps draw only two-object scenes whose caption names their relation
    # (a from-scratch expert learned where objects go from those in ~3,500 steps; one on the
    # whole mixture, reading the embedding too, had not in 4,000), then every row of the cache
    relations_first: int = 4200
    # with --init-from: True warm-starts from the folder's mini_expert.safetensors; False (default)
    # starts from scratch, the folder then only supplies the CLIP that encodes the cache
    warm_start: bool = False


@dataclass
class PriorStage:
    steps: int = 3000
    batch_size: int = 256
    lr: float = 5e-4
    weight_decay: float = 0.0
    warmup: int = 100
    ema_decay: float = 0.999
    cond_drop: float = 0.1
    max_minutes: float | None = 5.0
    log_every: int = 50
    ckpt_every: int = 500
    arch: dict = field(default_factory=lambda: {"width": 256, "depth": 4})  # PriorConfig fields
    precision: str = "fp32"  # as DecoderStage.precision
    min_snr_gamma: float = 0.0  # as DecoderStage.min_snr_gamma (used with epsilon prediction only)


@dataclass
class UpscalerStage:
    steps: int = 4000
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup: int = 100
    ema_decay: float = 0.999
    max_minutes: float | None = 30.0
    log_every: int = 10
    ckpt_every: int = 250
    in_size: int = 32  # the side it upsamples from (the decoder's image_size); it outputs twice that
    arch: dict = field(default_factory=lambda: {"channels": (48, 64, 96)})  # UpscalerConfig fields but in_size
    precision: str = "fp32"  # as DecoderStage.precision; bf16 autocast ran these convolutions >10x slower on a CPU
    # the low-resolution input gets Gaussian noise of a standard deviation drawn uniformly from
    # [0, noise_aug] (pixel values in [-1, 1]), so the net learns to keep, not sharpen, the small
    # errors of a decoded image (noise-conditioning augmentation, as cascaded diffusion models use)
    noise_aug: float = 0.04


@dataclass
class DataStage:
    # fraction of each CLIP batch and of the cache drawn from the emoji / clip-art index
    # (latentlab.mini.data); 0 = the shapes world only, exactly as before the index existed
    emoji_fraction: float = 0.0
    index: str = ".cache/mini/data/index.jsonl"  # `python -m latentlab.mini.data fetch`, then `... index`
    sources: list = field(default_factory=list)  # restrict to these sources (noto, twemoji, ...); empty = all
    eval_retrieval: bool = True  # log held-out emoji text->image retrieval at CLIP eval steps (when fraction > 0)
    # probability that a CLIP training image with CLDR keywords is captioned by one of them instead
    # of its name (DataIndex.sample's tag_prob; keywords that are some image's name are never used)
    tag_captions: float = 0.0
    # probability that an emoji / clip-art image in a CLIP batch is randomly zoomed (0.75-1.15x)
    # and shifted (up to 8% of its side), the uncovered border filled with its corner colour:
    # the CLIP then has to read the drawing rather than memorise its exact pixels. 0 = none
    # (batches are exactly what they were before it existed); shapes scenes are never changed.
    augment: float = 0.0


@dataclass
class TrainConfig:
    seed: int = 0  # everything (scenes, init, noise) derives from it
    threads: int = 1  # torch.set_num_threads; 1 for background CPU training
    device: str = "cpu"
    render_size: int = 64  # scenes are rendered at this size, then CLIP's preprocess resizes them
    clip: ClipStage = field(default_factory=ClipStage)
    cache: CacheStage = field(default_factory=CacheStage)
    decoder: DecoderStage = field(default_factory=DecoderStage)
    prior: PriorStage = field(default_factory=PriorStage)
    upscaler: UpscalerStage = field(default_factory=UpscalerStage)
    expert: ExpertStage = field(default_factory=ExpertStage)
    data: DataStage = field(default_factory=DataStage)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parse_value(key: str, cur: Any, v: Any, nullable: bool) -> Any:
    """``v`` (parsed as JSON where it parses, else the raw string) as the type of ``cur``, the
    field's default: ``True``/``False``/1/0 (any case) for a bool, a whole number for an int,
    ``null``/``none`` for a field that may be None; else ArgumentError naming ``key``."""
    if nullable and (v is None or (isinstance(v, str) and v.strip().lower() in ("null", "none"))):
        return None
    if v is None:
        raise ArgumentError(f"{key} cannot be null; give a {type(cur).__name__}.")
    if isinstance(cur, bool):
        if isinstance(v, bool):
            return v
        if isinstance(v, (int, float)) and v in (0, 1):
            return bool(v)
        if isinstance(v, str) and v.strip().lower() in ("true", "false", "1", "0"):
            return v.strip().lower() in ("true", "1")
        raise ArgumentError(f"{key} must be true or false (or 1 / 0), got {v!r}.")
    if isinstance(cur, int):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
            raise ArgumentError(f"{key} must be a whole number, got {v!r}.")
        if not -(2**63) <= v < 2**63:  # what torch takes (seeds, thread counts, tensor sizes)
            raise ArgumentError(f"{key} must be a whole number in [-2**63, 2**63), got {v!r}.")
        return int(v)
    if isinstance(cur, float) or (cur is None and nullable):
        if not is_finite_real(v):  # (not a bool; nor a 400-digit int, which no float holds)
            raise ArgumentError(f"{key} must be a number{' or null' if nullable else ''}, got {v!r}.")
        return float(v)
    if isinstance(cur, str):
        if isinstance(v, (dict, list)):
            raise ArgumentError(f"{key} must be a string, got {v!r}.")
        return str(v)
    return v


def _update(obj: Any, d: dict[str, Any], where: str = "config") -> None:
    names = {f.name: f for f in fields(obj)}
    for k, v in d.items():
        if k not in names:
            raise ArgumentError(f"unknown field {where}.{k}; known: {sorted(names)}.")
        cur = getattr(obj, k)
        key = f"{where}.{k}".removeprefix("config.")
        if is_dataclass(cur):
            if not isinstance(v, dict):
                raise ArgumentError(f"{key} must be an object, got {v!r}.")
            _update(cur, v, f"{where}.{k}")
        elif isinstance(cur, dict):  # e.g. decoder.arch.image_size=32: the other keys stay
            if not isinstance(v, dict):
                raise ArgumentError(f"{key} must be an object (e.g. --set {key}='{{...}}'), got {v!r}.")
            setattr(obj, k, {**cur, **v})
        elif isinstance(cur, list):
            if isinstance(v, str):  # data.sources=noto,twemoji
                v = [x.strip() for x in v.split(",") if x.strip()]
            if not isinstance(v, list):
                raise ArgumentError(f"{key} must be a list (e.g. a,b), got {v!r}.")
            setattr(obj, k, v)
        else:
            setattr(obj, k, _parse_value(key, cur, v, "None" in str(names[k].type)))


def _smoke() -> TrainConfig:
    c = TrainConfig(threads=1)
    c.clip = ClipStage(steps=3, batch_size=8, warmup=1, log_every=1, ckpt_every=2, eval_every=3, eval_scenes=8)
    c.cache = CacheStage(n_images=16, batch_size=16)
    tiny = {"block_out_channels": (8, 16, 16), "norm_num_groups": 4, "cross_attention_dim": 16, "attention_heads": 2}
    c.decoder = DecoderStage(steps=3, batch_size=4, warmup=1, log_every=1, ckpt_every=2, arch=tiny)
    c.prior = PriorStage(steps=3, batch_size=8, warmup=1, log_every=1, ckpt_every=2, arch={"width": 32, "depth": 1})
    c.upscaler = UpscalerStage(steps=3, batch_size=4, warmup=1, log_every=1, ckpt_every=2, in_size=32,
                               arch={"channels": (8, 8), "norm_num_groups": 4})  # fmt: skip
    c.expert = ExpertStage(steps=3, batch_size=4, warmup=1, log_every=1, ckpt_every=2, relations_first=2,
                           arch={**tiny, "text_dim": 128, "coords": True, "text_layers": 1, "text_pooled": True})  # fmt: skip
    return c


def _cpu() -> TrainConfig:
    return TrainConfig()


def _gpu() -> TrainConfig:
    c = TrainConfig(threads=8, device="cuda")
    c.clip = ClipStage(steps=6000, batch_size=512, lr=1e-3, warmup=300, max_minutes=120, ckpt_every=500, eval_every=500)
    c.cache = CacheStage(n_images=100_000, batch_size=1024)
    c.decoder = DecoderStage(
        steps=60_000, batch_size=128, lr=2e-4, warmup=1000, ema_decay=0.9999, max_minutes=600, ckpt_every=2000,
        # 4.7M parameters, 9.4 MB in fp16: the shipped files must stay under about 40 MB (CLIP and
        # prior take 28.6), and a run's weights must travel back to a lent GPU beside the checkout
        # (64 MiB in all) to resume there; docs/mini.md
        arch={"block_out_channels": (48, 96, 96), "layers_per_block": 2, "image_size": 64},
        precision="bf16", min_snr_gamma=5.0,  # what made the shipped decoder's CPU runs pay off
    )
    c.prior = PriorStage(steps=50_000, batch_size=1024, lr=3e-4, max_minutes=120, ckpt_every=5000,
                         arch={"width": 512, "depth": 6})  # fmt: skip
    return c


def _cpu_emoji() -> TrainConfig:
    c = _cpu()
    c.data.emoji_fraction = 0.3
    return c


def _gpu_emoji() -> TrainConfig:
    c = _gpu()
    c.data.emoji_fraction = 0.3
    return c


#: named configurations: ``smoke`` (seconds, for tests), ``cpu`` (the shipped CLIP's, prior's and upscaler's
#: architectures and the decoder's but for its ``text_dim=128``; its time limits add up to ~75 min on 1 thread),
#: ``gpu``; ``cpu-emoji`` / ``gpu-emoji`` draw 30% of the images from the emoji / clip-art index
#: (latentlab.mini.data). The shipped weights are no single run of any of them: ``cpu-emoji`` runs warm-started
#: from the previous weights over several sessions, with the ``--set`` overrides recorded in
#: ``weights/manifest.json`` (each file's ``run_config``) and docs/mini.md
CONFIGS = {"smoke": _smoke, "cpu": _cpu, "gpu": _gpu, "cpu-emoji": _cpu_emoji, "gpu-emoji": _gpu_emoji}


def get_config(name_or_path: str, overrides: list[str] | None = None) -> TrainConfig:
    """A named config (:data:`CONFIGS`: ``smoke``, ``cpu``, ``gpu``, ``cpu-emoji``, ``gpu-emoji``) or a JSON
    file of overrides on ``cpu``'s,
    then ``key.sub=value`` overrides (values parsed as JSON when they parse)."""
    if name_or_path in CONFIGS:
        cfg = CONFIGS[name_or_path]()
    else:
        p = Path(name_or_path)
        if not p.is_file():
            raise ArgumentError(f"--config must be one of {list(CONFIGS)} or a JSON file, got {name_or_path!r}.")
        cfg = _cpu()
        try:
            overrides_file = json.loads(p.read_text(encoding="utf-8"))  # JSON is UTF-8 (not the locale's: a path's "é")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ArgumentError(f"--config {name_or_path}: not a JSON file ({e}); it should hold an object of "
                                'overrides such as {"decoder": {"steps": 2000}}.') from None  # fmt: skip
        if not isinstance(overrides_file, dict):
            raise ArgumentError(f"--config {name_or_path}: holds a JSON {type(overrides_file).__name__}, not an object "
                                'of overrides such as {"decoder": {"steps": 2000}}.')  # fmt: skip
        _update(cfg, overrides_file)
    for item in overrides or []:
        if "=" not in item:
            raise ArgumentError(f"--set takes key=value (e.g. decoder.steps=2000), got {item!r}.")
        key, raw = item.split("=", 1)
        try:
            val = json.loads(raw)
        except json.JSONDecodeError:
            val = raw
        d: Any = val
        for part in reversed(key.split(".")):
            d = {part: d}
        _update(cfg, d)
    _check_ranges(cfg)
    _check_archs(cfg, build=False)  # types first: the checks below read arch values
    f = cfg.data.emoji_fraction
    if not (0.0 <= f <= 1.0):
        raise ArgumentError(f"data.emoji_fraction must be in [0, 1], got {f!r}.")
    if not (0.0 <= cfg.data.tag_captions <= 1.0):
        raise ArgumentError(f"data.tag_captions must be in [0, 1], got {cfg.data.tag_captions!r}.")
    for name in ("decoder", "expert"):
        st = getattr(cfg, name)
        if not (0.0 <= st.text_drop <= 1.0):
            raise ArgumentError(f"{name}.text_drop must be in [0, 1], got {st.text_drop!r}.")
        if st.low_snr_weight < 0:
            raise ArgumentError(f"{name}.low_snr_weight must be >= 0 (0 turns it off), got {st.low_snr_weight!r}.")
        predicts = st.arch.get("prediction_type", DecoderConfig.prediction_type)
        if st.low_snr_weight > 0 and predicts != "epsilon":
            raise ArgumentError(f"{name}.low_snr_weight weighs an epsilon-prediction loss, but {name}.arch.prediction_type "
                                f"is {predicts!r}; set {name}.low_snr_weight=0.")  # fmt: skip
        if st.low_snr_max < 1:
            raise ArgumentError(f"{name}.low_snr_max must be >= 1 (it caps an epsilon weight), got {st.low_snr_max!r}.")
    ex = cfg.expert
    steps_total = ex.arch.get("num_train_timesteps", DecoderConfig.num_train_timesteps)
    if not (0 <= ex.t_min < steps_total):
        raise ArgumentError(f"expert.t_min must be in [0, {steps_total}) (the steps the expert takes over), got {ex.t_min!r}.")
    if ex.relations_first < 0:
        raise ArgumentError(f"expert.relations_first must be >= 0 (0: every row from the start), got {ex.relations_first!r}.")
    if ex.arch.get("text_dim", 0) <= 0:
        raise ArgumentError("expert.arch.text_dim must be > 0: an expert reads the caption (set it to the CLIP text "
                            "tower's width, 128 for the mini CLIP).")  # fmt: skip
    if not (0.0 <= ex.cond_drop <= 1.0):
        raise ArgumentError(f"expert.cond_drop must be in [0, 1] (1: the caption alone), got {ex.cond_drop!r}.")
    if not (0.0 <= cfg.data.augment <= 1.0):
        raise ArgumentError(f"data.augment must be in [0, 1], got {cfg.data.augment!r}.")
    from .data import IMAGE_SOURCES

    bad = [x for x in cfg.data.sources if x not in IMAGE_SOURCES]
    if bad:
        raise ArgumentError(f"data.sources: unknown {bad}; choose from {list(IMAGE_SOURCES)} (e.g. data.sources=noto,twemoji).")
    for name in ("clip", "decoder", "prior", "upscaler", "expert"):
        st = getattr(cfg, name)
        if st.precision not in ("fp32", "bf16"):
            raise ArgumentError(f"{name}.precision must be 'fp32' or 'bf16', got {st.precision!r}.")
        if name in ("decoder", "prior", "expert") and st.min_snr_gamma < 0:
            raise ArgumentError(f"{name}.min_snr_gamma must be >= 0 (0 turns it off), got {st.min_snr_gamma!r}.")
    _check_archs(cfg)  # then each net, once the checks above said what is wrong in their words
    return cfg


#: the architecture config each stage's ``arch`` table fills (the upscaler's ``in_size`` is its own setting)
_ARCH_CLASSES = {"decoder": DecoderConfig, "expert": DecoderConfig, "prior": PriorConfig, "upscaler": UpscalerConfig}
#: whole-number arch fields that may be 0 (every other one must be >= 1)


def _clip_embed_dim() -> int:
    """Width of the mini CLIP's embeddings (``configs/mini_clip.json``): what the cache holds."""
    from .models import CLIP_CONFIG

    return int(json.loads(CLIP_CONFIG.read_text())["embed_dim"])


def _arch_value(key: str, default: Any, v: Any) -> Any:
    """An ``arch`` value checked against the type of the config field's default (``key`` names it):
    a tuple field takes a list or ``8,16,16``; a whole-number field must be >= 1 (or >= 0 where 0
    turns it off); the noise schedule's strings must be ones the schedulers know."""
    if isinstance(default, tuple):
        items = [x.strip() for x in v.split(",") if x.strip()] if isinstance(v, str) else v
        if not isinstance(items, (list, tuple)) or not items:
            raise ArgumentError(f"{key} must be a list of whole numbers (e.g. --set {key}=8,16,16), got {v!r}.")
        out = []
        for x in items:
            if isinstance(x, str):
                try:
                    x = int(x)
                except ValueError:
                    raise ArgumentError(f"{key} must be a list of whole numbers (e.g. 8,16,16), got {v!r}.") from None
            x = _parse_value(key, 0, x, False)
            if x < 1:
                raise ArgumentError(f"{key} must hold whole numbers >= 1, got {v!r}.")
            out.append(x)
        return tuple(out)
    from .models import MAXIMUM, MAY_BE_ZERO, SCHEDULE_NAMES  # (the rules a weights .json is read by, too)

    v = _parse_value(key, default, v, False)
    field_name = key.rsplit(".", 1)[1]
    least = 0 if field_name in MAY_BE_ZERO else 1
    if isinstance(v, int) and not isinstance(v, bool) and v < least:
        raise ArgumentError(f"{key} must be >= {least}, got {v!r}.")
    if field_name in MAXIMUM and isinstance(v, int) and v > MAXIMUM[field_name]:
        raise ArgumentError(f"{key} must be <= {MAXIMUM[field_name]}, got {v!r}.")
    names = SCHEDULE_NAMES.get(field_name)
    if names is not None and v not in names:
        raise ArgumentError(f"{key} must be one of {', '.join(map(repr, names))}, got {v!r}.")
    return v


def _stage_arch(cfg: TrainConfig, kind: str, embed_dim: int | None = None):
    """The architecture config stage ``kind`` builds from ``cfg`` (the decoder's, expert's and
    prior's take the CLIP's embedding width, the upscaler's its ``in_size``)."""
    stage = getattr(cfg, kind)
    cls = _ARCH_CLASSES[kind]
    if kind == "upscaler":
        return cls.from_dict({**stage.arch, "in_size": stage.in_size})
    return cls.from_dict({"embed_dim": _clip_embed_dim() if embed_dim is None else embed_dim, **stage.arch})


def _check_archs(cfg: TrainConfig, build: bool = True) -> None:
    """Check every stage's ``arch`` table when the config is read, not when its stage starts
    (``--stage all`` would otherwise fail after the earlier stages trained): known keys, values
    of the field's type (written back normalised: ``8,16,16`` becomes a tuple), and, with
    ``build``, a net that builds (on the meta device: no memory, no weights). ArgumentError
    naming the key."""
    from .models import MiniDecoderNet, MiniPriorNet, MiniUpscalerNet

    nets = {"decoder": MiniDecoderNet, "expert": MiniDecoderNet, "prior": MiniPriorNet, "upscaler": MiniUpscalerNet}
    for kind, cls in _ARCH_CLASSES.items():
        stage = getattr(cfg, kind)
        known = {f.name: f.default for f in fields(cls)}
        if kind == "upscaler":
            known.pop("in_size")
        unknown = sorted(set(stage.arch) - set(known))
        if unknown:
            raise ArgumentError(f"unknown {kind}.arch key(s) {unknown}; known: {sorted(known)}"
                                + (" (upscaler.in_size is a setting of its own)" if "in_size" in unknown else "") + ".")
        stage.arch = {k: _arch_value(f"{kind}.arch.{k}", known[k], v) for k, v in stage.arch.items()}
        if not build:
            continue
        arch = _stage_arch(cfg, kind)
        try:
            with torch.device("meta"):
                nets[kind](arch)
        except (ValueError, TypeError, RuntimeError, AssertionError, ZeroDivisionError, IndexError, KeyError) as e:
            raise ArgumentError(f"{kind}.arch {stage.arch} builds no {kind}: {' '.join(str(e).split())[:300]}") from None


def _check_ranges(cfg: TrainConfig) -> None:
    """Refuse the settings no run can use (ArgumentError naming the key)."""
    if not 1 <= cfg.threads < 2**31:  # torch.set_num_threads takes a C int
        raise ArgumentError(f"threads must be >= 1 (and below 2**31), got {cfg.threads!r}.")
    if cfg.seed < 0:
        raise ArgumentError(f"seed must be >= 0 (it seeds numpy generators), got {cfg.seed!r}.")
    try:
        dev = torch.device(cfg.device)
    except (RuntimeError, TypeError):
        raise ArgumentError(f"device must be a torch device such as 'cpu', 'cuda' or 'cuda:1', got {cfg.device!r}.") from None
    if dev.type not in ("cpu", "cuda", "mps", "xpu"):
        raise ArgumentError(f"device must be 'cpu', 'cuda' (or 'cuda:N'), 'mps' or 'xpu', got {cfg.device!r}.")
    if cfg.upscaler.in_size < 1:
        raise ArgumentError(f"upscaler.in_size must be >= 1 (the side it upsamples from), got {cfg.upscaler.in_size!r}.")
    if cfg.render_size < 8:
        raise ArgumentError(f"render_size must be >= 8, got {cfg.render_size!r}.")
    for key in ("cache.n_images", "cache.batch_size"):
        if getattr(cfg.cache, key.split(".")[1]) < 1:
            raise ArgumentError(f"{key} must be >= 1, got {getattr(cfg.cache, key.split('.')[1])!r}.")
    if not (0.0 <= cfg.cache.p_two <= 1.0):
        raise ArgumentError(f"cache.p_two must be in [0, 1], got {cfg.cache.p_two!r}.")
    if not (0.0 <= cfg.clip.relation_negatives <= 1.0):  # a share, as cond_drop and data.emoji_fraction are
        raise ArgumentError(f"clip.relation_negatives must be in [0, 1] (a share of the hard-negative groups), got "
                            f"{cfg.clip.relation_negatives!r}.")  # fmt: skip
    if cfg.clip.group < 1:
        raise ArgumentError(f"clip.group must be >= 1 (1: plain random batches), got {cfg.clip.group!r}.")
    if cfg.upscaler.noise_aug < 0:
        raise ArgumentError(f"upscaler.noise_aug must be >= 0 (0: no noise), got {cfg.upscaler.noise_aug!r}.")
    for name in ("clip", "decoder", "prior", "upscaler", "expert"):
        st = getattr(cfg, name)
        for f in ("steps", "batch_size", "ckpt_every", "log_every", "eval_every", "eval_scenes"):
            if hasattr(st, f) and getattr(st, f) < 1:
                raise ArgumentError(f"{name}.{f} must be >= 1, got {getattr(st, f)!r}.")
        if st.max_minutes is not None and not st.max_minutes > 0:
            raise ArgumentError(f"{name}.max_minutes must be > 0 (or null: no time limit), got {st.max_minutes!r}.")
        if hasattr(st, "cond_drop") and not (0.0 <= st.cond_drop <= 1.0):
            raise ArgumentError(f"{name}.cond_drop must be in [0, 1], got {st.cond_drop!r}.")
        if hasattr(st, "ema_decay") and not (0.0 <= st.ema_decay < 1.0):
            raise ArgumentError(f"{name}.ema_decay must be in [0, 1), got {st.ema_decay!r}.")
        if st.lr < 0 or st.warmup < 0:
            raise ArgumentError(f"{name}.lr and {name}.warmup must be >= 0, got {st.lr!r} and {st.warmup!r}.")
        if st.weight_decay < 0:
            raise ArgumentError(f"{name}.weight_decay must be >= 0, got {st.weight_decay!r}.")


# -- helpers ------------------------------------------------------------------------------


class StageInterrupted(KeyboardInterrupt):
    """Ctrl-C during a stage, after its checkpoint at ``step`` was saved in ``stage_dir``."""

    def __init__(self, stage: str, stage_dir: Path, step: int):
        super().__init__(f"{stage} interrupted at step {step}; checkpoint in {stage_dir}")
        self.stage, self.stage_dir, self.step = stage, stage_dir, step

    def __reduce__(self) -> tuple[Any, ...]:  # (unpickling it, as multiprocessing does, raised a TypeError)
        return (type(self), (self.stage, self.stage_dir, self.step))


@contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Hold Ctrl-C (and SIGTERM, where a Python handler is in place for it, as ``main``
    installs) until the block ends, then hand it to the handler that was in place: an
    optimiser step and the step count (and EMA) that record it, or the files of one
    checkpoint, are never split by it. Where Ctrl-C is ignored (a job started with ``&`` from a
    script), handled outside Python, or cannot be caught (not the main thread), the block runs
    as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: dict[int, Any] = {}
    old = signal.getsignal(signal.SIGINT)
    if old is not None and old is not signal.SIG_IGN:
        held[signal.SIGINT] = old
    old_term = signal.getsignal(signal.SIGTERM)
    if callable(old_term):  # SIG_DFL (not callable) ends the process at once, as it always did
        held[signal.SIGTERM] = old_term
    if not held:
        yield
        return
    caught: list[tuple[int, Any]] = []
    for sig in held:
        signal.signal(sig, lambda signum, frame: caught.append((signum, frame)))
    try:
        yield
    finally:
        for sig, handler in held.items():
            signal.signal(sig, handler)
    if caught:
        signum, frame = next((c for c in caught if c[0] == signal.SIGTERM), caught[0])  # SIGTERM first
        handler = held[signum]
        if callable(handler):  # Python's own handler raises KeyboardInterrupt; an outer hold records it
            handler(signum, frame)
        else:  # SIG_DFL of SIGINT
            raise KeyboardInterrupt


def _save_quietly(save: Callable[[], None]) -> None:
    """Save the checkpoint of an interrupted stage; a second Ctrl-C meanwhile (held until the
    files are written) changes nothing: the stage is already stopping."""
    try:
        with _ctrl_c_held():
            save()
    except KeyboardInterrupt:
        pass


def _time_frac(t0: float, max_minutes: float | None) -> float:
    """Share of the ``max_minutes`` budget spent since ``t0`` (0 without a budget)."""
    return 0.0 if max_minutes is None else (time.time() - t0) / 60 / max_minutes


class _Clock:
    """A stage's wall time (carried over a resume by ``state.pt``'s ``elapsed_s``) and the
    learning rate it drives (:func:`_lr`).

    The time budget counts from the end of the warm-up (``warmup_elapsed_s``, recorded in
    ``state.pt`` with the time fraction reached, so a resume goes on with the same schedule):
    at step ``warmup`` the rate is exactly the peak, and as long as the steps keep ahead of the
    clock the rates are the steps' alone, so two runs of the same seed get the same ones. Once
    the clock is ahead (a run that would not do all its steps in ``max_minutes``), the decay
    follows it, and such runs are not bitwise reproducible."""

    def __init__(self, stage: Any, step: int, spent: float, schedule: dict[str, Any] | None = None):
        self.stage = stage
        self.t0 = time.time() - spent
        self.warm_s: float | None = None if schedule is None else schedule.get("warmup_elapsed_s")
        if schedule is None and step > stage.warmup:  # a checkpoint of before this record: its time counted from 0
            self.warm_s = 0.0
        self.time_frac = 0.0

    def elapsed(self) -> float:
        return time.time() - self.t0

    def timed_out(self) -> bool:
        return _time_frac(self.t0, self.stage.max_minutes) >= 1

    def lr(self, step: int) -> float:
        st = self.stage
        now = self.elapsed()
        if step >= st.warmup and self.warm_s is None:
            self.warm_s = now
        frac = 0.0
        if st.max_minutes is not None and step >= st.warmup:
            left = st.max_minutes * 60 - self.warm_s
            frac = (now - self.warm_s) / left if left > 0 else 1.0
        self.time_frac = frac
        return _lr(step, st.lr, st.warmup, st.steps, frac)

    def state(self) -> dict[str, Any]:
        return {"schedule": {"warmup_elapsed_s": self.warm_s, "time_frac": self.time_frac}}


def _say_time_limit(stage_dir: Path, step: int, steps: int, max_minutes: float | None, bar: Any = None) -> None:
    if bar is not None:  # on a line of its own, not after the progress bar's
        bar.close()
    kind = stage_dir.name
    print(f"{kind}: max_minutes={max_minutes:g} reached at step {step} of {steps}; checkpoint saved in {stage_dir} "
          f"(continue with --resume --set {kind}.max_minutes=...)", file=sys.stderr)  # fmt: skip


def _time_spent_before(clock: _Clock, stage_dir: Path, step: int, steps: int, bar: Any = None) -> bool:
    """Whether a resumed stage's ``max_minutes`` were spent before it starts (it stopped at its
    time limit, and the limit was not raised): then it trains no step and says so, as when the
    limit is reached (the check after each step trained one more step at every such resume)."""
    if step == 0 or step >= steps or not clock.timed_out():
        return False
    _say_time_limit(stage_dir, step, steps, clock.stage.max_minutes, bar)
    return True


def _trim_log(path: Path, step: int) -> None:
    """Drop the records of ``path`` (log.jsonl) logged after ``step``, the checkpoint a resume
    starts from, so the log holds one series of steps. A line cut short (a kill while it was
    appended, after the checkpoint's last save) goes too."""
    if not path.is_file():
        return

    def logged_step(line: str) -> float:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            return math.inf
        return rec.get("step", 0) if isinstance(rec, dict) else math.inf

    lines = path.read_text().splitlines()
    keep = [ln for ln in lines if not ln.strip() or logged_step(ln) <= step]
    if len(keep) != len(lines):
        _write_whole_swept(path, lambda tmp: tmp.write_text("".join(ln + "\n" for ln in keep)))


def _write_whole_swept(path: Path, write: Callable[[Path], object]) -> None:
    """:func:`write_whole`, first removing the temporary files of ``path`` that a writer killed
    outright (SIGKILL, the out-of-memory killer) left an hour or more ago: each write takes a
    fresh temporary name, so nothing else would ever overwrite or remove them."""
    from ..video import remove_stale_temps

    remove_stale_temps(path)
    write_whole(path, write)


def _usual_mode(path: Path) -> None:
    """Give ``path`` the mode ``open()`` creates files with (0666 less the umask): safetensors'
    ``save_file`` creates them 0600, unreadable to the others who may read the .json beside them."""
    mask = os.umask(0)  # the umask can only be read by setting it: put back at once
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def _write_init(path: Path, rec: dict[str, Any]) -> None:
    """A stage's ``init.json`` (its warm start, one line), whole: written in place, a Ctrl-C or a full
    disk cut it short (the warm start's rewrites too, replacing the whole record), and ``export``,
    which reads it, failed on it with a raw JSONDecodeError."""
    text = json.dumps(rec) + "\n"
    write_whole(path, lambda tmp: tmp.write_text(text))


def _drop_init(stage_dir: Path) -> None:
    """A stage trained from the start with no warm start: the ``init.json`` a run killed before its
    first checkpoint left (its warm start, not this one's) is removed, else export credited these
    weights with that start's source and steps."""
    (stage_dir / "init.json").unlink(missing_ok=True)


def _write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON at ``path``, written to a temporary file first and renamed."""
    text = json.dumps(obj, indent=2) + "\n"
    _write_whole_swept(path, lambda tmp: tmp.write_text(text))


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists and tuples compare as lists)."""
    if isinstance(d, dict):
        return {k: v for key, val in d.items() for k, v in _flat(val, f"{prefix}{key}.").items()}
    return {prefix[:-1]: list(d) if isinstance(d, tuple) else d}


#: the long options of :func:`main`, each of which argparse also takes by a unique prefix (``--conf smoke``)
_OPTIONS = ("--stage", "--config", "--smoke", "--out", "--resume", "--set", "--init-from", "--help")


def _recorded_options(stage_dir: Path, kind: str) -> list[str] | None:
    """The ``--config`` and ``--set {kind}.arch...`` options of the command that last trained
    ``stage_dir`` (its ``run_config.json``), as command-line words; None where it has no record."""
    path = stage_dir / "run_config.json"
    if not path.is_file():
        return None
    argv = json.loads(path.read_text()).get("argv")
    if not isinstance(argv, list):
        return None
    name, sets, words = "cpu", [], [str(a) for a in argv]
    for i, a in enumerate(words):
        flag, eq, value = a.partition("=")
        if not eq:  # --config NAME, not --config=NAME
            value = words[i + 1] if i + 1 < len(words) else ""
        full = [o for o in _OPTIONS if o.startswith(flag)] if flag.startswith("--") else []
        flag = full[0] if len(full) == 1 else flag  # argparse took --conf for --config
        if flag == "--smoke":
            name = "smoke"
        elif flag == "--config":
            name = value
        elif flag == "--set" and value.startswith(f"{kind}.arch"):
            sets.append(value)
    return ["--config", name, *(w for v in sets for w in ("--set", v))]


def _check_resumed_arch(stage_dir: Path, kind: str, conf: dict[str, Any]) -> None:
    """Refuse to resume ``stage_dir``'s checkpoint into a net of another architecture, naming
    the keys that differ and the options it was trained with (before anything is written, so
    the run stays as it was)."""
    path = stage_dir / "config.json"
    if not path.is_file():
        return
    old = json.loads(path.read_text())
    new = json.loads(json.dumps(conf))
    if kind == "expert":  # {"arch": ..., "expert": ...}: when it takes over may change, its net may not
        old, new = old.get("arch", old), new["arch"]
    # a field added since the checkpoint's config.json was written has its default there, as from_dict reads it
    defaults = json.loads(json.dumps(_ARCH_CLASSES[kind]().to_dict()))
    a, b = _flat({**defaults, **old} if isinstance(old, dict) else old), _flat(new)
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if diff:
        shown = ", ".join(f"{kind}.arch.{k}: checkpoint {a.get(k)!r}, this run {b.get(k)!r}" for k in diff)
        # the difference may come from --config as well as from --set: name what the checkpoint was trained with
        was = _recorded_options(stage_dir, kind)
        fix = (f"resume with {shlex.join(was)} (what it was trained with, from its run_config.json)" if was else
               f"leave those --set {kind}.arch... overrides out to continue it")  # fmt: skip
        raise ArgumentError(f"--resume: {stage_dir} holds a {kind} of another architecture ({shown}); {fix}, or train "
                            "the new one into another --out.")  # fmt: skip


def _gen(seed: int, step: int, salt: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + salt * 7919 + step) % (2**63))


def _lr(step: int, peak: float, warmup: int, total: int, time_frac: float = 0.0) -> float:
    """Linear warm-up to ``peak`` (reached exactly at step ``warmup``), then cosine decay to 10%
    over the steps after it, or faster where ``time_frac`` (the share of the time budget left
    after the warm-up that is spent: :class:`_Clock`) is ahead of the steps' share: the stage
    then still anneals before ``max_minutes`` end it."""
    if step < warmup:
        return peak * (step + 1) / max(1, warmup)
    frac = min(1.0, max((step - warmup) / max(1, total - warmup), time_frac))
    if frac <= 0:
        return peak
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


class _Logger:
    """Appends records to ``path`` (log.jsonl) of a stage that starts at ``step``: records of
    later steps (left by a run killed before it saved a checkpoint, which this one trains
    again) are dropped first, so the log holds one series of steps."""

    def __init__(self, path: Path, step: int = 0):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        _trim_log(path, step)

    def __call__(self, **rec: Any) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(rec) + "\n")


def _save_ckpt(stage_dir: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, step: int,
               ema: dict[str, torch.Tensor] | None = None, elapsed_s: float = 0.0,
               loss_avg: float | None = None, extra: dict[str, Any] | None = None) -> None:  # fmt: skip
    """Save the stage's weights, EMA and ``state.pt`` (optimiser, step, ``extra``) at ``step``.

    All three are written under temporary names first, each stamped with ``step`` (the
    safetensors' metadata, ``state.pt``'s ``step``), then renamed, ``state.pt`` last; a Ctrl-C
    (or SIGTERM) meanwhile waits until they are in place. A kill between the renames leaves the
    rest as ``*.tmp`` files of that step, which the next ``--resume`` puts in place
    (:func:`_settle_ckpt`)."""
    from safetensors.torch import save_file

    stage_dir.mkdir(parents=True, exist_ok=True)
    meta = {"step": str(int(step))}
    with _ctrl_c_held():
        files = [("model", {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()})]
        if ema is not None:
            files.append(("ema", {k: v.contiguous().cpu() for k, v in ema.items()}))
        for name, tensors in files:
            save_file(tensors, str(stage_dir / f"{name}.tmp"), metadata=meta)
            _usual_mode(stage_dir / f"{name}.tmp")
        state = {"step": step, "elapsed_s": float(elapsed_s), "optimizer": opt.state_dict(), **(extra or {})}
        if loss_avg is not None:  # the logged running mean carries on across a resume
            state["loss_avg"] = float(loss_avg)
        torch.save(state, stage_dir / "state.tmp")
        for name, _ in files:  # every file of this step is written: put them in place, state.pt last
            (stage_dir / f"{name}.tmp").replace(stage_dir / f"{name}.safetensors")
        (stage_dir / "state.tmp").replace(stage_dir / "state.pt")


def _read_ckpt_file(path: Path, read: Callable[[Path], Any]) -> Any:
    """``read(path)`` of a checkpoint's file, or an ArgumentError naming the file where it is
    missing or damaged (cut short by a copy that did not finish, say), not safetensors' or
    torch's own error."""
    try:
        return read(path)
    except Exception as e:  # safetensors', zipfile's, pickle's and torch's errors of a damaged file
        if from_an_import(e):  # a broken safetensors: its own error (it was "damaged: remove the folder, train again")
            raise
        said = " ".join(f"{type(e).__name__}: {e}".split())[:160]
        why = f"cannot be read ({said})" if path.exists() else "is missing"
        raise ArgumentError(f"{path} {why}: the checkpoint in {path.parent} is incomplete or damaged and cannot be used; "
                            f"restore that folder from a copy, or train {path.parent.name} again (remove {path.parent}, "
                            "or pick another --out).") from None  # fmt: skip


def _weights_step(path: Path) -> int | None:
    """The step stamped in a checkpoint's safetensors file (None: saved before steps were stamped)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        step = (f.metadata() or {}).get("step")
    return None if step is None else int(step)


def _load_state_file(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _state_file_step(path: Path) -> int:
    return int(_load_state_file(path)["step"])


def _ckpt_steps(stage_dir: Path) -> dict[str, int | None]:
    """The step each file of ``stage_dir``'s checkpoint holds (``model.safetensors``,
    ``ema.safetensors`` where there is one, ``state.pt``); None for a file saved before steps
    were stamped in the weights."""
    steps: dict[str, int | None] = {"model.safetensors": _read_ckpt_file(stage_dir / "model.safetensors", _weights_step)}
    if (stage_dir / "ema.safetensors").is_file():
        steps["ema.safetensors"] = _read_ckpt_file(stage_dir / "ema.safetensors", _weights_step)
    steps["state.pt"] = _read_ckpt_file(stage_dir / "state.pt", _state_file_step)
    return steps


def _torn(steps: dict[str, int | None]) -> bool:
    """True when stamped files disagree (a checkpoint whose weights carry no step is an older one: not torn)."""
    if steps.get("model.safetensors") is None:
        return False
    return len({v for v in steps.values()}) > 1


def _first_save_cut_short(stage_dir: Path) -> bool:
    """True when the first checkpoint of ``stage_dir`` was cut short between its renames:
    ``model.safetensors`` is in place, ``state.pt`` not yet, and ``state.tmp`` is of its step."""
    model, tmp = stage_dir / "model.safetensors", stage_dir / "state.tmp"
    if (stage_dir / "state.pt").is_file() or not (model.is_file() and tmp.is_file()):
        return False
    try:
        n = _weights_step(model)
        return n is not None and _state_file_step(tmp) == n
    except Exception:  # noqa: BLE001 (a damaged file is no finished save)
        return False


def _settle_ckpt(stage_dir: Path) -> None:
    """Before ``stage_dir``'s checkpoint is read: finish a save that a kill cut short between
    its renames (the files still under ``*.tmp`` are of the step ``model.safetensors`` already
    holds; the first save too, :func:`_first_save_cut_short`), and refuse a checkpoint whose
    files are of different steps, or missing or damaged (:func:`_read_ckpt_file`;
    ``model.safetensors`` is in place before ``state.pt`` is)."""
    if _first_save_cut_short(stage_dir):
        ema, ema_tmp = stage_dir / "ema.safetensors", stage_dir / "ema.tmp"
        if not ema.is_file() and ema_tmp.is_file():
            ema_tmp.replace(ema)  # of another step, it is refused as torn below
        (stage_dir / "state.tmp").replace(stage_dir / "state.pt")
    if not (stage_dir / "state.pt").is_file():
        return
    steps = _ckpt_steps(stage_dir)
    if not _torn(steps):
        return
    n = steps["model.safetensors"]
    readers = {"ema.safetensors": _weights_step, "state.pt": _state_file_step}
    for name, read in readers.items():
        tmp = stage_dir / (name.split(".")[0] + ".tmp")
        if name not in steps or steps[name] == n or not tmp.is_file():
            continue
        try:
            ok = read(tmp) == n
        except Exception:  # noqa: BLE001 (a half-written file is no part of that save)
            ok = False
        if ok:
            tmp.replace(stage_dir / name)
    steps = _ckpt_steps(stage_dir)
    if _torn(steps):
        shown = ", ".join(f"{k} of step {v}" for k, v in steps.items())
        raise ArgumentError(f"--resume: the checkpoint in {stage_dir} is torn ({shown}: a save cut short by a kill or a "
                            f"crash), and cannot be resumed as one; start {stage_dir.name} over (remove {stage_dir}, or "
                            "pick another --out), or restore that folder from a copy.")  # fmt: skip


def _read_state(stage_dir: Path) -> dict[str, Any]:
    """``stage_dir``'s ``state.pt`` once its checkpoint is settled (:func:`_settle_ckpt`)."""
    state_path = stage_dir / "state.pt"
    _settle_ckpt(stage_dir)
    if not state_path.is_file():
        raise ArgumentError(f"--resume: no checkpoint at {state_path}; run the stage without --resume first.")
    for name in ("model.tmp", "ema.tmp", "state.tmp"):  # what a save cut short left and the settle did not use: a
        (stage_dir / name).unlink(missing_ok=True)  # resume with nothing left to train never saves over them
    return torch.load(state_path, map_location="cpu", weights_only=True)


def _load_ckpt(stage_dir: Path, model: torch.nn.Module, opt: torch.optim.Optimizer,
               ema: dict[str, torch.Tensor] | None = None,
               state: dict[str, Any] | None = None) -> tuple[int, float, float | None, dict[str, Any]]:  # fmt: skip
    """Load ``stage_dir``'s checkpoint into ``model``, ``opt`` (and ``ema``); ``state`` is its
    ``state.pt`` where the caller has read it (:func:`_read_state`). Returns the step, the
    elapsed seconds, the running loss and the state."""
    from safetensors.torch import load_file

    if state is None:
        state = _read_state(stage_dir)
    model.load_state_dict(load_file(str(stage_dir / "model.safetensors")))
    opt.load_state_dict(state["optimizer"])
    if ema is not None:  # every save of a stage with an EMA writes it: without it, the EMA would restart from the init
        saved = _read_ckpt_file(stage_dir / "ema.safetensors", lambda p: load_file(str(p)))
        ema.update({k: v.to(ema[k].device) if k in ema else v for k, v in saved.items()})  # on the model's device (a GPU's)
    loss_avg = state.get("loss_avg")  # the logged running mean (checkpoints before it was saved: None)
    _trim_log(stage_dir / "log.jsonl", int(state["step"]))  # records of steps after it (a crash, a kill) go
    return (int(state["step"]), float(state.get("elapsed_s", 0.0)), None if loss_avg is None else float(loss_avg),
            state)  # fmt: skip


_CLIP_IDS: dict[tuple, tuple[str, str]] = {}


def _clip_ids(path: Path) -> tuple[str, str]:
    """Two short ids of the CLIP checkpoint at ``path``: of its tensors exactly, and of them
    rounded to float16 (the precision export stores a CLIP in, so a run's float32 file, its
    export, and a warm start's float32 copy of that export share the second)."""
    from safetensors.torch import load_file

    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _CLIP_IDS:
        exact, half = hashlib.sha256(), hashlib.sha256()
        for k, v in sorted(load_file(str(path)).items()):
            head = f"{k}{tuple(v.shape)}".encode()
            exact.update(head + str(v.dtype if not v.is_floating_point() else torch.float32).encode())
            exact.update((v.float() if v.is_floating_point() else v).contiguous().numpy().tobytes())
            half.update(head)
            half.update((v.half() if v.is_floating_point() else v).contiguous().numpy().tobytes())
        _CLIP_IDS.clear()
        _CLIP_IDS[key] = (exact.hexdigest()[:16], half.hexdigest()[:16])
    return _CLIP_IDS[key]


def _cache_fingerprint(cfg: TrainConfig, out: Path) -> dict[str, Any]:
    """What ``build_cache(cfg, out)`` gives the decoder, prior, expert and upscaler: the CLIP
    that encodes it (``clip``: :func:`_clip_ids`' exact id; ``clip_fp16``: its float16 one,
    which export compares) and the settings it is keyed on."""
    clip = out / "clip" / "model.safetensors"
    ids = _clip_ids(clip) if clip.is_file() else (None, None)
    n_emoji = _n_emoji(cfg, cfg.cache.n_images)
    return {"clip": ids[0], "clip_fp16": ids[1], "n_images": cfg.cache.n_images, "p_two": cfg.cache.p_two,
            "seed": cfg.seed, "render_size": cfg.render_size, "emoji_fraction": cfg.data.emoji_fraction,
            "data_index": _emoji_data(cfg).fingerprint() if n_emoji else None}  # fmt: skip


def _data_changes(kind: str, stage_dir: Path, recorded: dict[str, Any], now: dict[str, Any]) -> str:
    """What differs between the cache ``kind`` trained on (``recorded``) and the one ``now``
    describes, in words ("" where nothing does)."""
    keys = [k for k in now if k != "clip_fp16" and not (kind == "upscaler" and k == "clip")]  # renders only
    diff = [k for k in keys if recorded.get(k) != now.get(k)]
    prefix = {"emoji_fraction": "data.", "data_index": "data.", "n_images": "cache.", "p_two": "cache."}
    return ", ".join(f"the CLIP that encodes the cache ({stage_dir.parent / 'clip' / 'model.safetensors'}) changed "
                     f"(id {recorded.get(k)} -> {now.get(k)})" if k == "clip" else
                     f"{prefix.get(k, '')}{k} {recorded.get(k)!r} -> {now.get(k)!r}" for k in diff)  # fmt: skip


def _check_resume_data(kind: str, stage_dir: Path, recorded: dict[str, Any] | None, now: dict[str, Any],
                       *, warn: bool = True) -> None:  # fmt: skip
    """Refuse to resume ``kind`` on a cache of other data than its checkpoint trained on
    (``recorded``, its ``state.pt``'s ``cache_fingerprint``; ``now``: :func:`_cache_fingerprint`).
    A checkpoint without the record (saved before it existed) is resumed, with a warning."""
    if recorded is None:
        if warn:
            print(f"--resume: {stage_dir / 'state.pt'} predates the record of the data a stage trained on, so whether "
                  f"{kind} goes on with the same cache is not checked (its next checkpoint records it)",
                  file=sys.stderr)  # fmt: skip
        return
    shown = _data_changes(kind, stage_dir, recorded, now)
    if not shown:
        return
    raise ArgumentError(f"--resume: {kind} in {stage_dir} trained on a cache of other data than this run would give it "
                        f"({shown}); restore the settings (and CLIP) it trained with (its run_config.json lists the "
                        f"settings), or start {kind} over: remove {stage_dir} (or pick another --out) and run it without "
                        "--resume.")  # fmt: skip


#: exported file of each stage in a weights folder (``latentlab/mini/weights/`` or ``export --to``)
_EXPORTED = {"clip": "mini_clip.safetensors", "decoder": "mini_decoder.safetensors", "prior": "mini_prior.safetensors",
             "upscaler": "mini_upscaler.safetensors", "expert": "mini_expert.safetensors"}  # fmt: skip


def _init_state(init_from: Path, kind: str, stage_dir: Path) -> dict[str, torch.Tensor]:
    """Float32 state dict of ``kind`` from the exported weights in ``init_from`` (a warm start
    for a fresh run folder); records where it came from in ``stage_dir/init.json``."""
    import hashlib

    from safetensors.torch import load_file

    path = Path(init_from) / _EXPORTED[kind]
    if not path.is_file():
        raise ArgumentError(f"--init-from: no {path}; point it at a weights folder such as latentlab/mini/weights.")
    manifest = Path(init_from) / "manifest.json"
    step = None
    if manifest.is_file():
        step = json.loads(manifest.read_text()).get("files", {}).get(path.name, {}).get("step")
    stage_dir.mkdir(parents=True, exist_ok=True)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    _write_init(stage_dir / "init.json", {"init_from": str(path), "init_step": step, "sha256": sha})
    return {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}


_ATTNPOOL_POS = "visual.attnpool.positional_embedding"


def _fit_attnpool_grid(state: dict[str, torch.Tensor], model: torch.nn.Module, stage_dir: Path) -> dict[str, torch.Tensor]:
    """``state`` of a CLIP whose ModifiedResNet tower ran at another image size, made to fit
    ``model``: the attention pool's position embedding (one row for the pooled token, then
    one per cell of the last feature map, image_size / 32 on a side) is resized to the
    model's grid, bicubic as open_clip resizes position embeddings (a 1x1 grid, the 32 px
    tower's, is repeated exactly). Everything else in the tower is convolutional and loads
    as it is. Records the change in ``stage_dir/init.json``; a state that fits is returned as it is."""
    want = model.state_dict().get(_ATTNPOOL_POS)
    have = state.get(_ATTNPOOL_POS)
    if want is None or have is None or have.shape == want.shape:
        return state
    g_have, g_want = math.isqrt(have.shape[0] - 1), math.isqrt(want.shape[0] - 1)
    if g_have**2 + 1 != have.shape[0] or g_want**2 + 1 != want.shape[0] or have.shape[1] != want.shape[1]:
        raise ArgumentError(f"--init-from: the CLIP's {_ATTNPOOL_POS} has shape {tuple(have.shape)}, this model's "
                            f"{tuple(want.shape)}; only the grid of a ModifiedResNet tower can be resized.")  # fmt: skip
    grid = have[1:].T.reshape(1, -1, g_have, g_have)
    if g_have == 1:
        grid = grid.expand(1, -1, g_want, g_want)
    else:
        grid = torch.nn.functional.interpolate(grid, size=(g_want, g_want), mode="bicubic", align_corners=False)
    out = {**state, _ATTNPOOL_POS: torch.cat([have[:1], grid.reshape(have.shape[1], -1).T]).contiguous()}
    init_json = stage_dir / "init.json"
    if init_json.is_file():
        rec = json.loads(init_json.read_text())
        _write_init(init_json, {**rec, "attnpool_grid": [g_have, g_want]})
    return out


def _add_coords(state: dict[str, torch.Tensor], fresh: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A decoder's state with its input convolution widened for the two coordinate channels
    (``DecoderConfig.coords``), their weights taken from ``fresh`` (a new model's initialisation).

    Not zero: a decoder that has never known where a pixel is has no use for the coordinates
    yet, so zero weights get no steady gradient (a run of 4,000 CPU steps so started left them
    near 0.0015 and its layouts unchanged); random ones put a position pattern into every
    feature map from the first step, which the embedding's and caption's scale and shift can
    then turn into "in the top half"."""
    w = state["unet.conv_in.weight"]
    return {**state, "unet.conv_in.weight": torch.cat([w, fresh["unet.conv_in.weight"][:, w.shape[1]:].to(w.dtype)], dim=1)}


def _check_upcycle(theirs: DecoderConfig, arch: DecoderConfig) -> None:
    """Refuse ``arch`` unless it is ``theirs`` at twice the image size with one more leading
    level of ``block_out_channels[0]`` channels (what :func:`_upcycle_decoder` warm-starts)."""
    ch = tuple(theirs.block_out_channels)
    want = replace(theirs, image_size=2 * theirs.image_size, block_out_channels=(ch[0], *ch))
    if arch != want:
        raise ArgumentError(
            f"decoder.upcycle: the decoder in --init-from ({theirs.to_dict()}) can warm-start only "
            f"decoder.arch={{'image_size': {want.image_size}, 'block_out_channels': {list(want.block_out_channels)}}} "
            "with its other fields; this run builds " + str(arch.to_dict()) + "."
        )


def _upcycle_decoder(state: dict[str, torch.Tensor], theirs: DecoderConfig, arch: DecoderConfig,
                     fresh: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], float]:  # fmt: skip
    """A decoder of twice ``theirs``' image size, warm-started from ``state`` (``theirs``).

    ``arch`` must be ``theirs`` with ``image_size`` doubled and one more leading level of
    ``block_out_channels[0]`` channels. Its down blocks 1.. are their down blocks 0.., every
    other tensor of the same name and shape (conv_in, time and embedding projections, the mid
    block, the up blocks but the new last one and the upsampler before it, the output
    convolution) is theirs; the rest keeps ``fresh``'s initialisation. Each level so sees
    features of the scale it was trained on, one downsampling later. Returns the state and
    the fraction of parameters copied.
    """
    import re

    _check_upcycle(theirs, arch)
    out, copied, total = dict(fresh), 0, 0
    for k, v in fresh.items():
        m = re.match(r"unet\.down_blocks\.(\d+)\.(.*)", k)
        src = (None if m[1] == "0" else f"unet.down_blocks.{int(m[1]) - 1}.{m[2]}") if m else k
        total += v.numel()
        if src in state and state[src].shape == v.shape:
            out[k] = state[src]
            copied += v.numel()
    return out, copied / total


def _progress(total: int, start: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc=desc, mininterval=10.0, dynamic_ncols=True)


def _prepare(images: list[np.ndarray], preprocess) -> tuple[torch.Tensor, np.ndarray]:
    """CLIP inputs (b,3,s,s) through open_clip's own preprocess, and the same pixels as uint8 (b,s,s,3)."""
    from PIL import Image

    x = torch.stack([preprocess(Image.fromarray(im)) for im in images])
    norm = preprocess.transforms[-1]
    mean = torch.tensor(norm.mean).view(1, 3, 1, 1)
    std = torch.tensor(norm.std).view(1, 3, 1, 1)
    u8 = ((x * std + mean) * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return x, u8


def _variants(scene: shapes.Scene, rng: np.random.Generator, k: int) -> list[shapes.Scene]:
    """``scene`` and ``k - 1`` hard negatives: the same scene with one object's shape (or,
    for the last one, colour) changed, so captions differ in a single word."""

    out = [scene]
    for j in range(1, k):
        i = int(rng.integers(len(scene.objects)))
        o = scene.objects[i]
        other = scene.objects[1 - i] if len(scene.objects) == 2 else None
        for _ in range(20):
            if j < k - 1:
                new = replace(o, shape=shapes.SHAPES[int(rng.integers(len(shapes.SHAPES)))])
            else:
                new = replace(o, colour=list(shapes.COLOURS)[int(rng.integers(len(shapes.COLOURS)))])
            if new != o and all(new != x.objects[i] for x in out) and (other is None or
                                                                     (new.shape, new.colour) != (other.shape, other.colour)):
                break
        objs = list(scene.objects)
        objs[i] = new
        out.append(replace(scene, objects=tuple(objs)))
    return out


#: each relation of the shapes world and its opposite ("a above b" shows the same as "b below a")
_OPPOSITE = {"above": "below", "below": "above", "left of": "right of", "right of": "left of"}


def _relation_variants(scene: shapes.Scene, rng: np.random.Generator, k: int) -> list[shapes.Scene]:
    """A two-object ``scene`` and ``k - 1`` hard negatives that keep both objects: the two
    swapped in place (its caption's relation is then the opposite one), then their colours
    swapped (when they differ), then :func:`_variants`' one-object changes."""

    a, b = scene.objects
    out = [scene, replace(scene, objects=(replace(a, cx=b.cx, cy=b.cy), replace(b, cx=a.cx, cy=a.cy)),
                          relation=_OPPOSITE[scene.relation])]  # fmt: skip
    if a.colour != b.colour:
        out.append(replace(scene, objects=(replace(a, colour=b.colour), replace(b, colour=a.colour))))
    out += _variants(scene, rng, k)[1:]
    return out[:k]


_DATA_CACHE: dict[tuple, Any] = {}


def _index_path(cfg: TrainConfig) -> Path:
    """``cfg.data.index``; the default one (relative to the working directory) is looked for as
    :func:`data.default_cache_dir` looks, in the working directory and then in the checkout
    latentlab runs from, so a run started from another folder finds the data. A path given
    with ``data.index`` is taken as it is."""
    from . import data

    if cfg.data.index != DataStage.index:
        return Path(cfg.data.index)
    return data.index_file(data.default_cache_dir())


def _emoji_data(cfg: TrainConfig, split: str = "train"):
    """The emoji / clip-art index of ``cfg.data`` (a torch-free ``DataIndex``), loaded once per process."""
    from . import data

    p = _index_path(cfg)
    if not p.is_file():
        where = ("" if cfg.data.index != DataStage.index else
                 f" (the default data.index: {DataStage.index} of the working directory, else of the checkout "
                 "latentlab runs from)")  # fmt: skip
        raise ArgumentError(
            f"data.emoji_fraction={cfg.data.emoji_fraction} needs the data index {p}{where}: run "
            "`python -m latentlab.mini.data fetch` and `python -m latentlab.mini.data index` "
            "(or set data.index=PATH, or data.emoji_fraction=0)."
        )
    key = (str(p.resolve()), p.stat().st_mtime, split, tuple(cfg.data.sources), cfg.render_size)
    if key not in _DATA_CACHE:
        idx = data.load_index(p, split=split, sources=cfg.data.sources or None, size=cfg.render_size)
        if len(idx) == 0:
            raise ArgumentError(f"the data index {p} has no {split!r} images for sources {cfg.data.sources or 'all'}.")
        _DATA_CACHE[key] = idx
    return _DATA_CACHE[key]


def _index_names(cfg: TrainConfig) -> frozenset[str]:
    """Every image name of the whole index (both splits): keywords never used as captions."""
    p = _index_path(cfg)
    key = ("names", str(p.resolve()), p.stat().st_mtime)
    if key not in _DATA_CACHE:
        from . import data

        _DATA_CACHE[key] = frozenset(data.load_index(p).names())
    return _DATA_CACHE[key]


def _n_emoji(cfg: TrainConfig, n: int) -> int:
    """How many of ``n`` images come from the emoji index (0 when ``data.emoji_fraction`` is 0)."""
    return int(round(cfg.data.emoji_fraction * n)) if cfg.data.emoji_fraction > 0 else 0


def augment_image(image: np.ndarray, rng: np.random.Generator, *, zoom=(0.75, 1.15), shift: float = 0.08) -> np.ndarray:
    """``image`` (uint8 ``(s, s, 3)``) zoomed by a random factor in ``zoom`` about its centre and
    shifted by up to ``shift`` of its side each way, the uncovered border filled with its
    top-left pixel's colour (the drawings' background). Same size and dtype; colours unchanged."""
    from PIL import Image

    s = image.shape[0]
    z = float(rng.uniform(*zoom))
    dx, dy = rng.uniform(-shift, shift, size=2) * s
    c = (s - 1) / 2
    # PIL's affine maps output (x, y) to input (a x + b y + c, d x + e y + f)
    coeffs = (1 / z, 0.0, c - (c + dx) / z, 0.0, 1 / z, c - (c + dy) / z)
    fill = tuple(int(v) for v in image[0, 0])
    out = Image.fromarray(image).transform((s, s), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR,
                                           fillcolor=fill)  # fmt: skip
    return np.asarray(out)


def _clip_batch(cfg: TrainConfig, step: int, batch_size: int, preprocess, tokenizer):
    """Groups of ``clip_group`` scenes that differ in one object's shape (or colour): with
    random scenes alone, colour and background almost always tell a batch's captions apart
    and the contrastive loss gives shape next to no gradient. With ``data.emoji_fraction > 0``
    that fraction of the batch is emoji / clip-art pairs drawn from a generator of its own, so
    the shapes part is drawn exactly as before (and is bit-identical when the fraction is 0)."""
    rng = np.random.default_rng([cfg.seed, 1, step])
    k = max(1, min(cfg.clip.group, batch_size))
    n_emoji = _n_emoji(cfg, batch_size)
    n_shapes = batch_size - n_emoji
    scenes, texts = [], []
    rel = np.random.default_rng([cfg.seed, 7, step])  # its own stream: with relation_negatives 0 nothing changes
    while len(scenes) < n_shapes:
        template = int(rng.integers(shapes.N_TEMPLATES))
        if cfg.clip.relation_negatives > 0 and k > 1 and rel.random() < cfg.clip.relation_negatives:
            group = _relation_variants(shapes.sample_scene(rel, n_objects=2), rel, k)
        else:
            group = _variants(shapes.sample_scene(rng), rng, k)
        for s in group[: n_shapes - len(scenes)]:
            scenes.append(s)
            texts.append(shapes.caption(s, template))
    images = [shapes.render_scene(s, cfg.render_size) for s in scenes]
    if n_emoji:
        tags = cfg.data.tag_captions
        e_images, e_texts = _emoji_data(cfg).sample(np.random.default_rng([cfg.seed, 5, step]), n_emoji, tag_prob=tags,
                                                    exclude_tags=_index_names(cfg) if tags > 0 else ())  # fmt: skip
        if cfg.data.augment > 0:
            aug = np.random.default_rng([cfg.seed, 9, step])
            e_images = [augment_image(im, aug) if aug.random() < cfg.data.augment else im for im in e_images]
        images += e_images
        texts += e_texts
    x, _ = _prepare(images, preprocess)
    return x, tokenizer(texts), texts


@torch.no_grad()
def relation_accuracy(model, preprocess, tokenizer, *, n: int = 300, seed: int = 900_000, device="cpu") -> dict:
    """How well the CLIP reads two-object scenes: on ``n`` fresh two-object scenes, the share
    where the image's true caption scores above the same caption with the opposite relation
    (``clip_relation``; "left of" for "right of") and above the caption with the two colours
    swapped (``clip_colour_binding``, scenes whose colours differ). 0.5 is chance."""

    was_training = model.training
    model.eval()
    scenes = [shapes.sample_scene(seed + i, n_objects=2) for i in range(n)]
    x, _ = _prepare([shapes.render_scene(s, 64) for s in scenes], preprocess)
    img = torch.nn.functional.normalize(model.encode_image(x.to(device)).float(), dim=-1)
    rel, col = [], []
    for s, z in zip(scenes, img):
        a, b = s.objects
        texts = [shapes.caption(s), shapes.caption(replace(s, relation=_OPPOSITE[s.relation])),
                 shapes.caption(replace(s, objects=(replace(a, colour=b.colour), replace(b, colour=a.colour))))]  # fmt: skip
        sims = (torch.nn.functional.normalize(model.encode_text(tokenizer(texts).to(device)).float(), dim=-1) @ z).tolist()
        rel.append(sims[0] > sims[1])
        if a.colour != b.colour:
            col.append(sims[0] > sims[2])
    model.train(was_training)
    return {"clip_relation": float(np.mean(rel)), "clip_colour_binding": float(np.mean(col))}


@torch.no_grad()
def zero_shot_accuracy(model, preprocess, tokenizer, *, n: int = 240, seed: int = 12345, device="cpu") -> dict:
    """Zero-shot accuracy on fresh single-object scenes against the prompts "a {colour} {shape}".

    Runs in eval mode (the ResNet tower's batch norm uses its running statistics) and leaves
    the model in the mode it found it in."""
    was_training = model.training
    model.eval()
    combos = [(c, s) for c in shapes.COLOURS for s in shapes.SHAPES]
    prompts = [f"{'an' if c[0] in 'aeiou' else 'a'} {c} {s}" for c, s in combos]
    t = torch.nn.functional.normalize(model.encode_text(tokenizer(prompts).to(device)).float(), dim=-1)
    scenes = shapes.sample_scenes(seed, n, n_objects=1)
    x, _ = _prepare([shapes.render_scene(s, 64) for s in scenes], preprocess)
    i = torch.nn.functional.normalize(model.encode_image(x.to(device)).float(), dim=-1)
    pred = (i @ t.T).argmax(-1).cpu().tolist()
    both = colour = shape = 0
    for s, p in zip(scenes, pred):
        c, sh = combos[p]
        colour += c == s.objects[0].colour
        shape += sh == s.objects[0].shape
        both += (c, sh) == (s.objects[0].colour, s.objects[0].shape)
    model.train(was_training)
    return {"zero_shot_both": both / n, "zero_shot_colour": colour / n, "zero_shot_shape": shape / n}


# -- stages -------------------------------------------------------------------------------


def word_vector_rows(model, tokenizer, cfg: TrainConfig, *, write: bool = True) -> torch.Tensor:
    """Freeze the token-embedding rows of the whole-word tokens that have GloVe vectors
    (:func:`~latentlab.mini.data.token_word_vectors`) and return their token ids.

    With ``write``, each such row is first set to its unit word vector mapped into the
    embedding width by a fixed random matrix with orthonormal columns (seeded by ``cfg.seed``),
    times the table's mean row length, so the rows keep the vectors' angles and the table's
    scale. A gradient hook then zeroes those rows' gradients; as the embedding table is trained
    without weight decay, AdamW leaves them exactly as they are. Resuming passes
    ``write=False``: the checkpoint holds the rows already, only the hook is needed again."""
    from . import data

    ids, vecs = data.token_word_vectors(tokenizer.encoder, Path(cfg.data.index).parent)
    weight = model.token_embedding.weight
    rows = torch.from_numpy(ids).to(weight.device)
    if write:
        g = torch.Generator().manual_seed(cfg.seed)
        q, _ = torch.linalg.qr(torch.randn(weight.shape[1], vecs.shape[1], generator=g, dtype=torch.float64))
        scale = weight.detach().float().norm(dim=1).mean()
        with torch.no_grad():
            weight[rows] = (torch.from_numpy(vecs).double() @ q.T).float().mul(scale).to(weight.device, weight.dtype)
    frozen = torch.zeros(weight.shape[0], 1, dtype=torch.bool, device=weight.device)
    frozen[rows] = True
    weight.register_hook(lambda grad: grad.masked_fill(frozen, 0.0))
    return rows


def train_clip(cfg: TrainConfig, out: Path, *, resume: bool = False, init_from: Path | None = None,
               on_start: Callable[[int], None] | None = None) -> dict:
    sc = cfg.clip
    torch.manual_seed(cfg.seed)
    model, preprocess, tokenizer = create_clip(None, device=cfg.device)
    if init_from is not None and not resume:
        model.load_state_dict(_fit_attnpool_grid(_init_state(init_from, "clip", out / "clip"), model, out / "clip"))
    # trained from the start: the warm start's record goes with the weights it describes, at the first save
    # (dropped at the start, a run killed before then left the CLIP that --init-from copied for a later stage,
    # which export ships as it is, without its record)
    scratch = init_from is None and not resume
    if sc.word_vectors:
        word_vector_rows(model, tokenizer, cfg, write=not resume)

    def train_mode() -> None:
        model.train()
        if sc.lock_image:  # batch norm keeps its running statistics: the image tower stays bit-identical
            model.visual.eval()

    if sc.lock_image:
        model.visual.requires_grad_(False)
    train_mode()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in params if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in params if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": sc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=sc.lr, betas=(0.9, 0.98), eps=1e-6)  # fmt: skip
    d = out / "clip"
    step, spent, _, state = _load_ckpt(d, model, opt) if resume else (0, 0.0, None, {})
    if on_start is not None:
        on_start(step)
    log = _Logger(d / "log.jsonl", step)
    clock = _Clock(sc, step, spent, state.get("schedule") if resume else {})
    bar = _progress(sc.steps, step, "clip")
    metrics: dict = {}
    start = step
    # the batch-norm statistics as they were before the step under way: a step cut short by
    # Ctrl-C (or SIGTERM) after its forward pass updated them is not in the checkpoint
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    before: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def save() -> None:
        if scratch:
            _drop_init(d)
        _save_ckpt(d, model, opt, step, elapsed_s=clock.elapsed(), extra=clock.state())

    try:
        while step < sc.steps and not (step == start and _time_spent_before(clock, d, step, sc.steps, bar)):
            for g in opt.param_groups:
                g["lr"] = clock.lr(step)
            before = [(b, b.detach().clone()) for m in norms if m.training for b in m.buffers()]
            x, tok, texts = _clip_batch(cfg, step, sc.batch_size, preprocess, tokenizer)
            with torch.autocast(torch.device(cfg.device).type, dtype=torch.bfloat16, enabled=sc.precision == "bf16"):
                img, txt, scale = model(x.to(cfg.device), tok.to(cfg.device))
            img, txt = torch.nn.functional.normalize(img.float(), dim=-1), torch.nn.functional.normalize(txt.float(), dim=-1)
            logits = scale.float() * img @ txt.T
            # identical captions in a batch are all positives (soft targets), not false negatives
            same = torch.tensor([[a == b for b in texts] for a in texts], dtype=torch.float32, device=logits.device)
            target = same / same.sum(-1, keepdim=True)
            loss = 0.5 * (torch.sum(-target * logits.log_softmax(-1), -1).mean()
                          + torch.sum(-target * logits.T.log_softmax(-1), -1).mean())  # fmt: skip
            opt.zero_grad(set_to_none=True)
            loss.backward()
            with _ctrl_c_held():  # and the step's log record: a checkpoint saved on Ctrl-C has it in the log
                opt.step()
                with torch.no_grad():
                    model.logit_scale.clamp_(0, math.log(100))
                step += 1
                before = None
                if step % sc.log_every == 0 or step == sc.steps:
                    log(stage="clip", step=step, loss=loss.item(), lr=opt.param_groups[0]["lr"],
                        scale=float(scale.detach()), elapsed_s=round(clock.elapsed(), 1))  # fmt: skip
            bar.update(1)
            timed_out = clock.timed_out()
            if step % sc.eval_every == 0 or step == sc.steps or timed_out:
                metrics = zero_shot_accuracy(model, preprocess, tokenizer, n=sc.eval_scenes, device=cfg.device)
                if cfg.data.emoji_fraction > 0 and cfg.data.eval_retrieval:
                    from .evaluate import emoji_retrieval

                    r = emoji_retrieval(model, preprocess, tokenizer, _emoji_data(cfg, "held-out"), device=cfg.device)
                    metrics.update({f"emoji_{k}": v for k, v in r.items() if k in ("top1", "top5", "chance_top5")})
                train_mode()
                log(stage="clip", step=step, **metrics)
                bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{metrics['zero_shot_both']:.2f}")
            if step % sc.ckpt_every == 0 or step == sc.steps or timed_out:
                save()
            if timed_out:
                _say_time_limit(d, step, sc.steps, sc.max_minutes, bar)
                break
    except KeyboardInterrupt:  # Ctrl-C: keep what was trained, say how to go on
        bar.close()
        if before is not None:  # the step was cut short: its batch-norm updates go too
            with torch.no_grad():
                for buf, saved in before:
                    buf.copy_(saved)
        if step > start or not (d / "state.pt").is_file():
            _save_quietly(save)
        raise StageInterrupted("clip", d, step) from None
    bar.close()
    if step > start:  # a resume with nothing left to train leaves the file (and the cache keyed on it) alone
        save()
    return {"step": step, **metrics}


@torch.no_grad()
def build_cache(cfg: TrainConfig, out: Path, *, force: bool = False) -> dict[str, torch.Tensor]:
    """Render ``cache.n_images`` scenes, encode them with the trained mini CLIP, save, return.

    The images are kept at ``render_size`` whatever the CLIP's input size, so one cache serves
    a decoder of any size up to it (the decoder stage shrinks them as the CLIP's preprocess
    does). Caches written before the eighth session hold the CLIP's 32 px input instead."""
    from safetensors.torch import load_file, save_file

    path = out / "cache" / "cache.safetensors"
    clip_ckpt = out / "clip" / "model.safetensors"
    if not clip_ckpt.is_file():
        raise ArgumentError(f"no trained mini CLIP at {clip_ckpt}: run `--stage clip --out {out}` first, or pass "
                            "--init-from latentlab/mini/weights (or another export) to encode the cache with its CLIP.")  # fmt: skip
    meta_path = path.with_suffix(".json")
    clip_mtime = clip_ckpt.stat().st_mtime
    clip_id = _clip_ids(clip_ckpt)[0]
    n, bs = cfg.cache.n_images, cfg.cache.batch_size
    n_emoji = _n_emoji(cfg, n)
    emoji = _emoji_data(cfg) if n_emoji else None
    # a fraction > 0 is recorded even where it rounds to no emoji image, so such a cache is reused too
    data_meta = {"emoji_fraction": cfg.data.emoji_fraction} if cfg.data.emoji_fraction > 0 else {}
    if emoji is not None:
        data_meta["data_index"] = emoji.fingerprint()
    if path.is_file() and not force and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        same_data = (meta.get("emoji_fraction", 0.0) == cfg.data.emoji_fraction
                     and meta.get("data_index") == data_meta.get("data_index"))  # fmt: skip
        same_scenes = (meta.get("p_two", CacheStage.p_two) == cfg.cache.p_two  # older caches: the defaults
                       and meta.get("seed", TrainConfig.seed) == cfg.seed
                       and meta.get("render_size", TrainConfig.render_size) == cfg.render_size)  # fmt: skip
        # the CLIP's id where the description has one (a copy of the run folder gives the file another mtime)
        same_clip = meta["clip_id"] == clip_id if "clip_id" in meta else meta.get("clip_mtime") == clip_mtime
        if meta.get("n_images") == cfg.cache.n_images and same_clip and same_data and same_scenes:
            return load_file(str(path))
    model, preprocess, tokenizer = create_clip(clip_ckpt, device=cfg.device)
    rng = np.random.default_rng([cfg.seed, 2])
    scenes = [shapes.sample_scene(rng, p_two=cfg.cache.p_two) for _ in range(n - n_emoji)]
    texts = [shapes.caption(s, int(rng.integers(shapes.N_TEMPLATES))) for s in scenes]
    e_images: list[np.ndarray] = []
    if emoji is not None:  # emoji pairs after the scenes, from a generator of their own
        e_images, e_texts = emoji.sample(np.random.default_rng([cfg.seed, 6]), n_emoji, replace=n_emoji > len(emoji))
        texts += e_texts

    def render(a: int, b: int) -> list[np.ndarray]:
        """Images ``a:b`` of the cache: scenes first, then emoji."""
        k = len(scenes)
        return [shapes.render_scene(s, cfg.render_size) for s in scenes[a:b]] + e_images[max(0, a - k) : max(0, b - k)]

    imgs, iemb, temb = [], [], []
    with _progress(n, 0, "cache") as bar:
        for a in range(0, n, bs):
            batch = render(a, a + bs)
            x, _ = _prepare(batch, preprocess)
            imgs.append(torch.from_numpy(np.stack(batch)))  # the renders themselves: a decoder shrinks them to its size
            iemb.append(torch.nn.functional.normalize(model.encode_image(x.to(cfg.device)).float(), dim=-1).cpu())
            tok = tokenizer(texts[a : a + bs]).to(cfg.device)
            temb.append(torch.nn.functional.normalize(model.encode_text(tok).float(), dim=-1).cpu())
            bar.update(len(batch))
    data = {"images": torch.cat(imgs), "image_embeds": torch.cat(iemb), "text_embeds": torch.cat(temb)}
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"n_images": n, "clip_mtime": clip_mtime, "clip_id": clip_id, "p_two": cfg.cache.p_two, "seed": cfg.seed,
            "render_size": cfg.render_size, **data_meta, "captions": texts}  # fmt: skip
    from ..video import remove_stale_temps

    def write(tmp: Path) -> None:
        save_file(data, str(tmp))
        _usual_mode(tmp)

    for p in (path, meta_path):  # a partial cache (as big as the cache), or description (every caption), a killed build left
        remove_stale_temps(p)
    with _ctrl_c_held():  # the cache and the description it is reused by are replaced together
        meta_path.unlink(missing_ok=True)  # an old description never vouches for a half-written cache
        write_whole(path, write)  # (a full disk leaves no partial cache beside it)
        write_whole(meta_path, lambda tmp: tmp.write_text(json.dumps(meta)))
    return data


def _shrink(images: torch.Tensor, side: int) -> torch.Tensor:
    """uint8 ``(n, H, W, 3)`` cache images at ``side`` px, resized as open_clip's preprocess
    resizes (bicubic): for a 32 px decoder, the pixels the caches of the 32 px CLIP held."""
    from PIL import Image

    bicubic = Image.Resampling.BICUBIC
    return torch.from_numpy(np.stack([np.asarray(Image.fromarray(im).resize((side, side), bicubic))
                                      for im in images.numpy()]))  # fmt: skip


def _eps_loss_weights(snr: torch.Tensor, gamma: float, low_snr: float = 0.0, low_snr_max: float = 100.0) -> torch.Tensor:
    """Per-sample weights of an epsilon-prediction loss at signal-to-noise ratios ``snr``.

    An epsilon loss counts the clean image's error times SNR. Min-SNR-gamma (``gamma > 0``)
    caps that at ``gamma``: weight ``min(SNR, gamma) / SNR``; ``gamma = 0``: weight 1. With
    ``low_snr > 0`` the image's error counts at least ``low_snr`` times wherever that needs an
    epsilon weight of at most ``low_snr_max``: weight ``max(w, min(low_snr / SNR, low_snr_max))``.

    >>> _eps_loss_weights(torch.tensor([0.01, 1.0, 10.0]), 5.0, 0.5).tolist()
    [50.0, 1.0, 0.5]
    """
    w = snr.clamp(max=gamma) / snr if gamma > 0 else torch.ones_like(snr)
    if low_snr > 0:
        w = torch.maximum(w, (low_snr / snr).clamp(max=low_snr_max))
    return w


def _ema_init(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().float() for k, v in model.state_dict().items()}


@torch.no_grad()
def _ema_update(ema: dict[str, torch.Tensor], model: torch.nn.Module, decay: float) -> None:
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            ema[k].mul_(decay).add_(v.detach().float(), alpha=1 - decay)
        else:
            ema[k].copy_(v)


def _caption_states(cfg: TrainConfig, out: Path, n: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token states ``(n, L, width)`` (float16) and masks ``(n, L)`` of the cache's captions,
    from the run's CLIP text tower (``text_token_states``): what a decoder with
    ``text_dim > 0`` reads beside the image embedding."""
    captions = json.loads((out / "cache" / "cache.json").read_text()).get("captions")
    if not captions or len(captions) != n:
        raise ArgumentError(f"{out / 'cache' / 'cache.json'} lists no captions for its {n} images (an older cache); "
                            "build it again with `--stage cache`.")  # fmt: skip
    model, _, tokenizer = create_clip(out / "clip" / "model.safetensors", device=cfg.device)
    got = model.transformer.width
    if got != width:
        raise ArgumentError(f"decoder.arch.text_dim={width} but the run's CLIP text tower is {got} wide; "
                            f"set decoder.arch.text_dim={got}.")  # fmt: skip
    states, masks = [], []
    with torch.inference_mode():
        for a in range(0, n, 512):
            st, m = text_token_states(model, tokenizer(captions[a : a + 512]).to(cfg.device))
            states.append(st.half().cpu())
            masks.append(m.cpu())
    return torch.cat(states), torch.cat(masks)


class _StageLoop:
    """What the decoder's, prior's, expert's and upscaler's training loops share around their
    loss: the learning rate, the optimiser step (gradients clipped to norm 1), the EMA, the
    running loss, the log, checkpoints (which also record ``extra``: the data the stage trains
    on), the time limit and Ctrl-C."""

    def __init__(self, kind: str, stage: Any, stage_dir: Path, model: torch.nn.Module, opt: torch.optim.Optimizer,
                 ema: dict[str, torch.Tensor], step: int, spent: float, loss_avg: float | None,
                 state: dict[str, Any] | None = None, extra: dict[str, Any] | None = None):  # fmt: skip
        self.kind, self.stage, self.dir, self.model, self.opt, self.ema = kind, stage, stage_dir, model, opt, ema
        self.step = self.start = step
        self.loss_avg = loss_avg
        self.log = _Logger(stage_dir / "log.jsonl", step)
        self.clock = _Clock(stage, step, spent, (state or {}).get("schedule") if state else {})
        self.extra = extra or {}
        self.bar = _progress(stage.steps, step, kind)

    def set_lr(self) -> None:
        for grp in self.opt.param_groups:
            grp["lr"] = self.clock.lr(self.step)

    def update(self, loss: torch.Tensor) -> bool:
        """One optimiser step on ``loss`` and its bookkeeping; True when the stage's time is up
        (its checkpoint is then saved)."""
        stage = self.stage
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        with _ctrl_c_held():  # the step's running loss and log record too: a checkpoint saved on Ctrl-C counts them
            self.opt.step()
            self.step += 1
            _ema_update(self.ema, self.model, min(stage.ema_decay, (1 + self.step) / (10 + self.step)))
            step = self.step
            self.loss_avg = loss.item() if self.loss_avg is None else 0.95 * self.loss_avg + 0.05 * loss.item()
            logged = step % stage.log_every == 0 or step == stage.steps
            if logged:
                self.log(stage=self.kind, step=step, loss=loss.item(), loss_avg=self.loss_avg,
                         lr=self.opt.param_groups[0]["lr"], elapsed_s=round(self.clock.elapsed(), 1))  # fmt: skip
        self.bar.update(1)
        timed_out = self.clock.timed_out()
        if logged:
            self.bar.set_postfix(loss=f"{self.loss_avg:.4f}")
        if step % stage.ckpt_every == 0 or step == stage.steps or timed_out:
            self.save()
        if timed_out:
            _say_time_limit(self.dir, step, stage.steps, stage.max_minutes, self.bar)
        return timed_out

    def save(self) -> None:
        _save_ckpt(self.dir, self.model, self.opt, self.step, self.ema, elapsed_s=self.clock.elapsed(),
                   loss_avg=self.loss_avg, extra={**self.extra, **self.clock.state()})  # fmt: skip

    def time_spent(self) -> bool:
        """Whether the stage's time was spent before its first step here (see :func:`_time_spent_before`)."""
        return self.step == self.start and _time_spent_before(self.clock, self.dir, self.step, self.stage.steps, self.bar)

    def interrupted(self) -> StageInterrupted:
        """After Ctrl-C: the checkpoint saved at the current step, and the error that says so."""
        self.bar.close()
        if self.step > self.start or not (self.dir / "state.pt").is_file():
            _save_quietly(lambda: self.save())
        return StageInterrupted(self.kind, self.dir, self.step)

    def finish(self) -> dict:
        self.bar.close()
        if self.step > self.start:  # a resume with nothing left to train leaves its checkpoint alone
            self.save()
        return {"step": self.step, "loss_avg": self.loss_avg}


def _init_fit(kind: str, stage: Any, arch: Any, init_from: Path) -> tuple[Any, bool]:
    """The architecture config of ``kind`` in the weights folder ``init_from`` (None where it has
    no ``.json``), and whether ``arch`` widens it; ArgumentError when ``arch`` cannot be
    warm-started from it (checked by ``main`` for every stage before the first one runs)."""
    init_cfg = Path(init_from) / _EXPORTED[kind].replace(".safetensors", ".json")
    theirs_d = json.loads(init_cfg.read_text()) if init_cfg.is_file() else None
    if kind == "expert" and theirs_d is not None:  # {"arch": ..., "expert": ...} (models.save_expert)
        theirs_d = theirs_d.get("arch")
    theirs = type(arch).from_dict(theirs_d) if theirs_d is not None else None
    if kind == "upscaler":
        if theirs != arch:
            raise ArgumentError(
                f"--init-from: the upscaler in {init_from} has architecture {theirs and theirs.to_dict()}, this run "
                f"builds {arch.to_dict()}; set upscaler.arch (and upscaler.in_size) to match, e.g. "
                "--set upscaler.arch.channels=[48,64,96], or leave out --init-from."
            )
        return theirs, False
    # a decoder that reads captions, pixel coordinates, its own caption transformer or the
    # pooled caption warm-starts from the same decoder without: all but the new caption
    # projection, the coordinates' input weights (_add_coords), the caption transformer
    # (whose residual branches start at zero) and the pooled caption's projection (zero) is copied
    widens = (kind == "decoder" and theirs is not None and theirs != arch
              and replace(arch, text_dim=theirs.text_dim, coords=theirs.coords, text_layers=theirs.text_layers,
                          text_pooled=theirs.text_pooled) == theirs
              and theirs.text_dim in (0, arch.text_dim) and theirs.coords <= arch.coords
              and theirs.text_layers in (0, arch.text_layers) and theirs.text_pooled <= arch.text_pooled)  # fmt: skip
    if theirs != arch and not widens and not (kind == "decoder" and stage.upcycle and theirs is not None):
        raise ArgumentError(
            f"--init-from: the {kind} in {init_from} has architecture {theirs and theirs.to_dict()}, this run "
            f"builds {arch.to_dict()}; set {kind}.arch to match (--set {kind}.arch='{{...}}') or leave out --init-from."
        )
    if theirs != arch and not widens:  # decoder.upcycle: its own check
        _check_upcycle(theirs, arch)
    return theirs, widens


def _train_diffusion(kind: str, cfg: TrainConfig, out: Path, *, resume: bool = False, init_from: Path | None = None,
                     on_start: Callable[[int], None] | None = None) -> dict:  # fmt: skip
    stage = {"decoder": cfg.decoder, "expert": cfg.expert, "prior": cfg.prior}[kind]
    pixels = kind in ("decoder", "expert")  # a pixel-space decoder (the expert is one, for the noisiest steps)
    d = out / kind
    state = _read_state(d) if resume else {}
    fingerprint = _cache_fingerprint(cfg, out)
    if resume:  # checked before the cache is built again under the checkpoint
        _check_resume_data(kind, d, state.get("cache_fingerprint"), fingerprint)
    data = build_cache(cfg, out)
    d_emb = data["image_embeds"].shape[1]
    torch.manual_seed(cfg.seed + {"decoder": 1, "prior": 2, "expert": 5}[kind])
    low_snr = getattr(stage, "low_snr_weight", 0.0)  # decoders only
    if pixels:
        arch = _stage_arch(cfg, kind, d_emb)
        model: torch.nn.Module = MiniDecoderNet(arch)
        side = data["images"].shape[1]
        if arch.image_size > side:
            raise ArgumentError(
                f"decoder.arch.image_size={arch.image_size} but the cache holds {side} px images: a decoder cannot "
                f"learn detail the cache does not hold; set decoder.arch.image_size <= {side}, or render_size >= "
                f"{arch.image_size} and build the cache again (--stage cache)."
            )
        if arch.image_size < side:
            data = {**data, "images": _shrink(data["images"], arch.image_size)}
    else:
        arch = _stage_arch(cfg, kind, d_emb)
        model = MiniPriorNet(arch)
    if init_from is not None and not resume and (kind != "expert" or stage.warm_start):
        theirs, widens = _init_fit(kind, stage, arch, init_from)
        init_state = _init_state(init_from, kind, d)
        if widens:
            fresh = model.state_dict()
            init_state = {**fresh, **(_add_coords(init_state, fresh) if arch.coords and not theirs.coords else init_state)}
        elif theirs != arch:
            init_state, copied = _upcycle_decoder(init_state, theirs, arch, model.state_dict())
            init = json.loads((d / "init.json").read_text())
            _write_init(d / "init.json", {**init, "upcycled_from": theirs.to_dict(), "copied_fraction": round(copied, 4)})
        model.load_state_dict(init_state)
    elif not resume:
        _drop_init(d)
    model.to(cfg.device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=stage.lr, weight_decay=stage.weight_decay)
    ema = _ema_init(model)
    d.mkdir(parents=True, exist_ok=True)
    conf = arch.to_dict()
    if kind == "expert":  # what export writes beside the weights (models.save_expert / load_expert)
        conf = {"arch": conf, "expert": ExpertConfig(t_min=stage.t_min, reads_embedding=stage.cond_drop < 1).to_dict()}
    if resume:  # the checkpoint must be of this architecture: checked before anything is written
        _check_resumed_arch(d, kind, conf)
    step, spent, loss_avg, state = _load_ckpt(d, model, opt, ema, state) if resume else (0, 0.0, None, {})
    _write_json(d / "config.json", conf)
    if on_start is not None:
        on_start(step)
    sched = make_scheduler(arch, "ddpm")
    alphas = sched.alphas_cumprod.float()
    n = data["images"].shape[0]
    text_dim = arch.text_dim if pixels else 0
    if text_dim:
        states, masks = _caption_states(cfg, out, n, text_dim)
    t_lo, first, pool = 0, 0, None
    if kind == "expert":
        t_lo, first = stage.t_min, stage.relations_first
        pool = _relation_rows(json.loads((out / "cache" / "cache.json").read_text())["captions"])
        if first and not len(pool):
            raise ArgumentError("expert.relations_first: the cache holds no two-object scenes with a relation; build "
                                "it with cache.p_two > 0 (e.g. --set cache.p_two=0.75), or set expert.relations_first=0.")  # fmt: skip
    salt = {"decoder": 3, "prior": 4, "expert": 5}[kind]
    loop = _StageLoop(kind, stage, d, model, opt, ema, step, spent, loss_avg, state,
                      extra={"cache_fingerprint": fingerprint})  # fmt: skip
    try:
        while loop.step < stage.steps and not loop.time_spent():
            step = loop.step
            g = _gen(cfg.seed, step, salt)
            loop.set_lr()
            if step < first:  # the expert's first steps: two-object scenes with a relation only
                idx = pool[torch.randint(0, len(pool), (stage.batch_size,), generator=g)]
            else:
                idx = torch.randint(0, n, (stage.batch_size,), generator=g)
            emb = data["image_embeds"][idx]
            if pixels:
                x0 = data["images"][idx].permute(0, 3, 1, 2).float() / 127.5 - 1.0
                cond = emb
            else:
                x0 = emb * math.sqrt(d_emb)
                cond = data["text_embeds"][idx]
            noise = torch.randn(x0.shape, generator=g)
            t = torch.randint(t_lo, arch.num_train_timesteps, (stage.batch_size,), generator=g)
            drop = torch.rand(stage.batch_size, generator=g) < stage.cond_drop
            a = alphas[t].view(-1, *([1] * (x0.ndim - 1)))
            xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
            if arch.prediction_type == "epsilon":
                target = noise
            elif arch.prediction_type == "sample":
                target = x0
            else:  # v_prediction
                target = a.sqrt() * noise - (1 - a).sqrt() * x0
            dev = cfg.device
            text = tmask = None
            if text_dim:  # drawn after the draws above, so runs without captions keep their exact stream
                text = states[idx].float().to(dev)
                tmask = (masks[idx] & (torch.rand(stage.batch_size, generator=g) >= stage.text_drop)[:, None]).to(dev)
            with torch.autocast(torch.device(dev).type, dtype=torch.bfloat16, enabled=stage.precision == "bf16"):
                pred = model(xt.to(dev), t.to(dev), cond.to(dev), drop.to(dev), *((text, tmask) if text_dim else ()))
            err = (pred.float() - target.to(dev)).pow(2).flatten(1).mean(1)
            if arch.prediction_type == "epsilon" and (stage.min_snr_gamma > 0 or low_snr > 0):
                snr = (a / (1 - a)).flatten()
                err = err * _eps_loss_weights(snr, stage.min_snr_gamma, low_snr, getattr(stage, "low_snr_max", 1.0)).to(dev)
            if loop.update(err.mean()):
                break
    except KeyboardInterrupt:  # Ctrl-C: keep what was trained, say how to go on
        raise loop.interrupted() from None
    return loop.finish()


def train_decoder(cfg: TrainConfig, out: Path, *, resume: bool = False, init_from: Path | None = None,
                  on_start: Callable[[int], None] | None = None) -> dict:
    return _train_diffusion("decoder", cfg, out, resume=resume, init_from=init_from, on_start=on_start)


def _relation_rows(captions: list[str]) -> torch.Tensor:
    """Indices of the captions that state a shapes-world relation between two objects."""
    rel = tuple(f" {r} " for r in shapes.RELATIONS)
    return torch.tensor([i for i, c in enumerate(captions) if any(r in c for r in rel)
                         and sum(c.count(f" {x}") for x in shapes.SHAPES) >= 2], dtype=torch.long)  # fmt: skip


def train_expert(cfg: TrainConfig, out: Path, *, resume: bool = False, init_from: Path | None = None,
                 on_start: Callable[[int], None] | None = None) -> dict:
    return _train_diffusion("expert", cfg, out, resume=resume, init_from=init_from, on_start=on_start)


def train_prior(cfg: TrainConfig, out: Path, *, resume: bool = False, init_from: Path | None = None,
                on_start: Callable[[int], None] | None = None) -> dict:
    return _train_diffusion("prior", cfg, out, resume=resume, init_from=init_from, on_start=on_start)


def train_upscaler(cfg: TrainConfig, out: Path, *, resume: bool = False, init_from: Path | None = None,
                   on_start: Callable[[int], None] | None = None) -> dict:
    """Train the 2x upscaler (L1) on the cache's renders: the input is each render shrunk to
    ``upscaler.in_size`` as the decoder's training images are (plus a little Gaussian noise,
    ``noise_aug``), the target the render shrunk to twice that."""
    stage = cfg.upscaler
    d = out / "upscaler"
    state = _read_state(d) if resume else {}
    fingerprint = _cache_fingerprint(cfg, out)
    if resume:  # checked before the cache is built again under the checkpoint
        _check_resume_data("upscaler", d, state.get("cache_fingerprint"), fingerprint)
    data = build_cache(cfg, out)
    side = data["images"].shape[1]
    lo, hi = stage.in_size, 2 * stage.in_size
    if hi > side:
        raise ArgumentError(
            f"upscaler.in_size={lo} upsamples to {hi} px but the cache holds {side} px images; set "
            f"upscaler.in_size <= {side // 2}, or render_size >= {hi} and build the cache again (--stage cache)."
        )
    target = data["images"] if hi == side else _shrink(data["images"], hi)
    source = _shrink(data["images"], lo)
    torch.manual_seed(cfg.seed + 5)
    arch = _stage_arch(cfg, "upscaler")
    model = MiniUpscalerNet(arch)
    if init_from is not None and not resume:
        if (Path(init_from) / _EXPORTED["upscaler"]).is_file():
            _init_fit("upscaler", stage, arch, init_from)
            model.load_state_dict(_init_state(init_from, "upscaler", d))
        else:  # --init-from names the weights whose CLIP encodes the cache; they need not hold an upscaler
            print(f"upscaler: {init_from} has no {_EXPORTED['upscaler']}; training one from scratch", file=sys.stderr)
            _drop_init(d)
    elif not resume:
        _drop_init(d)
    model.to(cfg.device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=stage.lr, weight_decay=stage.weight_decay)
    ema = _ema_init(model)
    d.mkdir(parents=True, exist_ok=True)
    if resume:
        _check_resumed_arch(d, "upscaler", arch.to_dict())
    step, spent, loss_avg, state = _load_ckpt(d, model, opt, ema, state) if resume else (0, 0.0, None, {})
    _write_json(d / "config.json", arch.to_dict())
    if on_start is not None:
        on_start(step)
    n = source.shape[0]
    dev = cfg.device
    loop = _StageLoop("upscaler", stage, d, model, opt, ema, step, spent, loss_avg, state,
                      extra={"cache_fingerprint": fingerprint})  # fmt: skip
    try:
        while loop.step < stage.steps and not loop.time_spent():
            g = _gen(cfg.seed, loop.step, 5)
            loop.set_lr()
            idx = torch.randint(0, n, (stage.batch_size,), generator=g)
            x = source[idx].permute(0, 3, 1, 2).float() / 127.5 - 1.0
            y = target[idx].permute(0, 3, 1, 2).float() / 127.5 - 1.0
            sigma = torch.rand(stage.batch_size, 1, 1, 1, generator=g) * stage.noise_aug
            x = x + sigma * torch.randn(x.shape, generator=g)
            with torch.autocast(torch.device(dev).type, dtype=torch.bfloat16, enabled=stage.precision == "bf16"):
                pred = model(x.to(dev))
            if loop.update((pred.float() - y.to(dev)).abs().mean()):
                break
    except KeyboardInterrupt:  # Ctrl-C: keep what was trained, say how to go on
        raise loop.interrupted() from None
    return loop.finish()


# -- CLI ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m latentlab.mini.train", description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--stage", choices=["clip", "cache", "decoder", "prior", "upscaler", "expert", "all"], required=True,
                    help="the stage to train; all: clip, cache, prior, decoder (not upscaler, nor expert)")  # fmt: skip
    ap.add_argument("--config", default=None,
                    help="smoke | cpu | gpu | cpu-emoji | gpu-emoji | path to a JSON file of overrides (default: cpu)")  # fmt: skip
    ap.add_argument("--smoke", action="store_true", help="same as --config smoke")
    ap.add_argument("--out", required=True, help="run folder (put it under a git-ignored dir such as .cache/)")
    ap.add_argument("--resume", action="store_true", help="continue each stage from its state.pt")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one config field, e.g. decoder.steps=2000 (repeat --set for more)")
    ap.add_argument("--init-from", default=None, metavar="WEIGHTS_DIR",
                    help="warm-start stages that have no checkpoint yet from exported weights (e.g. latentlab/mini/weights); "
                    "the CLIP there also encodes the cache when this run trains no CLIP")  # fmt: skip
    args = ap.parse_args(argv)
    argv = list(argv) if argv is not None else sys.argv[1:]
    if args.smoke and args.config not in (None, "smoke"):
        raise ArgumentError(f"--smoke is --config smoke; it cannot go with --config {args.config} (pass one of them).")
    config_name = "smoke" if args.smoke else args.config or "cpu"
    cfg = get_config(config_name, args.set)
    _check_device_available(cfg.device, config_name)
    out = Path(args.out)
    from ..jobs import check_can_create

    check_can_create(out, "--out")  # a file in the way, or a folder this user cannot write in
    stages = ["clip", "cache", "prior", "decoder"] if args.stage == "all" else [args.stage]
    _warn_emulated_bf16(cfg, stages)
    if args.resume:  # a first checkpoint that a kill cut short between its renames is finished, as later ones are
        for st in stages:
            if st != "cache" and _first_save_cut_short(out / st):
                _settle_ckpt(out / st)
    # a stage with a checkpoint is continued (--resume) or left alone, never silently started over
    # (its log would hold two series of steps): checked for every stage before anything is written
    done = [st for st in stages if st != "cache" and ((out / st / "state.pt").is_file() or _first_save_cut_short(out / st))]
    if done and not args.resume:
        raise ArgumentError(f"{', '.join(str(out / st) for st in done)} already holds a checkpoint; pass --resume to "
                            "continue it, or choose another --out to train from the start.")  # fmt: skip
    init = Path(args.init_from) if args.init_from else None
    # what a later stage would refuse, refused before the first one trains: the architecture a
    # resumed stage's checkpoint holds, or one the --init-from weights cannot warm-start
    for st in stages:
        if st in ("clip", "cache"):
            continue
        stage, arch = getattr(cfg, st), _stage_arch(cfg, st)
        if args.resume and (out / st / "state.pt").is_file():
            conf = arch.to_dict()
            if st == "expert":
                conf = {"arch": conf, "expert": ExpertConfig(t_min=stage.t_min, reads_embedding=stage.cond_drop < 1).to_dict()}
            _check_resumed_arch(out / st, st, conf)
        elif init is not None and (st != "expert" or stage.warm_start):
            if st != "upscaler" or (init / _EXPORTED["upscaler"]).is_file():
                if not (init / _EXPORTED[st]).is_file():
                    raise ArgumentError(f"--init-from: no {init / _EXPORTED[st]}; point it at a weights folder such as "
                                        "latentlab/mini/weights.")  # fmt: skip
                _init_fit(st, stage, arch, init)
    torch.set_num_threads(cfg.threads)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    clip_ckpt = out / "clip" / "model.safetensors"
    if init is not None and "clip" not in stages and not clip_ckpt.is_file():
        from safetensors.torch import save_file  # the exported CLIP encodes this run's cache

        tensors = {k: v.contiguous() for k, v in _init_state(init, "clip", out / "clip").items()}

        def write(tmp: Path) -> None:
            save_file(tensors, str(tmp))
            _usual_mode(tmp)

        _write_whole_swept(clip_ckpt, write)  # whole or not at all: a cut one was taken for the CLIP by every later run
    if args.resume:
        _check_resumes_keep_their_data(cfg, out, stages)
    _check_clip_keeps_its_stages(cfg, out, stages, args.resume)

    def resuming(st: str) -> bool:
        found = (out / st / "state.pt").is_file()
        if args.resume and not found:  # e.g. a mistyped --out: say so rather than quietly start over
            print(f"--resume: {out / st} has no checkpoint (state.pt); training {st} from the start", file=sys.stderr)
        return args.resume and found

    def recorder(st: str) -> Callable[[int], None]:
        """Once the stage's checkpoint (if any) has loaded: add this invocation to the stage's
        ``run_config.json`` history, and say which settings differ from those it last ran with."""

        def record(step: int) -> None:
            steps = getattr(cfg, st).steps
            if step >= steps:  # e.g. --set decoder.steps=50 on a checkpoint at step 90: nothing happens, say so
                print(f"--resume: {st} is already at step {step} >= {st}.steps {steps}; nothing to train (raise "
                      f"--set {st}.steps above {step} to train it on)", file=sys.stderr)  # fmt: skip
            path = out / st / "run_config.json"
            old = json.loads(path.read_text()) if path.is_file() else None
            entry = {"argv": argv, "config": cfg.to_dict(), "from_step": step}
            history = [] if old is None else old.get("history", [{**old, "from_step": None}])
            if step > 0 and old is not None:
                # the cache's settings are those of every stage that trains on it
                others = {"clip", "cache", "decoder", "prior", "upscaler", "expert"} - {st}
                if st != "clip":
                    others.discard("cache")
                a, b = _flat(old["config"]), _flat(entry["config"])
                diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k.split(".")[0] not in others)
                if diff:
                    print(f"--resume: {st} continues from step {step} with settings other than it last ran with: "
                          + ", ".join(f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in diff), file=sys.stderr)  # fmt: skip
            else:
                history = []  # trained from the start: an earlier record (if any) is of weights no longer there
            _write_json(path, {"argv": argv, "config": entry["config"], "history": [*history, entry]})
            _write_json(out / "config.json", entry["config"])  # the last invocation's; each stage keeps its history

        return record

    def go_on(resume: bool) -> str:
        """The command that carries on after Ctrl-C: this one, with --resume where a stage has a checkpoint."""
        return "python -m latentlab.mini.train " + shlex.join([a for a in argv if a != "--resume"] + ["--resume"] * resume)

    trainers = {"clip": train_clip, "decoder": train_decoder, "upscaler": train_upscaler, "expert": train_expert,
                "prior": train_prior}  # fmt: skip
    # SIGTERM (a scheduler's or `kill`'s) stops a stage as Ctrl-C does: checkpoint, message, status 143
    terminated: list[int] = []

    def on_sigterm(signum: int, frame: Any) -> None:
        terminated.append(signum)
        raise KeyboardInterrupt

    old_term = None
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        old_term = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        for st in stages:
            t0 = time.time()
            try:
                if st == "cache":
                    if args.stage == "cache":
                        _warn_cache_rebuilt_under(cfg, out)
                    _write_json(out / "config.json", cfg.to_dict())
                    build_cache(cfg, out, force=args.stage == "cache")
                    results[st] = {"n_images": cfg.cache.n_images}
                else:
                    (out / st).mkdir(parents=True, exist_ok=True)
                    results[st] = trainers[st](cfg, out, resume=resuming(st), init_from=init, on_start=recorder(st))
            except StageInterrupted as e:
                print(f"{'terminated (SIGTERM)' if terminated else 'interrupted'}: {e.stage} checkpoint at step {e.step} "
                      f"saved in {e.stage_dir}; resume with {go_on(resume=True)}", file=sys.stderr)  # fmt: skip
                raise SystemExit(143 if terminated else 130) from None
            except KeyboardInterrupt:  # outside a stage's steps: loading, building the cache, its last save
                state = out / st / "state.pt"
                where = (f"with its checkpoint at step {_state_file_step(state)} in {out / st}"
                         if st != "cache" and state.is_file() else "before its first checkpoint")  # fmt: skip
                resume = any((out / s / "state.pt").is_file() for s in stages if s != "cache")
                print(f"{'terminated (SIGTERM)' if terminated else 'interrupted'}: {st} stopped {where}; go on with "
                      f"{go_on(resume)}", file=sys.stderr)  # fmt: skip
                raise SystemExit(143 if terminated else 130) from None
            results[st]["seconds"] = round(time.time() - t0, 1)
            print(json.dumps({st: results[st]}), flush=True)
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    return results


def _check_device_available(device: str, config_name: str) -> None:
    """ArgumentError when ``device`` (a valid torch device: :func:`get_config` checked it) is
    not on this machine, e.g. ``--config gpu`` without a GPU."""
    dev = torch.device(device)
    why = None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            why = "no CUDA GPU is available here (torch.cuda.is_available() is False)"
        elif dev.index is not None and dev.index >= n:
            why = f"this machine has {n} CUDA GPU(s)"
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        why = "MPS is not available here"
    elif dev.type == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        why = "no XPU is available here"
    if why:
        raise ArgumentError(f"device={device!r} (from --config {config_name} or --set device=...) but {why}; train on "
                            "the CPU with --config cpu or --set device=cpu.")  # fmt: skip


def _cpu_has_bf16() -> bool | None:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX, as oneDNN reads it);
    ``None`` where this torch cannot tell."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return None


def _warn_emulated_bf16(cfg: TrainConfig, stages: list[str]) -> None:
    """Warn of each stage set to ``precision=bf16`` that would run on a CPU without native
    bfloat16: autocast then emulates it, many times slower than float32 (docs/mini.md)."""
    slow = [st for st in stages if st != "cache" and getattr(cfg, st).precision == "bf16"]
    if not slow or torch.device(cfg.device).type != "cpu" or _cpu_has_bf16() is not False:
        return
    print(f"warning: {', '.join(f'{st}.precision=bf16' for st in slow)}: this CPU has no native bfloat16 "
          "(AVX512-BF16 or AMX), so autocast emulates it and trains many times slower than float32 (a CLIP "
          "training step took 20x as long on a 2-core AVX2 CPU, docs/mini.md); add "
          f"{' '.join(f'--set {st}.precision=fp32' for st in slow)}", file=sys.stderr)  # fmt: skip


def _check_resumes_keep_their_data(cfg: TrainConfig, out: Path, stages: list[str]) -> None:
    """Before the first stage of a ``--resume`` runs: refuse a stage whose checkpoint trained
    on a cache of other data than it would get now (:func:`_check_resume_data`; the stage checks
    again when it starts), and a CLIP that this command would train on (changing the cache)
    under stages that resume on the cache it encoded."""
    resumed = [st for st in stages if st not in ("clip", "cache") and (out / st / "state.pt").is_file()]
    if not resumed:
        return
    records = {st: _read_state(out / st).get("cache_fingerprint") for st in resumed}
    users = [st for st in resumed if st != "upscaler" and records[st] is not None]
    if "clip" in stages and users:
        clip_state = out / "clip" / "state.pt"
        clip_step = _read_state(out / "clip")["step"] if clip_state.is_file() else 0
        if clip_step < cfg.clip.steps:
            raise ArgumentError(
                f"--resume: {', '.join(users)} in {out} trained on the cache that the CLIP in {out / 'clip'} encoded; this "
                f"command would train that CLIP on (from step {clip_step} to {cfg.clip.steps}) and so build the cache again "
                f"under them. Resume {', '.join(users)} without the CLIP (--stage {users[0]}, not --stage all), or train "
                f"the CLIP on in another --out (a copy of {out / 'clip'}, with --resume) and train {', '.join(users)} "
                "again there."
            )
    now = _cache_fingerprint(cfg, out)
    for st in resumed:
        _check_resume_data(st, out / st, records[st], now, warn=False)  # the stage itself warns of a missing record


def _warn_cache_rebuilt_under(cfg: TrainConfig, out: Path) -> None:
    """``--stage cache`` builds the cache anew: warn of each stage in ``out`` whose checkpoint
    trained on a cache of other data (it can then no longer resume there)."""
    now = _cache_fingerprint(cfg, out)
    for st in ("prior", "decoder", "expert", "upscaler"):
        state = out / st / "state.pt"
        rec = _read_ckpt_file(state, _load_state_file).get("cache_fingerprint") if state.is_file() else None
        shown = _data_changes(st, out / st, rec, now) if rec is not None else ""
        if shown:
            print(f"warning: --stage cache builds the cache of {out} with other data than {st} trained on ({shown}); "
                  f"{st} can no longer --resume there (build it with the settings {st} trained with, listed in "
                  f"{out / st / 'run_config.json'}, to keep it going)", file=sys.stderr)  # fmt: skip


def _check_clip_keeps_its_stages(cfg: TrainConfig, out: Path, stages: list[str], resume: bool) -> None:
    """Before anything is written: refuse a command that would change the CLIP in ``out`` (train
    it on, or from the start) under the stages of ``out`` it does not run whose checkpoint
    trained on the cache that CLIP encodes: they could then neither resume nor be exported
    beside it. (Stages the command itself resumes: :func:`_check_resumes_keep_their_data`.)"""
    clip = out / "clip" / "model.safetensors"
    if "clip" not in stages or not clip.is_file():
        return
    clip_state = out / "clip" / "state.pt"
    clip_step = _read_ckpt_file(clip_state, _state_file_step) if resume and clip_state.is_file() else 0
    if clip_step >= cfg.clip.steps:  # nothing left to train: the CLIP stays as it is
        return
    now = _clip_ids(clip)[0]
    users = []
    for st in ("prior", "decoder", "expert"):  # the upscaler trains on the renders alone
        state = out / st / "state.pt"
        if st in stages or not state.is_file():
            continue
        rec = _read_ckpt_file(state, _load_state_file).get("cache_fingerprint")
        if rec is not None and rec.get("clip") == now:
            users.append(st)
    if not users:
        return
    names = ", ".join(users)
    how = f"on (from step {clip_step} to {cfg.clip.steps})" if clip_step else "from the start"
    raise ArgumentError(
        f"{names} in {out} trained on the cache that the CLIP in {out / 'clip'} encodes; this command would train that "
        f"CLIP {how}, and {names} could then neither resume nor be exported beside it. Train the CLIP in a fresh --out "
        f"instead (a copy of {out / 'clip'} there goes on with --resume; or start it from exported weights with "
        f"--init-from WEIGHTS_DIR), and train {names} again on the cache it encodes there."
    )


if __name__ == "__main__":
    from ..errors import run_reporting_errors

    run_reporting_errors(main)
