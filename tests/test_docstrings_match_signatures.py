"""Docstrings stay in step with the signatures of the public API.

The public API is every name in ``latentlab.__all__`` and every name that docs/api.md
publishes (its ``:::`` blocks), with the public methods of their classes. For each of them:

- every parameter is named in the docstring (in a code span, ````name```` or
  ````name.attr````, or as an entry of its
  ``Args:`` / ``Attributes:`` section; ``**kwargs`` as "keyword arguments" or ````**kwargs````);
- an ``Args:`` section lists only parameters that exist;
- a default the docstring states as a literal (``default 12``, ``[48]``) is the signature's;
- every ``:func:`` / ``:meth:`` / ``:class:`` ... cross-reference names something that exists;
- every keyword argument that docs/*.md, the README and the docstrings pass to a latentlab
  function exists.

(To merge into tests/test_docs.py.)
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from typing import Any, Callable, Iterator


ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# (qualified name, parameter) -> why it needs no word in the docstring
UNDOCUMENTED_OK: dict[tuple[str, str], str] = {}


def _api_page_targets() -> dict[str, Any]:
    """name -> object for every name docs/api.md publishes and every name in ll.__all__."""
    import latentlab as ll

    text = (DOCS / "api.md").read_text(encoding="utf-8")
    out: dict[str, Any] = {}
    blocks = re.finditer(r":::\s*(latentlab[\w.]*)(?:\s*\n\s*options:\s*\n\s*members:\s*\[([^\]]*)\])?", text)
    for m in blocks:
        target, members = m.group(1), m.group(2)
        head, _, last = target.rpartition(".")
        if last[0].isupper():
            owner = getattr(importlib.import_module(head), last)
            out[target] = owner
        else:
            owner = importlib.import_module(target)
        names = [x.strip() for x in members.split(",")] if members else list(
            getattr(owner, "__all__", None) or [n for n in vars(owner) if not n.startswith("_")])
        for n in names:
            out[f"{target}.{n}"] = getattr(owner, n)
    for n in ll.__all__:
        obj = getattr(ll, n)
        if callable(obj):
            out.setdefault(f"{getattr(obj, '__module__', 'latentlab')}.{n}", obj)
    return out


def _documented_callables() -> Iterator[tuple[str, Callable[..., Any], str, type | None]]:
    """(qualified name, function, docstring, owning class) of the public API; a class's
    ``__init__`` is documented by the class docstring (and its own, if any)."""
    seen: set[int] = set()
    for name, obj in _api_page_targets().items():
        if inspect.isclass(obj):
            members = []
            for mn in dir(obj):
                if mn.startswith("_") and mn not in ("__init__", "__call__"):
                    continue
                raw = inspect.getattr_static(obj, mn)
                fn = raw.__func__ if isinstance(raw, (staticmethod, classmethod)) else raw
                if not inspect.isfunction(fn) or not fn.__module__.startswith("latentlab"):
                    continue
                if mn == "__init__":
                    doc = "\n".join(filter(None, [inspect.getdoc(obj), inspect.getdoc(fn)]))
                else:
                    doc = inspect.getdoc(getattr(obj, mn)) or ""  # inherited from the base class where not overridden
                members.append((f"{obj.__module__}.{obj.__qualname__}.{mn}", fn, doc, obj))
            for item in members:
                if id(item[1]) not in seen:
                    seen.add(id(item[1]))
                    yield item
        elif inspect.isfunction(obj) and id(obj) not in seen:
            seen.add(id(obj))
            yield f"{obj.__module__}.{obj.__qualname__}", obj, inspect.getdoc(obj) or "", None


_SECTION = re.compile(r"^(Args|Arguments|Parameters|Attributes)\b[^:\n]*:\s*$")
_ENTRY = re.compile(r"^([*\w][\w, /*]*?)(?: \([^)]*\))?:\s")


def _sections(doc: str) -> dict[str, dict[str, str]]:
    """``{"Args": {name: entry text}, "Attributes": {...}}`` of a Google-style docstring;
    ``a, b:`` and ``a / b:`` entries document each name."""
    out: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    indent = None
    last: list[str] = []
    for line in doc.splitlines():
        m = _SECTION.match(line)
        if m:
            current = out.setdefault("Attributes" if m.group(1) == "Attributes" else "Args", {})
            indent, last = None, []
            continue
        if current is None or not line.strip():
            continue
        col = len(line) - len(line.lstrip())
        if col == 0:
            current = None
            continue
        indent = col if indent is None else indent
        e = _ENTRY.match(line.strip()) if col == indent else None
        if e:
            last = [n.strip().lstrip("*") for n in re.split(r"[,/]", e.group(1)) if n.strip()]
            for n in last:
                current[n] = line.strip()[e.end():]
        else:
            for n in last:
                current[n] += " " + line.strip()
    return out


def _params(fn: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    return {n: p for n, p in inspect.signature(fn).parameters.items() if n not in ("self", "cls")}


CALLABLES = list(_documented_callables())


def test_the_checker_sees_the_public_api():
    names = {q.rsplit(".", 1)[-1] for q, *_ in CALLABLES}
    assert {"slerp", "render_spec", "encode_text", "render", "chain", "resolve", "frame", "write_video"} <= names
    assert len(CALLABLES) > 150
    doc = inspect.getdoc(importlib.import_module("latentlab.pacing").even_pacing)
    args = _sections(doc)["Args"]
    assert {"seed", "noise", "keyframe_seeds", "keyframe_noise", "measured"} <= set(args)
    assert "default the frame budget" in args["max_samples"]


def test_every_parameter_of_the_public_api_is_documented():
    """A parameter with no word in its docstring is one a user cannot learn about from the API
    page (render_spec's output, progress and callback; Encoder.encode_text's batch_size;
    nearest_words' k and query_labels; the Trajectory constructors' easing, method and labels;
    Spec's name field ... had none)."""
    missing = []
    for qual, fn, doc, _cls in CALLABLES:
        if not doc:
            missing.append(f"{qual}: no docstring")
            continue
        sections = _sections(doc)
        listed = set(sections.get("Args", {})) | set(sections.get("Attributes", {}))
        spans = re.findall(r"``(.+?)``", doc, re.S)  # code spans: ``name``, ``name=3``, ``pattern.format(k)``
        for n, p in _params(fn).items():
            if (qual, n) in UNDOCUMENTED_OK:
                continue
            if p.kind is p.VAR_KEYWORD:
                ok = f"**{n}" in doc or re.search(r"keyword arguments?", doc, re.I)
            elif p.kind is p.VAR_POSITIONAL:
                ok = f"*{n}" in doc
            else:
                ok = n in listed or any(re.search(rf"(?<![\w.]){n}\b", span) for span in spans)
            if not ok:
                missing.append(f"{qual}: parameter {n!r}")
    assert not missing, "parameters the docstring never names:\n" + "\n".join(missing)


def test_args_sections_name_only_real_parameters():
    wrong = []
    for qual, fn, doc, cls in CALLABLES:
        params = _params(fn)
        sections = _sections(doc)
        for n in sections.get("Args", {}):
            if n not in params:
                wrong.append(f"{qual}: Args documents {n!r}, which is not a parameter")
        for n in sections.get("Attributes", {}):
            if n not in params and not (cls is not None and hasattr(cls, n)):
                wrong.append(f"{qual}: Attributes documents {n!r}, which is neither a parameter nor an attribute")
    assert not wrong, "\n".join(wrong)


_LITERAL = r"(-?\d+(?:\.\d+)?(?:e-?\d+)?|True|False|true|false|None|\"[^\"]*\"|'[^']*')"


def _literal(text: str) -> Any:
    return {"true": True, "false": False}.get(text, None) if text in ("true", "false") else ast.literal_eval(text)


def _default_mismatches(qual: str, fn: Callable[..., Any], doc: str) -> list[str]:
    wrong = []
    params = _params(fn)
    for section in _sections(doc).values():
        for n, entry in section.items():
            p = params.get(n)
            if p is None or p.default is inspect.Parameter.empty or p.default is None:
                continue
            # "default 12", "default ``"clip"``", "defaults to 0.25", and a trailing "[48]"
            stated = [m.group(1) for m in re.finditer(
                rf"\bdefaults?(?: is| to| of)?:? (?:``)?{_LITERAL}(?:``)?(?=[\s,;.)]|$)", entry)]
            brackets = re.search(rf"\[{_LITERAL}\]\.?$", entry.strip())
            if brackets:
                stated.append(brackets.group(1))
            for s in stated:
                if _literal(s) != p.default:
                    wrong.append(f"{qual}: {n} is documented to default to {s}, the signature says {p.default!r}")
    return wrong


def test_documented_literal_defaults_match_the_signature():
    """``x: ... default 12`` (or Spec's ``[48]``) in an Args/Attributes entry is the
    signature's default (e.g. a "default 12" left behind when the default became 16)."""
    wrong = [w for qual, fn, doc, _cls in CALLABLES for w in _default_mismatches(qual, fn, doc)]
    assert not wrong, "\n".join(wrong)


def test_the_default_check_can_fail():
    def f(frames: int = 16, *, fps: float = 24, metric: str = "clip", seed: int = 0) -> None:
        """A function whose docstring drifted.

        Args:
            frames: how many; default 12.
            fps: frame rate [25].
            metric: ``"clip"`` or ``"pixel"``; default ``"pixel"``.
            seed: the seed (default 0).
        """

    wrong = _default_mismatches("f", f, inspect.getdoc(f))
    assert len(wrong) == 3 and "frames is documented to default to 12" in wrong[0], wrong


_ROLE = re.compile(r":(func|meth|class|attr|data|mod|exc|obj):`~?([^`<>]+?)`")

# (module, reference) -> why it does not resolve by name
XREF_OK: dict[tuple[str, str], str] = {
    ("latentlab.jobs", "path"): "_PacingCheckpoint's instance attribute, set in __init__",
}


def _resolves(ref: str, mod: Any, cls: Any) -> bool:
    import builtins

    import latentlab as ll

    parts = ref.strip().lstrip("~").rstrip("()").split(".")
    for i in range(len(parts), 0, -1):  # an absolute name: module path, then attributes
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for p in parts[i:]:
                obj = getattr(obj, p)
            return True
        except AttributeError:
            pass
    scopes = [cls, mod, ll]
    if mod.__package__:  # "data.default_cache_dir" from latentlab.mini.evaluate: latentlab.mini.data
        try:
            scopes.append(importlib.import_module(mod.__package__))
        except ImportError:
            pass
    for scope in scopes:
        obj = scope
        if obj is None:
            continue
        try:
            for p in parts:
                obj = getattr(obj, p) if not inspect.ismodule(obj) or hasattr(obj, p) else importlib.import_module(
                    f"{obj.__name__}.{p}")
            return True
        except (AttributeError, ImportError):
            pass
    return hasattr(builtins, parts[0])


def test_cross_references_in_docstrings_resolve():
    """Every ``:func:`` / ``:meth:`` / ``:class:`` ... in latentlab's source names something
    that exists (relative names resolve in the enclosing class, the module, its package or
    ``latentlab``)."""
    import latentlab

    bad = []
    for info in pkgutil.walk_packages(latentlab.__path__, "latentlab."):
        if info.name.endswith("__main__"):
            continue
        mod = importlib.import_module(info.name)
        src = inspect.getsource(mod)
        classes = [(m.start(), m.group(1)) for m in re.finditer(r"^class (\w+)", src, re.M)]
        for m in _ROLE.finditer(src):
            role, ref = m.groups()
            if (info.name, ref) in XREF_OK:
                continue
            enclosing = [name for start, name in classes if start < m.start()]
            cls = getattr(mod, enclosing[-1], None) if enclosing else None
            if not _resolves(ref, mod, cls):
                line = src.count("\n", 0, m.start()) + 1
                bad.append(f"{info.name}:{line}: :{role}:`{ref}`")
    assert not bad, "cross-references to names that do not exist:\n" + "\n".join(bad)


def _callables_by_name() -> dict[str, list[Callable[..., Any]]]:
    import latentlab

    out: dict[str, list[Callable[..., Any]]] = {}
    for info in pkgutil.walk_packages(latentlab.__path__, "latentlab."):
        if info.name.endswith("__main__"):
            continue
        mod = importlib.import_module(info.name)
        for n, v in vars(mod).items():
            if n.startswith("_") or not getattr(v, "__module__", "").startswith("latentlab"):
                continue
            if inspect.isfunction(v) or inspect.isclass(v):
                out.setdefault(n, []).append(v)
            if inspect.isclass(v):
                for mn, mv in vars(v).items():
                    mv = mv.__func__ if isinstance(mv, (staticmethod, classmethod)) else mv
                    if inspect.isfunction(mv) and not mn.startswith("_"):
                        out.setdefault(mn, []).append(mv)
    return out


def _docstrings() -> list[tuple[str, str]]:
    """(where, docstring) of every latentlab module and of its classes, functions and methods."""
    import latentlab

    out, seen = [], set()
    for info in pkgutil.walk_packages(latentlab.__path__, "latentlab."):
        if info.name.endswith("__main__"):
            continue
        mod = importlib.import_module(info.name)
        objs = [mod]
        for v in vars(mod).values():
            if getattr(v, "__module__", None) == info.name and (inspect.isfunction(v) or inspect.isclass(v)):
                objs.append(v)
                if inspect.isclass(v):
                    objs += [m.__func__ if isinstance(m, (staticmethod, classmethod)) else m for m in vars(v).values()]
        for o in objs:
            doc = getattr(o, "__doc__", None)
            if isinstance(doc, str) and id(o) not in seen:
                seen.add(id(o))
                out.append((f"{info.name}.{getattr(o, '__qualname__', '')}".rstrip("."), doc))
    return out


def _calls(text: str) -> Iterator[tuple[int, str, list[str]]]:
    """(offset, called name, keyword names) of every ``name(...)`` in ``text``."""
    for m in re.finditer(r"(?<![\w-])([A-Za-z_][\w.]*)\(", text):
        depth, j, end = 1, m.end(), min(len(text), m.end() + 600)
        while j < end and depth:
            depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(text[j], 0)
            j += 1
        if depth:  # unbalanced, or longer than any call worth checking
            continue
        args = text[m.end() : j - 1]
        top, depth, tok = [], 0, ""
        for ch in args:
            depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(ch, 0)
            if depth == 0 and ch == ",":
                top.append(tok)
                tok = ""
            else:
                tok += ch
        top.append(tok)
        kws = [k.group(1) for k in (re.match(r"\s*(\w+)\s*=(?!=)", t) for t in top) if k]
        if kws:
            yield m.start(), m.group(1), kws


NOT_OURS = {"normalize", "decode"}  # torch.nn.functional.normalize(..., dim=-1), movq.decode(...) in prose


def test_keyword_arguments_in_docs_and_docstrings_exist():
    """``ll.render_spec(spec, sheet_frame=...)`` in a page or docstring would teach a call
    that raises TypeError: each keyword passed to a latentlab function by name exists."""
    by_name = _callables_by_name()
    texts = [(p.relative_to(ROOT).as_posix(), p.read_text(encoding="utf-8"))
             for p in [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]]  # fmt: skip
    texts += _docstrings()
    wrong = []
    for where, text in texts:
        for _, called, kws in _calls(text):
            name = called.split(".")[-1]
            if name not in by_name or (name in NOT_OURS and not called.startswith(("ll.", "latentlab.", "dec", "enc"))):
                continue
            ok = False
            for fn in by_name[name]:
                try:
                    ps = inspect.signature(fn).parameters
                except (TypeError, ValueError):
                    ok = True
                    break
                if any(p.kind is p.VAR_KEYWORD for p in ps.values()) or all(k in ps for k in kws):
                    ok = True
                    break
            if not ok:
                wrong.append(f"{where}: {called}({', '.join(k + '=' for k in kws)}) passes a keyword no {name} takes")
    assert not wrong, "\n".join(wrong)


def test_the_keyword_scan_reads_calls():
    found = list(_calls('x = ll.write_video(frames, "a.gif", fps=8, pingpong=f(a, b=1)) and ll.show(x == 1)'))
    assert [(name, kws) for _, name, kws in found] == [("ll.write_video", ["fps", "pingpong"]), ("f", ["b"])]
