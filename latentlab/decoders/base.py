"""The decoder contract: CLIP image embeddings in, uint8 RGB frames out.

A decoder renders one batch at a time from embeddings and the starting noise the render
loop gives it; the loop (:mod:`latentlab.render`) owns batching, seeds, resume and
progress, so every decoder gets them for free. Subclasses set ``name``, ``space``, ``dim``
and ``resolution``, implement :meth:`~Decoder.noise_shape` and :meth:`~Decoder._decode`, and
add to :meth:`~Decoder.describe` every setting of theirs that changes the frames.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import weakref
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from ..errors import check_int, check_number, check_seed, check_text
from ..space import check_embeddings, float32_rows, normalize, refuse_zero_rows

__all__ = ["Decoder", "refuse_nonfinite_pixels", "snapshot_revision", "trailing_timesteps", "trailing_timesteps_marks"]


_SNAPSHOT = re.compile(r"[/\\]snapshots[/\\]([0-9a-f]{40})(?:[/\\]|$)")


_SERIAL_GUARD = threading.Lock()
_SERIAL_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def one_call_at_a_time(model: Any) -> Iterator[None]:
    """Hold ``model``'s own lock while it samples, if its class says its calls share state
    (``serial_calls``: a diffusers pipeline's one scheduler, which every call sets and steps),
    so threads sharing one model take turns instead of mixing their sampling steps."""
    if not getattr(model, "serial_calls", False):
        yield
        return
    with _SERIAL_GUARD:
        try:
            lock = _SERIAL_LOCKS.get(model)
            if lock is None:
                lock = _SERIAL_LOCKS[model] = threading.RLock()
        except TypeError:  # an unhashable model (a subclass's __eq__): its class's lock
            lock = _SERIAL_LOCKS.setdefault(type(model), threading.RLock())
    with lock:
        yield


def snapshot_revision(pipe: Any) -> str | None:
    """The Hugging Face hub commit a diffusers pipeline was loaded from, or ``None``.

    The hub cache keeps each downloaded commit under ``.../snapshots/<40-hex commit>/``, and
    diffusers records every component's folder in its config (``_name_or_path``); a pipeline
    loaded from any other folder, or built in memory, has no revision.

    >>> class Unet:
    ...     config = {"_name_or_path": "/hf/models--o--r/snapshots/" + "ab" * 20 + "/unet"}
    >>> class Pipe:
    ...     components = {"unet": Unet()}
    >>> snapshot_revision(Pipe()) == "ab" * 20
    True
    """
    paths = [getattr(pipe, "name_or_path", None)]
    for component in (getattr(pipe, "components", None) or {}).values():
        cfg = getattr(component, "config", None)
        paths.append(cfg.get("_name_or_path") if isinstance(cfg, dict) else getattr(cfg, "_name_or_path", None))
        paths.append(getattr(component, "name_or_path", None))
    for p in paths:
        m = _SNAPSHOT.search(str(p)) if p else None
        if m:
            return m.group(1)
    return None


def centre_square(images: np.ndarray) -> np.ndarray:
    """uint8 ``(b, H, W, 3)`` -> the largest centred square of each, ``(b, S, S, 3)`` with
    ``S = min(H, W)`` (a view; square images come back as they are): the region a CLIP encoder's
    transform (resize the short side, centre crop) sees, so that a non-square picture is
    inverted and judged over what its embedding describes, not squashed into a square."""
    h, w = images.shape[1:3]
    if h == w:
        return images
    side = min(h, w)
    top, left = int(round((h - side) / 2.0)), int(round((w - side) / 2.0))  # (as torchvision's CenterCrop rounds)
    return images[:, top : top + side, left : left + side]


#: ``refuse_nonfinite_pixels(embeddings, prior, guidance_scale, **PRIOR_OVERFLOW)``: said of a diffusion prior's samples
PRIOR_OVERFLOW = {"role": "prior", "what": "sampled NaN or infinite image embeddings",
                  "harm": "they give no direction to decode"}  # fmt: skip


def nonfinite_rows(x: np.ndarray | torch.Tensor) -> list[int]:
    """The rows of a batch ``(b, ...)`` holding NaN or infinite values (``[]`` for none: one
    ``isfinite`` over the batch, the rows found only when some value is not finite)."""
    tensor = isinstance(x, torch.Tensor)
    if bool(torch.isfinite(x).all() if tensor else np.isfinite(x).all()):
        return []
    flat = x.reshape(x.shape[0], -1)
    return (~torch.isfinite(flat).all(dim=1)).nonzero()[:, 0].tolist() if tensor else \
        np.flatnonzero(~np.isfinite(flat).all(axis=1)).tolist()  # fmt: skip


def refuse_nonfinite_pixels(pixels: np.ndarray | torch.Tensor, decoder: Any, guidance_scale: float, *,
                            what: str = "drew NaN or infinite pixels",
                            harm: str = "the frames would have come out black", role: str = "decoder") -> None:  # fmt: skip
    """Refuse a decoded batch whose float pixels ``(b, ...)`` hold NaN or infinite values (one
    check per batch): a sampler overflowed (a huge ``guidance_scale`` or ``embed_scale``, or a
    half precision), and the cast to uint8 drew them as black frames without a word. Finite
    pixels, however saturated, pass as they are. The :class:`~latentlab.errors.ArgumentError`
    names the settings the decoder sampled with and the fix. ``what`` and ``harm`` say it of
    another output (:meth:`Decoder.invert`'s noise), ``role`` of another sampler (``"prior"``:
    a diffusion prior's image embeddings ``(b, d)``, refused by name and ``guidance_scale``
    rather than as rows the prior returned "not finite")."""
    from ..errors import ArgumentError

    bad = nonfinite_rows(pixels)
    if not bad:
        return
    usual = "; far larger values only saturate the picture" if role == "decoder" else ""
    settings, fixes = [f"guidance_scale={guidance_scale:g}"], [f"lower guidance_scale (about 1 to 20 is usual{usual})"]
    scale = getattr(decoder, "embed_scale", None)
    if isinstance(scale, (int, float)) and not isinstance(scale, bool):
        settings.append(f"embed_scale={scale:g}")
        fixes.append("embed_scale (decoder.calibrate_embed_scale(images) measures it)")
    dtype = getattr(decoder, "dtype", torch.float32)
    if dtype in (torch.float16, torch.bfloat16):
        settings.append(f"dtype={str(dtype).removeprefix('torch.')}")
        fixes.append("use dtype=torch.float32")
    raise ArgumentError(
        f"{role} {type(decoder).__name__} ({getattr(decoder, 'name', '')!r}) {what} (rows {bad[:8]}) with "
        f"{', '.join(settings)}: its sampler overflowed, and {harm}. Fix: {', or '.join(fixes)}."
    )


def trailing_timesteps(steps: int, num_train_timesteps: int = 1000) -> list[int]:
    """``steps`` DDIM timesteps with *trailing* spacing (Lin et al. 2023, "Common Diffusion
    Noise Schedules and Sample Steps are Flawed", table 2), noisiest first: ``T - 1`` down to
    about ``T / steps - 1``, all ``>= 0``.

    These are the timesteps of diffusers' ``DDIMScheduler(timestep_spacing="trailing")``
    (``round(arange(T, 0, -T / steps)) - 1``), cut to ``steps``: for some counts (61, 103,
    121, ...) the float ``arange`` runs one step too far and diffusers appends a timestep
    ``-1``, which indexes the *last* cumulative alpha (pure noise). The other counts give
    diffusers' timesteps exactly. ``1 <= steps <= num_train_timesteps``.

    >>> trailing_timesteps(4)
    [999, 749, 499, 249]
    >>> trailing_timesteps(61)[-2:]    # diffusers: ..., 32, 15, -1
    [32, 15]
    """
    from ..errors import ArgumentError

    # checked, not converted: int(2.7) gave 2 timesteps, int("4") 4, int(True) 1
    steps, n_train = check_int(steps, "steps"), check_int(num_train_timesteps, "num_train_timesteps", minimum=1)
    if not 1 <= steps <= n_train:
        raise ArgumentError(f"steps must be in [1, {n_train}] (the training timesteps), got {steps}.")
    # the same float arange as diffusers (a linspace would round x.5 differently for e.g. 48 steps)
    return [int(t) for t in np.round(np.arange(n_train, 0, -n_train / steps))[:steps].astype(np.int64) - 1]


def trailing_timesteps_marks(steps: int, num_train_timesteps: int = 1000) -> dict[str, str]:
    """``{"timesteps": "exact"}`` for a step count whose trailing timesteps lost diffusers'
    extra ``-1`` (:func:`trailing_timesteps`, 2026-12-06), else ``{}``. Its frames changed, so
    renders, inversion and pacing caches record it (:meth:`Decoder.sampling_marks`): one made
    before is never resumed with new frames, and the renders of every other count still are.
    """
    steps, n_train = int(steps), int(num_train_timesteps)
    if not 1 <= steps <= n_train:
        return {}
    return {"timesteps": "exact"} if len(np.arange(n_train, 0, -n_train / steps)) != steps else {}


def no_refine_reason(decoder_type: str, name: object) -> str:
    """Why a decoder of class ``decoder_type`` called ``name`` refuses ``refine > 0``, with the fix
    (:meth:`Decoder._no_refine_reason`; render_spec says it before such a preset's models load)."""
    return (f"refine: decoder {decoder_type} ({name!r}) cannot refine inverted noise "
            "(implemented for the mini decoder); pass refine=0.")  # fmt: skip


class Decoder:
    """Base class of every decoder.

    Attributes:
        name: the preset or model id, recorded in render manifests.
        space: name of the CLIP space whose image embeddings it understands.
        dim: embedding size ``d``.
        resolution: side of the square frames it returns, in pixels.
        default_steps: sampler steps used when ``steps`` is not given.
        default_guidance: classifier-free guidance scale used when not given.
        default_batch_size: frames per :meth:`decode` call when the caller does not say.
        serial_calls: whether calls share state, so that threads sharing this decoder take
            turns (:meth:`decode` and :meth:`invert` hold its lock, as do the diffusers decoders'
            ``invert_latents``, Karlo's ``decode_base`` and the calls that run their image
            encoder: each frees the pipeline's model hooks at its end): True for the diffusers
            decoders (their pipeline's one scheduler), False for ``mini``, whose calls run at
            once.
    """

    name: str = "decoder"
    space: str | None = None
    dim: int = 0
    resolution: int = 0
    default_steps: int = 20
    default_guidance: float = 1.0
    default_batch_size: int = 8
    serial_calls: bool = False

    # -- what subclasses implement ---------------------------------------------------
    def noise_shape(self) -> tuple[int, ...]:
        """Shape of one frame's starting noise, e.g. ``(4, 96, 96)`` for a latent decoder."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement noise_shape() -> tuple of ints: the shape of one frame's "
            "starting noise (see latentlab.Decoder)."
        )

    def _decode(
        self,
        embeddings: torch.Tensor,
        noise: torch.Tensor,
        *,
        seeds: Sequence[int],
        steps: int,
        guidance_scale: float,
    ) -> np.ndarray:
        """Render a validated batch. ``embeddings`` (b, d) float32 unit-norm on the CPU;
        ``noise`` (b, *noise_shape) float32 on the CPU; ``seeds`` one int per frame for any
        randomness beyond the starting noise (so frame k never depends on its batch).
        Returns uint8 (b, H, W, 3), a new array each call (:meth:`decode` copies it, so a
        buffer reused between calls cannot change frames already returned)."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement _decode(embeddings, noise, *, seeds, steps, guidance_scale) -> "
            "uint8 numpy array (b, H, W, 3) (see latentlab.Decoder)."
        )

    def _invert(
        self,
        images: np.ndarray,
        embeddings: torch.Tensor,
        *,
        steps: int,
        guidance_scale: float,
    ) -> torch.Tensor:
        """Invert a validated batch: ``images`` uint8 (b, H, W, 3), ``embeddings`` (b, d)
        unit-norm float32 on the CPU -> starting noise (b, *noise_shape) float32 on the CPU.
        Decoders that can run their sampler backwards (DDIM) override this."""
        from ..errors import LatentlabError

        raise LatentlabError(
            f"decoder {type(self).__name__} ({self.name!r}) cannot invert images to their starting noise; "
            "use noise='slerp' or 'shared' instead of 'inverted'."
        )

    def _refine(
        self,
        images: np.ndarray,
        embeddings: torch.Tensor,
        noise: torch.Tensor,
        *,
        iterations: int,
        steps: int,
        guidance_scale: float,
        on_step: Callable[[], None] | None = None,
    ) -> torch.Tensor:
        """Improve inverted ``noise`` (b, *noise_shape) by ``iterations`` gradient steps so
        that decoding it with ``steps`` and ``guidance_scale`` redraws ``images`` more closely,
        calling ``on_step()`` after each. Decoders with a differentiable sampler override this
        (see :meth:`invert`)."""
        from ..errors import ArgumentError

        raise ArgumentError(self._no_refine_reason())

    def _check_refinable(self) -> None:
        """Raise an :class:`ArgumentError` naming the fix where this decoder cannot refine inverted
        noise (:attr:`supports_refine` is False), or cannot now (a subclass's own reason). Called
        by :meth:`invert`, and by ``render_spec`` before the keyframes are encoded."""
        if not self.supports_refine:
            from ..errors import ArgumentError

            raise ArgumentError(self._no_refine_reason())

    def _no_refine_reason(self) -> str:
        """Why :meth:`invert` refuses ``refine > 0`` (when :attr:`supports_refine` is False), with the fix."""
        return no_refine_reason(type(self).__name__, self.name)

    def max_steps(self) -> int | None:
        """The most sampler steps :meth:`decode` and :meth:`invert` take, or None if unknown:
        the sampler's training timesteps, or fewer where its timestep spacing would start a
        larger count past them (see :meth:`_max_steps_reason`)."""
        return None

    def sampling_marks(self, steps: int) -> dict[str, Any]:
        """What besides ``steps`` and guidance says how this decoder samples at ``steps``, for
        render fingerprints and cache keys (:func:`latentlab.render.sampling_settings`): empty
        unless a fix changed the frames of some step counts only (see
        :func:`trailing_timesteps_marks`)."""
        return {}

    def inversion_marks(self, refine: int) -> dict[str, Any]:
        """What besides steps, guidance and :meth:`describe` changes what :meth:`invert` returns
        with ``refine`` refining steps (a decoder's inversion settings, such as
        ``inversion_iterations``), for the inverted noise's cache key
        (:func:`latentlab.jobs.keyframe_noise`): each only where it is not its default, so caches
        of renders at the defaults stay valid. Empty here."""
        return {}

    def _max_steps_reason(self) -> str:
        """Why :meth:`max_steps` is the limit, for the error that refuses more steps."""
        return "the sampler's training timesteps"

    def _check_steps(self, steps: object) -> int:
        """``steps`` as an int in ``[1, max_steps()]``; else an ArgumentError naming ``steps``
        and the largest count allowed (a raw IndexError / ValueError from diffusers otherwise)."""
        from ..errors import ArgumentError

        # checked, not converted: int(2.7) would run 2 steps
        steps = check_int(steps, "steps", minimum=1)
        limit = self.max_steps()
        if limit is not None and steps > limit:
            raise ArgumentError(f"steps must be <= {limit} ({self._max_steps_reason()}), got {steps}.")
        return steps

    #: gradient steps :meth:`invert` spends on refining the noise when its ``refine`` is ``None``
    default_inversion_refine: int = 0

    @property
    def supports_inversion(self) -> bool:
        """Whether :meth:`invert` is implemented (e.g. by DDIM inversion)."""
        return type(self)._invert is not Decoder._invert

    @property
    def reads_captions(self) -> bool:
        """Whether :meth:`decode` also takes ``captions=[...]``, one per row, which the
        decoder reads beside the embeddings, as DALL-E 2's decoder reads its caption
        (:func:`latentlab.generate` passes the prompt when it does; subclasses that do
        implement ``_decode_captioned``). Renders never pass them."""
        return False

    @property
    def supports_refine(self) -> bool:
        """Whether :meth:`invert` can refine its noise by gradient steps (``refine > 0``)."""
        return type(self)._refine is not Decoder._refine

    @classmethod
    def can_before_loading(cls, feature: str, options: dict[str, Any]) -> bool | None:
        """Whether a decoder of this class built with the builder keywords ``options`` (a
        preset's decoder spec) will have ``feature``, told without building it: ``"eta"``
        (``decode_eta``: eta > 0), ``"invert"`` (:attr:`supports_inversion`) or ``"refine"``
        (:attr:`supports_refine`); ``None`` where only the built decoder can tell. Renders
        read it (:func:`latentlab.presets.decoder_can`) to refuse before any model loads.
        A subclass whose capability depends on an option (a sampler) overrides it."""
        if feature == "eta":
            return hasattr(cls, "decode_eta")
        if feature == "refine":
            return cls._refine is not Decoder._refine
        if feature == "invert":
            return cls._invert is not Decoder._invert
        return None

    def __repr__(self) -> str:
        scale = getattr(self, "embed_scale", None)
        extra = f", embed_scale={scale:.4g}" if isinstance(scale, (int, float)) else ""
        return (f"{type(self).__name__}(name={self.name!r}, space={self.space!r}, dim={self.dim}, "
                f"resolution={self.resolution}{extra}, device={str(getattr(self, 'device', 'cpu'))!r})")  # fmt: skip

    def describe(self) -> dict[str, Any]:
        """What a render manifest records about this decoder (JSON-serialisable).

        A render folder is resumed by a decoder whose ``describe()`` is equal to the one its
        manifest recorded, so a subclass must record every setting of its own that changes
        the frames (weights, scales, sampler options) by overriding this and adding to
        ``super().describe()``; a setting left out here is not seen, and a folder rendered
        with another value of it is resumed, mixing the two renders' frames. (latentlab cannot
        tell a subclass's settings from its other attributes, such as counters.)

        Decoders wrapping a diffusers pipeline (``self.pipe``) also record ``revision``: the
        Hugging Face hub commit their files were loaded from, when they came from the hub
        cache (see :func:`snapshot_revision`), so a manifest says which weights drew it."""
        d = {
            "class": type(self).__name__,
            "name": self.name,
            "space": self.space,
            "dim": self.dim,
            "resolution": self.resolution,
        }
        pipe = getattr(self, "pipe", None)
        if pipe is not None:
            d["revision"] = snapshot_revision(pipe)
        return d

    # -- the public surface ----------------------------------------------------------
    def decode(
        self,
        embeddings: torch.Tensor,
        noise: torch.Tensor,
        *,
        seeds: Sequence[int] | None = None,
        steps: int | None = None,
        guidance_scale: float | None = None,
        captions: Sequence[str] | None = None,
    ) -> np.ndarray:
        """Render one batch: ``embeddings`` (b, d) and ``noise`` (b, *noise_shape()) -> uint8 (b, H, W, 3).

        ``captions``: one caption per row (e.g. the prompts a prior turned into
        ``embeddings``), read beside the embeddings by a decoder that reads captions
        (:attr:`reads_captions`), as DALL-E 2's decoder reads its caption; ``None`` (as every
        render) draws from the embeddings alone. A caption longer than the decoder's text tower
        reads (``mini``: 32 tokens; Karlo and Stable unCLIP: 77) is cut to fit, with a warning, as
        :meth:`~latentlab.Encoder.encode_text` warns of a prompt it cuts.

        ``seeds``: one int per row for any randomness beyond the starting noise (``eta > 0``,
        stochastic samplers), so a frame never depends on its batch; ``None``: ``0, 1, ...``.

        ``steps``: sampler steps, 1 to :meth:`max_steps`. ``guidance_scale`` (>= 0):
        classifier-free guidance, ``uncond + g * (cond - uncond)``. Scales in ``[0, 1]`` differ
        between families: the diffusers decoders (Stable unCLIP, ``tiny``, Kandinsky 2.2,
        Karlo) guide only when ``g > 1``, as their pipelines do, so any ``g <= 1`` draws the
        same frames as ``g = 1`` (the conditional model alone); ``mini`` applies the formula
        for every ``g != 1``, so ``g = 0`` draws the unconditional picture (the embedding
        ignored) and ``0 < g < 1`` blends towards it."""
        from ..errors import ArgumentError

        if captions is not None:
            if not self.reads_captions:
                raise ArgumentError(self._no_captions_reason())
            # read once, as a list: all() used up a generator, whose len() was then a raw TypeError
            # (as was an int's iteration)
            if not isinstance(captions, (str, bytes)) and hasattr(captions, "__iter__"):
                captions = list(captions)
            if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
                raise ArgumentError(f"captions must be a list of strings, one per embedding, got {captions!r}.")
            for i, c in enumerate(captions):  # refused as encode_text refuses it (the tokenizer drew another caption)
                check_text(c, f"captions[{i}]")
        z, x, seeds, steps, guidance = self._checked_batch(embeddings, noise, seeds, steps, guidance_scale)
        if captions is not None and len(captions) != len(z):
            raise ArgumentError(f"captions has {len(captions)} entries for {len(z)} embeddings; give one per row.")
        with one_call_at_a_time(self):
            if captions is None:
                out = self._decode(z, x, seeds=seeds, steps=steps, guidance_scale=guidance)
            else:
                out = self._decode_captioned(z, x, list(captions), seeds=seeds, steps=steps, guidance_scale=guidance)
            return self._checked_frames(out, len(z))  # copied before another thread's call may reuse the buffer

    def _checked_frames(self, out: Any, rows: int) -> np.ndarray:
        """What :meth:`_decode` returned, checked to be uint8 ``(rows, H, W, 3)``, and copied: a
        decoder that reuses one output buffer would otherwise change frames already returned
        (and, in a render, the PNGs written from them)."""
        from ..errors import LatentlabError

        shape = tuple(getattr(out, "shape", ()))
        if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or len(shape) != 4 or shape[0] != rows or shape[-1] != 3:
            hints = []  # every fix that applies, in the order to make them
            tensor = isinstance(out, torch.Tensor)
            if len(shape) == 4 and shape[1] == 3 and shape[-1] != 3:
                hints.append("it looks channels-first: put the channels last, e.g. "
                             + ("out.permute(0, 2, 3, 1)" if tensor else "out.transpose(0, 2, 3, 1)"))  # fmt: skip
            elif len(shape) == 4 and shape[-1] == 4:
                hints.append("it has 4 channels (RGBA?): return the RGB ones, out[..., :3]")
            if tensor:
                hints.append("return a numpy array: out.cpu().numpy()")
            if getattr(out, "dtype", None) is not None and (out.dtype.is_floating_point if tensor else np.issubdtype(out.dtype, np.floating)):
                hints.append("convert float pixels in [0, 1] with (out * 255).round().clip(0, 255) as uint8")
            hint = f" Fix: {'; then '.join(hints)}." if hints else ""
            raise LatentlabError(
                f"decoder {type(self).__name__} returned {type(out).__name__} {getattr(out, 'dtype', '')} {shape} from "
                f"its _decode; a decoder returns uint8 frames ({rows}, H, W, 3), one per embedding.{hint}"
            )
        return np.array(out, copy=True)

    def _unit_rows(self, embeddings: Any) -> torch.Tensor:
        """``embeddings`` checked (this decoder's size and space, no zero row) as unit-norm CPU
        float32 rows."""
        from ..errors import LatentlabError

        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 1:
            raise LatentlabError(f"decoder {type(self).__name__} has dim={self.dim!r}; a decoder sets dim, the size of "
                                 "the embeddings it decodes (see latentlab.Decoder).")  # fmt: skip
        z = check_embeddings(embeddings, name="embeddings", dim=self.dim, space=self.space, expected_by="the decoder")
        z = float32_rows(z.detach().to("cpu"))  # (a float64 row of 1e39 came out infinite, of 1e-300 zero)
        refuse_zero_rows(z, "embeddings row(s)", " to decode. Fix: drop those rows (a padding row?), or give each an embedding.")
        # (normalize scales a row whose length overflows float32 or is below 1e-12 first; every
        # other row is divided by its norm, bit for bit)
        return normalize(z)

    def _checked_noise(self, noise: Any, n: int) -> torch.Tensor:
        """``noise`` checked for a batch of ``n`` rows (this decoder's noise shape, finite as the
        float32 the decoder reads) as CPU float32."""
        from ..errors import ArgumentError

        shape = (n, *self.noise_shape())
        if not isinstance(noise, torch.Tensor) or tuple(noise.shape) != shape:
            got = tuple(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__
            raise ArgumentError(f"noise must have shape {shape} for this batch, got {got}.")
        if not noise.is_floating_point():  # (integer or bool noise drew frames of it; complex lost its imaginary part)
            raise ArgumentError(f"noise must be a floating tensor (e.g. torch.randn), got dtype {noise.dtype}.")
        x = noise.detach().to("cpu", torch.float32)
        # checked as _decode gets it: float64 noise beyond float32's range (1e39) came out infinite
        finite = torch.isfinite(x).flatten(1).all(dim=1)
        if not bool(finite.all()):  # it drew black frames without a word
            rows = (~finite).nonzero()[:, 0].tolist()
            raise ArgumentError(f"noise holds NaN or infinite values (rows {rows[:8]}) as the float32 the decoder reads; "
                                "draw it with torch.randn, or check the noise it came from (decoder.invert's output, "
                                "keyframe_noise).")  # fmt: skip
        return x

    def _decode_captioned(self, embeddings: torch.Tensor, noise: torch.Tensor, captions: list[str], *,
                          seeds: list[int], steps: int, guidance_scale: float) -> np.ndarray:  # fmt: skip
        """:meth:`_decode` with one caption per row; decoders whose :attr:`reads_captions` can be
        True implement it (arguments checked as :meth:`_decode`'s, ``captions`` as many as rows)."""
        raise NotImplementedError

    def _no_captions_reason(self) -> str:
        """Why :meth:`decode` refuses captions (when :attr:`reads_captions` is False), with the fix."""
        return f"captions: decoder {type(self).__name__} ({self.name!r}) reads no captions; leave captions out."

    def _checked_batch(
        self,
        embeddings: torch.Tensor,
        noise: torch.Tensor,
        seeds: Sequence[int] | None,
        steps: int | None,
        guidance_scale: float | None,
    ) -> tuple[torch.Tensor, torch.Tensor, list[int], int, float]:
        """:meth:`decode`'s arguments checked and completed: unit-norm CPU float32 embeddings
        of this decoder's space, CPU float32 noise of the batch's shape, one seed per row, and
        the steps and guidance (the decoder's defaults where ``None``)."""
        from ..errors import ArgumentError

        z = self._unit_rows(embeddings)
        x = self._checked_noise(noise, z.shape[0])
        if seeds is not None and (isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__")
                                  or getattr(seeds, "ndim", 1) == 0):  # fmt: skip
            # (a bare int, or a 0-d array or tensor, was a raw TypeError: not iterable)
            raise ArgumentError(f"seeds must be a list of integers, one per embedding, got {seeds!r}.")
        seeds = list(range(z.shape[0])) if seeds is None else [check_seed(s, "seeds[...]") for s in seeds]
        if len(seeds) != z.shape[0]:
            raise ArgumentError(f"seeds has {len(seeds)} entries for {z.shape[0]} embeddings; give one per frame.")
        steps = self._check_steps(self.default_steps if steps is None else steps)
        guidance = check_number(self.default_guidance if guidance_scale is None else guidance_scale, "guidance_scale", minimum=0)
        return z, x, seeds, steps, guidance

    def invert(
        self,
        images: Any,
        embeddings: torch.Tensor,
        *,
        steps: int | None = None,
        guidance_scale: float = 1.0,
        refine: int | None = None,
        decode_guidance: float | None = None,
        progress: bool | None = None,
    ) -> torch.Tensor:
        """The starting noise from which this decoder redraws ``images``: DDIM inversion.

        ``images``: uint8 ``(b, H, W, 3)`` or ``(H, W, 3)`` arrays (any size: a non-square image
        is centre-cropped to a square first, the region the CLIP encoders see, then resized to
        the decoder's native size), or a list of them. ``embeddings``: ``(b, d)``, normally each
        image's own CLIP image embedding. Returns float32 noise ``(b, *noise_shape())`` such
        that ``decode(embeddings, noise, steps=steps)`` reproduces the images as closely as
        the sampler allows. Decode with the same ``steps`` (the decoder's default when
        ``None``, as in a render).

        ``guidance_scale`` of the inversion defaults to 1 (no classifier-free guidance), the
        usual choice: guidance amplifies the mismatch between the inverted and the sampled
        path (Mokady et al. 2022, "Null-text Inversion"). Decoding may still use the
        decoder's guidance; docs/quality.md measures both.

        ``refine``: after the inversion, this many gradient steps (Adam) on the noise itself,
        through the sampler, so that decoding it with ``steps`` and ``decode_guidance`` (the
        decoder's default guidance when ``None``) redraws the image more closely in pixels.
        Each noise keeps the length the inversion gave it (after every step it is scaled back
        to it, so slerps between inverted noises behave as before), and each image keeps the
        noise of its lowest error, so refining never makes a redraw
        worse than the inversion's. ``None``: the decoder's ``default_inversion_refine``
        (20 for ``mini``, 0 for decoders that cannot refine). Refining is implemented for
        ``mini`` (:attr:`supports_refine`); it costs about three decodes per step.

        ``progress``: a tqdm bar over the refining steps (``None``: shown when refining, the
        slow part; seconds per picture on a CPU).

        >>> dec = ll.create_decoder("mini")                               # doctest: +SKIP
        >>> noise = dec.invert(image, enc.encode_image(image))            # doctest: +SKIP
        >>> again = dec.decode(enc.encode_image(image), noise)            # doctest: +SKIP
        """
        from ..errors import ArgumentError, check_bool

        # checked first, whether or not there is a bar to show (refine=0 took progress="no" silently)
        progress = True if progress is None else check_bool(progress, "progress")
        if isinstance(images, (list, tuple)):
            if not images:
                raise ArgumentError("images is an empty list; give at least one uint8 (H, W, 3) image.")
            arrays = [np.asarray(im) for im in images]
            if len({a.shape for a in arrays}) > 1:
                # several sizes: each image inverted on its own, exactly as alone (a shared resize
                # first would make an image's noise depend on the batch it came in)
                z = check_embeddings(embeddings, name="embeddings", dim=self.dim, space=self.space, expected_by="the decoder")
                if z.shape[0] != len(arrays):
                    raise ArgumentError(f"embeddings has {z.shape[0]} rows for {len(arrays)} images; give one per image.")
                return torch.cat([self.invert(a, z[i : i + 1], steps=steps, guidance_scale=guidance_scale, refine=refine,
                                              decode_guidance=decode_guidance, progress=progress)
                                  for i, a in enumerate(arrays)])  # fmt: skip
            images = np.stack(arrays)
        if isinstance(images, torch.Tensor):
            images = images.detach().cpu().numpy()
        if not isinstance(images, np.ndarray):
            raise ArgumentError(f"images must be uint8 arrays (b, H, W, 3), got {type(images).__name__}. For a picture "
                                "file or a PIL image, pass ll.load_image(path) or np.asarray(pil.convert('RGB')).")  # fmt: skip
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ArgumentError(
                f"images must be uint8 (b, H, W, 3) RGB, got {images.dtype} {tuple(images.shape)}; "
                "load files with ll.load_image(path)."
            )
        if 0 in images.shape[1:3]:  # (a 0x0 picture was resized into a frame of its own)
            raise ArgumentError(f"images must be at least 1x1 pixels, got {tuple(images.shape)}.")
        z = self._unit_rows(embeddings)
        if z.shape[0] != images.shape[0]:
            raise ArgumentError(f"embeddings has {z.shape[0]} rows for {images.shape[0]} images; give one per image.")
        # checked, not converted: int(2.7) would invert with 2 steps, and decoding with 2.7 is refused
        steps = self._check_steps(self.default_steps if steps is None else steps)
        guidance = check_number(guidance_scale, "guidance_scale", minimum=0)
        n = (self.default_inversion_refine if self.supports_refine else 0) if refine is None else refine
        n = check_int(n, "refine", minimum=0)  # gradient steps
        if n:  # (refused after the first image's inversion, behind a progress bar)
            self._check_refinable()
        dg = self.default_guidance if decode_guidance is None else decode_guidance
        dg = check_number(dg, "decode_guidance", minimum=0)
        images = np.ascontiguousarray(centre_square(images))  # (squashed into a square before 2026-12-06)
        # (an overflowing sampler gave NaN noise, cached by renders and refused only when drawn, naming neither)
        overflow = {"what": "inverted images to NaN or infinite noise", "harm": "every frame drawn from it would be black"}  # fmt: skip
        if n == 0:
            with one_call_at_a_time(self):
                noise = self._invert(images, z, steps=steps, guidance_scale=guidance)
            refuse_nonfinite_pixels(noise, self, guidance, **overflow)
            return noise
        # refined image by image: in one batch, the UNet's last-bit differences between batch
        # sizes flip the optimiser's early sign-like steps where a gradient is near zero, and an
        # image's refined noise would depend on the images inverted with it
        from .._bars import progress_bar

        out = []
        with progress_bar(progress, total=images.shape[0] * n, desc="refine inverted noise", unit="step",
                          leave=False) as bar:  # fmt: skip
            for i in range(images.shape[0]):
                im, zi = images[i : i + 1], z[i : i + 1]
                with one_call_at_a_time(self):
                    start = self._invert(im, zi, steps=steps, guidance_scale=guidance)
                    out.append(self._refine(im, zi, start, iterations=n, steps=steps, guidance_scale=dg,
                                            on_step=lambda: bar.update(1)))  # fmt: skip
        noise = torch.cat(out)
        refuse_nonfinite_pixels(noise, self, guidance, **overflow)
        return noise

    def render(
        self,
        trajectory: Any,
        *,
        seed: int = 0,
        out_dir: str | os.PathLike[str] | None = None,
        callback: Callable[[dict[str, Any]], None] | None = None,
        progress: bool = True,
        **kwargs: Any,
    ) -> np.ndarray:
        """Render every point of ``trajectory`` (a :class:`~latentlab.Trajectory` or an
        ``(T, d)`` tensor) to uint8 frames ``(T, H, W, 3)``: :func:`latentlab.render.render`
        with this decoder, whose ``seed``, ``out_dir``, ``callback``, ``progress`` and other
        keyword arguments (``**kwargs``: ``noise``, ``steps``, ``guidance_scale``, ...) it takes.

        >>> import latentlab as ll                                   # doctest: +SKIP
        >>> frames = ll.create_decoder("tiny").render(path, seed=0)  # doctest: +SKIP
        """
        from ..render import render

        return render(
            trajectory, self, seed=seed, out_dir=out_dir, callback=callback, progress=progress, **kwargs
        )
