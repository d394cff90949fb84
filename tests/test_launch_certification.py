"""The 1EdTech tool certification launch cases (shared/reference/lti-certification-cases.md):
twelve known bad payloads refused, nine valid variants accepted for an instructor and a student."""
from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest

from emulator import DELETE, INSTRUCTOR, LEARNER

LTI_CLAIMS = ("message_type", "version", "deployment_id", "target_link_uri", "resource_link",
              "roles", "context", "custom", "lis", "tool_platform", "launch_presentation")


def _refused(resp, *codes):
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text[:400])
    assert any(f"<code>{code}</code>" in resp.text for code in codes), resp.text[:800]


BAD_PAYLOADS = {
    "1 no kid": (dict(header={"kid": DELETE}), ["kid_missing"]),
    "2 incorrect kid": (dict(header={"kid": "2000-01-01T00:00:00Z"}), ["unknown_kid"]),
    "3 wrong LTI version": (dict(claims={"version": "1.2.0"}), ["version_wrong"]),
    "4 no LTI version": (dict(remove=("version",)), ["version_missing"]),
    "5 not an LTI 1.3 JWT": (dict(raw_token="this-is-not-a-jwt"), ["id_token_malformed"]),
    "6 missing LTI claims": (dict(remove=LTI_CLAIMS), ["version_missing", "message_type_missing"]),
    "7 timestamps incorrect": (dict(claims={"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}),
                               ["token_expired"]),
    "8 message_type missing": (dict(remove=("message_type",)), ["message_type_missing"]),
    "9 roles missing": (dict(remove=("roles",)), ["roles_missing"]),
    "10 deployment_id missing": (dict(remove=("deployment_id",)), ["deployment_id_missing"]),
    "11 resource_link id missing": (dict(claims={"resource_link": {"title": "Quiz 1"}}),
                                    ["resource_link_missing"]),
    "12 user (sub) missing": (dict(remove=("sub",)), ["sub_missing"]),
}


@pytest.mark.parametrize("case", sorted(BAD_PAYLOADS, key=lambda k: int(k.split()[0])))
def test_known_bad_payload_is_refused(lms, case):
    options, codes = BAD_PAYLOADS[case]
    _refused(lms.launch(lms.student, **options), *codes)


def test_refused_launch_provisions_nobody(lms, db_session):
    from sqlalchemy import select
    from tool.models import User
    lms.launch(lms.student, remove=("roles",))
    assert db_session.scalars(select(User).where(User.sub == lms.student.sub)).first() is None


PERSON = {
    "launch": {},
    "multiple roles": {"roles": [INSTRUCTOR, LEARNER, "http://purl.imsglobal.org/vocab/lis/v2/membership#Mentor"]},
    "short role value": {"short": True},
    "unknown role": {"roles": ["http://example.edu/roles#Juggler"]},
    "no role": {"roles": []},
    "email only": {"privacy_level": "email_only"},
    "names only": {"privacy_level": "name_only"},
    "no PII": {"privacy_level": "anonymous"},
    "email without context": {"privacy_level": "email_only", "remove": ("context",)},
}


@pytest.mark.parametrize("who", ["instructor", "student"])
@pytest.mark.parametrize("variant", list(PERSON))
def test_valid_launch_variant_is_accepted_with_the_right_view(lms, who, variant):
    opts = dict(PERSON[variant])
    user = lms.teacher if who == "instructor" else lms.student
    role = INSTRUCTOR if who == "instructor" else LEARNER
    if opts.pop("short", False):
        opts["roles"] = [role.rsplit("#", 1)[1]]
    elif variant == "multiple roles" and who == "student":
        opts["roles"] = [LEARNER, "http://purl.imsglobal.org/vocab/lis/v2/membership#Mentor",
                         "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Instructor"]
    resp = lms.launch(user, **opts)
    assert resp.status_code == 200, resp.text[:600]
    # No role or an unknown role gets the student view, whoever launches.
    expected = "instructor" if who == "instructor" and variant not in ("no role", "unknown role") else "student"
    assert urlsplit(resp.url).path == f"/{expected}"
    if variant == "no PII":
        assert "Ada Teacher" not in resp.text and "Sam Student" not in resp.text
    if variant == "email without context":
        assert "Launched outside a course" in resp.text
    elif variant != "no PII":
        assert "Biology" in resp.text


def test_new_resource_link_id_is_accepted_and_recorded(lms, db_session):
    from sqlalchemy import select
    from tool.models import ResourceLink
    resp = lms.launch(lms.student, resource_link={"id": "brand-new-link-42", "title": "Quiz 9"})
    assert resp.status_code == 200
    link = db_session.scalars(select(ResourceLink).where(
        ResourceLink.lti_resource_link_id == "brand-new-link-42")).one()
    assert link.title == "Quiz 9"


STAFF_ROLES = ["http://purl.imsglobal.org/vocab/lis/v2/membership#ContentDeveloper", "ContentDeveloper",
               "http://purl.imsglobal.org/vocab/lis/v2/membership#Administrator", "Administrator",
               "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant",
               "http://purl.imsglobal.org/vocab/lis/v2/system/person#Administrator"]


@pytest.mark.parametrize("role", STAFF_ROLES)
def test_staff_roles_short_or_full_get_the_instructor_view(lms, role):
    resp = lms.launch(lms.student, roles=[role])
    assert resp.status_code == 200 and urlsplit(resp.url).path == "/instructor"


def test_teaching_elsewhere_does_not_make_a_student_an_instructor(lms):
    resp = lms.launch(lms.student, roles=[
        LEARNER, "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Instructor"])
    assert urlsplit(resp.url).path == "/student"
