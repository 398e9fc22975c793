"""How closely the embedded decoder redraws a picture from its DDIM-inverted noise, by step count.

    python benchmarks/inversion_steps.py [--steps 1 2 3 4 6 10 25] [--guidance 1 3] [--refine 0 20]
                                         [--threads 1] [--json FILE]

For each picture (three shapes-world scenes and two emoji of ``examples/emoji/``), each step
count ``k``, decode guidance ``g`` and refinement ``r``: ``noise = dec.invert(picture, z, steps=k,
refine=r, decode_guidance=g)`` then ``dec.decode(z, noise, steps=k, guidance_scale=g)``, with
``z`` the ``mini`` encoder's embedding of the picture and the ``mini`` decoder (its learned 2x
upscaler included: the redraw is compared at 64 px). It prints the mean absolute error of the
redraw against the picture in levels of 255, averaged over the pictures, one row per ``(g, r)``.
docs/quality.md ("Few steps") quotes its table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from latentlab.errors import output_file, positive_int, thread_count

ROOT = Path(__file__).resolve().parents[1]
SCENES = ((100, 1), (101, 1), (110, 2))  # (seed, objects) of the shapes-world pictures
EMOJI = ("mobile_phone_twemoji", "telephone_noto")


def pictures() -> dict[str, np.ndarray]:
    """The benchmark's pictures, uint8 (64, 64, 3), by name."""
    import latentlab as ll
    from latentlab.mini.shapes import render_scene, sample_scene

    pics = {f"scene{s}": render_scene(sample_scene(s, n_objects=n)) for s, n in SCENES}
    for name in EMOJI:
        pics[name] = ll.load_image(ROOT / "examples" / "emoji" / f"{name}.png")
    return pics


def measure(enc, dec, pics: dict[str, np.ndarray], steps, guidance, refine) -> list[dict]:
    """One row per (refine, guidance, steps): the mean absolute error of the redraws, overall
    and per picture."""
    names = list(pics)
    images = np.stack([pics[n] for n in names])
    z = enc.encode_image(images)
    rows = []
    for r in refine:
        for g in guidance:
            for k in steps:
                t0 = time.perf_counter()
                noise = dec.invert(images, z, steps=k, refine=r, decode_guidance=g, progress=False)
                out = dec.decode(z, noise, steps=k, guidance_scale=g)
                per = np.abs(out.astype(np.float64) - images.astype(np.float64)).mean(axis=(1, 2, 3))
                rows.append({"refine": r, "guidance": g, "steps": k, "mae": float(per.mean()),
                             "per_picture": dict(zip(names, per.round(1).tolist())),
                             "seconds": round(time.perf_counter() - t0, 1)})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(prog="benchmarks/inversion_steps.py", description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--steps", type=positive_int, nargs="+", default=[1, 2, 3, 4, 6, 10, 25], help="step counts")
    ap.add_argument("--guidance", type=float, nargs="+", default=[1.0, 3.0], help="decode guidance scales")
    ap.add_argument("--refine", type=int, nargs="+", default=[0], help="gradient steps refining the noise (0: none)")
    ap.add_argument("--threads", type=thread_count, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--json", type=output_file, default=None, help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    if any(not (np.isfinite(g) and g >= 0) for g in args.guidance):
        ap.error(f"--guidance takes finite numbers >= 0, got {args.guidance}")
    if any(r < 0 for r in args.refine):
        ap.error(f"--refine takes whole numbers >= 0, got {args.refine}")
    torch.set_num_threads(args.threads)
    import latentlab as ll

    dec = ll.create_decoder("mini")
    limit = dec.max_steps()
    if limit is not None and max(args.steps) > limit:  # refused here, not after the smaller counts were measured
        ap.error(f"--steps takes at most {limit} (the decoder's training timesteps), got {max(args.steps)}")
    rows = measure(ll.create_encoder("mini"), dec, pictures(), args.steps, args.guidance, args.refine)
    print("mean absolute error of the redraw, levels of 255 (64 px):")
    for r in args.refine:
        for g in args.guidance:
            cells = [f"{row['steps']}: {row['mae']:.1f}" for row in rows if row["refine"] == r and row["guidance"] == g]
            print(f"  refine={r} guidance={g:g}  " + "  ".join(cells))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
