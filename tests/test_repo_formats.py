"""Repository format versions: the committed fixture written by release 4b1deb4 still reads,
``rb migrate`` upgrades it (dry run, real run, no-op re-run, locally and on S3), and files of a
newer format version are refused with a message naming the file."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from astropy.io import fits
from repo_copy import copy_repo
from repo_fixture import compare, describe
from typer.testing import CliRunner

from repo_butler import Butler
from repo_butler.checksums import checksum_matches
from repo_butler.config import CONFIG_VERSION
from repo_butler.errors import ConfigError, RepoButlerError
from repo_butler.maintenance import verify
from repo_butler.migrate import migrate
from repo_butler.reindex import reindex
from repo_butler_cli.main import app
from warping.coadd_inputs import FORMAT_VERSION as INPUTS_VERSION
from warping.formats.migrations import register as register_warping_migrations

FIXTURE = Path(__file__).parent / "fixtures" / "repo-v1"
EXPECTED: dict[str, Any] = json.loads((FIXTURE.parent / "repo-v1.expected.json").read_text())
RERUN = EXPECTED["rerun"]
WARP = "deepCoadd_directWarp"
runner = CliRunner()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A private copy of the committed fixture (which is never modified)."""
    return copy_repo(FIXTURE, tmp_path / "repo")


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith("registry.sqlite3")
    }


def _check_reads(root: str, storage_options: dict[str, Any] | None = None) -> dict[str, str]:
    """Every expected dataset is found, reads back what the generator described, and carries
    its provenance; returns the current checksums by path."""
    checksums: dict[str, str] = {}
    with Butler(root, rerun=RERUN, writeable=False, storage_options=storage_options) as butler:
        found = {
            (ref.dataset_type, json.dumps(ref.data_id.to_dict(), sort_keys=True), ref.run)
            for name in butler.dataset_types
            for ref in butler.query_datasets(name)
        }
        wanted = {
            (d["dataset_type"], json.dumps(d["data_id"], sort_keys=True), d["run"])
            for d in EXPECTED["datasets"]
        }
        assert found == wanted
        for entry in EXPECTED["datasets"]:
            name, data_id = entry["dataset_type"], entry["data_id"]
            obj = butler.get(name, data_id)
            where = f"{name} {data_id}"
            assert compare(describe(obj), entry["content"], where) == []
            prov = butler.get_provenance(name, data_id)
            assert (prov and prov.task) == entry["provenance_task"], where
            ref = butler.get_ref(name, data_id)
            checksums[entry["path"]] = ref.checksum
    return checksums


def test_fixture_is_small_and_self_contained() -> None:
    size = sum(p.stat().st_size for p in FIXTURE.rglob("*") if p.is_file())
    assert size < 1_500_000
    assert not list(FIXTURE.glob("registry.sqlite3-*"))
    kinds = {d["content"]["kind"] for d in EXPECTED["datasets"]}
    assert kinds == {"exposure", "background", "photocalib", "wcs", "skymap", "table"}
    assert any(d["dataset_type"] == WARP and d["run"] == RERUN for d in EXPECTED["datasets"])


def test_fixture_reads_with_this_release(repo: Path) -> None:
    checksums = _check_reads(str(repo))
    assert checksums == {d["path"]: d["checksum"] for d in EXPECTED["datasets"]}
    with Butler(str(repo), rerun=RERUN, writeable=False) as butler:
        assert verify(butler).ok
        calexps = butler.query_datasets("calexp", where="ccd = 16")
        assert {r.data_id["ccd"] for r in calexps} == {16} and len(calexps) == 2
        assert butler.search_runs == (RERUN, "")


def test_migrate_dry_run_then_upgrade_then_up_to_date(repo: Path) -> None:
    before = _snapshot(repo)
    dry = runner.invoke(app, ["migrate", str(repo), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"would upgrade rerun/{RERUN}/_run.json: run marker v0 -> v1" in dry.output
    assert "would upgrade butler.yaml: butler.yaml v1 -> v3" in dry.output
    warps = [d["path"] for d in EXPECTED["datasets"] if d["dataset_type"] == WARP]
    for path in warps:
        assert f"would upgrade {path}: warp inputs table v0 -> v{INPUTS_VERSION}" in dry.output
    assert f"{len(warps) + 2} file(s) would be upgraded" in dry.output
    assert _snapshot(repo) == before  # a dry run changes nothing

    done = runner.invoke(app, ["migrate", str(repo)])
    assert done.exit_code == 0, done.output
    assert f"upgraded rerun/{RERUN}/_run.json: run marker v0 -> v1" in done.output
    marker = json.loads((repo / "rerun" / RERUN / "_run.json").read_text())
    assert marker == {"format_version": 1, "run": RERUN, "parents": []}
    # butler.yaml v3 (via v2): the warping preset's Gen3 aliases added, everything else as it was
    old = yaml.safe_load((FIXTURE / "butler.yaml").read_text())
    new = yaml.safe_load((repo / "butler.yaml").read_text())
    assert new["version"] == CONFIG_VERSION == 3
    assert new["dimensions"]["ccd"] == {**old["dimensions"]["ccd"], "aliases": ["detector"]}
    assert new["dimensions"]["filter"]["implies"] == ["band"]
    strip = ("aliases", "implies")
    kept = {k: {f: v for f, v in d.items() if f not in strip} for k, d in new["dimensions"].items()}
    assert kept == old["dimensions"]
    assert {**new, "version": 1, "dimensions": old["dimensions"]} == old
    # the rewrite drops comments and layout: the file as it was is kept beside it
    assert (repo / "butler.yaml.v1").read_bytes() == (FIXTURE / "butler.yaml").read_bytes()
    for path in warps:
        with fits.open(repo / path) as hdul:
            tables = [h for h in hdul if h.header.get("RBEXT") == "COADD_INPUTS"]
            assert len(tables) == 2 and all(h.header["CIFMTV"] == INPUTS_VERSION for h in tables)

    again = runner.invoke(app, ["migrate", str(repo)])
    assert again.exit_code == 0 and "is up to date" in again.output, again.output

    # The migrated repository reads identically; registry and provenance follow the new bytes.
    checksums = _check_reads(str(repo))
    for entry in EXPECTED["datasets"]:
        changed = checksums[entry["path"]] != entry["checksum"]
        assert changed == (entry["path"] in warps)
    with Butler(str(repo), rerun=RERUN, writeable=False) as butler:
        assert verify(butler).ok
        for path in warps:
            entry = next(d for d in EXPECTED["datasets"] if d["path"] == path)
            doc = butler.get_provenance_dict(WARP, entry["data_id"])
            sidecar = json.loads((repo / f"{path}.provenance.json").read_text())
            assert doc == sidecar and doc["output"]["checksum"] == checksums[path]
    reindex(str(repo))  # markers and sidecars of the new versions rebuild the registry
    rebuilt = _check_reads(str(repo))
    assert rebuilt.keys() == checksums.keys()
    for path, old in checksums.items():  # files without a sidecar: rehashed in blake3
        data = (repo / path).read_bytes()
        assert rebuilt[path] == old or (
            rebuilt[path].startswith("blake3:") and checksum_matches(data, old)
        ), path
        assert checksum_matches(data, rebuilt[path])
    with Butler(str(repo), writeable=False) as butler:  # the Gen3 aliases now work
        by_alias = butler.query_datasets("calexp", data_id={"detector": 16, "exposure": 903986})
        assert [r.data_id["ccd"] for r in by_alias] == [16]


def test_migrate_is_resumable_after_a_crash_between_registry_and_file(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from repo_butler import migrate as migrate_module

    register_warping_migrations()
    calls: list[str] = []
    original = migrate_module.MigrationContext._update_record

    def crash_after_registry(self: Any, record: Any, data: bytes) -> None:
        original(self, record, data)
        calls.append(record.path)
        raise KeyboardInterrupt  # the process dies before the new file is swapped in

    monkeypatch.setattr(migrate_module.MigrationContext, "_update_record", crash_after_registry)
    with pytest.raises(KeyboardInterrupt):
        migrate(str(repo))
    monkeypatch.undo()
    assert len(calls) == 1
    report = migrate(str(repo))  # the old file is still there: it is upgraded again
    assert not report.up_to_date
    assert migrate(str(repo)).up_to_date
    _check_reads(str(repo))
    with Butler(str(repo), writeable=False) as butler:
        assert verify(butler).ok


def test_migrate_on_s3(s3_root: Any) -> None:
    fs = s3_root.server.admin_fs
    for path in sorted(p for p in FIXTURE.rglob("*") if p.is_file()):
        fs.pipe(f"{s3_root.path}/{path.relative_to(FIXTURE).as_posix()}", path.read_bytes())
    options = s3_root.storage_options
    _check_reads(s3_root.url, options)
    register_warping_migrations()
    dry = migrate(s3_root.url, storage_options=options, dry_run=True)
    assert len(dry.upgrades) == 2 + sum(d["dataset_type"] == WARP for d in EXPECTED["datasets"])
    assert not dry.applied
    done = migrate(s3_root.url, storage_options=options)
    assert done.applied == done.upgrades
    assert migrate(s3_root.url, storage_options=options).up_to_date
    _check_reads(s3_root.url, options)
    marker = json.loads(fs.cat_file(f"{s3_root.path}/rerun/{RERUN}/_run.json"))
    assert marker["format_version"] == 1


# -- newer versions are refused ---------------------------------------------------------------
def _entry(dataset_type: str) -> dict[str, Any]:
    return next(d for d in EXPECTED["datasets"] if d["dataset_type"] == dataset_type)


def _edit_fits(path: Path, edit: Callable[[fits.HDUList], None]) -> None:
    with fits.open(io.BytesIO(path.read_bytes())) as hdul:
        edit(hdul)
        buf = io.BytesIO()
        hdul.writeto(buf)
    path.write_bytes(buf.getvalue())


def _newer_config(root: Path) -> str:
    doc = yaml.safe_load((root / "butler.yaml").read_text())
    newer = {**doc, "version": CONFIG_VERSION + 1}
    (root / "butler.yaml").write_text(yaml.safe_dump(newer, sort_keys=False))
    return "butler.yaml"


def _newer_registry(root: Path) -> str:
    with sqlite3.connect(root / "registry.sqlite3") as conn:
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.close()
    return "registry.sqlite3"


def _newer_marker(root: Path) -> str:
    path = root / "rerun" / RERUN / "_run.json"
    path.write_text(json.dumps({"format_version": 2, "run": RERUN, "parents": []}))
    return "_run.json"


def _newer_run_config(root: Path) -> str:
    path = root / "rerun" / RERUN / "_config" / "makeWarp.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"format_version": 2, "task": "makeWarp", "run": RERUN}))
    return "_config/makeWarp.json"


def _newer_provenance(root: Path) -> str:
    path = root / f"{_entry(WARP)['path']}.provenance.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "schema_version": 2}))
    return ".provenance.json"


def _newer_warp_inputs(root: Path) -> str:
    def edit(hdul: fits.HDUList) -> None:
        for hdu in hdul:
            if hdu.header.get("RBEXT") == "COADD_INPUTS":
                hdu.header["CIFMTV"] = INPUTS_VERSION + 1

    _edit_fits(root / _entry(WARP)["path"], edit)
    return _entry(WARP)["path"]


def _newer_exposure(root: Path) -> str:
    from warping.formats.exposure_fits import FORMAT_VERSION

    path = _entry("calexp")["path"]
    _edit_fits(root / path, lambda hdul: hdul[0].header.set("RBFMTV", FORMAT_VERSION + 1))
    return path


def _newer_calib(root: Path) -> str:
    path = _entry("calexpBackground")["path"]
    _edit_fits(root / path, lambda hdul: hdul[0].header.set("RBFMTV", 2))
    return path


def _newer_skymap(root: Path) -> str:
    path = root / _entry("deepCoadd_skyMap")["path"]
    doc = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**doc, "format_version": 2}, sort_keys=False))
    return _entry("deepCoadd_skyMap")["path"]


NEWER = {
    "butler.yaml": _newer_config,
    "registry": _newer_registry,
    "run marker": _newer_marker,
    "provenance": _newer_provenance,
    "run config": _newer_run_config,
    "warp inputs": _newer_warp_inputs,
    "exposure": _newer_exposure,
    "calibration": _newer_calib,
    "skymap": _newer_skymap,
}


@pytest.mark.parametrize("kind", sorted(NEWER))
def test_migrate_refuses_a_newer_file_and_changes_nothing(repo: Path, kind: str) -> None:
    named = NEWER[kind](repo)
    before = _snapshot(repo)
    result = runner.invoke(app, ["migrate", str(repo)])
    assert result.exit_code != 0
    assert isinstance(result.exception, RepoButlerError)
    message = str(result.exception)
    assert named in message and "newer" in message and "upgrade repo-butler" in message
    assert _snapshot(repo) == before


@pytest.mark.parametrize("kind", ["warp inputs", "exposure", "calibration", "skymap"])
def test_reading_a_newer_dataset_says_to_upgrade(repo: Path, kind: str) -> None:
    named = NEWER[kind](repo)
    entry = next(d for d in EXPECTED["datasets"] if d["path"] == named)
    with (
        Butler(str(repo), rerun=RERUN, writeable=False) as butler,
        pytest.raises(RepoButlerError, match="upgrade repo-butler") as info,
    ):
        butler.get(entry["dataset_type"], entry["data_id"])
    assert named in str(info.value)


def test_reading_newer_provenance_and_markers_says_to_upgrade(repo: Path) -> None:
    _newer_provenance(repo)
    _newer_marker(repo)
    with pytest.raises(RepoButlerError, match=r"_run.json: run marker format version 2"):
        reindex(str(repo))


def test_reading_a_newer_run_config_says_to_upgrade(repo: Path) -> None:
    named = _newer_run_config(repo)
    with (
        Butler(str(repo), rerun=RERUN, writeable=False) as butler,
        pytest.raises(RepoButlerError, match="upgrade repo-butler") as info,
    ):
        butler.run_configs.get("makeWarp")
    assert named in str(info.value) and "run configuration record format version 2" in str(
        info.value
    )


def _console_migrate_fails(repo: Path) -> subprocess.CompletedProcess[str]:
    """``rb migrate REPO`` through the console entry point; it must fail with one error line."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from repo_butler_cli.main import main; main()",
            "migrate",
            str(repo),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    return proc


def test_console_script_refuses_newer_registry_without_traceback(repo: Path) -> None:
    _newer_registry(repo)
    proc = _console_migrate_fails(repo)
    assert "registry schema format version 2 is newer" in proc.stderr
    assert "upgrade repo-butler" in proc.stderr


def test_dry_run_opens_the_registry_read_only(repo: Path) -> None:
    """A dry run must work where nothing may be written: it never opens a writeable Butler."""
    from repo_butler.migrate import MigrationContext

    ctx = MigrationContext(str(repo), writeable=False)
    try:
        with pytest.raises(ConfigError, match="read-only"):
            ctx.butler.plan_put(WARP, EXPECTED["datasets"][0]["data_id"])
    finally:
        ctx.close()


@pytest.mark.parametrize("garbage", [b"{not json", b"[1, 2]x"])
def test_migrate_names_an_unreadable_file_without_traceback(repo: Path, garbage: bytes) -> None:
    marker = repo / "rerun" / RERUN / "_run.json"
    marker.write_bytes(garbage)
    proc = _console_migrate_fails(repo)
    assert "_run.json: cannot read its run marker version" in proc.stderr
    assert "repair or remove the file" in proc.stderr
