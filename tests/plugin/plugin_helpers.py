"""Shared bits of the plugin tests (a module, not a conftest: tests/conftest.py is the root one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "scenarios"
MODES = ("server", "inprocess")


def in_both_modes(*paths: str, **kwargs: Any) -> pytest.MarkDecorator:
    """Run the test once per mode, with `@pytest.mark.mockllm(*paths, mode=..., **kwargs)`."""
    params = [pytest.param(mode, marks=pytest.mark.mockllm(*paths, mode=mode, **kwargs), id=mode) for mode in MODES]
    return pytest.mark.parametrize("mode", params)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def warm_up() -> None:
    """Import what the inner runs of pytester use, once, in this process.

    pytester's in-process runs drop every module first imported during a run, so without
    this each run would import the openai SDK's lazily loaded modules (~500) and uvicorn again.
    """
    import asyncio

    import openai

    import mockllm.server  # noqa: F401
    from mockllm import Engine
    from mockllm.transport import HOST, transport

    engine = Engine(time_scale=0)
    engine.add({"reply": {"content": "warm"}})
    client = openai.OpenAI(
        base_url=f"http://{HOST}/v1",
        api_key="k",
        http_client=openai.DefaultHttpxClient(transport=transport(engine, library=_library())),
    )
    client.chat.completions.create(model="m", messages=user("x"))
    with client.chat.completions.create(model="m", messages=user("x"), stream=True) as stream:
        list(stream)
    client.models.list()
    client.close()

    async def main() -> None:
        http_client = openai.DefaultAsyncHttpxClient(transport=transport(engine, library=_library()))
        async with openai.AsyncOpenAI(base_url=f"http://{HOST}/v1", api_key="k", http_client=http_client) as aclient:
            await aclient.chat.completions.create(model="m", messages=user("x"))

    asyncio.run(main())


def _library() -> str:
    from mockllm_pytest.inprocess import library_of_openai

    return library_of_openai()


def reported(result: Any) -> str:
    """What a pytester run printed before its short test summary: the reports themselves. (Under CI,
    pytest does not cut the summary's lines, which then repeat each error's whole message.)"""
    return str(result.stdout.str()).split(" short test summary info ")[0]
