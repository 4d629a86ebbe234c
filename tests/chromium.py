"""
Headless Chromium for the browser tests and the docs' screenshots: Debian's chromium and
chromium-driver, started the same way everywhere (no sandbox, no GPU, no network of its
own, no first-run pages). An explicit driver path means Selenium Manager never runs, so
nothing is downloaded.
"""

import os

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"


def unavailable():
    """Why headless Chromium can't run here (a line), or None."""
    if not os.path.exists(CHROMEDRIVER):
        return f"{CHROMEDRIVER} not found (apt-get install chromium chromium-driver)"
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} not found (apt-get install chromium)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return None


def require():
    """In a test: skip it where headless Chromium can't run, but fail under CI (CI=true), which must have it."""
    import pytest

    reason = unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run under CI: {reason}")
        pytest.skip(reason)


def start(window="1400,1000", profile=None, logs=False, scale=None):
    """
    A selenium Chrome driver for headless Chromium. window: "width,height"; profile: a
    user-data folder (a fresh one per test module keeps runs apart); logs: keep the
    browser console and network logs (driver.get_log("browser" / "performance"));
    scale: a fixed device scale factor, for screenshots of a known size.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    arguments = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", f"--window-size={window}"]
    arguments += [f"--user-data-dir={profile}"] if profile else []
    arguments += [f"--force-device-scale-factor={scale}"] if scale else []
    for argument in arguments:
        options.add_argument(argument)
    if logs:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver
