"""Browser tests: Debian's Chromium, driven by Playwright, on the real pages of a real
cluster (broker, three nodes, HAProxy) on free loopback ports."""
import pytest
from playwright.sync_api import expect, sync_playwright

from harness.cluster import start_cluster
from harness.processes import allowed_log_errors, check_logs

from .chat_page import STATUS_RECORDER, ChatPage
from .chromium import check_tools, launch_chromium

check_tools()

# Cross-process expectations (page -> HAProxy -> node -> broker -> every node -> page) on
# a 2-core machine that may be running a benchmark at the same time.
EXPECT_TIMEOUT_MS = 15000
expect.set_options(timeout=EXPECT_TIMEOUT_MS)
DESKTOP = {"width": 1100, "height": 760}


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def cluster(request, tmp_path_factory):
    """Broker + node1..node3 + HAProxy, shared by a module's tests (each uses its own room)."""
    c = start_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield c
    finally:
        c.stop()
    check_logs(c.procs, allowed_log_errors(request.node))


@pytest.fixture(scope="module")
def archiving_cluster(request, tmp_path_factory):
    """The module's cluster with the archiver too (history pages, search, unread counts of
    rooms a node does not follow), and message rates high enough for a test to fill rooms."""
    c = start_cluster(tmp_path_factory.mktemp("cluster"),
                      env={"CHAT_RATE_PER_S": "10000", "CHAT_RATE_BURST": "10000"})
    try:
        c.start_archiver()
        yield c
    finally:
        c.stop()
    check_logs(c.procs, allowed_log_errors(request.node))


@pytest.fixture
def contexts(browser):
    """Factory of fresh browser contexts (separate storage: separate people).

    All are closed after the test; an uncaught page error or a dialog (alert, confirm)
    in any of their pages fails it.
    """
    made, problems = [], []

    def watch(page):
        page.on("pageerror", lambda exc: problems.append("page error: %s" % exc))

        def dialog(d):
            problems.append("dialog: %s %r" % (d.type, d.message))
            d.dismiss()
        page.on("dialog", dialog)

    def new(viewport=None, **options):
        ctx = browser.new_context(viewport=viewport or DESKTOP, **options)
        ctx.set_default_timeout(EXPECT_TIMEOUT_MS)
        ctx.add_init_script(STATUS_RECORDER)
        ctx.on("page", watch)
        made.append(ctx)
        return ctx
    yield new
    for ctx in made:
        ctx.close()
    assert not problems, problems


@pytest.fixture
def two_nodes(contexts):
    """Open two people's pages on a room through the balancer, on two different nodes.

    HAProxy deals sessions round-robin, but the pages' other requests move the wheel
    too, so a second person is opened again (bounded) until the nodes differ.
    """
    def open_pair(base_url, room, nicks=("ann", "bob"), attempts=8):
        first = ChatPage.open(contexts(), base_url, room, nicks[0])
        seen = []
        for _ in range(attempts):
            ctx = contexts()
            second = ChatPage.open(ctx, base_url, room, nicks[1])
            if second.node_name() != first.node_name():
                return first, second
            seen.append(second.node_name())
            ctx.close()
        raise AssertionError("%d pages all landed on %s with the first" % (attempts, seen))
    return open_pair
