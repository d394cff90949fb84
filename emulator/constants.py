"""Claim names, role URIs and scopes a Canvas platform uses.

Values from the facts sheet, sections 3 (id_token), 4 (scopes) and 7 (NRPS).
"""


class _Delete:
    """Sentinel: a value of DELETE in ``claims=`` / ``header=`` removes that key."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self):
        return "DELETE"

    def __bool__(self):
        return False


DELETE = _Delete()

# Membership roles (section 3, 7)
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
STUDENT_ROLE = LEARNER
TA = "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"
CONTENT_DEVELOPER = "http://purl.imsglobal.org/vocab/lis/v2/membership#ContentDeveloper"
MENTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Mentor"

# Institution / system roles Canvas adds to the launch roles (section 3)
INSTITUTION_INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Instructor"
INSTITUTION_STUDENT = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Student"
INSTITUTION_ADMIN = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Administrator"
SYSTEM_USER = "http://purl.imsglobal.org/vocab/lis/v2/system/person#User"
SYSTEM_SYSADMIN = "http://purl.imsglobal.org/vocab/lis/v2/system/person#SysAdmin"

# Claims (section 3)
LTI = "https://purl.imsglobal.org/spec/lti/claim/"
MESSAGE_TYPE = LTI + "message_type"
VERSION = LTI + "version"
DEPLOYMENT_ID = LTI + "deployment_id"
TARGET_LINK_URI = LTI + "target_link_uri"
RESOURCE_LINK = LTI + "resource_link"
CONTEXT = LTI + "context"
TOOL_PLATFORM = LTI + "tool_platform"
LAUNCH_PRESENTATION = LTI + "launch_presentation"
ROLES = LTI + "roles"
CUSTOM = LTI + "custom"
LIS = LTI + "lis"
LTI11_LEGACY_USER_ID = LTI + "lti11_legacy_user_id"
LTI1P1 = LTI + "lti1p1"
AGS_ENDPOINT = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
DL_SETTINGS = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"
DL_CONTENT_ITEMS = "https://purl.imsglobal.org/spec/lti-dl/claim/content_items"
DL_DATA = "https://purl.imsglobal.org/spec/lti-dl/claim/data"
PLACEMENT = "https://www.instructure.com/placement"

COURSE_OFFERING = "http://purl.imsglobal.org/vocab/lis/v2/course#CourseOffering"

# Short aliases accepted in ``claims=`` and ``remove=`` (none of them is a
# real top-level claim name, so there is no ambiguity).
CLAIM_ALIASES = {
    "message_type": MESSAGE_TYPE,
    "version": VERSION,
    "deployment_id": DEPLOYMENT_ID,
    "target_link_uri": TARGET_LINK_URI,
    "resource_link": RESOURCE_LINK,
    "context": CONTEXT,
    "tool_platform": TOOL_PLATFORM,
    "launch_presentation": LAUNCH_PRESENTATION,
    "roles": ROLES,
    "custom": CUSTOM,
    "lis": LIS,
    "lti11_legacy_user_id": LTI11_LEGACY_USER_ID,
    "lti1p1": LTI1P1,
    "ags": AGS_ENDPOINT,
    "endpoint": AGS_ENDPOINT,
    "nrps": NRPS_CLAIM,
    "namesroleservice": NRPS_CLAIM,
    "deep_linking_settings": DL_SETTINGS,
    "placement": PLACEMENT,
}

# Scopes (section 4, 6)
SCOPE_LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
SCOPE_LINEITEM_READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly"
SCOPE_RESULT_READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"
SCOPE_SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
SCOPE_PROGRESS = "https://canvas.instructure.com/lti-ags/progress/scope/show"
SCOPE_NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
AGS_SCOPES = [SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY, SCOPE_RESULT_READONLY, SCOPE_SCORE]
DEFAULT_SCOPES = AGS_SCOPES + [SCOPE_NRPS]

NRPS_MEDIA_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
# AGS media types and Canvas's score extension (section 8)
LINEITEM_MEDIA_TYPE = "application/vnd.ims.lis.v2.lineitem+json"
LINEITEM_CONTAINER_MEDIA_TYPE = "application/vnd.ims.lis.v2.lineitemcontainer+json"
SCORE_MEDIA_TYPE = "application/vnd.ims.lis.v1.score+json"
RESULT_CONTAINER_MEDIA_TYPE = "application/vnd.ims.lis.v2.resultcontainer+json"
SUBMISSION_EXT = "https://canvas.instructure.com/lti/submission"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

PRIVACY_LEVELS = ("anonymous", "name_only", "email_only", "public")


def full_claim(name):
    """Map a short alias (``"roles"``) to its full claim URI; other names unchanged."""
    return CLAIM_ALIASES.get(name, name)
