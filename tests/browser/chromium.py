"""Debian's Chromium driven by Playwright, shared by the browser tests and scripts/screenshots
(the cluster behind it comes from harness.cluster.start_cluster).

Playwright's own browser download cannot work here, so Chromium is the system one,
launched by path.
"""
import os
import shutil
from pathlib import Path

CHROMIUM = os.environ.get("CHAT_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",                      # runs as root in a container
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",   # no update checks or other traffic off loopback
    "--disable-component-update",
    "--disable-sync",
]


def check_tools():
    """Fail loudly, with the package to install, instead of skipping."""
    if shutil.which("haproxy") is None:
        raise RuntimeError("haproxy is not installed: run scripts/test (it installs it) "
                           "or apt-get install haproxy")
    if not Path(CHROMIUM).exists():
        raise RuntimeError("%s is missing: run scripts/test as root (it installs it) "
                           "or apt-get install chromium" % CHROMIUM)


def launch_chromium(playwright, **kwargs):
    """Debian's Chromium, headless, with nothing that reaches off the machine."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                      headless=True, **kwargs)
