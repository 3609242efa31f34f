"""The PostgreSQL fixture is a real server: fresh databases, password-protected TCP, by PID."""

from __future__ import annotations

import pytest
from servers.postgres import PostgresServer

pytestmark = pytest.mark.postgres

psycopg = pytest.importorskip("psycopg", reason="the PostgreSQL driver psycopg is not installed")


def test_fresh_database_over_tcp_with_password_from_environment(
    postgres: PostgresServer, postgres_dsn: str
) -> None:
    assert postgres.password not in postgres_dsn
    with psycopg.connect(postgres_dsn) as conn:  # password comes from PGPASSWORD
        name = conn.execute("SELECT current_database()").fetchone()[0]
        assert postgres_dsn.endswith("/" + name)
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()[0]
        assert tables == 0
        conn.execute("CREATE TABLE t (x integer)")
        conn.execute("INSERT INTO t VALUES (1), (2), (40)")
        assert conn.execute("SELECT sum(x) FROM t").fetchone()[0] == 43


def test_tcp_without_or_with_wrong_password_is_refused(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent")
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(postgres.dsn()).close()
    monkeypatch.setenv("PGPASSWORD", "wrong-" + postgres.password)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(postgres.dsn()).close()


def test_server_binds_loopback_and_runs_from_a_temp_cluster(postgres: PostgresServer) -> None:
    psutil = pytest.importorskip("psutil")
    assert postgres.pid is not None
    proc = psutil.Process(postgres.pid)
    assert (postgres.data_dir / "PG_VERSION").is_file()
    listening = {c.laddr for c in proc.net_connections(kind="inet") if c.status == "LISTEN"}
    assert {(a.ip, a.port) for a in listening} == {("127.0.0.1", postgres.port)}
    with postgres.connect() as conn:  # unix socket in the work directory
        assert conn.execute("SHOW unix_socket_directories").fetchone()[0] == str(
            postgres.socket_dir
        )
