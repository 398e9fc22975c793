"""The command line against docs/cli.md's contract, on generated argument lists: no traceback,
the documented exit statuses, refusals that change nothing and load no model, and help that
lists what the page documents. Models never load here: loading one ends the command."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latentlab.cli import build_parser, main

PROPS = settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
VERBS = ("presets", "morph", "interpolate", "variations", "generate", "render")


class _ModelLoad(BaseException):
    """Raised where a command would load a model (not an Exception: no handler of main's takes it)."""


@contextlib.contextmanager
def _models_stubbed():
    import latentlab as ll
    from latentlab import presets

    def load(*a, **k):
        raise _ModelLoad

    with pytest.MonkeyPatch.context() as m:
        for mod in (ll, presets):
            for name in ("create_encoder", "create_decoder", "create_prior"):
                m.setattr(mod, name, load)
        yield m


def _project(folder: Path) -> None:
    """Two pictures, a folder, a text file, spec files (good and bad), a gif and a folder of frames
that are not a render's own, and a home folder, in ``folder``."""
    from PIL import Image

    Image.new("RGB", (32, 32), (200, 10, 10)).save(folder / "img.png")
    Image.new("RGB", (32, 32), (10, 10, 200)).save(folder / "b.png")
    (folder / "folder").mkdir()
    (folder / "home").mkdir()
    (folder / "notes.txt").write_text("hi")
    (folder / "spec.toml").write_text('preset = "tiny"\nsteps = 2\nframes = 2\n[[keyframes]]\nimage = "img.png"\n'
                                      '[[keyframes]]\nimage = "b.png"\n')  # fmt: skip
    (folder / "spec.json").write_text('{"preset": "tiny", "keyframes": [{"image": "img.png"}, {"text": "a cat"}]}')
    (folder / "bad.toml").write_text("preset = [\n")
    (folder / "mine.gif").write_bytes((folder / "img.png").read_bytes())  # a file of the user's a video would replace
    (folder / "taken").mkdir()  # a folder holding frames no render of its knows
    (folder / "taken" / "frame_00000.png").write_bytes((folder / "img.png").read_bytes())


def _tree(folder: Path) -> dict[str, tuple[int, int] | None]:
    """Every file's size and time, and which folders there are (a folder's own time changes with
    the lock file a check makes and removes there)."""
    return {str(p.relative_to(folder)): None if p.is_dir() else (p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in folder.rglob("*")}  # fmt: skip


def _run(argv: list[str]) -> tuple[object, str, bool]:
    """``main(argv)`` in a fresh project folder: (exit status, stderr, whether the folder is unchanged);
    the status is "model" where the command reached a model's loading."""
    with tempfile.TemporaryDirectory() as tmp, _models_stubbed() as m:
        folder = Path(tmp)
        _project(folder)
        m.chdir(folder)
        m.setenv("HOME", str(folder / "home"))
        before = _tree(folder)
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            try:
                code: object = main(argv)
            except SystemExit as exc:
                code = exc.code
            except _ModelLoad:
                code = "model"
        return code, err.getvalue(), _tree(folder) == before


def _mixed(good: list[str], bad: list[str]) -> st.SearchStrategy[str]:
    """Mostly (3 in 4) a value the docs accept, else a boundary or malformed one."""
    return st.sampled_from(good * max(1, 3 * len(bad) // len(good)) + bad)


INTS = _mixed(["1", "2", "3"], ["0", "-1", "1001", "100001", str(2**63), str(-(2**63) - 1), str(2**31), "1.5", "", "nan",
                                "x", "--", "٣"])  # fmt: skip
FLOATS = _mixed(["0", "0.5", "1"], ["-1", "2", "nan", "inf", "-inf", "1e309", "1e-320", "240.5", "0.009", "51", "", "x", "--"])
TEXTS = _mixed(["a cat", "café 猫", "text:a cat"], ["", " ", "-a cat", "--", "TEXT:x", "~", "a" * 300, "\udce9",
                                                   "https://x.org/cat.png", ".."])  # fmt: skip
PATHS = _mixed(["img.png", "b.png", "~/../img.png", "text:a cat"],
               ["folder", "nope.png", "notes.txt", "", " ", "~nouser/x.png", "./~nouser/x.png", "a" * 300 + ".png", "img.png/x", "text:",
                "a cat", "https://x.org/cat.png", "spec.toml", "--"])  # fmt: skip
OUTS = _mixed(["mine.gif", "out.mp4", "out.gif", "out.webp"],
              ["out.avi", "out", "folder", "img.png", "", "~/o.gif", "notes.txt/o.gif", "a" * 300 + ".gif",
               "~nouser/o.gif", "./~nouser/o.gif", "\udce9.gif", "--"])  # fmt: skip
DIRS = _mixed(["r", "taken", "new/r", "~/r"],
              ["folder", "img.png", "notes.txt/x", "", " ", "a" * 300, "~nouser/r", "./~nouser/r", ".", "/proc/x", "\udce9", "--"])
SAVES = _mixed(["s.toml", "s.json", "spec.toml"],
               ["s.yaml", "", "folder", "notes.txt/s.toml", "~nouser/s.toml", "a" * 300 + ".toml", "\udce9.toml", "--"])
SPECS = _mixed(["spec.toml", "spec.json"], ["bad.toml", "nope.toml", "img.png", "folder", "", "notes.txt", "~nouser/s.toml", "--"])
PRESETS = st.sampled_from(["tiny", "mini", "nope", "", "sd21-unclip-h", "--"])
CHOICES = st.sampled_from(["shared", "inverted", "even", "fine", "uniform", "clip", "path", "gif", "mp4", "float16",
                           "bfloat16", "x", ""])  # fmt: skip
RENDER_FLAGS = {
    "--preset": PRESETS, "--seed": INTS, "--steps": INTS, "--guidance": FLOATS, "--batch-size": INTS,
    "--device": st.sampled_from(["cpu", "cuda", "", "nope"]), "--dtype": CHOICES, "--threads": INTS,
    "--cpu-offload": None, "--no-upscale": None, "--invert-refine": INTS, "--out-dir": DIRS, "-o": OUTS,
    "--format": CHOICES, "--fps": FLOATS, "--size": INTS, "--hold-first": INTS, "--hold-last": INTS, "--pingpong": None,
    "--name": TEXTS, "--overwrite": None, "--save-spec": SAVES, "-q": None,
}  # fmt: skip
PATH_FLAGS = {
    "--noise": CHOICES, "--eta": FLOATS, "--frames": INTS, "--easing": CHOICES, "--pacing": CHOICES,
    "--pacing-metric": CHOICES, "--pacing-scope": CHOICES, "--pacing-coarse": INTS, "--pacing-passes": INTS,
    "--pacing-tol": FLOATS, "--pacing-max-samples": INTS, "--pacing-min-width": FLOATS, "--pacing-relax": INTS,
}  # fmt: skip
GENERATE_FLAGS = {
    "-n": INTS, "--preset": PRESETS, "--seed": INTS, "--steps": INTS, "--guidance": FLOATS, "--batch-size": INTS,
    "--dtype": CHOICES, "--threads": INTS, "--no-captions": None, "--no-upscale": None, "--out-dir": DIRS,
    "--name": TEXTS, "--size": INTS, "--overwrite": None, "-q": None,
}  # fmt: skip
GRAMMAR = {  # verb: (its flags, its positionals)
    "presets": ({"--json": None}, []),
    "morph": ({**RENDER_FLAGS, **PATH_FLAGS, "--to": TEXTS, "--from": TEXTS, "--theta": FLOATS}, [PATHS]),
    "interpolate": ({**RENDER_FLAGS, **PATH_FLAGS}, [PATHS, PATHS]),
    "variations": ({**RENDER_FLAGS, "-n": INTS, "--eta": FLOATS}, [PATHS]),
    "generate": (GENERATE_FLAGS, [TEXTS]),
    "render": ({**RENDER_FLAGS, **PATH_FLAGS}, [SPECS]),
}
ANY_FLAG = {k: v for flags, _ in GRAMMAR.values() for k, v in flags.items()} | {"--to": TEXTS}


@st.composite
def command_lines(draw):
    """A verb, its positionals and up to six of its flags (now and then another verb's, or one
    twice), each with a good, boundary or malformed value, as `--flag value` or `--flag=value`;
    the positionals between any two of them."""
    verb = draw(st.sampled_from(VERBS))
    flags, positionals = GRAMMAR[verb]
    units = [] if verb != "morph" or not draw(st.integers(0, 5)) else [["--to", draw(TEXTS)]]
    if verb != "presets" and draw(st.booleans()):
        units.append(["--preset", "tiny"])
    names = draw(st.lists(st.sampled_from(sorted(flags)), max_size=6))
    if draw(st.integers(0, 6)) == 0:
        names.append(draw(st.sampled_from(sorted(ANY_FLAG))))
    for name in names:
        values = ANY_FLAG[name] if name not in flags else flags[name]
        if values is None:
            units.append([name])
        elif draw(st.integers(0, 3)) == 0:  # the value joined to its flag: --out-dir=--, -o--
            units.append([f"{name}={draw(values)}" if name.startswith("--") else name + draw(values)])
        else:
            units.append([name, draw(values)])
    for value in [draw(s) for s in positionals]:
        units.insert(draw(st.integers(0, len(units))), [value])
    if draw(st.integers(0, 9)) == 0:
        units.insert(0, [verb, "--threads", draw(INTS)])
    front = ["--threads", draw(INTS)] if draw(st.integers(0, 9)) == 0 else []
    return [*front, verb, *(a for unit in units for a in unit)]


@PROPS
@given(command_lines())
def test_any_command_line_ends_in_a_documented_way(argv):
    """No traceback whatever the arguments: a usage error (2), one `latentlab: error:` line (2),
    a listing (0) or the models' loading; and a refused command leaves the folder as it was."""
    code, err, unchanged = _run(argv)
    assert code in (0, 2, "model"), (code, err)
    assert "Traceback" not in err
    if code == 2:
        lines = [x for x in err.splitlines() if x.strip() and not x.startswith("latentlab: warning:")]
        usage = "usage: latentlab" in err and re.search(r"^latentlab[\w ]*: error: ", err, re.M)
        assert usage or (len(lines) == 1 and lines[0].startswith("latentlab: error: ")), err
        assert unchanged, "a refused command changed the folder"
    if code == 0:
        assert next(a for a in argv if a in VERBS) == "presets", err


LATE_REFUSALS = [  # each refused by a check docs/cli.md places before any model loads, some after --save-spec's own
    ["-o", "mine.gif"], ["--out-dir", "taken"], ["--out-dir", "new/r", "-o", "mine.gif"], ["--name", "taken", "-o", "mine.gif"],
    ["--format", "gif", "--fps", "51"], ["--no-upscale"], ["--preset", "mini", "--dtype", "float16"],
    ["--invert-refine", "3"], ["--preset", "nope"], ["-o", "folder.gif", "--format", "mp4"],
]  # fmt: skip


@settings(PROPS, max_examples=60)
@given(st.sampled_from(["morph", "interpolate", "render", "variations"]), st.sampled_from(LATE_REFUSALS),
       st.lists(st.sampled_from([["--frames", "2"], ["--seed", "3"], ["--steps", "2"], ["-q"], ["--pingpong"]]), max_size=3),
       st.sampled_from(["s.toml", "new/s.json", "spec.toml"]))  # fmt: skip
def test_a_refused_render_writes_nothing_and_loads_no_model(verb, refusal, flags, save):
    """However late its check comes, a refused command leaves every file as it was: no
    --save-spec (written only once the checks pass), no render folder, no video."""
    head = {"morph": ["morph", "img.png", "--to", "a cat"], "interpolate": ["interpolate", "img.png", "text:a cat"],
            "render": ["render", "spec.json"], "variations": ["variations", "img.png"]}[verb]  # fmt: skip
    rest = [a for f in flags for a in f if verb != "variations" or f[0] != "--frames"]
    code, err, unchanged = _run([*head, "--preset", "tiny", *rest, *refusal, "--save-spec", save])
    assert code == 2, err
    assert unchanged, "a refused command changed the folder"


def _valid_value(draw, lo: float, hi: float, integer: bool = True) -> str:
    return str(draw(st.integers(int(lo), int(hi)))) if integer else repr(draw(st.floats(lo, hi, allow_nan=False)))


@st.composite
def valid_command_lines(draw):
    """A command that docs/cli.md accepts: good files, values inside the documented ranges,
    pacing settings only with even pacing, --invert-refine only with inverted noise, eta above 0
    and refining only with mini (the others are refused before any model loads)."""
    verb = draw(st.sampled_from(["morph", "interpolate", "variations", "generate", "render"]))
    preset = draw(st.sampled_from(["tiny", "mini"]))
    if verb == "morph":
        argv = ["morph", draw(st.sampled_from(["img.png", "~/../img.png"])), "--to", draw(st.sampled_from(["a cat", "猫"]))]
        if draw(st.booleans()):
            argv += ["--theta", _valid_value(draw, 0, 1, integer=False)]
    elif verb == "interpolate":
        argv = ["interpolate", *draw(st.lists(st.sampled_from(["img.png", "b.png", "text:a cat"]), min_size=2, max_size=3))]
    elif verb == "variations":
        argv = ["variations", draw(st.sampled_from(["img.png", "text:a cat"])), "-n", _valid_value(draw, 2, 20)]
    elif verb == "render":
        argv = ["render", draw(st.sampled_from(["spec.toml", "spec.json"]))]
    else:
        argv = ["generate", draw(st.sampled_from(["a cat", "x" * 200])), "-n", _valid_value(draw, 1, 20)]
    argv += ["--preset", preset]
    for flag, lo, hi, integer in (("--seed", -(2**63), 2**63 - 100_001, True), ("--steps", 1, 1000, True),
                                  ("--guidance", 0, 1e6, False), ("--threads", 1, 4, True)):  # fmt: skip
        if draw(st.booleans()):
            argv += [flag, _valid_value(draw, lo, hi, integer)]
    if draw(st.booleans()):
        argv += ["--out-dir", draw(st.sampled_from(["r", "deep/er/r", "~/r", "--"]))]  # (joined: --out-dir=--)
        argv[-2:] = [f"{argv[-2]}={argv[-1]}"]
    elif draw(st.booleans()):
        argv += ["--name", draw(st.sampled_from(["n", "a b", "..n"]))]  # (".." alone is refused: no letter or digit)
    if preset == "mini" and draw(st.booleans()):
        argv.append("--no-upscale")
    if verb == "generate":
        if draw(st.booleans()):
            argv += ["--size", _valid_value(draw, 8, 4096), "--batch-size", _valid_value(draw, 1, 64)]
        return argv
    eta_variations = verb == "variations" and argv[1] != "text:a cat" and draw(st.booleans())
    if eta_variations:
        argv += ["--eta", _valid_value(draw, 0.001, 1, integer=False)]
    elif draw(st.booleans()):
        argv += ["--batch-size", _valid_value(draw, 1, 64), "--save-spec", draw(st.sampled_from(["s.toml", "sub/s.json"]))]
    fmt = draw(st.sampled_from(["gif", "webp", "mp4"]))
    argv += ["--format", fmt, "-o", f"out.{fmt}", "--fps", _valid_value(draw, 2, 50, integer=False)]
    if draw(st.booleans()):
        argv += ["--size", _valid_value(draw, 8, 4096), "--hold-first", _valid_value(draw, 0, 100), "--pingpong"]
    if verb != "variations":
        noise = draw(st.sampled_from(["shared", "slerp", "inverted", "per-frame"]))
        argv += ["--noise", noise, "--frames", _valid_value(draw, 1, 1000), "--eta", _valid_value(draw, 0, 1, integer=False)]
        if noise == "inverted" and draw(st.booleans()):
            argv += ["--invert-refine", _valid_value(draw, 0, 50)]
        if noise != "per-frame" and draw(st.booleans()):
            argv += ["--pacing", draw(st.sampled_from(["even", "fine"])), "--pacing-tol", _valid_value(draw, 0, 10, integer=False),
                     "--pacing-min-width", _valid_value(draw, 1e-6, 0.999, integer=False), "--pacing-relax", _valid_value(draw, 0, 10)]  # fmt: skip
    given = dict(zip(argv, argv[1:]))
    if float(given.get("--eta", 0)) > 0 or int(given.get("--invert-refine", 0)) > 0:  # mini's alone (tiny has neither)
        argv[argv.index("--preset") + 1] = "mini"
    return argv


@settings(PROPS, max_examples=60)
@given(valid_command_lines())
def test_a_valid_command_gets_as_far_as_loading_the_models(argv):
    """Nothing docs/cli.md allows is refused by the checks made before the models load."""
    code, err, _ = _run(argv)
    assert code == "model", (code, err)


def _flags(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", text))


def _documented_flags() -> dict[str, set[str]]:
    """Each verb's flags as docs/cli.md documents them: its section's usage line and tables, and
    for the rendering verbs the common options (variations without the path and noise ones)."""
    text = DOCS.read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## (.+?)\n(.*?)(?=^## |\Z)", text, re.M | re.S))

    def table(body: str) -> set[str]:
        return set().union(*(_flags(line.split("|")[1]) for line in body.splitlines() if line.startswith("| `")))

    common = table(sections["Common options"])
    out = {}
    for verb in VERBS:
        usage = re.search(r"```text\n(.*?)```", sections[verb], re.S)
        out[verb] = table(sections[verb]) | _flags(usage.group(1) if usage else "")
        if verb in ("morph", "interpolate", "render"):
            out[verb] |= common
        elif verb == "variations":
            out[verb] |= {f for f in common if f not in ("--frames", "--easing", "--noise", "--eta") and not f.startswith("--pacing")}
    return out


@pytest.mark.parametrize("verb", VERBS)
def test_each_verbs_help_and_its_section_of_the_docs_name_the_same_flags(verb, capsys):
    """`latentlab VERB --help` works and lists every flag docs/cli.md documents for the verb, and
    the verb's section (with the common options where they apply) documents every flag it takes."""
    with pytest.raises(SystemExit) as exc:
        main([verb, "--help"])
    assert exc.value.code == 0
    shown = _flags(capsys.readouterr().out)
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    taken = {o for a in sub.choices[verb]._actions for o in a.option_strings} - {"-h", "--help"}
    documented = _documented_flags()[verb]
    assert documented - shown == set(), f"documented for {verb} but not in its --help"
    assert taken - documented == set(), f"{verb} takes flags its section of docs/cli.md does not document"


def test_another_verbs_flag_is_a_usage_error_before_anything_loads(capsys):
    """A flag the verb does not take (variations --frames, generate --fps, morph --json, ...) is
    refused as a usage error: no verb silently takes it, or an abbreviation of its own for it."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    own = {v: {o for a in p._actions for o in a.option_strings} for v, p in sub.choices.items()}
    base = {"presets": ["presets"], "morph": ["morph", "img.png", "--to", "a cat"], "interpolate": ["interpolate", "img.png", "b.png"],
            "variations": ["variations", "img.png"], "generate": ["generate", "a cat"], "render": ["render", "spec.toml"]}  # fmt: skip
    every = set().union(*own.values())
    with _models_stubbed():
        for verb, flags in own.items():
            for flag in sorted(every - flags):
                with pytest.raises(SystemExit) as exc:
                    main([*base[verb], flag, "1"])
                assert exc.value.code == 2, (verb, flag)
                assert "unrecognized arguments" in capsys.readouterr().err, (verb, flag)


# -- bugs found by the generated command lines ------------------------------------------------


@pytest.mark.parametrize("verb", ["morph", "generate", "render", "variations"])
def test_an_options_value_of_two_dashes_is_that_value_never_a_list(verb):
    """`--name=--`, `-o--`: Python before 3.11.8 and 3.12.3 handed an option's own value "--" over
    as [] (a raw AttributeError or TypeError followed); it is the value "--", as newer ones read it."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    base = {"morph": ["morph", "x.png", "--to", "a"], "generate": ["generate", "a"], "render": ["render", "s.toml"],
            "variations": ["variations", "x.png"]}[verb]  # fmt: skip
    for action in sub.choices[verb]._actions:
        if not action.option_strings or action.nargs is not None or action.type not in (None, str):
            continue
        if action.choices:
            continue
        for arg in ([f"{action.option_strings[-1]}=--"], [action.option_strings[0] + "--"] if len(action.option_strings[0]) == 2 else []):
            if arg:
                assert getattr(parser.parse_args([*base, *arg]), action.dest) == "--", arg


@pytest.mark.parametrize(
    "argv",
    [
        ["morph", "img.png", "--to", "a", "--name=--", "--preset", "nope"],
        ["morph", "img.png", "--to", "a", "-o--"],
        ["generate", "a cat", "-n--"],
        ["generate", "a cat", "--steps=--"],
        ["variations", "img.png", "--eta=--"],
        ["render", "spec.toml", "--threads=--"],
        ["interpolate", "img.png", "b.png", "--save-spec=--"],
    ],
)
def test_an_option_given_two_dashes_is_refused_in_one_line(argv):
    code, err, unchanged = _run(argv)
    assert code == 2 and "Traceback" not in err and unchanged
    assert re.search(r"^latentlab[\w ]*: error: ", err, re.M), err


def test_threads_beyond_what_torch_takes_is_a_usage_error(monkeypatch, capsys):
    """--threads 2147483648 reached torch.set_num_threads, whose raw ValueError ended the command."""
    import torch

    monkeypatch.setattr(torch, "set_num_threads", lambda n: pytest.fail("threads set"))
    for argv in (["--threads", str(2**31), "render", "s.toml"], ["generate", "a cat", "--threads", "9" * 20]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2 and "argument --threads: must be an integer in [1, 2**31 - 1]" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, named",
    [
        (["render", "~nouser/s.toml"], "the spec file '~nouser/s.toml'"),
        (["morph", "~nouser/x.png", "--to", "a cat"], "the image '~nouser/x.png'"),
        (["interpolate", "img.png", "~nouser/x.png"], "the keyframe '~nouser/x.png'"),
        (["variations", "img.png", "--eta", "0.3", "-o", "~nouser/v.gif"], "-o '~nouser/v.gif'"),
        (["generate", "a cat", "--out-dir", "~nouser/r"], "--out-dir '~nouser/r'"),
        (["morph", "img.png", "--to", "a cat", "--save-spec", "~nouser/s.toml"], "--save-spec '~nouser/s.toml'"),
    ],
)
def test_a_home_folder_of_no_such_user_is_refused_naming_the_path(argv, named):
    """`~nouser/x` (a typo of ~/x): pathlib raised a raw RuntimeError "Could not determine home
    directory"; now one line naming the path and how to write a folder called ~nouser."""
    code, err, unchanged = _run([*argv, "--preset", "tiny"])
    assert code == 2 and unchanged and err.count("\n") == 1, err
    assert f"latentlab: error: {named} starts with ~nouser, a home folder, but this system has no user 'nouser'" in err
