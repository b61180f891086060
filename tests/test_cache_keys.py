"""The seeded template's key changes with everything that changes its content."""

from __future__ import annotations

import shutil

import pytest

from pytest_celestra.db.cache_keys import (
    PACKAGE_DIR,
    generator_code_key,
    package_sources,
    password_hashing_key,
    scenario_key,
)
from pytest_celestra.rows import passwords
from pytest_celestra.schema.volumes import Volume

SMALL = Volume.named("small")


def key() -> str:
    return scenario_key("schema", SMALL, 1, "2026-01-01")


def test_every_module_of_the_package_is_hashed():
    modules = {path.relative_to(PACKAGE_DIR).as_posix() for path in PACKAGE_DIR.rglob("*.py")}
    assert set(package_sources()) == modules
    assert {
        "schema/vocabulary.py",
        "rows/providers.py",
        "rows/passwords.py",
        "rows/scenario.py",
    } <= modules


def test_an_edit_to_any_module_changes_the_code_key(tmp_path):
    package = tmp_path / "pytest_celestra"
    shutil.copytree(PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__"))
    before = generator_code_key(package)
    assert before == generator_code_key()
    unchanged = []
    for path in sorted(package.rglob("*.py")):
        source = path.read_bytes()
        path.write_bytes(source + b"\n# edited\n")
        if generator_code_key(package) == before:
            unchanged.append(path.name)
        path.write_bytes(source)
    assert unchanged == []
    (package / "new_module.py").write_text("WORDS = ['a']\n")
    assert generator_code_key(package) != before


def test_an_upgrade_of_faker_or_factory_boy_changes_the_code_key(monkeypatch, tmp_path):
    """The scenario draws its people's names from Faker's lists, your builders' factories
    from Faker and factory_boy: a template built with another release may hold other rows."""
    from pytest_celestra.db import cache_keys

    package = tmp_path / "pytest_celestra"
    shutil.copytree(PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__"))
    before = generator_code_key(package)
    real = cache_keys.importlib.metadata.version
    for library in ("faker", "factory-boy"):
        upgraded = {library: "999.0"}
        with monkeypatch.context() as patched:
            patched.setattr(
                cache_keys.importlib.metadata,
                "version",
                lambda name, upgraded=upgraded: upgraded.get(name) or real(name),
            )
            assert generator_code_key(package) != before, library
    assert generator_code_key(package) == before


def test_the_installed_package_is_hashed_once_per_process(monkeypatch, tmp_path):
    from pytest_celestra.db import cache_keys

    hashed: list[object] = []
    real = cache_keys.package_sources

    def counting(package=PACKAGE_DIR):
        hashed.append(package)
        return real(package)

    monkeypatch.setattr(cache_keys, "package_sources", counting)
    cache_keys._installed_code_key.cache_clear()
    try:
        first = generator_code_key()
        for day in ("2026-01-01", "2026-01-02"):
            scenario_key("schema", SMALL, 1, day)
        assert generator_code_key() == first
        assert hashed == [PACKAGE_DIR]
        shutil.copytree(
            PACKAGE_DIR, tmp_path / "copy", ignore=shutil.ignore_patterns("__pycache__")
        )
        assert generator_code_key(tmp_path / "copy") == first  # another directory: hashed anew
        assert hashed == [PACKAGE_DIR, tmp_path / "copy"]
    finally:
        cache_keys._installed_code_key.cache_clear()


def test_the_scenario_key_uses_the_code_key(monkeypatch):
    before = key()
    monkeypatch.setattr("pytest_celestra.db.cache_keys.generator_code_key", lambda: "other code")
    assert key() != before


@pytest.fixture
def restore_hasher():
    hasher = passwords.current_hasher()
    yield
    passwords.configure(hasher.scheme, hasher.rounds)


@pytest.mark.usefixtures("restore_hasher")
def test_the_password_hashing_is_part_of_the_key():
    passwords.configure()
    default = key()
    assert password_hashing_key()["scheme"] == passwords.DEFAULT_SCHEME
    passwords.configure(rounds=5)
    more_rounds = key()
    passwords.configure(scheme="pbkdf2_sha256")
    other_scheme = key()
    assert len({default, more_rounds, other_scheme}) == 3
    passwords.configure()
    assert key() == default


def test_volume_seed_day_and_schema_are_part_of_the_key():
    keys = {
        key(),
        scenario_key("other schema", SMALL, 1, "2026-01-01"),
        scenario_key("schema", Volume.parse("small,users=21"), 1, "2026-01-01"),
        scenario_key("schema", SMALL, 2, "2026-01-01"),
        scenario_key("schema", SMALL, 1, "2026-01-02"),
    }
    assert len(keys) == 5
