"""Headless Chromium for the tests that look at pages the way people do.

Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) driven
by Selenium; tests skip with the reason when either is absent.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)


def chrome(tmp_path: Path) -> Any:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        pytest.skip(
            f"Chromium not installed ({CHROMIUM}, {CHROMEDRIVER}): apt-get install chromium chromium-driver"
        )
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


def forget_everything(driver: Any, origins: list[str]) -> None:
    """A blank page, no cookies, and nothing stored for ``origins`` (local storage,
    IndexedDB, caches): a shared browser as a fresh one would be."""
    driver.get("about:blank")
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    for origin in origins:
        driver.execute_cdp_cmd(
            "Storage.clearDataForOrigin", {"origin": origin, "storageTypes": "all"}
        )


def screenshot(driver: Any, path: Path) -> Path:
    """Full-page PNG through the DevTools protocol (Selenium's own is the viewport only)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {
                "x": 0,
                "y": 0,
                "width": 1400,
                "height": min(int(height), 12000),
                "scale": 0.6,
            },
        },
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def keep_artifact(path: Path) -> Path:
    """Copy a screenshot to ``test-artifacts/`` (gitignored), where people look for it."""
    ARTIFACTS.mkdir(exist_ok=True)
    return Path(shutil.copy(path, ARTIFACTS / path.name))
