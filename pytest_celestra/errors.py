"""Exceptions raised by pytest-celestra. Every message says how to fix the problem."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable


class CelestraError(Exception):
    """Base class of every error pytest-celestra raises on purpose."""


class ConfigError(CelestraError, ValueError):
    """A setting (option, ini key or environment variable) has a value we cannot use."""


class NoSessionError(CelestraError, RuntimeError):
    """A factory was asked to write to the database while no Celestra session is in effect."""

    def __init__(self, factory_name: str) -> None:
        super().__init__(
            f"{factory_name}.create() needs a database session, and none is in effect. "
            "In a test, request the `celestra_session` fixture (empty database) or "
            "`celestra_seeded_db` (seeded scenario); outside pytest, wrap the calls in "
            "`with pytest_celestra.rows.factories.bound_session(session): ...`; with "
            "`celestra_async_session`, call them in `await session.run_sync(make)`, where "
            "`make(sync_session)` wraps them in `with bound_session(sync_session):`. "
            f"Use {factory_name}.build() for an object that is not saved."
        )


class ServerError(CelestraError, RuntimeError):
    """No PostgreSQL server could be reached or started."""


class UnsafeDatabaseError(CelestraError, RuntimeError):
    """An operation would touch a database that pytest-celestra did not create."""


class RuleError(CelestraError):
    """A schema rule of yours (`pytest_celestra_schema_rules`) raised, or made a value
    its column cannot take. No row was written, and the message holds none of the row's
    values."""


class FactoryArgumentError(CelestraError, TypeError):
    """A factory was called with a keyword it does not know (not a trait, a declaration,
    a parameter or a column of its model), or a label its enum column does not have."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` Did you mean 'medium'?` for the choice closest to a misspelt `word`, else ""."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""
