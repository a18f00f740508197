"""Reconciliation settings of ``[[accounts]]``: credentials loaded once, half a setup refused."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from gateway.accounts import reconciling
from gateway.errors import ConfigError
from gateway.providers.alipay import AlipayAccount
from gateway.providers.stripe import StripeAccount
from gateway.providers.wechatpay import WechatPayAccount
from gateway.settings import load_settings
from tests.support import alipay as signer
from tests.support.keys import write_private_pem, write_public_pem

ALIPAY = """
[[accounts]]
name = "shop-alipay"
provider = "alipay"
app_id = "2021000000000000"
alipay_public_keys = ["keys/alipay_public.pem"]
"""
WECHAT = """
[[accounts]]
name = "shop-wechat"
provider = "wechatpay"
mchid = "1900000000"
appid = "wx8888888888888888"
apiv3_key = "0123456789abcdef0123456789abcdef"
platform_public_keys = { "PUB_KEY_ID_1" = "keys/alipay_public.pem" }
"""
STRIPE = """
[[accounts]]
name = "shop-stripe"
provider = "stripe"
signing_secrets = ["whsec_aaaaaaaaaaaaaaaaaaaa"]
"""
ADYEN = """
[[accounts]]
name = "shop-adyen"
provider = "adyen"
hmac_keys = ["44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"]
"""


def load(folder: Path, text: str) -> list[object]:
    write_public_pem(signer.key(0), folder / "keys" / "alipay_public.pem")
    write_private_pem(signer.key(5), folder / "keys" / "app_private.pem")
    path = folder / "paynotify.toml"
    path.write_text(text)
    return list(load_settings(path).accounts.values())


def test_alipay_private_key_file_loads_and_reconciles(tmp_path: Path) -> None:
    text = ALIPAY + 'app_private_key = "file:keys/app_private.pem"\nreconcile_after_seconds = 60\n'
    (account,) = load(tmp_path, text)
    assert isinstance(account, AlipayAccount) and account.reconciles
    assert account.reconcile_after_seconds == 60
    assert reconciling([account]) == [account]


def test_alipay_private_key_bare_base64_loads(tmp_path: Path) -> None:
    der = signer.key(5).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (account,) = load(tmp_path, ALIPAY + f'app_private_key = "{base64.b64encode(der).decode()}"\n')
    assert isinstance(account, AlipayAccount) and account.app_private_key is not None


def test_account_without_credentials_does_not_reconcile(tmp_path: Path) -> None:
    accounts = load(tmp_path, ALIPAY + WECHAT + STRIPE + ADYEN)
    assert reconciling(accounts) == []  # type: ignore[arg-type]


def test_stripe_api_key_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_STRIPE_KEY", "rk_live_0123456789abcdefghij")
    (account,) = load(tmp_path, STRIPE + 'api_key = "env:TEST_STRIPE_KEY"\n')
    assert isinstance(account, StripeAccount) and account.reconciles
    assert "rk_live" not in repr(account)


def test_wechat_key_without_serial_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"shop-wechat.*merchant_serial_no"):
        load(tmp_path, WECHAT + 'merchant_private_key = "keys/app_private.pem"\n')


def test_wechat_key_and_serial_reconcile(tmp_path: Path) -> None:
    text = WECHAT + 'merchant_private_key = "keys/app_private.pem"\nmerchant_serial_no = "5157F0"\n'
    (account,) = load(tmp_path, text)
    assert isinstance(account, WechatPayAccount) and account.reconciles


def test_reconcile_setting_without_credentials_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"shop-alipay.*app_private_key"):
        load(tmp_path, ALIPAY + "reconcile_after_seconds = 60\n")


def test_reconcile_setting_on_adyen_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"shop-adyen.*adyen has no order-query API"):
        load(tmp_path, ADYEN + 'query_url = "https://example.com"\n')


@pytest.mark.parametrize("url", ["http://api.example.com/gateway.do", "ftp://x", "not a url"])
def test_query_url_neither_https_nor_loopback_refused(tmp_path: Path, url: str) -> None:
    text = ALIPAY + f'app_private_key = "keys/app_private.pem"\nquery_url = "{url}"\n'
    with pytest.raises(ConfigError, match="query_url"):
        load(tmp_path, text)


def test_query_url_loopback_http_accepted(tmp_path: Path) -> None:
    url = "http://127.0.0.1:8700/alipay/gateway.do"
    text = ALIPAY + f'app_private_key = "keys/app_private.pem"\nquery_url = "{url}"\n'
    (account,) = load(tmp_path, text)
    assert isinstance(account, AlipayAccount) and account.query_url == url


def test_unreadable_private_key_refused_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, ALIPAY + 'app_private_key = "TOPSECRETbutnotakey"\n')
    assert "TOPSECRET" not in str(caught.value)


def test_stripe_api_key_of_another_kind_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="api_key"):
        load(tmp_path, STRIPE + 'api_key = "pk_live_0123456789abcdefghij"\n')


def test_queries_per_second_read_and_defaulted(tmp_path: Path) -> None:
    text = ALIPAY + 'app_private_key = "keys/app_private.pem"\n'
    (default,) = load(tmp_path, text)
    (paced,) = load(tmp_path, text + "reconcile_queries_per_second = 2.5\n")
    assert isinstance(default, AlipayAccount) and default.reconcile_queries_per_second == 10.0
    assert isinstance(paced, AlipayAccount) and paced.reconcile_queries_per_second == 2.5


@pytest.mark.parametrize("value", ["0", "-1", "1001"])
def test_queries_per_second_out_of_range_refused(tmp_path: Path, value: str) -> None:
    text = (
        ALIPAY
        + f'app_private_key = "keys/app_private.pem"\nreconcile_queries_per_second = {value}\n'
    )
    with pytest.raises(ConfigError, match="reconcile_queries_per_second"):
        load(tmp_path, text)


def test_queries_per_second_without_credentials_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"shop-alipay.*app_private_key"):
        load(tmp_path, ALIPAY + "reconcile_queries_per_second = 5\n")
