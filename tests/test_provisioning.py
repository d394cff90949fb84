"""Provisioning on launch: matching a platform person to the tool's, and what each launch updates."""
from __future__ import annotations

from sqlalchemy import func, select

from emulator import INSTRUCTOR, LEARNER
from tool.models import Membership, User


def _import_person(db_session, lms, **fields) -> int:
    """A person known before LTI 1.3 (as from an LTI 1.1 install): no sub yet."""
    user = User(registration_id=lms.registration_id, sub=None, matched_by="created", **fields)
    db_session.add(user)
    db_session.commit()
    return user.id


def _user_by_sub(db_session, sub):
    db_session.expire_all()
    return db_session.scalars(select(User).where(User.sub == sub)).one()


def test_person_imported_with_a_legacy_id_is_matched_by_it(lms, db_session):
    imported = _import_person(db_session, lms, lti11_legacy_user_id=lms.student.lti11_legacy_user_id,
                              name="Old Name")
    assert lms.launch(lms.student).status_code == 200
    user = _user_by_sub(db_session, lms.student.sub)
    assert user.id == imported and user.matched_by == "lti11_legacy_user_id"
    assert user.name == "Sam Student"


def test_person_imported_with_a_sourcedid_is_matched_by_it(lms, db_session):
    person = lms.platform.add_user(name="Sid Sourced", sourcedid="SIS-000123")
    lms.platform.enroll(lms.course, person, roles=[LEARNER])
    imported = _import_person(db_session, lms, lis_person_sourcedid="SIS-000123")
    assert lms.launch(person).status_code == 200
    user = _user_by_sub(db_session, person.sub)
    assert user.id == imported and user.matched_by == "lis_person_sourcedid"


def test_unexpanded_sourcedid_variable_never_matches(lms, db_session):
    _import_person(db_session, lms, lis_person_sourcedid="$Person.sourcedId")
    resp = lms.launch(lms.student, claims={"lis": {"person_sourcedid": "$Person.sourcedId"}})
    assert resp.status_code == 200
    user = _user_by_sub(db_session, lms.student.sub)
    assert user.matched_by == "created" and user.lis_person_sourcedid is None


def test_email_match_only_when_the_registration_allows_it(lms, db_session):
    first = _import_person(db_session, lms, email=lms.student.email.upper())
    assert lms.launch(lms.student).status_code == 200
    assert _user_by_sub(db_session, lms.student.sub).id != first  # not allowed: a new person

    from tool.models import Registration
    reg = db_session.get(Registration, lms.registration_id)
    reg.matches_by_email = True
    db_session.commit()
    other = lms.platform.add_user(name="Em Ail")
    lms.platform.enroll(lms.course, other, roles=[LEARNER])
    imported = _import_person(db_session, lms, email=other.email.upper())
    assert lms.launch(other).status_code == 200
    user = _user_by_sub(db_session, other.sub)
    assert user.id == imported and user.matched_by == "email"


def test_a_later_launch_with_less_privacy_keeps_what_is_known(lms, db_session):
    assert lms.launch(lms.student).status_code == 200
    assert lms.launch(lms.student, privacy_level="anonymous").status_code == 200
    user = _user_by_sub(db_session, lms.student.sub)
    assert user.email == lms.student.email and user.name == "Sam Student"


def test_roles_follow_the_latest_launch_in_full(lms, db_session):
    assert lms.launch(lms.student).status_code == 200
    ta = "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"
    resp = lms.launch(lms.student, roles=[ta])
    assert resp.status_code == 200 and "/instructor" in resp.url
    user = _user_by_sub(db_session, lms.student.sub)
    member = db_session.scalars(select(Membership).where(Membership.user_id == user.id)).one()
    assert member.roles == [ta]


def test_same_person_in_two_courses_is_one_user_with_two_memberships(lms, db_session):
    other = lms.platform.add_course(label="CHEM1", title="Chemistry")
    lms.platform.enroll(other, lms.teacher, roles=[INSTRUCTOR])
    assert lms.launch(lms.teacher).status_code == 200
    assert lms.launch(lms.teacher, course=other).status_code == 200
    user = _user_by_sub(db_session, lms.teacher.sub)
    count = db_session.scalar(select(func.count()).select_from(Membership).where(Membership.user_id == user.id))
    assert count == 2
