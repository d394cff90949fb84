"""Locks that hold across processes while start-up work runs once (migrations, first key).

gunicorn starts its workers together and a school may start web and job processes on several
machines at once: the first to take the lock does the work, the others wait and then find it
done. A lock dies with its process (the kernel drops a ``flock``, PostgreSQL an advisory lock
when the session ends), so a crashed start never leaves the next one stuck.
"""
from __future__ import annotations

import fcntl
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

# Long enough for a slow migration on a big database; a process that waits longer than this
# is told so instead of hanging without a word.
WAIT_SECONDS = 300.0
POLL_SECONDS = 0.05


class LockTimeout(Exception):
    """Another process has held a start-up lock for longer than the wait allows."""

    def __init__(self, what: str, waited: float) -> None:
        self.what, self.waited = what, waited
        super().__init__(f"another process has held {what} for {waited:.0f} s")


# Threads of one process share a file lock's holder (flock is per open file), so they queue
# here first; the depth lets code that holds the lock call code that takes it again.
_thread_lock = threading.RLock()
_depth = threading.local()


@contextmanager
def reentrant(take) -> Iterator[None]:
    """Run ``take()`` (a context manager) unless this thread already holds the lock."""
    with _thread_lock:
        depth = getattr(_depth, "value", 0)
        _depth.value = depth + 1
        try:
            if depth:
                yield
            else:
                with take():
                    yield
        finally:
            _depth.value = depth


@contextmanager
def file_lock(path: Path, wait: float = WAIT_SECONDS) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created 0600 if missing), waited for up to ``wait`` s."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockTimeout(f"the lock file {str(path)!r}", wait) from None
                time.sleep(POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
