from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.providers.adyen import AdyenAccount
from gateway.providers.alipay import AlipayAccount
from gateway.providers.stripe import StripeAccount
from gateway.providers.wechatpay import WechatPayAccount
from gateway.records import TEXT_LIMITS, Notification, encode_raw_body
from gateway.settings import MAX_BODY_BYTES, GatewaySettings, load_public_key, load_settings
from tests.support import alipay as signer
from tests.support.keys import write_public_pem


def write_config(folder: Path, text: str) -> Path:
    write_public_pem(signer.key(0), folder / "keys" / "alipay_public.pem")
    write_public_pem(signer.key(1), folder / "keys" / "wechat_pub.pem")
    path = folder / "paynotify.toml"
    path.write_text(text)
    return path


DESIGN_EXAMPLE = """
[gateway]
listen = "127.0.0.1:8000"
[kafka]
bootstrap_servers = "127.0.0.1:9092"
partitions = 8
[database]
url = "sqlite:///var/paynotify.db"
[[accounts]]
name = "shop-alipay"
provider = "alipay"
app_id = "2021000000000000"
alipay_public_keys = ["keys/alipay_public.pem"]
[[accounts]]
name = "shop-wechat"
provider = "wechatpay"
mchid = "1900000000"
appid = "wx8888888888888888"
apiv3_key = "env:TEST_APIV3_KEY"
platform_public_keys = { "PUB_KEY_ID_0000000000000024101100397200000006" = "keys/wechat_pub.pem" }
timestamp_tolerance_seconds = 300
[[accounts]]
name = "shop-stripe"
provider = "stripe"
signing_secrets = ["whsec_aaaaaaaaaaaaaaaaaaaa", "file:keys/stripe_secret"]
[[accounts]]
name = "partner"
provider = "standardwebhooks"
signing_secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
[[accounts]]
name = "shop-adyen"
provider = "adyen"
hmac_keys = ["44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"]
"""


def design_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GatewaySettings:
    monkeypatch.setenv("TEST_APIV3_KEY", "0123456789abcdef0123456789abcdef")
    path = write_config(tmp_path, DESIGN_EXAMPLE)
    (tmp_path / "keys" / "stripe_secret").write_text("whsec_bbbbbbbbbbbbbbbbbbbb\n")
    return load_settings(path)


def test_load_settings_design_example_builds_every_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = design_example(tmp_path, monkeypatch)
    assert (settings.host, settings.port, settings.partitions) == ("127.0.0.1", 8000, 8)
    assert len(settings.accounts) == 5
    alipay = settings.accounts[("alipay", "shop-alipay")]
    assert isinstance(alipay, AlipayAccount) and len(alipay.public_keys) == 1
    wechat = settings.accounts[("wechatpay", "shop-wechat")]
    assert isinstance(wechat, WechatPayAccount)
    assert wechat.apiv3_key.get_secret_value() == "0123456789abcdef0123456789abcdef"
    stripe = settings.accounts[("stripe", "shop-stripe")]
    assert isinstance(stripe, StripeAccount)
    assert [s.get_secret_value() for s in stripe.signing_secrets] == [
        "whsec_aaaaaaaaaaaaaaaaaaaa",
        "whsec_bbbbbbbbbbbbbbbbbbbb",
    ]
    assert "whsec_aaaaaaaaaaaaaaaaaaaa" not in repr(stripe)


def test_load_settings_missing_env_secret_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_APIV3_KEY", raising=False)
    with pytest.raises(ConfigError, match="TEST_APIV3_KEY"):
        load_settings(write_config(tmp_path, DESIGN_EXAMPLE))


ALIPAY = '[[accounts]]\nname = "x"\nprovider = "alipay"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[gateway]\nlisten = "8000"\n', "host:port"),
        ("[kafka]\npartitions = 0\n", "partitions"),
        ('[[accounts]]\nname = "x"\nprovider = "paypal"\n', "provider"),
        (ALIPAY + 'alipay_public_keys = ["keys/alipay_public.pem"]\n', "app_id"),
        (ALIPAY + 'app_id = "1"\nalipay_public_keys = ["nope"]\n', "PEM"),
        (ALIPAY + 'app_id = "1"\npublic_keys = ["keys/alipay_public.pem"]\n', "public_keys"),
        ("not toml [", "TOML"),
    ],
)
def test_load_settings_invalid_config_raises_clear_error(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write_config(tmp_path, text))


def test_load_settings_bare_base64_public_key_accepted(tmp_path: Path) -> None:
    pem = write_public_pem(signer.key(0), tmp_path / "k.pem").read_text()
    bare = "".join(line for line in pem.splitlines() if "-----" not in line)
    text = ALIPAY + f'app_id = "1"\nalipay_public_keys = ["{bare}"]\n'
    account = load_settings(write_config(tmp_path, text)).accounts[("alipay", "x")]
    assert isinstance(account, AlipayAccount)


ALLOWLIST = """
[gateway]
workers = 2
[[accounts]]
name = "shop"
provider = "alipay"
app_id = "2021000000000000"
alipay_public_keys = ["keys/alipay_public.pem"]
allowed_source_ips = ["110.75.0.0/16", "2001:db8::1"]
"""


def test_load_settings_allowlist_and_workers_parsed(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, ALLOWLIST))
    assert settings.workers == 2
    assert [str(n) for n in settings.source_networks[("alipay", "shop")]] == [
        "110.75.0.0/16",
        "2001:db8::1/128",
    ]


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ('allowed_source_ips = ["not-an-address"]', "allowed_source_ips"),
    ],
)
def test_load_settings_invalid_allowlist_raises_config_error(
    tmp_path: Path, line: str, match: str
) -> None:
    text = ALLOWLIST.replace('allowed_source_ips = ["110.75.0.0/16", "2001:db8::1"]', line)
    with pytest.raises(ConfigError, match=match):
        load_settings(write_config(tmp_path, text))


@pytest.mark.parametrize(
    ("provider", "line"),
    [
        ("adyen", 'hmac_keys = ["not hex"]'),
        ("standardwebhooks", 'signing_secrets = ["whsec_***"]'),
    ],
)
def test_load_settings_unusable_secret_raises_config_error(
    tmp_path: Path, provider: str, line: str
) -> None:
    text = f'[[accounts]]\nname = "a"\nprovider = "{provider}"\n{line}\n'
    with pytest.raises(ConfigError):
        load_settings(write_config(tmp_path, text))


def test_load_settings_base64_key_with_a_path_segment_too_long_for_a_file_name(
    tmp_path: Path,
) -> None:
    pem = write_public_pem(signer.key(0), tmp_path / "k.pem").read_text()
    bare = "".join(line for line in pem.splitlines() if "-----" not in line)
    segment_heavy = bare.replace("/", "A")[:300]  # no '/' split: one 300-character "file name"
    assert load_public_key(bare, tmp_path) is not None
    with pytest.raises(ConfigError, match="neither PEM nor base64"):
        load_public_key(segment_heavy, tmp_path)


SHORT_SECRETS = [
    ("stripe", 'signing_secrets = [""]'),
    ("stripe", 'signing_secrets = ["whsec_"]'),
    ("stripe", 'signing_secrets = ["whsec_fifteen-bytes!!"]'.replace("!!", "")),
    ("stripe", 'signing_secrets = ["env:PAYNOTIFY_TEST_EMPTY"]'),
    ("stripe", 'signing_secrets = ["file:keys/empty.secret"]'),
    ("standardwebhooks", 'signing_secrets = ["whsec_"]'),
    ("standardwebhooks", 'signing_secrets = ["whsec_MTIzNDU2Nzg5MDEyMzQ1"]'),  # 15 bytes
    ("standardwebhooks", 'signing_secrets = ["env:PAYNOTIFY_TEST_EMPTY"]'),
    ("adyen", 'hmac_keys = [""]'),
    ("adyen", 'hmac_keys = ["44782DEF547AAA06C910C43932B1EB"]'),  # 15 bytes
    ("adyen", 'hmac_keys = ["env:PAYNOTIFY_TEST_EMPTY"]'),
]


@pytest.mark.parametrize(("provider", "line"), SHORT_SECRETS)
def test_load_settings_empty_or_short_secret_refused_naming_the_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider: str, line: str
) -> None:
    monkeypatch.setenv("PAYNOTIFY_TEST_EMPTY", "")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "empty.secret").write_text("\n")
    text = f'[[accounts]]\nname = "weak-{provider}"\nprovider = "{provider}"\n{line}\n'
    refusal = r"(shorter than 16 bytes|must be hex|must be whsec_)"
    with pytest.raises(ConfigError, match=f"account 'weak-{provider}': .*{refusal}"):
        load_settings(write_config(tmp_path, text))


@pytest.mark.parametrize(
    ("provider", "line"),
    [
        ("stripe", 'signing_secrets = ["whsec_sixteen-bytes-ok"]'),
        ("standardwebhooks", 'signing_secrets = ["whsec_MTIzNDU2Nzg5MDEyMzQ1Ng=="]'),
        ("adyen", 'hmac_keys = ["44782DEF547AAA06C910C43932B1EB0C"]'),
    ],
)
def test_load_settings_sixteen_byte_secret_accepted(
    tmp_path: Path, provider: str, line: str
) -> None:
    text = f'[[accounts]]\nname = "ok"\nprovider = "{provider}"\n{line}\n'
    assert (provider, "ok") in load_settings(write_config(tmp_path, text)).accounts


WECHAT = """
[[accounts]]
name = "wx"
provider = "wechatpay"
mchid = "1900000000"
appid = "wx8888888888888888"
apiv3_key = "{key}"
platform_public_keys = {{ "PUB_KEY_ID_1" = "keys/wechat_pub.pem" }}
"""


@pytest.mark.parametrize("key", ["", "0123456789abcdef", "0123456789abcdef0123456789abcdef0"])
def test_load_settings_apiv3_key_not_32_bytes_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(
        ConfigError, match=r"account 'wx': apiv3_key (must be 32 bytes|is required)"
    ):
        load_settings(write_config(tmp_path, WECHAT.format(key=key)))


def test_load_settings_max_body_bytes_beyond_a_kafka_record_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_body_bytes"):
        load_settings(write_config(tmp_path, f"[gateway]\nmax_body_bytes = {MAX_BODY_BYTES + 1}\n"))
    settings = load_settings(
        write_config(tmp_path, f"[gateway]\nmax_body_bytes = {MAX_BODY_BYTES}\n")
    )
    assert settings.max_body_bytes == MAX_BODY_BYTES


def test_max_body_bytes_largest_record_fits_the_kafka_defaults() -> None:
    longest = {name: "\x01" * limit for name, limit in TEXT_LIMITS.items()}  # 6 bytes escaped
    note = Notification(
        **{**longest, "kind": "payment", "currency": "CNY"},
        amount_minor=2**63 - 1,
        occurred_at="2026-11-26T10:00:00.000001+08:00",
        received_at="2026-11-26T10:00:00.000001+08:00",
        raw_body_b64=encode_raw_body(b"\xff" * MAX_BODY_BYTES),
        succeeded=True,
        refund_amount_minor=2**63 - 1,
        refund_total_minor=2**63 - 1,
    )
    key = note.out_trade_no.encode()
    # librdkafka's default producer message.max.bytes; the broker's default is 1,048,588.
    assert len(note.to_bytes()) + len(key) < 1_000_000


def test_load_settings_deadline_and_connection_cap_read(tmp_path: Path) -> None:
    default = load_settings(write_config(tmp_path, ""))
    assert (default.read_timeout_seconds, default.max_connections) == (15, 1000)
    text = "[gateway]\nread_timeout_seconds = 2.5\nmax_connections = 50\n"
    settings = load_settings(write_config(tmp_path, text))
    assert (settings.read_timeout_seconds, settings.max_connections) == (2.5, 50)
    with pytest.raises(ConfigError, match="read_timeout_seconds"):
        load_settings(write_config(tmp_path, "[gateway]\nread_timeout_seconds = 0\n"))


ADYEN = '[[accounts]]\nname = "ad"\nprovider = "adyen"\nhmac_keys = ["' + "AB" * 32 + '"]\n'


def test_load_settings_adyen_merchant_account_codes_read(tmp_path: Path) -> None:
    text = ADYEN + 'merchant_account_codes = ["ShopECOM", "ShopPOS"]\n'
    account = load_settings(write_config(tmp_path, text)).accounts[("adyen", "ad")]
    assert isinstance(account, AdyenAccount)
    assert account.merchant_account_codes == {"ShopECOM", "ShopPOS"}


def test_load_settings_adyen_without_merchant_account_codes_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="paynotify.gateway"):
        account = load_settings(write_config(tmp_path, ADYEN)).accounts[("adyen", "ad")]
    assert isinstance(account, AdyenAccount) and account.merchant_account_codes == frozenset()
    assert [r.account for r in caplog.records if "merchant_account_codes" in r.message] == ["ad"]


def test_load_settings_alipay_sign_types_pinned(tmp_path: Path) -> None:
    base = ALIPAY + 'app_id = "1"\nalipay_public_keys = ["keys/alipay_public.pem"]\n'
    pinned = load_settings(write_config(tmp_path, base + 'sign_types = ["RSA2"]\n'))
    assert pinned.accounts[("alipay", "x")].sign_types == {"RSA2"}  # type: ignore[union-attr]
    default = load_settings(write_config(tmp_path, base))
    assert default.accounts[("alipay", "x")].sign_types == {"RSA2", "RSA"}  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="sign_types"):
        load_settings(write_config(tmp_path, base + 'sign_types = ["MD5"]\n'))


def test_load_settings_no_account_repr_shows_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = repr(design_example(tmp_path, monkeypatch).accounts)
    for secret in ("0123456789abcdef", "whsec_aaaa", "whsec_bbbb", "MfKQ9r8G", "44782DEF", "b'"):
        assert secret not in shown


def test_load_settings_another_providers_setting_ignored_unknown_refused(tmp_path: Path) -> None:
    base = ALIPAY + 'app_id = "1"\nalipay_public_keys = ["keys/alipay_public.pem"]\n'
    ignored = load_settings(write_config(tmp_path, base + 'signing_secrets = ["whsec_x"]\n'))
    assert ("alipay", "x") in ignored.accounts
    with pytest.raises(ConfigError, match="bogus: Extra inputs are not permitted"):
        load_settings(write_config(tmp_path, base + "bogus = 1\n"))
