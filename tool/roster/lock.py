"""One roster sync per course at a time, across threads, processes and machines.

The lock is the course's ``context_sync_states`` row: a run takes it with one conditional
UPDATE (free, or its lease ran out) and renews the lease after every page, so a worker that
died frees the course once its lease ends. PostgreSQL re-checks the WHERE clause after a
concurrent UPDATE commits and SQLite serialises writers, so of two racing runs exactly one
gets ``rowcount == 1``.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from ..db import insert_for
from ..models import ContextSyncState, RosterSync, utcnow
from ..models.states import SyncStatus


def state_for(session: Session, context_id: int) -> ContextSyncState:
    stmt = insert_for(session, ContextSyncState).values(context_id=context_id)
    session.execute(stmt.on_conflict_do_nothing(index_elements=["context_id"]))
    return session.get(ContextSyncState, context_id, populate_existing=True)


def acquire(session: Session, context_id: int, sync_id: int, lease: float) -> int | None:
    """Take the course for run ``sync_id`` and commit. None when taken, else the run it held.

    Returns 0 when the course was free; the id of a previous holder whose lease had expired
    (that run is then marked failed: its worker stopped without finishing).
    """
    state_for(session, context_id)
    session.commit()
    now = utcnow()
    previous = session.scalar(select(ContextSyncState.running_sync_id)
                              .where(ContextSyncState.context_id == context_id))
    result = session.execute(
        update(ContextSyncState)
        .where(ContextSyncState.context_id == context_id,
               or_(ContextSyncState.running_sync_id.is_(None), ContextSyncState.lease_until < now))
        .values(running_sync_id=sync_id, lease_until=now + timedelta(seconds=lease))
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        session.rollback()
        return None
    if previous and previous != sync_id:
        session.execute(update(RosterSync).where(RosterSync.id == previous,
                                                 RosterSync.status == SyncStatus.RUNNING)
                        .values(status=SyncStatus.FAILED, finished_at=now,
                                error="The worker running this sync stopped before it finished.")
                        .execution_options(synchronize_session=False))
    session.commit()
    return previous or 0


def holder(session: Session, context_id: int) -> int | None:
    return session.scalar(select(ContextSyncState.running_sync_id).where(
        ContextSyncState.context_id == context_id, ContextSyncState.lease_until >= utcnow()))


def renew(session: Session, context_id: int, sync_id: int, lease: float) -> bool:
    """Extend the lease (in the caller's transaction); False if another run took the course."""
    result = session.execute(
        update(ContextSyncState)
        .where(ContextSyncState.context_id == context_id,
               ContextSyncState.running_sync_id == sync_id)
        .values(lease_until=utcnow() + timedelta(seconds=lease))
        .execution_options(synchronize_session=False))
    return result.rowcount == 1


def release(session: Session, context_id: int, sync_id: int) -> None:
    session.execute(
        update(ContextSyncState)
        .where(ContextSyncState.context_id == context_id,
               ContextSyncState.running_sync_id == sync_id)
        .values(running_sync_id=None, lease_until=None)
        .execution_options(synchronize_session=False))
    session.commit()
