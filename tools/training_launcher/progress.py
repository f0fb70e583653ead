"""Reading train.py's log: the contract's JSON lines for progress, the last lines for people.

A log is untrusted text (it holds whatever the trainer, its libraries or the data printed):
only lines that parse as JSON objects whose first key is "event" count, every value is checked
for its type, and what is shown is cut to a bounded size.
"""

import json
import re
from collections.abc import Iterable
from typing import Any

from tools.quoting import excerpt
from tools.training_launcher.records import LogTail, Progress

# "owner/name" as the Hub allows them (huggingface_hub validate_repo_id: 96 characters each).
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


_EVENT_START = '{"event"'
_DECODER = json.JSONDecoder()


def _events(lines: Iterable[str]) -> Iterable[dict[str, Any]]:
    """The contract's objects wherever they sit in a line: train.py's stdout and the trainer's
    stderr share one log, and tqdm ends its bar with a carriage return, not a newline, so a
    JSON line printed after a bar update starts in the middle of the bar's line."""
    for line in lines:
        start = line.find(_EVENT_START)
        while start != -1:
            try:
                event, end = _DECODER.raw_decode(line, start)
            except ValueError:
                end = start + 1
            else:
                if isinstance(event, dict) and isinstance(event.get("event"), str):
                    yield event
            start = line.find(_EVENT_START, end)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value else None  # NaN is no figure


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def read_progress(lines: Iterable[str], max_chars: int) -> Progress:
    """The run's progress as its latest events say; an error message is cut to `max_chars`."""
    progress = Progress()
    for event in _events(lines):
        kind = event["event"]
        if kind == "start":
            progress.total_steps = _count(event.get("total_steps")) or progress.total_steps
        elif kind == "progress":
            progress.step = _count(event.get("step"))
            progress.total_steps = _count(event.get("total_steps")) or progress.total_steps
            for key in ("loss", "learning_rate", "tokens_per_s", "epoch"):
                setattr(progress, key, _number(event.get(key)))
        elif kind == "checkpoint":
            progress.checkpoint_step = _count(event.get("step"))
        elif kind == "done":
            progress.done = True
            progress.step = _count(event.get("steps")) or progress.step
            repo = event.get("model_repo")
            # it reaches next_action: only a repo id, never whatever text the log holds
            progress.model_repo = repo if isinstance(repo, str) and _REPO_ID.match(repo) else None
            progress.peak_memory_gb = _number(event.get("max_memory_allocated_gb"))
        elif kind == "error":
            message = event.get("message")
            progress.error = excerpt(str(message), max_chars)
    if progress.step is not None and progress.total_steps:
        progress.percent = round(100 * min(progress.step / progress.total_steps, 1.0), 1)
    return progress


def log_tail(lines: list[str], count: int, max_chars: int) -> LogTail:
    """The last `count` non-empty lines, each cut to `max_chars` characters."""
    shown = [line.rstrip() for line in lines if line.strip()][-count:] if count else []
    return LogTail(lines=[excerpt(line, max_chars) for line in shown])
