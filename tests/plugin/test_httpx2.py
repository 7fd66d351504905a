"""httpx2 (what openai >= 3 reads through): the in-process transport, and the same bytes as the server."""

from __future__ import annotations

import time

import pytest

httpx2 = pytest.importorskip("httpx2")

from helpers import fetch_bytes as _fetch  # noqa: E402
from helpers import reference_bytes as _reference  # noqa: E402
from mockllm_pytest import MockLLM  # noqa: E402
from plugin_helpers import SCENARIOS, in_both_modes, user  # noqa: E402

from mockllm import Engine  # noqa: E402
from mockllm.transport import HOST, transport  # noqa: E402


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "plain"])
@in_both_modes("scenarios/bytes.yaml")
def test_httpx2_gets_the_same_bytes(mockllm: MockLLM, mode: str, stream: bool) -> None:
    status, headers, writes = _reference(stream)
    with httpx2.Client() as client:  # a default client: in-process, its default transport is routed to the Engine
        got_status, got_headers, chunks = _fetch(client, mockllm.base_url, stream)
    assert (got_status, got_headers) == (status, headers)
    assert b"".join(chunks) == b"".join(writes)
    if mode == "inprocess":
        assert chunks == writes


def test_explicit_httpx2_transport_streams_on_schedule_and_fails_like_a_socket() -> None:
    engine = Engine(SCENARIOS / "timed.yaml")
    with httpx2.Client(transport=transport(engine, library="httpx2"), timeout=httpx2.Timeout(5, read=0.5)) as client:
        start = time.monotonic()
        with client.stream("POST", f"http://{HOST}/v1/chat/completions", json=_chat("timed")) as response:
            arrivals = [time.monotonic() - start for _ in response.iter_raw()]
        # One chunk per write, each at its deadline or later (no upper bound: busy CI): ttft 60 ms for
        # the role chunk and "one", 40 ms per token after, the finish chunk and [DONE] with "three".
        due = [0.06, 0.06, 0.10, 0.14, 0.14, 0.14]
        assert len(arrivals) == len(due)
        assert all(a >= d - 0.002 for a, d in zip(arrivals, due, strict=True)), (arrivals, due)
        for text, error in (("drop", httpx2.RemoteProtocolError), ("stall", httpx2.ReadTimeout)):
            got: list[bytes] = []
            with (
                pytest.raises(error),
                client.stream("POST", f"http://{HOST}/v1/chat/completions", json=_chat(text)) as r,
            ):
                got.extend(r.iter_raw())
            assert len(got) == 3 and got[0].startswith(b"data: {")  # role chunk and two tokens, then the fault
    assert [(e.rule, e.aborted) for e in engine.journal] == [("timed", False), ("dropped", True), ("stalled", False)]


def test_async_httpx2_transport() -> None:
    import asyncio

    engine = Engine(SCENARIOS / "basic.yaml", time_scale=0)

    async def main() -> list[bytes]:
        url = f"http://{HOST}/v1/chat/completions"
        async with (
            httpx2.AsyncClient(transport=transport(engine, library="httpx2")) as client,
            client.stream("POST", url, json=_chat("story")) as response,
        ):
            return [chunk async for chunk in response.aiter_raw()]

    chunks = asyncio.run(main())
    assert chunks[-1] == b"data: [DONE]\n\n" and len(chunks) > 10


def _chat(text: str) -> dict[str, object]:
    return {"model": "gpt-4o-mini", "messages": user(text), "stream": True}
