"""Search results kept for reuse: fresh in memory for the TTL, recent ones on disk for fallback.

A fresh hit saves a Hub round trip. When the Hub cannot be reached, an older answer (from memory
or, after a restart, from disk) is better than nothing, and is served marked stale.
"""

import json
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from cachetools import TTLCache
from pydantic import BaseModel, ValidationError

from tools.model_browser.config import CacheConfig
from tools.model_browser.results import ModelSummary


class CachedSearch(BaseModel):
    models: list[ModelSummary]
    fetched_at: float  # seconds since the epoch

    def age_s(self, now: float) -> float:
        return max(0.0, now - self.fetched_at)


class SearchCache:
    def __init__(self, config: CacheConfig, path: Path, clock: Callable[[], float] = time.time):
        self._ttl_s = config.ttl_s
        self._disk_max = config.disk_max_entries
        self._path = path
        self._clock = clock
        self._fresh: TTLCache[str, CachedSearch] = TTLCache(
            maxsize=config.max_entries, ttl=config.ttl_s, timer=clock
        )
        self._recent: OrderedDict[str, CachedSearch] = self._load()
        self._lock = threading.Lock()

    def fresh(self, key: str) -> CachedSearch | None:
        with self._lock:
            return self._fresh.get(key)

    def any(self, key: str) -> tuple[CachedSearch, float, bool] | None:
        """The newest answer for `key` however old: (entry, its age in seconds, past its TTL)."""
        with self._lock:
            hit = self._fresh.get(key) or self._recent.get(key)
        if hit is None:
            return None
        age_s = hit.age_s(self._clock())
        return hit, age_s, age_s > self._ttl_s

    def model_ids(self) -> list[str]:
        """Ids in the cached answers, most recent answer first, each once."""
        with self._lock:
            answers = [*self._fresh.values(), *reversed(self._recent.values())]
        return list(dict.fromkeys(m.id for answer in answers for m in answer.models))

    def summary(self, model_id: str) -> ModelSummary | None:
        """The newest cached summary of one model, if any answer holds it."""
        with self._lock:
            answers = [*self._fresh.values(), *reversed(self._recent.values())]
        wanted = model_id.lower()
        return next((m for a in answers for m in a.models if m.id.lower() == wanted), None)

    def put(self, key: str, models: list[ModelSummary]) -> None:
        entry = CachedSearch(models=models, fetched_at=self._clock())
        with self._lock:
            self._fresh[key] = entry
            if self._disk_max == 0:
                return
            self._recent[key] = entry
            self._recent.move_to_end(key)
            while len(self._recent) > self._disk_max:
                self._recent.popitem(last=False)
            snapshot = {k: v.model_dump(mode="json") for k, v in self._recent.items()}
            self._write(snapshot)

    def _load(self) -> OrderedDict[str, CachedSearch]:
        """What a previous run left on disk; an unreadable file is treated as empty."""
        try:
            raw = json.loads(self._path.read_text(encoding="utf-8"))
            entries = [(k, CachedSearch.model_validate(v)) for k, v in raw.items()]
        except (OSError, ValueError, AttributeError, ValidationError):
            return OrderedDict()
        return OrderedDict(entries[-self._disk_max :] if self._disk_max else [])

    def _write(self, snapshot: dict[str, object]) -> None:
        """Atomically replace the file, so a crash never leaves half of it."""
        tmp: str | None = None
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".search-cache-")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(snapshot, handle)
            os.replace(tmp, self._path)
        except OSError:
            # The disk copy is a convenience for offline restarts; a full or read-only disk
            # must not fail a search that already has its answer.
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
