"""The notebooks are documentation that runs: execute each one end to end on the embedded
model, in a scratch copy of its folder, with a kernel on this interpreter."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
KERNEL = "latentlab-test"


def test_there_are_notebooks():
    names = [p.name for p in NOTEBOOKS]
    for expected in ("01_quickstart", "02_text_diffs", "03_interpolation", "04_scripting", "05_real_models"):
        assert any(n.startswith(expected) for n in names), expected


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, (
                f"{path.name} cell {i} has outputs; clear them before committing "
                "(Jupyter: Edit > Clear All Outputs)."
            )


@pytest.fixture(scope="module")
def kernel_manager_factory(tmp_path_factory):
    """Kernels that run on this very interpreter (not whatever 'python3' means on the machine)."""
    pytest.importorskip("nbclient", reason="needs nbclient (pip install -e .[test])")
    pytest.importorskip("ipykernel", reason="needs ipykernel (pip install -e .[test])")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    kdir = tmp_path_factory.mktemp("kernels")
    spec = kdir / KERNEL
    spec.mkdir()
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "latentlab tests",
                "language": "python",
            }
        )
    )

    def make() -> KernelManager:
        ksm = KernelSpecManager(kernel_dirs=[str(kdir)], ensure_native_kernel=False)
        return KernelManager(kernel_name=KERNEL, kernel_spec_manager=ksm)

    return make


def _execute(nb, work: Path, monkeypatch, make_km) -> float:
    """Run every cell of ``nb`` with ``work`` as the working directory; seconds taken."""
    from nbclient import NotebookClient

    # the kernel inherits this environment: the checkout on the path, offline, and torch's
    # threads as the caller left them (pytest only waits while the kernel runs; pinning one
    # thread made notebooks 02-04 take 27% longer on the 2-core machine)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    if os.environ.get("PYTEST_XDIST_WORKER"):  # other test processes share the cores: one thread each
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
    km = make_km()
    client = NotebookClient(nb, km=km, timeout=300, resources={"metadata": {"path": str(work)}})
    start = time.perf_counter()
    try:
        client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    finally:
        # a kernel manager handed in is the caller's to stop (nbclient stops only its own): each
        # notebook's kernel, about 1 GB, had stayed up until pytest ended
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    return time.perf_counter() - start


def _outputs(nb) -> list:
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    return outputs


def _text(outputs) -> str:
    parts = []
    for o in outputs:
        parts.append(o.get("text", ""))
        parts.append(o.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path, monkeypatch, kernel_manager_factory):
    import nbformat

    # a scratch copy of the folder, so renders and images never litter the repository
    before = sorted(p.name for p in (ROOT / "notebooks").iterdir())
    work = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", work)
    nb = nbformat.read(work / path.name, as_version=4)
    took = _execute(nb, work, monkeypatch, kernel_manager_factory)
    outputs = _outputs(nb)
    assert outputs, f"{path.name} produced no output at all"
    if path.stem.startswith("05"):  # no weights, no GPU here: it must say so and stop
        assert "SKIPPED" in _text(outputs) and "skipped:" in _text(outputs)
    else:  # pictures were shown inline
        assert any("image/png" in o.get("data", {}) for o in outputs)
    print(f"{path.name}: {took:.1f} s")
    if path.stem.startswith("04"):
        _run_04_again_with_other_settings(work, monkeypatch, kernel_manager_factory)
    # nothing was written next to the committed notebooks
    assert sorted(p.name for p in (ROOT / "notebooks").iterdir()) == before


@pytest.mark.timeout(600)
def test_real_models_notebook_runs_through_with_the_tiny_preset(tmp_path, monkeypatch, kernel_manager_factory):
    """The cells of 05 that only run with real weights, exercised on the tiny random preset."""
    import nbformat

    path = next(p for p in NOTEBOOKS if p.stem.startswith("05"))
    nb = nbformat.read(path, as_version=4)
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "PRESET =" in c.source)
    assert 'PRESET = "sd21-unclip-h"' in nb.cells[first].source
    nb.cells[first].source = nb.cells[first].source.replace('PRESET = "sd21-unclip-h"', 'PRESET = "tiny"')
    override = "READY = True\nFRAMES, STEPS = 3, 2\nENCODER_KWARGS = {}\nDECODER_KWARGS = {}\ndevice = 'cpu'"
    nb.cells.insert(first + 1, nbformat.v4.new_code_cell(override))
    took = _execute(nb, tmp_path, monkeypatch, kernel_manager_factory)
    text = _text(_outputs(nb))
    assert "done" in text and "tiny-random" in text
    assert (tmp_path / "renders" / "real-text-diff-tiny" / "manifest.json").exists()  # one folder per preset
    print(f"05 on tiny: {took:.1f} s")


def _run_04_again_with_other_settings(work, monkeypatch, kernel_manager_factory) -> None:
    """A second "Run All" of 04 in the same folder, after raising the spec's steps and frames as
    docs/notebooks.md advises: the resume demo used to find its render complete (the interrupt
    never came), and the other render folders refused the changed spec."""
    import nbformat

    again = nbformat.read(next(work.glob("04_*.ipynb")), as_version=4)
    spec_cell = next(c for c in again.cells if c.cell_type == "code" and 'Path("spec.toml").write_text' in c.source)
    for old, new in (("steps = 8 ", "steps = 6 "), ("frames = 4 ", "frames = 3 ")):
        assert old in spec_cell.source, old
        spec_cell.source = spec_cell.source.replace(old, new)
    took = _execute(again, work, monkeypatch, kernel_manager_factory)
    text = _text(_outputs(again))
    assert "interrupted!" in text and "3 frames loaded from disk" in text
    assert json.loads((work / "renders" / "red-to-blue" / "manifest.json").read_text())["steps"] == 6
    print(f"04 again, other settings: {took:.1f} s")
