"""Reply text that quotes the request: `content: "You said: {user}"`.

A small, closed syntax, so that a scenario file stays data: `{name}` for one of PLACEHOLDERS, and
`{{name}}` for the text `{name}` itself. Nothing else is read: other braces are sent as written
(JSON in a reply, `{x}` in a code snippet, `{{}}`), and no expression, attribute or call is
evaluated. An unknown `{word}` is not refused, since replies quote code: tests see a typo as it is sent.

The values come from the request (mockllm/conversation.py for the conversation's): the same
request gives the same text, so answers stay deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .conversation import conversation
from .request import Request

__all__ = ["PLACEHOLDERS", "Template", "compile_template", "escape", "values"]

PLACEHOLDERS: dict[str, str] = {
    "user": "the last user message",
    "system": "the system text",
    "model": "the model the request names",
    "tool_result": "the text of the tool result the conversation ends with (the last, if several)",
    "tool_name": "the name of the tool that result answers",
    "turn": "how many turns the model has had in the conversation (0: this is its first)",
}

_FIELD = re.compile(r"\{\{([A-Za-z_]\w*)\}\}|\{([A-Za-z_]\w*)\}")


@dataclass(frozen=True, slots=True)
class Template:
    """A text with placeholders: literal parts and, between them, placeholder names."""

    parts: tuple[str, ...]  # literal, name, literal, name, ..., literal

    @property
    def dynamic(self) -> bool:
        """Whether it has a placeholder (else `parts[0]` is the whole text)."""
        return len(self.parts) > 1

    def render(self, given: Mapping[str, str], escape: Callable[[str], str] | None = None) -> str:
        """The text with each placeholder's value (passed through `escape` if given, e.g. for JSON)."""
        out = []
        for i, part in enumerate(self.parts):
            if i % 2:
                value = given.get(part, "")
                out.append(escape(value) if escape is not None else value)
            else:
                out.append(part)
        return "".join(out)


def compile_template(text: str) -> Template:
    """The template of `text` (`dynamic` when it has a placeholder; else its one part is the text to
    send, with the `{{name}}` escapes undone)."""
    parts: list[str] = []
    literal: list[str] = []
    at = 0
    for match in _FIELD.finditer(text):
        escaped, name = match.group(1), match.group(2)
        if (escaped or name) not in PLACEHOLDERS:
            continue  # not ours: sent as written
        literal.append(text[at : match.start()])
        if escaped is not None:
            literal.append("{" + escaped + "}")
        else:
            parts.append("".join(literal))
            parts.append(name)
            literal = []
        at = match.end()
    literal.append(text[at:])
    parts.append("".join(literal))
    return Template(tuple(parts))


_NAME = re.compile(r"\{([A-Za-z_]\w*)\}")


def escape(text: str) -> str:
    """`text` written so that a reply sends it as it is: each placeholder as its escape (`{user}` as
    `{{user}}`; `compile_template` undoes it). Other braces need none."""
    return _NAME.sub(lambda m: "{" + m[0] + "}" if m[1] in PLACEHOLDERS else m[0], text)


def values(request: Request) -> dict[str, str]:
    """Each placeholder's value for `request`."""
    talk = conversation(request)
    last = talk.tool_results[-1] if talk.tool_results else None
    return {
        "user": request.user_text or "",
        "system": request.system_text or "",
        "model": request.model,
        "tool_result": last.text if last is not None else "",
        "tool_name": (last.name or "") if last is not None else "",
        "turn": str(talk.turns),
    }
