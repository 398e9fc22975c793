"""A Ctrl-C at any call of folder_lock's claim where the file system cannot lock files (the
guard left free, the folder unclaimed), and a training resume after a save killed at any rename."""

from __future__ import annotations

import importlib
import sys
import threading
import warnings

import pytest
from conftest import ctrl_c_after_call

render_mod = importlib.import_module("latentlab.render")  # (latentlab.render is also the function)


def test_without_file_locks_a_ctrl_c_after_any_call_of_the_claim_leaves_the_guard_free_and_the_folder_unclaimed(
        tmp_path, monkeypatch, no_file_locks):  # fmt: skip
    """25c6f53 took ``_held_guard`` with a bare ``acquire()`` and released it in a ``finally``:
    a Ctrl-C landing just after ``acquire()`` returned (before ``guarded`` was set) left the
    guard held for good, so every later release of any folder in the process (every render's
    end, on any file system) hung; one landing after the claim (``_held_in_process.add``, or the
    guard's release at ``break``) left the folder refused to this process for good ("being
    written by another thread of this process"). Each call's end in turn: afterwards the guard
    is free, the folder unclaimed, and the folder can be taken again."""
    out = tmp_path / "r"
    leaks = []
    n = 1
    while True:
        guard, claims = threading.Lock(), set()  # fresh ones each time: a leaked guard must not hang the test
        monkeypatch.setattr(render_mod, "_held_guard", guard)
        monkeypatch.setattr(render_mod, "_held_in_process", claims)
        monkeypatch.setattr(render_mod, "_locks", threading.local())
        tracer, count = ctrl_c_after_call(render_mod.folder_lock.__wrapped__.__code__, n)
        cm = render_mod.folder_lock(out)
        interrupted = False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            before = sys.gettrace()  # (a coverage or debugger tracer, put back after)
            sys.settrace(tracer)
            try:
                cm.__enter__()
            except KeyboardInterrupt:
                interrupted = True
            finally:
                sys.settrace(before)
            if not interrupted:  # past the last call of the claim: held; released as usual
                cm.__exit__(None, None, None)
        if guard.locked() or claims:
            leaks.append((n, guard.locked(), sorted(claims)))
        if not interrupted:
            break
        n += 1
        assert n < 200
    assert n > 5  # (the trace did reach folder_lock's calls)
    assert leaks == []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with render_mod.folder_lock(out):
            pass


class _Killed(BaseException):
    """A kill (SIGKILL) as the test sees it: nothing after it runs."""


@pytest.mark.parametrize("first", [True, False])
@pytest.mark.parametrize("renames", [0, 1, 2, 3])
def test_a_resume_after_a_save_killed_at_any_rename_reads_one_whole_checkpoint_and_leaves_no_tmp(
        tmp_path, monkeypatch, first, renames):  # fmt: skip
    """docs/mini.md: a checkpoint's files are renamed with state.pt last; "a resume finishes a
    save that a kill cut short (and removes the *.tmp files such a save left that it does not
    use)". Killed after each rename of a save of step 5 (over a checkpoint of step 3, or as the
    first save): the resume reads step 5 once model.safetensors is of it, else step 3 (or there
    is no checkpoint yet), every file of the checkpoint is of that step, and no *.tmp is left
    (a6f868e removes them only after the settle has used what it needs)."""
    from latentlab.errors import ArgumentError
    from latentlab.mini import train as tr

    torch = pytest.importorskip("torch")
    d = tmp_path / "prior"
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 2)
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters())
    if not first:
        tr._save_ckpt(d, model, opt, 3, ema)
    real, done = type(d).replace, [0]

    def replace(self, target):
        if done[0] == renames:
            raise _Killed
        done[0] += 1
        return real(self, target)

    with monkeypatch.context() as m:
        m.setattr(type(d), "replace", replace)
        try:
            tr._save_ckpt(d, model, opt, 5, ema)
        except _Killed:
            pass
    if first and renames == 0:  # nothing in place yet: no checkpoint to resume (the stage starts over)
        with pytest.raises(ArgumentError, match="no checkpoint"):
            tr._read_state(d)
        return
    want = 5 if renames >= 1 else 3
    assert tr._read_state(d)["step"] == want
    assert set(tr._ckpt_steps(d).values()) == {want}
    assert sorted(p.name for p in d.glob("*.tmp")) == []
