"""Network helpers shared by the servers this product starts."""

from __future__ import annotations

import ipaddress
import socket

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A port that is free on host now (wildcard hosts are asked on loopback)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK if host in ("", "0.0.0.0") else host, 0))
        return sock.getsockname()[1]


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach host (a name other than localhost may resolve anywhere)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
