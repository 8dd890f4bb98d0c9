"""Accounts in Chromium: sign up, log out, log in, chat as the username; "my own" lines
are marked by uid, so a guest with the same nick as another guest is not taken for them,
and guests carry a marker."""
from playwright.sync_api import expect

from harness.client import new_room

from .chat_page import ChatPage

PASSWORD = "browser-horse-battery-7"


def own_rows(chat):
    return [(row["nick"], row["text"]) for row in chat.rows() if row["own"]]


def guest_marked(chat):
    return chat.page.evaluate("""() => Array.from(document.querySelectorAll("#messages [data-seq]"),
        (el) => [el.querySelector(".text").textContent, Boolean(el.querySelector(".guest"))])""")


def test_sign_up_log_in_chat_and_own_lines_go_by_uid_not_nick(cluster, contexts):
    base, room = cluster.balancer_url, new_room()
    page = contexts().new_page()
    page.goto("%s/accounts/signup/?next=/r/%s/" % (base, room))
    page.fill("#id_username", "dana")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("button[type=submit]")
    dana = ChatPage(page, room)
    dana.expect_connected()                                   # joined at once, as the account
    expect(page.locator("#whoami")).to_have_text("dana")
    expect(page.locator("#nick")).to_have_value("dana")

    page.click("#logout")                                     # POST with the CSRF token
    expect(page).to_have_url(base + "/")
    expect(page.locator("#whoami")).to_have_text("guest")
    page.click("#login")
    page.fill("#id_username", "DANA")                         # any case logs in
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#whoami")).to_have_text("dana")
    page.goto("%s/r/%s/" % (base, room))
    dana.expect_connected()

    # a guest may not take the account's name ...
    impostor = ChatPage.open(contexts(), base, room)
    impostor.page.fill("#nick", "Dana")
    impostor.page.click("#join")
    expect(impostor.page.locator("#nick-error")).to_contain_text("registered")
    expect(impostor.status).to_have_text("disconnected")
    # ... but two guests may share a nick, and each is still told apart
    sam1 = ChatPage.open(contexts(), base, room, "sam")
    sam2 = ChatPage.open(contexts(), base, room, "sam")
    dana.send("hello from dana")
    dana.expect_texts(["hello from dana"])
    sam1.send("first sam")
    dana.expect_texts(["hello from dana", "first sam"])
    sam2.send("second sam")
    texts = ["hello from dana", "first sam", "second sam"]
    for chat in (dana, sam1, sam2):
        chat.expect_texts(texts)
    assert own_rows(dana) == [("dana", "hello from dana")]
    assert own_rows(sam1) == [("sam", "first sam")]
    assert own_rows(sam2) == [("sam", "second sam")]
    assert guest_marked(sam1) == [["hello from dana", False], ["first sam", True],
                                  ["second sam", True]]

    # a reload keeps the guest's session, so its uid, so its own lines
    sam1.page.reload()
    sam1.expect_connected()
    sam1.expect_texts(texts)
    assert own_rows(sam1) == [("sam", "first sam")]
