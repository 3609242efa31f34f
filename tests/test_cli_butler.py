"""``rb`` butler commands through typer's CliRunner (and one real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from repo_butler import Butler, Provenance
from repo_butler.errors import ConfigError, DataIdError, DatasetNotFoundError, QuerySyntaxError
from repo_butler_cli.main import app

runner = CliRunner()

EXTRA = {
    "dataset_types": {
        "calexp_meta": {
            "dimensions": ["pointing", "filter", "visit", "ccd"],
            "formatter": "json",
            "template": "{pointing:05d}/{filter}/corr/META-{visit:07d}-{ccd:03d}.json",
        }
    }
}


@pytest.fixture
def repo(tmp_path: Path) -> str:
    config = tmp_path / "extra.yaml"
    config.write_text(yaml.safe_dump(EXTRA))
    root = str(tmp_path / "repo")
    result = runner.invoke(app, ["create", root, "--config", str(config)])
    assert result.exit_code == 0, result.output
    return root


def _json(args: list[str]) -> object:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_create_ingest_query_json(repo: str, tmp_path: Path) -> None:
    files = []
    for ccd in (16, 17, 30):
        f = tmp_path / "in" / "01178" / "HSC-I" / "corr" / f"META-0903988-{ccd:03d}.json"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps({"ccd": ccd}))
        files.append(str(f))
    result = runner.invoke(app, ["ingest", repo, "calexp_meta", *files, "--transfer", "copy"])
    assert result.exit_code == 0, result.output
    rows = _json(
        ["query-datasets", repo, "calexp_meta", "--where", "ccd IN (16..24)", "-f", "json"]
    )
    assert isinstance(rows, list) and len(rows) == 2
    assert list(rows[0]) == ["dataset_type", "data_id", "run", "uri", "size", "checksum"]
    assert rows[0]["data_id"] == {"pointing": 1178, "filter": "HSC-I", "visit": 903988, "ccd": 16}
    assert rows[0]["run"] == "" and rows[0]["checksum"].startswith("blake3:")
    assert rows[0]["size"] == Path(files[0]).stat().st_size
    ids = _json(["query-data-ids", repo, "ccd", "visit", "-d", "visit=903988", "-f", "json"])
    assert ids == [{"visit": 903988, "ccd": c} for c in (16, 17, 30)]
    table = runner.invoke(app, ["query-datasets", repo, "calexp_meta"]).stdout
    assert table.splitlines()[0].split() == ["dataset_type", "run", "data_id", "size", "path"]
    assert len(table.splitlines()) == 4
    where = ["--where", "ccd IN (16..24)"]
    table = runner.invoke(app, ["query-datasets", repo, "calexp_meta", *where]).stdout
    root = Path(repo).resolve().as_uri()  # the table's paths: the URIs, relative to the repository
    assert [f"{root}/{line.split()[-1]}" for line in table.splitlines()[1:]] == [
        r["uri"] for r in rows
    ]


def test_ingest_with_data_id_and_rerun(repo: str, tmp_path: Path) -> None:
    f = tmp_path / "x.json"
    f.write_text("[1]")
    args = ["ingest", repo, "calexp_meta", str(f), "-t", "symlink", "--rerun", "r1"]
    args += ["-d", "pointing=1", "-d", "filter=HSC-R", "-d", "visit=5", "-d", "ccd=2"]
    assert runner.invoke(app, args).exit_code == 0
    assert Path(repo, "rerun/r1/00001/HSC-R/corr/META-0000005-002.json").is_symlink()
    rows = _json(["query-datasets", repo, "calexp_meta", "--rerun", "r1", "-f", "json"])
    assert [r["run"] for r in rows] == ["r1"]
    assert _json(["query-datasets", repo, "calexp_meta", "-f", "json"]) == []


def test_remove_verify_reindex_provenance(repo: str) -> None:
    with Butler(repo) as butler:
        butler.put({"a": 1}, "calexp_meta", pointing=1, filter="g", visit=1, ccd=1)
        prov = Provenance.build("t", {"n": 3})
        butler.put({"a": 2}, "calexp_meta", pointing=1, filter="g", visit=1, ccd=2, provenance=prov)
    doc = _json(["provenance", repo, "calexp_meta", "-d", "visit=1", "-d", "ccd=2", "-f", "json"])
    assert isinstance(doc, dict) and doc["task"] == "t" and doc["config"] == {"n": 3}
    result = runner.invoke(app, ["provenance", repo, "calexp_meta", "-d", "visit=1", "-d", "ccd=1"])
    assert isinstance(result.exception, DatasetNotFoundError)
    assert runner.invoke(app, ["verify", repo]).exit_code == 0
    Path(repo, "00001/g/corr/META-0000001-001.json").write_text('{"a":9}')  # same size
    result = runner.invoke(app, ["verify", repo, "-f", "json"])
    assert result.exit_code == 1
    assert [p["kind"] for p in json.loads(result.stdout)["problems"]] == ["checksum"]
    rm = runner.invoke(
        app,
        ["remove", repo, "calexp_meta", "--force", "--yes",
         "-d", "pointing=1", "-d", "filter=g", "-d", "visit=1", "-d", "ccd=1"],
    )  # fmt: skip
    assert rm.exit_code == 0, rm.output
    Path(repo, "registry.sqlite3").unlink()
    report = _json(["reindex", repo, "-f", "json"])
    assert isinstance(report, dict) and report["total"] == 1
    doc = _json(["provenance", repo, "calexp_meta", "-d", "visit=1", "-d", "ccd=2", "--json"])
    assert isinstance(doc, dict) and doc["task"] == "t"


def test_where_syntax_error_points_at_column(repo: str) -> None:
    result = runner.invoke(app, ["query-datasets", repo, "calexp_meta", "-w", "visit = 1 AND"])
    assert isinstance(result.exception, QuerySyntaxError)
    assert "column 14" in str(result.exception)


def test_console_script_prints_one_error_and_exits_1(repo: str) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from repo_butler_cli.main import main; main()",
            "query-datasets",
            repo,
            "nosuch",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: unknown dataset type 'nosuch'")
    assert "Traceback" not in proc.stderr


def test_storage_options_dotted_keys_nest_and_values_decode() -> None:
    from repo_butler_cli.support import parse_storage_options

    opts = parse_storage_options(
        [
            "key=abc",
            "endpoint_url=http://127.0.0.1:9000",
            "config_kwargs.connect_timeout=5",
            "config_kwargs.retries.total_max_attempts=4",
            "anon=false",
        ]
    )
    assert opts == {
        "key": "abc",
        "endpoint_url": "http://127.0.0.1:9000",
        "config_kwargs": {"connect_timeout": 5, "retries": {"total_max_attempts": 4}},
        "anon": False,
    }
    with pytest.raises(ConfigError, match="already set"):
        parse_storage_options(["a=1", "a.b=2"])


def test_create_with_a_preset(tmp_path: Path) -> None:
    bare = str(tmp_path / "bare")
    result = runner.invoke(app, ["create", bare, "--preset", "minimal"])
    assert result.exit_code == 0, result.output
    written = yaml.safe_load((tmp_path / "bare" / "butler.yaml").read_text())
    assert list(written["dimensions"]) == ["name"]
    assert written["dataset_types"] == {}
    default = tmp_path / "default"
    assert runner.invoke(app, ["create", str(default)]).exit_code == 0
    assert "calexp" in yaml.safe_load((default / "butler.yaml").read_text())["dataset_types"]
    result = runner.invoke(app, ["create", str(tmp_path / "x"), "--preset", "nosuch"])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    assert "no repository preset named 'nosuch'" in str(result.exception)


def test_remove_is_explicit_listed_and_confirmed(repo: str) -> None:
    """Issue 20, point 3: a complete data ID or --where, a list first, a confirmation, and
    --force for the root run (the inputs)."""
    with Butler(repo) as butler:
        butler.put({"a": 1}, "calexp_meta", pointing=1, filter="g", visit=1, ccd=1)
    with Butler(repo, rerun="out") as butler:
        for ccd in (1, 2, 3):
            butler.put({"b": ccd}, "calexp_meta", pointing=1, filter="g", visit=1, ccd=ccd)
    base = ["remove", repo, "calexp_meta"]
    partial = runner.invoke(app, [*base, "--rerun", "out", "--yes", "-d", "visit=1", "-d", "ccd=1"])
    assert isinstance(partial.exception, DataIdError)
    assert "does not name pointing, filter" in str(partial.exception)
    full = ["-d", "pointing=1", "-d", "filter=g", "-d", "visit=1", "-d", "ccd=1"]
    root = runner.invoke(app, [*base, "--yes", *full])
    assert isinstance(root.exception, DataIdError) and "--force" in str(root.exception)
    dry = runner.invoke(app, [*base, "--rerun", "out", "-w", "ccd >= 2", "--dry-run"])
    assert dry.exit_code == 0 and dry.stdout.count("would remove") == 2
    unasked = runner.invoke(app, [*base, "--rerun", "out", "-w", "ccd >= 2"])
    assert isinstance(unasked.exception, DataIdError) and "--yes" in str(unasked.exception)
    with Butler(repo, rerun="out") as butler:
        assert len([r for r in butler.query_datasets("calexp_meta") if r.run == "out"]) == 3
    done = runner.invoke(app, [*base, "--rerun", "out", "-w", "ccd >= 2", "--yes"])
    assert done.exit_code == 0, done.output
    with Butler(repo, rerun="out") as butler:
        left = [
            int(r.data_id["ccd"]) for r in butler.query_datasets("calexp_meta") if r.run == "out"
        ]
        assert left == [1]
    with Butler(repo) as butler:  # the root run's input is untouched
        assert butler.get("calexp_meta", pointing=1, filter="g", visit=1, ccd=1) == {"a": 1}


def test_query_says_which_runs_it_searched(repo: str) -> None:
    """Issue 20, point 7: a query of the root run says the reruns it did not search."""
    with Butler(repo, rerun="r1") as butler:
        butler.put({"a": 1}, "calexp_meta", pointing=1, filter="g", visit=1, ccd=1)
    with Butler(repo, rerun="r2") as butler:
        butler.put({"a": 2}, "calexp_meta", pointing=1, filter="g", visit=1, ccd=2)
    res = runner.invoke(app, ["query-datasets", repo, "calexp_meta", "-f", "json"])
    assert res.exit_code == 0 and json.loads(res.stdout) == []
    assert "searched run(s): (root); not searched: r1, r2 (--rerun NAME or --all-reruns)" in (
        res.stderr
    )
    rows = _json(["query-datasets", repo, "calexp_meta", "--all-reruns", "-f", "json"])
    assert isinstance(rows, list) and sorted(r["run"] for r in rows) == ["r1", "r2"]
    res = runner.invoke(app, ["query-datasets", repo, "calexp_meta", "--rerun", "r1"])
    assert "searched run(s): r1, (root); not searched: r2" in res.stderr
