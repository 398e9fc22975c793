"""ll.generate's cut-caption warning under Ctrl-C and ``-W error``, and scheduler_inverts against
the answers each diffusers family spelt before it."""

from __future__ import annotations

import sys
import warnings
from types import SimpleNamespace

import pytest
import test_cut_caption_warnings as _ccw
from conftest import ctrl_c_after_call

from latentlab import edit as edit_mod

CUT, _texts_prior, _tokenizer = _ccw.CUT, _ccw._texts_prior, _ccw._tokenizer
caption_decoder = _ccw.caption_decoder  # (the fixture)


def test_a_ctrl_c_after_any_call_of_generate_leaves_no_hold(caption_decoder):
    """28ff574 set the hold (``_HELD_CUTS.set``) before its ``try``: a Ctrl-C landing just after
    ``set`` returned left it held for good, so every later encode_text of the session (a notebook's
    kernel) cut a prompt without a word. A Ctrl-C after each call of generate in turn: afterwards
    nothing is held and a cut is said again."""
    import latentlab as ll
    from latentlab.encoders import _HELD_CUTS, _warn_truncated

    dec = caption_decoder
    leaks, n = [], 1
    while n < 400:
        before = sys.gettrace()
        sys.settrace(ctrl_c_after_call(edit_mod.generate.__code__, n)[0])
        interrupted = False
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ll.generate(SimpleNamespace(encode_text=None), _texts_prior(dec), dec, "a red circle " * 5, n=2,
                            steps=1, batch_size=1, progress=False)  # fmt: skip
        except KeyboardInterrupt:
            interrupted = True
        finally:
            sys.settrace(before)
        if _HELD_CUTS.get() is not None:
            leaks.append(n)
            _HELD_CUTS.set(None)
        if not interrupted:
            break
        n += 1
    assert leaks == [] and n > 5
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _warn_truncated(_tokenizer(8), ["a red circle " * 5])
    assert len([w for w in seen if CUT in str(w.message)]) == 1


def test_under_w_error_generate_refuses_a_cut_before_the_decoder_draws(caption_decoder, monkeypatch):
    """Under ``-W error`` (pytest's filterwarnings=error) a cut the decoder finds was held until the
    whole batch was drawn (the pictures thrown away), and a cut from_texts finds until the prior had
    sampled every seed of the batch (before 28ff574: at its first seed). Now the warning raises where
    the cut is found, still naming the caller's line."""
    import latentlab as ll

    dec = caption_decoder
    drawn = []
    real = type(dec)._decode
    monkeypatch.setattr(type(dec), "_decode", lambda self, *a, **k: drawn.append(1) or real(self, *a, **k))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match="context of 8 tokens"):
            ll.generate(SimpleNamespace(encode_text=None), _texts_prior(dec, context=77), dec, "a red circle " * 5,
                        n=2, steps=1, batch_size=2, progress=False)  # fmt: skip
    assert drawn == []
    prior = _texts_prior(dec)
    sampled = []
    real_from_texts = prior.from_texts
    monkeypatch.setattr(prior, "from_texts", lambda texts, **k: sampled.append(1) or real_from_texts(texts, **k))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match="context of 8 tokens"):
            ll.generate(SimpleNamespace(encode_text=None), prior, dec, "a red circle " * 5, n=3, steps=1,
                        batch_size=3, progress=False)  # fmt: skip
    assert sampled == [1] and drawn == []


def test_generate_names_the_callers_line_from_a_function_thread_and_task(caption_decoder):
    """The one warning names the line that called ll.generate, also from a helper function, a thread
    or an asyncio task (each has its own context: no hold leaks between them); nested generate calls
    each say theirs (property kept, passes on both)."""
    import asyncio
    import threading

    import latentlab as ll

    dec = caption_decoder

    def run():
        return ll.generate(SimpleNamespace(encode_text=None), _texts_prior(dec), dec, "a red circle " * 5, n=2,
                           steps=1, batch_size=1, progress=False)  # fmt: skip

    line = run.__code__.co_firstlineno + 1

    async def task():
        run()

    for how in ("call", "thread", "task"):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            if how == "call":
                run()
            elif how == "thread":
                t = threading.Thread(target=run)
                t.start()
                t.join()
            else:
                asyncio.run(task())
        cut = [w for w in seen if CUT in str(w.message)]
        assert [(w.filename, w.lineno) for w in cut] == [(__file__, line)], (how, [str(w.message) for w in seen])
    from latentlab.encoders import _HELD_CUTS

    assert _HELD_CUTS.get() is None


def test_encode_text_outside_generate_warns_as_before(tiny_encoder):
    """Outside ll.generate encode_text's cut warning is unchanged: once a call under "always",
    naming the caller's line (property kept, passes on both)."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        line = sys._getframe().f_lineno + 1
        tiny_encoder.encode_text(["word " * 100])
        tiny_encoder.encode_text(["word " * 100])
    cut = [w for w in seen if CUT in str(w.message)]
    assert len(cut) == 2 and (cut[0].filename, cut[0].lineno) == (__file__, line)
    assert "is read only up to" in str(cut[0].message) and str(cut[0].message).endswith("Shorten the prompt.")


_BEFORE = {  # decoder_can(p, "invert") as each family spelt it before c1af46a (its own copy)
    "StableUnCLIPDecoder": lambda s, names: (s.lower() == "ddim" if isinstance(s, str) and s.lower() in names else None),
    "KarloDecoder": lambda s, names: (s.lower() == "ddim" if isinstance(s, str) and s.lower() in names else None),
    "KandinskyDecoder": lambda s, names: (False if s is None else
                                          s.lower() == "ddim" if isinstance(s, str) and s.lower() in names else None),
}


@pytest.mark.parametrize("scheduler", [None, "ddim", "DDIM", "dpm++", "unclip", "bogus", 3, "", b"ddim", "absent"])
def test_scheduler_inverts_answers_as_each_family_did(scheduler):
    """decoders.unclip.scheduler_inverts gives each diffusers family's before-loading answer of
    "invert" exactly as its own copy did (property kept, passes on both)."""
    from latentlab.decoders.kandinsky import KandinskyDecoder
    from latentlab.decoders.karlo import KarloDecoder
    from latentlab.decoders.unclip import StableUnCLIPDecoder

    for cls in (StableUnCLIPDecoder, KarloDecoder, KandinskyDecoder):
        names = sys.modules[cls.__module__].SCHEDULERS
        options = {} if scheduler == "absent" else {"scheduler": scheduler}
        want = _BEFORE[cls.__name__]("ddim" if scheduler == "absent" else scheduler, names)
        assert cls.can_before_loading("invert", options) is want, cls
