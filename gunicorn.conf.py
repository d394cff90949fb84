"""Production web server: ``gunicorn`` run in this folder reads this file by itself.

    DATABASE_URL=postgresql://... REDIS_URL=redis://... SECRET_KEY=... TOOL_KEY_DIR=/srv/tool/keys \
    TOOL_BASE_URL=https://tool.school.edu gunicorn

The web processes never run background jobs (``app:app`` starts no job threads; only
``python app.py`` does): run ``flask --app app jobs worker`` beside them. The instructor page
says so when no worker is running. Every value below can be overridden on the command line.
"""
from __future__ import annotations

import multiprocessing
import os


def _whole(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"Cannot start the tool: {name}: must be a whole number, got {raw!r}. "
                         f"Set {name} to a number such as {default}, or unset it for the default")
    return max(value, minimum)


wsgi_app = "app:app"

# Same HOST/PORT as `python app.py`: loopback unless HOST says otherwise (a TLS proxy in front
# usually runs on the same machine).
_host = os.environ.get("HOST", "").strip() or "127.0.0.1"
bind = [f"[{_host}]:{_whole('PORT', 5000)}" if ":" in _host else f"{_host}:{_whole('PORT', 5000)}"]

# A launch is mostly cryptography and a few short queries: 2 x cores + 1 processes keep every
# core busy while others wait on the database; capped so a big machine does not open more
# database connections than PostgreSQL's default max_connections (100) allows.
workers = _whole("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 12))
worker_class = "gthread"
# Threads cover requests waiting on the database or the platform's key set.
threads = _whole("WEB_THREADS", 4)

# The app is built once in the master (migrations and the first key run once, and a wrong
# setting stops the server with its one line instead of failing every worker), then forked:
# tool/db.py gives each child fresh database connections, tool/startup.py a fresh queue handle.
preload_app = True

# A request that takes longer than this is stuck (the platform calls that can be slow run in
# jobs): the worker is restarted.
timeout = 30
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then, so a slow leak in any library never grows without bound.
max_requests = 5000
max_requests_jitter = 500

accesslog = "-"
errorlog = "-"
loglevel = "info"
# Forwarded headers are the app's business (PROXY_HOPS): gunicorn must not apply its own.
forwarded_allow_ips = ""
secure_scheme_headers: dict[str, str] = {}
# Same body limit is enforced by the app (MAX_BODY_BYTES); these bound the request line and headers.
limit_request_line = 8190
limit_request_fields = 100
