"""The contact-sheet advice by verb when --threads N comes before the verb, result_fix's advice to
the calls that take only a Trajectory, and a scrubber shown in a xeus-python notebook kept while
its slider is shown.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FakeDecoder, grey_frames
from hypothesis import given, settings
from hypothesis import strategies as st

import latentlab as ll
from latentlab import notebook
from latentlab.errors import ArgumentError, result_fix

_SAID = "the contact sheet of 9 frames is big. Fix: show fewer frames, e.g. max_frames=64."


def _path(n: int = 3) -> ll.Trajectory:
    z = torch.nn.functional.normalize(torch.randn(2, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    return ll.Trajectory(ll.tag(z, "fake-space"), frames=n)


@pytest.mark.parametrize("argv, flag", [(["--threads", "1", "interpolate", "text:a", "text:b"], "(--size)"),
                                        (["--threads=1", "render", "spec.toml"], "(--size)"),
                                        (["--threads", "1", "generate", "render"], "(-n)")])  # fmt: skip
def test_sheet_advice_names_the_verbs_flag_after_threads_before_the_verb(monkeypatch, capsys, argv, flag):
    # the verb was taken as the first argument without a dash: --threads's value "1", so a render's
    # warning said "ask for fewer pictures (-n)", a flag render, interpolate and morph do not have
    from latentlab import cli

    def run(*args, **kwargs):  # a latentlab warning, as the contact sheet's is shown, without a render
        warnings.warn_explicit(_SAID, UserWarning, filename=cli.__file__, lineno=1)
        return 0

    monkeypatch.setattr(cli, "_run_spec", run)
    monkeypatch.setattr(cli, "_check_paths", lambda args: None)  # (spec.toml is not there)
    monkeypatch.setattr(cli, "_generate", run)
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "latentlab: warning: the contact sheet" in err and flag in err and "max_frames" not in err


def test_the_verbs_the_warning_looks_for_are_the_parsers():
    import argparse

    from latentlab import cli

    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(cli._VERBS) == set(sub.choices)


def _iterative_edit() -> ll.IterativeEdit:
    return ll.IterativeEdit(frames=grey_frames(3), embeddings=_path().embeddings(), similarity=[0.1, 0.2, 0.3],
                            reached=False)  # fmt: skip


def _render_result() -> ll.RenderResult:
    return ll.RenderResult(frames=grey_frames(4), out_dir=Path("."), video=Path("x.mp4"),
                           contact_sheet=Path("c.png"), spec=None, trajectory=_path())  # fmt: skip


def test_pacing_of_a_result_gives_only_a_fix_it_takes():
    # even_pacing and fine_pacing_settings take only a Trajectory: an IterativeEdit was told to pass
    # result.embeddings (then refused as "got Tensor"), a RenderResult its trajectory's embeddings too
    from latentlab.pacing import fine_pacing_settings

    for call in (lambda t: ll.even_pacing(t, None, FakeDecoder(), metric="pixel"), fine_pacing_settings):
        with pytest.raises(ArgumentError, match=r"got IterativeEdit\.$"):
            call(_iterative_edit())
        with pytest.raises(ArgumentError, match=r"got RenderResult\. Fix: pass its path, result\.trajectory\.$"):
            call(_render_result())
    assert fine_pacing_settings(_render_result().trajectory)["passes"] == 3  # the fix given works


def test_result_fix_other_wants_unchanged():
    # (the frames and embeddings advice of the other callers is as before)
    assert "result.frames" in result_fix(_iterative_edit(), "frames")
    assert "result.embeddings" in result_fix(_iterative_edit(), "embeddings")
    assert "result.trajectory.embeddings()" in result_fix(_render_result(), "embeddings")
    assert result_fix(np.zeros(3), "trajectory") == "" and result_fix(_path(), "trajectory") == ""


def test_a_scrubber_shown_in_a_xeus_python_notebook_is_held_while_shown(monkeypatch):
    # xeus-python's shell holds kernel = None: the scrubber now shows its slider there (0bf7eeb), but
    # _hold_while_shown took kernel None for "no front end", so display(ll.scrub(...)), held by nothing
    # else, was collected at once and its slider said "closed or dropped"
    import gc
    import weakref

    pytest.importorskip("ipywidgets")
    import IPython
    from test_notebook import _fake_path

    monkeypatch.setattr(IPython, "get_ipython", lambda: type("XeusShell", (), {"kernel": None})())
    monkeypatch.setattr(notebook, "display", lambda *objs: None)
    monkeypatch.setattr(notebook, "_SHOWN", {}, raising=False)
    s = ll.Scrubber(_fake_path(), FakeDecoder())
    s._ipython_display_()
    dec, slider, view = weakref.ref(s.decoder), s.slider, s.view
    del s
    gc.collect()
    assert dec() is not None
    slider.value = 2
    assert "frame 2 / 6" in view.value


# -- kept: a property of result_fix (passes before and after) ---------------------------------------


@settings(derandomize=True, max_examples=25, deadline=None)
@given(value=st.one_of(st.none(), st.integers(), st.floats(allow_nan=True), st.text(max_size=8),
                       st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)),
       want=st.sampled_from(["frames", "embeddings", "trajectory"]))  # fmt: skip
def test_result_fix_says_nothing_of_what_latentlab_did_not_make(value, want):
    # its docstring: "" for anything else, so other inputs keep their own messages
    assert result_fix(value, want) == ""
    assert result_fix(np.asarray([value], dtype=object), want) == ""
