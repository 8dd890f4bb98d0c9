"""/ops/ in Chromium: staff see every node and the broker live, a stopped node goes
red and comes back; guests go to the login, non-staff accounts are refused.

``CHAT_OPS_SCREENSHOT=docs/screenshots/ops.png`` (scripts/screenshot-ops) also
saves the dashboard with traffic flowing, for the README."""
import os

import pytest
from playwright.sync_api import expect

from harness.client import ChatClient, new_room
from harness.cluster import NODES, Cluster, process_errors
from harness.processes import free_port

PASSWORD = "ops-horse-battery-7"


@pytest.fixture(scope="module")
def ops_cluster(tmp_path_factory):
    """Broker, three nodes whose CHAT_OPS_TARGETS name each other and the broker, HAProxy;
    a staff account ``olga`` and a plain account ``pete``."""
    c = Cluster(tmp_path_factory.mktemp("ops-cluster"))
    ports = {name: free_port() for name in NODES}
    c.env["CHAT_OPS_TARGETS"] = ",".join(
        ["%s=http://127.0.0.1:%d" % (name, port) for name, port in ports.items()]
        + ["broker=" + c.broker_metrics_url])
    try:
        c.start_broker()
        for name in NODES:
            c.start_node(name, port=ports[name], wait=False)
        for name in NODES:
            c.wait_healthy(name)
        c.start_balancer()
        for user, flags in (("olga", ["--noinput"]), ("pete", None)):
            if flags:
                done = c.manage("createsuperuser", "--noinput", "--email", "o@example.com",
                                env={"DJANGO_SUPERUSER_USERNAME": user,
                                     "DJANGO_SUPERUSER_PASSWORD": PASSWORD})
            else:
                done = c.manage("shell", "-c", "from accounts.models import User; "
                                "User.objects.create_user('pete', password='%s')" % PASSWORD)
            assert done.returncode == 0, done.stdout + done.stderr
        yield c, ports
    finally:
        c.stop()
    errors = {k: v for k, v in process_errors(c).items() if k != "node3"}   # node3 is stopped on purpose
    assert not errors, "tracebacks or errors in process logs:\n%s" % errors


def _log_in(page, base, user, next_path="/ops/"):
    page.goto("%s/accounts/login/?next=%s" % (base, next_path))
    page.fill("#id_username", user)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


def _row(page, name):
    return page.locator('#targets tr[data-name="%s"]' % name)


def test_guests_go_to_the_login_and_plain_accounts_are_refused(ops_cluster, contexts):
    c, _ = ops_cluster
    page = contexts().new_page()
    page.goto(c.balancer_url + "/ops/")
    expect(page).to_have_url(c.balancer_url + "/accounts/login/?next=/ops/")
    _log_in(page, c.balancer_url, "pete")
    assert page.goto(c.balancer_url + "/ops/").status == 403


def test_staff_see_the_cluster_live_and_a_stopped_node_goes_red(ops_cluster, contexts):
    c, ports = ops_cluster
    page = contexts().new_page()
    _log_in(page, c.balancer_url, "olga")
    expect(page).to_have_url(c.balancer_url + "/ops/")
    for name in (*NODES, "broker"):
        expect(_row(page, name).locator(".badge")).to_have_text("up")
    expect(page.locator("#nodes-up")).to_have_text("3 / 3")
    expect(page.locator("#broker-state")).to_have_text("primary")

    room, people = new_room("ops"), []
    for i, name in enumerate(NODES):
        person = ChatClient(c.url(name), name="p%d" % i)
        person.join(room, "p%d" % i)
        people.append(person)
    try:
        expect(page.locator("#connections")).not_to_have_text("0")
        for i in range(30):
            people[i % 3].send(room, "message %d" % i)
        expect(page.locator("#deliveries-rate")).not_to_have_text("0")
        expect(page.locator("#ack-p99")).to_contain_text("ms")
        shot = os.environ.get("CHAT_OPS_SCREENSHOT")
        if shot:
            page.set_viewport_size({"width": 1100, "height": 640})
            page.screenshot(path=shot)
    finally:
        for person in people:
            person.close()

    node3, _ = c.nodes["node3"]
    node3.stop()
    expect(_row(page, "node3")).to_have_class("state-down")
    expect(_row(page, "node3").locator(".badge")).to_have_text("down")
    expect(page.locator("#nodes-up")).to_have_text("2 / 3")
    c.start_node("node3", port=ports["node3"])
    expect(_row(page, "node3").locator(".badge")).to_have_text("up")
    expect(page.locator("#nodes-up")).to_have_text("3 / 3")
