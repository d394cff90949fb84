"""The roster as a CSV download: cells a spreadsheet cannot run, a file name any browser takes.

Cells: OWASP "CSV Injection" rule. A spreadsheet treats a cell that begins with ``=``, ``+``,
``-`` or ``@`` as a formula (and a leading tab or carriage return can hide one), so such a
cell gets a leading ``'``, which spreadsheets show as text. Every text cell gets it: names,
emails and user ids come from the platform, and roles and reasons may.

File name: RFC 6266 §4.3 with RFC 5987 (``filename*=UTF-8''...``, percent-encoded) for the
course label as it is, plus a plain ``filename="..."`` of safe printable ASCII for clients that
do not read ``filename*``. Control characters never reach the header (a newline there is a
header injection, and werkzeug refuses it).
"""
from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
LABEL_MAX = 60  # characters of the course label kept in the file name
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]+")
_NOT_ASCII_SAFE = re.compile(r"[^A-Za-z0-9 ._()\-]+")


def cell(value) -> str:
    """One CSV cell as text, neutralised when a spreadsheet would read it as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def file_label(label: str | None, fallback: str | None = None) -> str:
    """The course label as a file name part: no control characters, no path separators."""
    for candidate in (label, fallback):
        text = " ".join(_CONTROL.sub(" ", candidate or "").split())
        text = text.replace("/", "-").replace("\\", "-")[:LABEL_MAX].strip()
        if text:
            return text
    return "course"


def ascii_name(name: str) -> str:
    """``name`` in safe printable ASCII: accents dropped (NFKD), anything else becomes ``_``."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    plain = _NOT_ASCII_SAFE.sub("_", plain)
    plain = re.sub(r" +(?=\.)", "", re.sub(r"_+", "_", re.sub(r" +", " ", plain))).strip(" _")
    return plain if plain and plain not in (".", "..") else "roster.csv"


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII ``filename`` and the exact ``filename*`` (RFC 6266 §4.3)."""
    return f'attachment; filename="{ascii_name(filename)}"; filename*=UTF-8\'\'{quote(filename, safe="")}'
