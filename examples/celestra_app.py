"""A stand-in for application code under test: a few queries a Celestra service would run."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from passlib.context import CryptContext
from sqlalchemy import func, select

from pytest_celestra.schema.models import Company, User, UserSession, UserStatus

if TYPE_CHECKING:
    import uuid

    from sqlalchemy.orm import Session

_passwords = CryptContext(schemes=["bcrypt", "pbkdf2_sha256", "argon2"], deprecated="auto")


def login(session: Session, email: str, password: str) -> User | None:
    """The active user with this email and password, or None."""
    user = session.scalars(select(User).where(func.lower(User.email) == email.lower())).first()
    if user is None or user.status is not UserStatus.ACTIVE:
        return None
    return user if _passwords.verify(password, user.password_hash) else None


def active_sessions(session: Session, user_id: uuid.UUID) -> list[UserSession]:
    """Sessions of a user that have not expired yet."""
    now = datetime.now(UTC)
    query = select(UserSession).where(UserSession.user_id == user_id, UserSession.expires_at > now)
    return list(session.scalars(query))


def headcount_by_company(session: Session) -> dict[str, int]:
    """Number of users per company name."""
    rows = session.execute(
        select(Company.name, func.count(User.id)).join(User.company).group_by(Company.name)
    )
    return dict(rows.all())


def suspend(session: Session, user: User) -> None:
    """Suspend a user and commit, as a request handler would."""
    user.status = UserStatus.SUSPENDED
    session.commit()
