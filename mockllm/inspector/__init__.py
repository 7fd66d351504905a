"""The inspector: a web page at /_mockllm/ that shows the journal as requests arrive.

Plain HTML, CSS and JavaScript shipped in the package (no build step, nothing fetched from
elsewhere: it works offline). The page polls the control plane's `journal` and `rules` routes,
relative to its own URL, so one copy serves `/_mockllm/` and every `/_mockllm/ns/{ns}/`.
"""

from __future__ import annotations

import functools
from importlib import resources

__all__ = ["FILES", "page"]

# The files the page is made of, and their content types: nothing else is served from here, so a
# name such as `../__init__.py` is simply not one of them.
FILES = {
    "index.html": "text/html; charset=utf-8",
    "inspector.css": "text/css; charset=utf-8",
    "inspector.js": "text/javascript; charset=utf-8",
}


@functools.cache
def _read(name: str) -> bytes:
    return resources.files(__name__).joinpath(name).read_bytes()


def page(name: str) -> tuple[bytes, str] | None:
    """The bytes and content type of one of the inspector's files ("" is the page itself), or None."""
    name = name or "index.html"
    content_type = FILES.get(name)
    if content_type is None:
        return None
    return _read(name), content_type
