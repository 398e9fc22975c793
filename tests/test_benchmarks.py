"""The benchmarks run (on the CPU, tiny sizes) and check what they claim to check. No
timing is asserted here: speed claims live in docs/performance.md, from real runs."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

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
    monkeypatch.setattr(mod, "time_morph", lambda frames, repeats: morph)
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
    assert printed.startswith("| model | px |") and "| tiny | 64 | 3 | 2 | 3 | - |" in printed


def test_gpu_session_script_dry_run_on_the_cpu(tmp_path):
    """benchmarks/gpu_session.sh is only ever run on a rare lent GPU: this runs its training
    part with the smoke configuration, twice (the second warm-starts from what the first
    exported, as a later session would), so the script cannot rot unseen."""
    import os
    import shutil
    import subprocess
    import sys

    if shutil.which("bash") is None:
        pytest.skip("no bash")
    env = {**os.environ, "CONFIG": "smoke", "MINUTES": "0.05", "N_IMAGES": "16", "BENCH": "0", "PYTHON": sys.executable}
    first = {**env, "OUT": str(tmp_path / "out1"), "RUN": str(tmp_path / "run1")}
    subprocess.run(["bash", "benchmarks/gpu_session.sh"], cwd=ROOT, env=first, check=True, capture_output=True)
    out = tmp_path / "out1"
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["decoder/manifest.json", "decoder/mini_decoder.json", "decoder/mini_decoder.safetensors",
                     "hardware.txt", "train.log"]  # fmt: skip
    rc = json.loads((out / "decoder" / "manifest.json").read_text())["files"]["mini_decoder.safetensors"]["run_config"]
    assert rc["config"]["decoder"]["max_minutes"] == 0.05 and rc["argv"][:2] == ["--stage", "decoder"]
    assert len(files) + 1 <= 8  # with render_speed.txt: within what $OUT brings back
    second = {**env, "OUT": str(tmp_path / "out2"), "RUN": str(tmp_path / "run2"), "INIT": str(out / "decoder")}
    subprocess.run(["bash", "benchmarks/gpu_session.sh"], cwd=ROOT, env=second, check=True, capture_output=True)
    init = json.loads((tmp_path / "run2" / "decoder" / "init.json").read_text())
    assert init["init_from"] == str(out / "decoder" / "mini_decoder.safetensors")
    # SETS reaches the decoder stage: a decoder that reads captions, warm-started from one that does not
    third = {**second, "OUT": str(tmp_path / "out3"), "RUN": str(tmp_path / "run3"), "SETS": "decoder.arch.text_dim=128"}
    subprocess.run(["bash", "benchmarks/gpu_session.sh"], cwd=ROOT, env=third, check=True, capture_output=True)
    assert json.loads((tmp_path / "out3" / "decoder" / "mini_decoder.json").read_text())["text_dim"] == 128


@pytest.mark.parametrize("fail", ["--stage cache", "--stage decoder", "latentlab.mini.export"])
def test_gpu_session_script_stops_at_a_failed_training_step(tmp_path, fail):
    """A failing step of the training part stops the script with a non-zero status and the
    log's tail, before any later step or the benchmark (a fake PYTHON, so it takes no time)."""
    import os
    import shutil
    import subprocess

    if shutil.which("bash") is None:
        pytest.skip("no bash")
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\necho "$*" >> "$CALLS"\n'
                    'case "$*" in *"$FAIL"*) echo "fake failure: $*" >&2; exit 3;; esac\n')  # fmt: skip
    fake.chmod(0o755)
    calls = tmp_path / "calls.txt"
    env = {**os.environ, "PYTHON": str(fake), "CALLS": str(calls), "FAIL": fail, "OUT": str(tmp_path / "out"),
           "RUN": str(tmp_path / "run"), "BENCH": "1"}  # fmt: skip
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
])  # fmt: skip
def test_quality_refuses_zero_counts_instead_of_taking_the_default(bad, why, capsys, monkeypatch, tmp_path):
    mod = _load("quality")
    monkeypatch.setattr(mod.ll, "create_encoder", lambda *a, **k: pytest.fail("loaded a model before refusing"))
    before = torch.get_num_threads()
    try:
        with pytest.raises(SystemExit) as exc:
            mod.main(["--quick", "--out", str(tmp_path), *bad])
    finally:
        torch.set_num_threads(before)
    assert exc.value.code == 2 and why in capsys.readouterr().err


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
