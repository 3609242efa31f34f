"""Cloud end-to-end: a repository in a bucket survives its S3 server dying mid-batch.

A repository is created in a private SeaweedFS bucket, files are ingested, a second Butler (as
another machine would) queries them; then the server is SIGKILLed while a batch of puts is
running, restarted, and the batch is rerun. Afterwards the registry and the bucket agree
exactly: every dataset is stored once, readable and checksummed, nothing is half-visible.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from repo_configs import META_VISIT_CCD as CONFIG
from servers.requests import RequestCounter
from servers.seaweed import SeaweedServer

from repo_butler import Butler
from repo_butler.errors import StorageError
from repo_butler.maintenance import verify

pytestmark = [pytest.mark.s3, pytest.mark.slow]

BATCH = {(903988, ccd): {"visit": 903988, "ccd": ccd, "flux": ccd * 1.5} for ccd in range(12)}
KILL_AT_PUT = 10  # the 10th PutObject of the batch: a registry upload (data, registry, ...)


def _ingest_sources(tmp_path: Path) -> list[str]:
    paths = []
    for ccd in range(6):
        path = tmp_path / "raw" / "meta" / "0903986" / f"m-{ccd:03d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"visit": 903986, "ccd": ccd, "ingested": True}))
        paths.append(str(path))
    return paths


def test_kill_server_mid_batch_restart_and_rerun(
    seaweed_factory: Callable[..., SeaweedServer], tmp_path: Path
) -> None:
    server = seaweed_factory(bucket="cloud")
    url, opts = server.url("calexps/repo"), server.storage_options()

    # machine 1 creates the repository and ingests files; machine 2 queries them
    Butler.create(url, config=CONFIG, storage_options=opts).close()
    with Butler(url, storage_options=opts) as writer:
        assert len(writer.ingest("meta", _ingest_sources(tmp_path))) == 6
    with Butler(url, storage_options=opts, writeable=False) as reader:
        assert len(reader.query_datasets("meta", "visit = 903986")) == 6
        assert reader.get("meta", visit=903986, ccd=4)["ingested"] is True

    # a batch of puts; the server is SIGKILLed just as the KILL_AT_PUT-th PUT goes out
    puts = {"n": 0}

    def kill_on_put(event_name: str = "", **kwargs: Any) -> None:
        if event_name.endswith(".PutObject"):
            puts["n"] += 1
            if puts["n"] == KILL_AT_PUT:
                server.kill()

    stored_before_crash = 0
    with Butler(url, storage_options=opts) as writer:
        writer.datastore.fs.s3.meta.events.register(
            "before-send.s3", kill_on_put, unique_id="kill-on-put"
        )
        try:
            with pytest.raises(StorageError, match=server.endpoint_url):
                for (visit, ccd), payload in BATCH.items():
                    writer.put(payload, "meta", visit=visit, ccd=ccd)
                    stored_before_crash += 1
        finally:
            writer.datastore.fs.s3.meta.events.unregister("before-send.s3", unique_id="kill-on-put")
    assert not server.running
    assert stored_before_crash == KILL_AT_PUT // 2 - 1  # the killed PUT was a registry upload

    server.start()  # same endpoint, same data directory

    # after the crash: the registry is consistent; the one dataset whose registry upload was
    # lost is a stray file (not half-visible: no query returns it), nothing else is wrong
    with Butler(url, storage_options=opts, writeable=False) as reader:
        report = verify(reader)
        assert {p.kind for p in report.problems} == {"unregistered_file"}
        assert [p.path for p in report.problems] == [
            f"meta/0903988/m-{stored_before_crash:03d}.json"
        ]
        visible = reader.query_datasets("meta", "visit = 903988")
        assert len(visible) == stored_before_crash
        for ref in visible:
            assert reader.get(ref) == BATCH[(ref.data_id["visit"], ref.data_id["ccd"])]

    # rerun the batch: skip what is registered, (re)write the rest
    with Butler(url, storage_options=opts) as writer:
        counter = RequestCounter().attach(writer.datastore.fs)
        rewritten = 0
        for (visit, ccd), payload in BATCH.items():
            if not writer.exists("meta", visit=visit, ccd=ccd):
                writer.put(payload, "meta", visit=visit, ccd=ccd)
                rewritten += 1
        assert rewritten == len(BATCH) - stored_before_crash
        # data + registry per dataset, plus the stray file's refused If-None-Match PUT
        assert counter.counts["PutObject"] == 2 * rewritten + 1

    # final state, seen from a fresh "machine": everything exactly once, nothing stray
    with Butler(url, storage_options=opts, writeable=False) as reader:
        report = verify(reader)
        assert report.ok, report.problems
        refs = reader.query_datasets("meta")
        assert len(refs) == 6 + len(BATCH)
        assert len({(r.data_id["visit"], r.data_id["ccd"]) for r in refs}) == len(refs)
        for (visit, ccd), payload in BATCH.items():
            assert reader.get("meta", visit=visit, ccd=ccd) == payload
    client = server.client()
    pending = client.list_multipart_uploads(Bucket="cloud", Prefix="calexps/repo/")
    assert pending.get("Uploads", []) == []
