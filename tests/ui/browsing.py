"""What the console's browser tests share: Debian's Chromium, a served app, the output dir."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IN_CI = os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}
SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "test-output" / "ui"


@contextmanager
def served_app(app: FastAPI) -> Iterator[str]:
    """The app under uvicorn on a free port of 127.0.0.1; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless; skips without it unless ``CI=true`` (then it fails)."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (install Debian's chromium package)"
        if IN_CI:
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def log_in(browser: Browser, base_url: str, token: str, width: int = 1280) -> Page:
    """A new page signed in to the console with ``token``, on the console's first page."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(f"{base_url}/console/login")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Organizations")).to_be_visible()
    return page


def save_screenshot(page: Page, name: str) -> Path:
    """The whole page as ``test-output/ui/<name>``."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / name
    page.screenshot(path=str(path), full_page=True)
    return path
