"""Public helpers documented in docs/api.md and the prose docs (slerp_noise, make_noise, frame_seeds,
folder_lock, resize_frames, fine_pacing_settings, the jobs helpers) check their arguments as the
rest of latentlab does; the declared dependencies keep the promises the docs make."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from conftest import FakeDecoder
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]


def _dependencies() -> list[str]:
    """The declared dependencies of the checkout whose latentlab is imported (this test's own
    checkout when latentlab is installed elsewhere)."""
    import latentlab

    pyproject = Path(latentlab.__file__).resolve().parents[1] / "pyproject.toml"
    if not pyproject.is_file():
        pyproject = ROOT / "pyproject.toml"
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    with open(pyproject, "rb") as f:
        return tomllib.load(f)["project"]["dependencies"]


def test_declared_tqdm_reads_its_environment_settings():
    """docs/notebooks.md (and latentlab._bars) promise that tqdm's own ``TQDM_DISABLE=1`` turns
    every latentlab bar off: the bars leave ``disable`` to tqdm. tqdm reads its ``TQDM_*``
    environment variables only since 4.66.0, so the declared floor must not let an older
    tqdm in (``tqdm>=4.65`` did: under 4.65 the setting was silently ignored)."""
    from packaging.requirements import Requirement

    tqdm = next(r for r in map(Requirement, _dependencies()) if r.name == "tqdm")
    for old in ("4.65.0", "4.65.2"):
        assert not tqdm.specifier.contains(old), f"pyproject.toml allows tqdm {old}, which ignores TQDM_DISABLE"
    assert tqdm.specifier.contains("4.66.0")


# -- slerp_noise (docs/api.md lists it; ll.slerp_noise): its docstring reads t as a float or (n,) ----


def _noises():
    import torch

    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 4, 4, generator=g).unbind()


def test_slerp_noise_reads_a_list_of_parameters_as_n_noises():
    """A list (or numpy array) of parameters is the ``(n,)`` the docstring asks for: it gave one
    noise, that of ``t[0]``, without a word (a render's path parameters collected in a list)."""
    import numpy as np
    import torch

    from latentlab.render import slerp_noise

    a, b = _noises()
    want = slerp_noise(a, b, torch.tensor([0.0, 0.5, 1.0]))
    for t in ([0.0, 0.5, 1.0], (0.0, 0.5, 1.0), np.array([0.0, 0.5, 1.0])):
        got = slerp_noise(a, b, t)
        assert got.shape == (3, 3, 4, 4), type(t)
        torch.testing.assert_close(got, want)
    assert torch.equal(got[0], a) and torch.equal(got[2], b)
    assert slerp_noise(a, b, np.float32(0.5)).shape == a.shape  # a numpy scalar is one parameter


def test_slerp_noise_refuses_what_it_cannot_interpolate_naming_the_argument():
    """Raw TypeError / AttributeError / RuntimeError escaped for a string, None, a numpy noise or
    an integer tensor; NaN gave NaN noise, a (2, 2) tensor four noises and antipodal noises a
    zero noise halfway (every other frame +a or -a: a hard cut), all silently."""
    import numpy as np
    import pytest
    import torch

    from latentlab.errors import ArgumentError
    from latentlab.render import slerp_noise

    a, b = _noises()
    for t in ("0.5", None, float("nan"), torch.tensor([0.2, float("inf")]), torch.rand(2, 2), [[0.1, 0.2]], ["x"], 1j):
        with pytest.raises(ArgumentError, match=r"^t must be a finite number or a 1-D"):
            slerp_noise(a, b, t)
    with pytest.raises(ArgumentError, match="a as a float torch tensor"):
        slerp_noise(a.numpy(), b, 0.5)
    with pytest.raises(ArgumentError, match="b as a float torch tensor"):
        slerp_noise(a, torch.ones(a.shape, dtype=torch.int64), 0.5)
    with pytest.raises(ArgumentError, match="antipodal"):
        slerp_noise(a, -a, 0.5)
    with pytest.raises(ArgumentError, match="antipodal"):
        slerp_noise(a, -2.0 * a, np.array([0.25, 0.75]))


def test_slerp_noise_still_takes_what_it_took():
    """Kept: floats, 0-d and 1-d tensors, exact endpoints, parallel and zero noises."""
    import torch

    from latentlab.render import slerp_noise

    a, b = _noises()
    assert torch.equal(slerp_noise(a, b, 0.0), a) and torch.equal(slerp_noise(a, b, 1), b)
    assert slerp_noise(a, b, torch.tensor(0.5)).shape == a.shape
    assert slerp_noise(a, b, torch.linspace(0, 1, 4)).shape == (4, *a.shape)
    torch.testing.assert_close(slerp_noise(a, 3.0 * a, 0.5), 2.0 * a)
    assert torch.isfinite(slerp_noise(torch.zeros_like(a), b, 0.5)).all()


# -- make_noise / frame_seeds (docs/api.md: `from latentlab.render import make_noise`) -----------


def test_make_noise_and_frame_seeds_check_seeds_as_render_does():
    """render() refuses seed=1.5 (check_seed); make_noise took seeds=[1.5] as seed 1 and
    frame_seeds(3, 1.5, ...) gave [1, 1, 1], silently. A string, None, a bare int or an empty
    list of seeds, a negative shape and a negative frame count raised raw errors (or gave [])."""
    import pytest
    import torch

    from latentlab.errors import ArgumentError
    from latentlab.render import frame_seeds, make_noise

    for seeds in ([1.5], [None], [2**64], [True]):
        with pytest.raises(ArgumentError, match=r"seeds\[\.\.\.\] must be an integer"):
            make_noise((4,), seeds)
    for seeds in ("ab", 3, None):
        with pytest.raises(ArgumentError, match="seeds must be a list of seeds"):
            make_noise((4,), seeds)
    with pytest.raises(ArgumentError, match="seeds is empty"):
        make_noise((4,), [])
    with pytest.raises(ArgumentError, match="shape must be a tuple of sizes"):
        make_noise((-1, 2), [0])
    with pytest.raises(ArgumentError, match="seed must be an integer"):
        frame_seeds(3, 1.5, "shared")
    for n in (-1, "3", 2.0):
        with pytest.raises(ArgumentError, match="num_frames must be an integer >= 0"):
            frame_seeds(n, 0, "per-frame")
    # kept: what the render loop and the tests pass
    assert torch.equal(make_noise((2, 3), [5, 6, 5])[2], make_noise((2, 3), (s for s in [5]))[0])
    assert torch.equal(make_noise((3,), torch.tensor([1, 2])), make_noise((3,), [1, 2]))  # a tensor of seeds
    assert frame_seeds(3, 10, "per-frame") == [10, 11, 12] and frame_seeds(0, 10, "shared") == []


def test_folder_lock_refuses_what_is_not_a_folder_path(tmp_path, monkeypatch):
    """docs/api.md shows ``from latentlab.render import make_noise, folder_lock``: None or a
    number raised a bare TypeError, and "" took the lock of the working directory (writing
    .latentlab.lock there), where render(out_dir="") refuses the empty name."""
    import pytest

    from latentlab.errors import ArgumentError
    from latentlab.render import LOCK_FILE, folder_lock

    monkeypatch.chdir(tmp_path)
    for bad in (None, 5, "", b"renders"):
        with pytest.raises(ArgumentError, match="must be a folder path"):
            with folder_lock(bad):
                pass
    assert list(tmp_path.iterdir()) == []
    with folder_lock(tmp_path / "r"):  # kept: a path is locked, and the lock removed on release
        assert (tmp_path / "r" / LOCK_FILE).exists()
    assert not (tmp_path / "r").exists()


def test_resize_frames_checks_frames_and_size_as_write_video_does():
    """latentlab.jobs.resize_frames is in the module's __all__ (docs/api.md documents the module):
    one (H, W, 3) image was resized as H frames one row high, without a word; size=True gave
    1 x 1 frames; size=0 and size="16" raised Pillow's raw ValueError / TypeError."""
    import numpy as np
    import pytest
    import torch

    from latentlab.errors import ArgumentError
    from latentlab.jobs import resize_frames

    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ArgumentError, match=r"frames has shape \(8, 8, 3\)"):
        resize_frames(image, 4)
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    for size in (True, 0, -3, "16", 4.5, 10**6):
        with pytest.raises(ArgumentError, match=r"size must be None or an integer in \[1, 16384\]"):
            resize_frames(frames, size)
    # kept: uint8 arrays (the same object when already that size), None; and what write_video takes
    assert resize_frames(frames, 8) is frames and resize_frames(frames, None) is frames
    assert resize_frames(frames, np.int64(4)).shape == (2, 4, 4, 3)
    assert resize_frames([image, image], 4).shape == (2, 4, 4, 3)
    assert resize_frames(torch.zeros(2, 8, 8, 3, dtype=torch.uint8), 4).dtype == np.uint8


def test_fine_pacing_settings_names_a_trajectory_it_cannot_read():
    """docs/quality.md points to ll.pacing.fine_pacing_settings (the pacing = "fine" recipe): given
    embeddings or None instead of a Trajectory it raised a raw AttributeError ('segments')."""
    import pytest
    import torch

    from latentlab.errors import ArgumentError
    from latentlab.pacing import fine_pacing_settings
    from latentlab.trajectory import Segment, Trajectory

    for bad in (None, torch.eye(3)):
        with pytest.raises(ArgumentError, match="trajectory must be a latentlab Trajectory"):
            fine_pacing_settings(bad)
    # kept: the recipe of docs/quality.md for 12 moving frames
    got = fine_pacing_settings(Trajectory(torch.eye(2), [Segment(12)]))
    assert got == {"coarse": 12, "passes": 3, "tol": 0.1, "max_samples": 39, "min_width": 0.001, "relax": 6}


def test_jobs_helpers_name_a_spec_they_were_not_given():
    """default_out_dir, keyframe_noise and pace_spec are in latentlab.jobs.__all__ (docs/api.md
    documents the module) and take a Spec: a dict or a spec file's path raised a raw
    AttributeError ('dict' object has no attribute 'out_dir' / 'fingerprint' ...)."""
    import pytest

    from latentlab.errors import ArgumentError
    from latentlab.jobs import default_out_dir, keyframe_noise, pace_spec
    from latentlab.spec import load_spec

    d = {"keyframes": [{"text": "a red circle"}, {"text": "a blue square"}], "preset": "tiny", "name": "x"}
    for call in (lambda s: default_out_dir(s), lambda s: keyframe_noise(s, None, None),
                 lambda s: pace_spec(s, None, None, None)):  # fmt: skip
        for bad in (d, "morph.toml"):
            with pytest.raises(ArgumentError, match=r"takes a Spec, got (dict|str)\. Fix: pass ll\.load_spec"):
                call(bad)
    assert default_out_dir(load_spec(d)).as_posix() == "renders/x"  # kept


# -- render: keyframe noises slerp_noise refuses ------------------------------------------------


def _path(K: int = 3):
    import latentlab as ll

    torch.manual_seed(0)
    return ll.Trajectory(torch.nn.functional.normalize(torch.randn(K, 8), dim=-1), frames=3 * K)


def test_antipodal_keyframe_noises_are_refused_before_any_frame_naming_keyframe_noise(tmp_path):
    """slerp_noise now refuses antipodal noises (b = -a); render(noise="inverted") with such a
    pair in ``keyframe_noise`` reached that refusal only at the batch that crossed them, after
    the manifest and the earlier frames were written, and the error named slerp_noise's ``a``
    and ``b`` and offered "other seeds" (this mode has none). Now ``keyframe_noise`` is refused
    up front, naming its two rows."""
    from latentlab.errors import ArgumentError
    from latentlab.render import render

    dec = FakeDecoder()
    torch.manual_seed(1)
    kn = torch.randn(3, 1, 8, 8)
    kn[2] = -kn[1]
    with pytest.raises(ArgumentError, match=r"keyframe_noise\[1\] and keyframe_noise\[2\] are antipodal"):
        render(_path(), dec, out_dir=tmp_path / "r", noise="inverted", keyframe_noise=kn, batch_size=2, progress=False)
    assert dec.calls == [] and not (tmp_path / "r").exists()


@settings(derandomize=True, max_examples=15, deadline=None)
@given(st.integers(2, 4), st.integers(0, 2**31 - 1), st.sampled_from([0.0, 1.0, -0.5]))
def test_keyframe_noises_that_are_not_antipodal_render_as_slerp_noise_draws_them(K, seed, scale):
    """Guard (passes on both): parallel, zero and random keyframe noises are accepted, and
    path_noise still gives each keyframe its own noise at its end of a segment."""
    from latentlab.render import keyframe_noise_for, path_noise

    g = torch.Generator().manual_seed(seed)
    kn = torch.randn(K, 1, 4, 4, generator=g)
    kn[-1] = kn[0] * scale if K > 2 else kn[-1]  # a zero noise, or one parallel (not adjacent-antipodal) to the first
    got = keyframe_noise_for(K, (1, 4, 4), keyframe_noise=kn)
    x = path_noise([(i, t) for i in range(K - 1) for t in (0.0, 0.5, 1.0)], got)
    assert torch.isfinite(x).all()
    for i in range(K - 1):
        assert torch.equal(x[3 * i], kn[i]) and torch.equal(x[3 * i + 2], kn[i + 1])


@settings(derandomize=True, max_examples=25, deadline=None)
@given(st.lists(st.floats(0.001, 0.999), min_size=1, max_size=3))
def test_slerp_noise_reads_a_python_float_t_in_float64_as_before(ts):
    """slerp_noise (and path_noise, which hands it ``float(t)``) read a Python float ``t`` as
    float64; the change that let it read lists turned it into a float32 tensor first, so about a
    quarter of every in-between noise's values moved by a bit: the "slerp" and "inverted" noises
    of a render resumed across the upgrade were not those it had started with. A float, a list
    and a float64 tensor of the same parameters give the very same noise again."""
    from latentlab.render import path_noise, slerp_noise

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 3, 16, 16, generator=g)
    ref = slerp_noise(a, b, torch.tensor(ts, dtype=torch.float64))
    assert torch.equal(slerp_noise(a, b, ts), ref)
    assert all(torch.equal(slerp_noise(a, b, t), ref[i]) for i, t in enumerate(ts))
    assert torch.equal(path_noise([(0, t) for t in ts], torch.stack([a, b])), ref)
