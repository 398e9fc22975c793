"""Training, export and evaluate of the embedded mini stack (latentlab/mini): resumes that
would train on other data, torn checkpoints, SIGTERM, a deterministic learning rate,
architecture settings checked up front, batch norm after Ctrl-C, exports beside another
CLIP, the docs table written only when asked, and config errors. Smoke runs, seconds each."""

from __future__ import annotations

import json
import math
import shutil
import signal
from dataclasses import fields, is_dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latentlab.errors import ArgumentError
from latentlab.mini import shapes


def _log(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from latentlab.mini.train import main

    out = tmp_path_factory.mktemp("mini-train-smoke")
    main(["--stage", "all", "--config", "smoke", "--out", str(out)])
    return out


def _copy(run, to, *drop):
    shutil.copytree(run, to)
    for d in drop:
        shutil.rmtree(to / d)
    return to


def _equal(a: Path, b: Path, name="model.safetensors"):
    from safetensors.torch import load_file

    x, y = load_file(str(a / name)), load_file(str(b / name))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


# -- item 2: a resume never trains a stage on other data ----------------------------------


def test_resume_on_other_training_data_is_refused(run, tmp_path, capsys):
    from latentlab.mini.train import main

    out = _copy(run, tmp_path / "run")
    cache = out / "cache" / "cache.safetensors"
    before = cache.stat().st_mtime_ns
    # another cache.n_images: refused before the cache is built again under the checkpoint
    with pytest.raises(ArgumentError, match=r"decoder in .* other data .*cache.n_images 16 -> 32.*without --resume"):
        main(["--stage", "decoder", "--config", "smoke", "--out", str(out), "--resume", "--set", "cache.n_images=32",
              "--set", "decoder.steps=4"])  # fmt: skip
    assert cache.stat().st_mtime_ns == before
    # --stage all that would train the CLIP on: refused before the CLIP trains
    clip_before = (out / "clip" / "model.safetensors").read_bytes()
    with pytest.raises(ArgumentError, match=r"prior, decoder in .* would train that CLIP on"):
        main(["--stage", "all", "--config", "smoke", "--out", str(out), "--resume", "--set", "clip.steps=4"])
    assert (out / "clip" / "model.safetensors").read_bytes() == clip_before
    # another CLIP put in its place (as a version that let --stage clip train it on did), then the
    # decoder resumed: its cache would be another CLIP's
    _swap_in_a_clip_trained_on(run, out, tmp_path / "lone")
    with pytest.raises(ArgumentError, match=r"the CLIP that encodes the cache .* changed"):
        main(["--stage", "decoder", "--config", "smoke", "--out", str(out), "--resume", "--set", "decoder.steps=4"])
    assert cache.stat().st_mtime_ns == before
    # the changed-settings warning lists the cache's settings too
    out2 = _copy(run, tmp_path / "run2")
    capsys.readouterr()
    main(["--stage", "prior", "--config", "smoke", "--out", str(out2), "--resume", "--set", "prior.steps=4",
          "--set", "cache.batch_size=8"])  # fmt: skip
    assert "cache.batch_size 16 -> 8" in capsys.readouterr().err


def _swap_in_a_clip_trained_on(run, out, lone):
    """Train ``run``'s CLIP on (one step) in a copy of it alone, and put it in ``out``'s place."""
    from latentlab.mini.train import main

    _copy(run, lone, "cache", "prior", "decoder")
    main(["--stage", "clip", "--config", "smoke", "--out", str(lone), "--resume", "--set", "clip.steps=4"])
    for name in ("model.safetensors", "state.pt"):
        shutil.copy(lone / "clip" / name, out / "clip" / name)


def test_a_clip_changed_under_stages_that_trained_on_it_is_refused(run, tmp_path):
    from latentlab.mini.train import main

    out = _copy(run, tmp_path / "run")
    before = {p: p.read_bytes() for p in sorted((out / "clip").iterdir())}
    # --stage clip --resume would train on the CLIP that the prior's and decoder's cache came from
    with pytest.raises(ArgumentError, match=r"prior, decoder in .* train that CLIP on \(from step 3 to 5\).*neither "
                                            r"resume nor be exported.*fresh --out"):  # fmt: skip
        main(["--stage", "clip", "--config", "smoke", "--out", str(out), "--resume", "--set", "clip.steps=5"])
    # and so would a CLIP trained from the start over the one in place (e.g. one --init-from put there)
    (out / "clip" / "state.pt").unlink()
    with pytest.raises(ArgumentError, match=r"prior, decoder in .* train that CLIP from the start"):
        main(["--stage", "clip", "--config", "smoke", "--out", str(out)])
    (out / "clip" / "state.pt").write_bytes(before[out / "clip" / "state.pt"])
    assert {p: p.read_bytes() for p in sorted((out / "clip").iterdir())} == before  # nothing written
    main(["--stage", "clip", "--config", "smoke", "--out", str(out), "--resume"])  # at its steps: nothing changes
    assert (out / "clip" / "model.safetensors").read_bytes() == before[out / "clip" / "model.safetensors"]
    main(["--stage", "decoder", "--config", "smoke", "--out", str(out), "--resume", "--set", "decoder.steps=4"])


def test_resume_with_another_config_names_the_one_it_was_trained_with(run, tmp_path):
    from latentlab.mini.train import main

    out = _copy(run, tmp_path / "run")
    with pytest.raises(ArgumentError, match=r"another architecture .*resume with --config smoke \(what it was trained "
                                            "with") as e:  # fmt: skip
        main(["--stage", "decoder", "--config", "cpu", "--out", str(out), "--resume"])
    assert "leave those --set" not in str(e.value)


def test_a_resume_with_no_steps_left_says_so_and_writes_no_checkpoint(run, tmp_path, capsys):
    from latentlab.mini.train import main

    out = _copy(run, tmp_path / "run")
    before = {n: (out / "decoder" / n).read_bytes() for n in ("model.safetensors", "ema.safetensors", "state.pt")}
    capsys.readouterr()
    res = main(["--stage", "decoder", "--config", "smoke", "--out", str(out), "--resume", "--set", "decoder.steps=2"])
    assert res["decoder"]["step"] == 3
    assert "decoder is already at step 3 >= decoder.steps 2; nothing to train" in capsys.readouterr().err
    assert {n: (out / "decoder" / n).read_bytes() for n in before} == before


def test_a_cache_rebuilt_with_other_data_under_trained_stages_warns(run, tmp_path, capsys):
    from latentlab.mini.train import main

    out = _copy(run, tmp_path / "run")
    capsys.readouterr()
    main(["--stage", "cache", "--config", "smoke", "--out", str(out)])  # the same data: nothing to say
    assert "warning" not in capsys.readouterr().err
    main(["--stage", "cache", "--config", "smoke", "--out", str(out), "--set", "cache.n_images=8"])
    err = capsys.readouterr().err
    for stage in ("prior", "decoder"):
        assert f"other data than {stage} trained on (cache.n_images 16 -> 8); {stage} can no longer --resume" in err


def test_resume_of_a_checkpoint_without_the_data_record_warns_once(run, tmp_path, capsys):
    from latentlab.mini.train import main

    out = _copy(run, tmp_path / "run")
    state = torch.load(out / "prior" / "state.pt", weights_only=True)
    assert state["cache_fingerprint"]["n_images"] == 16 and state["cache_fingerprint"]["clip"]
    del state["cache_fingerprint"]
    torch.save(state, out / "prior" / "state.pt")
    capsys.readouterr()
    main(["--stage", "prior", "--config", "smoke", "--out", str(out), "--resume", "--set", "prior.steps=4"])
    assert capsys.readouterr().err.count("predates the record") == 1
    assert "cache_fingerprint" in torch.load(out / "prior" / "state.pt", weights_only=True)  # recorded from now on


# -- item 3: checkpoints are one step's files, SIGTERM saves one ---------------------------


class _Killed(BaseException):
    """A kill (SIGKILL, power loss) as the test sees it: nothing of the program runs after it."""


def test_a_kill_between_the_checkpoint_renames_is_finished_on_resume(run, tmp_path, monkeypatch):
    from latentlab.mini import train

    sets = ["--set", "decoder.steps=6", "--set", "decoder.max_minutes=null"]
    ref = _copy(run, tmp_path / "ref", "decoder")
    train.main(["--stage", "decoder", "--config", "smoke", "--out", str(ref), *sets])
    out = _copy(run, tmp_path / "run", "decoder")
    real_save, real_replace = train._save_ckpt, Path.replace
    armed = []

    def save(stage_dir, model, opt, step, *a, **k):
        armed.append(step == 4)
        return real_save(stage_dir, model, opt, step, *a, **k)

    def replace(self, target):
        result = real_replace(self, target)
        if armed and armed[-1] and str(target).endswith("model.safetensors"):
            raise _Killed
        return result

    monkeypatch.setattr(train, "_save_ckpt", save)
    monkeypatch.setattr(Path, "replace", replace)
    with pytest.raises(_Killed):
        train.main(["--stage", "decoder", "--config", "smoke", "--out", str(out), *sets])
    monkeypatch.undo()
    train.main(["--stage", "decoder", "--config", "smoke", "--out", str(out), *sets, "--resume"])
    assert torch.load(out / "decoder" / "state.pt", weights_only=True)["step"] == 6
    assert _equal(ref / "decoder", out / "decoder") and _equal(ref / "decoder", out / "decoder", "ema.safetensors")


def test_a_checkpoint_of_mixed_steps_is_refused(run, tmp_path):
    from latentlab.mini.export import export
    from latentlab.mini.train import main

    out = _copy(run, tmp_path / "run")
    state = torch.load(out / "decoder" / "state.pt", weights_only=True)
    torch.save({**state, "step": 2}, out / "decoder" / "state.pt")  # weights of step 3 beside a state of step 2
    with pytest.raises(ArgumentError, match=r"torn \(model.safetensors of step 3, ema.safetensors of step 3, state.pt of step 2"):
        main(["--stage", "decoder", "--config", "smoke", "--out", str(out), "--resume", "--set", "decoder.steps=4"])
    with pytest.raises(ArgumentError, match="torn checkpoint"):
        export(out, tmp_path / "w", stages=("decoder",))


def test_sigterm_saves_a_checkpoint_and_exits_143(run, tmp_path):
    import os
    import subprocess
    import sys

    import latentlab

    out = _copy(run, tmp_path / "run", "decoder")
    script = f"""
import os, signal, torch
from latentlab.mini import train
real, calls = torch.optim.AdamW.step, []
def step(self, *a, **k):
    r = real(self, *a, **k)
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGTERM)
    return r
torch.optim.AdamW.step = step
train.main(["--stage", "decoder", "--config", "smoke", "--out", {str(out)!r}, "--set", "decoder.steps=40"])
"""
    root = str(Path(latentlab.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root}
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env, cwd=root)
    assert p.returncode == 143, p.stderr[-2000:]
    assert "terminated (SIGTERM): decoder checkpoint at step 2 saved in" in p.stderr
    state = torch.load(out / "decoder" / "state.pt", weights_only=True)
    assert state["step"] == 2 and {float(s["step"]) for s in state["optimizer"]["state"].values()} == {2.0}


# -- item 4: the learning rate follows the steps while they keep ahead of the clock -------


def test_learning_rate_is_the_peak_after_warmup_and_runs_repeat(run, tmp_path):
    from latentlab.mini.train import _lr, main

    outs = []
    for name in ("a", "b"):  # the default time limit (5 minutes): far from binding
        out = _copy(run, tmp_path / name, "prior")
        main(["--stage", "prior", "--config", "smoke", "--out", str(out)])
        outs.append(out)
    lrs = [r["lr"] for r in _log(outs[0] / "prior" / "log.jsonl")]
    assert lrs[1] == 5e-4  # step 1 == warmup: exactly the peak
    assert lrs == [r["lr"] for r in _log(outs[1] / "prior" / "log.jsonl")]
    assert _equal(outs[0] / "prior", outs[1] / "prior") and _equal(outs[0] / "prior", outs[1] / "prior", "ema.safetensors")
    sched = torch.load(outs[0] / "prior" / "state.pt", weights_only=True)["schedule"]
    assert 0 <= sched["time_frac"] < 0.01 and sched["warmup_elapsed_s"] >= 0
    # where the clock is ahead of the steps, the decay follows it
    assert _lr(5, 1.0, 5, 10) == 1.0 and _lr(6, 1.0, 5, 10, time_frac=0.9) < _lr(6, 1.0, 5, 10)


# -- item 5: architecture settings checked when the config is read ------------------------


def test_arch_settings_are_checked_before_any_stage_runs(run, tmp_path):
    from latentlab.mini.export import export
    from latentlab.mini.train import get_config, main

    assert get_config("smoke", ["decoder.arch.block_out_channels=8,16,16"]).decoder.arch["block_out_channels"] == (8, 16, 16)
    for item, match in (("prior.arch.width=abc", "prior.arch.width must be a whole number"),
                        ("decoder.arch.imagesize=32", r"unknown decoder.arch key\(s\) \['imagesize'\]"),
                        ("decoder.arch.norm_num_groups=5", "decoder.arch .* builds no decoder"),
                        ("decoder.arch.block_out_channels=8,x", "block_out_channels must be a list"),
                        ("prior.arch.prediction_type=eps", "prediction_type must be"),
                        ("decoder.arch.num_train_timesteps=1000000000", "num_train_timesteps must be <= 100000"),
                        ("upscaler.arch.channels=0,8", "whole numbers >= 1")):  # fmt: skip
        with pytest.raises(ArgumentError, match=match):
            get_config("smoke", [item])
    # --init-from weights whose decoder this run cannot warm-start: refused before the CLIP trains
    weights = tmp_path / "w"
    export(run, weights)
    out = tmp_path / "fresh"
    with pytest.raises(ArgumentError, match="--init-from: the decoder in"):
        main(["--stage", "all", "--config", "smoke", "--out", str(out), "--init-from", str(weights),
              "--set", "decoder.arch.block_out_channels=8,16,32"])  # fmt: skip
    assert not out.exists()


# -- item 6: Ctrl-C in a CLIP step leaves no batch-norm update of it ----------------------


def test_ctrl_c_in_a_clip_forward_pass_keeps_batch_norm_as_it_was(tmp_path, monkeypatch):
    from latentlab.mini import train

    sets = ["--set", "clip.max_minutes=null"]
    train.main(["--stage", "clip", "--config", "smoke", "--out", str(tmp_path / "ref"), *sets, "--set", "clip.steps=2"])
    real_batch, seen = train._clip_batch, {}

    def batch(cfg, step, *a, **k):
        seen["step"] = step
        return real_batch(cfg, step, *a, **k)

    def hook(module, inputs, output):  # Ctrl-C once a batch norm of step 2 has run in training mode
        if isinstance(module, torch.nn.BatchNorm2d) and module.training and seen.get("step") == 2 and not seen.get("sent"):
            seen["sent"] = True
            raise KeyboardInterrupt

    monkeypatch.setattr(train, "_clip_batch", batch)
    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        with pytest.raises(SystemExit) as e:
            train.main(["--stage", "clip", "--config", "smoke", "--out", str(tmp_path / "int"), *sets])
    finally:
        handle.remove()
    assert e.value.code == 130 and seen.get("sent")
    assert torch.load(tmp_path / "int" / "clip" / "state.pt", weights_only=True)["step"] == 2
    assert _equal(tmp_path / "ref" / "clip", tmp_path / "int" / "clip")  # running statistics included


# -- item 7: export never puts a stage beside a CLIP it did not train on ------------------


def test_export_refuses_a_stage_beside_another_clip(run, tmp_path):
    from latentlab.mini.export import export
    from latentlab.mini.train import main

    other = _copy(run, tmp_path / "other")
    _swap_in_a_clip_trained_on(run, other, tmp_path / "lone")
    w = tmp_path / "w"
    export(other, w, stages=("clip",))
    with pytest.raises(ArgumentError, match=r"the prior of .* trained on another CLIP than the CLIP .*--stages clip,prior"):
        export(run, w, stages=("prior",))
    with pytest.raises(ArgumentError, match="was trained on after decoder, prior trained on it"):
        export(other, tmp_path / "w2")
    export(run, tmp_path / "w3")  # a run's own stages beside its own CLIP
    # a run warm-started from an export (a float32 copy of its CLIP) exports its prior beside that CLIP
    warm = tmp_path / "warm"
    main(["--stage", "prior", "--config", "smoke", "--out", str(warm), "--init-from", str(tmp_path / "w3")])
    export(warm, tmp_path / "w3", stages=("prior",))


def test_saved_weights_get_the_usual_file_mode_and_export_prints_a_line_per_file(run, tmp_path, capsys):
    import os

    from latentlab.mini.export import main as export_main
    from latentlab.mini.train import main

    out = _copy(run, tmp_path / "run")
    old = os.umask(0o027)
    try:
        main(["--stage", "prior", "--config", "smoke", "--out", str(out), "--resume", "--set", "prior.steps=4"])
        main(["--stage", "cache", "--config", "smoke", "--out", str(out)])
        capsys.readouterr()
        export_main(["--from", str(out), "--to", str(tmp_path / "w")])
    finally:
        os.umask(old)
    files = [out / "prior" / "model.safetensors", out / "prior" / "ema.safetensors", out / "cache" / "cache.safetensors",
             *sorted((tmp_path / "w").glob("*.safetensors"))]  # fmt: skip
    assert len(files) == 6
    for p in files:  # as the .json beside them (0666 less the umask), not safetensors' 0600
        assert p.stat().st_mode & 0o777 == 0o640, p
    assert (tmp_path / "w" / "mini_prior.json").stat().st_mode & 0o777 == 0o640
    lines = capsys.readouterr().out.splitlines()  # not the whole manifest
    assert len(lines) == 4 and lines[-1].startswith("total ") and "manifest.json" in lines[-1]
    assert lines[2].startswith("mini_prior.safetensors: float") and ", step 4, " in lines[2] and lines[2].endswith(" MB")


def test_a_smoke_run_with_an_expert_exports_with_the_advice_it_gives(run, tmp_path, capsys):
    from latentlab.mini.export import export
    from latentlab.mini.train import main

    out = _copy(run, tmp_path / "run")
    main(["--stage", "expert", "--config", "smoke", "--out", str(out), "--set", "expert.steps=1"])
    with pytest.raises(ArgumentError, match=r"The run's decoder reads no captions.*--stages clip,decoder,prior, or "
                                            r"--drop-expert.*--set decoder.arch.text_dim=128") as e:  # fmt: skip
        export(out, tmp_path / "w")
    assert "--stages decoder,expert" not in str(e.value)  # the advice that failed the same way
    assert not (tmp_path / "w").exists()
    capsys.readouterr()
    m = export(out, tmp_path / "w", drop_expert=True)
    assert "mini_expert.safetensors" not in m["files"] and not (tmp_path / "w" / "mini_expert.safetensors").exists()
    assert "not exported: the expert of" in capsys.readouterr().err
    export(out, tmp_path / "w2", stages=("clip", "decoder", "prior"))  # the other advice
    with pytest.raises(ArgumentError, match="The decoder in .*w2' reads no captions: export the expert into another --to"):  # beside an exported decoder
        export(out, tmp_path / "w2", stages=("expert",))


# -- item 1 and 8: evaluate ---------------------------------------------------------------


def _fake_results(**kw):
    frames = np.zeros((1, 4, 4, 3), dtype=np.uint8)
    settings = {"n": 48, "n_relation": 192, "steps": 25, "decoder_guidance": 3.0, "prior_guidance": 2.0, "seed": 9000,
                "seconds": 1.0, "weights": "latentlab/mini/weights", "weights_sha256": "0123456789ab"}  # fmt: skip
    return {"emoji_top5": 0.6, "roundtrip_cosine": 0.92, "unrelated_cosine": 0.093, "settings": settings,
            "_frames": (frames, frames, frames), **kw}  # fmt: skip


def test_evaluate_writes_the_docs_only_when_asked_for_the_shipped_weights(tmp_path, monkeypatch):
    import latentlab.mini.evaluate as ev
    from latentlab.mini.models import WEIGHTS_DIR

    calls, written = [], []
    monkeypatch.setattr(ev, "evaluate", lambda *a, **k: calls.append((a, k)) or _fake_results())
    monkeypatch.setattr(ev, "write_doc", lambda res, *a: written.append(res))
    ev.main([])
    assert len(calls) == 1 and written == []  # printed only
    for argv, match in ((["--n", "2"], "--n 2 .default 48"), (["--steps", "2"], "--steps 2"),
                        (["--weights", str(tmp_path)], "is not the shipped folder"),
                        (["--n-relation", "5"], "--n-relation 5"), (["--no-write"], "contradict")):  # fmt: skip
        with pytest.raises(ArgumentError, match=match):
            ev.main(["--write-docs", *argv])
    with monkeypatch.context() as m:  # an installed latentlab: no docs/mini.md beside it (it failed after measuring)
        m.setattr(ev, "DOC", tmp_path / "site-packages" / "docs" / "mini.md")
        with pytest.raises(ArgumentError, match="run it from a checkout|Run it from a checkout"):
            ev.main(["--write-docs", "--threads", "1"])
    assert len(calls) == 1 and written == []  # refused before anything was measured
    ev.main(["--write-docs", "--weights", str(WEIGHTS_DIR), "--threads", "1"])
    assert len(written) == 1
    table = ev._table(_fake_results())
    assert "Weights: `latentlab/mini/weights` (sha256 of its mini_*.safetensors files 0123456789ab)." in table
    assert len(ev.weights_hash(WEIGHTS_DIR)) == 12


def test_evaluate_checks_its_flags_and_the_grid_path_before_measuring(tmp_path, monkeypatch, capsys):
    import latentlab.mini.evaluate as ev

    calls = []
    monkeypatch.setattr(ev, "evaluate", lambda *a, **k: calls.append(k) or _fake_results())
    (tmp_path / "file.txt").write_text("")
    for argv, match in ((["--threads", "-2"], "--threads must be >= 1"), (["--threads", "0"], "--threads must be >= 1"),
                        (["--prior-guidance", "-5"], "--prior-guidance must be a finite number >= 0"),
                        (["--guidance", "nan"], "--guidance must be"), (["--steps", "0"], "--steps must be >= 1"),
                        (["--grid", str(tmp_path / "file.txt" / "g.png")], "--grid .* not a folder"),
                        (["--grid", str(tmp_path / "g.xyz")], "--grid .*PIL cannot write a .xyz"),
                        (["--grid", str(tmp_path)], "is a folder"),
                        (["--data", str(tmp_path / "nowhere")], "--data .*no such folder")):  # fmt: skip
        with pytest.raises(ArgumentError, match=match):
            ev.main(argv)
    assert calls == []  # refused before anything was measured
    ev.main(["--grid", str(tmp_path / "new" / "sub" / "g.png"), "--data", str(tmp_path)])  # its folder is made
    assert (tmp_path / "new" / "sub" / "g.png").is_file() and calls[-1]["data_dir"] == str(tmp_path)
    from PIL import Image

    monkeypatch.setattr(Image.Image, "save", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    capsys.readouterr()
    with pytest.raises(ArgumentError, match="--grid .*disk full"):
        ev.main(["--grid", str(tmp_path / "g2.png")])
    assert "| bar | value |" in capsys.readouterr().out  # the table came first: nothing measured is lost


def test_evaluate_looks_for_the_emoji_data_where_the_data_commands_do(tmp_path, monkeypatch):
    import latentlab.mini.evaluate as ev
    from latentlab.mini import data

    monkeypatch.setattr(data, "default_cache_dir", lambda: tmp_path / "checkout-data")
    looked = []

    def no_index(path=None, **k):
        looked.append(Path(path))
        raise data.DataFetchError("no index")

    monkeypatch.setattr(data, "load_index", no_index)
    assert ev._emoji_retrieval_bar(None, None, None) == {} and ev.text_diff_bar(None, None, None, None) == {}
    assert looked == [tmp_path / "checkout-data" / "index.jsonl"] * 2
    res = _fake_results(emoji_index_missing=str(tmp_path / "checkout-data" / "index.jsonl"))
    del res["emoji_top5"]
    assert f"unmeasured (no emoji data index at {tmp_path / 'checkout-data' / 'index.jsonl'})" in ev._table(res)


def test_roundtrip_bar_needs_a_margin_over_unrelated_scenes():
    from latentlab.mini.evaluate import _table

    def row(res):
        return next(ln for ln in _table(res).splitlines() if ln.startswith("| decoder round-trip"))

    assert row(_fake_results()).endswith("| yes |")  # the shipped weights' figures
    collapsed = row(_fake_results(roundtrip_cosine=0.9998, unrelated_cosine=0.9996))
    assert collapsed.endswith("| **no** |") and "0.50" in collapsed


# -- item 9: config errors at config time ------------------------------------------------


def test_settings_no_run_can_use_are_refused_when_read(tmp_path, capsys, run):
    import torch.cuda

    from latentlab.mini.train import get_config, main

    for item, match in (("seed=-1", "seed must be >= 0"), ("clip.eval_scenes=0", "clip.eval_scenes must be >= 1"),
                        ("device=tpu", "device must be a torch device"), ("clip.weight_decay=-1", "clip.weight_decay"),
                        ("upscaler.in_size=0", "upscaler.in_size must be >= 1")):  # fmt: skip
        with pytest.raises(ArgumentError, match=match):
            get_config("smoke", [item])
    bad, listed = tmp_path / "bad.json", tmp_path / "list.json"
    bad.write_text('{"clip": {"steps": 5,}}')
    listed.write_text("[1, 2]")
    with pytest.raises(ArgumentError, match="not a JSON file"):
        get_config(str(bad))
    with pytest.raises(ArgumentError, match="holds a JSON list, not an object"):
        get_config(str(listed))
    with pytest.raises(ArgumentError, match="--smoke is --config smoke; it cannot go with --config cpu"):
        main(["--stage", "clip", "--smoke", "--config", "cpu", "--out", str(tmp_path / "r")])
    if not torch.cuda.is_available():
        with pytest.raises(ArgumentError, match="device='cuda' .*--config gpu.* no CUDA GPU"):
            main(["--stage", "clip", "--config", "gpu", "--out", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists()
    # the time limit's message has a line of its own, not the progress bar's
    out = _copy(run, tmp_path / "run", "prior")
    capsys.readouterr()
    main(["--stage", "prior", "--config", "smoke", "--out", str(out), "--set", "prior.max_minutes=1e-9"])
    lines = capsys.readouterr().err.replace("\r", "\n").splitlines()
    assert any(ln.startswith("prior: max_minutes=1e-09 reached at step 1 of 3") for ln in lines)


# -- item 10: the builders take weights_dir= as weights= ------------------------------------


def test_builders_take_weights_dir_as_weights(run, tmp_path):
    import latentlab as ll
    from latentlab.mini.export import export

    w = tmp_path / "w"
    export(run, w)
    dec = ll.create_decoder("mini", weights_dir=w)
    assert dec.weights_sha256 == ll.create_decoder("mini", weights=w).weights_sha256
    assert ll.create_prior("mini", weights_dir=w).dim == 128
    with pytest.raises(ArgumentError, match="name two folders"):
        ll.create_decoder("mini", weights=w, weights_dir=tmp_path)
    assert ll.create_encoder("mini", checkpoint=w / "mini_clip.safetensors").dim == 128


# Learning-rate schedule, config parsing, checkpoints, EMA, cache and resume keys


def test_learning_rate_warms_up_from_one_step_and_decays_to_ten_percent():
    """Warm-up: step ``s < warmup`` gets ``peak * (s + 1) / warmup`` (never 0); then cosine
    decay to 10% of the peak at the last step, halfway at the middle."""
    from latentlab.mini.train import _lr

    assert [_lr(s, 1.0, 4, 100) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert _lr(0, 2e-3, 0, 10) == 2e-3  # no warm-up: the peak at once
    assert _lr(100, 1.0, 4, 100) == pytest.approx(0.1)
    assert _lr(52, 1.0, 4, 100) == pytest.approx(0.55)
    assert _lr(5, 1.0, 4, 100, time_frac=1.0) == pytest.approx(0.1)  # the clock ran out: annealed


def test_bool_settings_take_the_string_one_and_zero():
    """A bool field takes "1" / "0" (any case, as strings of a JSON config) as well as true / false."""
    from latentlab.mini.train import _parse_value

    assert _parse_value("clip.lock_image", False, "1", False) is True
    assert _parse_value("clip.lock_image", False, " 0 ", False) is False
    assert _parse_value("clip.lock_image", False, "True", False) is True


def test_an_ema_decay_of_one_is_refused():
    """``ema_decay`` must be in [0, 1): 1 would keep the EMA at the initial weights forever."""
    from latentlab.mini.train import get_config

    for stage in ("decoder", "prior", "upscaler"):
        with pytest.raises(ArgumentError, match=rf"{stage}\.ema_decay must be in \[0, 1\)"):
            get_config("smoke", [f"{stage}.ema_decay=1"])
    assert get_config("smoke", ["decoder.ema_decay=0.5"]).decoder.ema_decay == 0.5


def test_the_ema_warms_up_with_its_step(tmp_path):
    """The first EMA update uses decay ``min(ema_decay, (1 + step) / (10 + step))`` = 2/11 at
    step 1, so early EMA weights follow the model rather than sit at the initialisation."""
    from latentlab.mini.train import DecoderStage, _ema_init, _StageLoop

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    ema = _ema_init(model)
    before = {k: v.clone() for k, v in ema.items()}
    stage = DecoderStage(steps=10, warmup=0, log_every=100, ckpt_every=100, max_minutes=None, ema_decay=0.999)
    loop = _StageLoop("decoder", stage, tmp_path / "decoder", model, opt, ema, 0, 0.0, None)
    loop.update(model(torch.ones(4, 3)).pow(2).mean())
    loop.bar.close()
    for k, v in model.state_dict().items():
        assert torch.allclose(ema[k], 2 / 11 * before[k] + 9 / 11 * v)


def test_a_checkpoint_keeps_the_running_loss(tmp_path):
    """``state.pt`` records the logged running loss, so a resume carries it on."""
    from latentlab.mini.train import _load_ckpt, _save_ckpt

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    _save_ckpt(tmp_path, model, opt, 7, elapsed_s=3.0, loss_avg=0.25)
    assert torch.load(tmp_path / "state.pt", weights_only=True)["loss_avg"] == 0.25
    step, spent, loss_avg, _ = _load_ckpt(tmp_path, torch.nn.Linear(2, 2), torch.optim.AdamW(model.parameters()))
    assert (step, spent, loss_avg) == (7, 3.0, 0.25)


def test_a_refused_torn_checkpoint_keeps_its_state_file(tmp_path):
    """A leftover ``state.tmp`` of another step than the weights' is no part of their save: a
    resume refuses the torn checkpoint and leaves ``state.pt`` as it was."""
    from latentlab.mini.train import _read_state, _save_ckpt

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    _save_ckpt(tmp_path, model, opt, 3)
    torch.save({"step": 2, "optimizer": opt.state_dict()}, tmp_path / "state.pt")  # weights of step 3, state of 2
    torch.save({"step": 1, "optimizer": opt.state_dict()}, tmp_path / "state.tmp")  # an older save's leftover
    before = (tmp_path / "state.pt").read_bytes()
    with pytest.raises(ArgumentError, match="torn"):
        _read_state(tmp_path)
    assert (tmp_path / "state.pt").read_bytes() == before


def test_hard_negatives_change_shapes_then_one_colour():
    """``_variants(scene, rng, k)``: ``k - 2`` variants with one object's shape changed, then
    the last with its colour changed; each differs from the scene in that one word."""
    from latentlab.mini.train import _variants

    scene = shapes.sample_scene(4, n_objects=1)
    out = _variants(scene, np.random.default_rng(0), 4)
    o = scene.objects[0]
    assert out[0] == scene and len(out) == 4
    for v in out[1:3]:
        assert (v.objects[0].colour, v.objects[0].shape != o.shape) == (o.colour, True)
    assert (out[3].objects[0].shape, out[3].objects[0].colour != o.colour) == (o.shape, True)


def _random_clip_run(out) -> None:
    """A run folder ``out`` whose clip/ holds a random mini CLIP (what the later stages encode with)."""
    from safetensors.torch import save_file

    from latentlab.mini.models import create_clip

    torch.manual_seed(0)
    model, _, _ = create_clip(None)
    (out / "clip").mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "clip" / "model.safetensors"))


def test_a_cache_of_another_size_is_built_again(tmp_path):
    """``build_cache`` reuses a cache only for the same ``cache.n_images``: another count builds it again."""
    from latentlab.mini.train import build_cache, get_config

    _random_clip_run(tmp_path)
    cfg = get_config("smoke", ["cache.n_images=3", "cache.batch_size=4"])
    assert build_cache(cfg, tmp_path)["images"].shape[0] == 3
    cfg = get_config("smoke", ["cache.n_images=5", "cache.batch_size=4"])
    assert build_cache(cfg, tmp_path)["images"].shape[0] == 5
    assert json.loads((tmp_path / "cache" / "cache.json").read_text())["n_images"] == 5


def test_the_data_record_covers_p_two_and_the_upscaler_ignores_the_clip(tmp_path):
    """What a stage's checkpoint records of its cache names ``cache.p_two``; a changed CLIP is a
    change of data for the decoder, prior and expert but not for the upscaler (renders only)."""
    from latentlab.mini.train import _cache_fingerprint, _data_changes, get_config

    a = _cache_fingerprint(get_config("smoke"), tmp_path)
    b = _cache_fingerprint(get_config("smoke", ["cache.p_two=0.9"]), tmp_path)
    assert _data_changes("decoder", tmp_path / "decoder", a, b) == "cache.p_two 0.4 -> 0.9"
    other_clip = {**a, "clip": "0123456789abcdef", "clip_fp16": "fedcba9876543210"}
    assert _data_changes("upscaler", tmp_path / "upscaler", other_clip, a) == ""
    assert "the CLIP that encodes the cache" in _data_changes("prior", tmp_path / "prior", other_clip, a)


def test_recorded_options_keep_only_the_stages_arch_overrides(tmp_path):
    """The options a refused resume suggests are the ``--config`` and the stage's
    ``--set {stage}.arch...`` ones it was trained with, not its other ``--set``s."""
    from latentlab.mini.train import _recorded_options

    argv = ["--stage", "decoder", "--config", "smoke", "--set", "decoder.steps=9", "--set",
            "decoder.arch.image_size=32", "--set", "prior.arch.width=64"]  # fmt: skip
    (tmp_path / "run_config.json").write_text(json.dumps({"argv": argv}))
    assert _recorded_options(tmp_path, "decoder") == ["--config", "smoke", "--set", "decoder.arch.image_size=32"]


def test_a_stage_trained_from_the_start_drops_the_history_of_weights_no_longer_there(tmp_path):
    """A stage trained from step 0 starts its ``run_config.json`` history afresh: the records
    of an earlier run (whose checkpoint is gone) describe weights no longer there."""
    from latentlab.mini.train import main

    _random_clip_run(tmp_path)
    (tmp_path / "prior").mkdir()
    old = {"argv": ["--stage", "prior", "--config", "cpu"], "config": {}, "history": [
        {"argv": ["--stage", "prior", "--config", "cpu"], "config": {}, "from_step": 0}]}  # fmt: skip
    (tmp_path / "prior" / "run_config.json").write_text(json.dumps(old))
    argv = ["--stage", "prior", "--config", "smoke", "--out", str(tmp_path), "--set", "cache.n_images=4",
            "--set", "prior.steps=1"]  # fmt: skip
    main(argv)
    rec = json.loads((tmp_path / "prior" / "run_config.json").read_text())
    assert [(h["argv"], h["from_step"]) for h in rec["history"]] == [(argv, 0)]


# Measures of evaluate.py: chance level, round-trip margin, layout rates


def test_chance_at_k_when_exactly_k_items_are_irrelevant():
    """With ``n - r == k`` a random top-k misses every relevant item only by drawing all the
    irrelevant ones: chance ``1 - 1 / C(n, k)``, not 1."""
    from latentlab.mini.evaluate import _chance_at_k

    assert _chance_at_k(7, 2, 5) == pytest.approx(1 - 1 / math.comb(7, 5))
    assert _chance_at_k(6, 2, 5) == 1.0


def test_chance_at_k_with_nothing_relevant_is_zero_even_in_a_small_gallery():
    """No relevant item: chance 0, also where the gallery is smaller than k."""
    from latentlab.mini.evaluate import _chance_at_k

    assert _chance_at_k(3, 0, 5) == 0.0 and _chance_at_k(5, 0, 5) == 0.0


def test_roundtrip_bar_is_met_at_exactly_its_margin():
    """The round-trip bar needs the cosine at least 0.50 above the unrelated scenes': exactly 0.50 meets it."""
    from latentlab.mini.evaluate import _table

    def row(res):
        return next(ln for ln in _table(res).splitlines() if ln.startswith("| decoder round-trip"))

    assert row(_fake_results(roundtrip_cosine=0.875, unrelated_cosine=0.375)).endswith("| yes |")
    assert row(_fake_results(roundtrip_cosine=0.875, unrelated_cosine=0.390625)).endswith("| **no** |")


def test_layout_order_is_counted_among_the_frames_along_the_axis():
    """``{prefix}_axis`` counts the frames where both colours are found, ``{prefix}_order`` only
    those of them that are along the stated axis (a frame off the axis is no wrong order)."""
    from latentlab.mini.evaluate import _layout_rates

    s = shapes.Scene((shapes.ShapeObject("circle", "red", "filled", .5, .25, .3),
                      shapes.ShapeObject("square", "blue", "filled", .5, .75, .3)), "white", "above")  # fmt: skip
    img = shapes.render_scene(s)
    turned = replace(s, relation="left of")  # the same picture, asked side by side: off the axis
    res = _layout_rates("r", [img, img], [s, turned])
    assert res == {"r_axis": 0.5, "r_order": 1.0}
    assert _layout_rates("r", [img], [turned]) == {"r_axis": 0.0, "r_order": None}


def test_bf16_on_a_cpu_without_native_bfloat16_is_warned_of_with_the_fix(monkeypatch, capsys, tmp_path):
    """A stage set to precision=bf16 that runs on a CPU without native bfloat16 is warned of
    by the command before anything else, naming the stage and the --set that makes it fp32
    (autocast emulates bf16 there, many times slower); no warning on a CPU that has it, for fp32
    stages, the cache, or another device."""
    import copy

    from latentlab.mini import train

    monkeypatch.setattr(train, "_cpu_has_bf16", lambda: False)
    out = tmp_path / "run"
    (out / "expert").mkdir(parents=True)
    (out / "expert" / "state.pt").write_bytes(b"")  # refused right after the warning: nothing trains
    with pytest.raises(ArgumentError, match="already holds a checkpoint"):
        train.main(["--stage", "expert", "--config", "smoke", "--out", str(out)])  # the expert is bf16 by default
    assert "warning: expert.precision=bf16: this CPU has no native bfloat16" in capsys.readouterr().err
    cfg = train.get_config("smoke", ["clip.precision=bf16"])
    train._warn_emulated_bf16(cfg, ["clip", "cache", "prior", "expert"])
    err = capsys.readouterr().err
    assert "clip.precision=bf16, expert.precision=bf16: this CPU has no native bfloat16" in err
    assert "add --set clip.precision=fp32 --set expert.precision=fp32" in err and "prior" not in err
    for stages in (["cache", "prior"], ["decoder"]):
        train._warn_emulated_bf16(cfg, stages)
    on_gpu = copy.deepcopy(cfg)
    on_gpu.device = "cuda"
    train._warn_emulated_bf16(on_gpu, ["clip"])
    monkeypatch.setattr(train, "_cpu_has_bf16", lambda: True)
    train._warn_emulated_bf16(cfg, ["clip", "expert"])
    monkeypatch.setattr(train, "_cpu_has_bf16", lambda: None)  # a torch that cannot tell: no guess
    train._warn_emulated_bf16(cfg, ["clip", "expert"])
    assert capsys.readouterr().err == ""


def test_the_bf16_check_reads_what_torch_says_of_this_cpu():
    """_cpu_has_bf16 is torch's (oneDNN's) answer for this machine, a bool: a canary for the
    private torch call it makes (were it gone, the check would say None and never warn)."""
    from latentlab.mini import train

    assert train._cpu_has_bf16() is bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


# -- found by the property audit of 2026-12-07: the training and export command lines ---------

BIG = "1" + "0" * 400  # a JSON number no float holds


def _tiny_ckpt(stage_dir, step=3, ema=True):
    """A checkpoint of a tiny net in ``stage_dir`` as a stage saves it (weights, EMA, state.pt)."""
    from latentlab.mini.train import _save_ckpt

    torch.manual_seed(0)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    _save_ckpt(stage_dir, model, opt, step, {k: v.clone() for k, v in model.state_dict().items()} if ema else None)
    return model, opt


# -- defects (each test fails on the code before this audit) ---------------------------------------


def test_float_settings_refuse_an_int_too_large_for_a_float():
    """``--set clip.lr=<400 digits>`` (or the same in a JSON config) is one ArgumentError naming
    the key; ``math.isfinite`` raised a raw OverflowError."""
    from latentlab.mini.train import _parse_value, get_config

    with pytest.raises(ArgumentError, match="clip.lr must be a number, got 1000"):
        _parse_value("clip.lr", 1e-3, int(BIG), False)
    with pytest.raises(ArgumentError, match="clip.max_minutes must be a number or null"):
        _parse_value("clip.max_minutes", 20.0, int(BIG), True)
    with pytest.raises(ArgumentError, match=r"cache\.p_two must be a number"):
        get_config("smoke", ["cache.p_two=" + BIG])
    assert _parse_value("clip.lr", 1e-3, 10**300, False) == 1e300  # large, but a float holds it


def test_whole_number_settings_stay_within_what_torch_takes():
    """A whole number of 2**63 or more (a seed torch.manual_seed overflows on, a warm-up whose
    ``peak * (step + 1) / warmup`` overflows) and a thread count of 2**31 or more
    (torch.set_num_threads) are refused when the config is read, not as a raw ValueError or
    OverflowError once a stage starts."""
    from latentlab.mini.train import TrainConfig, _check_ranges, _parse_value, _update

    with pytest.raises(ArgumentError, match=r"seed must be a whole number in \[-2\*\*63, 2\*\*63\), got 184467440737"):
        _parse_value("seed", 0, 2**64, False)
    with pytest.raises(ArgumentError, match=r"clip.warmup must be a whole number in"):
        _parse_value("clip.warmup", 50, int(BIG), False)
    assert _parse_value("seed", 0, 2**63 - 1, False) == 2**63 - 1
    cfg = TrainConfig()
    _update(cfg, {"threads": 2**31})
    with pytest.raises(ArgumentError, match=r"threads must be >= 1 \(and below 2\*\*31\), got 2147483648"):
        _check_ranges(cfg)


def test_shares_and_counts_of_the_clip_and_upscaler_are_checked_as_the_others_are():
    """``clip.relation_negatives`` is a share (docs/mini.md: "that share of the hard-negative
    groups"), refused outside [0, 1] as ``cond_drop`` and ``data.emoji_fraction`` are (25, meant
    as 25%, silently built every group around a two-object scene); ``clip.group`` < 1 and a negative
    ``upscaler.noise_aug`` (a standard deviation's bound) were silently taken too."""
    from latentlab.mini.train import TrainConfig, _check_ranges, _update

    for item, match in (({"clip": {"relation_negatives": 25}}, r"clip.relation_negatives must be in \[0, 1\].*got 25.0"),
                        ({"clip": {"relation_negatives": -0.5}}, r"clip.relation_negatives must be in \[0, 1\]"),
                        ({"clip": {"group": 0}}, r"clip.group must be >= 1 \(1: plain random batches\), got 0"),
                        ({"upscaler": {"noise_aug": -0.04}}, r"upscaler.noise_aug must be >= 0")):  # fmt: skip
        cfg = TrainConfig()
        _update(cfg, item)
        with pytest.raises(ArgumentError, match=match):
            _check_ranges(cfg)
    cfg = TrainConfig()
    _update(cfg, {"clip": {"relation_negatives": 1, "group": 1}, "upscaler": {"noise_aug": 0}})
    _check_ranges(cfg)


def test_a_log_line_cut_short_by_a_kill_is_dropped_on_resume(tmp_path):
    """A kill while ``log.jsonl`` was appended leaves half a line; the resume drops it with the
    records after its checkpoint (a raw JSONDecodeError stopped it)."""
    from latentlab.mini.train import _load_ckpt

    d = tmp_path / "decoder"
    model, opt = _tiny_ckpt(d, step=2)
    lines = [json.dumps({"stage": "decoder", "step": s, "loss": 1.0}) for s in (1, 2, 3)]
    (d / "log.jsonl").write_text("".join(ln + "\n" for ln in lines) + '{"stage": "decoder", "st')
    step, *_ = _load_ckpt(d, model, opt, {k: v.clone() for k, v in model.state_dict().items()})
    assert step == 2
    assert (d / "log.jsonl").read_text() == "".join(ln + "\n" for ln in lines[:2])


@pytest.mark.parametrize("damage", ["model missing", "model cut", "ema cut", "state cut", "state empty"])
def test_a_checkpoint_with_a_file_missing_or_cut_short_is_refused_naming_it(tmp_path, damage):
    """A checkpoint folder copied only in part is refused by ``--resume`` and by ``export``
    with an ArgumentError naming the file, not safetensors' or torch's own error (or a
    FileNotFoundError once the cache was built)."""
    from latentlab.mini.export import _check_checkpoints
    from latentlab.mini.train import _read_state

    d = tmp_path / "decoder"
    _tiny_ckpt(d)
    what, how = damage.split()
    path = d / ("state.pt" if what == "state" else f"{what}.safetensors")
    if how == "missing":
        path.unlink()
    else:
        data = path.read_bytes()
        path.write_bytes(b"" if how == "empty" else data[: len(data) // 2])
    said = rf"{path.name} (is missing|cannot be read \(.*\)): the checkpoint in .*decoder is incomplete or damaged"
    with pytest.raises(ArgumentError, match=said):
        _read_state(d)
    with pytest.raises(ArgumentError, match=said):
        _check_checkpoints(tmp_path, ("decoder",))


def test_train_resume_of_a_clip_whose_state_file_is_cut_short_is_refused_before_anything_is_written(tmp_path):
    """``--stage clip --resume`` reads the CLIP's step first (would it train on under other
    stages?): a ``state.pt`` cut short is the same ArgumentError there, not torch's zip error."""
    from latentlab.mini.train import main

    _tiny_ckpt(tmp_path / "clip", ema=False)
    state = tmp_path / "clip" / "state.pt"
    state.write_bytes(state.read_bytes()[:100])
    before = {p.name: p.read_bytes() for p in (tmp_path / "clip").iterdir()}
    with pytest.raises(ArgumentError, match=r"state.pt cannot be read .*the checkpoint in .*clip is incomplete"):
        main(["--stage", "clip", "--config", "smoke", "--out", str(tmp_path), "--resume"])
    assert {p.name: p.read_bytes() for p in (tmp_path / "clip").iterdir()} == before


def test_a_resume_without_the_ema_file_is_refused(tmp_path):
    """Every save of a stage with an EMA writes ``ema.safetensors``; resumed without it, the
    EMA (what export ships) silently restarted from the freshly initialised weights."""
    from latentlab.mini.train import _load_ckpt

    d = tmp_path / "prior"
    model, opt = _tiny_ckpt(d)
    (d / "ema.safetensors").unlink()
    with pytest.raises(ArgumentError, match=r"ema.safetensors is missing: the checkpoint in .*prior"):
        _load_ckpt(d, torch.nn.Linear(2, 2), opt, {k: torch.zeros_like(v) for k, v in model.state_dict().items()})
    clip = tmp_path / "clip"  # a stage without an EMA resumes as before
    _tiny_ckpt(clip, ema=False)
    assert _load_ckpt(clip, torch.nn.Linear(2, 2), opt)[0] == 3


def test_a_checkpoint_of_before_an_arch_field_existed_resumes_into_the_same_net(tmp_path):
    """A ``config.json`` written before a field was added (``text_pooled``, ``coords``, ...) holds
    the net that field's default builds (``from_dict`` reads it so, as export does); the resume
    check refused it ("text_pooled: checkpoint None, this run False")."""
    from latentlab.mini.models import DecoderConfig, PriorConfig
    from latentlab.mini.train import _check_resumed_arch

    now = DecoderConfig(block_out_channels=(8, 16, 16)).to_dict()
    old = {k: v for k, v in now.items() if k not in ("text_pooled", "coords", "text_layers")}
    (tmp_path / "config.json").write_text(json.dumps(old))
    _check_resumed_arch(tmp_path, "decoder", now)
    conf = {"arch": now, "expert": {"t_min": 750, "reads_embedding": False}}
    (tmp_path / "config.json").write_text(json.dumps({**conf, "arch": old}))
    _check_resumed_arch(tmp_path, "expert", conf)
    (tmp_path / "config.json").write_text(json.dumps(old))  # a net that does differ is still refused
    with pytest.raises(ArgumentError, match=r"decoder.arch.text_pooled: checkpoint False, this run True"):
        _check_resumed_arch(tmp_path, "decoder", {**now, "text_pooled": True})
    (tmp_path / "config.json").write_text(json.dumps({"width": 64}))
    with pytest.raises(ArgumentError, match=r"prior.arch.width: checkpoint 64, this run 32"):
        _check_resumed_arch(tmp_path, "prior", PriorConfig(width=32).to_dict())


def test_a_refused_resume_names_the_config_it_was_trained_with_when_its_options_were_abbreviated(tmp_path, capsys):
    """argparse takes ``--conf smoke`` for ``--config smoke`` (and ``--se``, ``--sm``): the
    options a refused resume suggests are those, not ``--config cpu`` (the very command it refuses)."""
    import re

    from latentlab.mini import train

    argv = ["--stage", "decoder", "--conf", "smoke", "--se", "decoder.arch.image_size=32", "--set", "decoder.steps=9"]
    (tmp_path / "run_config.json").write_text(json.dumps({"argv": argv}))
    assert train._recorded_options(tmp_path, "decoder") == ["--config", "smoke", "--set", "decoder.arch.image_size=32"]
    (tmp_path / "run_config.json").write_text(json.dumps({"argv": ["--stage", "decoder", "--sm", "--out", "r"]}))
    assert train._recorded_options(tmp_path, "decoder") == ["--config", "smoke"]
    with pytest.raises(SystemExit):  # the options it knows are main's own
        train.main(["--help"])
    assert set(re.findall(r"--[a-z-]+", capsys.readouterr().out)) == set(train._OPTIONS)


def _tiny_prior_run(out):
    """A run folder ``out`` with a checkpointed tiny prior (no CLIP record: export notes it)."""
    from latentlab.mini.models import MiniPriorNet, PriorConfig
    from latentlab.mini.train import _save_ckpt

    torch.manual_seed(0)
    cfg = PriorConfig(width=32, depth=1)
    net = MiniPriorNet(cfg)
    ema = {k: v.clone() for k, v in net.state_dict().items()}
    _save_ckpt(out / "prior", net, torch.optim.AdamW(net.parameters()), 2, ema)
    (out / "prior" / "config.json").write_text(json.dumps(cfg.to_dict()))


def test_an_export_of_no_stage_is_refused_and_writes_nothing(tmp_path, capsys):
    """``--stages ,`` (or ``stages=()``) exported nothing but still made the folder and wrote a
    manifest.json of that run."""
    from latentlab.mini.export import export, main

    run = tmp_path / "run"
    _tiny_prior_run(run)
    with pytest.raises(ArgumentError, match="stages: name at least one of clip, decoder"):
        export(run, tmp_path / "w", stages=())
    with pytest.raises(ArgumentError, match="stages: name at least one"):
        main(["--from", str(run), "--to", str(tmp_path / "w"), "--stages", ","])
    assert not (tmp_path / "w").exists()


def test_export_checks_its_arguments_before_any_work(tmp_path, capsys):
    """``export(fp16="no")`` stored float16 (``bool("no")`` is True), ``tol="0.01"`` went unread
    or raised a raw TypeError once the CLIP was loaded, and ``stages="prior"`` was read letter by
    letter ("unknown ['i', 'o', 'p', 'r']"): each is one ArgumentError naming the argument."""
    from latentlab.mini.export import export

    run = tmp_path / "run"
    _tiny_prior_run(run)
    for kw, match in (({"fp16": "no"}, "fp16 must be True or False, got 'no'"),
                      ({"drop_expert": 1}, "drop_expert must be True or False"),
                      ({"tol": "0.01"}, "tol must be a finite number >= 0, got '0.01'"),
                      ({"tol": float("nan")}, "tol must be a finite number"),
                      ({"stages": "prior"}, r"stages must be a tuple of stage names such as \('decoder', 'prior'\)")):  # fmt: skip
        with pytest.raises(ArgumentError, match=match):
            export(run, tmp_path / "w", **{"stages": ("prior",), **kw})
    assert not (tmp_path / "w").exists()


def test_an_out_or_to_that_is_a_file_is_refused_before_any_work(tmp_path, capsys):
    """``train --out FILE`` and ``export --to FILE`` are one ArgumentError naming the file in the
    way (a raw FileExistsError, for export after every fp16 check had run), and nothing changes."""
    from latentlab.mini.export import export
    from latentlab.mini.train import main

    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(ArgumentError, match=r"--out .*afile.* cannot be made: .*afile.* is a file, not a folder"):
        main(["--stage", "clip", "--config", "smoke", "--out", str(f)])
    with pytest.raises(ArgumentError, match=r"--out .* cannot be made: .*afile.* is a file"):
        main(["--stage", "clip", "--config", "smoke", "--out", str(f / "run")])
    run = tmp_path / "run"
    _tiny_prior_run(run)
    with pytest.raises(ArgumentError, match=r"to_dir \(--to\) .*afile.* cannot be made: .* is a file, not a folder"):
        export(run, f, stages=("prior",))
    assert f.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["afile", "run"]


# -- properties that guard documented promises (pass before and after) -------------------------


@settings(derandomize=True, max_examples=100, deadline=None)
@given(step=st.integers(0, 2**40), peak=st.floats(0, 10), warmup=st.integers(0, 2**40), total=st.integers(1, 2**40),
       time_frac=st.floats(0, 10))  # fmt: skip
def test_the_learning_rate_is_finite_and_follows_its_schedule(step, peak, warmup, total, time_frac):
    """``_lr``: warm-up ``peak * (step + 1) / warmup``; from ``warmup`` on, between 10% of the peak
    and the peak, never rising, and 10% at the last step (or once the time budget is spent)."""
    from latentlab.mini.train import _lr

    r = _lr(step, peak, warmup, total, time_frac)
    assert math.isfinite(r) and 0 <= r <= peak * (1 + 1e-12)
    if step < warmup:
        assert r == peak * (step + 1) / warmup
        return
    assert r >= 0.1 * peak * (1 - 1e-12)
    assert _lr(step + 1, peak, warmup, total, time_frac) <= r * (1 + 1e-12)
    if time_frac >= 1 or (total > warmup and step >= total):
        assert r == pytest.approx(0.1 * peak)


def _leaf_keys():
    from latentlab.mini.train import TrainConfig

    cfg, keys = TrainConfig(), []
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        keys += [f"{f.name}.{g.name}" for g in fields(v)] if is_dataclass(v) else [f.name]
    return keys


_VALUES = st.one_of(
    st.text(max_size=6), st.integers().map(str), st.just(BIG), st.floats().map(repr),
    st.sampled_from(["NaN", "-Infinity", "1e400", "null", "None", "TRUE", "0", "1", "[]", "{}", "[1]", '{"a": 1}', '"x"',
                     ".5"]),
)  # fmt: skip


@settings(derandomize=True, max_examples=80, deadline=None)
@given(key=st.sampled_from(_leaf_keys()), raw=_VALUES)
def test_any_set_value_applies_with_the_field_type_or_is_one_error_naming_the_key(key, raw):
    """``--set key=value``, the value parsed as JSON where it parses: it takes the type of the
    field's default (a finite float, a whole number, a bool, a string, a list, a dict; None for
    ``max_minutes``) or it is one ArgumentError that names the key."""
    from latentlab.mini.train import TrainConfig, _update

    try:
        val = json.loads(raw)
    except json.JSONDecodeError:
        val = raw
    cfg, before = TrainConfig(), TrainConfig()
    head, _, tail = key.partition(".")
    try:
        _update(cfg, {head: {tail: val}} if tail else {head: val})
    except ArgumentError as e:
        assert key in str(e)
        return
    got = getattr(getattr(cfg, head), tail) if tail else getattr(cfg, head)
    old = getattr(getattr(before, head), tail) if tail else getattr(before, head)
    if got is None:
        assert key.endswith("max_minutes")
    elif isinstance(old, float) or key.endswith("max_minutes"):
        assert type(got) is float and math.isfinite(got)
    else:
        assert type(got) is type(old)


@pytest.mark.parametrize("name", ["smoke", "gpu-emoji"])
def test_a_config_written_as_json_reads_back_the_same(tmp_path, name):
    """``run_config.json``'s config (``TrainConfig.to_dict()``) given back as ``--config FILE``
    is the same config (tuples, null time limits and lists included)."""
    from latentlab.mini.train import get_config

    cfg = get_config(name, ["clip.max_minutes=null", "data.sources=noto,twemoji"])
    p = tmp_path / "c.json"
    p.write_text(json.dumps(cfg.to_dict()))
    assert get_config(str(p)) == cfg


# -- export interrupted while it moves the files in ------------------------------------------


def test_ctrl_c_during_an_exports_moves_leaves_the_old_weights_or_the_new_never_a_mix(tmp_path, monkeypatch, ctrl_c_raises):
    """``export`` writes every file into a temporary folder, then moves them into ``--to``, the
    manifest last, and says a failure leaves the destination as it was. A Ctrl-C between two
    of those moves left the new file of one beside the old other and the old manifest; now
    Ctrl-C waits for the few renames (as ``train`` holds it for a checkpoint's), so the
    destination holds the whole new export."""
    from latentlab.mini import export as ex

    src, dst = tmp_path / "run", tmp_path / "w"
    (src / "prior").mkdir(parents=True)
    for f in ("config.json", "model.safetensors", "state.pt"):
        (src / "prior" / f).write_bytes(b"x")
    dst.mkdir()
    old = {"mini_prior.json": b"old json", "mini_prior.safetensors": b"old weights",
           "manifest.json": json.dumps({"files": {"mini_prior.safetensors": {"step": 1}}}).encode()}  # fmt: skip
    for name, body in old.items():
        (dst / name).write_bytes(body)

    def write_stages(src, tmp, dst, stages, *, fp16, tol):
        (tmp / "mini_prior.json").write_bytes(b"new json")
        (tmp / "mini_prior.safetensors").write_bytes(b"new weights")
        return {"files": {"mini_prior.safetensors": {"step": 2}}}

    monkeypatch.setattr(ex, "_check_checkpoints", lambda *a: None)
    monkeypatch.setattr(ex, "_check_clip", lambda *a: None)
    monkeypatch.setattr(ex, "_write_stages", write_stages)
    real, moved = Path.replace, []

    def replace(self, target):
        out = real(self, target)
        moved.append(Path(target).name)
        if len(moved) == 1:  # Ctrl-C just after the first file is in place
            signal.raise_signal(signal.SIGINT)
        return out

    monkeypatch.setattr(Path, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        ex.export(src, dst, stages=("prior",))
    monkeypatch.undo()
    now = {p.name: p.read_bytes() for p in dst.iterdir()}
    new = {"mini_prior.json": b"new json", "mini_prior.safetensors": b"new weights"}
    assert now == old or ({k: now.get(k) for k in new} == new and json.loads(now["manifest.json"])["files"]
                          == {"mini_prior.safetensors": {"step": 2}}), now  # fmt: skip
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".w.export-")]


# -- the training loop (audit of 2026-12-07): Ctrl-C and resume, logs, a first save cut short, caches --


def _steps(path: Path) -> list:
    return [json.loads(line)["step"] for line in path.read_text().splitlines()]


def _records(path: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "elapsed_s"} for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def clip_and_cache(run, tmp_path_factory):
    """The smoke run's CLIP and cache, what the prior stage trains on."""
    return _copy(run, tmp_path_factory.mktemp("clip-and-cache") / "run", "prior", "decoder")


class _CtrlCOnStep(torch.optim.SGD):
    """SGD that receives Ctrl-C (a real SIGINT) during its ``at``-th step."""

    def __init__(self, params, at: int | None):
        super().__init__(params, lr=0.1)
        self.at, self.calls = at, 0

    def step(self, *a, **k):
        out = super().step(*a, **k)
        self.calls += 1
        if self.calls == self.at:
            signal.raise_signal(signal.SIGINT)
        return out


def _loop_run(d: Path, n: int, stop_at: int | None, resume: bool = False, log_every: int = 1, ckpt_every: int = 1000):
    """Train a tiny net for ``n`` steps through ``_StageLoop`` (batches from ``_gen``, as the
    stages draw theirs), Ctrl-C during the ``stop_at``-th optimiser step; returns the loop."""
    from latentlab.mini.train import DecoderStage, StageInterrupted, _ema_init, _gen, _load_ckpt, _StageLoop

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = _CtrlCOnStep(model.parameters(), stop_at)
    ema = _ema_init(model)
    step, spent, loss_avg, state = _load_ckpt(d, model, opt, ema) if resume else (0, 0.0, None, {})
    stage = DecoderStage(steps=n, warmup=1, log_every=log_every, ckpt_every=ckpt_every, max_minutes=None)
    loop = _StageLoop("decoder", stage, d, model, opt, ema, step, spent, loss_avg, state)
    old = signal.signal(signal.SIGINT, signal.default_int_handler)  # (as conftest's ctrl_c_raises: a hypothesis test)
    try:
        while loop.step < n:
            x = torch.randn(4, 3, generator=_gen(0, loop.step, 3))
            loop.set_lr()
            loop.update(model(x).pow(2).mean())
    except KeyboardInterrupt:
        with pytest.raises(StageInterrupted):
            raise loop.interrupted() from None
        return loop
    finally:
        signal.signal(signal.SIGINT, old)
    loop.finish()
    return loop


@settings(derandomize=True, max_examples=6, deadline=None)
@given(n=st.integers(2, 8), every=st.tuples(st.integers(1, 3), st.integers(1, 4)), data=st.data())
def test_ctrl_c_then_resume_is_the_uninterrupted_run(tmp_path_factory, n, every, data):
    """Ctrl-C during any step k of n, then --resume, gives the uninterrupted run: the same
    weights, EMA, running loss (in ``state.pt``) and ``log.jsonl``. The step's log record and
    its loss in the running mean were lost: Ctrl-C was held over the optimiser step only, and
    raised before the bookkeeping that follows it."""
    k = data.draw(st.integers(1, n - 1), label="k")
    tmp = tmp_path_factory.mktemp("loop")
    log_every, ckpt_every = every
    ref = _loop_run(tmp / "ref", n, None, log_every=log_every, ckpt_every=ckpt_every)
    _loop_run(tmp / "run", n, k, log_every=log_every, ckpt_every=ckpt_every)
    saved = torch.load(tmp / "run" / "state.pt", weights_only=True)
    assert saved["step"] == k
    if log_every == 1:  # the checkpoint's running loss and log are those of the uninterrupted run at step k
        assert saved["loss_avg"] == _records(tmp / "ref" / "log.jsonl")[k - 1]["loss_avg"]
        assert _records(tmp / "run" / "log.jsonl") == _records(tmp / "ref" / "log.jsonl")[:k]
    res = _loop_run(tmp / "run", n, None, resume=True, log_every=log_every, ckpt_every=ckpt_every)
    assert res.loss_avg == ref.loss_avg
    assert _records(tmp / "ref" / "log.jsonl") == _records(tmp / "run" / "log.jsonl")
    assert _equal(tmp / "ref", tmp / "run") and _equal(tmp / "ref", tmp / "run", "ema.safetensors")


def test_the_clips_log_keeps_the_step_ctrl_c_stopped_at_and_drops_a_killed_runs(tmp_path, monkeypatch, ctrl_c_raises):
    """The CLIP's loop too: started again after a run killed before its first checkpoint, the
    killed run's records go; Ctrl-C during step 2's optimiser step saves the step-2 checkpoint
    and the log has that step's record (it was missing, so the log skipped a step)."""
    from latentlab.mini import train

    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "log.jsonl").write_text(json.dumps({"stage": "clip", "step": 1, "loss": 9.0}) + "\n")
    real, calls = torch.optim.AdamW.step, []

    def step(self, *a, **k):
        out = real(self, *a, **k)
        calls.append(1)
        if len(calls) == 2:
            signal.raise_signal(signal.SIGINT)
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    with pytest.raises(SystemExit):
        train.main(["--stage", "clip", "--config", "smoke", "--out", str(tmp_path), "--set", "clip.steps=3"])
    assert torch.load(tmp_path / "clip" / "state.pt", weights_only=True)["step"] == 2
    recs = _records(tmp_path / "clip" / "log.jsonl")
    assert [r["step"] for r in recs] == [1, 2] and recs[0]["loss"] != 9.0


def test_a_stage_started_again_after_a_kill_logs_one_series_of_steps(tmp_path):
    """A stage killed before its first checkpoint has no checkpoint, so it is trained from the
    start again: the log of the killed run goes, not stays in front of the new series."""
    from latentlab.mini.train import DecoderStage, _ema_init, _StageLoop

    d = tmp_path / "decoder"
    d.mkdir()
    stale = [json.dumps({"stage": "decoder", "step": s, "loss": 9.0}) for s in (1, 2)]
    (d / "log.jsonl").write_text("".join(ln + "\n" for ln in stale))
    model = torch.nn.Linear(3, 1)
    stage = DecoderStage(steps=5, warmup=0, log_every=1, ckpt_every=100, max_minutes=None)
    loop = _StageLoop("decoder", stage, d, model, torch.optim.SGD(model.parameters(), lr=0.1), _ema_init(model),
                      0, 0.0, None)  # fmt: skip
    loop.update(model(torch.ones(2, 3)).pow(2).mean())
    loop.bar.close()
    assert _steps(d / "log.jsonl") == [1]


def _cut_first_save(d: Path, monkeypatch) -> None:
    """``_save_ckpt`` of a first checkpoint (step 3) killed right after ``model.safetensors`` is in place."""
    from latentlab.mini.train import _save_ckpt

    real = Path.replace

    def replace(self, target):
        out = real(self, target)
        if str(target).endswith("model.safetensors"):
            raise _Killed
        return out

    torch.manual_seed(0)
    model = torch.nn.Linear(2, 2)
    with monkeypatch.context() as m:
        m.setattr(Path, "replace", replace)
        with pytest.raises(_Killed):
            _save_ckpt(d, model, torch.optim.AdamW(model.parameters()), 3, _ema_from(model))
    assert sorted(p.name for p in d.iterdir()) == ["ema.tmp", "model.safetensors", "state.tmp"]


def _ema_from(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_a_first_checkpoint_cut_short_between_its_renames_is_finished_on_resume(tmp_path, monkeypatch):
    """The docs: "a resume finishes a save that a kill cut short". It did not for the first
    save (no ``state.pt`` yet): the stage counted as having no checkpoint, trained from the
    start again (without --resume too, so its log held two series of steps)."""
    from latentlab.mini.train import _read_state, main

    d = tmp_path / "prior"
    _cut_first_save(d, monkeypatch)
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    with pytest.raises(ArgumentError, match=r"prior already holds a checkpoint; pass --resume"):
        main(["--stage", "prior", "--config", "smoke", "--out", str(tmp_path)])
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before  # refused: nothing changed
    assert _read_state(d)["step"] == 3
    assert sorted(p.name for p in d.iterdir()) == ["ema.safetensors", "model.safetensors", "state.pt"]


def test_a_first_checkpoint_cut_short_resumes_as_the_uninterrupted_run(clip_and_cache, tmp_path, monkeypatch):
    """End to end: the prior killed between the renames of its first checkpoint (step 2), then
    ``--resume``, ends as the run that was never killed."""
    from latentlab.mini import train

    sets = ["--set", "prior.steps=4", "--set", "prior.max_minutes=null"]
    ref, out = shutil.copytree(clip_and_cache, tmp_path / "ref"), shutil.copytree(clip_and_cache, tmp_path / "run")
    train.main(["--stage", "prior", "--config", "smoke", "--out", str(ref), *sets])
    real = Path.replace

    def replace(self, target):
        result = real(self, target)
        if str(target).endswith("prior/model.safetensors"):
            raise _Killed
        return result

    with monkeypatch.context() as m:
        m.setattr(Path, "replace", replace)
        with pytest.raises(_Killed):
            train.main(["--stage", "prior", "--config", "smoke", "--out", str(out), *sets])
    train.main(["--stage", "prior", "--config", "smoke", "--out", str(out), *sets, "--resume"])
    assert torch.load(out / "prior" / "state.pt", weights_only=True)["step"] == 4
    assert _steps(out / "prior" / "log.jsonl") == [1, 2, 3, 4]
    assert _equal(ref / "prior", out / "prior") and _equal(ref / "prior", out / "prior", "ema.safetensors")


def test_a_resumed_ema_stays_on_the_models_device(tmp_path):
    """``_load_ckpt`` read the EMA onto the CPU whatever the device of the EMA it replaced, so a
    stage resumed on a GPU failed at its first EMA update (a CPU tensor updated from a CUDA one).
    ``meta`` stands for the GPU here."""
    from latentlab.mini.train import _load_ckpt, _save_ckpt

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    _save_ckpt(tmp_path, model, opt, 2, _ema_from(model))
    ema = {k: torch.empty_like(v, device="meta") for k, v in model.state_dict().items()}
    _load_ckpt(tmp_path, model, opt, ema)
    assert {v.device.type for v in ema.values()} == {"meta"}


def test_a_cache_whose_emoji_share_rounds_to_none_is_reused(clip_and_cache, tmp_path, monkeypatch):
    """``data.emoji_fraction`` small enough that the cache holds no emoji image: the cache's
    description did not record the fraction, so every stage rendered and encoded it again."""
    from latentlab.mini import train

    out = tmp_path / "run"
    shutil.copytree(clip_and_cache / "clip", out / "clip")
    cfg = train.get_config("smoke", ["data.emoji_fraction=0.01"])
    assert train._n_emoji(cfg, cfg.cache.n_images) == 0
    calls = []
    real = train.create_clip
    monkeypatch.setattr(train, "create_clip", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    first = train.build_cache(cfg, out)
    second = train.build_cache(cfg, out)
    assert len(calls) == 1 and torch.equal(first["image_embeds"], second["image_embeds"])


@settings(derandomize=True, max_examples=25, deadline=None)
@given(steps=st.lists(st.integers(0, 9), max_size=8), at=st.integers(0, 9), cut=st.booleans())
def test_trim_log_keeps_the_records_up_to_the_checkpoint_in_order(tmp_path_factory, steps, at, cut):
    """Property (docs/mini.md): a resume drops the log records beyond its checkpoint and a line
    cut short, and keeps the others as they were, in order."""
    from latentlab.mini.train import _trim_log

    path = tmp_path_factory.mktemp("log") / "log.jsonl"
    lines = [json.dumps({"stage": "prior", "step": s, "loss": 0.5}) for s in steps]
    path.write_text("".join(ln + "\n" for ln in lines) + ('{"stage": "prior", "st' if cut else ""))
    _trim_log(path, at)
    assert path.read_text() == "".join(ln + "\n" for ln, s in zip(lines, steps) if s <= at)


def test_a_cache_is_reused_beside_a_copy_of_its_clip(clip_and_cache, tmp_path, monkeypatch):
    """A run folder copied without its files' times (``cp -r``, a transfer to another machine)
    gives the CLIP another mtime but the same tensors: the cache's description records the
    CLIP's id, so the cache is reused, not rendered and encoded again."""
    import os

    from latentlab.mini import train

    out = shutil.copytree(clip_and_cache, tmp_path / "run")
    cfg = train.get_config("smoke")
    train.build_cache(cfg, out)  # reused as it is
    clip = out / "clip" / "model.safetensors"
    os.utime(clip, (clip.stat().st_atime, clip.stat().st_mtime + 60))
    monkeypatch.setattr(train, "create_clip", lambda *a, **k: pytest.fail("the cache was encoded again"))
    assert train.build_cache(cfg, out)["image_embeds"].shape[0] == cfg.cache.n_images


@pytest.mark.parametrize("err, says", [
    (OSError(28, "No space left on device"), "error: No space left on device; free space and run the same command again"),
    (PermissionError(13, "Permission denied", "/w/mini_prior.json"),
     "error: Permission denied (/w/mini_prior.json); check the path and its permissions."),
])  # fmt: skip
def test_the_python_m_entry_points_report_a_system_error_in_one_line(err, says, capsys):
    """python -m latentlab.mini.train / export / evaluate printed a traceback for a full disk or a
    refused write (the latentlab command says it in one line); now one line and exit status 2."""
    from latentlab.errors import run_reporting_errors

    def main():
        raise err

    with pytest.raises(SystemExit) as e:
        run_reporting_errors(main)
    assert e.value.code == 2 and capsys.readouterr().err.strip().startswith(says)


# -- a resumed stage whose max_minutes are spent trains no further step (2026-12-07) -----------------------


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


@pytest.mark.parametrize("stage", ["prior", "clip"])
def test_a_resume_of_a_stage_whose_time_is_spent_trains_no_step(run, tmp_path, capsys, stage):
    """docs/mini.md: a stage stops after max_minutes. Resumed with that time spent (the limit not
    raised), it trained one more step at every resume, changing its weights; now it trains none
    and says the limit is reached at the checkpoint's step."""
    from latentlab.mini.train import main

    out = tmp_path / "run"
    shutil.copytree(run, out)
    if stage == "clip":  # (a CLIP whose cache trained other stages is not trained on in place)
        for d in ("cache", "prior", "decoder"):
            shutil.rmtree(out / d)
    step = torch.load(out / stage / "state.pt", weights_only=True)["step"]
    before = _weights(out / stage / "model.safetensors")
    sets = ["--set", f"{stage}.steps={step + 5}", "--set", f"{stage}.max_minutes=1e-9"]
    capsys.readouterr()
    for _ in range(2):
        main(["--stage", stage, "--config", "smoke", "--out", str(out), "--resume", *sets])
        assert torch.load(out / stage / "state.pt", weights_only=True)["step"] == step
    after = _weights(out / stage / "model.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)
    err = capsys.readouterr().err
    assert err.count(f"{stage}: max_minutes=1e-09 reached at step {step} of {step + 5}") == 2
    # the limit raised, it trains on
    main(["--stage", stage, "--config", "smoke", "--out", str(out), "--resume", "--set", f"{stage}.steps={step + 1}",
          "--set", f"{stage}.max_minutes=null"])  # fmt: skip
    assert torch.load(out / stage / "state.pt", weights_only=True)["step"] == step + 1


@pytest.mark.parametrize("err", [OSError(5, "Input/output error", "/w/model.safetensors"), BrokenPipeError(32, "Broken pipe")])
def test_the_python_m_entry_points_blame_the_path_only_for_a_path_error(err, capsys):
    """run_reporting_errors (python -m latentlab.mini.train / export / evaluate) said "check the
    path and its permissions" for every OSError; the latentlab command says it only where the path
    was refused (missing, not permitted, read-only, ...), as its docstring promises it reports them."""
    from latentlab.errors import run_reporting_errors

    def main():
        raise err

    with pytest.raises(SystemExit) as e:
        run_reporting_errors(main)
    said = capsys.readouterr().err.strip()
    assert e.value.code == 2 and said.startswith(f"error: {err.strerror}") and said.endswith(".")
    assert "check the path" not in said
