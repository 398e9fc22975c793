"""Stable unCLIP decoder (tiny random pipeline, offline) and priors."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
import torch

from latentlab.errors import ArgumentError, ModelNotAvailableError, SpaceError
from latentlab.presets import create_decoder, create_prior, get_preset
from latentlab.space import space_of, tag

REAL_REPO = "stabilityai/stable-diffusion-2-1-unclip"


def unit(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator("cpu").manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=-1)


def noise_for(dec, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator("cpu").manual_seed(seed)
    return torch.randn(n, *dec.noise_shape(), generator=g)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These tiny convolutions run fastest on one thread, and on a CPU shared with other jobs
    multi-threaded OpenMP can be ~10x slower; restore the caller's setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def dec():
    torch.manual_seed(0)
    return create_decoder("tiny")


@pytest.fixture(scope="module")
def batch(dec):
    """Eight frames rendered together (and reused by several tests)."""
    z = tag(unit(8, dec.dim, 1), dec.space)
    noise = noise_for(dec, 8, 2)
    seeds = list(range(100, 108))
    frames = dec.decode(z, noise, seeds=seeds, steps=6)
    return z, noise, seeds, frames


# -- decoder contract -------------------------------------------------------------------------


def test_tiny_decoder_matches_preset(dec):
    p = get_preset("tiny")
    assert (dec.dim, dec.space, dec.resolution) == (p.dim, p.space, p.resolution)
    assert dec.noise_shape() == (4, 16, 16)
    assert dec.pipe.unet.config.projection_class_embeddings_input_dim == 2 * p.dim
    d = dec.describe()
    assert d["class"] == "StableUnCLIPDecoder" and d["scheduler"] == "DDIMScheduler"
    assert d["device"] == "cpu" and d["dtype"] == "float32"
    # the tiny builder calibrates embed_scale on its own image encoder: a real, non-unit norm
    assert 0.5 < d["embed_scale"] < 100 and d["embed_scale"] != 1.0


def test_output_dtype_shape_range(batch):
    _, _, _, frames = batch
    assert isinstance(frames, np.ndarray)
    assert frames.shape == (8, 64, 64, 3) and frames.dtype == np.uint8
    assert frames.std() > 5  # not a constant image
    assert len(np.unique(frames)) > 50  # uses a range of levels, not only 0/255


def test_same_seed_is_identical(dec, batch):
    z, noise, seeds, frames = batch
    first = dec.decode(z[:3], noise[:3], seeds=seeds[:3], steps=6)
    again = dec.decode(z[:3], noise[:3], seeds=seeds[:3], steps=6)
    np.testing.assert_array_equal(again, first)
    assert np.abs(first.astype(int) - frames[:3].astype(int)).max() <= 1  # batch of 3 vs batch of 8


def test_batch_invariance(dec, batch):
    z, noise, seeds, frames = batch
    for k in (0, 5):
        alone = dec.decode(z[k : k + 1], noise[k : k + 1], seeds=[seeds[k]], steps=6)
        assert np.abs(alone[0].astype(int) - frames[k].astype(int)).max() <= 1
    # float pixel space, at guidance > 1 too (the unconditional half joins the batch)
    full = dec._render(z[:4], noise[:4], seeds=seeds[:4], steps=4, guidance_scale=3.0)
    alone = dec._render(z[2:3], noise[2:3], seeds=[seeds[2]], steps=4, guidance_scale=3.0)
    np.testing.assert_allclose(alone[0], full[2], atol=1e-4)


def test_noise_level_uses_per_frame_seed(dec):
    """With noise_level > 0 the embedding noise comes from each frame's seed only."""
    from latentlab.decoders.unclip import StableUnCLIPDecoder

    noisy = StableUnCLIPDecoder(
        dec.pipe, name="t", space=dec.space, dim=dec.dim, resolution=dec.resolution,
        embed_scale=dec.embed_scale, noise_level=500,
    )
    z, noise = unit(3, dec.dim, 7), noise_for(dec, 3, 8)
    full = noisy._render(z, noise, seeds=[1, 2, 3], steps=3, guidance_scale=1.0)
    alone = noisy._render(z[1:2], noise[1:2], seeds=[2], steps=3, guidance_scale=1.0)
    np.testing.assert_allclose(alone[0], full[1], atol=1e-4)
    other_seed = noisy._render(z[1:2], noise[1:2], seeds=[99], steps=3, guidance_scale=1.0)
    assert np.abs(other_seed[0] - full[1]).max() > 1e-3


def test_different_embeddings_give_different_frames(dec, batch):
    z, noise, seeds, frames = batch
    same_noise = noise[:1].repeat(2, 1, 1, 1)
    zz = torch.cat([z[:1], z[1:2]])
    out = dec.decode(zz, same_noise, seeds=[seeds[0], seeds[0]], steps=6)
    assert np.abs(out[0].astype(int) - out[1].astype(int)).mean() > 2.0
    # and the embedding really is what differs: same embedding + same noise -> same frame
    assert np.abs(out[0].astype(int) - frames[0].astype(int)).max() <= 1


def test_different_noise_gives_different_frames(dec, batch):
    z, noise, seeds, frames = batch
    out = dec.decode(z[:1], noise[1:2], seeds=seeds[:1], steps=6)
    assert np.abs(out[0].astype(int) - frames[0].astype(int)).mean() > 2.0


def test_guidance_above_one(dec, batch):
    z, noise, seeds, frames = batch
    guided = dec.decode(z[:2], noise[:2], seeds=seeds[:2], steps=6, guidance_scale=4.0)
    assert guided.shape == (2, 64, 64, 3) and guided.dtype == np.uint8
    assert np.abs(guided.astype(int) - frames[:2].astype(int)).mean() > 0.5
    # the unconditional branch sees zero image embeddings, as the pipeline does
    seen = []
    hook = dec.pipe.unet.register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw["class_labels"].clone()), with_kwargs=True
    )
    try:
        dec.decode(z[:2], noise[:2], seeds=seeds[:2], steps=1, guidance_scale=4.0)
    finally:
        hook.remove()
    labels = seen[0]  # (2b, 2d): [negative; positive], each = embedding ++ noise-level embedding
    assert labels.shape == (4, 2 * dec.dim)
    assert torch.count_nonzero(labels[:2, : dec.dim]) == 0
    assert torch.count_nonzero(labels[2:, : dec.dim]) > 0


def test_embeddings_are_normalised_before_scaling(dec, batch):
    z, noise, seeds, frames = batch
    out = dec.decode(z[:1] * 3.5, noise[:1], seeds=seeds[:1], steps=6)
    assert np.abs(out[0].astype(int) - frames[0].astype(int)).max() <= 1


# -- boundary checks (Decoder.decode) through the tiny decoder --------------------------------


def test_dim_mismatch_is_space_error(dec):
    with pytest.raises(SpaceError, match="size 16"):
        dec.decode(unit(1, 16, 0), noise_for(dec, 1, 0))


def test_wrong_space_is_space_error(dec):
    z = tag(unit(1, dec.dim, 0), "openai/ViT-L-14")
    with pytest.raises(SpaceError, match="ViT-L-14"):
        dec.decode(z, noise_for(dec, 1, 0))


def test_nan_is_argument_error(dec):
    z = unit(2, dec.dim, 0)
    z[1, 3] = float("nan")
    with pytest.raises(ArgumentError, match="NaN"):
        dec.decode(z, noise_for(dec, 2, 0))


def test_bad_noise_and_arguments(dec):
    z = unit(1, dec.dim, 0)
    with pytest.raises(ArgumentError, match="noise must have shape"):
        dec.decode(z, torch.randn(1, 4, 8, 8))
    with pytest.raises(ArgumentError, match="guidance_scale"):
        dec.decode(z, noise_for(dec, 1, 0), guidance_scale=float("inf"))
    with pytest.raises(ArgumentError, match="steps"):
        dec.decode(z, noise_for(dec, 1, 0), steps=5000)


def test_constructor_checks(dec):
    from latentlab.decoders.unclip import StableUnCLIPDecoder

    common = dict(name="t", space="s", resolution=64)
    with pytest.raises(SpaceError, match="size 32"):
        StableUnCLIPDecoder(dec.pipe, dim=48, embed_scale=1.0, **common)
    with pytest.raises(ArgumentError, match="embed_scale"):
        StableUnCLIPDecoder(dec.pipe, dim=32, embed_scale=0.0, **common)
    with pytest.raises(ArgumentError, match="noise_level"):
        StableUnCLIPDecoder(dec.pipe, dim=32, embed_scale=1.0, noise_level=1000, **common)
    with pytest.raises(ArgumentError, match="resolution"):
        StableUnCLIPDecoder(dec.pipe, name="t", space="s", dim=32, resolution=60, embed_scale=1.0)
    with pytest.raises(ArgumentError, match="StableUnCLIPImg2ImgPipeline"):
        StableUnCLIPDecoder(object(), dim=32, embed_scale=1.0, **common)


def test_constructor_checks_the_defaults_and_cpu_offload(dec):
    from latentlab.decoders.unclip import StableUnCLIPDecoder

    common = dict(name="t", space="s", dim=32, resolution=64, embed_scale=1.0)
    for kw, match in (({"default_steps": 2.7}, "default_steps must be an integer >= 1, got 2.7"),  # became 2
                      ({"default_steps": 0}, "default_steps must be an integer >= 1"),  # failed at a decode, naming steps
                      ({"default_guidance": -1}, "default_guidance must be a finite number >= 0"),
                      ({"default_batch_size": 0}, "default_batch_size must be an integer >= 1"),
                      ({"cpu_offload": "no"}, "cpu_offload must be True or False, got 'no'")):  # bool("no") is True
        with pytest.raises(ArgumentError, match=match):
            StableUnCLIPDecoder(dec.pipe, **common, **kw)
    assert StableUnCLIPDecoder(dec.pipe, **common, default_steps=np.int64(3)).default_steps == 3


@pytest.mark.parametrize("scheduler", ["ddim", "dpm++"])
def test_threads_sharing_a_decoder_take_turns_with_its_scheduler(scheduler):
    """The pipeline's one scheduler is set and stepped by every call: two threads rendering with
    one decoder drew other frames than alone (DDIM), or crashed with an IndexError (DPM++)."""
    import threading

    d = create_decoder("tiny", scheduler=scheduler)
    za, zb = (tag(unit(2, d.dim, s), d.space) for s in (1, 2))
    jobs = {"a": (za, 0, 3), "b": (zb, 1, 9)}  # other step counts: each call resets the scheduler's timesteps
    alone = {k: d.render(z, seed=seed, steps=steps, progress=False) for k, (z, seed, steps) in jobs.items()}
    for _ in range(2):
        got: dict = {}

        def run(k):
            z, seed, steps = jobs[k]
            try:
                got[k] = d.render(z, seed=seed, steps=steps, progress=False)
            except Exception as exc:  # noqa: BLE001 - reported below
                got[k] = exc

        threads = [threading.Thread(target=run, args=(k,)) for k in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for k in jobs:
            assert not isinstance(got[k], Exception), got[k]
            np.testing.assert_array_equal(got[k], alone[k])


def test_tiny_pipeline_is_seeded_and_leaves_global_rng_alone():
    from latentlab.decoders.unclip import tiny_stable_unclip_pipeline

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = tiny_stable_unclip_pipeline(embed_dim=16, resolution=32, seed=5)
    assert torch.equal(torch.rand(3), expected)
    b = tiny_stable_unclip_pipeline(embed_dim=16, resolution=32, seed=5)
    c = tiny_stable_unclip_pipeline(embed_dim=16, resolution=32, seed=6)
    wa, wb, wc = (p.unet.conv_in.weight for p in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert a.image_encoder.config.projection_dim == 16
    ids = a.tokenizer("a cat").input_ids
    assert ids[0] == a.tokenizer.bos_token_id and ids[-1] == a.tokenizer.eos_token_id and len(ids) == 6


# -- the embed_scale convention ---------------------------------------------------------------


def test_embed_scale_convention_reproduces_image_path(dec):
    """Unit embedding x the image's own norm == what the pipeline does with ``image=``."""
    from latentlab.decoders.unclip import StableUnCLIPDecoder

    g = torch.Generator("cpu").manual_seed(3)
    image = torch.randint(0, 256, (1, 40, 48, 3), generator=g, dtype=torch.uint8).numpy()
    raw = dec.image_encoder_embeds(image)  # (1, d), unnormalised
    norm = float(raw.norm())
    assert abs(norm - 1.0) > 0.05  # the pipeline's encoder output is not unit-norm
    z = raw / norm

    scaled = StableUnCLIPDecoder(
        dec.pipe, name="t", space=dec.space, dim=dec.dim, resolution=dec.resolution, embed_scale=norm
    )
    noise = noise_for(dec, 1, 4)
    seen: list[torch.Tensor] = []
    hook = dec.pipe.unet.register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw["class_labels"].clone()), with_kwargs=True
    )
    try:
        ours = scaled._render(z, noise, seeds=[11], steps=3, guidance_scale=1.0)
        pixels = dec.pipe.feature_extractor(images=list(image), return_tensors="pt").pixel_values
        theirs = dec.pipe(
            image=pixels,
            prompt="",
            latents=noise.clone(),
            height=64,
            width=64,
            num_inference_steps=3,
            guidance_scale=1.0,
            generator=[torch.Generator("cpu").manual_seed(11)],
            output_type="np",
        ).images
    finally:
        hook.remove()
    assert len(seen) == 6
    for a, b in zip(seen[:3], seen[3:]):  # what the UNet is conditioned on, step by step
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    # and a wrong scale would not reproduce it
    off = StableUnCLIPDecoder(
        dec.pipe, name="t", space=dec.space, dim=dec.dim, resolution=dec.resolution, embed_scale=1.0
    )
    assert np.abs(off._render(z, noise, seeds=[11], steps=3, guidance_scale=1.0) - theirs).max() > 1e-3


def test_calibrate_embed_scale(dec):
    g = torch.Generator("cpu").manual_seed(9)
    imgs = torch.randint(0, 256, (3, 32, 32, 3), generator=g, dtype=torch.uint8)
    expected = float(dec.image_encoder_embeds(imgs).norm(dim=-1).mean())
    before = dec.embed_scale
    assert dec.calibrate_embed_scale(imgs, update=False) == pytest.approx(expected)
    assert dec.embed_scale == before
    with pytest.raises(ArgumentError, match="uint8"):
        dec.image_encoder_embeds(np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ArgumentError, match="shape"):
        dec.image_encoder_embeds(np.zeros((8, 8), np.uint8))


# -- loading real checkpoints -----------------------------------------------------------------


def _no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_from_pretrained_offline_raises_model_not_available(monkeypatch, tmp_path):
    from latentlab.decoders.unclip import StableUnCLIPDecoder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    _no_network(monkeypatch)
    with pytest.raises(ModelNotAvailableError) as info:
        StableUnCLIPDecoder.from_pretrained(
            REAL_REPO, name="sd21-unclip", space="laion2b/ViT-H-14", dim=1024, resolution=768, embed_scale=20.0
        )
    msg = str(info.value)
    assert REAL_REPO in msg
    # the files this load reads, not the whole repo (notebook 05's command; an audit, 2026-12-06)
    # (one pattern per --include: `hf download` reads a second word as a file name and then ignores --include)
    assert f'hf download {REAL_REPO} --include "*.json" --include "*.txt" --include "*.safetensors" --exclude "*.fp16.*"`' in msg
    with pytest.raises(ModelNotAvailableError, match=r'--include "\*\.json" --include "\*\.txt" --include "\*\.fp16\.safetensors"`'):
        StableUnCLIPDecoder.from_pretrained(REAL_REPO, name="sd21-unclip", space="laion2b/ViT-H-14", dim=1024,
                                            resolution=768, embed_scale=20.0, variant="fp16")  # fmt: skip
    assert str(tmp_path) in msg  # names the (empty) cache it looked in
    assert "HF_HUB_OFFLINE" in msg and "nothing of it" in msg
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no connection traceback


def test_from_pretrained_local_folder_errors(monkeypatch, tmp_path):
    from latentlab.decoders.unclip import StableUnCLIPDecoder

    _no_network(monkeypatch)
    kw = dict(name="x", space="s", dim=32, resolution=64, embed_scale=1.0)
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        StableUnCLIPDecoder.from_pretrained(str(tmp_path / "missing"), **kw)
    with pytest.raises(ModelNotAvailableError, match="model_index.json"):
        StableUnCLIPDecoder.from_pretrained(tmp_path, **kw)  # exists, but empty


def test_from_pretrained_local_folder_roundtrip(dec, monkeypatch, tmp_path):
    """Real loading code (safetensors, dtype) on a saved tiny pipeline gives the same frames."""
    from latentlab.decoders.unclip import StableUnCLIPDecoder

    _no_network(monkeypatch)
    folder = tmp_path / "tiny-unclip"
    dec.pipe.save_pretrained(folder, safe_serialization=True)
    loaded = StableUnCLIPDecoder.from_pretrained(
        folder, name="loaded", space=dec.space, dim=dec.dim, resolution=dec.resolution, embed_scale=dec.embed_scale
    )
    assert loaded.describe()["source"] == str(folder)
    z, noise = unit(2, dec.dim, 21), noise_for(dec, 2, 22)
    a = dec._render(z, noise, seeds=[0, 1], steps=3, guidance_scale=2.0)
    b = loaded._render(z, noise, seeds=[0, 1], steps=3, guidance_scale=2.0)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_manifest_records_the_hub_snapshot_revision(dec, monkeypatch, tmp_path):
    """Loaded from a hub-cache snapshot folder, describe() (and so a render manifest) names its commit."""
    from latentlab.decoders.base import snapshot_revision
    from latentlab.decoders.unclip import StableUnCLIPDecoder

    _no_network(monkeypatch)
    commit = "0123456789abcdef" * 2 + "01234567"
    folder = tmp_path / "models--owner--repo" / "snapshots" / commit
    dec.pipe.save_pretrained(folder, safe_serialization=True)
    loaded = StableUnCLIPDecoder.from_pretrained(
        folder, name="loaded", space=dec.space, dim=dec.dim, resolution=dec.resolution, embed_scale=dec.embed_scale
    )
    assert loaded.describe()["revision"] == snapshot_revision(loaded.pipe) == commit
    assert dec.describe()["revision"] is None  # built in memory: no revision
    out = tmp_path / "render"
    loaded.render(unit(2, dec.dim, 3), seed=0, steps=2, out_dir=out, progress=False)
    assert json.loads((out / "manifest.json").read_text())["decoder"]["revision"] == commit


def test_builder_passes_preset_args(monkeypatch):
    """The "stable_unclip" builder hands the preset's repo/embed_scale and user kwargs to from_pretrained."""
    from latentlab.decoders.unclip import StableUnCLIPDecoder
    from latentlab.presets import Preset

    calls = {}

    def fake(cls, repo, **kwargs):
        calls.update(kwargs, repo=repo)
        return "decoder"

    monkeypatch.setattr(StableUnCLIPDecoder, "from_pretrained", classmethod(fake))
    p = Preset(
        name="fake", space="sp", dim=1024, resolution=768, encoder={"kind": "none"},
        decoder={"kind": "stable_unclip", "repo": "org/model", "embed_scale": 17.5},
    )
    assert create_decoder(p, device="cpu", variant="fp16", cpu_offload=False) == "decoder"
    assert calls["repo"] == "org/model" and calls["embed_scale"] == 17.5
    assert (calls["name"], calls["space"], calls["dim"], calls["resolution"]) == ("fake", "sp", 1024, 768)
    assert calls["variant"] == "fp16" and calls["device"] == "cpu"


@pytest.mark.slow
def test_real_checkpoint_if_cached():
    from huggingface_hub import try_to_load_from_cache

    from latentlab.decoders.unclip import StableUnCLIPDecoder
    from latentlab.hf_clip import hub_cache_dir

    if not isinstance(try_to_load_from_cache(REAL_REPO, "model_index.json", cache_dir=hub_cache_dir()), str):
        pytest.skip(f"{REAL_REPO} is not in the local Hugging Face cache (run `hf download {REAL_REPO}`)")
    cuda = torch.cuda.is_available()
    dec = StableUnCLIPDecoder.from_pretrained(
        REAL_REPO, name="sd21-unclip", space="laion2b/ViT-H-14", dim=1024, resolution=256, embed_scale=1.0,
        device="cuda" if cuda else "cpu", dtype=torch.float16 if cuda else torch.float32, local_files_only=True,
    )
    g = torch.Generator("cpu").manual_seed(0)
    dec.calibrate_embed_scale(torch.randint(0, 256, (2, 224, 224, 3), generator=g, dtype=torch.uint8))
    frames = dec.decode(unit(1, 1024, 0), noise_for(dec, 1, 0), seeds=[0], steps=2, guidance_scale=1.0)
    assert frames.shape == (1, 256, 256, 3) and frames.dtype == np.uint8 and frames.std() > 1


# -- captions: the text-to-image pipeline's prompt conditioning ----------------------------------

PROMPTS = ["a red cat", "a blue dog sitting on a long road by the sea"]  # the second is truncated (16 tokens)


def _text_to_image_pipeline(dec):
    """diffusers' text-to-image ``StableUnCLIPPipeline`` around ``dec``'s own components, with a
    tiny random prior whose output is then replaced by ``dec``'s scaled embeddings (set
    ``pipe.image_embeds`` before a call): its decoder stage, prompt encoding included, is
    the reference. The prior samples with DDIM (eta 0), so it draws nothing from the
    generators and the embedding noise gets the same random numbers as the decoder's."""
    from diffusers import DDIMScheduler, PriorTransformer, StableUnCLIPPipeline
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from latentlab.decoders.unclip import tiny_clip_tokenizer

    p = dec.pipe
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        prior_tokenizer = tiny_clip_tokenizer(16)
        prior_text_encoder = CLIPTextModelWithProjection(CLIPTextConfig(
            vocab_size=len(prior_tokenizer), hidden_size=dec.dim, intermediate_size=37, projection_dim=dec.dim,
            num_hidden_layers=1, num_attention_heads=4, max_position_embeddings=16, bos_token_id=0, eos_token_id=1,
            pad_token_id=1)).eval()  # fmt: skip
        prior = PriorTransformer(num_attention_heads=2, attention_head_dim=8, num_layers=1, embedding_dim=dec.dim,
                                 num_embeddings=16).eval()  # fmt: skip
    pipe = StableUnCLIPPipeline(
        prior_tokenizer=prior_tokenizer, prior_text_encoder=prior_text_encoder, prior=prior,
        prior_scheduler=DDIMScheduler(prediction_type="sample", clip_sample=False),
        image_normalizer=p.image_normalizer, image_noising_scheduler=p.image_noising_scheduler,
        tokenizer=p.tokenizer, text_encoder=p.text_encoder, unet=p.unet, scheduler=p.scheduler, vae=p.vae,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    prior.post_process_latents = lambda latents: pipe.image_embeds  # the prior's sample -> the given embeddings
    return pipe


def _unet_inputs(pipe):
    """A list that collects the UNet's text conditioning (encoder_hidden_states) at each call, and its hook."""
    seen: list[torch.Tensor] = []
    hook = pipe.unet.register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw["encoder_hidden_states"].clone()), with_kwargs=True
    )
    return seen, hook


def test_captions_condition_the_unet_as_the_text_to_image_pipeline_does(dec):
    """decode(captions=...) draws what diffusers' StableUnCLIPPipeline draws for those prompts
    and the same image embeddings, latents, noise level and seeds: the UNet reads each
    caption's text embedding (its encode_prompt, truncation included) with the empty prompt
    as the unconditional half of guidance."""
    from latentlab.decoders.unclip import StableUnCLIPDecoder

    noisy = StableUnCLIPDecoder(dec.pipe, name="t", space=dec.space, dim=dec.dim, resolution=dec.resolution,
                                embed_scale=dec.embed_scale, noise_level=100)  # fmt: skip
    assert dec.reads_captions and noisy.reads_captions
    ref = _text_to_image_pipeline(noisy)
    z, x = tag(unit(2, dec.dim, 30), dec.space), noise_for(dec, 2, 31)
    for guidance in (1.0, 3.0):
        seen, hook = _unet_inputs(dec.pipe)
        try:
            ours = noisy._render(z, x, seeds=[5, 6], steps=3, guidance_scale=guidance, captions=PROMPTS)
            ref.image_embeds = z * noisy.embed_scale
            theirs = ref(
                prompt=PROMPTS, latents=x.clone(), prior_latents=torch.zeros(2, dec.dim), prior_num_inference_steps=1,
                prior_guidance_scale=1.0, height=64, width=64, num_inference_steps=3, guidance_scale=guidance,
                noise_level=100, eta=0.0, generator=[torch.Generator("cpu").manual_seed(s) for s in (5, 6)],
                output_type="np",
            ).images  # fmt: skip
        finally:
            hook.remove()
        assert len(seen) == 6
        with torch.no_grad():
            cond, uncond = ref.encode_prompt(PROMPTS, torch.device("cpu"), 1, guidance > 1.0)
        want = torch.cat([uncond, cond]) if guidance > 1.0 else cond
        assert not torch.allclose(want[-2], want[-1], atol=1e-3)  # two different captions
        torch.testing.assert_close(seen[0], want, atol=1e-5, rtol=1e-5)  # the text conditioning
        for a, b in zip(seen[:3], seen[3:]):  # ours and the pipeline's, step by step
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_captions_change_the_frames_and_none_keeps_the_empty_prompt(dec):
    """Captions change the frames (a frame alone equals it in a batch); captions=None draws as
    before, from the empty prompt as the image-variation pipeline does; an empty caption
    draws the same as none."""
    z, x = tag(unit(2, dec.dim, 32), dec.space), noise_for(dec, 2, 33)
    plain = dec.decode(z, x, seeds=[0, 1], steps=3, guidance_scale=3.0)
    with torch.no_grad():
        variation = dec.pipe(image_embeds=z * dec.embed_scale, prompt=["", ""], latents=x.clone(), height=64,
                             width=64, num_inference_steps=3, guidance_scale=3.0, noise_level=0, eta=0.0,
                             generator=[torch.Generator("cpu").manual_seed(s) for s in (0, 1)],
                             output_type="np").images  # fmt: skip
    assert np.abs(plain.astype(int) - np.rint(variation * 255).astype(int)).max() <= 1
    assert np.array_equal(dec.decode(z, x, seeds=[0, 1], steps=3, guidance_scale=3.0, captions=None), plain)
    read = dec.decode(z, x, seeds=[0, 1], steps=3, guidance_scale=3.0, captions=PROMPTS)
    for k in (0, 1):
        assert np.abs(read[k].astype(int) - plain[k].astype(int)).mean() > 0.5  # the caption changes the picture
    alone = dec.decode(z[1:], x[1:], seeds=[1], steps=3, guidance_scale=3.0, captions=PROMPTS[1:])
    assert np.abs(alone[0].astype(int) - read[1].astype(int)).max() <= 1
    empty = dec.decode(z, x, seeds=[0, 1], steps=3, guidance_scale=3.0, captions=["", ""])
    assert np.abs(empty.astype(int) - plain.astype(int)).max() <= 1


def test_wrong_captions_are_argument_errors(dec):
    z, x = tag(unit(2, dec.dim, 34), dec.space), noise_for(dec, 2, 35)
    with pytest.raises(ArgumentError, match="captions has 1 entries for 2 embeddings; give one per row"):
        dec.decode(z, x, steps=1, captions=["a red cat"])
    with pytest.raises(ArgumentError, match="captions has 3 entries"):
        dec.decode(z, x, steps=1, captions=["a", "b", "c"])
    with pytest.raises(ArgumentError, match="list of strings"):
        dec.decode(z, x, steps=1, captions="a red cat")
    with pytest.raises(ArgumentError, match="list of strings"):
        dec.decode(z, x, steps=1, captions=["a red cat", 3])


def test_generate_gives_stable_unclip_the_prompt(dec):
    """ll.generate on the tiny Stable unCLIP decoder: the prior's samples drawn with the prompt."""
    from types import SimpleNamespace

    import latentlab as ll
    from latentlab.priors import IdentityPrior
    from latentlab.render import make_noise

    prior = IdentityPrior(name="id", space=dec.space, dim=dec.dim)
    text = tag(unit(1, dec.dim, 36), dec.space)
    enc = SimpleNamespace(encode_text=lambda texts: text, encode_image=None)
    got = ll.generate(enc, prior, dec, "a red cat", n=2, seed=3, steps=3, guidance_scale=3.0)
    z, noise = tag(text.expand(2, -1).contiguous(), dec.space), make_noise(dec.noise_shape(), [3, 4])
    expected = dec.decode(z, noise, seeds=[3, 4], steps=3, guidance_scale=3.0, captions=["a red cat"] * 2)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    plain = dec.decode(z, noise, seeds=[3, 4], steps=3, guidance_scale=3.0)
    assert np.abs(got.astype(int) - plain.astype(int)).mean() > 0.5


# -- priors ---------------------------------------------------------------------------------------


def test_identity_prior_values():
    from latentlab.priors import IdentityPrior

    prior = create_prior("tiny")
    assert isinstance(prior, IdentityPrior)
    assert (prior.dim, prior.space) == (32, "tiny-random")
    g = torch.Generator("cpu").manual_seed(0)
    text = torch.randn(3, 32, generator=g) * 4.0  # not unit-norm on purpose
    out = prior(tag(text, "tiny-random"), seed=5)
    expected = text / text.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(out, expected)
    assert space_of(out) == "tiny-random" and out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3))

    many = prior(text, num_samples=2)
    assert many.shape == (6, 32)
    torch.testing.assert_close(many[0::2], expected)  # samples of row i are contiguous
    torch.testing.assert_close(many[1::2], expected)
    one = prior(text[0])  # a single (d,) embedding
    assert one.shape == (1, 32)
    d = prior.describe()
    assert d["class"] == "IdentityPrior" and d["space"] == "tiny-random"


def test_identity_prior_checks():
    prior = create_prior("tiny")
    with pytest.raises(SpaceError):
        prior(torch.randn(2, 16))
    with pytest.raises(SpaceError):
        prior(tag(torch.randn(2, 32), "other"))
    bad = torch.randn(2, 32)
    bad[0, 0] = float("inf")
    with pytest.raises(ArgumentError, match="NaN or infinite"):
        prior(bad)
    with pytest.raises(ArgumentError, match="num_samples"):
        prior(torch.randn(1, 32), num_samples=0)


def test_prior_output_decodes(dec):
    """Text keyframes -> identity prior -> tiny decoder."""
    z = create_prior("tiny")(tag(torch.randn(2, 32, generator=torch.Generator().manual_seed(1)), "tiny-random"))
    frames = dec.decode(z, noise_for(dec, 2, 1), seeds=[0, 1], steps=2)
    assert frames.shape == (2, 64, 64, 3)


# -- DDIM inversion -------------------------------------------------------------------------------


def _sample_latents(dec, z, noise, steps):
    pipe = dec.pipe
    prompt = dec._empty_prompt_embeds(pipe._execution_device).repeat(z.shape[0], 1, 1)
    return pipe(image_embeds=z * dec.embed_scale, latents=noise, prompt_embeds=prompt, num_inference_steps=steps,
                guidance_scale=1.0, noise_level=0, eta=0.0, output_type="latent", height=dec.resolution,
                width=dec.resolution, generator=[torch.Generator().manual_seed(0) for _ in range(z.shape[0])]).images  # fmt: skip


def test_ddim_inversion_recovers_the_starting_latents(dec):
    """Sampling from the inverted latents lands back on the target, far closer than fresh noise."""
    z = tag(unit(2, dec.dim, 3), dec.space)
    start = noise_for(dec, 2, 4)
    target = _sample_latents(dec, z, start, 10)
    inverted = dec.invert_latents(target, z, steps=10)
    assert inverted.shape == start.shape and inverted.dtype == torch.float32
    rebuilt = _sample_latents(dec, z, inverted, 10)
    fresh = _sample_latents(dec, z, noise_for(dec, 2, 5), 10)
    err, err_fresh = float((rebuilt - target).pow(2).mean()), float((fresh - target).pow(2).mean())
    assert err < 0.1 * err_fresh, (err, err_fresh)
    assert float((inverted - start).pow(2).mean()) < 0.2  # and it found (nearly) the noise it came from


def test_invert_images_gives_decodable_noise(dec):
    assert dec.supports_inversion
    z = tag(unit(2, dec.dim, 6), dec.space)
    images = np.random.default_rng(0).integers(0, 256, (2, 48, 48, 3), dtype=np.uint8)  # any size: resized
    noise = dec.invert(images, z, steps=4)
    assert noise.shape == (2, *dec.noise_shape()) and torch.isfinite(noise).all()
    frames = dec.decode(z, noise, steps=4, guidance_scale=1.0)
    assert frames.shape == (2, dec.resolution, dec.resolution, 3)
    with_cfg = dec.invert(images, z, steps=4, guidance_scale=3.0)
    assert not torch.allclose(with_cfg, noise)


def test_invert_crops_a_non_square_picture_to_its_centre_square(dec):
    # it was squashed into a square (signed_pixels resized the whole picture)
    z = tag(unit(1, dec.dim, 7), dec.space)
    wide = np.random.default_rng(2).integers(0, 256, (1, 48, 72, 3), dtype=np.uint8)
    assert torch.equal(dec.invert(wide, z, steps=2), dec.invert(wide[:, :, 12:60], z, steps=2))


# -- samplers and speed levers --------------------------------------------------------------------


@pytest.fixture(scope="module")
def dpm():
    """The tiny decoder sampling with DPM-Solver++ (its own pipeline: the shared one keeps DDIM)."""
    return create_decoder("tiny", scheduler="dpm++")


def test_dpm_scheduler_is_set_and_described(dpm):
    from diffusers import DPMSolverMultistepScheduler

    sched = dpm.pipe.scheduler
    assert isinstance(sched, DPMSolverMultistepScheduler) and sched.config.algorithm_type == "dpmsolver++"
    assert sched.config.solver_order == 2  # second order, as set_scheduler documents
    assert sched.config.prediction_type == "v_prediction" and sched.config.steps_offset == 1  # from the DDIM config
    d = dpm.describe()
    assert d["sampler"] == "dpm++" and d["scheduler"] == "DPMSolverMultistepScheduler"
    assert create_decoder("tiny").describe()["sampler"] == "ddim"  # ddim stays the default


def test_dpm_is_deterministic_and_batch_invariant(dpm):
    z = tag(unit(3, dpm.dim, 21), dpm.space)
    noise = noise_for(dpm, 3, 22)
    frames = dpm.decode(z, noise, seeds=[1, 2, 3], steps=4, guidance_scale=3.0)
    assert np.array_equal(frames, dpm.decode(z, noise, seeds=[1, 2, 3], steps=4, guidance_scale=3.0))
    for k in range(3):
        alone = dpm.decode(z[k : k + 1], noise[k : k + 1], seeds=[k + 1], steps=4, guidance_scale=3.0)
        assert np.abs(alone[0].astype(int) - frames[k].astype(int)).max() <= 1
    assert frames.std() > 5


def test_dpm_is_another_sampler_than_ddim(dec, dpm):
    """Same weights, noise and steps: the two samplers give different frames."""
    z = tag(unit(2, dec.dim, 23), dec.space)
    noise = noise_for(dec, 2, 24)
    a = dec.decode(z, noise, seeds=[0, 1], steps=4)
    b = dpm.decode(z, noise, seeds=[0, 1], steps=4)
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 1.0


@pytest.mark.parametrize("bad", ["euler", "DPM", "", 3])
def test_bad_scheduler_names_the_argument(bad):
    from latentlab.decoders.unclip import StableUnCLIPDecoder, tiny_stable_unclip_pipeline

    with pytest.raises(ArgumentError, match=r"scheduler must be one of 'ddim', 'dpm\+\+' or None") as info:
        StableUnCLIPDecoder(tiny_stable_unclip_pipeline(embed_dim=32), name="t", space="s", dim=32, resolution=64,
                            scheduler=bad)  # fmt: skip
    assert repr(bad) in str(info.value)


def test_scheduler_names_are_case_insensitive_and_none_keeps_the_pipeline_own():
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    from latentlab.decoders.unclip import StableUnCLIPDecoder, tiny_stable_unclip_pipeline

    dec = StableUnCLIPDecoder(tiny_stable_unclip_pipeline(embed_dim=32), name="t", space="s", dim=32, resolution=64,
                              scheduler="DPM++")  # fmt: skip
    assert isinstance(dec.pipe.scheduler, DPMSolverMultistepScheduler) and dec.sampler == "dpm++"
    own = StableUnCLIPDecoder(tiny_stable_unclip_pipeline(embed_dim=32), name="t", space="s", dim=32, resolution=64,
                              scheduler=None)  # fmt: skip
    assert isinstance(own.pipe.scheduler, DDIMScheduler) and own.describe()["sampler"] == "pipeline's own"


def test_dpm_refuses_inversion(dpm):
    """An inverted noise redraws its image only with DDIM: a dpm++ decoder says so instead of inverting."""
    assert not dpm.supports_inversion
    z = tag(unit(1, dpm.dim, 25), dpm.space)
    image = np.zeros((1, 64, 64, 3), np.uint8)
    with pytest.raises(ArgumentError, match="scheduler='ddim'"):
        dpm.invert(image, z, steps=2)
    with pytest.raises(ArgumentError, match="scheduler='ddim'"):
        dpm.invert_latents(torch.zeros(1, *dpm.noise_shape()), z, steps=2)


def test_a_pipeline_own_non_ddim_scheduler_refuses_inversion():
    """scheduler=None keeps the pipeline's own sampler: it inverts only if that one is DDIM."""
    from diffusers import EulerDiscreteScheduler

    from latentlab.decoders.unclip import StableUnCLIPDecoder, tiny_stable_unclip_pipeline

    pipe = tiny_stable_unclip_pipeline(embed_dim=32)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    own = StableUnCLIPDecoder(pipe, name="t", space="s", dim=32, resolution=64, scheduler=None)
    assert not own.supports_inversion
    with pytest.raises(ArgumentError, match=r"scheduler=None \(EulerDiscreteScheduler\).*scheduler='ddim'"):
        own.invert_latents(torch.zeros(1, *own.noise_shape()), tag(unit(1, 32, 3), "s"), steps=2)
    ddim_own = StableUnCLIPDecoder(tiny_stable_unclip_pipeline(embed_dim=32), name="t", space="s", dim=32,
                                   resolution=64, scheduler=None)  # fmt: skip
    assert ddim_own.supports_inversion


def test_real_stable_unclip_presets_guide_as_the_pipeline_does(monkeypatch):
    """The SD 2.1 unCLIP presets default to guidance 10, StableUnCLIPImg2ImgPipeline's own
    default (1.0 would be no classifier-free guidance at all)."""
    import inspect

    from diffusers import StableUnCLIPImg2ImgPipeline

    from latentlab.decoders import unclip

    seen = {}

    def fake(repo, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop before loading")

    monkeypatch.setattr(unclip.StableUnCLIPDecoder, "from_pretrained", staticmethod(fake))
    for name in ("sd21-unclip-l", "sd21-unclip-h"):
        with pytest.raises(RuntimeError, match="stop"):
            create_decoder(name)
        assert seen["default_guidance"] == 10.0
    assert inspect.signature(StableUnCLIPImg2ImgPipeline.__call__).parameters["guidance_scale"].default == 10


def test_channels_last_frames_agree():
    """optimize(channels_last=True) changes the memory format, not the frames."""
    plain = create_decoder("tiny")
    fast = create_decoder("tiny").optimize(channels_last=True)
    conv = fast.pipe.unet.conv_in.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert fast.pipe.vae.decoder.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert fast.describe()["optimizations"] == {"channels_last": True, "compile": False}
    z = tag(unit(3, plain.dim, 26), plain.space)
    noise = noise_for(plain, 3, 27)
    a = plain.decode(z, noise, seeds=[0, 1, 2], steps=4, guidance_scale=3.0)
    b = fast.decode(z, noise, seeds=[0, 1, 2], steps=4, guidance_scale=3.0)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert fast.optimize(channels_last=False).describe()["optimizations"]["channels_last"]  # False does not undo


def test_optimize_checks_its_arguments():
    dec = create_decoder("tiny")
    with pytest.raises(ArgumentError, match="channels_last must be True or False"):
        dec.optimize(channels_last="yes")
    with pytest.raises(ArgumentError, match="compile must be True or False"):
        dec.optimize(compile=1)


# -- few steps, init_noise_sigma, float16 on the CPU, CPU offload hooks ----------------------------


def _timestep_warnings(record) -> list[str]:
    return [str(w.message) for w in record if "starts at timestep" in str(w.message)]


def test_few_ddim_steps_warn_that_the_noise_is_not_removed(dec):
    """The repo config's leading spacing with steps_offset=1 (kept: frames match diffusers') makes
    steps=1 sample only t=1; decode warns, naming the first timestep and the steps that reach 90%."""
    import warnings

    z, x = tag(unit(1, dec.dim, 40), dec.space), noise_for(dec, 1, 40)
    with pytest.warns(UserWarning, match=r"steps=1: .*starts at timestep 1 of 1000.*not fully removed.*"
                                         r"steps >= 10 .*scheduler='dpm\+\+' with steps >= 9"):  # fmt: skip
        dec.decode(z, x, steps=1)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        dec.decode(z, x, steps=4)
    assert len(_timestep_warnings(record)) == 1 and "starts at timestep 751 of 1000" in _timestep_warnings(record)[0]
    with warnings.catch_warnings(record=True) as record:  # dpm++ reaches 90% at 9 steps: the fewest, not "above 9"
        warnings.simplefilter("always")
        dec.decode(z, x, steps=9)
    assert len(_timestep_warnings(record)) == 1 and "scheduler='dpm++' with steps >= 9 " in _timestep_warnings(record)[0]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        dec.decode(z, x)  # the default steps (10 for tiny) start at 901
    assert dec.default_steps == 10 and _timestep_warnings(record) == []


def test_decode_scales_the_noise_by_the_pipeline_scheduler_init_noise_sigma():
    """scheduler=None with a scheduler whose init_noise_sigma != 1 (Euler): the pipeline scales
    only the latents it draws itself, so the decoder scales the render's N(0, I) noise as the
    pipeline would, and its frames are the pipeline's own for latents=noise * init_noise_sigma."""
    from diffusers import EulerDiscreteScheduler

    from latentlab.decoders.unclip import StableUnCLIPDecoder, tiny_stable_unclip_pipeline

    pipe = tiny_stable_unclip_pipeline(embed_dim=32)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    own = StableUnCLIPDecoder(pipe, name="t", space="s", dim=32, resolution=64, scheduler=None, embed_scale=2.0)
    z, x = tag(unit(2, 32, 41), "s"), noise_for(own, 2, 42)
    steps = 3
    probe = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    probe.set_timesteps(steps)
    sigma = float(probe.init_noise_sigma)
    assert sigma > 2.0  # the check below means something
    got = own.decode(z, x, seeds=[0, 1], steps=steps, guidance_scale=1.0)

    def pipeline(latents):
        prompt = own._empty_prompt_embeds(pipe._execution_device).repeat(2, 1, 1)
        with torch.no_grad():
            out = pipe(image_embeds=z * own.embed_scale, latents=latents, prompt_embeds=prompt, num_inference_steps=steps,
                       guidance_scale=1.0, noise_level=0, height=64, width=64, output_type="np",
                       generator=[torch.Generator().manual_seed(s) for s in (0, 1)]).images  # fmt: skip
        return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)

    assert np.abs(got.astype(int) - pipeline(x * sigma).astype(int)).max() <= 1
    assert np.abs(got.astype(int) - pipeline(x.clone()).astype(int)).mean() > 1.0  # unscaled noise: other frames


def test_float16_on_the_cpu_warns_once_at_build():
    import warnings

    with pytest.warns(UserWarning, match=r"Stable unCLIP decoder 'tiny' was built with dtype=float16 on the CPU.*float32"):
        create_decoder("tiny", dtype="float16")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        create_decoder("tiny", dtype="bfloat16")
    assert not [w for w in record if "float16 on the CPU" in str(w.message)]


def test_inversion_gives_offloaded_models_back(dec, monkeypatch):
    """With cpu_offload=True a loop that calls pipeline components directly must end with
    pipe.maybe_free_model_hooks(), as a pipeline call does (here spied on, without offload)."""
    calls = []
    monkeypatch.setattr(dec.pipe, "maybe_free_model_hooks", lambda: calls.append(1), raising=False)
    z = tag(unit(1, dec.dim, 43), dec.space)
    dec.invert_latents(torch.zeros(1, *dec.noise_shape()), z, steps=2)
    assert len(calls) == 1
    dec.invert(np.zeros((1, 64, 64, 3), np.uint8), z, steps=2)
    assert len(calls) == 2


def test_the_first_timestep_probe_takes_a_config_with_arrays():
    # the cached probe stringified numpy trained_betas, and the few-steps check failed silently
    import numpy as np
    from diffusers import DDIMScheduler

    from latentlab.decoders.unclip import _first_timestep

    sched = DDIMScheduler(trained_betas=np.linspace(1e-4, 0.02, 1000), steps_offset=1)
    probe = DDIMScheduler.from_config(sched.config)
    probe.set_timesteps(10)
    assert _first_timestep(sched, 10) == int(probe.timesteps[0]) == 901


# -- fixes from an audit of the decoders (each test failed on the code before its fix) -------------


def test_generate_gives_a_karlo_prior_the_prompt_with_stable_unclip(dec):
    """sd21-unclip-l pairs a Stable unCLIP decoder with Karlo's prior, which reads the prompt's
    token states: ll.generate called prior(pooled embedding), which it refuses; it now hands it
    the prompt (prior.from_texts), as Spec.resolve does. (The IdentityPrior test above hid it.)"""
    from latentlab.presets import Preset, create_encoder
    import latentlab as ll
    from latentlab.render import make_noise

    p = Preset(name="sd21-unclip-l-tiny", space=dec.space, dim=dec.dim, resolution=dec.resolution,
               encoder={"kind": "open_clip_tiny", "seed": 0}, decoder={"kind": "stable_unclip_tiny", "seed": 0},
               prior={"kind": "karlo_tiny", "seed": 0})  # fmt: skip
    enc, prior = create_encoder(p), create_prior(p, default_steps=3)
    assert prior.needs_texts
    got = ll.generate(enc, prior, dec, "a red cat", n=2, seed=3, steps=2)
    z = tag(torch.cat([prior.from_texts(["a red cat"], seed=s) for s in (3, 4)]), dec.space)
    expected = dec.decode(z, make_noise(dec.noise_shape(), [3, 4]), seeds=[3, 4], steps=2, captions=["a red cat"] * 2)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


@pytest.mark.parametrize("scheduler, most", [("ddim", 999), ("dpm++", 998)])
def test_steps_whose_first_timestep_is_past_the_training_timesteps_are_refused(dec, scheduler, most):
    """Leading spacing with steps_offset=1 (the released SD 2.1 unCLIP config) starts steps=1000
    at t = 1000 of 0..999 (DPM-Solver++: steps=999): it passed the limit check and raised a raw
    IndexError in diffusers; invert(steps=1001) raised diffusers' raw ValueError (no
    max_steps()). decode, invert and invert_latents now refuse it, naming the largest count."""
    from latentlab.decoders.unclip import _first_timestep

    d = dec if scheduler == "ddim" else create_decoder("tiny", scheduler=scheduler)
    assert d.max_steps() == most
    assert _first_timestep(d.pipe.scheduler, most) < 1000 <= _first_timestep(d.pipe.scheduler, most + 1)
    z, x, image = tag(unit(1, d.dim, 44), d.space), noise_for(d, 1, 44), np.zeros((64, 64, 3), np.uint8)
    for steps in (most + 1, 1000, 1001):
        for call in (lambda: d.decode(z, x, steps=steps), lambda: d.invert(image, z, steps=steps)):
            with pytest.raises(ArgumentError, match=rf"steps must be <= {most} \(.*steps={most + 1} would start at "
                                                    rf"timestep 1000.*\), got {steps}\."):  # fmt: skip
                call()
    if scheduler == "ddim":
        with pytest.raises(ArgumentError, match=r"steps must be <= 999 .*got 1001"):
            d.invert_latents(torch.zeros(1, *d.noise_shape()), z, steps=1001)


def test_the_most_steps_follow_the_timestep_spacing():
    """Only a spacing that would start past the training timesteps lowers the limit."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    from latentlab.decoders.unclip import max_sampler_steps

    assert max_sampler_steps(DDIMScheduler(timestep_spacing="trailing")) == 1000
    assert max_sampler_steps(DDIMScheduler(steps_offset=0)) == 1000
    assert max_sampler_steps(DDIMScheduler(steps_offset=1)) == 999
    assert max_sampler_steps(DPMSolverMultistepScheduler(timestep_spacing="linspace", steps_offset=1)) == 1000
    assert max_sampler_steps(DPMSolverMultistepScheduler(timestep_spacing="leading", steps_offset=1)) == 998
    # PNDM (scheduler=None keeps an SD pipeline's own) refuses 1 step: the scan goes on past it
    # (it had given up there and allowed 1000, whose first timestep is 1000)
    from diffusers import PNDMScheduler

    assert max_sampler_steps(PNDMScheduler(steps_offset=1)) == 999


def test_the_steps_scan_leaves_the_process_warning_filters_alone():
    """The scan hid its probe's warnings with warnings.catch_warnings + 'ignore', whose filters
    are the whole process's: a thread whose own catch_warnings block overlapped it restored that
    'ignore' for good, silencing every warning after. It changes no filter now, and raises none
    of the thousand numpy warnings it hid (DPM-Solver++ and Euler), even where they are errors."""
    import warnings

    from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler

    from latentlab.decoders.unclip import _max_steps_scan

    for cls, most in ((DPMSolverMultistepScheduler, 998), (EulerDiscreteScheduler, 999)):
        probe = cls(timestep_spacing="leading", steps_offset=1)
        seen = []
        set_timesteps = probe.set_timesteps

        def spying(n, *a, _set=set_timesteps, **k):
            seen.append(list(warnings.filters))
            return _set(n, *a, **k)

        probe.set_timesteps = spying
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # (a probe's warning would end the scan early, as a refusal)
            outside = list(warnings.filters)
            assert _max_steps_scan(probe) == most
        assert len(seen) == most + 1 and all(f == outside for f in seen)


def test_guidance_below_one_is_no_guidance_here_as_documented(dec):
    """Stable unCLIP (as every diffusers decoder) guides only when guidance_scale > 1, so 0 and
    0.5 draw what 1 draws; mini reads 0 as the unconditional picture. Documented now in
    Decoder.decode and docs/models.md (the behaviour itself is unchanged)."""
    from pathlib import Path

    from latentlab.decoders.base import Decoder

    z, x = tag(unit(1, dec.dim, 45), dec.space), noise_for(dec, 1, 45)
    one = dec.decode(z, x, seeds=[0], steps=2, guidance_scale=1.0)
    for g in (0.0, 0.5):
        assert np.array_equal(dec.decode(z, x, seeds=[0], steps=2, guidance_scale=g), one)
    assert not np.array_equal(dec.decode(z, x, seeds=[0], steps=2, guidance_scale=4.0), one)
    doc = " ".join(Decoder.decode.__doc__.split())
    assert "guide only when ``g > 1``" in doc and "``g = 0`` draws the unconditional picture" in doc
    models = " ".join((Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text().split())
    assert "any `g <= 1`, 0 included, draws the same frames as `g = 1`" in models
    assert "`g = 0` draws the unconditional picture" in models


# -- local folders that are not (complete) Stable unCLIP pipelines ---------------------------------

_LOAD = dict(name="x", space="s", dim=32, resolution=64, embed_scale=1.0)


@pytest.fixture(scope="module")
def saved_pipeline(dec, tmp_path_factory):
    """The tiny pipeline written with save_pretrained once; tests copy it before changing it."""
    folder = tmp_path_factory.mktemp("saved") / "sd_full"
    dec.pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def _copy(saved, tmp_path, name="copy"):
    import shutil

    return shutil.copytree(saved, tmp_path / name)


def test_a_folder_without_a_usable_tokenizer_is_refused_at_load(saved_pipeline, monkeypatch, tmp_path):
    """transformers 5 builds a 2-token CLIPTokenizer with model_max_length=1e30 from a missing or
    empty tokenizer/ folder; the folder used to load and the first decode crashed with an
    OverflowError. Both are now a ModelNotAvailableError at load naming <folder>/tokenizer,
    the files it needs and the download command."""
    import shutil

    from latentlab.decoders.unclip import StableUnCLIPDecoder

    _no_network(monkeypatch)
    no_tok = _copy(saved_pipeline, tmp_path, "no_tok")
    shutil.rmtree(no_tok / "tokenizer")
    with pytest.raises(ModelNotAvailableError) as info:
        StableUnCLIPDecoder.from_pretrained(no_tok, **_LOAD)
    msg = str(info.value)
    assert str(no_tok / "tokenizer") in msg and "vocab.json" in msg and "merges.txt" in msg and "hf download" in msg

    empty_tok = _copy(saved_pipeline, tmp_path, "empty_tok")
    for f in (empty_tok / "tokenizer").iterdir():
        f.unlink()
    with pytest.raises(ModelNotAvailableError, match=r"placeholder tokenizer \(2 tokens, model_max_length=") as info:
        StableUnCLIPDecoder.from_pretrained(empty_tok, **_LOAD)
    assert str(empty_tok / "tokenizer") in str(info.value) and "vocab.json" in str(info.value)


def test_check_tokenizer_takes_a_real_tokenizer_and_refuses_a_placeholder():
    from latentlab.decoders.unclip import tiny_clip_tokenizer
    from latentlab.hf_clip import check_tokenizer

    tok = tiny_clip_tokenizer(16)
    assert check_tokenizer(tok, "/f", subfolder="tokenizer", what="x", is_dir=True, repo="o/n") is tok
    tok.model_max_length = int(1e30)
    with pytest.raises(ModelNotAvailableError, match=r"'/f/tokenizer' it loads as a placeholder tokenizer \(model_max_length=10"):
        check_tokenizer(tok, "/f", subfolder="tokenizer", what="x", is_dir=True, repo="o/n")
    with pytest.raises(ModelNotAvailableError, match=r"'o/n/tokenizer'.*pass a local folder"):
        check_tokenizer(tok, "o/n", subfolder="tokenizer", what="x", is_dir=False)


def test_an_incomplete_folder_names_every_missing_component(saved_pipeline, monkeypatch, tmp_path):
    """A folder missing component folders used to give diffusers' own error, or a raw
    ValueError ("Pipeline ... expected [...] but only {...} were passed") when model_index.json
    did not list them; now one ModelNotAvailableError names every missing folder at once and
    the download command (with the real repo: the SD 2.1 unCLIP repo of dim, or the preset's)."""
    import shutil

    from latentlab.decoders.unclip import StableUnCLIPDecoder

    _no_network(monkeypatch)
    folder = _copy(saved_pipeline, tmp_path)
    shutil.rmtree(folder / "unet")
    shutil.rmtree(folder / "image_normalizer")
    with pytest.raises(ModelNotAvailableError) as info:
        StableUnCLIPDecoder.from_pretrained(folder, **_LOAD)
    msg = str(info.value)
    assert f"the folder {str(folder)!r} is not a complete Stable unCLIP pipeline" in msg
    assert "it has no image_normalizer/, unet/ subfolders" in msg and "<repo>" in msg  # dim=32: no released repo
    with pytest.raises(ModelNotAvailableError, match=rf"hf download {REAL_REPO} --local-dir"):
        StableUnCLIPDecoder.from_pretrained(folder, **{**_LOAD, "dim": 1024})
    (folder / "model_index.json").unlink()
    with pytest.raises(ModelNotAvailableError, match="it has no image_normalizer/, unet/ subfolders; it has no model_index.json"):
        StableUnCLIPDecoder.from_pretrained(folder, **_LOAD)


def test_another_pipeline_folder_is_named_as_a_mix_up(saved_pipeline, monkeypatch, tmp_path):
    """A plain Stable Diffusion folder (model_index.json: StableDiffusionPipeline, no image
    encoder, normalizer or noising scheduler) passed to an unCLIP preset gave diffusers' raw
    ValueError; the error now names the missing components, the mix-up and the preset's repo."""
    import shutil

    _no_network(monkeypatch)
    folder = _copy(saved_pipeline, tmp_path)
    index = json.loads((folder / "model_index.json").read_text())
    for c in ("image_encoder", "image_normalizer", "image_noising_scheduler"):
        shutil.rmtree(folder / c)
        index.pop(c)
    index["_class_name"] = "StableDiffusionPipeline"
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelNotAvailableError) as info:
        create_decoder("sd21-unclip-l", repo_or_dir=str(folder))
    msg = str(info.value)
    assert "it has no image_encoder/, image_normalizer/, image_noising_scheduler/ subfolders" in msg
    assert "model_index.json lists no image_encoder, image_normalizer, image_noising_scheduler" in msg
    assert "this is a StableDiffusionPipeline folder, not a StableUnCLIPImg2ImgPipeline one" in msg
    assert f"hf download stabilityai/stable-diffusion-2-1-unclip-small --local-dir {folder}" in msg


def test_a_file_or_a_mistyped_folder_name_is_said_to_be_one(saved_pipeline, monkeypatch, tmp_path):
    """An existing file was reported as "it does not exist", and a bare folder name that does not
    exist was looked up on the Hub (a connection attempt and a cache error); both now say
    what they are, without touching the network."""
    from latentlab.decoders.unclip import StableUnCLIPDecoder

    _no_network(monkeypatch)
    weights = saved_pipeline / "unet" / "diffusion_pytorch_model.safetensors"
    with pytest.raises(ModelNotAvailableError, match=r"is a file, not a folder: .*single-file checkpoints \(\.ckpt / "
                                                     r"\.safetensors.*diffusers-layout folder.*hf download"):  # fmt: skip
        create_decoder("sd21-unclip-h", repo_or_dir=str(weights))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotAvailableError, match=r"no local folder 'my_unclip_folder' exists \(looked in .*'owner/name'"):
        StableUnCLIPDecoder.from_pretrained("my_unclip_folder", **_LOAD)


def test_a_user_preset_without_a_repo_loads_from_repo_or_dir(saved_pipeline, monkeypatch):
    """A stable_unclip decoder spec without "repo" raised a bare TypeError even with repo_or_dir=;
    repo is optional now, and without either the ArgumentError names the preset and the key."""
    from latentlab.presets import Preset

    _no_network(monkeypatch)
    p = Preset(name="my-norepo", space="my", dim=32, resolution=64, encoder={"kind": "open_clip_tiny"},
               decoder={"kind": "stable_unclip", "embed_scale": 1.0})  # fmt: skip
    dec = create_decoder(p, repo_or_dir=str(saved_pipeline))
    assert dec.describe()["source"] == str(saved_pipeline)
    with pytest.raises(ArgumentError, match=r"preset 'my-norepo': its decoder spec .* has no \"repo\" key.*repo_or_dir="):
        create_decoder(p)


def test_a_dim_mismatch_names_the_folder_both_sizes_and_the_preset_to_use():
    """The error advised passing dim=, which a preset refuses (it sets dim itself); it now names
    the folder, its embedding size, what the preset expects and the preset of that size."""
    from latentlab.decoders.unclip import StableUnCLIPDecoder, tiny_stable_unclip_pipeline

    pipe = tiny_stable_unclip_pipeline(embed_dim=1024)
    with pytest.raises(SpaceError) as info:
        StableUnCLIPDecoder(pipe, name="sd21-unclip-l", space="openai/ViT-L-14", dim=768, resolution=64,
                            embed_scale=1.0, source="/models/sd21-unclip")  # fmt: skip
    msg = str(info.value)
    assert "'/models/sd21-unclip' holds a Stable unCLIP decoder whose image embeddings have size 1024" in msg
    assert "'sd21-unclip-l' expects 768-d embeddings of the space 'openai/ViT-L-14'" in msg
    assert "Fix: use the preset 'sd21-unclip-h', whose CLIP space has 1024-d embeddings" in msg
    assert not msg.startswith("dim=")


def test_a_folder_without_the_asked_weights_names_the_preset_repo(saved_pipeline, monkeypatch):
    """A complete folder without the weight files asked for (variant="fp16") said
    `hf download <repo> --local-dir <folder>`; it now names the preset's repo and the folder."""
    _no_network(monkeypatch)
    with pytest.raises(ModelNotAvailableError) as info:
        create_decoder("sd21-unclip-h", repo_or_dir=str(saved_pipeline), variant="fp16")
    msg = str(info.value)
    assert f'hf download {REAL_REPO} --include "*.json" --include "*.txt" --include "*.fp16.safetensors" ' \
           f"--local-dir {saved_pipeline}`" in msg and "<repo>" not in msg and "<folder>" not in msg


def test_check_local_folder_reads_an_empty_model_index_entry_as_unlisted(tmp_path):
    import json

    from latentlab.errors import ModelNotAvailableError
    from latentlab.hf_clip import check_local_folder

    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableUnCLIPImg2ImgPipeline", "unet": []}))
    (tmp_path / "unet").mkdir()
    with pytest.raises(ModelNotAvailableError, match="lists no unet"):
        check_local_folder(str(tmp_path), what="Stable unCLIP pipeline", needs=["unet"],
                           pipelines=["StableUnCLIPImg2ImgPipeline"], repo="x/y", model_index=True)


# -- pixel scaling, inversion and describe() details --------------------------------------------


def test_signed_pixels_maps_uint8_to_minus_one_one_and_resizes_bicubic():
    """The VAE / MoVQ input: 0 -> -1, 255 -> +1, and another size resized with PIL's bicubic filter."""
    from PIL import Image

    from latentlab.decoders.unclip import signed_pixels

    flat = np.stack([np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 255, np.uint8)])
    x = signed_pixels(flat, 8)
    assert x.shape == (2, 3, 8, 8) and x.dtype == torch.float32
    assert torch.equal(x[0], torch.full((3, 8, 8), -1.0)) and torch.equal(x[1], torch.ones(3, 8, 8))
    img = np.random.default_rng(0).integers(0, 256, (1, 12, 12, 3), dtype=np.uint8)
    want = np.asarray(Image.fromarray(img[0]).resize((8, 8), Image.BICUBIC)).astype(np.float32) / 127.5 - 1.0
    np.testing.assert_allclose(signed_pixels(img, 8)[0].permute(1, 2, 0).numpy(), want, atol=1e-6)


def test_invert_inverts_the_scaled_vae_latents_of_the_image(dec):
    """invert(images) is invert_latents of the VAE's mean latents of the image in [-1, 1], times
    the VAE's scaling_factor (the latent scale the UNet samples in)."""
    from latentlab.decoders.unclip import signed_pixels

    vae = dec.pipe.vae
    assert vae.config.scaling_factor != 1.0  # the check below means something
    z = tag(unit(1, dec.dim, 3), dec.space)
    img = np.random.default_rng(1).integers(0, 256, (1, dec.resolution, dec.resolution, 3), dtype=np.uint8)
    with torch.no_grad():
        lat = vae.encode(signed_pixels(img, dec.resolution)).latent_dist.mean * vae.config.scaling_factor
    torch.testing.assert_close(dec.invert(img, z, steps=2), dec.invert_latents(lat, z, steps=2), atol=1e-5, rtol=1e-5)


def test_guided_inversion_puts_the_zero_embedding_half_first(dec):
    """With guidance_scale > 1, invert_latents conditions the UNet as the pipeline's guided sampling
    does: the unconditional half (all-zero image embedding) first, then the noised embedding (the
    order its uncond, cond = out.chunk(2) reads back)."""
    z = tag(unit(2, dec.dim, 3), dec.space)
    lat = torch.randn(2, *dec.noise_shape(), generator=torch.Generator("cpu").manual_seed(4))
    seen = []
    hook = dec.pipe.unet.register_forward_pre_hook(lambda m, a, kw: seen.append(kw["class_labels"].clone()),
                                                   with_kwargs=True)  # fmt: skip
    try:
        dec.invert_latents(lat, z, steps=1, guidance_scale=3.0)
    finally:
        hook.remove()
    labels = seen[0]
    assert labels.shape == (4, 2 * dec.dim)
    assert torch.count_nonzero(labels[:2]) == 0 and torch.count_nonzero(labels[2:, : dec.dim]) > 0


def test_describe_records_the_noise_level(dec):
    """describe() (and so a render manifest) records the embedding noise level the frames were made with."""
    from latentlab.decoders.unclip import StableUnCLIPDecoder

    noisy = StableUnCLIPDecoder(dec.pipe, name="t", space=dec.space, dim=dec.dim, resolution=dec.resolution,
                                embed_scale=1.0, noise_level=250)  # fmt: skip
    assert noisy.describe()["noise_level"] == 250 and dec.describe()["noise_level"] == 0


def test_auto_embed_scale_calibrates_on_eight_224px_synthetic_images(monkeypatch):
    """The stable_unclip builder's embed_scale='auto' measures the mean norm on 8 fixed synthetic
    images (docs/models.md), drawn at 224 px, after loading with embed_scale=1."""
    from latentlab.decoders.unclip import StableUnCLIPDecoder
    from latentlab.hf_clip import synthetic_images
    from latentlab.presets import Preset, create_decoder

    seen = {}

    class Fake:
        def calibrate_embed_scale(self, images, update=True):
            seen["images"] = images
            return 1.0

    def fake(cls, repo, **kwargs):
        seen["embed_scale"] = kwargs["embed_scale"]
        return Fake()

    monkeypatch.setattr(StableUnCLIPDecoder, "from_pretrained", classmethod(fake))
    p = Preset(name="fake", space="sp", dim=1024, resolution=768, encoder={"kind": "none"},
               decoder={"kind": "stable_unclip", "repo": "org/model"})  # fmt: skip
    create_decoder(p)
    assert seen["embed_scale"] == 1.0
    want = synthetic_images(8, size=224)
    assert [np.asarray(a).tolist() for a in seen["images"]] == [np.asarray(a).tolist() for a in want]



def test_a_preset_whose_repo_is_a_folder_names_no_download_of_that_folder(saved_pipeline, monkeypatch, tmp_path):
    """A preset whose "repo" is a local folder, loaded from a copy (repo_or_dir=) lacking the weights
    asked for, said `hf download <the preset's folder> --local-dir <the copy>`: a folder is no repo
    to download; the fix names the pipeline's own repo, as without a hint."""
    from latentlab.presets import Preset

    _no_network(monkeypatch)
    p = Preset(name="my-local-unclip", space="s", dim=1024, resolution=768, encoder={"kind": "open_clip_tiny"},
               decoder={"kind": "stable_unclip", "repo": str(tmp_path / "models" / "unclip")})  # fmt: skip
    with pytest.raises(ModelNotAvailableError) as info:
        create_decoder(p, repo_or_dir=str(saved_pipeline), variant="fp16")
    msg = str(info.value)
    assert "hf download " in msg and f"hf download {tmp_path}" not in msg, msg
    assert f"hf download {REAL_REPO} " in msg
