"""Scripted HTTP errors (`error:`): OpenAI's defaults per status, headers, the exception each
real client raises, their retries on `replies:` sequences, and Azure's envelope."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import litellm
import openai
import pytest
from helpers import SCENARIOS

from mockllm import Engine
from mockllm.server import BackgroundServer

MESSAGES: Any = [{"role": "user", "content": "Hello?"}]
REQUEST_ID = re.compile(r"^req_[0-9a-f]{32}$")
FAST_RETRY = {"retry-after-ms": "10"}  # openai waits 10 ms instead of its 0.5 s+ backoff

# status -> (openai exception, litellm exception, default type, default code)
STATUSES: dict[int, tuple[type[Exception], type[Exception], str, str | None]] = {
    400: (openai.BadRequestError, litellm.BadRequestError, "invalid_request_error", None),
    401: (openai.AuthenticationError, litellm.AuthenticationError, "invalid_request_error", "invalid_api_key"),
    403: (
        openai.PermissionDeniedError,
        litellm.BadRequestError,
        "invalid_request_error",
        "unsupported_country_region_territory",
    ),
    404: (openai.NotFoundError, litellm.NotFoundError, "invalid_request_error", "model_not_found"),
    408: (openai.APIStatusError, litellm.Timeout, "server_error", "timeout"),
    409: (openai.ConflictError, litellm.BadRequestError, "invalid_request_error", "conflict"),
    422: (openai.UnprocessableEntityError, litellm.BadRequestError, "invalid_request_error", None),
    429: (openai.RateLimitError, litellm.RateLimitError, "tokens", "rate_limit_exceeded"),
    500: (openai.InternalServerError, litellm.InternalServerError, "server_error", None),
    502: (openai.InternalServerError, litellm.BadGatewayError, "server_error", None),
    503: (
        openai.InternalServerError,
        litellm.ServiceUnavailableError,
        "service_unavailable_error",
        "server_is_overloaded",
    ),
    504: (openai.InternalServerError, litellm.Timeout, "server_error", None),
}


def client(served: Any, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key="test", max_retries=retries)


def litellm_call(served: Any, model: str, **kwargs: Any) -> Any:
    options = {"num_retries": 0, **kwargs}
    return litellm.completion(
        model=f"openai/{model}", api_base=served.base_url, api_key="test", messages=MESSAGES, **options
    )


def retry_counts(served: Any) -> list[str | None]:
    return [entry.headers.get("x-stainless-retry-count") for entry in served.journal]


@pytest.mark.parametrize("status", sorted(STATUSES))
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_each_status_gets_openai_defaults_and_the_sdk_exception(serve, status: int, stream: bool) -> None:
    openai_error, _, kind, code = STATUSES[status]
    served = serve({"match": {"model": "m"}, "reply": {"error": {"status": status}}})
    with pytest.raises(openai_error) as caught:
        client(served).chat.completions.create(model="m", messages=MESSAGES, stream=stream)
    error = caught.value
    assert isinstance(error, openai.APIStatusError) and error.status_code == status
    assert (error.type, error.code, error.param) == (kind, code, None)
    assert set(error.body) == {"message", "type", "param", "code"}  # type: ignore[arg-type]
    assert REQUEST_ID.match(error.response.headers["x-request-id"])
    assert error.request_id == error.response.headers["x-request-id"]
    assert error.response.headers["content-type"] == "application/json"
    if status == 404:
        assert error.body["message"] == "The model `m` does not exist or you do not have access to it."  # type: ignore[index]
    assert len(served.journal) == 1 and served.journal[0].status == status


@pytest.mark.parametrize("status", sorted(STATUSES))
def test_each_status_maps_to_its_litellm_exception(serve, status: int) -> None:
    _, litellm_error, _, _ = STATUSES[status]
    served = serve({"match": {"model": "m"}, "reply": {"error": {"status": status}}})
    with pytest.raises(litellm_error) as caught:
        litellm_call(served, "m")
    assert caught.value.status_code == status  # type: ignore[attr-defined]
    with pytest.raises(litellm_error):
        litellm_call(served, "m", stream=True)
    assert len(served.journal) == 2  # num_retries=0: one call each


def test_429_carries_retry_after_unless_given(serve) -> None:
    served = serve({"match": {"model": "m"}, "reply": {"error": {"status": 429}}})
    response = httpx.post(f"{served.base_url}/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert response.status_code == 429 and response.headers["retry-after"] == "1"
    assert "Rate limit reached for m" in response.json()["error"]["message"]
    served = serve({"match": {"model": "m"}, "reply": {"error": {"status": 429, "headers": {"Retry-After": "7"}}}})
    response = httpx.post(f"{served.base_url}/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert response.headers.get_list("retry-after") == ["7"]


def test_message_type_code_param_and_headers_are_taken_as_given(serve) -> None:
    spec = {
        "status": 400,
        "message": "Unsupported parameter: 'max_tokens'.",
        "type": "invalid_request_error",
        "code": "unsupported_parameter",
        "param": "max_tokens",
        "headers": {"x-custom": "yes", "openai-organization": "org-test"},
    }
    served = serve({"match": {"model": "m"}, "reply": {"error": spec}})
    response = httpx.post(f"{served.base_url}/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "Unsupported parameter: 'max_tokens'.",
            "type": "invalid_request_error",
            "param": "max_tokens",
            "code": "unsupported_parameter",
        }
    }
    assert response.headers["x-custom"] == "yes" and response.headers["openai-organization"] == "org-test"
    assert REQUEST_ID.match(response.headers["x-request-id"])


def test_code_can_be_set_to_null_or_a_number(serve) -> None:
    served = serve({"match": {"model": "m"}, "reply": {"error": {"status": 401, "code": None}}})
    response = httpx.post(f"{served.base_url}/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert response.json()["error"]["code"] is None
    served = serve({"match": {"model": "m"}, "reply": {"error": {"status": 429, "code": 429}}})
    response = httpx.post(f"{served.base_url}/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert response.json()["error"]["code"] == "429"


# -- retries ----------------------------------------------------------------------------------


def sequence(*first: dict[str, Any]) -> dict[str, Any]:
    return {"match": {"model": "m"}, "replies": [*({"error": e} for e in first), {"content": "ok"}]}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_openai_retries_429_429_then_gets_the_answer(serve, stream: bool) -> None:
    limited = {"status": 429, "headers": FAST_RETRY}
    served = serve(sequence(limited, limited))
    answer = client(served, retries=2).chat.completions.create(model="m", messages=MESSAGES, stream=stream)
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in answer if c.choices)  # type: ignore[union-attr]
    else:
        text = answer.choices[0].message.content  # type: ignore[union-attr]
    assert text == "ok"
    assert [e.status for e in served.journal] == [429, 429, 200]
    assert retry_counts(served) == ["0", "1", "2"]


def test_openai_gives_up_when_the_sequence_outlasts_max_retries(serve) -> None:
    limited = {"status": 503, "headers": FAST_RETRY}
    served = serve(sequence(limited, limited, limited))
    with pytest.raises(openai.InternalServerError):
        client(served, retries=2).chat.completions.create(model="m", messages=MESSAGES)
    assert [e.status for e in served.journal] == [503, 503, 503]


def test_x_should_retry_false_stops_openai_retries(serve) -> None:
    served = serve(sequence({"status": 429, "headers": {**FAST_RETRY, "x-should-retry": "false"}}))
    with pytest.raises(openai.RateLimitError):
        client(served, retries=2).chat.completions.create(model="m", messages=MESSAGES)
    assert len(served.journal) == 1


def test_a_retry_after_over_two_minutes_means_no_retry(serve) -> None:
    served = serve(sequence({"status": 429, "headers": {"retry-after": "121"}}))
    with pytest.raises(openai.RateLimitError):
        client(served, retries=2).chat.completions.create(model="m", messages=MESSAGES)
    assert len(served.journal) == 1


def test_a_400_is_not_retried(serve) -> None:
    served = serve(sequence({"status": 400}))
    with pytest.raises(openai.BadRequestError):
        client(served, retries=2).chat.completions.create(model="m", messages=MESSAGES)
    assert len(served.journal) == 1


def test_retry_after_ms_sets_the_wait(serve) -> None:
    served = serve(sequence({"status": 429, "headers": {"retry-after-ms": "300"}}))
    started = time.monotonic()
    client(served, retries=1).chat.completions.create(model="m", messages=MESSAGES)
    assert time.monotonic() - started >= 0.28  # openai slept the 300 ms it was told


def test_litellm_max_retries_goes_to_the_openai_client_and_succeeds(serve) -> None:
    limited = {"status": 429, "headers": FAST_RETRY}
    served = serve(sequence(limited, limited))
    answer = litellm.completion(
        model="openai/m", api_base=served.base_url, api_key="test", messages=MESSAGES, max_retries=2
    )
    assert answer.choices[0].message.content == "ok"  # type: ignore[union-attr]
    assert retry_counts(served) == ["0", "1", "2"]


def test_litellm_num_retries_zero_wins_over_max_retries(serve) -> None:
    served = serve(sequence({"status": 429, "headers": FAST_RETRY}))
    with pytest.raises(litellm.RateLimitError):
        litellm_call(served, "m", max_retries=2)
    assert len(served.journal) == 1


def test_an_error_waits_its_timing_first(serve) -> None:
    served = serve(
        {"match": {"model": "m"}, "reply": {"error": {"status": 500}, "timing": {"ttft_ms": 300}}}, time_scale=1
    )
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError):
        client(served).chat.completions.create(model="m", messages=MESSAGES)
    assert time.monotonic() - started >= 0.28


# -- Azure ------------------------------------------------------------------------------------


AZURE_429 = (
    "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded "
    "token rate limit of your current OpenAI S0 pricing tier. Please retry after {n} seconds."
)


def test_azure_flavour_envelope_has_code_and_message_only(serve) -> None:
    served = serve({"match": {"model": "m"}, "reply": {"error": {"status": 429, "flavour": "azure"}}})
    response = httpx.post(f"{served.base_url}/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert response.status_code == 429 and response.headers["retry-after"] == "1"
    assert (
        response.content
        == json.dumps({"error": {"code": "429", "message": AZURE_429.format(n=1)}}, separators=(",", ":")).encode()
    )
    served = serve(
        {
            "match": {"model": "m"},
            "reply": {"error": {"status": 429, "flavour": "azure", "headers": {"retry-after": "17"}}},
        }
    )
    response = httpx.post(f"{served.base_url}/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert response.json()["error"]["message"] == AZURE_429.format(n=17)


def test_azure_flavour_through_the_azure_clients() -> None:
    engine = Engine(time_scale=0)
    engine.add(
        {"match": {}, "reply": {"error": {"status": 429, "flavour": "azure", "headers": {"retry-after": "0.01"}}}}
    )
    with BackgroundServer(engine) as server:  # the Azure route is served by the default engine only
        azure = openai.AzureOpenAI(azure_endpoint=server.url, api_key="k", api_version="2024-10-21", max_retries=1)
        with pytest.raises(openai.RateLimitError) as caught:
            azure.chat.completions.create(model="my-deployment", messages=MESSAGES)
        assert caught.value.code == "429" and caught.value.type is None
        assert "Please retry after 0.01 seconds." in caught.value.message
        assert [e.path for e in engine.journal] == ["/openai/deployments/my-deployment/chat/completions"] * 2
        with pytest.raises(litellm.RateLimitError):
            litellm.completion(
                model="azure/my-deployment",
                api_base=server.url,
                api_key="k",
                api_version="2024-10-21",
                messages=MESSAGES,
                num_retries=0,
            )
        assert len(engine.journal) == 3


# -- the bundled examples -------------------------------------------------------------------------


def test_bundled_errors_yaml(serve) -> None:
    served = serve(SCENARIOS / "errors.yaml")
    sdk = client(served)
    for model, error_type in [
        ("error-400", openai.BadRequestError),
        ("error-401", openai.AuthenticationError),
        ("error-404", openai.NotFoundError),
        ("error-429", openai.RateLimitError),
        ("error-500", openai.InternalServerError),
        ("error-503", openai.InternalServerError),
        ("error-504", openai.InternalServerError),
        ("error-azure-429", openai.RateLimitError),
    ]:
        with pytest.raises(error_type):
            sdk.chat.completions.create(model=model, messages=MESSAGES)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="error-400", messages=MESSAGES)
    assert (caught.value.code, caught.value.param) == ("unsupported_parameter", "max_tokens")
    retrying = client(served, retries=2)
    answer = retrying.chat.completions.create(model="error-retry-sequence", messages=MESSAGES)
    assert answer.choices[0].message.content == "ok"
    with pytest.raises(openai.RateLimitError):
        retrying.chat.completions.create(model="error-no-retry", messages=MESSAGES)
    rules = [e.rule for e in served.journal]
    assert rules.count("error-retry-sequence") == 3 and rules.count("error-no-retry") == 1
    assert set(rules) == {r.name for r in served.engine.router.rules}
