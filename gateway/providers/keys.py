"""Keys and secrets in account models: resolved through the loader, decoded once, checked.

``Secret`` and ``PublicKey`` are field types. While a configuration file is loaded,
``gateway.settings`` passes a ``Loader`` in the validation context (``{"loader": ...}``): it
resolves ``env:NAME`` and ``file:PATH`` and reads key files, so that this module does no I/O.
Without one (an account built in code) values are taken as they are.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Annotated, Any, Protocol

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.serialization import (
    load_der_private_key,
    load_der_public_key,
    load_pem_private_key,
    load_pem_public_key,
)
from pydantic import BeforeValidator, SecretStr, ValidationInfo

from gateway.errors import ConfigError
from gateway.providers.provider import Account

# Key material an HMAC secret must hold, once decoded (NIST SP 800-107: at least the security
# strength wanted; 16 bytes = 128 bits). Providers hand out 24 to 64 bytes.
MIN_SECRET_BYTES = 16


class Loader(Protocol):
    """Reads what the configuration file refers to (``gateway.settings.FileLoader``)."""

    def secret(self, value: str) -> str:
        """Resolve ``env:``/``file:`` references; return other values unchanged."""

    def key_text(self, value: str) -> str:
        """Return a key's text: the file's content when ``value`` names one, else ``value``."""


def loader(info: ValidationInfo) -> Loader | None:
    """Return the loader of the validation context, if any."""
    context = info.context
    return context.get("loader") if isinstance(context, dict) else None


def _secret(value: Any, info: ValidationInfo) -> Any:
    found = loader(info)
    return found.secret(value) if isinstance(value, str) and found is not None else value


def _public_key(value: Any, info: ValidationInfo) -> Any:
    if not isinstance(value, str):
        return value
    found = loader(info)
    return public_key(found.key_text(found.secret(value)) if found is not None else value)


def _private_key(value: Any, info: ValidationInfo) -> Any:
    if not isinstance(value, str):
        return value
    found = loader(info)
    return private_key(found.key_text(found.secret(value)) if found is not None else value)


Secret = Annotated[SecretStr, BeforeValidator(_secret)]
PublicKey = Annotated[RSAPublicKey, BeforeValidator(_public_key)]
PrivateKey = Annotated[RSAPrivateKey, BeforeValidator(_private_key)]


def public_key(text: str) -> RSAPublicKey:
    """Decode an RSA public key from PEM or bare base64 DER (as providers hand them out).

    Raises:
        ConfigError: the key is neither, or not an RSA public key.
    """
    try:
        if "BEGIN" in text:
            key = load_pem_public_key(text.encode("ascii"))
        else:
            key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise ConfigError("a configured public key is neither PEM nor base64 DER") from None
    if not isinstance(key, RSAPublicKey):
        raise ConfigError("a configured public key is not an RSA key")
    return key


def private_key(text: str) -> RSAPrivateKey:
    """Decode an unencrypted RSA private key from PEM or bare base64 DER (PKCS#8 or PKCS#1, as
    Alipay's key tool and WeChat Pay's ``apiclient_key.pem`` give them).

    Raises:
        ConfigError: the key is neither, encrypted, or not an RSA private key (the message never
        holds the key).
    """
    try:
        if "BEGIN" in text:
            key = load_pem_private_key(text.encode("ascii"), password=None)
        else:
            der = base64.b64decode("".join(text.split()), validate=True)
            key = load_der_private_key(der, password=None)
    except (ValueError, TypeError, binascii.Error, UnicodeEncodeError):
        raise ConfigError("a configured private key is neither PEM nor base64 DER") from None
    if not isinstance(key, RSAPrivateKey):
        raise ConfigError("a configured private key is not an RSA key")
    return key


def check_material(account: Account, keys: Iterable[bytes], name: str) -> None:
    """Refuse key material shorter than ``MIN_SECRET_BYTES`` (an empty secret included).

    Raises:
        ConfigError: naming the account and the setting.
    """
    if any(len(key) < MIN_SECRET_BYTES for key in keys):
        raise account.refuse(
            f"a secret in {name} is empty or shorter than {MIN_SECRET_BYTES} bytes of key material"
        )
