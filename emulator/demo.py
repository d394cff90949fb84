"""A demo course for trying the tool by hand: one instructor and 30 students.

Identifiers (``sub``, ``login_hint``, the course's ``context_id``, the tool's client and
deployment ids) are derived from a seed, so a platform seeded again with the same seed, after a
restart or in another process, has the very same people and course (facts sheet section 3:
``sub`` a UUID, 40-hex ``login_hint`` and context id, deployment ids ``"N:<40 hex>"``). The
course's contents (assignments, scores) are not derived: they live in the platform's memory.
"""

import hashlib
import hmac
import itertools
import time
import unicodedata
import uuid
from dataclasses import dataclass

from . import constants as C
from .models import User

COURSE_LABEL = "ENV 101"
COURSE_TITLE = "Introduction to Climate Science"
INSTRUCTOR_NAME = ("Maya", "Okafor")
STUDENT_NAMES = (  # (given name, family name)
    ("Zoë", "Ngô"), ("José", "Álvarez"), ("Aisha", "Rahman"), ("Liam", "O'Connor"),
    ("Sofia", "Rossi"), ("Kenji", "Watanabe"), ("Amara", "Nwosu"), ("Lucas", "Martin"),
    ("Priya", "Natarajan"), ("Mateo", "Fernández"), ("Hannah", "Schmidt"),
    ("Oluwaseun", "Adeyemi"), ("Chloé", "Dubois"), ("Noah", "Williams"),
    ("Fatima Zahra", "El Idrissi"), ("Erik", "Johansson"), ("Mei Lin", "Chen"),
    ("Diego", "Torres"), ("Ananya", "Iyer"), ("Tomasz", "Kowalski"), ("Grace", "Kim"),
    ("Yusuf", "Demir"), ("Isabella", "García"), ("Samuel", "Mensah"), ("Nora", "Lindqvist"),
    ("Ravi", "Shankar"), ("Leila", "Haddad"), ("Owen", "Davies"), ("Björn", "Åkesson"),
    ("Camille", "Laurent"),
)
EMAIL_DOMAIN = "demo-school.example"
# What Canvas shows for a person without a picture.
DEFAULT_AVATAR = "https://canvas.instructure.com/images/messages/avatar-50.png"


@dataclass
class DemoCourse:
    course: object
    instructor: User
    students: list

    @property
    def people(self):
        return [self.instructor, *self.students]


def derive(seed: bytes, label: str, length: int = 40) -> str:
    """``length`` hex characters that depend only on ``seed`` and ``label``."""
    return hmac.new(seed, label.encode(), hashlib.sha256).hexdigest()[:length]


def derived_uuid(seed: bytes, label: str) -> str:
    return str(uuid.UUID(derive(seed, label, 32), version=4))


def ascii_email(name: str) -> str:
    """``zoe.ngo@demo-school.example`` for "Zoë Ngô": accents dropped, one dot between names."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    parts = ["".join(ch for ch in p if ch.isalnum()) for p in plain.lower().split()]
    return ".".join(p for p in parts if p) + "@" + EMAIL_DOMAIN


def make_deterministic(platform, seed: bytes) -> None:
    """The platform's guid and the secrets signing NRPS cursors, deep linking data and message
    hints, from ``seed``: processes seeded alike accept each other's cursors and hints."""
    platform.guid = derive(seed, "guid")
    platform.secret = bytes.fromhex(derive(seed, "secret", 64))
    platform._hint_secret = bytes.fromhex(derive(seed, "hint-secret", 64))


def _add_person(platform, seed, n, given, family):
    name = f"{given} {family}"
    with platform.lock:
        canvas_id = str(1000 + n)
        user = User(sub=derived_uuid(seed, f"user-{n}-sub"),
                    lti11_legacy_user_id=derive(seed, f"user-{n}-lti11"),
                    login_hint=derive(seed, f"user-{n}-login-hint"), canvas_user_id=canvas_id,
                    name=name, given_name=given, family_name=family, email=ascii_email(name),
                    picture=DEFAULT_AVATAR, sourcedid=f"SIS{canvas_id}", institution_roles=None)
        platform.users[user.sub] = user
    return user


def seed_demo_course(platform, seed: bytes) -> DemoCourse:
    """The demo course with its instructor and 30 students, all enrolled and active."""
    make_deterministic(platform, seed)
    course = platform.add_course(label=COURSE_LABEL, title=COURSE_TITLE)
    course.context_id = derive(seed, "course-context")
    instructor = _add_person(platform, seed, 1, *INSTRUCTOR_NAME)
    platform.enroll(course, instructor, roles=[C.INSTRUCTOR])
    students = []
    for n, (given, family) in enumerate(STUDENT_NAMES, start=2):
        student = _add_person(platform, seed, n, given, family)
        platform.enroll(course, student, roles=[C.LEARNER])
        students.append(student)
    with platform.lock:
        # People added later get the Canvas ids after the demo's. Assignment and line item ids
        # count from the clock: a platform seeded again after a restart never hands out an id
        # whose URL a tool still holds from before (the course's contents are not kept).
        platform._user_ids = itertools.count(1001 + len(STUDENT_NAMES) + 1)
        platform._record_ids = itertools.count(int(time.time()))
    return DemoCourse(course, instructor, students)


def demo_tool_ids(seed: bytes) -> tuple[str, str]:
    """(client_id, deployment_id) Canvas-shaped: 14 digits, and ``"1:<40 hex>"``."""
    client_id = str(10000000000000 + int(derive(seed, "client-id", 12), 16) % (9 * 10 ** 13))
    return client_id, "1:" + derive(seed, "deployment-id")
