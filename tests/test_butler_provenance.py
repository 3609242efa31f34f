"""Provenance records: secret scrubbing, serialisation, software versions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from repo_butler import DataId, DatasetRef, Provenance, ProvenanceInput, software_versions
from repo_butler.errors import ConfigError
from repo_butler.provenance import REDACTED, scrub_secrets


@pytest.mark.parametrize(
    "key",
    ["password", "db_passwd", "aws_secret_access_key", "api_key", "apiKey", "token",
     "session_token", "credentials", "Authorization", "private_key", "key", "s3.key"],
)  # fmt: skip
def test_secret_keys_are_redacted(key: str) -> None:
    assert scrub_secrets({key: "value", "nested": [{key: 1}]}) == {
        key: REDACTED,
        "nested": [{key: REDACTED}],
    }


@pytest.mark.parametrize("key", ["kernel", "monkey", "keys", "n_iterations", "filter", "visit"])
def test_ordinary_keys_are_kept(key: str) -> None:
    assert scrub_secrets({key: "value"}) == {key: "value"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("s3://AK:SECRET@bucket/key", "s3://bucket/key"),
        ("https://user:pw@host:9000/x", "https://host:9000/x"),
        ("AKIAIOSFODNN7EXAMPLE", REDACTED),
        ("Bearer eyJhbGciOi", REDACTED),
        ("-----BEGIN RSA PRIVATE KEY-----\nMII", REDACTED),
        ("plain text", "plain text"),
    ],
)
def test_secret_values_are_redacted(value: str, expected: str) -> None:
    assert scrub_secrets({"anything": value}) == {"anything": expected}


def test_non_json_values_become_json() -> None:
    out = scrub_secrets({"t": (1, 2), "s": {3}, "f": 1.5, "n": None, "b": True, "o": np.float32(2)})
    assert out == {"t": [1, 2], "s": [3], "f": 1.5, "n": None, "b": True, "o": "2.0"}
    json.dumps(out)


def test_provenance_round_trip_and_scrubbed_on_construction() -> None:
    ref = DatasetRef("calexp", DataId(visit=1, ccd=2), "", "p", "file:///p", 3, "sha256:ab", "t")
    prov = Provenance(
        task="makeWarp",
        config={"password": "x", "kernel": "lanczos3"},
        inputs=(ProvenanceInput.from_ref(ref),),
        software={"numpy": "2"},
        start="2026-01-01T00:00:00+00:00",
        end="2026-01-01T00:00:01+00:00",
        host="h",
    )
    assert prov.config == {"password": REDACTED, "kernel": "lanczos3"}
    doc = prov.to_dict()
    assert doc["inputs"] == [
        {
            "dataset_type": "calexp",
            "data_id": {"visit": 1, "ccd": 2},
            "run": "",
            "checksum": "sha256:ab",
        }
    ]
    assert Provenance.from_dict(json.loads(json.dumps(doc))) == prov
    with pytest.raises(ConfigError, match="task"):
        Provenance.from_dict({"config": {}})


def test_build_fills_software_host_and_times() -> None:
    prov = Provenance.build("t", {}, packages=("numpy", "no-such-distribution-xyz"))
    assert prov.software["numpy"] == np.__version__
    assert prov.software["no-such-distribution-xyz"] == "not installed"
    assert "python" in prov.software
    assert prov.host and prov.start <= prov.end


def test_software_versions_default() -> None:
    versions = software_versions()
    assert set(versions) == {"python", "repo-butler"}
