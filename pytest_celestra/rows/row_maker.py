# factory_boy is typed but its declarations are not annotated.
# mypy: disable-error-code="no-untyped-call"
"""Making factory objects from their declarations, as factory_boy does (in its order, so
with the same draws), for less: every `create()` of a Celestra factory runs through a
`Maker`, which compiles each declaration once into a function of the row; a
[`Batch`][pytest_celestra.rows.batches.Batch] also keeps the
[`pure`][pytest_celestra.rows.row_maker.pure] declarations that read only constants once.
"""

from __future__ import annotations

import contextlib
import operator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import factory.random
from factory.base import BaseDictFactory
from factory.declarations import (
    BaseDeclaration,
    LazyAttribute,
    LazyAttributeSequence,
    LazyFunction,
    Maybe,
    PostGeneration,
    SelfAttribute,
    Sequence,
    SubFactory,
    deepgetattr,
)
from factory.errors import CyclicDefinitionError
from factory.faker import Faker

from pytest_celestra.rows import factory_internals as fb

if TYPE_CHECKING:
    import random
    from collections.abc import Callable, Iterable, Iterator

    from sqlalchemy.orm import Session

    Evaluator = Callable[[Any], Any]
    Fakers = Callable[[str | None], Any]  # locale -> what `Faker` declarations draw from

T = TypeVar("T")

_MAKER: ContextVar[Maker | None] = ContextVar("celestra_factory_maker", default=None)


current_maker: Callable[[], Maker | None] = _MAKER.get
"""The maker of the factory call (or batch) running now; None outside one."""


def pure(declaration: T) -> T:
    """Mark a `LazyAttribute` or `LazyFunction` as a function of the attributes it reads
    alone, for one factory call (it draws nothing at random): a batch computes it once
    when every attribute it reads is the same for all its rows."""
    declaration.celestra_pure = True  # type: ignore[attr-defined]
    return declaration


def _getter(declaration: Any, levels: int) -> Evaluator:
    """A `SelfAttribute`'s value, `levels` parents up from the row it is read on."""
    name, default = declaration.attribute_name, declaration.default
    if not levels and "." not in name and default is fb.UNSET:
        return operator.attrgetter(name)

    def get(row: Any) -> Any:
        for _ in range(levels):
            row = row.factory_parent
        return deepgetattr(row, name, default)

    return get


def _faker(declaration: Any, context: dict[str, Any], faker: Fakers) -> Evaluator | None:
    """What `Faker.evaluate` does, with the provider's method (of `faker(locale)`) looked up
    once; None unless every argument is a plain value or a `SelfAttribute("..name")`."""
    arguments = {**fb.defaults(declaration), **context}
    for value in arguments.values():
        of_row = isinstance(value, SelfAttribute) and value.depth >= 2  # 1: another argument
        if isinstance(value, BaseDeclaration) and not of_row:
            return None
    method = getattr(faker(arguments.pop("locale", None)), declaration.provider)
    plain = {k: v for k, v in arguments.items() if not isinstance(v, SelfAttribute)}
    read = [(k, _getter(v, v.depth - 2)) for k, v in arguments.items() if k not in plain]
    if not read:
        return (lambda row: method(**plain)) if plain else (lambda row: method())
    return lambda row: method(**plain, **{key: get(row) for key, get in read})


def compile_declaration(
    declaration: Any, context: dict[str, Any], faker: Fakers | None = None
) -> tuple[Evaluator, bool]:
    """`declaration.evaluate_pre(...)` as a function of the row, and whether it is
    [`pure`][pytest_celestra.rows.row_maker.pure] (a function of what it reads alone);
    `Faker` declarations draw from `faker(locale)`, else from factory_boy's Faker (and one
    this cannot compile is left to factory_boy, which draws from its own)."""
    kind = type(declaration)
    if kind is LazyAttribute and not context:
        return declaration.function, getattr(declaration, "celestra_pure", False)
    if kind is LazyFunction and not context:
        function = declaration.function
        return lambda row: function(), getattr(declaration, "celestra_pure", False)
    if kind in (Sequence, LazyAttributeSequence) and not context:  # without its logging
        function = declaration.function
        if kind is LazyAttributeSequence:
            return lambda row: function(row, int(row._celestra_step.sequence)), False
        return lambda row: function(int(row._celestra_step.sequence)), False
    if kind is SelfAttribute and not context:
        return _getter(declaration, declaration.depth - 1), True
    if kind is Maybe:
        decider, decider_pure = _part(declaration.decider, {}, faker)
        yes, yes_pure = _part(declaration.yes, context, faker)
        no, no_pure = _part(declaration.no, context, faker)

        def choose(row: Any) -> Any:
            return yes(row) if decider(row) else no(row)

        if decider_pure:  # a batch may settle it (`_settled`)
            choose.celestra_branches = (decider, (yes, yes_pure), (no, no_pure))  # type: ignore[attr-defined]
        return choose, decider_pure and yes_pure and no_pure
    if kind is Faker:
        evaluator = _faker(declaration, context, faker or fb.faker_instance)
        if evaluator is not None:
            return evaluator, False
        if faker is not None:
            raise TypeError(f"a Faker declaration of {declaration.provider!r} cannot be compiled")
    if kind is SubFactory:
        factory_class = declaration.get_factory()
        extras = {**fb.defaults(declaration), **context}
        force = declaration.FORCE_SEQUENCE

        def sub(row: Any) -> Any:
            step = row._celestra_step
            return step.recurse(factory_class, extras, step.sequence if force else None)

        return sub, False

    def evaluate(row: Any) -> Any:
        return declaration.evaluate_pre(instance=row, step=row._celestra_step, overrides=context)

    return evaluate, False


def compile_hook(hook: Any, context: dict[str, Any]) -> Callable[[Any, Step], Any]:
    """`hook.evaluate_post(...)` as a function of the object and its step; a plain
    `PostGeneration` called at once (factory_boy formats its debug line on every call)."""
    if type(hook) is PostGeneration and not context:
        function = hook.function
        return lambda instance, step: function(instance, True, None)  # create: a Maker's
    evaluate = hook.evaluate_post
    return lambda instance, step: evaluate(instance=instance, step=step, overrides=context)


def _part(value: Any, context: dict[str, Any], faker: Fakers | None) -> tuple[Evaluator, bool]:
    """A part of a `Maybe`: a declaration compiled, or a plain value."""
    if isinstance(value, BaseDeclaration):
        return compile_declaration(value, context, faker)
    return lambda row: value, True


class Plan:
    """A factory's declarations merged with one set of call arguments, compiled."""

    def __init__(self, factory_class: Any, extras: dict[str, Any], faker: Fakers | None) -> None:
        resolved, hooks = fb.declarations(factory_class, extras)
        # (name, declaration, the declaration compiled)
        self.hooks = [(name, hook, compile_hook(hook, context)) for name, hook, context in hooks]
        self.factory = factory_class
        self.next_sequence = fb.sequence_counter(factory_class)
        self.names = [name for name, *_ in resolved]
        self.constants: dict[str, Any] = {}  # plain values, and in a batch the folded ones
        self.evaluators: dict[str, Evaluator] = {}
        self._pure: set[str] = set()
        for name, declaration, context, lazy in resolved:
            if not lazy:
                self.constants[name] = declaration
                continue
            self.evaluators[name], is_pure = compile_declaration(declaration, context, faker)
            if is_pure:
                self._pure.add(name)
        # (name, evaluator) in resolution order: declaration order, until a batch folds it
        self.lazy = list(self.evaluators.items())
        self.folded = False
        dict_factory = issubclass(factory_class, BaseDictFactory)
        self.arguments = None if dict_factory else fb.Arguments(factory_class, self.names)

    def resolve(self, step: Step, given: dict[str, Any] | None = None) -> _Row:
        """The row of `step`: constants, then `given` (a recipe's values of this row), then
        the lazy declarations in order."""
        row = _Row.__new__(_Row)
        values = row.__dict__
        values.update(self.constants)
        if given:
            values.update(given)
        values["_celestra_step"] = step
        parent = step.parent_step
        values["factory_parent"] = parent.stub if parent is not None else None
        step.stub = row
        for name, evaluator in self.lazy:
            if name not in values:
                values[name] = evaluator(row)
        return row

    def fold(self, row: _Row, varying: Iterable[str] = ()) -> None:
        """Keep as constants the pure declarations that read only constants on `row`, the
        plan's first row in a batch (not the `varying` names a recipe is given for each
        row); resolve the others in the order `row` completed them."""
        self.folded = True
        constant = set(self.constants).difference(varying)
        candidates = set(self._pure)
        values = row.__dict__
        completed = list(values)  # (tracing below may work out more: no column read those)
        changed = True
        while changed:
            changed = False
            for name in sorted(self.evaluators.keys() - constant - candidates):
                branch = _settled(self.evaluators[name], row, constant)
                if branch is not None:  # a Maybe whose decider reads constants: its branch
                    self.evaluators[name], branch_pure = branch
                    if branch_pure:
                        candidates.add(name)
                    changed = True
            for name in sorted(candidates):
                tracer = _Tracer(row)
                try:
                    self.evaluators[name](tracer)
                except Exception:  # the row computed it: only the trace failed
                    candidates.discard(name)
                    continue
                if tracer.reads <= constant:
                    constant.add(name)
                    candidates.discard(name)
                    changed = True
                elif not tracer.reads <= constant | candidates:
                    candidates.discard(name)  # reads a value of its own row: never constant
        # (a parameter no column of `row` read stays out: a recipe works it out when read)
        folded = {name: values[name] for name in constant - set(self.constants) if name in values}
        self.constants.update(folded)
        # Every later row works out what `row` did (a recipe's parameters included, once a
        # column read them), in the same order, without the on-demand look-up.
        self.lazy = [
            (name, self.evaluators[name])
            for name in completed
            if name in self.evaluators and name not in folded
        ]


def _settled(evaluator: Evaluator, row: _Row, constant: set[str]) -> tuple[Evaluator, bool] | None:
    """The branch (and whether it is pure) a `Maybe` takes on every row of a batch, when its
    pure decider reads only `constant` names on `row`; None for anything else."""
    branches = getattr(evaluator, "celestra_branches", None)
    if branches is None:  # not a Maybe with a pure decider
        return None
    decider, yes, no = branches
    tracer = _Tracer(row)
    try:
        chosen = decider(tracer)
    except Exception:  # the row computed it: only the trace failed
        return None
    return (yes if chosen else no) if tracer.reads <= constant else None


class _Row:
    """What a factory's declarations read (factory_boy's `Resolver`): a value read before
    its turn is computed then."""

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__
        step = values.get("_celestra_step")
        if step is None or name.startswith("__"):
            raise AttributeError(name)
        plan = step.plan
        evaluator = plan.evaluators.get(name)
        if evaluator is None:
            raise AttributeError(f"{plan.factory.__name__} declares no {name!r}")
        resolving = step.resolving
        if name in resolving:
            raise CyclicDefinitionError(
                f"Cyclic lazy attribute definition for {name!r}; cycle found in {resolving!r}"
            )
        resolving.append(name)
        try:
            value = evaluator(self)
        finally:
            resolving.pop()
        values[name] = value
        return value


class _Tracer:
    """Reads through to a resolved row, noting which attributes were read."""

    def __init__(self, row: _Row) -> None:
        self.__dict__["_row"] = row
        self.__dict__["reads"] = set()

    def __getattr__(self, name: str) -> Any:
        self.reads.add(name)
        return getattr(self._row, name)


class Step:
    """Stands in for factory_boy's `BuildStep`; `recurse` makes a SubFactory's object with
    the same maker."""

    __slots__ = ("maker", "parent_step", "plan", "resolving", "sequence", "stub")
    builder = fb.BUILDER

    def __init__(self, maker: Maker, plan: Plan, sequence: int, parent: Step | None) -> None:
        self.maker = maker
        self.plan = plan
        self.sequence = sequence
        self.parent_step = parent
        self.resolving: list[str] = []
        self.stub: Any = None

    @property
    def chain(self) -> tuple[Any, ...]:
        parent = self.parent_step.chain if self.parent_step else ()
        return (self.stub, *parent)

    def recurse(
        self, factory_class: Any, declarations: dict[str, Any], force_sequence: int | None = None
    ) -> Any:
        return self.maker.make(factory_class, declarations, self, force_sequence)


class Maker:
    """Makes objects of a factory as factory_boy's `StepBuilder` does (same declarations,
    same order, so the same random draws), with compiled plans."""

    folds = False  # whether a plan's pure constants are folded after its first row
    #: What its `Faker` declarations draw from when not factory_boy's Faker (locale -> it).
    fakers: Fakers | None = None

    def __init__(self, session: Session) -> None:
        self.session = session
        self._plans: dict[tuple[Any, ...], tuple[dict[str, Any], Plan]] = {}
        self._seen: dict[tuple[Any, int], tuple[dict[str, Any], Plan]] = {}
        self._by_key: dict[tuple[type[Any], Any], Any] = {}
        self._children: dict[tuple[type[Any], int], list[Any]] = {}
        self._made: set[int] = set()
        self._clock: datetime | None = None
        #: What the rows' draws come from (the story rules' and the `Faker` declarations'),
        #: and the generator of their other draws: factory_boy's, seeded with it.
        self.provider: Any = fb.faker_instance()
        self.rng: random.Random = factory.random.randgen

    def clock(self, lag: Any) -> datetime:
        """ "Now" minus `lag`, read once, so the rows of a call (or batch) share one present."""
        if self._clock is None:
            self._clock = datetime.now(UTC).replace(microsecond=0) - lag
        return self._clock

    @contextlib.contextmanager
    def active(self) -> Iterator[Maker]:
        """This maker as `current_maker` inside the block."""
        token = _MAKER.set(self)
        try:
            yield self
        finally:
            _MAKER.reset(token)

    def _new_plan(self, factory_class: Any, extras: dict[str, Any]) -> Plan:
        return Plan(factory_class, extras, self.fakers)

    def make(
        self,
        factory_class: Any,
        extras: dict[str, Any],
        parent: Step | None = None,
        force_sequence: int | None = None,
    ) -> Any:
        init_sequence = None
        # The same arguments object again (a batch's, a SubFactory declaration's): its plan.
        seen = self._seen.get((factory_class, id(extras)))
        if seen is not None and seen[0] is extras:
            plan = seen[1]
        else:
            given = extras
            if parent is not None and extras:
                labels = getattr(factory_class, "_enum_labels", None)
                if labels is not None:  # a parent's `company__status="..."`
                    extras = labels(extras)
            if "__sequence" in extras:
                extras = dict(extras)
                init_sequence = extras.pop("__sequence")
            key = (factory_class, *((k, id(v)) for k, v in extras.items()))
            cached = self._plans.get(key)
            if cached is None:
                # The extras are kept with the plan, so the ids in the key stay theirs.
                cached = self._plans[key] = (extras, self._new_plan(factory_class, extras))
            plan = cached[1]
            if init_sequence is None:
                self._seen[factory_class, id(given)] = (given, plan)
        sequence = init_sequence if force_sequence is None else force_sequence
        if sequence is None:
            sequence = plan.next_sequence()
        step = Step(self, plan, sequence, parent)
        attributes = self._row(plan, step).__dict__
        if plan.arguments is None:  # a dict factory: a declaration's context (Faker's ...)
            step.stub = None
            return {name: attributes[name] for name in plan.names}
        args, kwargs = plan.arguments(attributes)
        instance = self._instantiate(factory_class, step, args, kwargs)
        results = {name: call(instance, step) for name, _, call in plan.hooks} if plan.hooks else {}
        self._finish(factory_class, step, instance, results)
        step.stub = None  # the row and its step refer to each other: freed now, not by the GC
        return instance

    def arguments(self, plan: Plan, sequence: int, given: dict[str, Any]) -> dict[str, Any]:
        """The model's keyword arguments of `plan`'s row with the `given` values, made with
        this maker current (a recipe's row: no object, no hook)."""
        token = _MAKER.set(self)
        step = Step(self, plan, sequence, None)
        try:
            row = self._row(plan, step, given)
        finally:
            _MAKER.reset(token)
            step.stub = None  # the row and its step refer to each other: freed now, not by the GC
        assert plan.arguments is not None  # a model's factory, not a dict factory
        return plan.arguments(row.__dict__)[1]

    def _row(self, plan: Plan, step: Step, given: dict[str, Any] | None = None) -> _Row:
        """`plan`'s row of `step` (with a recipe's `given` values); the first row of a plan
        folds it when this maker folds."""
        row = plan.resolve(step, given)
        if self.folds and not plan.folded:
            plan.fold(row, varying=given or ())
        return row

    def _instantiate(
        self, factory_class: Any, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        instance = fb.instantiate(factory_class, step, args, kwargs)
        parents = [value for value in kwargs.values() if hasattr(value, "_sa_instance_state")]
        self._remember(instance, type(instance), kwargs.get("id"), parents)
        return instance

    def _finish(self, factory_class: Any, step: Step, instance: Any, results: Any) -> None:
        fb.use_postgeneration_results(factory_class, step, instance, results)

    def _remember(self, instance: Any, model: type[Any], key: Any, parents: list[Any]) -> None:
        if id(instance) in self._made:
            return  # found by get-or-create again
        self._made.add(id(instance))
        self._by_key[model, key] = instance
        for value in parents:
            self._children.setdefault((model, id(value)), []).append(instance)

    def made(self, obj: Any) -> bool:
        """Whether `obj` was made by this call (so the database has nothing about it yet)."""
        return id(obj) in self._made

    def children(self, model: type[Any], parent: Any) -> list[Any]:
        """The rows of `model` this call made with `parent` as one of their parents."""
        return self._children.get((model, id(parent)), [])

    def find(self, model: type[Any], key: Any) -> Any:
        """The row of `model` with primary key `key`: this call's, else the session's."""
        row = self._by_key.get((model, key))
        return row if row is not None else self.session.get(model, key)
