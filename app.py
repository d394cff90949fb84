"""Entry point: ``app`` for ``flask --app app``/WSGI servers; ``python app.py`` runs everything locally."""
from __future__ import annotations

from tool import create_app
from tool.jobs import huey  # noqa: F401  (`huey_consumer app.huey` runs workers too)

app = create_app()


def main() -> None:
    from waitress import serve

    from tool import jobs

    settings = app.config["SETTINGS"]
    if not settings.jobs_immediate:
        # One machine, one command: background jobs run in threads beside the web server.
        jobs.start_consumer()
    print(f"Tool at {settings.base_url} (listening on 0.0.0.0:{settings.port})")
    print(f"Canvas developer key URL: {settings.base_url}/lti/canvas.json")
    serve(app, host="0.0.0.0", port=settings.port, threads=8)


if __name__ == "__main__":
    main()
