"""One HTTP setup for every huggingface_hub call the server makes, installed before the first.

huggingface_hub sends its requests through one shared httpx2 client, made by a factory the
application may set. `install` sets one whose transport retries, so list_models, model_info,
dataset_info and hf_hub_download (model browser and dataset validator alike) all get the same
policy: exponential backoff with full jitter on connection errors, timeouts, 429 and 5xx,
honouring Retry-After, and never waiting past the configured budget. When the budget is spent
it raises HubUnavailable, which the library does not retry again (its own backoff only catches
httpx2's network errors). The library's own request hooks (offline mode, request ids, debug
logging) stay on the client.
"""

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Annotated

import httpx2
from pydantic import Field, HttpUrl

from tools.config_base import ConfigModel

PositiveSeconds = Annotated[float, Field(gt=0)]
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_RETRY_ERRORS = (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError)

# The monotonic time by which the current operation (a search, a model's details: several
# requests) must be done; requests made outside one only have their own budget.
_operation_deadline: ContextVar[float | None] = ContextVar("hub_deadline", default=None)


class RetryConfig(ConfigModel):
    """Exponential backoff with jitter, bounded both in attempts and in total time."""

    max_attempts: Annotated[int, Field(ge=1, le=10)]
    base_delay_s: PositiveSeconds
    max_delay_s: PositiveSeconds
    total_timeout_s: PositiveSeconds


class HubConfig(ConfigModel):
    """configs/models.yaml `hub`: where the Hub is and how long to wait for it."""

    endpoint: HttpUrl | None = Field(
        default=None, description="None: huggingface_hub's own default (or HF_ENDPOINT)."
    )
    timeout_s: PositiveSeconds
    retries: RetryConfig
    cache_dir: Path | None = Field(
        default=None, description="Hugging Face cache; None: huggingface_hub's (HF_HUB_CACHE)."
    )


_installed: list[HubConfig] = []  # the config the process's client is made for, if any
_installing = threading.Lock()


def install(config: HubConfig) -> None:
    """Make huggingface_hub's shared client retry and time out as configured, keeping the
    request hooks of the client it would make itself. Once per config: the server calls it
    before each first Hub request of a kind (a search, a dataset, the prices) rather than at
    start-up, which would cost its first answer the ~50 ms of making a client."""
    with _installing:
        if not _installed or _installed[0] is not config:
            _set_factory(config)
            _installed[:] = [config]


def _set_factory(config: HubConfig) -> None:
    from huggingface_hub import get_session, set_client_factory  # on first use, as install

    hooks = get_session().event_hooks

    def factory() -> httpx2.Client:
        transport = RetryingTransport(httpx2.HTTPTransport(), config.retries, config.timeout_s)
        return httpx2.Client(
            transport=transport,
            event_hooks=hooks,
            follow_redirects=True,
            timeout=config.timeout_s,
        )

    set_client_factory(factory)


@contextmanager
def time_budget(seconds: float, clock: Callable[[], float] = time.monotonic) -> Iterator[None]:
    """Bound every Hub request made inside the block, retries included, by one shared budget."""
    token = _operation_deadline.set(clock() + seconds)
    try:
        yield
    finally:
        _operation_deadline.reset(token)


class HubUnavailable(Exception):
    """The Hub did not answer usefully within the retry budget."""

    def __init__(self, reason: str, attempts: int):
        self.reason, self.attempts = reason, attempts
        super().__init__(f"{reason} (after {attempts} attempt{'s' if attempts != 1 else ''})")


@dataclass
class RetryingTransport(httpx2.BaseTransport):
    inner: httpx2.BaseTransport
    policy: RetryConfig
    request_timeout_s: float
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    jitter: Callable[[], float] = random.random

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        deadline = self.clock() + self.policy.total_timeout_s
        if (shared := _operation_deadline.get()) is not None:
            deadline = min(deadline, shared)
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise HubUnavailable("the time budget for this Hub operation is spent", attempt - 1)
            request.extensions["timeout"] = _timeouts(min(self.request_timeout_s, remaining))
            retry_after: float | None = None
            try:
                response = self.inner.handle_request(request)
            except _RETRY_ERRORS as exc:
                reason = f"{type(exc).__name__} from {request.url.host}"
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                reason = f"HTTP {response.status_code} from {request.url.host}"
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                response.read()
                response.close()
            if attempt >= self.policy.max_attempts:
                raise HubUnavailable(reason, attempt)
            wait = retry_after if retry_after is not None else self._backoff(attempt)
            if self.clock() + wait >= deadline:
                raise HubUnavailable(f"{reason}; the retry time budget is spent", attempt)
            self.sleep(wait)

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max_delay, base * 2^(attempt-1))] (AWS, 2015)."""
        ceiling = min(self.policy.max_delay_s, self.policy.base_delay_s * 2 ** (attempt - 1))
        return ceiling * self.jitter()

    def close(self) -> None:
        self.inner.close()


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: delay-seconds or an HTTP-date (RFC 9110 10.2.3); None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _timeouts(seconds: float) -> dict[str, float]:
    seconds = max(seconds, 0.001)
    return {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}
