"""What a user's ``pip install`` gets: the wheel holds every file of the package, the embedded
model's weights, config and NOTICE included, and the ``latentlab`` command."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_holds_the_whole_package_and_the_command(tmp_path):
    pytest.importorskip("setuptools", reason="builds the wheel with this interpreter's setuptools (no network)")
    src = tmp_path / "src"  # a copy, so the build leaves nothing in the checkout
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "latentlab", src / "latentlab", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("latentlab-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    package = {p.relative_to(src).as_posix() for p in (src / "latentlab").rglob("*") if p.is_file()}
    assert package - names == set(), "files of the package missing from the wheel (see [tool.setuptools.package-data])"
    for needed in ("mini_clip.safetensors", "mini_decoder.safetensors", "mini_prior.safetensors", "mini_upscaler.safetensors",
                   "mini_expert.safetensors", "mini_expert.json"):
        assert f"latentlab/mini/weights/{needed}" in names
    assert "latentlab/mini/configs/mini_clip.json" in names and "latentlab/mini/NOTICE" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "latentlab = latentlab.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_every_lazy_name_is_imported_for_type_checkers():
    # py.typed is shipped, but the lazy names (ll.Trajectory, ll.show, ...) came from a module
    # __getattr__ returning Any: type checkers and IDEs saw no real object behind them
    import ast

    import latentlab

    tree = ast.parse(Path(latentlab.__file__).read_text(encoding="utf-8"))
    blocks = [node for node in tree.body if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)]
    assert len(blocks) == 1, "one `if TYPE_CHECKING:` block in latentlab/__init__.py"
    imported = {}
    for node in ast.walk(blocks[0]):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                assert alias.asname == alias.name, f"{alias.name}: import it as itself (`X as X` re-exports it)"
                imported[alias.name] = node.module
    assert imported == latentlab._LAZY


def test_tab_completion_lists_the_api_not_the_imports_of_the_package():
    import latentlab as ll

    names = set(dir(ll))
    assert not names & {"Any", "annotations", "importlib", "TYPE_CHECKING", "typing"}
    assert {"Trajectory", "show", "render", "create_decoder", "__version__", "__file__", "pacing", "decoders"} <= names
    assert set(ll.__all__) <= names
