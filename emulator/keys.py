"""The platform's signing keys and its published JWKS (facts sheet, section 1).

Canvas keeps past/present/future keys, rotates monthly and names each key by an
ISO-8601 UTC time (``2018-06-18T22:33:20Z``). Here: one key at start, a new one
with a later kid on every ``rotate()``; every key ever made stays published.
"""

import base64
import secrets
import threading
from datetime import datetime, timedelta, timezone

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KID_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def b64url_uint(value):
    """Base64url (no padding) of a big-endian unsigned integer, as JWK wants."""
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def public_jwk(public_key, kid):
    """Public JWK (RSA) for ``public_key``: kty, kid, alg RS256, use sig, n, e."""
    numbers = public_key.public_numbers()
    return {
        "kty": "RSA",
        "e": b64url_uint(numbers.e),
        "n": b64url_uint(numbers.n),
        "kid": kid,
        "alg": "RS256",
        "use": "sig",
    }


def generate_rsa(bits=2048):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


class KeySet:
    """Past and present RSA keys; ``current`` signs id_tokens."""

    def __init__(self, bits=2048):
        self._bits = bits
        self._lock = threading.Lock()
        self._keys = []  # list of (kid, private_key), oldest first
        self.rotate()

    @classmethod
    def from_key(cls, key, kid, bits=2048):
        """A key set holding one given key: a platform whose key is kept across restarts."""
        keys = cls.__new__(cls)
        keys._bits = bits
        keys._lock = threading.Lock()
        keys._keys = [(kid, key)]
        return keys

    def _next_kid(self):
        now = datetime.now(timezone.utc).replace(microsecond=0)
        if not self._keys:
            # The first key dates from a random moment of the past month, as a live platform's
            # would: two emulators started in the same second must not share a kid.
            now -= timedelta(seconds=secrets.randbelow(30 * 24 * 3600))
        else:
            last = datetime.strptime(self._keys[-1][0], KID_FORMAT).replace(tzinfo=timezone.utc)
            if now <= last:
                now = last + timedelta(seconds=1)
        return now.strftime(KID_FORMAT)

    def rotate(self):
        """Make a new key with a later kid; it signs from now on. Returns the kid."""
        key = generate_rsa(self._bits)
        with self._lock:
            kid = self._next_kid()
            self._keys.append((kid, key))
        return kid

    @property
    def current_kid(self):
        return self._keys[-1][0]

    @property
    def current_key(self):
        return self._keys[-1][1]

    @property
    def kids(self):
        return [kid for kid, _ in self._keys]

    def private_key(self, kid):
        for k, key in self._keys:
            if k == kid:
                return key
        raise KeyError(kid)

    def public_pem(self, kid=None):
        """PEM (SubjectPublicKeyInfo) bytes of a public key, current by default."""
        key = self.private_key(kid) if kid else self.current_key
        return key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwks(self):
        """``{"keys": [...]}`` with every key, public parts only."""
        with self._lock:
            keys = list(self._keys)
        return {"keys": [public_jwk(key.public_key(), kid) for kid, key in keys]}
