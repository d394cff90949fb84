"""The repository's production set-up serves launches: gunicorn with ``gunicorn.conf.py``
(preloaded app, forked gthread workers, no job threads) on SQLite and on PostgreSQL, an
emulated Canvas in its own process, and several client processes launching at once.

Preloading on PostgreSQL once let workers talk on the parent's connections (two answers of 500
in 784 launches); here every launch of every client must land on its page. The harness is
``bench/load.py`` (the same run that measures speed), asked only for a short fixed count and
judged on errors, never on time.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import postgres_reason

ROOT = Path(__file__).resolve().parent.parent


def test_four_preloaded_gunicorn_workers_serve_every_launch_on_each_database():
    command = [sys.executable, "bench/load.py", "--workers", "4", "--db", "sqlite,postgresql",
               "--launches", "80", "--clients", "4", "--students", "20", "--no-baseline"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output  # the harness exits 1 on any failed launch
    served = dict(re.findall(r"tool-(sqlite|postgresql)-w4: 80 launches in [\d.]+ s, .*?, (\d+) errors",
                             output))
    expected = {"sqlite"} if postgres_reason() else {"sqlite", "postgresql"}
    assert set(served) == expected, output
    assert all(errors == "0" for errors in served.values()), output
    assert "Traceback" not in output, output
