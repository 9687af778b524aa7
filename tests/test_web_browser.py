"""The planner's web page in a real headless Chromium, end to end with real processes: the machine
simulator, the agent, Mosquitto, the gateway and a real Tryton server (the demo's ERP), in advisory mode.

A bearing fault grows → the fleet page turns pump-7 to alarm without a reload → the asset page draws the
envelope spectrum with the BPFO marker at the bearing's outer-race frequency → a planner approves the
recommendation → Tryton holds the work order and its number shows on the page. Also: a viewer's approval
is refused by the server and recorded, a POST without the CSRF token is refused, the sixth wrong password
is locked out, and not one request of the whole session left the gateway on loopback. Screenshots of every
page go to ``build/screenshots/``.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plantwatch.simulators.browser import (
    BrowserMissing,
    find_chromium,
    headless_chromium,
    log_in,
    requests_made,
)
from plantwatch.simulators.plant import Plant, find_mosquitto
from tests.conftest import wait_until

pytestmark = [
    pytest.mark.web,
    pytest.mark.e2e,
    pytest.mark.skipif(
        find_mosquitto() is None, reason="mosquitto is not installed (make setup installs it)"
    ),
]

SCREENSHOTS = Path(__file__).resolve().parents[1] / "build" / "screenshots"
USERS = {
    "pat": ("planner", "planner-password-1"),
    "viv": ("viewer", "viewer-password-1"),
    "ada": ("administrator", "admin-password-1"),
}


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plant]:
    pytest.importorskip("trytond", reason="Tryton is not installed (make setup installs the tryton extra)")
    instance = Plant(
        tmp_path_factory.mktemp("web") / "plant", erp="tryton", approval="advisory", web_users=USERS
    )
    instance.start(days=2.5, onset_days=0.5, speed=3000)
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def browser(plant: Plant) -> Iterator[Any]:
    try:
        find_chromium()
    except BrowserMissing as error:
        pytest.fail(str(error))  # make test installs it: a missing browser is a broken set-up, not a skip
    instance = headless_chromium()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    instance.seen_urls = []  # type: ignore[attr-defined]
    yield instance
    instance.quit()


def seen(browser: Any) -> list[str]:
    """Every URL the pages requested so far in this module."""
    browser.seen_urls.extend(requests_made(browser))
    return browser.seen_urls


def element(browser: Any, css: str, *, timeout_s: float = 20.0) -> Any:
    from selenium.webdriver.common.by import By

    return wait_until(
        lambda: next(iter(browser.find_elements(By.CSS_SELECTOR, css)), None), timeout_s=timeout_s, what=css
    )


def shoot(browser: Any, name: str) -> None:
    browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def api(browser: Any, method: str, path: str, body: Any = None, *, csrf: bool = True) -> tuple[int, Any]:
    """A request from the page's own origin, with its session cookie (and CSRF token)."""
    script = """
        const [method, path, body, csrf, done] = arguments;
        (async () => {
          const session = await (await fetch('/api/v1/session')).json();
          const headers = {'Content-Type': 'application/json'};
          if (csrf) headers['X-CSRF-Token'] = session.csrf;
          const reply = await fetch(path, {method, headers, body: body === null ? undefined : JSON.stringify(body)});
          done([reply.status, await reply.text()]);
        })().catch((error) => done([0, String(error)]));
    """
    status, text = browser.execute_async_script(script, method, path, body, csrf)
    return status, json.loads(text) if text.startswith(("{", "[")) else text


def bpfo_hz(plant: Plant) -> float:
    """pump-7's outer-race frequency from the agent's configuration: BPFO order × running speed."""
    config = tomllib.loads(plant.agent_config.read_text())
    asset = next(a for a in config["assets"] if a["id"] == plant.asset)
    return asset["bearing"]["bpfo"] * asset["shaft_hz"]


def test_a_growing_fault_goes_from_the_fleet_page_to_an_approved_work_order(
    plant: Plant, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    base = plant.page_url.rstrip("/")
    wait_until(lambda: plant.check_running() or _reachable(plant), timeout_s=60, what="the web page")
    log_in(browser, base, "pat", USERS["pat"][1])
    row = element(browser, f'#fleet-table tr[data-asset="{plant.asset}"]', timeout_s=120)
    assert row.get_attribute("data-state") != "alarm"
    browser.execute_script("window.plantwatchNotReloaded = true")
    shoot(browser, "fleet-before")

    # the fault grows: the row turns to alarm by itself
    wait_until(
        lambda: (
            plant.check_running()
            or browser.find_elements(
                By.CSS_SELECTOR, f'#fleet-table tr[data-asset="{plant.asset}"][data-state="alarm"]'
            )
        ),
        timeout_s=240,
        what="pump-7 in alarm on the open fleet page",
    )
    assert browser.execute_script("return window.plantwatchNotReloaded === true"), "the page was reloaded"
    badge = browser.find_element(By.CSS_SELECTOR, f'#fleet-table tr[data-asset="{plant.asset}"] .state')
    assert badge.text.strip().lower() == "alarm"
    assert "live" in element(browser, "#live-indicator").text.lower()
    shoot(browser, "fleet")

    # the asset page: the envelope spectrum with BPFO where the bearing puts it
    browser.get(f"{base}/assets/{plant.site}/{plant.asset}")
    marker = element(browser, '#envelope-chart [data-marker="bpfo"]', timeout_s=30)
    expected = bpfo_hz(plant)
    assert float(marker.get_attribute("data-hz")) == pytest.approx(expected, rel=0.03)
    status, detail = api(browser, "GET", f"/api/v1/assets/{plant.site}/{plant.asset}")
    assert status == 200
    envelope = detail["spectrum"]["envelope"]
    peak = max(range(len(envelope["bins"])), key=envelope["bins"].__getitem__)
    assert peak * envelope["df_hz"] == pytest.approx(expected, rel=0.03)  # the strongest line is BPFO
    assert element(browser, "#evidence li").text
    assert element(browser, "#spectrum-chart [data-marker='1x']")
    shoot(browser, "asset")
    browser.execute_script("arguments[0].scrollIntoView()", element(browser, "#spectrum-chart"))
    shoot(browser, "asset-spectra")

    # the advisory queue: approve with a reason, the Tryton work order's number comes back to the page
    browser.get(f"{base}/approvals")
    article = element(browser, "article.recommendation[data-correlation-id]", timeout_s=60)
    cid = article.get_attribute("data-correlation-id")
    assert plant.asset in article.text
    article.find_element(By.CSS_SELECTOR, "input.reason, textarea.reason").send_keys("BPFO confirmed on site")
    article.find_element(By.CSS_SELECTOR, "button.approve").click()
    number = wait_until(
        lambda: (
            (n := browser.find_elements(By.CSS_SELECTOR, f'article[data-correlation-id="{cid}"] .erp-number'))
            and n[0].text.strip()
        ),
        timeout_s=60,
        what="the ERP document's number on the approvals page",
    )
    shoot(browser, "approvals")
    tasks = plant.tryton.tasks()  # type: ignore[attr-defined]
    assert [task["number"] for task in tasks if task["plantwatch_correlation_id"] == cid] == [number]
    ledger = plant.gateway_rows(
        "SELECT actor, reason FROM ledger WHERE decision = 'approved' AND correlation_id = ?", (cid,)
    )
    assert ledger == [{"actor": "pat", "reason": "BPFO confirmed on site"}]

    for page, name in (("/audit", "audit"), ("/models", "models")):
        browser.get(base + page)
        element(browser, "#ledger-table tr td" if name == "audit" else "#models-table tr td")
        shoot(browser, name)
    assert all(url.startswith(base + "/") for url in seen(browser) if not url.startswith(("data:", "blob:")))


def _reachable(plant: Plant) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(plant.page_url + "login", timeout=2) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


def test_the_server_refuses_a_viewers_approval_and_a_post_without_the_csrf_token(
    plant: Plant, browser: Any
) -> None:
    base = plant.page_url.rstrip("/")
    wait_until(lambda: _reachable(plant), timeout_s=60, what="the web page")
    browser.delete_all_cookies()
    log_in(browser, base, "viv", USERS["viv"][1])
    element(browser, "#fleet-table")
    status, body = api(browser, "POST", "/api/v1/recommendations/any-id/approve", {"reason": "looks bad"})
    assert status == 403 and "planner" in body["error"]
    refused = plant.gateway_rows(
        "SELECT actor, detail FROM ledger WHERE decision = 'refused' AND actor = 'viv'"
    )
    assert refused and refused[-1]["detail"] == "needs planner, has viewer"

    browser.delete_all_cookies()
    log_in(browser, base, "ada", USERS["ada"][1])
    element(browser, "#fleet-table")
    status, body = api(browser, "PUT", "/api/v1/modes", {"mode": "advisory"}, csrf=False)
    assert status == 403 and "CSRF" in body["error"]
    assert plant.gateway_rows("SELECT detail FROM ledger WHERE decision = 'refused' AND actor = 'ada'")[
        -1
    ] == {"detail": "no valid CSRF token"}
    assert api(browser, "PUT", "/api/v1/modes", {"mode": "advisory"})[0] == 200
    assert all(url.startswith(base + "/") for url in seen(browser) if not url.startswith(("data:", "blob:")))


def test_the_sixth_wrong_password_is_locked_out(plant: Plant, browser: Any) -> None:
    base = plant.page_url.rstrip("/")
    browser.delete_all_cookies()
    for attempt in range(6):
        log_in(browser, base, "viv", "not-the-password")
        message = element(browser, "#login-error").text
        assert ("Too many failed logins" in message) == (attempt == 5), message
    log_in(browser, base, "viv", USERS["viv"][1])  # the right password waits too
    assert "Too many failed logins" in element(browser, "#login-error").text
    shoot(browser, "login-locked")
    assert all(url.startswith(base + "/") for url in seen(browser) if not url.startswith(("data:", "blob:")))
