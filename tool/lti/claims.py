"""A validated launch as typed properties (LTI 1.3 core §5.3 and §5.4; Canvas shapes in facts §3)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import roles as role_vocab

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
MESSAGE_TYPE = LTI + "message_type"
VERSION = LTI + "version"
DEPLOYMENT_ID = LTI + "deployment_id"
ROLES = LTI + "roles"
RESOURCE_LINK = LTI + "resource_link"
CONTEXT = LTI + "context"
CUSTOM = LTI + "custom"
LIS = LTI + "lis"
LEGACY_USER_ID = LTI + "lti11_legacy_user_id"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
CANVAS_PLACEMENT = "https://www.instructure.com/placement"

MESSAGE_TYPES = {"LtiResourceLinkRequest", "LtiDeepLinkingRequest", "LtiSubmissionReviewRequest",
                 "DataPrivacyLaunchRequest"}


ID_MAX = 255  # LTI 1.3 core: sub, deployment_id, context id, resource link id are at most 255 chars


def clean(value: Any) -> str | None:
    """A claim value as text, or None.

    Unexpanded platform variables (``$CourseSection.sourcedId``, facts §3) and blanks are absent;
    numbers become text; objects, lists and booleans where text belongs are treated as absent.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        value = value.strip()
        if not value or value.startswith("$"):
            return None
        return value
    return None


def text_list(value: Any) -> list[str]:
    return [v for v in (clean(x) for x in value) if v] if isinstance(value, list) else []


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Launch:
    registration_id: int
    issuer: str
    client_id: str
    deployment_id: str
    message_type: str
    sub: str
    roles: list[str]
    body: dict = field(repr=False)
    nonce: str = ""
    deployment_pk: int | None = None  # the tool's Deployment row, found during validation
    # The Registration row it came through (kept so provisioning need not read it again).
    registration: Any = field(default=None, repr=False, compare=False)

    @property
    def is_staff(self) -> bool:
        return role_vocab.is_staff(self.roles)

    def _user_claim(self, name: str) -> str | None:
        return clean(self.body.get(name))

    @property
    def name(self) -> str | None:
        return self._user_claim("name")

    @property
    def given_name(self) -> str | None:
        return self._user_claim("given_name")

    @property
    def family_name(self) -> str | None:
        return self._user_claim("family_name")

    @property
    def email(self) -> str | None:
        return self._user_claim("email")

    @property
    def picture(self) -> str | None:
        return self._user_claim("picture")

    @property
    def lti11_legacy_user_id(self) -> str | None:
        return clean(self.body.get(LEGACY_USER_ID))

    @property
    def person_sourcedid(self) -> str | None:
        return clean(_dict(self.body.get(LIS)).get("person_sourcedid"))

    @property
    def context(self) -> dict | None:
        """{id, label, title, type}, text only; None without a usable context id."""
        ctx = _dict(self.body.get(CONTEXT))
        context_id = clean(ctx.get("id"))
        if not context_id:
            return None
        return {"id": context_id, "label": clean(ctx.get("label")), "title": clean(ctx.get("title")),
                "type": text_list(ctx.get("type"))}

    @property
    def resource_link(self) -> dict | None:
        """{id, title, description}, text only; None without a usable link id."""
        link = _dict(self.body.get(RESOURCE_LINK))
        link_id = clean(link.get("id"))
        if not link_id:
            return None
        return {"id": link_id, "title": clean(link.get("title")),
                "description": clean(link.get("description"))}

    @property
    def custom(self) -> dict:
        values = {k: clean(v) for k, v in _dict(self.body.get(CUSTOM)).items() if isinstance(k, str)}
        return {k: v for k, v in values.items() if v is not None}

    @property
    def memberships_url(self) -> str | None:
        return clean(_dict(self.body.get(NRPS)).get("context_memberships_url"))

    @property
    def ags(self) -> dict:
        """{lineitems, lineitem, scope} when the AGS claim is present (AGS 2.0 §3.1), else {}."""
        claim = self.body.get(AGS)
        if not isinstance(claim, dict):
            return {}
        return {"lineitems": clean(claim.get("lineitems")), "lineitem": clean(claim.get("lineitem")),
                "scope": text_list(claim.get("scope"))}

    @property
    def placement(self) -> str | None:
        return clean(self.body.get(CANVAS_PLACEMENT))
