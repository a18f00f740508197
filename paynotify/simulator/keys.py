"""Find what the simulator signs with for each configured account.

HMAC secrets (Stripe, Standard Webhooks, Adyen, WeChat Pay's APIv3 key) are in the configuration
already (``env:``/``file:`` resolved by ``gateway.settings``). For Alipay and WeChat Pay the
configuration holds only the provider's *public* keys: the matching private key comes from
``--signing-key ACCOUNT=PATH`` (a PEM file, PKCS#1 or PKCS#8). It must match one of the account's
configured public keys; for WeChat Pay that match also gives the ``Wechatpay-Serial`` to send.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from gateway.accounts import AccountConfig
from gateway.providers.alipay import AlipayAccount
from gateway.providers.wechatpay import WechatPayAccount
from paynotify.errors import SigningKeyError
from paynotify.simulator.plan import PROVIDERS, Account
from paynotify.simulator.signers import SigningKeys

RSA_PROVIDERS = frozenset({"alipay", "wechatpay"})
DEFAULT_CURRENCY = {"wechatpay": "CNY", "stripe": "USD", "standardwebhooks": "EUR", "adyen": "EUR"}


def parse_signing_keys(values: Iterable[str]) -> dict[str, Path]:
    """Parse ``ACCOUNT=PATH`` options.

    Raises:
        SigningKeyError: a value without ``=``.
    """
    keys: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise SigningKeyError(f"--signing-key wants ACCOUNT=PATH, got {value!r}")
        keys[name] = Path(path)
    return keys


def load_private_key(path: Path) -> RSAPrivateKey:
    """Load an unencrypted PEM RSA private key.

    Raises:
        SigningKeyError: the file cannot be read or holds no RSA private key.
    """
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningKeyError(f"cannot load the signing key {path}: {type(exc).__name__}") from None
    if not isinstance(key, RSAPrivateKey):
        raise SigningKeyError(f"the signing key {path} is not an RSA key")
    return key


def _same(public: RSAPublicKey, private: RSAPrivateKey) -> bool:
    return public.public_numbers() == private.public_key().public_numbers()


def signing_keys_for(account: AccountConfig, private: RSAPrivateKey | None) -> SigningKeys:
    """Return the account's signing keys, checking a private key against its public keys.

    Raises:
        SigningKeyError: an RSA provider without a key, or a key the account does not know.
    """
    if account.provider not in RSA_PROVIDERS:
        return SigningKeys(account)
    if private is None:
        raise SigningKeyError(f"account {account.name!r} ({account.provider}) needs --signing-key")
    if isinstance(account, AlipayAccount):
        if not any(_same(k, private) for k in account.public_keys):
            raise SigningKeyError(f"the signing key of {account.name!r} matches no public key")
        return SigningKeys(account, private)
    assert isinstance(account, WechatPayAccount)
    serials = [s for s, k in account.platform_public_keys.items() if _same(k, private)]
    if not serials:
        raise SigningKeyError(f"the signing key of {account.name!r} matches no platform key")
    return SigningKeys(account, private, serials[0])


def select(
    accounts: Mapping[tuple[str, str], AccountConfig],
    providers: Sequence[str] | None,
    key_paths: Mapping[str, Path],
) -> dict[tuple[str, str], SigningKeys]:
    """Return the signing keys of every account of the chosen providers.

    Without ``providers``, accounts of RSA providers that have no key are left out; naming a
    provider makes a missing key an error.

    Raises:
        SigningKeyError: an unknown provider, a missing or mismatching key, nothing to simulate.
    """
    unknown = [p for p in providers or () if p not in PROVIDERS]
    if unknown:
        raise SigningKeyError(f"unknown provider {', '.join(unknown)}; choose from {PROVIDERS}")
    chosen: dict[tuple[str, str], SigningKeys] = {}
    for (provider, name), account in accounts.items():
        if providers and provider not in providers:
            continue
        path = key_paths.get(name)
        if path is None and provider in RSA_PROVIDERS and not providers:
            continue
        private = load_private_key(path) if path is not None else None
        chosen[(provider, name)] = signing_keys_for(account, private)
    if not chosen:
        raise SigningKeyError("no account to simulate (Alipay/WeChat Pay need --signing-key)")
    return chosen


def plan_accounts(
    keys: Mapping[tuple[str, str], SigningKeys], played: Iterable[tuple[str, str]] = ()
) -> list[Account]:
    """Return the plan's view of the accounts, in provider order; those in ``played`` have
    their query API played (so some of their payments may lose every webhook)."""
    out = []
    queried = set(played)
    for (provider, name), signing in keys.items():
        account = signing.account
        currency = (
            account.currency if isinstance(account, AlipayAccount) else DEFAULT_CURRENCY[provider]
        )
        out.append(Account(provider, name, currency, (provider, name) in queried))
    return sorted(out, key=lambda a: (PROVIDERS.index(a.provider), a.name))
