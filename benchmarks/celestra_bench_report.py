"""Figures, targets and the printed report of ``bench.py``.

:class:`VolumeResult` holds what was measured at one volume; :func:`evaluate_targets`
turns the results into :class:`Target` rows (PASS / MISS / n/a); the ``render_*``
functions format the table, the per-volume details and the targets.
"""

from __future__ import annotations

import pstats
import statistics
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import celestra_bench_pertest as pertest

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

MB = 1024  # ru_maxrss is in KiB on Linux


# --- figures -----------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt_s(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value < 10:
        return f"{value:.3f}"
    return f"{value:,.1f}"


def fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.2f}"


def fmt_mb(kib: float | None) -> str:
    return "n/a" if kib is None else f"{kib / MB:.0f}"


@dataclass
class VolumeResult:
    """Every figure measured for one volume (seconds, KiB)."""

    volume: str
    rows: int
    cold: list[float] = field(default_factory=list)
    cold_schema: list[float] = field(default_factory=list)
    cold_seed: list[float] = field(default_factory=list)
    cold_peak_rss_kib: list[int] = field(default_factory=list)
    copy: list[float] = field(default_factory=list)
    copy_generate: list[float] = field(default_factory=list)
    peer: float | None = None
    peer_rows: float | None = None
    peer_fraction: float = 1.0
    peer_rows_created: int = 0
    warm_first_test: list[float] = field(default_factory=list)
    warm_startup: list[float] = field(default_factory=list)
    warm_first_setup: list[float] = field(default_factory=list)
    #: Only the cold seed, COPY and RSS were measured (volumes beyond large).
    partial: bool = False
    first_run_first_test: float | None = None
    #: Whether that first run built the seeded template (else it was cached already).
    first_run_built: bool = False
    seeded_setup_teardown: list[float] = field(default_factory=list)
    plain_setup_teardown: list[float] = field(default_factory=list)
    #: Case key -> test count -> wall seconds of each whole pytest run (end to end).
    per_test_runs: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    #: Case key -> per round, median setup / call / teardown of its 1 + N tests.
    per_test_phases: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    @property
    def cold_median(self) -> float | None:
        return median(self.cold) if self.cold else None

    @property
    def copy_median(self) -> float | None:
        return median(self.copy) if self.copy else None

    @property
    def peak_rss_kib(self) -> int | None:
        return max(self.cold_peak_rss_kib) if self.cold_peak_rss_kib else None

    @property
    def warm_median(self) -> float | None:
        return median(self.warm_first_test) if self.warm_first_test else None

    @property
    def overhead(self) -> float | None:
        """median(setup+teardown with celestra_seeded_db) - median(without)."""
        if not self.seeded_setup_teardown or not self.plain_setup_teardown:
            return None
        return median(self.seeded_setup_teardown) - median(self.plain_setup_teardown)

    def per_test(self, case: pertest.Case) -> float | None:
        """Seconds per test of ``case``, end to end (``celestra_bench_pertest``)."""
        return pertest.per_test(self.per_test_runs, case)

    def phases(self, case: pertest.Case) -> dict[str, float] | None:
        """Median setup, call and teardown of ``case``'s tests over the rounds."""
        rounds = self.per_test_phases.get(case.key)
        if not rounds:
            return None
        return {when: median([r[when] for r in rounds]) for when in rounds[0]}

    @property
    def peer_vs_ours(self) -> float | None:
        """Peer's rows / ours (``seed_scenario`` + commit); database set-up excluded."""
        if self.peer_rows is None or not self.cold_seed:
            return None
        return self.peer_rows / median(self.cold_seed)

    @property
    def peer_vs_ours_total(self) -> float | None:
        """The same with the (identical) database + schema creation on both sides."""
        if self.peer is None or not self.cold:
            return None
        return self.peer / median(self.cold)

    def figures(self) -> dict[str, Any]:
        """The measurements (per-test durations summarised) and derived figures, for --json."""
        raw = asdict(self)
        per_test = {kind: sorted(raw.pop(f"{kind}_setup_teardown")) for kind in ("seeded", "plain")}
        return {
            **raw,
            **{
                f"{kind}_setup_teardown": {
                    "tests": len(values),
                    "median": median(values) if values else None,
                    "p90": values[int(len(values) * 0.9)] if values else None,
                }
                for kind, values in per_test.items()
            },
            "cold_median": self.cold_median,
            "copy_median": self.copy_median,
            "peak_rss_mib": None if self.peak_rss_kib is None else self.peak_rss_kib / MB,
            "warm_first_test_median": self.warm_median,
            "overhead_median": self.overhead,
            "peer_vs_ours": self.peer_vs_ours,
            "peer_vs_ours_total": self.peer_vs_ours_total,
            "per_test": {case.key: self.per_test(case) for case in pertest.CASES},
            "per_test_phases": {
                case.key: self.phases(case) for case in (pertest.PLAIN, *pertest.CASES)
            },
        }


# --- targets -------------------------------------------------------------------------


@dataclass
class Target:
    """One target: what is compared, the figures behind it, the value and its limit."""

    name: str
    figure: str
    value: float | None
    limit: float | None
    at_most: bool = True

    @property
    def verdict(self) -> str:
        if self.value is None or self.limit is None:
            return "n/a"
        holds = self.value <= self.limit if self.at_most else self.value >= self.limit
        return "PASS" if holds else "MISS"

    @property
    def limit_text(self) -> str:
        if self.limit is None:
            return ""
        return f"{'<=' if self.at_most else '>='} {self.limit:.3g}"


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def _pair(
    results: dict[str, VolumeResult], top: str, bottom: str, value: Callable[[VolumeResult], Any]
) -> tuple[float | None, float | None]:
    """``value`` of two volumes (None for a volume not run or a figure not measured)."""
    a, b = results.get(top), results.get(bottom)
    return (None if a is None else value(a)), (None if b is None else value(b))


def _missing(*names: str) -> str:
    return f"needs {' and '.join(names)}"


def evaluate_targets(results: dict[str, VolumeResult]) -> list[Target]:
    """Every target of the benchmark, "n/a" where a volume it needs was not run."""
    targets: list[Target] = []

    cold = _pair(results, "large", "large", lambda r: r.cold_median)[0]
    copy = _pair(results, "large", "large", lambda r: r.copy_median)[0]
    figure = f"{fmt_s(cold)} / {fmt_s(copy)}" if cold and copy else _missing("large")
    targets.append(Target("large: cold seed / COPY-only load", figure, _ratio(cold, copy), 3))

    for name in ("medium", "large"):
        result = results.get(name)
        if result is None or result.peer_rows is None:
            targets.append(Target(f"{name}: peer / ours", _missing(name), None, 40, False))
            continue
        sample = "" if result.peer_fraction >= 1 else f" ({result.peer_fraction:.0%} sample)"
        figure = (
            f"{fmt_s(result.peer_rows)}{sample} / {fmt_s(median(result.cold_seed))}"
            f"; incl. DB+schema {fmt_s(result.peer)} / {fmt_s(result.cold_median)}"
            f" = {result.peer_vs_ours_total or 0:,.1f}x"
        )
        targets.append(Target(f"{name}: peer / ours", figure, result.peer_vs_ours, 40, False))

    large, small = _pair(results, "large", "small", lambda r: r.warm_median)
    figure = f"{fmt_s(large)} / {fmt_s(small)}" if large and small else _missing("small", "large")
    targets.append(
        Target("warm: time to first test, large / small", figure, _ratio(large, small), 1.5)
    )

    for result in results.values():
        if result.overhead is None:
            continue
        figure = (
            f"{fmt_ms(median(result.seeded_setup_teardown))} - "
            f"{fmt_ms(median(result.plain_setup_teardown))}"
            f" ({len(result.seeded_setup_teardown)} tests each)"
        )
        targets.append(
            Target(f"{result.volume}: per-test overhead, ms", figure, result.overhead * 1000, 2)
        )

    large, small = _pair(results, "large", "small", lambda r: r.overhead)
    figure = (
        f"{fmt_ms(large)} / {fmt_ms(small)}"
        if large is not None and small is not None
        else _missing("small", "large")
    )
    targets.append(Target("per-test overhead, large / small", figure, _ratio(large, small), 1.3))

    targets += per_test_targets(results)

    large, medium = _pair(results, "large", "medium", lambda r: r.cold_median)
    figure = (
        f"{fmt_s(large)} / {fmt_s(medium)}" if large and medium else _missing("medium", "large")
    )
    targets.append(Target("cold seed, large / medium", figure, _ratio(large, medium), 100))

    rss_large = _pair(results, "large", "large", lambda r: r.peak_rss_kib)[0]
    rss_large_mb = None if rss_large is None else rss_large / MB
    figure = _missing("large") if rss_large is None else f"{fmt_mb(rss_large)} MB"
    targets.append(Target("large: peak RSS of a cold seed, MB", figure, rss_large_mb, 400))

    rss_x1000 = _pair(results, "x1000", "x1000", lambda r: r.peak_rss_kib)[0]
    if rss_x1000 is not None and rss_large_mb is not None:
        figure = f"{fmt_mb(rss_x1000)} MB vs large {fmt_mb(rss_large)} MB + 100"
        targets.append(Target("x1000: peak RSS, MB", figure, rss_x1000 / MB, rss_large_mb + 100))
    else:
        figure = "needs large and x1000 (--volumes ...,x1000)"
        targets.append(Target("x1000: peak RSS <= large + 100 MB", figure, None, None))
    return targets


def per_test_targets(results: dict[str, VolumeResult]) -> list[Target]:
    """Per test, end to end, of each fixture and body at each volume measured."""
    targets = []
    for result in results.values():
        runs = result.per_test_runs
        for case in pertest.CASES:
            value = result.per_test(case)
            if value is None:
                continue
            sizes = pertest.measured_counts(runs[case.key])
            many, one = (median(runs[case.key][str(n)]) for n in sizes)
            base_many, base_one = (median(runs[pertest.PLAIN.key][str(n)]) for n in sizes)
            figure = (
                f"(({fmt_s(many)} - {fmt_s(one)}) - ({fmt_s(base_many)} - {fmt_s(base_one)}))"
                f" / {sizes[0] - 1:,}"
            )
            targets.append(
                Target(
                    f"{result.volume}: per test end to end, {case.label}, ms",
                    figure,
                    value * 1000,
                    pertest.PER_TEST_LIMIT * 1000,
                )
            )
    return targets


# --- report --------------------------------------------------------------------------


def render_table(results: dict[str, VolumeResult]) -> str:
    """One line per volume: the medians (and how many repetitions they are of)."""
    rows: list[tuple[str, ...]] = [
        (
            "volume",
            "rows",
            "cold seed s",
            "= schema + seed",
            "COPY only s",
            "peer s",
            "warm 1st test s",
            "overhead ms",
            "per test e2e ms",
            "peak RSS MB",
        )
    ]
    for r in results.values():
        peer = fmt_s(r.peer)
        if r.peer is not None and r.peer_fraction < 1:
            peer += f" ({r.peer_fraction:.0%} x{1 / r.peer_fraction:.0f})"
        rows.append(
            (
                r.volume,
                f"{r.rows:,}",
                f"{fmt_s(r.cold_median)} n={len(r.cold)}",
                f"{fmt_s(median(r.cold_schema))} + {fmt_s(median(r.cold_seed))}",
                f"{fmt_s(r.copy_median)} n={len(r.copy)}",
                peer,
                "n/a"
                if r.warm_median is None
                else f"{fmt_s(r.warm_median)} n={len(r.warm_first_test)}",
                fmt_ms(r.overhead),
                " / ".join(fmt_ms(r.per_test(case)) for case in pertest.CASES),
                fmt_mb(r.peak_rss_kib),
            )
        )
    return _columns(rows)


def render_details(results: dict[str, VolumeResult]) -> str:
    """Where the headline figures come from, one line per volume."""
    lines = []
    for r in results.values():
        parts = []
        if r.copy_generate:
            parts.append(
                f"COPY-only rows generated beforehand in {fmt_s(median(r.copy_generate))} s"
            )
        if r.peer is not None:
            sample = (
                f"a {r.peer_fraction:.0%} sample ({r.peer_rows_created:,} rows) scaled"
                f" x{1 / r.peer_fraction:.0f}"
                if r.peer_fraction < 1
                else f"all {r.peer_rows_created:,} rows"
            )
            parts.append(f"peer timed on {sample}")
        if r.warm_startup:
            after_startup = [
                first - startup
                for first, startup in zip(r.warm_first_test, r.warm_startup, strict=True)
            ]
            parts.append(
                f"warm: interpreter + imports {fmt_s(median(r.warm_startup))} s, then"
                f" {fmt_s(median(after_startup))} s to the first test, of which its setup"
                f" (template lookup + clone) {fmt_s(median(r.warm_first_setup))} s"
            )
        if r.first_run_first_test is not None:
            how = "built the template" if r.first_run_built else "template was cached"
            parts.append(f"first pytest run ({how}) {fmt_s(r.first_run_first_test)} s")
        if r.per_test_runs:
            parts.append(_per_test_details(r))
        if r.partial:
            parts.append("beyond large: cold seed, COPY and RSS only")
        lines.append(f"  {r.volume}: " + "; ".join(parts))
    return "\n".join(lines)


def _per_test_details(r: VolumeResult) -> str:
    """The end-to-end per-test figures beside pytest's setup / call / teardown medians."""
    cases = " / ".join(case.label for case in pertest.CASES)
    figures = " / ".join(fmt_ms(r.per_test(case)) for case in pertest.CASES)
    split = []
    for case in (pertest.PLAIN, *pertest.CASES):
        phases = r.phases(case)
        if phases is not None:
            split.append(f"{case.key} " + "/".join(fmt_ms(phases[w]) for w in phases))
    return (
        f"per test end to end ({cases}): {figures} ms; setup/call/teardown medians, ms: "
        + ", ".join(split)
    )


def render_targets(targets: list[Target]) -> str:
    rows: list[tuple[str, ...]] = [("target", "figures", "value", "limit", "verdict")]
    for target in targets:
        value = "n/a" if target.value is None else f"{target.value:,.2f}"
        rows.append((target.name, target.figure, value, target.limit_text, target.verdict))
    return _columns(rows)


def _columns(rows: list[tuple[str, ...]]) -> str:
    """Rows as aligned columns: the first left-aligned, numbers right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        cells = [
            cell.rjust(width) if column and index and cell[:1].isdigit() else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def print_profile(path: Path, title: str, limit: int = 20) -> None:
    """The ``limit`` functions with the most own time, then the most cumulative time."""
    stats = pstats.Stats(str(path))
    stats.strip_dirs()
    print(f"\n=== {title}: by own time (cProfile) ===")
    stats.sort_stats("tottime").print_stats(limit)
    print(f"=== {title}: by cumulative time ===")
    stats.sort_stats("cumulative").print_stats(limit)
