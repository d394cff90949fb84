"""Where a verified launch lands, chosen by its message type (LTI 1.3 core §5.1.2, §5.3.1).

``LtiResourceLinkRequest`` opens the instructor or student home, unless a resolver claims the
launch first (a link that names an assessment, a SpeedGrader review of an attempt);
``LtiDeepLinkingRequest`` (Deep Linking 2.0 §4.4) goes to its handler; any other message type is
refused with a page that says so. Features register their resolvers and handlers when their
blueprint module is imported, so this module knows none of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..lti import Launch, LaunchError
from . import sessions


@dataclass(frozen=True)
class Landing:
    """A verified, provisioned launch and its new page session."""

    launch: Launch
    user_id: int
    context_id: int | None
    resource_link_id: int | None
    view: str  # "instructor" or "student"
    reference: str  # the page session reference (``t``)
    # The assessment the resource link opens as provisioning read it (None: none); any other
    # value (provisioning wrote the link) means the link must be looked at.
    link_assessment_id: object = ...

    @property
    def home_url(self) -> str:
        return sessions.page_url(self.view, self.reference)


Resolver = Callable[[Landing], "str | None"]
Handler = Callable[[Landing], str]

RESOURCE_LINK = "LtiResourceLinkRequest"
_resolvers: list[tuple[int, Resolver]] = []
_handlers: dict[str, Handler] = {}


def register_resource_link(resolver: Resolver, *, order: int = 100) -> Resolver:
    """A resolver returns the absolute URL a resource link launch should land on, or None."""
    if resolver not in [r for _, r in _resolvers]:
        _resolvers.append((order, resolver))
        _resolvers.sort(key=lambda pair: pair[0])
    return resolver


def register_message(message_type: str, handler: Handler) -> Handler:
    """A handler for another message type returns the absolute URL to land on."""
    _handlers[message_type] = handler
    return handler


def check_supported(launch: Launch) -> None:
    """Refuse, before anything is written, a message type no feature handles."""
    if launch.message_type != RESOURCE_LINK and launch.message_type not in _handlers:
        raise LaunchError(
            f"This tool does not handle {launch.message_type!r} launches.",
            hint="Open the tool from the course navigation or from an assignment.",
            code="message_type_unsupported")


def land(landing: Landing) -> str:
    """The absolute URL the launch redirects to."""
    if landing.launch.message_type == RESOURCE_LINK:
        for _order, resolver in _resolvers:
            url = resolver(landing)
            if url:
                return url
        return landing.home_url
    return _handlers[landing.launch.message_type](landing)
