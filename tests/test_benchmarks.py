"""The benchmarks run (on the CPU, tiny sizes) and check what they claim to check. No
timing is asserted here: speed claims live in docs/performance.md, from real runs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_render_speed_tiny_runs_and_frames_agree(tmp_path, capsys):
    bench = _load("render_speed")
    out = tmp_path / "rows.json"
    assert bench.main(["--tiny", "--model", "tiny", "--frames", "3", "--steps", "2", "--batch-size", "3",
                       "--json", str(out)]) == 0  # fmt: skip
    rows = json.loads(out.read_text())["rows"]
    assert [r["model"] for r in rows] == ["tiny"]
    r = rows[0]
    assert r["frames"] == 3 and r["steps"] == 2 and r["batch_size"] == 3
    assert r["loop_s_per_frame"] > 0 and r["ours_s_per_frame"] > 0
    assert r["max_pixel_diff"] <= 2  # the batched renderer reproduces the per-frame loop
    assert r["alone_vs_batch_max_diff"] <= 2
    printed = capsys.readouterr().out
    assert "| tiny | 64 | 3 | 2 | 3 |" in printed
