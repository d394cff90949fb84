"""Template filters for how pages show times: UTC, named, short, with the exact time beside.

The database keeps naive UTC datetimes (``tool.models.base.utcnow``); run summaries carry ISO
strings ending in ``Z``. Pages show ``Nov 30, 15:25`` under a header that says UTC, inside
``<time datetime="2025-11-30T15:25:07Z">`` so the full time is there for tools and tooltips.
"""
from __future__ import annotations

from datetime import datetime, timezone

from flask import Flask
from markupsafe import Markup, escape


def _as_utc(value) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def utc_iso(value) -> str:
    moment = _as_utc(value)
    return moment.replace(microsecond=0).isoformat() + "Z" if moment else ""


def utc_short(value) -> str:
    """``Nov 30, 15:25``; the year is added when it is not this year's."""
    moment = _as_utc(value)
    if moment is None:
        return ""
    year = "" if moment.year == datetime.now(timezone.utc).year else f" {moment.year}"
    return f"{moment:%b} {moment.day}{year}, {moment:%H:%M}"


def utc_time(value, empty: str = "—") -> Markup:
    """A ``<time>`` element with the short text and the exact ISO time."""
    moment = _as_utc(value)
    if moment is None:
        return Markup(escape(empty))
    iso = utc_iso(moment)
    return Markup('<time datetime="{0}" title="{0}">{1}</time>').format(iso, utc_short(moment))


def register(app: Flask) -> None:
    app.jinja_env.filters.update(utc_iso=utc_iso, utc_short=utc_short, utc_time=utc_time)
