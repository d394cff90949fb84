"""Job workers that say they are alive, so the web pages can tell when none is."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class JobWorker(Base):
    """One running job consumer (``python app.py``'s threads or ``flask --app app jobs worker``);
    ``seen_at`` moves every few seconds while it runs, and the row goes when it stops cleanly."""

    __tablename__ = "job_workers"

    worker_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    is_periodic: Mapped[bool] = mapped_column(Boolean)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    seen_at: Mapped[datetime] = mapped_column(DateTime, index=True)
