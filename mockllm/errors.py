"""The errors mockllm raises to its users."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MockLLMError", "Problem", "RequestError", "ScenarioError"]


class MockLLMError(Exception):
    """Base of every error mockllm raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a scenario file: where, which key, what was expected.

    `column` (1-based) is known for YAML syntax errors only; the message then also shows
    the line with a caret under it.
    """

    source: str
    line: int | None
    key: str
    message: str
    column: int | None = None

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ScenarioError(MockLLMError):
    """A scenario file (or inline rule) that cannot be loaded; lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class RequestError(MockLLMError):
    """A request the fake refuses, with the fields of OpenAI's error envelope."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.type = type
