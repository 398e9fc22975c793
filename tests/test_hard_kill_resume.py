"""Nothing lost when a render or a training run is killed outright (SIGKILL)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__import__("latentlab").__file__).resolve().parents[1]  # the checkout under test


def _tiny_ckpt(stage_dir: Path, step: int = 3) -> None:
    """A checkpoint of a tiny net in ``stage_dir`` as a stage saves it (weights, EMA, state.pt)."""
    from latentlab.mini.train import _save_ckpt

    torch.manual_seed(0)
    model = torch.nn.Linear(2, 2)
    _save_ckpt(stage_dir, model, torch.optim.AdamW(model.parameters()), step,
               {k: v.detach().clone() for k, v in model.state_dict().items()})  # fmt: skip


def test_a_resume_removes_what_a_save_cut_short_by_a_kill_left(tmp_path):
    """A stage saves its last step twice (the step's checkpoint, then at the end): killed between
    the renames of the second save, every file in place is of that step, so the resume (which
    trains nothing more) finished nothing and left ``ema.tmp`` and ``state.tmp`` beside the
    checkpoint for good (MBs each for a real decoder); a save killed before its renames left
    ``*.tmp`` files that the resume never used either. The docs: the files are "written under
    temporary names first ... a resume finishes a save that a kill cut short"."""
    from latentlab.mini.train import _read_state

    d = tmp_path / "prior"
    _tiny_ckpt(d, 3)
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    shutil.copy(d / "ema.safetensors", d / "ema.tmp")  # the second save of step 3, cut after model's rename
    shutil.copy(d / "state.pt", d / "state.tmp")
    assert _read_state(d)["step"] == 3
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    (d / "model.tmp").write_bytes(b"\0" * 10)  # a save killed while writing its weights
    assert _read_state(d)["step"] == 3
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before


def _cli(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "latentlab", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip


def _contents(root: Path) -> dict[str, str]:
    """Every file under ``root`` by its relative path: its sha256, the manifest's and the video
    record's without the times they were written."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if p.name in ("manifest.json", "videos.json"):
                d = json.loads(data)
                for k in ("created", "finished"):
                    d.pop(k, None)
                for v in d.get("videos", {}).values():
                    v.pop("mtime_ns", None)
                data = json.dumps(d, sort_keys=True).encode()
            out[p.relative_to(root).as_posix()] = hashlib.sha256(data).hexdigest()
    return out


def test_a_render_killed_after_some_frames_resumes_to_the_uninterrupted_render(tmp_path, monkeypatch):
    """SIGKILL once two frames are on disk (seen by polling the folder), then the same command:
    it succeeds and leaves the very files of a run that was never killed (frames, embeddings,
    manifest, video, contact sheet), and no temporary file; an earlier finished render beside it
    is untouched."""
    from latentlab.cli import main

    args = ["--threads", "1", "interpolate", "text:a red circle", "text:a blue square", "--frames", "3", "--steps", "2",
            "--batch-size", "1", "--out-dir", "r", "--format", "gif", "-q"]  # fmt: skip
    ref, run = tmp_path / "ref", tmp_path / "run"
    ref.mkdir()
    run.mkdir()
    (run / "earlier").mkdir()
    (run / "earlier" / "frame_00000.png").write_bytes(b"an earlier render's frame")
    earlier = _contents(run / "earlier")
    p = _cli(args, run)
    deadline = time.monotonic() + 60
    while not (run / "r" / "frame_00001.png").exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL
    monkeypatch.chdir(run)  # the same command again (in this process, to spare a start), then one never killed
    assert main(args) == 0
    monkeypatch.chdir(ref)
    assert main(args) == 0
    assert _contents(run / "r") == _contents(ref / "r")
    assert (run / "r.gif").read_bytes() == (ref / "r.gif").read_bytes()
    assert sorted(p.name for p in run.iterdir()) == ["earlier", "r", "r.gif"]  # no temporary beside them
    assert _contents(run / "earlier") == earlier


class _Killed(BaseException):
    """A kill (SIGKILL) as the test sees it: nothing of the command's own handling runs after it."""


def test_a_first_variations_eta_killed_while_swapping_its_set_in_is_not_refused_on_rerun(tmp_path, images, monkeypatch):
    """The code says "even a kill (SIGKILL) in these few renames leaves a folder the rerun
    replaces freely", kept so by the earlier set's variations.json staying until the last rename.
    A first run into a fresh folder has no earlier one: killed after its first frame was moved in,
    it left frames without variations.json, and the same command was refused ("frames with no
    variations.json ... pass --overwrite"). The new record now goes in first."""
    from latentlab.cli import main

    out = tmp_path / "v"
    argv = ["variations", str(images[0]), "--out-dir", str(out), "-o", str(tmp_path / "v.gif"), "-n", "2",
            "--eta", "0.5", "--preset", "mini", "--steps", "2", "--invert-refine", "0", "-q"]  # fmt: skip
    real = os.replace

    def replace(src, dst):
        result = real(src, dst)
        if Path(dst).parent == out and Path(dst).name.startswith("frame_"):  # the swap's first frame is in
            raise _Killed
        return result

    with monkeypatch.context() as m:
        m.setattr(os, "replace", replace)
        try:
            main(argv)
        except _Killed:
            pass
        else:
            raise AssertionError("the swap was not reached")
    assert main(argv) == 0
    assert sorted(p.name for p in out.glob("frame_*.png")) == ["frame_00000.png", "frame_00001.png"]
    assert json.loads((out / "variations.json").read_text())["num"] == 2
