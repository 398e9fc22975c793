"""Export a training run's weights into the package (``latentlab/mini/weights/``).

    python -m latentlab.mini.export --from .cache/mini/run --to DIR [--fp32] [--stages ...] [--drop-expert]

``--to`` has no default: writing into the shipped folder takes ``--to latentlab/mini/weights``
spelled out. Nothing is written before every requested stage's checkpoint is found, each file
goes to a temporary folder first and is moved into place at the end, so a failure leaves the
destination as it was.

Writes ``mini_clip.safetensors`` (loadable by ``open_clip.create_model_and_transforms(
"mini_clip", pretrained=...)`` once ``configs/mini_clip.json`` is registered),
``mini_decoder.safetensors`` + ``.json`` (the EMA weights) and ``mini_prior.safetensors`` +
``.json``, ``mini_upscaler.safetensors`` + ``.json`` when the run trained one (stage
``upscaler``; ``--stages upscaler`` exports it alone), ``mini_expert.safetensors`` + ``.json``
likewise (stage ``expert``, the layout expert), plus ``manifest.json`` (sizes, dtypes, training steps). Each file is stored in
float16 when that is lossless enough (outputs of the fp16-rounded model within tolerance of
the fp32 one on fixed probe inputs), else float32.

A decoder, prior or layout expert is refused beside a CLIP other than the one it trained on
(its ``state.pt`` records it): the CLIP the destination holds, or the run's when ``clip`` is
exported with it. So is a stage whose checkpoint files are of different steps (a save cut
short: ``train --resume`` finishes or refuses it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from ..errors import ArgumentError, check_bool, check_number
from .models import (
    CLIP_CONFIG,
    DecoderConfig,
    ExpertConfig,
    MiniDecoderNet,
    MiniPriorNet,
    MiniUpscalerNet,
    PriorConfig,
    UpscalerConfig,
    create_clip,
    expert_mismatch,
    save_expert,
    save_module,
)

__all__ = ["export", "main", "CLIP_FILE"]

CLIP_FILE = "mini_clip.safetensors"


def _half_roundtrip(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: (v.half().float() if v.is_floating_point() else v) for k, v in sd.items()}


@torch.no_grad()
def _clip_fp16_ok(sd: dict[str, torch.Tensor], tol: float) -> tuple[bool, float]:
    from . import shapes
    from .train import _prepare

    torch.manual_seed(0)
    a, pre, tok = create_clip(None)
    b, _, _ = create_clip(None)
    a.load_state_dict(sd)
    b.load_state_dict(_half_roundtrip(sd))
    x, _ = _prepare([shapes.render_scene(s) for s in shapes.sample_scenes(777, 32)], pre)
    t = tok([shapes.caption(s, k % shapes.N_TEMPLATES) for k, s in enumerate(shapes.sample_scenes(778, 32))])
    cos = []
    for f in ("encode_image", "encode_text"):
        inp = x if f == "encode_image" else t
        za = torch.nn.functional.normalize(getattr(a, f)(inp), dim=-1)
        zb = torch.nn.functional.normalize(getattr(b, f)(inp), dim=-1)
        cos.append(float((za * zb).sum(-1).min()))
    worst = min(cos)
    return worst > 1 - tol, worst


@torch.no_grad()
def _net_fp16_ok(net: torch.nn.Module, probe: tuple, tol: float) -> tuple[bool, float]:
    net.eval()
    ref = net(*probe)
    half = type(net)(net.config)
    half.load_state_dict(_half_roundtrip(net.state_dict()))
    half.eval()
    out = half(*probe)
    rel = float((out - ref).norm() / ref.norm().clamp_min(1e-12))
    return rel < tol, rel


def _load_sd(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise ArgumentError(f"{path} does not exist: train that stage first (python -m latentlab.mini.train).")
    return load_file(str(path))


def _state_step(stage_dir: Path) -> int | None:
    """Training steps behind a stage's weights: its own, plus those of the weights it was
    warm-started from (``train --init-from``, recorded in ``init.json``)."""
    p = stage_dir / "state.pt"
    own = int(torch.load(p, map_location="cpu", weights_only=True)["step"]) if p.is_file() else None
    init = _init_record(stage_dir)
    if init is None or init.get("init_step") is None:
        return own
    return int(init["init_step"]) + (own or 0)


def _init_record(stage_dir: Path) -> dict[str, Any] | None:
    p = stage_dir / "init.json"
    return json.loads(p.read_text()) if p.is_file() else None


def _provenance(stage_dir: Path) -> dict[str, Any]:
    """The warm start (``init.json``) and the command line and config the stage last ran with
    (``run_config.json``), where the run folder has them."""
    init = _init_record(stage_dir)
    rc = stage_dir / "run_config.json"
    return {**({"warm_start": init} if init else {}), **({"run_config": json.loads(rc.read_text())} if rc.is_file() else {})}


#: files a stage's folder holds once it has checkpointed (``train`` writes ``config.json`` first)
_NEEDS = {"clip": ("model.safetensors",), "decoder": ("config.json", "model.safetensors", "state.pt"),
          "prior": ("config.json", "model.safetensors", "state.pt"),
          "upscaler": ("config.json", "model.safetensors", "state.pt"),
          "expert": ("config.json", "model.safetensors", "state.pt")}  # fmt: skip
EXPERT_FILES = ("mini_expert.safetensors", "mini_expert.json")


def _decoder_fits_expert(decoder: dict[str, Any], expert: dict[str, Any]) -> str | None:
    """None when the layout expert (its ``{"arch", "expert"}`` dict) can take over the decoder's
    (config dict) noisiest steps (``models.expert_mismatch``), else the reason it cannot."""
    with torch.device("meta"):  # built without memory: only their configs are compared
        net, ex = MiniDecoderNet(DecoderConfig.from_dict(decoder)), MiniDecoderNet(DecoderConfig.from_dict(expert["arch"]))
    ExpertConfig.from_dict(expert["expert"])  # a malformed expert.json fails here, not at load
    return expert_mismatch(net, ex)


def export(
    from_dir: str | Path,
    to_dir: str | Path,
    *,
    fp16: bool = True,
    tol: float = 1e-3,
    stages: tuple[str, ...] | None = None,
    drop_expert: bool = False,
) -> dict[str, Any]:
    """Write the shipped weights from run folder ``from_dir`` into ``to_dir`` (pass
    ``models.WEIGHTS_DIR`` to replace the package's own). ``stages`` defaults to every stage
    the run trained (those of clip, decoder, prior, upscaler and expert that have a
    checkpoint); a stage asked for that the run lacks, or whose training stopped before its
    first checkpoint, is refused before anything is written. A decoder that leaves
    ``to_dir``'s layout expert (``mini_expert.*``) unable to take its noisiest steps (e.g. one
    that reads no captions) is refused too, unless ``drop_expert``: then those files are removed
    (and it says so); so is the run's own expert beside such a decoder, which ``drop_expert``
    then leaves out (and says so). Every file is written to a temporary folder first and moved
    into place at the end. ``fp16=False`` stores float32 throughout; ``tol`` is the CLIP's
    float16 tolerance (its outputs' min cosine must exceed ``1 - tol``). Returns the manifest it writes."""
    src = Path(from_dir)
    if to_dir is None:
        raise ArgumentError("to_dir: name the destination folder (models.WEIGHTS_DIR, i.e. latentlab/mini/weights, "
                            "to replace the shipped weights).")  # fmt: skip
    fp16, drop_expert = check_bool(fp16, "fp16"), check_bool(drop_expert, "drop_expert")  # bool("no") is True
    tol = check_number(tol, "tol", minimum=0)
    if isinstance(stages, str):  # "decoder,prior" would be read letter by letter
        raise ArgumentError(f"stages must be a tuple of stage names such as ('decoder', 'prior'), got {stages!r}.")
    needs = _NEEDS

    def lacking(kind: str) -> list[str]:
        return [f for f in needs[kind] if not (src / kind / f).is_file()]

    def trained(kind: str) -> bool:
        return not lacking(kind)

    if stages is None:  # every stage the run trained (e.g. the upscaler alone, from the shipped files:
        # the CLIP that --init-from put in place to encode its cache has no state.pt, and is not re-exported)
        started = [k for k in needs if k != "clip" and (src / k / "config.json").is_file() and not trained(k)]
        if started:  # interrupted before its first checkpoint: say so rather than quietly leave it out
            raise ArgumentError(
                f"{str(src)!r}: {', '.join(started)} stopped before its first checkpoint "
                f"({', '.join(f'{k}/{f}' for k in started for f in lacking(k))} missing); resume it "
                f"(python -m latentlab.mini.train --stage {started[0]} --out {src} --resume) or pass --stages "
                f"{','.join(k for k in needs if trained(k)) or '...'}."
            )
        stages = tuple(k for k in needs if trained(k) and (k != "clip" or (src / "clip" / "state.pt").is_file()))
        if not stages:
            raise ArgumentError(f"{str(src)!r} holds no trained stage (clip/, decoder/, prior/, upscaler/ or expert/): "
                                "check --from.")  # fmt: skip
    _check_stages(stages)
    missing = [k for k in stages if not trained(k)]
    if missing:  # checked before anything is written
        raise ArgumentError(
            f"{str(src)!r} has no trained {', '.join(missing)} ({', '.join(f'{k}/{f}' for k in missing for f in lacking(k))} "
            f"missing); export the stages it has with --stages {','.join(k for k in needs if trained(k)) or '...'}."
        )
    dst = Path(to_dir)
    from ..jobs import check_can_create

    check_can_create(dst, "to_dir (--to)")  # a file in the way: said before the work, not as "File exists" after it
    _check_checkpoints(src, stages)
    _check_clip(src, dst, stages)
    # the folder's decoder and layout expert after this export must still work together
    dec_d = (json.loads((src / "decoder" / "config.json").read_text()) if "decoder" in stages else
             json.loads((dst / "mini_decoder.json").read_text()) if (dst / "mini_decoder.json").is_file() else None)  # fmt: skip
    ex_d = (json.loads((src / "expert" / "config.json").read_text()) if "expert" in stages else
            json.loads((dst / "mini_expert.json").read_text()) if (dst / "mini_expert.json").is_file() else None)  # fmt: skip
    drop: list[Path] = []
    left_out = None  # the run's expert, not exported (--drop-expert)
    if dec_d is not None and ex_d is not None:
        why = _decoder_fits_expert(dec_d, ex_d)
        if why is not None and "expert" in stages and drop_expert:  # the run's expert stays behind, as the folder's would go
            stages, left_out = tuple(k for k in stages if k != "expert"), why
            if not stages:
                raise ArgumentError(f"--drop-expert leaves nothing to export: the expert of {str(src)!r} cannot work with "
                                    f"the decoder in {str(dst)!r}: {why}.")  # fmt: skip
            ex_d = json.loads((dst / "mini_expert.json").read_text()) if (dst / "mini_expert.json").is_file() else None
            why = None if ex_d is None else _decoder_fits_expert(dec_d, ex_d)  # the folder's own expert, if any
        elif why is not None and "expert" in stages:
            others = ",".join(k for k in stages if k != "expert")
            leave_out = (f"leave the expert out (--stages {others}, or --drop-expert)" if others else
                         "export the expert into another --to")  # fmt: skip
            source = "the run's decoder" if "decoder" in stages else f"the decoder in {str(dst)!r}"
            if DecoderConfig.from_dict(dec_d).text_dim <= 0:  # e.g. --config smoke or cpu: no expert can serve it
                fix = (f"{source} reads no captions: {leave_out}, or train the "
                       "decoder to read them (--set decoder.arch.text_dim=128, the mini CLIP text tower's width) and "
                       "export it with the expert")  # fmt: skip
            elif "decoder" in stages:
                fix = f"{leave_out}, or train the expert for {source} (its image_size, text_dim and noise schedule)"
            else:
                fix = f"{leave_out}, or export the run's decoder with it (--stages decoder,expert) where that one fits it"

            raise ArgumentError(f"the expert of {str(src)!r} cannot work with the decoder {str(dst)!r} would hold: {why}. "
                                f"{fix[0].upper() + fix[1:]}.")  # fmt: skip
        if why is not None and not drop_expert:
            raise ArgumentError(
                f"{str(dst)!r} holds a layout expert (mini_expert.safetensors) that cannot work with the decoder being "
                f"exported: {why}. Pass --drop-expert (drop_expert=True) to remove it, or export into another --to."
            )
        if why is not None:
            drop = [dst / f for f in EXPERT_FILES if (dst / f).exists()]
    dst.parent.mkdir(parents=True, exist_ok=True)
    # beside dst, on its file system: inside it where it is another (a mount point, a link to a
    # folder elsewhere), as a rename cannot cross file systems (it failed there: EXDEV)
    home = dst if dst.is_dir() and os.stat(dst).st_dev != os.stat(dst.parent).st_dev else dst.parent
    stage_dir = Path(tempfile.mkdtemp(prefix=f".{dst.name}.export-", dir=home))
    try:
        manifest = _write_stages(src, stage_dir, dst, stages, fp16=fp16, tol=tol)
        from .train import _ctrl_c_held, _usual_mode

        for p in stage_dir.iterdir():  # safetensors writes its files 0600; the .json beside them get the usual mode
            _usual_mode(p)
        if drop:
            for name in EXPERT_FILES:
                manifest["files"].pop(name, None)
            manifest["dropped_expert"] = "the layout expert could not work with the exported decoder"
        staged = {p.name for p in stage_dir.iterdir()}
        kept = [p for p in dst.glob("*.safetensors") if p.name not in staged and p not in drop]
        total = sum(p.stat().st_size for p in [*kept, *stage_dir.glob("*.safetensors")])  # what dst will hold
        manifest["total_mb"] = round(total / 2**20, 2)
        # the manifest too, before anything in dst changes (a full disk writing it left the new
        # weights beside the old manifest, and its temporary file)
        (stage_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        dst.mkdir(parents=True, exist_ok=True)  # only now: a failure before it left a new, empty dst
        # every file is in place in the temporary folder: move them in, the manifest last; a Ctrl-C
        # meanwhile waits for the few renames (else it left new weights beside the old ones and manifest)
        with _ctrl_c_held():
            for p in drop:
                p.unlink()
            for p in sorted(stage_dir.iterdir(), key=lambda p: (p.name == "manifest.json", p.name)):
                p.replace(dst / p.name)
    finally:
        shutil.rmtree(stage_dir, ignore_errors=True)
    if left_out is not None:
        print(f"not exported: the expert of {src} (--drop-expert), which cannot work with the decoder {dst} now holds: "
              f"{left_out}", file=sys.stderr)  # fmt: skip
    if drop:
        print(f"removed {', '.join(str(p) for p in drop)}: that layout expert could not work with the exported decoder",
              file=sys.stderr)  # fmt: skip
    if total > 40 * 2**20:
        print(f"WARNING: shipped weights are {total / 2**20:.1f} MB, over the 40 MB budget")
    return manifest


def _check_checkpoints(src: Path, stages: tuple[str, ...]) -> None:
    """Refuse a stage whose weights and ``state.pt`` are of different steps (a save cut short)."""
    from .train import _ckpt_steps, _torn

    for kind in stages:
        d = src / kind
        if not (d / "state.pt").is_file():  # a CLIP that --init-from put in place: no checkpoint of its own
            continue
        steps = _ckpt_steps(d)
        if _torn(steps):
            shown = ", ".join(f"{k} of step {v}" for k, v in steps.items())
            raise ArgumentError(f"{d} holds a torn checkpoint ({shown}: a save cut short); `python -m latentlab.mini.train "
                                f"--stage {kind} --out {src} --resume` finishes it or says what to do.")  # fmt: skip


#: stages trained on the CLIP's embeddings (their ``state.pt`` records which CLIP: train._cache_fingerprint)
_ON_CLIP = ("decoder", "prior", "expert")


def _check_clip(src: Path, dst: Path, stages: tuple[str, ...]) -> None:
    """Refuse to export a decoder, prior or expert beside a CLIP other than the one it trained
    on: the run's CLIP when ``clip`` is exported too, else the one ``dst`` holds. CLIPs compare
    by their tensors rounded to float16 (``train._clip_ids``), so the run's float32 CLIP, its
    export and a warm start's copy of an export count as one."""
    from .train import _clip_ids

    trained_on: dict[str, str] = {}
    for kind in stages:
        if kind not in _ON_CLIP:
            continue
        rec = torch.load(src / kind / "state.pt", map_location="cpu", weights_only=True).get("cache_fingerprint")
        if rec is None or rec.get("clip_fp16") is None:
            print(f"note: {src / kind / 'state.pt'} predates the record of the CLIP it trained on; not checked against "
                  "the CLIP beside it", file=sys.stderr)  # fmt: skip
            continue
        trained_on[kind] = rec["clip_fp16"]
    if not trained_on:
        return
    if "clip" in stages:
        clip, where = src / "clip" / "model.safetensors", f"the run's CLIP ({src / 'clip'}), exported with it"
    else:
        clip, where = dst / CLIP_FILE, f"the CLIP {dst / CLIP_FILE} holds"
    if not clip.is_file():
        return
    have = _clip_ids(clip)[1]
    bad = [k for k, v in trained_on.items() if v != have]
    if not bad:
        return
    names = ", ".join(bad)
    fix = (f"the run's CLIP was trained on after {names} trained on it: export {names} beside the CLIP it trained on, "
           f"or train {names} again on this one" if "clip" in stages else
           f"export the run's CLIP with it (--stages clip,{','.join(bad)}), or export into a folder holding the CLIP "
           f"{names} trained on")  # fmt: skip
    raise ArgumentError(f"the {names} of {str(src)!r} trained on another CLIP than {where}: beside it, the embeddings "
                        f"{'they' if len(bad) > 1 else 'it'} would get are not the ones {'they' if len(bad) > 1 else 'it'} "
                        f"learned from. {fix[0].upper() + fix[1:]}.")  # fmt: skip


def _write_stages(src: Path, tmp: Path, dst: Path, stages: tuple[str, ...], *, fp16: bool, tol: float) -> dict[str, Any]:
    """Write the files of ``stages`` into ``tmp`` and return the manifest ``dst`` will have."""
    manifest_path = dst / "manifest.json"
    manifest: dict[str, Any] = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    manifest.setdefault("files", {})
    torch.manual_seed(0)
    if "clip" in stages:
        from safetensors.torch import save_file

        sd = _load_sd(src / "clip" / "model.safetensors")
        ok, worst = _clip_fp16_ok(sd, tol) if fp16 else (False, 1.0)
        dtype = torch.float16 if ok else torch.float32
        out = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in sd.items()}
        save_file(out, str(tmp / CLIP_FILE))
        # the acid test: it must load through open_clip's own code path
        create_clip(tmp / CLIP_FILE)
        manifest["files"][CLIP_FILE] = {"dtype": str(dtype), "fp16_min_cosine": worst,
                                        "step": _state_step(src / "clip"), "config": CLIP_CONFIG.name,
                                        **_provenance(src / "clip")}  # fmt: skip
    for kind in ("decoder", "prior", "upscaler", "expert"):
        if kind not in stages:
            continue
        d = src / kind
        cfg_dict = json.loads((d / "config.json").read_text())
        expert = None
        if kind == "expert":  # {"arch": ..., "expert": ...}: a decoder, and when it takes over
            expert, cfg_dict = ExpertConfig.from_dict(cfg_dict["expert"]), cfg_dict["arch"]
        sd = _load_sd(d / "ema.safetensors" if (d / "ema.safetensors").is_file() else d / "model.safetensors")
        g = torch.Generator().manual_seed(0)
        if kind in ("decoder", "expert"):
            cfg = DecoderConfig.from_dict(cfg_dict)
            net: torch.nn.Module = MiniDecoderNet(cfg)
            s = cfg.image_size
            probe = (torch.randn(4, 3, s, s, generator=g), torch.tensor([10, 200, 500, 900]),
                     torch.nn.functional.normalize(torch.randn(4, cfg.embed_dim, generator=g), dim=-1))  # fmt: skip
            if cfg.text_dim > 0:  # the caption path is checked in fp16 too
                probe = (*probe, None, torch.randn(4, 8, cfg.text_dim, generator=g))
        elif kind == "prior":
            cfg = PriorConfig.from_dict(cfg_dict)
            net = MiniPriorNet(cfg)
            probe = (torch.randn(4, cfg.embed_dim, generator=g), torch.tensor([10, 200, 500, 900]),
                     torch.nn.functional.normalize(torch.randn(4, cfg.embed_dim, generator=g), dim=-1))  # fmt: skip
        else:
            cfg = UpscalerConfig.from_dict(cfg_dict)
            net = MiniUpscalerNet(cfg)
            probe = (torch.rand(4, 3, cfg.in_size, cfg.in_size, generator=g) * 2 - 1,)
        net.load_state_dict(sd)
        ok, rel = _net_fp16_ok(net, probe, 1e-2) if fp16 else (False, 0.0)
        dtype = torch.float16 if ok else torch.float32
        name = f"mini_{kind}.safetensors"
        if expert is not None:
            save_expert(net, tmp / name, expert, dtype=dtype)
        else:
            save_module(net, tmp / name, config=cfg, dtype=dtype)
        manifest["files"][name] = {"dtype": str(dtype), "fp16_rel_error": rel, "step": _state_step(d),
                                   "weights": "ema" if (d / "ema.safetensors").is_file() else "raw",
                                   **_provenance(d)}  # fmt: skip
    manifest["exported_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    manifest["source_run_config"] = json.loads((src / "config.json").read_text()) if (src / "config.json").is_file() else None
    return manifest


def _check_stages(stages: tuple[str, ...], name: str = "stages") -> None:
    """Refuse ``stages`` naming no stage or an unknown one (``name``: how the caller spells it; main's, --stages)."""
    if not stages:  # (--stages ",") an export of nothing would still rewrite the manifest
        raise ArgumentError(f"{name}: name at least one of clip, decoder, prior, upscaler, expert (or leave it out: "
                            "every stage the run trained).")  # fmt: skip
    unknown = set(stages) - set(_NEEDS)
    if unknown:
        raise ArgumentError(f"{name}: unknown {sorted(unknown)}; choose from clip, decoder, prior, upscaler, expert.")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m latentlab.mini.export", description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--from", dest="src", required=True, help="training run folder (--out of latentlab.mini.train)")
    ap.add_argument("--to", dest="dst", required=True,
                    help="destination folder; latentlab/mini/weights replaces the shipped weights (no default)")
    ap.add_argument("--fp32", action="store_true", help="store float32 even where float16 would do")
    ap.add_argument("--stages", default=None,
                    help="comma-separated subset to export (default: every stage the run trained)")
    ap.add_argument("--drop-expert", action="store_true",
                    help="leave out the run's layout expert, and remove one in --to, that cannot work with the exported "
                    "decoder (else refused)")
    args = ap.parse_args(argv)
    # (--stages "" of an unset shell variable names no stage, as "," does: refused, not every stage)
    stages = tuple(s for s in args.stages.split(",") if s) if args.stages is not None else None
    if stages is not None:  # (export says stages:, its argument's name)
        _check_stages(stages, "--stages")
    m = export(args.src, args.dst, fp16=not args.fp32, stages=stages, drop_expert=args.drop_expert)
    # a line per file; what each came from (run_config, warm start) stays in manifest.json
    for name, rec in m["files"].items():
        path = Path(args.dst) / name
        size = f"{path.stat().st_size / 2**20:.2f} MB" if path.is_file() else "?"
        print(f"{name}: {str(rec.get('dtype', '?')).removeprefix('torch.')}, step {rec.get('step')}, {size}")
    print(f"total {m['total_mb']} MB; details in {Path(args.dst) / 'manifest.json'}")
    return m


if __name__ == "__main__":
    from ..errors import run_reporting_errors

    run_reporting_errors(main)
