"""The console page in a real headless Chromium against ``paynotify console`` run as a process.

The page is loaded from the console on a loopback port over a SQLite database the sink's writer
filled; the test types a wrong token, then the right one, looks up an unknown and a known order,
and stops the console to see the page say it cannot reach it. Screenshots go to
``$PAYNOTIFY_SCREENSHOTS`` (``docs/images`` to refresh the documentation's), else to the test's
temporary folder.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from paynotify.broker import free_port
from tests.support.browser import headless_chromium
from tests.support.console_data import RAW_MARKER, TOKEN, fill_database, write_config

pytestmark = pytest.mark.integration


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    database = tmp_path / "sink.db"
    fill_database(database)
    port = free_port()
    config = write_config(tmp_path, database, listen=f"127.0.0.1:{port}")
    log = (tmp_path / "console.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "paynotify.cli", "--config", str(config), "console"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process)
        yield url, process
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
        text = (tmp_path / "console.log").read_text(errors="replace")
        assert "Traceback" not in text and TOKEN not in text, text[-3000:]


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "paynotify console exited"
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("paynotify console did not answer /healthz")


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("PAYNOTIFY_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _text(browser: WebDriver, element_id: str) -> str:
    return str(browser.find_element(By.ID, element_id).text)


def _wait_text(browser: WebDriver, element_id: str, expected: str) -> str:
    WebDriverWait(browser, 10).until(lambda b: expected in _text(b, element_id))
    return _text(browser, element_id)


def _submit(browser: WebDriver, field: str, value: str) -> None:
    box = browser.find_element(By.ID, field)
    box.clear()
    box.send_keys(value)
    box.submit()


def _save(browser: WebDriver, folder: Path, name: str) -> None:
    """Save the whole page, beyond the window's height (Chromium's DevTools screenshot)."""
    size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = browser.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    (folder / name).write_bytes(base64.b64decode(shot["data"]))


def test_console_page_shows_an_orders_story_anomalies_and_counts(
    console: tuple[str, subprocess.Popen[bytes]], shots: Path
) -> None:
    url, process = console
    with headless_chromium() as browser:
        browser.get(url + "/")
        assert "Enter the console token" in _wait_text(browser, "message", "token")

        _submit(browser, "token", "not-the-token-not-the-token")
        _wait_text(browser, "message", "refused the token (401)")
        assert "amount_mismatch" not in browser.page_source
        _save(browser, shots, "console-401.png")

        _submit(browser, "token", TOKEN)
        WebDriverWait(browser, 10).until(
            lambda b: not b.find_element(By.ID, "message").is_displayed()
        )
        assert _text(browser, "by-status").split("\n")[1:] == ["created 1", "paid 2", "total 3"]
        assert "notifications received\n3" in _text(browser, "last-hour")
        assert "orders paid\n2" in _text(browser, "last-hour")
        anomalies = _text(browser, "anomalies")
        assert "amount_mismatch" in anomalies and "paid 1, expected 101" in anomalies
        assert "order_missing" in anomalies and "undecodable_record" in anomalies

        _submit(browser, "order-number", "o-404")
        assert "Nothing on record for order o-404 (404)" in _wait_text(
            browser, "order-message", "404"
        )

        _submit(browser, "order-number", "o-1")
        timeline = _wait_text(browser, "timeline", "order.paid")
        assert "by webhook: paid" in timeline and "by webhook: already_paid" in timeline
        assert "amount_mismatch: paid 1, expected 101" in timeline
        assert "paid (version 1)" in _text(browser, "order-head")
        assert RAW_MARKER not in browser.page_source
        _save(browser, shots, "console.png")

        _submit(browser, "token", "another-token-another-token")  # what was shown goes
        _wait_text(browser, "message", "refused the token (401)")
        assert _text(browser, "anomalies").split("\n") == ["recorded at reason order detail"]
        assert not browser.find_element(By.ID, "order").is_displayed()
        _submit(browser, "token", TOKEN)

        browser.get(url + "/docs")  # Swagger UI from the package's files, no CDN
        WebDriverWait(browser, 20).until(lambda b: "/api/orders/{out_trade_no}" in b.page_source)
        _save(browser, shots, "console-docs.png")

        browser.get(url + "/")
        WebDriverWait(browser, 10).until(lambda b: "paid" in _text(b, "by-status"))
        process.terminate()
        process.wait(timeout=30)
        browser.find_element(By.ID, "refresh").click()
        _wait_text(browser, "message", "Cannot reach the console")
        assert browser.execute_script("return sessionStorage.length") == 1
