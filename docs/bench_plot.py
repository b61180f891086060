"""The figures of docs/performance.md, from one ``benchmarks/bench.py --json`` file.

Writes two hand-made SVG bar charts (no plotting library needed) and the tables of
docs/performance.md between its ``<!-- bench:... -->`` markers, all from
docs/assets/benchmark.json, so the page never quotes a number the JSON does not hold::

    python benchmarks/bench.py --volumes small,medium,large --json /tmp/bench.json
    python docs/bench_plot.py /tmp/bench.json --commit "$(git rev-parse --short HEAD)"
                                                  # copies it to docs/assets/benchmark.json
    python docs/bench_plot.py --check             # exit 1 if a committed file is stale

tests/test_docs.py runs the ``--check`` comparison too.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import statistics
import sys
from html import escape
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
JSON_PATH = DOCS / "assets" / "benchmark.json"
SEEDING_SVG = DOCS / "assets" / "bench-seeding.svg"
WARM_SVG = DOCS / "assets" / "bench-warm.svg"
PAGE = DOCS / "performance.md"
VOLUMES = ("small", "medium", "large")

FONT = "font-family='system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif'"
INK, GRID, BACKGROUND = "#1f2328", "#d0d7de", "#ffffff"
# Colour-blind-safe (Okabe-Ito).
PEER, OURS, COPY = "#d55e00", "#0072b2", "#009e73"
STARTUP, FIRST = "#999999", "#0072b2"


def median(values: list[float]) -> float:
    return statistics.median(values)


def fmt_s(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.3f}"
    return f"{seconds:,.1f}"


# --- charts ------------------------------------------------------------------------------


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    return "\n".join(
        [
            f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            f"viewBox='0 0 {width} {height}' role='img' aria-label='{escape(title)}' {FONT}>",
            f"<title>{escape(title)}</title>",
            f"<rect width='{width}' height='{height}' fill='{BACKGROUND}'/>",
            *body,
            "</svg>",
            "",
        ]
    )


def _text(
    x: float, y: float, text: str, size: int = 13, anchor: str = "start", **attrs: str
) -> str:
    extra = "".join(f" {key.replace('_', '-')}='{value}'" for key, value in attrs.items())
    return (
        f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' fill='{INK}' "
        f"text-anchor='{anchor}'{extra}>{escape(text)}</text>"
    )


def _grid_line(x: float, top: float, bottom: float) -> str:
    return f"<line x1='{x:.1f}' y1='{top:.1f}' x2='{x:.1f}' y2='{bottom:.1f}' stroke='{GRID}'/>"


def _bar(x: float, y: float, width: float, height: float, colour: str) -> str:
    return (
        f"<rect x='{x:.1f}' y='{y:.1f}' width='{width:.1f}' height='{height:.1f}' fill='{colour}'/>"
    )


def _legend(x: float, y: float, items: list[tuple[str, str]]) -> list[str]:
    out = []
    for colour, label in items:
        out.append(f"<rect x='{x:.1f}' y='{y - 10:.1f}' width='12' height='12' fill='{colour}'/>")
        out.append(_text(x + 18, y, label, 12))
        x += 26 + 6.6 * len(label)
    return out


def seeding_chart(data: dict[str, Any]) -> str:
    """Writing the rows of each volume three ways, seconds on a log scale."""
    volumes = data["volumes"]
    series = [
        (PEER, "factory_boy, one create() per row", lambda v: v["peer_rows"]),
        (OURS, "seed_scenario + commit", lambda v: median(v["cold_seed"])),
        (COPY, "COPY of pre-generated rows (the limit)", lambda v: v["copy_median"]),
    ]
    left, right, top, bar, gap, group_gap = 150, 90, 70, 16, 3, 22
    width = 760
    plot = width - left - right
    lo, hi = -2, 3  # 0.01 s .. 1000 s
    names = [name for name in VOLUMES if name in volumes]
    group = len(series) * (bar + gap)
    height = top + len(names) * (group + group_gap) + 40

    def x_of(seconds: float) -> float:
        clamped = min(max(seconds, 10.0**lo), 10.0**hi)
        return left + (math.log10(clamped) - lo) / (hi - lo) * plot

    body = [
        _text(
            16,
            24,
            "Writing the rows of a scenario, seconds (log scale; shorter is better)",
            15,
            font_weight="600",
        ),
        *_legend(16, 48, [(colour, label) for colour, label, _ in series]),
    ]
    bottom = height - 30
    for exponent in range(lo, hi + 1):
        x = x_of(10.0**exponent)
        body.append(_grid_line(x, top - 6, bottom))
        label = f"{10.0**exponent:g}"
        body.append(_text(x, bottom + 16, label, 11, "middle"))
    y = top
    for name in names:
        figures = volumes[name]
        body.append(_text(left - 10, y + group / 2, name, 13, "end", font_weight="600"))
        body.append(_text(left - 10, y + group / 2 + 15, f"{figures['rows']:,} rows", 11, "end"))
        for colour, _, value_of in series:
            seconds = value_of(figures)
            x = x_of(seconds)
            body.append(_bar(left, y, x - left, bar, colour))
            body.append(_text(x + 5, y + bar - 4, f"{fmt_s(seconds)} s", 11))
            y += bar + gap
        y += group_gap
    return _svg(width, height, "Seconds to write the rows of each volume, three ways", body)


def warm_chart(data: dict[str, Any]) -> str:
    """Launching pytest to the first test's body when the template exists, per volume."""
    volumes = data["volumes"]
    left, right, top, bar, gap = 150, 150, 70, 22, 14
    width = 760
    plot = width - left - right
    names = [name for name in VOLUMES if name in volumes]
    height = top + len(names) * (bar + gap) + 40
    longest = max(volumes[name]["warm_first_test_median"] for name in names)
    scale_max = math.ceil(longest * 2) / 2  # next half second

    def x_of(seconds: float) -> float:
        return left + seconds / scale_max * plot

    body = [
        _text(
            16,
            24,
            "A warm run: launching pytest to the first test's body, seconds",
            15,
            font_weight="600",
        ),
        *_legend(16, 48, [(STARTUP, "interpreter + imports"), (FIRST, "then to the first test")]),
    ]
    bottom = height - 30
    step = 0.5
    ticks = round(scale_max / step)
    for i in range(ticks + 1):
        x = x_of(i * step)
        body.append(_grid_line(x, top - 6, bottom))
        body.append(_text(x, bottom + 16, f"{i * step:g}", 11, "middle"))
    y = top
    for name in names:
        figures = volumes[name]
        total = figures["warm_first_test_median"]
        startup = median(figures["warm_startup"])
        overhead_ms = figures["overhead_median"] * 1000
        body.append(_text(left - 10, y + bar / 2 + 1, name, 13, "end", font_weight="600"))
        body.append(_text(left - 10, y + bar / 2 + 15, f"{figures['rows']:,} rows", 11, "end"))
        body.append(_bar(left, y, x_of(startup) - left, bar, STARTUP))
        body.append(_bar(x_of(startup), y, x_of(total) - x_of(startup), bar, FIRST))
        label = f"{fmt_s(total)} s, then +{overhead_ms:.2f} ms a test"
        body.append(_text(x_of(total) + 5, y + bar / 2 + 4, label, 11))
        y += bar + gap
    return _svg(width, height, "Seconds from launching pytest to the first test, per volume", body)


# --- tables of docs/performance.md ---------------------------------------------------------


def figures_table(data: dict[str, Any]) -> str:
    rows = [
        "| volume | rows | cold seed: database + schema + rows "
        "| rows only: `seed_scenario` + commit | COPY only | factory_boy peer, rows only "
        "| peer / ours | warm: pytest to first test | per-test overhead | peak RSS |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name in VOLUMES:
        if name not in data["volumes"]:
            continue
        v = data["volumes"][name]
        peer = f"{fmt_s(v['peer_rows'])} s"
        if v["peer_fraction"] < 1:
            peer += f" ({v['peer_fraction']:.0%} sample x{1 / v['peer_fraction']:.0f})"
        rows.append(
            f"| {name} | {v['rows']:,} | {fmt_s(v['cold_median'])} s (n={len(v['cold'])}) "
            f"| {fmt_s(median(v['cold_seed']))} s "
            f"| {fmt_s(v['copy_median'])} s (n={len(v['copy'])}) "
            f"| {peer} | {v['peer_vs_ours']:.0f}x | {fmt_s(v['warm_first_test_median'])} s "
            f"(n={len(v['warm_first_test'])}) | {v['overhead_median'] * 1000:.2f} ms "
            f"| {v['peak_rss_mib']:.0f} MB |"
        )
    return "\n".join(rows)


PER_TEST_FIXTURES = ("celestra_seeded_db", "celestra_session")


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.2f} ms"


def _phases(phases: dict[str, float] | None) -> str:
    if not phases:
        return "n/a"
    return " / ".join(f"{phases[when] * 1000:.2f}" for when in ("setup", "call", "teardown"))


def per_test_table(data: dict[str, Any]) -> str:
    """Per test end to end, per fixture and body, beside pytest's phase medians."""
    rows = [
        "| volume | fixture | per test, no statement | per test, one statement "
        "| setup / call / teardown, one statement (ms) | the same without the fixture (ms) |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for name in VOLUMES:
        figures = data["volumes"].get(name, {})
        per_test = figures.get("per_test") or {}
        phases = figures.get("per_test_phases") or {}
        for fixture in PER_TEST_FIXTURES:
            if per_test.get(fixture) is None:
                continue
            rows.append(
                f"| {name} | `{fixture}` | {_ms(per_test[fixture])} "
                f"| {_ms(per_test.get(f'{fixture}+statement'))} "
                f"| {_phases(phases.get(f'{fixture}+statement'))} "
                f"| {_phases(phases.get('plain'))} |"
            )
    if len(rows) == 2:
        return "*The run above predates this figure: run `benchmarks/bench.py` to measure it.*"
    return "\n".join(rows)


def targets_table(data: dict[str, Any]) -> str:
    rows = ["| target | figures | value | limit | verdict |", "|---|---|--:|---|---|"]
    for target in data["targets"]:
        if target["value"] is None:
            continue  # a volume the run did not include
        limit = ("<= " if target["at_most"] else ">= ") + f"{target['limit']:g}"
        rows.append(
            f"| {target['name']} | {target['figure']} | {target['value']:.2f} | {limit} "
            f"| {target['verdict']} |"
        )
    return "\n".join(rows)


def run_line(data: dict[str, Any]) -> str:
    commit = f"Commit {data['commit']}; " if data.get("commit") else ""
    return (
        f"{commit}server: {data['server']}; Python {data['python']}; seed {data['seed']}; "
        f"{data['tests']} + {data['tests']} tests per warm pytest run."
    )


def _replace(page: str, marker: str, content: str) -> str:
    pattern = re.compile(
        rf"(<!-- bench:{marker}:start -->\n).*?(<!-- bench:{marker}:end -->)", re.DOTALL
    )
    if not pattern.search(page):
        raise SystemExit(f"{PAGE}: no <!-- bench:{marker}:start/end --> markers")
    # Blank lines around the content: an HTML comment line would swallow a table after it.
    return pattern.sub(lambda m: f"{m[1]}\n{content}\n\n{m[2]}", page)


def render(data: dict[str, Any], page: str) -> dict[Path, str]:
    """Every file this script writes, with its content."""
    for marker, content in (
        ("run", run_line(data)),
        ("figures", figures_table(data)),
        ("pertest", per_test_table(data)),
        ("targets", targets_table(data)),
    ):
        page = _replace(page, marker, content)
    return {SEEDING_SVG: seeding_chart(data), WARM_SVG: warm_chart(data), PAGE: page}


def stale_files() -> list[Path]:
    """Committed files that differ from what docs/assets/benchmark.json gives."""
    data = json.loads(JSON_PATH.read_text())
    wanted = render(data, PAGE.read_text())
    return [path for path, text in wanted.items() if not path.exists() or path.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="?", type=Path, help="a bench.py --json file to adopt")
    parser.add_argument("--commit", help="the commit the run measured, recorded in the JSON")
    parser.add_argument("--check", action="store_true", help="only report stale files")
    options = parser.parse_args(argv)
    if options.check:
        stale = stale_files()
        for path in stale:
            print(f"stale: {path}", file=sys.stderr)
        return 1 if stale else 0
    if options.json is not None and options.json.resolve() != JSON_PATH:
        shutil.copyfile(options.json, JSON_PATH)
    data = json.loads(JSON_PATH.read_text())
    if options.commit:
        data["commit"] = options.commit
        JSON_PATH.write_text(json.dumps(data, indent=2) + "\n")
    for path, text in render(data, PAGE.read_text()).items():
        path.write_text(text)
        print(f"wrote {path.relative_to(DOCS.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
