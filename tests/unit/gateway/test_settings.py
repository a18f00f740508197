from __future__ import annotations

from pathlib import Path

import pytest

from gateway.accounts import AlipayAccount, StripeAccount, WechatPayAccount
from gateway.errors import ConfigError
from gateway.settings import load_public_key, load_settings
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
signing_secrets = ["whsec_a", "file:keys/stripe_secret"]
[[accounts]]
name = "partner"
provider = "standardwebhooks"
signing_secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
[[accounts]]
name = "shop-adyen"
provider = "adyen"
hmac_keys = ["44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"]
"""


def test_load_settings_design_example_builds_every_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_APIV3_KEY", "0123456789abcdef0123456789abcdef")
    path = write_config(tmp_path, DESIGN_EXAMPLE)
    (tmp_path / "keys" / "stripe_secret").write_text("whsec_b\n")
    settings = load_settings(path)
    assert (settings.host, settings.port, settings.partitions) == ("127.0.0.1", 8000, 8)
    assert len(settings.accounts) == 5
    alipay = settings.accounts[("alipay", "shop-alipay")]
    assert isinstance(alipay, AlipayAccount) and len(alipay.public_keys) == 1
    wechat = settings.accounts[("wechatpay", "shop-wechat")]
    assert isinstance(wechat, WechatPayAccount)
    assert wechat.apiv3_key.get_secret_value() == "0123456789abcdef0123456789abcdef"
    stripe = settings.accounts[("stripe", "shop-stripe")]
    assert isinstance(stripe, StripeAccount)
    assert [s.get_secret_value() for s in stripe.signing_secrets] == ["whsec_a", "whsec_b"]
    assert "whsec_a" not in repr(stripe)


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
