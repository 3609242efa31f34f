"""A real PostgreSQL server for tests: ``initdb`` + ``pg_ctl`` in a temporary directory.

:class:`PostgresServer` finds the server binaries (``PATH``, ``pg_config --bindir`` or Debian's
``/usr/lib/postgresql/<major>/bin``), creates a cluster in its work directory, and starts it
listening on a unix socket in that directory and on ``127.0.0.1:<free port>``. Local (socket)
connections are trusted; TCP connections need the password (``scram-sha-256``), so tests can
check that a password given through the environment works and is never written anywhere.

PostgreSQL refuses to run as root: when the tests run as root the cluster is created and run as
the ``postgres`` system user (installed by Debian's package), which then owns the work directory.
:class:`PostgresUnavailable` carries the reason when no server can be started; the fixtures turn
it into a skip.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from servers._ports import free_port

__all__ = ["PostgresServer", "PostgresUnavailable", "find_pg_bindir"]

logger = logging.getLogger(__name__)

SUPERUSER = "rb"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started here (the message says why)."""


def _major(path: Path) -> float:
    try:
        return float(path.parent.name)
    except ValueError:
        return 0.0


def find_pg_bindir() -> Path | None:
    """Directory holding ``initdb`` and ``pg_ctl``, or ``None``."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(os.path.realpath(on_path)).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True
            ).stdout.strip()
            if (Path(out) / "initdb").is_file():
                return Path(out)
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: _major(p.parent)
    )
    return candidates[-1].parent if candidates else None


class PostgresServer:
    """One PostgreSQL cluster in ``workdir``, started with ``pg_ctl`` and stopped at the end.

    Parameters
    ----------
    workdir : Path, optional
        Empty directory for the cluster, its socket and its log. By default a new directory
        directly under the system temp dir (the ``postgres`` user must be able to reach it, which
        pytest's private ``tmp_path`` is not), removed again by :meth:`stop`.
    password : str, optional
        Password of the superuser ``rb`` for TCP connections (random by default).
    """

    def __init__(self, workdir: Path | None = None, *, password: str | None = None) -> None:
        self._own_workdir = workdir is None
        self.workdir = (
            Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="rb-pg-"))
        )
        self.password = password or "rbtest-pg-" + secrets.token_hex(12)
        self.user = SUPERUSER
        self.bindir = find_pg_bindir()
        self.data_dir = self.workdir / "data"
        self.socket_dir = self.workdir
        self.log_path = self.workdir / "server.log"
        self.port = free_port()
        self._run_as: pwd.struct_passwd | None = None
        self.started = False

    # -- addresses ---------------------------------------------------------------------------
    def dsn(self, database: str = "postgres", *, with_password: bool = False) -> str:
        """``postgresql://rb@127.0.0.1:<port>/<database>`` (the password only if asked)."""
        auth = f"{self.user}:{self.password}" if with_password else self.user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def socket_dsn(self, database: str = "postgres") -> str:
        """A libpq keyword DSN over the unix socket (trusted, no password)."""
        return f"host={self.socket_dir} port={self.port} user={self.user} dbname={database}"

    # -- lifecycle -------------------------------------------------------------------------
    def _check_available(self) -> None:
        if self.bindir is None:
            raise PostgresUnavailable(
                "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in "
                "/usr/lib/postgresql/*/bin; install Debian's `postgresql` package (`make test` "
                "does this when run as root)"
            )
        if os.geteuid() == 0:
            try:
                self._run_as = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable(
                    "running as root and there is no `postgres` system user to run the server "
                    "as (PostgreSQL refuses to run as root)"
                ) from None

    def _run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        assert self.bindir is not None
        cmd = [str(self.bindir / args[0]), *args[1:]]
        kwargs: dict[str, Any] = {}
        if self._run_as is not None:
            kwargs = {"user": self._run_as.pw_uid, "group": self._run_as.pw_gid, "extra_groups": []}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        result = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=self.workdir,
            check=False,
            **kwargs,
        )
        if result.returncode != 0:
            raise PostgresUnavailable(
                f"`{' '.join(args[:1])}` failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-800:]}"
            )
        return result

    def start(self) -> PostgresServer:
        """Create the cluster (first time) and start the server; wait until it accepts clients."""
        self._check_available()
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._run_as is not None:
            os.chown(self.workdir, self._run_as.pw_uid, self._run_as.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            pwfile = self.workdir / "pwfile"
            pwfile.write_text(self.password + "\n")
            if self._run_as is not None:
                os.chown(pwfile, self._run_as.pw_uid, self._run_as.pw_gid)
            pwfile.chmod(0o600)
            try:
                self._run(
                    "initdb",
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.user,
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                )
            finally:
                pwfile.unlink()
        options = (
            f"-k {self.socket_dir} -p {self.port} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
        )
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(self.log_path), "-w",
            "-t", "60", "start",
        )  # fmt: skip
        self.started = True
        logger.info("started PostgreSQL on 127.0.0.1:%d (pid %s)", self.port, self.pid)
        return self

    @property
    def pid(self) -> int | None:
        """PID of the postmaster (from ``postmaster.pid``), or ``None``."""
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """Stop the server (``pg_ctl stop -m fast``; SIGKILL by PID if that fails)."""
        if not self.started:
            return
        pid = self.pid
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30", "stop")
        except (PostgresUnavailable, subprocess.TimeoutExpired):
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                time.sleep(0.5)
        self.started = False
        logger.info("stopped PostgreSQL (pid %s)", pid)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def connect(self, database: str = "postgres") -> Any:
        """An autocommit psycopg connection over the unix socket."""
        import psycopg

        return psycopg.connect(self.socket_dsn(database), autocommit=True)

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database and return its name (a fresh random name by default)."""
        name = name or "rb_" + secrets.token_hex(6)
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting its clients first."""
        with self.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the server log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
