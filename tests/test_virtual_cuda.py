"""Code paths that only run on a GPU, checked on this CPU-only machine under a virtual CUDA device
(tests/virtual_cuda.py: latentlab's operators, which a GPU test checks on CUDA, pass under it, so
what fails under it is what would fail on a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latentlab.errors import ArgumentError
from latentlab.space import tag
from virtual_cuda import CUDA as _CUDA
from virtual_cuda import virtual_cuda


def _unit(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=g, dtype=torch.float32), dim=-1)


def test_the_virtual_gpu_catches_what_a_gpu_would():
    """The harness itself: a CPU tensor meeting a 'cuda' one, or .numpy() of one, raises; ops that
    follow their inputs' device (latentlab.slerp, checked on CUDA by a gpu test) pass."""
    import latentlab as ll

    with virtual_cuda():
        x = torch.ones(3).to("cuda")
        assert x.device == _CUDA and x.cpu().device.type == "cpu"
        with pytest.raises(RuntimeError, match="same device"):
            _ = x * torch.ones(3)
        with pytest.raises(TypeError, match="numpy"):
            x.numpy()
        a, b = tag(_unit(1, 8, 0).to("cuda"), "s"), tag(_unit(1, 8, 1).to("cuda"), "s")
        assert ll.slerp(a, b, torch.linspace(0, 1, 3)).device == _CUDA


# -- render.slerp_noise: noises on a GPU ----------------------------------------------------


def test_slerp_noise_of_noises_on_a_gpu_stays_there_with_the_same_values():
    """slerp_noise of two noises on CUDA (its parameters, made on the CPU, met them: a raw
    "Expected all tensors to be on the same device") gives what it gives on the CPU, on their device."""
    from latentlab.render import slerp_noise

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 3, 4, 4, generator=g).unbind()
    want = slerp_noise(a, b, [0.0, 0.3, 1.0])
    with virtual_cuda():
        for t in ([0.0, 0.3, 1.0], torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64), np.array([0.0, 0.3, 1.0])):
            got = slerp_noise(a.to("cuda"), b.to("cuda"), t)
            assert got.device == _CUDA
            assert torch.equal(got.cpu(), want)
        assert torch.equal(slerp_noise(a.to("cuda"), b.to("cuda"), 0.3).cpu(), want[1])


def test_slerp_noise_refuses_noises_on_two_devices():
    from latentlab.render import slerp_noise

    a, b = torch.randn(2, 1, 4, 4).unbind()
    with virtual_cuda(), pytest.raises(ArgumentError, match="one device.*b.to\\(a.device\\)"):
        slerp_noise(a.to("cuda"), b, 0.5)


# -- explore.fit_pca / PCA: embeddings on a GPU ----------------------------------------------


def test_uncentred_pca_of_embeddings_on_a_gpu():
    """fit_pca(center=False) of CUDA embeddings (its zero mean was made on the CPU: a raw error)
    gives the CPU's PCA."""
    from latentlab.explore import fit_pca

    z = tag(_unit(6, 8, 2), "s")
    want = fit_pca(z, center=False)
    with virtual_cuda():
        got = fit_pca(tag(z.to("cuda"), "s"), center=False)
        assert got.mean.device == _CUDA
        assert torch.equal(got.components.cpu(), want.components) and torch.equal(got.mean.cpu(), want.mean)


def test_a_pca_fitted_on_a_gpu_projects_cpu_embeddings_and_the_reverse():
    """A PCA fitted on CUDA embeddings projects and rebuilds CPU ones (and a CPU PCA CUDA ones)
    as the CPU PCA does, on the PCA's device (a raw device error before)."""
    from latentlab.explore import fit_pca

    z, w = tag(_unit(6, 8, 3), "s"), tag(_unit(2, 8, 4), "s")
    pca = fit_pca(z)
    want_p, want_r = pca.project(w, 2), pca.reconstruct(w, 2)
    with virtual_cuda():
        gpu = fit_pca(tag(z.to("cuda"), "s"))
        assert torch.allclose(gpu.project(w, 2).cpu(), want_p, atol=1e-6)
        assert torch.allclose(gpu.reconstruct(w, 2).cpu(), want_r, atol=1e-6)
        w_gpu = tag(w.to("cuda"), "s")
        assert torch.equal(pca.project(w_gpu, 2), want_p) and torch.equal(pca.reconstruct(w_gpu, 2), want_r)


def test_pca_probe_with_z_and_basis_on_different_devices(fake_decoder):
    """pca_probe with z on the CPU and the basis (or a PCA) on CUDA, or the reverse: the frames
    and cosines of the all-CPU probe (the reconstructions met z in a raw device error)."""
    from latentlab.explore import fit_pca, pca_probe

    b, z = tag(_unit(6, 8, 7), "fake-space"), tag(_unit(1, 8, 8), "fake-space")
    want = pca_probe(z, fake_decoder, b, ks=(1, 2, None), progress=False)
    with virtual_cuda():
        bg, zg = tag(b.to("cuda"), "fake-space"), tag(z.to("cuda"), "fake-space")
        for zz, basis in ((z, bg), (z, fit_pca(bg)), (zg, b), (zg, fit_pca(b))):
            got = pca_probe(zz, fake_decoder, basis, ks=(1, 2, None), progress=False)
            assert np.array_equal(got.frames, want.frames)
            assert np.allclose(got.cosine, want.cosine, atol=1e-6)


# -- plots of embeddings on a GPU --------------------------------------------------------------


def test_plots_of_embeddings_on_a_gpu_draw_what_the_cpu_ones_draw():
    """plot_similarity_matrix, plot_similarity and plot_pca_map of CUDA embeddings (a raw "can't
    convert cuda:0 device type tensor to numpy") draw the values the CPU embeddings give."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from latentlab.plots import plot_pca_map, plot_similarity, plot_similarity_matrix

    z, w = tag(_unit(5, 8, 5), "s"), tag(_unit(3, 8, 6), "s")
    try:
        want_m = plot_similarity_matrix(z, w).images[0].get_array()
        want_s = [ln.get_ydata() for ln in plot_similarity(z, w).get_lines()]
        want_p = [c.get_offsets() for c in plot_pca_map(z, points=w).collections]
        with virtual_cuda():
            zg, wg = tag(z.to("cuda"), "s"), tag(w.to("cuda"), "s")
            assert np.array_equal(plot_similarity_matrix(zg, wg).images[0].get_array(), want_m)
            got_s = [ln.get_ydata() for ln in plot_similarity(zg, wg).get_lines()]
            assert all(np.array_equal(a, b) for a, b in zip(got_s, want_s, strict=True))
            got_p = [c.get_offsets() for c in plot_pca_map(zg, points=wg).collections]
            assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(got_p, want_p, strict=True))
    finally:
        plt.close("all")


def test_measures_and_plots_of_embeddings_on_two_devices():
    """A query on CUDA against a bank on the CPU (nearest_neighbours), a path and references or
    points on two devices (plot_similarity, plot_similarity_matrix, plot_pca_map): the answers of
    the all-CPU call; before, torch.cat's raw device error (plot_pca_map) or an ArgumentError naming
    similarity_matrix's "a" and "b", arguments these calls do not have."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from latentlab.explore import nearest_neighbours
    from latentlab.plots import plot_pca_map, plot_similarity, plot_similarity_matrix

    z, w = tag(_unit(5, 8, 9), "s"), tag(_unit(3, 8, 10), "s")
    try:
        want_n = nearest_neighbours(z[:2], w, k=2)
        want_s = [ln.get_ydata() for ln in plot_similarity(z, w).get_lines()]
        want_m = plot_similarity_matrix(z, w).images[0].get_array()
        want_p = [c.get_offsets() for c in plot_pca_map(z, points=w).collections]
        with virtual_cuda():
            zg = tag(z.to("cuda"), "s")
            got_n = nearest_neighbours(zg[:2], w, k=2)
            assert np.array_equal(got_n.indices, want_n.indices) and np.allclose(got_n.scores, want_n.scores, atol=1e-6)
            got_s = [ln.get_ydata() for ln in plot_similarity(zg, w).get_lines()]
            assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(got_s, want_s, strict=True))
            assert np.allclose(plot_similarity_matrix(zg, w).images[0].get_array(), want_m, atol=1e-6)
            got_p = [c.get_offsets() for c in plot_pca_map(zg, points=w).collections]
            assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(got_p, want_p, strict=True))
            plot_pca_map([zg, z])  # two paths on two devices
    finally:
        plt.close("all")


# -- explore: a query or path on a GPU against the encoder's (CPU) embeddings ----------------


def test_what_changed_nearest_words_and_nearest_images_of_embeddings_on_a_gpu(tiny_encoder):
    """A path or query on CUDA against the encoder's embeddings (CPU, as encoders return them):
    "a is on cuda:0 but b is on cpu", naming arguments the call does not have; now the same
    answers as for the CPU embeddings."""
    from latentlab.explore import nearest_images, nearest_words, what_changed

    z = tiny_encoder.encode_text(["a red circle", "a blue square", "a green star"])
    words, pics = ["red", "blue", "star"], [np.full((8, 8, 3), v, np.uint8) for v in (0, 128, 255)]
    want_c = what_changed(z, tiny_encoder, words).similarity
    want_w, want_i = nearest_words(z, tiny_encoder, words, k=2), nearest_images(z, tiny_encoder, pics, k=2)
    with virtual_cuda():
        zg = tag(z.to("cuda"), tiny_encoder.space)
        # (close, not equal: under the virtual GPU the encoder's attention takes torch's slow path)
        assert np.allclose(what_changed(zg, tiny_encoder, words).similarity, want_c, atol=1e-6)
        got_w, got_i = nearest_words(zg, tiny_encoder, words, k=2), nearest_images(zg, tiny_encoder, pics, k=2)
    assert np.array_equal(got_w.indices, want_w.indices) and np.allclose(got_w.scores, want_w.scores, atol=1e-6)
    assert np.array_equal(got_i.indices, want_i.indices) and np.allclose(got_i.scores, want_i.scores, atol=1e-6)


# -- mini.train: Ctrl-C beside a checkpoint saved on a GPU -----------------------------------


def _save_as_from_a_gpu(obj, path, monkeypatch) -> None:
    """torch.save ``obj`` with every storage recorded as a CUDA one (as a GPU run saves its optimizer)."""
    import torch.serialization as ser

    with monkeypatch.context() as m:
        m.setattr(ser, "location_tag", lambda storage: "cuda:0")
        torch.save(obj, path)


def test_ctrl_c_beside_a_gpu_checkpoint_on_a_cpu_machine_says_how_to_go_on(tmp_path, monkeypatch, capsys):
    """Ctrl-C while a stage loads, beside a state.pt saved on a GPU (its optimizer's tensors
    recorded on CUDA), on a machine without one: the step it names is read on the CPU (a raw
    "Attempting to deserialize object on a CUDA device" replaced the message how to go on)."""
    from latentlab.mini import train

    out = tmp_path / "run"
    (out / "clip").mkdir(parents=True)
    _save_as_from_a_gpu({"step": 7, "elapsed_s": 1.0, "optimizer": {"state": {0: {"exp_avg": torch.zeros(2)}}}},
                        out / "clip" / "state.pt", monkeypatch)  # fmt: skip

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "train_clip", ctrl_c)
    with pytest.raises(SystemExit) as e:
        train.main(["--stage", "clip", "--config", "smoke", "--out", str(out), "--resume"])
    err = capsys.readouterr().err
    assert e.value.code == 130 and "Traceback" not in err
    assert f"interrupted: clip stopped with its checkpoint at step 7 in {out / 'clip'}" in err


# -- a promise kept (passes on both) ----------------------------------------------------------


@settings(derandomize=True, max_examples=15, deadline=None)
@given(st.integers(0, 2**31 - 1), st.lists(st.floats(0.0, 1.0), min_size=1, max_size=4))
def test_slerp_noise_keeps_norms_and_endpoints_property(seed, ts):
    """slerp_noise's documented promise: exact endpoints, and noises of one norm keep it."""
    from latentlab.render import slerp_noise

    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(2, 2, 4, 4, generator=g).unbind()
    b = b * (a.norm() / b.norm())
    out = slerp_noise(a, b, [0.0, *ts, 1.0])
    assert torch.equal(out[0], a) and torch.equal(out[-1], b)
    assert torch.allclose(out.flatten(1).norm(dim=1), a.norm().expand(len(ts) + 2), rtol=1e-4)
