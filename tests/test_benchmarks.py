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


def test_mini_speed_benchmark_runs_and_reports_its_bars(tmp_path):
    from latentlab.mini import weights_available

    if not weights_available():
        pytest.skip("the mini weights are not in this checkout")
    mod = _load("mini_speed")
    out = tmp_path / "speed.json"
    res = mod.main(["--frames", "3", "--repeats", "1", "--no-demo", "--json", str(out)])
    assert res["morph"]["frames"] == 3 and res["morph"]["frame_shape"][1:] == (64, 64, 3)
    assert res["morph"]["met"] == (res["morph"]["seconds"] <= mod.MORPH_BAR_S)
    assert "demo" not in res and json.loads(out.read_text())["morph"]["frames"] == 3
    with pytest.raises(SystemExit, match="--frames"):
        mod.main(["--frames", "1", "--no-demo"])


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


def test_render_speed_compile_mode_needs_compile(bench, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--tiny", "--compile-mode", "reduce-overhead"])
    assert exc.value.code == 2 and "--compile-mode needs --compile" in capsys.readouterr().err


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
