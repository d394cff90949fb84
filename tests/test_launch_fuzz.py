"""Signed launches whose claims have the wrong shapes: never a 500, always an answer.

The platform emulator signs these properly, so they pass the signature check and reach
validation, provisioning and the landing page with strings where objects belong, objects
where strings belong, numbers, lists and very long values.
"""
from __future__ import annotations

import pytest

ODD_VALUES = [None, 7, 3.5, True, "", "x" * 5000, [], ["a", 1, None], {}, {"id": {"nested": 1}}]

CLAIMS = ["name", "given_name", "family_name", "email", "picture", "sub", "nonce", "azp",
          "context", "resource_link", "roles", "custom", "lis", "lti11_legacy_user_id",
          "launch_presentation", "tool_platform", "target_link_uri",
          "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint",
          "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice",
          "https://www.instructure.com/placement", "deployment_id", "message_type", "version"]

NESTED = {
    "context": ["id", "label", "title", "type"],
    "resource_link": ["id", "title", "description"],
    "lis": ["person_sourcedid"],
    "custom": ["canvas_user_id", "canvas_course_id"],
    "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint": ["lineitems", "lineitem", "scope"],
    "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice": ["context_memberships_url"],
}


def _answered(resp) -> None:
    assert resp.status_code < 500, (resp.status_code, resp.text[:500])


@pytest.mark.parametrize("claim", CLAIMS)
def test_odd_top_level_claim_values_never_cause_a_500(lms, claim):
    for value in ODD_VALUES:
        _answered(lms.launch(lms.teacher, claims={claim: value}))


@pytest.mark.parametrize("claim", sorted(NESTED))
def test_odd_nested_claim_values_never_cause_a_500(lms, claim):
    pending = lms.platform.resource_link_launch(lms.registration, lms.teacher, lms.course)
    from emulator.constants import full_claim
    base = pending.claims.get(full_claim(claim)) or {}
    for field in NESTED[claim]:
        for value in ODD_VALUES:
            _answered(lms.launch(lms.teacher, claims={claim: {**base, field: value}}))
