"""Render the GIFs of the docs gallery (docs/gallery.md) with the embedded model.

    python docs/make_gallery.py                      # mini, 25 steps -> docs/gallery/
    python docs/make_gallery.py --preset tiny --steps 2 --out /tmp/gallery   # a quick check

Deterministic: the same weights give the same GIFs. Each GIF is written at the model's
native size (64 px for mini; the page scales it up) and the total is kept small: the
script prints the sizes and fails above --budget-kb. The GIFs are written into a temporary
folder beside --out and moved into --out only when they are within the budget, so a run over
it leaves the GIFs already in --out (the committed docs/gallery/) as they were. The budget
is not applied to --preset tiny (random weights draw noise, which GIF compresses badly:
that preset only checks that the script runs). Rerun it after the mini weights change, and
commit docs/gallery/.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from latentlab.errors import positive_int  # noqa: E402


EMOJI = Path(__file__).resolve().parents[1] / "examples" / "emoji"


def _picture(colour: str, shape: str) -> np.ndarray:
    from latentlab.mini.shapes import Scene, ShapeObject, render_scene

    return render_scene(Scene((ShapeObject(shape, colour, "filled", 0.5, 0.5, 0.55),), "white"))


def make_gallery(
    out: Path, *, preset: str = "mini", steps: int | None = None, seed: int = 0, encoder=None, decoder=None
) -> dict[str, Path]:
    """Render every gallery item into ``out``; returns ``{name: path}``. ``encoder`` and
    ``decoder`` default to the preset's."""
    import latentlab as ll
    from latentlab.render import render

    out.mkdir(parents=True, exist_ok=True)
    enc = encoder if encoder is not None else ll.create_encoder(preset)
    dec = decoder if decoder is not None else ll.create_decoder(preset)
    pics = {k: _picture(*k.split("_")) for k in ("red_circle", "blue_square", "green_triangle", "yellow_star")}
    z = dict(zip(pics, enc.encode_image(list(pics.values())).split(1)))
    items: dict[str, Path] = {}

    def gif(name: str, frames: np.ndarray, fps: float, **kw) -> None:
        items[name] = ll.write_video(frames, out / f"{name}.gif", fps=fps, **kw)

    # 1. an interpolation between two pictures, eased, played forth and back
    path = ll.Trajectory.interpolate(z["red_circle"], z["blue_square"], frames=8, easing="ease-in-out")
    gif("interpolation", render(path, dec, seed=seed, steps=steps, progress=False), 8, pingpong=True)

    # 2. a DALL-E 2 text diff: "a red circle" -> "a blue circle", theta 0.5
    src, dst = enc.encode_text(["a red circle", "a blue circle"]).split(1)
    path = ll.Trajectory.text_diff(z["red_circle"], src, dst, theta=0.5, frames=8)
    gif("text_diff", render(path, dec, seed=seed, steps=steps, progress=False), 8, pingpong=True)

    # 3. a loop through four pictures
    loop = ll.Trajectory.chain(
        [z["red_circle"], z["blue_square"], z["green_triangle"], z["yellow_star"], z["red_circle"]],
        frames=[3, 3, 3, 3], easing="ease-in-out",
    )  # fmt: skip
    gif("chain_loop", render(loop, dec, seed=seed, steps=steps, progress=False)[:-1], 6)

    # 4. variations: one embedding, a different starting noise for each frame
    same = ll.Trajectory.interpolate(z["green_triangle"], z["green_triangle"], frames=6)
    gif("variations", render(same, dec, seed=seed, noise="per-frame", steps=steps, progress=False), 2)

    # 5. the DALL-E 2 "iPhone -> old telephone" text diff on the mobile-phone emoji (examples/emoji/)
    phone = ll.load_image(EMOJI / "mobile_phone_twemoji.png")
    src, dst = enc.encode_text(["a mobile phone", "a telephone"]).split(1)
    path = ll.Trajectory.text_diff(enc.encode_image(phone), src, dst, theta=0.5, frames=8)
    gif("phone_to_telephone", render(path, dec, seed=seed, steps=steps, progress=False), 8, pingpong=True)

    # 6. picture to picture from the inverted noises: the end frames redraw the two inputs
    ends = np.stack([ll.load_image(EMOJI / f"{name}_noto.png") for name in ("mobile_phone", "telephone")])
    z_ends = enc.encode_image(ends)
    kn = dec.invert(ends, z_ends, steps=steps)  # refined for the render's guidance on mini
    path = ll.Trajectory.interpolate(*z_ends.split(1), frames=8)
    frames = render(path, dec, seed=seed, noise="inverted", keyframe_noise=kn, steps=steps, progress=False)
    gif("phone_to_telephone_inverted", frames, 6, pingpong=True)
    return items


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="mini")
    p.add_argument("--steps", type=positive_int, default=None, help="sampler steps, >= 1 (default: the preset's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "gallery")
    p.add_argument("--budget-kb", type=float, default=400.0,
                   help="fail, leaving --out as it was, if the GIFs take more than this (not applied to --preset tiny)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    # rendered beside --out and moved in only once within the budget: a run over it (or one
    # that fails) leaves the GIFs in --out as they were
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        items = make_gallery(tmp, preset=args.preset, steps=args.steps, seed=args.seed)
        sizes = {name: path.stat().st_size for name, path in items.items()}
        total = sum(sizes.values())
        for name, path in items.items():
            print(f"{out / path.name}  {sizes[name] / 1024:.0f} KB")
        print(f"{len(items)} GIFs, {total / 1024:.0f} KB in all, {time.perf_counter() - start:.0f} s")
        if args.preset == "tiny":
            print("the budget is not applied to --preset tiny (random weights: noise frames compress badly)")
        elif total > args.budget_kb * 1024:
            print(f"over the budget of {args.budget_kb:g} KB: use fewer frames; {out} left as it was", file=sys.stderr)
            return 1
        out.mkdir(parents=True, exist_ok=True)
        for path in items.values():
            os.replace(path, out / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
