"""Partial and broken installs: a package missing, or installed but failing as it imports (a
torchvision built for another torch, cairosvg without libcairo), is said as such, not as a
damaged file, a download to repeat, an invalid spec or an older diffusers; the optional ones
(IPython, ipywidgets) leave the notebook views working."""

from __future__ import annotations

import contextlib
import importlib
import json
import sys

import numpy as np
import pytest
import torch

import latentlab as ll
from latentlab import notebook
from latentlab.errors import LatentlabError, ModelNotAvailableError, SpecError


def _broken(monkeypatch, tmp_path, error: BaseException, *names: str) -> None:
    """Makes ``names`` importable but failing as their top level runs, with ``error`` (as a
    torchvision built for another torch, or cairocffi without libcairo, does)."""
    folder = tmp_path / "broken-packages"
    folder.mkdir(exist_ok=True)
    for name in names:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            monkeypatch.delitem(sys.modules, key)
        (folder / f"{name}.py").write_text(f"raise {type(error).__name__}({str(error)!r})\n")
    monkeypatch.syspath_prepend(str(folder))


class _EntryPoint:
    """Stands in for an installed package's entry point of the latentlab.presets group."""

    def __init__(self, name, value, load):
        self.name, self.value, self._load = name, value, load

    def load(self):
        return self._load()


def _lazy_import_failure(name: str) -> BaseException:
    """What diffusers' (and transformers') lazy modules raise when a package their module needs
    fails to import: a RuntimeError "Failed to import ..." raised from that failure."""
    try:
        try:
            importlib.import_module(name)
        except Exception as e:
            raise RuntimeError(
                "Failed to import diffusers.models.unets.unet_2d_condition because of the following error "
                f"(look up to see its traceback):\n{e}"
            ) from e
    except RuntimeError as exc:
        return exc
    raise AssertionError("imported")


_IMPORT_ERRORS = [ImportError("libtorch_cpu.so: undefined symbol"),
                  RuntimeError("operator torchvision::nms does not exist"),
                  OSError("libc10_cuda.so: cannot open shared object file")]  # fmt: skip


@pytest.mark.parametrize("error", _IMPORT_ERRORS, ids=lambda e: type(e).__name__)
def test_from_an_import_tells_a_failed_import_from_a_bad_file(tmp_path, monkeypatch, error):
    from latentlab.errors import from_an_import

    _broken(monkeypatch, tmp_path, error, "ll_audit_broken_dep")
    with pytest.raises(type(error)) as raised:
        importlib.import_module("ll_audit_broken_dep")
    assert from_an_import(raised.value)
    assert from_an_import(_lazy_import_failure("ll_audit_broken_dep"))  # (wrapped, as diffusers does)
    assert from_an_import(ModuleNotFoundError("No module named 'safetensors'"))
    for exc in (ValueError("header too large"), RuntimeError("size mismatch for unet.conv_in.weight"),
                OSError(2, "No such file or directory")):  # fmt: skip
        try:
            raise exc
        except Exception as e:
            assert not from_an_import(e)


@pytest.mark.parametrize("error", _IMPORT_ERRORS[:2], ids=lambda e: type(e).__name__)
def test_mini_weights_are_not_said_damaged_when_a_package_fails_to_import(tmp_path, monkeypatch, error):
    """A broken scipy or accelerate (diffusers' UNet imports them lazily) stopped the mini decoder
    with "the mini decoder weights ... cannot be read: RuntimeError: Failed to import diffusers...
    The files are incomplete, damaged ...: export them again, or reinstall latentlab"."""
    from latentlab.mini import models
    from latentlab.mini.models import DecoderConfig, MiniDecoderNet, load_module, save_module

    cfg = DecoderConfig(block_out_channels=(8, 16, 16), embed_dim=16, norm_num_groups=4, cross_attention_dim=16,
                        attention_heads=2)  # fmt: skip
    save_module(MiniDecoderNet(cfg), tmp_path / "mini_decoder.safetensors", config=cfg)
    _broken(monkeypatch, tmp_path, error, "ll_audit_scipy")

    def unet_that_cannot_import(self, config):
        raise _lazy_import_failure("ll_audit_scipy")

    monkeypatch.setattr(models.MiniDecoderNet, "__init__", unet_that_cannot_import)
    with pytest.raises(RuntimeError, match="Failed to import diffusers") as raised:
        load_module("decoder", tmp_path / "mini_decoder.safetensors")
    assert not isinstance(raised.value, ModelNotAvailableError)


@pytest.mark.parametrize("where", ["model", "tokenizer"])
def test_open_clip_encoders_are_not_said_corrupt_when_a_package_fails_to_import(tmp_path, monkeypatch, where):
    """A broken safetensors (open_clip reads the weights with it) was "open_clip could not create
    weights ...: the file does not match this architecture, or is corrupt"; a tokenizer whose
    package fails to import was "Its files may need downloading: run once with internet access"."""
    import open_clip

    _broken(monkeypatch, tmp_path, ImportError("safetensors_rust: undefined symbol"), "ll_audit_safetensors")
    target = "create_model_and_transforms" if where == "model" else "get_tokenizer"

    def fails_to_import(*args, **kwargs):
        importlib.import_module("ll_audit_safetensors")

    monkeypatch.setattr(open_clip, target, fails_to_import)
    with pytest.raises(ImportError, match="undefined symbol") as raised:
        ll.create_encoder("tiny")
    assert not isinstance(raised.value, LatentlabError)


def test_hub_loads_are_not_said_missing_when_a_package_fails_to_import(tmp_path, monkeypatch):
    """A torchvision built for another torch raises an OSError as transformers imports it: an
    OSError was "the files are not here" (download them again) whatever raised it."""
    from latentlab.hf_clip import is_unavailable, load_component

    _broken(monkeypatch, tmp_path, OSError("libc10_cuda.so: cannot open shared object file"), "ll_audit_torchvision")

    class Model:
        @classmethod
        def from_pretrained(cls, src, **kwargs):
            importlib.import_module("ll_audit_torchvision")

    with pytest.raises(OSError, match="cannot open shared object") as raised:
        load_component(Model, "owner/repo", subfolder="unet", what="Stable unCLIP", is_dir=False, kwargs={})
    assert not isinstance(raised.value, LatentlabError) and not is_unavailable(raised.value)
    assert is_unavailable(OSError("owner/repo does not appear to have a file named config.json"))  # (as before)


def test_a_training_checkpoint_is_not_said_damaged_when_safetensors_fails_to_import(tmp_path, monkeypatch):
    """--resume with a broken safetensors said the run's checkpoint "is incomplete or damaged and
    cannot be used; restore that folder from a copy, or train again (remove it ...)"."""
    from latentlab.mini.train import _read_ckpt_file, _weights_step

    weights = tmp_path / "decoder" / "model.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(b"a checkpoint that is fine")
    _broken(monkeypatch, tmp_path, ImportError("safetensors_rust: undefined symbol"), "safetensors")
    with pytest.raises(ImportError, match="undefined symbol") as raised:
        _read_ckpt_file(weights, _weights_step)
    assert not isinstance(raised.value, LatentlabError)


def test_a_toml_spec_without_tomli_says_so_not_invalid_toml(tmp_path, monkeypatch):
    """On Python 3.10 without tomli every TOML spec was "is not valid TOML: No module named 'tomli'"."""
    from latentlab.spec import load_file

    spec = tmp_path / "s.toml"
    spec.write_text('name = "x"\n')
    monkeypatch.setitem(sys.modules, "tomllib", None)
    monkeypatch.setitem(sys.modules, "tomli", None)
    with pytest.raises(LatentlabError, match=r"needs tomli.*pip install tomli") as raised:
        load_file(spec)
    assert not isinstance(raised.value, SpecError) and "not valid TOML" not in str(raised.value)


def test_karlo_without_transformers_names_transformers_not_an_older_diffusers(monkeypatch):
    """Without transformers diffusers puts placeholders where the unCLIP pipelines are: that was
    "the installed diffusers no longer ships the Karlo pipelines: install another diffusers"."""
    pytest.importorskip("diffusers.pipelines.deprecated.unclip")
    import diffusers.pipelines.deprecated.unclip as unclip
    import diffusers.utils.dummy_torch_and_transformers_objects as dummies
    from diffusers.utils import import_utils

    from latentlab.decoders import karlo

    for name in ("UnCLIPPipeline", "UnCLIPImageVariationPipeline"):
        monkeypatch.setattr(unclip, name, getattr(dummies, name))
    monkeypatch.setattr(import_utils, "is_transformers_available", lambda: False)
    with pytest.raises(LatentlabError, match=r"need transformers.*pip install transformers") as raised:
        karlo.unclip_pipeline_classes()
    assert "no longer ships" not in str(raised.value)


def test_a_broken_imageio_ffmpeg_is_not_said_to_be_missing(tmp_path, monkeypatch):
    """imageio-ffmpeg 0.4.9 beside setuptools 82 fails to import (pkg_resources is gone): that was
    "imageio-ffmpeg ... is not installed ... Fix: `pip install imageio-ffmpeg`", which does nothing."""
    from latentlab import video

    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE", raising=False)
    _broken(monkeypatch, tmp_path, ModuleNotFoundError("No module named 'pkg_resources'"), "imageio_ffmpeg")
    with pytest.raises(ll.ArgumentError, match=r"installed but cannot be imported \(No module named 'pkg_resources'\)"
                                               r".*--force-reinstall imageio-ffmpeg") as raised:  # fmt: skip
        video.check_video_writer("mp4")
    assert "not installed" not in str(raised.value)
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # not there at all: as before
    with pytest.raises(ll.ArgumentError, match=r"is not installed .*Fix: `pip install imageio-ffmpeg`"):
        video.check_video_writer("mp4")


def test_an_unknown_preset_names_the_plugins_that_failed_to_load(monkeypatch):
    """A plugin whose package is missing a dependency was warned of once (the first lookup only);
    asking for its preset then said only "unknown preset ..., install it as a 'latentlab.presets'
    entry point", which it is."""
    import importlib.metadata

    from latentlab import presets

    def broken():
        raise ModuleNotFoundError("No module named 'my_models_dependency'")

    monkeypatch.setattr(presets, "PRESETS", dict(presets.PRESETS))
    monkeypatch.setattr(presets, "_plugins_loaded", None)
    monkeypatch.setattr(presets, "_plugin_failures", [])  # (load_plugins rebinds it: put back after the test)
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group: [_EntryPoint("mine", "my_models", broken)] if group == presets.PLUGIN_GROUP else [])  # fmt: skip
    for _ in range(2):  # (the second time, no warning is given)
        with pytest.raises(ll.ArgumentError, match=r"unknown preset 'my-model'.*plugin 'mine' \(my_models\) failed to "
                                                   r"load.*No module named 'my_models_dependency'"):  # fmt: skip
            with pytest.warns(UserWarning) if presets._plugins_loaded is None else contextlib.nullcontext():
                presets.get_preset("my-model")


def _clipart_only_cache(root):
    svg = root / "raw" / "openclipart" / "usr" / "share" / "openclipart" / "svg" / "things"
    svg.mkdir(parents=True)
    (svg / "gramophone.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
                                        '<title>gramophone</title><rect width="5" height="5" fill="red"/></svg>')  # fmt: skip
    (root / "raw" / "openclipart" / ".fetched.json").write_text(json.dumps({}))


@pytest.mark.parametrize("how", ["missing", "no libcairo"])
def test_an_index_of_clip_art_without_cairosvg_says_so_not_fetch_first(tmp_path, monkeypatch, how):
    """Only openclipart fetched, and cairosvg missing (or cairocffi failing to load libcairo, an
    OSError at import): "no images found under .../raw: run `... fetch` first" (it was fetched)."""
    from latentlab.mini import data

    _clipart_only_cache(tmp_path)
    if how == "missing":
        monkeypatch.setitem(sys.modules, "cairosvg", None)
    else:
        _broken(monkeypatch, tmp_path, OSError("no library called \"cairo-2\" was found"), "cairosvg", "cairocffi")
    with pytest.raises(data.DataFetchError, match=r"openclipart needs cairosvg.*pip install cairosvg") as raised:
        data.build_index(tmp_path, verbose=False)
    assert "first" not in str(raised.value)


def test_a_scrubber_in_a_terminal_ipython_renders_nothing_and_says_what_it_is(fake_decoder, monkeypatch, capsys):
    """A terminal IPython (a shell without a kernel) showed a scrubber as the text of an ipywidgets
    box (after decoding frame 0), or, without ipywidgets, rendered its static frames for a line
    telling to install ipywidgets; LivePreview already only records there."""
    import IPython

    from test_notebook import _fake_path

    shown = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())  # a shell without a kernel
    monkeypatch.setattr(notebook, "display", lambda *objs: shown.extend(objs))
    s = ll.Scrubber(_fake_path(), fake_decoder, static_frames=3)
    s._ipython_display_()
    assert shown == [] and s.cache_info()["misses"] == 0
    assert capsys.readouterr().out.strip() == repr(s)


# -- kept: the promises the optional packages' absence must not break ----------------------------


def test_views_and_previews_work_without_ipython_or_ipywidgets(fake_decoder, monkeypatch, capsys):
    """docs/notebooks.md: the views work without IPython; without ipywidgets the scrubber shows
    a static contact sheet and a hint (pip install ipywidgets / latentlab[notebook])."""
    from test_notebook import _fake_path

    monkeypatch.setitem(sys.modules, "IPython", None)
    monkeypatch.setitem(sys.modules, "IPython.display", None)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    assert ll.show(frames)._repr_png_()[:4] == b"\x89PNG"
    assert ll.show_video(frames, fps=4).data[:3] == b"GIF"
    preview = ll.LivePreview()
    preview({"frame": 0, "frames": 1, "image": frames[0], "resumed": False})
    assert preview.count == 1
    s = ll.Scrubber(_fake_path(), fake_decoder, static_frames=2)
    assert s.widget is None and "latentlab[notebook]" in s.static_view().caption
    notebook.display(s)  # plain Python: printed
    assert "Scrubber(" in capsys.readouterr().out
    assert torch.is_tensor(s.embeddings)
