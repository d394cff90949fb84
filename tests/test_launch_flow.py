"""Whole launches through real HTTP: platform login initiation -> tool -> platform auth -> tool launch."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import func, select

from emulator import Browser
from tool.models import Context, Membership, ResourceLink, User


def test_instructor_launch_lands_on_instructor_page_and_provisions(lms, db_session):
    resp = lms.launch(lms.teacher)
    assert resp.status_code == 200, resp.text
    assert urlsplit(resp.url).path == "/instructor"
    assert "Ada Teacher" in resp.text and "Biology" in resp.text and "Instructor" in resp.text

    user = db_session.scalars(select(User).where(User.sub == lms.teacher.sub)).one()
    assert user.email == lms.teacher.email and user.matched_by == "created"
    assert user.lti11_legacy_user_id == lms.teacher.lti11_legacy_user_id
    ctx = db_session.scalars(select(Context).where(Context.lti_context_id == lms.course.context_id)).one()
    assert ctx.memberships_url == lms.course.memberships_url
    assert ctx.lineitems_url == lms.course.lineitems_url
    assert "https://purl.imsglobal.org/spec/lti-ags/scope/score" in ctx.ags_scopes
    member = db_session.scalars(select(Membership).where(Membership.user_id == user.id)).one()
    assert "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor" in member.roles
    assert member.context_id == ctx.id and member.is_active
    assert db_session.scalars(select(ResourceLink).where(ResourceLink.context_id == ctx.id)).first()


def test_student_launch_lands_on_student_page_and_cannot_open_instructor_page(lms):
    resp = lms.launch(lms.student)
    assert resp.status_code == 200
    assert urlsplit(resp.url).path == "/student"
    assert "Sam Student" in resp.text and "Student" in resp.text
    token = parse_qs(urlsplit(resp.url).query)["t"][0]
    forbidden = Browser().get(lms.tool.base_url + "/instructor", params={"t": token})
    assert forbidden.status_code == 403
    assert "for instructors" in forbidden.text


def test_pages_work_without_any_cookie_after_the_launch(lms):
    browser = Browser()
    resp = lms.launch(lms.teacher, browser=browser)
    assert resp.status_code == 200
    browser.cookies.clear()
    again = Browser(block_cookies=True).get(resp.url)
    assert again.status_code == 200 and "Ada Teacher" in again.text


def test_launch_with_browser_blocking_all_cookies_succeeds(lms):
    resp = lms.launch(lms.student, browser=Browser(block_cookies=True))
    assert resp.status_code == 200 and urlsplit(resp.url).path == "/student"


def test_login_by_get_also_works(lms):
    resp = lms.launch(lms.teacher, method="GET")
    assert resp.status_code == 200 and urlsplit(resp.url).path == "/instructor"


def test_login_redirect_carries_every_oidc_parameter(lms):
    # Without a storage target the login answers a redirect (with one: tests/test_launch_binding.py).
    pending = lms.platform.resource_link_launch(lms.registration, lms.teacher, lms.course,
                                                storage_target=None)
    resp = Browser().initiate(lms.tool.login_url, pending)
    assert resp.status_code == 302
    location = urlsplit(resp.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == lms.platform.auth_login_url
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query["scope"] == "openid" and query["response_type"] == "id_token"
    assert query["response_mode"] == "form_post" and query["prompt"] == "none"
    assert query["client_id"] == lms.registration.client_id
    assert query["redirect_uri"] == lms.tool.launch_url
    assert query["login_hint"] == pending.login_params["login_hint"]
    assert query["lti_message_hint"] == pending.login_params["lti_message_hint"]
    assert query["state"] and query["nonce"]


def test_session_token_is_signed(lms):
    resp = lms.launch(lms.student)
    token = parse_qs(urlsplit(resp.url).query)["t"][0]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    answer = Browser().get(lms.tool.base_url + "/student", params={"t": forged})
    assert answer.status_code == 401 and "Launch the tool again" in answer.text
    assert Browser().get(lms.tool.base_url + "/student").status_code == 401


def test_two_launches_of_the_same_new_user_at_once_leave_one_row(lms, db_session):
    newcomer = lms.platform.add_user(name="Nia Newcomer")
    lms.platform.enroll(lms.course, newcomer, roles=["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"])
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: lms.launch(newcomer), range(4)))
    assert [r.status_code for r in results] == [200] * 4
    assert db_session.scalar(select(func.count()).select_from(User).where(User.sub == newcomer.sub)) == 1
    user = db_session.scalars(select(User).where(User.sub == newcomer.sub)).one()
    assert db_session.scalar(select(func.count()).select_from(Membership)
                             .where(Membership.user_id == user.id)) == 1
