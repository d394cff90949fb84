"""LTI Dynamic Registration as the platform plays it (facts sheet section 5; DR 1.0).

Two shapes, chosen per registration with :meth:`DynamicRegistration.begin`:

- ``"canvas"``: the OpenID configuration at ``/api/lti/security/openid-configuration`` (the
  token read from the bearer header or a ``registration_token`` parameter, as Canvas accepts
  both), ``product_family_code: "canvas"``, Canvas's account name, the registration endpoint
  ``/api/lti/registrations``. Canvas creates the developer key (the client id) but no
  deployment until an admin installs the app, so its answer carries no deployment id unless
  ``deployment_in_answer`` says where to put one ("top", as current Canvas may, or
  "tool_configuration"). A hosted Canvas's issuer is ``https://canvas.instructure.com``, which
  cannot be served from 127.0.0.1: the emulator plays a self-hosted Canvas whose issuer is its
  own address.
- ``"1edtech"``: a Moodle-like platform installed in a folder: issuer ``<base>/moodle``, the
  configuration at ``/moodle/mod/lti/openid-configuration.php``, registration at
  ``/moodle/mod/lti/openid-registration.php``; the answer carries the deployment id inside
  ``lti-tool-configuration`` (DR 1.0, client registration response).

Every registration POST is recorded in ``posts``; an accepted one creates (or, for a client id
given in ``next_client_id`` that already exists, updates) the tool with ``register_tool``, so
launches with the new client id work. Fault switches live in ``faults``.
"""

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from flask import Response, jsonify, request

from . import constants as C

CANVAS = "canvas"
STANDARD = "1edtech"
FOLDER = "/moodle"
PLATFORM_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-platform-configuration"
TOOL_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-tool-configuration"
CANVAS_PRIVACY_LEVEL = "https://canvas.instructure.com/lti/privacy_level"
TOKEN_TTL = 3600  # Canvas's registration token is a JWT valid for an hour

CANVAS_PLACEMENTS = {
    "LtiResourceLinkRequest": ["account_navigation", "assignment_edit", "assignment_selection",
                               "course_navigation", "global_navigation", "link_selection",
                               "module_menu", "user_navigation"],
    "LtiDeepLinkingRequest": ["assignment_selection", "editor_button", "homework_submission",
                              "link_selection", "migration_selection", "module_menu_modal"],
}


@dataclass
class DynRegFaults:
    """Switches for the registration side; each stays on until reset."""

    token_refused: bool = False  # configuration and registration answer 401
    config_status: int = None  # the configuration answers this status (500, 404...)
    config_raw: bytes = None  # served as the configuration body instead of JSON
    config_chunked: bool = False  # sent in chunks without a Content-Length
    config_extra: dict = field(default_factory=dict)  # merged over the configuration
    platform_extra: dict = field(default_factory=dict)  # merged over lti-platform-configuration
    issuer_mismatch: bool = False  # the configuration names https://canvas.instructure.com
    missing_scopes: list = field(default_factory=list)  # left out of scopes_supported
    missing_message_types: list = field(default_factory=list)  # left out of messages_supported
    no_rs256: bool = False  # id_token_signing_alg_values_supported without RS256
    registration_status: int = None  # the registration POST answers this status
    registration_message: str = "The registration was refused."


class DynamicRegistration:
    """The platform's registration state: tokens, configuration, recorded registrations."""

    def __init__(self, platform):
        self.platform = platform
        self.shape = CANVAS
        self.account_name = platform.name
        self.tokens = {}  # registration token -> expiry (epoch seconds)
        self.config_requests = []  # each configuration GET: headers, query, status
        self.posts = []  # each registration POST: authorization, body, status, answer
        self.faults = DynRegFaults()
        self.next_client_id = None  # answer with this client id (a re-registration)
        self.deployment_in_answer = None  # None, "top" or "tool_configuration"
        self.lock = threading.Lock()

    # -- what a test does as the platform's administrator ---------------------------------
    def begin(self, registration_url, shape=CANVAS):
        """The admin pasted ``registration_url``: the URL the platform opens, with
        ``openid_configuration`` and ``registration_token`` appended (facts sheet section 5)."""
        if shape not in (CANVAS, STANDARD):
            raise ValueError(f"shape must be {CANVAS!r} or {STANDARD!r}")
        self.shape = shape
        base = self.platform.base_url
        self.platform.issuer = base if shape == CANVAS else base + FOLDER
        if shape == STANDARD:
            self.deployment_in_answer = self.deployment_in_answer or "tool_configuration"
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = time.time() + TOKEN_TTL
        sep = "&" if urlsplit(registration_url).query else "?"
        return registration_url + sep + urlencode({"openid_configuration": self.config_url,
                                                   "registration_token": token})

    @property
    def config_url(self):
        base = self.platform.base_url
        if self.shape == CANVAS:
            return base + "/api/lti/security/openid-configuration"
        return base + FOLDER + "/mod/lti/openid-configuration.php"

    @property
    def registration_endpoint(self):
        base = self.platform.base_url
        if self.shape == CANVAS:
            return base + "/api/lti/registrations"
        return base + FOLDER + "/mod/lti/openid-registration.php"

    def install(self, client_id):
        """The admin installs the app (Canvas: enables the key, adds the app to an account):
        a deployment appears; returns its id."""
        tool = self.platform.tools[client_id]
        deployment_id = f"{next(self.platform._deployment_n)}:{secrets.token_hex(20)}"
        with self.platform.lock:
            tool.deployment_ids.append(deployment_id)
        return deployment_id

    # -- the configuration ---------------------------------------------------------------
    def configuration(self):
        """The OpenID configuration with the LTI platform configuration (DR 1.0 discovery; Canvas's
        SecurityController#openid_configuration for the Canvas shape)."""
        p, f = self.platform, self.faults
        scopes = [s for s in C.DEFAULT_SCOPES + ["https://purl.imsglobal.org/spec/lti/scope/noticehandlers"]
                  if s not in f.missing_scopes]
        if self.shape == CANVAS:
            messages = [{"type": t, "placements": list(pl)} for t, pl in CANVAS_PLACEMENTS.items()]
            lti = {"product_family_code": "canvas", "version": "cloud",
                   "https://canvas.instructure.com/lti/account_name": self.account_name,
                   "https://canvas.instructure.com/lti/account_lti_guid": p.guid + ":canvas-lms"}
        else:
            messages = [{"type": "LtiResourceLinkRequest"},
                        {"type": "LtiDeepLinkingRequest", "placements": ["ContentArea"]}]
            lti = {"product_family_code": "moodle", "version": "4.3"}
        lti["messages_supported"] = [m for m in messages if m["type"] not in f.missing_message_types]
        lti["variables"] = ["Canvas.user.id", "Canvas.course.id"] if self.shape == CANVAS else []
        lti.update(f.platform_extra)
        config = {
            "issuer": "https://canvas.instructure.com" if f.issuer_mismatch else p.issuer,
            "authorization_endpoint": p.auth_login_url,
            "registration_endpoint": self.registration_endpoint,
            "jwks_uri": p.jwks_url,
            "token_endpoint": p.token_url,
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid"] + scopes,
            "response_types_supported": ["id_token"],
            "id_token_signing_alg_values_supported": [] if f.no_rs256 else ["RS256"],
            "claims_supported": ["sub", "iss", "name", "given_name", "family_name", "email",
                                 "picture", "locale"],
            "subject_types_supported": ["public", "pairwise"],
            PLATFORM_CONFIGURATION: lti,
        }
        config.update(f.config_extra)
        return config

    def _token(self):
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else None
        if token is None and self.shape == CANVAS:
            token = request.args.get("registration_token")
        with self.lock:
            expires = self.tokens.get(token or "")
        if self.faults.token_refused or expires is None or expires < time.time():
            return None
        return token

    def serve_configuration(self, shape):
        if shape != self.shape:
            return jsonify({"error": "not found"}), 404
        token = self._token()
        status = 401 if token is None else (self.faults.config_status or 200)
        with self.lock:
            self.config_requests.append({"authorization": request.headers.get("Authorization"),
                                         "query": request.args.to_dict(), "status": status})
        if token is None:
            return jsonify({"errors": [{"message": "Invalid or expired registration token"}]}), 401
        if status != 200:
            return jsonify({"errors": [{"message": "Internal server error"}]}), status
        if self.faults.config_raw is not None:
            return self.faults.config_raw, 200, {"Content-Type": "text/html"}
        if self.faults.config_chunked:
            body = json.dumps(self.configuration()).encode()
            chunks = (body[i:i + 8192] for i in range(0, len(body), 8192))
            return Response(chunks, 200, content_type="application/json")
        return jsonify(self.configuration())

    # -- the registration ----------------------------------------------------------------
    def problems(self, body):
        """What DR 1.0 requires of a client registration that ``body`` lacks."""
        out = []
        if not isinstance(body, dict):
            return ["the body must be a JSON object"]
        expect = {"application_type": "web", "token_endpoint_auth_method": "private_key_jwt"}
        out += [f"{k} must be {v!r}" for k, v in expect.items() if body.get(k) != v]
        if "id_token" not in (body.get("response_types") or []):
            out.append("response_types must contain id_token")
        if not {"implicit", "client_credentials"} <= set(body.get("grant_types") or []):
            out.append("grant_types must contain implicit and client_credentials")
        for key in ("initiate_login_uri", "jwks_uri", "client_name"):
            if not isinstance(body.get(key), str) or not body[key]:
                out.append(f"{key} is required")
        redirects = body.get("redirect_uris")
        if not isinstance(redirects, list) or not redirects:
            out.append("redirect_uris must be a non-empty list")
        offered = set(self.configuration()["scopes_supported"])
        for scope in str(body.get("scope") or "").split():
            if scope not in offered:
                out.append(f"scope {scope} is not supported")
        tool = body.get(TOOL_CONFIGURATION)
        if not isinstance(tool, dict):
            return out + [f"{TOOL_CONFIGURATION} is required"]
        for key in ("domain", "target_link_uri"):
            if not isinstance(tool.get(key), str) or not tool[key]:
                out.append(f"{TOOL_CONFIGURATION}.{key} is required")
        if urlsplit(str(tool.get("target_link_uri"))).hostname != tool.get("domain"):
            out.append("target_link_uri must be on the tool's domain")
        messages = tool.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) and m.get("type")
                                                     for m in messages):
            out.append("messages must be a list of objects with a type")
        level = tool.get(CANVAS_PRIVACY_LEVEL)
        if level is not None and level not in C.PRIVACY_LEVELS:
            out.append(f"privacy_level must be one of {', '.join(C.PRIVACY_LEVELS)}")
        return out

    def serve_registration(self, shape):
        if shape != self.shape:
            return jsonify({"error": "not found"}), 404
        body = request.get_json(silent=True)
        record = {"authorization": request.headers.get("Authorization"), "body": body}
        token = self._token()
        problems = self.problems(body)
        if token is None:
            status, answer = 401, {"error": "invalid_token",
                                   "error_description": "Invalid or expired registration token"}
        elif self.faults.registration_status:
            status = self.faults.registration_status
            answer = {"error": "invalid_client_metadata",
                      "error_description": self.faults.registration_message}
        elif problems:
            status, answer = 400, {"error": "invalid_client_metadata",
                                   "error_description": "; ".join(problems)}
        else:
            status, answer = 200, self._accept(body)
            with self.lock:
                self.tokens.pop(token, None)  # one registration per token
        record.update(status=status, answer=answer)
        with self.lock:
            self.posts.append(record)
        return jsonify(answer), status

    def _accept(self, body):
        """Create or update the tool (the developer key) and answer as DR 1.0 says."""
        tool_conf = body[TOOL_CONFIGURATION]
        client_id = self.next_client_id
        existing = self.platform.tools.get(client_id) if client_id else None
        if existing is not None:
            deployments = existing.deployment_ids
        elif self.shape == CANVAS and self.deployment_in_answer is None:
            deployments = []  # no deployment until the app is installed
        else:
            deployments = None  # register_tool makes one
        tool = self.platform.register_tool(
            client_id=client_id, login_url=body["initiate_login_uri"],
            redirect_uris=list(body["redirect_uris"]), target_link_uri=tool_conf["target_link_uri"],
            jwks_url=body["jwks_uri"], deployment_ids=deployments,
            privacy_level=tool_conf.get(CANVAS_PRIVACY_LEVEL, "anonymous"),
            scopes=str(body.get("scope") or "").split(), title=body["client_name"],
            custom_fields=dict(tool_conf.get("custom_parameters") or {}))
        answer = dict(body, client_id=tool.client_id)
        answer[TOOL_CONFIGURATION] = dict(tool_conf)
        if tool.deployment_ids and self.deployment_in_answer == "tool_configuration":
            answer[TOOL_CONFIGURATION]["deployment_id"] = tool.deployment_ids[0]
        elif tool.deployment_ids and self.deployment_in_answer == "top":
            answer["deployment_id"] = tool.deployment_ids[0]
        return answer


def register(app, platform):
    """Routes for both shapes; the state is ``platform.dynreg``."""
    state = platform.dynreg = DynamicRegistration(platform)

    @app.get("/api/lti/security/openid-configuration")
    def canvas_openid_configuration():
        return state.serve_configuration(CANVAS)

    @app.post("/api/lti/registrations")
    def canvas_registration():
        return state.serve_registration(CANVAS)

    @app.get(FOLDER + "/mod/lti/openid-configuration.php")
    def standard_openid_configuration():
        return state.serve_configuration(STANDARD)

    @app.post(FOLDER + "/mod/lti/openid-registration.php")
    def standard_registration():
        return state.serve_registration(STANDARD)
