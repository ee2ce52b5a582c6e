"""The local identity provider's signing key: an RSA key pair made on first use under `.local/jwt/`.

The local gateway checks tokens with it exactly as API Gateway's JWT authorizer checks the real
issuer's tokens: RS256 signature by a known key id, `iss`, `aud`, `exp`. Development only: the key
never leaves the machine and nothing deployed trusts it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from local.template import REPO

ISSUER = "https://auth.local.support-desk.dev/"
AUDIENCE = "support-api"
ALGORITHM = "RS256"
KEY_DIR = REPO / ".local" / "jwt"
_PRIVATE_KEY_FILE = "private.pem"
_PUBLIC_KEY_FILE = "public.pem"


@dataclass(frozen=True)
class SigningKey:
    key_id: str  # the JWT header's `kid`, as a JWKS would publish it
    private_key: rsa.RSAPrivateKey
    public_key: rsa.RSAPublicKey

    @property
    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@cache
def signing_key(key_dir: Path = KEY_DIR) -> SigningKey:
    """The key pair in `key_dir`, created there the first time. Safe when several processes (the
    gateway, `make token`, a test run) start at once: exactly one key is ever written."""
    private_file = key_dir / _PRIVATE_KEY_FILE
    if not private_file.exists():
        _create_private_key(private_file)
    private_key = serialization.load_pem_private_key(private_file.read_bytes(), password=None)
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise TypeError(f"{private_file} does not hold an RSA private key")
    public_key = private_key.public_key()
    key = SigningKey(key_id=_key_id(public_key), private_key=private_key, public_key=public_key)
    public_file = key_dir / _PUBLIC_KEY_FILE
    if not public_file.exists() or public_file.read_bytes() != key.public_pem:
        _write_atomically(public_file, key.public_pem, mode=0o644)
    return key


def _create_private_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".private-")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(pem)
        os.chmod(temporary, 0o600)
        with contextlib.suppress(FileExistsError):  # another process won the race: its key is kept
            os.link(temporary, path)
    finally:
        os.unlink(temporary)


def _write_atomically(path: Path, content: bytes, *, mode: int) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(fd, "wb") as stream:
        stream.write(content)
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def _key_id(public_key: rsa.RSAPublicKey) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()[:16]).rstrip(b"=").decode()
