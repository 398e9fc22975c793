"""Render speed: the diffusers per-frame loop against latentlab's renderer, side by side.

Both columns use the very same pipeline object (same weights, scheduler, steps, guidance,
starting noise), so the frames must agree; the table reports how closely (max absolute
pixel difference, 0-255) next to the speed::

    python benchmarks/render_speed.py --tiny                     # CPU, seconds (tested in CI)
    python benchmarks/render_speed.py --model sd21-unclip-h --size 768 --frames 16 \\
        --steps 20 --device cuda --dtype float16                 # real-size, random weights

``--model sd21-unclip-h`` / ``sd21-unclip-l`` build the real Stable Diffusion 2.1 unCLIP
architectures (UNet, VAE, OpenCLIP-H text encoder, ViT-H/L image encoder) with random
weights: they cost the same compute as the released checkpoints and need no download.
``--model mini`` times the embedded model against its own one-frame-at-a-time loop.

The baseline is what a hand-written notebook does: one ``pipe(image_embeds=...)`` call per
frame. latentlab renders the same frames in batches of ``--batch-size`` (frames share the
starting noise, the conditioning is per frame), computes the empty-prompt text
conditioning once per render, and writes nothing to disk here (the writer thread is
measured separately by ``--out-dir``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latentlab.render import make_noise, render  # noqa: E402
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


def build_decoder(model: str, *, size: int, device: str, dtype: torch.dtype, seed: int) -> Any:
    """A latentlab decoder wrapping the benchmark pipeline (or the mini decoder)."""
    import latentlab as ll
    from latentlab.decoders.unclip import StableUnCLIPDecoder, tiny_stable_unclip_pipeline

    if model == "mini":
        return ll.create_decoder("mini", device=device, dtype=dtype)
    if model == "tiny":
        pipe, dim = tiny_stable_unclip_pipeline(embed_dim=32, resolution=size, seed=seed), 32
    else:
        kind = {"sd21-unclip-h": "h", "sd21-unclip-l": "l"}[model]
        pipe, dim = real_size_stable_unclip(kind, size=size, seed=seed), {"h": 1024, "l": 768}[kind]
    return StableUnCLIPDecoder(pipe, name=model, space=f"bench-{model}", dim=dim, resolution=size, embed_scale=1.0,
                               device=device, dtype=dtype)  # fmt: skip


def trajectory(dec: Any, frames: int, seed: int) -> torch.Tensor:
    """``frames`` unit embeddings slerped between two random endpoints, tagged with the decoder's space."""
    from latentlab.trajectory import Trajectory

    g = torch.Generator("cpu").manual_seed(seed)
    a, b = torch.nn.functional.normalize(torch.randn(2, dec.dim, generator=g), dim=-1).split(1)
    return tag(Trajectory.interpolate(tag(a, dec.space), tag(b, dec.space), frames=frames).embeddings()[:frames], dec.space)


# -- the two columns -----------------------------------------------------------------------------


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gb(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None


def diffusers_loop(dec: Any, z: torch.Tensor, noise: torch.Tensor, *, seed: int, steps: int, guidance: float) -> np.ndarray:
    """The usual notebook: one pipeline call per frame."""
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
        out.append(np.clip(np.rint(np.asarray(img, np.float32) * 255.0), 0, 255).astype(np.uint8))
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


def run_case(model: str, args: argparse.Namespace) -> dict[str, Any]:
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[args.dtype]
    size = args.size or (64 if model in ("tiny", "mini") else 768)
    t_build = time.perf_counter()
    dec = build_decoder(model, size=size, device=args.device, dtype=dtype, seed=args.seed)
    build_s = time.perf_counter() - t_build
    steps = args.steps or dec.default_steps
    guidance = args.guidance if args.guidance is not None else dec.default_guidance
    z = trajectory(dec, args.frames, args.seed)
    noise = make_noise(tuple(dec.noise_shape()), [args.seed] * args.frames)
    loop = mini_loop if model == "mini" else diffusers_loop

    def ours() -> np.ndarray:
        return render(z, dec, seed=args.seed, steps=steps, guidance_scale=guidance, batch_size=args.batch_size, progress=False)

    # warm-up: kernels, allocator, lazily built prompt conditioning
    loop(dec, z[:1], noise[:1], seed=args.seed, steps=steps, guidance=guidance)
    render(z[:2], dec, seed=args.seed, steps=steps, guidance_scale=guidance, batch_size=2, progress=False)

    _reset_peak(args.device)
    ref, t_loop = timed(lambda: loop(dec, z, noise, seed=args.seed, steps=steps, guidance=guidance), args.device, args.repeats)
    peak_loop = _peak_gb(args.device)
    _reset_peak(args.device)
    got, t_ours = timed(ours, args.device, args.repeats)
    peak_ours = _peak_gb(args.device)
    alone = render(z[args.frames // 2 : args.frames // 2 + 1], dec, seed=args.seed, steps=steps,
                   guidance_scale=guidance, batch_size=1, progress=False)[0]  # fmt: skip
    n = args.frames
    return {
        "model": model, "size": size, "frames": n, "steps": steps, "guidance": guidance,
        "batch_size": args.batch_size or dec.default_batch_size, "device": args.device, "dtype": args.dtype,
        "build_s": round(build_s, 2),
        "loop_s_per_frame": t_loop / n, "ours_s_per_frame": t_ours / n, "speedup": t_loop / t_ours,
        "loop_peak_gb": peak_loop, "ours_peak_gb": peak_ours,
        "max_pixel_diff": int(np.abs(ref.astype(int) - got.astype(int)).max()),
        "alone_vs_batch_max_diff": int(np.abs(alone.astype(int) - got[n // 2].astype(int)).max()),
    }  # fmt: skip


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| model | px | frames | steps | batch | diffusers loop s/frame | latentlab s/frame | latentlab frames/s "
            "| speed-up | peak GB loop / ours | max px diff | frame alone vs in batch |")  # fmt: skip
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        peak = "n/a (CPU)" if r["loop_peak_gb"] is None else f"{r['loop_peak_gb']:.1f} / {r['ours_peak_gb']:.1f}"
        lines.append(
            f"| {r['model']} | {r['size']} | {r['frames']} | {r['steps']} | {r['batch_size']} | {r['loop_s_per_frame']:.3f} "
            f"| {r['ours_s_per_frame']:.3f} | {1 / r['ours_s_per_frame']:.2f} | {r['speedup']:.2f}x | {peak} "
            f"| {r['max_pixel_diff']} | {r['alone_vs_batch_max_diff']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="CPU smoke run: the tiny random pipeline and the mini model")
    ap.add_argument("--model", action="append", choices=["tiny", "mini", "sd21-unclip-h", "sd21-unclip-l"],
                    help="model(s) to time (repeatable); default sd21-unclip-h, or tiny+mini with --tiny")  # fmt: skip
    ap.add_argument("--size", type=int, default=None, help="frame size in pixels (default: 64 tiny/mini, 768 real)")
    ap.add_argument("--frames", type=int, default=None, help="frames per trajectory (default 16; 8 with --tiny)")
    ap.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the decoder's; 20 for real models)")
    ap.add_argument("--guidance", type=float, default=None, help="classifier-free guidance (default: the decoder's)")
    ap.add_argument("--batch-size", type=int, default=None, help="latentlab frames per call (default: the decoder's)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--repeats", type=int, default=1, help="time each column this many times, keep the best")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    models = args.model or (["tiny", "mini"] if args.tiny else ["sd21-unclip-h"])
    args.frames = args.frames or (8 if args.tiny else 16)
    args.dtype = args.dtype or ("float16" if args.device.startswith("cuda") else "float32")
    if not args.tiny and args.steps is None:
        args.steps = 20
    rows = []
    for m in models:
        rows.append(run_case(m, args))
        print(f"done: {m}", file=sys.stderr)
    hw = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    print(f"hardware: {hw}; torch {torch.__version__}; command: python benchmarks/render_speed.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps({"hardware": hw, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
