"""In-process mode: requests to the fixture's host reach its Engine with no socket.

- httpx (openai < 3, litellm, langchain-openai): a respx router at the httpx client level,
  so it catches clients on any transport (litellm's async calls go through aiohttp).
  Requests to other hosts pass through to the network, or to your own respx mock if the
  test has one.
- httpx2 (openai >= 3, anthropic >= 2, google-genai >= 3 by default): respx cannot patch
  it; the fixture's clients (`client()`, `anthropic_client()`, `gemini_client()`...) hand
  the SDK an httpx2 transport, and for clients the application builds itself (`env=True`),
  the default httpx2 transports send requests for the fixture's host to the same transport.
- aiohttp is not caught: google-genai's async client reads through it when it is installed,
  unless given a transport (as `gemini_client()` does), so an app-built one needs server mode.

Either way the body streams write by write on the server's schedule (mockllm.transport).
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

import pytest

from mockllm import Engine
from mockllm.transport import HOST, transport

__all__ = ["Interceptor", "installed", "library_of", "library_of_openai"]


class Interceptor:
    """Routes the requests for `HOST` to `engine` while started."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._router: Any = None
        self._previous: Any = None
        self._patches = pytest.MonkeyPatch()

    def start(self) -> None:
        if installed("httpx"):
            self._start_respx()
        if installed("httpx2"):
            self._patch_httpx2()

    def stop(self) -> None:
        self._patches.undo()
        if self._router is not None:
            self._router.stop(quiet=True)
            self._router = None
            _current[0] = self._previous

    def _start_respx(self) -> None:
        router = _respx_router()
        self._previous, _current[0] = _current[0], transport(self.engine, library="httpx")
        router.start()
        self._router = router

    def _patch_httpx2(self) -> None:
        httpx2: Any = importlib.import_module("httpx2")

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


_current: list[Any] = [None]  # the httpx transport of the test being run


@functools.cache
def _respx_router() -> Any:
    """One respx router for the session, started and stopped per test (building one costs ~3 ms)."""
    try:
        import respx
        import respx.mocks
    except ImportError:
        raise pytest.UsageError(
            "mockllm: in-process mode needs respx for httpx clients: pip install 'mockllm-wire[pytest]'"
        ) from None

    def to_engine(request: Any) -> Any:
        return _current[0].handle_request(request)

    def elsewhere(request: Any) -> Any:
        # Returning the request lets it pass through to the network; returning None lets
        # the next respx router (the test's own) answer it, if there is one.
        return None if len(respx.mocks.HTTPXMocker.routers) > 1 else request

    router = respx.MockRouter(assert_all_called=False, assert_all_mocked=True, using="httpx")
    router.route(host=HOST, name="mockllm").mock(side_effect=to_engine)
    router.route(name="mockllm-pass-through").mock(side_effect=elsewhere)
    return router


@functools.cache
def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def library_of(http_client: type) -> str:
    """The HTTP library of an SDK's client class (its `DefaultHttpxClient`): "httpx2" or "httpx".

    openai >= 3 and anthropic >= 2 send with httpx2; openai 2.x and anthropic 0.x with httpx.
    """
    if installed("httpx2") and issubclass(http_client, importlib.import_module("httpx2").Client):
        return "httpx2"
    return "httpx"


def library_of_openai() -> str:
    """The HTTP library the installed openai SDK sends with: "httpx2" (openai >= 3) or "httpx"."""
    import openai

    return library_of(openai.DefaultHttpxClient)
