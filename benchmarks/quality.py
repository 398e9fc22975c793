"""Morph quality on the embedded ``mini`` model: pacing, flicker and faithfulness, side by side.

A fixed set of 10 morphs, 7 between shapes-world scenes (``latentlab.mini.shapes``) and 3
between emoji (mobile phone -> telephone in three drawing styles, ``examples/emoji/``), is
rendered on the CPU in each mode, and the table compares:

- **pacing**: uniform path parameters against :func:`latentlab.even_pacing`: the coefficient
  of variation (CV) of consecutive-frame distances and the largest step over the median
  step (goals: CV <= 0.15, max jump <= 2x median). Distances in ``--metric`` (``clip``: the
  angle between the frames' CLIP image embeddings; ``pixel``: RMS pixel difference);
  pacing equalises the same metric it is judged by.
- **flicker**: a constant embedding rendered with shared, per-frame and slerp noise: the
  mean consecutive-frame distance (CLIP angle and pixel RMS).
- **faithfulness**: frame 0 of a morph against its input image, PSNR (dB) and CLIP cosine,
  with shared noise, with the input's DDIM-inverted noise alone (``refine=0``) and with that
  noise refined by gradient steps (``--invert-refine``, default: the decoder's, 20 for mini)
  (goal: cosine >= 0.95). The inverted morph uses the refined noise. A second table gives
  both end frames the same three ways: frame 0 against input A (start) and the last frame
  against input B (end), and how many morphs meet the goal at each end and at both.
- **iterative text diffs**: "a red circle" -> "a blue circle" on a red circle and "a mobile
  phone" -> "a telephone" on the phone emoji, applied with re-encoding
  (:func:`latentlab.iterative_text_diff`) in fixed steps of 0.15 and with the adaptive step,
  and in one shot at the fixed run's angles: the cosine of each decoded frame to the
  destination caption.
- **chain**: a three-keyframe chain whose segments change by very different amounts, paced
  through ``render_spec`` per segment and over the whole path (``pacing_scope``).
- **variations** (:func:`latentlab.variations`) of three pictures: from the DDIM-inverted
  noise with ``eta`` 0.1-1.0, and with re-rolled noise: PSNR against the inverted redraw and
  against the input, CLIP cosine against the input.

Contact sheets of every mode go to ``--out`` (default ``.cache/quality/``, git-ignored). A run
first removes what an earlier run wrote there (``results.json``, ``morphNN/``, ``editNN.png``,
``variations.png``, ``path_variations.png``, ``chain_keyN.png``, ``chain_N/``, ``chain_N.gif``),
so the folder holds one run's outputs; other files in it are left alone::

    python benchmarks/quality.py                          # 10 morphs (minutes on a CPU)
    python benchmarks/quality.py --metric pixel           # pace and judge by pixels
    python benchmarks/quality.py --quick                  # 2 small morphs (tested in CI)
    python benchmarks/quality.py --coarse 12 --passes 3 --tol 0.1 --max-samples 39 --min-width 0.001
                                                          # pacing that bisects down into sudden changes
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import latentlab as ll  # noqa: E402
from latentlab.errors import ArgumentError, output_file, positive_int, thread_count  # noqa: E402
from latentlab.mini.shapes import caption, render_scene, sample_scene  # noqa: E402
from latentlab.pacing import frame_distances, pacing_stats  # noqa: E402
from latentlab.presets import get_preset  # noqa: E402
from latentlab.render import render  # noqa: E402
from latentlab.spec import MAX_FRAMES, MAX_STEPS  # noqa: E402
from latentlab.trajectory import Segment, Trajectory  # noqa: E402

GOALS = {"cv": 0.15, "max_jump_over_median": 2.0, "inverted_cos": 0.95}

#: shapes-world morphs, (seed of scene A, seed of scene B, objects per scene): one- and
#: two-object scenes; then emoji morphs, ("emoji", picture A, picture B) in examples/emoji/
#: (the same emoji in three drawing styles: mobile phone -> telephone)
MORPHS: list[tuple] = [(100 + 2 * k, 101 + 2 * k, 1 if k < 5 else 2) for k in range(7)] + [
    ("emoji", f"mobile_phone_{style}", f"telephone_{style}") for style in ("twemoji", "noto", "fluent3d")
]
EMOJI_DIR = Path(__file__).resolve().parents[1] / "examples" / "emoji"


#: names of what a run writes into --out, removed at the start of the next run
OWN_FILES = re.compile(r"results\.json|edit\d+\.png|(path_)?variations\.png|chain_key\d+\.png|chain_\d+\.gif")
OWN_DIRS = re.compile(r"morph\d+|chain_\d+")


def remove_previous_outputs(out: Path) -> list[str]:
    """Delete what an earlier run wrote into ``out`` (by name: :data:`OWN_FILES`, :data:`OWN_DIRS`),
    so its contact sheets do not lie beside the new results; returns the names removed."""
    removed = []
    for p in sorted(out.iterdir()):
        if p.is_dir() and not p.is_symlink() and OWN_DIRS.fullmatch(p.name):
            shutil.rmtree(p)
        elif (p.is_file() or p.is_symlink()) and OWN_FILES.fullmatch(p.name):
            p.unlink()
        else:
            continue
        removed.append(p.name)
    return removed


def morph_inputs(spec: tuple) -> tuple[np.ndarray, str, str]:
    """The two input pictures (2, 64, 64, 3) of a morph and their captions."""
    if spec[0] == "emoji":
        _, a, b = spec
        img = np.stack([ll.load_image(EMOJI_DIR / f"{name}.png") for name in (a, b)])
        return img, a.replace("_", " "), b.replace("_", " ")
    sa, sb, n_obj = spec
    scene_a, scene_b = sample_scene(sa, n_objects=n_obj), sample_scene(sb, n_objects=n_obj)
    return np.stack([render_scene(scene_a), render_scene(scene_b)]), caption(scene_a), caption(scene_b)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images."""
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * math.log10(255.0**2 / max(mse, 1e-10))


def sheet_rows(rows: list[tuple[str, np.ndarray]], path: Path) -> None:
    """One labelled row of frames per mode, stacked, as a PNG."""
    from latentlab.video import contact_sheet, save_image

    n = max(f.shape[0] for _, f in rows)
    sheets = [contact_sheet(f, columns=n, labels=[name] + [""] * (f.shape[0] - 1)) for name, f in rows]
    width = max(s.shape[1] for s in sheets)
    padded = [np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in sheets]
    save_image(np.concatenate(padded), path)


def one_morph(k: int, spec: tuple, enc: Any, dec: Any, args: argparse.Namespace, out: Path) -> dict:
    img, cap_a, cap_b = morph_inputs(spec)
    za, zb = enc.encode_image(img).split(1)
    kw = dict(seed=args.seed, steps=args.steps, progress=False)
    path = Trajectory.interpolate(za, zb, frames=args.frames)
    t0 = time.perf_counter()

    # pacing: uniform against even
    uniform = render(path, dec, **kw)
    paced = ll.even_pacing(path, enc, dec, metric=args.metric, seed=args.seed, steps=args.steps, coarse=args.coarse,
                           passes=args.passes, tol=args.tol, max_samples=args.max_samples,
                           min_width=args.min_width, relax=args.relax)  # fmt: skip
    even = render(paced.trajectory, dec, **kw)
    judge = dict(metric=args.metric, encoder=enc)
    su, se = pacing_stats(uniform, **judge), pacing_stats(even, **judge)
    other = "pixel" if args.metric == "clip" else "clip"  # the same frames judged by the other distance
    cross = {m: pacing_stats(f, metric=other, encoder=enc) for m, f in (("uniform", uniform), ("even", even))}

    # flicker: one embedding, three noise modes
    still = Trajectory(torch.cat([za, za]), [Segment(args.flicker_frames - 1)])
    flicker: dict[str, dict[str, float]] = {}
    still_frames = {}
    for mode in ("shared", "per-frame", "slerp"):
        f = render(still, dec, noise=mode, **kw)
        still_frames[mode] = f
        flicker[mode] = {
            "clip": float(frame_distances(f, metric="clip", encoder=enc).mean()),
            "pixel": float(frame_distances(f, metric="pixel").mean()),
        }

    # faithfulness: frame 0 against the input, shared noise vs inverted noise (DDIM alone, then refined)
    plain = dec.invert(img, torch.cat([za, zb]), steps=args.steps, refine=0)
    ddim = dec.decode(torch.cat([za, zb]), plain, steps=args.steps)
    t1 = time.perf_counter()
    noise = dec.invert(img, torch.cat([za, zb]), steps=args.steps, refine=args.invert_refine)
    invert_s = time.perf_counter() - t1
    redrawn = dec.decode(torch.cat([za, zb]), noise, steps=args.steps)
    inverted = render(path, dec, noise="inverted", keyframe_noise=noise, **kw)

    def cos(frame: np.ndarray, z: torch.Tensor) -> float:
        return float((enc.encode_image(frame) * z).sum())

    faith = {
        # frame 0 (the start) against input A: the keys the figures have always used
        "shared_psnr": psnr(uniform[0], img[0]),
        "shared_cos": cos(uniform[0], za),
        "ddim_psnr": psnr(ddim[0], img[0]),
        "ddim_cos": cos(ddim[0], za),
        "inverted_psnr": psnr(redrawn[0], img[0]),
        "inverted_cos": cos(redrawn[0], za),
        # the last frame (the end) against input B, the same three ways: a morph ends on
        # keyframe B's noise, so the end is the redraw of input B from that noise
        "shared_end_psnr": psnr(uniform[-1], img[1]),
        "shared_end_cos": cos(uniform[-1], zb),
        "ddim_end_psnr": psnr(ddim[1], img[1]),
        "ddim_end_cos": cos(ddim[1], zb),
        "inverted_end_psnr": psnr(redrawn[1], img[1]),
        "inverted_end_cos": cos(redrawn[1], zb),
        # both ends of the rendered inverted morph itself (the same noise and embeddings,
        # decoded in the render's batches), for the record
        "inverted_morph_start_psnr": psnr(inverted[0], img[0]),
        "inverted_morph_start_cos": cos(inverted[0], za),
        "inverted_morph_end_psnr": psnr(inverted[-1], img[1]),
        "inverted_morph_end_cos": cos(inverted[-1], zb),
    }
    seconds = time.perf_counter() - t0

    name = f"morph{k:02d}"
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    sheet_rows(
        [("input A|B", img), ("uniform", uniform), (f"even ({args.metric})", even), ("inverted", inverted)],
        d / "modes.png",
    )
    sheet_rows([(m, f) for m, f in still_frames.items()], d / "flicker.png")
    return {
        "name": name,
        "a": cap_a,
        "b": cap_b,
        "frames": int(uniform.shape[0]),
        "even_frames": int(even.shape[0]),
        "uniform": su,
        "even": se,
        "other_metric": {"metric": other, **cross},
        "pacing_decodes": paced.decodes,
        "pacing_ts": paced.trajectory.segments[0].ts,
        "flicker": flicker,
        "faithfulness": faith,
        "invert_seconds": invert_s,  # two images, with refinement
        "seconds": seconds,
    }


#: iterative vs one-shot text diffs: (picture, source caption, destination caption)
EDITS = [
    ("shape:red:circle", "a red circle", "a blue circle"),
    ("emoji:mobile_phone_twemoji", "a mobile phone", "a telephone"),
]


def edit_picture(name: str) -> np.ndarray:
    kind, *rest = name.split(":")
    if kind == "emoji":
        return ll.load_image(EMOJI_DIR / f"{rest[0]}.png")
    from latentlab.mini.shapes import Scene, ShapeObject

    colour, shape = rest
    return render_scene(Scene((ShapeObject(shape, colour, "filled", 0.5, 0.5, 0.55),), "white"))


def iterative_edits(enc: Any, dec: Any, args: argparse.Namespace, out: Path) -> list[dict]:
    """Each edit of :data:`EDITS` three ways, with the cosine of each decoded frame to the
    destination caption: iterative with fixed steps (``theta_step`` 0.15, ``adaptive=False``,
    ``--edit-steps`` steps), iterative with the adaptive step (the default; up to twice as many
    tries, since a stalled try is not kept), and one-shot text diffs at the fixed run's angles
    (0, 0.15, 0.30, ...); then the adaptive and the one-shot runs again from the picture's
    inverted noise (``noise="inverted"``, refined by ``--invert-refine``), as the DALL-E 2
    paper makes its text diffs."""
    rows = []
    n = args.edit_steps
    for k, (pic, src_text, dst_text) in enumerate(EDITS):
        img = edit_picture(pic)
        z = enc.encode_image(img)
        kw = dict(theta_step=0.15, seed=args.seed, steps=args.steps)
        fixed = ll.iterative_text_diff(enc, dec, z, src_text, dst_text, max_steps=n, adaptive=False, **kw)
        adapt = ll.iterative_text_diff(enc, dec, z, src_text, dst_text, max_steps=2 * n, **kw)
        src, dst = enc.encode_text([src_text, dst_text]).split(1)
        thetas = [0.15 * i for i in range(n + 1)]
        shots = render(ll.text_diff(z, src, dst, torch.tensor(thetas)), dec, seed=args.seed, steps=args.steps,
                       progress=False)  # fmt: skip
        one_shot = (enc.encode_image(shots) * dst).sum(-1).tolist()
        adapt_inv = ll.iterative_text_diff(enc, dec, img, src_text, dst_text, max_steps=2 * n, noise="inverted",
                                           refine=args.invert_refine, **kw)  # fmt: skip
        kn = dec.invert(img, z, steps=args.steps, refine=args.invert_refine)
        shots_inv = dec.decode(ll.text_diff(z, src, dst, torch.tensor(thetas)), kn.expand(len(thetas), *kn.shape[1:]),
                               steps=args.steps)  # fmt: skip
        one_shot_inv = (enc.encode_image(shots_inv) * dst).sum(-1).tolist()
        sheet_rows([("input", img[None]), ("iterative, fixed", fixed.frames), ("iterative, adaptive", adapt.frames),
                    ("one-shot", shots), ("iterative, adaptive, inverted", adapt_inv.frames),
                    ("one-shot, inverted", shots_inv)], out / f"edit{k:02d}.png")  # fmt: skip
        rows.append({"picture": pic, "from": src_text, "to": dst_text, "thetas": thetas,
                     "iterative": [float(v) for v in fixed.similarity],
                     "adaptive": [float(v) for v in adapt.similarity],
                     "adaptive_thetas": [float(t) for t in adapt.thetas],
                     "adaptive_decodes": 1 + len(adapt.tries),
                     "one_shot": [float(v) for v in one_shot],
                     "adaptive_inverted": [float(v) for v in adapt_inv.similarity],
                     "adaptive_inverted_thetas": [float(t) for t in adapt_inv.thetas],
                     "adaptive_inverted_decodes": 1 + len(adapt_inv.tries),
                     "one_shot_inverted": [float(v) for v in one_shot_inv]})  # fmt: skip
    return rows


def edits_table(rows: list[dict]) -> str:
    lines = ["| picture | edit | step | iterative, fixed 0.15: cos | iterative, adaptive: angle of the step, cos | "
             "one-shot at 0.15 x step: cos | inverted noise: iterative, adaptive: angle, cos | inverted noise: one-shot: cos |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        n = max(len(r["thetas"]), len(r["adaptive"]), len(r["adaptive_inverted"]))

        def cell(key: str, i: int, angles: str | None = None) -> str:
            if i >= len(r[key]):
                return ""
            return f"{r[angles][i]:.2f}, {r[key][i]:.3f}" if angles else f"{r[key][i]:.3f}"

        for i in range(n):
            lines.append(f"| {r['picture'] if i == 0 else ''} | {r['from'] + ' -> ' + r['to'] if i == 0 else ''} | {i} | "
                         f"{cell('iterative', i)} | {cell('adaptive', i, 'adaptive_thetas')} | {cell('one_shot', i)} | "
                         f"{cell('adaptive_inverted', i, 'adaptive_inverted_thetas')} | {cell('one_shot_inverted', i)} |")  # fmt: skip
        lines.append(f"| | | decodes | {len(r['iterative'])} | {r['adaptive_decodes']} | {len(r['one_shot'])} | "
                     f"{r['adaptive_inverted_decodes']} (+ inversion) | {len(r['one_shot_inverted'])} (+ inversion) |")
    return "\n".join(lines)


#: variations: the first picture of these morphs (a one-object scene, a two-object scene, an emoji)
VARIATION_MORPHS = (0, 5, 7)
ETAS = (0.1, 0.3, 0.6, 1.0)


def variation_stats(enc: Any, dec: Any, args: argparse.Namespace, out: Path) -> list[dict]:
    """:func:`latentlab.variations` of input pictures, ``--variations`` of each: from the
    inverted noise with DDIM ``eta`` in :data:`ETAS`, and with re-rolled noise. Per mode, the
    range over pictures and variations of: PSNR against the inverted redraw (eta 0), PSNR
    against the input, CLIP cosine against the input."""
    rows = []
    pics = [morph_inputs(MORPHS[k])[0][0] for k in VARIATION_MORPHS[: 1 if args.quick else None]]
    kw = dict(n=args.variations, seed=args.seed, steps=args.steps)
    per_mode: dict[str, list[tuple[float, float, float]]] = {}
    sheet = []
    for j, img in enumerate(pics):
        z = enc.encode_image(img)
        redraw = dec.decode(z, dec.invert(img, z, steps=args.steps, refine=args.invert_refine), steps=args.steps)[0]
        for mode in [f"eta {e}" for e in ETAS] + ["re-rolled noise"]:
            if mode.startswith("eta"):
                v = ll.variations(dec, z, image=img, eta=float(mode.split()[1]), refine=args.invert_refine, **kw)
            else:
                v = ll.variations(dec, z, mode="reroll", **kw)
            sims = (enc.encode_image(v) * z).sum(-1).tolist()
            per_mode.setdefault(mode, []).extend(
                (psnr(f, redraw), psnr(f, img), float(c)) for f, c in zip(v, sims)
            )
            sheet.append((f"{j}: {mode}", np.concatenate([img[None], v])))
    sheet_rows(sheet, out / "variations.png")
    for mode, vals in per_mode.items():
        a = np.array(vals)
        rows.append({"mode": mode, "n": len(vals), "psnr_redraw": [a[:, 0].min(), a[:, 0].max()],
                     "psnr_input": [a[:, 1].min(), a[:, 1].max()], "cos_input": [a[:, 2].min(), a[:, 2].max()],
                     "cos_input_mean": a[:, 2].mean()})  # fmt: skip
    return rows


def variations_table(rows: list[dict]) -> str:
    lines = ["| variations | PSNR vs the inverted redraw (dB) | PSNR vs the input (dB) | CLIP cosine vs the input, range (mean) |",
             "|---|---|---|---|"]  # fmt: skip
    for r in rows:
        red = "" if r["mode"].startswith("re-rolled") else f"{r['psnr_redraw'][0]:.0f}-{r['psnr_redraw'][1]:.0f}"
        lines.append(f"| {r['mode']} | {red} | {r['psnr_input'][0]:.0f}-{r['psnr_input'][1]:.0f} | "
                     f"{r['cos_input'][0]:.2f}-{r['cos_input'][1]:.2f} ({r['cos_input_mean']:.2f}) |")  # fmt: skip
    return "\n".join(lines)


#: DDIM eta of the whole-path variations (``noise = "inverted"``, one seed per variation)
PATH_ETAS = (0.1, 0.3)


def path_variation_stats(enc: Any, dec: Any, args: argparse.Namespace, out: Path) -> list[dict]:
    """Variations of a whole morph (the morphs of :data:`VARIATION_MORPHS`): rendered from the
    inverted noise with DDIM ``eta`` in :data:`PATH_ETAS` (``render(..., eta=)``, seeds
    ``seed + 1 ...``), and with re-rolled shared noise (seeds ``seed + 1 ...``). Per mode: PSNR
    of each frame against the same frame of the mode's base render (eta 0 / seed ``seed``),
    the end frames' CLIP cosine to the two inputs, and the CV of consecutive-frame CLIP angles
    (how evenly the video moves: a variation that flickered would raise it)."""
    per_mode: dict[str, list[tuple[float, float, float]]] = {}
    sheet = []
    for j, k in enumerate(VARIATION_MORPHS[: 1 if args.quick else None]):
        img, _, _ = morph_inputs(MORPHS[k])
        z = enc.encode_image(img)
        path = Trajectory.interpolate(z[:1], z[1:], frames=args.frames)
        kn = dec.invert(img, z, steps=args.steps, refine=args.invert_refine)
        inv = dict(noise="inverted", keyframe_noise=kn, steps=args.steps, progress=False)
        bases = {"inverted": render(path, dec, seed=args.seed, **inv),
                 "shared": render(path, dec, seed=args.seed, steps=args.steps, progress=False)}  # fmt: skip
        sheet += [(f"{j}: eta 0", bases["inverted"]), (f"{j}: shared, seed {args.seed}", bases["shared"])]
        for mode in [f"eta {e}" for e in PATH_ETAS] + ["re-rolled shared noise"]:
            for v in range(args.variations):
                seed = args.seed + 1 + v
                if mode.startswith("eta"):
                    frames, base = render(path, dec, seed=seed, eta=float(mode.split()[1]), **inv), bases["inverted"]
                else:
                    frames, base = render(path, dec, seed=seed, steps=args.steps, progress=False), bases["shared"]
                e = enc.encode_image(frames)
                ends = (e[[0, -1]] * z).sum(-1).mean().item()
                per_mode.setdefault(mode, []).append(
                    (float(np.mean([psnr(a, b) for a, b in zip(frames, base)])), ends,
                     pacing_stats(frames, encoder=enc)["cv"])
                )  # fmt: skip
                if v == 0:
                    sheet.append((f"{j}: {mode}, seed {seed}", frames))
        for name, base in bases.items():
            per_mode.setdefault(f"base ({name})", []).append(
                (math.inf, (enc.encode_image(base[[0, -1]]) * z).sum(-1).mean().item(), pacing_stats(base, encoder=enc)["cv"]))
    sheet_rows(sheet, out / "path_variations.png")
    rows = []
    for mode, vals in per_mode.items():
        a = np.array(vals)
        rows.append({"mode": mode, "n": len(vals), "psnr_base": float(a[:, 0].mean()), "end_cos": float(a[:, 1].mean()),
                     "cv": float(a[:, 2].mean())})  # fmt: skip
    return rows


def path_variations_table(rows: list[dict]) -> str:
    lines = ["| whole-path variations | PSNR vs the base render, frame by frame (dB) | end frames' CLIP cosine to the inputs | CV of consecutive CLIP angles |",
             "|---|---|---|---|"]  # fmt: skip
    for r in rows:
        ps = "" if math.isinf(r["psnr_base"]) else f"{r['psnr_base']:.1f}"
        lines.append(f"| {r['mode']} | {ps} | {r['end_cos']:.3f} | {r['cv']:.3f} |")
    return "\n".join(lines)


#: a chain whose first segment changes little (a red circle shrinks) and whose second changes
#: a lot (it becomes a blue square): (colour, shape, size) of each keyframe picture
CHAIN = [("red", "circle", 0.55), ("red", "circle", 0.45), ("blue", "square", 0.55)]


def chain_stats(enc: Any, dec: Any, args: argparse.Namespace, out: Path) -> list[dict]:
    """Even pacing of a chain (:data:`CHAIN`) through ``render_spec``, within each segment
    (``pacing_scope = "segment"``) and over the whole path (``"path"``: the frames re-split by
    measured change), with the benchmark's pacing settings; uniform t for scale."""
    from latentlab.mini.shapes import Scene, ShapeObject

    pics = [render_scene(Scene((ShapeObject(sh, c, "filled", 0.5, 0.5, size),), "white")) for c, sh, size in CHAIN]
    paths = [str(ll.save_image(p, out / f"chain_key{i}.png")) for i, p in enumerate(pics)]
    finer = {"pacing_coarse": args.coarse, "pacing_passes": args.passes, "pacing_tol": args.tol,
             "pacing_max_samples": args.max_samples, "pacing_min_width": args.min_width,
             "pacing_relax": args.relax or None}  # fmt: skip
    base = {"keyframes": [{"image": p} for p in paths], "steps": args.steps, "frames": 4 if args.quick else 8,
            "seed": args.seed, "format": "gif"}  # fmt: skip
    rows = []
    for mode, extra in (("uniform t", {}), ("even, per segment", {"pacing": "even", **finer}),
                        ("even, whole path", {"pacing": "even", "pacing_scope": "path", **finer})):  # fmt: skip
        res = ll.render_spec({**base, **{k: v for k, v in extra.items() if v is not None}},
                             out_dir=out / f"chain_{len(rows)}", overwrite=True, progress=False, encoder=enc, decoder=dec)  # fmt: skip
        st = pacing_stats(res.frames, encoder=enc)
        rows.append({"mode": mode, "cv": st["cv"], "max_jump_over_median": st["max_jump_over_median"],
                     "segment_frames": [sg.frames for sg in res.trajectory.segments],
                     "decodes": res.pacing.decodes if res.pacing else 0})  # fmt: skip
    return rows


def chain_table(rows: list[dict]) -> str:
    lines = ["| chain | CV | max/median | frames per segment | pacing decodes |", "|---|---|---|---|---|"]
    lines += [f"| {r['mode']} | {r['cv']:.3f} | {r['max_jump_over_median']:.2f} | {r['segment_frames']} | {r['decodes']} |"
              for r in rows]  # fmt: skip
    return "\n".join(lines)


def summarise(rows: list[dict]) -> dict[str, Any]:
    def col(f):
        return np.array([f(r) for r in rows], dtype=np.float64)

    s: dict[str, Any] = {}
    for key, f in {
        "uniform_cv": lambda r: r["uniform"]["cv"],
        "even_cv": lambda r: r["even"]["cv"],
        "uniform_max_jump": lambda r: r["uniform"]["max_jump_over_median"],
        "even_max_jump": lambda r: r["even"]["max_jump_over_median"],
        "uniform_cv_other_metric": lambda r: r["other_metric"]["uniform"]["cv"],
        "even_cv_other_metric": lambda r: r["other_metric"]["even"]["cv"],
        "flicker_shared_clip": lambda r: r["flicker"]["shared"]["clip"],
        "flicker_per_frame_clip": lambda r: r["flicker"]["per-frame"]["clip"],
        "flicker_slerp_clip": lambda r: r["flicker"]["slerp"]["clip"],
        "shared_psnr": lambda r: r["faithfulness"]["shared_psnr"],
        "inverted_psnr": lambda r: r["faithfulness"]["inverted_psnr"],
        "shared_cos": lambda r: r["faithfulness"]["shared_cos"],
        "inverted_cos": lambda r: r["faithfulness"]["inverted_cos"],
        "ddim_psnr": lambda r: r["faithfulness"]["ddim_psnr"],
        "ddim_cos": lambda r: r["faithfulness"]["ddim_cos"],
        "shared_end_psnr": lambda r: r["faithfulness"]["shared_end_psnr"],
        "inverted_end_psnr": lambda r: r["faithfulness"]["inverted_end_psnr"],
        "shared_end_cos": lambda r: r["faithfulness"]["shared_end_cos"],
        "inverted_end_cos": lambda r: r["faithfulness"]["inverted_end_cos"],
        "ddim_end_psnr": lambda r: r["faithfulness"]["ddim_end_psnr"],
        "ddim_end_cos": lambda r: r["faithfulness"]["ddim_end_cos"],
        "inverted_morph_start_psnr": lambda r: r["faithfulness"]["inverted_morph_start_psnr"],
        "inverted_morph_start_cos": lambda r: r["faithfulness"]["inverted_morph_start_cos"],
        "inverted_morph_end_psnr": lambda r: r["faithfulness"]["inverted_morph_end_psnr"],
        "inverted_morph_end_cos": lambda r: r["faithfulness"]["inverted_morph_end_cos"],
        "invert_seconds": lambda r: r["invert_seconds"],
    }.items():
        v = col(f)
        s[key] = {"mean": float(v.mean()), "median": float(np.median(v))}
    s["even_better_cv"] = int(sum(r["even"]["cv"] < r["uniform"]["cv"] for r in rows))
    s["goal_cv_met"] = {m: int(sum(r[m]["cv"] <= GOALS["cv"] for r in rows)) for m in ("uniform", "even")}
    s["goal_jump_met"] = {
        m: int(sum(r[m]["max_jump_over_median"] <= GOALS["max_jump_over_median"] for r in rows)) for m in ("uniform", "even")
    }
    s["goal_cos_met"] = {
        m: int(sum(r["faithfulness"][f"{m}_cos"] >= GOALS["inverted_cos"] for r in rows)) for m in ("shared", "ddim", "inverted")
    }
    # the last frame against input B, and both ends of one morph at once
    s["goal_cos_met_end"] = {
        m: int(sum(r["faithfulness"][f"{m}_end_cos"] >= GOALS["inverted_cos"] for r in rows)) for m in ("shared", "ddim", "inverted")
    }
    s["goal_cos_met_both_ends"] = {
        m: int(sum(min(r["faithfulness"][f"{m}_cos"], r["faithfulness"][f"{m}_end_cos"]) >= GOALS["inverted_cos"] for r in rows))
        for m in ("shared", "ddim", "inverted")
    }
    return s


def ends_table(rows: list[dict], summary: dict) -> str:
    """Faithfulness of both end frames: frame 0 against input A (start) and the last frame
    against input B (end), with shared noise, DDIM-inverted noise and refined inverted noise."""
    lines = ["| morph | PSNR shared start / end | PSNR DDIM start / end | PSNR refined start / end | "
             "cos shared start / end | cos DDIM start / end | cos refined start / end |",
             "|" + "---|" * 7]  # fmt: skip

    def pair(d: dict, m: str, what: str, fmt: str) -> str:
        return f"{d[f'{m}_{what}']:{fmt}} / {d[f'{m}_end_{what}']:{fmt}}"

    for r in rows:
        fa = r["faithfulness"]
        lines.append(f"| {r['name']} | " + " | ".join([pair(fa, m, "psnr", ".1f") for m in ("shared", "ddim", "inverted")]
                                                   + [pair(fa, m, "cos", ".3f") for m in ("shared", "ddim", "inverted")]) + " |")  # fmt: skip
    m = {k: v["mean"] for k, v in summary.items() if isinstance(v, dict) and "mean" in v}
    lines.append("| **mean** | " + " | ".join([pair(m, k, "psnr", ".1f") for k in ("shared", "ddim", "inverted")]
                                           + [pair(m, k, "cos", ".3f") for k in ("shared", "ddim", "inverted")]) + " |")  # fmt: skip
    n, g = len(rows), GOALS["inverted_cos"]
    met, end, both = summary["goal_cos_met"], summary["goal_cos_met_end"], summary["goal_cos_met_both_ends"]
    lines.append("")
    lines.append(
        f"cosine >= {g}, start / end / both ends of one morph: "
        + "; ".join(f"{label} {met[k]}/{n} / {end[k]}/{n} / {both[k]}/{n}"
                    for k, label in (("shared", "shared"), ("ddim", "DDIM-inverted"), ("inverted", "refined")))  # fmt: skip
        + f". The inverted morph's own first / last frame: PSNR {m['inverted_morph_start_psnr']:.1f} / "
        f"{m['inverted_morph_end_psnr']:.1f} dB, cosine {m['inverted_morph_start_cos']:.3f} / {m['inverted_morph_end_cos']:.3f}."
    )
    return "\n".join(lines)


def table(rows: list[dict], summary: dict, metric: str) -> str:
    head = (
        "| morph | CV uniform | CV even | max/med uniform | max/med even | flicker shared | flicker per-frame "
        "| flicker slerp | PSNR shared | PSNR DDIM | PSNR refined | cos shared | cos DDIM | cos refined |"
    )
    lines = [head, "|" + "---|" * 14]
    for r in rows:
        fl, fa = r["flicker"], r["faithfulness"]
        lines.append(
            f"| {r['name']} | {r['uniform']['cv']:.3f} | {r['even']['cv']:.3f} | "
            f"{r['uniform']['max_jump_over_median']:.2f} | {r['even']['max_jump_over_median']:.2f} | "
            f"{fl['shared']['clip']:.4f} | {fl['per-frame']['clip']:.4f} | {fl['slerp']['clip']:.4f} | "
            f"{fa['shared_psnr']:.1f} | {fa['ddim_psnr']:.1f} | {fa['inverted_psnr']:.1f} | "
            f"{fa['shared_cos']:.3f} | {fa['ddim_cos']:.3f} | {fa['inverted_cos']:.3f} |"
        )
    m = {k: v["mean"] for k, v in summary.items() if isinstance(v, dict) and "mean" in v}
    lines.append(
        f"| **mean** | {m['uniform_cv']:.3f} | {m['even_cv']:.3f} | {m['uniform_max_jump']:.2f} | {m['even_max_jump']:.2f} | "
        f"{m['flicker_shared_clip']:.4f} | {m['flicker_per_frame_clip']:.4f} | {m['flicker_slerp_clip']:.4f} | "
        f"{m['shared_psnr']:.1f} | {m['ddim_psnr']:.1f} | {m['inverted_psnr']:.1f} | "
        f"{m['shared_cos']:.3f} | {m['ddim_cos']:.3f} | {m['inverted_cos']:.3f} |"
    )
    n = len(rows)
    lines.append("")
    lines.append(
        f"pacing metric {metric}; even pacing lowered the CV in {summary['even_better_cv']}/{n} morphs; "
        f"CV <= {GOALS['cv']}: uniform {summary['goal_cv_met']['uniform']}/{n}, even {summary['goal_cv_met']['even']}/{n}; "
        f"max jump <= {GOALS['max_jump_over_median']}x median: uniform {summary['goal_jump_met']['uniform']}/{n}, "
        f"even {summary['goal_jump_met']['even']}/{n}; cosine >= {GOALS['inverted_cos']}: shared "
        f"{summary['goal_cos_met']['shared']}/{n}, DDIM-inverted {summary['goal_cos_met']['ddim']}/{n}, "
        f"refined {summary['goal_cos_met']['inverted']}/{n} ({m['invert_seconds']:.1f} s per two refined inversions). "
        f"Judged by the other distance ({rows[0]['other_metric']['metric'] if rows else '-'}), the same frames' mean CV: "
        f"uniform {m['uniform_cv_other_metric']:.3f}, even {m['even_cv_other_metric']:.3f}. "
        "Flicker: mean CLIP angle (radians) between consecutive frames of a constant embedding."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="2 morphs, 7 frames, 5 steps, 3 refinement steps: a smoke run (about a minute)")  # fmt: skip
    p.add_argument("--morphs", type=int, default=None, help=f"how many of the {len(MORPHS)} morphs (default all; quick 2)")
    p.add_argument("--frames", type=int, default=None, help="frames per morph (default 13; quick 7)")
    p.add_argument("--steps", type=positive_int, default=None, help="DDIM steps (default 10; quick 5)")
    p.add_argument("--flicker-frames", type=int, default=None, help="frames of the flicker test (default 6; quick 3)")
    p.add_argument("--metric", choices=("clip", "pixel"), default="clip", help="what pacing equalises and is judged by")
    p.add_argument("--coarse", type=int, default=None, help="even pacing: coarse sample intervals (default half the frames)")
    p.add_argument("--passes", type=int, default=1, help="even pacing: measurement passes (default 1)")
    p.add_argument("--tol", type=float, default=0.25, help="even pacing: bisect intervals above (1 + tol) x mean")
    p.add_argument("--max-samples", type=int, default=None, help="even pacing: cap on bisection decodes (default frames)")
    p.add_argument("--min-width", type=float, default=None,
                   help="even pacing: narrowest bisection interval, fraction of the path (default 1/4 frame step)")  # fmt: skip
    p.add_argument("--relax", type=int, default=0,
                   help="even pacing: rounds that measure the paced frames and move them (default 0)")
    p.add_argument("--no-chain", dest="chain", action="store_false",
                   help="skip the chain section (even pacing per segment vs over the whole path)")  # fmt: skip
    p.add_argument("--invert-refine", type=int, default=None,
                   help="gradient steps refining the inverted noise (default: the decoder's, 20 for mini; 0 = DDIM alone)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default="mini")
    p.add_argument("--threads", type=thread_count, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--no-upscale", dest="upscale", action="store_false",
                   help="mini: Lanczos-resize the 32 px decodes instead of the learned 2x upscaler "
                        "(what the figures measured before the tenth session used)")  # fmt: skip
    p.add_argument("--out", default=".cache/quality",
                   help="contact sheets and results.json (default .cache/quality); what an earlier run wrote there "
                   "(results.json, morphNN/, editNN.png, variations.png, path_variations.png, chain_*) is removed "
                   "first, other files are kept")  # fmt: skip
    p.add_argument("--json", type=output_file, default=None, help="also write the results to this JSON file")
    p.add_argument("--edit-steps", type=int, default=None, help="iterative text diff steps (default 5; quick 2; 0 skips)")
    p.add_argument("--variations", type=int, default=None,
                   help="variations per picture and mode (default 3; quick 2; 0 skips)")  # fmt: skip
    args = p.parse_args(argv)
    args.edit_steps = (2 if args.quick else 5) if args.edit_steps is None else args.edit_steps
    args.variations = (2 if args.quick else 3) if args.variations is None else args.variations
    q = args.quick
    if q and args.invert_refine is None:
        args.invert_refine = 3  # a smoke run: a few refinement steps, not the decoder's 20
    # `is None`, not `or`: an explicit 0 is refused below, not taken for the default
    if args.morphs is None:
        args.morphs = 2 if q else len(MORPHS)
    if args.frames is None:
        args.frames = 7 if q else 13
    # quick: 5 steps, not 4: at 4 the shipped decoder's inversion of the grey-ground cross redraws
    # the ground a shade lighter (13 dB from the input; 23 dB at 5), docs/quality.md
    if args.steps is None:
        args.steps = 5 if q else 10
    if args.flicker_frames is None:
        args.flicker_frames = 3 if q else 6
    if not 1 <= args.morphs <= len(MORPHS):
        p.error(f"--morphs must be in [1, {len(MORPHS)}], got {args.morphs}")
    # the upper bounds too: a path of more frames, or more steps than the samplers' training
    # timesteps, removed an earlier run's outputs, then failed in the library (a traceback)
    if not (3 <= args.frames <= MAX_FRAMES + 1 and 2 <= args.flicker_frames <= MAX_FRAMES + 1):
        p.error(f"--frames must be >= 3 and --flicker-frames >= 2 (both at most {MAX_FRAMES + 1}), got {args.frames} "
                f"and {args.flicker_frames}")  # fmt: skip
    if args.steps > MAX_STEPS:
        p.error(f"--steps must be at most {MAX_STEPS} (the samplers' training timesteps), got {args.steps}")
    # every value checked before an earlier run's outputs are removed (a bad one had removed them,
    # then failed seconds later as the library argument it becomes)
    for flag, value, ok, need in (
        ("--passes", args.passes, args.passes >= 1, ">= 1"),
        ("--coarse", args.coarse, args.coarse is None or 1 <= args.coarse <= MAX_FRAMES, f"in [1, {MAX_FRAMES}]"),
        ("--tol", args.tol, math.isfinite(args.tol) and args.tol >= 0, "a finite number >= 0"),
        ("--max-samples", args.max_samples, args.max_samples is None or args.max_samples >= 0, ">= 0"),
        ("--min-width", args.min_width, args.min_width is None or 0 < args.min_width < 1, "in (0, 1)"),
        ("--relax", args.relax, args.relax >= 0, ">= 0"),
        ("--invert-refine", args.invert_refine, args.invert_refine is None or args.invert_refine >= 0, ">= 0"),
        ("--edit-steps", args.edit_steps, args.edit_steps is None or args.edit_steps >= 0, ">= 0 (0 skips)"),
        ("--variations", args.variations, args.variations is None or args.variations >= 0, ">= 0 (0 skips)"),
    ):
        if not ok:
            p.error(f"{flag} must be {need}, got {value}")
    # the seeds the run draws are seed + k, k below this (per-frame noise, variations, the chain's
    # frames): a seed past them had removed the earlier outputs, then failed in the first render
    span = max(args.frames, args.flicker_frames, 8) + args.variations + 1
    if not -(2**63) <= args.seed < 2**63 - span:
        p.error(f"--seed must be an integer in [-2**63, 2**63 - {span}) (the run uses seed + k), got {args.seed}")
    try:  # an unknown preset, too, before the earlier outputs are removed
        get_preset(args.preset)
    except ArgumentError as e:
        p.error(f"--preset: {e}")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file in the way (was a raw FileExistsError / NotADirectoryError)
        p.error(f"--out {args.out}: cannot make that folder ({e.strerror})")
    t0 = time.perf_counter()
    enc = ll.create_encoder(args.preset)
    dec = ll.create_decoder(args.preset, **({} if args.upscale else {"upscale": False}))
    load_s = time.perf_counter() - t0
    # only once the models are loaded: a preset whose weights are not downloaded (or refused
    # settings) had removed the earlier run's outputs, then failed
    removed = remove_previous_outputs(out)
    if removed:
        print(f"removed an earlier run's outputs from {out}/: {', '.join(removed)}", file=sys.stderr)
    rows = []
    for k, spec in enumerate(MORPHS[: args.morphs]):
        rows.append(one_morph(k, spec, enc, dec, args, out))
        print(f"{rows[-1]['name']}: {rows[-1]['a']} -> {rows[-1]['b']} ({rows[-1]['seconds']:.0f} s)", file=sys.stderr)
    summary = summarise(rows)
    edits = iterative_edits(enc, dec, args, out) if args.edit_steps > 0 else []
    var = variation_stats(enc, dec, args, out) if args.variations > 0 else []
    path_var = path_variation_stats(enc, dec, args, out) if args.variations > 0 else []
    chains = chain_stats(enc, dec, args, out) if args.chain else []
    total_s = time.perf_counter() - t0
    # quoted as a shell reads it (an argument with a space, e.g. a --json path, was printed bare)
    command = shlex.join(["python", "benchmarks/quality.py", *(argv if argv is not None else sys.argv[1:])])
    result = {
        "command": command.strip(),
        "settings": {k: getattr(args, k) for k in ("quick", "morphs", "frames", "steps", "flicker_frames", "metric", "coarse",
                                                   "passes", "tol", "max_samples", "min_width", "relax", "invert_refine", "seed", "preset",
                                                   "threads", "upscale")},
        "goals": GOALS,
        "hardware": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                     "torch": torch.__version__},  # fmt: skip
        "load_seconds": load_s,
        "total_seconds": total_s,
        "rows": rows,
        "summary": summary,
        "edits": edits,
        "variations": var,
        "path_variations": path_var,
        "chain": chains,
    }
    print(table(rows, summary, args.metric))
    print("\nFaithfulness of both end frames (frame 0 vs input A, the last frame vs input B):\n" + ends_table(rows, summary))
    if edits:
        print("\nIterative (fixed and adaptive step) vs one-shot text diffs:\n" + edits_table(edits))
    if var:
        print(f"\nVariations ({args.variations} per picture and mode):\n" + variations_table(var))
    if path_var:
        print(f"\nVariations of a whole morph ({args.variations} per morph and mode; base: eta 0 from the inverted "
              f"noise, and shared noise of seed {args.seed}):\n" + path_variations_table(path_var))  # fmt: skip
    if chains:
        print("\nA chain, red circle -> smaller red circle -> blue square, paced per segment and over the whole path:\n"
              + chain_table(chains))
    print(f"\n{len(rows)} morphs x {args.frames} frames, {args.steps} DDIM steps, guidance {dec.default_guidance}, "
          f"seed {args.seed}; {total_s:.0f} s in all on {os.cpu_count()} CPUs, {torch.get_num_threads()} torch thread(s). "
          f"Contact sheets: {out}/")  # fmt: skip
    text = json.dumps(result, indent=2, default=float) + "\n"
    (out / "results.json").write_text(text, encoding="utf-8")
    if args.json:
        Path(args.json).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
