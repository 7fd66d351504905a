"""The route table: every path mockllm serves, made from the dialect registry.

The starlette app (its fast path and its routes), the in-process transports and
`Engine.handle` all look paths up here, so a dialect's routes are served everywhere at once.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .dialects import DIALECTS, Dialect, Route

__all__ = ["BY_PATH", "ROUTES", "Methods", "Target", "resolve"]


class Target(NamedTuple):
    """What a route leads to: a dialect's action, or (dialect None) the models list and lookup, in the
    shape of the API that asks (Engine.serve: Dialect.models_header)."""

    route: Route
    dialect: Dialect | None


_MODELS = (Route("GET", "/v1/models", "models"), Route("GET", "/v1/models/{model_id}", "model"))
ROUTES: tuple[Target, ...] = (
    *(Target(route, dialect) for dialect in DIALECTS.values() for route in dialect.routes),
    *(Target(route, None) for route in _MODELS),
)

Methods = dict[str, Target]  # by HTTP method, the routes of one path
BY_PATH: dict[str, Methods] = {}  # by path template
for _target in ROUTES:
    BY_PATH.setdefault(_target.route.path, {})[_target.route.method] = _target
_EXACT = {path: methods for path, methods in BY_PATH.items() if "{" not in path}
# {model_id} takes the rest of the path (model names may hold slashes); other parameters one segment.
_PATTERNS = [
    (
        re.compile(re.sub(r"\{(\w+)\}", lambda m: f"(?P<{m[1]}>{'.+' if m[1] == 'model_id' else '[^/]+'})", path)),
        methods,
    )
    for path, methods in BY_PATH.items()
    if "{" in path
]


def resolve(path: str) -> tuple[Methods, dict[str, str], str] | None:
    """The routes of `path`, its parameters, and what came before the route's own path (the
    prefix: "" for the default engine, `/ns/{name}` for a namespace, any base path in-process)."""
    methods = _EXACT.get(path)
    if methods is not None:
        return methods, {}, ""
    for template, methods in _EXACT.items():
        if path.endswith(template):
            return methods, {}, path[: -len(template)]
    starts = _starts(path)  # once, not per pattern: every Gemini path has parameters
    for pattern, methods in _PATTERNS:
        for start in starts:
            found = pattern.fullmatch(path, start)
            if found is not None:
                return methods, found.groupdict(), path[:start]
    return None


def _starts(path: str) -> list[int]:
    """Where a route's own path may begin: at 0, and at each /v1/, /v1beta/ (Gemini) or /openai/ segment."""
    return [0, *(m.start() for m in _SEGMENT.finditer(path) if m.start())]


_SEGMENT = re.compile(r"/(?:v1|v1beta|openai)/")
