"""Reading train.py's log: the contract's JSON lines for progress, the last lines for people.

A log is untrusted text (it holds whatever the trainer, its libraries or the data printed):
only JSON objects whose first key is "event" and whose "run" is the key the launcher gave this
run count (anything else may be quoted text), every value is checked for its type, and what is
shown is cut to a bounded size, the key hidden.
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
_HIDDEN_KEY = "<run key>"


def _events(lines: Iterable[str], run_key: str | None) -> Iterable[dict[str, Any]]:
    """The run's own objects wherever they sit in a line: train.py's stdout and the trainer's
    stderr share one log, and tqdm ends its bar with a carriage return, not a newline, so a
    JSON line printed after a bar update starts in the middle of the bar's line. Without a key
    (a run launched by hand, or before runs had keys) none is the run's own."""
    if not run_key:
        return
    for line in lines:
        start = line.find(_EVENT_START)
        while start != -1:
            try:
                event, end = _DECODER.raw_decode(line, start)
            except ValueError:
                end = start + 1
            else:
                if (
                    isinstance(event, dict)
                    and isinstance(event.get("event"), str)
                    and event.get("run") == run_key
                ):
                    yield event
            start = line.find(_EVENT_START, end)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value else None  # NaN is no figure


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _hide(text: str, run_key: str | None) -> str:
    return text.replace(run_key, _HIDDEN_KEY) if run_key else text


def read_progress(lines: Iterable[str], run_key: str | None, max_chars: int) -> Progress:
    """The run's progress as its latest events (those with `run_key`) say; an error message is
    cut to `max_chars`."""
    progress = Progress()
    for event in _events(lines, run_key):
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
            progress.error = excerpt(_hide(str(message), run_key), max_chars)
    if progress.step is not None and progress.total_steps:
        progress.percent = round(100 * min(progress.step / progress.total_steps, 1.0), 1)
    return progress


def log_tail(
    lines: list[str], run_key: str | None, count: int, max_chars: int, message: str | None = None
) -> LogTail:
    """The last `count` non-empty lines and the Hub's `message` on the Job (which may quote the
    run's output), each cut to `max_chars` characters, the run's key hidden (shown, it would
    let text written later pass for the run's own lines)."""
    shown = [line.rstrip() for line in lines if line.strip()][-count:] if count else []
    return LogTail(
        lines=[excerpt(_hide(line, run_key), max_chars) for line in shown],
        message=None if message is None else excerpt(_hide(message, run_key), max_chars),
    )
