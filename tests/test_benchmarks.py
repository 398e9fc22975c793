"""The benchmarks run (on the CPU, tiny sizes) and check what they claim to check. No
timing is asserted here: speed claims live in docs/performance.md, from real runs."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shlex
import subprocess
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FakeDecoder

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bench():
    before = torch.get_num_threads()
    yield _load("render_speed")
    torch.set_num_threads(before)  # --threads 1 below


@pytest.fixture(scope="module")
def tiny_rows(bench, tmp_path_factory):
    """One --tiny run of the Stable unCLIP and Kandinsky tiny pipelines, rows and printed table."""
    out = tmp_path_factory.mktemp("bench") / "rows.json"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert bench.main(["--tiny", "--model", "tiny", "--model", "kandinsky-tiny", "--frames", "3", "--steps", "2",
                           "--batch-size", "3", "--threads", "1", "--json", str(out)]) == 0  # fmt: skip
    return json.loads(out.read_text())["rows"], buf.getvalue()


def test_render_speed_tiny_runs_and_frames_agree(tiny_rows):
    rows, printed = tiny_rows
    assert [r["model"] for r in rows] == ["tiny", "kandinsky-tiny"]
    for r in rows:
        assert r["frames"] == 3 and r["steps"] == 2 and r["batch_size"] == 3 and r["levers"] == []
        assert r["loop_s_per_frame"] > 0 and r["ours_s_per_frame"] > 0
        assert r["max_pixel_diff"] <= 2  # the batched renderer reproduces the per-frame loop
        assert r["alone_vs_batch_max_diff"] <= 2
    assert "| tiny | 64 | 3 | 2 | 3 | - |" in printed
    assert "| kandinsky-tiny | 64 | 3 | 2 | 3 | - |" in printed  # the Kandinsky 2.2 path of the benchmark


def test_render_speed_recommended_column(tiny_rows):
    rows, printed = tiny_rows
    assert "| recommended | rec. s/frame | rec. speed-up | rec. px diff max / mean | rec. PSNR dB |" in printed
    for r in rows:
        assert r["rec_sampler"] == "dpm++" and r["rec_steps"] == 1  # 60 % of 2 steps
        assert r["rec_s_per_frame"] > 0 and r["rec_speedup"] > 0
        assert 0 < r["rec_max_pixel_diff"] <= 255 and 0 < r["rec_mean_pixel_diff"] <= r["rec_max_pixel_diff"]
        assert r["rec_psnr_db"] is not None and 0 < r["rec_psnr_db"] < 100
        assert f"| dpm++ 1 | {r['rec_s_per_frame']:.3f} |" in printed


def test_render_speed_channels_last_and_mini(bench, capsys):
    """--channels-last (latentlab's columns only) keeps the frames; mini's recommended column is
    its own DDIM with fewer steps; --recommended off skips the column."""
    assert bench.main(["--tiny", "--model", "tiny", "--frames", "2", "--steps", "2", "--batch-size", "2",
                       "--channels-last", "--recommended", "off", "--threads", "1"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    row = next(line for line in printed.splitlines() if line.startswith("| tiny |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[5] == "channels-last" and int(cells[10]) <= 2 and cells[12] == "off"


def test_render_speed_channels_last_applies_to_mini_too(bench, capsys, monkeypatch, tmp_path):
    """mini has optimize() too: --channels-last puts its UNet and upscaler in channels-last for
    latentlab's columns (its own one-frame loop stays plain), the frames within 2/255."""
    from latentlab.mini import weights_available
    from latentlab.mini.runtime import MiniDecoder

    if not weights_available():
        pytest.skip("the mini weights are not in this checkout")
    applied = []
    real = MiniDecoder.optimize

    def spy(self, **kwargs):
        applied.append(kwargs)
        return real(self, **kwargs)

    monkeypatch.setattr(MiniDecoder, "optimize", spy)
    out = tmp_path / "rows.json"
    assert bench.main(["--tiny", "--model", "mini", "--frames", "2", "--steps", "6", "--batch-size", "2",
                       "--channels-last", "--recommended", "off", "--threads", "1", "--json", str(out)]) == 0  # fmt: skip
    captured = capsys.readouterr()
    assert "no optimize() levers" not in captured.err
    assert applied == [{"channels_last": True, "compile": False, "compile_mode": None}]
    (row,) = json.loads(out.read_text())["rows"]
    assert row["model"] == "mini" and row["levers"] == ["channels-last"]
    # (6 steps: at 2 the trained net's rounding differences grow to 4-5 levels, batching's alone to 2)
    assert row["max_pixel_diff"] <= 2 and row["alone_vs_batch_max_diff"] <= 2
    assert "| mini | 64 | 2 | 6 | 2 | channels-last |" in captured.out


def test_frame_difference_values(bench):
    a = np.zeros((2, 4, 4, 3), np.uint8)
    assert bench.frame_difference(a, a) == {"max": 0, "mean": 0.0, "psnr_db": None}
    b = a.copy()
    b[0, 0, 0, 0] = 96  # one channel of one pixel off by 96 out of 96 values
    d = bench.frame_difference(a, b)
    assert d["max"] == 96 and d["mean"] == pytest.approx(1.0)
    assert d["psnr_db"] == pytest.approx(10 * math.log10(255.0**2 / 96.0), rel=1e-9)  # MSE = 96**2 / 96
    assert bench.recommended_steps(20) == 12 and bench.recommended_steps(1) == 1


def test_mini_speed_benchmark_runs_and_reports_its_bars(tmp_path, capsys):
    from latentlab.mini import weights_available
    from latentlab.mini.runtime import MiniDecoder

    if not weights_available():
        pytest.skip("the mini weights are not in this checkout")
    mod = _load("mini_speed")
    out = tmp_path / "speed.json"
    res = mod.main(["--frames", "3", "--repeats", "1", "--no-demo", "--json", str(out)])
    assert res["morph"]["frames"] == 3 and res["morph"]["frame_shape"][1:] == (64, 64, 3)
    assert res["morph"]["batch_size"] == MiniDecoder.default_batch_size  # what render() used
    # the 60 s bar is for a 48-frame morph: not judged at 3 frames
    assert res["morph"]["met"] is None and "(bar applies to 48 frames)" in capsys.readouterr().out
    assert "demo" not in res and json.loads(out.read_text())["morph"]["frames"] == 3
    with pytest.raises(SystemExit, match="--frames"):
        mod.main(["--frames", "1", "--no-demo"])


def test_mini_speed_times_channels_last_beside_the_default(capsys):
    from latentlab.mini import weights_available

    if not weights_available():
        pytest.skip("the mini weights are not in this checkout")
    mod = _load("mini_speed")
    res = mod.main(["--frames", "2", "--repeats", "2", "--no-demo", "--channels-last"])
    c = res["morph"]["channels_last"]
    assert c["seconds"] > 0 and abs(c["time_ratio"] - c["seconds"] / res["morph"]["seconds"]) < 0.02
    assert 0 <= c["max_px_diff"] <= 4 and 0 <= c["share_of_values_differing"] <= 1
    assert "with optimize(channels_last=True), interleaved" in capsys.readouterr().out


@pytest.mark.parametrize("bad", [["--repeats", "0"], ["--threads", "0"], ["--threads", "two"]])
def test_mini_speed_refuses_counts_below_one(bad, capsys):
    mod = _load("mini_speed")
    with pytest.raises(SystemExit) as exc:
        mod.main(["--frames", "3", "--no-demo", *bad])
    assert exc.value.code == 2 and f"argument {bad[0]}: must be an integer >= 1" in capsys.readouterr().err


def test_mini_speed_demo_gets_the_threads(monkeypatch):
    """--threads reaches the `python -m latentlab.demo` process, whose time is reported beside it."""
    import os
    import subprocess
    import types

    mod = _load("mini_speed")
    envs = []

    def run(cmd, **kw):
        envs.append(kw.get("env"))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(mod, "subprocess", types.SimpleNamespace(run=run))
    morph = {"frames": 3, "frame_shape": (3, 64, 64, 3), "seconds": 1.0, "met": None}
    monkeypatch.setattr(mod, "time_morph", lambda frames, repeats, channels_last=False: morph)
    before = torch.get_num_threads()
    try:
        res = mod.main(["--frames", "3", "--threads", "1"])
    finally:
        torch.set_num_threads(before)
    assert res["machine"]["torch_threads"] == 1 and envs[0]["OMP_NUM_THREADS"] == envs[0]["MKL_NUM_THREADS"] == "1"
    mod.main(["--frames", "3"])  # no --threads: the demo inherits this environment as it is
    assert envs[1].get("OMP_NUM_THREADS") == os.environ.get("OMP_NUM_THREADS")


def test_layout_expert_benchmark_compares_both_ways_on_the_same_prompts(tmp_path):
    from latentlab.mini import weights_available

    if not weights_available():
        pytest.skip("the mini weights are not in this checkout")
    mod = _load("layout_expert")
    out = tmp_path / "expert.json"
    res = mod.main(["--sets", "7000", "--n", "3", "--emoji", "4", "--steps", "2", "--threads", "1", "--json", str(out)])
    for name in ("alone", "expert"):
        r = res[name]
        assert r["relation_prompts"] == 3 and r["single_prompts"] == 3 and r["seconds_per_frame"] > 0
        assert 0 <= r["relation_both"] <= 3 and 0 <= r["axis"] <= r["found"] <= 3 and 0 <= r["single_right"] <= 3
        if "emoji_prompts" in r:  # only where the data index was fetched
            assert r["emoji_prompts"] == 4 and 0 <= r["emoji_top1"] <= r["emoji_top5"] <= 1 and -1 <= r["emoji_cosine"] <= 1
    assert res["settings"]["t_min"] == 750 and json.loads(out.read_text())["settings"]["steps"] == 2
    assert res["cost_ratio_expert_over_alone"] == pytest.approx(res["expert"]["seconds_per_frame"] /
                                                                res["alone"]["seconds_per_frame"])  # fmt: skip
    with pytest.raises(SystemExit, match="--sets"):
        mod.main(["--sets", "a,b"])


@pytest.mark.parametrize("bad", [["--sets", ""], ["--sets", " , "], ["--n", "0"], ["--steps", "0"], ["--threads", "0"]])
def test_layout_expert_refuses_empty_and_zero_options_before_any_work(bad, capsys, monkeypatch):
    from latentlab.mini import models

    mod = _load("layout_expert")
    monkeypatch.setattr(models, "create_clip", lambda *a, **k: pytest.fail("loaded models before refusing"))
    with pytest.raises(SystemExit) as exc:
        mod.main(["--sets", "7000", "--n", "2", "--steps", "2", "--emoji", "0", *bad])
    said = str(exc.value.code) + capsys.readouterr().err
    assert bad[0] in said and ("at least one seed" in said or "must be an integer >= 1" in said)


def test_layout_expert_warms_up_both_decoders_and_alternates_the_first(monkeypatch):
    """Each decoder decodes a small batch untimed before any timing, and the decoder timed first
    alternates from set to set, so a cold start does not land in one side of the cost ratio."""
    from latentlab.mini import weights_available
    from latentlab.mini.runtime import MiniDecoder

    if not weights_available():
        pytest.skip("the mini weights are not in this checkout")
    calls = []
    decode = MiniDecoder.decode

    def spy(self, z, noise, **kw):
        calls.append(("expert" if self.expert is not None else "alone", len(z)))
        return decode(self, z, noise, **kw)

    monkeypatch.setattr(MiniDecoder, "decode", spy)
    before = torch.get_num_threads()
    try:
        _load("layout_expert").main(["--sets", "7000,7100", "--n", "3", "--emoji", "0", "--steps", "1", "--threads", "1"])
    finally:
        torch.set_num_threads(before)
    assert sorted(calls[:2]) == [("alone", 2), ("expert", 2)]  # the warm-up
    assert calls[2:6] == [("alone", 3), ("expert", 3), ("expert", 3), ("alone", 3)]  # set 7000, then set 7100


def test_render_speed_compile_mode_needs_compile(bench, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--tiny", "--compile-mode", "reduce-overhead"])
    assert exc.value.code == 2 and "--compile-mode needs --compile" in capsys.readouterr().err


@pytest.mark.parametrize("bad, why", [
    (["--repeats", "0"], "argument --repeats: must be an integer >= 1"),
    (["--steps", "0"], "argument --steps: must be an integer >= 1"),
    (["--frames", "0"], "argument --frames: must be an integer >= 1"),
    (["--frames", "1"], "--frames must be >= 2"),
    (["--batch-size", "0"], "argument --batch-size: must be an integer >= 1"),
    (["--rec-steps", "0"], "argument --rec-steps: must be an integer >= 1"),
    # an audit (2026-12-06): it failed with a traceback after timing the first model
    (["--json", "/nonexistent-folder/x.json"], "--json /nonexistent-folder/x.json: its folder /nonexistent-folder does not exist"),
    (["--json", "."], "--json . is a folder; give a file name"),
])  # fmt: skip
def test_render_speed_refuses_bad_counts_before_building_models(bench, capsys, monkeypatch, bad, why):
    monkeypatch.setattr(bench, "build_decoder", lambda *a, **k: pytest.fail("built a model before refusing"))
    with pytest.raises(SystemExit) as exc:
        bench.main(["--tiny", "--model", "tiny", "--frames", "2", "--steps", "1", "--threads", "1", *bad])
    assert exc.value.code == 2 and why in capsys.readouterr().err


def test_render_speed_prints_each_row_as_it_finishes(bench, tiny_rows, capsys, monkeypatch):
    """A run cut off after its first model (here: the second one fails) has printed that row."""

    def run_case(model, args):
        if model != "tiny":
            raise TimeoutError("cut off")
        return tiny_rows[0][0]

    monkeypatch.setattr(bench, "run_case", run_case)
    with pytest.raises(TimeoutError):
        bench.main(["--tiny", "--model", "tiny", "--model", "kandinsky-tiny"])
    printed = capsys.readouterr().out
    assert printed.splitlines()[1].startswith("| model | px |") and "| tiny | 64 | 3 | 2 | 3 | - |" in printed


def test_render_speed_refuses_cuda_without_a_gpu_before_building_models(bench, capsys, monkeypatch):
    monkeypatch.setattr(bench.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(bench, "build_decoder", lambda *a, **k: pytest.fail("built a model before refusing"))
    for device in ("cuda", "cuda:1"):
        with pytest.raises(SystemExit) as exc:
            bench.main(["--model", "tiny", "--device", device, "--frames", "2", "--steps", "1"])
        assert exc.value.code == 2 and f"--device {device}: torch sees no CUDA GPU" in capsys.readouterr().err


def test_render_speed_tiny_is_a_cpu_run_unless_told(bench, tiny_rows, capsys, monkeypatch):
    """--tiny runs on the CPU (float32) also where a GPU exists; --device overrides it."""
    seen = []

    def run_case(model, args):
        seen.append((args.device, args.dtype))
        return tiny_rows[0][0]

    monkeypatch.setattr(bench.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(bench.torch.cuda, "get_device_name", lambda *a: "a test GPU")
    monkeypatch.setattr(bench, "run_case", run_case)
    bench.main(["--tiny", "--model", "tiny"])
    bench.main(["--tiny", "--model", "tiny", "--device", "cuda"])
    bench.main(["--model", "tiny"])  # without --tiny the GPU stays the default
    assert seen == [("cpu", "float32"), ("cuda", "float16"), ("cuda", "float16")]
    assert "a test GPU" in capsys.readouterr().out


def test_render_speed_header_and_json_as_it_goes(bench, tiny_rows, capsys, monkeypatch, tmp_path):
    """The header has the date and the torch / diffusers versions; --json holds the rows
    finished so far when a later model fails or the run is interrupted."""
    import datetime
    from importlib.metadata import version

    out = tmp_path / "rows.json"

    def run_case(model, args):
        if model == "mini":
            raise KeyboardInterrupt
        if model == "kandinsky-tiny":
            raise TimeoutError("cut off")
        return tiny_rows[0][0]

    monkeypatch.setattr(bench, "run_case", run_case)
    for second, error in (("kandinsky-tiny", TimeoutError), ("mini", KeyboardInterrupt)):
        out.unlink(missing_ok=True)
        with pytest.raises(error):
            bench.main(["--tiny", "--model", "tiny", "--model", second, "--json", str(out)])
        doc = json.loads(out.read_text())
        assert [r["model"] for r in doc["rows"]] == ["tiny"] and doc["complete"] is False
    head = capsys.readouterr().out.splitlines()[0]
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    assert head.startswith(today) and f"torch {torch.__version__}" in head and f"diffusers {version('diffusers')}" in head
    assert doc["versions"] == {"torch": torch.__version__, "diffusers": version("diffusers")} and doc["date"].startswith(today)
    bench.main(["--tiny", "--model", "tiny", "--json", str(out)])
    assert json.loads(out.read_text())["complete"] is True


def test_render_speed_help_shows_the_example_commands(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--help"])
    text = capsys.readouterr().out
    assert "--steps 20 --device cuda --dtype float16 --channels-last --compile" in text
    flat = " ".join(text.split())  # the options' help is wrapped to the terminal's width
    assert "implies --device cpu unless --device is given" in flat
    assert "torch device, e.g. cpu, cuda" in flat and "model dtype (default: float16 on cuda" in flat


# the variables benchmarks/gpu_session.sh reads: one left set in the caller's shell (its header
# shows `INIT=... benchmarks/gpu_session.sh`) would change what the tests below check
_SESSION_VARS = {"OUT", "CONFIG", "MINUTES", "N_IMAGES", "INIT", "SETS", "TRAIN", "BENCH", "BENCH_ARGS", "RUN", "RESUME",
                 "PYTHON"}  # fmt: skip


def _session_env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k not in _SESSION_VARS}, **extra}


def test_gpu_session_script_dry_run_on_the_cpu(tmp_path):
    """benchmarks/gpu_session.sh is only ever run on a rare lent GPU: this runs its training
    part with the smoke configuration, warm-started from a decoder exported as a call of the
    script exports it (made here in-process: each call of the script starts four Python
    processes of about 8 s each), then again with RESUME=1, so the script cannot rot unseen.
    (A call without INIT differs only in the flag, checked with a fake PYTHON below.)"""
    import shutil
    import subprocess
    import sys

    from latentlab.mini.export import export
    from latentlab.mini.train import main as train

    if shutil.which("bash") is None:
        pytest.skip("no bash")
    # what an earlier session's call brought back: the script's steps 1-3, in this process
    earlier = tmp_path / "run0"
    for stage in (["--stage", "cache", "--init-from", str(ROOT / "latentlab" / "mini" / "weights")],
                  ["--stage", "decoder", "--set", "decoder.max_minutes=0.05"]):  # fmt: skip
        train([*stage, "--config", "smoke", "--out", str(earlier), "--set", "cache.n_images=16"])
    export(earlier, tmp_path / "out0" / "decoder", stages=("decoder",))
    env = _session_env(CONFIG="smoke", MINUTES="0.05", N_IMAGES="16", BENCH="0", PYTHON=sys.executable,
                       INIT=str(tmp_path / "out0" / "decoder"))  # fmt: skip
    first = {**env, "OUT": str(tmp_path / "out1"), "RUN": str(tmp_path / "run1")}
    subprocess.run(["bash", "benchmarks/gpu_session.sh"], cwd=ROOT, env=first, check=True, capture_output=True)
    out = tmp_path / "out1"
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["decoder/manifest.json", "decoder/mini_decoder.json", "decoder/mini_decoder.safetensors",
                     "hardware.txt", "train.log"]  # fmt: skip
    rc = json.loads((out / "decoder" / "manifest.json").read_text())["files"]["mini_decoder.safetensors"]["run_config"]
    assert rc["config"]["decoder"]["max_minutes"] == 0.05 and rc["argv"][:2] == ["--stage", "decoder"]
    assert len(files) + 1 <= 8  # with render_speed.txt: within what $OUT brings back
    init = json.loads((tmp_path / "run1" / "decoder" / "init.json").read_text())
    assert init["init_from"] == str(tmp_path / "out0" / "decoder" / "mini_decoder.safetensors")
    # a second call on the same warm machine (same RUN) with RESUME=1 reuses the cache and goes on
    # training the decoder (was: the cache built again, then "decoder already holds a checkpoint;
    # pass --resume", exit 1); SETS reaches the decoder stage (the smoke decoder stops at 3 steps)
    def step(out: str) -> int:
        return json.loads((tmp_path / out / "decoder" / "manifest.json").read_text())["files"]["mini_decoder.safetensors"]["step"]

    cache = tmp_path / "run1" / "cache" / "cache.safetensors"
    built, before = cache.stat().st_mtime_ns, step("out1")
    # the smoke decoder stage stops at its 3 steps (the exported step counts the warm start's too)
    again = {**first, "OUT": str(tmp_path / "out2"), "RESUME": "1", "SETS": "decoder.steps=5"}
    proc = subprocess.run(["bash", "benchmarks/gpu_session.sh"], cwd=ROOT, env=again, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    history = json.loads((tmp_path / "run1" / "decoder" / "run_config.json").read_text())["history"]
    assert step("out2") == before + 2 and cache.stat().st_mtime_ns == built  # continued; the cache not rebuilt
    assert [h["from_step"] for h in history] == [0, 3] and "--resume" in history[-1]["argv"]


def test_gpu_session_script_starts_clean_without_resume(tmp_path):
    """Without RESUME a call removes what an earlier call's training part left in RUN (and
    nothing else there) before its first step, and passes no --resume; with RESUME=1 it keeps
    them, skips the cache stage where RUN has a cache, and passes --resume (a fake PYTHON that
    records each step and whether RUN still held the old decoder checkpoint then)."""
    import shutil
    import subprocess

    if shutil.which("bash") is None:
        pytest.skip("no bash")
    run = tmp_path / "run"
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\nif [ -f "$RUN/decoder/state.pt" ]; then s=old; else s=none; fi\necho "$s $*" >> "$CALLS"\n')
    fake.chmod(0o755)
    calls = tmp_path / "calls.txt"
    env = _session_env(PYTHON=str(fake), CALLS=str(calls), OUT=str(tmp_path / "out"), RUN=str(run), BENCH="0")
    left = ["cache/cache.safetensors", "clip/model.safetensors", "config.json", "decoder/state.pt"]

    def earlier_run() -> None:
        for name in [*left, "mine.txt"]:
            (run / name).parent.mkdir(parents=True, exist_ok=True)
            (run / name).write_text("earlier")

    def session(**extra: str) -> list[str]:
        calls.unlink(missing_ok=True)
        subprocess.run(["bash", "benchmarks/gpu_session.sh"], cwd=ROOT, env={**env, **extra}, check=True, capture_output=True)
        return [line for line in calls.read_text().splitlines() if "latentlab.mini" in line]

    earlier_run()
    steps = session()
    assert sorted(p.relative_to(run).as_posix() for p in run.rglob("*")) == ["mine.txt"]
    assert [s.split()[0] for s in steps] == ["none"] * 3 and not any("--resume" in s for s in steps)
    assert "--stage cache" in steps[0] and "--stage decoder" in steps[1] and "--init-from" not in steps[1]
    steps = session(INIT="/carried/decoder")  # a later session: the decoder warm-starts from INIT
    assert "--stage decoder" in steps[1] and "--init-from /carried/decoder" in steps[1]
    earlier_run()
    steps = session(RESUME="1")
    assert all((run / name).read_text() == "earlier" for name in left)
    assert len(steps) == 2 and steps[0].startswith("old") and "--stage decoder" in steps[0] and "--resume" in steps[0]
    (run / "cache" / "cache.safetensors").unlink()  # RESUME=1 but no cache yet: the cache stage runs
    steps = session(RESUME="1")
    assert "--stage cache" in steps[0] and "--stage decoder" in steps[1] and "--resume" in steps[1]


@pytest.mark.parametrize("fail", ["--stage cache", "--stage decoder", "latentlab.mini.export"])
def test_gpu_session_script_stops_at_a_failed_training_step(tmp_path, fail):
    """A failing step of the training part stops the script with a non-zero status and the
    log's tail, before any later step or the benchmark (a fake PYTHON, so it takes no time)."""
    import shutil
    import subprocess

    if shutil.which("bash") is None:
        pytest.skip("no bash")
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\necho "$*" >> "$CALLS"\n'
                    'case "$*" in *"$FAIL"*) echo "fake failure: $*" >&2; exit 3;; esac\n')  # fmt: skip
    fake.chmod(0o755)
    calls = tmp_path / "calls.txt"
    env = _session_env(PYTHON=str(fake), CALLS=str(calls), FAIL=fail, OUT=str(tmp_path / "out"), RUN=str(tmp_path / "run"),
                       BENCH="1")  # fmt: skip
    proc = subprocess.run(["bash", "benchmarks/gpu_session.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "fake failure" in proc.stdout  # the log's tail is shown
    steps = [line for line in calls.read_text().splitlines() if "latentlab.mini" in line or "render_speed" in line]
    assert fail in steps[-1]  # nothing ran after the failed step, the benchmark included


@pytest.mark.parametrize("bad, why", [
    (["--morphs", "0"], "--morphs must be in [1, "),
    (["--frames", "0"], "--frames must be >= 3"),
    (["--flicker-frames", "0"], "--flicker-frames >= 2"),
    (["--steps", "0"], "argument --steps: must be an integer >= 1"),
    (["--threads", "0"], "argument --threads: must be an integer >= 1"),
    # an audit (2026-12-06): these removed an earlier run's outputs, then failed as a library argument
    (["--passes", "0"], "--passes must be >= 1, got 0"),
    (["--tol", "-1"], "--tol must be a finite number >= 0"),
    (["--min-width", "0"], "--min-width must be in (0, 1)"),
    (["--invert-refine", "-1"], "--invert-refine must be >= 0"),
    (["--edit-steps", "-1"], "--edit-steps must be >= 0 (0 skips)"),
    (["--json", "/nonexistent-folder/q.json"], "argument --json: /nonexistent-folder/q.json: give a file in an existing folder"),
])  # fmt: skip
def test_quality_refuses_zero_counts_instead_of_taking_the_default(bad, why, capsys, monkeypatch, tmp_path):
    mod = _load("quality")
    monkeypatch.setattr(mod.ll, "create_encoder", lambda *a, **k: pytest.fail("loaded a model before refusing"))
    (tmp_path / "results.json").write_text("{}")  # an earlier run's: kept when the flags are refused
    before = torch.get_num_threads()
    try:
        with pytest.raises(SystemExit) as exc:
            mod.main(["--quick", "--out", str(tmp_path), *bad])
    finally:
        torch.set_num_threads(before)
    assert exc.value.code == 2 and why in capsys.readouterr().err
    assert (tmp_path / "results.json").is_file()


@pytest.mark.parametrize("bad", [["--n", "0"], ["--steps", "0"], ["--threads", "0"], ["--n", "-3"]])
def test_upscaler_refuses_counts_below_one_before_loading(bad, capsys, monkeypatch):
    from latentlab.mini.runtime import MiniDecoder

    mod = _load("upscaler")
    monkeypatch.setattr(MiniDecoder, "from_pretrained", lambda *a, **k: pytest.fail("loaded a model before refusing"))
    before = torch.get_num_threads()
    try:
        with pytest.raises(SystemExit) as exc:
            mod.main(bad)
    finally:
        torch.set_num_threads(before)
    assert exc.value.code == 2 and f"argument {bad[0]}: must be an integer >= 1" in capsys.readouterr().err


def test_upscaler_finds_the_checkouts_data_from_another_folder_and_hides_no_bug(tmp_path, monkeypatch):
    """Run from another folder, the data index is the checkout's .cache/mini/data (was: the
    working directory's, so the emoji rows were silently dropped); only the data module's
    DataFetchError becomes the "no emoji rows" note, any other error propagates."""
    from latentlab.mini import data, weights_available

    if not weights_available():
        pytest.skip("the mini weights are not in this checkout")
    mod = _load("upscaler")
    asked = []

    def load_index(path, **kw):
        asked.append(Path(path))
        raise ValueError("a bug in the index reader")

    monkeypatch.setattr(data, "load_index", load_index)
    monkeypatch.chdir(tmp_path)
    before = torch.get_num_threads()
    try:
        with pytest.raises(ValueError, match="a bug in the index reader"):
            mod.main(["--n", "1", "--steps", "1", "--threads", "1"])
        assert asked == [ROOT / ".cache" / "mini" / "data" / "index.jsonl"]
        with pytest.raises(SystemExit) as exc:  # an explicit --data without an index is refused, not ignored
            mod.main(["--n", "1", "--data", str(tmp_path)])
        assert exc.value.code == 2
    finally:
        torch.set_num_threads(before)
    assert data.default_cache_dir() == ROOT / data.DEFAULT_CACHE
    (tmp_path / data.DEFAULT_CACHE).mkdir(parents=True)  # the working directory's, where it has one
    assert data.default_cache_dir() == Path(data.DEFAULT_CACHE)


def test_layout_expert_reads_the_given_data_index_before_loading_models(tmp_path, monkeypatch):
    from latentlab.mini import data, models

    mod = _load("layout_expert")
    asked = []

    def load_index(path, **kw):
        asked.append(Path(path))
        raise ValueError("a bug")

    monkeypatch.setattr(data, "load_index", load_index)
    monkeypatch.setattr(models, "create_clip", lambda *a, **k: pytest.fail("loaded models before reading the index"))
    monkeypatch.chdir(tmp_path)  # another folder: the checkout's index is still the one read
    with pytest.raises(ValueError, match="a bug"):  # read before the models load, and not hidden
        mod.main(["--sets", "7000", "--n", "1", "--emoji", "2", "--steps", "1"])
    assert asked == [ROOT / ".cache" / "mini" / "data" / "index.jsonl"]
    monkeypatch.setattr(data, "load_index", lambda *a, **k: (_ for _ in ()).throw(data.DataFetchError("none")))
    assert mod._emoji_prompts(2, tmp_path / "index.jsonl") == []  # no index: the prompts are skipped
    with pytest.raises(SystemExit) as exc:  # an explicit --data without an index is refused, not ignored
        mod.main(["--sets", "7000", "--emoji", "2", "--data", str(tmp_path)])
    assert exc.value.code == 2


def test_layout_expert_names_a_missing_weights_file_before_loading(tmp_path, monkeypatch):
    from latentlab.errors import ModelNotAvailableError
    from latentlab.mini import models

    weights = tmp_path / "weights"
    weights.mkdir()
    for name in ("mini_decoder.safetensors", "mini_decoder.json", "mini_expert.safetensors", "mini_expert.json",
                 "mini_prior.safetensors", "mini_prior.json"):  # fmt: skip
        (weights / name).write_bytes(b"")  # never read: the check comes first
    monkeypatch.setattr(models, "create_clip", lambda *a, **k: pytest.fail("loaded a model before the check"))
    with pytest.raises(ModelNotAvailableError, match="lacks mini_clip.safetensors"):
        _load("layout_expert").main(["--weights", str(weights), "--sets", "7000", "--n", "1", "--emoji", "0"])


def test_quality_removes_only_an_earlier_runs_outputs(tmp_path, monkeypatch):
    mod = _load("quality")
    out = tmp_path / "q"
    for name in ("morph03/modes.png", "chain_1/frame_00000.png", "chain_1.gif", "chain_key2.png", "edit07.png",
                 "variations.png", "path_variations.png", "results.json", "notes.txt", "mine/a.png", "morph.png",
                 "chain_x/a.png", "editor.png"):  # fmt: skip
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(b"old")

    class Stop(Exception):
        pass

    def stop(*a, **k):
        raise Stop

    def files() -> list[str]:
        return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())

    every = files()
    # models that fail to load (weights not downloaded) leave the earlier run's outputs alone
    monkeypatch.setattr(mod.ll, "create_encoder", stop)
    before = torch.get_num_threads()
    try:
        with pytest.raises(Stop):
            mod.main(["--quick", "--out", str(out)])
        assert files() == every
        monkeypatch.setattr(mod.ll, "create_encoder", lambda *a, **k: None)
        monkeypatch.setattr(mod.ll, "create_decoder", lambda *a, **k: None)
        monkeypatch.setattr(mod, "one_morph", stop)
        with pytest.raises(Stop):
            mod.main(["--quick", "--out", str(out)])
    finally:
        torch.set_num_threads(before)
    assert files() == ["chain_x/a.png", "editor.png", "mine/a.png", "morph.png", "notes.txt"]


def test_train_precision_times_both_precisions_interleaved(tmp_path, monkeypatch, capsys):
    """benchmarks/train_precision.py times CLIP training steps in float32 and bf16, the order
    alternating repeat by repeat after one warm-up step of each, and reports the ratio of the best
    times and what torch says of this CPU's bfloat16."""
    mod = _load("train_precision")
    before = torch.get_num_threads()
    order = []  # (no real steps: test_train_precision_steps_change_the_clip runs one)
    monkeypatch.setattr(mod, "_step", lambda *a: order.append(a[-1]) or time.sleep(0.001))
    try:
        res = mod.main(["--batch", "4", "--repeats", "3", "--steps", "2", "--json", str(tmp_path / "r.json")])
    finally:
        torch.set_num_threads(before)
    assert order == [False, True] + [False] * 2 + [True] * 2 + [True] * 2 + [False] * 2 + [False] * 2 + [True] * 2
    assert json.loads((tmp_path / "r.json").read_text()) == res
    assert res["bf16_over_fp32"] == pytest.approx(res["bf16_s_per_step"] / res["fp32_s_per_step"])
    assert res["fp32_s_per_step"] > 0 and res["bf16_s_per_step"] > 0 and res["batch"] == 4
    from latentlab.mini.train import _cpu_has_bf16

    assert res["cpu_has_bf16"] is _cpu_has_bf16()
    assert "bf16 / fp32 =" in capsys.readouterr().out


def test_train_precision_steps_change_the_clip():
    """Each timed step is a real training step: both towers' weights move."""
    mod = _load("train_precision")
    from latentlab.mini.models import WEIGHTS_DIR, create_clip

    model, _, tok = create_clip(WEIGHTS_DIR / "mini_clip.safetensors")
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    mod._step(model, opt, torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)), tok(["a", "b", "c", "d"]), True)
    moved = {k.split(".")[0] for k, v in model.named_parameters() if not torch.equal(v.detach(), before[k])}
    assert "visual" in moved and "transformer" in moved


# -- found by the property audit of 2026-12-07: the benchmark scripts' arguments and computations ------------


@pytest.fixture
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


class Clock:
    """A fake ``time`` module: ``perf_counter`` reads ``now``, which the fakes advance."""

    def __init__(self) -> None:
        self.now = 100.0

    def perf_counter(self) -> float:
        return self.now


# -- refusals before any work ------------------------------------------------------------------


def _refused(mod, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        mod.main(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("bad, why", [
    (["--json", "/nonexistent-folder/x.json"], "argument --json: /nonexistent-folder/x.json: give a file in an existing folder"),
    (["--json", "."], "argument --json: .: give a file in an existing folder"),
    (["--threads", str(2**31)], "argument --threads: must be an integer in [1, 2**31 - 1]"),
])  # fmt: skip
def test_mini_speed_refuses_an_unwritable_json_before_timing(bad, why, capsys, monkeypatch, keep_threads):
    mod = _load("mini_speed")
    monkeypatch.setattr(mod, "time_morph", lambda *a, **k: pytest.fail("timed the morph before refusing"))
    assert why in _refused(mod, ["--frames", "3", "--no-demo", *bad], capsys)


@pytest.mark.parametrize("bad, why", [
    (["--json", "/nonexistent-folder/x.json"], "argument --json: /nonexistent-folder/x.json: give a file in an existing folder"),
    (["--threads", str(2**31)], "argument --threads: must be an integer in [1, 2**31 - 1]"),
])  # fmt: skip
def test_train_precision_refuses_an_unwritable_json_before_timing(bad, why, capsys, monkeypatch, keep_threads):
    mod = _load("train_precision")
    monkeypatch.setattr(mod, "measure", lambda *a, **k: pytest.fail("measured before refusing"))
    assert why in _refused(mod, ["--batch", "2", *bad], capsys)


@pytest.mark.parametrize("bad, why", [
    (["--single-seed", "-1"], "--single-seed: a seed must be an integer in [0, 2**63 - 2), got -1"),
    (["--single-seed", str(2**63)], "--single-seed: a seed must be an integer in [0, 2**63 - 2)"),
    (["--sets", "7000,-5"], "--sets: a seed must be an integer in [0, 2**63 - 2), got -5"),
    (["--json", "/nonexistent-folder/x.json"], "argument --json: /nonexistent-folder/x.json: give a file in an existing folder"),
    (["--threads", str(2**31)], "argument --threads: must be an integer in [1, 2**31 - 1]"),
])  # fmt: skip
def test_layout_expert_refuses_bad_seeds_and_json_before_loading(bad, why, capsys, monkeypatch, keep_threads):
    """A negative or 64-bit-overflowing --single-seed failed only after every relation set was
    decoded; a bad --json after the whole run."""
    from latentlab.mini import models

    mod = _load("layout_expert")
    monkeypatch.setattr(models, "create_clip", lambda *a, **k: pytest.fail("loaded models before refusing"))
    assert why in _refused(mod, ["--sets", "7000", "--n", "1", "--steps", "1", "--emoji", "0", *bad], capsys)


@pytest.mark.parametrize("bad, why", [
    (["--seed", "-1"], "--seed must be an integer in [0, 2**63 - 2), got -1"),
    (["--seed", str(2**64)], "--seed must be an integer in [0, 2**63 - 2)"),
    (["--json", "/nonexistent-folder/x.json"], "argument --json: /nonexistent-folder/x.json: give a file in an existing folder"),
    (["--sheet", "sheet"], "--sheet sheet: name a picture file PIL can write"),
    (["--sheet", "sheet.txt"], "--sheet sheet.txt: name a picture file PIL can write"),
    (["--sheet", "/nonexistent-folder/s.png"], "argument --sheet: /nonexistent-folder/s.png: give a file in an existing folder"),
    (["--threads", str(2**31)], "argument --threads: must be an integer in [1, 2**31 - 1]"),
])  # fmt: skip
def test_upscaler_refuses_bad_seed_json_and_sheet_before_loading(bad, why, capsys, monkeypatch, keep_threads):
    """--sheet without a picture extension failed in PIL's save, after the whole run."""
    from latentlab.mini.runtime import MiniDecoder

    mod = _load("upscaler")
    monkeypatch.setattr(MiniDecoder, "from_pretrained", lambda *a, **k: pytest.fail("loaded a model before refusing"))
    assert why in _refused(mod, ["--n", "1", *bad], capsys)


@pytest.mark.parametrize("bad, why", [
    (["--seed", str(2**63)], "--seed must be an integer in [-2**63, 2**63 - "),
    (["--seed", str(2**63 - 2)], "--seed must be an integer in [-2**63, 2**63 - "),  # per-frame noise: seed + k
    (["--preset", "no-such-preset"], "--preset: unknown preset 'no-such-preset'"),
    (["--threads", str(2**31)], "argument --threads: must be an integer in [1, 2**31 - 1]"),
])  # fmt: skip
def test_quality_refuses_seed_and_preset_before_removing_earlier_outputs(bad, why, capsys, monkeypatch, tmp_path, keep_threads):
    """These removed an earlier run's results.json and contact sheets, then failed in the
    first render / the preset lookup."""
    mod = _load("quality")
    monkeypatch.setattr(mod.ll, "create_encoder", lambda *a, **k: pytest.fail("loaded a model before refusing"))
    (tmp_path / "results.json").write_text("{}")
    assert why in _refused(mod, ["--quick", "--out", str(tmp_path), *bad], capsys)
    assert (tmp_path / "results.json").is_file()


def test_quality_names_an_out_that_is_a_file(capsys, monkeypatch, tmp_path, keep_threads):
    mod = _load("quality")
    monkeypatch.setattr(mod.ll, "create_encoder", lambda *a, **k: pytest.fail("loaded a model before refusing"))
    taken = tmp_path / "taken"
    taken.write_text("mine")
    for out in (taken, taken / "sub"):  # was a raw FileExistsError / NotADirectoryError
        assert f"--out {out}: cannot make that folder" in _refused(mod, ["--quick", "--out", str(out)], capsys)
    assert taken.read_text() == "mine"


@pytest.mark.parametrize("bad, why", [
    (["--seed", str(2**63)], "--seed must be an integer in [-2**63, 2**63)"),
    (["--guidance", "nan"], "--guidance must be a finite number >= 0, got nan"),
    (["--guidance", "-1"], "--guidance must be a finite number >= 0, got -1.0"),
    (["--threads", str(2**31)], "argument --threads: must be an integer in [1, 2**31 - 1]"),
])  # fmt: skip
def test_render_speed_refuses_seed_and_guidance_before_building(bad, why, capsys, monkeypatch, keep_threads):
    """A real-size model takes minutes to build: a seed past 64 bits (a raw ValueError from
    torch) or a NaN guidance failed only after it."""
    mod = _load("render_speed")
    monkeypatch.setattr(mod, "build_decoder", lambda *a, **k: pytest.fail("built a model before refusing"))
    assert why in _refused(mod, ["--tiny", "--model", "tiny", "--frames", "2", "--steps", "1", *bad], capsys)


# -- render_speed: what the row says -------------------------------------------------------------


def _speed_args(**kw):
    import argparse

    base = dict(dtype="float32", size=None, device="cpu", seed=0, steps=1, guidance=None, frames=4, batch_size=2,
                recommended="ddim", rec_steps=1, channels_last=False, compile=False, compile_mode=None, repeats=1)  # fmt: skip
    return argparse.Namespace(**{**base, **kw})


def test_render_speed_row_ratios_and_pixel_difference(monkeypatch):
    """The row's per-frame times are the best times over the frames, the speed-ups the loop's
    time over each latentlab column's, and the pixel difference the loop's frames against
    latentlab's (a fake decoder, a loop that is latentlab's render with one pixel moved by 50,
    and a timer that reports 8 s, 2 s and 4 s for the three columns)."""
    mod = _load("render_speed")
    dec = FakeDecoder()
    monkeypatch.setattr(mod, "build_decoder", lambda *a, **k: dec)

    def loop(d, z, noise, *, seed, steps, guidance):
        out = mod.render(z, d, seed=seed, steps=steps, guidance_scale=guidance, batch_size=2, progress=False).copy()
        v = int(out[0, 0, 0, 0])
        out[0, 0, 0, 0] = v + 50 if v < 128 else v - 50
        return out

    monkeypatch.setattr(mod, "mini_loop", loop)  # "mini": the recommended column is the same decoder
    times = [8.0, 2.0, 4.0]

    def timed(fn, device, repeats):
        return fn(), times.pop(0)

    monkeypatch.setattr(mod, "timed", timed)
    row = mod.run_case("mini", _speed_args())
    assert times == []
    assert row["loop_s_per_frame"] == 2.0 and row["ours_s_per_frame"] == 0.5 and row["rec_s_per_frame"] == 1.0
    assert row["speedup"] == 4.0 and row["rec_speedup"] == 2.0
    assert row["max_pixel_diff"] == 50 and row["alone_vs_batch_max_diff"] == 0
    assert "| 2.000 | 0.500 | 2.00 | 4.00x | 50 | 0 | ddim 1 | 1.000 | 2.00x |" in mod.table_row(row)


def test_render_speed_timed_keeps_the_best_of_the_repeats(monkeypatch):
    mod = _load("render_speed")
    clock = Clock()
    monkeypatch.setattr(mod, "time", clock)
    runs = iter([3.0, 1.0, 2.0])

    def fn():
        clock.now += next(runs)
        return "frames"

    assert mod.timed(fn, "cpu", 3) == ("frames", 1.0)


def test_render_speed_row_names_the_size_it_rendered(monkeypatch):
    """mini renders at its own 64 px: --size 128 was reported as 128 px in the table."""
    mod = _load("render_speed")
    dec = FakeDecoder()  # resolution 8, whatever size is asked for
    monkeypatch.setattr(mod, "build_decoder", lambda *a, **k: dec)
    row = mod.run_case("mini", _speed_args(size=128, frames=2, recommended="off"))
    assert row["size"] == dec.resolution == 8


# -- mini_speed: best of the repeats, the order, the bars ---------------------------------------


class _MorphDecoder:
    """Stands in for ``create_decoder("mini")``: each render advances the fake clock by the
    next of its durations and returns frames of one grey level."""

    default_steps, default_batch_size = 25, 16

    def __init__(self, clock, calls, durations, level):
        self.name, self.clock, self.calls, self.durations, self.level = "default", clock, calls, durations, level

    def optimize(self, channels_last):
        self.name = "channels_last"
        return self

    def render(self, path, seed, progress):
        self.calls.append(self.name)
        self.clock.now += self.durations[self.name].pop(0)
        out = np.full((len(path), 64, 64, 3), 100, np.uint8)
        out[0, 0, 0, :] = self.level[self.name]
        return out


def _fake_morph(monkeypatch, mod, durations, level=None):
    import latentlab

    clock, calls = Clock(), []
    level = level or {"default": 100, "channels_last": 100}

    class Enc:
        def encode_image(self, images):
            return torch.nn.functional.normalize(torch.randn(2, 8, generator=torch.Generator().manual_seed(0)), dim=-1)

    monkeypatch.setattr(mod, "time", clock)
    monkeypatch.setattr(latentlab, "create_encoder", lambda *a, **k: Enc())
    monkeypatch.setattr(latentlab, "create_decoder", lambda *a, **k: _MorphDecoder(clock, calls, durations, level))
    return calls


def test_mini_speed_morph_best_time_bar_and_interleaving(monkeypatch):
    mod = _load("mini_speed")
    durations = {"default": [70.0, 50.0, 55.0], "channels_last": [40.0, 30.0, 45.0]}
    calls = _fake_morph(monkeypatch, mod, durations, level={"default": 100, "channels_last": 103})
    res = mod.time_morph(48, 3, channels_last=True)
    # the order alternates repeat by repeat, so a change in the machine's load falls on both
    assert calls == ["default", "channels_last", "channels_last", "default", "default", "channels_last"]
    assert res["seconds"] == 50.0 and res["met"] is True  # the best of 3, within the 60 s bar
    c = res["channels_last"]
    assert c["seconds"] == 30.0 and c["time_ratio"] == 0.6  # best over best, < 1: faster
    assert c["max_px_diff"] == 3 and c["share_of_values_differing"] == round(3 / (48 * 64 * 64 * 3), 5)
    _fake_morph(monkeypatch, mod, {"default": [61.0, 65.0], "channels_last": []})
    assert mod.time_morph(48, 2)["met"] is False  # over the bar


def test_mini_speed_demo_bar(monkeypatch):
    import subprocess

    mod = _load("mini_speed")
    clock = Clock()
    seconds = iter([100.0, 130.0])

    def run(cmd, **kw):
        clock.now += next(seconds)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(mod, "time", clock)
    monkeypatch.setattr(mod, "subprocess", types.SimpleNamespace(run=run))
    assert mod.time_demo() == {"seconds": 100.0, "bar_s": 120.0, "met": True}
    assert mod.time_demo() == {"seconds": 130.0, "bar_s": 120.0, "met": False}


# -- train_precision: seconds per step, best of the repeats ---------------------------------------


def test_train_precision_reports_the_best_seconds_per_step(monkeypatch, keep_threads):
    """Each repeat times --steps steps; the figure is the best repeat's time divided by the
    steps (fake steps of known length, two warm-up steps not counted)."""
    mod = _load("train_precision")
    clock = Clock()
    # warm-up fp32, bf16; then repeat 0: fp32 x2, bf16 x2; repeat 1: bf16 x2, fp32 x2
    lengths = iter([9.0, 9.0, 1.0, 1.0, 2.5, 2.5, 4.0, 4.0, 3.0, 3.0])

    def step(*a):
        clock.now += next(lengths)

    from latentlab.mini import models

    model = torch.nn.Linear(1, 1)  # a stand-in CLIP: only its image size and parameters are read
    model.visual = types.SimpleNamespace(image_size=4)
    monkeypatch.setattr(models, "create_clip", lambda *a, **k: (model, None, lambda texts: torch.zeros(len(texts), 3)))
    monkeypatch.setattr(mod, "time", clock)
    monkeypatch.setattr(mod, "_step", step)
    res = mod.measure(batch=2, repeats=2, steps=2, threads=1)
    assert res["fp32_s_per_step"] == 1.0 and res["bf16_s_per_step"] == 2.5 and res["bf16_over_fp32"] == 2.5


# -- the PSNR both benchmarks report ------------------------------------------------------------


@pytest.mark.parametrize("script, fn", [("upscaler", "_psnr"), ("quality", "psnr")])
def test_benchmark_psnr_values(script, fn):
    psnr = getattr(_load(script), fn)
    a = np.zeros((4, 4, 3), np.uint8)
    assert psnr(a, np.full_like(a, 255)) == pytest.approx(0.0, abs=1e-12)  # the largest error: 0 dB
    assert psnr(a, np.full_like(a, 1)) == pytest.approx(20 * math.log10(255.0))  # 48.13 dB
    b = a.copy()
    b[0, 0, 0] = 48  # MSE 48**2 / 48
    assert psnr(a, b) == pytest.approx(10 * math.log10(255.0**2 / 48.0))
    assert psnr(b, a) == psnr(a, b) and psnr(a, a) == pytest.approx(10 * math.log10(255.0**2 / 1e-10))


# -- quality: the summary's counts and means ---------------------------------------------------


def _quality_row(cv_u, cv_e, jump_u, jump_e, cos):
    faith = {f"{m}{end}_{w}": (cos if w == "cos" else 20.0) for m in ("shared", "ddim", "inverted")
             for end in ("", "_end") for w in ("psnr", "cos")}  # fmt: skip
    faith.update({f"inverted_morph_{e}_{w}": 1.0 for e in ("start", "end") for w in ("psnr", "cos")})
    return {"uniform": {"cv": cv_u, "max_jump_over_median": jump_u}, "even": {"cv": cv_e, "max_jump_over_median": jump_e},
            "other_metric": {"uniform": {"cv": 0.5}, "even": {"cv": 0.4}},
            "flicker": {m: {"clip": 0.1} for m in ("shared", "per-frame", "slerp")}, "faithfulness": faith,
            "invert_seconds": 2.0}  # fmt: skip


def test_quality_summary_counts_the_goals():
    """A morph meets a goal at the goal (CV <= 0.15, max jump <= 2x, cosine >= 0.95); even pacing
    "better" is a strictly lower CV."""
    mod = _load("quality")
    rows = [_quality_row(0.30, 0.15, 3.0, 2.0, 0.95), _quality_row(0.10, 0.20, 1.5, 2.5, 0.90),
            _quality_row(0.20, 0.20, 2.0, 1.0, 0.99), _quality_row(0.25, 0.10, 2.5, 1.5, 0.94)]  # fmt: skip
    s = mod.summarise(rows)
    assert s["even_better_cv"] == 2  # not the third morph's equal CV
    assert s["goal_cv_met"] == {"uniform": 1, "even": 2} and s["goal_jump_met"] == {"uniform": 2, "even": 3}
    assert s["goal_cos_met"] == s["goal_cos_met_end"] == s["goal_cos_met_both_ends"] == {"shared": 2, "ddim": 2, "inverted": 2}
    assert s["uniform_cv"] == {"mean": pytest.approx(0.2125), "median": pytest.approx(0.225)}
    assert s["even_cv"] == {"mean": pytest.approx(0.1625), "median": pytest.approx(0.175)}


# -- layout_expert: seconds per frame and their ratio -------------------------------------------


def test_layout_expert_seconds_per_frame_and_cost_ratio(monkeypatch, keep_threads):
    """The cost row is each decoder's timed seconds over its relation frames (the warm-up and
    the single-object prompts not counted), and the ratio expert over alone (fake models on a
    fake clock: the decoder alone takes 1 s a frame, the expert 3 s)."""
    from latentlab.mini import models
    from latentlab.mini.runtime import MiniDecoder, MiniPrior

    mod = _load("layout_expert")
    clock = Clock()

    class Clip:
        def encode_text(self, tokens):
            return torch.randn(len(tokens), 8, generator=torch.Generator().manual_seed(0))

    class Dec:
        default_steps = 25
        expert_config = types.SimpleNamespace(t_min=750)

        def __init__(self, per_frame):
            self.per_frame = per_frame

        def noise_shape(self):
            return (1, 2, 2)

        def decode(self, z, noise, *, steps, captions):
            clock.now += self.per_frame * len(z)
            return np.full((len(z), 64, 64, 3), 255, np.uint8)

    monkeypatch.setattr(mod, "time", clock)
    monkeypatch.setattr(models, "create_clip", lambda *a, **k: (Clip(), None, lambda texts: list(texts)))
    monkeypatch.setattr(MiniDecoder, "from_pretrained", lambda *a, expert, **k: Dec(3.0 if expert else 1.0))
    monkeypatch.setattr(MiniPrior, "from_pretrained", lambda *a, **k: lambda emb, seed, num_samples: emb)
    res = mod.main(["--sets", "7000,7100", "--n", "3", "--emoji", "0", "--steps", "1", "--threads", "1"])
    assert res["alone"]["relation_prompts"] == res["expert"]["relation_prompts"] == 6
    assert res["alone"]["seconds_per_frame"] == 1.0 and res["expert"]["seconds_per_frame"] == 3.0
    assert res["cost_ratio_expert_over_alone"] == 3.0


# -- properties ---------------------------------------------------------------------------------


def test_frame_difference_agrees_with_the_other_benchmarks_psnr():
    """render_speed's frame difference: max >= mean >= 0, PSNR None exactly for identical frames,
    else the same dB as quality's and upscaler's PSNR of the same pair; the recommended steps lie
    in [1, steps]."""
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    rs, q, up = _load("render_speed"), _load("quality"), _load("upscaler")
    frames = arrays(np.uint8, (2, 3, 3, 3))

    @settings(derandomize=True, max_examples=20, deadline=None)
    @given(frames, frames, st.integers(1, 10**6))
    def check(a, b, steps):
        d = rs.frame_difference(a, b)
        assert d["max"] >= d["mean"] >= 0 and d["max"] == int(np.abs(a.astype(int) - b.astype(int)).max())
        if np.array_equal(a, b):
            assert d["psnr_db"] is None
        else:
            assert d["psnr_db"] == pytest.approx(q.psnr(a, b)) == pytest.approx(up._psnr(a, b))
        assert 1 <= rs.recommended_steps(steps) <= steps

    check()


def test_inversion_steps_measures_the_redraws_of_the_inverted_noise(tmp_path, keep_threads, capsys):
    """benchmarks/inversion_steps.py: one row per (refine, guidance, steps), the mean absolute error
    of the five pictures' redraws; at 4 steps the inverted noise alone redraws them closely (the
    inversion before 2026-12-07 decided the clamp at t = 999 from a value divided by 5e-5: 119
    levels off there, 9 since)."""
    mod = _load("inversion_steps")
    rows = mod.main(["--steps", "4", "--guidance", "1", "--json", str(tmp_path / "r.json")])
    assert [(r["refine"], r["guidance"], r["steps"]) for r in rows] == [(0, 1.0, 4)]
    assert set(rows[0]["per_picture"]) == {"scene100", "scene101", "scene110", "mobile_phone_twemoji", "telephone_noto"}
    assert rows[0]["mae"] < 30, rows
    assert json.loads((tmp_path / "r.json").read_text()) == rows
    assert "refine=0 guidance=1  4: " in capsys.readouterr().out
    for argv in (["--guidance", "nan"], ["--refine", "-1"], ["--steps", "0"], ["--json", str(tmp_path)],
                 ["--steps", "4", "1001"]):  # more than the decoder's 1000 training timesteps: refused before measuring 4
        with pytest.raises(SystemExit):
            mod.main(argv)
    assert "--steps takes at most 1000" in capsys.readouterr().err


# -- the audit of 2026-12-07 (session 37): library limits checked before any work, commands quoted --------


def _usage_error(mod, argv, capsys) -> str:
    """``mod.main(argv)`` must stop with argparse's usage error (exit 2); returns what it printed."""
    with pytest.raises(SystemExit) as exc:
        mod.main(argv)
    assert exc.value.code == 2, exc.value.code
    return capsys.readouterr().err


# -- quality: the limits of the library, before an earlier run's outputs are removed ---------------


@pytest.mark.parametrize("bad, why", [
    (["--coarse", "100001"], "--coarse must be in [1, 100000], got 100001"),
    (["--frames", "100002"], "(both at most 100001), got 100002 and 3"),
    (["--flicker-frames", "100002"], "(both at most 100001), got 7 and 100002"),
    (["--steps", "1001"], "--steps must be at most 1000"),
])  # fmt: skip
def test_quality_refuses_library_limits_before_removing_earlier_outputs(bad, why, capsys, monkeypatch, tmp_path,
                                                                        keep_threads):  # fmt: skip
    """These passed the script's checks, removed an earlier run's results.json and contact
    sheets, and then failed as a raw ArgumentError traceback (pacing's coarse, a Segment's
    frames, the sampler's steps)."""
    mod = _load("quality")
    monkeypatch.setattr(mod.ll, "create_encoder", lambda *a, **k: pytest.fail("loaded a model before refusing"))
    (tmp_path / "results.json").write_text("{}")
    assert why in _usage_error(mod, ["--quick", "--out", str(tmp_path), *bad], capsys)
    assert (tmp_path / "results.json").is_file()


# -- layout_expert, upscaler: steps past the decoder's timesteps, a negative count -----------------


@pytest.mark.parametrize("bad, why", [
    (["--steps", "1001"], "--steps must be at most 1000"),
    (["--emoji", "-1"], "--emoji must be >= 0 (0: none), got -1"),  # was taken for 0 without a word
])  # fmt: skip
def test_layout_expert_refuses_steps_and_negative_emoji_before_loading(bad, why, capsys, monkeypatch, keep_threads):
    from latentlab.mini import models

    mod = _load("layout_expert")
    monkeypatch.setattr(models, "create_clip", lambda *a, **k: pytest.fail("loaded models before refusing"))
    assert why in _usage_error(mod, ["--sets", "7000", "--n", "1", "--emoji", "0", *bad], capsys)


def test_upscaler_refuses_steps_past_the_timesteps_before_loading(capsys, monkeypatch, keep_threads):
    """--steps 5000 was a raw ArgumentError after the models loaded and the reconstructions ran."""
    from latentlab.mini.runtime import MiniDecoder

    mod = _load("upscaler")
    monkeypatch.setattr(MiniDecoder, "from_pretrained", lambda *a, **k: pytest.fail("loaded a model before refusing"))
    assert "--steps must be at most 1000" in _usage_error(mod, ["--n", "1", "--steps", "1001"], capsys)


# -- mini_speed: --frames as a usage error, both ends ---------------------------------------------


@pytest.mark.parametrize("frames", ["1", "100002"])
def test_mini_speed_refuses_frames_out_of_range_before_loading(frames, capsys, monkeypatch, keep_threads):
    """100002 was a raw ArgumentError about ``Segment.frames ... got 100001`` after the models loaded."""
    import latentlab

    mod = _load("mini_speed")
    monkeypatch.setattr(latentlab, "create_encoder", lambda *a, **k: pytest.fail("loaded a model before refusing"))
    with pytest.raises(SystemExit) as exc:
        mod.main(["--no-demo", "--frames", frames])
    assert f"--frames must be in [2, 100001], got {frames}." == exc.value.code


def test_mini_speed_times_the_demo_on_the_latentlab_it_timed_the_morph_on(monkeypatch, tmp_path):
    """The demo ran with the checkout as its working directory, so `-m latentlab.demo` imported
    the checkout's package even where this process (and its morph) had imported another one
    (an installed copy, or `PYTHONPATH=<old copy>`): the two bars of one run measured different
    code. Here the imported latentlab is made to look as if it lived elsewhere."""
    import latentlab

    mod = _load("mini_speed")
    elsewhere = tmp_path / "site" / "latentlab" / "__init__.py"
    monkeypatch.setattr(latentlab, "__file__", str(elsewhere))
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    seen = []

    def run(cmd, *, cwd, env, **kw):
        seen.append((Path(cwd), env["PYTHONPATH"].split(os.pathsep)))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(mod, "subprocess", types.SimpleNamespace(run=run))
    mod.time_demo()
    cwd, path = seen[0]
    assert path == [str(tmp_path / "site"), "/somewhere/else"]
    assert not (cwd / "latentlab").exists()  # `-m` puts the working directory before PYTHONPATH


# -- render_speed: what the build would refuse, before the build -----------------------------------


@pytest.mark.parametrize("bad, why", [
    (["--device", "foo"], "--device foo: not a torch device"),
    (["--frames", "100002"], "--frames must be at most 100001, got 100002"),
    (["--steps", "1001"], "--steps must be at most 1000"),
    (["--rec-steps", "1001"], "--rec-steps must be at most 1000"),
    (["--size", "48"], "--size 48: tiny renders frames whose side is a multiple of 32, e.g. 64"),
    (["--model", "kandinsky-2.2", "--size", "96"], "--size 96: kandinsky-2.2 renders frames whose side is a multiple of 64,"),
])  # fmt: skip
def test_render_speed_refuses_device_steps_and_size_before_building(bad, why, capsys, monkeypatch, keep_threads):
    """A real-size model takes minutes to build (and a lent GPU has minutes in all): each of
    these was refused only after it (a raw diffusers ValueError for the steps)."""
    mod = _load("render_speed")
    monkeypatch.setattr(mod, "build_decoder", lambda *a, **k: pytest.fail("built a model before refusing"))
    assert why in _usage_error(mod, ["--tiny", "--model", "tiny", "--frames", "2", "--steps", "1", *bad], capsys)


def test_render_speed_refuses_a_gpu_index_torch_does_not_see(capsys, monkeypatch, keep_threads):
    mod = _load("render_speed")
    monkeypatch.setattr(mod.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(mod.torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(mod.torch.cuda, "get_device_name", lambda *a: pytest.fail("asked for the GPU's name"))
    monkeypatch.setattr(mod, "build_decoder", lambda *a, **k: pytest.fail("built a model before refusing"))
    why = _usage_error(mod, ["--model", "tiny", "--device", "cuda:1", "--frames", "2", "--steps", "1"], capsys)
    assert "--device cuda:1: torch sees 1 CUDA GPU(s) here (cuda:0 to cuda:0)" in why
    monkeypatch.setattr(mod.torch.cuda, "device_count", lambda: 0)  # (CUDA "available", no GPU: said in words)
    why = _usage_error(mod, ["--model", "tiny", "--device", "cuda:0", "--frames", "2", "--steps", "1"], capsys)
    assert "torch reports CUDA available with no GPU (check CUDA_VISIBLE_DEVICES); use --device cpu" in why


def test_render_speed_checks_each_samplers_step_limit_before_any_column(monkeypatch):
    """Steps within 1000 but past the sampler's own limit (DDIM with steps_offset=1: 999;
    DPM-Solver++: 998) failed in the diffusers loop (a raw ValueError), or for the recommended
    column after the first two columns were timed."""
    import argparse

    mod = _load("render_speed")
    dec = FakeDecoder()
    dec.max_steps = lambda: 999
    monkeypatch.setattr(mod, "build_decoder", lambda *a, **k: dec)
    monkeypatch.setattr(mod, "sibling", lambda d, scheduler: types.SimpleNamespace(max_steps=lambda: 998))
    monkeypatch.setattr(mod, "diffusers_loop", lambda *a, **k: pytest.fail("timed a column before refusing"))
    args = dict(dtype="float32", size=None, device="cpu", seed=0, steps=1, guidance=None, frames=2, batch_size=2,
                recommended="dpm++", rec_steps=1, channels_last=False, compile=False, compile_mode=None, repeats=1)  # fmt: skip
    with pytest.raises(SystemExit, match="--steps 1000: tiny's ddim sampler takes at most 999 steps"):
        mod.run_case("tiny", argparse.Namespace(**{**args, "steps": 1000}))
    with pytest.raises(SystemExit, match=r"--rec-steps 999: tiny's dpm\+\+ sampler takes at most 998 steps"):
        mod.run_case("tiny", argparse.Namespace(**{**args, "rec_steps": 999}))


def test_render_speed_json_is_never_left_cut_short(monkeypatch, tmp_path, keep_threads):
    """--json is rewritten after each row "so a cut-off run keeps them": a run killed while
    rewriting it (here: the write stops halfway, as a time limit's kill would stop it) left a
    cut-short file, and with it none of the rows finished before."""
    mod = _load("render_speed")
    row = {"model": "tiny", "size": 64, "frames": 2, "steps": 1, "batch_size": 2, "levers": [], "loop_s_per_frame": 1.0,
           "ours_s_per_frame": 0.5, "speedup": 2.0, "max_pixel_diff": 0, "alone_vs_batch_max_diff": 0,
           "loop_peak_gb": None, "ours_peak_gb": None}  # fmt: skip
    monkeypatch.setattr(mod, "run_case", lambda model, args: {**row, "model": model})
    real = Path.write_text
    writes = []

    def write_text(self, text, *a, **k):
        writes.append(self)
        if len(writes) == 1:
            return real(self, text, *a, **k)
        real(self, text[: len(text) // 2], *a, **k)
        raise KeyboardInterrupt  # killed halfway through the second write

    monkeypatch.setattr(Path, "write_text", write_text)
    out = tmp_path / "rows.json"
    with pytest.raises(KeyboardInterrupt):
        mod.main(["--tiny", "--model", "tiny", "--model", "kandinsky-tiny", "--json", str(out)])
    monkeypatch.undo()
    doc = json.loads(out.read_text())
    assert [r["model"] for r in doc["rows"]] == ["tiny"] and doc["complete"] is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.json"]  # no temporary file left


# -- the command a run records: it must reproduce the run --------------------------------------


def test_render_speed_header_quotes_the_command_as_a_shell_reads_it(capsys, monkeypatch, tmp_path, keep_threads):
    """The header's (and --json's) command joined the arguments with spaces: a --json path with
    a space in it read back as two arguments."""
    mod = _load("render_speed")

    def run_case(model, args):
        raise KeyboardInterrupt  # the header and --json are written before the first row

    monkeypatch.setattr(mod, "run_case", run_case)
    out = tmp_path / "my runs" / "rows.json"
    out.parent.mkdir()
    argv = ["--tiny", "--model", "tiny", "--json", str(out)]
    with pytest.raises(KeyboardInterrupt):
        mod.main(argv)
    command = json.loads(out.read_text())["command"]
    assert shlex.split(command) == ["python", "benchmarks/render_speed.py", *argv]
    assert capsys.readouterr().out.splitlines()[0].endswith(f"; command: {command}")


def test_quality_results_quote_the_command_as_a_shell_reads_it(monkeypatch, tmp_path, keep_threads):
    mod = _load("quality")
    out = tmp_path / "my runs"
    monkeypatch.setattr(mod.ll, "create_encoder", lambda *a, **k: object())
    monkeypatch.setattr(mod.ll, "create_decoder", lambda *a, **k: types.SimpleNamespace(default_guidance=3.0))
    monkeypatch.setattr(mod, "one_morph", lambda k, *a: {"name": f"morph{k:02d}", "a": "a", "b": "b", "seconds": 0.0})
    monkeypatch.setattr(mod, "summarise", lambda rows: {})
    monkeypatch.setattr(mod, "table", lambda *a: "")
    monkeypatch.setattr(mod, "ends_table", lambda *a: "")
    argv = ["--quick", "--edit-steps", "0", "--variations", "0", "--no-chain", "--out", str(out)]
    assert mod.main(argv) == 0
    command = json.loads((out / "results.json").read_text())["command"]
    assert shlex.split(command) == ["python", "benchmarks/quality.py", *argv]
