"""JWT encoding by hand, so the emulator can also produce bad tokens.

The good path is what Canvas sends (facts sheet, section 3): header
``{"typ":"JWT","alg":"RS256","kid":<current kid>}``, ``exp = iat + 3600``.
The bad paths cover the certification's known-bad payloads and classic
attacks: ``alg="none"``, HS256 keyed with the public key PEM (key confusion),
a foreign signing key, a missing/wrong kid, a payload tampered after signing.
"""

import base64
import hashlib
import hmac
import json
import time
import uuid

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from .constants import DELETE, full_claim


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    text = text + "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(text.encode("ascii"))


def _json(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def strip_deleted(value):
    """Drop keys whose value is DELETE, recursively through dicts."""
    if isinstance(value, dict):
        return {k: strip_deleted(v) for k, v in value.items() if v is not DELETE}
    return value


def merge(base, overrides, aliases=True):
    """Shallow merge of ``overrides`` over ``base``; DELETE removes a key.

    Nested dicts are replaced whole (a DELETE inside them removes that inner key).
    Short claim aliases (``"roles"``) map to full URIs when ``aliases``.
    """
    out = dict(base)
    for key, value in (overrides or {}).items():
        key = full_claim(key) if aliases else key
        if value is DELETE:
            out.pop(key, None)
        else:
            out[key] = strip_deleted(value)
    return out


def sign_rs256(private_key, signing_input):
    return private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())


def encode(payload, *, key, kid, alg="RS256", header=None, sign_with=None,
           hs_secret=None, tamper=False):
    """Encode ``payload`` as a compact JWT.

    ``key``: the platform's current private key; ``kid`` its id.
    ``header``: dict merged over the default header (DELETE removes).
    ``alg``: ``"RS256"`` (default), ``"none"`` (empty signature) or ``"HS256"``
    (HMAC keyed with ``hs_secret``, the platform's public key PEM).
    ``sign_with``: another RSA private key to sign with (forgery).
    ``tamper``: True, a dict of claims or a callable(payload) -> payload; applied
    to the payload after signing, keeping the original signature.
    """
    hdr = merge({"typ": "JWT", "alg": alg, "kid": kid}, header, aliases=False)
    signing_input = (b64url(_json(hdr)) + "." + b64url(_json(payload))).encode("ascii")
    if alg == "none":
        signature = b""
    elif alg == "HS256":
        signature = hmac.new(hs_secret, signing_input, hashlib.sha256).digest()
    elif alg == "RS256":
        signature = sign_rs256(sign_with or key, signing_input)
    else:
        raise ValueError(f"unsupported alg {alg!r}")
    if tamper:
        tampered = apply_tamper(payload, tamper)
        signing_input = (b64url(_json(hdr)) + "." + b64url(_json(tampered))).encode("ascii")
    return signing_input.decode("ascii") + "." + b64url(signature)


def apply_tamper(payload, tamper):
    """Default tamper: a different ``sub`` (or a different ``name`` when no sub)."""
    out = dict(payload)
    if callable(tamper):
        return tamper(out)
    if isinstance(tamper, dict):
        return merge(out, tamper)
    if "sub" in out:
        out["sub"] = str(uuid.uuid4())
    else:
        out["name"] = "Mallory Tampered"
    return out


def decode_unverified(token):
    """(header, payload) of a compact JWT without checking anything; ValueError if malformed."""
    try:
        h, p, _ = token.split(".")
        return json.loads(b64url_decode(h)), json.loads(b64url_decode(p))
    except Exception as exc:  # noqa: BLE001 - any parse failure means malformed
        raise ValueError("malformed JWT") from exc


def build_id_token_payload(launch, nonce, now=None):
    """The id_token payload for ``launch`` (section 3): base claims, template, overrides.

    ``iss``, ``aud`` = ``azp`` = client_id, ``sub``, ``nonce``, ``iat`` = now +
    clock_offset, ``exp`` = iat + 3600, then ``launch.claims``; the launch's
    ``claims=`` overrides and ``remove=`` keys are applied last so they can
    also change or drop the base claims.
    """
    iat = int(now if now is not None else time.time()) + int(launch.clock_offset)
    base = {
        "iss": launch.platform.issuer,
        "aud": launch.tool.client_id,
        "azp": launch.tool.client_id,
        "sub": launch.user.sub,
        "nonce": nonce,
        "iat": iat,
        "exp": iat + 3600,
    }
    payload = dict(base)
    payload.update(launch.claims)
    payload = merge(payload, launch.overrides)
    for key in launch.remove:
        payload.pop(full_claim(key), None)
    return payload
