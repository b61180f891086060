"""An example suite: what a Celestra developer writes with pytest-celestra. No conftest needed.

Run it with ``pytest examples``; ``--celestra-volume=large`` gives every test the large scenario.
"""

from __future__ import annotations

from celestra_app import active_sessions, headcount_by_company, login, suspend
from sqlalchemy import func, select

from pytest_celestra.rows.factories import UserFactory, UserSessionFactory
from pytest_celestra.rows.passwords import DEFAULT_PASSWORD
from pytest_celestra.schema.models import Company, User, UserRole, UserStatus


def test_every_company_has_staff(celestra_seeded_db):
    companies = celestra_seeded_db.scalar(select(func.count()).select_from(Company))
    headcount = headcount_by_company(celestra_seeded_db)
    assert len(headcount) == companies
    assert all(count >= 1 for count in headcount.values())


def test_seeded_admin_logs_in_with_the_default_password(celestra_seeded_db):
    admin = celestra_seeded_db.scalars(
        select(User).where(User.role == UserRole.COMPANY_ADMIN, User.status == UserStatus.ACTIVE)
    ).first()
    assert login(celestra_seeded_db, admin.email.upper(), DEFAULT_PASSWORD) == admin
    assert login(celestra_seeded_db, admin.email, "wrong password") is None


def test_suspending_commits_but_the_next_test_sees_the_scenario_again(celestra_seeded_db):
    user = celestra_seeded_db.scalars(select(User).where(User.status == UserStatus.ACTIVE)).first()
    suspend(celestra_seeded_db, user)  # commits: only a savepoint is released
    assert login(celestra_seeded_db, user.email, DEFAULT_PASSWORD) is None


def test_a_new_user_with_their_own_password(celestra_session):
    user = UserFactory(password="s3cret-passphrase")
    assert login(celestra_session, user.email, "s3cret-passphrase") == user


def test_only_unexpired_sessions_are_active(celestra_session):
    user = UserFactory()
    live = UserSessionFactory(user=user, active=True)
    UserSessionFactory(user=user, expired=True)
    assert active_sessions(celestra_session, user.id) == [live]


def test_a_fixture_brings_its_whole_parent_chain(celestra_user_session):
    user = celestra_user_session.user
    assert user.company is None or user.company.name
    assert celestra_user_session.expires_at > celestra_user_session.created_at
