"""The settings resolver: precedence, recorded sources, validation and its messages."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path

import pytest

from pytest_celestra.config import (
    DEFAULT_SEED,
    SETTINGS,
    SPECS,
    ScenarioSettings,
    ServerMode,
    Source,
    default_pgdata,
    parse_dsn,
    parse_flag,
    parse_seed,
    parse_server,
    resolve_config,
)
from pytest_celestra.errors import ConfigError
from pytest_celestra.plugin.run_info import scenario_from_marks
from pytest_celestra.schema.volumes import Volume


def resolve(options=None, ini=None, environ=None):
    return resolve_config(options or {}, ini or {}, environ or {})


def test_defaults_and_their_source():
    config = resolve()
    assert config.volume.value == Volume.named("medium")
    assert config.seed.value == DEFAULT_SEED
    assert config.dsn.value is None
    assert config.server.value is ServerMode.AUTO
    assert config.pgdata.value == default_pgdata()
    assert config.pgdata.value.parts[-2:] == ("pytest-celestra", "pgdata")
    assert (config.rebuild.value, config.keep.value) == (False, False)
    assert {
        config.volume.source,
        config.seed.source,
        config.dsn.source,
        config.server.source,
        config.pgdata.source,
        config.rebuild.source,
        config.keep.source,
    } == {Source.DEFAULT}


def test_the_default_data_directory_asks_the_one_root_check(monkeypatch):
    """config.is_root is the only root check: the server module's is the same function."""
    from pytest_celestra import config
    from pytest_celestra.db import server

    assert server.is_root is config.is_root
    monkeypatch.setattr(config, "is_root", lambda: True)
    assert default_pgdata() == config.ROOT_PGDATA
    monkeypatch.setattr(config, "is_root", lambda: False)
    assert default_pgdata().parts[-2:] == ("pytest-celestra", "pgdata")


def test_option_beats_environment_beats_ini():
    ini = {"volume": "large", "seed": "3"}
    environ = {"CELESTRA_VOLUME": "small", "CELESTRA_SEED": "2"}
    options = {"seed": 1}
    config = resolve(options, ini, environ)
    assert (config.seed.value, config.seed.source) == (1, Source.OPTION)
    assert (config.volume.value.name, config.volume.source) == ("small", Source.ENV)
    config = resolve({}, ini, {})
    assert (config.volume.value.name, config.volume.source) == ("large", Source.INI)
    assert (config.seed.value, config.seed.source) == (3, Source.INI)


def test_falsy_option_values_are_not_skipped():
    """Seed 0 from the command line is a value, not "unset" (no `getoption() or getini()`)."""
    config = resolve({"seed": 0}, {"seed": "7"}, {"CELESTRA_SEED": "8"})
    assert (config.seed.value, config.seed.source) == (0, Source.OPTION)


def test_empty_environment_and_ini_values_count_as_unset():
    config = resolve({}, {"dsn": ""}, {"CELESTRA_DSN": "  "})
    assert (config.dsn.value, config.dsn.source) == (None, Source.DEFAULT)


def test_every_channel_has_one_name():
    assert [(s.option, s.ini, s.env) for s in SETTINGS if s.name == "volume"] == [
        ("--celestra-volume", "celestra_volume", "CELESTRA_VOLUME")
    ]
    for spec in SETTINGS:
        assert spec.option == "--celestra-" + spec.name.replace("_", "-")
        assert spec.ini == "celestra_" + spec.name
        assert spec.env == "CELESTRA_" + spec.name.upper()


@pytest.mark.parametrize(
    ("setting", "bad", "allowed"),
    [
        ("volume", "huge", "small, medium or large"),
        ("seed", "abc", "integer from 0 to 9223372036854775807"),
        ("seed", "-1", "integer from 0 to 9223372036854775807"),
        ("server", "cloud", "auto, dsn, local, embedded"),
        ("dsn", "mysql://x@y/z", "postgresql://"),
        ("dsn", "not a url", "postgresql://"),
        ("keep", "maybe", "1, true, yes, on, 0, false, no, off"),
        ("template_max_age", "a week", "a unit s, m, h or d"),
        ("template_max_age", "7", "a unit s, m, h or d"),
        ("template_max_size", "lots", "a unit B, kB, MB, GB or TB"),
    ],
)
def test_bad_values_name_the_channel_and_the_allowed_values(setting, bad, allowed):
    spec = SPECS[setting]
    with pytest.raises(ConfigError) as from_env:
        resolve(environ={spec.env: bad})
    assert str(from_env.value).startswith(f"environment variable {spec.env}: ")
    assert allowed in str(from_env.value)
    # A DSN that is not a URL is not echoed: it may be a password in the wrong place.
    shown = "(not a URL; not shown)" if bad == "not a url" else repr(bad)
    assert shown in str(from_env.value)
    with pytest.raises(ConfigError) as from_ini:
        resolve(ini={setting: bad})
    assert str(from_ini.value).startswith(f"ini option {spec.ini}: ")
    assert allowed in str(from_ini.value)
    with pytest.raises(argparse.ArgumentTypeError, match=allowed.split(",")[0]):
        spec.argparse_type(bad)


def test_server_dsn_without_a_dsn_says_how_to_give_one():
    with pytest.raises(ConfigError) as error:
        resolve(environ={"CELESTRA_SERVER": "dsn"})
    assert "--celestra-dsn, ini celestra_dsn or environment variable CELESTRA_DSN" in str(
        error.value
    )


def test_converters():
    assert parse_seed(" 42 ") == 42
    assert parse_server("EMBEDDED") is ServerMode.EMBEDDED
    assert parse_flag("Yes") is True
    assert parse_flag("off") is False
    dsn = "postgresql+psycopg2://u:p@h:5/db"
    assert parse_dsn(dsn) == dsn
    assert SPECS["pgdata"].parse("~/pg") == Path.home() / "pg"
    assert SPECS["volume"].parse("small,users=40").counts["users"] == 40
    assert SPECS["template_max_age"].parse("12h") == timedelta(hours=12)
    assert SPECS["template_max_age"].parse(" 7D ") == timedelta(days=7)
    assert SPECS["template_max_size"].parse("1.5GB") == 3 * 1024**3 // 2
    assert SPECS["template_max_size"].parse("500 mb") == 500 * 1024**2
    assert SPECS["template_max_size"].parse("0") == 0


def test_describe_names_each_source_and_only_flags_that_are_on():
    config = resolve({"volume": Volume.named("small")}, {"seed": "9"}, {"CELESTRA_KEEP": "1"})
    assert config.describe() == "volume=small (option) seed=9 (ini) keep=yes (env)"


def test_relative_ini_paths_are_relative_to_the_ini_file(tmp_path):
    config = resolve_config({}, {"pgdata": "cache/pg"}, {}, tmp_path)
    assert config.pgdata.value == tmp_path / "cache" / "pg"
    config = resolve_config({}, {"pgdata": "/abs/pg"}, {}, tmp_path)
    assert config.pgdata.value == Path("/abs/pg")
    # The environment's and the option's are relative to where pytest runs, and made
    # absolute there: the header showed `rel/pg` (a new user could not tell where it was).
    config = resolve_config({}, {}, {"CELESTRA_PGDATA": "rel/pg"}, tmp_path)
    assert config.pgdata.value == Path.cwd() / "rel" / "pg"
    config = resolve_config({"pgdata": Path("opt/pg")}, {}, {}, tmp_path)
    assert config.pgdata.value == Path.cwd() / "opt" / "pg"


RUN = ScenarioSettings(Volume.named("medium"), 1234)


def marks(*decorators):
    return [decorator.mark for decorator in decorators]


def test_each_marker_argument_comes_from_the_closest_marker_that_sets_it():
    closest_first = marks(
        pytest.mark.celestra(seed=3),
        pytest.mark.celestra(volume="small", seed=5),
        pytest.mark.celestra(volume="large"),
    )
    assert scenario_from_marks(closest_first, RUN) == ScenarioSettings(Volume.named("small"), 3)
    assert scenario_from_marks(marks(pytest.mark.celestra(seed="7")), RUN) == ScenarioSettings(
        RUN.volume, 7
    )
    assert scenario_from_marks(marks(pytest.mark.celestra()), RUN) == RUN
    custom = Volume.custom("tiny", base="small", users=8)
    assert scenario_from_marks(marks(pytest.mark.celestra(volume=custom)), RUN).volume == custom


@pytest.mark.parametrize(
    ("decorator", "message"),
    [
        (pytest.mark.celestra(volume="huge"), "(volume='huge'): invalid volume 'huge': use small"),
        (pytest.mark.celestra(volume=None), "(volume=None): invalid volume None: use a Volume"),
        (pytest.mark.celestra(seed=True), "(seed=True): invalid seed True: use an integer from 0"),
        (pytest.mark.celestra(seed="x"), "(seed='x'): invalid seed 'x': use an integer from 0"),
        (pytest.mark.celestra(users=3), "(users=...): unknown argument; use volume=..."),
        (pytest.mark.celestra(3), "(3,): takes keyword arguments only"),
    ],
)
def test_bad_marker_arguments_name_the_allowed_values(decorator, message):
    # Even on a marker farther away than one that sets the same argument.
    with pytest.raises(ConfigError) as error:
        scenario_from_marks(marks(pytest.mark.celestra(volume="small", seed=1), decorator), RUN)
    assert str(error.value).startswith(f"@pytest.mark.celestra{message}")


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("medum", "invalid volume 'medum': Did you mean 'medium'? Use small, medium or large"),
        ("larg,users=3", "invalid volume 'larg,users=3': Did you mean 'large'? Use small"),
        ("huge", "invalid volume 'huge': use small, medium or large"),
        ("small,user=30", "volume 'small,user=30': unknown table(s) user; Did you mean 'users'?"),
    ],
)
def test_a_misspelt_volume_names_the_closest(text, hint):
    """As a misspelt factory keyword does; a word close to none keeps the plain list."""
    with pytest.raises(ConfigError) as raised:
        Volume.parse(text)
    assert str(raised.value).startswith(hint)
