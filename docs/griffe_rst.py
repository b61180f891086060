"""Griffe extension for the API reference: the package's reST-flavoured docstrings as Markdown.

The docstrings of ``pytest_celestra`` are written for ``help()`` and Sphinx-style readers:
cross-reference roles (:func:`seed_scenario`, :class:`~pytest_celestra.models.User`) and
literal blocks introduced by ``::``. mkdocstrings renders Markdown, so this extension
(named in ``mkdocs.yml``) rewrites each docstring once griffe has loaded the package:

* a role becomes an *optional* autorefs cross-reference: a link when the object is on a
  reference page, plain code otherwise (never a build warning);
* ``text::`` followed by an indented block becomes ``text:`` and a fenced code block;
* a module or class attribute documented by ``#:`` comment lines above it (the Sphinx
  convention the package uses for constants) gets them as its docstring.

``double backticks`` need nothing: they are a Markdown code span already.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import griffe

ROLE = re.compile(r":(?:func|class|data|meth|attr|mod|exc|obj):`(?P<tilde>~?)(?P<target>[\w.]+)`")
# Words griffe's Google-style parser would take for a section title when alone on a line.
SECTION_WORDS = {"example", "examples", "note", "notes", "warning", "warnings"}


def qualify(obj: griffe.Object, target: str) -> str | None:
    """The full path of ``target`` as seen from ``obj``'s scope, or None if unknown."""
    if target.startswith("pytest_celestra."):
        return target
    head = target.split(".", 1)[0]
    scope: Any = obj
    while scope is not None:
        members = getattr(scope, "members", {})
        if head in members:
            member = members[head]
            path = member.target_path if member.is_alias else member.path
            return path + target[len(head) :]
        if scope.name == head:
            return scope.path + target[len(head) :]
        scope = scope.parent
    return None


def convert_roles(obj: griffe.Object, text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        target = match["target"]
        title = target.rsplit(".", 1)[-1] if match["tilde"] else target
        identifier = qualify(obj, target)
        if identifier is None:
            return f"`{title}`"
        return f'<autoref identifier="{identifier}" optional><code>{title}</code></autoref>'

    return ROLE.sub(replace, text)


def convert_literal_blocks(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.rstrip().endswith("::"):
            out.append(line)
            i += 1
            continue
        intro = line.rstrip()[:-2].rstrip()
        if intro.strip().lower() in SECTION_WORDS:
            intro = intro.replace(intro.strip(), "For example")
        if intro.strip():
            out.append(intro + ":")
        indent = len(line) - len(line.lstrip())
        i += 1
        block: list[str] = []
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
        ):
            block.append(lines[i])
            i += 1
        while block and not block[-1].strip():
            block.pop()
        code = textwrap.dedent("\n".join(block)).strip("\n")
        out += ["", " " * indent + "```python"]
        out += [" " * indent + code_line if code_line else "" for code_line in code.splitlines()]
        out += [" " * indent + "```", ""]
    return "\n".join(out)


def comment_docstring(obj: griffe.Object) -> griffe.Docstring | None:
    """The ``#:`` comment lines right above an attribute, as a docstring."""
    if obj.lineno is None:
        return None
    lines = obj.module.lines
    index = obj.lineno - 2  # the line above, 0-based
    found: list[str] = []
    while index >= 0 and lines[index].strip().startswith("#:"):
        found.insert(0, lines[index].strip()[2:].strip())
        index -= 1
    if not found:
        return None
    return griffe.Docstring("\n".join(found), lineno=index + 2, parent=obj)


class ReSTToMarkdown(griffe.Extension):
    """Rewrite every docstring of a loaded package from reST habits to Markdown.

    Done once the whole package is loaded, so that names resolve from any scope.
    """

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        pending: list[griffe.Object] = [pkg]
        while pending:
            obj = pending.pop()
            if obj.is_attribute and obj.docstring is None:
                obj.docstring = comment_docstring(obj)
            if obj.docstring is not None:
                text = convert_literal_blocks(obj.docstring.value)
                obj.docstring.value = convert_roles(obj, text)
            pending += [member for member in obj.members.values() if not member.is_alias]

    # The same hook under its name in griffe 1.x.
    on_package_loaded = on_package
