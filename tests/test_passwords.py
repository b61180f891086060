"""Password hashes: real and verifiable, deterministic from a seed, cheap, configurable."""

from __future__ import annotations

import random
import re
import time
import warnings

import pytest
from passlib.registry import get_crypt_handler

from pytest_celestra import passwords
from pytest_celestra.errors import ConfigError
from pytest_celestra.passwords import (
    DEFAULT_PASSWORD,
    PasswordHasher,
    configure,
    current_hasher,
    hash_password,
    old_password,
    verify,
)

BCRYPT_HASH = r"^\$2b\$04\$[./A-Za-z0-9]{53}$"


@pytest.fixture(autouse=True)
def default_hasher():
    """Every test starts and ends with the default hasher."""
    configure()
    yield
    configure()


def test_default_is_bcrypt_at_its_lowest_cost():
    hasher = current_hasher()
    assert hasher.scheme == "bcrypt"
    assert hasher.cost == 4
    assert hash_password() == hash_password()
    assert re.match(BCRYPT_HASH, hash_password())


def test_default_password_verifies_and_others_do_not():
    digest = hash_password()
    assert verify(DEFAULT_PASSWORD, digest)
    assert not verify(DEFAULT_PASSWORD + "x", digest)
    assert get_crypt_handler("bcrypt").verify(DEFAULT_PASSWORD, digest)


def test_bcrypt_salts_are_valid_and_raise_no_warning():
    hasher = current_hasher()
    rng = random.Random(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(50):
            salt = hasher.salt(rng)
            assert len(salt) == 22
            assert salt[-1] in ".Oeu"
            assert hasher.hash("x", salt)[7:29] == salt


def test_same_seed_same_hashes_other_seed_other_hashes():
    hasher = current_hasher()
    first = hasher.pool(DEFAULT_PASSWORD, 4, random.Random(1))
    assert first == hasher.pool(DEFAULT_PASSWORD, 4, random.Random(1))
    assert set(first).isdisjoint(hasher.pool(DEFAULT_PASSWORD, 4, random.Random(2)))
    assert len(set(first)) == 4
    assert all(verify(DEFAULT_PASSWORD, h) for h in first)


def test_hashes_are_computed_once():
    salt = current_hasher().salt(random.Random(99))
    current_hasher().hash("cache me", salt)
    started = time.perf_counter()
    for _ in range(1000):
        current_hasher().hash("cache me", salt)
    assert time.perf_counter() - started < 0.05


def test_factory_hashes_use_a_small_pool_of_salts():
    rng = random.Random(5)
    hashes = {hash_password(DEFAULT_PASSWORD, rng) for _ in range(500)}
    assert len(hashes) <= passwords.SALT_POOL_SIZE


def test_old_passwords_differ_from_each_other_and_the_current_one():
    olds = [old_password(i) for i in range(100)]
    assert len(set(olds)) == 100
    assert DEFAULT_PASSWORD not in olds


def test_other_scheme():
    hasher = configure(scheme="pbkdf2_sha256", rounds=1000)
    digest = hash_password("s3cret")
    assert digest.startswith("$pbkdf2-sha256$1000$")
    assert verify("s3cret", digest)
    assert hasher is current_hasher()


def test_rounds_change_the_cost():
    configure(rounds=5)
    assert hash_password().startswith("$2b$05$")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scheme": "md5"}, "unknown password scheme 'md5'; use one of bcrypt"),
        ({"rounds": 2}, "bcrypt rounds must be between 4 and 31, got 2"),
        ({"scheme": "bcrypt", "rounds": 40}, "between 4 and 31"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        configure(**kwargs)
    assert current_hasher() == PasswordHasher()


def test_a_scheme_without_its_backend_is_refused_when_configured():
    try:
        import argon2  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="install its backend"):
            configure(scheme="argon2")
    else:
        pytest.skip("argon2 backend installed")
