"""Texts and nicks that could reorder a line: bidi controls refused, the rest isolated."""
from playwright.sync_api import expect

from harness.client import new_room

from .chat_page import ChatPage

RTL_NICK = "\u05e9\u05e8\u05d4"                         # Hebrew: right to left
MIXED = "\u05e9\u05dc\u05d5\u05dd 42 and hello"


def test_bidi_overrides_are_refused_and_every_nick_and_text_is_isolated(cluster, contexts):
    room = new_room()
    writer = ChatPage.open(contexts(), cluster.balancer_url, room, RTL_NICK)
    writer.send("evil \u202etxt.exe")
    failed = writer.page.locator("#outbox .failed")
    expect(failed).to_contain_text("invalid_text")
    expect(failed.locator(".text")).to_have_attribute("dir", "auto")
    writer.send(MIXED)
    writer.expect_texts([MIXED])
    reader = ChatPage.open(contexts(), cluster.balancer_url, room, "reader")
    reader.expect_texts([MIXED])
    for page in (writer, reader):
        shown = page.messages.last
        expect(shown.locator(".text")).to_have_attribute("dir", "auto")
        assert shown.locator(".nick").evaluate("n => n.tagName") == "BDI"
        expect(shown.locator(".nick")).to_have_text(RTL_NICK)
        expect(page.page.locator("#members li").first).to_have_attribute("dir", "auto")
    expect(writer.page.locator("#text")).to_have_attribute("dir", "auto")
