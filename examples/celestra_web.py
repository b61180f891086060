"""A small Flask service standing in for a web application under test.

It has an engine of its own, built from a URL as a deployed service builds it from its
configuration, and commits in every request that writes: exactly the code that
``celestra_seeded_db``'s rolled-back transaction cannot hold, and
``celestra_transactional_dsn`` can.
"""

from __future__ import annotations

import uuid

from celestra_app import login, suspend
from flask import Flask, abort, request
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from pytest_celestra.schema.models import User


def create_app(database_url: str) -> Flask:
    """The service, on the database at ``database_url`` (``postgresql://...``)."""
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    app = Flask(__name__)

    @app.post("/login")
    def sign_in() -> dict[str, str]:
        with Session(engine) as session:
            user = login(session, request.form["email"], request.form["password"])
            if user is None:
                abort(401)
            return {"id": str(user.id), "name": user.name}

    @app.post("/users/<user_id>/suspend")
    def suspend_user(user_id: str) -> dict[str, str]:
        with Session(engine) as session:
            user = session.get(User, uuid.UUID(user_id))
            if user is None:
                abort(404)
            suspend(session, user)  # commits
            return {"id": user_id, "status": user.status.value}

    @app.get("/users")
    def user_emails() -> list[str]:
        with Session(engine) as session:
            return list(session.scalars(select(User.email).order_by(User.email)))

    app.extensions["celestra_engine"] = engine
    return app
