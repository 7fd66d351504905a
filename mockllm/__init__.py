"""mockllm: a deterministic fake of LLM providers' APIs, answering from scenario files.

The core (scenarios, router, reply plans, one dialect per API) knows nothing of HTTP; the
starlette app, the in-process transports, the CLI and the pytest plugin drive an Engine.
"""

from .answer import Answer
from .dialects import ENDPOINTS, Dialect
from .engine import DEFAULT_MODEL, NO_MATCH_STATUS, Engine
from .errors import MockLLMError, Problem, RequestError, ScenarioError
from .journal import Entry, Journal
from .loader import Scenario, bundled_scenarios, load, load_mapping, load_text
from .remote import Remote
from .request import Request
from .router import Hit, Miss, Router, Rule
from .sse import Write
from .timing import PRESETS

__all__ = [
    "DEFAULT_MODEL",
    "ENDPOINTS",
    "NO_MATCH_STATUS",
    "PRESETS",
    "Answer",
    "Dialect",
    "Engine",
    "Entry",
    "Hit",
    "Journal",
    "Miss",
    "MockLLMError",
    "Problem",
    "Remote",
    "Request",
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
