"""A headless Chromium for the web page's tests and benchmark: the distribution's ``chromium`` and
``chromedriver`` (``make browser`` installs both), driven by Selenium, with its request log on.

Chromium's own background traffic (updates, sync, safe browsing, translation) is switched off, so every
request in the log is one a page made; :func:`requests_made` reads (and empties) that log.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selenium.webdriver import Chrome

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # root in a container has no user namespace for the sandbox
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    "--safebrowsing-disable-auto-update",
    "--metrics-recording-only",
    "--password-store=basic",
)


class BrowserMissing(RuntimeError):
    """Chromium or its driver is not installed."""


def find_chromium() -> tuple[str, str]:
    """``(chromium, chromedriver)`` paths (:class:`BrowserMissing` names what to install)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or (
        "/usr/lib/chromium/chromedriver" if Path("/usr/lib/chromium/chromedriver").exists() else None
    )
    if chromium is None or driver is None:
        raise BrowserMissing(
            "headless Chromium needs the distribution's chromium and chromium-driver packages: run "
            "`make browser` (or apt-get install chromium chromium-driver)"
        )
    return chromium, driver


def headless_chromium(*, width: int = 1400, height: int = 1000) -> Chrome:
    """A new headless Chromium session with its network log on (quit it when done)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = find_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    # an explicit driver: Selenium must not go looking for one on the internet
    return webdriver.Chrome(service=Service(driver), options=options)


def requests_made(browser: Chrome) -> list[str]:
    """URLs of the requests the pages made since the last call (from Chromium's performance log)."""
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def log_in(browser: Chrome, base_url: str, user: str, password: str, *, page: str = "/") -> None:
    """Fill and send the login form (the page asked for afterwards: ``page``)."""
    from selenium.webdriver.common.by import By

    browser.get(f"{base_url.rstrip('/')}/login?next={page}")
    browser.find_element(By.ID, "user").send_keys(user)
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "login-submit").click()
