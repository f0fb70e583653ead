"""The retry policy under every Hub request: backoff, Retry-After, attempt and time budgets."""

from datetime import UTC, datetime

import httpx2
import pytest
from huggingface_hub import HfApi, get_session
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import OfflineModeIsEnabled

from tests.fake_hub import FakeHub
from tools import hub_http
from tools.hub_http import (
    HubConfig,
    HubUnavailable,
    RetryConfig,
    RetryingTransport,
    parse_retry_after,
    time_budget,
)

POLICY = RetryConfig(max_attempts=4, base_delay_s=0.5, max_delay_s=4, total_timeout_s=30)


class Script:
    """An inner transport answering from a list; records what the outer one slept."""

    def __init__(self, *answers: int | Exception | tuple[int, dict[str, str]]):
        self.answers = list(answers)
        self.calls = 0
        self.now = 0.0
        self.slept: list[float] = []

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        return httpx2.Response(status, headers=headers, json={"ok": status == 200})

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def transport(self, policy: RetryConfig = POLICY, jitter: float = 1.0) -> RetryingTransport:
        return RetryingTransport(
            httpx2.MockTransport(self.handle),
            policy,
            request_timeout_s=10,
            sleep=self.sleep,
            clock=lambda: self.now,
            jitter=lambda: jitter,
        )


def get(transport: RetryingTransport) -> httpx2.Response:
    with httpx2.Client(transport=transport) as client:
        return client.get("https://hub.test/api/models")


def test_503_then_success_backs_off_exponentially() -> None:
    script = Script(503, 502, 200)
    assert get(script.transport()).status_code == 200
    assert script.calls == 3
    assert script.slept == [0.5, 1.0]  # base x 2^(attempt-1), jitter at its ceiling


def test_full_jitter_stays_under_the_ceiling() -> None:
    script = Script(500, 200)
    get(script.transport(jitter=0.25))
    assert script.slept == [0.125]


def test_retry_after_is_honoured() -> None:
    script = Script((429, {"Retry-After": "7"}), 200)
    assert get(script.transport()).status_code == 200
    assert script.slept == [7.0]


def test_connection_errors_and_timeouts_are_retried() -> None:
    script = Script(httpx2.ConnectError("refused"), httpx2.ReadTimeout("slow"), 200)
    assert get(script.transport()).status_code == 200
    assert script.calls == 3


def test_attempts_are_bounded() -> None:
    script = Script(503, 503, 503, 503, 200)
    with pytest.raises(HubUnavailable) as exc:
        get(script.transport())
    assert script.calls == 4 and exc.value.attempts == 4
    assert "HTTP 503" in exc.value.reason


def test_a_retry_after_past_the_budget_gives_up_at_once() -> None:
    script = Script((429, {"Retry-After": "3600"}), 200)
    with pytest.raises(HubUnavailable, match="budget is spent"):
        get(script.transport())
    assert script.slept == [] and script.calls == 1


def test_an_operation_budget_spans_several_requests() -> None:
    script = Script(503, 200, 503, 503, 200)
    transport = script.transport(jitter=1.0)
    with time_budget(1.2, clock=lambda: script.now):
        assert get(transport).status_code == 200  # slept 0.5
        with pytest.raises(HubUnavailable):
            get(transport)  # 0.5 then 1.0 would overrun the 1.2 s shared budget
    assert sum(script.slept) <= 1.2


def test_client_errors_are_not_retried() -> None:
    script = Script(404)
    assert get(script.transport()).status_code == 404
    assert script.calls == 1


def test_retry_after_http_date() -> None:
    now = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Sat, 28 Nov 2026 12:00:30 GMT", now) == 30
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None) is None


def test_installed_client_retries_every_hub_call_and_keeps_the_library_s_hooks(
    fake_hub: tuple[FakeHub, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One setup for the model browser and the dataset validator alike: whatever asks
    huggingface_hub's shared client gets the retries, and its own offline check still holds."""
    hub, url = fake_hub
    config = HubConfig(
        endpoint=url,
        timeout_s=2,
        retries=RetryConfig(max_attempts=3, base_delay_s=0.01, max_delay_s=0.01, total_timeout_s=5),
    )
    hub_http.install(config)
    hub.fail("/api/datasets/acme/data", status=503, times=2)
    hub.add_dataset("acme/data", {"train.jsonl": b'{"text": "x"}\n'})
    info = HfApi(endpoint=url).dataset_info("acme/data")
    assert info.id == "acme/data" and len(hub.requests_to("/api/datasets/acme/data")) == 3
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OfflineModeIsEnabled):
        get_session().get(f"{url}/api/models")
