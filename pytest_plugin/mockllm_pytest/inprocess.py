"""In-process mode: requests to the fixture's host reach its Engine with no socket.

- httpx (openai < 3, litellm, langchain-openai): a respx router at the httpx client level,
  so it catches clients on any transport (litellm's async calls go through aiohttp).
  Requests to other hosts pass through to the network, or to your own respx mock if the
  test has one.
- httpx2 (openai >= 3): respx cannot patch it; the fixture's `client()` hands the SDK an
  httpx2 transport, and for clients the application builds itself (`env=True`), the
  default httpx2 transports send requests for the fixture's host to the same transport.

Either way the body streams write by write on the server's schedule (mockllm.transport).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from mockllm import Engine
from mockllm.transport import HOST, transport

__all__ = ["Interceptor", "library_of_openai"]


class Interceptor:
    """Routes the requests for `HOST` to `engine` while started."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._router: Any = None
        self._patches = pytest.MonkeyPatch()

    def start(self) -> None:
        if importlib.util.find_spec("httpx") is not None:
            self._start_respx()
        if importlib.util.find_spec("httpx2") is not None:
            self._patch_httpx2()

    def stop(self) -> None:
        self._patches.undo()
        if self._router is not None:
            self._router.stop(quiet=True)
            self._router = None

    def _start_respx(self) -> None:
        try:
            import respx
            import respx.mocks
        except ImportError:
            raise pytest.UsageError("mockllm: in-process mode needs respx for httpx clients: pip install respx") from None
        to_engine = transport(self.engine, library="httpx")
        router = respx.MockRouter(assert_all_called=False, assert_all_mocked=True, using="httpx")
        router.route(host=HOST, name="mockllm").mock(side_effect=to_engine.handle_request)

        def elsewhere(request: Any) -> Any:
            # Returning the request lets it pass through to the network; returning None lets
            # the next respx router (the test's own) answer it, if there is one.
            return None if len(respx.mocks.HTTPXMocker.routers) > 1 else request

        router.route(name="mockllm-pass-through").mock(side_effect=elsewhere)
        router.start()
        self._router = router

    def _patch_httpx2(self) -> None:
        import httpx2

        to_engine = transport(self.engine, library="httpx2")
        sync_send = httpx2.HTTPTransport.handle_request
        async_send = httpx2.AsyncHTTPTransport.handle_async_request

        def handle_request(self: Any, request: Any) -> Any:
            if request.url.host == HOST:
                return to_engine.handle_request(request)
            return sync_send(self, request)

        async def handle_async_request(self: Any, request: Any) -> Any:
            if request.url.host == HOST:
                return await to_engine.handle_async_request(request)
            return await async_send(self, request)

        self._patches.setattr(httpx2.HTTPTransport, "handle_request", handle_request)
        self._patches.setattr(httpx2.AsyncHTTPTransport, "handle_async_request", handle_async_request)


def library_of_openai() -> str:
    """The HTTP library the installed openai SDK sends with: "httpx2" (openai >= 3) or "httpx"."""
    import openai

    if importlib.util.find_spec("httpx2") is not None:
        import httpx2

        if issubclass(openai.DefaultHttpxClient, httpx2.Client):
            return "httpx2"
    return "httpx"
