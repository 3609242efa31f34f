"""Benchmark results as JSON: one shared writer for every ``bench/*.py`` script.

Each benchmark still prints its table; at the end it also records what it measured in
``bench/results/<name>.json`` (the command line, the machine, the UTC date, named figures, the
targets with met / not met, and the printed table), and ``bench/performance_doc.py`` turns those
files into ``docs/performance.md``.

Usage from a benchmark script (``bench/`` is on ``sys.path`` when a script runs)::

    from _results import Results

    res = Results("butler_ops", "Butler operations on a local repository")
    res.figure("put/s", 1562.0, unit="1/s")
    res.target("put/s", ">=", 700)
    res.table(["metric", "wall", "target"], [["put/s", "1562", ">= 700"]])
    res.note("Wall-clock rates vary with machine load.")
    res.write()  # -> bench/results/butler_ops.json

``REPO_BUTLER_BENCH_RESULTS=DIR`` writes into ``DIR`` instead of ``bench/results/``.

File format (``"format": "repo-butler-bench-result"``, ``"version": 1``)::

    {"format", "version", "bench", "title", "command", "date_utc",
     "machine": {"cpu_model", "cores", "usable_cores", "platform", "python", "numpy",
                 "load_average_1min", "git_commit"},
     "figures": [{"name", "value", "unit", "note"}],
     "targets": [{"figure", "op", "target", "value", "unit", "met"}],
     "tables": [{"title", "columns", "rows"}],
     "notes": [str]}

A target whose figure was not measured (a peer tool not installed) has ``value`` and ``met``
``null``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "repo-butler-bench-result"
VERSION = 1
HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
ENV_DIR = "REPO_BUTLER_BENCH_RESULTS"
OPS = {
    ">=": lambda v, t: v >= t,
    "<=": lambda v, t: v <= t,
    ">": lambda v, t: v > t,
    "<": lambda v, t: v < t,
}


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Best wall and best process-CPU seconds of ``repeat`` calls of ``fn``."""
    wall, cpu = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return min(wall), min(cpu)


class ResultsError(ValueError):
    """A results file or a call to :class:`Results` is malformed."""


def results_dir() -> Path:
    """Directory the results are written to (``$REPO_BUTLER_BENCH_RESULTS`` or bench/results)."""
    env = os.environ.get(ENV_DIR)
    return Path(env) if env else RESULTS_DIR


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(HERE), "describe", "--always", "--dirty", "--abbrev=10"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine_info() -> dict[str, Any]:
    """CPU model, core counts, platform, Python and numpy versions of this machine."""
    try:
        import numpy

        numpy_version: str | None = numpy.__version__
    except ImportError:  # pragma: no cover - numpy is a dependency of the project
        numpy_version = None
    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        usable = os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy_version,
        "load_average_1min": None if load is None else round(load, 2),
        "git_commit": _git_commit(),
    }


def command_line(argv: list[str] | None = None) -> str:
    """The command that ran the benchmark, as a user would type it from the repository root."""
    args = list(sys.argv if argv is None else argv)
    if args:
        script = Path(args[0])
        try:
            args[0] = str(script.resolve().relative_to(HERE.parent))
        except ValueError:
            args[0] = str(script)
    return shlex.join(["python", *args])


def _number(value: Any) -> float | int | None:
    """A JSON-safe number: NaN and infinities become ``None``."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ResultsError(f"figure value must be a number, not {value!r}")
    if isinstance(value, int):
        return value
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass
class Results:
    """Figures, targets and a table of one benchmark run, written as one JSON file.

    Parameters
    ----------
    bench
        File stem: ``bench/results/<bench>.json``. Use a suffix for a variant run
        (``"scale_bench-psf-matched"``) so it does not replace the default run's file.
    title
        One line saying what was measured.
    """

    bench: str
    title: str
    figures: list[dict[str, Any]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    tables: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.bench or "/" in self.bench or self.bench.startswith("."):
            raise ResultsError(f"bad benchmark name {self.bench!r}: use a plain file stem")

    def figure(self, name: str, value: Any, unit: str = "", note: str = "") -> None:
        """Record one measured figure (``None``/NaN for "not measured")."""
        if any(f["name"] == name for f in self.figures):
            raise ResultsError(f"figure {name!r} recorded twice")
        self.figures.append({"name": name, "value": _number(value), "unit": unit, "note": note})

    def target(self, figure: str, op: str, target: float) -> None:
        """Declare a target on an already recorded figure; met is computed on :meth:`write`."""
        if op not in OPS:
            raise ResultsError(f"target operator {op!r}: use one of {', '.join(OPS)}")
        if not any(f["name"] == figure for f in self.figures):
            raise ResultsError(f"target on unknown figure {figure!r}: record it first")
        self.targets.append({"figure": figure, "op": op, "target": target})

    def table(self, columns: list[str], rows: list[list[Any]], title: str = "") -> None:
        """Record a table as printed (cells are stored as text)."""
        cells = [[str(c) for c in row] for row in rows]
        if any(len(row) != len(columns) for row in cells):
            raise ResultsError(f"table {title!r}: every row needs {len(columns)} cells")
        self.tables.append({"title": title, "columns": list(columns), "rows": cells})

    def note(self, text: str) -> None:
        """Add one sentence the reader of the figures needs (how to read a column, a caveat)."""
        self.notes.append(text)

    def document(self, argv: list[str] | None = None) -> dict[str, Any]:
        """The JSON document of this run."""
        values = {f["name"]: f for f in self.figures}
        targets = []
        for t in self.targets:
            fig = values[t["figure"]]
            value = fig["value"]
            met = None if value is None else bool(OPS[t["op"]](value, t["target"]))
            targets.append({**t, "value": value, "unit": fig["unit"], "met": met})
        now = _dt.datetime.now(_dt.UTC).replace(microsecond=0)
        return {
            "format": FORMAT,
            "version": VERSION,
            "bench": self.bench,
            "title": self.title,
            "command": command_line(argv),
            "date_utc": now.isoformat().replace("+00:00", "Z"),
            "machine": machine_info(),
            "figures": self.figures,
            "targets": targets,
            "tables": self.tables,
            "notes": self.notes,
        }

    def write(self, directory: Path | None = None, argv: list[str] | None = None) -> Path:
        """Write ``<directory>/<bench>.json`` atomically and return its path."""
        out_dir = results_dir() if directory is None else Path(directory)
        out_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.document(argv), indent=2, allow_nan=False) + "\n"
        path = out_dir / f"{self.bench}.json"
        fd, tmp = tempfile.mkstemp(prefix=f".{self.bench}-", suffix=".json", dir=out_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        print(f"results written to {path}")
        return path


_REQUIRED = {
    "bench": str,
    "title": str,
    "command": str,
    "date_utc": str,
    "machine": dict,
    "figures": list,
    "targets": list,
    "tables": list,
    "notes": list,
}


def load(path: Path) -> dict[str, Any]:
    """Read and check one results file; :class:`ResultsError` names the file and the problem."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ResultsError(f"{path}: cannot read benchmark results: {err}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ResultsError(f"{path}: not a benchmark results file (format {FORMAT!r})")
    if doc.get("version") != VERSION:
        raise ResultsError(
            f"{path}: results format version {doc.get('version')!r}, this reader knows "
            f"{VERSION}: re-run the benchmark"
        )
    for key, kind in _REQUIRED.items():
        if not isinstance(doc.get(key), kind):
            raise ResultsError(f"{path}: key {key!r} missing or not a {kind.__name__}")
    return doc
