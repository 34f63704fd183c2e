"""Binding a server's listening socket before anything is started or announced.

`serve`, `preview` and `emulator` bind first and announce after, with the port really taken (`--port
0`: any free one). An address in use, not this machine's or not a name is an OSError here, with the
system's own reason, which each command turns into one line (exit 1), never a server's own error
output or exit code.
"""

from __future__ import annotations

import socket


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host`:`port`, not yet listening."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock
