"""Factory batches through COPY (``bulk_create``) and the cheaper single ``create()``:
the same rows as the factories make one by one, in the test's transaction, usable."""

from __future__ import annotations

import sys
import threading

import factory
import factory.random
import pytest
from realism_checks import check_row_rules
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import IntegrityError, InternalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pytest_celestra.errors import CelestraError, NoSessionError
from pytest_celestra.plugin.fixtures import rolled_back_session
from pytest_celestra.rows import batches, loader, passwords, row_maker
from pytest_celestra.rows.batches import BulkResult, BulkWriteError
from pytest_celestra.rows.factories import (
    ALL_FACTORIES,
    AgentFactory,
    AgentKnowledgeBaseFactory,
    AuditChangeLogFactory,
    AuditLogFactory,
    CelestraFactory,
    CompanyFactory,
    FailedLoginFactory,
    KnowledgeSourceFactory,
    KnowledgeTypeFactory,
    NotificationFactory,
    UserFactory,
    UserLockoutFactory,
    traits_of,
)
from pytest_celestra.rows.providers import company_domain
from pytest_celestra.schema import spec
from pytest_celestra.schema.enums import label_of
from pytest_celestra.schema.models import (
    Agent,
    AuditChangeLog,
    AuditEventType,
    Company,
    FailedLogin,
    KnowledgeType,
    User,
    UserRole,
    UserStatus,
)
from pytest_celestra.schema.spec import LOCKOUT_BURST


def count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


# --- bulk_create: the factory's declarations --------------------------------------------


def test_defaults_of_a_batch_are_the_factorys(celestra_session):
    company = CompanyFactory()
    users = UserFactory.bulk_create(40, company=company)
    assert isinstance(users, BulkResult)
    assert len(users) == 40
    stored = celestra_session.scalars(select(User).where(User.company_id == company.id)).all()
    assert len(stored) == 40
    assert {u.role for u in stored} == {UserRole.REGULAR_USER}
    assert {u.status for u in stored} == {UserStatus.ACTIVE}
    assert all(u.email.endswith("@" + company_domain(company.name)) for u in stored)
    assert len({u.email for u in stored}) == 40  # the sequence keeps them unique
    assert all(u.created_at >= company.created_at for u in stored)
    assert passwords.verify(passwords.DEFAULT_PASSWORD, stored[0].password_hash)


def test_traits_and_overrides_apply_to_every_row(celestra_session):
    company = CompanyFactory()
    users = UserFactory.bulk_create(5, company=company, company_admin=True, suspended=True)
    named = UserFactory.bulk_create(3, company=company, name="Ada Lovelace")
    assert {(u.role, u.status) for u in users} == {(UserRole.COMPANY_ADMIN, UserStatus.SUSPENDED)}
    assert {u.name for u in named} == {"Ada Lovelace"}
    admins = UserFactory.bulk_create(2, super_admin=True)
    assert all(u.company is None and u.role is UserRole.SUPER_ADMIN for u in admins)


@pytest.mark.filterwarnings("ignore:Object of type <User> not in session")
def test_a_batch_draws_what_the_factory_draws(celestra_session):
    """Same seed, same values: a batch resolves the very declarations of the factory."""
    company = CompanyFactory()
    factory.random.reseed_random(7)
    built = UserFactory.build_batch(4, company=company)
    factory.random.reseed_random(7)
    made = UserFactory.bulk_create(4, company=company)
    assert [u.name for u in made] == [u.name for u in built]
    assert [u.password_hash for u in made] == [u.password_hash for u in built]


def test_a_batch_computes_a_pure_declaration_of_constants_once(celestra_session):
    """After a plan's first row, a batch keeps as a constant each declaration marked
    `pure` that reads only constants; one that reads a per-row value runs for each row,
    and a single call never folds."""
    calls = {"tag": 0, "first": 0}

    def tag_of(o):
        calls["tag"] += 1
        return o.company.name.split()[0]

    def first_of(o):
        calls["first"] += 1
        return o.given.split()[0]

    class TaggedUserFactory(UserFactory):
        class Params:
            given = factory.Faker("person_name")
            tag = row_maker.pure(factory.LazyAttribute(tag_of))
            first = row_maker.pure(factory.LazyAttribute(first_of))

        name = factory.LazyAttribute(lambda o: f"{o.first} of {o.tag}")

    company = CompanyFactory()
    made = TaggedUserFactory.bulk_create(30, company=company)
    assert calls["tag"] <= 2  # the first row, and its trace
    assert 30 <= calls["first"] <= 31
    names = [user.name for user in made]
    assert {name.split(" of ")[1] for name in names} == {company.name.split()[0]}
    assert len({name.split(" of ")[0] for name in names}) > 1  # still drawn per row
    calls["tag"] = 0
    TaggedUserFactory.create_batch(3, company=company)
    assert calls["tag"] == 3


def test_declarations_of_your_own_subclass_work_in_a_batch_and_a_call(celestra_session):
    class CyclingUserFactory(UserFactory):
        name = factory.Iterator(["Ada Lovelace", "Grace Hopper"])
        email = factory.LazyAttributeSequence(lambda o, n: f"cycling{n}@{o.email_domain}")

    company = CompanyFactory()
    made = CyclingUserFactory.bulk_create(3, company=company)
    one = CyclingUserFactory(company=company)
    assert [u.name for u in [*made, one]] == ["Ada Lovelace", "Grace Hopper"] * 2
    assert len({u.email for u in [*made, one]}) == 4


def test_sequences_go_on_across_batches_and_calls(celestra_session):
    company = CompanyFactory()
    first = UserFactory.bulk_create(3, company=company)
    single = UserFactory(company=company)
    second = UserFactory.bulk_create(3, company=company)
    emails = [u.email for u in [*first, single, *second]]
    assert len(set(emails)) == 7


def test_parents_are_made_in_the_batch_when_not_given(celestra_session):
    users = UserFactory.bulk_create(6)
    assert len({u.company_id for u in users}) == 6
    assert count(celestra_session, Company) == 6
    built = CompanyFactory.build()
    UserFactory.bulk_create(2, company=built)  # saved before its users
    assert count(celestra_session, User, User.company_id == built.id) == 2
    notes = NotificationFactory.bulk_create(4)
    assert all(n.company_id == n.user.company_id for n in notes)


def test_the_shared_parent_rules_hold_in_a_batch(celestra_session, monkeypatch):
    # Company admins act and sign (a super admin's change is of any company's row).
    monkeypatch.setattr(spec, "ACTOR_SUPER_ADMIN_SHARE", 0.0)
    monkeypatch.setattr(spec, "SIGNER_SUPER_ADMIN_SHARE", 0.0)
    agent = AgentFactory()
    links = AgentKnowledgeBaseFactory.bulk_create(3, agent=agent)
    assert {link.knowledge_base.company_id for link in links} == {agent.company_id}
    logs = AuditLogFactory.bulk_create(5, config_change=True)
    for log in logs:
        record = celestra_session.get(Agent, log.record_id)
        assert record.company_id == log.user.company_id
        assert log.signer.role is UserRole.COMPANY_ADMIN
        assert log.signer.company_id == log.user.company_id


def test_get_or_create_reuses_rows_of_the_session_and_of_the_batch(celestra_session):
    known = KnowledgeTypeFactory(name="API Documentation")
    sources = KnowledgeSourceFactory.bulk_create(30)
    names = celestra_session.scalars(select(KnowledgeType.name)).all()
    assert len(names) == len(set(names))  # never the same type twice
    pinned = KnowledgeSourceFactory.bulk_create(3, knowledge_type__name="API Documentation")
    assert {s.knowledge_type_id for s in pinned} == {known.id}
    assert len(sources) == 30


def test_every_factory_and_trait_in_bulk_passes_the_realism_rules(celestra_session):
    for factory_class in ALL_FACTORIES:
        factory_class.bulk_create(6)
        for trait in traits_of(factory_class):
            factory_class.bulk_create(2, **{trait: True})
    check_row_rules(celestra_session)


# --- post-generation hooks -----------------------------------------------------------


def test_the_factories_own_hooks_run_in_a_batch(celestra_session):
    lockouts = UserLockoutFactory.bulk_create(3)
    for lockout in lockouts:
        failures = count(celestra_session, FailedLogin, FailedLogin.user_id == lockout.user_id)
        assert 1 <= failures <= min(lockout.failed_attempts, LOCKOUT_BURST[1])
    role_changes = AuditLogFactory.bulk_create(3, role_change=True)
    for log in role_changes:
        (change,) = log.changes
        assert change.column_name == "role"
    changes = AuditChangeLogFactory.bulk_create(5)
    for change in changes:
        row = celestra_session.get(Agent, change.audit_log.record_id)
        value = getattr(row, change.column_name)
        assert getattr(value, "value", value) == change.new_value != change.old_value


def test_a_hook_a_batch_cannot_run_is_refused_before_anything_is_written(celestra_session):
    class TaggedUserFactory(UserFactory):
        @factory.post_generation
        def tags(obj, create, extracted, **kwargs):
            pass

    with pytest.raises(CelestraError, match=r"TaggedUserFactory.*'tags'.*create_batch\(\)"):
        TaggedUserFactory.bulk_create(3)
    assert count(celestra_session, User) == 0


def test_a_related_factory_runs_in_a_batch(celestra_session):
    class UserWithFailureFactory(UserFactory):
        failure = factory.RelatedFactory(FailedLoginFactory, factory_related_name="user")

    users = UserWithFailureFactory.bulk_create(4)
    assert count(celestra_session, FailedLogin, FailedLogin.user_id.in_(users.ids)) == 4


# --- the test's transaction ---------------------------------------------------------


def test_rows_are_visible_to_the_session_and_raw_sql(celestra_session):
    company = CompanyFactory()
    company_users = company.users  # loaded before the batch: refreshed after it
    assert company_users == []
    users = UserFactory.bulk_create(25, company=company)
    raw = celestra_session.execute(
        text("SELECT count(*) FROM users WHERE company_id = :c"), {"c": company.id}
    ).scalar_one()
    assert raw == 25
    assert len(company.users) == 25
    assert {u.id for u in company.users} == set(users.ids)


def test_rows_are_rolled_back_with_the_test(celestra_engine):
    with rolled_back_session(celestra_engine) as session:
        AuditChangeLogFactory.bulk_create(5)
        assert count(session, AuditChangeLog) == 5
    with rolled_back_session(celestra_engine) as session:
        assert count(session, AuditChangeLog) == 0
        assert count(session, User) == 0


def test_the_result_gives_keys_at_once_and_attached_objects_on_use(celestra_session):
    company = CompanyFactory()
    users = UserFactory.bulk_create(10, company=company)
    assert len(users.ids) == 10
    first = users[0]
    assert inspect(first).persistent
    assert inspect(first).session is celestra_session
    assert [u.id for u in users] == list(users.ids)  # in the order made
    assert celestra_session.get(User, users.ids[3]) is users[3]  # the identity map's
    assert first.company is company
    first.name = "Renamed"
    celestra_session.flush()
    assert celestra_session.scalar(select(User.name).where(User.id == first.id)) == "Renamed"
    assert UserFactory.bulk_create(0, company=company).ids == ()


# --- errors ----------------------------------------------------------------------------


def test_a_constraint_error_names_the_batch(celestra_session):
    company = CompanyFactory()
    with pytest.raises(BulkWriteError, match=r"UserFactory\.bulk_create\(2, company=.*users rows"):
        UserFactory.bulk_create(2, company=company, email="same@example.com")
    with pytest.raises(InternalError, match="current transaction is aborted"):
        celestra_session.scalar(select(1))  # as after any failed statement


def test_a_bad_size_is_refused(celestra_session):
    with pytest.raises(CelestraError, match="size must be a whole number >= 0, got -1"):
        UserFactory.bulk_create(-1)


def test_a_batch_needs_a_bound_session():
    with pytest.raises(NoSessionError, match="celestra_session"):
        UserFactory.bulk_create(3)


# --- a batch written while it is made --------------------------------------------------


def test_a_batch_is_written_in_chunks_while_it_makes_the_next(celestra_session, monkeypatch):
    monkeypatch.setattr(batches, "CHUNK", 3)
    copies = []
    copy_rows = loader.copy_rows

    def recorded(pg_conn, table, columns, rows):
        rows = list(rows)
        copies.append((threading.current_thread() is threading.main_thread(), table, len(rows)))
        return copy_rows(pg_conn, table, columns, rows)

    monkeypatch.setattr(loader, "copy_rows", recorded)
    changes = AuditChangeLogFactory.bulk_create(7)
    assert [(main, n) for main, table, n in copies if table == "audit_change_logs"] == [
        (False, 3),
        (False, 3),
        (True, 1),
    ]
    assert count(celestra_session, AuditChangeLog) == 7
    for change in changes:  # each chain whole: its row changed, after its parents
        row = celestra_session.get(Agent, change.audit_log.record_id)
        assert str(label_of(getattr(row, change.column_name))) == change.new_value


def test_a_batch_in_chunks_hands_the_gil_over_promptly_and_restores_the_interval(
    celestra_session, monkeypatch
):
    monkeypatch.setattr(batches, "CHUNK", 2)
    before = sys.getswitchinterval()
    seen = []

    class WatchedUserFactory(UserFactory):
        name = factory.LazyFunction(lambda: seen.append(sys.getswitchinterval()) or "Ann Lee")

    company = CompanyFactory()
    WatchedUserFactory.bulk_create(2, company=company)  # one chunk: nothing to hand over
    WatchedUserFactory.bulk_create(3, company=company)
    assert seen[:2] == [before, before]
    assert seen[2:] == [0.0005] * 3
    assert sys.getswitchinterval() == before
    with pytest.raises(BulkWriteError):
        UserFactory.bulk_create(3, company=company, email="same@example.com")
    assert sys.getswitchinterval() == before


def test_a_failing_batch_leaves_none_of_its_rows_and_your_transaction_goes_on(
    celestra_session, monkeypatch
):
    monkeypatch.setattr(batches, "CHUNK", 2)
    company = CompanyFactory()
    names = iter(["Ann", "Bo", "Cy", "Di"])

    class FewNamesUserFactory(UserFactory):
        name = factory.LazyFunction(lambda: next(names))

    with pytest.raises(StopIteration):  # the fifth row, after two chunks were written
        FewNamesUserFactory.bulk_create(6, company=company)
    assert count(celestra_session, User) == 0
    with pytest.raises(BulkWriteError, match="None of its rows was kept"):
        UserFactory.bulk_create(5, company=company, email="same@example.com")
    assert count(celestra_session, User) == 0
    assert UserFactory(company=company).company is company


def test_a_row_a_later_row_changes_after_its_chunk_was_written_is_updated(
    celestra_session, monkeypatch
):
    monkeypatch.setattr(batches, "CHUNK", 1)
    made = []

    class RenamingUserFactory(UserFactory):
        @batches.bulk_safe
        @factory.post_generation
        def rename_the_first(obj, create, extracted, **kwargs):
            made.append(obj)
            batches.set_column(celestra_session, made[0], "name", f"Renamed {len(made)}")

    users = RenamingUserFactory.bulk_create(3, company=CompanyFactory())
    first = select(User.name).where(User.id == users.ids[0])
    assert celestra_session.scalar(first) == "Renamed 3"


# --- single create(): an INSERT of its own instead of a flush ---------------------------


def test_a_created_row_is_in_the_database_when_the_call_returns(celestra_session):
    company = CompanyFactory()
    user = UserFactory(company=company)
    raw = celestra_session.connection().exec_driver_sql(
        "SELECT email FROM users WHERE id = %(id)s", {"id": user.id}
    )
    assert raw.scalar_one() == user.email
    state = inspect(user)
    assert state.persistent
    assert not state.modified
    assert user.company_id == company.id
    assert user in company.users


def test_a_constraint_error_is_raised_by_the_call_that_caused_it(celestra_session):
    taken = UserFactory()
    with pytest.raises(IntegrityError, match="uq_users_email_lower") as raised:
        UserFactory(company=taken.company, email=taken.email.upper())
    assert raised.value.__notes__ == ["raised saving the users row of UserFactory"]


def test_a_parent_not_yet_in_the_database_is_saved_with_its_child(celestra_session):
    company = CompanyFactory.build()
    user = UserFactory(company=company)
    assert inspect(company).persistent
    assert count(celestra_session, User, User.company_id == company.id) == 1
    assert user.company is company


def test_a_factory_of_a_table_of_yours_still_saves_its_row(celestra_session):
    """Only Celestra tables get the INSERT of their own; another model is flushed."""

    class AppBase(DeclarativeBase):
        pass

    class Note(AppBase):
        __tablename__ = "bulk_test_notes"
        id: Mapped[int] = mapped_column(primary_key=True)

    AppBase.metadata.create_all(celestra_session.connection())

    class NoteFactory(CelestraFactory):
        class Meta:
            model = Note

        id = factory.Sequence(lambda n: n + 1)

    note = NoteFactory()
    assert inspect(note).persistent
    with pytest.raises(CelestraError, match="only make rows of the Celestra tables"):
        NoteFactory.bulk_create(2)


def test_a_change_log_writes_its_new_value_to_the_row(celestra_session):
    log = AuditLogFactory(config_change=True)
    change = AuditChangeLogFactory(audit_log=log)
    agent = celestra_session.get(Agent, log.record_id)
    raw = celestra_session.execute(
        text(f"SELECT {change.column_name}::text FROM agents WHERE id = :id"), {"id": agent.id}
    ).scalar_one()
    assert raw == change.new_value
    assert not inspect(agent).modified
    second = AuditChangeLogFactory(audit_log=log)
    assert second.column_name != change.column_name
    assert AuditEventType.CONFIGURATION_UPDATE is log.event_type
