"""Assignment and Grade Services 2.0: line items, scores and results over a ``PlatformClient``.

AGS 2.0 §3.1 (the claim: ``lineitems``, ``lineitem``, ``scope``), §3.2 (line items and their
container, filters ``resource_id``, ``resource_link_id``, ``tag``, ``limit``; paging by the
``Link`` header, rel ``next``), §3.4 (scores, posted to the line item URL's path + ``/scores``),
§3.5 (results, the line item URL's path + ``/results``, filter ``user_id``). Canvas specifics
are in facts sheet section 8: ``POST line_items`` needs ``label`` and ``scoreMaximum``; DELETE
answers 401 for an assignment's own line item; a score answers ``{"resultUrl": ...}``.

Every call asks only for the scopes it needs (``scopes=`` lets a caller choose among those
the platform granted, e.g. ``lineitem`` instead of ``lineitem.readonly`` to share one token).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence
from urllib.parse import urlsplit, urlunsplit

from .errors import PlatformError, ToolError
from .nrps import parse_links, with_query
from .service_client import PlatformClient

SCOPE_LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
SCOPE_LINEITEM_READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly"
SCOPE_RESULT_READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"
SCOPE_SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
ALL_SCOPES = (SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY, SCOPE_RESULT_READONLY, SCOPE_SCORE)

MEDIA_LINEITEM = "application/vnd.ims.lis.v2.lineitem+json"
MEDIA_LINEITEM_CONTAINER = "application/vnd.ims.lis.v2.lineitemcontainer+json"
MEDIA_SCORE = "application/vnd.ims.lis.v1.score+json"
MEDIA_RESULT_CONTAINER = "application/vnd.ims.lis.v2.resultcontainer+json"

# A loop guard for platforms whose ``next`` link never ends.
MAX_PAGES = 10_000


@dataclass(frozen=True)
class Capabilities:
    """What the granted scopes allow (AGS 2.0 §3.1: the claim's ``scope`` list)."""

    can_create_lineitems: bool
    can_read_lineitems: bool
    can_send_scores: bool
    can_read_results: bool

    @property
    def lineitem_read_scopes(self) -> list[str]:
        """The one scope to read line items with: the full one when granted (one shared token)."""
        return [SCOPE_LINEITEM if self.can_create_lineitems else SCOPE_LINEITEM_READONLY]


def capabilities(granted: Iterable[str] | None) -> Capabilities:
    scopes = set(granted or ())
    return Capabilities(can_create_lineitems=SCOPE_LINEITEM in scopes,
                        can_read_lineitems=bool({SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY} & scopes),
                        can_send_scores=SCOPE_SCORE in scopes,
                        can_read_results=SCOPE_RESULT_READONLY in scopes)


def service_url(lineitem_url: str, suffix: str) -> str:
    """The line item URL with ``/suffix`` appended to its path, its query kept (AGS 2.0 §3.4, §3.5).

    ``https://p/li/7?type=x`` -> ``https://p/li/7/scores?type=x``: a platform may put routing
    data in the query, so plain string concatenation would send the score to the wrong place.
    """
    parts = urlsplit(lineitem_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + suffix.strip("/")))


def scores_url(lineitem_url: str) -> str:
    return service_url(lineitem_url, "scores")


def results_url(lineitem_url: str) -> str:
    return service_url(lineitem_url, "results")


def _json(response, what: str):
    try:
        return response.json()
    except ValueError:
        raise PlatformError(f"{what} ({response.url}) is not JSON.", http_status=response.status_code,
                            code="bad_ags_answer")


def iter_pages(client: PlatformClient, url: str, *, scopes: Sequence[str], accept: str,
               what: str) -> Iterator[list[dict]]:
    """Each page of a container (a JSON array), following ``Link: rel="next"`` to the end."""
    seen: set[str] = set()
    number = 0
    next_url: str | None = url
    while next_url:
        if next_url in seen or number >= MAX_PAGES:
            raise PlatformError(f"The platform's {what} paging loops back to {next_url}.",
                                code="paging_loop")
        seen.add(next_url)
        number += 1
        response = client.get(next_url, scopes=list(scopes), accept=accept)
        body = _json(response, f"{what} page {number}")
        if not isinstance(body, list):
            raise PlatformError(f"{what.capitalize()} page {number} ({next_url}) is not a list.",
                                code="bad_ags_answer")
        yield [item for item in body if isinstance(item, dict)]
        next_url = parse_links(response.headers.get("Link")).get("next")


# -- line items (AGS 2.0 §3.2) --------------------------------------------------------------
def list_lineitems(client: PlatformClient, url: str, *, resource_id: str | None = None,
                   resource_link_id: str | None = None, tag: str | None = None,
                   limit: int | None = None,
                   scopes: Sequence[str] = (SCOPE_LINEITEM_READONLY,)) -> list[dict]:
    """Every line item of the container at ``url`` (every page), narrowed by the filters."""
    url = with_query(url, resource_id=resource_id, resource_link_id=resource_link_id, tag=tag,
                     limit=str(limit) if limit else None)
    items: list[dict] = []
    for page in iter_pages(client, url, scopes=scopes, accept=MEDIA_LINEITEM_CONTAINER,
                           what="line items"):
        items.extend(page)
    return items


def _lineitem(response, what: str) -> dict:
    body = _json(response, what)
    if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not body["id"]:
        raise PlatformError(f"{what.capitalize()} answered without the line item's id (its URL).",
                            http_status=response.status_code, code="bad_ags_answer")
    return body


def get_lineitem(client: PlatformClient, url: str, *,
                 scopes: Sequence[str] = (SCOPE_LINEITEM_READONLY,)) -> dict:
    return _lineitem(client.get(url, scopes=list(scopes), accept=MEDIA_LINEITEM), "the line item")


def _check_lineitem_body(lineitem: dict) -> None:
    # Canvas refuses a line item without both (facts section 8); say so before the call.
    if not str(lineitem.get("label") or "").strip():
        raise ToolError("A gradebook column needs a title.", code="lineitem_invalid")
    maximum = lineitem.get("scoreMaximum")
    if isinstance(maximum, bool) or not isinstance(maximum, (int, float)) or maximum <= 0:
        raise ToolError("A gradebook column needs points possible above 0: give the assessment "
                        "points first.", code="lineitem_invalid")


def create_lineitem(client: PlatformClient, url: str, lineitem: dict, *,
                    scopes: Sequence[str] = (SCOPE_LINEITEM,)) -> dict:
    """POST a line item to the container; the platform's line item (``id`` is its URL)."""
    _check_lineitem_body(lineitem)
    response = client.post(url, lineitem, scopes=list(scopes), content_type=MEDIA_LINEITEM,
                           accept=MEDIA_LINEITEM)
    return _lineitem(response, "creating the line item")


def update_lineitem(client: PlatformClient, url: str, lineitem: dict, *,
                    scopes: Sequence[str] = (SCOPE_LINEITEM,)) -> dict:
    """PUT the whole line item (AGS 2.0 §3.2.6: a full replacement, so send it all as read)."""
    _check_lineitem_body(lineitem)
    response = client.put(url, lineitem, scopes=list(scopes), content_type=MEDIA_LINEITEM,
                          accept=MEDIA_LINEITEM)
    return _lineitem(response, "updating the line item")


def delete_lineitem(client: PlatformClient, url: str, *,
                    scopes: Sequence[str] = (SCOPE_LINEITEM,)) -> None:
    """DELETE a line item; Canvas answers 204, or 401 for an assignment's own line item."""
    client.delete(url, scopes=list(scopes))


# -- scores (AGS 2.0 §3.4) and results (§3.5) -----------------------------------------------
def post_score(client: PlatformClient, lineitem_url: str, body: dict, *,
               scopes: Sequence[str] = (SCOPE_SCORE,)) -> dict:
    """POST one score; the platform's answer (Canvas: ``{"resultUrl": ...}``), {} when empty."""
    response = client.post(scores_url(lineitem_url), body, scopes=list(scopes),
                           content_type=MEDIA_SCORE, accept="application/json")
    if not response.content:
        return {}
    try:
        answer = response.json()
    except ValueError:  # the score was taken (2xx); an odd body is not worth failing over
        return {}
    return answer if isinstance(answer, dict) else {}


def iter_results(client: PlatformClient, lineitem_url: str, *, user_id: str | None = None,
                 limit: int | None = None,
                 scopes: Sequence[str] = (SCOPE_RESULT_READONLY,)) -> Iterator[dict]:
    """Every result of a line item (every page), one at a time."""
    url = with_query(results_url(lineitem_url), user_id=user_id,
                     limit=str(limit) if limit else None)
    for page in iter_pages(client, url, scopes=scopes, accept=MEDIA_RESULT_CONTAINER,
                           what="results"):
        yield from page
