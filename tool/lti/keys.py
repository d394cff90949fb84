"""The tool's RSA signing keys and the JWKS that publishes them (LTI Security Framework §6.3).

The ``kid`` is the RFC 7638 thumbprint of the public key, which is also what pylti1p3 puts in
the deep-linking response header, so one key has one ``kid`` everywhere. Private keys are PEM
files with mode 0600 in the key folder; the database holds the public JWK and which key signs.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import ToolKey, utcnow
from ..errors import ToolError
from ..locks import file_lock

KEY_BITS = 2048
_pem_cache: dict[str, bytes] = {}
_cache_lock = threading.Lock()


def _b64u_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_jwk(public_key: rsa.RSAPublicKey) -> dict:
    numbers = public_key.public_numbers()
    jwk = {"e": _b64u_uint(numbers.e), "kty": "RSA", "n": _b64u_uint(numbers.n)}
    # RFC 7638: SHA-256 over the required members, lexically ordered, no whitespace.
    canonical = json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()
    kid = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()
    return {"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": jwk["n"], "e": jwk["e"]}


def _write_private(path: Path, pem: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # the folder holds private keys
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    os.chmod(path, 0o600)


def create_key(session: Session, key_dir: Path, *, signing: bool = True) -> ToolKey:
    """Make a new key pair; when ``signing`` it becomes the key the tool signs with."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    jwk = public_jwk(private.public_key())
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    filename = f"tool-{jwk['kid']}.pem"
    _write_private(Path(key_dir) / filename, pem)
    if signing:
        for key in session.scalars(select(ToolKey).where(ToolKey.is_signing.is_(True))):
            key.is_signing = False
    key = ToolKey(kid=jwk["kid"], public_jwk=json.dumps(jwk), private_key_file=filename,
                  is_signing=signing, is_published=True)
    session.add(key)
    session.flush()
    return key


def ensure_signing_key(session: Session, key_dir: Path) -> ToolKey:
    """First start: make a key when the tool has none that can sign (and its file exists).

    Processes starting together each hold the key folder's lock while they look and make, so
    one makes the key and the others find it (start-up also holds the database's lock around
    this, which covers machines sharing the folder over a network file system).
    """
    key_dir = Path(key_dir)
    key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with file_lock(key_dir / ".keys.lock"):
        key = session.scalars(select(ToolKey).where(ToolKey.is_signing.is_(True))).first()
        if key is not None and (key_dir / key.private_key_file).exists():
            return key
        key = create_key(session, key_dir)
        session.commit()
        return key


def rotate(session: Session, key_dir: Path) -> ToolKey:
    """A new signing key; the previous ones stay published until retired."""
    key = create_key(session, key_dir, signing=True)
    session.commit()
    return key


def retire(session: Session, kid: str) -> ToolKey:
    key = session.scalars(select(ToolKey).where(ToolKey.kid == kid)).first()
    if key is None:
        raise ToolError(f"No tool key with kid {kid!r}.", hint="List keys with `flask --app app keys list`.")
    if key.is_signing:
        raise ToolError(f"Key {kid} is the current signing key and cannot be retired.",
                        hint="Run `flask --app app keys rotate` first, then retire the old key.")
    key.is_published = False
    key.retired_at = utcnow()
    session.commit()
    return key


def jwks(session: Session) -> dict:
    keys = session.scalars(select(ToolKey).where(ToolKey.is_published.is_(True)).order_by(ToolKey.id))
    return {"keys": [json.loads(k.public_jwk) for k in keys]}


def signing_key(session: Session, key_dir: Path) -> tuple[str, bytes]:
    """(kid, private PEM) of the current signing key; the PEM is read once per process."""
    key = session.scalars(select(ToolKey).where(ToolKey.is_signing.is_(True))).first()
    if key is None:
        raise ToolError("The tool has no signing key.", hint="Run `flask --app app keys rotate`.",
                        status=500)
    with _cache_lock:
        pem = _pem_cache.get(key.kid)
        if pem is None:
            pem = (Path(key_dir) / key.private_key_file).read_bytes()
            _pem_cache[key.kid] = pem
    return key.kid, pem
