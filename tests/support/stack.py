"""Run paynotify's services as real processes against the test broker and database."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from paynotify.broker import free_port
from tests.support import alipay as signer
from tests.support.keys import write_public_pem

CONFIG = """\
[gateway]
listen = "127.0.0.1:{port}"

[kafka]
bootstrap_servers = "{bootstrap}"
partitions = 8
topic_prefix = "{prefix}"

[database]
url = "{database}"

[stream]
data_dir = "stream-data"

[sink]
batch_size = 200
flush_interval_seconds = 0.1

[[accounts]]
name = "shop"
provider = "alipay"
app_id = "{app_id}"
alipay_public_keys = ["keys/alipay_public.pem"]
"""


def write_config(folder: Path, bootstrap: str, database: str) -> tuple[Path, int, str]:
    """Write a config with a fresh topic prefix and gateway port; return (path, port, prefix)."""
    write_public_pem(signer.key(0), folder / "keys" / "alipay_public.pem")
    port, prefix = free_port(), f"t{uuid.uuid4().hex[:10]}-"
    path = folder / "paynotify.toml"
    path.write_text(
        CONFIG.format(
            port=port, bootstrap=bootstrap, prefix=prefix, database=database, app_id=signer.APP_ID
        )
    )
    return path, port, prefix


@dataclass
class Service:
    """One ``paynotify <name>`` process with its output in a log file."""

    name: str
    config: Path
    process: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    def start(self) -> None:
        log = self.config.parent / f"{self.name}-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "paynotify.cli", "--config", str(self.config), self.name],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            dump_stacks(self.process.pid)
            self.process.kill()
            return self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def output(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.is_file())


def dump_stacks(pid: int) -> None:
    """Ask a stuck ``paynotify`` process and its children to print their threads' stacks."""
    for target in (pid, *child_pids(pid)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, signal.SIGUSR1)
    time.sleep(1.0)


def child_pids(pid: int) -> list[int]:
    """Return the direct children of ``pid`` (Linux ``/proc``; none elsewhere)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in children.split()]


def wait_http(url: str, timeout: float = 60.0, service: Service | None = None) -> None:
    """Wait until ``url`` answers 200; fail early if the service died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (
            service is not None
            and service.process is not None
            and service.process.poll() is not None
        ):
            raise AssertionError(f"{service.name} exited:\n{service.output()[-3000:]}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer in {timeout}s")


PROVIDERS_ACCOUNTS = """
[[accounts]]
name = "shop-wechat"
provider = "wechatpay"
mchid = "{mchid}"
appid = "{appid}"
apiv3_key = "env:SIM_TEST_APIV3_KEY"
platform_public_keys = {{ "{pub_key_id}" = "keys/wechat_public.pem" }}

[[accounts]]
name = "shop-stripe"
provider = "stripe"
signing_secrets = ["file:keys/stripe.secret"]

[[accounts]]
name = "partner"
provider = "standardwebhooks"
signing_secrets = ["{standard_secret}"]

[[accounts]]
name = "shop-adyen"
provider = "adyen"
hmac_keys = ["{adyen_key}"]
"""


def write_providers_config(
    folder: Path, bootstrap: str, database: str
) -> tuple[Path, int, str, dict[str, Path]]:
    """Write a config with one account per provider (Alipay's is ``shop``) and the private keys
    that play Alipay and WeChat Pay; return (path, port, prefix, {account: private key path}).

    The WeChat APIv3 key is read from ``SIM_TEST_APIV3_KEY`` and the Stripe secret from a file,
    so that the simulator's use of ``env:``/``file:`` secrets is exercised too.
    """
    from tests.support import adyen_signer, stripe_signer, wechatpay_signer
    from tests.support import standardwebhooks_signer as sw_signer
    from tests.support.keys import write_private_pem

    path, port, prefix = write_config(folder, bootstrap, database)
    keys = folder / "keys"
    write_public_pem(signer.key(1), keys / "wechat_public.pem")
    (keys / "stripe.secret").write_text(stripe_signer.SECRET + "\n")
    accounts = PROVIDERS_ACCOUNTS.format(
        mchid=wechatpay_signer.MCHID,
        appid=wechatpay_signer.APPID,
        pub_key_id=wechatpay_signer.PUB_KEY_ID,
        standard_secret=sw_signer.SECRET,
        adyen_key=adyen_signer.KEY,
    )
    path.write_text(path.read_text() + accounts)
    private = {
        "shop": write_private_pem(signer.key(0), keys / "alipay_private.pem"),
        "shop-wechat": write_private_pem(signer.key(1), keys / "wechat_private.pem"),
    }
    return path, port, prefix, private
