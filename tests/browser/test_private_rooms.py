"""Direct conversations and private rooms in Chromium: two logged-in people start a dm
from the lobby by username and talk in it; a third account is shut out of its page; an
unknown username is said so in the lobby; a private room made in the lobby is listed in
its member's lobby."""
import re

from playwright.sync_api import expect

from .chat_page import ChatPage

PASSWORD = "browser-horse-battery-7"


def accounts(cluster, *names):
    made = cluster.manage("shell", "-c", (
        "from django.contrib.auth import get_user_model\n"
        "for name in %r:\n"
        "    get_user_model().objects.create_user(name, password=%r)\n") % (names, PASSWORD))
    assert made.returncode == 0, made.stdout + made.stderr


def logged_in_lobby(contexts, base, username):
    page = contexts().new_page()
    page.goto(base + "/accounts/login/?next=/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#whoami")).to_have_text(username)
    return page


def test_a_dm_between_two_logged_in_people_started_from_the_lobby(cluster, contexts):
    base = cluster.balancer_url
    if cluster.archiver is None:
        cluster.start_archiver()   # unread counts of rooms a node does not follow: the archive's
    accounts(cluster, "alma", "boris", "cyril")
    alma = logged_in_lobby(contexts, base, "alma")
    alma.fill("#dm-to", "nobody-here")
    alma.click("#dm-start")
    expect(alma.locator("#dm-error")).to_contain_text("no account")
    alma.fill("#dm-to", "BORIS")                               # any spelling login accepts
    alma.click("#dm-start")
    expect(alma).to_have_url(re.compile(r"/r/dm-[0-9a-f]+/$"))
    room = alma.url.rstrip("/").rsplit("/", 1)[1]
    alma_chat = ChatPage(alma, room)
    alma_chat.expect_connected()
    expect(alma.locator("h1.room-title")).to_have_text("@boris")

    alma_chat.send("are you there?")
    alma_chat.expect_texts(["are you there?"])

    boris = logged_in_lobby(contexts, base, "boris")
    entry = boris.locator('#private-rooms a[data-room="%s"]' % room)
    expect(entry).to_contain_text("@alma")
    expect(entry.locator(".unread")).to_have_text("1")         # alma's message, unread
    entry.click()
    boris_chat = ChatPage(boris, room)
    boris_chat.expect_connected()
    boris_chat.send("just between us")
    alma_chat.expect_texts(["are you there?", "just between us"])
    alma_chat.send("indeed")
    boris_chat.expect_texts(["are you there?", "just between us", "indeed"])

    cyril = logged_in_lobby(contexts, base, "cyril")
    expect(cyril.locator("#private-rooms-empty")).to_be_visible()
    cyril.goto("%s/r/%s/" % (base, room))
    expect(cyril.locator("h1.room-title")).to_have_text("#" + room)   # not who talks there
    expect(cyril.locator("#messages .notice")).to_contain_text("private")
    expect(cyril.locator("#messages [data-seq]")).to_have_count(0)


def test_a_private_room_made_in_the_lobby_is_in_its_members_lobby(cluster, contexts):
    base = cluster.balancer_url
    accounts(cluster, "greta", "hugo")
    greta = logged_in_lobby(contexts, base, "greta")
    greta.click("#private-new summary")
    greta.fill("#private-name", "dm-not-mine")
    greta.click("#private-create")
    expect(greta.locator("#private-error")).to_contain_text("direct conversations")
    greta.fill("#private-name", "greta-and-hugo")
    greta.fill("#private-members", " hugo , ")
    greta.click("#private-create")
    expect(greta).to_have_url(re.compile(r"/r/greta-and-hugo/$"))
    ChatPage(greta, "greta-and-hugo").expect_connected()
    hugo = logged_in_lobby(contexts, base, "hugo")
    expect(hugo.locator('#private-rooms a[data-room="greta-and-hugo"]')).to_contain_text(
        "2 members")
