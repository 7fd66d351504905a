"""Python code a test gives a rule (the plugin's `add(match=callable, reply=callable)`), run for the
engine: a predicate that must hold, or a function that makes each call's reply. Never from a
scenario file, which stays data.

Either may be sync or async. The engine answers synchronously (from the server's event loop, or a
client's in-process transport), so an awaitable is driven to its end on a private event loop of its
own, in one daemon thread shared by every engine: an async callable must not rely on the test's own
loop (its locks, its futures). What a callable raises is kept as `CallbackError`, whose text (the
traceback) the engine answers with, as a 500, and puts in the journal.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
import traceback
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["CallbackError", "call", "describe", "settle"]


class CallbackError(Exception):
    """A test's callable raised (or its awaitable did): `text` says what and where."""

    def __init__(self, code: Callable[..., Any], exc: BaseException) -> None:
        # The traceback of the test's own code: the frames of this module and of the event loop that
        # ran an async callable say nothing to the test's author.
        frames = [
            frame
            for frame in traceback.extract_tb(exc.__traceback__)
            if frame.filename != __file__ and not any(part in frame.filename for part in _MACHINERY)
        ]
        trace = "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames))
        trace += "".join(traceback.format_exception_only(type(exc), exc))
        self.text = f"mockllm: the test's callable {describe(code)} raised {type(exc).__name__}: {exc}\n{trace}"
        super().__init__(self.text)


_MACHINERY = ("/asyncio/", "/concurrent/futures/")


def describe(code: Callable[..., Any]) -> str:
    """A callable as a test's author knows it: its name, and where it is defined (file:line)."""
    name = getattr(code, "__name__", None) or repr(code)
    source = getattr(code, "__code__", None)
    if source is None:
        return name
    return f"{name} ({os.path.basename(source.co_filename)}:{source.co_firstlineno})"


def settle(value: Any, code: Callable[..., Any]) -> Any:
    """`value` (what `code` returned), awaited if it is awaitable."""
    if not inspect.isawaitable(value):
        return value
    try:
        return _Loop.get().run(value)
    except Exception as exc:
        raise CallbackError(code, exc) from exc


def call(code: Callable[..., Any], *args: Any) -> Any:
    """`code(*args)`, settled; what it raises comes out as CallbackError."""
    try:
        value = code(*args)
    except Exception as exc:
        raise CallbackError(code, exc) from exc
    return settle(value, code)


class _Loop:
    """One event loop in a daemon thread, for every awaitable the tests' callables return."""

    _one: _Loop | None = None
    _made = threading.Lock()

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="mockllm-callbacks", daemon=True).start()

    @classmethod
    def get(cls) -> _Loop:
        with cls._made:
            if cls._one is None:
                cls._one = cls()
            return cls._one

    def run(self, awaitable: Any) -> Any:
        async def wrapped() -> Any:
            return await awaitable

        coroutine: Coroutine[Any, Any, Any] = wrapped()
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)
