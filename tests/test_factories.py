"""The factories: every factory and every trait makes rows the real database accepts,
parents agree with each other, times are consistent, and build() needs no database."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import factory.random
import pytest
from realism_checks import CHECKS, Seeded, check_row_rules
from sqlalchemy import func, select, text

from pytest_celestra.errors import CelestraError, NoSessionError
from pytest_celestra.rows import passwords
from pytest_celestra.rows.factories import (
    ALL_FACTORIES,
    AgentFactory,
    AgentKnowledgeBaseFactory,
    AuditChangeLogFactory,
    AuditLogFactory,
    CompanyFactory,
    FailedLoginFactory,
    InvitationFactory,
    KnowledgeBaseFactory,
    KnowledgeSourceFactory,
    KnowledgeTypeFactory,
    NotificationFactory,
    PasswordHistoryFactory,
    UserFactory,
    UserLockoutFactory,
    UserSessionFactory,
    bound_session,
    current_session,
    traits_of,
)
from pytest_celestra.rows.providers import (
    CHANGE_EVENT_TYPES,
    KNOWLEDGE_TYPES,
    PLATFORM_DOMAIN,
    UNKNOWN_EMAIL_REASON,
    company_domain,
)
from pytest_celestra.schema import spec
from pytest_celestra.schema.models import (
    Agent,
    AgentStatus,
    AuditChangeLog,
    AuditEventType,
    CompanyStatus,
    FailedLogin,
    InvitationStatus,
    KnowledgeBaseStatus,
    KnowledgeType,
    NotificationStatus,
    User,
    UserRole,
    UserSession,
    UserStatus,
)

FACTORY_TRAITS = [
    pytest.param(f, trait, id=f"{f.__name__}-{trait}")
    for f in ALL_FACTORIES
    for trait in traits_of(f)
]
TWO_DAYS = timedelta(days=2)


def db_now(session) -> datetime:
    return session.execute(select(func.now())).scalar_one()


def reload(session, obj):
    """The row as the database stores it (not the Python object that was saved)."""
    session.flush()
    session.expire(obj)
    session.refresh(obj)
    return obj


# --- every factory, every trait --------------------------------------------------------


@pytest.mark.parametrize("factory_class", ALL_FACTORIES, ids=lambda f: f.__name__)
def test_every_factory_creates_a_row_the_database_accepts(celestra_session, factory_class):
    obj = factory_class()
    stored = reload(celestra_session, obj)
    model = factory_class._meta.model
    assert celestra_session.get(model, stored.id) is stored
    created = stored.created_at if hasattr(stored, "created_at") else stored.attempted_at
    assert created is not None
    assert created <= db_now(celestra_session)


@pytest.mark.parametrize(("factory_class", "trait"), FACTORY_TRAITS)
def test_every_trait_creates_a_row_the_database_accepts(celestra_session, factory_class, trait):
    obj = factory_class(**{trait: True})
    reload(celestra_session, obj)


def test_every_factory_has_its_traits_listed():
    assert len(ALL_FACTORIES) == 15
    assert set(traits_of(UserFactory)) >= {
        "super_admin",
        "company_admin",
        "suspended",
        "blocked",
        "archived",
    }
    assert set(traits_of(UserSessionFactory)) >= {"expired", "active"}
    assert set(traits_of(InvitationFactory)) >= {"pending", "accepted", "expired", "cancelled"}
    assert set(traits_of(UserLockoutFactory)) >= {"active", "ended"}
    assert set(traits_of(NotificationFactory)) >= {"read", "delivered", "failed"}


def test_batches_of_every_factory_satisfy_the_realism_rules(celestra_session):
    """Many rows of each factory pass the per-row realism rules the seeded data obeys."""
    for factory_class in ALL_FACTORIES:
        factory_class.create_batch(8)
        for trait in traits_of(factory_class):
            factory_class(**{trait: True})
    AuditLogFactory.create_batch(4, event_type=AuditEventType.DATA_EXPORT)
    AuditLogFactory(event_type=AuditEventType.DATA_EXPORT, user=UserFactory(super_admin=True))
    celestra_session.flush()
    check_row_rules(celestra_session)


# --- no database --------------------------------------------------------------------------


@pytest.mark.parametrize("factory_class", ALL_FACTORIES, ids=lambda f: f.__name__)
def test_build_needs_no_database(factory_class):
    obj = factory_class.build()
    assert obj.id is not None
    for trait in traits_of(factory_class):
        factory_class.build(**{trait: True})


def test_create_without_a_session_names_the_fixtures():
    with pytest.raises(NoSessionError) as error:
        UserFactory()
    message = str(error.value)
    assert "UserFactory.create()" in message
    assert "celestra_session" in message
    assert "celestra_seeded_db" in message
    assert "bound_session" in message
    # In an async test, the way in is run_sync (a new user was sent to celestra_session).
    assert "with `celestra_async_session`, call them in `await session.run_sync(make)`" in message


def test_create_of_a_child_without_a_session_fails_before_making_parents():
    with pytest.raises(NoSessionError, match=r"^UserSessionFactory\.create\(\)"):
        UserSessionFactory()


def test_bound_session_is_restored_after_the_block(celestra_session):
    assert current_session() is celestra_session
    other = object()
    with bound_session(other):  # type: ignore[arg-type]
        assert current_session() is other
    assert current_session() is celestra_session


def test_same_seed_same_objects():
    def make():
        factory.random.reseed_random(4242)
        user = UserFactory.build()
        return (user.name, user.role, user.status, user.company.name, user.password_hash)

    assert make() == make()


# --- users and passwords ----------------------------------------------------------------


def test_super_admin_has_no_company_and_the_platform_domain(celestra_session):
    admin = reload(celestra_session, UserFactory(super_admin=True))
    assert admin.role is UserRole.SUPER_ADMIN
    assert admin.company_id is None
    assert admin.email.endswith(f"@{PLATFORM_DOMAIN}")
    assert celestra_session.scalar(text("SELECT count(*) FROM companies")) == 0


def test_company_admin_and_emails_on_the_company_domain(celestra_session):
    company = CompanyFactory()
    admin = UserFactory(company_admin=True, company=company)
    members = UserFactory.create_batch(5, company=company, name="Ann Lee")
    assert admin.role is UserRole.COMPANY_ADMIN
    emails = [u.email for u in [admin, *members]]
    assert len({e.lower() for e in emails}) == len(emails)
    assert all(e.endswith("@" + company_domain(company.name)) for e in emails)
    assert all(e == e.lower() for e in emails)


def test_defaults_are_the_happy_path(celestra_session):
    """Without traits: an ACTIVE REGULAR_USER of an ACTIVE company, who can sign in."""
    factory.random.reseed_random(11)
    users = [reload(celestra_session, user) for user in UserFactory.create_batch(30)]
    assert {(u.role, u.status) for u in users} == {(UserRole.REGULAR_USER, UserStatus.ACTIVE)}
    assert {u.company.status for u in users} == {CompanyStatus.ACTIVE}
    assert all(passwords.verify(passwords.DEFAULT_PASSWORD, u.password_hash) for u in users)
    assert {a.status for a in AgentFactory.create_batch(10)} == {AgentStatus.ACTIVE}
    assert {k.status for k in KnowledgeBaseFactory.create_batch(10)} == {KnowledgeBaseStatus.ACTIVE}
    # Children made alone hang on happy-path parents too.
    session = UserSessionFactory(active=True)
    assert (session.user.role, session.user.status) == (UserRole.REGULAR_USER, UserStatus.ACTIVE)


@pytest.mark.parametrize("status", ["suspended", "blocked", "archived"])
def test_status_traits(celestra_session, status):
    assert UserFactory(**{status: True}).status is UserStatus[status.upper()]


def test_default_password_verifies(celestra_session):
    user = reload(celestra_session, UserFactory())
    assert passwords.verify(passwords.DEFAULT_PASSWORD, user.password_hash)
    assert not passwords.verify("wrong", user.password_hash)


def test_own_password_verifies(celestra_session):
    user = reload(celestra_session, UserFactory(password="s3cret-Passw0rd"))
    assert passwords.verify("s3cret-Passw0rd", user.password_hash)
    assert not passwords.verify(passwords.DEFAULT_PASSWORD, user.password_hash)


def test_password_history_differs_from_the_current_password(celestra_session):
    user = UserFactory()
    history = PasswordHistoryFactory.create_batch(4, user=user)
    hashes = {h.password_hash for h in history}
    assert len(hashes) == 4
    assert user.password_hash not in hashes
    assert not any(passwords.verify(passwords.DEFAULT_PASSWORD, h) for h in hashes)


# --- parents agree ------------------------------------------------------------------------


def test_agent_and_knowledge_base_linked_within_one_company(celestra_session):
    link = AgentKnowledgeBaseFactory()
    assert link.agent.company is link.knowledge_base.company
    assert celestra_session.scalar(text("SELECT count(*) FROM companies")) == 1


@pytest.mark.parametrize("side", ["agent", "knowledge_base"])
def test_link_joins_the_company_of_the_given_side(celestra_session, side):
    given = AgentFactory() if side == "agent" else KnowledgeBaseFactory()
    link = AgentKnowledgeBaseFactory(**{side: given})
    assert link.agent.company is given.company
    assert link.knowledge_base.company is given.company
    assert celestra_session.scalar(text("SELECT count(*) FROM companies")) == 1


def test_notification_belongs_to_its_users_company(celestra_session):
    notification = NotificationFactory()
    assert notification.company is notification.user.company is not None
    platform = NotificationFactory(user=UserFactory(super_admin=True))
    assert platform.company is None


def test_signed_audit_logs_are_signed_by_an_admin_of_the_same_company(celestra_session):
    # story.super_admin_signs: an admin of the user's company, or now and then a super admin.
    signers = Counter()
    for log in AuditLogFactory.create_batch(30, event_type=AuditEventType.DATA_EXPORT):
        assert log.user.role in (UserRole.COMPANY_ADMIN, UserRole.SUPER_ADMIN)
        if log.signer.role is UserRole.COMPANY_ADMIN:
            assert log.signer.company is log.user.company is not None
        else:
            assert log.signer.role is UserRole.SUPER_ADMIN
        signers[log.signer.role] += 1
        assert log.digital_signature
        assert log.reason
    assert signers[UserRole.COMPANY_ADMIN] > 0, signers
    assert signers[UserRole.SUPER_ADMIN] > 0, signers
    by_platform = AuditLogFactory(
        event_type=AuditEventType.DATA_EXPORT, user=UserFactory(super_admin=True)
    )
    assert by_platform.signer.role is UserRole.SUPER_ADMIN
    unsigned = AuditLogFactory(event_type=AuditEventType.SUCCESSFUL_LOGIN)
    assert unsigned.signer is None
    assert unsigned.digital_signature is None
    assert unsigned.reason is None


def test_knowledge_sources_reuse_the_knowledge_types(celestra_session):
    KnowledgeSourceFactory.create_batch(40)
    names = celestra_session.scalars(select(KnowledgeType.name)).all()
    assert len(names) == len(set(names))
    assert set(names) <= set(KNOWLEDGE_TYPES)
    assert KnowledgeTypeFactory(name="PDF document") is KnowledgeTypeFactory(name="PDF document")


def test_change_log_hangs_on_an_audit_log_that_changed_a_row(celestra_session):
    for change in [AuditChangeLogFactory() for _ in range(10)]:
        log = change.audit_log
        assert log.event_type in CHANGE_EVENT_TYPES
        assert log.table_name is not None
        row = celestra_session.execute(
            text(f"SELECT created_at FROM {log.table_name} WHERE id = :id"), {"id": log.record_id}
        ).one()
        assert row.created_at <= log.created_at
        assert change.old_value != change.new_value
        assert change.created_at >= log.created_at


def test_change_logs_keep_the_row_and_its_history_in_agreement(celestra_session):
    log = AuditLogFactory(config_change=True)
    agent = celestra_session.get(Agent, log.record_id)
    first = AuditChangeLogFactory(audit_log=log)
    second = AuditChangeLogFactory(audit_log=log)
    assert first.column_name != second.column_name
    for change in (first, second):
        value = getattr(agent, change.column_name)
        assert change.new_value == getattr(value, "value", value)
    later = AuditLogFactory(config_change=True, user=log.user, record=agent)
    again = AuditChangeLogFactory(audit_log=later, column=first.column_name)
    assert again.old_value == first.new_value


def test_a_change_log_with_apply_false_leaves_the_row_as_it_is(celestra_session):
    """As every other hook of the factories: `=False` skips it."""
    log = AuditLogFactory(config_change=True)
    agent = celestra_session.get(Agent, log.record_id)
    before = {column: getattr(agent, column) for column in ("name", "status", "updated_at")}
    change = AuditChangeLogFactory(audit_log=log, apply=False)
    celestra_session.refresh(agent)
    assert {column: getattr(agent, column) for column in before} == before
    applied = AuditChangeLogFactory(audit_log=log)
    value = getattr(agent, applied.column_name)
    assert applied.new_value == getattr(value, "value", value) != applied.old_value
    assert change.column_name != applied.column_name


def test_a_change_log_given_the_value_it_set_draws_the_value_before(celestra_session):
    """`after=` tells a history from the present back (as a scenario does): the value
    before is drawn, another one of the column's domain."""
    log = AuditLogFactory(config_change=True)
    changes = [AuditChangeLogFactory(audit_log=log, apply=False, after="Renamed agent")]
    changes.append(AuditChangeLogFactory(audit_log=log, apply=False, after="Renamed again"))
    for change, after in zip(changes, ("Renamed agent", "Renamed again"), strict=True):
        assert change.new_value == after != change.old_value
        assert change.old_value


def test_role_change_changes_the_role_of_a_member_of_the_same_company(
    celestra_session, monkeypatch
):
    monkeypatch.setattr(spec, "ACTOR_SUPER_ADMIN_SHARE", 0.0)
    log = AuditLogFactory(role_change=True)
    assert log.table_name == "users"
    assert log.user.role is UserRole.COMPANY_ADMIN
    member = celestra_session.get(User, log.record_id)
    assert member.company is log.user.company
    (change,) = celestra_session.scalars(
        select(AuditChangeLog).where(AuditChangeLog.audit_log_id == log.id)
    )
    assert change.column_name == "role"
    assert change.new_value == member.role.value != change.old_value
    assert AuditChangeLogFactory(audit_log=log).column_name != "role"
    unrecorded = AuditLogFactory(role_change=True, role_change_log=False)
    assert not celestra_session.scalars(
        select(AuditChangeLog).where(AuditChangeLog.audit_log_id == unrecorded.id)
    ).all()


@pytest.mark.parametrize("trait", ["role_change", "config_change"])
def test_a_super_admin_changes_a_row_of_a_company_as_in_the_bulk_path(
    celestra_session, monkeypatch, trait
):
    """Row changes follow story.super_admin_acts like the bulk path; a super admin's change
    is of a row that has a company (a role change never makes a company-less user a
    company member)."""
    monkeypatch.setattr(spec, "ACTOR_SUPER_ADMIN_SHARE", 1.0)
    log = AuditLogFactory(**{trait: True})
    assert log.user.role is UserRole.SUPER_ADMIN
    assert log.signer.role is UserRole.SUPER_ADMIN
    record = celestra_session.get(User if trait == "role_change" else Agent, log.record_id)
    assert record.company is not None
    if trait == "role_change":
        assert record.role is not UserRole.SUPER_ADMIN


def test_row_changes_are_made_by_super_admins_now_and_then(celestra_session):
    factory.random.reseed_random(5)
    actors = Counter(AuditLogFactory.build(config_change=True).user.role for _ in range(100))
    assert set(actors) == {UserRole.COMPANY_ADMIN, UserRole.SUPER_ADMIN}
    assert actors[UserRole.SUPER_ADMIN] < actors[UserRole.COMPANY_ADMIN]


def test_change_log_on_an_audit_log_that_changed_nothing_is_refused(celestra_session):
    with pytest.raises(Exception, match="needs an audit log that changed a row"):
        AuditChangeLogFactory(audit_log=AuditLogFactory(event_type=AuditEventType.OTHER))


def test_unknown_email_failed_login(celestra_session):
    failure = FailedLoginFactory(unknown_email=True)
    assert failure.user is None
    assert failure.failure_reason == UNKNOWN_EMAIL_REASON
    assert FailedLoginFactory().failure_reason != UNKNOWN_EMAIL_REASON


def test_lockout_follows_failed_logins(celestra_session):
    lockout = UserLockoutFactory()
    failures = celestra_session.scalars(
        select(FailedLogin).where(FailedLogin.user_id == lockout.user.id)
    ).all()
    window = [
        f
        for f in failures
        if lockout.lockout_start - timedelta(minutes=30) <= f.attempted_at <= lockout.lockout_start
    ]
    assert 1 <= len(window) <= lockout.failed_attempts


# --- time-dependent traits ----------------------------------------------------------------


def test_children_are_never_older_than_parents_nor_in_the_future(celestra_session):
    sessions = UserSessionFactory.create_batch(20)
    now = datetime.now(UTC)
    for s in sessions:
        assert s.user.company.created_at <= s.user.created_at <= s.created_at <= now
        assert s.expires_at > s.created_at


def test_session_traits(celestra_session):
    now = db_now(celestra_session)
    assert reload(celestra_session, UserSessionFactory(expired=True)).expires_at < now
    active = reload(celestra_session, UserSessionFactory(active=True))
    assert active.created_at <= now
    assert active.expires_at >= now + TWO_DAYS
    assert UserSessionFactory(long=True).expires_at > now + timedelta(days=7)


def test_invitation_traits(celestra_session):
    now = db_now(celestra_session)
    pending = reload(celestra_session, InvitationFactory(pending=True))
    assert pending.status is InvitationStatus.PENDING
    assert pending.created_at <= pending.sent_at <= now < pending.expires_at
    assert pending.expires_at >= now + TWO_DAYS
    expired = InvitationFactory(expired=True)
    assert expired.status is InvitationStatus.EXPIRED
    assert expired.expires_at < now
    assert InvitationFactory(accepted=True).status is InvitationStatus.ACCEPTED
    assert InvitationFactory(cancelled=True).status is InvitationStatus.CANCELLED


def test_lockout_traits(celestra_session):
    now = db_now(celestra_session)
    active = UserLockoutFactory(active=True)
    assert active.lockout_start <= now
    assert active.lockout_end >= now + TWO_DAYS
    ended = UserLockoutFactory(ended=True)
    assert ended.lockout_start < ended.lockout_end < now


def test_notification_traits(celestra_session):
    read = NotificationFactory(read=True)
    assert read.status is NotificationStatus.DELIVERED
    assert read.created_at <= read.delivered_at <= read.read_at
    delivered = NotificationFactory(delivered=True)
    assert delivered.delivered_at is not None
    assert delivered.read_at is None
    failed = NotificationFactory(failed=True)
    assert failed.status is NotificationStatus.FAILED
    assert failed.delivered_at is None
    assert failed.read_at is None
    assert NotificationFactory(expired=True).expires_at < db_now(celestra_session)


# --- one story across tables (pytest_celestra.rows.story) ------------------------------------


def story_checks():
    return [c for c in CHECKS if c.rule.startswith("S") and not c.rule.startswith("S10")]


def test_a_closed_company_tells_its_story(celestra_session):
    archived = CompanyFactory(archived=True)
    suspended = CompanyFactory(suspended=True)
    members = [UserFactory(company=archived) for _ in range(3)]
    members.append(UserFactory(company=suspended, company_admin=True))
    agents = [AgentFactory(company=archived), AgentFactory(company=suspended)]
    kbs = [KnowledgeBaseFactory(company=archived), KnowledgeBaseFactory(company=suspended)]
    for member in members:
        UserSessionFactory(user=member)
        InvitationFactory(user=member, expired=True)
        AuditLogFactory(user=member, event_type=AuditEventType.SUCCESSFUL_LOGIN)
    celestra_session.flush()
    assert {m.status for m in members} == {UserStatus.ARCHIVED, UserStatus.SUSPENDED}
    assert {a.status for a in agents} == {AgentStatus.ARCHIVED, AgentStatus.DISABLED}
    assert all(k.status is not KnowledgeBaseStatus.ACTIVE for k in kbs)
    now = celestra_session.scalar(select(func.now()))
    live = celestra_session.scalars(
        select(UserSession).where(
            UserSession.user_id.in_([m.id for m in members]), UserSession.expires_at > now
        )
    ).all()
    assert live == []
    # A test can still ask for what the story would not give.
    assert UserFactory(company=archived, status=UserStatus.ACTIVE).status is UserStatus.ACTIVE


def test_story_rules_hold_for_factory_rows(celestra_session):
    archived = CompanyFactory(archived=True)
    for member in (UserFactory(company=archived), UserFactory(blocked=True)):
        UserSessionFactory(user=member)
        InvitationFactory(user=member)
        AuditLogFactory(user=member, event_type=AuditEventType.SESSION_ENDED)
    for notification_trait in traits_of(NotificationFactory):
        NotificationFactory(**{notification_trait: True})
    for closed in (AgentFactory(archived=True), KnowledgeBaseFactory(disabled=True)):
        AuditChangeLogFactory(audit_log=AuditLogFactory(config_change=True, record=closed))
    celestra_session.flush()
    seeded = Seeded(celestra_session, volume=None)
    for check in story_checks():
        check(seeded)


@pytest.mark.parametrize(
    ("trait", "table", "column"),
    [
        ("failed_login", "failed_logins", "attempted_at"),
        ("account_locked", "user_lockouts", "lockout_start"),
        ("password_changed", "password_history", "created_at"),
        ("new_device_login", "user_sessions", "created_at"),
        ("invitation_sent", "invitations", "sent_at"),
    ],
)
def test_a_notification_brings_the_event_it_reports(celestra_session, trait, table, column):
    notification = NotificationFactory(**{trait: True})
    celestra_session.flush()
    delay = celestra_session.scalar(
        text(
            f"SELECT min(:created - {column}) FROM {table}"
            f" WHERE user_id = :user AND {column} <= :created"
        ),
        {"created": notification.created_at, "user": notification.user.id},
    )
    assert delay is not None
    assert delay <= timedelta(minutes=10)
    # ... unless told not to.
    before = celestra_session.scalar(text(f"SELECT count(*) FROM {table}"))
    NotificationFactory(**{trait: True}, event=False)
    assert celestra_session.scalar(text(f"SELECT count(*) FROM {table}")) == before


def test_the_invitation_a_notification_reports_is_in_a_state_of_the_spec(celestra_session):
    """An INVITATION_SENT notification's invitation takes a state of the spec's table whose
    sending window holds its sent_at, and that state's status (not one read off the clock):
    accepted and cancelled ones too, and an open one stays open two more days at least."""
    factory.random.reseed_random(5)
    invitations = [
        invitation
        for _ in range(40)
        for invitation in NotificationFactory(invitation_sent=True).user.invitations
    ]
    now = db_now(celestra_session)
    statuses = Counter(invitation.status for invitation in invitations)
    assert {InvitationStatus.ACCEPTED, InvitationStatus.CANCELLED} <= set(statuses), statuses
    for invitation in invitations:
        if invitation.status in (InvitationStatus.SENT, InvitationStatus.PENDING):
            assert invitation.expires_at >= now + TWO_DAYS
        if invitation.status is InvitationStatus.EXPIRED:
            assert invitation.sent_at <= now - timedelta(days=10)
    celestra_session.flush()
    for check in story_checks():
        check(Seeded(celestra_session, volume=None))


def test_the_lockout_a_notification_reports_is_in_a_state_of_the_spec(
    celestra_session, monkeypatch
):
    """The lockout an ACCOUNT_LOCKED or ACCOUNT_UNLOCKED notification brings has a state of
    the spec's table: the reason of that state (vocabulary.LOCKOUT_REASONS, as every other
    lockout's), and an ongoing one ends two days ahead at least."""
    from pytest_celestra.schema import vocabulary

    reasons = {state: (f"Reason of this test ({state})",) for state in vocabulary.LOCKOUT_REASONS}
    monkeypatch.setattr(vocabulary, "LOCKOUT_REASONS", reasons)
    factory.random.reseed_random(5)
    locked = [NotificationFactory(account_locked=True).user for _ in range(20)]
    unlocked = [NotificationFactory(account_unlocked=True).user for _ in range(5)]
    now = db_now(celestra_session)
    for user in locked + unlocked:
        (lockout,) = user.lockouts
        state = "ended" if lockout.lockout_end < now else "long"
        if state == "long" and lockout.lockout_end <= now + timedelta(days=7):
            state = "active"
        assert lockout.reason == reasons[state][0]
        assert lockout.lockout_end < now or lockout.lockout_end >= now + TWO_DAYS
    assert {user.lockouts[0].reason for user in unlocked} == {reasons["ended"][0]}
    celestra_session.flush()
    for check in story_checks():
        check(Seeded(celestra_session, volume=None))


def test_the_knowledge_base_a_failed_build_notification_reports_is_retrying_or_off(
    celestra_session,
):
    """KNOWLEDGE_BASE_FAILED reports a knowledge base in one of story's failed statuses,
    each as often, relatively, as the spec's weights say (the scenario's rule)."""
    factory.random.reseed_random(5)
    statuses = Counter(
        kb.status
        for _ in range(30)
        for kb in NotificationFactory(knowledge_base_failed=True).user.company.knowledge_bases
    )
    assert set(statuses) == {KnowledgeBaseStatus.BUILDING, KnowledgeBaseStatus.DISABLED}


def test_a_sign_in_starts_a_session_in_a_state_of_the_spec(celestra_session):
    """A factory-made sign-in (and a NEW_DEVICE_LOGIN notification) starts a session of a
    state of the spec's table, with that state's times, as in the scenario: over by now,
    or valid two more days at least (not one of a fixed length that ends in a few hours)."""
    factory.random.reseed_random(5)
    member = UserFactory()
    for event in (AuditEventType.SUCCESSFUL_LOGIN, AuditEventType.SESSION_STARTED):
        AuditLogFactory.create_batch(15, user=member, event_type=event)
    users = [member] + [NotificationFactory(new_device_login=True).user for _ in range(5)]
    now = db_now(celestra_session)
    sessions = [session for user in users for session in user.sessions]
    assert len(sessions) == 35
    ahead = Counter(
        "over"
        if s.expires_at < now
        else "long"
        if s.expires_at > now + timedelta(days=7)
        else "active"
        for s in sessions
    )
    assert set(ahead) == {"over", "active", "long"}, ahead
    for session in sessions:
        assert session.expires_at < now or session.expires_at >= now + TWO_DAYS
    left = UserFactory(suspended=True)
    AuditLogFactory.create_batch(10, user=left, event_type=AuditEventType.SUCCESSFUL_LOGIN)
    assert all(session.expires_at < now for session in left.sessions)
    celestra_session.flush()
    for check in story_checks():
        check(Seeded(celestra_session, volume=None))


def test_the_rows_a_company_event_brings_are_as_old_as_members_are(celestra_session):
    """The knowledge base, agent and admin a company's event brings were created when a
    member of the company can be (story.member_created: a month ago at least), not a day
    before the event, however recent the event."""
    factory.random.reseed_random(5)
    created = []
    for trait in ("knowledge_base_ready", "knowledge_base_failed", "agent_status_changed"):
        for _ in range(5):
            company = NotificationFactory(**{trait: True}).user.company
            created += [row.created_at for row in (*company.knowledge_bases, *company.agents)]
            created += [u.created_at for u in company.users if u.role is UserRole.COMPANY_ADMIN]
    now = db_now(celestra_session)
    assert len(created) >= 15
    assert max(created) <= now + timedelta(seconds=spec.MEMBER_CREATED_LATEST)


def test_a_company_event_needs_a_company(celestra_session):
    with pytest.raises(CelestraError, match="super admin has none"):
        NotificationFactory(knowledge_base_ready=True, user=UserFactory(super_admin=True))


def test_sign_ins_start_sessions_and_failed_sign_ins_are_failed_logins(celestra_session):
    sign_in = AuditLogFactory(event_type=AuditEventType.SUCCESSFUL_LOGIN)
    failure = AuditLogFactory(event_type=AuditEventType.FAILED_LOGIN)
    celestra_session.flush()
    session = celestra_session.scalars(
        select(UserSession).where(UserSession.user_id == sign_in.user.id)
    ).one()
    assert session.created_at == sign_in.created_at
    attempted = celestra_session.scalars(
        select(FailedLogin.attempted_at).where(FailedLogin.user_id == failure.user.id)
    ).all()
    assert attempted == [failure.created_at]
