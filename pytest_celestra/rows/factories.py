# factory_boy is typed but its declarations are not annotated.
# mypy: disable-error-code="no-untyped-call"
"""factory_boy factories for the 15 Celestra tables, with whole, consistent parent chains.

Every factory makes a row that satisfies every constraint of the schema; a child made
alone gets a valid parent chain, and parents that must agree are shared. Column values
come from [`CelestraProvider`][pytest_celestra.rows.providers.CelestraProvider], the same
definitions the bulk scenario uses. Times are relative to "now". Defaults are the happy
path (`UserFactory()` is an ACTIVE REGULAR_USER of an ACTIVE company who can sign in);
every other status or role is a trait (`UserFactory(suspended=True)`).

`create()` writes into the session bound by
[`bound_session`][pytest_celestra.rows.factories.bound_session] (the `celestra_*` fixtures bind
theirs); `build()` needs no database at all:

```python
def test_suspended_users_cannot_sign_in(celestra_session):
    user = UserFactory(suspended=True, password="s3cret!")
    ...

admin = UserFactory.build(company_admin=True)   # not saved, no session needed
```

Traits of each factory: [`traits_of`][pytest_celestra.rows.factories.traits_of]; every factory:
[`ALL_FACTORIES`][pytest_celestra.rows.factories.ALL_FACTORIES].
"""

from __future__ import annotations

import contextlib
import math
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import factory.random
from factory.declarations import (
    LazyAttribute,
    LazyAttributeSequence,
    LazyFunction,
    Maybe,
    PostGeneration,
    SelfAttribute,
    Sequence,
    SubFactory,
    Trait,
)
from factory.faker import Faker
from sqlalchemy import inspect, select
from sqlalchemy.exc import DBAPIError

from pytest_celestra.errors import (
    CelestraError,
    FactoryArgumentError,
    NoSessionError,
    RuleError,
    did_you_mean,
)
from pytest_celestra.rows import batches, factory_internals, passwords, row_maker, story
from pytest_celestra.rows.app_factories import added_label
from pytest_celestra.rows.providers import (
    CelestraProvider,
    company_domain,
    email_address,
    invitation_sent_window,
    knowledge_type_description,
    lockout_start_window,
    session_created_window,
    session_held_window,
)
from pytest_celestra.rows.row_maker import current_maker, pure
from pytest_celestra.schema import spec
from pytest_celestra.schema.app_rules import SESSION_INFO_KEY, rules_of
from pytest_celestra.schema.enums import label_of
from pytest_celestra.schema.models import (
    MODELS_IN_FK_ORDER,
    Agent,
    AgentKnowledgeBase,
    AgentStatus,
    AuditChangeLog,
    AuditEventType,
    AuditLog,
    Company,
    CompanyStatus,
    FailedLogin,
    Invitation,
    InvitationStatus,
    KnowledgeBase,
    KnowledgeBaseStatus,
    KnowledgeSource,
    KnowledgeType,
    Notification,
    NotificationStatus,
    NotificationType,
    PasswordHistory,
    User,
    UserLockout,
    UserRole,
    UserSession,
    UserStatus,
)

if TYPE_CHECKING:
    import random
    from collections.abc import Callable, Iterator

    from sqlalchemy.orm import Session

    from pytest_celestra.schema.app_rules import SchemaRules

Faker.add_provider(CelestraProvider)

_SESSION: ContextVar[Session | None] = ContextVar("celestra_factory_session", default=None)


@contextlib.contextmanager
def bound_session(session: Session, rules: SchemaRules | None = None) -> Iterator[Session]:
    """Make every factory `create()` inside the block write into `session`, following
    `rules` (the description of your schema; the session keeps it in `session.info`).

    The `celestra_session` and `celestra_seeded_db` fixtures do this for you, with the
    rules of your `pytest_celestra_schema_rules`; use it directly outside pytest:

    ```python
    with Session(engine) as session, bound_session(session):
        UserFactory.create_batch(10)
        session.commit()
    ```
    """
    if rules is not None:
        session.info[SESSION_INFO_KEY] = rules
    token = _SESSION.set(session)
    try:
        yield session
    finally:
        _SESSION.reset(token)


def current_session(factory_name: str = "CelestraFactory") -> Session:
    """The session bound by [`bound_session`][pytest_celestra.rows.factories.bound_session];
    [`NoSessionError`][pytest_celestra.errors.NoSessionError] if none is."""
    session = _SESSION.get()
    if session is None:
        raise NoSessionError(factory_name)
    return session


# --- time: every time of a factory row is an offset in seconds from its `clock` ---------

CLOCK_LAG = timedelta(minutes=1)
"""Factory times end this long before the wall clock, so a row is not "in the future"
for a database transaction that started a little earlier than the factory call."""
_NO_BOUND = -10 * 365 * spec.DAY
_SECOND = timedelta(seconds=1)  # times an offset: cheaper than timedelta(seconds=offset)


def _clock() -> datetime:
    """ "Now" of a factory row: one reading per factory call or batch (its maker's)."""
    maker = row_maker.current_maker()
    if maker is not None:
        return maker.clock(CLOCK_LAG)
    return datetime.now(UTC).replace(microsecond=0) - CLOCK_LAG


def _offset(clock: datetime, when: datetime | None) -> int:
    """Seconds from `clock` to `when` (rounded up, so "after" stays after)."""
    if when is None:
        return _NO_BOUND
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return math.ceil((when - clock).total_seconds())


def _at(clock: datetime, offset: int | None) -> datetime | None:
    return None if offset is None else clock + _SECOND * offset


def _latest_created(o: Any, *parents: str, floor: int = _NO_BOUND) -> int:
    rows = (getattr(o, name) for name in parents)
    return max([floor, *(_offset(o.clock, row.created_at) for row in rows if row is not None)])


def _not_before(*parents: str, floor: int = _NO_BOUND) -> Any:
    return pure(LazyAttribute(lambda o: _latest_created(o, *parents, floor=floor)))


def _time(index: int | None = None, source: str = "times") -> Any:
    """A column: `clock` + the offset in `source` (or its `index`-th element)."""

    def when(o: Any) -> datetime | None:
        value = getattr(o, source)
        offset = value if index is None else value[index]
        return None if offset is None else o.clock + _SECOND * offset  # _at, one call less

    return pure(LazyAttribute(when))


def _provider() -> Any:
    """What the row's draws come from: factory_boy's Faker (seeded with it), or a
    scenario's seeded provider."""
    maker = current_maker()
    return factory_internals.faker_instance() if maker is None else maker.provider


def _rng() -> random.Random:
    """The random generator of the row's other draws: factory_boy's (reseeded in place with
    Faker's), or a scenario's."""
    maker = current_maker()
    return factory.random.randgen if maker is None else maker.rng


def _closing(o: Any) -> int | None:
    """When `o.company` closed (its `updated_at`), None while it is ACTIVE."""
    company = o.company
    if company is None or company.status in (None, CompanyStatus.ACTIVE):
        return None
    return min(spec.LAST_MOMENT, _offset(o.clock, company.updated_at))


def _member_updated(table: str, follow: Callable[[Any, Any], Any], active: Any) -> Any:
    """`updated` of a company's row (story.row_updated): at its company's closing when
    its status is the one `follow(company status, active)` gives."""

    def updated(o: Any) -> int:
        followed = o.closing is not None and o.status == follow(_company_status(o), active)
        return story.row_updated(
            _provider(),
            o.created,
            left_service=story.is_closed(table, label_of(o.status)),
            closing=o.closing,
            with_company=followed,
        )

    return LazyAttribute(updated)


def _status_with_company(follow: Callable[[Any, Any], Any], active: Any) -> Any:
    return pure(LazyAttribute(lambda o: follow(_company_status(o), active)))


def _member_created() -> Any:
    return LazyAttribute(lambda o: story.member_created(_provider(), o.lower))


def _state_times(method: str) -> Any:
    state, lower, until = (SelfAttribute(f"..{name}") for name in ("state", "lower", "until"))
    return Faker(method, state=state, lower=lower, upper=until)


def _state_of_user(method: str, live: frozenset[str]) -> Any:
    """A state drawn by the provider's `method`, none of `live` for a user not ACTIVE."""
    return LazyAttribute(
        lambda o: story.state_of_user(
            getattr(_provider(), method), live, active=_active_until(o, "user") == 0
        )
    )


def _company_domains() -> set[str]:
    """The email domains of the companies made so far: in the bound session, or in a
    scenario (its recipes' own); none without either."""
    maker = current_maker()
    if isinstance(maker, batches.Recipes):
        return maker.company_domains
    session = _SESSION.get()
    if session is None:
        return set()
    domains: set[str] = session.info.setdefault("celestra_company_domains", set())
    return domains


def _company_status(o: Any) -> CompanyStatus | None:
    return None if o.company is None else o.company.status


def _active_until(o: Any, *people: str) -> int:
    """The last offset at which each of the named users was ACTIVE (story.active_until)."""
    latest = 0
    for name in people:
        user = getattr(o, name)
        if user is not None and user.status is not None and user.updated_at is not None:
            until = story.active_until(label_of(user.status), _offset(o.clock, user.updated_at))
            latest = min(latest, until)
    return latest


def _closed_at(o: Any) -> int:
    """The offset at which `o.record` left service (story.is_closed); 0 if it did not."""
    record = o.record
    if record is None or record.updated_at is None or record.status is None:
        return 0
    closed = story.is_closed(record.__tablename__, label_of(record.status))
    return _offset(o.clock, record.updated_at) if closed else 0


def _link_created(*rows: str) -> Any:
    """`created` of a link (story.link_created): before its rows were DISABLED or ARCHIVED."""

    def created(o: Any) -> int:
        retired = []
        for name in rows:
            row = getattr(o, name)
            status = None if row is None else label_of(row.status)
            if status in story.RETIRED_STATUSES and row.updated_at is not None:
                retired.append(_offset(o.clock, row.updated_at))
        return story.link_created(_provider(), o.lower, *retired)

    return LazyAttribute(created)


class CelestraFactory(factory_internals.RoutedFactory):
    """Base of the Celestra factories: writes into the session of
    [`bound_session`][pytest_celestra.rows.factories.bound_session]."""

    class Meta:
        abstract = True
        sqlalchemy_session_persistence = "flush"

    class Params:
        clock = pure(LazyFunction(_clock))

    id = Faker("celestra_uuid")

    @classmethod
    def _route(cls, strategy: Any, params: dict[str, Any]) -> Any:
        params = cls._share_parents(checked_arguments(cls, params))
        if strategy == factory_internals.CREATE_STRATEGY:
            # Fail before any parent is made, naming the factory the test called.
            session = current_session(cls.__name__)
            maker = row_maker.current_maker()
            if maker is not None:  # called while making another object: join its call
                return maker.make(cls, params)
            if not factory_internals.is_abstract(cls):
                with row_maker.Maker(session).active() as maker:
                    return maker.make(cls, params)
        return cls._default_generate(strategy, params)

    @classmethod
    def _enum_labels(cls, params: dict[str, Any]) -> dict[str, Any]:
        """`params` with enum labels made members (a parent's `company__status=...`)."""
        return checked_arguments(cls, params, check_names=False)

    @classmethod
    def _build(cls, model_class: type[Any], *args: Any, **kwargs: Any) -> Any:
        # A parent built through a SubFactory (`company__status="SUSPENDED"`) gets its
        # keywords from factory_boy's builder, not `_route`: its labels become members here.
        return super()._build(model_class, *args, **cls._enum_labels(kwargs))

    @classmethod
    def _share_parents(cls, params: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments with the parents that must be shared filled in."""
        return params

    @classmethod
    def bulk_create(cls, size: int, **kwargs: Any) -> batches.BulkResult[Any]:
        """Make `size` rows like `create_batch(size, **kwargs)`, with one binary COPY per
        table into the bound session's transaction. Returns a
        [`BulkResult`][pytest_celestra.rows.batches.BulkResult]: `.ids` at once, the ORM objects
        on first use:

        ```python
        users = UserFactory.bulk_create(10_000, company=company, suspended=True)
        assert users[0].company is company
        ```
        """
        session = current_session(cls.__name__)
        kwargs = checked_arguments(cls, kwargs, call=f"{cls.__name__}.bulk_create")
        return batches.bulk_create(cls, size, cls._share_parents(kwargs), session)

    @classmethod
    def _create(cls, model_class: type[Any], *args: Any, **kwargs: Any) -> Any:
        session = current_session(cls.__name__)
        if keys := factory_internals.get_or_create_keys(cls):
            # No rollback on conflict (unlike factory_boy's): the test owns the transaction.
            lookup = {key: kwargs[key] for key in keys}
            existing = session.scalars(select(model_class).filter_by(**lookup)).first()
            if existing is not None:
                return existing
        # An INSERT of its own instead of a flush per object: the row is in the database
        # when the call returns, and a constraint error is raised by that call.
        table = model_class.__tablename__
        rules = rules_of(session)
        added = rules.added_columns(table)
        try:
            if added:  # the INSERT of this call carries them: its parents must be saved
                if parents := [v for v in kwargs.values() if _unsaved(v)]:
                    session.add_all(parents)
                    session.flush()
                obj = model_class(*args, **{k: v for k, v in kwargs.items() if k not in added})
            else:
                obj = model_class(*args, **kwargs)
            if not batches.insert_row(session, obj, kwargs):
                session.add(obj)
                session.flush()
        except DBAPIError as error:
            # Name table, column and constraint, never the row's values.
            from pytest_celestra.db.drift import rejected_row

            rejected = rejected_row(error, table, cls.__name__, rules)
            rejected.add_note(f"raised saving the {table} row of {cls.__name__}")
            raise rejected from None
        except RuleError as error:
            error.add_note(f"raised making the {table} row of {cls.__name__}")
            raise
        return obj


def _unsaved(value: Any) -> bool:
    return hasattr(value, "_sa_instance_state") and not inspect(value).persistent


def _member_of(company: Any, **kwargs: Any) -> Any:
    """A user of `company` (a REGULAR_USER unless `role=`), a super admin without one."""
    return SubFactory(
        "pytest_celestra.rows.factories.UserFactory",
        company=company,
        role=Maybe(
            pure(LazyAttribute(lambda o: o.company is None)),
            UserRole.SUPER_ADMIN,
            kwargs.pop("role", UserRole.REGULAR_USER),
        ),
        **kwargs,
    )


def _parent_company(path: str) -> Any:
    """The company of the parent's `path` object (None when there is none)."""
    return pure(LazyAttribute(lambda o: getattr(getattr(o.factory_parent, path), "company", None)))


# --- independent tables -----------------------------------------------------------------


class CompanyFactory(CelestraFactory):
    """An ACTIVE company (tenant); its email domain is `company_domain(company.name)`."""

    class Meta:
        model = Company

    class Params:
        created = Faker("moment", lower=spec.COMPANY_CREATED[0], upper=spec.COMPANY_CREATED[1])
        # A closed company's updated_at is when it closed: after its members were created.
        updated = LazyAttribute(
            lambda o: story.row_updated(
                _provider(), o.created, left_service=o.status is not CompanyStatus.ACTIVE
            )
        )
        suspended = Trait(status=CompanyStatus.SUSPENDED)
        archived = Trait(status=CompanyStatus.ARCHIVED)

    vertical = Faker("company_vertical")
    # A domain of its own (story.unique_company_name) among the session's companies.
    name = LazyAttribute(
        lambda o: story.unique_company_name(_provider(), o.vertical, _company_domains())[0]
    )
    description = Faker("company_description", vertical=SelfAttribute("..vertical"))
    size = Faker("company_size")
    status = CompanyStatus.ACTIVE
    created_at = _time(source="created")
    updated_at = _time(source="updated")


class KnowledgeTypeFactory(CelestraFactory):
    """A knowledge type from the catalogue; `create()` reuses an existing one by name."""

    class Meta:
        model = KnowledgeType
        sqlalchemy_get_or_create = ("name",)

    class Params:
        created = pure(LazyAttribute(lambda o: story.knowledge_type_created(o.name)))

    name = Faker("knowledge_type_name")
    description = pure(LazyAttribute(lambda o: knowledge_type_description(o.name)))
    created_at = _time(source="created")
    updated_at = _time(source="created")


# --- first level ------------------------------------------------------------------------


class _CompanyRowFactory(CelestraFactory):
    """Base of the factories of a company's rows (users, agents, knowledge bases)."""

    class Meta:
        abstract = True

    class Params:
        lower = _not_before("company")
        created = _member_created()
        closing = pure(LazyAttribute(_closing))

    company: Any = SubFactory(CompanyFactory)
    created_at = _time(source="created")
    updated_at = _time(source="updated")


class UserFactory(_CompanyRowFactory):
    """An ACTIVE REGULAR_USER of a new (ACTIVE) company, or of `company=`; signs in with
    [`DEFAULT_PASSWORD`][pytest_celestra.rows.passwords.DEFAULT_PASSWORD] unless `password=`."""

    class Meta:
        model = User

    class Params:
        password = passwords.DEFAULT_PASSWORD
        created = Maybe(
            "company",
            _member_created(),
            Faker("moment", lower=spec.SUPER_ADMIN_CREATED[0], upper=spec.SUPER_ADMIN_CREATED[1]),
        )
        updated = _member_updated("users", story.member_status, UserStatus.ACTIVE)
        email_domain = pure(
            LazyAttribute(
                lambda o: (
                    spec.PLATFORM_DOMAIN if o.company is None else company_domain(o.company.name)
                )
            )
        )
        super_admin = Trait(role=UserRole.SUPER_ADMIN)
        company_admin = Trait(role=UserRole.COMPANY_ADMIN)
        space_admin = Trait(role=UserRole.SPACE_ADMIN)
        suspended = Trait(status=UserStatus.SUSPENDED)
        blocked = Trait(status=UserStatus.BLOCKED)
        archived = Trait(status=UserStatus.ARCHIVED)

    role = UserRole.REGULAR_USER
    company = Maybe(
        pure(LazyAttribute(lambda o: o.role is UserRole.SUPER_ADMIN)),
        None,
        SubFactory(CompanyFactory),
    )
    name = Faker("person_name")
    # The sequence number keeps emails unique however often a name comes up.
    email = LazyAttributeSequence(lambda o, n: email_address(o.name, o.email_domain, n))
    password_hash = LazyAttribute(lambda o: passwords.hash_password(o.password, _rng()))
    # ACTIVE, unless the company is closed: then SUSPENDED or ARCHIVED with it.
    status = _status_with_company(story.member_status, UserStatus.ACTIVE)


class AgentFactory(_CompanyRowFactory):
    """An ACTIVE AI agent of a new company (or of `company=`)."""

    class Meta:
        model = Agent

    class Params:
        updated = _member_updated("agents", story.agent_status, AgentStatus.ACTIVE)
        draft = Trait(status=AgentStatus.DRAFT)
        disabled = Trait(status=AgentStatus.DISABLED)
        archived = Trait(status=AgentStatus.ARCHIVED)

    name = Faker("agent_name")
    description = Faker("agent_description")
    agent_protocol = Faker("agent_protocol")
    status = _status_with_company(story.agent_status, AgentStatus.ACTIVE)


class KnowledgeBaseFactory(_CompanyRowFactory):
    """An ACTIVE knowledge base of a new company (or of `company=`)."""

    class Meta:
        model = KnowledgeBase

    class Params:
        updated = _member_updated(
            "knowledge_bases", story.knowledge_base_status, KnowledgeBaseStatus.ACTIVE
        )
        building = Trait(status=KnowledgeBaseStatus.BUILDING)
        draft = Trait(status=KnowledgeBaseStatus.DRAFT)
        disabled = Trait(status=KnowledgeBaseStatus.DISABLED)
        archived = Trait(status=KnowledgeBaseStatus.ARCHIVED)

    name = Faker("knowledge_base_name")
    description = Faker("knowledge_base_description")
    status = _status_with_company(story.knowledge_base_status, KnowledgeBaseStatus.ACTIVE)


# --- second level -----------------------------------------------------------------------


class AgentKnowledgeBaseFactory(CelestraFactory):
    """An agent linked to a knowledge base of the same company: the given side's, or
    `company=`."""

    class Meta:
        model = AgentKnowledgeBase

    class Params:
        company = SubFactory(CompanyFactory)
        lower = _not_before("agent", "knowledge_base")
        created = _link_created("agent", "knowledge_base")

    agent = SubFactory(AgentFactory, company=SelfAttribute("..company"))
    knowledge_base = SubFactory(KnowledgeBaseFactory, company=SelfAttribute("..company"))
    created_at = _time(source="created")

    @classmethod
    def _share_parents(cls, params: dict[str, Any]) -> dict[str, Any]:
        if "company" not in params:
            # Share the given side's company rather than making a new one for the other.
            given = params.get("agent") or params.get("knowledge_base")
            if given is not None:
                params = {**params, "company": given.company}
        return params


class KnowledgeSourceFactory(CelestraFactory):
    """A source of a knowledge base; its type is reused from the catalogue (get or create)."""

    class Meta:
        model = KnowledgeSource

    class Params:
        lower = _not_before("knowledge_base", "knowledge_type")
        created = _link_created("knowledge_base")
        updated = LazyAttribute(lambda o: story.updated_after(_provider(), o.created))
        domain = pure(LazyAttribute(lambda o: company_domain(o.knowledge_base.company.name)))

    knowledge_base = SubFactory(KnowledgeBaseFactory)
    knowledge_type = SubFactory(KnowledgeTypeFactory)
    name = Faker(
        "knowledge_source_name",
        type_name=SelfAttribute("..knowledge_type.name"),
        domain=SelfAttribute("..domain"),
    )
    created_at = _time(source="created")
    updated_at = _time(source="updated")


def _admin_actor() -> Any:
    """The user of an admin action: a company admin, now and then a super admin."""
    return Maybe(
        LazyAttribute(lambda o: story.super_admin_acts(_rng())),
        SubFactory(UserFactory, super_admin=True),
        SubFactory(UserFactory, company_admin=True),
    )


def _actor_company() -> Any:
    """The actor's company, or a new one for a super admin."""
    return Maybe(_parent_company("user"), _parent_company("user"), SubFactory(CompanyFactory))


def _after_create(function: Callable[[Any], None]) -> Any:
    """A post-generation hook: `function(obj)` after `create()`, unless passed False."""

    def hook(obj: Any, create: bool, extracted: Any, **_: Any) -> None:
        if create and extracted is not False:
            function(obj)

    return batches.bulk_safe(PostGeneration(hook))


@_after_create
def _record_activity(log: AuditLog) -> None:
    """A sign-in starts a session, a sign-out ends one, a failed sign-in is a failed login."""
    when, event = log.created_at, log.event_type
    if when is None:
        return
    if event is AuditEventType.FAILED_LOGIN:
        FailedLoginFactory(user=log.user, attempted_at=when)
    elif log.user is not None and event in spec.AUDIT_ACTIONS["sign_in"]:
        _session(log.user, when)
    elif log.user is not None and event is AuditEventType.SESSION_ENDED:
        _session(log.user, when, ended=True)


@_after_create
def _record_role_change(log: AuditLog) -> None:
    """A role assignment is recorded with the change of users.role."""
    if log.table_name == "users" and log.event_type is AuditEventType.ROLE_ASSIGNMENT_CHANGE:
        AuditChangeLogFactory(audit_log=log)


class AuditLogFactory(CelestraFactory):
    """An audit log of a user's action, signed by an admin when the event type needs it;
    `role_change` / `config_change` (or `record=`) make one that changed a row."""

    class Meta:
        model = AuditLog
        # Traits set these: factory_boy lets a trait override a field, not a Params entry.
        exclude = ("record",)

    class Params:
        known_user = pure(LazyAttribute(lambda o: o.user is not None))
        lower = _not_before("user", "signer", "record", floor=spec.ACTIVITY_EARLIEST)
        # Nobody acts or signs after leaving ACTIVE; a closed row changes no more.
        window = pure(
            LazyAttribute(
                lambda o: story.activity_window(
                    [o.lower],
                    [min(_active_until(o, "user", "signer"), _closed_at(o)) - spec.ACTIVITY_MARGIN],
                )
            )
        )
        created = LazyAttribute(lambda o: _logged_moment(o))
        # The changed row always has a company: no company-less user gets a company role.
        role_change = Trait(
            event_type=AuditEventType.ROLE_ASSIGNMENT_CHANGE,
            user=_admin_actor(),
            record=_member_of(_actor_company()),
        )
        config_change = Trait(
            event_type=AuditEventType.CONFIGURATION_UPDATE,
            user=_admin_actor(),
            record=SubFactory(AgentFactory, company=_actor_company()),
        )
        unknown_user = Trait(event_type=AuditEventType.FAILED_LOGIN, user=None)

    record = None
    # A data export is an admin's: a super admin's now and then (story.super_admin_acts).
    user = Maybe(
        LazyAttribute(lambda o: o.event_type is AuditEventType.DATA_EXPORT),
        _admin_actor(),
        SubFactory(UserFactory),
    )
    event_type = Faker("audit_event_type")
    event_description = Faker(
        "audit_description",
        event_type=SelfAttribute("..event_type"),
        table_name=SelfAttribute("..table_name"),
        known_user=SelfAttribute("..known_user"),
    )
    ip_address = Faker("ip_address")
    # A COMPANY_ADMIN of the user's company, or a super admin (story.super_admin_signs).
    signer = Maybe(
        LazyAttribute(lambda o: o.event_type in spec.SIGNED_EVENT_TYPES),
        Maybe(
            LazyAttribute(
                lambda o: story.super_admin_signs(_rng(), o.user is None or o.user.company is None)
            ),
            SubFactory("pytest_celestra.rows.factories.UserFactory", super_admin=True),
            _member_of(_parent_company("user"), role=UserRole.COMPANY_ADMIN),
        ),
        None,
    )
    digital_signature = Maybe("signer", Faker("digital_signature"), None)
    reason = Faker("audit_reason", event_type=SelfAttribute("..event_type"))
    table_name = pure(LazyAttribute(lambda o: None if o.record is None else o.record.__tablename__))
    record_id = pure(LazyAttribute(lambda o: None if o.record is None else o.record.id))
    group_id = None
    created_at = _time(source="created")
    role_change_log = _record_role_change
    activity = _record_activity


def _logged_moment(o: Any) -> int:
    """When the action happened, in `window`; a sign-in starts a session, a sign-out
    happens while one is in progress (as in the scenario)."""
    p = _provider()
    signs_in = o.event_type in spec.AUDIT_ACTIONS["sign_in"]
    if o.user is None or not (signs_in or o.event_type is AuditEventType.SESSION_ENDED):
        moment: int = p.recent_moment(*o.window)
        return moment
    active = _active_until(o, "user") == 0
    state = story.state_of_user(p.session_state, story.LIVE_SESSION_STATES, active)
    times: tuple[int, int] = p.session_times(state, *o.window)
    latest: int = o.window[1]
    created: int = times[0] if signs_in else p.moment(times[0], min(times[1], latest))
    return min(created, latest)  # never after the user left, whatever the state


def _session(user: User, when: datetime, ended: bool = False) -> Any:
    """A session of `user` that starts at `when` (`ended`: in progress then), in a state
    whose window holds that moment, as the scenario's sign-ins and sign-outs do."""
    clock, p = _clock(), _provider()
    moment, lower = _offset(clock, when), _offset(clock, user.created_at)
    updated = 0 if user.updated_at is None else _offset(clock, user.updated_at)
    until = story.active_until(str(label_of(user.status)), updated)
    window = session_held_window if ended else session_created_window
    fits = story.states_holding(
        moment, spec.SESSION_STATE_WEIGHTS, lambda state: window(state, lower, until)
    )
    state = story.state_of_user(p.session_state, story.LIVE_SESSION_STATES, until == 0, fits)
    if ended:
        # Offsets round up: the session starts by `when`'s whole second, ends after it.
        exact = _at(clock, moment) == (when if when.tzinfo else when.replace(tzinfo=UTC))
        created, expires = p.session_times_holding(
            state, moment if exact else moment - 1, lower, until
        )
        times = (created, max(expires, moment))
    else:
        times = p.session_times_from(state, moment)
    return UserSessionFactory(user=user, state=state, times=times)


class FailedLoginFactory(CelestraFactory):
    """A failed sign-in of a user."""

    class Meta:
        model = FailedLogin

    class Params:
        known_user = pure(LazyAttribute(lambda o: o.user is not None))
        lower = _not_before("user", floor=spec.ACTIVITY_EARLIEST)
        attempted = LazyAttribute(lambda o: story.activity_moment(_provider(), o.lower))
        unknown_email = Trait(user=None)

    user = SubFactory(UserFactory)
    ip_address = Faker("ip_address")
    attempted_at = _time(source="attempted")
    failure_reason = Faker("failure_reason", known_user=SelfAttribute("..known_user"))


class _UserStateFactory(CelestraFactory):
    """Base of a user's rows whose times follow a drawn `state` (a trait picks one)."""

    class Meta:
        abstract = True
        exclude = ("state",)  # set by traits, as AuditLogFactory's record

    class Params:
        lower = _not_before("user")
        until = pure(LazyAttribute(lambda o: _active_until(o, "user")))

    user: Any = SubFactory(UserFactory)


class InvitationFactory(_UserStateFactory):
    """An invitation of a user, in a random state unless a trait picks one."""

    class Meta:
        model = Invitation

    class Params:
        times = _state_times("invitation_times")
        pending = Trait(state="open", status=InvitationStatus.PENDING)
        sent = Trait(state="open", status=InvitationStatus.SENT)
        far = Trait(state="far", status=InvitationStatus.SENT)
        accepted = Trait(state="accepted", status=InvitationStatus.ACCEPTED)
        expired = Trait(state="expired", status=InvitationStatus.EXPIRED)
        cancelled = Trait(state="cancelled", status=InvitationStatus.CANCELLED)

    # A user who is not ACTIVE has no open invitation (a state trait overrides).
    state = _state_of_user("invitation_state", story.OPEN_INVITATION_STATES)
    token = Faker("url_token")
    status = Faker("invitation_status", state=SelfAttribute("..state"))
    created_at = _time(0)
    sent_at = _time(1)
    expires_at = _time(2)
    updated_at = _time(3)
    resend_count = Faker("invitation_resend_count")


@_after_create
def _record_event(notification: Notification) -> None:
    event = story.NOTIFICATION_EVENTS.get(notification.notification_type)
    if event is None or event == story.PASSWORD_AGE:
        return
    user, clock = notification.user, _clock()
    created, lower = _offset(clock, notification.created_at), _offset(clock, user.created_at)
    when = _at(clock, story.event_before(_provider(), created, lower))
    assert when is not None
    if event in story.COMPANY_EVENTS and user.company is None:
        raise CelestraError(
            f"a {notification.notification_type.value} notification reports an event of its "
            "user's company, and a super admin has none: pass user=UserFactory(company=...)"
        )
    _EVENT_MAKERS[event](user, when)


class NotificationFactory(CelestraFactory):
    """A notification of a user, for the user's company (None for a super admin).

    The default type reports no event; a type that reports one brings that event with it
    on `create()`: `NotificationFactory(failed_login=True)` comes after a failed login of
    its user. Pass `event=False` to skip the event.
    """

    class Meta:
        model = Notification
        exclude = ("is_read", "expiry")  # set by traits, as AuditLogFactory's record

    class Params:
        lower = pure(LazyAttribute(lambda o: _notification_lower(o)))
        times = LazyAttribute(lambda o: _notification_times(o))
        read = Trait(status=NotificationStatus.DELIVERED, is_read=True)
        delivered = Trait(status=NotificationStatus.DELIVERED, is_read=False)
        pending = Trait(status=NotificationStatus.PENDING)
        failed = Trait(status=NotificationStatus.FAILED)
        expired = Trait(expiry="past")
        failed_login = Trait(notification_type=NotificationType.FAILED_LOGIN_NOTIFICATION)
        account_locked = Trait(notification_type=NotificationType.ACCOUNT_LOCKED)
        account_unlocked = Trait(notification_type=NotificationType.ACCOUNT_UNLOCKED)
        password_changed = Trait(notification_type=NotificationType.PASSWORD_CHANGED)
        # A user whose password (set when the account was made) is old enough to expire.
        password_expiry = Trait(
            notification_type=NotificationType.PASSWORD_EXPIRY,
            user=SubFactory(
                UserFactory,
                created=Faker(
                    "moment", lower=spec.COMPANY_CREATED[1], upper=-spec.PASSWORD_EXPIRY_NOTICE[1]
                ),
            ),
        )
        role_changed = Trait(notification_type=NotificationType.ROLE_CHANGED)
        invitation_sent = Trait(notification_type=NotificationType.INVITATION_SENT)
        invitation_accepted = Trait(notification_type=NotificationType.INVITATION_ACCEPTED)
        knowledge_base_ready = Trait(notification_type=NotificationType.KNOWLEDGE_BASE_READY)
        knowledge_base_failed = Trait(notification_type=NotificationType.KNOWLEDGE_BASE_FAILED)
        agent_status_changed = Trait(notification_type=NotificationType.AGENT_STATUS_CHANGED)
        # A data export is an admin's (story.super_admin_acts), as in the scenario.
        data_export_ready = Trait(
            notification_type=NotificationType.DATA_EXPORT_READY, user=_admin_actor()
        )
        new_device_login = Trait(notification_type=NotificationType.NEW_DEVICE_LOGIN)

    is_read = Maybe(
        LazyAttribute(lambda o: o.status is NotificationStatus.DELIVERED),
        Faker("notification_is_read"),
        False,
    )
    expiry = Faker("notification_expiry")
    user = SubFactory(UserFactory)
    company = pure(LazyAttribute(lambda o: o.user.company))
    notification_type = LazyFunction(lambda: story.event_free_notification_type(_rng()))
    title = Faker("notification_title", notification_type=SelfAttribute("..notification_type"))
    message = Faker("notification_message", notification_type=SelfAttribute("..notification_type"))
    priority = Faker(
        "notification_priority", notification_type=SelfAttribute("..notification_type")
    )
    status = Faker("notification_status")
    delivery_method = Faker("notification_delivery_method")
    read_at = _time(2)
    action_url = Faker(
        "notification_action_url",
        notification_type=SelfAttribute("..notification_type"),
    )
    expires_at = _time(3)
    delivered_at = _time(1)
    created_at = _time(0)
    updated_at = _time(4)
    event = _record_event


def _notification_times(o: Any) -> tuple[int, int | None, int | None, int, int]:
    """The notification's times; a password expiry notice comes while the user's first
    password is old enough and not too old (story.password_notice_window)."""
    p = _provider()
    notice = None
    if story.NOTIFICATION_EVENTS.get(o.notification_type) == story.PASSWORD_AGE:
        notice = story.password_notice_window(_offset(o.clock, o.user.created_at), 0)
    times: tuple[int, int | None, int | None, int, int]
    if notice is None or notice[1] < o.lower:
        times = p.notification_times(o.status, o.is_read, o.expiry, o.lower)
    else:
        created = p.moment(max(o.lower, notice[0]), notice[1])
        times = p.notification_times_from(created, o.status, o.is_read, o.expiry)
    return times


def _notification_lower(o: Any) -> int:
    """Not before the user and company; a password expiry notice not before the user's
    password is old enough."""
    lower = _latest_created(o, "user", "company")
    if story.NOTIFICATION_EVENTS.get(o.notification_type) == story.PASSWORD_AGE:
        lower += spec.PASSWORD_EXPIRY_NOTICE[0]
    return lower


def _admin_at(user: User, when: datetime) -> Any:
    """An ACTIVE admin of `user`'s company who existed at `when`; a super admin for a
    platform user or a closed company."""
    if user.company is None or user.company.status is not CompanyStatus.ACTIVE:
        return UserFactory(super_admin=True)
    return UserFactory(
        company=user.company,
        company_admin=True,
        status=UserStatus.ACTIVE,
        created=_created_before(user.company, when),
    )


def _created_before(company: Company, when: datetime) -> int:
    """`created` of a row of `company` made before `when` (story.member_created)."""
    clock = _clock()
    founded = _offset(clock, company.created_at)
    return story.member_created(_provider(), founded, _offset(clock, when))


def _member_row(factory_class: Any, user: User, when: datetime, **kwargs: Any) -> Any:
    """A row of `user`'s company created before `when` and last updated at `when`."""
    assert user.company is not None  # _record_event refuses company events of super admins
    created = _created_before(user.company, when)
    return factory_class(company=user.company, created=created, updated_at=when, **kwargs)


def _lockout(user: User, when: datetime, started: bool) -> None:
    """A lockout of `user` that starts (`started`) or ends at `when`."""
    _refuse_unlockable(user.status)
    clock, p = _clock(), _provider()
    moment, lower = _offset(clock, when), _offset(clock, user.created_at)
    if started:
        fits = story.states_holding(
            moment, spec.LOCKOUT_STATE_WEIGHTS, lambda state: lockout_start_window(state, lower)
        )
        state = story.state_of_user(p.lockout_state, (), active=True, fits=fits)
        times = p.lockout_times_from(state, moment)
    else:
        state = "ended"
        start = max(lower, moment - p.moment(*spec.LOCKOUT_ENDED_LENGTH))
        times = p.lockout_times_from(state, start, end=moment)
    UserLockoutFactory(user=user, state=state, times=times)


def _invitation(user: User, when: datetime, accepted: bool) -> None:
    """An invitation of `user` sent at `when`, or `accepted` then."""
    clock, p = _clock(), _provider()
    moment, lower = _offset(clock, when), _offset(clock, user.created_at)
    if accepted:
        state = "accepted"
        latest = invitation_sent_window(state, lower)[1]
        sent = max(lower, min(moment - p.moment(*spec.INVITATION_ANSWERED), latest))
        times = (*p.invitation_times_from(state, sent, lower)[:3], moment)
    else:
        fits = story.states_holding(
            moment,
            spec.INVITATION_STATE_WEIGHTS,
            lambda state: invitation_sent_window(state, lower),
        )
        active = user.status is UserStatus.ACTIVE
        state = story.state_of_user(
            p.invitation_state, story.OPEN_INVITATION_STATES, active, fits=fits
        )
        times = p.invitation_times_from(state, moment, lower)
    InvitationFactory(user=user, state=state, times=times)


def _signer_at(actor: User, when: datetime) -> Any:
    """Who signs what `actor` did at `when` (story.super_admin_signs)."""
    if story.super_admin_signs(_rng(), actor.company is None):
        return UserFactory(super_admin=True)
    if actor.role is UserRole.COMPANY_ADMIN:
        return actor
    return _admin_at(actor, when)


def _actor_at(user: User, when: datetime) -> Any:
    """Who changes a row of `user`'s company at `when` (story.super_admin_acts)."""
    if story.super_admin_acts(_rng()):
        return UserFactory(super_admin=True)
    return _admin_at(user, when)


def _logged(actor: User, when: datetime, **kwargs: Any) -> Any:
    return AuditLogFactory(**kwargs, user=actor, signer=_signer_at(actor, when), created_at=when)


def _agent_status_change(user: User, when: datetime) -> None:
    agent = _member_row(AgentFactory, user, when)
    log = _logged(_actor_at(user, when), when, config_change=True, record=agent)
    AuditChangeLogFactory(audit_log=log, column="status")


def _failed_knowledge_base(user: User, when: datetime) -> Any:
    """Retrying or switched off, as often as the spec's weights say (as in the scenario)."""
    draw = _provider().knowledge_base_status
    status = story.state_of_user(draw, (), True, story.FAILED_KNOWLEDGE_BASE_STATUSES)
    return _member_row(KnowledgeBaseFactory, user, when, status=status)


_EVENT_MAKERS: dict[str, Callable[[User, datetime], Any]] = {
    story.FAILED_LOGIN: lambda user, when: FailedLoginFactory(user=user, attempted_at=when),
    story.LOCKOUT_STARTED: lambda user, when: _lockout(user, when, started=True),
    story.LOCKOUT_ENDED: lambda user, when: _lockout(user, when, started=False),
    story.PASSWORD_CHANGE: lambda user, when: PasswordHistoryFactory(user=user, created_at=when),
    story.ROLE_CHANGE: lambda user, when: _logged(
        _actor_at(user, when), when, role_change=True, record=user
    ),
    story.INVITATION_SENT: lambda user, when: _invitation(user, when, accepted=False),
    story.INVITATION_ACCEPTED: lambda user, when: _invitation(user, when, accepted=True),
    story.KNOWLEDGE_BASE_READY: lambda user, when: _member_row(
        KnowledgeBaseFactory, user, when, status=KnowledgeBaseStatus.ACTIVE
    ),
    story.KNOWLEDGE_BASE_FAILED: _failed_knowledge_base,
    story.AGENT_STATUS_CHANGE: _agent_status_change,
    story.DATA_EXPORT: lambda user, when: _logged(
        user, when, event_type=AuditEventType.DATA_EXPORT
    ),
    story.SESSION_STARTED: _session,
}
"""How the factories make each event a notification reports (story.NOTIFICATION_EVENTS)."""


class PasswordHistoryFactory(CelestraFactory):
    """A former password of a user (never the current one; unique per user)."""

    class Meta:
        model = PasswordHistory

    class Params:
        password = Sequence(passwords.old_password)
        lower = _not_before("user")
        created = LazyAttribute(lambda o: story.password_changed(_provider(), o.lower))

    user = SubFactory(UserFactory)
    password_hash = LazyAttribute(lambda o: passwords.hash_password(o.password, _rng()))
    created_at = _time(source="created")


@_after_create
def _record_failed_logins(lockout: UserLockout) -> None:
    """The failed logins that caused `lockout` (story.lockout_burst), from one address."""
    if lockout.lockout_start is None:
        return
    clock, p = _clock(), _provider()
    start = _offset(clock, lockout.lockout_start)
    lower = _offset(clock, lockout.user.created_at)
    ip = p.ip_address()
    for moment in story.lockout_burst(p, start, lockout.failed_attempts or 1, lower):
        FailedLoginFactory(user=lockout.user, attempted_at=_at(clock, moment), ip_address=ip)


def _refuse_unlockable(status: Any) -> None:
    """Refuse, naming the rule, a user in `status` who cannot be locked out (story.lockable)."""
    status = label_of(status)
    if status is not None and not story.lockable(status):
        raise FactoryArgumentError(
            f"UserLockoutFactory: a user in status {status} cannot be locked out (only "
            f"{', '.join(sorted(story.LOCKABLE_USER_STATUSES))} users are: "
            "pytest_celestra.rows.story.lockable); pass an ACTIVE user"
        )


def _lockout_times(o: Any) -> tuple[int, int, int]:
    _refuse_unlockable(None if o.user is None else o.user.status)
    times: tuple[int, int, int] = _provider().lockout_times(o.state, o.lower)
    return times


class UserLockoutFactory(_UserStateFactory):
    """A lockout of a user; `create()` also records the failed logins before its start
    (pass `failed_logins=False` to skip them)."""

    class Meta:
        model = UserLockout

    class Params:
        times = LazyAttribute(lambda o: _lockout_times(o))
        active = Trait(state="active")
        ended = Trait(state="ended")
        long = Trait(state="long")

    state = Faker("lockout_state")
    lockout_start = _time(0)
    lockout_end = _time(1)
    reason = Faker("lockout_reason", state=SelfAttribute("..state"))
    failed_attempts = Faker("lockout_threshold")
    created_at = _time(0)
    updated_at = _time(2)

    failed_logins = _record_failed_logins


class UserSessionFactory(_UserStateFactory):
    """A session of a user."""

    class Meta:
        model = UserSession

    class Params:
        times = _state_times("session_times")
        expired = Trait(state="expired")
        active = Trait(state="active")
        long = Trait(state="long")

    # A user who is not ACTIVE holds no live session (pass a state trait to override).
    state = _state_of_user("session_state", story.LIVE_SESSION_STATES)
    session_token = Faker("url_token")
    ip_address = Faker("ip_address")
    user_agent = Faker("browser_user_agent")
    expires_at = _time(1)
    created_at = _time(0)


# --- third level ------------------------------------------------------------------------


_MODELS = {model.__tablename__: model for model in MODELS_IN_FK_ORDER}


def _change_table(o: Any) -> str:
    table: str | None = o.audit_log.table_name
    if table is None or table not in spec.CHANGEABLE_COLUMNS:
        raise CelestraError(
            "AuditChangeLogFactory needs an audit log that changed a row of "
            f"{', '.join(spec.CHANGEABLE_COLUMNS)}: pass "
            "audit_log=AuditLogFactory(config_change=True) (or role_change=True, or "
            "record=<a row of one of those tables>)"
        )
    return table


def _find_row(model: type[Any], key: Any) -> Any:
    """The row of `model` with `key`: the maker's, else the bound session's, else None."""
    maker = row_maker.current_maker()
    if maker is not None:
        return maker.find(model, key)
    session = _SESSION.get()
    return None if session is None else session.get(model, key)


def _changed_row(o: Any) -> Any:
    if o.audit_log.record_id is None:
        return None
    return _find_row(_MODELS[o.table], o.audit_log.record_id)


def _changed_columns(log: Any) -> set[str]:
    session, maker = _SESSION.get(), row_maker.current_maker()
    done: set[str] = set()
    if maker is not None:
        done = {row.column_name for row in maker.children(AuditChangeLog, log)}
        if maker.made(log):
            return done  # a log made by this call has no other change in the database
    if session is not None and log.id is not None:
        done |= set(
            session.scalars(
                select(AuditChangeLog.column_name).where(AuditChangeLog.audit_log_id == log.id)
            )
        )
    return done


def _next_column(o: Any) -> str:
    """A column this audit log has not changed yet (story.changed_columns)."""
    log = o.audit_log
    done = _changed_columns(log)
    if done >= set(spec.CHANGEABLE_COLUMNS[o.table]):
        raise CelestraError(
            f"audit log {log.id} already records a change of every changeable column of "
            f"{o.table}; make another AuditLogFactory(config_change=True)"
        )
    return story.changed_columns(_provider(), log.event_type, o.table, 1, done)[0]


def _present_value(row: Any, column: str) -> str | None:
    if row is None:
        return None
    value = getattr(row, column)
    return None if value is None else str(label_of(value))


@_after_create
def _apply_change(change: AuditChangeLog) -> None:
    """`new_value` written to the changed row (`apply=False` leaves the row as it is)."""
    session = _SESSION.get()
    log = change.audit_log
    if session is None or log.table_name not in _MODELS:
        return
    row = _find_row(_MODELS[log.table_name], log.record_id)
    if row is None:
        return
    column = row.__table__.c[change.column_name]
    enum_class = getattr(column.type, "enum_class", None)
    value = change.new_value if enum_class is None else enum_class(change.new_value)
    batches.set_column(session, row, change.column_name, value)
    # The row was last updated by this change (a status it now has changed then).
    updated = getattr(row, "updated_at", None)
    if updated is not None and log.created_at is not None and log.created_at > updated:
        batches.set_column(session, row, "updated_at", log.created_at)


class AuditChangeLogFactory(CelestraFactory):
    """One changed column of the row an audit log records a change of: `create()` writes
    `new_value` to the row, so the row agrees with its audit history."""

    class Meta:
        model = AuditChangeLog

    class Params:
        table = pure(LazyAttribute(_change_table))
        row = LazyAttribute(_changed_row)
        column = LazyAttribute(_next_column)
        # The row's present value, unless the change's `after` value is given (a history
        # told from the present back, as the scenario does): then it is drawn.
        before = LazyAttribute(
            lambda o: None if o.after is not None else _present_value(o.row, o.column)
        )
        after = None  # the value the change set: drawn unless given
        change = Faker(
            "audit_change",
            table_name=SelfAttribute("..table"),
            column=SelfAttribute("..column"),
            old=SelfAttribute("..before"),
            new=SelfAttribute("..after"),
        )

    audit_log = SubFactory(AuditLogFactory, config_change=True)
    column_name = pure(LazyAttribute(lambda o: o.change[0]))
    old_value = pure(LazyAttribute(lambda o: o.change[1]))
    new_value = pure(LazyAttribute(lambda o: o.change[2]))
    created_at = pure(LazyAttribute(lambda o: o.audit_log.created_at or _clock()))
    apply = _apply_change


ALL_FACTORIES: tuple[type[CelestraFactory], ...] = (
    CompanyFactory,
    KnowledgeTypeFactory,
    UserFactory,
    AgentFactory,
    KnowledgeBaseFactory,
    AgentKnowledgeBaseFactory,
    KnowledgeSourceFactory,
    AuditLogFactory,
    FailedLoginFactory,
    InvitationFactory,
    NotificationFactory,
    PasswordHistoryFactory,
    UserLockoutFactory,
    UserSessionFactory,
    AuditChangeLogFactory,
)
"""Every factory, parents before children (the order of `models.MODELS_IN_FK_ORDER`)."""


def traits_of(factory_class: type[CelestraFactory]) -> tuple[str, ...]:
    """Names of the traits of `factory_class` (each usable as `Factory(<name>=True)`)."""
    return tuple(
        name
        for name, declaration in factory_internals.parameters(factory_class).items()
        if isinstance(declaration, Trait)
    )


_ARGUMENTS: dict[type[Any], tuple[int, frozenset[str], dict[str, Any], tuple[str, ...]]] = {}


def _arguments_of(
    factory_class: type[CelestraFactory],
) -> tuple[frozenset[str], dict[str, Any], tuple[str, ...]]:
    """A factory's keywords (its declarations, its model's attributes), its model's enum
    attributes (name -> enum class), and what its declarations give the model that is no
    attribute of it (a misnamed column); worked out again when the model gains a column."""
    model = factory_internals.model_class(factory_class)
    mapped = hasattr(model, "__mapper__")
    size = len(model.__mapper__.attrs) if mapped else 0
    known = _ARGUMENTS.get(factory_class)
    if known is None or known[0] != size:
        names = factory_internals.known_names(factory_class)
        enums: dict[str, Any] = {}
        strays: tuple[str, ...] = ()
        if mapped:
            names |= {attribute.key for attribute in model.__mapper__.attrs}
            for attribute in model.__mapper__.column_attrs:
                enum_class = getattr(attribute.columns[0].type, "enum_class", None)
                if enum_class is not None:
                    enums[attribute.key] = enum_class
            keywords = factory_internals.model_keywords(factory_class)
            strays = tuple(sorted(name for name in keywords if not hasattr(model, name)))
        known = _ARGUMENTS[factory_class] = (size, frozenset(names), enums, strays)
    return known[1], known[2], known[3]


def checked_arguments(
    factory_class: type[CelestraFactory],
    params: dict[str, Any],
    *,
    call: str | None = None,
    check_names: bool = True,
) -> dict[str, Any]:
    """`params` with enum labels made members (`status="SUSPENDED"`), after checking that
    the factory knows every keyword; else a
    [`FactoryArgumentError`][pytest_celestra.errors.FactoryArgumentError] naming its traits."""
    names, enums, strays = _arguments_of(factory_class)
    call = call or factory_class.__name__
    model = factory_internals.model_class(factory_class)
    # A model that is not SQLAlchemy's may take any keyword: only a mapped one is checked.
    mapped = hasattr(model, "__mapper__")
    if strays and check_names:  # (`bulk_create` would leave the value out unsaid)
        added = rules_of(_SESSION.get()).added_columns(model.__tablename__)
        if stray := next((name for name in strays if name not in added), None):
            raise _stray_declaration(factory_class, stray, model)
    checked = params
    for name, value in params.items():
        base = name.split("__", 1)[0]
        # SQLAlchemy's constructor also takes properties and hybrids, and your rules' columns.
        if (
            mapped
            and check_names
            and base
            and base not in names
            and not hasattr(model, base)
            and base not in rules_of(_SESSION.get()).added_columns(model.__tablename__)
        ):
            raise _unknown_argument(factory_class, call, name, names)
        enum_class = enums.get(name)
        if enum_class is not None and isinstance(value, str):
            if mapped and added_label(_SESSION.get(), model.__tablename__, name, value):
                continue  # a label your rules add (rules.enum_weights): written as given
            if checked is params:
                checked = dict(params)
            checked[name] = _enum_member(call, name, enum_class, value)
    return checked


def _unknown_argument(
    factory_class: type[CelestraFactory], call: str, name: str, names: frozenset[str]
) -> FactoryArgumentError:
    traits = traits_of(factory_class)
    base = name.split("__", 1)[0]
    hint = did_you_mean(base, [*traits, *sorted(names - set(traits))])
    listed = ", ".join(traits) if traits else "none"
    model = factory_internals.model_class(factory_class)
    others = sorted(n for n in names - set(traits) if not n.startswith("_"))
    fields = ", ".join(n for n in others if n in model.__mapper__.attrs)
    parameters = ", ".join(n for n in others if n not in model.__mapper__.attrs) or "none"
    return FactoryArgumentError(
        f"{call}({name}=...): {factory_class.__name__} has no trait, field or parameter "
        f"{base!r}.{hint} Its traits (each used as name=True): {listed}. Its columns and "
        f"related rows: {fields}. Its parameters: {parameters}. See the docs page "
        "'Factories and traits' (docs/factories.md)."
    )


def _stray_declaration(
    factory_class: type[CelestraFactory], name: str, model: type[Any]
) -> FactoryArgumentError:
    columns = [attribute.key for attribute in model.__mapper__.attrs]
    return FactoryArgumentError(
        f"{factory_class.__name__} declares {name!r}, which is no column or relation of "
        f"{model.__name__} (table {model.__tablename__}).{did_you_mean(name, columns)} "
        "Rename the declaration; a value that is no column belongs in `class Params` "
        "(or in `class Meta: exclude`)."
    )


def _enum_member(call: str, name: str, enum_class: Any, label: str) -> Any:
    """The member of `enum_class` whose name (the PostgreSQL label) or value is `label`."""
    member = enum_class.__members__.get(label)
    if member is not None:
        return member
    for member in enum_class:
        if member.value == label:
            return member
    labels = list(enum_class.__members__)
    hint = did_you_mean(label.upper(), labels)
    raise FactoryArgumentError(
        f"{call}({name}={label!r}): {label!r} is not a label of {enum_class.__name__}.{hint} "
        f"Its labels: {', '.join(labels)} (as strings or {enum_class.__name__} members)."
    )
