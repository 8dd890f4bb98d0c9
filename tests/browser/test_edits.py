"""Edits and deletes in Chromium: the author edits a message in place and deletes one after a
confirmation; every page, on another node too, shows the edited text with class ``edited``
and the deleted message with class ``deleted`` and no text; a reload shows the same, and a
page that was away applies the changes it missed when it resumes."""
import pytest
from playwright.sync_api import expect

from harness.client import ChatClient, new_room
from harness.cluster import start_cluster

from .chat_page import ChatPage
from .test_moderation import log_in, staff  # noqa: F401 - staff is a fixture


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


@pytest.mark.timeout(240)
def test_a_page_that_was_away_applies_the_edits_and_deletes_it_missed(tmp_path, contexts):
    cluster = start_cluster(tmp_path / "away")
    carl = None
    try:
        room = new_room()
        carl = ChatClient(cluster.url("node1"), name="carl")
        carl.join(room)
        first, second = (carl.send(room, text)["seq"] for text in ("draft", "a secret"))
        bob = ChatPage.open(contexts(), cluster.balancer_url, room, "bob")
        bob.expect_texts(["draft", "a secret"])

        cluster.balancer.stop()              # every page is cut off, and cannot come back
        expect(bob.status).to_have_text("reconnecting")
        assert carl.call("edit", {"room": room, "seq": first, "text": "final"})["ok"]
        assert carl.call("delete", {"room": room, "seq": second})["ok"]
        carl.send(room, "after")
        cluster.start_balancer()

        bob.expect_connected()
        bob.expect_texts(["final", "", "after"])      # resumed with since: the changes applied
        expect(bob.messages.nth(0)).to_have_class("message edited")
        expect(bob.messages.nth(1)).to_have_class("message deleted")
        assert "a secret" not in bob.page.locator("#messages").inner_text()
        expect(bob.page.locator("#messages .notice").last).to_contain_text("Reconnected")
    finally:
        if carl is not None:
            carl.close()
        cluster.stop()


def test_a_moderator_edits_anyone_s_message_in_place(cluster, contexts, staff):  # noqa: F811
    base, room = cluster.balancer_url, new_room()
    ann = ChatPage.open(contexts(), base, room, "ann")
    boss = log_in(contexts(), base, room, staff)
    ann.send("visit spam.example")
    boss.expect_texts(["visit spam.example"])
    expect(boss.page.locator("#messages [data-seq] .delete")).to_have_count(0)   # moderation.js's
    boss.page.locator("#messages [data-seq] .edit").click()
    box = boss.page.locator(".edit-form .edit-text")
    box.fill("[link removed]")
    boss.page.locator(".edit-form .save-edit").click()
    for chat in (ann, boss):
        chat.expect_texts(["[link removed]"])
        expect(chat.messages.first).to_have_class(
            "message own edited" if chat is ann else "message edited")
