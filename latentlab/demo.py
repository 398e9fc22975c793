"""``make demo``: render a morph on the embedded model and say where it landed.

Uses the embedded ``mini`` preset when its weights are in the package, and otherwise the
``tiny`` preset of random weights (then the video shows structured noise, not pictures, and
the demo says so). Output: ``renders/demo.mp4``, ``renders/demo.gif`` (128 px), ``renders/demo/contact_sheet.png`` and the
frames with their manifest in ``renders/demo/``.

Run it with ``python -m latentlab.demo [--preset NAME] [--out-dir DIR]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from .presets import PRESETS, weights_status


def _shape_picture(shape: str, colour: tuple[int, int, int], size: int = 64) -> np.ndarray:
    """A plain picture of one coloured shape on white (used when the shapes world is absent)."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (size, size), (255, 255, 255))
    d = ImageDraw.Draw(im)
    m = size // 4
    if shape == "circle":
        d.ellipse((m, m, size - m, size - m), fill=colour)
    elif shape == "square":
        d.rectangle((m, m, size - m, size - m), fill=colour)
    else:
        d.polygon([(size // 2, m), (size - m, size - m), (m, size - m)], fill=colour)
    return np.asarray(im)


def make_inputs(folder: Path) -> list[Path]:
    """Write the demo's two input pictures (a red circle, a blue triangle) into ``folder``."""
    from .video import save_image

    folder.mkdir(parents=True, exist_ok=True)
    try:
        from .mini.shapes import Scene, ShapeObject, render_scene

        pics = [
            render_scene(Scene((ShapeObject("circle", "red", "filled", 0.5, 0.5, 0.55),), "white")),
            render_scene(Scene((ShapeObject("triangle", "blue", "filled", 0.5, 0.5, 0.55),), "white")),
        ]
    except Exception:  # the shapes world is part of the mini model; fall back to plain drawings
        pics = [_shape_picture("circle", (220, 30, 30)), _shape_picture("triangle", (30, 40, 220))]
    paths = []
    for name, pic in zip(("red_circle.png", "blue_triangle.png"), pics):
        paths.append(save_image(pic, folder / name))
    return paths


def demo_spec(inputs: list[Path], preset: str) -> dict:
    """The demo's render spec: image -> image -> text diff, 48 frames in all."""
    return {
        "name": "demo",
        "preset": preset,
        # seed 1, not 0: with the decoder shipped since the sixteenth session, seed 0 draws the red
        # circle as a squashed oval and the last square as a wide bar (docs/mini.md says so)
        "seed": 1,
        "fps": 12,
        "size": 256,
        "hold_first": 6,
        "hold_last": 6,
        "keyframes": [
            {"image": str(inputs[0]), "label": "red circle"},
            {"image": str(inputs[1]), "label": "blue triangle", "frames": 24, "easing": "ease-in-out"},
            {"text_diff": {"from": "a blue triangle", "to": "a green square", "theta": 0.35}, "frames": 23},
        ],
    }


def main(argv: list[str] | None = None) -> int:
    from .errors import ArgumentError, LatentlabError, os_error_text, user_path
    from .jobs import render_spec
    from .presets import get_preset

    ap = argparse.ArgumentParser(prog="python -m latentlab.demo", description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--preset", default=None, help="preset to use (default: mini if trained, else tiny)")
    ap.add_argument("--out-dir", default="renders/demo", help="render folder (default renders/demo)")
    ap.add_argument("--overwrite", action="store_true", help="replace an earlier demo render with other settings")
    args = ap.parse_args(argv)
    if not args.out_dir.strip():  # (an unset shell variable: it rendered into the current folder)
        ap.error(f"--out-dir is empty ({args.out_dir!r}; an unset shell variable?). Give a folder, e.g. "
                 "--out-dir renders/demo, or leave the flag out.")  # fmt: skip

    preset = args.preset
    if preset is None:
        if "mini" in PRESETS and weights_status("mini") == "built in":
            preset = "mini"
        else:
            preset = "tiny"
            print(
                "NOTE: the embedded 'mini' model's weights are not in this checkout, so the demo runs on the\n"
                "      'tiny' preset of RANDOM weights: the video shows structured noise, not pictures.\n"
                "      It still exercises the whole pipeline (encode -> trajectory -> decode -> video).",
                file=sys.stderr,
            )
    try:
        get_preset(preset)  # before anything is written: an unknown name left the input pictures behind
    except LatentlabError as exc:
        print(f"latentlab demo: error: {exc}", file=sys.stderr)
        return 2
    out_dir = user_path(args.out_dir)  # where render_spec puts it: "--out-dir=~/x" (bash leaves the ~) is the home's
    from .jobs import _record_video, _refuse_unrecorded_video, video_path

    try:  # the gif beside the render, as render_spec checks its video: a file of the user's there was replaced
        gif_path = video_path(out_dir, "gif")
        if gif_path.is_dir():  # (_refuse_unrecorded_video leaves a folder to its caller: refused after the whole render)
            raise ArgumentError(f"{str(gif_path)!r}, where the demo writes its gif, is a folder. Choose another --out-dir, "
                                "or move that folder.")  # fmt: skip
        _refuse_unrecorded_video(gif_path, out_dir, args.overwrite)
    except LatentlabError as exc:
        print(f"latentlab demo: error: {exc}", file=sys.stderr)
        return 2
    named = Path(os.path.abspath(out_dir))  # (--out-dir . has no name of its own: its inputs went to "./-inputs")
    try:
        inputs = make_inputs(named.parent / f"{named.name}-inputs")
    except OSError as exc:
        print(f"latentlab demo: error: cannot write the demo's input pictures beside --out-dir {args.out_dir}: "
              f"{exc.strerror or exc}. Choose a writable --out-dir.", file=sys.stderr)  # fmt: skip
        return 2
    # frames already there are kept (a resume), unless --overwrite: the timing line says so
    kept = 0 if args.overwrite else len(list(out_dir.glob("frame_*.png")))
    t0 = time.perf_counter()
    from .video import write_video

    spec = demo_spec(inputs, preset)
    try:
        result = render_spec(spec, out_dir=out_dir, overwrite=args.overwrite)
        dt = time.perf_counter() - t0
        # the gif too: a full disk or Ctrl-C while writing it printed a traceback
        _record_video(gif_path, out_dir, pending=True)  # (a write cut short stays the demo's own)
        gif = write_video(result.frames, gif_path, fps=spec["fps"], hold_first=spec["hold_first"],
                          hold_last=spec["hold_last"], size=128)  # fmt: skip
        _record_video(Path(gif), out_dir)
    except LatentlabError as exc:
        print(f"latentlab demo: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # (a traceback, as from a fault; the latentlab command says what it kept)
        print(f"\ninterrupted: finished frames are kept in {out_dir}/; run the demo again to resume.", file=sys.stderr)
        return 130
    except OSError as exc:  # the system refused (a full disk): one line, as the latentlab command says it
        print("latentlab demo: error: " + os_error_text(exc, "run the demo again (finished frames are kept)"),
              file=sys.stderr)  # fmt: skip
        return 2
    print(f"preset:        {preset}")
    if preset == "mini":
        print("               (the embedded model is small: it draws coloured shapes, rough emoji and clip art at 32 px, upscaled to 64; see docs/mini.md)")
    T = len(result.frames)
    kept = min(kept, T)
    done = f"{T} frames rendered" if not kept else f"{T} frames, {kept} kept from an earlier run, {T - kept} rendered"
    print(f"video:         {result.video}  ({done} in {dt:.1f} s)")
    print(f"gif:           {gif}")
    print(f"contact sheet: {result.contact_sheet}")
    print(f"frames:        {result.out_dir}/  (manifest.json describes the render; rerun to resume)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
