"""What other parts of the tool do once a course's roster is fresh.

A successful sync has just committed who is enrolled; work that waited for that (a score the
platform refused because the student was not yet in the course) can go again. Each hook is
called as ``hook(session, context_id)`` after the run's final commit, outside the course lock,
with a session opened for the hooks alone. A hook commits its own writes. A hook that raises is
logged and its writes rolled back; it never turns the sync into a failure, and the other hooks
still run.
"""
from __future__ import annotations

import logging
from typing import Callable

from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

after_sync: list[Callable[[Session, int], None]] = []


def run_after_sync(session: Session, context_id: int) -> None:
    """Call every ``after_sync`` hook for a course whose sync succeeded."""
    for hook in list(after_sync):
        try:
            hook(session, context_id)
        except Exception:  # the roster is synced whatever a follower does with it
            session.rollback()
            log.exception("after-sync hook %r failed for course %r",
                          getattr(hook, "__qualname__", hook), context_id)
