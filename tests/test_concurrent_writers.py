"""Two renders, builds or cache writers at once, and locks (folder_lock,
EmbeddingCache, build_index). Deterministic: barriers, pre-made files and patched calls, no sleeps."""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import subprocess
import sys
import threading
import time
import warnings

import pytest
import torch
from conftest import twemoji_cache

render_mod = importlib.import_module("latentlab.render")  # (latentlab.render is also the function)


def test_folder_lock_on_a_file_system_without_file_locks_warns_and_goes_on(tmp_path, monkeypatch):
    """An NFS mount without its lock service answers flock with ENOLCK ("No locks available"):
    folder_lock raised that raw OSError (no folder named, no fix), and left the lock file and
    the folder it had made. docs/concepts.md says a network file system may not honour the lock:
    the render goes on, with a warning naming the folder, and sweeps only the temporary files
    an hour old (another render may be writing the others)."""
    fcntl = pytest.importorskip("fcntl")
    from latentlab.errors import ArgumentError
    from latentlab.render import LOCK_FILE, folder_lock

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    out = tmp_path / "nfs" / "r"
    refused: list[str] = []

    def second_thread() -> None:
        try:
            with folder_lock(out):
                pass
        except ArgumentError as e:
            refused.append(str(e))

    with pytest.warns(RuntimeWarning, match="cannot lock files") as rec:
        with folder_lock(out):
            assert (out / LOCK_FILE).is_file()
            t = threading.Thread(target=second_thread)
            t.start()
            t.join(10)
    assert refused and "another thread of this process" in refused[0]  # (threads are still told apart)
    assert str(out) in str(rec[0].message) and "No locks available" in str(rec[0].message)
    assert not (tmp_path / "nfs").exists()  # released: lock file and the folders it made are gone
    out.mkdir(parents=True)
    old, new = out / ".frame_00000.png.0123abcd.tmp.png", out / ".frame_00001.png.89abcdef.tmp.png"
    for p in (old, new):
        p.write_bytes(b"partial")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    with pytest.warns(RuntimeWarning, match="cannot lock files"):
        with folder_lock(out):
            pass
    assert not old.exists() and new.exists()  # (the other may be a live render's)


def test_a_second_render_into_a_locked_folder_is_refused_before_touching_it(tmp_path, fake_decoder):
    """A render that finds the folder held by another process is refused, naming the folder and
    the holder's process, and leaves the holder's frames and live temporary files as they are
    (the temporary-file sweep runs only once the lock is taken)."""
    import latentlab as ll
    from latentlab.errors import ArgumentError

    pytest.importorskip("fcntl")
    out = tmp_path / "r"
    out.mkdir()
    live = [out / ".frame_00002.png.0badc0de.tmp.png", out / "frame_00000.png"]
    z = torch.nn.functional.normalize(torch.randn(3, fake_decoder.dim), dim=-1)
    holder = subprocess.Popen(  # another render's lock, as folder_lock takes it (without importing latentlab: fast)
        [sys.executable, "-c", "import fcntl, os, sys\n"
         f"fd = os.open({str(out / render_mod.LOCK_FILE)!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, f'{os.getpid()}\\n'.encode()); print('held', flush=True)\n"
         "sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    pid = holder.pid
    try:
        assert holder.stdout.readline().strip() == "held"
        for p in live:  # the other render's frame and the picture it is writing now
            p.write_bytes(b"the other render's")
        with pytest.raises(ArgumentError, match=f"process {pid}") as exc:
            ll.render(z, fake_decoder, out_dir=out)
        assert str(out) in str(exc.value) and "another folder" in str(exc.value)
        assert all(p.read_bytes() == b"the other render's" for p in live)
        assert (out / render_mod.LOCK_FILE).read_text() == f"{pid}\n"
    finally:
        holder.communicate("")


def test_a_render_refused_by_another_threads_lock_keeps_its_frames(tmp_path, fake_decoder):
    """Two threads render into one folder: the second, started while the first holds the lock
    (an Event, not a sleep), is refused ("another thread of this process") and the first
    finishes whole."""
    import latentlab as ll
    from latentlab.errors import ArgumentError

    out = tmp_path / "r"
    z = torch.nn.functional.normalize(torch.randn(4, fake_decoder.dim), dim=-1)
    inside, go_on = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        def cb(info):
            inside.set()
            assert go_on.wait(10)

        try:
            ll.render(z, fake_decoder, out_dir=out, batch_size=1, callback=cb, progress=False)
        except BaseException as e:  # pragma: no cover (reported below)
            errors.append(e)

    t = threading.Thread(target=first)
    t.start()
    try:
        assert inside.wait(10)
        with pytest.raises(ArgumentError, match="another thread of this process"):
            ll.render(z, fake_decoder, out_dir=out, batch_size=1, progress=False)
    finally:
        go_on.set()
        t.join(10)
    assert not errors
    assert sorted(p.name for p in out.glob("frame_*.png")) == [f"frame_{i:05d}.png" for i in range(4)]
    assert not (out / render_mod.LOCK_FILE).exists()


def test_a_killed_renders_lock_file_is_taken_over(tmp_path, fake_decoder):
    """A render killed outright (SIGKILL) leaves .latentlab.lock with its pid, but no lock: the
    next render takes the folder over, writes its own pid there meanwhile, and removes the file."""
    import latentlab as ll

    out = tmp_path / "r"
    out.mkdir()
    (out / render_mod.LOCK_FILE).write_text("999999999\n")
    seen = []
    z = torch.nn.functional.normalize(torch.randn(2, fake_decoder.dim), dim=-1)
    ll.render(z, fake_decoder, out_dir=out, progress=False,
              callback=lambda info: seen.append((out / render_mod.LOCK_FILE).read_text()))  # fmt: skip
    assert seen and all(s == f"{os.getpid()}\n" for s in seen)
    assert not (out / render_mod.LOCK_FILE).exists()


def test_two_builds_of_one_size_at_once_redo_a_picture_of_another_size(tmp_path, monkeypatch):
    """The same `mini data build --size 24` started twice (two terminals) after a build at 16 px:
    both found the 16 px picture, both removed it, and the second removal stopped that build
    with a raw FileNotFoundError. A barrier makes both look before either acts; the picture is
    now replaced whole (never removed first), and both builds finish with 24 px pictures."""
    from latentlab.mini import data

    twemoji_cache(tmp_path, n=1)
    data.build_index(tmp_path, ["twemoji"], size=16, verbose=False)
    real, real_normalise = data._png_size, data.normalise_image
    both_looked, both_drawing = threading.Barrier(2), threading.Barrier(2)

    def looked_at_once(path):
        size = real(path)
        both_looked.wait(10)
        return size

    def drawn_at_once(*a, **k):  # both have acted on what they saw before either writes its picture
        with contextlib.suppress(threading.BrokenBarrierError):  # (the other build stopped: this one goes on)
            both_drawing.wait(5)
        return real_normalise(*a, **k)

    monkeypatch.setattr(data, "_png_size", looked_at_once)
    monkeypatch.setattr(data, "normalise_image", drawn_at_once)
    errors: list[BaseException] = []

    def build() -> None:
        try:
            data.build_index(tmp_path, ["twemoji"], size=24, verbose=False)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    pictures = list((tmp_path / "images" / "twemoji").iterdir())
    assert len(pictures) == 1 and real(pictures[0]) == (24, 24)
    assert len((tmp_path / "index.jsonl").read_text().splitlines()) == 1


def test_a_picture_of_another_size_whose_source_broke_is_removed(tmp_path, monkeypatch):
    """(Kept as it was: a picture normalised at another size whose source can no longer be read
    is removed, not left behind at the old size.)"""
    from latentlab.mini import data

    twemoji_cache(tmp_path, n=2)
    data.build_index(tmp_path, ["twemoji"], size=16, verbose=False)
    broken = next((tmp_path / "raw" / "twemoji").rglob("1f600.png"))
    broken.write_bytes(b"not a png")
    data.build_index(tmp_path, ["twemoji"], size=24, verbose=False)
    assert sorted(p.name for p in (tmp_path / "images" / "twemoji").iterdir()) == ["1f4f1.png"]


def test_two_embedding_caches_write_one_entry_at_once(tmp_path, monkeypatch):
    """Two writers of one key at once (two processes sharing a cache folder): both writes land
    whole under their own temporary names, the entry reads back, no temporary file is left."""
    import numpy as np

    from latentlab.encoders import EmbeddingCache

    a, b = EmbeddingCache(tmp_path), EmbeddingCache(tmp_path)
    key = EmbeddingCache.make_key("m", "text", "a cat")
    v = torch.nn.functional.normalize(torch.arange(1.0, 9.0), dim=0)
    both_writing = threading.Barrier(2)
    real_save = np.save

    def save_at_once(f, arr, **kw):
        both_writing.wait(10)  # both temporary files are open before either is written
        real_save(f, arr, **kw)

    monkeypatch.setattr(np, "save", save_at_once)
    errors: list[BaseException] = []

    def put(c) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                c.put(key, v)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=put, args=(c,)) for c in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    assert torch.equal(a.get(key, dim=8), v) and len(a) == 1
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [f"{key}.npy"]


def test_a_lock_held_elsewhere_under_this_pid_is_not_called_another_thread(tmp_path):
    """Two containers sharing a volume both run their render as pid 1 (or two machines on a
    network file system have the same pid): the lock file then holds this process's own pid,
    and the refusal said "another thread of this process", sending the user to look for a
    thread that does not exist. Only a folder a thread of this process holds is called so."""
    pytest.importorskip("fcntl")
    from latentlab.errors import ArgumentError
    from latentlab.render import LOCK_FILE, folder_lock

    out = tmp_path / "r"
    out.mkdir()
    holder = subprocess.Popen(  # holds the lock, and writes our pid into the file, as a namesake elsewhere would
        [sys.executable, "-c", "import fcntl, os, sys\n"
         f"fd = os.open({str(out / LOCK_FILE)!r}, os.O_RDWR | os.O_CREAT)\n"
         f"fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'{os.getpid()}\\n'); print('held', flush=True)\n"
         "sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ArgumentError, match=rf"another render \(process {os.getpid()}\)"):
            with folder_lock(out):
                pass
    finally:
        holder.communicate("")
