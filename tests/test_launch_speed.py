"""What keeps a launch cheap, checked for what a user or an administrator would notice.

A returning student's whole launch (login, launch, landing page) costs at most 8 SQL statements
and writes only the spent nonce and the page session. Registrations and deployments are held in
each process, so a change made by another process (the CLI, another web worker) must reach this
one on its very next launch; and a platform key held as an object must follow the published key.
No timing is asserted here: ``bench/launch.py`` measures time.
"""
from __future__ import annotations

import os
import subprocess
import sys
import types
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import event, text

from emulator import Browser

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 8  # statements from login to landing page for a returning student


@contextmanager
def _statements():
    """Every statement the tool's engine sends while the block runs."""
    from tool.db import db
    seen: list[str] = []

    def record(_conn, _cursor, statement, _params, _context, _many):
        seen.append(" ".join(statement.split()))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


@contextmanager
def _no_sweeps(monkeypatch):
    """The occasional clean-up of expired nonces and sessions (a few launches in a hundred) aside."""
    from tool.lti import states
    from tool.web import sessions
    monkeypatch.setattr(sessions, "SWEEP_CHANCE", 0.0)
    monkeypatch.setattr(states, "random", types.SimpleNamespace(random=lambda: 1.0))
    yield


def _navigation(lms, user, **options):
    """The course navigation launch: the same resource link every time, as a returning student's."""
    return lms.launch(user, placement="course_navigation", **options)


def _refused(resp, code: str) -> None:
    assert resp.status_code in (400, 403), (resp.status_code, resp.text[:300])
    assert f"<code>{code}</code>" in resp.text, resp.text[:500]


def test_a_returning_student_costs_at_most_8_statements_and_writes_only_nonce_and_session(lms, monkeypatch):
    assert _navigation(lms, lms.student).status_code == 200  # first launch: the rows are made
    with _no_sweeps(monkeypatch), _statements() as seen:
        resp = _navigation(lms, lms.student)
    assert resp.status_code == 200 and urlsplit(resp.url).path == "/student"
    assert len(seen) <= BUDGET, "\n".join(seen)
    writes = [s for s in seen if not s.startswith("SELECT")]
    assert [w.split()[2] for w in writes] == ["used_nonces", "page_sessions"], writes


def test_a_changed_name_is_written_on_the_next_launch(lms, db_session):
    from sqlalchemy import select

    from tool.models import User
    assert _navigation(lms, lms.student).status_code == 200
    lms.student.name = "Sam Renamed"
    assert _navigation(lms, lms.student).status_code == 200
    db_session.expire_all()
    user = db_session.scalars(select(User).where(User.registration_id == lms.registration_id,
                                                 User.sub == lms.student.sub)).one()
    assert user.name == "Sam Renamed"


def _bump(conn) -> None:
    conn.execute(text("UPDATE registry_version SET version = version + 1 WHERE id = 1"))


def _env(tool) -> dict:
    settings = tool.settings
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "JOBS_IMMEDIATE")}
    env.update(DATABASE_URL=settings.database_url, TOOL_KEY_DIR=str(settings.key_dir),
               SECRET_KEY=settings.secret_key, JOBS_DB=str(settings.jobs_path),
               TOOL_BASE_URL=settings.base_url, PYTHONUNBUFFERED="1")
    return env


def test_a_registration_removed_by_the_cli_in_another_process_is_refused_on_the_next_launch(lms):
    assert _navigation(lms, lms.student).status_code == 200  # held in this process now
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "platform", "remove", "--issuer",
         lms.platform.issuer, "--client-id", lms.registration.client_id, "--yes"],
        cwd=ROOT, env=_env(lms.tool), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    resp = _navigation(lms, lms.student)
    # Refused by the login when this process read the registry since, else by the launch, which
    # always reads it afresh (a login may go on a version read up to a second before).
    assert resp.status_code == 400, resp.text[:300]
    # The launch says unknown_issuer, or unknown_client_id where other tests registered more
    # clients of the same emulated issuer in this database.
    assert any(f"<code>{code}</code>" in resp.text
               for code in ("unknown_registration", "unknown_issuer", "unknown_client_id")), resp.text[:500]


def test_a_deployment_removed_in_the_database_is_refused_on_the_next_launch(lms):
    from tool.db import db
    assert _navigation(lms, lms.student).status_code == 200
    with db.engine.begin() as conn:  # as another process would: plain SQL, then the version
        conn.execute(text("DELETE FROM deployments WHERE registration_id = :r"),
                     {"r": lms.registration_id})
        _bump(conn)
    _refused(_navigation(lms, lms.student), "unknown_deployment")


def test_a_launch_checked_against_registrations_that_changed_meanwhile_is_refused_and_writes_nothing(
        lms, db_session):
    """The launch checks against the registry this process holds and confirms its version when
    it spends the nonce; a change in between (here: after the login) means checking again
    against the database, and a refusal then rolls the spend back."""
    from support import table_counts
    from tool.db import db
    assert _navigation(lms, lms.student).status_code == 200  # the registry is held now
    before = table_counts(db_session)
    pending = lms.platform.resource_link_launch(lms.registration, lms.student, lms.course,
                                                placement="course_navigation")

    def meanwhile(fields: dict) -> dict:  # between login and launch, as another process would
        with db.engine.begin() as conn:
            conn.execute(text("DELETE FROM deployments WHERE registration_id = :r"),
                         {"r": lms.registration_id})
            _bump(conn)
        return fields

    _refused(Browser().launch(lms.tool.login_url, pending, tamper_form=meanwhile), "unknown_deployment")
    after = table_counts(db_session)
    assert after["used_nonces"] == before["used_nonces"]
    assert after["page_sessions"] == before["page_sessions"]


def test_a_client_added_in_another_process_for_a_known_issuer_launches_at_once(tool, lms):
    from tool.db import db
    assert _navigation(lms, lms.student).status_code == 200  # the issuer's clients are held
    second = lms.platform.register_tool(login_url=tool.login_url, redirect_uris=[tool.launch_url],
                                        target_link_uri=tool.launch_url, jwks_url=tool.jwks_url)
    with db.engine.begin() as conn:
        reg_id = conn.execute(text(
            "INSERT INTO registrations (name, issuer, client_id, auth_login_url, auth_token_url, "
            "key_set_url, accepts_any_deployment, matches_by_email, source, created_at) VALUES "
            "('Second key', :iss, :cid, :login, :token, :jwks, false, false, 'manual', "
            "CURRENT_TIMESTAMP) RETURNING id"),
            {"iss": lms.platform.issuer, "cid": second.client_id, "login": lms.platform.auth_login_url,
             "token": lms.platform.token_url, "jwks": lms.platform.jwks_url}).scalar_one()
        conn.execute(text("INSERT INTO deployments (registration_id, deployment_id, is_auto_recorded, "
                          "created_at) VALUES (:r, :d, false, CURRENT_TIMESTAMP)"),
                     {"r": reg_id, "d": second.deployment_ids[0]})
        _bump(conn)
    pending = lms.platform.resource_link_launch(second, lms.student, lms.course,
                                                placement="course_navigation")
    resp = Browser().launch(tool.login_url, pending)
    assert resp.status_code == 200 and urlsplit(resp.url).path == "/student"


def test_a_registration_changed_through_the_orm_elsewhere_is_seen_at_once(lms, db_session):
    """Code that edits a row directly (not through tool/platforms.py) still moves the version."""
    from tool.models import Registration
    assert _navigation(lms, lms.student).status_code == 200
    reg = db_session.get(Registration, lms.registration_id)
    reg.key_set_url = lms.platform.base_url + "/no-such-key-set"
    db_session.commit()
    resp = _navigation(lms, lms.student)
    assert resp.status_code in (502, 503) and "platform_jwks" in resp.text


def test_a_platform_key_replaced_under_the_same_kid_is_used_once_the_set_is_fetched_again(lms):
    from emulator.keys import generate_rsa
    assert _navigation(lms, lms.student).status_code == 200  # key object held for this kid
    keys = lms.platform.keys
    kid = keys.current_kid
    with keys._lock:  # the platform re-keys without changing the kid (poor practice, but seen)
        keys._keys[-1] = (kid, generate_rsa())
    _refused(_navigation(lms, lms.student), "bad_signature")  # the held JWK is the old one
    # An unknown kid makes the tool fetch the whole set again; the replaced key comes with it.
    _refused(_navigation(lms, lms.student, header={"kid": "2999-01-01T00:00:00Z"}), "unknown_kid")
    resp = _navigation(lms, lms.student)
    assert resp.status_code == 200, resp.text[:300]


def test_a_rotated_key_set_drops_the_key_objects_it_replaced(lms):
    cache = lms.tool.app.extensions["platform_keys"]
    assert _navigation(lms, lms.student).status_code == 200
    old_kid = lms.platform.kid
    entry = cache._entry(lms.platform.jwks_url)
    assert set(entry.objects) == {old_kid}
    lms.platform.rotate_key()
    assert _navigation(lms, lms.teacher).status_code == 200
    assert set(entry.objects) == {lms.platform.kid}  # the old object went with the old set
    assert _navigation(lms, lms.student).status_code == 200
