"""Benchmark reading through parent repositories (issue 25): look-ups and a whole make-warp.

Two parts, each against the same work without a chain, in the same run:

* **Look-ups** (``--n`` small JSON datasets, default 10⁴ = 100 visits x 100 CCDs, in a local
  repository P): get/s, exists/s by full data ID (2,000 random ones) and the median of a
  ``visit = V AND ccd IN (10..19)`` query, read from P itself, from a child whose parent is P
  (depth 1) and from a grandchild (depth 2). The children hold nothing of their own, so every
  look-up misses in each child's registry before it reaches P: the worst case.
* **make-warp** (whole ``rb make-warp`` processes, start-up included; the tests' small
  simulation, tract 0 patch 5,4, 3 warps of 5 CCDs each): in place (``--rerun``) against
  ``--output`` into a new repository that reads the input as its parent: locally, and with the
  input in one SeaweedFS bucket read by a read-only identity and the output in another bucket
  written by an identity that may use only that bucket.

Usage::

    .venv/bin/python bench/parent_chain.py [--n 10000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _results import Results

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the SeaweedFS helper and the small simulation

RB = str(Path(sys.executable).with_name("rb"))
ID_ARGS = ["--id", "tract=0", "patch=5,4", "filter=HSC-I"]
CONFIG = {
    "dataset_types": {
        "meta": {
            "dimensions": ["visit", "ccd"],
            "formatter": "json",
            "template": "meta/{visit:07d}/m-{ccd:03d}.json",
        }
    }
}
TARGETS = {  # set here (the issue names none): a chain must not make reads slow
    "depth-1 get/s ratio": (">=", 0.5),
    "depth-1 query ms": ("<=", 2.0),
}


def _lookups(work: Path, n: int, samples: int) -> dict[str, dict[str, float]]:
    import gc

    from repo_butler import Butler

    visits, ccds = max(n // 100, 1), 100
    parent = work / "P"
    with Butler.create(str(parent), config=CONFIG) as butler:
        items = [({"v": v, "c": c}, "meta", {"visit": v, "ccd": c})
                 for v in range(visits) for c in range(ccds)]  # fmt: skip
        butler.put_many(items)
    gc.collect()
    Butler.create(str(work / "C1"), config={**CONFIG, "parents": [{"url": str(parent)}]}).close()
    Butler.create(
        str(work / "C2"), config={**CONFIG, "parents": [{"url": str(work / "C1")}]}
    ).close()
    rng = random.Random(1)
    ids = [{"visit": rng.randrange(visits), "ccd": rng.randrange(ccds)} for _ in range(samples)]
    out: dict[str, dict[str, float]] = {}
    for label, root in (("direct", parent), ("depth 1", work / "C1"), ("depth 2", work / "C2")):
        with Butler(str(root), writeable=label != "direct") as butler:
            butler.get("meta", ids[0])  # formatter loaded, caches warm
            t0 = time.perf_counter()
            for did in ids:
                butler.get("meta", did)
            get_rate = len(ids) / (time.perf_counter() - t0)
            t0 = time.perf_counter()
            for did in ids:
                butler.exists("meta", did)
            exists_rate = len(ids) / (time.perf_counter() - t0)
            times = []
            for i in range(200):
                t0 = time.perf_counter()
                found = butler.query_datasets("meta", "visit = :v AND ccd IN (10..19)",
                                              bind={"v": i % visits})  # fmt: skip
                times.append(time.perf_counter() - t0)
                assert len(found) == 10
        out[label] = {"get/s": get_rate, "exists/s": exists_rate,
                      "query ms": statistics.median(times) * 1e3}  # fmt: skip
    return out


def _timed(argv: list[str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run([RB, *argv], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"rb {' '.join(argv[:3])} failed:\n{done.stderr[-2000:]}")
    return seconds


def _make_warps(work: Path, repeat: int) -> dict[str, float]:
    from scale_support import write_small_repo
    from servers.seaweed import SeaweedServer, cli_flags

    local_in = work / "in"
    write_small_repo(str(local_in)).close()
    best: dict[str, float] = {}

    def run(label: str, argv_of: Any) -> None:
        best[label] = min(_timed(argv_of(i)) for i in range(repeat))

    run("local, in place", lambda i: ["make-warp", str(local_in), "--rerun", f"w{i}", *ID_ARGS])
    run("local, --output", lambda i: ["make-warp", str(local_in), "--output",
                                      str(work / f"out{i}"), "--rerun", "w", *ID_ARGS])  # fmt: skip
    server = SeaweedServer(work / "seaweed").start()
    try:
        admin = server.storage_options()
        reader = server.storage_options(read_only=True)
        scoped = server.storage_options(scoped=True)
        s3_in = server.url("in")
        write_small_repo(s3_in, storage_options=admin).close()
        run("S3, in place", lambda i: ["make-warp", s3_in, "--rerun", f"w{i}", *ID_ARGS,
                                       *cli_flags(admin)])  # fmt: skip

        def chained(i: int) -> list[str]:
            out = f"s3://{server.output_bucket}/out-{uuid.uuid4().hex[:6]}"
            return ["make-warp", s3_in, "--output", out, "--rerun", "w", *ID_ARGS,
                    *cli_flags(scoped), *cli_flags(reader, "--parent-option", s3_in)]  # fmt: skip

        run("S3, --output (2 identities)", chained)
    finally:
        server.stop()
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="datasets in the parent")
    parser.add_argument("--samples", type=int, default=2000, help="gets/exists per case")
    parser.add_argument("--repeat", type=int, default=2, help="make-warp runs per case (best)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="parent-chain-", dir=HERE / "out"))
    try:
        looks = _lookups(work, args.n, args.samples)
        jobs = _make_warps(work, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    res = Results("parent_chain", "Reading through parent repositories")
    rows = []
    for label, figs in looks.items():
        rows.append([f"look-ups, {label}", f"{figs['get/s']:,.0f}", f"{figs['exists/s']:,.0f}",
                     f"{figs['query ms']:.2f}", ""])  # fmt: skip
        key = label.replace(" ", "-")
        res.figure(f"{key} get/s", round(figs["get/s"]), unit="1/s")
        res.figure(f"{key} exists/s", round(figs["exists/s"]), unit="1/s")
        res.figure(f"{key} query ms", round(figs["query ms"], 3), unit="ms")
    ratio = looks["depth 1"]["get/s"] / looks["direct"]["get/s"]
    res.figure("depth-1 get/s ratio", round(ratio, 3), note="chained get/s over direct get/s")
    for label, seconds in jobs.items():
        rows.append([f"make-warp, {label}", "", "", "", f"{seconds:.2f}"])
        res.figure(f"make-warp {label} s", round(seconds, 2), unit="s")
    for name, (op, target) in TARGETS.items():
        res.target(name, op, target)
    columns = ["case", "get/s", "exists/s", "query ms (median)", "make-warp wall s"]
    res.table(columns, rows)
    res.note(
        f"Look-ups: {args.n} JSON datasets in a local parent; {args.samples} random full data "
        "IDs; the children hold nothing, so each look-up misses in every child first."
    )
    res.note(
        f"make-warp: whole `rb make-warp` processes (start-up included), best of {args.repeat}; "
        "the tests' small simulation, tract 0 patch 5,4 (3 warps). S3 is a local SeaweedFS "
        "server; --output there reads the input bucket with a read-only identity and writes "
        "another bucket with an identity limited to it."
    )
    width = max(len(r[0]) for r in rows)
    print(f"{'case':<{width}}  {'get/s':>8}  {'exists/s':>8}  {'query ms':>8}  {'wall s':>7}")
    for r in rows:
        print(f"{r[0]:<{width}}  {r[1]:>8}  {r[2]:>8}  {r[3]:>8}  {r[4]:>7}")
    res.write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
