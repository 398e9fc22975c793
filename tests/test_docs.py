"""The documentation site builds cleanly and stays in step with the code."""

from __future__ import annotations

import argparse
import doctest
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="needs mkdocs (pip install -e .[docs])")
    pytest.importorskip("mkdocstrings", reason="needs mkdocstrings[python] (pip install -e .[docs])")
    site = tmp_path / "site"
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-4000:]
    for page in ("index.html", "concepts/index.html", "cli/index.html", "api/index.html", "gallery/index.html"):
        assert (site / page).is_file(), page
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("latentlab.ops.slerp", "latentlab.notebook.show", "latentlab.explore.pca_probe", "latentlab.plots.plot_pacing"):
        assert f'id="{name}"' in api, name
    assert ":func:" not in api and "<blockquote" not in api  # docstrings rendered as Markdown
    gallery = (site / "gallery" / "index.html").read_text(encoding="utf-8")
    for gif in sorted((DOCS / "gallery").glob("*.gif")):
        assert (site / "gallery" / gif.name).is_file() and f'src="{gif.name}"' in gallery


def test_cli_reference_documents_every_command_and_option():
    from latentlab.cli import build_parser

    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        assert re.search(rf"^## {name}$", text, re.M), f"docs/cli.md has no section for `{name}`"
        for action in p._actions:
            for opt in action.option_strings:
                if opt.startswith("--") and opt != "--help":
                    assert f"`{opt}" in text, f"docs/cli.md does not document {name} {opt}"
            if action.choices and action.option_strings and not isinstance(action, argparse._SubParsersAction):
                assert "{" + ",".join(map(str, action.choices)) + "}" in text, (
                    f"docs/cli.md lists other choices than {action.option_strings[0]} {{{','.join(action.choices)}}}"
                )


def test_api_page_names_exist_where_it_says():
    import importlib

    import latentlab as ll

    text = (DOCS / "api.md").read_text()
    blocks = re.findall(r":::\s*(latentlab[\w.]*)\s*\n\s*options:\s*\n\s*members:\s*\[([^\]]*)\]", text)
    assert len(blocks) >= 4
    for target, members in blocks:
        mod_name, _, cls = target.rpartition(".") if target.split(".")[-1][0].isupper() else (target, "", "")
        owner = getattr(importlib.import_module(mod_name), cls) if cls else importlib.import_module(mod_name)
        for m in (x.strip() for x in members.split(",")):
            assert hasattr(owner, m), f"{target}.{m} is listed in docs/api.md but does not exist"
    # the names the page shows as top-level (ll.x) are; those it says are only in modules are not
    for m in set(re.findall(r"ll\.(\w+)", text)) - {"__all__"}:
        assert hasattr(ll, m) and m in ll.__all__, m
    helpers = re.search(r"helpers such as (.*?) are\s+only in their modules", text, re.S).group(1)
    for m in re.findall(r"`(\w+)`", helpers):
        assert not hasattr(ll, m), m


def test_notebooks_page_lists_every_notebook():
    text = (DOCS / "notebooks.md").read_text(encoding="utf-8")
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert f"`{nb.name}`" in text, nb.name


def test_gallery_gifs_are_small_and_referenced():
    gifs = sorted((DOCS / "gallery").glob("*.gif"))
    assert gifs, "run python docs/make_gallery.py"
    assert sum(g.stat().st_size for g in gifs) < 400 * 1024
    text = (DOCS / "gallery.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\(gallery/([\w.-]+\.gif)\)", text))
    assert linked == {g.name for g in gifs}


def test_gallery_script_runs(tmp_path, tiny_encoder, tiny_decoder, monkeypatch):
    """docs/make_gallery.py end to end, on the tiny random preset (fast)."""
    make_gallery = _load(DOCS / "make_gallery.py")
    items = make_gallery.make_gallery(tmp_path, steps=1, encoder=tiny_encoder, decoder=tiny_decoder)
    from latentlab.video import read_video

    assert sorted(p.name for p in tmp_path.glob("*.gif")) == sorted(f"{k}.gif" for k in items)
    assert set(items) == {"chain_loop", "interpolation", "text_diff", "variations", "phone_to_telephone",
                          "phone_to_telephone_inverted"}  # fmt: skip
    assert read_video(items["chain_loop"]).shape[0] >= 10  # 4 segments x 3 frames, closing frame dropped
    # main() reports the sizes and fails over the budget
    monkeypatch.setattr(make_gallery, "make_gallery", lambda out, **kw: items)
    assert make_gallery.main(["--out", str(tmp_path), "--budget-kb", "5000"]) == 0
    assert make_gallery.main(["--out", str(tmp_path), "--budget-kb", "1"]) == 1


def test_gallery_script_keeps_out_until_within_budget(tmp_path, monkeypatch, capsys):
    """The GIFs are rendered beside --out and moved in only within the budget: a run over it
    leaves the GIFs in --out (the committed gallery) untouched and no temporary folder behind.
    --preset tiny (noise, which compresses badly) is not held to the budget; --steps 0 is
    refused before any rendering."""
    make_gallery = _load(DOCS / "make_gallery.py")
    out = tmp_path / "gallery"
    out.mkdir()
    (out / "interpolation.gif").write_bytes(b"committed")
    calls = []

    def fake(where, **kw):  # two "GIFs" of 3 KB, written where main() says
        calls.append(kw)
        items = {}
        for name in ("interpolation", "text_diff"):
            items[name] = where / f"{name}.gif"
            items[name].write_bytes(b"x" * 3072)
        return items

    monkeypatch.setattr(make_gallery, "make_gallery", fake)
    assert make_gallery.main(["--out", str(out), "--budget-kb", "5"]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["interpolation.gif"]
    assert (out / "interpolation.gif").read_bytes() == b"committed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gallery"]  # no temporary folder left
    assert make_gallery.main(["--out", str(out), "--preset", "tiny", "--budget-kb", "5"]) == 0  # not held to it
    assert sorted(p.name for p in out.iterdir()) == ["interpolation.gif", "text_diff.gif"]
    assert (out / "interpolation.gif").stat().st_size == 3072
    assert "not applied to --preset tiny" in capsys.readouterr().out
    assert make_gallery.main(["--out", str(tmp_path / "new" / "gallery"), "--budget-kb", "7"]) == 0  # within it
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["gallery"]
    assert len(calls) == 3
    for bad in ("0", "-1"):
        with pytest.raises(SystemExit) as exc:
            make_gallery.main(["--out", str(out), "--steps", bad])
        assert exc.value.code == 2 and "argument --steps: must be an integer >= 1" in capsys.readouterr().err
    assert len(calls) == 3  # refused at parse time


def test_griffe_extension_doctests():
    mod = _load(DOCS / "griffe_doctests.py") if importlib.util.find_spec("griffe") else None
    if mod is None:
        pytest.skip("needs griffe (pip install -e .[docs])")
    result = doctest.testmod(mod)
    assert result.attempted >= 2 and result.failed == 0


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("page", ["README.md", "docs/index.md"])
def test_whole_python_examples_run_as_written(page, tmp_path, monkeypatch):
    """The README's and the docs home page's Python examples, run as printed on the embedded
    model (the README's phone.png is the Twemoji phone shipped in examples/emoji/)."""
    import shutil

    import latentlab as ll

    if ll.presets.weights_status("mini") != "built in":
        pytest.skip("the mini weights are not in this checkout")
    (block,) = _python_blocks(ROOT / page)
    monkeypatch.chdir(tmp_path)
    shutil.copy(ROOT / "examples" / "emoji" / "mobile_phone_twemoji.png", tmp_path / "phone.png")
    scope: dict = {}
    exec(compile(block, f"{page} (python example)", "exec"), scope)
    frames = scope["frames"]
    assert frames.dtype == np.uint8 and frames.shape[0] == len(scope["path"]) and frames.shape[-1] == 3
    assert (tmp_path / "morph.mp4").stat().st_size > 0


def test_custom_preset_example_registers_as_written(monkeypatch):
    """docs/models.md's register_preset example (the other one needs downloaded weights)."""
    from latentlab import presets

    monkeypatch.setattr(presets, "PRESETS", dict(presets.PRESETS))
    block = next(b for b in _python_blocks(DOCS / "models.md") if "register_preset" in b)
    exec(compile(block, "docs/models.md (python example)", "exec"), {})
    assert presets.PRESETS["my-unclip"].space == "openai/ViT-L-14"


def _modules_with_doctests() -> list[str]:
    import pkgutil

    import latentlab

    done_elsewhere = {"latentlab.ops", "latentlab.notebook", "latentlab.explore", "latentlab.plots"}  # test_ops, test_notebook
    return [m.name for m in pkgutil.walk_packages(latentlab.__path__, "latentlab.")
            if not m.name.endswith("__main__") and m.name not in done_elsewhere]  # fmt: skip


@pytest.mark.parametrize("name", _modules_with_doctests())
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    """Every module's docstring examples (published by docs/api.md) run as written; only four
    modules' were run before (an audit, 2026-12-06)."""
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    mod = importlib.import_module(name)
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS, report=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (run its doctest)"
