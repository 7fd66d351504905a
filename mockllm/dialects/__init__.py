"""The APIs mockllm speaks, one module each, over the same neutral reply.

Adding an API is adding a module with a `Dialect` and registering it here: its routes join
the route table (mockllm/routes.py) that the app, its fast path and the in-process transports
share, and `match.endpoint` accepts its name.
"""

from __future__ import annotations

from .anthropic import ANTHROPIC
from .base import Call, Dialect, Route, Stream, ToolCallWire
from .chat import CHAT
from .completions import COMPLETIONS
from .embeddings import EMBEDDINGS
from .gemini import GEMINI
from .responses import RESPONSES

__all__ = ["CHAT_DIALECT", "DIALECTS", "ENDPOINTS", "Call", "Dialect", "Route", "Stream", "ToolCallWire"]

DIALECTS: dict[str, Dialect] = {
    dialect.name: dialect for dialect in (CHAT, RESPONSES, ANTHROPIC, COMPLETIONS, EMBEDDINGS, GEMINI)
}
ENDPOINTS: tuple[str, ...] = tuple(DIALECTS)
CHAT_DIALECT: Dialect = CHAT
