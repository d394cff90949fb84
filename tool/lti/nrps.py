"""Names and Role Provisioning Services 2.0: the membership container, streamed page by page.

NRPS 2.0 §2.3 (paging by the ``Link`` header, rel ``next``), §2.4 (rel ``differences``: the
changes since this read), §2.1 filters ``role`` and ``rlid`` (§3: ``rlid`` narrows to one
resource link). Canvas specifics, facts sheet section 7: at most 50 members a page, entries
joined by ``,`` with no space, and query values are case sensitive, so the header is parsed
here with case preserved (pylti1p3 lower-cases it, pylti1p3 notes "NRPS paging").
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import PlatformError
from .service_client import PlatformClient

SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
MEDIA_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
STATUSES = ("Active", "Inactive", "Deleted")

_LINK = re.compile(r'<([^>]*)>((?:\s*;\s*[^;,]+(?:=(?:"[^"]*"|[^;,]*))?)*)')
_PARAM = re.compile(r';\s*([^=;,\s]+)\s*=\s*(?:"([^"]*)"|([^;,]*))')


def parse_links(header: str | None) -> dict[str, str]:
    """``rel`` -> URL from an RFC 8288 ``Link`` header, URL case untouched.

    A ``rel`` may name several relations (``rel="next last"``); the first URL for a rel wins.
    """
    links: dict[str, str] = {}
    for match in _LINK.finditer(header or ""):
        url, params = match.group(1).strip(), match.group(2)
        for name, quoted, bare in _PARAM.findall(params):
            if name.lower() != "rel":
                continue
            for rel in (quoted if quoted is not None and quoted != "" else bare).split():
                links.setdefault(rel.lower(), url)
    return links


def with_query(url: str, **params: str | None) -> str:
    """``url`` with extra query parameters (kept: what the platform already put there)."""
    extra = {k: v for k, v in params.items() if v}
    if not extra:
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in extra]
    query += list(extra.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass
class MembershipPage:
    number: int
    url: str
    members: list[dict]
    context: dict = field(default_factory=dict)
    next_url: str | None = None
    differences_url: str | None = None


def iter_pages(client: PlatformClient, url: str, *, role: str | None = None,
               rlid: str | None = None, max_pages: int = 100_000) -> Iterator[MembershipPage]:
    """Yield each page of the membership container; one page in memory at a time."""
    url = with_query(url, role=role, rlid=rlid)
    seen: set[str] = set()
    number = 0
    while url:
        if url in seen or number >= max_pages:
            raise PlatformError(f"The platform's roster paging loops back to {url}.",
                                code="paging_loop")
        seen.add(url)
        number += 1
        response = client.get(url, scopes=[SCOPE], accept=MEDIA_TYPE)
        try:
            body = response.json()
        except ValueError:
            raise PlatformError(f"Roster page {number} ({url}) is not JSON.", code="bad_roster_page")
        members = body.get("members") if isinstance(body, dict) else None
        if not isinstance(members, list):
            raise PlatformError(f"Roster page {number} ({url}) has no members list.",
                                code="bad_roster_page")
        links = parse_links(response.headers.get("Link"))
        yield MembershipPage(number=number, url=url,
                             members=[m for m in members if isinstance(m, dict)],
                             context=body.get("context") or {}, next_url=links.get("next"),
                             differences_url=links.get("differences"))
        url = links.get("next")


def all_members_with_pylti1p3(registration, key_dir, url: str) -> list[dict]:
    """The library's plain way, kept only as the baseline of ``bench/roster.py``.

    ``NamesRolesProvisioningService.get_members()`` gathers every page into one list. Its
    ``Link`` parsing lower-cases the next URL, which Canvas-like case-sensitive cursors reject,
    so this baseline patches only that one step (with :func:`parse_links`).
    """
    from pylti1p3.names_roles import NamesRolesProvisioningService
    from pylti1p3.service_connector import ServiceConnector

    from ..db import db
    from . import http, keys
    from .toolconf import to_library_registration

    class _Connector(ServiceConnector):
        def make_service_request(self, scopes, url, **kw):
            kw["case_insensitive_headers"] = True
            out = super().make_service_request(scopes, url, **kw)
            out["next_page_url"] = parse_links(out["headers"].get("Link")).get("next")
            return out

    lib_reg = to_library_registration(db.session, registration, key_dir)
    kid, _pem = keys.signing_key(db.session, key_dir)
    lib_reg.get_kid = lambda: kid  # the kid the tool's JWKS publishes
    connector = _Connector(lib_reg, requests_session=http.session())
    service = NamesRolesProvisioningService(connector, {"context_memberships_url": url})
    return service.get_members()
