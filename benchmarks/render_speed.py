"""Render speed: the diffusers per-frame loop against latentlab's renderer, side by side.

Three column groups, one trajectory, the same starting noise for every column:

* **diffusers loop**: what a hand-written notebook does, one ``pipe(image_embeds=...)``
  call per frame;
* **latentlab**: the same pipeline object (same weights, scheduler, steps, guidance,
  noise) through latentlab's batched renderer, so the frames must agree; the table says
  how closely (max absolute pixel difference, 0-255) next to the speed;
* **latentlab recommended**: latentlab's recommended settings, DPM-Solver++ with fewer
  steps (``--recommended``, ``--rec-steps``; default 12 for the reference 20), on the same
  weights and noise; the table gives its speed and what it costs in output difference
  against the reference frames (max / mean absolute pixel difference, PSNR)::

    python benchmarks/render_speed.py --tiny                     # CPU, seconds (tested in CI)
    python benchmarks/render_speed.py --model sd21-unclip-h --size 768 --frames 16 \\
        --steps 20 --device cuda --dtype float16                 # real-size, random weights
    python benchmarks/render_speed.py --model kandinsky-2.2 --size 768 --frames 16 \\
        --steps 20 --device cuda --dtype float16 --channels-last --compile

``--model sd21-unclip-h`` / ``sd21-unclip-l`` build the real Stable Diffusion 2.1 unCLIP
architectures (UNet, VAE, OpenCLIP-H text encoder, ViT-H/L image encoder) and
``--model kandinsky-2.2`` the Kandinsky 2.2 decoder (its UNet and MoVQ) with random
weights: they cost the same compute as the released checkpoints and need no download.
``--model mini`` times the embedded model against its own one-frame-at-a-time loop (its
recommended column is its own DDIM with fewer steps: it has no other sampler).
``--tiny`` runs tiny random SD-unCLIP and Kandinsky pipelines and the mini model, on the CPU
(``--tiny`` implies ``--device cpu`` unless ``--device`` is given, also where a GPU exists).

latentlab renders the frames in batches of ``--batch-size`` (frames share the starting
noise, the conditioning is per frame), computes the empty-prompt text conditioning once per
render, and writes nothing to disk here. ``--channels-last`` / ``--compile`` apply the
decoder's ``optimize()`` levers (UNet + autoencoder in channels-last memory format, for mini
its UNet + learned upscaler; ``torch.compile`` of the UNet) to latentlab's two columns only:
the diffusers loop (for mini its own one-frame loop) is timed first, on the plain pipeline,
and the levers are applied after it (the modules are shared, so nothing is copied). With
``--compile`` each latentlab column is run once untimed first, so compilation (every batch
shape) stays out of the timings.

Each row of the table is printed as its model finishes (a run cut off by a time limit keeps
the rows it finished), and the whole table again at the end; ``--json`` is rewritten after
each row too (and on Ctrl-C), so it holds the rows finished so far. The header line gives the
date, the hardware and the torch and diffusers versions.

On random weights the recommended column's pixel difference only shows that it runs and
how far two samplers drift apart on an untrained UNet; what fewer steps cost in quality has
to be measured on real weights (``mini`` is trained, so its row is meaningful).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latentlab.errors import is_finite_real, positive_int, thread_count  # noqa: E402
from latentlab.render import make_noise, render, write_whole  # noqa: E402
from latentlab.spec import MAX_FRAMES, MAX_STEPS  # noqa: E402
from latentlab.space import tag  # noqa: E402


# -- models --------------------------------------------------------------------------------------


def real_size_stable_unclip(kind: str, *, size: int, seed: int = 0) -> Any:
    """A ``StableUnCLIPImg2ImgPipeline`` with the architecture of SD 2.1 unCLIP (``"h"``:
    ViT-H/14 image embeddings, 1024-d; ``"l"``: ViT-L/14, 768-d) and random weights."""
    from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, StableUnCLIPImg2ImgPipeline, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer
    from transformers import CLIPImageProcessor, CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModelWithProjection

    from latentlab.decoders.unclip import tiny_clip_tokenizer

    embed = {"h": 1024, "l": 768}[kind]
    vision = {"h": dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16),
              "l": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16)}[kind]  # fmt: skip
    tokenizer = tiny_clip_tokenizer(77)  # the prompt is always "" here; vocabulary size does not change compute
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
            max_position_embeddings=77, projection_dim=1024, hidden_act="gelu", bos_token_id=0, eos_token_id=1, pad_token_id=1,
        )).eval()  # fmt: skip
        image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
            image_size=224, patch_size=14, projection_dim=embed, hidden_act="gelu", **vision)).eval()  # fmt: skip
        unet = UNet2DConditionModel(
            sample_size=size // 8, in_channels=4, out_channels=4, layers_per_block=2,
            block_out_channels=(320, 640, 1280, 1280), attention_head_dim=(5, 10, 20, 20),
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=1024, use_linear_projection=True, class_embed_type="projection",
            projection_class_embeddings_input_dim=2 * embed,
        ).eval()  # fmt: skip
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=size,
            block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
        ).eval()  # fmt: skip
        normalizer = StableUnCLIPImageNormalizer(embedding_dim=embed)
    pipe = StableUnCLIPImg2ImgPipeline(
        feature_extractor=CLIPImageProcessor(crop_size={"height": 224, "width": 224}, size={"shortest_edge": 224}),
        image_encoder=image_encoder, image_normalizer=normalizer,
        image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"), tokenizer=tokenizer,
        text_encoder=text_encoder, unet=unet, vae=vae,
        scheduler=DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                prediction_type="v_prediction", set_alpha_to_one=False, steps_offset=1, clip_sample=False),
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


def real_size_kandinsky(*, size: int, seed: int = 0) -> Any:
    """A ``KandinskyV22Pipeline`` with the architecture of ``kandinsky-community/kandinsky-2-2-decoder``
    (its ``unet/config.json``, ``movq/config.json`` and ``scheduler/scheduler_config.json``)
    and random weights: a 1.2B-parameter image-conditioned UNet (1280-d ViT-bigG/14 image
    embeddings) and the MoVQ (scale factor 8)."""
    from diffusers import DDPMScheduler, KandinskyV22Pipeline, UNet2DConditionModel, VQModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # every value is the released unet/config.json's except sample_size, which was not
        # pinned down here: it is only a default size and does not change compute
        unet = UNet2DConditionModel(
            sample_size=size // 8, in_channels=4, out_channels=8, layers_per_block=3,
            block_out_channels=(384, 768, 1152, 1536), attention_head_dim=64, cross_attention_dim=768,
            down_block_types=("ResnetDownsampleBlock2D",) + ("SimpleCrossAttnDownBlock2D",) * 3,
            up_block_types=("SimpleCrossAttnUpBlock2D",) * 3 + ("ResnetUpsampleBlock2D",),
            mid_block_type="UNetMidBlock2DSimpleCrossAttn", encoder_hid_dim=1280, encoder_hid_dim_type="image_proj",
            addition_embed_type="image", addition_embed_type_num_heads=64, class_embed_type=None,
            resnet_time_scale_shift="scale_shift", norm_num_groups=32, norm_eps=1e-5, cross_attention_norm=None,
            use_linear_projection=False, upcast_attention=False,
        ).eval()  # fmt: skip
        movq = VQModel(
            in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, block_out_channels=(128, 256, 256, 512),
            down_block_types=("DownEncoderBlock2D",) * 3 + ("AttnDownEncoderBlock2D",),
            up_block_types=("AttnUpDecoderBlock2D",) + ("UpDecoderBlock2D",) * 3,
            norm_num_groups=32, norm_type="spatial", num_vq_embeddings=16384, vq_embed_dim=4, sample_size=32,
            scaling_factor=0.18215,
        ).eval()  # fmt: skip
    # from_config keeps set_alpha_to_one (not a DDPM argument) for the DDIM/DPM samplers built from it
    scheduler = DDPMScheduler.from_config(dict(
        num_train_timesteps=1000, beta_schedule="linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
        set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon", thresholding=False,
    ))  # fmt: skip
    pipe = KandinskyV22Pipeline(unet=unet, scheduler=scheduler, movq=movq)
    pipe.set_progress_bar_config(disable=True)
    return pipe


MODELS = ("tiny", "kandinsky-tiny", "mini", "sd21-unclip-h", "sd21-unclip-l", "kandinsky-2.2")
TINY = ("tiny", "kandinsky-tiny", "mini")
#: the frame sizes each model takes are multiples of this (the VAE / MoVQ scale factor and, for
#: the tiny SD-unCLIP pipeline, its UNet's depth); mini renders at its own size whatever --size says
SIZE_STEP = {"tiny": 32, "kandinsky-tiny": 4, "sd21-unclip-h": 8, "sd21-unclip-l": 8, "kandinsky-2.2": 64}


def build_decoder(model: str, *, size: int, device: str, dtype: torch.dtype, seed: int) -> Any:
    """A latentlab decoder (DDIM) wrapping the benchmark pipeline (or the mini decoder)."""
    import latentlab as ll
    from latentlab.decoders.kandinsky import KandinskyDecoder, tiny_kandinsky_pipeline
    from latentlab.decoders.unclip import StableUnCLIPDecoder, tiny_stable_unclip_pipeline

    if model == "mini":
        return ll.create_decoder("mini", device=device, dtype=dtype)
    if model == "kandinsky-tiny":  # the tiny pipeline and image encoder of tests/test_families.py
        from latentlab.hf_clip import tiny_hf_clip_towers

        towers, processor, _ = tiny_hf_clip_towers(dim=32, seed=seed)
        return KandinskyDecoder(tiny_kandinsky_pipeline(dim=32, seed=seed), name=model, space=f"bench-{model}", dim=32,
                                resolution=size, image_encoder=(towers.vision, processor), default_steps=20,
                                default_batch_size=8, device=device, dtype=dtype)  # fmt: skip
    if model == "kandinsky-2.2":
        # random weights have no image encoder to take the zero-image embedding from: a fixed
        # random negative embedding costs the same compute
        negative = torch.randn(1280, generator=torch.Generator("cpu").manual_seed(seed))
        return KandinskyDecoder(real_size_kandinsky(size=size, seed=seed), name=model, space=f"bench-{model}", dim=1280,
                                resolution=size, embed_scale=1.0, negative_embeds=negative, device=device,
                                dtype=dtype)  # fmt: skip
    if model == "tiny":
        pipe, dim = tiny_stable_unclip_pipeline(embed_dim=32, resolution=size, seed=seed), 32
    else:
        kind = {"sd21-unclip-h": "h", "sd21-unclip-l": "l"}[model]
        pipe, dim = real_size_stable_unclip(kind, size=size, seed=seed), {"h": 1024, "l": 768}[kind]
    return StableUnCLIPDecoder(pipe, name=model, space=f"bench-{model}", dim=dim, resolution=size, embed_scale=1.0,
                               device=device, dtype=dtype)  # fmt: skip


def sibling(dec: Any, scheduler: str) -> Any:
    """A decoder over the very same modules as ``dec`` (nothing copied) that samples with
    ``scheduler``: a new pipeline object from ``dec.pipe.components`` with its own scheduler."""
    from latentlab.decoders.kandinsky import KandinskyDecoder
    from latentlab.decoders.unclip import StableUnCLIPDecoder

    pipe = type(dec.pipe)(**dec.pipe.components)
    common = dict(name=dec.name, space=dec.space, dim=dec.dim, resolution=dec.resolution, embed_scale=dec.embed_scale,
                  device=dec.device, dtype=dec.dtype, scheduler=scheduler, default_steps=dec.default_steps,
                  default_guidance=dec.default_guidance, default_batch_size=dec.default_batch_size)  # fmt: skip
    if isinstance(dec, KandinskyDecoder):
        out = KandinskyDecoder(pipe, negative_embeds=dec.negative_embeds, **common)
    elif isinstance(dec, StableUnCLIPDecoder):
        out = StableUnCLIPDecoder(pipe, noise_level=dec.noise_level, **common)
    else:
        raise TypeError(f"no sibling for {type(dec).__name__}")
    out.optimizations = dict(dec.optimizations)
    return out


def trajectory(dec: Any, frames: int, seed: int) -> torch.Tensor:
    """``frames`` unit embeddings slerped between two random endpoints, tagged with the decoder's space."""
    from latentlab.trajectory import Trajectory

    g = torch.Generator("cpu").manual_seed(seed)
    a, b = torch.nn.functional.normalize(torch.randn(2, dec.dim, generator=g), dim=-1).split(1)
    return tag(Trajectory.interpolate(tag(a, dec.space), tag(b, dec.space), frames=frames).embeddings()[:frames], dec.space)


# -- the columns ---------------------------------------------------------------------------------


# each given the device: without it, torch syncs, resets and reads the current device (cuda:0),
# so --device cuda:1 timed kernels it had not waited for and reported cuda:0's peak memory
def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def _reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gb(device: str) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.startswith("cuda") else None


def _to_uint8(images: Any) -> np.ndarray:
    return np.clip(np.rint(np.asarray(images, np.float32) * 255.0), 0, 255).astype(np.uint8)


def diffusers_loop(dec: Any, z: torch.Tensor, noise: torch.Tensor, *, seed: int, steps: int, guidance: float) -> np.ndarray:
    """The usual notebook: one Stable unCLIP pipeline call per frame."""
    pipe = dec.pipe
    dev = pipe._execution_device
    out = []
    for k in range(z.shape[0]):
        with torch.no_grad():
            img = pipe(
                prompt="", image_embeds=(z[k : k + 1] * dec.embed_scale).to(dev, dec.dtype),
                latents=noise[k : k + 1].to(dev, dec.dtype), height=dec.resolution, width=dec.resolution,
                num_inference_steps=steps, guidance_scale=guidance, noise_level=0, eta=0.0,
                generator=torch.Generator("cpu").manual_seed(seed), output_type="np",
            ).images  # fmt: skip
        out.append(_to_uint8(img))
    return np.concatenate(out)


def kandinsky_loop(dec: Any, z: torch.Tensor, noise: torch.Tensor, *, seed: int, steps: int, guidance: float) -> np.ndarray:
    """The usual Kandinsky 2.2 notebook: one ``KandinskyV22Pipeline`` call per frame, with the
    prior's (here: the decoder's) negative image embedding."""
    pipe = dec.pipe
    dev = pipe._execution_device
    neg = dec.negative_embeds[None]
    out = []
    for k in range(z.shape[0]):
        with torch.no_grad():
            img = pipe(
                image_embeds=(z[k : k + 1] * dec.embed_scale).to(dev, dec.dtype), negative_image_embeds=neg.to(dev, dec.dtype),
                latents=noise[k : k + 1].to(dev, dec.dtype), height=dec.resolution, width=dec.resolution,
                num_inference_steps=steps, guidance_scale=guidance, generator=torch.Generator("cpu").manual_seed(seed),
                output_type="np",
            ).images  # fmt: skip
        out.append(_to_uint8(img))
    return np.concatenate(out)


def mini_loop(dec: Any, z: torch.Tensor, noise: torch.Tensor, *, seed: int, steps: int, guidance: float) -> np.ndarray:
    """The mini decoder's own naive loop: one decode call per frame."""
    return np.concatenate([dec.decode(z[k : k + 1], noise[k : k + 1], seeds=[seed], steps=steps, guidance_scale=guidance)
                           for k in range(z.shape[0])])  # fmt: skip


def timed(fn: Any, device: str, repeats: int) -> tuple[Any, float]:
    """Best wall time of ``repeats`` runs (after the caller's warm-up)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        out = fn()
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return out, best


def frame_difference(ref: np.ndarray, got: np.ndarray) -> dict[str, Any]:
    """Max and mean absolute pixel difference (0-255) and PSNR in dB (``None``: identical)."""
    d = ref.astype(np.float64) - got.astype(np.float64)
    mse = float((d**2).mean())
    return {"max": int(np.abs(d).max()), "mean": float(np.abs(d).mean()),
            "psnr_db": None if mse == 0 else 10 * math.log10(255.0**2 / mse)}  # fmt: skip


def recommended_steps(steps: int) -> int:
    """The recommended column's default steps: 60 % of the reference (20 -> 12)."""
    return max(1, round(0.6 * steps))


def run_case(model: str, args: argparse.Namespace) -> dict[str, Any]:
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[args.dtype]
    size = (64 if model in TINY else 768) if args.size is None else args.size
    t_build = time.perf_counter()
    dec = build_decoder(model, size=size, device=args.device, dtype=dtype, seed=args.seed)
    build_s = time.perf_counter() - t_build
    steps = dec.default_steps if args.steps is None else args.steps
    rec_steps = recommended_steps(steps) if args.rec_steps is None else args.rec_steps
    # each sampler's own limit, before any column runs (past it: diffusers' raw ValueError in the
    # loop, or an ArgumentError after the first two columns were timed)
    limits = [("--steps", steps, "ddim", dec.max_steps())]
    if args.recommended != "off" and model != "mini":  # (mini's recommended column is its own DDIM)
        limits.append(("--rec-steps", rec_steps, args.recommended, sibling(dec, args.recommended).max_steps()))
    elif args.recommended != "off":
        limits.append(("--rec-steps", rec_steps, "ddim", dec.max_steps()))
    for flag, k, sampler, limit in limits:
        if limit is not None and k > limit:
            raise SystemExit(f"{flag} {k}: {model}'s {sampler} sampler takes at most {limit} steps")
    guidance = args.guidance if args.guidance is not None else dec.default_guidance
    n = args.frames
    z = trajectory(dec, n, args.seed)
    noise = make_noise(tuple(dec.noise_shape()), [args.seed] * n)
    loop = {"mini": mini_loop, "kandinsky-tiny": kandinsky_loop, "kandinsky-2.2": kandinsky_loop}.get(model, diffusers_loop)

    def column(d: Any, k: int) -> Any:
        return lambda: render(z, d, seed=args.seed, steps=k, guidance_scale=guidance, batch_size=args.batch_size,
                              progress=False)  # fmt: skip

    def warm_up(d: Any, k: int) -> None:
        """Kernels, allocator, lazily built prompt conditioning; with --compile every batch shape."""
        if args.compile:
            column(d, k)()
        else:
            render(z[:2], d, seed=args.seed, steps=k, guidance_scale=guidance, batch_size=2, progress=False)

    # 1. the diffusers loop, on the plain pipeline
    loop(dec, z[:1], noise[:1], seed=args.seed, steps=steps, guidance=guidance)
    _reset_peak(args.device)
    ref, t_loop = timed(lambda: loop(dec, z, noise, seed=args.seed, steps=steps, guidance=guidance), args.device, args.repeats)
    peak_loop = _peak_gb(args.device)

    # 2. latentlab, same sampler and steps (+ the levers asked for)
    levers = [name for name, on in (("channels-last", args.channels_last), ("compile", args.compile)) if on]
    if levers:  # every decoder here has optimize() (mini: its UNet and upscaler in channels-last)
        dec.optimize(channels_last=args.channels_last, compile=args.compile, compile_mode=args.compile_mode)
        if args.compile and args.compile_mode:
            levers[levers.index("compile")] = f"compile:{args.compile_mode}"
    warm_up(dec, steps)
    _reset_peak(args.device)
    got, t_ours = timed(column(dec, steps), args.device, args.repeats)
    peak_ours = _peak_gb(args.device)
    alone = render(z[n // 2 : n // 2 + 1], dec, seed=args.seed, steps=steps, guidance_scale=guidance, batch_size=1,
                   progress=False)[0]  # fmt: skip
    row: dict[str, Any] = {
        "model": model, "size": dec.resolution, "frames": n, "steps": steps, "guidance": guidance,
        "batch_size": dec.default_batch_size if args.batch_size is None else args.batch_size,
        "device": args.device, "dtype": args.dtype, "levers": levers, "build_s": round(build_s, 2),
        "loop_s_per_frame": t_loop / n, "ours_s_per_frame": t_ours / n, "speedup": t_loop / t_ours,
        "loop_peak_gb": peak_loop, "ours_peak_gb": peak_ours,
        "max_pixel_diff": int(np.abs(ref.astype(int) - got.astype(int)).max()),
        "alone_vs_batch_max_diff": int(np.abs(alone.astype(int) - got[n // 2].astype(int)).max()),
    }  # fmt: skip

    # 3. latentlab recommended: another sampler / fewer steps, same weights and noise
    if args.recommended != "off":
        if model == "mini":  # one sampler only: its own DDIM with fewer steps
            rec, sampler = dec, "ddim"
        else:
            rec, sampler = sibling(dec, args.recommended), args.recommended
        warm_up(rec, rec_steps)
        _reset_peak(args.device)
        fast, t_rec = timed(column(rec, rec_steps), args.device, args.repeats)
        diff = frame_difference(ref, fast)
        row.update({
            "rec_sampler": sampler, "rec_steps": rec_steps, "rec_s_per_frame": t_rec / n, "rec_speedup": t_loop / t_rec,
            "rec_peak_gb": _peak_gb(args.device), "rec_max_pixel_diff": diff["max"],
            "rec_mean_pixel_diff": diff["mean"], "rec_psnr_db": diff["psnr_db"],
        })  # fmt: skip
    return row


TABLE_HEAD = ("| model | px | frames | steps | batch | levers | diffusers loop s/frame | latentlab s/frame | latentlab frames/s "
              "| speed-up | max px diff | frame alone vs in batch | recommended | rec. s/frame | rec. speed-up "
              "| rec. px diff max / mean | rec. PSNR dB | peak GB loop / ours / rec. |\n" + "|" + "---|" * 18)  # fmt: skip


def table_row(r: dict[str, Any]) -> str:
    """One row of the table (:data:`TABLE_HEAD`)."""
    peaks = [r["loop_peak_gb"], r["ours_peak_gb"], r.get("rec_peak_gb")]
    peak = "n/a (CPU)" if peaks[0] is None else " / ".join("-" if p is None else f"{p:.1f}" for p in peaks)
    if "rec_steps" in r:
        psnr = "identical" if r["rec_psnr_db"] is None else f"{r['rec_psnr_db']:.1f}"
        rec = (f"{r['rec_sampler']} {r['rec_steps']} | {r['rec_s_per_frame']:.3f} | {r['rec_speedup']:.2f}x "
               f"| {r['rec_max_pixel_diff']} / {r['rec_mean_pixel_diff']:.1f} | {psnr}")  # fmt: skip
    else:
        rec = "off | - | - | - | -"
    return (f"| {r['model']} | {r['size']} | {r['frames']} | {r['steps']} | {r['batch_size']} | {', '.join(r['levers']) or '-'} "
            f"| {r['loop_s_per_frame']:.3f} | {r['ours_s_per_frame']:.3f} | {1 / r['ours_s_per_frame']:.2f} "
            f"| {r['speedup']:.2f}x | {r['max_pixel_diff']} | {r['alone_vs_batch_max_diff']} | {rec} | {peak} |")  # fmt: skip


def table(rows: list[dict[str, Any]]) -> str:
    return "\n".join([TABLE_HEAD] + [table_row(r) for r in rows])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true",
                    help="CPU smoke run: tiny random SD-unCLIP and Kandinsky pipelines, mini; implies --device cpu "
                    "unless --device is given")  # fmt: skip
    ap.add_argument("--model", action="append", choices=MODELS,
                    help="model(s) to time (repeatable); default sd21-unclip-h, or tiny + kandinsky-tiny + mini with --tiny")  # fmt: skip
    ap.add_argument("--size", type=positive_int, default=None, help="frame size in pixels (default: 64 tiny, 768 real; mini always renders at its 64)")
    ap.add_argument("--frames", type=positive_int, default=None, help="frames per trajectory, >= 2 (default 16; 8 with --tiny)")
    ap.add_argument("--steps", type=positive_int, default=None,
                    help="reference (DDIM) steps (default: the decoder's; 20 for real models)")  # fmt: skip
    ap.add_argument("--guidance", type=float, default=None, help="classifier-free guidance (default: the decoder's)")
    ap.add_argument("--batch-size", type=positive_int, default=None, help="latentlab frames per call (default: the decoder's)")
    ap.add_argument("--recommended", default="dpm++", choices=["dpm++", "ddim", "off"],
                    help="sampler of the 'latentlab recommended' column (mini: always its own DDIM); off skips it")  # fmt: skip
    ap.add_argument("--rec-steps", type=positive_int, default=None, help="steps of the recommended column (default: 60%% of --steps)")
    ap.add_argument("--channels-last", action="store_true",
                    help="latentlab columns: UNet and autoencoder (mini: upscaler) in channels-last")  # fmt: skip
    ap.add_argument("--compile", action="store_true", help="latentlab columns: torch.compile the UNet (warm-up untimed)")
    ap.add_argument("--compile-mode", default=None, choices=["default", "reduce-overhead", "max-autotune"],
                    help="with --compile: torch.compile's mode; reduce-overhead replays CUDA graphs (one per batch shape, "
                    "recorded in the untimed warm-up)")  # fmt: skip
    ap.add_argument("--device", default=None,
                    help="torch device, e.g. cpu, cuda, cuda:1 (default: cuda when a GPU is available, else cpu; "
                    "cpu with --tiny)")  # fmt: skip
    ap.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"],
                    help="model dtype (default: float16 on cuda, float32 on the CPU)")
    ap.add_argument("--repeats", type=positive_int, default=1, help="time each column this many times, keep the best")
    ap.add_argument("--threads", type=thread_count, default=None, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    if args.compile_mode and not args.compile:
        ap.error("--compile-mode needs --compile")
    # before any model is built (a real-size one takes minutes): torch raised a raw ValueError on
    # a seed past 64 bits, and a NaN or negative guidance failed only after the build
    if not -(2**63) <= args.seed < 2**63:
        ap.error(f"--seed must be an integer in [-2**63, 2**63), got {args.seed}")
    if args.guidance is not None and not (is_finite_real(args.guidance) and args.guidance >= 0):
        ap.error(f"--guidance must be a finite number >= 0, got {args.guidance}")
    if args.device is None:
        args.device = "cpu" if args.tiny or not torch.cuda.is_available() else "cuda"
    else:  # before any model is built: a device torch cannot name was refused only after the build
        try:
            device = torch.device(args.device)
        except RuntimeError:
            ap.error(f"--device {args.device}: not a torch device; use e.g. cpu, cuda or cuda:1")
        if device.type == "cuda" and not torch.cuda.is_available():
            ap.error(f"--device {args.device}: torch sees no CUDA GPU here (torch {torch.__version__}); "
                     "use --device cpu")  # fmt: skip
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            n = torch.cuda.device_count()
            ap.error(f"--device {args.device}: torch sees {n} CUDA GPU(s) here (cuda:0 to cuda:{n - 1})" if n else
                     f"--device {args.device}: torch reports CUDA available with no GPU (check CUDA_VISIBLE_DEVICES); "
                     "use --device cpu")  # fmt: skip
    for flag, k in (("--steps", args.steps), ("--rec-steps", args.rec_steps)):  # every model's sampler: 1000 timesteps
        if k is not None and k > MAX_STEPS:
            ap.error(f"{flag} must be at most {MAX_STEPS} (the samplers' training timesteps), got {k}")
    if args.frames is None:
        args.frames = 8 if args.tiny else 16
    if args.frames < 2:  # here, not after the models are built: the trajectory needs two ends
        ap.error(f"--frames must be >= 2 (a trajectory from one end to the other), got {args.frames}")
    if args.frames > MAX_FRAMES + 1:  # (the trajectory refused it after the build)
        ap.error(f"--frames must be at most {MAX_FRAMES + 1}, got {args.frames}")
    if args.json is not None:  # before the first row is timed (it is rewritten after each row)
        try:
            args.json = args.json.expanduser()
        except RuntimeError:  # ~user that does not exist
            ap.error(f"--json {args.json}: no such home folder")
        if args.json.is_dir():
            ap.error(f"--json {args.json} is a folder; give a file name, e.g. {args.json / 'speed.json'}")
        if not args.json.absolute().parent.is_dir():
            ap.error(f"--json {args.json}: its folder {args.json.absolute().parent} does not exist; create it first")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    models = args.model or (list(TINY) if args.tiny else ["sd21-unclip-h"])
    for m in models:  # the decoder refused it only after the build (minutes for a real-size model)
        if args.size is not None and m in SIZE_STEP and args.size % SIZE_STEP[m]:
            ap.error(f"--size {args.size}: {m} renders frames whose side is a multiple of {SIZE_STEP[m]}, "
                     f"e.g. {SIZE_STEP[m] * max(1, round(args.size / SIZE_STEP[m]))}")  # fmt: skip
    args.dtype = args.dtype or ("float16" if args.device.startswith("cuda") else "float32")
    if not args.tiny and args.steps is None:
        args.steps = 20
    hw = (torch.cuda.get_device_name(args.device) if args.device.startswith("cuda")
          else f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads")  # fmt: skip
    versions = {"torch": torch.__version__, "diffusers": _version("diffusers")}
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    # quoted as a shell reads it (an argument with a space, e.g. a --json path, was printed bare)
    command = shlex.join(["python", "benchmarks/render_speed.py", *(argv if argv is not None else sys.argv[1:])])
    header = f"{date}; hardware: {hw}; torch {versions['torch']}, diffusers {versions['diffusers']}; command: {command}"
    rows: list[dict[str, Any]] = []

    def save(complete: bool) -> None:
        """--json: the rows finished so far (rewritten after each row, so a cut-off run keeps them)."""
        if args.json:
            doc = {"date": date, "hardware": hw, "versions": versions, "command": command, "complete": complete,
                   "rows": rows}  # fmt: skip
            text = json.dumps(doc, indent=2) + "\n"
            # whole or not at all: a run killed mid-write (a time limit) kept a cut-short file, no rows
            write_whole(args.json, lambda tmp: tmp.write_text(text))

    print(header, flush=True)
    # each row as it finishes, so a run cut off by a time limit keeps the rows it finished
    print(TABLE_HEAD, flush=True)
    try:
        for m in models:
            rows.append(run_case(m, args))
            print(table_row(rows[-1]), flush=True)
            print(f"done: {m}", file=sys.stderr)
            save(complete=False)
    except KeyboardInterrupt:
        save(complete=False)
        kept = f"; rows so far in {args.json}" if args.json else ""
        print(f"interrupted after {len(rows)} of {len(models)} models{kept}", file=sys.stderr)
        raise
    save(complete=True)
    print()
    print(header)
    print(table(rows))
    return 0


def _version(package: str) -> str:
    """An installed package's version, or "not installed"."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    raise SystemExit(main())
