# factory_boy is typed but its declarations are not annotated.
# mypy: disable-error-code="no-untyped-call"
"""The one module that reads factory_boy's private internals, which `row_maker` and
`batches` need to resolve a factory's declarations themselves; `SUPPORTED_VERSIONS` names
the releases they were checked against (`tests/test_factory_internals.py`).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import factory.base
import factory.enums
from factory.alchemy import SQLAlchemyModelFactory, SQLAlchemyOptions
from factory.builder import parse_declarations
from factory.declarations import SKIP, SelfAttribute, Trait
from factory.faker import Faker

SUPPORTED_VERSIONS = ("3.3",)
"""factory_boy releases (major.minor) whose internals this module was checked against."""

CREATE_STRATEGY = factory.enums.CREATE_STRATEGY
UNSET = SelfAttribute("x").default
"""What a `SelfAttribute` keeps as its default when it was given none."""

_LAZY = factory.enums.BuilderPhase.ATTRIBUTE_RESOLUTION


def declarations(
    factory_class: Any, extras: dict[str, Any]
) -> tuple[list[tuple[str, Any, dict[str, Any], bool]], list[tuple[str, Any, dict[str, Any]]]]:
    """A factory's declarations merged with a call's arguments, traits applied, in
    factory_boy's order: `(name, declaration, context, lazy)` (`lazy`: not a plain value),
    and `(name, declaration, context)` of its post-generation hooks."""
    meta = factory_class._meta
    pre, post = parse_declarations(
        extras, base_pre=meta.pre_declarations, base_post=meta.post_declarations
    )
    resolved = []
    for name in pre:
        declaration = pre.declarations[name]
        lazy = factory.enums.get_builder_phase(declaration) == _LAZY
        resolved.append((name, declaration, pre.contexts[name], lazy))
    hooks = [(name, post[name].declaration, post[name].context) for name in post.sorted()]
    return resolved, hooks


def defaults(declaration: Any) -> dict[str, Any]:
    """The keywords a declaration was written with."""
    return dict(declaration._defaults)


def faker_instance(locale: str | None = None) -> Any:
    """What `factory.Faker` declarations of `locale` draw from (the proxy's one generator)."""
    proxy = Faker._get_faker(locale)
    cached = _GENERATORS.get(locale)
    if cached is None or cached[0] is not proxy:
        generators = proxy.factories
        cached = _GENERATORS[locale] = (proxy, generators[0] if len(generators) == 1 else proxy)
    return cached[1]


_GENERATORS: dict[str | None, tuple[Any, Any]] = {}


def next_sequence(factory_class: Any) -> int:
    sequence: int = factory_class._meta.next_sequence()
    return sequence


def sequence_counter(factory_class: Any) -> Any:
    """`next_sequence(factory_class)` as a function taken once (a reset changes its counter
    in place): what a maker calls for each row."""
    factory_class._meta._initialize_counter()
    return factory_class._meta._counter.next


def model_class(factory_class: Any) -> Any:
    return factory_class._meta.get_model_class()


def is_abstract(factory_class: Any) -> bool:
    return bool(factory_class._meta.abstract)


def get_or_create_keys(factory_class: Any) -> tuple[str, ...]:
    return tuple(getattr(factory_class._meta, "sqlalchemy_get_or_create", ()) or ())


def parameters(factory_class: Any) -> dict[str, Any]:
    return dict(factory_class._meta.parameters)


def known_names(factory_class: Any) -> set[str]:
    meta = factory_class._meta
    names = set(meta.pre_declarations.as_dict()) | set(meta.post_declarations.as_dict())
    return names | set(meta.parameters) | set(getattr(meta, "rename", None) or {})


def model_keywords(factory_class: Any) -> set[str]:
    """The keywords a factory's declarations give its model: all but its parameters (traits
    included) and `Meta.exclude`, renamed as `Meta.rename` says."""
    meta = factory_class._meta
    hidden = set(meta.exclude) | set(meta.parameters)
    names = {name.split("__", 1)[0] for name in meta.pre_declarations.as_dict()}
    return {(meta.rename or {}).get(name, name) for name in names - hidden}


class Arguments:
    """What `Factory._meta.prepare_arguments` does, worked out once per factory."""

    def __init__(self, factory_class: Any, names: list[str]) -> None:
        meta = factory_class._meta
        hidden = set(meta.exclude) | set(meta.parameters)
        self._meta = meta
        # A factory that adjusts its keywords itself goes through factory_boy's own code.
        adjust = getattr(factory_class._adjust_kwargs, "__func__", None)
        own = factory.base.BaseFactory.__dict__["_adjust_kwargs"].__func__
        self.plain = adjust is own and not meta.inline_args
        self.kept = [(name, meta.rename.get(name, name)) for name in names if name not in hidden]
        self._names = names

    def __call__(self, attributes: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if not self.plain:
            declared = {name: attributes[name] for name in self._names}
            args, kwargs = self._meta.prepare_arguments(declared)
            return args, kwargs
        kwargs = {key: attributes[name] for name, key in self.kept}
        # By identity: `SKIP in values` would call every value's __eq__ (UUID's is Python).
        for value in kwargs.values():
            if value is SKIP:  # a Maybe that chose neither value leaves its field out
                return (), {key: value for key, value in kwargs.items() if value is not SKIP}
        return (), kwargs


BUILDER = SimpleNamespace(strategy=CREATE_STRATEGY)
"""What factory_boy's declarations and options read from a step's builder: the strategy."""


def instantiate(factory_class: Any, step: Any, args: Any, kwargs: dict[str, Any]) -> Any:
    return factory_class._meta.instantiate(step=step, args=args, kwargs=kwargs)


def build(factory_class: Any, args: Any, kwargs: dict[str, Any]) -> Any:
    return factory_class._build(model_class(factory_class), *args, **kwargs)


def use_postgeneration_results(factory_class: Any, step: Any, instance: Any, results: Any) -> None:
    factory_class._meta.use_postgeneration_results(step=step, instance=instance, results=results)


class TraitOptions(SQLAlchemyOptions):
    """factory_boy's options, with every trait `False` unless a call sets it: factory_boy
    takes a missing trait as "off", but the miss raises an AttributeError whose message
    formats every declaration, a third of a `UserFactory()` call."""

    def contribute_to_class(self, factory: Any, *args: Any, **kwargs: Any) -> None:
        super().contribute_to_class(factory, *args, **kwargs)
        traits = [name for name, value in self.parameters.items() if isinstance(value, Trait)]
        self.pre_declarations.update(
            {name: False for name in traits if name not in self.pre_declarations}
        )


class RoutedFactory(SQLAlchemyModelFactory):
    """A SQLAlchemy factory whose `_generate` (factory_boy's private entry point of every
    call) goes to `_route`; `_default_generate` is factory_boy's own."""

    _options_class = TraitOptions

    class Meta:
        abstract = True

    @classmethod
    def _generate(cls, strategy: Any, params: dict[str, Any]) -> Any:
        return cls._route(strategy, params)

    @classmethod
    def _route(cls, strategy: Any, params: dict[str, Any]) -> Any:
        return cls._default_generate(strategy, params)

    @classmethod
    def _default_generate(cls, strategy: Any, params: dict[str, Any]) -> Any:
        return super()._generate(strategy, params)
