"""What a function reads, as one hash: the part of a template's key your rules make.

A rule's source alone does not decide what it returns: constants, closure values,
`partial` arguments, defaults and project modules it calls do too, and are all hashed.
What it reads from outside Python (environment, files, the clock) is not: a rule that
does needs `--celestra-rebuild` after they change. Standard library only.
"""

from __future__ import annotations

import enum
import hashlib
import sys
import types
from functools import cache, partial
from pathlib import Path
from typing import Any

_MAX_DEPTH = 8
"""How deep references are followed (a function calling a function reading a constant...)."""
_MAX_ITEMS = 10_000
"""Items of one container hashed; a longer one is hashed by its first items and its length."""
_MAX_PARTS = 200_000
"""Parts hashed in all: the walk stops there (a rule reading that much is keyed by its start)."""


@cache
def _library_roots() -> tuple[Path, ...]:
    """Where installed packages and the standard library live (not your project)."""
    import sysconfig

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    paths = sysconfig.get_paths()
    roots.update(paths[name] for name in ("stdlib", "platstdlib", "purelib", "platlib"))
    return tuple(Path(root).resolve() for root in roots if root)


def _is_library(module: types.ModuleType) -> bool:
    """Whether a module is installed (standard library or a package), not your project's."""
    name = getattr(module, "__file__", None)
    if not name:
        return module.__name__ in sys.builtin_module_names
    path = Path(name).resolve()
    return any(path.is_relative_to(root) for root in _library_roots())


class _Hasher:
    """One fingerprint's walk: the objects seen (against cycles) and the text hashed."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.digest = hashlib.sha256()
        self.budget = _MAX_PARTS

    def add(self, *parts: str) -> None:
        self.budget -= 1
        if self.budget < 0:
            return  # a bounded walk: a value this big is keyed by its first parts
        for part in parts:
            self.digest.update(part.encode("utf-8", "backslashreplace"))
            self.digest.update(b"\0")

    def value(self, value: Any, depth: int) -> None:
        """Hash a value a function reads."""
        if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
            self.add(type(value).__name__, repr(value))
            return
        if depth > _MAX_DEPTH:
            self.add("too deep", type(value).__qualname__)
            return
        if id(value) in self.seen:
            self.add("seen", type(value).__qualname__)
            return
        self.seen.add(id(value))
        if isinstance(value, enum.Enum):
            self.add("enum", type(value).__qualname__, repr(value.value))
        elif isinstance(value, types.ModuleType):
            self.module(value, depth)
        elif isinstance(value, (types.FunctionType, types.MethodType, partial)):
            self.function(value, depth)
        elif isinstance(value, type):
            self.class_(value, depth)
        elif isinstance(value, dict):
            self.add("dict", str(len(value)))
            items = sorted(value.items(), key=lambda item: repr(item[0]))[:_MAX_ITEMS]
            for key, item in items:
                self.value(key, depth + 1)
                self.value(item, depth + 1)
        elif isinstance(value, (list, tuple)):
            self.add(type(value).__name__, str(len(value)))
            for item in value[:_MAX_ITEMS]:
                self.value(item, depth + 1)
        elif isinstance(value, (set, frozenset)):
            self.add("set", str(len(value)))
            for text in sorted(_fingerprint(item, depth + 1) for item in value)[:_MAX_ITEMS]:
                self.add(text)
        elif callable(value) and hasattr(type(value), "__call__"):  # noqa: B004
            self.add("callable object", type(value).__qualname__)
            self.class_(type(value), depth + 1)
            if _ours(type(value)):
                self.attributes(value, depth)
        else:
            self.add("object", type(value).__module__, type(value).__qualname__)
            if isinstance(getattr(value, "__dict__", None), dict) and _ours(type(value)):
                self.attributes(value, depth)  # not its repr: a set in it has no stable order
                return
            text = repr(value)
            if " at 0x" not in text:  # the default repr holds an address: not stable
                self.add(text)

    def attributes(self, value: Any, depth: int) -> None:
        fields = getattr(value, "__dict__", None)
        if isinstance(fields, dict):
            self.value(fields, depth + 1)

    def function(self, function: Any, depth: int) -> None:
        """Hash a function, method or partial with everything it reads."""
        if isinstance(function, partial):
            self.add("partial")
            self.value(function.func, depth + 1)
            self.value(function.args, depth + 1)
            self.value(function.keywords, depth + 1)
            return
        if isinstance(function, types.MethodType):
            self.add("method")
            self.value(function.__self__, depth + 1)
            self.value(function.__func__, depth + 1)
            return
        self.add("function", function.__module__ or "", function.__qualname__)
        module = sys.modules.get(function.__module__ or "")
        if module is not None and _is_library(module):
            self.module(module, depth + 1)  # an installed library's: by name and version
            return
        self.code(function.__code__)
        self.value(function.__defaults__, depth + 1)
        self.value(function.__kwdefaults__, depth + 1)
        for cell in function.__closure__ or ():
            try:
                contents = cell.cell_contents
            except ValueError:  # a cell not filled yet
                self.add("empty cell")
                continue
            self.value(contents, depth + 1)
        names = _names(function.__code__)
        scope = function.__globals__
        for name in sorted(names):
            if name in scope:
                self.add("global", name)
                self.referenced(scope[name], names, depth + 1)
            elif isinstance(module := sys.modules.get(name), types.ModuleType):
                self.add("import", name)  # `import name` inside the function
                self.referenced(module, names, depth + 1)

    def referenced(self, value: Any, names: frozenset[str], depth: int) -> None:
        """A global the function reads; of a module, also the attributes it names."""
        self.value(value, depth)
        if isinstance(value, types.ModuleType):
            for name in sorted(names):
                attribute = getattr(value, name, None)
                if attribute is not None and not isinstance(attribute, types.ModuleType):
                    self.add("attribute", name)
                    self.value(attribute, depth + 1)

    def code(self, code: types.CodeType) -> None:
        """A code object's bytecode, constants and names, nested ones too (not the source:
        a function made at run time is covered, and an edited comment is no change)."""
        self.add("code", code.co_code.hex(), repr(code.co_names), repr(code.co_varnames))
        for constant in code.co_consts:
            if isinstance(constant, types.CodeType):
                self.code(constant)
            else:
                self.add(type(constant).__name__, _stable_repr(constant))

    def module(self, module: types.ModuleType, depth: int) -> None:
        """A module of your project by its source; an installed one by name and version."""
        name = getattr(module, "__file__", None)
        if _is_library(module) or not name:
            self.add("library", module.__name__, str(getattr(module, "__version__", "")))
            return
        path = Path(name)
        try:
            self.add("project module", module.__name__, _file_hash(path, path.stat().st_mtime_ns))
        except OSError:
            self.add("project module", module.__name__, "unreadable")

    def class_(self, cls: type, depth: int) -> None:
        """A class of your project by its module's source, an installed one by name."""
        self.add("class", cls.__module__, cls.__qualname__)
        module = sys.modules.get(cls.__module__)
        if module is not None:
            self.module(module, depth + 1)


def _ours(cls: type) -> bool:
    """Whether a class is of your project: its objects are hashed by their attributes
    (an installed library's, a logger say, may reach half the interpreter)."""
    module = sys.modules.get(cls.__module__)
    return module is not None and not _is_library(module)


def _stable_repr(constant: Any) -> str:
    """The repr of a code constant, a frozenset's items sorted (`x in {"a", "b"}`
    compiles to one, whose order changes with each process's string hashing)."""
    if isinstance(constant, frozenset):
        return "frozenset(" + repr(sorted(_stable_repr(item) for item in constant)) + ")"
    if isinstance(constant, tuple):
        return "(" + ", ".join(_stable_repr(item) for item in constant) + ",)"
    return repr(constant)


def _fingerprint(value: Any, depth: int) -> str:
    """The hash of one value: a function's, or an item of a set (which has no order)."""
    hasher = _Hasher()
    hasher.value(value, depth)
    return hasher.digest.hexdigest()


def _names(code: types.CodeType) -> frozenset[str]:
    """Every global and attribute name a code object and its nested ones mention."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _names(constant)
    return frozenset(names)


@cache
def _file_hash(path: Path, mtime_ns: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def callable_fingerprint(function: Any) -> str:
    """A hash of `function` and everything it reads that Python can see.

    Covers its bytecode and constants (nested functions included), its defaults, closure
    values, the globals it names (functions recursively; a project module by its source,
    with the attributes named), modules it imports in its body, and a `partial`'s or bound
    method's function and arguments or object; to a bounded depth, cycles once. Not covered:
    what it reads at run time from outside (environment variables, files, the clock).
    """
    return _fingerprint(function, 0)
