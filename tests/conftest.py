"""Shared fixtures: one real uvicorn server on loopback for the session, one namespace per test.

Fixtures only: what test modules import lives in tests/helpers.py.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mockllm import Engine
from mockllm.server import BackgroundServer

# The machine is offline: importing litellm (from any test module) must not try to fetch its cost map.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# Shared constants and helpers (ROOT, SCENARIOS, ...) live in tests/helpers.py: test modules import
# them from there, never from this file.
_ids = itertools.count()


@pytest.fixture(scope="session")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer() as running:
        yield running


class Served:
    """An Engine served by the session's server under a namespace of its own."""

    def __init__(self, server: BackgroundServer, engine: Engine) -> None:
        self.server = server
        self.engine = engine
        self.name = f"t{next(_ids)}"
        server.namespaces[self.name] = engine

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/ns/{self.name}/v1"

    @property
    def journal(self) -> Any:
        return self.engine.journal


@pytest.fixture
def serve(server: BackgroundServer) -> Iterator[Callable[..., Served]]:
    """serve(path_or_mapping, seed=0, time_scale=0) -> Served (base_url, engine, journal)."""
    made: list[Served] = []

    def _serve(source: str | Path | dict[str, Any] | None = None, *, seed: int = 0, time_scale: float = 0) -> Served:
        engine = Engine(seed=seed, time_scale=time_scale)
        if isinstance(source, dict):
            engine.add(source)
        elif source is not None:
            engine.load(source)
        served = Served(server, engine)
        made.append(served)
        return served

    yield _serve
    for served in made:
        server.namespaces.pop(served.name, None)
