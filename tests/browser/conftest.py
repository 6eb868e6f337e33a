"""Fixtures of the browser tests: the real platform, and headless Chromium driven by Selenium.

The platform is started exactly as tests/integration/conftest.py starts it, but per module: pytest would
give a session fixture imported from another conftest its own instance, and a second platform idling
for the rest of the session costs the other tests CPU. Chromium and chromedriver come from Debian
(``infra/browser/setup.sh`` installs them and Selenium); when they are missing the tests skip, except
in CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import platform_on
from tests.integration.conftest import FAILING_SKU
from yiju_infra.local.broker import BrokerServer
from yiju_infra.local.platform import LocalPlatform

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1600",
)


def _missing(what: str) -> None:
    message = f"{what}: run `bash infra/browser/setup.sh` (installs chromium, chromium-driver and selenium)"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
async def platform(
    tmp_path_factory: pytest.TempPathFactory, shared_kafka: BrokerServer
) -> AsyncIterator[LocalPlatform]:
    data_dir: Path = tmp_path_factory.mktemp("browser-platform")
    plat = platform_on(
        shared_kafka,
        data_dir,
        extra_env={
            "YIJU_FULFILMENT_FAIL_SKUS": FAILING_SKU,
            "YIJU_DEMO_TOKENS": "1",  # the console's demo tokens, as `make run` turns them on
        },
    )
    try:
        await plat.start(ready_timeout=90)
        yield plat
    finally:
        await plat.stop_all()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium (selenium WebDriver); nothing is downloaded (no Selenium Manager)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        _missing("chromium or chromedriver is not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
