"""A web application that commits on its own connections, tested with
``celestra_transactional_db``: its commits are real, and gone before the next test.

Needs Flask (``pip install -e '.[examples]'``, part of the ``test`` extra too); skipped
without it, saying so.
"""

from __future__ import annotations

import pytest

pytest.importorskip("flask", reason="the Flask example needs flask: pip install -e '.[examples]'")

from celestra_web import create_app
from sqlalchemy import select

from pytest_celestra.rows.factories import UserFactory
from pytest_celestra.rows.passwords import DEFAULT_PASSWORD
from pytest_celestra.schema.models import User, UserStatus

#: What the first test committed, for the second to look for.
COMMITTED: dict[str, str] = {}


@pytest.fixture
def client(celestra_transactional_dsn):
    """A test client of the app, which builds its own engine from the URL."""
    app = create_app(celestra_transactional_dsn)
    yield app.test_client()
    app.extensions["celestra_engine"].dispose()


def test_the_app_commits_and_another_connection_reads_it(celestra_transactional_db, client):
    admin = celestra_transactional_db.scalars(
        select(User).where(User.status == UserStatus.ACTIVE).order_by(User.email)
    ).first()
    response = client.post(f"/users/{admin.id}/suspend")
    assert response.json == {"id": str(admin.id), "status": UserStatus.SUSPENDED.value}
    # The test's own session is a second connection: it reads what the app committed.
    status = celestra_transactional_db.scalar(select(User.status).where(User.id == admin.id))
    assert status is UserStatus.SUSPENDED
    # A factory's rows, once committed, are there for the app's requests.
    newcomer = UserFactory(password="s3cret-passphrase")
    celestra_transactional_db.commit()
    assert client.post(
        "/login", data={"email": newcomer.email, "password": "s3cret-passphrase"}
    ).json == {"id": str(newcomer.id), "name": newcomer.name}
    assert (
        client.post("/login", data={"email": admin.email, "password": DEFAULT_PASSWORD}).status_code
        == 401
    )
    COMMITTED.update(suspended=admin.email, created=newcomer.email)


def test_the_next_test_finds_none_of_it(client):
    if not COMMITTED:
        pytest.skip("shows what the test above left behind: run the module in order")
    emails = client.get("/users").json
    assert COMMITTED["created"] not in emails
    response = client.post(
        "/login", data={"email": COMMITTED["suspended"], "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 200  # active again: the suspension is gone
