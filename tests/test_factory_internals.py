"""factory_boy's private internals: read in `factory_internals` alone, for the releases it
names, and what it reads still means what it did."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import pytest
from factory.declarations import Maybe, PostGeneration, SubFactory, Trait
from factory.faker import Faker

import pytest_celestra
from pytest_celestra.rows import factory_internals as fb
from pytest_celestra.rows.factories import AuditLogFactory, UserFactory
from pytest_celestra.schema.models import User

PACKAGE = Path(pytest_celestra.__file__).parent

#: What reading factory_boy's internals looks like in source.
PRIVATE = re.compile(
    r"\._meta\b|\._defaults\b|factory\.builder|from factory\.builder|_get_faker|"
    r"_options_class|factory\.enums|\._FAKER_REGISTRY|_adjust_kwargs"
)


def test_the_installed_factory_boy_is_one_the_adapter_supports():
    installed = version("factory_boy")
    assert installed.rsplit(".", 1)[0] in fb.SUPPORTED_VERSIONS, (
        f"factory_boy {installed} is not among {fb.SUPPORTED_VERSIONS}: check what "
        "pytest_celestra/rows/factory_internals.py reads against it, then add it there"
    )


def test_no_other_module_reads_factory_boys_internals():
    readers = {
        str(path.relative_to(PACKAGE)): sorted(set(PRIVATE.findall(path.read_text())))
        for path in PACKAGE.rglob("*.py")
        if path.name != "factory_internals.py"
    }
    assert {path: found for path, found in readers.items() if found} == {}


def test_declarations_merge_a_calls_arguments_and_traits():
    pre, hooks = fb.declarations(UserFactory, {"suspended": True, "name": "Ada"})
    resolved = {name: (declaration, lazy) for name, declaration, _, lazy in pre}
    assert resolved["name"] == ("Ada", False)
    assert resolved["suspended"] == (True, False)
    status = resolved["status"][0]  # each status trait, nested: on, its value
    assert isinstance(status, Maybe)
    assert "UserStatus.SUSPENDED" in repr(status)
    assert resolved["email"][1] is True  # a declaration to evaluate
    assert hooks == []
    _, log_hooks = fb.declarations(AuditLogFactory, {"activity": False})
    by_name = {name: (declaration, context) for name, declaration, context in log_hooks}
    assert isinstance(by_name["activity"][0], PostGeneration)
    assert by_name["activity"][1] == {"": False}


def test_what_a_declaration_was_written_with():
    assert fb.defaults(Faker("moment", lower=1, upper=2)) == {
        "lower": 1,
        "upper": 2,
        "locale": None,
    }
    assert fb.defaults(SubFactory(UserFactory, name="x")) == {"name": "x"}
    assert hasattr(fb.faker_instance(), "celestra_uuid")  # our provider is on it


def test_options_of_a_factory():
    assert fb.model_class(UserFactory) is User
    assert not fb.is_abstract(UserFactory)
    assert "suspended" in fb.parameters(UserFactory)
    assert {"suspended", "email", "password"} <= fb.known_names(UserFactory)
    arguments = fb.Arguments(UserFactory, ["name", "password", "suspended"])
    assert arguments.plain
    assert arguments({"name": "Ada", "password": "x", "suspended": False}) == (
        (),
        {"name": "Ada"},
    )


@pytest.mark.parametrize("factory_class", [UserFactory, AuditLogFactory])
def test_every_trait_is_declared_false(factory_class):
    pre, _ = fb.declarations(factory_class, {})
    values = {name: declaration for name, declaration, _, _ in pre}
    traits = [
        name for name, value in fb.parameters(factory_class).items() if isinstance(value, Trait)
    ]
    assert traits
    assert {name: values[name] for name in traits} == dict.fromkeys(traits, False)


def test_arguments_of_a_factory_that_adjusts_its_keywords_go_through_factory_boy():
    class ShoutingUserFactory(UserFactory):
        @classmethod
        def _adjust_kwargs(cls, **kwargs):
            return {**kwargs, "name": kwargs["name"].upper()}

    arguments = fb.Arguments(ShoutingUserFactory, ["name", "password"])
    assert not arguments.plain
    row = {"name": "ada", "password": "x", "factory_parent": None}  # a row holds more
    assert arguments(row) == ((), {"name": "ADA"})
    assert fb.Arguments(UserFactory, ["name"])({"name": "ada", "extra": 1}) == ((), {"name": "ada"})


def test_a_faker_declaration_the_maker_cannot_compile_draws_as_factory_boy_does(
    celestra_session,
):
    """A `Faker` whose argument is another declaration (here a `LazyAttribute`) is left to
    factory_boy's own evaluation in a factory call; only a scenario's recipe, which must
    draw from the scenario's seed, refuses it."""
    from factory.declarations import LazyAttribute

    from pytest_celestra.errors import CelestraError
    from pytest_celestra.rows.batches import Recipes
    from pytest_celestra.rows.providers import CelestraProvider
    from pytest_celestra.rows.scenario import anchor_for

    class NamedUserFactory(UserFactory):
        email = Faker("email_address", name=LazyAttribute(lambda o: "Ann Lee"), domain="x.example")

    assert NamedUserFactory().email.endswith("@x.example")
    recipes = Recipes(CelestraProvider.seeded(1), anchor_for())
    with pytest.raises((TypeError, CelestraError), match="email_address"):
        recipes.recipe(NamedUserFactory, "company")
