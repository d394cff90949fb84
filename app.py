"""Entry point: ``app`` for ``flask --app app``/WSGI servers; ``python app.py`` runs everything locally."""
from __future__ import annotations

from tool import create_app

app = create_app()


def main() -> None:
    from waitress import serve

    settings = app.config["SETTINGS"]
    print(f"Tool at {settings.base_url} (listening on 0.0.0.0:{settings.port})")
    print(f"Canvas developer key URL: {settings.base_url}/lti/canvas.json")
    serve(app, host="0.0.0.0", port=settings.port, threads=8)


if __name__ == "__main__":
    main()
