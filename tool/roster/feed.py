"""Roster pages fetched one ahead: the next page travels while the current one is written.

A thread walks the membership container (``nrps.iter_pages``, NRPS 2.0 §2.3 paging; every
fetch keeps its timeouts, retries and pacing from ``PlatformClient``) into a queue holding at
most ``AHEAD`` pages, so a run holds a handful of pages whatever the course size: the one being
written, the ones queued and the one arriving. Pages come out in order; the walk's error comes
out where its page would have, and ends the feed.

Closing the feed (the run finished or failed) stops the walk: a fetch under way ends within
its timeouts, a retry's wait ends at once, and the thread is joined.
"""
from __future__ import annotations

import logging
import queue
import threading

from ..lti import nrps
from ..lti.service_client import PlatformClient

log = logging.getLogger(__name__)
AHEAD = 1
_END = object()


class FeedStopped(Exception):
    """Raised inside the walk's thread when its run no longer wants pages."""


class Pause:
    """The client's sleep between retries: it ends at once, with ``FeedStopped``, on ``stop``."""

    def __init__(self) -> None:
        self._stop = threading.Event()

    def __call__(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise FeedStopped()

    def stop(self) -> None:
        self._stop.set()

    def resume(self) -> None:
        self._stop.clear()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class PageFeed:
    """``with PageFeed(...) as feed``: ``feed.next()`` until it returns None."""

    def __init__(self, client: PlatformClient, url: str, *, role: str | None, rlid: str | None,
                 pause: Pause, join_timeout: float) -> None:
        self.client, self.url, self.role, self.rlid = client, url, role, rlid
        self.pause = pause
        self.join_timeout = join_timeout
        self._queue: queue.Queue = queue.Queue(maxsize=AHEAD)
        self._thread = threading.Thread(target=self._walk, name="roster-page-feed", daemon=True)
        self._done = False
        self._held = None  # an item ``ready`` took from the queue, for ``next``

    def __enter__(self) -> "PageFeed":
        self.pause.resume()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def ready(self, wait: float = 0.0) -> bool:
        """Whether the next page (or the end, or the walk's error) has arrived, waiting at most
        ``wait`` seconds for it."""
        if self._done or self._held is not None:
            return True
        try:
            self._held = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
        except queue.Empty:
            return False
        return True

    def next(self) -> nrps.MembershipPage | None:
        """The next page; None after the last; the walk's error if it failed."""
        if self._done:
            return None
        item, self._held = self._held, None
        if item is None:
            item = self._queue.get()
        if item is _END:
            self._done = True
            return None
        if isinstance(item, _Failure):
            self._done = True
            raise item.exc
        return item

    def close(self) -> None:
        self.pause.stop()
        self._held = None
        while True:  # free a walk waiting to hand over a page
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(self.join_timeout)
        if self._thread.is_alive():
            log.warning("roster page fetch for %r still running after the run ended; it will "
                        "stop when its request returns", self.url)

    # -- the walk's thread ------------------------------------------------------------------
    def _walk(self) -> None:
        try:
            for page in nrps.iter_pages(self.client, self.url, role=self.role, rlid=self.rlid):
                if not self._hand_over(page):
                    return
            self._hand_over(_END)
        except FeedStopped:
            return
        except Exception as exc:  # raised in the run, where the page was awaited
            self._hand_over(_Failure(exc))

    def _hand_over(self, item) -> bool:
        while not self.pause.stopped:
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False
