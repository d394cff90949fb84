"""HMAC-signed values in itsdangerous's wire formats, with the signing key derived once.

Every launch signs and checks a few short values: the login state (a timed, URL-safe JSON
token), the page reference (a signed session key). itsdangerous builds a signer object, derives
its key with a hash and decodes through several layers for each call, 25 to 60 us apiece on a
launch; the same checks written out against a key derived once cost a few microseconds. The
formats stay itsdangerous's own, byte for byte, so values signed by either read with the other:
no reference or state in flight is lost across an upgrade, and anything this module does not
read itself (a compressed state from an earlier version) is handed to itsdangerous.

Formats (itsdangerous 2.x, ``django-concat`` key derivation, ``.`` separator, unpadded
URL-safe base64):

- signed value: ``value.b64(HMAC(key, value))``, key = ``H(salt + b"signer" + secret)``;
- timed token: ``b64(json).b64(int timestamp).b64(HMAC-SHA1(key, b64(json).b64(ts)))``, key as
  above with SHA-1; a payload starting with ``.`` is zlib-compressed.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from functools import lru_cache
from typing import Any, Callable

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

__all__ = ["BadSignature", "SignatureExpired", "SignedValue", "TimedToken", "signed_value",
           "timed_token"]


def _b64encode(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _b64decode(data: bytes) -> bytes:
    """Unpadded URL-safe base64; anything else (padding, other characters) is refused."""
    if not data or b"=" in data:
        raise BadSignature("not base64")
    try:
        return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        raise BadSignature("not base64") from None


def _derived_key(digest: Callable, salt: str, secret: str) -> bytes:
    return digest(salt.encode() + b"signer" + secret.encode()).digest()


class SignedValue:
    """itsdangerous ``Signer(secret, salt=salt, digest_method=digest)``: ``sign`` and ``unsign``."""

    __slots__ = ("_key", "_digest")

    def __init__(self, secret: str, salt: str, digest: Callable = hashlib.sha256) -> None:
        self._digest = digest
        self._key = _derived_key(digest, salt, secret)

    def _mac(self, value: bytes) -> bytes:
        return hmac.new(self._key, value, self._digest).digest()

    def sign(self, value: str) -> str:
        raw = value.encode()
        return (raw + b"." + _b64encode(self._mac(raw))).decode("ascii")

    def unsign(self, signed: str) -> str:
        """The value, or :class:`BadSignature`."""
        try:
            raw = signed.encode("ascii")
        except UnicodeEncodeError:
            raise BadSignature("not ascii") from None
        value, sep, sig = raw.rpartition(b".")
        if not sep:
            raise BadSignature("no separator")
        if not hmac.compare_digest(_b64decode(sig), self._mac(value)):
            raise BadSignature("signature does not match")
        return value.decode("ascii")


class TimedToken:
    """itsdangerous ``URLSafeTimedSerializer(secret, salt=salt)``, written uncompressed.

    ``loads`` checks the signature before anything in the payload is decoded, then the age.
    """

    __slots__ = ("_key", "_fallback")

    def __init__(self, secret: str, salt: str) -> None:
        self._key = _derived_key(hashlib.sha1, salt, secret)
        self._fallback = URLSafeTimedSerializer(secret, salt=salt)

    def _mac(self, value: bytes) -> bytes:
        return hmac.new(self._key, value, hashlib.sha1).digest()

    def dumps(self, obj: Any) -> str:
        payload = _b64encode(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode())
        now = int(time.time())
        stamp = _b64encode(now.to_bytes((now.bit_length() + 7) // 8, "big"))
        value = payload + b"." + stamp
        return (value + b"." + _b64encode(self._mac(value))).decode("ascii")

    def loads(self, token: str, max_age: int) -> Any:
        """The payload, or :class:`BadSignature` (:class:`SignatureExpired` when too old)."""
        if token.startswith("."):  # compressed by an earlier version: itsdangerous reads it
            return self._fallback.loads(token, max_age=max_age)
        try:
            raw = token.encode("ascii")
        except UnicodeEncodeError:
            raise BadSignature("not ascii") from None
        value, sep, sig = raw.rpartition(b".")
        payload, sep2, stamp = value.rpartition(b".")
        if not sep or not sep2:
            raise BadSignature("not a timed token")
        if not hmac.compare_digest(_b64decode(sig), self._mac(value)):
            raise BadSignature("signature does not match")
        age = int(time.time()) - int.from_bytes(_b64decode(stamp), "big")
        if age > max_age or age < 0:  # a stamp from the future is refused too, as itsdangerous does
            raise SignatureExpired(f"signed {age} seconds ago, at most {max_age} allowed")
        try:
            return json.loads(_b64decode(payload))
        except ValueError:
            raise BadSignature("payload is not JSON") from None


# Made once per secret and salt: a server has one secret, tests make many apps.
@lru_cache(maxsize=16)
def signed_value(secret: str, salt: str, digest: Callable = hashlib.sha256) -> SignedValue:
    return SignedValue(secret, salt, digest)


@lru_cache(maxsize=16)
def timed_token(secret: str, salt: str) -> TimedToken:
    return TimedToken(secret, salt)
