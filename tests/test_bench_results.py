"""The benchmark results writer (bench/_results.py) and the performance page generator.

No benchmark runs here: results are built by hand in temporary directories.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import _results  # noqa: E402
import performance_doc  # noqa: E402


def _strict_json(text: str) -> dict:
    """Parse JSON as a strict reader would: NaN/Infinity are not JSON."""

    def refuse(name: str) -> float:
        raise ValueError(f"non-JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def _sample(bench: str = "demo_bench") -> _results.Results:
    res = _results.Results(bench, "a made-up benchmark")
    res.figure("put/s", 1500.0, note="wall clock")
    res.target("put/s", ">=", 700)
    res.figure("query ms", 1.25, unit="ms")
    res.target("query ms", "<=", 1.0)
    res.figure("SWarp wall", float("nan"), unit="s")  # peer not installed
    res.target("SWarp wall", "<=", 2.0)
    res.figure("units", 57)
    res.table(["metric", "value"], [["put/s", "1500.0"], ["a|b", 3]], title="Main table")
    res.note("CPU time is the load-independent column.")
    return res


def test_write_gives_valid_versioned_json_with_targets_evaluated(tmp_path: Path) -> None:
    argv = [str(BENCH / "butler_ops.py"), "--repeat", "5"]
    path = _sample().write(tmp_path, argv=argv)
    assert path == tmp_path / "demo_bench.json"
    doc = _strict_json(path.read_text())
    assert doc["format"] == "repo-butler-bench-result"
    assert doc["version"] == 1
    assert doc["command"] == "python bench/butler_ops.py --repeat 5"
    assert doc["date_utc"].endswith("Z")
    machine = doc["machine"]
    assert machine["cores"] >= 1
    assert machine["python"].count(".") == 2
    assert isinstance(machine["numpy"], str)
    values = {f["name"]: f["value"] for f in doc["figures"]}
    assert values == {"put/s": 1500.0, "query ms": 1.25, "SWarp wall": None, "units": 57}
    met = {t["figure"]: t["met"] for t in doc["targets"]}
    assert met == {"put/s": True, "query ms": False, "SWarp wall": None}
    assert doc["tables"][0]["rows"][1] == ["a|b", "3"]
    assert _results.load(path) == doc
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_environment_variable_redirects_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(_results.ENV_DIR, str(tmp_path / "elsewhere"))
    path = _sample().write()
    assert path.parent == tmp_path / "elsewhere"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.target("missing", ">=", 1), "unknown figure 'missing'"),
        (lambda r: r.target("units", "=>", 1), "target operator '=>'"),
        (lambda r: r.figure("units", 3), "recorded twice"),
        (lambda r: r.figure("flag", True), "must be a number"),
        (lambda r: r.table(["a", "b"], [["only one"]]), "every row needs 2 cells"),
    ],
)
def test_misuse_is_refused(call: object, message: str) -> None:
    res = _sample()
    with pytest.raises(_results.ResultsError, match=message):
        call(res)  # type: ignore[operator]


def test_load_names_the_file_and_the_problem(tmp_path: Path) -> None:
    path = _sample().write(tmp_path)
    doc = json.loads(path.read_text())
    doc["version"] = 99
    path.write_text(json.dumps(doc))
    with pytest.raises(_results.ResultsError, match=r"demo_bench\.json: results format version 99"):
        _results.load(path)
    path.write_text("{not json")
    with pytest.raises(_results.ResultsError, match="cannot read"):
        _results.load(path)
    del doc["version"]
    doc["format"] = "something else"
    path.write_text(json.dumps(doc))
    with pytest.raises(_results.ResultsError, match="not a benchmark results file"):
        _results.load(path)


def test_page_renders_a_results_file(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _sample("butler_ops").write(results, argv=["bench/butler_ops.py"])
    _sample("scale_bench-psf-matched").write(results, argv=["bench/scale_bench.py"])
    docs = [_results.load(p) for p in sorted(results.glob("*.json"))]
    page = performance_doc.render(docs, ["butler_ops", "scale_bench", "warp_bench"])
    assert page.startswith("# Performance\n")
    assert "## butler_ops: a made-up benchmark" in page
    assert "* Command: `python bench/butler_ops.py`" in page
    assert "* What the figures mean: [butler.md](butler.md)" in page
    assert "| butler_ops | put/s | >= 700 | 1,500 | met |" in page
    assert "| butler_ops | query ms | <= 1 ms | 1.25 ms | **not met** |" in page
    assert "| butler_ops | SWarp wall | <= 2 s | not measured | not measured |" in page
    assert "| a\\|b | 3 |" in page  # a pipe inside a cell does not break the table
    assert "* CPU time is the load-independent column." in page
    # a variant counts for its script; a script without any results file is listed
    not_run = page.split("## Not run yet", 1)[1].split("## ", 1)[0]
    assert "`warp_bench`" in not_run
    assert "scale_bench" not in not_run
    assert "butler_ops" not in not_run


def test_main_writes_the_page_and_check_detects_staleness(tmp_path: Path) -> None:
    results, page = tmp_path / "results", tmp_path / "docs" / "performance.md"
    _sample("butler_ops").write(results)
    args = ["--results", str(results), "--output", str(page)]
    assert performance_doc.main([*args, "--check"]) == 1  # page does not exist yet
    assert performance_doc.main(args) == 0
    assert "## butler_ops" in page.read_text()
    assert performance_doc.main([*args, "--check"]) == 0
    res = _results.Results("s3_ops", "another")
    res.figure("get/s", 10.0)
    res.write(results)
    assert performance_doc.main([*args, "--check"]) == 1


def test_figures_are_formatted_readably() -> None:
    assert performance_doc._fmt(1562.4) == "1,562"
    assert performance_doc._fmt(0.000571) == "0.000571"
    assert performance_doc._fmt(3.456789) == "3.457"
    assert performance_doc._fmt(None) == "not measured"
    assert performance_doc._fmt(12) == "12"
    assert _results._number(float("inf")) is None
    assert _results._number(float("nan")) is None


def test_committed_performance_page_matches_the_results_files() -> None:
    """docs/performance.md is generated: after a benchmark run, run bench/performance_doc.py."""
    assert performance_doc.main(["--check", "--results", str(BENCH / "results")]) == 0
