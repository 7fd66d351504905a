"""The same scenario gives the same bytes through the server and in-process (httpx, via respx).

The reference is the Engine's own Answer for the same request: status, headers, and the
body, write by write. In-process, each write reaches the client as one chunk; over TCP,
writes may merge, so the server's body is compared whole.
"""

from __future__ import annotations

import httpx
import pytest
from helpers import fetch_bytes as _fetch
from helpers import reference_bytes as _reference
from mockllm_pytest import MockLLM
from plugin_helpers import SCENARIOS, in_both_modes

from mockllm import Engine
from mockllm.server import BackgroundServer
from mockllm.transport import transport


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "plain"])
@in_both_modes("scenarios/bytes.yaml")
def test_same_bytes_as_the_engine_says(mockllm: MockLLM, mode: str, stream: bool) -> None:
    status, headers, writes = _reference(stream)
    with httpx.Client() as client:
        got_status, got_headers, chunks = _fetch(client, mockllm.base_url, stream)
    assert (got_status, got_headers) == (status, headers)
    assert b"".join(chunks) == b"".join(writes)
    if stream:
        assert len(writes) > 10  # a real multi-chunk stream, cut mid-event by `split: 40`
        assert any(not w.endswith(b"\n\n") for w in writes)
        assert b"data: [DONE]\n\n" in b"".join(writes)
    if mode == "inprocess":
        assert chunks == writes  # write boundaries are kept, one chunk per write


def test_server_and_inprocess_side_by_side(mockllm_server: BackgroundServer) -> None:
    """One test, both adapters, one scenario: byte for byte, including a multi-chunk stream."""
    served, local = Engine(SCENARIOS / "bytes.yaml"), Engine(SCENARIOS / "bytes.yaml")
    for engine in (served, local):
        engine.time_scale = 0
    mockllm_server.namespaces["side-by-side"] = served
    try:
        with httpx.Client() as over_tcp, httpx.Client(transport=transport(local)) as in_process:
            for stream in (True, False, True):  # the second stream is call 1 of its rule: new ids, same on both
                a = _fetch(over_tcp, f"{mockllm_server.url}/ns/side-by-side/v1", stream)
                b = _fetch(in_process, "http://mockllm.invalid/v1", stream)
                assert (a[0], a[1]) == (b[0], b[1])
                assert b"".join(a[2]) == b"".join(b[2])
    finally:
        del mockllm_server.namespaces["side-by-side"]
    assert [e.call_index for e in served.journal] == [e.call_index for e in local.journal] == [0, 0, 1]
