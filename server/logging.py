"""structlog as JSON lines on stderr, for our events and every library's stdlib logging alike.

stdout is the stdio transport, so nothing here may ever write there. Secrets are scrubbed from
every event: known secret values wherever they appear, and any field whose name says it holds one.
"""

import logging
import re
import sys
from collections.abc import Iterable
from typing import Any

import structlog

REDACTED = "[redacted]"
_SECRET_FIELD = re.compile(r"token|secret|password|passwd|api[_-]?key|authorization|dsn", re.I)
_BEARER = re.compile(r"(?i)\bbearer\s+[\w.~+/=-]+")
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@")


class SecretScrubber:
    """A structlog processor that removes secrets from every value of an event."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, _logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
        return {key: self._clean(key, value) for key, value in event.items()}

    def _clean(self, key: str, value: Any) -> Any:
        if key != "event" and _SECRET_FIELD.search(key) and value is not None:
            return REDACTED
        if isinstance(value, str):
            return self._scrub(value)
        if isinstance(value, dict):
            return {k: self._clean(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean("", v) for v in value]
        return value

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        text = _BEARER.sub(f"Bearer {REDACTED}", text)
        return _URL_CREDENTIALS.sub(rf"\1{REDACTED}@", text)


def configure_logging(level: str, secrets: Iterable[str] = ()) -> None:
    """Route structlog and stdlib logging through one JSON renderer on stderr.

    Call before building the MCP server: the SDK's own logging.basicConfig is then a no-op.
    """
    scrubber = SecretScrubber(secrets)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            scrubber,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries that log request URLs or headers at DEBUG stay at WARNING unless asked for.
    for noisy in ("httpx", "httpcore", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)


# Until configure_logging runs, structlog's default would print to stdout, which in stdio mode is
# the protocol stream. Point the default at stderr so no early or library use can corrupt it.
if not structlog.is_configured():
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
