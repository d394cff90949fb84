"""Registration and deployment lookups (tool/registrations.py) as a platform and an admin meet them."""
from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select


@pytest.fixture
def platform(tool):
    """An emulated platform with an issuer no other test uses, registered once with the tool."""
    from emulator import LEARNER, Platform
    from tool import platforms
    from tool.db import db
    p = Platform(issuer=f"https://lms-{uuid.uuid4().hex[:10]}.example.edu")
    p.start()
    p.registration = p.register_tool(login_url=tool.login_url, redirect_uris=[tool.launch_url],
                                     target_link_uri=tool.launch_url, jwks_url=tool.jwks_url)
    with tool.app.app_context():
        platforms.add_platform(db.session, platforms.PlatformSpec(
            p.issuer, p.registration.client_id, p.auth_login_url, p.token_url, p.jwks_url),
            p.registration.deployment_ids[:1])
        db.session.remove()
    p.course = p.add_course(label="CHEM1", title="Chemistry")
    p.student = p.add_user(name="Lee Student")
    p.enroll(p.course, p.student, roles=[LEARNER])
    yield p
    p.stop()


def _login(tool, platform, *, client_id: bool):
    params = dict(platform.resource_link_launch(platform.registration, platform.student,
                                                platform.course, storage_target=None).login_params)
    if not client_id:
        params.pop("client_id", None)
    return tool.app.test_client().get("/lti/login", query_string=params,
                                      headers={"Accept": "application/json"})


def test_a_login_without_client_id_is_answered_only_while_the_issuer_has_one_client(tool, platform):
    from tool import platforms
    from tool.db import db
    alone = _login(tool, platform, client_id=False)
    assert alone.status_code == 302
    assert parse_qs(urlsplit(alone.headers["Location"]).query)["client_id"] == \
        [platform.registration.client_id]

    with tool.app.app_context():  # a second developer key on the same platform
        platforms.add_platform(db.session, platforms.PlatformSpec(
            platform.issuer, "second-key", platform.auth_login_url, platform.token_url,
            platform.jwks_url))
        db.session.remove()

    ambiguous = _login(tool, platform, client_id=False)
    assert ambiguous.status_code == 400
    assert ambiguous.get_json()["error"] == "unknown_registration"
    named = _login(tool, platform, client_id=True)
    assert named.status_code == 302


def test_adding_a_known_deployment_again_keeps_one_row(tool, platform):
    from tool import platforms, registrations
    from tool.db import db
    from tool.models import Deployment
    deployment_id = platform.registration.deployment_ids[0]
    with tool.app.app_context():
        reg = registrations.get(db.session, platform.issuer, platform.registration.client_id)
        first = platforms.add_deployment(db.session, reg, deployment_id)
        again = platforms.add_deployment(db.session, reg, f"  {deployment_id} ")
        db.session.commit()
        rows = db.session.scalar(select(func.count()).select_from(Deployment).where(
            Deployment.registration_id == reg.id))
        assert first.id == again.id and rows == 1 and not first.is_auto_recorded
        db.session.remove()
