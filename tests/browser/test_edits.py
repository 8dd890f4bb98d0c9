"""Edits and deletes in Chromium: the author edits a message in place and deletes one after a
confirmation; every page, on another node too, shows the edited text with class ``edited``
and the deleted message with class ``deleted`` and no text; a reload shows the same."""
from playwright.sync_api import expect

from harness.client import new_room

from .chat_page import ChatPage


def _message(chat, text):
    return chat.page.locator("#messages [data-seq]", has_text=text)


def test_the_author_edits_in_place_and_deletes_after_a_confirmation(cluster, two_nodes, contexts):
    room = new_room()
    ann, bob = two_nodes(cluster.balancer_url, room)
    ann.send("helo wrld")
    for chat in (ann, bob):
        chat.expect_texts(["helo wrld"])
    expect(bob.page.locator("#messages [data-seq] .edit")).to_have_count(0)   # not bob's
    bob.send("bob was here")
    ann.expect_texts(["helo wrld", "bob was here"])
    expect(_message(ann, "bob was here").locator(".edit, .delete")).to_have_count(0)

    # edit in place: Enter saves
    _message(ann, "helo wrld").locator(".edit").click()
    box = ann.page.locator(".edit-form .edit-text")
    expect(box).to_have_value("helo wrld")
    box.fill("hello world")
    box.press("Enter")
    for chat in (ann, bob):
        chat.expect_texts(["hello world", "bob was here"])
        expect(chat.messages.first).to_have_class(
            "message own edited" if chat is ann else "message edited")
    expect(ann.page.locator(".edit-form")).to_have_count(0)

    # delete: nothing happens until confirmed
    ann.send("a secret")
    bob.expect_texts(["hello world", "bob was here", "a secret"])
    secret = _message(ann, "a secret")
    secret.locator(".delete").click()
    ann.page.locator(".delete-confirm .cancel-delete").click()
    expect(ann.page.locator(".delete-confirm")).to_have_count(0)
    secret.locator(".delete").click()
    ann.page.locator(".delete-confirm .confirm-delete").click()
    for chat in (ann, bob):
        tombstone = chat.messages.nth(2)
        expect(tombstone).to_have_class("message own deleted" if chat is ann else "message deleted")
        chat.expect_texts(["hello world", "bob was here", ""])
        expect(tombstone.locator(".nick")).to_have_text("")
        assert "a secret" not in chat.page.locator("#messages").inner_text()

    # a new page (a reload, another person) gets the current state from the join
    cat = ChatPage.open(contexts(), cluster.balancer_url, room, "cat")
    cat.expect_texts(["hello world", "bob was here", ""])
    expect(cat.messages.nth(0)).to_have_class("message edited")
    expect(cat.messages.nth(2)).to_have_class("message deleted")
    assert "a secret" not in cat.page.content()
    expect(cat.page.locator("#messages .edit")).to_have_count(0)
