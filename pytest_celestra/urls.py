"""How a PostgreSQL URL is written: in full for connecting, masked for showing.

Every URL shown to a person goes through [`mask_url`][pytest_celestra.urls.mask_url] (its
password becomes `***`); every driver message that may quote one through
[`scrub`][pytest_celestra.urls.scrub] or [`error_text`][pytest_celestra.urls.error_text].
Only [`libpq_url`][pytest_celestra.urls.libpq_url] writes a password, for connecting.

[`parse_url`][pytest_celestra.urls.parse_url] reads a URL as SQLAlchemy's `make_url` does,
without importing SQLAlchemy; [`sqlalchemy_url`][pytest_celestra.urls.sqlalchemy_url] makes a
SQLAlchemy `URL`. The other functions take either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qsl, quote, quote_plus, unquote

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy.engine import URL

MASK = "***"
"""What a password becomes in everything shown to a person (SQLAlchemy's choice too)."""
SECRET_PARAMETERS = frozenset({"password", "sslpassword"})
"""Query parameters of a URL that carry a secret (libpq takes `?password=...` too)."""
_USERINFO = re.compile(r"(?P<head>[A-Za-z][\w+.-]*://[^:/?#@\s\[\]]*):(?P<secret>[^\n]*)@")
"""`scheme://user:password@` in a URL that does not parse: up to the last `@`, as a
password may hold an unencoded one."""
_USERINFO_IN_TEXT = re.compile(r"(?P<head>[A-Za-z][\w+.-]*://[^:/?#@\s\[\]]*):(?P<secret>[^@\n]*)@")
"""The same in free text, which may hold more than one `@`: up to the first."""
_PASSWORD_PAIR = re.compile(
    r"(?P<head>\b(?:ssl)?password\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'|[^\s&']*)",
    re.IGNORECASE,
)
"""`password=...` in a query string or a libpq key/value string."""
_URL = re.compile(
    r"""
        (?P<name>[\w\+]+)://
        (?:
            (?P<username>[^:/]*)
            (?::(?P<password>[^@]*))?
        @)?
        (?:
            (?:
                \[(?P<ipv6host>[^/\?]+)\] |
                (?P<ipv4host>[^/:\?]+)
            )?
            (?::(?P<port>[^/\?]*))?
        )?
        (?:/(?P<database>[^\?]*))?
        (?:\?(?P<query>.*))?
    """,
    re.X,
)
"""SQLAlchemy's own pattern of a URL (`sqlalchemy.engine.url._parse_url`)."""


class UrlParts(Protocol):
    """A SQLAlchemy `URL` or a [`ParsedUrl`][pytest_celestra.urls.ParsedUrl]."""

    @property
    def drivername(self) -> str: ...
    @property
    def username(self) -> str | None: ...
    @property
    def password(self) -> object: ...
    @property
    def host(self) -> str | None: ...
    @property
    def port(self) -> int | None: ...
    @property
    def database(self) -> str | None: ...
    @property
    def query(self) -> Mapping[str, str | tuple[str, ...]]: ...


class UrlSyntaxError(ValueError):
    """Text that is not a URL at all (SQLAlchemy's `ArgumentError`)."""


@dataclass(frozen=True)
class ParsedUrl:
    """The parts of a URL, as SQLAlchemy's `make_url` would give them."""

    drivername: str
    username: str | None = None
    password: str | None = None
    host: str | None = None
    port: int | None = None
    database: str | None = None
    query: Mapping[str, str | tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))

    def get_backend_name(self) -> str:
        """`postgresql` of `postgresql+psycopg`."""
        return self.drivername.partition("+")[0]


def parse_url(text: str) -> ParsedUrl:
    """`text` read as SQLAlchemy's `make_url` reads it. Raises
    [`UrlSyntaxError`][pytest_celestra.urls.UrlSyntaxError] for text that is no URL, and
    `ValueError` for a port that is not a number."""
    found = _URL.match(text)
    if found is None:
        raise UrlSyntaxError(f"not a URL: {text!r}")
    parts = found.groupdict()
    query: dict[str, str | tuple[str, ...]] = {}
    for key, value in parse_qsl(parts["query"] or ""):
        before = query.get(key)
        query[key] = value if before is None else (*_values(before), value)
    username, password, database = (
        None if parts[name] is None else unquote(parts[name])
        for name in ("username", "password", "database")
    )
    return ParsedUrl(
        parts["name"],
        username,
        password,
        parts["ipv4host"] or parts["ipv6host"],
        None if parts["port"] is None else int(parts["port"]),
        database,
        MappingProxyType(query),
    )


def sqlalchemy_url(dsn: str | URL) -> URL:
    """A SQLAlchemy `URL` with the psycopg (3) driver, whatever driver it named."""
    from sqlalchemy.engine import make_url

    return make_url(dsn).set(drivername="postgresql+psycopg")


def render_url(url: UrlParts, *, driver: str = "postgresql", hide_password: bool = True) -> str:
    """`url` as text that libpq, psycopg and SQLAlchemy all accept: every part
    percent-encoded (SQLAlchemy leaves a space in a password, which libpq refuses). With
    `hide_password` the password and `?password=` are [`MASK`][pytest_celestra.urls.MASK].
    """
    user = quote(url.username, safe="") if url.username else ""
    if url.password:  # None or "" (pgserver's URLs): no password at all
        password = MASK if hide_password else quote(str(url.password), safe="")
        user += f":{password}"
    host = url.host or ""
    host = f"[{host}]" if ":" in host else host
    port = f":{url.port}" if url.port else ""
    query = "&".join(
        f"{quote(key, safe='')}="
        + (MASK if hide_password and key in SECRET_PARAMETERS else quote(value, safe="/"))
        for key, values in url.query.items()
        for value in _values(values)
    )
    tail = f"/{quote(url.database or '', safe='')}" + (f"?{query}" if query else "")
    if hide_password:  # the password repeated in a database name or a parameter
        tail = scrub(tail, secrets_of(url))
    return f"{driver}://{user}{'@' if user else ''}{host}{port}{tail}"


def libpq_url(url: UrlParts) -> str:
    """A `postgresql://` URL with its password, for connecting, never for showing."""
    return render_url(url, hide_password=False)


def mask_url(url: str | UrlParts) -> str:
    """The one way a URL is shown to a person: its password replaced by
    [`MASK`][pytest_celestra.urls.MASK]. Text that does not parse is masked by pattern:
    whatever stands between `user:` and `@`, and any `password=` value."""
    if not isinstance(url, str):
        return render_url(url, driver=url.drivername)
    parsed = _parsed(url)
    if parsed is None:
        return _mask(url, _USERINFO)
    return render_url(parsed, driver=parsed.drivername)


def _parsed(text: str) -> ParsedUrl | None:
    """`text` as a URL, or None (an `@` in the host is part of an unencoded password)."""
    try:
        url = parse_url(text)
    except ValueError:
        return None
    return None if "@" in (url.host or "") else url


def _mask(text: str, userinfo: re.Pattern[str]) -> str:
    masked = userinfo.sub(lambda found: f"{found['head']}:{MASK}@", text)
    return _PASSWORD_PAIR.sub(lambda found: f"{found['head']}{MASK}", masked)


def mask_text(text: str) -> str:
    """Free text (an argument list, a message) with the password of every URL in it,
    and every `password=` value, replaced by [`MASK`][pytest_celestra.urls.MASK]."""
    return _mask(text, _USERINFO_IN_TEXT)


def secrets_of(url: str | UrlParts | None) -> frozenset[str]:
    """The secrets in a URL (password, `?password=`), as given and as percent-encoded, for
    [`scrub`][pytest_celestra.urls.scrub]. Text that does not parse gives what
    [`mask_url`][pytest_celestra.urls.mask_url] would hide."""
    if url is None:
        return frozenset()
    found: set[str] = set()
    parsed = _parsed(url) if isinstance(url, str) else url
    if isinstance(url, str) and parsed is None:
        found.update(match["secret"] for match in _USERINFO.finditer(url))
        found.update(match["secret"].strip("'") for match in _PASSWORD_PAIR.finditer(url))
    if parsed is not None:
        if parsed.password is not None:
            found.add(str(parsed.password))
        for key in SECRET_PARAMETERS & set(parsed.query):
            found.update(_values(parsed.query[key]))
    spelled = {
        form
        for secret in found
        for form in (secret, quote(secret, safe=""), quote_plus(secret), unquote(secret))
    }
    return frozenset(secret for secret in spelled if secret)


def scrub(text: str, secrets: frozenset[str]) -> str:
    """`text` with every one of `secrets` replaced by [`MASK`][pytest_celestra.urls.MASK],
    but not inside a longer word (a password `postgres` leaves `postgresql` whole)."""
    for secret in sorted(secrets, key=len, reverse=True):  # an encoded form is longer
        before = r"(?<!\w)" if secret[0].isalnum() else ""
        after = r"(?!\w)" if secret[-1].isalnum() else ""
        text = re.sub(before + re.escape(secret) + after, MASK, text)
    return text


def display_url(url: UrlParts) -> str:
    """`postgresql://user@host:port` (no password, no database) for messages, written
    as SQLAlchemy's `render_as_string` writes it."""
    address = "postgresql://"
    if url.username is not None:
        address += quote(url.username, safe=" +") + "@"
    if url.host is not None:
        address += f"[{url.host}]" if ":" in url.host else url.host
    if url.port is not None:
        address += f":{url.port}"
    parameters = "&".join(
        f"{quote_plus(key)}={quote_plus(value)}"
        for key in sorted(url.query)
        if key not in SECRET_PARAMETERS
        for value in _values(url.query[key])
    )
    if not parameters:
        return address
    return f"{address}?{scrub(parameters, secrets_of(url))}"


def _values(value: str | tuple[str, ...]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else value


def host_port(url: UrlParts) -> str:
    """`host:port` of a URL, the way libpq would resolve them; a socket directory (the
    embedded server's) as `the socket in DIR`, not `DIR:5432`."""
    host = url.host or url.query.get("host") or "localhost"
    port = url.port or 5432
    if str(host).startswith("/"):
        return f"the socket in {host}" + ("" if port == 5432 else f" (port {port})")
    return f"{host}:{port}"


def error_text(error: BaseException, secrets: frozenset[str] = frozenset()) -> str:
    """A driver's (multi-line) error message on one line, for messages of our own, with
    `secrets` (see [`secrets_of`][pytest_celestra.urls.secrets_of]) scrubbed out."""
    one_line = " ".join(line.strip() for line in str(error).strip().splitlines())
    return scrub(one_line, secrets).rstrip(".?!")
