"""The Makefile's set-up as `make demo` runs it, with fake pythons (nothing is installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# -- the Makefile: set-up as `make demo` does it -------------------------------------------------

#: a system python that only makes venvs: their python logs each call to $LOG; with OLD=1 it is a
#: python older than requires-python (its version check fails, and so does pip install -e)
_FAKE_PYTHON = r"""#!/bin/bash
echo "$(basename "$0") $*" >> "$LOG"
if [ "$1 $2" = "-m venv" ]; then
  d="${@: -1}"; rm -rf "$d"; mkdir -p "$d/bin"
  cat > "$d/bin/python" <<EOT
#!/bin/bash
echo "venv \$*" >> "\$LOG"
case "\$*" in
  *version_info*|*"install --quiet -e"*) exit $OLD;;
esac
EOT
  chmod +x "$d/bin/python"
fi
"""


@pytest.fixture
def make_demo(tmp_path):
    """``make demo`` in a copy of the Makefile in a folder whose path has a space, with fake
    pythons on PATH (``python3`` and an old ``python3.8``): returns the calls they logged."""
    if shutil.which("make") is None or shutil.which("bash") is None:
        pytest.skip("needs make and bash")
    work = tmp_path / "a checkout"
    work.mkdir()
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, work / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, old in (("python3", 0), ("python3.8", 1)):
        (bin_dir / name).write_text(_FAKE_PYTHON.replace("$OLD", str(old)))
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "log"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "LOG": str(log)}
    env.pop("MAKEFLAGS", None)

    def run(*make_args: str, ok: bool = True) -> list[str]:
        log.unlink(missing_ok=True)
        proc = subprocess.run(["make", *make_args, "demo"], cwd=work, env=env, capture_output=True, text=True)
        assert (proc.returncode == 0) == ok, proc.stderr
        return [line for line in log.read_text().splitlines() if line != "venv -c "]  # the Makefile's probe

    run.venv = work / ".venv"
    return run


SETUP = ["python3 -m venv --clear .venv", "venv -m pip install --quiet torch==2.14.1 torchvision==0.29.1",
         "venv -m pip install --quiet -e .[test]", "venv -m latentlab.demo"]  # fmt: skip


def test_make_demo_sets_up_again_when_the_venvs_python_is_gone(make_demo, tmp_path):
    """The recipe promises that a .venv whose python does not run ("a moved interpreter") is
    made anew, but it ran only when the stamp was missing or older than pyproject.toml: once
    set up, a .venv whose interpreter had gone failed `make demo` with "No such file or
    directory" every time."""
    assert make_demo() == SETUP  # a fresh checkout
    assert make_demo() == ["venv -m latentlab.demo"]  # twice: no set-up again
    python = make_demo.venv / "bin" / "python"
    python.unlink()
    python.symlink_to(tmp_path / "gone" / "python3.11")  # the interpreter moved away
    assert make_demo() == SETUP


def test_make_demo_makes_anew_a_venv_of_a_python_too_old_for_the_package(make_demo):
    """A first `make PYTHON=python3.8 demo` leaves a .venv of 3.8 (pip refuses the package);
    `make PYTHON=python3.11 demo` then went on installing into that 3.8 venv, failing the
    same way, as the venv's pip runs."""
    calls = make_demo("PYTHON=python3.8", ok=False)
    assert calls[0] == "python3.8 -m venv --clear .venv" and "latentlab.demo" not in calls[-1]
    calls = make_demo()
    assert calls[0].startswith("venv -c import sys") and calls[1:] == SETUP
