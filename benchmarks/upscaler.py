"""Does the mini model's learned 2x upscaler pay for itself? Quality and cost, side by side.

    python benchmarks/upscaler.py [--weights DIR] [--data DIR] [--n 128] [--steps 25] [--threads 2]
                                  [--json FILE] [--sheet FILE.png]

``DIR`` must hold ``mini_upscaler.safetensors`` beside the decoder (``latentlab/mini/weights``
by default). Every row compares the two ways the decoder's native 32 px output reaches the
64 px frames: **Lanczos** (a resize, what ``upscale=False`` does) and **learned** (the
upscaler), on the same inputs in one run:

1. *Reconstruction* of held-out 64 px images shrunk to 32 px as the decoder's training
   images were (bicubic): PSNR against the 64 px original, for fresh shapes scenes (a seed
   the training never drew) and for the data index's held-out emoji / clip art (when
   fetched: ``--data``, default ``.cache/mini/data`` of the working directory, or of this
   checkout when the working directory has none). The pixel checker (``shapes.check_agreement`` on one-object scenes,
   ``shapes.check_relation`` on two-object ones) on the results, and on the originals as
   the ceiling.
2. *Decodes*: the decoder draws 32 px images from the embeddings of fresh scenes (default
   steps and guidance); the checker reads the same decodes upscaled both ways.
3. *Cost*: seconds per frame of the upscaler and of the decode itself (batch 16, the
   preset's default steps), and the ratio.

``--sheet`` writes a contact sheet (each pixel drawn 2x2): per column an example, four each
of one-object scenes, two-object scenes, held-out emoji and held-out clip art; rows original
64 px, Lanczos, learned (reconstructions), then, below, decodes of scenes'
embeddings (four one-object, four two-object), Lanczos over learned.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from latentlab.errors import ModelNotAvailableError, output_file, positive_int, thread_count
from latentlab.mini.data import default_cache_dir, index_file
from latentlab.spec import MAX_STEPS


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def _resize(im: np.ndarray, side: int, f: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(im).resize((side, side), getattr(Image.Resampling, f)))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--weights", default=None, help="weights folder with mini_upscaler (default: the shipped one)")
    ap.add_argument("--n", type=positive_int, default=128, help="images per row (shapes) and at most per source (emoji)")
    ap.add_argument("--steps", type=positive_int, default=None, help="decoder steps (default: the preset's)")
    ap.add_argument("--threads", type=thread_count, default=2)
    ap.add_argument("--seed", type=int, default=9100)
    ap.add_argument("--data", default=None,
                    help="data index folder (python -m latentlab.mini.data fetch, then index) for the emoji / clip-art "
                    "rows (default: .cache/mini/data of the working directory, else of this checkout)")  # fmt: skip
    ap.add_argument("--json", type=output_file, default=None, help="also write the results to this JSON file")
    ap.add_argument("--sheet", type=output_file, default=None, help="also save a picture of the reconstructions here (.png)")
    args = ap.parse_args(argv)
    # the scenes take seeds >= 0 (seed, seed + 1) and the decodes' noise seed + 2: a bad one
    # failed after the models loaded, a huge one after the reconstructions
    if not 0 <= args.seed < 2**63 - 2:
        ap.error(f"--seed must be an integer in [0, 2**63 - 2), got {args.seed}")
    if args.steps is not None and args.steps > MAX_STEPS:  # as generate --steps: a traceback after the reconstructions
        ap.error(f"--steps must be at most {MAX_STEPS} (the decoder's training timesteps), got {args.steps}")
    if args.sheet is not None:  # saved at the end, by PIL, which picks the format by the file's extension
        from PIL import Image

        fmt = Image.registered_extensions().get(args.sheet.suffix.lower())
        if fmt not in Image.SAVE:
            ap.error(f"--sheet {args.sheet}: name a picture file PIL can write, e.g. sheet.png")
    if args.data is not None and not index_file(Path(args.data)).is_file():  # asked for: not silently left out
        ap.error(f"--data {args.data}: no {index_file(Path(args.data))} (python -m latentlab.mini.data fetch, then index)")
    data_index = index_file(Path(args.data) if args.data is not None else default_cache_dir())
    torch.set_num_threads(args.threads)

    from latentlab.mini import data, shapes
    from latentlab.mini.models import WEIGHTS_DIR, create_clip, sample_decoder
    from latentlab.mini.runtime import MiniDecoder
    from latentlab.mini.train import _prepare

    wd = Path(args.weights) if args.weights else WEIGHTS_DIR
    if not (wd / "mini_clip.safetensors").is_file():  # needed for the decodes, after the reconstructions
        raise ModelNotAvailableError(f"no mini CLIP at {wd / 'mini_clip.safetensors'}: the decodes encode scenes with it.")
    learned = MiniDecoder.from_pretrained(wd, upscale=True)
    plain = MiniDecoder.from_pretrained(wd, upscale=False)
    s, big = learned.config.image_size, learned.resolution
    res: dict = {"native": s, "resolution": big, "n": args.n, "seed": args.seed}

    def both(small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (b, s, s, 3) -> frames at ``resolution`` by Lanczos and by the upscaler."""
        x = torch.from_numpy(np.ascontiguousarray(small)).permute(0, 3, 1, 2).float() / 127.5 - 1
        return plain._to_frames(x), np.concatenate([learned._to_frames(x[a : a + 64]) for a in range(0, len(x), 64)])

    # 1. reconstruction of held-out images
    sheet_cols: list[list[np.ndarray]] = []
    one = shapes.sample_scenes(args.seed, args.n, n_objects=1)
    two = shapes.relation_scenes(args.seed + 1, args.n)
    groups = {"shapes_one": [shapes.render_scene(sc, big) for sc in one],
              "shapes_two": [shapes.render_scene(sc, big) for sc in two]}  # fmt: skip
    try:
        held = data.load_index(data_index, split="held-out", size=big)
        for name, srcs in (("emoji", [x for x in data.IMAGE_SOURCES if x != "openclipart"]), ("clipart", ["openclipart"])):
            idx = [i for i in range(len(held)) if held[i]["source"] in srcs]
            pick = np.random.default_rng(args.seed).permutation(idx)[: args.n]
            if len(pick):
                groups[name] = [held.image(int(i)) for i in pick]
    except data.DataFetchError as e:  # no data fetched: those rows stay unmeasured (any other error is a bug)
        res["note"] = f"no emoji rows: {type(e).__name__}: {e}"
    outs = {}
    for name, imgs in groups.items():
        orig = np.stack(imgs)
        small = np.stack([_resize(im, s, "BICUBIC") for im in orig])
        lz, up = both(small)
        outs[name] = (orig, lz, up)
        res[f"psnr_{name}_lanczos"] = float(np.mean([_psnr(a, b) for a, b in zip(lz, orig)]))
        res[f"psnr_{name}_learned"] = float(np.mean([_psnr(a, b) for a, b in zip(up, orig)]))
        sheet_cols += [[orig[i], lz[i], up[i]] for i in range(min(4, len(orig)))]
    for tag, frames in (("original", 0), ("lanczos", 1), ("learned", 2)):
        res[f"checker_one_{tag}"] = float(np.mean([shapes.check_agreement(f, sc)["both"]
                                                   for f, sc in zip(outs["shapes_one"][frames], one)]))  # fmt: skip
        res[f"relation_{tag}"] = float(np.mean([shapes.check_relation(f, sc)["both"]
                                                for f, sc in zip(outs["shapes_two"][frames], two)]))  # fmt: skip

    # 2. decodes of fresh scenes' embeddings, upscaled both ways
    model, pre, _ = create_clip(wd / "mini_clip.safetensors")
    steps = plain.default_steps if args.steps is None else args.steps
    g = plain.default_guidance
    dec_rows = {}
    t_dec = t_up = 0.0
    for name, scenes in (("one", one), ("two", two)):
        x, _ = _prepare([shapes.render_scene(sc) for sc in scenes], pre)
        with torch.no_grad():
            z = torch.nn.functional.normalize(model.encode_image(x).float(), dim=-1)
        noise = torch.randn(len(scenes), *plain.noise_shape(), generator=torch.Generator().manual_seed(args.seed + 2))
        natives = []
        for a in range(0, len(scenes), 16):
            t0 = time.perf_counter()
            with torch.inference_mode():
                nat = sample_decoder(plain.net, z[a : a + 16], noise[a : a + 16], steps=steps, guidance_scale=g)
            t_dec += time.perf_counter() - t0
            natives.append(nat)
            t0 = time.perf_counter()
            learned._to_frames(nat)
            t_up += time.perf_counter() - t0
        nat = torch.cat(natives)
        lz, up = plain._to_frames(nat), learned._to_frames(nat)
        dec_rows[name] = (lz, up)
        check = (lambda f, sc: shapes.check_agreement(f, sc)["both"]) if name == "one" else \
                (lambda f, sc: shapes.check_relation(f, sc)["both"])  # fmt: skip
        res[f"decode_{name}_lanczos"] = float(np.mean([check(f, sc) for f, sc in zip(lz, scenes)]))
        res[f"decode_{name}_learned"] = float(np.mean([check(f, sc) for f, sc in zip(up, scenes)]))
    n_frames = len(one) + len(two)
    res["seconds_per_frame_decode"] = t_dec / n_frames
    res["seconds_per_frame_upscale"] = t_up / n_frames
    res["upscale_cost_ratio"] = t_up / t_dec
    res["decode_steps"], res["threads"] = steps, args.threads
    res["upscaler_params"] = sum(p.numel() for p in learned.upscaler.parameters())
    for k, v in res.items():
        print(f"{k:32s} {v:.4f}" if isinstance(v, float) else f"{k:32s} {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    if args.sheet:
        from PIL import Image

        cols = sheet_cols
        rows_dec = [dec_rows["one"][0][:4], dec_rows["one"][1][:4], dec_rows["two"][0][:4], dec_rows["two"][1][:4]]
        top = np.concatenate([np.concatenate(c, axis=0) for c in cols], axis=1)
        bottom = np.concatenate([np.concatenate([r[0], r[1]], axis=0) for r in zip(*rows_dec[:2])]
                                + [np.concatenate([r[0], r[1]], axis=0) for r in zip(*rows_dec[2:])], axis=1)  # fmt: skip
        pad = np.full((2 * big, top.shape[1] - bottom.shape[1], 3), 255, np.uint8)
        sheet = Image.fromarray(np.concatenate([top, np.concatenate([bottom, pad], axis=1)], axis=0))
        sheet.resize((sheet.width * 2, sheet.height * 2), Image.Resampling.NEAREST).save(args.sheet)  # pixels visible
        print(f"sheet -> {args.sheet}")
    return res


if __name__ == "__main__":
    main()
