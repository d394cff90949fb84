"""Settings read from the environment, with defaults that run on a laptop.

Every URL the tool advertises (developer key JSON, OIDC redirect_uri, JWKS) is derived from
``TOOL_BASE_URL``, so the same code serves ``http://127.0.0.1:5000`` in a trial and
``https://tool.school.edu`` behind a TLS proxy.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _int(name: str, default: int) -> int:
    raw = _env(name)
    try:
        return int(raw) if raw is not None else default
    except ValueError as exc:
        raise SystemExit(f"Setting {name} must be a whole number, got {raw!r}") from exc


def _secret_key(key_dir: Path) -> str:
    """SECRET_KEY from the environment, else one generated on first start and kept on disk."""
    configured = _env("SECRET_KEY")
    if configured:
        return configured
    key_dir.mkdir(parents=True, exist_ok=True)
    path = key_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


@dataclass
class Settings:
    """The tool's configuration. ``Settings.from_env()`` is what ``app.py`` uses."""

    base_url: str = "http://127.0.0.1:5000"
    database_url: str = f"sqlite:///{ROOT / 'instance' / 'tool.db'}"
    key_dir: Path = ROOT / "keys"
    secret_key: str = ""
    port: int = 5000
    title: str = "Roster & Grades"
    description: str = "Provisions the whole course roster and sends grades back to the gradebook."
    # Number of proxies in front of the tool whose X-Forwarded-* headers are trusted (ProxyFix).
    proxy_hops: int = 1
    # Seconds of clock difference tolerated on id_token iat/exp (LTI 1.3 core §5.1.3 allows a leeway).
    jwt_leeway: int = 60
    # How long a login state/nonce stays usable between /lti/login and /lti/launch.
    login_state_ttl: int = 600
    # Lifetime of the signed page token that replaces a third-party session cookie.
    page_token_ttl: int = 8 * 3600
    # Platform JWKS: cached per URL for this long; an unknown kid refetches at most once per interval.
    jwks_cache_ttl: int = 24 * 3600
    jwks_refetch_interval: int = 10
    http_connect_timeout: float = 5.0
    http_read_timeout: float = 15.0
    redis_url: str | None = None
    # Roster sync (issue 3): a launch skips the sync when one succeeded this recently; every
    # known course is re-synced this often without a launch.
    roster_freshness: int = 600
    roster_sync_interval: int = 24 * 3600
    # Platform service calls (NRPS, AGS): total seconds spent retrying one call before giving
    # up; first backoff step; Canvas's leaky bucket (facts sheet section 9) for pacing.
    service_retry_budget: float = 120.0
    service_backoff: float = 1.0
    service_rate_low_water: float = 150.0
    service_rate_leak: float = 10.0
    jobs_immediate: bool = False
    jobs_path: Path = ROOT / "instance" / "jobs.db"
    jobs_workers: int = 2
    run_migrations: bool = True

    @classmethod
    def from_env(cls) -> "Settings":
        port = _int("PORT", 5000)
        key_dir = Path(_env("TOOL_KEY_DIR", str(ROOT / "keys")))
        return cls(
            base_url=(_env("TOOL_BASE_URL", f"http://127.0.0.1:{port}")).rstrip("/"),
            database_url=_env("DATABASE_URL", f"sqlite:///{ROOT / 'instance' / 'tool.db'}"),
            key_dir=key_dir,
            secret_key=_secret_key(key_dir),
            port=port,
            title=_env("TOOL_TITLE", cls.title),
            proxy_hops=_int("PROXY_HOPS", 1),
            jwt_leeway=_int("JWT_LEEWAY", 60),
            redis_url=_env("REDIS_URL"),
            roster_freshness=_int("ROSTER_FRESHNESS_SECONDS", 600),
            roster_sync_interval=_int("ROSTER_SYNC_INTERVAL_SECONDS", 24 * 3600),
            service_retry_budget=float(_int("SERVICE_RETRY_SECONDS", 120)),
            jobs_workers=_int("JOBS_WORKERS", 2),
            jobs_immediate=_env("JOBS_IMMEDIATE", "0") == "1",
            jobs_path=Path(_env("JOBS_DB", str(ROOT / "instance" / "jobs.db"))),
        )
