"""The bucket registries at 10^4-10^6 datasets: the Delta Lake registry against the SQLite object.

Issue #23 asks for a bucket registry whose commits cost the same at any size. For each size N
(default 10^4, 10^5, 10^6) on a private SeaweedFS server (``weed mini`` on 127.0.0.1):

* **Delta registry** (``registry: {type: delta}``): the N rows (N/100 visits x 100 CCDs) are
  *generated directly into the table* as event rows, 10^5 per commit, then compacted, without
  dataset files (writing 10^6 objects would measure SeaweedFS, not the registry). Then, through
  :class:`~repo_butler.registry.delta.DeltaRegistry`:

  - a new process's cold open (replays every event into its SQLite copy) and its peak RSS;
  - 110 commits of a 100-dataset batch (so one compaction and one checkpoint happen): median,
    p90 and slowest time, the median bytes one uploaded and the most (the commit that compacts;
    objects new after the commit; the checkpoint ``deltalake`` writes every 100 versions is
    reported separately, as the largest checkpoint file);
  - a ``where`` query (visit + CCD range) median and p90, each with its freshness check (one
    LIST of the commit log): what a reader waits for;
  - find/s (the registry lookup of ``get``/``exists``), with the freshness check every call
    (``max_staleness`` 0) and within ``max_staleness``;
  - a writer that must first replay another writer's 100-dataset commit.

* **SQLite object** (today's default): each commit uploads the whole ``registry.sqlite3``; its
  size with the same N rows, built locally, is the bytes per commit.

* **Small repository** (1,100 datasets written through the Butler, files included), both
  registries: put/s single and in batches of 100, get/s, exists/s, query median.

Run alone on an idle machine::

    .venv/bin/python bench/bucket_registry_scale.py --sizes 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from _results import Results  # noqa: E402
from butler_scale import CONFIG as SMALL_CONFIG  # noqa: E402  (the same blob dataset type)

N_CCDS = 100
DIMS = ("visit", "ccd")
#: Commits measured per size: past a multiple of 100 versions, so one compaction (and the
#: checkpoint ``deltalake`` writes every 100 versions) falls inside the measurement.
N_COMMITS = 110
TARGETS = {"bytes per 100-dataset commit": ("<=", 2**20), "where query median ms": ("<=", 50.0)}


def _records(visits: range, universe: Any, run: str = "") -> list[Any]:
    from repo_butler import DataId
    from repo_butler.registry import DatasetRecord

    out = []
    for v in visits:
        for c in range(N_CCDS):
            did = DataId._trusted({"visit": v, "ccd": c})
            path = f"blob/{v:07d}/{c:03d}.json"
            digest = f"{(v * 131 + c) * 2654435761 % 2**64:016x}" * 4
            out.append(DatasetRecord("blob", did, run, path, 40, "blake3:" + digest,
                                     "2026-12-07T12:00:00.000000+00:00", None))  # fmt: skip
    return out


def _universe() -> Any:
    from repo_butler.config import RepoConfig, default_config

    return RepoConfig.from_mapping(default_config()).universe


def _objects(fs: Any, path: str) -> dict[str, int]:
    fs.invalidate_cache()
    return {p: info["size"] for p, info in fs.find(path, detail=True).items()}


def generate(fs: Any, table_path: str, n: int, options: dict[str, str]) -> float:
    """Write ``n`` insert events straight into a new registry table; return the seconds."""
    from deltalake import CommitProperties, DeltaTable, write_deltalake

    from repo_butler.registry.delta_log import Event, create_registry_table, events_to_arrow

    url = f"s3://{table_path}"
    t0 = time.perf_counter()
    create_registry_table(url, options)
    table = DeltaTable(url, storage_options=options)
    universe = _universe()
    step = 100_000 // N_CCDS
    for start in range(0, n // N_CCDS, step):
        stop = min(start + step, n // N_CCDS)
        events = [Event("insert", r) for r in _records(range(start, stop), universe)]
        write_deltalake(table, events_to_arrow(events, table.version() + 1), mode="append",
                        commit_properties=CommitProperties(max_commit_retries=0))  # fmt: skip
    table.optimize.compact()
    return time.perf_counter() - t0


def measure_delta(n: int, server_json: str) -> dict[str, float]:
    import s3fs

    from repo_butler.registry.delta import DeltaRegistry
    from repo_butler.registry.delta_log import delta_storage_options

    info = json.loads(server_json)
    fs = s3fs.S3FileSystem(**info["options"])
    table_path = f"{info['bucket']}/scale-{n}/registry.delta"
    out: dict[str, float] = {}
    out["generate s"] = generate(fs, table_path, n, delta_storage_options(fs))
    universe = _universe()
    t0 = time.perf_counter()
    reg = DeltaRegistry(fs, table_path, universe, compact_every=100)
    out["cold open s"] = time.perf_counter() - t0
    out["cold open peak RSS MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n_visits = n // N_CCDS
    walls, sizes = [], []
    for i in range(N_COMMITS):
        before = _objects(fs, table_path)
        t0 = time.perf_counter()
        with reg.batch():
            for rec in _records(range(n_visits + i, n_visits + i + 1), universe):
                reg.insert(rec)
        walls.append(time.perf_counter() - t0)
        after = _objects(fs, table_path)
        new = {p: s for p, s in after.items() if p not in before and "checkpoint" not in p}
        sizes.append(sum(new.values()))
    walls.sort()
    out["commit of 100 median ms"] = statistics.median(walls) * 1e3
    out["commit of 100 p90 ms"] = walls[int(0.9 * len(walls))] * 1e3
    out["slowest commit of 100 ms (compaction)"] = walls[-1] * 1e3
    sizes.sort()
    out["bytes per 100-dataset commit"] = float(statistics.median(sizes))
    out["largest upload of one commit (compaction) KiB"] = sizes[-1] / 1024
    checkpoints = [s for p, s in _objects(fs, table_path).items() if "checkpoint" in p]
    out["largest checkpoint KiB"] = max(checkpoints, default=0) / 1024
    import random

    rng = random.Random(1)
    q = []
    for _ in range(100):
        v = rng.randrange(n_visits)
        t0 = time.perf_counter()
        rows = reg.query("blob", [""], where=f"visit = {v} AND ccd IN (10..19)", dimensions=DIMS)
        q.append(time.perf_counter() - t0)
        assert len(rows) == 10, len(rows)
    q.sort()
    out["where query median ms"] = statistics.median(q) * 1e3
    out["where query p90 ms"] = q[int(0.9 * len(q))] * 1e3
    from repo_butler import DataId

    ids = [DataId._trusted({"visit": rng.randrange(n_visits), "ccd": 7}) for _ in range(200)]
    t0 = time.perf_counter()
    assert all(reg.find("blob", d, [""]) for d in ids)
    out["find/s, fresh check each"] = len(ids) / (time.perf_counter() - t0)
    reg.max_staleness = 60.0
    t0 = time.perf_counter()
    for d in ids * 10:
        reg.find("blob", d, [""])
    out["find/s, max_staleness 60 s"] = 10 * len(ids) / (time.perf_counter() - t0)
    other = DeltaRegistry(fs, table_path, universe, compact_every=0)
    with other.batch():
        for rec in _records(range(n_visits + 1000, n_visits + 1001), universe):
            other.insert(rec)
    reg.max_staleness = 0.0
    t0 = time.perf_counter()
    reg.insert(_records(range(n_visits + 2000, n_visits + 2001), universe)[0])
    out["write after another's commit ms"] = (time.perf_counter() - t0) * 1e3
    other.close()
    reg.close()
    out["peak RSS MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def measure_small(kind: str, server_json: str) -> dict[str, float]:
    """A small repository through the Butler (files and registry): put/get/exists/query."""
    from repo_butler import Butler

    info = json.loads(server_json)
    config = dict(SMALL_CONFIG)
    if kind == "delta":
        config["registry"] = {"type": "delta"}
    url = f"s3://{info['bucket']}/small-{kind}"
    out: dict[str, float] = {}
    with Butler.create(url, config=config, storage_options=info["options"]) as b:
        t0 = time.perf_counter()
        for c in range(100):
            b.put({"c": c}, "blob", visit=0, ccd=c)
        out["small: put/s, single"] = 100 / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for v in range(1, 11):
            with b.registry.batch():
                for c in range(100):
                    b.put({"c": c}, "blob", visit=v, ccd=c)
        out["small: put/s, batches of 100"] = 1000 / (time.perf_counter() - t0)
    with Butler(url, storage_options=info["options"]) as b:
        t0 = time.perf_counter()
        for c in range(300):
            b.get("blob", visit=c % 11, ccd=c % 100)
        out["small: get/s"] = 300 / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for c in range(300):
            b.exists("blob", visit=c % 11, ccd=c % 100)
        out["small: exists/s"] = 300 / (time.perf_counter() - t0)
        walls = []
        for v in range(100):
            t0 = time.perf_counter()
            b.query_datasets("blob", f"visit = {v % 11} AND ccd IN (10..19)")
            walls.append(time.perf_counter() - t0)
        out["small: query median ms"] = statistics.median(walls) * 1e3
    return out


def sqlite_object_bytes(n: int) -> float:
    """Bytes a commit of today's bucket registry uploads: the whole SQLite file."""
    from repo_butler.registry import SqliteRegistry

    with tempfile.TemporaryDirectory() as tmp:
        reg = SqliteRegistry(f"{tmp}/registry.sqlite3", _universe(), journal_mode="DELETE")
        with reg.batch():
            for rec in _records(range(n // N_CCDS), _universe()):
                reg.insert(rec)
        reg.close()
        return float(os.path.getsize(f"{tmp}/registry.sqlite3"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, arg = args.child
        if what in ("delta-small", "sqlite-small"):
            print(repr(measure_small(what.split("-")[0], arg)))
        else:
            print(repr(measure_delta(int(what), arg)))
        return
    from servers.seaweed import SeaweedServer

    results: dict[int, dict[str, float]] = {}
    small: dict[str, dict[str, float]] = {}

    def child(what: str, info: str) -> dict[str, float]:
        cmd = [sys.executable, __file__, "--child", what, info]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{what} failed:\n{proc.stderr[-3000:]}")
        result: dict[str, float] = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
        return result

    with tempfile.TemporaryDirectory(prefix="rb-bucket-scale-") as tmp:
        server = SeaweedServer(Path(tmp) / "weed")
        server.start()
        try:
            info = json.dumps({"options": server.storage_options(), "bucket": server.bucket})
            for kind in ("sqlite", "delta"):
                small[kind] = child(f"{kind}-small", info)
                print(f"# small {kind}: {small[kind]}", flush=True)
            for n in args.sizes:
                results[n] = child(str(n), info)
                if n <= 100_000:
                    results[n]["SQLite object: bytes per commit"] = sqlite_object_bytes(n)
                print(f"# {n}: {results[n]}", flush=True)
        finally:
            server.stop()
    report(results, args.sizes, small)


def report(
    results: dict[int, dict[str, float]], sizes: list[int], small: dict[str, dict[str, float]]
) -> None:
    res = Results("bucket_registry_scale", "Bucket registries at 10^4-10^6 datasets (SeaweedFS)")
    kinds = list(small)
    small_rows = []
    for metric in small[kinds[0]]:
        small_rows.append([metric, *(f"{small[k][metric]:,.1f}" for k in kinds)])
        for k in kinds:
            res.figure(f"{k} {metric}", small[k][metric])
    res.table(["small repository (1,100 datasets)", *(f"{k} registry" for k in kinds)],
              small_rows, title="Small repository through the Butler")  # fmt: skip
    metrics: list[str] = []
    for n in sizes:
        metrics += [m for m in results[n] if m not in metrics and not m.endswith("p90 ms")]
    columns = ["metric", *(f"{n:,}" for n in sizes)]
    rows = []
    for metric in metrics:
        row = [metric]
        for n in sizes:
            value = results[n].get(metric)
            p90 = results[n].get(metric.replace("median", "p90"))
            if value is None:
                row.append("-")
                continue
            res.figure(f"{n} {metric}", value)
            if "median ms" in metric and p90 is not None:
                row.append(f"{value:.1f} (p90 {p90:.1f})")
            elif "bytes" in metric:
                row.append(f"{value / 1024:,.1f} KiB")
            else:
                row.append(f"{value:,.1f}")
        rows.append(row)
    res.table(columns, rows)
    big = max(sizes)
    for metric, (op, target) in TARGETS.items():
        res.target(f"{big} {metric}", op, target)
    res.note(
        "Delta rows are generated straight into the table (no dataset files); queries include "
        "their freshness check (one LIST). SQLite object bytes = the registry file each commit "
        "of today's default bucket registry uploads (not built at 10^6: ~1 GiB)."
    )
    res.write()
    for cols, body in ((["small repository", *kinds], small_rows), (columns, rows)):
        width = [max(len(str(r[i])) for r in [cols, *body]) for i in range(len(cols))]
        for r in [cols, *body]:
            print("  ".join(str(c).ljust(w) for c, w in zip(r, width, strict=True)))
        print()


if __name__ == "__main__":
    main()
