"""Half-precision encoders and decoders built under inference_mode or another default dtype, and damaged
seeds in old manifests. Every test restores each global it changes."""

from __future__ import annotations

import contextlib
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import default_dtype, red_square, tiny_mini_decoder, unit_rows


# -- an encoder loaded at float16/bfloat16 under a float64 default dtype -----------------------------


def test_half_precision_encoder_built_under_a_float64_default_dtype_encodes():
    """645823f cast an open_clip model to float32 only where float32 was asked for. With
    ``dtype=torch.bfloat16`` (or float16) open_clip casts its linear/conv/attention weights and
    leaves the norms and embeddings in torch's default dtype: after
    ``torch.set_default_dtype(torch.float64)`` a mix of bfloat16 and float64, and every text and
    picture failed with a raw "mixed dtype (CPU): expect parameter to have scalar type of Float".
    Now those parts are float32, as under the default default, and the embeddings are the same."""
    import latentlab as ll

    want = ll.create_encoder("mini", dtype=torch.bfloat16, cache=None)
    with default_dtype(torch.float64):
        enc = ll.create_encoder("mini", dtype=torch.bfloat16, cache=None)
        zt, zi = enc.encode_text(["a red circle"]), enc.encode_image(red_square(40))
    assert {p.dtype for p in enc.model.parameters()} == {p.dtype for p in want.model.parameters()} == {torch.bfloat16, torch.float32}
    assert torch.equal(zt, want.encode_text(["a red circle"])) and torch.equal(zi, want.encode_image(red_square(40)))


# -- a mini decoder created under the caller's inference_mode(), then refining ------------------------


def test_refined_inversion_of_a_mini_decoder_created_under_inference_mode(tmp_path):
    """645823f let ``invert(refine > 0)`` run under the caller's ``torch.inference_mode()``, but
    a decoder *created* there (a notebook's ``with torch.inference_mode():`` around it all, or
    ``render_spec`` with ``noise = "inverted"`` run inside it, which creates its own) held
    inference-tensor weights: refining failed, inside or outside inference mode, with a raw
    "Inference tensors cannot be saved for backward", and left every weight with
    ``requires_grad=False``. from_pretrained now builds the nets outside inference mode."""
    from latentlab.mini.runtime import MiniDecoder
    from test_mini_runtime import _tiny_decoder_folder

    with torch.random.fork_rng(devices=[]):
        folder = _tiny_decoder_folder(tmp_path)
    im, z = red_square(), unit_rows(1, 16, 6)
    want = MiniDecoder.from_pretrained(folder, resolution=32).invert(im, z, steps=2, refine=1, progress=False)
    with torch.inference_mode():
        dec = MiniDecoder.from_pretrained(folder, resolution=32)  # (what create_decoder("mini") calls)
        inside = dec.invert(im, z, steps=2, refine=1, progress=False)
    outside = dec.invert(im, z, steps=2, refine=1, progress=False)
    assert torch.equal(inside, want) and torch.equal(outside, want)
    assert all(p.requires_grad for p in dec.net.parameters())


def test_refine_refuses_a_decoder_whose_weights_are_inference_tensors():
    """A MiniDecoder built by hand under ``torch.inference_mode()`` cannot refine (its weights
    cannot be saved for the gradient): refused, naming the fix, and its weights' requires_grad
    left as they were (a raw RuntimeError left them all False)."""
    from latentlab.errors import ArgumentError

    with torch.inference_mode():
        dec = tiny_mini_decoder()
    for ctx in (contextlib.nullcontext, torch.inference_mode):
        with ctx(), pytest.raises(ArgumentError, match=r"inference_mode\(\).*refine=0"):
            dec.invert(red_square(), unit_rows(1, 16, 6), steps=2, refine=1, progress=False)
    assert all(p.requires_grad for p in dec.net.parameters())
    assert dec.invert(red_square(), unit_rows(1, 16, 6), steps=2, refine=0, progress=False).shape[0] == 1


# -- render_spec's early check against the folder's recorded sampling settings (b86287d) --------------


@settings(derandomize=True, max_examples=5, deadline=None)
@given(
    was=st.tuples(st.sampled_from([None, 2, 3]), st.sampled_from([None, 0, 1, 1.0, 3, 2.5]), st.sampled_from([None, 0, 0.5])),
    now=st.tuples(st.sampled_from([None, 2, 3]), st.sampled_from([None, 0, 1, 1.0, 3, 2.5]), st.sampled_from([None, 0, 0.5])),
)
def test_property_the_early_check_refuses_only_what_render_refuses(tmp_path_factory, was, now):
    """_refuse_other_render (with the decoder) now compares the folder's recorded steps,
    guidance and sampling marks: it must never refuse a spec whose render() fingerprint equals
    the folder's (steps left out or given at the default, guidance 3 or 3.0, eta), and (for the
    steps/guidance/eta it compares) refuses every one that differs."""
    import sys

    import latentlab as ll
    from latentlab.errors import ArgumentError
    from latentlab.jobs import _refuse_other_render

    R = sys.modules["latentlab.render"]
    dec = tiny_mini_decoder()
    z = unit_rows(2, 16, 0)

    def spec(steps, guidance, eta):
        d = {"preset": "tiny", "keyframes": [{"text": "a"}, {"text": "b"}], "frames": 1}
        d.update({k: v for k, v in (("steps", steps), ("guidance_scale", guidance), ("eta", eta)) if v is not None})
        return ll.load_spec(d)

    out = tmp_path_factory.mktemp("r") / "r"
    s1 = spec(*was)
    R.render(z, dec, out_dir=out, spec=s1.to_dict(), progress=False, steps=was[0], guidance_scale=was[1], eta=was[2] or 0.0)
    _refuse_other_render(out, s1, dec, False)  # its own spec
    s2 = spec(*now)
    steps, guidance, eta = now
    fresh = {"seed": 0, "noise": "shared", **R.sampling_settings(steps, guidance, dec),
             **({"eta": float(eta), "eta_noise": "own stream"} if eta else {}), "decoder": dec.describe()}  # fmt: skip
    same = R._fingerprint(z, fresh) == json.loads((out / "manifest.json").read_text())["fingerprint"]
    try:
        _refuse_other_render(out, s2, dec, False)
        refused = False
    except ArgumentError:
        refused = True
    assert refused == (not same)


# -- a hand-damaged manifest spec's seed (b86287d fixed pacing as a list and mix as a number) ----------


@pytest.mark.parametrize("seed", ["x", None, [1]])
def test_a_manifest_spec_with_a_damaged_seed_is_refused_as_another_render(tmp_path, images, monkeypatch, seed):
    """render_spec's early check read a manifest spec's seed as a number (seed + i): a
    hand-damaged ``"seed": "x"`` or ``null`` raised a raw TypeError ("can only concatenate str (not
    "int") to str"), before any model loads. Now refused as another render, naming the seed."""
    import latentlab as ll
    from latentlab import presets
    from latentlab.errors import ArgumentError

    out = tmp_path / "r"
    out.mkdir()
    recorded = {"preset": "tiny", "seed": seed, "keyframes": [{"image": "a.png"}, {"image": "b.png"}], "frames": 3}
    (out / "manifest.json").write_text(json.dumps({"format": "latentlab.render/1", "fingerprint": "x", "spec": recorded}))
    for mod in (ll, presets):
        for name in ("create_encoder", "create_decoder", "create_prior"):
            monkeypatch.setattr(mod, name, lambda *a, _n=name, **k: pytest.fail(f"{_n} was called before the refusal"))
    spec = {"preset": "tiny", "keyframes": [{"image": str(images[0])}, {"image": str(images[1])}], "frames": 3}
    with pytest.raises(ArgumentError, match=r"holds a different render \(.*\bseed "):
        ll.render_spec(spec, out_dir=out, progress=False)


# -- mini.evaluate.layout_probe under the caller's inference_mode() (as _refine before 645823f) -------


def test_layout_probe_runs_under_a_callers_inference_mode():
    """layout_probe trains its probes with gradients under ``enable_grad()``, which cannot leave
    the caller's ``torch.inference_mode()`` (a notebook habit, which 645823f made refined
    inversion run under): it failed with a raw "element 0 of tensors does not require grad".
    Now it measures the same as outside."""
    from torchvision import transforms

    from latentlab.mini.evaluate import layout_probe

    pre = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.25,) * 3)])  # (as open_clip's ends)

    class Pixels(torch.nn.Module):  # an "embedding" that keeps a coarse 4x4 grid of colours (as test_mini's)
        def encode_image(self, x):
            return torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)

    kw = {"n_train": 16, "n_test": 8, "seed": 5, "hidden": 8, "iters": 3}
    want = layout_probe(Pixels(), pre, **kw)
    with torch.inference_mode():
        got = layout_probe(Pixels(), pre, **kw)
    assert got == want and torch.is_inference_mode_enabled() is False
