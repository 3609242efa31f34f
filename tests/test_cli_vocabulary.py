"""One vocabulary across ``rb`` commands (issue 20, points 5 and 8).

Every help screen names what an option expects (no ``<str>``/``TEXT``), every command that opens
a repository takes ``-S``, every command that prints data takes ``-f/--format table|json``,
make-warp lists its LSST options, errors give command-line advice, and tables fit 80 columns.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer
from cli_support import run_rb
from typer.testing import CliRunner

from repo_butler import Butler
from repo_butler.errors import DatasetExistsError, RepositoryExistsError
from repo_butler_cli.errors import cli_message
from repo_butler_cli.main import app
from repo_butler_cli.task_args import parse_task_args, split_task_args

runner = CliRunner()
COMMANDS: dict[str, Any] = typer.main.get_command(app).commands  # type: ignore[attr-defined]
#: commands that print data (a table or JSON); the others print one sentence or a FITS header
DATA_COMMANDS = {
    "ingest", "query-datasets", "query-data-ids", "reindex", "verify", "cleanup", "provenance",
    "migrate", "show-skymap", "make-warp",
    "stack-info",  # issue 24
    "import-gen3",  # issue 26
}  # fmt: skip
#: metavars that name a Python type, not what the user should type
TYPE_METAVAR = re.compile(r"<[\w|]+>|\b(TEXT|INTEGER|FLOAT|BOOLEAN)\b")  # <str>, <a|b>


_rb = run_rb


def _help(*argv: str) -> str:
    result = runner.invoke(app, [*argv, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    return result.output


def _option_lines(text: str) -> list[str]:
    body = text.split("\nOptions:\n", 1)[1]
    return [line for line in body.splitlines() if line.startswith("  -")]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small demo-like repository with warps of tract 0 patch 5,4 in rerun ``w``."""
    from scale_support import write_small_repo

    root = tmp_path_factory.mktemp("vocab") / "repo"
    write_small_repo(str(root)).close()
    return root


@pytest.fixture(scope="module")
def make_warp_run(repo: Path) -> subprocess.CompletedProcess[str]:
    out = _rb("make-warp", str(repo), "--rerun", "w", "--id", "tract=0", "patch=5,4",
              "filter=HSC-I", "--config", "makePsfMatched=True", "--format", "json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out


def test_no_help_screen_shows_a_type_as_metavar() -> None:
    screens = {"rb": _help(), **{name: _help(name) for name in COMMANDS}}
    for name, text in screens.items():
        usage = text.splitlines()[0]
        assert not re.search(r"\{[a-z_]+\}", usage), f"rb {name}: {usage}"
        for line in _option_lines(text):  # "  -x, --xx METAVAR  help": the part before the help
            assert not TYPE_METAVAR.search(re.split(r"\s{2,}", line.strip())[0]), (
                f"rb {name}: {line}"
            )
        arguments = text.split("\nArguments:\n", 1)[-1].split("\nOptions:\n")[0]
        for line in arguments.splitlines() if "\nArguments:\n" in text else []:
            if line.startswith("  ") and line.strip():  # "  NAME  help", the name first
                assert not TYPE_METAVAR.search(line.split()[0]), f"rb {name}: {line}"


def test_every_repository_command_takes_storage_options() -> None:
    for name, command in COMMANDS.items():
        names = {p.name for p in command.params}
        if names & {"repo", "directory"}:
            assert "-S" in _help(name) and "--storage-option KEY=VALUE" in _help(name), name


def test_every_data_command_takes_format() -> None:
    for name in DATA_COMMANDS:
        assert "-f, --format table|json" in _help(name), name
    for name in set(COMMANDS) - DATA_COMMANDS:
        assert "--format" not in _help(name), name
    assert "--json" not in "".join(_help(name) for name in COMMANDS)  # hidden alias only


def test_make_warp_lists_its_lsst_options_with_metavars() -> None:
    lines = "\n".join(_option_lines(_help("make-warp")))
    for option in (
        "--id KEY=VALUE...",
        "--selectId, --select-id KEY=VALUE...",
        "-c, --config FIELD=VALUE...",
        "-C, --configfile, --config-file FILE...",
    ):
        assert option in lines, option


def test_config_means_one_thing() -> None:
    """``--config`` is make-warp's overrides only; files are --config-file, presets --preset."""
    assert "--config-file FILE" in _help("create") and "--preset NAME" in _help("create")
    assert "--preset small|demo|full" in _help("simulate")
    for name in set(COMMANDS) - {"make-warp"}:
        assert not re.search(r"--config\b(?!-)", _help(name)), name


def test_lsst_options_are_split_from_the_rest() -> None:
    argv = ["--id", "tract=0", "patch=5,4", "--rerun", "r", "--selectId", "ccd=-1..2", "-j",
            "2", "--config=doFoo=True", "x=1", "--reuse", "-C", "a.py", "b.py"]  # fmt: skip
    lsst, rest = split_task_args(argv)
    assert rest == ["--rerun", "r", "-j", "2", "--reuse"]
    args = parse_task_args(lsst)
    assert args.ids == [{"tract": 0, "patch": "5,4"}]
    assert args.select_ids == [{"ccd": c} for c in (-1, 0, 1, 2)]
    assert args.config == ["doFoo=True", "x=1"] and args.config_files == ["a.py", "b.py"]


def test_unknown_make_warp_option_is_a_usage_error(repo: Path) -> None:
    result = runner.invoke(app, ["make-warp", str(repo), "--id", "tract=0", "--bogus"])
    assert result.exit_code == 2 and "No such option: --bogus" in result.output


def test_errors_give_command_line_advice(tmp_path: Path) -> None:
    err = DatasetExistsError("calexp {visit: 1} already exists", remedy=None)
    assert cli_message(err, COMMANDS["simulate"]) == "calexp {visit: 1} already exists"
    from repo_butler.errors import OVERWRITE_REMEDY

    err = DatasetExistsError("x exists", remedy=OVERWRITE_REMEDY)
    assert str(err) == "x exists; remove it first or pass overwrite=True"  # Python callers
    assert cli_message(err, COMMANDS["simulate"]) == "x exists; remove it first or pass --overwrite"
    assert cli_message(err, COMMANDS["ingest"]) == (
        "x exists; remove it first (rb remove) or write to another --rerun"
    )
    # the real thing, end to end: a second skymap, a second repository
    root = str(tmp_path / "r")
    assert _rb("simulate", root, "--visits", "1").returncode == 0
    out = _rb("make-skymap", root)
    assert out.returncode == 1
    assert out.stderr.strip().endswith("remove it first or pass --overwrite"), out.stderr
    out = _rb("create", root)
    assert out.returncode == 1 and "exist_ok" not in out.stderr
    assert "a repository already exists at" in out.stderr and "use it as it is" in out.stderr
    with pytest.raises(RepositoryExistsError, match=r"or pass exist_ok=True$"):
        Butler.create(root)


def test_where_goes_after_w(repo: Path) -> None:
    out = _rb("query-datasets", str(repo), "calexp", "visit = 903988")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert 'give a where expression with -w/--where, e.g. -w "visit = 903988"' in out.stderr
    out = _rb("query-datasets", str(repo), "calexp", "-w", "visit = :v")  # no --bind here
    assert out.returncode == 1 and "bind" not in out.stderr
    first, shown, caret = out.stderr.splitlines()
    assert first == (
        "error: where expression: no value bound for :v at column 9; write the value in the "
        "expression"
    )
    assert caret.index("^") == shown.index(":v")
    out = _rb("query-datasets", str(repo), "calexp", "-w", "visit = 903988", "-f", "json")
    assert out.returncode == 0
    assert {r["data_id"]["ccd"] for r in json.loads(out.stdout)} == {9, 16, 17, 23, 24}


def test_old_spellings_still_work(tmp_path: Path) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text("dataset_types: {}\n")
    assert (
        runner.invoke(app, ["create", str(tmp_path / "a"), "--config", str(extra)]).exit_code == 0
    )
    assert (
        runner.invoke(app, ["create", str(tmp_path / "b"), "--config-file", str(extra)]).exit_code
        == 0
    )
    result = runner.invoke(
        app, ["simulate", str(tmp_path / "c"), "--config", "small", "--visits", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "simulated 2 CCD exposures (1 visits" in result.output


def test_make_warp_summary_fits_80_columns(
    repo: Path, make_warp_run: subprocess.CompletedProcess[str]
) -> None:
    summary = json.loads(make_warp_run.stdout)
    stderr = make_warp_run.stderr
    table = [line for line in stderr.splitlines() if line[:1] in "┏┃┡│└"]
    assert len(table) == 3 + 3 * 2 + 1 and max(len(line) for line in table) <= 80, stderr
    uris = [u for p in summary["patches"] for v in p["visits"] for u in v["outputs"].values()]
    assert len(uris) == 6
    lines = stderr.splitlines()
    for uri in uris:  # each path whole on one line, relative to the repository
        rel = uri.removeprefix(Path(repo).as_uri() + "/")
        assert rel.startswith("rerun/w/deepCoadd/HSC-I/0/5,4/"), uri
        assert any(line.split()[-1] == rel for line in lines), (rel, stderr)
    for p in summary["patches"]:
        for v in p["visits"]:  # good-pixel counts whole, in the visit's row
            row = next(line for line in table if line.startswith(f"│ {v['visit']}"))
            first = next(iter(v["goodpix"].items()))
            assert f"{first[0]}={first[1]}" in row


def test_provenance_table_and_json(
    repo: Path, make_warp_run: subprocess.CompletedProcess[str]
) -> None:
    args = ["provenance", str(repo), "deepCoadd_directWarp", "--rerun", "w", "-d", "tract=0",
            "-d", "patch=5,4", "-d", "filter=HSC-I", "-d", "visit=903988"]  # fmt: skip
    doc = json.loads(_rb(*args, "--format", "json").stdout)
    assert json.loads(_rb(*args, "--json").stdout) == doc  # the deprecated spelling
    text = _rb(*args).stdout
    assert f"task: {doc['task']}" in text
    assert f"inputs ({len(doc['inputs'])}):" in text
    calexps = [i for i in doc["inputs"] if i["dataset_type"] == "calexp"]
    for i in calexps:
        assert re.search(rf"calexp .*ccd={i['data_id']['ccd']}", text)
    assert "  makePsfMatched = true" in text
    assert max(len(line) for line in text.splitlines() if "calexp" in line) <= 100


def test_show_skymap_and_reindex_formats(repo: Path) -> None:
    as_json = json.loads(_rb("show-skymap", str(repo), "--tract", "0", "-f", "json").stdout)
    assert json.loads(_rb("show-skymap", str(repo), "--tract", "0", "--json").stdout) == as_json
    text = _rb("show-skymap", str(repo), "--tract", "0").stdout.splitlines()
    assert text[1].split() == ["patch", "#", "outer", "bbox", "(px)", "RA", "range", "(deg)",
                               "Dec", "range", "(deg)"]  # fmt: skip
    assert len(text) == 2 + len(as_json[0]["patches"]) and max(map(len, text)) <= 80
    row = next(line.split() for line in text[2:] if line.split()[0] == "5,4")
    patch = next(p for p in as_json[0]["patches"] if p["patch"] == "5,4")
    assert row[1] == str(patch["sequential"]) == "41"  # 9 patches a row: 4 * 9 + 5
    ras = [c[0] for c in patch["corners_radec"]]
    assert row[4] == f"{min(ras):.5f}..{max(ras):.5f}"


def test_reindex_and_migrate_formats(tmp_path: Path) -> None:
    root = str(tmp_path / "r")
    assert runner.invoke(app, ["simulate", root, "--visits", "1", "--no-skymap"]).exit_code == 0
    doc = json.loads(_rb("reindex", root, "-f", "json").stdout)
    text = _rb("reindex", root).stdout.splitlines()
    assert text[0] == f"registered {doc['total']} dataset(s)"
    assert f"  calexp: {doc['datasets']['calexp']}" in text and "runs: (root)" in text
    migrated = json.loads(_rb("migrate", root, "--dry-run", "-f", "json").stdout)
    assert migrated["up_to_date"] is True and migrated["upgrades"] == []
    assert _rb("migrate", root, "--dry-run").stdout.startswith(f"{migrated['root']} is up to date")


def test_demo_takes_a_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``rb demo -S``: the demo repository may be a URL; its PNGs then go to ./quicklook."""
    from warping.task.demo import DEMO_PATCH, run_demo

    monkeypatch.chdir(tmp_path)
    url = f"memory://rb-demo-{tmp_path.name}/repo"
    result = run_demo(
        url, ccd_size=(96, 192), storage_options={}, echo=lambda _line: None, coadd=False
    )  # the coadd step is the same for any location (tests/test_coadd_*.py)
    assert result.repo == url and len(result.warps) == 3 and result.coadd is None
    with Butler(url, rerun="ci_hsc", writeable=False) as butler:
        refs = butler.query_datasets("deepCoadd_directWarp", data_id=DEMO_PATCH)
        assert sorted(r.uri for r in refs) == sorted(result.warps)
    assert all(Path(p).parent == tmp_path / "quicklook" and Path(p).is_file() for p in result.pngs)
    assert Path(result.coverage_png).is_file()
