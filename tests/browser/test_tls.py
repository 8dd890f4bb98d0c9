"""The chat in Chromium over https through HAProxy's TLS (a self-signed certificate made by
scripts/tls-cert, as scripts/run has; its errors are ignored in this test only), with the
strict Content-Security-Policy in force: no violation, no page error."""
import pytest
from playwright.sync_api import expect

from harness.client import new_room
from harness.cluster import process_errors, start_cluster

from .chat_page import ChatPage


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    c = start_cluster(tmp_path_factory.mktemp("tls"), balancer=False)
    try:
        c.start_balancer(tls=True)
        yield c
    finally:
        c.stop()
    errors = process_errors(c)
    assert not errors, "tracebacks or errors in process logs:\n%s" % errors


def test_two_people_chat_over_https_with_hsts_secure_cookies_and_no_csp_violation(tls_cluster, contexts):
    room = new_room("tls")
    violations = []
    people = []
    for nick in ("ann", "bob"):
        ctx = contexts(ignore_https_errors=True)
        page = ctx.new_page()
        page.on("console", lambda msg: violations.append(msg.text)
                if "Content Security Policy" in msg.text else None)
        response = page.goto("%s/r/%s/" % (tls_cluster.tls_url, room))
        assert response.headers["strict-transport-security"].startswith("max-age=")
        assert "script-src 'self'" in response.headers["content-security-policy"]
        chat = ChatPage(page, room)
        chat.join(nick)
        people.append(chat)
        cookies = ctx.cookies()
        assert cookies and all(c["secure"] for c in cookies), cookies
        assert page.evaluate("location.protocol") == "https:"
    ann, bob = people
    ann.send("hello over TLS")
    bob.send("and back")
    for chat in people:
        chat.expect_texts(["hello over TLS", "and back"])
        expect(chat.members).to_have_text(["ann", "bob"])
    assert not violations, violations
