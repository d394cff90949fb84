"""A semaphore over ``service_slots`` rows: the bound on service calls in flight per platform client.

Canvas throttles per developer key (facts sheet section 9: a 600-unit bucket, 50 units charged
up front per request in flight), so the bound must hold across every worker thread, process and
machine, not per process. A caller takes one of ``bound`` rows of its registration with one
conditional UPDATE (free, or held by someone whose lease ran out: a worker that died frees its
slot when the lease ends) and frees it after the call, in ``finally``.

``claim`` and ``free`` write without committing, so the send step can take a slot and its row in
one transaction and free the slot and record the answer in another (``sender.py``). In front of
the rows sits a per-process gate (a ``threading.Semaphore`` of the same bound): threads of one
process wait on it instead of polling the database, and are woken the moment a call ends. The
gate is only an economy; the rows alone keep the bound.
"""
from __future__ import annotations

import random
import secrets
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from typing import Callable, Iterator

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from ..db import insert_for
from ..models import ServiceSlot, utcnow

_slots = ServiceSlot.__table__  # Core statements: no ORM bookkeeping on the hot path

# (database, registration, bound) whose rows this process has made: one process may use several
# databases over its life (the test suite runs SQLite, then PostgreSQL).
_made: set[tuple[str, int, int]] = set()
_made_lock = threading.Lock()
_gates: dict[tuple[int, int], threading.BoundedSemaphore] = {}
_write_locks: dict[str, threading.Lock] = {}


@contextmanager
def write_turn(session: Session) -> Iterator[None]:
    """Hold this process's turn at a SQLite database's write lock for one transaction.

    SQLite lets one transaction write at a time; a thread that finds the lock taken sleeps in
    SQLite's busy handler (1, 2, 5, 10 ... 100 ms between looks), long after the lock is free.
    With ten threads each committing twice per score, those sleeps were most of the time a
    slot was held. Threads of one process queue here instead and go the moment the writer
    before them commits; other processes still meet SQLite's own lock. PostgreSQL locks rows,
    not the database: nothing to do.
    """
    bind = session.get_bind()
    if bind.dialect.name != "sqlite":
        yield
        return
    with _made_lock:
        lock = _write_locks.setdefault(str(bind.url), threading.Lock())
    with lock:
        yield


def gate(registration_id: int, bound: int) -> threading.BoundedSemaphore:
    """This process's gate for a registration: at most ``bound`` of its threads go for a row."""
    with _made_lock:
        return _gates.setdefault((registration_id, bound), threading.BoundedSemaphore(bound))


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
    return or_(_slots.c.holder.is_(None), _slots.c.lease_until < now)


# Built once with named parameters (building them per call cost more CPU than running them).
_ours = _slots.c.registration_id == bindparam("reg")
_PICK = (select(_slots.c.slot).where(_ours, _slots.c.slot < bindparam("bound"), _free(bindparam("now")))
         .order_by(_slots.c.slot).limit(1).with_for_update(skip_locked=True).scalar_subquery())
_CLAIM = (update(_slots).where(_ours, _slots.c.slot == _PICK, _free(bindparam("now")))
          .values(holder=bindparam("taker"), lease_until=bindparam("lease_end"))
          .returning(_slots.c.slot))
_FREE = (update(_slots).where(_ours, _slots.c.slot == bindparam("number"),
                              _slots.c.holder == bindparam("taker"))
         .values(holder=None, lease_until=None))


def claim(session: Session, registration_id: int, bound: int, lease: float) -> tuple[int, str] | None:
    """Take a free (or expired) slot in the session's transaction, without committing.

    Call it first in a transaction (it may commit to make missing rows). One UPDATE whose
    subquery picks a free row; the UPDATE re-checks "free or expired" itself, so two takers
    cannot both win it: SQLite runs one writer at a time, and PostgreSQL's ``FOR UPDATE SKIP
    LOCKED`` lets a racing taker pass over a row another transaction is taking (SQLite ignores
    the clause). None when every slot is busy.
    """
    ensure(session, registration_id, bound)
    got = _claim_once(session, registration_id, bound, lease)
    if got is None and _missing_rows(session, registration_id, bound):
        # The rows this process made are gone (the registration was removed and its id reused):
        # make them again rather than wait forever for slots that do not exist.
        session.rollback()
        with _made_lock:
            _made.discard((str(session.get_bind().url), registration_id, bound))
        ensure(session, registration_id, bound)
        got = _claim_once(session, registration_id, bound, lease)
    return got


def _claim_once(session: Session, registration_id: int, bound: int, lease: float):
    now = utcnow()
    holder = secrets.token_hex(8)
    slot = session.execute(_CLAIM, {"reg": registration_id, "bound": bound, "now": now,
                                    "taker": holder,
                                    "lease_end": now + timedelta(seconds=lease)}).scalar()
    return None if slot is None else (slot, holder)


def free(session: Session, registration_id: int, slot: int, holder: str) -> None:
    """Free a slot in the session's transaction, only if it is still ours (no commit)."""
    session.execute(_FREE, {"reg": registration_id, "number": slot, "taker": holder})


def try_take(session: Session, registration_id: int, bound: int, lease: float) -> tuple[int, str] | None:
    """(slot, holder) taken and committed now, or None when every slot is busy."""
    session.rollback()  # ``claim`` must start the transaction
    with write_turn(session):
        got = claim(session, registration_id, bound, lease)
        session.commit()
    return got


def _missing_rows(session: Session, registration_id: int, bound: int) -> bool:
    count = session.scalar(select(func.count()).select_from(_slots).where(
        _slots.c.registration_id == registration_id, _slots.c.slot < bound))
    return (count or 0) < bound


def release(session: Session, registration_id: int, slot: int, holder: str) -> None:
    """Free a slot and commit, only if it is still ours (after a lease ran out someone else may
    hold it)."""
    session.rollback()
    with write_turn(session):
        free(session, registration_id, slot, holder)
        session.commit()


def take(session: Session, registration_id: int, bound: int, lease: float, *, wait: float = 1.0,
         sleep: Callable[[float], None] = time.sleep) -> tuple[int, str] | None:
    """Take a slot, polling for up to ``wait`` seconds; None if none came free."""
    return poll(lambda: try_take(session, registration_id, bound, lease),
                time.monotonic() + wait, sleep)


def poll(attempt: Callable[[], object], deadline: float,
         sleep: Callable[[float], None] = time.sleep):
    """``attempt()`` until it returns something or ``deadline`` (monotonic) passes.

    Polling only happens while other processes hold the rows (this process's own threads wait
    at the gate), so a short jittered pause is enough.
    """
    while True:
        got = attempt()
        if got is not None or time.monotonic() >= deadline:
            return got
        sleep(random.uniform(0.02, 0.08))


@contextmanager
def held(session_factory: Callable[[], Session], registration_id: int, bound: int, lease: float,
         *, wait: float = 1.0) -> Iterator[int | None]:
    """``with held(...) as slot:`` -- slot is None when none came free within ``wait``."""
    deadline = time.monotonic() + wait
    door = gate(registration_id, bound)
    if not door.acquire(timeout=wait):
        yield None
        return
    got = None
    try:
        with session_factory() as session:
            got = take(session, registration_id, bound, lease,
                       wait=max(0.0, deadline - time.monotonic()))
        yield got[0] if got else None
    finally:
        if got is not None:
            with session_factory() as session:
                release(session, registration_id, got[0], got[1])
        door.release()


def in_use(session: Session, registration_id: int) -> int:
    """How many slots are held now (for tests and the benchmark)."""
    now = utcnow()
    return len(session.scalars(select(_slots.c.slot).where(
        _slots.c.registration_id == registration_id, _slots.c.holder.is_not(None),
        _slots.c.lease_until >= now)).all())
