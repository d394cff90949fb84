"""A validated launch as typed properties (LTI 1.3 core §5.3 and §5.4; Canvas shapes in facts §3)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
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
LAUNCH_PRESENTATION = LTI + "launch_presentation"
TARGET_LINK_URI = LTI + "target_link_uri"
DEEP_LINKING_SETTINGS = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"

MESSAGE_TYPES = {"LtiResourceLinkRequest", "LtiDeepLinkingRequest", "LtiSubmissionReviewRequest",
                 "DataPrivacyLaunchRequest"}


ID_MAX = 255  # LTI 1.3 core §5.3: sub, deployment_id, context id, resource link id are at most 255 chars

# Line breaks and tabs inside a name or title become one space; every other control character
# (C0, DEL, C1, including NUL, which PostgreSQL refuses in text) is dropped.
_BREAKS = re.compile(r"[\t\n\r\x0b\x0c\x1c-\x1f\x85\u2028\u2029]+")
_CONTROL = dict.fromkeys([*range(0x00, 0x20), *range(0x7f, 0xa0)])
# Identifiers are refused (not cleaned) when they carry these: they could break a log line,
# a header or a command built from them.
_ID_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def clean_text(value: str) -> str:
    """``value`` without control characters: line breaks and tabs become one space."""
    if value.isprintable():  # the common case costs one C-level scan
        return value
    return _BREAKS.sub(" ", value).translate(_CONTROL)


def clean(value: Any) -> str | None:
    """A claim value as text, or None.

    Unexpanded platform variables (``$CourseSection.sourcedId``, facts §3) and blanks are absent;
    numbers become text; objects, lists and booleans where text belongs are treated as absent.
    Control characters are removed (``clean_text``): text from a platform is stored as is
    otherwise, and PostgreSQL cannot store a NUL.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        value = clean_text(value).strip()
        if not value or value.startswith("$"):
            return None
        return value
    return None


def identifier_problem(value: Any, limit: int = ID_MAX) -> str | None:
    """Why ``value`` is not acceptable as an identifier, or None when it is.

    Identifiers (issuer, client id, deployment id, sub, context and link ids) are strings of at
    most ``limit`` characters without control characters (LTI 1.3 core §5.3). The length is
    checked first so a megabyte-long value costs nothing more.
    """
    if not isinstance(value, str):
        return "is not a string"
    if len(value) > limit:
        return f"is {len(value)} characters long; at most {limit} are allowed"
    if _ID_FORBIDDEN.search(value):
        return "contains control characters"
    return None


def plausible_identifier(value: Any) -> bool:
    """True for printable text of 1 to 255 characters: safe to offer inside a fix command."""
    return isinstance(value, str) and 0 < len(value) <= ID_MAX and value.isprintable()


def text_list(value: Any) -> list[str]:
    return [v for v in (clean(x) for x in value) if v] if isinstance(value, list) else []


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Launch:
    """A verified launch's claims. The claim groups a launch reads many times (context, link,
    custom, AGS) are cleaned once, on first use; treat what they return as read-only."""

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

    @cached_property
    def context(self) -> dict | None:
        """{id, label, title, type}, text only; None without a usable context id."""
        ctx = _dict(self.body.get(CONTEXT))
        context_id = clean(ctx.get("id"))
        if not context_id:
            return None
        return {"id": context_id, "label": clean(ctx.get("label")), "title": clean(ctx.get("title")),
                "type": text_list(ctx.get("type"))}

    @cached_property
    def resource_link(self) -> dict | None:
        """{id, title, description}, text only; None without a usable link id."""
        link = _dict(self.body.get(RESOURCE_LINK))
        link_id = clean(link.get("id"))
        if not link_id:
            return None
        return {"id": link_id, "title": clean(link.get("title")),
                "description": clean(link.get("description"))}

    @cached_property
    def custom(self) -> dict:
        values = {k: clean(v) for k, v in _dict(self.body.get(CUSTOM)).items() if isinstance(k, str)}
        return {k: v for k, v in values.items() if v is not None}

    @property
    def memberships_url(self) -> str | None:
        return clean(_dict(self.body.get(NRPS)).get("context_memberships_url"))

    @cached_property
    def ags(self) -> dict:
        """{lineitems, lineitem, scope} when the AGS claim is present (AGS 2.0 §3.1), else {}."""
        claim = self.body.get(AGS)
        if not isinstance(claim, dict):
            return {}
        return {"lineitems": clean(claim.get("lineitems")), "lineitem": clean(claim.get("lineitem")),
                "scope": text_list(claim.get("scope"))}

    @property
    def target_link_uri(self) -> str | None:
        """Where the platform was asked to launch (core §5.4.1); may carry the tool's own query."""
        return clean(self.body.get(TARGET_LINK_URI))

    @property
    def deep_linking_settings(self) -> dict:
        """The deep linking request's settings (Deep Linking 2.0 §4.4.1; Canvas shape in facts §3).

        ``deep_link_return_url`` (text or None), ``accept_types`` and
        ``accept_presentation_document_targets`` (lists of text), ``accept_multiple`` and
        ``auto_create`` (booleans), ``data`` (opaque text to echo back, or None), ``title`` and
        ``text`` (suggestions, or None). {} when the claim is absent.
        """
        claim = self.body.get(DEEP_LINKING_SETTINGS)
        if not isinstance(claim, dict):
            return {}
        data = claim.get("data")
        return {"deep_link_return_url": clean(claim.get("deep_link_return_url")),
                "accept_types": text_list(claim.get("accept_types")),
                "accept_presentation_document_targets":
                    text_list(claim.get("accept_presentation_document_targets")),
                "accept_media_types": clean(claim.get("accept_media_types")),
                "accept_multiple": claim.get("accept_multiple") is True,
                "auto_create": claim.get("auto_create") is True,
                "data": data if isinstance(data, str) and len(data) <= 4096 else None,
                "title": clean(claim.get("title")), "text": clean(claim.get("text"))}

    @property
    def return_url(self) -> str | None:
        """``launch_presentation.return_url`` (core §5.4.4): on Canvas, the school's own domain."""
        return clean(_dict(self.body.get(LAUNCH_PRESENTATION)).get("return_url"))

    @property
    def placement(self) -> str | None:
        return clean(self.body.get(CANVAS_PLACEMENT))
