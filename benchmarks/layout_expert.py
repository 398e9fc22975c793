"""Does the mini decoder's layout expert earn its place? Side by side in one run, with and without it.

    python benchmarks/layout_expert.py [--weights DIR] [--sets 7000,7100,7200,7300] [--n 48]
                                       [--single-seed 8100] [--emoji 96] [--data DIR] [--steps 25]
                                       [--threads 2] [--json FILE]

``DIR`` must hold ``mini_expert.safetensors`` beside the decoder, the prior and the CLIP
(``latentlab/mini/weights`` by default); a missing file is named before anything loads.
Prompts go through the prior (one sample per prompt) and the decoder with the prompts as
captions, two ways on the same prior samples and noise: **alone**
(``MiniDecoder.from_pretrained(expert=False)``) and **expert** (the default, which hands the
noisiest DDIM steps to the layout expert):

1. *Relation prompts*: for each seed in ``--sets``, the first ``--n`` fresh two-object scenes
   of two colours, captioned "a {colour} {shape} {relation} a {colour} {shape}". The pixel
   checker reads both objects and the relation (``shapes.check_relation``), and
   ``shapes.check_layout`` whether the two lie along the stated axis (of the frames where both
   colours are found).
2. *Single-object prompts*: ``--n`` fresh one-object scenes (``--single-seed``): right by the
   checker (``shapes.check_agreement``), and frames where it finds more than one object.
3. *Emoji and clip-art prompts* (when the data index exists, ``python -m latentlab.mini.data
   fetch`` and ``index``; ``--data``, default ``.cache/mini/data`` of the working directory, or
   of this checkout when the working directory has none): ``--emoji`` pictures of the training split drawn with a fixed seed,
   each prompted by its first caption. The decodes are encoded again by the mini CLIP: their
   mean cosine to their own prompt's text embedding, and how often their own prompt ranks
   first / in the top 5 among the ``--emoji`` prompts (the expert draws the coarse picture
   from the caption alone, and these pictures it learned from their names only).
4. *Cost*: seconds per frame of the relation prompts' decodes (batches of 16), after one
   untimed small decode with each decoder; the two decoders take turns batch by batch, who
   goes first alternating, so neither always pays for a cold start or a busier moment.

docs/mini.md ("Twentieth session") has the figures of the shipped weights.
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

#: the files of the weights folder this benchmark loads
NEEDED = ("mini_clip.safetensors", "mini_decoder.safetensors", "mini_decoder.json", "mini_expert.safetensors",
          "mini_expert.json", "mini_prior.safetensors", "mini_prior.json")  # fmt: skip


def _prompts(seed: int, n: int, two: bool):
    from latentlab.mini import shapes

    scenes = shapes.relation_scenes(seed, n) if two else shapes.sample_scenes(seed, n, n_objects=1)
    return scenes, [shapes.caption(s, 0) for s in scenes]


def _emoji_prompts(n: int, index_path: Path) -> list[str]:
    """The first captions of ``n`` pictures of the data index's training split (seeded), or [] without an index."""
    from latentlab.mini import data

    if n <= 0:
        return []
    try:
        index = data.load_index(index_path, split="train")
    except data.DataFetchError as e:
        print(f"no data index: emoji / clip-art prompts skipped ({e})")
        return []
    picks = np.random.default_rng(0).permutation(len(index))[:n]
    return [index[int(i)]["captions"][0] for i in picks]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--weights", default=None, help="weights folder with mini_expert (default: the shipped one)")
    ap.add_argument("--sets", default="7000,7100,7200,7300", help="seeds of the relation prompt sets")
    ap.add_argument("--n", type=positive_int, default=48, help="prompts per set, and single-object prompts")
    ap.add_argument("--single-seed", type=int, default=8100)
    ap.add_argument("--emoji", type=int, default=96, help="emoji / clip-art prompts (0: none)")
    ap.add_argument("--data", default=None,
                    help="data index folder for the emoji / clip-art prompts (default: .cache/mini/data of the working "
                    "directory, else of this checkout)")  # fmt: skip
    ap.add_argument("--steps", type=positive_int, default=None, help="decoder steps (default: the decoder's, 25)")
    ap.add_argument("--threads", type=thread_count, default=2)
    ap.add_argument("--json", type=output_file, default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    try:
        sets = [int(s) for s in args.sets.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"--sets takes comma-separated integer seeds, got {args.sets!r}") from None
    if not sets:  # checked before the models load: the cost ratio needs relation prompts
        raise SystemExit(f"--sets needs at least one seed, e.g. --sets 7000, got {args.sets!r}")
    # the scenes take seeds >= 0 and the prior and noise seed + 1, seed + 2: a bad --single-seed
    # failed only after every relation set was decoded
    for flag, seed in [("--sets", s) for s in sets] + [("--single-seed", args.single_seed)]:
        if not 0 <= seed < 2**63 - 2:
            ap.error(f"{flag}: a seed must be an integer in [0, 2**63 - 2), got {seed}")
    if args.emoji < 0:  # was taken for 0 (none) without a word
        ap.error(f"--emoji must be >= 0 (0: none), got {args.emoji}")
    if args.steps is not None and args.steps > MAX_STEPS:  # as generate --steps: a traceback after the models loaded
        ap.error(f"--steps must be at most {MAX_STEPS} (the decoder's training timesteps), got {args.steps}")
    if args.data is not None and not index_file(Path(args.data)).is_file():  # asked for: not silently left out
        ap.error(f"--data {args.data}: no {index_file(Path(args.data))} (python -m latentlab.mini.data fetch, then index)")
    from latentlab.mini import shapes
    from latentlab.mini.models import SPACE, create_clip, weights_path

    # every file it loads, checked before any loads (a missing CLIP was open_clip's cryptic error)
    missing = [name for name in NEEDED if not weights_path(name, args.weights).is_file()]
    if missing:
        raise ModelNotAvailableError(f"{weights_path('', args.weights)} lacks {', '.join(missing)}: the layout expert "
                                     f"benchmark needs {', '.join(NEEDED)} (docs/mini.md).")  # fmt: skip
    # the prompts first (reading the index is quick): a bad index stops the run before the models load
    emoji = _emoji_prompts(args.emoji, index_file(Path(args.data) if args.data is not None else default_cache_dir()))
    torch.set_num_threads(args.threads)
    from latentlab.mini.runtime import MiniDecoder, MiniPrior
    from latentlab.space import tag

    model, preprocess, tok = create_clip(weights_path("mini_clip.safetensors", args.weights))
    decs = {"alone": MiniDecoder.from_pretrained(args.weights, expert=False),
            "expert": MiniDecoder.from_pretrained(args.weights, expert=True)}  # fmt: skip
    prior = MiniPrior.from_pretrained(args.weights, steps=25)
    steps = decs["alone"].default_steps if args.steps is None else args.steps

    def draw(prompts: list[str], seed: int, order: tuple[str, ...] = ("alone", "expert")) -> dict[str, tuple[np.ndarray, float]]:
        """Both decoders' frames of ``prompts`` and their seconds, the decoders run in ``order``."""
        with torch.no_grad():
            emb = torch.nn.functional.normalize(model.encode_text(tok(prompts)).float(), dim=-1)
        z = prior(tag(emb, SPACE), seed=seed + 1, num_samples=1).float()
        noise = torch.randn(len(prompts), *decs["alone"].noise_shape(), generator=torch.Generator().manual_seed(seed + 2))
        parts: dict[str, list[np.ndarray]] = {name: [] for name in order}
        seconds = dict.fromkeys(order, 0.0)
        # the two decoders take turns batch by batch (who goes first alternating too), so a
        # change in the machine's load lands on both alike rather than on one
        for i, a in enumerate(range(0, len(prompts), 16)):
            for name in order if i % 2 == 0 else order[::-1]:
                t0 = time.perf_counter()
                parts[name].append(decs[name].decode(tag(z[a : a + 16], SPACE), noise[a : a + 16], steps=steps,
                                                     captions=prompts[a : a + 16]))  # fmt: skip
                seconds[name] += time.perf_counter() - t0
        return {name: (np.concatenate(parts[name]), seconds[name]) for name in order}

    res: dict = {"settings": {"sets": sets, "n": args.n, "single_seed": args.single_seed, "steps": steps,
                              "threads": args.threads, "t_min": decs["expert"].expert_config.t_min}}  # fmt: skip
    rows = {k: {"relation_both": 0, "axis": 0, "found": 0, "seconds": 0.0, "frames": 0} for k in decs}
    # untimed warm-up: the first decode of each decoder pays a one-off cost (about 1.3 s) that
    # would otherwise land in the cost of whichever decoder is timed first
    draw(_prompts(sets[0], 2, two=True)[1], sets[0])
    for i, seed in enumerate(sets):
        scenes, prompts = _prompts(seed, args.n, two=True)
        order = ("alone", "expert") if i % 2 == 0 else ("expert", "alone")  # neither always first
        for name, (frames, sec) in draw(prompts, seed, order).items():
            lay = [shapes.check_layout(f, s) for f, s in zip(frames, scenes)]
            r = rows[name]
            r["relation_both"] += sum(shapes.check_relation(f, s)["both"] for f, s in zip(frames, scenes))
            r["axis"] += sum(x["axis"] for x in lay)
            r["found"] += sum(x["found"] for x in lay)
            r["seconds"] += sec
            r["frames"] += len(frames)
    scenes, prompts = _prompts(args.single_seed, args.n, two=False)
    for name, (frames, _) in draw(prompts, args.single_seed).items():
        rows[name]["single_right"] = sum(shapes.check_agreement(f, s)["both"] for f, s in zip(frames, scenes))
        rows[name]["single_more_than_one"] = sum(len(shapes.check_image(f, max_objects=3)) > 1 for f in frames)
    if emoji:
        from latentlab.mini.train import _prepare

        with torch.no_grad():
            txt = torch.nn.functional.normalize(model.encode_text(tok(emoji)).float(), dim=-1)
        for name, (frames, _) in draw(emoji, 8200).items():
            x, _ = _prepare(list(frames), preprocess)
            with torch.no_grad():
                img = torch.nn.functional.normalize(model.encode_image(x).float(), dim=-1)
            sim = img @ txt.T  # (frames, prompts)
            rank = (sim > sim.diag()[:, None]).sum(1)  # prompts scoring above a frame's own
            rows[name].update(emoji_prompts=len(emoji), emoji_cosine=float(sim.diag().mean()),
                              emoji_top1=float((rank < 1).float().mean()), emoji_top5=float((rank < 5).float().mean()))  # fmt: skip
    for name, r in rows.items():
        r["relation_prompts"] = r.pop("frames")
        r["seconds_per_frame"] = r.pop("seconds") / max(1, r["relation_prompts"])
        r["single_prompts"] = args.n
    res.update(rows)
    res["cost_ratio_expert_over_alone"] = rows["expert"]["seconds_per_frame"] / rows["alone"]["seconds_per_frame"]
    for name, r in rows.items():
        print(f"{name:>6}: relation {r['relation_both']}/{r['relation_prompts']}, axis {r['axis']}/{r['found']}, "
              f"single right {r['single_right']}/{args.n} (more than one object {r['single_more_than_one']}), "
              f"{r['seconds_per_frame']:.3f} s per frame")  # fmt: skip
        if "emoji_prompts" in r:
            print(f"        {r['emoji_prompts']} emoji / clip-art prompts: cosine to their prompt {r['emoji_cosine']:.3f}, "
                  f"own prompt first {r['emoji_top1']:.3f}, in the top 5 {r['emoji_top5']:.3f}")  # fmt: skip
    print(f"cost ratio expert / alone: {res['cost_ratio_expert_over_alone']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    main()
