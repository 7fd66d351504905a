"""Loopback only: the framework tests (test_agents_sdk.py, test_langchain.py) make any connection or
name lookup beyond 127.0.0.1 / ::1 fail, and record it, so a framework that starts calling home
(traces, token files, telemetry) is caught instead of reaching the internet."""

from __future__ import annotations

import socket
from typing import Any

import pytest

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def guard(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Patch socket connect/getaddrinfo for the test; returns the list of refused attempts."""
    refused: list[str] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK:
            refused.append(f"connect {address!r}")
            raise OSError(f"test_agents_sdk/test_langchain: no network beyond loopback ({address!r})")

    def connect(self: socket.socket, address: Any) -> None:
        check(self, address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(self, address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and name not in LOOPBACK:
            refused.append(f"getaddrinfo {name!r}")
            raise socket.gaierror(socket.EAI_NONAME, f"no lookups beyond loopback ({name!r})")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return refused
