"""mockllm's pytest plugin: a fake LLM provider per test (OpenAI, Anthropic and Gemini APIs), live or in-process.

Installed with mockllm (`pip install mockllm-wire`) and registered as a pytest11 entry
point, so the `mockllm` fixture and marker need no conftest. See the README's section
"Testing with pytest".
"""

from .handle import API_KEY, MockLLM
from .settings import MODES, Settings, TestSettings

__all__ = ["API_KEY", "MODES", "MockLLM", "Settings", "TestSettings"]
