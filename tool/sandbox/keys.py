"""The sandbox platform's own RSA key, kept in the key folder so restarts keep working.

The tool remembers the sandbox as a registration whose JWKS is the sandbox's: a key made afresh
at every start would be a new platform each time, and processes started together (web server,
job workers) must sign with one key. The private key is ``sandbox_platform.pem`` (0600) beside
the tool's own keys; the first process to start writes it, atomically, the others read it.
Everything else the sandbox derives (client id, deployment id, people) comes from this key.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from config import publish_private_file

FILE_NAME = "sandbox_platform.pem"


def load_or_create(key_dir: Path) -> rsa.RSAPrivateKey:
    """The stored key, made on first start. Raises OSError when the folder is unusable."""
    key_dir = Path(key_dir)
    path = key_dir / FILE_NAME
    if not path.exists():
        key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        publish_private_file(key_dir, path, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def seed_of(key: rsa.RSAPrivateKey) -> bytes:
    """32 bytes that name this sandbox: the same key, the same people and ids."""
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return hashlib.sha256(b"sandbox-seed:" + der).digest()


def kid_of(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sandbox-" + hashlib.sha256(der).hexdigest()[:16]
