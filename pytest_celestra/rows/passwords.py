"""Password hashes for seeded users, through the passlib API: real, verifiable and cheap.

Every seeded user can sign in with
[`DEFAULT_PASSWORD`][pytest_celestra.rows.passwords.DEFAULT_PASSWORD]. Hashes are real hashes of
the configured scheme (bcrypt by default), so your application's verification accepts them,
at the scheme's *lowest* cost (bcrypt: 4 rounds, about 1 ms instead of 250 ms at 12): test
data protects no secret.

Hashes are deterministic: salts come from a seeded `random.Random`, and each
`(scheme, rounds, password, salt)` is hashed once per process. A scenario reuses a small
pool of salts (a [`HashPool`][pytest_celestra.rows.passwords.HashPool] computes a hash when
a row first uses it), so thousands of users cost a few dozen hashes.

bcrypt is computed by the `bcrypt` package directly (passlib's backend, the same string,
without the self-tests passlib runs when it loads it: 16 more hashes); passwords bcrypt
cannot take as they are (over 72 bytes, or with a NUL) and other schemes go through passlib.
Hashing is configured in one place, [`configure`][pytest_celestra.rows.passwords.configure]
(an example: `docs/factories.md`, Passwords).
"""

from __future__ import annotations

import contextlib
import functools
import random
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import bcrypt as _bcrypt
from passlib.context import CryptContext
from passlib.registry import get_crypt_handler

from pytest_celestra.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

DEFAULT_PASSWORD = "Celestra-Test-1!"
"""The password of every seeded user (and of `UserFactory()` unless you pass one)."""
DEFAULT_SCHEME = "bcrypt"
SUPPORTED_SCHEMES = (
    "bcrypt",
    "bcrypt_sha256",
    "argon2",
    "scrypt",
    "pbkdf2_sha256",
    "pbkdf2_sha512",
    "sha256_crypt",
    "sha512_crypt",
)
"""Schemes you may configure; [`verify`][pytest_celestra.rows.passwords.verify] recognises a hash
of any of them."""
SALT_POOL_SIZE = 16
"""How many salts [`hash_password`][pytest_celestra.rows.passwords.hash_password] spreads the
factories' hashes over."""

_VERIFIER = CryptContext(schemes=list(SUPPORTED_SCHEMES))


@dataclass(frozen=True)
class PasswordHasher:
    """A password scheme and its cost. `rounds=None` means the scheme's minimum cost."""

    scheme: str = DEFAULT_SCHEME
    rounds: int | None = None

    def __post_init__(self) -> None:
        if self.scheme not in SUPPORTED_SCHEMES:
            choices = ", ".join(SUPPORTED_SCHEMES)
            raise ConfigError(f"unknown password scheme {self.scheme!r}; use one of {choices}")
        handler = self.handler
        if self.rounds is not None:
            if "rounds" not in handler.setting_kwds:
                raise ConfigError(f"password scheme {self.scheme!r} takes no rounds")
            low, high = handler.min_rounds, handler.max_rounds
            if not low <= self.rounds <= high:
                raise ConfigError(
                    f"{self.scheme} rounds must be between {low} and {high}, got {self.rounds}"
                )

    @property
    def handler(self) -> Any:
        return get_crypt_handler(self.scheme)

    @property
    def cost(self) -> int | None:
        """The rounds actually used: `rounds`, or the scheme's minimum."""
        if "rounds" not in self.handler.setting_kwds:
            return None
        return self.rounds if self.rounds is not None else int(self.handler.min_rounds)

    def salt(self, rng: random.Random) -> str | bytes:
        """A valid salt for `scheme`, drawn from `rng` (so it is reproducible)."""
        handler = self.handler
        size = handler.default_salt_size
        if getattr(handler, "_salt_is_bytes", False):
            return rng.randbytes(size)
        chars = handler.salt_chars
        salt = "".join(chars[int(rng.random() * len(chars))] for _ in range(size))
        # bcrypt's last salt character carries 2 padding bits: only ".Oeu" keep them zero.
        final = getattr(handler, "final_salt_chars", None)
        if final:
            salt = salt[:-1] + final[int(rng.random() * len(final))]
        return salt

    def hash(self, password: str, salt: str | bytes) -> str:
        """The hash of `password` with `salt`; computed once per process."""
        return _cached_hash(self.scheme, self.cost, password, salt)

    def check(self) -> None:
        """Hash once, so a scheme whose backend is missing fails now and says so."""
        try:
            self.hash("probe", self.salt(random.Random(0)))
        except Exception as error:
            raise ConfigError(
                f"password scheme {self.scheme!r} cannot hash here ({error}); "
                f"install its backend or configure another scheme"
            ) from error


@functools.lru_cache(maxsize=4096)
def _cached_hash(scheme: str, rounds: int | None, password: str, salt: str | bytes) -> str:
    if scheme == "bcrypt" and rounds is not None:
        direct = _direct_bcrypt(password, salt, rounds)
        if direct is not None:
            return direct
    settings = {"salt": salt} if rounds is None else {"salt": salt, "rounds": rounds}
    digest: str = get_crypt_handler(scheme).using(**settings).hash(password)
    return digest


def _direct_bcrypt(password: str, salt: str | bytes, rounds: int) -> str | None:
    """passlib's `bcrypt.using(salt=salt, rounds=rounds).hash(password)`, by the `bcrypt`
    package; None where passlib's own rules apply (a long password, a NUL, a salt it corrects)."""
    secret = password.encode("utf-8")
    if (
        len(secret) > 72
        or b"\0" in secret
        or not isinstance(salt, str)
        or len(salt) != 22
        or salt[-1] not in ".Oeu"  # the 22nd character's last 2 bits are padding, kept zero
    ):
        return None
    config = f"$2b${rounds:02d}${salt}".encode("ascii")
    digest = _bcrypt.hashpw(secret, config)
    if not digest.startswith(config) or len(digest) != len(config) + 31:
        return None
    return digest.decode("ascii")


class HashPool:
    """Hashes of `password(i)` for i = 0, 1, ..., the i-th salted by `salt_seed` and i alone;
    each computed once, when first read or by
    [`hashing_ahead`][pytest_celestra.rows.passwords.hashing_ahead]. Thread-safe: a hash
    under way in another thread is waited for, not redone."""

    def __init__(
        self, hasher: PasswordHasher, password: Callable[[int], str], salt_seed: str
    ) -> None:
        self._hasher = hasher
        self._password = password
        self._salt_seed = salt_seed
        self._done: dict[int, str] = {}
        self._busy: dict[int, threading.Event] = {}
        self._lock = threading.Lock()

    def __getitem__(self, index: int) -> str:
        digest = self._done.get(index) or self._compute(index, wait=True)
        assert digest is not None
        return digest

    @property
    def computed(self) -> int:
        return len(self._done)

    def _compute(self, index: int, *, wait: bool) -> str | None:
        """The `index`-th hash, computed here unless done or under way in another thread
        (then waited for, or with `wait=False` None)."""
        while True:
            with self._lock:
                digest = self._done.get(index)
                if digest is not None:
                    return digest
                busy = self._busy.get(index)
                if busy is None:
                    claimed = self._busy[index] = threading.Event()
                    break
            if not wait:
                return None
            busy.wait()  # then done, or failed there and computed here
        try:
            salt = self._hasher.salt(random.Random(f"{self._salt_seed}:{index}"))
            digest = self._hasher.hash(self._password(index), salt)
            with self._lock:
                self._done[index] = digest
            return digest
        finally:
            with self._lock:
                del self._busy[index]
            claimed.set()


@contextlib.contextmanager
def hashing_ahead(*jobs: tuple[HashPool, Iterable[int]]) -> Iterator[threading.Thread]:
    """Compute the hashes of each `(pool, indices)` in a thread while the block runs
    (bcrypt releases the GIL).

    Hashes a reader is computing are skipped; an error stops the thread (the reader meets
    it itself). Leaving the block waits for the hash under way: the thread never outlives
    the block, so never an interpreter at exit, which a thread in bcrypt's Rust code crashes.
    """
    stop = threading.Event()

    def work() -> None:
        with contextlib.suppress(Exception):
            for pool, indices in jobs:
                for index in indices:
                    if stop.is_set():
                        return
                    pool._compute(index, wait=False)

    # Never a daemon, even started from the loader's daemon worker: a block left open at
    # exit (a generator never closed) then has the interpreter wait for the thread rather
    # than end it in bcrypt's Rust code ("FATAL: exception not rethrown", SIGABRT).
    thread = threading.Thread(target=work, name="celestra-hash", daemon=False)
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join()


_hasher = PasswordHasher()


def configure(scheme: str = DEFAULT_SCHEME, rounds: int | None = None) -> PasswordHasher:
    """Make every later hash use `scheme` at `rounds` (None: the scheme's minimum).

    Returns the hasher now in effect. Raises [`ConfigError`][pytest_celestra.errors.ConfigError]
    for an unknown scheme, out-of-range rounds, or a scheme whose backend is missing.
    """
    global _hasher
    hasher = PasswordHasher(scheme, rounds)
    hasher.check()
    _hasher = hasher
    return hasher


def current_hasher() -> PasswordHasher:
    """The hasher [`configure`][pytest_celestra.rows.passwords.configure] set (bcrypt at 4 rounds
    unless configured)."""
    return _hasher


def hash_password(password: str = DEFAULT_PASSWORD, rng: random.Random | None = None) -> str:
    """A hash of `password` with one of
    [`SALT_POOL_SIZE`][pytest_celestra.rows.passwords.SALT_POOL_SIZE] fixed salts, picked by
    `rng` (the first without one)."""
    index = 0 if rng is None else int(rng.random() * SALT_POOL_SIZE)
    return _pooled_hash(_hasher, password, index)


@functools.lru_cache(maxsize=64 * SALT_POOL_SIZE)
def _pooled_hash(hasher: PasswordHasher, password: str, index: int) -> str:
    return hasher.hash(password, hasher.salt(random.Random(f"celestra-salt:{index}")))


def old_password(index: int) -> str:
    """The `index`-th password a user had before the current one (password_history)."""
    return f"Celestra-Old-{index:04d}!"


def verify(password: str, password_hash: str) -> bool:
    """Whether `password` matches `password_hash` (any scheme of SUPPORTED_SCHEMES)."""
    return bool(_VERIFIER.verify(password, password_hash))
