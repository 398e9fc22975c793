"""Whole-file writes (``latentlab._atomic.write_whole``: a fresh temporary
name beside the target, renamed onto it, the temporary file removed on any failure) used by
every single-file write that renames a temporary file into place, and the defects of the
hand-written copies it replaced: temporary files left behind by Ctrl-C or a full disk,
temporary names two writers shared, cache entries unreadable to others, and an export that
renamed across file systems."""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import cut_write_text, twemoji_cache, write_fault
from hypothesis import given, settings
from hypothesis import strategies as st


def _temps(d: Path) -> list[str]:
    return sorted(p.name for p in d.rglob("*") if ".tmp" in p.name)


# -- the shared helper -----------------------------------------------------------------------


def test_a_temporary_file_that_cannot_be_removed_does_not_hide_the_ctrl_c(tmp_path, monkeypatch):
    """``write_whole`` promises any failure "is raised as it was": where removing the temporary
    file failed too (a read-only remount, a network file system gone away), that OSError
    replaced the Ctrl-C, which a caller then took for a write error."""
    from latentlab.render import write_whole

    def write(tmp: Path) -> None:
        tmp.write_bytes(b"part")
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(KeyboardInterrupt):
        write_whole(tmp_path / "a.json", write)


@settings(derandomize=True, max_examples=20, deadline=None)
@given(cut=st.integers(0, 12), exc=st.sampled_from(["ctrl-c", "full disk", None]), ext=st.sampled_from(["", "png", None]))
def test_write_whole_leaves_the_old_file_or_the_new_one_and_no_temporary_file(tmp_path_factory, cut, exc, ext):
    """Property (render.write_whole's docstring): a write cut short after any number of bytes
    leaves the old file as it was and no temporary file; one that finishes leaves the new file."""
    from latentlab.render import write_whole

    d = tmp_path_factory.mktemp("ww")
    target = d / "a.json"
    target.write_bytes(b"old")

    def write(tmp: Path) -> None:
        tmp.write_bytes(b"new contents"[:cut])
        if exc is not None:
            raise write_fault(exc)

    try:
        write_whole(target, write, ext)
    except (KeyboardInterrupt, OSError) as e:
        assert exc is not None and isinstance(e, KeyboardInterrupt if exc == "ctrl-c" else OSError)
        assert target.read_bytes() == b"old"
    else:
        assert exc is None and target.read_bytes() == b"new contents"[:cut]
    assert sorted(p.name for p in d.iterdir()) == ["a.json"]


def test_the_temporary_names_are_the_shared_ones(tmp_path):
    """render.temp_path and video._temp_path are the one implementation (render's default: no extension)."""
    from latentlab import video
    from latentlab.render import temp_path

    t = tmp_path / "clip.mp4"
    assert temp_path(t).name.endswith(".tmp") and video._temp_path(t).name.endswith(".tmp.mp4")
    assert video._is_temp_name(temp_path(t).name, "clip.mp4") and video._is_temp_name(video._temp_path(t).name, "clip.mp4")
    assert temp_path(t) != temp_path(t)


# -- latentlab.encoders.EmbeddingCache -------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_embedding_cache_entries_get_the_usual_file_mode(tmp_path):
    """The cache "can be shared" by concurrent processes, but its entries were written with
    ``tempfile.mkstemp``, which creates files 0600: another user's process (a lab's shared
    cache) could read none of them, counted every entry a miss and wrote it again. Entries now
    get the mode ``open()`` gives (0666 less the umask), as every other latentlab file."""
    from latentlab.encoders import EmbeddingCache

    old = os.umask(0o022)
    try:
        cache = EmbeddingCache(tmp_path / "c")
        key = EmbeddingCache.make_key("m", "text", "a cat")
        cache.put(key, torch.ones(4) / 2)
    finally:
        os.umask(old)
    assert cache.path(key).stat().st_mode & 0o777 == 0o644
    assert _temps(tmp_path) == []


@pytest.mark.parametrize("exc", ["ctrl-c", "full disk"])
def test_an_embedding_cache_write_cut_short_leaves_nothing(tmp_path, monkeypatch, exc):
    """A full disk is a warning (the embedding is still returned), Ctrl-C is raised; neither
    leaves a temporary file or an entry behind."""
    from latentlab import encoders
    from latentlab.encoders import EmbeddingCache

    real = np.save

    def cut(f, *a, **k):
        f.write(b"\x93NUMPY")
        raise write_fault(exc)

    cache = EmbeddingCache(tmp_path / "c")
    key = EmbeddingCache.make_key("m", "text", "a cat")
    monkeypatch.setattr(encoders.np, "save", cut)
    if exc == "ctrl-c":
        with pytest.raises(KeyboardInterrupt):
            cache.put(key, torch.ones(4) / 2)
    else:
        with pytest.warns(RuntimeWarning, match="could not write to the embedding cache"):
            cache.put(key, torch.ones(4) / 2)
    monkeypatch.setattr(encoders.np, "save", real)
    assert key not in cache and _temps(tmp_path) == []


# -- latentlab.mini.data.build_index ---------------------------------------------------------


@pytest.mark.parametrize("exc", ["ctrl-c", "full disk"])
@pytest.mark.parametrize("where", ["image", "index"])
def test_build_index_cut_short_leaves_no_temporary_file(tmp_path, monkeypatch, exc, where):
    """``build_index`` wrote each normalised image to ``<uid>.tmp`` and the index to
    ``index.tmp``, fixed names: a Ctrl-C or a full disk while writing one left it beside the
    images (or the index), and two runs at once wrote the same temporary file. Now the write
    is whole or nothing, under a name of its own; the old index stays as it was."""
    from PIL import Image

    from latentlab.mini import data

    twemoji_cache(tmp_path)
    index = data.build_index(tmp_path, ["twemoji"], verbose=False)
    before = index.read_bytes()
    for p in (tmp_path / "images" / "twemoji").iterdir():
        p.unlink()  # normalised again below
    if where == "image":
        real = Image.Image.save

        def save(self, fp, *a, **k):
            if isinstance(fp, (str, os.PathLike)) and "images" in Path(fp).parts:
                Path(fp).write_bytes(b"\x89PNG partial")
                raise write_fault(exc)
            return real(self, fp, *a, **k)

        monkeypatch.setattr(Image.Image, "save", save)
    else:
        real_dumps, calls = json.dumps, []

        class Json:  # json, with a dumps that fails at the index's second row
            def __getattr__(self, name):
                return getattr(json, name)

            def dumps(self, *a, **k):
                calls.append(1)
                if len(calls) == 2:
                    raise write_fault(exc)
                return real_dumps(*a, **k)

        monkeypatch.setattr(data, "json", Json())
    with pytest.raises(KeyboardInterrupt if exc == "ctrl-c" else OSError):
        data.build_index(tmp_path, ["twemoji"], verbose=False)
    monkeypatch.undo()
    assert _temps(tmp_path) == [] and index.read_bytes() == before
    assert data.build_index(tmp_path, ["twemoji"], verbose=False).read_bytes() == before


# -- latentlab.mini.train ---------------------------------------------------------------------


@pytest.mark.parametrize("exc", ["ctrl-c", "full disk"])
def test_trains_json_and_log_writes_cut_short_leave_no_temporary_file(tmp_path, monkeypatch, exc):
    """``_write_json`` (config.json, run_config.json) and ``_trim_log`` (log.jsonl) left
    ``config.json.tmp`` / ``log.tmp`` behind when a full disk or Ctrl-C stopped them."""
    from latentlab.mini import train

    cfg, log = tmp_path / "config.json", tmp_path / "log.jsonl"
    cfg.write_text('{"old": 1}\n')
    log.write_text('{"step": 1}\n{"step": 2}\n')
    cut_write_text(monkeypatch, exc, 3)
    with pytest.raises(KeyboardInterrupt if exc == "ctrl-c" else OSError):
        train._write_json(cfg, {"new": 2})
    with pytest.raises(KeyboardInterrupt if exc == "ctrl-c" else OSError):
        train._trim_log(log, 1)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "log.jsonl"]
    assert cfg.read_text() == '{"old": 1}\n' and log.read_text() == '{"step": 1}\n{"step": 2}\n'


def test_two_writers_of_one_json_file_never_share_a_temporary_name(tmp_path, monkeypatch):
    """Two ``train`` runs of different stages into one ``--out`` both write its config.json:
    through the one name ``config.json.tmp``, the second's rename took the first's file away
    and the first failed with a raw FileNotFoundError (or renamed the other's half-written
    file into place). Here the other writer runs just before this one renames."""
    from latentlab.mini import train

    path, real, other = tmp_path / "config.json", os.replace, []

    def replace(src, dst):
        if not other:
            other.append(1)
            train._write_json(path, {"other": 1})  # another process writes the same file meanwhile
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    train._write_json(path, {"mine": 1})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"mine": 1} and [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_a_full_disk_while_the_cache_is_written_leaves_no_partial_cache(tmp_path, monkeypatch):
    """``build_cache`` left ``cache.safetensors.tmp`` (as big as the cache: hundreds of MB at
    the documented sizes) in the run folder when the disk filled while it was written."""
    import safetensors.torch
    from safetensors.torch import save_file

    from latentlab.mini.models import create_clip
    from latentlab.mini.train import build_cache, get_config

    torch.manual_seed(0)
    model, _, _ = create_clip(None)
    (tmp_path / "clip").mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "clip" / "model.safetensors"))

    def full(tensors, filename, *a, **k):
        if tmp_path not in Path(filename).parents:
            # another file (a module imported while this patch is in place keeps it for good, as
            # transformers' `from safetensors.torch import save_file` did): written as usual
            return save_file(tensors, filename, *a, **k)
        Path(filename).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(OSError, match="No space"):
        build_cache(get_config("smoke", ["cache.n_images=3", "cache.batch_size=4"]), tmp_path)
    assert _temps(tmp_path) == [] and not (tmp_path / "cache" / "cache.safetensors").exists()


# -- latentlab.mini.export ---------------------------------------------------------------------


def _export_setup(tmp_path: Path, monkeypatch):
    """A run folder and an export whose files are written by a stand-in (as test_mini_train's)."""
    from latentlab.mini import export as ex

    src = tmp_path / "run"
    (src / "prior").mkdir(parents=True)
    for f in ("config.json", "model.safetensors", "state.pt"):
        (src / "prior" / f).write_bytes(b"x")

    def write_stages(src, tmp, dst, stages, *, fp16, tol):
        (tmp / "mini_prior.json").write_bytes(b"new json")
        (tmp / "mini_prior.safetensors").write_bytes(b"new weights")
        return {"files": {"mini_prior.safetensors": {"step": 2}}}

    monkeypatch.setattr(ex, "_check_checkpoints", lambda *a: None)
    monkeypatch.setattr(ex, "_check_clip", lambda *a: None)
    monkeypatch.setattr(ex, "_write_stages", write_stages)
    return ex, src


def test_a_full_disk_while_export_writes_its_manifest_leaves_the_destination_as_it_was(tmp_path, monkeypatch):
    """docs/mini.md: "a failed export leaves the destination as it was". The manifest was
    written into ``--to`` after the new weights had been moved in: a full disk then left the new
    weights beside the old manifest, and ``manifest.json.tmp`` (a fixed name two exports into
    one folder shared). Now it is written in the temporary folder with the rest, before
    anything in ``--to`` changes, and moved in last."""
    dst = tmp_path / "w"
    ex, src = _export_setup(tmp_path, monkeypatch)
    dst.mkdir()
    old = {"mini_prior.json": b"old json", "mini_prior.safetensors": b"old weights",
           "manifest.json": json.dumps({"files": {"mini_prior.safetensors": {"step": 1}}}).encode()}  # fmt: skip
    for name, body in old.items():
        (dst / name).write_bytes(body)
    real = Path.write_text

    def full(self, text, *a, **k):
        if "manifest" in self.name:
            real(self, text[:5], *a, **k)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, text, *a, **k)

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OSError, match="No space"):
        ex.export(src, dst, stages=("prior",))
    monkeypatch.setattr(Path, "write_text", real)
    assert {p.name: p.read_bytes() for p in dst.iterdir()} == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "w"]
    manifest = ex.export(src, dst, stages=("prior",))  # and with room on the disk
    assert json.loads((dst / "manifest.json").read_text()) == manifest and manifest["total_mb"] == round(11 / 2**20, 2)
    assert (dst / "mini_prior.safetensors").read_bytes() == b"new weights"


@pytest.mark.parametrize("exc", ["full disk", "ctrl-c"])
def test_an_export_into_a_new_folder_that_fails_writing_its_manifest_leaves_no_folder(tmp_path, monkeypatch, exc):
    """docs/mini.md: "a failed export leaves the destination as it was". The manifest is now
    written in the temporary folder before anything moves, but ``--to`` was created before it:
    a full disk (or Ctrl-C) writing the manifest left a new, empty ``--to`` where there was
    none. Now ``--to`` is made only once every file is staged."""
    from conftest import write_fault

    ex, src = _export_setup(tmp_path, monkeypatch)
    dst = tmp_path / "new" / "w"
    real = Path.write_text

    def failing(self, text, *a, **k):
        if self.name == "manifest.json":
            raise write_fault(exc)
        return real(self, text, *a, **k)

    monkeypatch.setattr(Path, "write_text", failing)
    with pytest.raises(KeyboardInterrupt if exc == "ctrl-c" else OSError):
        ex.export(src, dst, stages=("prior",))
    monkeypatch.setattr(Path, "write_text", real)
    assert not dst.exists() and sorted(p.name for p in (tmp_path / "new").iterdir()) == []
    manifest = ex.export(src, dst, stages=("prior",))  # and with room on the disk
    assert json.loads((dst / "manifest.json").read_text()) == manifest
    assert sorted(p.name for p in dst.iterdir()) == ["manifest.json", "mini_prior.json", "mini_prior.safetensors"]


def _other_file_system() -> Path | None:
    for d in ("/dev/shm", "/run/shm"):
        try:
            if os.path.isdir(d) and os.access(d, os.W_OK) and os.stat(d).st_dev != os.stat(Path(__file__).parent).st_dev:
                return Path(d)
        except OSError:
            pass
    return None


@pytest.mark.skipif(_other_file_system() is None, reason="needs a writable folder on another file system (/dev/shm)")
def test_an_export_into_a_folder_on_another_file_system_moves_its_files_in(tmp_path, monkeypatch):
    """``--to`` a link to a folder on another disk (or a mount point: a container's volume): the
    files were written beside the link, on this disk, and their renames into the folder
    failed with a raw ``OSError: [Errno 18] Invalid cross-device link`` after all the work.
    They are now written on the folder's own file system."""
    import shutil
    import tempfile

    elsewhere = Path(tempfile.mkdtemp(dir=_other_file_system()))
    try:
        dst = tmp_path / "w"
        dst.symlink_to(elsewhere, target_is_directory=True)
        ex, src = _export_setup(tmp_path, monkeypatch)
        manifest = ex.export(src, dst, stages=("prior",))
        assert manifest["files"] == {"mini_prior.safetensors": {"step": 2}}
        assert sorted(p.name for p in elsewhere.iterdir()) == ["manifest.json", "mini_prior.json", "mini_prior.safetensors"]
        assert (elsewhere / "mini_prior.safetensors").read_bytes() == b"new weights"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "w"]
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)


def test_the_partial_file_a_killed_cache_or_index_build_left_is_removed_by_the_next(tmp_path):
    """Guard of the change above (not a defect of the old code, whose fixed names the next build
    wrote over): a hard kill (SIGKILL, the OOM killer) while the cache or the index was written
    leaves its hidden temporary file; the next build removes it once no writer has touched it
    for an hour (``video.remove_stale_temps``: another build may be writing one now)."""
    import time

    from latentlab.mini import data
    from latentlab.mini.train import build_cache, get_config
    from latentlab.video import _temp_path

    twemoji_cache(tmp_path / "d", n=2)
    index = tmp_path / "d" / "index.jsonl"
    cache = tmp_path / "r" / "cache" / "cache.safetensors"
    cache.parent.mkdir(parents=True)
    (tmp_path / "r" / "clip").mkdir()
    torch.manual_seed(0)
    from safetensors.torch import save_file

    from latentlab.mini.models import create_clip

    model, _, _ = create_clip(None)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "r" / "clip" / "model.safetensors"))
    old, fresh = [_temp_path(p, "") for p in (index, cache)], [_temp_path(p, "") for p in (index, cache)]
    for p in old + fresh:
        p.write_bytes(b"partial")
    for p in old:
        os.utime(p, (time.time() - 7200, time.time() - 7200))
    data.build_index(tmp_path / "d", ["twemoji"], verbose=False)
    build_cache(get_config("smoke", ["cache.n_images=3", "cache.batch_size=4"]), tmp_path / "r")
    assert sorted(p.name for p in tmp_path.rglob("*") if ".tmp" in p.name) == sorted(p.name for p in fresh)


def test_a_full_disk_while_init_from_puts_the_clip_in_place_leaves_no_cut_clip(tmp_path, monkeypatch):
    """``train --init-from W`` (without the clip stage) copies W's CLIP into ``clip/model.safetensors``
    to encode the run's cache, writing it in place: a full disk left it cut short, and since a
    CLIP file was there, every later run took it for the CLIP and failed with safetensors' raw
    ``SafetensorError: Error while deserializing header``. Now it is there whole or not at all."""
    import safetensors.torch

    from latentlab.mini import train

    weights = tmp_path / "w"  # an export whose CLIP is put in place (its prior's fit is not what is tested here)
    weights.mkdir()
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(weights / train._EXPORTED["clip"]))
    (weights / train._EXPORTED["prior"]).write_bytes(b"")
    monkeypatch.setattr(train, "_init_fit", lambda *a: None)
    real = safetensors.torch.save_file

    def full(tensors, filename, *a, **k):
        if tmp_path in Path(filename).parents and Path(filename).parent.name == "clip":
            Path(filename).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tensors, filename, *a, **k)

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(OSError, match="No space"):
        train.main(["--stage", "prior", "--config", "smoke", "--out", str(tmp_path / "run"), "--init-from", str(weights)])
    assert not (tmp_path / "run" / "clip" / "model.safetensors").exists() and _temps(tmp_path) == []


def test_trains_json_writes_remove_what_a_killed_writer_left_an_hour_ago(tmp_path):
    """Each write takes a fresh temporary name, so the hidden file a writer killed outright
    (SIGKILL: nothing runs to remove it) left was never overwritten or removed by later runs;
    train's JSON and log writes now sweep those of their file older than an hour (a newer one
    may be another process's write in progress)."""
    from latentlab._atomic import temp_path
    from latentlab.mini.train import _trim_log, _write_json

    path, log = tmp_path / "config.json", tmp_path / "log.jsonl"
    log.write_text('{"step": 1}\n{"step": 2}\n')
    stale, fresh = temp_path(path, ""), temp_path(path, "")
    stale_log = temp_path(log, "")
    for p in (stale, fresh, stale_log):
        p.write_text("partial")
    hour_ago = time.time() - 3700
    for p in (stale, stale_log):
        os.utime(p, (hour_ago, hour_ago))
    _write_json(path, {"a": 1})
    _trim_log(log, 1)
    assert json.loads(path.read_text()) == {"a": 1} and log.read_text() == '{"step": 1}\n'
    assert not stale.exists() and not stale_log.exists() and fresh.exists()
