"""The command lines of the docs for the ``mini`` model's
modules (``python -m latentlab.mini.{data,train,evaluate,export}``) still parse with the current
argument parsers and config overrides, the docs' recipe for retraining the shipped stack gets
past ``export``, and every flag of those modules says what it does and its default.

Parse only: no command here trains, fetches or measures anything."""

from __future__ import annotations

import argparse
import functools
import importlib
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
_CMD = re.compile(r"python -m latentlab\.mini\.(train|export|evaluate|data)\b")
_MODULES = ("train", "export", "evaluate", "data")


# -- the extractor ------------------------------------------------------------------------


def _snippets(text: str) -> list[tuple[int, str, bool]]:
    """``(line, text, inline)`` of a Markdown page's shell snippets: its code lines (indented
    by four spaces or fenced, ``\\`` continuations joined) and its inline code spans (which may
    wrap lines; whitespace collapsed)."""
    out: list[tuple[int, str, bool]] = []
    in_fence, buf = False, None
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith("```"):
            in_fence = not in_fence
            continue
        if not (in_fence or line.startswith("    ")):
            if buf:
                out.append(buf)
            buf = None
            continue
        s = line.strip()
        buf = (buf[0], f"{buf[1]} {s}", False) if buf else (n, s, False)
        if buf[1].endswith("\\"):
            buf = (buf[0], buf[1][:-1].rstrip(), False)
        else:
            out.append(buf)
            buf = None
    if buf:
        out.append(buf)
    for m in re.finditer(r"(?<!`)`([^`]+)`(?!`)", text):
        out.append((text.count("\n", 0, m.start()) + 1, " ".join(m.group(1).split()), True))
    return out


def doc_commands(text: str) -> list[tuple[int, str, list[str]]]:
    """``(line, module, argv)`` of every ``python -m latentlab.mini.X ...`` command of a page:
    shell variables set in a block (``C="--config cpu-emoji ..."``) expanded, ``&&`` chains split,
    trailing comments dropped, and the docs' placeholders read as such (``<exported folder>`` is
    one word, ``[--set ...]`` optional, ``...`` and ``--set KEY=...`` left out). A bare module
    name in prose (no arguments, inline) is a mention, not a command."""
    env: dict[str, str] = {}
    found = []
    for n, s, inline in _snippets(text):
        m = re.match(r'^([A-Z][A-Z0-9_]*)="([^"]*)"$', s)
        if m:
            env[m.group(1)] = " ".join(m.group(2).replace("\\", " ").split())
            continue
        for part in s.split("&&"):
            part = re.sub(r"\s+#.*$", "", part.strip())
            cmd = _CMD.match(part)
            if not cmd:
                continue
            for k, v in env.items():
                part = part.replace(f"${k}", v)
            part = re.sub(r"<[^<>]+>", "PLACEHOLDER", part)
            words = [w.strip("[]") for w in shlex.split(part)[3:] if w.strip("[]") not in ("", "...")]
            argv: list[str] = []
            for w in words:
                if argv and argv[-1] == "--set" and w.endswith("=..."):
                    argv.pop()
                    continue
                argv.append(w)
            if inline and not argv:
                continue
            found.append((n, cmd.group(1), argv))
    return found


def doc_overrides(text: str) -> list[tuple[int, str, str]]:
    """``(line, key, value)`` of the config overrides the prose names (``clip.word_vectors=true``,
    ``--set data.augment=0.8``, ``expert.cond_drop = 1``), placeholders (``W``, ``P``,
    ``<stage>``, ``...``) left out."""
    out = []
    for n, s, _ in _snippets(text):
        for m in re.finditer(r"(?:^|\s)(?:--set\s+)?([a-z_]+(?:\.[a-z_0-9]+)+)\s?=\s?([^\s\]\"']+)", s):
            key, value = m.groups()
            if key.split(".")[0] not in _CONFIG_KEYS or value in ("...", "W", "P") or value.startswith("<"):
                continue
            out.append((n, key, value))
    return out


_CONFIG_KEYS = ("seed", "threads", "device", "render_size", "clip", "cache", "decoder", "prior", "upscaler", "expert",
                "data")  # fmt: skip


class _Parsed(Exception):
    pass


def _parser_and_args(module: str, argv: list[str] | None, monkeypatch) -> tuple[argparse.ArgumentParser, Any]:
    """The module's own parser (built by its ``main``) and, with ``argv``, what it parses them
    to; ``main`` stops there and runs nothing."""
    mod = importlib.import_module(f"latentlab.mini.{module}")
    real = argparse.ArgumentParser.parse_args

    def stop(self, args=None, namespace=None):
        raise _Parsed(self, None if argv is None else real(self, args, namespace))

    with monkeypatch.context() as m:
        m.setattr(argparse.ArgumentParser, "parse_args", stop)
        with pytest.raises(_Parsed) as e:
            mod.main(argv or [])
    return e.value.args


_BUILT: set[str] = set()


def _check_archs_once(check, cfg, build: bool = True) -> None:
    """``check`` (``train._check_archs``), each set of architectures built once (on the meta device, still
    ~0.1 s a config): the docs' commands share a few."""
    import json

    check(cfg, build=False)  # known keys, values of their types (every time)
    key = json.dumps([cfg.decoder.arch, cfg.expert.arch, cfg.prior.arch, cfg.upscaler.arch, cfg.upscaler.in_size],
                     sort_keys=True, default=list)  # fmt: skip
    if build and key not in _BUILT:
        check(cfg)
        _BUILT.add(key)


def check_command(module: str, argv: list[str], monkeypatch) -> None:
    """Parse ``argv`` as ``python -m latentlab.mini.<module>`` does, and check what it would
    check before any work: the config and its ``--set`` overrides (train), the flags' values
    (evaluate), the stage names (export). SystemExit or ArgumentError where it no longer parses."""
    _, args = _parser_and_args(module, argv, monkeypatch)
    if module == "train":
        from latentlab.mini import train

        name = "smoke" if args.smoke else args.config or "cpu"
        if name not in train.CONFIGS and name.endswith(".json"):
            name = "cpu"  # a run's config.json, not in the checkout: its --set overrides are checked on cpu's
        with monkeypatch.context() as m:
            m.setattr(train, "_check_archs", functools.partial(_check_archs_once, train._check_archs))
            train.get_config(name, args.set)
    elif module == "evaluate":
        from latentlab.mini.evaluate import _check_args

        args.data = None  # a data folder of the author's machine
        _check_args(args)
    elif module == "export" and args.stages:
        from latentlab.mini.export import _NEEDS

        unknown = [s for s in args.stages.split(",") if s and s not in _NEEDS]
        assert not unknown, f"--stages {args.stages}: unknown {unknown}"


def check_override(key: str, value: str) -> None:
    """``--set key=value`` on the ``cpu`` config: the key exists and the value is of its type
    (an ``arch`` value too, checked as the config reads it; whether a net builds from it depends
    on the other settings of the command it came from)."""
    import json

    from latentlab.mini.train import _check_archs, _cpu, _update

    try:
        val = json.loads(value)
    except json.JSONDecodeError:
        val = value
    for part in reversed(key.split(".")):
        val = {part: val}
    cfg = _cpu()
    _update(cfg, val)
    _check_archs(cfg, build=False)


# -- the docs' commands -------------------------------------------------------------------


def test_every_mini_command_line_of_the_docs_parses(monkeypatch):
    """Every ``python -m latentlab.mini.*`` command line in docs/ and the README parses with
    the current parsers and config overrides (a renamed flag, a config name or override key
    that no longer exists, a value out of range: the command and where it is)."""
    failures, seen = [], set()
    for page in PAGES:
        for line, module, argv in doc_commands(page.read_text()):
            seen.add(module)
            try:
                check_command(module, argv, monkeypatch)
            except (SystemExit, Exception) as e:  # noqa: BLE001 (argparse exits; get_config raises ArgumentError)
                failures.append(f"{page.name}:{line}: python -m latentlab.mini.{module} {shlex.join(argv)}: "
                                f"{type(e).__name__} {e}")  # fmt: skip
    assert seen == set(_MODULES)  # the extractor found commands of every module
    assert not failures, "\n".join(failures)


def test_every_config_override_the_docs_name_exists():
    """The overrides docs/mini.md names in prose (``clip.word_vectors=true``, ``data.augment=0.8``,
    ``--set decoder.arch.image_size=32``) are fields of the config, with values of their type."""
    text = (ROOT / "docs" / "mini.md").read_text()
    found = doc_overrides(text)
    keys = {k for _, k, _ in found}
    assert {"clip.word_vectors", "data.augment", "decoder.arch.image_size", "expert.cond_drop"} <= keys
    failures = []
    for line, key, value in found:
        try:
            check_override(key, value)
        except Exception as e:  # noqa: BLE001
            failures.append(f"mini.md:{line}: {key}={value}: {e}")
    assert not failures, "\n".join(failures)


def test_the_extractor_finds_what_the_docs_write_and_can_fail(monkeypatch):
    """The extractor reads continuations, shell variables, ``&&`` chains and placeholders as the
    docs write them, and the check refuses a command that no longer parses."""
    page = "\n".join([
        "Run:",
        "",
        '    C="--config cpu --out RUN \\',
        '       --set threads=2"',
        "    python -m latentlab.mini.train --stage cache $C   # 39 s",
        "    python -m latentlab.mini.train --stage decoder $C --set decoder.steps=5 \\",
        "        [--set decoder.arch.text_layers=2] --set decoder.arch=... ...",
        "    python -m latentlab.mini.data fetch && python -m latentlab.mini.data index",
        "",
        "then `python -m latentlab.mini.evaluate --weights <exported folder>`; `python -m latentlab.mini.train` warns.",
    ])  # fmt: skip
    got = doc_commands(page)
    assert got == [
        (5, "train", ["--stage", "cache", "--config", "cpu", "--out", "RUN", "--set", "threads=2"]),
        (6, "train", ["--stage", "decoder", "--config", "cpu", "--out", "RUN", "--set", "threads=2", "--set",
                      "decoder.steps=5", "--set", "decoder.arch.text_layers=2"]),
        (8, "data", ["fetch"]),
        (8, "data", ["index"]),
        (10, "evaluate", ["--weights", "PLACEHOLDER"]),
    ]  # fmt: skip
    for _, module, argv in got[:1] + got[2:]:
        check_command(module, argv, monkeypatch)
    from latentlab.errors import ArgumentError

    for argv in (["--stage", "cache", "--config", "cpu-emojis", "--out", "R"],
                 ["--stage", "cache", "--out", "R", "--set", "decoder.stepz=3"],
                 ["--stage", "cache", "--out", "R", "--set", "data.augment=1.5"]):  # fmt: skip
        with pytest.raises(ArgumentError):
            check_command("train", argv, monkeypatch)
    with pytest.raises(SystemExit):
        check_command("train", ["--stage", "cache", "--out", "R", "--steps", "3"], monkeypatch)
    with pytest.raises(AssertionError):
        check_command("export", ["--from", "R", "--to", "W", "--stages", "decoder,expret"], monkeypatch)
    with pytest.raises(ArgumentError):
        check_override("clip.word_vector", "true")


def test_the_docs_recipe_for_the_shipped_stack_gets_past_export(monkeypatch):
    """docs/mini.md's recipe (the first block of "Training, exporting, evaluating") exports over
    latentlab/mini/weights, which holds a layout expert; export refuses a decoder that reads no
    captions there (unless --drop-expert). The recipe's `--config cpu` decoder read none, so its
    second command failed as written: it must train a decoder that reads captions, and the
    expert beside it, or drop the expert."""
    from latentlab.mini.train import get_config

    text = (ROOT / "docs" / "mini.md").read_text()
    block = text.split("## Training, exporting, evaluating\n\n", 1)[1].split("\n\n", 1)[0]
    cmds = doc_commands(block)
    trains = [argv for _, module, argv in cmds if module == "train"]
    exports = [argv for _, module, argv in cmds if module == "export"]
    assert trains and len(exports) == 1
    _, args = _parser_and_args("export", exports[0], monkeypatch)
    dst = ROOT / args.dst  # the shipped folder of this checkout
    assert dst.resolve() == (ROOT / "latentlab" / "mini" / "weights").resolve()
    if args.drop_expert or not (dst / "mini_expert.json").is_file():
        return
    stages, text_dim = set(), 0
    for argv in trains:
        _, a = _parser_and_args("train", argv, monkeypatch)
        stages |= {"clip", "cache", "prior", "decoder"} if a.stage == "all" else {a.stage}
        if a.stage in ("all", "decoder"):
            text_dim = get_config(a.config or "cpu", a.set).decoder.arch.get("text_dim", 0)
    assert text_dim > 0, "the recipe's decoder reads no captions: export refuses it beside the shipped layout expert"
    assert "expert" in stages, "the recipe keeps the shipped layout expert beside a decoder of its own"


# -- --help -------------------------------------------------------------------------------


def _parsers(monkeypatch):
    for module in _MODULES:
        ap, _ = _parser_and_args(module, None, monkeypatch)
        yield module, ap
        for action in ap._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield f"{module} {name}", sub


def test_every_mini_flag_has_help_that_shows_its_default(monkeypatch):
    """Each option of ``python -m latentlab.mini.{train,export,evaluate,data [fetch|index|stats]}
    --help`` says what it does, and one with a default (a number, a folder, a list of sources)
    shows that default as it is."""
    failures = []
    for name, ap in _parsers(monkeypatch):
        for a in ap._actions:
            if not a.option_strings or a.help == argparse.SUPPRESS or "-h" in a.option_strings:
                continue
            flag = a.option_strings[-1]
            if not a.help:
                failures.append(f"{name} {flag}: no help")
                continue
            d = a.default
            if a.required or d is None or isinstance(d, bool) or d == []:
                continue
            shown = " ".join(map(str, d)) if isinstance(d, (list, tuple)) else str(d)
            if f"default: {shown}" not in " ".join(a.help.split()):
                failures.append(f"{name} {flag}: help {a.help!r} does not show its default {shown!r}")
    assert not failures, "\n".join(failures)


def test_train_help_says_what_stage_all_trains(monkeypatch, capsys):
    """docs/mini.md: ``all`` leaves out the layout expert and the upscaler; --help says so."""
    with pytest.raises(SystemExit):
        importlib.import_module("latentlab.mini.train").main(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "all: clip, cache, prior, decoder (not upscaler, nor expert)" in shown


def test_export_refuses_an_empty_stages_as_it_refuses_a_comma(tmp_path):
    """``--stages ""`` (an unset ``--stages "$STAGES"``) named no stage, yet exported every stage
    the run trained over ``--to`` (``--stages ,`` is refused: "an export of nothing"); now both
    are refused before anything is read or written."""
    from latentlab.errors import ArgumentError
    from latentlab.mini.export import main

    for stages in ("", ","):
        with pytest.raises(ArgumentError, match="name at least one of clip, decoder"):
            main(["--from", str(tmp_path / "run"), "--to", str(tmp_path / "w"), "--stages", stages])
    assert not (tmp_path / "w").exists()
