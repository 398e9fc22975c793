"""Whole-file writes of mini's weights and init.json, priors overflowed by a
huge guidance_scale, and a spec's upscale beside a given decoder at its native size."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import cut_write_text, tiny_mini_decoder, write_fault
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import latentlab as ll
from latentlab.errors import ArgumentError


def _files(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


# -- whole-file writes ------------------------------------------------------------------------


def _tiny_prior_net(seed: int = 0):
    from latentlab.mini.models import MiniPriorNet, PriorConfig

    torch.manual_seed(seed)
    return MiniPriorNet(PriorConfig(embed_dim=16, width=32, depth=1))


@pytest.mark.parametrize("exc", ["ctrl-c", "full disk"])
@pytest.mark.parametrize("which", ["weights", "json"])
def test_save_module_cut_short_keeps_the_old_weights_and_config(tmp_path, monkeypatch, exc, which):
    """save_module (a public verb, used by export) wrote the .safetensors and the .json in place: a
    Ctrl-C or a full disk left a cut file where the good one had been (load_module then refused the
    pair as damaged). Each is now written whole: the old file stays, and no temporary file."""
    import safetensors.torch

    from latentlab.mini.models import load_module, save_module

    path = tmp_path / "mini_prior.safetensors"
    old_net = _tiny_prior_net(0)
    save_module(old_net, path, config=old_net.config)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    if which == "weights":
        real = safetensors.torch.save_file

        def cut(tensors, filename, *a, **k):
            real(tensors, filename, *a, **k)
            if tmp_path not in Path(filename).parents:  # (a module imported meanwhile would keep this patch)
                return None
            Path(filename).write_bytes(Path(filename).read_bytes()[:40])
            raise write_fault(exc)

        monkeypatch.setattr(safetensors.torch, "save_file", cut)
    else:
        real_text = Path.write_text

        def cut(self, text, *a, **k):
            real_text(self, text[:5], *a, **k)
            raise write_fault(exc)

        monkeypatch.setattr(Path, "write_text", cut)
    new_net = _tiny_prior_net(1)
    with pytest.raises(KeyboardInterrupt if exc == "ctrl-c" else OSError):
        save_module(new_net, path, config=new_net.config)
    monkeypatch.undo()
    assert _files(tmp_path) == sorted(before)
    if which == "json":  # the new weights are whole; the old .json beside them, whole
        assert (tmp_path / "mini_prior.json").read_bytes() == before["mini_prior.json"]
    else:
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
        loaded = load_module("prior", path)
        assert all(torch.equal(v, old_net.state_dict()[k]) for k, v in loaded.state_dict().items())


@pytest.mark.parametrize("exc", ["ctrl-c", "full disk"])
def test_save_expert_json_cut_short_keeps_the_old_one(tmp_path, monkeypatch, exc):
    """save_expert wrote its {"arch", "expert"} .json in place after the weights."""
    from latentlab.mini.models import DecoderConfig, ExpertConfig, MiniDecoderNet, load_expert, save_expert

    torch.manual_seed(0)
    net = MiniDecoderNet(DecoderConfig(block_out_channels=(8, 16, 16), embed_dim=16, norm_num_groups=4, text_dim=8,
                                       cross_attention_dim=16, attention_heads=2))  # fmt: skip
    path = tmp_path / "mini_expert.safetensors"
    save_expert(net, path, ExpertConfig(t_min=600))
    old = path.with_suffix(".json").read_bytes()
    cut_write_text(monkeypatch, exc, 5)
    with pytest.raises(KeyboardInterrupt if exc == "ctrl-c" else OSError):
        save_expert(net, path, ExpertConfig(t_min=700))
    monkeypatch.undo()
    assert _files(tmp_path) == ["mini_expert.json", "mini_expert.safetensors"]
    assert path.with_suffix(".json").read_bytes() == old
    assert load_expert(path)[1] == ExpertConfig(t_min=600)


@pytest.mark.parametrize("exc", ["ctrl-c", "full disk"])
def test_init_json_cut_short_leaves_the_old_record_whole(tmp_path, monkeypatch, exc):
    """train's init.json (the warm start export reads back: a cut one was a raw JSONDecodeError
    there) was written in place, by _init_state and again by _fit_attnpool_grid / the upcycle."""
    from safetensors.torch import save_file

    from latentlab.mini import train

    weights, stage = tmp_path / "w", tmp_path / "run" / "prior"
    weights.mkdir()
    save_file({"a": torch.ones(2)}, str(weights / "mini_prior.safetensors"))
    stage.mkdir(parents=True)
    (stage / "init.json").write_text('{"init_from": "old", "init_step": 7, "sha256": "x"}\n')
    cut_write_text(monkeypatch, exc, 5)
    with pytest.raises(KeyboardInterrupt if exc == "ctrl-c" else OSError):
        train._init_state(weights, "prior", stage)
    monkeypatch.undo()
    assert _files(stage) == ["init.json"]
    assert json.loads((stage / "init.json").read_text())["init_step"] == 7
    # and written whole, it is the record export reads
    train._init_state(weights, "prior", stage)
    rec = json.loads((stage / "init.json").read_text())
    assert rec["init_from"] == str(weights / "mini_prior.safetensors") and rec["init_step"] is None
    assert (stage / "init.json").read_text().count("\n") == 1  # (its one-line format kept)


# -- priors overflowed by a huge guidance_scale -------------------------------------------------


def _mini_prior(guidance_scale: float, steps: int = 4, dtype=torch.float32):
    from latentlab.mini.runtime import MiniPrior

    return MiniPrior(_tiny_prior_net(0), steps=steps, guidance_scale=guidance_scale, dtype=dtype)


def _texts(n: int = 2) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(n, 16, generator=torch.Generator().manual_seed(3)), dim=-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_mini_prior_overflowed_by_its_guidance_is_refused_by_name(dtype):
    """MiniPrior(guidance_scale=1e30) (a finite number >= 0, accepted) sampled NaN, refused by the
    base class as "prior MiniPrior returned rows [0, 1] that are zero or not finite; an image
    embedding needs a direction": a LatentlabError naming neither guidance_scale nor a fix."""
    with pytest.raises(ArgumentError, match=r"prior MiniPrior \('mini'\) sampled NaN or infinite image embeddings "
                                            r"\(rows \[0, 1\]\) with guidance_scale=1e\+30.*Fix: lower guidance_scale") as e:  # fmt: skip
        _mini_prior(1e30, dtype=dtype)(_texts())
    assert ("dtype=bfloat16" in str(e.value)) == (dtype == torch.bfloat16)


def test_a_one_step_mini_prior_with_a_huge_guidance_keeps_a_direction():
    """sample_prior promises unit-norm embeddings: one step of guidance 1e20 left a finite row
    whose float32 norm overflows, which torch's normalize made zero (refused as "zero or not
    finite"); latentlab's normalize keeps its direction, as the decoders let finite pixels pass."""
    z = _mini_prior(1e20, steps=1)(_texts())
    assert torch.isfinite(z).all() and torch.allclose(z.norm(dim=-1), torch.ones(2))


def test_sample_prior_is_unchanged_at_ordinary_guidance(monkeypatch):
    """(latentlab's normalize in place of torch's keeps every ordinary row bit for bit)"""
    from latentlab import space
    from latentlab.mini.models import sample_prior

    net, t = _tiny_prior_net(0), _texts(3)
    noise = torch.randn(3, 16, generator=torch.Generator().manual_seed(5))
    z = sample_prior(net, t, noise, steps=3, guidance_scale=2.0)
    monkeypatch.setattr(space, "normalize", lambda x: torch.nn.functional.normalize(x, dim=-1))
    assert torch.equal(z, sample_prior(net, t, noise, steps=3, guidance_scale=2.0))


@settings(derandomize=True, max_examples=12, deadline=None)
@given(g=st.one_of(st.floats(0, 50), st.floats(1e3, 3e38)), steps=st.sampled_from([1, 2, 4]))
def test_a_mini_prior_returns_unit_rows_or_names_its_guidance(g, steps):
    """Property: for any accepted guidance_scale, unit-norm finite embeddings, or an ArgumentError
    naming guidance_scale and its fix (never a LatentlabError about rows "the prior returned")."""
    try:
        z = _mini_prior(g, steps=steps)(_texts())
    except ArgumentError as e:
        assert f"guidance_scale={g:g}" in str(e) and "lower guidance_scale" in str(e)
        assert g > 50
    else:
        assert torch.isfinite(z).all() and torch.allclose(z.norm(dim=-1), torch.ones(2), atol=1e-5)


@pytest.mark.parametrize("family,dtype", [("kandinsky", torch.float32), ("karlo", torch.float32),
                                          ("kandinsky", torch.float16)])  # fmt: skip
def test_an_unclip_prior_overflowed_by_its_guidance_is_refused_by_name(family, dtype):
    """A diffusion prior whose scheduler does not clip its samples overflowed at guidance 1e30 and
    said "the prior produced NaN/inf embeddings; try dtype=torch.float32 or fewer steps": no prior,
    no guidance_scale, and a float32 prior told to use float32."""
    from diffusers import UnCLIPScheduler

    from latentlab.decoders.kandinsky import KandinskyPrior, tiny_unclip_prior_components
    from latentlab.decoders.karlo import KarloPrior

    cls = {"kandinsky": KandinskyPrior, "karlo": KarloPrior}[family]
    prior, _, text, tok = tiny_unclip_prior_components(dim=32)
    sched = UnCLIPScheduler(variance_type="fixed_small_log", prediction_type="sample", num_train_timesteps=1000,
                            clip_sample=False)  # fmt: skip
    with pytest.warns(UserWarning) if dtype == torch.float16 else contextlib.nullcontext():  # (half on the CPU)
        p = cls(prior, sched, text, tok, name="t", space=None, dim=32, default_steps=4, dtype=dtype)
    with pytest.raises(ArgumentError, match=rf"prior {cls.__name__} \('t'\) sampled NaN or infinite image embeddings "
                                            r"\(rows \[0\]\) with guidance_scale=1e\+30.*: .*Fix: lower guidance_scale") as e:  # fmt: skip
        p.from_texts(["a cat"], guidance_scale=1e30)
    assert ("float32" in str(e.value)) == (dtype == torch.float16)  # (told to a float32 prior before)
    assert torch.isfinite(p.from_texts(["a cat"], guidance_scale=4.0)).all()


# -- a spec's upscale beside a given decoder ------------------------------------------------------


class _Passed(Exception):
    pass


@pytest.mark.parametrize("upscale", [True, False])
@pytest.mark.parametrize("resolution", [16, 32])
def test_a_spec_upscale_beside_a_decoder_at_its_native_size_is_taken(monkeypatch, tmp_path, upscale, resolution):
    """docs/mini.md: frames of 32 px or less never pass through the upscaler, so upscale = true
    draws there as unset or false. render_spec refused `upscale = true` with a 32 px decoder that
    has no upscaler ("the decoder given has no upscaler"), and `false` with one that has."""
    import latentlab as ll
    from latentlab import jobs

    from test_decoder_guards import _tiny_upscaler

    dec = tiny_mini_decoder(resolution=resolution, upscaler=None if upscale else _tiny_upscaler())
    monkeypatch.setattr(jobs, "check_can_create", lambda *a, **k: (_ for _ in ()).throw(_Passed()))
    spec = {"preset": "mini", "upscale": upscale, "frames": 2, "format": "gif",
            "keyframes": [{"text": "a"}, {"text": "b"}]}  # fmt: skip
    with pytest.raises(_Passed):
        ll.render_spec(spec, out_dir=tmp_path / "r", progress=False, decoder=dec)


def test_a_spec_upscale_beside_a_decoder_that_enlarges_its_frames_must_agree(monkeypatch, tmp_path):
    """(kept: above the native size, the decoder given must do what the spec says)"""
    import latentlab as ll
    from latentlab import jobs

    monkeypatch.setattr(jobs, "check_can_create", lambda *a, **k: (_ for _ in ()).throw(_Passed()))
    spec = {"preset": "mini", "upscale": True, "frames": 2, "format": "gif", "keyframes": [{"text": "a"}, {"text": "b"}]}
    with pytest.raises(ArgumentError, match=r"the spec says upscale = true, but the decoder given has no upscaler"):
        ll.render_spec(spec, out_dir=tmp_path / "r", progress=False, decoder=tiny_mini_decoder(resolution=64))


@pytest.mark.parametrize("exc", ["ctrl-c", "full disk"])
def test_evaluate_grid_cut_short_keeps_the_earlier_grid(tmp_path, monkeypatch, exc):
    """mini.evaluate --grid saved the PNG in place: a full disk left a cut image where the earlier
    grid had been (while saying "the grid could not be saved"), as did a Ctrl-C."""
    import numpy as np
    from PIL import Image

    import latentlab.mini.evaluate as ev

    frames = np.full((2, 4, 4, 3), 10, dtype=np.uint8)
    monkeypatch.setattr(ev, "evaluate", lambda *a, **k: {"_frames": (frames, frames, frames)})
    monkeypatch.setattr(ev, "_table", lambda res: "")
    target = tmp_path / "g.png"
    ev.main(["--n", "2", "--n-relation", "2", "--grid", str(target)])
    before = target.read_bytes()
    real = Image.Image.save

    def cut(self, fp, *a, **k):
        real(self, fp, *a, **k)
        Path(fp).write_bytes(Path(fp).read_bytes()[:20])
        raise write_fault(exc)

    monkeypatch.setattr(Image.Image, "save", cut)
    with pytest.raises(KeyboardInterrupt if exc == "ctrl-c" else ArgumentError):
        ev.main(["--n", "2", "--n-relation", "2", "--grid", str(target)])
    monkeypatch.undo()
    assert _files(tmp_path) == ["g.png"] and target.read_bytes() == before


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory):
    """A smoke run folder with its CLIP trained (a few seconds): stages trained on it build the cache."""
    from latentlab.mini.train import main

    out = tmp_path_factory.mktemp("clip-run")
    main(["--stage", "clip", "--config", "smoke", "--out", str(out)])
    return out


def test_a_stage_trained_from_the_start_drops_the_warm_start_record_a_killed_run_left(clip_run, tmp_path):
    """A warm-started run killed before its first checkpoint leaves <stage>/init.json and no
    state.pt; the stage trained again from the start without --init-from kept that record, and
    export credited the new weights with its source and steps (step 1003 for 3 steps trained)."""
    import shutil

    from latentlab.mini.export import export
    from latentlab.mini.train import main

    out = tmp_path / "run"
    shutil.copytree(clip_run, out)
    (out / "prior").mkdir()
    (out / "prior" / "init.json").write_text('{"init_from": "elsewhere/mini_prior.safetensors", "init_step": 1000, "sha256": "x"}\n')
    main(["--stage", "prior", "--config", "smoke", "--out", str(out)])
    assert not (out / "prior" / "init.json").exists()
    rec = export(out, tmp_path / "w", stages=("prior",))["files"]["mini_prior.safetensors"]
    assert rec["step"] == 3 and "warm_start" not in rec


# -- the review of b6958b0 (helper j) --------------------------------------------------------------


# -- train's init.json goes with the weights it describes ------------------------------------------
def _clip_copied_from_init(out):
    """``out/clip`` as ``train --stage decoder --init-from W`` leaves it: W's CLIP copied, and its record."""
    from latentlab.mini.models import WEIGHTS_DIR

    (out / "clip").mkdir(parents=True)
    shutil.copy(WEIGHTS_DIR / "mini_clip.safetensors", out / "clip" / "model.safetensors")
    rec = {"init_from": str(WEIGHTS_DIR / "mini_clip.safetensors"), "init_step": 1000, "sha256": "x"}
    (out / "clip" / "init.json").write_text(json.dumps(rec) + "\n")
    return rec


def test_a_clip_trained_from_the_start_but_killed_before_its_first_save_keeps_the_copied_clips_record(
        tmp_path, monkeypatch):  # fmt: skip
    """b6958b0 removed init.json as a stage started training from scratch; but the CLIP that
    ``--init-from`` copied for a later stage is in ``clip/`` until the new one's first save, and
    export ships it from there. A run killed before that save left W's CLIP without its record."""
    from latentlab.mini import train

    out = tmp_path / "run"
    rec = _clip_copied_from_init(out)

    def killed(*a, **k):
        raise SystemExit(137)  # (a kill: nothing is saved, as after SIGKILL)

    monkeypatch.setattr(train, "_clip_batch", killed)
    with pytest.raises(SystemExit):
        train.train_clip(train.get_config("smoke", ["clip.steps=1"]), out)
    assert json.loads((out / "clip" / "init.json").read_text()) == rec  # still W's CLIP there


def test_a_clip_trained_from_the_start_drops_the_record_at_its_first_save(tmp_path):
    from latentlab.mini import train

    out = tmp_path / "run"
    _clip_copied_from_init(out)
    train.train_clip(train.get_config("smoke", ["clip.steps=1", "clip.eval_scenes=2"]), out)
    assert not (out / "clip" / "init.json").exists()  # the new weights are not W's


# -- sample_prior's normalisation is torch's, bit for bit, on ordinary rows -------------------------
@settings(derandomize=True, max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 40), st.floats(-30, 30), st.integers(0, 2**31))
def test_space_normalize_is_torchs_on_ordinary_rows(n, d, log_scale, seed):
    """b6958b0 moved sample_prior from F.normalize to latentlab.space.normalize: the shipped
    prior's samples (and docs/mini.md's bars) stay as they were only if ordinary rows are
    divided by their norm exactly as torch does."""
    from latentlab.space import normalize

    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) * float(10.0**log_scale)
    norms = x.norm(dim=-1)
    assume(bool((norms > 1e-12).all() and torch.isfinite(norms).all()))  # (the others, by design, are not torch's)
    a, b = torch.nn.functional.normalize(x, dim=-1), normalize(x)
    assert b.dtype == torch.float32 and torch.equal(a, b)


def test_sample_prior_draws_the_shipped_priors_samples_as_before(monkeypatch):
    """The shipped prior at its default settings: the same bits as with torch's normalize."""
    import latentlab.space as space

    enc, prior = ll.create_encoder("mini"), ll.create_prior("mini")
    z = enc.encode_text(["a red circle", "two blue squares"])
    now = prior(z, seed=3, num_samples=2)
    monkeypatch.setattr(space, "normalize", lambda x: torch.nn.functional.normalize(x, dim=-1))
    assert now.dtype == torch.float32 and torch.equal(now, prior(z, seed=3, num_samples=2))
