"""mockllm: a deterministic fake of an OpenAI-compatible LLM provider.

The core (scenarios, router, reply plans, wire format) knows nothing of HTTP; the
starlette app, the in-process transports, the CLI and the pytest plugin drive an Engine.
"""

from .answer import Answer
from .engine import DEFAULT_MODEL, NO_MATCH_STATUS, Engine
from .errors import MockLLMError, Problem, RequestError, ScenarioError
from .journal import Entry, Journal
from .loader import Scenario, bundled_scenarios, load, load_mapping, load_text
from .router import Hit, Miss, Router, Rule
from .sse import Write
from .timing import PRESETS

__all__ = [
    "DEFAULT_MODEL",
    "NO_MATCH_STATUS",
    "PRESETS",
    "Answer",
    "Engine",
    "Entry",
    "Hit",
    "Journal",
    "Miss",
    "MockLLMError",
    "Problem",
    "RequestError",
    "Router",
    "Rule",
    "Scenario",
    "ScenarioError",
    "Write",
    "bundled_scenarios",
    "load",
    "load_mapping",
    "load_text",
]
__version__ = "0.1.0"
