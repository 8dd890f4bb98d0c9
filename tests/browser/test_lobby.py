"""The lobby: remembered nickname, active rooms with cluster-wide counts, entering a room."""
import re

from playwright.sync_api import expect

from harness.client import new_room

from .chat_page import ChatPage


def _room_count(lobby, room):
    return lobby.locator('#rooms a[data-room="%s"] .count' % room)


def test_lobby_lists_active_rooms_with_cluster_wide_member_counts(cluster, two_nodes, contexts):
    room = new_room("busy")
    ann, bob = two_nodes(cluster.balancer_url, room)         # two different nodes
    lobby = contexts().new_page()
    lobby.goto(cluster.balancer_url + "/")
    expect(_room_count(lobby, room)).to_have_attribute("data-members", "2")
    expect(_room_count(lobby, room)).to_have_text("2 people")
    # it follows the cluster: someone leaves, the count drops without a reload
    bob.page.context.close()
    expect(_room_count(lobby, room)).to_have_attribute("data-members", "1")
    # a room link opens the room; the lobby's nickname comes along and joins
    lobby.fill("#nick", "zed")
    lobby.locator('#rooms a[data-room="%s"]' % room).click()
    expect(lobby).to_have_url(re.compile(r"/r/%s/$" % room))
    ChatPage(lobby, room).expect_connected()
    ann.expect_members(["ann", "zed"])


def test_lobby_validates_the_room_name_and_remembers_the_nick(cluster, contexts):
    ctx = contexts()
    lobby = ctx.new_page()
    lobby.goto(cluster.balancer_url + "/")
    expect(lobby.get_by_label("Your nickname")).to_be_focused()
    lobby.get_by_label("Your nickname").fill("  yan  ")
    for bad in ("no spaces", "sl/ash", "dot.ted", "ümlaut", ""):
        lobby.get_by_label("Room", exact=True).fill(bad)
        lobby.get_by_role("button", name="Enter room").click()
        expect(lobby.locator("#room-error")).to_be_visible()
        expect(lobby.get_by_label("Room", exact=True)).to_have_attribute("aria-invalid", "true")
        assert "/r/" not in lobby.url
    room = new_room("ok_Name")
    lobby.get_by_label("Room", exact=True).fill(room)
    expect(lobby.locator("#room-error")).to_be_hidden()   # fixed as you type
    lobby.get_by_label("Room", exact=True).press("Enter")
    expect(lobby).to_have_url(re.compile(r"/r/%s/$" % room))
    chat = ChatPage(lobby, room)
    chat.expect_connected()
    expect(chat.members).to_have_text(["yan"])        # trimmed, remembered, joined
    # the next visit to the lobby offers the same nickname
    lobby.goto(cluster.balancer_url + "/")
    expect(lobby.get_by_label("Your nickname")).to_have_value("yan")
