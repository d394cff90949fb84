"""A semaphore over ``service_slots`` rows: the bound on service calls in flight per platform client.

Canvas throttles per developer key (facts sheet section 9: a 600-unit bucket, 50 units charged
up front per request in flight), so the bound must hold across every worker thread, process and
machine, not per process. A caller takes one of ``bound`` rows of its registration with one
conditional UPDATE (free, or held by someone whose lease ran out: a worker that died frees its
slot when the lease ends) and frees it after the call, in ``finally``.
"""
from __future__ import annotations

import random
import secrets
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from typing import Callable, Iterator

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from ..db import insert_for
from ..models import ServiceSlot, utcnow

# (database, registration, bound) whose rows this process has made: one process may use several
# databases over its life (the test suite runs SQLite, then PostgreSQL).
_made: set[tuple[str, int, int]] = set()
_made_lock = threading.Lock()


def ensure(session: Session, registration_id: int, bound: int) -> None:
    """Make the slot rows ``0 .. bound-1`` of a registration (idempotent, once per process)."""
    key = (str(session.get_bind().url), registration_id, bound)
    with _made_lock:
        if key in _made:
            return
    rows = [{"registration_id": registration_id, "slot": n} for n in range(bound)]
    session.execute(insert_for(session, ServiceSlot).values(rows).on_conflict_do_nothing(
        index_elements=["registration_id", "slot"]))
    session.commit()
    with _made_lock:
        _made.add(key)


def _free(now):
    return or_(ServiceSlot.holder.is_(None), ServiceSlot.lease_until < now)


def try_take(session: Session, registration_id: int, bound: int, lease: float) -> tuple[int, str] | None:
    """(slot, holder) taken now, or None when every slot is busy.

    The UPDATE re-checks "free or expired" itself, so two takers racing for one row cannot both
    win: on PostgreSQL the second re-reads the row after the first commits and matches nothing;
    SQLite runs one writer at a time.
    """
    ensure(session, registration_id, bound)
    now = utcnow()
    candidates = list(session.scalars(select(ServiceSlot.slot).where(
        ServiceSlot.registration_id == registration_id, ServiceSlot.slot < bound, _free(now))))
    if not candidates and _missing_rows(session, registration_id, bound):
        # The rows this process made are gone (the registration was removed and its id reused):
        # make them again rather than wait forever for slots that do not exist.
        session.rollback()
        with _made_lock:
            _made.discard((str(session.get_bind().url), registration_id, bound))
        ensure(session, registration_id, bound)
        candidates = list(range(bound))
    session.rollback()  # end the read: the UPDATE below decides
    random.shuffle(candidates)  # spread racing takers over the free rows
    holder = secrets.token_hex(8)
    for slot in candidates[:4]:
        now = utcnow()
        taken = session.execute(update(ServiceSlot).where(
            and_(ServiceSlot.registration_id == registration_id, ServiceSlot.slot == slot,
                 _free(now))).values(holder=holder, lease_until=now + timedelta(seconds=lease)))
        session.commit()
        if taken.rowcount == 1:
            return slot, holder
    return None


def _missing_rows(session: Session, registration_id: int, bound: int) -> bool:
    count = session.scalar(select(func.count()).select_from(ServiceSlot).where(
        ServiceSlot.registration_id == registration_id, ServiceSlot.slot < bound))
    return (count or 0) < bound


def release(session: Session, registration_id: int, slot: int, holder: str) -> None:
    """Free a slot, only if it is still ours (after a lease ran out someone else may hold it)."""
    session.rollback()
    session.execute(update(ServiceSlot).where(
        ServiceSlot.registration_id == registration_id, ServiceSlot.slot == slot,
        ServiceSlot.holder == holder).values(holder=None, lease_until=None))
    session.commit()


def take(session: Session, registration_id: int, bound: int, lease: float, *, wait: float = 1.0,
         sleep: Callable[[float], None] = time.sleep) -> tuple[int, str] | None:
    """Take a slot, polling for up to ``wait`` seconds; None if none came free."""
    deadline = time.monotonic() + wait
    while True:
        got = try_take(session, registration_id, bound, lease)
        if got is not None or time.monotonic() >= deadline:
            return got
        sleep(random.uniform(0.02, 0.08))


@contextmanager
def held(session_factory: Callable[[], Session], registration_id: int, bound: int, lease: float,
         *, wait: float = 1.0) -> Iterator[int | None]:
    """``with held(...) as slot:`` -- slot is None when none came free within ``wait``."""
    with session_factory() as session:
        got = take(session, registration_id, bound, lease, wait=wait)
    try:
        yield got[0] if got else None
    finally:
        if got is not None:
            with session_factory() as session:
                release(session, registration_id, got[0], got[1])


def in_use(session: Session, registration_id: int) -> int:
    """How many slots are held now (for tests and the benchmark)."""
    now = utcnow()
    return len(session.scalars(select(ServiceSlot.slot).where(
        ServiceSlot.registration_id == registration_id, ServiceSlot.holder.is_not(None),
        ServiceSlot.lease_until >= now)).all())
