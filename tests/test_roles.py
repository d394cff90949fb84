"""The principal role decides (LTI core, appendix A.2.3.1): a Learner sub-role is a student."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tool.lti import roles

LIS = "http://purl.imsglobal.org/vocab/lis/v2/"
LEARNER_AS_INSTRUCTOR = [LIS + "membership/Learner#Instructor", "urn:lti:role:ims/lis/Learner/Instructor"]


@pytest.mark.parametrize("role", LEARNER_AS_INSTRUCTOR)
def test_a_learner_sub_role_instructor_gets_the_student_view_and_no_roster(lms, role):
    resp = lms.launch(lms.student, roles=[role])
    assert resp.status_code == 200 and urlsplit(resp.url).path == "/student"
    token = parse_qs(urlsplit(resp.url).query)["t"][0]
    roster = requests.get(lms.tool.base_url + "/instructor", params={"t": token})
    assert roster.status_code == 403
    csv = requests.get(lms.tool.base_url + "/instructor/roster.csv", params={"t": token})
    assert csv.status_code in (403, 404) and "@school.example" not in csv.text


def test_a_teaching_assistant_sub_role_stays_staff(lms):
    resp = lms.launch(lms.student, roles=[LIS + "membership/Instructor#TeachingAssistant"])
    assert resp.status_code == 200 and urlsplit(resp.url).path == "/instructor"


@pytest.mark.parametrize("role, name, staff, words", [
    (LIS + "membership#Instructor", "Instructor", True, ["Instructor"]),
    (LIS + "membership/Instructor#TeachingAssistant", "TeachingAssistant", True, ["TA"]),
    (LIS + "membership/Instructor#Lecturer", "Instructor", True, ["Instructor"]),
    (LIS + "membership/Learner#Instructor", "Learner", False, ["Student"]),
    (LIS + "membership/Learner#Learner", "Learner", False, ["Student"]),
    ("urn:lti:role:ims/lis/Learner/Instructor", "Learner", False, ["Student"]),
    ("urn:lti:role:ims/lis/Instructor", "Instructor", True, ["Instructor"]),
    ("urn:lti:role:ims/lis/TeachingAssistant", "TeachingAssistant", True, ["TA"]),
    ("Instructor", "Instructor", True, ["Instructor"]),
    ("Learner", "Learner", False, ["Student"]),
    (LIS + "membership/Mentor#Advisor", "Mentor", False, ["Observer"]),
    (LIS + "institution/person#Instructor", None, False, []),
    (LIS + "system/person#Administrator", None, True, ["Administrator"]),
])
def test_role_names_views_and_words(role, name, staff, words):
    assert roles.context_role_name(role) == name
    assert roles.is_staff([role]) is staff
    assert roles.in_words([role]) == words


def test_course_roles_keep_sub_roles_and_drop_person_roles():
    sent = [LIS + "membership/Learner#Instructor", "Learner", LIS + "institution/person#Instructor",
            LIS + "membership#Learner", "Bad\x00Role", 5]
    assert roles.course_roles(sent) == [LIS + "membership/Learner#Instructor", LIS + "membership#Learner"]


def test_twenty_thousand_roles_are_handled_right():
    many = [LIS + f"membership/Learner#Custom{n}" for n in range(20_000)]
    many += [LIS + "membership#Mentor", "Officer", LIS + "membership/Learner#Instructor"] * 2
    assert roles.is_staff(many) is False
    assert roles.in_words(many) == ["Student", "Observer", "Officer"]
    stored = roles.course_roles(many)
    assert len(stored) == 20_003 and stored[-1] == LIS + "membership/Learner#Instructor"
    assert roles.is_staff(many + [LIS + "membership/Instructor#TeachingAssistant"]) is True
    assert roles.in_words(many + [LIS + "membership#Instructor"])[0] == "Instructor"


def test_the_student_filter_lists_learner_sub_roles(lms):
    """A Learner#Instructor member reads "Student" in the roster and the Student filter finds them."""
    peer = lms.platform.add_user(name="Peer Tutor")
    lms.platform.enroll(lms.course, peer, roles=[LIS + "membership/Learner#Instructor"])
    lms.launch(lms.student)
    lms.launch(peer, roles=[LIS + "membership/Learner#Instructor"])
    page = lms.launch(lms.teacher)
    token = parse_qs(urlsplit(page.url).query)["t"][0]

    def table(role):
        html = requests.get(lms.tool.base_url + "/instructor", params={"t": token, "role": role}).text
        return html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]

    students = table("Student")
    assert "Peer Tutor" in students and "Sam Student" in students and "Ada Teacher" not in students
    teachers = table("Instructor")
    assert "Peer Tutor" not in teachers and "Ada Teacher" in teachers
