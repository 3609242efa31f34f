"""``rb import-gen3`` as a user runs it: summaries, exit status, one-line errors, an import from a
bucket, and make-warp on imported calexps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from cli_support import one_error_line, run_rb, write_small_cli_repo
from gen3_support import CI_HSC, EXPOSURE_FORMATTER, V0_DATASETS, load, write_files
from servers.fixtures import S3Root

from repo_butler import Butler

OUR_RUN = "HSC.runs.ci_hsc.20240806T180642Z"
GENERIC_FORMATTER = "lsst.obs.base.formatters.fitsGeneric.FitsGenericFormatter"


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    """The real ci_hsc export copied beside small FITS files at its paths."""
    root = tmp_path / "export"
    write_files(load(CI_HSC), root)
    (root / "export.yaml").write_bytes(CI_HSC.read_bytes())
    return root / "export.yaml"


def test_import_then_reimport(tmp_path: Path, exported: Path) -> None:
    repo = tmp_path / "repo"
    assert run_rb("create", str(repo)).returncode == 0
    out = run_rb("import-gen3", str(repo), str(exported), "--transfer", "symlink")
    assert out.returncode == 0, out.stderr
    assert "calexp: 33 imported, 0 already present" in out.stdout
    assert f"-> run {OUR_RUN}" in out.stdout
    again = run_rb("import-gen3", str(repo), str(exported), "--format", "json")
    assert again.returncode == 0, again.stderr
    doc = json.loads(again.stdout)
    assert doc["imported"] == {} and doc["already_present"] == {"calexp": 33}
    assert doc["complete"] is True
    listed = run_rb("query-datasets", str(repo), "calexp", "--rerun", OUR_RUN, "--where",
                    "detector = 23 AND visit = 903334", "--format", "json")  # fmt: skip
    assert [r["data_id"] for r in json.loads(listed.stdout)] == [
        {"pointing": 903334, "filter": "HSC-R", "visit": 903334, "ccd": 23}
    ]


def test_skipped_types_exit_3_and_are_listed(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run_rb("create", str(repo))
    out = run_rb("import-gen3", str(repo), str(V0_DATASETS))
    assert out.returncode == 3, out.stderr
    assert "skipped 6 bias: dataset type 'bias' is not one this repository imports" in out.stdout
    assert "skipped 7 flat" in out.stdout


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--collection", "nope"], ["no collection 'nope'", "HSC/runs/ci_hsc"]),
        (["--dataset-type", "src"], ["no dataset type 'src'", "calexp"]),
        (["--where", "visit = "], ["where", "column"]),
        (["--transfer", "move"], ["'move' is not one of 'copy', 'symlink', 'direct'"]),
    ],
)
def test_bad_selection_is_one_line(
    tmp_path: Path, exported: Path, argv: list[str], words: list[str]
) -> None:
    repo = tmp_path / "repo"
    run_rb("create", str(repo))
    out = run_rb("import-gen3", str(repo), str(exported), *argv)
    if argv[0] == "--transfer":  # typer's own usage error
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert all(w in out.stderr for w in words), out.stderr
        return
    line = one_error_line(out)
    assert all(w in line for w in words), line


def test_missing_files_and_bad_exports_are_one_line(tmp_path: Path, exported: Path) -> None:
    repo = tmp_path / "repo"
    run_rb("create", str(repo))
    victim = exported.parent / load(CI_HSC).datasets[5].path
    victim.unlink()
    line = one_error_line(run_rb("import-gen3", str(repo), str(exported)))
    assert "1 of the export's 33 files cannot be read" in line and str(victim) in line
    assert "nothing was imported" in line
    assert not (repo / "rerun").exists()
    (tmp_path / "not.yaml").write_text("hello: world\n")
    line = one_error_line(run_rb("import-gen3", str(repo), str(tmp_path / "not.yaml")))
    assert "not a daf_butler export" in line
    line = one_error_line(run_rb("import-gen3", str(repo), str(tmp_path / "absent.yaml")))
    assert "cannot read the export file" in line
    line = one_error_line(run_rb("import-gen3", str(tmp_path / "norepo"), str(exported)))
    assert "norepo" in line


@pytest.mark.s3
def test_import_from_a_bucket(tmp_path: Path, s3_root: S3Root) -> None:
    """Export and files in SeaweedFS; ``direct`` registers the bucket URLs, ``copy`` copies."""
    export = load(CI_HSC)
    local = tmp_path / "files"
    write_files(export, local)
    fs = s3_root.server.admin_fs
    chosen = [ds for ds in export.datasets if ds.data_id["visit"] == 903334][:3]
    for ds in chosen:
        fs.pipe_file(f"{s3_root.path}/exp/{ds.path}", (local / ds.path).read_bytes())
    fs.pipe_file(f"{s3_root.path}/exp/export.yaml", CI_HSC.read_bytes())
    url = f"{s3_root.url}/exp/export.yaml"
    options = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
               for k, v in s3_root.storage_options.items()]  # fmt: skip
    opts = [a for o in options for a in ("-S", o)]
    where = "visit = 903334 AND detector IN (" + ", ".join(
        str(ds.data_id["detector"]) for ds in chosen
    ) + ")"  # fmt: skip
    for transfer in ("direct", "copy"):
        repo = tmp_path / transfer
        run_rb("create", str(repo))
        out = run_rb("import-gen3", str(repo), url, "--transfer", transfer, "--where", where,
                     *opts)  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert "calexp: 3 imported" in out.stdout
        with Butler(str(repo), rerun=OUR_RUN, storage_options=s3_root.storage_options) as b:
            refs = b.query_datasets("calexp")
            assert len(refs) == 3
            for ref in refs:
                assert ref.uri.startswith("s3://") == (transfer == "direct")
                with b.open_file(ref) as fh:
                    path = next(
                        d.path for d in chosen
                        if d.data_id["detector"] == ref.data_id["ccd"]
                    )  # fmt: skip
                    assert fh.read() == (local / path).read_bytes()


def _gen3_export_of(src: Butler, run: str) -> dict:
    """A Gen3 export (daf_butler's schema, version 1.0.2) of the calexps, backgrounds and sky
    corrections of a simulated repository: what `butler export` writes for the same files."""
    refs = {t: src.query_datasets(t) for t in ("calexp", "calexpBackground", "skyCorr")}
    visits = {(r.data_id["visit"], r.data_id["filter"]) for r in refs["calexp"]}
    ccds = sorted({r.data_id["ccd"] for r in refs["calexp"]})
    filters = sorted({f for _, f in visits})
    data: list[dict] = [
        {"type": "dimension", "element": "instrument", "records": [{"name": "HSC"}]},
        {"type": "dimension", "element": "physical_filter", "records": [
            {"instrument": "HSC", "name": f, "band": f[-1].lower()} for f in filters]},
        {"type": "dimension", "element": "detector", "records": [
            {"instrument": "HSC", "id": c, "full_name": f"ccd{c}"} for c in ccds]},
        {"type": "dimension", "element": "visit", "records": [
            {"instrument": "HSC", "id": v, "physical_filter": f, "day_obs": 20130617}
            for v, f in sorted(visits)]},
        {"type": "collection", "collection_type": "RUN", "name": run},
    ]  # fmt: skip
    for name, formatter in (("calexp", EXPOSURE_FORMATTER), ("calexpBackground",
                            GENERIC_FORMATTER), ("skyCorr", GENERIC_FORMATTER)):  # fmt: skip
        data.append({"type": "dataset_type", "name": name, "storage_class": "X",
                     "dimensions": ["instrument", "detector", "visit", "band",
                                    "physical_filter", "day_obs"]})  # fmt: skip
        data.append({"type": "dataset", "dataset_type": name, "run": run, "records": [
            {"dataset_id": [f"{name}-{r.data_id['visit']}-{r.data_id['ccd']}"],
             "data_id": [{"instrument": "HSC", "detector": r.data_id["ccd"],
                          "visit": r.data_id["visit"]}],
             "path": r.path, "formatter": formatter}
            for r in refs[name]]})  # fmt: skip
    return {"description": "Butler Data Repository Export", "version": "1.0.2", "data": data}


@pytest.mark.slow
def test_make_warp_uses_imported_calexps(tmp_path: Path) -> None:
    """The simulated calexps, exported Gen3-style and imported into a new repository, give
    make-warp the same warps as in the repository they came from."""
    src_root = write_small_cli_repo(tmp_path / "src")
    with Butler(str(src_root)) as src:
        doc = _gen3_export_of(src, "HSC/runs/sim")
    (src_root / "export.yaml").write_text(yaml.safe_dump(doc))
    dst = tmp_path / "dst"
    assert run_rb("create", str(dst)).returncode == 0
    with Butler(str(src_root)) as src, Butler(str(dst)) as b:  # the same sky map (Gen3's is a
        b.put(src.get("deepCoadd_skyMap"), "deepCoadd_skyMap", {})  # pickle, never imported)
    out = run_rb("import-gen3", str(dst), str(src_root / "export.yaml"), "-t", "symlink")
    assert out.returncode == 0, out.stderr
    assert "calexp: 4 imported" in out.stdout and "skyCorr: 4 imported" in out.stdout
    for repo, rerun in ((src_root, "w"), (dst, "HSC.runs.sim:w")):
        made = run_rb("make-warp", str(repo), "--rerun", rerun, "--id", "tract=0",
                      "filter=HSC-I", "--config", "doApplySkyCorr=True")  # fmt: skip
        assert made.returncode == 0, made.stderr
    with Butler(str(src_root), rerun="w") as a, Butler(str(dst), rerun="w") as b:
        ours = a.query_datasets("deepCoadd_directWarp", runs=["w"])
        theirs = b.query_datasets("deepCoadd_directWarp", runs=["w"])
        assert [r.data_id for r in ours] == [r.data_id for r in theirs] and ours
        for x, y in zip(ours, theirs, strict=True):
            wa, wb = a.get(x), b.get(y)
            np.testing.assert_array_equal(wa.image, wb.image)
            np.testing.assert_array_equal(wa.mask, wb.mask)
        # the warps' inputs name the imported visits and CCDs
        assert {r.data_id["visit"] for r in theirs} == {
            r.data_id["visit"] for r in b.query_datasets("calexp", runs=["HSC.runs.sim"])
        }
