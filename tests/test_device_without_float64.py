"""Similarity plots and path steps of embeddings on a device without float64 (Apple's MPS, simulated
on the virtual CUDA device) give the CPU's values."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch.overrides import TorchFunctionMode
from virtual_cuda import OnDevice, virtual_cuda

from latentlab.space import tag


class _NoFloat64There(TorchFunctionMode):
    """Apple's MPS, roughly: a float64 tensor on the (virtual) device raises torch's TypeError."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if isinstance(out, OnDevice) and out.dtype == torch.float64:
            raise TypeError("Cannot convert a MPS Tensor to float64 dtype (the MPS framework has no float64)")
        return out


@contextlib.contextmanager
def _mps_like():
    with virtual_cuda(), _NoFloat64There():
        yield


def _unit(n, d, seed):
    return torch.nn.functional.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_similarity_plots_and_steps_of_embeddings_on_a_device_without_float64():
    """plot_similarity_matrix / plot_similarity (made float64 on the embeddings' device, then
    moved: on an Apple GPU torch's raw TypeError) and consecutive_distances (float64 where the
    path lies) of embeddings on a device without float64: the CPU's values, as docs/models.md
    lists neither among the steps that need CPU tensors there."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import latentlab as ll
    from latentlab.plots import plot_similarity, plot_similarity_matrix

    z, w = tag(_unit(5, 8, 5), "s"), tag(_unit(3, 8, 6), "s")
    try:
        want_m = plot_similarity_matrix(z, w).images[0].get_array()
        want_s = [ln.get_ydata() for ln in plot_similarity(z, w).get_lines()]
        want_d = ll.consecutive_distances(z)
        with _mps_like():
            zg, wg = tag(z.to("cuda"), "s"), tag(w.to("cuda"), "s")
            assert np.array_equal(plot_similarity_matrix(zg, wg).images[0].get_array(), want_m)
            got_s = [ln.get_ydata() for ln in plot_similarity(zg, wg).get_lines()]
            assert all(np.array_equal(a, b) for a, b in zip(got_s, want_s, strict=True))
            assert np.array_equal(ll.consecutive_distances(zg), want_d)
    finally:
        plt.close("all")
