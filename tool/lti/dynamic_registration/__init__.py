"""LTI Dynamic Registration 1.0, the tool's side, as Canvas and other platforms do it.

1. The platform opens the tool's registration URL with ``openid_configuration`` and, usually,
   ``registration_token`` (DR 1.0, step 1: initiation; facts sheet section 5).
2. :func:`fetch_configuration` (``configuration.py``) reads the platform's OpenID configuration
   (step 2, discovery: bearer token; the issuer is the configuration URL's prefix; the
   ``lti-platform-configuration`` object) and checks it offers what the tool needs.
3. :func:`registration_request` (``client.py``) builds the client registration (step 3).
4. :func:`register` posts it to ``registration_endpoint`` and reads the answer (step 3); the page
   that follows closes the platform's window (step 4, ``web/register.py``).

Every call to the platform is bounded in size and time (``calls.py``), and every text kept
from it is cleaned and cut to a length a page can show.
"""
from .calls import PlatformUnreachable, RegistrationRefused, text
from .client import Answer, register, registration_request
from .configuration import (PLACEMENTS, SCOPE_USES, PlatformConfiguration, check_url,
                            fetch_configuration, issuer_matches)

__all__ = ["PlatformUnreachable", "RegistrationRefused", "text", "Answer", "register",
           "registration_request", "PLACEMENTS", "SCOPE_USES", "PlatformConfiguration",
           "check_url", "fetch_configuration", "issuer_matches"]
