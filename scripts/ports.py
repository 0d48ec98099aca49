"""A free loopback port, for the throwaway servers the scripts and tests start.

Standard library only: scripts/with-rabbitmq runs under the system Python.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
