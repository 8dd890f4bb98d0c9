"""Unread and typing in Chromium: the "new" divider where an account stopped reading,
scrolled to; unread counts in the lobby; "… is typing…" in #typing, cleared by the
typist's message or after 5 s."""
import pytest
from playwright.sync_api import expect

from harness.client import ChatClient, new_room
from harness.cluster import start_cluster
from harness.processes import allowed_log_errors, check_logs, wait_until

from .chat_page import ChatPage

PASSWORD = "browser-horse-battery-7"


@pytest.fixture(scope="module")
def cluster(request, tmp_path_factory):
    """The browser tests' cluster, with the archiver: a lobby's node counts unread
    messages of rooms it does not follow from the archive."""
    c = start_cluster(tmp_path_factory.mktemp("unread-browser"))
    try:
        c.start_archiver()
        yield c
    finally:
        c.stop()
    check_logs(c.procs, allowed_log_errors(request.node))


def sign_up(contexts, base, username, next_path):
    page = contexts().new_page()
    page.goto("%s/accounts/signup/?next=%s" % (base, next_path))
    page.fill("#id_username", username)
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("button[type=submit]")
    return page


def unread(cluster, cookies, room):
    """The account's unread count of ``room`` as `rooms` tells it (a client of its own)."""
    probe = ChatClient(cluster.url("node1"), name="probe", cookies=cookies)
    try:
        return {r["room"]: r.get("unread") for r in probe.call("rooms", {})["rooms"]}.get(room)
    finally:
        probe.close()


def test_the_new_divider_marks_where_the_account_stopped_reading_and_is_scrolled_to(cluster, contexts):
    base, room = cluster.balancer_url, new_room()
    page = sign_up(contexts, base, "erin", "/r/%s/" % room)
    erin = ChatPage(page, room)
    erin.expect_connected()
    bob = ChatClient(cluster.url("node2"), name="bob")
    try:
        bob.join(room)
        for i in range(30):
            bob.send(room, "read %d" % i)
        expect(erin.messages).to_have_count(30)
        # the page reports what it showed: all read, once its throttled report went out
        cookies = {c["name"]: c["value"] for c in page.context.cookies() if c["name"] == "sessionid"}
        wait_until(lambda: unread(cluster, cookies, room) == 0, 15, "erin's page to report 30 read")
        expect(page.locator("#new-divider")).to_have_count(0)       # nothing new on the first visit

        page.goto(base + "/")                                         # the lobby
        for i in range(30):
            bob.send(room, "new %d" % i)
        badge = page.locator('#rooms a[data-room="%s"] .unread' % room)
        expect(badge).to_have_text("30")
        page.locator('#rooms a[data-room="%s"]' % room).click()
        erin = ChatPage(page, room)
        erin.expect_connected()
        divider = page.locator("#new-divider")
        expect(divider).to_have_text("new")
        expect(divider).to_be_in_viewport()
        after = page.locator("#new-divider + [data-seq]")
        expect(after).to_have_attribute("data-seq", "31")
        expect(after.locator(".text")).to_have_text("new 0")
        expect(page.locator('#messages [data-seq="60"]')).not_to_be_in_viewport()
        page.goto(base + "/")
        # reading on: scrolled to the end, everything is read and the badge goes
        # (the lobby asks again every 3 s)
        page.goto("%s/r/%s/" % (base, room))
        ChatPage(page, room).expect_connected()
        page.locator('#messages [data-seq="60"]').scroll_into_view_if_needed()
        wait_until(lambda: unread(cluster, cookies, room) == 0, 15, "the rest reported read")
        page.goto(base + "/")
        expect(page.locator('#rooms a[data-room="%s"]' % room)).to_be_visible()
        expect(badge).to_be_hidden()
    finally:
        bob.close()


def test_typing_shows_who_types_and_clears_on_their_message_or_after_5_s(cluster, contexts):
    base, room = cluster.balancer_url, new_room()
    reader = ChatPage.open(contexts(), base, room, "rita")
    typist = ChatPage.open(contexts(), base, room, "tom")
    typing = reader.page.locator("#typing")
    expect(typing).to_be_hidden()
    typist.page.locator("#text").press_sequentially("hello the", delay=50)
    expect(typing).to_have_text("tom is typing…")
    expect(typist.page.locator("#typing")).to_be_hidden()          # not to oneself
    typist.page.press("#text", "Enter")
    reader.expect_texts(["hello the"])
    expect(typing).to_be_hidden()                                   # their message came
    # typing on: a notice per 2 s at most is passed on, so within about 2 s it shows again
    typist.page.locator("#text").press_sequentially("typing on for a while", delay=150)
    expect(typing).to_have_text("tom is typing…")
    expect(typing).to_be_hidden(timeout=9000)                       # 5 s after the last one
    other = ChatPage.open(contexts(), base, room, "ann")
    other.page.locator("#text").press_sequentially("x", delay=50)
    typist.page.locator("#text").press_sequentially("y", delay=50)
    expect(typing).to_have_text("ann and tom are typing…")
