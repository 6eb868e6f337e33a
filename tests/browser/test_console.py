"""The web console in headless Chromium, against the real platform: pick a demo user, type a sentence,
watch the order reach COMPLETED live, see the money, fulfilment and the trace waterfall; then the operator
page. Screenshots go to test-artifacts/console.png and test-artifacts/ops.png."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from yiju.common.topics import CONSUMER_GROUPS
from yiju_infra.local.platform import SERVICES, LocalPlatform

pytestmark = pytest.mark.integration
SENTENCE = "two bubble teas and a taxi home"
USER = "u-1004"
FAILED = {
    "NEEDS_CLARIFICATION",
    "REJECTED",
    "PAYMENT_DECLINED",
    "FAILED",
    "CANCELLED",
    "AWAITING_CONFIRMATION",
}


def wait_for(driver: Any, what: str, condition: Callable[[], Any], timeout: float, shot: Path) -> Any:
    """Polls ``condition`` until it returns something truthy; on timeout saves a screenshot and fails with
    the page's status and the browser console."""
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    def check(_: Any) -> Any:
        try:
            return condition()
        except WebDriverException:
            return False

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(check)
    except TimeoutException:
        driver.save_screenshot(str(shot))
        logs = driver.get_log("browser") if hasattr(driver, "get_log") else []
        text = driver.find_element("tag name", "body").text[:1500]
        raise AssertionError(f"timed out waiting for {what}; see {shot}\n{text}\nconsole: {logs}") from None


def order_on_screen(driver: Any, artifacts: Path, base_url: str) -> dict[str, Any]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    failure = artifacts / "console-failure.png"
    body = lambda: driver.find_element(By.TAG_NAME, "body")  # noqa: E731
    driver.get(f"{base_url}/")
    wait_for(
        driver, "the console to start", lambda: body().get_attribute("data-ready") == "true", 30, failure
    )
    Select(driver.find_element(By.ID, "user")).select_by_value(USER)
    wait_for(driver, "the demo session", lambda: body().get_attribute("data-user") == USER, 15, failure)
    box = driver.find_element(By.ID, "text")
    box.clear()
    box.send_keys(SENTENCE)
    driver.find_element(By.ID, "submit").click()

    def settled() -> str | None:
        status = driver.find_element(By.ID, "status").text
        if status in FAILED:
            raise AssertionError(f"the order ended {status}: {body().text[:1500]}")
        return status if status == "COMPLETED" else None

    wait_for(driver, "COMPLETED on screen", settled, 90, failure)
    history = [li.text.split("\n")[0] for li in driver.find_elements(By.CSS_SELECTOR, "#timeline li")]

    def waterfall() -> dict[str, Any] | None:
        rows = driver.find_elements(By.CSS_SELECTOR, "#waterfall .span-row:not(.axis)")
        services = {e.text for e in driver.find_elements(By.CSS_SELECTOR, "#waterfall .span-service span")}
        names = {r.get_attribute("title") for r in rows}
        if services >= set(SERVICES) and any(n.endswith("yiju.payment.captured.v1") for n in names if n):
            return {"rows": len(rows), "services": services, "names": names}
        return None

    trace = wait_for(driver, "the trace waterfall", waterfall, 45, failure)
    shown = {
        "status": driver.find_element(By.ID, "status").text,
        "history": history,
        "order_id": driver.find_element(By.ID, "order-id").text,
        "trace_id": driver.find_element(By.ID, "trace-id").text,
        "total": driver.find_element(By.ID, "total").text,
        "lines": len(driver.find_elements(By.CSS_SELECTOR, "#lines tbody tr")),
        "payment": driver.find_element(By.ID, "payment").text,
        "fulfilment": len(driver.find_elements(By.CSS_SELECTOR, "#fulfilment tbody tr")),
        "trace": trace,
    }
    driver.save_screenshot(str(artifacts / "console.png"))
    return shown


def ops_on_screen(driver: Any, artifacts: Path, base_url: str) -> dict[str, Any]:
    from selenium.webdriver.common.by import By

    failure = artifacts / "ops-failure.png"
    driver.get(f"{base_url}/ops")

    def loaded() -> dict[str, Any] | None:
        chips = driver.find_elements(By.CSS_SELECTOR, "#services .chip")
        budget = driver.find_element(By.ID, "kpi-budget").text
        groups = driver.find_elements(By.CSS_SELECTOR, "#groups tbody tr")
        rates = "rates over" in driver.find_element(By.ID, "updated").text  # a second scrape came in
        if (
            len(chips) == len(SERVICES)
            and budget.startswith("¥")
            and len(groups) == len(CONSUMER_GROUPS)
            and rates
        ):
            return {
                "up": sum("up" in c.get_attribute("class").split() for c in chips),
                "budget": budget,
                "cache": driver.find_element(By.ID, "kpi-cache").text,
                "statuses": driver.find_element(By.ID, "statuses").text,
            }
        return None

    shown = wait_for(driver, "the ops summary", loaded, 30, failure)
    driver.save_screenshot(str(artifacts / "ops.png"))
    return shown


async def test_a_sentence_becomes_a_completed_order_on_screen(
    platform: LocalPlatform, browser: Any, artifacts: Path
) -> None:
    shown = await asyncio.to_thread(order_on_screen, browser, artifacts, platform.api_url)
    assert shown["status"] == "COMPLETED"
    assert shown["history"][0] == "ACCEPTED" and shown["history"][-1] == "COMPLETED"
    assert shown["order_id"].startswith("ord_") and len(shown["trace_id"]) == 32
    assert shown["total"].startswith("¥") and shown["lines"] >= 2
    assert "CAPTURED" in shown["payment"] and "¥" in shown["payment"]
    assert shown["fulfilment"] >= 2
    assert shown["trace"]["rows"] >= 10 and "POST /v1/intents" in shown["trace"]["names"]
    assert (artifacts / "console.png").stat().st_size > 10_000


async def test_the_operator_page_shows_the_platform(
    platform: LocalPlatform, browser: Any, artifacts: Path
) -> None:
    shown = await asyncio.to_thread(ops_on_screen, browser, artifacts, platform.api_url)
    assert shown["up"] == len(SERVICES)
    assert shown["budget"].startswith("¥")
    assert shown["cache"].endswith("%")
    assert "COMPLETED" in shown["statuses"]
