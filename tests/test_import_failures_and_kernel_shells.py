"""Import failures told from damaged files only within the call; a kernel shell holding kernel = None
(xeus-python) is not a terminal IPython; the command line's contact-sheet advice names the flags
the verb has."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import latentlab as ll
from latentlab import notebook
from latentlab.errors import ArgumentError, from_an_import


def _damaged_checkpoint(tmp_path):
    weights = tmp_path / "decoder" / "model.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(b"a checkpoint cut short")
    return weights


def test_a_damaged_file_is_said_so_inside_the_callers_except_block(tmp_path):
    """from_an_import followed __context__ out of the call, into an error the caller was handling:
    a load inside `except ImportError:` (an optional package's fallback), or in any except block at a
    script's or notebook cell's top level (its traceback starts at a <module> frame), passed
    safetensors' raw error on instead of "the checkpoint ... is incomplete or damaged"."""
    from latentlab.mini.train import _read_ckpt_file, _weights_step

    weights = _damaged_checkpoint(tmp_path)
    try:
        import ll_audit_no_such_optional_package  # noqa: F401
    except ImportError:
        with pytest.raises(ArgumentError, match="incomplete or damaged"):
            _read_ckpt_file(weights, _weights_step)
    cell = compile("try:\n    1 / 0\nexcept ZeroDivisionError:\n    read(weights, step)\n", "<cell>", "exec")
    with pytest.raises(ArgumentError, match="incomplete or damaged"):  # (as a notebook cell runs it)
        exec(cell, {"read": _read_ckpt_file, "weights": weights, "step": _weights_step})  # noqa: S102


def test_from_an_import_still_follows_the_chain_inside_the_call(tmp_path, monkeypatch):
    """An import failure handled inside the call (a lazy module raising "Failed to import", with or
    without `from`) is still told apart; one the caller was handling is not this error's cause."""
    folder = tmp_path / "pkgs"
    folder.mkdir()
    (folder / "ll_audit_d_broken.py").write_text("raise RuntimeError('operator torchvision::nms does not exist')\n")
    monkeypatch.syspath_prepend(str(folder))

    def lazy():
        try:
            import ll_audit_d_broken  # noqa: F401
        except Exception:  # noqa: BLE001
            raise RuntimeError("Failed to import diffusers.models (look up to see its traceback)")  # implicit chain

    def damaged():
        raise ValueError("header too large")

    for call, want in ((lazy, True), (damaged, False)):
        try:
            call()
        except Exception as e:  # noqa: BLE001
            assert from_an_import(e) is want
        try:
            import ll_audit_d_missing  # noqa: F401
        except ImportError:
            try:
                call()
            except Exception as e:  # noqa: BLE001
                assert from_an_import(e) is want
        asked = {"call": call}  # asked at a notebook cell's top level (the <module> frame that caught it)
        exec(compile("try:\n    call()\nexcept Exception as e:\n    err = e\n", "<cell>", "exec"), asked)  # noqa: S102
        assert from_an_import(asked["err"]) is want


class _XeusShell:
    """Stands in for xeus-python's shell (a notebook kernel that draws widgets): its `kernel` is None."""

    kernel = None


def test_a_scrubber_in_a_xeus_python_notebook_is_shown_not_printed(fake_decoder, monkeypatch, capsys):
    """The terminal check was `getattr(shell, "kernel", None) is None`: xeus-python's shell (in
    Jupyter and JupyterLite) holds kernel = None, so a scrubber printed its repr there; a terminal
    IPython's shell has no `kernel` at all."""
    import IPython

    from test_notebook import _fake_path

    shown = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: _XeusShell())
    monkeypatch.setattr(notebook, "display", lambda *objs: shown.extend(objs))
    s = ll.Scrubber(_fake_path(), fake_decoder, static_frames=2)
    s._ipython_display_()
    assert len(shown) == 1 and capsys.readouterr().out == ""
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())  # a terminal IPython: as before
    shown.clear()
    s._ipython_display_()
    assert shown == [] and capsys.readouterr().out.strip() == repr(s)


def test_a_live_preview_in_a_xeus_python_notebook_shows_its_frame(monkeypatch):
    import IPython
    import IPython.display

    handles = []

    class Handle:
        def update(self, view):
            handles.append(view)

    def display(view, display_id=False):
        handles.append(view)
        return Handle()

    monkeypatch.setattr(IPython, "get_ipython", lambda: _XeusShell())
    monkeypatch.setattr(IPython.display, "display", display)
    preview = ll.LivePreview()
    preview({"frame": 0, "frames": 1, "image": np.zeros((4, 4, 3), np.uint8), "resumed": False})
    assert len(handles) == 1 and "frame 0 (1 of 1)" in handles[0].caption
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())  # a terminal IPython: it only records
    handles.clear()
    preview({"frame": 0, "frames": 1, "image": np.zeros((4, 4, 3), np.uint8), "resumed": False})
    assert handles == [] and preview.count == 2


def test_a_renders_contact_sheet_warning_names_flags_the_verb_has(tmp_path, monkeypatch, capsys):
    """interpolate, morph and render have no -n, and their sheet shows at most 12 frames: the
    warning told them to "ask for fewer pictures (-n)"; generate and variations --eta, whose
    sheets show every picture, keep it."""
    from PIL import Image

    from latentlab import cli
    from latentlab.cli import _flag_advice, main

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    assert main(["interpolate", "text:a cat", "text:a dog", "--frames", "2", "--out-dir", str(tmp_path / "i"),
                 "--preset", "tiny", "--steps", "2", "-q"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "contact sheet of" in err and "smaller (--size): the sheet shows at most 12" in err
    assert "(-n)" not in err and "(--frames)" not in err and "max_frames" not in err
    said = "the contact sheet of 9 frames is big. Fix: show fewer frames, e.g. max_frames=64."
    assert "(-n)" in _flag_advice(said, "generate")
    monkeypatch.setattr(cli, "_ARGV", ["variations", "a.png", "--eta=0.5"])
    assert "(-n)" in _flag_advice(said, "variations")
    monkeypatch.setattr(cli, "_ARGV", ["variations", "a.png"])  # (rerolled: render_spec's sheet of at most 12)
    assert "(-n)" not in _flag_advice(said, "variations") and "(--size)" in _flag_advice(said, "variations")


# -- kept: a property of from_an_import (passes before and after) --------------------------------


@settings(derandomize=True, max_examples=20, deadline=None)
@given(kinds=st.lists(st.sampled_from([ValueError, RuntimeError, OSError, KeyError, TypeError]), min_size=1, max_size=4),
       explicit=st.booleans())  # fmt: skip
def test_from_an_import_tells_a_chain_by_whether_an_import_failed_in_it(kinds, explicit):
    """A chain of the load's own errors (each raised while handling the one before, with or without
    `from`) is not from an import; the same chain over a failed import (at its bottom) is."""

    def chain(bottom):
        def level(i):
            if i == len(kinds):
                raise bottom
            try:
                level(i + 1)
            except BaseException as e:  # noqa: BLE001
                if explicit:
                    raise kinds[i]("wrapped") from e
                raise kinds[i]("wrapped")  # noqa: B904

        try:
            level(0)
        except BaseException as e:  # noqa: BLE001
            return e
        raise AssertionError("not raised")

    assert not from_an_import(chain(ValueError("header too large")))
    assert from_an_import(chain(ModuleNotFoundError("No module named 'safetensors'")))
