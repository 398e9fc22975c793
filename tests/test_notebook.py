"""Notebook views, the scrubber, live previews, exploration tools and plots (tiny model)."""

from __future__ import annotations

import base64
import doctest
import html
import html.parser
import io
import subprocess
import sys
from urllib.parse import quote

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import latentlab as ll
from latentlab import explore, notebook, plots
from latentlab.errors import ArgumentError, SpaceError
from latentlab.render import render  # not ll.render: once the submodule is imported, that name is the module
from latentlab.space import space_of, tag

from conftest import FakeDecoder, animated_frames, grey_frames


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")




def _decode_png(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


class FakeEncoder:
    """Words -> basis vectors of a 4-d space; images -> their mean colour padded to 4-d."""

    space = "fake4"
    dim = 4

    def __init__(self, words):
        self.words = list(words)
        self.image_calls = 0

    def encode_text(self, texts):
        texts = [texts] if isinstance(texts, str) else list(texts)
        return tag(torch.stack([torch.eye(4)[self.words.index(t)] for t in texts]), self.space)

    def encode_image(self, images):
        self.image_calls += 1
        arr = np.asarray(images, dtype=np.float32)
        z = torch.zeros(arr.shape[0], 4)
        z[:, :3] = torch.from_numpy(arr.reshape(arr.shape[0], -1, 3).mean(axis=1)) + 1e-3
        return tag(z / z.norm(dim=-1, keepdim=True), self.space)


# ----------------------------------------------------------------------------------
# importing without IPython
# ----------------------------------------------------------------------------------
def test_modules_import_and_render_html_without_ipython():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('IPython', 'ipywidgets'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import numpy as np\n"
        "import latentlab as ll\n"
        "from latentlab import notebook, explore, plots\n"
        "v = ll.show(np.zeros((3, 8, 8, 3), np.uint8))\n"
        "assert '<img' in v._repr_html_() and v._repr_png_()[:4] == b'\\x89PNG'\n"
        "notebook.display(v)\n"
        "assert 'IPython' not in sys.modules and 'ipywidgets' not in sys.modules\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")
    assert "ImageView(" in out.stdout  # display() fell back to printing


def test_public_names_resolve():
    for name in ("show", "show_video", "scrub", "Scrubber", "LivePreview", "nearest_neighbours", "nearest_words",
                 "nearest_images", "fit_pca", "pca_probe", "what_changed", "consecutive_distances",
                 "plot_similarity", "plot_similarity_matrix", "plot_pca_map", "plot_pacing", "plot_word_changes"):  # fmt: skip
        assert callable(getattr(ll, name)), name
        assert name in dir(ll)


def test_doctests_of_notebook_modules():
    for mod in (notebook, explore, plots):
        result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0, mod.__name__


# ----------------------------------------------------------------------------------
# inline views
# ----------------------------------------------------------------------------------
def test_show_one_image_round_trips_and_scales_up():
    img = grey_frames(2)[1]
    view = ll.show(img, caption="grey")
    assert isinstance(view, notebook.ImageView)
    np.testing.assert_array_equal(_decode_png(view._repr_png_()), img)
    assert view.scale == 16  # 8 px tiles shown at 128 px
    page = view._repr_html_()
    assert 'width="128"' in page and "pixelated" in page and "grey" in page
    src = page.split('src="data:image/png;base64,')[1].split('"')[0]
    np.testing.assert_array_equal(_decode_png(base64.b64decode(src)), img)
    assert ll.show(img, scale=3).scale == 3
    with pytest.raises(ArgumentError, match="scale"):
        ll.show(img, scale=0)
    with pytest.raises(ArgumentError, match="one image"):
        ll.show(img, labels=["a"])


def test_show_frames_is_the_contact_sheet():
    f = grey_frames(5)
    view = ll.show(f, columns=5, labels=list("abcde"))
    np.testing.assert_array_equal(view.array, ll.contact_sheet(f, columns=5, labels=list("abcde")))
    # a list of frames works too, and max_frames picks evenly
    np.testing.assert_array_equal(ll.show(list(f), max_frames=3).array, ll.contact_sheet(f, max_frames=3))


def _ink_columns(strip: np.ndarray) -> np.ndarray:
    """The columns of a label strip (white ground) that hold any ink."""
    return np.flatnonzero((strip < 200).any(axis=(0, 2)))


def test_contact_sheets_fit_long_labels_to_the_tile_and_mark_a_cut():
    """Labels used to be drawn in one line at one size and clipped at the tile's edge
    ("green triangl", "(embedding o"): now they shrink, wrap at a space, or end in an ellipsis."""
    from latentlab.video import _fit_label

    f = np.zeros((3, 64, 64, 3), np.uint8)
    long = ["green triangle", "(embedding only)", "a red circle above a blue square"]
    sheet = ll.contact_sheet(f, labels=long, columns=3)
    np.testing.assert_array_equal(ll.show(f, labels=long, columns=3).array, sheet)
    assert sheet.shape[0] > ll.contact_sheet(f, labels=["a", "b", "c"], columns=3).shape[0]  # taller: a wrapped label
    for c in range(3):
        x = 2 + c * 66
        ink = _ink_columns(sheet[2 + 64:, x:x + 64])
        assert len(ink) and ink.max() < 63, long[c]  # nothing touches the tile's right edge
    for text in long + ["supercalifragilisticexpialidocious", "a yellow star left of a green cross", "x" * 40]:
        lines, size = _fit_label(text, 62)
        assert 8 <= size <= 10 and 1 <= len(lines) <= 2
        joined = " ".join(lines)
        if joined != text:  # cut: visibly, with an ellipsis, and keeping a prefix of the words
            assert joined.endswith("…") and text.startswith(joined[:-1].rstrip()), (text, lines)
        else:  # whole: wrapped at a space, never mid-word
            assert all(line in text.split(" ") or f" {line} " in f" {text} " for line in lines), (text, lines)
    assert _fit_label("green triangle", 62) == (["green triangle"], 9)  # shrunk, not cut
    assert _fit_label("emb. only", 62) == (["emb. only"], 10)  # fits as it is


def test_show_video_gif_holds_the_frames():
    import imageio.v3 as iio

    f = grey_frames(4)
    v = ll.show_video(f, fps=5)
    assert v.mimetype == "image/gif" and v.data[:3] == b"GIF"
    back = iio.imread(v.data, index=None, extension=".gif")[..., :3]
    assert back.shape[0] == 4
    np.testing.assert_allclose(back[:, 4, 4, 0], [0, 40, 80, 120], atol=3)
    assert "<img" in v._repr_html_() and "image/gif;base64" in v._repr_html_()
    mp4 = ll.show_video(f, fps=5, format="mp4")
    assert mp4.mimetype == "video/mp4" and "<video" in mp4._repr_html_() and b"ftyp" in mp4.data[:32]
    with pytest.raises(ArgumentError, match="format"):
        ll.show_video(f, format="avi")


def test_show_video_picks_a_format_that_plays_the_fps():
    f = grey_frames(4)
    v = ll.show_video(f, fps=60)  # gif cannot play 60 fps: lossless webp, as sharp
    assert v.mimetype == "image/webp" and v.data[8:12] == b"WEBP"
    back, durations = animated_frames(v.data)
    np.testing.assert_array_equal(np.stack(back), f)
    assert abs(sum(durations) - 4000 / 60) <= 1
    assert ll.show_video(f, fps=50).mimetype == "image/gif"  # as fast as a gif plays: still a gif
    assert ll.show_video(np.zeros((2, 300, 300, 3), np.uint8), fps=60).mimetype == "video/mp4"
    with pytest.raises(ArgumentError, match="too fast for gif"):  # a gif asked for is not swapped
        ll.show_video(f, fps=60, format="gif")


def test_show_paths_and_files(tmp_path):
    f = grey_frames(3)
    png = ll.save_image(f[2], tmp_path / "a.png")
    gif = ll.write_video(f, tmp_path / "a.gif", fps=4)
    iv = ll.show(png)
    assert isinstance(iv, notebook.ImageView)
    np.testing.assert_array_equal(iv.array, f[2])
    vv = ll.show(gif)
    assert isinstance(vv, notebook.VideoView) and vv.data == gif.read_bytes()
    # a file too big to embed is shown by reference
    ref = ll.show_video(gif, max_embed_mb=0)
    assert ref.data is None and str(gif) in ref._repr_html_()
    with pytest.raises(ArgumentError, match="does not exist"):
        ll.show_video(tmp_path / "missing.mp4")
    out = vv.save(tmp_path / "copy.gif")
    assert out.read_bytes() == gif.read_bytes()


# ----------------------------------------------------------------------------------
# the scrubber
# ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_path():
    enc = ll.create_encoder("tiny")
    a, b, c = enc.encode_text(["a red circle", "a blue square", "a green star"]).split(1)
    return ll.Trajectory.chain([a, b, c], frames=7, labels=["red", "blue", "green"])


def _fake_path(frames: int = 7) -> ll.Trajectory:
    z = tag(torch.nn.functional.normalize(torch.randn(3, 8, generator=torch.Generator().manual_seed(0)), dim=-1), "fake-space")
    return ll.Trajectory(z, frames=frames, labels=["a", "b", "c"])


@pytest.mark.parametrize("noise", ["shared", "per-frame"])
def test_scrubber_frames_equal_the_full_render(fake_decoder, noise):
    path = _fake_path()
    full = render(path, fake_decoder, seed=3, noise=noise, progress=False)
    s = ll.scrub(path, fake_decoder, seed=3, noise=noise)
    assert len(s) == len(path) == full.shape[0]
    np.testing.assert_array_equal(s.frame(4), full[4])
    np.testing.assert_array_equal(s.frame(-1), full[-1])
    np.testing.assert_array_equal(s.frames(), full)
    # the noise mode is honoured: frame 0 has seed 3 either way, frame 2 seed 3 or 5
    other = ll.scrub(path, fake_decoder, seed=3, noise="per-frame" if noise == "shared" else "shared")
    np.testing.assert_array_equal(other.frame(0), s.frame(0))
    assert not np.array_equal(other.frame(2), s.frame(2))


def test_scrubber_matches_a_real_decoder(tiny_path, tiny_decoder):
    full = render(tiny_path, tiny_decoder, seed=3, steps=2, progress=False)
    s = ll.scrub(tiny_path, tiny_decoder, seed=3, steps=2)
    # one frame alone vs. in a batch of the whole path: equal up to float rounding (1/255)
    assert np.abs(s.frame(4).astype(int) - full[4]).max() <= 1
    assert np.abs(s.frame(4).astype(int) - full[0]).max() > 1


def test_scrubber_cache_and_lru(tiny_path, tiny_decoder):
    s = ll.Scrubber(tiny_path, tiny_decoder, steps=2, cache_size=2)
    a = s.frame(0)
    assert s.cache_info() == {"hits": 0, "misses": 1, "cached": 1, "frames": len(tiny_path)}
    assert s.frame(0) is a  # from the cache
    s.frame(1)
    s.frame(2)  # evicts frame 0, the least recently used
    assert s.cache_info()["cached"] == 2 and 0 not in s._cache and {1, 2} <= set(s._cache)
    s.frame(0)
    assert s.misses == 4 and s.hits == 1
    with pytest.raises(ArgumentError, match="frame index"):
        s.frame(len(tiny_path))
    with pytest.raises(ArgumentError, match="noise"):
        ll.Scrubber(tiny_path, tiny_decoder, noise="slerp-ish")


def test_scrubber_frames_beyond_the_cache_size(fake_decoder):
    # frames counted as cached were evicted while the others rendered: KeyError
    path = _fake_path(12)
    full = render(path, fake_decoder, progress=False)
    s = ll.scrub(path, fake_decoder, cache_size=2)
    s.frame(0)
    s.frame(11)
    np.testing.assert_array_equal(s.frames([0, 11, 3, 4]), full[[0, 11, 3, 4]])
    assert s.cache_info() == {"hits": 2, "misses": 4, "cached": 2, "frames": 12}
    assert set(s._cache) == {3, 4}
    np.testing.assert_array_equal(s.frames([4, 5, 6, 4, 7]), full[[4, 5, 6, 4, 7]])
    assert "static view: 12 of 12 frames" in ll.scrub(path, fake_decoder, cache_size=1)._repr_html_()


def test_scrubber_labels_and_space_checks(tiny_path, tiny_decoder):
    s = ll.Scrubber(tiny_path, tiny_decoder, steps=2)
    idx = tiny_path.keyframe_indices()
    assert [s.labels[k] for k in idx] == ["red", "blue", "green"]
    assert sum(bool(x) for x in s.labels) == 3
    assert "red" in s._label(0) and "frame 0 / 6" in s._label(0)
    bad = tag(torch.nn.functional.normalize(torch.randn(4, 32), dim=-1), "another-space")
    with pytest.raises(SpaceError):
        ll.Scrubber(bad, tiny_decoder)
    with pytest.raises(ArgumentError, match="labels"):
        ll.Scrubber(tiny_path, tiny_decoder, labels=["x"])
    with pytest.raises(ArgumentError, match=r"labels must be a list of labels, one per frame, got the string 'morph'. "
                                            r"Fix: pass a list of 7 strings, one per frame"):
        ll.Scrubber(tiny_path, tiny_decoder, labels="morph")  # split into its letters, one per frame, before


def test_scrubber_widget_renders_on_slide(tiny_path, tiny_decoder):
    pytest.importorskip("ipywidgets")
    s = ll.Scrubber(tiny_path, tiny_decoder, steps=2)
    w = s.widget
    assert w is not None and s.widget is w  # built once
    assert s.slider.max == len(tiny_path) - 1
    s.slider.value = 3
    expected = base64.b64encode(notebook.png_bytes(s.frame(3))).decode("ascii")
    assert expected in s.view.value and "frame 3 / 6" in s.view.value
    assert set(s._cache) == {0, 3}


def test_a_dropped_scrubber_frees_its_decoder_though_its_widgets_live_on():
    # ipywidgets keeps displayed widgets for the session: the slider's handler held the scrubber,
    # and with it the decoder and the frame cache, until the kernel stopped
    import gc
    import weakref

    pytest.importorskip("ipywidgets")
    from conftest import FakeDecoder

    s = ll.Scrubber(_fake_path(), FakeDecoder())
    widget, slider, view = s.widget, s.slider, s.view  # kept alive, as a displayed widget is
    dec_ref = weakref.ref(s.decoder)
    del s
    gc.collect()
    assert dec_ref() is None
    slider.value = 2  # the old slider says what happened instead of failing
    assert "dropped" in view.value and "s = ll.scrub" in view.value
    del widget


def test_a_scrubber_shown_by_a_cell_lives_until_the_cell_runs_again(monkeypatch):
    # display(ll.scrub(...)) is held by nothing else (notebook 05 shows its scrubber so): its slider
    # must keep working, and a re-run of the cell must let the previous run's scrubber go
    import gc
    import weakref

    pytest.importorskip("ipywidgets")
    import IPython

    from conftest import FakeDecoder

    parent = {}

    class Kernel:
        def get_parent(self):
            return parent

    monkeypatch.setattr(IPython, "get_ipython", lambda: type("Shell", (), {"kernel": Kernel()})())
    monkeypatch.setattr(notebook, "display", lambda *objs: None)
    monkeypatch.setattr(notebook, "_SHOWN", {}, raising=False)

    def run_cell(msg_id, **meta):
        parent.clear()
        parent.update(header={"msg_id": msg_id}, metadata=meta, content={"code": "display(ll.scrub(path, dec))"})
        s = ll.Scrubber(_fake_path(), FakeDecoder())
        s._ipython_display_()
        return weakref.ref(s.decoder), s.slider, s.view

    first, slider, view = run_cell("run-1", cellId="cell-a")
    other, _, _ = run_cell("run-2", cellId="cell-b")
    gc.collect()
    assert first() is not None and other() is not None  # shown: held
    slider.value = 3
    assert "frame 3 / 6" in view.value
    second, _, _ = run_cell("run-3", cellId="cell-a")  # cell a again: its first scrubber goes
    gc.collect()
    assert first() is None and second() is not None and other() is not None
    # without cell ids (nbclient, older front ends), the cell's code tells the runs apart
    third, _, _ = run_cell("run-4")
    fourth, _, _ = run_cell("run-5")
    gc.collect()
    assert third() is None and fourth() is not None
    # no cell to tell apart (a front end that sends neither): held for the session, the slider working
    parent.clear()
    s = ll.Scrubber(_fake_path(), FakeDecoder())
    s._ipython_display_()
    unknown, slider = weakref.ref(s.decoder), s.slider
    del s
    gc.collect()
    assert unknown() is not None
    slider.value = 2


def test_scrubber_close_frees_the_decoder_and_closes_the_widgets():
    import gc
    import weakref

    pytest.importorskip("ipywidgets")
    from conftest import FakeDecoder

    s = ll.Scrubber(_fake_path(), FakeDecoder())
    widgets = [s.widget, s.slider, s.view]
    s.frame(1)
    dec_ref = weakref.ref(s.decoder)
    s.close()
    gc.collect()
    assert dec_ref() is None and s.cache_info()["cached"] == 0
    assert all(w.comm is None for w in widgets)  # closed
    assert "closed" in repr(s)
    with pytest.raises(ArgumentError, match="closed.*ll.scrub"):
        s.frame(0)
    with pytest.raises(ArgumentError, match="closed"):
        s.widget


def test_scrubber_without_ipywidgets_shows_a_static_sheet(fake_decoder, monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets -> ImportError
    shown = []
    monkeypatch.setattr(notebook, "display", lambda *objs: shown.extend(objs))
    path = _fake_path()
    s = ll.Scrubber(path, fake_decoder, static_frames=3)
    assert s.widget is None
    s._ipython_display_()
    (view,) = shown
    assert isinstance(view, notebook.ImageView) and "pip install ipywidgets" in view.caption
    full = render(path, fake_decoder, progress=False)
    # the sheet ll.show draws of those frames (on 8 px tiles its labels are fitted, not clipped)
    sheet = ll.show(full[[0, 3, 6]], labels=["0 a", "3 b", "6 c"]).array
    np.testing.assert_array_equal(view.array, sheet)
    assert "pip install ipywidgets" in s._repr_html_()


# ----------------------------------------------------------------------------------
# live preview
# ----------------------------------------------------------------------------------
def test_live_preview_counts_frames_and_resumed(tiny_path, tiny_decoder, tmp_path):
    seen = []
    p = ll.LivePreview(on_frame=lambda info: seen.append(info["frame"]))
    frames = render(tiny_path, tiny_decoder, steps=2, out_dir=tmp_path / "r", callback=p, progress=False)
    assert p.count == len(tiny_path) and p.resumed == 0 and sorted(seen) == list(range(len(tiny_path)))
    np.testing.assert_array_equal(p.last, frames[-1])
    again = ll.LivePreview()
    render(tiny_path, tiny_decoder, steps=2, out_dir=tmp_path / "r", callback=again, progress=False)
    assert again.count == again.resumed == len(tiny_path)
    with pytest.raises(ArgumentError, match="every"):
        ll.LivePreview(every=0)


class KernelShell:
    """Stands for a Jupyter kernel's shell (what has ``kernel``), where previews are shown."""

    kernel = object()


def _kernel_displays(monkeypatch, what=lambda obj: obj.caption) -> list[tuple[str, object]]:
    """Makes IPython look like a Jupyter kernel and records each ``("display" | "update", what(obj))``."""
    IPython = pytest.importorskip("IPython")
    import IPython.display

    calls = []

    class Handle:
        def update(self, obj):
            calls.append(("update", what(obj)))

    def fake_display(obj, display_id=False):
        calls.append(("display", what(obj)))
        return Handle()

    monkeypatch.setattr(IPython, "get_ipython", lambda: KernelShell())
    monkeypatch.setattr(IPython.display, "display", fake_display)
    return calls


def test_live_preview_is_silent_in_a_terminal_ipython(monkeypatch):
    # a terminal IPython (no kernel) printed "ImageView(64x64 px, ...)" for every frame
    IPython = pytest.importorskip("IPython")
    import IPython.display

    calls = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())  # a shell without a kernel
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: calls.append(a))
    p = ll.LivePreview(every=1)
    f = grey_frames(3)
    for k in range(3):
        p({"frame": k, "frames": 3, "image": f[k], "resumed": False})
    assert calls == [] and p.count == 3 and np.array_equal(p.last, f[2])


def test_live_preview_updates_one_display_in_ipython(monkeypatch):
    calls = _kernel_displays(monkeypatch, lambda obj: obj)
    p = ll.LivePreview(every=2)
    f = grey_frames(5)
    for k in range(5):
        p({"frame": k, "frames": 5, "image": f[k], "resumed": k == 0})
    # frames 2 and 4 by `every`, 5 as the last: one display, then updates in place
    assert [c[0] for c in calls] == ["display", "update", "update"]
    np.testing.assert_array_equal(calls[-1][1].array, f[4])
    assert calls[-1][1].caption == "frame 4 (5 of 5)"
    # the same preview on a second render (in another cell): counted afresh, its own display,
    # and its last frame shown
    calls.clear()
    for k in range(5):
        p({"frame": k, "frames": 5, "image": f[k], "resumed": False})
    assert [c[0] for c in calls] == ["display", "update", "update"] and calls[-1][1].caption == "frame 4 (5 of 5)"
    assert p.count == 10


def test_live_preview_shows_a_resumed_render_in_a_new_output(tmp_path, fake_decoder, monkeypatch):
    calls = _kernel_displays(monkeypatch)
    path = _fake_path(10)

    def stop_at_four(info):
        if info["frame"] == 4 and not info["resumed"]:
            raise KeyboardInterrupt

    p = ll.LivePreview(every=3, on_frame=stop_at_four)
    with pytest.raises(KeyboardInterrupt):
        render(path, fake_decoder, out_dir=tmp_path / "r", batch_size=1, callback=p, progress=False)
    assert calls == [("display", "frame 2 (3 of 10)")]
    calls.clear()
    render(path, fake_decoder, out_dir=tmp_path / "r", batch_size=1, callback=p, progress=False)
    # the resumed render: frames 0-4 kept (4 was saved before the interrupt), 5-9 drawn; in its own
    # output, counted from its first frame (it used to go on in the old one, then start another at frame 5)
    assert calls == [("display", "frame 2 (3 of 10) (resumed)"), ("update", "frame 5 (6 of 10)"),
                     ("update", "frame 8 (9 of 10)"), ("update", "frame 9 (10 of 10)")]
    assert p.count == 5 + 10 and p.resumed == 5
    calls.clear()
    # a render that keeps frames 0-9 but follows frames of a render it did not finish: new output too
    q = ll.LivePreview(every=4)
    for k in range(3):
        q({"frame": k + 5, "frames": 10, "image": grey_frames(1)[0], "resumed": False})
    for k in range(4):
        q({"frame": k, "frames": 10, "image": grey_frames(1)[0], "resumed": True})
    assert [c[0] for c in calls] == ["display"] and calls[0][1] == "frame 3 (4 of 10) (resumed)"


# ----------------------------------------------------------------------------------
# exploration
# ----------------------------------------------------------------------------------
def test_nearest_neighbours_orders_by_cosine():
    bank = tag(torch.nn.functional.normalize(torch.tensor([[1.0, 0, 0], [1, 1, 0], [0, 1, 0], [-1, 0, 0]]), dim=-1), "s")
    q = tag(torch.tensor([[1.0, 0.2, 0.0], [0.0, 1.0, 0.0]]), "s")
    nn = ll.nearest_neighbours(q, bank, k=3, labels=list("abcd"), query_labels=["q0", "q1"])
    assert nn.indices.tolist() == [[0, 1, 2], [2, 1, 0]]
    expected = ll.similarity_matrix(q, bank).numpy()
    np.testing.assert_allclose(nn.scores, np.take_along_axis(expected, nn.indices, 1), atol=1e-6)
    assert nn.top(1) == "c" and nn[1][0] == ("c", pytest.approx(1.0))
    assert "q0: a (" in str(nn) and "<table>" in nn._repr_html_()
    assert ll.nearest_neighbours(q, bank, k=10).indices.shape == (2, 4)  # capped at the bank size
    with pytest.raises(SpaceError):
        ll.nearest_neighbours(tag(q.clone(), "other"), bank)
    with pytest.raises(ArgumentError, match="labels"):
        ll.nearest_neighbours(q, bank, labels=["a"])
    with pytest.raises(ArgumentError, match="k must"):
        ll.nearest_neighbours(q, bank, k=0)


def test_nearest_words_and_images_find_themselves(tiny_encoder, tmp_path):
    words = ["a red circle", "a blue square", "a green star", "a photo"]
    nn = ll.nearest_words(tiny_encoder.encode_text(["a green star"]), tiny_encoder, words, k=2)
    assert nn.top() == "a green star" and nn.scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    nn_t = ll.nearest_words(tiny_encoder.encode_text(["a green star"]), tiny_encoder, ["green star"], template="a {}")
    assert nn_t.scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ArgumentError, match="template"):
        ll.nearest_words(tiny_encoder.encode_text(["x"]), tiny_encoder, ["x"], template="no slot")

    from latentlab.mini.shapes import sample_scene, render_scene

    pics = [render_scene(sample_scene(i, n_objects=1)) for i in range(4)]
    for i, p in enumerate(pics):
        ll.save_image(p, tmp_path / f"scene_{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    q = tiny_encoder.encode_image([str(tmp_path / "scene_2.png")])
    nn = ll.nearest_images(q, tiny_encoder, tmp_path, k=3)
    assert nn.labels == [f"scene_{i}.png" for i in range(4)]
    assert nn.top() == "scene_2.png" and nn.scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(nn.images[2], pics[2])
    assert nn._repr_html_().count("<img") == 3
    # arrays work as a bank too
    assert ll.nearest_images(q, tiny_encoder, np.stack(pics), k=1).top() == "#2"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArgumentError, match="no images"):
        explore.list_images(tmp_path / "empty")
    with pytest.raises(ArgumentError, match="not a directory"):
        explore.list_images(tmp_path / "notes.txt")


def test_pca_fits_projects_and_reconstructs():
    g = torch.Generator().manual_seed(0)
    basis = torch.nn.functional.normalize(torch.randn(3, 6, generator=g), dim=-1)
    coeffs = torch.randn(10, 3, generator=g)
    z = tag(torch.nn.functional.normalize(coeffs @ basis, dim=-1), "s")  # 10 points in a 3-d subspace
    pca = ll.fit_pca(z)
    assert pca.rank == 3 and pca.space == "s"  # the centred rank of 10 points spanning 3 dims
    c = pca.components.double()
    torch.testing.assert_close(c @ c.T, torch.eye(3, dtype=torch.float64), atol=1e-5, rtol=0)
    assert (pca.explained_variance[:-1] >= pca.explained_variance[1:]).all()
    assert float(pca.explained_ratio.sum()) == pytest.approx(1.0)
    # full rank gives the points back; fewer components lose some of them
    torch.testing.assert_close(pca.reconstruct(z, 3), z, atol=1e-5, rtol=0)
    assert space_of(pca.reconstruct(z, 1)) == "s"
    err1 = (pca.reconstruct(z, 1) - z).norm(dim=-1).mean()
    err2 = (pca.reconstruct(z, 2) - z).norm(dim=-1).mean()
    assert err2 < err1
    mean_dir = torch.nn.functional.normalize(z.mean(0, keepdim=True), dim=-1)
    torch.testing.assert_close(pca.reconstruct(z[:1], 0), mean_dir, atol=1e-6, rtol=0)
    # projections: coordinates along the components, variance matching explained_variance
    coords = pca.project(z)
    torch.testing.assert_close(coords.var(dim=0), pca.explained_variance, atol=1e-5, rtol=1e-4)
    # deterministic signs
    torch.testing.assert_close(ll.fit_pca(z.flip(0)).components, pca.components, atol=1e-5, rtol=0)
    with pytest.raises(ArgumentError, match=r"\[0, 3\]"):
        pca.reconstruct(z, 4)
    with pytest.raises(SpaceError):
        pca.project(tag(z.clone(), "other"))
    with pytest.raises(ArgumentError, match="two"):
        ll.fit_pca(z[:1])


def test_pca_probe_decodes_each_reconstruction(tiny_encoder, tiny_decoder):
    bank = tiny_encoder.encode_text([f"caption {i}" for i in range(12)])
    z = bank[3:4]
    probe = ll.pca_probe(z, tiny_decoder, bank, ks=(1, 4, 11, None), steps=2)
    assert probe.frames.shape == (4, tiny_decoder.resolution, tiny_decoder.resolution, 3)
    assert probe.labels == ["k=1", "k=4", "k=11", "full"]
    assert probe.cosine[-1] == pytest.approx(1.0, abs=1e-5) and probe.cosine[2] == pytest.approx(1.0, abs=1e-4)
    assert probe.cosine[0] < probe.cosine[1] < 1.0
    # same noise for every frame: the full frame is the plain decode of z
    # (the probe decodes its frames in one batch: equal up to one level of float rounding)
    alone = render(z, tiny_decoder, steps=2, progress=False)[0]
    assert np.abs(probe.frames[-1].astype(int) - alone.astype(int)).max() <= 1
    assert not np.array_equal(probe.frames[0], probe.frames[-1])
    assert "<img" in probe._repr_html_()
    with pytest.raises(ArgumentError, match="one embedding"):
        ll.pca_probe(bank[:2], tiny_decoder, bank)


def test_what_changed_ranks_gained_and_lost_words():
    words = ["red", "blue", "circle", "square"]
    enc = FakeEncoder(words)
    red, blue = enc.encode_text(["red", "blue"]).split(1)
    path = ll.Trajectory.interpolate(red, blue, frames=5)
    ch = ll.what_changed(path, enc, words)
    assert ch.similarity.shape == (5, 4)
    np.testing.assert_allclose(ch.delta, [-1, 1, 0, 0], atol=1e-6)
    assert [w for w, _ in ch.ranked(2)] == ["red", "blue"]
    assert ch.gained() == [("blue", pytest.approx(1.0))] and ch.lost() == [("red", pytest.approx(-1.0))]
    np.testing.assert_allclose(ch.similarity[:, 1], np.sin(np.linspace(0, np.pi / 2, 5)), atol=1e-6)
    assert "gained: blue" in str(ch) and "<table>" in ch._repr_html_()
    # measured on rendered frames: the encoder's image embeddings are used
    frames = np.zeros((5, 4, 4, 3), np.uint8)
    frames[0, ..., 0] = 255  # red -> blue in the pictures
    frames[4, ..., 2] = 255
    ch2 = ll.what_changed(path, enc, words, frames=frames)
    assert enc.image_calls == 1 and ch2.similarity.shape == (5, 4)
    assert ch2.gained(1)[0][0] == "circle"  # the fake maps blue pixels to axis 2 (the word "circle")
    with pytest.raises(ArgumentError, match="words"):
        ll.what_changed(path, enc, "red")


def test_consecutive_distances():
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    path = ll.Trajectory.interpolate(a, b, frames=7)
    np.testing.assert_allclose(ll.consecutive_distances(path), np.full(6, np.pi / 12), rtol=1e-6)
    eased = ll.Trajectory.interpolate(a, b, frames=7, easing="ease-in-out")
    d = ll.consecutive_distances(eased)
    assert d[0] < d[3] and d.sum() == pytest.approx(np.pi / 2, rel=1e-6)
    f = grey_frames(4)
    np.testing.assert_allclose(ll.consecutive_distances(f), [40 / 255 * np.sqrt(63 / 64)] * 3, rtol=1e-6)
    np.testing.assert_array_equal(ll.consecutive_distances([0.1, 0.2]), [0.1, 0.2])
    as_numpy = ll.consecutive_distances(path.embeddings().numpy())  # e.g. a render's embeddings.npy
    np.testing.assert_allclose(as_numpy, np.full(6, np.pi / 12), rtol=1e-6)
    enc = FakeEncoder(["x"])
    assert ll.consecutive_distances(f, encoder=enc).shape == (3,) and enc.image_calls == 1
    with pytest.raises(ArgumentError, match="encoder"):
        ll.consecutive_distances(f, metric="clip")
    with pytest.raises(ArgumentError, match="shape"):
        ll.consecutive_distances(np.zeros((2, 3, 3)))


def test_consecutive_distances_checks_float_frames_as_the_video_functions_do():
    f = grey_frames(4)
    as_float = f.astype(np.float32) / 255
    np.testing.assert_allclose(ll.consecutive_distances(as_float), ll.consecutive_distances(f))
    with_nan = as_float.copy()
    with_nan[2, 3, 3, 0] = np.nan  # was cast to 0 without a word
    with pytest.raises(ArgumentError, match="NaN"):
        ll.consecutive_distances(with_nan)
    with pytest.raises(ArgumentError, match=r"looks like \[0, 255\]"):  # was clipped to white
        ll.consecutive_distances(f.astype(np.float64))
    with pytest.raises(ArgumentError, match="NaN"):
        ll.plot_pacing(with_nan)
    # integer frames of another dtype are pixel values, not fractions of 1
    np.testing.assert_allclose(ll.consecutive_distances(f.astype(np.int64)), ll.consecutive_distances(f))


# ----------------------------------------------------------------------------------
# plots
# ----------------------------------------------------------------------------------
def test_plot_similarity_curves_and_keyframes(tiny_path):
    ax = ll.plot_similarity(tiny_path)  # references default to the keyframes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["red", "blue", "green"]
    expected = ll.similarity_matrix(tiny_path.embeddings(), tiny_path.keyframes).numpy()
    curves = [ln for ln in ax.lines if len(ln.get_xdata()) == len(tiny_path)]
    assert len(curves) == 3
    for k, ln in enumerate(curves):
        np.testing.assert_allclose(ln.get_ydata(), expected[:, k], atol=1e-6)
    # keyframes marked: each curve touches 1 at its keyframe
    for k, idx in enumerate(tiny_path.keyframe_indices()):
        assert curves[k].get_ydata()[idx] == pytest.approx(1.0, abs=1e-5)
    assert len(ax.lines) == 3 + 3  # three curves, three keyframe lines
    with pytest.raises(ArgumentError, match="references"):
        ll.plot_similarity(tiny_path.embeddings())
    for marks in (np.array([0, 5]), torch.tensor([0, 5])):  # keyframes as an array or a tensor
        ax = ll.plot_similarity(tiny_path.embeddings(), tiny_path.keyframes, keyframes=marks)
        assert sorted(ln.get_xdata()[0] for ln in ax.lines if len(ln.get_xdata()) == 2) == [0, 5]


def test_plot_similarity_matrix_values():
    a = tag(torch.eye(3), "s")
    b = tag(torch.nn.functional.normalize(torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), dim=-1), "s")
    ax = ll.plot_similarity_matrix(a, b, ["x", "y", "z"], ["xy", "z"])
    np.testing.assert_allclose(ax.images[0].get_array(), ll.similarity_matrix(a, b).numpy(), atol=1e-6)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["xy", "z"]
    assert len(ax.texts) == 6
    with pytest.raises(ArgumentError, match="row_labels"):
        ll.plot_similarity_matrix(a, b, ["x"])


def test_plot_pca_map_draws_the_path_through_the_points(tiny_path):
    points = tiny_path.keyframes
    ax = ll.plot_pca_map(tiny_path, points, ["r", "b", "g"], path_labels=["chain"])
    from matplotlib.collections import LineCollection

    (lc,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    xy = ax.pca.project(tiny_path.embeddings(), 2).numpy()
    segs = lc.get_segments()
    assert len(segs) == len(tiny_path) - 1
    np.testing.assert_allclose(segs[0][0], xy[0], atol=1e-5)
    np.testing.assert_allclose(segs[-1][1], xy[-1], atol=1e-5)
    assert [t.get_text() for t in ax.texts] == ["r", "b", "g"]
    # thumbnails instead of dots
    ax2 = ll.plot_pca_map(tiny_path, points, images=list(grey_frames(3)))
    assert len(ax2.artists) == 3
    with pytest.raises(ArgumentError, match="needs a path"):
        ll.plot_pca_map()


def test_plot_pacing_reports_evenness():
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    even = ll.Trajectory.interpolate(a, b, frames=9)
    eased = ll.Trajectory.interpolate(a, b, frames=9, easing="ease-in-out")
    ax = ll.plot_pacing({"linear": even, "eased": eased})
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts[0].startswith("linear: cv 0.00, max/median 1.0")
    d = ll.consecutive_distances(eased)
    assert texts[1] == f"eased: cv {d.std() / d.mean():.2f}, max/median {d.max() / np.median(d):.1f}"
    np.testing.assert_allclose(ax.lines[2].get_ydata(), d)
    assert ax.get_ylabel() == "angle (rad)"
    assert ll.plot_pacing(grey_frames(4)).get_ylabel() == "pixel RMS change"


def test_plot_word_changes_draws_the_top_words():
    words = ["red", "blue", "circle", "square"]
    enc = FakeEncoder(words)
    red, blue = enc.encode_text(["red", "blue"]).split(1)
    ch = ll.what_changed(ll.Trajectory.interpolate(red, blue, frames=4), enc, words)
    ax = ll.plot_word_changes(ch, top=2)
    assert len(ax.lines) == 2
    assert ax.lines[0].get_linestyle() == "--" and ax.lines[1].get_linestyle() == "-"  # red lost, blue gained
    np.testing.assert_allclose(ax.lines[1].get_ydata(), ch.similarity[:, 1])
    with pytest.raises(ArgumentError, match="what_changed"):
        ll.plot_word_changes(np.zeros(3))


def test_exploration_and_plots_name_the_arguments_whose_spaces_differ(tiny_encoder):
    tiny_path = ll.Trajectory.interpolate(tiny_encoder.encode_text("a red circle"), tiny_encoder.encode_text("a blue square"), frames=5)
    assert tiny_path.space == "tiny-random"
    other = tag(torch.nn.functional.normalize(torch.randn(6, 32, generator=torch.Generator().manual_seed(1)), dim=-1), "other")
    smaller = torch.randn(6, 16)
    with pytest.raises(SpaceError, match="path is in 'tiny-random', points is in 'other'"):
        plots.plot_pca_map(tiny_path, other)
    with pytest.raises(SpaceError, match="path has size 32 but points has size 16"):
        plots.plot_pca_map(tiny_path, smaller)
    with pytest.raises(SpaceError, match="path is in .*, references is in 'other'"):
        plots.plot_similarity(tiny_path, other)
    with pytest.raises(SpaceError, match="a has size 32 but b has size 16"):
        plots.plot_similarity_matrix(tiny_path, smaller)
    with pytest.raises(SpaceError, match="query has size 32 but bank has size 16"):
        explore.nearest_neighbours(tiny_path, smaller)
    fake = _fake_path()  # size 8, space "fake-space"
    with pytest.raises(SpaceError, match="query has size 8 but 32 is expected here"):
        explore.nearest_words(fake, tiny_encoder, ["red"])
    with pytest.raises(SpaceError, match="path has size 8 but 32 is expected here"):
        explore.what_changed(fake, tiny_encoder, ["red"])
    same_size = tag(tiny_path.embeddings().clone(), "other")
    with pytest.raises(SpaceError, match="path lives in CLIP space 'other' but 'tiny-random' is expected"):
        explore.what_changed(same_size, tiny_encoder, ["red"])


def test_what_changed_and_nearest_words_take_generators_and_check_frames(tiny_path, tiny_encoder):
    words = ["red", "blue", "green", "star"]
    from_list = explore.what_changed(tiny_path, tiny_encoder, words)
    from_gen = explore.what_changed(tiny_path, tiny_encoder, (w for w in words))
    assert from_gen.words == words
    np.testing.assert_allclose(from_gen.similarity, from_list.similarity)
    assert "gained" in repr(from_gen)
    near = explore.nearest_words(tiny_path, tiny_encoder, (w for w in words), k=2)
    assert near.labels == words
    with pytest.raises(ArgumentError, match="words must be a non-empty list"):
        explore.what_changed(tiny_path, tiny_encoder, iter(()))
    # frames must be the path's frames, all of them
    with pytest.raises(ArgumentError, match=f"frames must be the path's {len(tiny_path)} rendered frames"):
        explore.what_changed(tiny_path, tiny_encoder, words, frames=grey_frames(T=2, size=16))


def test_results_show_briefly_in_a_notebook(tiny_encoder):
    z = tiny_encoder.encode_text([f"caption {i}" for i in range(8)])
    pca = explore.fit_pca(z)
    text = repr(pca)
    assert text.startswith(f"PCA(rank={pca.rank}, d=32, space='tiny-random', explained_ratio=[")
    assert len(text) < 200 and "\n" not in text


def test_swapped_arguments_name_the_encoder(tiny_encoder):
    path = ll.Trajectory.interpolate(tiny_encoder.encode_text("a"), tiny_encoder.encode_text("b"), frames=3)
    frames = np.zeros((4, 8, 8, 3), np.uint8)
    with pytest.raises(ArgumentError, match="encoder must be a latentlab Encoder .* got ndarray"):
        explore.what_changed(path, frames, tiny_encoder)
    with pytest.raises(ArgumentError, match="encoder must be a latentlab Encoder .* got list"):
        explore.nearest_words(path, ["red"], tiny_encoder)


# ----------------------------------------------------------------------------------
# audit fixes (each test failed before its fix)
# ----------------------------------------------------------------------------------
def _fake_bank(n: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(2)
    return tag(torch.nn.functional.normalize(torch.randn(n, 8, generator=g), dim=-1), "fake-space")


def test_nearest_images_thumbnails_show_non_rgb_pil_images_as_encoded(tiny_encoder):
    from PIL import Image

    from latentlab.encoders import _to_rgb

    a = np.zeros((16, 16, 3), np.uint8)
    a[:8], a[8:] = (200, 30, 30), (20, 40, 220)
    pics = [Image.fromarray(a).convert(mode) for mode in ("P", "L", "CMYK")]
    nn = ll.nearest_images(tiny_encoder.encode_text(["a red circle"]), tiny_encoder, pics, k=3)
    for pic, thumb in zip(pics, nn.images):  # the colours, not the palette indices or CMYK bytes
        np.testing.assert_array_equal(thumb, np.asarray(_to_rgb(pic)))
    np.testing.assert_array_equal(nn.images[2][0, 0], [200, 30, 30])


def test_nearest_images_takes_channels_first_tensors_as_encode_image_does(tiny_encoder):
    # a (3, H, W) tensor's thumbnail was its channel planes shown as rows (garbled), and an
    # (m, 3, H, W) tensor, which encode_image takes, was refused
    a = np.zeros((16, 12, 3), np.uint8)
    a[:8], a[8:] = (200, 30, 30), (20, 40, 220)
    t = torch.from_numpy(a).permute(2, 0, 1).float() / 255  # (3, 16, 12) in [0, 1]
    q = tiny_encoder.encode_text(["a red circle"])
    nn = ll.nearest_images(q, tiny_encoder, [t, a], k=2)
    np.testing.assert_array_equal(nn.images[0], a)
    np.testing.assert_array_equal(nn.images[1], a)
    batch = ll.nearest_images(q, tiny_encoder, torch.stack([t, t.flip(1)]), k=2)
    assert [im.shape for im in batch.images] == [(16, 12, 3)] * 2 and batch.labels == ["#0", "#1"]
    np.testing.assert_array_equal(batch.images[1], a[::-1])
    in_list = ll.nearest_images(q, tiny_encoder, [torch.stack([t, t]), a], k=3)
    assert len(in_list.images) == 3 and in_list.labels == ["#0", "#1", "#2"]


def test_nearest_images_holds_one_full_size_picture_at_a_time(tiny_encoder, tmp_path, monkeypatch):
    # an audit (2026-12-06): every picture was read at full size and kept until all were encoded
    # (a folder of 500 phone photos, 36 MB each, needed 18 GB); each is now shrunk as it is read
    import gc
    import weakref

    from PIL import Image

    from latentlab import explore

    for j in range(4):
        Image.fromarray(np.full((96, 96, 3), 40 * j, np.uint8)).save(tmp_path / f"p{j}.png")
    read, alive = [], []
    real = explore._pixels

    def pixels(*a, **k):
        gc.collect()
        alive.append(sum(r() is not None for r in read))  # full-size pictures still held as the next is read
        out = real(*a, **k)
        read.append(weakref.ref(out))
        return out

    monkeypatch.setattr(explore, "_pixels", pixels)
    nn = ll.nearest_images(tiny_encoder.encode_text(["a red circle"]), tiny_encoder, tmp_path, k=4, thumbnail=32)
    assert alive == [0, 0, 0, 0] and [im.shape for im in nn.images] == [(32, 32, 3)] * 4


def test_rgba_arrays_are_shown_on_white_as_they_are_encoded(tiny_encoder):
    # an audit: a transparent RGBA array was encoded on white but its thumbnail showed black,
    # and ll.show refused it, advising frames[..., :3] (black again)
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[4:12, 4:12] = (255, 0, 0, 255)  # a red square on a transparent background
    nn = ll.nearest_images(tiny_encoder.encode_text(["a red circle"]), tiny_encoder, [rgba], k=1)
    assert nn.images[0][0, 0].tolist() == [255, 255, 255] and nn.images[0][8, 8].tolist() == [255, 0, 0]
    view = ll.show(rgba)
    assert view.array[0, 0].tolist() == [255, 255, 255] and view.array[8, 8].tolist() == [255, 0, 0]


def test_show_takes_results_that_hold_frames():
    # ll.show(iterative_text_diff(...)) / ll.show(pca_probe(...)) said "image has shape () (dtype object)"
    from latentlab.edit import IterativeEdit
    from latentlab.explore import Probe

    f = grey_frames(3)
    edit = IterativeEdit(frames=f, embeddings=torch.zeros(3, 4), similarity=[0.1, 0.2, 0.3], reached=True)
    # (its frames under its labels, the cosines its own view shows: it showed them bare)
    assert np.array_equal(ll.show(edit).array, ll.show(f, labels=["cos 0.100", "cos 0.200", "cos 0.300"]).array)
    probe = Probe(frames=f[:2], ks=[1, None], embeddings=torch.zeros(2, 4), cosine=np.array([0.5, 1.0]))
    assert np.array_equal(ll.show(probe).array, ll.show(f[:2], labels=probe.labels).array)


def test_a_video_file_or_render_result_is_scaled_up_as_frames_are(tmp_path):
    from latentlab.jobs import RenderResult

    f = grey_frames(3)  # 8 px: shown 32 times larger, as show_video(frames) does
    gif = ll.write_video(f, tmp_path / "a.gif", fps=4)
    mp4 = ll.write_video(np.zeros((3, 16, 16, 3), np.uint8), tmp_path / "a.mp4", fps=4)
    assert ll.show_video(f).width == ll.show_video(gif).width == 256
    assert ll.show_video(mp4).width == 256 and ll.show_video(mp4, scale=2).width == 32
    result = RenderResult(frames=f, out_dir=tmp_path, video=gif, contact_sheet=gif, spec=None, trajectory=None)
    view = ll.show(result)
    assert view.width == 256 and 'width="256"' in view._repr_html_()
    # a file ffmpeg cannot size is still shown, at its own size, as before the scaling came
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    assert ll.show_video(bad).width is None and ll.show_video(bad, scale=2).width is None


def test_edit_module_example_sets_a_target_the_start_frame_does_not_reach():
    import re

    from latentlab import edit

    doc = edit.__doc__
    target = float(re.search(r"target=([0-9.]+)", doc).group(1))
    shape, sims, reached = re.search(r"\(\((\d+), 64, 64, 3\), \[([0-9., ]+)\], (True|False)\)", doc).groups()
    sims = [float(s) for s in sims.split(",")]
    assert sims[0] < target <= sims[-1] and reached == "True" and int(shape) == len(sims) > 1


def test_exploration_takes_tensors_that_require_grad(tiny_encoder):
    words = ["red", "blue", "circle", "square"]
    enc = FakeEncoder(words)
    path = torch.nn.functional.normalize(torch.randn(4, 4), dim=-1).requires_grad_(True)
    assert ll.nearest_neighbours(path, path.detach().clone().requires_grad_(True), k=2).indices.shape == (4, 2)
    assert ll.what_changed(path, enc, words).similarity.shape == (4, 4)
    assert ll.consecutive_distances(path).shape == (3,)
    q = tiny_encoder.encode_text(["a red circle"]).clone().requires_grad_(True)
    assert ll.nearest_words(q, tiny_encoder, ["a red circle", "a blue square"], k=1).top() == "a red circle"


def test_pca_probe_and_reconstruct_normalise_z(fake_decoder):
    bank = _fake_bank()
    z = bank[:1]
    pca = ll.fit_pca(bank)
    torch.testing.assert_close(pca.reconstruct(z * 3, 2), pca.reconstruct(z, 2))
    a = ll.pca_probe(z, fake_decoder, bank, ks=(1, 3, None), progress=False)
    b = ll.pca_probe(z * 3, fake_decoder, bank, ks=(1, 3, None), progress=False)
    torch.testing.assert_close(b.embeddings, a.embeddings)
    np.testing.assert_array_equal(b.frames, a.frames)
    np.testing.assert_allclose(b.cosine, a.cosine)
    assert b.cosine[-1] == pytest.approx(1.0)


def test_a_single_d_embedding_is_one_embedding(tiny_encoder, tiny_decoder):
    z = tiny_encoder.encode_text(["a red circle"])
    with pytest.raises(ArgumentError, match=r">= 0.*single \(d,\) embedding\? Pass at least two embeddings as \(T, d\)"):
        ll.consecutive_distances(z[0])  # a 1-D tensor is read as distances, as pacing_stats reads it
    one = ll.iterative_text_diff(tiny_encoder, tiny_decoder, z[0], "a photo", "a drawing", max_steps=0, steps=1)
    two = ll.iterative_text_diff(tiny_encoder, tiny_decoder, z, "a photo", "a drawing", max_steps=0, steps=1)
    np.testing.assert_array_equal(one.frames, two.frames)
    np.testing.assert_array_equal(ll.variations(tiny_decoder, z[0], n=1, steps=1), ll.variations(tiny_decoder, z, n=1, steps=1))
    with pytest.raises(ArgumentError, match=r"embedding must be a torch.Tensor.*got a numpy ndarray of shape \(1, 32\)"):
        ll.variations(tiny_decoder, z.numpy(), n=1)
    with pytest.raises(ArgumentError, match=r"embedding must be one embedding .* got shape \(2, 32\)"):
        ll.variations(tiny_decoder, torch.cat([z, z]), n=1)


def test_models_are_checked_before_any_work(tiny_encoder, tiny_decoder, tiny_path, images):
    q = tiny_encoder.encode_text(["a red circle"])
    folder = images[0].parent
    with pytest.raises(ArgumentError, match=r"encoder must be a latentlab Encoder .* got Tensor; the arguments are \(query, encoder, images"):
        ll.nearest_images(q, q, folder)
    with pytest.raises(ArgumentError, match="encoder must be a latentlab Encoder .* got PosixPath|encoder must be a latentlab Encoder .* got WindowsPath"):
        ll.nearest_images(q, folder, tiny_encoder)
    with pytest.raises(ArgumentError, match=r"decoder must be a latentlab Decoder .* got TinyEncoder|decoder must be a latentlab Decoder .*; the call is scrub"):
        ll.scrub(tiny_path, tiny_encoder)
    with pytest.raises(ArgumentError, match="decoder must be a latentlab Decoder .* got Trajectory"):
        ll.scrub(tiny_decoder, tiny_path)
    with pytest.raises(ArgumentError, match="steps must be an integer >= 1, got 0"):
        ll.scrub(tiny_path, tiny_decoder, steps=0)


def test_long_work_shows_a_progress_bar_when_there_is_more_than_one_batch(tiny_encoder, tiny_decoder, fake_decoder,
                                                                         recording_bars):
    def bars():
        return [(b.desc, b.shown) for b in recording_bars]

    prior = ll.create_prior("tiny")
    ll.generate(tiny_encoder, prior, tiny_decoder, "a cat", n=2, batch_size=1, steps=1)
    ll.generate(tiny_encoder, prior, tiny_decoder, "a cat", n=1, steps=1)
    assert [d for d, shown in bars() if shown] == ["generating"]
    recording_bars.clear()
    bank = _fake_bank()
    ll.pca_probe(bank[:1], fake_decoder, bank, ks=(1, 2, 3, None))  # 4 frames, batches of 3
    ll.pca_probe(bank[:1], fake_decoder, bank, ks=(1, None))
    assert [shown for d, shown in bars() if d == "rendering"] == [True, False]
    recording_bars.clear()
    img = np.zeros((16, 16, 3), np.uint8)
    ll.iterative_text_diff(tiny_encoder, tiny_decoder, img, "a photo", "a drawing", max_steps=1, steps=1)
    ll.iterative_text_diff(tiny_encoder, tiny_decoder, img, "a photo", "a drawing", max_steps=0, steps=1)
    assert [b for b in bars() if b[0] == "text diff"] == [("text diff", True), ("text diff", False)]
    recording_bars.clear()
    s = ll.scrub(_fake_path(7), fake_decoder, static_frames=7)
    s.static_view()  # 7 frames in batches of 3
    s.static_view()  # all cached: nothing to wait for
    assert [b for b in bars() if b[0] == "rendering"] == [("rendering", True), ("rendering", False)]


def _fake_eta_decoder():
    """FakeDecoder that inverts (to a constant noise) and samples with eta (fresh noise of each
    picture's seed), so variations' "inverted" mode runs; its rows are decoded independently."""
    from conftest import FakeDecoder

    from latentlab.render import make_noise

    dec = FakeDecoder()
    cls = type(dec)  # a class of its own per FakeDecoder
    cls._invert = lambda self, images, z, **kw: torch.full((z.shape[0], 1, 8, 8), 0.5)

    def decode_eta(self, z, noise, *, eta, seeds, steps=None, guidance_scale=None):
        return self.decode(z, noise + eta * make_noise((1, 8, 8), seeds), seeds=seeds, steps=steps,
                           guidance_scale=guidance_scale)

    cls.decode_eta = decode_eta
    return dec


@pytest.mark.parametrize("mode", ["reroll", "inverted"])
def test_variations_decode_in_batches_the_pictures_of_one_call(mode, recording_bars):
    # all n variations went to the decoder in one call, whatever n (out of memory for a large n)
    from latentlab.render import make_noise

    dec = _fake_eta_decoder()
    z = tag(torch.nn.functional.normalize(torch.randn(1, 8, generator=torch.Generator().manual_seed(1)), dim=-1),
            "fake-space")
    seeds = list(range(5, 12))
    zs = tag(z.expand(7, -1), "fake-space")
    kw = {}
    if mode == "reroll":  # the one call the old code made
        expected = dec.decode(zs, make_noise((1, 8, 8), seeds), seeds=seeds)
    else:
        kw = {"image": np.zeros((8, 8, 3), np.uint8), "eta": 0.5}
        expected = dec.decode_eta(zs, torch.full((7, 1, 8, 8), 0.5), eta=0.5, seeds=seeds)
    dec.calls.clear()
    got = ll.variations(dec, z, n=7, seed=5, **kw)  # the decoder's default_batch_size: 3
    assert dec.calls == [3, 3, 1]
    np.testing.assert_array_equal(got, expected)
    bar = next(b for b in recording_bars if b.desc == "decode variations")
    assert bar.shown and bar.total == bar.n == 7
    dec.calls.clear()
    np.testing.assert_array_equal(ll.variations(dec, z, n=7, seed=5, batch_size=2, progress=False, **kw), expected)
    assert dec.calls == [2, 2, 2, 1]
    with pytest.raises(ArgumentError, match="batch_size must be an integer >= 1, got 0"):
        ll.variations(dec, z, n=7, batch_size=0, **kw)
    # a batch that does not fit in memory is retried halved, as render does
    inner, dec.calls = dec._decode, []

    def decode(embeddings, noise, **k):
        if embeddings.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return inner(embeddings, noise, **k)

    dec._decode = decode
    np.testing.assert_array_equal(ll.variations(dec, z, n=7, seed=5, batch_size=4, progress=False, **kw), expected)
    assert dec.calls == [2, 2, 2, 1]


def test_show_takes_pil_images_of_any_mode_and_image_paths(tmp_path):
    from PIL import Image

    from latentlab.encoders import _to_rgb

    f = grey_frames(2)
    pal = Image.fromarray(f[1]).convert("P")
    np.testing.assert_array_equal(ll.show(pal).array, np.asarray(_to_rgb(pal)))
    np.testing.assert_array_equal(ll.show([pal, Image.fromarray(f[0]).convert("L")]).array.shape, ll.contact_sheet(f).shape)
    a, b = ll.save_image(f[0], tmp_path / "a.png"), ll.save_image(f[1], tmp_path / "b.png")
    np.testing.assert_array_equal(ll.show([str(a), b], labels=["a", "b"]).array, ll.contact_sheet(f, labels=["a", "b"]))


def test_raw_python_errors_are_argument_errors(tiny_encoder, tiny_decoder, fake_decoder, images):
    q = tiny_encoder.encode_text(["a red circle"])
    for bad in ("a {} {}", "a {x} {}", "a {", 5):
        with pytest.raises(ArgumentError, match="template must contain"):
            ll.nearest_words(q, tiny_encoder, ["red"], template=bad)
        with pytest.raises(ArgumentError, match="template must contain"):
            ll.what_changed(torch.cat([q, q]), tiny_encoder, ["red"], template=bad)
    bank = _fake_bank()
    for ks in (4, "12", [1, 2.5], [-1]):
        with pytest.raises(ArgumentError, match=r"ks(\[\d\])? must be"):
            ll.pca_probe(bank[:1], fake_decoder, bank, ks=ks)
    for thumb in (0, -5, 1.5):
        with pytest.raises(ArgumentError, match="thumbnail must be an integer >= 1"):
            ll.nearest_images(q, tiny_encoder, images, thumbnail=thumb)
    s = ll.scrub(_fake_path(), fake_decoder)
    with pytest.raises(ArgumentError, match="indices is empty"):
        s.frames([])
    for bad in ("a", -3, 0):
        with pytest.raises(ArgumentError, match="static_frames must be an integer >= 1"):
            ll.scrub(_fake_path(), fake_decoder, static_frames=bad)
    # numpy scalars are numbers
    assert ll.LivePreview(every=np.int64(2)).every == 2
    assert ll.scrub(_fake_path(), fake_decoder, fps=np.float32(5), cache_size=np.int64(2)).fps == 5.0
    prior = ll.create_prior("tiny")
    assert ll.generate(tiny_encoder, prior, tiny_decoder, "a cat", n=np.int64(2), steps=1).shape[0] == 2
    run = ll.iterative_text_diff(tiny_encoder, tiny_decoder, q, None, "x", theta_step=np.float32(0.5), max_steps=np.int64(0), steps=1)
    assert len(run) == 1


def test_errors_name_the_argument_at_fault(tiny_encoder, tiny_decoder, fake_decoder):
    with pytest.raises(ArgumentError, match=r"query row\(s\) \[0\] are the zero vector"):
        ll.nearest_words(torch.zeros(1, 32), tiny_encoder, ["red"])
    bank = _fake_bank()
    with pytest.raises(SpaceError, match="z lives in CLIP space 'other' but 'fake-space'"):
        ll.pca_probe(tag(bank[:1].clone(), "other"), fake_decoder, bank, ks=(1,))
    with pytest.raises(SpaceError, match="basis lives in CLIP space 'other'"):
        ll.pca_probe(bank[:1], fake_decoder, tag(bank.clone(), "other"), ks=(1,))
    with pytest.raises(ArgumentError, match=r"decoder must be a latentlab Decoder .* got Tensor; the call is pca_probe\(z, decoder, basis"):
        ll.pca_probe(bank[:1], bank, fake_decoder)
    other = tag(torch.nn.functional.normalize(torch.randn(3, 32), dim=-1), "other")
    for call in (lambda: ll.what_changed(other, tiny_encoder, ["red"]), lambda: ll.nearest_words(other, tiny_encoder, ["red"])):
        with pytest.raises(SpaceError, match="the encoder's space") as err:
            call()
        assert "decoder" not in str(err.value)

    class OtherPrior:
        dim, space, calls = 64, "other", 0

        def __call__(self, z, seed=0, num_samples=1):
            OtherPrior.calls += 1
            return tag(torch.nn.functional.normalize(torch.randn(1, 64), dim=-1), "other")

    with pytest.raises(SpaceError, match=r"prior 'other' \(d=64\)"):
        ll.generate(tiny_encoder, OtherPrior(), tiny_decoder, "a cat", n=1, steps=1)
    assert OtherPrior.calls == 0  # refused before any work


def test_pca_probe_names_the_ks_entry_past_the_basis_rank(fake_decoder):
    bank = _fake_bank(8)  # rank 7: the default ks (up to 16) does not fit
    with pytest.raises(ArgumentError, match=r"ks\[3\] = 8 is more than the basis's rank 7.*ks=\(1, 2, 4, 7, None\)"):
        ll.pca_probe(bank[:1], fake_decoder, bank)


def test_a_zero_reconstruction_says_why():
    pca = ll.fit_pca(torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]))  # centred, but the mean is zero
    with pytest.raises(ArgumentError, match="k >= 1") as err:
        pca.reconstruct(torch.tensor([[1.0, 0.0, 0.0]]), 0)
    assert "with center=True" not in str(err.value)
    assert pca.reconstruct(torch.tensor([[1.0, 0.0, 0.0]]), 1).tolist() == [[1.0, 0.0, 0.0]]


def test_small_view_and_result_fixes(tmp_path):
    bank = tag(torch.eye(3), "s")
    nn = ll.nearest_neighbours(bank[:1], bank, k=2)
    page = nn._repr_html_()
    assert "<th>rank 1</th><th>rank 2</th>" in page and "<th>#1</th>" not in page and "#0" in page
    with pytest.raises(ArgumentError, match="query_labels must be a list of labels, one per query, got the string 'ab'"):
        ll.nearest_neighbours(bank[:2], bank, query_labels="ab")
    with pytest.raises(ArgumentError, match="labels must be a list"):
        ll.nearest_neighbours(bank[:1], bank, labels="abc")
    enc = FakeEncoder(["red", "blue"])
    ch = ll.what_changed(enc.encode_text(["red", "blue"]), enc, ["red", "blue"])
    for method in (ch.gained, ch.lost, ch.ranked):
        with pytest.raises(ArgumentError, match="n must be an integer >= 0"):
            method(-1)
    gif = ll.write_video(grey_frames(3), tmp_path / "a.gif", fps=4)
    with pytest.raises(ArgumentError, match="fps, format apply to frames, not to a file"):
        ll.show_video(gif, format="gif", fps=0)
    with pytest.raises(ArgumentError, match="is a directory"):
        ll.show_video(tmp_path)
    view = ll.show_video(grey_frames(3))
    with pytest.raises(ArgumentError, match="suffix '.mp4' but this view holds a gif"):
        view.save(tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists() and view.save(tmp_path / "x.gif").read_bytes()[:3] == b"GIF"


def test_pca_shows_as_html(tiny_encoder):
    pca = explore.fit_pca(tiny_encoder.encode_text([f"caption {i}" for i in range(14)]))
    page = pca._repr_html_()
    assert page.startswith("<div>PCA: rank 13, d=32") and page.count("<tr>") == 1 + 10 + 1  # head, top 10, "3 more"
    assert "3 more" in page


def test_showing_embeddings_says_they_are_not_pictures():
    # ll.show(z) for a (2, 128) tensor advised only "grey images need a channel axis"
    with pytest.raises(ArgumentError, match=r"if these are \(n, d\) embeddings, they are not pictures"):
        ll.show(torch.nn.functional.normalize(torch.randn(2, 128), dim=-1))


def test_show_video_keeps_frames_within_max_embed_mb_and_checks_it():
    # max_embed_mb applied to files only: frames embedded a video of any size
    noisy = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    size = len(ll.show_video(noisy, fps=4).data)
    assert size > 2000  # well over the limit below
    with pytest.raises(ArgumentError, match=r"over max_embed_mb=0\.001.*Fix: write_video\(frames, path\) and "
                                            r"show_video\(path\)"):
        ll.show_video(noisy, fps=4, max_embed_mb=0.001)
    assert len(ll.show_video(noisy, fps=4, max_embed_mb=size / 2**20).data) == size  # at the limit: embedded
    assert ll.show_video(noisy, fps=4, max_embed_mb=float("inf")).data is not None
    for bad in ("x", -1, float("nan"), True, None):  # "x" raised a raw TypeError, -1 was taken
        with pytest.raises(ArgumentError, match=rf"max_embed_mb must be a number of MB >= 0.*got {bad!r}"):
            ll.show_video(noisy, fps=4, max_embed_mb=bad)


def test_video_view_save_creates_folders_and_writes_atomically(tmp_path, monkeypatch):
    from pathlib import Path

    view = ll.show_video(grey_frames(3), fps=4)
    out = view.save(tmp_path / "new" / "dir" / "v.gif")  # a raw FileNotFoundError
    assert out == tmp_path / "new" / "dir" / "v.gif" and out.read_bytes() == view.data
    old = tmp_path / "keep.gif"
    old.write_bytes(b"old")
    real = Path.write_bytes

    def full_disk(self, data):
        real(self, data[:10])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(OSError, match="No space left"):
        view.save(old)
    monkeypatch.undo()
    assert old.read_bytes() == b"old"  # not left half written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.gif", "new"]  # no temporary file left
    with pytest.raises(ArgumentError, match="path=3; expected a file path"):
        view.save(3)


def test_show_names_the_videos_it_plays_and_show_video_takes_a_dotted_format(tmp_path):
    mov = tmp_path / "clip.mov"
    mov.write_bytes(b"\x00\x00\x00\x14ftypqt  " + bytes(100))
    # said "cannot read ... as an image: cannot identify image file"
    with pytest.raises(ArgumentError, match=r"only \.mp4, \.webm, \.gif and \.webp files play inline.*"
                                            r"show_video\(ll\.read_video\(path\)\)"):
        ll.show(mov)
    with pytest.raises(ArgumentError, match=r"clip\.mov"):
        ll.show_video(mov)
    f = grey_frames(3)
    assert ll.show_video(f, fps=4, format=".gif").data == ll.show_video(f, fps=4, format="gif").data  # as write_video
    assert ll.show_video(f, fps=4, format=".WEBP").mimetype == "image/webp"


def test_a_scrubbers_widget_put_in_a_layout_keeps_a_working_slider(monkeypatch):
    # ll.scrub(path, dec).widget placed in the user's own VBox: nothing else holds the scrubber, and
    # the weakly held slider had gone dead at once; the cell that builds the box now holds it
    import gc

    pytest.importorskip("ipywidgets")
    import IPython

    from conftest import FakeDecoder

    parent = {"header": {"msg_id": "run-1"}, "metadata": {"cellId": "cell-w"}, "content": {"code": "box = ..."}}

    class Kernel:
        def get_parent(self):
            return parent

    monkeypatch.setattr(IPython, "get_ipython", lambda: type("Shell", (), {"kernel": Kernel()})())
    monkeypatch.setattr(notebook, "_SHOWN", {}, raising=False)
    box = ll.Scrubber(_fake_path(), FakeDecoder()).widget
    gc.collect()
    slider, view = box.children[0].children[1], box.children[1]
    slider.value = 2
    assert "frame 2 / 6" in view.value


def test_pca_tools_scale_embeddings_to_unit_norm(fake_decoder):
    # fit_pca, PCA.project and pca_probe used the rows as given: a bank saved unnormalised
    # (norms 8-12, as open_clip's normalize=False features) got another map, and a path between
    # its rows was drawn far from them
    from matplotlib.collections import LineCollection, PathCollection

    from latentlab.ops import slerp

    bank = _fake_bank()
    norms = 8 + 4 * torch.rand(bank.shape[0], 1, generator=torch.Generator().manual_seed(3))
    raw = tag(bank * norms, "fake-space")
    unit, scaled = ll.fit_pca(bank), ll.fit_pca(raw)
    for a, b in ((scaled.mean, unit.mean), (scaled.components, unit.components), (scaled.explained_variance, unit.explained_variance)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(unit.project(raw), unit.project(bank), atol=1e-5, rtol=0)
    path = slerp(bank[:1], bank[1:2], torch.linspace(0, 1, 9))
    ax = ll.plot_pca_map(path, raw)
    (dots,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    (line,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    points, segs = dots.get_offsets(), line.get_segments()
    same = ll.plot_pca_map(path, bank)  # the map of the unit bank
    np.testing.assert_allclose(points, same.pca.project(bank, 2).numpy(), atol=1e-5)
    np.testing.assert_allclose(segs[0][0], points[0], atol=1e-5)  # the path starts on bank[0]
    np.testing.assert_allclose(segs[-1][1], points[1], atol=1e-5)  # and ends on bank[1]
    a = ll.pca_probe(bank[:1], fake_decoder, bank, ks=(1, 3, None), progress=False)
    b = ll.pca_probe(bank[:1], fake_decoder, raw, ks=(1, 3, None), progress=False)
    torch.testing.assert_close(b.embeddings, a.embeddings, atol=1e-5, rtol=0)
    np.testing.assert_allclose(b.cosine, a.cosine, atol=1e-6)
    with pytest.raises(ArgumentError, match=r"embeddings row\(s\) \[1\] are the zero vector"):
        ll.fit_pca(torch.cat([bank[:1], torch.zeros(1, 8)]))


def test_nearest_neighbours_matches_a_full_stable_argsort():
    # it argsorted every row in full (float64) to keep k: 18 s and 2.3 GB for 10k x 10k; the
    # top k (ties at the k-th place kept in bank order) must not change
    from latentlab.ops import similarity_matrix

    g = torch.Generator().manual_seed(4)
    rows = torch.randint(-1, 2, (12, 5), generator=g).float()  # few distinct directions: many ties
    rows[rows.norm(dim=-1) == 0, 0] = 1.0
    bank = torch.cat([rows, rows[[3, 0, 7]], torch.randn(20, 5, generator=g)])[torch.randperm(35, generator=g)]
    query = torch.cat([rows[:6], torch.randn(4, 5, generator=g)])
    for q, b in ((query, bank), (query.double(), bank.double()), (bank, bank)):
        sim = similarity_matrix(q, b).double().numpy()
        for k in (1, 2, 3, 5, 8, 34, 35, 50):
            want = np.argsort(-sim, axis=1, kind="stable")[:, : min(k, b.shape[0])]
            got = ll.nearest_neighbours(q, b, k=k)
            np.testing.assert_array_equal(got.indices, want)
            np.testing.assert_array_equal(got.scores, np.take_along_axis(sim, want, axis=1))
            assert got.indices.dtype == np.int64 and got.scores.dtype == np.float64
    # only the candidates are sorted, never whole rows of the (n, m) similarity
    sorted_widths = []
    argsort = np.argsort

    def spy(a, *args, **kwargs):
        sorted_widths.append(np.shape(a)[-1])
        return argsort(a, *args, **kwargs)

    big = torch.randn(300, 5, generator=g)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(np, "argsort", spy)
        ll.nearest_neighbours(query, big, k=3)
    assert sorted_widths and max(sorted_widths) < 300


def test_nearest_neighbours_names_a_transposed_bank():
    # a (d, m) bank said "query has size 8 but bank has size 3: they come from different CLIP models"
    bank, query = _fake_bank(3), _fake_bank(2)
    for labels in (None, ["a", "b", "c"]):  # (the labels were counted against the 8 rows first)
        with pytest.raises(SpaceError, match=r"bank has shape \(8, 3\) and query \(2, 8\): bank looks transposed.*Fix: pass bank\.T"):
            ll.nearest_neighbours(query, bank.T, labels=labels)
    with pytest.raises(SpaceError, match="query has shape .* query looks transposed"):
        ll.nearest_neighbours(_fake_bank(3).T, _fake_bank(5))
    with pytest.raises(SpaceError, match="different CLIP models"):  # neither axis matches
        ll.nearest_neighbours(query, torch.randn(3, 5))
    # a review: a bank tagged with another space is another model's, whatever its shape (a 512-d query
    # and a bank of 512 ViT-L images was told to pass bank.T, and then compared across models)
    other = tag(torch.nn.functional.normalize(torch.randn(8, 3), dim=-1), "other-space")
    with pytest.raises(SpaceError, match="different CLIP models"):
        ll.nearest_neighbours(query, other)


def test_encoding_a_bank_shows_a_progress_bar(tiny_encoder, capsys):
    # nearest_images, nearest_words and what_changed encoded their whole bank in silence
    pics = np.random.default_rng(5).integers(0, 256, (33, 8, 8, 3), dtype=np.uint8)  # one more than a batch of 32
    words = [f"word {i}" for i in range(65)]  # one more than a batch of 64
    q = tiny_encoder.encode_text(["a red circle"])
    path = tiny_encoder.encode_text(["a red circle", "a blue square"])
    calls = {
        "encode images": lambda **kw: ll.nearest_images(q, tiny_encoder, pics, k=2, **kw),
        "encode texts": lambda **kw: ll.nearest_words(q, tiny_encoder, words, k=2, **kw),
        "encode texts ": lambda **kw: ll.what_changed(path, tiny_encoder, words, **kw),
    }
    for desc, call in calls.items():
        capsys.readouterr()
        call()
        assert desc.strip() in capsys.readouterr().err, desc
        call(progress=False)
        assert "encode" not in capsys.readouterr().err, desc
    ll.nearest_images(q, tiny_encoder, pics[:32], k=2)  # one batch: no bar
    ll.nearest_words(q, tiny_encoder, words[:64], k=2)
    assert "encode" not in capsys.readouterr().err
    with pytest.raises(ArgumentError, match="progress must be True, False or None"):
        ll.nearest_words(q, tiny_encoder, words, progress="yes")


# explore: PCA coordinates, word-change summaries and image banks (gaps a mutation test found, 2026-12-07)
def _unit_rows(n: int, d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return tag(torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=-1), "s")


def test_list_images_matches_suffixes_in_any_case(tmp_path):
    """Camera files named IMG_1.JPG or A.PNG are images too (suffixes are case-insensitive)."""
    for name in ("b.PNG", "a.Jpg", "c.png", "notes.TXT"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in explore.list_images(tmp_path)] == ["a.Jpg", "b.PNG", "c.png"]


def test_nearest_images_thumbnails_fit_within_the_thumbnail_size(tiny_encoder):
    """A wide picture's thumbnail is shrunk until its longer side is ``thumbnail`` pixels."""
    wide = np.zeros((20, 100, 3), np.uint8)
    wide[:, ::2] = 255
    tall = np.ascontiguousarray(wide.transpose(1, 0, 2))
    nn = ll.nearest_images(tiny_encoder.encode_image([wide]), tiny_encoder, [wide, tall], k=1, thumbnail=32)
    assert max(nn.images[0].shape[:2]) == 32 and max(nn.images[1].shape[:2]) == 32


def test_pca_coordinates_are_centred_on_the_mean():
    """PCA.project measures from the fitted mean: the fitted points' coordinates average 0."""
    z = _unit_rows(8, 5)
    pca = ll.fit_pca(z)
    coords = pca.project(z)
    torch.testing.assert_close(coords.mean(dim=0), torch.zeros(pca.rank), atol=1e-5, rtol=0)


def test_fit_pca_without_centring_keeps_a_zero_mean_and_every_direction():
    """center=False analyses the unit vectors as they are: mean 0, rank n, exact reconstruction."""
    z = _unit_rows(4, 6, seed=1)
    pca = ll.fit_pca(z, center=False)
    assert float(pca.mean.abs().max()) == 0.0 and pca.rank == 4
    torch.testing.assert_close(pca.reconstruct(z, 4), z, atol=1e-5, rtol=0)


def test_word_changes_swing_is_the_range_along_the_path():
    """swing is the largest minus the smallest similarity, wherever along the path they are."""
    ch = explore.WordChanges(["a", "b"], np.array([[0.5, 0.1], [0.9, 0.0], [0.2, 0.3]]))
    np.testing.assert_allclose(ch.swing, [0.7, 0.3])


def test_lost_lists_the_largest_drop_first():
    """lost() orders the words by most negative change first, and n keeps that many."""
    ch = explore.WordChanges(["a", "b", "c"], np.array([[0.5, 0.9, 0.2], [0.4, 0.1, 0.6]]))  # -0.1, -0.8, +0.4
    assert [w for w, _ in ch.lost()] == ["b", "a"]
    assert ch.lost(1) == [("b", pytest.approx(-0.8))]


# Views, scrubber and live preview: sizes, formats, files and cache behaviour
def _gif_durations(data: bytes) -> list[int]:
    return animated_frames(data)[1]


# ----------------------------------------------------------------------------------
# inline views
# ----------------------------------------------------------------------------------
def test_a_wide_contact_sheet_is_not_zoomed_past_1024_px():
    """Small tiles are enlarged, but never so far that the whole sheet shows wider than 1024 px."""
    view = ll.show(np.zeros((40, 8, 8, 3), np.uint8), columns=40)
    width = view.array.shape[1]
    assert width > 400 and view.scale == 1024 // width
    assert f'width="{width * view.scale}"' in view._repr_html_()


def test_a_contact_sheet_is_zoomed_by_its_tile_size_not_the_sheet_size():
    """Frames of 8 px in a sheet are shown as large as one 8 px image would be (tiles at ~128 px)."""
    assert ll.show(grey_frames(4)).scale == ll.show(grey_frames(1)[0]).scale == 16


def test_a_non_square_image_is_shown_at_its_width_times_the_scale():
    view = ll.show(np.zeros((8, 16, 3), np.uint8))
    assert view.scale == 8 and 'width="128"' in view._repr_html_()


def test_a_non_square_video_file_is_shown_as_wide_as_its_frames(tmp_path):
    """A file's display width comes from its frame width (height and width are not swapped)."""
    f = np.zeros((3, 8, 16, 3), np.uint8)
    gif = ll.write_video(f, tmp_path / "a.gif", fps=4)
    assert ll.show_video(f, fps=4).width == ll.show_video(gif).width == 256
    assert ll.show_video(gif, scale=3).width == 48
    f = np.zeros((3, 16, 32, 3), np.uint8)
    mp4 = ll.write_video(f, tmp_path / "a.mp4", fps=4)
    assert ll.show_video(mp4).width == ll.show_video(f, fps=4, format="mp4").width == 256
    assert ll.show_video(mp4, scale=2).width == 64


def test_an_mp4_view_loops():
    """show_video promises an inline, looping video: the <video> tag autoplays and loops."""
    page = ll.show_video(grey_frames(3), fps=4, format="mp4")._repr_html_()
    tag_ = page.split("<video", 1)[1].split(">", 1)[0]
    assert " loop" in tag_ and " autoplay" in tag_ and " muted" in tag_


def test_video_view_save_takes_an_upper_case_suffix(tmp_path):
    view = ll.show_video(grey_frames(3), fps=4)
    out = view.save(tmp_path / "CLIP.GIF")
    assert out.read_bytes() == view.data


def test_a_video_file_at_max_embed_mb_is_embedded(tmp_path):
    gif = ll.write_video(grey_frames(3), tmp_path / "a.gif", fps=4)
    size = gif.stat().st_size
    assert ll.show_video(gif, max_embed_mb=size / 2**20).data == gif.read_bytes()  # at the limit: embedded
    assert ll.show_video(gif, max_embed_mb=(size - 1) / 2**20).data is None  # over it: by reference


@pytest.mark.parametrize("option", [{"pingpong": True}, {"hold_first": 2}, {"hold_last": 1}])
def test_show_video_of_a_file_refuses_the_frame_options(tmp_path, option):
    gif = ll.write_video(grey_frames(3), tmp_path / "a.gif", fps=4)
    (name,) = option
    with pytest.raises(ArgumentError, match=rf"{name} apply to frames, not to a file"):
        ll.show_video(gif, **option)


def test_frames_up_to_256_px_play_as_a_gif():
    assert ll.show_video(np.zeros((2, 256, 256, 3), np.uint8), fps=4).mimetype == "image/gif"
    assert ll.show_video(np.zeros((2, 256, 257, 3), np.uint8), fps=4).mimetype == "video/mp4"


def test_show_video_holds_the_first_and_last_frames_as_asked():
    """hold_first repeats the first frame, hold_last the last (a gif merges repeats into one
    longer frame: 3 frames at 4 fps, the first held for 2 more)."""
    f = grey_frames(3)
    assert _gif_durations(ll.show_video(f, fps=4).data) == [250, 250, 250]
    assert _gif_durations(ll.show_video(f, fps=4, hold_first=2).data) == [750, 250, 250]
    assert _gif_durations(ll.show_video(f, fps=4, hold_last=1).data) == [250, 250, 500]


def test_show_of_a_render_result_keeps_the_caption(tmp_path):
    from latentlab.jobs import RenderResult

    f = grey_frames(3)
    gif = ll.write_video(f, tmp_path / "a.gif", fps=4)
    result = RenderResult(frames=f, out_dir=tmp_path, video=gif, contact_sheet=gif, spec=None, trajectory=None)
    view = ll.show(result, caption="my morph")
    assert view.caption == "my morph" and "my morph" in view._repr_html_()


def test_show_of_a_result_takes_the_labels_passed_over_its_own():
    from latentlab.explore import Probe

    f = grey_frames(2, size=64)  # tiles wide enough for the labels to show
    probe = Probe(frames=f, ks=[1, None], embeddings=torch.zeros(2, 4), cosine=np.array([0.5, 1.0]))
    mine = ["first", "second"]
    np.testing.assert_array_equal(ll.show(probe, labels=mine).array, ll.show(f, labels=mine).array)
    assert not np.array_equal(ll.show(probe, labels=mine).array, ll.show(probe).array)


def test_show_plays_a_video_file_whatever_the_case_of_its_suffix(tmp_path):
    gif = ll.write_video(grey_frames(3), tmp_path / "A.GIF", fps=4)
    view = ll.show(gif)
    assert isinstance(view, notebook.VideoView) and view.data == gif.read_bytes()


# ----------------------------------------------------------------------------------
# the scrubber
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("fps", [0, float("inf"), float("nan")])
def test_scrubber_refuses_a_play_speed_that_is_not_positive_and_finite(fake_decoder, fps):
    with pytest.raises(ArgumentError, match="fps must be a positive number"):
        ll.scrub(_fake_path(), fake_decoder, fps=fps)


def test_scrubber_takes_every_negative_index_down_to_minus_the_length(fake_decoder):
    s = ll.scrub(_fake_path(), fake_decoder)
    np.testing.assert_array_equal(s.frame(-len(s)), s.frame(0))
    np.testing.assert_array_equal(s.frames([-len(s)]), s.frames([0]))
    with pytest.raises(ArgumentError, match="frame index"):
        s.frame(-len(s) - 1)


def test_scrubber_caches_a_negative_index_as_the_frame_it_names(fake_decoder):
    """frame(-1) and frame(T - 1) are one frame: rendered once, then taken from the cache."""
    s = ll.scrub(_fake_path(), fake_decoder)
    T = len(s)
    a = s.frame(-1)
    assert s.frame(T - 1) is a
    s.frames([-2, T - 2])
    assert s.cache_info() == {"hits": 2, "misses": 2, "cached": 2, "frames": T}
    assert set(s._cache) == {T - 1, T - 2}


def test_a_frame_taken_from_the_cache_counts_as_recently_used(fake_decoder):
    """The cache drops the least recently *used* frame, not the first rendered."""
    s = ll.scrub(_fake_path(), fake_decoder, cache_size=2)
    s.frame(0)
    s.frame(1)
    s.frame(0)  # a hit: frame 1 is now the least recently used
    s.frame(2)
    assert set(s._cache) == {0, 2}
    s.frames([0])  # a hit through frames(): frame 2 is now the least recently used
    s.frame(3)
    assert set(s._cache) == {0, 3}


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_scrubber_refuses_a_cache_size_below_one(fake_decoder, bad):
    """cache_size=0 would keep no frame at all (each frame rendered again): refused."""
    with pytest.raises(ArgumentError, match="cache_size must be an integer >= 1"):
        ll.scrub(_fake_path(), fake_decoder, cache_size=bad)


# ----------------------------------------------------------------------------------
# live preview
# ----------------------------------------------------------------------------------
def test_live_preview_shows_a_render_of_another_length_in_a_new_output(monkeypatch):
    """A render whose number of frames differs from the last one's is a new render (counted
    afresh, in its own output), even when its first frame was not seen before."""
    calls = _kernel_displays(monkeypatch)
    p = ll.LivePreview(every=2)
    f = grey_frames(5)
    for k in range(2):  # a render of 10 frames, stopped after two
        p({"frame": k, "frames": 10, "image": f[k], "resumed": False})
    for k in range(2, 5):  # then one of 5 frames
        p({"frame": k, "frames": 5, "image": f[k], "resumed": False})
    assert calls == [("display", "frame 1 (2 of 10)"), ("display", "frame 3 (4 of 5)")]
    assert p.count == 5


# -- property: the scrubber's frame cache ---------------------------------------------------------

_OPS = st.lists(st.tuples(st.sampled_from(["frame", "frames"]), st.lists(st.integers(-6, 5), min_size=1, max_size=5)),
                min_size=1, max_size=12)  # fmt: skip


@settings(max_examples=30, deadline=None, derandomize=True)
@given(cache_size=st.none() | st.integers(1, 4), ops=_OPS, noise=st.sampled_from(["shared", "per-frame"]))
def test_the_scrubber_cache_gives_the_render_frames_and_renders_each_miss_once(cache_size, ops, noise):
    """Whatever order frames are asked in: each is frame k of the full render; the decoder renders exactly the
    misses (a frame asked twice in one call, once); hits + misses count every frame asked for; the cache never holds more than cache_size frames, holds exactly the most recently used ones
    after frame() (least recently used out first), and after frames(idx) keeps the last min(cache_size, distinct)
    of them when they fit."""
    dec = FakeDecoder()
    z = tag(torch.nn.functional.normalize(torch.randn(3, 8, generator=torch.Generator().manual_seed(1)), dim=-1),
            "fake-space")  # fmt: skip
    z = ll.Trajectory(z, frames=6)
    full = render(z, dec, seed=2, noise=noise, progress=False)
    dec.calls.clear()
    s = ll.scrub(z, dec, seed=2, noise=noise, cache_size=cache_size)
    model: list[int] = []  # least recently used first
    asked = 0
    for op, idx in ops:
        if op == "frame":
            k = idx[0] % 6
            np.testing.assert_array_equal(s.frame(idx[0]), full[k])
            asked += 1
            if k in model:
                model.remove(k)
            model.append(k)
            if cache_size is not None:
                model = model[-cache_size:]
            assert list(s._cache) == model
        else:
            np.testing.assert_array_equal(s.frames(idx), full[[k % 6 for k in idx]])
            distinct = list(dict.fromkeys(k % 6 for k in idx))
            asked += len(idx)
            if cache_size is None or len(distinct) <= cache_size:
                assert set(distinct) <= set(s._cache)
            model = list(s._cache)
        assert cache_size is None or len(s._cache) <= cache_size
        for k, image in s._cache.items():
            np.testing.assert_array_equal(image, full[k])
        assert s.hits + s.misses == asked and sum(dec.calls) == s.misses


def test_show_video_refuses_a_caption_that_is_no_str_before_encoding(monkeypatch):
    """show_video checks its caption before the frames are written to a video (it was refused only
    once the video had been encoded)."""
    from latentlab import video

    monkeypatch.setattr(video, "write_video", lambda *a, **k: pytest.fail("the frames were encoded first"))
    with pytest.raises(ArgumentError, match="caption must be a str or None"):
        ll.show_video(np.zeros((3, 8, 8, 3), np.uint8), fps=4, caption=5)


# -- second audit (2026-12-07): edit, notebook and explore arguments --------------------------


def _fake_frames_path(T: int = 5, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return tag(torch.nn.functional.normalize(torch.randn(T, 8, generator=g), dim=-1), "fake-space")


# ----------------------------------------------------------------------------------
# edit
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["target", "grow", "min_gain"])
def test_iterative_text_diff_refuses_a_number_too_large_for_a_float_by_name(tiny_encoder, tiny_decoder, name):
    # float(10**400) raised a raw OverflowError after the range checks passed
    z = tiny_encoder.encode_text(["a red circle"])
    with pytest.raises(ArgumentError, match=name):
        ll.iterative_text_diff(tiny_encoder, tiny_decoder, z, "a", "b", max_steps=0, steps=1, **{name: 10**400})


@pytest.mark.parametrize("adaptive", ["no", None, np.array([1, 2]), 1])
def test_iterative_text_diff_checks_adaptive(tiny_encoder, tiny_decoder, adaptive):
    # "no" ran adaptive steps, None fixed ones, an array raised numpy's raw 'truth value' error
    z = tiny_encoder.encode_text(["a red circle"])
    with pytest.raises(ArgumentError, match="adaptive must be True or False"):
        ll.iterative_text_diff(tiny_encoder, tiny_decoder, z, "a", "b", max_steps=0, steps=1, adaptive=adaptive)


def test_iterative_text_diff_checks_refine_in_either_noise_mode(tiny_encoder, tiny_decoder):
    # variations checks refine in either mode; the text diff ignored refine=-3 with shared noise
    z = tiny_encoder.encode_text(["a red circle"])
    for refine in (-3, 1.5, "2"):
        with pytest.raises(ArgumentError, match="refine"):
            ll.iterative_text_diff(tiny_encoder, tiny_decoder, z, "a", "b", max_steps=0, steps=1, refine=refine)


@settings(derandomize=True, max_examples=10, deadline=None)
@given(n=st.integers(1, 6), past=st.integers(0, 3))
def test_variations_refuse_a_seed_whose_last_variation_is_past_the_range_naming_seed(n, past):
    # the decoder refused 'seeds[...]', a value the caller never gave, after the first batches
    dec = FakeDecoder()
    z = _fake_frames_path(1)
    past = min(past, n - 1)  # (a seed of 2**63 or more is check_seed's to refuse)
    seed = 2**63 - n + past  # past = 0: the last variation's seed is 2**63 - 1, the largest
    if past == 0:
        assert ll.variations(dec, z, n=n, seed=seed).shape == (n, 8, 8, 3)
    else:
        with pytest.raises(ArgumentError, match=rf"seed={seed} gives variation {n - 1} the seed"):
            ll.variations(dec, z, n=n, seed=seed)
        assert dec.calls == []  # before any decode


def test_generate_refuses_a_seed_whose_last_picture_is_past_the_range_naming_seed(tiny_encoder, tiny_decoder):
    prior = ll.create_prior("tiny")
    with pytest.raises(ArgumentError, match=rf"seed={2**63 - 1} gives picture 1 the seed"):
        ll.generate(tiny_encoder, prior, tiny_decoder, "a red circle", n=2, seed=2**63 - 1, steps=1)


def test_a_per_frame_scrubber_refuses_a_seed_past_the_range_when_made():
    # it was refused only when a frame was shown, as 'seeds[...] must be ...'
    dec = FakeDecoder()
    with pytest.raises(ArgumentError, match=rf"seed={2**63 - 2} with noise='per-frame' gives frame 4 the seed"):
        ll.scrub(_fake_frames_path(5), dec, seed=2**63 - 2, noise="per-frame")
    assert ll.scrub(_fake_frames_path(5), dec, seed=2**63 - 5, noise="per-frame").frames().shape == (5, 8, 8, 3)
    assert ll.scrub(_fake_frames_path(5), dec, seed=2**63 - 1).frame(4).shape == (8, 8, 3)  # shared noise: one seed


# ----------------------------------------------------------------------------------
# notebook views
# ----------------------------------------------------------------------------------
def test_live_preview_refuses_an_on_frame_that_cannot_be_called():
    # a raw TypeError at the render's first frame
    with pytest.raises(ArgumentError, match="on_frame"):
        ll.LivePreview(on_frame=5)
    seen = []
    ll.LivePreview(on_frame=seen.append)({"frame": 0, "frames": 1, "image": grey_frames(1)[0]})
    assert len(seen) == 1


def test_scrubber_frames_refuses_a_0d_array_of_indices():
    s = ll.scrub(_fake_frames_path(5), FakeDecoder())
    with pytest.raises(ArgumentError, match="indices"):
        s.frames(np.array(3))  # numpy's raw 'iteration over a 0-d array'
    assert s.frames(np.array([3])).shape == (1, 8, 8, 3)


def test_a_frame_taken_from_the_scrubber_cannot_change_its_cache():
    # frame(k) hands out the cached array: img[:] = 0 was shown, and returned by frames(), as frame k
    dec = FakeDecoder()
    path = _fake_frames_path(4)
    full = ll.render(path, dec, seed=0, progress=False)
    s = ll.scrub(path, dec, seed=0)
    for _ in range(2):  # a miss, then a hit
        img = s.frame(1)
        with pytest.raises(ValueError, match="read-only"):
            img[:] = 0
    s.frames([0, 3])
    with pytest.raises(ValueError, match="read-only"):
        s.frame(3)[0, 0] = 7
    np.testing.assert_array_equal(s.frames(), full)


def test_show_refuses_contact_sheet_options_for_a_file(tmp_path):
    # they were dropped without a word (a single image array refused them already)
    img = ll.save_image(grey_frames(1)[0], tmp_path / "one.png")
    gif = ll.write_video(grey_frames(3), tmp_path / "v.gif", fps=4)
    for x, kw in ((img, {"labels": ["a"]}), (str(img), {"columns": 2}), (gif, {"max_frames": 2}),
                  (gif, {"labels": ["a", "b", "c"]})):  # fmt: skip
        with pytest.raises(ArgumentError, match=next(iter(kw))):
            ll.show(x, **kw)
    assert ll.show(img).array.shape == (8, 8, 3) and ll.show(gif).mimetype == "image/gif"


def test_show_refuses_contact_sheet_options_for_a_render_result(tmp_path):
    from latentlab.jobs import RenderResult

    gif = ll.write_video(grey_frames(3), tmp_path / "r.gif", fps=4)
    result = RenderResult(grey_frames(3), tmp_path, gif, gif, None, None)
    with pytest.raises(ArgumentError, match="labels.*result.frames"):
        ll.show(result, labels=["a", "b", "c"])
    assert ll.show(result).mimetype == "image/gif"


@pytest.mark.parametrize("name", ["take #2.gif", "50% done.gif", "why?.gif", "a b&c.gif"])
def test_a_video_shown_by_reference_names_its_file_as_a_url(tmp_path, name):
    # '#', '?' and '%' in a file's name were written into src as they are: the browser read a
    # fragment, a query or an escape, and the video did not play
    gif = ll.write_video(grey_frames(3), tmp_path / name, fps=4)
    view = ll.show_video(gif, max_embed_mb=0)
    assert view.data is None
    assert f'src="{html.escape(quote(gif.as_posix()))}"' in view._repr_html_()


def test_image_view_checks_tile():
    from latentlab.notebook import ImageView

    with pytest.raises(ArgumentError, match="tile"):
        ImageView(grey_frames(1)[0], tile="a")  # a raw TypeError
    assert ImageView(grey_frames(1)[0], tile=4).scale == 32


class _HTMLText(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.attrs: list[str] = []

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.attrs += [v for _, v in attrs if v is not None]


user_text = st.text(alphabet=st.sampled_from(list("<>&\"' ab/=;#%")), min_size=1, max_size=12)


@settings(derandomize=True, max_examples=25, deadline=None)
@given(caption=user_text, labels=st.lists(user_text, min_size=3, max_size=3))
def test_views_escape_user_text_and_show_it_as_written(caption, labels):
    """Captions, labels and words reach the page as text (no tags of theirs), as they were
    written; a view shown twice gives the same page."""
    from latentlab.explore import WordChanges
    from latentlab.notebook import VideoView

    view = ll.show(grey_frames(1)[0], caption=caption)
    page = view._repr_html_()
    assert page == view._repr_html_()
    p = _HTMLText()
    p.feed(page)
    assert caption in p.text and p.attrs.count(caption) == 1  # the text under it, and the img's alt
    assert page.count("<div") == 2 and page.count("<img") == 1
    bank = tag(torch.eye(3), "demo")
    nn = ll.nearest_neighbours(bank, bank, k=3, labels=labels, query_labels=labels)
    p = _HTMLText()
    p.feed(nn._repr_html_())
    for lab in labels:
        assert lab in p.text
    assert nn._repr_html_().count("<tr>") == 4
    changes = WordChanges(labels, np.array([[0.1, 0.2, 0.3], [0.4, 0.0, 0.3]]))
    p = _HTMLText()
    p.feed(changes._repr_html_())
    assert [lab for lab in labels if lab in p.text] == labels
    video = VideoView(b"GIF89a", "image/gif", width=8, caption=caption)
    p = _HTMLText()
    p.feed(video._repr_html_())
    assert caption in p.text and video._repr_html_() == video._repr_html_()


# ----------------------------------------------------------------------------------
# explore
# ----------------------------------------------------------------------------------
def test_nearest_neighbours_checks_its_thumbnails_when_called():
    bank = _fake_frames_path(3)
    with pytest.raises(ArgumentError, match="images"):
        ll.nearest_neighbours(bank, bank, images=5)  # a raw TypeError
    with pytest.raises(ArgumentError, match=r"images\[0\]"):
        ll.nearest_neighbours(bank, bank, images=["x.png"] * 3)  # refused only when the table was shown
    nn = ll.nearest_neighbours(bank, bank, images=(f for f in grey_frames(3)))
    assert "data:image/png" in nn._repr_html_()


def test_consecutive_distances_names_an_encoder_that_is_not_one():
    with pytest.raises(ArgumentError, match="encoder must be a latentlab Encoder"):
        ll.consecutive_distances(grey_frames(3), encoder=5)  # a raw AttributeError


def test_list_images_refuses_a_folder_that_is_no_path():
    from latentlab.explore import list_images

    with pytest.raises(ArgumentError, match="folder"):
        list_images(5)  # os.fspath's raw TypeError


def test_words_given_as_bytes_are_refused(tiny_encoder):
    # b"abc" was read as the words 97, 98, 99
    z = tiny_encoder.encode_text(["a", "b"])
    with pytest.raises(ArgumentError, match="words"):
        ll.nearest_words(z, tiny_encoder, b"abc")
    with pytest.raises(ArgumentError, match="words"):
        ll.what_changed(z, tiny_encoder, b"abc")


def test_nearest_images_and_words_check_k_and_labels_before_encoding_the_bank(tiny_encoder, monkeypatch):
    # k=0 or a label too few was refused only once every picture had been read and encoded
    calls = []
    for kind in ("image", "text"):
        method = getattr(tiny_encoder, f"encode_{kind}")
        monkeypatch.setattr(tiny_encoder, f"encode_{kind}",
                            lambda *a, _m=method, _k=kind, **kw: calls.append(_k) or _m(*a, **kw))  # fmt: skip
    z = tiny_encoder.encode_text(["a", "b"])
    calls.clear()
    pictures = list(grey_frames(3))
    for kw in ({"k": 0}, {"labels": ["one", "two"]}, {"query_labels": ["q"]}):
        with pytest.raises(ArgumentError, match=next(iter(kw))):
            ll.nearest_images(z, tiny_encoder, pictures, **kw)
    for kw in ({"k": 0}, {"query_labels": ["q", "r", "s"]}):
        with pytest.raises(ArgumentError, match=next(iter(kw))):
            ll.nearest_words(z, tiny_encoder, ["red", "blue"], **kw)
    assert calls == []
    assert ll.nearest_images(z, tiny_encoder, pictures, k=2).indices.shape == (2, 2) and calls == ["image"]


@pytest.mark.parametrize("center", ["no", None, np.array([1, 0]), 0])
def test_pca_tools_check_center(center):
    # "no" centred, None did not, an array raised numpy's raw 'truth value' error
    z = _fake_frames_path(20)
    with pytest.raises(ArgumentError, match="center must be True or False"):
        ll.fit_pca(z, center=center)
    with pytest.raises(ArgumentError, match="center must be True or False"):
        ll.pca_probe(z[:1], FakeDecoder(), z, ks=(1,), center=center)


def test_pca_probe_checks_progress():
    dec = FakeDecoder()
    z = _fake_frames_path(20)
    with pytest.raises(ArgumentError, match="progress"):
        ll.pca_probe(z[:1], dec, z, ks=(1, 2), progress="no")  # showed a bar
    assert dec.calls == []
    assert ll.pca_probe(z[:1], dec, z, ks=(1, 2), progress=np.bool_(False)).frames.shape == (2, 8, 8, 3)


def test_what_changed_names_frames_of_different_sizes(tiny_encoder):
    z = tiny_encoder.encode_text(["a", "b", "c"])
    frames = [np.zeros((8, 8, 3), np.uint8), np.zeros((4, 4, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)]
    with pytest.raises(ArgumentError, match="frames must be .* all of one size"):
        ll.what_changed(z, tiny_encoder, ["x"], frames=frames)  # numpy's raw 'inhomogeneous shape'


@pytest.mark.parametrize("metric", ["bogus", np.array(["pixel"]), 5])
def test_consecutive_distances_checks_metric_whatever_it_measures(metric):
    # ignored for embeddings and distances; an array of one name was taken for frames
    for x in (_fake_frames_path(3), np.array([0.1, 0.2]), grey_frames(3)):
        with pytest.raises(ArgumentError, match="metric must be one of"):
            ll.consecutive_distances(x, metric=metric)
    assert ll.consecutive_distances(grey_frames(3), metric="pixel").shape == (2,)


def test_generate_retries_a_batch_that_runs_out_of_memory_halved(tiny_encoder, monkeypatch):
    """ll.generate passed torch's raw out-of-memory error on (the command line said to lower
    --batch-size), where render and variations retry the batch halved; now the same pictures as
    batches that fit, and a single picture that does not fit says the fixes."""
    from latentlab.errors import LatentlabError

    prior = ll.create_prior("tiny")
    dec = ll.create_decoder("tiny")
    want = ll.generate(tiny_encoder, prior, dec, "a cat", n=3, batch_size=1, steps=1)
    assert dec.reads_captions  # (so generate gives it the prompt: _decode_captioned draws)
    decode, sizes = dec._decode_captioned, []

    def fits_one(embeddings, noise, captions, **kw):
        sizes.append(embeddings.shape[0])
        if embeddings.shape[0] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return decode(embeddings, noise, captions, **kw)

    monkeypatch.setattr(dec, "_decode_captioned", fits_one)
    np.testing.assert_array_equal(ll.generate(tiny_encoder, prior, dec, "a cat", n=3, batch_size=4, steps=1), want)
    assert sizes == [3, 1, 1, 1]  # (halved once: the rest at that size)
    monkeypatch.setattr(dec, "_decode_captioned",
                        lambda *a, **k: (_ for _ in ()).throw(torch.OutOfMemoryError("out of memory")))  # fmt: skip
    with pytest.raises(LatentlabError, match=r"out of memory generating a single picture\..*cpu_offload=True"):
        ll.generate(tiny_encoder, prior, dec, "a cat", n=1, steps=1)


def test_generate_takes_numpy_bools_for_captions(tiny_encoder, tiny_decoder):
    prior = ll.create_prior("tiny")

    def draw(captions):
        return ll.generate(tiny_encoder, prior, tiny_decoder, "a red circle", n=1, steps=1, captions=captions)

    np.testing.assert_array_equal(draw(np.bool_(False)), draw(False))


def test_show_of_a_generator_says_to_pass_a_list():
    # it was read as one image: "image has shape () (dtype object)"
    with pytest.raises(ArgumentError, match=r"generator/iterator .* list\(frames\)"):
        ll.show(f for f in grey_frames(3))
    with pytest.raises(ArgumentError, match=r"generator/iterator .* list\(frames\)"):
        ll.show(iter(list(grey_frames(3))))


def test_pca_probe_names_ks_given_as_a_0d_array():
    z = _fake_frames_path(20)
    with pytest.raises(ArgumentError, match=r"ks must be a sequence .* ks=\(2,\)"):
        ll.pca_probe(z[:1], FakeDecoder(), z, ks=np.array(2))  # 'iteration over a 0-d array'
    assert ll.pca_probe(z[:1], FakeDecoder(), z, ks=np.array([2])).ks == [2]


# -- show_video of a RenderResult ---------------------------------------------------------------


def _result(tmp_path):
    import latentlab as ll
    from latentlab.jobs import RenderResult

    frames = np.stack([np.full((8, 8, 3), 40 * k, np.uint8) for k in range(4)])
    video = ll.write_video(frames, tmp_path / "r.gif", fps=4)
    spec = ll.load_spec({"preset": "tiny", "fps": 6, "keyframes": [{"text": "a"}, {"text": "b"}]})
    return RenderResult(frames=frames, out_dir=tmp_path / "r", video=video, contact_sheet=video, spec=spec,
                        trajectory=None)  # fmt: skip


def test_show_video_of_a_render_result_shows_its_video(tmp_path):
    """What render_spec returns was refused as 'frames has shape () (dtype object)', though ll.show
    takes it: its video file, as it is."""
    import latentlab as ll

    r = _result(tmp_path)
    view = ll.show_video(r)
    assert view.path == r.video and view.data == r.video.read_bytes()


def test_show_video_of_a_render_result_with_frame_options_uses_its_frames(tmp_path):
    """fps, format, pingpong or a hold (refused with a file) make a video of its frames, at the
    spec's fps unless fps is given."""
    import latentlab as ll

    r = _result(tmp_path)
    want = ll.show_video(r.frames, fps=6, pingpong=True)
    got = ll.show_video(r, pingpong=True)
    assert got.path is None and got.data == want.data
    assert ll.show_video(r, fps=3).data == ll.show_video(r.frames, fps=3).data
