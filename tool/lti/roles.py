"""Role URIs (LTI 1.3 core §5.3.7, Appendix A.2): which view a launch gets, and roles in words.

Only roles that speak about *this course* (context roles) or about running the whole system
(system/institution Administrator) open the instructor view. Canvas adds
``institution/person#Instructor`` for anyone who teaches anywhere in the school, so that role
alone must not turn a student of this course into an instructor.
"""
from __future__ import annotations

LIS = "http://purl.imsglobal.org/vocab/lis/v2/"
CONTEXT_PREFIX = LIS + "membership#"
CONTEXT_SUB_PREFIX = LIS + "membership/"

INSTRUCTOR = CONTEXT_PREFIX + "Instructor"
LEARNER = CONTEXT_PREFIX + "Learner"
TEACHING_ASSISTANT = LIS + "membership/Instructor#TeachingAssistant"

STAFF_CONTEXT_ROLES = {"Instructor", "TeachingAssistant", "ContentDeveloper", "Administrator"}
STAFF_ADMIN_ROLES = {
    LIS + "system/person#Administrator", LIS + "system/person#SysAdmin",
    LIS + "institution/person#Administrator",
}

# Roster filter word -> stored role URIs (memberships keep course roles as full URIs, see
# course_roles; a TeachingAssistant sub-role may come short from some platforms).
FILTERS = {
    "Instructor": [INSTRUCTOR],
    "TA": [TEACHING_ASSISTANT, CONTEXT_PREFIX + "TeachingAssistant", "TeachingAssistant"],
    "Designer": [CONTEXT_PREFIX + "ContentDeveloper"],
    "Student": [LEARNER],
    "Observer": [CONTEXT_PREFIX + "Mentor"],
    "Administrator": [CONTEXT_PREFIX + "Administrator"],
}

WORDS = {
    "Instructor": "Instructor", "TeachingAssistant": "TA", "ContentDeveloper": "Designer",
    "Administrator": "Administrator", "Learner": "Student", "Mentor": "Observer",
    "Member": "Member", "Manager": "Manager", "Officer": "Officer",
}


def context_role_name(role: str) -> str | None:
    """The course-level role name of a URI or short value, or None for system/institution roles.

    ``membership#Instructor`` -> Instructor; ``membership/Instructor#TeachingAssistant`` ->
    TeachingAssistant; the short value ``Instructor`` -> Instructor (allowed by core §A.2.3.1
    for context roles); LTI 1.1 ``urn:lti:role:ims/lis/Instructor`` -> Instructor.
    """
    role = (role or "").strip()
    if role.startswith(CONTEXT_PREFIX):
        return role[len(CONTEXT_PREFIX):]
    if role.startswith(CONTEXT_SUB_PREFIX):
        return role.rsplit("#", 1)[-1]
    if role.startswith("urn:lti:role:ims/lis/"):
        return role.rsplit("/", 1)[-1].split("#")[-1]
    if "/" not in role and ":" not in role and role:
        return role.rsplit("#", 1)[-1]
    return None


CONTEXT_ROLE_NAMES = {"Administrator", "ContentDeveloper", "Instructor", "Learner", "Mentor", "Manager",
                      "Member", "Officer"}


def course_roles(roles: list[str] | None) -> list[str]:
    """The roles a person holds in the course, as full URIs (core §A.2.3 context roles).

    Institution and system roles describe the person, not the membership, and NRPS lists only
    context roles, so they are left out here: a launch and a roster sync then store the same
    roles for the same member. Short context role names become full URIs; other vocabularies
    are kept as sent.
    """
    out: list[str] = []
    for role in roles or ():
        if not isinstance(role, str) or not role.strip():
            continue
        role = role.strip()
        if role.startswith(LIS + "institution/") or role.startswith(LIS + "system/"):
            continue
        if role in CONTEXT_ROLE_NAMES:
            role = CONTEXT_PREFIX + role
        if role not in out:
            out.append(role)
    return out


def is_staff(roles: list[str] | None) -> bool:
    for role in roles or ():
        if role in STAFF_ADMIN_ROLES:
            return True
        if context_role_name(role) in STAFF_CONTEXT_ROLES:
            return True
    return False


def in_words(roles: list[str] | None) -> list[str]:
    """Course roles in words, most senior first; an unknown role is shown by its last segment."""
    out: list[str] = []
    for role in roles or ():
        name = context_role_name(role)
        if name is None:
            if role in STAFF_ADMIN_ROLES:
                out.append("Administrator")
            continue
        word = WORDS.get(name, name)
        if word not in out:
            out.append(word)
    order = ["Instructor", "TA", "Designer", "Administrator", "Student", "Observer"]
    return sorted(out, key=lambda w: order.index(w) if w in order else len(order))
