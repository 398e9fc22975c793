"""ll.generate's cut-caption warning said to a caller whose globals have no ``__name__`` (exec'd
code, as warnings.warn says it), -W once / default as for warnings.warn; a preset description
that is not text refused."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import test_cut_caption_warnings as _ccw

CUT, _texts_prior = _ccw.CUT, _ccw._texts_prior
caption_decoder = _ccw.caption_decoder  # (the fixture)


def _run(code: str, dec, g: dict) -> None:
    import latentlab as ll

    g.update(ll=ll, enc=SimpleNamespace(encode_text=None), prior=_texts_prior(dec), dec=dec)
    exec(compile(code, "<cell>", "exec"), g)


CALL = 'll.generate(enc, prior, dec, "a red circle " * 5, n=2, steps=1, batch_size=1, progress=False)\n'


def test_a_cut_is_said_to_exec_d_code_whose_globals_have_no_name(caption_decoder):
    """warn_explicit drops a warning whose module is None (CPython's shutdown case): generate passed
    ``globals().get("__name__")``, so ``exec(code, {...})`` (a dict without ``__name__``) heard nothing,
    even under -W error. warnings.warn names such code's module ``<string>``; so does generate now."""
    for action in ("always", "error"):
        g: dict = {}
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter(action)
            try:
                _run(CALL, caption_decoder, g)
                raised = None
            except UserWarning as e:
                raised = e
        said = [str(w.message) for w in seen] + ([str(raised)] if raised else [])
        assert len([m for m in said if CUT in m]) == 1, (action, said)
        if action == "always":
            assert (seen[0].filename, seen[0].lineno) == ("<cell>", 1)
    g = {}
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", module="<string>")  # (the name warnings.warn gives it)
        _run(CALL, caption_decoder, g)
    assert [w for w in seen if CUT in str(w.message)] == []


def test_once_and_default_say_a_cut_as_warnings_warn_would(caption_decoder):
    """-W default: once per caller line (two lines: twice); -W once: once in all."""
    for action, lines, expected in (("default", 1, 1), ("default", 2, 2), ("once", 2, 1)):
        g = {"__name__": "cell_module"}
        with warnings.catch_warnings(record=True) as seen:
            warnings.resetwarnings()
            warnings.simplefilter(action)
            _run("for _ in range(2):\n" + "".join("    " + CALL for _ in range(lines)), caption_decoder, g)
        assert len([w for w in seen if CUT in str(w.message)]) == expected, (action, lines)


def test_register_preset_refuses_a_description_that_is_not_text(monkeypatch, capsys):
    """b15aaab refused a licence that is not a string (it broke `latentlab presets`), but the
    description beside it, which `latentlab presets --json` lists, went unchecked: bytes made the
    command fail with a raw TypeError ("not JSON serializable") long after register_preset took it."""
    import pytest

    from latentlab import cli, presets
    from latentlab.errors import ArgumentError

    good = {"name": "checked", "space": "s", "dim": 32, "resolution": 64, "encoder": {"kind": "open_clip_tiny"},
            "decoder": {"kind": "mini"}}  # fmt: skip
    monkeypatch.setattr(presets, "PRESETS", dict(presets.PRESETS))
    for description in (b"tiny", None):
        with pytest.raises(ArgumentError, match="preset 'checked': description must be a string"):
            presets.register_preset(presets.Preset(**good, description=description))
        assert "checked" not in presets.PRESETS
    presets.register_preset(presets.Preset(**good, description="tiny"))
    assert cli.main(["presets", "--json"]) == 0
    assert '"description": "tiny"' in capsys.readouterr().out
