"""Session 38 leftovers: views match their array, foreign or cut-short lock files, spec temporaries, data sizes."""

from __future__ import annotations

import errno
import importlib
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentlab.errors import ArgumentError

render_mod = importlib.import_module("latentlab.render")  # (latentlab.render is also the function)


# ----------------------------------------------------------------------------------
# 1. a view's PNG always matches its array
# ----------------------------------------------------------------------------------
def test_image_view_edited_after_display_cannot_show_a_stale_png():
    """The PNG is encoded once; a view's ``array`` edited in place after it was displayed was
    shown stale (the old PNG) while ``array`` and ``.save`` had the new pixels. The view keeps its
    own read-only copy: the caller's array stays theirs to edit, and writing to ``view.array`` raises."""
    import io

    from PIL import Image

    from latentlab.notebook import ImageView

    img = np.zeros((4, 5, 3), np.uint8)
    view = ImageView(img)
    first = view._repr_png_()
    img[:] = 255  # the caller's own array: still writable, and the view is not changed by it
    assert view.array.max() == 0
    with pytest.raises(ValueError, match="read-only"):
        view.array[:] = 255
    shown = np.asarray(Image.open(io.BytesIO(view._repr_png_())).convert("RGB"))
    assert np.array_equal(shown, view.array) and view._repr_png_() == first


def test_image_view_of_a_tensor_is_not_changed_by_editing_the_tensor():
    import torch

    from latentlab.notebook import ImageView

    t = torch.zeros(3, 3, 3, dtype=torch.uint8)
    view = ImageView(t)
    view._repr_png_()
    t += 7  # (numpy shares a CPU tensor's memory)
    assert view.array.max() == 0 and not view.array.flags.writeable


@settings(derandomize=True, max_examples=15, deadline=None)
@given(h=st.integers(1, 6), w=st.integers(1, 6), v=st.integers(0, 255), as_float=st.booleans())
def test_image_view_png_matches_its_array(h, w, v, as_float):
    """The PNG a view shows is its ``array``, whatever the input's dtype (property, both versions)."""
    import io

    from PIL import Image

    from latentlab.notebook import ImageView

    img = np.full((h, w, 3), v, np.uint8)
    view = ImageView(img / 255.0 if as_float else img)
    shown = np.asarray(Image.open(io.BytesIO(view._repr_png_())).convert("RGB"))
    assert np.array_equal(shown, view.array)


# ----------------------------------------------------------------------------------
# 2./3. folder_lock: another user's lock file; an empty folder left by a failed lock file
# ----------------------------------------------------------------------------------
def _failing_lock_open(monkeypatch, err: int) -> None:
    real_open = os.open

    def fake_open(path, flags, *a, **k):
        if os.fspath(path).endswith(render_mod.LOCK_FILE):
            raise OSError(err, os.strerror(err))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(render_mod.os, "open", fake_open)


def test_folder_lock_names_another_users_lock_file(tmp_path, monkeypatch):
    """A stale lock file owned by another user (this process cannot open it for writing) in a
    writable shared folder was reported as "not writable" of the folder; it is named, with the fix."""
    out = tmp_path / "shared"
    out.mkdir()
    (out / render_mod.LOCK_FILE).write_text("12345\n")
    _failing_lock_open(monkeypatch, errno.EACCES)  # (tests run as root: os.open is what another owner refuses)
    with pytest.raises(ArgumentError) as e, render_mod.folder_lock(out):
        pytest.fail("let in")
    msg = str(e.value)
    assert str(out / render_mod.LOCK_FILE) in msg and "cannot open for writing" in msg
    assert "remove it" in msg and "owner" in msg and "not writable" not in msg


def test_folder_lock_on_an_unwritable_folder_still_says_not_writable(tmp_path, monkeypatch):
    out = tmp_path / "ro"
    out.mkdir()
    _failing_lock_open(monkeypatch, errno.EACCES)  # no lock file there: the folder is what refuses
    with pytest.raises(ArgumentError, match="is not writable"), render_mod.folder_lock(out):
        pytest.fail("let in")


@pytest.mark.parametrize("depth", [1, 3])
def test_folder_lock_full_disk_removes_the_empty_folders_it_made(tmp_path, monkeypatch, depth):
    """A lock file that cannot be created (a full disk: ENOSPC) left the empty out folder (and
    the parents) this call had made."""
    out = tmp_path.joinpath(*[f"d{i}" for i in range(depth)])
    _failing_lock_open(monkeypatch, errno.ENOSPC)
    with pytest.raises(ArgumentError, match="No space left"), render_mod.folder_lock(out):
        pytest.fail("let in")
    assert list(tmp_path.iterdir()) == []


def test_folder_lock_full_disk_keeps_a_folder_that_was_there(tmp_path, monkeypatch):
    out = tmp_path / "mine"
    out.mkdir()
    _failing_lock_open(monkeypatch, errno.ENOSPC)
    with pytest.raises(ArgumentError), render_mod.folder_lock(out):
        pytest.fail("let in")
    assert out.is_dir()


def test_folder_lock_full_disk_on_mkdir_removes_the_parents_it_made(tmp_path, monkeypatch):
    """mkdir(parents=True) that made the parents and then failed on the last folder left them."""
    from pathlib import Path

    out = tmp_path / "a" / "b" / "c"
    real_mkdir = Path.mkdir

    def fake_mkdir(self, *a, **k):
        if self == out:  # as a full disk does: the parents made, then no room for the last one
            real_mkdir(self.parent, parents=True, exist_ok=True)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", fake_mkdir)
    with pytest.raises(ArgumentError, match="No space left"), render_mod.folder_lock(out):
        pytest.fail("let in")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------
# 4. a spec's temporary, left by a save killed mid-write, is swept
# ----------------------------------------------------------------------------------
def test_spec_save_sweeps_the_hour_old_temporaries_of_a_killed_save(tmp_path):
    """--save-spec (and Spec.save, the same writer) writes through a temporary beside the spec; a
    kill mid-write left it for good (a spec file is often outside any render folder, whose lock sweeps
    it). The next save of that spec sweeps those an hour old, as a video's are; a newer one (another
    save writing now), and another file's, are kept."""
    import time

    from latentlab import _atomic
    from latentlab.spec import load_spec

    target = tmp_path / "take1.toml"
    old = _atomic.temp_path(target)
    new = _atomic.temp_path(target)
    other = _atomic.temp_path(tmp_path / "other.toml")
    for p in (old, new, other):
        p.write_text("half")
    hour_ago = time.time() - 2 * 3600
    os.utime(old, (hour_ago, hour_ago))
    os.utime(other, (hour_ago, hour_ago))
    load_spec({"keyframes": [{"text": "a cat"}, {"text": "a dog"}]}).save(target)
    assert target.is_file() and not old.exists()
    assert new.exists() and other.exists()


# ----------------------------------------------------------------------------------
# 5. two data builds at two sizes at once
# ----------------------------------------------------------------------------------
def test_a_data_build_at_another_size_than_a_running_one_is_refused(tmp_path):
    """A build at --size 24 while one at --size 16 ran replaced its pictures one by one (and it
    replaced them back), so the cache and each index held pictures of both sizes. It is refused
    before any picture is touched; the running build is simulated by the lock it holds."""
    import fcntl

    from conftest import twemoji_cache

    from latentlab.mini import data

    twemoji_cache(tmp_path, n=2)
    data.build_index(tmp_path, ["twemoji"], size=16, verbose=False)
    pictures = sorted((tmp_path / "images" / "twemoji").iterdir())
    before = [p.read_bytes() for p in pictures]
    fd = os.open(tmp_path / ".build-size-16.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # a build at 16 px, running
        with pytest.raises(ArgumentError, match=r"--size 16 is running.*--size 24"):
            data.build_index(tmp_path, ["twemoji"], size=24, verbose=False)
        assert [p.read_bytes() for p in pictures] == before
        data.build_index(tmp_path, ["twemoji"], size=16, verbose=False)  # one at the same size goes on
    finally:
        os.close(fd)
    data.build_index(tmp_path, ["twemoji"], size=24, verbose=False)  # and once it has finished, another size
    assert all(data._png_size(p) == (24, 24) for p in pictures)


def test_two_data_builds_at_two_sizes_at_once_do_not_mix(tmp_path, monkeypatch):
    """The same with two real builds (threads): the one at 16 px is paused mid-build; the one at
    24 px started meanwhile is refused, and the first finishes with 16 px pictures only."""
    import threading

    from conftest import twemoji_cache

    from latentlab.mini import data

    twemoji_cache(tmp_path, n=2)
    real = data.normalise_image
    inside, go = threading.Event(), threading.Event()

    def paused(*a, **k):
        if threading.current_thread() is not threading.main_thread():
            inside.set()
            go.wait(10)
        return real(*a, **k)

    monkeypatch.setattr(data, "normalise_image", paused)
    errors: list[BaseException] = []

    def build16() -> None:
        try:
            data.build_index(tmp_path, ["twemoji"], size=16, verbose=False)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    t = threading.Thread(target=build16)
    t.start()
    try:
        assert inside.wait(10)
        with pytest.raises(ArgumentError, match="at --size 16 is running"):
            data.build_index(tmp_path, ["twemoji"], size=24, verbose=False)
    finally:
        go.set()
        t.join(30)
    assert not errors, errors
    assert {data._png_size(p) for p in (tmp_path / "images" / "twemoji").iterdir()} == {(16, 16)}


# ----------------------------------------------------------------------------------
# 6. a webp faster than browsers play is written, with a warning
# ----------------------------------------------------------------------------------
def test_write_video_warns_of_a_webp_too_fast_for_a_browser(tmp_path):
    """write_video took a webp up to 1000 fps without a word, while a browser plays each frame of
    10 ms or less for 100 ms (show_video refuses such a webp). It is written (offline players play
    it) with a warning that names the limit and the fix."""
    import warnings

    from latentlab.video import write_video

    frames = np.zeros((3, 4, 4, 3), np.uint8)
    frames[1] = 128
    with pytest.warns(UserWarning, match=r"fps=100 webp.*10 ms or less for 100 ms.*fps <= 90\.9"):
        out = write_video(frames, tmp_path / "fast.webp", fps=100, quality=100)
    assert out.is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # at the limit (11 ms frames), and a gif or mp4: no warning
        write_video(frames, tmp_path / "ok.webp", fps=1000 / 11, quality=100)
        write_video(frames, tmp_path / "ok.gif", fps=50)


def test_folder_lock_full_disk_writing_the_lock_file_removes_it_and_the_folder(tmp_path, monkeypatch):
    """On a full disk the lock file is usually made (a free inode) and writing its line fails: a raw
    OSError escaped, and the lock file and the folder made for it were left."""
    out = tmp_path / "new" / "r"
    real_write = os.write

    def full(fd, data):
        if data == f"{os.getpid()}\n".encode():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(render_mod.os, "write", full)
    with pytest.raises(ArgumentError, match=r"cannot be written \(No space left on device\)"), render_mod.folder_lock(out):
        pytest.fail("let in")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    with render_mod.folder_lock(out):  # nothing of it left: the folder can be taken again
        pass
