"""matplotlib views of embeddings and trajectories.

Every function draws on ``ax`` (a new figure when ``None``) and returns the Axes, so plots
compose: draw two paths on one PCA map, or the similarity curves of the path and of its
rendered frames side by side. matplotlib is imported inside the functions.

A new figure stays open in matplotlib until closed: Jupyter's inline backend closes it after
the cell, but a script or loop that saves plots should close each one,
``ax.figure.savefig(path); plt.close(ax.figure)`` (else matplotlib warns past 20 figures, and
their memory is kept).

* :func:`plot_similarity_matrix` - a heatmap of cosines between two sets (images x texts).
* :func:`plot_similarity` - the similarity of each frame of a path to each keyframe or text.
* :func:`plot_pca_map` - a 2D PCA map of embeddings with the trajectory drawn through it.
* :func:`plot_pacing` - consecutive-frame distances: flat is evenly paced, a spike a jump.
* :func:`plot_word_changes` - the similarity curves of the words a path changes most.

>>> import matplotlib; matplotlib.use("Agg")
>>> import torch
>>> from latentlab.ops import slerp
>>> path = slerp(torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 0.0]]), torch.linspace(0, 1, 5))
>>> ax = plot_similarity(path, torch.eye(3)[:2], ["x", "y"])
>>> [round(float(v), 3) for v in ax.lines[0].get_ydata()]
[1.0, 0.924, 0.707, 0.383, 0.0]
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, Mapping, NoReturn, Sequence

import numpy as np
import torch

from .errors import ArgumentError, check_int, is_finite_real
from .explore import PCA, WordChanges, _on_device_of, consecutive_distances, fit_pca, path_embeddings, same_space

__all__ = [
    "plot_similarity_matrix",
    "plot_similarity",
    "plot_pca_map",
    "plot_pacing",
    "plot_word_changes",
]


def _axes(ax: Any, figsize: tuple[float, float]) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _labels(labels: Sequence[Any] | None, n: int, what: str, prefix: str, per: str = "row") -> list[str]:
    """``n`` labels (default ``prefix0``, ...); a bare string is refused, as it would be split
    into letters; ``what`` is the argument's name and ``per`` what each label names."""
    from .explore import _labels as checked

    if labels is None:
        return [f"{prefix}{i}" for i in range(n)]
    return checked(labels, what, n, per)


def _legend_outside(ax: Any) -> None:
    """The legend to the right of the axes, so it never covers the data."""
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)


def _integer_frames(ax: Any) -> None:
    """Whole frame numbers only on the x axis."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


# the most legend entries drawn: more neither fit beside a plot nor can be told apart by colour
_LEGEND_MAX = 20


def _legend(ax: Any, *, grow: bool = False) -> bool:
    """A legend inside the plot for a few entries, beside it for many, in as many columns as it
    needs to fit the figure's height (``grow``: a figure made here is made taller instead).
    None past ``_LEGEND_MAX`` entries (and an earlier call's legend is removed): returns False."""
    n = len(ax.get_legend_handles_labels()[0])
    if n > _LEGEND_MAX:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        return False
    if n <= 4:
        ax.legend(fontsize="small", loc="best")
        return True
    kw: dict[str, Any] = dict(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig = ax.figure
    spec = ax.get_subplotspec() if hasattr(ax, "get_subplotspec") else None  # the axes' own cell of a grid
    cell = spec.get_position(fig).height if spec is not None else ax.get_position().height
    room = 0.9 * (fig.bbox.height if grow else cell * fig.bbox.height)
    height = ax.legend(**kw).get_window_extent().height
    if height > room:  # taller than the figure: constrained layout would squash the axes to nothing
        if grow:
            fig.set_figheight(height / 0.9 / fig.dpi)
        else:
            ax.legend(**kw, ncols=math.ceil(height / room))
    return True


def _colours(k: int) -> list[Any]:
    """``k`` distinct line colours: ``C0`` ... ``C9`` for up to 10; up to 20, those ten then
    their light variants (tab20); more, evenly spaced along "turbo" (in order of the index)."""
    import matplotlib

    if k <= 10:
        return [f"C{i}" for i in range(k)]
    if k <= 20:
        tab20 = list(matplotlib.colormaps["tab20"].colors)
        return (tab20[0::2] + tab20[1::2])[:k]
    return [tuple(c) for c in matplotlib.colormaps["turbo"](np.linspace(0, 1, k))]


def _short(text: str, n: int = 28) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def _literal(text: str) -> str:
    """``text`` as matplotlib draws it literally: ``$`` escaped, so a caption is not read as
    mathtext (dropped ``$``, italics, or an error when drawn), and a leading ``_`` (which hides a
    legend entry) behind a zero-width space."""
    text = text.replace("$", r"\$")
    return "\u200b" + text if text.startswith("_") else text


def _text_width_in(texts: Sequence[str]) -> float:
    """Width in inches of the widest of ``texts`` at the tick label font size."""
    from matplotlib import rcParams
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import text_to_path

    prop = FontProperties(size=rcParams["xtick.labelsize"])
    return max((text_to_path.get_text_width_height_descent(t, prop, ismath=False)[0] for t in texts), default=0.0) / 72


# plot_similarity_matrix: the largest figure it makes by itself (inches), the most cells it
# writes values into unasked, and the smallest cell a value fits in (8 pt, "-0.12")
_MATRIX_FIGSIZE = (14.0, 10.0)
_ANNOTATE_CELLS = 300
_VALUE_CELL_IN = (0.35, 0.18)


def plot_similarity_matrix(
    a: torch.Tensor,
    b: torch.Tensor,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    *,
    ax: Any = None,
    annotate: bool | None = None,
    cmap: str = "viridis",
    title: str | None = None,
) -> Any:
    """Heatmap of ``cosine(a[i], b[j])``, e.g. encoded images (rows) x captions (columns).

    Args:
        a: ``(n, d)`` embeddings.
        b: ``(m, d)`` embeddings of the same space.
        row_labels, col_labels: ``n`` and ``m`` labels.
        annotate: write each value in its cell: ``True`` always, ``False`` never, ``None``
            (default) when the matrix has at most 300 cells and each cell is large enough for
            its value (about 0.35 x 0.18 inches).
        ax: the matplotlib Axes to draw on; ``None``: a new figure.
        cmap: a matplotlib colormap name (``"viridis"``).
        title: the Axes' title; ``None``: none.

    Without ``ax`` the figure is sized to the matrix and its labels, up to 14 x 10 inches: a
    larger matrix gets smaller cells, not a larger figure. When the cells are too small for a
    readable tick label each, only every k-th row or column is labelled (the tick positions say
    which). A given ``ax`` is not resized.

    Returns the Axes; the image is ``ax.images[0]`` (its array is the ``(n, m)`` matrix).
    """
    from matplotlib import rcParams
    from matplotlib.font_manager import FontProperties

    from .ops import similarity_matrix

    if annotate is not None and not isinstance(annotate, (bool, np.bool_)):
        raise ArgumentError(
            f"annotate must be True, False or None (write the values when the matrix is small enough), got {annotate!r}."
        )
    from matplotlib import colormaps

    try:  # before the figure is made (imshow raised a raw ValueError, leaving an empty figure open)
        colormaps.get_cmap(cmap)
    except (ValueError, TypeError):
        raise ArgumentError(f"cmap={cmap!r} is not a matplotlib colormap. Fix: e.g. cmap='viridis' or 'magma'.") from None
    za, zb = path_embeddings(a, name="a"), path_embeddings(b, name="b")
    same_space(za, "a", zb, "b")
    s = similarity_matrix(za, _on_device_of(zb, za)).cpu().double().numpy()  # (GPU: .numpy() refused; MPS: no float64)
    n, m = s.shape
    rows = [_short(r) for r in _labels(row_labels, n, "row_labels", "#", "row of a")]
    cols = [_short(c) for c in _labels(col_labels, m, "col_labels", "#", "row of b")]
    angle = math.radians(35)  # of the column labels
    if ax is None:  # room for the labels around a heatmap of at least 2.5 x 1.5 inches, at most the cap
        max_w, max_h = _MATRIX_FIGSIZE
        want_w, want_h = max(0.75, 2.5 / m), max(0.45, 1.5 / n)
        col_w, row_w = _text_width_in(cols), _text_width_in(rows)
        top, right = (0.6 if title else 0.3), 1.3  # the colorbar
        below = col_w * math.sin(angle) + 0.45
        cell_w = want_w
        for _ in range(2):  # narrower cells let the first rotated label reach further left
            left = max(row_w, col_w * math.cos(angle) - cell_w / 2) + 0.35
            cell_w = min(want_w, (max_w - left - right) / m)
        cell_h = min(want_h, (max_h - below - top) / n)
        ax = _axes(None, (left + cell_w * m + right, below + cell_h * n + top))
    else:  # the cells of the given axes, less the colorbar's share (measured on screen: an Axes may sit in a SubFigure)
        root = ax.figure
        while getattr(root, "figure", root) is not root:  # a SubFigure's root Figure, whose dpi the extent is in
            root = root.figure
        bb = ax.get_window_extent()
        cell_w, cell_h = 0.8 * bb.width / root.dpi / m, bb.height / root.dpi / n
    im = ax.imshow(s, cmap=cmap, aspect="auto")
    # a tick label every k cells, so that neighbouring labels do not overlap
    line = 1.3 * FontProperties(size=rcParams["xtick.labelsize"]).get_size_in_points() / 72
    kx = max(1, math.ceil(line / max(cell_w * math.sin(angle), 1e-9) - 1e-9))
    line = 1.3 * FontProperties(size=rcParams["ytick.labelsize"]).get_size_in_points() / 72
    ky = max(1, math.ceil(line / max(cell_h, 1e-9) - 1e-9))
    ax.set_xticks(range(0, m, kx), [_literal(c) for c in cols[::kx]], rotation=35, ha="right")
    ax.set_yticks(range(0, n, ky), [_literal(r) for r in rows[::ky]])
    if annotate is None:
        annotate = n * m <= _ANNOTATE_CELLS and cell_w >= _VALUE_CELL_IN[0] and cell_h >= _VALUE_CELL_IN[1]
    if annotate:
        mid = (s.max() + s.min()) / 2
        for i in range(n):
            for j in range(m):
                ax.text(j, i, f"{s[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="black" if s[i, j] > mid else "white")  # fmt: skip
    ax.figure.colorbar(im, ax=ax, label="cosine")
    if title:
        ax.set_title(title)
    return ax


def _frame_marks(keyframes: Any, frames: int) -> list[int]:
    """``keyframes`` (a list, array or tensor of frame indices, or ``None``) as ints, each in
    ``[0, frames)``; else an :class:`ArgumentError` (``int()`` drew 1.5 at frame 1)."""
    if keyframes is None:
        return []
    try:
        marks = list(keyframes.tolist() if isinstance(keyframes, (np.ndarray, torch.Tensor)) else keyframes)
    except TypeError:
        marks = None
    if isinstance(keyframes, (str, bytes)) or marks is None or not all(
        isinstance(k, numbers.Integral) and not isinstance(k, bool) and 0 <= k < frames for k in marks
    ):
        raise ArgumentError(
            f"keyframes must be frame indices, integers in [0, {frames}) for this path of {frames} frames (a list, "
            f"array or tensor), got {keyframes!r}."
        )
    return [int(k) for k in marks]


def plot_similarity(
    path: Any,
    references: torch.Tensor | None = None,
    labels: Sequence[str] | None = None,
    *,
    ax: Any = None,
    keyframes: Sequence[int] | None = None,
    linestyle: str = "-",
    colors: Sequence[Any] | None = None,
    title: str | None = None,
) -> Any:
    """The cosine of every frame of ``path`` to each reference embedding, along the path.

    Args:
        path: a :class:`~latentlab.Trajectory` or ``(T, d)`` embeddings (for example the
            CLIP embeddings of rendered frames, to see what the pictures follow).
        references: ``(K, d)`` embeddings to compare against (keyframes, texts); by default
            a Trajectory's own keyframes.
        labels: ``K`` labels (default: the Trajectory's keyframe labels, or ``#k``).
        keyframes: frame indices to mark with vertical lines (default: a Trajectory's
            keyframe frames).
        linestyle: matplotlib line style, e.g. ``"--"`` to overlay a second set of curves
            on the same ``ax``: reference ``k`` is always drawn in the same colour (``"C{k}"``
            unless ``colors`` says otherwise), so the overlay keeps one colour per reference.
        colors: one matplotlib colour per reference (``K`` of them), e.g.
            ``["tab:red", "tab:blue"]`` to draw each caption in its own colour; default
            ``"C0"``, ``"C1"``, ... for up to 10 references, then ``K`` distinct colours
            (up to 20: the ten of tab10, then their light variants from tab20; more: evenly
            spaced along the "turbo" colormap, in reference order). Pass the same list again
            for an overlay. (The axes' colour cycle is not used: ``ax.set_prop_cycle`` has no
            effect here.)
        ax: the matplotlib Axes to draw on; ``None``: a new figure.
        title: the Axes' title; ``None``: none.

    Labels are drawn as written (a ``$`` is not read as mathtext). The legend sits inside the
    plot for up to 4 curves, beside it for more; a figure made here grows taller to hold it.
    With more than 20 curves on the axes no legend is drawn (it would not fit, nor could its
    colours be told apart) and a UserWarning says so: plot a few references at a time to name
    them, or compare them all with :func:`plot_similarity_matrix`.

    Returns the Axes; ``ax.lines[k]`` is the curve of reference ``k`` (``T`` points).
    """
    from .explore import _check_nonzero
    from .ops import similarity_matrix
    from .trajectory import Trajectory

    z = path_embeddings(path)
    if references is None:
        if not isinstance(path, Trajectory):
            raise ArgumentError("references is required unless path is a Trajectory (whose keyframes are used).")
        references = path.keyframes
        if labels is None and path.labels is not None:
            labels = path.labels
    refs = path_embeddings(references, name="references")
    labs = _labels(labels, refs.shape[0], "labels", "#", "reference")
    if keyframes is None and isinstance(path, Trajectory):
        keyframes = path.keyframe_indices()
    marks = _frame_marks(keyframes, z.shape[0])
    K = refs.shape[0]
    if colors is None:
        cols: list[Any] = _colours(K)
    else:
        from matplotlib.colors import is_color_like

        try:
            if isinstance(colors, str):  # one colour, not a list of them
                raise TypeError
            cols = list(colors)
        except TypeError:
            raise ArgumentError(
                f"colors must be a list of colours, one per reference ({K}), got {colors!r}. "
                "Fix: e.g. colors=['tab:red', 'tab:blue'] for two references."
            ) from None
        if len(cols) != K:
            raise ArgumentError(
                f"colors has {len(cols)} entries for {K} references; give one colour per reference."
            )
        bad = [c for c in cols if not is_color_like(c)]
        if bad:
            raise ArgumentError(f"colors holds {bad[0]!r}, which is not a matplotlib colour (e.g. 'tab:red', '#1f77b4').")
    from matplotlib.lines import Line2D

    try:  # (passed as a format string, "dashed" or (0, (5, 1)) raised a raw ValueError)
        Line2D([], [], linestyle=linestyle)
    except (ValueError, TypeError):
        raise ArgumentError(
            f"linestyle={linestyle!r} is not a matplotlib line style. Fix: e.g. '-', '--', ':', '-.', 'dashed' or (0, (5, 1))."
        ) from None
    same_space(z, "path", refs, "references")
    # checked here, so that the error names this plot's arguments, not similarity_matrix's a and b
    _check_nonzero(z, "path")
    _check_nonzero(refs, "references")
    # (T, K), on the CPU (on a GPU, .numpy() refused them; references on another device were named a and b)
    s = similarity_matrix(z, _on_device_of(refs, z)).cpu().double().numpy()  # (float64 on the CPU: MPS has none)
    made = ax is None
    ax = _axes(ax, (7, 3.5))
    x = np.arange(z.shape[0])
    for k in range(s.shape[1]):
        ax.plot(x, s[:, k], linestyle=linestyle, color=cols[k], marker="." if z.shape[0] <= 60 else None,
                label=_literal(_short(labs[k])))  # fmt: skip
    for kf in marks:
        ax.axvline(kf, color="0.7", linewidth=0.8, zorder=0)
    ax.set_xlabel("frame")
    _integer_frames(ax)
    ax.set_ylabel("cosine similarity")
    if not _legend(ax, grow=made):
        n = len(ax.get_legend_handles_labels()[0])
        warnings.warn(
            f"plot_similarity draws no legend for {n} curves (at most {_LEGEND_MAX} fit beside the plot and can be "
            "told apart by colour). To name them, plot a few references at a time, e.g. "
            "plot_similarity(path, references[:10], labels[:10]); to compare all of them, use "
            "plot_similarity_matrix(path, references, col_labels=labels).",
            UserWarning,
            stacklevel=2,
        )
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return ax


def plot_pca_map(
    path: Any | Sequence[Any] | None = None,
    points: torch.Tensor | None = None,
    labels: Sequence[str] | None = None,
    *,
    images: Sequence[np.ndarray] | None = None,
    pca: PCA | None = None,
    ax: Any = None,
    path_labels: Sequence[str] | None = None,
    zoom: float = 0.5,
    title: str | None = None,
) -> Any:
    """A 2D map of CLIP space (the first two principal components) with trajectories.

    Args:
        path: a Trajectory or ``(T, d)`` embeddings, or a list of them; each is drawn as
            a line from its start (circle) to its end (star), coloured along its length
            with its own colormap, keyframes marked with squares.
        points: ``(n, d)`` other embeddings to place on the map (images, texts).
        labels: ``n`` labels written beside the points (needs ``points``).
        images: ``n`` thumbnails drawn at the points instead of dots (needs ``points``).
        pca: the projection to use; by default one fitted on the points and the paths together
            (as directions: every row scaled to unit norm, as the decoders read them, so a lerp
            path is drawn where its frames are, on the nlerp arc), which must hold at least three
            distinct directions (add ``points``, or pass a ``pca`` fitted on more embeddings).
        path_labels: one legend entry per path (default ``"path 1"``, ``"path 2"``, ...);
            the legend sits to the right of the map, each entry in its path's mid colour.
        zoom: thumbnail zoom.
        ax: the matplotlib Axes to draw on; ``None``: a new figure.
        title: the Axes' title; ``None``: none.

    Returns the Axes; ``ax.pca`` is the :class:`~latentlab.explore.PCA` used.
    """
    from matplotlib.collections import LineCollection

    from .trajectory import Trajectory

    if path is None:
        paths: list[Any] = []
    elif isinstance(path, (list, tuple)):
        paths = list(path)
    else:
        paths = [path]
    listed = isinstance(path, (list, tuple))  # one path is named "path", as the user passed it
    zs = [path_embeddings(p, name=f"path[{i}]" if listed else "path") for i, p in enumerate(paths)]
    pts = path_embeddings(points, name="points") if points is not None else None
    if not zs and pts is None:
        raise ArgumentError("plot_pca_map needs a path, points, or both.")
    for arg, value in (("labels", labels), ("images", images)):
        if value is not None and pts is None:
            raise ArgumentError(f"{arg} belongs to points, but no points= were given; pass points=(n, d) embeddings too.")
    if images is not None:
        images = _thumbnails(images)
        if not is_finite_real(zoom) or zoom <= 0:
            raise ArgumentError(f"zoom must be a number > 0 (the thumbnails' scale), got {zoom!r}. Fix: e.g. zoom=0.5.")
    names = _labels(path_labels, len(zs), "path_labels", "", "path") if path_labels is not None else [
        f"path {i + 1}" for i in range(len(zs))
    ]
    first = zs[0] if zs else pts  # paths and points on one device (torch.cat of a GPU's and the CPU's raised a raw error)
    zs = [_on_device_of(z, first) for z in zs]
    pts = _on_device_of(pts, first) if pts is not None else None
    named = [(z, f"path[{i}]" if len(zs) > 1 else "path") for i, z in enumerate(zs)] + ([(pts, "points")] if pts is not None else [])
    for z, name in named[1:]:
        same_space(named[0][0], named[0][1], z, name)
    from .explore import _check_nonzero

    for z, name in named:  # (the map reads directions: fit_pca named a zero row by its place in all of them)
        _check_nonzero(z, name)
    if pca is not None and not isinstance(pca, PCA):
        raise ArgumentError(f"pca must be a PCA from ll.fit_pca(embeddings) (or None), got {type(pca).__name__}.")
    if pca is not None and pca.rank < 2:
        raise ArgumentError(
            f"pca has rank {pca.rank}, but a 2D map needs two components. Fix: fit it on embeddings that do not "
            "lie on one line, e.g. pca=ll.fit_pca(torch.cat([path_embeddings, other_embeddings])), or leave pca=None."
        )
    if pca is None:
        every = torch.cat([*zs, *([pts] if pts is not None else [])])
        pca = fit_pca(every)
        if pca.rank < 2:
            _too_flat(every, pca.rank, " and ".join(n for _, n in named))
    # labels and images counted before the figure is made (a refusal left an empty figure open)
    labs = _labels(labels, pts.shape[0], "labels", "#", "point") if pts is not None and labels is not None else None
    if images is not None and len(images) != pts.shape[0]:
        raise ArgumentError(f"images has {len(images)} entries for {pts.shape[0]} points.")
    ax = _axes(ax, (6, 5))
    ax.pca = pca
    ratio = pca.explained_ratio
    if pts is not None:
        xy = pca.project(pts, 2).cpu().numpy()  # (a PCA or embeddings on a GPU: .numpy() refused them)
        if images is not None:
            from matplotlib.offsetbox import AnnotationBbox, OffsetImage

            ax.scatter(xy[:, 0], xy[:, 1], s=0)
            for (x0, y0), im in zip(xy, images):
                ab = AnnotationBbox(OffsetImage(np.asarray(im), zoom=zoom), (x0, y0), frameon=True, pad=0.1)
                ax.add_artist(ab)
        else:
            ax.scatter(xy[:, 0], xy[:, 1], s=25, color="0.35", zorder=3)
        for i, lab in enumerate(labs or ()):
            ax.annotate(_literal(_short(lab, 22)), xy[i], textcoords="offset points", xytext=(4, 4), fontsize=8)
    import matplotlib

    cmaps = ["viridis", "plasma", "cividis", "magma"]
    had = set(ax.get_legend_handles_labels()[1])  # a second call on the same ax adds no second start/end entry
    for i, (p, z) in enumerate(zip(paths, zs)):
        xy = pca.project(z, 2).cpu().numpy()
        cmap = cmaps[i % len(cmaps)]
        segs = np.stack([xy[:-1], xy[1:]], axis=1)
        lc = LineCollection(segs, cmap=cmap, linewidths=2.5, zorder=4)
        lc.set_array(np.linspace(0, 1, len(segs)))
        ax.add_collection(lc)
        # the legend entry: an empty line in the colour of the path's middle
        ax.plot([], [], color=matplotlib.colormaps[cmap](0.5), linewidth=2.5, label=_literal(_short(names[i])))
        if isinstance(p, Trajectory):  # open squares, larger than the start dot, so both show
            kxy = xy[p.keyframe_indices()]
            ax.plot(kxy[:, 0], kxy[:, 1], "s", fillstyle="none", markersize=11, color="black", zorder=5,
                    label="keyframe" if "keyframe" not in had else None)  # fmt: skip
            had.add("keyframe")
        ax.plot(*xy[0], "o", color="black", markeredgecolor="white", markersize=7, zorder=6,
                label="start" if "start" not in had else None)  # fmt: skip
        ax.plot(*xy[-1], "*", color="black", markeredgecolor="white", markersize=13, zorder=6,
                label="end" if "end" not in had else None)  # fmt: skip
        had |= {"start", "end"}
    ax.autoscale_view()
    ax.set_xlabel(f"PC 1 ({100 * float(ratio[0]):.0f}% of variance)")
    ax.set_ylabel(f"PC 2 ({100 * float(ratio[1]):.0f}%)")
    ax.grid(alpha=0.3)
    if paths:
        handles, texts = ax.get_legend_handles_labels()
        order = sorted(range(len(texts)), key=lambda j: texts[j] in ("keyframe", "start", "end"))  # paths first
        ax.legend([handles[j] for j in order], [texts[j] for j in order], fontsize="small", loc="upper left",
                  bbox_to_anchor=(1.02, 1), borderaxespad=0)  # fmt: skip
    if title:
        ax.set_title(title)
    return ax


def _thumbnails(images: Any) -> list[np.ndarray]:
    """``images`` (any iterable, read once) as a list of arrays matplotlib draws: ``(H, W)`` grey,
    ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA, of numbers; else an :class:`ArgumentError` naming the
    item (a generator raised a raw TypeError from ``len``, a file name or a bad shape one from
    matplotlib when the figure was drawn)."""
    if isinstance(images, (str, bytes)):
        images = [images]
    try:
        items = list(images)
    except TypeError:
        raise ArgumentError(f"images must be a list of (H, W, 3) pictures, one per point, got {type(images).__name__}.") from None
    out = []
    for i, im in enumerate(items):
        a = np.asarray(im.detach().cpu() if isinstance(im, torch.Tensor) else im)
        if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)) or 0 in a.shape \
                or not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
            raise ArgumentError(
                f"images[{i}] has shape {a.shape} (dtype {a.dtype}); each thumbnail must be a (H, W, 3) picture "
                "(uint8, or float in [0, 1]). Fix: pass pictures, e.g. ll.load_image(path) for a file."
            )
        out.append(a)
    return out


def _too_flat(z: torch.Tensor, rank: int, given: str) -> NoReturn:
    """Raise the error for embeddings whose PCA has ``rank`` < 2: what they are (one direction,
    two, or more nearly on one line) and how to get a map anyway. (The PCA reads rows as
    directions, scaled to unit norm: three distinct ones span a plane.)"""
    unit = z.double() / z.double().norm(dim=-1, keepdim=True).clamp_min(1e-12)
    n, distinct = z.shape[0], int(torch.unique(unit.float().round(decimals=6), dim=0).shape[0])
    others = "other embeddings to place on the map (texts or images)"
    if rank == 0 or distinct == 1:
        shape = "are all the same point (rank 0)" if torch.unique(z, dim=0).shape[0] == 1 else \
            "are all one direction (rank 0: scaled copies of one embedding; the map reads directions)"  # fmt: skip
    elif distinct <= 2:
        shape = f"hold only {distinct} distinct points (rank 1)"
    else:  # (distinct unit vectors, three or more, span a plane: only nearly equal ones come here)
        shape = f"lie almost on one line ({distinct} distinct points, rank 1)"
    raise ArgumentError(
        f"a 2D map needs a PCA of rank >= 2, but the {n} embeddings given ({given}) {shape}. Fix: pass "
        f"points=(n, d) {others}, or pca=ll.fit_pca(embeddings) fitted on a wider set."
    )


def _unit_of(item: Any, metric: str | None, encoder: Any) -> str:
    """What :func:`consecutive_distances` measures for ``item`` (already measured, so valid):
    for the y-axis label."""
    from .explore import _stack_items
    from .trajectory import Trajectory

    if isinstance(item, Trajectory):
        return "angle"
    if isinstance(item, (list, tuple)):
        item = _stack_items(item)
    ndim = item.ndim if isinstance(item, (torch.Tensor, np.ndarray)) else np.ndim(item)
    if ndim == 4:
        return metric or ("clip" if encoder is not None else "pixel")
    return "angle" if ndim == 2 else "given"


def plot_pacing(
    x: Any | Mapping[str, Any],
    *,
    metric: str | None = None,
    encoder: Any = None,
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Consecutive-frame distances: how much each frame changes from the previous one.

    Args:
        x: a Trajectory or ``(T, d)`` embeddings (angle between consecutive embeddings),
            frames ``(T, H, W, 3)``, uint8 or float in [0, 1] (``metric`` "pixel" or "clip",
            see :func:`~latentlab.explore.consecutive_distances`), distances ``(T - 1,)`` (a
            1-D tensor, array or list), or a dict ``{label: any of those}`` to compare several
            sequences on one plot.
        metric, encoder: how frames are measured.
        ax: the matplotlib Axes to draw on; ``None``: a new figure.
        title: the Axes' title; ``None``: none.

    Each curve's legend gives its coefficient of variation (std / mean: 0 is perfectly
    even) and its largest step over the median step, both as
    :func:`~latentlab.pacing_stats` computes them (``inf`` when the median step is 0 but
    some step is not). Returns the Axes; ``ax.lines`` alternate curve, mean line for each
    sequence.
    """
    from .pacing import pacing_stats

    series = dict(x) if isinstance(x, Mapping) else {"": x}
    if not series:
        raise ArgumentError("x is an empty dict; pass at least one sequence.")
    # every sequence measured before the figure is made: a refused one left an empty figure open
    measured = {name: consecutive_distances(item, metric=metric, encoder=encoder) for name, item in series.items()}
    ax = _axes(ax, (7, 3))
    units = set()
    for name, item in series.items():
        d = measured[name]
        units.add(_unit_of(item, metric, encoder))
        stats = pacing_stats(d)  # the same figures as ll.pacing_stats reports
        name = str(name)  # (a dict keyed by numbers: {1: frames} raised AttributeError, and 0 lost its name)
        label = f"{_literal(name) + ': ' if name else ''}cv {stats['cv']:.2f}, max/median {stats['max_jump_over_median']:.1f}"
        (line,) = ax.plot(np.arange(1, d.size + 1), d, marker="." if d.size <= 60 else None, label=label)
        ax.axhline(stats["mean"], color=line.get_color(), linestyle=":", linewidth=1)
    what = {"angle": "angle (rad)", "pixel": "pixel RMS change", "clip": "CLIP angle (rad)", "given": "distance"}
    ax.set_ylabel(" / ".join(what[u] for u in sorted(units)))
    ax.set_xlabel("frame")
    _integer_frames(ax)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="small", loc="best")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return ax


def plot_word_changes(changes: WordChanges, *, top: int = 6, ax: Any = None, title: str | None = None) -> Any:
    """The similarity curves of the ``top`` words that a path changes most (see
    :func:`~latentlab.explore.what_changed`): solid for gained, dashed for lost.

    ``top`` is an integer >= 1. The legend sits to the right of the plot (in columns, or a figure
    made here grows, where it is taller than the plot; none past 20 words, as for
    :func:`plot_similarity`), and the curves keep distinct colours past 10. ``ax``: the
    matplotlib Axes to draw on (``None``: a new figure); ``title``: its title (``None``: none).
    Returns the Axes; ``ax.lines[i]`` is the curve of ``changes.ranked(top)[i]``.
    """
    if not isinstance(changes, WordChanges):
        raise ArgumentError(f"changes must come from latentlab.explore.what_changed, got {type(changes).__name__}.")
    top = check_int(top, "top", minimum=1)
    made = ax is None
    ax = _axes(ax, (7, 3.5))
    x = np.arange(changes.similarity.shape[0])
    ranked = changes.ranked(top)
    for (word, d), colour in zip(ranked, _colours(len(ranked))):
        i = changes.words.index(word)
        ax.plot(x, changes.similarity[:, i], "-" if d > 0 else "--", color=colour,
                label=f"{_literal(_short(word))} ({d:+.2f})")  # fmt: skip
    ax.set_xlabel("frame")
    _integer_frames(ax)
    ax.set_ylabel("cosine to the word")
    if len(ranked) <= 4:  # (beside the plot, as always here; _legend would put a few inside)
        _legend_outside(ax)
    elif not _legend(ax, grow=made):
        warnings.warn(f"plot_word_changes draws no legend for {len(ranked)} words (at most {_LEGEND_MAX} fit beside "
                      "the plot); pass a smaller top.", UserWarning, stacklevel=2)  # fmt: skip
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return ax
