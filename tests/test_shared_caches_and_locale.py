"""Shared and read-only data caches, UTF-8 JSON whatever the locale, -OO benchmarks, the webp warning's place."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentlab.errors import ArgumentError


# ----------------------------------------------------------------------------------
# 1. the data-build size lock in a shared or read-only cache
# ----------------------------------------------------------------------------------
def _as_another_users_lock_files(monkeypatch, data) -> None:
    """What the kernel does for this process with lock files another user made (mode 0644): they
    open read-only, never for writing (tests run as root, whom no mode refuses)."""
    real_open = os.open

    def foreign(path, flags, *a, **k):
        if os.path.basename(os.fspath(path)).startswith(".build-size-") and os.path.exists(path) \
                and flags & (os.O_WRONLY | os.O_RDWR):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(data.os, "open", foreign)


def test_a_data_build_in_a_cache_shared_with_another_user_goes_on(tmp_path, monkeypatch):
    """881e3c0's lock file was opened for writing: in a cache shared by a group (a folder they may all
    write), the lock file another user's build left (0644) raised a raw PermissionError, so no build
    there could run again. flock needs no write access: it is opened read-only, and still refuses a
    build at another size while theirs runs."""
    import fcntl

    from conftest import twemoji_cache

    from latentlab.mini import data

    twemoji_cache(tmp_path, n=2)
    for size in (16, 24):  # their earlier builds
        (tmp_path / f".build-size-{size}.lock").touch()
    _as_another_users_lock_files(monkeypatch, data)
    assert data.build_index(tmp_path, ["twemoji"], size=16, verbose=False).is_file()
    fd = os.open(tmp_path / ".build-size-24.lock", os.O_RDONLY)  # their build at 24 px, running
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        with pytest.raises(ArgumentError, match=r"at --size 24 is running"):
            data.build_index(tmp_path, ["twemoji"], size=16, verbose=False)
    finally:
        os.close(fd)


def test_a_data_build_into_a_read_only_cache_is_refused_before_any_work(tmp_path, monkeypatch):
    """A cache on a read-only file system: the new lock file could not be made, and a raw OSError
    escaped (`python -m latentlab.mini.data index` printed a traceback). Said as the cache's, with
    the fix, before any picture is read."""
    from conftest import twemoji_cache

    from latentlab.mini import data

    twemoji_cache(tmp_path, n=2)
    real_open = os.open

    def read_only(path, flags, *a, **k):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(data.os, "open", read_only)
    monkeypatch.setattr(data, "normalise_image", lambda *a, **k: pytest.fail("a picture read before the refusal"))
    with pytest.raises(ArgumentError, match=r"cache_dir .* is not writable \(Read-only file system\).*--cache-dir"):
        data.build_index(tmp_path, ["twemoji"], size=16, verbose=False)


# ----------------------------------------------------------------------------------
# 2. files still read in the locale's encoding (2c293d7 fixed the emoji index's)
# ----------------------------------------------------------------------------------
@pytest.fixture
def ascii_locale(monkeypatch):
    """pathlib's text files in an ASCII locale (LC_ALL=C without UTF-8 mode), as a cp1252 Windows
    one reads UTF-8 as mojibake: where no encoding is given, ASCII."""
    import io

    real = io.text_encoding
    monkeypatch.setattr(io, "text_encoding", lambda encoding, stacklevel=2: "ascii" if encoding is None else real(encoding))


def test_word_vectors_are_read_as_utf8_whatever_the_locale(tmp_path, ascii_locale):
    """The fetched word vectors (npm's wink-embeddings JSON, UTF-8 like twemoji's emoji.json, which
    2c293d7 reads so) were read in the locale's encoding: a raw UnicodeDecodeError on its first
    non-ASCII word ("café") under LC_ALL=C."""
    import json

    from latentlab.mini import data

    src = tmp_path / "raw" / "glove" / data._GLOVE_FILE
    src.parent.mkdir(parents=True)
    vectors = {"caf\u00e9": [1.0, 0.0, 1.0, 0], "cat": [0.0, 1.0, 1.0, 1], "dog": [1.0, 1.0, 1.4, 2]}
    src.write_bytes(json.dumps({"dimensions": 2, "vectors": vectors}, ensure_ascii=False).encode("utf-8"))
    ids, vecs = data.token_word_vectors({"caf\u00e9</w>": 7, "cat</w>": 5, "dog</w>": 9, "a": 1}, tmp_path)
    assert ids.tolist() == [5, 7, 9] and vecs.shape == (3, 2)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-6)


def test_a_train_config_file_is_read_as_utf8_whatever_the_locale(tmp_path, ascii_locale):
    """``--config run.json`` (JSON is UTF-8) was read in the locale's encoding: its index path in a
    folder named "café" was refused as "not a JSON file" under LC_ALL=C (mojibake under cp1252)."""
    import json

    from latentlab.mini.train import get_config

    index = str(tmp_path / "caf\u00e9" / "index.jsonl")
    cfg_file = tmp_path / "run.json"
    cfg_file.write_bytes(json.dumps({"data": {"index": index}}, ensure_ascii=False).encode("utf-8"))
    assert get_config(str(cfg_file)).data.index == index


# ----------------------------------------------------------------------------------
# 3. write_video's webp warning (881e3c0) is given only for a video it writes
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [{"loop": 70000}, {"size": 0}, {"frames": np.full((2, 4, 4, 3), np.nan)}])
def test_a_refused_fast_webp_is_refused_not_warned_of(tmp_path, bad):
    """The warning of a webp above 90.9 fps came before write_video's other checks: a call they refuse
    (a loop count a webp cannot hold, a bad size, NaN frames) first warned that the video "plays at 10
    fps" in a browser, and under ``-W error`` (or in a test that turns warnings into errors) the
    UserWarning was raised instead of the refusal naming the real mistake."""
    import warnings

    from latentlab.video import write_video

    kwargs = {"frames": np.zeros((2, 4, 4, 3), np.uint8), "fps": 100, **bad}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ArgumentError):
            write_video(path=tmp_path / "sub" / "v.webp", **kwargs)
    assert list(tmp_path.iterdir()) == []
    with pytest.warns(UserWarning, match="fps=100 webp"):  # (a video it writes is still warned of)
        assert write_video(np.zeros((2, 4, 4, 3), np.uint8), tmp_path / "ok.webp", fps=100).is_file()


# ----------------------------------------------------------------------------------
# 4. python -OO: the benchmarks' help (2c293d7 fixed the module tools')
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["upscaler", "mini_speed", "layout_expert", "inversion_steps", "train_precision"])
def test_the_benchmarks_give_their_help_under_python_OO(name, capsys):
    """``python -OO benchmarks/<name>.py --help`` raised AttributeError on ``None.split``, as the demo
    and mini tools did before 2c293d7 (which left these five)."""
    import importlib.util
    from pathlib import Path

    import latentlab

    path = Path(latentlab.__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"  # (the checkout tested)
    spec = importlib.util.spec_from_file_location(f"_bench_oo_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.__doc__ = None  # (what -OO leaves)
    with pytest.raises(SystemExit) as exc:
        module.main(["--help"])
    assert exc.value.code == 0 and "usage:" in capsys.readouterr().out


# ----------------------------------------------------------------------------------
# property kept: a Trajectory owns its Segments (f86bf6b; the docstring now says so)
# ----------------------------------------------------------------------------------
@settings(derandomize=True, max_examples=15, deadline=None)
@given(frames=st.lists(st.integers(1, 6), min_size=1, max_size=3), paced=st.booleans(), share=st.booleans())
def test_changing_the_segments_given_never_changes_the_trajectory(frames, paced, share):
    import torch

    from latentlab.trajectory import Segment, Trajectory

    segs = [Segment(n, ts=[k / n for k in range(n)] if paced else None) for n in frames]
    if share:  # one Segment listed for every segment
        segs = [segs[0]] * len(frames)
    kf = torch.nn.functional.normalize(torch.arange(1.0, 1.0 + 4 * (len(segs) + 1)).reshape(-1, 4).sin(), dim=-1)
    traj = Trajectory(kf, segs)
    before = (traj.fingerprint(), len(traj), repr(traj.segments))
    for s in segs:
        s.frames, s.hold, s.easing = s.frames + 2, 1, "ease-in"
        if s.ts is not None:
            s.ts.append(0.99)
    assert (traj.fingerprint(), len(traj), repr(traj.segments)) == before
    traj.segments[0].hold = 2  # its own Segments are what change it
    assert len(traj) == before[1] + 2
