from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import latentlab.jobs as jobs_mod
import latentlab.video as video_mod
from latentlab.errors import ArgumentError, LatentlabError, SpaceError
from latentlab.render import MANIFEST, _load_png, frame_seeds, make_noise, render
from latentlab.priors import Prior
from latentlab.space import space_of, tag
from latentlab.trajectory import Segment, Trajectory

from conftest import FakeDecoder, RecordingBar, animated_frames, folder_held_by_another_process, write_fault


def path8(frames=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.nn.functional.normalize(torch.randn(2, 8, generator=g), dim=-1).split(1)
    return Trajectory.interpolate(a, b, frames=frames)


def test_frames_follow_embeddings_and_are_deterministic(fake_decoder):
    p = path8()
    f1 = render(p, fake_decoder, seed=1, progress=False)
    f2 = render(p, fake_decoder, seed=1, progress=False)
    assert f1.shape == (7, 8, 8, 3) and f1.dtype == np.uint8
    assert np.array_equal(f1, f2)
    assert not np.array_equal(f1[0], f1[-1])  # different embeddings, different frames


def test_shared_noise_does_not_flicker_per_frame_noise_does(fake_decoder):
    z = torch.nn.functional.normalize(torch.ones(5, 8), dim=-1)  # a constant trajectory
    shared = render(z, fake_decoder, noise="shared", progress=False).astype(int)
    per = render(z, fake_decoder, noise="per-frame", progress=False).astype(int)
    assert np.abs(np.diff(shared, axis=0)).max() == 0
    assert np.abs(np.diff(per, axis=0)).mean() > 1


def test_batch_size_never_changes_a_frame(fake_decoder):
    p = path8(frames=9)
    ref = render(p, fake_decoder, batch_size=1, noise="per-frame", progress=False)
    for bs in (2, 4, 9):
        assert np.array_equal(render(p, fake_decoder, batch_size=bs, noise="per-frame", progress=False), ref)


def test_noise_is_per_seed_not_per_batch():
    a = make_noise((2, 3), [5, 6, 5])
    assert torch.equal(a[0], a[2]) and not torch.equal(a[0], a[1])
    assert torch.equal(make_noise((2, 3), [6])[0], a[1])
    assert frame_seeds(3, 10, "per-frame") == [10, 11, 12]
    assert frame_seeds(3, 10, "shared") == [10, 10, 10]


def test_interrupted_render_resumes_without_redoing_frames(tmp_path, fake_decoder):
    p = path8(frames=10)
    out = tmp_path / "r"
    seen = []

    def stop_after_four(info):
        seen.append(info["frame"])
        if info["frame"] == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        render(p, fake_decoder, out_dir=out, batch_size=2, callback=stop_after_four, progress=False)
    written = sorted(f.name for f in out.glob("frame_*.png"))
    assert written == [f"frame_{k:05d}.png" for k in range(5)]
    assert json.loads((out / MANIFEST).read_text())["complete"] is False
    mtimes = {f: (out / f).stat().st_mtime_ns for f in written}

    fake_decoder.calls.clear()
    resumed_info = []
    frames = render(p, fake_decoder, out_dir=out, batch_size=2, progress=False, callback=resumed_info.append)
    assert sum(fake_decoder.calls) == 5  # only the missing frames were decoded
    assert [i["resumed"] for i in resumed_info] == [True] * 5 + [False] * 5
    assert {f: (out / f).stat().st_mtime_ns for f in written} == mtimes  # finished frames untouched
    assert np.array_equal(frames, render(p, fake_decoder, progress=False))
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["complete"] is True and manifest["frames"] == 10
    assert manifest["decoder"]["name"] == "fake" and "torch" in manifest["versions"]
    assert np.allclose(np.load(out / "embeddings.npy"), p.embeddings().numpy())


def test_resuming_under_other_library_versions_warns_and_keeps_them_on_record(tmp_path, fake_decoder):
    p = path8(frames=6)
    out = tmp_path / "r"
    _interrupt_at(p, fake_decoder, out, 2)
    m = json.loads((out / MANIFEST).read_text())
    now = dict(m["versions"])
    m["versions"]["torch"] = "1.0.0"  # as if the first frames came from an older torch
    m["earlier_versions"] = 42  # a hand-edited manifest is read, not trusted
    (out / MANIFEST).write_text(json.dumps(m))
    with pytest.warns(RuntimeWarning, match=r"torch 1\.0\.0 -> "):
        render(p, fake_decoder, out_dir=out, progress=False)
    m = json.loads((out / MANIFEST).read_text())
    assert m["complete"] is True and m["versions"] == now
    assert [v["torch"] for v in m["earlier_versions"]] == ["1.0.0"]
    with warnings.catch_warnings():  # same versions again: no warning, the record stays
        warnings.simplefilter("error")
        render(p, fake_decoder, out_dir=out, progress=False)
    assert json.loads((out / MANIFEST).read_text())["earlier_versions"] == m["earlier_versions"]


def test_damaged_frame_is_rendered_again(tmp_path, fake_decoder):
    p = path8(frames=4)
    out = tmp_path / "r"
    ref = render(p, fake_decoder, out_dir=out, progress=False)
    (out / "frame_00002.png").write_bytes(b"not a png")
    fake_decoder.calls.clear()
    again = render(p, fake_decoder, out_dir=out, progress=False)
    assert sum(fake_decoder.calls) == 1 and np.array_equal(again, ref)


def test_a_different_render_in_the_folder_is_refused(tmp_path, fake_decoder):
    out = tmp_path / "r"
    render(path8(seed=0), fake_decoder, out_dir=out, progress=False)
    with pytest.raises(ArgumentError, match=r"holds a different render \(other embeddings: the path's keyframes"):
        render(path8(seed=1), fake_decoder, out_dir=out, progress=False)
    with pytest.raises(ArgumentError, match=r"holds a different render \(seed 0 -> 5\)"):  # (it named nothing)
        render(path8(seed=0), fake_decoder, out_dir=out, seed=5, progress=False)
    with pytest.raises(ArgumentError, match=r"holds a different render \(guidance_scale .* -> 4.5; steps .* -> 3\)"):
        render(path8(seed=0), fake_decoder, out_dir=out, steps=3, guidance_scale=4.5, progress=False)
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["fingerprint"] = "of-another-version"  # same settings and embeddings: not blamed on the embeddings
    (out / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArgumentError, match=r"\(its record, of the same settings and embeddings, was written by another"):
        render(path8(seed=0), fake_decoder, out_dir=out, progress=False)
    (out / "embeddings.npy").write_bytes(b"")  # (as a kill while it was written left it): no EOFError
    with pytest.raises(ArgumentError, match=r"\(other embeddings"):
        render(path8(seed=0), fake_decoder, out_dir=out, progress=False)
    frames = render(path8(seed=1), fake_decoder, out_dir=out, overwrite=True, progress=False)
    assert np.array_equal(frames, render(path8(seed=1), fake_decoder, progress=False))


def test_untracked_frames_are_refused(tmp_path, fake_decoder):
    out = tmp_path / "r"
    out.mkdir()
    (out / "frame_00000.png").write_bytes(b"x")
    with pytest.raises(ArgumentError, match="no manifest.json"):
        render(path8(), fake_decoder, out_dir=out, progress=False)


def test_bad_embeddings_fail_before_anything_is_written(tmp_path, fake_decoder):
    out = tmp_path / "r"
    with pytest.raises(SpaceError, match="size 9"):
        render(torch.ones(3, 9), fake_decoder, out_dir=out, progress=False)
    with pytest.raises(SpaceError, match="'other'"):
        render(tag(torch.ones(3, 8), "other"), fake_decoder, out_dir=out, progress=False)
    with pytest.raises(ArgumentError, match="NaN"):
        render(torch.full((3, 8), float("nan")), fake_decoder, out_dir=out, progress=False)
    with pytest.raises(ArgumentError, match="batch_size"):
        render(torch.ones(3, 8), fake_decoder, batch_size=0, out_dir=out, progress=False)
    assert not out.exists()


def test_unwritable_out_dir(tmp_path, fake_decoder):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ArgumentError, match="cannot be made: .*file' is a file, not a folder"):
        render(path8(), fake_decoder, out_dir=blocker / "sub", progress=False)
    with pytest.raises(ArgumentError, match="cannot be made: .*file' is a file, not a folder"):  # "File exists", before
        render(path8(), fake_decoder, out_dir=blocker, progress=False)


def test_decoder_returning_garbage_is_reported(fake_decoder):
    fake_decoder._decode = lambda *a, **k: np.zeros((1, 8, 8, 3), np.float32)
    with pytest.raises(LatentlabError, match=r"returned ndarray float32 \(1, 8, 8, 3\) from its _decode; a decoder "
                                             r"returns uint8 frames \(3, H, W, 3\).*clip\(0, 255\) as uint8"):
        render(path8(), fake_decoder, progress=False)


class _Duck:
    """A decoder that is no Decoder subclass: render checks what it returns itself."""

    name, space, dim, resolution, default_steps, default_guidance, default_batch_size = "duck", None, 8, 8, 1, 1.0, 2

    def noise_shape(self):
        return (1, 8, 8)

    def describe(self):
        return {"class": "_Duck"}

    def decode(self, z, noise, **kw):
        return np.zeros((z.shape[0], 8, 8, 4), np.uint8)  # RGBA: written as RGBA PNGs and redrawn at every resume


def test_a_decoder_returning_frames_that_are_not_rgb_is_refused_at_once(tmp_path, fake_decoder):
    with pytest.raises(LatentlabError, match=r"returned \(2, 8, 8, 4\) uint8; expected uint8 \(2, H, W, 3\)"):
        render(path8(), _Duck(), out_dir=tmp_path / "r", progress=False)
    for out, hint in ((np.zeros((3, 3, 8, 8), np.uint8), r"channels-first: .*transpose\(0, 2, 3, 1\)"),
                      (np.zeros((3, 8, 8, 4), np.uint8), r"4 channels \(RGBA\?\): .*out\[\.\.\., :3\]"),
                      (torch.zeros(3, 8, 8, 3, dtype=torch.uint8), r"Tensor .*out.cpu\(\).numpy\(\)"),
                      (np.zeros((2, 8, 8, 3), np.uint8), r"\(2, 8, 8, 3\) .*uint8 frames \(3, H, W, 3\)")):  # fmt: skip
        fake_decoder._decode = lambda *a, out=out, **k: out
        with pytest.raises(LatentlabError, match=hint):  # a crash in the PNG writer's thread, or accepted (RGBA)
            render(path8(), fake_decoder, out_dir=tmp_path / "r2", progress=False)


def test_a_decoder_reusing_its_output_buffer_cannot_change_frames_already_returned(tmp_path):
    class Buffer(FakeDecoder().__class__):
        def __init__(self):
            super().__init__()
            self.buffer = np.zeros((3, 8, 8, 3), np.uint8)

        def _decode(self, embeddings, noise, **kw):
            out = self.buffer[: embeddings.shape[0]]
            out[:] = np.arange(embeddings.shape[0], dtype=np.uint8)[:, None, None, None] + 40 * len(self.calls)
            self.calls.append(embeddings.shape[0])
            return out  # the same memory every call, as a wrapper of another generator may do

    frames = render(path8(frames=6), Buffer(), out_dir=tmp_path / "r", progress=False)
    want = [0, 1, 2, 40, 41, 42]  # were [40, 41, 42, 40, 41, 42] in memory and on disk
    assert [int(f[0, 0, 0]) for f in frames] == want
    from latentlab.video import load_image

    assert [int(load_image(p)[0, 0, 0]) for p in sorted((tmp_path / "r").glob("frame_*.png"))] == want


def test_zero_embeddings_and_non_finite_noise_are_refused_before_decoding(fake_decoder):
    z = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    z[1] = 0  # a padding row: it reached _decode as the zero vector
    noise = torch.randn(3, 1, 8, 8)
    with pytest.raises(ArgumentError, match=r"embeddings row\(s\) \[1\] are the zero vector"):
        fake_decoder.decode(z, noise)
    z[1] = 1.0
    noise[2, 0, 3, 3] = float("nan")  # it drew black frames without a word
    with pytest.raises(ArgumentError, match=r"noise holds NaN or infinite values \(rows \[2\]\)"):
        fake_decoder.decode(z, noise)
    kn = torch.randn(2, 1, 8, 8)
    kn[1, 0, 0, 0] = float("inf")
    with pytest.raises(ArgumentError, match=r"keyframe_noise holds NaN or infinite values \(keyframes \[1\]\)"):
        render(path8(), fake_decoder, noise="slerp", keyframe_noise=kn, progress=False)
    assert fake_decoder.calls == []


def test_a_decoder_subclass_missing_a_part_is_told_what_to_implement():
    from latentlab.decoders.base import Decoder

    class NoParts(Decoder):
        name, space, dim, resolution = "np", None, 8, 8

    class NoDim(FakeDecoder().__class__):
        dim = 0

    z = torch.nn.functional.normalize(torch.randn(1, 8), dim=-1)
    with pytest.raises(NotImplementedError, match=r"NoParts must implement noise_shape\(\) -> tuple of ints"):
        NoParts().decode(z, torch.randn(1, 1, 8, 8))
    NoParts.noise_shape = lambda self: (1, 8, 8)
    with pytest.raises(NotImplementedError, match=r"NoParts must implement _decode\(embeddings, noise, \*, seeds"):
        NoParts().decode(z, torch.randn(1, 1, 8, 8))
    with pytest.raises(LatentlabError, match="decoder NoDim has dim=0; a decoder sets dim"):  # "probably another CLIP model"
        NoDim().decode(z, torch.randn(1, 1, 8, 8))


def test_eta_takes_numpy_floats_as_guidance_does():
    from latentlab.render import check_eta

    check_eta(np.float32(0.0), object())  # "eta must be a number in [0, 1], got np.float32(0.0)"
    check_eta(np.float64(0.0), object())
    for bad in (np.float32(1.5), np.bool_(True), "0.3"):
        with pytest.raises(ArgumentError, match="eta must be a number in"):
            check_eta(bad, object())


def test_out_of_memory_halves_the_batch_and_keeps_finished_frames(tmp_path, fake_decoder):
    """A batch that does not fit is retried at half the size; frames already rendered stay."""
    inner = fake_decoder._decode
    fake_decoder.calls, fits = [], 2

    def decode(embeddings, noise, **kw):
        if embeddings.shape[0] > fits:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return inner(embeddings, noise, **kw)

    fake_decoder._decode = decode
    p = path8(frames=9)
    frames = render(p, fake_decoder, batch_size=8, out_dir=tmp_path / "r", progress=False)
    ref = render(p, FakeDecoder(), batch_size=1, progress=False)
    assert np.array_equal(frames, ref)
    assert fake_decoder.calls and max(fake_decoder.calls) <= fits and sum(fake_decoder.calls) == len(p)
    assert len(list((tmp_path / "r").glob("frame_*.png"))) == len(p)

    fits = 0  # not even one frame fits: a clear error, not a loop
    with pytest.raises(LatentlabError, match="cpu_offload"):
        render(p, fake_decoder, batch_size=4, progress=False)


def test_other_errors_are_not_mistaken_for_out_of_memory(fake_decoder):
    def decode(embeddings, noise, **kw):
        raise RuntimeError("shape mismatch")

    fake_decoder._decode = decode
    with pytest.raises(RuntimeError, match="shape mismatch"):
        render(path8(), fake_decoder, batch_size=4, progress=False)


def test_ll_render_stays_the_function_after_the_submodule_is_imported():
    import importlib
    import sys

    import latentlab as ll

    importlib.import_module("latentlab.render")  # importing the submodule used to rebind ll.render to it
    assert ll.render is sys.modules["latentlab.render"].render


def test_an_unreadable_manifest_is_named_not_called_another_render(tmp_path, fake_decoder):
    out = tmp_path / "r"
    render(path8(), fake_decoder, out_dir=out, progress=False)
    (out / MANIFEST).write_text("")  # what a power cut during a write could leave
    with pytest.raises(ArgumentError, match="unreadable manifest.json"):
        render(path8(), fake_decoder, out_dir=out, progress=False)
    assert render(path8(), fake_decoder, out_dir=out, overwrite=True, progress=False).shape[0] == 7


def test_a_folder_being_rendered_is_refused_to_a_second_render(tmp_path, fake_decoder):
    """Nothing stopped two renders writing one folder: the second (with overwrite) deleted the
    first's frames while the first went on writing and then marked the mix complete."""
    out = tmp_path / "r"
    with folder_held_by_another_process(out) as pid:
        with pytest.raises(ArgumentError, match=rf"being written by another render \(process {pid}\) right now"):
            render(path8(), fake_decoder, out_dir=out, overwrite=True, progress=False)
        assert not list(out.glob("frame_*.png"))
    assert render(path8(), fake_decoder, out_dir=out, progress=False).shape[0] == 7


def test_the_folder_lock_is_reentrant_in_a_thread_and_leaves_no_empty_folder(tmp_path, fake_decoder):
    import threading

    from latentlab.render import folder_lock

    out = tmp_path / "new"
    with folder_lock(out):
        assert render(path8(), fake_decoder, out_dir=out, progress=False).shape[0] == 7  # the same thread: in
        refused = []
        t = threading.Thread(target=lambda: refused.append(_refusal(lambda: render(path8(), fake_decoder, out_dir=out,
                                                                                      progress=False))))  # fmt: skip
        t.start()
        t.join()
        assert refused and "being written by another thread of this process right now" in refused[0]
    assert (out / "manifest.json").is_file() and not (out / ".latentlab.lock").exists()  # the lock file goes
    empty = tmp_path / "nothing" / "written" / "here"
    with folder_lock(empty):
        assert empty.is_dir()
    assert not (tmp_path / "nothing").exists()  # made for the lock alone (parents too), and removed again
    with pytest.raises(ArgumentError, match="steps must be an integer"):  # refused: leaves no folder either
        render(path8(), fake_decoder, out_dir=tmp_path / "renders" / "x", steps=0, progress=False)
    assert not (tmp_path / "renders").exists()


def test_a_render_removes_the_temporary_files_a_killed_one_left(tmp_path, fake_decoder):
    out = tmp_path / "r"
    render(path8(), fake_decoder, out_dir=out, progress=False)
    stale = [out / ".manifest.json.0badc0de.tmp", out / ".frame_00003.png.12ab34cd.tmp.png"]
    for p in stale:
        p.write_bytes(b"half")
    mine = out / ".notes.tmp"  # not one of latentlab's names: left alone
    mine.write_text("x")
    render(path8(), fake_decoder, out_dir=out, progress=False)
    assert not any(p.exists() for p in stale) and mine.exists()


def _refusal(fn):
    try:
        fn()
    except ArgumentError as exc:
        return str(exc)
    return ""


def test_a_callback_cannot_change_the_frames(tmp_path, fake_decoder):
    """Callbacks got the frame being written and returned (a hold's copies the same array): a
    preview that drew on it changed the video and the files on disk."""
    z = torch.nn.functional.normalize(torch.ones(4, 8), dim=-1)  # one row: decoded once, copied
    clean = render(z, fake_decoder, progress=False)

    def draw(info):
        info["image"][:2] = 255

    with pytest.raises(ValueError, match="read-only"):
        render(z, fake_decoder, out_dir=tmp_path / "r", callback=draw, progress=False)
    seen = []
    frames = render(z, fake_decoder, out_dir=tmp_path / "r", callback=lambda i: seen.append(i["image"].copy()),
                    progress=False)  # fmt: skip
    assert np.array_equal(frames, clean) and all(np.array_equal(s, clean[0]) for s in seen)


def test_temporary_names_are_unique_per_write(tmp_path):
    from latentlab.render import temp_path

    assert temp_path(tmp_path / "manifest.json") != temp_path(tmp_path / "manifest.json")


def test_temporary_names_fit_the_file_system_and_are_cleaned_alike(tmp_path):
    """render's temporary name cut a long name by characters: 80 CJK characters (240 bytes) gave
    a 259-byte name, so saving e.g. a spec of that name failed with 'File name too long'. Every
    write now names its temporary file one way, and a killed render's are all removed."""
    from latentlab.render import _remove_stale_temps, temp_path

    target = tmp_path / ("日" * 80 + ".json")
    for ext in ("", "png", "mp4"):
        tmp = temp_path(target, ext)
        assert len(tmp.name.encode()) <= 255 and tmp.name.endswith(".tmp" + (f".{ext}" if ext else ""))
        tmp.write_text("partial")  # (the name fits)
    keep = tmp_path / ".notes.tmp"
    keep.write_text("mine")
    _remove_stale_temps(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.tmp"]


def test_guidance_written_as_an_int_is_the_same_render(tmp_path, fake_decoder):
    out = tmp_path / "r"
    first = render(path8(), fake_decoder, out_dir=out, guidance_scale=3, progress=False)
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("frame_*.png")}
    again = render(path8(), fake_decoder, out_dir=out, guidance_scale=3.0, progress=False)
    assert np.array_equal(first, again) and {p.name: p.stat().st_mtime_ns for p in out.glob("frame_*.png")} == mtimes


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"seed": "x"}, r"seed must be an integer"),
        ({"seed": 1.5}, r"seed must be an integer"),
        ({"seed": 2**64}, r"seed must be an integer in \[-2\*\*63"),
        ({"steps": 1.7}, r"steps must be an integer >= 1, got 1.7"),
        ({"steps": 0}, r"steps must be an integer >= 1"),
        ({"guidance_scale": -3}, r"guidance_scale must be a finite number >= 0"),
        ({"guidance_scale": float("nan")}, r"guidance_scale must be a finite number"),
    ],
)
@pytest.mark.parametrize("preset", ["tiny", "mini"])
def test_render_and_decode_refuse_bad_sampler_settings(kwargs, message, preset):
    import latentlab as ll

    dec = ll.create_decoder(preset)
    z = ll.create_encoder(preset).encode_text(["a", "b"])
    with pytest.raises(ArgumentError, match=message):
        dec.render(z, progress=False, **kwargs)
    # the decoder's own entry point checks them too
    settings = {k.replace("seed", "seeds"): ([v, v] if k == "seed" else v) for k, v in kwargs.items()}
    with pytest.raises(ArgumentError, match=message.replace("seed must", r"seeds\[...\] must")):
        dec.decode(z, make_noise(tuple(dec.noise_shape()), [0, 1]), **settings)


def test_render_accepts_numpy_integers_and_names_a_missing_decoder():
    import latentlab as ll

    dec = ll.create_decoder("tiny")
    z = ll.create_encoder("tiny").encode_text(["a", "b"])
    out = dec.render(z, seed=np.int64(3), steps=np.int64(2), guidance_scale=np.float32(2.0), progress=False)
    np.testing.assert_array_equal(out, dec.render(z, seed=3, steps=2, guidance_scale=2.0, progress=False))
    with pytest.raises(ArgumentError, match="decoder must be a latentlab Decoder, got NoneType"):
        render(z, None)


def _interrupt_at(p, decoder, out, frame, batch_size=1, progress=False):
    """Render ``p`` into ``out`` and stop it with Ctrl-C as frame ``frame`` is reported."""

    def stop(info):
        if info["frame"] == frame:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        render(p, decoder, out_dir=out, batch_size=batch_size, callback=stop, progress=progress)


def _age_versions(out):
    """Make the manifest say its frames came from an older torch."""
    m = json.loads((out / MANIFEST).read_text())
    m["versions"]["torch"] = "1.0.0"
    (out / MANIFEST).write_text(json.dumps(m))


@pytest.mark.parametrize("resumed_first", [False, True])
def test_overwrite_renders_again_every_frame_other_versions_made(tmp_path, fake_decoder, resumed_first):
    # the version warning advises overwrite=True; it used to keep the old frames (only a different
    # fingerprint, which versions are not part of, made overwrite act)
    p = path8(frames=6)
    out = tmp_path / "r"
    ref = render(p, fake_decoder, progress=False)
    _interrupt_at(p, fake_decoder, out, 2)
    _age_versions(out)
    if resumed_first:  # the usual path: the warning comes while the render goes on, then the user follows it
        with pytest.warns(RuntimeWarning, match=r"torch 1\.0\.0 -> .*overwrite=True \(CLI: --overwrite\)"):
            render(p, fake_decoder, out_dir=out, progress=False)
        assert json.loads((out / MANIFEST).read_text())["earlier_versions"][0]["torch"] == "1.0.0"
    fake_decoder.calls.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frames = render(p, fake_decoder, out_dir=out, overwrite=True, progress=False)
    assert sum(fake_decoder.calls) == 6 and np.array_equal(frames, ref)  # every frame rendered again
    m = json.loads((out / MANIFEST).read_text())
    assert m["complete"] is True and "earlier_versions" not in m
    # nothing changed since: overwrite=True resumes (here: nothing left to draw), frames untouched
    mtimes = {f.name: f.stat().st_mtime_ns for f in out.glob("frame_*.png")}
    fake_decoder.calls.clear()
    again = render(p, fake_decoder, out_dir=out, overwrite=True, progress=False)
    assert sum(fake_decoder.calls) == 0 and np.array_equal(again, ref)
    assert {f.name: f.stat().st_mtime_ns for f in out.glob("frame_*.png")} == mtimes


def test_refusals_name_the_cli_flag_too(tmp_path, fake_decoder):
    out = tmp_path / "r"
    render(path8(seed=0), fake_decoder, out_dir=out, progress=False)
    with pytest.raises(ArgumentError, match=r"overwrite=True \(CLI: --overwrite\)"):
        render(path8(seed=1), fake_decoder, out_dir=out, progress=False)
    (out / MANIFEST).unlink()
    with pytest.raises(ArgumentError, match=r"no manifest\.json.*overwrite=True \(CLI: --overwrite\)"):
        render(path8(seed=0), fake_decoder, out_dir=out, progress=False)


@pytest.mark.parametrize("size_known", [True, False])
def test_a_foreign_png_in_the_folder_is_rendered_again(tmp_path, fake_decoder, size_known):
    from PIL import Image

    if not size_known:  # neither the decoder's resolution nor the manifest says the size beforehand
        fake_decoder.resolution = 0
    p = path8(frames=4)
    out = tmp_path / "r"
    ref = render(p, fake_decoder, out_dir=out, progress=False)
    if not size_known:
        m = json.loads((out / MANIFEST).read_text())
        del m["frame_shape"]
        (out / MANIFEST).write_text(json.dumps(m))
    Image.new("RGB", (4, 4), (9, 9, 9)).save(out / "frame_00002.png")  # valid PNG, wrong size
    Image.new("RGBA", (8, 8), (250, 0, 0, 128)).save(out / "frame_00001.png")  # right size, not RGB
    fake_decoder.calls.clear()
    frames = render(p, fake_decoder, out_dir=out, progress=False)
    assert sum(fake_decoder.calls) == 2 and np.array_equal(frames, ref)
    with Image.open(out / "frame_00002.png") as im:
        assert im.size == (8, 8)


def test_frames_of_mixed_sizes_with_nothing_to_draw_are_named(tmp_path, fake_decoder):
    from PIL import Image

    fake_decoder.resolution = 0  # the size cannot be known without decoding
    p = path8(frames=4)
    out = tmp_path / "r"
    render(p, fake_decoder, out_dir=out, progress=False)
    m = json.loads((out / MANIFEST).read_text())
    del m["frame_shape"]
    (out / MANIFEST).write_text(json.dumps(m))
    Image.new("RGB", (4, 4), (9, 9, 9)).save(out / "frame_00002.png")
    with pytest.raises(LatentlabError, match=r"frame_00002\.png differ"):
        render(p, fake_decoder, out_dir=out, progress=False)


def test_a_kept_frame_of_another_size_is_counted_and_reported_once(tmp_path, fake_decoder, monkeypatch, recording_bars):
    # neither the manifest (from before frame_shape was recorded) nor the decoder says the size: the
    # wrong-size frame used to be counted and reported as resumed, then drawn and counted again
    from PIL import Image

    fake_decoder.resolution = 0
    p = path8(frames=4)
    out = tmp_path / "r"
    ref = render(p, fake_decoder, out_dir=out, progress=False)
    m = json.loads((out / MANIFEST).read_text())
    del m["frame_shape"]
    (out / MANIFEST).write_text(json.dumps(m))
    Image.new("RGB", (4, 4), (9, 9, 9)).save(out / "frame_00001.png")  # a valid PNG of another size
    (out / "frame_00003.png").unlink()
    from conftest import RecordingBar

    bars = recording_bars
    bars.clear()  # the bars of the render above
    decoded_before_bar = []

    class Bar(RecordingBar):
        def __init__(self, *args, **kwargs):
            decoded_before_bar.append(len(fake_decoder.calls))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr("tqdm.auto.tqdm", Bar)
    seen = []
    fake_decoder.calls.clear()
    frames = render(p, fake_decoder, out_dir=out, callback=lambda i: seen.append((i["frame"], i["resumed"])))
    assert seen[:2] == [(0, True), (2, True)] and sorted(seen[2:]) == [(1, False), (3, False)]  # each frame once
    # the bar is up before the first batch decodes (it appeared only after it), and ends at every frame once
    assert decoded_before_bar == [0] and len(bars) == 1 and (bars[0].total, bars[0].n) == (4, 4)
    assert sum(fake_decoder.calls) == 2 and np.array_equal(frames, ref)
    assert json.loads((out / MANIFEST).read_text())["frame_shape"] == [8, 8, 3]


def test_a_decoder_returning_another_size_than_its_kept_frames_is_named(tmp_path, fake_decoder):
    # the kept frames were counted as done at the size the manifest records; a decoder that now
    # returns another size is refused, not allowed to draw them again behind the progress count
    p = path8(frames=4)
    out = tmp_path / "r"
    render(p, fake_decoder, out_dir=out, progress=False)
    (out / "frame_00003.png").unlink()
    inner = fake_decoder._decode
    fake_decoder._decode = lambda *a, **k: inner(*a, **k).repeat(2, axis=1).repeat(2, axis=2)
    with pytest.raises(LatentlabError, match=r"returned frames of shape \(16, 16, 3\), but the frames kept"):
        render(p, fake_decoder, out_dir=out, progress=False)


def _batch_position_decoder(decoder):
    """``decoder`` whose frames move by one level per place in the batch, as batched kernels may round."""
    inner = decoder._decode

    def decode(embeddings, noise, **kw):
        out = inner(embeddings, noise, **kw).astype(int)
        return (out + np.arange(len(out))[:, None, None, None]).clip(0, 255).astype(np.uint8)

    decoder._decode = decode
    return decoder


def held_path():
    """3 keyframes; keyframe 0 shown 3 times (frames 0-2), keyframe 1 twice (frames 5-6): 9 frames, 6 rows."""
    from latentlab.trajectory import Segment

    g = torch.Generator().manual_seed(0)
    kf = torch.nn.functional.normalize(torch.randn(3, 8, generator=g), dim=-1)
    return Trajectory(kf, [Segment(3, hold=2), Segment(2, hold=1)])


@pytest.mark.parametrize("noise", ["shared", "slerp"])
def test_held_frames_are_decoded_once_and_identical(tmp_path, fake_decoder, monkeypatch, noise, recording_bars):
    from PIL import Image

    dec = _batch_position_decoder(fake_decoder)
    p = held_path()
    assert len(p) == 9
    bars = recording_bars
    seen = []
    frames = render(p, dec, noise=noise, batch_size=2, out_dir=tmp_path / "r", callback=lambda i: seen.append(i["frame"]))
    assert sum(dec.calls) == 6  # one decode per distinct row
    for a, b in ((0, 1), (0, 2), (5, 6)):
        assert np.array_equal(frames[a], frames[b])
        with Image.open(tmp_path / "r" / f"frame_{a:05d}.png") as ia, Image.open(tmp_path / "r" / f"frame_{b:05d}.png") as ib:
            assert np.array_equal(np.asarray(ia), np.asarray(ib))
    assert sorted(seen) == list(range(9))  # every frame reported once, copies included
    assert (bars[0].initial, bars[0].n) == (0, 9)


def test_frames_with_their_own_seed_are_not_copies(fake_decoder):
    dec = _batch_position_decoder(fake_decoder)
    frames = render(held_path(), dec, noise="per-frame", batch_size=2, progress=False)
    assert sum(dec.calls) == 9 and not np.array_equal(frames[0], frames[1])  # other seeds: other noise


def test_a_resumed_hold_is_copied_from_its_kept_frame(tmp_path, fake_decoder):
    dec = _batch_position_decoder(fake_decoder)
    p = held_path()
    out = tmp_path / "r"
    _interrupt_at(p, dec, out, 0, batch_size=2)
    assert sorted(f.name for f in out.glob("frame_*.png")) == ["frame_00000.png"]
    dec.calls.clear()
    seen = []
    frames = render(p, dec, out_dir=out, batch_size=2, progress=False,
                    callback=lambda i: seen.append((i["frame"], i["resumed"])))  # fmt: skip
    assert sum(dec.calls) == 5  # the held row is not drawn again
    assert seen[:3] == [(0, True), (1, False), (2, False)] and sorted(k for k, _ in seen) == list(range(9))
    assert np.array_equal(frames[1], frames[0]) and np.array_equal(frames[2], frames[0])


def test_keyframe_seeds_are_refused_where_they_would_be_ignored(fake_decoder):
    from latentlab.render import keyframe_noise_for

    p = path8(frames=3)
    kn = torch.randn(2, 1, 8, 8)
    with pytest.raises(ArgumentError, match=r"keyframe_seeds and keyframe_noise were both given.*not both"):
        render(p, fake_decoder, noise="slerp", keyframe_seeds=[1, 2], keyframe_noise=kn, progress=False)
    with pytest.raises(ArgumentError, match=r"keyframe_seeds and keyframe_noise were both given"):
        keyframe_noise_for(2, (1, 8, 8), keyframe_seeds=[1, 2], keyframe_noise=kn)  # pacing's way in
    for extra in ({"keyframe_noise": kn}, {}):
        with pytest.raises(ArgumentError, match=r"keyframe_seeds does not apply to noise='inverted'.*noise='slerp'"):
            render(p, fake_decoder, noise="inverted", keyframe_seeds=[1, 2], progress=False, **extra)
    # each alone is still taken
    assert render(p, fake_decoder, noise="slerp", keyframe_seeds=[1, 2], progress=False).shape == (3, 8, 8, 3)
    assert render(p, fake_decoder, noise="slerp", keyframe_noise=kn, progress=False).shape == (3, 8, 8, 3)


def test_batch_size_must_be_an_integer_not_a_bool(fake_decoder):
    z = path8(frames=3).embeddings()
    for bad in (True, 1.5, 0):
        with pytest.raises(ArgumentError, match=rf"batch_size must be an integer >= 1, got {bad!r}"):
            render(z, fake_decoder, batch_size=bad, progress=False)
    render(z, fake_decoder, batch_size=np.int64(2), progress=False)
    assert fake_decoder.calls == [2, 1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"steps": 2.7}, r"steps must be an integer >= 1, got 2\.7"),
        ({"steps": True}, r"steps must be an integer >= 1, got True"),
        ({"steps": 0}, r"steps must be an integer >= 1, got 0"),
        ({"guidance_scale": float("nan")}, r"guidance_scale must be a finite number >= 0"),
        ({"decode_guidance": -1}, r"decode_guidance must be a finite number >= 0"),
        ({"refine": 1.5}, r"refine must be an integer >= 0"),
    ],
)
def test_invert_checks_its_settings_instead_of_converting_them(fake_decoder, kwargs, message):
    # int(2.7) used to invert with 2 steps; the settings are checked before the decoder is asked
    z = tag(torch.nn.functional.normalize(torch.ones(1, 8), dim=-1), "fake-space")
    with pytest.raises(ArgumentError, match=message):
        fake_decoder.invert(np.zeros((8, 8, 3), np.uint8), z, **kwargs)


def test_a_callback_or_out_dir_of_the_wrong_type_is_refused_before_decoding(tmp_path, fake_decoder):
    # a callback that is not callable failed only after the first batch was decoded ("'str' object is
    # not callable"), and out_dir=123 was a bare TypeError from pathlib
    p = path8(frames=4)
    with pytest.raises(ArgumentError, match=r"callback must be a function .* got 'preview' \(str\).*LivePreview"):
        render(p, fake_decoder, callback="preview", out_dir=tmp_path / "r", progress=False)
    with pytest.raises(ArgumentError, match="callback must be a function"):
        fake_decoder.render(p, callback=3, progress=False)
    for bad in (123, b"r", ""):
        with pytest.raises(ArgumentError, match=rf"out_dir must be a folder path \(str or pathlib.Path\) .* got {bad!r}"):
            fake_decoder.render(p, out_dir=bad, progress=False)
    assert fake_decoder.calls == [] and not (tmp_path / "r").exists()


def test_the_out_dir_lock_keeps_the_signature_of_render_for_type_checkers():
    import importlib
    import inspect
    import typing

    render_module = importlib.import_module("latentlab.render")  # not ll.render: that is the function

    assert "callback" in inspect.signature(render).parameters
    # Callable[..., Any] erased render's parameters and return type for type checkers
    ret = typing.get_type_hints(render_module._holding_out_dir)["return"]
    params, result = typing.get_args(ret)
    assert isinstance(params, typing.ParamSpec) and isinstance(result, typing.TypeVar)
    assert typing.get_type_hints(render)["return"] is np.ndarray


def test_the_annotations_take_the_paths_and_seeds_that_work(tmp_path, fake_decoder):
    # Decoder.render(out_dir=Path(...)) and render(keyframe_seeds=(1, 2)) work, but were annotated
    # str and list[int], so a type checker refused them
    import importlib
    import os
    import typing
    from collections.abc import Sequence as AbcSequence

    from latentlab.decoders.base import Decoder

    assert os.PathLike[str] in typing.get_args(typing.get_type_hints(Decoder.render)["out_dir"])
    render_module = importlib.import_module("latentlab.render")
    seeds_hint = typing.get_args(typing.get_type_hints(render_module.render)["keyframe_seeds"])
    assert any(typing.get_origin(h) is AbcSequence for h in seeds_hint)
    p = path8(frames=3)
    a = fake_decoder.render(p, out_dir=tmp_path / "r", noise="slerp", keyframe_seeds=(1, 2), progress=False)
    np.testing.assert_array_equal(a, render(p, fake_decoder, noise="slerp", keyframe_seeds=[1, 2], progress=False))


def test_an_out_of_memory_batch_is_halved_and_a_single_frame_says_the_fixes():
    from latentlab.errors import LatentlabError
    from latentlab.render import _halved_after_oom

    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert _halved_after_oom(oom, 5, "rendering a single frame") == 2
    with pytest.raises(LatentlabError, match=r"out of memory rendering a single frame\..*cpu_offload=True"):
        _halved_after_oom(oom, 1, "rendering a single frame")
    other = ValueError("not memory")
    with pytest.raises(ValueError, match="not memory"):
        _halved_after_oom(other, 4, "rendering a single frame")


def test_a_halved_retry_empties_the_cache_of_every_accelerator_here(monkeypatch):
    """Only CUDA's cache was emptied after an out-of-memory error; on a Mac (MPS) or an Intel
    GPU (XPU) the failed batch's blocks stayed cached for the halved retry."""
    from latentlab.render import _halved_after_oom

    emptied = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.mps, "empty_cache", lambda: emptied.append("mps"))
    monkeypatch.setattr(torch.xpu, "is_available", lambda: True)
    monkeypatch.setattr(torch.xpu, "empty_cache", lambda: emptied.append("xpu"))
    assert _halved_after_oom(torch.OutOfMemoryError("MPS backend out of memory"), 4, "rendering a single frame") == 2
    assert emptied == ["mps", "xpu"]
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.xpu, "is_available", lambda: False)
    emptied.clear()
    assert _halved_after_oom(torch.OutOfMemoryError("out of memory"), 4, "rendering a single frame") == 2
    assert emptied == []  # (the CPU: nothing to empty)


def test_tqdm_disable_turns_the_bars_off_for_a_batch_log(tmp_path):
    """Every bar passed disable=not progress, an explicit False that overrode tqdm's own
    TQDM_DISABLE=1, so a batch job could not keep the bars out of its log but by passing
    progress=False to every call. (tqdm reads its environment at import: a fresh process.)"""
    import os
    import subprocess
    import sys

    script = (  # the bars are the encoder's and the render loop's: a decoder without a model will do
        "import numpy as np, latentlab as ll\n"
        "from latentlab.decoders.base import Decoder\n"
        "enc = ll.create_encoder('tiny')\n"
        "class Flat(Decoder):\n"
        "    name, space, dim, resolution, default_steps = 'flat', enc.space, enc.dim, 8, 1\n"
        "    def noise_shape(self): return (1, 8, 8)\n"
        "    def _decode(self, embeddings, noise, **kw): return np.zeros((len(embeddings), 8, 8, 3), np.uint8)\n"
        "dec = Flat()\n"
        "z = enc.encode_text(['a red circle', 'a blue square'], progress=True)\n"
        f"ll.render(ll.Trajectory.interpolate(z[:1], z[1:], frames=3), dec, steps=1, out_dir={str(tmp_path)!r} + '/r')\n"
    )
    plain = {k: v for k, v in os.environ.items() if not k.startswith("TQDM_")}  # (a caller's own TQDM_DISABLE)
    for env, shown in (({}, True), ({"TQDM_DISABLE": "1"}, False)):
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                             env={**plain, **env})  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert ("rendering" in run.stderr) is shown and ("encode" in run.stderr) is shown, run.stderr
        __import__("shutil").rmtree(tmp_path / "r")


def test_invert_says_how_to_pass_a_picture_file_or_a_pil_image(fake_decoder, tmp_path):
    from PIL import Image

    im = Image.new("RGB", (8, 8), (200, 10, 10))
    z = torch.nn.functional.normalize(torch.randn(1, 8), dim=-1)
    for picture in (im, str(tmp_path / "p.png")):
        with pytest.raises(ArgumentError, match=r"images must be uint8 arrays .*pass ll.load_image\(path\) or "
                                                r"np.asarray\(pil.convert\('RGB'\)\)"):
            fake_decoder.invert(picture, z)


def test_render_spec_names_a_model_given_in_the_wrong_role(tmp_path):
    import latentlab as ll

    spec = {"preset": "tiny", "frames": 3, "steps": 1, "keyframes": [{"text": "a"}, {"text": "b"}]}
    dec, enc = ll.create_decoder("tiny"), ll.create_encoder("tiny")
    for kw, match in (({"encoder": dec}, r"encoder must be a latentlab Encoder .*got StableUnCLIPDecoder"),  # AttributeError
                      ({"prior": dec}, r"prior must be a latentlab Prior .*got StableUnCLIPDecoder"),  # not callable
                      ({"prior": enc}, r"prior must be a latentlab Prior .*got Encoder"),
                      ({"decoder": enc}, r"decoder must be a latentlab Decoder .*got Encoder")):  # after loading the rest
        with pytest.raises(ArgumentError, match=match):
            ll.render_spec(spec, out_dir=tmp_path / "r", progress=False, **kw)
    assert not (tmp_path / "r").exists()

    def my_prior(text_embeddings, seed=0):  # a prior of a user's own need only be callable
        return text_embeddings

    assert ll.render_spec(spec, out_dir=tmp_path / "r", progress=False, prior=my_prior).video.is_file()


def test_a_per_frame_seed_that_would_overflow_is_refused_before_any_frame(tmp_path, fake_decoder):
    with pytest.raises(ArgumentError, match=r"seed=9223372036854775806 with noise='per-frame' gives frame 6 the seed "
                                            r"9223372036854775812, past 2\*\*63 - 1; use a seed below 9223372036854775802"):
        render(path8(), fake_decoder, seed=2**63 - 2, noise="per-frame", out_dir=tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()  # two frames and a manifest were written, then "seeds[...] must be"
    assert len(render(path8(), fake_decoder, seed=2**63 - 7, noise="per-frame", progress=False)) == 7


def test_a_zero_frame_is_refused_before_the_render_writes_anything(tmp_path, fake_decoder):
    z = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    z[4] = 0  # the decoder refused it when its batch came, after four frames and a manifest were written
    with pytest.raises(ArgumentError, match=r"the trajectory's frame\(s\) \[4\] are the zero vector"):
        render(z, fake_decoder, out_dir=tmp_path / "r", batch_size=2, progress=False)
    assert not (tmp_path / "r").exists() and fake_decoder.calls == []


def test_rows_of_extreme_length_decode_as_their_direction(fake_decoder):
    z = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)
    noise = torch.randn(2, 1, 8, 8)
    want = fake_decoder.decode(z, noise)
    big = z.clone()
    big[0] *= 1e20  # its length overflows float32: it reached _decode as zeros
    big[1] *= 1e-25  # tiny, not zero: not refused
    np.testing.assert_array_equal(fake_decoder.decode(big, noise), want)


def test_the_fix_for_a_wrong_decoder_output_fits_what_was_returned(fake_decoder):
    for out, hint in ((torch.zeros(3, 3, 8, 8, dtype=torch.uint8), r"Fix: it looks channels-first: .*out.permute\(0, 2, 3, 1\); "
                                                                   r"then return a numpy array"),  # transpose fails on a tensor
                      (np.zeros((3, 3, 8, 8), np.float32), r"out.transpose\(0, 2, 3, 1\); then convert float pixels")):  # fmt: skip
        fake_decoder._decode = lambda *a, out=out, **k: out
        with pytest.raises(LatentlabError, match=hint):
            render(path8(), fake_decoder, progress=False)


def test_a_lock_file_that_is_a_link_is_replaced_not_emptied(tmp_path, fake_decoder):
    """A render folder from elsewhere whose .latentlab.lock was a symlink (or a hard link) to a
    file of the user's: taking the lock emptied that file and wrote a process id in it."""
    import os

    victim = tmp_path / "victim.txt"
    victim.write_text("precious user data")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / ".latentlab.lock").symlink_to(victim)
    render(path8(), fake_decoder, out_dir=tmp_path / "r", progress=False)
    assert victim.read_text() == "precious user data" and len(list((tmp_path / "r").glob("frame_*.png"))) == 7
    os.link(victim, tmp_path / "r2.lock")
    (tmp_path / "r2").mkdir()
    os.replace(tmp_path / "r2.lock", tmp_path / "r2" / ".latentlab.lock")  # a hard link, as a tar archive can make
    render(path8(), fake_decoder, out_dir=tmp_path / "r2", progress=False)
    assert victim.read_text() == "precious user data"


def test_a_frame_name_that_is_a_pipe_is_drawn_again_not_read(tmp_path, fake_decoder):
    """A FIFO named like a frame (a tar archive can carry one) made a resume hang, silently."""
    import os

    first = render(path8(), fake_decoder, out_dir=tmp_path / "r", progress=False)
    (tmp_path / "r" / "frame_00003.png").unlink()
    os.mkfifo(tmp_path / "r" / "frame_00003.png")
    again = render(path8(), fake_decoder, out_dir=tmp_path / "r", progress=False)  # hung in Image.open
    np.testing.assert_array_equal(again, first)
    assert (tmp_path / "r" / "frame_00003.png").is_file()


def test_records_nested_thousands_deep_are_unreadable_not_a_traceback(tmp_path, fake_decoder):
    render(path8(), fake_decoder, out_dir=tmp_path / "r", progress=False)
    (tmp_path / "r" / MANIFEST).write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(ArgumentError, match="manifest"):  # a RecursionError traceback
        render(path8(), fake_decoder, out_dir=tmp_path / "r", progress=False)


# -- gaps found by mutation testing (2026-12-07): each test fails on a plausible bug the suite missed --


# (A gap that mutation testing found, render.py slerp_noise:) the norm is not interpolated (out = u * |a|), so frames
# between keyframe noises of different norms get the first keyframe's norm all the way and
# jump to |b| at t = 1 (noise="slerp"/"inverted" renders pop at the keyframe).
def test_slerp_noise_interpolates_the_norm_linearly():
    from latentlab.render import slerp_noise

    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 8, 8, generator=g)
    b = 2.0 * torch.randn(3, 8, 8, generator=g)
    t = torch.tensor([0.25, 0.5, 0.75])
    out = slerp_noise(a, b, t)
    want = (1 - t) * a.norm() + t * b.norm()
    torch.testing.assert_close(out.flatten(1).norm(dim=1), want, rtol=1e-5, atol=1e-5)


# (A gap that mutation testing found, render.py slerp_noise:) the "(nearly) parallel" branch is never taken, so two
# equal (or parallel) keyframe noises divide by sin(0) = 0 and every frame between them gets
# NaN noise -- e.g. noise="slerp" with keyframe_seeds=[7, 7], or two spec keyframes given the
# same seed.
def test_slerp_noise_between_equal_or_parallel_noises_stays_finite():
    from latentlab.render import slerp_noise

    a = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(slerp_noise(a, a, torch.tensor([0.25, 0.5])), torch.stack([a, a]))
    mid = slerp_noise(a, 3.0 * a, 0.5)
    torch.testing.assert_close(mid, 2.0 * a)


# (A gap that mutation testing found, render.py render:) the copy key drops the path parameters in slerp/inverted
# mode, so a frame whose embedding and seed equal an earlier frame's is copied from it even
# though its starting noise differs (a path A -> B -> A: the closing frame is decoded with
# keyframe 2's noise, but the mutant shows frame 0 again).
def test_slerp_noise_frames_with_equal_embeddings_but_other_noise_are_not_copies():
    dec = FakeDecoder()
    e = torch.eye(8)
    traj = Trajectory.chain([e[:1], e[1:2], e[:1]], frames=[2, 2])
    frames = render(traj, dec, noise="slerp", keyframe_seeds=[0, 1, 2], progress=False)
    assert not np.array_equal(frames[0], frames[-1])
    want = dec.decode(traj.embeddings()[-1:], make_noise((1, 8, 8), [2]), seeds=[0], steps=None, guidance_scale=None)
    np.testing.assert_array_equal(frames[-1], want[0])


# (A gap that mutation testing found, render.py render:) missing copies of a row that has a kept frame are filled only
# for rows of more than two frames. The suite resumes a hold of 3; a hold of 1 (a row of two
# frames) with only its first frame on disk was neither copied nor drawn again, and the resumed
# render crashed at np.stack on the missing frame.
def test_a_resumed_hold_of_one_frame_is_copied_from_its_kept_frame(tmp_path):
    from latentlab.trajectory import Segment

    dec = FakeDecoder()
    e = torch.eye(8)
    traj = Trajectory(torch.cat([e[:1], e[1:2]]), [Segment(3, hold=1)])
    out = tmp_path / "r"
    first = render(traj, dec, out_dir=out, progress=False)
    np.testing.assert_array_equal(first[0], first[1])
    (out / "frame_00001.png").unlink()  # the held copy of frame 0 is lost
    dec.calls.clear()
    again = render(traj, dec, out_dir=out, progress=False)
    assert sum(dec.calls) == 0  # copied from the kept frame 0, not drawn
    np.testing.assert_array_equal(again, first)
    assert (out / "frame_00001.png").exists()


# (A gap that mutation testing found, render.py render:) the manifest records keyframe_seeds as [seed] * K instead of
# the seeds the keyframe noises were drawn from (seed + i). The record is wrong (a rerun from
# it gives other frames), and passing the default seeds explicitly no longer resumes the
# render: its fingerprint differs.
def test_the_manifest_records_the_default_keyframe_seeds_and_they_resume(tmp_path):
    dec = FakeDecoder()
    e = torch.eye(8)
    traj = Trajectory.chain([e[:1], e[1:2], e[2:3]], frames=5)
    out = tmp_path / "r"
    first = render(traj, dec, noise="slerp", seed=5, out_dir=out, progress=False)
    assert json.loads((out / "manifest.json").read_text())["keyframe_seeds"] == [5, 6, 7]
    dec.calls.clear()
    again = render(traj, dec, noise="slerp", seed=5, keyframe_seeds=[5, 6, 7], out_dir=out, progress=False)
    assert sum(dec.calls) == 0
    np.testing.assert_array_equal(again, first)


# ------------------------------------------------------------------------------------
# the decoder and prior contracts: centre crop, defaults, what Prior.__call__ checks and
# normalises (gaps a mutation test found, 2026-12-07)
# ------------------------------------------------------------------------------------
@pytest.mark.parametrize("h, w", [(7, 4), (4, 7), (11, 4), (9, 6), (6, 13), (5, 5), (5, 4), (4, 5), (9, 4)])
def test_centre_square_keeps_the_region_torchvisions_centre_crop_keeps(h, w):
    """centre_square crops what the CLIP encoders' transform sees: torchvision's CenterCrop,
    which rounds half a margin to even (margin 1: 0 rows above; 3: 2; 5: 2; 7: 4)."""
    from torchvision.transforms.functional import center_crop

    from latentlab.decoders.base import centre_square

    images = np.arange(2 * h * w * 3, dtype=np.int64).reshape(2, h, w, 3).astype(np.uint8)
    side = min(h, w)
    want = center_crop(torch.from_numpy(images).permute(0, 3, 1, 2), [side, side]).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(centre_square(images), want)


def _tiny_mini_decoder():
    from latentlab.mini.models import DecoderConfig, MiniDecoderNet
    from latentlab.mini.runtime import MiniDecoder

    torch.manual_seed(0)
    net = MiniDecoderNet(DecoderConfig(block_out_channels=(8, 16, 16), embed_dim=16, norm_num_groups=4))
    with torch.no_grad():  # random (not zero) conditioning weights, so the embedding matters
        net.unet.conv_out.weight.normal_(0, 0.2)
    return MiniDecoder(net, resolution=32, space=None)


def _unit_rows(n, d, seed):
    return torch.nn.functional.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_decode_without_guidance_uses_the_decoders_default_guidance():
    """guidance_scale=None is the decoder's default_guidance (3 for mini), not 1."""
    dec = _tiny_mini_decoder()
    z, x = _unit_rows(1, 16, 1), torch.randn(1, *dec.noise_shape(), generator=torch.Generator().manual_seed(2))
    assert dec.default_guidance != 1.0
    plain = dec.decode(z, x, steps=2)
    assert np.array_equal(plain, dec.decode(z, x, steps=2, guidance_scale=dec.default_guidance))
    assert not np.array_equal(plain, dec.decode(z, x, steps=2, guidance_scale=1.0))


def test_decode_eta_without_seeds_gives_row_i_seed_i():
    """seeds=None means seeds 0, 1, 2, ...: rows with the same embedding and noise still get
    different step noise, and the frames are those of seeds=[0, 1]."""
    dec = _tiny_mini_decoder()
    z = _unit_rows(1, 16, 3).expand(2, -1)
    x = torch.randn(1, *dec.noise_shape(), generator=torch.Generator().manual_seed(4)).expand(2, -1, -1, -1)
    got = dec.decode_eta(z, x, eta=1.0, steps=3)
    assert np.array_equal(got, dec.decode_eta(z, x, eta=1.0, steps=3, seeds=[0, 1]))
    assert not np.array_equal(got[0], got[1])


def test_steps_up_to_max_steps_are_taken_and_one_more_refused():
    """_check_steps takes every count in [1, max_steps()] (max_steps itself included) and refuses the next."""
    from latentlab.decoders.base import Decoder

    class Capped(Decoder):
        name, space, dim, resolution = "capped", None, 4, 2

        def max_steps(self):
            return 3

        def noise_shape(self):
            return (1, 2, 2)

        def _decode(self, embeddings, noise, *, seeds, steps, guidance_scale):
            return np.full((len(embeddings), 2, 2, 3), steps, np.uint8)

    dec = Capped()
    z, x = torch.ones(1, 4), torch.zeros(1, 1, 2, 2)
    assert dec.decode(z, x, steps=3)[0, 0, 0, 0] == 3
    with pytest.raises(ArgumentError, match=r"steps must be <= 3"):
        dec.decode(z, x, steps=4)


class _Scaled(Prior):
    """Returns its (normalised) input scaled by ``factor``, rows repeated per sample; records its input."""

    def __init__(self, factor=3.0, **kw):
        super().__init__(name="scaled", space="s", dim=4)
        self.factor, self.seen = factor, []

    def _sample(self, text_embeddings, *, seed, num_samples):
        self.seen.append(text_embeddings.clone())
        return text_embeddings.repeat_interleave(num_samples, dim=0) * self.factor


def test_prior_output_is_normalised_whatever_sample_returns():
    """A subclass's _sample may return rows of any length: the prior returns them unit-norm and tagged."""
    prior = _Scaled(factor=5.0)
    out = prior(tag(torch.tensor([[1.0, 2.0, 2.0, 0.0], [0.0, 0.0, 3.0, 4.0]]), "s"), num_samples=2)
    assert out.shape == (4, 4) and space_of(out) == "s"
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(4))
    torch.testing.assert_close(out[2], torch.tensor([0.0, 0.0, 0.6, 0.8]))


def test_prior_sample_gets_unit_norm_text_embeddings():
    """_sample is documented to receive unit-norm rows: __call__ normalises the text embeddings first."""
    prior = _Scaled()
    prior(torch.tensor([[3.0, 0.0, 0.0, 4.0]]))
    torch.testing.assert_close(prior.seen[0], torch.tensor([[0.6, 0.0, 0.0, 0.8]]))


def test_prior_refuses_a_zero_text_embedding():
    """A zero text embedding has no direction: refused with the row named, before _sample runs."""
    prior = _Scaled()
    with pytest.raises(ArgumentError, match=r"row\(s\) \[1\] are the zero vector"):
        prior(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    assert prior.seen == []


def test_prior_refuses_a_zero_row_from_its_sample():
    """A subclass returning a zero image embedding is an error (it has no direction), not a NaN row."""
    prior = _Scaled(factor=0.0)
    with pytest.raises(LatentlabError, match=r"returned rows \[0\] that are zero or not finite"):
        prior(torch.tensor([[1.0, 0.0, 0.0, 0.0]]))


# -- _bars.py: what a bar is told --------------------------------------------------------------


def test_set_total_of_zero_keeps_a_notebook_widgets_max_at_one():
    """set_total(bar, 0) (nothing was done) sets the bar's total to 0 but the notebook widget's
    max to 1, as tqdm.notebook itself draws a bar of no length, never a widget of max 0."""
    pytest.importorskip("ipywidgets")
    import tqdm.notebook

    from latentlab._bars import set_total

    with contextlib.redirect_stdout(io.StringIO()), tqdm.notebook.tqdm(total=5, desc="work") as bar:
        set_total(bar, 3)
        widget = bar.container.children[1]
        assert bar.total == 3 and widget.max == 3
        set_total(bar, 0)
        assert bar.total == 0 and widget.max == 1


def test_set_total_redraws_a_text_bar_at_once():
    """set_total draws the bar again with its new total at once (a bar left to redraw at its
    next step showed the old total, or nothing, through a long wait)."""
    import tqdm

    from latentlab._bars import set_total

    out = io.StringIO()
    with tqdm.tqdm(total=5, desc="work", file=out, mininterval=0, ascii=True) as bar:
        bar.update(2)
        set_total(bar, 9)
        assert out.getvalue().rsplit("\r", 1)[-1].split("|")[-1].strip().startswith("2/9")


def test_progress_false_turns_a_bar_off_and_true_leaves_it_to_tqdm(monkeypatch):
    """progress=False passes disable=True; progress=True passes no disable at all, so tqdm's
    TQDM_DISABLE setting still holds (an explicit disable=False overrode it)."""
    import tqdm.auto

    from latentlab._bars import progress_bar

    seen = []
    monkeypatch.setattr(tqdm.auto, "tqdm", lambda iterable=None, **kw: seen.append(kw) or iterable)
    assert progress_bar(False, [1, 2], desc="a") == [1, 2]
    progress_bar(True, None, desc="b", total=4)
    assert seen == [{"desc": "a", "disable": True}, {"desc": "b", "total": 4}]


@pytest.mark.parametrize("progress", [np.array([True, False]), "no", 1, None])
def test_progress_that_is_not_true_or_false_is_refused_before_any_file_is_written(tmp_path, progress, tiny_encoder):
    """progress=<array> raised numpy's "truth value is ambiguous" at the first bar, after render
    had written its manifest (and render_spec had loaded its models); "no" showed a bar."""
    from latentlab._bars import progress_bar

    with pytest.raises(ArgumentError, match="progress must be True or False"):
        progress_bar(progress, total=3)
    with pytest.raises(ArgumentError, match="progress must be True or False"):
        render(path_of([(2, 0)]), FakeDecoder(), out_dir=tmp_path / "r", progress=progress)
    spec = {"preset": "tiny", "frames": 2, "format": "gif", "keyframes": [{"text": "a cat"}, {"text": "a dog"}]}
    with pytest.raises(ArgumentError, match="progress must be True or False"):
        jobs_mod.render_spec(spec, out_dir=tmp_path / "s", progress=progress, encoder=tiny_encoder, decoder=_tiny_space_fake())
    assert list(tmp_path.iterdir()) == []


# -- properties: a render stopped anywhere, and settings that draw other frames -------------------

PROPS = settings(max_examples=15, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip

# (frames, hold) of each segment: holds make rows decoded once and copied
segments = st.lists(st.tuples(st.integers(1, 4), st.integers(0, 2)), min_size=1, max_size=3)
noises = st.sampled_from(["shared", "per-frame", "slerp"])


def path_of(segs, seed=0, raw=False):
    """A path of ``len(segs) + 1`` random unit keyframes (8-d, the fake decoder's), or its
    embeddings as a bare tensor (``raw``)."""
    g = torch.Generator().manual_seed(seed)
    kf = torch.nn.functional.normalize(torch.randn(len(segs) + 1, 8, generator=g), dim=-1)
    p = Trajectory(kf, [Segment(f, hold=h) for f, h in segs])
    return p.embeddings() if raw else p


def frame_files(folder):
    return sorted(int(f.name[6:11]) for f in Path(folder).glob("frame_*.png"))


def frames_on_disk(folder):
    return {f.name: (f.read_bytes(), f.stat().st_mtime_ns) for f in Path(folder).glob("frame_*.png")}


def record(folder):
    """The manifest, less the times it records (``created``, ``finished``)."""
    m = json.loads((Path(folder) / MANIFEST).read_text())
    return {k: v for k, v in m.items() if k not in ("created", "finished")}


class _Stop(Exception):
    pass


@PROPS
@given(segs=segments, raw=st.booleans(), noise=noises, seed=st.integers(0, 9), bs=st.integers(1, 4),
       bs2=st.integers(1, 4), k=st.integers(0, 30), how=st.sampled_from(["ctrl-c", "exception", "in the decoder"]))  # fmt: skip
def test_a_render_stopped_anywhere_resumes_to_the_render_never_stopped(recording_bars, segs, raw, noise, seed, bs, bs2, k, how):
    """Stopped at any frame (Ctrl-C or an exception from the callback, Ctrl-C in the decoder),
    the folder holds exactly the frames reported, each as the uninterrupted render draws it;
    the rerun (any batch size: the fake decoder draws a frame alike in any batch) decodes only
    rows none of whose frames is kept, reports each frame once, counts it once on its bar,
    and leaves the folder as an uninterrupted render does; a third run decodes nothing."""
    p = path_of(segs, seed, raw)
    noise = "shared" if raw and noise == "slerp" else noise  # (slerp follows a Trajectory's keyframes)
    T = p.shape[0] if raw else len(p)
    stop_at = k % T
    with tempfile.TemporaryDirectory() as tmp:
        ref_dir, out = Path(tmp) / "ref", Path(tmp) / "out"
        ref = render(p, FakeDecoder(), seed=seed, noise=noise, batch_size=bs, out_dir=ref_dir, progress=False)
        dec, reported = FakeDecoder(), []

        def stop(info):
            reported.append(info["frame"])
            if how != "in the decoder" and info["frame"] == stop_at:
                raise KeyboardInterrupt if how == "ctrl-c" else _Stop()

        if how == "in the decoder":  # Ctrl-C during the (stop_at % 3 + 1)-th decode: that batch is dropped
            decode, calls = dec._decode, []

            def interrupted(*args, **kwargs):
                calls.append(1)
                if len(calls) > stop_at % 3:
                    raise KeyboardInterrupt
                return decode(*args, **kwargs)

            dec._decode = interrupted
        stopped = True
        with contextlib.suppress(KeyboardInterrupt, _Stop):
            render(p, dec, seed=seed, noise=noise, batch_size=bs, out_dir=out, callback=stop, progress=False)
            stopped = False  # (Ctrl-C in a decode that never came)
        kept = frame_files(out)
        assert kept == sorted(set(reported))  # every frame reported is on disk, and no other
        assert all(np.array_equal(_load_png(out / f"frame_{i:05d}.png"), ref[i]) for i in kept)
        assert json.loads((out / MANIFEST).read_text())["complete"] is not stopped
        before = frames_on_disk(out)

        RecordingBar.made.clear()
        dec, seen = FakeDecoder(), []
        again = render(p, dec, seed=seed, noise=noise, batch_size=bs2, out_dir=out, callback=seen.append)
        assert np.array_equal(again, ref)
        z = np.asarray(p if raw else p.embeddings())
        where = p.params() if noise == "slerp" else [None] * T  # a row: one embedding, seed and noise
        row = [(z[i].tobytes(), i if noise == "per-frame" else 0, where[i]) for i in range(T)]
        draw_keys, kept_keys = set(row), {row[i] for i in kept}
        assert sum(dec.calls) == len(draw_keys - kept_keys)
        assert sorted(i["frame"] for i in seen) == list(range(T))
        assert sorted(i["frame"] for i in seen if i["resumed"]) == kept
        (bar,) = [b for b in RecordingBar.made if b.desc == "rendering"]
        assert (bar.total, bar.initial, bar.n) == (T, len(kept), T)
        now = frames_on_disk(out)
        assert all(now[name] == before[name] for name in before)  # kept frames untouched
        assert all(np.array_equal(_load_png(out / f"frame_{i:05d}.png"), ref[i]) for i in range(T))
        assert record(out) == record(ref_dir)
        assert sorted(f.name for f in out.iterdir()) == sorted(f.name for f in ref_dir.iterdir())
        assert np.load(out / "embeddings.npy").tobytes() == np.load(ref_dir / "embeddings.npy").tobytes()

        dec = FakeDecoder()
        render(p, dec, seed=seed, noise=noise, batch_size=bs, out_dir=out, progress=False)
        assert dec.calls == [] and frames_on_disk(out) == now


settings_ = st.fixed_dictionaries({
    "seed": st.integers(0, 2), "noise": noises, "steps": st.sampled_from([None, 1, 2]),
    "guidance_scale": st.sampled_from([None, 1, 1.0, 2.5]), "batch_size": st.sampled_from([None, 1, 2, 4]),
})  # fmt: skip


def drawn_by(s):
    """What of a render's settings draws its frames, spelt one way (the fake decoder's defaults:
    1 step, guidance 1.0)."""
    return {"seed": s["seed"], "noise": s["noise"], "steps": s["steps"] or 1,
            "guidance_scale": float(1.0 if s["guidance_scale"] is None else s["guidance_scale"])}  # fmt: skip


@PROPS
@given(segs=segments, segs2=segments, same_path=st.booleans(), a=settings_, b=settings_, k=st.integers(0, 30),
       finish=st.booleans(), overwrite=st.booleans())  # fmt: skip
def test_a_setting_that_draws_other_frames_is_refused_and_one_that_does_not_resumes(segs, segs2, same_path, a, b, k,
                                                                                     finish, overwrite):  # fmt: skip
    """Into a folder holding a render (finished or stopped), a render of other embeddings, seed,
    noise, steps or guidance is refused naming the folder's render as different, leaving every
    file there as it was; the same render under another batch size, or with its settings spelt
    otherwise (guidance 1 or 1.0 or unset), goes on without touching a kept frame; with
    ``overwrite=True`` the folder ends as a fresh render of the new settings (no stale frame)."""
    p = path_of(segs, 0)
    q = p if same_path else path_of(segs2, 1)
    with tempfile.TemporaryDirectory() as tmp:
        out, fresh_dir = Path(tmp) / "out", Path(tmp) / "fresh"

        def stop(info):
            if not finish and info["frame"] == k % info["frames"]:
                raise KeyboardInterrupt

        with contextlib.suppress(KeyboardInterrupt):
            render(p, FakeDecoder(), **a, out_dir=out, callback=stop, progress=False)
        before = {f.name: (f.read_bytes(), f.stat().st_mtime_ns) for f in out.iterdir()}
        same = same_path and drawn_by(a) == drawn_by(b)
        fresh = render(q, FakeDecoder(), **b, out_dir=fresh_dir, progress=False)
        try:
            got = render(q, FakeDecoder(), **b, out_dir=out, overwrite=overwrite, progress=False)
        except ArgumentError as e:
            assert not same and not overwrite, e
            assert "holds a different render" in str(e)
            assert {f.name: (f.read_bytes(), f.stat().st_mtime_ns) for f in out.iterdir()} == before
            return
        assert same or overwrite
        assert np.array_equal(got, fresh)
        assert sorted(f.name for f in out.iterdir()) == sorted(f.name for f in fresh_dir.iterdir())
        assert all(np.array_equal(_load_png(out / f"frame_{i:05d}.png"), fresh[i]) for i in range(len(q)))
        if same:
            now = frames_on_disk(out)
            assert all(now[n] == v for n, v in before.items() if n.startswith("frame_"))


def _tiny_space_fake():
    """The fake decoder, as a decoder of the tiny preset's space (for render_spec)."""
    dec = FakeDecoder()
    dec.space, dec.dim = "tiny-random", 32
    return dec


def _boom(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("stage", ["ready", "frames", "video", "recording it", "sheet"])
@settings(max_examples=3, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.integers(1, 4), hold=st.integers(0, 2), fmt=st.sampled_from(["gif", "webp"]),
       before=st.sampled_from([None, "gif", "webp"]), k=st.integers(0, 20), hold_first=st.integers(0, 2), pingpong=st.booleans(), size=st.sampled_from([None, 16]),
       batch_size=st.sampled_from([None, 1, 2]))  # fmt: skip
def test_a_spec_render_stopped_at_any_stage_is_finished_by_the_same_command(tiny_encoder, frames, hold, fmt, before, stage, k,
                                                                            hold_first, pingpong, size, batch_size):  # fmt: skip
    """render_spec stopped by Ctrl-C at any stage (after its checks, while drawing, while
    encoding the video, between the video and its record, while saving the contact sheet),
    into a new folder or one already holding this render's frames and another video: the same
    call again is not refused, draws nothing a stage after the frames, and leaves the folder,
    frames, video (at the size asked for) and contact sheet of a run never stopped; no temporary file is left; a third run draws nothing."""
    spec = {"preset": "tiny", "frames": frames + 1, "format": fmt, "hold_first": hold_first, "pingpong": pingpong,
            "keyframes": [{"text": "a cat"}, {"text": "a dog", "hold": hold}],
            **({"size": size} if size else {}), **({"batch_size": batch_size} if batch_size else {})}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        out, ref_dir = Path(tmp) / "out", Path(tmp) / "ref"
        ref = jobs_mod.render_spec(spec, out_dir=ref_dir, progress=False, encoder=tiny_encoder, decoder=_tiny_space_fake())
        if before is not None:  # the folder's render, finished, with another video
            jobs_mod.render_spec({**spec, "format": before, "fps": 10}, out_dir=out, progress=False, encoder=tiny_encoder,
                                 decoder=_tiny_space_fake())  # fmt: skip
        extra = {}
        with contextlib.ExitStack() as patches:
            if stage == "ready":
                extra["ready"] = _boom
            elif stage == "frames":
                def stop(info):
                    if info["frame"] == k % info["frames"]:
                        raise KeyboardInterrupt

                extra["callback"] = stop
            elif stage == "video":
                mp = patches.enter_context(pytest.MonkeyPatch.context())
                mp.setattr(video_mod, "_write_gif", _boom)
                mp.setattr(video_mod, "_write_webp", _boom)
            elif stage == "recording it":  # the video renamed into place, its record not yet written
                record_video = jobs_mod._record_video
                mp = patches.enter_context(pytest.MonkeyPatch.context())
                mp.setattr(jobs_mod, "_record_video",
                           lambda v, d, *, pending=False: record_video(v, d, pending=True) if pending else _boom())
            else:
                mp = patches.enter_context(pytest.MonkeyPatch.context())
                mp.setattr(video_mod, "save_image", _boom)
            with pytest.raises(KeyboardInterrupt):
                jobs_mod.render_spec(spec, out_dir=out, progress=False, encoder=tiny_encoder, decoder=_tiny_space_fake(), **extra)
        assert not list(Path(tmp).rglob(".*.tmp*"))
        dec = _tiny_space_fake()
        res = jobs_mod.render_spec(spec, out_dir=out, progress=False, encoder=tiny_encoder, decoder=dec)
        assert np.array_equal(res.frames, ref.frames)
        if stage in ("video", "recording it", "sheet") or before is not None:
            assert dec.calls == []
        got, want = animated_frames(res.video)[0], animated_frames(ref.video)[0]
        assert res.video.suffix == f".{fmt}" and {g.shape for g in got} == {(size or 8, size or 8, 3)}
        assert len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want))
        assert res.contact_sheet.read_bytes() == ref.contact_sheet.read_bytes()
        assert json.loads((out / MANIFEST).read_text())["complete"] is True
        assert sorted(f.name for f in out.iterdir()) == sorted(f.name for f in ref_dir.iterdir())
        dec = _tiny_space_fake()
        jobs_mod.render_spec(spec, out_dir=out, progress=False, encoder=tiny_encoder, decoder=dec)
        assert dec.calls == []


# -- regressions found by the properties above -------------------------------------------


def test_keyframe_seeds_given_as_an_iterator_are_recorded_and_tell_renders_apart(tmp_path, fake_decoder):
    """keyframe_seeds from a generator (or map()) were read twice: the noise took the seeds, the
    manifest and fingerprint got []; a render of other seeds into the folder then resumed it."""
    p = path_of([(3, 0), (2, 0)])
    out = tmp_path / "r"
    frames = render(p, fake_decoder, noise="slerp", keyframe_seeds=(s for s in [1, 2, 3]), out_dir=out, progress=False)
    assert json.loads((out / MANIFEST).read_text())["keyframe_seeds"] == [1, 2, 3]
    assert np.array_equal(frames, render(p, FakeDecoder(), noise="slerp", keyframe_seeds=[1, 2, 3], progress=False))
    with pytest.raises(ArgumentError, match=r"holds a different render \(keyframe_seeds \[1, 2, 3\] -> \[7, 8, 9\]\)"):
        render(p, fake_decoder, noise="slerp", keyframe_seeds=map(int, "789"), out_dir=out, progress=False)


@pytest.mark.parametrize("seeds", [5, np.int64(5), torch.tensor(5), 1.5])
def test_a_single_keyframe_seed_is_refused_naming_keyframe_seeds(fake_decoder, seeds):
    """keyframe_seeds=5 (a seed, not one per keyframe) was a raw TypeError: 'int' object is not iterable."""
    with pytest.raises(ArgumentError, match=r"keyframe_seeds must be a list of seeds, one per keyframe"):
        render(path_of([(3, 0)]), fake_decoder, noise="slerp", keyframe_seeds=seeds, progress=False)


def test_noise_given_as_an_array_is_refused_naming_noise(fake_decoder):
    """noise= names a mode; a starting-noise array given there was numpy's raw 'truth value of an array'."""
    with pytest.raises(ArgumentError, match=r"noise must be one of 'shared'"):
        render(path_of([(3, 0)]), fake_decoder, noise=np.zeros((4, 1, 8, 8)), progress=False)


def test_a_callback_stopping_the_render_on_a_kept_frame_closes_its_bar(tmp_path, fake_decoder, monkeypatch, recording_bars):
    """A stop asked for while a resumed render reports its kept frames left the progress bar open."""
    closed = []

    class Bar(RecordingBar):
        def close(self):
            closed.append(self)

    import tqdm.auto

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)  # (its bars are kept in recording_bars)
    p, out = path_of([(5, 0)]), tmp_path / "r"
    _interrupt_at(p, fake_decoder, out, 2, progress=True)
    _interrupt_at(p, fake_decoder, out, 1, batch_size=None, progress=True)  # frame 1 is a kept one
    assert len(recording_bars) == 2 and closed == recording_bars


def test_a_mode_given_as_an_array_is_refused_naming_it(fake_decoder, tiny_encoder):
    """A mode or format name given as an array (a mix-up with the noise arrays decoders take)
    is an ArgumentError naming the argument everywhere, as render's noise= is: even_pacing's
    noise and metric, variations' mode, iterative_text_diff's noise, the scrubber's noise, an
    encoder's dtype and a spec's noise, pacing, pacing_metric, pacing_scope and format (numpy's raw
    'truth value of an array' ValueError, or 'unhashable type' for the dtype, before)."""
    import latentlab as ll
    from latentlab.encoders import _resolve_dtype
    from latentlab.spec import load_spec

    arr = np.array(["shared", "slerp"])
    p = Trajectory(torch.nn.functional.normalize(torch.randn(2, 8, generator=torch.Generator().manual_seed(0)), dim=-1), frames=3)
    z = p.keyframes[:1]
    tiny_space = FakeDecoder()
    tiny_space.space, tiny_space.dim = "tiny-random", 32
    cases = [
        (lambda: ll.even_pacing(p, None, fake_decoder, metric="pixel", noise=arr), r"noise must be one of"),
        (lambda: ll.even_pacing(p, None, fake_decoder, metric=arr), r"metric must be one of"),
        (lambda: ll.variations(fake_decoder, z, n=2, mode=arr), r"mode must be one of"),
        (lambda: ll.iterative_text_diff(tiny_encoder, tiny_space, tiny_encoder.encode_text(["x"]), "a", "b", noise=arr),
         r"noise must be 'shared' or 'inverted'"),
        (lambda: ll.scrub(p, fake_decoder, noise=arr), r"supports noise='shared' or 'per-frame'"),
        (lambda: _resolve_dtype(np.array(["fp32"])), r"dtype must be torch.float32"),
    ]
    for field in ("noise", "pacing", "pacing_metric", "pacing_scope", "format"):
        spec = {"keyframes": [{"text": "a"}, {"text": "b"}], field: arr}
        cases.append((lambda spec=spec: load_spec(spec), rf"'{field}' must be one of"))
    for call, match in cases:
        with pytest.raises(ArgumentError, match=match):
            call()


def test_render_reads_a_tilde_out_dir_as_the_home_and_refuses_a_nul(tmp_path, monkeypatch, fake_decoder):
    """render(out_dir="~/r") rendered into a folder "./~/r" (render_spec, write_video and
    save_frames read "~" as the home), and out_dir holding a NUL raised a bare "ValueError:
    embedded null byte" (the NUL fix reached user_path, not render's check_out_dir)."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    z = torch.nn.functional.normalize(torch.randn(2, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    frames = render(z, fake_decoder, out_dir="~/r", progress=False)
    assert (home / "r" / "manifest.json").is_file() and not (work / "~").exists()
    assert len(list((home / "r").glob("frame_*.png"))) == len(frames) == 2
    with pytest.raises(ArgumentError, match="NUL"):
        render(z, fake_decoder, out_dir="r\x00x", progress=False)
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("progress", ["no", 1, np.array([True])])
def test_invert_checks_progress_whether_or_not_it_refines(tiny_decoder, progress):
    """Decoder.invert(progress=...) reached progress_bar only when refining: with refine=0 (the
    default of every decoder but mini) "no", 1 or an array passed silently, refused only once
    refine > 0."""
    dec = tiny_decoder
    z = torch.nn.functional.normalize(torch.randn(1, dec.dim, generator=torch.Generator().manual_seed(1)), dim=-1)
    image = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ArgumentError, match="progress must be True or False"):
        dec.invert(image, z, steps=1, refine=0, progress=progress)
    for ok in (None, False, np.bool_(True)):  # still taken
        assert dec.invert(image, z, steps=1, refine=0, progress=ok).shape == (1, *dec.noise_shape())


_NAMES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=20)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(name=_NAMES.filter(lambda s: not s.startswith("~")))
def test_render_takes_an_out_dir_without_a_tilde_as_written(name):
    """render's out_dir is read as render_spec reads it; a name not starting with ~ is the path as
    written (a str or a Path alike)."""
    from latentlab.render import check_out_dir

    assert check_out_dir(name) == Path(name) == check_out_dir(Path(name))


# -- render() with any one write failing ---------------------------------------------------


def _random_path(segs, seed=0):
    g = torch.Generator().manual_seed(seed)
    kf = torch.nn.functional.normalize(torch.randn(len(segs) + 1, 8, generator=g), dim=-1)
    return Trajectory(kf, [Segment(f, hold=h) for f, h in segs])


@settings(derandomize=True, max_examples=12, deadline=None)
@given(segs=st.lists(st.tuples(st.integers(1, 3), st.integers(0, 1)), min_size=1, max_size=2),
       noise=st.sampled_from(["shared", "per-frame", "slerp"]), bs=st.integers(1, 3),
       where=st.sampled_from(["os.replace", "png", "npy"]), exc=st.sampled_from(["ctrl-c", "full disk"]),
       n=st.integers(1, 10))  # fmt: skip
def test_a_render_whose_nth_write_fails_leaves_only_whole_files_and_resumes_to_the_same_frames(segs, noise, bs, where,
                                                                                              exc, n):  # fmt: skip
    """Any one write of ``render()`` failing (the n-th rename, PNG or ``.npy`` write; Ctrl-C or a
    full disk): the error reaches the caller as it was (Ctrl-C never swallowed), the folder holds
    no temporary file and only frames equal to an uninterrupted render's, its manifest and
    embeddings read whole, and the same call again finishes with the uninterrupted render's frames,
    files and frame bytes (the fake decoder draws a frame alike in any batch)."""
    from PIL import Image

    from latentlab.render import MANIFEST, _load_png, render

    r = sys.modules["latentlab.render"]
    p = _random_path(segs)
    with tempfile.TemporaryDirectory() as tmp:
        ref_dir, out = Path(tmp) / "ref", Path(tmp) / "out"
        ref = render(p, FakeDecoder(), noise=noise, batch_size=bs, out_dir=ref_dir, progress=False)
        calls = []

        def hit():
            calls.append(1)
            if len(calls) == n:
                raise write_fault(exc)

        with pytest.MonkeyPatch.context() as m:
            if where == "os.replace":
                real_replace = os.replace
                m.setattr(r.os, "replace", lambda a, b: (hit(), real_replace(a, b))[1])
            elif where == "png":
                real_save = Image.Image.save
                m.setattr(Image.Image, "save", lambda self, *a, **k: (hit(), real_save(self, *a, **k))[1])
            else:
                real_np = np.save
                m.setattr(r.np, "save", lambda *a, **k: (hit(), real_np(*a, **k))[1])
            err = None
            try:
                render(p, FakeDecoder(), noise=noise, batch_size=bs, out_dir=out, progress=False)
            except BaseException as e:  # noqa: BLE001
                err = e
        if len(calls) < n:
            assert err is None
            return
        assert isinstance(err, KeyboardInterrupt if exc == "ctrl-c" else OSError), err
        out.mkdir(exist_ok=True)  # (gone where nothing was kept: a folder the render made is removed if left empty)
        assert not [f for f in out.iterdir() if ".tmp" in f.name]
        for f in out.glob("frame_*.png"):
            assert np.array_equal(_load_png(f), ref[int(f.name[6:11])])
        if (out / MANIFEST).exists():
            assert json.loads((out / MANIFEST).read_text())["complete"] is False
        if (out / "embeddings.npy").exists():
            assert np.load(out / "embeddings.npy").tobytes() == np.load(ref_dir / "embeddings.npy").tobytes()
        again = render(p, FakeDecoder(), noise=noise, batch_size=bs, out_dir=out, progress=False)
        assert np.array_equal(again, ref)
        assert sorted(f.name for f in out.iterdir()) == sorted(f.name for f in ref_dir.iterdir())
        assert all((out / f.name).read_bytes() == f.read_bytes() for f in ref_dir.glob("frame_*.png"))
        assert json.loads((out / MANIFEST).read_text())["complete"] is True


# -- render(), second pass (2026-12-07): overwrite and spec checked, a finished render stays complete --


def _keyframe_path(frames=5, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Trajectory.chain(torch.nn.functional.normalize(torch.randn(k, 8, generator=g), dim=-1), frames=frames)


@pytest.mark.parametrize("value", ["no", "False", 1, 0, None, np.array(True)])
def test_overwrite_that_is_not_true_or_false_is_refused_and_deletes_nothing(tmp_path, fake_decoder, value):
    out = tmp_path / "r"
    render(_keyframe_path(), fake_decoder, seed=0, out_dir=out, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ArgumentError, match="overwrite must be True or False"):
        render(_keyframe_path(), fake_decoder, seed=1, out_dir=out, overwrite=value, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_render_spec_refuses_an_overwrite_that_is_not_true_or_false(tmp_path):
    from latentlab.jobs import render_spec

    with pytest.raises(ArgumentError, match="overwrite must be True or False"):
        render_spec({"preset": "tiny", "keyframes": [{"text": "a"}, {"text": "b"}]}, out_dir=tmp_path / "r",
                    overwrite="no", progress=False)  # fmt: skip
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("spec", ["hello", ["a"], {"keyframes": "a, b"}, {"keyframes": {"a": 1}}])
def test_a_spec_its_own_rerun_could_not_read_is_refused_before_anything_is_written(tmp_path, fake_decoder, spec):
    with pytest.raises(ArgumentError, match="spec must be a render spec"):
        render(_keyframe_path(), fake_decoder, out_dir=tmp_path / "r", spec=spec, progress=False)
    assert not (tmp_path / "r").exists()


def test_a_dict_spec_is_recorded_and_the_render_resumes(tmp_path, fake_decoder):
    spec = {"keyframes": [{"text": "a"}], "note": "x"}
    a = render(_keyframe_path(), fake_decoder, out_dir=tmp_path / "r", spec=spec, progress=False)
    b = render(_keyframe_path(), fake_decoder, out_dir=tmp_path / "r", spec=spec, progress=False)
    assert np.array_equal(a, b)
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["spec"] == spec


@pytest.mark.parametrize("dtype", [torch.complex64, torch.int64, torch.bool])
def test_keyframe_noise_that_is_not_a_float_tensor_is_refused(fake_decoder, dtype):
    with pytest.raises(ArgumentError, match="keyframe_noise must be a float tensor"):
        render(_keyframe_path(), fake_decoder, noise="slerp", keyframe_noise=torch.ones(3, 1, 8, 8, dtype=dtype), progress=False)


def test_a_finished_render_stopped_while_its_kept_frames_are_reported_stays_complete(tmp_path, fake_decoder):
    out = tmp_path / "r"
    render(_keyframe_path(), fake_decoder, out_dir=out, progress=False)

    def stop(info):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        render(_keyframe_path(), fake_decoder, out_dir=out, callback=stop, progress=False)
    m = json.loads((out / "manifest.json").read_text())
    assert m["complete"] is True and "finished" in m


def test_an_unfinished_render_stopped_on_a_kept_frame_stays_incomplete(tmp_path, fake_decoder):
    out = tmp_path / "r"
    render(_keyframe_path(), fake_decoder, out_dir=out, progress=False)
    (out / "frame_00002.png").unlink()

    def stop(info):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        render(_keyframe_path(), fake_decoder, out_dir=out, callback=stop, progress=False)
    assert json.loads((out / "manifest.json").read_text())["complete"] is False


@settings(derandomize=True, max_examples=8, deadline=None)
@given(frames=st.integers(2, 7), stop_at=st.integers(0, 7), bs=st.integers(1, 9), bs2=st.integers(1, 9),
       noise=st.sampled_from(["shared", "per-frame", "slerp"]))  # fmt: skip
def test_a_render_stopped_anywhere_resumes_with_any_batch_size_to_a_complete_manifest(tmp_path_factory, frames, stop_at,
                                                                                        bs, bs2, noise):  # fmt: skip
    out = tmp_path_factory.mktemp("r") / "r"
    d = FakeDecoder()
    path = _keyframe_path(frames=frames, k=2)

    def stop(info):
        if info["frame"] == stop_at:
            raise KeyboardInterrupt

    try:
        render(path, d, noise=noise, out_dir=out, batch_size=bs, callback=stop, progress=False)
        stopped = False
    except KeyboardInterrupt:
        stopped = True
    assert json.loads((out / "manifest.json").read_text())["complete"] is (not stopped)
    got = render(path, d, noise=noise, out_dir=out, batch_size=bs2, progress=True)
    assert json.loads((out / "manifest.json").read_text())["complete"] is True
    assert np.array_equal(got, render(path, FakeDecoder(), noise=noise, progress=False))
    with pytest.raises(ArgumentError, match="different render"):
        render(path, d, noise=noise, seed=1, out_dir=out, progress=False)


def test_a_slerp_seed_whose_keyframe_seeds_would_pass_2_63_is_refused_before_any_frame(tmp_path, fake_decoder):
    with pytest.raises(ArgumentError, match="seed=9223372036854775807 with noise='slerp' gives keyframe 2"):
        render(_keyframe_path(k=3), fake_decoder, seed=2**63 - 1, noise="slerp", out_dir=tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()
    # the largest seed that fits renders, and its recorded keyframe seeds are seeds render takes back
    out = tmp_path / "ok"
    a = render(_keyframe_path(k=3), fake_decoder, seed=2**63 - 3, noise="slerp", out_dir=out, progress=False)
    ks = json.loads((out / "manifest.json").read_text())["keyframe_seeds"]
    assert ks == [2**63 - 3, 2**63 - 2, 2**63 - 1]
    assert np.array_equal(a, render(_keyframe_path(k=3), fake_decoder, seed=5, noise="slerp", keyframe_seeds=ks, progress=False))


def test_a_users_embeddings_file_in_a_folder_without_a_manifest_is_not_written_over(tmp_path, fake_decoder):
    out = tmp_path / "project"
    out.mkdir()
    np.save(out / "embeddings.npy", np.arange(6.0))
    with pytest.raises(ArgumentError, match="holds embeddings.npy"):
        render(_keyframe_path(), fake_decoder, out_dir=out, progress=False)
    assert np.array_equal(np.load(out / "embeddings.npy"), np.arange(6.0))
    assert sorted(p.name for p in out.iterdir()) == ["embeddings.npy"]
    render(_keyframe_path(), fake_decoder, out_dir=out, overwrite=True, progress=False)  # replaced when asked
    assert np.load(out / "embeddings.npy").shape == (5, 8)
