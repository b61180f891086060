# factory_boy is typed but its declarations are not annotated.
# mypy: disable-error-code="no-untyped-call"
"""Factory batches at COPY speed: `UserFactory.bulk_create(10_000, company=c)`.

A batch makes no ORM object and sends no INSERT per row: each row is kept as a
[`PendingRow`][pytest_celestra.rows.batches.PendingRow], and every table's rows go to the test's
transaction in one binary `COPY` at the end of the batch (a batch of more than `CHUNK` rows:
a chunk at a time, by a thread, while the batch makes the next). A scenario makes its rows
the same way, through [`Recipes`][pytest_celestra.rows.batches.Recipes]: the factories' declarations
on the scenario's seeded draws, each row handed to the loader as a tuple (`copy_tuple`).
"""

from __future__ import annotations

import contextlib
import enum
import gc
import operator
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import count
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import psycopg
from factory.base import BaseListFactory
from factory.declarations import RelatedFactory
from sqlalchemy import ARRAY, Uuid, any_, bindparam, inspect, select
from sqlalchemy.orm import RelationshipDirection, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from pytest_celestra.errors import CelestraError, RuleError
from pytest_celestra.rows import factory_internals as fb
from pytest_celestra.rows import loader
from pytest_celestra.rows.app_factories import fill_rule_columns
from pytest_celestra.rows.row_maker import Maker, current_maker
from pytest_celestra.schema import spec
from pytest_celestra.schema.enums import label_of, member_of
from pytest_celestra.schema.models import MODELS_IN_FK_ORDER

if TYPE_CHECKING:
    import uuid
    from collections.abc import Callable, Iterator
    from datetime import datetime

    from sqlalchemy.orm import Session, SessionTransaction

    from pytest_celestra.rows.row_maker import Plan, Step
    from pytest_celestra.schema.app_rules import Reshape, Reshaper

T = TypeVar("T")


def bulk_safe(declaration: T) -> T:
    """Mark a post-generation declaration as one a batch can run: it only calls factories
    or changes rows of the batch, never the database."""
    declaration.celestra_bulk_safe = True  # type: ignore[attr-defined]
    return declaration


class PendingRow:
    """A row made in a batch, written by the batch's COPY: reads like the model object
    (columns, relationships, `__tablename__`) without being one; its `__dict__` holds the
    factory's model arguments (`row.values`)."""

    _model: type[Any]

    def __new__(cls, model: type[Any], values: dict[str, Any]) -> PendingRow:
        row = object.__new__(_shape(model).pending)
        object.__setattr__(row, "__dict__", values)
        return row

    @property
    def model(self) -> type[Any]:
        return self._model

    @property
    def values(self) -> dict[str, Any]:
        return self.__dict__

    def __getattr__(self, name: str) -> Any:  # what the values do not hold
        if name.startswith("_") and not name.startswith("__"):
            raise AttributeError(name)  # hasattr(row, "_sa_instance_state"): not an ORM object
        shape = _shape(self._model)
        foreign = shape.foreign_keys.get(name)
        if foreign is not None:
            parent = self.__dict__.get(foreign[0])
            return None if parent is None else getattr(parent, foreign[1])
        if name.startswith("__"):
            return getattr(self._model, name)  # __tablename__, __table__
        if name in shape.keys.values():
            return None
        raise AttributeError(f"{self!r} has no {name!r} (a batch's rows carry no collections)")

    def __repr__(self) -> str:
        return f"<pending {self._model.__name__} {self.__dict__.get('id')}>"


class _Shape:
    """How a model's attributes become the columns of its COPY."""

    def __init__(self, model: type[Any]) -> None:
        mapper = inspect(model)
        self.model = model
        self.table: str = model.__tablename__
        #: FK column -> (relationship key, the parent's column key it copies).
        self.foreign_keys: dict[str, tuple[str, str]] = {}
        self.parent_keys: list[str] = []
        for relationship in mapper.relationships:
            if relationship.direction is RelationshipDirection.MANYTOONE:
                self.parent_keys.append(relationship.key)
                for local, remote in relationship.local_remote_pairs:
                    self.foreign_keys[local.name] = (relationship.key, remote.key)
        columns = model.__table__.columns
        self.keys = {column.name: mapper.get_property_by_column(column).key for column in columns}
        self.defaults = {
            c.name: c.default.arg for c in columns if c.default is not None and c.default.is_scalar
        }
        self.server_defaults = {c.name for c in columns if c.server_default is not None}
        #: The collections of a parent that a batch adds children to (expired after it).
        self.collections = [r.key for r in mapper.relationships if r.uselist]
        #: Columns whose values are Python enums (written as their labels).
        self.enums = {c.name for c in columns if getattr(c.type, "enum_class", None) is not None}
        self.insert = model.__table__.insert()
        #: The class of its batch's rows (`PendingUser`, ...).
        self.pending: type[PendingRow] = type(
            f"Pending{model.__name__}", (PendingRow,), {"_model": model}
        )

    def values(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Column -> value of the row a factory made from `kwargs`, in the table's order."""
        columns, make = self._writer(kwargs, labels=False)
        found = dict(zip(columns, make(kwargs), strict=True))
        return {column: found[column] for column in self.keys if column in found}

    def tuples(
        self, session: Session, rows: list[PendingRow]
    ) -> dict[tuple[str, ...], list[tuple[Any, ...]]]:
        """The COPY rows of `rows`, by the columns they give (normally one group): rows
        with the same attributes through one `_writer`, unless a rule fills a column."""
        groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        # Per call (each session's rules are its own): attributes -> (writer, its group), or
        # None when a rule fills a column.
        writers: dict[tuple[str, ...], tuple[Any, list[tuple[Any, ...]]] | None] = {}
        for row in rows:
            kwargs = row.__dict__
            kind = tuple(kwargs)
            writer: Any = writers.get(kind, False)  # one look-up a row (a tuple keeps no hash)
            if writer:  # (writer, its group): no rule column for rows of these attributes
                writer[1].append(writer[0](kwargs))
                continue
            values = self.values(kwargs)
            plain = dict(values) if writer is False else None  # the first row of its kind
            fill_rule_columns(session, self.table, values, kwargs)
            if values == plain:
                columns, make = self._writer(kwargs)
                group = groups.setdefault(columns, [])
                group.append(make(kwargs))
                writers[kind] = (make, group)
            else:  # rule columns: row by row
                writers[kind] = None
                groups.setdefault(tuple(values), []).append(
                    tuple([v.value if isinstance(v, enum.Enum) else v for v in values.values()])
                )
        return groups

    def _writer(self, kwargs: dict[str, Any], labels: bool = True) -> tuple[tuple[str, ...], Any]:
        """(columns, kwargs -> COPY tuple, enums as `labels`) for rows with the attributes
        of `kwargs`: a column left out has the database's default (left out here too, as by
        a flush) or the model's."""
        direct: list[tuple[str, str]] = []
        parents: list[tuple[str, str, str]] = []
        constants: list[tuple[str, Any]] = []
        for column, key in self.keys.items():
            foreign = self.foreign_keys.get(column)
            if key in kwargs:
                direct.append((column, key))
            elif foreign is not None and foreign[0] in kwargs:
                parents.append((column, *foreign))
            elif column not in self.server_defaults:
                constants.append((column, self.defaults.get(column)))
        columns = tuple(item[0] for item in (*direct, *parents, *constants))
        enums = [i for i, column in enumerate(columns) if labels and column in self.enums]
        tail = tuple(value for _, value in constants)
        keys = [key for _, key in direct]
        pick = operator.itemgetter(*keys) if len(keys) > 1 else lambda kw: (kw[keys[0]],)
        links = [(relation, attribute) for _, relation, attribute in parents]

        def make(kw: dict[str, Any]) -> tuple[Any, ...]:
            row = [*pick(kw)]
            for relation, attribute in links:
                parent = kw[relation]
                row.append(None if parent is None else getattr(parent, attribute))
            row.extend(tail)
            for i in enums:
                value = row[i]
                if isinstance(value, enum.Enum):
                    row[i] = value._value_  # its label (without `.value`'s descriptor)
            return tuple(row)

        return columns, make


def _parents(model: type[Any], kwargs: dict[str, Any]) -> list[Any]:
    """The parent objects among a factory's model arguments (its many-to-one relationships)."""
    if model in _MODEL_ORDER:
        return [kwargs[key] for key in _shape(model).parent_keys if kwargs.get(key) is not None]
    return [value for value in kwargs.values() if hasattr(value, "_sa_instance_state")]


def _shape(model: type[Any]) -> _Shape:
    shape = _SHAPES.get(model)
    if shape is None:
        shape = _SHAPES[model] = _Shape(model)
    return shape


_SHAPES: dict[type[Any], _Shape] = {}


def insert_row(session: Session, obj: Any, kwargs: dict[str, Any]) -> bool:
    """INSERT the row of `obj` (made from `kwargs`) now, and make `obj` persistent in
    `session` as a flush would, for a fifth of its cost. False (nothing done) for a model
    not ours, or when a parent is not in the database yet (only a flush orders them)."""
    if type(obj) not in _MODEL_ORDER:
        return False
    for value in _parents(type(obj), kwargs):
        if not isinstance(value, PendingRow) and not inspect(value).persistent:
            return False
    if session.new:
        session.flush()  # the session's own pending rows may be the parents of this one
    shape = _shape(type(obj))
    values = shape.values(kwargs)
    with_rules = fill_rule_columns(session, shape.table, values, kwargs)
    session.connection().execute(with_rules if with_rules is not None else shape.insert, values)
    state = obj.__dict__
    for column, value in values.items():
        key = shape.keys.get(column)
        if key is None:
            state[column] = value  # a column of your rules: an attribute of this object only
        elif key not in state or (with_rules is not None and label_of(state[key]) != value):
            set_committed_value(obj, key, value)  # no reload when read; a rule's label
    make_transient_to_detached(obj)
    session.add(obj)
    return True


def set_column(session: Session, row: Any, column: str, value: Any) -> None:
    """Give `row` a new value of `column`: a batch's row before it is written, else the
    database's and the session's object at once (an UPDATE, no flush)."""
    if isinstance(row, PendingRow):
        row.values[_shape(row.model).keys[column]] = value
        batch = current_maker()
        if not isinstance(batch, Batch) or id(row) not in batch.sent:
            return  # written with the others
    elif not inspect(row).persistent:
        setattr(row, _shape(type(row)).keys[column], value)
        return
    table = row.__table__
    session.connection().execute(
        table.update().where(table.c.id == row.id).values({table.c[column]: value})
    )
    if not isinstance(row, PendingRow):
        set_committed_value(row, _shape(type(row)).keys[column], value)


class Batch(Maker):
    """The rows of one `bulk_create` call, its parents' included, until they are written."""

    folds = True

    def __init__(self, session: Session, description: str) -> None:
        super().__init__(session)
        self.description = description
        self.rows: dict[type[Any], list[PendingRow]] = {}
        self._found: dict[tuple[type[Any], tuple[Any, ...]], Any] = {}
        #: factory -> (model, its parents' keys, get-or-create keys, the batch's rows of it)
        self._tables: dict[Any, tuple[type[Any], list[str], tuple[str, ...], list[Any]]] = {}
        self._indexed: dict[type[Any], int] = {}  # rows of each model `_index` has seen
        #: Parents given to the batch that are already in the session.
        self.given: dict[int, Any] = {}
        self._sent_upto: dict[type[Any], int] = {}  # how many rows of each model were sent
        self.sent: set[int] = set()  # ids of the rows a thread wrote (a change: an UPDATE)
        #: Once a chunk is written while the next is made: the batch's savepoint and the
        #: thread writing its chunks, and the chunk it writes.
        self._writer: tuple[SessionTransaction, ThreadPoolExecutor] | None = None
        self._writing: Future[list[int]] | None = None

    def _new_plan(self, factory_class: Any, extras: dict[str, Any]) -> Plan:
        plan = super()._new_plan(factory_class, extras)
        for name, declaration, _ in plan.hooks:
            if not isinstance(declaration, RelatedFactory) and not getattr(
                declaration, "celestra_bulk_safe", False
            ):
                raise CelestraError(
                    f"{self.description}: {factory_class.__name__} has the post-generation "
                    f"hook {name!r}, which may need its object in the database, and a batch "
                    "writes its rows only at its end. Use create_batch() for these rows, or "
                    "make the hook a RelatedFactory"
                )
        return plan

    def _finish(self, factory_class: Any, step: Step, instance: Any, results: Any) -> None:
        pass  # nothing to save again: the batch writes its rows in COPYs

    def _instantiate(
        self, factory_class: Any, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        table = self._tables.get(factory_class)
        if table is None:
            model = fb.model_class(factory_class)
            if not hasattr(factory_class, "bulk_create") or model not in _MODEL_ORDER:
                if issubclass(factory_class, BaseListFactory):  # a declaration's list, not a row
                    return fb.build(factory_class, args, kwargs)
                raise CelestraError(
                    f"{self.description}: {factory_class.__name__} is not a Celestra factory; "
                    "a batch can only make rows of the Celestra tables"
                )
            rows = self.rows.setdefault(model, [])
            keys = fb.get_or_create_keys(factory_class)
            table = self._tables[factory_class] = (model, _shape(model).parent_keys, keys, rows)
        model, parent_keys, keys, rows = table
        for value in [kwargs[key] for key in parent_keys if kwargs.get(key) is not None]:
            if not isinstance(value, PendingRow) and id(value) not in self.given:
                self.given[id(value)] = value
                if not inspect(value).persistent:
                    self.session.add(value)  # flushed before the COPY, so it comes first
        if not keys:
            rows.append(row := PendingRow(model, kwargs))
            return row
        # The batch's row or the session's with these keys (looked up once), else a new one.
        lookup = {key: kwargs[key] for key in keys}
        found_key = (model, tuple(lookup.values()))
        found = self._found.get(found_key)
        if found is None:
            found = self.session.scalars(select(model).filter_by(**lookup)).first()
            if found is None:
                rows.append(found := PendingRow(model, kwargs))
            else:  # the session's, remembered now (the batch's rows by `_index`)
                self._remember(found, model, found.id, _parents(model, kwargs))
            self._found[found_key] = found
        return found

    def _index(self, model: type[Any]) -> None:
        """Remember the rows of `model` made since the last look: `find` and `children`
        are asked for few tables, so no row is indexed until its table is."""
        rows, start = self.rows.get(model, []), self._indexed.get(model, 0)
        for row in rows[start:]:
            self._remember(row, model, row.values.get("id"), _parents(model, row.values))
        self._indexed[model] = len(rows)

    def made(self, obj: Any) -> bool:
        return isinstance(obj, PendingRow) or super().made(obj)

    def children(self, model: type[Any], parent: Any) -> list[Any]:
        self._index(model)
        return super().children(model, parent)

    def find(self, model: type[Any], key: Any) -> Any:
        self._index(model)
        return super().find(model, key)

    def send(self, last: bool = False) -> None:
        """Write the rows made since the last `send`, parents first. Until the `last`, a
        thread writes them while the batch makes its next rows (the server checks their
        keys meanwhile); the batch waits for one chunk before it sends the next."""
        self._wait()
        if not last and self._writer is None:  # a batch that fails leaves none of its rows
            thread = ThreadPoolExecutor(1, thread_name_prefix="celestra-batch")
            self._writer = (self.session.begin_nested(), thread)
        chunk = []
        for model in MODELS_IN_FK_ORDER:
            rows = self.rows.get(model, [])[self._sent_upto.get(model, 0) :]
            if not rows:
                continue
            self._sent_upto[model] = len(self.rows[model])
            if not last:
                self.sent.update(map(id, rows))
            shape = _shape(model)
            for columns, tuples in shape.tuples(self.session, rows).items():
                chunk.append((shape.table, columns, tuples))
        pg_conn = loader.raw_connection(self.session)  # flushes the session first
        if last or self._writer is None:
            self._heard(self._copy(pg_conn, chunk))
        else:
            self._writing = self._writer[1].submit(self._copy, pg_conn, chunk)

    def _copy(self, pg_conn: psycopg.Connection[Any], chunk: list[Any]) -> list[int]:
        """COPY each (table, columns, rows) of `chunk`; how many rows each wrote."""
        written = []
        for table, columns, rows in chunk:
            try:
                written.append(loader.copy_rows(pg_conn, table, columns, rows))
            except psycopg.Error as error:
                from pytest_celestra.db.drift import describe_refusal

                after = (
                    "The session's transaction is aborted (roll it back)"
                    if self._writer is None
                    else "None of its rows was kept (its savepoint rolled back)"
                )
                raise BulkWriteError(
                    f"{self.description} failed writing its {len(rows)} {table} rows: "
                    f"{describe_refusal(error, table)}. {after}; a value you passed likely "
                    "breaks a constraint (e.g. the same email for every row)"
                ) from None
        return written

    def _wait(self) -> None:
        """The chunk being written, written (its error raised here)."""
        if self._writing is not None:
            writing, self._writing = self._writing, None
            self._heard(writing.result())

    def _heard(self, written: list[int]) -> None:
        heard = self.session.info.get(ROWS_WRITTEN)
        if heard is not None:
            for rows in written:
                heard(rows)

    def finish(self) -> None:
        """Write the rows not written yet and keep the batch's (else `abandon` it)."""
        try:
            self.send(last=True)
        except BaseException:
            self.abandon()
            raise
        if self._writer is not None:
            savepoint, thread = self._writer
            thread.shutdown()
            savepoint.commit()
        for parent in self.given.values():
            # Their collections (company.users, ...) did not see the new children.
            state = inspect(parent)
            if state.persistent and state.session is self.session:
                self.session.expire(parent, _shape(type(parent)).collections)

    def abandon(self) -> None:
        """Undo what the batch wrote (its savepoint rolled back), once its writer is done."""
        if self._writer is None:
            return  # nothing written, or one failed COPY: the transaction is aborted
        savepoint, thread = self._writer
        with contextlib.suppress(BaseException):
            self._wait()
        thread.shutdown()
        savepoint.rollback()


class Recipes(Maker):
    """The factories' declarations as a scenario's row recipes: draws from the scenario's
    seeded `provider`, times from its `anchor`, no session. A step asks for a table's
    recipe once and calls it for each row with its plan's choices; its parents are rows a
    recipe made before (no recipe makes a parent of its own, and no post-generation hook
    runs)."""

    folds = True  # what reads only constants, such as the clock, is worked out once

    def __init__(self, provider: Any, anchor: datetime, reshape: Reshaper | None = None) -> None:
        super().__init__(None)  # type: ignore[arg-type]  # no session: nothing is looked up
        self.provider, self.rng = provider, provider.rng
        self.fakers = lambda locale: provider  # every locale: the scenario's seeded draws
        self._clock = anchor
        self.company_domains = {spec.PLATFORM_DOMAIN}  # its companies' (one each)
        self.reshape = reshape  # your rules on our columns

    def recipe(self, factory_class: Any, given: str) -> Callable[..., PendingRow]:
        """`factory_class`'s row with the values of the names in `given` (its columns and
        parameters, no trait), as `recipe(**values)`."""
        names = given.split()
        plan = self._new_plan(factory_class, dict.fromkeys(names))  # its hooks are not run:
        # a step writes the rows they would (an audit log's change logs, its activity)
        arguments = plan.arguments
        if arguments is not None and arguments.plain:
            # The model's columns in order; a parameter only when one of them reads it (the
            # step gives most of what the parameters would work out, e.g. `times`).
            columns = {name for name, _ in arguments.kept}
            plan.lazy = [(name, evaluate) for name, evaluate in plan.lazy if name in columns]
        model, sequence = fb.model_class(factory_class), count()
        shape = _shape(model)
        rules = {} if self.reshape is None else self.reshape.recipe_columns(shape.table)
        # A foreign key is its parent's: your rule on it reshapes the row once made.
        keys = [(c, rules.pop(c)) for c in list(rules) if c in shape.foreign_keys]
        reshaped = self._follow_rules(plan, shape, rules, names)

        def row(**values: Any) -> PendingRow:
            for key in reshaped:  # the step's value, which your rules reshape
                values[_GIVEN + key] = values.pop(key)
            made = PendingRow(model, self.arguments(plan, next(sequence), values))
            for column, reshape in keys:
                made.__dict__[column] = reshape(getattr(made, column), _Columns(made, shape))
            return made

        return row

    def _follow_rules(
        self, plan: Plan, shape: _Shape, rules: dict[str, Reshape], names: list[str]
    ) -> list[str]:
        """Your `rules` on the columns of `shape` as part of `plan`: each column they
        reshape is worked out when first read, from the value the recipe (or the step) gives
        it, so whatever reads it follows them. Returns the given names they reshape."""
        given = []
        for column, reshape in rules.items():
            key = shape.keys[column]
            enum_class = getattr(shape.model.__table__.c[column].type, "enum_class", None)
            made = plan.evaluators.get(key)
            if made is None:  # a value: the step's, or the factory's constant
                value = plan.constants.pop(key)
                if key in names:
                    given.append(key)
                    made = lambda row, name=_GIVEN + key: row.__dict__[name]  # noqa: E731
                else:
                    made = lambda row, value=value: value  # noqa: E731
                plan.lazy.append((key, made))
            plan.evaluators[key] = evaluate = _reshaped(made, reshape, shape, enum_class)
            plan.lazy = [(name, evaluate if name == key else e) for name, e in plan.lazy]
        return given

    def _instantiate(
        self, factory_class: Any, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        raise CelestraError(
            f"the recipe of {step.parent_step.plan.factory.__name__} made a "  # type: ignore[union-attr]
            f"{factory_class.__name__}: a scenario's step passes every parent"
        )


_GIVEN = "_celestra_given_"  # a recipe's row keeps a given value your rules reshape here


def _reshaped(
    made: Callable[[Any], Any], reshape: Reshape, shape: _Shape, enum_class: Any
) -> Callable[[Any], Any]:
    """The evaluator of a column your rules reshape: its value `made` for the row, reshaped
    (enums as their labels, and back to our member of a label)."""

    def evaluate(row: Any) -> Any:
        value = reshape(label_of(made(row)), _Columns(row, shape))
        return value if enum_class is None or value is None else member_of(enum_class, value)

    return evaluate


class _Columns(Mapping[str, Any]):
    """A recipe's row as your rules read it: column -> value (enums as their labels, a
    parent's key for a foreign key), each worked out when read."""

    def __init__(self, row: Any, shape: _Shape) -> None:
        self._row, self._shape = row, shape

    def __getitem__(self, column: str) -> Any:
        foreign = self._shape.foreign_keys.get(column)
        if foreign is not None:
            parent = getattr(self._row, foreign[0], None)
            return None if parent is None else getattr(parent, foreign[1])
        return label_of(getattr(self._row, self._shape.keys[column]))

    def __iter__(self) -> Iterator[str]:
        return iter(self._shape.keys)

    def __len__(self) -> int:
        return len(self._shape.keys)

    def values(self) -> Any:  # what a rule's error hides: the values worked out so far
        return [label_of(value) for value in self._row.__dict__.values()]


def copy_tuple(row: PendingRow) -> tuple[Any, ...]:
    """`row` as a COPY tuple of every column of its table, in the table's order."""
    kwargs = row.__dict__
    writer = _TUPLE_WRITERS.get((row._model, tuple(kwargs)))
    if writer is None:
        shape = _shape(row._model)
        columns, make = shape._writer(kwargs)
        if set(columns) != set(shape.keys):
            missing = ", ".join(sorted(set(shape.keys) - set(columns)))
            raise CelestraError(f"a {shape.table} row of a recipe has no {missing}")
        order = operator.itemgetter(*(columns.index(column) for column in shape.keys))
        writer = _TUPLE_WRITERS[row._model, tuple(kwargs)] = lambda kw: order(make(kw))
    return writer(kwargs)  # type: ignore[no-any-return]


_TUPLE_WRITERS: dict[tuple[type[Any], tuple[str, ...]], Callable[[dict[str, Any]], Any]] = {}


_MODEL_ORDER = frozenset(MODELS_IN_FK_ORDER)

CHUNK = 2_000
"""Rows of a `bulk_create` made before they are sent to be written while it makes the next."""

ROWS_WRITTEN = "celestra_rows_written"
"""Key of `session.info` for a callable that hears how many rows each COPY of a batch
wrote (SQLAlchemy's statement events do not see a COPY): a scenario's build counts them
in its progress line."""


@contextlib.contextmanager
def no_cyclic_collection() -> Iterator[None]:
    """No cyclic garbage collection while a batch or a scenario makes its rows: each
    collection would go through every row kept so far (a tenth of a batch's time, a sixth
    of a scenario's). Their makers free the cycles they make (a row and its step)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


class BulkWriteError(CelestraError):
    """The database refused a batch's rows (its COPY failed)."""


class BulkResult(Sequence[T], Generic[T]):
    """The rows a `bulk_create` made, in order: `result.ids` (the primary keys) now, the
    ORM objects (indexing, iterating), attached to the session, loaded on first use with
    one `SELECT ... WHERE id = ANY(:ids)`."""

    def __init__(self, session: Session, model: type[T], ids: Sequence[uuid.UUID]) -> None:
        self.session = session
        self.model = model
        self.ids: tuple[uuid.UUID, ...] = tuple(ids)
        self._objects: list[T] | None = None

    def objects(self) -> list[T]:
        """The ORM objects, loaded on first call."""
        if self._objects is None:
            model: Any = self.model
            ids = bindparam("ids", list(self.ids), type_=ARRAY(Uuid))
            objects = self.session.scalars(select(model).where(model.id == any_(ids)))
            by_id = {obj.id: obj for obj in objects}
            self._objects = [by_id[key] for key in self.ids]
        return self._objects

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> list[T]: ...
    def __getitem__(self, index: int | slice) -> T | list[T]:
        return self.objects()[index]

    def __iter__(self) -> Iterator[T]:
        return iter(self.objects())

    def __repr__(self) -> str:
        return f"<BulkResult of {len(self.ids)} {self.model.__name__}>"


def bulk_create(
    factory_class: Any, size: int, params: dict[str, Any], session: Session
) -> BulkResult[Any]:
    """What `CelestraFactory.bulk_create` runs."""
    if not isinstance(size, int) or size < 0:
        raise CelestraError(
            f"{factory_class.__name__}.bulk_create(size): size must be a whole number >= 0, "
            f"got {size!r}"
        )
    text = ", ".join(f"{key}={value!r}" for key, value in params.items())
    text = text if len(text) <= 200 else text[:197] + "..."
    description = f"{factory_class.__name__}.bulk_create({size}, {text})"
    if isinstance(current_maker(), Batch):
        raise CelestraError(f"{description}: a batch cannot be made inside another batch")
    # Fail before making anything when the session's connection cannot COPY for us.
    driver = getattr(session.connection().connection, "driver_connection", None)
    if not isinstance(driver, psycopg.Connection):
        raise CelestraError(
            f"{description}: a batch is written with COPY through a synchronous psycopg 3 "
            f"connection, and this session's is {type(driver).__name__} (an async session "
            "cannot run it, not even in run_sync). Use a postgresql+psycopg:// session such "
            "as celestra_session, or create_batch()"
        )
    with no_cyclic_collection(), loader.prompt_thread_switches(size > CHUNK):
        batch = Batch(session, description)
        made = []
        try:
            with batch.active():
                for _ in range(size):
                    made.append(batch.make(factory_class, params))
                    if len(made) % CHUNK == 0 and len(made) < size:
                        batch.send()
        except BaseException:
            batch.abandon()
            raise
        try:
            batch.finish()
        except RuleError as error:
            error.add_note(
                f"raised making the rows of {factory_class.__name__}.bulk_create({size})"
            )
            raise
        ids = [row.id for row in made]
        del batch, made  # its rows freed now, by their counts, not by a collection after
    return BulkResult(session, fb.model_class(factory_class), ids)
