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
    """WSGI middleware that records, per request, the server-side seconds to produce the body and
    the CPU seconds the serving thread spent on it.

    On a machine shared with other work the wall time also counts waiting for a CPU; the
    thread's CPU time does not (it leaves out the database server's own work on PostgreSQL).
    """

    def __init__(self, app) -> None:
        self.app = app
        self.samples: list[tuple[str, float, float]] = []
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        began, cpu = time.perf_counter(), time.thread_time()
        body = b"".join(self.app(environ, start_response))
        elapsed, cpu = time.perf_counter() - began, time.thread_time() - cpu
        with self._lock:
            self.samples.append((environ.get("PATH_INFO", ""), elapsed, cpu))
        return [body]

    def take(self) -> list[tuple[str, float, float]]:
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
