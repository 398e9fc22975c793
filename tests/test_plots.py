"""Plots, pacing measurements and the package namespace: the audit of the plots (Agg, no models)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import latentlab as ll
from latentlab.errors import ArgumentError, LatentlabError, SpaceError
from latentlab.explore import WordChanges
from latentlab.ops import slerp
from latentlab.pacing import frame_distances, pacing_stats
from latentlab.space import check_embeddings, tag
from latentlab.trajectory import Segment, Trajectory

from conftest import grey_frames, ramp_frames


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def _unit(n: int, d: int = 16, seed: int = 0, space: str | None = "s") -> torch.Tensor:
    z = torch.nn.functional.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)
    return tag(z, space)




def _words(T: int = 21) -> WordChanges:
    t = np.linspace(0, 1, T)[:, None]
    return WordChanges(["red", "blue", "circle"], np.hstack([1 - t, t, 0.5 + 0 * t]))


# -- pacing: one reading of every input ---------------------------------------------------


def test_plot_pacing_legend_agrees_with_pacing_stats_when_the_median_step_is_0():
    held = np.array([0, 0, 0, 0.5, 0, 0, 0.0])
    assert pacing_stats(held)["max_jump_over_median"] == math.inf
    ax = ll.plot_pacing(held)
    assert ax.get_legend().get_texts()[0].get_text() == f"cv {pacing_stats(held)['cv']:.2f}, max/median inf"  # was 1.0


def test_consecutive_distances_reads_a_1d_tensor_as_distances_like_pacing_stats():
    d = torch.tensor([0.1, 0.1, 0.4, 0.1], dtype=torch.float64)
    np.testing.assert_array_equal(ll.consecutive_distances(d), d.numpy())  # was "need at least two embeddings"
    ax = ll.plot_pacing(d)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), d.numpy())
    assert ax.get_ylabel() == "distance"
    assert pacing_stats(d) == pacing_stats(ll.consecutive_distances(d))
    with pytest.raises(ArgumentError, match=r"single \(d,\) embedding\? Pass at least two embeddings as \(T, d\)"):
        ll.consecutive_distances(_unit(1)[0])  # one embedding has negative entries
    with pytest.raises(ArgumentError, match="finite"):
        ll.consecutive_distances(torch.tensor([0.1, float("nan")]))


def test_pacing_stats_and_frame_distances_take_float_frames_as_consecutive_distances_does():
    f = grey_frames(4)
    as_float = f.astype(np.float32) / 255
    np.testing.assert_allclose(frame_distances(as_float, metric="pixel"), frame_distances(f, metric="pixel"))
    assert pacing_stats(as_float) == pacing_stats(f)  # was "must be uint8"
    assert pacing_stats(torch.from_numpy(as_float)) == pacing_stats(f)
    np.testing.assert_allclose(ll.consecutive_distances(as_float), frame_distances(f, metric="pixel"))
    with pytest.raises(ArgumentError, match=r"looks like \[-1, 1\]"):
        pacing_stats(as_float * 2 - 1)


def test_consecutive_distances_stacks_lists_of_rows_and_names_other_types():
    z = _unit(6)
    expected = ll.consecutive_distances(z)
    np.testing.assert_allclose(ll.consecutive_distances(list(z)), expected)  # (d,) tensors: was "got shape (6, 16)"
    np.testing.assert_allclose(ll.consecutive_distances(z.tolist()), expected, rtol=1e-6)  # lists of floats
    np.testing.assert_allclose(ll.consecutive_distances(list(z.split(2))), expected)  # (n, d) blocks
    with pytest.raises(SpaceError, match="x\\[0\\] is in 's'"):
        ll.consecutive_distances([tag(z[:2], "s"), _unit(2, seed=1, space="other")])
    rr = ll.RenderResult(frames=grey_frames(4), out_dir=Path("."), video=Path("x.mp4"), contact_sheet=Path("c.png"),
                         spec=None, trajectory=None)  # fmt: skip
    with pytest.raises(ArgumentError, match=r"got RenderResult\. Fix: pass its frames, e\.g\. result\.frames"):
        ll.plot_pacing(rr)  # was "got shape ()"


@pytest.mark.parametrize("empty", [[], (), np.zeros(0), torch.zeros(0), {"a": []}])
def test_empty_input_is_refused_everywhere(empty):
    with pytest.raises(ArgumentError, match="empty|no distances"):
        ll.plot_pacing(empty)  # drew an empty plot
    if not isinstance(empty, dict):
        with pytest.raises(ArgumentError, match="empty|no distances"):
            ll.consecutive_distances(empty)  # returned []
        with pytest.raises(ArgumentError, match="no distances"):
            pacing_stats(empty)


# -- plots ----------------------------------------------------------------------------------


def test_plot_similarity_matrix_makes_room_for_long_labels():
    a, b = _unit(2), _unit(4, seed=1)
    caps = ["a photo of a red circle", "a photo of a blue square", "a drawing of a green triangle", "a yellow star on white"]
    ax = ll.plot_similarity_matrix(a, b, ["red_circle.png", "yellow_star.png"], caps, title="images x captions")
    fig = ax.figure
    fig.canvas.draw()
    box = ax.get_window_extent()
    assert box.height >= 1.2 * fig.dpi and box.width >= 2.0 * fig.dpi  # was 20 px high
    for label in ax.get_xticklabels() + ax.get_yticklabels():  # every label inside the figure
        lb = label.get_window_extent()
        assert lb.x0 >= 0 and lb.y0 >= 0 and lb.x1 <= fig.bbox.width + 1
    import matplotlib.pyplot as plt

    _, given = plt.subplots(figsize=(3, 2))
    assert tuple(ll.plot_similarity_matrix(a, b, ax=given).figure.get_size_inches()) == (3, 2)  # a given ax is not resized


def test_plot_similarity_matrix_keeps_a_large_matrix_to_a_readable_figure():
    # a 60 x 120 matrix made a 92 x 28 inch figure with 7200 values written in it (19 s)
    ax = ll.plot_similarity_matrix(_unit(60), _unit(120, seed=1))
    fig = ax.figure
    w, h = fig.get_size_inches()
    assert w <= 14 + 1e-6 and h <= 10 + 1e-6
    assert len(ax.texts) == 0  # too many cells to write each value unasked
    xt, yt = ax.get_xticks(), ax.get_yticks()
    assert 10 <= len(xt) < 120 and 10 <= len(yt) < 60  # every k-th label, not all of them
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"#{int(i)}" for i in xt]  # each label at its own cell
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"#{int(i)}" for i in yt]
    assert len(set(np.diff(xt))) == 1 and len(set(np.diff(yt))) == 1
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in ax.get_yticklabels()]
    assert all(lo.y1 <= hi.y0 + 0.5 or hi.y1 <= lo.y0 + 0.5 for lo, hi in zip(boxes, boxes[1:]))  # no overlap
    # annotate: None writes the values of a small matrix, True always, False never
    assert len(ll.plot_similarity_matrix(_unit(12), _unit(16, seed=1)).texts) == 12 * 16
    assert len(ll.plot_similarity_matrix(_unit(20), _unit(20, seed=1)).texts) == 0
    assert len(ll.plot_similarity_matrix(_unit(20), _unit(20, seed=1), annotate=True).texts) == 400
    assert len(ll.plot_similarity_matrix(_unit(3), _unit(2, seed=1), annotate=False).texts) == 0
    small = ll.plot_similarity_matrix(_unit(3), _unit(2, seed=1), ["x", "y", "z"], ["p", "q"])
    assert [t.get_text() for t in small.get_xticklabels()] == ["p", "q"] and len(small.texts) == 6
    with pytest.raises(ArgumentError, match="annotate must be True, False or None.*got 'yes'"):
        ll.plot_similarity_matrix(_unit(3), _unit(2, seed=1), annotate="yes")


def test_plot_similarity_overlay_keeps_one_colour_per_reference():
    from matplotlib.colors import to_hex

    refs = _unit(3, seed=1)
    path, frames = _unit(8, seed=2), _unit(8, seed=3)
    ax = ll.plot_similarity(path, refs, ["a", "b", "c"])
    ll.plot_similarity(frames, refs, ["a", "b", "c"], ax=ax, linestyle="--")
    curves = [ln for ln in ax.lines if len(ln.get_xdata()) == 8]
    assert [to_hex(ln.get_color()) for ln in curves[:3]] == [to_hex(ln.get_color()) for ln in curves[3:]]
    assert [to_hex(ln.get_color()) for ln in curves[:3]] == [to_hex(f"C{k}") for k in range(3)]


def test_plot_similarity_draws_each_reference_in_the_colour_given():
    """colors= sets one colour per reference (notebook 02 draws each caption in its colour: the
    axes' colour cycle it used to set was ignored, so "a red circle" came out blue)."""
    from matplotlib.colors import to_hex

    refs = _unit(2, seed=1)
    path, frames = _unit(8, seed=2), _unit(8, seed=3)
    colours = ["tab:red", "tab:blue"]
    ax = ll.plot_similarity(path, refs, ["red", "blue"], colors=colours)
    ll.plot_similarity(frames, refs, ["red (frames)", "blue (frames)"], ax=ax, linestyle="--", colors=colours)
    curves = [ln for ln in ax.lines if len(ln.get_xdata()) == 8]
    assert [to_hex(ln.get_color()) for ln in curves] == [to_hex(c) for c in colours * 2]
    assert [ln.get_linestyle() for ln in curves] == ["-", "-", "--", "--"]
    legend = {t.get_text(): to_hex(h.get_color()) for t, h in zip(ax.get_legend().get_texts(), ax.get_legend().legend_handles)}
    assert legend["red"] == legend["red (frames)"] == to_hex("tab:red")
    with pytest.raises(ArgumentError, match="colors has 1 entries for 2 references"):
        ll.plot_similarity(path, refs, colors=["tab:red"])
    with pytest.raises(ArgumentError, match="colors must be a list of colours"):
        ll.plot_similarity(path, refs, colors="tab:red")
    with pytest.raises(ArgumentError, match="colors holds 'reddish'"):
        ll.plot_similarity(path, refs, colors=["tab:red", "reddish"])


@pytest.mark.parametrize("keyframes", [[1.5], [0, 5], [-1], [True], "12", 3, np.array(2), torch.tensor([0.0, 2.0])])
def test_plot_similarity_refuses_keyframes_that_are_not_frames_of_the_path(keyframes):
    """keyframes=[1.5] drew a line at frame 1 (int() truncated it); [0, 5] on a 5-frame path
    widened the axis past the path; 3 raised a raw TypeError."""
    with pytest.raises(ArgumentError, match=r"keyframes must be frame indices, integers in \[0, 5\)"):
        ll.plot_similarity(_unit(5), _unit(2, seed=1), keyframes=keyframes)
    plt.close("all")


def test_plot_similarity_marks_keyframes_given_as_a_list_array_or_tensor():
    for marks in ([0, 4], np.array([0, 4]), torch.tensor([0, 4]), (np.int64(0), 4)):
        ax = ll.plot_similarity(_unit(5), _unit(2, seed=1), keyframes=marks)
        assert [ln.get_xdata()[0] for ln in ax.lines[2:]] == [0, 4]
        plt.close("all")


def test_plot_pca_map_legend_shows_each_path_in_its_colour_and_a_visible_start():
    from matplotlib.colors import to_hex

    kf = _unit(4)
    p1, p2 = Trajectory(kf[:3], frames=9), Trajectory(kf[[3, 0]], frames=6)
    ax = ll.plot_pca_map([p1, p2], kf)
    leg = ax.get_legend()
    texts = [t.get_text() for t in leg.get_texts()]
    assert texts[:2] == ["path 1", "path 2"]  # every path named (was only path 0's start/end)
    colours = [to_hex(h.get_color()) for h in leg.legend_handles[:2]]
    assert colours == [to_hex(matplotlib.colormaps[c](0.5)) for c in ("viridis", "plasma")]  # was #1f77b4
    start = next(ln for ln in ax.lines if ln.get_marker() == "o")
    square = next(ln for ln in ax.lines if ln.get_marker() == "s")
    assert start.get_zorder() > square.get_zorder() and square.get_markersize() > start.get_markersize()


def test_plot_pca_map_says_when_the_embeddings_lie_on_one_line():
    # the map reads embeddings as directions (unit rows, as the decoders do, since 2026-12-06): a lerp
    # path between two keyframes, refused before as lying on one line, is drawn on its nlerp arc
    path = Trajectory.chain(_unit(2), frames=8, method="lerp")
    assert ll.plot_pca_map(path).pca.rank >= 2
    two = _unit(2).repeat(4, 1)  # two directions only: refused, and both ways out draw the map
    with pytest.raises(ArgumentError) as err:
        ll.plot_pca_map(two)
    msg = str(err.value)
    assert "the 8 embeddings given (path) hold only 2 distinct points (rank 1)" in msg
    assert "points=" in msg and "pca=ll.fit_pca(" in msg
    assert ll.plot_pca_map(two, points=_unit(3, seed=5)).pca.rank >= 2
    wider = ll.fit_pca(torch.cat([two, _unit(3, seed=5)]))
    assert ll.plot_pca_map(two, pca=wider).pca is wider
    with pytest.raises(ArgumentError, match=r"are all one direction \(rank 0: scaled copies"):
        ll.plot_pca_map(_unit(1) * torch.tensor([[1.0], [2.0], [4.0]]))  # (powers of two: the same unit rows exactly)
    with pytest.raises(ArgumentError, match=r"the 3 embeddings given \(path\) are all the same point \(rank 0\)"):
        ll.plot_pca_map(_unit(1).repeat(3, 1))
    with pytest.raises(ArgumentError, match=r"hold only 2 distinct points \(rank 1\)"):
        ll.plot_pca_map(_unit(2).repeat(2, 1))
    with pytest.raises(ArgumentError, match="pca has rank 1, but a 2D map needs two components"):
        ll.plot_pca_map(_unit(5, seed=2), pca=ll.fit_pca(_unit(2)))


def test_plots_refuse_a_bare_string_as_labels():
    z = _unit(2)
    with pytest.raises(ArgumentError, match="row_labels must be a list of labels.*the string 'ab'"):
        ll.plot_similarity_matrix(z, z, "ab")  # was split into "a", "b"
    with pytest.raises(ArgumentError, match="labels must be a list of labels.*the string 'rb'"):
        ll.plot_similarity(_unit(5), z, "rb")
    with pytest.raises(ArgumentError, match="path_labels must be a list"):
        ll.plot_pca_map([_unit(4), _unit(4, seed=1)], path_labels="AB")


def test_frame_axes_have_integer_ticks():
    ax1 = ll.plot_similarity(_unit(21), _unit(2, seed=1))
    ax2 = ll.plot_word_changes(_words(21))
    for ax in (ax1, ax2):
        ax.figure.canvas.draw()
        ticks = ax.get_xticks()
        assert len(ticks) >= 3 and np.all(ticks == np.round(ticks)), ticks  # was -2.5, 2.5, ...


def test_plot_pca_map_refuses_arguments_it_would_ignore():
    path, other = _unit(5), _unit(5, seed=1)
    with pytest.raises(ArgumentError, match="labels belongs to points.*points="):
        ll.plot_pca_map(path, labels=["a", "b"])
    with pytest.raises(ArgumentError, match="images belongs to points"):
        ll.plot_pca_map(path, images=[np.zeros((8, 8, 3), np.uint8)])
    with pytest.raises(ArgumentError, match="path_labels has 1 entries for 2 paths"):
        ll.plot_pca_map([path, other], path_labels=["only one"])
    with pytest.raises(ArgumentError, match=r"^path must be a torch.Tensor .*torch.from_numpy\(path\)"):
        ll.plot_pca_map(path.numpy())  # named path[0], a list the user never passed
    with pytest.raises(ArgumentError, match=r"^path\[1\] must be a torch.Tensor"):
        ll.plot_pca_map([path, other.numpy()])


def test_legends_sit_outside_the_data():
    for ax in (ll.plot_word_changes(_words(), top=3), ll.plot_pca_map([_unit(6), _unit(6, seed=1)], _unit(3, seed=2))):
        ax.figure.canvas.draw()
        assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1  # right of the axes


def test_error_messages_name_what_is_wrong():
    with pytest.raises(ArgumentError, match="top must be an integer >= 1, got -1"):
        ll.plot_word_changes(_words(), top=-1)  # said "n must be ..."
    z = _unit(2, space="mini")
    with pytest.raises(SpaceError) as err:
        Trajectory(z, [Segment(4)], space="big")
    assert "decoder" not in str(err.value) and "'mini' but 'big' is expected" in str(err.value)
    with pytest.raises(SpaceError, match="is expected by the decoder"):
        check_embeddings(z, space="big", expected_by="the decoder")
    with pytest.raises(ArgumentError, match=r"numpy ndarray of shape \(2, 16\)\. Fix: pass torch\.from_numpy\(a\)"):
        ll.plot_similarity_matrix(z.numpy(), z)


def test_package_namespace_answers_hasattr_and_dir():
    assert not hasattr(ll, "x.y") and not hasattr(ll, "plots.foo")  # raised ModuleNotFoundError
    names = dir(ll)
    assert {"pacing", "explore", "plots", "__version__", "__file__", "plot_pacing"} <= set(names)
    assert "__main__" not in names and names == sorted(names)
    assert ll.pacing.__name__ == "latentlab.pacing"


def test_plot_similarity_names_its_own_arguments_for_a_zero_vector():
    # the error said "a is the zero vector" / "b is ...", names of similarity_matrix the user never passed
    z = _unit(3)
    with pytest.raises(ArgumentError, match=r"path row\(s\) \[0, 2\] are the zero vector") as err:
        ll.plot_similarity(z * torch.tensor([[0.0], [1.0], [0.0]]), _unit(2, seed=1))
    assert "a is the zero vector" not in str(err.value)
    with pytest.raises(ArgumentError, match=r"references row\(s\) \[1\] are the zero vector"):
        ll.plot_similarity(z, torch.cat([_unit(1, seed=1), torch.zeros(1, 16)]))


def test_pacing_refuses_zero_embeddings_as_similarity_does():
    # the angle to a zero row was made up: pi / 2, then 0 between two zero rows
    z = torch.zeros(3, 8)
    z[0, 0] = 1
    for measure in (ll.explore.consecutive_distances, ll.plot_pacing):
        with pytest.raises(ArgumentError, match=r"x row\(s\) \[1, 2\] are the zero vector: a zero vector has no direction"):
            measure(z)
    with pytest.raises(ArgumentError, match="zero vector"):
        ll.explore.consecutive_distances(z.numpy())  # (T, d) saved with np.save
    assert ll.explore.consecutive_distances(_unit(4)).shape == (3,)  # nonzero rows: measured as before


def test_plot_similarity_matrix_in_a_subfigure():
    # the given-axes branch measured the figure with get_size_inches, which a SubFigure lacks
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(10, 5))
    left, _ = fig.subfigures(1, 2)
    ax = left.subplots()
    a = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    ll.plot_similarity_matrix(a, a[:3], ax=ax)
    assert len(ax.texts) == 12  # small cells of a real size: every value written
    plt.close(fig)


def test_captions_are_drawn_as_written_not_as_mathtext():
    # "$HOME/$USER_NAME" was drawn as math (no $, italics), "$\notacommand$" raised ValueError only at
    # savefig, and a label starting with "_" was left out of the legend
    import io

    from matplotlib.cbook import is_math_text

    caps = ["sign: $HOME/$USER_NAME", r"price $\notacommand$", "_draft caption"]

    def drawn(texts):  # the string matplotlib draws: no mathtext, "\$" shown as "$"
        assert not any(is_math_text(t.get_text()) for t in texts)
        return [t.get_text().replace("\\$", "$").lstrip("\u200b") for t in texts]

    d = np.array([0.1, 0.2, 0.1])
    axes = [
        ll.plot_similarity(_unit(6), _unit(3, seed=1), caps),
        ll.plot_similarity_matrix(_unit(3), _unit(3, seed=1), caps, caps),
        ll.plot_pca_map([_unit(5), _unit(5, seed=1)], _unit(3, seed=2), caps, path_labels=caps[1:]),
        ll.plot_pacing({caps[0]: d, caps[2]: d}),
        ll.plot_word_changes(WordChanges(caps, np.linspace(0, 1, 8)[:, None] * np.array([1.0, -0.5, 0.3]))),
    ]
    assert drawn(axes[0].get_legend().get_texts()) == caps  # the "_" caption has its entry
    assert drawn(axes[1].get_xticklabels()) == caps and drawn(axes[1].get_yticklabels()) == caps
    assert drawn(axes[2].texts) == caps and drawn(axes[2].get_legend().get_texts())[:2] == caps[1:]
    assert [t.split(":")[0] for t in drawn(axes[3].get_legend().get_texts())] == ["sign", "_draft caption"]
    assert [t.rsplit(" (", 1)[0] for t in drawn(axes[4].get_legend().get_texts())] == caps
    for ax in axes:
        ax.figure.savefig(io.BytesIO(), format="png")  # no ParseSyntaxException


def test_plot_similarity_with_many_references_keeps_its_axes_and_distinct_colours():
    # C10 is C0 (two references shared a colour), and 50 legend rows collapsed the axes to nothing
    import warnings

    from matplotlib.colors import to_hex

    path = _unit(12)
    ax = ll.plot_similarity(path, _unit(12, seed=1))
    colours = [to_hex(ln.get_color()) for ln in ax.lines[:12]]
    assert colours[:10] == [to_hex(f"C{k}") for k in range(10)] and len(set(colours)) == 12
    with pytest.warns(UserWarning, match="no legend for 30 curves"):
        ax = ll.plot_similarity(path, _unit(30, seed=1))
    assert len({to_hex(ln.get_color()) for ln in ax.lines[:30]}) == 30

    def drawn(K, overlay=False):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ax = ll.plot_similarity(path, _unit(K, seed=1), [f"a photo of a thing number {k}" for k in range(K)])
            if overlay:
                ll.plot_similarity(_unit(12, seed=3), _unit(K, seed=1), ax=ax, linestyle="--")
            ax.figure.canvas.draw()
        fig, box = ax.figure, ax.get_window_extent()
        assert not [w for w in caught if "constrained_layout not applied" in str(w.message)]
        assert box.width >= 3 * fig.dpi and box.height >= 2 * fig.dpi  # was 0.44 inch high with 50
        legend = ax.get_legend()
        if legend is not None:  # the whole legend inside the figure
            lb = legend.get_window_extent()
            assert lb.y0 >= 0 and lb.y1 <= fig.bbox.height and lb.x1 <= fig.bbox.width + 1
        return ax, [str(w.message) for w in caught]

    ax, said = drawn(20)
    assert len(ax.get_legend().get_texts()) == 20 and ax.figure.get_size_inches()[1] > 3.5  # grown to hold it
    ax, said = drawn(10, overlay=True)  # 20 entries on a given 7 x 3.5 axes: two columns
    assert len(ax.get_legend().get_texts()) == 20 and tuple(ax.figure.get_size_inches()) == (7, 3.5)
    ax, said = drawn(50)
    assert ax.get_legend() is None and any("no legend for 50 curves" in m and "plot_similarity_matrix" in m for m in said)
    ax, said = drawn(12, overlay=True)  # 24 entries: the first call's legend is removed, not left half-true
    assert ax.get_legend() is None


def test_second_review_fixes_of_the_plots(tmp_path):
    import matplotlib.pyplot as plt

    # a zero row is named by its own argument and row, not its place among all the embeddings fitted
    points = _unit(4, seed=3).clone()
    points[2] = 0
    with pytest.raises(ArgumentError, match=r"points row\(s\) \[2\]"):
        ll.plot_pca_map(_unit(9, seed=1), points=points)
    # a legend on a given axes in a grid fits the axes' own cell (it was measured against the whole figure,
    # and three stacked plots were squashed to half height by 20 references)
    fig, axs = plt.subplots(3, 1, figsize=(7, 6), layout="constrained")
    ll.plot_similarity(_unit(12, seed=4), _unit(20, seed=5), [f"reference {k}" for k in range(20)], ax=axs[0])
    fig.canvas.draw()
    legend = axs[0].get_legend()
    assert legend._ncols >= 2 and legend.get_window_extent().height <= axs[0].get_window_extent().height * 1.2
    plt.close(fig)


def test_plot_word_changes_with_many_words_keeps_its_axes_and_distinct_colours():
    # (as plot_similarity: colours repeated after 10, and a long legend squashed the plot)
    import warnings

    import matplotlib.pyplot as plt

    from latentlab.explore import WordChanges

    rng = np.random.default_rng(0)
    changes = WordChanges([f"word {k}" for k in range(30)], rng.random((9, 30)))
    ax = ll.plot_word_changes(changes, top=15)
    assert len({str(line.get_color()) for line in ax.lines}) == 15
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (no "constrained_layout not applied")
        ax.figure.canvas.draw()
    assert ax.get_window_extent().height > 100
    plt.close(ax.figure)
    with pytest.warns(UserWarning, match="draws no legend for 30 words"):
        ax = ll.plot_word_changes(changes, top=30)
    assert ax.get_legend() is None
    plt.close(ax.figure)


# what the plots draw: values, axes, labels and colours a mutation test found unpinned (2026-12-07)
def test_plot_similarity_matrix_writes_values_dark_on_bright_cells_and_light_on_dark():
    """A value above the matrix's mid-range is written in black (bright viridis cell), below in white."""
    a = tag(torch.eye(3), "s")
    b = tag(torch.nn.functional.normalize(torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), dim=-1), "s")
    ax = ll.plot_similarity_matrix(a, b, annotate=True)
    colours = {(t.get_position(), t.get_text()): t.get_color() for t in ax.texts}
    assert colours[((0, 0), "0.71")] == "black"  # 0.71 > mid 0.5
    assert colours[((1, 2), "1.00")] == "black"
    assert colours[((0, 2), "0.00")] == "white"
    assert colours[((1, 0), "0.00")] == "white"


def test_plot_similarity_matrix_annotates_up_to_300_cells_by_default():
    """annotate=None writes the values of a matrix of exactly 300 cells (15 x 20, cells large enough)."""
    g = torch.Generator().manual_seed(0)
    a, b = tag(torch.randn(15, 8, generator=g), "s"), tag(torch.randn(20, 8, generator=g), "s")
    ax = ll.plot_similarity_matrix(a, b)
    assert len(ax.texts) == 300


def test_plot_pacing_puts_each_step_at_the_frame_it_arrives_at_and_its_mean_as_a_line():
    """Step i (frame i-1 -> i) is drawn at x = i, 1..T-1; the dotted line is the mean step; y starts at 0."""
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    eased = ll.Trajectory.interpolate(a, b, frames=6, easing="ease-in-out")
    ax = ll.plot_pacing(eased)
    d = ll.consecutive_distances(eased)
    curve, mean = ax.lines
    np.testing.assert_array_equal(curve.get_xdata(), [1, 2, 3, 4, 5])
    assert np.median(d) != pytest.approx(d.mean())
    np.testing.assert_allclose(curve.get_ydata(), d)
    np.testing.assert_allclose(mean.get_ydata(), [d.mean(), d.mean()])
    assert mean.get_linestyle() == ":" and ax.get_ylim()[0] == 0


def _chain(frames: int = 7, seed: int = 0) -> ll.Trajectory:
    z = tag(torch.nn.functional.normalize(torch.randn(3, 8, generator=torch.Generator().manual_seed(seed)), dim=-1), "s")
    return ll.Trajectory.chain(list(z.split(1)), frames=frames, labels=["a", "b", "c"])


def test_plot_pca_map_marks_every_keyframe_and_labels_each_axis_with_its_variance():
    """One open square per keyframe (the last included), at its projected frame; PC 1 and PC 2 each
    give their own share of the variance."""
    path = _chain()
    ax = ll.plot_pca_map(path)
    (squares,) = [ln for ln in ax.lines if ln.get_marker() == "s"]
    xy = ax.pca.project(path.embeddings(), 2).numpy()
    kxy = xy[path.keyframe_indices()]
    assert len(kxy) == 3
    np.testing.assert_allclose(np.c_[squares.get_xdata(), squares.get_ydata()], kxy, atol=1e-6)
    r = [float(v) for v in ax.pca.explained_ratio]
    assert round(100 * r[0]) != round(100 * r[1])
    assert ax.get_xlabel() == f"PC 1 ({100 * float(r[0]):.0f}% of variance)"
    assert ax.get_ylabel() == f"PC 2 ({100 * float(r[1]):.0f}%)"


def test_plot_pca_map_draws_each_path_with_its_own_colormap():
    """Paths 1..4 get viridis, plasma, cividis, magma (the legend entry in each one's mid colour)."""
    from matplotlib.collections import LineCollection

    paths = [_chain(seed=s) for s in range(4)]
    ax = ll.plot_pca_map(paths, path_labels=["p", "q", "r", "s"])
    cmaps = [c.get_cmap().name for c in ax.collections if isinstance(c, LineCollection)]
    assert cmaps == ["viridis", "plasma", "cividis", "magma"]
    entries = {ln.get_label(): ln.get_color() for ln in ax.lines}
    assert entries["q"] == matplotlib.colormaps["plasma"](0.5)


def test_plot_similarity_prefers_the_labels_given_to_a_trajectorys_own():
    """labels= names the curves even when the Trajectory has keyframe labels of its own."""
    path = _chain()
    assert [t.get_text() for t in ll.plot_similarity(path).get_legend().get_texts()] == ["a", "b", "c"]
    ax = ll.plot_similarity(path, labels=["x", "y", "z"])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["x", "y", "z"]


def test_long_curve_labels_are_cut_to_28_characters_with_an_ellipsis():
    """A label longer than 28 characters is drawn as its first 27 and "…" (28 in all); 28 fit as written."""
    z = tag(torch.eye(3), "s")
    long, fits = "a photograph of a red circle on a table", "x" * 28
    ax = ll.plot_similarity(z, z[:2], [long, fits])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [long[:27] + "\u2026", fits]


# -- properties: the analysis tools against float64 references, directions at any scale, every plot --

PROPS = settings(max_examples=40, deadline=None, derandomize=True)
PLOTS = settings(max_examples=8, deadline=None, derandomize=True)

seeds = st.integers(0, 2**31 - 1)
# a row's norm: an encoder's (1), unnormalised features (8), and norms whose square under- or
# overflows (1e-14 is below the 1e-12 clamp; 1e-30 squares to 0 in float32; 1e20 to inf)
scales = st.sampled_from([1.0, 8.0, 0.25, 1e-14, 1e-30, 1e20])
DTYPES = {"float16": torch.float16, "float32": torch.float32, "float64": torch.float64}
# how far a score may be from the float64 cosine of the same (rounded) inputs
TOL = {torch.float16: 2e-3, torch.float32: 2e-6, torch.float64: 1e-12}


def randn(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def unit64(z: torch.Tensor) -> torch.Tensor:
    """Rows as float64 unit vectors, exactly (divided by their largest magnitude first)."""
    z = z.double()
    z = z / z.abs().amax(dim=-1, keepdim=True)
    return z / z.norm(dim=-1, keepdim=True)


def cosines(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    return (unit64(a) @ unit64(b).T).clamp(-1, 1).numpy()


def scaled(z: torch.Tensor, row_scales: list[float]) -> torch.Tensor:
    """``z`` (float32 or float64) with row ``i`` times ``row_scales[i % len]``."""
    s = torch.tensor([row_scales[i % len(row_scales)] for i in range(z.shape[0])], dtype=torch.float64)
    return (z.double() * s[:, None]).to(z.dtype)


class WordEncoder:
    """Each word of ``vocab`` -> a fixed random unit vector of size ``dim``."""

    space = "words"

    def __init__(self, vocab: list[str], dim: int, seed: int):
        self.dim = dim
        self.table = {w: v for w, v in zip(vocab, torch.nn.functional.normalize(randn(seed, len(vocab), dim).float(), dim=-1))}

    def encode_text(self, texts):
        texts = [texts] if isinstance(texts, str) else list(texts)
        return tag(torch.stack([self.table[t] for t in texts]), self.space)


@st.composite
def query_and_bank(draw):
    """A query (n, d) and bank (m, d) in one dtype, the bank with duplicates (scaled), an
    opposite of the first query, or few distinct directions (many exact ties)."""
    seed, d, n, m = draw(seeds), draw(st.integers(1, 10)), draw(st.integers(1, 4)), draw(st.integers(1, 12))
    dtype = DTYPES[draw(st.sampled_from(sorted(DTYPES)))]
    q, b = randn(seed, n, d), randn(seed + 1, m, d)
    kind = draw(st.sampled_from(["plain", "duplicates", "opposite", "ties"]))
    if kind == "duplicates":
        b = b[torch.arange(m) % max(1, m // 2)] * (1 + torch.arange(m, dtype=torch.float64))[:, None]
    elif kind == "opposite":
        b = torch.cat([b, -q[:1]])
    elif kind == "ties":
        q, b = q.sign(), b.sign()  # entries -1, 0, 1
    return q.to(dtype), b.to(dtype)


# ----------------------------------------------------------------------------------
# nearest neighbours
# ----------------------------------------------------------------------------------
@PROPS
@given(qb=query_and_bank(), k=st.integers(1, 16), qs=scales, bs=scales)
def test_nearest_neighbours_agree_with_float64_cosines_at_any_scale(qb, k, qs, bs):
    """The k best bank rows by cosine, best first, ties in bank order, capped at the bank's size;
    scaling the rows (1e-30 to 1e20) changes nothing: embeddings are directions."""
    q, b = qb
    nn = ll.nearest_neighbours(q, b, k=k)
    m, tol = b.shape[0], TOL[q.dtype]
    assert nn.indices.shape == nn.scores.shape == (q.shape[0], min(k, m))
    ref = cosines(q, b)
    chosen = np.take_along_axis(ref, nn.indices, axis=1)
    np.testing.assert_allclose(nn.scores, chosen, atol=tol)
    assert (np.diff(nn.scores, axis=1) <= 0).all()
    tied = np.diff(nn.scores, axis=1) == 0
    assert (np.diff(nn.indices, axis=1)[tied] > 0).all()  # ties keep bank order
    for i in range(q.shape[0]):
        rest = np.setdiff1d(np.arange(m), nn.indices[i])
        if rest.size:  # nothing left out beats the last one kept
            assert ref[i, rest].max() <= chosen[i].min() + 2 * tol
    if q.dtype != torch.float16:  # (float16 cannot hold 1e-30 or 1e20)
        again = ll.nearest_neighbours(scaled(q, [qs, 1.0]), scaled(b, [1.0, bs]), k=k)
        np.testing.assert_allclose(again.scores, nn.scores, atol=2 * tol)


@PROPS
@given(seed=seeds, n=st.integers(1, 3), d=st.integers(2, 8), vocab=st.integers(1, 12), k=st.integers(1, 15))
def test_nearest_words_report_the_cosines_of_the_words_they_name(seed, n, d, vocab, k):
    """Each (word, score) pair of nearest_words is that word's cosine to the query, best first."""
    words = [f"w{i}" for i in range(vocab)]
    enc = WordEncoder(words, d, seed)
    q = tag(randn(seed + 7, n, d).float(), "words")
    nn = ll.nearest_words(q, enc, words, k=k)
    ref = cosines(q, enc.encode_text(words))
    for i in range(n):
        pairs = nn[i]
        assert len(pairs) == min(k, vocab)
        for word, score in pairs:
            assert score == pytest.approx(ref[i, words.index(word)], abs=2e-6)
        assert [s for _, s in pairs] == sorted((s for _, s in pairs), reverse=True)
        assert ref[i].max() == pytest.approx(pairs[0][1], abs=2e-6)


# ----------------------------------------------------------------------------------
# PCA
# ----------------------------------------------------------------------------------
@PROPS
@given(seed=seeds, n=st.integers(2, 10), d=st.integers(2, 8), dtype=st.sampled_from(["float32", "float64"]),
       row_scales=st.lists(scales, min_size=1, max_size=4), center=st.booleans())  # fmt: skip
def test_pca_reads_rows_as_directions_and_round_trips(seed, n, d, dtype, row_scales, center):
    """fit_pca, project and reconstruct give the same for rows at any scale (1e-30 to 1e20) as for
    their unit versions; the components are orthonormal, the rank that of the (centred) rows, and
    reconstruct from every component, or the mean plus the projected coordinates, gives z back."""
    z = torch.nn.functional.normalize(randn(seed, n, d), dim=-1).to(DTYPES[dtype])
    raw = scaled(z, row_scales)
    pca, again = ll.fit_pca(z, center=center), ll.fit_pca(raw, center=center)
    assert pca.rank == again.rank == min(n - 1 if center else n, d)
    torch.testing.assert_close(again.components, pca.components, atol=1e-5, rtol=0)
    torch.testing.assert_close(again.mean, pca.mean, atol=1e-6, rtol=0)
    c = pca.components.double()
    torch.testing.assert_close(c @ c.T, torch.eye(pca.rank, dtype=torch.float64), atol=1e-5, rtol=0)
    assert float(pca.explained_ratio.sum()) == pytest.approx(1.0)
    coords = pca.project(raw)
    torch.testing.assert_close(coords, pca.project(z), atol=1e-5, rtol=0)
    back = pca.reconstruct(raw, pca.rank)
    torch.testing.assert_close(back, unit64(z).float(), atol=1e-5, rtol=0)
    k = pca.rank // 2
    rebuilt = pca.mean.double() + coords[:, :k].double() @ c[:k]
    torch.testing.assert_close(pca.reconstruct(z, k), unit64(rebuilt).float(), atol=1e-5, rtol=0)


def test_fit_pca_keeps_the_components_of_half_precision_embeddings():
    """20 embeddings in float16 or bfloat16 span 19 centred directions, as in float32 (their
    rounding was taken for the whole spread: rank 0 in bfloat16 from d = 128, float16 from 1024)."""
    for d in (128, 768, 1024):
        z = torch.nn.functional.normalize(randn(d, 20, d), dim=-1).float()
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            assert ll.fit_pca(z.to(dtype)).rank == 19, (d, dtype)
    z = torch.nn.functional.normalize(randn(3, 20, 128), dim=-1).bfloat16()
    ll.plot_pca_map(z[:10], z[10:])  # was "a 2D map needs a PCA of rank >= 2"
    plt.close("all")


# ----------------------------------------------------------------------------------
# pacing and word changes
# ----------------------------------------------------------------------------------
@PROPS
@given(seed=seeds, t=st.integers(2, 10), d=st.integers(1, 8), dtype=st.sampled_from(["float32", "float64"]),
       row_scales=st.lists(scales, min_size=1, max_size=4))  # fmt: skip
def test_consecutive_distances_are_the_angles_between_the_rows_at_any_scale(seed, t, d, dtype, row_scales):
    """(T - 1,) angles in [0, pi] between consecutive rows, the float64 angle between their
    directions whatever the rows' norms (1e-30 to 1e20)."""
    z = randn(seed, t, d).to(DTYPES[dtype])
    raw = scaled(z, row_scales)
    got = ll.consecutive_distances(raw)
    u = unit64(z)
    want = 2 * torch.atan2((u[1:] - u[:-1]).norm(dim=-1), (u[1:] + u[:-1]).norm(dim=-1))
    assert got.shape == (t - 1,) and got.dtype == np.float64
    assert (got >= 0).all() and (got <= math.pi + 1e-12).all()
    np.testing.assert_allclose(got, want.numpy(), atol=1e-6)


@PROPS
@given(seed=seeds, t=st.integers(2, 8), d=st.integers(2, 6), vocab=st.integers(1, 10), n=st.integers(0, 12))
def test_what_changed_ranks_words_by_the_change_of_their_cosines(seed, t, d, vocab, n):
    """similarity is each frame's cosine to each word; ranked orders words by |end - start|
    (ties in word order), gained and lost are its positive and negative ends, largest first."""
    words = [f"w{i}" for i in range(vocab)]
    enc = WordEncoder(words, d, seed)
    path = tag(randn(seed + 3, t, d).float(), "words")
    ch = ll.what_changed(path, enc, words)
    np.testing.assert_allclose(ch.similarity, cosines(path, enc.encode_text(words)), atol=2e-6)
    np.testing.assert_array_equal(ch.delta, ch.similarity[-1] - ch.similarity[0])
    ranked = ch.ranked(n)
    assert len(ranked) == min(n, vocab)
    assert [w for w, _ in ranked] == [words[i] for i in np.argsort(-np.abs(ch.delta), kind="stable")[:n]]
    assert all(d_ == ch.delta[words.index(w)] for w, d_ in ranked)
    gained, lost = ch.gained(n), ch.lost(n)
    assert [d_ for _, d_ in gained] == sorted(ch.delta[ch.delta > 0], reverse=True)[:n]
    assert [d_ for _, d_ in lost] == sorted(ch.delta[ch.delta < 0])[:n]


# ----------------------------------------------------------------------------------
# plots, any size
# ----------------------------------------------------------------------------------
@PLOTS
@given(seed=seeds, n=st.integers(1, 30), m=st.integers(1, 30), d=st.integers(1, 5), labelled=st.booleans())
def test_plot_similarity_matrix_shows_the_cosines_and_the_labels_given(seed, n, m, d, labelled):
    """The image is the (n, m) cosine matrix; the tick labels are the labels given, in order
    (every k-th where the cells are small), each at its own row or column."""
    a, b = randn(seed, n, d).float(), randn(seed + 1, m, d).float()
    rows = [f"_r{i} $x$" for i in range(n)] if labelled else None
    cols = [f"c{j}" for j in range(m)] if labelled else None
    ax = ll.plot_similarity_matrix(a, b, rows, cols)
    np.testing.assert_allclose(ax.images[0].get_array(), cosines(a, b), atol=2e-6)
    ax.figure.canvas.draw()
    xs, ys = ax.get_xticks(), ax.get_yticks()
    xl = [t.get_text() for t in ax.get_xticklabels()]
    yl = [t.get_text().replace("\u200b", "").replace("\\$", "$") for t in ax.get_yticklabels()]
    assert list(xs) == list(range(0, m, int(xs[1] - xs[0]) if len(xs) > 1 else 1))
    assert xl == [(cols[int(j)] if labelled else f"#{int(j)}") for j in xs]
    assert yl == [(rows[int(i)] if labelled else f"#{int(i)}") for i in ys]
    plt.close("all")


@PLOTS
@given(seed=seeds, t=st.integers(1, 30), refs=st.integers(1, 24), d=st.integers(1, 5))
def test_plot_similarity_draws_one_curve_per_reference_for_any_count(seed, t, refs, d):
    """Curve k holds the cosines of the T frames to reference k, labelled with its label."""
    path, r = randn(seed, t, d).float(), randn(seed + 1, refs, d).float()
    labels = [f"ref {k}" for k in range(refs)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # (no legend past 20 curves: said in a warning)
        ax = ll.plot_similarity(path, r, labels)
    s = cosines(path, r)
    assert len(ax.lines) == refs
    for k, line in enumerate(ax.lines):
        np.testing.assert_array_equal(line.get_xdata(), np.arange(t))
        np.testing.assert_allclose(line.get_ydata(), s[:, k], atol=2e-6)
        assert line.get_label() == labels[k]
    ax.figure.canvas.draw()
    plt.close("all")


@PLOTS
@given(seed=seeds, t=st.integers(3, 12), paths=st.integers(1, 3), points=st.integers(0, 6), d=st.integers(3, 8),
       row_scales=st.lists(scales, min_size=1, max_size=3))  # fmt: skip
def test_plot_pca_map_draws_each_frame_where_the_pca_projects_it(seed, t, paths, points, d, row_scales):
    """Each path's line runs through the PCA coordinates of its frames, start to end, and the
    points sit at theirs, whatever the rows' norms."""
    from matplotlib.collections import LineCollection, PathCollection

    zs = [scaled(randn(seed + i, t, d).float(), row_scales) for i in range(paths)]
    pts = randn(seed + 9, points, d).float() if points else None
    ax = ll.plot_pca_map(zs if paths > 1 else zs[0], pts, [f"p{i}" for i in range(points)] if points else None)
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(lines) == paths
    for line, z in zip(lines, zs):
        xy = ax.pca.project(z, 2).numpy()
        segs = np.asarray(line.get_segments())
        np.testing.assert_allclose(segs[:, 0], xy[:-1], atol=1e-6)
        np.testing.assert_allclose(segs[:, 1], xy[1:], atol=1e-6)
    if points:
        (dots,) = [c for c in ax.collections if isinstance(c, PathCollection)]
        np.testing.assert_allclose(dots.get_offsets(), ax.pca.project(pts, 2).numpy(), atol=1e-6)
        assert [a.get_text() for a in ax.texts] == [f"p{i}" for i in range(points)]
    ax.figure.canvas.draw()
    plt.close("all")


@PLOTS
@given(seed=seeds, t=st.integers(2, 10), vocab=st.integers(1, 24), top=st.integers(1, 30))
def test_plot_word_changes_draws_the_ranked_words_for_any_count(seed, t, vocab, top):
    """Line i is the similarity curve of ranked(top)[i], labelled with that word and its change."""
    words = [f"w{i}" for i in range(vocab)]
    enc = WordEncoder(words, 4, seed)
    ch = ll.what_changed(tag(randn(seed + 5, t, 4).float(), "words"), enc, words)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ax = ll.plot_word_changes(ch, top=top)
    ranked = ch.ranked(top)
    assert len(ax.lines) == len(ranked) == min(top, vocab)
    for line, (word, delta) in zip(ax.lines, ranked):
        np.testing.assert_array_equal(line.get_ydata(), ch.similarity[:, words.index(word)])
        assert line.get_label() == f"{word} ({delta:+.2f})"
    ax.figure.canvas.draw()
    plt.close("all")


# ----------------------------------------------------------------------------------
# odd inputs
# ----------------------------------------------------------------------------------
GOOD = torch.nn.functional.normalize(randn(0, 4, 3).float(), dim=-1)
ODD = {
    "NaN row": torch.tensor([[1.0, 0.0, 0.0], [float("nan"), 0.0, 0.0]]),
    "empty": torch.zeros(0, 3),
    "zero row": torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]),
    "other space": tag(GOOD.clone(), "another-model"),
    "other size": torch.ones(2, 5),
    "integers": torch.ones(2, 3, dtype=torch.long),
}
def _after_good(v: torch.Tensor) -> torch.Tensor:
    """``v`` after good rows (a set of embeddings with a bad row in it), or as it is."""
    return torch.cat([GOOD, v]) if v.shape[0] and v.dtype == GOOD.dtype and v.shape[1:] == (3,) else v


CALLS = {  # the argument named, and how the odd value reaches it
    "query": lambda v: ll.nearest_neighbours(v, tag(GOOD, "s")),
    "bank": lambda v: ll.nearest_neighbours(tag(GOOD, "s"), v),
    "embeddings": lambda v: ll.fit_pca(_after_good(v)),
    "x": lambda v: ll.consecutive_distances(_after_good(v)),
    "path": lambda v: ll.plot_similarity(v, tag(GOOD, "s")),
    "references": lambda v: ll.plot_similarity(tag(GOOD, "s"), v),
    "points": lambda v: ll.plot_pca_map(tag(GOOD, "s"), v),
}


@pytest.mark.parametrize("odd", sorted(ODD))
@pytest.mark.parametrize("arg", sorted(CALLS))
def test_odd_embeddings_are_refused_naming_the_argument(arg, odd):
    """NaN, empty, zero, integer rows and rows of another model are an ArgumentError (a
    SpaceError for the model) that names the argument, never a raw error."""
    value = ODD[odd]
    if odd.startswith("other") and arg in ("embeddings", "x"):
        return  # one set of embeddings: nothing to mix
    with pytest.raises(LatentlabError) as err:
        CALLS[arg](value)
    assert isinstance(err.value, SpaceError if odd.startswith("other") else ArgumentError)
    assert arg in str(err.value), str(err.value)
    plt.close("all")


def test_tools_read_a_row_whose_norm_underflows_as_its_direction():
    """A float32 row of 1e-30 (its float32 norm is 0) or 1e-14 (below the 1e-12 clamp) is a
    direction, as similarity_matrix reads it: not "the zero vector", nor a row of norm 0.01."""
    tiny = torch.tensor([[1e-30, 1e-30, 0.0]])
    nn = ll.nearest_neighbours(tiny, torch.eye(3), k=1)
    assert nn.indices.tolist() == [[0]] and nn.scores[0, 0] == pytest.approx(math.sqrt(0.5))
    np.testing.assert_allclose(ll.consecutive_distances(torch.tensor([[1.0, 0.0], [1e-14, 0.0]])), [0.0], atol=1e-12)
    np.testing.assert_allclose(ll.consecutive_distances(torch.cat([tiny, torch.eye(3)[:1]])), [math.pi / 4], atol=1e-6)
    z = torch.nn.functional.normalize(randn(1, 6, 4), dim=-1).float()
    pca = ll.fit_pca(z)
    torch.testing.assert_close(ll.fit_pca(z * 1e-14).components, pca.components, atol=1e-5, rtol=0)
    torch.testing.assert_close(pca.project(z * 1e-14), pca.project(z), atol=1e-5, rtol=0)


def test_words_and_pca_of_the_wrong_type_are_refused_naming_them():
    """words=3 (not a list) and pca='x' (not a PCA) are ArgumentErrors naming them (were a raw
    TypeError 'int' object is not iterable, and AttributeError 'str' object has no attribute 'rank')."""
    enc = WordEncoder(["a", "b"], 3, 0)
    q = tag(GOOD, "words")
    for call in (lambda: ll.nearest_words(q, enc, 3), lambda: ll.what_changed(q, enc, 3.5)):
        with pytest.raises(ArgumentError, match="words must be a non-empty list"):
            call()
    with pytest.raises(ArgumentError, match="pca must be a PCA"):
        ll.plot_pca_map(GOOD, pca="x")


# -- second audit (2026-12-07): line styles, dict keys, thumbnails, figures left open, pacing inputs --


def _slerp_path(T: int = 5) -> torch.Tensor:
    return slerp(torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 0.0]]), torch.linspace(0, 1, T))


@pytest.mark.parametrize("style, drawn", [("dashed", "--"), ("dotted", ":"), ((0, (5, 1)), "--"), ("--", "--"), (":", ":")])
def test_plot_similarity_takes_every_matplotlib_line_style(style, drawn):
    # the style was passed as a format string: "dashed" or (0, (5, 1)) raised a raw ValueError
    ax = ll.plot_similarity(_slerp_path(), torch.eye(3)[:2], ["x", "y"], linestyle=style)
    assert [ln.get_linestyle() for ln in ax.lines] == [drawn, drawn]


def test_plot_similarity_refuses_an_unknown_line_style_by_name():
    with pytest.raises(ArgumentError, match=r"linestyle='bogus' is not a matplotlib line style"):
        ll.plot_similarity(_slerp_path(), torch.eye(3)[:2], ["x", "y"], linestyle="bogus")


def test_plot_pacing_names_curves_by_any_dict_key():
    # {1: frames} raised AttributeError ('int' object has no attribute 'replace'); key 0 lost its name
    frames = ramp_frames(4)
    ax = ll.plot_pacing({0: frames, 2: frames[::-1]}, metric="pixel")
    texts = ax.get_legend_handles_labels()[1]
    assert texts[0].startswith("0: cv") and texts[1].startswith("2: cv")


def test_plot_pca_map_reads_images_once_from_any_iterable():
    # a generator raised a raw TypeError (len)
    thumbs = [np.zeros((4, 4, 3), np.uint8) + i for i in range(4)]
    ax = ll.plot_pca_map(_slerp_path(), torch.randn(4, 3, generator=torch.Generator().manual_seed(0)),
                         images=(t for t in thumbs))
    ax.figure.canvas.draw()
    assert len(ax.artists) == 4


@pytest.mark.parametrize("images, match", [
    (["cat.png"] * 4, r"images\[0\] has shape \(\)"),  # raw TypeError when the figure was drawn
    ([np.zeros(2)] * 4, r"images\[0\] has shape \(2,\)"),
    (5, "images must be a list"),
])
def test_plot_pca_map_refuses_thumbnails_that_are_not_pictures(images, match):
    with pytest.raises(ArgumentError, match=match):
        ll.plot_pca_map(_slerp_path(), torch.randn(4, 3), images=images)


@pytest.mark.parametrize("zoom", ["big", 0, -1, float("nan"), True])
def test_plot_pca_map_refuses_a_bad_zoom(zoom):
    # "big" raised a raw TypeError when drawn; -1, 0 and NaN were taken
    with pytest.raises(ArgumentError, match="zoom must be a number > 0"):
        ll.plot_pca_map(_slerp_path(), torch.randn(4, 3), images=[np.zeros((4, 4, 3), np.uint8)] * 4, zoom=zoom)


def test_plot_similarity_matrix_refuses_an_unknown_cmap_before_making_a_figure():
    # imshow raised a raw ValueError after the figure was made (left open, empty)
    before = plt.get_fignums()
    with pytest.raises(ArgumentError, match=r"cmap='bogus' is not a matplotlib colormap"):
        ll.plot_similarity_matrix(_slerp_path(), torch.eye(3)[:2], cmap="bogus")
    assert plt.get_fignums() == before
    assert ll.plot_similarity_matrix(_slerp_path(), torch.eye(3)[:2], cmap="magma").images[0].get_cmap().name == "magma"


def test_plot_pacing_refused_leaves_no_empty_figure():
    before = plt.get_fignums()
    with pytest.raises(ArgumentError, match="at least two"):
        ll.plot_pacing({"a": ramp_frames(3), "b": ramp_frames(1)}, metric="pixel")
    assert plt.get_fignums() == before


@pytest.mark.parametrize("kw, match", [
    ({"labels": ["a"]}, "labels"),
    ({"images": [np.zeros((4, 4, 3), np.uint8)]}, "images has 1 entries for 4 points"),
])
def test_plot_pca_map_refused_leaves_no_empty_figure(kw, match):
    # labels and images were counted after the figure was made
    before = plt.get_fignums()
    with pytest.raises(ArgumentError, match=match):
        ll.plot_pca_map(_slerp_path(), torch.randn(4, 3), **kw)
    assert plt.get_fignums() == before


# ------------------------------------------------------------------------------------
# pacing.py's frame distances, as a video user meets them
# ------------------------------------------------------------------------------------
def test_frame_distances_of_frames_of_two_sizes_is_refused_by_name():
    # np.stack raised a raw ValueError
    a, b = np.zeros((4, 4, 3), np.uint8), np.zeros((5, 5, 3), np.uint8)
    with pytest.raises(ArgumentError, match=r"frame 1 has shape \(5, 5, 3\) but frame 0 has \(4, 4, 3\)"):
        frame_distances([a, b, a], metric="pixel")
    with pytest.raises(ArgumentError, match=r"frame 1 has shape"):
        pacing_stats([a, b])


@pytest.mark.parametrize("distances", [[10**400, 1.0], [1.0, "a"], [[1.0], [2.0, 3.0]]], ids=["1e400", "str", "ragged"])
def test_pacing_stats_refuses_lists_that_are_not_distances(distances):
    # raw OverflowError / ValueError from numpy
    with pytest.raises(ArgumentError, match="frames_or_distances is a list"):
        pacing_stats(distances)


def test_pacing_stats_measures_pil_frames_as_uint8():
    # a list of PIL images went through np.asarray(x, float64): dark frames (values <= 1) were read as floats in
    # [0, 1] (a step 255 times too large), brighter ones refused as "[0, 255]: pass frames.astype(np.uint8)"
    dark = [Image.new("RGB", (4, 4), (0, 0, 0)), Image.new("RGB", (4, 4), (1, 1, 1))]
    assert pacing_stats(dark)["mean"] == pytest.approx(1 / 255)
    bright = [Image.new("RGB", (4, 4), (0, 0, 0)), Image.new("RGB", (4, 4), (255, 255, 255))]
    assert pacing_stats(bright)["mean"] == pytest.approx(1.0)
    np.testing.assert_allclose(frame_distances(dark, metric="pixel"), [1 / 255])
