"""The command line's and render_spec's refusals before any model loads, the
inverted noise's cache key, Trajectory's frame limit and ll.show of an iterative edit."""

from __future__ import annotations

import fractions
import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import latentlab as ll
from latentlab.cli import main
from latentlab.errors import ArgumentError


def _no_loading(monkeypatch):
    """Fail the test if any model is built (the refusals below need none)."""
    from latentlab import presets

    for mod in (ll, presets):
        for name in ("create_encoder", "create_decoder", "create_prior"):
            monkeypatch.setattr(mod, name, lambda *a, _n=name, **k: pytest.fail(f"{_n} was called before the refusal"))


# -- --cpu-offload: refused before the encoder loads ------------------------------------------


def test_cpu_offload_on_the_cpu_or_with_mini_is_refused_before_any_model_loads(tmp_path, images, monkeypatch, capsys):
    # docs/cli.md: --cpu-offload is "refused on the CPU and by mini"; every verb loaded the encoder
    # (gigabytes for a real preset) and only then had the decoder's builder refuse it
    _no_loading(monkeypatch)
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "s.toml"
    spec.write_text(f'preset = "tiny"\n[[keyframes]]\nimage = "{images[0].as_posix()}"\n'
                    f'[[keyframes]]\nimage = "{images[1].as_posix()}"\n')  # fmt: skip
    a, b = str(images[0]), str(images[1])
    verbs = (["morph", a, "--to", "a cat"], ["interpolate", a, b], ["variations", a], ["variations", a, "--eta", "0.3"],
             ["render", str(spec)], ["generate", "a cat", "-n", "1"])  # fmt: skip
    for argv in verbs:
        tiny = [] if argv[0] == "render" else ["--preset", "tiny"]
        assert main([*argv, *tiny, "--cpu-offload", "-q"]) == 2, argv
        assert "--cpu-offload needs an accelerator device, e.g. --device cuda; got --device cpu" in capsys.readouterr().err
        assert main([*argv, "--preset", "mini", "--cpu-offload", "--device", "cuda", "-q"]) == 2, argv
        assert "the decoder of preset 'mini' takes no cpu_offload= (--cpu-offload)" in capsys.readouterr().err
    assert not (tmp_path / "renders").exists()  # nothing written either


# -- render_spec: its own arguments checked before any model loads ---------------------------


def test_render_spec_checks_cpu_offload_callback_and_ready_before_any_model_loads(tmp_path, images, monkeypatch):
    # each was refused only once the encoder (and, for callback and ready, every model, the inversion
    # and the pacing) had been loaded or run; ready=3 was a raw TypeError
    _no_loading(monkeypatch)
    spec = {"preset": "tiny", "frames": 2, "steps": 1, "format": "gif",
            "keyframes": [{"image": str(images[0])}, {"image": str(images[1])}]}  # fmt: skip
    out = {"out_dir": tmp_path / "r", "progress": False}
    with pytest.raises(ArgumentError, match=r"cpu_offload=True needs an accelerator device, e.g. device='cuda'"):
        ll.render_spec(spec, cpu_offload=True, **out)
    with pytest.raises(ArgumentError, match=r"cpu_offload must be True or False, got 'yes'"):
        ll.render_spec(spec, cpu_offload="yes", **out)
    with pytest.raises(ArgumentError, match=r"callback must be a function called with each frame's info dict, or None, got 3"):
        ll.render_spec(spec, callback=3, **out)
    with pytest.raises(ArgumentError, match=r"ready must be a function called with no arguments .* got 3 \(int\)"):
        ll.render_spec(spec, ready=3, **out)
    assert not (tmp_path / "r").exists()


def test_render_spec_still_takes_cpu_offload_beside_a_decoder_of_its_own(tmp_path, images, tiny_encoder, tiny_decoder):
    # cpu_offload goes to the models render_spec loads: with both given it loads none, and is not refused
    spec = {"preset": "tiny", "frames": 2, "steps": 1, "format": "gif",
            "keyframes": [{"image": str(images[0])}, {"image": str(images[1])}]}  # fmt: skip
    res = ll.render_spec(spec, encoder=tiny_encoder, decoder=tiny_decoder, cpu_offload=True, out_dir=tmp_path / "r",
                         progress=False)  # fmt: skip
    assert len(res.frames) == 3


# -- the inverted noise's cache key ------------------------------------------------------------


def _inverted(images, **fields):
    from latentlab.spec import load_spec

    kfs = [{"image": str(images[0])}, {"image": str(images[1])}, {"text_diff": {"to": "a dog", "theta": 0.3}}]
    for i, extra in fields.pop("kf", {}).items():
        kfs[i] = {**kfs[i], **extra}
    return load_spec({"preset": "tiny", "steps": 2, "noise": "inverted", "keyframes": kfs, **fields})


def test_edits_that_change_no_inverted_noise_do_not_invert_again(tmp_path, images, tiny_encoder, tiny_decoder, monkeypatch):
    # the key held every keyframe field: a label, a segment's frames or easing, a text diff's caption
    # or strength, or the spec's seed (which seeds no inverted picture) inverted every picture again
    from latentlab.jobs import keyframe_noise

    real, calls = tiny_decoder.invert, []
    monkeypatch.setattr(tiny_decoder, "invert", lambda *a, **k: calls.append(1) or real(*a, **k))

    def noise(spec):
        return keyframe_noise(spec, spec.resolve(tiny_encoder), tiny_decoder, directory=tmp_path)

    first = noise(_inverted(images))
    assert len(calls) == 2
    for edit in ({"kf": {0: {"label": "start"}}}, {"kf": {1: {"frames": 7, "easing": "ease-in", "hold": 2}}},
                 {"kf": {2: {"text_diff": {"to": "a red fox", "theta": 0.6}, "frames": 3}}}, {"frames": 9},
                 {"easing": "ease-out"}, {"seed": 5}, {"kf": {0: {"seed": 11}}}):  # fmt: skip
        calls.clear()
        again = noise(_inverted(images, **edit))
        assert calls == [], edit
        assert torch.equal(again, first), edit
    # what changes the noise still inverts again: the settings, a picture, or a text diff's own seed
    calls.clear()
    assert not torch.equal(noise(_inverted(images, kf={2: {"seed": 3}}))[2], first[2]) and calls == [1, 1]
    calls.clear()
    noise(_inverted(images, steps=1))
    assert len(calls) == 2
    calls.clear()
    swapped = noise(_inverted(images, kf={0: {"image": str(images[2])}}))
    assert len(calls) == 2 and not torch.equal(swapped[0], first[0])


def test_a_cache_written_under_the_earlier_key_is_still_read(tmp_path, images, tiny_encoder, tiny_decoder, monkeypatch):
    # the key before this audit (every keyframe field, every seed, every embedding): a folder inverted
    # then is not inverted again, and its cache is kept under the new key
    from latentlab.jobs import keyframe_noise
    from latentlab.render import sampling_settings

    spec = _inverted(images, kf={0: {"label": "start"}})
    traj = spec.resolve(tiny_encoder)
    paths = [spec.resolve_path(kf["image"]) for kf in spec.keyframes if "image" in kf]
    h = hashlib.sha256(json.dumps({**sampling_settings(spec.steps, spec.guidance_scale, tiny_decoder),
                                   "seeds": spec.keyframe_seeds(), "invert_refine": None,
                                   "decoder": tiny_decoder.describe(), "keyframes": spec.keyframes},
                                  sort_keys=True, default=str).encode())  # fmt: skip
    h.update(traj.keyframes.detach().cpu().float().contiguous().numpy().tobytes())
    for p in paths:
        h.update(p.read_bytes())
    marked = torch.full((3, *tiny_decoder.noise_shape()), 0.25)
    torch.save({"key": h.hexdigest(), "noise": marked}, tmp_path / "keyframe_noise.pt")
    monkeypatch.setattr(tiny_decoder, "invert", lambda *a, **k: pytest.fail("inverted again"))
    assert torch.equal(keyframe_noise(spec, traj, tiny_decoder, directory=tmp_path), marked)
    relabelled = _inverted(images, kf={0: {"label": "another"}})  # (the earlier key of this one differs)
    assert torch.equal(keyframe_noise(relabelled, relabelled.resolve(tiny_encoder), tiny_decoder, directory=tmp_path), marked)


# -- Trajectory's frame limit --------------------------------------------------------------------


@settings(derandomize=True, max_examples=25, deadline=None)
@given(segments=st.integers(1, 4), over=st.integers(-3, 3))
def test_a_trajectorys_total_frames_limit_is_the_one_its_message_states(segments, over):
    # interpolate(frames=100002) said "Segment.frames must be an integer in [1, 100000], got 100001":
    # neither the number given nor its limit (100001, both ends included)
    from latentlab.spec import MAX_FRAMES

    limit = MAX_FRAMES * segments + 1
    frames = limit + over
    kf = torch.eye(segments + 1, 8)
    for build in (lambda: ll.Trajectory.chain(list(kf.split(1)), frames=frames), lambda: ll.Trajectory(kf, frames=frames)):
        if frames <= limit:
            assert len(build()) == frames
        else:
            with pytest.raises(ArgumentError, match=rf"^frames={frames} is too many for {segments} segment\(s\): give at most {limit} "):
                build()
    if segments == 1 and frames > limit:
        with pytest.raises(ArgumentError, match=rf"frames={frames} is too many .* at most {limit} "):
            ll.Trajectory.interpolate(kf[:1], kf[1:2], frames=frames)


# -- ll.show of an iterative edit -----------------------------------------------------------------


def _edit():
    from latentlab.edit import IterativeEdit

    frames = np.stack([np.full((16, 16, 3), 60 * k, np.uint8) for k in range(3)])
    return IterativeEdit(frames, torch.zeros(3, 4), [0.125, 0.25, 0.375], False, [0.0, 0.1, 0.1], [])


def test_show_labels_an_iterative_edits_frames_as_its_own_view_does():
    # ll.show(edit) drew a bare contact sheet, while the edit shown by itself (its _repr_html_)
    # labels each frame with its cosine to the destination caption
    edit = _edit()
    shown = ll.show(edit).array
    assert np.array_equal(shown, ll.show(edit.frames, labels=["cos 0.125", "cos 0.250", "cos 0.375"]).array)
    assert not np.array_equal(shown, ll.show(edit.frames).array)
    assert ll.show(edit)._repr_html_() == edit._repr_html_()
    assert edit.labels == ["cos 0.125", "cos 0.250", "cos 0.375"]
    assert np.array_equal(ll.show(edit, labels=list("abc")).array, ll.show(edit.frames, labels=list("abc")).array)


@pytest.mark.parametrize("kind", ["edit", "probe"])
def test_show_of_a_result_holding_frames_labels_them(kind):
    # docs/notebooks.md: ll.show of iterative_text_diff's and pca_probe's results shows their frames
    from latentlab.explore import Probe

    res = _edit() if kind == "edit" else Probe(_edit().frames, [1, 2, None], torch.zeros(3, 4), np.ones(3))
    assert np.array_equal(ll.show(res).array, ll.show(res.frames, labels=res.labels).array)


# -- iterative_text_diff: refusals before the inversion, the decodes and the encoding ---------------


def test_iterative_text_diff_refuses_captions_without_a_direction_before_inverting_or_decoding(tiny_encoder, tiny_decoder,
                                                                                              monkeypatch):
    # "a cat" and "A  CAT" encode the same: refused only once the picture was inverted (noise='inverted')
    # and the start decoded, when the first step made the text diff
    for method in ("invert", "decode"):
        monkeypatch.setattr(tiny_decoder, method, lambda *a, _m=method, **k: pytest.fail(f"{_m} before the refusal"))
    picture = np.zeros((64, 64, 3), np.uint8)
    picture[16:48, 16:48] = 200
    for noise in ("shared", "inverted"):
        with pytest.raises(ArgumentError, match="encode the same caption, so there is no edit direction"):
            ll.iterative_text_diff(tiny_encoder, tiny_decoder, picture, "a cat", "A  CAT", noise=noise, progress=False)


def test_iterative_text_diff_refuses_inverted_noise_it_cannot_have_before_encoding(tiny_encoder, tiny_decoder, monkeypatch):
    # an embedding to invert, or a decoder that cannot invert: said once the picture and captions were encoded
    z = torch.nn.functional.normalize(torch.randn(1, tiny_encoder.dim), dim=-1)
    for method in ("encode_image", "encode_text"):
        monkeypatch.setattr(tiny_encoder, method, lambda *a, _m=method, **k: pytest.fail(f"{_m} before the refusal"))
    with pytest.raises(ArgumentError, match=r"noise='inverted' needs the start picture \(an image, not an embedding\)"):
        ll.iterative_text_diff(tiny_encoder, tiny_decoder, z, "a", "b", noise="inverted", progress=False)
    monkeypatch.setattr(type(tiny_decoder), "supports_inversion", property(lambda self: False))
    with pytest.raises(ArgumentError, match="noise='inverted' needs a decoder that inverts images"):
        ll.iterative_text_diff(tiny_encoder, tiny_decoder, np.zeros((64, 64, 3), np.uint8), "a", "b", noise="inverted",
                               progress=False)  # fmt: skip


def test_iterative_text_diff_with_no_steps_takes_any_captions(tiny_encoder, tiny_decoder):
    # max_steps=0 makes no text diff: the same captions are not refused there (as before)
    edit = ll.iterative_text_diff(tiny_encoder, tiny_decoder, np.zeros((64, 64, 3), np.uint8), "a cat", "a cat",
                                  max_steps=0, steps=1, progress=False)  # fmt: skip
    assert len(edit) == 1


def test_a_text_diff_to_its_own_caption_is_refused_before_any_model_loads(tmp_path, images, monkeypatch, capsys):
    # morph --from X --to X (or --to "a photo", the default --from): refused by Spec.resolve, once the
    # encoder, the prior and the decoder had loaded, though the spec alone says it
    _no_loading(monkeypatch)
    for extra in (["--from", "a cat", "--to", "a cat"], ["--to", "a photo"]):
        assert main(["morph", str(images[0]), *extra, "--preset", "tiny", "--out-dir", str(tmp_path / "r"), "-q"]) == 2
        assert "text_diff: 'to' is the same caption as 'from'" in capsys.readouterr().err
    from latentlab.errors import SpecError
    from latentlab.spec import load_spec

    with pytest.raises(SpecError, match=r"keyframes\[1\]\.text_diff: 'to' is the same caption as 'from' \(the default, 'a photo'\)"):
        load_spec({"keyframes": [{"image": str(images[0])}, {"text_diff": {"to": "a photo"}}]})
    assert load_spec({"keyframes": [{"image": str(images[0])}, {"text_diff": {"from": "a cat", "to": "a dog"}}]})


def test_a_folder_of_another_render_is_refused_before_any_model_loads(tmp_path, images, monkeypatch):
    # render_spec into a folder holding another seed's (noise's, keyframes') render loaded every model
    # before refusing it; what only the decoder can tell (its default steps) is still checked once it loads
    spec = {"preset": "tiny", "frames": 2, "steps": 1, "format": "gif",
            "keyframes": [{"image": str(images[0])}, {"image": str(images[1])}]}  # fmt: skip
    out = tmp_path / "r"
    ll.render_spec(spec, out_dir=out, progress=False)
    _no_loading(monkeypatch)
    for change, said in (({"seed": 3}, "seed 0 -> 3"), ({"noise": "slerp"}, "noise 'shared' -> 'slerp'"),
                         ({"keyframes": [spec["keyframes"][0], {**spec["keyframes"][1], "easing": "ease-in"}]}, "the keyframes")):  # fmt: skip
        with pytest.raises(ArgumentError, match=rf"holds a different render \({said};"):
            ll.render_spec({**spec, **change}, out_dir=out, progress=False)
    monkeypatch.undo()
    with pytest.raises(ArgumentError, match=r"holds a different render \(steps 1 -> 2;"):
        ll.render_spec({**spec, "steps": 2}, out_dir=out, progress=False)
    relabelled = {**spec, "keyframes": [{**spec["keyframes"][0], "label": "start"}, spec["keyframes"][1]]}
    assert len(ll.render_spec({**relabelled, "fps": 5}, out_dir=out, progress=False).frames) == 3  # the same render


# -- the review of 479bd74, 0c5bcb6 and bf2b64c (helper i) ---------------------------------------


def test_render_spec_refuses_cpu_offload_with_mini_before_any_model_loads(tmp_path, images, monkeypatch, no_models):
    # the CLI refuses --cpu-offload with mini before loading (479bd74); render_spec(cpu_offload=True)
    # on an accelerator loaded mini's encoder (and prior) first, then had the decoder's builder refuse it
    spec = {"preset": "mini", "frames": 2, "format": "gif",
            "keyframes": [{"image": str(images[0])}, {"image": str(images[1])}]}  # fmt: skip
    for device in ("cuda", "cpu"):  # (mini takes no cpu_offload on any device: said as its builder says it)
        with pytest.raises(ArgumentError, match=r"^the decoder of preset 'mini' takes no cpu_offload= .*Leave cpu_offload out"):
            ll.render_spec(spec, cpu_offload=True, device=device, out_dir=tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


def test_slerp_noise_takes_every_number_t_it_took_before_fb36495():
    # fb36495's type check let only numbers.Real, lists and arrays through: numpy's bool (Python's is
    # taken) and a Fraction, which torch took as the number they are, were refused; each gives the
    # noise of the float it is, bit for bit
    from latentlab.render import slerp_noise

    a, b = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0)).unbind()
    assert torch.equal(slerp_noise(a, b, np.True_), b) and torch.equal(slerp_noise(a, b, np.False_), a)
    assert torch.equal(slerp_noise(a, b, fractions.Fraction(1, 3)), slerp_noise(a, b, 1 / 3))
    assert torch.equal(slerp_noise(a, b, np.float32(0.3)), slerp_noise(a, b, float(np.float32(0.3))))
    assert torch.equal(slerp_noise(a, b, 0.3), slerp_noise(a, b, torch.tensor(0.3, dtype=torch.float64)))
    with pytest.raises(ArgumentError, match=r"^t must be a finite number"):
        slerp_noise(a, b, 10**400)


@settings(derandomize=True, max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_inverted_noise_cache_never_hands_a_keyframe_other_noise(data, images, tiny_encoder, tiny_decoder):
    # docs/spec.md: keyframe_noise.pt is reused by a rerun whose edits change no keyframe's noise. Whatever
    # specs follow one another in a folder (pictures moved, inserted or swapped, text diffs with or
    # without a seed after a picture or another text diff, seeds changed), the noise read from the
    # folder is the noise computed afresh
    from latentlab.jobs import keyframe_noise
    from latentlab.spec import load_spec

    keyframe = st.one_of(
        st.builds(lambda i: {"image": str(images[i])}, st.integers(0, 2)),
        st.builds(lambda to, seed: {"text_diff": {"to": to}, **({} if seed is None else {"seed": seed})},
                  st.sampled_from(["a dog", "a red fox"]), st.one_of(st.none(), st.integers(0, 3))),
    )
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(2):
            rest = data.draw(st.lists(keyframe, min_size=1, max_size=3))
            kfs = [{"image": str(images[data.draw(st.integers(0, 2))])}, *rest]
            spec = load_spec({"preset": "tiny", "steps": 1, "noise": "inverted", "seed": data.draw(st.integers(0, 2)),
                              "keyframes": kfs})  # fmt: skip
            traj = spec.resolve(tiny_encoder)
            kept = keyframe_noise(spec, traj, tiny_decoder, directory=Path(folder))
            assert torch.equal(kept, keyframe_noise(spec, traj, tiny_decoder)), kfs


def test_the_cache_description_a_killed_build_left_half_written_is_removed_by_the_next(tmp_path):
    # bf2b64c swept train's JSON writes, but not the cache's description (cache.json, which lists
    # every caption): a build killed outright while writing it left its temporary file for good
    import json
    import os
    import time

    from safetensors.torch import save_file

    from latentlab._atomic import temp_path
    from latentlab.mini.models import create_clip
    from latentlab.mini.train import build_cache, get_config

    torch.manual_seed(0)
    model, _, _ = create_clip(None)
    (tmp_path / "clip").mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "clip" / "model.safetensors"))
    meta = tmp_path / "cache" / "cache.json"
    meta.parent.mkdir()
    stale, fresh = temp_path(meta, ""), temp_path(meta, "")
    for p in (stale, fresh):
        p.write_text('{"n_images": ')
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    build_cache(get_config("smoke", ["cache.n_images=3", "cache.batch_size=4"]), tmp_path)
    assert json.loads(meta.read_text())["n_images"] == 3
    assert not stale.exists() and fresh.exists()  # (one written within the hour may be another build's)


@pytest.mark.parametrize("was, now", [({"steps": 2}, {"steps": 3}), ({"guidance_scale": 2.0}, {"guidance_scale": 4}),
                                      ({"noise": "inverted", "invert_refine": 0}, {"noise": "inverted", "invert_refine": 1})])
def test_a_folder_of_other_set_steps_or_guidance_is_refused_before_any_model_loads(tmp_path, images, tiny_encoder,
                                                                                   tiny_decoder, monkeypatch, was, now, no_models):
    # 479bd74 compared a folder's settings before the models load, but left the steps, guidance and
    # refining to the check after loading whatever their values (unset reads as the decoder's default):
    # two values given, 2 steps then 3, need no decoder to differ, and the models loaded before the refusal
    spec = {"preset": "tiny", "frames": 2, "format": "gif", "keyframes": [{"image": str(images[0])}, {"image": str(images[1])}]}
    out = {"out_dir": tmp_path / "r", "progress": False}
    ll.render_spec({**spec, **was}, encoder=tiny_encoder, decoder=tiny_decoder, **out)
    key = next(iter(now)) if len(now) == 1 else "invert_refine"
    with pytest.raises(ArgumentError, match=rf"holds a different render \({key} {was[key]!r} -> {now[key]!r}"):
        ll.render_spec({**spec, **now}, **out)
    monkeypatch.undo()
    if key != "invert_refine":  # one side unset: the decoder's default (10 steps, guidance 1), compared once it loads
        with pytest.raises(ArgumentError, match=rf"holds a different render \({key} {was[key]!r} -> "):
            ll.render_spec(spec, encoder=tiny_encoder, decoder=tiny_decoder, **out)


def test_a_cache_under_the_earlier_key_is_read_where_it_cannot_be_rekeyed(tmp_path, images, tiny_encoder, tiny_decoder,
                                                                          monkeypatch):
    # 479bd74 rewrites a keyframe_noise.pt found under the earlier key under the new one: a full disk
    # (or a folder that cannot be written) failed that rewrite, and with it the read of a noise that
    # was already in hand (the earlier code returned it)
    import errno
    import hashlib
    import importlib
    import json

    from latentlab.jobs import keyframe_noise
    from latentlab.render import sampling_settings
    from latentlab.spec import load_spec

    spec = load_spec({"preset": "tiny", "steps": 2, "noise": "inverted",
                      "keyframes": [{"image": str(images[0])}, {"image": str(images[1])}]})  # fmt: skip
    traj = spec.resolve(tiny_encoder)
    h = hashlib.sha256(json.dumps({**sampling_settings(spec.steps, spec.guidance_scale, tiny_decoder),
                                   "seeds": spec.keyframe_seeds(), "invert_refine": None,
                                   "decoder": tiny_decoder.describe(), "keyframes": spec.keyframes},
                                  sort_keys=True, default=str).encode())  # fmt: skip
    h.update(traj.keyframes.detach().cpu().float().contiguous().numpy().tobytes())
    for kf in spec.keyframes:
        h.update(spec.resolve_path(kf["image"]).read_bytes())
    marked = torch.full((2, *tiny_decoder.noise_shape()), 0.25)
    torch.save({"key": h.hexdigest(), "noise": marked}, tmp_path / "keyframe_noise.pt")

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(importlib.import_module("latentlab.render"), "write_whole", full)
    monkeypatch.setattr(tiny_decoder, "invert", lambda *a, **k: pytest.fail("inverted again"))
    assert torch.equal(keyframe_noise(spec, traj, tiny_decoder, directory=tmp_path), marked)
    assert torch.load(tmp_path / "keyframe_noise.pt")["key"] == h.hexdigest()  # left as it was, rekeyed next time
