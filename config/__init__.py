"""Settings read from the environment, with defaults that run on a laptop.

Every URL the tool advertises (developer key JSON, OIDC redirect_uri, JWKS) is derived from
``TOOL_BASE_URL``, so the same code serves ``http://127.0.0.1:5000`` in a trial and
``https://tool.school.edu`` behind a TLS proxy.
"""
from __future__ import annotations

import ipaddress
import os
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK_NAMES = {"localhost"}


class StartupError(Exception):
    """A setting or a resource the tool needs at start is wrong: one line that names the setting
    and the fix. ``app.py`` prints it (never a traceback) and exits non-zero."""

    def __init__(self, setting: str, problem: str, fix: str) -> None:
        self.setting, self.problem, self.fix = setting, problem, fix
        super().__init__(f"{setting}: {problem}. {fix}")


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


_ON = {"1", "true", "yes", "on"}
_OFF = {"0", "false", "no", "off"}


def _switch(name: str, default: bool) -> bool:
    """An on/off setting: 1/0, true/false, yes/no, on/off; anything else is a setting error."""
    raw = _env(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _ON or value in _OFF:
        return value in _ON
    raise StartupError(name, f"must be 1 or 0, got {raw[:40]!r}",
                       f"Set {name}=1 or {name}=0, or unset it for the default")


def _int(name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise StartupError(name, f"must be a whole number, got {raw!r}",
                           f"Set {name} to a number such as {default}, or unset it for the default") from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise StartupError(name, f"must be {bounds}, got {value}",
                           f"Set {name} to a number such as {default}, or unset it for the default")
    return value


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(raw: str) -> tuple[str, str | None]:
    """TOOL_BASE_URL as the tool will advertise it, and a warning when it is plain http.

    Every URL handed to a platform (OIDC redirect_uri, JWKS, launch) is this value plus a path,
    so it must be an absolute http(s) URL with a host and nothing after the path: a query or a
    fragment would end up in the middle of every advertised URL, credentials would be published.
    A path prefix (a proxy serving the tool under ``/tool``) is allowed; a trailing slash is dropped.
    LTI 1.3 needs https (Security Framework §3); plain http is for trials on loopback only.
    """
    example = "Set it to the address platforms reach the tool at, such as https://tool.school.edu"
    value = raw.strip()
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in value):
        raise StartupError("TOOL_BASE_URL", f"contains spaces or control characters: {raw!r}", example)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise StartupError("TOOL_BASE_URL", f"{raw!r} is not an absolute http(s) URL", example)
    try:
        parts.port  # an out-of-range or non-numeric port raises here
    except ValueError:
        raise StartupError("TOOL_BASE_URL", f"{raw!r} has an invalid port", example) from None
    if not parts.hostname:
        raise StartupError("TOOL_BASE_URL", f"{raw!r} has no host name", example)
    if "@" in parts.netloc:
        shown = f"{parts.scheme}://***@{parts.netloc.rsplit('@', 1)[1]}"
        raise StartupError("TOOL_BASE_URL", f"{shown!r} contains a user name or password",
                           "Remove the credentials: the URL is published to every platform")
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise StartupError("TOOL_BASE_URL", f"{raw!r} has a query or fragment",
                           "Give only the scheme, host, port and optional path prefix")
    path = parts.path.rstrip("/")
    if path and any(seg in ("", ".", "..") for seg in path.split("/")[1:]):
        raise StartupError("TOOL_BASE_URL", f"{raw!r} has an unclear path {parts.path!r}",
                           "Give a plain path prefix such as /tool, or none")
    url = f"{parts.scheme}://{parts.netloc.lower()}{path}"
    warning = None
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        warning = (f"TOOL_BASE_URL {url} is plain http: platforms and browsers need https outside "
                   f"127.0.0.1 and localhost. Serve the tool behind TLS and set TOOL_BASE_URL=https://...")
    return url, warning


def _secret_key(key_dir: Path) -> str:
    """SECRET_KEY from the environment, else one generated on first start and kept on disk.

    Several processes may start together on an empty key folder (gunicorn's workers, a job
    worker): each writes its candidate to a private temporary file and links it into place,
    which succeeds for exactly one of them, so the file is never seen half-written and every
    process ends up with the winner's secret.
    """
    configured = _env("SECRET_KEY")
    if configured:
        return configured
    path = key_dir / "secret_key"
    try:
        key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            publish_private_file(key_dir, path, secrets.token_urlsafe(48).encode())
        return _read_secret(path)
    except OSError as exc:
        raise key_dir_error(key_dir, exc) from None


def publish_private_file(folder: Path, path: Path, data: bytes) -> None:
    """Put ``data`` at ``path`` (mode 0600) unless another process got there first (then keep
    theirs): written to a private temporary file in ``folder``, then linked into place, which is
    atomic and fails if the name exists, so the file is never seen half-written."""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(temp)


SECRET_WAIT_SECONDS = 5.0


def _read_secret(path: Path) -> str:
    """The stored secret; an empty file (one being written by an older version's start) is
    waited for briefly rather than taken as an empty secret."""
    deadline = time.monotonic() + SECRET_WAIT_SECONDS
    while True:
        value = path.read_text().strip()
        if value:
            return value
        if time.monotonic() > deadline:
            raise StartupError("SECRET_KEY", f"the generated secret in {str(path)!r} is empty",
                               "Delete that file (a new one is made on start) or set SECRET_KEY")
        time.sleep(0.05)


def key_dir_error(key_dir: Path, exc: OSError) -> StartupError:
    """The key folder cannot be used: say which path and what stands in the way."""
    fix = "Point TOOL_KEY_DIR at a folder the tool's user can read and write"
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        return StartupError("TOOL_KEY_DIR", f"{str(key_dir)!r} is a file, not a folder", fix)
    where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(key_dir) else ""
    return StartupError("TOOL_KEY_DIR", f"cannot use the key folder {str(key_dir)!r}: "
                        f"{(exc.strerror or exc.__class__.__name__).lower()}{where}", fix)


@dataclass
class Settings:
    """The tool's configuration. ``Settings.from_env()`` is what ``app.py`` uses."""

    base_url: str = "http://127.0.0.1:5000"
    database_url: str = f"sqlite:///{ROOT / 'instance' / 'tool.db'}"
    key_dir: Path = ROOT / "keys"
    secret_key: str = ""
    port: int = 5000
    # Address `python app.py` listens on; 0.0.0.0 only when HOST says so.
    host: str = "127.0.0.1"
    title: str = "Roster & Grades"
    description: str = "Provisions the whole course roster and sends grades back to the gradebook."
    # Number of proxies in front of the tool whose X-Forwarded-* headers are trusted (ProxyFix).
    # None by default: a direct client's forwarded headers must change nothing.
    proxy_hops: int = 0
    # X-Forwarded-Prefix is honoured only when this is set (and proxy_hops > 0).
    trust_forwarded_prefix: bool = False
    # Largest request body accepted (a Canvas id_token is tens of KB); larger gets 413 unread.
    max_body_bytes: int = 1024 * 1024
    # Seconds of clock difference tolerated on id_token iat/exp (LTI 1.3 core §5.1.3 allows a leeway).
    jwt_leeway: int = 60
    # How long a login state/nonce stays usable between /lti/login and /lti/launch.
    login_state_ttl: int = 600
    # Absolute lifetime of a page session, counted from its launch; page views never extend it.
    session_lifetime: int = 2 * 3600
    # Platform JWKS: cached per URL for this long; an unknown kid refetches at most once per interval.
    jwks_cache_ttl: int = 24 * 3600
    jwks_refetch_interval: int = 5
    http_connect_timeout: float = 5.0
    http_read_timeout: float = 15.0
    # PostgreSQL: the launch's hot statements prepared once per connection. Off behind a
    # transaction-mode connection pooler (PgBouncer), which hands each transaction to any server
    # connection, where a statement prepared on another one does not exist.
    database_prepared_statements: bool = True
    redis_url: str | None = None
    # Roster sync: a launch skips the sync when one succeeded this recently; every
    # known course is re-synced this often without a launch.
    roster_freshness: int = 600
    roster_sync_interval: int = 24 * 3600
    # Platform service calls (NRPS, AGS): total seconds spent retrying one call before giving
    # up; first backoff step; Canvas's leaky bucket (facts sheet section 9) for pacing.
    service_retry_budget: float = 120.0
    service_backoff: float = 1.0
    service_rate_low_water: float = 150.0
    service_rate_leak: float = 10.0
    # Score delivery (AGS): calls in flight per platform client across every worker (Canvas
    # throttles per developer key); longest wait between tries of one score; how often the
    # gradebook view re-reads what the platform holds while it is open.
    delivery_concurrency: int = 10
    delivery_max_backoff: float = 3600.0
    results_refresh: int = 300
    jobs_immediate: bool = False
    jobs_path: Path = ROOT / "instance" / "jobs.db"
    # Enough threads for DELIVERY_CONCURRENCY scores in flight plus two waiting with their next row.
    jobs_workers: int = 12
    run_migrations: bool = True
    # Dynamic registration: how long a `platform invite` code stays usable.
    registration_invite_ttl: int = 24 * 3600
    # The sandbox (an emulated LMS in the same process): None = on when TOOL_BASE_URL is loopback;
    # True/False from SANDBOX=1/0. Off loopback it also needs SANDBOX_PASSWORD, since it mints launches.
    sandbox: bool | None = None
    sandbox_password: str | None = None
    # Lines for the operator found while reading the settings (printed once at start).
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_env(cls) -> "Settings":
        port = _int("PORT", 5000, minimum=1, maximum=65535)
        key_dir = Path(_env("TOOL_KEY_DIR", str(ROOT / "keys")))
        base_url, warning = check_base_url(_env("TOOL_BASE_URL", f"http://127.0.0.1:{port}"))
        return cls(
            base_url=base_url,
            warnings=[warning] if warning else [],
            database_url=_env("DATABASE_URL", f"sqlite:///{ROOT / 'instance' / 'tool.db'}"),
            database_prepared_statements=_switch("DATABASE_PREPARED_STATEMENTS", True),
            key_dir=key_dir,
            secret_key=_secret_key(key_dir),
            port=port,
            host=_env("HOST", "127.0.0.1"),
            session_lifetime=_int("SESSION_LIFETIME_SECONDS", 2 * 3600, minimum=60),
            max_body_bytes=_int("MAX_BODY_BYTES", 1024 * 1024, minimum=1024),
            trust_forwarded_prefix=_env("TRUST_FORWARDED_PREFIX", "0") == "1",
            title=_env("TOOL_TITLE", cls.title),
            proxy_hops=_int("PROXY_HOPS", 0),
            jwt_leeway=_int("JWT_LEEWAY", 60),
            redis_url=_env("REDIS_URL"),
            roster_freshness=_int("ROSTER_FRESHNESS_SECONDS", 600),
            delivery_concurrency=_int("DELIVERY_CONCURRENCY", 10, minimum=1, maximum=100),
            delivery_max_backoff=float(_int("DELIVERY_MAX_BACKOFF_SECONDS", 3600, minimum=1)),
            results_refresh=_int("RESULTS_REFRESH_SECONDS", 300, minimum=10),
            roster_sync_interval=_int("ROSTER_SYNC_INTERVAL_SECONDS", 24 * 3600, minimum=60),
            service_retry_budget=float(_int("SERVICE_RETRY_SECONDS", 120)),
            jobs_workers=_int("JOBS_WORKERS", 12, minimum=1),
            jobs_immediate=_env("JOBS_IMMEDIATE", "0") == "1",
            jobs_path=Path(_env("JOBS_DB", str(ROOT / "instance" / "jobs.db"))),
            registration_invite_ttl=_int("REGISTRATION_INVITE_SECONDS", 24 * 3600, minimum=60),
            sandbox={"1": True, "0": False}.get(_env("SANDBOX", "") or "", None),
            sandbox_password=_env("SANDBOX_PASSWORD"),
        )
