"""A real browser for the dashboard tests: Debian's chromium driven by Selenium.

No browser is ever downloaded: the test uses /usr/bin/chromium and /usr/bin/chromedriver
(`apt-get install chromium chromium-driver`, which `.ci/run` does). Without them the tests
skip locally, and fail in CI (`CI` set), where they are required.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
LAPTOP = (1366, 900)
PHONE = (390, 844)
# Where to save screenshots (docs/dashboard.png is made this way); unset: none are saved.
SCREENSHOT_DIR_ENV = "MOSAIC_DASHBOARD_SCREENSHOT_DIR"


def require_chromium() -> None:
    """Skip (fail in CI) unless Debian's chromium and chromedriver are installed."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if not missing:
        return
    message = (
        f"browser tests need {' and '.join(missing)} (apt-get install chromium chromium-driver)"
    )
    if os.environ.get("CI"):
        pytest.fail(message + ": required in CI")
    pytest.skip(message)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless chromium session at laptop size, closed afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={LAPTOP[0]},{LAPTOP[1]}")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, condition: Callable[[Any], Any], what: str, timeout: float = 10.0) -> Any:
    """Wait until `condition(driver)` is truthy (and return it); fail the test otherwise."""
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    # A condition that reads an element of the page being replaced (a form just submitted)
    # finds it stale: that is "not yet", not a failure.
    waiting = WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,))
    try:
        return waiting.until(condition)
    except TimeoutException:
        pytest.fail(f"timed out after {timeout}s waiting for {what} (at {driver.current_url})")


def screenshot(driver: Any, name: str) -> None:
    """Save a full-page screenshot as `<dir>/<name>.png` when the env asks for one."""
    folder = os.environ.get(SCREENSHOT_DIR_ENV)
    if not folder:
        return
    width = driver.get_window_size()["width"]
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, height + 80)
    driver.save_screenshot(str(Path(folder) / f"{name}.png"))


@contextmanager
def other_site(html: str) -> Iterator[str]:
    """Serve one page from another site (`localhost`, while the dashboard is `127.0.0.1`)."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
