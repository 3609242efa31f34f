"""Free TCP ports on 127.0.0.1 (with an optional partner port at a fixed offset)."""

from __future__ import annotations

import random
import socket

__all__ = ["free_port", "port_is_free"]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``port`` can be bound on ``host`` right now.

    ``SO_REUSEADDR`` is set as Go and most servers do, so connections in TIME_WAIT left by a
    killed server do not make its port look busy.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(
    *, offset: int | None = None, avoid: set[int] | None = None, lo: int = 20000, hi: int = 55000
) -> int:
    """A free port ``p`` in ``[lo, hi)``; with ``offset``, ``p + offset`` is free too.

    SeaweedFS binds every gRPC port at its HTTP port + 10000, so its ports are chosen with
    ``offset=10000``. ``avoid`` holds ports already handed out (they are not bound yet).
    """
    taken = avoid if avoid is not None else set()
    rng = random.Random()
    for _ in range(500):
        port = rng.randrange(lo, hi)
        pair = [port] if offset is None else [port, port + offset]
        if any(p in taken for p in pair):
            continue
        if all(port_is_free(p) for p in pair):
            taken.update(pair)
            return port
    raise RuntimeError(f"no free port pair found in [{lo}, {hi}) with offset {offset}")
