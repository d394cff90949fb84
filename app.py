"""Entry point: ``app`` for ``flask --app app``/WSGI servers; ``python app.py`` runs everything locally.

A setting the tool cannot start with (``config.StartupError``) is printed as one line on stderr
and the process exits with status 2, both for ``python app.py`` and for every ``flask --app app``
command (Flask imports this module first), so a person never reads a traceback to learn that
the database is down or the key folder unreadable.
"""
from __future__ import annotations

import errno
import sys
from typing import NoReturn

from config import StartupError
from tool import create_app
from tool.jobs import huey  # noqa: F401  (`huey_consumer app.huey` runs workers too)

EXIT_STARTUP = 2


def fail(message: str) -> NoReturn:
    print(f"Cannot start the tool: {message}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_STARTUP)


def _create_app():
    try:
        return create_app()
    except StartupError as exc:
        fail(str(exc))


app = _create_app()


def _bind_error(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (f"PORT: {port} is already in use on {host}. Stop the program using it, "
                f"or set PORT to a free port")
    if exc.errno == errno.EACCES:
        return f"PORT: {port} needs administrator rights on {host}. Set PORT to 1024 or above"
    if exc.errno == errno.EADDRNOTAVAIL or exc.errno is None or exc.errno < 0:
        # getaddrinfo failures carry negative errnos: the name in HOST does not resolve.
        return (f"HOST: cannot listen on {host!r} ({exc.strerror or exc}). Set HOST to an address "
                f"of this machine, such as 127.0.0.1 or 0.0.0.0")
    return f"HOST/PORT: cannot listen on {host}:{port} ({exc.strerror or exc}). Check HOST and PORT"


def main() -> None:
    from waitress import create_server

    from tool import jobs

    settings = app.config["SETTINGS"]
    try:
        # Bind before the job threads start: a port in use ends here, with nothing to stop.
        # The same body limit as the app's: waitress would otherwise buffer up to 1 GiB first.
        server = create_server(app, host=settings.host, port=settings.port, threads=8,
                               max_request_body_size=settings.max_body_bytes)
    except OSError as exc:
        fail(_bind_error(settings.host, settings.port, exc))
    except ValueError:
        # waitress resolves HOST first and reports a name that does not resolve this way.
        fail(f"HOST: {settings.host!r} is not an address of this machine. Set HOST to an address "
             f"such as 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)")
    if not settings.jobs_immediate:
        # One machine, one command: background jobs run in threads beside the web server.
        jobs.start_consumer()
    where = f"[{settings.host}]" if ":" in settings.host else settings.host
    print(f"Listening on http://{where}:{settings.port} (HOST, PORT); platforms reach it as "
          f"{settings.base_url} (TOOL_BASE_URL)", flush=True)
    print(f"Canvas developer key URL: {settings.base_url}/lti/canvas.json", flush=True)
    if "sandbox" in app.extensions:  # tool/sandbox: an emulated LMS to try the tool without Canvas
        print(f"Try it without Canvas: open {settings.base_url}/ (the sandbox; SANDBOX=0 turns it off)",
              flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
