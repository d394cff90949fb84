"""Starting the tool with a wrong setting: one plain line naming the setting, a non-zero exit.

Each case runs the real entry points in a child process, the way an administrator does:
``python app.py`` and ``python -m flask --app app ...``. Before, each of these printed a
Python traceback (49, 136 and 28 lines for a bad DATABASE_URL, a database that is down and a
port in use).
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from support import free_port

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ("DATABASE_URL", "TOOL_KEY_DIR", "JOBS_DB", "TOOL_BASE_URL", "PORT", "HOST", "SECRET_KEY",
            "SESSION_LIFETIME_SECONDS", "MAX_BODY_BYTES", "JWT_LEEWAY", "PROXY_HOPS", "JOBS_WORKERS")
DOWN = "postgresql://postgres@127.0.0.1:1/x"


def _env(tmp_path: Path, **overrides: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'db' / 'tool.db'}", TOOL_KEY_DIR=str(tmp_path / "keys"),
               JOBS_DB=str(tmp_path / "jobs" / "jobs.db"), JOBS_IMMEDIATE="1", PYTHONUNBUFFERED="1")
    env.update(overrides)
    return env


def _run(args: list[str], env: dict, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _one_line_naming(result: subprocess.CompletedProcess, setting: str) -> str:
    assert result.returncode != 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert setting in lines[0], lines[0]
    return lines[0]


def _file(tmp_path: Path) -> str:
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return str(path)


CASES = {
    "database url unparseable": ("DATABASE_URL", lambda tmp: {"DATABASE_URL": "not a database url"}),
    "database driver unknown": ("DATABASE_URL", lambda tmp: {"DATABASE_URL": "oracle://scott@db.example/x"}),
    "database down": ("DATABASE_URL", lambda tmp: {"DATABASE_URL": DOWN}),
    "sqlite folder is a file": ("DATABASE_URL", lambda tmp: {"DATABASE_URL": f"sqlite:///{_file(tmp)}/tool.db"}),
    "key folder is a file": ("TOOL_KEY_DIR", lambda tmp: {"TOOL_KEY_DIR": _file(tmp)}),
    "key folder is a file, secret key given": ("TOOL_KEY_DIR", lambda tmp: {"TOOL_KEY_DIR": _file(tmp),
                                                                             "SECRET_KEY": "s" * 40}),
    "job queue folder is a file": ("JOBS_DB", lambda tmp: {"JOBS_DB": _file(tmp) + "/jobs.db",
                                                           "JOBS_IMMEDIATE": "0"}),
    "base url without scheme": ("TOOL_BASE_URL", lambda tmp: {"TOOL_BASE_URL": "tool.example.edu"}),
    "base url with query": ("TOOL_BASE_URL", lambda tmp: {"TOOL_BASE_URL": "https://tool.example.edu/?a=1"}),
    "base url with credentials": ("TOOL_BASE_URL", lambda tmp: {"TOOL_BASE_URL": "https://u:pw@tool.example.edu"}),
    "base url bad port": ("TOOL_BASE_URL", lambda tmp: {"TOOL_BASE_URL": "https://tool.example.edu:99999"}),
    "port not a number": ("PORT", lambda tmp: {"PORT": "80a"}),
    "port out of range": ("PORT", lambda tmp: {"PORT": "70000"}),
    "lifetime not a number": ("SESSION_LIFETIME_SECONDS", lambda tmp: {"SESSION_LIFETIME_SECONDS": "2h"}),
    "prepared statements neither on nor off": ("DATABASE_PREPARED_STATEMENTS",
                                               lambda tmp: {"DATABASE_PREPARED_STATEMENTS": "pgbouncer"}),
}


@pytest.mark.parametrize("entry", [["app.py"], ["-m", "flask", "--app", "app", "platform", "list"]],
                         ids=["python app.py", "flask platform list"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_wrong_setting_is_one_line_naming_it(case, entry, tmp_path):
    setting, overrides = CASES[case]
    line = _one_line_naming(_run(entry, _env(tmp_path, **overrides(tmp_path))), setting)
    assert "pw@" not in line  # a password in a URL is never echoed


def test_database_down_message_hides_the_password_and_says_what_to_do(tmp_path):
    line = _one_line_naming(_run(["app.py"], _env(tmp_path, DATABASE_URL="postgresql://u:hunter2@127.0.0.1:1/x")),
                            "DATABASE_URL")
    assert "hunter2" not in line and "127.0.0.1:1" in line and "Start the database" in line


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root reads a chmod 000 folder anyway; the file-for-folder cases cover it")
def test_unreadable_key_folder(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0)
    try:
        for entry in (["app.py"], ["-m", "flask", "--app", "app", "keys", "rotate"]):
            _one_line_naming(_run(entry, _env(tmp_path, TOOL_KEY_DIR=str(folder))), "TOOL_KEY_DIR")
    finally:
        folder.chmod(0o700)


@pytest.mark.parametrize("command", [["keys", "rotate"], ["keys", "retire", "some-kid"], ["keys", "list"]])
def test_key_commands_with_a_key_folder_that_is_a_file(command, tmp_path):
    result = _run(["-m", "flask", "--app", "app", *command],
                  _env(tmp_path, TOOL_KEY_DIR=_file(tmp_path), SECRET_KEY="s" * 40))
    _one_line_naming(result, "TOOL_KEY_DIR")


def test_port_in_use_is_one_line_and_a_quick_exit(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = _run(["app.py"], _env(tmp_path, PORT=str(port), JOBS_IMMEDIATE="0"), timeout=30)
    assert time.monotonic() - started < 20
    line = _one_line_naming(result, "PORT")
    assert str(port) in line and "in use" in line


def test_host_that_is_not_this_machine_is_one_line(tmp_path):
    _one_line_naming(_run(["app.py"], _env(tmp_path, HOST="no-such-host.invalid", PORT=str(free_port()))),
                     "HOST")


def _other_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET: nothing is sent for a UDP connect
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_python_app_py_listens_on_loopback_unless_host_says_otherwise(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=_env(tmp_path, PORT=str(port)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in first, (first, proc.stderr.read() if proc.poll() else "")
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        other = _other_address()
        if other:
            with pytest.raises(OSError):
                socket.create_connection((other, port), timeout=2).close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_plain_http_base_url_off_loopback_warns_and_still_starts(tmp_path):
    result = _run(["-m", "flask", "--app", "app", "platform", "list"],
                  _env(tmp_path, TOOL_BASE_URL="http://tool.example.edu/"))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    warning = [line for line in result.stderr.splitlines() if "TOOL_BASE_URL" in line]
    assert len(warning) == 1 and "https" in warning[0]


def test_loopback_base_url_does_not_warn(tmp_path):
    result = _run(["-m", "flask", "--app", "app", "platform", "list"],
                  _env(tmp_path, TOOL_BASE_URL="http://localhost:5000"))
    assert result.returncode == 0 and "TOOL_BASE_URL" not in result.stderr, result.stderr


@pytest.mark.parametrize("raw, expected", [
    ("https://tool.example.edu/", "https://tool.example.edu"),
    ("https://Tool.Example.edu:8443", "https://tool.example.edu:8443"),
    ("https://school.edu/tool/", "https://school.edu/tool"),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("http://[::1]:5000/", "http://[::1]:5000"),
])
def test_base_url_is_normalised(raw, expected):
    from config import check_base_url
    url, warning = check_base_url(raw)
    assert url == expected and warning is None


@pytest.mark.parametrize("raw", ["ftp://tool.example.edu", "https://", "https://tool.example.edu#x",
                                 "https://tool.example.edu/a//b", "https://tool.example.edu/../x",
                                 "https://tool.example.edu/a b", "https://tool.example.edu?"])
def test_base_url_confusions_are_refused(raw):
    from config import StartupError, check_base_url
    with pytest.raises(StartupError) as refused:
        check_base_url(raw)
    assert str(refused.value).startswith("TOOL_BASE_URL: ")


CLI_WITH_DATABASE_DOWN = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from config import Settings
    from tool import create_app
    tmp = Path(sys.argv[1])
    # The database went away after the tool started: commands meet it mid-way.
    app = create_app(Settings(database_url=sys.argv[2], key_dir=tmp / "keys", secret_key="s",
                              jobs_path=tmp / "jobs.db", jobs_immediate=True, run_migrations=False))
    out = []
    for args in (["platform", "list"], ["platform", "remove", "--issuer", "https://x.example",
                 "--client-id", "1", "--yes"], ["platform", "add", "--canvas", "https://s.instructure.com",
                 "--client-id", "1"], ["keys", "list"], ["keys", "rotate"], ["keys", "retire", "k"],
                 ["db", "upgrade"], ["roster", "sync", "c1"], ["roster", "sync", "--all"],
                 ["roster", "show", "c1"], ["grades", "status", "c1"], ["grades", "push", "c1"],
                 ["jobs", "schedule"]):
        result = app.test_cli_runner().invoke(args=args)
        out.append({"args": args, "code": result.exit_code, "output": result.output,
                    "exception": type(result.exception).__name__ if result.exception else None})
    print(json.dumps(out))
""")


def test_commands_meeting_a_database_that_is_down_fail_with_one_line(tmp_path):
    result = _run(["-c", CLI_WITH_DATABASE_DOWN, str(tmp_path), DOWN], _env(tmp_path), timeout=60)
    assert result.returncode == 0, result.stderr
    for run in json.loads(result.stdout.strip().splitlines()[-1]):
        assert run["code"] == 1 and run["exception"] == "SystemExit", run
        lines = [line for line in run["output"].splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error: ") and "DATABASE_URL" in lines[0], run
        assert "Traceback" not in run["output"] and not re.search(r"\bSELECT\b", run["output"]), run
