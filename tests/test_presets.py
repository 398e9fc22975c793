"""The preset registry: every shipped preset is buildable by a registered builder, reports
its weights honestly, and fails with a clear, actionable error when its weights are absent."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import latentlab as ll
from latentlab import presets
from latentlab.errors import ArgumentError, LatentlabError, ModelNotAvailableError

REAL = ["sd21-unclip-h", "sd21-unclip-l", "kandinsky-2.2", "karlo"]


def test_every_preset_part_has_a_builder():
    presets._load_builders()
    tables = {"encoder": presets._ENCODER_BUILDERS, "decoder": presets._DECODER_BUILDERS, "prior": presets._PRIOR_BUILDERS}
    for name in presets.list_presets():
        p = presets.get_preset(name)
        for part, table in tables.items():
            spec = getattr(p, part)
            if spec is None:
                continue
            assert spec["kind"] in table, f"{name}: no builder for {part} kind {spec['kind']!r}"


def test_shipped_presets_are_listed_with_their_space():
    names = presets.list_presets()
    for n in ["mini", "tiny", *REAL]:
        assert n in names
    # one CLIP space per encoder family: Karlo and SD 2.1 unCLIP-L share OpenAI ViT-L/14
    assert presets.get_preset("karlo").space == presets.get_preset("sd21-unclip-l").space
    assert presets.get_preset("sd21-unclip-h").space != presets.get_preset("sd21-unclip-l").space
    assert presets.get_preset("sd21-unclip-h").dim == 1024 and presets.get_preset("kandinsky-2.2").dim == 1280


def test_user_kwargs_override_preset_arguments():
    a = ll.create_encoder("tiny")
    b = ll.create_encoder("tiny", seed=1)  # the preset says seed=0
    assert not torch.equal(a.encode_text(["x"]), b.encode_text(["x"]))


def _snapshot(hub, repo, files=("model_index.json",)):
    """A cache entry for ``repo`` as a download leaves it: a snapshot folder holding ``files``."""
    snap = hub / ("models--" + repo.replace("/", "--")) / "snapshots" / "0123abcd"
    snap.mkdir(parents=True, exist_ok=True)
    for f in files:
        (snap / f).parent.mkdir(parents=True, exist_ok=True)
        (snap / f).write_text("{}")
    return snap


def test_cpu_offload_goes_only_to_a_prior_that_takes_it(monkeypatch):
    """create_prior_offloaded (the CLI's --cpu-offload) leaves out cpu_offload= for a prior that
    takes none, by the option refused (it read the error's text), and raises other refusals."""
    from latentlab.jobs import create_prior_offloaded

    seen, built = [], object()

    def probe_builder(preset, *, steps=2):
        seen.append(steps)
        return built

    presets._load_builders()
    monkeypatch.setitem(presets._PRIOR_BUILDERS, "offload_probe", probe_builder)
    probe = presets.Preset(name="offload_probe", space="probe-space", dim=8, resolution=8, encoder={"kind": "mini"},
                           decoder={"kind": "mini"}, prior={"kind": "offload_probe"})  # fmt: skip
    assert create_prior_offloaded(probe, cpu_offload=True, steps=3) is built and seen == [3]
    with pytest.raises(ArgumentError, match="takes no bogus="):
        create_prior_offloaded(probe, cpu_offload=True, bogus=1)
    with pytest.raises(ArgumentError, match="takes no bogus="):
        create_prior_offloaded(probe, bogus=1)
    assert seen == [3]


def test_weights_status_reads_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert presets.weights_status("karlo") == "not downloaded"
    _snapshot(tmp_path, "kakaobrain/karlo-v1-alpha", ["prior/config.json"])
    assert presets.weights_status("karlo") == "partly cached"
    for repo in presets.get_preset("karlo").hub_repos:
        _snapshot(tmp_path, repo)
    assert presets.weights_status("karlo") == "cached"
    assert presets.weights_status("mini") == "built in"
    # the same folder the loaders use: XDG_CACHE_HOME counts when HF_HUB_CACHE and HF_HOME are unset
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert presets.weights_status("karlo") == "not downloaded"
    (tmp_path / "xdg" / "huggingface").mkdir(parents=True)
    (tmp_path / "xdg" / "huggingface" / "hub").symlink_to(tmp_path)
    assert presets.weights_status("karlo") == "cached"


def test_weights_status_of_an_unreadable_model_folder(tmp_path, monkeypatch, capsys):
    """A shared cache where another user's model folder is private (mode 700): that preset's
    state is "unreadable (...)", the others are listed as ever (it made `latentlab presets`,
    --json and weights_status fail whole). Root reads through chmod: the folder's contents
    refuse reads by a patched stat/listing instead."""
    import errno
    import pathlib

    from latentlab import cli

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    for repo in presets.get_preset("karlo").hub_repos:
        _snapshot(tmp_path, repo)
    private = tmp_path / "models--stabilityai--stable-diffusion-2-1-unclip"
    _snapshot(tmp_path, "stabilityai/stable-diffusion-2-1-unclip")
    real_stat, real_iterdir = pathlib.Path.stat, pathlib.Path.iterdir

    def refuse(path):
        if private in pathlib.Path(path).parents:  # the folder itself stats; what is inside does not
            raise PermissionError(errno.EACCES, "Permission denied", str(path))

    def stat(self, *args, **kwargs):
        refuse(self)
        return real_stat(self, *args, **kwargs)

    def iterdir(self):
        refuse(self)
        return real_iterdir(self)

    monkeypatch.setattr(pathlib.Path, "stat", stat)
    monkeypatch.setattr(pathlib.Path, "iterdir", iterdir)
    state = f"unreadable (permission denied: {private / 'snapshots'})"
    assert presets.weights_status("sd21-unclip-h") == state
    assert presets.weights_status("karlo") == "cached"
    assert presets.weights_status("mini") == "built in"
    assert cli.main(["presets", "--json"]) == 0
    rows = {r["name"]: r["weights"] for r in json.loads(capsys.readouterr().out)}
    assert rows["sd21-unclip-h"] == state and rows["karlo"] == "cached" and rows["tiny"] == "built in (random)"
    assert rows.keys() == presets.PRESETS.keys()
    assert cli.main(["presets"]) == 0
    table = capsys.readouterr().out
    assert state in table and all(name in table for name in presets.PRESETS)


def test_weights_status_needs_a_file_in_a_snapshot(tmp_path, monkeypatch):
    """An interrupted download leaves empty folders (or links to absent blobs): not "cached"."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    repos = presets.get_preset("karlo").hub_repos
    for repo in repos:
        (tmp_path / ("models--" + repo.replace("/", "--")) / "snapshots").mkdir(parents=True)
    assert presets.weights_status("karlo") == "not downloaded"
    snap = _snapshot(tmp_path, repos[0], [])
    (snap / "unet").mkdir()
    (snap / "unet" / "diffusion_pytorch_model.safetensors").symlink_to(tmp_path / "blobs-gone")
    assert presets.weights_status("karlo") == "not downloaded"
    _snapshot(tmp_path, repos[0], ["unet/config.json"])
    assert presets.weights_status("karlo") == "partly cached"


def test_weights_status_documents_every_value_it_returns():
    assert presets.weights_status("tiny") == "built in (random)"
    bare = presets.Preset(name="bare", space="bare", dim=8, resolution=8,
                          encoder={"kind": "my_encoder", "model": "ViT-B-32"},
                          decoder={"kind": "none"})  # fmt: skip
    assert presets.weights_status(bare) == "unknown"
    doc = presets.weights_status.__doc__
    for value in ("built in (random)", "built in", "missing (train it)", "missing", "cached", "partly cached",
                  "not downloaded", "unknown"):  # fmt: skip
        assert f'"{value}"' in doc, value
    assert '"unreadable (permission denied: <path>)"' in doc  # test_weights_status_of_an_unreadable_model_folder


def test_checkpoint_replaces_the_weights_of_a_presets_tag(tmp_path, monkeypatch):
    """docs/models.md: the open_clip presets take checkpoint= for a local copy of their weights.
    The file replaces the tag's download; the tag still sets preprocessing and activation.
    (Stops before open_clip builds the large model.)"""
    import open_clip

    seen = []

    def stop(name, **kwargs):
        seen.append({"name": name, **kwargs})
        raise RuntimeError("stop before building the model")

    monkeypatch.setattr(open_clip, "create_model_and_transforms", stop)
    ckpt = tmp_path / "open_clip_model.safetensors"
    ckpt.write_bytes(b"")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))  # the tag's weights are not there
    for name in ("sd21-unclip-h", "sd21-unclip-l", "karlo"):
        with pytest.raises(ModelNotAvailableError, match="stop before"):
            ll.create_encoder(name, checkpoint=ckpt)
    spec = presets.get_preset("sd21-unclip-h").encoder
    tag = open_clip.get_pretrained_cfg(spec["model"], spec["pretrained"])
    h, l, karlo = seen
    assert h["name"] == "ViT-H-14" and h["pretrained"] == str(ckpt)
    assert (h["image_mean"], h["image_std"], h["image_interpolation"], h["image_resize_mode"]) == (
        tag["mean"], tag["std"], tag["interpolation"], tag["resize_mode"])  # fmt: skip
    assert "force_quick_gelu" not in h  # laion2b_s32b_b79k: GELU, as ViT-H-14
    assert l["name"] == karlo["name"] == "ViT-L-14-quickgelu" and l["pretrained"] == str(ckpt)
    # a preset of plain ViT-L-14 with the OpenAI tag gets the tag's QuickGELU for the user's file too
    custom = presets.Preset(name="custom-l", space="openai/ViT-L-14", dim=768, resolution=64,
                            encoder={"kind": "open_clip", "model": "ViT-L-14", "pretrained": "openai"},
                            decoder={"kind": "none"})  # fmt: skip
    with pytest.raises(ModelNotAvailableError, match="stop before"):
        ll.create_encoder(custom, checkpoint=ckpt)
    assert seen[-1]["force_quick_gelu"] is True and seen[-1]["pretrained"] == str(ckpt)


@pytest.mark.parametrize("name", REAL)
def test_absent_weights_raise_an_actionable_error(name, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    p = presets.get_preset(name)
    for part in ("encoder", "decoder", "prior"):
        if getattr(p, part) is None:
            with pytest.raises(ArgumentError, match="no prior"):
                ll.create_prior(name)
            continue
        with pytest.raises(ModelNotAvailableError) as info:
            getattr(ll, f"create_{part}")(name)
        msg = str(info.value)
        assert "download" in msg.lower(), msg  # says how to get them
        assert any(repo in msg for repo in p.hub_repos), msg  # names what is missing
        assert "the cache default" not in msg, msg  # (it had read "not in the cache default Hugging Face cache")
        assert str(tmp_path) in msg, msg  # names where it looked


def test_presets_cli_json_lists_every_column():
    out = subprocess.run([sys.executable, "-m", "latentlab", "presets", "--json"], capture_output=True, text=True,
                         timeout=120, check=True).stdout  # fmt: skip
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) >= {"mini", *REAL}
    for r in rows.values():
        assert {"space", "dim", "resolution", "prior", "licence", "download_gb", "gpu_memory_gb", "weights"} <= set(r)
    assert rows["sd21-unclip-h"]["prior"] is False and rows["karlo"]["prior"] is True
    assert rows["mini"]["weights"] == "built in"


def test_mini_preset_end_to_end(tmp_path):
    """encode -> operators -> decode -> video on the embedded model, through the registry."""
    from latentlab.mini import shapes

    enc, dec, prior = ll.create_encoder("mini"), ll.create_decoder("mini"), ll.create_prior("mini")
    img = shapes.render_scene(shapes.sample_scene(3, n_objects=1))
    z_img = enc.encode_image([img])
    src, dst = enc.encode_text(["a photo", "a blue square"]).split(1)
    assert ll.space_of(z_img) == "latentlab-mini" and z_img.shape == (1, 128)
    z_txt = prior(dst, seed=0)
    path = ll.Trajectory.chain([z_img, ll.text_diff(z_img, src, dst, 0.4), z_txt], frames=[2, 2])
    frames = dec.render(path, seed=0, steps=4, progress=False)
    assert frames.shape == (len(path), 64, 64, 3) and frames.dtype == np.uint8
    again = dec.render(path, seed=0, steps=4, progress=False)
    assert np.array_equal(frames, again)  # seed determinism
    ll.write_video(frames, tmp_path / "m.mp4", fps=4)
    assert (tmp_path / "m.mp4").stat().st_size > 0


def test_mixing_spaces_is_refused():
    z_tiny = ll.create_encoder("tiny").encode_text(["x"])
    dec = ll.create_decoder("mini")
    with pytest.raises(ll.SpaceError):
        dec.render(ll.Trajectory.interpolate(z_tiny, z_tiny, frames=2), steps=2, progress=False)


@pytest.mark.gpu
@pytest.mark.parametrize("family", ["stable_unclip_tiny", "kandinsky_tiny", "karlo_tiny"])
def test_cpu_offload_matches_plain_gpu(family):
    """Model CPU offload (accelerate) gives the frames the resident model gives."""
    pytest.importorskip("accelerate")
    enc_kind = "open_clip_tiny" if family == "stable_unclip_tiny" else "hf_clip_tiny"
    p = presets.Preset(name=f"offload-{family}", space=f"tiny-{family}", dim=32, resolution=64 if family == "stable_unclip_tiny" else 32,
                       encoder={"kind": enc_kind, "seed": 0}, decoder={"kind": family, "seed": 0})  # fmt: skip
    z = ll.create_encoder(p).encode_text(["a", "b"])
    plain = ll.create_decoder(p, device="cuda").render(ll.Trajectory.interpolate(z[:1], z[1:], frames=3), progress=False)
    off = ll.create_decoder(p, device="cuda", cpu_offload=True).render(
        ll.Trajectory.interpolate(z[:1], z[1:], frames=3), progress=False
    )
    assert np.abs(plain.astype(int) - off.astype(int)).max() <= 2


def _vision_tower(dec):
    """The decoder pipeline's own image encoder and processor (what it was trained against)."""
    if hasattr(dec, "_vision"):  # Kandinsky keeps it apart from its pipeline
        return dec._vision, dec._processor
    return dec.pipe.image_encoder, dec.pipe.feature_extractor


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL)
def test_real_preset_encoder_matches_its_decoder(name):
    """With the released weights: the preset's encoder gives, up to scale, the embeddings
    the decoder's own image encoder gives, and those decode. Skipped unless cached."""
    from latentlab.hf_clip import synthetic_images
    from latentlab.space import normalize

    status = presets.weights_status(name)
    if status != "cached":
        pytest.skip(f"{name}: weights {status}; download them with `hf download` "
                    f"({', '.join(presets.get_preset(name).hub_repos)})")  # fmt: skip
    cuda = torch.cuda.is_available()
    kw = {"device": "cuda" if cuda else "cpu", "dtype": torch.float16 if cuda else torch.float32}
    enc = ll.create_encoder(name, **kw)
    dec = ll.create_decoder(name, **kw, **({"keep_image_encoder": True} if name == "kandinsky-2.2" else {}))
    images = synthetic_images(4, size=224)
    vision, processor = _vision_tower(dec)
    p = next(vision.parameters())
    with torch.no_grad():
        ref = vision(pixel_values=processor(images=images, return_tensors="pt").pixel_values.to(p.device, p.dtype))
    ref = normalize(ref.image_embeds.float().cpu())
    ours = enc.encode_image(images)
    assert (ref * ours).sum(-1).min() > 0.98
    frames = dec.render(ll.Trajectory.interpolate(ours[:1], ours[1:2], frames=2), steps=10, progress=False)
    assert frames.shape[1:] == (dec.resolution, dec.resolution, 3) and frames.std() > 5


def test_a_loading_option_a_part_does_not_take_is_named():
    """Passing the same loading options to every create_* call is a natural mistake: the part
    that does not take one says so, naming it (not Python's bare TypeError)."""
    with pytest.raises(ArgumentError, match=r"the decoder of preset 'tiny' takes no variant="):
        presets.create_decoder("tiny", variant="fp16")
    with pytest.raises(ArgumentError, match=r"the prior of preset 'tiny' takes no variant="):
        presets.create_prior("tiny", variant="fp16")


@pytest.mark.parametrize("typed, meant", [("MINI", "mini"), ("minii", "mini"), ("SD21-UNCLIP-H", "sd21-unclip-h")])
def test_an_unknown_preset_suggests_the_nearest_name_in_any_case(typed, meant):
    with pytest.raises(ArgumentError, match=f"Did you mean '{meant}'"):
        presets.get_preset(typed)


def test_submodules_are_reachable_from_a_fresh_import():
    # docs cite ll.pacing.RELAX_STEP and ll.pacing.fine_pacing_settings: they must work
    # before anything else has imported latentlab.pacing
    code = "import latentlab as ll; print(ll.pacing.RELAX_STEP, ll.ops.slerp.__name__); ll.not_a_name"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["0.6", "slerp"], out.stderr
    assert "module 'latentlab' has no attribute 'not_a_name'" in out.stderr


def test_weights_status_of_a_preset_with_mini_parts_and_a_hub_encoder(tmp_path, monkeypatch):
    # the shipped mini files made any preset with a mini decoder "built in", its hub repos unread
    from latentlab import presets

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    karlo = presets.get_preset("karlo")
    mixed = presets.Preset(name="mixed-test", space=karlo.space, dim=karlo.dim, resolution=64, encoder=dict(karlo.encoder),
                           decoder={"kind": "mini"}, prior={"kind": "mini"}, hub_repos=karlo.hub_repos)  # fmt: skip
    assert presets.weights_status(mixed) == "not downloaded"


def _mini_paired(name, encoder, **kw):
    """A preset pairing ``encoder`` with the shipped mini decoder and prior (no hub_repos)."""
    return presets.Preset(name=name, space="s", dim=32, resolution=64, encoder=encoder,
                          decoder={"kind": "mini"}, prior={"kind": "mini"}, **kw)  # fmt: skip


def test_weights_status_checks_the_encoders_own_source(tmp_path, monkeypatch):
    """Mini parts beside an encoder whose weights are absent: not "built in"."""
    import open_clip

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    tag = _mini_paired("tag-enc", {"kind": "open_clip", "model": "ViT-B-32", "pretrained": "laion2b_s34b_b79k"})
    assert presets.weights_status(tag) == "not downloaded"
    repo = open_clip.get_pretrained_cfg("ViT-B-32", "laion2b_s34b_b79k")["hf_hub"].rstrip("/")
    _snapshot(tmp_path / "hub", repo, ["open_clip_model.safetensors"])
    assert presets.weights_status(tag) == "cached"
    hf = _mini_paired("hf-enc", {"kind": "hf_clip", "repo": "me/not-downloaded"})
    assert presets.weights_status(hf) == "not downloaded"
    folder = tmp_path / "hub-folder"
    gone = _mini_paired("dir-enc", {"kind": "open_clip", "model": f"local-dir:{folder}"})
    assert presets.weights_status(gone) == "missing"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text("{}")
    (folder / "open_clip_model.safetensors").write_bytes(b"x")
    assert presets.weights_status(gone) == "built in"


def test_weights_status_finds_files_where_the_loader_does(tmp_path, monkeypatch):
    """Paths relative to the working directory count (the loader reads them there); a user's
    missing file is "missing", not the mini model's "(train it)"."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "w.safetensors").write_bytes(b"x")
    (tmp_path / "models" / "c.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    rel = _mini_paired("rel", {"kind": "open_clip", "model": "m", "config": "models/c.json", "checkpoint": "models/w.safetensors"})
    assert presets.weights_status(rel) == "built in"
    absent = _mini_paired("abs", {"kind": "open_clip", "model": "m", "checkpoint": str(tmp_path / "gone.safetensors")})
    assert presets.weights_status(absent) == "missing"
    ours = _mini_paired("ours", {"kind": "open_clip", "model": "m", "checkpoint": "mini/weights/not-trained.safetensors"})
    assert presets.weights_status(ours) == "missing (train it)"


@pytest.mark.parametrize(
    "change, key",
    [
        ({"encoder": {"model": "ViT-B-32"}}, '"kind"'),
        ({"decoder": {"kind": 3}}, '"kind"'),
        ({"prior": ["mini"]}, "prior"),
        ({"dim": "768"}, "dim"),
        ({"space": None}, "space"),
    ],
)
def test_register_preset_checks_kinds_and_types(change, key, monkeypatch):
    monkeypatch.setattr(presets, "PRESETS", dict(presets.PRESETS))
    good = dict(name="checked", space="s", dim=32, resolution=64, encoder={"kind": "open_clip_tiny"}, decoder={"kind": "mini"})
    bad = presets.Preset(**{**good, **change})
    with pytest.raises(ArgumentError, match="preset 'checked'") as e:
        presets.register_preset(bad)
    assert key in str(e.value)
    assert "checked" not in presets.PRESETS


def test_a_part_without_kind_is_an_argument_error_not_a_key_error():
    p = presets.Preset(name="unregistered", space="s", dim=32, resolution=64, encoder={"model": "ViT-B-32"}, decoder={})
    with pytest.raises(ArgumentError, match=r"preset 'unregistered'.*encoder.*\"kind\""):
        ll.create_encoder(p)
    with pytest.raises(ArgumentError, match=r"decoder.*\"kind\""):
        ll.create_decoder(p)


@pytest.mark.parametrize("kw", [{"resolution": 32}, {"name": "x"}, {"space": "s"}, {"dim": 16}])
def test_an_option_the_preset_sets_itself_is_named(kw):
    """create_decoder("tiny", resolution=32) raised Python's bare "got multiple values for
    keyword argument"; now an ArgumentError naming it, with the fix (a copy of the preset)."""
    import dataclasses

    arg = next(iter(kw))
    with pytest.raises(ArgumentError, match=rf"the decoder of preset 'tiny' sets {arg}= itself from the preset, so "
                                            rf"create_decoder\(\) cannot pass it; .*dataclasses.replace"):  # fmt: skip
        presets.create_decoder("tiny", **kw)
    if arg == "resolution":  # the fix it names works
        assert presets.create_decoder(dataclasses.replace(presets.get_preset("tiny"), resolution=32)).resolution == 32


def test_a_user_builder_for_a_built_in_kind_is_not_replaced_by_the_lazy_load():
    """The built-in builders register at the first create_*: a user's builder registered before
    that for a built-in kind was silently replaced. In a fresh interpreter (builders not loaded)."""
    code = (
        "import latentlab as ll\n"
        "from latentlab import presets\n"
        "assert not presets._LOADED\n"
        "@presets.register_decoder_builder('stable_unclip_tiny')\n"
        "def mine(preset, **kw):\n"
        "    return 'mine'\n"
        "print(ll.create_decoder('tiny'))\n"
        "print(presets._DECODER_BUILDERS['karlo'].__module__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["mine", "latentlab.decoders.karlo"], out.stderr


def test_a_user_builder_registered_after_the_built_ins_replaces_them(monkeypatch):
    presets._load_builders()
    monkeypatch.setitem(presets._PRIOR_BUILDERS, "identity", presets._PRIOR_BUILDERS["identity"])  # restored after

    @presets.register_prior_builder("identity")
    def mine(preset, **kw):
        return "mine"

    assert ll.create_prior("tiny") == "mine"


def test_weights_status_reads_every_part_of_a_preset_with_a_tiny_encoder(tmp_path):
    """A preset whose encoder was open_clip_tiny was "built in (random)" whatever its decoder
    loaded, and a Kandinsky decoder's image_encoder_repo was never looked at."""
    (tmp_path / "dec").mkdir()
    (tmp_path / "enc").mkdir()

    def preset(decoder):
        return presets.Preset(name="u", space="u", dim=32, resolution=64, encoder={"kind": "open_clip_tiny"},
                              decoder=decoder, prior={"kind": "identity"})  # fmt: skip

    assert presets.weights_status(preset({"kind": "stable_unclip_tiny"})) == "built in (random)"
    assert presets.weights_status(preset({"kind": "stable_unclip", "repo": str(tmp_path / "dec")})) == "built in"
    assert presets.weights_status(preset({"kind": "stable_unclip", "repo": str(tmp_path / "gone")})) == "missing"
    kand = {"kind": "kandinsky", "repo": str(tmp_path / "dec")}
    assert presets.weights_status(preset({**kand, "image_encoder_repo": str(tmp_path / "enc")})) == "built in"
    assert presets.weights_status(preset({**kand, "image_encoder_repo": str(tmp_path / "gone")})) == "missing"
    assert presets.weights_status(preset({**kand, "image_encoder_repo": None})) == "built in"


def test_create_functions_tell_type_checkers_what_they_return():
    # py.typed is shipped: unannotated, create_* were Any to a type checker, and so was every
    # object a user built from them
    import typing

    import latentlab.presets as presets
    from latentlab.decoders.base import Decoder
    from latentlab.encoders import Encoder
    from latentlab.priors import Prior

    names = {**vars(presets), "Decoder": Decoder, "Encoder": Encoder, "Prior": Prior}
    for fn, cls in [(presets.create_encoder, Encoder), (presets.create_decoder, Decoder), (presets.create_prior, Prior)]:
        assert typing.get_type_hints(fn, globalns=names)["return"] is cls


class _EntryPoint:
    """Stands in for an installed package's entry point of the latentlab.presets group."""

    def __init__(self, name, value, load):
        self.name, self.value, self._load = name, value, load

    def load(self):
        return self._load()


def test_presets_of_installed_plugins_are_found_by_name_and_listed(monkeypatch):
    """register_preset reaches only its own process: the latentlab command could not use a
    preset of yours. Entry points of the "latentlab.presets" group are loaded for it."""
    import importlib.metadata

    monkeypatch.setattr(presets, "PRESETS", dict(presets.PRESETS))
    monkeypatch.setattr(presets, "_plugins_loaded", None)
    monkeypatch.setattr(presets, "_plugin_failures", [])  # (load_plugins rebinds it: put back after)
    calls = []

    def register():
        calls.append(1)
        presets.register_preset(presets.Preset(name="plugged", space="tiny-random", dim=32, resolution=64,
                                               encoder={"kind": "open_clip_tiny"}, decoder={"kind": "stable_unclip_tiny"}))  # fmt: skip

    def broken():
        raise ImportError("no module named my_models")

    eps = [_EntryPoint("mine", "my_pkg:register", lambda: register), _EntryPoint("bad", "my_models", broken)]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: eps if group == "latentlab.presets" else [])
    assert presets.get_preset("tiny").name == "tiny" and calls == []  # a known name never waits for the plugins
    with pytest.warns(UserWarning, match=r"latentlab plugin 'bad' \(my_models\) failed to load, so its presets are "
                                         r"missing: ImportError: no module named my_models"):  # fmt: skip
        assert presets.get_preset("plugged").name == "plugged"
    assert "plugged" in presets.list_presets() and calls == [1]  # loaded once
    assert presets.load_plugins() == ["mine = my_pkg:register"]
    with pytest.raises(ArgumentError, match=r"unknown preset 'nothing-like-it'.*exists in that Python process only; "
                                            r"for the latentlab command, install it as a 'latentlab.presets' entry point"):
        presets.get_preset("nothing-like-it")
    with pytest.raises(ArgumentError, match=r"Did you mean 'plugged'\?.*install it as a 'latentlab.presets' entry"):
        presets.get_preset("pluged")  # (a name near a known one may be a preset of yours, as 'mini-copy' is near 'mini')
    with pytest.raises(ArgumentError, match=r"Did you mean 'plugged'\?[^(]*$"):  # another case only: no note
        presets.get_preset("Plugged")


def test_threads_asking_for_a_plugins_preset_wait_for_it_to_load(monkeypatch):
    import importlib.metadata
    import threading
    import time

    monkeypatch.setattr(presets, "PRESETS", dict(presets.PRESETS))
    monkeypatch.setattr(presets, "_plugins_loaded", None)
    monkeypatch.setattr(presets, "_plugin_failures", [])  # (load_plugins rebinds it: put back after)

    def slow():
        time.sleep(0.3)
        presets.register_preset(presets.Preset(name="slow-plugged", space="tiny-random", dim=32, resolution=64,
                                               encoder={"kind": "open_clip_tiny"}, decoder={"kind": "stable_unclip_tiny"}))  # fmt: skip

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [_EntryPoint("s", "pkg:slow", lambda: slow)])
    got = {}

    def ask(k):
        try:
            got[k] = presets.get_preset("slow-plugged").name
        except ArgumentError as exc:  # "unknown preset" while the first thread was still loading it
            got[k] = str(exc)

    threads = [threading.Thread(target=ask, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert got == {0: "slow-plugged", 1: "slow-plugged", 2: "slow-plugged"}


def test_a_builder_whose_model_is_not_the_presets_size_or_space_is_named(monkeypatch):
    monkeypatch.setattr(presets, "PRESETS", dict(presets.PRESETS))
    presets._load_builders()
    monkeypatch.setattr(presets, "_DECODER_BUILDERS", dict(presets._DECODER_BUILDERS))  # restored after
    monkeypatch.setattr(presets, "_ENCODER_BUILDERS", dict(presets._ENCODER_BUILDERS))

    @presets.register_decoder_builder("my_32")
    def my_decoder(preset, **kw):
        return ll.create_decoder("tiny")  # 32-d, whatever the preset says

    @presets.register_encoder_builder("my_enc")
    def my_encoder(preset, **kw):
        return ll.create_encoder("tiny")  # space 'tiny-random'

    def preset(name, **kw):
        return presets.register_preset(presets.Preset(**{"name": name, "space": "tiny-random", "dim": 32, "resolution": 64,
                                                         "encoder": {"kind": "my_enc"}, "decoder": {"kind": "my_32"}, **kw}))  # fmt: skip

    preset("fine")
    assert ll.create_decoder("fine").dim == 32 and ll.create_encoder("fine").space == "tiny-random"
    preset("wide", dim=64)
    with pytest.raises(ll.SpecError, match=r"preset 'wide' declares dim=64, but its decoder builder '.*my_decoder' made one "
                                           r"with dim=32 \(StableUnCLIPDecoder\); fix the preset's dim or the builder"):
        ll.create_decoder("wide")  # failed later, blaming the embeddings' CLIP model
    preset("other", space="elsewhere")
    with pytest.raises(ll.SpecError, match=r"declares space='elsewhere', but its encoder builder '.*my_encoder' made one "
                                           r"with space='tiny-random' \(Encoder\)"):
        ll.create_encoder("other")


def test_models_load_one_at_a_time_across_threads(monkeypatch):
    """open_clip's config registry and diffusers' first import are not thread-safe: three threads
    creating models at once failed with a missing temporary file or 'damaged' weights."""
    import threading
    import time

    presets._load_builders()
    monkeypatch.setitem(presets._PRIOR_BUILDERS, "identity", presets._PRIOR_BUILDERS["identity"])  # restored after
    inside, most = [0], [0]

    @presets.register_prior_builder("identity")
    def slow(preset, **kw):
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        time.sleep(0.05)
        inside[0] -= 1
        return "built"

    threads = [threading.Thread(target=ll.create_prior, args=("tiny",)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1


def test_weights_status_looks_in_a_mini_parts_own_weights_folder(tmp_path):
    """A mini decoder or prior's "weights" folder was read as a file ("missing" while it loaded),
    and "weights_dir" was not looked at ("built in" while the folder did not exist)."""
    import shutil

    from latentlab.mini.models import WEIGHTS_DIR

    own = tmp_path / "mine"
    own.mkdir()
    for name in ("mini_decoder", "mini_prior"):
        for suffix in (".safetensors", ".json"):
            shutil.copy(WEIGHTS_DIR / f"{name}{suffix}", own / f"{name}{suffix}")
    mini = presets.get_preset("mini")

    def status(**parts):
        return presets.weights_status(presets.Preset(name="m", space=mini.space, dim=mini.dim, resolution=mini.resolution,
                                                     encoder=mini.encoder, **parts))  # fmt: skip

    for key in ("weights", "weights_dir"):
        assert status(decoder={"kind": "mini", key: str(own)}, prior={"kind": "mini", key: str(own)}) == "built in"
        assert status(decoder={"kind": "mini", key: str(tmp_path / "gone")}, prior={"kind": "mini"}) == "missing"
    (own / "mini_prior.json").unlink()
    assert status(decoder={"kind": "mini", "weights": str(own)}, prior={"kind": "mini", "weights": str(own)}) == "missing"


def test_a_prior_subclass_returning_the_wrong_thing_is_named():
    from latentlab.errors import LatentlabError
    from latentlab.priors import Prior

    class Mine(Prior):
        def __init__(self, result):
            super().__init__(name="mine", space="s", dim=4)
            self.result = result

        def _sample(self, text_embeddings, *, seed, num_samples):
            return self.result(text_embeddings)

    z = torch.nn.functional.normalize(torch.randn(2, 4), dim=-1)
    for result, match in ((lambda t: torch.randn(2, 3), r"prior Mine returned Tensor torch.float32 \(2, 3\) from its _sample; "
                                                        r"a prior returns a floating torch.Tensor \(2, 4\)"),  # tagged as 4-d
                          (lambda t: t.numpy(), r"returned ndarray float32 \(2, 4\)"),  # AttributeError on .to
                          (lambda t: t[:1], r"\(1, 4\) .*num_samples=1 image embeddings"),
                          (lambda t: t * float("nan"), r"returned rows \[0, 1\] that are zero or not finite"),
                          (lambda t: torch.zeros(2, 4), r"rows \[0, 1\] that are zero")):  # fmt: skip
        with pytest.raises(LatentlabError, match=match):
            Mine(result)(z)
    assert torch.allclose(Mine(lambda t: t * 3)(z), z, atol=1e-6)  # normalised, as before
    with pytest.raises(NotImplementedError, match=r"Bare must implement _sample\(text_embeddings"):
        type("Bare", (Prior,), {})(name="b", space="s", dim=4)(z)


def test_a_zero_text_embedding_is_named_as_the_input_not_the_priors_output():
    from latentlab.priors import IdentityPrior

    z = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1)
    z[1] = 0
    with pytest.raises(ArgumentError, match=r"text_embeddings row\(s\) \[1\] are the zero vector"):
        IdentityPrior(name="p", space="s", dim=4)(z)


# registry behaviour a mutation test found unpinned (2026-12-07)
def _good(**change) -> presets.Preset:
    base = dict(name="checked", space="s", dim=32, resolution=64, encoder={"kind": "open_clip_tiny"}, decoder={"kind": "mini"})
    return presets.Preset(**{**base, **change})


def test_register_preset_refuses_to_replace_a_preset_unless_overwrite(monkeypatch):
    """A second preset of a taken name is refused (the first kept); overwrite=True replaces it."""
    monkeypatch.setattr(presets, "PRESETS", dict(presets.PRESETS))
    first = presets.register_preset(_good())
    with pytest.raises(ArgumentError, match="already registered"):
        presets.register_preset(_good(dim=64))
    assert presets.PRESETS["checked"] is first
    second = presets.register_preset(_good(dim=64), overwrite=True)
    assert presets.PRESETS["checked"] is second and presets.get_preset("checked").dim == 64
    with pytest.raises(ArgumentError, match="already registered"):  # a shipped one too
        presets.register_preset(dataclasses.replace(presets.get_preset("tiny"), dim=64))


@pytest.mark.parametrize("change, key", [({"dim": 0}, "dim"), ({"dim": -1}, "dim"), ({"space": ""}, "space")])
def test_register_preset_refuses_a_zero_dim_and_an_empty_space(change, key, monkeypatch):
    """dim must be >= 1 and space a non-empty string."""
    monkeypatch.setattr(presets, "PRESETS", dict(presets.PRESETS))
    with pytest.raises(ArgumentError, match="preset 'checked'") as e:
        presets.register_preset(_good(**change))
    assert key in str(e.value) and "checked" not in presets.PRESETS
    assert presets.register_preset(_good(dim=1)).dim == 1  # the smallest valid size


def test_a_user_builder_replaces_an_earlier_user_builder_of_the_same_kind(monkeypatch):
    """Registering a builder again (e.g. a re-run notebook cell) uses the newer one."""
    presets._load_builders()
    monkeypatch.setattr(presets, "_PRIOR_BUILDERS", dict(presets._PRIOR_BUILDERS))  # restored after

    @presets.register_prior_builder("identity")
    def first(preset, **kw):
        return "first"

    @presets.register_prior_builder("identity")
    def second(preset, **kw):
        return "second"

    assert presets.create_prior("tiny") == "second"


def test_create_functions_default_to_the_mini_preset(monkeypatch):
    """create_encoder(), create_decoder() and create_prior() with no preset build mini's parts."""
    presets._load_builders()
    for table, kind in ((presets._ENCODER_BUILDERS, "open_clip"), (presets._DECODER_BUILDERS, "mini"),
                        (presets._PRIOR_BUILDERS, "mini")):  # fmt: skip
        monkeypatch.setitem(table, kind, lambda preset, **kw: preset.name)
    assert presets.create_encoder() == presets.create_decoder() == presets.create_prior() == "mini"


@pytest.mark.parametrize("arg", ["name", "space", "dim"])
def test_a_builder_taking_any_keyword_never_gets_what_the_preset_sets(arg, monkeypatch):
    """name=, space=, dim= are refused before a **kwargs builder (as mini's) runs."""
    presets._load_builders()
    called = []
    monkeypatch.setitem(presets._DECODER_BUILDERS, "mini", lambda preset, **kw: called.append(kw) or kw)
    with pytest.raises(ArgumentError, match=rf"the decoder of preset 'mini' sets {arg}= itself from the preset"):
        presets.create_decoder("mini", **{arg: 16 if arg == "dim" else "x"})
    assert called == []


def test_weights_status_is_plain_missing_when_a_users_file_is_absent_beside_an_untrained_mini_one(tmp_path):
    """"missing (train it)" only when every absent file is the mini model's: training would not
    bring back a user's own file."""
    encoder = {"kind": "open_clip", "model": "m", "checkpoint": "mini/weights/not-trained.safetensors",
               "config": str(tmp_path / "gone.json")}  # fmt: skip
    p = presets.Preset(name="mixed", space="s", dim=32, resolution=64, encoder=encoder, decoder={"kind": "mini"})
    assert presets.weights_status(p) == "missing"
    only_ours = dataclasses.replace(p, encoder={k: v for k, v in encoder.items() if k != "config"})
    assert presets.weights_status(only_ours) == "missing (train it)"


# -- found by the property audit of 2026-12-07: the registry, weights_status, create_* and the mini package --

#: every value weights_status documents (an "unreadable (...)" one is matched by its start)
STATUSES = {"built in (random)", "built in", "missing (train it)", "missing", "cached", "partly cached",
            "not downloaded", "unknown"}  # fmt: skip


def _preset(**change) -> presets.Preset:
    base = dict(name="audited", space="tiny-random", dim=32, resolution=64, encoder={"kind": "open_clip_tiny"},
                decoder={"kind": "stable_unclip_tiny"}, prior={"kind": "identity"})  # fmt: skip
    return presets.Preset(**{**base, **change})


@pytest.fixture
def registry(monkeypatch):
    """The registry, restored after the test."""
    monkeypatch.setattr(presets, "PRESETS", dict(presets.PRESETS))
    return presets.PRESETS


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache of this test's own; returns a function that adds a snapshot."""
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))

    def add(repo: str) -> None:
        snap = cache / ("models--" + repo.replace("/", "--")) / "snapshots" / "abc"
        snap.mkdir(parents=True)
        (snap / "model_index.json").write_text("{}")

    return add


# -- register_preset checks every field that something downstream relies on -----------------


@pytest.mark.parametrize(
    "change, key",
    [
        ({"hub_repos": "me/my-unclip"}, r"hub_repos .*\('me/my-unclip',\), with the comma"),  # ("me/my-unclip") is a str
        ({"hub_repos": None}, "hub_repos"),
        ({"hub_repos": ("me/a", 3)}, "hub_repos"),
        ({"hub_repos": ("",)}, "hub_repos"),
        ({"resolution": 0}, "resolution"),
        ({"resolution": "768"}, "resolution"),
        ({"resolution": True}, "resolution"),
        ({"download_gb": "5"}, "download_gb"),
        ({"download_gb": float("nan")}, "download_gb"),
        ({"gpu_memory_gb": -1.0}, "gpu_memory_gb"),
        ({"encoder": {"kind": "open_clip_tiny", 3: "x"}}, "keys of its encoder spec must be strings"),
    ],
)
def test_register_preset_refuses_fields_the_registry_and_cli_cannot_use(change, key, registry):
    """hub_repos="me/repo" (a 1-tuple without its comma) was accepted and read letter by letter:
    weights_status said "not downloaded" with the repo in the cache; a resolution of "768" or a
    download_gb of "5" failed later in a builder or in `latentlab presets`."""
    with pytest.raises(ArgumentError, match="preset 'audited'") as e:
        presets.register_preset(_preset(**change))
    assert re.search(key, str(e.value)), str(e.value)
    assert "audited" not in registry


def test_hub_repos_as_a_string_is_not_read_letter_by_letter(hub):
    hub("me/my-unclip")
    assert presets.weights_status(_preset(hub_repos=("me/my-unclip",))) == "cached"
    with pytest.raises(ArgumentError, match="with the comma"):  # was "not downloaded"
        presets.weights_status(_preset(hub_repos="me/my-unclip"))


def test_register_preset_stores_numpy_numbers_as_plain_ones(registry, capsys):
    """A preset with dim=np.int64(32) (e.g. read from an array) was stored as it was, and
    `latentlab presets --json` failed: "Object of type int64 is not JSON serializable"."""
    from latentlab import cli

    got = presets.register_preset(_preset(dim=np.int64(32), resolution=np.int32(64), download_gb=np.float32(1.5),
                                          gpu_memory_gb=np.float64(2.0), hub_repos=["me/a"]))  # fmt: skip
    stored = presets.get_preset("audited")
    assert got is stored
    assert [type(stored.dim), type(stored.resolution), type(stored.download_gb), type(stored.hub_repos)] == [
        int, int, float, tuple]  # fmt: skip
    assert (stored.dim, stored.resolution, stored.download_gb, stored.hub_repos) == (32, 64, 1.5, ("me/a",))
    plain = _preset(name="plain")
    assert presets.register_preset(plain) is plain  # a preset of plain values is stored as it is
    assert cli.main(["presets", "--json"]) in (0, None)
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["audited"]["dim"] == 32 and rows["audited"]["download_gb"] == 1.5


@pytest.mark.parametrize("overwrite", ["no", "False", 1])
def test_register_preset_overwrite_must_be_a_bool(overwrite, registry):
    """overwrite="no" (or "False", or 1) replaced an existing preset: bool("no") is True."""
    first = presets.register_preset(_preset())
    with pytest.raises(ArgumentError, match="overwrite must be True or False"):
        presets.register_preset(_preset(dim=64), overwrite=overwrite)
    assert presets.PRESETS["audited"] is first


# -- weights_status --------------------------------------------------------------------------


@pytest.mark.parametrize("change", [{"encoder": "open_clip"}, {"prior": ["mini"]}, {"decoder": {"repo": "a/b"}}])
def test_weights_status_of_a_malformed_preset_is_an_argument_error(change):
    """A Preset given to weights_status (not registered, so not checked) whose part was not a dict
    raised AttributeError: 'str' object has no attribute 'get'."""
    with pytest.raises(ArgumentError, match="preset 'audited'"):
        presets.weights_status(_preset(**change))


def test_weights_status_reads_a_repo_as_the_loaders_do(tmp_path, hub):
    """A bare name (no folder of that name here) is a missing local folder to the loaders
    (hf_clip.hub_source), not a Hub repo: weights_status said "not downloaded". A pathlib.Path
    repo, which the loaders take, was not looked at: "unknown"."""
    (tmp_path / "mine").mkdir()

    def status(repo):
        return presets.weights_status(_preset(decoder={"kind": "stable_unclip", "repo": repo}))

    assert status("my_unclip_folder") == "missing"
    assert status("me/.hidden") == "missing"
    assert status(Path(tmp_path / "gone")) == "missing"
    assert status(Path(tmp_path / "mine")) == "built in"
    assert status(str(tmp_path / "mine")) == "built in"
    assert status("me/my-unclip") == "not downloaded"  # a repo id is still a repo
    hub("me/my-unclip")
    assert status("me/my-unclip") == "cached"
    with pytest.raises(LatentlabError, match="no local folder 'my_unclip_folder' exists"):  # the loader agrees
        ll.create_decoder(_preset(decoder={"kind": "stable_unclip", "repo": "my_unclip_folder"}))


def test_weights_status_of_a_home_path_with_a_nul_character():
    """"~\\0x": the user database refused the name with a raw ValueError (embedded null byte).
    No file has such a name, so weights_status says missing (the loaders refuse it: user_path)."""
    for part in ({"encoder": {"kind": "open_clip", "model": "m", "checkpoint": "~\0x"}},
                 {"decoder": {"kind": "stable_unclip", "repo": "~\0x"}},
                 {"encoder": {"kind": "open_clip", "model": "local-dir:~\0x"}},
                 {"decoder": {"kind": "mini", "weights": "~\0x"}}):  # fmt: skip
        assert presets.weights_status(_preset(**part)) == "missing"


_odd_paths = st.one_of(
    st.text(alphabet="~/.\\a\0 :é-", max_size=12),
    st.sampled_from(["~\0x", "~", "~/", "~root", "~nouser/x", "/etc/passwd/x", "x" * 5000, "local-dir:", "hf-hub:", ".."]),
)


@settings(derandomize=True, max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=_odd_paths, where=st.sampled_from(["checkpoint", "config", "repo", "image_encoder_repo", "local-dir",
                                               "hf-hub", "mini-weights"]))  # fmt: skip
def test_weights_status_answers_for_any_path(path, where, hub):
    """Whatever string a preset names as a path or repo, weights_status answers one of its
    documented values (never a raw exception)."""
    part = {"checkpoint": {"encoder": {"kind": "open_clip", "model": "m", "checkpoint": path}},
            "config": {"encoder": {"kind": "open_clip", "model": "m", "config": path}},
            "repo": {"decoder": {"kind": "stable_unclip", "repo": path}},
            "image_encoder_repo": {"decoder": {"kind": "kandinsky", "repo": "a/b", "image_encoder_repo": path}},
            "local-dir": {"encoder": {"kind": "open_clip", "model": "local-dir:" + path}},
            "hf-hub": {"encoder": {"kind": "open_clip", "model": "hf-hub:" + path}},
            "mini-weights": {"decoder": {"kind": "mini", "weights": path}}}[where]  # fmt: skip
    got = presets.weights_status(_preset(**part))
    assert got in STATUSES or got.startswith("unreadable ("), got


# -- create_* keyword handling -----------------------------------------------------------------


def test_a_key_of_a_presets_part_that_its_builder_does_not_take_is_named():
    """prior={"kind": "identity", "seed": 0} (a key for another kind) raised Python's bare
    "_build_identity() got an unexpected keyword argument 'seed'"."""
    with pytest.raises(ArgumentError, match=r"preset 'audited': its prior spec has the key 'seed', which its prior "
                                            r"builder '_build_identity' does not take; remove 'seed'"):  # fmt: skip
        ll.create_prior(_preset(prior={"kind": "identity", "seed": 0}))


@pytest.mark.parametrize("change, key", [({"space": None}, "space"), ({"resolution": "64"}, "resolution"),
                                         ({"hub_repos": "me/repo"}, "hub_repos")])  # fmt: skip
def test_create_functions_check_a_preset_given_as_an_object(change, key):
    """A Preset object (never registered, so never checked) was built as it was: a prior or a
    decoder of space None (which no SpaceError check can match), or the builders' own error
    (e.g. "declares dim=32 but its encoder produces 32-d embeddings" for dim="32")."""
    with pytest.raises(ArgumentError, match=f"preset 'audited': {key} must be"):
        ll.create_prior(_preset(**change))
    with pytest.raises(ArgumentError, match="preset 'audited': dim must be a positive integer"):
        ll.create_encoder(_preset(dim="32"))


@settings(derandomize=True, max_examples=25, deadline=None)
@given(option=st.text(alphabet="abz_-. 0é'", min_size=1, max_size=8).filter(
    lambda k: k not in ("device", "dtype", "name", "space", "dim")))
def test_an_option_the_prior_does_not_take_is_named_whatever_its_spelling(option):
    """create_prior("tiny", **{"cpu-offload": True}) (a name that is no identifier, e.g. from a
    dict of CLI-style names) raised Python's bare TypeError; now it is named as any other."""
    with pytest.raises(ArgumentError) as e:
        ll.create_prior("tiny", **{option: 1})
    assert f"takes no {option}=" in str(e.value) and "preset 'tiny'" in str(e.value)
    assert e.value.option == option


# -- register_*_builder -----------------------------------------------------------------------


@pytest.mark.parametrize("register", [presets.register_encoder_builder, presets.register_decoder_builder,
                                      presets.register_prior_builder])  # fmt: skip
def test_a_builder_registered_without_its_kind_is_refused(register, monkeypatch):
    """`@register_prior_builder` without ("kind") registered nothing and replaced the function
    with the inner decorator; a non-callable was registered and failed at create_* with
    "'int' object is not callable"."""
    presets._load_builders()
    for table in ("_ENCODER_BUILDERS", "_DECODER_BUILDERS", "_PRIOR_BUILDERS"):
        monkeypatch.setattr(presets, table, dict(getattr(presets, table)))  # restored after
    what = register.__name__.split("_")[1]

    def mine(preset, **kw):
        return "mine"

    with pytest.raises(ArgumentError, match=rf"register_{what}_builder takes the part kind, a non-empty string: "
                                            rf"@register_{what}_builder\('my_kind'\); got <function .*mine.*> "
                                            rf"\(used as @register_{what}_builder without a kind\?\)"):  # fmt: skip
        register(mine)
    for kind in ("", 3, None):
        with pytest.raises(ArgumentError, match=f"register_{what}_builder takes the part kind"):
            register(kind)
    with pytest.raises(ArgumentError, match=rf"register_{what}_builder\('mine'\) takes a function .* got int"):
        register("mine")(3)
    assert "mine" not in getattr(presets, f"_{what.upper()}_BUILDERS")
    assert register("mine")(mine) is mine and getattr(presets, f"_{what.upper()}_BUILDERS")["mine"] is mine


# -- plugins ----------------------------------------------------------------------------------


def test_a_plugin_naming_a_preset_instead_of_a_module_or_function_is_reported(registry, monkeypatch):
    """An entry point naming a Preset object was "loaded" (listed by load_plugins) and its
    preset never registered, with no warning."""
    import importlib.metadata

    class EP:
        name, value = "mine", "my_pkg:MY_PRESET"

        def load(self):
            return _preset(name="plugged")

    monkeypatch.setattr(presets, "_plugins_loaded", None)
    monkeypatch.setattr(presets, "_plugin_failures", [])  # (load_plugins rebinds it: put back after)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [EP()] if group == presets.PLUGIN_GROUP else [])
    with pytest.warns(UserWarning, match=r"latentlab plugin 'mine' \(my_pkg:MY_PRESET\) failed to load.*names a "
                                         r"Preset, not a module or a function"):  # fmt: skip
        assert presets.load_plugins() == []
    assert "plugged" not in presets.list_presets()


# -- the registry round-trips any valid preset --------------------------------------------------


@settings(derandomize=True, max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(min_size=1, max_size=20), dim=st.integers(1, 4096), res=st.integers(1, 4096),
       repos=st.lists(st.text(min_size=1, max_size=10), max_size=3).map(tuple))  # fmt: skip
def test_any_registered_preset_is_found_by_its_name(name, dim, res, repos, registry):
    p = presets.register_preset(_preset(name=name, dim=dim, resolution=res, hub_repos=repos), overwrite=True)
    assert presets.get_preset(name) is p and name in presets.list_presets()
    assert dataclasses.asdict(p) == json.loads(json.dumps(p.to_dict())) | {"hub_repos": repos}


# -- the mini package ---------------------------------------------------------------------------


def test_mini_weights_available_needs_the_configs_the_loaders_read(tmp_path, monkeypatch):
    """weights_available() was True with the decoder's and prior's .json configs absent, which
    their loaders need (weights_status("mini") said "missing (train it)")."""
    import latentlab.mini as mini

    for name in ("mini_clip", "mini_decoder", "mini_prior"):
        (tmp_path / f"{name}.safetensors").write_bytes(b"x")
    monkeypatch.setattr(mini, "WEIGHTS_DIR", tmp_path)
    assert mini.weights_available() is False
    for name in ("mini_decoder", "mini_prior"):
        (tmp_path / f"{name}.json").write_text("{}")
    assert mini.weights_available() is True


def test_mini_submodules_the_docs_cite_are_reachable_as_attributes():
    """`ll.mini.shapes.check_relation` (docs/cli.md) and `latentlab.mini.runtime.ddim_invert`
    (docs/quality.md) raised "module 'latentlab.mini' has no attribute 'shapes'" in a fresh
    interpreter, though `ll.pacing.RELAX_STEP` works. Called through the module's __getattr__,
    as a fresh interpreter would (here the submodules may be imported already)."""
    import importlib

    import latentlab.mini as mini

    for name in ("shapes", "runtime"):
        assert mini.__getattr__(name) is importlib.import_module(f"latentlab.mini.{name}")
    for name in ("weights", "configs", "nothing", "_private", "shapes.x"):  # folders are not modules
        with pytest.raises(AttributeError, match=f"module 'latentlab.mini' has no attribute '{name}'"):
            mini.__getattr__(name)
    assert mini.__getattr__("MiniDecoder").__name__ == "MiniDecoder"
