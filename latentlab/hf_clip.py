"""A model family's own transformers CLIP towers as a latentlab encoder (kind ``"hf_clip"``).

Some unCLIP families ship the exact CLIP towers their decoder and prior were trained with
as ``transformers`` models inside their repos, e.g. Kandinsky 2.2
(``kandinsky-community/kandinsky-2-2-prior``, subfolders ``image_encoder``, ``text_encoder``,
``tokenizer``, ``image_processor``) or Karlo (``kakaobrain/karlo-v1-alpha-image-variations``,
subfolders ``image_encoder``, ``feature_extractor``, ``text_encoder``, ``tokenizer``).
:class:`HFCLIPEncoder` wraps a ``CLIPVisionModelWithProjection`` + ``CLIPTextModelWithProjection``
+ ``CLIPImageProcessor`` + ``CLIPTokenizer`` behind the same interface as
:class:`latentlab.encoders.Encoder` (it *is* one: same input handling, embedding cache,
``describe()`` and ``fingerprint()``), so embeddings are float32 ``(n, d)`` CPU tensors,
unit-norm, tagged with the preset's space.

Which open_clip model reproduces these towers? The Kandinsky 2.2 towers are reported to be
LAION's CLIP ViT-bigG/14 (``laion/CLIP-ViT-bigG-14-laion2B-39B-b160k``, open_clip
``ViT-bigG-14`` / ``laion2b_s39b_b160k``; vision width 1664, 48 layers, 1280-d projection).
We could not verify offline that the weights are bit-identical (the repo configs are not in
the installed packages), so the ``kandinsky-2.2`` preset uses this wrapper over the family's
own files and a space name of its own. Karlo's towers are OpenAI CLIP ViT-L/14
(``openai/clip-vit-large-patch14``), which open_clip's ``ViT-L-14`` / ``openai`` reproduces.

Builders registered here (see :mod:`latentlab.presets`):

* ``"hf_clip"``: :meth:`HFCLIPEncoder.from_pretrained` with the spec's ``repo`` (and
  subfolder names) plus user keywords (``device``, ``dtype``, ``variant``, ``cache_dir``, ...);
* ``"hf_clip_tiny"``: :func:`tiny_hf_clip_towers`, tiny random towers built in-process.

>>> from latentlab.hf_clip import HFCLIPEncoder, tiny_hf_clip_towers
>>> enc = HFCLIPEncoder(*tiny_hf_clip_towers(dim=32, seed=0), name="t", space="tiny-hf")
>>> z = enc.encode_text(["a red cube", "a blue ball"])
>>> tuple(z.shape), round(float(z[0].norm()), 4)
((2, 32), 1.0)

The module also holds the loading helpers the Kandinsky and Karlo adapters share
(safetensors only, ``HF_HOME``/``HF_HUB_CACHE``/``HF_HUB_OFFLINE`` read at call time,
:class:`~latentlab.errors.ModelNotAvailableError` when weights are missing).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .encoders import EmbeddingCache, Encoder, _file_stat, _resolve_device, hub_cache_dir
from .errors import ArgumentError, ModelNotAvailableError, SpecError, as_path_text, check_bool, check_int, check_seed, from_an_import, user_path
from .presets import register_encoder_builder

__all__ = ["HFCLIPEncoder", "HFCLIPTowers", "tiny_hf_clip_towers", "hub_source"]

_TRUE = {"1", "on", "yes", "true", "y", "t"}


# ======================================================================================
# loading helpers shared by hf_clip, decoders.kandinsky and decoders.karlo
# ======================================================================================

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}  # fmt: skip


def as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """``torch.float32`` / ``float16`` / ``bfloat16`` (or their names) -> the torch dtype."""
    if isinstance(dtype, torch.dtype):
        if dtype in (torch.float32, torch.float16, torch.bfloat16):
            return dtype
    elif isinstance(dtype, str) and dtype.lower().removeprefix("torch.") in _DTYPES:
        return _DTYPES[dtype.lower().removeprefix("torch.")]
    raise ArgumentError(f"dtype must be torch.float32, torch.float16 or torch.bfloat16 (or 'fp16', ...), got {dtype!r}.")


def as_device(device: torch.device | str) -> torch.device:
    """A validated torch device; CUDA/MPS only when present (never chosen silently). One check for
    every model (:func:`latentlab.encoders._resolve_device`): 'meta', a missing CUDA or MPS, and a
    GPU index the machine does not have are refused before any weights are read."""
    return _resolve_device(device)


def warn_half_on_cpu(device: torch.device, dtype: torch.dtype, what: str) -> None:
    """Warn (``UserWarning``) when ``what`` (e.g. ``"the Kandinsky 2.2 decoder"``) is built to
    run in float16 on the CPU: it works, but torch's CPU kernels are slow in half precision
    (about 2x slower than float32 for the tiny unCLIP pipelines here) and diffusers itself
    says float16 pipelines cannot run on the CPU. Decoders and priors call it once, when built."""
    if torch.device(device).type == "cpu" and dtype == torch.float16:
        import warnings

        warnings.warn(
            f"{what} was built with dtype=float16 on the CPU, which is slow there (torch's CPU kernels are "
            "slower in float16 than in float32, about 2x on the tiny test pipelines; diffusers says float16 "
            "pipelines cannot run on the CPU). "
            "Use dtype=torch.float32 on the CPU (or torch.bfloat16 for half the memory), or float16 with device='cuda'.",
            UserWarning,
            stacklevel=3,
        )


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) as set *now*."""
    return any(os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def is_hub_id(text: str) -> bool:
    """Whether ``text`` has the form of a Hugging Face repo id, ``owner/name`` (the form every
    repo these loaders read has): two non-empty parts that the Hub accepts (letters, digits,
    ``-``, ``_`` and ``.``, neither starting with a dot, no ``--`` or ``..``; huggingface_hub's
    own check), so a relative path such as ``"my models/karlo"`` or ``"C:/models"`` is a folder."""
    parts = text.split("/")
    if not (len(parts) == 2 and all(p and not p.startswith(".") for p in parts)):
        return False
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def not_a_folder_error(src: str, what: str, example: str) -> ModelNotAvailableError:
    """The error for a ``repo_or_dir`` that is neither an existing folder nor an ``owner/name``
    repo id: a file (a single-file checkpoint, which these loaders do not read), a path that
    does not exist, or a bare name (a mistyped folder, not a Hub id)."""
    path = user_path(src)
    fetch = f"`hf download {example} --local-dir <folder>`"
    if path.is_file():
        return ModelNotAvailableError(
            f"{src!r} is a file, not a folder: the {what} is not loaded from single-file checkpoints "
            "(.ckpt / .safetensors / .bin). It needs a diffusers-layout folder (what save_pretrained writes: "
            f"model_index.json or config files, and one subfolder per component), e.g. {fetch}; pass that folder "
            f"as repo_or_dir, or the Hugging Face repo id itself (e.g. {example!r})."
        )
    if "/" not in src.replace("\\", "/") and not src.startswith(("~", ".")):
        return ModelNotAvailableError(
            f"no local folder {src!r} exists (looked in {str(Path.cwd())!r}), and {src!r} is not a Hugging Face repo "
            f"id either (those are 'owner/name', e.g. {example!r}). Check the folder's name and path, or pass the "
            "repo id."
        )
    return ModelNotAvailableError(
        f"no {what} folder at {src!r} (it does not exist). Pass a folder saved with save_pretrained "
        f"(or downloaded with {fetch}), or a Hugging Face repo id such as {example!r}."
    )


def hub_source(repo_or_dir: str | os.PathLike[str], what: str, example: str, arg: str = "repo_or_dir") -> tuple[str, bool]:
    """``(source, is_local_dir)`` for ``repo_or_dir`` (the argument ``arg``); a clear error for
    a missing folder, a file (single-file checkpoints are not loaded), a string that is neither
    a folder nor an ``owner/name`` repo id, or a value that is no path at all."""
    src = as_path_text(repo_or_dir, arg, "a folder path or a Hugging Face repo id")
    path = user_path(src)
    if path.is_dir():
        return str(path), True
    if path.exists() or src.startswith((".", "/", "~", "\\")) or not is_hub_id(src):
        raise not_a_folder_error(src, what, example)
    return src, False


def load_kwargs(
    *,
    is_dir: bool,
    dtype: torch.dtype,
    variant: str | None,
    cache_dir: str | os.PathLike[str] | None,
    local_files_only: bool | None,
    revision: str | None,
    dtype_key: str = "torch_dtype",
) -> dict[str, Any]:
    """``from_pretrained`` keywords: safetensors only, the dtype, and for a repo id the cache,
    revision and ``local_files_only`` (default: ``$HF_HUB_OFFLINE``)."""
    if local_files_only is not None:  # (bool("no") is True: downloads were turned off by local_files_only="no")
        local_files_only = check_bool(local_files_only, "local_files_only")
    kw: dict[str, Any] = {"use_safetensors": True, dtype_key: dtype}
    if variant is not None:
        kw["variant"] = variant
    if not is_dir:
        kw["cache_dir"] = hub_cache_dir(cache_dir)
        kw["local_files_only"] = hub_offline() if local_files_only is None else local_files_only
        if revision is not None:
            kw["revision"] = revision
    return kw


def transformers_dtype_key() -> str:
    """``dtype`` on transformers >= 4.56 (which deprecates ``torch_dtype``), else ``torch_dtype``."""
    import transformers

    try:
        major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    except ValueError:  # pragma: no cover  (a dev version string)
        return "dtype"
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def diffusers_dtype_key() -> str:
    """``dtype`` on diffusers versions that deprecate ``torch_dtype``, else ``torch_dtype``."""
    try:
        from diffusers.utils import deprecation_utils

        return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"
    except ImportError:  # pragma: no cover
        return "torch_dtype"


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (raised by a ``from_pretrained``) means "the files are not here"; not so a
    package that fails to import as the model's classes load (a torchvision built for another torch
    raises an OSError as it loads: it was said as files to download again)."""
    if from_an_import(exc):
        return False
    if isinstance(exc, (OSError, ConnectionError, TimeoutError)):
        return True
    try:
        from huggingface_hub import errors as hf_errors

        if isinstance(exc, (hf_errors.EntryNotFoundError, hf_errors.LocalEntryNotFoundError)):
            return True
    except (ImportError, AttributeError):  # pragma: no cover
        pass
    mod = type(exc).__module__ or ""
    if mod.split(".")[0] in ("httpx", "requests", "urllib3"):
        return True
    if type(exc).__name__ == "SafetensorError" or isinstance(exc, json.JSONDecodeError):
        return True  # a truncated or corrupt weights / tokenizer file (a download cut short): get it again
    msg = str(exc).lower()
    if isinstance(exc, RuntimeError) and ("size mismatch" in msg or "ignore_mismatched_sizes" in msg):
        return True  # the files hold weights of other shapes (another model, or no config.json beside them)
    return isinstance(exc, ValueError) and ("safetensors" in msg or "variant" in msg or "no file named" in msg)


def unavailable_error(
    what: str,
    src: str,
    *,
    is_dir: bool,
    needs: str,
    kwargs: dict[str, Any],
    exc: BaseException,
    subfolder: str | None = None,
    repo: str | None = None,
) -> ModelNotAvailableError:
    """A :class:`ModelNotAvailableError` naming the repo/folder (for a local folder, the
    subfolder that failed), what is missing and the fix (``hf download <repo>``: ``repo`` is
    the Hub repo the folder's files come from, where the caller knows it)."""
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    cause = f"{type(exc).__name__}: {first}"
    want = "safetensors weights" + (f" (variant {kwargs['variant']!r})" if kwargs.get("variant") else "")
    if is_dir:
        where = ""
        if subfolder:
            sub = os.path.join(src, subfolder)
            where = f" ({sub!r} does not exist)" if not os.path.isdir(sub) else f" (in {sub!r})"
        return ModelNotAvailableError(
            f"the folder {src!r} does not hold a complete {what} with {want}: it needs {needs}{where}. "
            "Save one with save_pretrained(folder, safe_serialization=True), or download the repo with "
            f"`hf download {repo or '<repo>'} --local-dir {src}`. [{cause}]"
        )
    cache = kwargs.get("cache_dir") or hub_cache_dir()
    if kwargs.get("local_files_only"):
        how = "downloads are off (" + ("HF_HUB_OFFLINE is set" if hub_offline() else "local_files_only=True") + ")"
    else:
        how = "the Hugging Face Hub could not be reached or refused the download"
    return ModelNotAvailableError(
        f"{what} weights {src!r} are not available on this machine: {needs} is missing from the Hugging Face "
        f"cache ({cache}) and {how}. Fix: on a connected machine run `hf download {src}` and copy "
        "the cache folder (HF_HOME, e.g. ~/.cache/huggingface) here, point HF_HOME / HF_HUB_CACHE (or cache_dir=) "
        f"at a cache that has it, or pass a local folder instead of the repo id. [{cause}]"
    )


def load_component(
    cls: Any,
    src: str,
    *,
    subfolder: str | None,
    what: str,
    is_dir: bool,
    kwargs: dict[str, Any],
    repo: str | None = None,
) -> Any:
    """``cls.from_pretrained(src, subfolder=..., **kwargs)`` with missing files turned into
    :class:`ModelNotAvailableError` (``kwargs`` from :func:`load_kwargs`; ``repo``: the Hub
    repo a local folder's files come from, named in the fix). So are a missing ``config.json``,
    a truncated or corrupt file, and (for a transformers model) weights files that leave some
    of the model's weights out, which transformers would fill with random values, naming a few."""
    sub = {"subfolder": subfolder} if subfolder else {}
    needs = f"{cls.__name__} in {subfolder}/" if subfolder else f"the {cls.__name__} (model_index.json and its component folders)"
    model = _is_transformers_model(cls)
    try:
        if model and is_dir and not (Path(src) / (subfolder or "") / "config.json").is_file():
            raise FileNotFoundError(f"no config.json in {os.path.join(src, subfolder or '')!r}")
        loaded = cls.from_pretrained(src, **sub, **kwargs, **({"output_loading_info": True} if model else {}))
    except Exception as exc:
        if type(exc).__name__ == "HFValidationError":
            raise ArgumentError(
                f"{src!r} is neither an existing folder nor a valid Hugging Face repo id ('owner/name')."
            ) from None
        if not is_unavailable(exc):
            raise
        raise unavailable_error(what, src, is_dir=is_dir, needs=needs, kwargs=kwargs, exc=exc, subfolder=subfolder,
                                repo=repo) from None  # fmt: skip
    if not model:
        return loaded
    loaded, info = loaded
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        gap = LookupError(f"{len(missing)} of its weights are not in the files (e.g. {', '.join(missing[:3])}) and "
                          "would be random: the files are of another model")  # fmt: skip
        raise unavailable_error(what, src, is_dir=is_dir, needs=needs, kwargs=kwargs, exc=gap, subfolder=subfolder,
                                repo=repo)  # fmt: skip
    return loaded


def _is_transformers_model(cls: Any) -> bool:
    """Whether ``cls`` is a transformers model (not a tokenizer, processor or diffusers class)."""
    try:
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover
        return False
    return isinstance(cls, type) and issubclass(cls, PreTrainedModel)


#: what a diffusers folder is, by its model_index.json ``_class_name`` (named when a folder is
#: passed to the wrong loader)
PIPELINE_KINDS: dict[str, str] = {
    "StableUnCLIPImg2ImgPipeline": "a Stable Diffusion 2.1 unCLIP decoder (presets sd21-unclip-h, sd21-unclip-l; "
                                   "decoder kind 'stable_unclip')",
    "StableUnCLIPPipeline": "Stable unCLIP's text-to-image pipeline (latentlab's 'stable_unclip' decoder loads the "
                            "image-variation StableUnCLIPImg2ImgPipeline folders)",
    "StableDiffusionPipeline": "a plain Stable Diffusion text-to-image model, which takes no image embeddings (the "
                               "unCLIP decoders are the -unclip repos, e.g. stabilityai/stable-diffusion-2-1-unclip)",
    "StableDiffusionImg2ImgPipeline": "a plain Stable Diffusion image-to-image model, which takes no image embeddings",
    "KandinskyV22Pipeline": "the Kandinsky 2.2 decoder (preset kandinsky-2.2, decoder kind 'kandinsky')",
    "KandinskyV22PriorPipeline": "the Kandinsky 2.2 prior and its CLIP towers (preset kandinsky-2.2: prior kind "
                                 "'kandinsky', encoder kind 'hf_clip', image_encoder_repo= of the decoder)",
    "UnCLIPImageVariationPipeline": "the Karlo decoder (preset karlo, decoder kind 'karlo')",
    "UnCLIPPipeline": "Karlo's text-to-image pipeline, whose prior the 'karlo' prior kind loads (presets karlo, "
                      "sd21-unclip-l)",
}  # fmt: skip

#: a subfolder only one of these layouts has -> the pipeline it belongs to (when a folder has no model_index.json)
_TELLTALE_SUBFOLDERS = {
    "image_normalizer": "StableUnCLIPImg2ImgPipeline", "movq": "KandinskyV22Pipeline",
    "super_res_first": "UnCLIPImageVariationPipeline", "prior_scheduler": "UnCLIPPipeline",
}  # fmt: skip


def _model_index(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_local_folder(
    folder: str,
    *,
    what: str,
    needs: Sequence[str],
    pipelines: Sequence[str],
    repo: str | None,
    model_index: bool = False,
    tokenizer: str | None = "tokenizer",
) -> None:
    """Before loading a local ``folder``: a :class:`ModelNotAvailableError` when a subfolder of
    ``needs`` is absent (or, with ``model_index``, when model_index.json is absent or does not
    list one), naming exactly the missing ones, what the folder looks like instead (its
    model_index.json ``_class_name``, else a telltale subfolder) when that is not one of
    ``pipelines`` (the layouts this loader reads; the first is named), and the download
    command for ``repo``. Files missing inside a subfolder are left to the loader's own error.
    ``tokenizer``: the subfolder of the tokenizer, whose files are named when it is missing."""
    root = Path(folder)
    index = _model_index(root)
    missing = [s for s in needs if not (root / s).is_dir()]
    problems = []
    if missing:
        problems.append(f"it has no {', '.join(s + '/' for s in missing)} subfolder{'s' if len(missing) > 1 else ''}")
        if tokenizer in missing:
            problems[-1] += (f" ({os.path.join(folder, tokenizer)!r} should hold the CLIP tokenizer files: vocab.json and "
                             "merges.txt, or tokenizer.json, with tokenizer_config.json)")  # fmt: skip
    if model_index:
        if not (root / "model_index.json").is_file():
            problems.append("it has no model_index.json")
        elif index is not None:
            unlisted = [s for s in needs if not (isinstance(v := index.get(s), list) and v and v[0] is not None)]
            if unlisted:
                problems.append(f"its model_index.json lists no {', '.join(unlisted)}")
    if not problems:
        return
    expected = pipelines[0] if len(pipelines) == 1 else None
    found = index.get("_class_name") if index is not None else None
    guessed = False
    if not isinstance(found, str):
        found = next((p for sub, p in _TELLTALE_SUBFOLDERS.items() if (root / sub).is_dir()), None)
        guessed = True
    mixup = ""
    if found and found not in pipelines:
        how = f"it has a {next(s for s, p in _TELLTALE_SUBFOLDERS.items() if p == found)}/ subfolder" if guessed else (
            f"its model_index.json says _class_name={found!r}")  # fmt: skip
        kind = PIPELINE_KINDS.get(found, f"a {found} folder")
        wanted = f"a {expected} one" if expected else f"one of {', '.join(pipelines)}"
        mixup = (f" A likely mix-up: {how}, so this is a {found} folder, not {wanted} ({kind}); "
                 "pass it to the matching preset or part, or point this one at a folder of its own repo.")  # fmt: skip
    layout = (["model_index.json"] if model_index else []) + [s + "/" for s in needs]
    label = f"{what} ({expected})" if expected else what
    raise ModelNotAvailableError(
        f"the folder {folder!r} is not a complete {label}: {'; '.join(problems)}. It needs "
        f"{', '.join(layout)}.{mixup} Fix: download the repo with `hf download {repo or '<repo>'} --local-dir {folder}` "
        "(or write each component there with save_pretrained(..., safe_serialization=True))."
    )


#: the largest ``model_max_length`` a CLIP tokenizer can sensibly have (CLIP's is 77); transformers
#: gives 1e30 to a tokenizer built from nothing
_TOKENIZER_MAX_LENGTH = 1_000_000


def check_tokenizer(tokenizer: Any, src: str, *, subfolder: str | None, what: str, is_dir: bool,
                    repo: str | None = None) -> Any:  # fmt: skip
    """``tokenizer`` if it is usable; else a :class:`ModelNotAvailableError` naming its folder,
    the files it needs and the fix. transformers 5 builds a CLIPTokenizer of 2 tokens with
    ``model_max_length=1e30`` from a missing or empty tokenizer folder, without a word, and
    the first decode then fails with an OverflowError; this catches it at load."""
    try:
        size = len(tokenizer)
    except TypeError:
        size = None
    max_len = getattr(tokenizer, "model_max_length", None)
    bad = []
    if size is not None and size <= 2:
        bad.append(f"{size} tokens")
    if not isinstance(max_len, int) or not 1 <= max_len <= _TOKENIZER_MAX_LENGTH:
        bad.append(f"model_max_length={max_len!r}")
    if not bad:
        return tokenizer
    raise tokenizer_error(src, subfolder=subfolder, what=what, is_dir=is_dir, repo=repo,
                          reason=f"it loads as a placeholder tokenizer ({', '.join(bad)})")  # fmt: skip


def tokenizer_error(src: str, *, subfolder: str | None, what: str, is_dir: bool, repo: str | None,
                    reason: str) -> ModelNotAvailableError:  # fmt: skip
    """The :class:`ModelNotAvailableError` for a missing or incomplete tokenizer (see :func:`check_tokenizer`)."""
    sub = subfolder or ""
    if is_dir:
        where = os.path.join(src, sub) if sub else src
        pattern = f'--include "{sub}/*" ' if sub else ""
        fix = (f"copy the tokenizer folder of the repo this folder comes from, e.g. `hf download {repo or '<repo>'} "
               f"{pattern}--local-dir {src}`, or save one with tokenizer.save_pretrained({where!r})")  # fmt: skip
    else:
        where = f"{src}/{sub}" if sub else src
        fix = "check that the repo has a tokenizer there, or pass a local folder that has one (repo_or_dir=)"
    return ModelNotAvailableError(
        f"the {what} has no usable tokenizer: {where!r} {reason}. It needs the CLIP tokenizer files there "
        f"(vocab.json and merges.txt, or tokenizer.json, with tokenizer_config.json giving model_max_length, "
        f"77 for CLIP). Fix: {fix}."
    )


def load_tokenizer(cls: Any, src: str, *, subfolder: str | None, what: str, is_dir: bool, kwargs: dict[str, Any],
                   repo: str | None = None) -> Any:  # fmt: skip
    """:func:`load_component` for a tokenizer, refusing a missing tokenizer folder and a
    placeholder tokenizer (:func:`check_tokenizer`) at load rather than at the first decode."""
    if is_dir:
        folder = Path(src) / subfolder if subfolder else Path(src)
        if not folder.is_dir():
            raise tokenizer_error(src, subfolder=subfolder, what=what, is_dir=True, repo=repo, reason="does not exist")
    tok = load_component(cls, src, subfolder=subfolder, what=what, is_dir=is_dir, kwargs=kwargs, repo=repo)
    return check_tokenizer(tok, src, subfolder=subfolder, what=what, is_dir=is_dir, repo=repo)


def synthetic_images(n: int = 8, size: int = 224, seed: int = 0) -> list[Any]:
    """``n`` fixed synthetic RGB PIL images (smooth colour gradients with a disc), the same
    on every machine: what ``embed_scale="auto"`` calibrates on."""
    import numpy as np
    from PIL import Image

    g = torch.Generator("cpu").manual_seed(int(seed))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    out = []
    for _ in range(n):
        c0, c1, c2 = (torch.rand(3, 3, generator=g).numpy() * 255.0)
        cx, cy, r = (torch.rand(3, generator=g).numpy() * np.array([0.6, 0.6, 0.25]) + np.array([0.2, 0.2, 0.1]))
        img = c0[None, None] * (1 - xx[..., None]) + c1[None, None] * xx[..., None]
        img = img * (1 - 0.5 * yy[..., None]) + 0.5 * yy[..., None] * c1[None, None][..., ::-1]
        disc = ((xx - cx) ** 2 + (yy - cy) ** 2) < r**2
        img[disc] = c2
        out.append(Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "RGB"))
    return out


# ======================================================================================
# the encoder
# ======================================================================================


class HFCLIPTowers(torch.nn.Module):
    """The two transformers towers behind open_clip's ``encode_image`` / ``encode_text``
    interface, so :class:`~latentlab.encoders.Encoder` can drive them.

    ``encode_image(pixel_values (n, 3, S, S)) -> (n, d)``; ``encode_text(input_ids (n, L)) -> (n, d)``
    (the projected ``image_embeds`` / ``text_embeds``; unit-norm when ``normalize=True``).
    Either tower may be ``None`` (then that direction raises a clear error).
    """

    def __init__(self, vision: torch.nn.Module | None, text: torch.nn.Module | None) -> None:
        super().__init__()
        if vision is None and text is None:
            raise ArgumentError("HFCLIPTowers needs at least one of vision / text.")
        self.vision = vision
        self.text = text

    def encode_image(self, pixel_values: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        if self.vision is None:
            raise ArgumentError("this encoder was loaded without an image tower; load it with an image_subfolder.")
        z = self.vision(pixel_values=pixel_values).image_embeds
        return torch.nn.functional.normalize(z.float(), dim=-1) if normalize else z

    def encode_text(self, input_ids: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        if self.text is None:
            raise ArgumentError("this encoder was loaded without a text tower; load it with a text_subfolder.")
        z = self.text(input_ids=input_ids).text_embeds
        return torch.nn.functional.normalize(z.float(), dim=-1) if normalize else z


class _Preprocess:
    """PIL image -> ``(3, S, S)`` float tensor through a ``CLIPImageProcessor``."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def __call__(self, image: Any) -> torch.Tensor:
        return self.processor(images=image, return_tensors="pt").pixel_values[0]


class _Tokenize:
    """list of str -> ``(n, L)`` token ids through a ``CLIPTokenizer`` (padded to its max length).
    ``hf_tokenizer`` names it, so that the encoder's warning of prompts cut to fit measures them."""

    def __init__(self, tokenizer: Any) -> None:
        self.hf_tokenizer = tokenizer

    def __call__(self, texts: list[str]) -> torch.Tensor:
        tok = self.hf_tokenizer
        return tok(texts, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids


def _processor_size(processor: Any) -> int:
    """Side of the square the processor crops to (``crop_size``, else ``size``; 224 if unknown)."""
    for attr in ("crop_size", "size"):
        val = getattr(processor, attr, None)
        if isinstance(val, int):
            return val
        if val is None:
            continue
        items = val.items() if hasattr(val, "items") else vars(val).items() if hasattr(val, "__dict__") else []
        ints = [v for k, v in items if isinstance(v, int) and k in ("height", "width", "shortest_edge")]
        if ints:
            return int(max(ints))
    return 224


class HFCLIPEncoder(Encoder):
    """Images and texts -> unit-norm float32 ``(n, d)`` embeddings with a family's own
    transformers CLIP towers, tagged with ``space``.

    Same interface as :class:`~latentlab.encoders.Encoder` (``encode_image``, ``encode_text``,
    ``name``, ``space``, ``dim``, ``image_size``, ``describe()``, ``fingerprint()``, ``cache``).
    Images go through the family's ``CLIPImageProcessor`` (resize, centre crop, normalise);
    texts through its ``CLIPTokenizer`` (padded / truncated to ``model_max_length``).

    Args:
        towers: an :class:`HFCLIPTowers` (vision and/or text ``...WithProjection`` model).
        processor: the ``CLIPImageProcessor`` (may be ``None`` without a vision tower).
        tokenizer: the ``CLIPTokenizer`` (may be ``None`` without a text tower).
        name, space: preset name and CLIP space tag.
        device, dtype: where the towers run (moved there here); outputs are float32 CPU.
        fingerprint: stable id of the weights (cache keys); default ``"hf_clip:sha256:<hex>"``,
            a digest of the towers' weights and configs, the processor's settings and the
            tokenizer's vocabulary, taken on first use of the cache (or :meth:`describe`) and kept
            (so two encoders of other towers never share cache entries).
        info: extra entries for :meth:`describe`.
        cache: an :class:`~latentlab.encoders.EmbeddingCache` or a directory.

    >>> from latentlab.hf_clip import HFCLIPEncoder, tiny_hf_clip_towers
    >>> enc = HFCLIPEncoder(*tiny_hf_clip_towers(dim=16), name="t", space="s")
    >>> enc.dim, enc.image_size
    (16, 32)
    """

    def __init__(
        self,
        towers: HFCLIPTowers,
        processor: Any,
        tokenizer: Any,
        *,
        name: str,
        space: str,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        fingerprint: str | Callable[[], str] | None = None,
        info: dict[str, Any] | None = None,
        cache: EmbeddingCache | str | os.PathLike[str] | None = None,
    ) -> None:
        if not isinstance(towers, HFCLIPTowers):
            raise ArgumentError(f"towers must be an HFCLIPTowers, got {type(towers).__name__}.")
        from .encoders import _as_cache

        dev, dt = as_device(device), as_dtype(dtype)
        cache = _as_cache(cache)  # checked before the towers are moved: a refused call leaves them as they were
        dim = _tower_dim(towers)
        if not fingerprint:  # hashed on first use (the embedding cache), not at every construction
            fingerprint = functools.partial(_content_fingerprint, towers, processor, tokenizer)
        towers = towers.to(dev, dt).eval()
        image_size = _processor_size(processor) if processor is not None else 224
        preprocess = _Preprocess(processor) if processor is not None else _missing("image processor")
        tokenize = _Tokenize(tokenizer) if tokenizer is not None else _missing("tokenizer")
        super().__init__(
            towers, preprocess, tokenize, name=name, space=space, device=dev, dtype=dt, dim=dim,
            image_size=image_size, fingerprint=fingerprint, info=info, cache=cache,
        )  # fmt: skip
        self.towers = towers
        self.processor = processor
        self.hf_tokenizer = tokenizer

    def __repr__(self) -> str:
        return "HF" + super().__repr__().replace("Encoder(", "CLIPEncoder(", 1)

    def image_embeds(self, images: Any) -> torch.Tensor:
        """The vision tower's *unnormalised* projected embeddings of ``images`` (any input
        :meth:`encode_image` accepts): float32 ``(n, d)`` on the CPU, no cache. Their norm
        is the scale an unCLIP decoder of the family was trained on."""
        from .encoders import _image_items

        items = _image_items(images)
        x = torch.stack([self.preprocess(it.load()) for it in items]).to(self.device, self.dtype)
        with torch.no_grad():
            return self.towers.encode_image(x).detach().to("cpu", torch.float32)

    @classmethod
    def from_pretrained(
        cls,
        repo_or_dir: str | os.PathLike[str],
        *,
        name: str | None = None,
        space: str | None = None,
        image_subfolder: str | None = "image_encoder",
        text_subfolder: str | None = "text_encoder",
        processor_subfolder: str | Sequence[str] | None = ("image_processor", "feature_extractor"),
        tokenizer_subfolder: str | None = "tokenizer",
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        variant: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool | None = None,
        revision: str | None = None,
        cache: EmbeddingCache | str | os.PathLike[str] | None = None,
        repo_hint: str | None = None,
    ) -> HFCLIPEncoder:
        """Load the towers from a repo (or a local folder) that keeps them in subfolders.

        ``repo_or_dir``: e.g. ``"kandinsky-community/kandinsky-2-2-prior"`` (Kandinsky 2.2:
        ``image_encoder``, ``text_encoder``, ``tokenizer``, ``image_processor``) or
        ``"kakaobrain/karlo-v1-alpha-image-variations"`` (``feature_extractor`` for the
        processor). Set a subfolder to ``None`` to skip that part (an image-only encoder).
        A plain transformers ``CLIPModel`` folder or repo (the ``openai/clip-vit-*`` layout:
        ``config.json`` with ``"model_type": "clip"``, the weights, tokenizer and
        ``preprocessor_config.json`` at the top level, no ``image_encoder/``) is detected and
        loaded from the top level; the subfolders left at their defaults then read ``""``.
        Safetensors only; the cache is ``cache_dir`` / ``$HF_HUB_CACHE`` / ``$HF_HOME/hub``;
        ``local_files_only`` defaults to ``$HF_HUB_OFFLINE``. Missing weights raise
        :class:`~latentlab.errors.ModelNotAvailableError` naming the repo, the missing part
        and how to get it (``hf download <repo>`` on a connected machine); for a local folder,
        ``repo_hint`` is the repo its files come from, named in that command (the ``hf_clip``
        preset builder passes the preset's repo). A missing or placeholder tokenizer is refused
        at load (:func:`check_tokenizer`).

        >>> enc = HFCLIPEncoder.from_pretrained("kandinsky-community/kandinsky-2-2-prior",  # doctest: +SKIP
        ...                                     space="kandinsky-2.2/ViT-bigG-14", device="cuda",
        ...                                     dtype=torch.float16)
        >>> enc.encode_text("a red fox").shape                                              # doctest: +SKIP
        torch.Size([1, 1280])
        """
        from transformers import CLIPImageProcessor, CLIPTextModelWithProjection, CLIPTokenizer, CLIPVisionModelWithProjection

        dev, dt = as_device(device), as_dtype(dtype)
        src, is_dir = hub_source(repo_or_dir, "CLIP towers", "kandinsky-community/kandinsky-2-2-prior")
        if image_subfolder is None and text_subfolder is None:
            raise ArgumentError("image_subfolder and text_subfolder are both None; load at least one tower.")
        kw = load_kwargs(is_dir=is_dir, dtype=dt, variant=variant, cache_dir=cache_dir,
                         local_files_only=local_files_only, revision=revision,
                         dtype_key=transformers_dtype_key())  # fmt: skip
        plain = {k: v for k, v in kw.items() if k in ("cache_dir", "local_files_only", "revision")}
        layout = "subfolders"
        if image_subfolder == "image_encoder" and text_subfolder == "text_encoder" and _is_clipmodel_root(src, is_dir, plain):
            # a plain CLIPModel (openai/clip-vit-* layout): both towers, the tokenizer and the processor at the top
            layout = "CLIPModel (top level)"
            image_subfolder = text_subfolder = ""
            if tokenizer_subfolder == "tokenizer":
                tokenizer_subfolder = ""
            if processor_subfolder == ("image_processor", "feature_extractor"):
                processor_subfolder = ""
        # a local folder is fingerprinted by its files' bytes: note them now, to check after loading
        # that the files hashed are the files loaded
        proc_subs = [processor_subfolder] if isinstance(processor_subfolder, str) else list(processor_subfolder or [])
        what = "CLIP encoder"
        repo = repo_hint or (None if is_dir else src)
        if is_dir:  # every tower folder asked for, named at once (not the first one the loader trips on)
            towers = [sub for sub in (image_subfolder, text_subfolder) if sub]
            if text_subfolder is not None and tokenizer_subfolder:
                towers.append(tokenizer_subfolder)
            check_local_folder(src, what=what, needs=towers, repo=repo, tokenizer=tokenizer_subfolder,
                               pipelines=("KandinskyV22PriorPipeline", "UnCLIPPipeline", "UnCLIPImageVariationPipeline",
                                          "StableUnCLIPImg2ImgPipeline"))  # fmt: skip
        before = _stat_folder(src, [image_subfolder, text_subfolder, tokenizer_subfolder, *proc_subs]) if is_dir else {}
        vision = text = processor = tokenizer = None
        processor_used: str | None = None
        if image_subfolder is not None:
            vision = load_component(CLIPVisionModelWithProjection, src, subfolder=image_subfolder, what=what, is_dir=is_dir,
                                    kwargs=kw, repo=repo)  # fmt: skip
            # in a folder, the processor folders it has: a broken one is named, not the next one that is absent
            subs = [s for s in proc_subs if not is_dir or (Path(src) / s).is_dir()]
            if is_dir and proc_subs and not subs:
                folders = " or ".join(f"{s}/" for s in proc_subs)
                raise unavailable_error(what, src, is_dir=True, needs=f"CLIPImageProcessor in {folders}", kwargs=plain,
                                        exc=FileNotFoundError(f"no {folders} folder in {src!r}"), repo=repo)  # fmt: skip
            err: BaseException | None = None
            for sub in subs:
                try:
                    processor = load_component(CLIPImageProcessor, src, subfolder=sub, what=what, is_dir=is_dir,
                                               kwargs=plain, repo=repo)  # fmt: skip
                    processor_used = sub
                    break
                except ModelNotAvailableError as exc:
                    err = exc if err is None or not is_dir else err
            if processor is None:
                if err is not None:
                    raise err
                processor = CLIPImageProcessor()  # OpenAI CLIP defaults, 224 px
        if text_subfolder is not None:
            text = load_component(CLIPTextModelWithProjection, src, subfolder=text_subfolder, what=what, is_dir=is_dir,
                                  kwargs=kw, repo=repo)  # fmt: skip
            tokenizer = load_tokenizer(CLIPTokenizer, src, subfolder=tokenizer_subfolder, what=what, is_dir=is_dir,
                                       kwargs=plain, repo=repo)  # fmt: skip
        name = name or src
        info = {"source": src, "image_subfolder": image_subfolder, "text_subfolder": text_subfolder,
                "revision": revision, "variant": variant}  # fmt: skip
        if layout != "subfolders":
            info["layout"] = layout
        parts = {"image": image_subfolder, "text": text_subfolder, "processor": processor_used,
                 "tokenizer": (tokenizer_subfolder or "") if text_subfolder is not None else None,  # "": the top level
                 "variant": variant}  # fmt: skip
        if is_dir:
            files = _loaded_files(Path(src), parts, variant)
            digest = _hash_files(Path(src), files, parts)  # then checked: unchanged from before the load to after the hash
            if any(before.get(f) != _file_stat(f) for f in files):
                raise ModelNotAvailableError(
                    f"files in {src!r} changed while they were being loaded (a save still in progress?); the towers in "
                    "memory may not be the files hashed for the embedding cache. Load them again once they are written."
                )
            fingerprint = "hf_clip:" + digest
        else:  # the commit the cache resolved the revision to (cheap, offline), and which parts were loaded
            commit = _resolved_commit(src, revision, kw.get("cache_dir"))
            fingerprint = f"hf_clip:{src}@{commit}:" + ",".join(f"{k}={v}" for k, v in parts.items() if v is not None)
        return cls(
            HFCLIPTowers(vision, text), processor, tokenizer, name=name, space=space or f"hf_clip/{src}",
            device=dev, dtype=dt, fingerprint=fingerprint, info=info, cache=cache,
        )  # fmt: skip


def _is_clipmodel_root(src: str, is_dir: bool, kwargs: dict[str, Any]) -> bool:
    """Whether ``src`` has a plain ``CLIPModel`` at its top level (``config.json`` whose
    ``model_type`` is ``"clip"``) and no ``image_encoder/`` subfolder. A repo's ``config.json``
    comes from the cache (or one small download, unless ``local_files_only``)."""
    if is_dir:
        if (Path(src) / "image_encoder").is_dir():
            return False
        config: str | Path = Path(src) / "config.json"
        if not Path(config).is_file():
            return False
    else:
        try:
            from huggingface_hub import hf_hub_download

            config = hf_hub_download(src, "config.json", **kwargs)
        except Exception:  # no such file (a repo with subfolders), offline and not cached, ...
            return False
    try:
        data = json.loads(Path(config).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("model_type") == "clip"


def _stat_folder(src: str, subfolders: Sequence[str | None]) -> dict[Path, tuple[int, int, int] | None]:
    """(inode, size, mtime) of every file in the folders a load may read (``src`` and its subfolders)."""
    out: dict[Path, tuple[int, int, int] | None] = {}
    for sub in {s or "" for s in subfolders}:
        d = Path(src) / sub if sub else Path(src)
        if d.is_dir():
            for f in d.iterdir():
                if f.is_file():
                    out[f] = _file_stat(f)
    return out


_AUX_SUFFIXES = (".json", ".txt", ".model")  # processor and tokenizer files (vocab, merges, configs)


def _loaded_files(root: Path, parts: dict[str, str | None], variant: str | None) -> list[Path]:
    """The files a load from the folder ``root`` reads: for each tower, its ``config.json`` and the
    safetensors weights of ``variant`` (one file, or an index and its shards); for the processor
    and the tokenizer, the small files of their folder. Sorted, each once."""
    files: set[Path] = set()
    for role in ("image", "text"):
        sub = parts.get(role)
        if sub is None:
            continue
        d = root / sub if sub else root
        files.add(d / "config.json")
        one = "model.safetensors" if variant is None else f"model.{variant}.safetensors"
        index = "model.safetensors.index.json" if variant is None else f"model.safetensors.index.{variant}.json"
        if (d / one).is_file():
            files.add(d / one)
        elif (d / index).is_file():
            files.add(d / index)
            try:
                shards = set(json.loads((d / index).read_text(encoding="utf-8")).get("weight_map", {}).values())
            except (OSError, ValueError, AttributeError):
                shards = set()
            files.update(d / s for s in shards)
        else:  # another layout transformers accepts: every safetensors file there
            files.update(d.glob("*.safetensors"))
    for role in ("processor", "tokenizer"):
        sub = parts.get(role)
        if sub is None:
            continue
        d = root / sub if sub else root
        files.update(f for f in d.iterdir() if f.is_file() and f.suffix in _AUX_SUFFIXES)
    return sorted(f for f in files if f.is_file())


def _hash_files(root: Path, files: Sequence[Path], parts: dict[str, str | None]) -> str:
    """``"sha256:<hex>"`` over the parts loaded and each file's path (relative to ``root``) and bytes."""
    from .encoders import _file_sha256

    h = hashlib.sha256(json.dumps(parts, sort_keys=True).encode("utf-8") + b"\0")
    for f in files:
        h.update(f.relative_to(root).as_posix().encode("utf-8") + b"\0" + _file_sha256(f).encode("ascii") + b"\0")
    return "sha256:" + h.hexdigest()


def _resolved_commit(repo: str, revision: str | None, cache_dir: str | os.PathLike[str] | None) -> str:
    """The commit ``revision`` (default ``main``) of ``repo`` resolves to in the Hugging Face
    cache (its ``refs/`` file, what a load just used); the revision itself if that is unknown."""
    rev = revision or "main"
    if re.fullmatch(r"[0-9a-f]{40}", rev):
        return rev
    ref = Path(hub_cache_dir(cache_dir), "models--" + repo.replace("/", "--"), "refs", rev)
    try:
        commit = ref.read_text(encoding="utf-8").strip()
    except OSError:
        return rev
    return commit if re.fullmatch(r"[0-9a-f]{40}", commit) else rev


#: config entries that say where a tower came from, not what it computes (left out of the fingerprint)
_PROVENANCE_KEYS = ("_name_or_path", "transformers_version", "architectures", "dtype", "torch_dtype")


def _content_fingerprint(towers: HFCLIPTowers, processor: Any, tokenizer: Any) -> str:
    """``"hf_clip:sha256:<hex>"`` of the towers' weights (names, dtypes, shapes, bytes) and
    configs (activation, heads, norm eps: what the weights do not show), the processor's
    settings and the tokenizer's class, length and vocabulary."""
    h = hashlib.sha256()
    for key, t in sorted(towers.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{key}\0{t.dtype}\0{tuple(t.shape)}\0".encode("utf-8"))
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    for role, tower in (("vision", towers.vision), ("text", towers.text)):
        config = getattr(tower, "config", None)
        if tower is not None and hasattr(config, "to_dict"):
            settings = {k: v for k, v in config.to_dict().items() if k not in _PROVENANCE_KEYS}
            h.update(f"config\0{role}\0".encode("utf-8") + json.dumps(settings, sort_keys=True, default=str).encode("utf-8"))
    if processor is not None:
        try:
            h.update(b"processor\0" + processor.to_json_string().encode("utf-8"))
        except Exception:  # not a transformers processor
            h.update(b"processor\0" + repr(processor).encode("utf-8"))
    if tokenizer is not None:
        h.update(f"tokenizer\0{type(tokenizer).__name__}\0{getattr(tokenizer, 'model_max_length', None)}\0".encode("utf-8"))
        try:
            h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode("utf-8"))
        except Exception:  # a tokenizer without get_vocab
            h.update(repr(tokenizer).encode("utf-8"))
    return "hf_clip:sha256:" + h.hexdigest()


def _missing(what: str) -> Callable[..., Any]:
    def fail(*_: Any) -> Any:
        raise ArgumentError(f"this encoder was loaded without a {what}; load it with the matching subfolder.")

    return fail


def _tower_dim(towers: HFCLIPTowers) -> int:
    dims = {
        int(t.config.projection_dim) for t in (towers.vision, towers.text) if t is not None
    }
    if len(dims) != 1:
        raise SpecError(f"the image and text towers project to different sizes {sorted(dims)}; they are not one CLIP model.")
    return dims.pop()


# ======================================================================================
# tiny random towers
# ======================================================================================


def tiny_hf_clip_towers(
    *, dim: int = 32, seed: int = 0, hidden_size: int | None = None, text_len: int = 16
) -> tuple[HFCLIPTowers, Any, Any]:
    """``(towers, processor, tokenizer)`` of tiny random transformers CLIP towers, built in-process.

    Vision: 32 px images, patch 4, 2 layers; text: byte-level tokenizer of ``text_len`` tokens,
    2 layers; both project to ``dim``. ``hidden_size`` (default ``dim``) is the towers' width:
    the Kandinsky/Karlo priors and Karlo's text projection need the text hidden size to equal
    ``dim``, as in the real models. Weights come from a forked RNG seeded with ``seed`` (the
    caller's global RNG is untouched): the same seed gives the same towers. CPU float32.

    >>> towers, processor, tokenizer = tiny_hf_clip_towers(dim=32, seed=0)
    >>> towers.text.config.projection_dim, tokenizer.model_max_length
    (32, 16)
    """
    from transformers import CLIPImageProcessor, CLIPTextConfig, CLIPTextModelWithProjection, CLIPVisionConfig, CLIPVisionModelWithProjection

    from .decoders.unclip import tiny_clip_tokenizer

    dim = check_int(dim, "dim", minimum=4)  # (int() read 4.5 as 4, and raised a raw OverflowError on 1e400)
    if dim % 4:
        raise ArgumentError(f"dim must be a multiple of 4 (>= 4) for the tiny towers, got {dim}.")
    width = dim if hidden_size is None else check_int(hidden_size, "hidden_size", minimum=4)
    if width % 4:  # the towers have 4 attention heads
        raise ArgumentError(f"hidden_size must be a multiple of 4 (>= 4) for the tiny towers, got {width}.")
    text_len = check_int(text_len, "text_len", minimum=2)  # a prompt is at least its start and end tokens
    seed = check_seed(seed)
    tokenizer = tiny_clip_tokenizer(text_len)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text = CLIPTextModelWithProjection(
            CLIPTextConfig(
                vocab_size=len(tokenizer), hidden_size=width, intermediate_size=2 * width, projection_dim=dim,
                num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=int(text_len),
                bos_token_id=0, eos_token_id=1, pad_token_id=1,
            )
        ).eval()  # fmt: skip
        vision = CLIPVisionModelWithProjection(
            CLIPVisionConfig(
                hidden_size=width, intermediate_size=2 * width, projection_dim=dim, num_hidden_layers=2,
                num_attention_heads=4, image_size=32, patch_size=4,
            )
        ).eval()  # fmt: skip
    processor = CLIPImageProcessor(crop_size={"height": 32, "width": 32}, size={"shortest_edge": 32})
    return HFCLIPTowers(vision, text), processor, tokenizer


# ======================================================================================
# preset builders
# ======================================================================================


@register_encoder_builder("hf_clip")
def _build_hf_clip(
    preset: Any,
    *,
    repo: str,
    image_subfolder: str | None = "image_encoder",
    text_subfolder: str | None = "text_encoder",
    processor_subfolder: str | Sequence[str] | None = ("image_processor", "feature_extractor"),
    tokenizer_subfolder: str | None = "tokenizer",
    **kwargs: Any,
) -> HFCLIPEncoder:
    """Preset encoder spec ``{"kind": "hf_clip", "repo": ..., "image_subfolder": ..., ...}``;
    user keywords: ``repo_or_dir`` (a local folder instead), ``device``, ``dtype``, ``variant``,
    ``cache_dir``, ``local_files_only``, ``revision``, ``cache``."""
    kwargs.setdefault("repo_hint", repo)  # a local repo_or_dir= is a copy of the preset's repo
    enc = HFCLIPEncoder.from_pretrained(
        kwargs.pop("repo_or_dir", repo), name=preset.name, space=preset.space, image_subfolder=image_subfolder,
        text_subfolder=text_subfolder, processor_subfolder=processor_subfolder,
        tokenizer_subfolder=tokenizer_subfolder, **kwargs,
    )  # fmt: skip
    return _check_dim(enc, preset)


@register_encoder_builder("hf_clip_tiny")
def _build_hf_clip_tiny(
    preset: Any,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str = torch.float32,
    cache: EmbeddingCache | str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,  # accepted for symmetry; nothing is downloaded
) -> HFCLIPEncoder:
    """Tiny random towers of size ``preset.dim`` (see :func:`tiny_hf_clip_towers`); the
    ``kandinsky_tiny`` / ``karlo_tiny`` decoders and priors built with the same ``seed``
    use the very same towers, so their scale calibration matches this encoder."""
    seed = check_seed(seed)
    towers, processor, tokenizer = tiny_hf_clip_towers(dim=preset.dim, seed=seed)
    enc = HFCLIPEncoder(
        towers, processor, tokenizer, name=preset.name, space=preset.space, device=device, dtype=dtype,
        fingerprint=f"hf_clip_tiny{preset.dim}-seed{seed}", info={"source": f"tiny-random(seed={seed})"}, cache=cache,
    )  # fmt: skip
    return _check_dim(enc, preset)


def _check_dim(enc: HFCLIPEncoder, preset: Any) -> HFCLIPEncoder:
    if enc.dim != preset.dim:
        raise SpecError(
            f"preset {preset.name!r} declares dim={preset.dim} but its encoder produces {enc.dim}-d embeddings; "
            "fix the preset's dim or its encoder repo."
        )
    return enc
