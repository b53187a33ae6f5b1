"""Does a server answer at all? A bounded probe before a client that would wait forever.

Ray's job client (``requests`` without a timeout) and ``ray.init`` (which retries
its GCS connection) both wait forever on a server that accepts the connection
and never answers. Before either starts, the server is sent its protocol's
opening bytes and must answer something, or close, within a timeout. A refused
connection or a name that does not resolve is left to the real client, whose
own message covers it. Standard library only: the CLI answers before heavy imports.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

#: HTTP/2's client preface and an empty SETTINGS frame: a gRPC server (Ray's GCS,
#: the Ray client server) answers with its SETTINGS frame at once.
GRPC_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def http_hello(host: str) -> bytes:
    """A minimal request any HTTP server answers (a TLS one answers with an alert)."""
    return f"GET /api/version HTTP/1.0\r\nHost: {host}\r\n\r\n".encode()


def host_port(address: str, default_port: int) -> tuple[str, int] | None:
    """``(host, port)`` of ``http://h:p``, ``ray://h:p`` or ``h:p``; None for ``auto``/``local``
    or what does not parse (left to the real client)."""
    if address in ("auto", "local"):
        return None
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        port = parts.port or default_port
    except ValueError:
        return None
    return (parts.hostname, port) if parts.hostname else None


def silent(host: str, port: int, hello: bytes, timeout_s: float) -> bool:
    """True when ``host:port`` accepts a connection but says nothing for ``timeout_s`` after
    ``hello``; False when it answers, closes, refuses or cannot be reached at all."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as conn:
            conn.settimeout(timeout_s)
            conn.sendall(hello)
            conn.recv(1)  # any byte, or b"" for a close, is an answer
    except TimeoutError:
        return True
    except OSError:
        return False
    return False


def no_answer(address: str, default_port: int, hello: bytes, timeout_s: float) -> str | None:
    """ "no answer from ADDRESS within N s" when the server at ``address`` is silent, else None."""
    where = host_port(address, default_port)
    if where is None:
        return None
    target = hello if hello else http_hello(where[0])
    if not silent(where[0], where[1], target, timeout_s):
        return None
    return f"no answer from {address} within {timeout_s:g} s"
