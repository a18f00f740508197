"""CPU per request of the gateway's own code, without a server or a broker.

Drives ``LeanGateway`` (the app ``paynotify gateway`` serves) in this process with ASGI messages
of 1,000 distinct genuine Alipay RSA2 notifications, a publisher that acknowledges at once and the
JSON log line going to /dev/null, and reports process CPU time per request (median of
``--runs``). What it leaves out: uvicorn/httptools, the socket, librdkafka. ``--profile`` prints
cProfile's top functions of one run. Compare commits in the same run: the machine is shared.

``--stages`` splits the same requests instead: the CPU of each step of Alipay's verification run
alone (parsing, the signature check and its RSA call, the format checks, normalizing, the record's
check and encoding), and of the app's whole path with the verification replaced by handing back
the already verified record (dispatch, headers, body, publish, metrics, log line, answer).

    .venv/bin/python bench/gateway_path.py --runs 7
    .venv/bin/python bench/gateway_path.py --runs 7 --stages
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import logging
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the signers under tests/

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from gateway.accounts import PROVIDERS
from gateway.asgi import LeanGateway
from gateway.providers import alipay
from gateway.settings import load_settings
from paynotify.logs import JsonLineHandler
from tests.support import alipay as signer
from tests.support.keys import write_public_pem

HEADERS = [(b"host", b"127.0.0.1"), (b"content-type", b"application/x-www-form-urlencoded")]


class AckAtOnce:
    """A publisher whose broker acknowledges every record at once."""

    async def start(self) -> None: ...

    async def publish(self, topic: str, key: bytes, value: bytes) -> None: ...

    async def ready(self) -> bool:
        return True

    async def close(self) -> None: ...


def gateway(folder: Path) -> LeanGateway:
    """The served app on a configuration with one Alipay account."""
    pem = write_public_pem(signer.key(0), folder / "alipay_public.pem")
    config = folder / "paynotify.toml"
    config.write_text(
        '[kafka]\nbootstrap_servers = "127.0.0.1:1"\n\n[[accounts]]\nprovider = "alipay"\n'
        f'name = "shop"\napp_id = "{signer.APP_ID}"\nalipay_public_keys = ["{pem.name}"]\n'
    )
    return LeanGateway(load_settings(config), publisher=AckAtOnce())


async def one(app: LeanGateway, body: bytes) -> None:
    """Send one notification through the app's ASGI interface."""
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/notify/alipay/shop",
        "client": ("127.0.0.1", 40000),
        "headers": [*HEADERS, (b"content-length", str(len(body)).encode())],
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop()

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    if sent[0]["status"] != 200:
        raise SystemExit(f"answered {sent[0]['status']}: the bench is broken")


async def run(app: LeanGateway, bodies: list[bytes]) -> float:
    """Return the process CPU µs per request over every body."""
    started = time.process_time()
    for body in bodies:
        await one(app, body)
    return (time.process_time() - started) / len(bodies) * 1e6


def cpu_us(step: Any, items: list[Any], runs: int) -> float:
    """Return the median over ``runs`` of the process CPU µs per item of ``step``."""
    figures = []
    for _ in range(runs):
        started = time.process_time()
        for item in items:
            step(item)
        figures.append((time.process_time() - started) / len(items) * 1e6)
    return statistics.median(figures)


def stages(app: LeanGateway, bodies: list[bytes], runs: int) -> None:
    """Print the CPU of each verification step alone, and of the app without them."""
    account = app.state.settings.accounts[("alipay", "shop")]
    params = [alipay.parse_form(body) for body in bodies]
    notes = [
        alipay.verify(body, {"content-type": alipay.CONTENT_TYPE}, account, now=time.time())
        for body in bodies
    ]
    key = account.public_keys[0]
    signed = [(base64_sign(p), alipay.canonical_string(p).encode()) for p in params]
    rows = [
        ("parse_form (the form into fields)", lambda b: alipay.parse_form(b), bodies),
        ("signature check, all of it", lambda p: alipay._check_signature(p, account), params),
        (
            "  of which RSA-2048 verify",
            lambda s: key.verify(s[0], s[1], padding.PKCS1v15(), hashes.SHA256()),
            signed,
        ),
        ("check_formats", alipay.check_formats, params),
        (
            "_normalize (the record)",
            lambda p: alipay._normalize(p, b"", account, now=time.time()),
            params,
        ),
        ("Notification.check", lambda n: n.check(), notes),
        ("Notification.to_bytes", lambda n: n.to_bytes(), notes),
        (
            "verify, all of it",
            lambda b: alipay.verify(
                b, {"content-type": alipay.CONTENT_TYPE}, account, now=time.time()
            ),
            bodies,
        ),
    ]
    for name, step, items in rows:
        print(f"{name:40s} {cpu_us(step, items, runs):6.1f} us")
    ready = {body: (note,) for body, note in zip(bodies, notes, strict=True)}
    real = PROVIDERS["alipay"]
    PROVIDERS["alipay"] = dataclasses.replace(real, verify=lambda body, *_a, **_k: ready[body])
    try:
        rest = statistics.median(asyncio.run(run(app, bodies)) for _ in range(runs))
    finally:
        PROVIDERS["alipay"] = real
    print(f"{'the app without verify (ASGI to answer)':40s} {rest:6.1f} us")


def base64_sign(params: dict[str, str]) -> bytes:
    """Return the decoded signature of a parsed notification."""
    import base64

    return base64.b64decode(params["sign"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--stages", action="store_true", help="split the CPU by step")
    args = parser.parse_args()
    handler = JsonLineHandler(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the run
    logging.basicConfig(handlers=[handler], level=logging.INFO, force=True)
    with tempfile.TemporaryDirectory(prefix="paynotify-gw-path-") as folder:
        app = gateway(Path(folder))
        bodies = [signer.sign(signer.payment(f"path-{i}")) for i in range(1000)]
        asyncio.run(run(app, bodies[:100]))  # warm-up
        if args.stages:
            stages(app, bodies, args.runs)
            return 0
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(asyncio.run, run(app, bodies))
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            return 0
        figures = [asyncio.run(run(app, bodies)) for _ in range(args.runs)]
    print("us per request: " + "; ".join(f"{f:.1f}" for f in figures))
    print(f"median {statistics.median(figures):.1f} us per request (CPU, this process)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
