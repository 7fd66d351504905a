"""Shared fixtures: one real uvicorn server on loopback for the session, one namespace per test."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pytest

from mockllm import Engine
from mockllm.server import BackgroundServer

# The machine is offline: importing litellm (from any test module) must not try to fetch its cost map.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
_ids = itertools.count()


def _release(package: str) -> tuple[int, ...]:
    try:
        text = version(package)
    except PackageNotFoundError:
        return ()
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


# litellm 1.109 stopped inventing a "stop" for a stream that ends with no finish_reason at all: it
# raises MidStreamFallbackError("... Stream ended before a finish_reason was received") instead.
LITELLM_FAILS_WITHOUT_FINISH = _release("litellm") >= (1, 109)


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
