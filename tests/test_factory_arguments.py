"""What a factory call's keywords may be: an unknown one is named with the factory's
traits and the closest name; an enum column takes its labels as strings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text

from pytest_celestra.errors import FactoryArgumentError
from pytest_celestra.rows.factories import CompanyFactory, UserFactory
from pytest_celestra.schema.models import CompanyStatus, UserRole, UserStatus

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

USER_KEYWORDS = (
    "Its traits (each used as name=True): super_admin, company_admin, space_admin, suspended, "
    "blocked, archived. Its columns and related rows: company, company_id, created_at, email, "
    "id, invitations, lockouts, name, notifications, password_hash, password_history, role, "
    "sessions, status, updated_at. Its parameters: clock, closing, created, email_domain, "
    "lower, password, updated. See the docs page 'Factories and traits' (docs/factories.md)."
)


def test_an_unknown_trait_lists_the_traits_and_the_closest_one(celestra_session: Session) -> None:
    with pytest.raises(FactoryArgumentError) as raised:
        UserFactory(suspend=True)
    message = str(raised.value)
    assert message.startswith(
        "UserFactory(suspend=...): UserFactory has no trait, field or parameter 'suspend'. "
        "Did you mean 'suspended'? "
    )
    assert "Its traits (each used as name=True): super_admin, company_admin, space_admin, " in (
        message
    )
    assert isinstance(raised.value, TypeError)  # what SQLAlchemy's refusal was
    # Nothing was written: the check comes before any parent is made.
    assert celestra_session.execute(text("SELECT count(*) FROM companies")).scalar() == 0


def test_an_unknown_keyword_without_a_close_name_still_lists_the_traits(
    celestra_session: Session,
) -> None:
    for call in (
        lambda: UserFactory(inactive=True),
        lambda: UserFactory.build(inactive=True),
        lambda: UserFactory.bulk_create(2, inactive=True),
    ):
        with pytest.raises(FactoryArgumentError) as raised:
            call()
        assert "has no trait, field or parameter 'inactive'. Did you mean 'archived'?" in str(
            raised.value
        )
        assert "is an invalid keyword argument" not in str(raised.value)
        assert str(raised.value).endswith(USER_KEYWORDS)


def test_parent_keywords_and_parameters_are_known(celestra_session: Session) -> None:
    user = UserFactory(company__name="Acme Rockets", password="x" * 12, suspended=True)
    assert user.company.name == "Acme Rockets"
    with pytest.raises(FactoryArgumentError, match="has no trait, field or parameter 'compny'"):
        UserFactory(compny__name="Acme")


def test_enum_columns_take_their_labels_as_strings(celestra_session: Session) -> None:
    user = UserFactory(status="SUSPENDED", role="COMPANY_ADMIN")
    assert user.status is UserStatus.SUSPENDED
    assert user.role is UserRole.COMPANY_ADMIN
    stored = celestra_session.execute(
        text("SELECT status::text FROM users WHERE id = :id"), {"id": user.id}
    ).scalar()
    assert stored == "SUSPENDED"
    assert UserFactory.build(status="ARCHIVED").status is UserStatus.ARCHIVED
    rows = UserFactory.bulk_create(2, status="BLOCKED")
    assert {row.status for row in rows} == {UserStatus.BLOCKED}
    assert CompanyFactory(status="ARCHIVED").status is CompanyStatus.ARCHIVED
    # A parent's, through the call.
    assert UserFactory(company__status="ARCHIVED").company.status is CompanyStatus.ARCHIVED
    batch = UserFactory.bulk_create(2, company__status="SUSPENDED")
    assert {row.company.status for row in batch} == {CompanyStatus.SUSPENDED}
    # ... and in build(), where factory_boy's builder makes the parent: its member follows.
    built = UserFactory.build(company__status="SUSPENDED")
    assert built.company.status is CompanyStatus.SUSPENDED
    assert built.status is UserStatus.SUSPENDED


def test_an_unknown_label_is_refused_with_the_labels(celestra_session: Session) -> None:
    with pytest.raises(FactoryArgumentError) as raised:
        UserFactory(status="SUSPENDE")
    assert str(raised.value) == (
        "UserFactory(status='SUSPENDE'): 'SUSPENDE' is not a label of UserStatus. Did you mean "
        "'SUSPENDED'? Its labels: ACTIVE, SUSPENDED, BLOCKED, ARCHIVED (as strings or "
        "UserStatus members)."
    )


OUR_ERRORS_IN_A_TEST = """
from pytest_celestra import UserFactory


def test_unknown_keyword(celestra_session):
    UserFactory(emial="x@example.com")


def test_duplicate_email(celestra_session):
    UserFactory(email="same@example.com")
    UserFactory(email="same@example.com")
"""


def test_our_errors_are_reported_at_the_tests_line_without_library_frames(
    celestra_pytester: pytest.Pytester, run_inner
) -> None:
    """An unknown keyword and a refused row were reported under 40 and 170 lines of
    factory_boy's, SQLAlchemy's and the plugin's frames; their messages say it all."""
    celestra_pytester.makepyfile(OUR_ERRORS_IN_A_TEST)
    result = run_inner("-p", "no:randomly")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            ">       UserFactory(emial=*",
            "E       pytest_celestra.errors.FactoryArgumentError: UserFactory(emial=...): *",
            "*.py:5: FactoryArgumentError",
            ">       UserFactory(email=*",
            "E       pytest_celestra.db.drift.RowRejectedIntegrityError: PostgreSQL refused *",
        ]
    )
    output = result.stdout.str()
    for frame in ("factory/base.py", "sqlalchemy/", "pytest_celestra/rows/"):
        assert frame not in output, frame


def test_a_declaration_that_is_no_column_is_refused_on_every_path(
    celestra_session: Session,
) -> None:
    """A subclass declaring a misnamed column got SQLAlchemy's bare TypeError from create()
    and build(), and bulk_create left the value out without a word."""
    from pytest_celestra.rows.factories import UserSessionFactory

    class BadSessionFactory(UserSessionFactory):
        token = "same-token"

    calls = {
        "create": BadSessionFactory,
        "build": BadSessionFactory.build,
        "bulk_create": lambda: BadSessionFactory.bulk_create(3),
    }
    for path, call in calls.items():
        with pytest.raises(FactoryArgumentError) as raised:
            call()
        assert str(raised.value).startswith(
            "BadSessionFactory declares 'token', which is no column or relation of "
            "UserSession (table user_sessions)."
        ), path
    assert celestra_session.execute(text("SELECT count(*) FROM user_sessions")).scalar() == 0
