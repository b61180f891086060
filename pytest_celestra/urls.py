"""How a PostgreSQL URL is written: in full for connecting, masked for showing.

Every URL shown to a person goes through :func:`mask_url` (its password becomes
``***``, as SQLAlchemy's ``render_as_string(hide_password=True)`` does); every driver
message that may quote one goes through :func:`scrub` (or :func:`error_text`) before it
is wrapped in a message of ours. Only :func:`libpq_url` writes a password, and only for
a connection.
"""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus, unquote

from sqlalchemy.engine import URL, make_url

#: What a password becomes in everything shown to a person (SQLAlchemy's choice too).
MASK = "***"
#: Query parameters of a URL that carry a secret (libpq takes ``?password=...`` too).
SECRET_PARAMETERS = frozenset({"password", "sslpassword"})
#: ``scheme://user:password@`` in one URL that SQLAlchemy cannot parse (or parses with an
#: ``@`` in the host): up to the last ``@``, as a password may hold an unencoded one.
_USERINFO = re.compile(r"(?P<head>[A-Za-z][\w+.-]*://[^:/?#@\s\[\]]*):(?P<secret>[^\n]*)@")
#: The same in free text, which may hold more than one ``@``: up to the first.
_USERINFO_IN_TEXT = re.compile(r"(?P<head>[A-Za-z][\w+.-]*://[^:/?#@\s\[\]]*):(?P<secret>[^@\n]*)@")
#: ``password=...`` in a query string or a libpq key/value string.
_PASSWORD_PAIR = re.compile(
    r"(?P<head>\b(?:ssl)?password\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'|[^\s&']*)",
    re.IGNORECASE,
)


def sqlalchemy_url(dsn: str | URL) -> URL:
    """The URL with the psycopg (3) driver, whatever driver it named."""
    return make_url(dsn).set(drivername="postgresql+psycopg")


def render_url(url: URL, *, driver: str = "postgresql", hide_password: bool = True) -> str:
    """``url`` as text that libpq (psql), psycopg and SQLAlchemy all accept.

    Every part is percent-encoded (SQLAlchemy's own rendering leaves a space in a
    password, which libpq refuses). With ``hide_password`` (the default, for anything
    shown to a person) the password and ``?password=`` are :data:`MASK`.
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
        for value in ((values,) if isinstance(values, str) else values)
    )
    tail = f"/{quote(url.database or '', safe='')}" + (f"?{query}" if query else "")
    if hide_password:  # the password repeated in a database name or a parameter
        tail = scrub(tail, secrets_of(url))
    return f"{driver}://{user}{'@' if user else ''}{host}{port}{tail}"


def libpq_url(url: URL) -> str:
    """A ``postgresql://`` URL with its password, for connecting, never for showing."""
    return render_url(url, hide_password=False)


def mask_url(url: str | URL) -> str:
    """The one way a URL is shown to a person: its password replaced by :data:`MASK`.

    Text that is not a URL SQLAlchemy can parse (a typo, a port that is not a number)
    is masked by pattern: whatever stands between ``user:`` and ``@``, and any
    ``password=`` value.
    """
    if isinstance(url, URL):
        return render_url(url, driver=url.drivername)
    parsed = _parsed(url)
    if parsed is None:
        return _mask(url, _USERINFO)
    return render_url(parsed, driver=parsed.drivername)


def _parsed(text: str) -> URL | None:
    """``text`` as a URL, or None if SQLAlchemy cannot make sense of it (an ``@`` in the
    host means part of an unencoded password went there)."""
    try:
        url = make_url(text)
    except Exception:
        return None
    return None if "@" in (url.host or "") else url


def _mask(text: str, userinfo: re.Pattern[str]) -> str:
    masked = userinfo.sub(lambda found: f"{found['head']}:{MASK}@", text)
    return _PASSWORD_PAIR.sub(lambda found: f"{found['head']}{MASK}", masked)


def mask_text(text: str) -> str:
    """Free text (an argument list, a message) with the password of every URL in it,
    and every ``password=`` value, replaced by :data:`MASK`."""
    return _mask(text, _USERINFO_IN_TEXT)


def secrets_of(url: str | URL | None) -> frozenset[str]:
    """The secrets in a URL (password, ``?password=``), as given and as percent-encoded,
    for :func:`scrub`. Text that does not parse gives what :func:`mask_url` would hide."""
    if url is None:
        return frozenset()
    found: set[str] = set()
    parsed: URL | None = url if isinstance(url, URL) else None
    if isinstance(url, str):
        parsed = _parsed(url)
        if parsed is None:
            found.update(match["secret"] for match in _USERINFO.finditer(url))
            found.update(match["secret"].strip("'") for match in _PASSWORD_PAIR.finditer(url))
    if parsed is not None:
        if parsed.password is not None:
            found.add(str(parsed.password))
        for key in SECRET_PARAMETERS & set(parsed.query):
            values = parsed.query[key]
            found.update((values,) if isinstance(values, str) else values)
    spelled = {
        form
        for secret in found
        for form in (secret, quote(secret, safe=""), quote_plus(secret), unquote(secret))
    }
    return frozenset(secret for secret in spelled if secret)


def scrub(text: str, secrets: frozenset[str]) -> str:
    """``text`` with every one of ``secrets`` replaced by :data:`MASK`.

    A secret that begins or ends with a letter or digit is replaced only where it is
    not part of a longer word, so a password ``postgres`` leaves ``postgresql`` whole.
    """
    for secret in sorted(secrets, key=len, reverse=True):  # an encoded form is longer
        before = r"(?<!\w)" if secret[0].isalnum() else ""
        after = r"(?!\w)" if secret[-1].isalnum() else ""
        text = re.sub(before + re.escape(secret) + after, MASK, text)
    return text


def display_url(url: URL) -> str:
    """``postgresql://user@host:port`` (no password, no database) for messages."""
    query = {key: value for key, value in url.query.items() if key not in SECRET_PARAMETERS}
    bare = URL.create("postgresql", url.username, None, url.host, url.port, None, query)
    address, mark, parameters = bare.render_as_string().partition("?")
    return address + mark + scrub(parameters, secrets_of(url))


def host_port(url: URL) -> str:
    """``host:port`` of a URL, the way libpq would resolve them."""
    host = url.host or url.query.get("host") or "localhost"
    return f"{host}:{url.port or 5432}"


def error_text(error: BaseException, secrets: frozenset[str] = frozenset()) -> str:
    """A driver's (multi-line) error message on one line, for messages of our own, with
    ``secrets`` (see :func:`secrets_of`) scrubbed out."""
    one_line = " ".join(line.strip() for line in str(error).strip().splitlines())
    return scrub(one_line, secrets).rstrip(".?!")
