"""``import_gen3`` on real daf_butler export files: parsing, data IDs, transfers, partial and
repeated imports, skipped types and collections, missing files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from gen3_support import (
    CI_HSC,
    CI_RUN,
    GEN3_CALEXP_PATH,
    SKYMAP,
    V0_DATASETS,
    extended_export,
    load,
    small_fits,
    write_files,
)

from repo_butler import Butler
from repo_butler.errors import ConfigError, DatasetExistsError, QuerySyntaxError, StorageError
from repo_butler.gen3 import (
    Gen3ExportError,
    MissingFilesError,
    import_gen3,
    parse_export,
    run_name,
)
from repo_butler.gen3.export import Opaque
from warping.gen3_types import GEN3_TYPES

OUR_RUN = "HSC.runs.ci_hsc.20240806T180642Z"


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    """The real ci_hsc export's files, written as small FITS files under ``tmp_path/export``."""
    root = tmp_path / "export"
    write_files(load(CI_HSC), root)
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Butler:
    return Butler.create(str(tmp_path / "repo"))


def _calexps(butler: Butler, run: str = OUR_RUN) -> list:
    return butler.query_datasets("calexp", runs=[run])


def test_real_exports_parse() -> None:
    ci = load(CI_HSC)
    assert ci.version == "1.0.2" and len(ci.datasets) == 33
    assert list(ci.collections) == [CI_RUN] and ci.collections[CI_RUN].type == "RUN"
    assert ci.dataset_types["calexp"].storage_class == "ExposureF"
    first = ci.datasets[0]
    assert first.dataset_id == "1b3a4c19-dffa-4942-af1d-b123a1497a00"
    assert dict(first.data_id) == {"instrument": "HSC", "detector": 23, "visit": 903334}
    assert first.formatter is None  # daf_butler's test data names none
    region = ci.records["visit"][0]["region"]
    assert isinstance(region, Opaque) and region.tag == "lsst.sphgeom.ConvexPolygon"
    assert ci.records["day_obs"][0]["datetime_begin"] == "2013-06-17 00:00:00.000000000"
    v0 = load(V0_DATASETS)
    assert v0.version == "0" and len(v0.datasets) == 13  # 6 + 7 (the file's comment)
    assert list(v0.collections) == ["imported_g", "imported_r"]
    sky = load(SKYMAP).datasets[0]
    assert sky.formatter == "lsst.daf.butler.formatters.pickle.PickleFormatter"


def test_unsafe_yaml_is_never_executed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = (
        "description: Butler Data Repository Export\nversion: 1.0.2\ndata:\n"
        "- type: dimension\n  element: instrument\n  records:\n"
        "  - name: !!python/object/apply:os.system ['touch pwned']\n"
    )
    record = parse_export(text, source="evil.yaml").records["instrument"][0]
    assert record["name"] == Opaque("tag:yaml.org,2002:python/object/apply:os.system",
                                    ["touch pwned"])  # fmt: skip
    assert not (tmp_path / "pwned").exists()  # carried as data, never run
    with pytest.raises(Gen3ExportError, match="not valid YAML"):
        parse_export("description: [unclosed\n", source="bad.yaml")
    with pytest.raises(Gen3ExportError, match="not a daf_butler export"):
        parse_export("a: 1\n", source="x.yaml")
    with pytest.raises(Gen3ExportError, match=r"version '7\.0'"):
        parse_export(
            "description: Butler Data Repository Export\nversion: 7.0\ndata: []\n", source="y"
        )


def test_copy_imports_every_calexp_with_native_data_ids(repo: Butler, exported: Path) -> None:
    export = load(CI_HSC)
    report = import_gen3(repo, export, GEN3_TYPES, root=str(exported))
    assert report.complete and report.imported == {"calexp": 33}
    assert report.runs == {CI_RUN: OUR_RUN}
    refs = _calexps(repo)
    assert len(refs) == 33
    by_id = {(r.data_id["visit"], r.data_id["ccd"]): r for r in refs}
    for ds in export.datasets:
        # independent truth: Gen3's own file template put physical filter and visit in the path
        match = GEN3_CALEXP_PATH.search("/" + ds.path)
        assert match is not None, ds.path
        _day_obs, band, physical, visit = match.groups()
        ref = by_id[(int(visit), ds.data_id["detector"])]
        assert dict(ref.data_id) == {
            "pointing": int(visit), "filter": physical, "visit": int(visit),
            "ccd": ds.data_id["detector"],
        }  # fmt: skip
        assert ref.data_id["filter"].lower().endswith(band)
        with repo.open_file(ref) as fh:
            assert fh.read() == small_fits(ds.dataset_id)
    # Gen3's names work as aliases of this repository's dimensions
    one = repo.query_datasets("calexp", "detector = 23 AND physical_filter = 'HSC-R'",
                              runs=[OUR_RUN])  # fmt: skip
    assert [dict(r.data_id) for r in one] == [
        {"pointing": 903334, "filter": "HSC-R", "visit": 903334, "ccd": 23}
    ]


def test_symlink_and_direct(tmp_path: Path, exported: Path) -> None:
    export = load(CI_HSC)
    sources = {
        (ds.data_id["visit"], ds.data_id["detector"]): exported / ds.path for ds in export.datasets
    }
    linked = Butler.create(str(tmp_path / "linked"))
    import_gen3(linked, export, GEN3_TYPES, root=str(exported), transfer="symlink")
    direct = Butler.create(str(tmp_path / "direct"))
    import_gen3(direct, export, GEN3_TYPES, root=str(exported), transfer="direct")
    for ref in _calexps(linked):
        local = ref.uri.removeprefix("file://")
        assert os.path.islink(local) and local.startswith(str(tmp_path / "linked"))
        assert os.path.realpath(local) == str(sources[(ref.data_id["visit"], ref.data_id["ccd"])])
    refs = _calexps(direct)
    assert len(refs) == 33
    for ref in refs:
        assert ref.uri == "file://" + str(sources[(ref.data_id["visit"], ref.data_id["ccd"])])
    assert not (tmp_path / "direct" / "rerun" / OUR_RUN / "903334").exists()  # nothing copied
    one = Butler(str(tmp_path / "direct"), rerun=OUR_RUN).get_ref("calexp", visit=903334,
                                                                  detector=23)  # fmt: skip
    assert one.size == len(sources[(903334, 23)].read_bytes())


def test_second_import_is_idempotent(repo: Butler, exported: Path) -> None:
    first = import_gen3(repo, str(CI_HSC), GEN3_TYPES, root=str(exported))
    rows = _all_rows(repo)
    again = import_gen3(repo, str(CI_HSC), GEN3_TYPES, root=str(exported))
    assert first.imported == {"calexp": 33} and again.imported == {}
    assert again.already_present == {"calexp": 33} and again.complete
    assert _all_rows(repo) == rows


def test_changed_file_on_reimport_is_refused_and_nothing_added(
    repo: Butler, exported: Path
) -> None:
    export = load(CI_HSC)
    import_gen3(repo, export, GEN3_TYPES, root=str(exported), where="visit = 903334")
    before = _all_rows(repo)
    (exported / export.datasets[0].path).write_bytes(small_fits("changed"))
    with pytest.raises(DatasetExistsError, match="other content"):
        import_gen3(repo, export, GEN3_TYPES, root=str(exported))
    assert _all_rows(repo) == before


def test_where_and_dataset_type_filters(repo: Butler, exported: Path) -> None:
    export = load(CI_HSC)
    expected = {
        (ds.data_id["visit"], ds.data_id["detector"])
        for ds in export.datasets
        if 10 <= ds.data_id["detector"] <= 20 and "/HSC-I/" in ds.path
    }
    report = import_gen3(repo, export, GEN3_TYPES, root=str(exported),
                         where="detector IN (10..20) AND band = 'i'")  # fmt: skip
    got = {(r.data_id["visit"], r.data_id["ccd"]) for r in _calexps(repo)}
    assert got == expected and report.imported == {"calexp": len(expected)} and expected
    with pytest.raises(QuerySyntaxError, match="ccd"):
        import_gen3(repo, export, GEN3_TYPES, root=str(exported), where="ccd = 1")


def test_collections_chains_and_tagged(tmp_path: Path, exported: Path) -> None:
    path = extended_export(tmp_path)
    export = load(path)
    write_files(export, exported)
    only = Butler.create(str(tmp_path / "only"))
    report = import_gen3(only, export, GEN3_TYPES, root=str(exported),
                         collections=["HSC/runs/other"])  # fmt: skip
    assert report.imported == {"calexp": 1} and set(only.registry.runs()) == {"", "HSC.runs.other"}
    reasons = {s.dataset_type: s.reason for s in report.skipped}
    assert "not one this repository imports" in reasons["src"]
    assert "ParquetFormatter is not one we read" in reasons["calexp"]
    assert not report.complete

    full = Butler.create(str(tmp_path / "full"))
    report = import_gen3(full, export, GEN3_TYPES, root=str(exported),
                         collections=["HSC/defaults"])  # fmt: skip
    assert report.imported == {"calexp": 34}
    runs = full.registry.runs()
    assert runs["HSC.defaults"] == ("HSC.runs.other", OUR_RUN)  # the chain's order
    assert "HSC/tagged" in report.skipped_collections
    # reading through the chain finds the first member's calexp, as Gen3 would
    chained = Butler(str(tmp_path / "full"), rerun="HSC.defaults")
    ref = chained.get_ref("calexp", visit=903334, detector=23)
    assert ref.run == "HSC.runs.other"
    assert len(chained.query_datasets("calexp")) == 33

    tagged = Butler.create(str(tmp_path / "tagged"))
    report = import_gen3(tagged, export, GEN3_TYPES, root=str(exported),
                         collections=["HSC/tagged"])  # fmt: skip
    assert report.imported == {"calexp": 1}
    assert [dict(r.data_id)["ccd"] for r in _calexps(tagged)] == [23]


def test_unknown_types_and_pickled_skymaps_are_listed_and_skipped(
    tmp_path: Path, repo: Butler
) -> None:
    v0 = load(V0_DATASETS)
    report = import_gen3(repo, v0, GEN3_TYPES, root=str(tmp_path))  # no file is read
    assert report.imported == {} and len(report.skipped) == 13 and not report.complete
    assert {s.dataset_type for s in report.skipped} == {"bias", "flat"}
    sky = import_gen3(repo, load(SKYMAP), GEN3_TYPES, root=str(tmp_path))
    assert [s.dataset_type for s in sky.skipped] == ["skyMap"]
    assert "pickled" in sky.skipped[0].reason
    assert sum(1 for _ in repo.registry.all_records()) == 0


def test_missing_files_are_listed_and_nothing_is_registered(repo: Butler, exported: Path) -> None:
    export = load(CI_HSC)
    gone = [exported / export.datasets[i].path for i in (3, 17)]
    for path in gone:
        path.unlink()
    with pytest.raises(MissingFilesError, match="2 of the export's 33 files") as info:
        import_gen3(repo, export, GEN3_TYPES, root=str(exported))
    assert isinstance(info.value, StorageError)
    assert sorted(s for s, _ in info.value.missing) == sorted(str(p) for p in gone)
    assert sum(1 for _ in repo.registry.all_records()) == 0
    assert OUR_RUN not in repo.registry.runs()
    assert not (Path(repo.root.removeprefix("file://")) / "rerun").exists()


def test_run_names() -> None:
    assert run_name("HSC/runs/RC2/w_2024_10") == "HSC.runs.RC2.w_2024_10"
    with pytest.raises(ConfigError, match="no run name here"):
        run_name("u/me/2024-01-01T00:00:00Z")


def _all_rows(butler: Butler) -> list[tuple[str, str, str, str, str]]:
    """Every registry row (type, data ID, run, path, checksum), sorted."""
    return sorted(
        (r.dataset_type, r.data_id.key, r.run, r.path, r.checksum)
        for r in butler.registry.all_records()
    )


@pytest.mark.realdata
def test_real_cfht_calexps_and_visit_summaries(tmp_path: Path, shared_data: Path) -> None:
    """jointcal's real CFHT calexps and visitSummaries, exported Gen3-style (obs_cfht's data
    IDs) and imported ``direct``: the data IDs agree with what the files' own headers say, and
    both read back through the butler."""
    from warping.ingest_rules import data_id_from_exposure_file

    base = shared_data / "lsst-jointcal-cfht_minimal"
    visits = (849375, 850587)
    text = f"""\
description: Butler Data Repository Export
version: 1.0.2
data:
- type: dimension
  element: physical_filter
  records:
  - {{instrument: MegaPrime, name: r.MP9601, band: r}}
- type: dimension
  element: visit
  records:
  - {{instrument: MegaPrime, id: {visits[0]}, physical_filter: r.MP9601, day_obs: 20060520}}
  - {{instrument: MegaPrime, id: {visits[1]}, physical_filter: r.MP9601, day_obs: 20060602}}
- type: collection
  collection_type: RUN
  name: MegaPrime/runs/w_2021_46
"""
    for name, fmt, template, key in (
        ("calexp", "fitsExposure.FitsExposureFormatter", "calexp-{v}-12.fits.fz", "detector: 12, "),
        ("visitSummary", "fitsGeneric.FitsGenericFormatter", "visitSummary-{v}.fits", ""),
    ):
        text += f"- type: dataset\n  dataset_type: {name}\n  run: MegaPrime/runs/w_2021_46\n"
        text += "  records:\n"
        for n, v in enumerate(visits):
            text += (
                f"  - dataset_id: [!uuid '00000000-0000-4000-8000-{len(name):06d}{n:06d}']\n"
                f"    data_id: [{{instrument: MegaPrime, {key}visit: {v}}}]\n"
                f"    path: {template.format(v=v)}\n"
                f"    formatter: lsst.obs.base.formatters.{fmt}\n"
            )
    export = parse_export(text, source=str(base / "export.yaml"))
    repo = Butler.create(str(tmp_path / "repo"))
    report = import_gen3(repo, export, GEN3_TYPES, transfer="direct")
    assert report.imported == {"calexp": 2, "visitSummary": 2} and report.complete
    butler = Butler(str(tmp_path / "repo"), rerun="MegaPrime.runs.w_2021_46")
    for v in visits:
        ref = butler.get_ref("calexp", visit=v, detector=12)
        path = base / f"calexp-{v}-12.fits.fz"
        assert ref.uri == f"file://{path}"
        with path.open("rb") as fh:  # independent truth: the file's own header and archive
            found = data_id_from_exposure_file(
                fh, source=str(path), dimensions=("pointing", "filter", "visit", "ccd"), known={}
            )
        assert {k: ref.data_id[k] for k in found.values if k in ref.data_id} == {
            k: found.values[k] for k in ("visit", "ccd", "filter")
        }
        assert butler.get(ref).image.shape == (4612, 2048)
        summary = butler.get("visitSummary", visit=v, physical_filter="r.MP9601")
        assert summary.visit == v and 12 in summary.rows


def test_a_chain_never_changes_its_parents(tmp_path: Path, exported: Path) -> None:
    export = load(extended_export(tmp_path))
    write_files(export, exported)
    repo = Butler.create(str(tmp_path / "repo"))
    import_gen3(repo, export, GEN3_TYPES, root=str(exported), collections=["HSC/defaults"],
                where="visit = 903334 AND detector = 23")  # fmt: skip
    assert repo.registry.runs()["HSC.defaults"] == ("HSC.runs.other", OUR_RUN)
    rows = _all_rows(repo)
    narrower = "visit = 903334 AND detector = 22"  # only the ci_hsc run has a calexp there
    with pytest.raises(ConfigError, match="already exists with parents"):
        import_gen3(repo, export, GEN3_TYPES, root=str(exported),
                    collections=["HSC/defaults"], where=narrower)  # fmt: skip
    assert _all_rows(repo) == rows
