"""Shared bits for the benchmarks: a timing WSGI wrapper and small statistics helpers."""
from __future__ import annotations

import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


class TimedApp:
    """WSGI middleware that records server-side seconds per request (time to produce the body)."""

    def __init__(self, app) -> None:
        self.app = app
        self.samples: list[tuple[str, float]] = []
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        began = time.perf_counter()
        body = b"".join(self.app(environ, start_response))
        elapsed = time.perf_counter() - began
        with self._lock:
            self.samples.append((environ.get("PATH_INFO", ""), elapsed))
        return [body]

    def take(self) -> list[tuple[str, float]]:
        with self._lock:
            out, self.samples = self.samples, []
        return out


def median_ms(values) -> float:
    return statistics.median(values) * 1000 if values else float("nan")


def pct(values, q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000
