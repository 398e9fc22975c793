"""A render holds its frames once, not twice (peak memory, frames unchanged)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import torch
from conftest import FakeDecoder, RecordingBar

from latentlab.render import render

SIDE = 256  # 196 KB a frame: 100 frames are ~20 MB, far above the render's own bookkeeping


def _big_fake():
    """FakeDecoder drawing flat SIDE x SIDE frames, each of its embedding's colour, straight as uint8
    (no float temporaries of its own; flat frames are quick to write as PNGs and to read back)."""
    dec = FakeDecoder()
    dec.resolution = SIDE

    def flat(embeddings, noise, *, seeds, steps, guidance_scale):
        dec.calls.append(embeddings.shape[0])
        colour = ((embeddings[:, :3] * 0.5 + 0.5) * 255).round().to(torch.uint8).numpy()
        return np.ascontiguousarray(np.broadcast_to(colour[:, None, None, :], (len(colour), SIDE, SIDE, 3)))

    dec._decode = flat
    return dec


def _path(n: int) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(n, 8, generator=torch.Generator().manual_seed(0)), dim=-1)


def _peak(fn):
    """(result, peak bytes traced while fn ran, bytes still traced after it)."""
    tracemalloc.start()
    try:
        out = fn()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return out, peak, current


def test_render_holds_its_frames_once_not_a_list_of_batches_and_their_stack():
    """render() kept every batch in a list and returned np.stack of it: as it returned, every frame
    was held twice (a 2,000-frame render at 512 px: 1.6 GB for 0.8 GB of frames). Now the frames go
    straight into the array returned: the peak is about the frames once (a generous margin below 2x)."""
    dec, z = _big_fake(), _path(100)
    frames, peak, _ = _peak(lambda: render(z, dec, progress=False))
    assert frames.shape == (100, SIDE, SIDE, 3) and frames.dtype == np.uint8 and frames.flags.c_contiguous
    assert peak < 1.5 * frames.nbytes, (peak, frames.nbytes)  # (old code: >= 2x)
    colour = ((z[:, :3] * 0.5 + 0.5) * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(frames, np.broadcast_to(colour[:, None, None, :], frames.shape))  # each frame its own


def test_render_returns_c_contiguous_frames_so_the_video_writer_does_not_copy_them():
    """A decoder whose frames are a permuted view (FakeDecoder's, as a torch permute then .numpy()
    gives) made np.stack return frames in that layout, which write_video then copied whole
    (np.ascontiguousarray) while render_spec still held the render's: a third copy."""
    frames = render(_path(6), FakeDecoder(), progress=False)
    assert frames.flags.c_contiguous and frames.flags.writeable


def test_a_callback_that_keeps_the_frames_does_not_keep_a_second_copy():
    """A callback keeping each frame it is shown (a notebook's gallery) held views of the decoded
    batches, and render returned a stacked copy of them: two copies stayed after it returned."""
    dec, z = _big_fake(), _path(60)
    got: list[np.ndarray] = []

    def run():
        return render(z, dec, progress=False, callback=lambda info: got.append(info["image"]))

    frames, peak, current = _peak(run)
    assert current < 1.5 * frames.nbytes and peak < 1.5 * frames.nbytes, (current, peak, frames.nbytes)
    assert all(np.array_equal(g, f) and not g.flags.writeable for g, f in zip(got, frames)) and len(got) == 60


def test_resuming_reads_the_kept_frames_into_the_result_not_beside_it(tmp_path):
    """A resumed render read every kept frame from disk into a list, then stacked it: twice. Now
    each frame read goes into the array returned; the frames are the same as the first run's."""
    dec, z = _big_fake(), _path(40)
    first = render(z, dec, out_dir=tmp_path / "r", progress=False)
    calls = len(dec.calls)
    again, peak, _ = _peak(lambda: render(z, dec, out_dir=tmp_path / "r", progress=False))
    assert len(dec.calls) == calls  # nothing drawn again
    assert np.array_equal(again, first)
    assert peak < 1.5 * first.nbytes, (peak, first.nbytes)  # (old code: >= 2x)


def test_a_resume_missing_some_frames_and_copies_returns_the_frames_of_one_run(tmp_path):
    """Kept frames, frames drawn again and a hold's copies land in their places in the one array
    returned (kept frames moved into it as it is made); a partly deleted render gives the same frames."""
    dec = FakeDecoder()
    path = _path(4)[[0, 0, 0, 1, 2, 2, 3, 3]]  # repeated embeddings: rows drawn once, written as copies
    whole = render(path, dec, out_dir=tmp_path / "r", progress=False)
    for k in (0, 3, 6, 7):
        (tmp_path / "r" / f"frame_{k:05d}.png").unlink()
    calls = sum(dec.calls)
    assert np.array_equal(render(path, dec, out_dir=tmp_path / "r", progress=False), whole)
    assert sum(dec.calls) == calls + 2  # frame 3 and the row of 6 and 7; 0 copied from 1
    assert np.array_equal(render(path, dec, progress=False), whole)
    assert np.array_equal(whole[0], whole[2]) and np.array_equal(whole[6], whole[7])


def test_webp_shares_one_picture_per_frame_for_pingpong_repeats(tmp_path, monkeypatch):
    """The webp writer made a PIL picture for every frame shown, a ping-pong's way back included
    (holds already shared one): nearly twice the frames, at 4 bytes a pixel. Now each frame is made
    into a picture once; the bar still counts every frame shown, and the file is the same."""
    import PIL.Image

    from latentlab import video as video_mod
    from latentlab.video import write_video

    made = []
    real = PIL.Image.fromarray
    monkeypatch.setattr(PIL.Image, "fromarray", lambda *a, **k: made.append(1) or real(*a, **k))
    monkeypatch.setattr("tqdm.auto.tqdm", RecordingBar)
    RecordingBar.made = []
    f = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    write_video(f, tmp_path / "a.webp", fps=10, pingpong=True, hold_last=2, progress=True)
    assert len(made) == 6  # (old code: 6 + 4 for the way back)
    assert RecordingBar.made[-1].n == 6 + 2 + 4  # every frame shown, holds and the way back included
    assert video_mod.read_video(tmp_path / "a.webp").shape[1:] == (16, 16, 3)
