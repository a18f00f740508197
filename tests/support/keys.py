"""Write generated test keys in the formats providers hand out."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey


def write_public_pem(key: RSAPrivateKey, path: Path) -> Path:
    """Write the key's public half as SubjectPublicKeyInfo PEM and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def write_private_pem(key: RSAPrivateKey, path: Path) -> Path:
    """Write the private key as unencrypted PKCS#8 PEM and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path
