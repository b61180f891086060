# factory_boy is typed but its declarations are not annotated.
# mypy: disable-error-code="no-untyped-call"
"""Making factory objects from their declarations, as factory_boy does, for less.

`Maker` resolves a factory's declarations in factory_boy's order with factory_boy's own
declaration objects (so a seed gives the same values), but without its per-call costs: a
`Faker` whose arguments name other attributes is evaluated directly instead of through a
whole sub-factory, and the plan of a factory's declarations is made once per call. Every
`create()` of a Celestra factory runs through a maker;
[`pytest_celestra.bulk.Batch`][pytest_celestra.bulk.Batch] is the maker of `bulk_create`,
which keeps its rows for one COPY instead of saving each.

While a maker works, `current_maker` returns it: factories called by its objects'
hooks join it, and the factories' helpers find the rows it made (`Maker.find`).
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import factory.base
import factory.enums
from factory.builder import parse_declarations
from factory.declarations import (
    BaseDeclaration,
    LazyAttribute,
    LazyFunction,
    Maybe,
    SelfAttribute,
    SubFactory,
    deepgetattr,
)
from factory.faker import Faker

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.orm import Session

_MAKER: ContextVar[Maker | None] = ContextVar("celestra_factory_maker", default=None)
_UNSET = SelfAttribute("x").default  # what SelfAttribute keeps when it has no default


def current_maker() -> Maker | None:
    """The maker of the factory call (or batch) running now; None outside one."""
    return _MAKER.get()


class Plan:
    """A factory's declarations merged with one set of call arguments (made once per
    maker for each distinct set: every row of a SubFactory declaration shares one)."""

    def __init__(self, factory_class: Any, extras: dict[str, Any]) -> None:
        meta = factory_class._meta
        pre, post = parse_declarations(
            extras, base_pre=meta.pre_declarations, base_post=meta.post_declarations
        )
        lazy = factory.enums.BuilderPhase.ATTRIBUTE_RESOLUTION
        self.factory = factory_class
        self.declarations = {
            name: (
                pre.declarations[name],
                pre.contexts[name],
                factory.enums.get_builder_phase(pre.declarations[name]) == lazy,
            )
            for name in pre
        }
        self.post = [(name, post[name]) for name in post.sorted()]


class _Builder:
    """What post-generation declarations read from factory_boy's builder."""

    strategy = factory.enums.CREATE_STRATEGY

    def __init__(self, factory_class: Any) -> None:
        self.factory_meta = factory_class._meta


class Step:
    """Stands in for factory_boy's `BuildStep`: the object being resolved, its sequence
    number, its parent's step; `recurse` makes a SubFactory's object with the same maker."""

    __slots__ = ("attributes", "builder", "maker", "parent_step", "sequence", "stub")

    def __init__(self, maker: Maker, plan: Plan, sequence: int, parent: Step | None) -> None:
        self.maker = maker
        self.builder = _Builder(plan.factory)
        self.sequence = sequence
        self.parent_step = parent
        self.attributes: dict[str, Any] = {}
        self.stub = _Resolver(plan, self)

    @property
    def chain(self) -> tuple[Any, ...]:
        parent = self.parent_step.chain if self.parent_step else ()
        return (self.stub, *parent)

    def recurse(
        self, factory_class: Any, declarations: dict[str, Any], force_sequence: int | None = None
    ) -> Any:
        return self.maker.make(factory_class, declarations, self, force_sequence)


class _Resolver:
    """factory_boy's `Resolver` without its costs: each attribute is computed on first
    use by the factory's own declaration objects."""

    __slots__ = ("_plan", "_step", "_values")

    def __init__(self, plan: Plan, step: Step) -> None:
        self._plan = plan
        self._step = step
        self._values: dict[str, Any] = {}

    @property
    def factory_parent(self) -> Any:
        parent = self._step.parent_step
        return parent.stub if parent else None

    def __getattr__(self, name: str) -> Any:
        values = self._values
        if name in values:
            return values[name]
        entry = self._plan.declarations.get(name)
        if entry is None:
            raise AttributeError(f"{self._plan.factory.__name__} declares no {name!r}")
        declaration, context, lazy = entry
        value = self._evaluate(declaration, context) if lazy else declaration
        values[name] = value
        return value

    def _evaluate(self, declaration: Any, context: dict[str, Any]) -> Any:
        """`declaration.evaluate_pre(...)`, done directly for the kinds the factories
        use most (factory_boy resolves a Faker's arguments in a whole sub-factory)."""
        kind = type(declaration)
        if kind is LazyAttribute:
            return declaration.function(self)
        if kind is LazyFunction:
            return declaration.function()
        if kind is SelfAttribute and not context:
            return self._self_attribute(declaration, self)
        if kind is Maybe:
            decider = declaration.decider
            choice = (
                self._evaluate(decider, {}) if isinstance(decider, BaseDeclaration) else decider
            )
            target = declaration.yes if choice else declaration.no
            if isinstance(target, BaseDeclaration):
                return self._evaluate(target, context)
            return target
        if kind is Faker:
            arguments = {**declaration._defaults, **context}
            if all(_fast_argument(value) for value in arguments.values()):
                extra = {
                    key: self._self_attribute(value, None)
                    if isinstance(value, SelfAttribute)
                    else value
                    for key, value in arguments.items()
                }
                # What Faker.evaluate does, with the provider's method looked up once.
                method = self._step.maker.provider_method(declaration, extra.pop("locale"))
                return method(**extra)
        if kind is SubFactory:
            sequence = self._step.sequence if declaration.FORCE_SEQUENCE else None
            extras = {**declaration._defaults, **context}
            return self._step.recurse(declaration.get_factory(), extras, sequence)
        return declaration.evaluate_pre(instance=self, step=self._step, overrides=context)

    def _self_attribute(self, declaration: Any, holder: Any) -> Any:
        """A SelfAttribute's value; `holder` None means it is an argument of one of this
        row's declarations (so one level up from the argument is this row)."""
        depth = declaration.depth - (0 if holder is self else 1)
        target: Any = self
        for _ in range(depth - 1):
            target = target.factory_parent
        name = declaration.attribute_name
        if "." in name:
            return deepgetattr(target, name, declaration.default)
        try:
            return getattr(target, name)
        except AttributeError:
            if declaration.default is _UNSET:
                raise
            return declaration.default


def _fast_argument(value: Any) -> bool:
    """Whether a Faker argument can be read without factory_boy's sub-factory: a plain
    value, or a SelfAttribute of the row (`SelfAttribute("..name")`)."""
    if isinstance(value, SelfAttribute):
        return value.depth >= 2  # depth 1 names another argument, not the row
    return not isinstance(value, BaseDeclaration)


# --- the maker ----------------------------------------------------------------------


class Maker:
    """Makes objects of a factory as factory_boy's `StepBuilder` does (same declarations,
    same order, so the same random draws), with a cheaper resolver. `create()` of every
    Celestra factory goes through one; `Batch` is the one of `bulk_create`."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._plans: dict[tuple[Any, ...], tuple[dict[str, Any], Plan]] = {}
        self._by_key: dict[tuple[type[Any], Any], Any] = {}
        self._children: dict[tuple[type[Any], int], list[Any]] = {}
        self._made: set[int] = set()
        self._provider_methods: dict[tuple[int, str | None], Any] = {}

    def provider_method(self, declaration: Any, locale: str | None) -> Any:
        """The Faker method a `Faker` declaration calls, looked up once per call."""
        key = (id(declaration), locale)
        method = self._provider_methods.get(key)
        if method is None:
            faker = declaration._get_faker(locale)
            method = self._provider_methods[key] = getattr(faker, declaration.provider)
        return method

    @contextlib.contextmanager
    def active(self) -> Iterator[Maker]:
        """This maker as `current_maker` inside the block, so factories called by
        hooks and declarations of its objects join it."""
        token = _MAKER.set(self)
        try:
            yield self
        finally:
            _MAKER.reset(token)

    def run(self, factory_class: Any, params: dict[str, Any]) -> Any:
        """One object of `factory_class` made with `params`, this maker active."""
        with self.active():
            return self.make(factory_class, params)

    def _plan(self, factory_class: Any, extras: dict[str, Any]) -> Plan:
        key = (factory_class, *((k, id(v)) for k, v in extras.items()))
        cached = self._plans.get(key)
        if cached is None:
            # The extras are kept with the plan, so the ids in the key stay theirs.
            cached = self._plans[key] = (extras, self._new_plan(factory_class, extras))
        return cached[1]

    def _new_plan(self, factory_class: Any, extras: dict[str, Any]) -> Plan:
        return Plan(factory_class, extras)

    def make(
        self,
        factory_class: Any,
        extras: dict[str, Any],
        parent: Step | None = None,
        force_sequence: int | None = None,
    ) -> Any:
        """One object of `factory_class`, as factory_boy's `StepBuilder.build` makes it."""
        extras = dict(extras)
        labels = getattr(factory_class, "_enum_labels", None)
        if parent is not None and labels is not None:  # a parent's `company__status="..."`
            extras = labels(extras)
        init_sequence = extras.pop("__sequence", None)
        meta = factory_class._meta
        plan = self._plan(factory_class, extras)
        if force_sequence is not None:
            sequence = force_sequence
        elif init_sequence is not None:
            sequence = init_sequence
        else:
            sequence = meta.next_sequence()
        step = Step(self, plan, sequence, parent)
        stub, attributes = step.stub, step.attributes
        for name in plan.declarations:
            attributes[name] = getattr(stub, name)
        if issubclass(factory_class, factory.base.BaseDictFactory):
            return dict(attributes)  # a declaration's context (Faker's arguments, ...)
        args, kwargs = meta.prepare_arguments(attributes)
        instance = self._instantiate(factory_class, step, args, kwargs)
        self._remember(instance, kwargs)
        results = {
            name: hook.declaration.evaluate_post(
                instance=instance, step=step, overrides=hook.context
            )
            for name, hook in plan.post
        }
        self._finish(factory_class, step, instance, results)
        return instance

    def _instantiate(
        self, factory_class: Any, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        return factory_class._meta.instantiate(step=step, args=args, kwargs=kwargs)

    def _finish(self, factory_class: Any, step: Step, instance: Any, results: Any) -> None:
        factory_class._meta.use_postgeneration_results(
            step=step, instance=instance, results=results
        )

    def _remember(self, instance: Any, kwargs: dict[str, Any]) -> None:
        if id(instance) in self._made:
            return  # found by get-or-create again
        self._made.add(id(instance))
        model = self._model_of(instance)
        self._by_key[model, kwargs.get("id")] = instance
        for value in self._parents(model, kwargs):
            self._children.setdefault((model, id(value)), []).append(instance)

    def _model_of(self, instance: Any) -> type[Any]:
        return type(instance)

    def _parents(self, model: type[Any], kwargs: dict[str, Any]) -> list[Any]:
        """The parent objects among an object's model arguments."""
        return [value for value in kwargs.values() if hasattr(value, "_sa_instance_state")]

    def made(self, obj: Any) -> bool:
        """Whether `obj` was made by this call (so the database has nothing of its own
        about it yet)."""
        return id(obj) in self._made

    def children(self, model: type[Any], parent: Any) -> list[Any]:
        """The rows of `model` this call made with `parent` as one of their parents."""
        return self._children.get((model, id(parent)), [])

    def find(self, model: type[Any], key: Any) -> Any:
        """The row of `model` with primary key `key`: this call's, else the session's."""
        row = self._by_key.get((model, key))
        if row is not None:
            return row
        return self.session.get(model, key)
