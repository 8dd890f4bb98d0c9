"""What the browser tests and scripts/screenshots share: a whole cluster behind HAProxy
on free loopback ports, and Debian's Chromium driven by Playwright.

Playwright's own browser download cannot work here, so Chromium is the system one,
launched by path.
"""
import os
import shutil
from pathlib import Path

from tests.integration.cluster import Cluster

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
NODES = ("node1", "node2", "node3")


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


def start_cluster(log_dir, env=None, nodes=NODES, balancer=True):
    """Broker, nodes and (by default) HAProxy, all healthy; the caller stops it.

    :param env: extra environment for every process.
    """
    cluster = Cluster(log_dir, env=env)
    try:
        cluster.start_broker()
        for name in nodes:
            cluster.start_node(name, wait=False)
        for name in nodes:
            cluster.wait_healthy(name)
        if balancer:
            cluster.start_balancer()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def process_errors(cluster):
    """Tracebacks and ERROR lines in the cluster's logs, by process name."""
    return {name: log[-4000:] for name, log in cluster.logs().items()
            if "Traceback" in log or " ERROR " in log}
