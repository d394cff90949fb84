"""What the roster hands out and how it fails: CSV cells and file names, plain failure reasons,
members the database refuses, absurd query parameters, private SQLite files, the roster CLI."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest
import requests
from emulator import INSTRUCTOR, LEARNER
from rosterkit import (add_course_to_tool, context_id_of, fast_retries,  # noqa: F401
                       page_token, roster, sync)
from sqlalchemy import update

ROOT = Path(__file__).resolve().parents[2]
FORMULAS = ['=HYPERLINK("http://x")', "+1", "-2", "@SUM(1)"]


def _set(tool, model, where, **values):
    from tool.db import db
    with tool.app.app_context():
        db.session.execute(update(model).where(where).values(**values))
        db.session.commit()
        db.session.remove()


def _csv(tool, t, **params):
    r = requests.get(tool.base_url + "/instructor/roster.csv", params={"t": t, **params}, timeout=10)
    return r, (list(csv.DictReader(io.StringIO(r.text, newline=""))) if r.status_code == 200 else [])


# -- CSV export -------------------------------------------------------------------------------

def test_csv_cells_a_spreadsheet_would_run_start_with_a_quote(tool, lms):
    from tool.models import User
    p = lms.platform
    people = [p.add_user(name=formula) for formula in FORMULAS]
    mailer = p.add_user(name="Mail Formula", email="=cmd|' /C calc'!A0@school.example")
    tabbed = p.add_user(name="CR Person")
    for user in people + [mailer, tabbed]:
        p.enroll(lms.course, user, roles=[LEARNER])
    t = page_token(lms.launch(lms.teacher))
    assert sync(tool, context_id_of(lms)).status == "succeeded"
    # Tabs and carriage returns never survive a sync's cleaning; set them as an older tool did.
    _set(tool, User, User.sub == lms.student.sub, name="\tTab Leading")
    _set(tool, User, User.sub == tabbed.sub, name="\rCR Leading")

    r, rows = _csv(tool, t)

    assert r.status_code == 200
    by_email = {row["email"]: row for row in rows}
    for formula, user in zip(FORMULAS, people):
        assert by_email[user.email]["name"] == "'" + formula
    assert by_email["'" + mailer.email]["name"] == "Mail Formula"
    assert by_email[lms.student.email]["name"] == "'\tTab Leading"
    assert by_email[tabbed.email]["name"] == "'\rCR Leading"
    # No cell of any row begins with what a spreadsheet would evaluate.
    assert not [cell for row in rows for cell in row.values() if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    # Ordinary cells are untouched.
    assert by_email[lms.teacher.email]["name"] == lms.teacher.name


@pytest.mark.parametrize("label, shown", [("Čeština 🎓", "Čeština 🎓"), ('a\nb"c', 'a b"c')])
def test_the_csv_file_name_works_for_any_course_label(tool, lms, label, shown):
    from tool.models import Context
    t = page_token(lms.launch(lms.teacher))
    _set(tool, Context, Context.id == context_id_of(lms), label=label)

    r, rows = _csv(tool, t)

    assert r.status_code == 200 and [row["name"] for row in rows] == [lms.teacher.name]
    disposition = r.headers["Content-Disposition"]
    assert disposition.isascii() and "\n" not in disposition and "\r" not in disposition
    exact = re.search(r"filename\*=UTF-8''([^;\s]+)", disposition)
    assert exact and unquote(exact.group(1), encoding="utf-8") == f"roster-{shown}.csv"
    fallback = re.search(r'filename="([^"]*)"', disposition).group(1)
    assert fallback.endswith(".csv") and all(32 <= ord(ch) < 127 for ch in fallback)


# -- plain failure reasons ----------------------------------------------------------------------

def test_a_database_failure_shows_no_sql_and_no_one_elses_data(tool, lms, monkeypatch, caplog):
    from sqlalchemy.exc import IntegrityError
    from tool.roster import sync as sync_module
    secret_sql = "INSERT INTO users (sub, email) VALUES (%(sub)s, %(email)s)"
    leaked = {"sub": lms.student.sub, "email": lms.student.email}

    def refuse(*args, **kwargs):
        raise IntegrityError(secret_sql, leaked, Exception(
            f'duplicate key value violates unique constraint "uq_users_registration_sub" '
            f"DETAIL: Key ({lms.student.email}) already exists."))

    t = page_token(lms.launch(lms.teacher))
    monkeypatch.setattr(sync_module, "write_page", refuse)
    with caplog.at_level("ERROR", logger="tool.roster.sync"):
        run = sync(tool, context_id_of(lms))

    assert run.status == "failed"
    assert run.error == sync_module.DATABASE_FAILURE
    progress = requests.get(tool.base_url + "/instructor/roster/progress", params={"t": t}, timeout=5)
    page = requests.get(tool.base_url + "/instructor", params={"t": t}, timeout=5)
    for shown in (json.dumps(progress.json()), page.text):
        assert "could not save the roster" in shown
        for secret in ("INSERT", "uq_users", lms.student.email, lms.student.sub, "IntegrityError"):
            assert secret not in shown
    # The administrator finds the whole story in the log.
    assert any(record.exc_info and "failed unexpectedly" in record.getMessage() for record in caplog.records)


# -- members the database refuses ---------------------------------------------------------------

POISON = "poison@school.example"


def _refuse_poison(tool, on: bool):
    """A trigger that makes the database refuse any user row carrying the POISON email."""
    from tool.db import db
    with tool.app.app_context():
        conn = db.session.connection()
        if db.dialect == "sqlite":
            for event in ("INSERT", "UPDATE"):
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS refuse_poison_{event.lower()}")
                if on:
                    conn.exec_driver_sql(
                        f"CREATE TRIGGER refuse_poison_{event.lower()} BEFORE {event} ON users "
                        f"WHEN NEW.email = '{POISON}' BEGIN SELECT RAISE(ABORT, 'refused'); END")
        else:
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS refuse_poison ON users")
            if on:
                conn.exec_driver_sql(
                    "CREATE OR REPLACE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.email = '{POISON}' THEN RAISE EXCEPTION 'refused' USING ERRCODE = "
                    "'check_violation'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql")
                conn.exec_driver_sql("CREATE TRIGGER refuse_poison BEFORE INSERT OR UPDATE ON users "
                                     "FOR EACH ROW EXECUTE FUNCTION refuse_poison()")
        db.session.commit()
        db.session.remove()


@pytest.fixture
def poison_trigger(tool):
    _refuse_poison(tool, True)
    yield
    _refuse_poison(tool, False)


def test_nul_bytes_are_cleaned_and_a_member_that_cannot_be_stored_is_skipped(tool, lms, poison_trigger):
    p = lms.platform
    evil = p.add_user(name="Evil\x00Null", given_name="Evil\x00", family_name="Null\x1b[2J")
    lone = p.add_user(name="Lone \ud800 Surrogate", email="lone@school.example")
    refused = p.add_user(name="Refused Person", email=POISON)
    bad_id = p.add_user(name="Bad Id")
    p.users.pop(bad_id.sub)
    bad_id.sub = "bad\x00id"
    p.users[bad_id.sub] = bad_id
    for user in (evil, lone, refused, bad_id):
        p.enroll(lms.course, user, roles=[LEARNER])
    p.add_many(lms.course, 60)  # the refused member's page holds others too
    t = page_token(lms.launch(lms.teacher))
    context_id = context_id_of(lms)

    run = sync(tool, context_id)

    assert run.status == "succeeded", run.error
    assert run.members_skipped == 2 and run.members_seen == 66  # 60 + teacher, student and four
    assert f'"{refused.sub}"' in run.skipped_detail and '"bad?id"' in run.skipped_detail
    members = roster(tool, context_id)
    assert len(members) == 64 and refused.sub not in members
    stored = members[evil.sub]
    assert stored["name"].replace(" ", "") == "EvilNull" and stored["active"]
    assert "\x00" not in stored["given_name"] + stored["family_name"]
    assert "\x1b" not in stored["family_name"]
    assert members[lone.sub]["name"].split() == ["Lone", "Surrogate"]
    progress = requests.get(tool.base_url + "/instructor/roster/progress", params={"t": t}, timeout=5)
    assert progress.json()["sync"]["members_skipped"] == 2
    assert f'"{refused.sub}"' in progress.json()["sync"]["skipped_detail"]
    page = requests.get(tool.base_url + "/instructor", params={"t": t}, timeout=5).text
    assert 'id="sync-skipped"' in page and "2 members could not be stored" in page
    assert f"&#34;{refused.sub}&#34;" in page

    # A member already stored whose new data is refused keeps their row and is not marked absent.
    lms.student.email = POISON
    p.enroll(lms.course, lms.student, roles=[LEARNER])
    again = sync(tool, context_id, full=True)
    assert again.status == "succeeded", again.error
    assert again.members_skipped == 3 and f'"{lms.student.sub}"' in again.skipped_detail
    after = roster(tool, context_id)
    assert after[lms.student.sub]["active"] and after[lms.student.sub]["email"] != POISON


def test_a_page_where_every_member_is_refused_fails_the_run_in_plain_words(tool, lms, poison_trigger):
    from tool.roster import sync as sync_module
    course = lms.platform.add_course(label="P", title="Poisoned")
    for i in range(3):
        lms.platform.enroll(course, lms.platform.add_user(name=f"P {i}", email=POISON), roles=[LEARNER])
    run = sync(tool, add_course_to_tool(lms, course))
    assert run.status == "failed" and run.error == sync_module.DATABASE_FAILURE
    assert "refused" not in run.error and POISON not in run.error


# -- query parameters ------------------------------------------------------------------------

def test_absurd_page_numbers_and_filters_never_fail(tool, lms):
    lms.platform.add_many(lms.course, 150)  # two pages of 100
    t = page_token(lms.launch(lms.teacher))
    sync(tool, context_id_of(lms))

    def names(page):
        r = requests.get(tool.base_url + "/instructor", params={"t": t, "page": page}, timeout=10)
        assert r.status_code == 200, (page, r.status_code)
        return set(re.findall(r"student\.(\d+)@school\.example", r.text))  # the email cells

    first, last = names("1"), names("2")
    assert first and last and not first & last
    for absurd in ("-5", "abc", "1e9", "", "0", "١٢"):
        assert names(absurd) == first, absurd
    for past_the_end in ("3", "99999999999999999999999", "9" * 5000):
        assert names(past_the_end) == last, past_the_end[:30]
    for params in ({"role": "<script>"}, {"status": "junk"}, {"role": "Student'--", "status": ""}):
        page = requests.get(tool.base_url + "/instructor", params={"t": t, **params}, timeout=10)
        assert page.status_code == 200 and "Ada Teacher" in page.text
        r, rows = _csv(tool, t, **params)
        assert r.status_code == 200 and len(rows) == 152


# -- private SQLite files ------------------------------------------------------------------------

def test_a_new_sqlite_database_its_wal_and_its_folder_are_private(tmp_path):
    folder = tmp_path / "fresh" / "data"
    probe = f"""
import json, os, stat, sys
from pathlib import Path
from config import Settings
from tool import create_app
from tool.db import db
folder = Path({str(folder)!r})
app = create_app(Settings(base_url="http://127.0.0.1:5999", database_url="sqlite:///" + str(folder / "tool.db"),
                          key_dir=Path({str(tmp_path / 'keys')!r}), secret_key="x" * 32, port=5999,
                          jobs_path=Path({str(tmp_path / 'jobs.db')!r})))
with db.engine.connect() as conn:
    conn.exec_driver_sql("CREATE TABLE probe (x)")
    conn.exec_driver_sql("INSERT INTO probe VALUES (1)")
    conn.commit()
    modes = {{p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in [folder, *folder.iterdir()]}}
print(json.dumps(modes))
"""
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, preexec_fn=lambda: os.umask(0o022))
    assert result.returncode == 0, result.stderr[-2000:]
    modes = json.loads(result.stdout.strip().splitlines()[-1])
    assert modes == {"data": "0o700", "tool.db": "0o600", "tool.db-wal": "0o600", "tool.db-shm": "0o600",
                     "tool.db.startup-lock": "0o600"}


# -- the roster command line ---------------------------------------------------------------------

def test_cli_refuses_a_course_and_all_at_once(tool, lms):
    runner = tool.app.test_cli_runner()
    both = runner.invoke(args=["roster", "sync", lms.course.context_id, "--all"])
    assert both.exit_code == 2 and "Give a CONTEXT_ID or --all, not both" in both.output
    assert "Traceback" not in both.output
    neither = runner.invoke(args=["roster", "sync"])
    assert neither.exit_code == 2 and "Give a CONTEXT_ID or --all" in neither.output


def test_cli_counts_read_in_the_singular_and_name_skipped_members(tool, lms, poison_trigger):
    p = lms.platform
    course = p.add_course(label="Solo", title="One person")
    p.enroll(course, lms.teacher, roles=[INSTRUCTOR])
    add_course_to_tool(lms, course)
    p.faults.status_5xx = 1
    runner = tool.app.test_cli_runner()

    result = runner.invoke(args=["roster", "sync", course.context_id])

    assert result.exit_code == 0, result.output
    assert "1 member on 1 page," in result.output and "1 retry." in result.output
    refused = p.add_user(name="Refused", email=POISON)
    p.enroll(course, refused, roles=[LEARNER])
    result = runner.invoke(args=["roster", "sync", course.context_id, "--full"])
    assert result.exit_code == 0, result.output
    assert "2 members on 1 page," in result.output and "0 retries." in result.output
    assert f'1 member skipped (could not be stored: "{refused.sub}")' in result.output


@pytest.mark.parametrize("failure", ["database", "tool"])
def test_cli_errors_are_one_line_without_a_traceback(tool, lms, monkeypatch, failure):
    from sqlalchemy.exc import OperationalError
    from tool.errors import ToolError
    from tool.roster import cli
    add_course_to_tool(lms)

    def broken(*args, **kwargs):
        if failure == "database":
            raise OperationalError("SELECT secret FROM access_tokens", {}, Exception("server closed"))
        raise ToolError("The platform's roster service is gone.", hint="Ask the administrator.")

    monkeypatch.setattr(cli, "run_sync", broken)
    result = tool.app.test_cli_runner().invoke(args=["roster", "sync", lms.course.context_id])

    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output and "SELECT" not in result.output
    expected = "database could not be read or written" if failure == "database" else "roster service is gone"
    assert expected in lines[0]


def test_cli_sync_that_fails_on_the_database_prints_no_traceback(tool, lms, monkeypatch, caplog):
    from sqlalchemy.exc import IntegrityError
    from tool.roster import sync as sync_module

    def refuse(*args, **kwargs):
        raise IntegrityError("INSERT INTO users (email) VALUES (%(email)s)", {"email": lms.student.email},
                             Exception("duplicate key"))

    add_course_to_tool(lms)
    monkeypatch.setattr(sync_module, "write_page", refuse)
    with caplog.at_level("INFO"):
        result = tool.app.test_cli_runner().invoke(args=["roster", "sync", lms.course.context_id])

    assert result.exit_code == 1
    assert "could not save the roster (database error)" in result.output
    assert "INSERT" not in result.output and lms.student.email not in result.output
    # What the terminal shows of the log is one line per record, without a traceback.
    failed = [r for r in caplog.records if "failed unexpectedly" in r.getMessage()]
    assert failed and not any(r.exc_info for r in caplog.records if r.name.startswith("tool.roster"))
    assert "IntegrityError" in failed[0].getMessage()
