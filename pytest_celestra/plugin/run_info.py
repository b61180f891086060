"""The pytest side of a run's settings: where a run keeps them, and the `celestra` marker.

[`pytest_celestra.config`][] resolves the settings without pytest; the plugin keeps the
result in the config's stash under [`CONFIG_KEY`][pytest_celestra.plugin.run_info.CONFIG_KEY], with
what the processes of one run share ([`RunInfo`][pytest_celestra.plugin.run_info.RunInfo]) under
[`RUN_KEY`][pytest_celestra.plugin.run_info.RUN_KEY]. Cheap to import: pytest and the settings only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from pytest_celestra.config import MAX_SEED, SPECS, CelestraConfig, ScenarioSettings
from pytest_celestra.errors import ConfigError
from pytest_celestra.schema.volumes import VOLUME_HELP, Volume

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from datetime import date, datetime

    from pytest_celestra.db.user_scenarios import ScenarioBuilder
    from pytest_celestra.schema.app_rules import SchemaRules

CONFIG_KEY = pytest.StashKey[CelestraConfig]()
"""Where `pytest_configure` keeps the run's
[`CelestraConfig`][pytest_celestra.config.CelestraConfig]."""


@dataclass
class RunInfo:
    """What this process shares with the other processes of the run (xdist workers).
    `day` is the run's day (UTC), decided once by the main process."""

    run_id: str
    worker: str
    day: date
    kept: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """One line per template rebuilt because it was not what its key says, and the like."""
    schema_noted: bool = False
    """Whether this process added the schema's differences to `notes` (once)."""
    builds: list[str] = field(default_factory=list)
    """One line per template this run built: what, rows, seconds (and the xdist worker)."""
    rules: SchemaRules | None = None
    """Your `pytest_celestra_schema_rules`, once the first database fixture collected them."""

    @property
    def anchor(self) -> datetime:
        """The instant every time column of the run's scenarios is relative to
        ([`anchor_for`][pytest_celestra.rows.scenario.anchor_for] of `day`)."""
        from pytest_celestra.rows.scenario import anchor_for

        return anchor_for(self.day)


RUN_KEY = pytest.StashKey[RunInfo]()
"""Where `pytest_configure` keeps this process's
[`RunInfo`][pytest_celestra.plugin.run_info.RunInfo]."""
SCENARIO_KEY = pytest.StashKey[ScenarioSettings]()
"""The scenario of a test whose `@pytest.mark.celestra` markers set one."""


def scenario_of(item: pytest.Item) -> ScenarioSettings:
    """The scenario `celestra_seeded_db` holds for `item`: its markers', else the run's."""
    return item.stash.get(SCENARIO_KEY, None) or item.config.stash[CONFIG_KEY].scenario


MARKER = "celestra"
MARKER_HELP = (
    "celestra(volume=None, seed=None, scenario=None): celestra_seeded_db holds the scenario "
    "of this volume and/or seed instead of the run's (--celestra-volume, --celestra-seed), "
    "or your scenario of that name (@scenario_builder); each argument comes from the "
    "closest marker that sets it."
)
_MARKER_ARGUMENTS = {
    "volume": f"a Volume or text: {VOLUME_HELP}",
    "seed": f"an integer from 0 to {MAX_SEED}, such as 1234",
    "scenario": "the name of a scenario declared with @scenario_builder, or the scenario",
}
"""Argument of the marker -> what a value of the wrong type should be instead."""


def _shown_value(value: object) -> str:
    """`repr(value)` for a message, cut when long (a huge int has no repr at all)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"<an integer of about {value.bit_length() * 30103 // 100000 + 1:,} digits>"
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text):,} characters)"


def _marker_value(name: str, value: object) -> Any:
    if name == "volume" and isinstance(value, Volume):
        return value
    if (
        isinstance(value, bool)
        or not isinstance(value, str | int)
        or (isinstance(value, int) and value.bit_length() > 64)
    ):
        raise ConfigError(f"invalid {name} {_shown_value(value)}: use {_MARKER_ARGUMENTS[name]}")
    return SPECS[name].parse(str(value))


def scenario_from_marks(
    marks: Iterable[pytest.Mark],
    default: ScenarioSettings,
    find_scenario: Callable[[object], ScenarioBuilder] | None = None,
) -> ScenarioSettings:
    """The scenario of a test marked `marks` (closest first), else `default`'s values.

    Every argument is checked with the settings' converters: a bad one raises
    [`ConfigError`][pytest_celestra.errors.ConfigError] naming the allowed values.
    `find_scenario` turns a `scenario=` argument into your scenario (or raises).
    """
    found: dict[str, Any] = {}
    for mark in marks:
        if mark.args:
            raise ConfigError(
                f"@pytest.mark.{MARKER}{mark.args!r}: takes keyword arguments only, "
                "volume=..., seed=... and/or scenario=..."
            )
        for name, value in mark.kwargs.items():
            if name not in _MARKER_ARGUMENTS:
                raise ConfigError(
                    f"@pytest.mark.{MARKER}({name}=...): unknown argument; use volume=..., "
                    "seed=... and/or scenario=..."
                )
            if name == "scenario":
                if "scenario" not in found and value is not None:
                    found["scenario"] = _find(find_scenario, value)
                continue
            try:
                parsed = _marker_value(name, value)
            except ConfigError as error:
                raise ConfigError(
                    f"@pytest.mark.{MARKER}({name}={_shown_value(value)}): {error}"
                ) from None
            found.setdefault(name, parsed)
    seed = found.get("seed", default.seed)
    builder: ScenarioBuilder | None = found.get("scenario")
    if builder is None:
        return ScenarioSettings(found.get("volume", default.volume), seed)
    if "volume" in found and found["volume"] != builder.volume:
        raise ConfigError(
            f"@pytest.mark.{MARKER}(scenario={builder.name!r}, volume=...): a scenario is "
            f"built on its own base ({builder.describe()}); drop volume=..., or declare "
            "the scenario with @scenario_builder(base=...)"
        )
    return ScenarioSettings(builder.volume or default.volume, seed, builder)


def _find(find_scenario: Callable[[object], ScenarioBuilder] | None, value: object) -> Any:
    from pytest_celestra.db.user_scenarios import ScenarioBuilder, ScenarioBuildError

    if isinstance(value, ScenarioBuilder):
        return value
    if find_scenario is None:
        raise ConfigError(f"@pytest.mark.{MARKER}(scenario={_shown_value(value)}): not found")
    try:
        return find_scenario(value)
    except ScenarioBuildError as error:
        raise ConfigError(f"@pytest.mark.{MARKER}: {error}") from None
