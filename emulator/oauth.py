"""Token endpoint: client credentials with a JWT client assertion (facts sheet, section 6).

Like Canvas, the tool's JWKS is fetched from its ``public_jwk_url`` on every
token request (timeout 5 s). Errors: 400 ``invalid_request`` /
``invalid_scope`` / ``unsupported_grant_type``, 401 ``invalid_client``.
"""

import secrets
import time

import jwt
import requests
from flask import jsonify, request

from .constants import CLIENT_ASSERTION_TYPE
from .tokens import decode_unverified

HTTP_TIMEOUT = 5
MAX_IAT_AGE = 300
MAX_IAT_SKEW = 60


class TokenError(Exception):
    def __init__(self, status, error, description):
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


def fetch_jwks(url):
    """GET a JWKS with a 5 s timeout, without proxies from the environment."""
    with requests.Session() as session:
        session.trust_env = False
        response = session.get(url, timeout=HTTP_TIMEOUT, headers={"Accept": "application/json"})
    response.raise_for_status()
    return response.json()


def tool_public_key(platform, tool, kid):
    """The tool's public key for ``kid`` from its JWKS (fetched every time)."""
    if tool.jwks is not None:
        keys = tool.jwks
    else:
        platform.count("tool_jwks_fetches")
        try:
            keys = fetch_jwks(tool.jwks_url)
        except (requests.RequestException, ValueError) as exc:
            raise TokenError(400, "invalid_request", f"could not fetch the tool JWKS: {exc}")
    for jwk in (keys or {}).get("keys", []):
        if jwk.get("kid") == kid:
            try:
                return jwt.PyJWK(jwk, algorithm="RS256").key
            except jwt.PyJWTError as exc:
                raise TokenError(400, "invalid_request", f"unusable JWK {kid}: {exc}")
    raise TokenError(400, "invalid_request", f"kid {kid!r} not found in the tool JWKS")


def validate_assertion(platform, form, token_url):
    """Checks of section 6; returns (tool, scopes) or raises TokenError."""
    if form.get("grant_type") != "client_credentials":
        raise TokenError(400, "unsupported_grant_type",
                         f"grant_type {form.get('grant_type')!r} is not supported")
    if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
        raise TokenError(400, "invalid_request", "client_assertion_type must be jwt-bearer")
    assertion = form.get("client_assertion")
    if not assertion:
        raise TokenError(400, "invalid_request", "client_assertion missing")
    try:
        header, claims = decode_unverified(assertion)
    except ValueError:
        raise TokenError(400, "invalid_request", "client_assertion is not a JWT")
    client_id = claims.get("sub")
    tool = platform.tools.get(str(client_id)) if client_id is not None else None
    if tool is None:
        raise TokenError(401, "invalid_client", "unknown client_id")
    if claims.get("iss") != client_id:
        raise TokenError(400, "invalid_request", "iss must equal sub (the client_id)")
    if header.get("alg") != "RS256":
        raise TokenError(400, "invalid_request", "client_assertion must be signed RS256")
    if not header.get("kid"):
        raise TokenError(400, "invalid_request", "client_assertion header has no kid")
    key = tool_public_key(platform, tool, header["kid"])
    try:
        jwt.decode(assertion, key, algorithms=["RS256"],
                   options={"verify_signature": True, "verify_aud": False, "verify_exp": False,
                            "verify_iat": False, "verify_nbf": False, "verify_iss": False})
    except jwt.PyJWTError as exc:
        raise TokenError(400, "invalid_request", f"JWS signature invalid: {exc}")
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if token_url not in auds and platform.token_url not in auds:
        raise TokenError(400, "invalid_request", "aud must be the token endpoint URL")
    now = time.time()
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, (int, float)):
        raise TokenError(400, "invalid_request", "iat missing")
    if now - iat > MAX_IAT_AGE:
        raise TokenError(400, "invalid_request", "iat is too old")
    if iat - now > MAX_IAT_SKEW:
        raise TokenError(400, "invalid_request", "iat is in the future")
    if not isinstance(exp, (int, float)) or exp <= now:
        raise TokenError(400, "invalid_request", "exp missing or in the past")
    jti = claims.get("jti")
    if not jti:
        raise TokenError(400, "invalid_request", "jti missing")
    with platform.lock:
        if jti in platform.seen_jtis:
            raise TokenError(400, "invalid_request", "jti has already been used")
        platform.seen_jtis.add(jti)
    scopes = (form.get("scope") or "").split()
    if not scopes:
        raise TokenError(400, "invalid_scope", "scope missing")
    unknown = [s for s in scopes if s not in tool.scopes]
    if unknown:
        raise TokenError(400, "invalid_scope", "scope not allowed: " + " ".join(unknown))
    return tool, scopes


def register(app, platform):
    @app.post("/login/oauth2/token")
    def token():
        platform.count("token_requests")
        token_url = request.base_url
        try:
            tool, scopes = validate_assertion(platform, request.form, token_url)
        except TokenError as err:
            with platform.lock:
                platform.token_errors.append(err.description)
            return jsonify({"error": err.error, "error_description": err.description}), err.status
        access_token = secrets.token_urlsafe(32)
        with platform.lock:
            platform.access_tokens[access_token] = {
                "client_id": tool.client_id, "scopes": list(scopes),
                "expires_at": time.time() + 3600, "revoked": False}
        return jsonify({"access_token": access_token, "token_type": "Bearer",
                        "expires_in": 3600, "scope": " ".join(scopes)})
