"""Time outside the models on the CPU render path: imports stay lazy, each file is written a fixed number of times.

A profile (session 39) found the render loop's own work (PNG writes on the
writer thread, manifest and embeddings writes, row hashing) under 1% of a 48-frame mini
render, and the rest of a job outside the models dominated by the import of open_clip and
diffusers. These tests guard the two properties that keep it so; neither times anything."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import FakeDecoder

import latentlab

PKG = Path(latentlab.__file__).resolve().parent  # the package under test (its sources are read, not run)

# the libraries docs say load on first use (latentlab/__init__.py's docstring, STYLE.md habit 6),
# and what they bring with them
HEAVY = {"open_clip", "diffusers", "transformers", "imageio", "imageio_ffmpeg", "matplotlib", "scipy",
         "torchvision", "timm", "accelerate", "safetensors", "IPython", "ipywidgets"}  # fmt: skip


def _module_level_imports(path: Path, package: str) -> tuple[set[str], set[str]]:
    """(third-party top-level names, latentlab modules) that ``path`` imports when it is
    imported: statements at module level (in ``try``/``if`` blocks too, not under
    ``if TYPE_CHECKING``), not those inside functions or classes."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    outside: set[str] = set()
    ours: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                for a in node.names:
                    (ours.add(a.name) if a.name.startswith("latentlab") else outside.add(a.name.split(".")[0]))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                    ours.add(mod)
                    if not node.module:  # from . import x
                        ours.update(f"{mod}.{a.name}" for a in node.names)
                elif node.module.startswith("latentlab"):
                    ours.add(node.module)
                else:
                    outside.add(node.module.split(".")[0])
            elif isinstance(node, ast.If):
                test = ast.unparse(node.test)
                if "TYPE_CHECKING" not in test:
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for h in node.handlers:
                    visit(h.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.With):
                visit(node.body)

    visit(tree.body)
    return outside, ours


def _file_of(module: str) -> Path | None:
    parts = module.split(".")[1:]
    p = PKG.joinpath(*parts)
    if (p / "__init__.py").is_file():
        return p / "__init__.py"
    f = p.with_suffix(".py")
    return f if f.is_file() else None


def _eager_closure(*start: str) -> dict[str, set[str]]:
    """Every latentlab module imported (at module level, transitively) by ``start``, with the
    third-party names each imports at module level."""
    seen: dict[str, set[str]] = {}
    todo = list(start)
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        path = _file_of(mod)
        if path is None:  # a name imported from a module, not a module
            continue
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        outside, ours = _module_level_imports(path, package)
        seen[mod] = outside
        parents = {".".join(m.split(".")[:i]) for m in ours for i in range(1, m.count(".") + 1)}
        todo.extend(ours | parents)
    return seen


def test_import_latentlab_and_the_cli_import_none_of_the_heavy_libraries():
    """``import latentlab`` and ``python -m latentlab`` (its ``--help`` and argument parsing) load
    torch and numpy only: open_clip, diffusers, imageio... load when a model or a video is made
    (they are most of a job's start-up: about 2.6 s and 1.5 s of CPU for open_clip and diffusers
    on the build machine, against about 1.3 s for torch)."""
    eager = _eager_closure("latentlab", "latentlab.__main__", "latentlab.cli")
    assert {"latentlab", "latentlab.cli", "latentlab.render", "latentlab.presets"} <= set(eager)
    heavy = {mod: sorted(names & HEAVY) for mod, names in eager.items() if names & HEAVY}
    assert heavy == {}, f"module-level imports of heavy libraries: {heavy}"


def test_the_import_walker_sees_a_module_level_import():
    """The check above can fail: the walker finds a plain, a ``from`` and a ``try`` import, and
    skips those in functions and under ``TYPE_CHECKING``."""
    import textwrap

    src = textwrap.dedent(
        """
        import open_clip
        from diffusers import X
        try:
            import imageio
        except ImportError:
            pass
        if TYPE_CHECKING:
            import matplotlib
        def f():
            import scipy
        from .render import render
        """
    )
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.py"
        p.write_text(src, encoding="utf-8")
        outside, ours = _module_level_imports(p, "latentlab")
    assert outside == {"open_clip", "diffusers", "imageio"}
    assert ours == {"latentlab.render"}


@settings(derandomize=True, max_examples=6, deadline=None)
@given(T=st.integers(1, 13), batch_size=st.integers(1, 5))
def test_render_writes_each_frame_once_and_the_manifest_a_fixed_number_of_times(T, batch_size):
    """A render into a folder writes each frame's PNG once and its manifest at most three times
    (at the start, when the first batch gives the frame size, when complete), whatever the
    number of frames or batches: no file is rewritten per frame or per batch."""
    import tempfile

    R = sys.modules.get("latentlab.render") or __import__("latentlab.render", fromlist=["render"])
    calls = {"json": [], "png": [], "npy": 0}
    real_json, real_png, real_npy = R._write_json, R._save_png, R._save_npy

    def count_json(path, data):
        calls["json"].append(Path(path).name)
        return real_json(path, data)

    def count_png(frame, path):
        calls["png"].append(Path(path).name)
        return real_png(frame, path)

    def count_npy(path, array):
        calls["npy"] += 1
        return real_npy(path, array)

    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(R, "_write_json", count_json)
        mp.setattr(R, "_save_png", count_png)
        mp.setattr(R, "_save_npy", count_npy)
        z = torch.nn.functional.normalize(torch.randn(T, 8, generator=torch.Generator().manual_seed(T)), dim=-1)
        with tempfile.TemporaryDirectory() as d:
            frames = R.render(z, FakeDecoder(), out_dir=Path(d) / "r", batch_size=batch_size, progress=False)
    finally:
        mp.undo()
    assert frames.shape[0] == T
    assert sorted(calls["png"]) == [f"frame_{k:05d}.png" for k in range(T)]
    assert set(calls["json"]) == {"manifest.json"} and 2 <= len(calls["json"]) <= 3
    assert calls["npy"] == 1
