"""The names users import from the top level: each resolves, lazily, to its module's."""

from __future__ import annotations

import ast
import importlib
import inspect

import pytest

import pytest_celestra

EXPORTED = sorted(set(pytest_celestra.__all__) - {"__version__"})


@pytest.mark.parametrize("name", EXPORTED)
def test_every_public_name_resolves_to_its_modules_object(name):
    module = importlib.import_module(pytest_celestra._EXPORTS[name])
    assert getattr(pytest_celestra, name) is getattr(module, name)


def test_all_lists_exactly_the_exported_names():
    assert set(pytest_celestra._EXPORTS) == set(EXPORTED)
    assert set(pytest_celestra.__all__) <= set(dir(pytest_celestra))


def test_type_checkers_see_the_same_names_from_the_same_modules():
    """The `TYPE_CHECKING` imports (what mypy and IDEs read) match the lazy table."""
    tree = ast.parse(inspect.getsource(pytest_celestra))
    guarded = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
    )
    seen = {
        alias.name: node.module
        for node in guarded.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert seen == pytest_celestra._EXPORTS


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'UserFactroy'"):
        _ = pytest_celestra.UserFactroy  # type: ignore[attr-defined]


def test_submodules_stay_importable_from_the_package():
    from pytest_celestra.rows import factories
    from pytest_celestra.schema import volumes

    assert factories.UserFactory is pytest_celestra.UserFactory
    assert volumes.Volume is pytest_celestra.Volume


def test_a_reimported_module_is_the_one_the_top_level_gives(monkeypatch):
    """After its module is unloaded and imported again (as pytester's in-process runs do),
    a top-level name is the new module's object, not a stale one."""
    import sys

    import pytest_celestra.db

    first = pytest_celestra.scenario_builder
    # Both restored afterwards: the module in sys.modules and the package's attribute.
    monkeypatch.setattr(pytest_celestra.db, "user_scenarios", sys.modules[first.__module__])
    monkeypatch.delitem(sys.modules, "pytest_celestra.db.user_scenarios")
    again = importlib.import_module("pytest_celestra.db.user_scenarios")
    assert again.scenario_builder is not first
    assert pytest_celestra.scenario_builder is again.scenario_builder


def test_type_checkers_do_not_see_the_lazy_lookup():
    """A module `__getattr__` makes mypy accept any name (`from pytest_celestra import
    UserFactroy`); hidden under `if not TYPE_CHECKING`, a misspelt name is a type error."""
    tree = ast.parse(inspect.getsource(pytest_celestra))
    top_level = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert "__getattr__" not in top_level
    hidden = next(
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.UnaryOp)
        and getattr(node.test.operand, "id", None) == "TYPE_CHECKING"
    )
    assert "__getattr__" in {n.name for n in hidden.body if isinstance(n, ast.FunctionDef)}
