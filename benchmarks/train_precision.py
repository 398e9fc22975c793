"""How much ``precision=bf16`` speeds up (or slows down) a mini training step on this CPU.

    python benchmarks/train_precision.py [--batch 128] [--repeats 3] [--steps 3] [--threads 1] [--json FILE]

One CLIP training step as ``python -m latentlab.mini.train --stage clip`` takes it (the shipped
CLIP's towers forward under ``torch.autocast(bfloat16)`` or not, the contrastive loss in
float32, backward, an AdamW step), on random pictures and captions of the batch size the
``cpu`` configs use (128). The data generation the real stage does first is left out: it costs
the same in either precision. Each repeat times ``--steps`` steps in float32 and then in bf16
(the order alternating from one repeat to the next, so a change in the machine's load falls on
both); the script prints the best time per step of each and their ratio, and whether this CPU
has native bfloat16 (AVX512-BF16 or AMX, as oneDNN reads it): without it autocast emulates
bfloat16, and ``train`` warns of each bf16 stage.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from latentlab.errors import output_file, positive_int, thread_count


def _step(model, opt, x, tok, bf16: bool) -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        img, txt, scale = model(x, tok)
    img, txt = torch.nn.functional.normalize(img.float(), dim=-1), torch.nn.functional.normalize(txt.float(), dim=-1)
    logits = scale.float() * img @ txt.T
    target = torch.arange(len(x))
    loss = 0.5 * (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def measure(batch: int = 128, repeats: int = 3, steps: int = 3, threads: int = 1) -> dict:
    """Best seconds per CLIP training step in float32 and in bf16, and their ratio."""
    from latentlab.mini.models import WEIGHTS_DIR, create_clip
    from latentlab.mini.train import _cpu_has_bf16

    torch.set_num_threads(threads)
    model, _, tokenizer = create_clip(WEIGHTS_DIR / "mini_clip.safetensors")
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=g)
    tok = tokenizer([f"a drawing of thing number {i}" for i in range(batch)])
    for bf16 in (False, True):  # warm-up: first-call costs (allocations, kernels) out of the timings
        _step(model, opt, x, tok, bf16)
    best = {"fp32": float("inf"), "bf16": float("inf")}
    for r in range(repeats):
        for name in (("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32")):
            t0 = time.perf_counter()
            for _ in range(steps):
                _step(model, opt, x, tok, name == "bf16")
            best[name] = min(best[name], (time.perf_counter() - t0) / steps)
    return {"batch": batch, "repeats": repeats, "steps": steps, "threads": threads, "cpu_has_bf16": _cpu_has_bf16(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
            "fp32_s_per_step": best["fp32"], "bf16_s_per_step": best["bf16"],
            "bf16_over_fp32": best["bf16"] / best["fp32"], "load_1min": os.getloadavg()[0]}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--batch", type=positive_int, default=128)
    ap.add_argument("--repeats", type=positive_int, default=3)
    ap.add_argument("--steps", type=positive_int, default=3, help="steps per timing")
    ap.add_argument("--threads", type=thread_count, default=1)
    ap.add_argument("--json", type=output_file, default=None, help="also write the figures to this file")
    args = ap.parse_args(argv)
    res = measure(args.batch, args.repeats, args.steps, args.threads)
    print(f"CLIP training step, batch {res['batch']}, {res['threads']} thread(s), {res['cpu_capability']}, native bf16: "
          f"{res['cpu_has_bf16']}; load {res['load_1min']:.1f}")  # fmt: skip
    print(f"  fp32 {res['fp32_s_per_step']:.3f} s/step   bf16 {res['bf16_s_per_step']:.3f} s/step   "
          f"bf16 / fp32 = {res['bf16_over_fp32']:.2f}x")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return res


if __name__ == "__main__":
    main()
