"""A long-lived process (a notebook kernel, a script looping over specs) that renders and
checks many times: nothing it holds may grow with each render or check."""

from __future__ import annotations

import os
import threading

import numpy as np
import torch

import latentlab as ll
from conftest import FakeDecoder


def _cached_masks() -> int:
    from latentlab.mini import shapes

    cache = getattr(shapes, "_TEMPLATE_CACHE", None)
    return len(cache) if cache is not None else shapes._template.cache_info().currsize


def test_the_pixel_checker_keeps_a_bounded_number_of_shape_masks():
    # check_image kept one mask per shape for every box size it ever met, for the life of the
    # process: a notebook checking its renders' frames grew by megabytes per hundred frames
    from latentlab.mini import shapes

    rng = np.random.default_rng(0)
    sizes = {(int(w), int(h)) for w, h in rng.integers(8, 88, (400, 2))}
    for w, h in sorted(sizes)[:200]:
        image = np.full((96, 96, 3), 255, np.uint8)
        image[4 : 4 + h, 4 : 4 + w] = (200, 20, 20)
        (found,) = shapes.check_image(image, max_objects=1)
        assert found["shape"] == "square" and found["colour"] == "red"
    assert _cached_masks() <= 1024


def test_a_cached_shape_mask_cannot_be_changed_by_a_caller():
    from latentlab.mini import shapes

    mask = shapes._template("circle", 12, 10)
    assert mask.shape == (10, 12) and mask.dtype == bool and not mask.flags.writeable


def test_renders_in_a_loop_leave_no_fds_threads_or_children_behind(tmp_path):
    # twelve renders into folders, finished, stopped from the callback and failing in the
    # decoder: each one's PNG writer thread, lock file descriptor and bar are let go
    dec = FakeDecoder()

    def state():
        kids = open(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read().split()
        names = sorted(t.name for t in threading.enumerate() if t.name != "tqdm_monitor")
        return len(os.listdir("/proc/self/fd")), names, kids

    def stop(info):
        if info["frame"] == 1:
            raise KeyboardInterrupt

    def boom(*a, **k):
        raise RuntimeError("boom")

    z = torch.nn.functional.normalize(torch.randn(4, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    before = None
    for i in range(12):
        try:
            if i % 3 == 1:
                ll.render(z, dec, out_dir=tmp_path / f"r{i}", callback=stop, progress=False)
            elif i % 3 == 2:
                dec._decode = boom
                try:
                    ll.render(z, dec, out_dir=tmp_path / f"r{i}", progress=False)
                finally:
                    del dec._decode
            else:
                ll.render(z, dec, out_dir=tmp_path / f"r{i}", progress=False)
        except (KeyboardInterrupt, RuntimeError):
            pass
        if i == 2:
            before = state()
    assert state() == before
    assert not list(tmp_path.glob("r*/.latentlab.lock"))
