"""folder_lock where the file system cannot lock files (threads of one process still told apart,
released whole), and what docs/spec.md says is refused before loading. Deterministic: patched
calls and events, no sleeps."""

from __future__ import annotations

import dataclasses
import errno
import importlib
import threading
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

render_mod = importlib.import_module("latentlab.render")  # (latentlab.render is also the function)


class _SpyGuard:
    """render._held_guard, telling ``waiting`` when a thread other than ``main`` asks for it (so
    that a test goes on once the other thread has either finished or is held off by the guard)."""

    def __init__(self, main: int, waiting: threading.Event) -> None:
        self.lock, self.main, self.waiting = threading.Lock(), main, waiting

    def acquire(self, *a, **k) -> bool:
        if threading.get_ident() != self.main:
            self.waiting.set()
        return self.lock.acquire(*a, **k)

    def release(self) -> None:
        self.lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def test_without_file_locks_two_threads_starting_at_once_are_not_both_let_in(tmp_path, monkeypatch, no_file_locks):
    """Where files cannot be locked, folder_lock still refuses a second thread of this process
    (``_held_in_process``), but checked the set and added to it in two steps with file work
    between them (writing the pid, sweeping temporaries): a thread that started in between
    found the folder free too, and both rendered into it."""
    from latentlab.errors import ArgumentError

    out = tmp_path / "r"
    sweep = render_mod._atomic.remove_temps
    second: list[str] = []
    started: list[threading.Thread] = []
    settled = threading.Event()  # the second thread finished, or waits for the first
    monkeypatch.setattr(render_mod, "_held_guard", _SpyGuard(threading.get_ident(), settled), raising=False)

    def other_thread() -> None:
        try:
            with render_mod.folder_lock(out):
                second.append("let in")
        except ArgumentError as e:
            second.append(str(e))
        settled.set()

    def sweep_while_another_thread_starts(folder, *a, **k):
        if not started:  # the first thread, between its check and its add: a second one starts now
            t = threading.Thread(target=other_thread)
            started.append(t)
            t.start()
            assert settled.wait(10)
        return sweep(folder, *a, **k)

    monkeypatch.setattr(render_mod._atomic, "remove_temps", sweep_while_another_thread_starts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with render_mod.folder_lock(out):
            started[0].join(10)
    assert len(second) == 1 and "another thread of this process" in second[0], second
    assert not render_mod._held_in_process


def test_without_file_locks_a_thread_let_in_as_another_releases_keeps_its_folder(tmp_path, monkeypatch, no_file_locks):
    """The releasing thread took its folder off ``_held_in_process`` first, then removed the lock
    file and the folders it had made: a thread let in meanwhile (no flock to stop it) had its lock
    file and its new render folder removed under it."""
    from latentlab.errors import ArgumentError

    out = tmp_path / "nfs" / "r"
    lock = out / render_mod.LOCK_FILE
    real_unlink = type(lock).unlink
    main = threading.get_ident()
    asked, settled, go_on = threading.Event(), threading.Event(), threading.Event()
    monkeypatch.setattr(render_mod, "_held_guard", _SpyGuard(main, asked), raising=False)
    second: list[str] = []
    threads: list[threading.Thread] = []

    def other_thread() -> None:
        try:
            with render_mod.folder_lock(out):
                second.append("let in")
                settled.set()
                asked.set()
                assert go_on.wait(10)
        except ArgumentError as e:
            second.append(str(e))
        settled.set()
        asked.set()

    def unlink(self, *a, **k):
        if self == lock and threading.get_ident() == main and not threads:  # the first thread's release
            threads.append(threading.Thread(target=other_thread))
            threads[0].start()
            assert asked.wait(10)  # (inside, refused, or held off by the guard)
        return real_unlink(self, *a, **k)

    monkeypatch.setattr(type(lock), "unlink", unlink)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            with render_mod.folder_lock(out):
                pass
            assert settled.wait(10)
            still_there = out.is_dir()
        finally:
            go_on.set()
            for t in threads:
                t.join(10)
    # let in once the first had gone, its folder there; never let in while the first removed it
    assert second == ["let in"] and still_there, (second, still_there)
    assert not render_mod._held_in_process


def test_without_file_locks_a_warning_raised_as_an_error_leaves_no_lock_file_nor_folder(tmp_path, no_file_locks):
    """Under warnings as errors (``-W error``, pytest's ``filterwarnings = error``), the warning
    that the folder cannot be locked stopped folder_lock with the lock file and the folders it
    had made left behind, as the raw OSError it replaced did."""
    out = tmp_path / "nfs" / "r"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(RuntimeWarning, match="cannot lock files"):
            with render_mod.folder_lock(out):
                pytest.fail("the block ran")  # pragma: no cover
    assert not (tmp_path / "nfs").exists()
    assert not render_mod._held_in_process


def test_spec_md_says_which_presets_are_asked_only_once_loaded():
    """docs/spec.md said every decoder but a builder of the user's tells what it cannot do before
    loading, and that "a preset whose decoder samples otherwise" is refused before any model loads;
    a Stable unCLIP spec with ``"scheduler": None`` keeps its pipeline's own sampler, which only the
    loaded pipeline tells (StableUnCLIPDecoder.supports_inversion: whether it is DDIM)."""
    from pathlib import Path

    import latentlab as ll
    from latentlab import presets

    p = dataclasses.replace(presets.get_preset("tiny"), name="tiny-own-sampler",
                            decoder={"kind": "stable_unclip_tiny", "scheduler": None})  # fmt: skip
    assert presets.decoder_can(p, "invert") is None  # (not known before loading: not refused then)
    doc = " ".join((Path(ll.__file__).parents[1] / "docs" / "spec.md").read_text(encoding="utf-8").split())
    assert 'of a Stable unCLIP preset whose decoder spec sets `"scheduler": None`' in doc
    assert "a preset whose decoder samples otherwise is refused before any model loads" not in doc


@settings(derandomize=True, max_examples=5, deadline=None)
@given(n=st.integers(2, 5), nested=st.booleans())
def test_without_file_locks_one_thread_at_a_time_holds_a_folder(tmp_path_factory, n, nested):
    """docs/concepts.md: where files cannot be locked a render warns and goes on; threads of this
    process are still told apart: of threads entering one folder at once, one at a time is inside,
    the others are refused naming another thread, and no lock file is left behind."""
    fcntl = pytest.importorskip("fcntl")
    from latentlab.errors import ArgumentError

    out = tmp_path_factory.mktemp("nfs") / "a" / "r"
    inside: list[int] = []
    most, refused, errors = [0], [], []
    start = threading.Barrier(n)

    def worker() -> None:
        try:
            start.wait(10)
            with render_mod.folder_lock(out):
                inside.append(1)
                most[0] = max(most[0], len(inside))
                if nested:
                    with render_mod.folder_lock(out):  # re-entrant in one thread, as render_spec around render
                        pass
                inside.pop()
        except ArgumentError as e:
            refused.append(str(e))
        except BaseException as e:  # pragma: no cover (reported below)
            errors.append(e)

    real = fcntl.flock
    fcntl.flock = lambda fd, op: (_ for _ in ()).throw(OSError(errno.ENOLCK, "No locks available"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            threads = [threading.Thread(target=worker) for _ in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)
    finally:
        fcntl.flock = real
    assert not errors and most[0] == 1
    assert all("another thread of this process" in r or "another render" in r for r in refused)
    assert not render_mod._held_in_process and not (out / render_mod.LOCK_FILE).exists()


def test_without_file_locks_a_render_warns_once(tmp_path, no_file_locks, fake_decoder):
    """render_spec holds the folder's lock around render(), which takes it again (re-entrant): the
    warning that the folder cannot be locked is said once per render, naming the folder."""
    import torch

    import latentlab as ll

    out = tmp_path / "r"
    z = torch.nn.functional.normalize(torch.randn(3, fake_decoder.dim), dim=-1)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        with render_mod.folder_lock(out, "out_dir (CLI: --out-dir)"):  # as render_spec
            ll.render(z, fake_decoder, out_dir=out, batch_size=1, progress=False)
    said = [w for w in rec if issubclass(w.category, RuntimeWarning) and "cannot lock files" in str(w.message)]
    assert len(said) == 1 and str(out) in str(said[0].message)
    assert sorted(p.name for p in out.glob("frame_*.png")) == [f"frame_{i:05d}.png" for i in range(3)]
    assert not (out / render_mod.LOCK_FILE).exists() and not render_mod._held_in_process
