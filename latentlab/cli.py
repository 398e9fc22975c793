"""``latentlab``: the command line, a thin front over :func:`latentlab.render_spec`.

Every rendering verb builds a render spec and renders it, so anything the CLI does can be
written as a spec file (``--save-spec``) and replayed with ``latentlab render SPEC``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

from .errors import ArgumentError, LatentlabError, is_disk_full, is_path_error, thread_count, url_hint, user_path

EPILOG = """\
examples:
  latentlab presets
  latentlab morph phone.png --to "an old telephone" --from "a mobile phone"
  latentlab interpolate starry.png dogs.png --frames 72 --easing ease-in-out
  latentlab interpolate cat.png "text:a watercolor painting of a cat"
  latentlab variations cat.png -n 8
  latentlab generate "a red circle above a blue square" -n 8
  latentlab render my_spec.toml           (examples/*.toml in a latentlab checkout)

Output: frames, embeddings and manifest.json go into the render folder (renders/<name>/ by
default), the video next to it (renders/<name>.mp4). Run the same command again after an
interruption and it resumes where it stopped.
"""


def _common(p: argparse.ArgumentParser, *, frames: bool = True, video: tuple[str, str] = ("mp4", "24"),
            spec: bool = False) -> None:  # fmt: skip
    """The options every rendering verb shares; ``frames=False`` (variations) leaves out the path
    and noise options, ``video`` is the (format, fps) the verb defaults to; ``spec=True`` (render):
    a spec's own format and fps come before those defaults."""
    # (render's help said "default mp4" where a spec's format, or its output's suffix, wins)
    fmt_default = f"{video[0]}, unless the spec gives a format, or an output file's suffix" if spec else video[0]
    fps_default = f"{video[1]}, unless the spec gives one" if spec else video[1]
    g = p.add_argument_group("model and sampling")
    g.add_argument("--preset", default=None, help="model preset (see `latentlab presets`); default: mini")
    g.add_argument("--seed", type=int, default=None, help="seed of the starting noise (default 0)")
    if frames:  # (variations always draw each picture from its own noise)
        g.add_argument(
            "--noise", choices=("shared", "per-frame", "slerp", "inverted"), default=None,
            help="starting noise: shared (no flicker, default), per-frame, slerp (each keyframe its own, slerped "
            "between) or inverted (image keyframes' DDIM-inverted noise: end frames that redraw the inputs, "
            "closely for mini's shapes, roughly for emoji; docs/quality.md)",
        )  # fmt: skip
    g.add_argument("--steps", type=int, default=None, help="sampler steps (default: the preset's)")
    g.add_argument("--guidance", dest="guidance_scale", type=float, default=None, help="classifier-free guidance scale (default: the preset's)")
    g.add_argument("--batch-size", type=int, default=None, help="frames per decoder call")
    g.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default cpu)")
    _load_flags(g)
    _threads_flag(g)
    g.add_argument("--no-upscale", dest="upscale", action="store_const", const=False, default=None,
                   help="mini: bring the 32 px decodes to the frame size with a Lanczos resize instead of the "
                   "learned 2x upscaler (as mini rendered before 2026-12-02)")  # fmt: skip
    g.add_argument("--invert-refine", type=int, default=None, metavar="N",
                   help="--noise inverted / variations --eta: gradient steps refining each inverted noise "
                   "(default: the decoder's, 20 for mini; 0 = DDIM inversion alone)")  # fmt: skip
    if frames:  # (variations has an --eta of its own)
        g.add_argument("--eta", type=float, default=None,
                       help="DDIM eta in [0, 1] (mini): > 0 renders one coherent variation of the whole video, "
                       "a new one per --seed (default 0)")  # fmt: skip
        g.add_argument("--frames", type=int, default=None, help="frames per segment, end keyframe excluded (default 48)")
        g.add_argument("--easing", choices=("linear", "ease-in", "ease-out", "ease-in-out"), default=None, help="default linear")
        g.add_argument(
            "--pacing", choices=("uniform", "even", "fine"), default=None,
            help="uniform path steps (default); even: measure a coarse pass and space frames so the picture changes "
            "evenly; fine: the same, measured finely and relaxed (about ten decodes per frame; docs/quality.md)",
        )  # fmt: skip
        g.add_argument("--pacing-metric", choices=("clip", "pixel"), default=None, help="what even pacing equalises (default clip)")
        g.add_argument("--pacing-scope", choices=("segment", "path"), default=None,
                       help="even pacing: within each segment (default) or over the whole path, re-splitting a chain's frames across its segments")  # fmt: skip
        g.add_argument("--pacing-coarse", type=int, default=None, metavar="N", help="even pacing: sample intervals per segment in the coarse pass (default: half its frames)")
        g.add_argument("--pacing-passes", type=int, default=None, metavar="N", help="even pacing: measure-and-solve passes (default 1)")
        g.add_argument("--pacing-tol", type=float, default=None, metavar="TOL", help="even pacing: bisect intervals above (1 + tol) x their segment's mean (default 0.25)")
        g.add_argument("--pacing-max-samples", type=int, default=None, metavar="N", help="even pacing: extra decodes for bisection (default: the frame budget)")
        g.add_argument("--pacing-min-width", type=float, default=None, metavar="W",
                       help="even pacing: narrowest bisected interval, a fraction of a segment (default a quarter frame step)")  # fmt: skip
        g.add_argument("--pacing-relax", type=int, default=None, metavar="N",
                       help="even pacing: rounds that measure the paced frames and move them until they differ evenly "
                       "(default 0; each decodes up to one frame budget)")  # fmt: skip
    o = p.add_argument_group("output")
    o.add_argument("--out-dir", default=None, help="render folder (default: a spec's out_dir, else renders/<name>); "
                   "another folder than a spec's also puts the video beside it, not at the spec's output")  # fmt: skip
    o.add_argument("-o", "--output", default=None,
                   help="video file (default <out-dir>.<format>); an existing file is replaced only if this render wrote it")  # fmt: skip
    o.add_argument("--format", choices=("mp4", "gif", "webp"), default=None,
                   help=f"video format (default {fmt_default}); a gif holds every frame again at a third of their memory "
                   "while it is written, a webp at about twice theirs: for a long render, write mp4")  # fmt: skip
    o.add_argument("--fps", type=float, default=None, help=f"frames per second (default {fps_default})")
    o.add_argument("--size", type=int, default=None, help="resize frames to SIZE x SIZE for the video")
    o.add_argument("--hold-first", type=int, default=None, help="extra frames showing the first frame")
    o.add_argument("--hold-last", type=int, default=None, help="extra frames showing the last frame")
    o.add_argument("--pingpong", action="store_true", default=None, help="play forwards then backwards")
    o.add_argument("--name", default=None, help="name of the render (folder and video file names: renders/<name>); not with --out-dir")
    o.add_argument("--overwrite", action="store_true",
                   help="replace a different render found in --out-dir, or a video file it did not write (and render "
                   "again frames made with other library versions)")  # fmt: skip
    o.add_argument("--save-spec", default=None, metavar="PATH", help="also write the spec (.toml/.json) to PATH")
    o.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


SPEC_KEYS = (
    "preset", "seed", "noise", "pacing", "pacing_metric", "pacing_scope", "pacing_coarse", "pacing_passes", "pacing_tol",
    "pacing_max_samples", "pacing_min_width", "pacing_relax", "invert_refine", "steps", "guidance_scale", "eta", "batch_size", "frames",
    "easing", "format", "fps", "size", "hold_first", "hold_last", "pingpong", "name", "upscale",
)  # fmt: skip


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in SPEC_KEYS if getattr(args, k, None) is not None}


def _argv_text(text: str, what: str) -> str:
    """A caption typed on the command line, as the user wrote it: under a locale that is not
    UTF-8 (``LC_ALL=C`` without Python's UTF-8 mode) Python hands over a UTF-8 word such as
    "crème" as surrogate escapes, which the text encoder embedded as they were (cosine 0.83
    with the true caption). Paths keep them: they name the file's bytes."""
    if not any("\udc80" <= c <= "\udcff" for c in text):
        return text
    try:
        return os.fsencode(text).decode("utf-8")
    except UnicodeDecodeError:
        raise ArgumentError(f"{what} {text!r} is not UTF-8 text; type it in UTF-8 (a UTF-8 terminal and locale, "
                            "e.g. LANG=C.UTF-8).") from None  # fmt: skip


def _decode_argv_texts(args: argparse.Namespace) -> None:
    """:func:`_argv_text` of every caption the verbs take."""
    for flag, what in (("to", "--to"), ("source", "--from"), ("prompt", "the prompt")):
        if isinstance(getattr(args, flag, None), str):
            setattr(args, flag, _argv_text(getattr(args, flag), what))
    if isinstance(getattr(args, "image", None), str) and args.image.startswith("text:"):
        args.image = _argv_text(args.image, "the caption")
    if isinstance(getattr(args, "keyframes", None), list):
        args.keyframes = [_argv_text(k, "the caption") if k.startswith("text:") else k for k in args.keyframes]


def _keyframe(arg: str) -> dict[str, Any]:
    if arg.startswith("text:"):
        return {"text": arg[5:]}
    path = user_path(arg)
    if not path.exists():  # said here: the spec sees only the absolute path made of it
        if url_hint(arg):
            raise ArgumentError(f"{arg!r} is a URL.{url_hint(arg)}")
        if arg[:5].lower() == "text:":
            raise ArgumentError(f"no such file {arg!r}; for a caption write text: in lower case: 'text:{arg[5:]}'.")
        from .explore import IMAGE_SUFFIXES

        if " " in arg.strip() and path.suffix.lower() not in IMAGE_SUFFIXES:  # words, not a file name
            raise ArgumentError(f"no such file {arg!r} (check the path); for a caption write text:CAPTION, "
                                f"e.g. 'text:{arg}'.")  # fmt: skip
    try:
        return {"image": str(path.resolve())}
    except (OSError, RuntimeError) as exc:  # a link loop: a raw RuntimeError (an OSError from Python 3.13)
        raise ArgumentError(f"{arg!r} cannot be opened as a picture ({exc}); name a picture file.") from None


_ARGV: list[str] = []  # the arguments being parsed, for _Parser.error's hint


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors add a hint where a caption or prompt starting with
    '-' was taken for a flag (`generate -cat` said only that the prompt is missing)."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        # a single dash and a word ('-cat', '-a blue cat'), not a known flag nor a number; '--bogus' is a typo of a flag
        dashed = [a for a in _ARGV if a.startswith("-") and (not a.startswith("--") or " " in a)
                  and a.split("=", 1)[0] not in self._option_string_actions
                  and not a.lstrip("-")[:1].isdigit()]  # fmt: skip
        kinds = ("the following arguments are required", "expected one argument", "unrecognized arguments")
        if dashed and any(k in message for k in kinds):
            message += (f" (If {dashed[0]!r} is a caption or prompt, not a flag: join it to its flag with '=', e.g. "
                        f"--to={dashed[0]!r}, or put a prompt after `--`, e.g. `latentlab generate -- {dashed[0]!r}`.)")  # fmt: skip
        return super().error(message)

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        # an option's own value "--" (--name=--, -o--): Python before 3.11.8 and 3.12.3 (gh-109475) took it
        # for the end of the options and handed the verb [] (a raw TypeError later); read as written, as newer ones do
        if action.option_strings and action.nargs is None and arg_strings == ["--"]:
            value = self._get_value(action, "--")
            self._check_value(action, value)
            return value
        return super()._get_values(action, arg_strings)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="latentlab",
        description="Explore CLIP latent space: morphs, interpolations and variations rendered by unCLIP decoders.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"latentlab {__import__('latentlab').__version__}")
    _threads_flag(parser)  # also before the verb: `latentlab --threads 1 render spec.toml`
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("presets", help="list the model presets and whether their weights are here")
    p.add_argument("--json", action="store_true", help="print as JSON")

    p = sub.add_parser(
        "morph",
        help="edit an image with a DALL-E 2 text diff (e.g. a phone turning into an old telephone)",
        description="Slerp an image's embedding towards the text diff normalize(to - from). "
        "theta is the fraction of the way to the text-diff direction: 0.25-0.5 is usual; beyond "
        "about 0.5 the image's identity is lost.",
    )
    p.add_argument("image", help="path of the starting image")
    p.add_argument("--to", required=True, metavar="CAPTION", help="caption of where to go, e.g. 'an old telephone'")
    p.add_argument("--from", dest="source", default=None, metavar="CAPTION",  # (it said SOURCE, the internal name)
                   help="caption of the image (default: 'a photo')")
    p.add_argument("--theta", type=float, default=0.5, help="how far to go, in [0, 1] (default 0.5)")
    _common(p)

    p = sub.add_parser(
        "interpolate",
        help="morph through two or more keyframes (images, or text:CAPTION via the prior)",
        description="Slerp between keyframes. A keyframe is an image path, or text:CAPTION, "
        "which the preset's prior turns into an image embedding.",
    )
    p.add_argument("keyframes", nargs="+", help="image paths or text:CAPTION, at least two")
    _common(p)

    p = sub.add_parser("variations", help="decode one image's embedding with N different noises")
    p.add_argument("image", help="path of the image")
    p.add_argument("-n", "--num", type=int, default=8, help="number of variations (default 8)")
    p.add_argument(
        "--eta", type=float, default=None,
        help="variations centred on the image, as in the DALL-E 2 paper: start from its DDIM-inverted noise "
        "and let the sampler add noise of this strength, in (0, 1] (e.g. 0.3); needs a decoder that inverts (mini)",
    )  # fmt: skip
    _common(p, frames=False, video=("gif", "2"))

    p = sub.add_parser(
        "generate",
        help="draw N pictures of a caption through the prior and decoder (DALL-E 2's text-to-image)",
        description="The prior turns the caption into N image embeddings (picture k: seed + k), and the decoder "
        "draws each; a decoder that reads captions (mini, karlo, sd21-unclip-l) is given the caption too, as DALL-E 2's decoder is "
        "(mini then lets its layout expert place the objects the caption names). Writes the pictures, "
        "generate.json and a contact sheet into the output folder; run it again after an interruption to "
        "draw only the missing pictures.",
    )
    p.add_argument("prompt", help="the caption, e.g. 'a red circle above a blue square'")
    p.add_argument("-n", "--num", type=int, default=8, help="number of pictures (default 8)")
    g = p.add_argument_group("model and sampling")
    g.add_argument("--preset", default=None, help="model preset with a prior (see `latentlab presets`); default: mini")
    g.add_argument("--seed", type=int, default=None, help="seed of picture 0; picture k uses seed + k (default 0)")
    g.add_argument("--steps", type=int, default=None, help="decoder sampler steps (default: the preset's)")
    g.add_argument("--guidance", dest="guidance_scale", type=float, default=None,
                   help="decoder classifier-free guidance scale (default: the preset's)")  # fmt: skip
    g.add_argument("--batch-size", type=int, default=None, help="pictures per decoder call (default 8)")
    g.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default cpu)")
    _load_flags(g)
    _threads_flag(g)
    g.add_argument("--no-captions", dest="captions", action="store_false",
                   help="draw from the prior's embeddings alone, as a render does, even where the decoder reads captions")  # fmt: skip
    g.add_argument("--no-upscale", dest="upscale", action="store_const", const=False, default=None,
                   help="mini: a Lanczos resize instead of the learned 2x upscaler")  # fmt: skip
    o = p.add_argument_group("output")
    o.add_argument("--out-dir", default=None, help="output folder (default renders/<name>)")
    o.add_argument("--name", default=None, help="name of the output folder under renders/ (default: made from the prompt); not with --out-dir")
    o.add_argument("--size", type=int, default=None, help="resize the contact sheet's pictures to SIZE x SIZE")
    o.add_argument("--overwrite", action="store_true", help="replace other pictures found in --out-dir")
    o.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser(
        "render",
        help="render a spec file (.toml or .json)",
        description="Render a spec file: its keyframes, pacing, noise and video settings (see docs/spec.md). "
        "Options given here replace the spec's fields; an interrupted render resumes when run again.",
    )
    p.add_argument("spec", help="path of the spec file")
    _common(p, spec=True)
    return parser


def _load_flags(g: Any) -> None:
    """--dtype and --cpu-offload: how the models load (the Python options dtype= and cpu_offload=)."""
    g.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default=None,
                   help="precision the models load in (default: the preset's, float32); float16 halves a real "
                   "model's GPU memory (not on the CPU; mini takes float32 or bfloat16)")  # fmt: skip
    g.add_argument("--cpu-offload", action="store_true",
                   help="diffusers presets on a GPU: keep each model on the CPU until it runs (less GPU memory, slower)")


def _threads_flag(g: Any) -> None:
    """--threads: torch's CPU threads, set before any model loads. SUPPRESS as its default, so that
    the verb's own (absent) flag leaves the value given before the verb as it is."""
    g.add_argument("--threads", type=thread_count, default=argparse.SUPPRESS, metavar="N",
                   help="CPU threads torch computes with (torch.set_num_threads; default: torch's, OMP_NUM_THREADS or one per core); "
                   "on a busy or shared machine fewer, even 1, can be much faster")  # fmt: skip


@contextlib.contextmanager
def _torch_threads(args: argparse.Namespace) -> Iterator[None]:
    """``--threads N``: ``torch.set_num_threads(N)`` for the command, restored on return (main()
    may be called from Python); without the flag, torch is not even imported here."""
    n = getattr(args, "threads", None)
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _load_options(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(dtype=, cpu_offload=)`` keywords for the ``create_*`` calls, each only where its flag
    is given: the first for every model, the second for the decoder (and a prior that takes it)."""
    load = {"dtype": args.dtype} if getattr(args, "dtype", None) else {}
    return load, ({"cpu_offload": True} if getattr(args, "cpu_offload", False) else {})


def _decoder_options(preset: str, args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for ``create_decoder`` from the flags that choose a decoder's options."""
    if args.upscale is None:
        return {}
    from .presets import get_preset

    if get_preset(preset).decoder.get("kind") != "mini":
        raise ArgumentError(
            f"--no-upscale applies to the mini preset only (its learned upscaler); preset {preset!r} has none. Drop the flag."
        )
    return {"upscale": args.upscale}


def _check_load_flags(preset: str, args: argparse.Namespace) -> None:
    """--dtype float16 on the CPU with mini, and --cpu-offload with mini or on the CPU: refused
    before anything loads (the encoder loaded first, then the decoder refused them)."""
    offload = getattr(args, "cpu_offload", False)
    if getattr(args, "dtype", None) != "float16" and not offload:
        return
    from .presets import get_preset

    mini = get_preset(preset).decoder.get("kind") == "mini"
    if offload and mini:
        raise ArgumentError(f"the decoder of preset {preset!r} takes no cpu_offload= (a loading option of other parts "
                            "or presets; docs/models.md, 'Loading options', says which takes what). Drop --cpu-offload.")
        # (as its builder said it once the encoder had loaded; _flag_advice names the flag after 'cpu_offload=')
    try:
        import torch

        on_cpu = torch.device(args.device).type == "cpu"
    except (RuntimeError, TypeError, ValueError):  # a device name torch does not know: said where it loads
        return
    if offload and on_cpu:
        raise ArgumentError(f"--cpu-offload needs an accelerator device, e.g. --device cuda; got --device {args.device}.")
    if getattr(args, "dtype", None) == "float16" and on_cpu and mini:
        raise ArgumentError(
            f"--dtype float16 is not supported on the CPU; use float32 (the default) or bfloat16, or float16 with "
            f"--device cuda (preset {preset!r} runs on --device {args.device} here)."
        )


#: the flags that name a path or a name, which an empty value (an unset shell variable) would turn
#: into the current folder, its parent's video, or nothing saved
_NONEMPTY_FLAGS = (("--out-dir", "out_dir"), ("-o", "output"), ("--save-spec", "save_spec"), ("--name", "name"))


def _check_paths(args: argparse.Namespace) -> None:
    """Refuse empty path flags, and --name beside --out-dir; expand ``~`` in every path flag (bash
    leaves ``--out-dir=~/x`` and a quoted ``'~/x'`` as typed), so every part of a command reads and
    writes the same folder."""
    for flag, dest in _NONEMPTY_FLAGS:
        value = getattr(args, dest, None)
        if value is not None and not value.strip():
            example = {"--out-dir": "--out-dir renders/take1", "-o": "-o take1.mp4", "--save-spec": "--save-spec take1.toml",
                       "--name": "--name take1"}[flag]  # fmt: skip
            raise ArgumentError(
                f"{flag} is empty ({value!r}; an unset shell variable?). Give a {'name' if flag == '--name' else 'path'}, "
                f"e.g. {example}, or leave the flag out."
            )
    name = getattr(args, "name", None)
    # (first: what --name holds is moot beside --out-dir; "--name a/b --out-dir r" was told to give --out-dir)
    if name is not None and getattr(args, "out_dir", None) is not None:
        raise ArgumentError(
            f"--name {name!r} and --out-dir {args.out_dir!r} both choose the render folder (--name: renders/<name>, "
            "--out-dir: the folder itself), so --name would be ignored. Give one of them."
        )
    if name is not None:  # one folder's name under renders/ (a/b was renders/a-b, and .. renders/render, silently)
        if "/" in name or "\\" in name:
            raise ArgumentError(f"--name {name!r} holds a path separator, but it names one folder, renders/<name>/. "
                                f"For a folder elsewhere give --out-dir {name} instead; or give a name without a "
                                "separator, e.g. --name take1.")  # fmt: skip
        if not any(c.isalnum() for c in name):  # (made a folder name as a spec's name is: nothing left)
            raise ArgumentError(f"--name {name!r} holds no letter or digit to name a folder by (a name keeps its "
                                "letters and digits, its other characters become dashes). Give one, e.g. --name take1.")  # fmt: skip
    for dest, what in (("out_dir", "--out-dir"), ("output", "-o"), ("save_spec", "--save-spec"), ("spec", "the spec file")):
        value = getattr(args, dest, None)
        if isinstance(value, str):
            setattr(args, dest, _home_expanded(value, what))
    for what, value, example in (("the image", getattr(args, "image", None), "cat.png"),
                                 ("the spec file", getattr(args, "spec", None), "my_spec.toml"),
                                 *(("a keyframe", k, "cat.png or 'text:a cat'") for k in getattr(args, "keyframes", None) or ())):  # fmt: skip
        if isinstance(value, str) and not value.strip():  # (it was read as the current folder: "'/home/me' is a folder")
            raise ArgumentError(f"{what} is empty ({value!r}; an unset shell variable?). Give a path, e.g. {example}.")
    if isinstance(getattr(args, "image", None), str) and not args.image.startswith("text:"):
        args.image = _home_expanded(args.image, "the image")
    for k in getattr(args, "keyframes", None) or ():
        if isinstance(k, str) and not k.startswith("text:"):
            _home_expanded(k, "the keyframe")


def _home_expanded(value: str, what: str) -> str:
    """``value`` with a leading ``~`` or ``~user`` made the home folder; a typed ``~user`` of no
    user here is refused naming ``what``, as more likely a mistyped ``~/`` than a folder called
    ``~user`` (which ``./~user/...`` or an absolute path still names: the API reads such a name
    as relative, :func:`latentlab.errors.user_path`)."""
    path = os.path.expanduser(value)
    if path.startswith("~"):
        user = path[1:].replace(os.sep, "/").split("/", 1)[0]
        whose = f"this system has no user {user!r}" if user else "this system cannot say where your home folder is"
        raise ArgumentError(f"{what} {value!r} starts with ~{user}, a home folder, but {whose}. Write ~/... for your own "
                            f"home folder, or {os.path.abspath(value)} for a folder of that name.")  # fmt: skip
    return path


def _portable_images(spec: Any, spec_file: str) -> Any:
    """``spec`` with the absolute image paths the command line made (``_keyframe``) spelt relative to
    the current folder, where the saved spec and the image are in one project (the image under the
    spec file's folder, or both under the current folder), so that :meth:`Spec.save` writes them
    relative to the spec file and a project moved whole replays; elsewhere they stay absolute."""
    from .spec import load_spec

    cwd = Path.cwd().resolve()
    there = Path(spec_file).resolve().parent

    def under(path: Path, folder: Path) -> bool:
        return path == folder or folder in path.parents

    def portable(p: str) -> str:
        path = Path(p)
        if not path.is_absolute() or p.startswith("~"):
            return p
        if under(path, there) or (under(path, cwd) and under(there, cwd)):
            try:
                return Path(os.path.relpath(path, cwd)).as_posix()
            except ValueError:  # another drive (Windows)
                return p
        return p

    if spec.base_dir is not None:  # a spec file's paths: Spec.save rewrites them for the new folder already
        return spec
    data = spec.to_dict()
    for kf in data["keyframes"]:
        for item in [kf, *kf.get("mix", ()), *kf.get("sum", ())]:
            if "image" in item:
                item["image"] = portable(item["image"])
    return load_spec(data)


def _check_output_format(args: argparse.Namespace) -> None:
    """``--format`` and an ``-o`` of another suffix contradict each other: say so, before any work."""
    if args.format and args.output and Path(args.output).suffix.lower().lstrip(".") != args.format:
        raise ArgumentError(
            f"-o {args.output} and --format {args.format} disagree: the video's format follows -o's suffix. "
            f"Drop --format, or give -o a .{args.format} name."
        )


def _run_spec(spec_dict: dict[str, Any] | str, args: argparse.Namespace) -> int:
    from .jobs import render_spec
    from .spec import load_spec

    _check_output_format(args)
    uniform = getattr(args, "pacing", None) == "uniform"
    if args.output and Path(args.output).suffix.lower().lstrip(".") not in ("mp4", "gif", "webp"):
        raise ArgumentError(f"-o {args.output} must end in .mp4, .gif or .webp.")  # before --save-spec writes it
    from .jobs import default_out_dir

    loaded = load_spec(spec_dict)  # its base_dir as the file says, resolved
    own = default_out_dir(loaded)  # the folder the spec itself names (out_dir, else renders/<its name>), before --name
    if not isinstance(spec_dict, dict) and (uniform or args.output):
        spec_dict = {**loaded.to_dict(), "base_dir": loaded.base_dir}
    if uniform:  # pacing turned off: the spec's finer pacing settings go with it
        spec_dict = {k: v for k, v in spec_dict.items() if not k.startswith("pacing_")}
    if args.output:  # -o replaces the spec's output, and its suffix says the format
        spec_dict = {k: v for k, v in spec_dict.items() if k != "output"}
        spec_dict["format"] = Path(args.output).suffix.lower().lstrip(".")
    overrides = _overrides(args)
    fmt = overrides.pop("format", None)  # set once the spec's output is known to stay: another folder drops it (below)
    spec = load_spec(spec_dict, **overrides)
    if args.name and not args.out_dir and spec.out_dir:  # --name names the folder: renders/<name>, not the spec's out_dir
        spec = load_spec({**{k: v for k, v in spec.to_dict().items() if k != "out_dir"}, "base_dir": spec.base_dir})
    where = Path(args.out_dir) if args.out_dir else default_out_dir(spec)  # as render_spec places it
    if spec.output and not args.output and (args.out_dir or args.name) and where.resolve() != own.resolve():
        # another folder (a draft, a second take): its video goes beside it, <folder>.<format>, not over the
        # video the spec's own render wrote (its format kept)
        spec = load_spec({**{k: v for k, v in spec.to_dict().items() if k != "output"}, "base_dir": spec.base_dir})
    if fmt is not None:  # (a draft's --format was refused as contradicting the output the draft does not write)
        spec = load_spec({**spec.to_dict(), "base_dir": spec.base_dir}, format=fmt)
    if getattr(args, "invert_refine", None) is not None and spec.noise != "inverted":  # it would do nothing
        fix = ("Add --eta (variations around the image's inverted noise)" if args.command == "variations" else
               "Add --noise inverted")  # fmt: skip
        raise ArgumentError(f"--invert-refine refines inverted noise, and this render's noise is {spec.noise!r}: "
                            f"it would change nothing. {fix}, or drop --invert-refine.")  # fmt: skip
    _decoder_options(spec.preset, args)  # --no-upscale on a preset without an upscaler: said as the flag
    _check_load_flags(spec.preset, args)
    save = None
    if args.save_spec:
        # -o and --out-dir go into the saved spec (relative to the spec's paths), so a replay
        # writes there too (and resumes the same folder)
        here = Path(spec.base_dir or os.getcwd()).resolve()
        kept = {}
        for key, value in (("output", args.output), ("out_dir", args.out_dir)):
            if value:
                target = user_path(value).resolve()
                try:
                    kept[key] = Path(os.path.relpath(target, here)).as_posix()  # (a spec holds paths with /)
                    if "\\" in kept[key]:  # a name that holds a backslash (POSIX): kept absolute, as a spec
                        kept[key] = str(target)  # refuses a relative one (a spec saved on Windows)
                except ValueError:  # another drive (Windows): no relative path
                    kept[key] = str(target)
        saved = load_spec(spec, **kept) if kept else spec
        try:  # checked now (a path that cannot be written, a name TOML cannot hold); written once the render's checks pass
            writer = _portable_images(saved, args.save_spec)._writer(args.save_spec)
        except ArgumentError as exc:
            raise ArgumentError(f"--save-spec: {exc}") from None

        def save() -> None:  # (not before: a refused command, an unknown preset or a taken folder, saves nothing)
            try:
                writer()
            except ArgumentError as exc:
                raise ArgumentError(f"--save-spec: {exc}") from None

    out_dir = args.out_dir
    args.writing = where  # for the message of a full disk
    before = _folder_state(where)
    load, offload = _load_options(args)
    kept: list[int] = []  # the frames an earlier run finished (a resumed or repeated command said nothing of them)
    try:
        result = render_spec(
            spec, out_dir=out_dir, output=args.output, overwrite=args.overwrite, progress=not args.quiet, device=args.device,
            ready=save, callback=lambda info: kept.append(info["frame"]) if info.get("resumed") else None, **load, **offload,
        )  # fmt: skip
    except KeyboardInterrupt:
        print(f"\n{_interrupted_render(where, spec, before)}", file=sys.stderr)
        return 130
    print(f"video:         {result.video}")
    print(f"contact sheet: {result.contact_sheet}")
    again = f", {len(kept)} of them kept from an earlier run" if kept else ""
    print(f"frames:        {result.out_dir}/ ({len(result.frames)} frames{again}, manifest.json)")
    if result.pacing is not None:
        print(f"pacing:        {_pacing_line(result.pacing)}")
    return 0


def _folder_state(where: Path) -> dict[str, int]:
    """The frames and manifest in ``where`` (name -> modification time), to tell afterwards what a run wrote."""
    from .render import MANIFEST

    state = {}
    for p in [*where.glob("frame_*.png"), where / MANIFEST]:
        try:
            state[p.name] = p.stat().st_mtime_ns
        except OSError:  # not there (the manifest), or gone meanwhile
            pass
    return state


def _interrupted_render(where: Path, spec: Any, before: dict[str, int]) -> str:
    """What an interrupted spec render says: its frames are kept for a resume only where this
    run wrote frames or the manifest there (render accepts a folder before it writes its
    manifest), or the manifest records this render's spec; a folder holding another render's
    frames (Ctrl-C while the models loaded) was left as it was, and a rerun would be refused."""
    from .jobs import _frame_settings
    from .render import MANIFEST, read_manifest

    now = _folder_state(where)
    frames = [name for name in now if name != MANIFEST]
    ours = any(before.get(name) != t for name, t in now.items())
    if frames and not ours:
        old = read_manifest(where / MANIFEST)
        plain = json.loads(json.dumps(spec.to_dict(), default=str))  # as the manifest holds it
        ours = old is not None and _frame_settings(old.get("spec") or {}) == _frame_settings(plain)
    if frames and ours:
        return f"interrupted: finished frames are kept in {where}/; run the same command again to resume."
    if frames:
        return (f"interrupted before this render drew any frame: {where}/ and the {len(frames)} frames it holds "
                "(not known to be this render's) were left as they were.")  # fmt: skip
    if spec.pacing != "uniform" and not (where / "pacing.json").is_file():
        from .jobs import PACING_PARTIAL

        if (where / PACING_PARTIAL).is_file():  # what even pacing measured so far (jobs.pace_spec)
            return (f"interrupted while measuring the pacing; what it measured is kept in {where}/{PACING_PARTIAL}, "
                    "so run the same command again to measure the rest and render.")  # fmt: skip
        return "interrupted before the pacing measured anything; run the same command again to start."
    return "interrupted before any frame was finished; run the same command again to start."


def _pacing_line(p: Any) -> str:
    """What even pacing measured, in one line: how uneven uniform steps were, and (with
    relaxation) how even the paced frames came out."""
    unit = "CLIP angle" if p.metric == "clip" else "pixel change"
    parts = [f"even by {unit}, {p.decodes} decodes"]
    if p.coarse_stats:
        parts.append(f"uniform steps CV {p.coarse_stats['cv']:.2f}")
    if p.frame_stats:
        parts.append(f"paced frames CV {p.frame_stats['cv']:.2f}, largest step "
                     f"{p.frame_stats['max_jump_over_median']:.2f}x the median")  # fmt: skip
    return "; ".join(parts)


def _other_contents(out_dir: Path, mark: Path) -> list[Path]:
    """What a folder holds that a non-spec command (``variations --eta``, ``generate``) would
    replace or mix with: frames, a render's manifest and embeddings, a contact sheet (the user's own
    in a fresh folder), the command's own ``mark``."""
    from .render import MANIFEST

    named = (out_dir / MANIFEST, out_dir / "embeddings.npy", out_dir / "contact_sheet.png", mark)
    return [*sorted(out_dir.glob("frame_*.png")), *[p for p in named if p.is_file()]]


def _refuse_other(out_dir: Path, old: list[Path], held: str, why: str = "") -> ArgumentError:
    """The error for a folder holding ``old`` (``held``: "another render", "other pictures"; ``why``:
    what differs, from :func:`_settings_change`)."""
    what = [f"{sum(p.name.startswith('frame_') for p in old)} frames", *(p.name for p in old if not p.name.startswith("frame_"))]
    return ArgumentError(f"{out_dir} already holds {held} ({', '.join(what)}{why}). Choose another --out-dir or --name, "
                         "or pass --overwrite to replace it.")  # fmt: skip


def _settings_change(was: Any, now: dict[str, Any], keys: Any = None) -> str:
    """How a folder's recorded settings (``was``, generate.json's) differ from ``now``, for a
    refusal: ``"; of other settings: steps 25 -> 10"`` (at most four; "" where not known). A
    refusal named no setting, so a rerun with one flag changed could not tell which."""
    if not isinstance(was, dict):
        return ""

    def short(k: str, v: Any) -> str:
        if isinstance(v, dict):
            return "another" if k in ("decoder", "prior") else "other"
        text = ("the preset's default" if k in ("steps", "guidance_scale") else "none") if v is None else repr(v)
        return text if len(text) <= 40 else text[:37] + "..."

    keys = [k for k in (keys or sorted(set(was) | set(now))) if k != "num" and was.get(k) != now.get(k)]
    parts = [f"the {k}" if isinstance(was.get(k), dict) or isinstance(now.get(k), dict) else
             f"{k} {short(k, was.get(k))} -> {short(k, now.get(k))}" for k in keys[:4]]  # fmt: skip
    return f"; of other settings: {'; '.join(parts)}" if parts else ""


def _refuse_what_the_preset_cannot(preset: str, refine: int | None) -> None:
    """``variations --eta`` with a preset whose decoder cannot invert, sample with eta or refine
    (``--invert-refine``): refused before any model loads where the preset tells
    (:func:`latentlab.presets.decoder_can`), as :func:`latentlab.variations` refuses it once loaded."""
    from .decoders.base import no_refine_reason
    from .edit import no_inverted_variations_reason
    from .presets import _decoder_class, decoder_can, get_preset

    cls = _decoder_class(preset)
    if cls is None:  # a builder of the user's: its decoder tells once loaded
        return
    if decoder_can(preset, "invert") is False or decoder_can(preset, "eta") is False:
        raise ArgumentError(no_inverted_variations_reason(cls.__name__))
    if refine and decoder_can(preset, "refine") is False:
        raise ArgumentError(no_refine_reason(cls.__name__, get_preset(preset).name))


def _inverted_variations(args: argparse.Namespace, spec_dict: dict[str, Any]) -> int:
    with contextlib.ExitStack() as stack:  # holds the folder's lock once it is known
        return _inverted_variations_in(args, spec_dict, stack)


def _inverted_variations_in(args: argparse.Namespace, spec_dict: dict[str, Any], stack: Any) -> int:
    """``variations --eta``: n variations around the image's DDIM-inverted noise (not resumable:
    decoded in batches of the decoder's default size, written when all are done). ``spec_dict`` is what plain
    ``variations`` would render: the output options are checked against it before any work."""
    import latentlab as ll

    from .jobs import check_can_create, contact_sheet_of, slug, video_path
    from .spec import load_spec
    from .video import check_gif_fps, check_video_writer, check_webp_length, load_image, save_image, write_video

    if not 0 < args.eta <= 1:
        raise ll.ArgumentError(f"--eta must be in (0, 1], got {args.eta}.")
    for flag, value in (("--save-spec", args.save_spec), ("--batch-size", args.batch_size)):
        if value is not None:
            raise ll.ArgumentError(
                f"variations --eta takes no {flag}: it is not a spec render (no spec to save; it decodes the "
                f"variations in batches of the decoder's default size). Drop {flag}, or drop --eta for variations from "
                "rerolled noise."
            )
    _check_output_format(args)
    out = load_spec(spec_dict, **_overrides(args))  # fps, format, size, holds: checked as any render's
    fmt = Path(args.output).suffix.lower().lstrip(".") if args.output else out.format
    if fmt not in ("mp4", "gif", "webp"):
        raise ll.ArgumentError(f"-o {args.output} must end in .mp4, .gif or .webp.")
    check_gif_fps(out.fps, fmt, hold_first=out.hold_first, hold_last=out.hold_last)
    check_webp_length(args.num, out.fps, fmt, hold_first=out.hold_first, hold_last=out.hold_last, pingpong=out.pingpong)
    check_video_writer(fmt)  # an mp4 without ffmpeg: said before any decode, not after
    preset = args.preset or "mini"
    decoder_options = _decoder_options(preset, args)  # before any model loads
    _check_load_flags(preset, args)
    out_dir = Path(args.out_dir) if args.out_dir else Path("renders") / slug(args.name or f"{Path(args.image).stem}-variations-eta{args.eta:g}")
    mark = out_dir / "variations.json"  # says the folder holds an earlier `variations --eta`, replaced freely
    check_can_create(out_dir, "--out-dir")
    from .render import MANIFEST, _write_json, folder_lock, temp_path

    stack.enter_context(folder_lock(out_dir, "--out-dir"))  # before looking at it: no other render changes it now
    args.writing = out_dir  # for the message of a full disk
    for p in out_dir.glob(".variations.*.tmp"):  # the new set of a run killed before it was swapped in
        if re.fullmatch(r"\.variations\.[0-9a-f]{8}\.tmp", p.name) and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
    old = _other_contents(out_dir, mark)
    if old and not mark.is_file() and not args.overwrite:  # never mix in another render's frames; refused before any work
        untracked = not any(p.name in (MANIFEST, "embeddings.npy") for p in old) and any(
            p.name.startswith("frame_") for p in old)  # (frames and maybe a sheet, but no record of them)
        raise _refuse_other(out_dir, old, "frames with no variations.json, the record of an --eta run (an --eta run "
                            "of a latentlab before 2026-12-05 kept none; or another program's)" if untracked
                            else "other pictures" if not any(p.name in (MANIFEST, "embeddings.npy") for p in old)
                            else "another render")  # fmt: skip
    if args.output:
        if user_path(args.output).is_dir():  # refused before any decoding, as render_spec does
            raise ArgumentError(f"-o {args.output} is a folder; give the video a file name, e.g. -o variations.gif.")
        check_can_create(user_path(args.output).parent, f"the folder of -o {args.output}")
    video = Path(args.output) if args.output else video_path(out_dir, fmt)
    if not args.output and video.is_dir():  # the default video's name taken by a folder: said after the decode
        raise ArgumentError(f"the video {str(video)!r} would replace a folder of that name; give the video a file "
                            f"name with -o, e.g. -o variations.{fmt}, or choose another --out-dir or --name.")  # fmt: skip
    from .jobs import _record_video, _refuse_unrecorded_video

    _refuse_unrecorded_video(video, out_dir, args.overwrite, mark.name)  # not a video of the user's, or of another render
    from .jobs import _refuse_pictures_it_writes

    _refuse_pictures_it_writes(out, out_dir, video)  # one of the frames the swap replaces, or the video
    image = load_image(args.image)
    _refuse_what_the_preset_cannot(preset, args.invert_refine)
    load, offload = _load_options(args)
    enc = ll.create_encoder(preset, device=args.device, **load)
    dec = ll.create_decoder(preset, device=args.device, **load, **offload, **decoder_options)
    settings = {"image": str(Path(args.image).resolve()), "preset": preset, "num": args.num, "eta": args.eta,
                "seed": args.seed or 0, "steps": args.steps, "guidance_scale": args.guidance_scale,
                "invert_refine": args.invert_refine}  # fmt: skip
    # The new set is written into a folder of its own inside out_dir and swapped in only when
    # complete: an interruption before the swap leaves the earlier set as it was (it was deleted
    # first, and the rerun then refused its leftovers), and the swap itself is not interrupted.
    stage = temp_path(out_dir / "variations")
    names = [f"frame_{k:05d}.png" for k in range(args.num)]
    try:
        try:
            frames = ll.variations(dec, enc.encode_image([image]), image=image, n=args.num, mode="inverted", eta=args.eta,
                                   seed=args.seed or 0, steps=args.steps, guidance_scale=args.guidance_scale,
                                   refine=args.invert_refine, progress=not args.quiet)  # fmt: skip
            stage.mkdir()
            for name, frame in zip(names, frames):
                save_image(frame, stage / name)
            _write_json(stage / mark.name, settings)
        except KeyboardInterrupt:
            print(f"\ninterrupted: nothing was replaced ({out_dir}/ is as it was); variations --eta swaps in its "
                  "frames when all are written, so run it again to start over.", file=sys.stderr)  # fmt: skip
            return 130
        with _signals_held() as held:
            # the new mark first, so that even a kill (SIGKILL) in these few renames leaves a folder
            # the rerun replaces freely (put in last, a first run's frames cut short there were
            # refused as frames without it)
            os.replace(stage / mark.name, mark)
            for p in [*old, out_dir / "contact_sheet.png"]:  # the earlier set, and what was made of it
                if p != mark and p.name not in names:
                    p.unlink(missing_ok=True)
            for name in names:
                os.replace(stage / name, out_dir / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    args.swapped = True  # (for the message of a full disk)
    try:
        _deliver(held)  # a Ctrl-C or kill held back during the swap: now, with the new set in place
        from .video import remove_stale_temps

        remove_stale_temps(video)  # partial videos of a run killed while encoding
        _record_video(Path(video), out_dir, pending=True)  # a write cut short before its record stays this run's
        video = write_video(frames, video, fps=out.fps, hold_first=out.hold_first, hold_last=out.hold_last,
                            pingpong=out.pingpong, size=out.size, progress=not args.quiet)  # fmt: skip
        _record_video(Path(video), out_dir)
        sheet = save_image(contact_sheet_of(frames, out.size), out_dir / "contact_sheet.png")
    except KeyboardInterrupt:
        print(f"\ninterrupted: the new variations are in {out_dir}/ (variations.json), but the video or the contact "
              "sheet was not written; run the same command again to write them (it decodes again).", file=sys.stderr)  # fmt: skip
        return 130
    print(f"video:         {video}")
    print(f"contact sheet: {sheet}")
    print(f"frames:        {out_dir}/ ({len(frames)} variations around the inverted noise, eta {args.eta})")
    return 0


def _kept(args: argparse.Namespace) -> str:
    """What a command stopped by an error (a full disk, no memory left) kept, for its message."""
    if args.command == "generate":
        return "finished pictures are kept"
    if args.command == "variations" and args.eta is not None:  # swapped in whole (or not at all)
        return ("the new variations are in place; the video or contact sheet was not written"
                if getattr(args, "swapped", False) else "the earlier variations stay until the new set is complete")  # fmt: skip
    return "finished frames are kept"


@contextlib.contextmanager
def _signals_held() -> Iterator[list[int]]:
    """Ctrl-C (SIGINT) and SIGTERM held back in the block, for a few renames that must happen all
    or none; it yields the list of the signals received meanwhile, for :func:`_deliver` once the
    block is done. (Only the main thread can set handlers: elsewhere the block runs as it is.)"""
    import signal
    import threading

    held: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    previous = {s: signal.signal(s, lambda signum, frame: held.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield held
    finally:
        for s, handler in previous.items():  # (None: a handler not set from Python; the default stands in)
            signal.signal(s, signal.SIG_DFL if handler is None else handler)


def _deliver(held: list[int]) -> None:
    """The signals :func:`_signals_held` held back, raised now (a KeyboardInterrupt, as they were meant to be)."""
    import signal

    for s in sorted(set(held), key=lambda s: s != signal.SIGTERM):  # SIGTERM first: the exit status says it
        signal.raise_signal(s)


def _generate(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:  # holds the folder's lock once it is known
        return _generate_in(args, stack)


def _generate_in(args: argparse.Namespace, stack: Any) -> int:
    """``generate``: ``ll.generate`` batch by batch, each picture written as soon as it is drawn;
    a folder whose ``generate.json`` holds the same settings is resumed (only missing pictures
    are drawn), any other contents are refused unless ``--overwrite``."""
    import numpy as np

    import latentlab as ll

    from .jobs import check_can_create, contact_sheet_of, slug
    from .video import save_image

    if args.num < 1:
        raise ll.ArgumentError(f"--num must be at least 1, got {args.num}.")
    if args.prompt[:5].lower() == "text:":  # (as the other verbs' keyframes write a caption: embedded with it before)
        import warnings

        warnings.warn(f"generate's prompt is a caption already: drawing {args.prompt[5:]!r}, without 'text:'.",
                      UserWarning, stacklevel=1)  # fmt: skip
        args.prompt = args.prompt[5:]
    from .explore import IMAGE_SUFFIXES

    try:
        names_picture = Path(args.prompt).suffix.lower() in IMAGE_SUFFIXES and Path(args.prompt).is_file()
    except (OSError, ValueError):  # a long prompt is no file name (ENAMETOOLONG, not False, from is_file)
        names_picture = False
    if names_picture:
        import warnings

        warnings.warn(f"the prompt {args.prompt!r} is a picture file, but generate draws pictures of the prompt's words; "
                      f"for pictures like that picture, run `latentlab variations {args.prompt}`.", UserWarning,
                      stacklevel=1)  # fmt: skip
    if not args.prompt.strip():
        raise ll.ArgumentError("the prompt is empty; give a caption, e.g. 'a red circle above a blue square'.")
    batch = 8 if args.batch_size is None else args.batch_size
    if batch < 1:
        raise ll.ArgumentError(f"--batch-size must be at least 1, got {batch}.")
    if args.size is not None and not 8 <= args.size <= 4096:
        raise ll.ArgumentError(f"--size must be in [8, 4096] (as a spec's size), got {args.size}.")
    from .spec import MAX_STEPS

    if args.steps is not None and not 1 <= args.steps <= MAX_STEPS:  # (before the models load, as a spec's steps)
        raise ll.ArgumentError(f"--steps must be in [1, {MAX_STEPS}] (the training timesteps of the samplers "
                               f"latentlab loads), got {args.steps}.")  # fmt: skip
    if args.guidance_scale is not None and not (math.isfinite(args.guidance_scale) and args.guidance_scale >= 0):
        raise ll.ArgumentError(f"--guidance must be a finite number >= 0, got {args.guidance_scale}.")
    seed = args.seed or 0
    if not -(2**63) <= seed < 2**63:
        raise ll.ArgumentError(f"--seed must be in [-2**63, 2**63 - 1] (picture k uses seed + k, so with -n N at most "
                               f"2**63 - N), got {seed}.")  # ("[-2**63, 2**63 - N)" left out 2**63 - N, which is taken)
    if seed + args.num > 2**63:  # the last picture's seed past what a generator takes: said as both flags (it blamed --seed 0)
        below = 2**63 - args.num + 1
        fix = f"-n at most {2**63 - seed}" + (f", or a --seed below {below}" if below > -(2**63) else "")
        raise ll.ArgumentError(f"-n {args.num} from --seed {seed} gives picture {args.num - 1} the seed "
                               f"{seed + args.num - 1}, past 2**63 - 1 (picture k uses seed + k); use {fix}.")  # fmt: skip
    preset = "mini" if args.preset is None else args.preset  # (an empty --preset is refused, as by the other verbs)
    if ll.get_preset(preset).prior is None:
        raise ll.ArgumentError(
            f"preset {preset!r} has no prior, so it cannot draw from text. Choose a preset whose `prior` column "
            "in `latentlab presets` says yes."
        )
    decoder_options = _decoder_options(preset, args)  # before any model loads
    _check_load_flags(preset, args)
    out_dir = Path(args.out_dir) if args.out_dir else Path("renders") / slug(args.name or args.prompt)
    mark = out_dir / "generate.json"
    check_can_create(out_dir, "--out-dir")
    from .render import _read_json, folder_lock

    stack.enter_context(folder_lock(out_dir, "--out-dir"))  # before looking at it: no other render changes it now
    args.writing = out_dir  # for the message of a full disk
    old = _other_contents(out_dir, mark)
    if old == [mark]:  # settings of a run that drew no picture (stopped early): nothing to keep
        old = []
    was: Any = None
    if mark.is_file():
        was = _read_json(mark)  # None: not JSON (empty, cut short, or nested thousands deep)
        drawn = sum(p.name.startswith("frame_") for p in old)
        if not isinstance(was, dict) and drawn and not args.overwrite:  # said as what it is, not as "other pictures"
            raise ArgumentError(
                f"{mark} is unreadable (empty or damaged), so the {drawn} pictures in {out_dir} cannot be matched "
                "to these settings. Pass --overwrite to draw them all again, or choose another --out-dir or --name."
            )
    given = {"prompt": args.prompt, "preset": preset, "seed": seed, "steps": args.steps, "guidance_scale": args.guidance_scale}
    # steps and guidance are compared once the decoder says its defaults (unset and the default alike)
    resumable = isinstance(was, dict) and all(was.get(k) == given[k] for k in ("prompt", "preset", "seed"))
    if resumable and any(was.get(k) is not None and given[k] is not None and was.get(k) != given[k]
                         for k in ("steps", "guidance_scale")):  # fmt: skip
        resumable = False  # both written out and different: refused before the models load
    if old and not resumable and not args.overwrite:  # refused before the models load
        # steps and guidance only where both runs set them (one unset may be the other's value: the decoder's default)
        keys = [k for k in given if k in ("prompt", "preset", "seed")
                or (given[k] is not None and isinstance(was, dict) and was.get(k) is not None)]  # fmt: skip
        raise _refuse_other(out_dir, old, "other pictures", _settings_change(was, given, keys))
    from .jobs import create_prior_offloaded

    load, offload = _load_options(args)
    enc = ll.create_encoder(preset, device=args.device, **load)
    prior = create_prior_offloaded(preset, device=args.device, **load, **offload)
    dec = ll.create_decoder(preset, device=args.device, **load, **offload, **decoder_options)
    from .render import sampling_settings

    if resumable:
        try:
            same = sampling_settings(was.get("steps"), was.get("guidance_scale"), dec) == sampling_settings(
                args.steps, args.guidance_scale, dec)  # fmt: skip
        except LatentlabError:  # a generate.json edited by hand
            same = False
        if same:  # the same pictures, the settings written another way: as now written
            was = {**was, "steps": args.steps, "guidance_scale": args.guidance_scale}
        else:
            resumable = False
    captions = bool(args.captions and dec.reads_captions)
    # (marks of step counts whose pictures a fix changed, e.g. mini at 61 steps: older pictures are not kept)
    marks = {k: v for k, v in sampling_settings(args.steps, args.guidance_scale, dec).items() if k not in ("steps", "guidance_scale")}
    settings = {**given, **marks, "decoder_reads_prompt": captions, "decoder": dec.describe(), "prior": prior.describe()}
    if captions and getattr(dec, "expert_sha256", None) is not None:  # the layout expert draws with the captions
        settings["expert_sha256"] = dec.expert_sha256
    settings = json.loads(json.dumps(settings))  # as generate.json holds it (tuples as lists)
    if old and not (resumable and {k: v for k, v in was.items() if k != "num"} == _as_recorded_then(settings, was)):
        if not args.overwrite:  # same prompt and seed, but another model or --no-captions
            raise _refuse_other(out_dir, old, "other pictures", _settings_change(was, _as_recorded_then(settings, was)))
        for p in old:
            p.unlink()
    frame_path = out_dir.joinpath("frame_{:05d}.png").as_posix()
    out_dir.mkdir(parents=True, exist_ok=True)
    from .render import _check_one_size, _frame_shape, _load_png, _write_json

    _write_json(mark, {**settings, "num": args.num})  # atomic: a kill never leaves half a file, which refused the rerun
    # a picture that is not this decoder's (truncated, damaged, of another size or mode) is drawn
    # again, as a render's frame is: it stopped the rerun ("cannot read") or the contact sheet
    expected = _frame_shape(None, dec)
    pictures: dict[int, Any] = {}
    for k in range(args.num):
        if Path(frame_path.format(k)).is_file():
            image = _load_png(Path(frame_path.format(k)), expected)
            if image is not None:
                pictures[k] = image
    todo = [k for k in range(args.num) if k not in pictures]
    calls: list[list[int]] = []  # runs of consecutive missing pictures, at most --batch-size each (picture k: seed + k)
    for k in todo:
        if calls and k == calls[-1][-1] + 1 and len(calls[-1]) < batch:
            calls[-1].append(k)
        else:
            calls.append([k])
    bar = None
    if calls and not args.quiet:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="generating", unit="picture")
    try:
        for ks in calls:
            frames = ll.generate(enc, prior, dec, args.prompt, n=len(ks), seed=seed + ks[0], steps=args.steps,
                                 guidance_scale=args.guidance_scale, captions=captions, batch_size=len(ks))  # fmt: skip
            for k, frame in zip(ks, frames):
                save_image(frame, frame_path.format(k))
                pictures[k] = frame
            if bar is not None:
                bar.update(len(ks))
    except KeyboardInterrupt:
        if pictures:
            print(f"\ninterrupted: finished pictures are kept in {out_dir}/; run the same command again to draw the rest.",
                  file=sys.stderr)  # fmt: skip
        else:
            print("\ninterrupted before any picture was finished; run the same command again to start.", file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()
    kept = [pictures[k] for k in range(args.num)]
    _check_one_size(kept, out_dir)  # (only where the decoder says no size: kept pictures of another size)
    frames = np.stack(kept)
    sheet = save_image(contact_sheet_of(frames, args.size), out_dir / "contact_sheet.png")
    how = ("the decoder read the prompt too" if captions
           else "drawn from the prior's embeddings alone" + ("" if dec.reads_captions else ": this decoder reads no captions"))
    print(f"contact sheet: {sheet}")
    again = f", {args.num - len(todo)} of them kept from an earlier run" if len(todo) < args.num else ""
    print(f"pictures:      {out_dir}/ ({args.num}, seeds {seed}-{seed + args.num - 1}{again}; {how})")
    more = sorted(int(p.stem[6:]) for p in out_dir.glob("frame_*.png") if p.stem[6:].isdigit() and int(p.stem[6:]) >= args.num)
    if more:  # an earlier, larger -n: its pictures are the same prompt and seeds, kept (a larger -n reuses them)
        print(f"               (also there: {len(more)} more from an earlier run with a larger -n, "
              f"frame_{more[0]:05d}.png to frame_{more[-1]:05d}.png)")  # fmt: skip
    return 0


def _as_recorded_then(settings: dict[str, Any], was: dict[str, Any]) -> dict[str, Any]:
    """``settings`` without the model hashes a generate.json written before they were recorded
    (2026-12-07) lacks: such a folder resumes as it did then, a newer one only with the same weights."""
    out = dict(settings)
    if "expert_sha256" not in was:
        out.pop("expert_sha256", None)
    if isinstance(out.get("prior"), dict) and isinstance(was.get("prior"), dict) and "weights_sha256" not in was["prior"]:
        out["prior"] = {k: v for k, v in out["prior"].items() if k != "weights_sha256"}
    return out


def _presets(args: argparse.Namespace) -> int:
    from .presets import PRESETS, load_plugins, weights_status

    load_plugins()  # the presets installed packages offer
    rows = []
    for p in PRESETS.values():
        rows.append(
            {
                "name": p.name,
                "space": p.space,
                "dim": p.dim,
                "resolution": p.resolution,
                "prior": p.prior is not None,
                "licence": p.licence,
                "download_gb": p.download_gb,
                "gpu_memory_gb": p.gpu_memory_gb,
                "weights": weights_status(p),
                "description": p.description,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    head = ("preset", "CLIP space", "dim", "px", "prior", "download", "GPU mem", "weights", "licence")
    table = [
        (
            r["name"], r["space"], str(r["dim"]), str(r["resolution"]), "yes" if r["prior"] else "no",
            f"{r['download_gb']:.1f} GB" if r["download_gb"] else "-",
            f"{r['gpu_memory_gb']:.0f} GB" if r["gpu_memory_gb"] else "-",
            r["weights"], r["licence"],
        )  # fmt: skip
        for r in rows
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *table)]
    for line in (head, *table):
        print("  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip())
    return 0


def _with_flags(message: str, parser: argparse.ArgumentParser, command: str, args: argparse.Namespace | None = None) -> str:
    """A spec error names a spec field ('hold_first'); on the command line, name its flag too
    (for ``render``, only a flag given: the other fields come from the spec file)."""
    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    verb = sub.choices.get(command) if sub is not None else None
    if verb is None:
        return message
    for action in verb._actions:
        quoted = f"'{action.dest}'"
        if command == "render" and getattr(args, action.dest, None) is None:
            continue  # the file's field, which no flag set ("'easing' (--easing)" sent the user to a flag never typed)
        if (action.dest in SPEC_KEYS and quoted in message and action.option_strings
                and f"(CLI: {action.option_strings[-1]})" not in message):  # fmt: skip
            message = message.replace(quoted, f"{quoted} ({action.option_strings[-1]})", 1)
    if command == "morph" and "text_diff.theta " in message:
        message = message.replace("text_diff.theta ", "text_diff.theta (--theta) ", 1)
    if "pass checkpoint=" in message:  # advice with no flag behind it: said where it applies
        message += " (checkpoint= is an option of ll.create_encoder in Python; the command line has none.)"
    # render: a spec file's steps or invert_refine, which no flag set, said as the field, not as a flag never typed
    if command != "render" or getattr(args, "steps", None) is not None:
        # a decoder's own limit on steps, under a spec's 1000 (Stable unCLIP's DDIM takes 999): said as the flag
        message = re.sub(r"(?<![-\w'])steps must be <= ", "--steps must be <= ", message)
    if command == "render" and getattr(args, "invert_refine", None) is None:
        message = message.replace("refine: decoder ", "'invert_refine': decoder ")  # (not "--invert-refine: decoder")
    # the library's advice in Python terms, said as the flag
    return _flag_advice(message)


#: the library's advice in Python terms -> the same on the command line
_ADVICE_AS_FLAGS = (
    ("use device='cpu'", "use --device cpu"),
    ("device must be a torch device such as 'cpu' or 'cuda:0', got", "--device must be a torch device such as cpu or cuda:0, got"),
    ("use dtype=torch.float16", "use --dtype float16"),
    ("load the decoder with cpu_offload=True", "load the decoder with --cpu-offload"),
    ("pass refine=0", "pass --invert-refine 0"),
    ("refine: decoder ", "--invert-refine: decoder "),  # (Decoder.invert's keyword, which no flag is called)
    ("mode='inverted' needs a decoder", "variations --eta needs a decoder"),  # (ll.variations' keyword)
    ("Use mode='reroll' (CLI: variations without --eta)", "Drop --eta for variations from rerolled noise"),
    ("cpu_offload=True needs an accelerator device, e.g. device='cuda'; got device='cpu'",
     "--cpu-offload needs an accelerator device, e.g. --device cuda; got --device cpu"),
    ("dtype=torch.float16 is not supported on the CPU; use torch.float32 (the default)",
     "--dtype float16 is not supported on the CPU; use float32 (the default) or bfloat16"),
    ("Use dtype=torch.float32 on the CPU (or torch.bfloat16 for half the memory), or float16 with device='cuda'",
     "Use --dtype float32 on the CPU (or bfloat16 for half the memory), or float16 with --device cuda"),
    ("overwrite=True (CLI: --overwrite)", "--overwrite"),
    ("(CLI: --out-dir or --name)", "(--out-dir or --name)"),
    ("(output=, CLI: -o)", "(-o)"),
)

#: the command line's verbs (the first of them in the arguments is the one run)
_VERBS = ("presets", "morph", "interpolate", "variations", "generate", "render")

#: the contact sheet's advice on the command line, where no flag sets max_frames: generate's and
#: variations --eta's sheets show every picture; the others' (render_spec's) at most 12 frames
_SHEET_ADVICE = ("Fix: show fewer frames, e.g. max_frames=64.",
                 "Fix: ask for fewer pictures (-n) or smaller ones (--size): the sheet shows every picture.",
                 "Fix: make the frames smaller (--size): the sheet shows at most 12 of them.")  # fmt: skip


def _flag_advice(message: str, command: str | None = None) -> str:
    """``message`` with the library's advice said as flags; ``command``: the verb it is said for
    (the contact sheet's advice differs: a render's sheet has no -n, and shows at most 12 frames)."""
    for python, flag in _ADVICE_AS_FLAGS:
        message = message.replace(python, flag)
    every = command == "generate" or (command == "variations" and any(a.split("=")[0] == "--eta" for a in _ARGV))
    sheet = _SHEET_ADVICE[1] if every or command is None else _SHEET_ADVICE[2]
    message = message.replace(_SHEET_ADVICE[0], sheet)
    for option, flag in (("cpu_offload", "--cpu-offload"), ("dtype", "--dtype")):  # a part that takes no such option
        if f"takes no {option}=" in message:
            message = message.replace(f"takes no {option}=", f"takes no {option}= ({flag})", 1)
            message = re.sub(r"Drop it from create_\w+\(\)\.", f"Drop {flag}.", message)
    if "scheduler='dpm++'" in message:  # a loading option with no flag behind it: said where it applies
        message = message.replace("scheduler='dpm++'", "scheduler='dpm++' (in Python: ll.create_decoder(preset, "
                                  "scheduler='dpm++'); the command line has no flag)", 1)  # fmt: skip
    return message


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def main(argv: Sequence[str] | None = None) -> int:
    import warnings

    with warnings.catch_warnings():  # restored on return: main() may be called from Python
        shown = warnings.showwarning

        def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
            """A user warning on the command line: one line naming latentlab, not a source file and
            line; the others (a library's deprecations, shown only where filters ask) as Python shows them."""
            if issubclass(category, (UserWarning, RuntimeWarning)) and str(filename).startswith(_PACKAGE_DIR):
                # latentlab's own (a RuntimeWarning: resuming after an upgrade, a cache it could not write)
                # (set by _main before any work; a verb's name, not --threads's value given before it)
                verb = next((a for a in _ARGV if a in _VERBS), None)
                print(f"latentlab: warning: {_flag_advice(str(message), verb)}", file=sys.stderr if file is None else file)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show

        def unwritten(failed: dict[str, OSError | None]) -> bool:
            """Say that standard output could not be written, if so (a closed pipe, ``| head``, is not a failure)."""
            if failed.get("stdout") is None:
                return False
            print(f"latentlab: error: could not write to standard output ({failed['stdout'].strerror or failed['stdout']}); "
                  "the command itself finished.", file=sys.stderr)  # fmt: skip
            return True

        with _sigterm_interrupts() as stopped, _guarded_std_streams(argv is None) as failed:
            try:
                code = _main(argv, script=argv is None)
            except SystemExit as exc:  # argparse's own exit: --help and --version (0; said nothing to a full disk)
                if exc.code in (0, None) and unwritten(failed):
                    raise SystemExit(2) from None
                raise
        if code == 0 and unwritten(failed):
            code = 2
        return 143 if stopped and code == 130 else code  # 128 + SIGTERM, as a shell reports a killed command


@contextlib.contextmanager
def _guarded_std_streams(script: bool) -> Iterator[dict[str, OSError | None]]:
    """For the console script: standard output and error that cannot stop the command. A
    reader that goes away (``latentlab render s.toml 2>&1 | head``) made the progress bar's
    next write raise BrokenPipeError, which ended the render after its first frame with
    status 0; a full disk under ``> log`` was said to be the render folder's. Now a write that
    fails sends that stream to the null device (its file descriptor, so Python's own flush at
    exit stays quiet) and the work goes on; the dict it yields holds standard output's error,
    where it was not a closed pipe (``main`` says it and returns 2). Standard output also
    writes what its encoding cannot hold as escapes (a path in Japanese to a cp1252 console
    failed a finished render). Called from Python (``script`` false), the caller's streams are
    put back as they were, their descriptors and encoding untouched."""
    failed: dict[str, OSError | None] = {"stdout": None}
    saved = {}
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name, None)
        if stream is None:  # (pythonw: no console)
            continue
        if name == "stdout" and script:
            with contextlib.suppress(AttributeError, ValueError, OSError):
                stream.reconfigure(errors="backslashreplace")  # (stderr does so already)
        saved[name] = stream
        setattr(sys, name, _GuardedStream(stream, name, failed, script))
    try:
        yield failed
    finally:
        for name, stream in saved.items():
            setattr(sys, name, stream)  # (a failed one's descriptor is the null device's now)


class _GuardedStream:
    """A standard stream whose failed write or flush sends it to the null device instead of
    raising (see :func:`_guarded_std_streams`); everything else is the stream's own."""

    def __init__(self, stream: Any, name: str, failed: dict[str, OSError | None], script: bool) -> None:
        self._stream, self._name, self._failed, self._script = stream, name, failed, script

    def _fail(self, exc: OSError) -> None:
        import errno

        try:
            if not self._script:  # (the caller's descriptor stays as it is)
                raise ValueError
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._stream.fileno())
            os.close(null)
        except (OSError, ValueError, AttributeError):  # (no descriptor, or not ours: drop the writes)
            self._stream = open(os.devnull, "w")
        if self._name == "stdout" and exc.errno != errno.EPIPE and self._failed["stdout"] is None:
            self._failed["stdout"] = exc

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            self._fail(exc)
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            self._fail(exc)
            with contextlib.suppress(OSError, ValueError):
                self._stream.flush()  # (what was buffered goes to the null device now)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[list[int]]:
    """SIGTERM (``kill``, a scheduler stopping a job) raises KeyboardInterrupt, as Ctrl-C does, so
    the command says what it kept and its folder's lock is released (SIGTERM ended it silently);
    the list it yields says whether it came. The handler before is restored on return (main() may
    be called from Python), and only the main thread can set one: elsewhere nothing changes."""
    import signal
    import threading

    stopped: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield stopped
        return

    def stop(signum: int, frame: Any) -> None:
        stopped.append(signum)
        raise KeyboardInterrupt

    if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:  # ignored by whoever started us: it stays ignored
        yield stopped
        return
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield stopped
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _main(argv: Sequence[str] | None, script: bool = False) -> int:
    parser = build_parser()
    _ARGV[:] = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    if extra:  # said with the verb's usage, not the top-level one (which lists no verb's flags)
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        verb = sub.choices.get(args.command) if sub is not None and args.command else None
        (verb or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:  # a usage error: the help goes to stderr, as argparse's own errors do
        parser.print_help(sys.stderr)
        return 2
    try:
        with _torch_threads(args):  # torch's threads, set before any model loads
            _decode_argv_texts(args)
            _check_paths(args)
            if args.command == "presets":
                return _presets(args)
            if args.command == "morph":
                td: dict[str, Any] = {"to": args.to, "theta": args.theta}
                if args.source is not None:
                    td["from"] = args.source
                return _run_spec({"keyframes": [_keyframe(args.image), {"text_diff": td}]}, args)
            if args.command == "interpolate":
                if len(args.keyframes) < 2:
                    raise ArgumentError(
                        f"interpolate needs at least two keyframes (images or text:CAPTION), got {len(args.keyframes)}; "
                        "for one image, try `latentlab morph` or `latentlab variations`."
                    )
                return _run_spec({"keyframes": [_keyframe(k) for k in args.keyframes]}, args)
            if args.command == "variations":
                from .spec import MAX_FRAMES

                if not 2 <= args.num <= MAX_FRAMES + 1:  # (a render's frames + 1: past it, the spec blamed 'frames', num - 1)
                    raise ArgumentError(f"--num must be at least 2 for variations, and at most {MAX_FRAMES + 1}, got {args.num}.")
                if args.eta is not None and args.image.startswith("text:"):
                    raise ArgumentError(
                        f"variations --eta start from an image's inverted noise, so they need an image, got {args.image!r}. "
                        f"Drop --eta, or for pictures of a caption use `latentlab generate {args.image[5:]!r}`."
                    )
                kf = _keyframe(args.image)
                # a caption is named whole ("text:a red circle. small/blue" was named "blue"); a file by its stem
                stem = args.image if args.image.startswith("text:") else Path(args.image).stem
                spec = {"keyframes": [kf, dict(kf)], "frames": args.num - 1, "noise": "per-frame", "format": "gif", "fps": 2,
                        "name": f"{stem}-variations"}  # fmt: skip
                if args.eta is not None:
                    return _inverted_variations(args, spec)
                return _run_spec(spec, args)
            if args.command == "render":
                return _run_spec(args.spec, args)
            if args.command == "generate":
                return _generate(args)
    except KeyboardInterrupt:  # e.g. while models load; the verbs say what they kept when they were drawing
        print("\ninterrupted.", file=sys.stderr)
        return 130
    except LatentlabError as exc:
        print(f"latentlab: error: {_with_flags(str(exc), parser, args.command, args)}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:  # (a raw traceback, status 1, after perhaps an hour of frames)
        from .render import _is_oom

        if isinstance(exc, RuntimeError) and not _is_oom(exc):  # (torch's CPU allocator raises a RuntimeError)
            raise
        writing = getattr(args, "writing", None)
        kept = _kept(args)
        if writing and not (args.command == "variations" and args.eta is not None):
            none = "no picture was finished" if args.command == "generate" else "no frame was finished"
            kept = f"{kept} in {writing}/" if any(Path(writing).glob("frame_*.png")) else none
        fewer = "-n" if args.command == "generate" else "fewer frames (--frames)"
        size = "" if args.command == "generate" else " a smaller --size,"
        print(f"latentlab: error: out of memory; {kept}. Run the same command again with{size} a smaller --batch-size, "
              f"or {fewer}, or with more memory free.", file=sys.stderr)  # fmt: skip
        return 2
    except UnicodeError as exc:  # a path or text this system's encoding cannot hold (a non-UTF-8 locale)
        encoding = sys.getfilesystemencoding()
        if encoding.lower().replace("-", "") == "utf8":
            raise  # (not the locale's doing: a fault to report with its traceback)
        print(f"latentlab: error: {exc.object[exc.start : exc.end]!r} cannot be used here: this system's encoding for "
              f"file names and text is {encoding} ({exc.reason}). Run under a UTF-8 locale (e.g. LANG=C.UTF-8), or with "
              "PYTHONUTF8=1, or name files and folders (--out-dir, --name, -o) in what it can hold.",
              file=sys.stderr)  # fmt: skip
        return 2
    except OSError as exc:  # the system refused: one line, as for any error, not a traceback
        import errno

        if is_disk_full(exc):
            # where, and that what was finished is kept (it said only "No space left on device.")
            writing = getattr(args, "writing", None)  # the folder the command writes, once it knows it
            if exc.filename and (not writing or Path(writing).resolve() not in Path(exc.filename).resolve().parents):
                writing = None  # a file elsewhere (-o in another folder): named itself
            where = f" (writing {writing}/)" if writing else f" (writing {exc.filename})" if exc.filename else ""
            full = "no space left on the device" if exc.errno == errno.ENOSPC else "the disk quota is used up"
            print(f"latentlab: error: {full}{where}; {_kept(args)}: free space and run the same command again.",
                  file=sys.stderr)  # fmt: skip
            return 2
        where = f" {exc.filename!r}" if exc.filename else ""
        hint = " Check the path and its permissions." if is_path_error(exc) else ""
        print(f"latentlab: error: {exc.strerror or exc}{where}.{hint}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
