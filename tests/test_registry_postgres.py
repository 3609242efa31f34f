"""PostgreSQL registry specifics: read-only database roles, several repositories per database."""

from __future__ import annotations

from pathlib import Path

import pytest
from servers.postgres import PostgresServer

from repo_butler import Butler
from repo_butler.errors import RegistryError

pytestmark = pytest.mark.postgres

CONFIG = {
    "dataset_types": {
        "meta": {"dimensions": ["visit"], "formatter": "json", "template": "m/{visit:07d}.json"}
    }
}


def test_read_only_role_can_open_and_query(
    postgres: PostgresServer, postgres_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "repo"
    with Butler.create(root, config={**CONFIG, "registry": postgres_dsn}) as butler:
        for visit in range(3):
            butler.put({"v": visit}, "meta", visit=visit)
    database = postgres_dsn.rsplit("/", 1)[1]
    with postgres.connect(database) as conn:
        conn.execute("DROP ROLE IF EXISTS rb_reader")
        conn.execute("CREATE ROLE rb_reader LOGIN PASSWORD 'reader-pw-123'")
        conn.execute(f'GRANT CONNECT ON DATABASE "{database}" TO rb_reader')
        conn.execute("GRANT USAGE ON SCHEMA public TO rb_reader")
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO rb_reader")
    reader_url = postgres_dsn.replace("postgresql://rb@", "postgresql://rb_reader@")
    raw = (root / "butler.yaml").read_text().replace(postgres_dsn, reader_url)
    (root / "butler.yaml").write_text(raw)
    monkeypatch.setenv("PGPASSWORD", "reader-pw-123")
    try:
        with Butler(root, writeable=False) as reader:
            assert [r.data_id["visit"] for r in reader.query_datasets("meta")] == [0, 1, 2]
            assert reader.get("meta", visit=2) == {"v": 2}
        with Butler(root) as sneaky, pytest.raises(RegistryError):  # the database refuses
            sneaky.registry.define_run("x", [""])
    finally:
        with postgres.connect(database) as conn:
            conn.execute("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM rb_reader")
            conn.execute("REVOKE ALL ON SCHEMA public FROM rb_reader")
            conn.execute(f'REVOKE ALL ON DATABASE "{database}" FROM rb_reader')


def test_two_repositories_in_one_database_with_schemas(postgres_dsn: str, tmp_path: Path) -> None:
    a = Butler.create(
        tmp_path / "a", config={**CONFIG, "registry": {"type": "postgresql", "url": postgres_dsn,
                                                      "schema": "repo_a"}},
    )  # fmt: skip
    b = Butler.create(
        tmp_path / "b", config={**CONFIG, "registry": {"type": "postgresql", "url": postgres_dsn,
                                                      "schema": "repo_b"}},
    )  # fmt: skip
    a.put({"in": "a"}, "meta", visit=1)
    b.put({"in": "b"}, "meta", visit=1)
    b.put({"in": "b"}, "meta", visit=2)
    assert len(a.query_datasets("meta")) == 1
    assert len(b.query_datasets("meta")) == 2
    a.close()
    b.close()
