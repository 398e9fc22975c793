"""The one sweep of stale temporaries (_atomic.remove_temps) removes what each sweep it replaced did;
and docs/performance.md's check of which latentlab a benchmark imports names the right one."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import latentlab
from latentlab import _atomic

ROOT = Path(latentlab.__file__).resolve().parents[1]


# -- the documented check of which latentlab the five benchmarks import --------------------------------


def _documented_check() -> list[str]:
    text = (ROOT / "docs" / "performance.md").read_text()
    section = text.split("### Timing old code against new", 1)[1].split("\n### ", 1)[0]
    cmds = re.findall(r"`([^`]*latentlab\.__file__[^`]*)`", section.replace("\n", " "))
    assert len(cmds) == 1, cmds
    argv = shlex.split(cmds[0])
    assert argv[0] == "python", argv
    return [sys.executable, *argv[1:]]


def test_the_documented_check_names_the_package_a_benchmark_imports_when_run_from_a_checkout(tmp_path):
    # `python -c "import latentlab; ..."` puts the current folder first on sys.path (a script puts
    # its own folder, benchmarks/, which holds no latentlab): run from a checkout's root, where one
    # runs `python benchmarks/mini_speed.py`, it named that checkout, not the PYTHONPATH copy the
    # benchmark times (nor, without PYTHONPATH, the installed package)
    old = tmp_path / "old"
    (old / "latentlab").mkdir(parents=True)
    (old / "latentlab" / "__init__.py").write_text("")
    env = {**os.environ, "PYTHONPATH": str(old)}
    env.pop("PYTHONSAFEPATH", None)
    said = subprocess.run(_documented_check(), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    script = tmp_path / "benchmarks" / "which.py"  # what a script in benchmarks/ imports, from the same folder
    script.parent.mkdir()
    script.write_text("import latentlab; print(latentlab.__file__)\n")
    imports = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert said.returncode == 0, said.stderr
    assert Path(said.stdout.strip()) == Path(imports.stdout.strip()) == old / "latentlab" / "__init__.py"


# -- _atomic.remove_temps removes what the three sweeps it replaced removed -----------------------------


def _old_render_sweep(directory: Path) -> None:  # render._remove_stale_temps before 576e6fe
    for p in directory.glob(".*.tmp*"):
        if _atomic.is_temp_name(p.name) and p.is_file():
            with contextlib.suppress(OSError):
                p.unlink()


def _old_video_sweep(target: Path, older_than: float = 3600.0) -> list[Path]:  # video.remove_stale_temps before 576e6fe
    stem = _atomic.temp_stem(target)
    gone = []
    for p in target.parent.glob(".*.tmp*"):
        if _atomic.is_temp_name(p.name, stem) and p.is_file():
            with contextlib.suppress(OSError):
                if time.time() - p.stat().st_mtime >= older_than:
                    p.unlink()
                    gone.append(p)
    return gone


_KINDS = ["temp of a.mp4", "temp of b.mp4", "temp of a.mp4, ext", "plain", "hidden .x.tmp", "dir like temp",
          "link to file", "link to dir", "dangling link"]  # fmt: skip
_AGES = [-86400.0, -10.0, 0.0, 10.0, 3599.0, 3700.0, 86400.0]  # seconds old (negative: mtime in the future)


def _make(folder: Path, entries, now: float) -> None:
    """The same entries, names and mtimes in every folder it is given."""
    (folder / "elsewhere").mkdir(parents=True)
    (folder / "elsewhere" / "f").write_bytes(b"x")
    for i, (kind, age) in enumerate(entries):
        hexes = f"{i:08x}"
        p = folder / {"temp of a.mp4": f".a.mp4.{hexes}.tmp", "temp of b.mp4": f".b.mp4.{hexes}.tmp.mp4",
                      "temp of a.mp4, ext": f".a.mp4.{hexes}.tmp.mp4", "plain": f"p{i}.png",
                      "hidden .x.tmp": f".x{i}.tmp"}.get(kind, f".a.mp4.{hexes}.tmp")  # fmt: skip
        if kind == "dir like temp":
            p.mkdir()
        elif kind == "link to file":
            p.symlink_to(folder / "elsewhere" / "f")
        elif kind == "link to dir":
            p.symlink_to(folder / "elsewhere")
        elif kind == "dangling link":
            p.symlink_to(folder / "nowhere")
        else:
            p.write_bytes(b"partial")
        if not p.is_symlink():
            os.utime(p, (now - age, now - age))


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) + sorted(p.name for p in (folder / "elsewhere").iterdir())


@settings(derandomize=True, max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_KINDS), st.sampled_from(_AGES)), max_size=8))
def test_the_shared_sweep_removes_what_renders_and_videos_sweeps_removed(tmp_path_factory, entries):
    # render's sweep removed every temporary of its folder, whatever its age; video's only those of
    # its target, untouched for an hour (a future mtime: kept); neither a directory named like one,
    # nor a link to one (a link to a file is removed, not the file)
    import importlib

    render, video = importlib.import_module("latentlab.render"), importlib.import_module("latentlab.video")
    base, now = tmp_path_factory.mktemp("sweep"), time.time()
    folders = {k: base / k for k in ("render-old", "render-new", "video-old", "video-new")}
    for f in folders.values():
        _make(f, entries, now)
    _old_render_sweep(folders["render-old"])
    render._remove_stale_temps(folders["render-new"])
    assert _listing(folders["render-old"]) == _listing(folders["render-new"])
    old_gone = _old_video_sweep(folders["video-old"] / "a.mp4")
    new_gone = video.remove_stale_temps(folders["video-new"] / "a.mp4")
    assert sorted(p.name for p in old_gone) == sorted(p.name for p in new_gone)
    assert _listing(folders["video-old"]) == _listing(folders["video-new"])

