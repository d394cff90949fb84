"""Role URIs (LTI 1.3 core §5.3.7, Appendix A.2): which view a launch gets, and roles in words.

Only roles that speak about *this course* (context roles) or about running the whole system
(system/institution Administrator) open the instructor view. Canvas adds
``institution/person#Instructor`` for anyone who teaches anywhere in the school, so that role
alone must not turn a student of this course into an instructor. Within a context role the
principal role decides (core §A.2.3.1): ``membership/Learner#Instructor`` is a Learner.
"""
from __future__ import annotations

LIS = "http://purl.imsglobal.org/vocab/lis/v2/"
CONTEXT_PREFIX = LIS + "membership#"
CONTEXT_SUB_PREFIX = LIS + "membership/"
LTI11_CONTEXT_PREFIX = "urn:lti:role:ims/lis/"  # LTI 1.1 context roles, still sent by some platforms

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
    # Learner sub-roles (membership/Learner#Instructor, ...) are students too (core §A.2.3.1);
    # a trailing "*" matches any sub-role.
    "Student": [LEARNER, CONTEXT_SUB_PREFIX + "Learner#*"],
    "Observer": [CONTEXT_PREFIX + "Mentor"],
    "Administrator": [CONTEXT_PREFIX + "Administrator"],
}

WORDS = {
    "Instructor": "Instructor", "TeachingAssistant": "TA", "ContentDeveloper": "Designer",
    "Administrator": "Administrator", "Learner": "Student", "Mentor": "Observer",
    "Member": "Member", "Manager": "Manager", "Officer": "Officer",
}


def principal_and_sub(role: str) -> tuple[str, str | None] | None:
    """(principal role, sub-role or None) of a context role, or None for other vocabularies.

    Core §A.2.3.1: ``membership#Instructor`` is a principal role; ``membership/Learner#Instructor``
    is the sub-role Instructor *of Learner* (a student acting as a peer instructor), so its
    principal is Learner. LTI 1.1 writes the same as ``urn:lti:role:ims/lis/Learner/Instructor``.
    Short values (``Instructor``) are allowed for context roles.
    """
    if not isinstance(role, str):
        return None
    role = role.strip()
    if role.startswith(CONTEXT_PREFIX):
        principal, sub = role[len(CONTEXT_PREFIX):], None
    elif role.startswith(CONTEXT_SUB_PREFIX):
        principal, _, sub = role[len(CONTEXT_SUB_PREFIX):].partition("#")
    elif role.startswith(LTI11_CONTEXT_PREFIX):
        principal, _, sub = role[len(LTI11_CONTEXT_PREFIX):].partition("/")
    elif role and "/" not in role and ":" not in role:
        principal, _, sub = role.partition("#")
    else:
        return None
    if not principal:
        return None
    return principal, (sub or None)


def context_role_name(role: str) -> str | None:
    """The course-level role name that decides access and wording, or None for system/institution roles.

    The principal role decides (core §A.2.3.1): ``membership#Instructor`` -> Instructor;
    ``membership/Learner#Instructor`` and ``urn:lti:role:ims/lis/Learner/Instructor`` -> Learner;
    ``membership/Instructor#TeachingAssistant`` -> TeachingAssistant (an Instructor sub-role, so
    still staff, named apart because a TA is shown as "TA"); the short value ``Instructor`` ->
    Instructor.
    """
    parsed = principal_and_sub(role)
    if parsed is None:
        return None
    principal, sub = parsed
    if principal == "Instructor" and sub and sub.startswith("TeachingAssistant"):
        return "TeachingAssistant"
    return principal


CONTEXT_ROLE_NAMES = {"Administrator", "ContentDeveloper", "Instructor", "Learner", "Mentor", "Manager",
                      "Member", "Officer"}


def course_roles(roles: list[str] | None) -> list[str]:
    """The roles a person holds in the course, as full URIs (core §A.2.3 context roles).

    Institution and system roles describe the person, not the membership, and NRPS lists only
    context roles, so they are left out here: a launch and a roster sync then store the same
    roles for the same member. Short context role names become full URIs; other vocabularies
    are kept as sent. A value with control characters is no role URI and is dropped.
    Linear in the number of roles: a platform may send thousands.
    """
    out: list[str] = []
    seen: set[str] = set()
    for role in roles or ():
        if not isinstance(role, str):
            continue
        role = role.strip()
        if not role or not role.isprintable():
            continue
        if role.startswith(LIS + "institution/") or role.startswith(LIS + "system/"):
            continue
        if role in CONTEXT_ROLE_NAMES:
            role = CONTEXT_PREFIX + role
        if role not in seen:
            seen.add(role)
            out.append(role)
    return out


def is_staff(roles: list[str] | None) -> bool:
    """Staff of this course: a staff principal role, or a system/institution administrator."""
    for role in roles or ():
        if not isinstance(role, str):
            continue
        if role in STAFF_ADMIN_ROLES or context_role_name(role) in STAFF_CONTEXT_ROLES:
            return True
    return False


WORD_ORDER = {word: rank for rank, word in
              enumerate(["Instructor", "TA", "Designer", "Administrator", "Student", "Observer"])}


def in_words(roles: list[str] | None) -> list[str]:
    """Course roles in words, most senior first; an unknown role is shown by its principal name."""
    out: list[str] = []
    seen: set[str] = set()
    for role in roles or ():
        if not isinstance(role, str):
            continue
        name = context_role_name(role)
        if name is None:
            word = "Administrator" if role in STAFF_ADMIN_ROLES else None
        else:
            word = WORDS.get(name, name)
        if word and word not in seen:
            seen.add(word)
            out.append(word)
    last = len(WORD_ORDER)
    return sorted(out, key=lambda w: WORD_ORDER.get(w, last))


def is_admin(roles: list[str] | None) -> bool:
    """An institution or system administrator role (core §A.2.1, §A.2.2), carried by a launch.

    Such a person (an account admin testing the install) is usually not enrolled in the course,
    so instructor pages accept this role from the launch itself, not from the membership.
    """
    return any(isinstance(role, str) and role in STAFF_ADMIN_ROLES for role in roles or ())
