"""A small YAML writer for recorded scenarios: block style, short collections in flow style, long
text in literal blocks, and every other string quoted as JSON (a JSON string is a YAML one).

PyYAML's own dumper picks styles by heuristics that change with the text (a recording of the same
traffic would not give the same file) and folds long strings at odd places. This one is stable:
the same data always gives the same text, and keys keep their order. `dump` checks its output
loads back to the data it was given, and otherwise quotes every string (which always does).
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

__all__ = ["dump", "scalar"]

_WIDTH = 110
_NESTED = 60  # a collection that holds collections goes in flow style up to this length
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_./-]*")
# YAML 1.1 reads these plain words as booleans or null
_SPECIAL = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}
# What a YAML stream may not carry as such, or reads as a line break (\x85, \u2028, \u2029): escaped.
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")
_LITERAL_UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")

try:
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml
    _Loader = yaml.SafeLoader


def dump(data: Any, indent: int = 0) -> str:
    """`data` (JSON-like: dicts, lists, str, int, float, bool, None) as YAML block lines at `indent`."""
    text = "".join(line + "\n" for line in _Writer(literal=True).block(data, indent))
    if yaml.load(text, Loader=_Loader) == data:
        return text
    return "".join(line + "\n" for line in _Writer(literal=False).block(data, indent))


class _Writer:
    def __init__(self, literal: bool) -> None:
        self.literal = literal  # long text may go in literal blocks

    def block(self, value: Any, indent: int) -> list[str]:
        pad = " " * indent
        if isinstance(value, dict) and value:
            lines: list[str] = []
            for key, item in value.items():
                head = f"{pad}{self.scalar(str(key), flow=True)}:"
                lines.extend(self._entry(head, item, indent))
            return lines
        if isinstance(value, list) and value:
            lines = []
            for item in value:
                lines.extend(self._item(item, indent))
            return lines
        return [pad + self.flow(value)]

    def _entry(self, head: str, value: Any, indent: int) -> list[str]:
        """`key: value`, the value after the colon or on the lines below."""
        literal = self._literal(value, indent + 2)
        if literal is not None:
            return [f"{head} {literal[0]}", *literal[1:]]
        flow = self._fits(value, len(head) + 1)
        if flow is not None:
            return [f"{head} {flow[0]}", *flow[1:]]
        return [head, *self.block(value, indent + 2)]

    def _item(self, value: Any, indent: int) -> list[str]:
        """`- value`: a mapping's first key on the dash's line, the rest under it."""
        pad = " " * indent
        literal = self._literal(value, indent + 2)
        if literal is not None:
            return [f"{pad}- {literal[0]}", *literal[1:]]
        flow = self._fits(value, indent + 2)
        if flow is not None:
            return [f"{pad}- {flow[0]}", *flow[1:]]
        lines = self.block(value, indent + 2)
        return [f"{pad}- {lines[0][indent + 2 :]}", *lines[1:]]

    def _fits(self, value: Any, used: int) -> list[str] | None:
        """A scalar, or a short collection of scalars, in flow style; a long list of scalars wrapped
        (continuation lines indented under it). None: it takes block style."""
        if not isinstance(value, dict | list) or not value:
            return [self.flow(value)]
        items = list(value.values() if isinstance(value, dict) else value)
        if any(isinstance(item, dict | list) and item for item in items):
            # nested: in flow style only when short, and never a list of mappings (messages read best as blocks)
            text = self.flow(value)
            short = len(text) <= _NESTED and not _holds_list(value)
            return [text] if short and used + len(text) <= _WIDTH else None
        if isinstance(value, dict):
            text = self.flow(value)
            return [text] if used + len(text) <= _WIDTH else None
        # a list of strings is quoted throughout when one of them must be: ["Two", "."], not [Two, "."]
        quote = any(isinstance(item, str) and self.scalar(item, flow=True) != item for item in items)
        parts = [_quoted(item) if quote and isinstance(item, str) else self.flow(item) for item in items]
        lines: list[str] = []
        line = "["
        for i, part in enumerate(parts):
            part += "]" if i == len(parts) - 1 else ","
            if len(line) > 1 and used + len(line) + 1 + len(part) > _WIDTH:
                lines.append(line)
                line = part
            else:
                line = line + (" " if len(line) > 1 else "") + part
        lines.append(line)
        if len(lines) > 1:
            lead = " " * (used + 1)
            lines = [lines[0], *(lead + rest for rest in lines[1:])]
        return lines

    def _literal(self, value: Any, indent: int) -> list[str] | None:
        """A multi-line text as a literal block (`|` or `|-`), when it can be one exactly."""
        if not self.literal or not isinstance(value, str) or "\n" not in value.rstrip("\n"):
            return None
        body = value[:-1] if value.endswith("\n") else value
        lines = body.split("\n")
        first = next((line for line in lines if line), "")
        if (
            body.endswith("\n")
            or first.startswith(" ")
            or _LITERAL_UNSAFE.search(body)
            or any(line != line.rstrip(" ") for line in lines)
        ):
            return None
        pad = " " * indent
        return ["|" if value.endswith("\n") else "|-", *(pad + line if line else "" for line in lines)]

    def flow(self, value: Any) -> str:
        if isinstance(value, dict):
            return "{" + ", ".join(f"{self.scalar(str(k), flow=True)}: {self.flow(v)}" for k, v in value.items()) + "}"
        if isinstance(value, list):
            quote = any(isinstance(item, str) and self.scalar(item, flow=True) != item for item in value)
            return "[" + ", ".join(_quoted(i) if quote and isinstance(i, str) else self.flow(i) for i in value) + "]"
        return self.scalar(value, flow=True)

    def scalar(self, value: Any, flow: bool) -> str:
        if value is None:
            return "null"
        if value is True or value is False:
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            text = repr(value)
            if "e" in text and "." not in text:  # YAML 1.1 wants a dot in a float with an exponent
                mantissa, exponent = text.split("e")
                text = f"{mantissa}.0e{exponent if exponent[0] in '+-' else '+' + exponent}"
            return text
        text = str(value)
        if _PLAIN.fullmatch(text) and text.lower() not in _SPECIAL:
            return text
        return _quoted(text)


def _holds_list(value: Any) -> bool:
    """Whether `value` is or holds a list of anything but numbers: such collections take block style
    (messages, tools and replies read best so, and a reply keeps its layout when a key is added)."""
    if isinstance(value, list):
        return any(not isinstance(item, int | float) or isinstance(item, bool) for item in value)
    if isinstance(value, dict):
        return any(_holds_list(item) for item in value.values())
    return False


def _quoted(text: str) -> str:
    """`text` as a double-quoted YAML string: its JSON form, with what YAML cannot carry escaped."""
    return _UNSAFE.sub(lambda m: f"\\u{ord(m[0]):04x}", json.dumps(text, ensure_ascii=False))


def scalar(value: Any) -> str:
    """One scalar as YAML: plain when it can be, else quoted."""
    return _Writer(literal=False).scalar(value, flow=True)
