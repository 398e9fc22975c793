"""Edits that go through the decoder and back: iterative text diffs and variations.

A single DALL-E 2 text diff slerps an image embedding towards ``normalize(z_to - z_from)``
once. :func:`iterative_text_diff` applies it in small steps and, between steps, *decodes and
re-encodes*: each step starts from the embedding of the picture actually drawn, so the edit
follows what the decoder can show rather than drifting off in embedding space. It stops
when the picture's CLIP similarity to the destination caption reaches ``target``. A step
too small to change the picture (the decoder redraws what it drew before) is not kept: the
next try from the same picture takes a larger angle (``adaptive``).

>>> import latentlab as ll                                                   # doctest: +SKIP
>>> from pathlib import Path                                                 # doctest: +SKIP
>>> from latentlab.demo import make_inputs                                   # doctest: +SKIP
>>> red_circle, _ = make_inputs(Path("inputs"))  # the demo's red_circle.png  # doctest: +SKIP
>>> enc, dec = ll.create_encoder("mini"), ll.create_decoder("mini")           # doctest: +SKIP
>>> run = ll.iterative_text_diff(enc, dec, red_circle, "a red circle", "a blue circle",
...                              theta_step=0.2, target=0.75, max_steps=6)     # doctest: +SKIP
>>> run.frames.shape, [round(s, 2) for s in run.similarity], run.reached     # doctest: +SKIP
((4, 64, 64, 3), [0.58, 0.66, 0.74, 0.82], True)

On ``mini`` (the shipped weights), the red circle that ``make demo`` starts from (drawn by
``latentlab.demo.make_inputs`` from the shapes world) is redrawn at a cosine of about 0.58 to
"a blue circle"; three kept steps of 0.2 take it past the target, the circle turning half
blue and then blue. The figures depend on the picture: from the plain PIL disc the demo falls
back to without the shapes world (``latentlab.demo._shape_picture``), one step of 0.2 does it
(0.60 -> 0.89). Pick ``target`` above the first frame's similarity, or the run stops at once.

:func:`variations` draws one embedding several times: with fresh starting noise
(``"reroll"``: different pictures of the same CLIP content), or around an image, from its
DDIM-inverted noise with a little fresh noise at every sampler step (``"inverted"``,
DDIM ``eta`` > 0: pictures that stay centred on the input).

:func:`generate` is DALL-E 2's text-to-image: the prior draws ``n`` image embeddings for one
caption, and the decoder draws each; a decoder that reads captions (``mini``, Karlo, Stable
unCLIP) is given the caption too, as DALL-E 2's decoder is.
"""

from __future__ import annotations

import numbers
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .errors import ArgumentError, check_bool, check_int, check_seed, check_seeds_fit

__all__ = ["IterativeEdit", "iterative_text_diff", "variations", "generate", "VARIATION_MODES"]

VARIATION_MODES = ("reroll", "inverted")


_MODEL_PARTS = {
    "encoder": (("encode_text",), "Encoder", "ll.create_encoder(preset)"),
    "decoder": (("decode", "noise_shape"), "Decoder", "ll.create_decoder(preset)"),
    "prior": (("__call__", "dim", "space"), "Prior", "ll.create_prior(preset)"),
}


def _check_parts(call: str, *, needs: dict[str, tuple[str, ...]] | None = None, **parts: Any) -> None:
    """Each of ``parts`` (encoder=, decoder=, prior=) must look like that kind of model (have
    the methods ``needs`` names for it, by default the ones most calls use); the error names
    the argument, what it got and ``call``'s argument order."""
    for name, obj in parts.items():
        default, kind, make = _MODEL_PARTS[name]
        wanted = (needs or {}).get(name, default)
        if obj is None or isinstance(obj, (torch.Tensor, np.ndarray, str)) or not all(hasattr(obj, a) for a in wanted):
            raise ArgumentError(f"{name} must be a latentlab {kind} ({make}), got {type(obj).__name__}; the call is {call}.")


@dataclass(repr=False, eq=False)  # identity: == compared arrays and raised a raw ValueError
class IterativeEdit:
    """What :func:`iterative_text_diff` produced.

    Attributes:
        frames: uint8 ``(n + 1, H, W, 3)``; frame 0 is the decode of the start embedding.
        embeddings: ``(n + 1, d)`` the embeddings decoded: row 0 the start, row ``k`` the text
            diff applied to the re-encoded frame ``k - 1``.
        similarity: ``n + 1`` cosines between each frame's CLIP image embedding and the
            destination caption's text embedding.
        reached: whether ``similarity`` reached ``target`` (``False`` without a target).
        thetas: ``n + 1`` text-diff angles (fractions, as ``theta_step``) that produced each
            frame from the one before (0 for frame 0).
        tries: every text-diff step tried, kept or not: ``(theta, similarity, kept)``.
    """

    frames: np.ndarray
    embeddings: torch.Tensor
    similarity: list[float]
    reached: bool
    thetas: list[float] = field(default_factory=list)
    tries: list[tuple[float, float, bool]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def __repr__(self) -> str:
        sims = ", ".join(f"{s:.3f}" for s in self.similarity)
        return (
            f"IterativeEdit({len(self)} frames of {self.frames.shape[2]}x{self.frames.shape[1]}, "
            f"reached={self.reached}, similarity=[{sims}], {len(self.tries)} steps tried)"
        )

    @property
    def labels(self) -> list[str]:
        """Each frame's label on a contact sheet (``ll.show(edit)``): its cosine to the destination caption."""
        return [f"cos {s:.3f}" for s in self.similarity]

    def _repr_html_(self) -> str:
        from .notebook import show

        return show(self.frames, labels=self.labels)._repr_html_()


def _one_embedding(z: Any, name: str, dim: int | None, space: str | None) -> torch.Tensor:
    """``z`` as one embedding ``(1, d)`` (a ``(d,)`` vector is one too) of size ``dim`` and
    space ``space``; the error names ``name`` and what was found (type or shape)."""
    from .space import check_embeddings

    if isinstance(z, np.ndarray):
        raise ArgumentError(
            f"{name} must be a torch.Tensor, one embedding (1, d) or (d,), got a numpy ndarray of shape "
            f"{tuple(z.shape)}. Fix: pass torch.from_numpy({name}) (or the encoder's output itself)."
        )
    z = check_embeddings(z, name=name, dim=dim, space=space)  # names the type of a non-tensor
    if z.shape[0] != 1:
        raise ArgumentError(
            f"{name} must be one embedding (1, d) or (d,), got shape {tuple(z.shape)}. Fix: pass one row, e.g. {name}[i:i + 1]."
        )
    return z


def _is_embedding(x: Any) -> bool:
    """A floating tensor of one or two dimensions is an embedding (an image tensor has three)."""
    return isinstance(x, torch.Tensor) and x.dtype.is_floating_point and x.ndim in (1, 2)


def _start_embedding(encoder: Any, image_or_embedding: Any) -> torch.Tensor:
    x = image_or_embedding
    if isinstance(x, np.ndarray) and x.dtype.kind == "f" and (x.ndim == 1 or (x.ndim == 2 and x.shape[0] == 1)):
        _one_embedding(x, "image_or_embedding", encoder.dim, encoder.space)  # an embedding, not a 1-pixel-high picture: refused
    if _is_embedding(image_or_embedding):
        from .space import tag

        z = _one_embedding(image_or_embedding, "image_or_embedding", encoder.dim, encoder.space)  # not another space's
        return tag(torch.nn.functional.normalize(z.detach().float().cpu(), dim=-1), encoder.space)
    try:
        z = encoder.encode_image(image_or_embedding)
    except ArgumentError as exc:  # named encode_image's argument, "images", which this call does not have
        text = str(exc)
        if not text.startswith("images"):
            raise
        raise type(exc)("image_or_embedding" + text[len("images"):]) from None
    if z.shape[0] != 1:
        raise ArgumentError(f"image_or_embedding must be one image, got {z.shape[0]}.")
    return z


def _auto_progress(progress: Any, decodes: int) -> bool:
    """``progress``: ``None`` means a bar only when there is more than one decode to wait for."""
    if progress is None:
        return decodes > 1
    if not isinstance(progress, (bool, np.bool_)):
        raise ArgumentError(f"progress must be True, False or None (a bar when there is more than one decode), got {progress!r}.")
    return bool(progress)


def iterative_text_diff(
    encoder: Any,
    decoder: Any,
    image_or_embedding: Any,
    src_text: str | None,
    dst_text: str,
    *,
    theta_step: float = 0.15,
    target: float | None = None,
    max_steps: int = 8,
    seed: int = 0,
    steps: int | None = None,
    guidance_scale: float | None = None,
    adaptive: bool = True,
    grow: float = 1.6,
    min_gain: float = 0.01,
    noise: str = "shared",
    refine: int | None = None,
    progress: bool | None = None,
) -> IterativeEdit:
    """Apply a text diff in steps, decoding and re-encoding between them.

    Args:
        encoder, decoder: of one CLIP space.
        image_or_embedding: the start: an image (path, PIL, uint8 array) or an embedding (1, d)
            or (d,) (a floating tensor).
        src_text: a caption of the start (``None``: the neutral ``"a photo"``).
        dst_text: the caption to move towards.
        theta_step: the text diff's angle fraction per step (small: 0.1-0.3).
        target: stop once a frame's cosine to ``dst_text`` reaches this (``None``: run
            ``max_steps``). The scale depends on the CLIP model; read it off a first run.
        max_steps: at most this many text-diff steps tried, i.e. decodes after the first
            (frames: at most ``max_steps + 1``).
        seed: seed of the one starting noise every step shares (so changes come from the
            embedding, not the noise).
        steps, guidance_scale: decoder settings.
        adaptive: keep a step only if its frame's cosine to ``dst_text`` rose by at least
            ``min_gain``; otherwise try again from the same frame with the angle times
            ``grow`` (at most 1), and go back to ``theta_step`` after a kept step. A decoder
            redraws the picture it drew until the embedding leaves that picture's basin, so
            fixed small steps can stall for good; this finds the smallest angle (on the
            ladder ``theta_step * grow**k``) that moves it. It stops early when even the
            full angle does not help. ``False``: every step is kept at ``theta_step``.
        grow, min_gain: see ``adaptive``.
        noise: ``"shared"``: every step starts from the noise seeded ``seed``.
            ``"inverted"``: every step starts from the start picture's DDIM-inverted noise
            (``image_or_embedding`` must then be a picture, and the decoder able to invert),
            so frame 0 redraws the picture and the edits keep its layout, as the DALL-E 2
            paper's text diffs do.
        refine: ``noise="inverted"``: gradient steps refining the inverted noise
            (``refine`` of :meth:`Decoder.invert`; ``None``: the decoder's default).
        progress: a tqdm progress bar over the decodes (one per step tried); ``None``
            (default): one whenever there is more than the first decode (``max_steps >= 1``).

    Returns:
        an :class:`IterativeEdit` (frames, embeddings, similarity curve, reached).
    """
    from .render import make_noise
    from .spec import NEUTRAL_CAPTION

    if not isinstance(dst_text, str):
        raise ArgumentError(f"dst_text must be a caption string, got {type(dst_text).__name__}.")
    if src_text is not None and not isinstance(src_text, str):
        raise ArgumentError(f"src_text must be a caption string or None, got {type(src_text).__name__}.")
    if not _is_real(theta_step) or not 0 < theta_step <= 1:
        raise ArgumentError(f"theta_step must be a number in (0, 1], got {theta_step!r}.")
    max_steps = check_int(max_steps, "max_steps", minimum=0)
    seed = check_seed(seed)  # int(seed) refused None with a raw TypeError and took 1.7 as 1
    if target is not None and not _is_real(target):
        raise ArgumentError(f"target must be a number (a cosine) or None, got {target!r}.")
    if not _is_real(grow) or grow <= 1:
        raise ArgumentError(f"grow must be a number > 1 (the factor a stalled step's angle grows by), got {grow!r}.")
    if not _is_real(min_gain) or min_gain < 0:
        raise ArgumentError(f"min_gain must be a number >= 0 (a rise in cosine), got {min_gain!r}.")
    adaptive = check_bool(adaptive, "adaptive")  # "no" was True, None False, an array numpy's raw error
    if refine is not None:  # checked in either noise mode, as variations does: refine=-3 is not silently ignored
        check_int(refine, "refine", minimum=0)
    theta_step, grow, min_gain = float(theta_step), float(grow), float(min_gain)
    target = None if target is None else float(target)
    progress = _auto_progress(progress, max_steps + 1)
    _check_parts("iterative_text_diff(encoder, decoder, image_or_embedding, src_text, dst_text, ...)", encoder=encoder, decoder=decoder)
    if getattr(encoder, "space", None) != getattr(decoder, "space", None) or encoder.dim != decoder.dim:
        from .errors import SpaceError

        raise SpaceError(
            f"encoder space {getattr(encoder, 'space', None)!r} (d={encoder.dim}) and decoder space "
            f"{getattr(decoder, 'space', None)!r} (d={decoder.dim}) differ; use the encoder and decoder of one preset."
        )
    if not isinstance(noise, str) or noise not in ("shared", "inverted"):
        raise ArgumentError(f"noise must be 'shared' or 'inverted', got {noise!r}.")
    if noise == "inverted":  # (before encoding anything)
        if _is_embedding(image_or_embedding):
            raise ArgumentError("noise='inverted' needs the start picture (an image, not an embedding), to invert it.")
        if not getattr(decoder, "supports_inversion", False):
            raise ArgumentError(f"noise='inverted' needs a decoder that inverts images; {type(decoder).__name__} does not.")
    z = _start_embedding(encoder, image_or_embedding)
    src, dst = encoder.encode_text([src_text if src_text is not None else NEUTRAL_CAPTION, dst_text]).split(1)
    if max_steps > 0:  # captions that encode the same (no edit direction): refused now, not after the inversion and first decode
        from .ops import text_diff_direction

        text_diff_direction(src, dst)
    if noise == "inverted":
        from .encoders import _image_items

        # a path, PIL image, array or tensor, as encode_image takes; read again here, so not warned of again
        items = _image_items(image_or_embedding, warn_animated=False)
        if len(items) != 1:
            raise ArgumentError(f"image_or_embedding must be one picture, got {len(items)}.")
        picture = np.asarray(items[0].load(), dtype=np.uint8)
        start_noise = decoder.invert(picture, z, steps=steps, refine=refine, decode_guidance=guidance_scale, progress=False)
    else:
        start_noise = make_noise(tuple(decoder.noise_shape()), [int(seed)])

    from ._bars import progress_bar

    bar = progress_bar(progress, total=max_steps + 1, desc="text diff", unit="decode")

    def draw(e: torch.Tensor) -> tuple[np.ndarray, torch.Tensor, float]:
        frame = decoder.decode(e, start_noise, seeds=[int(seed)], steps=steps, guidance_scale=guidance_scale)
        back = encoder.encode_image(frame)
        bar.update(1)
        return frame[0], back, float((back * dst).sum())

    try:
        frames, embs, sims, thetas, tries, reached = _iterate(
            draw, z, src, dst, theta_step=theta_step, target=target, max_steps=max_steps, adaptive=adaptive,
            grow=grow, min_gain=min_gain,
        )
        from ._bars import set_total

        set_total(bar, bar.n)  # a run that stopped early (target reached, or stalled) is complete
    finally:
        bar.close()
    from .space import tag

    return IterativeEdit(np.stack(frames), tag(torch.cat(embs), encoder.space), sims, bool(reached), thetas, tries)


def _is_real(value: Any) -> bool:
    """A real number (numpy scalars too), not a bool, not NaN, not an integer too large for a
    float (``float(10**400)`` raised a raw OverflowError); infinities are numbers here."""
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)) or value != value:
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _iterate(draw: Any, z: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, *, theta_step: float,
             target: float | None, max_steps: int, adaptive: bool, grow: float, min_gain: float) -> tuple:  # fmt: skip
    """The steps of :func:`iterative_text_diff`: ``draw(embedding)`` decodes and re-encodes."""
    from .ops import text_diff

    frame, back, sim = draw(z)
    frames, embs, sims, thetas = [frame], [z], [sim], [0.0]
    tries: list[tuple[float, float, bool]] = []
    reached = target is not None and sim >= target
    theta = float(theta_step)
    for _ in range(max_steps):
        if reached:
            break
        z_try = text_diff(back, src, dst, theta)
        frame_try, back_try, sim_try = draw(z_try)
        hit = target is not None and sim_try >= target  # reaching the target is progress enough
        kept = not adaptive or hit or sim_try >= sims[-1] + min_gain
        tries.append((theta, sim_try, kept))
        if kept:
            frames.append(frame_try)
            embs.append(z_try)
            sims.append(sim_try)
            thetas.append(theta)
            back = back_try
            theta = float(theta_step)
            reached = target is not None and sim_try >= target
        elif theta >= 1.0:  # the whole diff from this picture does not move it: nothing left to try
            break
        else:
            theta = min(1.0, theta * grow)
    return frames, embs, sims, thetas, tries, reached


def variations(
    decoder: Any,
    embedding: torch.Tensor,
    *,
    n: int = 8,
    image: Any = None,
    mode: str | None = None,
    eta: float = 0.3,
    seed: int = 0,
    steps: int | None = None,
    guidance_scale: float | None = None,
    refine: int | None = None,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> np.ndarray:
    """``n`` variations of one embedding ``(1, d)``: uint8 ``(n, H, W, 3)``.

    Args:
        decoder: the decoder of the embedding's CLIP space.
        embedding: ``(1, d)`` (or ``(d,)``), a torch tensor, e.g. ``encoder.encode_image(image)``.
        n: how many.
        image: the picture the embedding came from (uint8 ``(H, W, 3)``, or a path to it);
            needed by ``mode="inverted"``.
        mode: ``"reroll"``: variation ``k`` starts from noise seeded ``seed + k`` (what the
            DALL-E 2 paper shows as variations); ``"inverted"``: every variation starts from
            the image's DDIM-inverted noise and the sampler adds fresh noise at each step
            (DDIM ``eta``), seeded ``seed + k``, so the variations stay centred on the
            input. Default: ``"inverted"`` when an ``image`` is given, else ``"reroll"``.
        eta: ``"inverted"`` mode: how far variations stray, in (0, 1] (0 would redraw the
            image n times; 1 is DDPM-like).
        seed, steps, guidance_scale: seeds and decoder settings.
        refine: ``"inverted"`` mode: gradient steps refining the inverted noise for
            ``guidance_scale`` (``refine`` of :meth:`Decoder.invert`; ``None``: the decoder's
            default).
        batch_size: variations per decoder call (``None``: the decoder's
            ``default_batch_size``), so a large ``n`` does not need the memory of all of them at
            once; a batch that does not fit in accelerator memory is retried halved, as
            :func:`latentlab.render` does. Variation ``k`` has the same seed and starting noise in
            any batch, so the pictures are those of one call of all ``n``, up to the float rounding
            batched kernels may do with a picture's place in a batch (none for a decoder whose rows
            are decoded independently).
        progress: tqdm bars over refining the inverted noise and over the decode (advanced
            batch by batch); ``None`` (default): shown when there is more than one decode to
            wait for (``"inverted"`` mode: the inversion, then the variations; ``"reroll"``:
            more than one batch).

    >>> frames = ll.variations(dec, enc.encode_image(img), image=img, n=4, eta=0.3)  # doctest: +SKIP
    """
    from .render import make_noise

    _check_parts("variations(decoder, embedding, n=..., ...)", decoder=decoder)
    mode = mode if mode is not None else ("inverted" if image is not None else "reroll")
    if not isinstance(mode, str) or mode not in VARIATION_MODES:
        raise ArgumentError(f"mode must be one of {VARIATION_MODES}, got {mode!r}.")
    n = check_int(n, "n", minimum=1)
    per_call = check_int(getattr(decoder, "default_batch_size", n) if batch_size is None else batch_size,
                         "batch_size", minimum=1)  # fmt: skip
    z = _one_embedding(embedding, "embedding", decoder.dim, decoder.space)  # refused as decode refuses it
    from .space import space_of, tag
    seed = check_seed(seed)
    check_seeds_fit(seed, n, "variation")
    seeds = [seed + k for k in range(n)]
    # checked in either mode, so a mistyped eta=5 or refine=-3 is not silently ignored; reroll uses
    # neither, so there eta may also be None or 0 (as it always could)
    if eta is not None and (not _is_real(eta) or not 0 <= eta <= 1):
        raise ArgumentError(f"eta must be a number in [0, 1] (mode='inverted': in (0, 1]), got {eta!r}.")
    if refine is not None:
        check_int(refine, "refine", minimum=0)
    batches = -(-n // per_call)
    progress = _auto_progress(progress, batches if mode == "reroll" else 1 + batches)

    def decoding(call: Any) -> np.ndarray:
        """``call(zs, seeds)`` for the variations batch by batch, under a bar advanced per batch: it
        cannot count the sampler's steps, but it says what is being waited for, and for how long
        (variations --eta were silent for most of a minute). A batch that runs out of accelerator
        memory is retried halved, as render does; the finished batches are kept."""
        from ._bars import progress_bar

        from .render import _halved_after_oom

        nonlocal per_call
        out: list[np.ndarray] = []
        with progress_bar(progress, total=n, desc="decode variations", unit="picture", leave=False) as bar:
            a = 0
            while a < n:
                part = seeds[a : a + per_call]
                # (expand makes a new tensor: keep the space for decode's check)
                zs = tag(z.expand(len(part), -1), space_of(z))
                try:
                    frames = call(zs, part)
                except Exception as exc:
                    per_call = _halved_after_oom(exc, len(part), "decoding a single variation")
                    continue
                out.append(frames)
                bar.update(len(part))
                a += len(part)
        return out[0] if len(out) == 1 else np.concatenate(out)

    if mode == "reroll":
        shape = tuple(decoder.noise_shape())
        return decoding(lambda zs, part: decoder.decode(zs, make_noise(shape, part), seeds=part, steps=steps,
                                                        guidance_scale=guidance_scale))  # fmt: skip
    if image is None:
        raise ArgumentError("mode='inverted' needs image= (the picture the embedding came from), to invert it.")
    if not getattr(decoder, "supports_inversion", False) or not hasattr(decoder, "decode_eta"):
        raise ArgumentError(no_inverted_variations_reason(type(decoder).__name__))
    if not _is_real(eta) or not 0 < eta <= 1:
        raise ArgumentError(f"eta must be a number in (0, 1], got {eta!r}.")
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        from .encoders import _image_items  # a path, PIL image, float or RGBA array, as encode_image takes

        items = _image_items(image)
        if len(items) != 1:
            raise ArgumentError(f"image must be one picture (the one the embedding came from), got {len(items)}.")
        image = np.asarray(items[0].load(), dtype=np.uint8)
    start = decoder.invert(image, z, steps=steps, refine=refine, decode_guidance=guidance_scale, progress=progress)
    return decoding(lambda zs, part: decoder.decode_eta(zs, start.expand(len(part), *start.shape[1:]).contiguous(),
                                                        eta=float(eta), seeds=part, steps=steps,
                                                        guidance_scale=guidance_scale))  # fmt: skip


def no_inverted_variations_reason(decoder_type: str) -> str:
    """Why :func:`variations` refuses ``mode='inverted'`` for a decoder of class ``decoder_type``
    (said by ``variations --eta`` too, before such a preset's models load)."""
    return (f"mode='inverted' needs a decoder that inverts images and samples with DDIM eta > 0; "
            f"{decoder_type} does not. Use mode='reroll' (CLI: variations without --eta).")  # fmt: skip


def generate(
    encoder: Any,
    prior: Any,
    decoder: Any,
    prompt: str,
    *,
    n: int = 8,
    seed: int = 0,
    steps: int | None = None,
    guidance_scale: float | None = None,
    captions: bool | None = None,
    batch_size: int = 8,
    progress: bool | None = None,
) -> np.ndarray:
    """``n`` pictures of ``prompt``, as DALL-E 2 draws them from text: uint8 ``(n, H, W, 3)``.

    The prompt's text embedding goes through ``prior`` to an image embedding, which
    ``decoder`` draws; a prior that reads the prompt's token states (``prior.needs_texts``:
    the Karlo and Kandinsky diffusion priors, so ``karlo``, ``sd21-unclip-l`` and
    ``kandinsky-2.2``) gets the prompt itself (``prior.from_texts``), as a spec's text
    keyframes do. Picture ``k`` has the prior sample and the starting noise of seed
    ``seed + k``, so ``generate(..., seed=s + k, n=1)`` redraws picture ``k`` of
    ``generate(..., seed=s)`` alone (up to floating-point rounding across batch sizes).

    Args:
        encoder, prior, decoder: the preset's models (``ll.create_encoder(p)``,
            ``ll.create_prior(p)``, ``ll.create_decoder(p)``).
        prompt: the caption, e.g. ``"a red circle above a blue square"``; one longer than the
            text encoder's context, or than the decoder's when it reads captions (``mini``'s: 32
            tokens), is cut to fit, with one warning (not one a batch).
        n: how many pictures.
        seed: seed of picture 0 (prior sample and starting noise).
        steps, guidance_scale: the decoder's settings (its defaults when ``None``).
        captions: give the decoder the prompt too. ``None`` (default): when the decoder reads
            captions (``decoder.reads_captions``: mini does, and then hands the noisiest
            steps to its layout expert, which places the objects the prompt names, see
            docs/mini.md; Karlo with DDIM and Stable unCLIP do, as their text-to-image
            pipelines do; Kandinsky does not);
            ``True``: require it; ``False``: draw from the embeddings alone, as a render does.
        batch_size: pictures per decoder call. A call that runs out of accelerator memory is
            retried in halves (and the rest of the run decodes at that size), as ``render`` does.
        progress: a tqdm progress bar over the batches; ``None`` (default): one when there is
            more than one batch (``n > batch_size``).

    >>> frames = ll.generate(enc, prior, dec, "a red circle above a blue square", n=8)  # doctest: +SKIP
    """
    from .render import make_noise
    from .space import tag

    if not isinstance(prompt, str) or not prompt.strip():
        raise ArgumentError(f"prompt must be a non-empty string, got {prompt!r}.")
    n = check_int(n, "n", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    seed = check_seed(seed)
    check_seeds_fit(seed, n, "picture")
    progress = _auto_progress(progress, -(-n // batch_size))
    if prior is None:
        raise ArgumentError("prior is None: generating from text needs the preset's prior (ll.create_prior(preset)).")
    _check_parts("generate(encoder, prior, decoder, prompt, ...)", encoder=encoder, prior=prior, decoder=decoder)
    models = {"encoder": encoder, "prior": prior, "decoder": decoder}
    kinds = {name: (getattr(m, "space", None), getattr(m, "dim", None)) for name, m in models.items()}
    if len({d for _, d in kinds.values() if d is not None}) > 1 or len({s for s, _ in kinds.values() if s is not None}) > 1:
        from .errors import SpaceError

        desc = ", ".join(f"{name} {s!r} (d={d})" for name, (s, d) in kinds.items())
        raise SpaceError(
            f"the models are of different CLIP spaces: {desc}; the prior maps the encoder's text embeddings to "
            "image embeddings the decoder draws, so all three must share one. "
            "Fix: ll.create_encoder(p), ll.create_prior(p) and ll.create_decoder(p) of one preset p."
        )
    reads = bool(getattr(decoder, "reads_captions", False))
    if captions is None:
        captions = reads
    elif not isinstance(captions, (bool, np.bool_)):  # numpy's too, as progress= takes them
        raise ArgumentError(f"captions must be True, False or None, got {captions!r}.")
    elif captions and not reads:
        raise ArgumentError(
            f"captions=True: decoder {type(decoder).__name__} ({getattr(decoder, 'name', '?')!r}) reads no captions; "
            "pass captions=None or False to draw from the prior's embeddings alone."
        )
    # the Karlo and Kandinsky priors attend to the prompt's token states, which a pooled text
    # embedding does not carry: they take the prompt itself (as Spec.resolve gives it them)
    texts = bool(getattr(prior, "needs_texts", False))
    # a prompt cut to the context is said once, naming the caller's line: encode_text or from_texts (once a
    # seed) and the decoder (once a batch) each say it from inside latentlab, so their warnings go to say_cut
    # (a catch_warnings per batch reset every module's once-only registry: from_texts's came again each batch);
    # said as found, so that under -W error it raises before more is sampled or drawn
    from .encoders import _HELD_CUTS

    caller = sys._getframe(1)
    said = False

    def say_cut(message: str) -> None:
        nonlocal said
        if not said:
            said = True
            where = caller.f_globals
            module = where.get("__name__")  # (None, as exec(code, {}) gives, made warn_explicit drop it unsaid)
            warnings.warn_explicit(message, UserWarning, caller.f_code.co_filename, caller.f_lineno,
                                   module if isinstance(module, str) else "<string>",  # (as warnings.warn names it)
                                   where.setdefault("__warningregistry__", {}), where)  # fmt: skip

    from .render import _halved_after_oom

    outer = _HELD_CUTS.get()
    try:  # (set inside the try, put back with set: a Ctrl-C just after set returns leaves nothing held)
        _HELD_CUTS.set(say_cut)
        z_text = None if texts else encoder.encode_text([prompt])
        starts = range(0, n, batch_size)
        per_call = batch_size  # pictures a decoder call; halved for good once one runs out of memory
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="generating", unit="batch")  # type: ignore[assignment]
        out = []
        for a in starts:
            seeds = [int(seed) + k for k in range(a, min(n, a + batch_size))]
            if texts:
                z = torch.cat([prior.from_texts([prompt], seed=s, num_samples=1) for s in seeds])
            else:
                z = torch.cat([prior(z_text, seed=s, num_samples=1) for s in seeds])
            noise = make_noise(tuple(decoder.noise_shape()), seeds)
            b = 0
            while b < len(seeds):  # (in parts of per_call, halved after running out of memory, as render does)
                part = seeds[b : b + per_call]
                zs = tag(z[b : b + len(part)], getattr(prior, "space", None))
                kw = {"captions": [prompt] * len(part)} if captions else {}
                try:
                    out.append(decoder.decode(zs, noise[b : b + len(part)], seeds=part, steps=steps,
                                              guidance_scale=guidance_scale, **kw))  # fmt: skip
                except Exception as exc:
                    per_call = _halved_after_oom(exc, len(part), "generating a single picture")
                    continue
                b += len(part)
    finally:
        _HELD_CUTS.set(outer)
    return np.concatenate(out)
