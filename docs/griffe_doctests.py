"""A griffe extension for the API reference: latentlab's docstrings, read as Markdown.

latentlab's docstrings carry runnable ``>>>`` examples in their running text (they are
tested with ``doctest``) and Sphinx-style roles (``:func:`slerp```). Markdown would read
``>>>`` as nested block quotes, ``[1, 2]`` outputs as links and roles as stray text, so this

* wraps every doctest block (the ``>>>`` / ``...`` lines and the output under them, up to a
  blank line) in a ``pycon`` code fence, dropping ``# doctest: +SKIP`` style directives;
* turns ``:role:`~pkg.mod.name``` and ``:role:`name``` into inline code ``name``.

Loaded by mkdocs.yml (``extensions: [docs/griffe_doctests.py:DoctestFences]``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_DIRECTIVE = re.compile(r"\s*#\s*doctest:.*$")
_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj|const):`~?([^`]+)`")


def strip_roles(text: str) -> str:
    """``:func:`~latentlab.ops.slerp``` -> ```slerp```; ``:class:`Trajectory``` -> ```Trajectory```.

    >>> strip_roles("see :func:`~latentlab.ops.slerp` and :class:`Spec`")
    'see `slerp` and `Spec`'
    """

    def short(m: re.Match[str]) -> str:
        name = m.group(1)
        return f"`{name.rsplit('.', 1)[-1]}`" if m.group(0).count("~") else f"`{name}`"

    return _ROLE.sub(short, text)


def fence_doctests(text: str) -> str:
    """Wrap each doctest block of ``text`` in a fenced ``pycon`` block.

    >>> fence_doctests("Intro.\\n>>> 1 + 1  # doctest: +SKIP\\n2\\n\\nAfter.").split("\\n")
    ['Intro.', '```pycon', '>>> 1 + 1', '2', '```', '', 'After.']
    """
    out: list[str] = []
    lines = text.split("\n")
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if stripped.startswith("```"):
            in_fence = not in_fence
        if in_fence or not stripped.startswith(">>>"):
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(stripped)]
        out.append(f"{indent}```pycon")
        while i < len(lines) and lines[i].strip() and lines[i].startswith(indent):
            out.append(_DIRECTIVE.sub("", lines[i]))
            i += 1
        out.append(f"{indent}```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fence the doctest blocks of every docstring griffe loads."""

    def on_instance(self, *, node: Any, obj: griffe.Object, agent: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = strip_roles(fence_doctests(obj.docstring.value))
