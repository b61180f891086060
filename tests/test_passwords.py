"""Password hashes: real and verifiable, deterministic from a seed, cheap, configurable."""

from __future__ import annotations

import random
import re
import threading
import time
import warnings

import pytest
from passlib.registry import get_crypt_handler

from pytest_celestra.errors import ConfigError
from pytest_celestra.rows import passwords
from pytest_celestra.rows.passwords import (
    DEFAULT_PASSWORD,
    HashPool,
    PasswordHasher,
    configure,
    current_hasher,
    hash_password,
    hashing_ahead,
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

    def pool(seed: int) -> list[str]:
        rng = random.Random(seed)
        return [hasher.hash(DEFAULT_PASSWORD, hasher.salt(rng)) for _ in range(4)]

    first = pool(1)
    assert first == pool(1)
    assert set(first).isdisjoint(pool(2))
    assert len(set(first)) == 4
    assert all(verify(DEFAULT_PASSWORD, h) for h in first)


def test_hashes_are_computed_once(monkeypatch):
    """Counted, not timed: bcrypt runs once for a password and salt, then never again."""
    computed: list[str] = []
    direct = passwords._direct_bcrypt

    def counting(password: str, salt: str | bytes, rounds: int) -> str | None:
        computed.append(password)
        return direct(password, salt, rounds)

    monkeypatch.setattr(passwords, "_direct_bcrypt", counting)
    hasher = PasswordHasher()  # bcrypt, whatever another test configured
    salt = hasher.salt(random.Random(99))
    password = f"cache me {random.random()}"  # computed by no test before this one
    first = hasher.hash(password, salt)
    assert computed == [password]
    for _ in range(1000):
        assert hasher.hash(password, salt) == first
    assert computed == [password]
    assert verify(password, first)


@pytest.mark.parametrize(
    "password", [DEFAULT_PASSWORD, "s3cret", "ünïcødé-pässwörd", "x" * 72, ""], ids=repr
)
def test_bcrypt_computed_directly_is_passlibs_bcrypt(password):
    """bcrypt is called without passlib's backend self-tests: the very same strings."""
    hasher, rng = current_hasher(), random.Random(8)
    for rounds in (4, 5):
        for _ in range(3):
            salt = hasher.salt(rng)
            expected = get_crypt_handler("bcrypt").using(salt=salt, rounds=rounds).hash(password)
            assert PasswordHasher(rounds=rounds).hash(password, salt) == expected


@pytest.mark.parametrize("password", ["x" * 73, "nul\0inside"], ids=["73 bytes", "NUL"])
def test_passwords_bcrypt_cannot_take_as_they_are_get_passlibs_rules(password):
    hasher = current_hasher()
    with pytest.raises(ValueError):
        hasher.hash(password, hasher.salt(random.Random(1)))


def test_a_hash_pool_computes_a_hash_when_first_read(monkeypatch):
    calls = counting_hashes(monkeypatch)
    pool = HashPool(current_hasher(), old_password, "pool-test")
    assert pool.computed == 0
    digest = pool[3]
    assert (pool.computed, pool[3], len(calls)) == (1, digest, 1)
    assert verify(old_password(3), digest)
    # The salt depends on the pool's seed and the index only.
    assert HashPool(current_hasher(), old_password, "pool-test")[3] == digest
    assert HashPool(current_hasher(), old_password, "pool-other")[3] != digest


def test_threads_reading_a_pool_compute_each_hash_once(monkeypatch):
    calls = counting_hashes(monkeypatch, delay=0.002)
    pool = HashPool(current_hasher(), old_password, "pool-threads")
    results: list[list[str]] = []

    def read(seed: int) -> None:
        indices = list(range(10))
        random.Random(seed).shuffle(indices)  # each thread in its own order
        got = {i: pool[i] for i in indices}
        results.append([got[i] for i in range(10)])

    threads = [threading.Thread(target=read, args=(n,)) for n in range(6)]
    with hashing_ahead((pool, range(10))):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(calls) == 10
    assert len({tuple(r) for r in results}) == 1


def test_hashing_ahead_computes_in_a_thread_that_ends_with_the_block():
    pool = HashPool(current_hasher(), old_password, "pool-ahead")
    with hashing_ahead((pool, range(4))) as thread:
        while pool.computed < 4:
            time.sleep(0.001)
    assert not thread.is_alive()
    assert all(verify(old_password(i), pool[i]) for i in range(4))
    # Leaving the block early skips what was not begun, and still ends the thread.
    other = HashPool(current_hasher(), old_password, "pool-left")
    with hashing_ahead((other, range(1000))) as thread:
        pass
    assert not thread.is_alive()
    assert other.computed < 1000


def test_the_hashing_thread_is_no_daemon_even_when_started_from_one():
    """The scenario's generator starts it in the loader's daemon worker: a daemon would be
    ended at exit inside bcrypt, which aborts the process; the interpreter waits for it."""
    pool = HashPool(current_hasher(), old_password, "pool-daemon")
    daemon: list[bool] = []

    def generate() -> None:
        with hashing_ahead((pool, range(2))) as thread:
            daemon.append(thread.daemon)

    worker = threading.Thread(target=generate, daemon=True)
    worker.start()
    worker.join()
    assert daemon == [False]


def test_an_error_while_hashing_ahead_reaches_the_reader():
    def password(index: int) -> str:
        if index == 2:
            raise RuntimeError("no password 2")
        return old_password(index)

    pool = HashPool(current_hasher(), password, "pool-error")
    with hashing_ahead((pool, range(4))) as thread:
        thread.join()
        assert pool.computed == 2
        with pytest.raises(RuntimeError, match="no password 2"):
            pool[2]
    assert verify(old_password(3), pool[3])


def counting_hashes(monkeypatch, delay: float = 0.0) -> list[tuple]:
    """Record every hash a hasher computes (lru cache bypassed)."""
    calls: list[tuple] = []
    real = passwords._cached_hash.__wrapped__

    def counted(*args):
        calls.append(args)
        time.sleep(delay)
        return real(*args)

    monkeypatch.setattr(passwords, "_cached_hash", counted)
    return calls


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
