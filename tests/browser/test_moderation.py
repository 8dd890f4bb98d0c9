"""Moderation in Chromium: a moderator (a staff account) deletes a member's message and bans
them from the member list; the banned page stops and says until when, the others see them
leave; anyone reports a message from its own small form."""
import re

import pytest
from playwright.sync_api import expect

from harness.client import new_room

from .chat_page import ChatPage

PASSWORD = "browser-horse-battery-7"


@pytest.fixture(scope="module")
def staff(cluster):
    done = cluster.manage("createsuperuser", "--noinput", env={
        "DJANGO_SUPERUSER_USERNAME": "boss", "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
        "DJANGO_SUPERUSER_EMAIL": "boss@example.com"})
    assert done.returncode == 0, done.stdout + done.stderr
    return "boss"


def log_in(context, base, room, username):
    page = context.new_page()
    page.goto("%s/accounts/login/?next=/r/%s/" % (base, room))
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    chat = ChatPage(page, room)
    chat.expect_connected()
    return chat


def test_a_moderator_bans_from_the_member_list_and_a_member_reports(cluster, contexts, staff):
    base, room = cluster.balancer_url, new_room()
    troll = ChatPage.open(contexts(), base, room, "troll")
    ann = ChatPage.open(contexts(), base, room, "ann")
    boss = log_in(contexts(), base, room, staff)
    troll.send("buy cheap watches")
    for chat in (troll, ann, boss):
        chat.expect_texts(["buy cheap watches"])
    expect(boss.members).to_have_count(3)

    # anyone reports someone else's message, in a form of its own; never their own
    expect(troll.page.locator("#messages [data-seq] .report")).to_have_count(0)
    ann.page.locator("#messages [data-seq] .report").click()
    ann.page.fill(".report-form .reason", "spam")
    ann.page.click(".report-form .send-report")
    expect(ann.page.locator("#messages .notice")).to_contain_text(["Reported"])
    expect(ann.page.locator("#members .ban")).to_have_count(0)        # not a moderator

    # the moderator deletes someone else's message (a member has no such action)
    expect(ann.page.locator("#messages [data-seq] .mod-delete")).to_have_count(0)
    troll.send("and more spam")
    boss.expect_texts(["buy cheap watches", "and more spam"])
    boss.page.locator("#messages [data-seq]", has_text="and more spam").locator(".mod-delete").click()
    expect(boss.page.locator("#messages .notice")).to_contain_text(["Message deleted."])

    # the moderator bans from the member list
    member = boss.page.locator("#members li", has_text="troll")
    member.locator(".ban").click()
    boss.page.select_option(".ban-form .ban-minutes", "10")
    boss.page.click(".ban-form .send-ban")
    expect(boss.page.locator("#messages .notice")).to_contain_text(["troll is banned"])
    expect(troll.page.locator("#messages .notice").last).to_contain_text(
        re.compile(r"You are banned from #%s until " % room))
    expect(troll.status).to_have_text("disconnected")
    for chat in (ann, boss):
        expect(chat.members).to_have_count(2)
        expect(chat.page.locator("#messages .announcement").last).to_have_text("troll left")

    # a reload is refused the same way
    troll.page.reload()
    expect(troll.page.locator("#messages .notice").last).to_contain_text("You are banned")
    expect(troll.status).to_have_text("disconnected")
