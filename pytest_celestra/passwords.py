"""Password hashes for seeded users, through the passlib API: real, verifiable and cheap.

Every seeded user can sign in with :data:`DEFAULT_PASSWORD`. Hashes are real hashes of
the configured scheme (bcrypt by default), so your application's own verification
accepts them, but at the scheme's *lowest* cost (bcrypt: 4 rounds, about 1 ms per hash
instead of about 250 ms at 12 rounds): test data protects no secret, and a test suite
that hashes at production cost spends its time in bcrypt.

Hashes are deterministic: the salt is drawn from a seeded ``random.Random``, so the same
seed gives the same hashes, and every ``(scheme, rounds, password, salt)`` is hashed
once per process (:func:`functools.lru_cache`). A scenario hashes the default password
with a small pool of salts and reuses them, so seeding thousands of users costs a few
dozen hashes.

One mechanism configures the hashing: :func:`configure`. Example::

    from pytest_celestra import passwords

    passwords.configure(scheme="pbkdf2_sha256")      # or rounds=6
    user = UserFactory(password="s3cret!")
    assert passwords.verify("s3cret!", user.password_hash)
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import Any

from passlib.context import CryptContext
from passlib.registry import get_crypt_handler

from pytest_celestra.errors import ConfigError

#: The password of every seeded user (and of ``UserFactory()`` unless you pass one).
DEFAULT_PASSWORD = "Celestra-Test-1!"
DEFAULT_SCHEME = "bcrypt"
#: Schemes you may configure; :func:`verify` recognises a hash of any of them.
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
#: How many salts :func:`hash_password` spreads the factories' hashes over.
SALT_POOL_SIZE = 16

_VERIFIER = CryptContext(schemes=list(SUPPORTED_SCHEMES))


@dataclass(frozen=True)
class PasswordHasher:
    """A password scheme and its cost. ``rounds=None`` means the scheme's minimum cost."""

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
        """The passlib handler class of :attr:`scheme`."""
        return get_crypt_handler(self.scheme)

    @property
    def cost(self) -> int | None:
        """The rounds actually used: :attr:`rounds`, or the scheme's minimum."""
        if "rounds" not in self.handler.setting_kwds:
            return None
        return self.rounds if self.rounds is not None else int(self.handler.min_rounds)

    def salt(self, rng: random.Random) -> str | bytes:
        """A valid salt for :attr:`scheme`, drawn from ``rng`` (so it is reproducible)."""
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
        """The hash of ``password`` with ``salt``; computed once per process."""
        return _cached_hash(self.scheme, self.cost, password, salt)

    def pool(self, password: str, size: int, rng: random.Random) -> tuple[str, ...]:
        """``size`` hashes of ``password``, each with its own salt from ``rng``."""
        return tuple(self.hash(password, self.salt(rng)) for _ in range(size))

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
    settings: dict[str, Any] = {"salt": salt}
    if rounds is not None:
        settings["rounds"] = rounds
    digest: str = get_crypt_handler(scheme).using(**settings).hash(password)
    return digest


_hasher = PasswordHasher()


def configure(scheme: str = DEFAULT_SCHEME, rounds: int | None = None) -> PasswordHasher:
    """Make every later hash use ``scheme`` at ``rounds`` (None: the scheme's minimum).

    Returns the hasher now in effect. Raises :class:`~pytest_celestra.errors.ConfigError`
    for an unknown scheme, out-of-range rounds, or a scheme whose backend is missing.
    """
    global _hasher
    hasher = PasswordHasher(scheme, rounds)
    hasher.check()
    _hasher = hasher
    return hasher


def current_hasher() -> PasswordHasher:
    """The hasher :func:`configure` set (bcrypt at 4 rounds unless configured)."""
    return _hasher


def hash_password(password: str = DEFAULT_PASSWORD, rng: random.Random | None = None) -> str:
    """A hash of ``password`` with one of :data:`SALT_POOL_SIZE` fixed salts.

    ``rng`` picks which salt (the first without one), so many users cost at most
    :data:`SALT_POOL_SIZE` hashes per password.
    """
    hasher = _hasher
    index = 0 if rng is None else int(rng.random() * SALT_POOL_SIZE)
    return hasher.hash(password, hasher.salt(random.Random(f"celestra-salt:{index}")))


def old_password(index: int) -> str:
    """The ``index``-th password a user had before the current one (password_history)."""
    return f"Celestra-Old-{index:04d}!"


def verify(password: str, password_hash: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (any scheme of SUPPORTED_SCHEMES)."""
    return bool(_VERIFIER.verify(password, password_hash))
