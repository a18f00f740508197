"""Headless Chromium from Debian's packages, driven by Selenium through Debian's chromedriver.

Nothing is downloaded by Selenium: the driver and the browser are named by path, so its
selenium-manager is never asked to find (or fetch) either. Missing packages are installed with
apt-get when the tests run as root (as CI does); with ``CI`` set a browser that cannot be had
fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.support.apt import AptUnavailable, apt_install

# chromium-driver depends on the chromium of its own version: one apt-get brings both.
PACKAGE = "chromium-driver"


def browser_paths() -> tuple[str, str]:
    """Return the paths of chromium and chromedriver, installing them when missing."""
    try:
        if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
            apt_install(PACKAGE)
    except AptUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is needed for the browser test: {exc}")
        pytest.skip(str(exc))
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium is not None and driver is not None
    return chromium, driver


@contextmanager
def headless_chromium(width: int = 1280, height: int = 900) -> Iterator[webdriver.Chrome]:
    """Start a headless Chromium (no sandbox: the tests run as root) and quit it afterwards."""
    chromium, driver = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    browser = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield browser
    finally:
        browser.quit()
