"""What having pytest-celestra installed costs a run that uses none of its fixtures.

::

    python benchmarks/celestra_bench_import.py                  # this interpreter's venv
    python benchmarks/celestra_bench_import.py --python /other/venv/bin/python --runs 9
    python benchmarks/celestra_bench_import.py --no-baseline    # skip the baseline venv

Three figures, each the median of ``--runs`` runs of a fresh interpreter: wall time from
launch to exit (what the user feels, and what the targets are about), and beside it the
CPU time (user + system) of the process, which load from other processes on the machine
inflates far less. The runs of the things compared alternate, so drifting load weighs on
each alike:

1. **import**: ``python -c "import pytest"`` against ``python -c "import pytest,
   pytest_celestra.plugin"``, and the difference (target: at most 100 ms). Beside it, the
   cumulative ``-X importtime`` of ``pytest_celestra.plugin`` after pytest (the plugin's
   own import cost, without interpreter start or noise); the target is about wall time.
2. **warm one-test run**: a suite of one test that requests no fixture, run with
   ``python -m pytest -q -p no:cacheprovider`` (after one unmeasured run, so files are in
   the page cache and compiled): with every plugin, with
   ``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``, and with each plugin registered under
   ``pytest11`` blocked in turn (``-p no:NAME``); a plugin's share is what blocking it
   saves.
3. **against a factory_boy user**: the same suite in a baseline virtualenv holding only
   pytest, factory_boy and Faker (the versions of the measured venv, installed with
   ``pip`` from the configured index into ``--baseline-dir``, reused when present),
   against the measured venv as it is, and with only the plugins that pytest-celestra
   and those three packages bring (the others, such as the test extra's pytest-xdist and
   pytest-asyncio, blocked): what installing pytest-celestra adds (target: at most
   0.35 s more).

The output goes to stdout; the exit status is 0 when every figure was measured, whether
or not a target is met. Hooked into ``bench.py`` as ``--import-cost``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

#: Targets: import difference (s), extra time of a one-test run over a factory_boy user (s).
IMPORT_TARGET = 0.100
BASELINE_TARGET = 0.35
#: What a factory_boy user already has installed.
BASELINE_PACKAGES = ("pytest", "factory_boy", "Faker")
DEFAULT_BASELINE_DIR = Path(tempfile.gettempdir()) / "celestra-bench-baseline-venv"

_SUITE = "def test_nothing():\n    pass\n"


#: Where the measured interpreters keep their bytecode: compiled once (in the unmeasured
#: first run), as an installed package is, and never written into a source tree.
PYCACHE = Path(tempfile.gettempdir()) / "celestra-bench-import-pycache"
_DROPPED = ("PYTEST_ADDOPTS", "PYTHONDONTWRITEBYTECODE")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _DROPPED}
    return env | {"PYTHONPYCACHEPREFIX": str(PYCACHE)} | extra


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wall(command: Sequence[str], env: dict[str, str], cwd: Path | None = None) -> Timing:
    """Wall seconds from launching ``command`` to its exit, and its CPU seconds; raises if
    it fails."""
    cpu = _cpu()
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-2000:]}"
            f"{done.stderr[-2000:]}"
        )
    return seconds, _cpu() - cpu


Timing = tuple[float, float]


def _medians(cases: dict[str, Callable[[], Timing]], runs: int) -> dict[str, dict[str, float]]:
    """Run each case once unmeasured, then ``runs`` rounds of all of them; the medians of
    wall and CPU time."""
    for case in cases.values():
        case()
    times: dict[str, list[Timing]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, case in cases.items():
            times[name].append(case())
    return {
        name: {
            "wall": statistics.median(wall for wall, _ in values),
            "cpu": statistics.median(cpu for _, cpu in values),
        }
        for name, values in times.items()
    }


def _less(more: dict[str, float], less: dict[str, float]) -> dict[str, float]:
    return {kind: more[kind] - less[kind] for kind in ("wall", "cpu")}


def _plugin_importtime(python: str, cwd: Path) -> float:
    """Cumulative ``-X importtime`` of ``pytest_celestra.plugin`` once pytest is imported."""
    done = subprocess.run(
        [python, "-X", "importtime", "-c", "import pytest, pytest_celestra.plugin"],
        env=_clean_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    for line in done.stderr.splitlines():
        fields = [field.strip() for field in line.split("|")]
        if len(fields) == 3 and fields[2] == "pytest_celestra.plugin":
            return int(fields[1]) / 1e6
    raise RuntimeError("pytest_celestra.plugin is missing from -X importtime's output")


def measure_import(python: str, runs: int, cwd: Path) -> dict[str, Any]:
    """``cwd``: a directory without a ``pytest_celestra`` of its own (``python -c`` puts
    the working directory first on ``sys.path``)."""
    env = _clean_env()
    medians = _medians(
        {
            "pytest": lambda: _wall([python, "-c", "import pytest"], env, cwd),
            "pytest+plugin": lambda: _wall(
                [python, "-c", "import pytest, pytest_celestra.plugin"], env, cwd
            ),
        },
        runs,
    )
    importtimes = sorted(_plugin_importtime(python, cwd) for _ in range(3))
    return {
        **medians,
        "difference": _less(medians["pytest+plugin"], medians["pytest"]),
        "importtime": importtimes[1],
    }


def registered_plugins(python: str) -> list[str]:
    """Names of the ``pytest11`` entry points installed for ``python``."""
    code = (
        "import importlib.metadata as m, json;"
        "print(json.dumps(sorted({e.name for e in m.entry_points(group='pytest11')})))"
    )
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    names: list[str] = json.loads(done.stdout)
    return names


def _suite(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pytest.ini").write_text("[pytest]\n")
    (directory / "test_one.py").write_text(_SUITE)
    return directory


def _pytest_run(python: str, suite: Path, *options: str, **env: str) -> Callable[[], Timing]:
    command = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options, "test_one.py"]
    return lambda: _wall(command, _clean_env(**env), cwd=suite)


def measure_run(python: str, runs: int, suite: Path) -> dict[str, Any]:
    plugins = registered_plugins(python)
    cases = {
        "all plugins": _pytest_run(python, suite),
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1": _pytest_run(
            python, suite, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"
        ),
    }
    cases |= {f"-p no:{name}": _pytest_run(python, suite, "-p", f"no:{name}") for name in plugins}
    return {"plugins": plugins, "medians": _medians(cases, runs)}


def baseline_python(directory: Path, python: str) -> str:
    """The baseline venv's interpreter (made when missing): pytest, factory_boy and Faker
    at the versions installed for ``python``."""
    bin_python = directory / "bin" / "python"
    marker = directory / "celestra-bench-packages.txt"
    code = (
        "import importlib.metadata as m;"
        f"print(' '.join(f'{{n}}=={{m.version(n)}}' for n in {BASELINE_PACKAGES!r}))"
    )
    wanted = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    if bin_python.exists() and marker.exists() and marker.read_text().split() == wanted:
        return str(bin_python)
    subprocess.run([python, "-m", "venv", "--clear", str(directory)], check=True)
    subprocess.run(
        [str(bin_python), "-m", "pip", "install", "-q", *wanted],
        check=True,
        capture_output=True,
    )
    marker.write_text(" ".join(wanted) + "\n")
    return str(bin_python)


#: Run in the measured interpreter: the pytest11 plugins of distributions that neither
#: pytest-celestra (without extras) nor the baseline's packages bring, by their
#: requirements (the test extra's pytest-xdist, pytest-asyncio, ...).
_FOREIGN_PLUGINS = """
import importlib.metadata as m, json, re

def closure(names):
    seen, todo = set(), list(names)
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = m.distribution(name).requires or []
        except m.PackageNotFoundError:
            continue
        todo += [re.match(r"[A-Za-z0-9._-]+", r).group(0) for r in requires if "extra ==" not in r]
    return seen

ours = closure(["pytest-celestra", *BASELINE])
print(json.dumps(sorted(
    e.name for e in m.entry_points(group="pytest11")
    if re.sub(r"[-_.]+", "-", e.dist.name).lower() not in ours
)))
"""


def foreign_plugins(python: str) -> list[str]:
    """Plugins in ``python``'s venv that installing pytest-celestra does not bring."""
    code = _FOREIGN_PLUGINS.replace("BASELINE", repr(list(BASELINE_PACKAGES)))
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    names: list[str] = json.loads(done.stdout)
    return names


def measure_baseline(python: str, runs: int, suite: Path, directory: Path) -> dict[str, Any]:
    """The baseline venv against the measured one as it is, and against the measured one
    with only the plugins pytest-celestra and the baseline's packages bring (the others,
    e.g. the test extra's, blocked): what installing pytest-celestra adds."""
    baseline = baseline_python(directory, python)
    foreign = foreign_plugins(python)
    blocked = [option for name in foreign for option in ("-p", f"no:{name}")]
    medians = _medians(
        {
            "baseline": _pytest_run(baseline, suite),
            "measured": _pytest_run(python, suite),
            "ours": _pytest_run(python, suite, *blocked),
        },
        runs,
    )
    return {
        **medians,
        "blocked": foreign,
        "difference": _less(medians["ours"], medians["baseline"]),
        "difference_as_is": _less(medians["measured"], medians["baseline"]),
        "packages": (directory / "celestra-bench-packages.txt").read_text().strip(),
    }


def measure(
    python: str = sys.executable,
    *,
    runs: int = 7,
    baseline_dir: Path | None = DEFAULT_BASELINE_DIR,
    import_only: bool = False,
) -> dict[str, Any]:
    """Every figure of this module (``baseline_dir`` None: no baseline venv;
    ``import_only``: the import figure alone)."""
    with tempfile.TemporaryDirectory(prefix="celestra-bench-import-") as tmp:
        suite = _suite(Path(tmp) / "suite")
        figures: dict[str, Any] = {
            "python": python,
            "runs": runs,
            "import": measure_import(python, runs, suite),
        }
        if import_only:
            return figures
        figures["run"] = measure_run(python, runs, suite)
        if baseline_dir is not None:
            figures["baseline"] = measure_baseline(python, runs, suite, baseline_dir)
    return figures


def _ms(timing: dict[str, float]) -> str:
    return f"{timing['wall'] * 1000:7.0f} ms wall {timing['cpu'] * 1000:7.0f} ms CPU"


def _s(timing: dict[str, float], sign: str = "") -> str:
    return f"{timing['wall']:{sign}6.2f} s wall {timing['cpu']:{sign}6.2f} s CPU"


def render(figures: dict[str, Any]) -> str:
    """The figures as text: wall time (what the user feels; the targets are about it),
    CPU time beside it, then the plugin's import self-cost."""
    imp = figures["import"]
    lines = [
        f"Import cost ({figures['python']}, median of {figures['runs']} fresh interpreters, "
        "launch to exit)",
        f"  python -c 'import pytest'                          {_ms(imp['pytest'])}",
        f"  python -c 'import pytest, pytest_celestra.plugin'  {_ms(imp['pytest+plugin'])}",
        f"  difference (target: wall <= {IMPORT_TARGET * 1000:.0f} ms)"
        f"                {_ms(imp['difference'])}",
        f"  (-X importtime of pytest_celestra.plugin after pytest: "
        f"{imp['importtime'] * 1000:.0f} ms, its own import without interpreter start)",
    ]
    if "run" not in figures:
        return "\n".join(lines)
    run = figures["run"]
    lines += [
        "",
        "One-test suite, no celestra fixture: python -m pytest -q -p no:cacheprovider "
        "(launch to exit)",
    ]
    medians = run["medians"]
    everything = medians["all plugins"]
    for name, timing in medians.items():
        share = "" if name == "all plugins" else f"  saves {_s(_less(everything, timing), '+')}"
        lines.append(f"  {name:<34} {_s(timing)}{share}")
    baseline = figures.get("baseline")
    if baseline is not None:
        lines += [
            "",
            f"Against a factory_boy user's venv ({baseline['packages']}), same suite",
            f"  baseline venv                      {_s(baseline['baseline'])}",
            f"  measured venv, as it is            {_s(baseline['measured'])}",
            f"    extra                            {_s(baseline['difference_as_is'], '+')}",
            f"  measured venv, only the plugins pytest-celestra brings "
            f"(blocked: {', '.join(baseline['blocked']) or 'none'})",
            f"                                     {_s(baseline['ours'])}",
            f"    extra (target: wall <= {BASELINE_TARGET:.2f} s)   "
            f"{_s(baseline['difference'], '+')}",
        ]
    return "\n".join(lines)


def targets(figures: dict[str, Any], target_class: Any) -> list[Any]:
    """``bench.py``'s targets from these figures (wall time)."""
    found = [
        target_class(
            "import pytest_celestra.plugin over import pytest (ms)",
            "import",
            figures["import"]["difference"]["wall"] * 1000,
            IMPORT_TARGET * 1000,
        )
    ]
    if "baseline" in figures:
        found.append(
            target_class(
                "one-test run over a pytest+factory_boy+Faker venv (s)",
                "baseline",
                figures["baseline"]["difference"]["wall"],
                BASELINE_TARGET,
            )
        )
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter of the venv")
    parser.add_argument("--runs", type=int, default=7, help="runs per figure (default 7)")
    parser.add_argument(
        "--baseline-dir",
        type=Path,
        default=DEFAULT_BASELINE_DIR,
        help=f"the baseline venv, made when missing (default {DEFAULT_BASELINE_DIR})",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the baseline venv")
    parser.add_argument("--import-only", action="store_true", help="only the import figure")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    try:
        figures = measure(
            args.python,
            runs=args.runs,
            baseline_dir=None if args.no_baseline else args.baseline_dir,
            import_only=args.import_only,
        )
    except (RuntimeError, subprocess.CalledProcessError, OSError) as error:
        print(f"celestra_bench_import.py: {error}", file=sys.stderr)
        return 1
    print(render(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
