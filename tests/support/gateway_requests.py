"""Genuine requests for every provider route, made by the independent signers, and the settings
of a gateway that holds one account per provider."""

from __future__ import annotations

import asyncio
import ipaddress
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from pydantic import SecretStr

from gateway.accounts import AccountConfig
from gateway.asgi import LeanGateway
from gateway.providers.adyen import AdyenAccount
from gateway.providers.alipay import AlipayAccount
from gateway.providers.standardwebhooks import StandardWebhooksAccount
from gateway.providers.stripe import StripeAccount
from gateway.providers.wechatpay import WechatPayAccount
from gateway.publisher import Publisher
from gateway.settings import GatewaySettings, Network
from tests.support import adyen_signer, stripe_signer, wechatpay_signer
from tests.support import alipay as alipay_signer
from tests.support import standardwebhooks_signer as sw_signer
from tests.support.keys import write_public_pem

NOW = 1795687200
FORM = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}
# The /metrics sample of genuine Alipay notifications accepted for account ``shop``.
ALIPAY_ACCEPTED = (
    'paynotify_gateway_requests_total{account="shop",outcome="accepted",provider="alipay"}'
)


def accounts() -> dict[tuple[str, str], AccountConfig]:
    """Return one account per provider, named ``shop``, holding the test keys."""
    wx_key = alipay_signer.key(0).public_key()
    return {
        ("alipay", "shop"): AlipayAccount(
            name="shop", app_id=alipay_signer.APP_ID, public_keys=(wx_key,)
        ),
        ("wechatpay", "shop"): WechatPayAccount(
            name="shop",
            mchid=wechatpay_signer.MCHID,
            appid=wechatpay_signer.APPID,
            apiv3_key=SecretStr(wechatpay_signer.APIV3_KEY),
            platform_public_keys={wechatpay_signer.PUB_KEY_ID: wx_key},
        ),
        ("stripe", "shop"): StripeAccount(
            name="shop", signing_secrets=(SecretStr(stripe_signer.SECRET),)
        ),
        ("standardwebhooks", "shop"): StandardWebhooksAccount(
            name="shop", signing_secrets=(SecretStr(sw_signer.SECRET),)
        ),
        ("adyen", "shop"): AdyenAccount(name="shop", hmac_keys=(SecretStr(adyen_signer.KEY),)),
    }


def settings(
    *,
    max_body_bytes: int = 64 * 1024,
    bootstrap_servers: str = "unused:9092",
    topic_prefix: str = "",
    source_networks: Mapping[tuple[str, str], tuple[Network, ...]] | None = None,
) -> GatewaySettings:
    """Return gateway settings with ``accounts()``."""
    return GatewaySettings(
        host="127.0.0.1",
        port=0,
        max_body_bytes=max_body_bytes,
        delivery_timeout_ms=4000,
        bootstrap_servers=bootstrap_servers,
        partitions=8,
        topic_prefix=topic_prefix,
        accounts=accounts(),
        source_networks=source_networks or {},
    )


def networks(*cidrs: str) -> tuple[Network, ...]:
    """Return parsed networks for an allowlist."""
    return tuple(ipaddress.ip_network(c) for c in cidrs)


def genuine(provider: str, out_trade_no: str, now: int = NOW) -> tuple[bytes, dict[str, str]]:
    """Return a genuine payment notification (body, headers) for ``provider``."""
    if provider == "alipay":
        return alipay_signer.sign(alipay_signer.payment(out_trade_no)), dict(FORM)
    if provider == "wechatpay":
        body = wechatpay_signer.envelope(wechatpay_signer.transaction(out_trade_no))
        return body, wechatpay_signer.headers(body, now)
    if provider == "stripe":
        body = stripe_signer.body(stripe_signer.intent(out_trade_no))
        return body, stripe_signer.headers(body, now)
    if provider == "standardwebhooks":
        body = sw_signer.body(sw_signer.payload(out_trade_no=out_trade_no))
        return body, sw_signer.headers(body, now, msg_id=f"msg_{out_trade_no}")
    item = adyen_signer.signed(adyen_signer.item(out_trade_no))
    return adyen_signer.batch(item), dict(adyen_signer.HEADERS)


PROVIDERS = ("alipay", "wechatpay", "stripe", "standardwebhooks", "adyen")


def build(settings: GatewaySettings, publisher: Publisher | None = None) -> LeanGateway:
    """Build the gateway ``paynotify gateway`` serves, its clock at NOW."""
    return LeanGateway(settings, publisher=publisher, clock=lambda: float(NOW))


@asynccontextmanager
async def serving(app: LeanGateway) -> AsyncIterator[None]:
    """Run the app's ASGI lifespan (publisher start, then close) around the block."""
    inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await task


def wait_ready(process: subprocess.Popen[bytes], port: int, seconds: float = 60) -> bool:
    """Wait until a gateway process answers ``/readyz``; kill it and return False if it does not."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    return False


def write_config(folder: Path, bootstrap: str, port: int, prefix: str, workers: int = 1) -> Path:
    """Write a gateway configuration with one Alipay account ``shop``; return its path."""
    write_public_pem(alipay_signer.key(0), folder / "alipay.pem")
    config = folder / "paynotify.toml"
    config.write_text(
        f'[gateway]\nlisten = "127.0.0.1:{port}"\nworkers = {workers}\n'
        f'[kafka]\nbootstrap_servers = "{bootstrap}"\ntopic_prefix = "{prefix}"\n'
        f'[[accounts]]\nname = "shop"\nprovider = "alipay"\n'
        f'app_id = "{alipay_signer.APP_ID}"\nalipay_public_keys = ["alipay.pem"]\n',
        encoding="utf-8",
    )
    return config


def start_gateway(
    config: Path, port: int, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``paynotify gateway`` with ``config`` and wait until it is ready."""
    command = [sys.executable, "-c", "from paynotify.cli import main; raise SystemExit(main())"]
    gateway = subprocess.Popen([*command, "--config", str(config), "gateway"], env=env)
    assert wait_ready(gateway, port), "the gateway did not become ready"
    return gateway
