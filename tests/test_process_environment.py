"""The process environment: ``python -OO`` and a C locale (ASCII, no UTF-8 mode) for the
``python -m latentlab...`` tools beside the ``latentlab`` command."""

from __future__ import annotations

import importlib
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from test_mini_data import fake_cache  # noqa: F401  (the fixture)

import latentlab

ROOT = Path(latentlab.__file__).resolve().parents[1]  # (the checkout whose latentlab this is)


def _env(**extra: str) -> dict[str, str]:
    """This checkout first on the path; one thread."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **extra}


def _c_locale_env() -> dict[str, str]:
    """LC_ALL=C without UTF-8 mode: files and standard streams default to ASCII."""
    env = {k: v for k, v in _env().items() if not k.startswith(("LC_", "LANG")) and k != "PYTHONIOENCODING"}
    return {**env, "LC_ALL": "C", "PYTHONUTF8": "0"}


@pytest.mark.parametrize("name", ["demo", "mini.data", "mini.train", "mini.evaluate", "mini.export"])
def test_the_module_tools_give_their_help_under_python_OO(name, monkeypatch, capsys):
    """``python -OO`` strips docstrings (the module's ``__doc__`` is None): every ``python -m
    latentlab.<tool> --help`` raised AttributeError on ``None.split`` before parsing a single
    argument."""
    module = importlib.import_module(f"latentlab.{name}")
    monkeypatch.setattr(module, "__doc__", None)  # (what -OO leaves)
    with pytest.raises(SystemExit) as exc:
        module.main(["--help"])
    assert exc.value.code == 0 and f"usage: python -m latentlab.{name}" in capsys.readouterr().out


def test_the_data_index_is_utf8_whatever_the_locale(fake_cache, tmp_path):  # noqa: F811
    """index.jsonl was written and read in the locale's encoding: under LC_ALL=C the CLDR names'
    U+2019 ("rescue worker’s helmet", 193 lines of the real index) could not be written, an index
    built under UTF-8 could not be read (a raw UnicodeDecodeError), and `stats` could not print
    its phone emoji to an ASCII console."""
    cldr = next((fake_cache / "raw" / "cldr").rglob("*.xml"))
    cldr.write_text(cldr.read_text(encoding="utf-8").replace(">telephone<", ">worker\u2019s telephone<"),
                    encoding="utf-8")  # fmt: skip
    code = (
        "import runpy, sys\n"
        "from latentlab.mini import data\n"
        "p = data.build_index(sys.argv[1], verbose=False)\n"
        "print(ascii(sorted({e['name'] for e in data.load_index(p).entries})), flush=True)\n"
        "sys.argv[1:] = ['stats', '--cache-dir', sys.argv[1]]\n"
        "runpy.run_module('latentlab.mini.data', run_name='__main__')\n"  # (as `python -m` runs it)
    )
    run = subprocess.run([sys.executable, "-c", code, str(fake_cache)], env=_c_locale_env(), capture_output=True,
                         timeout=120, cwd=tmp_path, check=False)  # fmt: skip  (cwd: no other checkout comes first on the path)
    assert run.returncode == 0, run.stderr.decode("ascii", "backslashreplace")[-2000:]
    assert b"'worker\\u2019s telephone'" in run.stdout
    assert b"\\U0001f4f1 U+1F4F1: " in run.stdout and b"\\u260e U+260E: " in run.stdout
    raw = (fake_cache / "index.jsonl").read_bytes()
    assert "worker\u2019s telephone".encode() in raw  # UTF-8 on disk, as JSON is
    assert "worker\u2019s telephone" in {json.loads(line)["name"] for line in raw.decode("utf-8").splitlines()}


def test_evaluate_reads_docs_mini_md_as_utf8_whatever_the_locale(tmp_path):
    """docs/mini.md holds a "☎": under LC_ALL=C `python -m latentlab.mini.evaluate --write-docs`
    failed at its first check with a UnicodeDecodeError traceback (and a cp1252 locale would
    have written the doc back as mojibake). Now it reads UTF-8 and gives its own refusal."""
    run = subprocess.run([sys.executable, "-m", "latentlab.mini.evaluate", "--write-docs", "--steps", "3"],
                         env=_c_locale_env(), capture_output=True, timeout=120, cwd=tmp_path, check=False)  # fmt: skip
    err = run.stderr.decode("ascii", "backslashreplace")
    assert run.returncode == 2 and "Traceback" not in err, err[-2000:]
    assert "--steps 3 (default 25)" in err


_IDS = '''
import json
import torch
import latentlab as ll
from latentlab.render import _fingerprint
from latentlab.spec import load_spec


def ids():
    z = torch.nn.functional.normalize(torch.arange(24.0).reshape(3, 8).cos(), dim=-1)
    path = ll.Trajectory(z, frames=5, labels=["a", "cr\\u00e8me", "c"], space="s")
    spec = load_spec({"preset": "tiny", "keyframes": [{"text": "a"}, {"text": "b"}], "seed": 3, "frames": 4,
                      "pacing": "even"})
    settings = {"seed": 3, "noise": "shared", "steps": 2, "guidance_scale": 1.0, "space": "s"}
    return {"trajectory": path.fingerprint(), "spec": json.dumps(spec.to_dict(), default=str),
            "render": _fingerprint(path.embeddings(), settings),
            "cache": ll.EmbeddingCache.make_key("fp", "text", "cr\\u00e8me")}
'''


def test_fingerprints_and_saved_specs_do_not_depend_on_the_hash_seed(tmp_path):
    """Cache keys, fingerprints and the spec a render saves are the same in a process with
    another PYTHONHASHSEED (no hash() of a str, no set order in them): a render resumes, and its
    cached embeddings are found, in the next process."""
    script = tmp_path / "ids.py"
    script.write_text(_IDS + "\nif __name__ == '__main__':\n    print(json.dumps(ids()))\n", encoding="utf-8")
    here = runpy.run_path(str(script))["ids"]()
    seed = "1" if os.environ.get("PYTHONHASHSEED") == "0" else "0"
    run = subprocess.run([sys.executable, str(script)], env=_env(PYTHONHASHSEED=seed), capture_output=True, text=True,
                         timeout=120, cwd=tmp_path, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.splitlines()[-1]) == here
