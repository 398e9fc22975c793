"""render() fills one array as frames finish: a resumed render returns, writes and reports the
frames of one run, and a decoder reusing its output buffer changes no earlier frame."""

from __future__ import annotations

import numpy as np
import torch
from conftest import FakeDecoder
from hypothesis import given, settings
from hypothesis import strategies as st

from latentlab.render import render


def _path(n: int, repeats: list[bool]) -> torch.Tensor:
    z = torch.nn.functional.normalize(torch.randn(n, 8, generator=torch.Generator().manual_seed(n)), dim=-1)
    for k in range(1, n):
        if repeats[k - 1]:
            z[k] = z[k - 1]  # a hold: one row, decoded once and copied
    return z


@settings(derandomize=True, max_examples=12, deadline=None)
@given(
    n=st.integers(1, 6),
    repeats=st.lists(st.booleans(), min_size=5, max_size=5),
    batch_size=st.integers(1, 4),
    deleted=st.sets(st.integers(0, 5)),
    known=st.booleans(),
)
def test_a_resume_returns_writes_and_reports_the_frames_of_one_run(tmp_path_factory, n, repeats, batch_size, deleted,
                                                                   known):  # fmt: skip
    """Kept, redrawn and copied frames land in their places of the array returned (known size or
    not), the PNGs on disk are those frames, and each callback image is the returned frame, read-only."""
    from PIL import Image

    dec = FakeDecoder()
    if not known:
        dec.resolution = None  # the size known only from the manifest's frame_shape, dropped below
    d = tmp_path_factory.mktemp("r")
    z = _path(n, repeats)
    whole = render(z, dec, out_dir=d, progress=False, batch_size=batch_size)
    for k in deleted & set(range(n)):
        (d / f"frame_{k:05d}.png").unlink()
    if not known:
        import json

        m = json.loads((d / "manifest.json").read_text())
        m.pop("frame_shape", None)
        (d / "manifest.json").write_text(json.dumps(m))
    got: dict[int, np.ndarray] = {}
    again = render(z, dec, out_dir=d, progress=False, batch_size=batch_size,
                   callback=lambda info: got.__setitem__(info["frame"], info["image"]))  # fmt: skip
    assert again.dtype == np.uint8 and again.flags.c_contiguous and again.flags.writeable
    assert np.array_equal(again, whole)
    assert sorted(got) == list(range(n))
    for k in range(n):
        assert not got[k].flags.writeable and np.array_equal(got[k], whole[k])
        assert np.array_equal(np.asarray(Image.open(d / f"frame_{k:05d}.png")), whole[k])


def test_a_decoder_reusing_its_output_buffer_does_not_change_earlier_frames():
    """A decoder handing back the same (read-only) buffer every batch: the frames returned are
    each batch's, not the last one's repeated."""
    dec = FakeDecoder()
    real = dec._decode
    buf: dict[tuple[int, ...], np.ndarray] = {}

    def reusing(embeddings, noise, **kw):
        out = real(embeddings, noise, **kw)
        b = buf.setdefault(out.shape, np.empty_like(out))
        b.flags.writeable = True
        b[...] = out
        b.flags.writeable = False
        return b

    dec._decode = reusing
    z = _path(5, [False] * 5)
    assert np.array_equal(render(z, dec, progress=False, batch_size=2),
                          render(z, FakeDecoder(), progress=False, batch_size=1))  # fmt: skip
