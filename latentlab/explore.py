"""Exploration tools: what is near an embedding, what a path changes, what PCA keeps.

Pure computations on embeddings (plus, for :func:`pca_probe`, one decoder call); the
notebook views (:mod:`latentlab.notebook`) and plots (:mod:`latentlab.plots`) draw what
these return. Every result holds plain data (numpy arrays, tensors, lists); the result
objects (:class:`Neighbours`, :class:`PCA`, :class:`Probe`, :class:`WordChanges`) also show
as HTML in a notebook, and :func:`consecutive_distances` returns a plain array.

* :func:`nearest_neighbours`, :func:`nearest_words`, :func:`nearest_images`: the ``k``
  most similar entries (cosine) of a bank of texts or images to each query embedding.
* :func:`fit_pca` / :class:`PCA`, :func:`pca_probe`: the DALL-E 2 PCA probe (Ramesh et al.
  2022, sec. 4, "Probing the CLIP latent space"): decode an embedding rebuilt from only its
  top-``k`` principal components, to see which components carry which attributes.
* :func:`what_changed`: the words whose similarity to a path moves most from its start to
  its end: what a text diff or an interpolation adds and removes.
* :func:`consecutive_distances`: how far each frame is from the previous one (pacing).

>>> import torch
>>> from latentlab.space import tag
>>> bank = tag(torch.eye(3), "demo")
>>> nn = nearest_neighbours(tag(torch.tensor([[0.9, 0.1, 0.0]]), "demo"), bank, k=2, labels=["x", "y", "z"])
>>> [(label, round(score, 3)) for label, score in nn[0]]
[('x', 0.994), ('y', 0.11)]
"""

from __future__ import annotations

import html
import numbers
import os
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .errors import ArgumentError, SpaceError, check_bool, check_int, result_fix, user_path
from .space import check_embeddings, common_space, normalize, space_of, tag

__all__ = [
    "Neighbours",
    "nearest_neighbours",
    "nearest_words",
    "nearest_images",
    "list_images",
    "PCA",
    "fit_pca",
    "Probe",
    "pca_probe",
    "WordChanges",
    "what_changed",
    "consecutive_distances",
    "path_embeddings",
    "IMAGE_SUFFIXES",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
"""File suffixes :func:`list_images` picks up in a folder (case-insensitive)."""


# ----------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------
def path_embeddings(path: Any, *, name: str = "path") -> torch.Tensor:
    """The ``(T, d)`` embeddings of a :class:`~latentlab.Trajectory`, or ``path`` itself
    validated as an ``(n, d)`` embedding batch (a ``(d,)`` vector becomes ``(1, d)``); errors
    call it ``name``."""
    from .trajectory import Trajectory

    z = path.embeddings() if isinstance(path, Trajectory) else check_embeddings(path, name=name)
    if z.requires_grad:  # these are measurements: no gradient flows through them (numpy needs it off)
        z = tag(z.detach(), space_of(z))
    return z


def _on_device_of(z: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``z`` on ``other``'s device, its space tag kept: a query or path on a GPU met the encoder's
    embeddings (on the CPU, as encoders return them) in an error that named neither."""
    return z if z.device == other.device else tag(z.detach().to(other.device), space_of(z))


def same_space(a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    """Raise a :class:`~latentlab.errors.SpaceError` naming ``a_name`` and ``b_name`` when the
    two embedding batches differ in size or carry different CLIP-space tags. A batch whose
    other axis has the size of the other batch's rows is named as transposed."""
    if a.shape[-1] != b.shape[-1]:
        tags = {space_of(a), space_of(b)} - {None}
        for x, x_name, y, y_name in ((b, b_name, a, a_name), (a, a_name, b, b_name)):
            if x.ndim == 2 and x.shape[0] == y.shape[-1] and len(tags) < 2:  # (two spaces: other models, not a .T)
                raise SpaceError(
                    f"{x_name} has shape {tuple(x.shape)} and {y_name} {tuple(y.shape)}: {x_name} looks transposed, "
                    f"(d, n) instead of (n, d). Fix: pass {x_name}.T."
                )
        raise SpaceError(
            f"{a_name} has size {a.shape[-1]} but {b_name} has size {b.shape[-1]}: they come from "
            "different CLIP models. Encode both with the same encoder."
        )
    common_space(a, b, names=(a_name, b_name))


def _encoder_space(z: torch.Tensor, name: str, encoder: Any) -> None:
    """``z`` must be in ``encoder``'s space (its size and tag), as the encoder's own inputs are."""
    check_embeddings(z, name=name, dim=getattr(encoder, "dim", None))
    own, space = space_of(z), getattr(encoder, "space", None)
    if own is not None and space is not None and own != space:  # (check_embeddings would speak of a decoder)
        raise SpaceError(
            f"{name} lives in CLIP space {own!r} but {space!r} is expected (the encoder's space). "
            f"Fix: pass the encoder {name} was encoded with, or encode it again with this one."
        )


def _check_encoder(encoder: Any, call: str = "(path or query, encoder, words, ...)", needs: str = "encode_text") -> None:
    """``encoder`` must be an :class:`~latentlab.Encoder` (it has ``needs``): name it, e.g.
    when the arguments were swapped; ``call`` is the argument order to quote."""
    if not hasattr(encoder, needs) or isinstance(encoder, (torch.Tensor, np.ndarray, str, os.PathLike)):
        raise ArgumentError(
            f"encoder must be a latentlab Encoder (ll.create_encoder(preset)), got {type(encoder).__name__}; "
            f"the arguments are {call}."
        )


def _check_progress(progress: Any) -> bool | None:
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise ArgumentError(
            f"progress must be True, False or None (a bar when the encode takes more than one batch), got {progress!r}."
        )
    return None if progress is None else bool(progress)


def _encode(encoder: Any, kind: str, items: Any, progress: bool | None) -> torch.Tensor:
    """``encoder.encode_image`` or ``encode_text`` (``kind``) of ``items``, with a progress bar
    where ``progress`` is true; ``None``: a bar when the items take more than one of the
    encoder's batches (its ``batch_size`` default, 32 images or 64 texts). An encoder of yours
    whose method takes no ``progress`` is called without it."""
    import inspect

    method = getattr(encoder, f"encode_{kind}")
    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    if progress is None:
        batch = getattr(params.get("batch_size"), "default", None)
        batch = batch if isinstance(batch, int) and batch >= 1 else (32 if kind == "image" else 64)
        progress = len(items) > batch
    if "progress" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return method(items, progress=progress)
    return method(items)


def _check_template(template: Any) -> str:
    """``template`` must be a string with exactly one ``{}`` (where the word goes) and no other
    replacement field, so ``template.format(word)`` cannot fail."""
    fields: list[str | None] = []
    if isinstance(template, str):
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        except ValueError:  # an unmatched brace
            fields = [None]
    if not isinstance(template, str) or fields != [""] or "{}" not in template:
        raise ArgumentError(
            f"template must contain '{{}}' where the word goes, once, and no other braces, got {template!r}. "
            "Fix: e.g. template='a {} shape' (write a literal brace as '{{' or '}}')."
        )
    return template


def _labels(labels: Any, name: str, count: int, what: str) -> list[str]:
    """``labels`` as ``count`` strings; a bare string is refused (it would be split into letters)."""
    if isinstance(labels, (str, bytes)):
        fix = f"pass [{labels!r}]" if count == 1 else f"pass a list of {count} strings, one per {what}"
        raise ArgumentError(f"{name} must be a list of labels, one per {what}, got the string {labels!r}. Fix: {fix}.")
    try:
        out = [str(x) for x in labels]
    except TypeError:
        raise ArgumentError(f"{name} must be a list of labels, one per {what}, got {type(labels).__name__}.") from None
    if len(out) != count:
        raise ArgumentError(f"{name} has {len(out)} entries for {count} {what}s; give one per {what}.")
    return out


def _words(words: Any) -> list[str]:
    """``words`` as a non-empty list (a generator is read once)."""
    if isinstance(words, (str, bytes)) or words is None:  # (bytes were read as a list of numbers)
        raise ArgumentError("words must be a non-empty list of strings, e.g. ['red', 'blue', 'circle'].")
    try:
        words = list(words)
    except TypeError:  # a number, a 0-d tensor: not a list (list() raised a raw TypeError)
        raise ArgumentError(f"words must be a non-empty list of strings, e.g. ['red', 'blue', 'circle'], got {words!r}.") from None
    if not words:
        raise ArgumentError("words must be a non-empty list of strings, e.g. ['red', 'blue', 'circle'].")
    for i, w in enumerate(words):  # a blank line of a word file came back as a nameless "word", 3 as the word '3'
        if not isinstance(w, str):
            raise ArgumentError(f"words[{i}] is {w!r}, not a string; words must be a list of strings, e.g. "
                                "['red', 'blue', 'circle'].")  # fmt: skip
        if not w.strip():
            raise ArgumentError(f"words[{i}] is {w!r}, an empty word (a blank line of a word file?). Drop it, e.g. "
                                "words = [w for w in open(path).read().splitlines() if w.strip()].")  # fmt: skip
    return words


def _unit_rows(z: torch.Tensor) -> torch.Tensor:
    """``z`` with unit-norm rows, as :func:`latentlab.space.normalize` makes them (a row of norm
    1e-14 or 1e-30 too: divided by the clamped norm it came back of norm 0.01, or 0)."""
    return normalize(z)


def _check_k(k: Any, name: str = "k") -> int:
    return check_int(k, name, minimum=1)


def _check_nonzero(z: torch.Tensor, name: str) -> None:
    """Cosines need a direction: refuse zero rows of ``z``, naming ``name`` and the rows."""
    # the largest magnitude, not the norm: the norm of a float32 row of 1e-30 underflows to 0, but it
    # has a direction (similarity_matrix reads it); the smallest normal number of float32 at least, as there
    tiny = torch.finfo(torch.promote_types(z.dtype, torch.float32)).tiny
    zero = (z.abs().amax(dim=-1) <= tiny).nonzero().flatten().tolist()
    if zero:
        raise ArgumentError(
            f"{name} row(s) {zero[:10]} are the zero vector: a zero vector has no direction to compare. "
            "Fix: pass embeddings as an encoder returns them."
        )


def _png_data_uri(image: np.ndarray) -> str:
    from .notebook import png_bytes

    import base64

    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


# ----------------------------------------------------------------------------------
# nearest neighbours
# ----------------------------------------------------------------------------------
@dataclass(repr=False, eq=False)  # identity: == compared arrays and raised a raw ValueError
class Neighbours:
    """The ``k`` nearest bank entries of each of ``n`` queries, best first.

    Attributes:
        indices: ``(n, k)`` int, rows of the bank.
        scores: ``(n, k)`` float, cosine similarities in [-1, 1], descending along each row.
        labels: one label per bank entry (``m`` of them).
        query_labels: one label per query, or ``None``.
        images: one uint8 ``(H, W, 3)`` thumbnail per bank entry (image banks), or ``None``.

    ``neighbours[i]`` is the list of ``(label, score)`` pairs of query ``i``. In a notebook
    the object shows as a table (with thumbnails for image banks).
    """

    indices: np.ndarray
    scores: np.ndarray
    labels: list[str]
    query_labels: list[str] | None = None
    images: list[np.ndarray] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getitem__(self, i: int) -> list[tuple[str, float]]:
        return [(self.labels[j], float(s)) for j, s in zip(self.indices[i], self.scores[i])]

    def top(self, i: int = 0) -> str:
        """The label of the best match of query ``i`` (an integer in ``[0, n)``, or negative from the
        end, as :meth:`latentlab.Scrubber.frame` takes a frame index; numpy's raw IndexError otherwise)."""
        n = len(self)
        if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not -n <= i < n:
            raise ArgumentError(f"i must be the index of a query, an integer in [0, {n - 1}] (or negative from the "
                                f"end), got {i!r}.")  # fmt: skip
        return self.labels[int(self.indices[int(i), 0])]

    def _query_name(self, i: int) -> str:
        return self.query_labels[i] if self.query_labels is not None else f"query {i}"

    def __str__(self) -> str:
        lines = []
        for i in range(len(self)):
            items = ", ".join(f"{lab} ({s:.3f})" for lab, s in self[i])
            lines.append(f"{self._query_name(i)}: {items}")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        rows = []
        for i in range(len(self)):
            cells = []
            for j, s in zip(self.indices[i], self.scores[i]):
                lab = html.escape(self.labels[int(j)])
                thumb = ""
                if self.images is not None:
                    thumb = (
                        f'<img src="{_png_data_uri(self.images[int(j)])}" width="48" '
                        'style="image-rendering: pixelated; display: block; margin: auto"/>'
                    )
                cells.append(f'<td style="text-align: center">{thumb}{lab}<br/><small>{s:.3f}</small></td>')
            rows.append(f"<tr><th>{html.escape(self._query_name(i))}</th>{''.join(cells)}</tr>")
        # "rank 1" (the best match), not "#1": "#j" is the default label of bank row j
        head = "".join(f"<th>rank {r + 1}</th>" for r in range(self.indices.shape[1]))
        return f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"


def nearest_neighbours(
    query: Any,
    bank: torch.Tensor,
    *,
    k: int = 5,
    labels: Sequence[str] | None = None,
    query_labels: Sequence[str] | None = None,
    images: Sequence[np.ndarray] | None = None,
) -> Neighbours:
    """The ``k`` entries of ``bank`` most similar (cosine) to each query, best first.

    Args:
        query: ``(n, d)`` embeddings (or ``(d,)``, or a :class:`~latentlab.Trajectory`, whose
            every frame is a query).
        bank: ``(m, d)`` embeddings of the same CLIP space (``SpaceError`` otherwise).
        k: neighbours per query; capped at ``m``.
        labels: ``m`` labels of the bank entries (default ``"#0"``, ``"#1"``, ...).
        query_labels: ``n`` labels of the queries, for display.
        images: ``m`` thumbnails of the bank entries, for display.

    Returns:
        :class:`Neighbours` with ``(n, min(k, m))`` indices and scores. Ties keep bank order.

    >>> import torch
    >>> bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    >>> nearest_neighbours(torch.tensor([0.6, 0.8]), bank, k=2).indices.tolist()
    [[1, 0]]
    """
    from .ops import similarity_matrix

    q = path_embeddings(query, name="query")
    b = path_embeddings(bank, name="bank")
    same_space(q, "query", b, "bank")  # first: a transposed bank would be refused for its labels' count
    k = _check_k(k)
    m = b.shape[0]
    labels = [f"#{j}" for j in range(m)] if labels is None else _labels(labels, "labels", m, "bank embedding")
    if query_labels is not None:
        query_labels = _labels(query_labels, "query_labels", q.shape[0], "query")
    if images is not None:
        from .video import _as_image

        try:
            images = list(images)
        except TypeError:  # a number: list() raised a raw TypeError
            raise ArgumentError(f"images must be a list of m thumbnails, (H, W, 3) arrays, got {images!r}.") from None
        if len(images) != m:
            raise ArgumentError(f"images has {len(images)} entries for a bank of {m} embeddings.")
        # checked now, not when the table is shown
        images = [_as_image(im, f"images[{j}]") for j, im in enumerate(images)]
    _check_nonzero(q, "query")
    _check_nonzero(b, "bank")
    # (on the bank's device: a query on another one was refused naming similarity_matrix's a and b)
    sim = similarity_matrix(_on_device_of(q, b), b).detach().cpu()  # (n, m)
    sim = sim if sim.dtype == torch.float64 else sim.float()  # exact: the same order and scores as in float64
    order = _top_k(sim, min(k, m))
    scores = np.take_along_axis(sim.numpy(), order, axis=1).astype(np.float64)
    return Neighbours(order, scores, labels, query_labels, images)


def _top_k(sim: torch.Tensor, k: int) -> np.ndarray:
    """The columns of the ``k`` largest entries of each row of ``sim`` ``(n, m)``, largest
    first, ties in column order: the first ``k`` of a stable descending argsort, without
    sorting whole rows (which took 18 s and 2.3 GB for 10k queries and a bank of 10k)."""
    top = torch.topk(sim, min(k + 1, sim.shape[1]), dim=1)  # descending; one more to see a tie at place k
    v = top.values
    if v.shape[1] == k:  # k = m: every column
        idx = top.indices
    elif (v[:, k] < v[:, k - 1]).all():  # no tie across the k-th place: the top k are these
        idx = top.indices[:, :k]
    else:  # every entry tied with a row's k-th value is a candidate, for the tie rule to pick from
        c = int((sim >= v[:, k - 1 : k]).sum(dim=1).max())
        idx = torch.topk(sim, c, dim=1, sorted=False).indices
    idx = idx.sort(dim=1).values.numpy()  # column order, for the stable sort to keep
    order = np.argsort(-np.take_along_axis(sim.numpy(), idx, axis=1), axis=1, kind="stable")[:, :k]
    return np.take_along_axis(idx, order, axis=1).astype(np.int64)


def nearest_words(
    query: Any,
    encoder: Any,
    words: Sequence[str],
    *,
    k: int = 5,
    template: str = "{}",
    query_labels: Sequence[str] | None = None,
    progress: bool | None = None,
) -> Neighbours:
    """The ``k`` words (or captions) whose text embedding is closest to each query.

    Args:
        query: ``(n, d)`` embeddings of ``encoder``'s space (image or text embeddings).
        encoder: the :class:`~latentlab.Encoder` that encodes ``words``.
        words: the vocabulary, e.g. ``["red", "blue", "circle", "square"]``.
        k: words per query (an integer >= 1); capped at the vocabulary's size.
        template: how a word becomes a caption, e.g. ``"a {} shape"``; ``"{}"`` uses it as is.
        query_labels: ``n`` labels of the queries, for display.
        progress: a tqdm progress bar while the words are encoded; ``None`` (default): one
            when they take more than one encoder batch (64 texts).

    >>> import latentlab as ll                                              # doctest: +SKIP
    >>> enc = ll.create_encoder("mini")                                     # doctest: +SKIP
    >>> nearest_words(enc.encode_text("a red circle"), enc, ["red", "blue"], k=1).top()  # doctest: +SKIP
    'red'
    """
    _check_encoder(encoder, "(query, encoder, words, ...)")
    words = _words(words)
    template = _check_template(template)
    progress = _check_progress(progress)
    q = path_embeddings(query, name="query")
    _encoder_space(q, "query", encoder)
    _check_nonzero(q, "query")
    _check_k(k)  # before the words are encoded, as nearest_neighbours checks it after
    if query_labels is not None:
        query_labels = _labels(query_labels, "query_labels", q.shape[0], "query")
    bank = _encode(encoder, "text", [template.format(w) for w in words], progress)
    return nearest_neighbours(_on_device_of(q, bank), bank, k=k, labels=words, query_labels=query_labels)


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """The image files (:data:`IMAGE_SUFFIXES`) directly inside ``folder``, sorted by name."""
    if not isinstance(folder, (str, os.PathLike)):  # (a number raised os.fspath's raw TypeError)
        raise ArgumentError(f"folder must be a folder's path (str or pathlib.Path), got {folder!r}.")
    d = user_path(folder)
    if not d.is_dir():
        raise ArgumentError(f"folder {str(d)!r} is not a directory. Pass a folder of images or a list of paths.")
    found = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise ArgumentError(f"folder {str(d)!r} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    return found


def nearest_images(
    query: Any,
    encoder: Any,
    images: str | os.PathLike[str] | Sequence[Any] | np.ndarray | torch.Tensor,
    *,
    k: int = 5,
    labels: Sequence[str] | None = None,
    query_labels: Sequence[str] | None = None,
    thumbnail: int = 64,
    progress: bool | None = None,
) -> Neighbours:
    """The ``k`` images whose CLIP embedding is closest to each query.

    Args:
        query: ``(n, d)`` embeddings of ``encoder``'s space.
        encoder: the :class:`~latentlab.Encoder` that encodes ``images``.
        images: a folder (every image file in it, sorted by name), a list of paths, PIL
            images, uint8 ``(H, W, 3)`` arrays or ``(3, H, W)`` tensors (as
            :meth:`~latentlab.Encoder.encode_image` takes them), or a uint8 ``(m, H, W, 3)``
            array or ``(m, 3, H, W)`` tensor (a batch in the list is its ``m`` pictures too).
        k: images per query (an integer >= 1); capped at the number of images.
        labels: one label per image (default: file names, or ``"#j"`` for arrays).
        query_labels: ``n`` labels of the queries, for display.
        thumbnail: side of the thumbnails kept for display, in pixels (an integer >= 1).
        progress: a tqdm progress bar while the images are encoded; ``None`` (default): one
            when they take more than one encoder batch (32 images).

    Every call encodes the whole bank again (a 3,000-image folder takes minutes on a CPU);
    give the encoder an embedding cache, ``enc.cache = "~/.cache/latentlab/emb"`` (a
    directory, or an :class:`~latentlab.encoders.EmbeddingCache`), and later calls read the
    images' embeddings from it instead.

    >>> import latentlab as ll                                              # doctest: +SKIP
    >>> enc = ll.create_encoder("mini")                                     # doctest: +SKIP
    >>> nearest_images(enc.encode_text("a red circle"), enc, "images/", k=3)  # doctest: +SKIP
    """
    _check_encoder(encoder, "(query, encoder, images, ...)", needs="encode_image")
    q = path_embeddings(query, name="query")
    _encoder_space(q, "query", encoder)  # before encoding the images
    _check_k(k)  # (nearest_neighbours checked it only once every image was read and encoded)
    if query_labels is not None:
        query_labels = _labels(query_labels, "query_labels", q.shape[0], "query")
    thumbnail = check_int(thumbnail, "thumbnail", minimum=1)
    progress = _check_progress(progress)
    if isinstance(images, (str, os.PathLike)):
        items: list[Any] = list(list_images(images))
    elif isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4:
        items = list(images)
    elif isinstance(images, (list, tuple)) and images:
        # a batch in the list, (m, H, W, 3) array or (m, 3, H, W) tensor, is its m pictures, as
        # encode_image reads it: one label and one thumbnail each
        items = [row for x in images for row in
                 (list(x) if isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim == 4 else [x])]  # fmt: skip
    else:
        raise ArgumentError(
            f"images must be a folder, a non-empty list of paths, (H, W, 3) arrays or (3, H, W) tensors, or an "
            f"(m, H, W, 3) array or (m, 3, H, W) tensor; "
            f"got {type(images).__name__}{f' of shape {tuple(images.shape)}' if hasattr(images, 'shape') else ''}."
        )
    if labels is None:
        labels = [Path(x).name if isinstance(x, (str, os.PathLike)) else f"#{j}" for j, x in enumerate(items)]
    labels = _labels(labels, "labels", len(items), "image")  # before the images are read
    # the pixels each thumbnail shows are the ones encoded: files and PIL images of any mode
    # (palette, grey, CMYK, alpha) as RGB, as the encoders read them; each picture is shrunk as soon
    # as it is read (a folder of 12 MP photos was held whole, 36 MB each, until all were encoded)
    thumbs = [_thumbnail(_pixels(x, f"images[{j}]"), thumbnail) for j, x in enumerate(items)]
    bank = _encode(encoder, "image", [str(x) if isinstance(x, (str, os.PathLike)) else x for x in items], progress)
    if isinstance(query, torch.Tensor):
        query = _on_device_of(query, bank)
    return nearest_neighbours(query, bank, k=k, labels=labels, query_labels=query_labels, images=thumbs)


def _pixels(item: Any, label: str = "images[...]") -> np.ndarray:
    """The pixels of one ``images`` entry: a file read as the encoders read it, a PIL image of
    any mode (palette, grey, CMYK, alpha) as RGB, a tensor channels-first ``(3, H, W)`` (or 1 or 4
    channels) in [0, 1] or uint8 as the encoders read it, an array as it is."""
    from .encoders import _tensor_to_pils, _to_rgb
    from .video import _to_numpy, load_image

    if isinstance(item, (str, os.PathLike)):
        return load_image(item)
    if type(item).__module__.split(".")[0] == "PIL" and hasattr(item, "mode"):
        return np.asarray(_to_rgb(item))
    if isinstance(item, torch.Tensor):  # channels first, as encode_image reads it (not (H, W, 3))
        return np.asarray(_tensor_to_pils(item, label)[0].load())
    a = _to_numpy(item)
    if a.ndim == 3 and a.shape[2] == 4:  # alpha on white, as the encoders composite it (not black)
        from .encoders import _array_to_pil

        return np.asarray(_array_to_pil(a, "images[...]", str(a.shape)))
    return a


def _thumbnail(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = np.rint(np.clip(a.astype(np.float32), 0, 1) * 255).astype(np.uint8)
    im = Image.fromarray(a[..., :3] if a.ndim == 3 else a).convert("RGB")
    if max(im.size) > size:
        im.thumbnail((size, size), Image.LANCZOS)
    return np.asarray(im)


# ----------------------------------------------------------------------------------
# PCA
# ----------------------------------------------------------------------------------
@dataclass(repr=False, eq=False)  # identity: == compared tensors and raised a raw RuntimeError
class PCA:
    """Principal components of a set of embeddings (see :func:`fit_pca`).

    Embeddings are directions: every row is scaled to unit norm before it is fitted,
    projected or reconstructed, so embeddings saved unnormalised (an open_clip model's
    ``normalize=False`` features) land where their unit versions do.

    Attributes:
        mean: ``(d,)`` the mean of the unit-norm embeddings (zeros when fitted with ``center=False``).
        components: ``(r, d)`` orthonormal rows, by decreasing variance; ``r`` is the rank
            of the (centred) set, at most ``min(n - 1, d)`` (``min(n, d)`` with ``center=False``).
        explained_variance: ``(r,)`` variance of the set along each component.
        space: the CLIP space of the embeddings it was fitted on.
    """

    mean: torch.Tensor
    components: torch.Tensor
    explained_variance: torch.Tensor
    space: str | None = None

    @property
    def rank(self) -> int:
        return int(self.components.shape[0])

    def __repr__(self) -> str:
        top = ", ".join(f"{r:.3f}" for r in self.explained_ratio[:5].tolist())
        more = ", ..." if self.rank > 5 else ""
        return f"PCA(rank={self.rank}, d={self.components.shape[-1]}, space={self.space!r}, explained_ratio=[{top}{more}])"

    @property
    def explained_ratio(self) -> torch.Tensor:
        """``(r,)`` fraction of the total variance along each component (sums to 1)."""
        total = self.explained_variance.sum()
        return self.explained_variance / total if total > 0 else self.explained_variance

    def _check(self, z: Any, name: str) -> torch.Tensor:
        z = path_embeddings(z, name=name)
        own = space_of(z)
        if own is not None and self.space is not None and own != self.space:
            raise SpaceError(
                f"{name} lives in CLIP space {own!r} but the PCA was fitted in {self.space!r}; "
                "use embeddings of the same encoder."
            )
        if z.shape[1] != self.mean.shape[0]:
            raise SpaceError(
                f"{name} has size {z.shape[1]} but the PCA was fitted on size {self.mean.shape[0]}; "
                "use embeddings of the same encoder."
            )
        # on the PCA's device (one fitted on a GPU's embeddings met CPU ones, or the reverse, with a raw error)
        return z.to(self.mean.device, torch.float64)

    def _check_k(self, k: Any) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= self.rank:
            raise ArgumentError(
                f"k must be an integer in [0, {self.rank}] (the number of components this PCA has), got {k!r}. "
                "For more components fit the PCA on more embeddings."
            )
        return int(k)

    def project(self, z: Any, k: int | None = None) -> torch.Tensor:
        """Coordinates ``(n, k)`` of ``z`` (``(n, d)``, or a Trajectory) on the first ``k``
        components (all when ``None``), float32. The rows of ``z`` are scaled to unit norm
        first, as the PCA's were, so ``z`` and ``3 * z`` land on the same point."""
        zz = self._check(z, "z")
        _check_nonzero(zz, "z")
        zz = _unit_rows(zz)
        k = self.rank if k is None else self._check_k(k)
        return ((zz - self.mean.double()) @ self.components[:k].double().T).float()

    def reconstruct(self, z: Any, k: int) -> torch.Tensor:
        """``z`` rebuilt from the mean and its first ``k`` components, renormalised: unit-norm
        ``(n, d)`` float32 tagged with the space. ``k = rank`` gives back (the direction of)
        ``z`` when ``z`` lies in the fitted span, ``k = 0`` the mean direction.

        The rows of ``z`` are scaled to unit norm first (an embedding is a direction, as a
        decoder reads it), so ``z`` and ``3 * z`` give the same reconstruction.

        Raises :class:`ArgumentError` where the rebuilt vector is zero (the message says why
        and what to change).
        """
        zz = self._check(z, "z")
        _check_nonzero(zz, "z")
        zz = _unit_rows(zz)
        k = self._check_k(k)
        c = self.components[:k].double()
        mu = self.mean.double()
        out = mu + ((zz - mu) @ c.T) @ c
        n = out.norm(dim=-1, keepdim=True)
        if (n < 1e-9).any():
            rows = (n.squeeze(-1) < 1e-9).nonzero().flatten().tolist()
            if k == 0 and float(mu.norm()) < 1e-9:
                why = (
                    "k=0 keeps only the PCA's mean, and that mean is the zero vector (the PCA was fitted with "
                    "center=False, or on embeddings whose mean is zero, such as opposite pairs). "
                    "Fix: use k >= 1."
                )
            else:
                why = (
                    f"the mean and z's coordinates on the first {k} component(s) cancel out. "
                    f"Fix: use more components (k up to {self.rank})."
                )
            raise ArgumentError(f"the reconstruction of z row(s) {rows[:10]} from {k} component(s) is the zero vector: {why}")
        return tag((out / n).float(), self.space or space_of(z))

    def _repr_html_(self, n: int = 10) -> str:
        ratio = self.explained_ratio.tolist()
        rows = []
        for i, r in enumerate(ratio[:n]):
            bar = f'<div style="background:#47a; height:0.8em; width:{120 * r:.0f}px"></div>'
            rows.append(f"<tr><td>{i + 1}</td><td>{r:.3f}</td><td>{bar}</td></tr>")
        more = f'<tr><td colspan="3">... {self.rank - n} more</td></tr>' if self.rank > n else ""
        head = html.escape(f"PCA: rank {self.rank}, d={self.components.shape[-1]}, space {self.space!r}")
        return (
            f"<div>{head}</div><table><tr><th>component</th><th>explained</th><th></th></tr>"
            + "".join(rows) + more + "</table>"
        )


def fit_pca(embeddings: Any, *, center: bool = True) -> PCA:
    """Principal component analysis of ``(n, d)`` embeddings (SVD, float64).

    The rows are scaled to unit norm first (an embedding is a direction, as the other tools
    and the decoders read it), so embeddings saved unnormalised give the same PCA as their
    unit versions; :meth:`PCA.project` and :meth:`PCA.reconstruct` scale theirs too.

    Args:
        embeddings: ``(n, d)`` with ``n >= 2`` (or a Trajectory: its frames), no zero row.
        center: subtract the mean first (standard PCA); ``False`` analyses the (unit) vectors as they are.

    Returns:
        :class:`PCA`. Component signs are fixed (each component's largest-magnitude
        coordinate is positive), so the same input gives the same components.

    >>> import torch
    >>> z = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.6, 0.8, 0.0]])
    >>> pca = fit_pca(z)
    >>> pca.rank, [round(float(x), 3) for x in pca.explained_ratio]
    (2, [0.951, 0.049])
    """
    center = check_bool(center, "center")  # "no" centred, None did not, an array raised numpy's raw error
    z = path_embeddings(embeddings, name="embeddings")
    if z.shape[0] < 2:
        raise ArgumentError(f"fit_pca needs at least two embeddings, got {tuple(z.shape)}.")
    _check_nonzero(z, "embeddings")
    x = _unit_rows(z.to(torch.float64))
    mean = x.mean(dim=0) if center else x.new_zeros(x.shape[1])  # (on x's device: a CPU zero met CUDA rows)
    xc = x - mean
    _, s, vh = torch.linalg.svd(xc, full_matrices=False)
    # singular values below the input's own rounding level are numerical noise, not directions: rounding
    # each entry of the n unit rows moves them by at most eps / 2 * sqrt(n) (Frobenius), so no singular
    # value more (a margin of 4 here); and float64's own level of the SVD. (s.max() * max(n, d) * eps of
    # the input was 1 or more in bfloat16 from d = 128, float16 from d = 1024: every component dropped.)
    eps = torch.finfo(z.dtype if z.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64) else torch.float32).eps
    tol = max(max(s.max().item(), 1e-300) * max(x.shape) * torch.finfo(torch.float64).eps, 2 * eps * x.shape[0] ** 0.5)
    keep = s > tol
    comps = vh[keep]
    big = comps.abs().argmax(dim=1)
    signs = torch.sign(comps[torch.arange(comps.shape[0]), big])
    comps = comps * signs[:, None]
    var = s[keep] ** 2 / max(x.shape[0] - (1 if center else 0), 1)
    return PCA(mean.float(), comps.float(), var.float(), space_of(z))


@dataclass(repr=False, eq=False)  # identity: == compared arrays and raised a raw ValueError
class Probe:
    """The result of :func:`pca_probe`: one decoded frame per component count.

    Attributes:
        frames: uint8 ``(len(ks), H, W, 3)``; the last is the full embedding when
            ``ks`` ends with ``None``.
        ks: component counts (``None`` = the full embedding).
        embeddings: ``(len(ks), d)`` the decoded embeddings.
        cosine: ``(len(ks),)`` cosine of each to the full embedding.
    """

    frames: np.ndarray
    ks: list[int | None]
    embeddings: torch.Tensor
    cosine: np.ndarray

    @property
    def labels(self) -> list[str]:
        return [("full" if k is None else f"k={k}") for k in self.ks]

    def __repr__(self) -> str:
        items = ", ".join(f"{lab}: cos {c:.3f}" for lab, c in zip(self.labels, self.cosine))
        return f"Probe({items})"

    def _repr_html_(self) -> str:
        from .notebook import show

        return show(self.frames, labels=self.labels, columns=len(self.ks))._repr_html_()

    def _repr_png_(self) -> bytes:
        from .notebook import show

        return show(self.frames, labels=self.labels, columns=len(self.ks))._repr_png_()


def pca_probe(
    z: torch.Tensor,
    decoder: Any,
    basis: Any,
    ks: Sequence[int | None] = (1, 2, 4, 8, 16, None),
    *,
    seed: int = 0,
    steps: int | None = None,
    guidance_scale: float | None = None,
    center: bool = True,
    progress: bool | None = None,
) -> Probe:
    """The DALL-E 2 PCA probe: decode ``z`` rebuilt from its top-``k`` principal components.

    Ramesh et al. (2022, sec. 4) fit PCA to a set of CLIP image embeddings and decode an
    embedding reconstructed from more and more components: the first few already fix the
    coarse attributes (colour, layout), later ones add detail. Every frame starts from the
    same noise (seeded ``seed``), so the only difference between frames is the embedding.

    Args:
        z: one embedding ``(1, d)`` (or ``(d,)``) of the decoder's space; it is scaled to
            unit norm first, for every frame alike.
        decoder: a :class:`~latentlab.decoders.Decoder`.
        basis: ``(n, d)`` embeddings to fit the PCA on (e.g. many encoded images; each
            scaled to unit norm, as ``z`` is), or a fitted :class:`PCA`. ``k`` can be at
            most its rank (``n - 1`` for centred data, so the default ``ks`` needs at least
            17 embeddings).
        ks: component counts to decode, in order; ``None`` decodes ``z`` itself.
        seed, steps, guidance_scale: sampler settings (decoder defaults when ``None``).
        center: centre the PCA (when ``basis`` is embeddings).
        progress: a tqdm progress bar over the frames; ``None`` (default): one when the
            frames take more than one decoder batch.

    Returns:
        :class:`Probe` (frames, ks, embeddings, cosine to ``z``); it shows as a labelled
        strip in a notebook.

    >>> import latentlab as ll                                              # doctest: +SKIP
    >>> probe = pca_probe(z, ll.create_decoder("mini"), bank, ks=(1, 4, 16, None))  # doctest: +SKIP
    """
    from .edit import _check_parts
    from .render import render

    _check_parts("pca_probe(z, decoder, basis, ks, ...)", decoder=decoder)
    center = check_bool(center, "center")
    progress = _check_progress(progress)  # 'no' showed a bar
    dim, space = getattr(decoder, "dim", None), getattr(decoder, "space", None)
    zz = check_embeddings(z, name="z", dim=dim, space=space)
    if zz.shape[0] != 1:
        raise ArgumentError(f"z must be one embedding (1, d) or (d,), got shape {tuple(zz.shape)}. Fix: pass one row, e.g. z[i:i + 1].")
    _check_nonzero(zz, "z")
    z_space = space_of(zz)
    zz = tag(_unit_rows(zz.detach().double()), z_space)  # every frame, the full one too, from the unit z
    if isinstance(basis, PCA):
        pca, n_basis = basis, None
        if pca.components.shape[-1] != zz.shape[1]:
            raise SpaceError(
                f"basis is a PCA of size {pca.components.shape[-1]} but z has size {zz.shape[1]}: they come from "
                "different CLIP models. Fit the PCA on embeddings of the decoder's preset."
            )
        if pca.space is not None and z_space is not None and pca.space != z_space:
            raise SpaceError(
                f"basis is a PCA fitted in CLIP space {pca.space!r} but z is in {z_space!r}. "
                "Fit the PCA on embeddings of the decoder's preset."
            )
    else:
        b = check_embeddings(path_embeddings(basis, name="basis"), name="basis", dim=dim, space=space)
        if b.shape[0] < 2:
            raise ArgumentError(f"basis must hold at least two embeddings to fit the PCA on, got shape {tuple(b.shape)}.")
        pca, n_basis = fit_pca(b, center=center), b.shape[0]
    ks = _check_ks(ks, pca.rank, n_basis if center else None)
    # on z's device (a PCA or basis on a GPU with z on the CPU, or the reverse, met in a raw device error)
    rows = [zz.float() if k is None else pca.reconstruct(zz, k).to(zz.device) for k in ks]
    emb = tag(torch.cat(rows), z_space or pca.space)
    if progress is None:
        progress = len(ks) > max(1, int(getattr(decoder, "default_batch_size", 8)))
    frames = render(
        emb, decoder, seed=seed, noise="shared", steps=steps, guidance_scale=guidance_scale, progress=bool(progress)
    )
    cos = (emb.double() @ zz.T).squeeze(1).detach().cpu().numpy()
    return Probe(frames, ks, emb, cos)


def _check_ks(ks: Any, rank: int, n_centred: int | None) -> list[int | None]:
    """:func:`pca_probe`'s ``ks``: a non-empty sequence of counts in [0, rank] or ``None``; an
    entry past the rank is named with the rank and a ``ks`` that fits."""
    fix = "e.g. ks=(1, 4, 16, None)"
    if isinstance(ks, numbers.Integral) and not isinstance(ks, bool):
        fix = f"ks=({int(ks)},) for one count"
    zero_d = isinstance(ks, np.ndarray) and ks.ndim == 0  # (list() of it raised a raw TypeError)
    if zero_d and np.issubdtype(ks.dtype, np.integer):
        fix = f"ks=({int(ks)},) for one count"
    if isinstance(ks, (str, bytes)) or zero_d or not isinstance(ks, (list, tuple, range, np.ndarray)):
        raise ArgumentError(
            f"ks must be a sequence of component counts (integers, or None for the full embedding), got {ks!r}. Fix: {fix}."
        )
    out: list[int | None] = []
    for i, k in enumerate(list(ks)):
        if k is None:
            out.append(None)
            continue
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 0:
            raise ArgumentError(f"ks[{i}] must be an integer >= 0 (a component count) or None (the full embedding), got {k!r}.")
        out.append(int(k))
    if not out:
        raise ArgumentError("ks is empty; pass component counts, e.g. (1, 4, 16, None).")
    over = [(i, k) for i, k in enumerate(out) if k is not None and k > rank]
    if over:
        i, k = over[0]
        fitting = sorted({k for k in out if k is not None and k <= rank} | {rank})
        suggestion = tuple(fitting + ([None] if None in out else []))
        why = f" ({n_centred} centred embeddings span at most {n_centred - 1})" if n_centred is not None else ""
        raise ArgumentError(
            f"ks[{i}] = {k} is more than the basis's rank {rank}: its PCA has {rank} components{why}. "
            f"Fix: use ks up to {rank}, e.g. ks={suggestion}, or fit the PCA on more embeddings."
        )
    return out


# ----------------------------------------------------------------------------------
# what changed along a path
# ----------------------------------------------------------------------------------
@dataclass(repr=False, eq=False)  # identity: == compared arrays and raised a raw ValueError
class WordChanges:
    """How similar each frame of a path is to each word (see :func:`what_changed`).

    Attributes:
        words: ``W`` words.
        similarity: ``(T, W)`` cosine of frame ``t`` to word ``w``.
        delta: ``(W,)`` end minus start similarity (> 0: the path moves towards the word).
        swing: ``(W,)`` largest minus smallest similarity along the path.
    """

    words: list[str]
    similarity: np.ndarray

    @property
    def delta(self) -> np.ndarray:
        return self.similarity[-1] - self.similarity[0]

    @property
    def swing(self) -> np.ndarray:
        return self.similarity.max(axis=0) - self.similarity.min(axis=0)

    def ranked(self, n: int | None = None) -> list[tuple[str, float]]:
        """``(word, delta)`` by decreasing ``|delta|``: the words that change most (the first
        ``n``; ``None``: all)."""
        n = None if n is None else check_int(n, "n", minimum=0)
        order = np.argsort(-np.abs(self.delta), kind="stable")
        return [(self.words[i], float(self.delta[i])) for i in order[: None if n is None else n]]

    def gained(self, n: int = 5) -> list[tuple[str, float]]:
        """The ``n`` words the path moves towards most (largest positive delta)."""
        n = check_int(n, "n", minimum=0)
        order = np.argsort(-self.delta, kind="stable")
        return [(self.words[i], float(self.delta[i])) for i in order[:n] if self.delta[i] > 0]

    def lost(self, n: int = 5) -> list[tuple[str, float]]:
        """The ``n`` words the path moves away from most (most negative delta)."""
        n = check_int(n, "n", minimum=0)
        order = np.argsort(self.delta, kind="stable")
        return [(self.words[i], float(self.delta[i])) for i in order[:n] if self.delta[i] < 0]

    def __str__(self) -> str:
        g = ", ".join(f"{w} (+{d:.3f})" for w, d in self.gained())
        lo = ", ".join(f"{w} ({d:.3f})" for w, d in self.lost())
        return f"gained: {g or '-'}\nlost:   {lo or '-'}"

    __repr__ = __str__

    def _repr_html_(self, n: int = 10) -> str:
        rows = []
        scale = max(float(np.abs(self.delta).max()), 1e-12)
        for w, d in self.ranked(n):
            i = self.words.index(w)
            colour = "#2a7" if d > 0 else "#c33"
            bar = f'<div style="background:{colour}; height:0.8em; width:{60 * abs(d) / scale:.0f}px"></div>'
            rows.append(
                f"<tr><td>{html.escape(w)}</td><td>{self.similarity[0, i]:.3f}</td>"
                f"<td>{self.similarity[-1, i]:.3f}</td><td>{d:+.3f}</td><td>{bar}</td></tr>"
            )
        return (
            "<table><tr><th>word</th><th>start</th><th>end</th><th>change</th><th></th></tr>"
            + "".join(rows)
            + "</table>"
        )


def what_changed(
    path: Any,
    encoder: Any,
    words: Sequence[str],
    *,
    frames: np.ndarray | None = None,
    template: str = "{}",
    progress: bool | None = None,
) -> WordChanges:
    """Which words a path moves towards and away from.

    Measures the cosine of every frame to the text embedding of every word and reports,
    per word, its similarity curve and its change from the first to the last frame.

    Args:
        path: a :class:`~latentlab.Trajectory` or ``(T, d)`` embeddings (``T >= 2``).
        encoder: the :class:`~latentlab.Encoder` of the path's space (encodes ``words``,
            and ``frames`` when given).
        words: the vocabulary to score, e.g. colours and shape names.
        frames: rendered frames ``(T, H, W, 3)``; when given, their CLIP image embeddings
            are measured instead of the path's: what changed in the *pictures*.
        template: how a word becomes a caption, e.g. ``"a {} shape"``.
        progress: tqdm progress bars while the words (and ``frames``) are encoded; ``None``
            (default): a bar for each that takes more than one encoder batch.

    Returns:
        :class:`WordChanges`; ``.ranked()``, ``.gained()``, ``.lost()``; it shows as a table.

    >>> import latentlab as ll                                              # doctest: +SKIP
    >>> what_changed(path, enc, ["red", "blue", "circle", "square"]).gained(2)  # doctest: +SKIP
    [('blue', 0.21), ('square', 0.05)]
    """
    from .ops import similarity_matrix

    _check_encoder(encoder, "(path, encoder, words, ...)")
    words = _words(words)
    template = _check_template(template)
    progress = _check_progress(progress)
    z = path_embeddings(path)
    _encoder_space(z, "path", encoder)
    _check_nonzero(z, "path")
    if frames is not None:
        try:
            frames = np.asarray(frames)
        except ValueError:  # frames of different sizes: numpy's raw 'inhomogeneous shape' error
            raise ArgumentError(
                f"frames must be the path's {z.shape[0]} rendered frames (T, H, W, 3), all of one size; got a "
                "list of frames of different shapes. Fix: render the whole path, e.g. dec.render(path)."
            ) from None
        if frames.ndim != 4 or frames.shape[0] != z.shape[0]:
            raise ArgumentError(
                f"frames must be the path's {z.shape[0]} rendered frames (T, H, W, 3), got shape "
                f"{tuple(frames.shape)}; render the whole path, e.g. dec.render(path)."
            )
        z = _encode(encoder, "image", frames, progress)
    if z.shape[0] < 2:
        raise ArgumentError(f"the path needs at least two frames to change, got {z.shape[0]}.")
    text = _encode(encoder, "text", [template.format(w) for w in words], progress)
    sim = similarity_matrix(_on_device_of(z, text), text).detach().double().cpu().numpy()
    return WordChanges([str(w) for w in words], sim)


# ----------------------------------------------------------------------------------
# pacing
# ----------------------------------------------------------------------------------
def _stack_items(x: list | tuple) -> Any:
    """A list of rows as one array: ``(d,)`` / ``(1, d)`` tensors as ``(T, d)`` (keeping their
    common space tag), ``(H, W, 3)`` frames (PIL images of any mode too) as ``(T, H, W, 3)``,
    numbers as ``(T - 1,)``."""
    if not x:
        raise ArgumentError(
            "x is empty; pass a Trajectory, at least two embeddings (T, d) or frames (T, H, W, 3), "
            "or at least one distance."
        )
    if all(isinstance(v, torch.Tensor) for v in x):
        ndims = {v.ndim for v in x}
        space = common_space(*x, names=tuple(f"x[{i}]" for i in range(len(x))))
        try:
            out = torch.cat(list(x)) if ndims == {2} else torch.stack([v.detach() for v in x])
        except RuntimeError as e:
            shapes = sorted({tuple(v.shape) for v in x})
            raise ArgumentError(f"x is a list of tensors of shapes {shapes[:4]} that do not stack ({e}).") from None
        return tag(out, space)
    from .video import _to_numpy

    try:  # (_to_numpy: a PIL image made RGB as write_video and pacing_stats read one; an RGBA, grey or palette frame was refused)
        arr = np.asarray([_to_numpy(v) for v in x])
    except ValueError:
        raise ArgumentError("x is a list of items of different shapes; give rows of one shape.") from None
    if arr.ndim == 2 and (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        arr = arr.astype(np.float64)  # a list of float lists: (T, d) embeddings
    return arr


def _describe(x: Any) -> str:
    if isinstance(x, (torch.Tensor, np.ndarray)):
        return f"{type(x).__name__} of shape {tuple(x.shape)} and dtype {x.dtype}"
    return type(x).__name__


def consecutive_distances(x: Any, *, metric: str | None = None, encoder: Any = None) -> np.ndarray:
    """How far each frame is from the previous one: ``(T - 1,)`` float64.

    Args:
        x: a :class:`~latentlab.Trajectory` or ``(T, d)`` embeddings (a tensor, a float numpy
            array, or a list of ``(d,)`` rows): the angle in radians between consecutive
            embeddings (a zero row, which has no direction, is refused); or frames
            ``(T, H, W, 3)``, uint8 or float in [0, 1] (as
            :func:`latentlab.write_video` takes them: other ranges and NaN are refused),
            measured with ``metric``; or distances already computed ``(T - 1,)`` (any 1-D
            tensor, numpy array or list of numbers, as :func:`latentlab.pacing_stats` reads
            them), returned as float64 after checking they are finite and >= 0. A single
            ``(d,)`` embedding has no step to measure: pass at least two as ``(T, d)``.
            Empty input is refused.
        metric: for frames, ``"pixel"`` (RMS difference with values in [0, 1], the default
            without an encoder) or ``"clip"`` (angle between the frames' CLIP image
            embeddings, the default with ``encoder``).
        encoder: the :class:`~latentlab.Encoder` for ``metric="clip"``.

    Evenly paced frames give a flat sequence; a spike is a jump on screen.

    >>> import torch
    >>> from latentlab.ops import slerp
    >>> path = slerp(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), torch.linspace(0, 1, 4))
    >>> consecutive_distances(path).round(4).tolist()
    [0.5236, 0.5236, 0.5236]
    >>> consecutive_distances(torch.tensor([0.5, 0.25])).tolist()  # distances: returned as they are
    [0.5, 0.25]
    """
    from .pacing import PACING_METRICS, _check_distances, frame_distances  # the one implementation of both frame metrics
    from .trajectory import Trajectory

    if metric is not None and (not isinstance(metric, str) or metric not in PACING_METRICS):
        # (a mistyped metric was ignored for embeddings and distances, and an array of one name taken for frames)
        raise ArgumentError(f"metric must be one of {PACING_METRICS} or None, got {metric!r}.")
    if encoder is not None:  # (a number raised a raw AttributeError when the frames were encoded)
        _check_encoder(encoder, "(x, metric=..., encoder=...)", needs="encode_image")

    if isinstance(x, (list, tuple)):
        x = _stack_items(x)
    if isinstance(x, np.ndarray) and x.ndim == 2 and np.issubdtype(x.dtype, np.floating):
        x = torch.from_numpy(x)  # (T, d) embeddings saved with np.save (a render's embeddings.npy)
    if isinstance(x, Trajectory) or (isinstance(x, torch.Tensor) and x.ndim == 2 and torch.is_floating_point(x)):
        z = path_embeddings(x, name="x")
        _check_nonzero(z, "x")  # no direction: an angle to it is made up (similarity_matrix refuses it too)
        z = _unit_rows(z.detach().cpu().double())  # (returned as numpy: float64 on the CPU, which MPS lacks)
        if z.shape[0] < 2:
            raise ArgumentError(
                f"need at least two embeddings to measure steps, got {z.shape[0]}. "
                "Fix: pass the path's (T, d) embeddings or the Trajectory."
            )
        a, b = z[1:], z[:-1]
        return (2.0 * torch.atan2((a - b).norm(dim=-1), (a + b).norm(dim=-1))).detach().cpu().numpy()
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x
    real = isinstance(arr, np.ndarray) and arr.dtype != np.bool_ and (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    )
    if real and arr.ndim == 1:  # distances (T - 1,), as pacing_stats reads a 1-D array or tensor
        return _check_distances(arr, "x")
    if real and arr.ndim == 4 and arr.shape[-1] == 3:
        if arr.shape[0] < 2:
            raise ArgumentError(f"need at least two frames to measure steps, got {arr.shape[0]}.")
        return frame_distances(arr, metric=metric or ("clip" if encoder is not None else "pixel"), encoder=encoder)
    # a latentlab result: its frames where it holds them, else its path (a Pacing)
    hint = result_fix(x, "frames" if hasattr(getattr(x, "frames", None), "shape") else "trajectory")
    if not hint and (isinstance(x, Sequence) or not isinstance(x, (np.ndarray, torch.Tensor))):
        hint = " Fix: convert it to a numpy array or a tensor of one of those shapes."
    raise ArgumentError(
        "x must be a Trajectory, (T, d) float embeddings, (T, H, W, 3) frames or (T - 1,) distances; "
        f"got {_describe(x)}.{hint}"
    )
