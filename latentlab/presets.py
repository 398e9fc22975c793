"""The preset registry: one entry per CLIP space, pairing an encoder with the decoder (and
prior) trained in that space. Entries are data; :func:`create_encoder`,
:func:`create_decoder` and :func:`create_prior` turn them into objects through a builder
chosen by each part's ``kind``. Adding a model of a known family is a new registry entry,
not a code change.

>>> from latentlab.presets import list_presets, get_preset
>>> "tiny" in list_presets()
True
>>> get_preset("tiny").dim
32
"""

from __future__ import annotations

import contextlib
import difflib
import numbers
import os
import threading
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from .errors import ArgumentError, SpecError, check_bool, is_finite_real, user_path

if TYPE_CHECKING:  # for type checkers only: importing them here would load torch and the decoders eagerly
    from .decoders.base import Decoder
    from .encoders import Encoder
    from .priors import Prior

__all__ = [
    "Preset",
    "PRESETS",
    "register_preset",
    "list_presets",
    "get_preset",
    "load_plugins",
    "create_encoder",
    "create_decoder",
    "create_prior",
    "register_encoder_builder",
    "register_decoder_builder",
    "register_prior_builder",
    "weights_status",
]


class _PartSpec(dict):  # type: ignore[type-arg]
    """A preset's ``encoder`` / ``decoder`` / ``prior`` spec: a dict that cannot be changed in
    place (changed, the registered preset changed for every later ``create_*`` in the process).
    ``.copy()`` or ``{**spec, ...}`` gives a plain dict to change."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise ArgumentError(
            "a preset's encoder, decoder and prior specs are read-only (changed in place, they changed the "
            "registered preset for every later create_*); build a changed copy of the preset instead: "
            "dataclasses.replace(preset, decoder={**preset.decoder, 'key': value})."
        )

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:  # (pickle and deepcopy filled a copy with __setitem__)
        return (type(self), (dict(self),))


@dataclass(frozen=True)
class Preset:
    """An encoder and decoder (and optional prior) that share one CLIP space.

    Attributes:
        name: the preset's name (what :func:`create_encoder` and a spec's ``preset`` take).
        space: name of the CLIP space; embeddings are tagged with it.
        dim: embedding size ``d``.
        resolution: native output size, pixels.
        encoder, decoder: ``{"kind": ..., builder arguments...}`` of each stage.
        prior: the same for the prior (text embedding -> image embedding), or ``None``.
        description, licence: what ``latentlab presets`` shows (its ``--json`` lists the
            description).
        notes: free text about the preset (the CLI does not show it).
        download_gb: approximate size of the weights to download.
        gpu_memory_gb: approximate GPU memory to render in fp16.
        hub_repos: Hugging Face repos whose presence in the cache :func:`weights_status` reports.

    Like its other fields, ``encoder``, ``decoder`` and ``prior`` cannot be changed once the
    preset is made: they are kept as read-only copies of the dicts given (a dict changed in place
    changed the registered preset for every later ``create_*``). Make a changed copy instead:
    ``dataclasses.replace(preset, decoder={**preset.decoder, "steps": 20})``.
    """

    name: str
    space: str  # name of the CLIP space; embeddings are tagged with it
    dim: int  # embedding size d
    resolution: int  # native output size, pixels
    encoder: dict[str, Any]  # {"kind": ..., builder arguments...}
    decoder: dict[str, Any]
    prior: dict[str, Any] | None = None
    description: str = ""
    licence: str = ""
    download_gb: float = 0.0  # approximate size of the weights to download
    gpu_memory_gb: float = 0.0  # approximate GPU memory to render in fp16
    hub_repos: tuple[str, ...] = ()  # Hugging Face repos whose presence in the cache we report
    notes: str = ""

    def __post_init__(self) -> None:
        for part in ("encoder", "decoder", "prior"):
            spec = getattr(self, part)
            if isinstance(spec, dict) and not isinstance(spec, _PartSpec):  # (anything else: register_preset refuses it)
                object.__setattr__(self, part, _PartSpec(spec))

    def to_dict(self) -> dict[str, Any]:
        """The preset's fields as a plain dict (JSON-serialisable)."""
        d = asdict(self)
        return {k: dict(v) if isinstance(v, _PartSpec) else v for k, v in d.items()}


PRESETS: dict[str, Preset] = {}


def _check_part(name: str, part: str, spec: object) -> dict[str, Any]:
    """``spec`` (a preset's encoder / decoder / prior) as a dict with a ``"kind"`` string;
    an :class:`ArgumentError` naming the preset and the key otherwise."""
    example = {"encoder": "'open_clip'", "decoder": "'stable_unclip'", "prior": "'karlo'"}[part]
    if not isinstance(spec, dict):
        raise ArgumentError(
            f"preset {name!r}: {part} must be a dict such as {{'kind': {example}, ...}}, got {type(spec).__name__}."
        )
    if "kind" not in spec:
        raise ArgumentError(
            f"preset {name!r}: its {part} spec {spec!r} has no \"kind\" key. Add \"kind\": the name of the builder "
            f"that makes it (e.g. {example}; docs/models.md lists the part kinds)."
        )
    if not isinstance(spec["kind"], str):
        raise ArgumentError(
            f"preset {name!r}: the \"kind\" of its {part} must be a string such as {example}, got {spec['kind']!r}."
        )
    keys = [k for k in spec if not isinstance(k, str)]
    if keys:  # they become its builder's keyword arguments
        raise ArgumentError(f"preset {name!r}: the keys of its {part} spec must be strings (its builder's keyword "
                            f"arguments), got {keys[0]!r}.")  # fmt: skip
    return spec


def _check_preset(preset: object, parts: tuple[str, ...] = ("encoder", "decoder", "prior")) -> Preset:
    """Validate what builders and the registry rely on: the field types and the ``"kind"`` of
    each of ``parts`` (``create_decoder`` builds, so checks, the decoder alone)."""
    if not isinstance(preset, Preset):
        raise ArgumentError(f"register_preset takes a Preset, got {type(preset).__name__}.")
    name = preset.name
    if not isinstance(name, str) or not name:
        raise ArgumentError(f"a preset's name must be a non-empty string, got {name!r}.")
    if not isinstance(preset.space, str) or not preset.space:
        raise ArgumentError(
            f"preset {name!r}: space must be a non-empty string (the CLIP space's name, e.g. 'openai/ViT-L-14'), "
            f"got {preset.space!r}."
        )
    if isinstance(preset.dim, bool) or not isinstance(preset.dim, numbers.Integral) or preset.dim < 1:
        raise ArgumentError(f"preset {name!r}: dim must be a positive integer (the embedding size), got {preset.dim!r}.")
    res = preset.resolution
    if isinstance(res, bool) or not isinstance(res, numbers.Integral) or res < 1:
        raise ArgumentError(f"preset {name!r}: resolution must be a positive integer (the native output size in pixels), "
                            f"got {res!r}.")  # fmt: skip
    for key in ("download_gb", "gpu_memory_gb"):
        value = getattr(preset, key)
        if not is_finite_real(value) or value < 0:
            raise ArgumentError(f"preset {name!r}: {key} must be a finite number >= 0 (approximate, in GB; 0 if not known), "
                                f"got {value!r}.")  # fmt: skip
    repos = preset.hub_repos
    if not isinstance(repos, (tuple, list)) or not all(isinstance(r, str) and r for r in repos):
        comma = f" (a string, not a tuple: write ({repos!r},), with the comma)" if isinstance(repos, str) else ""
        raise ArgumentError(f"preset {name!r}: hub_repos must be a tuple of Hugging Face repo ids such as "
                            f"('owner/name',), got {repos!r}{comma}.")  # fmt: skip
    for part in parts:
        if getattr(preset, part) is not None or part != "prior":
            _check_part(name, part, getattr(preset, part))
    plain = {"dim": int(preset.dim), "resolution": int(res), "download_gb": float(preset.download_gb),
             "gpu_memory_gb": float(preset.gpu_memory_gb), "hub_repos": tuple(repos)}  # fmt: skip
    if any(type(getattr(preset, k)) is not type(v) for k, v in plain.items()):  # numpy numbers, a list: JSON and
        preset = replace(preset, **plain)  # `latentlab presets --json` take plain ones
    return preset


def register_preset(preset: Preset, *, overwrite: bool = False) -> Preset:
    """Add ``preset`` to the registry (refuses to replace one unless ``overwrite``).

    Checks it first: ``space`` a string, ``dim`` and ``resolution`` positive integers,
    ``download_gb`` and ``gpu_memory_gb`` finite numbers >= 0, ``hub_repos`` a tuple of repo
    ids, ``licence`` and ``description`` strings, and ``encoder``, ``decoder`` (and ``prior``
    unless ``None``) dicts with a ``"kind"`` string; an :class:`ArgumentError` names the preset
    and the key otherwise. Numpy numbers (and a list of ``hub_repos``) are stored as plain ones:
    the preset returned (and registered) is then a copy."""
    preset = _check_preset(preset)
    for key in ("licence", "description"):  # (None: `latentlab presets` failed with a raw TypeError in its table;
        value = getattr(preset, key)  # bytes: its --json did)
        if not isinstance(value, str):
            raise ArgumentError(f"preset {preset.name!r}: {key} must be a string (what `latentlab presets` shows; \"\" "
                                f"if not known), got {value!r}.")  # fmt: skip
    overwrite = check_bool(overwrite, "overwrite")  # (overwrite="no" replaced the preset)
    if preset.name in PRESETS and not overwrite:
        raise ArgumentError(f"preset {preset.name!r} is already registered; pass overwrite=True to replace it.")
    PRESETS[preset.name] = preset
    return preset


PLUGIN_GROUP = "latentlab.presets"
_plugins_loaded: list[str] | None = None
_plugin_failures: list[str] = []  # each plugin that failed to load, and why, for get_preset's error
_PLUGINS_LOADING = threading.RLock()  # another thread waits for them (it got "unknown preset" meanwhile)


def load_plugins() -> list[str]:
    """Load, once per process, the presets that installed packages offer: each entry point of
    the ``"latentlab.presets"`` group names a module (imported: it calls
    :func:`register_preset`, and builders if it brings a new kind) or a function (called
    with no arguments). This is how presets of yours reach the ``latentlab`` command, which
    runs in a new process; :func:`list_presets` calls it first, and :func:`get_preset` does
    for a name not registered yet (a built-in preset's name loads no plugin). A
    plugin that fails to load, or names neither a module nor a function (e.g. a
    :class:`Preset`), is skipped with a warning naming it. Returns the entry points
    loaded (``"name = value"``).

    In a package's ``pyproject.toml``::

        [project.entry-points."latentlab.presets"]
        my-models = "my_package.latentlab_presets"
    """
    global _plugins_loaded, _plugin_failures
    with _PLUGINS_LOADING:  # (re-entrant: a plugin asking for a preset while it loads gets what is loaded so far)
        if _plugins_loaded is not None:
            return list(_plugins_loaded)
        _plugins_loaded, _plugin_failures = [], []
        import importlib.metadata
        import types
        import warnings

        for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP):
            try:
                obj = ep.load()
                if callable(obj) and not isinstance(obj, types.ModuleType):
                    obj()
                elif not isinstance(obj, types.ModuleType):  # e.g. a Preset: it was listed as loaded, never registered
                    raise ArgumentError(f"it names a {type(obj).__name__}, not a module or a function; name the module "
                                        "that calls register_preset, or a function that does")  # fmt: skip
            except Exception as exc:  # one broken plugin must not take the others (or the command) down
                warnings.warn(f"latentlab plugin {ep.name!r} ({ep.value}) failed to load, so its presets are missing: "
                              f"{type(exc).__name__}: {exc}", stacklevel=2)  # fmt: skip
                _plugin_failures.append(f"{ep.name!r} ({ep.value}) failed to load, so its presets are missing: "
                                        f"{type(exc).__name__}: {str(exc).rstrip('.')}")  # fmt: skip
                continue
            _plugins_loaded.append(f"{ep.name} = {ep.value}")
        return list(_plugins_loaded)


def list_presets() -> list[str]:
    """Names of every registered preset (those of installed plugins too: :func:`load_plugins`)."""
    load_plugins()
    return list(PRESETS)


def get_preset(name: str | Preset) -> Preset:
    """The preset called ``name``; a clear error listing the known ones if there is none."""
    if isinstance(name, Preset):
        return name
    if isinstance(name, str) and name not in PRESETS:
        load_plugins()  # (only for a name not known yet: built-in presets never wait for plugins)
    if not isinstance(name, str) or name not in PRESETS:
        lower = {p.lower(): p for p in PRESETS}
        close = [lower[m] for m in difflib.get_close_matches(str(name).lower(), list(lower), n=1, cutoff=0.5)]
        hint = f" Did you mean {close[0]!r}?" if close else ""
        # a plugin that failed to load (a package it imports missing) was warned of once, then only "unknown preset"
        failed = "".join(f" The installed plugin {f}." for f in _plugin_failures)
        raise ArgumentError(
            f"unknown preset {name!r}.{hint} Known presets: {', '.join(PRESETS)}. "
            "Run `latentlab presets` to see them all." + ("" if close and close[0].lower() == str(name).lower() else
            " (A preset registered in Python exists in that Python process only; for the latentlab command, install "
            f"it as a {PLUGIN_GROUP!r} entry point: docs/models.md, 'Adding a preset'.)" + failed)  # fmt: skip
        )
    return PRESETS[name]


# -- builders, chosen by each part's "kind" ---------------------------------------------

_ENCODER_BUILDERS: dict[str, Callable[..., Any]] = {}
_DECODER_BUILDERS: dict[str, Callable[..., Any]] = {}
_PRIOR_BUILDERS: dict[str, Callable[..., Any]] = {}


def _is_builtin(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` is one of latentlab's own builders (defined in a ``latentlab`` module)."""
    return (getattr(fn, "__module__", None) or "").split(".")[0] == "latentlab"


def _register(
    table: dict[str, Callable[..., Any]], kind: str, what: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The decorator of the ``register_*_builder`` functions. The built-in builders register
    lazily (:func:`_load_builders`, at the first ``create_*``), possibly after a user's: a
    built-in builder never replaces one registered from outside latentlab, so a user's builder
    for a built-in kind (e.g. ``"stable_unclip_tiny"``) is the one used, whenever it was registered.
    ``kind`` must be a non-empty string and the decorated object callable (an :class:`ArgumentError`
    naming ``register_<what>_builder`` otherwise: ``@register_decoder_builder`` without its kind
    registered nothing and replaced the function)."""
    if not isinstance(kind, str) or not kind:
        bare = f" (used as @register_{what}_builder without a kind?)" if callable(kind) else ""
        raise ArgumentError(f"register_{what}_builder takes the part kind, a non-empty string: "
                            f"@register_{what}_builder('my_kind'); got {kind!r}{bare}.")  # fmt: skip

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(fn):
            raise ArgumentError(f"register_{what}_builder({kind!r}) takes a function fn(preset, **kwargs) that builds "
                                f"the {what}, got {type(fn).__name__}.")  # fmt: skip
        old = table.get(kind)
        if not (old is not None and _is_builtin(fn) and not _is_builtin(old)):
            table[kind] = fn
        return fn

    return deco


def register_encoder_builder(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: ``fn(preset, **spec_args, **user_kwargs) -> Encoder`` builds encoders of ``kind``
    (replacing a built-in builder of that kind: see :func:`_register`)."""
    return _register(_ENCODER_BUILDERS, kind, "encoder")


def register_decoder_builder(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: ``fn(preset, **spec_args, **user_kwargs) -> Decoder`` builds decoders of ``kind``
    (replacing a built-in builder of that kind: see :func:`_register`).

    Models load one at a time (each ``create_*`` holds a lock while its builder runs; one in
    the same thread may nest): a builder must not wait for another thread's ``create_*``."""
    return _register(_DECODER_BUILDERS, kind, "decoder")


def register_prior_builder(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: ``fn(preset, **spec_args, **user_kwargs) -> Prior`` builds priors of ``kind``
    (replacing a built-in builder of that kind: see :func:`_register`)."""
    return _register(_PRIOR_BUILDERS, kind, "prior")


def _builder(table: dict[str, Callable[..., Any]], kind: str, what: str, preset: Preset) -> Callable[..., Any]:
    _load_builders()
    if kind not in table:
        raise ArgumentError(f"preset {preset.name!r} names {what} kind {kind!r}, which no builder handles.")
    return table[kind]


#: the Decoder class each of latentlab's own decoder builders makes (builder -> class), filled where
#: they are registered: what such a decoder can do (eta, inversion) is known before it loads
_DECODER_CLASSES: dict[Callable[..., Any], type] = {}


def decoder_can(preset: str | Preset, feature: str) -> bool | None:
    """Whether the decoder :func:`create_decoder` builds for ``preset`` will have ``feature``
    (``"eta"``: DDIM eta > 0; ``"invert"``: inverting pictures to their noise; ``"refine"``:
    refining that noise), told from the preset alone, without loading a model (renders refuse
    with it first, rather than once the models have loaded). ``None`` where only the loaded
    decoder can tell: a builder of the user's, or an option its class cannot judge unloaded
    (see :meth:`latentlab.Decoder.can_before_loading`)."""
    p = get_preset(preset)
    cls = _decoder_class(p)
    if cls is None:
        return None
    return cls.can_before_loading(feature, {k: v for k, v in p.decoder.items() if k != "kind"})  # type: ignore[attr-defined]


def _decoder_class(preset: str | Preset) -> type | None:
    """The class of the decoder :func:`create_decoder` builds for ``preset``, where one of latentlab's
    own builders builds it; ``None`` for a builder of the user's (for a kind of theirs, or replacing
    a built-in one), or a decoder spec create_decoder refuses."""
    p = get_preset(preset)
    kind = p.decoder.get("kind") if isinstance(p.decoder, dict) else None
    if not isinstance(kind, str):
        return None
    _load_builders()
    builder = _DECODER_BUILDERS.get(kind)
    return _DECODER_CLASSES.get(builder) if builder is not None else None


def create_encoder(preset: str | Preset = "mini", **kwargs: Any) -> Encoder:
    """Build the encoder of ``preset`` (keyword arguments such as ``device=``, ``dtype=`` go to its builder)."""
    p = _check_preset(get_preset(preset), ("encoder",))  # (a Preset given here was not checked by register_preset)
    spec = dict(_check_part(p.name, "encoder", p.encoder))
    return _build(_builder(_ENCODER_BUILDERS, spec.pop("kind"), "encoder", p), "encoder", p, spec, kwargs)


def create_decoder(preset: str | Preset = "mini", **kwargs: Any) -> Decoder:
    """Build the decoder of ``preset`` (keyword arguments such as ``device=``, ``dtype=``,
    ``cpu_offload=`` go to its builder)."""
    p = _check_preset(get_preset(preset), ("decoder",))  # (a Preset given here was not checked by register_preset)
    spec = dict(_check_part(p.name, "decoder", p.decoder))
    return _build(_builder(_DECODER_BUILDERS, spec.pop("kind"), "decoder", p), "decoder", p, spec, kwargs)


def create_prior(preset: str | Preset = "mini", **kwargs: Any) -> Prior:
    """Build the prior (text embedding -> image embedding) of ``preset``; an error if it has
    none. Keyword arguments (``device=``, ...) go to its builder."""
    p = _check_preset(get_preset(preset), ("prior",))  # (a Preset given here was not checked by register_preset)
    if p.prior is None:
        raise ArgumentError(
            f"preset {p.name!r} has no prior, so text keyframes cannot become image embeddings. "
            "Use image keyframes (text can still steer them with text_diff), or a preset with a prior."
        )
    spec = dict(_check_part(p.name, "prior", p.prior))
    return _build(_builder(_PRIOR_BUILDERS, spec.pop("kind"), "prior", p), "prior", p, spec, kwargs)


class _OptionNotTaken(ArgumentError):
    """A keyword a preset's part does not take (``option``), refused by :func:`_build` before
    anything loads; callers that offer an option to every part it fits catch it by ``option``."""

    def __init__(self, message: str, option: str) -> None:
        super().__init__(message)
        self.option = option

    def __reduce__(self) -> tuple[Any, ...]:
        # (it could not be unpickled: raised in a multiprocessing worker, it broke a ProcessPoolExecutor and hung a Pool)
        return (type(self), (str(self), self.option))


_BUILDING = threading.RLock()


def _build(fn: Callable[..., Any], what: str, p: Preset, spec: dict[str, Any], kwargs: dict[str, Any]) -> Any:
    """``fn(p, **spec, **kwargs)``; a keyword this part of the preset does not take, or one
    its builder sets itself from the preset (``name``, ``space``, ``dim``, ``resolution``),
    is an :class:`ArgumentError` naming it (not Python's bare ``TypeError``), and so is such
    a key of the preset's own part spec."""
    import re

    def set_by_preset(arg: str) -> ArgumentError:
        field = arg in {f.name for f in fields(Preset)}
        fix = (f"to change it, build from a copy of the preset: create_{what}(dataclasses.replace("
               f"ll.get_preset({p.name!r}), {arg}=...))" if field else "drop it")  # fmt: skip
        return ArgumentError(
            f"the {what} of preset {p.name!r} sets {arg}= itself{' from the preset' if field else ''}, "
            f"so create_{what}() cannot pass it; {fix}."
        )

    for arg in ("name", "space", "dim"):  # every builder sets these from the preset; one that takes **kwargs
        if arg in kwargs:  # (mini's) passed them on, and its model was refused below as not the preset's
            raise set_by_preset(arg)
    try:
        from .encoders import float32_default

        # latentlab's own models are built in float32 whatever torch's default dtype (their dtype= casts them)
        f32 = float32_default() if _is_builtin(fn) else contextlib.nullcontext()
        with _BUILDING, f32:  # one model loads at a time: open_clip's config registry and diffusers' first import are not thread-safe
            built = fn(p, **{**spec, **kwargs})
    except TypeError as exc:
        m = re.search(r"(unexpected keyword argument|multiple values for keyword argument) '", str(exc))
        named = str(exc)[m.end() :] if m is not None else ""  # "<the keyword>'" (any characters), maybe more after it
        arg = next((k for k in sorted({*kwargs, *spec}, key=len, reverse=True) if named.startswith(f"{k}'")), None)
        if m is None or arg is None:
            raise
        if arg not in kwargs:  # a key of the preset's own part (a typo, or one for another kind), not the caller's
            why = "does not take" if m.group(1).startswith("unexpected") else "sets itself from the preset"
            raise ArgumentError(
                f"preset {p.name!r}: its {what} spec has the key {arg!r}, which its {what} builder "
                f"{getattr(fn, '__qualname__', fn)!r} {why}; remove {arg!r} from the preset's {what} "
                "(docs/models.md, 'Adding a preset', lists what each kind takes)."
            ) from None
        if m.group(1).startswith("unexpected"):
            raise _OptionNotTaken(
                f"the {what} of preset {p.name!r} takes no {arg}= (a loading option of other parts or "
                f"presets; docs/models.md, 'Loading options', says which takes what). Drop it from create_{what}().",
                arg,
            ) from None
        raise set_by_preset(arg) from None
    for attr in ("dim", "space"):  # a builder's model of another size failed later, blamed on the embeddings
        got, declared = getattr(built, attr, None), getattr(p, attr)
        if got is not None and declared is not None and got != declared:
            raise SpecError(
                f"preset {p.name!r} declares {attr}={declared!r}, but its {what} builder "
                f"{getattr(fn, '__qualname__', fn)!r} made one with {attr}={got!r} ({type(built).__name__}); "
                f"fix the preset's {attr} or the builder."
            )
    return built


_LOADED = False


def _load_builders() -> None:
    """Register the builders lazily so that importing latentlab stays fast."""
    global _LOADED
    if _LOADED:
        return
    from . import builders  # noqa: F401  (registers into the tables above)

    _LOADED = True


# -- the registry ------------------------------------------------------------------------

register_preset(
    Preset(
        name="tiny",
        space="tiny-random",
        dim=32,
        resolution=64,
        encoder={"kind": "open_clip_tiny", "seed": 0},
        decoder={"kind": "stable_unclip_tiny", "seed": 0},
        prior={"kind": "identity"},
        description="Tiny random open_clip + Stable unCLIP components built in-process. "
        "For tests and smoke runs: its frames are structured noise, not pictures.",
        licence="n/a (random weights)",
        notes="prior is the identity: text embeddings are used as image embeddings.",
    )
)


register_preset(
    Preset(
        name="mini",
        space="latentlab-mini",
        dim=128,
        resolution=64,
        encoder={
            "kind": "open_clip",
            "model": "mini_clip",
            "config": "mini/configs/mini_clip.json",
            "checkpoint": "mini/weights/mini_clip.safetensors",
        },
        decoder={"kind": "mini"},
        prior={"kind": "mini"},
        description="latentlab's own small unCLIP stack (CLIP + diffusion prior + pixel decoder), "
        "trained in this repo on a procedural shapes world, emoji and clip art, shipped in the "
        "package (~37 MB).",
        licence="MIT (trained here; see docs/mini.md)",
        notes="small CPU run, 32 px decoder + learned 2x upscaler: clean coloured shapes, rough emoji and clip art; see docs/mini.md for measured quality.",
    )
)

register_preset(
    Preset(
        name="sd21-unclip-h",
        space="laion2b_s32b_b79k/ViT-H-14",
        dim=1024,
        resolution=768,
        encoder={"kind": "open_clip", "model": "ViT-H-14", "pretrained": "laion2b_s32b_b79k"},
        decoder={"kind": "stable_unclip", "repo": "stabilityai/stable-diffusion-2-1-unclip", "embed_scale": "auto"},
        prior=None,
        description="Stable Diffusion 2.1 unCLIP, conditioned on OpenCLIP ViT-H/14 image embeddings.",
        licence="CreativeML Open RAIL++-M",
        download_gb=8.5,
        gpu_memory_gb=8.0,
        hub_repos=("stabilityai/stable-diffusion-2-1-unclip", "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"),
        notes="no public prior in this space: text can steer image keyframes (text_diff), "
        "but plain text keyframes need an image.",
    )
)

register_preset(
    Preset(
        name="sd21-unclip-l",
        space="openai/ViT-L-14",
        dim=768,
        resolution=768,
        encoder={"kind": "open_clip", "model": "ViT-L-14-quickgelu", "pretrained": "openai"},
        decoder={"kind": "stable_unclip", "repo": "stabilityai/stable-diffusion-2-1-unclip-small", "embed_scale": "auto"},
        prior={"kind": "karlo", "repo": "kakaobrain/karlo-v1-alpha"},
        description="Stable Diffusion 2.1 unCLIP-small, conditioned on OpenAI CLIP ViT-L/14 image "
        "embeddings; Karlo's prior (same CLIP space) turns texts into image embeddings.",
        licence="CreativeML Open RAIL++-M (decoder); CreativeML Open RAIL-M (Karlo prior)",
        download_gb=9.5,
        gpu_memory_gb=8.0,
        hub_repos=(
            "stabilityai/stable-diffusion-2-1-unclip-small",
            "timm/vit_large_patch14_clip_224.openai",
            "kakaobrain/karlo-v1-alpha",
        ),
        notes="the Karlo prior loads from diffusers' deprecated unCLIP pipelines (supported while diffusers ships them).",
    )
)

register_preset(
    Preset(
        name="kandinsky-2.2",
        space="kandinsky-2.2/ViT-bigG-14",
        dim=1280,
        resolution=768,
        encoder={"kind": "hf_clip", "repo": "kandinsky-community/kandinsky-2-2-prior"},
        decoder={"kind": "kandinsky", "repo": "kandinsky-community/kandinsky-2-2-decoder"},
        prior={"kind": "kandinsky", "repo": "kandinsky-community/kandinsky-2-2-prior"},
        description="Kandinsky 2.2: prior + image-embedding decoder in the space of its own ViT-bigG/14 "
        "image encoder (wrapped through the same Encoder interface).",
        licence="Apache-2.0",
        download_gb=13.0,
        gpu_memory_gb=12.0,
        hub_repos=("kandinsky-community/kandinsky-2-2-prior", "kandinsky-community/kandinsky-2-2-decoder"),
    )
)

register_preset(
    Preset(
        name="karlo",
        space="openai/ViT-L-14",
        dim=768,
        resolution=256,
        encoder={"kind": "open_clip", "model": "ViT-L-14-quickgelu", "pretrained": "openai"},
        decoder={"kind": "karlo", "repo": "kakaobrain/karlo-v1-alpha-image-variations"},
        prior={"kind": "karlo", "repo": "kakaobrain/karlo-v1-alpha"},
        description="Kakao Brain's Karlo v1 alpha, an unCLIP reproduction in OpenAI CLIP ViT-L/14 space "
        "(64 px decoder + 256 px super-resolution).",
        licence="CreativeML Open RAIL-M",
        download_gb=7.0,
        gpu_memory_gb=6.0,
        hub_repos=(
            "kakaobrain/karlo-v1-alpha-image-variations",
            "kakaobrain/karlo-v1-alpha",
            "timm/vit_large_patch14_clip_224.openai",
        ),
        notes="diffusers keeps Karlo's pipelines under its deprecated pipelines: supported while diffusers ships them. "
        "Its scheduler is stochastic (reproducible per frame from the seed).",
    )
)


#: the weight files a part kind loads from the package without its spec naming them (paths from
#: latentlab/; the mini runtime's DECODER_FILE and PRIOR_FILE, with their configs)
_SHIPPED_FILES: dict[tuple[str, str | None], list[str]] = {
    ("decoder", "mini"): ["mini/weights/mini_decoder.safetensors", "mini/weights/mini_decoder.json"],
    ("prior", "mini"): ["mini/weights/mini_prior.safetensors", "mini/weights/mini_prior.json"],
}


_PACKAGE_DIR = Path(__file__).resolve().parent


def _find_local_file(path: str | os.PathLike[str]) -> Path | None:
    """Where the loaders find the file ``path`` of a preset: as given (``~`` expanded,
    relative to the working directory), else relative to the latentlab package (its bundled
    files, e.g. ``mini/weights/...``); ``None`` if neither exists (nor can: a name holding a
    NUL character, which user_path refuses)."""
    if "\x00" in os.fspath(path):
        return None
    given = user_path(path)
    if given.is_file():
        return given
    if not given.is_absolute() and (_PACKAGE_DIR / given).is_file():
        return _PACKAGE_DIR / given
    return None


def _is_shipped(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names one of the embedded model's files (``mini/...`` in the package):
    those are trained, not downloaded, when absent."""
    given = Path(path)
    return not given.is_absolute() and given.parts[:1] == ("mini",)


def _local_folder_ok(folder: str) -> bool:
    """A ``local-dir:`` folder as the open_clip loader needs it: its config and a weights file."""
    if "\x00" in folder:  # (no folder has such a name; user_path refuses it)
        return False
    d = user_path(folder)
    if not (d / "open_clip_config.json").is_file():
        return False
    return any(f.suffix in (".safetensors", ".bin", ".pth") and f.is_file() for f in d.iterdir())


def _looks_like_path(text: str) -> bool:
    """``text`` is meant as a folder rather than an ``owner/name`` Hub id (as :func:`latentlab.hf_clip.hub_source`
    reads it: a bare name such as ``my_unclip`` is a missing local folder, not a repo)."""
    from .hf_clip import is_hub_id

    return text.startswith((".", "/", "~", "\\")) or not is_hub_id(text)


def _is_random_kind(kind: object) -> bool:
    """A part kind built from random weights in-process (``*_tiny``), or one with no weights (``identity``)."""
    return isinstance(kind, str) and (kind.endswith("_tiny") or kind == "identity")


def weights_status(preset: str | Preset) -> str:
    """Whether the weights of ``preset`` are on this machine (never touches the network). One of:

    - ``"built in (random)"``: random weights built in-process (``tiny``): every part is of
      a ``*_tiny`` kind (or the ``identity`` prior) and names no file, folder or repo;
    - ``"built in"``: every weight file or folder the preset loads is on this machine: the
      files that ship with latentlab (``mini``) or local paths of the preset (found where the
      loaders look: as given, relative to the working directory, else to the package);
    - ``"missing (train it)"``: a file of the embedded model (``mini/...`` in the package)
      is absent; ``latentlab.mini`` trains it;
    - ``"missing"``: a local file or folder the preset names (a ``checkpoint``, ``config``,
      ``local-dir:`` folder or local ``repo`` folder: a path, or a name that is no ``owner/name``
      repo id, as the loaders read it) is absent;
    - ``"cached"`` / ``"partly cached"`` / ``"not downloaded"``: every / some / none of the
      repos it downloads has a snapshot holding at least one file in the Hugging Face cache
      (whether the snapshot is complete is not checked). The repos are its ``hub_repos``
      plus those its parts name: a part's ``repo`` (and a decoder's ``image_encoder_repo``,
      either of which may be a local folder instead), an ``hf-hub:`` model, and, for a preset
      without ``hub_repos``, the repo of its encoder's open_clip pretrained tag (a preset that
      lists ``hub_repos`` lists its encoder's too, as the shipped ones do; resolving a tag
      imports open_clip, which is slow);
    - ``"unknown"``: the preset names no weight files and no repos;
    - ``"unreadable (<reason>: <path>)"``, e.g. ``"unreadable (permission denied: <path>)"``:
      a file or folder it looks at could not be read, as a model folder another user keeps
      private in a shared Hugging Face cache; the state of its weights is not known (the
      loaders would fail on that path too). Other presets are not affected.

    A :class:`Preset` given here is checked as :func:`register_preset` checks it (an
    :class:`ArgumentError` naming the preset and the key)."""
    p = _check_preset(get_preset(preset))  # (a Preset given here was not checked by register_preset)
    try:
        return _weights_status(p)
    except _UnreadablePath as u:  # this preset's state is unknown; the listing of the others goes on
        e = u.error
        reason = (e.strerror or str(e) or type(e).__name__).lower()
        return f"unreadable ({reason}: {os.fspath(e.filename)})" if e.filename else f"unreadable ({reason})"


class _UnreadablePath(Exception):
    """A file or folder :func:`weights_status` looks at could not be read (``error``, an ``OSError``)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


@contextlib.contextmanager
def _reading() -> Iterator[None]:
    """Around a look at the disk: its ``OSError`` (e.g. a folder of mode 700 owned by another
    user) raised as :class:`_UnreadablePath`. Only there: an ``OSError`` from elsewhere (e.g. a
    shared library failing while open_clip imports) still propagates as it is."""
    try:
        yield
    except OSError as e:
        raise _UnreadablePath(e) from e


def _weights_status(p: Preset) -> str:
    """:func:`weights_status` of ``p``; raises :class:`_UnreadablePath` for a path it cannot read."""
    present: list[str] = []  # local files and folders found
    missing: list[str] = []  # local files and folders not found
    repos: list[str] = list(p.hub_repos)
    downloads: list[bool] = []  # other downloads (an open_clip tag's URL file): whether on disk

    def local_file(path: object) -> None:
        if isinstance(path, (str, os.PathLike)):
            with _reading():
                found = _find_local_file(path) is not None
            (present if found else missing).append(os.fspath(path))

    def repo_or_folder(src: object) -> None:
        if isinstance(src, os.PathLike):  # the loaders take a pathlib.Path too
            src = os.fspath(src)
        if not isinstance(src, str) or not src:
            return
        with _reading():
            is_folder = "\x00" not in src and user_path(src).is_dir()  # (user_path refuses a NUL)
        if is_folder:
            present.append(src)
        elif _looks_like_path(src):
            missing.append(src)
        else:
            repos.append(src)

    for role, part in (("encoder", p.encoder), ("decoder", p.decoder), ("prior", p.prior or {})):
        shipped = _SHIPPED_FILES.get((role, part.get("kind")), []) if role != "encoder" else []
        own = part.get("weights_dir", part.get("weights")) if shipped else None  # a mini part's own folder
        for key in ("checkpoint", "config", "weights"):
            if key in part and not (shipped and key == "weights"):
                local_file(part[key])
        if isinstance(own, (str, os.PathLike)):  # the files the kind loads, in that folder (it was read as a file)
            for f in shipped:
                local_file(os.path.join(os.fspath(own), os.path.basename(f)))
        else:  # files a kind loads from the package without naming them
            for f in shipped:
                local_file(f)
        repo_or_folder(part.get("repo"))
        repo_or_folder(part.get("image_encoder_repo"))  # the Kandinsky decoder's image encoder
    enc = p.encoder
    model = enc.get("model") if enc.get("kind") == "open_clip" else None
    if isinstance(model, str) and model.startswith("local-dir:"):
        folder = model[len("local-dir:") :]
        with _reading():
            ok = _local_folder_ok(folder)
        (present if ok else missing).append(folder)
    elif isinstance(model, str) and model.startswith("hf-hub:"):
        repos.append(model[len("hf-hub:") :])
    elif isinstance(model, str) and isinstance(enc.get("pretrained"), str) and "checkpoint" not in enc and not p.hub_repos:
        tag = enc["pretrained"]
        import open_clip

        cfg = open_clip.get_pretrained_cfg(model.replace("/", "-"), tag) or {}
        if not cfg:  # a file given as pretrained=, or a tag open_clip does not know (the loader refuses it)
            local_file(tag)
        elif cfg.get("file"):
            local_file(cfg["file"])
        elif cfg.get("hf_hub"):
            repos.append(os.path.split(cfg["hf_hub"])[0])
        elif cfg.get("url"):  # where the loader downloads it
            with _reading():
                downloads.append(user_path(os.path.join("~/.cache/clip", os.path.basename(cfg["url"]))).is_file())

    if missing:
        return "missing (train it)" if all(_is_shipped(m) for m in missing) else "missing"
    repos = list(dict.fromkeys(repos))
    if not repos and not downloads:
        parts = [part for part in (p.encoder, p.decoder, p.prior) if part is not None]
        if not present and all(_is_random_kind(part.get("kind")) for part in parts):
            return "built in (random)"
        return "built in" if present else "unknown"
    from .encoders import hub_cache_dir

    hub = hub_cache_dir()  # where the loaders look ($HF_HUB_CACHE, $HF_HOME, $XDG_CACHE_HOME, ~ expanded)

    def has_snapshot(repo: str) -> bool:
        # an interrupted or cancelled download can leave an empty snapshots/ (or snapshots/<rev>/);
        # is_file follows the cache's symlinks into blobs/, so a dangling link does not count either
        snapshots = Path(hub, "models--" + repo.replace("/", "--"), "snapshots")
        if not snapshots.is_dir():
            return False
        return any(f.is_file() for rev in snapshots.iterdir() if rev.is_dir() for f in rev.rglob("*"))

    with _reading():  # e.g. a model folder another user keeps private in a shared cache
        found = [has_snapshot(r) for r in repos] + downloads
    if all(found):
        return "cached"
    return "partly cached" if any(found) else "not downloaded"
